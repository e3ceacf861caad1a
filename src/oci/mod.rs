//! The OCI distribution API (distribution-spec v1.1 with referrers) at `/v2/`, and its
//! token service at `/token`.
//!
//! One endpoint serves every upstream registry: a repository is stored under
//! `<host>/<path>` however the client names it (see `names.rs`), so an image pushed as
//! `airlock:8080/docker.io/library/busybox:1.36` is what containerd pulls for
//! `docker.io/library/busybox:1.36` through a hosts.toml mirror (`?ns=docker.io`).
//! Manifests are stored and served byte for byte as pushed, with the pushed media type.

pub mod cli;
mod endpoint;
mod error;
mod import;
mod manifest;
mod names;
mod registry;
mod token;
mod upload;

pub use endpoint::{Endpoint, Reference, Repo};
pub use error::{Code, OciError};
pub use names::canonical;

use crate::auth::{Action, AuthError, Identity, Protocol};
use crate::digest::{Algorithm, Digest};
use crate::download::blob_response;
use crate::observe::RouteLabel;
use crate::server::AppState;
use crate::store::{ByteStream, StoreError};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use error::Result;
use futures::TryStreamExt;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use registry::{ManifestEntry, Registry};
use serde::Deserialize;
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
}

impl Default for OciSettings {
    fn default() -> Self {
        OciSettings {
            default_registry: "docker.io".into(),
            token_secret: None,
            token_secret_env: None,
            token_ttl: Duration::from_secs(300),
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
        if self.token_ttl < Duration::from_secs(60) {
            return Err(
                "`oci.token_ttl`: at least 60s (clients refresh tokens as they expire)".into(),
            );
        }
        Ok(())
    }

    pub fn token_secret(&self) -> Option<String> {
        self.token_secret.clone().or_else(|| {
            self.token_secret_env
                .as_ref()
                .and_then(|v| std::env::var(v).ok())
        })
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2", any(dispatch))
        .route("/v2/", any(dispatch))
        .route("/v2/{*rest}", any(dispatch))
        .route("/token", any(token::endpoint))
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
fn location(state: &AppState, _headers: &HeaderMap, path: &str) -> HeaderValue {
    let url = match &state.config.public_url {
        Some(base) => format!("{}{path}", base.as_str().trim_end_matches('/')),
        None => path.to_string(),
    };
    HeaderValue::from_str(&url).expect("names and digests are ascii")
}

fn blob_location(
    state: &AppState,
    headers: &HeaderMap,
    repo: &Repo,
    digest: &Digest,
) -> HeaderValue {
    let name = repo.url_name(&state.config.oci.default_registry);
    location(state, headers, &format!("/v2/{name}/blobs/{digest}"))
}

fn digest_header(digest: &Digest) -> HeaderValue {
    HeaderValue::from_str(&digest.to_string()).expect("ascii")
}

/// Every registry request: parse the raw path into an [`Endpoint`], authorize, serve.
async fn dispatch(State(state): State<AppState>, request: Request) -> Response {
    let query = request.uri().query().unwrap_or("").to_string();
    let ns = query_one(&query, "ns").filter(|n| !n.is_empty());
    let parsed = Endpoint::parse(
        request.uri().path(),
        ns.as_deref(),
        &state.config.oci.default_registry,
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
    state: &AppState,
    headers: &HeaderMap,
    e: AuthError,
    scope: Option<String>,
) -> OciError {
    match e {
        AuthError::Forbidden(_) => e.into(),
        _ => OciError::from(e).with_challenge(token::challenge(state, headers, scope.as_deref())),
    }
}

async fn serve(state: &AppState, endpoint: Endpoint, request: Request) -> Result<Response> {
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
    let registry = Registry::new(state);
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
        Endpoint::Catalog => catalog(state, &registry, &identity, &query).await,
        Endpoint::Tags { repo } => tags(&registry, &repo, &query).await,
        Endpoint::Manifest { repo, reference } => match method {
            Method::PUT => put_manifest(state, &registry, &repo, &reference, request).await,
            Method::DELETE => delete_manifest(&registry, &repo, &reference).await,
            _ => get_manifest(&registry, &repo, &reference, &headers, head).await,
        },
        Endpoint::Blob { repo, digest } => match method {
            Method::DELETE => delete_blob(&registry, &repo, &digest).await,
            _ => get_blob(&registry, &repo, &digest, &headers, head).await,
        },
        Endpoint::Referrers { repo, digest } => referrers(&registry, &repo, &digest, &query).await,
        Endpoint::UploadStart { repo } => upload::start(state, &repo, &identity, request).await,
        Endpoint::Upload { repo, id } => match method {
            Method::PATCH => Ok(upload::patch(state, &repo, &id, request).await),
            Method::PUT => Ok(upload::finish(state, &repo, &id, request).await),
            Method::DELETE => upload::cancel(state, &repo, &id).await,
            _ => upload::status(state, &repo, &id, &headers).await,
        },
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

fn manifest_unknown(repo: &Repo, reference: &impl std::fmt::Display) -> OciError {
    OciError::new(
        Code::ManifestUnknown,
        format!(
            "manifest `{reference}` is not in repository `{}`",
            repo.name
        ),
    )
}

async fn get_manifest(
    registry: &Registry,
    repo: &Repo,
    reference: &Reference,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response> {
    let doc = registry
        .repo(&repo.name)
        .await?
        .ok_or_else(|| manifest_unknown(repo, reference))?;
    let digest = match reference {
        Reference::Tag(tag) => doc
            .tags
            .get(tag)
            .ok_or_else(|| manifest_unknown(repo, reference))?,
        Reference::Digest(d) => d,
    };
    let entry = doc
        .manifests
        .get(digest)
        .ok_or_else(|| manifest_unknown(repo, reference))?;
    let etag = format!("\"{digest}\"");
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut r = if head || not_modified {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(registry.manifest_bytes(digest).await?))
    };
    if not_modified {
        *r.status_mut() = StatusCode::NOT_MODIFIED;
    }
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&entry.media_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if !not_modified {
        h.insert(header::CONTENT_LENGTH, entry.size.into());
    }
    h.insert("docker-content-digest", digest_header(digest));
    h.insert(header::ETAG, HeaderValue::from_str(&etag).expect("ascii"));
    Ok(r)
}

async fn put_manifest(
    state: &AppState,
    registry: &Registry,
    repo: &Repo,
    reference: &Reference,
    request: Request,
) -> Result<Response> {
    let too_large = || {
        OciError::new(
            Code::SizeInvalid,
            format!("manifest larger than {MAX_MANIFEST_BYTES} bytes"),
        )
        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    let headers = request.headers().clone();
    let query = request.uri().query().unwrap_or("").to_string();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_DRAIN_BYTES) {
        return Err(too_large());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_string());
    // Read past the limit (up to a bound) before refusing, so the client sees the 413
    // rather than a connection reset in the middle of its upload.
    let mut body = request_body(request);
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(chunk) = futures::StreamExt::next(&mut body).await {
        let chunk = chunk.map_err(|e| OciError::from(StoreError::Body(e)))?;
        seen += chunk.len();
        if seen > MAX_DRAIN_BYTES {
            break;
        }
        if seen <= MAX_MANIFEST_BYTES {
            buf.extend_from_slice(&chunk);
        }
    }
    if seen > MAX_MANIFEST_BYTES {
        return Err(too_large());
    }
    let bytes = buf.freeze();
    let inspected = manifest::inspect(&bytes, content_type.as_deref())?;
    let digest = match reference {
        Reference::Digest(d) => {
            let actual = Digest::of_bytes(d.algorithm(), &bytes);
            if &actual != d {
                return Err(OciError::new(
                    Code::DigestInvalid,
                    format!("the manifest's digest is {actual}, not {d}"),
                ));
            }
            actual
        }
        Reference::Tag(_) => Digest::of_bytes(Algorithm::Sha256, &bytes),
    };
    let mut tags: Vec<String> = query_all(&query, "tag");
    if let Some(bad) = tags.iter().find(|t| !names::is_valid_tag(t)) {
        return Err(OciError::new(
            Code::TagInvalid,
            format!("`{bad}` is not a valid tag"),
        ));
    }
    if let Reference::Tag(t) = reference {
        tags.push(t.clone());
    }

    // Every referenced blob must be in this repository already (checked concurrently:
    // on S3 each check is a round trip).
    let checks = inspected.blobs.iter().map(|d| async move {
        match registry.blob_linked(&repo.name, d).await {
            Ok(true) => Ok(None),
            Ok(false) => Ok(Some(d.clone())),
            Err(e) => Err(e),
        }
    });
    let missing = futures::future::try_join_all(checks).await?;
    if let Some(d) = missing.into_iter().flatten().next() {
        return Err(OciError::new(
            Code::ManifestBlobUnknown,
            format!(
                "blob {d} is not in repository `{}`; push it first",
                repo.name
            ),
        ));
    }
    registry
        .blobs()
        .put(
            &digest,
            crate::store::bytes_stream(bytes.clone()),
            Some(bytes.len() as u64),
        )
        .await?;
    let entry = ManifestEntry::new(&inspected, bytes.len() as u64);
    registry
        .update_repo(&repo.name, |doc| {
            if let Some(child) = inspected
                .children
                .iter()
                .find(|c| !doc.manifests.contains_key(c))
            {
                return Err(OciError::new(
                    Code::ManifestBlobUnknown,
                    format!(
                        "manifest {child} is not in repository `{}`; push it first",
                        repo.name
                    ),
                ));
            }
            let mut changed = doc.manifests.get(&digest) != Some(&entry);
            doc.manifests.insert(digest.clone(), entry.clone());
            for tag in &tags {
                changed |= doc.tags.insert(tag.clone(), digest.clone()).as_ref() != Some(&digest);
            }
            Ok(changed)
        })
        .await?;
    tracing::info!(repo = %repo.name, %digest, tags = ?tags, "oci manifest pushed");

    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::CREATED;
    let h = r.headers_mut();
    h.insert(
        header::LOCATION,
        location(
            state,
            &headers,
            &format!(
                "/v2/{}/manifests/{digest}",
                repo.url_name(&state.config.oci.default_registry)
            ),
        ),
    );
    h.insert("docker-content-digest", digest_header(&digest));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    if let Some(subject) = &inspected.subject {
        h.insert("oci-subject", digest_header(subject));
    }
    for tag in query_all(&query, "tag") {
        if let Ok(v) = HeaderValue::from_str(&tag) {
            h.append("oci-tag", v);
        }
    }
    Ok(r)
}

fn accepted() -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::ACCEPTED;
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

async fn delete_manifest(
    registry: &Registry,
    repo: &Repo,
    reference: &Reference,
) -> Result<Response> {
    let mut found = false;
    registry
        .update_repo(&repo.name, |doc| {
            found = match reference {
                Reference::Tag(tag) => doc.tags.remove(tag).is_some(),
                Reference::Digest(d) => {
                    doc.tags.retain(|_, target| target != d);
                    doc.manifests.remove(d).is_some()
                }
            };
            Ok(found)
        })
        .await?;
    if !found {
        return Err(manifest_unknown(repo, reference));
    }
    tracing::info!(repo = %repo.name, %reference, "oci manifest deleted");
    Ok(accepted())
}

/// A blob is in a repository when it was pushed or mounted there, or is one of its
/// manifests (clients may fetch manifests through the blob endpoint).
async fn in_repo(registry: &Registry, repo: &Repo, digest: &Digest) -> Result<bool> {
    if registry.blob_linked(&repo.name, digest).await? {
        return Ok(true);
    }
    Ok(registry
        .repo(&repo.name)
        .await?
        .is_some_and(|doc| doc.manifests.contains_key(digest)))
}

fn blob_unknown(repo: &Repo, digest: &Digest) -> OciError {
    OciError::new(
        Code::BlobUnknown,
        format!("blob {digest} is not in repository `{}`", repo.name),
    )
}

async fn get_blob(
    registry: &Registry,
    repo: &Repo,
    digest: &Digest,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response> {
    if !in_repo(registry, repo, digest).await? {
        return Err(blob_unknown(repo, digest));
    }
    let mut r = blob_response(registry.blobs(), digest, headers, head)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => blob_unknown(repo, digest),
            other => other.into(),
        })?;
    r.headers_mut()
        .insert("docker-content-digest", digest_header(digest));
    Ok(r)
}

async fn delete_blob(registry: &Registry, repo: &Repo, digest: &Digest) -> Result<Response> {
    if !registry.blob_linked(&repo.name, digest).await? {
        return Err(blob_unknown(repo, digest));
    }
    // The content stays in the shared blob store: other repositories may hold it.
    registry.unlink_blob(&repo.name, digest).await?;
    tracing::info!(repo = %repo.name, %digest, "oci blob unlinked");
    Ok(accepted())
}

/// `n` and `last` of a paginated list.
fn page_params(query: &str) -> Result<(Option<usize>, Option<String>)> {
    let n = match query_one(query, "n") {
        None => None,
        Some(n) => Some(n.parse::<usize>().map_err(|_| {
            OciError::new(
                Code::PaginationNumberInvalid,
                format!("n=`{n}` is not a number"),
            )
        })?),
    };
    Ok((n.map(|n| n.min(MAX_PAGE)), query_one(query, "last")))
}

/// One page of a sorted list, with the `Link` to the next if there is more.
fn paginate(
    items: Vec<String>,
    n: Option<usize>,
    last: Option<&str>,
    path: &str,
    ns: Option<&str>,
) -> (Vec<String>, Option<String>) {
    let after: Vec<String> = items
        .into_iter()
        .filter(|t| last.is_none_or(|l| t.as_str() > l))
        .collect();
    let limit = n.unwrap_or(MAX_PAGE);
    if after.len() <= limit {
        return (after, None);
    }
    let page: Vec<String> = after.into_iter().take(limit).collect();
    let link = page.last().map(|l| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("n", &limit.to_string())
            .append_pair("last", l);
        if let Some(ns) = ns {
            // The next page must name the same upstream as this one.
            q.append_pair("ns", ns);
        }
        let q = q.finish();
        format!("<{path}?{q}>; rel=\"next\"")
    });
    (page, link)
}

fn list_response(body: serde_json::Value, link: Option<String>) -> Response {
    let mut r = json_response(StatusCode::OK, body.to_string(), false);
    if let Some(link) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        r.headers_mut().insert(header::LINK, link);
    }
    r
}

async fn tags(registry: &Registry, repo: &Repo, query: &str) -> Result<Response> {
    let (n, last) = page_params(query)?;
    let doc = registry.repo(&repo.name).await?.ok_or_else(|| {
        OciError::new(Code::NameUnknown, format!("no repository `{}`", repo.name))
    })?;
    let all: Vec<String> = doc.tags.keys().cloned().collect();
    let (page, link) = paginate(
        all,
        n,
        last.as_deref(),
        &format!("/v2/{}/tags/list", repo.path),
        query_one(query, "ns").as_deref(),
    );
    Ok(list_response(
        serde_json::json!({"name": repo.path, "tags": page}),
        link,
    ))
}

async fn catalog(
    state: &AppState,
    registry: &Registry,
    identity: &Identity,
    query: &str,
) -> Result<Response> {
    let (n, last) = page_params(query)?;
    let visible: Vec<String> = registry
        .catalog()
        .await?
        .into_iter()
        .filter(|name| {
            state
                .auth
                .authorize(identity, Protocol::Oci, Action::Read, name)
                .is_ok()
        })
        .collect();
    if visible.is_empty() && matches!(identity, Identity::Anonymous) && !state.auth.anonymous_read()
    {
        return Err(OciError::from(AuthError::Unauthenticated));
    }
    let (page, link) = paginate(visible, n, last.as_deref(), "/v2/_catalog", None);
    Ok(list_response(
        serde_json::json!({"repositories": page}),
        link,
    ))
}

async fn referrers(
    registry: &Registry,
    repo: &Repo,
    subject: &Digest,
    query: &str,
) -> Result<Response> {
    let filter = query_one(query, "artifactType");
    let doc = registry.repo(&repo.name).await?;
    let mut manifests = Vec::new();
    for (digest, entry) in doc.iter().flat_map(|d| d.manifests.iter()) {
        if entry.subject.as_ref() != Some(subject) {
            continue;
        }
        if filter
            .as_ref()
            .is_some_and(|f| entry.artifact_type.as_ref() != Some(f))
        {
            continue;
        }
        let mut descriptor = serde_json::json!({
            "mediaType": entry.media_type,
            "digest": digest.to_string(),
            "size": entry.size,
        });
        if let Some(t) = &entry.artifact_type {
            descriptor["artifactType"] = t.clone().into();
        }
        if let Some(a) = &entry.annotations {
            descriptor["annotations"] = serde_json::to_value(a).expect("strings");
        }
        manifests.push(descriptor);
    }
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_INDEX,
        "manifests": manifests,
    });
    let mut r = json_response(StatusCode::OK, body.to_string(), false);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(manifest::OCI_INDEX),
    );
    if filter.is_some() {
        r.headers_mut().insert(
            "oci-filters-applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(r)
}
