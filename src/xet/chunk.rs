//! One serialized xorb chunk: the 8-byte header and the three compression schemes.
//!
//! A header is version (0), compressed size (3 bytes LE), scheme, uncompressed size
//! (3 bytes LE); the compressed bytes follow. Schemes: none, LZ4 and byte-grouping-4 then
//! LZ4. xet-core writes LZ4 as a *frame* (`lz4_flex::frame`), not a raw block, so that
//! is what we read. Both sizes are checked against xet-core's limits before a byte is
//! allocated, and an LZ4 frame's structure is walked before it is decoded: the decoder
//! sizes its buffers from the frame's declared block size, so only the 64 KiB and
//! 256 KiB block sizes an encoder picks for a chunk of at most 128 KiB are accepted, in
//! one frame that ends where the chunk does.

use std::io::Read as _;

/// xet-core's `MAX_CHUNK_SIZE`: the target 64 KiB times 2.
pub const MAX_CHUNK_BYTES: u32 = 128 * 1024;
/// xet-core's chunk header check allows compressed data up to twice the largest chunk
/// (LZ4 of incompressible data grows a little; a client then stores it uncompressed).
pub const MAX_COMPRESSED_CHUNK_BYTES: u32 = 2 * MAX_CHUNK_BYTES;
pub const HEADER_LEN: usize = 8;

const LZ4_FRAME_MAGIC: u32 = 0x184D_2204;
const LZ4_MAX_BLOCK: usize = 256 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Lz4,
    ByteGrouping4Lz4,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkHeader {
    pub compression: Compression,
    pub compressed_len: u32,
    pub uncompressed_len: u32,
}

fn three_bytes(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], 0])
}

impl ChunkHeader {
    /// Parses and bounds a header; the reason is in the client's terms.
    pub fn parse(b: &[u8; HEADER_LEN]) -> Result<Self, String> {
        if b[0] != 0 {
            return Err(format!("chunk header version {} (only 0 exists)", b[0]));
        }
        let compression = match b[4] {
            0 => Compression::None,
            1 => Compression::Lz4,
            2 => Compression::ByteGrouping4Lz4,
            other => return Err(format!("unknown compression scheme {other}")),
        };
        let header = ChunkHeader {
            compression,
            compressed_len: three_bytes(&b[1..4]),
            uncompressed_len: three_bytes(&b[5..8]),
        };
        if header.uncompressed_len > MAX_CHUNK_BYTES {
            return Err(format!(
                "chunk of {} bytes is larger than the {MAX_CHUNK_BYTES}-byte limit",
                header.uncompressed_len
            ));
        }
        if header.compressed_len > MAX_COMPRESSED_CHUNK_BYTES {
            return Err(format!(
                "compressed chunk of {} bytes is larger than the {MAX_COMPRESSED_CHUNK_BYTES}-byte limit",
                header.compressed_len
            ));
        }
        if compression == Compression::None && header.compressed_len != header.uncompressed_len {
            return Err(format!(
                "uncompressed chunk says {} bytes stored but {} bytes of content",
                header.compressed_len, header.uncompressed_len
            ));
        }
        Ok(header)
    }

    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let c = self.compressed_len.to_le_bytes();
        let u = self.uncompressed_len.to_le_bytes();
        let scheme = match self.compression {
            Compression::None => 0,
            Compression::Lz4 => 1,
            Compression::ByteGrouping4Lz4 => 2,
        };
        [0, c[0], c[1], c[2], scheme, u[0], u[1], u[2]]
    }
}

/// Decodes one chunk's compressed bytes into `out` (cleared first), exactly
/// `header.uncompressed_len` bytes or an error.
pub fn decode(header: &ChunkHeader, data: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    out.clear();
    let expected = header.uncompressed_len as usize;
    match header.compression {
        Compression::None => out.extend_from_slice(data),
        Compression::Lz4 => lz4_frame(data, expected, out)?,
        Compression::ByteGrouping4Lz4 => {
            let mut grouped = Vec::new();
            lz4_frame(data, expected, &mut grouped)?;
            if grouped.len() == expected {
                regroup4(&grouped, out);
            }
        }
    }
    if out.len() != expected {
        return Err(format!(
            "chunk decodes to {} bytes, header says {expected}",
            out.len()
        ));
    }
    Ok(())
}

/// Decodes one LZ4 frame, at most `limit + 1` bytes of output (one more tells a liar).
fn lz4_frame(data: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), String> {
    check_lz4_frame(data)?;
    lz4_flex::frame::FrameDecoder::new(data)
        .take(limit as u64 + 1)
        .read_to_end(out)
        .map_err(|e| format!("LZ4 frame does not decode: {e}"))?;
    Ok(())
}

/// Walks an LZ4 frame's header and block sizes (no decoding): one modern frame, blocks of
/// at most 256 KiB, no dictionary, ending exactly at the end of `data`.
fn check_lz4_frame(data: &[u8]) -> Result<(), String> {
    let bad = |what: &str| Err(format!("LZ4 frame {what}"));
    if data.len() < 7 || u32::from_le_bytes([data[0], data[1], data[2], data[3]]) != LZ4_FRAME_MAGIC
    {
        return bad("missing its magic number");
    }
    let (flg, bd) = (data[4], data[5]);
    if flg >> 6 != 1 || flg & 0b10 != 0 || bd & 0x8F != 0 {
        return bad("has an unknown version or reserved bits set");
    }
    if flg & 1 != 0 {
        return bad("needs a dictionary");
    }
    let block_max = match (bd >> 4) & 7 {
        4 => 64 * 1024,
        5 => LZ4_MAX_BLOCK,
        _ => return bad("declares blocks larger than 256 KiB (a chunk is at most 128 KiB)"),
    };
    let block_checksum = flg & 0x10 != 0;
    let content_size = flg & 0x08 != 0;
    let content_checksum = flg & 0x04 != 0;
    // magic, FLG, BD, [content size], header checksum
    let mut at = 6 + if content_size { 8 } else { 0 } + 1;
    loop {
        let Some(word) = data.get(at..at + 4) else {
            return bad("ends before its end mark");
        };
        at += 4;
        let size =
            (u32::from_le_bytes([word[0], word[1], word[2], word[3]]) & 0x7FFF_FFFF) as usize;
        if size == 0 {
            break;
        }
        if size > block_max {
            return bad("has a block larger than it declares");
        }
        at += size + if block_checksum { 4 } else { 0 };
    }
    if content_checksum {
        at += 4;
    }
    if at != data.len() {
        return bad("does not end where the chunk ends");
    }
    Ok(())
}

/// Undoes byte grouping: `grouped` holds every 4th byte (from offsets 0, 1, 2, 3) in four
/// runs, the first `len % 4` runs one byte longer (hub-docs `xorb.md`).
fn regroup4(grouped: &[u8], out: &mut Vec<u8>) {
    let n = grouped.len();
    let (split, rem) = (n / 4, n % 4);
    let mut starts = [0usize; 4];
    for k in 1..4 {
        starts[k] = starts[k - 1] + split + usize::from(k - 1 < rem);
    }
    out.clear();
    out.reserve(n);
    for i in 0..split {
        for start in starts {
            out.push(grouped[start + i]);
        }
    }
    for start in starts.iter().take(rem) {
        out.push(grouped[start + split]);
    }
}

#[cfg(test)]
pub(crate) fn group4(data: &[u8]) -> Vec<u8> {
    (0..4)
        .flat_map(|k| data.iter().skip(k).step_by(4).copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regroup_undoes_grouping_for_every_remainder() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len as u8).collect();
            let mut out = Vec::new();
            regroup4(&group4(&data), &mut out);
            assert_eq!(out, data, "length {len}");
        }
        // hub-docs xorb.md: [A1 A2 A3 A4 B1 B2 B3 B4] groups as [A1 B1 A2 B2 A3 B3 A4 B4]
        assert_eq!(group4(&[1, 2, 3, 4, 5, 6, 7, 8]), [1, 5, 2, 6, 3, 7, 4, 8]);
    }

    #[test]
    fn header_limits_and_round_trip() {
        let h = ChunkHeader {
            compression: Compression::Lz4,
            compressed_len: 1000,
            uncompressed_len: MAX_CHUNK_BYTES,
        };
        assert_eq!(ChunkHeader::parse(&h.to_bytes()), Ok(h));
        let mut big = h;
        big.uncompressed_len = MAX_CHUNK_BYTES + 1;
        assert!(ChunkHeader::parse(&big.to_bytes())
            .unwrap_err()
            .contains("limit"));
        let mut b = h.to_bytes();
        b[0] = 1;
        assert!(ChunkHeader::parse(&b).unwrap_err().contains("version"));
        b = h.to_bytes();
        b[4] = 3;
        assert!(ChunkHeader::parse(&b).unwrap_err().contains("scheme"));
    }

    #[test]
    fn lz4_frames_decode_and_liars_are_caught() {
        use std::io::Write as _;
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
        enc.write_all(&data).unwrap();
        let frame = enc.finish().unwrap();
        let header = |len| ChunkHeader {
            compression: Compression::Lz4,
            compressed_len: frame.len() as u32,
            uncompressed_len: len,
        };
        let mut out = Vec::new();
        decode(&header(100_000), &frame, &mut out).unwrap();
        assert_eq!(out, data);
        assert!(decode(&header(99_999), &frame, &mut out).is_err());
        assert!(decode(&header(100_001), &frame, &mut out).is_err());
        assert!(decode(&header(100_000), &frame[..frame.len() - 1], &mut out).is_err());
        let mut two = frame.clone();
        two.extend_from_slice(&frame);
        assert!(decode(&header(100_000), &two, &mut out).is_err());
    }
}
