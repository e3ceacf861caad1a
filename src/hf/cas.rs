//! Airlock's Xet CAS as huggingface_hub and hf_xet reach it: the Hub's token routes hand
//! out a CAS token and the CAS URL (`<site>/_airlock/xet`), which hf_xet then calls.

use super::access::may_read_gated_files;
use super::api::readable;
use super::cas_endpoint::{CasAccess, CasEndpoint};
use super::cas_token::CasGrant;
use super::model::RepoRef;
use super::xet_store::ShardProgress;
use super::{Ctx, HfError, HfState};
use crate::xet::{self, MerkleHash};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{HeaderMap, HeaderValue};

/// Where the CAS is served, below the site's root (never under `/hf`, so one URL serves
/// clients whichever Hub endpoint they were configured with).
pub const CAS_PATH: &str = "/_airlock/xet";

/// `GET /api/{models,datasets}/{repo}/xet-{read,write}-token/{rev}`: the token in the
/// JSON body and, for clients before huggingface_hub 1.19 and git-xet, in headers.
/// The caller's scope was checked by the endpoint; the repository must exist and be
/// visible to it (a private one looks missing).
pub async fn issue_token(
    hf: &HfState,
    ctx: &Ctx,
    repo: &RepoRef,
    write: bool,
) -> Result<Response, HfError> {
    let doc = readable(hf, ctx, repo).await?;
    // A read token reaches the files, so a gated repository's files stay behind its gate.
    if !write && doc.gated && !may_read_gated_files(&ctx.auth, &ctx.identity, repo) {
        let anonymous = matches!(ctx.identity, crate::auth::Identity::Anonymous);
        return Err(HfError::gated(&repo.id, anonymous));
    }
    let now = unix_now();
    let (token, grant) = hf
        .cas_tokens
        .mint(&ctx.auth, &ctx.identity, repo, write, now)
        .ok_or_else(|| {
            HfError::forbidden(
                "this token is configured twice; give each [[tokens]] entry its own name",
            )
        })?;
    let cas_url = format!("{}{CAS_PATH}", ctx.root);
    let mut response = axum::Json(serde_json::json!({
        "accessToken": token,
        "exp": grant.expires,
        "casUrl": cas_url,
    }))
    .into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-xet-cas-url", cas_url),
        ("x-xet-access-token", token),
        ("x-xet-token-expiration", grant.expires.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    Ok(response)
}

/// A request below [`CAS_PATH`]; `path` is what follows it.
pub async fn serve(hf: &HfState, path: &str, request: axum::extract::Request) -> Response {
    let endpoint = match CasEndpoint::parse(request.method(), path) {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    let label = endpoint.label();
    let mut response = match handle(hf, endpoint, request).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    response
        .extensions_mut()
        .insert(crate::observe::RouteLabel(label));
    response
}

/// The grant the bearer token carries, checked against what the endpoint needs before
/// any body is read or anything is stored.
fn authorize(
    hf: &HfState,
    headers: &HeaderMap,
    access: CasAccess,
) -> Result<Option<CasGrant>, HfError> {
    if access == CasAccess::None {
        return Ok(None);
    }
    let token =
        crate::auth::bearer_token(headers).ok_or(crate::auth::AuthError::Unauthenticated)?;
    let grant = hf
        .cas_tokens
        .verify(&hf.auth, &token, unix_now())
        .ok_or_else(|| {
            HfError::new(
                http::StatusCode::UNAUTHORIZED,
                None,
                "Xet CAS token is invalid, expired or revoked: ask the Hub for a new one",
            )
        })?;
    if access == CasAccess::Write && !grant.write {
        return Err(HfError::forbidden("this Xet CAS token is for reading only"));
    }
    Ok(Some(grant))
}

async fn handle(
    hf: &HfState,
    endpoint: CasEndpoint,
    request: axum::extract::Request,
) -> Result<Response, HfError> {
    let grant = authorize(hf, request.headers(), endpoint.access())?;
    match endpoint {
        CasEndpoint::XorbExists { hash } => {
            let status = if hf.xet.has_xorb(&parse_hash(&hash)?).await? {
                http::StatusCode::OK
            } else {
                http::StatusCode::NOT_FOUND
            };
            Ok(status.into_response())
        }
        CasEndpoint::XorbUpload { hash } => {
            let hash = parse_hash(&hash)?;
            let grant = grant.expect("xorb uploads need a write grant");
            // Each new xorb is checked against the organization's quota as it arrives
            // (hf_xet names no file sizes before; the commit checks again by content).
            let size = request
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if let Some(size) = size.filter(|_| !hf.quotas.is_empty()) {
                if !hf.xet.has_xorb(&hash).await? {
                    let adding = [(format!("xorb:{}", hash.to_api_hex()), size)];
                    super::quota::admit(hf, &grant.repo, &adding).await?;
                }
            }
            let body = super::body_stream(request.into_body());
            let was_inserted = hf.xet.put_xorb(hash, body).await?;
            super::cas_dedup::record_upload(&hf.xet, &hash, &grant.repo).await?;
            Ok(axum::Json(serde_json::json!({ "was_inserted": was_inserted })).into_response())
        }
        CasEndpoint::Shard { v2 } => {
            let grant = grant.expect("shards need a write grant");
            let body =
                super::read_body(request.into_body(), xet::shard::MAX_SHARD_BYTES as usize).await?;
            if v2 {
                Ok(shard_v2(hf.clone(), grant.repo, body))
            } else {
                hf.xet
                    .register_shard(&hf.repos, &grant.repo, body.clone(), |_| {})
                    .await?;
                super::cas_dedup::record_file_starts(hf, body).await?;
                Ok(axum::Json(serde_json::json!({ "result": 1 })).into_response())
            }
        }
        CasEndpoint::Dedup { hash } => {
            let grant = grant.expect("dedup queries need a read grant");
            match super::cas_dedup::answer(hf, &grant, &parse_hash(&hash)?).await? {
                Some(shard) => Ok((
                    [
                        (http::header::CONTENT_TYPE, "application/octet-stream"),
                        (http::header::CACHE_CONTROL, "no-store"),
                    ],
                    shard,
                )
                    .into_response()),
                None => Err(HfError::not_found(
                    "chunk not tracked by global deduplication",
                )),
            }
        }
        CasEndpoint::Reconstruction { file, v2 } => {
            let grant = grant.expect("reconstructions need a read grant");
            super::cas_download::reconstruction(hf, &grant, &file, v2, request.headers()).await
        }
        CasEndpoint::Fetch { xorb } => {
            super::cas_download::fetch(hf, &xorb, request.uri().query(), request.headers()).await
        }
        CasEndpoint::Telemetry => {
            // Accepted and dropped unread (bounded, so it cannot hold the connection).
            let _ = super::read_body(request.into_body(), 1024 * 1024).await;
            Ok(http::StatusCode::OK.into_response())
        }
    }
}

/// `POST /v2/shards`: the same work as v1, with progress as NDJSON events; the status is
/// 200 once the stream starts, so the terminal event (`result` or `error`) is the answer.
fn shard_v2(hf: HfState, repo: RepoRef, body: bytes::Bytes) -> Response {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    tokio::spawn(async move {
        let events = tx.clone();
        let outcome = hf
            .xet
            .register_shard(&hf.repos, &repo, body.clone(), move |p| {
                let event = match p {
                    ShardProgress::Verified { done, total } => {
                        serde_json::json!({"type": "validating", "verified": done, "total": total})
                    }
                    ShardProgress::Storing => {
                        serde_json::json!({"type": "committing", "stage": "syncing"})
                    }
                };
                let _ = events.send(event);
            })
            .await;
        let outcome = match outcome {
            Ok(()) => super::cas_dedup::record_file_starts(&hf, body).await,
            Err(e) => Err(e),
        };
        let last = match outcome {
            Ok(()) => serde_json::json!({"type": "result", "result": 1}),
            Err(e) => serde_json::json!({"type": "error", "message": e.message}),
        };
        let _ = tx.send(last);
    });
    let lines = tokio_stream_of(rx).map(|event| {
        let mut line = event.to_string();
        line.push('\n');
        Ok::<_, std::convert::Infallible>(bytes::Bytes::from(line))
    });
    (
        [
            (http::header::CONTENT_TYPE, "application/x-ndjson"),
            (http::header::CACHE_CONTROL, "no-cache"),
        ],
        axum::body::Body::from_stream(lines),
    )
        .into_response()
}

fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

pub(super) fn parse_hash(hex: &str) -> Result<MerkleHash, HfError> {
    hex.parse()
        .map_err(|e: xet::XetError| HfError::bad_request(e.to_string()))
}

pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}
