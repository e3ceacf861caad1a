//! The registry's state in the store (see `store/layout.rs`): one document per
//! repository with its tags and manifests, one small link per blob a repository holds,
//! and the catalog. Manifest bytes are ordinary content-addressed blobs.

use super::error::{Code, OciError, Result};
use super::manifest::Inspected;
use crate::digest::Digest;
use crate::store::layout::{blob_key, MetaKey};
use crate::store::{
    BlobStore, DocStore, Document, Mutability, ObjectKey, StoreError, MAX_DOCUMENT_BYTES,
};
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

pub fn catalog_key() -> ObjectKey {
    MetaKey::OciCatalog.key().expect("a constant key")
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

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    pub repositories: BTreeSet<String>,
}

/// Parsed repository documents by store version, so a hot manifest HEAD by tag costs a
/// cache lookup, not a JSON parse.
/// A repository document parsed, with the store version it was parsed from.
type Parsed = (String, Arc<RepoDoc>);

static PARSED: LazyLock<Mutex<HashMap<ObjectKey, Parsed>>> = LazyLock::new(Default::default);
/// Beyond this many repositories the parsed cache starts over (it only saves parsing).
const MAX_PARSED: usize = 4096;

/// How a repository came to be, which decides how much of the catalog it may take.
#[derive(Clone, Copy, Debug)]
enum Listing {
    /// Pushed by a writer (or written by an operator's mirror).
    Pushed,
    /// Recorded from elsewhere: pull-through (any reader can cause it) and imports.
    Recorded,
}

impl Listing {
    /// The catalog size up to which a new repository is listed. Recorded ones stop at
    /// half, so anonymous pulls of many upstream repositories cannot crowd out pushes.
    fn catalog_bytes(self) -> usize {
        match self {
            Listing::Pushed => MAX_DOCUMENT_BYTES,
            Listing::Recorded => MAX_DOCUMENT_BYTES / 2,
        }
    }
}

/// The size of the catalog as JSON, without writing it out: repository names need no
/// escaping (their grammar has no quote, backslash or control character), so it is
/// `{"repositories":[` + each name quoted, comma-separated + `]}`.
fn catalog_bytes(catalog: &Catalog) -> usize {
    let names = &catalog.repositories;
    19 + names.iter().map(|n| n.len() + 2).sum::<usize>() + names.len().saturating_sub(1)
}

#[derive(Clone, Debug)]
pub struct Registry {
    docs: DocStore,
    blobs: BlobStore,
}

fn parse_repo(key: &ObjectKey, doc: &Document) -> Result<Arc<RepoDoc>> {
    if let Some((etag, parsed)) = PARSED.lock().expect("not poisoned").get(key) {
        if *etag == doc.etag {
            return Ok(parsed.clone());
        }
    }
    let parsed: RepoDoc = serde_json::from_slice(&doc.bytes)
        .map_err(|e| StoreError::Unavailable(format!("{key}: corrupt document: {e}")))?;
    let parsed = Arc::new(parsed);
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

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// The repository, as cached (a tag may be `cache.mutable_ttl` stale across replicas).
    pub async fn repo(&self, name: &str) -> Result<Option<Arc<RepoDoc>>> {
        let key = repo_key(name)?;
        match self.docs.get(&key, Mutability::Mutable).await? {
            Some(doc) => Ok(Some(parse_repo(&key, &doc)?)),
            None => Ok(None),
        }
    }

    /// Read-modify-write of a repository without lost updates. `change` returns whether
    /// it changed anything; a new repository is entered in the catalog first.
    pub async fn update_repo<F>(&self, name: &str, change: F) -> Result<RepoDoc>
    where
        F: FnMut(&mut RepoDoc) -> Result<bool>,
    {
        self.update_repo_listed(name, Listing::Pushed, change).await
    }

    async fn update_repo_listed<F>(
        &self,
        name: &str,
        listing: Listing,
        mut change: F,
    ) -> Result<RepoDoc>
    where
        F: FnMut(&mut RepoDoc) -> Result<bool>,
    {
        let key = repo_key(name)?;
        let decode = |d: &Document| Ok((*parse_repo(&key, d)?).clone());
        let mut registered = false;
        loop {
            let mut needs_catalog = false;
            let doc = self
                .docs
                .update_json_with(&key, decode, |doc| {
                    let absent = doc.is_none();
                    let changed = change(doc.get_or_insert_with(RepoDoc::default))?;
                    needs_catalog = changed && absent && !registered;
                    Ok::<_, OciError>(changed && !needs_catalog)
                })
                .await?;
            if needs_catalog {
                // Listed before it exists, so a crash never leaves an unlisted repository.
                self.register(name, listing).await?;
                registered = true;
                continue;
            }
            return Ok(doc.expect("change filled it in"));
        }
    }

    /// Enters a repository in the catalog, while the catalog has room for it. A full
    /// catalog never fails the write it precedes: the repository works, unlisted.
    async fn register(&self, name: &str, listing: Listing) -> Result<()> {
        let room = listing.catalog_bytes();
        let mut full = false;
        self.docs
            .update_json(&catalog_key(), |catalog: &mut Catalog| {
                if catalog.repositories.contains(name) {
                    return Ok::<_, OciError>(false);
                }
                full = catalog_bytes(catalog) + name.len() + 3 > room;
                Ok(!full && catalog.repositories.insert(name.to_string()))
            })
            .await?;
        if full {
            tracing::warn!(
                repo = name,
                ?listing,
                "the OCI catalog is full: this repository works but is not listed in /v2/_catalog"
            );
        }
        Ok(())
    }

    pub async fn catalog(&self) -> Result<Vec<String>> {
        let key = catalog_key();
        match self.docs.get(&key, Mutability::Mutable).await? {
            None => Ok(Vec::new()),
            Some(d) => {
                let catalog: Catalog = serde_json::from_slice(&d.bytes)
                    .map_err(|e| StoreError::Unavailable(format!("{key}: {e}")))?;
                Ok(catalog.repositories.into_iter().collect())
            }
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
        self.update_repo_listed(name, Listing::Recorded, |doc| {
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

    #[tokio::test]
    async fn recorded_repositories_leave_half_the_catalog_to_pushes() {
        let dir = tempfile::tempdir().unwrap();
        let store: DynStore = Arc::new(FsStore::open(dir.path()).await.unwrap());
        let registry = Registry {
            docs: DocStore::new(store.clone(), 1 << 20, std::time::Duration::ZERO),
            blobs: BlobStore::new(store, 16),
        };
        // Just over half full, as many pulled-through repositories would leave it.
        let names: BTreeSet<String> = (0..MAX_DOCUMENT_BYTES / 2 / 30 + 1)
            .map(|i| format!("docker.io/filler/r{i:09}"))
            .collect();
        let catalog = Catalog {
            repositories: names,
        };
        let counted = catalog_bytes(&catalog);
        let catalog = serde_json::to_vec(&catalog).unwrap();
        assert_eq!(counted, catalog.len());
        assert_eq!(
            catalog_bytes(&Catalog::default()),
            b"{\"repositories\":[]}".len()
        );
        assert!(catalog.len() > MAX_DOCUMENT_BYTES / 2);
        let key = catalog_key();
        registry
            .docs
            .put(
                &key,
                catalog.into(),
                crate::store::PutMode::Overwrite,
                Mutability::Mutable,
            )
            .await
            .unwrap();
        let digest = Digest::of_bytes(Algorithm::Sha256, b"{}");

        // Pull-through records the repository (it works) but does not list it.
        registry
            .record_manifest("docker.io/upstream/one", &digest, entry(), Some("1"))
            .await
            .unwrap();
        assert!(registry
            .repo("docker.io/upstream/one")
            .await
            .unwrap()
            .is_some());
        let listed = registry.catalog().await.unwrap();
        assert!(!listed.iter().any(|n| n == "docker.io/upstream/one"));
        // A push still has the other half.
        registry
            .update_repo("docker.io/team/pushed", |doc| {
                doc.manifests.insert(digest.clone(), entry());
                Ok(true)
            })
            .await
            .unwrap();
        let listed = registry.catalog().await.unwrap();
        assert!(listed.iter().any(|n| n == "docker.io/team/pushed"));
    }
}
