//! Content-addressed blobs: the one copy of every body, shared by all protocols.

use super::claims::Claim;
use super::layout::blob_key;
use super::verify::Verifier;
use super::{
    ByteStream, DynStore, GetOptions, GetResult, ObjectKey, ObjectMeta, PutOptions, Result,
    StoreError,
};
use crate::digest::{Algorithm, Digest, Hasher};
use bytes::Bytes;
use std::path::Path;
use std::sync::Arc;
use tokio::io::AsyncReadExt;

/// Blobs up to this size are kept in memory once read whole, within
/// `[cache] small_blob_bytes`: a PEP 658 `.metadata` file, an image config or a
/// `config.json` is a few KiB and clients fetch them on every resolve or pull, where
/// each read was a file open or, on S3, a round trip. Larger blobs always stream.
pub const SMALL_BLOB_MAX: u64 = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobMeta {
    pub digest: Digest,
    pub size: u64,
}

#[derive(Clone, Debug)]
pub struct BlobStore {
    store: DynStore,
    /// Blobs never change once written, so "this digest exists with this size" spares S3
    /// a HEAD on every hot pull. Only for a minute: a collection on another replica may
    /// remove a blob nothing references, and a client asking whether to upload it again
    /// must soon hear the truth.
    /// (Behind one `Arc`, like the document cache: cloned for every request.)
    known: Arc<moka::future::Cache<Digest, u64>>,
    /// Reads, noted for pull-through eviction (`access.rs`).
    reads: super::access::AccessLog,
    /// Small blobs' bytes as read (and checked against their digest) from the store.
    /// Content named by its digest never changes, so nothing here goes stale; a blob
    /// deleted from the store is dropped here by this process, and another replica's
    /// collection removes only blobs no reference names, which no request then reaches.
    small: Option<Arc<moka::future::Cache<Digest, (ObjectMeta, Bytes)>>>,
}

impl BlobStore {
    pub fn new(store: DynStore, cached_entries: u64) -> Self {
        BlobStore {
            store,
            known: Arc::new(
                moka::future::Cache::builder()
                    .max_capacity(cached_entries)
                    .time_to_live(std::time::Duration::from_secs(60))
                    .build(),
            ),
            reads: super::access::AccessLog::default(),
            small: None,
        }
    }

    /// Keeps blobs up to [`SMALL_BLOB_MAX`] in `bytes` of memory once read (0: none).
    pub fn with_small_blobs(mut self, bytes: u64) -> Self {
        self.small = (bytes > 0).then(|| {
            Arc::new(
                moka::future::Cache::builder()
                    .max_capacity(bytes)
                    .weigher(|d: &Digest, (meta, bytes): &(ObjectMeta, Bytes)| {
                        let weight = bytes.len() + meta.key.as_str().len() + meta.etag.len();
                        (weight + d.hex().len() + 128)
                            .try_into()
                            .unwrap_or(u32::MAX)
                    })
                    .build(),
            )
        });
        self
    }

    pub fn store(&self) -> &DynStore {
        &self.store
    }

    pub async fn head(&self, digest: &Digest) -> Result<BlobMeta> {
        if let Some(size) = self.known.get(digest).await {
            return Ok(BlobMeta {
                digest: digest.clone(),
                size,
            });
        }
        let meta = self.store.head(&blob_key(digest)).await?;
        self.remember(digest, &meta).await;
        Ok(BlobMeta {
            digest: digest.clone(),
            size: meta.size,
        })
    }

    /// Claims stored blobs a reference is about to name (`store/claims.rs`): the
    /// collector will not delete them, and those already gone are returned. The caller
    /// publishes its reference only if none is (or stores them first), then releases the
    /// claim.
    pub async fn claim(&self, digests: &[Digest]) -> Result<(Claim, Vec<Digest>)> {
        let keys: Vec<ObjectKey> = digests.iter().map(blob_key).collect();
        let claim = super::claims::claim(&self.store, &keys).await?;
        let mut gone = Vec::new();
        for digest in digests {
            if claim.missing.contains(&blob_key(digest)) {
                // Another replica's collection removed it: stop answering from memory.
                self.known.invalidate(digest).await;
                gone.push(digest.clone());
            }
        }
        Ok((claim, gone))
    }

    /// Whether the blob is still stored, for a put that found it and will drop the bytes:
    /// claimed, so no collection removes it in between.
    async fn still_stored(&self, digest: &Digest) -> Result<bool> {
        let (claim, gone) = self.claim(std::slice::from_ref(digest)).await?;
        claim.release().await;
        Ok(gone.is_empty())
    }

    pub async fn exists(&self, digest: &Digest) -> Result<bool> {
        match self.head(digest).await {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The reads noted so far, for `serve` to flush.
    pub fn reads(&self) -> &super::access::AccessLog {
        &self.reads
    }

    pub async fn get(&self, digest: &Digest, options: GetOptions) -> Result<GetResult> {
        self.reads.note(digest);
        if let Some(small) = &self.small {
            if let Some((meta, bytes)) = small.get(digest).await {
                return from_memory(meta, &bytes, options);
            }
        }
        let result = self.store.get(&blob_key(digest), options).await;
        match result {
            Err(StoreError::NotFound(_)) => {
                self.known.invalidate(digest).await;
                result
            }
            Ok(got) => match &self.small {
                Some(small)
                    if got.meta.size <= SMALL_BLOB_MAX && got.range == (0..got.meta.size) =>
                {
                    keep_small(small, digest, got).await
                }
                _ => Ok(got),
            },
            Err(_) => result,
        }
    }

    /// Stores a body that must hash to `digest`. When the blob is already present the
    /// bytes are not written again, but they are still read and checked: a successful put
    /// is the caller's proof that it holds the content, and callers then link the blob
    /// where they could not read it before. Knowing a digest must never be enough.
    pub async fn put(
        &self,
        digest: &Digest,
        body: ByteStream,
        expected_size: Option<u64>,
    ) -> Result<BlobMeta> {
        // A blob already stored is claimed before the bytes are dropped: whoever put it
        // is about to name it, and it may be nothing else's any more.
        if let Ok(existing) = self.head(digest).await {
            if expected_size.is_none_or(|s| s == existing.size) && self.still_stored(digest).await?
            {
                drain_verified(body, digest, existing.size).await?;
                return Ok(existing);
            }
        }
        let options = PutOptions {
            expected_digest: Some(digest.clone()),
            expected_size,
            ..Default::default()
        };
        let put = self.store.put(&blob_key(digest), body, options).await?;
        self.known.insert(digest.clone(), put.size).await;
        Ok(BlobMeta {
            digest: digest.clone(),
            size: put.size,
        })
    }

    /// Where a client may fetch the blob straight from the backend (a presigned S3 URL),
    /// when the store is set to redirect downloads. The blob must exist: a missing one is
    /// NotFound here, never a redirect to a 404 on another server.
    pub async fn redirect_url(&self, digest: &Digest) -> Result<Option<String>> {
        self.reads.note(digest);
        let key = blob_key(digest);
        match self.store.presigned_get(&key).await? {
            Some(url) => {
                // Asked of the store, not remembered: a collection elsewhere may have
                // removed it, and the client would follow the redirect to a 404.
                if let Err(e) = self.store.head(&key).await {
                    self.known.invalidate(digest).await;
                    return Err(e);
                }
                Ok(Some(url))
            }
            None => Ok(None),
        }
    }

    /// Publishes an object already in the store (a finished upload) as the blob `digest`,
    /// by a copy inside the store instead of a second pass over the bytes. The caller
    /// vouches that `from` hashes to `digest`: it hashed the bytes as they were stored.
    pub async fn adopt(&self, digest: &Digest, from: &ObjectKey, size: u64) -> Result<BlobMeta> {
        if let Ok(existing) = self.head(digest).await {
            if existing.size == size && self.still_stored(digest).await? {
                return Ok(existing);
            }
        }
        let copied = self.store.copy(from, &blob_key(digest)).await?;
        if copied.size != size {
            // The upload object changed under us: never publish it under this digest.
            let _ = self.store.delete(&blob_key(digest)).await;
            return Err(StoreError::SizeMismatch {
                expected: size,
                actual: copied.size,
            });
        }
        self.known.insert(digest.clone(), size).await;
        Ok(BlobMeta {
            digest: digest.clone(),
            size,
        })
    }

    /// Imports a local file: hashes it first (so the key is known), then streams it in
    /// with verification, which also catches the file changing in between.
    pub async fn put_file(&self, path: &Path, algorithm: Algorithm) -> std::io::Result<BlobMeta> {
        let (digest, size) = hash_file(path, algorithm).await?;
        let file = tokio::fs::File::open(path).await?;
        let body = Box::pin(tokio_util::io::ReaderStream::with_capacity(
            file,
            256 * 1024,
        ));
        self.put(&digest, body, Some(size))
            .await
            .map_err(std::io::Error::other)
    }

    pub async fn delete(&self, digest: &Digest) -> Result<()> {
        self.known.invalidate(digest).await;
        if let Some(small) = &self.small {
            small.invalidate(digest).await;
        }
        self.store.delete(&blob_key(digest)).await
    }

    async fn remember(&self, digest: &Digest, meta: &ObjectMeta) {
        self.known.insert(digest.clone(), meta.size).await;
    }
}

/// Reads a small blob's whole body and keeps it if it hashes to its digest (a damaged
/// file is served as the store has it, as a large one would be, but not kept).
async fn keep_small(
    small: &moka::future::Cache<Digest, (ObjectMeta, Bytes)>,
    digest: &Digest,
    got: GetResult,
) -> Result<GetResult> {
    use futures::TryStreamExt;
    let GetResult {
        meta, range, body, ..
    } = got;
    let chunks: Vec<Bytes> = body.try_collect().await.map_err(StoreError::Body)?;
    let bytes = match chunks.len() {
        1 => chunks.into_iter().next().expect("one chunk"),
        _ => Bytes::from(chunks.concat()),
    };
    let mut verifier = Verifier::new(Some(digest), Some(meta.size));
    if verifier
        .update(&bytes)
        .and_then(|_| verifier.finish())
        .is_ok()
    {
        small
            .insert(digest.clone(), (meta.clone(), bytes.clone()))
            .await;
    }
    Ok(GetResult {
        meta,
        range,
        body: super::bytes_stream(bytes),
        file: None,
    })
}

/// A kept small blob, or the part of it `options` asks for.
fn from_memory(meta: ObjectMeta, bytes: &Bytes, options: GetOptions) -> Result<GetResult> {
    let range = match options.range {
        Some(r) => r.resolve(meta.size)?,
        None => 0..meta.size,
    };
    let part = bytes.slice(range.start as usize..range.end as usize);
    Ok(GetResult {
        meta,
        range,
        body: super::bytes_stream(part),
        file: None,
    })
}

/// Reads a body to its end and checks it against `digest` and `size`, keeping nothing.
async fn drain_verified(mut body: ByteStream, digest: &Digest, size: u64) -> Result<()> {
    use futures::StreamExt;
    let mut verifier = Verifier::new(Some(digest), Some(size));
    while let Some(chunk) = body.next().await {
        verifier.update(&chunk.map_err(StoreError::Body)?)?;
    }
    verifier.finish().map(drop)
}

/// Streams a local file through the hasher without holding it in memory.
pub async fn hash_file(path: &Path, algorithm: Algorithm) -> std::io::Result<(Digest, u64)> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Hasher::new(algorithm);
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hasher.finish(), size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{bytes_stream, ByteRange, CountingStore, FsStore, OpCounts, PutOptions};
    use futures::TryStreamExt;
    use std::sync::atomic::Ordering;

    async fn blobs() -> (tempfile::TempDir, BlobStore, Arc<OpCounts>) {
        let dir = tempfile::tempdir().unwrap();
        let fs: DynStore = Arc::new(FsStore::open(dir.path()).await.unwrap());
        let counts = Arc::new(OpCounts::default());
        let store: DynStore = Arc::new(CountingStore::new(fs, counts.clone()));
        let blobs = BlobStore::new(store, 16).with_small_blobs(1 << 20);
        (dir, blobs, counts)
    }

    async fn read(blobs: &BlobStore, digest: &Digest, range: Option<ByteRange>) -> Vec<u8> {
        let got = blobs.get(digest, GetOptions { range }).await.unwrap();
        let chunks: Vec<Bytes> = got.body.try_collect().await.unwrap();
        chunks.concat()
    }

    async fn stored(blobs: &BlobStore, data: &[u8]) -> Digest {
        let digest = Digest::of_bytes(Algorithm::Sha256, data);
        blobs
            .put(
                &digest,
                bytes_stream(data.to_vec()),
                Some(data.len() as u64),
            )
            .await
            .unwrap();
        digest
    }

    #[tokio::test]
    async fn a_small_blob_is_read_from_the_store_once_and_a_large_one_every_time() {
        let (_dir, blobs, counts) = blobs().await;
        let small = stored(&blobs, b"a small metadata file").await;
        let large_data = vec![7u8; SMALL_BLOB_MAX as usize + 1];
        let large = stored(&blobs, &large_data).await;
        let gets = || counts.get.load(Ordering::SeqCst);

        let before = gets();
        for _ in 0..3 {
            assert_eq!(read(&blobs, &small, None).await, b"a small metadata file");
        }
        let part = ByteRange::Bounded { start: 2, end: 6 };
        assert_eq!(read(&blobs, &small, Some(part)).await, b"small");
        assert_eq!(
            gets() - before,
            1,
            "one read of the small blob reached the store"
        );
        let beyond = ByteRange::Bounded {
            start: 100,
            end: 200,
        };
        assert!(matches!(
            blobs
                .get(
                    &small,
                    GetOptions {
                        range: Some(beyond)
                    }
                )
                .await,
            Err(StoreError::RangeNotSatisfiable { size: 21 })
        ));

        let before = gets();
        for _ in 0..2 {
            assert_eq!(read(&blobs, &large, None).await, large_data);
        }
        assert_eq!(
            gets() - before,
            2,
            "a large blob streams from the store each time"
        );

        blobs.delete(&small).await.unwrap();
        assert!(matches!(
            blobs.get(&small, GetOptions::default()).await,
            Err(StoreError::NotFound(_))
        ));
    }

    /// A damaged file is served as the store has it, like any read, but never kept.
    #[tokio::test]
    async fn a_small_blob_that_does_not_match_its_digest_is_not_kept() {
        let (_dir, blobs, counts) = blobs().await;
        let digest = Digest::of_bytes(Algorithm::Sha256, b"what was written");
        blobs
            .store()
            .put(
                &blob_key(&digest),
                bytes_stream(&b"what the disk holds now"[..]),
                PutOptions::default(),
            )
            .await
            .unwrap();
        let before = counts.get.load(Ordering::SeqCst);
        for _ in 0..2 {
            assert_eq!(
                read(&blobs, &digest, None).await,
                b"what the disk holds now"
            );
        }
        assert_eq!(counts.get.load(Ordering::SeqCst) - before, 2);
    }
}
