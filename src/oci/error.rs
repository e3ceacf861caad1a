//! The registry's error responses: the distribution spec's JSON body
//! `{"errors":[{"code","message","detail"}]}` with its codes and statuses.

use crate::auth::AuthError;
use crate::observe::StoreFailure;
use crate::store::StoreError;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    TagInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    RangeInvalid,
    PaginationNumberInvalid,
    TooManyRequests,
    Unavailable,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::TagInvalid => "TAG_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::RangeInvalid => "RANGE_INVALID",
            Code::PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            Code::TooManyRequests => "TOOMANYREQUESTS",
            Code::Unavailable => "UNAVAILABLE",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Code::BlobUnknown
            | Code::BlobUploadUnknown
            | Code::ManifestUnknown
            | Code::NameUnknown => StatusCode::NOT_FOUND,
            Code::BlobUploadInvalid
            | Code::DigestInvalid
            | Code::ManifestBlobUnknown
            | Code::ManifestInvalid
            | Code::NameInvalid
            | Code::SizeInvalid
            | Code::TagInvalid
            | Code::PaginationNumberInvalid => StatusCode::BAD_REQUEST,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Denied => StatusCode::FORBIDDEN,
            Code::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            Code::RangeInvalid => StatusCode::RANGE_NOT_SATISFIABLE,
            Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

#[derive(Clone, Debug)]
pub struct OciError {
    pub code: Code,
    pub status: StatusCode,
    pub message: String,
    /// `WWW-Authenticate` for 401s: the token service challenge with the scope needed.
    pub challenge: Option<String>,
    store_failure: bool,
}

pub type Result<T, E = OciError> = std::result::Result<T, E>;

impl OciError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        OciError {
            code,
            status: code.status(),
            message: message.into(),
            challenge: None,
            store_failure: false,
        }
    }

    /// The same code with another status (e.g. 413 for an oversized manifest).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn with_challenge(mut self, challenge: String) -> Self {
        self.challenge = Some(challenge);
        self
    }
}

impl std::fmt::Display for OciError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for OciError {}

impl From<StoreError> for OciError {
    fn from(e: StoreError) -> Self {
        let code = match &e {
            // Callers turn "absent" into the precise *_UNKNOWN code; this is the fallback.
            StoreError::NotFound(_) => Code::BlobUnknown,
            StoreError::DigestMismatch { .. } => Code::DigestInvalid,
            StoreError::SizeMismatch { .. } => Code::SizeInvalid,
            StoreError::RangeNotSatisfiable { .. } => Code::RangeInvalid,
            StoreError::InvalidKey(_) => Code::NameInvalid,
            StoreError::Body(_) => Code::BlobUploadInvalid,
            StoreError::PreconditionFailed(_)
            | StoreError::Unavailable(_)
            | StoreError::Full(_) => Code::Unavailable,
        };
        let mut err = OciError::new(code, e.to_string());
        if matches!(e, StoreError::Full(_)) {
            err.status = StatusCode::INSUFFICIENT_STORAGE;
        }
        // Never a 404 when the store is down: clients would conclude the image is gone.
        err.store_failure = matches!(
            e,
            StoreError::Unavailable(_) | StoreError::PreconditionFailed(_) | StoreError::Full(_)
        );
        err
    }
}

impl From<AuthError> for OciError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Forbidden(name) => OciError::new(
                Code::Denied,
                format!("token `{name}` may not do this on this repository; ask for a token with the right oci scope"),
            ),
            AuthError::InvalidCredentials => {
                OciError::new(Code::Unauthorized, "invalid or expired credentials")
            }
            AuthError::Unauthenticated => OciError::new(Code::Unauthorized, "authentication required"),
        }
    }
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "errors": [{
                "code": self.code.as_str(),
                "message": self.message,
                "detail": serde_json::Value::Null,
            }]
        });
        let mut response = (self.status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(challenge) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if self.store_failure {
            response.extensions_mut().insert(StoreFailure);
        }
        response
    }
}
