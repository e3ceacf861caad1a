//! Files uploaded through Xet travel as chunks: their file record (`xet/files/...`) and
//! the xorbs its terms name, never the file's blob, so a receiver that holds the xorbs of
//! an earlier revision receives only the new ones.
//!
//! On import, xorbs are stored first (each verified again by `XetStore::put_xorb`, as an
//! upload is), then the records (each proven against the stored xorbs and its sha256,
//! `XetTransfer::adopt_file`), then the HF documents that name them: an import stopped
//! anywhere leaves nothing visible that names what is missing.

use super::manifest::{Kind, Manifest};
use super::select::Selection;
use crate::digest::Digest;
use crate::hf::model::FileEntry;
use crate::hf::xet_store::FileDoc;
use crate::hf::xet_transfer::XetTransfer;
use crate::store::layout::MetaKey;
use crate::store::Stores;
use crate::xet::MerkleHash;
use anyhow::anyhow;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

pub fn is_file_record(key: &str) -> bool {
    matches!(MetaKey::parse(key), Some(MetaKey::XetFile { .. }))
}

fn hf_error(e: crate::hf::HfError) -> anyhow::Error {
    anyhow!("{}", e.message)
}

pub fn transfer(stores: &Stores) -> XetTransfer {
    XetTransfer::new(stores.store.clone(), stores.docs.clone())
}

/// Selects the record and xorbs of the Xet file `hash` if this store holds all of them
/// (and, when given, the record is of that sha256); its sha256 if selected.
pub async fn select_file(
    xet: &XetTransfer,
    sel: &mut Selection,
    hash: &MerkleHash,
    sha256: Option<&str>,
) -> anyhow::Result<Option<String>> {
    let Some((key, bytes)) = xet.file_record(hash).await.map_err(hf_error)? else {
        return Ok(None);
    };
    let doc: FileDoc =
        serde_json::from_slice(&bytes).map_err(|e| anyhow!("{key}: damaged in this store: {e}"))?;
    if sha256.is_some_and(|s| s != doc.sha256) {
        return Ok(None);
    }
    let mut xorbs = Vec::new();
    for term in &doc.terms {
        let xorb: MerkleHash = term
            .xorb
            .parse()
            .map_err(|e| anyhow!("{key}: damaged in this store: {e}"))?;
        if sel.xorbs.contains_key(&xorb) || xorbs.iter().any(|(h, _)| *h == xorb) {
            continue;
        }
        match xet.xorb_size(&xorb).await.map_err(hf_error)? {
            Some(size) => xorbs.push((xorb, size)),
            None => {
                sel.notes.push(format!(
                    "Xet file {hash}: xorb {xorb} is not in this store; the file travels whole"
                ));
                return Ok(None);
            }
        }
    }
    sel.xorbs.extend(xorbs);
    sel.docs.insert(key, bytes);
    Ok(Some(doc.sha256))
}

/// An HF file whose commit names a Xet hash this store holds travels as chunks: `true`
/// when it was selected so (its blob is then left out).
pub async fn select_hf_file(
    xet: &XetTransfer,
    sel: &mut Selection,
    file: &FileEntry,
) -> anyhow::Result<bool> {
    let Some(hash) = file.xet_hash.as_deref().and_then(|h| h.parse().ok()) else {
        return Ok(false);
    };
    Ok(select_file(xet, sel, &hash, Some(&file.sha256))
        .await?
        .is_some())
}

/// Every Xet file record in the store with its xorbs; the blobs of those files (kept
/// with `[hf] xet_materialize`) are dropped from the selection unless an OCI or Python
/// document names the same digest: those protocols read blobs only. Records are listed
/// before their xorbs are looked at (a record is written after its xorbs), as documents
/// are before blobs.
pub async fn select_everything(stores: &Stores, sel: &mut Selection) -> anyhow::Result<()> {
    let xet = transfer(stores);
    let mut carried = BTreeSet::new();
    for key in xet.file_record_keys().await.map_err(hf_error)? {
        let Some(MetaKey::XetFile { hash }) = MetaKey::parse(&key) else {
            continue;
        };
        let Ok(hash) = hash.parse::<MerkleHash>() else {
            continue;
        };
        if let Some(sha256) = select_file(&xet, sel, &hash, None).await? {
            carried.insert(sha256);
        }
    }
    let named_elsewhere = hex_digests_outside_the_hub(&sel.docs);
    sel.blobs.retain(|digest, _| {
        !carried.contains(digest.hex()) || named_elsewhere.contains(digest.hex())
    });
    Ok(())
}

/// Every run of exactly 64 hex digits in the documents that are not the Hub's or Xet's
/// (OCI manifests and indexes, Python project pages): the sha256 digests they name. One
/// pass over the bytes.
fn hex_digests_outside_the_hub(docs: &BTreeMap<String, Bytes>) -> HashSet<String> {
    let mut out = HashSet::new();
    for (key, bytes) in docs {
        if key.starts_with("hf/") || key.starts_with("xet/") {
            continue;
        }
        let mut run = 0usize;
        for (i, b) in bytes.iter().enumerate() {
            if b.is_ascii_hexdigit() {
                run += 1;
                continue;
            }
            if run == 64 {
                out.insert(String::from_utf8_lossy(&bytes[i - 64..i]).to_ascii_lowercase());
            }
            run = 0;
        }
        if run == 64 {
            let end = bytes.len();
            out.insert(String::from_utf8_lossy(&bytes[end - 64..end]).to_ascii_lowercase());
        }
    }
    out
}

/// Before anything is stored: every file record the bundle carries parses, and every
/// xorb it names is in the bundle or already in this store. The records this store
/// lacks, to adopt once the xorbs are stored.
pub async fn check_records(
    xet: &XetTransfer,
    manifest: &Manifest,
    docs: &HashMap<Digest, Bytes>,
    xorbs_carried: &HashSet<MerkleHash>,
) -> anyhow::Result<Vec<(MerkleHash, FileDoc)>> {
    let altered = |key: &str, why: String| {
        anyhow!("{key}: {why}: the bundle is damaged or was altered; nothing was imported. Copy it again from the sender and re-run the import")
    };
    let mut records = Vec::new();
    for e in manifest.objects.iter().filter(|e| e.kind == Kind::XetFile) {
        let Some(MetaKey::XetFile { hash }) = MetaKey::parse(&e.key) else {
            return Err(altered(&e.key, "not a Xet file record".into()));
        };
        let hash: MerkleHash = hash
            .parse()
            .map_err(|err| altered(&e.key, format!("{err}")))?;
        let doc: FileDoc = serde_json::from_slice(&docs[&e.digest])
            .map_err(|err| altered(&e.key, format!("not a Xet file record ({err})")))?;
        if xet.xet().file(&hash).await.map_err(hf_error)?.is_some() {
            continue;
        }
        for term in &doc.terms {
            let xorb: MerkleHash = term
                .xorb
                .parse()
                .map_err(|err| altered(&e.key, format!("{err}")))?;
            if !xorbs_carried.contains(&xorb)
                && !xet.xet().has_xorb(&xorb).await.map_err(hf_error)?
            {
                return Err(altered(
                    &e.key,
                    format!(
                        "names xorb {xorb}, which neither the bundle carries nor this store holds"
                    ),
                ));
            }
        }
        records.push((hash, doc));
    }
    Ok(records)
}

/// After the xorbs are stored: each record proven and written (`XetTransfer::adopt_file`);
/// how many were new. With `materialize`, each file is also rebuilt into `blobs/`.
pub async fn adopt_records(
    stores: &Stores,
    xet: &XetTransfer,
    records: Vec<(MerkleHash, FileDoc)>,
    materialize: bool,
) -> anyhow::Result<usize> {
    let mut new = 0;
    let blobs = materialize.then_some(&stores.blobs);
    for (hash, doc) in records {
        let adopted = xet.adopt_file(hash, &doc, blobs).await.map_err(|e| {
            anyhow!(
                "{}; no file record or document was published, the xorbs stored stay (nothing refers to them): the bundle is damaged or was altered, copy it again and re-run the import",
                e.message
            )
        })?;
        new += usize::from(adopted);
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_named_by_oci_and_python_documents_only() {
        let a = "ab".repeat(32);
        let b = "CD".repeat(32);
        let hub = "ef".repeat(32);
        let docs: BTreeMap<String, Bytes> = [
            (
                "oci/repos/x/_manifests/m".to_string(),
                Bytes::from(format!(r#"{{"digest":"sha256:{a}"}}"#)),
            ),
            ("pypi/p/index.json".into(), Bytes::from(b.clone())),
            // 65 and 63 digits are no sha256.
            ("pypi/q".into(), Bytes::from(format!("{a}0 {}", &a[1..]))),
            ("hf/models/o--m/commits/c".into(), Bytes::from(hub.clone())),
        ]
        .into_iter()
        .collect();
        let found = hex_digests_outside_the_hub(&docs);
        let want: HashSet<String> = [a, b.to_ascii_lowercase()].into_iter().collect();
        assert_eq!(found, want);
    }
}
