//! The sweep: removing the blobs and xorbs the mark found unreferenced, without ever
//! removing one a writer on any replica is about to reference. The protocol (claims,
//! announced batches with a deadline) is `store/claims.rs`; this holds the lease, feeds
//! candidates in batches and re-checks each one before its delete.

use super::Tally;
use crate::digest::Digest;
use crate::hf::xet_store::XetStore;
use crate::store::claims::{Batch, HeldLease, Sweeper};
use crate::store::layout::{blob_key, xet_xorb_key};
use crate::store::{ObjectKey, StoreError, Stores};
use crate::xet::MerkleHash;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::time::SystemTime;

/// Candidates announced together: a batch document of about 60 KiB that a writer
/// claiming one of them reads once.
const BATCH: usize = 500;
/// Deletes in flight at once (each a HEAD and a DELETE, on S3 a round trip each).
const CONCURRENCY: usize = 8;

#[derive(Clone, Debug)]
pub enum Item {
    Blob(Digest),
    Xorb(MerkleHash),
}

impl Item {
    /// Where its bytes are stored: the key a batch announces and claims name.
    fn key(&self) -> ObjectKey {
        match self {
            Item::Blob(digest) => blob_key(digest),
            Item::Xorb(hash) => xet_xorb_key(&hash.to_api_hex()).expect("hex keys are valid"),
        }
    }
}

/// What a sweep removed, and what it found reason to keep.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Swept {
    pub blobs: Tally,
    pub xorbs: Tally,
    /// Candidates a writer claimed (a push or commit naming them) while they were announced.
    pub claimed: u64,
    /// Candidates written again since the listing (the re-check before the delete).
    pub changed: u64,
    /// Candidates left for the next run: the batch deadline passed or the lease was lost.
    pub deferred: u64,
}

pub struct Sweep<'a> {
    stores: &'a Stores,
    xet: XetStore,
    lease: &'a HeldLease,
    sweeper: Sweeper,
    cutoff: SystemTime,
    pending: Vec<(ObjectKey, Item, u64)>,
    pub swept: Swept,
}

enum Outcome {
    Removed,
    Changed,
    Gone,
    Deferred,
}

impl<'a> Sweep<'a> {
    /// A sweep for a mark that began at `mark_started`, removing only what was last
    /// written before `cutoff`.
    pub fn new(
        stores: &'a Stores,
        lease: &'a HeldLease,
        mark_started: SystemTime,
        cutoff: SystemTime,
    ) -> Self {
        let repos = crate::hf::repo::Repos::new(stores.docs.clone(), stores.blobs.clone());
        Sweep {
            stores,
            xet: repos.xet().clone(),
            lease,
            sweeper: Sweeper::new(stores.store.clone(), mark_started),
            cutoff,
            pending: Vec::new(),
            swept: Swept::default(),
        }
    }

    pub async fn add(&mut self, item: Item, size: u64) -> anyhow::Result<()> {
        self.pending.push((item.key(), item, size));
        if self.pending.len() >= BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    /// Announces and sweeps what is pending.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        let pending = std::mem::take(&mut self.pending);
        if pending.is_empty() {
            return Ok(());
        }
        if !self.lease.held() {
            self.swept.deferred += pending.len() as u64;
            return Ok(());
        }
        let keys = pending.iter().map(|(k, _, _)| k.clone()).collect();
        let batch = self.sweeper.announce(keys).await?;
        self.swept.claimed += batch.claimed as u64;
        let allowed: HashSet<ObjectKey> = batch.keys.iter().cloned().collect();
        let jobs: Vec<(ObjectKey, Item, u64)> = pending
            .into_iter()
            .filter(|job| allowed.contains(&job.0))
            .collect();
        let this = &*self;
        let batch_ref = &batch;
        let outcomes: Vec<(Outcome, Item, u64)> =
            futures::stream::iter(jobs.into_iter().map(|(key, item, size)| async move {
                let outcome = this.remove(batch_ref, &key, &item).await;
                outcome.map(|o| (o, item, size))
            }))
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<_>>()?;
        let mut swept = self.swept;
        for (outcome, item, size) in outcomes {
            match (outcome, &item) {
                (Outcome::Removed, Item::Blob(_)) => swept.blobs.add(size),
                (Outcome::Removed, Item::Xorb(_)) => swept.xorbs.add(size),
                (Outcome::Changed, _) => swept.changed += 1,
                (Outcome::Deferred, _) => swept.deferred += 1,
                (Outcome::Gone, _) => {}
            }
        }
        self.swept = swept;
        self.sweeper.finish(batch).await?;
        tracing::info!(
            blobs = self.swept.blobs.count,
            xorbs = self.swept.xorbs.count,
            "sweeping"
        );
        Ok(())
    }

    /// Re-checks one candidate and deletes it, while the batch is open.
    async fn remove(&self, batch: &Batch, key: &ObjectKey, item: &Item) -> anyhow::Result<Outcome> {
        if !batch.open() || !self.lease.held() {
            return Ok(Outcome::Deferred);
        }
        let meta = match self.stores.store.head(key).await {
            Ok(meta) => meta,
            Err(StoreError::NotFound(_)) => return Ok(Outcome::Gone),
            Err(e) => return Err(e.into()),
        };
        if meta.last_modified.is_none_or(|t| t > self.cutoff) {
            return Ok(Outcome::Changed);
        }
        if !batch.open() {
            return Ok(Outcome::Deferred);
        }
        match item {
            Item::Blob(digest) => self.stores.blobs.delete(digest).await?,
            Item::Xorb(hash) => self
                .xet
                .remove_xorb(hash)
                .await
                .map_err(|e| anyhow::anyhow!("removing xorb {hash}: {}", e.message))?,
        }
        Ok(Outcome::Removed)
    }
}
