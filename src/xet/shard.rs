//! Parsing a shard as a client uploads it (`POST /v1/shards`, `/v2/shards`).
//!
//! A shard says which chunk ranges of which xorbs make up each uploaded file (the file
//! info section) and lists the chunks of the xorbs the client created (the CAS info
//! section), each section ended by a bookend entry; on upload the footer is omitted
//! (hub-docs `shard.md`). Every record is 48 bytes, so the parser reads one record at a
//! time against a byte budget and allocates only for records it has read: counts in
//! headers are never trusted for allocation. Structural checks happen here (sizes that
//! must add up, ranges that must be ranges); whether the files are what they claim is
//! [`super::verify`]'s job, against the xorbs actually stored.

use super::chunk::MAX_CHUNK_BYTES;
use super::hash::{xorb_hash, MerkleHash};
use super::xorb::MAX_XORB_CHUNKS;
use super::XetError;
use std::io::Read;
use std::ops::Range;

/// xet-core's `MDB_SHARD_TARGET_SIZE`; upload-protocol.md: larger uploads MUST be split.
pub const MAX_SHARD_BYTES: u64 = 64 * 1024 * 1024;
/// Chunk references summed over every term of a shard: 1 TiB of files at the 64 KiB
/// target chunk size. Verifying a term costs a hash per chunk it names, and a 48-byte
/// term can name 8,192 chunks, so this (not the byte size) bounds a shard's CPU time.
pub const MAX_CHUNK_REFERENCES: u64 = 16 * 1024 * 1024;
/// Distinct xorbs one shard may name (1 TiB of full 64 MiB xorbs, four times over):
/// verification loads each one's index (up to 320 KiB), so this bounds its memory
/// together with loading them per file.
pub const MAX_XORBS_NAMED: usize = 64 * 1024;

pub(super) const HEADER_TAG: [u8; 32] = [
    b'H', b'F', b'R', b'e', b'p', b'o', b'M', b'e', b't', b'a', b'D', b'a', b't', b'a', 0, 85, 105,
    103, 69, 106, 123, 129, 87, 131, 165, 189, 217, 92, 205, 209, 74, 169,
];
pub(super) const HEADER_VERSION: u64 = 2;
pub(super) const RECORD: usize = 48;
const WITH_VERIFICATION: u32 = 1 << 31;
const WITH_METADATA_EXT: u32 = 1 << 30;

/// One term of a file: chunks `[start, end)` of a xorb.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    pub xorb: MerkleHash,
    pub chunks: Range<u32>,
    /// Uncompressed bytes of the term, as the client declares them.
    pub unpacked_len: u32,
    /// The term verification hash (required on upload, checked by `verify`).
    pub verification: Option<MerkleHash>,
}

/// One uploaded file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    pub hash: MerkleHash,
    pub terms: Vec<Term>,
    /// The file's sha256 in ordinary digest byte order: what the Hub commit names as
    /// `lfsFile.oid`. The shard stores it as a xet-core `DataHash` built with
    /// `from_be_bytes`, i.e. each 8-byte block reversed; we undo that here.
    pub sha256: Option<[u8; 32]>,
}

impl FileInfo {
    /// The file's size: the sum of its terms' declared sizes.
    pub fn size(&self) -> u64 {
        self.terms.iter().map(|t| u64::from(t.unpacked_len)).sum()
    }
}

/// One chunk of a xorb the shard describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CasChunk {
    pub hash: MerkleHash,
    /// Offset of the chunk in the xorb's uncompressed content.
    pub unpacked_start: u32,
    pub len: u32,
}

/// One xorb the shard describes (its CAS info block).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XorbInfo {
    pub hash: MerkleHash,
    pub chunks: Vec<CasChunk>,
    /// `num_bytes_on_disk`: informational (xet-core leaves it 0 in uploads).
    pub serialized_len: u32,
}

impl XorbInfo {
    pub fn leaves(&self) -> Vec<(MerkleHash, u64)> {
        self.chunks
            .iter()
            .map(|c| (c.hash, u64::from(c.len)))
            .collect()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shard {
    pub files: Vec<FileInfo>,
    pub xorbs: Vec<XorbInfo>,
}

/// Reads an uploaded shard (footer omitted) from `r`, at most `max_bytes` of it.
pub fn parse_shard(r: impl Read, max_bytes: u64) -> Result<Shard, XetError> {
    let mut input = Input::new(r, max_bytes);
    if read_header(&mut input)? != 0 {
        return Err(bad(
            "an uploaded shard must omit its footer (footer_size 0)",
        ));
    }
    let shard = read_sections(&mut input, false)?;
    input.expect_end()?;
    if shard.xorbs_named().len() > MAX_XORBS_NAMED {
        return Err(bad(&format!(
            "it names more than {MAX_XORBS_NAMED} xorbs; split the upload"
        )));
    }
    Ok(shard)
}

/// Checks the header record; the footer size it declares.
pub(super) fn read_header(input: &mut Input<impl Read>) -> Result<u64, XetError> {
    let head = input.record("the header")?;
    if head[..32] != HEADER_TAG {
        return Err(bad("does not start with the shard header tag"));
    }
    if u64_at(&head, 32) != HEADER_VERSION {
        return Err(bad("header version is not 2"));
    }
    Ok(u64_at(&head, 40))
}

/// The file info and CAS info sections, each up to its bookend. In a `keyed` shard (a
/// global-dedup answer) the chunk hashes are HMACs, so a xorb's root cannot be checked.
pub(super) fn read_sections(input: &mut Input<impl Read>, keyed: bool) -> Result<Shard, XetError> {
    let mut shard = Shard::default();
    let mut references = 0u64;
    loop {
        let rec = input.record("the file info section")?;
        if is_bookend(&rec) {
            break;
        }
        let file = read_file(input, &rec, &mut references)?;
        shard.files.push(file);
    }
    loop {
        let rec = input.record("the CAS info section")?;
        if is_bookend(&rec) {
            break;
        }
        let xorb = read_xorb(input, &rec, keyed)?;
        if shard.xorbs.iter().any(|x| x.hash == xorb.hash) {
            return Err(bad(&format!("xorb {} is listed twice", xorb.hash)));
        }
        shard.xorbs.push(xorb);
    }
    Ok(shard)
}

fn read_file(
    input: &mut Input<impl Read>,
    rec: &[u8; RECORD],
    refs: &mut u64,
) -> Result<FileInfo, XetError> {
    let hash = hash_at(rec, 0);
    let flags = u32_at(rec, 32);
    let n = u32_at(rec, 36);
    let mut terms = Vec::new();
    for _ in 0..n {
        let e = input.record("a file's terms")?;
        let chunks = u32_at(&e, 40)..u32_at(&e, 44);
        if chunks.start >= chunks.end || chunks.end as usize > MAX_XORB_CHUNKS {
            return Err(file_error(
                hash,
                format!("term chunk range {chunks:?} is empty or too long"),
            ));
        }
        *refs += u64::from(chunks.end - chunks.start);
        if *refs > MAX_CHUNK_REFERENCES {
            return Err(bad(&format!(
                "its terms name more than {MAX_CHUNK_REFERENCES} chunks; split the upload"
            )));
        }
        terms.push(Term {
            xorb: hash_at(&e, 0),
            chunks,
            unpacked_len: u32_at(&e, 36),
            verification: None,
        });
    }
    if flags & WITH_VERIFICATION != 0 {
        for term in &mut terms {
            let v = input.record("a file's verification entries")?;
            term.verification = Some(hash_at(&v, 0));
        }
    }
    let mut sha256 = None;
    if flags & WITH_METADATA_EXT != 0 {
        let m = input.record("a file's metadata extension")?;
        let mut digest = [0u8; 32];
        for (block, raw) in digest.chunks_exact_mut(8).zip(m[..32].chunks_exact(8)) {
            block.copy_from_slice(raw);
            block.reverse();
        }
        sha256 = Some(digest);
    }
    Ok(FileInfo {
        hash,
        terms,
        sha256,
    })
}

fn read_xorb(
    input: &mut Input<impl Read>,
    rec: &[u8; RECORD],
    keyed: bool,
) -> Result<XorbInfo, XetError> {
    let hash = hash_at(rec, 0);
    let n = u32_at(rec, 36) as usize;
    let declared_bytes = u32_at(rec, 40);
    if n == 0 || n > MAX_XORB_CHUNKS {
        return Err(bad(&format!("xorb {hash} has {n} chunks")));
    }
    let mut chunks = Vec::new();
    let mut unpacked = 0u32;
    for _ in 0..n {
        let e = input.record("a xorb's chunk list")?;
        let chunk = CasChunk {
            hash: hash_at(&e, 0),
            unpacked_start: u32_at(&e, 32),
            len: u32_at(&e, 36),
        };
        if chunk.len > MAX_CHUNK_BYTES || chunk.unpacked_start != unpacked {
            return Err(bad(&format!(
                "xorb {hash}: chunk offsets and sizes do not add up"
            )));
        }
        unpacked += chunk.len;
        chunks.push(chunk);
    }
    let xorb = XorbInfo {
        hash,
        chunks,
        serialized_len: u32_at(rec, 44),
    };
    if unpacked != declared_bytes {
        return Err(bad(&format!(
            "xorb {hash}: declares {declared_bytes} bytes, its chunks hold {unpacked}"
        )));
    }
    if !keyed && xorb_hash(&xorb.leaves()) != hash {
        return Err(bad(&format!(
            "xorb {hash}: its chunk hashes do not add up to its hash"
        )));
    }
    Ok(xorb)
}

pub(super) fn bad(what: &str) -> XetError {
    XetError::BadShard(what.to_string())
}

fn file_error(file: MerkleHash, reason: String) -> XetError {
    XetError::BadFile { file, reason }
}

fn is_bookend(rec: &[u8; RECORD]) -> bool {
    rec[..32].iter().all(|&b| b == 0xFF)
}

fn hash_at(rec: &[u8; RECORD], at: usize) -> MerkleHash {
    MerkleHash(rec[at..at + 32].try_into().expect("32 bytes"))
}

fn u32_at(rec: &[u8; RECORD], at: usize) -> u32 {
    u32::from_le_bytes(rec[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(rec: &[u8; RECORD], at: usize) -> u64 {
    u64::from_le_bytes(rec[at..at + 8].try_into().expect("8 bytes"))
}

/// The shard's bytes, one 48-byte record at a time, within a byte budget.
pub(super) struct Input<R> {
    r: R,
    left: u64,
    max: u64,
}

impl<R: Read> Input<R> {
    pub(super) fn new(r: R, max: u64) -> Self {
        Input { r, left: max, max }
    }

    /// Bytes read so far.
    pub(super) fn consumed(&self) -> u64 {
        self.max - self.left
    }

    fn record(&mut self, section: &str) -> Result<[u8; RECORD], XetError> {
        if self.left < RECORD as u64 {
            return Err(XetError::ShardTooLarge { max: self.max });
        }
        self.left -= RECORD as u64;
        let mut rec = [0u8; RECORD];
        self.r.read_exact(&mut rec).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => bad(&format!("ends inside {section}")),
            _ => bad(&format!("cannot be read: {e}")),
        })?;
        Ok(rec)
    }

    fn expect_end(&mut self) -> Result<(), XetError> {
        let mut one = [0u8; 1];
        match self.r.read(&mut one) {
            Ok(0) => Ok(()),
            Ok(_) => Err(bad(
                "has bytes after the CAS info section (an upload carries no footer)",
            )),
            Err(e) => Err(bad(&format!("cannot be read: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xet::testdata::{h, vector, TWO_FILES_SHARD};

    fn parse(b: &[u8]) -> Result<Shard, XetError> {
        parse_shard(b, MAX_SHARD_BYTES)
    }

    fn file<'a>(shard: &'a Shard, name: &str) -> &'a FileInfo {
        let hash = h(vector(&format!("file_{name}"))[0]);
        shard.files.iter().find(|f| f.hash == hash).unwrap()
    }

    #[test]
    fn xet_core_upload_shard_parses() {
        let shard = parse(TWO_FILES_SHARD).unwrap();
        let (x1, x2) = (h(vector("x1")[0]), h(vector("x2")[0]));
        assert_eq!(shard.files.len(), 2);
        let mut xorbs: Vec<_> = shard
            .xorbs
            .iter()
            .map(|x| (x.hash, x.chunks.len()))
            .collect();
        xorbs.sort();
        let mut want = vec![(x1, 3), (x2, 4)];
        want.sort();
        assert_eq!(xorbs, want);
        for (name, ranges) in [
            ("a", [(x1, 0..3), (x2, 0..2)]),
            ("b", [(x1, 1..2), (x2, 2..4)]),
        ] {
            let f = file(&shard, name);
            let v = vector(&format!("file_{name}"));
            assert_eq!(
                hex::encode(f.sha256.unwrap()),
                v[2],
                "sha256 in digest order"
            );
            assert_eq!(f.size().to_string(), v[4]);
            let got: Vec<_> = f.terms.iter().map(|t| (t.xorb, t.chunks.clone())).collect();
            assert_eq!(got, ranges);
            assert!(f.terms.iter().all(|t| t.verification.is_some()));
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for cut in 0..TWO_FILES_SHARD.len() {
            assert!(parse(&TWO_FILES_SHARD[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = TWO_FILES_SHARD.to_vec();
        long.push(0);
        assert!(parse(&long)
            .unwrap_err()
            .to_string()
            .contains("after the CAS info"));
        assert_eq!(
            parse_shard(TWO_FILES_SHARD, TWO_FILES_SHARD.len() as u64 - 48),
            Err(XetError::ShardTooLarge {
                max: TWO_FILES_SHARD.len() as u64 - 48
            })
        );
        assert!(parse_shard(TWO_FILES_SHARD, TWO_FILES_SHARD.len() as u64).is_ok());
    }

    #[test]
    fn header_footer_and_counts_are_checked() {
        let mut b = TWO_FILES_SHARD.to_vec();
        b[0] ^= 1;
        assert!(parse(&b).unwrap_err().to_string().contains("tag"));
        let mut b = TWO_FILES_SHARD.to_vec();
        b[40] = 200;
        assert!(parse(&b)
            .unwrap_err()
            .to_string()
            .contains("omit its footer"));
        // the first file claims 2^32 - 1 terms: an error at the end of the bytes, no
        // allocation for the claim
        let mut b = TWO_FILES_SHARD.to_vec();
        b[48 + 36..48 + 40].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&b).is_err());
        // an empty term range
        let mut b = TWO_FILES_SHARD.to_vec();
        let end = b[96 + 44..96 + 48].to_vec();
        b[96 + 40..96 + 44].copy_from_slice(&end);
        assert!(matches!(parse(&b), Err(XetError::BadFile { .. })));
    }

    #[test]
    fn cas_info_must_add_up() {
        let shard = parse(TWO_FILES_SHARD).unwrap();
        let first_chunk = shard.xorbs[0].chunks[0].hash;
        let at = TWO_FILES_SHARD
            .windows(32)
            .rposition(|w| w == first_chunk.as_bytes())
            .unwrap();
        for (offset, what) in [(0, "add up to its hash"), (36, "do not add up")] {
            let mut b = TWO_FILES_SHARD.to_vec();
            b[at + offset] ^= 1;
            let e = parse(&b).unwrap_err().to_string();
            assert!(e.contains(what), "{e}");
        }
    }
}
