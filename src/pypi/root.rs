//! `/simple/`: every project of an index, streamed a listing page at a time. A large
//! index lists 100,000 projects: the first bytes go out after one page of the store's
//! listing, and no project list is read whole. The page, once sent in full, is kept for
//! the documents' mutable TTL with an ETag of its bytes: while kept, it is answered from
//! memory, and an If-None-Match naming it gets 304. An index that did not change keeps
//! its ETag across renders, so clients revalidating it get 304s.

use super::project::{Index, ProjectsPage, PROJECTS_PAGE};
use super::render::{root, Format};
use super::PypiError;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use std::time::Duration;

/// Root pages sent in full, by index and format, with their ETags.
#[derive(Clone, Debug)]
pub struct RootPages {
    cache: moka::future::Cache<String, (Bytes, String)>,
    /// Projects per listing page.
    page: usize,
    /// A page larger than this is sent but not kept: half the cache.
    kept_page_bytes: usize,
}

impl RootPages {
    pub fn new(ttl: Duration, cache_bytes: u64) -> RootPages {
        RootPages {
            kept_page_bytes: usize::try_from(cache_bytes / 2).unwrap_or(usize::MAX),
            cache: moka::future::Cache::builder()
                .max_capacity(cache_bytes)
                .weigher(|k: &String, v: &(Bytes, String)| {
                    (k.len() + v.0.len()).try_into().unwrap_or(u32::MAX)
                })
                .time_to_live(ttl)
                .build(),
            page: PROJECTS_PAGE,
        }
    }

    pub async fn serve(
        &self,
        index: Index,
        format: Format,
        request: &HeaderMap,
    ) -> Result<Response, PypiError> {
        let key = format!("{}|{}", index.name, format.content_type());
        let mut response = match self.cache.get(&key).await {
            Some((body, etag)) => {
                let not_modified = request
                    .get(header::IF_NONE_MATCH)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| {
                        v.split(',')
                            .any(|t| t.trim().trim_start_matches("W/") == etag)
                    });
                let mut r = if not_modified {
                    StatusCode::NOT_MODIFIED.into_response()
                } else {
                    Response::new(Body::from(body))
                };
                r.headers_mut()
                    .insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex"));
                r
            }
            None => {
                // The first listing page before the status line: a store that cannot
                // list answers an error, not a 200 cut short.
                let first = index.projects_page(None, self.page).await?;
                Response::new(Body::from_stream(
                    self.clone().stream(key, index, format, first),
                ))
            }
        };
        let h = response.headers_mut();
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

    /// The page's chunks: the head with the first listing page, one chunk per further
    /// page, the tail; the whole is kept once sent (when it is not too large to keep).
    fn stream(
        self,
        key: String,
        index: Index,
        format: Format,
        first: ProjectsPage,
    ) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
        let mut opening = root::head(format);
        opening.push_str(&root::entries(format, &first.names, true));
        let state = Sending {
            pages: self,
            key,
            index,
            format,
            next: Some(Next::Chunk(opening, first.next)),
            wrote_any: !first.names.is_empty(),
            kept: Some(Vec::new()),
        };
        futures::stream::unfold(state, |mut state| async move {
            let chunk = state.next_chunk().await?;
            Some((chunk, state))
        })
    }
}

/// What comes after the chunk being sent.
enum Next {
    /// This chunk, then the page after this cursor (none: the tail).
    Chunk(String, Option<String>),
    Tail,
}

struct Sending {
    pages: RootPages,
    key: String,
    index: Index,
    format: Format,
    next: Option<Next>,
    /// Whether an entry was sent (JSON separates entries by commas).
    wrote_any: bool,
    /// The page so far, to keep once whole (dropped when too large).
    kept: Option<Vec<u8>>,
}

impl Sending {
    async fn next_chunk(&mut self) -> Option<std::io::Result<Bytes>> {
        let chunk = match self.next.take()? {
            Next::Chunk(chunk, cursor) => {
                self.next = Some(match cursor {
                    Some(cursor) => match self.page(&cursor).await {
                        Ok(next) => next,
                        Err(e) => {
                            tracing::warn!(index = %self.index.name, error = %e.message, "root page cut short: the listing failed");
                            return Some(Err(std::io::Error::other(e.message)));
                        }
                    },
                    None => Next::Tail,
                });
                chunk
            }
            Next::Tail => {
                let tail = root::tail(self.format).to_string();
                self.keep(&tail);
                if let Some(whole) = self.kept.take() {
                    let etag = format!(
                        "\"{}\"",
                        &crate::digest::Digest::of_bytes(crate::digest::Algorithm::Sha256, &whole)
                            .hex()[..32]
                    );
                    let key = std::mem::take(&mut self.key);
                    self.pages
                        .cache
                        .insert(key, (Bytes::from(whole), etag))
                        .await;
                }
                return Some(Ok(Bytes::from(tail)));
            }
        };
        self.keep(&chunk);
        Some(Ok(Bytes::from(chunk)))
    }

    /// The listing page after `cursor`, rendered, with what follows it.
    async fn page(&mut self, cursor: &str) -> Result<Next, PypiError> {
        let page = self
            .index
            .projects_page(Some(cursor), self.pages.page)
            .await?;
        let chunk = root::entries(self.format, &page.names, !self.wrote_any);
        self.wrote_any |= !page.names.is_empty();
        Ok(Next::Chunk(chunk, page.next))
    }

    fn keep(&mut self, chunk: &str) {
        if let Some(buffer) = self.kept.as_mut() {
            buffer.extend_from_slice(chunk.as_bytes());
            if buffer.len() > self.pages.kept_page_bytes {
                self.kept = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pypi::names::DistKind;
    use crate::pypi::project::FileEntry;
    use crate::store::{DocStore, DynStore, FsStore};
    use http_body_util::BodyExt;
    use std::sync::Arc;

    async fn body(
        pages: &RootPages,
        index: &Index,
        format: Format,
        etag: Option<&str>,
    ) -> (StatusCode, Option<String>, String) {
        let mut headers = HeaderMap::new();
        if let Some(etag) = etag {
            headers.insert(header::IF_NONE_MATCH, etag.parse().unwrap());
        }
        let r = pages.serve(index.clone(), format, &headers).await.unwrap();
        let status = r.status();
        let etag = r
            .headers()
            .get(header::ETAG)
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        (status, etag, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn pages_of_the_listing_make_one_page_kept_with_its_etag() {
        let dir = tempfile::tempdir().unwrap();
        let store: DynStore = Arc::new(FsStore::open(dir.path()).await.unwrap());
        let index = Index::new("default", DocStore::new(store, 1 << 20, Duration::ZERO));
        for name in ["Alpha", "beta.two", "gamma", "delta_x", "eps"] {
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
        let mut pages = RootPages::new(Duration::from_secs(60), 64 << 20);
        pages.page = 2;
        let (status, etag, json) = body(&pages, &index, Format::Json, None).await;
        assert_eq!(status, 200);
        assert_eq!(etag, None, "not known before the page is whole");
        let json: serde_json::Value = serde_json::from_str(&json).unwrap();
        let mut names: Vec<&str> = json["projects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["alpha", "beta-two", "delta-x", "eps", "gamma"]);

        let (_, etag, again) = body(&pages, &index, Format::Json, None).await;
        let etag = etag.expect("kept whole");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&again).unwrap(),
            json
        );
        let (status, _, empty) = body(&pages, &index, Format::Json, Some(&etag)).await;
        assert_eq!((status, empty.as_str()), (StatusCode::NOT_MODIFIED, ""));

        let (_, _, html) = body(&pages, &index, Format::Html, None).await;
        assert_eq!(html.matches("<a href=").count(), 5, "{html}");
        assert!(html.ends_with("</html>\n"));
    }
}
