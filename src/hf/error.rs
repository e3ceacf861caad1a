//! Hub errors as huggingface_hub reads them: `X-Error-Code` decides the exception
//! (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`, `GatedRepo`), `X-Error-Message`
//! and a JSON `{"error": ...}` body carry the text. Without the code a 404 turns into
//! "check your connection" in the client, so every 404 here has one.

use crate::auth::AuthError;
use crate::observe::StoreFailure;
use crate::store::StoreError;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};

#[derive(Clone, Debug)]
pub struct HfError {
    pub status: StatusCode,
    pub code: Option<&'static str>,
    pub message: String,
    /// Sent with EntryNotFound so the client can cache the absence for that commit.
    pub repo_commit: Option<String>,
    store_failure: bool,
}

impl HfError {
    pub fn new(status: StatusCode, code: Option<&'static str>, message: impl Into<String>) -> Self {
        HfError {
            status,
            code,
            message: message.into(),
            repo_commit: None,
            store_failure: false,
        }
    }

    pub fn repo_not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            Some("RepoNotFound"),
            format!("Repository Not Found for url: {id}. Please make sure you specified the correct `repo_id` and `repo_type`. If you are trying to access a private or gated repo, make sure you are authenticated."),
        )
    }

    pub fn revision_not_found(rev: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            Some("RevisionNotFound"),
            format!("Invalid rev id: {rev}"),
        )
    }

    pub fn entry_not_found(path: &str, commit: &str) -> Self {
        let mut e = Self::new(
            StatusCode::NOT_FOUND,
            Some("EntryNotFound"),
            format!("Entry not found: {path}"),
        );
        e.repo_commit = Some(commit.to_string());
        e
    }

    /// 401 for anonymous callers, 403 for tokens without access (as the Hub answers).
    pub fn gated(id: &str, anonymous: bool) -> Self {
        let status = if anonymous {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::FORBIDDEN
        };
        Self::new(
            status,
            Some("GatedRepo"),
            format!("Access to repository {id} is restricted: use an Airlock token (HF_TOKEN) with a read scope for it"),
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, None, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, None, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, None, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, Some("EntryNotFound"), message)
    }
}

impl From<StoreError> for HfError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::RangeNotSatisfiable { .. } => {
                Self::new(StatusCode::RANGE_NOT_SATISFIABLE, None, e.to_string())
            }
            StoreError::DigestMismatch { .. }
            | StoreError::SizeMismatch { .. }
            | StoreError::Body(_)
            | StoreError::InvalidKey(_) => Self::bad_request(e.to_string()),
            StoreError::PreconditionFailed(_) => Self::conflict(e.to_string()),
            StoreError::Full(_) => {
                let mut err = Self::new(StatusCode::INSUFFICIENT_STORAGE, None, e.to_string());
                err.store_failure = true;
                err
            }
            // Metadata pointed at a blob that is gone: the store is damaged, not the request.
            // Never a 404 without code: clients would fall back to "check your connection".
            StoreError::NotFound(_) | StoreError::Unavailable(_) => {
                let mut err = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    None,
                    format!("storage unavailable: {e}"),
                );
                err.store_failure = true;
                err
            }
        }
    }
}

impl From<AuthError> for HfError {
    fn from(e: AuthError) -> Self {
        match e {
            // The exact text makes huggingface_hub report a token problem, not a missing repo.
            AuthError::InvalidCredentials => Self::new(
                StatusCode::UNAUTHORIZED,
                None,
                "Invalid credentials in Authorization header",
            ),
            AuthError::Unauthenticated => Self::new(
                StatusCode::UNAUTHORIZED,
                Some("RepoNotFound"),
                "Authentication required: set HF_TOKEN to an Airlock token",
            ),
            AuthError::Forbidden(name) => Self::forbidden(format!(
                "token `{name}` does not have the permission needed for this repository"
            )),
        }
    }
}

impl IntoResponse for HfError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string();
        let mut response = (
            self.status,
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        let headers = response.headers_mut();
        if let Some(code) = self.code {
            headers.insert("x-error-code", HeaderValue::from_static(code));
        }
        // Header values must be visible ASCII; the JSON body keeps the full text.
        let ascii: String = self
            .message
            .chars()
            .map(|c| {
                if c.is_ascii() && !c.is_ascii_control() {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        if let Ok(v) = HeaderValue::from_str(&ascii) {
            headers.insert("x-error-message", v);
        }
        if let Some(commit) = &self.repo_commit {
            if let Ok(v) = HeaderValue::from_str(commit) {
                headers.insert("x-repo-commit", v);
            }
        }
        if self.store_failure {
            response.extensions_mut().insert(StoreFailure);
        }
        response
    }
}
