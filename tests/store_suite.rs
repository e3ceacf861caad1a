//! One storage test suite, run against every backend: the filesystem store on a
//! temporary directory and the S3 store on a real Garage server on loopback.

mod support;

use airlock::digest::{Algorithm, Digest};
use airlock::store::{
    bytes_stream, ByteRange, ByteStream, DocStore, Document, DynStore, GetOptions, Mutability,
    ObjectKey, PutMode, PutOptions, StoreError,
};
use bytes::Bytes;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;

fn key(s: &str) -> ObjectKey {
    ObjectKey::new(s).unwrap()
}

/// Deterministic pseudo-random content, so sizes can exceed S3's multipart threshold.
fn content(len: usize, seed: u8) -> Bytes {
    support::pseudo_random(len, seed as u32).into()
}

/// Splits content into a stream of chunks of the given size.
fn chunked(data: Bytes, chunk: usize) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = (0..data.len())
        .step_by(chunk)
        .map(|i| Ok(data.slice(i..(i + chunk).min(data.len()))))
        .collect();
    Box::pin(futures::stream::iter(chunks))
}

async fn read_all(store: &DynStore, k: &ObjectKey, range: Option<ByteRange>) -> Bytes {
    let got = store.get(k, GetOptions { range }).await.unwrap();
    let mut out = Vec::new();
    let mut body = got.body;
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(out.len() as u64, got.range.end - got.range.start);
    out.into()
}

async fn assert_absent(store: &DynStore, k: &ObjectKey) {
    assert!(matches!(store.head(k).await, Err(StoreError::NotFound(_))));
    assert!(matches!(
        store.get(k, GetOptions::default()).await,
        Err(StoreError::NotFound(_))
    ));
}

/// Everything visible in the store, for "nothing was left behind" checks.
async fn all_keys(store: &DynStore) -> Vec<String> {
    let mut keys = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list("", after.as_deref(), 1000).await.unwrap();
        keys.extend(page.objects.iter().map(|o| o.key.to_string()));
        match page.next_start_after {
            Some(next) => after = Some(next),
            None => return keys,
        }
    }
}

pub async fn round_trip(store: DynStore) {
    // Small, and larger than one S3 multipart part, streamed in odd-sized chunks.
    for (i, len) in [0usize, 1, 1000, 12 * 1024 * 1024 + 7]
        .into_iter()
        .enumerate()
    {
        let data = content(len, i as u8 + 1);
        let k = key(&format!("rt/obj-{len}"));
        let digest = Digest::of_bytes(Algorithm::Sha256, &data);
        let put = store
            .put(
                &k,
                chunked(data.clone(), 65_537),
                PutOptions {
                    expected_digest: Some(digest),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(put.size, len as u64);
        let meta = store.head(&k).await.unwrap();
        assert_eq!(meta.size, len as u64);
        assert_eq!(meta.etag, put.etag);
        assert!(
            read_all(&store, &k, None).await == data,
            "content of {len} bytes differs"
        );
    }
    // Overwrite replaces content and changes the version token.
    let k = key("rt/obj-1000");
    let before = store.head(&k).await.unwrap();
    store
        .put(&k, bytes_stream("new"), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(read_all(&store, &k, None).await, "new");
    assert_ne!(store.head(&k).await.unwrap().etag, before.etag);
    // Delete, and delete again.
    store.delete(&k).await.unwrap();
    assert_absent(&store, &k).await;
    store.delete(&k).await.unwrap();
}

pub async fn ranges(store: DynStore) {
    let data = content(10_000, 7);
    let k = key("ranges/obj");
    store
        .put(&k, bytes_stream(data.clone()), PutOptions::default())
        .await
        .unwrap();
    let b = |start, end| Some(ByteRange::Bounded { start, end });
    assert_eq!(read_all(&store, &k, b(0, 0)).await, data.slice(0..1));
    assert_eq!(
        read_all(&store, &k, b(9_999, 9_999)).await,
        data.slice(9_999..)
    );
    assert_eq!(
        read_all(&store, &k, b(100, 199)).await,
        data.slice(100..200)
    );
    assert_eq!(
        read_all(&store, &k, b(9_000, 20_000)).await,
        data.slice(9_000..)
    );
    assert_eq!(
        read_all(&store, &k, Some(ByteRange::Suffix(10))).await,
        data.slice(9_990..)
    );
    assert_eq!(
        read_all(&store, &k, Some(ByteRange::From(9_995))).await,
        data.slice(9_995..)
    );
    for beyond in [b(10_000, 10_005), Some(ByteRange::From(10_000))] {
        let err = store
            .get(&k, GetOptions { range: beyond })
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::RangeNotSatisfiable { size: 10_000 }),
            "{err:?}"
        );
    }
    let got = store.get(&k, GetOptions { range: b(5, 9) }).await.unwrap();
    assert_eq!(got.range, 5..10);
    assert_eq!(got.meta.size, 10_000);
}

pub async fn digest_mismatch_leaves_nothing(store: DynStore) {
    let before = all_keys(&store).await;
    for len in [10usize, 12 * 1024 * 1024] {
        let data = content(len, 3);
        let wrong = Digest::of_bytes(Algorithm::Sha256, b"something else");
        let k = key(&format!("mismatch/{len}"));
        let err = store
            .put(
                &k,
                chunked(data, 1 << 20),
                PutOptions {
                    expected_digest: Some(wrong),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err:?}");
        assert_absent(&store, &k).await;
        // A wrong size is refused the same way.
        let err = store
            .put(
                &k,
                bytes_stream("12345"),
                PutOptions {
                    expected_size: Some(4),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::SizeMismatch { .. }), "{err:?}");
        assert_absent(&store, &k).await;
    }
    assert_eq!(all_keys(&store).await, before);
}

pub async fn interrupted_write_leaves_nothing(store: DynStore) {
    let before = all_keys(&store).await;
    // The body fails half-way (a client that went away).
    let k = key("interrupted/failed");
    let data = content(12 * 1024 * 1024, 9);
    let failing = chunked(data.clone(), 1 << 20)
        .take(8)
        .chain(futures::stream::once(async {
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "client went away",
            ))
        }));
    let err = store
        .put(&k, Box::pin(failing), PutOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Body(_)), "{err:?}");
    assert_absent(&store, &k).await;

    // The writer is killed half-way: the put future is dropped while the body stalls.
    let k = key("interrupted/dropped");
    let stalling = chunked(data, 1 << 20)
        .take(7)
        .chain(futures::stream::pending());
    let put = store.put(&k, Box::pin(stalling), PutOptions::default());
    assert!(tokio::time::timeout(Duration::from_secs(2), put)
        .await
        .is_err());
    // Abandoned uploads are cleaned up in the background on S3; give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_absent(&store, &k).await;
    assert_eq!(all_keys(&store).await, before);
}

pub async fn concurrent_puts_of_same_content(store: DynStore) {
    // Large enough for S3 multipart uploads, which Garage drops when a newer write of the
    // same key completes first.
    let data = content(17 * 1024 * 1024 + 11, 5);
    let digest = Digest::of_bytes(Algorithm::Sha256, &data);
    let k = key(&format!("same/{}", digest.hex()));
    let puts = (0..8).map(|_| {
        let (store, k, data, digest) = (store.clone(), k.clone(), data.clone(), digest.clone());
        tokio::spawn(async move {
            store
                .put(
                    &k,
                    chunked(data, 100_000),
                    PutOptions {
                        expected_digest: Some(digest),
                        ..Default::default()
                    },
                )
                .await
        })
    });
    for result in futures::future::join_all(puts).await {
        result.unwrap().unwrap();
    }
    assert!(read_all(&store, &k, None).await == data);
}

pub async fn conditional_updates_exactly_one_wins(store: DynStore) {
    conditional_updates_exactly_one_wins_across(&[store]).await
}

/// Racing writers spread over `stores`: one store, or several opened on the same data the
/// way replicas are (each with its own in-process locks).
async fn conditional_updates_exactly_one_wins_across(stores: &[DynStore]) {
    let store = stores[0].clone();
    let pick = |i: u8| stores[i as usize % stores.len()].clone();
    let k = key("cond/tag");
    // Create-if-absent: exactly one of many racing creators wins.
    let creates = (0..8u8).map(|i| {
        let (store, k) = (pick(i), k.clone());
        tokio::spawn(async move {
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            store.put(&k, bytes_stream(vec![i]), opts).await
        })
    });
    let results: Vec<_> = futures::future::join_all(creates)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(results
        .iter()
        .all(|r| matches!(r, Ok(_) | Err(StoreError::PreconditionFailed(_)))));

    // Replace-if-unchanged: of updates racing from the same version, exactly one wins.
    let base = store.head(&k).await.unwrap().etag;
    let updates = (0..8u8).map(|i| {
        let (store, k, base) = (pick(i), k.clone(), base.clone());
        tokio::spawn(async move {
            let opts = PutOptions {
                mode: PutMode::Update(base),
                ..Default::default()
            };
            store.put(&k, bytes_stream(vec![100 + i]), opts).await
        })
    });
    let results: Vec<_> = futures::future::join_all(updates)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    let winner = results.iter().find_map(|r| r.as_ref().ok()).unwrap();
    assert_eq!(store.head(&k).await.unwrap().etag, winner.etag);

    // Update of an absent object is refused too.
    let opts = PutOptions {
        mode: PutMode::Update(base),
        ..Default::default()
    };
    let err = store
        .put(&key("cond/absent"), bytes_stream("x"), opts)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::PreconditionFailed(_)));
}

pub async fn read_modify_write_loses_no_update(store: DynStore) {
    read_modify_write_loses_no_update_across(&[store]).await
}

/// More writers on one document in one process than `DocStore::update` has attempts (as
/// when a server creates many models at once: each creation updates the kind's list):
/// none is refused as "gave up after conflicting updates", none is lost.
pub async fn read_modify_write_in_one_process_never_gives_up(store: DynStore) {
    let docs = DocStore::new(store, 1 << 20, Duration::from_secs(1));
    let k = key("rmw/busy");
    let writers = (0..WRITERS_IN_ONE_PROCESS).map(|i| append_number(docs.clone(), k.clone(), i));
    for (i, result) in futures::future::join_all(writers)
        .await
        .into_iter()
        .enumerate()
    {
        let result = result.unwrap();
        assert!(matches!(result, Ok(Ok(_))), "writer {i}: {result:?}");
    }
    let doc = docs.get_fresh(&k).await.unwrap().unwrap();
    let mut list: Vec<u32> = serde_json::from_slice(&doc.bytes).unwrap();
    list.sort();
    assert_eq!(list, (0..WRITERS_IN_ONE_PROCESS).collect::<Vec<_>>());
}

/// A writer appending `i` to the JSON list at `k` through `DocStore::update`.
fn append_number(
    docs: DocStore,
    k: ObjectKey,
    i: u32,
) -> tokio::task::JoinHandle<airlock::store::Result<Result<Option<Document>, ()>>> {
    tokio::spawn(async move {
        docs.update(&k, |current| {
            let mut list: Vec<u32> = current
                .map(|d| serde_json::from_slice(&d.bytes).unwrap())
                .unwrap_or_default();
            list.push(i);
            Ok::<_, ()>(Some(serde_json::to_vec(&list).unwrap().into()))
        })
        .await
    })
}

/// Four times `DocStore::update`'s attempts.
const WRITERS_IN_ONE_PROCESS: u32 = 64;

async fn read_modify_write_loses_no_update_across(stores: &[DynStore]) {
    // Sixteen writers each append their number to one document through DocStore::update.
    let all: Vec<DocStore> = stores
        .iter()
        .map(|store| DocStore::new(store.clone(), 1 << 20, Duration::from_secs(1)))
        .collect();
    let docs = all[0].clone();
    let k = key("rmw/list");
    let writers =
        (0..16u32).map(|i| append_number(all[i as usize % all.len()].clone(), k.clone(), i));
    for result in futures::future::join_all(writers).await {
        result.unwrap().unwrap().unwrap();
    }
    let doc = docs.get_fresh(&k).await.unwrap().unwrap();
    let mut list: Vec<u32> = serde_json::from_slice(&doc.bytes).unwrap();
    list.sort();
    assert_eq!(list, (0..16).collect::<Vec<_>>());
    // The cache serves what was written: at once on one store; on replicas, each of
    // which may have cached an earlier version, within the mutable TTL.
    let deadline = std::time::Instant::now() + Duration::from_secs(1) + Duration::from_millis(500);
    for docs in &all {
        loop {
            let cached = docs.get(&k, Mutability::Mutable).await.unwrap().unwrap();
            if cached.bytes == doc.bytes {
                break;
            }
            assert!(
                all.len() > 1 && std::time::Instant::now() < deadline,
                "stale cache"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Keys come back in byte order across folders, as S3 lists them, whatever the page
/// size: `o/a-b` and `o/a.c` before `o/a/...` (`-` and `.` sort before `/`), and a page
/// that ends inside a folder resumes there.
pub async fn list_orders_keys_across_folders(store: DynStore) {
    let mut expected: Vec<String> = [
        "o/a", "o/a-b", "o/a.c", "o/a/b-c", "o/a/b/c", "o/a/c", "o/a0", "o/b/x/y", "o/b/z", "o/c",
    ]
    .iter()
    .map(|k| k.to_string())
    .collect();
    // `o/a` is a file and `o/a/` a folder on S3; on disk a name is one or the other.
    expected.retain(|k| k != "o/a");
    for k in &expected {
        store
            .put(&key(k), bytes_stream("x"), PutOptions::default())
            .await
            .unwrap();
    }
    let mut sorted = expected.clone();
    sorted.sort();
    for limit in [1, 2, 3, 100] {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..20 {
            let page = store.list("o/", after.as_deref(), limit).await.unwrap();
            seen.extend(page.objects.iter().map(|o| o.key.to_string()));
            match page.next_start_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, sorted, "pages of {limit}");
        // The keys alone come in the same pages.
        let mut keys = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..20 {
            let page = store
                .list_keys("o/", after.as_deref(), limit)
                .await
                .unwrap();
            assert!(page.keys.len() <= limit);
            keys.extend(page.keys.iter().map(|k| k.to_string()));
            match page.next_start_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(keys, sorted, "pages of {limit} keys");
    }
    let page = store.list("o/a/b", Some("o/a/b-c"), 100).await.unwrap();
    let keys: Vec<_> = page.objects.iter().map(|o| o.key.to_string()).collect();
    assert_eq!(keys, ["o/a/b/c"]);
}

pub async fn list_paginates(store: DynStore) {
    let mut expected = Vec::new();
    for i in 0..25 {
        let k = format!("list/a/{i:03}");
        store
            .put(
                &key(&k),
                bytes_stream(format!("{i}")),
                PutOptions::default(),
            )
            .await
            .unwrap();
        expected.push(k);
    }
    // Neighbours that a prefix must not pick up.
    for k in ["list/ab", "list/b/000", "lisz"] {
        store
            .put(&key(k), bytes_stream("x"), PutOptions::default())
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store.list("list/a/", after.as_deref(), 10).await.unwrap();
        pages += 1;
        assert!(page.objects.len() <= 10);
        seen.extend(page.objects.iter().map(|o| o.key.to_string()));
        match page.next_start_after {
            Some(next) => after = Some(next),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected);
    // A prefix that ends mid-segment.
    let page = store.list("list/a", None, 100).await.unwrap();
    let keys: Vec<_> = page.objects.iter().map(|o| o.key.to_string()).collect();
    assert_eq!(keys.len(), 26);
    assert_eq!(keys.last().unwrap(), "list/ab");
    let page = store.list("list/a/02", None, 100).await.unwrap();
    assert_eq!(page.objects.len(), 5);
    assert_eq!(page.objects[0].size, 2);
    assert!(store
        .list("nothing/", None, 10)
        .await
        .unwrap()
        .objects
        .is_empty());
}

/// A copy has the source's bytes, survives the source's deletion, replaces what was at
/// the destination, and refuses a missing source with NotFound.
pub async fn copy_is_independent_of_its_source(store: DynStore) {
    let data = content(12 * 1024 * 1024 + 3, 9);
    let (from, to) = (key("cp/upload"), key("cp/published"));
    store
        .put(&from, chunked(data.clone(), 1 << 20), PutOptions::default())
        .await
        .unwrap();
    store
        .put(&to, bytes_stream("old"), PutOptions::default())
        .await
        .unwrap();
    let copied = store.copy(&from, &to).await.unwrap();
    assert_eq!(copied.size, data.len() as u64);
    store.delete(&from).await.unwrap();
    assert_absent(&store, &from).await;
    assert!(
        read_all(&store, &to, None).await == data,
        "the copy differs"
    );
    assert_eq!(store.head(&to).await.unwrap().size, data.len() as u64);
    let missing = store.copy(&key("cp/never"), &key("cp/x")).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    assert_absent(&store, &key("cp/x")).await;
}

/// Runs every scenario against one backend, each on its own part of the store.
macro_rules! store_suite {
    ($backend:ident, $make:path $(, #[$attr:meta])*) => {
        mod $backend {
            use super::*;
            scenario!($make, [$($attr)*], round_trip);
            scenario!($make, [$($attr)*], ranges);
            scenario!($make, [$($attr)*], digest_mismatch_leaves_nothing);
            scenario!($make, [$($attr)*], interrupted_write_leaves_nothing);
            scenario!($make, [$($attr)*], concurrent_puts_of_same_content);
            scenario!($make, [$($attr)*], conditional_updates_exactly_one_wins);
            scenario!($make, [$($attr)*], read_modify_write_loses_no_update);
            scenario!($make, [$($attr)*], read_modify_write_in_one_process_never_gives_up);
            scenario!($make, [$($attr)*], list_paginates);
            scenario!($make, [$($attr)*], list_orders_keys_across_folders);
            scenario!($make, [$($attr)*], copy_is_independent_of_its_source);
        }
    };
}

macro_rules! scenario {
    ($make:path, [$($attr:meta)*], $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$attr])*
        async fn $name() {
            let (store, _guard) = $make().await;
            super::$name(store).await;
        }
    };
}

async fn fs_store() -> (DynStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = airlock::store::FsStore::open(dir.path()).await.unwrap();
    (Arc::new(store) as DynStore, dir)
}

store_suite!(fs, fs_store);
store_suite!(
    s3,
    support::garage::s3_store,
    #[ignore = "needs a real S3 server: `bash tests/run-all.sh` builds and starts Garage"]
);

/// Several `S3Store`s opened on one prefix behave as Airlock replicas on one bucket do:
/// each has its own in-process locks, so only the lock kept in the bucket keeps racing
/// conditional writes from different stores apart on Garage (which ignores If-Match).
mod s3_replicas {
    use super::*;
    use sha2::Digest as _;

    struct Replicas {
        prefix: String,
        stores: Vec<DynStore>,
    }

    async fn replicas(n: usize, lease: Option<Duration>) -> Replicas {
        let garage = tokio::task::spawn_blocking(support::garage::shared)
            .await
            .unwrap();
        let prefix = format!("suite/{}", hex::encode(rand::random::<[u8; 8]>()));
        let mut stores = Vec::new();
        for _ in 0..n {
            let settings = airlock::store::S3Settings {
                lock_lease: lease,
                ..garage.settings()
            };
            let store =
                airlock::store::S3Store::open(garage.bucket.clone(), prefix.clone(), &settings)
                    .await
                    .unwrap();
            stores.push(Arc::new(store) as DynStore);
        }
        Replicas { prefix, stores }
    }

    impl Replicas {
        /// Raw keys of the write-lock entries under this store's prefix.
        async fn lock_entries(&self) -> Vec<String> {
            let garage = support::garage::shared();
            let listed = garage
                .client()
                .list_objects_v2()
                .bucket(&garage.bucket)
                .prefix(format!("{}/.airlock-locks/", self.prefix))
                .send()
                .await
                .unwrap();
            listed
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string))
                .collect()
        }

        /// What a replica killed while holding the lock of `key` leaves behind: an entry in
        /// the key's lock folder (named as `src/store/s3/lock.rs` names it), sorting first.
        async fn plant_dead_entry(&self, key: &str) {
            let full = format!("{}/{key}", self.prefix);
            let folder = hex::encode(&sha2::Sha256::digest(full.as_bytes())[..16]);
            let garage = support::garage::shared();
            garage
                .client()
                .put_object()
                .bucket(&garage.bucket)
                .key(format!(
                    "{}/.airlock-locks/{folder}/{}",
                    self.prefix,
                    "0".repeat(24)
                ))
                .body(Vec::new().into())
                .send()
                .await
                .unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs a real S3 server: `bash tests/run-all.sh` builds and starts Garage"]
    async fn conditional_updates_exactly_one_wins_across_replicas() {
        let replicas = replicas(4, None).await;
        conditional_updates_exactly_one_wins_across(&replicas.stores).await;
        assert_eq!(replicas.lock_entries().await, Vec::<String>::new());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs a real S3 server: `bash tests/run-all.sh` builds and starts Garage"]
    async fn read_modify_write_loses_no_update_across_replicas() {
        let replicas = replicas(4, None).await;
        read_modify_write_loses_no_update_across(&replicas.stores).await;
        assert_eq!(replicas.lock_entries().await, Vec::<String>::new());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs a real S3 server: `bash tests/run-all.sh` builds and starts Garage"]
    async fn a_lock_left_by_a_dead_replica_expires_after_the_lease() {
        const LEASE: Duration = Duration::from_secs(2);
        let replicas = replicas(1, Some(LEASE)).await;
        let store = replicas.stores[0].clone();
        let k = key("cond/dead");
        let put = |mode: PutMode, body: &'static str| {
            let (store, k) = (store.clone(), k.clone());
            async move {
                let options = PutOptions {
                    mode,
                    ..Default::default()
                };
                store.put(&k, bytes_stream(body), options).await
            }
        };
        put(PutMode::Create, "first").await.unwrap();
        assert_eq!(
            replicas.lock_entries().await,
            Vec::<String>::new(),
            "released"
        );

        let base = store.head(&k).await.unwrap().etag;
        replicas.plant_dead_entry("cond/dead").await;
        let started = std::time::Instant::now();
        put(PutMode::Update(base), "second").await.unwrap();
        let waited = started.elapsed();
        assert!(
            waited >= LEASE,
            "went ahead after {waited:?} past a live-looking lock"
        );
        assert!(waited < LEASE * 4, "recovered only after {waited:?}");
        assert_eq!(read_all(&store, &k, None).await, &b"second"[..]);
        assert_eq!(
            replicas.lock_entries().await,
            Vec::<String>::new(),
            "dead entry removed"
        );
    }
}
