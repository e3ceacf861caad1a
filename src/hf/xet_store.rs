//! Xet content in the store (layout: `xet/` in `store/layout.rs`).
//!
//! - A xorb is verified while it streams into the store (every chunk decoded and hashed,
//!   the Merkle root compared with the name the client gave): a xorb that fails is never
//!   published. Its chunk index is written after it, and marks it stored.
//! - A shard is a claim: each file's hash, sizes and term verification hashes are checked
//!   against the stored indexes (`xet::verify`), which proves the uploader knew the
//!   chunks and not only a xorb's name.
//! - Each file the shard names with a sha256 is then rebuilt once from its xorbs and
//!   hashed: the sha256 (what a Hub commit names as `lfsFile.oid`) is proven, not
//!   believed. By default the rebuilt bytes are dropped: the xorbs stay the only copy
//!   (a revision that changes a few chunks stores only those), and plain downloads,
//!   commits and every other reader get the file rebuilt as they read it
//!   (`file_bytes.rs`, `read_file`). With `[hf] xet_materialize` the file is also
//!   stored whole under `blobs/`, through the verifying blob store. The repository the
//!   CAS token was for gets the LFS link that lets its commits name the file, and the
//!   file's sha256 maps to its Xet hash, which a commit naming that sha256 records so
//!   downloads can offer Xet.
//! - Downloads through Xet read xorbs back by byte range (`read_xorb`): the client
//!   decodes and checks the chunks itself.

use super::model::RepoRef;
use super::repo::Repos;
use super::HfError;
use crate::digest::Digest;
use crate::store::layout::{xet_xorb_key, MetaKey};
use crate::store::{
    ByteRange, ByteStream, DocStore, DynStore, GetOptions, Mutability, PutMode, PutOptions,
    StoreError,
};
use crate::xet::{self, FileInfo, MerkleHash, XetError, XorbIndex, XorbVerifier};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use read::hashes_to;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub struct XetStore {
    store: DynStore,
    docs: DocStore,
    /// `[hf] xet_materialize`: keep a whole copy of each file under `blobs/` too.
    materialize: bool,
}

/// `xet/files/<hh>/<hash>.json`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileDoc {
    pub size: u64,
    pub sha256: String,
    pub terms: Vec<TermDoc>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TermDoc {
    pub xorb: String,
    pub start: u32,
    pub end: u32,
    pub size: u32,
}

mod read;

/// What a shard upload did, for the v2 route's progress events.
pub enum ShardProgress {
    Verified { done: usize, total: usize },
    Storing,
}

fn invalid(e: XetError) -> HfError {
    HfError::bad_request(e.to_string())
}

fn index_key(hash: &MerkleHash) -> crate::store::ObjectKey {
    MetaKey::XetXorbIndex {
        hash: hash.to_api_hex(),
    }
    .key()
    .expect("hex keys are valid")
}

fn file_key(hash: &MerkleHash) -> crate::store::ObjectKey {
    MetaKey::XetFile {
        hash: hash.to_api_hex(),
    }
    .key()
    .expect("hex keys are valid")
}

fn sha256_key(digest: &Digest) -> crate::store::ObjectKey {
    MetaKey::XetSha256 {
        digest: digest.clone(),
    }
    .key()
    .expect("digest keys are valid")
}

fn xorb_key(hash: &MerkleHash) -> crate::store::ObjectKey {
    xet_xorb_key(&hash.to_api_hex()).expect("hex keys are valid")
}

impl XetStore {
    pub fn new(store: DynStore, docs: DocStore) -> XetStore {
        XetStore {
            store,
            docs,
            materialize: false,
        }
    }

    /// With `true`, each file a shard names is also stored whole as a blob.
    pub fn materializing(self, materialize: bool) -> XetStore {
        XetStore {
            materialize,
            ..self
        }
    }

    pub(super) fn docs(&self) -> &DocStore {
        &self.docs
    }

    pub(super) fn store(&self) -> &DynStore {
        &self.store
    }

    pub async fn has_xorb(&self, hash: &MerkleHash) -> Result<bool, HfError> {
        Ok(self
            .docs
            .get(&index_key(hash), Mutability::Immutable)
            .await?
            .is_some())
    }

    pub async fn xorb_index(&self, hash: &MerkleHash) -> Result<Option<XorbIndex>, HfError> {
        let Some(doc) = self
            .docs
            .get(&index_key(hash), Mutability::Immutable)
            .await?
        else {
            return Ok(None);
        };
        let index = XorbIndex::from_bytes(&doc.bytes)
            .map_err(|e| HfError::from(StoreError::Unavailable(format!("xorb {hash}: {e}"))))?;
        if index.hash != *hash {
            return Err(
                StoreError::Unavailable(format!("xorb {hash}: index of another xorb")).into(),
            );
        }
        Ok(Some(index))
    }

    /// Whether the xorb's bytes are in the store (its index may be remembered by a
    /// replica after a collection removed both).
    pub async fn xorb_stored(&self, hash: &MerkleHash) -> Result<bool, HfError> {
        match self.store.head(&xorb_key(hash)).await {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a xorb nothing references (the collector's call, inside its batch): the
    /// bytes first, so that while its index remains a writer claims it and finds it
    /// gone; then the index, the dedup entries written with it and its repository links.
    /// Dedup entries for files starting inside it are skipped by answers (no index).
    pub async fn remove_xorb(&self, hash: &MerkleHash) -> Result<(), HfError> {
        let index = self.xorb_index(hash).await.ok().flatten();
        self.store.delete(&xorb_key(hash)).await?;
        self.docs.delete(&index_key(hash)).await?;
        let chunks: Vec<MerkleHash> = match &index {
            Some(index) => index
                .chunks
                .iter()
                .enumerate()
                .filter(|(i, c)| *i == 0 || super::cas_dedup::is_eligible(&c.hash))
                .map(|(_, c)| c.hash)
                .collect(),
            None => Vec::new(),
        };
        for chunk in chunks {
            let key = MetaKey::XetDedupChunk {
                chunk: chunk.to_api_hex(),
                xorb: hash.to_api_hex(),
            };
            self.docs.delete(&key.key()?).await?;
        }
        let prefix = crate::store::layout::xet_xorb_repos_prefix(&hash.to_api_hex());
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .list_keys(&prefix, after.as_deref(), 1000)
                .await?;
            for key in page.keys {
                self.docs.delete(&key).await?;
            }
            match page.next_start_after {
                Some(next) => after = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// The file uploaded through Xet with this hash: its terms, size and sha256.
    pub async fn file(&self, hash: &MerkleHash) -> Result<Option<FileDoc>, HfError> {
        let Some(doc) = self
            .docs
            .get(&file_key(hash), Mutability::Immutable)
            .await?
        else {
            return Ok(None);
        };
        let file = serde_json::from_slice(&doc.bytes)
            .map_err(|e| StoreError::Unavailable(format!("Xet file {hash}: {e}")))?;
        Ok(Some(file))
    }

    /// The Xet hash (API hex) of the file with this sha256, if one was uploaded through
    /// Xet.
    pub async fn hash_of(&self, digest: &Digest) -> Result<Option<String>, HfError> {
        let Some(doc) = self
            .docs
            .get(&sha256_key(digest), Mutability::Immutable)
            .await?
        else {
            return Ok(None);
        };
        let hash = std::str::from_utf8(&doc.bytes)
            .ok()
            .and_then(|h| h.parse::<MerkleHash>().ok())
            .ok_or_else(|| {
                StoreError::Unavailable(format!("Xet hash of {}: damaged", digest.hex()))
            })?;
        Ok(Some(hash.to_api_hex()))
    }

    /// Stored bytes `[start, end]` (inclusive, as HTTP says it) of a xorb, streamed.
    pub async fn read_xorb(
        &self,
        hash: &MerkleHash,
        start: u64,
        end: u64,
    ) -> Result<crate::store::GetResult, HfError> {
        let range = Some(ByteRange::Bounded { start, end });
        Ok(self
            .store
            .get(&xorb_key(hash), GetOptions { range })
            .await?)
    }

    /// Claims stored xorbs a shard or a commit is about to name (`store/claims.rs`):
    /// the collector will not delete them; those already gone are returned. Release the
    /// claim once the reference is published.
    pub async fn claim_xorbs(
        &self,
        hashes: &[MerkleHash],
    ) -> Result<(crate::store::claims::Claim, Vec<MerkleHash>), HfError> {
        let keys: Vec<_> = hashes.iter().map(xorb_key).collect();
        let claim = crate::store::claims::claim(&self.store, &keys).await?;
        let gone = hashes
            .iter()
            .filter(|h| claim.missing.contains(&xorb_key(h)))
            .copied()
            .collect();
        Ok((claim, gone))
    }

    /// Stores a xorb the client names `hash`; `false` if it was stored already (the
    /// body is then read and dropped: content-addressed, nothing to compare).
    pub async fn put_xorb(&self, hash: MerkleHash, body: ByteStream) -> Result<bool, HfError> {
        // Stored already, and claimed so that a collection cannot remove it before the
        // shard naming it arrives; one it removed meanwhile is stored again from `body`.
        let stored = match self.has_xorb(&hash).await? {
            true => {
                let (claim, gone) = self.claim_xorbs(&[hash]).await?;
                claim.release().await;
                gone.is_empty()
            }
            false => false,
        };
        if stored {
            // Read and dropped, but never more than a xorb may hold.
            let mut seen = 0u64;
            let mut body = body;
            while let Some(chunk) = body.try_next().await.map_err(StoreError::Body)? {
                seen += chunk.len() as u64;
                if seen > xet::xorb::MAX_SERIALIZED_XORB_BYTES {
                    return Err(invalid(XetError::XorbTooLarge {
                        max: xet::xorb::MAX_SERIALIZED_XORB_BYTES,
                    }));
                }
            }
            return Ok(false);
        }
        let verified: Arc<Mutex<Option<XorbIndex>>> = Arc::default();
        let failure: Arc<Mutex<Option<XetError>>> = Arc::default();
        let stream = verifying(
            body,
            XorbVerifier::new(hash),
            verified.clone(),
            failure.clone(),
        );
        let put = self
            .store
            .put(&xorb_key(&hash), stream, PutOptions::default())
            .await;
        if let Some(e) = failure.lock().expect("not poisoned").take() {
            return Err(invalid(e));
        }
        put?;
        let index = verified
            .lock()
            .expect("not poisoned")
            .take()
            .ok_or_else(|| StoreError::Unavailable("xorb stored unverified".into()))?;
        self.docs
            .put(
                &index_key(&hash),
                Bytes::from(index.to_bytes()),
                PutMode::Overwrite,
                Mutability::Immutable,
            )
            .await?;
        super::cas_dedup::record_xorb(&self.docs, &index).await?;
        Ok(true)
    }

    /// Checks an uploaded shard against the stored xorbs, then rebuilds each of its files
    /// to prove its sha256 (storing it under `blobs/` only when materializing) and links
    /// it to `repo`.
    pub async fn register_shard(
        &self,
        repos: &Repos,
        repo: &RepoRef,
        body: Bytes,
        progress: impl FnMut(ShardProgress) + Send,
    ) -> Result<(), HfError> {
        let shard = tokio::task::spawn_blocking(move || {
            xet::parse_shard(std::io::Cursor::new(body), xet::shard::MAX_SHARD_BYTES)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("shard parser: {e}")))?
        .map_err(invalid)?;
        let named = shard.xorbs_named();
        if named.len() > xet::shard::MAX_XORBS_NAMED {
            return Err(invalid(XetError::BadShard("names too many xorbs".into())));
        }
        let named: Vec<MerkleHash> = named.into_iter().collect();
        let records = self.verify(repos, shard, &named, progress).await?;
        // Claimed before the records name them: a xorb stored long ago (global dedup) and
        // named by nothing else may be in a collection's batch right now.
        let (claim, gone) = self.claim_xorbs(&named).await?;
        let recorded = match gone.first() {
            Some(gone) => Err(invalid(XetError::UnknownXorb(*gone))),
            None => self.record_files(repos, repo, records).await,
        };
        claim.release().await;
        recorded
    }

    /// Checks a shard against the stored xorb indexes and rebuilds each of its files to
    /// prove its sha256: what to record for each.
    async fn verify(
        &self,
        repos: &Repos,
        shard: xet::Shard,
        named: &[MerkleHash],
        mut progress: impl FnMut(ShardProgress) + Send,
    ) -> Result<Vec<(MerkleHash, FileDoc, Digest)>, HfError> {
        // Indexes are loaded per xorb as the shard names them; a shard names few xorbs
        // (one per 64 MiB of new data) and each index is at most 320 KiB.
        let mut indexes: HashMap<MerkleHash, XorbIndex> = HashMap::new();
        for &hash in named {
            let index = self
                .xorb_index(&hash)
                .await?
                .ok_or_else(|| invalid(XetError::UnknownXorb(hash)))?;
            indexes.insert(hash, index);
        }
        let total = shard.files.len();
        let (shard, indexes) = tokio::task::spawn_blocking(move || {
            xet::verify_shard(&shard, &indexes).map(|()| (shard, indexes))
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("shard verifier: {e}")))?
        .map_err(invalid)?;
        progress(ShardProgress::Verified { done: total, total });
        progress(ShardProgress::Storing);
        // Every file is rebuilt (and its sha256 proven) before any is recorded, so a
        // refused shard leaves no file and no link; the blobs of files that did verify
        // (when materializing) are content nothing refers to yet.
        let indexes: Arc<HashMap<MerkleHash, Arc<XorbIndex>>> = Arc::new(
            indexes
                .into_iter()
                .map(|(hash, index)| (hash, Arc::new(index)))
                .collect(),
        );
        let mut records = Vec::new();
        for file in &shard.files {
            if let Some(record) = self.rebuild_file(repos, file, &indexes).await? {
                records.push(record);
            }
        }
        Ok(records)
    }

    async fn record_files(
        &self,
        repos: &Repos,
        repo: &RepoRef,
        records: Vec<(MerkleHash, FileDoc, Digest)>,
    ) -> Result<(), HfError> {
        for (hash, doc, digest) in records {
            let bytes = serde_json::to_vec(&doc).expect("serializable");
            self.docs
                .put(
                    &file_key(&hash),
                    Bytes::from(bytes),
                    PutMode::Overwrite,
                    Mutability::Immutable,
                )
                .await?;
            // After the file document, so the mapping never names a missing file.
            self.docs
                .put(
                    &sha256_key(&digest),
                    Bytes::from(hash.to_api_hex()),
                    PutMode::Overwrite,
                    Mutability::Immutable,
                )
                .await?;
            repos.link_lfs(repo, &digest).await?;
        }
        Ok(())
    }

    /// Rebuilds one file and proves its sha256 (storing it under `blobs/` when
    /// materializing); `None` for a file without one (a Hub commit could not name it).
    async fn rebuild_file(
        &self,
        repos: &Repos,
        file: &FileInfo,
        indexes: &Arc<HashMap<MerkleHash, Arc<XorbIndex>>>,
    ) -> Result<Option<(MerkleHash, FileDoc, Digest)>, HfError> {
        let Some(sha256) = file.sha256 else {
            return Ok(None);
        };
        let digest = Digest::sha256_hex(&hex::encode(sha256))
            .map_err(|e| HfError::bad_request(e.to_string()))?;
        let doc = FileDoc {
            size: file.size(),
            sha256: digest.hex().to_string(),
            terms: file
                .terms
                .iter()
                .map(|t| TermDoc {
                    xorb: t.xorb.to_api_hex(),
                    start: t.chunks.start,
                    end: t.chunks.end,
                    size: t.unpacked_len,
                })
                .collect(),
        };
        let body = self.rebuild(&doc, indexes.clone());
        let proven = if self.materialize {
            repos
                .blobs()
                .put(&digest, body, Some(doc.size))
                .await
                .map(|_| ())
        } else {
            hashes_to(body, &digest, doc.size).await
        };
        proven.map_err(|e| match e {
            StoreError::DigestMismatch { .. } | StoreError::SizeMismatch { .. } => {
                HfError::bad_request(format!(
                    "file {}: its chunks do not hash to the sha256 {} the shard declares",
                    file.hash,
                    digest.hex()
                ))
            }
            e => e.into(),
        })?;
        Ok(Some((file.hash, doc, digest)))
    }
}
/// Passes the body through while `verifier` reads it; at its end, an unverified xorb
/// turns into an error so the store publishes nothing.
fn verifying(
    body: ByteStream,
    verifier: XorbVerifier,
    verified: Arc<Mutex<Option<XorbIndex>>>,
    failure: Arc<Mutex<Option<XetError>>>,
) -> ByteStream {
    let verifier = Arc::new(Mutex::new(Some(verifier)));
    let failure_in_body = failure.clone();
    let end = {
        let verifier = verifier.clone();
        futures::stream::once(async move {
            let v = verifier.lock().expect("not poisoned").take();
            match v.map(XorbVerifier::finish) {
                Some(Ok(index)) => {
                    *verified.lock().expect("not poisoned") = Some(index);
                    None
                }
                Some(Err(e)) => {
                    let message = e.to_string();
                    *failure.lock().expect("not poisoned") = Some(e);
                    Some(Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        message,
                    )))
                }
                None => None,
            }
        })
        .filter_map(futures::future::ready)
    };
    body.map(move |chunk| {
        let chunk = chunk?;
        let mut guard = verifier.lock().expect("not poisoned");
        if let Some(v) = guard.as_mut() {
            if let Err(e) = v.push(&chunk) {
                let message = e.to_string();
                *failure_in_body.lock().expect("not poisoned") = Some(e);
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    message,
                ));
            }
        }
        Ok(chunk)
    })
    .chain(end)
    .boxed()
}
