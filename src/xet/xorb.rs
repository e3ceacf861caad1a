//! Verifying a xorb as a client uploads it (`POST /v1/xorbs/default/{hash}`).
//!
//! The body is a run of chunks (header + compressed bytes) and, from older clients, the
//! `XETBLOB` footer (xet-core `XorbObjectInfoV1`: the xorb hash, every chunk hash, the
//! serialized and unpacked chunk boundaries). Current clients send no footer (xet-data
//! `file_upload_session.rs`: "XORBs are sent without footer"), so the chunks alone are
//! the truth: each is decoded and hashed, the Merkle root must equal the hash in the URL,
//! and a footer, when present, must agree with what was computed, field by field.
//!
//! [`XorbVerifier`] is a push parser: the HTTP layer feeds it the body as it arrives
//! (while streaming it to a staging blob) and it holds at most one chunk, the footer
//! (whose exact length follows from the chunk count) and the index it builds. Limits are
//! xet-core's: 64 MiB serialized, 8,192 chunks, 128 KiB per chunk.

use super::chunk::{self, ChunkHeader, HEADER_LEN};
use super::hash::{chunk_hash, xorb_hash};
use super::index::{ChunkEntry, XorbIndex};
use super::{MerkleHash, XetError};

/// xet-core's `MAX_XORB_BYTES`: the chunks' uncompressed content. hf_xet cuts a xorb
/// before its chunks' data would pass it (xet-data `file_deduplication.rs`), so with
/// incompressible data the serialized xorb is this plus a header per chunk.
pub const MAX_XORB_BYTES: u64 = 64 * 1024 * 1024;
/// xet-core's `MAX_XORB_CHUNKS`.
pub const MAX_XORB_CHUNKS: usize = 8 * 1024;
/// A serialized xorb: the content, a header per chunk and the largest footer.
pub const MAX_SERIALIZED_XORB_BYTES: u64 =
    MAX_XORB_BYTES + ((HEADER_LEN + 40) * MAX_XORB_CHUNKS + FOOTER_FIXED) as u64;

const FOOTER_IDENT: &[u8; 7] = b"XETBLOB";
const HASHES_IDENT: &[u8; 7] = b"XBLBHSH";
const BOUNDARIES_IDENT: &[u8; 7] = b"XBLBBND";
const FOOTER_VERSION: u8 = 1;
const BOUNDARIES_VERSION: u8 = 1;
/// Footer bytes besides the 40 per chunk (hash, boundary, unpacked offset), including the
/// trailing `info_length`.
const FOOTER_FIXED: usize = 8 + 32 + 12 + 12 + 12 + 16 + 4;

enum State {
    /// Collecting a chunk header (or the footer's first 8 bytes).
    Header,
    /// Collecting `header.compressed_len` bytes of chunk data.
    Body(ChunkHeader),
    /// Collecting the footer; its length is fixed by the chunk count.
    Footer,
}

/// Incremental xorb verifier; see the module docs.
pub struct XorbVerifier {
    claimed: MerkleHash,
    state: State,
    seen: u64,
    /// Uncompressed bytes of the chunks so far.
    unpacked: u64,
    header: Vec<u8>,
    body: Vec<u8>,
    decoded: Vec<u8>,
    footer: Vec<u8>,
    chunks: Vec<ChunkEntry>,
    failed: Option<XetError>,
}

impl XorbVerifier {
    /// A verifier for the xorb the client named `claimed`.
    pub fn new(claimed: MerkleHash) -> Self {
        XorbVerifier {
            claimed,
            state: State::Header,
            seen: 0,
            unpacked: 0,
            header: Vec::with_capacity(HEADER_LEN),
            body: Vec::new(),
            decoded: Vec::new(),
            footer: Vec::new(),
            chunks: Vec::new(),
            failed: None,
        }
    }

    /// Bytes pushed so far.
    pub fn bytes_seen(&self) -> u64 {
        self.seen
    }

    /// Feeds the next bytes of the body. After an error every later call returns it too.
    pub fn push(&mut self, data: &[u8]) -> Result<(), XetError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.push_inner(data);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    fn push_inner(&mut self, mut data: &[u8]) -> Result<(), XetError> {
        self.seen += data.len() as u64;
        if self.seen > MAX_SERIALIZED_XORB_BYTES {
            return Err(XetError::XorbTooLarge {
                max: MAX_SERIALIZED_XORB_BYTES,
            });
        }
        while !data.is_empty() {
            match self.state {
                State::Header => {
                    take_up_to(&mut self.header, &mut data, HEADER_LEN);
                    if self.header.len() == HEADER_LEN {
                        self.start_chunk()?;
                    }
                }
                State::Body(header) => {
                    take_up_to(&mut self.body, &mut data, header.compressed_len as usize);
                    if self.body.len() == header.compressed_len as usize {
                        self.end_chunk(header)?;
                    }
                }
                State::Footer => {
                    let expected = FOOTER_FIXED + 40 * self.chunks.len();
                    take_up_to(&mut self.footer, &mut data, expected);
                    if !data.is_empty() {
                        return Err(XetError::BadFooter(format!(
                            "bytes after the {expected}-byte footer"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    fn start_chunk(&mut self) -> Result<(), XetError> {
        let bytes: [u8; HEADER_LEN] = self.header[..].try_into().expect("8 bytes");
        self.header.clear();
        if &bytes[..7] == FOOTER_IDENT {
            self.footer.extend_from_slice(&bytes);
            self.state = State::Footer;
            return Ok(());
        }
        let index = self.chunks.len();
        if index == MAX_XORB_CHUNKS {
            return Err(XetError::TooManyChunks {
                max: MAX_XORB_CHUNKS,
            });
        }
        let header =
            ChunkHeader::parse(&bytes).map_err(|reason| XetError::BadChunk { index, reason })?;
        self.state = State::Body(header);
        if header.compressed_len == 0 {
            self.end_chunk(header)?;
        }
        Ok(())
    }

    fn end_chunk(&mut self, header: ChunkHeader) -> Result<(), XetError> {
        let index = self.chunks.len();
        chunk::decode(&header, &self.body, &mut self.decoded)
            .map_err(|reason| XetError::BadChunk { index, reason })?;
        let start = self.chunks.last().map_or(0, |c| c.end);
        self.unpacked += u64::from(header.uncompressed_len);
        if self.unpacked > MAX_XORB_BYTES {
            return Err(XetError::XorbTooLarge {
                max: MAX_XORB_BYTES,
            });
        }
        self.chunks.push(ChunkEntry {
            hash: chunk_hash(&self.decoded),
            len: header.uncompressed_len,
            start,
            end: start + (HEADER_LEN as u32) + header.compressed_len,
        });
        self.body.clear();
        self.state = State::Header;
        Ok(())
    }

    /// Ends the body: every chunk complete, the hash the client named, a footer (if any)
    /// that agrees. Returns the xorb's index.
    pub fn finish(self) -> Result<XorbIndex, XetError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let index = self.chunks.len();
        match self.state {
            State::Header if !self.header.is_empty() => {
                return Err(XetError::TruncatedChunk {
                    index,
                    missing: (HEADER_LEN - self.header.len()) as u64,
                })
            }
            State::Body(h) => {
                return Err(XetError::TruncatedChunk {
                    index,
                    missing: u64::from(h.compressed_len) - self.body.len() as u64,
                })
            }
            _ => {}
        }
        if self.chunks.is_empty() {
            return Err(XetError::EmptyXorb);
        }
        let leaves: Vec<_> = self
            .chunks
            .iter()
            .map(|c| (c.hash, u64::from(c.len)))
            .collect();
        let computed = xorb_hash(&leaves);
        if computed != self.claimed {
            return Err(XetError::XorbHashMismatch {
                claimed: self.claimed,
                computed,
            });
        }
        if matches!(self.state, State::Footer) {
            check_footer(&self.footer, computed, &self.chunks)?;
        }
        Ok(XorbIndex {
            hash: computed,
            chunks: self.chunks,
        })
    }
}

/// Verifies a whole serialized xorb held in memory (tests, small bodies).
pub fn verify_xorb(claimed: MerkleHash, bytes: &[u8]) -> Result<XorbIndex, XetError> {
    let mut v = XorbVerifier::new(claimed);
    v.push(bytes)?;
    v.finish()
}

/// Moves bytes from `data` into `buf` until it holds `want`.
fn take_up_to(buf: &mut Vec<u8>, data: &mut &[u8], want: usize) {
    let n = want.saturating_sub(buf.len()).min(data.len());
    buf.extend_from_slice(&data[..n]);
    *data = &data[n..];
}

/// Checks an uploaded `XorbObjectInfoV1` footer against the chunks as decoded.
fn check_footer(f: &[u8], hash: MerkleHash, chunks: &[ChunkEntry]) -> Result<(), XetError> {
    let bad = |what: &str| Err(XetError::BadFooter(what.to_string()));
    let n = chunks.len();
    if f.len() != FOOTER_FIXED + 40 * n {
        return bad("ends early");
    }
    let mut r = Cursor { f, at: 7 };
    if r.u8() != FOOTER_VERSION {
        return bad("version is not 1");
    }
    if r.hash() != hash {
        return bad("names another xorb hash");
    }
    if r.bytes(7) != HASHES_IDENT || r.u8() != 0 || r.u32() as usize != n {
        return bad("hash section header is wrong");
    }
    if chunks.iter().any(|c| r.hash() != c.hash) {
        return bad("a chunk hash differs from the chunk's content");
    }
    let boundaries_at = r.at;
    if r.bytes(7) != BOUNDARIES_IDENT || r.u8() != BOUNDARIES_VERSION || r.u32() as usize != n {
        return bad("boundary section header is wrong");
    }
    if chunks.iter().any(|c| r.u32() != c.end) {
        return bad("a chunk boundary differs from the chunks sent");
    }
    let mut unpacked = 0u32;
    for c in chunks {
        unpacked += c.len;
        if r.u32() != unpacked {
            return bad("an unpacked chunk offset differs from the chunks sent");
        }
    }
    let info_end = f.len() - 4;
    let hashes_from_end = (info_end - (8 + 32)) as u32;
    let boundaries_from_end = (info_end - boundaries_at) as u32;
    if r.u32() as usize != n || r.u32() != hashes_from_end || r.u32() != boundaries_from_end {
        return bad("section offsets are wrong");
    }
    r.at += 16; // the nonce buffer: free for the client, ignored by readers
    if r.u32() as usize != info_end {
        return bad("info length is wrong");
    }
    Ok(())
}

/// Reads fixed fields; only called on a buffer whose length was checked first.
struct Cursor<'a> {
    f: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn bytes(&mut self, n: usize) -> &[u8] {
        self.at += n;
        &self.f[self.at - n..self.at]
    }
    fn u8(&mut self) -> u8 {
        self.bytes(1)[0]
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes(4).try_into().expect("4 bytes"))
    }
    fn hash(&mut self) -> MerkleHash {
        MerkleHash(self.bytes(32).try_into().expect("32 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xet::testdata::{h, mixed_index, vector, FOOTER_XORB, MIXED_XORB};

    fn expected_mixed() -> XorbIndex {
        let (hash, chunks) = mixed_index();
        XorbIndex {
            hash,
            chunks: chunks
                .into_iter()
                .map(|(hash, len, _, start, end)| ChunkEntry {
                    hash,
                    len,
                    start,
                    end,
                })
                .collect(),
        }
    }

    #[test]
    fn xet_core_xorb_of_every_scheme_verifies_in_any_slicing() {
        let expected = expected_mixed();
        let schemes: Vec<u8> = mixed_index().1.iter().map(|c| c.2).collect();
        assert_eq!(
            schemes,
            [2, 1, 0, 1, 2, 0],
            "the fixture covers every scheme"
        );
        assert_eq!(verify_xorb(expected.hash, MIXED_XORB), Ok(expected.clone()));
        for piece in [1, 7, 8, 4096, 100_000] {
            let mut v = XorbVerifier::new(expected.hash);
            for part in MIXED_XORB.chunks(piece) {
                v.push(part).unwrap();
            }
            assert_eq!(v.bytes_seen(), MIXED_XORB.len() as u64);
            assert_eq!(v.finish(), Ok(expected.clone()), "pieces of {piece}");
        }
    }

    #[test]
    fn xorb_with_the_older_clients_footer_verifies() {
        let hash = h(vector("footer_xorb")[0]);
        let footer_start: usize = vector("footer_xorb")[2].parse().unwrap();
        let index = verify_xorb(hash, FOOTER_XORB).unwrap();
        assert_eq!(index.chunks.len(), 4);
        assert_eq!(index.chunk_bytes(), footer_start as u64);
        // the same chunks without the footer, as current clients send them
        assert_eq!(verify_xorb(hash, &FOOTER_XORB[..footer_start]), Ok(index));
    }

    #[test]
    fn footer_that_disagrees_is_refused() {
        let hash = h(vector("footer_xorb")[0]);
        let footer_start: usize = vector("footer_xorb")[2].parse().unwrap();
        // first chunk hash in the footer, the nonce (ignored), one byte too many or few
        let first_hash = footer_start + 8 + 32 + 12;
        let nonce = FOOTER_XORB.len() - 20;
        let mut bad = FOOTER_XORB.to_vec();
        bad[first_hash] ^= 1;
        assert!(matches!(
            verify_xorb(hash, &bad),
            Err(XetError::BadFooter(_))
        ));
        let mut ok = FOOTER_XORB.to_vec();
        ok[nonce] ^= 1;
        assert!(verify_xorb(hash, &ok).is_ok());
        let mut long = FOOTER_XORB.to_vec();
        long.push(0);
        assert!(matches!(
            verify_xorb(hash, &long),
            Err(XetError::BadFooter(_))
        ));
        let short = &FOOTER_XORB[..FOOTER_XORB.len() - 1];
        assert!(matches!(
            verify_xorb(hash, short),
            Err(XetError::BadFooter(_))
        ));
    }

    #[test]
    fn wrong_name_or_altered_content_is_refused() {
        let expected = expected_mixed();
        let wrong = h(&"ab".repeat(32));
        assert_eq!(
            verify_xorb(wrong, MIXED_XORB),
            Err(XetError::XorbHashMismatch {
                claimed: wrong,
                computed: expected.hash
            })
        );
        // a byte of the uncompressed chunk (index 2), then of an LZ4 chunk (index 1)
        for at in [5823 + 8 + 100, 2275 + 8 + 100] {
            let mut bad = MIXED_XORB.to_vec();
            bad[at] ^= 0x55;
            assert!(verify_xorb(expected.hash, &bad).is_err(), "byte {at}");
        }
    }

    #[test]
    fn truncated_empty_and_oversized_xorbs_are_refused() {
        let hash = expected_mixed().hash;
        assert_eq!(verify_xorb(hash, b""), Err(XetError::EmptyXorb));
        assert!(matches!(
            verify_xorb(hash, &MIXED_XORB[..MIXED_XORB.len() - 1]),
            Err(XetError::TruncatedChunk {
                index: 5,
                missing: 1
            })
        ));
        assert!(matches!(
            verify_xorb(hash, &MIXED_XORB[..3]),
            Err(XetError::TruncatedChunk {
                index: 0,
                missing: 5
            })
        ));
        // 8,193 empty chunks (8 zero bytes each)
        assert_eq!(
            verify_xorb(hash, &vec![0; 8 * (MAX_XORB_CHUNKS + 1)]),
            Err(XetError::TooManyChunks {
                max: MAX_XORB_CHUNKS
            })
        );
        let mut v = XorbVerifier::new(hash);
        v.push(MIXED_XORB).unwrap();
        let over = vec![0; (MAX_SERIALIZED_XORB_BYTES as usize) - MIXED_XORB.len() + 1];
        let too_large = XetError::XorbTooLarge {
            max: MAX_SERIALIZED_XORB_BYTES,
        };
        assert_eq!(v.push(&over), Err(too_large.clone()));
        assert_eq!(v.push(b"x"), Err(too_large.clone()), "an error sticks");
        assert_eq!(v.finish(), Err(too_large));
    }

    /// hf_xet fills a xorb up to 64 MiB of chunk data; incompressible data is stored
    /// as is, so the body is 64 MiB plus a header per chunk: accepted. One more chunk of
    /// content is not.
    #[test]
    fn a_full_xorb_of_incompressible_data_verifies() {
        let mut state = 1u64;
        let mut body = Vec::with_capacity(MAX_SERIALIZED_XORB_BYTES as usize);
        let mut leaves = Vec::new();
        let chunk_len = chunk::MAX_CHUNK_BYTES;
        let n = (MAX_XORB_BYTES / u64::from(chunk_len)) as usize;
        let mut add = |body: &mut Vec<u8>, leaves: &mut Vec<(MerkleHash, u64)>| {
            let data: Vec<u8> = (0..chunk_len)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (state >> 33) as u8
                })
                .collect();
            let header = ChunkHeader {
                compression: chunk::Compression::None,
                compressed_len: chunk_len,
                uncompressed_len: chunk_len,
            };
            body.extend_from_slice(&header.to_bytes());
            body.extend_from_slice(&data);
            leaves.push((chunk_hash(&data), u64::from(chunk_len)));
        };
        for _ in 0..n {
            add(&mut body, &mut leaves);
        }
        assert!(body.len() as u64 > MAX_XORB_BYTES);
        let index = verify_xorb(xorb_hash(&leaves), &body).unwrap();
        assert_eq!(index.unpacked_len(), MAX_XORB_BYTES);
        add(&mut body, &mut leaves);
        assert_eq!(
            verify_xorb(xorb_hash(&leaves), &body),
            Err(XetError::XorbTooLarge {
                max: MAX_XORB_BYTES
            })
        );
    }

    #[test]
    fn chunk_header_errors_name_the_chunk() {
        let mut bad = MIXED_XORB.to_vec();
        bad[2275 + 4] = 7; // chunk 1's scheme
        assert!(matches!(
            verify_xorb(expected_mixed().hash, &bad),
            Err(XetError::BadChunk { index: 1, .. })
        ));
    }
}
