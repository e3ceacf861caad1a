//! Store totals: objects and bytes under `blobs/`, what storing each body once saves,
//! and the most recently changed items.
//!
//! **Savings.** A blob's references are the items (a model or dataset repository, a
//! Python project, an image repository) whose metadata names it; every reference beyond
//! the first would be another copy in a store that kept each item's files apart, so
//! `saved = Σ (references − 1) × size` over the blobs present. The same sum over the
//! *protocols* referencing a blob (HF, PyPI, OCI) gives what sharing across protocols
//! alone saves. Sizes come from the blob listing; references to bodies not stored yet
//! (pull-through entries never downloaded) count for nothing.
//!
//! **Recent changes** are the store's last-modified times of each item's mutable
//! pointer document (an HF repo's refs.json, a project's document, an image's
//! _repo.json). Every way content arrives (upload, push, import, mirror, bundle import,
//! pull-through) rewrites exactly that document, so this needs no record of its own:
//! nothing more to write on every upload, and nothing racing replicas could lose.

use super::access::{Reader, Visibility};
use super::CatalogState;
use super::{hf_items, image_items, python_items, CatalogError, ItemId, Kind};
use crate::digest::Digest;
use crate::store::layout::{digest_of_blob_key, BLOBS_PREFIX};
use crate::store::layout::{MetaKey, HF_PREFIX, OCI_REPOS_PREFIX, PYPI_PREFIX};
use crate::store::{for_each_object, NameList, ObjectPages};
use serde_json::{json, Value};
use sha2::Digest as _;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashSet};
use std::time::SystemTime;

/// Listing page size (S3 returns at most 1000 whatever is asked).
const LIST_PAGE: usize = 10_000;
/// Changed items kept in the cached totals, before filtering for a reader.
const CHANGED_KEPT: usize = 200;
/// Recent items a reader is shown.
const RECENT_SHOWN: usize = 12;
/// A referenced blob the store does not hold (a pull-through entry never downloaded).
const NOT_STORED: u64 = u64::MAX;

/// What one store walk finds, kept so each reader's figures are computed from the items
/// that reader may read, without walking again.
///
/// Compact on purpose: a store of a million blobs is a million referenced digests, and
/// as `Digest`s in per-item sets they took ~250 MB. Each distinct blob is a number
/// here (its size at that index), and the items' references one flat array of numbers.
#[derive(Debug)]
pub struct Totals {
    /// Each referenced blob's stored size, by blob number; `NOT_STORED` if absent.
    sizes: Vec<u64>,
    /// Each item and the numbers of the blobs its metadata names.
    references: References,
    /// The store-wide figures (every blob, referenced or not, and every item), computed
    /// once with the walk: a store-wide admin's page costs nothing per request.
    store: Figures,
    /// Items by last change, newest first.
    changed: Vec<(SystemTime, ItemId)>,
    computed_at: SystemTime,
}

/// Items and the blobs each references: item `i` (by its path, `ItemId`'s display) and
/// its blob numbers `blobs[ends[i-1]..ends[i]]`. Packed: 277,500 items as `ItemId`s with
/// a slice each took ~55 MB; as paths and one array, ~14 MB.
#[derive(Debug, Default)]
struct References {
    items: NameList,
    ends: Vec<u32>,
    blobs: Vec<u32>,
}

impl References {
    /// Each item's path, kind and blob numbers.
    fn iter(&self) -> impl Iterator<Item = (&str, Kind, &[u32])> + '_ {
        self.items.iter().enumerate().map(|(i, path)| {
            let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
            let kind = path
                .split_once('/')
                .and_then(|(kind, _)| Kind::parse(kind))
                .unwrap_or(Kind::Model);
            (path, kind, &self.blobs[start..self.ends[i] as usize])
        })
    }
}

/// The figures over a set of items.
#[derive(Debug, Default, PartialEq, Eq, Clone)]
struct Figures {
    objects: u64,
    bytes: u64,
    /// Σ references × size: what clients can fetch, counted per item.
    referenced_bytes: u64,
    saved_bytes: u64,
    shared_blobs: u64,
    cross_protocol_saved_bytes: u64,
    cross_protocol_blobs: u64,
    items: BTreeMap<Kind, u64>,
}

impl Figures {
    /// The figures of `items`, counting as objects the stored blobs they reference.
    fn of<'a>(sizes: &[u64], items: impl Iterator<Item = (Kind, &'a [u32])>) -> Figures {
        let mut figures = Figures::default();
        // Per blob: how many items reference it, and a bit per referencing protocol.
        let mut references = vec![0u32; sizes.len()];
        let mut protocols = vec![0u8; sizes.len()];
        for (kind, blobs) in items {
            *figures.items.entry(kind).or_default() += 1;
            let bit = protocol_bit(kind);
            for &blob in blobs.iter() {
                references[blob as usize] += 1;
                protocols[blob as usize] |= bit;
            }
        }
        for (blob, &size) in sizes.iter().enumerate() {
            let count = u64::from(references[blob]);
            if size == NOT_STORED || count == 0 {
                continue;
            }
            figures.objects += 1;
            figures.bytes += size;
            figures.referenced_bytes += count * size;
            if count > 1 {
                figures.saved_bytes += (count - 1) * size;
                figures.shared_blobs += 1;
            }
            let sharing = protocols[blob].count_ones() as u64;
            if sharing > 1 {
                figures.cross_protocol_saved_bytes += (sharing - 1) * size;
                figures.cross_protocol_blobs += 1;
            }
        }
        figures
    }
}

fn protocol_bit(kind: Kind) -> u8 {
    match kind {
        Kind::Model | Kind::Dataset => 1,
        Kind::Project => 2,
        Kind::Image => 4,
    }
}

/// A blob's identity for counting: the first 128 bits of the raw sha256 (what every
/// protocol but an occasional OCI sha512 names), else of the sha256 of the canonical
/// digest string. Half a digest is as unforgeable for counting (a collision costs 2^64
/// hashes) and takes half the memory.
type BlobId = u128;

fn blob_id(digest: &Digest) -> BlobId {
    let full: [u8; 32] = digest
        .sha256_bytes()
        .unwrap_or_else(|| sha2::Sha256::digest(digest.to_string().as_bytes()).into());
    u128::from_be_bytes(full[..16].try_into().expect("16 bytes"))
}

/// Who references which blobs, and which items changed last.
#[derive(Default)]
struct Census {
    /// Each item's path, with where its blob ids end in `ids`.
    items: NameList,
    ends: Vec<u32>,
    /// The ids of the blobs each item references, item after item (numbered once every
    /// item is in: a sorted array of ids, not a hash map of a million entries).
    ids: Vec<BlobId>,
    /// The `CHANGED_KEPT` items changed last, oldest on top.
    changed: BinaryHeap<Reverse<(SystemTime, ItemId)>>,
}

impl Census {
    /// `item` changed last at `at` (each item is reported once).
    fn changed(&mut self, item: &ItemId, at: Option<SystemTime>) {
        let Some(at) = at else { return };
        if self.changed.len() == CHANGED_KEPT {
            match self.changed.peek() {
                Some(Reverse((oldest, _))) if *oldest < at => {
                    self.changed.pop();
                }
                _ => return,
            }
        }
        self.changed.push(Reverse((at, item.clone())));
    }

    fn refer(&mut self, item: &ItemId, digests: impl IntoIterator<Item = Digest>) {
        let start = self.ids.len();
        self.ids.extend(digests.into_iter().map(|d| blob_id(&d)));
        let mine = &mut self.ids[start..];
        mine.sort_unstable();
        let mut kept = 0;
        for i in 0..mine.len() {
            if i == 0 || mine[i] != mine[kept - 1] {
                mine[kept] = mine[i];
                kept += 1;
            }
        }
        self.ids.truncate(start + kept);
        self.items.push(&item.to_string());
        let end = u32::try_from(self.ids.len()).expect("below 4 billion references");
        self.ends.push(end);
    }
}

/// Walks the store: every item's references, then the blob listing page by page (a
/// million keys are never held at once), keeping the size of referenced blobs only.
pub async fn compute(state: &CatalogState) -> Result<Totals, CatalogError> {
    let mut census = Census::default();
    hf_census(state, &mut census).await?;
    python_census(state, &mut census).await?;
    image_census(state, &mut census).await?;

    // Every referenced blob once, sorted: a blob's number is its place here.
    let mut numbered = census.ids.clone();
    numbered.sort_unstable();
    numbered.dedup();
    numbered.shrink_to_fit();
    let number = |id: &BlobId| numbered.binary_search(id).ok();

    let mut sizes = vec![NOT_STORED; numbered.len()];
    let (mut objects, mut bytes) = (0u64, 0u64);
    for_each_object(&state.store, BLOBS_PREFIX, LIST_PAGE, |object| {
        let Some(digest) = digest_of_blob_key(object.key.as_str()) else {
            return;
        };
        objects += 1;
        bytes += object.size;
        if let Some(n) = number(&blob_id(&digest)) {
            sizes[n] = object.size;
        }
    })
    .await?;

    let blobs: Vec<u32> = census
        .ids
        .iter()
        .map(|id| number(id).expect("every referenced id is numbered") as u32)
        .collect();
    drop(census.ids);
    drop(numbered);
    census.items.shrink_to_fit();
    census.ends.shrink_to_fit();
    let references = References {
        items: census.items,
        ends: census.ends,
        blobs,
    };
    let store = Figures {
        // The store's own view: every stored blob, referenced or not.
        objects,
        bytes,
        ..Figures::of(
            &sizes,
            references.iter().map(|(_, kind, blobs)| (kind, blobs)),
        )
    };
    // Newest first.
    let changed = census
        .changed
        .into_sorted_vec()
        .into_iter()
        .map(|Reverse(entry)| entry)
        .collect();
    Ok(Totals {
        sizes,
        references,
        store,
        changed,
        computed_at: SystemTime::now(),
    })
}

async fn hf_census(state: &CatalogState, census: &mut Census) -> Result<(), CatalogError> {
    // Each repository's commits, and when its refs or its document last changed; a
    // page at a time (a repository of 100,000 files has as many upload links).
    let mut repos: BTreeMap<ItemId, (Vec<String>, Option<SystemTime>)> = BTreeMap::new();
    let mut pages = ObjectPages::new(&state.store, HF_PREFIX, LIST_PAGE);
    while let Some(page) = pages.next().await? {
        for meta in page {
            let Some((item, key)) = hf_items::repo_of_key(meta.key.as_str()) else {
                continue;
            };
            let entry = match key {
                MetaKey::HfRefs { .. } | MetaKey::HfRepo { .. } | MetaKey::HfCommit { .. } => {
                    repos.entry(item).or_default()
                }
                _ => continue,
            };
            match key {
                MetaKey::HfCommit { commit, .. } => entry.0.push(commit),
                _ => entry.1 = entry.1.max(meta.last_modified),
            }
        }
    }
    for (item, (ids, changed)) in repos {
        let Some(repo) = item.hf_repo() else { continue };
        let blobs = hf_items::referenced_blobs(state, &repo, &ids).await?;
        let digests = blobs.iter().filter_map(|h| Digest::sha256_hex(h).ok());
        census.changed(&item, changed);
        census.refer(&item, digests);
    }
    Ok(())
}

async fn python_census(state: &CatalogState, census: &mut Census) -> Result<(), CatalogError> {
    // A page at a time: 100,000 project documents are not listed into memory at once.
    let mut pages = ObjectPages::new(&state.store, PYPI_PREFIX, LIST_PAGE);
    while let Some(page) = pages.next().await? {
        for meta in page {
            let Some(item) = python_items::project_of_key(meta.key.as_str()) else {
                continue;
            };
            let ItemId::Project { index, name } = &item else {
                continue;
            };
            // Read without filling the caches requests use (100,000 projects would).
            let doc = match crate::pypi::Index::new(index, state.docs.scanning())
                .project(name)
                .await?
            {
                Some(doc) => doc,
                None => continue,
            };
            // Projects of an index no longer configured hold blobs but cannot be shown.
            if state.pypi.has_index(index) {
                census.changed(&item, meta.last_modified);
            }
            let digests = python_items::referenced_blobs(&doc);
            census.refer(
                &item,
                digests.iter().filter_map(|h| Digest::sha256_hex(h).ok()),
            );
        }
    }
    Ok(())
}

async fn image_census(state: &CatalogState, census: &mut Census) -> Result<(), CatalogError> {
    let registry = state.registry.scanning();
    let mut pages = ObjectPages::new(&state.store, OCI_REPOS_PREFIX, LIST_PAGE);
    while let Some(page) = pages.next().await? {
        for meta in page {
            let Some(item) = image_items::repo_of_key(meta.key.as_str()) else {
                continue;
            };
            let ItemId::Image { name } = &item else {
                continue;
            };
            // Read without filling the caches requests use; gone meanwhile: not counted.
            let Some(doc) = registry.repo(name).await? else {
                continue;
            };
            let digests = image_items::referenced_blobs(&registry, &doc).await;
            census.changed(&item, meta.last_modified);
            census.refer(&item, digests);
        }
    }
    Ok(())
}

/// The totals as one reader sees them. A store-wide admin sees the store: every blob,
/// referenced or not, and every item. Anyone else sees the figures of the items they
/// may read, so a count or a byte total never reveals a private repository.
pub async fn for_reader(
    state: &CatalogState,
    reader: &Reader,
    totals: &Totals,
) -> Result<Value, CatalogError> {
    let store_wide = reader.is_store_admin();
    // Anyone but a store-wide admin: each item's visibility is decided once, and serves
    // both the figures and the recent list (every changed item is a referencing one).
    let mut readable: Option<HashSet<&str>> = None;
    let figures = if store_wide {
        totals.store.clone()
    } else {
        let mut entries = Vec::new();
        let mut seen = HashSet::new();
        for (path, kind, blobs) in totals.references.iter() {
            let Some(item) = ItemId::from_path(path) else {
                continue;
            };
            if visible(state, reader, &item).await? {
                entries.push((kind, blobs));
                seen.insert(path);
            }
        }
        readable = Some(seen);
        Figures::of(&totals.sizes, entries.into_iter())
    };
    let mut recent = Vec::new();
    for (at, item) in &totals.changed {
        if recent.len() == RECENT_SHOWN {
            break;
        }
        let shown = match &readable {
            Some(readable) => readable.contains(item.to_string().as_str()),
            None => visible(state, reader, item).await?,
        };
        if !shown {
            continue;
        }
        recent.push(json!({
            "kind": item.kind(),
            "name": item.name(),
            "path": item.to_string(),
            "changed_at": rfc3339(*at),
        }));
    }
    let items: BTreeMap<&str, u64> = Kind::ALL
        .iter()
        .map(|k| (k.plural(), figures.items.get(k).copied().unwrap_or(0)))
        .collect();
    Ok(json!({
        "scope": if store_wide { "store" } else { "readable" },
        "computing": false,
        "gc": last_gc(state, store_wide).await,
        "blobs": { "objects": figures.objects, "bytes": figures.bytes },
        "referenced_bytes": figures.referenced_bytes,
        "dedup": {
            "saved_bytes": figures.saved_bytes,
            "shared_blobs": figures.shared_blobs,
            "cross_protocol_saved_bytes": figures.cross_protocol_saved_bytes,
            "cross_protocol_blobs": figures.cross_protocol_blobs,
        },
        "items": items,
        "recent": recent,
        "computed_at": rfc3339(totals.computed_at),
        "cached_for_seconds": super::TOTALS_TTL.as_secs(),
    }))
}

/// The answer while the first walk is still going: what needs no walk, and
/// `computing`, on which the page asks again.
pub async fn computing(state: &CatalogState, reader: &Reader) -> Value {
    let store_wide = reader.is_store_admin();
    json!({
        "scope": if store_wide { "store" } else { "readable" },
        "computing": true,
        "gc": last_gc(state, store_wide).await,
        "cached_for_seconds": super::TOTALS_TTL.as_secs(),
    })
}

/// The last garbage collection: a store-wide figure, for store-wide admins only.
async fn last_gc(state: &CatalogState, store_wide: bool) -> Option<Value> {
    if !store_wide {
        return None;
    }
    crate::gc::last_run(&state.docs).await.map(|r| {
        json!({
            "finished_at": rfc3339(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(r.finished_at)),
            "dry_run": r.dry_run,
            "reclaimable_bytes": r.reclaimable.bytes + r.xorbs_reclaimable.bytes,
            "reclaimable_blobs": r.reclaimable.count,
            "reclaimable_xorbs": r.xorbs_reclaimable.count,
            "uploads_removed": r.uploads.sessions,
            "removed_bytes": r.swept.blobs.bytes + r.swept.xorbs.bytes,
            "removed_blobs": r.swept.blobs.count,
            "removed_xorbs": r.swept.xorbs.count,
            "pull_through_bytes": r.pull_through.bytes,
            "evicted_bytes": r.evicted.bytes,
            "evicted_blobs": r.evicted.count,
        })
    })
}

async fn visible(
    state: &CatalogState,
    reader: &Reader,
    item: &ItemId,
) -> Result<bool, CatalogError> {
    // Projects of an index no longer configured hold blobs but no client can reach them.
    if let ItemId::Project { index, .. } = item {
        if !state.pypi.has_index(index) {
            return Ok(false);
        }
    }
    match reader.visibility(state, item).await {
        Ok(Visibility::Visible(_)) => Ok(true),
        Ok(Visibility::Hidden) | Err(CatalogError::Auth(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}
