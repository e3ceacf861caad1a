//! The HTTP side of `airlock mirror`: one client for every upstream, with a concurrency
//! limit, retries with exponential backoff, and downloads that stream straight into the
//! blob store (verified there) or into a temporary file (when the digest is only known
//! once the bytes are in, as for small Hugging Face files).

use super::auth::RegistryAuth;
use crate::digest::{Algorithm, Digest, Hasher};
use crate::store::{BlobStore, StoreError};
use futures::TryStreamExt;
use indicatif::ProgressBar;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION};
use reqwest::{Response, StatusCode};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

/// Attempts per request: the first one and four retries (about 4 s of backoff in all).
const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// Why a fetch failed, in words for the summary.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The upstream answered 4xx: retrying would not help.
    #[error("{url}: upstream answered {status}{hint}")]
    Status {
        url: String,
        status: StatusCode,
        hint: String,
    },
    #[error("{url}: {reason} (after {ATTEMPTS} attempts)")]
    Gave { url: String, reason: String },
    #[error("{0}")]
    Verify(String),
    #[error("store: {0}")]
    Store(StoreError),
}

impl FetchError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, FetchError::Status { status, .. } if *status == StatusCode::NOT_FOUND)
    }
}

/// Extra headers and credentials for one request.
#[derive(Clone, Default)]
pub struct Req {
    pub headers: HeaderMap,
    /// Registry auth that answers `401` challenges (OCI token flow, Basic).
    pub registry: Option<Arc<RegistryAuth>>,
}

impl Req {
    pub fn accept(mut self, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(ACCEPT, v);
        }
        self
    }

    pub fn bearer(mut self, token: Option<&str>) -> Self {
        if let Some(v) = token.and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok()) {
            self.headers.insert(AUTHORIZATION, v);
        }
        self
    }
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// Bounds requests in flight (a download holds its permit until its body is in).
    limit: Arc<Semaphore>,
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

impl Client {
    pub fn new(concurrency: usize) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("airlock-mirror/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(20))
            .read_timeout(Duration::from_secs(120))
            .build()?;
        Ok(Client {
            http,
            limit: Arc::new(Semaphore::new(concurrency.max(1))),
        })
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// One attempt, answering a registry's `401` challenge once.
    async fn attempt(&self, url: &str, req: &Req) -> reqwest::Result<Response> {
        let mut headers = req.headers.clone();
        if let Some(auth) = &req.registry {
            auth.authorize(&mut headers).await;
        }
        let response = self.http.get(url).headers(headers.clone()).send().await?;
        match &req.registry {
            Some(auth) if response.status() == StatusCode::UNAUTHORIZED => {
                if auth.answer(self, &response).await {
                    let mut headers = req.headers.clone();
                    auth.authorize(&mut headers).await;
                    return self.http.get(url).headers(headers).send().await;
                }
                Ok(response)
            }
            _ => Ok(response),
        }
    }

    /// GET with retries on connection errors, 5xx and 429; a 4xx is returned as an error
    /// at once. Redirects are followed (Hub files and registry blobs live on CDNs).
    pub async fn get(&self, url: &str, req: &Req) -> Result<Response, FetchError> {
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
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
                        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                            "; give credentials (see `airlock mirror --help`)".to_string()
                        }
                        _ => String::new(),
                    };
                    return Err(FetchError::Status {
                        url: url.to_string(),
                        status,
                        hint,
                    });
                }
                Err(e) => last = error_chain(&e),
            }
            tracing::debug!(url, attempt, %last, "retrying");
        }
        Err(FetchError::Gave {
            url: url.to_string(),
            reason: last,
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
        for attempt in 0..ATTEMPTS {
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
        })
    }

    /// A small document (index page, API answer, manifest), refusing more than `limit`.
    pub async fn get_small(
        &self,
        url: &str,
        req: &Req,
        limit: usize,
    ) -> Result<(HeaderMap, bytes::Bytes), FetchError> {
        self.with_body(url, req, |response| async move {
            let headers = response.headers().clone();
            let body = Box::pin(response.bytes_stream().map_err(std::io::Error::other));
            match crate::store::collect_limited(body, limit).await {
                Ok(bytes) => Ok((headers, bytes)),
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
        let _permit = self.limit.acquire().await.expect("never closed");
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
        let _permit = self.limit.acquire().await.expect("never closed");
        self.with_body(url, req, |response| async move {
            write_hashing(response, path, progress)
                .await
                .map_err(|e| BodyError::Broken(e.to_string()))
        })
        .await
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
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
