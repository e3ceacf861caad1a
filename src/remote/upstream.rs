//! One protocol's pull-through upstream: where it is, its token, how long a mutable
//! name stays fresh, and the one mapping of failures to "not there" versus "cannot tell
//! right now".

use super::client::{error_chain, Client, FetchError, Profile, Req};
use super::fill::Open;
use crate::store::ByteStream;
use futures::TryStreamExt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// `upstream_ttl` unless configured.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// One protocol's upstream as configured (`upstream`, `upstream_ttl`, `upstream_token_env`).
#[derive(Clone, Debug, Default)]
pub struct UpstreamSettings {
    pub url: Option<String>,
    pub ttl: Duration,
    pub token_env: Option<String>,
}

impl UpstreamSettings {
    /// Checks the keys of `[section]`; the message names the key and the fix.
    pub fn validate(&self, section: &str) -> Result<(), String> {
        if let Some(url) = &self.url {
            let ok = url::Url::parse(url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(format!(
                    "`{section}.upstream`: `{url}` is not an http(s) URL; write e.g. http://airlock.upper-zone:8080"
                ));
            }
        }
        if let Some(var) = &self.token_env {
            if std::env::var(var).is_err() {
                return Err(format!(
                    "`{section}.upstream_token_env`: environment variable {var} is not set; export it or remove the key"
                ));
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream answered that it does not have this.
    #[error("not found upstream: {0}")]
    NotFound(String),
    /// Unreachable, timed out, a 5xx, refused credentials, or sent something unusable:
    /// callers answer 5xx, so clients retry instead of concluding the thing is gone.
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
}

impl From<FetchError> for UpstreamError {
    fn from(e: FetchError) -> UpstreamError {
        match e {
            FetchError::Status { url, status, .. } if status == reqwest::StatusCode::NOT_FOUND => {
                UpstreamError::NotFound(url)
            }
            e => UpstreamError::Unavailable(e.to_string()),
        }
    }
}

/// What revalidating a mutable name found upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Found, and stored.
    Stored,
    /// The upstream does not have it.
    Absent,
}

/// One configured upstream.
#[derive(Debug)]
pub struct Upstream {
    /// Without a trailing slash.
    pub base: String,
    pub ttl: Duration,
    pub client: Client,
    pub token: Option<String>,
    /// Mutable names revalidated within the TTL, with what was found.
    pub fresh: moka::future::Cache<String, Lookup>,
}

impl Upstream {
    /// `fresh_bytes`: memory for the mutable names whose revalidation is remembered.
    pub fn new(
        section: &str,
        settings: &UpstreamSettings,
        fresh_bytes: u64,
    ) -> anyhow::Result<Upstream> {
        let base = settings.url.clone().unwrap_or_default();
        let client = Client::new(Profile::pull_through())
            .map_err(|e| anyhow::anyhow!("`{section}.upstream`: {e}"))?;
        Ok(Upstream {
            base: base.trim_end_matches('/').to_string(),
            ttl: settings.ttl,
            client,
            token: settings
                .token_env
                .as_ref()
                .and_then(|v| std::env::var(v).ok()),
            // Keys are names clients asked for: bounded by their bytes, not their count.
            fresh: moka::future::Cache::builder()
                .max_capacity(fresh_bytes)
                .weigher(|k: &String, _: &Lookup| u32::try_from(k.len() + 64).unwrap_or(u32::MAX))
                .time_to_live(settings.ttl)
                .build(),
        })
    }

    /// `base` + `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request whose token goes to the upstream's own origin only: a page may name
    /// files anywhere, and those are fetched without credentials.
    pub fn req(&self) -> Req {
        Req::default().bearer(self.token.as_deref(), &self.base)
    }

    /// A GET; 2xx comes back, anything else as an error.
    pub async fn get(&self, url: &str, accept: &str) -> Result<reqwest::Response, UpstreamError> {
        Ok(self.client.get(url, &self.req().accept(accept)).await?)
    }

    /// A file's body at `url`, for the filler.
    pub fn open(self: Arc<Self>, url: String) -> Open {
        Box::pin(async move {
            let response = self.get(&url, "*/*").await?;
            Ok(body_of(response))
        })
    }
}

/// A response's body and announced length, for the filler.
pub fn body_of(response: reqwest::Response) -> (ByteStream, Option<u64>) {
    let size = response.content_length();
    let body = response
        .bytes_stream()
        .map_err(|e| std::io::Error::other(error_chain(&e)));
    (Box::pin(body) as ByteStream, size)
}

/// Revalidates `key` unless that was done within the TTL; concurrent callers for one
/// key share one upstream request. `have` is whether the store already holds a version.
/// Upstream down: fine if we have one (served stale), else the error for a 5xx.
pub async fn revalidate<F>(
    upstream: &Upstream,
    key: String,
    have: bool,
    fetch: F,
) -> Result<Lookup, UpstreamError>
where
    F: Future<Output = Result<Lookup, UpstreamError>> + Send,
{
    match upstream.fresh.try_get_with(key.clone(), fetch).await {
        Ok(found) => Ok(found),
        Err(e) if have => {
            tracing::warn!(upstream = %upstream.base, %key, error = %e, "upstream unreachable; serving the stored copy");
            // Not asked again for a TTL: a down upstream must not slow every request.
            upstream.fresh.insert(key, Lookup::Stored).await;
            Ok(Lookup::Stored)
        }
        Err(e) => Err(Arc::unwrap_or_clone(e)),
    }
}
