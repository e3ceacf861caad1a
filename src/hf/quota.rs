//! `[hf] quotas`: bytes per organization (`{ org = "50GiB" }`). An organization's usage
//! is every file of every commit its repositories' branches, tags and pull requests
//! reach (what `airlock gc` keeps), each body once. An LFS batch or a commit that would
//! take it past its quota is refused (403) before anything of it is stored.

use super::model::{RepoRef, RepoType};
use super::repo::Repos;
use super::{HfError, HfState};
use std::collections::{HashMap, HashSet};

/// The organization a repository belongs to: what comes before the `/` of its id.
pub fn organization(repo: &RepoRef) -> Option<&str> {
    repo.id.split_once('/').map(|(org, _)| org)
}

/// The bodies (sha256 -> size) the organization's repositories reach.
pub async fn usage(repos: &Repos, org: &str) -> Result<HashMap<String, u64>, HfError> {
    let mut bodies = HashMap::new();
    for kind in [RepoType::Model, RepoType::Dataset, RepoType::Space] {
        let prefix = format!("{org}/");
        for id in repos.list(kind).await? {
            let Some(repo) = id
                .starts_with(&prefix)
                .then(|| RepoRef::new(kind, &id))
                .flatten()
            else {
                continue;
            };
            let refs = repos.refs(&repo).await?;
            let mut pending: Vec<String> = refs
                .branches
                .values()
                .chain(refs.tags.values())
                .chain(refs.prs.values())
                .cloned()
                .collect();
            let mut seen = HashSet::new();
            while let Some(id) = pending.pop() {
                if !seen.insert(id.clone()) {
                    continue;
                }
                let Some(view) = repos.commit(&repo, &id).await? else {
                    continue;
                };
                for file in &view.commit.files {
                    bodies.insert(file.sha256.clone(), file.size);
                }
                pending.extend(view.commit.parents.iter().cloned());
            }
        }
    }
    Ok(bodies)
}

/// Refuses adding `adding` (sha256, size) bodies to `repo`'s organization when those it
/// does not hold yet would take it past its quota.
pub async fn admit(hf: &HfState, repo: &RepoRef, adding: &[(String, u64)]) -> Result<(), HfError> {
    let Some(limit) = organization(repo).and_then(|org| hf.quotas.of(org)) else {
        return Ok(());
    };
    let used = usage(&hf.repos, &limit.scope).await?;
    let mut new = HashMap::new();
    for (sha256, size) in adding {
        if !used.contains_key(sha256) {
            new.insert(sha256.as_str(), *size);
        }
    }
    limit
        .admit(used.values().sum(), new.values().sum())
        .map_err(|e| HfError::forbidden(e.to_string()))
}
