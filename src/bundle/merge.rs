//! Merging an incoming document into what the receiver already has, with each
//! protocol's own document types. Pure functions: the import runs them inside
//! `DocStore::update`, so a server writing the same store at the same time loses nothing.
//!
//! The rules: lists and maps are unions; a tag, branch or yank flag takes the bundle's
//! value (with a warning when that replaces a different one), because the sender is where
//! they are maintained; a published file or manifest entry the receiver already has is
//! never replaced (its content is what clients were already served); `repo.json` (an HF
//! repository's visibility) stays as the receiver set it.

use crate::hf::model::{RefsDoc, RepoDoc as HfRepoDoc};
use crate::oci::registry::{Catalog, RepoDoc as OciRepoDoc};
use crate::pypi::project::{ProjectDoc, ProjectListEntry};
use crate::store::layout::MetaKey;
use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;

/// What kind of document a key holds, which decides how it merges and when it is published.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DocClass {
    /// Named by content or written once (commits, blob links): created if absent.
    Immutable,
    OciRepo,
    PypiProject,
    HfRepo,
    HfRefs,
    OciCatalog,
    PypiList,
    HfList,
    /// A key this version does not know: created if absent, else left alone.
    Other,
}

impl DocClass {
    /// Publishing order: what others point at first, the pointers next, listings last,
    /// so a server reading the store mid-import never follows a pointer to nothing.
    pub fn rank(self) -> u8 {
        match self {
            DocClass::Immutable | DocClass::Other => 0,
            DocClass::OciRepo | DocClass::PypiProject | DocClass::HfRepo | DocClass::HfRefs => 1,
            DocClass::OciCatalog | DocClass::PypiList | DocClass::HfList => 2,
        }
    }
}

pub fn classify(key: &str) -> DocClass {
    match MetaKey::parse(key) {
        Some(MetaKey::OciCatalog) => DocClass::OciCatalog,
        Some(MetaKey::OciRepo { .. }) => DocClass::OciRepo,
        Some(
            MetaKey::OciLink { .. }
            | MetaKey::HfLfsLink { .. }
            | MetaKey::HfCommit { .. }
            | MetaKey::XetXorbIndex { .. }
            | MetaKey::XetFile { .. }
            | MetaKey::XetSha256 { .. }
            | MetaKey::XetDedupChunk { .. }
            | MetaKey::XetXorbRepo { .. },
        ) => DocClass::Immutable,
        Some(MetaKey::PypiProjects { .. }) => DocClass::PypiList,
        Some(MetaKey::PypiProject { .. }) => DocClass::PypiProject,
        Some(MetaKey::HfList { .. }) => DocClass::HfList,
        Some(MetaKey::HfRepo { .. }) => DocClass::HfRepo,
        Some(MetaKey::HfRefs { .. }) => DocClass::HfRefs,
        Some(
            MetaKey::OciUploadState { .. }
            | MetaKey::ModelImagesServed { .. }
            | MetaKey::ModelImagesLayers { .. }
            | MetaKey::GcLastRun
            | MetaKey::GcClaim { .. }
            | MetaKey::GcLease
            | MetaKey::GcSweepBatch { .. }
            | MetaKey::GcAccess { .. }
            | MetaKey::StoreChanges { .. },
        )
        | None => DocClass::Other,
    }
}

/// The incoming document as this store's own: what the sender pulled through arrives
/// here by import, so it is local (never evicted; pull-through never moves a tag of it
/// nor adds upstream files to it). A Python file counts only when the bundle carries its
/// bytes (`carried`, by sha256 hex); one left out keeps its upstream URL to be fetched.
pub fn localize(
    key: &str,
    incoming: &[u8],
    carried: &dyn Fn(&str) -> bool,
) -> anyhow::Result<Vec<u8>> {
    let bytes = match classify(key) {
        DocClass::OciRepo => {
            let mut doc: OciRepoDoc = parse(key, incoming, "bundle's")?;
            if doc.upstream_tags.is_empty() {
                return Ok(incoming.to_vec());
            }
            doc.upstream_tags.clear();
            serde_json::to_vec(&doc)
        }
        DocClass::PypiProject => {
            let mut doc: ProjectDoc = parse(key, incoming, "bundle's")?;
            let mut changed = false;
            for file in &mut doc.files {
                if file.upstream_url.is_some() && carried(&file.sha256) {
                    file.upstream_url = None;
                    changed = true;
                }
            }
            if !changed {
                return Ok(incoming.to_vec());
            }
            serde_json::to_vec(&doc)
        }
        DocClass::HfRepo => {
            let mut doc: HfRepoDoc = parse(key, incoming, "bundle's")?;
            if !doc.mirrored {
                return Ok(incoming.to_vec());
            }
            doc.mirrored = false;
            serde_json::to_vec(&doc)
        }
        _ => return Ok(incoming.to_vec()),
    };
    Ok(bytes.expect("serializable"))
}

/// The new content (`None`: leave the stored document as it is) and what to tell the operator.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Merged {
    pub bytes: Option<Vec<u8>>,
    pub warnings: Vec<String>,
}

fn parse<T: DeserializeOwned>(key: &str, bytes: &[u8], whose: &str) -> anyhow::Result<T> {
    serde_json::from_slice(bytes).with_context(|| format!("{key}: the {whose} copy is not valid"))
}

/// `Some(bytes)` if `new` differs from `old`.
fn changed<T: Serialize + PartialEq>(old: &T, new: &T) -> Option<Vec<u8>> {
    (old != new).then(|| serde_json::to_vec(new).expect("serializable"))
}

pub fn merge(key: &str, current: Option<&[u8]>, incoming: &[u8]) -> anyhow::Result<Merged> {
    let class = classify(key);
    let Some(current) = current else {
        return Ok(Merged {
            bytes: Some(incoming.to_vec()),
            warnings: Vec::new(),
        });
    };
    if current == incoming {
        return Ok(Merged::default());
    }
    let mut warnings = Vec::new();
    let bytes = match class {
        DocClass::Immutable | DocClass::Other | DocClass::HfRepo => {
            if class != DocClass::HfRepo {
                warnings.push(format!(
                    "{key}: differs from the bundle's copy; kept the receiver's"
                ));
            }
            None
        }
        DocClass::OciCatalog => {
            let old: Catalog = parse(key, current, "receiver's")?;
            let theirs: Catalog = parse(key, incoming, "bundle's")?;
            let mut new = old.clone();
            new.repositories.extend(theirs.repositories);
            changed(&old, &new)
        }
        DocClass::OciRepo => {
            let old: OciRepoDoc = parse(key, current, "receiver's")?;
            let theirs: OciRepoDoc = parse(key, incoming, "bundle's")?;
            let mut new = old.clone();
            for (digest, entry) in theirs.manifests {
                new.manifests.entry(digest).or_insert(entry);
            }
            let repo = match MetaKey::parse(key) {
                Some(MetaKey::OciRepo { name }) => name,
                _ => key.to_string(),
            };
            for (tag, digest) in theirs.tags {
                if let Some(was) = new.tags.insert(tag.clone(), digest.clone()) {
                    if was != digest {
                        warnings.push(format!("{repo}:{tag} moved from {was} to {digest}"));
                    }
                }
            }
            changed(&old, &new)
        }
        DocClass::PypiList => {
            let old: Vec<ProjectListEntry> = parse(key, current, "receiver's")?;
            let theirs: Vec<ProjectListEntry> = parse(key, incoming, "bundle's")?;
            let mut by_name: BTreeMap<String, ProjectListEntry> = theirs
                .into_iter()
                .chain(old.iter().cloned())
                .map(|p| (p.normalized.clone(), p))
                .collect();
            let new: Vec<ProjectListEntry> = std::mem::take(&mut by_name).into_values().collect();
            changed(&old, &new)
        }
        DocClass::PypiProject => {
            let old: ProjectDoc = parse(key, current, "receiver's")?;
            let theirs: ProjectDoc = parse(key, incoming, "bundle's")?;
            let mut new = old.clone();
            for file in theirs.files {
                match new.files.iter_mut().find(|f| f.filename == file.filename) {
                    None => new.files.push(file),
                    Some(have) if have.sha256 != file.sha256 => warnings.push(format!(
                        "{}: the bundle's copy has other content (sha256 {}); kept the receiver's, published files never change",
                        file.filename, file.sha256
                    )),
                    Some(have) if have.yanked != file.yanked => {
                        warnings.push(format!(
                            "{}: {} by the bundle",
                            file.filename,
                            if file.yanked.is_some() { "yanked" } else { "un-yanked" }
                        ));
                        have.yanked = file.yanked;
                    }
                    Some(_) => {}
                }
            }
            changed(&old, &new)
        }
        DocClass::HfList => {
            let old: Vec<String> = parse(key, current, "receiver's")?;
            let theirs: Vec<String> = parse(key, incoming, "bundle's")?;
            let mut new = old.clone();
            new.extend(theirs);
            new.sort();
            new.dedup();
            changed(&old, &new)
        }
        DocClass::HfRefs => {
            let old: RefsDoc = parse(key, current, "receiver's")?;
            let theirs: RefsDoc = parse(key, incoming, "bundle's")?;
            let mut new = old.clone();
            // `hf/models/org--name/refs.json` -> `org/name`, as the operator knows it.
            let repo = key.split('/').nth(2).unwrap_or(key).replace("--", "/");
            let mut take =
                |kind: &str, name: String, id: String, map: &mut BTreeMap<String, String>| {
                    if let Some(was) = map.insert(name.clone(), id.clone()) {
                        if was != id {
                            warnings
                                .push(format!("{repo}: {kind} {name} moved from {was} to {id}"));
                        }
                    }
                };
            for (name, id) in theirs.branches {
                take("branch", name, id, &mut new.branches);
            }
            for (name, id) in theirs.tags {
                take("tag", name, id, &mut new.tags);
            }
            for (n, id) in theirs.prs {
                new.prs.insert(n, id);
            }
            changed(&old, &new)
        }
    };
    if class == DocClass::HfRepo {
        // Validate it anyway: a corrupt incoming repo.json should not pass silently.
        parse::<HfRepoDoc>(key, incoming, "bundle's")?;
    }
    Ok(Merged { bytes, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn j(v: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn classifies_every_layout_key() {
        for (key, class) in [
            ("oci/catalog.json", DocClass::OciCatalog),
            (
                "oci/repos/docker.io/library/busybox/_repo.json",
                DocClass::OciRepo,
            ),
            (
                "oci/repos/docker.io/a/_blobs/sha256/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                DocClass::Immutable,
            ),
            ("pypi/default/projects.json", DocClass::PypiList),
            ("pypi/team/projects/numpy.json", DocClass::PypiProject),
            ("hf/models.json", DocClass::HfList),
            ("hf/models/org--m/repo.json", DocClass::HfRepo),
            ("hf/datasets/org--d/refs.json", DocClass::HfRefs),
            ("hf/models/org--m/commits/abc.json", DocClass::Immutable),
            ("hf/something/new", DocClass::Other),
        ] {
            assert_eq!(classify(key), class, "{key}");
        }
    }

    #[test]
    fn pulled_through_files_become_local_only_with_their_bytes() {
        let mut carried_file = file("a-1.0.tar.gz", 'a', None);
        carried_file["upstream_url"] = json!("https://up.example/a-1.0.tar.gz");
        let mut left_out = file("a-1.0-py3-none-any.whl", 'b', None);
        left_out["upstream_url"] = json!("https://up.example/a-1.0-py3-none-any.whl");
        let doc = j(json!({"name": "a", "files": [carried_file, left_out]}));
        let out = localize("pypi/default/projects/a.json", &doc, &|sha| {
            sha == "a".repeat(64)
        })
        .unwrap();
        let out: ProjectDoc = serde_json::from_slice(&out).unwrap();
        assert_eq!(out.files[0].upstream_url, None);
        assert!(
            out.files[1].upstream_url.is_some(),
            "its bytes stay upstream"
        );

        let repo =
            j(json!({"tags": {"1.0": d('a')}, "manifests": {}, "upstream_tags": {"1.0": d('a')}}));
        let out = localize("oci/repos/docker.io/x/_repo.json", &repo, &|_| false).unwrap();
        let out: OciRepoDoc = serde_json::from_slice(&out).unwrap();
        assert!(out.tag_is_local("1.0"));
    }

    #[test]
    fn absent_documents_are_created_and_equal_ones_left_alone() {
        let m = merge("oci/catalog.json", None, b"{}").unwrap();
        assert_eq!(m.bytes.as_deref(), Some(&b"{}"[..]));
        assert_eq!(merge("x", Some(b"a"), b"a").unwrap(), Merged::default());
    }

    #[test]
    fn oci_repos_union_manifests_and_the_bundle_moves_tags() {
        let entry = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 10});
        let mine = j(json!({"tags": {"1.0": d('a'), "old": d('a')}, "manifests": {d('a'): entry}}));
        let theirs =
            j(json!({"tags": {"1.0": d('b'), "2.0": d('b')}, "manifests": {d('b'): entry}}));
        let key = "oci/repos/docker.io/x/_repo.json";
        let m = merge(key, Some(&mine), &theirs).unwrap();
        let doc: OciRepoDoc = serde_json::from_slice(&m.bytes.unwrap()).unwrap();
        assert_eq!(doc.manifests.len(), 2);
        assert_eq!(doc.tags["1.0"].to_string(), d('b'));
        assert_eq!(doc.tags["old"].to_string(), d('a'));
        assert_eq!(doc.tags["2.0"].to_string(), d('b'));
        assert_eq!(m.warnings.len(), 1);
        assert!(
            m.warnings[0].contains("docker.io/x:1.0 moved"),
            "{:?}",
            m.warnings
        );

        let cat = merge(
            "oci/catalog.json",
            Some(&j(json!({"repositories": ["a"]}))),
            &j(json!({"repositories": ["b"]})),
        )
        .unwrap();
        let cat: Catalog = serde_json::from_slice(&cat.bytes.unwrap()).unwrap();
        assert_eq!(cat.repositories.len(), 2);
    }

    fn file(name: &str, sha: char, yanked: Option<&str>) -> serde_json::Value {
        json!({"filename": name, "version": "1.0", "kind": "wheel", "sha256": sha.to_string().repeat(64),
               "size": 3, "upload_time": "2024-01-01T00:00:00.000000Z", "yanked": yanked})
    }

    #[test]
    fn pypi_projects_union_files_and_never_replace_content() {
        let key = "pypi/default/projects/demo.json";
        let mine = j(
            json!({"name": "demo", "files": [file("a.whl", 'a', None), file("b.whl", 'b', None)]}),
        );
        let theirs = j(
            json!({"name": "demo", "files": [file("a.whl", 'a', Some("bad")), file("b.whl", 'c', None), file("c.whl", 'c', None)]}),
        );
        let m = merge(key, Some(&mine), &theirs).unwrap();
        let doc: ProjectDoc = serde_json::from_slice(&m.bytes.unwrap()).unwrap();
        let names: Vec<_> = doc.files.iter().map(|f| f.filename.as_str()).collect();
        assert_eq!(names, ["a.whl", "b.whl", "c.whl"]);
        assert_eq!(doc.files[0].yanked.as_deref(), Some("bad"));
        assert_eq!(
            doc.files[1].sha256,
            "b".repeat(64),
            "content never replaced"
        );
        assert_eq!(m.warnings.len(), 2, "{:?}", m.warnings);

        let list = merge(
            "pypi/default/projects.json",
            Some(&j(json!([{"name": "Zed", "normalized": "zed"}]))),
            &j(json!([{"name": "demo", "normalized": "demo"}, {"name": "zed", "normalized": "zed"}])),
        )
        .unwrap();
        let list: Vec<ProjectListEntry> = serde_json::from_slice(&list.bytes.unwrap()).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].normalized, "demo", "sorted");
        assert_eq!(list[1].name, "Zed", "the receiver's display name stays");
    }

    #[test]
    fn hf_refs_take_the_bundles_branches_and_repo_json_stays() {
        let key = "hf/models/org--m/refs.json";
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        let mine = j(json!({"branches": {"main": a, "dev": a}, "tags": {}}));
        let theirs = j(json!({"branches": {"main": b}, "tags": {"v1": b}}));
        let m = merge(key, Some(&mine), &theirs).unwrap();
        let refs: RefsDoc = serde_json::from_slice(&m.bytes.unwrap()).unwrap();
        assert_eq!(refs.branches["main"], b);
        assert_eq!(refs.branches["dev"], a);
        assert_eq!(refs.tags["v1"], b);
        assert_eq!(
            m.warnings,
            [format!("org/m: branch main moved from {a} to {b}")]
        );

        let repo = |private: bool| {
            j(json!({"id": "org/m", "kind": "model", "private": private, "created_at": "x"}))
        };
        let m = merge(
            "hf/models/org--m/repo.json",
            Some(&repo(true)),
            &repo(false),
        )
        .unwrap();
        assert_eq!(m, Merged::default());
        assert!(merge("hf/models/org--m/repo.json", Some(&repo(true)), b"nonsense").is_err());

        let list = merge(
            "hf/models.json",
            Some(&j(json!(["b"]))),
            &j(json!(["a", "b"])),
        )
        .unwrap();
        assert_eq!(list.bytes.unwrap(), j(json!(["a", "b"])));
    }
}
