//! PyPI pull-through for the default index: a project page missing or not checked
//! within the TTL is read from the upstream index (PEP 691 JSON preferred, PEP 503 HTML
//! understood) and merged into the project document; each file's body and `.metadata`
//! are fetched on first download and verified against the sha256 the page gave.

use super::fill::{streamed, Filled};
use super::{client::chain, revalidate, Lookup, Upstream, UpstreamError};
use crate::digest::Digest;
use crate::pypi::project::FileEntry;
use crate::pypi::PypiState;
use crate::pypi::{index_of, remote, PypiError, DEFAULT_INDEX};
use axum::response::Response;
use futures::StreamExt;
use http::{header, HeaderMap};

const PAGE_ACCEPT: &str = "application/vnd.pypi.simple.v1+json, \
    application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1";
/// The largest upstream project page read (pypi.org's biggest are a few MiB).
const MAX_PAGE_BYTES: usize = 64 * 1024 * 1024;

fn failed(e: UpstreamError) -> PypiError {
    match e {
        UpstreamError::NotFound(what) => {
            PypiError::not_found(format!("not on the upstream index: {what}"))
        }
        e => PypiError::bad_gateway(format!("{e}; retry later")),
    }
}

/// Before a project page is served: brings it in from the upstream when missing or stale.
pub async fn refresh_project(
    state: &PypiState,
    index: &str,
    normalized: &str,
) -> Result<(), PypiError> {
    let Some(up) = &state.upstream else {
        return Ok(());
    };
    if index != DEFAULT_INDEX {
        return Ok(());
    }
    let idx = index_of(state, index);
    let have = idx.raw_project(normalized).await?.is_some();
    let fetch = async {
        match page(up, normalized).await {
            Ok(page) => {
                idx.merge_upstream(&page.name, &page.files)
                    .await
                    .map_err(|e| UpstreamError::Unavailable(e.message))?;
                Ok(Lookup::Stored)
            }
            Err(UpstreamError::NotFound(_)) => Ok(Lookup::Absent),
            Err(e) => Err(e),
        }
    };
    revalidate(up, format!("pypi/{normalized}"), have, fetch)
        .await
        .map(|_| ())
        .map_err(failed)
}

async fn page(up: &Upstream, normalized: &str) -> Result<remote::RemotePage, UpstreamError> {
    let url = up.url(&format!("/{normalized}/"));
    let response = up.get(&url, PAGE_ACCEPT).await?;
    let page_url = response.url().clone();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("json"));
    let mut body = response.bytes_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| UpstreamError::Unavailable(format!("{url}: {}", chain(&e))))?;
        if bytes.len() + chunk.len() > MAX_PAGE_BYTES {
            return Err(UpstreamError::Unavailable(format!(
                "{url}: page larger than {MAX_PAGE_BYTES} bytes"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    if json {
        remote::parse_json(&bytes, &page_url, normalized)
            .map_err(|e| UpstreamError::Unavailable(format!("{url}: {e}")))
    } else {
        Ok(remote::parse_html(
            &String::from_utf8_lossy(&bytes),
            &page_url,
            normalized,
        ))
    }
}

/// A listed file (or its `.metadata`) whose bytes are not stored yet: fetched from the
/// upstream, verified. `Some` streams it to this caller; `None`: serve it from the store.
pub async fn fill_file(
    state: &PypiState,
    entry: &FileEntry,
    metadata: bool,
    digest: &Digest,
    request: &HeaderMap,
    head: bool,
) -> Result<Option<Response>, PypiError> {
    let (Some(up), Some(url)) = (&state.upstream, &entry.upstream_url) else {
        return Ok(None);
    };
    if state.blobs.exists(digest).await? {
        return Ok(None);
    }
    let url = match metadata {
        true => format!("{url}.metadata"),
        false => url.clone(),
    };
    let size = (!metadata && entry.size > 0).then_some(entry.size);
    let whole = !head
        && !request.contains_key(header::RANGE)
        && !request.contains_key(header::IF_NONE_MATCH);
    let filled = state
        .filler
        .fill(digest, size, whole, up.clone().open(url))
        .await
        .map_err(failed)?;
    Ok(match filled {
        Filled::Stored => None,
        Filled::Streaming { size, body } => Some(streamed(digest, size, body)),
    })
}
