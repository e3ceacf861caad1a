//! Airlock's own operator API under `/_airlock/`: content by digest, for operators and
//! for Airlocks that fill themselves from another Airlock. Admin scope only, because a
//! digest alone says nothing about which (possibly private) repository it belongs to.

use crate::auth::Auth;
use crate::auth::AuthError;
use crate::digest::Digest;
use crate::download::blob_response;
use crate::metrics::Metrics;
use crate::store::{BlobStore, StoreError};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, HeaderMap, Method, StatusCode};
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct AdminState {
    pub blobs: BlobStore,
    pub auth: Arc<Auth>,
    pub metrics: Arc<Metrics>,
}

pub fn routes<S>(state: AdminState) -> Router<S> {
    Router::new()
        .route("/_airlock/blobs/{digest}", get(blob).head(blob))
        .with_state(Arc::new(state))
}

/// Plain-text errors: this API has no client library with expectations of its own.
pub enum AdminError {
    Auth(AuthError),
    BadRequest(String),
    Store(StoreError),
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            AdminError::Auth(AuthError::Forbidden(name)) => (
                StatusCode::FORBIDDEN,
                format!("token `{name}` lacks the admin scope"),
            ),
            AdminError::Auth(e) => {
                let mut r = (
                    StatusCode::UNAUTHORIZED,
                    format!("{e}: send the admin token as Authorization: Bearer\n"),
                )
                    .into_response();
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    "Bearer realm=\"airlock\"".parse().unwrap(),
                );
                return r;
            }
            AdminError::BadRequest(msg) => (StatusCode::BAD_REQUEST, msg),
            AdminError::Store(StoreError::NotFound(_)) => {
                (StatusCode::NOT_FOUND, "blob not found".into())
            }
            AdminError::Store(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        };
        (status, format!("{text}\n")).into_response()
    }
}

async fn blob(
    State(state): State<Arc<AdminState>>,
    Path(digest): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, AdminError> {
    let identity = state
        .auth
        .authenticate(&headers)
        .map_err(AdminError::Auth)?;
    // A digest says nothing about which protocol or repository the bytes belong to.
    state
        .auth
        .authorize_store_admin(&identity)
        .map_err(AdminError::Auth)?;
    let digest: Digest = digest
        .parse()
        .map_err(|e| AdminError::BadRequest(format!("`{digest}`: {e}")))?;
    blob_response(&state.blobs, &digest, &headers, method == Method::HEAD)
        .await
        .map_err(|e| {
            if matches!(e, StoreError::Unavailable(_)) {
                state.metrics.store_error("unavailable");
            }
            AdminError::Store(e)
        })
}
