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

/// xet-core's `MAX_XORB_BYTES`; the CAS refuses larger bodies (hub-docs `xorb.md`).
pub const MAX_XORB_BYTES: u64 = 64 * 1024 * 1024;
/// xet-core's `MAX_XORB_CHUNKS`.
pub const MAX_XORB_CHUNKS: usize = 8 * 1024;

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
        if self.seen > MAX_XORB_BYTES {
            return Err(XetError::XorbTooLarge {
                max: MAX_XORB_BYTES,
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
