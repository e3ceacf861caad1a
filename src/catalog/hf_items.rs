//! Models and datasets in the catalog: what a list row, an item page and the store
//! totals need from a Hub repository's documents (repo.json, refs.json, commits).

use super::CatalogState;
use super::{snippets, CatalogError, ItemId};
use crate::hf::model::{RepoDoc, RepoRef, RepoType};
use crate::store::layout::MetaKey;
use crate::store::NameList;
use serde_json::{json, Value};
use std::sync::Arc;

/// Files an item page lists (the first, by path): a dataset of 100,000 files made a
/// 17 MB page. The Hub API's tree lists them all, page by page.
const FILES_SHOWN: usize = 1000;

/// Every model and dataset id, sorted per kind.
pub async fn all(state: &CatalogState, kind: super::Kind) -> Result<Arc<NameList>, CatalogError> {
    let Some(repo_type) = super::endpoint::hf_type(kind) else {
        return Ok(Arc::default());
    };
    Ok(state.repos.names(repo_type).await?)
}

/// A list row: the `main` head's date, file count and size (none while the repository
/// has no head yet: a mirror may be created empty). A large commit's file list is not
/// read for it.
pub async fn summary(
    state: &CatalogState,
    repo: &RepoRef,
    doc: &RepoDoc,
) -> Result<Value, CatalogError> {
    let head = match state.repos.summary(repo, "main").await {
        Ok(head) => Some(head),
        Err(e) if e.status == http::StatusCode::NOT_FOUND => None,
        Err(e) => return Err(e.into()),
    };
    Ok(json!({
        "updated": head.as_ref().map(|h| h.date.clone()),
        "files": head.as_ref().map(|h| h.files),
        "size": head.as_ref().map(|h| h.used_storage),
        "private": doc.private,
        "gated": doc.gated,
    }))
}

/// The item page: refs, one revision's files, and how to fetch it.
pub async fn detail(
    state: &CatalogState,
    repo: &RepoRef,
    doc: &RepoDoc,
    revision: Option<&str>,
    base: &str,
) -> Result<Value, CatalogError> {
    let refs = state.repos.refs(repo).await?;
    let revision = revision.unwrap_or("main");
    let view = state.repos.resolve(repo, revision).await?;
    let commit = &view.commit;
    let named = |map: &std::collections::BTreeMap<String, String>| -> Vec<Value> {
        map.iter()
            .map(|(name, commit)| json!({ "name": name, "commit": commit }))
            .collect()
    };
    let files: Vec<Value> = commit
        .files
        .iter()
        .take(FILES_SHOWN)
        .map(|f| {
            json!({
                "path": f.path, "size": f.size, "sha256": f.sha256, "oid": f.oid, "lfs": f.lfs,
            })
        })
        .collect();
    Ok(json!({
        "private": doc.private,
        "gated": doc.gated,
        "created_at": doc.created_at,
        "revision": {
            "name": revision,
            "commit": commit.id,
            "date": commit.date,
            "title": commit.title,
            "author": commit.author,
        },
        "branches": named(&refs.branches),
        "tags": named(&refs.tags),
        "pull_requests": refs.prs.iter().map(|(n, c)| json!({ "name": format!("refs/pr/{n}"), "commit": c })).collect::<Vec<_>>(),
        "files": files,
        "file_count": commit.files.len(),
        "size": commit.files.iter().map(|f| f.size).sum::<u64>(),
        "snippets": hf_snippets(state, base, repo, revision, doc),
    }))
}

/// The sha256 of every file of every commit the repository holds (old commits keep
/// their blobs too), from the commit keys a store listing found.
pub async fn referenced_blobs(
    state: &CatalogState,
    repo: &RepoRef,
    commit_ids: &[String],
) -> Result<Vec<String>, CatalogError> {
    let mut blobs = Vec::new();
    for id in commit_ids {
        if let Some(view) = state.repos.commit(repo, id).await? {
            blobs.extend(view.commit.files.iter().map(|f| f.sha256.clone()));
            blobs.extend(view.pages.iter().cloned());
        }
    }
    Ok(blobs)
}

/// A key of a repository's documents to the repository and what the key names; spaces
/// are not catalog items.
pub fn repo_of_key(key: &str) -> Option<(ItemId, MetaKey)> {
    let meta = MetaKey::parse(key)?;
    let (plural, id) = match &meta {
        MetaKey::HfRepo { kind, id }
        | MetaKey::HfRefs { kind, id }
        | MetaKey::HfCommit { kind, id, .. } => (kind, id),
        _ => return None,
    };
    let kind = match RepoType::from_plural(plural)? {
        RepoType::Model => super::Kind::Model,
        RepoType::Dataset => super::Kind::Dataset,
        RepoType::Space => return None,
    };
    let id = id.clone();
    crate::hf::model::is_valid_repo_id(&id).then_some((ItemId::Hf { kind, id }, meta))
}

/// The Hub's snippets, and the S3 API's when it is served.
fn hf_snippets(
    state: &CatalogState,
    base: &str,
    repo: &RepoRef,
    revision: &str,
    doc: &RepoDoc,
) -> Vec<Value> {
    let needs_token = doc.private || doc.gated || !state.auth.anonymous_read();
    let mut out = snippets::hf(base, repo, revision, needs_token);
    if let Some(s3) = &state.s3 {
        out.extend(snippets::s3(&s3.url(base), repo, revision, needs_token));
    }
    out
}
