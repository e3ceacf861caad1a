//! Xet hashes: one 32-byte type and the four keyed-BLAKE3 functions built on it.
//!
//! Every Xet name is one of these: a chunk hash (the chunk's bytes under `DATA_KEY`), a
//! xorb hash (the Merkle root over its chunks), a file hash (that root re-hashed under
//! the all-zero key) and a term verification hash (the raw chunk hashes of a range under
//! `VERIFICATION_KEY`). The Merkle tree is xet-core's, not a binary tree: a node's
//! children end where a child's hash is 0 mod 4 (at least 2, at most 9 children), so the
//! shape depends on the hashes and must be copied exactly or no root will match.
//!
//! The text form (URLs, JSON, the Merkle node lines) prints the hash as four
//! little-endian `u64`s in hex, so each 8-byte block appears byte-reversed. Keys and
//! vectors: hub-docs `docs/xet/hashing.md`, xet-core `merklehash/`.

use super::XetError;
use std::fmt;
use std::str::FromStr;

const DATA_KEY: [u8; 32] = [
    102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28, 157, 228, 33, 16,
    155, 235, 43, 88, 180, 208, 176, 75, 147, 173, 242, 41,
];

const INTERNAL_NODE_KEY: [u8; 32] = [
    1, 126, 197, 199, 165, 71, 41, 150, 253, 148, 102, 102, 180, 138, 2, 230, 93, 221, 83, 111, 55,
    199, 109, 210, 248, 99, 82, 230, 74, 83, 113, 63,
];

const VERIFICATION_KEY: [u8; 32] = [
    127, 24, 87, 214, 206, 86, 237, 102, 18, 127, 249, 19, 231, 165, 195, 243, 164, 205, 38, 213,
    181, 219, 73, 230, 65, 36, 152, 127, 40, 251, 148, 195,
];

/// A node's children end at a child whose hash is 0 mod this (xet-core's
/// `AGGREGATED_HASHES_MEAN_TREE_BRANCHING_FACTOR`).
const BRANCHING: u64 = 4;
/// At most this many children per node (`2 * BRANCHING + 1`).
const MAX_CHILDREN: usize = 2 * BRANCHING as usize + 1;

/// A Xet hash: 32 raw bytes, as they appear in xorbs and shards.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MerkleHash(pub [u8; 32]);

impl MerkleHash {
    pub const ZERO: MerkleHash = MerkleHash([0; 32]);

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The `i`th little-endian 64-bit word, as xet-core stores the hash (`[u64; 4]`).
    fn word(&self, i: usize) -> u64 {
        let mut w = [0; 8];
        w.copy_from_slice(&self.0[8 * i..8 * i + 8]);
        u64::from_le_bytes(w)
    }

    /// The API text form: 64 hex characters, each 8-byte block byte-reversed.
    pub fn to_api_hex(&self) -> String {
        self.to_string()
    }

    /// Parses the API text form: exactly 64 hex characters.
    pub fn from_api_hex(s: &str) -> Result<Self, XetError> {
        let bad = || XetError::InvalidHash(s.chars().take(80).collect());
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut out = [0; 32];
        for i in 0..4 {
            let word = u64::from_str_radix(&s[16 * i..16 * i + 16], 16).map_err(|_| bad())?;
            out[8 * i..8 * i + 8].copy_from_slice(&word.to_le_bytes());
        }
        Ok(MerkleHash(out))
    }

    fn keyed(key: &[u8; 32], data: &[u8]) -> Self {
        MerkleHash(*blake3::keyed_hash(key, data).as_bytes())
    }
}

impl fmt::Display for MerkleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for i in 0..4 {
            write!(f, "{:016x}", self.word(i))?;
        }
        Ok(())
    }
}

impl fmt::Debug for MerkleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MerkleHash {
    type Err = XetError;
    fn from_str(s: &str) -> Result<Self, XetError> {
        Self::from_api_hex(s)
    }
}

/// The hash of one chunk's (uncompressed) bytes.
pub fn chunk_hash(data: &[u8]) -> MerkleHash {
    MerkleHash::keyed(&DATA_KEY, data)
}

/// An incremental chunk hasher, for chunks that arrive in pieces.
pub struct ChunkHasher(blake3::Hasher);

impl Default for ChunkHasher {
    fn default() -> Self {
        ChunkHasher(blake3::Hasher::new_keyed(&DATA_KEY))
    }
}

impl ChunkHasher {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn finish(&self) -> MerkleHash {
        MerkleHash(*self.0.finalize().as_bytes())
    }
}

/// One internal node: its children as `"{hash} : {size}\n"` lines under
/// `INTERNAL_NODE_KEY`, and the sum of their sizes.
pub fn internal_node(children: &[(MerkleHash, u64)]) -> (MerkleHash, u64) {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(children.len() * 88);
    let mut total = 0u64;
    for (hash, size) in children {
        let _ = writeln!(text, "{hash} : {size}");
        total = total.wrapping_add(*size);
    }
    (
        MerkleHash::keyed(&INTERNAL_NODE_KEY, text.as_bytes()),
        total,
    )
}

/// How many of `nodes` the next parent takes (xet-core's `next_merge_cut`): up to and
/// including the first node from the third on whose hash is 0 mod 4, at most 9.
fn next_cut(nodes: &[(MerkleHash, u64)]) -> usize {
    if nodes.len() <= 2 {
        return nodes.len();
    }
    let end = MAX_CHILDREN.min(nodes.len());
    (2..end)
        .find(|&i| nodes[i].0.word(3) % BRANCHING == 0)
        .map_or(end, |i| i + 1)
}

/// The Merkle root over `(chunk hash, chunk size)` leaves; all zero for no leaves.
pub fn merkle_root(leaves: &[(MerkleHash, u64)]) -> MerkleHash {
    if leaves.is_empty() {
        return MerkleHash::ZERO;
    }
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len() / 2 + 1);
        let mut rest = &level[..];
        while !rest.is_empty() {
            let (group, after) = rest.split_at(next_cut(rest));
            next.push(internal_node(group));
            rest = after;
        }
        level = next;
    }
    level[0].0
}

/// [`merkle_root`] over leaves that arrive one at a time, holding O(log n) nodes: a
/// node's children are settled once 9 candidates wait (the cut looks 9 ahead at most),
/// so a file of millions of chunks is hashed without a list of them all.
#[derive(Default)]
pub struct MerkleBuilder {
    levels: Vec<Vec<(MerkleHash, u64)>>,
    leaves: u64,
}

impl MerkleBuilder {
    pub fn push(&mut self, hash: MerkleHash, size: u64) {
        self.leaves += 1;
        self.push_at(0, (hash, size));
    }

    fn push_at(&mut self, level: usize, node: (MerkleHash, u64)) {
        if self.levels.len() == level {
            self.levels.push(Vec::with_capacity(MAX_CHILDREN));
        }
        self.levels[level].push(node);
        if self.levels[level].len() == MAX_CHILDREN {
            let nodes = &mut self.levels[level];
            let n = next_cut(nodes);
            let parent = internal_node(&nodes[..n]);
            nodes.drain(..n);
            self.push_at(level + 1, parent);
        }
    }

    /// The root; all zero when nothing was pushed.
    pub fn finish(mut self) -> MerkleHash {
        let mut k = 0;
        while k < self.levels.len() {
            let nodes = std::mem::take(&mut self.levels[k]);
            if k + 1 == self.levels.len() && nodes.len() == 1 {
                return nodes[0].0;
            }
            let mut rest = &nodes[..];
            while !rest.is_empty() {
                let (group, after) = rest.split_at(next_cut(rest));
                self.push_at(k + 1, internal_node(group));
                rest = after;
            }
            k += 1;
        }
        MerkleHash::ZERO
    }

    /// The file hash of the leaves pushed (see [`file_hash`]).
    pub fn finish_file(self) -> MerkleHash {
        if self.leaves == 0 {
            return MerkleHash::ZERO;
        }
        MerkleHash::keyed(&[0; 32], self.finish().as_bytes())
    }
}

/// A xorb's hash: the Merkle root of its chunks in order.
pub fn xorb_hash(chunks: &[(MerkleHash, u64)]) -> MerkleHash {
    merkle_root(chunks)
}

/// A file's hash: the Merkle root of all its chunks, re-hashed under the all-zero key.
/// All zero for an empty file, as in xet-core.
pub fn file_hash(chunks: &[(MerkleHash, u64)]) -> MerkleHash {
    if chunks.is_empty() {
        return MerkleHash::ZERO;
    }
    MerkleHash::keyed(&[0; 32], merkle_root(chunks).as_bytes())
}

/// A term's verification hash: the raw chunk hashes of the range, concatenated, under
/// `VERIFICATION_KEY`. Proves the uploader knew the chunks it claims a file is made of.
pub fn range_hash(chunks: &[MerkleHash]) -> MerkleHash {
    let mut hasher = blake3::Hasher::new_keyed(&VERIFICATION_KEY);
    for chunk in chunks {
        hasher.update(chunk.as_bytes());
    }
    MerkleHash(*hasher.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> MerkleHash {
        s.parse().unwrap()
    }

    #[test]
    fn api_hex_reverses_each_eight_byte_block() {
        let mut raw = [0u8; 32];
        for (i, b) in raw.iter_mut().enumerate() {
            *b = i as u8;
        }
        let text = MerkleHash(raw).to_string();
        assert_eq!(
            text,
            "07060504030201000f0e0d0c0b0a090817161514131211101f1e1d1c1b1a1918"
        );
        assert_eq!(h(&text), MerkleHash(raw));
        assert_eq!(MerkleHash(raw).to_api_hex(), text);
    }

    #[test]
    fn api_hex_is_exactly_64_hex_characters() {
        let good = "0".repeat(64);
        assert!(MerkleHash::from_api_hex(&good).is_ok());
        for bad in [
            "0".repeat(63),
            "0".repeat(65),
            format!("{}g", "0".repeat(63)),
            format!("+{}", "0".repeat(63)),
            format!("{}é", "0".repeat(62)),
            String::new(),
        ] {
            assert!(
                matches!(
                    MerkleHash::from_api_hex(&bad),
                    Err(XetError::InvalidHash(_))
                ),
                "{bad:?}"
            );
        }
    }

    /// xet-core's `test_correctness` table (merklehash/aggregated_hashes.rs): 18 leaf
    /// lists, up to 100 leaves, covering every branch of the cut rule.
    #[test]
    fn merkle_and_file_hashes_match_xet_core() {
        let table = include_str!("../../tests/data/xet/merkle_vectors.txt");
        let mut cases = 0;
        for line in table.lines().filter(|l| !l.starts_with('#')) {
            let mut parts = line.split(' ');
            let leaves: Vec<(MerkleHash, u64)> = match parts.next().unwrap() {
                "-" => Vec::new(),
                list => list
                    .split(',')
                    .map(|leaf| {
                        let (hash, size) = leaf.split_once(':').unwrap();
                        (h(hash), size.parse().unwrap())
                    })
                    .collect(),
            };
            let xorb = h(parts.next().unwrap());
            let file = h(parts.next().unwrap());
            assert_eq!(xorb_hash(&leaves), xorb, "{} leaves", leaves.len());
            assert_eq!(file_hash(&leaves), file, "{} leaves", leaves.len());
            let mut streamed = MerkleBuilder::default();
            for &(h, s) in &leaves {
                streamed.push(h, s);
            }
            assert_eq!(
                streamed.finish_file(),
                file,
                "{} leaves, streamed",
                leaves.len()
            );
            cases += 1;
        }
        assert_eq!(cases, 18);
    }

    /// The spec's worked example of one internal node (hashing.md); its value comes from
    /// xet-core's `compute_internal_node_hash` over the same text (tests/data/xet).
    #[test]
    fn internal_node_text_is_the_specs() {
        let children = [
            (
                h("1f6a2b8e9d3c4075a2e8c5fd4f0b763e6f3c1d7a9b2e6487de3f91ab7c6d5401"),
                10000,
            ),
            (
                h("7c94fe2a38bdcf9b4d2a6f7e1e08ac35bc24a7903d6f5a0e7d1c2b93e5f748de"),
                20000,
            ),
            (
                h("cfd18a92e0743bb09e56dbf76ea2c34d99b5a0cf271f8d429b6cd148203df061"),
                25000,
            ),
            (
                h("e38d7c09a21b4cf8d0f92b3a85e6df19f7c20435e0b1c78a9d635f7b8c2e4da1"),
                64000,
            ),
        ];
        let text = "1f6a2b8e9d3c4075a2e8c5fd4f0b763e6f3c1d7a9b2e6487de3f91ab7c6d5401 : 10000\n\
                    7c94fe2a38bdcf9b4d2a6f7e1e08ac35bc24a7903d6f5a0e7d1c2b93e5f748de : 20000\n\
                    cfd18a92e0743bb09e56dbf76ea2c34d99b5a0cf271f8d429b6cd148203df061 : 25000\n\
                    e38d7c09a21b4cf8d0f92b3a85e6df19f7c20435e0b1c78a9d635f7b8c2e4da1 : 64000\n";
        let (node, size) = internal_node(&children);
        assert_eq!(size, 119000);
        assert_eq!(node, MerkleHash::keyed(&INTERNAL_NODE_KEY, text.as_bytes()));
    }

    #[test]
    fn streaming_root_equals_the_batch_root() {
        let mut seed = 7u64;
        let mut leaves = Vec::new();
        for n in (0..300).chain([1000, 4097]) {
            while leaves.len() < n {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                leaves.push((chunk_hash(&seed.to_le_bytes()), seed % 100_000));
            }
            let mut b = MerkleBuilder::default();
            for &(h, s) in &leaves[..n] {
                b.push(h, s);
            }
            assert_eq!(b.finish(), merkle_root(&leaves[..n]), "{n} leaves");
        }
        let mut b = MerkleBuilder::default();
        for &(h, s) in &leaves[..77] {
            b.push(h, s);
        }
        assert_eq!(b.finish_file(), file_hash(&leaves[..77]));
        assert_eq!(MerkleBuilder::default().finish_file(), MerkleHash::ZERO);
    }

    #[test]
    fn chunk_hasher_is_chunk_hash_in_pieces() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let mut hasher = ChunkHasher::default();
        for piece in data.chunks(333) {
            hasher.update(piece);
        }
        assert_eq!(hasher.finish(), chunk_hash(&data));
        assert_ne!(chunk_hash(&data), chunk_hash(&data[1..]));
    }

    #[test]
    fn range_hash_is_keyed_over_raw_hashes() {
        let a = chunk_hash(b"a");
        let b = chunk_hash(b"b");
        let mut raw = Vec::new();
        raw.extend_from_slice(a.as_bytes());
        raw.extend_from_slice(b.as_bytes());
        assert_eq!(
            range_hash(&[a, b]),
            MerkleHash::keyed(&VERIFICATION_KEY, &raw)
        );
        assert_ne!(range_hash(&[a, b]), range_hash(&[b, a]));
    }
}

#[cfg(test)]
mod vectors_from_xet_core {
    use super::*;
    use crate::xet::testdata::{h, vector};

    /// Values computed by xet-core 1.8 itself (tests/data/xet/generator.rs.txt).
    #[test]
    fn chunk_and_internal_node_hashes_match_xet_core() {
        assert_eq!(chunk_hash(b""), h(vector("chunk_hash_empty")[0]));
        assert_eq!(chunk_hash(b"hello"), h(vector("chunk_hash_hello")[0]));
        let spec_text = "1f6a2b8e9d3c4075a2e8c5fd4f0b763e6f3c1d7a9b2e6487de3f91ab7c6d5401 : 10000\n\
                         7c94fe2a38bdcf9b4d2a6f7e1e08ac35bc24a7903d6f5a0e7d1c2b93e5f748de : 20000\n\
                         cfd18a92e0743bb09e56dbf76ea2c34d99b5a0cf271f8d429b6cd148203df061 : 25000\n\
                         e38d7c09a21b4cf8d0f92b3a85e6df19f7c20435e0b1c78a9d635f7b8c2e4da1 : 64000\n";
        let children: Vec<(MerkleHash, u64)> = spec_text
            .lines()
            .map(|l| {
                let (hash, size) = l.split_once(" : ").unwrap();
                (h(hash), size.parse().unwrap())
            })
            .collect();
        assert_eq!(
            internal_node(&children).0,
            h(vector("spec_internal_node")[0])
        );
    }
}
