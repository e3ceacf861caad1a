//! Reading files uploaded through Xet back out of their xorbs: whole, to prove a shard's
//! sha256 claims (`rebuild`, `hashes_to`), or any byte range, for plain downloads and
//! every other reader (`read_file`, through `hf/file_bytes.rs`). Only the terms and
//! chunks a range touches are read, a window of chunks per store read, decoded off the
//! async workers.

use super::{xorb_key, FileDoc, TermDoc, XetStore};
use crate::digest::Digest;
use crate::store::{ByteRange, ByteStream, DynStore, GetOptions, StoreError};
use crate::xet::{self, MerkleHash, XorbIndex};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Chunks decoded per store read when a file is rebuilt: at most 32 × 256 KiB of
/// compressed data held at once, whatever the file's size.
const CHUNKS_PER_READ: u32 = 32;

/// Chunks `[chunks.start, chunks.end)` of one xorb, of which the decoded bytes
/// `[skip, skip + take)` are wanted.
struct Window {
    index: Arc<XorbIndex>,
    chunks: std::ops::Range<u32>,
    skip: usize,
    take: usize,
    /// Hash each decoded chunk again (proving a shard's sha256), or only check sizes
    /// (downloads: see `xet::decode_range_unhashed`).
    hashed: bool,
}

impl XetStore {
    /// The file's bytes, decoded from its xorbs a few chunks at a time.
    pub(super) fn rebuild(
        &self,
        doc: &FileDoc,
        indexes: Arc<HashMap<MerkleHash, Arc<XorbIndex>>>,
    ) -> ByteStream {
        let mut windows = Vec::new();
        for term in &doc.terms {
            let index = term
                .xorb
                .parse::<MerkleHash>()
                .ok()
                .and_then(|hash| indexes.get(&hash).cloned());
            let mut start = term.start;
            while start < term.end {
                let end = term.end.min(start.saturating_add(CHUNKS_PER_READ));
                windows.push((index.clone(), term.xorb.clone(), start..end));
                start = end;
            }
        }
        let store = self.store.clone();
        futures::stream::iter(windows)
            .map(move |(index, xorb, chunks)| {
                let store = store.clone();
                async move {
                    let index = index
                        .ok_or_else(|| std::io::Error::other(format!("xorb {xorb} not loaded")))?;
                    let window = Window {
                        index,
                        chunks,
                        skip: 0,
                        take: usize::MAX,
                        hashed: true,
                    };
                    read_window(&store, window).await
                }
            })
            .buffered(2)
            .boxed()
    }

    /// Bytes `[range.start, range.end)` of a file (a range within its size), decoded
    /// from its xorbs: only the terms and chunks the range touches are read, a window
    /// of chunks per store read, each xorb's index loaded when its first term is.
    pub fn read_file(&self, doc: Arc<FileDoc>, range: std::ops::Range<u64>) -> ByteStream {
        let mut touched = Vec::new();
        let mut at = 0u64;
        for (i, term) in doc.terms.iter().enumerate() {
            if at >= range.end {
                break;
            }
            let size = u64::from(term.size);
            if at + size > range.start {
                touched.push((i, at));
            }
            at += size;
        }
        // Consecutive terms often come from one xorb: its index is parsed once.
        let last: Arc<Mutex<Option<Arc<XorbIndex>>>> = Arc::default();
        let this = self.clone();
        let store = self.store.clone();
        futures::stream::iter(touched)
            .then(move |(i, at)| {
                let (this, doc, last) = (this.clone(), doc.clone(), last.clone());
                let range = range.clone();
                async move {
                    let term = &doc.terms[i];
                    let index = this.term_index(term, &last).await?;
                    windows(term, index, at, &range).map(|w| futures::stream::iter(w).map(Ok))
                }
            })
            .try_flatten()
            .map_ok(move |window| {
                let store = store.clone();
                async move { read_window(&store, window).await }
            })
            .try_buffered(2)
            .boxed()
    }

    async fn term_index(
        &self,
        term: &TermDoc,
        last: &Mutex<Option<Arc<XorbIndex>>>,
    ) -> std::io::Result<Arc<XorbIndex>> {
        let hash: MerkleHash = term.xorb.parse().map_err(std::io::Error::other)?;
        let cached = last.lock().expect("not poisoned").clone();
        if let Some(index) = cached.filter(|i| i.hash == hash) {
            return Ok(index);
        }
        let index = self
            .xorb_index(&hash)
            .await
            .map_err(|e| std::io::Error::other(e.message))?
            .ok_or_else(|| std::io::Error::other(format!("xorb {hash} is not stored")))?;
        let index = Arc::new(index);
        *last.lock().expect("not poisoned") = Some(index.clone());
        Ok(index)
    }
}

/// The windows of a term (which starts at file offset `at`) that `range` touches: whole
/// chunks before the range are skipped, the first and last kept chunks trimmed.
fn windows(
    term: &TermDoc,
    index: Arc<XorbIndex>,
    at: u64,
    range: &std::ops::Range<u64>,
) -> std::io::Result<Vec<Window>> {
    let entries = index
        .slice(term.start..term.end)
        .map_err(std::io::Error::other)?;
    if entries.iter().map(|c| u64::from(c.len)).sum::<u64>() != u64::from(term.size) {
        return Err(std::io::Error::other(format!(
            "xorb {} chunks {}..{} do not hold {} bytes",
            term.xorb, term.start, term.end, term.size
        )));
    }
    let mut out: Vec<Window> = Vec::new();
    let mut pos = at;
    for (i, entry) in entries.iter().enumerate() {
        let (start, end) = (pos, pos + u64::from(entry.len));
        pos = end;
        if end <= range.start {
            continue;
        }
        if start >= range.end {
            break;
        }
        let chunk = term.start + i as u32;
        let wanted = (end.min(range.end) - start.max(range.start)) as usize;
        match out.last_mut() {
            Some(w) if w.chunks.end == chunk && w.chunks.len() < CHUNKS_PER_READ as usize => {
                w.chunks.end += 1;
                w.take += wanted;
            }
            _ => out.push(Window {
                index: index.clone(),
                chunks: chunk..chunk + 1,
                skip: range.start.saturating_sub(start) as usize,
                take: wanted,
                hashed: false,
            }),
        }
    }
    Ok(out)
}

/// Reads a window's stored bytes and decodes them off the runtime (LZ4, and BLAKE3 when
/// hashed, are CPU work), keeping the wanted part.
async fn read_window(store: &DynStore, window: Window) -> std::io::Result<Bytes> {
    let range = window
        .index
        .byte_range(window.chunks.clone())
        .map_err(std::io::Error::other)?;
    let got = store
        .get(
            &xorb_key(&window.index.hash),
            GetOptions {
                range: Some(ByteRange::Bounded {
                    start: range.start,
                    end: range.end - 1,
                }),
            },
        )
        .await
        .map_err(std::io::Error::other)?;
    let limit = (range.end - range.start) as usize;
    let stored = crate::store::collect_limited(got.body, limit).await?;
    tokio::task::spawn_blocking(move || {
        let Window {
            index,
            chunks,
            skip,
            take,
            hashed,
        } = window;
        let mut out = Vec::new();
        let sink = |piece: &[u8]| out.extend_from_slice(piece);
        match hashed {
            true => xet::decode_range(&index, chunks, &stored, sink),
            false => xet::decode_range_unhashed(&index, chunks, &stored, sink),
        }
        .map_err(std::io::Error::other)?;
        let end = skip.saturating_add(take).min(out.len());
        let mut out = Bytes::from(out);
        Ok(out.split_to(end).split_off(skip.min(end)))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Reads `body` to its end through SHA-256 on a blocking thread (the decoding before it
/// goes on meanwhile): a digest or size other than `digest` and `size` is the
/// mismatch the verifying blob store would report, nothing being stored.
pub(super) async fn hashes_to(
    mut body: ByteStream,
    digest: &Digest,
    size: u64,
) -> Result<(), StoreError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let hasher = tokio::task::spawn_blocking(move || {
        let mut hasher = crate::digest::Hasher::new(crate::digest::Algorithm::Sha256);
        let mut seen = 0u64;
        while let Some(piece) = rx.blocking_recv() {
            hasher.update(&piece);
            seen += piece.len() as u64;
        }
        (hasher.finish(), seen)
    });
    while let Some(piece) = body.try_next().await.map_err(StoreError::Body)? {
        if tx.send(piece).await.is_err() {
            break;
        }
    }
    drop(tx);
    let (actual, seen) = hasher
        .await
        .map_err(|e| StoreError::Unavailable(format!("sha256 of a Xet file: {e}")))?;
    if seen != size {
        return Err(StoreError::SizeMismatch {
            expected: size,
            actual: seen,
        });
    }
    if actual != *digest {
        return Err(StoreError::DigestMismatch {
            expected: digest.clone(),
            actual,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xet::ChunkEntry;

    proptest::proptest! {
        /// Any range of any term: the windows hold at most CHUNKS_PER_READ consecutive
        /// chunks each, start at the chunk holding the range's first byte, and what they
        /// keep (`skip`, `take`) is exactly the range, in order.
        #[test]
        fn windows_cover_exactly_the_range(
            lens in proptest::collection::vec(1u32..3000, 1..120),
            cut in (0usize..120, 0usize..120),
            span in (0.0f64..1.0, 0.0f64..1.0),
            at in 0u64..1_000_000,
        ) {
            let mut chunks = Vec::new();
            let mut end = 0u32;
            for (i, len) in lens.iter().enumerate() {
                let start = end;
                end += 8 + len / 2;
                chunks.push(ChunkEntry { hash: MerkleHash([i as u8; 32]), len: *len, start, end });
            }
            let index = Arc::new(XorbIndex { hash: MerkleHash([7; 32]), chunks });
            let (a, b) = (cut.0 % lens.len(), cut.1 % lens.len());
            let (first, last) = (a.min(b), a.max(b) + 1);
            let size: u64 = lens[first..last].iter().map(|l| u64::from(*l)).sum();
            let term = TermDoc { xorb: String::new(), start: first as u32, end: last as u32, size: size as u32 };
            let (s, e) = ((span.0 * size as f64) as u64, (span.1 * size as f64) as u64);
            let range = at + s.min(e)..at + s.max(e).max(s.min(e) + 1).min(size);
            let windows = windows(&term, index, at, &range).unwrap();
            // File offset of each chunk's first byte.
            let offset = |chunk: u32| at + lens[first..chunk as usize].iter().map(|l| u64::from(*l)).sum::<u64>();
            let mut next = range.start;
            let mut previous_end = None;
            for w in &windows {
                proptest::prop_assert!(!w.chunks.is_empty() && w.chunks.len() <= CHUNKS_PER_READ as usize);
                proptest::prop_assert!(previous_end.is_none_or(|p| p == w.chunks.start));
                previous_end = Some(w.chunks.end);
                let decoded = offset(w.chunks.start)..offset(w.chunks.end);
                proptest::prop_assert!(w.skip as u64 + (w.take as u64) <= decoded.end - decoded.start);
                proptest::prop_assert_eq!(decoded.start + w.skip as u64, next);
                next += w.take as u64;
            }
            proptest::prop_assert_eq!(next, range.end);
            let first_window = &windows[0];
            proptest::prop_assert!(first_window.skip < lens[first_window.chunks.start as usize] as usize);
        }
    }
}
