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
//! pull-through) rewrites exactly that document.
//!
//! The totals are walked once (`totals_walk::compute`), then kept up to date from the
//! changes every process records (`totals_walk::follow`); see `totals_keeper`.

use super::access::{Reader, Visibility};
use super::totals_tables::{BlobTable, References, NOT_STORED};
use super::totals_walk::CHANGED_KEPT;
use super::CatalogState;
use super::{CatalogError, ItemId, Kind};
use crate::auth::Protocol;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::SystemTime;

/// Recent items a reader is shown.
const RECENT_SHOWN: usize = 12;

/// What the store holds, kept so each reader's figures are computed from the items that
/// reader may read, without walking again.
#[derive(Debug)]
pub struct Totals {
    /// Every blob known, stored or only referenced, with its size.
    pub(super) blobs: BlobTable,
    /// Each item and the numbers of the blobs its metadata names.
    pub(super) references: References,
    /// The store-wide figures (every blob, referenced or not, and every item), counted
    /// again after each change: a store-wide admin's page costs nothing per request.
    store: Figures,
    /// Items by last change, newest first.
    changed: Vec<(SystemTime, ItemId)>,
    /// When the store was last walked.
    walked_at: SystemTime,
    /// When the last recorded change was followed (the walk's time, before any).
    updated_at: SystemTime,
}

impl Totals {
    pub(super) fn new(
        blobs: BlobTable,
        references: References,
        changed: Vec<(SystemTime, ItemId)>,
    ) -> Totals {
        let now = SystemTime::now();
        let mut totals = Totals {
            blobs,
            references,
            store: Figures::default(),
            changed,
            walked_at: now,
            updated_at: now,
        };
        totals.refigure();
        totals
    }

    /// Counts the store-wide figures again, after changes.
    pub(super) fn refigure(&mut self) {
        let (objects, bytes) = self.blobs.stored();
        self.store = Figures {
            // The store's own view: every stored blob, referenced or not.
            objects,
            bytes,
            ..Figures::of(
                self.blobs.sizes(),
                self.references.iter().map(|(_, kind, blobs)| (kind, blobs)),
            )
        };
        self.updated_at = SystemTime::now();
    }

    /// `item` changed last at `at`.
    pub(super) fn note_changed(&mut self, item: ItemId, at: SystemTime) {
        self.forget_changed(&item);
        let place = self.changed.partition_point(|(t, _)| *t > at);
        if place < CHANGED_KEPT {
            self.changed.insert(place, (at, item));
            self.changed.truncate(CHANGED_KEPT);
        }
    }

    /// `item` is gone, or may not be shown.
    pub(super) fn forget_changed(&mut self, item: &ItemId) {
        self.changed.retain(|(_, i)| i != item);
    }

    /// When the store was last walked.
    pub(super) fn walked_at(&self) -> SystemTime {
        self.walked_at
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

/// The totals as one reader sees them. A store-wide admin sees the store: every blob,
/// referenced or not, and every item. Anyone else sees the figures of the items they
/// may read, so a count or a byte total never reveals a private repository.
pub async fn for_reader(
    state: &CatalogState,
    reader: &Reader,
    totals: &Totals,
) -> Result<Value, CatalogError> {
    let store_wide = reader.is_store_admin();
    let figures = if store_wide {
        totals.store.clone()
    } else {
        let mut entries = Vec::new();
        for (path, kind, blobs) in totals.references.iter() {
            if readable(state, reader, path, kind).await? {
                entries.push((kind, blobs));
            }
        }
        Figures::of(totals.blobs.sizes(), entries.into_iter())
    };
    let mut recent = Vec::new();
    for (at, item) in &totals.changed {
        if recent.len() == RECENT_SHOWN {
            break;
        }
        if !visible(state, reader, item).await? {
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
        "computed_at": rfc3339(totals.walked_at),
        "updated_at": rfc3339(totals.updated_at),
        "walked_again_after_seconds": super::TOTALS_WALKED_AGAIN_AFTER.as_secs(),
    }))
}

/// Whether the reader may read the item at `path` (an `ItemId`'s display). Projects and
/// images are decided on the path's own text, which is the name their scopes name:
/// 250,000 of them are checked per request without an allocation each.
async fn readable(
    state: &CatalogState,
    reader: &Reader,
    path: &str,
    kind: Kind,
) -> Result<bool, CatalogError> {
    match kind {
        Kind::Project => {
            let Some(named) = path.strip_prefix("projects/") else {
                return Ok(false);
            };
            let index = named.split_once('/').map_or(named, |(index, _)| index);
            Ok(state.pypi.has_index(index) && reader.may_read_named(Protocol::Pypi, named))
        }
        Kind::Image => Ok(path
            .strip_prefix("images/")
            .is_some_and(|name| reader.may_read_named(Protocol::Oci, name))),
        Kind::Model | Kind::Dataset => match ItemId::from_path(path) {
            Some(item) => visible(state, reader, &item).await,
            None => Ok(false),
        },
    }
}

/// The answer while the first walk is still going: what needs no walk, and
/// `computing`, on which the page asks again.
pub async fn computing(state: &CatalogState, reader: &Reader) -> Value {
    let store_wide = reader.is_store_admin();
    json!({
        "scope": if store_wide { "store" } else { "readable" },
        "computing": true,
        "gc": last_gc(state, store_wide).await,
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
