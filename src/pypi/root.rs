//! `/simple/`: every project of an index, rendered from the index's kept name list
//! (`Index::names`, listed from the store once per mutable TTL) a chunk at a time: a
//! large index lists 250,000 projects, and neither the page nor a list of `String`s is
//! ever held whole. The ETag is the names' fingerprint, known before the first byte: an
//! index that did not change keeps its ETag across renders and replicas, and a client
//! revalidating it gets 304.

use super::project::Index;
use super::render::{root, Format};
use super::PypiError;
use crate::store::NameList;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use std::sync::Arc;

/// Projects rendered per chunk of the body (~48 bytes each in HTML).
const CHUNK_NAMES: usize = 2048;

pub async fn serve(
    index: Index,
    format: Format,
    request: &HeaderMap,
) -> Result<Response, PypiError> {
    // The list before the status line: a store that cannot list answers an error, not
    // a 200 cut short.
    let names = index.names().await?;
    let etag = format!(
        "\"{}-{}\"",
        names.fingerprint(),
        match format {
            Format::Json => "json",
            _ => "html",
        }
    );
    let not_modified = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == "*" || t.trim().trim_start_matches("W/") == etag)
        });
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Response::new(Body::from_stream(chunks(names, format, CHUNK_NAMES)))
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=30"),
    );
    Ok(response)
}

/// A part of the page's body.
enum Part {
    Head,
    /// The `i`th chunk of entries.
    Entries(usize),
    Tail,
}

/// The page's chunks: the head, `per_chunk` entries at a time, the tail.
fn chunks(
    names: Arc<NameList>,
    format: Format,
    per_chunk: usize,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let parts = std::iter::once(Part::Head)
        .chain((0..names.len().div_ceil(per_chunk)).map(Part::Entries))
        .chain(std::iter::once(Part::Tail));
    futures::stream::iter(parts.map(move |part| {
        Ok(Bytes::from(match part {
            Part::Head => root::head(format),
            Part::Entries(i) => {
                let from = i * per_chunk;
                let to = (from + per_chunk).min(names.len());
                root::entries(format, (from..to).map(|n| names.get(n)), i == 0)
            }
            Part::Tail => root::tail(format).to_string(),
        }))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pypi::names::DistKind;
    use crate::pypi::project::FileEntry;
    use crate::store::{DocStore, DynStore, FsStore};
    use futures::StreamExt;
    use http_body_util::BodyExt;
    use std::time::Duration;

    async fn body(
        index: &Index,
        format: Format,
        etag: Option<&str>,
    ) -> (StatusCode, Option<String>, String) {
        let mut headers = HeaderMap::new();
        if let Some(etag) = etag {
            headers.insert(header::IF_NONE_MATCH, etag.parse().unwrap());
        }
        let r = serve(index.clone(), format, &headers).await.unwrap();
        let status = r.status();
        let etag = r
            .headers()
            .get(header::ETAG)
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        (status, etag, String::from_utf8(bytes.to_vec()).unwrap())
    }

    async fn add(index: &Index, name: &str) {
        let file = FileEntry {
            filename: format!("{name}-1.0.tar.gz"),
            version: "1.0".into(),
            kind: DistKind::Sdist,
            sha256: "a".repeat(64),
            size: 1,
            requires_python: None,
            metadata_sha256: None,
            yanked: None,
            upload_time: "2026-01-01T00:00:00.000000Z".into(),
            upstream_url: None,
        };
        index.add_file(name, file).await.unwrap();
    }

    #[tokio::test]
    async fn the_page_lists_every_project_with_an_etag_of_its_names() {
        let dir = tempfile::tempdir().unwrap();
        let store: DynStore = Arc::new(FsStore::open(dir.path()).await.unwrap());
        // A long TTL: the list is kept, and only this process's writes change it.
        let index = Index::new(
            "default",
            DocStore::new(store, 64 << 20, Duration::from_secs(600)),
        );
        for name in ["Alpha", "beta.two", "gamma", "delta_x", "eps"] {
            add(&index, name).await;
        }
        let (status, etag, json) = body(&index, Format::Json, None).await;
        assert_eq!(status, 200);
        let etag = etag.expect("known before the first byte");
        let json: serde_json::Value = serde_json::from_str(&json).unwrap();
        let mut names: Vec<&str> = json["projects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["alpha", "beta-two", "delta-x", "eps", "gamma"]);

        let (status, _, empty) = body(&index, Format::Json, Some(&etag)).await;
        assert_eq!((status, empty.as_str()), (StatusCode::NOT_MODIFIED, ""));
        let (status, html_etag, html) = body(&index, Format::Html, Some(&etag)).await;
        assert_eq!(status, 200, "the JSON page's ETag is not the HTML page's");
        assert_ne!(html_etag.as_deref(), Some(etag.as_str()));
        assert_eq!(html.matches("<a href=").count(), 5, "{html}");
        assert!(
            html.contains(r#"<a href="beta-two/">beta-two</a>"#),
            "{html}"
        );
        assert!(html.ends_with("</html>\n"));

        // A project this process adds is listed at once, under a new ETag.
        add(&index, "Zeta").await;
        let (status, new_etag, json) = body(&index, Format::Json, Some(&etag)).await;
        assert_eq!(status, 200);
        assert_ne!(new_etag.unwrap(), etag);
        assert!(json.contains(r#"{"name":"zeta"}"#), "{json}");
    }

    #[tokio::test]
    async fn chunks_make_one_valid_page_whatever_their_size() {
        let names: Arc<NameList> = Arc::new(["a", "b", "c", "d", "e"].into_iter().collect());
        for per_chunk in [1, 2, 5, 9] {
            let parts: Vec<Bytes> = chunks(names.clone(), Format::Json, per_chunk)
                .map(|c| c.unwrap())
                .collect()
                .await;
            let page: Vec<u8> = parts.concat();
            let json: serde_json::Value = serde_json::from_slice(&page).unwrap();
            assert_eq!(json["projects"].as_array().unwrap().len(), 5, "{per_chunk}");
            assert_eq!(json["projects"][4]["name"], "e");
        }
        let empty: Arc<NameList> = Arc::new(NameList::new());
        let parts: Vec<Bytes> = chunks(empty, Format::Json, 2)
            .map(|c| c.unwrap())
            .collect()
            .await;
        let json: serde_json::Value = serde_json::from_slice(&parts.concat()).unwrap();
        assert_eq!(json["projects"], serde_json::json!([]));
    }
}
