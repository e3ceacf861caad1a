//! Listing the directory store in key order, a page at a time.
//!
//! A page walks the tree in key order and stops once full, so it costs the folders on
//! its way, not the whole store. Each folder on the way is read and sorted whole (the
//! filesystem gives names in hash order); where one folder holds many names (a PyPI
//! index's 100,000 project documents) that read is the cost of every page, and a walk
//! of all the pages would read the folder once per page. So large folders' sorted names
//! are kept, each checked against the folder's stamp (inode, mtime, ctime) at every use:
//! adding or removing a name changes the folder's mtime, and a listing kept is reused
//! only while the folder is unchanged.

use super::fs::{meta_from, TMP_DIR};
use super::{KeyPage, ListPage, ObjectKey, Result, StoreError};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Folders with fewer names are cheap to read again (blob shards hold ~4,000 at a
/// million blobs, read in under a millisecond).
const KEPT_MIN_NAMES: usize = 2048;
/// Memory for the kept folders' names; the least recently used goes first.
const KEPT_BYTES: usize = 16 * 1024 * 1024;
/// A folder's listing is kept only if the folder has not changed for this long before
/// it was read. Timestamps come from a coarse clock (a tick of up to 10 ms, whole
/// seconds on some filesystems): a change right after a read could otherwise leave
/// the mtime as it was, and the kept listing would miss it.
const SETTLED: Duration = Duration::from_secs(2);

/// Kept sorted listings of large folders, shared by every listing of one store.
#[derive(Debug)]
pub(super) struct Listings {
    /// Most recently used last.
    kept: Mutex<Vec<Arc<SortedFolder>>>,
    min_names: usize,
    budget: usize,
}

impl Default for Listings {
    fn default() -> Self {
        Listings::new(KEPT_MIN_NAMES, KEPT_BYTES)
    }
}

/// What identifies one version of a folder's list of names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(md: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: md.dev(),
            ino: md.ino(),
            mtime: (md.mtime(), md.mtime_nsec()),
            ctime: (md.ctime(), md.ctime_nsec()),
        }
    }
}

/// One folder's names in key order.
#[derive(Debug)]
struct SortedFolder {
    path: PathBuf,
    /// Set on the folders kept.
    stamp: Option<Stamp>,
    entries: Vec<Entry>,
    bytes: usize,
}

#[derive(Debug)]
struct Entry {
    /// The name as it sorts among the keys: a folder `x` as `x/`, since every key below
    /// it starts so (and `/` sorts after `-` and `.`).
    order: Box<str>,
    is_dir: bool,
}

impl Listings {
    pub(super) fn new(min_names: usize, budget: usize) -> Listings {
        Listings {
            kept: Mutex::new(Vec::new()),
            min_names,
            budget,
        }
    }

    /// The folder's names in key order; `None` if there is no such folder.
    fn sorted(&self, dir: &Path, is_root: bool) -> Result<Option<Arc<SortedFolder>>> {
        let unavailable = |e: io::Error| StoreError::Unavailable(format!("{}: {e}", dir.display()));
        let stat = || match std::fs::metadata(dir) {
            Ok(md) if md.is_dir() => Ok(Some(md)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(unavailable(e)),
        };
        // Only a folder kept before needs its stamp first; most are small and never kept,
        // and a stat of each on the way is a fifth of a walk's cost.
        if self.is_kept(dir) {
            let Some(md) = stat()? else {
                return Ok(None);
            };
            if let Some(found) = self.take_kept(dir, Stamp::of(&md)) {
                return Ok(Some(found));
            }
        }
        let read_at = SystemTime::now();
        let entries = match read_sorted(dir, is_root) {
            Ok(entries) => entries,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(unavailable(e)),
        };
        let bytes = entries
            .iter()
            .map(|e| e.order.len() + std::mem::size_of::<Entry>())
            .sum();
        // Only a folder worth keeping is stamped, after the read: the stamp describes what
        // was read if the folder had not changed for a while before the read began
        // (`SETTLED`), since nothing changed during it either.
        let worth_keeping = entries.len() >= self.min_names && bytes <= self.budget;
        let md = if worth_keeping { stat()? } else { None };
        let settled = md
            .as_ref()
            .and_then(|md| md.modified().ok())
            .is_some_and(|m| m + SETTLED <= read_at);
        let folder = Arc::new(SortedFolder {
            path: dir.to_path_buf(),
            stamp: md.as_ref().map(Stamp::of),
            entries,
            bytes,
        });
        if settled {
            self.keep(folder.clone());
        }
        Ok(Some(folder))
    }

    fn is_kept(&self, dir: &Path) -> bool {
        self.kept.lock().unwrap().iter().any(|f| f.path == dir)
    }

    fn take_kept(&self, dir: &Path, stamp: Stamp) -> Option<Arc<SortedFolder>> {
        let mut kept = self.kept.lock().unwrap();
        let i = kept.iter().position(|f| f.path == dir)?;
        let folder = kept.remove(i);
        if folder.stamp != Some(stamp) {
            return None;
        }
        kept.push(folder.clone());
        Some(folder)
    }

    fn keep(&self, folder: Arc<SortedFolder>) {
        let mut kept = self.kept.lock().unwrap();
        kept.retain(|f| f.path != folder.path);
        kept.push(folder);
        let mut total: usize = kept.iter().map(|f| f.bytes).sum();
        while total > self.budget {
            total -= kept.remove(0).bytes;
        }
    }

    /// One page of the objects under `prefix` after `start_after`, at most `limit`.
    pub(super) fn page(
        &self,
        root: &Path,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        let (found, next_start_after) = self.walk(root, prefix, start_after, limit, true)?;
        let objects = found
            .into_iter()
            .filter_map(|(key, md)| Some(meta_from(key, &md?)))
            .collect();
        Ok(ListPage {
            objects,
            next_start_after,
        })
    }

    /// The keys of [`Listings::page`] alone: no file is stat'ed.
    pub(super) fn key_page(
        &self,
        root: &Path,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage> {
        let (found, next_start_after) = self.walk(root, prefix, start_after, limit, false)?;
        Ok(KeyPage {
            keys: found.into_iter().map(|(key, _)| key).collect(),
            next_start_after,
        })
    }

    fn walk(
        &self,
        root: &Path,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        stat: bool,
    ) -> Result<(Vec<Found>, Option<String>)> {
        // The store root vanishing is an outage, not an empty store.
        std::fs::metadata(root).map_err(|e| {
            StoreError::Unavailable(format!("store directory {}: {e}", root.display()))
        })?;
        let base = match prefix.rfind('/') {
            Some(i) => &prefix[..=i],
            None => "",
        };
        let mut page = Page {
            listings: self,
            root,
            prefix,
            start_after,
            want: limit + 1,
            stat,
            found: Vec::new(),
        };
        page.walk(base)?;
        let more = page.found.len() > limit;
        let mut found = page.found;
        found.truncate(limit);
        let next_start_after = if more {
            found.last().map(|(key, _)| key.to_string())
        } else {
            None
        };
        Ok((found, next_start_after))
    }
}

/// A key a page holds, with its file's metadata if the page stats.
type Found = (ObjectKey, Option<std::fs::Metadata>);

/// Reads a folder's names and sorts them as their keys sort.
fn read_sorted(dir: &Path, is_root: bool) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if is_root && name == TMP_DIR {
            continue;
        }
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let is_dir = if kind.is_symlink() {
            entry.path().is_dir()
        } else {
            kind.is_dir()
        };
        let order = if is_dir { format!("{name}/") } else { name };
        entries.push(Entry {
            order: order.into_boxed_str(),
            is_dir,
        });
    }
    entries.sort_unstable_by(|a, b| a.order.cmp(&b.order));
    Ok(entries)
}

/// One page, gathered by walking the tree in key order: in each folder, the walk starts
/// at the first name that can hold a key after `start_after` (found by bisection) and
/// stops at the first past the prefix or once the page is full. Only the files returned
/// are stat'ed, and only if the page asks for their metadata.
struct Page<'a> {
    listings: &'a Listings,
    root: &'a Path,
    prefix: &'a str,
    start_after: Option<&'a str>,
    /// One more than the page holds, to tell whether another page follows.
    want: usize,
    stat: bool,
    found: Vec<Found>,
}

impl Page<'_> {
    /// Walks the folder at key prefix `rel` (empty or ending in `/`); whether the page is full.
    fn walk(&mut self, rel: &str) -> Result<bool> {
        let dir = self.root.join(rel);
        let Some(folder) = self.listings.sorted(&dir, rel.is_empty())? else {
            return Ok(false);
        };
        let entries = &folder.entries;
        let first = self.first_wanted(entries, rel);
        for entry in &entries[first..] {
            let key = format!("{rel}{}", entry.order);
            let comparable = key.len().min(self.prefix.len());
            match key.as_bytes()[..comparable].cmp(&self.prefix.as_bytes()[..comparable]) {
                std::cmp::Ordering::Less => continue,
                std::cmp::Ordering::Greater => return Ok(false),
                std::cmp::Ordering::Equal => {}
            }
            let after = self.start_after;
            if entry.is_dir {
                // Every key below starts with `key` (`.../x/`): all at or before
                // `start_after` unless `start_after` is inside the folder or before it.
                if after.is_some_and(|s| key.as_str() < s && !s.starts_with(&key)) {
                    continue;
                }
                if self.walk(&key)? {
                    return Ok(true);
                }
                continue;
            }
            if !key.starts_with(self.prefix) || after.is_some_and(|s| key.as_str() <= s) {
                continue;
            }
            // Without a stat the folder's listing tells a file (`is_dir` false): a name
            // appears only once its write is renamed into place, whole.
            let md = if self.stat {
                match std::fs::metadata(self.root.join(&key)) {
                    Ok(md) if md.is_file() => Some(md),
                    _ => continue,
                }
            } else {
                None
            };
            let Ok(key) = ObjectKey::new(key) else {
                continue;
            };
            self.found.push((key, md));
            if self.found.len() >= self.want {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The index of the first of `entries` (the folder at `rel`) that may hold a key
    /// under the prefix after `start_after`: every name before it sorts wholly before.
    fn first_wanted(&self, entries: &[Entry], rel: &str) -> usize {
        let mut first = 0;
        // The prefix's part inside this folder (the walk starts at the prefix's folder,
        // so it has no `/`): names sorting before it cannot start with it.
        if let Some(within) = self.prefix.strip_prefix(rel) {
            first = entries.partition_point(|e| &*e.order < within);
        }
        if let Some(within) = self.start_after.and_then(|s| s.strip_prefix(rel)) {
            let mut after = entries.partition_point(|e| &*e.order <= within);
            // The one folder `start_after` may be inside sorts just before it.
            if after > 0
                && entries[after - 1].is_dir
                && within.starts_with(&*entries[after - 1].order)
            {
                after -= 1;
            }
            first = first.max(after);
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }

    /// Moves a folder's mtime into the past, as if it had not changed for a minute.
    fn settle(dir: &Path) {
        let past = SystemTime::now() - Duration::from_secs(60);
        std::fs::File::open(dir)
            .unwrap()
            .set_modified(past)
            .unwrap();
    }

    fn all_keys(listings: &Listings, root: &Path, prefix: &str, limit: usize) -> Vec<String> {
        let mut keys = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..1000 {
            let page = listings
                .page(root, prefix, after.as_deref(), limit)
                .unwrap();
            keys.extend(page.objects.iter().map(|o| o.key.to_string()));
            match page.next_start_after {
                Some(next) => after = Some(next),
                None => return keys,
            }
        }
        panic!("listing does not end");
    }

    #[test]
    fn a_kept_listing_is_used_only_while_its_folder_is_unchanged() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("p");
        let mut expected: Vec<String> = (0..50).map(|i| format!("p/{i:03}.json")).collect();
        for key in &expected {
            touch(&root.path().join(key));
        }
        settle(&dir);
        let listings = Listings::new(10, 1 << 20);
        assert_eq!(all_keys(&listings, root.path(), "p/", 7), expected);
        assert_eq!(
            listings.kept.lock().unwrap().len(),
            1,
            "a settled folder is kept"
        );

        // A name added or removed afterwards is seen at once.
        touch(&dir.join("025a.json"));
        std::fs::remove_file(dir.join("010.json")).unwrap();
        expected.retain(|k| k != "p/010.json");
        expected.push("p/025a.json".into());
        expected.sort();
        assert_eq!(all_keys(&listings, root.path(), "p/", 7), expected);
        // Just changed: not settled, so not kept until it is.
        assert!(listings.kept.lock().unwrap().is_empty());
        settle(&dir);
        all_keys(&listings, root.path(), "p/", 1000);
        assert_eq!(listings.kept.lock().unwrap().len(), 1);
    }

    #[test]
    fn small_folders_are_not_kept_and_the_budget_holds() {
        let root = tempfile::tempdir().unwrap();
        for d in ["a", "b", "c"] {
            for i in 0..20 {
                touch(&root.path().join(format!("{d}/{i:02}")));
            }
            settle(&root.path().join(d));
        }
        let few = Listings::new(21, 1 << 20);
        all_keys(&few, root.path(), "a/", 5);
        assert!(few.kept.lock().unwrap().is_empty());

        let one_folder = 20 * (2 + std::mem::size_of::<Entry>());
        let tight = Listings::new(1, 2 * one_folder);
        for d in ["a/", "b/", "c/"] {
            assert_eq!(all_keys(&tight, root.path(), d, 3).len(), 20);
        }
        let kept: Vec<_> = tight
            .kept
            .lock()
            .unwrap()
            .iter()
            .map(|f| f.path.clone())
            .collect();
        assert_eq!(kept, [root.path().join("b"), root.path().join("c")]);
    }

    /// Bisection lands on the right name whatever the cursor: a file, a folder the cursor
    /// is inside, or a name between entries; with the prefix ending mid-name.
    #[test]
    fn pages_resume_after_any_cursor() {
        let root = tempfile::tempdir().unwrap();
        let keys = [
            "o/a-b", "o/a.c", "o/a/b-c", "o/a/b/c", "o/a/c", "o/a0", "o/b/x/y", "o/b/z", "o/c",
        ];
        for key in keys {
            touch(&root.path().join(key));
        }
        let listings = Listings::new(0, 1 << 20);
        for (i, key) in keys.iter().enumerate() {
            let page = listings.page(root.path(), "o/", Some(key), 100).unwrap();
            let got: Vec<_> = page.objects.iter().map(|o| o.key.to_string()).collect();
            assert_eq!(got, keys[i + 1..], "after {key}");
            assert!(page.objects.iter().all(|o| o.size == 1));
            let page = listings.key_page(root.path(), "o/", Some(key), 3).unwrap();
            let got: Vec<_> = page.keys.iter().map(|k| k.to_string()).collect();
            let expected: Vec<_> = keys[i + 1..]
                .iter()
                .take(3)
                .map(|k| k.to_string())
                .collect();
            assert_eq!(got, expected, "keys alone after {key}");
            assert_eq!(page.next_start_after.is_some(), keys.len() - i - 1 > 3);
        }
        let page = listings
            .page(root.path(), "o/a", Some("o/a/b"), 100)
            .unwrap();
        let got: Vec<_> = page.objects.iter().map(|o| o.key.to_string()).collect();
        assert_eq!(got, ["o/a/b-c", "o/a/b/c", "o/a/c", "o/a0"]);
        let page = listings.page(root.path(), "o/b", None, 100).unwrap();
        assert_eq!(page.objects.len(), 2);
    }
}
