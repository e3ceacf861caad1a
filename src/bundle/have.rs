//! `airlock bundle have`: what this store holds, for the sender's `--have`.

use super::manifest::{Have, DOC_PREFIXES, FORMAT, HAVE_VERSION};
use crate::digest::{Algorithm, Digest};
use crate::store::layout::{digest_of_blob_key, BLOBS_PREFIX};
use crate::store::Stores;

pub async fn have(stores: &Stores) -> anyhow::Result<Have> {
    let mut have = Have {
        format: format!("{FORMAT}-have"),
        version: HAVE_VERSION,
        ..Default::default()
    };
    for meta in super::list_all(&stores.store, BLOBS_PREFIX).await? {
        if let Some(digest) = digest_of_blob_key(meta.key.as_str()) {
            have.blobs.insert(digest);
        }
    }
    let xet = super::xet::transfer(stores);
    let held = xet
        .held_xorbs()
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    have.xorbs.extend(held.iter().map(|h| h.to_api_hex()));
    // Documents are compared by content: the sender skips one only if it is identical.
    let mut keys = xet
        .file_record_keys()
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    for prefix in DOC_PREFIXES {
        for meta in super::list_all(&stores.store, prefix).await? {
            keys.push(meta.key.as_str().to_string());
        }
    }
    for (key, bytes) in super::select::read_docs(stores, keys).await? {
        let digest = Digest::of_bytes(Algorithm::Sha256, &bytes);
        have.docs.insert(key, digest.hex().to_string());
    }
    Ok(have)
}
