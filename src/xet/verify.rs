//! Whether an uploaded shard tells the truth, against the xorbs actually stored.
//!
//! The shard is a claim; a stored xorb's index is fact (we hashed every chunk). So each
//! file's hash must be the Merkle file hash over the chunks its terms name, each term's
//! declared size must be the sum of those chunks, and each term's verification hash
//! must be the range hash of their hashes (proof the uploader knew the chunks, not only
//! a xorb's public name). The CAS info section must describe its xorbs exactly as
//! stored, since it is what global dedup will later hand to other clients. Xorbs are
//! uploaded before the shard that references them (upload-protocol.md), so an unknown
//! xorb is an error. Time is linear in the chunks named, bounded by
//! [`super::shard::MAX_CHUNK_REFERENCES`]; memory per file is O(log n).

use super::hash::{range_hash, MerkleBuilder, MerkleHash};
use super::index::XorbIndex;
use super::shard::{FileInfo, Shard, XorbInfo};
use super::XetError;
use std::collections::HashMap;

/// A xorb's chunks in order, from a stored index or a shard's CAS info.
pub trait ChunkList {
    fn chunk_count(&self) -> usize;
    /// `(hash, uncompressed length)` of chunk `i < chunk_count()`.
    fn chunk(&self, i: usize) -> (MerkleHash, u64);
}

impl ChunkList for XorbIndex {
    fn chunk_count(&self) -> usize {
        self.chunks.len()
    }
    fn chunk(&self, i: usize) -> (MerkleHash, u64) {
        (self.chunks[i].hash, u64::from(self.chunks[i].len))
    }
}

impl ChunkList for XorbInfo {
    fn chunk_count(&self) -> usize {
        self.chunks.len()
    }
    fn chunk(&self, i: usize) -> (MerkleHash, u64) {
        (self.chunks[i].hash, u64::from(self.chunks[i].len))
    }
}

/// Checks a whole uploaded shard against `stored`, the indexes of every xorb it names
/// (in its CAS info or its terms); see [`Shard::xorbs_named`].
pub fn verify_shard(
    shard: &Shard,
    stored: &HashMap<MerkleHash, XorbIndex>,
) -> Result<(), XetError> {
    for xorb in &shard.xorbs {
        let index = stored
            .get(&xorb.hash)
            .ok_or(XetError::UnknownXorb(xorb.hash))?;
        let same = index.chunk_count() == xorb.chunk_count()
            && (0..index.chunk_count()).all(|i| index.chunk(i) == xorb.chunk(i));
        if !same {
            return Err(XetError::BadShard(format!(
                "CAS info for xorb {} does not match the uploaded xorb",
                xorb.hash
            )));
        }
    }
    for file in &shard.files {
        verify_file(file, |x| stored.get(x))?;
    }
    Ok(())
}

/// Checks one file's hash, term sizes and verification hashes against the chunk lists
/// `chunks_of` finds. Every term must carry its verification hash (required on upload).
pub fn verify_file<'a, L: ChunkList + 'a>(
    file: &FileInfo,
    chunks_of: impl Fn(&MerkleHash) -> Option<&'a L>,
) -> Result<(), XetError> {
    let fail = |reason: String| XetError::BadFile {
        file: file.hash,
        reason,
    };
    let mut tree = MerkleBuilder::default();
    let mut hashes = Vec::new();
    for (i, term) in file.terms.iter().enumerate() {
        let xorb = chunks_of(&term.xorb).ok_or(XetError::UnknownXorb(term.xorb))?;
        let (start, end) = (term.chunks.start as usize, term.chunks.end as usize);
        if start >= end || end > xorb.chunk_count() {
            return Err(fail(format!(
                "term {i} names chunks {start}..{end} of xorb {}, which has {}",
                term.xorb,
                xorb.chunk_count()
            )));
        }
        hashes.clear();
        let mut size = 0u64;
        for c in start..end {
            let (hash, len) = xorb.chunk(c);
            tree.push(hash, len);
            hashes.push(hash);
            size += len;
        }
        if size != u64::from(term.unpacked_len) {
            return Err(fail(format!(
                "term {i} declares {} bytes, its chunks hold {size}",
                term.unpacked_len
            )));
        }
        match term.verification {
            None => return Err(fail(format!("term {i} has no verification entry"))),
            Some(v) if v != range_hash(&hashes) => {
                return Err(fail(format!(
                    "term {i}'s verification hash does not match chunks {start}..{end} of xorb {}",
                    term.xorb
                )))
            }
            Some(_) => {}
        }
    }
    let computed = tree.finish_file();
    if computed != file.hash {
        return Err(fail(format!("the chunks of its terms hash to {computed}")));
    }
    Ok(())
}

impl Shard {
    /// Every xorb the shard names, in its CAS info or in a term, each once: the
    /// indexes [`verify_shard`] needs.
    pub fn xorbs_named(&self) -> Vec<MerkleHash> {
        let mut out: Vec<MerkleHash> = self.xorbs.iter().map(|x| x.hash).collect();
        out.extend(
            self.files
                .iter()
                .flat_map(|f| f.terms.iter().map(|t| t.xorb)),
        );
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xet::testdata::{h, vector, TWO_FILES_SHARD, X1_XORB, X2_XORB};
    use crate::xet::{parse_shard, shard::MAX_SHARD_BYTES, verify_xorb};

    fn stored() -> HashMap<MerkleHash, XorbIndex> {
        [("x1", X1_XORB), ("x2", X2_XORB)]
            .into_iter()
            .map(|(name, bytes)| {
                let hash = h(vector(name)[0]);
                (hash, verify_xorb(hash, bytes).unwrap())
            })
            .collect()
    }

    fn shard(bytes: &[u8]) -> Shard {
        parse_shard(bytes, MAX_SHARD_BYTES).unwrap()
    }

    /// The byte offset of the record starting with `hash` in the fixture shard.
    fn record_of(hash: MerkleHash) -> usize {
        TWO_FILES_SHARD
            .windows(32)
            .position(|w| w == hash.as_bytes())
            .unwrap()
    }

    #[test]
    fn xet_core_shard_verifies_against_its_xorbs() {
        let s = shard(TWO_FILES_SHARD);
        assert_eq!(s.xorbs_named().len(), 2);
        assert_eq!(verify_shard(&s, &stored()), Ok(()));
        // or against the shard's own CAS info, for xorbs it brings
        for f in &s.files {
            verify_file(f, |x| s.xorbs.iter().find(|i| i.hash == *x)).unwrap();
        }
    }

    #[test]
    fn a_missing_xorb_is_refused() {
        let s = shard(TWO_FILES_SHARD);
        let x2 = h(vector("x2")[0]);
        let mut only_x1 = stored();
        only_x1.remove(&x2);
        assert_eq!(verify_shard(&s, &only_x1), Err(XetError::UnknownXorb(x2)));
    }

    #[test]
    fn lies_about_a_file_are_refused() {
        let s = shard(TWO_FILES_SHARD);
        let a = h(vector("file_a")[0]);
        let file_a = s.files.iter().find(|f| f.hash == a).unwrap();
        let verification = record_of(file_a.terms[1].verification.unwrap());
        let header = record_of(a);
        // a verification hash, a term's size, the file hash itself
        for (at, what) in [
            (verification, "verification hash"),
            (header + 48 + 36, "declares"),
            (header, "hash to"),
        ] {
            let mut b = TWO_FILES_SHARD.to_vec();
            b[at] ^= 1;
            let e = verify_shard(&shard(&b), &stored()).unwrap_err();
            assert!(
                matches!(e, XetError::BadFile { .. }) && e.to_string().contains(what),
                "{e}"
            );
        }
        // a term past the end of its xorb, and one with no verification entry
        let indexes = stored();
        let mut f = file_a.clone();
        f.terms[0].chunks = 0..4;
        let e = verify_file(&f, |x| indexes.get(x)).unwrap_err();
        assert!(e.to_string().contains("which has 3"), "{e}");
        let mut f = file_a.clone();
        f.terms[0].verification = None;
        let e = verify_file(&f, |x| s.xorbs.iter().find(|i| i.hash == *x)).unwrap_err();
        assert!(e.to_string().contains("no verification entry"), "{e}");
    }

    #[test]
    fn cas_info_must_match_the_stored_xorb() {
        let mut s = shard(TWO_FILES_SHARD);
        s.xorbs[0].chunks[0].len += 1;
        let e = verify_shard(&s, &stored()).unwrap_err();
        assert!(
            e.to_string().contains("does not match the uploaded xorb"),
            "{e}"
        );
    }
}
