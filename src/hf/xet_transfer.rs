//! Xet content carried between stores (bundles): what this store holds, a stored
//! xorb's bytes whole, and adopting a file record that came from elsewhere.
//!
//! A carried xorb goes through [`XetStore::put_xorb`] like an upload. A carried file
//! record is a claim like a shard's: before it is written, its terms are checked against
//! the stored indexes (every xorb and chunk range present, sizes, the Merkle file hash
//! its key names) and its bytes are decoded from the xorbs to prove the sha256 it
//! declares, since `xet/sha256/` then lets commits and downloads name the file by that
//! sha256. Nothing is written into `blobs/`: the file travels and stays as chunks.

use super::xet_store::{FileDoc, XetStore};
use super::HfError;
use crate::digest::{Algorithm, Digest, Hasher};
use crate::store::layout::{xet_xorb_key, MetaKey};
use crate::store::{
    BlobStore, ByteRange, ByteStream, DocStore, DynStore, GetOptions, GetResult, Mutability,
    ObjectKey, PutMode, StoreError,
};
use crate::xet::hash::MerkleBuilder;
use crate::xet::{self, MerkleHash, XorbIndex};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

/// Chunks decoded per store read while a record's sha256 is proven (as the rebuild of an
/// upload does): a few MiB held at once whatever the file's size.
const CHUNKS_PER_READ: u32 = 32;
const XORBS_PREFIX: &str = "xet/xorbs/";
const FILES_PREFIX: &str = "xet/files/";

/// [`XetStore`] with the store access moving content between stores needs.
#[derive(Clone, Debug)]
pub struct XetTransfer {
    xet: XetStore,
    store: DynStore,
    docs: DocStore,
}

fn doc_key(key: MetaKey) -> ObjectKey {
    key.key().expect("hex and digest keys are valid")
}

fn damaged(what: String) -> HfError {
    StoreError::Unavailable(what).into()
}

fn refused(hash: &MerkleHash, why: String) -> HfError {
    HfError::bad_request(format!("Xet file {hash}: {why}"))
}

impl XetTransfer {
    pub fn new(store: DynStore, docs: DocStore) -> XetTransfer {
        XetTransfer {
            xet: XetStore::new(store.clone(), docs.clone()),
            store,
            docs,
        }
    }

    pub fn xet(&self) -> &XetStore {
        &self.xet
    }

    /// Every xorb stored here (its index written, which is what makes it count).
    pub async fn held_xorbs(&self) -> Result<Vec<MerkleHash>, HfError> {
        let keys = self.list(XORBS_PREFIX).await?;
        Ok(keys
            .iter()
            .filter_map(|k| match MetaKey::parse(k) {
                Some(MetaKey::XetXorbIndex { hash }) => hash.parse().ok(),
                _ => None,
            })
            .collect())
    }

    /// The keys of every file record stored here.
    pub async fn file_record_keys(&self) -> Result<Vec<String>, HfError> {
        let keys = self.list(FILES_PREFIX).await?;
        Ok(keys
            .into_iter()
            .filter(|k| matches!(MetaKey::parse(k), Some(MetaKey::XetFile { .. })))
            .collect())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, HfError> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.list_keys(prefix, after.as_deref(), 1000).await?;
            all.extend(page.keys.into_iter().map(|key| key.as_str().to_string()));
            match page.next_start_after {
                Some(next) => after = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// A stored xorb's serialized size; `None` unless it is stored.
    pub async fn xorb_size(&self, hash: &MerkleHash) -> Result<Option<u64>, HfError> {
        if !self.xet.has_xorb(hash).await? {
            return Ok(None);
        }
        Ok(Some(self.store.head(&xorb_key(hash)).await?.size))
    }

    /// A stored xorb's bytes, whole, streamed.
    pub async fn xorb_bytes(&self, hash: &MerkleHash) -> Result<GetResult, HfError> {
        Ok(self
            .store
            .get(&xorb_key(hash), GetOptions::default())
            .await?)
    }

    /// A file record's key and its stored bytes, as they are carried.
    pub async fn file_record(&self, hash: &MerkleHash) -> Result<Option<(String, Bytes)>, HfError> {
        let key = record_key(hash);
        let doc = self.docs.get(&key, Mutability::Immutable).await?;
        Ok(doc.map(|d| (key.as_str().to_string(), d.bytes)))
    }

    /// Writes a file record from another store, then its sha256 mapping, once the record
    /// is proven against the xorbs stored here (see the module docs); `false` if this
    /// store had it already. The xorbs must be stored first. With `materialize`, the
    /// file is also rebuilt into that blob store (which proves the sha256 as it writes),
    /// as an upload's file is where every protocol reads blobs; else it is only hashed.
    pub async fn adopt_file(
        &self,
        hash: MerkleHash,
        doc: &FileDoc,
        materialize: Option<&BlobStore>,
    ) -> Result<bool, HfError> {
        if self.xet.file(&hash).await?.is_some() {
            return Ok(false);
        }
        let digest = Digest::sha256_hex(&doc.sha256)
            .map_err(|e| refused(&hash, format!("sha256 {:?}: {e}", doc.sha256)))?;
        let indexes = self.check_terms(hash, doc).await?;
        let body = self.decoded(doc, indexes);
        let wrong = |actual: String| {
            refused(
                &hash,
                format!(
                    "its chunks hash to sha256 {actual}, not {} as its record says",
                    digest.hex()
                ),
            )
        };
        match materialize {
            Some(blobs) => match blobs.put(&digest, body, Some(doc.size)).await {
                Ok(_) => {}
                Err(StoreError::DigestMismatch { actual, .. }) => {
                    return Err(wrong(actual.hex().to_string()))
                }
                Err(StoreError::SizeMismatch { actual, .. }) => {
                    return Err(wrong(format!("of {actual} bytes")))
                }
                Err(e) => return Err(e.into()),
            },
            None => {
                let mut hasher = Hasher::new(Algorithm::Sha256);
                let mut body = body;
                while let Some(piece) = body.try_next().await.map_err(StoreError::Body)? {
                    hasher.update(&piece);
                }
                let actual = hasher.finish();
                if actual != digest {
                    return Err(wrong(actual.hex().to_string()));
                }
            }
        }
        let bytes = serde_json::to_vec(doc).expect("serializable");
        self.docs
            .put(
                &record_key(&hash),
                Bytes::from(bytes),
                PutMode::Overwrite,
                Mutability::Immutable,
            )
            .await?;
        // After the record, so the mapping never names a missing file.
        self.docs
            .put(
                &doc_key(MetaKey::XetSha256 { digest }),
                Bytes::from(hash.to_api_hex()),
                PutMode::Overwrite,
                Mutability::Immutable,
            )
            .await?;
        Ok(true)
    }

    /// The record's terms against the stored indexes: each xorb stored, each chunk range
    /// inside it, each term's size its chunks' and the whole the Merkle file hash `hash`.
    async fn check_terms(
        &self,
        hash: MerkleHash,
        doc: &FileDoc,
    ) -> Result<HashMap<MerkleHash, XorbIndex>, HfError> {
        let mut indexes: HashMap<MerkleHash, XorbIndex> = HashMap::new();
        let mut tree = MerkleBuilder::default();
        let mut size = 0u64;
        for (i, term) in doc.terms.iter().enumerate() {
            let xorb: MerkleHash = term
                .xorb
                .parse()
                .map_err(|e| refused(&hash, format!("term {i}: {e}")))?;
            if let Entry::Vacant(slot) = indexes.entry(xorb) {
                let index = self.xet.xorb_index(&xorb).await?.ok_or_else(|| {
                    refused(
                        &hash,
                        format!("term {i} names xorb {xorb}, not stored here"),
                    )
                })?;
                slot.insert(index);
            }
            let chunks = &indexes[&xorb].chunks;
            let (start, end) = (term.start as usize, term.end as usize);
            if start >= end || end > chunks.len() {
                return Err(refused(
                    &hash,
                    format!(
                        "term {i} names chunks {start}..{end} of xorb {xorb}, which has {}",
                        chunks.len()
                    ),
                ));
            }
            let mut term_size = 0u64;
            for c in &chunks[start..end] {
                tree.push(c.hash, u64::from(c.len));
                term_size += u64::from(c.len);
            }
            if term_size != u64::from(term.size) {
                return Err(refused(
                    &hash,
                    format!(
                        "term {i} says {} bytes, its chunks hold {term_size}",
                        term.size
                    ),
                ));
            }
            size += term_size;
        }
        if size != doc.size {
            return Err(refused(
                &hash,
                format!("its terms hold {size} bytes, its record says {}", doc.size),
            ));
        }
        let computed = tree.finish_file();
        if computed != hash {
            return Err(refused(
                &hash,
                format!("its chunks hash to the Xet file hash {computed}"),
            ));
        }
        Ok(indexes)
    }

    /// The file's bytes, decoded from the stored xorbs a few chunks at a time (each
    /// chunk checked against its hash as it is decoded).
    fn decoded(&self, doc: &FileDoc, indexes: HashMap<MerkleHash, XorbIndex>) -> ByteStream {
        let indexes = Arc::new(indexes);
        let mut windows = Vec::new();
        for term in &doc.terms {
            let mut start = term.start;
            while start < term.end {
                let end = term.end.min(start.saturating_add(CHUNKS_PER_READ));
                windows.push((term.xorb.clone(), start..end));
                start = end;
            }
        }
        let this = self.clone();
        futures::stream::iter(windows)
            .then(move |(xorb, chunks)| {
                let (this, indexes) = (this.clone(), indexes.clone());
                async move {
                    let index = xorb
                        .parse()
                        .ok()
                        .and_then(|h: MerkleHash| indexes.get(&h))
                        .ok_or_else(|| std::io::Error::other(format!("xorb {xorb} not loaded")))?;
                    let mut out = Vec::new();
                    this.decode(index, chunks, |piece| out.extend_from_slice(piece))
                        .await
                        .map_err(|e| std::io::Error::other(e.message))?;
                    Ok(Bytes::from(out))
                }
            })
            .boxed()
    }

    async fn decode(
        &self,
        index: &XorbIndex,
        chunks: Range<u32>,
        sink: impl FnMut(&[u8]),
    ) -> Result<(), HfError> {
        let hash = index.hash;
        let bad = |e: xet::XetError| damaged(format!("xorb {hash}: {e}"));
        let range = index.byte_range(chunks.clone()).map_err(bad)?;
        let got = self
            .store
            .get(
                &xorb_key(&hash),
                GetOptions {
                    range: Some(ByteRange::Bounded {
                        start: range.start,
                        end: range.end - 1,
                    }),
                },
            )
            .await?;
        let stored = crate::store::collect_limited(got.body, (range.end - range.start) as usize)
            .await
            .map_err(StoreError::Body)?;
        xet::decode_range(index, chunks, &stored, sink).map_err(bad)?;
        Ok(())
    }
}

fn xorb_key(hash: &MerkleHash) -> ObjectKey {
    xet_xorb_key(&hash.to_api_hex()).expect("hex keys are valid")
}

fn record_key(hash: &MerkleHash) -> ObjectKey {
    doc_key(MetaKey::XetFile {
        hash: hash.to_api_hex(),
    })
}
