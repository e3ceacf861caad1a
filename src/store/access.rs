//! When each blob was last read, recorded cheaply for pull-through eviction: a read
//! notes the blob in memory (one map insert, no store write), and `serve` writes what it
//! noted since the last flush as one small document, `gc/access/<ms>-<random>.json`
//! (blob hex -> unix seconds), every `[gc] access_flush` (a minute). The collector merges
//! them all, newest time per blob, into one document and removes those it merged.

use super::layout::{MetaKey, GC_ACCESS_PREFIX};
use super::{bytes_stream, collect_limited, DynStore, ObjectKey, PutOptions, Result, StoreError};
use crate::digest::{Algorithm, Digest};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Blobs noted between two flushes at most; beyond that a read is not noted (the blob
/// keeps its previous time, or the time it was stored).
const MAX_NOTED: usize = 1 << 20;
/// The largest access document read back (about 80 bytes per blob).
const MAX_DOCUMENT: usize = 256 << 20;

/// The reads this process noted since its last flush.
#[derive(Clone, Debug, Default)]
pub struct AccessLog {
    noted: Arc<Mutex<HashMap<[u8; 32], u64>>>,
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl AccessLog {
    /// Notes a read of `digest` now.
    pub fn note(&self, digest: &Digest) {
        if digest.algorithm() != Algorithm::Sha256 {
            return;
        }
        let mut raw = [0u8; 32];
        if hex::decode_to_slice(digest.hex(), &mut raw).is_err() {
            return;
        }
        let mut noted = self.noted.lock().expect("not poisoned");
        if noted.len() < MAX_NOTED || noted.contains_key(&raw) {
            noted.insert(raw, unix_secs(SystemTime::now()));
        }
    }

    /// Writes what was noted since the last flush, if anything.
    pub async fn flush(&self, store: &DynStore) -> Result<()> {
        let noted = std::mem::take(&mut *self.noted.lock().expect("not poisoned"));
        if noted.is_empty() {
            return Ok(());
        }
        if let Err(e) = write_times(store, &noted).await {
            // Kept for the next flush rather than lost.
            let mut current = self.noted.lock().expect("not poisoned");
            for (raw, at) in noted {
                let at = current.get(&raw).copied().unwrap_or(0).max(at);
                current.insert(raw, at);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Flushes every `interval` until the process ends.
    pub fn spawn_flusher(
        &self,
        store: DynStore,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let log = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                if let Err(e) = log.flush(&store).await {
                    tracing::warn!(error = %e, "could not record blob reads; kept for the next flush");
                }
            }
        })
    }
}

/// Writes `times` as one new access document.
async fn write_times(store: &DynStore, times: &HashMap<[u8; 32], u64>) -> Result<()> {
    let doc: HashMap<String, u64> = times
        .iter()
        .map(|(raw, at)| (hex::encode(raw), *at))
        .collect();
    let key = MetaKey::GcAccess {
        at_ms: super::claims::unix_ms(SystemTime::now()),
        id: format!("{:016x}", rand::random::<u64>()),
    }
    .key()?;
    let bytes = serde_json::to_vec(&doc).expect("serializable");
    store
        .put(&key, bytes_stream(bytes), PutOptions::default())
        .await?;
    Ok(())
}

/// Every access document's times merged (newest per blob), and the documents merged.
pub async fn read_all(store: &DynStore) -> Result<(HashMap<[u8; 32], u64>, Vec<ObjectKey>)> {
    let mut times: HashMap<[u8; 32], u64> = HashMap::new();
    let mut keys = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list_keys(GC_ACCESS_PREFIX, after.as_deref(), 1000)
            .await?;
        for key in page.keys {
            let got = match store.get(&key, Default::default()).await {
                Ok(got) => got,
                Err(StoreError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            let bytes = collect_limited(got.body, MAX_DOCUMENT)
                .await
                .map_err(|e| StoreError::Unavailable(format!("reading {key}: {e}")))?;
            let doc: HashMap<String, u64> = serde_json::from_slice(&bytes).unwrap_or_default();
            for (hex_digest, at) in doc {
                let mut raw = [0u8; 32];
                if hex::decode_to_slice(&hex_digest, &mut raw).is_ok() {
                    let entry = times.entry(raw).or_default();
                    *entry = (*entry).max(at);
                }
            }
            keys.push(key);
        }
        match page.next_start_after {
            Some(next) => after = Some(next),
            None => return Ok((times, keys)),
        }
    }
}

/// Replaces the documents `merged` with one holding `times` (the collector's call).
pub async fn compact(
    store: &DynStore,
    times: &HashMap<[u8; 32], u64>,
    merged: &[ObjectKey],
) -> Result<()> {
    if !times.is_empty() {
        write_times(store, times).await?;
    }
    for key in merged {
        store.delete(key).await?;
    }
    Ok(())
}
