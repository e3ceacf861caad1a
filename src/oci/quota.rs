//! `[oci] quotas`: bytes per namespace (`docker.io/team` holds `docker.io/team/app`).
//! A namespace's usage is every blob its repositories' manifests name (config, layers,
//! the manifests themselves), each once; a push that would take it past its quota is
//! refused with DENIED before anything of it is stored or linked.

use super::error::{Code, OciError, Result};
use super::registry::Registry;
use crate::digest::Digest;
use crate::quota::{Exceeded, Limit};
use crate::store::layout::{MetaKey, OCI_REPOS_PREFIX};
use std::collections::HashMap;

/// The blobs a namespace's manifests name, with their sizes.
pub async fn usage(registry: &Registry, namespace: &str) -> Result<HashMap<Digest, u64>> {
    let prefix = format!("{OCI_REPOS_PREFIX}{namespace}/");
    let store = registry.blobs().store();
    let mut repos = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list(&prefix, after.as_deref(), 1000).await?;
        for meta in page.objects {
            if let Some(MetaKey::OciRepo { name }) = MetaKey::parse(meta.key.as_str()) {
                repos.push(name);
            }
        }
        match page.next_start_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut used = HashMap::new();
    for name in repos {
        let Some(repo) = registry.repo(&name).await? else {
            continue;
        };
        for (digest, entry) in &repo.manifests {
            used.insert(digest.clone(), entry.size);
            if let Ok(bytes) = registry.manifest_bytes(digest).await {
                used.extend(descriptors(&bytes));
            }
        }
    }
    Ok(used)
}

/// The (digest, size) of each blob a manifest's descriptors name.
pub fn descriptors(manifest: &[u8]) -> Vec<(Digest, u64)> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(manifest) else {
        return Vec::new();
    };
    let one = |d: &serde_json::Value| -> Option<(Digest, u64)> {
        Some((d["digest"].as_str()?.parse().ok()?, d["size"].as_u64()?))
    };
    std::iter::once(&value["config"])
        .chain(value["layers"].as_array().into_iter().flatten())
        .chain(value["blobs"].as_array().into_iter().flatten())
        .filter_map(one)
        .collect()
}

/// Refuses adding `adding` (digest, size) blobs to the namespace `limit` governs, when
/// those it does not hold yet would take it past its quota.
pub async fn admit(registry: &Registry, limit: &Limit, adding: &[(Digest, u64)]) -> Result<()> {
    let used = usage(registry, &limit.scope).await?;
    let total: u64 = used.values().sum();
    let new: u64 = adding
        .iter()
        .filter(|(d, _)| !used.contains_key(d))
        .map(|(_, size)| size)
        .sum();
    limit.admit(total, new).map_err(refusal)
}

pub fn refusal(e: Exceeded) -> OciError {
    OciError::new(Code::Denied, e.to_string())
}
