//! Airlock's Xet CAS as huggingface_hub and hf_xet reach it: the Hub's token routes hand
//! out a CAS token and the CAS URL (`<site>/_airlock/xet`), which hf_xet then calls.

use super::api::readable;
use super::model::RepoRef;
use super::{Ctx, HfError, HfState};
use axum::response::{IntoResponse, Response};
use http::HeaderValue;

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
    readable(hf, ctx, repo).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (token, grant) = hf
        .cas_tokens
        .mint(&ctx.auth, &ctx.identity, repo, write, now)
        .ok_or_else(|| {
            HfError::forbidden("this token is configured twice; give each [[tokens]] entry its own name")
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
