//! How the store totals learn what the store holds: once by walking it (the blob
//! listing page by page, then every item's metadata), then by following the recorded
//! changes (`store::changes`), looking again at each item and blob a change names.

use super::totals::Totals;
use super::totals_tables::{BlobId, BlobTable, References};
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
struct Census {
    /// Every stored blob, numbered before any item is read; a blob an item names that
    /// the store does not hold is added as it comes.
    blobs: BlobTable,
    /// Each item's path, with where its blob numbers end in `numbers`.
    items: NameList,
    ends: Vec<u32>,
    /// The numbers of the blobs each item references, item after item.
    numbers: Vec<u32>,
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
        let mine = numbers_of(&mut self.blobs, digests);
        self.numbers.extend_from_slice(&mine);
        self.items.push(&item.to_string());
        let end = u32::try_from(self.numbers.len()).expect("below 4 billion references");
        self.ends.push(end);
    }
}

/// The numbers of the blobs `digests` name, each once, in order; blobs the table does
/// not know are added to it (not stored).
fn numbers_of(blobs: &mut BlobTable, digests: impl IntoIterator<Item = Digest>) -> Vec<u32> {
    let mut numbers: Vec<u32> = digests
        .into_iter()
        .map(|d| blobs.number_or_add(blob_id(&d)))
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    numbers
}

/// Walks the store: the blob listing page by page (a million keys are never held at
/// once, only an id and a size each), then every item's references, as numbers.
pub async fn compute(state: &CatalogState) -> Result<Totals, CatalogError> {
    let (mut ids, mut sizes) = (Vec::new(), Vec::new());
    for_each_object(&state.store, BLOBS_PREFIX, LIST_PAGE, |object| {
        if let Some(digest) = digest_of_blob_key(object.key.as_str()) {
            ids.push(blob_id(&digest));
            sizes.push(object.size);
        }
    })
    .await?;
    sort_by_id(&mut ids, &mut sizes);
    let mut census = Census {
        blobs: BlobTable::new(ids, sizes),
        items: NameList::new(),
        ends: Vec::new(),
        numbers: Vec::new(),
        changed: BinaryHeap::new(),
    };
    hf_census(state, &mut census).await?;
    python_census(state, &mut census).await?;
    image_census(state, &mut census).await?;

    let references = References::from_packed(census.items, census.ends, census.numbers);
    // Newest first.
    let changed = census
        .changed
        .into_sorted_vec()
        .into_iter()
        .map(|Reverse(entry)| entry)
        .collect();
    Ok(Totals::new(census.blobs, references, changed))
}

/// Sorts `ids` and the matching `sizes` by id, each id once. A listing of sha256 blobs
/// comes sorted already (the key is the hex of the digest the id begins); only other
/// algorithms' blobs, after them, need the sort.
fn sort_by_id(ids: &mut Vec<BlobId>, sizes: &mut Vec<u64>) {
    if !ids.is_sorted() {
        let mut order: Vec<u32> = (0..ids.len() as u32).collect();
        order.sort_unstable_by_key(|&i| ids[i as usize]);
        *ids = order.iter().map(|&i| ids[i as usize]).collect();
        *sizes = order.iter().map(|&i| sizes[i as usize]).collect();
    }
    let mut kept = 0;
    for i in 0..ids.len() {
        if i == 0 || ids[i] != ids[kept - 1] {
            (ids[kept], sizes[kept]) = (ids[i], sizes[i]);
            kept += 1;
        }
    }
    ids.truncate(kept);
    sizes.truncate(kept);
    ids.shrink_to_fit();
    sizes.shrink_to_fit();
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
        let numbers = numbers_of(&mut current.blobs, looked.digests);
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
    fn sorts_by_id_keeping_each_size_with_its_id() {
        let (mut ids, mut sizes) = (vec![2, 5, 9, 1, 5], vec![20, 50, 90, 10, 51]);
        sort_by_id(&mut ids, &mut sizes);
        assert_eq!(ids, [1, 2, 5, 9]);
        assert_eq!(sizes[0], 10);
        assert_eq!(sizes[1], 20);
        assert_eq!(sizes[3], 90);
        let (mut ids, mut sizes) = (vec![1, 3, 3], vec![10, 30, 30]);
        sort_by_id(&mut ids, &mut sizes);
        assert_eq!((ids, sizes), (vec![1, 3], vec![10, 30]));
    }
}
