//! A lock shared by every Airlock process on one bucket, for S3 servers that ignore
//! conditional writes (Garage): what makes `PutMode::Create`/`Update` safe across replicas.
//!
//! Each contender for a key puts an entry `.airlock-locks/<hash of key>/<random>` and then
//! lists that folder. It goes ahead only when its own entry is the only one there. S3
//! listings are strongly consistent after a write (AWS, MinIO, Ceph RGW and Garage alike),
//! so of two contenders the one that wrote later lists after the other's entry exists and
//! sees it: at most one ever sees itself alone, with no timing assumption. No server-side
//! compare-and-swap is needed, only put, list and delete.
//!
//! When contenders see each other, the one with the lowest entry name keeps its entry and
//! lists again; the others take theirs back and retry after a random pause. So someone
//! always goes ahead, and an uncontended lock costs one put, one list and one delete.
//!
//! A process that dies holding an entry would block the key forever, so entries expire:
//! one older by more than the lease than the lister's own (both times by the server's clock, from
//! the listing) is removed. A holder therefore gives up rather than publish once half the
//! lease has gone by on its own clock.

use super::{error_chain, system_time, ObjectKey, Result, StoreError};
use aws_sdk_s3::Client;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant, SystemTime};

/// Under the store prefix. The leading `.` keeps it out of listings: no `ObjectKey` has one.
const LOCK_DIR: &str = ".airlock-locks";
/// After this long (by the server's clock) an entry is taken to belong to a dead process.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(20);

pub(super) struct BucketLocks {
    client: Client,
    bucket: String,
    /// `<store prefix>.airlock-locks/`
    dir: String,
    lease: Duration,
}

/// A lock this process holds. Dropping it gives it back (in a spawned task, so a request
/// cancelled half-way does not leave the key blocked until the entry expires).
pub(super) struct HeldLock {
    client: Client,
    bucket: String,
    entry: String,
    taken: Instant,
    lease: Duration,
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        if self.entry.is_empty() {
            return;
        }
        let (client, bucket, entry) = (
            self.client.clone(),
            self.bucket.clone(),
            std::mem::take(&mut self.entry),
        );
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { remove(&client, &bucket, &entry).await });
        }
    }
}

impl HeldLock {
    /// Whether the holder may still publish: well inside the lease, so no other process
    /// can have expired the entry yet.
    pub(super) fn still_valid(&self) -> bool {
        self.taken.elapsed() < self.lease / 2
    }

    /// Gives the lock back and waits for that, so the next writer does not meet our entry.
    pub(super) async fn release(mut self) {
        let entry = std::mem::take(&mut self.entry);
        remove(&self.client, &self.bucket, &entry).await;
    }
}

impl BucketLocks {
    pub(super) fn new(client: Client, bucket: String, base: &str, lease: Duration) -> BucketLocks {
        BucketLocks {
            client,
            bucket,
            dir: format!("{base}{LOCK_DIR}/"),
            lease,
        }
    }

    /// How long a contender waits before answering "unavailable": longer than the lease,
    /// so a lock left by a dead process is always recovered within it.
    fn acquire_timeout(&self) -> Duration {
        self.lease * 2 + Duration::from_secs(5)
    }

    /// Takes the lock for `s3_key` (any string naming what is protected).
    pub(super) async fn acquire(&self, key: &ObjectKey, s3_key: &str) -> Result<HeldLock> {
        let folder = format!(
            "{}{}/",
            self.dir,
            hex::encode(&Sha256::digest(s3_key.as_bytes())[..16])
        );
        let deadline = Instant::now() + self.acquire_timeout();
        let mut pause = Duration::from_millis(4);
        loop {
            let entry = format!("{folder}{}", hex::encode(rand::random::<[u8; 12]>()));
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&entry)
                .body(Bytes::new().into())
                .send()
                .await
                .map_err(|e| self.unavailable(key, &e))?;
            let taken = Instant::now();
            // Keep the entry while ours is the lowest, waiting for the others to go.
            loop {
                match self.look(key, &folder, &entry).await {
                    Ok(Standing::Alone) => {
                        return Ok(HeldLock {
                            client: self.client.clone(),
                            bucket: self.bucket.clone(),
                            entry,
                            taken,
                            lease: self.lease,
                        })
                    }
                    Ok(Standing::Lowest) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Ok(_) => break,
                    Err(e) => {
                        self.remove(&entry).await;
                        return Err(e);
                    }
                }
            }
            self.remove(&entry).await;
            if Instant::now() >= deadline {
                return Err(StoreError::Unavailable(format!(
                    "{key}: another Airlock process has held its write lock for over {}s; \
                     retry, or check for a replica stuck writing to this bucket",
                    self.acquire_timeout().as_secs()
                )));
            }
            // Jitter so that contenders that saw each other do not meet again.
            let jitter = rand::random_range(0..=pause.as_millis() as u64);
            tokio::time::sleep(pause + Duration::from_millis(jitter)).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// Lists the key's folder and says where our entry stands, removing expired ones.
    async fn look(&self, key: &ObjectKey, folder: &str, entry: &str) -> Result<Standing> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(folder)
            .send()
            .await
            .map_err(|e| self.unavailable(key, &e))?;
        let entries: Vec<(String, Option<SystemTime>)> = out
            .contents
            .unwrap_or_default()
            .into_iter()
            .filter_map(|o| Some((o.key?, system_time(o.last_modified.as_ref()))))
            .collect();
        let Some(ours) = entries.iter().find(|(k, _)| k == entry).map(|(_, t)| *t) else {
            // Someone took ours for expired: we were too slow. Start again.
            return Ok(Standing::Lost);
        };
        let mut others = Vec::new();
        for (other, written) in entries.iter().filter(|(k, _)| k != entry) {
            let expired = match (ours, written) {
                (Some(ours), Some(written)) => ours
                    .duration_since(*written)
                    .is_ok_and(|age| age > self.lease),
                _ => false,
            };
            if expired {
                tracing::warn!(%key, entry = %other, "removing an expired write lock left by another Airlock process");
                self.remove(other).await;
            } else {
                others.push(other.as_str());
            }
        }
        Ok(if others.is_empty() {
            Standing::Alone
        } else if others.iter().all(|other| entry < *other) {
            Standing::Lowest
        } else {
            Standing::Behind
        })
    }

    async fn remove(&self, entry: &str) {
        remove(&self.client, &self.bucket, entry).await
    }

    fn unavailable(&self, key: &ObjectKey, err: &(dyn std::error::Error + 'static)) -> StoreError {
        StoreError::Unavailable(format!("{key}: write lock: {}", error_chain(err)))
    }
}

async fn remove(client: &Client, bucket: &str, entry: &str) {
    if let Err(e) = client
        .delete_object()
        .bucket(bucket)
        .key(entry)
        .send()
        .await
    {
        // It expires after the lease; until then writers of that key wait.
        tracing::warn!(entry, error = %error_chain(&e), "could not remove a write lock entry");
    }
}

enum Standing {
    /// Ours is the only entry: the lock is ours.
    Alone,
    /// Others are there, but ours sorts first: wait for them to leave.
    Lowest,
    /// Another entry sorts before ours: withdraw and retry.
    Behind,
    /// Our entry is gone (taken for expired).
    Lost,
}
