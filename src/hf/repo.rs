//! Reading and changing repositories: repo documents, refs, commits.

use super::error::HfError;
use super::git;
use super::model::{
    is_commit_id, Commit, CommitView, FileEntry, RefsDoc, RepoDoc, RepoRef, RepoType,
};
use super::xet_store::XetStore;
use crate::digest::Digest;
use crate::store::layout::MetaKey;
use crate::store::{BlobStore, DocStore, Document, Mutability, ObjectKey, PutMode, StoreError};
use bytes::Bytes;
use std::collections::{BTreeSet, HashSet};
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
}

/// Memory for parsed commits (`Repos::commits`).
const COMMIT_CACHE_BYTES: u64 = 64 * 1024 * 1024;

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

fn list_key(kind: RepoType) -> ObjectKey {
    let kind = kind.plural().to_string();
    MetaKey::HfList { kind }.key().expect("a constant key")
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, HfError> {
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
            docs,
            blobs,
            // By bytes, not entries: one commit of a large repository lists every file.
            commits: moka::future::Cache::builder()
                .max_capacity(COMMIT_CACHE_BYTES)
                .weigher(|k: &String, v: &Arc<CommitView>| {
                    u32::try_from(k.len() + v.approximate_bytes()).unwrap_or(u32::MAX)
                })
                .build(),
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
        let cache_key = format!("{}/{id}", repo.key_dir());
        if let Some(view) = self.commits.get(&cache_key).await {
            return Ok(Some(view));
        }
        let Some(doc) = self.docs.get_fresh(&repo.meta_key(Doc::Commit(id))).await? else {
            return Ok(None);
        };
        let view = Arc::new(CommitView::new(parse(&doc.bytes)?));
        self.commits.insert(cache_key, view.clone()).await;
        Ok(Some(view))
    }

    /// A revision (branch, tag, `refs/...`, or a commit id) to its commit.
    pub async fn resolve(&self, repo: &RepoRef, rev: &str) -> Result<Arc<CommitView>, HfError> {
        let id = if is_commit_id(rev) {
            rev.to_string()
        } else {
            self.refs(repo)
                .await?
                .lookup(rev)
                .cloned()
                .ok_or_else(|| HfError::revision_not_found(rev))?
        };
        self.commit(repo, &id)
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
            return Ok(false);
        }
        let attributes = Bytes::from_static(DEFAULT_GITATTRIBUTES.as_bytes());
        let entry = self.store_small_file(".gitattributes", attributes).await?;
        self.commit_changes(
            repo,
            "main",
            Parent::Latest,
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
        Ok(())
    }

    pub async fn list(&self, kind: RepoType) -> Result<Vec<String>, HfError> {
        let doc = self.docs.get(&list_key(kind), Mutability::Mutable).await?;
        Ok(doc
            .map(|d| parse(&d.bytes))
            .transpose()?
            .unwrap_or_default())
    }

    /// Applies `ops` on top of the branch head and moves the branch, without losing a
    /// racing commit: if the branch moved meanwhile, a `Parent::Latest` commit is rebuilt
    /// on the new head; a `Parent::Exactly` commit is refused. `commit_id` keeps an
    /// imported commit's original id.
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
        let refs_key = repo.meta_key(Doc::Refs);
        for _ in 0..16 {
            let refs_doc = self.docs.get_fresh(&refs_key).await?;
            let refs: RefsDoc = refs_doc
                .as_ref()
                .map(|d| parse(&d.bytes))
                .transpose()?
                .unwrap_or_default();
            let head = refs.branches.get(branch).cloned();
            if let Parent::Exactly(expected) = &parent {
                if head.as_deref() != Some(expected.as_str()) {
                    return Err(HfError::new(
                        http::StatusCode::PRECONDITION_FAILED,
                        None,
                        format!("parentCommit {expected} is not the head of `{branch}` any more; pull and retry"),
                    ));
                }
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
            let parents: Vec<String> = head.iter().cloned().collect();
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
            let commit_key = repo.meta_key(Doc::Commit(&id));
            match self
                .docs
                .put(
                    &commit_key,
                    json(&commit),
                    PutMode::Create,
                    Mutability::Immutable,
                )
                .await
            {
                Ok(_) | Err(StoreError::PreconditionFailed(_)) => {}
                Err(e) => return Err(e.into()),
            }
            let mut new_refs = refs.clone();
            new_refs.branches.insert(branch.to_string(), id.clone());
            let mode = match &refs_doc {
                Some(d) => PutMode::Update(d.etag.clone()),
                None => PutMode::Create,
            };
            match self
                .docs
                .put(&refs_key, json(&new_refs), mode, Mutability::Mutable)
                .await
            {
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

    /// Stores a commit as it is (imports keep their original ids); storing it again is a no-op.
    pub async fn store_commit(&self, repo: &RepoRef, mut commit: Commit) -> Result<(), HfError> {
        commit.files.sort_by(|a, b| a.path.cmp(&b.path));
        if commit.config.is_none() {
            commit.config = self.model_config(&commit.files).await;
        }
        let commit_key = repo.meta_key(Doc::Commit(&commit.id));
        match self
            .docs
            .put(
                &commit_key,
                json(&commit),
                PutMode::Create,
                Mutability::Immutable,
            )
            .await
        {
            Ok(_) | Err(StoreError::PreconditionFailed(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
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
        self.store_commit(repo, commit).await?;
        let name = rev.strip_prefix("refs/heads/").unwrap_or(rev);
        if is_commit_id(rev) || !super::model::is_valid_ref_name(name) {
            return Ok(());
        }
        self.update_refs(repo, |refs| {
            match refs.tags.get_mut(name) {
                Some(tag) => *tag = id.clone(),
                None => {
                    refs.branches.insert(name.to_string(), id.clone());
                }
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Changes refs other than by committing (branches, tags, PR refs), atomically.
    pub async fn update_refs<F>(&self, repo: &RepoRef, mut change: F) -> Result<RefsDoc, HfError>
    where
        F: FnMut(&mut RefsDoc) -> Result<(), HfError>,
    {
        self.docs
            .update_json(&repo.meta_key(Doc::Refs), |refs| {
                change(refs)?;
                Ok(true)
            })
            .await
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

fn apply(mut files: Vec<FileEntry>, ops: &[Op]) -> Result<Vec<FileEntry>, HfError> {
    for op in ops {
        match op {
            Op::Put(entry) => {
                files.retain(|f| f.path != entry.path);
                files.push(entry.clone());
            }
            Op::Delete(path) => {
                let before = files.len();
                files.retain(|f| &f.path != path);
                if files.len() == before {
                    return Err(HfError::not_found(format!(
                        "cannot delete {path}: no such file"
                    )));
                }
            }
            Op::DeleteFolder(folder) => {
                let prefix = format!("{}/", folder.trim_end_matches('/'));
                let before = files.len();
                files.retain(|f| !f.path.starts_with(&prefix));
                if files.len() == before {
                    return Err(HfError::not_found(format!(
                        "cannot delete folder {folder}: no such folder"
                    )));
                }
            }
            Op::ReplaceAll(all) => files = all.clone(),
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    // A path cannot be both a file and a folder.
    for pair in files.windows(2) {
        if pair[1].path.starts_with(&format!("{}/", pair[0].path)) {
            return Err(HfError::bad_request(format!(
                "`{}` is a file and a folder at once",
                pair[0].path
            )));
        }
    }
    Ok(files)
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

/// Whether `.gitattributes` text marks `path` as an LFS file (`filter=lfs` patterns).
pub fn lfs_by_attributes(attributes: &str, path: &str) -> bool {
    super::gitattributes::Attributes::parse(attributes).is_lfs(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn parsed_commits_are_bounded_by_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store: crate::store::DynStore =
            Arc::new(crate::store::FsStore::open(dir.path()).await.unwrap());
        let repos = Repos::new(
            DocStore::new(store.clone(), 1 << 20, std::time::Duration::from_secs(1)),
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
        });
        for i in 0..200 {
            repos.commits.insert(format!("r/{i}"), view.clone()).await;
        }
        repos.commits.run_pending_tasks().await;
        assert!(repos.commits.weighted_size() <= COMMIT_CACHE_BYTES);
        assert!(repos.commits.entry_count() < 200);
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
