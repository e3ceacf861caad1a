//! One filesystem store shared by several processes, as `serve` runs beside
//! `airlock mirror`, `bundle import`, `pypi yank` or `hf import` on the same directory:
//! conditional read-modify-writes of one key from separate OS processes lose nothing.
//! The workers are this test binary again, started with `--ignored --exact`.

use airlock::store::{DocStore, DynStore, FsStore, Mutability, ObjectKey, PutMode, StoreError};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const WORKERS: u64 = 4;
const INCREMENTS: u64 = 150;
const STORE_VAR: &str = "AIRLOCK_TEST_SHARED_FS_STORE";
const KEY: &str = "pypi/counter.json";

#[test]
fn conditional_updates_from_separate_processes_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            Command::new(&exe)
                .args(["increment_worker", "--exact", "--ignored", "--nocapture"])
                .env(STORE_VAR, dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for worker in workers {
        let out = worker.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "worker failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let count = std::fs::read_to_string(dir.path().join(KEY)).unwrap();
    assert_eq!(
        count.parse::<u64>().unwrap(),
        WORKERS * INCREMENTS,
        "updates were lost between processes"
    );
}

/// Adds one to the counter `INCREMENTS` times, each a conditional put of what it read.
/// Only as a worker: run by itself (`--include-ignored`) it has no store and does nothing.
#[test]
#[ignore = "a worker process of conditional_updates_from_separate_processes_lose_nothing, started by it"]
fn increment_worker() {
    let Ok(root) = std::env::var(STORE_VAR) else {
        return;
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store: DynStore = Arc::new(FsStore::open(root.as_ref()).await.unwrap());
            let docs = DocStore::new(store, 0, Duration::ZERO);
            let key = ObjectKey::new(KEY).unwrap();
            for _ in 0..INCREMENTS {
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    assert!(attempts < 100_000, "never won a conditional put");
                    let current = docs.get_fresh(&key).await.unwrap();
                    let (n, mode) = match &current {
                        Some(doc) => (
                            std::str::from_utf8(&doc.bytes)
                                .unwrap()
                                .parse::<u64>()
                                .unwrap(),
                            PutMode::Update(doc.etag.clone()),
                        ),
                        None => (0, PutMode::Create),
                    };
                    let next = (n + 1).to_string();
                    match docs.put(&key, next.into(), mode, Mutability::Mutable).await {
                        Ok(_) => break,
                        Err(StoreError::PreconditionFailed(_)) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        });
}
