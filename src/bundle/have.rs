//! `airlock bundle have`: what this store holds, for the sender's `--have`.
//!
//! Written as it is listed, a page at a time: a store of millions of blobs and
//! documents costs one listing page and the few documents being hashed in memory, not
//! the whole inventory (the output is the JSON that `Have::load` reads).

use super::manifest::{DOC_PREFIXES, FORMAT, HAVE_VERSION};
use crate::digest::{Algorithm, Digest};
use crate::store::layout::{digest_of_blob_key, BLOBS_PREFIX};
use crate::store::{ObjectKey, ObjectPages, Stores};
use futures::{StreamExt, TryStreamExt};
use std::io::Write;

/// Keys per listing page (S3 returns at most 1,000).
const LIST_PAGE: usize = 1000;
/// Documents hashed at once (each an S3 round trip).
const READS_IN_FLIGHT: usize = 16;

/// What was written.
#[derive(Debug, Default)]
pub struct Counts {
    pub blobs: u64,
    pub xorbs: u64,
    pub docs: u64,
}

/// Writes the store's have document to `out`.
pub async fn write(stores: &Stores, out: &mut impl Write) -> anyhow::Result<Counts> {
    let mut counts = Counts::default();
    write!(
        out,
        "{{\n  \"format\": {},\n  \"version\": {HAVE_VERSION},\n  \"blobs\": [",
        serde_json::to_string(&format!("{FORMAT}-have"))?
    )?;
    let mut pages = ObjectPages::new(&stores.store, BLOBS_PREFIX, LIST_PAGE);
    while let Some(page) = pages.next().await? {
        for meta in &page {
            if let Some(digest) = digest_of_blob_key(meta.key.as_str()) {
                let comma = if counts.blobs == 0 { "" } else { "," };
                write!(out, "{comma}\n    {}", serde_json::to_string(&digest)?)?;
                counts.blobs += 1;
            }
        }
    }

    write!(out, "\n  ],\n  \"xorbs\": [")?;
    let xet = super::xet::transfer(stores);
    let held = xet
        .held_xorbs()
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    for (i, hash) in held.iter().enumerate() {
        let comma = if i == 0 { "" } else { "," };
        write!(out, "{comma}\n    \"{}\"", hash.to_api_hex())?;
    }
    counts.xorbs = held.len() as u64;

    // Documents are compared by content: the sender skips one only if it is identical.
    write!(out, "\n  ],\n  \"docs\": {{")?;
    let records = xet
        .file_record_keys()
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    write_doc_hashes(stores, records, out, &mut counts).await?;
    for prefix in DOC_PREFIXES {
        let mut pages = ObjectPages::new(&stores.store, prefix, LIST_PAGE);
        while let Some(page) = pages.next().await? {
            let keys = page
                .into_iter()
                .map(|m| m.key.as_str().to_string())
                .collect();
            write_doc_hashes(stores, keys, out, &mut counts).await?;
        }
    }
    writeln!(out, "\n  }}\n}}")?;
    out.flush()?;
    Ok(counts)
}

/// `"key": "sha256 hex"` for each of `keys` still stored, a few read at a time.
async fn write_doc_hashes(
    stores: &Stores,
    keys: Vec<String>,
    out: &mut impl Write,
    counts: &mut Counts,
) -> anyhow::Result<()> {
    let docs = stores.docs.clone();
    let mut hashed = futures::stream::iter(keys)
        .map(|key| {
            let docs = docs.clone();
            async move {
                let object = ObjectKey::new(key.clone())?;
                let doc = docs.get_fresh(&object).await?;
                // Deleted meanwhile: not held.
                Ok::<_, anyhow::Error>(doc.map(|d| {
                    let digest = Digest::of_bytes(Algorithm::Sha256, &d.bytes);
                    (key, digest.hex().to_string())
                }))
            }
        })
        .buffered(READS_IN_FLIGHT);
    while let Some(entry) = hashed.try_next().await? {
        let Some((key, hex)) = entry else { continue };
        let comma = if counts.docs == 0 { "" } else { "," };
        write!(
            out,
            "{comma}\n    {}: \"{hex}\"",
            serde_json::to_string(&key)?
        )?;
        counts.docs += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::manifest::Have;
    use crate::store::{DocStore, DynStore, FsStore, Mutability, PutMode};
    use std::sync::Arc;

    #[tokio::test]
    async fn written_as_listed_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store: DynStore = Arc::new(FsStore::open(dir.path()).await.unwrap());
        let stores = Stores::new(store.clone(), &crate::store::CacheSettings::default());
        let mut bodies = Vec::new();
        for i in 0..2500u32 {
            let body = bytes::Bytes::from(format!("blob {i}"));
            let digest = Digest::of_bytes(Algorithm::Sha256, &body);
            let stream = crate::store::bytes_stream(body);
            stores.blobs.put(&digest, stream, None).await.unwrap();
            bodies.push(digest);
        }
        let docs = DocStore::new(store, 1 << 20, std::time::Duration::ZERO);
        for name in ["a", "b"] {
            let key = ObjectKey::new(format!("pypi/default/projects/{name}.json")).unwrap();
            docs.put(
                &key,
                bytes::Bytes::from("{}"),
                PutMode::Create,
                Mutability::Mutable,
            )
            .await
            .unwrap();
        }
        let mut out = Vec::new();
        let counts = write(&stores, &mut out).await.unwrap();
        assert_eq!((counts.blobs, counts.docs), (2500, 2));
        let path = dir.path().join("have.json");
        std::fs::write(&path, &out).unwrap();
        let have = Have::load(&path).unwrap();
        assert_eq!(have.blob_count(), 2500);
        assert!(bodies.iter().all(|d| have.holds_blob(d)));
        let empty = Digest::of_bytes(Algorithm::Sha256, b"{}");
        assert_eq!(
            have.doc_content("pypi/default/projects/a.json"),
            empty.sha256_bytes()
        );
    }
}
