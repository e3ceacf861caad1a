//! The Hugging Face Hub API, at the root (`HF_ENDPOINT=http://airlock:8080`) and again
//! under `/hf` (`HF_ENDPOINT=http://airlock:8080/hf`, for repo names that would clash
//! with `v2`, `simple`, `api` and the other top-level paths).
//!
//! Downloads are served directly (200/206, never a same-origin redirect, which breaks
//! huggingface_hub 1.x/2.x), with `X-Repo-Commit`, `ETag`/`X-Linked-Etag` and
//! `X-Linked-Size`. Files uploaded through Xet also carry the Xet headers, and clients
//! with hf_xet download them through the CAS (`cas.rs`); uploads go through Xet as
//! current clients insist.

pub mod access;
pub mod api;
mod cas;
pub mod cas_dedup;
mod cas_download;
mod cas_endpoint;
mod cas_reconstruction;
pub mod cas_token;
mod cas_url;
mod commit_doc;
mod endpoint;
mod error;
pub mod file_bytes;
pub mod git;
mod gitattributes;
pub mod import;
pub mod model;
mod ndjson;
pub mod pullthrough;
pub mod quota;
pub mod repo;
mod tree;
mod upload;
pub mod xet_store;
pub mod xet_transfer;

use crate::store::CacheShare;
pub use endpoint::Endpoint;
use endpoint::RefOp;
pub use error::HfError;

use crate::auth::{Action, Auth, AuthError, Identity, Permission, Protocol};
use crate::observe::RouteLabel;
use crate::site::Site;
use crate::store::{BlobStore, DocStore};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use repo::Repos;
use serde::Deserialize;
use std::sync::Arc;

/// `[hf]` in the config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HfSettings {
    /// Key that signs the LFS upload URLs handed to clients (which send no credentials on
    /// the upload itself). Every replica must share it; unset, it is derived from the admin
    /// token, or made up per process (one replica only).
    pub upload_signing_key: Option<String>,
    /// Pull-through: the Hub (an `HF_ENDPOINT`, often another Airlock) misses come from.
    pub upstream: Option<String>,
    /// How long a branch or tag fetched from the upstream is served before it is checked again.
    #[serde(with = "humantime_serde")]
    pub upstream_ttl: std::time::Duration,
    /// Environment variable with the upstream's token (`HF_TOKEN` there).
    pub upstream_token_env: Option<String>,
    /// Also store each file uploaded through Xet whole, as a blob, besides its xorbs.
    /// Off, the xorbs are the only copy and plain downloads rebuild the file as they
    /// read it: a new revision that changes a few chunks stores only those.
    pub xet_materialize: bool,
    /// Bytes per organization: `{ org = "50GiB" }`; an upload past it is refused (403).
    pub quotas: crate::quota::Quotas,
}

impl Default for HfSettings {
    fn default() -> Self {
        HfSettings {
            upload_signing_key: None,
            upstream: None,
            upstream_ttl: crate::remote::DEFAULT_TTL,
            upstream_token_env: None,
            xet_materialize: false,
            quotas: crate::quota::Quotas::default(),
        }
    }
}

impl HfSettings {
    pub fn upstream(&self) -> crate::remote::UpstreamSettings {
        crate::remote::UpstreamSettings {
            url: self.upstream.clone(),
            ttl: self.upstream_ttl,
            token_env: self.upstream_token_env.clone(),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        self.upstream().validate("hf")?;
        if let Some(k) = &self.upload_signing_key {
            if k.len() < 16 {
                return Err("`hf.upload_signing_key`: too short (at least 16 characters)".into());
            }
        }
        Ok(())
    }
}

/// What the Hub API's handlers share, cheap to clone.
#[derive(Clone, Debug)]
pub struct HfState {
    pub repos: Repos,
    /// Rendered repo-info answers by repo, commit, visibility and query.
    pub info_cache: moka::future::Cache<String, bytes::Bytes>,
    /// Rendered tree pages by repo, commit, path, flags and cursor (`tree.rs`), and
    /// commit-history pages by repo and first commit (`api::commits`).
    list_pages: moka::future::Cache<String, Arc<tree::ListPage>>,
    signing_key: [u8; 32],
    cas_tokens: cas_token::CasTokens,
    fetch_urls: cas_url::FetchSigner,
    pub xet: xet_store::XetStore,
    pub auth: Arc<Auth>,
    pub site: Site,
    /// Pull-through (none unless `[hf] upstream` is set).
    pub upstream: Option<Arc<crate::remote::Upstream>>,
    pub filler: crate::remote::Filler,
    /// `[hf] quotas`: bytes per organization (`quota.rs`).
    pub quotas: crate::quota::Quotas,
}

/// What [`HfState`] is built from besides the store.
pub struct HfDeps {
    /// Raw objects: Xet xorbs (verified by their own hash, not a digest).
    pub store: crate::store::DynStore,
    pub auth: Arc<Auth>,
    pub site: Site,
    pub upstream: Option<Arc<crate::remote::Upstream>>,
    pub filler: crate::remote::Filler,
}

impl HfState {
    pub fn new(
        docs: DocStore,
        blobs: BlobStore,
        settings: &HfSettings,
        admin_token: Option<&str>,
        deps: HfDeps,
    ) -> HfState {
        use sha2::Digest as _;
        let signing_key: [u8; 32] = match (&settings.upload_signing_key, admin_token) {
            (Some(k), _) => sha2::Sha256::digest(k.as_bytes()).into(),
            (None, Some(admin)) => {
                sha2::Sha256::digest(format!("airlock-hf-upload-signing:{admin}").as_bytes()).into()
            }
            (None, None) => rand::random(),
        };
        let (info_bytes, list_bytes) = (
            docs.memory_for(CacheShare::HfRevisions),
            docs.memory_for(CacheShare::HfListPages),
        );
        HfState {
            xet: xet_store::XetStore::new(deps.store, docs.clone())
                .materializing(settings.xet_materialize),
            repos: Repos::new(docs, blobs),
            info_cache: moka::future::Cache::builder()
                .max_capacity(info_bytes)
                .weigher(|k: &String, v: &bytes::Bytes| {
                    (k.len() + v.len()).try_into().unwrap_or(u32::MAX)
                })
                .build(),
            list_pages: moka::future::Cache::builder()
                .max_capacity(list_bytes)
                .weigher(|k: &String, v: &Arc<tree::ListPage>| {
                    (k.len() + v.weight()).try_into().unwrap_or(u32::MAX)
                })
                .expire_after(tree::KeptFor)
                .build(),
            signing_key,
            cas_tokens: cas_token::CasTokens::new(&signing_key),
            fetch_urls: cas_url::FetchSigner::new(&signing_key),
            auth: deps.auth,
            site: deps.site,
            upstream: deps.upstream,
            filler: deps.filler,
            quotas: settings.quotas.clone(),
        }
    }
}

/// Per-request context: who is asking, the query, and the endpoint base URL the client
/// used (absolute URLs in responses must point back at it, `/hf` prefix included).
pub struct Ctx {
    pub identity: Identity,
    pub auth: Arc<Auth>,
    pub params: Vec<(String, String)>,
    pub base: String,
    /// The site's root URL, without the `/hf` prefix the request may have used.
    pub root: String,
}

/// The Hub's routes. The Hub also owns the root namespace (`/{org}/{repo}/resolve/...`),
/// so this router's fallback is the server's.
pub fn routes<S>(state: HfState) -> Router<S> {
    Router::new()
        .route("/api/{*rest}", any(dispatch))
        .route("/hf/{*rest}", any(dispatch))
        .route("/datasets/{*rest}", any(dispatch))
        .route("/spaces/{*rest}", any(dispatch))
        .fallback(dispatch)
        .with_state(Arc::new(state))
}

async fn dispatch(State(state): State<Arc<HfState>>, request: Request) -> Response {
    let raw_path = request.uri().path().to_string();
    let (prefix, path) = match raw_path.strip_prefix("/hf") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => ("/hf", rest.to_string()),
        _ => ("", raw_path.clone()),
    };
    if let Some(rest) = path.strip_prefix(cas::CAS_PATH) {
        return cas::serve(&state, rest, request).await;
    }
    let endpoint = match Endpoint::parse(request.method(), &path) {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    let label = endpoint.label();
    let mut response = match serve(&state, endpoint, prefix, request).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    response.extensions_mut().insert(RouteLabel(label));
    response
}

/// Refuses, before anything is read or fetched, a request whose identity cannot have
/// the permission its endpoint needs. Reads of a repository pass here when anonymous
/// reads are on: whether the repository is public, private or gated is known only once
/// it is loaded (`api::readable`). A refused read looks like a missing repository.
fn precheck(auth: &Auth, identity: &Identity, endpoint: &Endpoint) -> Result<(), HfError> {
    match endpoint.permission() {
        Permission::None => Ok(()),
        Permission::On {
            action: Action::Read,
            ..
        } if auth.anonymous_read() => Ok(()),
        Permission::On { action, name } => {
            match auth.authorize(identity, Protocol::Hf, action, &name) {
                Ok(()) => Ok(()),
                Err(AuthError::Forbidden(_)) if action == Action::Read => Err(
                    HfError::repo_not_found(endpoint.repo().map(|r| r.id.as_str()).unwrap_or("")),
                ),
                Err(e) => Err(e.into()),
            }
        }
        Permission::AnyName(action) => Ok(auth.authorize_some(identity, Protocol::Hf, action)?),
    }
}

async fn serve(
    state: &HfState,
    endpoint: Endpoint,
    prefix: &str,
    request: Request,
) -> Result<Response, HfError> {
    let hf = state;
    // The LFS upload URL authorizes itself; everything else identifies the caller.
    if let Endpoint::LfsUpload { oid } = &endpoint {
        return upload::lfs_upload(hf, oid, request).await;
    }
    // Telemetry carries whatever token hf_xet has (a CAS token): never identified.
    if endpoint == Endpoint::XetTelemetry {
        // Dropped unread, but read (bounded) so the connection stays usable.
        let _ = read_body(request.into_body(), 1024 * 1024).await;
        return Ok(http::StatusCode::OK.into_response());
    }
    let identity = state.auth.authenticate(request.headers())?;
    precheck(&state.auth, &identity, &endpoint)?;
    let root = state.site.base_url(request.headers());
    let ctx = Ctx {
        identity,
        auth: state.auth.clone(),
        params: api::query_params(request.uri().query()),
        base: format!("{root}{prefix}"),
        root,
    };
    use Endpoint::*;
    // Pull-through: what these read is brought in (or revalidated) first.
    match &endpoint {
        RepoInfo { repo, rev } => {
            let rev = rev.as_deref().unwrap_or("main");
            pullthrough::refresh_revision(state.upstream.as_deref(), &hf.repos, repo, rev).await?
        }
        Tree { repo, rev, .. } | PathsInfo { repo, rev } | Resolve { repo, rev, .. } => {
            pullthrough::refresh_revision(state.upstream.as_deref(), &hf.repos, repo, rev).await?
        }
        _ => {}
    }
    match endpoint {
        WhoAmI => api::whoami(&ctx),
        List { kind } => api::list(hf, &ctx, kind).await,
        RepoInfo { repo, rev } => api::repo_info(hf, &ctx, &repo, rev.as_deref()).await,
        Tree { repo, rev, path } => tree::tree(hf, &ctx, &repo, &rev, &path).await,
        PathsInfo { repo, rev } => {
            let (parts, body) = request.into_parts();
            let body = read_body(body, 16 * 1024 * 1024).await?;
            tree::paths_info(hf, &ctx, &repo, &rev, &parts.headers, &body).await
        }
        Refs { repo } => api::refs(hf, &ctx, &repo).await,
        Commits { repo, rev } => api::commits(hf, &ctx, &repo, &rev).await,
        Resolve {
            repo,
            rev,
            path,
            head,
        } => api::resolve(state, &ctx, &repo, &rev, &path, request.headers(), head).await,
        CreateRepo => {
            upload::create_repo(hf, &ctx, read_body(request.into_body(), 1024 * 1024).await?).await
        }
        DeleteRepo => {
            upload::delete_repo(hf, &ctx, read_body(request.into_body(), 1024 * 1024).await?).await
        }
        ValidateYaml => {
            Ok(axum::Json(serde_json::json!({ "errors": [], "warnings": [] })).into_response())
        }
        Preupload { repo, rev } => {
            upload::preupload(
                hf,
                &ctx,
                &repo,
                &rev,
                read_body(request.into_body(), 64 * 1024 * 1024).await?,
            )
            .await
        }
        LfsBatch { repo } => {
            upload::lfs_batch(
                hf,
                &ctx,
                &repo,
                read_body(request.into_body(), 64 * 1024 * 1024).await?,
            )
            .await
        }
        LfsVerify { repo } => {
            upload::lfs_verify(
                hf,
                &ctx,
                &repo,
                read_body(request.into_body(), 1024 * 1024).await?,
            )
            .await
        }
        Commit { repo, rev } => upload::commit(hf, &ctx, &repo, &rev, request.into_body()).await,
        Ref {
            repo,
            kind,
            op,
            path,
        } => {
            let body = match op {
                RefOp::Create => read_body(request.into_body(), 1024 * 1024).await?,
                RefOp::Delete => bytes::Bytes::new(),
            };
            upload::change_ref(hf, &ctx, &repo, kind, op, &path, body).await
        }
        SuperSquash { repo, branch } => {
            let body = read_body(request.into_body(), 1024 * 1024).await?;
            upload::super_squash(hf, &ctx, &repo, &branch, body).await
        }
        XetToken { repo, write } => cas::issue_token(hf, &ctx, &repo, write).await,
        LfsUpload { .. } | XetTelemetry => unreachable!("handled above"),
    }
}

/// A request body as a stream of bytes, for the store or [`read_body`].
fn body_stream(body: axum::body::Body) -> crate::store::ByteStream {
    use futures::TryStreamExt;
    Box::pin(body.into_data_stream().map_err(std::io::Error::other))
}

/// A small request body (JSON), in memory; past `limit` it is refused with a 413.
async fn read_body(body: axum::body::Body, limit: usize) -> Result<bytes::Bytes, HfError> {
    crate::store::collect_limited(body_stream(body), limit)
        .await
        .map_err(|e| {
            HfError::new(
                http::StatusCode::PAYLOAD_TOO_LARGE,
                None,
                format!("request body: {e}"),
            )
        })
}
