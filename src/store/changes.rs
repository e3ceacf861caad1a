//! Store changes: the keys the store totals count (blobs, items' pointer documents)
//! that each process wrote or removed, kept in the store for a few minutes, so that the
//! totals of every replica follow what any process did without walking the store.
//!
//! Every process writes through [`ChangeRecorder`] (put around the backend by
//! `Stores::new`): a successful write or removal of such a key notes the key, and about
//! once a second the noted keys go to the store as one record,
//! `changes/<ms>-<writer><n>.json`. A record names keys, not what happened to them: its
//! reader looks at each key again, so a record read twice, late or out of order changes
//! nothing. Writers remove records older than [`KEPT_FOR`] as they go, so a store whose
//! totals nobody reads does not fill up; a reader that has not looked for longer than
//! that cannot trust the records and walks the store instead.
//!
//! A process killed within a second of a write loses that second's record: the totals
//! then miss it until their next walk (hourly at most), the only cost.

use super::layout::{counts_for_totals, MetaKey, CHANGES_PREFIX};
use super::{
    bytes_stream, collect_limited, ByteStream, DynStore, GetOptions, GetResult, KeyPage, ListPage,
    ObjectKey, ObjectMeta, ObjectStore, PutOptions, PutResult, Result, StoreError,
};
use async_trait::async_trait;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

/// How long records stay in the store.
pub const KEPT_FOR: Duration = Duration::from_secs(600);
/// How long noted keys wait to go out together.
const FLUSH_AFTER: Duration = Duration::from_secs(1);
/// Keys per record: a record stays far below a document's size limit.
const KEYS_PER_RECORD: usize = 10_000;
/// Keys noted while the store refuses records; past this, new ones are dropped (the
/// totals catch up at their next walk).
const PENDING_MAX: usize = 200_000;
/// How often a writer removes old records.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// A record is one JSON document of keys.
const RECORD_MAX_BYTES: usize = super::MAX_DOCUMENT_BYTES;

/// The backend, noting the keys the totals count as they are written or removed.
#[derive(Debug)]
pub struct ChangeRecorder {
    inner: DynStore,
    noted: Arc<Noted>,
}

#[derive(Debug)]
struct Noted {
    store: DynStore,
    /// This process's part of every record's name.
    writer: String,
    state: Mutex<NotedState>,
}

#[derive(Debug, Default)]
struct NotedState {
    keys: BTreeSet<String>,
    /// A flush is due: a task waits to send the keys.
    scheduled: bool,
    records: u64,
    last_prune: Option<Instant>,
    dropping: bool,
}

/// Every recorder of this process, so that a command flushes them before it exits.
static RECORDERS: Mutex<Vec<Weak<Noted>>> = Mutex::new(Vec::new());

impl ChangeRecorder {
    pub fn new(inner: DynStore) -> ChangeRecorder {
        let noted = Arc::new(Noted {
            store: inner.clone(),
            writer: format!("{:016x}", rand::random::<u64>()),
            state: Mutex::default(),
        });
        let mut all = RECORDERS.lock().expect("recorders");
        all.retain(|r| r.strong_count() > 0);
        all.push(Arc::downgrade(&noted));
        ChangeRecorder { inner, noted }
    }

    fn note(&self, key: &ObjectKey) {
        if counts_for_totals(key.as_str()) {
            self.noted.note(key.as_str());
        }
    }
}

/// Sends every recorder's noted keys now: called before a command exits (the timer that
/// would have sent them dies with the runtime).
pub async fn flush_all() {
    let all: Vec<Arc<Noted>> = RECORDERS
        .lock()
        .expect("recorders")
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    for noted in all {
        noted.flush().await;
    }
}

impl Noted {
    fn note(self: &Arc<Self>, key: &str) {
        let mut state = self.state.lock().expect("noted keys");
        if state.keys.len() >= PENDING_MAX {
            if !state.dropping {
                tracing::warn!(
                    "store totals: {PENDING_MAX} changes wait to be recorded; later ones are \
                     dropped until the store takes records again (the totals catch up at their next walk)"
                );
                state.dropping = true;
            }
            return;
        }
        state.keys.insert(key.to_string());
        if !state.scheduled {
            state.scheduled = true;
            let noted = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(FLUSH_AFTER).await;
                noted.flush().await;
            });
        }
    }

    async fn flush(&self) {
        let (keys, first) = {
            let mut state = self.state.lock().expect("noted keys");
            state.scheduled = false;
            let first = state.records;
            state.records += 1;
            (std::mem::take(&mut state.keys), first)
        };
        let keys: Vec<String> = keys.into_iter().collect();
        for (n, chunk) in keys.chunks(KEYS_PER_RECORD).enumerate() {
            let id = format!("{}{:08x}{:04x}", self.writer, first, n);
            if let Err(e) = self.write_record(id, chunk).await {
                tracing::warn!(error = %e, "store totals: could not record {} changes; they show at the next walk", chunk.len());
            }
        }
        let prune = {
            let mut state = self.state.lock().expect("noted keys");
            state.dropping = false;
            let due = state
                .last_prune
                .is_none_or(|at| at.elapsed() >= PRUNE_EVERY);
            if due {
                state.last_prune = Some(Instant::now());
            }
            due
        };
        if prune {
            if let Err(e) = remove_old_records(&self.store).await {
                tracing::debug!(error = %e, "store totals: old change records not removed yet");
            }
        }
    }

    async fn write_record(&self, id: String, keys: &[String]) -> Result<()> {
        let at_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let key = MetaKey::StoreChanges { at_ms, id }.key()?;
        let body =
            serde_json::to_vec(&serde_json::json!({ "keys": keys })).expect("keys serialize");
        self.store
            .put(&key, bytes_stream(body), PutOptions::default())
            .await
            .map(|_| ())
    }
}

/// The records in the store now, oldest name first.
pub async fn list_records(store: &DynStore) -> Result<Vec<ObjectMeta>> {
    let mut records = Vec::new();
    let mut pages = super::ObjectPages::new(store, CHANGES_PREFIX, 1000);
    while let Some(page) = pages.next().await? {
        records.extend(page.into_iter().filter(|m| {
            matches!(
                MetaKey::parse(m.key.as_str()),
                Some(MetaKey::StoreChanges { .. })
            )
        }));
    }
    Ok(records)
}

/// The keys one record names; a record removed meanwhile names none.
pub async fn read_record(store: &DynStore, key: &ObjectKey) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Record {
        keys: Vec<String>,
    }
    let got = match store.get(key, GetOptions::default()).await {
        Ok(got) => got,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let bytes = collect_limited(got.body, RECORD_MAX_BYTES)
        .await
        .map_err(|e| StoreError::Unavailable(format!("{key}: {e}")))?;
    // A record this version cannot read names nothing it could look at.
    let Ok(record) = serde_json::from_slice::<Record>(&bytes) else {
        tracing::warn!("store totals: change record {key} is not readable; skipped");
        return Ok(Vec::new());
    };
    Ok(record.keys)
}

/// Removes the records older than [`KEPT_FOR`] by the store's clock.
pub async fn remove_old_records(store: &DynStore) -> Result<()> {
    let now = SystemTime::now();
    for record in list_records(store).await? {
        let old = record
            .last_modified
            .and_then(|at| now.duration_since(at).ok())
            .is_some_and(|age| age > KEPT_FOR);
        if old {
            store.delete(&record.key).await?;
        }
    }
    Ok(())
}

#[async_trait]
impl ObjectStore for ChangeRecorder {
    async fn get(&self, key: &ObjectKey, options: GetOptions) -> Result<GetResult> {
        self.inner.get(key, options).await
    }

    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta> {
        self.inner.head(key).await
    }

    async fn put(
        &self,
        key: &ObjectKey,
        body: ByteStream,
        options: PutOptions,
    ) -> Result<PutResult> {
        let put = self.inner.put(key, body, options).await?;
        self.note(key);
        Ok(put)
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        self.inner.list(prefix, start_after, limit).await
    }

    async fn list_keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage> {
        self.inner.list_keys(prefix, start_after, limit).await
    }

    async fn delete(&self, key: &ObjectKey) -> Result<()> {
        self.inner.delete(key).await?;
        self.note(key);
        Ok(())
    }

    async fn presigned_get(&self, key: &ObjectKey) -> Result<Option<String>> {
        self.inner.presigned_get(key).await
    }

    async fn copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<PutResult> {
        let copied = self.inner.copy(from, to).await?;
        self.note(to);
        Ok(copied)
    }

    async fn remove_abandoned_writes(&self, before: SystemTime, dry_run: bool) -> Result<u64> {
        self.inner.remove_abandoned_writes(before, dry_run).await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::store::layout::blob_key;
    use crate::store::FsStore;

    #[tokio::test]
    async fn counted_keys_are_recorded_once_each_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let fs: DynStore = Arc::new(FsStore::open(dir.path()).await.unwrap());
        let store: DynStore = Arc::new(ChangeRecorder::new(fs.clone()));
        let body = b"a blob".to_vec();
        let digest = Digest::of_bytes(crate::digest::Algorithm::Sha256, &body);
        let blob = blob_key(&digest);
        let project = MetaKey::PypiProject {
            index: "default".into(),
            project: "demo".into(),
        }
        .key()
        .unwrap();
        let uncounted = MetaKey::GcLastRun.key().unwrap();
        for key in [&blob, &project, &project, &uncounted] {
            let bytes = if key == &blob {
                body.clone()
            } else {
                b"{}".to_vec()
            };
            store
                .put(key, bytes_stream(bytes), PutOptions::default())
                .await
                .unwrap();
        }
        store.delete(&project).await.unwrap();
        // A failed write records nothing.
        let refused = PutOptions {
            expected_size: Some(1),
            ..Default::default()
        };
        let other = MetaKey::OciRepo {
            name: "x.io/a".into(),
        }
        .key()
        .unwrap();
        assert!(store
            .put(&other, bytes_stream(b"{}".to_vec()), refused)
            .await
            .is_err());

        flush_all().await;
        let records = list_records(&fs).await.unwrap();
        assert_eq!(records.len(), 1, "{records:?}");
        let mut keys = read_record(&fs, &records[0].key).await.unwrap();
        keys.sort();
        assert_eq!(keys, [blob.as_str(), project.as_str()]);
        // Fresh records stay; a record gone meanwhile names nothing.
        remove_old_records(&fs).await.unwrap();
        assert_eq!(list_records(&fs).await.unwrap().len(), 1);
        fs.delete(&records[0].key).await.unwrap();
        assert!(read_record(&fs, &records[0].key).await.unwrap().is_empty());
    }

    #[test]
    fn the_totals_count_blobs_and_pointer_documents_only() {
        let digest = Digest::of_bytes(crate::digest::Algorithm::Sha256, b"x");
        assert!(counts_for_totals(blob_key(&digest).as_str()));
        for counted in [
            "oci/repos/docker.io/a/_repo.json",
            "pypi/default/projects/demo.json",
            "hf/models/org--m/refs.json",
            "hf/models/org--m/repo.json",
            "hf/datasets/org--d/commits/0123456789abcdef0123456789abcdef01234567.json",
        ] {
            assert!(counts_for_totals(counted), "{counted}");
        }
        for other in [
            "oci/catalog.json",
            "pypi/default/projects.json",
            "hf/models.json",
            "gc/last.json",
            "changes/1700000000000-00ff.json",
            "uploads/oci/0/state.json",
            "blobs/sha256/zz/not-a-digest",
        ] {
            assert!(!counts_for_totals(other), "{other}");
        }
    }
}
