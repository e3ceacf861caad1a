//! The HTTP client every upstream uses: rustls, bounded connect and read times (but no
//! total time: a 20 GiB model file may take a while), an optional bearer token, and one
//! mapping of failures to "not there" versus "cannot tell right now".

use super::fill::Open;
use super::Lookup;
use crate::store::ByteStream;
use futures::TryStreamExt;
use std::sync::Arc;
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// An upstream silent for this long mid-response counts as down.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Memory for the mutable names whose revalidation is remembered (~100,000 typical names).
const FRESH_BYTES: u64 = 16 * 1024 * 1024;

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

/// One configured upstream.
#[derive(Debug)]
pub struct Upstream {
    /// Without a trailing slash.
    pub base: String,
    pub ttl: Duration,
    pub http: reqwest::Client,
    pub token: Option<String>,
    /// Mutable names revalidated within the TTL, with what was found.
    pub fresh: moka::future::Cache<String, Lookup>,
}

impl Upstream {
    pub fn new(section: &str, settings: &UpstreamSettings) -> anyhow::Result<Upstream> {
        let base = settings.url.clone().unwrap_or_default();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!(
                "airlock/",
                env!("CARGO_PKG_VERSION"),
                " (pull-through)"
            ))
            .build()
            .map_err(|e| anyhow::anyhow!("`{section}.upstream`: HTTP client: {e}"))?;
        Ok(Upstream {
            base: base.trim_end_matches('/').to_string(),
            ttl: settings.ttl,
            http,
            token: settings
                .token_env
                .as_ref()
                .and_then(|v| std::env::var(v).ok()),
            // Keys are names clients asked for: bounded by their bytes, not their count.
            fresh: moka::future::Cache::builder()
                .max_capacity(FRESH_BYTES)
                .weigher(|k: &String, _: &Lookup| u32::try_from(k.len() + 64).unwrap_or(u32::MAX))
                .time_to_live(settings.ttl)
                .build(),
        })
    }

    /// `base` + `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A GET with the configured token; 2xx comes back, anything else as an error.
    pub async fn get(&self, url: &str, accept: &str) -> Result<reqwest::Response, UpstreamError> {
        let mut request = self.http.get(url).header(http::header::ACCEPT, accept);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        check(url, request.send().await)
    }
}

impl Upstream {
    /// A file's body at `url`, for the filler.
    pub fn open(self: Arc<Self>, url: String) -> Open {
        Box::pin(async move {
            let response = self.get(&url, "*/*").await?;
            let size = response.content_length();
            let body = response
                .bytes_stream()
                .map_err(|e| std::io::Error::other(chain(&e)));
            Ok((Box::pin(body) as ByteStream, size))
        })
    }
}

/// Maps a response (or a failure to get one) to the two errors callers distinguish.
pub fn check(
    url: &str,
    sent: reqwest::Result<reqwest::Response>,
) -> Result<reqwest::Response, UpstreamError> {
    let response = sent.map_err(|e| UpstreamError::Unavailable(format!("{url}: {}", chain(&e))))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    if status == http::StatusCode::NOT_FOUND {
        return Err(UpstreamError::NotFound(url.to_string()));
    }
    let hint = match status.as_u16() {
        401 | 403 => "; check the upstream_token_env token and its scopes",
        _ => "",
    };
    Err(UpstreamError::Unavailable(format!(
        "{url} answered {status}{hint}"
    )))
}

/// A reqwest error with its causes ("error sending request: connection refused").
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
