//! The registry's state in the store (see `store/layout.rs`): one document per
//! repository with its tags and manifests, one small link per blob a repository holds,
//! and the catalog. Manifest bytes are ordinary content-addressed blobs.

use super::error::{Code, OciError, Result};
use super::manifest::Inspected;
use crate::digest::Digest;
use crate::store::layout::{blob_key, MetaKey, OCI_REPOS_PREFIX};
use crate::store::{BlobStore, DocStore, Document, Mutability, NameList, ObjectKey, StoreError};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, LazyLock, Mutex};

/// `_` cannot start a name component, so a repository's own keys never collide with a
/// nested repository's (see `store/layout.rs`).
pub fn repo_key(name: &str) -> Result<ObjectKey> {
    let name = name.to_string();
    Ok(MetaKey::OciRepo { name }.key()?)
}

pub fn link_key(name: &str, digest: &Digest) -> Result<ObjectKey> {
    let (name, digest) = (name.to_string(), digest.clone());
    Ok(MetaKey::OciLink { name, digest }.key()?)
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoDoc {
    #[serde(default)]
    pub tags: BTreeMap<String, Digest>,
    #[serde(default)]
    pub manifests: BTreeMap<Digest, ManifestEntry>,
    /// Tags pull-through set, with the digest it set them to. A tag whose digest is not
    /// the one recorded here was pushed or imported here, and pull-through never moves it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub upstream_tags: BTreeMap<String, Digest>,
}

impl RepoDoc {
    /// Whether `tag` points where this Airlock's own push or import put it.
    pub fn tag_is_local(&self, tag: &str) -> bool {
        self.tags
            .get(tag)
            .is_some_and(|d| self.upstream_tags.get(tag) != Some(d))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestEntry {
    pub media_type: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Kept only for manifests with a subject: the referrers API reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl ManifestEntry {
    pub fn new(inspected: &Inspected, size: u64) -> Self {
        ManifestEntry {
            media_type: inspected.media_type.clone(),
            size,
            subject: inspected.subject.clone(),
            artifact_type: inspected.artifact_type.clone(),
            annotations: inspected
                .annotations
                .clone()
                .filter(|_| inspected.subject.is_some()),
        }
    }
}

/// `oci/catalog.json`, the repository list earlier versions kept (one document capped at
/// 16 MiB). Unused now: the listing of the repository documents is the catalog. Still
/// merged when an older bundle carries it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    pub repositories: BTreeSet<String>,
}

/// Store listing page size while collecting repository names (an S3 round trip each).
const NAMES_LIST_PAGE: usize = 1000;
/// What marks a key as one of a repository's blob links (`_` cannot start a name
/// component, so only a link key holds it).
const LINKS_FOLDER: &str = "/_blobs/";

/// Repository names from a position on, in the order the catalog lists them: their
/// documents' key order (lexical, except that a name sorts after the names extending it
/// with `-` or `.`, as `a/b` after `a/b-c`: `-` and `.` sort before the `/` that follows
/// `a/b`). Borrowed from the kept list of every name: a page copies nothing.
#[derive(Debug)]
pub struct Names {
    list: Arc<NameList>,
    from: usize,
}

impl Names {
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.list.iter_from(self.from)
    }
}

/// The kept list of every repository name (`DocStore::kept_list`).
const ALL_NAMES: &str = "oci/repos";

/// Parsed repository documents by store version, so a hot manifest HEAD by tag costs a
/// cache lookup, not a JSON parse.
/// A repository document parsed, with the store version it was parsed from.
type Parsed = (String, Arc<RepoDoc>);

static PARSED: LazyLock<Mutex<HashMap<ObjectKey, Parsed>>> = LazyLock::new(Default::default);
/// Beyond this many repositories the parsed cache starts over (it only saves parsing).
const MAX_PARSED: usize = 4096;

#[derive(Clone, Debug)]
pub struct Registry {
    docs: DocStore,
    blobs: BlobStore,
}

/// Parses (or finds parsed) a repository document, remembering the parse.
fn parse_repo(key: &ObjectKey, doc: &Document) -> Result<Arc<RepoDoc>> {
    parse_repo_keeping(key, doc, true)
}

/// `keep`: remember the parse (not for a walk over every repository).
fn parse_repo_keeping(key: &ObjectKey, doc: &Document, keep: bool) -> Result<Arc<RepoDoc>> {
    if let Some((etag, parsed)) = PARSED.lock().expect("not poisoned").get(key) {
        if *etag == doc.etag {
            return Ok(parsed.clone());
        }
    }
    let parsed: RepoDoc = serde_json::from_slice(&doc.bytes)
        .map_err(|e| StoreError::Unavailable(format!("{key}: corrupt document: {e}")))?;
    let parsed = Arc::new(parsed);
    if !keep {
        return Ok(parsed);
    }
    let mut cache = PARSED.lock().expect("not poisoned");
    if cache.len() >= MAX_PARSED {
        cache.clear();
    }
    cache.insert(key.clone(), (doc.etag.clone(), parsed.clone()));
    Ok(parsed)
}

impl Registry {
    pub fn new(docs: DocStore, blobs: BlobStore) -> Self {
        Registry { docs, blobs }
    }

    /// The same registry for a walk over every repository (the catalog's totals): what
    /// it reads is not kept in memory, where it would push out what requests use.
    pub fn scanning(&self) -> Registry {
        Registry {
            docs: self.docs.scanning(),
            ..self.clone()
        }
    }

    /// The same registry for following recorded changes (the catalog's totals): a
    /// repository is read from the store, not the cache, and not kept.
    pub fn following(&self) -> Registry {
        Registry {
            docs: self.docs.following(),
            ..self.clone()
        }
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// The repository, as cached (a tag may be `cache.mutable_ttl` stale across replicas).
    pub async fn repo(&self, name: &str) -> Result<Option<Arc<RepoDoc>>> {
        let key = repo_key(name)?;
        match self.docs.get(&key, Mutability::Mutable).await? {
            Some(doc) => Ok(Some(parse_repo_keeping(
                &key,
                &doc,
                self.docs.keeps_misses(),
            )?)),
            None => Ok(None),
        }
    }

    /// Read-modify-write of a repository without lost updates. `change` returns whether
    /// it changed anything.
    pub async fn update_repo<F>(&self, name: &str, mut change: F) -> Result<RepoDoc>
    where
        F: FnMut(&mut RepoDoc) -> Result<bool>,
    {
        let key = repo_key(name)?;
        let decode = |d: &Document| Ok((*parse_repo(&key, d)?).clone());
        let mut created = false;
        let doc = self
            .docs
            .update_json_with(&key, decode, |doc| {
                let absent = doc.is_none();
                let changed = change(doc.get_or_insert_with(RepoDoc::default))?;
                created = changed && absent;
                Ok::<_, OciError>(changed)
            })
            .await?;
        if created {
            // This process lists it at once (other replicas' within the TTL and a minute).
            self.docs.forget_list(ALL_NAMES).await;
        }
        Ok(doc.expect("change filled it in"))
    }

    /// The repository names after `after` (any string: one that names no repository
    /// starts where it would be), in [`Names`] order.
    pub async fn names_after(&self, after: Option<&str>) -> Result<Names> {
        let list = self.all_names().await?;
        // Bisection in key order: a name's key is `<name>/_repo.json`.
        fn key(name: &str) -> impl Iterator<Item = u8> + '_ {
            name.bytes().chain(b"/_repo.json".iter().copied())
        }
        let from = match after {
            Some(after) => list.partition_point(|name| key(name).le(key(after))),
            None => 0,
        };
        Ok(Names { list, from })
    }

    /// Every repository name, from the listing of the repository documents (adding a
    /// repository writes nothing but its document), kept (`DocStore::kept_list`).
    pub async fn all_names(&self) -> Result<Arc<NameList>> {
        let registry = self.clone();
        self.docs
            .kept_list(
                ALL_NAMES,
                move || async move { registry.list_names().await },
            )
            .await
            .map_err(|e: Arc<OciError>| (*e).clone())
    }

    async fn list_names(&self) -> Result<NameList> {
        let mut cursor: Option<String> = None;
        let mut names = NameList::new();
        loop {
            let page = self
                .docs
                .list_keys(OCI_REPOS_PREFIX, cursor.as_deref(), NAMES_LIST_PAGE)
                .await?;
            for key in page.keys {
                if let Some(MetaKey::OciRepo { name }) = MetaKey::parse(key.as_str()) {
                    names.push(&name);
                }
            }
            let Some(next) = page.next_start_after else {
                return Ok(names);
            };
            // A page that ends among a repository's blob links goes on after the last of
            // them (`_blobs0` sorts right after every `_blobs/...`): a repository of
            // thousands of layers costs one round trip, not one per thousand links.
            cursor = Some(match next.find(LINKS_FOLDER) {
                Some(i) => format!("{}/_blobs0", &next[..i]),
                None => next,
            });
        }
    }

    /// Enters a manifest whose bytes are stored (and its tag, moving it if need be), as
    /// imports and pull-through record them; `true` if that changed anything. Unlike a
    /// push, referenced blobs and children need not be present yet.
    pub async fn record_manifest(
        &self,
        name: &str,
        digest: &Digest,
        entry: ManifestEntry,
        tag: Option<&str>,
    ) -> Result<bool> {
        let mut changed = false;
        self.update_repo(name, |doc| {
            changed = doc.manifests.get(digest) != Some(&entry)
                || tag.is_some_and(|t| doc.tags.get(t) != Some(digest));
            doc.manifests.insert(digest.clone(), entry.clone());
            if let Some(t) = tag {
                doc.tags.insert(t.to_string(), digest.clone());
                doc.upstream_tags.remove(t);
            }
            Ok(changed)
        })
        .await?;
        Ok(changed)
    }

    /// Claims a stored manifest and the blobs it names before an import or a mirror
    /// records it (`store/claims.rs`); those a collection already removed are returned.
    /// Release the claim once the manifest is recorded.
    pub async fn claim_manifest(
        &self,
        digest: &Digest,
        media_type: &str,
    ) -> Result<(crate::store::claims::Claim, Vec<Digest>)> {
        let bytes = self.manifest_bytes(digest).await?;
        let inspected = super::manifest::inspect(&bytes, Some(media_type))?;
        let mut named = inspected.blobs;
        named.push(digest.clone());
        Ok(self.blobs.claim(&named).await?)
    }

    pub async fn link_blob(&self, name: &str, digest: &Digest) -> Result<()> {
        self.docs
            .put(
                &link_key(name, digest)?,
                Bytes::from(digest.to_string()),
                crate::store::PutMode::Overwrite,
                Mutability::Mutable,
            )
            .await?;
        Ok(())
    }

    pub async fn blob_linked(&self, name: &str, digest: &Digest) -> Result<bool> {
        Ok(self
            .docs
            .get(&link_key(name, digest)?, Mutability::Mutable)
            .await?
            .is_some())
    }

    pub async fn unlink_blob(&self, name: &str, digest: &Digest) -> Result<()> {
        Ok(self.docs.delete(&link_key(name, digest)?).await?)
    }

    /// The exact bytes of a stored manifest (cached: they can never change).
    pub async fn manifest_bytes(&self, digest: &Digest) -> Result<Bytes> {
        match self
            .docs
            .get(&blob_key(digest), Mutability::Immutable)
            .await?
        {
            Some(doc) => Ok(doc.bytes),
            None => Err(OciError::new(
                Code::ManifestUnknown,
                format!("manifest {digest} is not in the store"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Algorithm;
    use crate::store::{DynStore, FsStore};

    fn entry() -> ManifestEntry {
        ManifestEntry {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: 2,
            subject: None,
            artifact_type: None,
            annotations: None,
        }
    }

    /// The catalog is the listing of the repository documents: every repository is in
    /// it however many there are, pages resume after any name, and a repository's blob
    /// links (thousands, more than a listing page) are stepped over, not listed through.
    #[tokio::test]
    async fn names_are_the_listing_of_repository_documents() {
        let dir = tempfile::tempdir().unwrap();
        let store: DynStore = Arc::new(FsStore::open(dir.path()).await.unwrap());
        let counted = Arc::new(crate::store::OpCounts::default());
        let counting: DynStore = Arc::new(crate::store::CountingStore::new(store, counted.clone()));
        let registry = Registry::new(
            DocStore::new(
                counting.clone(),
                1 << 20,
                std::time::Duration::from_secs(60),
            ),
            BlobStore::new(counting, 16),
        );
        let digest = Digest::of_bytes(Algorithm::Sha256, b"{}");
        let mut expected = Vec::new();
        for name in ["a/b", "a/b-c", "a/b/c", "big/layers", "k/repo", "z/last"] {
            let name = format!("docker.io/{name}");
            registry
                .record_manifest(&name, &digest, entry(), Some("1"))
                .await
                .unwrap();
            expected.push(name);
        }
        // Key order: `a/b-c` before `a/b` (see Names).
        expected.swap(0, 1);
        // Two and a half listing pages of links, written as the store would hold them.
        registry
            .link_blob("docker.io/big/layers", &digest)
            .await
            .unwrap();
        let links = dir
            .path()
            .join("oci/repos/docker.io/big/layers/_blobs/sha256");
        for i in 0..(NAMES_LIST_PAGE as u32 * 5 / 2) {
            let layer = Digest::of_bytes(Algorithm::Sha256, &i.to_le_bytes());
            std::fs::write(links.join(layer.hex()), layer.to_string()).unwrap();
        }
        // Past the links after one listing page of them: two listing calls, not four.
        let lists = || counted.list.load(std::sync::atomic::Ordering::Relaxed);
        let before = lists();
        let all = registry.all_names().await.unwrap();
        assert_eq!(all.iter().collect::<Vec<_>>(), expected);
        assert_eq!(lists() - before, 2, "listing calls");

        let after = |cursor: Option<&'static str>| {
            let registry = registry.clone();
            async move {
                let names = registry.names_after(cursor).await.unwrap();
                names.iter().map(str::to_string).collect::<Vec<_>>()
            }
        };
        assert_eq!(after(None).await, expected);
        assert_eq!(after(Some("docker.io/a/b-c")).await, expected[1..]);
        assert_eq!(after(Some("docker.io/a/b")).await, expected[2..]);
        assert_eq!(after(Some("docker.io/big/layers")).await, expected[4..]);
        // After a name that is not stored, and after one that is not even a valid name.
        assert_eq!(after(Some("docker.io/c")).await, expected[4..]);
        assert_eq!(after(Some("docker.io/k/r~")).await, expected[5..]);
        assert_eq!(after(Some("docker.io/z/last")).await, Vec::<String>::new());
        assert_eq!(lists() - before, 2, "pages come from the kept list");

        // A new repository is listed at once by the registry that made it.
        registry
            .record_manifest("docker.io/m/new", &digest, entry(), None)
            .await
            .unwrap();
        assert!(registry
            .all_names()
            .await
            .unwrap()
            .iter()
            .any(|n| n == "docker.io/m/new"));
    }
}
