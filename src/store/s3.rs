//! S3-compatible backend (AWS S3, MinIO, Ceph RGW, Garage) through aws-sdk-s3.
//!
//! Objects live at `<prefix>/<key>` in one bucket. Reads stream the response body
//! straight through. A put buffers at most two parts (one uploading, one filling): a
//! body that fits in one part becomes one PutObject after verification; a larger one
//! becomes a multipart upload that is completed only once the whole body has arrived and
//! matched its digest and size, and aborted otherwise — also when the put is dropped
//! half-way, from a guard that spawns the abort. So nothing is ever visible unless it is
//! complete and verified.
//!
//! Conditional puts: servers that honour `If-None-Match: *` / `If-Match` on PutObject and
//! CompleteMultipartUpload do the check themselves (`Native`). Garage accepts and ignores
//! those headers, so for it the check is a HEAD and the put under a lock kept in the
//! bucket itself (`Lock`, see `lock.rs`): safe for any number of Airlock replicas.
//! `Local` keeps that lock inside this process only (one replica per bucket, one request
//! fewer per update). `Auto` probes at open.

mod lock;

use super::keyed_locks::KeyedLocks;
use super::verify::Verifier;
use super::{
    ByteRange, ByteStream, GetOptions, GetResult, ListPage, ObjectKey, ObjectMeta, ObjectStore,
    PutMode, PutOptions, PutResult, Result, StoreError,
};
use async_trait::async_trait;
use aws_config::meta::region::RegionProviderChain;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{
    Credentials, ProvideCredentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use std::ops::Range;
use std::time::{Duration, SystemTime};

/// Parts are at least this large (S3's minimum is 5 MiB); larger when the expected size
/// would otherwise need more than `MAX_PARTS`.
const PART_SIZE: usize = 8 * 1024 * 1024;
const MAX_PARTS: u64 = 10_000;
/// The largest object one CopyObject may copy; beyond it, UploadPartCopy.
const COPY_OBJECT_LIMIT: u64 = 5 * 1024 * 1024 * 1024;
const COPY_PART_SIZE: u64 = 1024 * 1024 * 1024;
/// S3's largest part.
const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;
/// Without an expected size, the part size doubles every this many parts, so even a
/// body of unknown length stays under `MAX_PARTS`.
const PARTS_PER_DOUBLING: i32 = 1_000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Written under the store prefix at open to learn whether the server enforces
/// conditional writes. The leading `.` keeps it out of listings: no `ObjectKey` has one.
const PROBE_DIR: &str = ".airlock-probe";

/// How conditional puts (`PutMode::Create`/`Update`) are made safe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConditionalWrites {
    /// Probe the server at open: native if it honours `If-None-Match`/`If-Match` on
    /// PutObject, local otherwise.
    #[default]
    Auto,
    /// The server enforces `If-None-Match: *` and `If-Match: <etag>` (AWS S3, MinIO, Ceph RGW).
    Native,
    /// Check-then-put under a per-key lock kept in the bucket (servers that ignore the
    /// headers, such as Garage): safe for several Airlock replicas on one bucket.
    Lock,
    /// Check-then-put under a per-key lock inside this process only: safe for one Airlock
    /// replica per bucket.
    Local,
}

/// S3 connection settings; credentials come from the standard AWS chain.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// Endpoint URL for non-AWS servers (`AWS_ENDPOINT_URL` when unset).
    pub endpoint: Option<String>,
    /// Region (`AWS_REGION` when unset; `us-east-1` as a last resort).
    pub region: Option<String>,
    /// Path-style addressing (`http://host/bucket/key`); defaults to on when an endpoint is set.
    pub path_style: Option<bool>,
    #[serde(default)]
    pub conditional_writes: ConditionalWrites,
    /// Answer blob downloads with a redirect to a presigned URL of the object, so the
    /// bytes flow from S3 to the client without passing through Airlock.
    #[serde(default)]
    pub redirect_downloads: bool,
    /// The S3 endpoint as clients reach it, when that differs from `endpoint`.
    pub redirect_endpoint: Option<String>,
    /// How long a presigned URL stays valid (humantime, e.g. "5m").
    pub redirect_expiry: Option<String>,
    /// Static credentials for embedding Airlock (tests use them to avoid touching the
    /// process environment); else the standard AWS chain. Never read from the config
    /// file, which should not hold secrets.
    #[serde(skip)]
    pub access_key_id: Option<String>,
    #[serde(skip)]
    pub secret_access_key: Option<String>,
    /// How long a write-lock entry of a dead process blocks its key (`Lock` mode); tests
    /// shorten it to see one recovered.
    #[serde(skip)]
    pub lock_lease: Option<Duration>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("conditional_writes", &self.conditional_writes)
            .field("redirect_downloads", &self.redirect_downloads)
            .field("redirect_endpoint", &self.redirect_endpoint)
            .field("redirect_expiry", &self.redirect_expiry)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

pub struct S3Store {
    client: Client,
    bucket: String,
    /// The store prefix with a trailing `/`, or empty: prepended to every key.
    base: String,
    /// For error messages and logs.
    endpoint: String,
    /// Never `Auto` once open.
    conditional: ConditionalWrites,
    /// Send `UNSIGNED-PAYLOAD` instead of hashing every upload for the signature: only
    /// over https, where TLS already protects the bytes (the AWS Java SDK's default too).
    /// Over plain http the signature is the only integrity check on the wire, so it stays.
    unsigned_payload: bool,
    /// Serializes check-then-put per key in this process (`Lock` and `Local` modes).
    put_locks: KeyedLocks<String>,
    /// The lock shared by all processes on the bucket, in `Lock` mode.
    bucket_locks: lock::BucketLocks,
    /// With `redirect_downloads`: the client that signs download URLs (its endpoint is
    /// the one clients reach) and how long the URLs live.
    presigner: Option<(Client, Duration)>,
}

/// How long a presigned download URL lives unless `s3.redirect_expiry` says otherwise:
/// long enough for a slow client to start, short enough that a leaked URL soon expires.
const DEFAULT_REDIRECT_EXPIRY: Duration = Duration::from_secs(300);

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("store", &self.describe())
            .field("endpoint", &self.endpoint)
            .field("conditional", &self.conditional)
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// Connects, checks that the bucket can be listed, and (with `ConditionalWrites::Auto`)
    /// probes whether the server enforces conditional writes. Errors are one line that
    /// says what to fix.
    pub async fn open(
        bucket: String,
        prefix: String,
        settings: &S3Settings,
    ) -> anyhow::Result<Self> {
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        // The default region chain ends with EC2 instance metadata, which costs seconds
        // of timeouts off EC2; Airlock falls back to us-east-1 instead.
        let region = RegionProviderChain::first_try(settings.region.clone().map(Region::new))
            .or_else(aws_config::environment::EnvironmentVariableRegionProvider::new())
            .or_else(aws_config::profile::ProfileFileRegionProvider::new())
            .or_else(Region::new("us-east-1"));
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http_client.clone())
            .region(region)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .build(),
            )
            .retry_config(RetryConfig::standard());
        if let Some(endpoint) = &settings.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        match (&settings.access_key_id, &settings.secret_access_key) {
            (Some(id), Some(secret)) => {
                loader = loader.credentials_provider(Credentials::new(
                    id,
                    secret,
                    None,
                    None,
                    "airlock-settings",
                ));
            }
            (None, None) => {}
            _ => anyhow::bail!("S3 settings give only one of access_key_id and secret_access_key: give both or neither"),
        }
        let sdk = loader.load().await;
        let endpoint_url = settings
            .endpoint
            .clone()
            .or_else(|| sdk.endpoint_url().map(str::to_string));
        let endpoint = endpoint_url.clone().unwrap_or_else(|| {
            let region = sdk.region().map_or("us-east-1", |r| r.as_ref());
            format!("https://s3.{region}.amazonaws.com")
        });

        // Asking for credentials first turns "none anywhere" into its own message
        // instead of a signing failure.
        let Some(provider) = sdk.credentials_provider() else {
            anyhow::bail!("no S3 credentials configured for bucket {bucket}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE");
        };
        if let Err(e) = provider.provide_credentials().await {
            anyhow::bail!(
                "no S3 credentials found for bucket {bucket}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE ({})",
                error_chain(&e)
            );
        }

        let config = aws_sdk_s3::config::Builder::from(&sdk)
            .http_client(http_client)
            .force_path_style(settings.path_style.unwrap_or(endpoint_url.is_some()))
            // Since 2025 the SDKs add CRC checksums to every upload (as aws-chunked
            // trailers) and check them on every download. Older Garage, Ceph RGW and MinIO
            // releases refuse those uploads, and each costs a pass over the bytes; S3
            // requires them only for operations Airlock does not use. Blob digests are
            // verified by Airlock itself.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        let unsigned_payload = endpoint.starts_with("https://");
        let prefix = prefix.trim_matches('/');
        let presigner = match settings.redirect_downloads {
            false => None,
            true => {
                let expiry = match &settings.redirect_expiry {
                    None => DEFAULT_REDIRECT_EXPIRY,
                    Some(text) => humantime::parse_duration(text)
                        .ok()
                        .filter(|d| (Duration::from_secs(1)..=Duration::from_secs(7 * 86400)).contains(d))
                        .ok_or_else(|| anyhow::anyhow!(
                            "s3.redirect_expiry `{text}` is not a duration between 1s and 7d: write it as \"5m\""
                        ))?,
                };
                let signing = match &settings.redirect_endpoint {
                    Some(url) => config.to_builder().endpoint_url(url).build(),
                    None => config.clone(),
                };
                Some((Client::from_conf(signing), expiry))
            }
        };
        let client = Client::from_conf(config);
        let base = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        let mut store = S3Store {
            presigner,
            bucket_locks: lock::BucketLocks::new(
                client.clone(),
                bucket.clone(),
                &base,
                settings.lock_lease.unwrap_or(lock::DEFAULT_LEASE),
            ),
            client,
            base,
            bucket,
            endpoint,
            conditional: settings.conditional_writes,
            unsigned_payload,
            put_locks: KeyedLocks::default(),
        };

        store
            .client
            .list_objects_v2()
            .bucket(&store.bucket)
            .prefix(&store.base)
            .max_keys(1)
            .send()
            .await
            .map_err(|e| store.open_error(e))?;
        if store.conditional == ConditionalWrites::Auto {
            store.conditional = store.probe_conditional_writes().await?;
            match store.conditional {
                ConditionalWrites::Native => tracing::info!(
                    store = %store.describe(),
                    "S3 server enforces conditional writes: using them for tags, refs and index pages"
                ),
                _ => tracing::info!(
                    store = %store.describe(),
                    endpoint = %store.endpoint,
                    "S3 server ignores conditional writes (If-None-Match/If-Match): tags, refs and index pages are \
                     updated under a lock kept in the bucket, which costs three more requests per update"
                ),
            }
        }
        Ok(store)
    }

    /// Writes a probe object twice, the second time with `If-None-Match: *`: a server
    /// that enforces the header refuses it.
    async fn probe_conditional_writes(&self) -> anyhow::Result<ConditionalWrites> {
        let probe = format!(
            "{}{PROBE_DIR}/{}",
            self.base,
            hex::encode(rand::random::<[u8; 12]>())
        );
        let put = || {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&probe)
                .body(Bytes::new().into())
        };
        put().send().await.map_err(|e| self.open_error(e))?;
        let second = put().if_none_match("*").send().await;
        let _ = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(&probe)
            .send()
            .await;
        Ok(match second {
            Ok(_) => ConditionalWrites::Lock,
            Err(e) if is_precondition_failure(&e) => ConditionalWrites::Native,
            Err(SdkError::ServiceError(_)) => ConditionalWrites::Lock,
            Err(e) => return Err(self.open_error(e)),
        })
    }

    /// One line saying what to fix, for a request that failed while opening the store.
    fn open_error<E>(&self, err: SdkError<E, HttpResponse>) -> anyhow::Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let (bucket, endpoint) = (&self.bucket, &self.endpoint);
        let SdkError::ServiceError(ctx) = &err else {
            let detail = error_chain(&err);
            return match &err {
                SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => anyhow::anyhow!(
                    "cannot reach the S3 endpoint {endpoint} for bucket {bucket}: {detail}; check --s3-endpoint / AWS_ENDPOINT_URL"
                ),
                _ => anyhow::anyhow!(
                    "S3 endpoint {endpoint} did not answer like S3 for bucket {bucket}: {detail}; check --s3-endpoint / AWS_ENDPOINT_URL"
                ),
            };
        };
        let status = ctx.raw().status().as_u16();
        let code = ctx.err().code().unwrap_or("");
        let said = one_line(&format!(
            "HTTP {status} {code}: {}",
            ctx.err().message().unwrap_or("no message")
        ));
        match (status, code) {
            // Garage answers 403 AccessDenied for an unknown key, a bad signature and a
            // missing permission alike; its message tells them apart.
            (_, "InvalidAccessKeyId" | "SignatureDoesNotMatch") | (403, _) => anyhow::anyhow!(
                "S3 rejected the credentials for bucket {bucket}: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the profile, \
                 and that the key may read and write the bucket (S3 said {said})"
            ),
            (_, "NoSuchBucket") | (404, _) => anyhow::anyhow!(
                "bucket {bucket} does not exist at {endpoint}: create it (e.g. `garage bucket create {bucket}`) or fix --store (S3 said {said})"
            ),
            (_, "PermanentRedirect" | "AuthorizationHeaderMalformed" | "IllegalLocationConstraintException")
            | (301, _) => anyhow::anyhow!(
                "bucket {bucket} at {endpoint} is in another region: set --s3-region or AWS_REGION (S3 said {said})"
            ),
            _ => anyhow::anyhow!("S3 bucket {bucket} at {endpoint} is not usable: {said}"),
        }
    }

    fn s3_key(&self, key: &ObjectKey) -> String {
        format!("{}{}", self.base, key.as_str())
    }

    /// In `Lock` and `Local` modes, whether `mode` allows a put now (the caller holds the key's lock).
    async fn check_locally(&self, key: &ObjectKey, mode: &PutMode) -> Result<()> {
        let current = match self.head(key).await {
            Ok(meta) => Some(meta.etag),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let allowed = match (mode, current) {
            (PutMode::Overwrite, _) => true,
            (PutMode::Create, current) => current.is_none(),
            (PutMode::Update(expected), Some(current)) => clean_etag(expected) == current,
            (PutMode::Update(_), None) => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(StoreError::PreconditionFailed(key.to_string()))
        }
    }

    /// Publishes through `send` (the final PutObject or CompleteMultipartUpload), under
    /// the conditions `mode` asks for; `send` gets the `If-None-Match` and `If-Match`
    /// values to send. Returns the new etag.
    async fn publish<'a, F>(
        &'a self,
        key: &'a ObjectKey,
        mode: &'a PutMode,
        send: F,
    ) -> Result<String>
    where
        F: FnOnce(Option<String>, Option<String>) -> BoxFuture<'a, Result<Option<String>>>,
    {
        let etag = match (self.conditional, mode) {
            (_, PutMode::Overwrite) => send(None, None).await?,
            (ConditionalWrites::Native, PutMode::Create) => send(Some("*".into()), None).await?,
            (ConditionalWrites::Native, PutMode::Update(etag)) => {
                send(None, Some(format!("\"{}\"", clean_etag(etag)))).await?
            }
            (ConditionalWrites::Lock, _) => {
                let s3_key = self.s3_key(key);
                // One contender per process for the bucket lock; the others queue here.
                let _local = self.put_locks.lock(&s3_key).await;
                let held = self.bucket_locks.acquire(key, &s3_key).await?;
                let sent = match self.check_locally(key, mode).await {
                    Ok(()) if held.still_valid() => send(None, None).await,
                    Ok(()) => Err(StoreError::Unavailable(format!(
                        "{key}: the store answered too slowly to publish inside the write lock's lease; retry"
                    ))),
                    Err(e) => Err(e),
                };
                held.release().await;
                sent?
            }
            _ => {
                let _held = self.put_locks.lock(&self.s3_key(key)).await;
                self.check_locally(key, mode).await?;
                send(None, None).await?
            }
        };
        match etag {
            Some(etag) => Ok(clean_etag(&etag)),
            // Some servers leave the ETag out of the answer.
            None => Ok(self.head(key).await?.etag),
        }
    }

    async fn put_single(&self, key: &ObjectKey, data: Bytes, mode: &PutMode) -> Result<String> {
        let s3_key = self.s3_key(key);
        self.publish(key, mode, |if_none_match, if_match| {
            Box::pin(async move {
                let out = self
                    .client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(&s3_key)
                    .content_length(data.len() as i64)
                    .body(data.into())
                    .set_if_none_match(if_none_match)
                    .set_if_match(if_match)
                    .customize();
                let out = if self.unsigned_payload {
                    out.disable_payload_signing()
                } else {
                    out
                };
                let out = out.send().await.map_err(|e| write_error(key, mode, e))?;
                Ok(out.e_tag)
            })
        })
        .await
    }

    async fn put_multipart(
        &self,
        key: &ObjectKey,
        first: Bytes,
        mut body: ByteStream,
        mut verifier: Verifier,
        mut part_size: usize,
        options: &PutOptions,
    ) -> Result<PutResult> {
        let s3_key = self.s3_key(key);
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&s3_key)
            .send()
            .await
            .map_err(|e| unavailable(key, e))?;
        let upload_id = created
            .upload_id
            .ok_or_else(|| StoreError::Unavailable(format!("{key}: S3 returned no upload id")))?;
        let guard = AbortGuard {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: s3_key.clone(),
            upload_id: Some(upload_id.clone()),
        };
        let upload = |number: i32, data: Bytes| -> BoxFuture<'_, Result<CompletedPart>> {
            let (s3_key, upload_id) = (&s3_key, &upload_id);
            Box::pin(async move {
                let out = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(s3_key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .content_length(data.len() as i64)
                    .body(data.into())
                    .customize();
                let out = if self.unsigned_payload {
                    out.disable_payload_signing()
                } else {
                    out
                };
                let out = out.send().await.map_err(|e| part_error(key, e))?;
                Ok(CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag)
                    .build())
            })
        };

        let result: Result<Vec<CompletedPart>> = async {
            let mut parts = Vec::new();
            let mut uploading = upload(1, first);
            loop {
                let number = parts.len() as i32 + 2;
                if options.expected_size.is_none() && number % PARTS_PER_DOUBLING == 0 {
                    part_size = (part_size * 2).min(MAX_PART_SIZE);
                }
                // Fill the next part while the previous one uploads.
                let ((next, ended), done) = futures::future::try_join(
                    read_part(&mut body, &mut verifier, part_size, options.expected_size),
                    uploading,
                )
                .await?;
                parts.push(done);
                if ended {
                    if !next.is_empty() {
                        parts.push(upload(number, next).await?);
                    }
                    return Ok(parts);
                }
                uploading = upload(number, next);
            }
        }
        .await;
        // Garage may also cut the connection while a part's body is still being sent,
        // which arrives as an I/O error rather than NoSuchUpload: ask about the upload.
        let superseded = match &result {
            Err(StoreError::PreconditionFailed(_)) => true,
            Err(StoreError::Unavailable(_)) => self.upload_is_gone(&s3_key, &upload_id).await,
            _ => false,
        };
        if superseded {
            guard.abort().await;
            return self
                .finish_superseded(key, Some((body, verifier)), &options.mode)
                .await;
        }
        let received = verifier.size();
        let (parts, size) =
            match result.and_then(|parts| verifier.finish().map(|size| (parts, size))) {
                Ok(done) => done,
                Err(e) => {
                    tracing::debug!(%key, received, error = %e, "aborting a multipart upload");
                    guard.abort().await;
                    return Err(e);
                }
            };
        let upload = (s3_key.clone(), upload_id.clone());
        let completed = self
            .publish(key, &options.mode, |if_none_match, if_match| {
                Box::pin(async move {
                    let out = self
                        .client
                        .complete_multipart_upload()
                        .bucket(&self.bucket)
                        .key(&s3_key)
                        .upload_id(&upload_id)
                        .multipart_upload(
                            CompletedMultipartUpload::builder()
                                .set_parts(Some(parts))
                                .build(),
                        )
                        .set_if_none_match(if_none_match)
                        .set_if_match(if_match)
                        .send()
                        .await
                        .map_err(|e| match is_superseded(&e) {
                            true => StoreError::PreconditionFailed(key.to_string()),
                            false => write_error(key, &options.mode, e),
                        })?;
                    Ok(out.e_tag)
                })
            })
            .await;
        match completed {
            Ok(etag) => {
                guard.disarm();
                Ok(PutResult { etag, size })
            }
            Err(StoreError::PreconditionFailed(_)) if options.mode == PutMode::Overwrite => {
                guard.abort().await;
                self.finish_superseded(key, None, &options.mode).await
            }
            // An answer lost on the way: the upload is gone whether it completed or was
            // superseded, and either way the key now holds a complete version.
            Err(StoreError::Unavailable(_))
                if options.mode == PutMode::Overwrite
                    && self.upload_is_gone(&upload.0, &upload.1).await =>
            {
                guard.abort().await;
                self.finish_superseded(key, None, &options.mode).await
            }
            Err(e) => {
                guard.abort().await;
                Err(e)
            }
        }
    }

    /// Garage drops an unfinished multipart upload as soon as a newer write of the same key
    /// completes (AWS S3 keeps it). For an overwrite that is last-writer-wins with this put
    /// as the earlier writer, which happens when several replicas store the same blob at
    /// once: the rest of the body (if any is left) is still read and verified, then the put
    /// succeeds with the version that superseded it. A conditional put was refused instead.
    async fn finish_superseded(
        &self,
        key: &ObjectKey,
        rest: Option<(ByteStream, Verifier)>,
        mode: &PutMode,
    ) -> Result<PutResult> {
        if *mode != PutMode::Overwrite {
            return Err(StoreError::PreconditionFailed(key.to_string()));
        }
        let size = match rest {
            Some((mut body, mut verifier)) => {
                while let Some(chunk) = body.next().await {
                    verifier.update(&chunk.map_err(StoreError::Body)?)?;
                }
                Some(verifier.finish()?)
            }
            None => None,
        };
        let current = match self.head(key).await {
            Ok(current) => current,
            Err(StoreError::NotFound(_)) => {
                return Err(StoreError::Unavailable(format!(
                    "{key}: the S3 server dropped the multipart upload before it completed; retry"
                )))
            }
            Err(e) => return Err(e),
        };
        tracing::debug!(%key, "multipart upload superseded by a concurrent write of the same key");
        Ok(PutResult {
            etag: current.etag,
            size: size.unwrap_or(current.size),
        })
    }
}

impl S3Store {
    /// Whether the server has dropped the multipart upload (see `finish_superseded`).
    async fn upload_is_gone(&self, s3_key: &str, upload_id: &str) -> bool {
        let listed = self
            .client
            .list_parts()
            .bucket(&self.bucket)
            .key(s3_key)
            .upload_id(upload_id)
            .max_parts(1)
            .send()
            .await;
        matches!(listed, Err(e) if is_superseded(&e))
    }
}

/// The S3 server no longer knows the multipart upload (see `finish_superseded`).
fn is_superseded<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    error_code(err) == Some("NoSuchUpload")
}

fn part_error<E>(key: &ObjectKey, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if is_superseded(&err) {
        StoreError::PreconditionFailed(key.to_string())
    } else {
        unavailable(key, err)
    }
}

/// The part size for a body of `expected` bytes: large enough to stay under S3's part limit.
fn part_size_for(expected: Option<u64>) -> usize {
    const MIB: u64 = 1024 * 1024;
    let needed = expected.map_or(0, |size| size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB);
    (needed.min(MAX_PART_SIZE as u64) as usize).max(PART_SIZE)
}

/// Reads chunks until at least `part_size` bytes or the end of the body; returns them as
/// one buffer and whether the body ended. One chunk is passed on as is; several are
/// joined into one buffer (the SDK signs and sends one contiguous body per request),
/// sized by what `expected_size` says is left so small bodies do not reserve a whole part.
async fn read_part(
    body: &mut ByteStream,
    verifier: &mut Verifier,
    part_size: usize,
    expected_size: Option<u64>,
) -> Result<(Bytes, bool)> {
    let room = expected_size.map_or(part_size, |expected| {
        expected
            .saturating_sub(verifier.size())
            .min(part_size as u64) as usize
    });
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut len = 0;
    let ended = loop {
        if len >= part_size {
            break false;
        }
        let Some(chunk) = body.next().await else {
            break true;
        };
        let chunk = chunk.map_err(StoreError::Body)?;
        verifier.update(&chunk)?;
        len += chunk.len();
        match (&mut joined, first.take()) {
            (Some(buf), _) => buf.extend_from_slice(&chunk),
            (None, Some(head)) => {
                let mut buf = BytesMut::with_capacity(room.max(len));
                buf.extend_from_slice(&head);
                buf.extend_from_slice(&chunk);
                joined = Some(buf);
            }
            (None, None) => first = Some(chunk),
        }
    };
    let part = joined.map(BytesMut::freeze).or(first).unwrap_or_default();
    Ok((part, ended))
}

/// Aborts the multipart upload unless disarmed: awaited on failures, spawned on the
/// runtime when the put future is dropped mid-way.
struct AbortGuard {
    client: Client,
    bucket: String,
    key: String,
    upload_id: Option<String>,
}

impl AbortGuard {
    fn disarm(mut self) {
        self.upload_id = None;
    }

    async fn abort(mut self) {
        if let Some(id) = self.upload_id.take() {
            abort_upload(
                self.client.clone(),
                self.bucket.clone(),
                self.key.clone(),
                id,
            )
            .await;
        }
    }
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        let Some(id) = self.upload_id.take() else {
            return;
        };
        let (client, bucket, key) = (self.client.clone(), self.bucket.clone(), self.key.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(abort_upload(client, bucket, key, id));
            }
            Err(_) => tracing::warn!(
                bucket, key, upload_id = id,
                "multipart upload left behind (no runtime to abort it on); a bucket lifecycle rule for incomplete uploads removes it"
            ),
        }
    }
}

async fn abort_upload(client: Client, bucket: String, key: String, upload_id: String) {
    let result = client
        .abort_multipart_upload()
        .bucket(&bucket)
        .key(&key)
        .upload_id(&upload_id)
        .send()
        .await;
    if let Err(e) = result {
        tracing::warn!(
            bucket, key, upload_id,
            error = %error_chain(&e),
            "could not abort a multipart upload; a bucket lifecycle rule for incomplete uploads removes it"
        );
    }
}

/// `x-amz-copy-source`: the bucket and the URL-encoded key (slashes kept).
fn copy_source(bucket: &str, key: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    format!(
        "{bucket}/{}",
        percent_encoding::utf8_percent_encode(key, KEEP)
    )
}

/// The etag without the quotes S3 puts around it, so heads, gets, puts and listings agree.
fn clean_etag(etag: &str) -> String {
    etag.trim().trim_matches('"').to_string()
}

/// An error and its sources on one line, without the SDK's Debug dump.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    one_line(&parts.join(": "))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn http_status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    match err {
        SdkError::ServiceError(ctx) => Some(ctx.raw().status().as_u16()),
        _ => None,
    }
}

fn error_code<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<&str> {
    match err {
        SdkError::ServiceError(ctx) => ctx.err().code(),
        _ => None,
    }
}

fn is_precondition_failure<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    http_status(err) == Some(412)
        || matches!(
            error_code(err),
            Some("PreconditionFailed" | "ConditionalRequestConflict")
        )
        || (http_status(err) == Some(409) && error_code(err).is_none())
}

fn unavailable<E>(key: &ObjectKey, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
{
    StoreError::Unavailable(format!("{key}: {}", error_chain(&err)))
}

fn write_error<E>(key: &ObjectKey, mode: &PutMode, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let absent = http_status(&err) == Some(404) || error_code(&err) == Some("NoSuchKey");
    if is_precondition_failure(&err) || (absent && matches!(mode, PutMode::Update(_))) {
        StoreError::PreconditionFailed(key.to_string())
    } else {
        unavailable(key, err)
    }
}

fn is_not_found<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    http_status(err) == Some(404) || error_code(err) == Some("NoSuchKey")
}

fn system_time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> Option<SystemTime> {
    t.and_then(|t| SystemTime::try_from(*t).ok())
}

/// `bytes START-END/TOTAL` → (START..END+1, TOTAL).
fn parse_content_range(value: &str) -> Option<(Range<u64>, u64)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (span, total) = rest.split_once('/')?;
    let (start, end) = span.split_once('-')?;
    let (start, end): (u64, u64) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
    let total = total.trim().parse().ok()?;
    (start <= end && end < total).then_some((start..end + 1, total))
}

fn range_header(range: ByteRange) -> Option<String> {
    match range {
        ByteRange::Bounded { start, end } if start <= end => Some(format!("bytes={start}-{end}")),
        ByteRange::From(start) => Some(format!("bytes={start}-")),
        ByteRange::Suffix(n) if n > 0 => Some(format!("bytes=-{n}")),
        // Never satisfiable; S3 would ignore such a header and send everything.
        _ => None,
    }
}

/// Passes on only the bytes of `range`, for servers that answer a range with the whole object.
fn slice_body(body: ByteStream, range: Range<u64>) -> ByteStream {
    let mut offset = 0u64;
    Box::pin(body.try_filter_map(move |chunk| {
        let (start, end) = (offset, offset + chunk.len() as u64);
        offset = end;
        let (from, to) = (range.start.max(start), range.end.min(end));
        let part = (from < to).then(|| chunk.slice((from - start) as usize..(to - start) as usize));
        futures::future::ready(Ok(part))
    }))
}

/// The SDK's response body as a store stream, chunk for chunk.
fn into_store_stream(body: aws_sdk_s3::primitives::ByteStream) -> ByteStream {
    let mut body = Box::pin(body);
    Box::pin(futures::stream::poll_fn(move |cx| {
        body.as_mut()
            .poll_next(cx)
            .map(|item| item.map(|chunk| chunk.map_err(std::io::Error::from)))
    }))
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn get(&self, key: &ObjectKey, options: GetOptions) -> Result<GetResult> {
        let header = match options.range {
            Some(range) => match range_header(range) {
                Some(header) => Some(header),
                None => {
                    let size = self.head(key).await?.size;
                    return Err(StoreError::RangeNotSatisfiable { size });
                }
            },
            None => None,
        };
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.s3_key(key))
            .set_range(header)
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) if is_not_found(&e) => return Err(StoreError::NotFound(key.to_string())),
            Err(e) if http_status(&e) == Some(416) || error_code(&e) == Some("InvalidRange") => {
                let size = self.head(key).await?.size;
                return Err(StoreError::RangeNotSatisfiable { size });
            }
            Err(e) => return Err(unavailable(key, e)),
        };
        let length = out.content_length.unwrap_or(0).max(0) as u64;
        let content_range = match out.content_range.as_deref() {
            Some(value) => Some(parse_content_range(value).ok_or_else(|| {
                StoreError::Unavailable(format!(
                    "{key}: S3 sent an unusable Content-Range `{value}`"
                ))
            })?),
            None => None,
        };
        let mut body = into_store_stream(out.body);
        let (range, size) = match (content_range, options.range) {
            (Some((range, total)), _) => (range, total),
            (None, None) => (0..length, length),
            // The server ignored the range and sent the whole object.
            (None, Some(wanted)) => {
                let range = wanted.resolve(length)?;
                if range != (0..length) {
                    body = slice_body(body, range.clone());
                }
                (range, length)
            }
        };
        Ok(GetResult {
            meta: ObjectMeta {
                key: key.clone(),
                size,
                etag: clean_etag(out.e_tag.as_deref().unwrap_or("")),
                last_modified: system_time(out.last_modified.as_ref()),
            },
            range,
            body,
            file: None,
        })
    }

    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta> {
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.s3_key(key))
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) if is_not_found(&e) => return Err(StoreError::NotFound(key.to_string())),
            Err(e) => return Err(unavailable(key, e)),
        };
        Ok(ObjectMeta {
            key: key.clone(),
            size: out.content_length.unwrap_or(0).max(0) as u64,
            etag: clean_etag(out.e_tag.as_deref().unwrap_or("")),
            last_modified: system_time(out.last_modified.as_ref()),
        })
    }

    async fn put(
        &self,
        key: &ObjectKey,
        mut body: ByteStream,
        options: PutOptions,
    ) -> Result<PutResult> {
        let part_size = part_size_for(options.expected_size);
        let mut verifier = Verifier::new(options.expected_digest.as_ref(), options.expected_size);
        let (first, ended) =
            read_part(&mut body, &mut verifier, part_size, options.expected_size).await?;
        if ended {
            let size = verifier.finish()?;
            let etag = self.put_single(key, first, &options.mode).await?;
            return Ok(PutResult { etag, size });
        }
        self.put_multipart(key, first, body, verifier, part_size, &options)
            .await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(format!("{}{prefix}", self.base))
            .set_start_after(start_after.map(|s| format!("{}{s}", self.base)))
            .max_keys(limit.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "listing {}{prefix}: {}",
                    self.describe(),
                    error_chain(&e)
                ))
            })?;
        let relative = |raw: &str| raw.strip_prefix(self.base.as_str()).map(str::to_string);
        let contents = out.contents.unwrap_or_default();
        // Resume after the last key S3 returned, even one skipped below.
        let next_start_after = if out.is_truncated.unwrap_or(false) {
            contents
                .last()
                .and_then(|o| o.key.as_deref())
                .and_then(relative)
        } else {
            None
        };
        let objects = contents
            .into_iter()
            .filter_map(|o| {
                // Keys no ObjectKey can name (the open probe, foreign objects) are skipped.
                let key = ObjectKey::new(relative(o.key.as_deref()?)?).ok()?;
                Some(ObjectMeta {
                    key,
                    size: o.size.unwrap_or(0).max(0) as u64,
                    etag: clean_etag(o.e_tag.as_deref().unwrap_or("")),
                    last_modified: system_time(o.last_modified.as_ref()),
                })
            })
            .collect();
        Ok(ListPage {
            objects,
            next_start_after,
        })
    }

    async fn delete(&self, key: &ObjectKey) -> Result<()> {
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.s3_key(key))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(unavailable(key, e)),
        }
    }

    async fn presigned_get(&self, key: &ObjectKey) -> Result<Option<String>> {
        let Some((client, expiry)) = &self.presigner else {
            return Ok(None);
        };
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(*expiry)
            .map_err(|e| StoreError::Unavailable(format!("{key}: {e}")))?;
        let request = client
            .get_object()
            .bucket(&self.bucket)
            .key(self.s3_key(key))
            .presigned(config)
            .await
            .map_err(|e| unavailable(key, e))?;
        Ok(Some(request.uri().to_string()))
    }

    async fn copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<PutResult> {
        // Server-side: the bytes never travel to Airlock and back.
        let size = self.head(from).await?.size;
        let source = copy_source(&self.bucket, &self.s3_key(from));
        let to_key = self.s3_key(to);
        if size <= COPY_OBJECT_LIMIT {
            let out = self
                .client
                .copy_object()
                .bucket(&self.bucket)
                .key(&to_key)
                .copy_source(&source)
                .send()
                .await
                .map_err(|e| match is_not_found(&e) {
                    true => StoreError::NotFound(from.to_string()),
                    false => unavailable(to, e),
                })?;
            let etag = out.copy_object_result.and_then(|r| r.e_tag);
            return Ok(PutResult {
                etag: etag.as_deref().map(clean_etag).unwrap_or_default(),
                size,
            });
        }
        // CopyObject stops at 5 GiB; larger objects are copied part by part.
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&to_key)
            .send()
            .await
            .map_err(|e| unavailable(to, e))?;
        let upload_id = created
            .upload_id
            .ok_or_else(|| StoreError::Unavailable(format!("{to}: S3 returned no upload id")))?;
        let guard = AbortGuard {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: to_key.clone(),
            upload_id: Some(upload_id.clone()),
        };
        let mut parts = Vec::new();
        let mut start = 0;
        while start < size {
            let end = (start + COPY_PART_SIZE).min(size);
            let out = self
                .client
                .upload_part_copy()
                .bucket(&self.bucket)
                .key(&to_key)
                .upload_id(&upload_id)
                .part_number(parts.len() as i32 + 1)
                .copy_source(&source)
                .copy_source_range(format!("bytes={start}-{}", end - 1))
                .send()
                .await
                .map_err(|e| unavailable(to, e))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(parts.len() as i32 + 1)
                    .set_e_tag(out.copy_part_result.and_then(|r| r.e_tag))
                    .build(),
            );
            start = end;
        }
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&to_key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| unavailable(to, e))?;
        guard.disarm();
        Ok(PutResult {
            etag: out.e_tag.as_deref().map(clean_etag).unwrap_or_default(),
            size,
        })
    }

    async fn remove_abandoned_writes(&self, before: SystemTime, dry_run: bool) -> Result<u64> {
        let unavailable = |what: &str, e: String| {
            StoreError::Unavailable(format!("{what} in {}: {e}", self.describe()))
        };
        let mut removed = 0;
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        // Bounded by the uploads there are, a thousand per page.
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(&self.base)
                .set_key_marker(key_marker.clone())
                .set_upload_id_marker(id_marker.clone())
                .send()
                .await
                .map_err(|e| unavailable("listing multipart uploads", error_chain(&e)))?;
            for upload in page.uploads() {
                let started = upload
                    .initiated()
                    .and_then(|t| SystemTime::try_from(*t).ok());
                let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) else {
                    continue;
                };
                if started.is_none_or(|t| t >= before) {
                    continue;
                }
                if !dry_run {
                    self.client
                        .abort_multipart_upload()
                        .bucket(&self.bucket)
                        .key(key)
                        .upload_id(id)
                        .send()
                        .await
                        .map_err(|e| unavailable("aborting a multipart upload", error_chain(&e)))?;
                }
                removed += 1;
            }
            if !page.is_truncated().unwrap_or(false) {
                return Ok(removed);
            }
            key_marker = page.next_key_marker().map(str::to_string);
            id_marker = page.next_upload_id_marker().map(str::to_string);
            if key_marker.is_none() && id_marker.is_none() {
                return Ok(removed);
            }
        }
    }

    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.base.trim_end_matches('/'))
            .trim_end_matches('/')
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_size_keeps_under_the_part_limit() {
        assert_eq!(part_size_for(None), PART_SIZE);
        assert_eq!(part_size_for(Some(1)), PART_SIZE);
        let tib = 1u64 << 40;
        let size = part_size_for(Some(tib)) as u64;
        assert!(size > PART_SIZE as u64 && tib.div_ceil(size) <= MAX_PARTS);
        assert_eq!(size % (1024 * 1024), 0);
    }

    #[test]
    fn parses_content_range() {
        assert_eq!(parse_content_range("bytes 0-0/10"), Some((0..1, 10)));
        assert_eq!(parse_content_range("bytes 5-9/10"), Some((5..10, 10)));
        assert_eq!(parse_content_range("bytes */10"), None);
        assert_eq!(parse_content_range("bytes 5-10/10"), None);
    }

    #[test]
    fn range_headers() {
        let b = |start, end| ByteRange::Bounded { start, end };
        assert_eq!(range_header(b(0, 9)).as_deref(), Some("bytes=0-9"));
        assert_eq!(
            range_header(ByteRange::From(3)).as_deref(),
            Some("bytes=3-")
        );
        assert_eq!(
            range_header(ByteRange::Suffix(4)).as_deref(),
            Some("bytes=-4")
        );
        assert_eq!(range_header(b(5, 4)), None);
        assert_eq!(range_header(ByteRange::Suffix(0)), None);
    }

    #[tokio::test]
    async fn slices_a_whole_body() {
        let chunks: Vec<std::io::Result<Bytes>> =
            vec![Ok("0123".into()), Ok("4567".into()), Ok("89".into())];
        let body = slice_body(Box::pin(futures::stream::iter(chunks)), 3..7);
        let got: Vec<Bytes> = body.try_collect().await.unwrap();
        assert_eq!(got.concat(), b"3456");
    }

    fn service_error(
        status: u16,
        code: &str,
    ) -> SdkError<aws_sdk_s3::operation::put_object::PutObjectError, HttpResponse> {
        let meta = aws_sdk_s3::error::ErrorMetadata::builder()
            .code(code)
            .build();
        let raw = HttpResponse::new(
            status.try_into().unwrap(),
            aws_sdk_s3::primitives::SdkBody::empty(),
        );
        SdkError::service_error(
            aws_sdk_s3::operation::put_object::PutObjectError::generic(meta),
            raw,
        )
    }

    #[test]
    fn refused_conditions_become_precondition_failures() {
        let key = ObjectKey::new("k").unwrap();
        let update = PutMode::Update("e".into());
        let refused = |status, code, mode: &PutMode| {
            matches!(
                write_error(&key, mode, service_error(status, code)),
                StoreError::PreconditionFailed(_)
            )
        };
        assert!(refused(412, "PreconditionFailed", &PutMode::Create));
        assert!(refused(409, "ConditionalRequestConflict", &PutMode::Create));
        // If-Match on an absent object: AWS answers 404.
        assert!(refused(404, "NoSuchKey", &update));
        assert!(!refused(404, "NoSuchKey", &PutMode::Create));
        assert!(!refused(500, "InternalError", &update));
        assert!(!refused(403, "AccessDenied", &PutMode::Create));
    }

    #[test]
    fn etags_lose_their_quotes() {
        assert_eq!(clean_etag("\"abc-2\""), "abc-2");
        assert_eq!(clean_etag("abc"), "abc");
    }
}
