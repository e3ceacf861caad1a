//! The Python package index: the simple repository API (PEP 503/691 with 592, 658/714
//! and 700) that pip and uv read, the legacy upload API twine writes to, and wheelhouse
//! import. The default index answers at `/simple/` and `/legacy/`; every index, the
//! default one included, also at `/pypi/<index>/simple/` and `/pypi/<index>/legacy/`.
//!
//! Files are served at `/pypi/<index>/files/<project>/<sha256>/<filename>` (and
//! `<filename>.metadata`): stable forever, since a filename can never change content.

mod endpoint;
mod error;
pub mod ingest;
mod metadata;
mod names;
pub mod project;
pub mod pullthrough;
mod render;
mod root;
mod upload;

pub use endpoint::Endpoint;
pub use error::PypiError;
pub use names::normalize;
pub use project::Index;

use crate::auth::{Auth, Permission, Protocol};
use crate::download::blob_response;
use crate::observe::RouteLabel;
use crate::site::Site;
use crate::store::CacheShare;
use crate::store::{BlobStore, DocStore};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use http::{header, HeaderValue, Method, StatusCode};
use project::FileEntry;
use render::{negotiate, Format, ProjectPage};
use serde::Deserialize;
use std::sync::Arc;

pub const DEFAULT_INDEX: &str = "default";

/// `[pypi]` in the config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PypiSettings {
    /// Named indexes besides `default`, e.g. one per team or platform.
    pub indexes: Vec<String>,
    /// Largest file an upload may carry.
    pub max_upload_bytes: u64,
    /// Pull-through for the default index: a PEP 691/503 simple index URL.
    pub upstream: Option<String>,
    /// How long a project page fetched from the upstream is served before it is checked again.
    #[serde(with = "humantime_serde")]
    pub upstream_ttl: std::time::Duration,
    /// Environment variable with a bearer token for the upstream.
    pub upstream_token_env: Option<String>,
    /// Projects whose local files may be listed together with the upstream's. Any other
    /// project with a file uploaded or imported here is never merged with the upstream
    /// (dependency confusion: the upstream's `99.0` would win over the local `1.0`).
    pub upstream_merge: Vec<String>,
    /// Bytes per index: `{ team = "10GiB" }`; an upload past it is refused (403).
    pub quotas: crate::quota::Quotas,
}

impl Default for PypiSettings {
    fn default() -> Self {
        PypiSettings {
            indexes: Vec::new(),
            max_upload_bytes: 20 * 1024 * 1024 * 1024,
            upstream: None,
            upstream_ttl: crate::remote::DEFAULT_TTL,
            upstream_token_env: None,
            upstream_merge: Vec::new(),
            quotas: crate::quota::Quotas::default(),
        }
    }
}

impl PypiSettings {
    pub fn validate(&self) -> Result<(), String> {
        self.upstream().validate("pypi")?;
        for name in &self.upstream_merge {
            if !names::is_valid_name(name) {
                return Err(format!(
                    "`pypi.upstream_merge`: `{name}` is not a project name (letters, digits, '.', '-', '_'; starting and ending with a letter or digit)"
                ));
            }
        }
        if !self.upstream_merge.is_empty() && self.upstream.is_none() {
            return Err("`pypi.upstream_merge` needs `pypi.upstream`".into());
        }
        for name in &self.indexes {
            let ok = !name.is_empty()
                && name.len() <= 64
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                })
                && name.as_bytes()[0].is_ascii_alphanumeric();
            if !ok || name == DEFAULT_INDEX {
                return Err(format!(
                    "`pypi.indexes`: `{name}` is not a usable index name (lowercase letters, digits, '-', '_'; not `default`)"
                ));
            }
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

    pub fn has_index(&self, name: &str) -> bool {
        name == DEFAULT_INDEX || self.indexes.iter().any(|i| i == name)
    }
}

/// `/simple/...`, `/legacy/` and `/pypi/<index>/...`.
pub fn routes<S>(state: PypiState) -> Router<S> {
    Router::new()
        .route("/simple", any(dispatch))
        .route("/simple/", any(dispatch))
        .route("/simple/{*rest}", any(dispatch))
        .route("/legacy", any(dispatch))
        .route("/legacy/", any(dispatch))
        .route("/pypi/{*rest}", any(dispatch))
        .with_state(Arc::new(state))
}

/// Every PyPI request: parse the raw path into an [`Endpoint`], check access, serve.
async fn dispatch(State(state): State<Arc<PypiState>>, request: Request) -> Response {
    let endpoint = match Endpoint::parse(request.method(), request.uri().path()) {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    let label = endpoint.label();
    let mut response = match serve(&state, endpoint, request).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    response.extensions_mut().insert(RouteLabel(label));
    response
}

async fn serve(
    state: &PypiState,
    endpoint: Endpoint,
    request: Request,
) -> Result<Response, PypiError> {
    if let Some(index) = endpoint.index() {
        if !state.settings.has_index(index) {
            return Err(PypiError::not_found(format!(
                "no index named `{index}`; this server has: {}",
                std::iter::once(DEFAULT_INDEX)
                    .chain(state.settings.indexes.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    // Before any store or upstream work; an upload's body is not read before this.
    let identity = state.auth.authenticate(request.headers())?;
    match endpoint.permission() {
        Permission::None => {}
        Permission::On { action, name } => {
            state
                .auth
                .authorize(&identity, Protocol::Pypi, action, &name)?
        }
        Permission::AnyName(action) => {
            state
                .auth
                .authorize_some(&identity, Protocol::Pypi, action)?
        }
    }
    match endpoint {
        Endpoint::Redirect { to } => Ok(redirect(&to)),
        Endpoint::Root { index, .. } => {
            let format = page_format(request.headers(), request.uri().query())?;
            root::serve(index_of(state, &index), format, request.headers()).await
        }
        Endpoint::Project {
            index,
            normalized,
            page_path,
        } => {
            pullthrough::refresh_project(
                state.upstream.as_deref(),
                &index_of(state, &index),
                &normalized,
            )
            .await?;
            let doc = index_of(state, &index)
                .raw_project(&normalized)
                .await?
                .ok_or_else(|| {
                    PypiError::not_found(format!("no project `{normalized}` in index `{index}`"))
                })?;
            let depth = page_path.trim_matches('/').split('/').count();
            let key = format!("{index}/{normalized}|{depth}|{}", doc.etag);
            serve_page(
                state,
                request.headers(),
                request.uri().query(),
                key,
                |format| {
                    let project: project::ProjectDoc = project::parse(&doc.bytes)?;
                    let file_url = |f: &FileEntry| file_url(state, &index, &normalized, f, depth);
                    let page = ProjectPage {
                        normalized: &normalized,
                        doc: &project,
                        file_url: &file_url,
                    };
                    Ok(match format {
                        Format::Json => page.json().to_string(),
                        _ => page.html(),
                    })
                },
            )
            .await
        }
        Endpoint::File {
            index,
            project,
            sha256,
            filename,
            metadata,
        } => {
            let doc = parsed_project(state, &index, &project).await?;
            let entry = doc
                .as_ref()
                .and_then(|d| {
                    d.files
                        .iter()
                        .find(|f| f.filename == filename && f.sha256 == sha256)
                })
                .ok_or_else(|| {
                    PypiError::not_found(format!("no file `{filename}` in project `{project}`"))
                })?;
            let blob = match (metadata, &entry.metadata_sha256) {
                (false, _) => &entry.sha256,
                (true, Some(m)) => m,
                (true, None) => {
                    return Err(PypiError::not_found(format!(
                        "`{filename}` has no .metadata file"
                    )))
                }
            };
            let digest = crate::digest::Digest::sha256_hex(blob).map_err(|e| {
                PypiError::from(crate::store::StoreError::Unavailable(e.to_string()))
            })?;
            let head = request.method() == Method::HEAD;
            // A pull-through copy evicted since this process last saw it is fetched from
            // the upstream again (the failed read made the store forget it).
            let mut attempts = 0;
            let mut response = loop {
                attempts += 1;
                let filled = pullthrough::fill_file(
                    state.upstream.as_deref(),
                    &state.filler,
                    &state.blobs,
                    entry,
                    metadata,
                    &digest,
                    request.headers(),
                    head,
                )
                .await?;
                let served = match filled {
                    Some((size, body)) => Ok(crate::download::streamed(&digest, size, body)),
                    None => blob_response(&state.blobs, &digest, request.headers(), head).await,
                };
                match served {
                    Err(crate::store::StoreError::NotFound(_))
                        if entry.upstream_url.is_some() && attempts == 1 => {}
                    served => break served?,
                }
            };
            let cache = if state.auth.anonymous_read() {
                "public"
            } else {
                "private"
            };
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_str(&format!("{cache}, max-age=31536000, immutable"))
                    .expect("ascii"),
            );
            Ok(response)
        }
        Endpoint::Upload { index } => {
            upload::handle(state, &index_of(state, &index), identity, request).await
        }
        Endpoint::MethodNotAllowed { allow } => {
            let mut r = (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n").into_response();
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            Ok(r)
        }
    }
}

/// A project's document parsed, kept by its version: a download from a project of
/// thousands of files finds its entry without parsing megabytes of JSON each time.
async fn parsed_project(
    state: &PypiState,
    index: &str,
    project: &str,
) -> Result<Option<Arc<project::ProjectDoc>>, PypiError> {
    let Some(raw) = index_of(state, index).raw_project(project).await? else {
        return Ok(None);
    };
    let key = format!("{index}/{project}|{}", raw.etag);
    if let Some(doc) = state.parsed.get(&key).await {
        return Ok(Some(doc));
    }
    let doc: Arc<project::ProjectDoc> = Arc::new(project::parse(&raw.bytes)?);
    state.parsed.insert(key, doc.clone()).await;
    Ok(Some(doc))
}

pub fn index_of(state: &PypiState, name: &str) -> Index {
    Index::new(name, state.docs.clone())
}

/// Relative to the page (so any proxy path prefix keeps working), or absolute under
/// `--public-url` when one is configured.
fn file_url(
    state: &PypiState,
    index: &str,
    project: &str,
    f: &FileEntry,
    page_depth: usize,
) -> String {
    let path = format!("pypi/{index}/files/{project}/{}/{}", f.sha256, f.filename);
    match state.site.public_url() {
        Some(base) => format!("{base}/{path}"),
        None => format!("{}{path}", "../".repeat(page_depth)),
    }
}

/// What the index's handlers share, cheap to clone.
#[derive(Clone, Debug)]
pub struct PypiState {
    /// Rendered index pages, by page, format and the version of the document they were
    /// rendered from: a hot project page costs a cache lookup, not a parse and a render.
    pages: moka::future::Cache<String, (bytes::Bytes, String)>,
    /// Parsed project documents, by project and version (see `parsed_project`).
    parsed: moka::future::Cache<String, Arc<project::ProjectDoc>>,
    pub docs: DocStore,
    pub blobs: BlobStore,
    pub auth: Arc<Auth>,
    pub settings: Arc<PypiSettings>,
    pub site: Site,
    /// Pull-through for the default index (none unless `[pypi] upstream` is set).
    pub upstream: Option<Arc<pullthrough::PypiUpstream>>,
    pub filler: crate::remote::Filler,
}

/// What [`PypiState`] is built from besides the store.
pub struct PypiDeps {
    pub auth: Arc<Auth>,
    pub settings: Arc<PypiSettings>,
    pub site: Site,
    pub upstream: Option<Arc<pullthrough::PypiUpstream>>,
    pub filler: crate::remote::Filler,
}

impl PypiState {
    pub fn new(docs: DocStore, blobs: BlobStore, deps: PypiDeps) -> PypiState {
        PypiState {
            parsed: moka::future::Cache::builder()
                .max_capacity(docs.memory_for(CacheShare::PypiParsed))
                // About what a parsed file entry takes in memory.
                .weigher(|k: &String, v: &Arc<project::ProjectDoc>| {
                    let files: usize = v
                        .files
                        .iter()
                        .map(|f| {
                            256 + f.filename.len() + f.upstream_url.as_ref().map_or(0, String::len)
                        })
                        .sum();
                    (k.len() + files).try_into().unwrap_or(u32::MAX)
                })
                .build(),
            pages: moka::future::Cache::builder()
                .max_capacity(docs.memory_for(CacheShare::PypiPages))
                .weigher(|k: &String, v: &(bytes::Bytes, String)| {
                    (k.len() + v.0.len()).try_into().unwrap_or(u32::MAX)
                })
                .build(),
            docs,
            blobs,
            auth: deps.auth,
            settings: deps.settings,
            site: deps.site,
            upstream: deps.upstream,
            filler: deps.filler,
        }
    }
}

/// An index page in the negotiated format, with `ETag`/304 and `Vary: Accept`.
/// `key` names the page and the version of its source document.
/// The format a page is asked in: `?format=` or the Accept header.
fn page_format(headers: &http::HeaderMap, query: Option<&str>) -> Result<Format, PypiError> {
    let format_param = query.and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "format")
            .map(|(_, v)| v.into_owned())
    });
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    negotiate(accept, format_param.as_deref())
}

async fn serve_page(
    state: &PypiState,
    headers: &http::HeaderMap,
    query: Option<&str>,
    key: String,
    render: impl FnOnce(Format) -> Result<String, PypiError>,
) -> Result<Response, PypiError> {
    let format = page_format(headers, query)?;
    let key = format!("{key}|{}", format.content_type());
    let (body, etag) = match state.pages.get(&key).await {
        Some(hit) => hit,
        None => {
            let body = bytes::Bytes::from(render(format)?);
            let etag = format!(
                "\"{}\"",
                &crate::digest::Digest::of_bytes(crate::digest::Algorithm::Sha256, key.as_bytes())
                    .hex()[..32]
            );
            state.pages.insert(key, (body.clone(), etag.clone())).await;
            (body, etag)
        }
    };
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == etag)
        });
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Response::new(Body::from(body))
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    h.insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex"));
    // Short: a yank or a new upload should reach resolvers quickly.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=30"),
    );
    Ok(response)
}

fn redirect(to: &str) -> Response {
    let mut r = StatusCode::MOVED_PERMANENTLY.into_response();
    r.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(to).expect("normalized path"),
    );
    r
}
