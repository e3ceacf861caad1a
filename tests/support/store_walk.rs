//! Looking at a store's objects directly, not through Airlock.

use super::backend::StoreArgs;
use std::path::Path;

/// The store's objects under `blobs/` whose key contains `hex` (every blob for `""`).
pub fn stored_blobs(store: &StoreArgs, hex: &str) -> Vec<String> {
    let mut keys = store.keys_under("blobs/");
    keys.retain(|k| k.contains(hex));
    keys
}

/// Files under the directory `dir`, at any depth; `dir` must exist.
pub fn file_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .map(|p| if p.is_dir() { file_count(&p) } else { 1 })
        .sum()
}
