//! Writing a bundle: the manifest first (it is known before any object is read: blob
//! keys are digests, documents are small and already read), then each object streamed
//! from the store into the tar, hashed on the way so a store that returns other bytes than
//! its key says fails the export instead of producing a bundle the receiver refuses.

use super::manifest::{
    entry_name, xorb_entry_name, Entry, Have, Kind, Manifest, XorbEntry, MANIFEST_NAME,
    SIGNATURE_NAME,
};
use super::select::Selection;
use super::volumes::{VolumeWriter, DEFAULT_NAME};
use crate::digest::{Algorithm, Digest, Hasher};
use crate::hf::xet_transfer::XetTransfer;
use crate::store::layout::blob_key;
use crate::store::GetOptions;
use crate::store::Stores;
use crate::xet::{MerkleHash, XorbVerifier};
use anyhow::{anyhow, Context};
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use futures::StreamExt;
use indicatif::ProgressBar;
use std::collections::HashSet;
use std::io::{self, Read};
use std::path::PathBuf;
use tokio::sync::mpsc;

pub struct ExportOptions {
    pub out: PathBuf,
    pub split: Option<u64>,
    pub sign_key: Option<SigningKey>,
    pub have: Option<Have>,
}

#[derive(Debug)]
pub struct Exported {
    pub volumes: Vec<PathBuf>,
    pub objects: usize,
    pub bytes: u64,
    /// Objects left out because the receiver's have.json lists them.
    pub held: usize,
    pub signed: bool,
}

/// Builds the manifest for a selection, minus what the receiver holds.
pub fn manifest_for(
    selection: &Selection,
    have: Option<&Have>,
    source: String,
) -> (Manifest, usize) {
    let mut objects: Vec<Entry> = selection
        .blobs
        .iter()
        .map(|(digest, size)| Entry {
            key: blob_key(digest).to_string(),
            kind: Kind::Blob,
            digest: digest.clone(),
            size: *size,
        })
        .collect();
    objects.extend(selection.docs.iter().map(|(key, bytes)| Entry {
        key: key.clone(),
        kind: if super::xet::is_file_record(key) {
            Kind::XetFile
        } else {
            Kind::Doc
        },
        digest: Digest::of_bytes(Algorithm::Sha256, bytes),
        size: bytes.len() as u64,
    }));
    let mut xorbs: Vec<XorbEntry> = selection
        .xorbs
        .iter()
        .map(|(hash, size)| XorbEntry {
            hash: hash.to_api_hex(),
            size: *size,
        })
        .collect();
    let before = objects.len() + xorbs.len();
    let mut description = selection.description.clone();
    if let Some(have) = have {
        objects.retain(|e| !have.holds(e));
        xorbs.retain(|x| !have.xorbs.contains(&x.hash));
        description.push_str(", minus what the receiver's have.json lists");
    }
    let held = before - objects.len() - xorbs.len() + selection.held_blobs;
    (Manifest::new(source, description, objects, xorbs), held)
}

enum Item {
    Bytes {
        name: String,
        data: Bytes,
    },
    Stream {
        name: String,
        check: Box<Check>,
        size: u64,
        chunks: mpsc::Receiver<io::Result<Bytes>>,
    },
    /// Everything was sent: finish the archive (without it, the writer discards the files).
    End,
}

pub async fn export(
    stores: &Stores,
    selection: Selection,
    options: ExportOptions,
    bar: ProgressBar,
) -> anyhow::Result<Exported> {
    let source = format!(
        "{} (airlock {})",
        stores.store.describe(),
        env!("CARGO_PKG_VERSION")
    );
    let (manifest, held) = manifest_for(&selection, options.have.as_ref(), source);
    let manifest_bytes = Bytes::from(manifest.to_bytes());
    let signature = options
        .sign_key
        .as_ref()
        .map(|k| super::sign::sign(k, &manifest_bytes));
    let out = &options.out;
    let base = if out.is_dir() || out.as_os_str().to_string_lossy().ends_with('/') {
        std::fs::create_dir_all(out).with_context(|| format!("{}", out.display()))?;
        out.join(DEFAULT_NAME)
    } else {
        out.clone()
    };
    bar.set_length(manifest.total_bytes());

    let (tx, rx) = mpsc::channel::<Item>(2);
    let writer_bar = bar.clone();
    let split = options.split;
    let writer = tokio::task::spawn_blocking(move || write_tar(base, split, rx, writer_bar));

    let produced = async {
        let send = |item| async {
            tx.send(item)
                .await
                .map_err(|_| anyhow!("the bundle writer stopped"))
        };
        send(Item::Bytes {
            name: MANIFEST_NAME.into(),
            data: manifest_bytes.clone(),
        })
        .await?;
        if let Some(sig) = &signature {
            send(Item::Bytes {
                name: SIGNATURE_NAME.into(),
                data: sig.clone().into(),
            })
            .await?;
        }
        let mut written = HashSet::new();
        for entry in &manifest.objects {
            // Identical content (e.g. two repositories' links to one blob) travels once.
            if !written.insert(entry.digest.clone()) {
                continue;
            }
            let name = entry_name(&entry.digest);
            match entry.kind {
                Kind::Doc | Kind::XetFile => {
                    let data = selection.docs[&entry.key].clone();
                    bar.inc(data.len() as u64);
                    send(Item::Bytes { name, data }).await?;
                }
                Kind::Blob => {
                    let got = stores
                        .blobs
                        .get(&entry.digest, GetOptions::default())
                        .await
                        .map_err(|e| {
                            anyhow!(
                                "blob {}: {e}; if it was deleted meanwhile, run the export again",
                                entry.digest
                            )
                        })?;
                    let (chunk_tx, chunks) = mpsc::channel(4);
                    send(Item::Stream {
                        name,
                        check: Box::new(Check::Digest(
                            Hasher::new(entry.digest.algorithm()),
                            entry.digest.clone(),
                        )),
                        size: entry.size,
                        chunks,
                    })
                    .await?;
                    forward(got.body, chunk_tx).await;
                }
            }
        }
        let xet = XetTransfer::new(stores.store.clone(), stores.docs.clone());
        for xorb in &manifest.xorbs {
            let hash = xorb.hash();
            let got = xet.xorb_bytes(&hash).await.map_err(|e| {
                anyhow!(
                    "xorb {hash}: {}; if it was deleted meanwhile, run the export again",
                    e.message
                )
            })?;
            let (chunk_tx, chunks) = mpsc::channel(4);
            send(Item::Stream {
                name: xorb_entry_name(&hash),
                check: Box::new(Check::Xorb(XorbVerifier::new(hash), hash)),
                size: xorb.size,
                chunks,
            })
            .await?;
            forward(got.body, chunk_tx).await;
        }
        send(Item::End).await
    }
    .await;
    drop(tx);
    let written = writer.await.map_err(|e| anyhow!("bundle writer: {e}"))?;
    // The writer's error says what went wrong with the files; prefer it.
    let volumes = written?;
    produced?;
    Ok(Exported {
        volumes,
        objects: manifest.objects.len(),
        bytes: manifest.total_bytes(),
        held,
        signed: signature.is_some(),
    })
}

fn write_tar(
    base: PathBuf,
    split: Option<u64>,
    mut rx: mpsc::Receiver<Item>,
    bar: ProgressBar,
) -> anyhow::Result<Vec<PathBuf>> {
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut builder = tar::Builder::new(VolumeWriter::new(base, split));
    let mut result: anyhow::Result<bool> = Ok(false);
    while let Some(item) = rx.blocking_recv() {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        let appended = match item {
            Item::Bytes { name, data } => {
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, &name, &data[..])
            }
            Item::Stream {
                name,
                check,
                size,
                chunks,
            } => {
                header.set_size(size);
                let reader = ChunkReader {
                    chunks,
                    buf: Bytes::new(),
                    check: Some(*check),
                    size,
                    seen: 0,
                    bar: bar.clone(),
                };
                builder.append_data(&mut header, &name, reader)
            }
            Item::End => {
                result = Ok(true);
                break;
            }
        };
        if let Err(e) = appended {
            result = Err(anyhow!("writing the bundle: {e}"));
            break;
        }
    }
    let paths = builder.get_ref().paths.clone();
    let discard = |e: anyhow::Error| {
        for p in &paths {
            let _ = std::fs::remove_file(p);
        }
        Err(e)
    };
    match result {
        Ok(true) => match builder.into_inner() {
            Ok(volumes) => Ok(volumes.finish()?),
            Err(e) => discard(anyhow!("writing the bundle: {e}")),
        },
        Ok(false) => discard(anyhow!("the export stopped before the bundle was complete")),
        Err(e) => discard(e),
    }
}

/// Streams a stored object's body to the tar writer.
async fn forward(mut body: crate::store::ByteStream, to: mpsc::Sender<io::Result<Bytes>>) {
    while let Some(chunk) = body.next().await {
        if to.send(chunk).await.is_err() {
            break;
        }
    }
}

/// What an object streamed into the bundle must prove, so a damaged store copy fails
/// the export instead of producing a bundle the receiver refuses.
enum Check {
    /// A blob: its digest.
    Digest(Hasher, Digest),
    /// A xorb: every chunk's hash and the Merkle root its name says.
    Xorb(XorbVerifier, MerkleHash),
}

impl Check {
    fn update(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Check::Digest(hasher, _) => hasher.update(data),
            Check::Xorb(verifier, _) => verifier.push(data).map_err(io::Error::other)?,
        }
        Ok(())
    }

    fn what(&self) -> String {
        match self {
            Check::Digest(_, digest) => format!("blob {digest}"),
            Check::Xorb(_, hash) => format!("xorb {hash}"),
        }
    }

    /// The failure, if the bytes were not what the name says.
    fn finish(self, seen: u64, size: u64) -> Option<String> {
        let what = self.what();
        let wrong = match self {
            Check::Digest(hasher, digest) => {
                let actual = hasher.finish();
                (seen != size || actual != digest).then(|| format!("hashing to {actual}"))
            }
            Check::Xorb(verifier, _) => match verifier.finish() {
                Err(e) => Some(format!("that fail verification ({e})")),
                Ok(_) if seen != size => Some(String::new()),
                Ok(_) => None,
            },
        };
        wrong.map(|how| format!(
            "the store returned {seen} bytes {how} for {what} ({size} bytes): the store copy is damaged; remove it and fetch it again"
        ))
    }
}

/// A stored object's bytes from the async side, checked for size and content as they pass.
struct ChunkReader {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    buf: Bytes,
    check: Option<Check>,
    size: u64,
    seen: u64,
    bar: ProgressBar,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.buf.is_empty() {
            match self.chunks.blocking_recv() {
                Some(Ok(chunk)) => self.buf = chunk,
                Some(Err(e)) => return Err(e),
                None => {
                    let Some(check) = self.check.take() else {
                        return Ok(0);
                    };
                    if let Some(e) = check.finish(self.seen, self.size) {
                        return Err(io::Error::other(e));
                    }
                    return Ok(0);
                }
            }
        }
        let n = out.len().min(self.buf.len());
        if self.seen + n as u64 > self.size {
            let what = self.check.as_ref().map(Check::what).unwrap_or_default();
            return Err(io::Error::other(format!(
                "{what} in the store is larger than its listed {} bytes",
                self.size
            )));
        }
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf = self.buf.slice(n..);
        if let Some(c) = &mut self.check {
            c.update(&out[..n])?;
        }
        self.seen += n as u64;
        self.bar.inc(n as u64);
        Ok(n)
    }
}
