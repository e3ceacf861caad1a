//! The index's error responses: a status and a one-line plain-text reason, which pip,
//! uv and twine print as they are.

use crate::auth::AuthError;
use crate::observe::StoreFailure;
use crate::store::StoreError;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};

#[derive(Clone, Debug)]
pub struct PypiError {
    pub status: StatusCode,
    pub message: String,
    store_failure: bool,
}

impl PypiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        PypiError {
            status,
            message: message.into(),
            store_failure: false,
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    /// twine's `--skip-existing` recognises 409 as "already there".
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_ACCEPTABLE, message)
    }
    /// The upstream index cannot answer: never a 404, which a resolver would believe.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, message)
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }
}

impl std::fmt::Display for PypiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.status)
    }
}

impl From<StoreError> for PypiError {
    fn from(e: StoreError) -> Self {
        let status = match &e {
            StoreError::NotFound(_) => StatusCode::NOT_FOUND,
            StoreError::PreconditionFailed(_) => StatusCode::CONFLICT,
            StoreError::DigestMismatch { .. }
            | StoreError::SizeMismatch { .. }
            | StoreError::InvalidKey(_)
            | StoreError::Body(_) => StatusCode::BAD_REQUEST,
            StoreError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            // Never a 404: a resolver must not conclude that a package does not exist.
            StoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            StoreError::Full(_) => StatusCode::INSUFFICIENT_STORAGE,
        };
        PypiError {
            status,
            message: e.to_string(),
            store_failure: matches!(e, StoreError::Unavailable(_) | StoreError::Full(_)),
        }
    }
}

impl From<AuthError> for PypiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Forbidden(name) => Self::new(
                StatusCode::FORBIDDEN,
                format!("token `{name}` may not do this on this index; ask for a token with the right pypi scope"),
            ),
            AuthError::InvalidCredentials => Self::new(
                StatusCode::UNAUTHORIZED,
                "Invalid or non-existent authentication information: check the token (user __token__, password = token)",
            ),
            AuthError::Unauthenticated => Self::new(
                StatusCode::UNAUTHORIZED,
                "authentication required: use user __token__ with an Airlock token as password",
            ),
        }
    }
}

impl IntoResponse for PypiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, format!("{}\n", self.message)).into_response();
        // As PyPI does: twine shows the reason phrase, not the body, unless --verbose.
        if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(self.message.clone()) {
            response.extensions_mut().insert(reason);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            // pip and twine only send (or ask for) credentials after a Basic challenge.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"airlock\""),
            );
        }
        if self.store_failure {
            response.extensions_mut().insert(StoreFailure);
        }
        response
    }
}
