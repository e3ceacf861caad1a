//! Blob uploads. A session lives in the store, not in memory, so any replica can take
//! the next request of it: `uploads/oci/<id>/state.json` (the chunks so far, written
//! with conditional puts) and one object per PATCH. The closing PUT streams the chunks,
//! in order, into the content-addressed blob store, which verifies the digest before
//! anything becomes visible. Bodies are streamed throughout, never held whole.

use super::endpoint::{parse_digest, Repo};
use super::error::{Code, OciError, Result};
use super::names::canonical;
use super::registry::Registry;
use super::OciState;
use super::{blob_location, location, query_one, request_body};
use crate::auth::{Action, Identity, Protocol};
use crate::digest::{Algorithm, Digest, Hasher};
use crate::store::layout::{oci_upload_chunk, MetaKey, OCI_UPLOADS_PREFIX};
use crate::store::{
    ByteStream, DocStore, DynStore, GetOptions, Mutability, ObjectKey, PutMode, PutOptions,
    StoreError,
};
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Session {
    repo: String,
    #[serde(default)]
    chunks: Vec<Chunk>,
    size: u64,
    started: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Chunk {
    key: String,
    size: u64,
    /// The chunk's own sha256, taken as it streamed in. When the upload is this one chunk
    /// (skopeo, docker and podman send a layer as one streaming PATCH) and this is the
    /// digest the closing PUT names, the chunk is published by a copy inside the store,
    /// not by reading it back and writing it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
}

fn state_key(id: &str) -> Result<ObjectKey> {
    let id = id.to_string();
    Ok(MetaKey::OciUploadState { id }.key()?)
}

fn unknown(id: &str) -> OciError {
    OciError::new(
        Code::BlobUploadUnknown,
        format!("no upload session `{id}` (finished, cancelled or never started)"),
    )
}

fn upload_path(state: &OciState, repo: &Repo, id: &str) -> String {
    let name = repo.url_name(&state.settings.default_registry);
    format!("/v2/{name}/blobs/uploads/{id}")
}

/// `Range: 0-<last byte>` as the spec writes upload progress (`0-0` when empty).
fn range_value(size: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("0-{}", size.saturating_sub(1))).expect("ascii")
}

fn progress(state: &OciState, status: StatusCode, repo: &Repo, id: &str, size: u64) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::LOCATION,
        location(state, &upload_path(state, repo, id)),
    );
    h.insert(header::RANGE, range_value(size));
    h.insert(
        "docker-upload-uuid",
        HeaderValue::from_str(id).expect("hex"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

fn created(state: &OciState, repo: &Repo, digest: &Digest) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::CREATED;
    let h = r.headers_mut();
    h.insert(header::LOCATION, blob_location(state, repo, digest));
    h.insert(
        "docker-content-digest",
        HeaderValue::from_str(&digest.to_string()).expect("ascii"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Whether a request carries a body at all: a sized one, a chunked HTTP/1 stream, or
/// an HTTP/2 stream without Content-Length (hyper knows an absent body as ended).
fn has_body(request: &Request) -> bool {
    !http_body::Body::is_end_stream(request.body())
}

/// `Content-Range: <start>-<end>` (inclusive; a `bytes ` prefix is tolerated).
fn content_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let bad = || {
        OciError::new(
            Code::RangeInvalid,
            "Content-Range must be <start>-<end> (inclusive byte offsets)",
        )
    };
    let text = value.to_str().map_err(|_| bad())?.trim();
    let text = text
        .strip_prefix("bytes ")
        .or_else(|| text.strip_prefix("bytes="))
        .unwrap_or(text);
    let text = text.split('/').next().unwrap_or(text);
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let (start, end): (u64, u64) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    );
    if end < start {
        return Err(bad());
    }
    Ok(Some((start, end)))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `POST /v2/<name>/blobs/uploads/`: a cross-repository mount, a whole blob in one
/// request (`?digest=`, verified even when the blob is stored already), or a new
/// session (also the answer to a mount the caller may not make).
pub async fn start(
    state: &OciState,
    repo: &Repo,
    identity: &Identity,
    request: Request,
) -> Result<Response> {
    let query = request.uri().query().unwrap_or("").to_string();
    let headers = request.headers().clone();
    let registry = &state.registry;
    if let Some(algorithm) = query_one(&query, "digest-algorithm") {
        algorithm
            .parse::<Algorithm>()
            .map_err(|e| OciError::new(Code::DigestInvalid, e.to_string()))?;
    }
    if let Some(mount) = query_one(&query, "mount") {
        let digest = parse_digest(&mount)?;
        if mountable(state, registry, identity, &query, &digest).await? {
            registry.link_blob(&repo.name, &digest).await?;
            return Ok(created(state, repo, &digest));
        }
    } else if let Some(digest) = query_one(&query, "digest") {
        let digest = parse_digest(&digest)?;
        let size = content_length(&headers);
        admit_blob(state, repo, &digest, size).await?;
        registry
            .blobs()
            .put(&digest, request_body(request), size)
            .await?;
        registry.link_blob(&repo.name, &digest).await?;
        return Ok(created(state, repo, &digest));
    }
    let id = hex::encode(rand::random::<[u8; 16]>());
    let session = Session {
        repo: repo.name.clone(),
        chunks: Vec::new(),
        size: 0,
        started: now(),
    };
    state
        .docs
        .put(
            &state_key(&id)?,
            Bytes::from(serde_json::to_vec(&session).expect("serializable")),
            PutMode::Create,
            Mutability::Mutable,
        )
        .await?;
    Ok(progress(state, StatusCode::ACCEPTED, repo, &id, 0))
}

/// Refuses a blob of `size` bytes (when the client said) that would take the
/// repository's namespace past its quota.
async fn admit_blob(
    state: &OciState,
    repo: &Repo,
    digest: &Digest,
    size: Option<u64>,
) -> Result<()> {
    match (state.settings.quotas.under(&repo.name), size) {
        (Some(limit), Some(size)) => {
            super::quota::admit(&state.registry, &limit, &[(digest.clone(), size)]).await
        }
        _ => Ok(()),
    }
}

/// A mount succeeds when the caller may read the source repository and it holds the
/// blob. Without `from` only a store-wide admin may mount: a digest is public knowledge
/// (gated and private content publishes its hashes), so knowing one proves nothing.
/// A refused mount is not an error: the caller gets an ordinary upload session (202),
/// as the distribution spec allows, and must send the bytes.
async fn mountable(
    state: &OciState,
    registry: &Registry,
    identity: &Identity,
    query: &str,
    digest: &Digest,
) -> Result<bool> {
    let Some(from) = query_one(query, "from").filter(|f| !f.is_empty()) else {
        return Ok(state.auth.is_store_admin(identity) && registry.blobs().exists(digest).await?);
    };
    let ns = query_one(query, "ns");
    let Ok(from) = canonical(&from, ns.as_deref(), &state.settings.default_registry) else {
        return Ok(false);
    };
    if state
        .auth
        .authorize(identity, Protocol::Oci, Action::Read, &from)
        .is_err()
    {
        return Ok(false);
    }
    Ok(registry.blob_linked(&from, digest).await? && registry.blobs().exists(digest).await?)
}

async fn load(state: &OciState, repo: &Repo, id: &str) -> Result<(Session, String)> {
    let doc = state
        .docs
        .get_fresh(&state_key(id)?)
        .await?
        .ok_or_else(|| unknown(id))?;
    let session: Session = serde_json::from_slice(&doc.bytes)
        .map_err(|e| StoreError::Unavailable(format!("upload {id}: corrupt state: {e}")))?;
    if session.repo != repo.name {
        return Err(unknown(id));
    }
    Ok((session, doc.etag))
}

/// Stores one chunk and records it; refuses a chunk that does not start where the
/// upload stands (416, with the current range so the client can resume).
async fn append(
    state: &OciState,
    repo: &Repo,
    id: &str,
    request: Request,
) -> std::result::Result<Session, Response> {
    let headers = request.headers().clone();
    let fail = |e: OciError| super::error_response(e);
    let (mut session, etag) = load(state, repo, id).await.map_err(fail)?;
    let range = content_range(&headers).map_err(fail)?;
    let mut expected = content_length(&headers);
    if let Some((start, end)) = range {
        if start != session.size {
            let mut r = progress(
                state,
                StatusCode::RANGE_NOT_SATISFIABLE,
                repo,
                id,
                session.size,
            );
            let body = OciError::new(
                Code::RangeInvalid,
                format!(
                    "chunk starts at {start} but the upload has {} bytes; resume there",
                    session.size
                ),
            );
            let err = super::error_response(body);
            *r.body_mut() = err.into_body();
            r.headers_mut().remove(header::CONTENT_LENGTH);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return Err(r);
        }
        let length = end - start + 1;
        if expected.is_some_and(|n| n != length) {
            return Err(fail(OciError::new(
                Code::SizeInvalid,
                "Content-Length does not match Content-Range",
            )));
        }
        expected = Some(length);
    }
    if expected == Some(0) || !has_body(&request) {
        return Ok(session);
    }
    // A key of its own for every attempt, so a racing PATCH can never overwrite this
    // chunk: it needs no conditional (locked, on some stores) write.
    let n = session.chunks.len();
    let key = oci_upload_chunk(id, n, rand::random()).map_err(|e| fail(e.into()))?;
    let chunk_key = key.as_str().to_string();
    let hasher = Arc::new(Mutex::new(Some(Hasher::new(Algorithm::Sha256))));
    let tap = hasher.clone();
    let body = request_body(request).inspect_ok(move |chunk| {
        if let Some(h) = tap.lock().expect("hasher lock").as_mut() {
            h.update(chunk);
        }
    });
    let put = state
        .store
        .put(
            &key,
            Box::pin(body),
            PutOptions {
                mode: PutMode::Overwrite,
                expected_size: expected,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| fail(e.into()))?;
    let sha256 = hasher.lock().expect("hasher lock").take();
    session.chunks.push(Chunk {
        key: chunk_key,
        size: put.size,
        sha256: sha256.map(|h| h.finish().hex().to_string()),
    });
    session.size += put.size;
    let saved = state
        .docs
        .put(
            &state_key(id).map_err(fail)?,
            Bytes::from(serde_json::to_vec(&session).expect("serializable")),
            PutMode::Update(etag),
            Mutability::Mutable,
        )
        .await;
    match saved {
        Ok(_) => Ok(session),
        Err(e) => {
            let _ = state.store.delete(&key).await;
            Err(fail(match e {
                StoreError::PreconditionFailed(_) => OciError::new(
                    Code::RangeInvalid,
                    "another chunk of this upload arrived at the same time; check the upload status and resume",
                ),
                StoreError::NotFound(_) => unknown(id),
                other => other.into(),
            }))
        }
    }
}

/// `PATCH <location>`
pub async fn patch(state: &OciState, repo: &Repo, id: &str, request: Request) -> Response {
    match append(state, repo, id, request).await {
        Ok(session) => progress(state, StatusCode::ACCEPTED, repo, id, session.size),
        Err(r) => r,
    }
}

/// `GET <location>`
pub async fn status(state: &OciState, repo: &Repo, id: &str) -> Result<Response> {
    let (session, _) = load(state, repo, id).await?;
    Ok(progress(
        state,
        StatusCode::NO_CONTENT,
        repo,
        id,
        session.size,
    ))
}

/// `DELETE <location>`
pub async fn cancel(state: &OciState, repo: &Repo, id: &str) -> Result<Response> {
    let (session, _) = load(state, repo, id).await?;
    discard(state, id, &session).await;
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    Ok(r)
}

async fn discard(state: &OciState, id: &str, session: &Session) {
    for chunk in &session.chunks {
        if let Ok(key) = ObjectKey::new(chunk.key.clone()) {
            let _ = state.store.delete(&key).await;
        }
    }
    if let Ok(key) = state_key(id) {
        let _ = state.docs.delete(&key).await;
    }
}

/// The chunks of a session, read one after the other as one body.
fn concatenated(state: &OciState, session: &Session) -> ByteStream {
    let store = state.store.clone();
    let keys: Vec<String> = session.chunks.iter().map(|c| c.key.clone()).collect();
    Box::pin(
        futures::stream::iter(keys)
            .then(move |key| {
                let store = store.clone();
                async move {
                    let key = ObjectKey::new(key).map_err(std::io::Error::other)?;
                    let got = store
                        .get(&key, GetOptions::default())
                        .await
                        .map_err(std::io::Error::other)?;
                    Ok::<_, std::io::Error>(got.body)
                }
            })
            .try_flatten(),
    )
}

/// `PUT <location>?digest=<d>`, possibly with the last chunk (or, for containerd, the
/// whole blob) as its body.
pub async fn finish(state: &OciState, repo: &Repo, id: &str, request: Request) -> Response {
    let headers = request.headers().clone();
    let query = request.uri().query().unwrap_or("").to_string();
    let digest = match query_one(&query, "digest") {
        Some(d) => match parse_digest(&d) {
            Ok(d) => d,
            Err(e) => return super::error_response(e),
        },
        None => {
            return super::error_response(OciError::new(
                Code::DigestInvalid,
                "the closing PUT needs ?digest=<digest of the whole blob>",
            ))
        }
    };
    let registry = &state.registry;
    let (session, _) = match load(state, repo, id).await {
        Ok(s) => s,
        Err(e) => return super::error_response(e),
    };
    let whole = content_length(&headers).map(|last| session.size + last);
    if let Err(e) = admit_blob(state, repo, &digest, whole).await {
        // Refused by a quota: nothing of the upload stays.
        discard(state, id, &session).await;
        return super::error_response(e);
    }
    let stored = if session.chunks.is_empty() && content_range(&headers).ok().flatten().is_none() {
        // The whole blob in this request: straight into the blob store.
        let size = content_length(&headers);
        let put = registry
            .blobs()
            .put(&digest, request_body(request), size)
            .await;
        (session, put)
    } else {
        let session = if has_body(&request) {
            match append(state, repo, id, request).await {
                Ok(s) => s,
                Err(r) => return r,
            }
        } else {
            session
        };
        let put = match session.chunks.as_slice() {
            [only] if only.sha256.as_deref() == Some(digest.hex()) => {
                let key = ObjectKey::new(only.key.clone());
                match key {
                    Ok(key) => registry.blobs().adopt(&digest, &key, only.size).await,
                    Err(e) => Err(e),
                }
            }
            _ => {
                registry
                    .blobs()
                    .put(&digest, concatenated(state, &session), Some(session.size))
                    .await
            }
        };
        (session, put)
    };
    let (session, put) = stored;
    match put {
        Ok(_) => {}
        Err(e @ (StoreError::DigestMismatch { .. } | StoreError::SizeMismatch { .. })) => {
            // A corrupt or truncated upload cannot be finished: nothing of it stays.
            discard(state, id, &session).await;
            return super::error_response(OciError::new(Code::DigestInvalid, e.to_string()));
        }
        Err(e) => return super::error_response(e.into()),
    }
    if let Err(e) = registry.link_blob(&repo.name, &digest).await {
        return super::error_response(e);
    }
    // The session may have grown a chunk in `append`; re-read to remove everything.
    let session = match load(state, repo, id).await {
        Ok((s, _)) => s,
        Err(_) => session,
    };
    discard(state, id, &session).await;
    created(state, repo, &digest)
}

/// What a purge found: the abandoned sessions (removed unless it was a dry run), their
/// objects and bytes, and the sessions still young enough to be in use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Purged {
    pub sessions: u64,
    pub objects: u64,
    pub bytes: u64,
    pub active: u64,
}

/// Removes upload sessions started more than `older_than` ago (and stray chunks of
/// sessions whose state is gone): what clients abandoned. With `dry_run`, only counts.
pub async fn purge(
    store: &DynStore,
    docs: &DocStore,
    older_than: std::time::Duration,
    dry_run: bool,
) -> std::result::Result<Purged, StoreError> {
    use std::collections::BTreeMap;
    const PREFIX: &str = OCI_UPLOADS_PREFIX;
    let cutoff = now().saturating_sub(older_than.as_secs());
    let mut sessions: BTreeMap<String, Vec<crate::store::ObjectMeta>> = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list(PREFIX, after.as_deref(), 1000).await?;
        for object in page.objects {
            let id = object.key.as_str()[PREFIX.len()..]
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string();
            sessions.entry(id).or_default().push(object);
        }
        match page.next_start_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut purged = Purged::default();
    for (id, parts) in sessions {
        let started = match docs
            .get_fresh(&state_key(&id).map_err(|_| StoreError::InvalidKey(id.clone()))?)
            .await?
        {
            Some(doc) => serde_json::from_slice::<Session>(&doc.bytes)
                .ok()
                .map(|s| s.started),
            None => None,
        };
        // Without a readable state, the newest part dates the session.
        let started = started.unwrap_or_else(|| {
            parts
                .iter()
                .filter_map(|p| p.last_modified)
                .filter_map(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
                .max()
                .unwrap_or(0)
        });
        if started > cutoff {
            purged.active += 1;
            continue;
        }
        purged.sessions += 1;
        purged.objects += parts.len() as u64;
        purged.bytes += parts.iter().map(|p| p.size).sum::<u64>();
        if dry_run {
            continue;
        }
        // Chunks first: a session whose state survives a failure here is purged next time.
        let (state_parts, chunks): (Vec<_>, Vec<_>) = parts
            .into_iter()
            .partition(|p| p.key.as_str().ends_with("/state.json"));
        for part in chunks.iter().chain(state_parts.iter()) {
            docs.delete(&part.key).await?;
        }
    }
    Ok(purged)
}

/// `serve`'s sweeper: purges abandoned sessions every half `older_than` (at least every
/// second, at most every hour), so a session is gone at most 1.5 × `older_than` after it
/// started. Replicas sharing a store may all run it: a purge only deletes what is older
/// than the cutoff, and deleting what another replica deleted first is not an error.
pub async fn purge_periodically(store: DynStore, docs: DocStore, older_than: std::time::Duration) {
    use std::time::Duration;
    let every = (older_than / 2).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match purge(&store, &docs, older_than, false).await {
            Ok(Purged { sessions: 0, .. }) => {}
            Ok(Purged {
                sessions, objects, ..
            }) => tracing::info!(sessions, objects, "removed abandoned OCI upload sessions"),
            Err(e) => tracing::warn!("purging abandoned OCI upload sessions: {e}"),
        }
    }
}
