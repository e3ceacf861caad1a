//! Retention of OCI tags (`[[gc.retention]]`): in the repositories a rule names, only the
//! `keep_last` most recently pushed of the tags it governs stay; the others are removed
//! before the mark, with the images they named: each manifest a removed tag pointed at,
//! the index children and referrers hanging from it, unless a remaining tag still
//! reaches them (as a tag, an index child or a referrer's subject). Manifests that were
//! untagged before the run are left to `untagged_older_than`, which removes those pushed
//! longer ago (a child of a tagged index, or a referrer of a tagged image, is not
//! untagged). What only the removed images referenced is then unreferenced for the mark.
//!
//! "Pushed" is when the tagged manifest was stored (its blob's modification time), as
//! Harbor's and zot's "most recently pushed" count images, not tag moves; ties go to
//! the greater tag name. A tag several rules govern stays if any of them keeps it. A tag
//! moved while the run decides is left alone (each removal re-checks the digest).

use crate::digest::Digest;
use crate::mirror::glob::fnmatch;
use crate::oci::registry::{Registry, RepoDoc};
use crate::store::layout::blob_key;
use crate::store::Stores;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

/// One `[[gc.retention]]` rule.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRule {
    /// Repositories, a glob over canonical names (`docker.io/team/*`; `*` crosses `/`).
    pub repositories: String,
    /// The tags the rule governs, a glob (default: every tag).
    #[serde(default = "every_tag")]
    pub tags: String,
    /// How many of them stay, most recently pushed first (unset: tags are not limited).
    pub keep_last: Option<usize>,
    /// Manifests no tag reaches (untagged, and not a child or referrer of a tagged
    /// image) go once they were pushed longer ago than this (unset: they stay).
    #[serde(default, with = "humantime_serde")]
    pub untagged_older_than: Option<Duration>,
}

impl RetentionRule {
    pub fn validate(&self) -> Result<(), String> {
        if self.keep_last.is_none() && self.untagged_older_than.is_none() {
            return Err(format!(
                "`gc.retention` for `{}` says nothing to do: give it `keep_last` and/or `untagged_older_than`",
                self.repositories
            ));
        }
        Ok(())
    }
}

fn every_tag() -> String {
    "*".into()
}

/// A tag a rule removed (or would remove, in a dry run).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedTag {
    pub repository: String,
    pub tag: String,
    pub digest: String,
}

/// An untagged manifest a rule removed (or would remove).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedManifest {
    pub repository: String,
    pub digest: String,
}

/// What retention removed, or would remove in a dry run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    pub tags: Vec<RemovedTag>,
    pub untagged: Vec<RemovedManifest>,
}

/// Applies `rules` to the OCI repositories `names`.
pub async fn apply(
    stores: &Stores,
    names: &[String],
    rules: &[RetentionRule],
    dry_run: bool,
) -> anyhow::Result<Removed> {
    let mut removed = Removed::default();
    if rules.is_empty() {
        return Ok(removed);
    }
    let registry = Registry::new(stores.docs.clone(), stores.blobs.clone());
    let now = SystemTime::now();
    for name in names {
        let governing: Vec<&RetentionRule> = rules
            .iter()
            .filter(|r| fnmatch(&r.repositories, name))
            .collect();
        if governing.is_empty() {
            continue;
        }
        let Some(doc) = registry
            .repo(name)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?
        else {
            continue;
        };
        let mut pushed: BTreeMap<Digest, SystemTime> = BTreeMap::new();
        for digest in doc.manifests.keys() {
            let stored = stores.store.head(&blob_key(digest)).await.ok();
            let at = stored.and_then(|m| m.last_modified);
            pushed.insert(digest.clone(), at.unwrap_or(SystemTime::UNIX_EPOCH));
        }
        let pushed_at = |d: &Digest| pushed.get(d).copied().unwrap_or(SystemTime::UNIX_EPOCH);

        // Tags beyond `keep_last`, and the images only they reach.
        let (mut governed, mut kept) = (BTreeSet::new(), BTreeSet::new());
        for rule in &governing {
            let Some(keep_last) = rule.keep_last else {
                continue;
            };
            let mut tags: Vec<(&String, &Digest)> = doc
                .tags
                .iter()
                .filter(|(tag, _)| fnmatch(&rule.tags, tag))
                .collect();
            tags.sort_by(|a, b| pushed_at(b.1).cmp(&pushed_at(a.1)).then(b.0.cmp(a.0)));
            governed.extend(tags.iter().map(|(t, _)| (*t).clone()));
            kept.extend(tags.iter().take(keep_last).map(|(t, _)| (*t).clone()));
        }
        let doomed: BTreeMap<String, Digest> = governed
            .difference(&kept)
            .map(|t| (t.clone(), doc.tags[t].clone()))
            .collect();
        let remaining = doc
            .tags
            .iter()
            .filter(|(t, _)| !doomed.contains_key(*t))
            .map(|(_, d)| d.clone());
        let reachable = images(&registry, &doc, remaining).await?;
        let images_gone: BTreeSet<Digest> = images(&registry, &doc, doomed.values().cloned())
            .await?
            .difference(&reachable)
            .cloned()
            .collect();
        let was_tagged: BTreeSet<Digest> =
            images(&registry, &doc, doc.tags.values().cloned()).await?;

        // Manifests no tag reached before this run, pushed longer ago than every rule
        // governing the repository allows (a manifest stays if any rule keeps it).
        let untagged_limit = governing
            .iter()
            .map(|r| r.untagged_older_than)
            .collect::<Option<Vec<_>>>()
            .and_then(|limits| limits.into_iter().max());
        let untagged_gone: BTreeSet<Digest> = match untagged_limit {
            Some(limit) => doc
                .manifests
                .keys()
                .filter(|d| !was_tagged.contains(*d))
                .filter(|d| {
                    now.duration_since(pushed_at(d))
                        .is_ok_and(|age| age > limit)
                })
                .cloned()
                .collect(),
            None => BTreeSet::new(),
        };
        if doomed.is_empty() && untagged_gone.is_empty() {
            continue;
        }
        let manifests_gone: BTreeSet<&Digest> = images_gone.iter().chain(&untagged_gone).collect();
        if !dry_run {
            registry
                .update_repo(name, |doc| {
                    let before = (doc.tags.len(), doc.manifests.len());
                    doc.tags
                        .retain(|tag, digest| doomed.get(tag).is_none_or(|d| d != digest));
                    // A tag pushed meanwhile onto one of these manifests keeps them all.
                    if !doc.tags.values().any(|d| manifests_gone.contains(d)) {
                        doc.manifests.retain(|d, _| !manifests_gone.contains(d));
                    }
                    Ok((doc.tags.len(), doc.manifests.len()) != before)
                })
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            tracing::info!(
                repository = %name,
                tags = ?doomed.keys(),
                manifests = manifests_gone.len(),
                "retention removed tags and manifests"
            );
        }
        removed
            .tags
            .extend(doomed.into_iter().map(|(tag, digest)| RemovedTag {
                repository: name.clone(),
                tag,
                digest: digest.to_string(),
            }));
        removed
            .untagged
            .extend(untagged_gone.into_iter().map(|digest| RemovedManifest {
                repository: name.clone(),
                digest: digest.to_string(),
            }));
    }
    Ok(removed)
}

/// The manifests of the repository reachable from `roots`: the roots, the children of
/// every index among them, and every manifest whose subject is one of them.
async fn images(
    registry: &Registry,
    doc: &RepoDoc,
    roots: impl Iterator<Item = Digest>,
) -> anyhow::Result<BTreeSet<Digest>> {
    let mut seen = BTreeSet::new();
    let mut pending: Vec<Digest> = roots.collect();
    while let Some(digest) = pending.pop() {
        if !doc.manifests.contains_key(&digest) || !seen.insert(digest.clone()) {
            continue;
        }
        let entry = &doc.manifests[&digest];
        if let Ok(bytes) = registry.manifest_bytes(&digest).await {
            if let Ok(inspected) = crate::oci::manifest::inspect(&bytes, Some(&entry.media_type)) {
                pending.extend(inspected.children);
            }
        }
        pending.extend(
            doc.manifests
                .iter()
                .filter(|(_, e)| e.subject.as_ref() == Some(&digest))
                .map(|(d, _)| d.clone()),
        );
    }
    Ok(seen)
}
