//! The catalog's one error type, rendered once as JSON `{"error": "..."}` (the UI shows
//! the text as it is). A refused caller gets 401 with a Bearer challenge, which is what
//! makes the UI ask for a token.

use crate::auth::AuthError;
use crate::observe::StoreFailure;
use crate::store::StoreError;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{0}: send an Airlock token with a read scope as Authorization: Bearer <token>")]
    Auth(AuthError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Store(StoreError),
}

impl From<AuthError> for CatalogError {
    fn from(e: AuthError) -> Self {
        CatalogError::Auth(e)
    }
}

impl From<StoreError> for CatalogError {
    fn from(e: StoreError) -> Self {
        match e {
            // A document named by the request that is not there: the item is unknown.
            StoreError::NotFound(what) => CatalogError::NotFound(format!("{what} not found")),
            StoreError::InvalidKey(key) => CatalogError::NotFound(format!("no item at `{key}`")),
            e => CatalogError::Store(e),
        }
    }
}

impl IntoResponse for CatalogError {
    fn into_response(self) -> Response {
        let status = match &self {
            CatalogError::Auth(AuthError::Forbidden(_)) => StatusCode::FORBIDDEN,
            CatalogError::Auth(_) => StatusCode::UNAUTHORIZED,
            CatalogError::NotFound(_) => StatusCode::NOT_FOUND,
            CatalogError::BadRequest(_) => StatusCode::BAD_REQUEST,
            CatalogError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let body = serde_json::json!({ "error": self.to_string() });
        let mut response = (status, axum::Json(body)).into_response();
        match self {
            CatalogError::Auth(AuthError::InvalidCredentials | AuthError::Unauthenticated) => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"airlock\""),
                );
            }
            CatalogError::Store(_) => {
                response.extensions_mut().insert(StoreFailure);
            }
            _ => {}
        }
        response
    }
}

/// The protocols' own errors, met while reading their documents: a 404 is an unknown
/// item; anything else means their metadata could not be read.
fn from_protocol(status: StatusCode, message: String) -> CatalogError {
    if status == StatusCode::NOT_FOUND {
        CatalogError::NotFound(message)
    } else {
        CatalogError::Store(StoreError::Unavailable(message))
    }
}

impl From<crate::hf::HfError> for CatalogError {
    fn from(e: crate::hf::HfError) -> Self {
        from_protocol(e.status, e.message)
    }
}

impl From<crate::pypi::PypiError> for CatalogError {
    fn from(e: crate::pypi::PypiError) -> Self {
        from_protocol(e.status, e.message)
    }
}

impl From<crate::oci::OciError> for CatalogError {
    fn from(e: crate::oci::OciError) -> Self {
        from_protocol(e.status, e.message)
    }
}
