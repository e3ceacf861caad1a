//! The S3 API: a read-only view of the Hugging Face repositories for S3 clients (boto3,
//! `aws s3`, rclone, KServe's `s3://` storage initializer), not a protocol of its own.
//! Buckets `models` and `datasets` hold keys `<org>/<name>/<path>` (`keys.rs` has the
//! whole mapping, revision pins included); like `catalog` it is a cross-cutting module,
//! reading the repositories through the Hub's domain API (`Repos`, `hf::access`), never
//! its handlers. It is served on a listener of its own (`[s3api] listen`): path-style
//! requests (`/bucket/key`) would collide with the Hub's routes at the root.
//!
//! Credentials: the access key id is a `[[tokens]]` name (`admin` for the admin token)
//! and the secret access key is that token's secret (`Auth::s3_secret`). A signed request
//! then has exactly the read permission that token has on the Hub routes; an unsigned
//! one is anonymous, allowed when `anonymous_read` is on and then only for what the Hub
//! shows anonymously.
//!
//! - `sigv4`: Signature Version 4 verification (headers and presigned URLs);
//! - `query`: the query string decoded once, shared by `sigv4` and `endpoint` so what is
//!   signed and what is served agree;
//! - `endpoint`: every S3 request as one typed `Endpoint`, path-style or virtual-hosted;
//! - `error` and `xml`: the S3 XML error body and the listing documents;
//! - `keys`: buckets and keys to repositories, revisions and paths;
//! - `listing`: ListObjects v1/v2 over the repositories; `handlers`: the operations;
//! - `object`: the one function answering GetObject and HeadObject with a file's bytes.

pub mod endpoint;
pub mod error;
mod handlers;
pub mod keys;
pub mod listing;
pub mod object;
pub mod query;
pub mod sigv4;
pub mod xml;

use crate::auth::{Action, Auth, Identity, Protocol};
use crate::hf::pullthrough::Pull;
use crate::hf::repo::Repos;
use crate::observe::RouteLabel;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use endpoint::{Endpoint, Target};
use error::{Code, S3Error};
use http::request::Parts;
use serde::Deserialize;
use std::sync::Arc;
use std::time::SystemTime;

/// `[s3api]` in the config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3ApiSettings {
    /// Where the S3 API listens (`127.0.0.1:9000`); unset: no S3 API.
    pub listen: Option<String>,
    /// The URL S3 clients reach it at (their `endpoint_url`), shown in the catalog.
    pub public_url: Option<String>,
    /// The base of virtual-hosted bucket names: `s3.example.org` makes
    /// `models.s3.example.org` the bucket `models`. Default: `public_url`'s host.
    pub domain: Option<String>,
    /// What GetBucketLocation and HeadBucket answer (clients sign with any region).
    pub region: String,
}

impl Default for S3ApiSettings {
    fn default() -> Self {
        S3ApiSettings {
            listen: None,
            public_url: None,
            domain: None,
            region: "us-east-1".into(),
        }
    }
}

impl S3ApiSettings {
    /// The virtual-hosted base domain, if any.
    pub fn virtual_host_domain(&self) -> Option<String> {
        self.domain.clone().or_else(|| {
            let url = url::Url::parse(self.public_url.as_deref()?).ok()?;
            url.host_str().map(str::to_string)
        })
    }
}

/// What the S3 view reads.
#[derive(Clone, Debug)]
pub struct S3State {
    pub repos: Repos,
    pub auth: Arc<Auth>,
    pub region: Arc<str>,
    pub domain: Option<Arc<str>>,
    /// The Hub's pull-through (`[hf] upstream`), when set: a repository or file missing
    /// here is brought in exactly as the Hub routes would bring it.
    pub pull: Option<Pull>,
}

impl S3State {
    pub fn new(
        repos: Repos,
        auth: Arc<Auth>,
        settings: &S3ApiSettings,
        pull: Option<Pull>,
    ) -> S3State {
        S3State {
            pull,
            repos,
            auth,
            region: settings.region.as_str().into(),
            domain: settings.virtual_host_domain().map(Into::into),
        }
    }
}

/// Every request of the S3 listener: the S3 API owns its whole namespace.
pub fn routes<S>(state: S3State) -> Router<S> {
    Router::new().fallback(dispatch).with_state(Arc::new(state))
}

async fn dispatch(State(state): State<Arc<S3State>>, request: Request) -> Response {
    // Nothing served reads a body (writes are refused unread, and drained by the server).
    let (parts, _body) = request.into_parts();
    let (operation, result) = serve(&state, &parts).await;
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    response.extensions_mut().insert(RouteLabel(operation));
    response
}

/// The operation's name (for the access log) and its answer.
async fn serve(state: &S3State, request: &Parts) -> (&'static str, Result<Response, S3Error>) {
    let headers = &request.headers;
    // HTTP/2's `:authority` was copied into `Host` by the server's middleware.
    let host = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok());
    let target = Target {
        method: &request.method,
        host,
        path: request.uri.path(),
        query: request.uri.query().unwrap_or(""),
        headers,
    };
    let endpoint = match Endpoint::parse(&target, state.domain.as_deref()) {
        Ok(e) => e,
        Err(e) => return ("S3Invalid", Err(e)),
    };
    let operation = endpoint.operation();
    let result = async {
        let identity = identify(state, request)?;
        if endpoint.action().is_none() {
            return Err(S3Error::not_implemented(operation));
        }
        precheck(&state.auth, &identity)?;
        handlers::serve(state, &identity, endpoint, headers).await
    }
    .await;
    (operation, result)
}

/// Who signed the request (or nobody): a signature that does not verify is refused, never
/// taken for anonymous.
fn identify(state: &S3State, request: &Parts) -> Result<Identity, S3Error> {
    let signed = sigv4::Request {
        method: &request.method,
        path: request.uri.path(),
        query: request.uri.query().unwrap_or(""),
        headers: &request.headers,
    };
    match sigv4::authenticate(&signed, SystemTime::now(), |key| state.auth.s3_secret(key))? {
        sigv4::Caller::Anonymous => Ok(Identity::Anonymous),
        sigv4::Caller::Key(name) => state
            .auth
            .identity_named(&name)
            .ok_or_else(|| S3Error::from(sigv4::SigError::InvalidAccessKeyId)),
    }
}

/// Before any store read: the caller may read something on the Hub at all (anonymous
/// reads on, or a token with a read scope). Which repositories is decided per repository,
/// exactly as the Hub decides it (`hf::access`).
fn precheck(auth: &Auth, identity: &Identity) -> Result<(), S3Error> {
    auth.authorize_some(identity, Protocol::Hf, Action::Read)
        .map_err(|e| S3Error::new(Code::AccessDenied, format!("Access Denied: {e}")))
}
