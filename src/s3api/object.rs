//! GetObject and HeadObject: one repository file's bytes, as S3 clients expect them.
//!
//! `respond` is the one place that opens a file's bytes for the S3 view. The ETag is the
//! file's sha256 in hex, quoted: 64 hex digits, which rclone and the AWS tools never take
//! for an MD5 (they compare only a 32-hex ETag with the MD5 of what they read), and the
//! same validator the Hub's resolve route uses for LFS files. Last-Modified is the date of
//! the commit the key was read at.
//!
//! The bytes are always streamed, never redirected to the store's presigned URL: botocore
//! answers a 307 on GetObject with a `ClientError (307)` instead of following it, and the
//! client's own Authorization header would not be valid at the store anyway.

use super::endpoint::ResponseHeaders;
use super::error::{Code, S3Error};
use crate::digest::Digest;
use crate::download::{blob_response_with, ranged_response, Redirect};
use crate::hf::file_bytes::{self, FileBytes};
use crate::hf::model::{FileEntry, RepoRef};
use crate::hf::pullthrough::{self, Pull};
use crate::hf::repo::Repos;
use crate::store::StoreError;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the conditional headers decide before any byte is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// 412: `If-Match` or `If-Unmodified-Since` does not hold.
    Failed,
    /// 304: `If-None-Match` or `If-Modified-Since` says the client has it.
    NotModified,
}

/// The object's validators against the request's conditional headers, in the order S3
/// (and RFC 9110) evaluates them: `If-Match` over `If-Unmodified-Since`, then
/// `If-None-Match` over `If-Modified-Since`. Unparseable dates are ignored.
pub fn preconditions(
    request: &HeaderMap,
    etag: &str,
    last_modified: SystemTime,
) -> Option<Precondition> {
    let text = |name| {
        request
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let date = |name| text(name).and_then(|t| httpdate::parse_http_date(t).ok());
    let modified = whole_seconds(last_modified);
    match text(header::IF_MATCH) {
        Some(tags) if !matches_any(tags, etag) => return Some(Precondition::Failed),
        Some(_) => {}
        None => {
            if date(header::IF_UNMODIFIED_SINCE).is_some_and(|since| modified > since) {
                return Some(Precondition::Failed);
            }
        }
    }
    match text(header::IF_NONE_MATCH) {
        Some(tags) if matches_any(tags, etag) => Some(Precondition::NotModified),
        Some(_) => None,
        None => date(header::IF_MODIFIED_SINCE)
            .is_some_and(|since| modified <= since)
            .then_some(Precondition::NotModified),
    }
}

/// `"a", W/"b", *`: does one of them name `etag` (quoted)? Bare tags are accepted too.
fn matches_any(tags: &str, etag: &str) -> bool {
    let bare = etag.trim_matches('"');
    tags.split(',').map(str::trim).any(|t| {
        let t = t.strip_prefix("W/").unwrap_or(t);
        t == "*" || t == etag || t == bare
    })
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// How an object is read.
#[derive(Clone, Copy, Debug)]
pub struct Read<'a> {
    /// HeadObject rather than GetObject.
    pub head: bool,
    pub part_number: Option<u16>,
    pub overrides: &'a ResponseHeaders,
}

/// Where a file whose bytes are not stored yet comes from: the Hub's upstream, at the
/// commit the key was read at.
pub struct Fill<'a> {
    pub pull: &'a Pull,
    pub repo: &'a RepoRef,
    pub commit: &'a str,
}

/// GetObject or HeadObject for `file`, named `resource` (`/bucket/key`) in errors.
pub async fn respond(
    repos: &Repos,
    fill: Option<Fill<'_>>,
    file: &FileEntry,
    last_modified: SystemTime,
    request: &HeaderMap,
    read: Read<'_>,
    resource: &str,
) -> Result<Response, S3Error> {
    let Read {
        head,
        part_number,
        overrides,
    } = read;
    let etag = format!("\"{}\"", file.sha256);
    let last_modified = whole_seconds(last_modified);
    let validators = |mut r: Response| {
        let h = r.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&etag) {
            h.insert(header::ETAG, v);
        }
        if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(last_modified)) {
            h.insert(header::LAST_MODIFIED, v);
        }
        r
    };
    match preconditions(request, &etag, last_modified) {
        Some(Precondition::Failed) => {
            return Err(S3Error::new(
                Code::PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold",
            )
            .with_resource(resource))
        }
        Some(Precondition::NotModified) => {
            return Ok(validators(StatusCode::NOT_MODIFIED.into_response()))
        }
        None => {}
    }
    let ranged;
    let request = match part_number {
        None => request,
        // Every object here is a single part: part 1 is all of it.
        Some(1) => {
            let mut without_range = request.clone();
            without_range.remove(header::RANGE);
            ranged = without_range;
            &ranged
        }
        Some(_) => {
            return Err(S3Error::new(
                Code::InvalidPartNumber,
                "The requested partnumber is not satisfiable",
            )
            .with_resource(resource))
        }
    };
    let digest = Digest::sha256_hex(&file.sha256)
        .map_err(|e| S3Error::new(Code::InternalError, format!("stored digest: {e}")))?;
    let located = file_bytes::locate(repos, &digest, file.xet_hash.as_deref())
        .await
        .map_err(|e| S3Error::new(Code::ServiceUnavailable, e.message))?;
    let response = match located {
        // Uploaded through Xet and kept as xorbs only: rebuilt as it is read.
        Some(xet @ FileBytes::Xet(_)) => {
            let open = |range| async {
                xet.read(repos, range)
                    .await
                    .map_err(|e| StoreError::Unavailable(e.message))
            };
            ranged_response(xet.size(), &etag, request, head, open).await
        }
        Some(FileBytes::Blob { .. }) => {
            blob_response_with(repos.blobs(), &digest, request, head, Redirect::Never).await
        }
        None => match fill {
            // Pulled through, not fetched yet: HEAD answers from the listing's size (a
            // HEAD fetches nothing); GET brings the file in, streaming it to a caller
            // who asked for all of it.
            Some(_) if head => {
                let unread = |_| async { Err(StoreError::NotFound(digest.to_string())) };
                ranged_response(file.size, &etag, request, true, unread).await
            }
            Some(Fill { pull, repo, commit }) => {
                let filled = pullthrough::fill_file(
                    Some(&pull.upstream),
                    &pull.filler,
                    repos.blobs(),
                    repo,
                    commit,
                    file,
                    &digest,
                    request,
                    head,
                )
                .await
                .map_err(|e| match e.status {
                    StatusCode::NOT_FOUND => StoreError::NotFound(e.message),
                    _ => StoreError::Unavailable(e.message),
                });
                // Streamed only to a plain GET of the whole file; a ranged or conditional
                // one waits until it is stored, then reads it from the store.
                match filled {
                    Ok(Some((size, body))) => Ok(crate::download::streamed(&digest, size, body)),
                    Ok(None) => {
                        blob_response_with(repos.blobs(), &digest, request, head, Redirect::Never)
                            .await
                    }
                    Err(e) => Err(e),
                }
            }
            None => {
                blob_response_with(repos.blobs(), &digest, request, head, Redirect::Never).await
            }
        },
    }
    .map_err(|e| store_error(e, resource))?;
    if response.status() == StatusCode::RANGE_NOT_SATISFIABLE {
        let mut refusal =
            S3Error::new(Code::InvalidRange, "The requested range is not satisfiable")
                .with_resource(resource)
                .into_response();
        if let Some(range) = response.headers().get(header::CONTENT_RANGE) {
            refusal
                .headers_mut()
                .insert(header::CONTENT_RANGE, range.clone());
        }
        return Ok(refusal);
    }
    let mut response = validators(response);
    if part_number.is_some() {
        response
            .headers_mut()
            .insert("x-amz-mp-parts-count", HeaderValue::from_static("1"));
    }
    apply_overrides(response.headers_mut(), overrides);
    Ok(response)
}

/// The `response-*` parameters of a signed GetObject replace these headers.
fn apply_overrides(h: &mut HeaderMap, o: &ResponseHeaders) {
    for (name, value) in [
        (header::CACHE_CONTROL, &o.cache_control),
        (header::CONTENT_DISPOSITION, &o.content_disposition),
        (header::CONTENT_ENCODING, &o.content_encoding),
        (header::CONTENT_LANGUAGE, &o.content_language),
        (header::CONTENT_TYPE, &o.content_type),
        (header::EXPIRES, &o.expires),
    ] {
        if let Some(v) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            h.insert(name, v);
        }
    }
}

/// A store failure as S3 names it: a file whose bytes are absent is a missing key (a
/// pulled-through file not fetched yet); an outage is a 503
/// the SDKs retry.
fn store_error(e: StoreError, resource: &str) -> S3Error {
    match e {
        StoreError::NotFound(_) => {
            S3Error::new(Code::NoSuchKey, "The specified key does not exist.")
                .with_resource(resource)
        }
        StoreError::Unavailable(m) => S3Error::new(Code::ServiceUnavailable, m),
        other => S3Error::new(Code::InternalError, other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn conditionals_in_s3_order() {
        let etag = "\"abc\"";
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let before = httpdate::fmt_http_date(t - Duration::from_secs(60));
        let at = httpdate::fmt_http_date(t);
        let check = |pairs: &[(&'static str, &str)]| preconditions(&headers(pairs), etag, t);
        assert_eq!(check(&[]), None);
        assert_eq!(check(&[("if-match", "\"abc\"")]), None);
        assert_eq!(check(&[("if-match", "abc")]), None);
        assert_eq!(check(&[("if-match", "\"x\", *")]), None);
        assert_eq!(check(&[("if-match", "\"x\"")]), Some(Precondition::Failed));
        assert_eq!(
            check(&[("if-unmodified-since", &before)]),
            Some(Precondition::Failed)
        );
        assert_eq!(check(&[("if-unmodified-since", &at)]), None);
        // If-Match holding overrides If-Unmodified-Since.
        assert_eq!(
            check(&[("if-match", "\"abc\""), ("if-unmodified-since", &before)]),
            None
        );
        assert_eq!(
            check(&[("if-none-match", "W/\"abc\"")]),
            Some(Precondition::NotModified)
        );
        assert_eq!(
            check(&[("if-modified-since", &at)]),
            Some(Precondition::NotModified)
        );
        assert_eq!(check(&[("if-modified-since", &before)]), None);
        // If-None-Match not matching overrides If-Modified-Since.
        assert_eq!(
            check(&[("if-none-match", "\"x\""), ("if-modified-since", &at)]),
            None
        );
        assert_eq!(check(&[("if-modified-since", "yesterday")]), None);
    }
}
