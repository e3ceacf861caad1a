//! The web catalog's read-only JSON API under `/_airlock/catalog/` (`_` cannot start a
//! Hub repo name, and `/_airlock/` is already Airlock's own namespace): one list of every
//! model, dataset, Python project and image with search, each item's detail with
//! copy-paste snippets, and store totals with what deduplication saves.
//!
//! It reads the protocols' metadata documents only (never a blob body), and answers
//! each caller what that caller could read through the protocols themselves: anonymous
//! read when it is on, else a token; items the token may not read are left out of lists
//! and are unknown (404) in detail, as the Hub does for private repositories.

mod access;
mod endpoint;
mod error;
mod hf_items;
mod image_items;
mod items;
mod python_items;
mod snippets;
mod totals;
mod totals_keeper;
mod totals_tables;
mod totals_walk;

pub use endpoint::{Endpoint, ItemId, Kind, PREFIX};
pub use error::CatalogError;
pub use totals::Totals;
use totals_keeper::Current;

use crate::auth::Auth;
use crate::hf::repo::Repos;
use crate::observe::RouteLabel;
use crate::oci::registry::Registry;
use crate::pypi::PypiSettings;
use crate::site::Site;
use crate::store::{DocStore, DynStore, Stores};
use access::Reader;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, HeaderValue};
use std::sync::Arc;
use std::time::Duration;

/// How old the last walk of the store may be before a request starts another in the
/// background (the request itself is answered with the kept totals). Between walks the
/// totals follow the changes every process records; a walk repairs what a process
/// killed before recording its last changes left out.
pub const TOTALS_WALKED_AGAIN_AFTER: Duration = Duration::from_secs(6 * 3600);

/// What the catalog reads (each protocol's domain objects and the store's listings) and
/// keeps between requests.
#[derive(Clone, Debug)]
pub struct CatalogState {
    /// The store totals, walked once in the background, then following changes.
    totals: Arc<totals_keeper::TotalsKeeper>,
    pub store: DynStore,
    pub docs: DocStore,
    pub repos: Repos,
    pub registry: Registry,
    pub pypi: Arc<PypiSettings>,
    pub auth: Arc<Auth>,
    pub site: Site,
    /// Where S3 clients reach the S3 API, when it is served: the models' and datasets'
    /// pages then show S3 snippets too.
    pub s3: Option<S3Endpoint>,
}

/// The S3 API's address as the catalog shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum S3Endpoint {
    /// `[s3api] public_url`.
    Url(String),
    /// The S3 listener's port, on the host the catalog was reached at.
    Port(u16),
}

impl S3Endpoint {
    /// The endpoint URL, for a catalog reached at `base`.
    pub fn url(&self, base: &str) -> String {
        match self {
            S3Endpoint::Url(url) => url.trim_end_matches('/').to_string(),
            S3Endpoint::Port(port) => {
                let Ok(mut url) = url::Url::parse(base) else {
                    return base.to_string();
                };
                match url.set_port(Some(*port)) {
                    Ok(()) => url.as_str().trim_end_matches('/').to_string(),
                    Err(()) => base.to_string(),
                }
            }
        }
    }
}

impl CatalogState {
    pub fn new(
        stores: &Stores,
        repos: Repos,
        registry: Registry,
        pypi: Arc<PypiSettings>,
        auth: Arc<Auth>,
        site: Site,
    ) -> CatalogState {
        CatalogState {
            totals: Arc::default(),
            store: stores.store.clone(),
            docs: stores.docs.clone(),
            repos,
            registry,
            pypi,
            auth,
            site,
            s3: None,
        }
    }

    /// Shows S3 snippets for models and datasets, reached at `s3`.
    pub fn with_s3(mut self, s3: Option<S3Endpoint>) -> CatalogState {
        self.s3 = s3;
        self
    }
}

/// `/_airlock/catalog/...`
pub fn routes<S>(state: CatalogState) -> Router<S> {
    Router::new()
        .route("/_airlock/catalog", get(dispatch))
        .route("/_airlock/catalog/{*rest}", get(dispatch))
        .with_state(Arc::new(state))
}

async fn dispatch(State(state): State<Arc<CatalogState>>, request: Request) -> Response {
    let parsed = Endpoint::parse(request.uri().path(), request.uri().query());
    let mut response = match parsed {
        Err(e) => e.into_response(),
        Ok(endpoint) => {
            let label = endpoint.label();
            let mut r = serve(&state, endpoint, request.headers())
                .await
                .unwrap_or_else(IntoResponse::into_response);
            r.extensions_mut().insert(RouteLabel(label));
            r
        }
    };
    // Answers depend on the caller's token: never shared by caches.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    response
}

async fn serve(
    state: &CatalogState,
    endpoint: Endpoint,
    headers: &http::HeaderMap,
) -> Result<Response, CatalogError> {
    let reader = Reader::new(state, headers)?;
    let body = match endpoint {
        Endpoint::Items(query) => items::list(state, &reader, &query).await?,
        Endpoint::Item { item, revision } => {
            let base = state.site.base_url(headers);
            items::detail(state, &reader, &item, revision.as_deref(), &base).await?
        }
        Endpoint::Store => match state.totals.current(state).await? {
            Current::Ready(totals) => totals::for_reader(state, &reader, &totals).await?,
            Current::Computing => totals::computing(state, &reader).await,
        },
    };
    Ok(axum::Json(body).into_response())
}
