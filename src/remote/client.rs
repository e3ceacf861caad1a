//! The one HTTP client for every outbound request, with two named profiles:
//!
//! - `pull_through`: a client of ours is waiting, so connect and read times are bounded
//!   (but not the total time: a 20 GiB model file may take a while) and nothing is
//!   retried: the client retries, and a down upstream must not slow every request.
//! - `mirror`: a batch job, so 5xx, 429 and transport errors are retried with exponential
//!   backoff, and a concurrency limit bounds the downloads in flight.
//!
//! Credentials are attached per request only for their own origin (`Req::bearer`), and
//! registry challenges are answered by `token.rs`.

use super::token::RegistryAuth;
use crate::digest::{Algorithm, Digest, Hasher};
use crate::store::{BlobStore, StoreError};
use futures::TryStreamExt;
use indicatif::ProgressBar;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION};
use reqwest::{Method, Response, StatusCode};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// How a client behaves: timeouts, retries, concurrency.
#[derive(Clone, Debug)]
pub struct Profile {
    user_agent: &'static str,
    connect_timeout: Duration,
    /// Silence mid-response for this long counts as a failure.
    read_timeout: Duration,
    /// Attempts per request (1: no retries).
    attempts: u32,
    /// Downloads in flight at once; `None`: unbounded.
    concurrency: Option<usize>,
    /// What a 401/403 answer tells the operator to check.
    auth_hint: &'static str,
}

impl Profile {
    pub fn pull_through() -> Profile {
        Profile {
            user_agent: concat!("airlock/", env!("CARGO_PKG_VERSION"), " (pull-through)"),
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
            attempts: 1,
            concurrency: None,
            auth_hint: "; check the upstream_token_env token and its scopes",
        }
    }

    /// Four retries after the first attempt (about 4 s of backoff in all).
    pub fn mirror(concurrency: usize) -> Profile {
        Profile {
            user_agent: concat!("airlock-mirror/", env!("CARGO_PKG_VERSION")),
            connect_timeout: Duration::from_secs(20),
            read_timeout: Duration::from_secs(120),
            attempts: 5,
            concurrency: Some(concurrency.max(1)),
            auth_hint: "; give credentials (see `airlock mirror --help`)",
        }
    }
}

/// Why a fetch failed, in words for a log line or the mirror's summary.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The upstream answered 4xx: retrying would not help.
    #[error("{url}: upstream answered {status}{hint}")]
    Status {
        url: String,
        status: StatusCode,
        hint: String,
    },
    /// Unreachable, timed out, a 5xx or a body cut off, as often as the profile tries.
    #[error("{url}: {reason}{}", attempts_note(*.attempts))]
    Gave {
        url: String,
        reason: String,
        attempts: u32,
    },
    #[error("{0}")]
    Verify(String),
    #[error("store: {0}")]
    Store(StoreError),
}

fn attempts_note(attempts: u32) -> String {
    match attempts {
        0 | 1 => String::new(),
        n => format!(" (after {n} attempts)"),
    }
}

impl FetchError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, FetchError::Status { status, .. } if *status == StatusCode::NOT_FOUND)
    }
}

/// How one request is sent: method, headers, and which credentials may go with it.
#[derive(Clone, Default)]
pub struct Req {
    pub method: Method,
    pub headers: HeaderMap,
    /// A bearer token and the one origin it may be sent to.
    bearer: Option<(String, url::Origin)>,
    /// Registry auth that answers `401` challenges, with the scope this request needs.
    registry: Option<(Arc<RegistryAuth>, String)>,
}

impl Req {
    pub fn head(mut self) -> Self {
        self.method = Method::HEAD;
        self
    }

    pub fn accept(mut self, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(ACCEPT, v);
        }
        self
    }

    /// `token` goes with requests to `origin_of` (scheme, host and port) only: a page or
    /// listing from there may name files anywhere, and those get no credentials.
    pub fn bearer(mut self, token: Option<&str>, origin_of: &str) -> Self {
        if let (Some(token), Ok(url)) = (token, url::Url::parse(origin_of)) {
            self.bearer = Some((token.to_string(), url.origin()));
        }
        self
    }

    /// Answers registry challenges with `auth` for `scope` (`repository:<name>:pull`).
    pub fn registry(mut self, auth: Arc<RegistryAuth>, scope: String) -> Self {
        self.registry = Some((auth, scope));
        self
    }

    /// The headers for `url`: the bearer token only when `url` is on its origin.
    fn headers_for(&self, url: &str) -> HeaderMap {
        let mut headers = self.headers.clone();
        if let Some((token, origin)) = &self.bearer {
            let same = url::Url::parse(url).is_ok_and(|u| u.origin() == *origin);
            if let (true, Ok(v)) = (same, HeaderValue::from_str(&format!("Bearer {token}"))) {
                headers.insert(AUTHORIZATION, v);
            }
        }
        headers
    }
}

/// One client with its profile; cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    profile: Profile,
    /// Bounds downloads in flight (a download holds its permit until its body is in).
    limit: Option<Arc<Semaphore>>,
}

fn retryable(status: StatusCode) -> bool {
    // 429 is a 4xx, but it means "later", not "never".
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

async fn backoff(attempt: u32) {
    let base = FIRST_BACKOFF * 2u32.pow(attempt);
    let jitter = Duration::from_millis(rand::random::<u64>() % 100);
    tokio::time::sleep(base + jitter).await;
}

/// A small answer read whole: its headers, body and final URL (after redirects).
pub struct Small {
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
    pub url: url::Url,
}

impl Client {
    pub fn new(profile: Profile) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .user_agent(profile.user_agent)
            .connect_timeout(profile.connect_timeout)
            .read_timeout(profile.read_timeout)
            .build()
            .map_err(|e| anyhow::anyhow!("HTTP client: {e}"))?;
        Ok(Client {
            http,
            limit: profile.concurrency.map(|n| Arc::new(Semaphore::new(n))),
            profile,
        })
    }

    fn attempts(&self) -> u32 {
        self.profile.attempts.max(1)
    }

    /// One attempt, answering a registry's `401` challenge once.
    async fn attempt(&self, url: &str, req: &Req) -> reqwest::Result<Response> {
        let mut headers = req.headers_for(url);
        if let Some((auth, scope)) = &req.registry {
            auth.authorize(url, scope, &mut headers);
        }
        let send = |headers: HeaderMap| self.http.request(req.method.clone(), url).headers(headers);
        let response = send(headers).send().await?;
        match &req.registry {
            Some((auth, scope)) if response.status() == StatusCode::UNAUTHORIZED => {
                if auth.answer(self, &response, scope).await {
                    let mut headers = req.headers_for(url);
                    auth.authorize(url, scope, &mut headers);
                    return send(headers).send().await;
                }
                Ok(response)
            }
            _ => Ok(response),
        }
    }

    /// A request with the profile's retries on connection errors, 5xx and 429; a 4xx is
    /// returned as an error at once. Redirects are followed (Hub files and registry
    /// blobs live on CDNs); reqwest drops `Authorization` when one leaves the origin.
    pub async fn get(&self, url: &str, req: &Req) -> Result<Response, FetchError> {
        let mut last = String::new();
        for attempt in 0..self.attempts() {
            if attempt > 0 {
                backoff(attempt - 1).await;
            }
            match self.attempt(url, req).await {
                Ok(r) if r.status().is_success() => return Ok(r),
                Ok(r) if retryable(r.status()) => {
                    last = format!("upstream answered {}", r.status())
                }
                Ok(r) => {
                    let status = r.status();
                    let hint = match status {
                        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => self.profile.auth_hint,
                        _ => "",
                    };
                    return Err(FetchError::Status {
                        url: url.to_string(),
                        status,
                        hint: hint.to_string(),
                    });
                }
                Err(e) => last = error_chain(&e),
            }
            tracing::debug!(url, attempt, %last, "retrying");
        }
        Err(FetchError::Gave {
            url: url.to_string(),
            reason: last,
            attempts: self.attempts(),
        })
    }

    /// Runs `consume` on a fresh response until it succeeds: a body that breaks off
    /// midway (`Broken`) is fetched again with backoff, anything else ends the fetch.
    async fn with_body<T, F, Fut>(
        &self,
        url: &str,
        req: &Req,
        mut consume: F,
    ) -> Result<T, FetchError>
    where
        F: FnMut(Response) -> Fut,
        Fut: std::future::Future<Output = Result<T, BodyError>>,
    {
        let mut last = String::new();
        for attempt in 0..self.attempts() {
            if attempt > 0 {
                backoff(attempt - 1).await;
            }
            match consume(self.get(url, req).await?).await {
                Ok(done) => return Ok(done),
                Err(BodyError::Broken(reason)) => last = reason,
                Err(BodyError::Fatal(e)) => return Err(e),
            }
        }
        Err(FetchError::Gave {
            url: url.to_string(),
            reason: last,
            attempts: self.attempts(),
        })
    }

    /// A small document (index page, API answer, manifest), refusing more than `limit`.
    pub async fn get_small(&self, url: &str, req: &Req, limit: usize) -> Result<Small, FetchError> {
        self.with_body(url, req, |response| async move {
            let headers = response.headers().clone();
            let final_url = response.url().clone();
            let body = Box::pin(
                response
                    .bytes_stream()
                    .map_err(|e| std::io::Error::other(error_chain(&e))),
            );
            match crate::store::collect_limited(body, limit).await {
                Ok(body) => Ok(Small {
                    headers,
                    body,
                    url: final_url,
                }),
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    Err(BodyError::Fatal(FetchError::Verify(format!("{url}: {e}"))))
                }
                Err(e) => Err(BodyError::Broken(e.to_string())),
            }
        })
        .await
    }

    /// Streams a body into the blob store under `digest`: the store verifies digest and
    /// size before anything is visible. A body cut off midway is fetched again.
    pub async fn download_blob(
        &self,
        url: &str,
        req: &Req,
        blobs: &BlobStore,
        digest: &Digest,
        size: Option<u64>,
        progress: &ProgressBar,
    ) -> Result<u64, FetchError> {
        let _permit = self.permit().await;
        self.with_body(url, req, |response| async move {
            let bar = progress.clone();
            let body = Box::pin(
                response
                    .bytes_stream()
                    .map_err(|e| std::io::Error::other(error_chain(&e)))
                    .inspect_ok(move |chunk| bar.inc(chunk.len() as u64)),
            );
            match blobs.put(digest, body, size).await {
                Ok(meta) => Ok(meta.size),
                // The connection broke: nothing was published, try again.
                Err(StoreError::Body(e)) => Err(BodyError::Broken(e.to_string())),
                Err(e @ (StoreError::DigestMismatch { .. } | StoreError::SizeMismatch { .. })) => {
                    Err(BodyError::Fatal(FetchError::Verify(format!(
                        "{url}: {e}; nothing was stored"
                    ))))
                }
                Err(e) => Err(BodyError::Fatal(FetchError::Store(e))),
            }
        })
        .await
    }

    /// Downloads into `path`, returning its sha256, git blob oid and size: for bodies
    /// whose digest the upstream does not announce up front.
    pub async fn download_file(
        &self,
        url: &str,
        req: &Req,
        path: &Path,
        progress: &ProgressBar,
    ) -> Result<(Digest, String, u64), FetchError> {
        let _permit = self.permit().await;
        self.with_body(url, req, |response| async move {
            write_hashing(response, path, progress)
                .await
                .map_err(|e| BodyError::Broken(e.to_string()))
        })
        .await
    }

    async fn permit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        match &self.limit {
            Some(limit) => Some(limit.acquire().await.expect("never closed")),
            None => None,
        }
    }
}

/// How consuming a response body failed.
enum BodyError {
    /// Cut off midway: worth fetching again.
    Broken(String),
    Fatal(FetchError),
}

async fn write_hashing(
    response: Response,
    path: &Path,
    progress: &ProgressBar,
) -> std::io::Result<(Digest, String, u64)> {
    use sha1::Digest as _;
    let mut file = tokio::fs::File::create(path).await?;
    let mut sha256 = Hasher::new(Algorithm::Sha256);
    let mut size = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.try_next().await.map_err(std::io::Error::other)? {
        sha256.update(&chunk);
        file.write_all(&chunk).await?;
        size += chunk.len() as u64;
        progress.inc(chunk.len() as u64);
    }
    file.flush().await?;
    drop(file);
    // The git blob oid hashes a header with the length before the content, so it is
    // computed from the file now that the length is known.
    let mut git = sha1::Sha1::new();
    git.update(format!("blob {size}\0").as_bytes());
    let mut f = tokio::fs::File::open(path).await?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = tokio::io::AsyncReadExt::read(&mut f, &mut buf).await?;
        if n == 0 {
            break;
        }
        git.update(&buf[..n]);
    }
    Ok((sha256.finish(), hex::encode(git.finalize()), size))
}

/// The error and its sources on one line ("error sending request: connection refused").
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
