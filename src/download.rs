//! Streams a stored blob, or content rebuilt as it is read, as an HTTP response — whole,
//! one range (206), or 416 — for every protocol; each adds its own headers
//! (`Docker-Content-Digest`, `X-Linked-Etag`).

use crate::digest::Digest;
use crate::store::{BlobStore, ByteRange, ByteStream, GetOptions, Result, StoreError};
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use std::future::Future;
use std::ops::Range;

/// Whether a GET may be answered with a redirect to the store's presigned URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redirect {
    /// When the store is set to redirect downloads.
    Allowed,
    /// Always the bytes: for clients that do not follow redirects (S3 SDKs).
    Never,
}

/// Answers GET or HEAD for a blob, honouring `Range`, `If-Range` and `If-None-Match`.
/// Store failures (absent blob, outage) come back as errors for the protocol to render.
pub async fn blob_response(
    blobs: &BlobStore,
    digest: &Digest,
    request: &HeaderMap,
    head_only: bool,
) -> Result<Response> {
    blob_response_with(blobs, digest, request, head_only, Redirect::Allowed).await
}

/// As [`blob_response`], saying whether a redirect may replace the bytes.
pub async fn blob_response_with(
    blobs: &BlobStore,
    digest: &Digest,
    request: &HeaderMap,
    head_only: bool,
    redirect: Redirect,
) -> Result<Response> {
    // Content named by its digest never changes: the digest is a strong validator.
    let etag = format!("\"{}\"", digest.hex());
    if not_modified(request, &etag) {
        blobs.head(digest).await?;
        return Ok(with_common(StatusCode::NOT_MODIFIED.into_response(), &etag));
    }
    let range = requested_range(request, &etag);

    if head_only {
        let meta = blobs.head(digest).await?;
        return Ok(whole_head(meta.size, &etag));
    }

    // The S3 store may hand the bytes off: the client follows the redirect (with its
    // Range header) to S3 itself. Protocol headers set by the caller still ride on it.
    let url = match redirect {
        Redirect::Allowed => blobs.redirect_url(digest).await?,
        Redirect::Never => None,
    };
    if let Some(url) = url {
        let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
        let location = HeaderValue::from_str(&url)
            .map_err(|e| StoreError::Unavailable(format!("presigned URL: {e}")))?;
        response.headers_mut().insert(header::LOCATION, location);
        return Ok(with_common(response, &etag));
    }

    let got = match blobs.get(digest, GetOptions { range }).await {
        Ok(got) => got,
        Err(StoreError::RangeNotSatisfiable { size }) => return Ok(not_satisfiable(size, &etag)),
        Err(e) => return Err(e),
    };
    let body = match &got.file {
        Some(file) => crate::sendfile::file_body(file, got.range.clone(), got.body),
        None => Body::from_stream(got.body),
    };
    Ok(content(
        body,
        got.range,
        got.meta.size,
        range.is_some(),
        &etag,
    ))
}

/// As [`blob_response`] for content that is no stored object (a file rebuilt from its
/// Xet parts as it is read, a generated image layer): `size` bytes under the strong validator `etag` (quoted), whose
/// bytes `[start, end)` `open` streams. Only a GET of a satisfiable range opens anything.
pub async fn ranged_response<F, Fut>(
    size: u64,
    etag: &str,
    request: &HeaderMap,
    head_only: bool,
    open: F,
) -> Result<Response>
where
    F: FnOnce(Range<u64>) -> Fut,
    Fut: Future<Output = Result<ByteStream>>,
{
    if not_modified(request, etag) {
        return Ok(with_common(StatusCode::NOT_MODIFIED.into_response(), etag));
    }
    if head_only {
        return Ok(whole_head(size, etag));
    }
    let range = requested_range(request, etag);
    let span = match range.map(|r| r.resolve(size)) {
        None => 0..size,
        Some(Ok(span)) => span,
        Some(Err(_)) => return Ok(not_satisfiable(size, etag)),
    };
    let body = Body::from_stream(open(span.clone()).await?);
    Ok(content(body, span, size, range.is_some(), etag))
}

/// `If-None-Match` names this version (or any).
fn not_modified(request: &HeaderMap, etag: &str) -> bool {
    request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

fn whole_head(size: u64, etag: &str) -> Response {
    let mut response = Response::new(Body::empty());
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, size.into());
    with_common(response, etag)
}

fn not_satisfiable(size: u64, etag: &str) -> Response {
    let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
    response.headers_mut().insert(
        header::CONTENT_RANGE,
        HeaderValue::from_str(&format!("bytes */{size}")).expect("ascii"),
    );
    with_common(response, etag)
}

/// 200 with the whole content, or 206 with `span` of it when a range was asked for.
fn content(body: Body, span: Range<u64>, size: u64, ranged: bool, etag: &str) -> Response {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, (span.end - span.start).into());
    if ranged {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        response.headers_mut().insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {}-{}/{size}", span.start, span.end - 1))
                .expect("ascii"),
        );
    }
    with_common(response, etag)
}

/// The single range asked for, unless `If-Range` names another version.
fn requested_range(request: &HeaderMap, etag: &str) -> Option<ByteRange> {
    let range = ByteRange::parse_header(request.get(header::RANGE)?.to_str().ok()?)?;
    match request.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        Some(validator) if validator.trim() != etag => None,
        _ => Some(range),
    }
}

fn with_common(mut response: Response, etag: &str) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::ETAG, HeaderValue::from_str(etag).expect("hex"));
    headers
        .entry(header::CONTENT_TYPE)
        .or_insert(HeaderValue::from_static("application/octet-stream"));
    response
}

/// The response for the client that started a pull-through fill: the whole blob as it
/// arrives from the upstream (the store verifies it meanwhile).
pub fn streamed(digest: &Digest, size: u64, body: crate::store::ByteStream) -> Response {
    let mut r = Response::new(Body::from_stream(body));
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, size.into());
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", digest.hex())) {
        h.insert(header::ETAG, etag);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// Any `Range`/`If-Range` pair: one range or none, and what it resolves to lies
        /// inside the object.
        #[test]
        fn any_range_header(range in "[bytes= 0-9,-]{0,32}", raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), size in 0u64..1_000_000) {
            for value in [range.into_bytes(), raw] {
                let Ok(value) = HeaderValue::from_bytes(&value) else { continue };
                let mut h = HeaderMap::new();
                h.insert(header::RANGE, value);
                if let Some(r) = requested_range(&h, "\"e\"") {
                    if let Ok(span) = r.resolve(size) {
                        proptest::prop_assert!(span.start < span.end && span.end <= size);
                    }
                }
            }
        }
    }
}
