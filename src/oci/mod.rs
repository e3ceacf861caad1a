//! The OCI distribution API (distribution-spec v1.1 with referrers) at `/v2/`, and its
//! token service at `/token`.
//!
//! One endpoint serves every upstream registry: a repository is stored under
//! `<host>/<path>` however the client names it (see `names.rs`), so an image pushed as
//! `airlock:8080/docker.io/library/busybox:1.36` is what containerd pulls for
//! `docker.io/library/busybox:1.36` through a hosts.toml mirror (`?ns=docker.io`).
//! Manifests are stored and served byte for byte as pushed, with the pushed media type.

mod blobs;
mod discovery;
mod endpoint;
mod error;
pub mod import;
pub mod manifest;
mod manifests;
pub mod names;
pub mod pullthrough;
mod quota;
pub mod registry;
pub mod synthesized;
mod token;
mod upload;

pub use endpoint::{Endpoint, Reference, Repo};
pub use error::{Code, OciError};
pub use names::canonical;
pub use upload::{
    purge as purge_uploads, purge_periodically as purge_uploads_periodically,
    Purged as PurgedUploads,
};

use crate::auth::Auth;
use crate::auth::{Action, AuthError, Identity, Protocol};
use crate::digest::{Algorithm, Digest};
use crate::download::blob_response;
use crate::observe::RouteLabel;
use crate::site::Site;
use crate::store::{ByteStream, StoreError};
use crate::store::{DocStore, DynStore};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use blobs::{delete_blob, get_blob};
use discovery::{catalog, referrers, tags};
use error::Result;
use futures::TryStreamExt;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use manifests::{delete_manifest, get_manifest, put_manifest};
use registry::{ManifestEntry, Registry};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// The largest manifest accepted (the spec asks for at least 4 MiB; containerd refuses
/// larger ones anyway).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// How much of an oversized manifest is read (and dropped) before answering 413.
const MAX_DRAIN_BYTES: usize = 4 * MAX_MANIFEST_BYTES;
/// The most tags or repositories one page lists, whatever `n` asks.
const MAX_PAGE: usize = 10_000;

/// `[oci]` in the config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OciSettings {
    /// The upstream of names that carry neither a host prefix nor `?ns=`.
    pub default_registry: String,
    /// Key material for `/token` tokens; unset: derived from the configured credentials.
    pub token_secret: Option<String>,
    /// ... or the environment variable holding it.
    pub token_secret_env: Option<String>,
    /// How long a `/token` token is valid.
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    /// Pull-through: the registry misses are fetched from (often another Airlock).
    pub upstream: Option<String>,
    /// With `upstream`: the one registry host it is (e.g. `docker.io`), whose names it
    /// takes without the host. Unset: it takes host-prefixed names, as Airlock does.
    pub upstream_registry: Option<String>,
    /// How long a tag fetched from the upstream is served before it is checked again.
    #[serde(with = "humantime_serde")]
    pub upstream_ttl: Duration,
    /// Environment variable with the credential for the upstream's token service.
    pub upstream_token_env: Option<String>,
    /// Token realms on another host than the upstream that may be sent its credential
    /// (e.g. `https://auth.docker.io/token`); a realm on the upstream's host always may.
    pub upstream_token_realms: Vec<String>,
    /// `serve` removes upload sessions started longer ago than this (what clients
    /// abandoned); `0s` leaves them to `airlock oci purge-uploads`.
    #[serde(with = "humantime_serde")]
    pub purge_uploads_after: Duration,
    /// Bytes per namespace: `{ "docker.io/team" = "10GiB" }` (`oci/quota.rs`).
    pub quotas: crate::quota::Quotas,
}

impl Default for OciSettings {
    fn default() -> Self {
        OciSettings {
            default_registry: "docker.io".into(),
            token_secret: None,
            token_secret_env: None,
            token_ttl: Duration::from_secs(300),
            upstream: None,
            upstream_registry: None,
            upstream_ttl: crate::remote::DEFAULT_TTL,
            upstream_token_env: None,
            upstream_token_realms: Vec::new(),
            // Distribution's default: a week covers any upload a client still resumes.
            purge_uploads_after: Duration::from_secs(7 * 24 * 3600),
            quotas: crate::quota::Quotas::default(),
        }
    }
}

impl OciSettings {
    pub fn validate(&self) -> Result<(), String> {
        if canonical("x", Some(&self.default_registry), "docker.io").is_err()
            || self.default_registry.contains('/')
        {
            return Err(format!(
                "`oci.default_registry`: `{}` is not a registry host; write e.g. docker.io",
                self.default_registry
            ));
        }
        if self.token_secret.is_some() && self.token_secret_env.is_some() {
            return Err("`oci`: give at most one of `token_secret` and `token_secret_env`".into());
        }
        if let Some(var) = &self.token_secret_env {
            if std::env::var(var).is_err() {
                return Err(format!(
                    "`oci.token_secret_env`: environment variable {var} is not set"
                ));
            }
        }
        if let Some(secret) = self.token_secret() {
            crate::auth::check_secret_strength(&secret).map_err(|p| {
                format!("`oci.token_secret`: {p}; generate one with `openssl rand -hex 32`")
            })?;
        }
        self.upstream().validate("oci")?;
        for realm in &self.upstream_token_realms {
            if !url::Url::parse(realm).is_ok_and(|u| u.scheme() == "https" || u.scheme() == "http")
            {
                return Err(format!(
                    "`oci.upstream_token_realms`: `{realm}` is not an http(s) URL; write e.g. https://auth.docker.io/token"
                ));
            }
        }
        if let Some(host) = &self.upstream_registry {
            if canonical("x", Some(host), "docker.io").is_err() || host.contains('/') {
                return Err(format!(
                    "`oci.upstream_registry`: `{host}` is not a registry host; write e.g. docker.io"
                ));
            }
        }
        if self.token_ttl < Duration::from_secs(60) {
            return Err(
                "`oci.token_ttl`: at least 60s (clients refresh tokens as they expire)".into(),
            );
        }
        Ok(())
    }

    pub fn upstream(&self) -> crate::remote::UpstreamSettings {
        crate::remote::UpstreamSettings {
            url: self.upstream.clone(),
            ttl: self.upstream_ttl,
            token_env: self.upstream_token_env.clone(),
        }
    }

    pub fn token_secret(&self) -> Option<String> {
        self.token_secret.clone().or_else(|| {
            self.token_secret_env
                .as_ref()
                .and_then(|v| std::env::var(v).ok())
        })
    }
}

/// What the registry's handlers share: the registry itself, where upload sessions
/// live, who may do what, and the settings of `[oci]`.
#[derive(Clone, Debug)]
pub struct OciState {
    pub registry: Registry,
    /// Upload sessions' chunks (`uploads/oci/`), written and read as raw objects.
    pub store: DynStore,
    /// Upload sessions' state documents.
    pub docs: DocStore,
    pub auth: Arc<Auth>,
    pub settings: Arc<OciSettings>,
    pub site: Site,
    /// Pull-through (none unless `[oci] upstream` is set).
    pub upstream: Option<Arc<pullthrough::OciUpstream>>,
    pub filler: crate::remote::Filler,
    /// A reserved name space whose images are made, not stored (the model images).
    pub synthesized: Option<Arc<dyn synthesized::Synthesizer>>,
}

/// `/v2/...` and `/token`.
pub fn routes<S>(state: OciState) -> Router<S> {
    Router::new()
        .route("/v2", any(dispatch))
        .route("/v2/", any(dispatch))
        .route("/v2/{*rest}", any(dispatch))
        .route("/token", any(token::endpoint))
        .with_state(Arc::new(state))
}

/// Headers every registry response carries.
fn common_headers(response: &mut Response, ns: Option<&str>) {
    let h = response.headers_mut();
    h.insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    if let Some(ns) = ns.and_then(|n| HeaderValue::from_str(n).ok()) {
        h.insert("oci-namespace", ns);
    }
}

fn error_response(e: OciError) -> Response {
    e.into_response()
}

/// The first value of a query parameter.
fn query_one(query: &str, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn query_all(query: &str, key: &str) -> Vec<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
}

fn request_body(request: Request) -> ByteStream {
    Box::pin(
        request
            .into_body()
            .into_data_stream()
            .map_err(std::io::Error::other),
    )
}

/// A URL for a `Location` header: absolute under `public_url`, else a path.
fn location(state: &OciState, path: &str) -> HeaderValue {
    let url = match state.site.public_url() {
        Some(base) => format!("{base}{path}"),
        None => path.to_string(),
    };
    HeaderValue::from_str(&url).expect("names and digests are ascii")
}

fn blob_location(state: &OciState, repo: &Repo, digest: &Digest) -> HeaderValue {
    let name = repo.url_name(&state.settings.default_registry);
    location(state, &format!("/v2/{name}/blobs/{digest}"))
}

fn digest_header(digest: &Digest) -> HeaderValue {
    HeaderValue::from_str(&digest.to_string()).expect("ascii")
}

/// Every registry request: parse the raw path into an [`Endpoint`], authorize, serve.
async fn dispatch(State(state): State<Arc<OciState>>, request: Request) -> Response {
    let query = request.uri().query().unwrap_or("").to_string();
    let ns = query_one(&query, "ns").filter(|n| !n.is_empty());
    let parsed = Endpoint::parse(
        request.uri().path(),
        ns.as_deref(),
        &state.settings.default_registry,
    );
    let mut response = match parsed {
        Err(e) => e.into_response(),
        Ok(endpoint) => {
            let label = endpoint.label(request.method());
            let mut r = serve(&state, endpoint, request)
                .await
                .unwrap_or_else(IntoResponse::into_response);
            r.extensions_mut().insert(RouteLabel(label));
            r
        }
    };
    common_headers(&mut response, ns.as_deref());
    response
}

/// Refuses with the token service's challenge for the scope the request needs.
fn auth_refusal(
    state: &OciState,
    headers: &HeaderMap,
    e: AuthError,
    scope: Option<String>,
) -> OciError {
    match e {
        AuthError::Forbidden(_) => e.into(),
        _ => OciError::from(e).with_challenge(token::challenge(state, headers, scope.as_deref())),
    }
}

async fn serve(state: &OciState, endpoint: Endpoint, request: Request) -> Result<Response> {
    let method = request.method().clone();
    let Some(action) = endpoint.action(&method) else {
        let mut r = OciError::new(Code::Unsupported, format!("{method} is not supported here"))
            .into_response();
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(endpoint.allowed()));
        return Ok(r);
    };
    let headers = request.headers().clone();
    let identity =
        token::identify(state, &headers).map_err(|e| auth_refusal(state, &headers, e, None))?;
    let reserved = endpoint
        .repo()
        .and_then(|repo| Some((repo, state.synthesized.as_deref()?)))
        .filter(|(repo, synth)| synth.claims(&repo.name));
    if let Some((repo, synth)) = reserved {
        let scope = format!("repository:{}:pull", repo.name);
        return serve_synthesized(
            synth,
            &state.registry,
            &endpoint,
            action,
            &identity,
            &headers,
            method == Method::HEAD,
        )
        .await
        .map_err(|e| match e.code {
            Code::Unauthorized => e.with_challenge(token::challenge(state, &headers, Some(&scope))),
            _ => e,
        });
    }
    if let Some(repo) = endpoint.repo() {
        state
            .auth
            .authorize(&identity, Protocol::Oci, action, &repo.name)
            .map_err(|e| {
                let scope = format!("repository:{}:{}", repo.name, token::scope_actions(action));
                auth_refusal(state, &headers, e, Some(scope))
            })?;
    }
    let head = method == Method::HEAD;
    let query = request.uri().query().unwrap_or("").to_string();
    let registry = &state.registry;
    match endpoint {
        Endpoint::Base => {
            // Registry clients decide from this answer whether to authenticate at all,
            // so callers without credentials are always challenged (they then get a
            // pull token, anonymous or not).
            let anonymous_ok =
                state.auth.anonymous_read() && headers.contains_key(header::AUTHORIZATION);
            if matches!(identity, Identity::Anonymous) && !anonymous_ok {
                return Err(auth_refusal(
                    state,
                    &headers,
                    AuthError::Unauthenticated,
                    None,
                ));
            }
            Ok(json_response(StatusCode::OK, "{}".into(), head))
        }
        Endpoint::Catalog => catalog(state, registry, &identity, &query).await,
        Endpoint::Tags { repo } => tags(registry, &repo, &query).await,
        Endpoint::Manifest { repo, reference } => match method {
            Method::PUT => put_manifest(state, registry, &repo, &reference, request).await,
            Method::DELETE => delete_manifest(registry, &repo, &reference).await,
            _ => {
                pullthrough::refresh_manifest(
                    state.upstream.as_deref(),
                    registry,
                    &repo,
                    &reference,
                )
                .await?;
                get_manifest(registry, &repo, &reference, &headers, head).await
            }
        },
        Endpoint::Blob { repo, digest } => match method {
            Method::DELETE => delete_blob(registry, &repo, &digest).await,
            _ => get_blob(state, registry, &repo, &digest, &headers, head).await,
        },
        Endpoint::Referrers { repo, digest } => referrers(registry, &repo, &digest, &query).await,
        Endpoint::UploadStart { repo } => upload::start(state, &repo, &identity, request).await,
        Endpoint::Upload { repo, id } => match method {
            Method::PATCH => Ok(upload::patch(state, &repo, &id, request).await),
            Method::PUT => Ok(upload::finish(state, &repo, &id, request).await),
            Method::DELETE => upload::cancel(state, &repo, &id).await,
            _ => upload::status(state, &repo, &id).await,
        },
    }
}

/// A request under a reserved name: reads answered by the synthesizer, writes refused.
async fn serve_synthesized(
    synth: &dyn synthesized::Synthesizer,
    registry: &Registry,
    endpoint: &Endpoint,
    action: Action,
    identity: &Identity,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response> {
    if action != Action::Read {
        return Err(OciError::new(Code::Denied, synth.read_only_reason()));
    }
    match endpoint {
        Endpoint::Tags { repo } => {
            let tags = synth.tags(identity, &repo.name).await?;
            let body = serde_json::json!({"name": repo.path, "tags": tags});
            Ok(json_response(StatusCode::OK, body.to_string(), false))
        }
        Endpoint::Manifest { repo, reference } => {
            let m = synth.manifest(identity, &repo.name, reference).await?;
            let digest = Digest::of_bytes(Algorithm::Sha256, &m.bytes);
            let len = m.bytes.len();
            let mut r = Response::new(if head {
                Body::empty()
            } else {
                Body::from(m.bytes)
            });
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(m.media_type));
            h.insert(header::CONTENT_LENGTH, len.into());
            h.insert("docker-content-digest", digest_header(&digest));
            h.insert(
                header::ETAG,
                HeaderValue::from_str(&format!("\"{digest}\"")).expect("ascii"),
            );
            Ok(r)
        }
        Endpoint::Blob { repo, digest } => {
            let blob = synth.blob(identity, &repo.name, digest).await?;
            let unknown = || {
                OciError::new(
                    Code::BlobUnknown,
                    format!("blob {digest} is not in repository `{}`", repo.name),
                )
            };
            let mut r = match blob {
                synthesized::SynthBlob::Stored(stored) => {
                    blob_response(registry.blobs(), &stored, headers, head).await
                }
                synthesized::SynthBlob::Generated { size, reader } => {
                    let etag = format!("\"{}\"", digest.hex());
                    crate::download::ranged_response(size, &etag, headers, head, |range| {
                        reader.read(range)
                    })
                    .await
                }
            }
            .map_err(|e| match e {
                StoreError::NotFound(_) => unknown(),
                other => other.into(),
            })?;
            r.headers_mut()
                .insert("docker-content-digest", digest_header(digest));
            Ok(r)
        }
        _ => Err(OciError::new(
            Code::Unsupported,
            "only tags, manifests and blobs are served under this name",
        )),
    }
}

fn json_response(status: StatusCode, body: String, head: bool) -> Response {
    let len = body.len();
    let mut r = if head {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(body))
    };
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(header::CONTENT_LENGTH, len.into());
    r
}

fn accepted() -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::ACCEPTED;
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}
