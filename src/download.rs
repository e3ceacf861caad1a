//! Streams a stored blob as an HTTP response — whole, one range (206), or 416 — for
//! every protocol; each adds its own headers (`Docker-Content-Digest`, `X-Linked-Etag`).

use crate::digest::Digest;
use crate::store::{BlobStore, ByteRange, GetOptions, Result, StoreError};
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, StatusCode};

/// Answers GET or HEAD for a blob, honouring `Range`, `If-Range` and `If-None-Match`.
/// Store failures (absent blob, outage) come back as errors for the protocol to render.
pub async fn blob_response(
    blobs: &BlobStore,
    digest: &Digest,
    request: &HeaderMap,
    head_only: bool,
) -> Result<Response> {
    // Content named by its digest never changes: the digest is a strong validator.
    let etag = format!("\"{}\"", digest.hex());
    if request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        blobs.head(digest).await?;
        return Ok(with_common(StatusCode::NOT_MODIFIED.into_response(), &etag));
    }
    let range = requested_range(request, &etag);

    if head_only {
        let meta = blobs.head(digest).await?;
        let mut response = Response::new(Body::empty());
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, meta.size.into());
        return Ok(with_common(response, &etag));
    }

    // The S3 store may hand the bytes off: the client follows the redirect (with its
    // Range header) to S3 itself. Protocol headers set by the caller still ride on it.
    if let Some(url) = blobs.redirect_url(digest).await? {
        let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
        let location = HeaderValue::from_str(&url)
            .map_err(|e| StoreError::Unavailable(format!("presigned URL: {e}")))?;
        response.headers_mut().insert(header::LOCATION, location);
        return Ok(with_common(response, &etag));
    }

    let got = match blobs.get(digest, GetOptions { range }).await {
        Ok(got) => got,
        Err(StoreError::RangeNotSatisfiable { size }) => {
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            response.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{size}")).expect("ascii"),
            );
            return Ok(with_common(response, &etag));
        }
        Err(e) => return Err(e),
    };
    let length = got.range.end - got.range.start;
    let body = match &got.file {
        Some(file) => crate::sendfile::file_body(file, got.range.clone(), got.body),
        None => Body::from_stream(got.body),
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, length.into());
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        response.headers_mut().insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!(
                "bytes {}-{}/{}",
                got.range.start,
                got.range.end - 1,
                got.meta.size
            ))
            .expect("ascii"),
        );
    }
    Ok(with_common(response, &etag))
}

/// Answers GET or HEAD for content made on demand (a generated image layer): the same
/// ranges, validators and headers as a stored blob, the bytes from `open(range)`.
pub async fn generated_response<F, Fut>(
    digest: &Digest,
    size: u64,
    request: &HeaderMap,
    head_only: bool,
    open: F,
) -> Result<Response>
where
    F: FnOnce(std::ops::Range<u64>) -> Fut,
    Fut: std::future::Future<Output = Result<crate::store::ByteStream>>,
{
    let etag = format!("\"{}\"", digest.hex());
    if request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return Ok(with_common(StatusCode::NOT_MODIFIED.into_response(), &etag));
    }
    if head_only {
        let mut response = Response::new(Body::empty());
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, size.into());
        return Ok(with_common(response, &etag));
    }
    let asked = requested_range(request, &etag);
    let range = match asked.map(|r| r.resolve(size)) {
        None => 0..size,
        Some(Ok(range)) => range,
        Some(Err(_)) => {
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            response.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{size}")).expect("ascii"),
            );
            return Ok(with_common(response, &etag));
        }
    };
    let length = range.end - range.start;
    let body = open(range.clone()).await?;
    let mut response = Response::new(Body::from_stream(body));
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, length.into());
    if asked.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        response.headers_mut().insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {}-{}/{size}", range.start, range.end - 1))
                .expect("ascii"),
        );
    }
    Ok(with_common(response, &etag))
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
