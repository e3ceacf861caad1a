//! OCI model images of the Hub's model repositories, made from the stored files and
//! never stored themselves: `huggingface.co/<org>/<name>:<rev>` is the KServe modelcar
//! image of a revision (the configured base image plus tar layers with the files under
//! `/models/`), `:<rev>-modelpack` its CNCF ModelPack artifact (one raw layer per file,
//! its digest the file's own sha256). A cross-cutting feature like `catalog`: it reads repositories through the
//! Hub's domain (`Repos`, `hf::access`) and answers the registry through
//! `oci::synthesized`, which the server hands it to; no protocol imports it.
//!
//! Access is the Hub's: a name is readable exactly when its repository's files are
//! (private, gated, token scopes, `anonymous_read`), whatever OCI scopes the token has.
//! A blob is served only when it belongs to an image of that repository (a file of a
//! served commit or of a branch or tag head): a digest is not a capability.

mod image;
pub mod modelcar;
pub mod modelpack;
pub mod names;
mod reads;
mod settings;
pub mod tar;

pub use settings::ModelImageSettings;

use crate::auth::{Action, Auth, AuthError, Identity, Protocol};
use crate::digest::Digest;
use crate::hf::access::{may_read_gated_files, repo_access, RepoAccess};
use crate::hf::file_bytes::{self, FileBytes};
use crate::hf::model::{is_commit_id, Commit, CommitView, FileEntry, RepoRef, RepoType};
use crate::hf::pullthrough::{self, Pull};
use crate::hf::repo::Repos;
use crate::hf::HfError;
use crate::oci::registry::Registry;
use crate::oci::synthesized::{BoxFuture, RangeRead, SynthBlob, SynthManifest};
use crate::oci::{Code, OciError};
use crate::store::layout::MetaKey;
use crate::store::CacheShare;
use crate::store::{
    ByteRange, ByteStream, DocStore, GetOptions, Mutability, ObjectKey, PutMode, StoreError,
};
use image::Images;
use modelcar::{LayerRecord, TarReader};
use names::Kind;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::sync::Arc;

type Result<T, E = OciError> = std::result::Result<T, E>;

/// The most commits `served.json` remembers; older ones are served again once their
/// manifest is asked for.
const MAX_SERVED: usize = 256;

#[derive(Clone)]
pub struct ModelImages {
    repos: Repos,
    registry: Registry,
    docs: DocStore,
    auth: Arc<Auth>,
    settings: ModelImageSettings,
    /// The Hub's pull-through (`[hf] upstream`), when set.
    pull: Option<Pull>,
    /// Images by `<repo dir>/<commit>/<kind>[/<base digest>]`: a pure function of an
    /// immutable commit (and base).
    images: moka::future::Cache<String, Arc<Images>>,
    /// Base images by manifest digest, with their configs read.
    bases: moka::future::Cache<Digest, Arc<modelcar::Base>>,
    /// Layer digests being computed, by record key: one read per commit at a time.
    digesting: moka::future::Cache<String, Arc<Vec<(Digest, u64)>>>,
}

impl std::fmt::Debug for ModelImages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelImages").finish_non_exhaustive()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Served {
    commits: Vec<String>,
}

fn hf_failure(e: HfError) -> OciError {
    OciError::new(Code::Unavailable, e.message)
}

fn name_unknown(name: &str, why: &str) -> OciError {
    OciError::new(Code::NameUnknown, format!("`{name}`: {why}"))
}

/// How each file of a commit is served, by sha256: its stored blob (sendfile, presigned
/// redirect), or, for a file uploaded through Xet and kept only as xorbs, its bytes
/// rebuilt from them as they are read. A file whose bytes are not here yet (pulled
/// through, not fetched) is fetched from the Hub's upstream when first read, when one is
/// set; without one it is named by its blob, which answers "unknown" until it is stored.
async fn file_blobs(
    repos: &Repos,
    pull: Option<&Pull>,
    repo: &RepoRef,
    commit: &Commit,
) -> Result<HashMap<String, SynthBlob>> {
    let mut out = HashMap::new();
    for f in &commit.files {
        let Ok(digest) = Digest::sha256_hex(&f.sha256) else {
            continue;
        };
        if out.contains_key(&f.sha256) {
            continue;
        }
        let blob = match file_bytes::locate(repos, &digest, f.xet_hash.as_deref())
            .await
            .map_err(hf_failure)?
        {
            Some(bytes @ FileBytes::Xet(_)) => SynthBlob::Generated {
                size: bytes.size(),
                reader: Arc::new(XetFile {
                    repos: repos.clone(),
                    bytes,
                }),
            },
            Some(FileBytes::Blob { .. }) => SynthBlob::Stored(digest),
            None => match pull {
                Some(pull) => SynthBlob::Generated {
                    size: f.size,
                    reader: Arc::new(PulledFile {
                        repos: repos.clone(),
                        pull: pull.clone(),
                        repo: repo.clone(),
                        commit: commit.id.clone(),
                        file: f.clone(),
                        digest,
                    }),
                },
                None => SynthBlob::Stored(digest),
            },
        };
        out.insert(f.sha256.clone(), blob);
    }
    Ok(out)
}

/// A pulled-through file not stored when its image was made: brought in whole on the
/// first read, then read from the store.
struct PulledFile {
    repos: Repos,
    pull: Pull,
    repo: RepoRef,
    commit: String,
    file: FileEntry,
    digest: Digest,
}

impl RangeRead for PulledFile {
    fn read(&self, range: Range<u64>) -> BoxFuture<'_, Result<ByteStream, StoreError>> {
        Box::pin(async move {
            let blobs = self.repos.blobs();
            self.pull
                .store_file(blobs, &self.repo, &self.commit, &self.file, &self.digest)
                .await
                .map_err(|e| StoreError::Unavailable(e.message))?;
            if range.is_empty() {
                return Ok(crate::store::bytes_stream(bytes::Bytes::new()));
            }
            let range = Some(ByteRange::Bounded {
                start: range.start,
                end: range.end - 1,
            });
            Ok(blobs.get(&self.digest, GetOptions { range }).await?.body)
        })
    }
}

/// A file kept as Xet terms only, read by range.
struct XetFile {
    repos: Repos,
    bytes: FileBytes,
}

impl RangeRead for XetFile {
    fn read(&self, range: Range<u64>) -> BoxFuture<'_, Result<ByteStream, StoreError>> {
        Box::pin(async move {
            self.bytes
                .read(&self.repos, range)
                .await
                .map_err(|e| StoreError::Unavailable(e.message))
        })
    }
}

impl ModelImages {
    pub fn new(
        repos: Repos,
        registry: Registry,
        docs: DocStore,
        auth: Arc<Auth>,
        settings: ModelImageSettings,
        pull: Option<Pull>,
    ) -> ModelImages {
        let image_bytes = docs.memory_for(CacheShare::ModelImages);
        ModelImages {
            pull,
            repos,
            registry,
            docs,
            auth,
            settings,
            images: moka::future::Cache::builder()
                .max_capacity(image_bytes)
                .weigher(|k: &String, v: &Arc<Images>| {
                    u32::try_from(k.len() + v.bytes).unwrap_or(u32::MAX)
                })
                .build(),
            bases: moka::future::Cache::new(16),
            digesting: moka::future::Cache::new(64),
        }
    }

    /// The model repository a reserved name stands for, if the caller may read its files.
    /// OCI names are lowercase and Hub ids are not: the name matches case-insensitively.
    /// With `rev` and a pull-through upstream, that revision is brought in first.
    async fn open(&self, identity: &Identity, name: &str, rev: Option<&str>) -> Result<RepoRef> {
        let wanted = names::lowercase_id(name)
            .ok_or_else(|| name_unknown(name, "not a model image name"))?;
        if let (Some(pull), Some(rev)) = (&self.pull, rev) {
            self.pull_revision(pull, identity, wanted, rev).await?;
        }
        let ids = self.repos.list(RepoType::Model).await.map_err(hf_failure)?;
        let matching: Vec<&String> = ids
            .iter()
            .filter(|id| id.to_ascii_lowercase() == wanted)
            .collect();
        let id = match matching.as_slice() {
            [one] => *one,
            [] => return Err(name_unknown(name, "no such model")),
            many => {
                let many: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
                return Err(name_unknown(
                    name,
                    &format!(
                        "the models {} differ only in case, and OCI names are lowercase",
                        many.join(", ")
                    ),
                ));
            }
        };
        let repo =
            RepoRef::new(RepoType::Model, id).ok_or_else(|| name_unknown(name, "no such model"))?;
        let doc = self
            .repos
            .repo(&repo)
            .await
            .map_err(hf_failure)?
            .ok_or_else(|| name_unknown(name, "no such model"))?;
        match repo_access(&self.auth, identity, &repo, &doc) {
            RepoAccess::Granted => {}
            RepoAccess::Unauthenticated => return Err(AuthError::Unauthenticated.into()),
            RepoAccess::Hidden => return Err(name_unknown(name, "no such model")),
        }
        if doc.gated && !may_read_gated_files(&self.auth, identity, &repo) {
            return Err(match identity {
                Identity::Anonymous => AuthError::Unauthenticated.into(),
                Identity::Token(p) => OciError::new(
                    Code::Denied,
                    format!(
                        "`{}` is gated: token `{}` needs a read scope for it",
                        repo.id, p.name
                    ),
                ),
            });
        }
        Ok(repo)
    }

    /// Brings a revision in from the Hub's upstream as the Hub routes would, for a caller
    /// whose scopes may read the repository (checked before the upstream is asked). The
    /// repository is the one here whose id matches the name, else the id as the name
    /// spells it (lowercase: an upstream repository with capitals in its id is reached
    /// through the Hub API or the S3 view first).
    async fn pull_revision(
        &self,
        pull: &Pull,
        identity: &Identity,
        wanted: &str,
        rev: &str,
    ) -> Result<()> {
        let ids = self.repos.list(RepoType::Model).await.map_err(hf_failure)?;
        let id = ids
            .iter()
            .find(|id| id.to_ascii_lowercase() == wanted)
            .map_or(wanted, String::as_str);
        let Some(repo) = RepoRef::new(RepoType::Model, id) else {
            return Ok(());
        };
        let may_read = self.auth.anonymous_read()
            || self
                .auth
                .authorize(identity, Protocol::Hf, Action::Read, &repo.scope_name())
                .is_ok();
        if !may_read {
            return Ok(());
        }
        match pullthrough::refresh_revision(Some(&pull.upstream), &self.repos, &repo, rev).await {
            Err(e) if e.status != http::StatusCode::NOT_FOUND => Err(hf_failure(e)),
            _ => Ok(()),
        }
    }

    async fn modelpack(&self, repo: &RepoRef, view: &CommitView) -> Result<Arc<Images>> {
        let key = format!("{}/{}/modelpack", repo.key_dir(), view.commit.id);
        self.images
            .try_get_with(key, async {
                let blobs = file_blobs(&self.repos, self.pull.as_ref(), repo, &view.commit).await?;
                Ok::<_, OciError>(Arc::new(image::modelpack(&repo.id, view, |f| {
                    blobs.get(&f.sha256).cloned()
                })))
            })
            .await
            .map_err(|e| OciError::new(e.code, e.message.clone()))
    }

    /// The modelcar image of a commit on the configured base. Its layer digests are
    /// computed by reading the layers once, and recorded; with `compute` false (a blob
    /// lookup) a commit whose layers were never read has no modelcar yet.
    async fn modelcar(
        &self,
        repo: &RepoRef,
        view: &CommitView,
        compute: bool,
    ) -> Result<Option<Arc<Images>>> {
        if self.settings.base.is_empty() {
            return Err(OciError::new(
                Code::ManifestUnknown,
                "modelcar images are off ([model_images] base is empty); pull `<rev>-modelpack`",
            ));
        }
        let reference = &self.settings.base;
        let (base_digest, is_index) = modelcar::resolve(&self.registry, reference).await?;
        let commit = &view.commit;
        let key = format!("{}/{}/modelcar/{base_digest}", repo.key_dir(), commit.id);
        if let Some(hit) = self.images.get(&key).await {
            return Ok(Some(hit));
        }
        let base = self
            .bases
            .try_get_with(base_digest.clone(), async {
                modelcar::load(&self.registry, reference, base_digest, is_index)
                    .await
                    .map(Arc::new)
            })
            .await
            .map_err(|e| OciError::new(e.code, e.message.clone()))?;
        let blobs = file_blobs(&self.repos, self.pull.as_ref(), repo, commit).await?;
        let files: Arc<Vec<_>> = Arc::new(
            commit
                .files
                .iter()
                .map(|f| (f.clone(), blobs.get(&f.sha256).cloned()))
                .collect(),
        );
        let readers: Vec<Arc<TarReader>> = tar::plan(&commit.files)
            .into_iter()
            .map(|layer| {
                Arc::new(TarReader {
                    layer,
                    files: files.clone(),
                    blobs: self.repos.blobs().clone(),
                })
            })
            .collect();
        let record_key = MetaKey::ModelImagesLayers {
            kind: repo.kind.plural().to_string(),
            id: repo.id.clone(),
            commit: commit.id.clone(),
        }
        .key()?;
        let sizes: Vec<u64> = readers.iter().map(|r| r.layer.size).collect();
        let recorded = self
            .docs
            .get(&record_key, Mutability::Immutable)
            .await?
            .and_then(|d| serde_json::from_slice::<LayerRecord>(&d.bytes).ok())
            .filter(|r| {
                r.plan == modelcar::PLAN
                    && r.layers.iter().map(|(_, n)| *n).eq(sizes.iter().copied())
            });
        let layers = match recorded {
            Some(r) => r.layers,
            None if !compute => return Ok(None),
            // Concurrent first pulls share one read of the layers.
            None => self
                .digesting
                .try_get_with(record_key.as_str().to_string(), async {
                    self.digest_layers(repo, &commit.id, &readers, &record_key)
                        .await
                        .map(Arc::new)
                })
                .await
                .map_err(|e| OciError::new(e.code, e.message.clone()))?
                .to_vec(),
        };
        let images = Arc::new(modelcar::assemble(&base, &commit.id, &readers, &layers));
        self.images.insert(key, images.clone()).await;
        Ok(Some(images))
    }

    /// Reads each layer once for its digest, and records them.
    async fn digest_layers(
        &self,
        repo: &RepoRef,
        commit: &str,
        readers: &[Arc<TarReader>],
        record_key: &ObjectKey,
    ) -> Result<Vec<(Digest, u64)>> {
        let mut layers = Vec::new();
        for r in readers {
            layers.push((modelcar::digest_of_layer(r).await?, r.layer.size));
        }
        let record = LayerRecord {
            plan: modelcar::PLAN,
            layers,
        };
        let bytes = serde_json::to_vec(&record).expect("serializable");
        self.docs
            .put(
                record_key,
                bytes.into(),
                PutMode::Overwrite,
                Mutability::Immutable,
            )
            .await?;
        tracing::info!(repo = %repo.id, commit, "modelcar layers digested");
        Ok(record.layers)
    }

    fn served_key(repo: &RepoRef) -> ObjectKey {
        MetaKey::ModelImagesServed {
            kind: repo.kind.plural().to_string(),
            id: repo.id.clone(),
        }
        .key()
        .expect("repo keys are built from validated ids")
    }

    /// Remembers that a commit's images were handed out, so their blobs stay reachable
    /// after its branch moves on.
    async fn record_served(&self, repo: &RepoRef, commit: &str) -> Result<()> {
        let key = Self::served_key(repo);
        let known = self
            .docs
            .get(&key, Mutability::Mutable)
            .await?
            .and_then(|d| serde_json::from_slice::<Served>(&d.bytes).ok())
            .is_some_and(|s| s.commits.iter().any(|c| c == commit));
        if known {
            return Ok(());
        }
        self.docs
            .update_json(&key, |served: &mut Served| {
                if served.commits.iter().any(|c| c == commit) {
                    return Ok::<_, OciError>(false);
                }
                served.commits.push(commit.to_string());
                let excess = served.commits.len().saturating_sub(MAX_SERVED);
                served.commits.drain(..excess);
                Ok(true)
            })
            .await?;
        Ok(())
    }

    /// The commits whose images a digest may belong to: the served ones, newest first,
    /// then the heads of branches and tags.
    async fn candidates(&self, repo: &RepoRef) -> Result<Vec<String>> {
        let served: Served = self
            .docs
            .get(&Self::served_key(repo), Mutability::Mutable)
            .await?
            .and_then(|d| serde_json::from_slice(&d.bytes).ok())
            .unwrap_or_default();
        let refs = self.repos.refs(repo).await.map_err(hf_failure)?;
        let mut seen = BTreeSet::new();
        Ok(served
            .commits
            .into_iter()
            .rev()
            .chain(refs.branches.into_values())
            .chain(refs.tags.into_values())
            .filter(|c| seen.insert(c.clone()))
            .collect())
    }

    /// The first candidate commit whose images answer `find`.
    async fn search<T>(
        &self,
        repo: &RepoRef,
        find: impl Fn(&Images) -> Option<T>,
    ) -> Result<Option<T>> {
        for id in self.candidates(repo).await? {
            let Some(view) = self.repos.commit(repo, &id).await.map_err(hf_failure)? else {
                continue;
            };
            if let Some(found) = find(&*self.modelpack(repo, &view).await?) {
                return Ok(Some(found));
            }
            // A missing or changed base leaves only the ModelPack to search.
            if let Ok(Some(images)) = self.modelcar(repo, &view, false).await {
                if let Some(found) = find(&images) {
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }

    async fn manifest_by_tag(
        &self,
        repo: &RepoRef,
        name: &str,
        tag: &str,
    ) -> Result<SynthManifest> {
        let (rev, kind) = names::parse_tag(tag);
        let unknown =
            |why: &str| OciError::new(Code::ManifestUnknown, format!("`{name}:{tag}`: {why}"));
        let view = match self.repos.resolve(repo, rev).await {
            Ok(view) => view,
            Err(e) if e.status == http::StatusCode::NOT_FOUND => {
                let hint = if is_commit_id(rev) {
                    "no such commit"
                } else {
                    "no such branch or tag"
                };
                return Err(unknown(hint));
            }
            Err(e) => return Err(hf_failure(e)),
        };
        let images = match kind {
            Kind::ModelPack => self.modelpack(repo, &view).await?,
            Kind::ModelCar => self
                .modelcar(repo, &view, true)
                .await?
                .expect("computed when asked to"),
        };
        let manifest = images
            .tags
            .get(&kind)
            .and_then(|d| images.manifests.get(d))
            .ok_or_else(|| unknown("no such image"))?
            .clone();
        self.record_served(repo, &view.commit.id).await?;
        Ok(manifest)
    }
}
