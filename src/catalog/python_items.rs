//! Python projects in the catalog, from each index's project list and project documents.

use super::CatalogState;
use super::{snippets, CatalogError, ItemId};
use crate::pypi::project::{FileEntry, ProjectDoc};
use crate::pypi::Index;
use crate::store::layout::MetaKey;
use crate::store::NameList;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Every index this server has: the default one first.
pub fn indexes(state: &CatalogState) -> Vec<String> {
    std::iter::once(crate::pypi::DEFAULT_INDEX.to_string())
        .chain(state.pypi.indexes.iter().cloned())
        .collect()
}

/// Every index's projects (normalized names: the name as first uploaded is in each
/// project's document), as the index keeps them listed.
pub async fn all(state: &CatalogState) -> Result<Vec<(String, Arc<NameList>)>, CatalogError> {
    let mut out = Vec::new();
    for index in indexes(state) {
        let names = Index::new(&index, state.docs.clone()).names().await?;
        out.push((index, names));
    }
    Ok(out)
}

pub async fn project(
    state: &CatalogState,
    index: &str,
    name: &str,
) -> Result<ProjectDoc, CatalogError> {
    let unknown = || CatalogError::NotFound(format!("no project `{name}` in index `{index}`"));
    if !state.pypi.has_index(index) {
        return Err(unknown());
    }
    Index::new(index, state.docs.clone())
        .project(name)
        .await?
        .ok_or_else(unknown)
}

/// Versions newest first (PEP 440 order; versions that do not parse go last).
fn versions(doc: &ProjectDoc) -> Vec<(&str, Vec<&FileEntry>)> {
    let mut by_version: BTreeMap<&str, Vec<&FileEntry>> = BTreeMap::new();
    for f in &doc.files {
        by_version.entry(&f.version).or_default().push(f);
    }
    let mut versions: Vec<(&str, Vec<&FileEntry>)> = by_version.into_iter().collect();
    let key = |v: &str| v.parse::<pep440_rs::Version>().ok();
    versions.sort_by(|(a, _), (b, _)| match (key(a), key(b)) {
        (Some(a), Some(b)) => b.cmp(&a),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => b.cmp(a),
    });
    versions
}

/// The newest version with a file that is not yanked, else the newest.
fn latest<'a>(versions: &[(&'a str, Vec<&FileEntry>)]) -> Option<&'a str> {
    versions
        .iter()
        .find(|(_, files)| files.iter().any(|f| f.yanked.is_none()))
        .or(versions.first())
        .map(|(v, _)| *v)
}

pub fn summary(doc: &ProjectDoc) -> Value {
    let versions = versions(doc);
    json!({
        "display_name": doc.name,
        "updated": doc.files.iter().map(|f| f.upload_time.as_str()).max(),
        "latest_version": latest(&versions),
        "versions": versions.len(),
        "files": doc.files.len(),
        "size": doc.files.iter().map(|f| f.size).sum::<u64>(),
    })
}

pub fn detail(state: &CatalogState, index: &str, doc: &ProjectDoc, base: &str) -> Value {
    let versions = versions(doc);
    let latest = latest(&versions);
    let versions_json: Vec<Value> = versions
        .iter()
        .map(|(version, files)| {
            let files: Vec<Value> = files
                .iter()
                .map(|f| {
                    json!({
                        "filename": f.filename,
                        "kind": f.kind,
                        "size": f.size,
                        "sha256": f.sha256,
                        "requires_python": f.requires_python,
                        "yanked": f.yanked,
                        "upload_time": f.upload_time,
                        "url": format!("{base}/pypi/{index}/files/{}/{}/{}", crate::pypi::normalize(&doc.name), f.sha256, f.filename),
                    })
                })
                .collect();
            json!({ "version": version, "files": files })
        })
        .collect();
    json!({
        "display_name": doc.name,
        "index": index,
        "latest_version": latest,
        "versions": versions_json,
        "size": doc.files.iter().map(|f| f.size).sum::<u64>(),
        "snippets": latest.map(|v| snippets::python(base, index, &doc.name, v, !state.auth.anonymous_read())).unwrap_or_default(),
    })
}

/// The sha256 of every file and every `.metadata` file the project lists.
pub fn referenced_blobs(doc: &ProjectDoc) -> Vec<String> {
    doc.files
        .iter()
        .flat_map(|f| std::iter::once(&f.sha256).chain(&f.metadata_sha256))
        .cloned()
        .collect()
}

/// `pypi/<index>/projects/<normalized>.json` to the project.
pub fn project_of_key(key: &str) -> Option<ItemId> {
    match MetaKey::parse(key)? {
        MetaKey::PypiProject { index, project } => Some(ItemId::Project {
            index,
            name: project,
        }),
        _ => None,
    }
}
