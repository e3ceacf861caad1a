//! Content-defined chunking exactly as xet-core cuts files (xet-data
//! `deduplication/chunking.rs`), so Airlock can chunk what arrives through other paths
//! (an LFS upload, a mirror) into the same chunks a Xet client would have made, and
//! deduplicate against them.
//!
//! A gear hash (`hash = (hash << 1) + GEAR[byte]`, 64-byte effective window) runs over
//! the data; a chunk ends after the byte where `hash & MASK == 0`, the mask being the
//! target size's low bits shifted to the top (one cut per 64 KiB on average), but never
//! before 8 KiB nor after 128 KiB. The first `8 KiB - 65` bytes of a chunk are not even
//! hashed (the window is 64 bytes, so they cannot affect a cut at 8 KiB or later) and
//! the hash restarts at 0 after each cut; both shape the boundaries, so both are copied.
//! [`Chunker`] is streaming and holds at most one chunk.

use super::gear::GEAR;
use super::hash::{chunk_hash, MerkleHash};

pub const TARGET_CHUNK_BYTES: usize = 64 * 1024;
pub const MIN_CHUNK_BYTES: usize = TARGET_CHUNK_BYTES / 8;
pub const MAX_CHUNK_BYTES: usize = TARGET_CHUNK_BYTES * 2;
/// `(TARGET - 1) << leading_zeros(TARGET - 1)`: the 16 top bits.
const MASK: u64 =
    ((TARGET_CHUNK_BYTES - 1) as u64) << ((TARGET_CHUNK_BYTES - 1) as u64).leading_zeros();
const WINDOW: usize = 64;

/// A streaming chunker; see the module docs.
#[derive(Default)]
pub struct Chunker {
    hash: u64,
    /// The current chunk's bytes so far (less than [`MAX_CHUNK_BYTES`]).
    pending: Vec<u8>,
}

impl Chunker {
    /// Feeds the next bytes; `emit` receives each chunk completed by them, in order.
    pub fn push(&mut self, mut data: &[u8], mut emit: impl FnMut(&[u8])) {
        while !data.is_empty() {
            match self.next_boundary(data) {
                Some(end) => {
                    if self.pending.is_empty() {
                        emit(&data[..end]);
                    } else {
                        self.pending.extend_from_slice(&data[..end]);
                        emit(&self.pending);
                        self.pending.clear();
                    }
                    data = &data[end..];
                }
                None => {
                    self.pending.extend_from_slice(data);
                    return;
                }
            }
        }
    }

    /// Ends the input: the bytes since the last cut are the last chunk.
    pub fn finish(mut self, mut emit: impl FnMut(&[u8])) {
        if !self.pending.is_empty() {
            emit(&self.pending);
        }
        self.pending.clear();
    }

    /// Where in `data` the current chunk ends, if it does (xet-core `next_boundary`).
    fn next_boundary(&mut self, data: &[u8]) -> Option<usize> {
        let before = self.pending.len();
        let mut at = 0;
        if before + WINDOW < MIN_CHUNK_BYTES {
            at = (MIN_CHUNK_BYTES - before - WINDOW - 1).min(data.len());
        }
        let read_end = data.len().min(at + MAX_CHUNK_BYTES - before);
        let mut cut = false;
        while at < read_end {
            self.hash = (self.hash << 1).wrapping_add(GEAR[data[at] as usize]);
            at += 1;
            if self.hash & MASK == 0 && at + before >= MIN_CHUNK_BYTES {
                cut = true;
                break;
            }
        }
        if at + before >= MAX_CHUNK_BYTES {
            at = MAX_CHUNK_BYTES - before;
            cut = true;
        }
        if cut {
            self.hash = 0;
            return Some(at);
        }
        None
    }
}

/// Chunks all of `data`: each chunk's hash and length.
pub fn chunk_all(data: &[u8]) -> Vec<(MerkleHash, u64)> {
    let mut out = Vec::new();
    let mut chunker = Chunker::default();
    chunker.push(data, |c| out.push((chunk_hash(c), c.len() as u64)));
    chunker.finish(|c| out.push((chunk_hash(c), c.len() as u64)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xet::hash::file_hash;
    use crate::xet::testdata::{h, vector};

    /// splitmix64 and the word generator of tests/data/xet/generator.rs.txt.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
    }

    fn random(n: usize, seed: u64) -> Vec<u8> {
        let mut rng = Rng(seed);
        let mut out: Vec<u8> = (0..n.div_ceil(8))
            .flat_map(|_| rng.next().to_le_bytes())
            .collect();
        out.truncate(n);
        out
    }

    fn text(n: usize, seed: u64) -> Vec<u8> {
        let words = [
            "xet ", "chunk ", "xorb ", "shard ", "airlock ", "merkle ", "hash ",
        ];
        let mut rng = Rng(seed);
        let mut out = Vec::new();
        while out.len() < n {
            out.extend_from_slice(words[(rng.next() % 7) as usize].as_bytes());
        }
        out.truncate(n);
        out
    }

    fn expected(list: &str) -> Vec<(MerkleHash, u64)> {
        list.lines()
            .map(|l| {
                let (hash, len) = l.split_once(' ').unwrap();
                (h(hash), len.parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn boundaries_and_hashes_match_xet_core() {
        let cases = [
            (
                random(1 << 20, 42),
                include_str!("../../tests/data/xet/random_1mib.chunks"),
                "random_1mib",
            ),
            (
                text(300 * 1024, 7),
                include_str!("../../tests/data/xet/text_300k.chunks"),
                "text_300k",
            ),
        ];
        for (data, list, name) in cases {
            let want = expected(list);
            assert_eq!(chunk_all(&data), want, "{name}");
            assert_eq!(file_hash(&want), h(vector(name)[1]), "{name}");
            // the same cuts however the input is sliced
            for piece in [1000, 8191, 65_537, 200_000] {
                let mut got = Vec::new();
                let mut chunker = Chunker::default();
                for part in data.chunks(piece) {
                    chunker.push(part, |c| got.push((chunk_hash(c), c.len() as u64)));
                }
                chunker.finish(|c| got.push((chunk_hash(c), c.len() as u64)));
                assert_eq!(got, want, "{name} in pieces of {piece}");
            }
        }
    }

    #[test]
    fn sizes_stay_within_bounds() {
        assert_eq!(MASK, 0xFFFF_0000_0000_0000);
        // all zeros never matches (the hash saturates to a constant): max-size chunks
        let zeros = chunk_all(&vec![0u8; 300_000]);
        let lens: Vec<u64> = zeros.iter().map(|c| c.1).collect();
        assert_eq!(lens, [131_072, 131_072, 37_856]);
        assert!(chunk_all(&[]).is_empty());
        assert_eq!(chunk_all(b"small").len(), 1);
    }
}
