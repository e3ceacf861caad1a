//! Global chunk deduplication for Airlock's Xet CAS: which stored xorb holds a chunk, and
//! the answer to hf_xet's `GET /v1/chunks/{default,default-merkledb}/{chunk}`.
//!
//! hf_xet (xet-data 1.8 `deduplication/file_deduplication.rs`) asks about the first chunk
//! of every file and every chunk whose hash is 0 mod 1024, and dedups the rest of the
//! file against the xorbs the answer describes. So a client with a cold cache (another
//! machine) uploads only what changed, provided the CAS indexes those chunks: a xorb's
//! first chunk and its 0-mod-1024 chunks when it is stored, each uploaded file's first
//! chunk when its shard is. About one small document per 64 MiB.
//!
//! Trust: an answer names a xorb and the (keyed) hashes of its chunks, so it goes only to
//! a token whose credential may read a repository the xorb was uploaded for, by the same
//! rule as the Hub's reads (private, gated). Chunk hashes are HMAC'd under a fresh key per
//! answer (`xet::shard_writer`): a client matches the chunks it has, learns nothing of
//! the others, and still proves possession of every range it reuses through the term
//! verification hashes of its shard (`xet::verify`).

use super::access::{may_read_gated_files, repo_access, RepoAccess};
use super::cas_token::CasGrant;
use super::model::{RepoRef, RepoType};
use super::xet_store::XetStore;
use super::{HfError, HfState};
use crate::auth::Identity;
use crate::store::layout::{xet_dedup_prefix, xet_xorb_repos_prefix, MetaKey};
use crate::store::{DocStore, Mutability, PutMode};
use crate::xet::{self, KeyedXorb, MerkleHash, XorbIndex};
use bytes::Bytes;

/// xet-core's `MDB_SHARD_GLOBAL_DEDUP_CHUNK_MODULUS`: a chunk is eligible when its hash's
/// last little-endian word is 0 mod this.
const ELIGIBLE_MODULUS: u64 = 1024;
/// Xorbs holding one chunk considered per query (several tenants may each hold it).
const MAX_CANDIDATES: usize = 16;
/// Repositories considered per xorb.
const MAX_REPOS_PER_XORB: usize = 64;
/// A file's other xorbs described with its first chunk: 2 GiB of full xorbs.
const MAX_SIBLINGS: usize = 31;
/// Chunks described in one answer (about 64 bytes each in the shard).
const MAX_ANSWER_CHUNKS: usize = 32 * 1024;
/// How long the client keeps an answer in its shard cache.
const ANSWER_TTL_SECS: u64 = 3600;

/// Whether hf_xet asks global dedup about this chunk wherever it occurs in a file
/// (xet-core `hash_is_global_dedup_eligible`).
pub fn is_eligible(chunk: &MerkleHash) -> bool {
    let last = u64::from_le_bytes(chunk.0[24..].try_into().expect("8 bytes"));
    last % ELIGIBLE_MODULUS == 0
}

/// Indexes a newly stored xorb: its first chunk (where a file uploaded alone starts) and
/// its eligible chunks. Called by `XetStore::put_xorb` after the xorb's index.
pub async fn record_xorb(docs: &DocStore, index: &XorbIndex) -> Result<(), HfError> {
    let eligible = index
        .chunks
        .iter()
        .enumerate()
        .filter(|(i, c)| *i == 0 || is_eligible(&c.hash))
        .map(|(_, c)| c.hash);
    for chunk in eligible {
        record_chunk(docs, &chunk, &index.hash).await?;
    }
    Ok(())
}

/// Records that a writer of `repo` uploaded the stored xorb `xorb` (the CAS does, for
/// the repository of the write token; an importer does, for the repository it imports).
pub async fn record_upload(
    xet: &XetStore,
    xorb: &MerkleHash,
    repo: &RepoRef,
) -> Result<(), HfError> {
    let key = MetaKey::XetXorbRepo {
        xorb: xorb.to_api_hex(),
        kind: repo.kind.plural().to_string(),
        id: repo.id.clone(),
    };
    put_marker(xet.docs(), key).await
}

/// Indexes the first chunk of each file of an accepted shard (hf_xet asks about it, and
/// a file packed after others starts inside a xorb), with the file's other xorbs: the
/// answer for the first chunk describes them too, as the Hub's answers carry the whole
/// shard, so a new revision of a file of many xorbs dedups against all of them even
/// where no chunk of theirs is 0 mod 1024.
pub async fn record_file_starts(hf: &HfState, shard: Bytes) -> Result<(), HfError> {
    let shard = tokio::task::spawn_blocking(move || {
        xet::parse_shard(std::io::Cursor::new(shard), xet::shard::MAX_SHARD_BYTES)
    })
    .await
    .map_err(|e| crate::store::StoreError::Unavailable(format!("shard parser: {e}")))?
    .map_err(|e| HfError::bad_request(e.to_string()))?;
    for file in &shard.files {
        let Some(first) = file.terms.first() else {
            continue;
        };
        let Some(index) = hf.xet.xorb_index(&first.xorb).await? else {
            continue;
        };
        let Some(chunk) = index.chunks.get(first.chunks.start as usize) else {
            continue;
        };
        let mut siblings: Vec<String> = Vec::new();
        for term in &file.terms {
            let hex = term.xorb.to_api_hex();
            if term.xorb != first.xorb && !siblings.contains(&hex) {
                siblings.push(hex);
            }
            if siblings.len() == MAX_SIBLINGS {
                break;
            }
        }
        let body = serde_json::to_vec(&siblings).expect("serializable");
        let key = MetaKey::XetDedupChunk {
            chunk: chunk.hash.to_api_hex(),
            xorb: first.xorb.to_api_hex(),
        };
        hf.xet
            .docs()
            .put(
                &key.key()?,
                Bytes::from(body),
                PutMode::Overwrite,
                Mutability::Mutable,
            )
            .await?;
    }
    Ok(())
}

async fn record_chunk(
    docs: &DocStore,
    chunk: &MerkleHash,
    xorb: &MerkleHash,
) -> Result<(), HfError> {
    let key = MetaKey::XetDedupChunk {
        chunk: chunk.to_api_hex(),
        xorb: xorb.to_api_hex(),
    }
    .key()?;
    // The xorb was just stored, so no shard has named it yet: no file start recorded
    // with its siblings can be overwritten here.
    docs.put(&key, Bytes::new(), PutMode::Overwrite, Mutability::Mutable)
        .await?;
    Ok(())
}

async fn put_marker(docs: &DocStore, key: MetaKey) -> Result<(), HfError> {
    // Idempotent: rewriting an empty marker is one small put, cheaper than asking first.
    docs.put(
        &key.key()?,
        Bytes::new(),
        PutMode::Overwrite,
        Mutability::Immutable,
    )
    .await?;
    Ok(())
}

/// The answer to `GET /v1/chunks/{prefix}/{chunk}`: a keyed shard describing a stored
/// xorb that holds the chunk and that the token's credential may read, or `None` ("not
/// tracked", 404) — the same whether the chunk is unknown or only in xorbs the caller
/// may not read.
pub async fn answer(
    hf: &HfState,
    grant: &CasGrant,
    chunk: &MerkleHash,
) -> Result<Option<Vec<u8>>, HfError> {
    let xorbs = readable_xorbs(hf, grant, chunk).await?;
    if xorbs.is_empty() {
        return Ok(None);
    }
    let key = loop {
        let key = MerkleHash(rand::random());
        if key != MerkleHash::ZERO {
            break key;
        }
    };
    let now = super::cas::unix_now();
    let keyed: Vec<KeyedXorb> = xorbs
        .iter()
        .map(|index| KeyedXorb {
            index,
            bytes_on_disk: u32::try_from(index.chunk_bytes()).unwrap_or(u32::MAX),
        })
        .collect();
    Ok(Some(xet::write_dedup_shard(
        &keyed,
        &key,
        now,
        now + ANSWER_TTL_SECS,
    )))
}

/// The indexes of the first stored xorb holding `chunk` that `grant` may read and, when
/// the chunk starts an uploaded file, of the file's other xorbs it may read.
async fn readable_xorbs(
    hf: &HfState,
    grant: &CasGrant,
    chunk: &MerkleHash,
) -> Result<Vec<XorbIndex>, HfError> {
    let identity = match &grant.principal {
        None => Identity::Anonymous,
        Some(name) => match hf.auth.identity_named(name) {
            Some(identity) => identity,
            None => return Ok(Vec::new()),
        },
    };
    let prefix = xet_dedup_prefix(&chunk.to_api_hex());
    let page = hf
        .xet
        .store()
        .list_keys(&prefix, None, MAX_CANDIDATES)
        .await?;
    for key in page.keys {
        let Some(MetaKey::XetDedupChunk { xorb, .. }) = MetaKey::parse(key.as_str()) else {
            continue;
        };
        let Ok(xorb) = xorb.parse::<MerkleHash>() else {
            continue;
        };
        if !may_read_xorb(hf, grant, &identity, &xorb).await? {
            continue;
        }
        let Some(index) = hf.xet.xorb_index(&xorb).await? else {
            continue;
        };
        // Never offer a xorb a collection removed: the shard naming it would be refused.
        if !hf.xet.xorb_stored(&xorb).await? {
            continue;
        }
        let mut chunks = index.chunks.len();
        let mut found = vec![index];
        let marker = hf.xet.docs().get(&key, Mutability::Mutable).await?;
        let siblings: Vec<String> = marker
            .and_then(|doc| serde_json::from_slice(&doc.bytes).ok())
            .unwrap_or_default();
        for sibling in siblings.iter().take(MAX_SIBLINGS) {
            let Ok(sibling) = sibling.parse::<MerkleHash>() else {
                continue;
            };
            if chunks >= MAX_ANSWER_CHUNKS || !may_read_xorb(hf, grant, &identity, &sibling).await?
            {
                continue;
            }
            if let Some(index) = hf.xet.xorb_index(&sibling).await? {
                if !hf.xet.xorb_stored(&sibling).await? {
                    continue;
                }
                chunks += index.chunks.len();
                found.push(index);
            }
        }
        return Ok(found);
    }
    Ok(Vec::new())
}

/// Whether the xorb was uploaded for a repository `identity` may read the files of.
async fn may_read_xorb(
    hf: &HfState,
    grant: &CasGrant,
    identity: &Identity,
    xorb: &MerkleHash,
) -> Result<bool, HfError> {
    let prefix = xet_xorb_repos_prefix(&xorb.to_api_hex());
    let page = hf
        .xet
        .store()
        .list_keys(&prefix, None, MAX_REPOS_PER_XORB)
        .await?;
    let repos: Vec<RepoRef> = page
        .keys
        .iter()
        .filter_map(|key| match MetaKey::parse(key.as_str())? {
            MetaKey::XetXorbRepo { kind, id, .. } => {
                RepoRef::new(RepoType::from_plural(&kind)?, &id)
            }
            _ => None,
        })
        .collect();
    // The token's own repository was checked when the token was: no document to read.
    if repos.contains(&grant.repo) {
        return Ok(true);
    }
    for repo in repos {
        let Some(doc) = hf.repos.repo(&repo).await? else {
            continue;
        };
        let visible = repo_access(&hf.auth, identity, &repo, &doc) == RepoAccess::Granted;
        if visible && (!doc.gated || may_read_gated_files(&hf.auth, identity, &repo)) {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eligibility_is_xet_cores_last_word_rule() {
        let mut h = MerkleHash([0xAB; 32]);
        h.0[24..].copy_from_slice(&(7u64 * 1024).to_le_bytes());
        assert!(is_eligible(&h));
        h.0[24..].copy_from_slice(&(7u64 * 1024 + 1).to_le_bytes());
        assert!(!is_eligible(&h));
        // Only the last word counts (xet-core `impl Rem<u64> for DataHash`: `self[3]`).
        let mut first = MerkleHash::ZERO;
        first.0[0] = 1;
        assert!(is_eligible(&first));
    }
}
