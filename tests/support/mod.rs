//! Shared test harness: real servers on loopback (Airlock itself, Garage) and
//! generated test content.
#![allow(dead_code)]

pub mod airlock;
pub mod backend;
pub mod garage;
pub mod wheels;

use ::airlock::digest::Algorithm;
use ::airlock::store::{BlobStore, DynStore, FsStore};
use std::path::Path;

/// Writes `size` pseudo-random bytes to a file and stores it as a blob in `store_dir`.
pub async fn seed_blob(store_dir: &Path, size: usize) -> (String, Vec<u8>) {
    let mut data = vec![0u8; size];
    let mut x = 0x9e37_79b9u32;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &data).unwrap();
    let store: DynStore = std::sync::Arc::new(FsStore::open(store_dir).await.unwrap());
    let blobs = BlobStore::new(store, 16);
    let meta = blobs
        .put_file(file.path(), Algorithm::Sha256)
        .await
        .unwrap();
    (meta.digest.to_string(), data)
}
