//! Downloads through Airlock's Xet CAS: reconstructions (v1 and v2, as xet-core's
//! `QueryReconstructionResponse{,V2}` deserialize them) and the signed xorb URLs they
//! hand out, answered from the stored xorbs by range (one range: 206; several:
//! `multipart/byteranges`), streamed.

use super::cas_reconstruction::{self as recon, Plan, PlanError};
use super::cas_token::CasGrant;
use super::cas_url::MAX_RANGES_PER_URL;
use super::{HfError, HfState};
use crate::digest::Digest;
use crate::xet::MerkleHash;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// `GET /v{1,2}/reconstructions/{file}`. A file hash is not a capability: the file is
/// served only to a token for a repository that holds it (by an upload link or at the
/// head of a branch or tag), and looks missing to every other.
pub async fn reconstruction(
    hf: &HfState,
    grant: &CasGrant,
    file: &str,
    v2: bool,
    headers: &HeaderMap,
) -> Result<Response, HfError> {
    let hash = super::cas::parse_hash(file)?;
    let missing = || HfError::not_found(format!("no Xet file {file} in {}", grant.repo.id));
    let doc = hf.xet.file(&hash).await?.ok_or_else(missing)?;
    let digest =
        Digest::sha256_hex(&doc.sha256).map_err(|e| damaged(format!("file {file}: {e}")))?;
    if !hf.repos.holds_lfs(&grant.repo, &digest, &mut None).await? {
        return Err(missing());
    }
    let range = match recon::requested(&doc, file_range(headers)?) {
        Ok(r) => r,
        Err(PlanError::NotSatisfiable { size }) => return Ok(not_satisfiable(size)),
        Err(PlanError::Damaged(e)) => return Err(damaged(e)),
    };
    let mut indexes = HashMap::new();
    for xorb in recon::xorbs_needed(&doc, &range).map_err(plan_error)? {
        let index = hf
            .xet
            .xorb_index(&xorb)
            .await?
            .ok_or_else(|| damaged(format!("xorb {xorb} of file {file} is not stored")))?;
        indexes.insert(xorb, index);
    }
    let plan = recon::plan(&doc, range, &indexes).map_err(plan_error)?;
    let base = format!(
        "{}{}/v1/fetch",
        hf.site.base_url(headers),
        super::cas::CAS_PATH
    );
    let expires = super::cas::unix_now() + super::cas_url::FETCH_URL_TTL_SECS;
    let url = |xorb: &MerkleHash, ranges: &[(u64, u64)]| {
        let query = hf.fetch_urls.sign(xorb, ranges, expires);
        format!("{base}/{}?{query}", xorb.to_api_hex())
    };
    let body = if v2 {
        v2_json(&plan, url)
    } else {
        v1_json(&plan, url)
    };
    Ok(axum::Json(body).into_response())
}

fn terms_json(plan: &Plan) -> Value {
    plan.terms
        .iter()
        .map(|t| {
            json!({
                "hash": t.xorb.to_api_hex(),
                "unpacked_length": t.unpacked_length,
                "range": {"start": t.chunks.start, "end": t.chunks.end},
            })
        })
        .collect()
}

/// `fetch_info`: one URL per chunk range, its `url_range` end inclusive.
fn v1_json(plan: &Plan, url: impl Fn(&MerkleHash, &[(u64, u64)]) -> String) -> Value {
    let mut fetch_info = Map::new();
    for (xorb, fetches) in &plan.fetches {
        let entries: Vec<Value> = fetches
            .iter()
            .map(|f| {
                json!({
                    "range": {"start": f.chunks.start, "end": f.chunks.end},
                    "url": url(xorb, &[(f.first_byte, f.last_byte)]),
                    "url_range": {"start": f.first_byte, "end": f.last_byte},
                })
            })
            .collect();
        fetch_info.insert(xorb.to_api_hex(), Value::Array(entries));
    }
    json!({
        "offset_into_first_range": plan.offset_into_first_range,
        "terms": terms_json(plan),
        "fetch_info": fetch_info,
    })
}

/// `xorbs`: one URL per xorb (more past [`MAX_RANGES_PER_URL`]) for all its ranges.
fn v2_json(plan: &Plan, url: impl Fn(&MerkleHash, &[(u64, u64)]) -> String) -> Value {
    let mut xorbs = Map::new();
    for (xorb, fetches) in &plan.fetches {
        let entries: Vec<Value> = fetches
            .chunks(MAX_RANGES_PER_URL)
            .map(|group| {
                let ranges: Vec<(u64, u64)> =
                    group.iter().map(|f| (f.first_byte, f.last_byte)).collect();
                json!({
                    "url": url(xorb, &ranges),
                    "ranges": group.iter().map(|f| json!({
                        "chunks": {"start": f.chunks.start, "end": f.chunks.end},
                        "bytes": {"start": f.first_byte, "end": f.last_byte},
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        xorbs.insert(xorb.to_api_hex(), Value::Array(entries));
    }
    json!({
        "offset_into_first_range": plan.offset_into_first_range,
        "terms": terms_json(plan),
        "xorbs": xorbs,
    })
}

/// The file range asked for, `[start, end)`: `bytes=a-b` or `bytes=a-`; none is all.
fn file_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>, HfError> {
    let Some(value) = headers.get(header::RANGE) else {
        return Ok(None);
    };
    let bad = || HfError::bad_request("Range: expected `bytes=<start>-[<end>]`");
    let spec = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().strip_prefix("bytes="))
        .ok_or_else(bad)?;
    let (start, end) = spec.split_once('-').ok_or_else(bad)?;
    let start: u64 = start.trim().parse().map_err(|_| bad())?;
    let end = match end.trim() {
        "" => u64::MAX,
        e => e
            .parse::<u64>()
            .ok()
            .filter(|e| *e >= start)
            .ok_or_else(bad)?
            .saturating_add(1),
    };
    Ok(Some((start, end)))
}

fn not_satisfiable(size: u64) -> Response {
    let mut response = HfError::new(
        StatusCode::RANGE_NOT_SATISFIABLE,
        None,
        format!("the range starts past the end of the {size}-byte file"),
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
        response.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    response
}

fn damaged(message: String) -> HfError {
    crate::store::StoreError::Unavailable(message).into()
}

fn plan_error(e: PlanError) -> HfError {
    match e {
        PlanError::NotSatisfiable { size } => HfError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            None,
            format!("range outside the {size}-byte file"),
        ),
        PlanError::Damaged(e) => damaged(e),
    }
}

/// `GET /v1/fetch/{xorb}?...` with `Range`: only byte ranges the signed URL grants.
pub async fn fetch(
    hf: &HfState,
    xorb: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response, HfError> {
    let hash = super::cas::parse_hash(xorb)?;
    let grant = hf
        .fetch_urls
        .verify(&hash, query.unwrap_or_default(), super::cas::unix_now())
        .ok_or_else(|| {
            HfError::forbidden(
                "this xorb URL is altered or expired: ask the CAS for a new reconstruction",
            )
        })?;
    let requested = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
        .and_then(|v| super::cas_url::parse_ranges(v, MAX_RANGES_PER_URL))
        .filter(|r| grant.covers(r))
        .ok_or_else(|| {
            HfError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                None,
                "send a Range within the byte ranges this URL grants",
            )
        })?;
    if let [(start, end)] = requested[..] {
        let got = hf.xet.read_xorb(&hash, start, end).await?;
        let mut response = Response::new(Body::from_stream(got.body));
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let h = response.headers_mut();
        h.insert(header::CONTENT_LENGTH, (end - start + 1).into());
        h.insert(header::CONTENT_TYPE, octets());
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{}", got.meta.size)) {
            h.insert(header::CONTENT_RANGE, v);
        }
        return Ok(response);
    }
    // The first part is opened before answering, so a missing xorb is an error status,
    // not a cut connection; later parts open as the body streams.
    let first = hf
        .xet
        .read_xorb(&hash, requested[0].0, requested[0].1)
        .await?;
    let total = first.meta.size;
    let boundary = format!("{:032x}", rand::random::<u128>());
    let part_boundary = boundary.clone();
    let head = move |(start, end): (u64, u64)| {
        let boundary = &part_boundary;
        bytes::Bytes::from(format!(
            "--{boundary}\r\nContent-Type: application/octet-stream\r\n\
             Content-Range: bytes {start}-{end}/{total}\r\n\r\n"
        ))
    };
    let (crlf, close) = (
        bytes::Bytes::from_static(b"\r\n"),
        bytes::Bytes::from(format!("--{boundary}--\r\n")),
    );
    let content_type = format!("multipart/byteranges; boundary={boundary}");
    let xet = hf.xet.clone();
    let mut first = Some(first.body);
    let parts = futures::stream::iter(requested).then(move |(start, end)| {
        let xet = xet.clone();
        let opened = first.take();
        let head = head((start, end));
        let crlf = crlf.clone();
        async move {
            let body = match opened {
                Some(body) => body,
                None => {
                    xet.read_xorb(&hash, start, end)
                        .await
                        .map_err(|e| std::io::Error::other(e.message))?
                        .body
                }
            };
            let part = futures::stream::once(async move { Ok(head) })
                .chain(body)
                .chain(futures::stream::once(async move { Ok(crlf) }));
            Ok::<_, std::io::Error>(part)
        }
    });
    let body = parts
        .map(|part| match part {
            Ok(s) => s.boxed(),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        })
        .flatten()
        .chain(futures::stream::once(async move { Ok(close) }));
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    Ok(response)
}

fn octets() -> HeaderValue {
    HeaderValue::from_static("application/octet-stream")
}
