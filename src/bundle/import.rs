//! Reading a bundle into the store: verify everything, then publish (see `mod.rs`).

use super::manifest::{
    digest_of_entry_name, xorb_of_entry_name, Kind, Manifest, MANIFEST_NAME, MAX_MANIFEST_BYTES,
    SIGNATURE_NAME,
};
use super::merge::{classify, localize, merge};
use super::sign::Checked;
use super::volumes::{resolve, VolumeReader};
use crate::digest::{Digest, Hasher};
use crate::store::Stores;
use crate::store::{ByteStream, ObjectKey};
use crate::xet::{MerkleHash, XorbVerifier};
use anyhow::{anyhow, bail};
use bytes::Bytes;
use ed25519_dalek::VerifyingKey;
use futures::StreamExt;
use indicatif::ProgressBar;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::PathBuf;
use tokio::sync::mpsc;

const CHUNK: usize = 256 * 1024;

#[derive(Debug, Default)]
pub struct Imported {
    pub blobs_new: usize,
    pub blobs_present: usize,
    pub bytes_new: u64,
    pub docs_created: usize,
    pub docs_merged: usize,
    pub docs_unchanged: usize,
    pub xorbs_new: usize,
    pub xorb_bytes_new: u64,
    pub xorbs_present: usize,
    pub xet_files_new: usize,
    pub signature: Option<Checked>,
}

/// Content pass two stores, as the tar names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Target {
    Blob(Digest),
    Xorb(MerkleHash),
}

impl Target {
    fn of_entry_name(name: &str) -> Option<Target> {
        match xorb_of_entry_name(name) {
            Some(hash) => Some(Target::Xorb(hash)),
            None => digest_of_entry_name(name).map(Target::Blob),
        }
    }
}

/// What pass one must check for one digest.
#[derive(Clone, Copy, Debug)]
struct Need {
    size: u64,
    /// A document's bytes are kept for publishing.
    doc: bool,
}

fn hf_error(e: crate::hf::HfError) -> anyhow::Error {
    anyhow!("{}", e.message)
}

fn unreadable(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("cannot read the bundle: {e}; nothing was imported. If a volume is missing or was cut short, copy it again and re-run the import")
}

fn altered(what: String) -> anyhow::Error {
    anyhow!("{what}: the bundle is damaged or was altered; nothing was imported. Copy it again from the sender and re-run the import")
}

pub struct ImportOptions {
    /// Files that arrive as Xet chunks are also rebuilt into `blobs/` (what an upload
    /// through Xet does), so plain downloads read a blob; else they stay chunks only.
    pub materialize_xet: bool,
}

pub async fn import(
    stores: &Stores,
    paths: &[PathBuf],
    keys: &[VerifyingKey],
    options: ImportOptions,
    bar: ProgressBar,
) -> anyhow::Result<Imported> {
    let files = resolve(paths)?;
    let head_files = files.clone();
    let (manifest_bytes, signature) = tokio::task::spawn_blocking(move || read_head(head_files))
        .await
        .map_err(|e| anyhow!("{e}"))??;
    let mut outcome = Imported {
        signature: Some(super::sign::check(
            keys,
            &manifest_bytes,
            signature.as_deref(),
        )?),
        ..Default::default()
    };
    let manifest = Manifest::parse(&manifest_bytes)?;

    // Blobs the store already has are neither verified nor stored again (resume).
    let present: HashSet<Digest> =
        futures::stream::iter(manifest.objects.iter().filter(|e| e.kind == Kind::Blob))
            .map(|e| async move {
                stores
                    .blobs
                    .exists(&e.digest)
                    .await
                    .map(|p| p.then(|| e.digest.clone()))
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .filter_map(|r| r.transpose())
            .collect::<Result<_, _>>()?;
    let mut needs: HashMap<Digest, Need> = HashMap::new();
    for e in &manifest.objects {
        if e.kind == Kind::Blob && present.contains(&e.digest) {
            continue;
        }
        let need = needs.entry(e.digest.clone()).or_insert(Need {
            size: e.size,
            doc: false,
        });
        if need.size != e.size {
            return Err(altered(format!(
                "manifest.json lists {} with two sizes",
                e.digest
            )));
        }
        need.doc |= e.kind != Kind::Blob;
    }
    let listed: HashSet<Digest> = manifest.objects.iter().map(|e| e.digest.clone()).collect();
    // Xorbs the store holds are skipped like blobs; the rest are verified in pass one.
    let xet = super::xet::transfer(stores);
    let mut xorb_needs: HashMap<MerkleHash, u64> = HashMap::new();
    for x in &manifest.xorbs {
        let hash = x.hash();
        if xet.xet().has_xorb(&hash).await.map_err(hf_error)? {
            outcome.xorbs_present += 1;
        } else {
            xorb_needs.insert(hash, x.size);
        }
    }
    let xorbs_listed: HashSet<MerkleHash> = manifest.xorbs.iter().map(|x| x.hash()).collect();

    // Pass one: hash everything that will be used; nothing is written.
    bar.set_message("verifying");
    bar.set_length(needs.values().map(|n| n.size).sum::<u64>() + xorb_needs.values().sum::<u64>());
    let pass_files = files.clone();
    let pass_bar = bar.clone();
    let pass_needs = needs.clone();
    let pass_xorbs = Xorbs {
        needs: xorb_needs.clone(),
        listed: xorbs_listed.clone(),
    };
    let docs = tokio::task::spawn_blocking(move || {
        verify(pass_files, &pass_needs, &listed, &pass_xorbs, &pass_bar)
    })
    .await
    .map_err(|e| anyhow!("{e}"))??;
    let records = super::xet::check_records(&xet, &manifest, &docs, &xorbs_listed).await?;

    // Pass two: blobs and xorbs, each verified again by the store as it is written.
    let mut to_store: HashSet<Target> = manifest
        .objects
        .iter()
        .filter(|e| e.kind == Kind::Blob && !present.contains(&e.digest))
        .map(|e| Target::Blob(e.digest.clone()))
        .collect();
    outcome.blobs_present = manifest
        .objects
        .iter()
        .filter(|e| e.kind == Kind::Blob)
        .count()
        - to_store.len();
    to_store.extend(xorb_needs.keys().map(|h| Target::Xorb(*h)));
    bar.set_message("storing");
    bar.set_position(0);
    bar.set_length(
        to_store
            .iter()
            .map(|t| match t {
                Target::Blob(d) => needs[d].size,
                Target::Xorb(h) => xorb_needs[h],
            })
            .sum(),
    );
    let (tx, mut rx) = mpsc::channel::<(Target, u64, mpsc::Receiver<std::io::Result<Bytes>>)>(1);
    let feed_bar = bar.clone();
    let feeder = tokio::task::spawn_blocking(move || feed(files, to_store, tx, feed_bar));
    let mut failed = None;
    while let Some((target, size, chunks)) = rx.recv().await {
        let body: ByteStream = Box::pin(futures::stream::unfold(chunks, |mut rx| async move {
            rx.recv().await.map(|c| (c, rx))
        }));
        let stored = match &target {
            Target::Blob(digest) => stores
                .blobs
                .put(digest, body, Some(size))
                .await
                .map(|_| {
                    outcome.blobs_new += 1;
                    outcome.bytes_new += size;
                })
                .map_err(|e| format!("storing blob {digest}: {e}")),
            Target::Xorb(hash) => xet
                .xet()
                .put_xorb(*hash, body)
                .await
                .map(|_| {
                    outcome.xorbs_new += 1;
                    outcome.xorb_bytes_new += size;
                })
                .map_err(|e| format!("storing xorb {hash}: {}", e.message)),
        };
        match stored {
            Ok(()) => {}
            Err(e) => {
                failed = Some(anyhow!("{e}; the content stored so far stays (invisible until metadata refers to it): fix the problem and re-run the import, it continues where it stopped"));
                break;
            }
        }
    }
    drop(rx);
    let fed = feeder.await.map_err(|e| anyhow!("{e}"))?;
    if let Some(e) = failed {
        return Err(e);
    }
    fed?;

    // What the store already had is claimed before anything names it (store/claims.rs):
    // a collection running now spares it, one that removed it since the start is caught.
    let had: Vec<Digest> = present.iter().cloned().collect();
    let (blob_claim, gone) = stores.blobs.claim(&had).await?;
    let had_xorbs: Vec<MerkleHash> = xorbs_listed
        .iter()
        .filter(|h| !xorb_needs.contains_key(h))
        .copied()
        .collect();
    let (xorb_claim, gone_xorbs) = xet.xet().claim_xorbs(&had_xorbs).await.map_err(hf_error)?;
    let published = match (gone.first(), gone_xorbs.first()) {
        (Some(d), _) => Err(anyhow!("blob {d} was stored when the import began and garbage collection has removed it since; nothing was published: run the import again")),
        (None, Some(h)) => Err(anyhow!("xorb {h} was stored when the import began and garbage collection has removed it since; nothing was published: run the import again")),
        (None, None) => publish(stores, &xet, records, &manifest, &docs, &options, &bar, &mut outcome).await,
    };
    blob_claim.release().await;
    xorb_claim.release().await;
    published?;
    Ok(outcome)
}

/// Writes the Xet file records and merges the documents into what the store has.
#[allow(clippy::too_many_arguments)]
async fn publish(
    stores: &Stores,
    xet: &crate::hf::xet_transfer::XetTransfer,
    records: Vec<(MerkleHash, crate::hf::xet_store::FileDoc)>,
    manifest: &Manifest,
    docs: &HashMap<Digest, Bytes>,
    options: &ImportOptions,
    bar: &ProgressBar,
    outcome: &mut Imported,
) -> anyhow::Result<()> {
    // Then the Xet file records, each proven against the xorbs now stored.
    bar.set_message("verifying Xet files");
    outcome.xet_files_new =
        super::xet::adopt_records(stores, xet, records, options.materialize_xet).await?;

    // Then the documents, merged into what the store has.
    bar.set_message("publishing metadata");
    let mut doc_entries: Vec<_> = manifest
        .objects
        .iter()
        .filter(|e| e.kind == Kind::Doc)
        .collect();
    doc_entries
        .sort_by(|a, b| (classify(&a.key).rank(), &a.key).cmp(&(classify(&b.key).rank(), &b.key)));
    let carried: HashSet<&str> = manifest
        .objects
        .iter()
        .filter(|e| e.kind == Kind::Blob)
        .map(|e| e.digest.hex())
        .collect();
    for e in doc_entries {
        let key = ObjectKey::new(e.key.clone())?;
        let incoming = &localize(&e.key, &docs[&e.digest], &|sha| carried.contains(sha))?;
        let mut warnings = Vec::new();
        let (mut created, mut wrote) = (false, false);
        let written = stores
            .docs
            .update(&key, |current| {
                let merged = merge(&e.key, current.map(|d| &d.bytes[..]), incoming)?;
                warnings = merged.warnings;
                created = current.is_none();
                wrote = merged.bytes.is_some();
                Ok::<_, anyhow::Error>(merged.bytes.map(Bytes::from))
            })
            .await;
        let unfinished = |e: String| {
            anyhow!("publishing {key}: {e}; every blob is in: fix the problem and re-run the import to finish")
        };
        written
            .map_err(|err| unfinished(err.to_string()))?
            .map_err(|err| unfinished(format!("{err:#}")))?;
        for w in warnings {
            crate::progress::report(bar, format!("warning: {w}"));
        }
        match (wrote, created) {
            (true, true) => outcome.docs_created += 1,
            (true, false) => outcome.docs_merged += 1,
            (false, _) => outcome.docs_unchanged += 1,
        }
    }
    Ok(())
}

/// `manifest.json` and, when present, `manifest.json.sig`: the first two entries.
fn read_head(files: Vec<PathBuf>) -> anyhow::Result<(Vec<u8>, Option<Vec<u8>>)> {
    let mut archive = tar::Archive::new(VolumeReader::new(files));
    let mut entries = archive.entries().map_err(unreadable)?;
    let mut read = |limit: u64| -> anyhow::Result<Option<(String, Vec<u8>)>> {
        let Some(entry) = entries.next() else {
            return Ok(None);
        };
        let mut entry = entry.map_err(unreadable)?;
        let name = entry
            .path()
            .map_err(unreadable)?
            .to_string_lossy()
            .to_string();
        if entry.size() > limit {
            return Ok(Some((name, Vec::new())));
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).map_err(unreadable)?;
        Ok(Some((name, bytes)))
    };
    let Some((name, manifest)) = read(MAX_MANIFEST_BYTES)? else {
        bail!(
            "the bundle is empty; give the file `airlock bundle export` wrote (every volume of it)"
        );
    };
    if name != MANIFEST_NAME {
        bail!("not an Airlock bundle (it starts with {name:?}, not {MANIFEST_NAME}); give the file `airlock bundle export` wrote");
    }
    let signature = match read(4096)? {
        Some((name, sig)) if name == SIGNATURE_NAME => Some(sig),
        _ => None,
    };
    Ok((manifest, signature))
}

/// The xorbs of a bundle: those the store lacks (to verify, with their sizes) and all
/// the manifest lists.
struct Xorbs {
    needs: HashMap<MerkleHash, u64>,
    listed: HashSet<MerkleHash>,
}

/// Pass one for a xorb entry: its size, and every chunk and the Merkle root its name says.
fn verify_xorb(
    entry: &mut impl Read,
    hash: MerkleHash,
    size: u64,
    buf: &mut [u8],
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    let mut verifier = XorbVerifier::new(hash);
    loop {
        let n = entry.read(buf).map_err(unreadable)?;
        if n == 0 {
            break;
        }
        verifier
            .push(&buf[..n])
            .map_err(|e| altered(format!("xorb {hash} is corrupt ({e})")))?;
        bar.inc(n as u64);
    }
    if verifier.bytes_seen() != size {
        return Err(unreadable(format!(
            "xorb {hash} ends after {} of its {size} bytes",
            verifier.bytes_seen()
        )));
    }
    verifier
        .finish()
        .map_err(|e| altered(format!("xorb {hash} is corrupt ({e})")))?;
    Ok(())
}

/// Pass one: every needed object is present once, of the listed size and digest; returns
/// the documents' bytes.
fn verify(
    files: Vec<PathBuf>,
    needs: &HashMap<Digest, Need>,
    listed: &HashSet<Digest>,
    xorbs: &Xorbs,
    bar: &ProgressBar,
) -> anyhow::Result<HashMap<Digest, Bytes>> {
    let mut archive = tar::Archive::new(VolumeReader::new(files));
    let mut verified: HashSet<Digest> = HashSet::new();
    let mut verified_xorbs: HashSet<MerkleHash> = HashSet::new();
    let mut docs = HashMap::new();
    let mut buf = vec![0u8; CHUNK];
    for (position, entry) in archive.entries().map_err(unreadable)?.enumerate() {
        let mut entry = entry.map_err(unreadable)?;
        let name = entry
            .path()
            .map_err(unreadable)?
            .to_string_lossy()
            .to_string();
        if position < 2 && (name == MANIFEST_NAME || name == SIGNATURE_NAME) {
            continue;
        }
        if let Some(hash) = xorb_of_entry_name(&name) {
            if !xorbs.listed.contains(&hash) {
                return Err(altered(format!(
                    "entry {name:?} is not listed in manifest.json"
                )));
            }
            let Some(&size) = xorbs.needs.get(&hash) else {
                continue; // already in the store
            };
            if entry.size() != size {
                return Err(altered(format!(
                    "xorb {hash} is {} bytes, the manifest says {size}",
                    entry.size()
                )));
            }
            if verified_xorbs.insert(hash) {
                verify_xorb(&mut entry, hash, size, &mut buf, bar)?;
            }
            continue;
        }
        let digest = digest_of_entry_name(&name)
            .filter(|d| listed.contains(d))
            .ok_or_else(|| altered(format!("entry {name:?} is not listed in manifest.json")))?;
        let Some(need) = needs.get(&digest) else {
            continue;
        }; // already in the store
        if verified.contains(&digest) {
            continue;
        }
        if entry.size() != need.size {
            return Err(altered(format!(
                "object {digest} is {} bytes, the manifest says {}",
                entry.size(),
                need.size
            )));
        }
        let mut hasher = Hasher::new(digest.algorithm());
        let mut kept = Vec::new();
        let mut size = 0u64;
        loop {
            let n = entry.read(&mut buf).map_err(unreadable)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            if need.doc {
                kept.extend_from_slice(&buf[..n]);
            }
            size += n as u64;
            bar.inc(n as u64);
        }
        if size != need.size {
            return Err(unreadable(format!(
                "object {digest} ends after {size} of its {} bytes",
                need.size
            )));
        }
        let actual = hasher.finish();
        if actual != digest {
            return Err(altered(format!(
                "object {digest} is corrupt (its content hashes to {actual})"
            )));
        }
        if need.doc {
            docs.insert(digest.clone(), Bytes::from(kept));
        }
        verified.insert(digest);
    }
    let mut missing: Vec<String> = needs
        .keys()
        .filter(|d| !verified.contains(*d))
        .map(|d| d.to_string())
        .collect();
    missing.extend(
        xorbs
            .needs
            .keys()
            .filter(|h| !verified_xorbs.contains(*h))
            .map(|h| format!("xorb {h}")),
    );
    if let Some(first) = missing.first() {
        bail!(
            "the bundle is incomplete: {} object(s) listed in its manifest are not in it (first: {first}); nothing was imported. Give every volume (NAME.000, NAME.001, ...), or copy a truncated one again, and re-run",
            missing.len()
        );
    }
    Ok(docs)
}

/// Pass two's reader: streams each blob and xorb still to be stored to the async side.
fn feed(
    files: Vec<PathBuf>,
    mut to_store: HashSet<Target>,
    tx: mpsc::Sender<(Target, u64, mpsc::Receiver<std::io::Result<Bytes>>)>,
    bar: ProgressBar,
) -> anyhow::Result<()> {
    let mut archive = tar::Archive::new(VolumeReader::new(files));
    let mut buf = vec![0u8; CHUNK];
    for entry in archive.entries().map_err(unreadable)? {
        if to_store.is_empty() {
            return Ok(());
        }
        let mut entry = entry.map_err(unreadable)?;
        let name = entry
            .path()
            .map_err(unreadable)?
            .to_string_lossy()
            .to_string();
        let Some(target) = Target::of_entry_name(&name).filter(|t| to_store.remove(t)) else {
            continue;
        };
        let (chunk_tx, chunks) = mpsc::channel(4);
        if tx.blocking_send((target, entry.size(), chunks)).is_err() {
            return Ok(()); // the store side stopped and reports why
        }
        loop {
            let chunk = match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    bar.inc(n as u64);
                    Ok(Bytes::copy_from_slice(&buf[..n]))
                }
                Err(e) => Err(e),
            };
            let failed = chunk.is_err();
            // A closed channel: the store already had it and did not read the body.
            if chunk_tx.blocking_send(chunk).is_err() || failed {
                break;
            }
        }
    }
    if !to_store.is_empty() {
        bail!("the bundle changed while it was being imported ({} object(s) gone); copy it again and re-run the import", to_store.len());
    }
    Ok(())
}
