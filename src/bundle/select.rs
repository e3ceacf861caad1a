//! What an export packs: everything in the store, or what a content spec names.
//!
//! Documents are read before blobs are listed: protocols store a body before any document
//! points at it, so a server writing meanwhile can never leave a document in the bundle
//! whose blob is not. With a spec, the mutable documents (tags, refs, project pages,
//! listings) are narrowed to what the spec names; the receiver merges them into its own.
//!
//! How a spec selects:
//! - `[[hf]]`: `repo.json`, the named revisions' commits and refs (a branch or tag named
//!   in `revisions` travels; a commit id travels without a ref), and the blobs of the
//!   files `allow`/`ignore` keep (fnmatch globs, `*` crosses `/`, as `snapshot_download`).
//! - `[[pypi]]`: the default index's project pages narrowed to the files whose version
//!   satisfies the specifier and whose format and wheel platform tag match, with their
//!   `.metadata` blobs. Specifiers are applied when simple (`==`, `!=`, `<`, `<=`, `>`,
//!   `>=`, `~=`, `==X.*` on purely numeric versions); a clause beyond that (pre-releases,
//!   local versions) keeps every version rather than risk leaving one out. `python` is not
//!   applied (every Python version travels).
//! - `[[oci]]`: the repository's tag (when named by tag), the manifest and every manifest
//!   reachable from it (index children, filtered by `platforms`), their configs and layers,
//!   and with `referrers` every stored manifest whose subject is one of those.

use super::manifest::{Have, DOC_PREFIXES};
use crate::digest::Digest;
use crate::hf::model::{is_commit_id, RefsDoc, RepoRef, RepoType};
use crate::oci::registry::{link_key, Registry, RepoDoc as OciRepoDoc};
use crate::pypi::project::{FileEntry as PypiFile, ProjectDoc};
use crate::spec::{ContentSpec, DistFormat, HfItem, HfRepoType, OciItem, PypiItem};
use crate::store::layout::digest_of_blob_key;
use crate::store::layout::MetaKey;
use crate::store::ObjectKey;
use crate::store::Stores;
use crate::xet::MerkleHash;
use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use std::collections::{BTreeMap, BTreeSet, HashSet};

#[derive(Debug, Default)]
pub struct Selection {
    /// Document key -> its content as read (or as narrowed by the spec).
    pub docs: BTreeMap<String, Bytes>,
    /// Blob digest -> size.
    pub blobs: BTreeMap<Digest, u64>,
    /// Xorbs of the Xet files selected (their records are in `docs`) -> stored size.
    pub xorbs: BTreeMap<MerkleHash, u64>,
    /// Blobs named that the receiver's have.json lists: neither looked up nor packed.
    pub held_blobs: usize,
    /// Things left out, for the operator.
    pub notes: Vec<String>,
    pub description: String,
}

/// Reads documents, a few at a time (each an S3 round trip); skips any deleted meanwhile.
pub async fn read_docs(stores: &Stores, keys: Vec<String>) -> anyhow::Result<Vec<(String, Bytes)>> {
    let docs = stores.docs.clone();
    let read = futures::stream::iter(keys)
        .map(|key| {
            let docs = docs.clone();
            async move {
                let object = ObjectKey::new(key.clone())?;
                Ok::<_, anyhow::Error>(docs.get_fresh(&object).await?.map(|d| (key, d.bytes)))
            }
        })
        .buffered(16)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(read.into_iter().flatten().collect())
}

/// Every document and blob in the store.
pub async fn everything(stores: &Stores) -> anyhow::Result<Selection> {
    let mut sel = Selection {
        description: format!("everything in {}", stores.store.describe()),
        ..Default::default()
    };
    let mut keys = Vec::new();
    for prefix in DOC_PREFIXES {
        keys.extend(
            super::list_all(&stores.store, prefix)
                .await?
                .into_iter()
                .map(|m| m.key.as_str().to_string()),
        );
    }
    sel.docs.extend(read_docs(stores, keys).await?);
    for meta in super::list_all(&stores.store, crate::store::layout::BLOBS_PREFIX).await? {
        if let Some(digest) = digest_of_blob_key(meta.key.as_str()) {
            sel.blobs.insert(digest, meta.size);
        }
    }
    super::xet::select_everything(stores, &mut sel).await?;
    Ok(sel)
}

/// What `spec` names, from this store; anything named but absent is an error that says so.
/// `default_host` is `[oci] default_registry`, for image names without a host.
pub async fn from_spec(
    stores: &Stores,
    default_host: &str,
    spec: &ContentSpec,
    spec_path: &str,
    have: Option<&Have>,
) -> anyhow::Result<Selection> {
    let mut b = Builder {
        stores,
        default_host: default_host.to_string(),
        sel: Selection {
            description: format!(
                "spec {spec_path}: {} hf repo(s), {} python item(s), {} image(s)",
                spec.hf.len(),
                spec.pypi.len(),
                spec.oci.len()
            ),
            ..Default::default()
        },
        oci_repos: BTreeMap::new(),
        projects: BTreeMap::new(),
        hf_refs: BTreeMap::new(),
        hf_lists: BTreeMap::new(),
        blobs_to_size: Vec::new(),
        blobs_named: HashSet::new(),
    };
    for item in &spec.hf {
        b.hf(item)
            .await
            .with_context(|| format!("hf {}", item.repo))?;
    }
    for item in &spec.pypi {
        b.pypi(item).await?;
    }
    for item in &spec.oci {
        b.oci(item)
            .await
            .with_context(|| format!("oci {}", item.image))?;
    }
    b.size_blobs(have).await?;
    Ok(b.finish())
}

struct Builder<'a> {
    stores: &'a Stores,
    default_host: String,
    sel: Selection,
    oci_repos: BTreeMap<String, OciRepoDoc>,
    projects: BTreeMap<String, ProjectDoc>,
    /// By repository kind (plural) and id.
    hf_refs: BTreeMap<(String, String), RefsDoc>,
    hf_lists: BTreeMap<&'static str, BTreeSet<String>>,
    /// Blobs named so far, each with what named it first, in the order named: their
    /// sizes are looked up together at the end (one HEAD each, a round trip on S3).
    blobs_to_size: Vec<(Digest, String)>,
    blobs_named: HashSet<Digest>,
}

/// HEADs in flight while sizing a selection's blobs: a 100,000-file model is 100,000
/// HEADs, ~55 s one after another on Garage here.
const SIZE_CONCURRENCY: usize = 32;

impl Builder<'_> {
    fn repos(&self) -> crate::hf::repo::Repos {
        crate::hf::repo::Repos::new(self.stores.docs.clone(), self.stores.blobs.clone())
    }
}

/// A document's key as the bundle records it.
fn doc_key(key: MetaKey) -> String {
    key.key()
        .expect("built from names this store already holds")
        .to_string()
}

fn json(value: &impl serde::Serialize) -> Bytes {
    serde_json::to_vec(value).expect("serializable").into()
}

impl Builder<'_> {
    /// Names a blob for the bundle; its size is looked up with the others' (`size_blobs`).
    fn blob(&mut self, digest: Digest, what: &str) {
        if self.blobs_named.insert(digest.clone()) {
            self.blobs_to_size.push((digest, what.to_string()));
        }
    }

    /// Sizes every blob named, a few HEADs at a time, but those the receiver holds (they
    /// stay out of the bundle); those missing are left out with a note (in the order they
    /// were named).
    async fn size_blobs(&mut self, have: Option<&Have>) -> anyhow::Result<()> {
        let blobs = self.stores.blobs.clone();
        let mut named = std::mem::take(&mut self.blobs_to_size);
        if let Some(have) = have {
            let before = named.len();
            named.retain(|(digest, _)| !have.holds_blob(digest));
            self.sel.held_blobs = before - named.len();
        }
        let mut sized = futures::stream::iter(named)
            .map(|(digest, what)| {
                let blobs = blobs.clone();
                async move {
                    let found = blobs.head(&digest).await;
                    (digest, what, found)
                }
            })
            .buffered(SIZE_CONCURRENCY);
        while let Some((digest, what, found)) = sized.next().await {
            match found {
                Ok(meta) => {
                    self.sel.blobs.insert(digest, meta.size);
                }
                Err(e) if e.is_not_found() => self.sel.notes.push(format!(
                    "{what}: blob {digest} is not in this store; left out"
                )),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn raw_doc(&self, key: String) -> anyhow::Result<Option<Bytes>> {
        Ok(read_docs(self.stores, vec![key])
            .await?
            .pop()
            .map(|(_, b)| b))
    }

    async fn hf(&mut self, item: &HfItem) -> anyhow::Result<()> {
        let kind = match item.repo_type {
            HfRepoType::Model => RepoType::Model,
            HfRepoType::Dataset => RepoType::Dataset,
        };
        let repo = RepoRef::new(kind, &item.repo).ok_or_else(|| anyhow!("not a valid repo id"))?;
        let (kind, id) = (repo.kind.plural().to_string(), repo.id.clone());
        let repo_key = doc_key(MetaKey::HfRepo {
            kind: kind.clone(),
            id: id.clone(),
        });
        let repo_json = self.raw_doc(repo_key.clone()).await?.ok_or_else(|| {
            anyhow!("not in this store; import or mirror it first, or take it out of the spec")
        })?;
        self.sel.docs.insert(repo_key, repo_json);
        let refs = self
            .repos()
            .refs(&repo)
            .await
            .map_err(|e| anyhow!("{}", e.message))?;
        let refs_of = (kind.clone(), id.clone());
        let mut picked = self.hf_refs.remove(&refs_of).unwrap_or_default();
        for rev in &item.revisions {
            let id = if is_commit_id(rev) {
                rev.clone()
            } else {
                pick_ref(&refs, rev, &mut picked)
                    .ok_or_else(|| anyhow!("no branch or tag `{rev}` in this store"))?
            };
            let key = doc_key(MetaKey::HfCommit {
                kind: kind.clone(),
                id: repo.id.clone(),
                commit: id.clone(),
            });
            let bytes = self
                .raw_doc(key.clone())
                .await?
                .ok_or_else(|| anyhow!("commit {id} (`{rev}`) is not in this store"))?;
            // Read through the repository for the file list: a large one is in pages.
            let view = self
                .repos()
                .commit(&repo, &id)
                .await
                .map_err(|e| anyhow!("{key}: {}", e.message))?
                .ok_or_else(|| anyhow!("commit {id} (`{rev}`) is not in this store"))?;
            let commit = &view.commit;
            for page in &view.pages {
                let digest = Digest::sha256_hex(page)?;
                self.blob(digest, &format!("hf {} {rev}: its file list", item.repo));
            }
            self.sel.docs.insert(key, bytes);
            let mut left_out = 0;
            let xet = super::xet::transfer(self.stores);
            for f in &commit.files {
                if !wanted(&item.allow, &item.ignore, &f.path) {
                    left_out += 1;
                    continue;
                }
                if super::xet::select_hf_file(&xet, &mut self.sel, f).await? {
                    continue;
                }
                let digest = Digest::sha256_hex(&f.sha256)?;
                self.blob(digest, &format!("hf {} {}", item.repo, f.path));
            }
            if left_out > 0 {
                self.sel.notes.push(format!(
                    "hf {} {rev}: {left_out} file(s) left out by allow/ignore",
                    item.repo
                ));
            }
        }
        self.hf_refs.insert(refs_of, picked);
        self.hf_lists
            .entry(repo.kind.plural())
            .or_default()
            .insert(repo.id.clone());
        Ok(())
    }

    async fn pypi(&mut self, item: &PypiItem) -> anyhow::Result<()> {
        let mut requirements = item.projects.clone();
        if let Some(path) = &item.requirements {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the requirements file {}", path.display()))?;
            requirements.extend(parse_requirements(&text));
        }
        let index = crate::pypi::Index::new(crate::pypi::DEFAULT_INDEX, self.stores.docs.clone());
        for req in requirements {
            let (name, specifier) = split_requirement(&req)?;
            let normalized = crate::pypi::normalize(&name);
            let doc = index
                .project(&normalized)
                .await
                .map_err(|e| anyhow!("python {req}: {}", e.message))?
                .ok_or_else(|| anyhow!("python {req}: no project `{name}` in this store's default index; import or mirror it first"))?;
            let files: Vec<PypiFile> = doc
                .files
                .iter()
                .filter(|f| {
                    version_matches(&f.version, &specifier)
                        && format_matches(&item.formats, &f.filename)
                        && platform_matches(&item.platforms, &f.filename)
                })
                .cloned()
                .collect();
            if files.is_empty() {
                let versions: BTreeSet<&str> =
                    doc.files.iter().map(|f| f.version.as_str()).collect();
                bail!(
                    "python {req}: no file in this store matches (versions here: {}); fix the specifier or the platforms/formats",
                    versions.into_iter().collect::<Vec<_>>().join(", ")
                );
            }
            for f in &files {
                self.blob(Digest::sha256_hex(&f.sha256)?, &f.filename);
                if let Some(m) = &f.metadata_sha256 {
                    self.blob(Digest::sha256_hex(m)?, &format!("{}.metadata", f.filename));
                }
            }
            let picked = self
                .projects
                .entry(normalized)
                .or_insert_with(|| ProjectDoc {
                    name: doc.name.clone(),
                    files: Vec::new(),
                });
            for f in files {
                if !picked.files.iter().any(|p| p.filename == f.filename) {
                    picked.files.push(f);
                }
            }
        }
        Ok(())
    }

    async fn oci(&mut self, item: &OciItem) -> anyhow::Result<()> {
        let default_host = self.default_host.clone();
        let (name, reference) = split_image(&item.image);
        let name =
            crate::oci::canonical(name, None, &default_host).map_err(|e| anyhow!("{}", e.0))?;
        let registry = Registry::new(self.stores.docs.clone(), self.stores.blobs.clone());
        let oci_err = |e: crate::oci::OciError| anyhow!("{}", e.message);
        let repo = registry
            .repo(&name)
            .await
            .map_err(oci_err)?
            .ok_or_else(|| {
                anyhow!("no repository {name} in this store; import or mirror it first")
            })?;
        let mut picked = self.oci_repos.remove(&name).unwrap_or_default();
        let root = match reference {
            ImageRef::Digest(d) => d.parse::<Digest>().map_err(|e| anyhow!("{e}"))?,
            ImageRef::Tag(tag) => {
                let d = repo
                    .tags
                    .get(tag)
                    .cloned()
                    .ok_or_else(|| anyhow!("no tag `{tag}` in {name} here"))?;
                picked.tags.insert(tag.to_string(), d.clone());
                d
            }
        };
        if !repo.manifests.contains_key(&root) {
            bail!("manifest {root} is not in {name} here");
        }
        let mut queue = vec![root];
        while let Some(digest) = queue.pop() {
            if picked.manifests.contains_key(&digest) {
                continue;
            }
            let Some(entry) = repo.manifests.get(&digest) else {
                // Indexes saved for one platform list the others without their content.
                continue;
            };
            let bytes = registry.manifest_bytes(&digest).await.map_err(oci_err)?;
            picked.manifests.insert(digest.clone(), entry.clone());
            self.blob(digest.clone(), &format!("{name} manifest"));
            let inspected = crate::oci::manifest::inspect(&bytes, Some(&entry.media_type))
                .map_err(|e| anyhow!("manifest {digest}: {}", e.message))?;
            let body: serde_json::Value = serde_json::from_slice(&bytes)?;
            for child in body["manifests"].as_array().into_iter().flatten() {
                if platform_selected(&item.platforms, &child["platform"]) {
                    if let Some(d) = child["digest"].as_str().and_then(|d| d.parse().ok()) {
                        queue.push(d);
                    }
                }
            }
            for blob in inspected.blobs {
                let link = link_key(&name, &blob).map_err(oci_err)?;
                self.sel
                    .docs
                    .insert(link.to_string(), Bytes::from(blob.to_string()));
                self.blob(blob, &format!("{name} layer/config"));
            }
            if item.referrers {
                for (d, e) in &repo.manifests {
                    if e.subject.as_ref() == Some(&digest) {
                        queue.push(d.clone());
                    }
                }
            }
        }
        self.oci_repos.insert(name, picked);
        Ok(())
    }

    fn finish(mut self) -> Selection {
        let docs = &mut self.sel.docs;
        for (name, doc) in &self.oci_repos {
            let name = name.clone();
            docs.insert(doc_key(MetaKey::OciRepo { name }), json(doc));
        }
        // The repository documents are the catalog, as the project documents are an
        // index's list: nothing else to carry.
        for (normalized, doc) in &self.projects {
            let index = crate::pypi::DEFAULT_INDEX;
            let key = MetaKey::PypiProject {
                index: index.to_string(),
                project: normalized.clone(),
            };
            docs.insert(doc_key(key), json(doc));
        }
        for ((kind, id), refs) in &self.hf_refs {
            let (kind, id) = (kind.clone(), id.clone());
            docs.insert(doc_key(MetaKey::HfRefs { kind, id }), json(refs));
        }
        for (plural, ids) in &self.hf_lists {
            let kind = plural.to_string();
            docs.insert(doc_key(MetaKey::HfList { kind }), json(ids));
        }
        self.sel
    }
}

/// Copies the ref `rev` names into `into`; returns its commit.
fn pick_ref(all: &RefsDoc, rev: &str, into: &mut RefsDoc) -> Option<String> {
    let branch = rev.strip_prefix("refs/heads/").unwrap_or(rev);
    if let Some(id) = all.branches.get(branch) {
        into.branches.insert(branch.to_string(), id.clone());
        return Some(id.clone());
    }
    let tag = rev.strip_prefix("refs/tags/").unwrap_or(rev);
    if let Some(id) = all.tags.get(tag) {
        into.tags.insert(tag.to_string(), id.clone());
        return Some(id.clone());
    }
    let n: u64 = rev.strip_prefix("refs/pr/")?.parse().ok()?;
    let id = all.prs.get(&n)?;
    into.prs.insert(n, id.clone());
    Some(id.clone())
}

enum ImageRef<'a> {
    Tag(&'a str),
    Digest(&'a str),
}

/// `name@sha256:...`, `name:tag`, or `name` (tag `latest`).
fn split_image(image: &str) -> (&str, ImageRef<'_>) {
    if let Some((name, digest)) = image.split_once('@') {
        return (name, ImageRef::Digest(digest));
    }
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, ImageRef::Tag(tag)),
        _ => (image, ImageRef::Tag("latest")),
    }
}

fn platform_selected(wanted: &[String], platform: &serde_json::Value) -> bool {
    let (Some(os), Some(arch)) = (platform["os"].as_str(), platform["architecture"].as_str())
    else {
        return true;
    };
    let short = format!("{os}/{arch}");
    let long = format!(
        "{short}/{}",
        platform["variant"].as_str().unwrap_or_default()
    );
    wanted.is_empty() || wanted.iter().any(|w| *w == short || *w == long)
}

/// `fnmatch` as huggingface_hub applies allow/ignore patterns: `*` matches across `/`,
/// and a pattern ending in `/` means everything below that folder (the mirror's matcher:
/// one backtrack point, O(pattern·path), where a recursive one is exponential in stars).
pub fn wanted(allow: &[String], ignore: &[String], path: &str) -> bool {
    crate::mirror::glob::keep(path, allow, ignore)
}

/// Requirement lines of a pinned requirements file: continuations joined, comments,
/// options (`--hash`, `-r`, `--index-url`) and environment markers removed.
pub fn parse_requirements(text: &str) -> Vec<String> {
    text.replace("\\\n", " ")
        .lines()
        .map(|l| l.split(" #").next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('-'))
        .map(|l| {
            let l = l.split(" --").next().unwrap_or_default();
            l.split(';').next().unwrap_or_default().trim().to_string()
        })
        .collect()
}

/// `name[extras] (specifier)` -> (name, specifier).
pub fn split_requirement(req: &str) -> anyhow::Result<(String, String)> {
    let req = req.trim();
    let end = req
        .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
        .unwrap_or(req.len());
    let (name, mut rest) = req.split_at(end);
    if name.is_empty() {
        bail!("`{req}` is not a requirement (write name or name==version)");
    }
    rest = rest.trim();
    if let Some(after) = rest.strip_prefix('[') {
        rest = after
            .split_once(']')
            .map(|(_, r)| r)
            .unwrap_or_default()
            .trim();
    }
    if rest.starts_with('@') {
        bail!("`{req}`: direct URL requirements cannot be selected from a store; name a version instead");
    }
    let spec = rest.trim_start_matches('(').trim_end_matches(')').trim();
    Ok((name.to_string(), spec.to_string()))
}

fn release(v: &str) -> Option<Vec<u64>> {
    v.trim()
        .trim_start_matches('v')
        .split('.')
        .map(|p| p.parse().ok())
        .collect()
}

fn cmp_release(a: &[u64], b: &[u64]) -> std::cmp::Ordering {
    let n = a.len().max(b.len());
    let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
    (0..n)
        .map(|i| at(a, i).cmp(&at(b, i)))
        .find(|o| o.is_ne())
        .unwrap_or(std::cmp::Ordering::Equal)
}

/// Whether `version` satisfies a PEP 440 specifier, for the simple cases; a clause this
/// cannot judge (non-numeric versions) is taken as satisfied, so nothing is left out.
pub fn version_matches(version: &str, specifier: &str) -> bool {
    use std::cmp::Ordering::*;
    specifier
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .all(|clause| {
            let op_len = clause
                .find(|c: char| !"=!<>~".contains(c))
                .unwrap_or(clause.len());
            let (op, wanted) = (&clause[..op_len], clause[op_len..].trim());
            if let Some(prefix) = wanted.strip_suffix(".*") {
                let (Some(v), Some(p)) = (release(version), release(prefix)) else {
                    return true;
                };
                let same = v.len() >= p.len() && v[..p.len()] == p[..];
                return match op {
                    "==" => same,
                    "!=" => !same,
                    _ => true,
                };
            }
            let (Some(v), Some(w)) = (release(version), release(wanted)) else {
                return match op {
                    "==" | "===" => version.eq_ignore_ascii_case(wanted),
                    _ => true,
                };
            };
            let ord = cmp_release(&v, &w);
            match op {
                "==" | "===" => ord == Equal,
                "!=" => ord != Equal,
                "<" => ord == Less,
                "<=" => ord != Greater,
                ">" => ord == Greater,
                ">=" => ord != Less,
                "~=" if w.len() > 1 => {
                    ord != Less && v.len() >= w.len() - 1 && v[..w.len() - 1] == w[..w.len() - 1]
                }
                _ => true,
            }
        })
}

fn format_matches(formats: &[DistFormat], filename: &str) -> bool {
    let kind = if filename.ends_with(".whl") {
        DistFormat::Wheel
    } else {
        DistFormat::Sdist
    };
    formats.contains(&kind)
}

/// A wheel's platform tag (possibly `a.b`, compressed) against the wanted ones; sdists
/// build anywhere.
fn platform_matches(platforms: &[String], filename: &str) -> bool {
    let Some(stem) = filename.strip_suffix(".whl") else {
        return true;
    };
    let tag = stem.rsplit('-').next().unwrap_or_default();
    platforms.is_empty() || tag.split('.').any(|t| platforms.iter().any(|p| p == t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_specifiers() {
        for (v, spec, ok) in [
            ("1.26.4", ">=1.26,<2", true),
            ("2.0.0", ">=1.26,<2", false),
            ("1.25", ">=1.26,<2", false),
            ("1.0", "==1.0.0", true),
            ("1.0.1", "==1.0", false),
            ("1.4.2", "==1.4.*", true),
            ("1.5.0", "==1.4.*", false),
            ("2.2.1", "~=2.2", true),
            ("3.0", "~=2.2", false),
            ("1.0", "!=1.0", false),
            ("1.0", "", true),
            // beyond the simple subset: kept
            ("2.0rc1", "<2", true),
            ("1.0.post1", "==1.0.post1", true),
        ] {
            assert_eq!(version_matches(v, spec), ok, "{v} {spec}");
        }
    }

    #[test]
    fn requirements_files_as_pip_compile_writes_them() {
        let text =
            "# generated\nnumpy==1.26.4 \\\n    --hash=sha256:abc \\\n    --hash=sha256:def\n\
                    --index-url https://x\nrequests[socks]>=2 ; python_version > \"3\"  # why\n\n";
        let reqs = parse_requirements(text);
        assert_eq!(reqs, ["numpy==1.26.4", "requests[socks]>=2"]);
        assert_eq!(
            split_requirement(&reqs[1]).unwrap(),
            ("requests".into(), ">=2".into())
        );
        assert_eq!(
            split_requirement("tokenizers").unwrap(),
            ("tokenizers".into(), String::new())
        );
        assert!(split_requirement("pkg @ https://x/pkg.whl").is_err());
    }

    #[test]
    fn files_by_pattern_platform_and_format() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(wanted(&[], &[], "a/b.bin"));
        assert!(wanted(&s(&["*.json"]), &[], "sub/config.json"));
        assert!(!wanted(&s(&["*.json"]), &s(&["sub/"]), "sub/config.json"));
        assert!(!wanted(&s(&["*.safetensors"]), &[], "model.bin"));
        // Exponential in the stars with the recursive matcher this used to have.
        let stars = s(&[&format!("{}b", "*a".repeat(40))]);
        assert!(!wanted(&stars, &[], &"a".repeat(200)));
        let wheel = "numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl";
        assert!(platform_matches(&s(&["manylinux2014_x86_64"]), wheel));
        assert!(!platform_matches(&s(&["win_amd64"]), wheel));
        assert!(platform_matches(&s(&["win_amd64"]), "numpy-1.26.4.tar.gz"));
        assert!(format_matches(&[DistFormat::Sdist], "x-1.tar.gz"));
        assert!(!format_matches(&[DistFormat::Sdist], wheel));
        let p = serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"});
        assert!(platform_selected(&s(&["linux/arm64"]), &p));
        assert!(platform_selected(&s(&["linux/arm64/v8"]), &p));
        assert!(!platform_selected(&s(&["linux/amd64"]), &p));
    }
}
