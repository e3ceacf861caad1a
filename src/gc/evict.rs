//! Pull-through eviction. The blobs only pull-through's copies of an upstream's items
//! reference (never one a push, upload or import here also names: `mark::LOCAL`) are a
//! cache: beyond `[gc] pull_through_budget` bytes the least recently read go first, and
//! those nobody read for `[gc] pull_through_unused_after` go anyway. Their documents
//! stay, so nothing listed disappears: the next read fetches the blob from the upstream
//! again. When a blob was last read comes from the access log (`store/access.rs`), or is
//! when it was stored.

use super::sweep::{Item, Sweep};
use super::{unix_secs, Options, Tally};
use crate::digest::Digest;
use crate::store::access;
use crate::store::Stores;
use std::collections::HashMap;
use std::time::SystemTime;

/// A blob only pull-through references: about 100 bytes each while the collection runs.
pub struct Cached {
    pub digest: Digest,
    pub size: u64,
    /// When it was stored, in unix seconds.
    pub stored: u64,
}

fn raw(digest: &Digest) -> Option<[u8; 32]> {
    let mut raw = [0u8; 32];
    hex::decode_to_slice(digest.hex(), &mut raw).ok()?;
    Some(raw)
}

/// Evicts (through `sweep`; a dry run has none and only counts) what the options say.
pub async fn run(
    stores: &Stores,
    options: &Options,
    mut cached: Vec<Cached>,
    sweep: Option<&mut Sweep<'_>>,
) -> anyhow::Result<Tally> {
    let (times, merged) = access::read_all(&stores.store).await?;
    let last = |c: &Cached| {
        raw(&c.digest)
            .and_then(|r| times.get(&r).copied())
            .unwrap_or(0)
            .max(c.stored)
    };
    cached.sort_by_key(|c| last(c));
    let now = unix_secs(SystemTime::now());
    let unused_before = options
        .pull_through_unused_after
        .map(|d| now.saturating_sub(d.as_secs()));
    let mut total: u64 = cached.iter().map(|c| c.size).sum();
    let mut chosen = Tally::default();
    let mut kept: HashMap<[u8; 32], u64> = HashMap::new();
    let mut victims = Vec::new();
    for c in &cached {
        let unused = unused_before.is_some_and(|before| last(c) < before);
        let over = options
            .pull_through_budget
            .is_some_and(|budget| total > budget);
        if unused || over {
            chosen.add(c.size);
            total -= c.size;
            victims.push(c);
        } else if let Some(r) = raw(&c.digest) {
            kept.insert(r, last(c));
        }
    }
    let Some(sweep) = sweep else {
        return Ok(chosen);
    };
    for c in victims {
        sweep.add(Item::Blob(c.digest.clone()), c.size).await?;
    }
    sweep.flush().await?;
    // One document of the times that still matter replaces the ones read.
    access::compact(&stores.store, &kept, &merged).await?;
    Ok(sweep.swept.blobs)
}
