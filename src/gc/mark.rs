//! The mark: every blob and xorb that a live item of a protocol references.
//!
//! - OCI: every manifest a repository document lists (tagged or not: deleting untagged
//!   manifests is a retention policy's decision, not the collector's), its config, layers
//!   and index children, read from the stored manifest bytes.
//! - PyPI: every file of every project page of every index, yanked or not, and its
//!   `.metadata` document.
//! - Hub: every commit reachable from a branch, tag or pull request ref (through its
//!   parents), and every commit whose OCI model images were handed out; each file's blob
//!   and, for a file uploaded through Xet, the xorbs its terms name.
//!
//! Memory: one entry per referenced blob (its 32-byte sha256 and a byte of protocol
//! bits, about 40 bytes in the table) and per referenced xorb (32 bytes); the commits
//! of one repository while it is walked. Documents are read one at a time.

use crate::digest::Digest;
use crate::hf::model::{RepoRef, RepoType};
use crate::hf::repo::Repos;
use crate::oci::registry::Registry;
use crate::pypi::project::ProjectDoc;
use crate::store::layout::{MetaKey, OCI_REPOS_PREFIX};
use crate::store::{Mutability, ObjectKey, ObjectMeta, Stores};
use crate::xet::MerkleHash;
use anyhow::Context;
use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

/// Which protocols reference a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Oci = 1,
    Pypi = 2,
    Hf = 4,
}

pub const PROTOCOLS: [Protocol; 3] = [Protocol::Oci, Protocol::Pypi, Protocol::Hf];

/// Marked by an item pushed, uploaded or imported here (not only by pull-through's
/// copies of an upstream's): never evicted.
pub const LOCAL: u8 = 8;

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Oci => "oci",
            Protocol::Pypi => "pypi",
            Protocol::Hf => "hf",
        }
    }
}

/// What the live items reference.
#[derive(Debug, Default)]
pub struct Marks {
    /// sha256 blobs (nearly all of them), by their raw digest: protocol bits.
    sha256: HashMap<[u8; 32], u8>,
    /// Blobs of any other algorithm.
    other: HashMap<Digest, u8>,
    xorbs: HashSet<[u8; 32]>,
    /// Documents that name content the store does not hold (reported, never fatal).
    pub dangling: u64,
}

impl Marks {
    /// Marks a blob an item of `by` references; `local` unless only pull-through's
    /// copies of an upstream's items do.
    pub fn mark(&mut self, digest: &Digest, by: Protocol, local: bool) {
        let bits = by as u8 | if local { LOCAL } else { 0 };
        match digest.sha256_bytes() {
            Some(raw) => *self.sha256.entry(raw).or_default() |= bits,
            None => *self.other.entry(digest.clone()).or_default() |= bits,
        }
    }

    fn mark_hex(&mut self, hex: &str, by: Protocol, local: bool) {
        if let Ok(digest) = Digest::sha256_hex(hex) {
            self.mark(&digest, by, local);
        }
    }

    /// The protocols referencing `digest`, as bits (and [`LOCAL`]); 0 when none does.
    pub fn of(&self, digest: &Digest) -> u8 {
        match digest.sha256_bytes() {
            Some(raw) => self.sha256.get(&raw).copied().unwrap_or(0),
            None => self.other.get(digest).copied().unwrap_or(0),
        }
    }

    pub fn xorb_marked(&self, xorb: &MerkleHash) -> bool {
        self.xorbs.contains(xorb.as_bytes())
    }

    pub fn blob_count(&self) -> usize {
        self.sha256.len() + self.other.len()
    }
}

/// Calls `each` on every object under `prefix`, a page at a time (never the whole
/// listing in memory).
pub async fn for_each_object<F>(stores: &Stores, prefix: &str, each: F) -> anyhow::Result<()>
where
    F: FnMut(ObjectMeta),
{
    crate::store::for_each_object(&stores.store, prefix, 1000, each)
        .await
        .with_context(|| format!("listing {prefix}"))
}

/// Every object under `prefix`, fetched a page at a time, as a stream.
pub fn listing(
    stores: &Stores,
    prefix: &str,
) -> futures::stream::BoxStream<'static, anyhow::Result<ObjectMeta>> {
    struct State {
        store: crate::store::DynStore,
        prefix: String,
        page: std::vec::IntoIter<ObjectMeta>,
        after: Option<String>,
        done: bool,
    }
    let state = State {
        store: stores.store.clone(),
        prefix: prefix.to_string(),
        page: Vec::new().into_iter(),
        after: None,
        done: false,
    };
    Box::pin(futures::stream::try_unfold(state, |mut s| async move {
        loop {
            if let Some(meta) = s.page.next() {
                return Ok(Some((meta, s)));
            }
            if s.done {
                return Ok(None);
            }
            let page = s
                .store
                .list(&s.prefix, s.after.as_deref(), 1000)
                .await
                .with_context(|| format!("listing {}", s.prefix))?;
            s.done = page.next_start_after.is_none();
            s.after = page.next_start_after;
            s.page = page.objects.into_iter();
        }
    }))
}

/// The metadata keys under `prefix` that `want` picks, listed a page at a time.
async fn keys_under<T>(
    stores: &Stores,
    prefix: &str,
    want: impl Fn(MetaKey) -> Option<T>,
) -> anyhow::Result<Vec<T>> {
    let mut out = Vec::new();
    for_each_object(stores, prefix, |meta| {
        if let Some(t) = MetaKey::parse(meta.key.as_str()).and_then(&want) {
            out.push(t);
        }
    })
    .await?;
    Ok(out)
}

/// What one listing of the OCI and Hub metadata finds: the repositories to mark from,
/// and the blobs linked to a repository after `cutoff` (a push or a commit naming them may
/// be under way).
#[derive(Debug, Default)]
pub struct Inventory {
    /// OCI repositories by canonical name.
    pub oci_repos: Vec<String>,
    /// Hub repositories with refs, as (kind plural, id).
    pub hf_refs: Vec<(String, String)>,
    pub linked_recently: HashSet<Digest>,
    /// Files uploaded through Xet after `cutoff`: a commit naming them may be on its way,
    /// so their xorbs stay.
    pub xet_files_recent: Vec<MerkleHash>,
}

pub async fn inventory(stores: &Stores, cutoff: SystemTime) -> anyhow::Result<Inventory> {
    let mut found = Inventory::default();
    for prefix in [OCI_REPOS_PREFIX, "hf/", "xet/files/"] {
        for_each_object(stores, prefix, |meta| {
            let recent = meta.last_modified.is_none_or(|t| t > cutoff);
            match MetaKey::parse(meta.key.as_str()) {
                Some(MetaKey::OciRepo { name }) => found.oci_repos.push(name),
                Some(MetaKey::HfRefs { kind, id }) => found.hf_refs.push((kind, id)),
                Some(MetaKey::OciLink { digest, .. } | MetaKey::HfLfsLink { digest, .. })
                    if recent =>
                {
                    found.linked_recently.insert(digest);
                }
                Some(MetaKey::XetFile { hash }) if recent => {
                    if let Ok(hash) = hash.parse() {
                        found.xet_files_recent.push(hash);
                    }
                }
                _ => {}
            }
        })
        .await?;
    }
    Ok(found)
}

pub async fn mark_oci(stores: &Stores, names: &[String], marks: &mut Marks) -> anyhow::Result<()> {
    let registry = Registry::new(stores.docs.clone(), stores.blobs.clone());
    for name in names {
        let Some(repo) = registry.repo(name).await.map_err(oci_error)? else {
            continue;
        };
        // Each manifest's blobs and children, read once.
        let mut named: HashMap<&Digest, (Vec<Digest>, Vec<Digest>)> = HashMap::new();
        for (digest, entry) in &repo.manifests {
            let bytes = match registry.manifest_bytes(digest).await {
                Ok(bytes) => bytes,
                Err(_) => {
                    marks.dangling += 1;
                    continue;
                }
            };
            // A manifest was inspected when it was accepted; one that no longer parses
            // (a newer media type this version does not read) keeps nothing else alive,
            // so it is counted rather than guessed at.
            match crate::oci::manifest::inspect(&bytes, Some(&entry.media_type)) {
                Ok(inspected) => {
                    named.insert(digest, (inspected.blobs, inspected.children));
                }
                Err(_) => marks.dangling += 1,
            }
        }
        // Pull-through's copies: what only its tags reach. Everything else (local tags'
        // images, untagged manifests) counts as local.
        let reach = |roots: Vec<&Digest>| {
            let mut seen: HashSet<Digest> = HashSet::new();
            let mut pending: Vec<Digest> = roots.into_iter().cloned().collect();
            while let Some(d) = pending.pop() {
                if let Some((_, children)) = named.get(&d) {
                    pending.extend(children.iter().cloned());
                }
                seen.insert(d);
            }
            seen
        };
        let (local_tags, upstream_tags): (Vec<_>, Vec<_>) = repo
            .tags
            .iter()
            .partition(|(tag, _)| repo.tag_is_local(tag));
        let local = reach(local_tags.into_iter().map(|(_, d)| d).collect());
        let cached = reach(upstream_tags.into_iter().map(|(_, d)| d).collect());
        for digest in repo.manifests.keys() {
            let is_local = !cached.contains(digest) || local.contains(digest);
            // Manifests themselves are never evicted: a tag resolves to their bytes, and
            // they are small. Only the config and layers are pull-through's cache.
            marks.mark(digest, Protocol::Oci, true);
            if let Some((blobs, children)) = named.get(digest) {
                for d in blobs {
                    marks.mark(d, Protocol::Oci, is_local);
                }
                for d in children {
                    marks.mark(d, Protocol::Oci, true);
                }
            }
        }
    }
    Ok(())
}

fn oci_error(e: crate::oci::OciError) -> anyhow::Error {
    anyhow::anyhow!("{}", e.message)
}

pub async fn mark_pypi(stores: &Stores, marks: &mut Marks) -> anyhow::Result<()> {
    let pages = keys_under(stores, "pypi/", |k| match k {
        MetaKey::PypiProject { .. } => k.key().ok(),
        _ => None,
    })
    .await?;
    for key in pages {
        let Some(doc) = stores.docs.get(&key, Mutability::Mutable).await? else {
            continue;
        };
        let project: ProjectDoc = serde_json::from_slice(&doc.bytes)
            .with_context(|| format!("{key}: not a project document"))?;
        for file in &project.files {
            let local = file.upstream_url.is_none();
            marks.mark_hex(&file.sha256, Protocol::Pypi, local);
            if let Some(metadata) = &file.metadata_sha256 {
                marks.mark_hex(metadata, Protocol::Pypi, local);
            }
        }
    }
    Ok(())
}

pub async fn mark_hf(
    stores: &Stores,
    refs: &[(String, String)],
    marks: &mut Marks,
) -> anyhow::Result<()> {
    let repos = Repos::new(stores.docs.clone(), stores.blobs.clone());
    for (kind, id) in refs {
        let Some(repo) = RepoType::from_plural(kind).and_then(|t| RepoRef::new(t, id)) else {
            continue;
        };
        // A repository pull-through made holds copies of the upstream's files.
        let local = !repos
            .repo(&repo)
            .await
            .map_err(hf_error)?
            .is_some_and(|doc| doc.mirrored);
        let refs = repos.refs(&repo).await.map_err(hf_error)?;
        let mut pending: Vec<String> = refs
            .branches
            .values()
            .chain(refs.tags.values())
            .chain(refs.prs.values())
            .cloned()
            .collect();
        pending.extend(served_commits(stores, &repo).await?);
        let mut seen = HashSet::new();
        while let Some(id) = pending.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            let Some(view) = repos.commit(&repo, &id).await.map_err(hf_error)? else {
                marks.dangling += 1;
                continue;
            };
            // The pages of a large file list are the commit itself: never evictable.
            for page in &view.pages {
                marks.mark_hex(page, Protocol::Hf, true);
            }
            for file in &view.commit.files {
                marks.mark_hex(&file.sha256, Protocol::Hf, local);
                if let Some(hash) = file.xet_hash.as_deref().and_then(|h| h.parse().ok()) {
                    mark_xet_file(&repos, &hash, marks).await?;
                }
            }
            pending.extend(view.commit.parents.iter().cloned());
        }
    }
    Ok(())
}

/// The xorbs of files uploaded through Xet that no commit names yet.
pub async fn mark_recent_xet_files(
    stores: &Stores,
    files: &[MerkleHash],
    marks: &mut Marks,
) -> anyhow::Result<()> {
    let repos = Repos::new(stores.docs.clone(), stores.blobs.clone());
    for hash in files {
        mark_xet_file(&repos, hash, marks).await?;
    }
    Ok(())
}

async fn mark_xet_file(repos: &Repos, hash: &MerkleHash, marks: &mut Marks) -> anyhow::Result<()> {
    let Some(doc) = repos.xet().file(hash).await.map_err(hf_error)? else {
        // Stored whole as a blob (materialized, or imported without its xorbs).
        return Ok(());
    };
    for term in &doc.terms {
        match term.xorb.parse::<MerkleHash>() {
            Ok(xorb) => {
                marks.xorbs.insert(*xorb.as_bytes());
            }
            Err(_) => marks.dangling += 1,
        }
    }
    Ok(())
}

/// The commits whose model images were handed out: a blob of theirs is served by digest.
pub async fn served_commits(stores: &Stores, repo: &RepoRef) -> anyhow::Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Served {
        commits: Vec<String>,
    }
    let key = MetaKey::ModelImagesServed {
        kind: repo.kind.plural().to_string(),
        id: repo.id.clone(),
    }
    .key()?;
    Ok(match stores.docs.get(&key, Mutability::Mutable).await? {
        Some(doc) => serde_json::from_slice::<Served>(&doc.bytes)
            .map(|s| s.commits)
            .unwrap_or_default(),
        None => Vec::new(),
    })
}

fn hf_error(e: crate::hf::HfError) -> anyhow::Error {
    anyhow::anyhow!("{}", e.message)
}

/// The key of a stored object as a blob digest, if it is one.
pub fn blob_digest(key: &ObjectKey) -> Option<Digest> {
    crate::store::layout::digest_of_blob_key(key.as_str())
}
