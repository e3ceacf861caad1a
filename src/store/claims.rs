//! Claims and sweep batches: how a writer about to reference stored content and a
//! collector about to delete content nothing references agree, without locks, whether
//! they run in one process or on replicas sharing a bucket.
//!
//! A writer about to publish a reference to content it did not just write (a manifest
//! naming layers pushed last month, a commit naming an LFS object by oid, a shard reusing
//! stored xorbs, a put of a blob that is already stored) calls [`claim`] first:
//! 1. it writes `gc/claims/<ms>-<random>.json` listing the keys;
//! 2. it lists `gc/sweeps/`: a batch there naming one of its keys means a collector may be
//!    deleting it right now, so it waits until that batch is over (its document removed,
//!    or its deadline passed);
//! 3. it checks that every key is in the store, and publishes only if all are (otherwise
//!    it answers in its protocol's words: upload it again).
//!
//! The collector, for each batch of candidates (`gc/sweep.rs`):
//! 1. writes `gc/sweeps/batch-<ms>-<random>.json` listing them, with a deadline;
//! 2. lists the claims written since its mark began (less [`CLAIM_LIFETIME`]) and drops
//!    every candidate one of them names;
//! 3. deletes the rest, none after the deadline, then removes the batch document.
//!
//! Whichever of the two writes first, the other's listing sees it (listings are
//! read-after-write consistent on a directory, on S3 and on Garage): either the collector
//! spares the claimed key, or the writer waits out the batch and finds the key gone. A
//! reference published before the mark read its document is marked; one published after
//! was claimed within [`CLAIM_LIFETIME`] before, so the collector reads its claim. No
//! write happens on a download, and a writer pays one small write and one listing.

use super::layout::{MetaKey, GC_CLAIMS_PREFIX, GC_SWEEPS_PREFIX};
use super::{bytes_stream, collect_limited, DynStore, ObjectKey, PutMode, PutOptions};
use super::{Result, StoreError};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

/// A writer publishes its reference within this long of its claim (in practice within
/// milliseconds: the claim is the last step before the publishing write). The collector
/// honours claims this much older than the start of its mark.
pub const CLAIM_LIFETIME: Duration = Duration::from_secs(600);
/// A collector deletes nothing of a batch after its deadline, this long after announcing it.
pub const BATCH_DEADLINE: Duration = Duration::from_secs(60);
/// The collector stops deleting this long before the deadline (a delete in flight must
/// land before it), and a writer waits this long after it (clocks of replicas differ).
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(10);
/// Keys per claim document (a commit of many files writes several).
const KEYS_PER_DOCUMENT: usize = 2000;
/// Bounds on what is read back: a claim or batch document, a listing of batches.
const MAX_DOCUMENT: usize = 1 << 20;
const MAX_BATCHES_LISTED: usize = 100;
const POLL: Duration = Duration::from_millis(250);

#[derive(Serialize, Deserialize)]
struct ClaimDoc {
    keys: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct BatchDoc {
    /// Unix milliseconds after which the collector deletes nothing of `keys`.
    deadline_ms: u64,
    keys: Vec<String>,
}

pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn random_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn key_of(meta: MetaKey) -> ObjectKey {
    meta.key().expect("gc keys are valid")
}

async fn put_json(store: &DynStore, key: &ObjectKey, value: &impl Serialize) -> Result<()> {
    let bytes = serde_json::to_vec(value).expect("serializable");
    store
        .put(key, bytes_stream(bytes), PutOptions::default())
        .await?;
    Ok(())
}

/// Reads a small JSON document; `None` when it is gone or unreadable (a document of a
/// newer version, a torn write cannot happen: puts publish whole).
async fn get_json<T: serde::de::DeserializeOwned>(
    store: &DynStore,
    key: &ObjectKey,
) -> Result<Option<T>> {
    let got = match store.get(key, Default::default()).await {
        Ok(got) => got,
        Err(StoreError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let bytes = collect_limited(got.body, MAX_DOCUMENT)
        .await
        .map_err(|e| StoreError::Unavailable(format!("reading {key}: {e}")))?;
    Ok(serde_json::from_slice(&bytes).ok())
}

/// A writer's claim on stored keys, held until its reference is published.
#[must_use = "release the claim once the reference is published"]
pub struct Claim {
    store: DynStore,
    docs: Vec<ObjectKey>,
    /// The claimed keys the store does not hold: removed before the claim, or never stored.
    pub missing: Vec<ObjectKey>,
}

impl Claim {
    /// Drops the claim once the reference it guarded is published (or abandoned). Its
    /// documents are removed only while no collection holds the lease: a collection that
    /// takes it later marks after the publication, while one holding it now may have read
    /// the referencing document before it changed, and must still see the claim (it
    /// removes the claims itself once no collection can need them).
    pub async fn release(self) {
        if self.docs.is_empty() {
            return;
        }
        let outcome = async {
            if lease_present(&self.store).await? {
                return Ok(());
            }
            for doc in &self.docs {
                self.store.delete(doc).await?;
            }
            Ok::<_, StoreError>(())
        };
        if let Err(e) = outcome.await {
            tracing::warn!(error = %e, "a claim stays in gc/claims/ until the next collection removes it");
        }
    }
}

async fn lease_present(store: &DynStore) -> Result<bool> {
    match store.head(&key_of(MetaKey::GcLease)).await {
        Ok(_) => Ok(true),
        Err(StoreError::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Claims `keys` (see the module comment). The caller publishes its reference only when
/// none is missing (or stores those first), then releases the claim.
pub async fn claim(store: &DynStore, keys: &[ObjectKey]) -> Result<Claim> {
    let mut claim = Claim {
        store: store.clone(),
        docs: Vec::new(),
        missing: Vec::new(),
    };
    if keys.is_empty() {
        return Ok(claim);
    }
    let at_ms = unix_ms(SystemTime::now());
    for part in keys.chunks(KEYS_PER_DOCUMENT) {
        let doc = ClaimDoc {
            keys: part.iter().map(|k| k.as_str().to_string()).collect(),
        };
        let key = key_of(MetaKey::GcClaim {
            at_ms,
            id: random_id(),
        });
        put_json(store, &key, &doc).await?;
        claim.docs.push(key);
    }
    wait_for_sweeps(store, keys).await?;
    let checks = keys.iter().cloned().map(|key| {
        let store = store.clone();
        async move {
            match store.head(&key).await {
                Ok(_) => Ok(None),
                Err(StoreError::NotFound(_)) => Ok(Some(key)),
                Err(e) => Err(e),
            }
        }
    });
    let missing: Vec<Option<ObjectKey>> = futures::stream::iter(checks)
        .buffer_unordered(16)
        .try_collect()
        .await?;
    claim.missing = missing.into_iter().flatten().collect();
    Ok(claim)
}

/// Waits until no batch in progress names one of `keys`. Bounded: a batch is over at its
/// deadline even when the collector died before removing it.
async fn wait_for_sweeps(store: &DynStore, keys: &[ObjectKey]) -> Result<()> {
    let wanted: HashSet<String> = keys.iter().map(|k| k.as_str().to_string()).collect();
    let mut read: HashMap<ObjectKey, Option<u64>> = HashMap::new();
    loop {
        let page = store
            .list(GC_SWEEPS_PREFIX, None, MAX_BATCHES_LISTED)
            .await?;
        let now = unix_ms(SystemTime::now());
        let mut wait_until = None;
        for meta in page.objects {
            if !matches!(
                MetaKey::parse(meta.key.as_str()),
                Some(MetaKey::GcSweepBatch { .. })
            ) {
                continue;
            }
            if !read.contains_key(&meta.key) {
                let doc: Option<BatchDoc> = get_json(store, &meta.key).await?;
                let deadline = doc
                    .filter(|d| names_any(d, &wanted))
                    .map(|d| d.deadline_ms + DEADLINE_MARGIN.as_millis() as u64);
                read.insert(meta.key.clone(), deadline);
            }
            if let Some(deadline) = read[&meta.key].filter(|d| *d > now) {
                wait_until = wait_until.max(Some(deadline));
            }
        }
        let Some(until) = wait_until else {
            return Ok(());
        };
        tracing::debug!(
            wait_ms = until.saturating_sub(now),
            "a collection is deleting a key this write claims; waiting for its batch"
        );
        tokio::time::sleep(POLL.min(Duration::from_millis(until - now))).await;
    }
}

fn names_any(batch: &BatchDoc, keys: &HashSet<String>) -> bool {
    batch.keys.iter().any(|k| keys.contains(k))
}

/// The collector's side: announces batches and drops what writers claimed.
pub struct Sweeper {
    store: DynStore,
    /// Claims named before this key are too old to matter.
    honoured_from: String,
    /// Claim documents already read, and the keys they name.
    read: HashSet<ObjectKey>,
    claimed: HashSet<String>,
}

/// One announced batch: the keys that may be deleted, until the deadline.
pub struct Batch {
    doc: ObjectKey,
    pub keys: Vec<ObjectKey>,
    /// How many candidates a claim saved.
    pub claimed: usize,
    stop_at: SystemTime,
}

impl Batch {
    /// Whether a delete may still be sent.
    pub fn open(&self) -> bool {
        SystemTime::now() < self.stop_at
    }
}

impl Sweeper {
    /// A sweeper whose mark began at `mark_started`.
    pub fn new(store: DynStore, mark_started: SystemTime) -> Sweeper {
        let from = mark_started
            .checked_sub(CLAIM_LIFETIME)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        Sweeper {
            store,
            honoured_from: format!("{GC_CLAIMS_PREFIX}{:013}", unix_ms(from)),
            read: HashSet::new(),
            claimed: HashSet::new(),
        }
    }

    /// Announces `candidates` and returns the batch of those no claim names.
    pub async fn announce(&mut self, candidates: Vec<ObjectKey>) -> Result<Batch> {
        let started = SystemTime::now();
        let deadline = started + BATCH_DEADLINE;
        let doc = key_of(MetaKey::GcSweepBatch {
            at_ms: unix_ms(started),
            id: random_id(),
        });
        let body = BatchDoc {
            deadline_ms: unix_ms(deadline),
            keys: candidates.iter().map(|k| k.as_str().to_string()).collect(),
        };
        put_json(&self.store, &doc, &body).await?;
        self.read_claims().await?;
        let before = candidates.len();
        let keys: Vec<ObjectKey> = candidates
            .into_iter()
            .filter(|k| !self.claimed.contains(k.as_str()))
            .collect();
        Ok(Batch {
            doc,
            claimed: before - keys.len(),
            keys,
            stop_at: deadline - DEADLINE_MARGIN,
        })
    }

    /// Ends a batch: writers waiting on it go on.
    pub async fn finish(&self, batch: Batch) -> Result<()> {
        self.store.delete(&batch.doc).await
    }

    async fn read_claims(&mut self) -> Result<()> {
        let mut after = Some(self.honoured_from.clone());
        loop {
            let page = self
                .store
                .list(GC_CLAIMS_PREFIX, after.as_deref(), 1000)
                .await?;
            for meta in page.objects {
                if self.read.contains(&meta.key) {
                    continue;
                }
                if let Some(doc) = get_json::<ClaimDoc>(&self.store, &meta.key).await? {
                    self.claimed.extend(doc.keys);
                }
                self.read.insert(meta.key);
            }
            match page.next_start_after {
                Some(next) => after = Some(next),
                None => return Ok(()),
            }
        }
    }
}

/// Removes the claims older than `before` (no collection honours them any more); how
/// many that was.
pub async fn remove_stale_claims(store: &DynStore, before: SystemTime) -> Result<u64> {
    let mut removed = 0;
    let limit = format!("{GC_CLAIMS_PREFIX}{:013}", unix_ms(before));
    loop {
        let page = store.list_keys(GC_CLAIMS_PREFIX, None, 1000).await?;
        let old: Vec<ObjectKey> = page
            .keys
            .into_iter()
            .take_while(|k| k.as_str() < limit.as_str())
            .collect();
        let done = old.len() < 1000 || page.next_start_after.is_none();
        for key in &old {
            store.delete(key).await?;
        }
        removed += old.len() as u64;
        if done {
            return Ok(removed);
        }
    }
}

/// Removes the batches a previous collection left behind (it died, or lost the lease),
/// for the collection that holds the lease now: a collection deletes nothing without the
/// lease, so those batches are over, and writers waiting on them may go on.
pub async fn clear_abandoned_batches(store: &DynStore) -> Result<u64> {
    let mut removed = 0;
    let page = store
        .list(GC_SWEEPS_PREFIX, None, MAX_BATCHES_LISTED)
        .await?;
    for meta in page.objects {
        if let Some(MetaKey::GcSweepBatch { .. }) = MetaKey::parse(meta.key.as_str()) {
            store.delete(&meta.key).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The one collector allowed to delete, held in `gc/sweeps/lease.json` and renewed while
/// it works. A collector that died holds it until it expires, unless it ran on this
/// host and its process is gone.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct LeaseDoc {
    pub host: String,
    pub pid: u32,
    /// Unix milliseconds.
    pub expires_ms: u64,
}

pub const LEASE_TTL: Duration = Duration::from_secs(120);

pub struct Lease {
    store: DynStore,
    etag: String,
    doc: LeaseDoc,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("another collection holds the lease ({host}, pid {pid}) until {until}; run again after it ends")]
    Held {
        host: String,
        pid: u32,
        until: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

fn process_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

impl Lease {
    /// Takes the lease, or says who holds it.
    pub async fn take(store: DynStore) -> std::result::Result<Lease, LeaseError> {
        let key = key_of(MetaKey::GcLease);
        let doc = LeaseDoc {
            host: this_host(),
            pid: std::process::id(),
            expires_ms: unix_ms(SystemTime::now() + LEASE_TTL),
        };
        let bytes = serde_json::to_vec(&doc).expect("serializable");
        let mode = match store.head(&key).await {
            Err(StoreError::NotFound(_)) => PutMode::Create,
            Err(e) => return Err(e.into()),
            Ok(meta) => {
                let held: Option<LeaseDoc> = get_json(&store, &key).await?;
                match held {
                    Some(h)
                        // Held while unexpired, unless its holder ran here and is gone.
                        if h.expires_ms > unix_ms(SystemTime::now())
                            && (h.host != doc.host || process_alive(h.pid)) =>
                    {
                        let until = SystemTime::UNIX_EPOCH + Duration::from_millis(h.expires_ms);
                        return Err(LeaseError::Held {
                            host: h.host,
                            pid: h.pid,
                            until: humantime::format_rfc3339_seconds(until).to_string(),
                        });
                    }
                    _ => PutMode::Update(meta.etag),
                }
            }
        };
        let put = store
            .put(
                &key,
                bytes_stream(bytes),
                PutOptions {
                    mode,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| match e {
                StoreError::PreconditionFailed(_) => LeaseError::Held {
                    host: "another replica".into(),
                    pid: 0,
                    until: "it ends".into(),
                },
                e => e.into(),
            })?;
        Ok(Lease {
            store,
            etag: put.etag,
            doc,
        })
    }

    /// Keeps the lease renewed in the background until [`HeldLease::release`].
    pub fn keep(self) -> HeldLease {
        use std::sync::atomic::{AtomicU64, Ordering};
        // Deletes stop a margin before the expiry last written, whatever the renewals do
        // (a process paused past its lease must not resume deleting).
        let valid_until = std::sync::Arc::new(AtomicU64::new(
            self.doc.expires_ms - DEADLINE_MARGIN.as_millis() as u64,
        ));
        let lease = std::sync::Arc::new(tokio::sync::Mutex::new(self));
        let task = {
            let (valid_until, lease) = (valid_until.clone(), lease.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LEASE_TTL / 4).await;
                    let mut lease = lease.lock().await;
                    match lease.renew().await {
                        Ok(()) => valid_until.store(
                            lease.doc.expires_ms - DEADLINE_MARGIN.as_millis() as u64,
                            Ordering::SeqCst,
                        ),
                        Err(e) => {
                            tracing::warn!(error = %e, "the collection lost its lease; it stops deleting");
                            valid_until.store(0, Ordering::SeqCst);
                            return;
                        }
                    }
                }
            })
        };
        HeldLease {
            valid_until,
            lease,
            task,
        }
    }

    /// Extends the lease; an error means it was lost (taken over after it expired).
    async fn renew(&mut self) -> Result<()> {
        self.doc.expires_ms = unix_ms(SystemTime::now() + LEASE_TTL);
        let bytes = serde_json::to_vec(&self.doc).expect("serializable");
        let put = self
            .store
            .put(
                &key_of(MetaKey::GcLease),
                bytes_stream(bytes),
                PutOptions {
                    mode: PutMode::Update(self.etag.clone()),
                    ..Default::default()
                },
            )
            .await?;
        self.etag = put.etag;
        Ok(())
    }
}

/// A lease renewed in the background.
pub struct HeldLease {
    /// Unix milliseconds.
    valid_until: std::sync::Arc<std::sync::atomic::AtomicU64>,
    lease: std::sync::Arc<tokio::sync::Mutex<Lease>>,
    task: tokio::task::JoinHandle<()>,
}

impl HeldLease {
    /// Whether this collection still holds the lease (and may delete).
    pub fn held(&self) -> bool {
        unix_ms(SystemTime::now()) < self.valid_until.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub async fn release(self) -> Result<()> {
        self.task.abort();
        let lease = self.lease.lock().await;
        // Only our own lease: a takeover after expiry changed the etag.
        if let Ok(meta) = lease.store.head(&key_of(MetaKey::GcLease)).await {
            if meta.etag == lease.etag {
                lease.store.delete(&meta.key).await?;
            }
        }
        Ok(())
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        self.task.abort();
    }
}
