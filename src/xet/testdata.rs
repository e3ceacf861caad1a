//! The fixtures in tests/data/xet (made by xet-core's own crates; see its README), for
//! the unit tests.

use super::hash::MerkleHash;

pub const MIXED_XORB: &[u8] = include_bytes!("../../tests/data/xet/mixed.xorb");
pub const MIXED_INDEX: &str = include_str!("../../tests/data/xet/mixed.xorb.index");
pub const FOOTER_XORB: &[u8] = include_bytes!("../../tests/data/xet/footer.xorb");
pub const X1_XORB: &[u8] = include_bytes!("../../tests/data/xet/x1.xorb");
pub const X2_XORB: &[u8] = include_bytes!("../../tests/data/xet/x2.xorb");
pub const TWO_FILES_SHARD: &[u8] = include_bytes!("../../tests/data/xet/two_files.shard");
pub const VECTORS: &str = include_str!("../../tests/data/xet/vectors.txt");

pub fn h(s: &str) -> MerkleHash {
    s.parse().unwrap()
}

/// The words after `key` on its line of vectors.txt.
pub fn vector(key: &str) -> Vec<&'static str> {
    VECTORS
        .lines()
        .find_map(|l| l.strip_prefix(key).filter(|r| r.starts_with(' ')))
        .unwrap_or_else(|| panic!("{key} not in vectors.txt"))
        .split_whitespace()
        .collect()
}

/// One line of mixed.xorb.index: `hash len scheme start end`.
pub type IndexLine = (MerkleHash, u32, u8, u32, u32);

/// mixed.xorb.index: the xorb hash, then one line per chunk.
pub fn mixed_index() -> (MerkleHash, Vec<IndexLine>) {
    let mut lines = MIXED_INDEX.lines();
    let hash = h(lines.next().unwrap());
    let chunks = lines
        .map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            (
                h(w[0]),
                w[1].parse().unwrap(),
                w[2].parse().unwrap(),
                w[3].parse().unwrap(),
                w[4].parse().unwrap(),
            )
        })
        .collect();
    (hash, chunks)
}
