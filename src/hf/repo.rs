//! Reading and changing repositories: repo documents, refs, commits.

use super::commit_doc::{self, FilePage, StoredCommit};
use super::error::HfError;
use super::git;
use super::model::{
    is_commit_id, Commit, CommitSummary, CommitView, FileEntry, RefsDoc, RepoDoc, RepoRef, RepoType,
};
use super::xet_store::XetStore;
use crate::digest::Digest;
use crate::store::claims::Claim;
use crate::store::layout::MetaKey;
use crate::store::CacheShare;
use crate::store::{
    collect_limited, BlobStore, DocStore, Document, GetOptions, Mutability, NameList, ObjectKey,
    PutMode, StoreError,
};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

/// A change to a branch's file list.
#[derive(Clone, Debug)]
pub enum Op {
    /// Add or replace a file.
    Put(FileEntry),
    Delete(String),
    /// Every file under this folder.
    DeleteFolder(String),
    /// The new commit holds exactly these files (an import of a whole snapshot).
    ReplaceAll(Vec<FileEntry>),
}

/// Which branch head a commit must build on.
#[derive(Clone, Debug)]
pub enum Parent {
    /// Whatever the branch points at when the commit lands (rebased on a lost race).
    Latest,
    /// Only this commit; a moved branch is a conflict.
    Exactly(String),
    /// None: the repository's first commit. The refs start over with it as the branch's
    /// head, whatever a deletion of an earlier repository of that name left behind.
    Initial,
    /// None: a new history holding the files of the branch's head when the commit lands
    /// (`super_squash_history`). The branch must exist; other refs keep their commits.
    Squash,
}

#[derive(Clone)]
pub struct Repos {
    docs: DocStore,
    blobs: BlobStore,
    /// Files uploaded through Xet, for reading them (`file_bytes.rs`).
    xet: XetStore,
    /// Parsed commits with their trees, by `<repo dir>/<commit id>`: immutable, so cached
    /// without expiry; a HEAD on a large repo does not re-parse its file list.
    commits: moka::future::Cache<String, Arc<CommitView>>,
}

impl std::fmt::Debug for Repos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repos").finish_non_exhaustive()
    }
}

/// A repository's documents (see `store/layout.rs`).
enum Doc<'a> {
    Repo,
    Refs,
    Commit(&'a str),
    /// The repository holds this LFS object (see `link_lfs`).
    LfsLink(&'a Digest),
}

impl RepoRef {
    fn meta_key(&self, doc: Doc) -> ObjectKey {
        let (kind, id) = (self.kind.plural().to_string(), self.id.clone());
        match doc {
            Doc::Repo => MetaKey::HfRepo { kind, id },
            Doc::Refs => MetaKey::HfRefs { kind, id },
            Doc::Commit(commit) => MetaKey::HfCommit {
                kind,
                id,
                commit: commit.to_string(),
            },
            Doc::LfsLink(digest) => MetaKey::HfLfsLink {
                kind,
                id,
                digest: digest.clone(),
            },
        }
        .key()
        .expect("repo keys are built from validated ids")
    }
}

/// The kept list of a kind's repository ids (`DocStore::kept_list`).
fn list_id(kind: RepoType) -> String {
    format!("hf/{}", kind.plural())
}

fn list_key(kind: RepoType) -> ObjectKey {
    let kind = kind.plural().to_string();
    MetaKey::HfList { kind }.key().expect("a constant key")
}

pub(super) fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, HfError> {
    serde_json::from_slice(bytes)
        .map_err(|e| HfError::from(StoreError::Unavailable(format!("corrupt metadata: {e}"))))
}

fn decode<T: serde::de::DeserializeOwned>(doc: &Document) -> Result<T, HfError> {
    parse(&doc.bytes)
}

fn json(value: &impl serde::Serialize) -> Bytes {
    serde_json::to_vec(value).expect("serializable").into()
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`
pub fn now_iso() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

impl Repos {
    pub fn new(docs: DocStore, blobs: BlobStore) -> Repos {
        Repos {
            xet: XetStore::new(blobs.store().clone(), docs.clone()),
            // By bytes, not entries: one commit of a large repository lists every file.
            commits: moka::future::Cache::builder()
                .max_capacity(docs.memory_for(CacheShare::HfCommits))
                .weigher(|k: &String, v: &Arc<CommitView>| {
                    u32::try_from(k.len() + v.approximate_bytes()).unwrap_or(u32::MAX)
                })
                .build(),
            docs,
            blobs,
        }
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    pub fn xet(&self) -> &XetStore {
        &self.xet
    }

    pub async fn repo(&self, repo: &RepoRef) -> Result<Option<RepoDoc>, HfError> {
        let doc = self
            .docs
            .get(&repo.meta_key(Doc::Repo), Mutability::Mutable)
            .await?;
        doc.map(|d| parse(&d.bytes)).transpose()
    }

    pub async fn refs(&self, repo: &RepoRef) -> Result<RefsDoc, HfError> {
        let doc = self
            .docs
            .get(&repo.meta_key(Doc::Refs), Mutability::Mutable)
            .await?;
        Ok(doc
            .map(|d| parse(&d.bytes))
            .transpose()?
            .unwrap_or_default())
    }

    pub async fn commit(
        &self,
        repo: &RepoRef,
        id: &str,
    ) -> Result<Option<Arc<CommitView>>, HfError> {
        if !is_commit_id(id) {
            return Ok(None);
        }
        let refs = self.refs(repo).await?;
        self.commit_in(repo, &refs, id).await
    }

    /// Commit `id` of the repository whose refs are `refs`. Requests that miss the cache
    /// together wait for one load: a commit of 100,000 files is 3 MB of pages parsed into
    /// a view of tens of MB, and 32 clients asking for it at once parsed it 32 times
    /// (700-800 MB of peak RSS).
    async fn commit_in(
        &self,
        repo: &RepoRef,
        refs: &RefsDoc,
        id: &str,
    ) -> Result<Option<Arc<CommitView>>, HfError> {
        let loaded = self
            .commits
            .try_get_with(commit_cache_key(repo, refs, id), async {
                let stored = self.stored_commit(repo, id).await?.ok_or(None)?;
                Ok::<_, Option<HfError>>(self.view_of(stored).await?)
            })
            .await;
        match loaded {
            Ok(view) => Ok(Some(view)),
            // Not stored (nothing is cached for it).
            Err(e) => match e.as_ref() {
                None => Ok(None),
                Some(e) => Err(e.clone()),
            },
        }
    }

    /// What a repository list shows of `rev`'s commit: a paged commit's pages are not
    /// read (a list of models is then one small document each, whatever their size),
    /// unless it was written before pages recorded their sizes.
    pub async fn summary(&self, repo: &RepoRef, rev: &str) -> Result<CommitSummary, HfError> {
        let refs = self.refs(repo).await?;
        let id = commit_id(&refs, rev)?;
        let cache_key = commit_cache_key(repo, &refs, &id);
        if let Some(view) = self.commits.get(&cache_key).await {
            return Ok(view.commit.summary());
        }
        let stored = self
            .stored_commit(repo, &id)
            .await?
            .ok_or_else(|| HfError::revision_not_found(rev))?;
        if let Some(summary) = stored.summary() {
            return Ok(summary);
        }
        // The document just read is loaded into the view, as `commit_in` would.
        let view = self
            .commits
            .try_get_with(cache_key, self.view_of(stored))
            .await
            .map_err(|e| e.as_ref().clone())?;
        Ok(view.commit.summary())
    }

    async fn stored_commit(
        &self,
        repo: &RepoRef,
        id: &str,
    ) -> Result<Option<StoredCommit>, HfError> {
        let Some(doc) = self.docs.get_fresh(&repo.meta_key(Doc::Commit(id))).await? else {
            return Ok(None);
        };
        commit_doc::decode(&doc.bytes).map(Some)
    }

    /// The view of a stored commit, its pages read.
    async fn view_of(&self, stored: StoredCommit) -> Result<Arc<CommitView>, HfError> {
        let pages: Vec<String> = stored.file_pages.iter().map(|p| p.sha256.clone()).collect();
        let files = self.read_pages(&stored).await?;
        let mut view = CommitView::new(stored.into_commit(files));
        view.pages = pages;
        Ok(Arc::new(view))
    }

    /// The file list of a paged commit, its pages read a few at a time.
    async fn read_pages(&self, stored: &StoredCommit) -> Result<Vec<FileEntry>, HfError> {
        if stored.paged_files() > commit_doc::MAX_COMMIT_FILES {
            return Err(commit_doc::corrupt(format!(
                "it lists {} files",
                stored.paged_files()
            )));
        }
        let reads = stored.file_pages.iter().cloned().map(|p| self.read_page(p));
        let pages: Vec<Vec<FileEntry>> = futures::stream::iter(reads)
            .buffered(8)
            .try_collect()
            .await?;
        Ok(pages.concat())
    }

    async fn read_page(&self, page: FilePage) -> Result<Vec<FileEntry>, HfError> {
        let missing = || commit_doc::corrupt(format!("page {} is missing", page.sha256));
        let digest = Digest::sha256_hex(&page.sha256).map_err(|_| missing())?;
        let got = match self.blobs.get(&digest, GetOptions::default()).await {
            Err(StoreError::NotFound(_)) => return Err(missing()),
            got => got?,
        };
        let bytes = collect_limited(got.body, commit_doc::MAX_PAGE_BYTES)
            .await
            .map_err(|e| commit_doc::corrupt(format!("page {}: {e}", page.sha256)))?;
        commit_doc::decode_page(&page, &bytes)
    }

    /// Writes a commit's document, and first the pages it names (claimed, so that no
    /// collection removes one it shares with an older commit). The caller releases the
    /// claim once a ref names the commit.
    async fn write_commit(&self, repo: &RepoRef, commit: &Commit) -> Result<Claim, HfError> {
        let encoded = commit_doc::encode(commit)?;
        let digests: Vec<Digest> = encoded.pages.iter().map(|p| p.digest.clone()).collect();
        let (claim, missing) = self.blobs.claim(&digests).await?;
        let written = async {
            for page in encoded.pages.iter().filter(|p| missing.contains(&p.digest)) {
                let size = page.bytes.len() as u64;
                self.blobs
                    .put(
                        &page.digest,
                        crate::store::bytes_stream(page.bytes.clone()),
                        Some(size),
                    )
                    .await?;
            }
            let key = repo.meta_key(Doc::Commit(&commit.id));
            match self
                .docs
                .put(&key, encoded.doc, PutMode::Create, Mutability::Immutable)
                .await
            {
                Ok(_) | Err(StoreError::PreconditionFailed(_)) => Ok(()),
                Err(e) => Err(HfError::from(e)),
            }
        }
        .await;
        match written {
            Ok(()) => Ok(claim),
            Err(e) => {
                claim.release().await;
                Err(e)
            }
        }
    }

    /// A revision (branch, tag, `refs/...`, or a commit id) to its commit.
    pub async fn resolve(&self, repo: &RepoRef, rev: &str) -> Result<Arc<CommitView>, HfError> {
        let refs = self.refs(repo).await?;
        let id = commit_id(&refs, rev)?;
        self.commit_in(repo, &refs, &id)
            .await?
            .ok_or_else(|| HfError::revision_not_found(rev))
    }

    /// Creates the repository with an initial commit holding the Hub's default
    /// `.gitattributes`; `Ok(false)` when it already existed.
    pub async fn create(
        &self,
        repo: &RepoRef,
        private: bool,
        author: &str,
    ) -> Result<bool, HfError> {
        if !self.put_repo_doc(repo, private, now_iso()).await? {
            self.ensure_listed(repo).await?;
            return Ok(false);
        }
        let attributes = Bytes::from_static(DEFAULT_GITATTRIBUTES.as_bytes());
        let entry = self.store_small_file(".gitattributes", attributes).await?;
        self.commit_changes(
            repo,
            "main",
            Parent::Initial,
            vec![Op::Put(entry)],
            "initial commit",
            "",
            author,
            None,
        )
        .await?;
        self.list_repo(repo).await?;
        Ok(true)
    }

    /// Creates the repository without any commit, for a mirror that brings the upstream's
    /// own commits; `Ok(false)` when it already existed.
    pub async fn create_empty(&self, repo: &RepoRef, created_at: String) -> Result<bool, HfError> {
        if !self.put_repo_doc(repo, false, created_at).await? {
            self.ensure_listed(repo).await?;
            return Ok(false);
        }
        self.list_repo(repo).await?;
        Ok(true)
    }

    /// Writes the repository document unless one exists; `Ok(false)` when it did.
    async fn put_repo_doc(
        &self,
        repo: &RepoRef,
        private: bool,
        created_at: String,
    ) -> Result<bool, HfError> {
        let doc = RepoDoc {
            id: repo.id.clone(),
            kind: repo.kind,
            private,
            gated: false,
            created_at,
            mirrored: false,
        };
        let repo_key = repo.meta_key(Doc::Repo);
        match self
            .docs
            .put(&repo_key, json(&doc), PutMode::Create, Mutability::Mutable)
            .await
        {
            Ok(_) => Ok(true),
            Err(StoreError::PreconditionFailed(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Turns gating on or off for an existing repository.
    pub async fn set_gated(&self, repo: &RepoRef, gated: bool) -> Result<(), HfError> {
        let repo_key = repo.meta_key(Doc::Repo);
        self.docs
            .update_json_with(&repo_key, decode, |doc: &mut Option<RepoDoc>| {
                let Some(doc) = doc else {
                    return Err(HfError::repo_not_found(&repo.id));
                };
                if doc.gated == gated {
                    return Ok(false);
                }
                doc.gated = gated;
                Ok(true)
            })
            .await?;
        Ok(())
    }

    /// Records that this repository holds the LFS object: its writer uploaded the bytes
    /// (verified) for it. Only then, or when a revision of the repository already holds
    /// the object, may a commit name it by oid alone: a digest is public (gated repos
    /// publish theirs), so knowing one must not be a key to the content.
    pub async fn link_lfs(&self, repo: &RepoRef, digest: &Digest) -> Result<(), HfError> {
        self.docs
            .put(
                &repo.meta_key(Doc::LfsLink(digest)),
                Bytes::from(digest.to_string()),
                PutMode::Overwrite,
                Mutability::Mutable,
            )
            .await?;
        Ok(())
    }

    /// Whether this repository may name the LFS object without uploading it: linked by an
    /// upload, or held by the head of one of its branches or tags. `heads` collects the
    /// heads' objects once for a caller asking about many.
    pub async fn holds_lfs(
        &self,
        repo: &RepoRef,
        digest: &Digest,
        heads: &mut Option<HashSet<String>>,
    ) -> Result<bool, HfError> {
        if self
            .docs
            .get(&repo.meta_key(Doc::LfsLink(digest)), Mutability::Mutable)
            .await?
            .is_some()
        {
            return Ok(true);
        }
        if heads.is_none() {
            *heads = Some(self.head_objects(repo).await?);
        }
        Ok(heads
            .as_ref()
            .is_some_and(|held| held.contains(digest.hex())))
    }

    /// The sha256 of every file at the head of a branch or tag of the repository.
    async fn head_objects(&self, repo: &RepoRef) -> Result<HashSet<String>, HfError> {
        let refs = self.refs(repo).await?;
        let ids: BTreeSet<&String> = refs
            .branches
            .values()
            .chain(refs.tags.values())
            .chain(refs.prs.values())
            .collect();
        let mut held = HashSet::new();
        for id in ids {
            if let Some(view) = self.commit(repo, id).await? {
                held.extend(view.commit.files.iter().map(|f| f.sha256.clone()));
            }
        }
        Ok(held)
    }

    /// Stores a small regular file from memory and describes it.
    pub async fn store_small_file(&self, path: &str, content: Bytes) -> Result<FileEntry, HfError> {
        let digest = crate::digest::Digest::of_bytes(crate::digest::Algorithm::Sha256, &content);
        let size = content.len() as u64;
        let entry = FileEntry {
            path: path.to_string(),
            size,
            sha256: digest.hex().to_string(),
            oid: git::blob_oid(&content),
            lfs: false,
            xet_hash: None,
        };
        self.blobs
            .put(&digest, crate::store::bytes_stream(content), Some(size))
            .await?;
        Ok(entry)
    }

    /// Whether the repository document is in the store right now (not as cached).
    async fn stored(&self, repo: &RepoRef) -> Result<bool, HfError> {
        Ok(self
            .docs
            .get_fresh(&repo.meta_key(Doc::Repo))
            .await?
            .is_some())
    }

    /// Deletes the repository: it leaves its kind's list, and its repo.json, refs.json,
    /// commits and LFS links are removed. Blobs and Xet data stay: they are shared by
    /// content, and garbage collection frees what nothing references any more.
    /// `Ok(false)` when there was no such repository.
    ///
    /// The order is what keeps writers racing the deletion from bringing back half a
    /// repository. The list entry and repo.json go first: from then on every route
    /// answers RepoNotFound (each loads repo.json first), and refs.json can no longer be
    /// created (`update_refs` and `commit_changes` create it only while repo.json is
    /// stored). Then refs.json: a commit in flight fails its conditional update of it,
    /// finds neither refs nor repository, and gives up. The repository's folder is
    /// listed only after that, so every commit a ref ever pointed at (written before its
    /// ref) is in the listing. What may still land later (the commit document of a
    /// commit that then gave up, the link of an upload finishing now, even refs.json from
    /// a conditional update whose check just preceded its removal) is unreadable without
    /// repo.json and left as garbage: a repository created again under this name starts
    /// its refs afresh (`Parent::Initial`).
    pub async fn delete(&self, repo: &RepoRef) -> Result<bool, HfError> {
        let repo_key = repo.meta_key(Doc::Repo);
        if self.docs.get_fresh(&repo_key).await?.is_none() {
            return Ok(false);
        }
        self.docs
            .update_json(&list_key(repo.kind), |ids: &mut Vec<String>| {
                Ok::<_, HfError>(match ids.binary_search(&repo.id) {
                    Ok(at) => {
                        ids.remove(at);
                        true
                    }
                    Err(_) => false,
                })
            })
            .await?;
        self.docs.forget_list(&list_id(repo.kind)).await;
        self.docs.delete(&repo_key).await?;
        self.docs.delete(&repo.meta_key(Doc::Refs)).await?;
        self.delete_documents(repo).await?;
        Ok(true)
    }

    /// Deletes every document of the repository's folder (as `MetaKey` reads its keys;
    /// anything else there is left alone), a listing page at a time.
    async fn delete_documents(&self, repo: &RepoRef) -> Result<(), HfError> {
        use futures::{StreamExt as _, TryStreamExt as _};
        let (kind, dir) = (repo.kind.plural(), &repo.key_dir());
        let prefix = format!("{dir}/");
        let mut after: Option<String> = None;
        loop {
            let page = self
                .blobs
                .store()
                .list_keys(&prefix, after.as_deref(), 1000)
                .await?;
            let mine: Vec<MetaKey> = page
                .keys
                .iter()
                .filter_map(|key| MetaKey::parse(key.as_str()))
                .filter(|k| match k {
                    MetaKey::HfRepo { kind: k, id }
                    | MetaKey::HfRefs { kind: k, id }
                    | MetaKey::HfCommit { kind: k, id, .. }
                    | MetaKey::HfLfsLink { kind: k, id, .. } => k == kind && *id == repo.id,
                    _ => false,
                })
                .collect();
            futures::stream::iter(mine)
                .map(|doc| async move {
                    // Cached commits go with the generation of the refs made next.
                    self.docs.delete(&doc.key()?).await?;
                    Ok::<_, HfError>(())
                })
                .buffer_unordered(16)
                .try_collect::<()>()
                .await?;
            match page.next_start_after {
                Some(next) => after = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// Lists a repository whose document exists: a create that failed after writing it
    /// (a lost race on the list) is finished by the next create, which the client's retry
    /// or `exist_ok` makes.
    async fn ensure_listed(&self, repo: &RepoRef) -> Result<(), HfError> {
        let names = self.names(repo.kind).await?;
        let at = names.partition_point(|id| id < repo.id.as_str());
        if at == names.len() || names.get(at) != repo.id {
            self.list_repo(repo).await?;
        }
        Ok(())
    }

    async fn list_repo(&self, repo: &RepoRef) -> Result<(), HfError> {
        self.docs
            .update_json(&list_key(repo.kind), |ids: &mut Vec<String>| {
                Ok::<_, HfError>(match ids.binary_search(&repo.id) {
                    Ok(_) => false,
                    Err(at) => {
                        ids.insert(at, repo.id.clone());
                        true
                    }
                })
            })
            .await?;
        self.docs.forget_list(&list_id(repo.kind)).await;
        Ok(())
    }

    /// The repository ids of a kind, sorted, kept (`DocStore::kept_list`: parsing the
    /// list of 100,000 ids is not done per request); this process's creations and
    /// deletions are listed at once.
    pub async fn names(&self, kind: RepoType) -> Result<Arc<NameList>, HfError> {
        let docs = self.docs.clone();
        self.docs
            .kept_list(&list_id(kind), move || async move {
                let doc = docs.get_fresh(&list_key(kind)).await?;
                let ids: Vec<String> = doc
                    .map(|d| parse(&d.bytes))
                    .transpose()?
                    .unwrap_or_default();
                Ok::<_, HfError>(ids.iter().collect())
            })
            .await
            .map_err(|e| (*e).clone())
    }

    /// How long what follows moving refs may be kept.
    pub fn mutable_ttl(&self) -> std::time::Duration {
        self.docs.mutable_ttl()
    }

    /// [`names`](Self::names), copied.
    pub async fn list(&self, kind: RepoType) -> Result<Vec<String>, HfError> {
        Ok(self.names(kind).await?.iter().map(str::to_string).collect())
    }

    /// Applies `ops` on top of the branch head and moves the branch, without losing a
    /// racing commit: if the branch moved meanwhile, a `Parent::Latest` (or `Squash`)
    /// commit is rebuilt on the new head; a `Parent::Exactly` commit is refused.
    /// `commit_id` keeps an imported commit's original id. refs.json is created only
    /// while the repository is stored (see `delete`).
    /// Claims the stored content of the files a commit adds (`store/claims.rs`): a blob,
    /// and the xorbs of a file uploaded through Xet. Content a collection removed
    /// after it was uploaded is refused by path: the client must upload it again.
    async fn claim_files(&self, ops: &[Op]) -> Result<[Claim; 2], HfError> {
        let entries = ops.iter().flat_map(|op| match op {
            Op::Put(entry) => std::slice::from_ref(entry),
            Op::ReplaceAll(entries) => entries.as_slice(),
            _ => &[],
        });
        let mut blobs: Vec<(Digest, &str)> = Vec::new();
        let mut xorbs: Vec<(crate::xet::MerkleHash, &str)> = Vec::new();
        for entry in entries {
            let Ok(digest) = Digest::sha256_hex(&entry.sha256) else {
                continue;
            };
            match super::file_bytes::locate(self, &digest, entry.xet_hash.as_deref()).await? {
                Some(super::file_bytes::FileBytes::Blob { .. }) => {
                    blobs.push((digest, &entry.path))
                }
                Some(super::file_bytes::FileBytes::Xet(_)) | None => {}
            }
            let doc = match entry.xet_hash.as_deref().and_then(|h| h.parse().ok()) {
                Some(hash) => self.xet.file(&hash).await?,
                None => None,
            };
            for term in doc.iter().flat_map(|d| &d.terms) {
                if let Ok(xorb) = term.xorb.parse() {
                    if !xorbs.iter().any(|(x, _)| *x == xorb) {
                        xorbs.push((xorb, &entry.path));
                    }
                }
            }
        }
        let removed = |path: &str| {
            HfError::bad_request(format!(
                "{path}: its content was removed by garbage collection after it was uploaded; upload the file again"
            ))
        };
        let digests: Vec<Digest> = blobs.iter().map(|(d, _)| d.clone()).collect();
        let (blob_claim, gone) = self.blobs.claim(&digests).await?;
        let hashes: Vec<_> = xorbs.iter().map(|(x, _)| *x).collect();
        let (xorb_claim, gone_xorbs) = self.xet.claim_xorbs(&hashes).await?;
        let claims = [blob_claim, xorb_claim];
        let refused = if let Some(gone) = gone.first() {
            Some(blobs.iter().find(|(d, _)| d == gone).map_or("", |(_, p)| p))
        } else {
            gone_xorbs
                .first()
                .map(|gone| xorbs.iter().find(|(x, _)| x == gone).map_or("", |(_, p)| p))
        };
        if let Some(path) = refused {
            let error = removed(path);
            for claim in claims {
                claim.release().await;
            }
            return Err(error);
        }
        Ok(claims)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn commit_changes(
        &self,
        repo: &RepoRef,
        branch: &str,
        parent: Parent,
        ops: Vec<Op>,
        title: &str,
        description: &str,
        author: &str,
        commit_id: Option<String>,
    ) -> Result<Arc<CommitView>, HfError> {
        let claims = self.claim_files(&ops).await?;
        let committed = self
            .commit_claimed(
                repo,
                branch,
                parent,
                ops,
                title,
                description,
                author,
                commit_id,
            )
            .await;
        for claim in claims {
            claim.release().await;
        }
        committed
    }

    #[allow(clippy::too_many_arguments)]
    async fn commit_claimed(
        &self,
        repo: &RepoRef,
        branch: &str,
        parent: Parent,
        ops: Vec<Op>,
        title: &str,
        description: &str,
        author: &str,
        commit_id: Option<String>,
    ) -> Result<Arc<CommitView>, HfError> {
        let refs_key = repo.meta_key(Doc::Refs);
        for _ in 0..16 {
            let refs_doc = self.docs.get_fresh(&refs_key).await?;
            let refs: RefsDoc = refs_doc
                .as_ref()
                .map(|d| parse(&d.bytes))
                .transpose()?
                .unwrap_or_default();
            if refs_doc.is_none() && !self.stored(repo).await? {
                return Err(HfError::repo_not_found(&repo.id));
            }
            let head = match parent {
                Parent::Initial => None,
                _ => refs.branches.get(branch).cloned(),
            };
            match &parent {
                Parent::Exactly(expected) if head.as_deref() != Some(expected.as_str()) => {
                    return Err(HfError::new(
                        http::StatusCode::PRECONDITION_FAILED,
                        None,
                        format!("parentCommit {expected} is not the head of `{branch}` any more; pull and retry"),
                    ));
                }
                Parent::Squash if head.is_none() => {
                    return Err(HfError::revision_not_found(branch));
                }
                _ => {}
            }
            let base = match &head {
                Some(id) => self
                    .commit(repo, id)
                    .await?
                    .map(|v| v.commit.files.clone())
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            let files = apply(base, &ops)?;
            let message = if description.is_empty() {
                title.to_string()
            } else {
                format!("{title}\n\n{description}")
            };
            let date = now_iso();
            let parents: Vec<String> = match parent {
                Parent::Latest | Parent::Exactly(_) => head.iter().cloned().collect(),
                Parent::Initial | Parent::Squash => Vec::new(),
            };
            let (_, root) = super::model::tree_oids(&files);
            let id = commit_id.clone().unwrap_or_else(|| {
                let unix = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0);
                git::commit_oid(
                    &root,
                    &parents,
                    &format!("{author} <{author}@airlock>"),
                    unix,
                    &message,
                )
            });
            let config = self.model_config(&files).await;
            let commit = Commit {
                id: id.clone(),
                parents,
                title: title.to_string(),
                message,
                author: author.to_string(),
                date,
                files,
                config,
            };
            let pages = self.write_commit(repo, &commit).await?;
            let mut new_refs = match parent {
                Parent::Initial => RefsDoc::new(),
                _ => refs.clone(),
            };
            new_refs.branches.insert(branch.to_string(), id.clone());
            let mode = match &refs_doc {
                Some(d) => PutMode::Update(d.etag.clone()),
                None => PutMode::Create,
            };
            let moved = self
                .docs
                .put(&refs_key, json(&new_refs), mode, Mutability::Mutable)
                .await;
            pages.release().await;
            match moved {
                Ok(_) => {
                    return self.commit(repo, &id).await?.ok_or_else(|| {
                        HfError::from(StoreError::Unavailable(format!(
                            "commit {id} vanished after writing"
                        )))
                    })
                }
                // Another commit moved a ref first: build again on top of it.
                Err(StoreError::PreconditionFailed(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(HfError::conflict(format!(
            "branch `{branch}` is changing too fast; retry the commit"
        )))
    }

    /// Whether the commit `id` is gone from the store (retention cut it) while this
    /// process still has it cached: what a failed read of one of its files asks.
    pub async fn commit_gone(&self, repo: &RepoRef, id: &str) -> Result<bool, HfError> {
        Ok(self
            .docs
            .get_fresh(&repo.meta_key(Doc::Commit(id)))
            .await?
            .is_none())
    }

    /// Deletes the stored commits `ids` (retention cutting old history, as a shallow
    /// clone does), then starts a new generation of refs.json so that every process
    /// reads its cached commits again. They no longer resolve, and the history of a commit kept
    /// stops where its parent is gone. The caller makes sure no ref names one of them.
    pub async fn forget_commits(&self, repo: &RepoRef, ids: &[String]) -> Result<(), HfError> {
        for id in ids.iter().filter(|id| is_commit_id(id)) {
            self.docs.delete(&repo.meta_key(Doc::Commit(id))).await?;
        }
        self.update_refs(repo, |refs| {
            refs.generation = RefsDoc::next_generation(refs.generation);
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Replaces `branch`'s history by one commit without parents holding the files of its
    /// head (`super_squash_history`). The old commits stay stored; tags and other
    /// branches keep pointing at theirs.
    pub async fn squash(
        &self,
        repo: &RepoRef,
        branch: &str,
        message: &str,
        author: &str,
    ) -> Result<Arc<CommitView>, HfError> {
        let (title, description) = message
            .split_once('\n')
            .map(|(title, rest)| (title, rest.trim_start()))
            .unwrap_or((message, ""));
        self.commit_changes(
            repo,
            branch,
            Parent::Squash,
            Vec::new(),
            title,
            description,
            author,
            None,
        )
        .await
    }

    /// Stores a commit as it is (imports keep their original ids); storing it again is a
    /// no-op. The caller releases the claim once a ref names the commit (`write_commit`).
    pub async fn store_commit(&self, repo: &RepoRef, mut commit: Commit) -> Result<Claim, HfError> {
        commit.files.sort_by(|a, b| a.path.cmp(&b.path));
        if commit.config.is_none() {
            commit.config = self.model_config(&commit.files).await;
        }
        self.write_commit(repo, &commit).await
    }

    /// Records a commit read from an upstream Hub, its id kept, in a repository made for
    /// it if new (`mirrored`, private and gated as the upstream says, and kept so on every
    /// later revalidation); a branch or tag name `rev` then points at it.
    pub async fn record_upstream(
        &self,
        repo: &RepoRef,
        commit: Commit,
        rev: &str,
        (private, gated): (bool, bool),
    ) -> Result<(), HfError> {
        let doc = RepoDoc {
            id: repo.id.clone(),
            kind: repo.kind,
            private,
            gated,
            created_at: now_iso(),
            mirrored: true,
        };
        let repo_key = repo.meta_key(Doc::Repo);
        match self
            .docs
            .put(&repo_key, json(&doc), PutMode::Create, Mutability::Mutable)
            .await
        {
            Ok(_) => self.list_repo(repo).await?,
            Err(StoreError::PreconditionFailed(_)) => {
                self.docs
                    .update_json_with(&repo_key, decode, |doc: &mut Option<RepoDoc>| {
                        let Some(doc) = doc else {
                            return Ok(false);
                        };
                        if !doc.mirrored || (doc.private, doc.gated) == (private, gated) {
                            return Ok(false);
                        }
                        (doc.private, doc.gated) = (private, gated);
                        Ok::<_, HfError>(true)
                    })
                    .await?;
            }
            Err(e) => return Err(e.into()),
        }
        let id = commit.id.clone();
        let pages = self.store_commit(repo, commit).await?;
        let name = rev.strip_prefix("refs/heads/").unwrap_or(rev);
        if is_commit_id(rev) || !super::model::is_valid_ref_name(name) {
            // Served by its id alone (`served_commits` marks it).
            pages.release().await;
            return Ok(());
        }
        let named = self
            .update_refs(repo, |refs| {
                match refs.tags.get_mut(name) {
                    Some(tag) => *tag = id.clone(),
                    None => {
                        refs.branches.insert(name.to_string(), id.clone());
                    }
                }
                Ok(())
            })
            .await;
        pages.release().await;
        named.map(|_| ())
    }

    /// Changes refs other than by committing (branches, tags, PR refs), atomically.
    /// refs.json is created only while the repository is stored (see `delete`).
    pub async fn update_refs<F>(&self, repo: &RepoRef, mut change: F) -> Result<RefsDoc, HfError>
    where
        F: FnMut(&mut RefsDoc) -> Result<(), HfError>,
    {
        let key = repo.meta_key(Doc::Refs);
        let mut may_create = false;
        loop {
            let mut absent = false;
            let refs = self
                .docs
                .update_json_with(&key, decode, |refs: &mut Option<RefsDoc>| {
                    if refs.is_none() && !may_create {
                        absent = true;
                        return Ok(false);
                    }
                    change(refs.get_or_insert_with(RefsDoc::new))?;
                    Ok(true)
                })
                .await?;
            if !absent {
                return Ok(refs.expect("filled in when present or creatable"));
            }
            if !self.stored(repo).await? {
                return Err(HfError::repo_not_found(&repo.id));
            }
            may_create = true;
        }
    }

    /// `architectures` and `model_type` from a small config.json, for /api/models listings.
    async fn model_config(&self, files: &[FileEntry]) -> Option<serde_json::Value> {
        let f = files
            .iter()
            .find(|f| f.path == "config.json" && f.size <= 1024 * 1024)?;
        let bytes = super::file_bytes::read_small(self, &f.sha256, 1024 * 1024).await?;
        let config: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        let mut out = serde_json::Map::new();
        for k in ["architectures", "model_type"] {
            if let Some(v) = config.get(k) {
                out.insert(k.to_string(), v.clone());
            }
        }
        Some(serde_json::Value::Object(out))
    }
}

/// The branch's files after `ops`, sorted by path. By path in a map: a commit of 100,000
/// files onto 100,000 must not compare every pair.
fn apply(base: Vec<FileEntry>, ops: &[Op]) -> Result<Vec<FileEntry>, HfError> {
    let by_path = |files: Vec<FileEntry>| -> BTreeMap<String, FileEntry> {
        files.into_iter().map(|f| (f.path.clone(), f)).collect()
    };
    let mut files = by_path(base);
    for op in ops {
        match op {
            Op::Put(entry) => {
                files.insert(entry.path.clone(), entry.clone());
            }
            Op::Delete(path) => {
                if files.remove(path).is_none() {
                    return Err(HfError::not_found(format!(
                        "cannot delete {path}: no such file"
                    )));
                }
            }
            Op::DeleteFolder(folder) => {
                let prefix = format!("{}/", folder.trim_end_matches('/'));
                let doomed: Vec<String> = files
                    .range(prefix.clone()..)
                    .take_while(|(path, _)| path.starts_with(&prefix))
                    .map(|(path, _)| path.clone())
                    .collect();
                if doomed.is_empty() {
                    return Err(HfError::not_found(format!(
                        "cannot delete folder {folder}: no such folder"
                    )));
                }
                for path in doomed {
                    files.remove(&path);
                }
            }
            Op::ReplaceAll(all) => files = by_path(all.clone()),
        }
    }
    // A path cannot be both a file and a folder. Not only the next path can be under it:
    // `a.txt` sorts between `a` and `a/b`.
    for path in files.keys() {
        let folder = format!("{path}/");
        if let Some((under, _)) = files.range(folder.clone()..).next() {
            if under.starts_with(&folder) {
                return Err(HfError::bad_request(format!(
                    "`{path}` is a file and a folder at once"
                )));
            }
        }
    }
    Ok(files.into_values().collect())
}

/// The `.gitattributes` the Hub writes into every new repository.
pub const DEFAULT_GITATTRIBUTES: &str = "*.7z filter=lfs diff=lfs merge=lfs -text
*.arrow filter=lfs diff=lfs merge=lfs -text
*.bin filter=lfs diff=lfs merge=lfs -text
*.bz2 filter=lfs diff=lfs merge=lfs -text
*.ckpt filter=lfs diff=lfs merge=lfs -text
*.ftz filter=lfs diff=lfs merge=lfs -text
*.gz filter=lfs diff=lfs merge=lfs -text
*.h5 filter=lfs diff=lfs merge=lfs -text
*.joblib filter=lfs diff=lfs merge=lfs -text
*.lfs.* filter=lfs diff=lfs merge=lfs -text
*.mlmodel filter=lfs diff=lfs merge=lfs -text
*.model filter=lfs diff=lfs merge=lfs -text
*.msgpack filter=lfs diff=lfs merge=lfs -text
*.npy filter=lfs diff=lfs merge=lfs -text
*.npz filter=lfs diff=lfs merge=lfs -text
*.onnx filter=lfs diff=lfs merge=lfs -text
*.ot filter=lfs diff=lfs merge=lfs -text
*.parquet filter=lfs diff=lfs merge=lfs -text
*.pb filter=lfs diff=lfs merge=lfs -text
*.pickle filter=lfs diff=lfs merge=lfs -text
*.pkl filter=lfs diff=lfs merge=lfs -text
*.pt filter=lfs diff=lfs merge=lfs -text
*.pth filter=lfs diff=lfs merge=lfs -text
*.rar filter=lfs diff=lfs merge=lfs -text
*.safetensors filter=lfs diff=lfs merge=lfs -text
saved_model/**/* filter=lfs diff=lfs merge=lfs -text
*.tar.* filter=lfs diff=lfs merge=lfs -text
*.tar filter=lfs diff=lfs merge=lfs -text
*.tflite filter=lfs diff=lfs merge=lfs -text
*.tgz filter=lfs diff=lfs merge=lfs -text
*.wasm filter=lfs diff=lfs merge=lfs -text
*.xz filter=lfs diff=lfs merge=lfs -text
*.zip filter=lfs diff=lfs merge=lfs -text
*.zst filter=lfs diff=lfs merge=lfs -text
*tfevents* filter=lfs diff=lfs merge=lfs -text
";

/// The commit id `rev` names: itself if it is one, else what the ref points at.
fn commit_id(refs: &RefsDoc, rev: &str) -> Result<String, HfError> {
    if is_commit_id(rev) {
        return Ok(rev.to_string());
    }
    refs.lookup(rev)
        .cloned()
        .ok_or_else(|| HfError::revision_not_found(rev))
}

/// Views are cached with the refs' generation: a new one (a repository deleted, old
/// commits forgotten) makes every process read its commits again.
fn commit_cache_key(repo: &RepoRef, refs: &RefsDoc, id: &str) -> String {
    format!("{}/{}/{id}", repo.key_dir(), refs.generation)
}

/// Whether `.gitattributes` text marks `path` as an LFS file (`filter=lfs` patterns).
pub fn lfs_by_attributes(attributes: &str, path: &str) -> bool {
    super::gitattributes::Attributes::parse(attributes).is_lfs(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_create_left_unlisted_is_listed_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let store: crate::store::DynStore =
            Arc::new(crate::store::FsStore::open(dir.path()).await.unwrap());
        let repos = Repos::new(
            DocStore::new(store.clone(), 1 << 20, std::time::Duration::ZERO),
            BlobStore::new(store, 16),
        );
        let repo = RepoRef::new(RepoType::Model, "org/left").unwrap();
        // What a create that lost its race on the list leaves: the document, no entry.
        assert!(repos.put_repo_doc(&repo, false, now_iso()).await.unwrap());
        assert!(repos.list(RepoType::Model).await.unwrap().is_empty());
        assert!(!repos.create(&repo, false, "someone").await.unwrap());
        assert_eq!(repos.list(RepoType::Model).await.unwrap(), ["org/left"]);
    }

    #[tokio::test]
    async fn a_commit_larger_than_a_document_is_paged_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store: crate::store::DynStore =
            Arc::new(crate::store::FsStore::open(dir.path()).await.unwrap());
        let repos = || {
            Repos::new(
                DocStore::new(store.clone(), 1 << 20, std::time::Duration::ZERO),
                BlobStore::new(store.clone(), 16),
            )
        };
        let writer = repos();
        let repo = RepoRef::new(RepoType::Dataset, "org/huge").unwrap();
        writer.create(&repo, false, "someone").await.unwrap();
        let one = writer
            .store_small_file("x", Bytes::from_static(b"x"))
            .await
            .unwrap();
        // 4,000 files with 1,000-byte paths: 4.5 MB of file list, more than one
        // document holds inline. Before pages, past 16 MiB a commit could not be stored.
        let put = |i: usize| {
            let mut entry = one.clone();
            entry.path = format!("{}/{i:06}", "d".repeat(992));
            Op::Put(entry)
        };
        let commit = |ops| {
            writer.commit_changes(&repo, "main", Parent::Latest, ops, "t", "", "someone", None)
        };
        let first = commit((0..4_000).map(put).collect()).await.unwrap();
        assert!(first.pages.len() > 2, "{} pages", first.pages.len());
        let second = commit(vec![put(4_000)]).await.unwrap();
        let new_pages = second
            .pages
            .iter()
            .filter(|p| !first.pages.contains(p))
            .count();
        assert!(
            new_pages <= 2,
            "{new_pages} of {} pages new",
            second.pages.len()
        );

        let reader = repos();
        let read = reader.resolve(&repo, "main").await.unwrap();
        assert_eq!(read.commit.files, second.commit.files);
        assert_eq!(read.commit.files.len(), 4_002);
        assert_eq!(read.pages, second.pages);

        // A list row reads the commit's document, none of its pages.
        let counts = Arc::new(crate::store::OpCounts::default());
        let counted: crate::store::DynStore = Arc::new(crate::store::CountingStore::new(
            store.clone(),
            counts.clone(),
        ));
        let lister = Repos::new(
            DocStore::new(counted.clone(), 1 << 20, std::time::Duration::ZERO),
            BlobStore::new(counted, 16),
        );
        let summary = lister.summary(&repo, "main").await.unwrap();
        let whole = read.commit.summary();
        assert_eq!(
            (summary.id, summary.files, summary.used_storage),
            (whole.id, 4_002, whole.used_storage)
        );
        let gets = counts.get.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            gets <= 2,
            "{gets} reads: refs and the commit document, no page"
        );

        // Eight requests for the uncached commit at once load it once.
        counts.get.store(0, std::sync::atomic::Ordering::Relaxed);
        let views = futures::future::join_all((0..8).map(|_| lister.resolve(&repo, "main"))).await;
        assert!(views
            .iter()
            .all(|v| v.as_ref().unwrap().commit.files.len() == 4_002));
        let gets = counts.get.load(std::sync::atomic::Ordering::Relaxed) as usize;
        let once = 8 + 1 + second.pages.len();
        assert!(
            gets <= once,
            "{gets} reads for 8 refs, the document and {} pages once",
            second.pages.len()
        );
    }

    #[test]
    fn a_path_cannot_be_a_file_and_a_folder_even_with_a_path_between() {
        let entry = |path: &str| FileEntry {
            path: path.into(),
            size: 1,
            sha256: "0".repeat(64),
            oid: "0".repeat(40),
            lfs: false,
            xet_hash: None,
        };
        let ops = ["a", "a.txt", "a/b"].map(|p| Op::Put(entry(p)));
        let refused = apply(Vec::new(), &ops).unwrap_err();
        assert!(
            refused.message.contains("`a` is a file and a folder"),
            "{}",
            refused.message
        );
        assert!(apply(Vec::new(), &ops[..2]).is_ok());
    }

    #[tokio::test]
    async fn parsed_commits_are_bounded_by_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store: crate::store::DynStore =
            Arc::new(crate::store::FsStore::open(dir.path()).await.unwrap());
        let repos = Repos::new(
            DocStore::new(store.clone(), 64 << 20, std::time::Duration::from_secs(1)),
            BlobStore::new(store, 16),
        );
        // 200 commits of 10,000 files each: about 2 MiB apiece.
        let files: Vec<FileEntry> = (0..10_000)
            .map(|i| FileEntry {
                path: format!("shards/part-{i:06}.json"),
                size: 1,
                sha256: "0".repeat(64),
                oid: "0".repeat(40),
                lfs: false,
                xet_hash: None,
            })
            .collect();
        let view = Arc::new(CommitView {
            commit: Commit {
                id: "0".repeat(40),
                parents: vec![],
                title: String::new(),
                message: String::new(),
                author: String::new(),
                date: String::new(),
                files,
                config: None,
            },
            dirs: Default::default(),
            root_tree: String::new(),
            pages: Vec::new(),
        });
        for i in 0..200 {
            repos.commits.insert(format!("r/{i}"), view.clone()).await;
        }
        repos.commits.run_pending_tasks().await;
        assert!(repos.commits.weighted_size() <= repos.docs.memory_for(CacheShare::HfCommits));
        assert!(repos.commits.entry_count() < 200);
    }

    async fn fs_repos(dir: &std::path::Path) -> (Repos, crate::store::DynStore) {
        let store: crate::store::DynStore =
            Arc::new(crate::store::FsStore::open(dir).await.unwrap());
        let repos = Repos::new(
            DocStore::new(store.clone(), 1 << 20, std::time::Duration::from_secs(60)),
            BlobStore::new(store.clone(), 16),
        );
        (repos, store)
    }

    async fn keys_under(store: &crate::store::DynStore, prefix: &str) -> Vec<String> {
        let page = store.list(prefix, None, 1000).await.unwrap();
        page.objects
            .into_iter()
            .map(|o| o.key.as_str().to_string())
            .collect()
    }

    async fn put_file(repos: &Repos, repo: &RepoRef, path: &str, content: &'static [u8]) {
        let entry = repos
            .store_small_file(path, Bytes::from_static(content))
            .await
            .unwrap();
        repos
            .commit_changes(
                repo,
                "main",
                Parent::Latest,
                vec![Op::Put(entry)],
                "add",
                "",
                "t",
                None,
            )
            .await
            .unwrap();
    }

    /// Tags the head of `main` as `tag`; the commit id.
    async fn tag_head(repos: &Repos, repo: &RepoRef, tag: &str) -> String {
        let head = repos.resolve(repo, "main").await.unwrap().commit.id.clone();
        repos
            .update_refs(repo, |refs| {
                refs.tags.insert(tag.into(), head.clone());
                Ok(())
            })
            .await
            .unwrap();
        head
    }

    #[tokio::test]
    async fn deleting_a_repository_removes_its_documents_and_keeps_the_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let (repos, store) = fs_repos(dir.path()).await;
        let repo = RepoRef::new(RepoType::Model, "org/m").unwrap();
        let neighbour = RepoRef::new(RepoType::Model, "org/m2").unwrap();
        for r in [&repo, &neighbour] {
            assert!(repos.create(r, false, "t").await.unwrap());
            put_file(&repos, r, "a.txt", b"hello").await;
        }
        let digest = Digest::of_bytes(crate::digest::Algorithm::Sha256, b"hello");
        repos.link_lfs(&repo, &digest).await.unwrap();
        let old_head = tag_head(&repos, &repo, "v1").await;

        assert!(repos.delete(&repo).await.unwrap());
        assert!(!repos.delete(&repo).await.unwrap(), "already gone");
        assert!(repos.repo(&repo).await.unwrap().is_none());
        assert_eq!(repos.list(RepoType::Model).await.unwrap(), vec!["org/m2"]);
        assert!(keys_under(&store, &format!("{}/", repo.key_dir()))
            .await
            .is_empty());
        assert!(repos.blobs().exists(&digest).await.unwrap(), "blobs stay");
        // The neighbour whose folder name starts alike is untouched.
        assert!(repos.resolve(&neighbour, "main").await.is_ok());
        // Nothing recreates refs for the deleted repository.
        let refused = repos
            .update_refs(&repo, |refs| {
                refs.branches.insert("late".into(), old_head.clone());
                Ok(())
            })
            .await;
        assert_eq!(refused.unwrap_err().code, Some("RepoNotFound"));
        let late = repos
            .store_small_file("b.txt", Bytes::from_static(b"b"))
            .await;
        let refused = repos
            .commit_changes(
                &repo,
                "main",
                Parent::Latest,
                vec![Op::Put(late.unwrap())],
                "late",
                "",
                "t",
                None,
            )
            .await;
        assert_eq!(refused.unwrap_err().code, Some("RepoNotFound"));
        assert!(keys_under(&store, &format!("{}/", repo.key_dir()))
            .await
            .is_empty());
        // The old commit is not served from memory either.
        assert!(repos.commit(&repo, &old_head).await.unwrap().is_none());

        // Created again: one commit, no tags, nothing of the old history.
        assert!(repos.create(&repo, false, "t").await.unwrap());
        let head = repos.resolve(&repo, "main").await.unwrap();
        assert!(head.commit.parents.is_empty());
        assert_eq!(head.commit.files.len(), 1);
        assert!(repos.refs(&repo).await.unwrap().tags.is_empty());
    }

    #[tokio::test]
    async fn a_new_repository_starts_its_refs_afresh() {
        // What an interrupted deletion may leave: refs.json without repo.json.
        let dir = tempfile::tempdir().unwrap();
        let (repos, _) = fs_repos(dir.path()).await;
        let repo = RepoRef::new(RepoType::Dataset, "org/d").unwrap();
        assert!(repos.create(&repo, false, "t").await.unwrap());
        tag_head(&repos, &repo, "old").await;
        repos.docs.delete(&repo.meta_key(Doc::Repo)).await.unwrap();
        assert!(repos.create(&repo, false, "t").await.unwrap());
        let refs = repos.refs(&repo).await.unwrap();
        assert!(refs.tags.is_empty(), "{refs:?}");
        let head = repos.resolve(&repo, "main").await.unwrap();
        assert!(head.commit.parents.is_empty());
    }

    #[tokio::test]
    async fn squashing_keeps_the_files_and_drops_the_parents() {
        let dir = tempfile::tempdir().unwrap();
        let (repos, _) = fs_repos(dir.path()).await;
        let repo = RepoRef::new(RepoType::Model, "org/m").unwrap();
        repos.create(&repo, false, "t").await.unwrap();
        put_file(&repos, &repo, "a.txt", b"one").await;
        let before = repos.resolve(&repo, "main").await.unwrap();
        repos
            .update_refs(&repo, |refs| {
                refs.tags.insert("v1".into(), before.commit.id.clone());
                Ok(())
            })
            .await
            .unwrap();
        let squashed = repos
            .squash(&repo, "main", "squash\n\nall of it", "t")
            .await
            .unwrap();
        assert!(is_commit_id(&squashed.commit.id));
        assert_ne!(squashed.commit.id, before.commit.id);
        assert!(squashed.commit.parents.is_empty());
        assert_eq!(squashed.commit.files, before.commit.files);
        assert_eq!(squashed.root_tree, before.root_tree);
        assert_eq!(squashed.commit.title, "squash");
        let refs = repos.refs(&repo).await.unwrap();
        assert_eq!(refs.branches["main"], squashed.commit.id);
        assert_eq!(refs.tags["v1"], before.commit.id);
        assert!(repos
            .commit(&repo, &before.commit.id)
            .await
            .unwrap()
            .is_some());
        let missing = repos.squash(&repo, "nope", "m", "t").await;
        assert_eq!(missing.unwrap_err().code, Some("RevisionNotFound"));
    }

    #[test]
    fn gitattributes_patterns() {
        assert!(lfs_by_attributes(
            DEFAULT_GITATTRIBUTES,
            "model.safetensors"
        ));
        assert!(lfs_by_attributes(
            DEFAULT_GITATTRIBUTES,
            "sub/dir/weights.bin"
        ));
        assert!(lfs_by_attributes(
            DEFAULT_GITATTRIBUTES,
            "saved_model/variables/x"
        ));
        assert!(lfs_by_attributes(DEFAULT_GITATTRIBUTES, "data.tar.gz"));
        assert!(!lfs_by_attributes(DEFAULT_GITATTRIBUTES, "config.json"));
        assert!(!lfs_by_attributes("*.bin -filter", "x.bin"));
    }
}
