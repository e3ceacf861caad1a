//! How the store totals learn what the store holds: once by walking it (every item's
//! metadata, then the blob listing page by page), then by following the recorded
//! changes (`store::changes`), looking again at each item and blob a change names.

use super::totals::Totals;
use super::totals_tables::{BlobId, BlobTable, References, NOT_STORED};
use super::CatalogState;
use super::{hf_items, image_items, python_items, CatalogError, ItemId};
use crate::digest::Digest;
use crate::store::layout::{blob_key, digest_of_blob_key, BLOBS_PREFIX};
use crate::store::layout::{MetaKey, HF_PREFIX, OCI_REPOS_PREFIX, PYPI_PREFIX};
use crate::store::{for_each_object, NameList, ObjectPages};
use futures::{StreamExt, TryStreamExt};
use sha2::Digest as _;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::SystemTime;

/// Listing page size (S3 returns at most 1000 whatever is asked).
const LIST_PAGE: usize = 10_000;
/// Changed items kept in the totals, before filtering for a reader.
pub const CHANGED_KEPT: usize = 200;
/// Items or blobs looked at together while following changes.
const LOOKS_AT_ONCE: usize = 16;

/// A blob's identity for counting: the first 128 bits of the raw sha256 (what every
/// protocol but an occasional OCI sha512 names), else of the sha256 of the canonical
/// digest string. Half a digest is as unforgeable for counting (a collision costs 2^64
/// hashes) and takes half the memory.
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
/// million keys are never held at once).
pub async fn compute(state: &CatalogState) -> Result<Totals, CatalogError> {
    let mut census = Census::default();
    hf_census(state, &mut census).await?;
    python_census(state, &mut census).await?;
    image_census(state, &mut census).await?;

    // Every referenced blob once, sorted: a blob's number is its place here.
    let mut numbered = census.ids.clone();
    numbered.sort_unstable();
    numbered.dedup();
    let mut sizes = vec![NOT_STORED; numbered.len()];
    // Stored blobs nothing references: counted in the store's figures, and known when an
    // item comes to reference them.
    let mut unreferenced: Vec<(BlobId, u64)> = Vec::new();
    for_each_object(&state.store, BLOBS_PREFIX, LIST_PAGE, |object| {
        let Some(digest) = digest_of_blob_key(object.key.as_str()) else {
            return;
        };
        let id = blob_id(&digest);
        match numbered.binary_search(&id) {
            Ok(n) => sizes[n] = object.size,
            Err(_) => unreferenced.push((id, object.size)),
        }
    })
    .await?;
    unreferenced.sort_unstable();
    unreferenced.dedup_by_key(|(id, _)| *id);
    merge_sorted(&mut numbered, &mut sizes, unreferenced);
    numbered.shrink_to_fit();
    sizes.shrink_to_fit();
    let blobs = BlobTable::new(numbered, sizes);

    let numbers: Vec<u32> = census
        .ids
        .iter()
        .map(|&id| blobs.number(id).expect("every referenced id is numbered"))
        .collect();
    drop(census.ids);
    let references = References::from_packed(census.items, census.ends, numbers);
    // Newest first.
    let changed = census
        .changed
        .into_sorted_vec()
        .into_iter()
        .map(|Reverse(entry)| entry)
        .collect();
    Ok(Totals::new(blobs, references, changed))
}

/// Merges `extra` (sorted, distinct, none of them in `ids`) into `ids` (sorted) and the
/// matching `sizes`, in place from the end: the million-entry arrays are never copied.
fn merge_sorted(ids: &mut Vec<BlobId>, sizes: &mut Vec<u64>, extra: Vec<(BlobId, u64)>) {
    let (mut i, mut j) = (ids.len(), extra.len());
    ids.resize(i + j, 0);
    sizes.resize(i + j, NOT_STORED);
    let mut k = i + j;
    while j > 0 {
        k -= 1;
        if i > 0 && ids[i - 1] > extra[j - 1].0 {
            i -= 1;
            (ids[k], sizes[k]) = (ids[i], sizes[i]);
        } else {
            j -= 1;
            (ids[k], sizes[k]) = extra[j];
        }
    }
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
            let entry = repos.entry(item).or_default();
            match key {
                MetaKey::HfCommit { commit, .. } => entry.0.push(commit),
                _ => entry.1 = entry.1.max(meta.last_modified),
            }
        }
    }
    for (item, (ids, changed)) in repos {
        let Some(repo) = item.hf_repo() else { continue };
        let blobs = hf_items::referenced_blobs(state, &repo, &ids).await?;
        census.changed(&item, changed);
        census.refer(&item, hf_digests(&blobs));
    }
    Ok(())
}

fn hf_digests(blobs: &[String]) -> impl Iterator<Item = Digest> + '_ {
    blobs.iter().filter_map(|h| Digest::sha256_hex(h).ok())
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
            let Some(digests) = project_blobs(index, name, state.docs.scanning()).await? else {
                continue;
            };
            // Projects of an index no longer configured hold blobs but cannot be shown.
            if state.pypi.has_index(index) {
                census.changed(&item, meta.last_modified);
            }
            census.refer(&item, digests);
        }
    }
    Ok(())
}

async fn project_blobs(
    index: &str,
    name: &str,
    docs: crate::store::DocStore,
) -> Result<Option<Vec<Digest>>, CatalogError> {
    let Some(doc) = crate::pypi::Index::new(index, docs).project(name).await? else {
        return Ok(None);
    };
    let digests = python_items::referenced_blobs(&doc);
    Ok(Some(
        digests
            .iter()
            .filter_map(|h| Digest::sha256_hex(h).ok())
            .collect(),
    ))
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

/// What one item references now, and when it last changed.
struct Looked {
    digests: Vec<Digest>,
    changed: Option<SystemTime>,
    /// Whether the item may be listed among recent changes (a project of an index no
    /// longer configured holds blobs but cannot be shown).
    shown: bool,
}

/// The keys a record named, as the totals count them.
#[derive(Default)]
pub struct Changes {
    items: BTreeSet<ItemId>,
    blobs: BTreeSet<Digest>,
}

impl Changes {
    pub fn add(&mut self, key: &str) {
        if let Some(digest) = digest_of_blob_key(key) {
            self.blobs.insert(digest);
        } else if let Some((item, _)) = hf_items::repo_of_key(key) {
            self.items.insert(item);
        } else if let Some(item) = python_items::project_of_key(key) {
            self.items.insert(item);
        } else if let Some(item) = image_items::repo_of_key(key) {
            self.items.insert(item);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.blobs.is_empty()
    }
}

/// Brings `totals` up to date with `changes`: each item named is read again, each blob
/// named or newly referenced is asked for. All reading is done before `totals` is
/// locked; the figures are then counted again in memory.
pub async fn follow(
    state: &CatalogState,
    totals: &tokio::sync::RwLock<Option<Totals>>,
    changes: Changes,
) -> Result<(), CatalogError> {
    let looked: Vec<(ItemId, Option<Looked>)> = futures::stream::iter(changes.items)
        .map(|item| async move {
            let looked = look_at(state, &item).await?;
            Ok::<_, CatalogError>((item, looked))
        })
        .buffered(LOOKS_AT_ONCE)
        .try_collect()
        .await?;
    // The blobs to ask the store about: those named, and those an item now references
    // that the totals do not know yet (known ones follow by their own records).
    let mut asked: BTreeSet<Digest> = changes.blobs;
    {
        let guard = totals.read().await;
        let Some(current) = guard.as_ref() else {
            return Ok(());
        };
        for (_, looked) in &looked {
            let digests = looked.iter().flat_map(|l| &l.digests);
            asked.extend(
                digests
                    .filter(|d| current.blobs.number(blob_id(d)).is_none())
                    .cloned(),
            );
        }
    }
    let sizes: Vec<(Digest, Option<u64>)> = futures::stream::iter(asked)
        .map(|digest| async move {
            let size = match state.store.head(&blob_key(&digest)).await {
                Ok(meta) => Some(meta.size),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(CatalogError::from(e)),
            };
            Ok((digest, size))
        })
        .buffer_unordered(LOOKS_AT_ONCE)
        .try_collect()
        .await?;

    let mut guard = totals.write().await;
    let Some(current) = guard.as_mut() else {
        return Ok(());
    };
    for (digest, size) in sizes {
        let number = current.blobs.number_or_add(blob_id(&digest));
        current.blobs.set_size(number, size);
    }
    for (item, looked) in looked {
        let path = item.to_string();
        let Some(looked) = looked else {
            current.references.set(&path, None);
            current.forget_changed(&item);
            continue;
        };
        let mut numbers: Vec<u32> = looked
            .digests
            .iter()
            .map(|d| current.blobs.number_or_add(blob_id(d)))
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        current.references.set(&path, Some(numbers));
        match looked.changed.filter(|_| looked.shown) {
            Some(at) => current.note_changed(item, at),
            None => current.forget_changed(&item),
        }
    }
    current.refigure();
    Ok(())
}

/// One item as it is now; `None` when it is gone.
async fn look_at(state: &CatalogState, item: &ItemId) -> Result<Option<Looked>, CatalogError> {
    let modified = |key: MetaKey| async move {
        match state.store.head(&key.key()?).await {
            Ok(meta) => Ok(Some(meta.last_modified)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(CatalogError::from(e)),
        }
    };
    match item {
        ItemId::Hf { .. } => {
            let Some(repo) = item.hf_repo() else {
                return Ok(None);
            };
            let (kind, id) = (repo.kind.plural().to_string(), repo.id.clone());
            let mut commits = Vec::new();
            let prefix = format!("{}/commits/", repo.key_dir());
            let mut pages = ObjectPages::new(&state.store, &prefix, LIST_PAGE);
            while let Some(page) = pages.next().await? {
                for meta in page {
                    if let Some(MetaKey::HfCommit { commit, .. }) =
                        MetaKey::parse(meta.key.as_str())
                    {
                        commits.push(commit);
                    }
                }
            }
            let refs = modified(MetaKey::HfRefs {
                kind: kind.clone(),
                id: id.clone(),
            })
            .await?;
            let doc = modified(MetaKey::HfRepo { kind, id }).await?;
            if commits.is_empty() && refs.is_none() && doc.is_none() {
                return Ok(None);
            }
            let blobs = hf_items::referenced_blobs(state, &repo, &commits).await?;
            Ok(Some(Looked {
                digests: hf_digests(&blobs).collect(),
                changed: refs.flatten().max(doc.flatten()),
                shown: true,
            }))
        }
        ItemId::Project { index, name } => {
            let key = MetaKey::PypiProject {
                index: index.clone(),
                project: name.clone(),
            };
            let Some(changed) = modified(key).await? else {
                return Ok(None);
            };
            let Some(digests) = project_blobs(index, name, state.docs.following()).await? else {
                return Ok(None);
            };
            Ok(Some(Looked {
                digests,
                changed,
                shown: state.pypi.has_index(index),
            }))
        }
        ItemId::Image { name } => {
            let Some(changed) = modified(MetaKey::OciRepo { name: name.clone() }).await? else {
                return Ok(None);
            };
            let registry = state.registry.following();
            let Some(doc) = registry.repo(name).await? else {
                return Ok(None);
            };
            Ok(Some(Looked {
                digests: image_items::referenced_blobs(&registry, &doc).await,
                changed,
                shown: true,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_in_place_keeping_each_size_with_its_id() {
        let (mut ids, mut sizes) = (vec![2, 5, 9], vec![20, 50, 90]);
        merge_sorted(&mut ids, &mut sizes, vec![(1, 10), (6, 60), (12, 120)]);
        assert_eq!(ids, [1, 2, 5, 6, 9, 12]);
        assert_eq!(sizes, [10, 20, 50, 60, 90, 120]);
        let (mut ids, mut sizes) = (vec![], vec![]);
        merge_sorted(&mut ids, &mut sizes, vec![(3, 30)]);
        assert_eq!((ids, sizes), (vec![3], vec![30]));
        let (mut ids, mut sizes) = (vec![4], vec![40]);
        merge_sorted(&mut ids, &mut sizes, vec![]);
        assert_eq!((ids, sizes), (vec![4], vec![40]));
    }
}
