//! Derived state left by deleted repositories: the OCI model images' records
//! (`modelimages/<kind>/<org>--<name>/`: the commits served, the modelcar layer digests)
//! of a Hub repository that no longer exists. Nothing reads them any more, and were the
//! name created again, they would be recomputed from its own commits.

use super::mark::for_each_object;
use crate::hf::model::{RepoRef, RepoType};
use crate::hf::repo::Repos;
use crate::store::layout::{MetaKey, MODEL_IMAGES_PREFIX};
use crate::store::{ObjectKey, Stores};
use std::collections::BTreeMap;

/// Removes (unless `dry_run`) the model-image records of repositories that are gone; how
/// many records that is.
pub async fn sweep_model_images(stores: &Stores, dry_run: bool) -> anyhow::Result<u64> {
    let mut by_repo: BTreeMap<(String, String), Vec<ObjectKey>> = BTreeMap::new();
    for_each_object(stores, MODEL_IMAGES_PREFIX, |meta| {
        let repo = match MetaKey::parse(meta.key.as_str()) {
            Some(MetaKey::ModelImagesServed { kind, id })
            | Some(MetaKey::ModelImagesLayers { kind, id, .. }) => (kind, id),
            _ => return,
        };
        by_repo.entry(repo).or_default().push(meta.key);
    })
    .await?;
    let repos = Repos::new(stores.docs.clone(), stores.blobs.clone());
    let mut removed = 0;
    for ((kind, id), keys) in by_repo {
        let Some(repo) = RepoType::from_plural(&kind).and_then(|t| RepoRef::new(t, &id)) else {
            continue;
        };
        if repos
            .repo(&repo)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?
            .is_some()
        {
            continue;
        }
        removed += keys.len() as u64;
        if dry_run {
            continue;
        }
        for key in keys {
            stores.docs.delete(&key).await?;
        }
        tracing::info!(repository = %id, "model image records of a deleted repository removed");
    }
    Ok(removed)
}
