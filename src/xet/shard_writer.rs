//! The shard a global-deduplication query is answered with
//! (`GET /v1/chunks/default-merkledb/{chunk}`), and a strict reader of it.
//!
//! A client that cuts a chunk it may have uploaded before asks the CAS for it; the answer
//! tells it which xorb holds that chunk and its neighbours, so it can name their ranges
//! in its own shard instead of uploading them again. The answer must not hand out raw
//! chunk hashes: knowing them is what lets an uploader claim a range (a term's
//! verification hash is keyed over them, `super::verify`). So every chunk hash is
//! replaced by its keyed BLAKE3 under a fresh key carried in the footer
//! (`chunk_hash_hmac_key`): the client, which has the chunk, computes the same HMAC of
//! its own hash and matches; anyone else learns nothing usable.
//!
//! The form is xet-core's `MDBShardInfo::export_as_keyed_shard` with no file info and
//! with the xorb and chunk lookup tables (xet_core_structures 1.8
//! `metadata_shard/shard_format.rs`): header, an empty file section (its bookend), the CAS
//! info blocks with keyed chunk hashes, the bookend, the lookup tables, the 200-byte
//! footer. hf_xet finds chunks through the chunk lookup table (truncated keyed hash ->
//! xorb entry, chunk offset), so it must be sorted and point at the right records.

use super::hash::MerkleHash;
use super::index::XorbIndex;
use super::shard::{self, bad, Input, XorbInfo, HEADER_TAG, HEADER_VERSION, RECORD};
use super::XetError;

/// `MDBShardFileFooter`: nine `u64`s, the key, two timestamps, six spare `u64`s, three
/// byte counts and the footer's own offset.
pub const FOOTER_LEN: usize = 200;
const FOOTER_VERSION: u64 = 1;
/// One entry of the xorb lookup table (`u64` truncated hash, `u32` entry index).
const XORB_LOOKUP_LEN: usize = 12;
/// One entry of the chunk lookup table (`u64`, `u32` xorb entry, `u32` chunk offset).
const CHUNK_LOOKUP_LEN: usize = 16;

/// The HMAC xet-core applies to a chunk hash (`MerkleHash::hmac`): keyed BLAKE3 of the
/// hash's 32 bytes.
pub fn keyed_chunk_hash(key: &MerkleHash, chunk: &MerkleHash) -> MerkleHash {
    MerkleHash(*blake3::keyed_hash(key.as_bytes(), chunk.as_bytes()).as_bytes())
}

/// One xorb to describe in a dedup answer.
pub struct KeyedXorb<'a> {
    pub index: &'a XorbIndex,
    /// `num_bytes_on_disk`: the serialized size (informational to clients).
    pub bytes_on_disk: u32,
}

/// What a dedup answer says, as read back by [`parse_dedup_shard`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DedupShard {
    /// The xorbs, chunk hashes keyed (not the raw ones).
    pub xorbs: Vec<XorbInfo>,
    pub hmac_key: MerkleHash,
    pub created: u64,
    /// Unix seconds after which the client drops it from its cache.
    pub expires: u64,
}

/// The answer's bytes for `xorbs`, chunk hashes keyed with `key` (which must not be all
/// zero: a zero key means "not keyed" to the client).
pub fn write_dedup_shard(
    xorbs: &[KeyedXorb<'_>],
    key: &MerkleHash,
    created: u64,
    expires: u64,
) -> Vec<u8> {
    let chunks: usize = xorbs.iter().map(|x| x.index.chunks.len()).sum();
    let mut out = Vec::with_capacity(
        RECORD * (3 + xorbs.len() + chunks)
            + XORB_LOOKUP_LEN * xorbs.len()
            + CHUNK_LOOKUP_LEN * chunks
            + FOOTER_LEN,
    );
    out.extend_from_slice(&HEADER_TAG);
    out.extend_from_slice(&HEADER_VERSION.to_le_bytes());
    out.extend_from_slice(&(FOOTER_LEN as u64).to_le_bytes());
    let file_info_offset = out.len();
    bookend(&mut out);
    let xorb_info_offset = out.len();
    let mut xorb_lookup = Vec::with_capacity(xorbs.len());
    let mut chunk_lookup = Vec::with_capacity(chunks);
    let (mut entry, mut on_disk, mut stored) = (0u32, 0u64, 0u64);
    for x in xorbs {
        let unpacked = x.index.unpacked_len() as u32;
        xorb_lookup.push((truncate(&x.index.hash), entry));
        out.extend_from_slice(x.index.hash.as_bytes());
        for word in [0, x.index.chunks.len() as u32, unpacked, x.bytes_on_disk] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        let mut start = 0u32;
        for (i, chunk) in x.index.chunks.iter().enumerate() {
            let keyed = keyed_chunk_hash(key, &chunk.hash);
            chunk_lookup.push((truncate(&keyed), entry, i as u32));
            out.extend_from_slice(keyed.as_bytes());
            for word in [start, chunk.len, 0, 0] {
                out.extend_from_slice(&word.to_le_bytes());
            }
            start += chunk.len;
        }
        entry += 1 + x.index.chunks.len() as u32;
        on_disk += u64::from(x.bytes_on_disk);
        stored += u64::from(unpacked);
    }
    bookend(&mut out);
    // No file info, so no file lookup table.
    let file_lookup_offset = out.len();
    let xorb_lookup_offset = out.len();
    // Stable sorts, as xet-core's (ties keep their order).
    xorb_lookup.sort_by_key(|e| e.0);
    for (key, index) in &xorb_lookup {
        out.extend_from_slice(&key.to_le_bytes());
        out.extend_from_slice(&index.to_le_bytes());
    }
    let chunk_lookup_offset = out.len();
    chunk_lookup.sort_by_key(|e| e.0);
    for (key, xorb, offset) in &chunk_lookup {
        out.extend_from_slice(&key.to_le_bytes());
        out.extend_from_slice(&xorb.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
    }
    let footer_offset = out.len();
    for word in [
        FOOTER_VERSION,
        file_info_offset as u64,
        xorb_info_offset as u64,
        file_lookup_offset as u64,
        0,
        xorb_lookup_offset as u64,
        xorb_lookup.len() as u64,
        chunk_lookup_offset as u64,
        chunk_lookup.len() as u64,
    ] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(key.as_bytes());
    for word in [created, expires, 0, 0, 0, 0, 0, 0] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    // stored_bytes_on_disk, materialized_bytes (no files), stored_bytes, footer_offset
    for word in [on_disk, 0, stored, footer_offset as u64] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    debug_assert_eq!(out.len(), footer_offset + FOOTER_LEN);
    out
}

/// Reads a dedup answer back, checking everything the client relies on: the footer's
/// offsets, no file info, and lookup tables that are sorted and point at the records
/// they name. Linear in its length; allocates only for records it has read.
pub fn parse_dedup_shard(b: &[u8]) -> Result<DedupShard, XetError> {
    if b.len() < 3 * RECORD + FOOTER_LEN {
        return Err(bad("is too short for a shard with a footer"));
    }
    let footer_offset = b.len() - FOOTER_LEN;
    let f = &b[footer_offset..];
    let word = |i: usize| u64::from_le_bytes(f[8 * i..8 * i + 8].try_into().expect("8 bytes"));
    if word(0) != FOOTER_VERSION {
        return Err(bad("footer version is not 1"));
    }
    let hmac_key = MerkleHash(f[72..104].try_into().expect("32 bytes"));
    let (created, expires) = (word(13), word(14));
    if word(24) != footer_offset as u64 {
        return Err(bad("footer_offset does not point at the footer"));
    }
    let mut input = Input::new(&b[..footer_offset], footer_offset as u64);
    if shard::read_header(&mut input)? != FOOTER_LEN as u64 {
        return Err(bad("header does not declare the 200-byte footer"));
    }
    let parsed = shard::read_sections(&mut input, hmac_key != MerkleHash::ZERO)?;
    if !parsed.files.is_empty() || word(4) != 0 {
        return Err(bad("a dedup answer carries no file info"));
    }
    let tables = input.consumed();
    let expected = [
        (1, RECORD as u64),
        (2, 2 * RECORD as u64),
        (3, tables),
        (5, tables),
        (7, tables + XORB_LOOKUP_LEN as u64 * word(6)),
    ];
    if expected.iter().any(|&(i, at)| word(i) != at)
        || word(7) + CHUNK_LOOKUP_LEN as u64 * word(8) != footer_offset as u64
    {
        return Err(bad("footer offsets do not match the sections"));
    }
    // Record index (in 48-byte units from the CAS info section) of each xorb header.
    let mut entries = Vec::with_capacity(parsed.xorbs.len());
    let mut entry = 0u64;
    for x in &parsed.xorbs {
        entries.push(entry);
        entry += 1 + x.chunks.len() as u64;
    }
    let xorb_table = &b[word(5) as usize..word(7) as usize];
    let mut previous = 0u64;
    let mut seen = 0usize;
    for e in xorb_table.chunks_exact(XORB_LOOKUP_LEN) {
        let key = u64::from_le_bytes(e[..8].try_into().expect("8 bytes"));
        let at = u64::from(u32::from_le_bytes(e[8..].try_into().expect("4 bytes")));
        let x = entries.iter().position(|&s| s == at);
        if key < previous || x.is_none_or(|x| truncate(&parsed.xorbs[x].hash) != key) {
            return Err(bad("xorb lookup table is unsorted or points elsewhere"));
        }
        previous = key;
        seen += 1;
    }
    let chunks: usize = parsed.xorbs.iter().map(|x| x.chunks.len()).sum();
    if seen != parsed.xorbs.len() || word(8) as usize != chunks {
        return Err(bad("lookup tables do not list every xorb and chunk"));
    }
    previous = 0;
    for e in b[word(7) as usize..footer_offset].chunks_exact(CHUNK_LOOKUP_LEN) {
        let key = u64::from_le_bytes(e[..8].try_into().expect("8 bytes"));
        let at = u64::from(u32::from_le_bytes(e[8..12].try_into().expect("4 bytes")));
        let offset = u32::from_le_bytes(e[12..].try_into().expect("4 bytes")) as usize;
        let chunk = entries
            .iter()
            .position(|&s| s == at)
            .and_then(|x| parsed.xorbs[x].chunks.get(offset));
        if key < previous || chunk.is_none_or(|c| truncate(&c.hash) != key) {
            return Err(bad("chunk lookup table is unsorted or points elsewhere"));
        }
        previous = key;
    }
    Ok(DedupShard {
        xorbs: parsed.xorbs,
        hmac_key,
        created,
        expires,
    })
}

/// The lookup tables' key: the hash's first little-endian word (xet-core `truncate_hash`).
fn truncate(hash: &MerkleHash) -> u64 {
    u64::from_le_bytes(hash.0[..8].try_into().expect("8 bytes"))
}

fn bookend(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0xFF; 32]);
    out.extend_from_slice(&[0; 16]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xet::testdata::{h, vector, X1_XORB, X2_XORB};
    use crate::xet::verify_xorb;

    const KEYED_FIXTURE: &[u8] = include_bytes!("../../tests/data/xet/x1x2_keyed.shard");

    fn fixture_xorbs() -> Vec<XorbIndex> {
        let x1 = verify_xorb(h(vector("x1")[0]), X1_XORB).unwrap();
        let x2 = verify_xorb(h(vector("x2")[0]), X2_XORB).unwrap();
        // xet-core writes xorbs in its BTreeMap order: by the hash's first word.
        let mut both = vec![x1, x2];
        both.sort_by_key(|x| truncate(&x.hash));
        both
    }

    fn write(xorbs: &[XorbIndex], key: &MerkleHash, bytes_on_disk: u32) -> Vec<u8> {
        let keyed: Vec<KeyedXorb> = xorbs
            .iter()
            .map(|index| KeyedXorb {
                index,
                bytes_on_disk,
            })
            .collect();
        write_dedup_shard(&keyed, key, 1_800_000_000, 1_800_003_600)
    }

    /// Byte for byte what xet-core's `export_as_keyed_shard(.., include_file_info false,
    /// xorb and chunk lookup tables)` wrote for the same two xorbs and key
    /// (tests/data/xet/README.md), timestamps taken from it.
    #[test]
    fn matches_xet_core_keyed_export() {
        let fixture = parse_dedup_shard(KEYED_FIXTURE).unwrap();
        let xorbs = fixture_xorbs();
        let keyed: Vec<KeyedXorb> = xorbs
            .iter()
            .map(|index| KeyedXorb {
                index,
                bytes_on_disk: 0,
            })
            .collect();
        let ours = write_dedup_shard(&keyed, &fixture.hmac_key, fixture.created, fixture.expires);
        assert_eq!(ours, KEYED_FIXTURE);
    }

    #[test]
    fn round_trips_with_keyed_hashes_only() {
        let xorbs = fixture_xorbs();
        let key = MerkleHash([7; 32]);
        let bytes = write(&xorbs, &key, 1234);
        let shard = parse_dedup_shard(&bytes).unwrap();
        assert_eq!(shard.hmac_key, key);
        assert_eq!(
            (shard.created, shard.expires),
            (1_800_000_000, 1_800_003_600)
        );
        assert_eq!(shard.xorbs.len(), 2);
        for (got, index) in shard.xorbs.iter().zip(&xorbs) {
            assert_eq!(got.hash, index.hash);
            assert_eq!(got.serialized_len, 1234);
            assert_eq!(got.chunks.len(), index.chunks.len());
            for (c, raw) in got.chunks.iter().zip(&index.chunks) {
                assert_eq!(c.hash, keyed_chunk_hash(&key, &raw.hash));
                assert_ne!(c.hash, raw.hash);
                assert_eq!(c.len, raw.len);
            }
        }
        // No raw chunk hash appears anywhere in the answer.
        for raw in xorbs.iter().flat_map(|x| &x.chunks) {
            assert!(!bytes.windows(32).any(|w| w == raw.hash.as_bytes()));
        }
        // Another key, other hashes.
        let other = write(&xorbs, &MerkleHash([8; 32]), 1234);
        assert_ne!(parse_dedup_shard(&other).unwrap().xorbs, shard.xorbs);
    }

    #[test]
    fn damage_is_refused() {
        let xorbs = fixture_xorbs();
        let bytes = write(&xorbs, &MerkleHash([7; 32]), 0);
        for cut in [0, 100, bytes.len() - FOOTER_LEN, bytes.len() - 1] {
            assert!(parse_dedup_shard(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let footer = bytes.len() - FOOTER_LEN;
        let tables = footer - 16 * xorbs.iter().map(|x| x.chunks.len()).sum::<usize>();
        // the tag, a chunk lookup key, a chunk lookup offset, the footer version and
        // footer_offset, an offset of the chunk table
        for at in [0, tables, tables + 12, footer, footer + 192, footer + 56] {
            let mut b = bytes.clone();
            b[at] ^= 1;
            assert!(parse_dedup_shard(&b).is_err(), "byte {at}");
        }
    }
}
