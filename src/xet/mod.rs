//! The Xet formats (hashes, xorbs, shards, chunking) as a library that verifies what a
//! client uploads, below every protocol.
//!
//! Hugging Face clients since huggingface_hub 1.20 upload through Xet only: files are cut
//! into content-defined chunks, chunks are packed into xorbs (`POST /v1/xorbs/...`), and a
//! shard (`POST /v1/shards`) says which chunk ranges make up each file. Nothing here knows
//! HTTP or the store: the CAS routes and the Hub token routes build on these parsers, and
//! every byte they hand in is treated as hostile — bounded, linear, and checked against
//! hashes before anything is believed. The formats follow hub-docs `docs/xet/` and
//! xet-core (`xet_core_structures`), whose constants and tree shape are copied exactly.
//!
//! Why not depend on xet-core's crates (`xet-core-structures`, `xet-data` 1.8), as the
//! Xet issue asks unless a measured reason says otherwise? Two reasons, measured:
//! - Their parsers trust the counts they read. `MDBFileInfo::deserialize`
//!   (`metadata_shard/file_structs.rs`, xet-core af1a3ff9) calls
//!   `Vec::with_capacity(num_entries)` on the `u32` of a 48-byte file header: one header
//!   asks for up to 4.29e9 × 48 bytes (206 GB) before a single term is read, and a failed
//!   allocation aborts the whole server. A server parses hostile shards; these parsers
//!   were written for a client reading its own.
//! - With their dependencies they are 197 crates (`cargo tree`; `xet-core-structures`
//!   alone 169), 57 of them new to Airlock, among them reqwest 0.13 beside ours,
//!   `aws-lc-sys` (a second TLS and crypto stack, built from C) and `xet-runtime`: a
//!   second outbound HTTP stack in a gateway whose rule is one (`src/remote/`).
//!
//! So the formats are written here, bounded and streaming, and checked against fixtures
//! written by those crates (`tests/data/xet/README.md`) and their 18 Merkle vectors.

pub mod chunk;
pub mod chunking;
mod gear;
pub mod hash;
pub mod index;
pub mod shard;
pub mod shard_writer;
pub mod verify;
pub mod xorb;

#[cfg(test)]
mod testdata;

pub use chunking::Chunker;
pub use hash::MerkleHash;
pub use index::{decode_range, decode_range_unhashed, ChunkEntry, XorbIndex};
pub use shard::{parse_shard, FileInfo, Shard, Term, XorbInfo};
pub use shard_writer::{
    keyed_chunk_hash, parse_dedup_shard, write_dedup_shard, DedupShard, KeyedXorb,
};
pub use verify::{verify_file, verify_shard};
pub use xorb::{verify_xorb, XorbVerifier};

/// What is wrong with a client's Xet upload (or a stored index), in the client's terms:
/// the CAS layer renders these as the body of its 400 answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XetError {
    #[error("invalid Xet hash {0:?}: expected 64 hexadecimal characters")]
    InvalidHash(String),
    #[error("xorb is larger than the {max}-byte limit")]
    XorbTooLarge { max: u64 },
    #[error("xorb has more than the {max}-chunk limit")]
    TooManyChunks { max: usize },
    #[error("xorb holds no chunks")]
    EmptyXorb,
    #[error("xorb chunk {index}: {reason}")]
    BadChunk { index: usize, reason: String },
    #[error("xorb ends inside chunk {index} ({missing} more bytes expected)")]
    TruncatedChunk { index: usize, missing: u64 },
    #[error("xorb hash is {computed}, not {claimed} as named in the request")]
    XorbHashMismatch {
        claimed: MerkleHash,
        computed: MerkleHash,
    },
    #[error("xorb footer: {0}")]
    BadFooter(String),
    #[error("stored xorb index: {0}")]
    BadIndex(String),
    #[error("shard is larger than the {max}-byte limit")]
    ShardTooLarge { max: u64 },
    #[error("shard: {0}")]
    BadShard(String),
    #[error("shard references xorb {0}, which is neither in the shard nor uploaded")]
    UnknownXorb(MerkleHash),
    #[error("file {file}: {reason}")]
    BadFile { file: MerkleHash, reason: String },
}
