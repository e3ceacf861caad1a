//! Small metadata documents (manifests, tag pointers, refs, project pages) with a
//! bounded in-memory cache in front of the store, so hot metadata requests do not pay
//! an S3 round trip each.

use super::keyed_locks::KeyedLocks;
use super::names::KeptLists;
use super::{bytes_stream, collect_limited, DynStore, GetOptions, ObjectKey, PutMode, PutOptions};
use super::{CacheShare, NameList, Result, StoreError};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The largest document the metadata layer reads or writes. OCI asks registries to
/// accept manifests of at least 4 MiB; nothing else comes close.
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;
/// How long past the mutable TTL a whole listing (every project of an index, every
/// repository) is still answered while a new one is made in the background: after a
/// quiet minute the next request is not the one that waits for a listing of 250,000
/// documents. Another replica's additions show in listings within the TTL plus this.
const LISTING_STALE_FOR: Duration = Duration::from_secs(60);
/// How often a read-modify-write retries after losing a race before giving up: races
/// are with other processes (in one, writers of a document take turns: `updating`).
const UPDATE_ATTEMPTS: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutability {
    /// Named by its content (a digest, a commit id): cached until evicted.
    Immutable,
    /// A pointer that moves (a tag, a branch, a project page): cached for the mutable TTL.
    Mutable,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    pub bytes: Bytes,
    /// The store's version token, for a later `PutMode::Update`.
    pub etag: String,
}

#[derive(Clone)]
struct Cached {
    doc: Document,
    mutability: Mutability,
}

struct DocExpiry {
    mutable_ttl: Duration,
}

impl moka::Expiry<ObjectKey, Cached> for DocExpiry {
    fn expire_after_create(&self, _: &ObjectKey, value: &Cached, _: Instant) -> Option<Duration> {
        match value.mutability {
            Mutability::Immutable => None,
            Mutability::Mutable => Some(self.mutable_ttl),
        }
    }

    fn expire_after_update(
        &self,
        key: &ObjectKey,
        value: &Cached,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, value, now)
    }
}

#[derive(Clone)]
pub struct DocStore {
    store: DynStore,
    /// Behind one `Arc`: a moka cache is several, and the states holding a `DocStore`
    /// are cloned for every request.
    cache: Arc<moka::future::Cache<ObjectKey, Cached>>,
    /// Whole listings kept as names (`kept_list`), by what they list.
    lists: KeptLists,
    mutable_ttl: Duration,
    /// Whether a document read from the store is kept: not by a walk over every document
    /// (`scanning`), which would push out what requests use.
    keeps_misses: bool,
    /// Whether moving documents are read from the store even when cached (`following`).
    reads_moving_through: bool,
    /// `[cache] metadata_bytes`: the other caches built over these documents take their
    /// share of it (`memory_for`).
    metadata_bytes: u64,
    /// Documents being read-modify-written in this process (`update`): writers of one
    /// document take turns instead of racing. Racing, each round let one of them win and
    /// sent every other back to read again, so with more writers than `UPDATE_ATTEMPTS`
    /// (a server creating many models at once, each adding itself to the kind's list)
    /// some were refused. Other processes still race through conditional writes.
    updating: Arc<KeyedLocks<ObjectKey>>,
}

/// What the cache holds per document beyond its key, bytes and etag (moka's entry, its
/// place in the eviction queues and the hash table, `Cached`, the `Bytes` header): a
/// store of small documents would otherwise hold about twice its budget.
const ENTRY_OVERHEAD: usize = 256;

impl std::fmt::Debug for DocStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocStore")
            .field("store", &self.store)
            .field("cached", &self.cache.entry_count())
            .finish()
    }
}

impl DocStore {
    /// Documents over `store`, cached in their share of `metadata_bytes`.
    pub fn new(store: DynStore, metadata_bytes: u64, mutable_ttl: Duration) -> Self {
        let cache = moka::future::Cache::builder()
            .max_capacity(CacheShare::Documents.of(metadata_bytes))
            .weigher(|k: &ObjectKey, v: &Cached| {
                (k.as_str().len() + v.doc.bytes.len() + v.doc.etag.len() + ENTRY_OVERHEAD)
                    .try_into()
                    .unwrap_or(u32::MAX)
            })
            .expire_after(DocExpiry { mutable_ttl })
            .build();
        let lists = KeptLists::new(
            CacheShare::Listings.of(metadata_bytes),
            mutable_ttl,
            mutable_ttl.max(LISTING_STALE_FOR),
        );
        DocStore {
            store,
            cache: Arc::new(cache),
            lists,
            mutable_ttl,
            keeps_misses: true,
            reads_moving_through: false,
            metadata_bytes,
            updating: Arc::default(),
        }
    }

    /// Memory a cache of things derived from these documents may take.
    pub fn memory_for(&self, share: CacheShare) -> u64 {
        share.of(self.metadata_bytes)
    }

    /// Whether documents read from the store are kept (not by a `scanning` view).
    pub fn keeps_misses(&self) -> bool {
        self.keeps_misses
    }

    /// The same documents for a walk over all of them (the catalog's totals): cached
    /// ones are answered from memory, the others are read without being kept.
    pub fn scanning(&self) -> DocStore {
        DocStore {
            keeps_misses: false,
            ..self.clone()
        }
    }

    /// The same documents for following changes as they are recorded (the totals): a
    /// moving document (a tag, a project page) is read from the store, since the one
    /// cached may predate the change; nothing read is kept.
    pub fn following(&self) -> DocStore {
        DocStore {
            keeps_misses: false,
            reads_moving_through: true,
            ..self.clone()
        }
    }

    /// How long a moving document (a tag, a project page) may be answered from memory:
    /// what is derived from such documents may be kept as long.
    pub fn mutable_ttl(&self) -> Duration {
        self.mutable_ttl
    }

    /// The whole listing `id` names (each protocol's own: `pypi/<index>/projects`, ...),
    /// fresh for the mutable TTL and answered for `LISTING_STALE_FOR` more while `list`
    /// runs in the background ([`KeptLists`]); `list` makes the listing's future when
    /// one is needed.
    /// A list larger than the whole share is answered but not kept.
    pub async fn kept_list<E, L, F>(
        &self,
        id: &str,
        list: L,
    ) -> std::result::Result<Arc<NameList>, Arc<E>>
    where
        E: Send + Sync + 'static,
        L: FnOnce() -> F,
        F: std::future::Future<Output = std::result::Result<NameList, E>> + Send + 'static,
    {
        self.lists.get(id, list).await
    }

    /// Drops the kept listing `id`: this process added to it, and lists it at once
    /// (other replicas within the TTL and `LISTING_STALE_FOR`).
    pub async fn forget_list(&self, id: &str) {
        self.lists.forget(id).await;
    }

    /// Reads a document through the cache; `None` when absent.
    pub async fn get(&self, key: &ObjectKey, mutability: Mutability) -> Result<Option<Document>> {
        if self.reads_moving_through && mutability == Mutability::Mutable {
            return self.get_fresh(key).await;
        }
        if let Some(hit) = self.cache.get(key).await {
            return Ok(Some(hit.doc));
        }
        let doc = self.get_fresh(key).await?;
        if let Some(doc) = doc.as_ref().filter(|_| self.keeps_misses) {
            self.remember(key, doc.clone(), mutability).await;
        }
        Ok(doc)
    }

    /// One page of the documents under `prefix`, in key order, from the store itself.
    pub async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<super::ListPage> {
        self.store.list(prefix, start_after, limit).await
    }

    /// One page of the keys alone under `prefix` ([`super::ObjectStore::list_keys`]).
    pub async fn list_keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<super::KeyPage> {
        self.store.list_keys(prefix, start_after, limit).await
    }

    /// Reads a document from the store itself, bypassing the cache (for read-modify-write).
    pub async fn get_fresh(&self, key: &ObjectKey) -> Result<Option<Document>> {
        let got = match self.store.get(key, GetOptions::default()).await {
            Ok(got) => got,
            Err(StoreError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let etag = got.meta.etag.clone();
        let bytes = collect_limited(got.body, MAX_DOCUMENT_BYTES)
            .await
            .map_err(|e| StoreError::Unavailable(format!("{key}: {e}")))?;
        Ok(Some(Document { bytes, etag }))
    }

    /// Writes a document; with `PutMode::Create`/`Update` only if nobody else got there first.
    pub async fn put(
        &self,
        key: &ObjectKey,
        bytes: Bytes,
        mode: PutMode,
        mutability: Mutability,
    ) -> Result<Document> {
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(StoreError::SizeMismatch {
                expected: MAX_DOCUMENT_BYTES as u64,
                actual: bytes.len() as u64,
            });
        }
        let options = PutOptions {
            mode,
            expected_size: Some(bytes.len() as u64),
            ..Default::default()
        };
        let put = self
            .store
            .put(key, bytes_stream(bytes.clone()), options)
            .await;
        let put = match put {
            Ok(put) => put,
            Err(e) => {
                // Whatever we cached may be what the race winner replaced.
                self.cache.invalidate(key).await;
                return Err(e);
            }
        };
        let doc = Document {
            bytes,
            etag: put.etag,
        };
        self.remember(key, doc.clone(), mutability).await;
        Ok(doc)
    }

    /// Read-modify-write without lost updates: `change` sees the current document (or
    /// `None`) and returns the new bytes, or `None` to leave it as it is. On a lost race
    /// it runs again on the winner's version.
    pub async fn update<F, E>(
        &self,
        key: &ObjectKey,
        mut change: F,
    ) -> Result<Result<Option<Document>, E>>
    where
        F: FnMut(Option<&Document>) -> Result<Option<Bytes>, E>,
    {
        let _turn = self.updating.lock(key).await;
        for _ in 0..UPDATE_ATTEMPTS {
            let current = self.get_fresh(key).await?;
            let new = match change(current.as_ref()) {
                Ok(Some(new)) => new,
                Ok(None) => return Ok(Ok(current)),
                Err(e) => return Ok(Err(e)),
            };
            let mode = match &current {
                Some(doc) => PutMode::Update(doc.etag.clone()),
                None => PutMode::Create,
            };
            match self.put(key, new, mode, Mutability::Mutable).await {
                Ok(doc) => return Ok(Ok(Some(doc))),
                Err(StoreError::PreconditionFailed(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unavailable(format!(
            "{key}: gave up after {UPDATE_ATTEMPTS} conflicting concurrent updates"
        )))
    }

    /// [`update`](Self::update) of a JSON document as a typed value: `change` edits the
    /// current value (the type's default when absent) and says whether it changed
    /// anything; only then is it written. Returns the value as it now stands.
    pub async fn update_json<T, F, E>(
        &self,
        key: &ObjectKey,
        mut change: F,
    ) -> std::result::Result<T, E>
    where
        T: serde::de::DeserializeOwned + serde::Serialize + Default,
        F: FnMut(&mut T) -> std::result::Result<bool, E>,
        E: From<StoreError>,
    {
        let decode = |doc: &Document| {
            serde_json::from_slice(&doc.bytes).map_err(|e| {
                E::from(StoreError::Unavailable(format!(
                    "{key}: corrupt document: {e}"
                )))
            })
        };
        let value = self
            .update_json_with(key, decode, |value| {
                change(value.get_or_insert_with(T::default))
            })
            .await?;
        Ok(value.expect("change filled it in"))
    }

    /// [`update_json`](Self::update_json) for callers that treat an absent document
    /// themselves (refuse, skip, create with content of their own): `change` sees `None`
    /// then, and returns whether to write the value (nothing is written while it is
    /// `None`). `decode` reads the stored value, in the caller's own error (or through
    /// its own parse cache). Returns the value as it now stands.
    pub async fn update_json_with<T, D, F, E>(
        &self,
        key: &ObjectKey,
        decode: D,
        mut change: F,
    ) -> std::result::Result<Option<T>, E>
    where
        T: serde::Serialize,
        D: Fn(&Document) -> std::result::Result<T, E>,
        F: FnMut(&mut Option<T>) -> std::result::Result<bool, E>,
        E: From<StoreError>,
    {
        let mut result = None;
        let outcome = self
            .update(key, |current| {
                let mut value = current.map(&decode).transpose()?;
                let write = change(&mut value)?;
                let bytes = value
                    .as_ref()
                    .filter(|_| write)
                    .map(|v| Bytes::from(serde_json::to_vec(v).expect("serializable")));
                result = value;
                Ok::<_, E>(bytes)
            })
            .await
            .map_err(E::from)?;
        outcome?;
        Ok(result)
    }

    pub async fn delete(&self, key: &ObjectKey) -> Result<()> {
        let result = self.store.delete(key).await;
        self.cache.invalidate(key).await;
        result
    }

    async fn remember(&self, key: &ObjectKey, doc: Document, mutability: Mutability) {
        self.cache
            .insert(key.clone(), Cached { doc, mutability })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FsStore;

    /// A walk over every document reads through the cache without filling it; a
    /// request's read keeps what it read.
    #[tokio::test]
    async fn a_scanning_read_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store: DynStore = Arc::new(FsStore::open(dir.path()).await.unwrap());
        let key = ObjectKey::new("pypi/default/projects/a.json".to_string()).unwrap();
        let options = PutOptions::default();
        store.put(&key, bytes_stream("{}"), options).await.unwrap();
        let docs = DocStore::new(store, 1 << 20, Duration::from_secs(60));

        let scanned = docs
            .scanning()
            .get(&key, Mutability::Mutable)
            .await
            .unwrap();
        assert_eq!(scanned.unwrap().bytes, "{}");
        assert!(!docs.cache.contains_key(&key));
        docs.get(&key, Mutability::Mutable).await.unwrap();
        assert!(docs.cache.contains_key(&key));
        // Now a hit, for the walk too.
        let hit = docs
            .scanning()
            .get(&key, Mutability::Mutable)
            .await
            .unwrap();
        assert_eq!(hit.unwrap().bytes, "{}");
    }
}
