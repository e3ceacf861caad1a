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
use crate::auth::Protocol;
use crate::digest::Digest;
use crate::store::layout::{digest_of_blob_key, BLOBS_PREFIX};
use crate::store::layout::{MetaKey, HF_PREFIX, OCI_REPOS_PREFIX, PYPI_PREFIX};
use crate::store::ObjectMeta;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::SystemTime;

/// Listing page size (S3 returns at most 1000 whatever is asked).
const LIST_PAGE: usize = 10_000;
/// Changed items kept in the cached totals, before filtering for a reader.
const CHANGED_KEPT: usize = 200;
/// Recent items a reader is shown.
const RECENT_SHOWN: usize = 12;

/// What one store walk finds, kept (cached) so each reader's figures are computed from
/// the items that reader may read, without walking again.
#[derive(Debug)]
pub struct Totals {
    /// Every stored blob and its size.
    sizes: HashMap<Digest, u64>,
    /// Each item and the blobs its metadata names.
    references: Vec<(ItemId, BTreeSet<Digest>)>,
    /// Items by last change, newest first.
    changed: Vec<(SystemTime, ItemId)>,
    computed_at: SystemTime,
}

/// The figures over a set of items.
#[derive(Debug, Default, PartialEq, Eq)]
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
    /// `all_blobs`: count every stored blob (the store's own view), not only those the
    /// items reference.
    fn of<'a>(
        sizes: &HashMap<Digest, u64>,
        items: impl Iterator<Item = &'a (ItemId, BTreeSet<Digest>)>,
        all_blobs: bool,
    ) -> Figures {
        let mut figures = Figures::default();
        let mut per_blob: HashMap<&Digest, (u64, BTreeSet<&'static str>)> = HashMap::new();
        for (item, digests) in items {
            *figures.items.entry(item.kind()).or_default() += 1;
            for digest in digests {
                let entry = per_blob.entry(digest).or_default();
                entry.0 += 1;
                entry.1.insert(protocol_of(item).as_str());
            }
        }
        if all_blobs {
            figures.objects = sizes.len() as u64;
            figures.bytes = sizes.values().sum();
        }
        for (digest, (references, protocols)) in per_blob {
            let Some(&size) = sizes.get(digest) else {
                continue;
            };
            if !all_blobs {
                figures.objects += 1;
                figures.bytes += size;
            }
            figures.referenced_bytes += references * size;
            if references > 1 {
                figures.saved_bytes += (references - 1) * size;
                figures.shared_blobs += 1;
            }
            if protocols.len() > 1 {
                figures.cross_protocol_saved_bytes += (protocols.len() as u64 - 1) * size;
                figures.cross_protocol_blobs += 1;
            }
        }
        figures
    }
}

/// Every object under `prefix`, page by page.
async fn list_all(state: &CatalogState, prefix: &str) -> Result<Vec<ObjectMeta>, CatalogError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = state
            .store
            .list(prefix, after.as_deref(), LIST_PAGE)
            .await?;
        out.extend(page.objects);
        match page.next_start_after {
            Some(next) => after = Some(next),
            None => return Ok(out),
        }
    }
}

/// Who references which blobs, and when each item last changed.
#[derive(Default)]
struct Census {
    references: HashMap<ItemId, BTreeSet<Digest>>,
    changed: HashMap<ItemId, SystemTime>,
}

impl Census {
    fn touch(&mut self, item: &ItemId, meta: &ObjectMeta) {
        if let Some(at) = meta.last_modified {
            let entry = self.changed.entry(item.clone()).or_insert(at);
            *entry = (*entry).max(at);
        }
    }
}

pub async fn compute(state: &CatalogState) -> Result<Totals, CatalogError> {
    let sizes: HashMap<Digest, u64> = list_all(state, BLOBS_PREFIX)
        .await?
        .into_iter()
        .filter_map(|o| Some((digest_of_blob_key(o.key.as_str())?, o.size)))
        .collect();
    let mut census = Census::default();
    hf_census(state, &mut census).await?;
    python_census(state, &mut census).await?;
    image_census(state, &mut census).await?;

    let mut changed: Vec<(SystemTime, ItemId)> = census
        .changed
        .into_iter()
        .map(|(id, at)| (at, id))
        .collect();
    changed.sort_by(|a, b| b.cmp(a));
    changed.truncate(CHANGED_KEPT);
    Ok(Totals {
        sizes,
        references: census.references.into_iter().collect(),
        changed,
        computed_at: SystemTime::now(),
    })
}

fn protocol_of(item: &ItemId) -> Protocol {
    match item {
        ItemId::Hf { .. } => Protocol::Hf,
        ItemId::Project { .. } => Protocol::Pypi,
        ItemId::Image { .. } => Protocol::Oci,
    }
}

async fn hf_census(state: &CatalogState, census: &mut Census) -> Result<(), CatalogError> {
    let mut commits: BTreeMap<ItemId, Vec<String>> = BTreeMap::new();
    for meta in list_all(state, HF_PREFIX).await? {
        let Some((item, key)) = hf_items::repo_of_key(meta.key.as_str()) else {
            continue;
        };
        if matches!(key, MetaKey::HfRefs { .. } | MetaKey::HfRepo { .. }) {
            census.touch(&item, &meta);
        }
        let ids = commits.entry(item).or_default();
        if let MetaKey::HfCommit { commit, .. } = key {
            ids.push(commit);
        }
    }
    for (item, ids) in commits {
        let Some(repo) = item.hf_repo() else { continue };
        let blobs = hf_items::referenced_blobs(state, &repo, &ids).await?;
        let digests = blobs
            .iter()
            .filter_map(|h| Digest::sha256_hex(h).ok())
            .collect();
        census.references.insert(item, digests);
    }
    Ok(())
}

async fn python_census(state: &CatalogState, census: &mut Census) -> Result<(), CatalogError> {
    for meta in list_all(state, PYPI_PREFIX).await? {
        let Some(item) = python_items::project_of_key(meta.key.as_str()) else {
            continue;
        };
        let ItemId::Project { index, name } = &item else {
            continue;
        };
        let doc = match crate::pypi::Index::new(index, state.docs.clone())
            .project(name)
            .await?
        {
            Some(doc) => doc,
            None => continue,
        };
        let digests = python_items::referenced_blobs(&doc)
            .iter()
            .filter_map(|h| Digest::sha256_hex(h).ok())
            .collect();
        census.references.insert(item.clone(), digests);
        // Projects of an index no longer configured hold blobs but cannot be shown.
        if state.pypi.has_index(index) {
            census.touch(&item, &meta);
        }
    }
    Ok(())
}

async fn image_census(state: &CatalogState, census: &mut Census) -> Result<(), CatalogError> {
    for meta in list_all(state, OCI_REPOS_PREFIX).await? {
        let Some(item) = image_items::repo_of_key(meta.key.as_str()) else {
            continue;
        };
        let ItemId::Image { name } = &item else {
            continue;
        };
        let doc = image_items::repo(state, name).await?;
        let digests = image_items::referenced_blobs(state, &doc)
            .await
            .into_iter()
            .collect();
        census.references.insert(item.clone(), digests);
        census.touch(&item, &meta);
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
    let mut readable: Option<HashSet<&ItemId>> = None;
    let figures = if store_wide {
        Figures::of(&totals.sizes, totals.references.iter(), true)
    } else {
        let mut entries = Vec::new();
        for entry in &totals.references {
            if visible(state, reader, &entry.0).await? {
                entries.push(entry);
            }
        }
        readable = Some(entries.iter().map(|(item, _)| item).collect());
        Figures::of(&totals.sizes, entries.into_iter(), false)
    };
    let mut recent = Vec::new();
    for (at, item) in &totals.changed {
        if recent.len() == RECENT_SHOWN {
            break;
        }
        let shown = match &readable {
            Some(readable) => readable.contains(item),
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
    // The last garbage collection is a store-wide figure: for store-wide admins only.
    let gc = match store_wide {
        true => crate::gc::last_run(&state.docs).await.map(|r| {
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
        }),
        false => None,
    };
    Ok(json!({
        "scope": if store_wide { "store" } else { "readable" },
        "gc": gc,
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
