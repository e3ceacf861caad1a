//! A repository file's bytes, wherever this store keeps them: whole under `blobs/`, or
//! (uploaded through Xet, `[hf] xet_materialize` off) only as Xet terms over xorbs,
//! rebuilt as they are read. Every reader of a file by its sha256 (plain downloads,
//! commits naming an uploaded object, small files read for metadata) asks here, so a
//! file uploaded through Xet is a file like any other.
//!
//! A sha256 is not a capability: this says where bytes are, not who may name them;
//! callers check the repository's own link or a readable copy first (`Repos::holds_lfs`).

use super::repo::Repos;
use super::xet_store::FileDoc;
use super::HfError;
use crate::digest::Digest;
use crate::store::{ByteRange, ByteStream, GetOptions, StoreError};
use bytes::Bytes;
use std::ops::Range;
use std::sync::Arc;

pub enum FileBytes {
    /// Stored whole under `blobs/`.
    Blob { digest: Digest, size: u64 },
    /// Kept as a Xet file only (its sha256 proven when its shard was uploaded).
    Xet(Arc<FileDoc>),
}

impl FileBytes {
    pub fn size(&self) -> u64 {
        match self {
            FileBytes::Blob { size, .. } => *size,
            FileBytes::Xet(doc) => doc.size,
        }
    }

    /// Bytes `[start, end)` of the file, a range within its size, streamed.
    pub async fn read(&self, repos: &Repos, range: Range<u64>) -> Result<ByteStream, HfError> {
        if range.is_empty() {
            return Ok(crate::store::bytes_stream(Bytes::new()));
        }
        match self {
            FileBytes::Blob { digest, .. } => {
                let range = Some(ByteRange::Bounded {
                    start: range.start,
                    end: range.end - 1,
                });
                Ok(repos.blobs().get(digest, GetOptions { range }).await?.body)
            }
            FileBytes::Xet(doc) => Ok(repos.xet().read_file(doc.clone(), range)),
        }
    }
}

/// Where the content with this sha256 is stored, if anywhere: a blob first, else a Xet
/// file — the one `xet_hash` (the commit's record) names, or the one the sha256 maps to.
pub async fn locate(
    repos: &Repos,
    sha256: &Digest,
    xet_hash: Option<&str>,
) -> Result<Option<FileBytes>, HfError> {
    match repos.blobs().head(sha256).await {
        Ok(meta) => {
            return Ok(Some(FileBytes::Blob {
                digest: sha256.clone(),
                size: meta.size,
            }))
        }
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let xet = repos.xet();
    let hash = match xet_hash.and_then(|h| h.parse().ok()) {
        Some(hash) => Some(hash),
        None => match xet.hash_of(sha256).await? {
            Some(hex) => hex.parse().ok(),
            None => None,
        },
    };
    let Some(hash) = hash else {
        return Ok(None);
    };
    // A file document is written only once its sha256 is proven; it must be this one.
    Ok(xet
        .file(&hash)
        .await?
        .filter(|doc| doc.sha256 == sha256.hex())
        .map(|doc| FileBytes::Xet(Arc::new(doc))))
}

/// The size of the stored content with this sha256, blob or Xet file.
pub async fn stored_size(repos: &Repos, sha256: &Digest) -> Result<Option<u64>, HfError> {
    Ok(locate(repos, sha256, None).await?.map(|f| f.size()))
}

/// A small file read whole, or `None`: absent, unreadable, or larger than `limit`.
pub async fn read_small(repos: &Repos, sha256: &str, limit: u64) -> Option<Bytes> {
    let digest = Digest::sha256_hex(sha256).ok()?;
    let file = locate(repos, &digest, None).await.ok()??;
    if file.size() > limit {
        return None;
    }
    if file.size() == 0 {
        return Some(Bytes::new());
    }
    let body = file.read(repos, 0..file.size()).await.ok()?;
    crate::store::collect_limited(body, limit as usize)
        .await
        .ok()
}
