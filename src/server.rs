//! Builds the one HTTP service: system endpoints here, each protocol's routes from its
//! own module, and the middleware every request passes (access log, metrics).
//!
//! Mount points (the protocol modules own what is below them):
//! - OCI distribution API: `/v2/...`
//! - Python package index: `/simple/...`, `/legacy/`, `/pypi/<index>/...`
//! - Hugging Face Hub API: `/api/...`, `/{repo}/resolve/...`, `/datasets/...`, and all of
//!   it again under `/hf`
//! - operations: `/healthz`, `/readyz`, `/metrics`, `/` (this file)
//! - operator API: `/_airlock/...` (admin.rs); the catalog's JSON API:
//!   `/_airlock/catalog/...` (catalog/)
//! - the web catalog's pages: `/ui/` (ui.rs)
//!
//! The S3 API (`s3api/`) has a listener of its own (`[s3api] listen`) and a route table
//! of its own (`s3_router`): S3 clients address buckets at the root.

use crate::admin::AdminState;
use crate::auth::Auth;
use crate::catalog::CatalogState;
use crate::config::Config;
use crate::connections::Limits;
use crate::hf::pullthrough::Pull;
use crate::hf::{HfDeps, HfState};
use crate::metrics::Metrics;
use crate::observe;
use crate::oci::registry::Registry;
use crate::oci::OciState;
use crate::pypi::{PypiDeps, PypiState};
use crate::remote::{Filler, Upstream, UpstreamSettings};
use crate::s3api::S3State;
use crate::site::Site;
use crate::store::BlobStore;
use crate::store::{self, CacheShare, DynStore, Stores};
use crate::tls::Tls;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// A readiness probe that takes longer than this counts as a store outage.
const READY_TIMEOUT: Duration = Duration::from_secs(3);

/// The server's parts, each protocol's built from the configuration here (the only
/// place besides the CLI that reads `Config`); every route table gets only its own.
#[derive(Clone, Debug)]
pub struct AppState {
    pub stores: Stores,
    pub metrics: Arc<Metrics>,
    pub oci: OciState,
    pub pypi: PypiState,
    pub hf: HfState,
    pub catalog: CatalogState,
    pub admin: AdminState,
    /// The S3 API, served only on its own listener.
    pub s3: S3State,
    /// The collections `serve` runs on a timer.
    pub gc: crate::gc::GcSettings,
}

impl AppState {
    /// Opens the configured store (failing with a message that says what to fix).
    pub async fn open(config: Config) -> anyhow::Result<AppState> {
        let store = store::open(&config.store, &config.s3).await?;
        AppState::with_store(config, store)
    }

    pub fn with_store(config: Config, store: DynStore) -> anyhow::Result<AppState> {
        let stores = Stores::new(store, &config.cache);
        let auth = Arc::new(
            Auth::new(
                config.admin_token.as_deref(),
                &config.tokens,
                config.anonymous_read,
            )
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?,
        );
        let site = Site::new(config.public_url.as_ref(), config.tls.is_some());
        let upstreams = Upstreams::new(&config, stores.blobs.clone())?;
        let metrics = Arc::new(Metrics::default());
        let registry = Registry::new(stores.docs.clone(), stores.blobs.clone());
        let pypi_settings = Arc::new(config.pypi.clone());
        let pypi = PypiState::new(
            stores.docs.clone(),
            stores.blobs.clone(),
            PypiDeps {
                auth: auth.clone(),
                settings: pypi_settings.clone(),
                site: site.clone(),
                upstream: upstreams.pypi.clone(),
                filler: upstreams.filler.clone(),
            },
        );
        let hf = HfState::new(
            stores.docs.clone(),
            stores.blobs.clone(),
            &config.hf,
            config.admin_token.as_deref(),
            HfDeps {
                store: stores.store.clone(),
                auth: auth.clone(),
                site: site.clone(),
                upstream: upstreams.hf.clone(),
                filler: upstreams.filler.clone(),
            },
        );
        let pull = upstreams.hf.clone().map(|upstream| Pull {
            upstream,
            filler: upstreams.filler.clone(),
        });
        let s3 = S3State::new(hf.repos.clone(), auth.clone(), &config.s3api, pull.clone());
        let oci = OciState {
            registry: registry.clone(),
            store: stores.store.clone(),
            docs: stores.docs.clone(),
            auth: auth.clone(),
            settings: Arc::new(config.oci.clone()),
            site: site.clone(),
            upstream: upstreams.oci.clone(),
            filler: upstreams.filler.clone(),
            synthesized: Some(Arc::new(crate::modelimage::ModelImages::new(
                hf.repos.clone(),
                registry.clone(),
                stores.docs.clone(),
                auth.clone(),
                config.model_images.clone(),
                pull,
            ))),
        };
        let catalog = CatalogState::new(
            &stores,
            hf.repos.clone(),
            registry,
            pypi_settings,
            auth.clone(),
            site,
        )
        .with_s3(catalog_s3(&config));
        let admin = AdminState {
            blobs: stores.blobs.clone(),
            auth,
            metrics: metrics.clone(),
        };
        Ok(AppState {
            stores,
            metrics,
            oci,
            pypi,
            hf,
            catalog,
            admin,
            s3,
            gc: config.gc.clone(),
        })
    }
}

/// Where the catalog tells S3 clients to go: `[s3api] public_url`, else the S3
/// listener's port on the catalog's own host; nothing when the S3 API is not served.
fn catalog_s3(config: &Config) -> Option<crate::catalog::S3Endpoint> {
    use crate::catalog::S3Endpoint;
    let listen = config.s3api_listen?;
    Some(match &config.s3api.public_url {
        Some(url) => S3Endpoint::Url(url.clone()),
        None => S3Endpoint::Port(listen.port()),
    })
}

/// The pull-through upstreams of one server (none unless configured), and the filler
/// their misses share; each protocol's state gets its own.
#[derive(Debug)]
pub struct Upstreams {
    pub oci: Option<Arc<crate::oci::pullthrough::OciUpstream>>,
    pub pypi: Option<Arc<crate::pypi::pullthrough::PypiUpstream>>,
    pub hf: Option<Arc<Upstream>>,
    pub filler: Filler,
}

impl Upstreams {
    pub fn new(config: &Config, blobs: BlobStore) -> anyhow::Result<Upstreams> {
        // Shared by the three protocols' upstreams.
        let fresh_bytes = CacheShare::UpstreamLookups.of(config.cache.metadata_bytes) / 3;
        let open = |section: &'static str, s: UpstreamSettings| {
            s.url
                .as_ref()
                .map(|_| Upstream::new(section, &s, fresh_bytes))
                .transpose()
        };
        Ok(Upstreams {
            oci: open("oci", config.oci.upstream())?.map(|up| {
                Arc::new(crate::oci::pullthrough::OciUpstream::new(
                    up,
                    config.oci.upstream_registry.clone(),
                    &config.oci.upstream_token_realms,
                ))
            }),
            pypi: open("pypi", config.pypi.upstream())?.map(|up| {
                Arc::new(crate::pypi::pullthrough::PypiUpstream::new(
                    up,
                    &config.pypi.upstream_merge,
                ))
            }),
            hf: open("hf", config.hf.upstream())?.map(Arc::new),
            filler: Filler::new(blobs),
        })
    }
}

/// The route table: each protocol's routes with its own state, then the middleware
/// every request passes.
pub fn router(state: AppState) -> Router {
    let system = Router::new()
        .route("/", get(landing))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(System {
            stores: state.stores.clone(),
            metrics: state.metrics.clone(),
        });
    // Uploads enforce their own size limits while streaming.
    let unlimited = axum::extract::DefaultBodyLimit::disable;
    let app = system
        .merge(crate::admin::routes(state.admin))
        .merge(crate::catalog::routes(state.catalog))
        .merge(crate::ui::routes())
        // The protocols label their responses themselves (observe::RouteLabel).
        .route_layer(axum::middleware::from_fn(observe::label_matched_route))
        .merge(crate::pypi::routes(state.pypi).layer(unlimited()))
        .merge(crate::oci::routes(state.oci).layer(unlimited()))
        // The Hub API owns the root namespace (/{org}/{repo}/resolve/...): its router
        // brings the fallback.
        .merge(crate::hf::routes(state.hf).layer(unlimited()));
    around(app, state.metrics)
}

/// The S3 listener's route table: only the S3 API, behind the same middleware as the
/// main one (HTTP/2's `:authority` becomes `Host`, which SigV4 signs and virtual-hosted
/// bucket names are read from).
pub fn s3_router(state: S3State, metrics: Arc<Metrics>) -> Router {
    around(crate::s3api::routes(state), metrics)
}

/// The middleware every request passes, wrapped once around the whole route table.
/// (`Router::layer` wraps each route instead, and a route's whole stack, its state
/// included, is cloned at every layer of every request: a fifth of a small request's
/// time went to those clones.)
fn around(app: Router, metrics: Arc<Metrics>) -> Router {
    let stack = tower::ServiceBuilder::new()
        .layer(axum::middleware::map_response(nosniff))
        .layer(axum::middleware::map_request(host_from_authority))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            observe::observe,
        ))
        .layer(axum::middleware::from_fn(crate::sendfile::offer))
        .layer(axum::middleware::from_fn(
            crate::drain::drain_refused_bodies,
        ))
        .service(app);
    Router::new().fallback_service(stack)
}

/// What the system endpoints read.
#[derive(Clone, Debug)]
struct System {
    stores: Stores,
    metrics: Arc<Metrics>,
}

/// Every body is served with the type Airlock chose; browsers must not guess another
/// (a manifest or file sniffed as HTML would run as Airlock's origin).
async fn nosniff(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    response
}

/// HTTP/2 (what clients negotiate over TLS) carries the host in `:authority`, not in a
/// `Host` header; URLs built from the request's host read `Host`, so h2 requests get one.
async fn host_from_authority(mut request: axum::extract::Request) -> axum::extract::Request {
    if !request.headers().contains_key(header::HOST) {
        let host = request
            .uri()
            .authority()
            .map(|a| a.as_str().rsplit('@').next().unwrap_or_default())
            .and_then(|h| header::HeaderValue::from_str(h).ok());
        if let Some(host) = host {
            request.headers_mut().insert(header::HOST, host);
        }
    }
    request
}

async fn landing() -> Html<&'static str> {
    Html(include_str!("../static/index.html"))
}

/// The process is up and serving HTTP.
async fn healthz() -> &'static str {
    "ok\n"
}

/// The store answers: Kubernetes sends traffic only to replicas that can serve it.
async fn readyz(State(state): State<System>) -> Response {
    let probe = tokio::time::timeout(READY_TIMEOUT, state.stores.store.list("", None, 1)).await;
    let problem = match probe {
        Ok(Ok(_)) => return (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {READY_TIMEOUT:?}"),
    };
    state.metrics.store_error("readiness");
    tracing::warn!(store = %state.stores.store.describe(), %problem, "not ready");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "not ready: store {} unreachable: {problem}\n",
            state.stores.store.describe()
        ),
    )
        .into_response()
}

async fn metrics(State(state): State<System>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render()
            + &render_store_ops(&state.stores.ops)
            + &crate::gc::render_metrics(crate::gc::last_run(&state.stores.docs).await.as_ref()),
    )
        .into_response()
}

fn render_store_ops(ops: &store::OpCounts) -> String {
    let mut out = String::from(
        "# HELP airlock_store_operations_total Operations that reached the object store backend.\n\
         # TYPE airlock_store_operations_total counter\n",
    );
    for (op, n) in ops.snapshot() {
        out.push_str(&format!(
            "airlock_store_operations_total{{op=\"{op}\"}} {n}\n"
        ));
    }
    out
}

/// Serves until `shutdown` resolves, then stops accepting connections and gives
/// in-flight requests up to `grace` to finish before returning; every connection is
/// served within `limits`.
pub async fn run(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = crate::sendfile::SendfileListener::new(listener);
    crate::connections::serve(listener, app, limits, grace, shutdown).await
}

/// As `run`, over TLS: every connection completes a handshake with the current
/// certificate before it is served; shutdown, the grace period and the limits are the same.
pub async fn run_tls(
    listener: TcpListener,
    tls: &Tls,
    app: Router,
    limits: Limits,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::connections::serve(tls.listener(listener), app, limits, grace, shutdown).await
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}

/// `airlock serve`: open the store, bind, serve until a signal.
pub async fn serve(mut config: Config) -> anyhow::Result<()> {
    let listen = config.listen;
    let grace = config.shutdown_grace;
    let limits = config.http;
    // Bad certificate files fail start-up before anything else is opened.
    let tls = config.tls.as_ref().map(Tls::load).transpose()?;
    let anonymous_read = config.anonymous_read;
    let s3_listener = match config.s3api_listen {
        Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
            anyhow::anyhow!("cannot listen on {addr} for the S3 API: {e}; choose another address with --s3api-listen or AIRLOCK_S3API_LISTEN")
        })?),
        None => None,
    };
    // The catalog shows the port actually bound (`:0` picks one).
    if let Some(l) = &s3_listener {
        config.s3api_listen = Some(l.local_addr()?);
    }
    let state = AppState::open(config).await?;
    let listener = TcpListener::bind(listen).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {listen}: {e}; choose another address with --listen or AIRLOCK_LISTEN")
    })?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    // Reloads (and SIGHUP handling) start before anyone is told the server is up.
    let watcher = tls.as_ref().map(Tls::watch);
    // Announced before the main listener, so whoever waits for that line can read this one.
    if let Some(l) = &s3_listener {
        tracing::info!("S3 API at {scheme}://{}", l.local_addr()?);
    }
    tracing::info!(
        store = %state.stores.store.describe(),
        anonymous_read,
        "listening on {scheme}://{local}"
    );
    let purger = (!state.oci.settings.purge_uploads_after.is_zero()).then(|| {
        tokio::spawn(crate::oci::purge_uploads_periodically(
            state.oci.store.clone(),
            state.oci.docs.clone(),
            state.oci.settings.purge_uploads_after,
        ))
    });
    let collector = crate::gc::spawn(
        state.stores.clone(),
        state.gc.clone(),
        state.oci.settings.purge_uploads_after,
    );
    // Which blobs are read, for pull-through eviction: only when a collection may use it.
    let reads = (state.gc.pull_through_budget.is_some()
        || state.gc.pull_through_unused_after.is_some())
    .then(|| {
        let log = state.stores.blobs.reads().clone();
        let flusher = log.spawn_flusher(state.stores.store.clone(), state.gc.access_flush);
        (log, state.stores.store.clone(), flusher)
    });
    let s3_app = s3_router(state.s3.clone(), state.metrics.clone());
    let app = router(state);
    let main = async {
        match &tls {
            Some(tls) => run_tls(listener, tls, app, limits, grace, shutdown_signal()).await,
            None => run(listener, app, limits, grace, shutdown_signal()).await,
        }
    };
    let s3 = async {
        let Some(listener) = s3_listener else {
            return Ok(());
        };
        match &tls {
            Some(tls) => run_tls(listener, tls, s3_app, limits, grace, shutdown_signal()).await,
            None => run(listener, s3_app, limits, grace, shutdown_signal()).await,
        }
    };
    tokio::try_join!(main, s3)?;
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    if let Some(purger) = purger {
        purger.abort();
    }
    if let Some((log, store, flusher)) = reads {
        flusher.abort();
        if let Err(e) = log.flush(&store).await {
            tracing::warn!(error = %e, "could not record the last blob reads");
        }
    }
    if let Some(collector) = collector {
        collector.abort();
    }
    Ok(())
}
