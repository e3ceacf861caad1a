//! The object store: one small streaming trait, two backends (local directory, S3), and
//! the layers every protocol shares on top of it (content-addressed blobs, cached
//! metadata documents). `layout.rs` documents where everything lives.
//!
//! The trait follows `object_store`'s shape: ranges are an option of `get`, and
//! "create only if absent" / "replace only if still at this version" are modes of `put`,
//! which is how racing writers on tags, refs and index pages stay safe without locks.

pub mod access;
mod blobs;
pub mod changes;
pub mod claims;
mod counting;
mod docs;
mod fs;
mod fs_listing;
mod key;
mod keyed_locks;
pub mod layout;
mod names;
mod s3;
mod url;
mod verify;

pub use blobs::{hash_file, BlobMeta, BlobStore};
pub use counting::{CountingStore, OpCounts};
pub use docs::{DocStore, Document, Mutability, MAX_DOCUMENT_BYTES};
pub use fs::FsStore;
pub use key::ObjectKey;
pub use names::{contains_ignoring_case, NameList};
pub use s3::{ConditionalWrites, S3Settings, S3Store};
pub use url::StoreUrl;

use crate::digest::Digest;
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A body flowing into or out of the store, chunk by chunk. Never collected whole.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object `{0}` not found")]
    NotFound(String),
    /// `PutMode::Create` found the object present, or `PutMode::Update` found another version.
    #[error("object `{0}` changed or already exists (conditional write refused)")]
    PreconditionFailed(String),
    #[error("content digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("content size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("range not satisfiable for an object of {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    #[error("invalid object key `{0}`")]
    InvalidKey(String),
    /// The incoming body failed (client went away, body too large, ...): not the store's fault.
    #[error("request body failed: {0}")]
    Body(std::io::Error),
    /// The store itself failed or cannot be reached: callers answer 5xx, never "not found".
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store has no room for the write (ENOSPC, a quota): nothing of it was kept.
    /// Callers answer 507 Insufficient Storage, which tells the client a retry will not
    /// help until the operator frees space.
    #[error("the store is full ({0}): nothing was stored; the operator must free space or grow the store")]
    Full(String),
}

impl StoreError {
    /// A failed write: `Full` when the device or a quota has no room left.
    pub fn from_write(e: std::io::Error, what: impl std::fmt::Display) -> StoreError {
        match e.kind() {
            std::io::ErrorKind::StorageFull
            | std::io::ErrorKind::QuotaExceeded
            | std::io::ErrorKind::FileTooLarge => StoreError::Full(format!("{what}: {e}")),
            _ => StoreError::Unavailable(format!("{what}: {e}")),
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound(_))
    }
}

/// What the store knows about one object without reading it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: ObjectKey,
    pub size: u64,
    /// Opaque version token; changes whenever the object is replaced. `PutMode::Update` takes it.
    pub etag: String,
    pub last_modified: Option<SystemTime>,
}

/// An HTTP-style byte range, resolved against the object size by the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=start-end`, end inclusive.
    Bounded { start: u64, end: u64 },
    /// `bytes=start-`
    From(u64),
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The half-open range this selects in an object of `size` bytes (RFC 9110 §14.1.2).
    pub fn resolve(self, size: u64) -> Result<Range<u64>> {
        let unsatisfiable = Err(StoreError::RangeNotSatisfiable { size });
        match self {
            ByteRange::Bounded { start, end } if start <= end && start < size => {
                Ok(start..end.min(size - 1) + 1)
            }
            ByteRange::From(start) if start < size => Ok(start..size),
            ByteRange::Suffix(n) if n > 0 && size > 0 => Ok(size.saturating_sub(n)..size),
            _ => unsatisfiable,
        }
    }

    /// Parses a `Range` header value holding one range; `None` for anything else
    /// (several ranges, other units), which servers may answer with the whole body.
    pub fn parse_header(value: &str) -> Option<ByteRange> {
        let spec = value.trim().strip_prefix("bytes=")?.trim();
        if spec.contains(',') {
            return None;
        }
        let (a, b) = spec.split_once('-')?;
        let (a, b) = (a.trim(), b.trim());
        match (a.is_empty(), b.is_empty()) {
            (true, false) => Some(ByteRange::Suffix(b.parse().ok()?)),
            (false, true) => Some(ByteRange::From(a.parse().ok()?)),
            (false, false) => Some(ByteRange::Bounded {
                start: a.parse().ok()?,
                end: b.parse().ok()?,
            }),
            (true, true) => None,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct GetOptions {
    pub range: Option<ByteRange>,
}

pub struct GetResult {
    pub meta: ObjectMeta,
    /// The bytes of the object that `body` carries (the whole object without a range).
    pub range: Range<u64>,
    pub body: ByteStream,
    /// The open file behind `body`, on the filesystem store: lets a download send it
    /// without copying (`crate::sendfile`). `body` is then only read if that cannot be.
    pub file: Option<std::sync::Arc<std::fs::File>>,
}

impl std::fmt::Debug for GetResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetResult")
            .field("meta", &self.meta)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PutMode {
    #[default]
    Overwrite,
    /// Publish only if no object exists at the key.
    Create,
    /// Publish only if the object is still at this etag.
    Update(String),
}

#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    pub mode: PutMode,
    /// Publish only if the streamed content hashes to this digest.
    pub expected_digest: Option<Digest>,
    /// Publish only if exactly this many bytes arrive; also lets S3 pick a part size.
    pub expected_size: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutResult {
    pub etag: String,
    pub size: u64,
}

#[derive(Clone, Debug, Default)]
pub struct ListPage {
    /// Objects under the prefix in key order.
    pub objects: Vec<ObjectMeta>,
    /// Pass as `start_after` to get the next page; `None` on the last page.
    pub next_start_after: Option<String>,
}

/// A page of keys alone ([`ObjectStore::list_keys`]).
#[derive(Clone, Debug, Default)]
pub struct KeyPage {
    /// Keys under the prefix in key order.
    pub keys: Vec<ObjectKey>,
    /// Pass as `start_after` to get the next page; `None` on the last page.
    pub next_start_after: Option<String>,
}

/// The storage trait every backend implements and every protocol uses (through
/// [`BlobStore`] and [`DocStore`]). Writes become visible only when complete and verified.
#[async_trait]
pub trait ObjectStore: Send + Sync + std::fmt::Debug + 'static {
    /// Reads the object, or one range of it, as a stream.
    async fn get(&self, key: &ObjectKey, options: GetOptions) -> Result<GetResult>;

    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta>;

    /// Streams `body` to the key. Nothing is visible until the whole body has arrived
    /// and matched `expected_digest`/`expected_size`; a failed, mismatched or dropped
    /// put leaves nothing behind.
    async fn put(
        &self,
        key: &ObjectKey,
        body: ByteStream,
        options: PutOptions,
    ) -> Result<PutResult>;

    /// Objects whose key starts with `prefix` (a plain string prefix), in key order,
    /// after `start_after`, at most `limit` (at least 1) per page.
    async fn list(&self, prefix: &str, start_after: Option<&str>, limit: usize)
        -> Result<ListPage>;

    /// The keys of [`ObjectStore::list`]'s page without their sizes and versions: what a
    /// listing of names needs. The directory store learns those only from a stat per
    /// file, most of the cost of listing 250,000 project documents.
    async fn list_keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage> {
        let page = self.list(prefix, start_after, limit).await?;
        Ok(KeyPage {
            keys: page.objects.into_iter().map(|m| m.key).collect(),
            next_start_after: page.next_start_after,
        })
    }

    /// Removes the object; removing an absent object succeeds.
    async fn delete(&self, key: &ObjectKey) -> Result<()>;

    /// A URL from which a client can GET the object directly, for a limited time, when the
    /// backend offers that and it is switched on (S3 `redirect_downloads`); else `None`.
    async fn presigned_get(&self, _key: &ObjectKey) -> Result<Option<String>> {
        Ok(None)
    }

    /// Makes `to` a copy of `from` (replacing what was at `to`), without the bytes passing
    /// through this process where the backend can help: a hard link on disk, a server-side
    /// copy on S3. Used to publish an already verified upload under its digest.
    async fn copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<PutResult> {
        let got = self.get(from, GetOptions::default()).await?;
        let options = PutOptions {
            expected_size: Some(got.meta.size),
            ..Default::default()
        };
        self.put(to, got.body, options).await
    }

    /// Removes (unless `dry_run`) the writes killed processes left unfinished in the
    /// backend itself, started before `before`: S3 multipart uploads never completed nor
    /// aborted, files in the directory store's `.tmp/`. Nothing can read them. How many.
    async fn remove_abandoned_writes(&self, _before: SystemTime, _dry_run: bool) -> Result<u64> {
        Ok(0)
    }

    /// A short human description for logs: `file:///srv/airlock`, `s3://bucket/prefix`.
    fn describe(&self) -> String;
}

pub type DynStore = Arc<dyn ObjectStore>;

/// Opens the store a URL names, checking that it is reachable and usable; the error
/// says what to fix.
pub async fn open(url: &StoreUrl, s3: &S3Settings) -> anyhow::Result<DynStore> {
    Ok(match url {
        StoreUrl::File(path) => Arc::new(FsStore::open(path).await?),
        StoreUrl::S3 { bucket, prefix } => {
            Arc::new(S3Store::open(bucket.clone(), prefix.clone(), s3).await?)
        }
    })
}

/// The in-memory caches of metadata, each with its share of `[cache] metadata_bytes`.
/// One budget for all of them: a cache takes its memory from it, never adds to the
/// process's. Shares are sixty-fourths of the budget and add up to the whole
/// (`shares_add_up_to_the_budget`); each cache's weigher counts what its entries take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheShare {
    /// Metadata documents as stored (`DocStore`): manifests, refs, project documents.
    Documents,
    /// Rendered PyPI project pages (HTML and JSON).
    PypiPages,
    /// Parsed PyPI project documents.
    PypiParsed,
    /// Whole listings kept as names (`DocStore::kept_list`): an index's projects, a
    /// kind's Hub repositories, the OCI repositories.
    Listings,
    /// Parsed Hub commits with their file trees.
    HfCommits,
    /// Rendered Hub revision answers.
    HfRevisions,
    /// Rendered Hub tree and commit-list pages.
    HfListPages,
    /// Model images' manifests and layer descriptions.
    ModelImages,
    /// Names revalidated with pull-through upstreams, with what was found.
    UpstreamLookups,
}

impl CacheShare {
    pub const ALL: [CacheShare; 9] = [
        CacheShare::Documents,
        CacheShare::PypiPages,
        CacheShare::PypiParsed,
        CacheShare::Listings,
        CacheShare::HfCommits,
        CacheShare::HfRevisions,
        CacheShare::HfListPages,
        CacheShare::ModelImages,
        CacheShare::UpstreamLookups,
    ];

    /// Sixty-fourths of the budget. Commits are large (a 100,000-file commit parsed is
    /// ~25 MB) and documents many; the rendered caches only save rendering.
    fn sixty_fourths(self) -> u64 {
        match self {
            CacheShare::Documents => 16,
            CacheShare::PypiPages => 6,
            CacheShare::PypiParsed => 3,
            CacheShare::Listings => 10,
            CacheShare::HfCommits => 16,
            CacheShare::HfRevisions => 4,
            CacheShare::HfListPages => 4,
            CacheShare::ModelImages => 3,
            CacheShare::UpstreamLookups => 2,
        }
    }

    /// This cache's bytes of a budget of `metadata_bytes`.
    pub fn of(self, metadata_bytes: u64) -> u64 {
        metadata_bytes / 64 * self.sixty_fourths()
    }
}

/// `[cache]` in the config file.
#[derive(Clone, Debug)]
pub struct CacheSettings {
    /// Memory for everything kept of metadata, shared by the caches (`CacheShare`).
    pub metadata_bytes: u64,
    /// How long a mutable pointer (tag, branch, project page) is served from cache.
    pub mutable_ttl: Duration,
    /// How many "this blob exists, with this size" facts are remembered.
    pub blob_entries: u64,
    /// Memory for the bytes of small blobs (`blobs::SMALL_BLOB_MAX`) once read; 0: none.
    pub small_blob_bytes: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            metadata_bytes: 160 * 1024 * 1024,
            mutable_ttl: Duration::from_secs(5),
            blob_entries: 100_000,
            small_blob_bytes: 16 * 1024 * 1024,
        }
    }
}

/// The store as every command and the server use it: the backend (counting the
/// operations that reach it, recording the changes the store totals follow, see
/// [`changes`]), and the blob and document layers over it.
#[derive(Clone, Debug)]
pub struct Stores {
    pub store: DynStore,
    pub blobs: BlobStore,
    pub docs: DocStore,
    /// Operations that reached the backend (each one an S3 round trip).
    pub ops: Arc<OpCounts>,
}

impl Stores {
    pub fn new(store: DynStore, cache: &CacheSettings) -> Stores {
        let ops = Arc::new(OpCounts::default());
        let store: DynStore = Arc::new(CountingStore::new(store, ops.clone()));
        let store: DynStore = Arc::new(changes::ChangeRecorder::new(store));
        Stores {
            blobs: BlobStore::new(store.clone(), cache.blob_entries)
                .with_small_blobs(cache.small_blob_bytes),
            docs: DocStore::new(store.clone(), cache.metadata_bytes, cache.mutable_ttl),
            store,
            ops,
        }
    }

    /// Opens the configured store, failing with a message that says what to fix.
    pub async fn open(
        url: &StoreUrl,
        s3: &S3Settings,
        cache: &CacheSettings,
    ) -> anyhow::Result<Stores> {
        Ok(Stores::new(open(url, s3).await?, cache))
    }
}

/// Wraps a single in-memory value as a [`ByteStream`]; for small documents.
pub fn bytes_stream(data: impl Into<Bytes>) -> ByteStream {
    let data = data.into();
    Box::pin(futures::stream::once(async move { Ok(data) }))
}

/// The objects under a prefix, a listing page at a time: the whole listing (millions of
/// blobs, 100,000 project documents) is never in memory, and async work can be done
/// between pages.
pub struct ObjectPages<'a> {
    store: &'a DynStore,
    prefix: &'a str,
    page_size: usize,
    /// Where the next page starts; `None` once the last page was returned.
    after: Option<Option<String>>,
}

impl<'a> ObjectPages<'a> {
    pub fn new(store: &'a DynStore, prefix: &'a str, page_size: usize) -> ObjectPages<'a> {
        ObjectPages {
            store,
            prefix,
            page_size,
            after: Some(None),
        }
    }

    /// The next page; `None` after the last.
    pub async fn next(&mut self) -> Result<Option<Vec<ObjectMeta>>> {
        let Some(after) = self.after.take() else {
            return Ok(None);
        };
        let page = self
            .store
            .list(self.prefix, after.as_deref(), self.page_size)
            .await?;
        self.after = page.next_start_after.map(Some);
        Ok(Some(page.objects))
    }
}

/// Calls `each` on every object under `prefix`, a listing page of `page_size` at a time.
pub async fn for_each_object(
    store: &DynStore,
    prefix: &str,
    page_size: usize,
    mut each: impl FnMut(ObjectMeta),
) -> Result<()> {
    let mut pages = ObjectPages::new(store, prefix, page_size);
    while let Some(page) = pages.next().await? {
        page.into_iter().for_each(&mut each);
    }
    Ok(())
}

/// Collects a stream known to be small (metadata documents), refusing more than `limit` bytes.
pub async fn collect_limited(mut body: ByteStream, limit: usize) -> std::io::Result<Bytes> {
    use futures::StreamExt;
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if buf.len() + chunk.len() > limit {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("document larger than {limit} bytes"),
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_budget() {
        let total: u64 = CacheShare::ALL.iter().map(|s| s.sixty_fourths()).sum();
        assert_eq!(total, 64);
        let budget = CacheSettings::default().metadata_bytes;
        let given: u64 = CacheShare::ALL.iter().map(|s| s.of(budget)).sum();
        assert!(given <= budget);
    }

    #[test]
    fn ranges_resolve_like_rfc9110() {
        let b = |start, end| ByteRange::Bounded { start, end };
        assert_eq!(b(0, 0).resolve(10).unwrap(), 0..1);
        assert_eq!(b(9, 9).resolve(10).unwrap(), 9..10);
        assert_eq!(b(5, 100).resolve(10).unwrap(), 5..10);
        assert!(b(10, 12).resolve(10).is_err());
        assert!(b(4, 3).resolve(10).is_err());
        assert_eq!(ByteRange::From(3).resolve(10).unwrap(), 3..10);
        assert!(ByteRange::From(10).resolve(10).is_err());
        assert_eq!(ByteRange::Suffix(3).resolve(10).unwrap(), 7..10);
        assert_eq!(ByteRange::Suffix(30).resolve(10).unwrap(), 0..10);
        assert!(ByteRange::Suffix(0).resolve(10).is_err());
        assert!(ByteRange::Suffix(1).resolve(0).is_err());
    }

    #[test]
    fn parses_range_headers() {
        assert_eq!(
            ByteRange::parse_header("bytes=0-99"),
            Some(ByteRange::Bounded { start: 0, end: 99 })
        );
        assert_eq!(
            ByteRange::parse_header("bytes=-5"),
            Some(ByteRange::Suffix(5))
        );
        assert_eq!(
            ByteRange::parse_header("bytes=7-"),
            Some(ByteRange::From(7))
        );
        assert_eq!(ByteRange::parse_header("bytes=0-1,4-5"), None);
        assert_eq!(ByteRange::parse_header("items=0-1"), None);
        assert_eq!(ByteRange::parse_header("bytes=-"), None);
    }
}
