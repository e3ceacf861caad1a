//! Retention of Hub revisions (`[[gc.hub_retention]]`), in the repositories a rule names
//! (a glob over `<models|datasets|spaces>/<id>`), applied before the mark:
//!
//! - `keep_last`: only the tags of the most recent commits among those the rule governs
//!   stay; the others are deleted, as `delete_tag` would. "Most recent" is by the tagged
//!   commit's date (the Hub records no time for a tag); ties go to the greater name.
//! - `keep_commits`: each remaining branch, tag and PR ref keeps its commit and that
//!   commit's ancestors up to `keep_commits` in all; older commits are deleted, the way
//!   a shallow clone cuts history. They no longer resolve, and the files only they named
//!   are then unreferenced. A tag alone keeps every ancestor of its commit otherwise,
//!   so removing old tags frees nothing while newer history goes through them.
//!
//! A tag or commit several rules govern stays if any of them keeps it. A tag moved while
//! the run decides is left alone; a repository whose refs changed meanwhile keeps its
//! history until the next run. Commits whose OCI model images were handed out stay.

use crate::hf::model::{RefsDoc, RepoRef, RepoType};
use crate::hf::repo::Repos;
use crate::mirror::glob::fnmatch;
use crate::store::Stores;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// One `[[gc.hub_retention]]` rule.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubRule {
    /// Repositories, a glob over `<models|datasets|spaces>/<id>` (`models/team/*`).
    pub repos: String,
    /// The tags `keep_last` governs, a glob (default: every tag).
    #[serde(default = "every_tag")]
    pub tags: String,
    /// How many of those tags stay, most recent commit first (unset: not limited).
    pub keep_last: Option<usize>,
    /// How many commits of each ref's history stay, its own included (unset: all).
    pub keep_commits: Option<usize>,
}

impl HubRule {
    pub fn validate(&self) -> Result<(), String> {
        let repos = &self.repos;
        match (self.keep_last, self.keep_commits) {
            (None, None) => Err(format!(
                "`gc.hub_retention` for `{repos}` says nothing to do: give it `keep_last` and/or `keep_commits`"
            )),
            (Some(0), _) => Err(format!(
                "`gc.hub_retention` for `{repos}`: keep_last must be at least 1 (to remove tags, use `delete_tag`)"
            )),
            (_, Some(0)) => Err(format!(
                "`gc.hub_retention` for `{repos}`: keep_commits must be at least 1 (a ref needs its commit)"
            )),
            _ => Ok(()),
        }
    }
}

fn every_tag() -> String {
    "*".into()
}

/// A Hub tag a rule removed (or would remove, in a dry run).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedTag {
    /// `<models|datasets|spaces>/<id>`
    pub repo: String,
    pub tag: String,
    pub commit: String,
}

/// What Hub retention removed, or would remove in a dry run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    pub tags: Vec<RemovedTag>,
    /// Commits cut from history, per repository.
    pub commits: BTreeMap<String, u64>,
}

/// Applies `rules` to the Hub repositories `refs` names (`(plural kind, id)` pairs).
pub async fn apply(
    stores: &Stores,
    refs: &[(String, String)],
    rules: &[HubRule],
    dry_run: bool,
) -> anyhow::Result<Removed> {
    let mut removed = Removed::default();
    if rules.is_empty() {
        return Ok(removed);
    }
    let repos = Repos::new(stores.docs.clone(), stores.blobs.clone());
    for (kind, id) in refs {
        let path = format!("{kind}/{id}");
        let governing: Vec<&HubRule> = rules.iter().filter(|r| fnmatch(&r.repos, &path)).collect();
        let Some(repo) = RepoType::from_plural(kind).and_then(|t| RepoRef::new(t, id)) else {
            continue;
        };
        if governing.is_empty() {
            continue;
        }
        let mut current = repos.refs(&repo).await.map_err(hf_error)?;

        let dates = commit_dates(&repos, &repo, &current).await?;
        let doomed = tags_beyond_keep_last(&current, &dates, &governing);
        if !doomed.is_empty() {
            current = if dry_run {
                current
                    .tags
                    .retain(|tag, commit| doomed.get(tag).is_none_or(|c| c != commit));
                current
            } else {
                let refs = repos
                    .update_refs(&repo, |refs| {
                        refs.tags
                            .retain(|tag, commit| doomed.get(tag).is_none_or(|c| c != commit));
                        Ok(())
                    })
                    .await
                    .map_err(hf_error)?;
                tracing::info!(repo = %path, tags = ?doomed.keys(), "retention removed Hub tags");
                refs
            };
            removed
                .tags
                .extend(doomed.into_iter().map(|(tag, commit)| RemovedTag {
                    repo: path.clone(),
                    tag,
                    commit,
                }));
        }

        let Some(keep_commits) = governing.iter().filter_map(|r| r.keep_commits).max() else {
            continue;
        };
        let mut heads: Vec<String> = ref_heads(&current);
        heads.extend(super::mark::served_commits(stores, &repo).await?);
        let cut = beyond_depth(&repos, &repo, heads, keep_commits).await?;
        if cut.is_empty() {
            continue;
        }
        if !dry_run {
            // A ref created or moved meanwhile may need what was to go: next run.
            let now = repos.refs(&repo).await.map_err(hf_error)?;
            if ref_heads(&now) != ref_heads(&current) {
                tracing::info!(repo = %path, "refs changed during retention; history kept until the next run");
                continue;
            }
            repos.forget_commits(&repo, &cut).await.map_err(hf_error)?;
            tracing::info!(repo = %path, commits = cut.len(), "retention cut Hub history");
        }
        removed.commits.insert(path, cut.len() as u64);
    }
    Ok(removed)
}

/// Every commit a ref names, in a stable order.
fn ref_heads(refs: &RefsDoc) -> Vec<String> {
    refs.branches
        .values()
        .chain(refs.tags.values())
        .chain(refs.prs.values())
        .cloned()
        .collect()
}

/// Each tagged commit's date (`YYYY-MM-DDTHH:MM:SS.mmmZ` sorts as time); a commit the
/// store lacks sorts oldest.
async fn commit_dates(
    repos: &Repos,
    repo: &RepoRef,
    refs: &RefsDoc,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut dates = BTreeMap::new();
    for commit in refs.tags.values() {
        if dates.contains_key(commit) {
            continue;
        }
        let date = repos
            .commit(repo, commit)
            .await
            .map_err(hf_error)?
            .map(|view| view.commit.date.clone())
            .unwrap_or_default();
        dates.insert(commit.clone(), date);
    }
    Ok(dates)
}

/// The tags (with their commits) that rules with `keep_last` govern and none keeps.
fn tags_beyond_keep_last(
    refs: &RefsDoc,
    dates: &BTreeMap<String, String>,
    governing: &[&HubRule],
) -> BTreeMap<String, String> {
    let (mut governed, mut kept) = (BTreeSet::new(), BTreeSet::new());
    for rule in governing {
        let Some(keep_last) = rule.keep_last else {
            continue;
        };
        let mut tags: Vec<(&String, &String)> = refs
            .tags
            .iter()
            .filter(|(tag, _)| fnmatch(&rule.tags, tag))
            .collect();
        tags.sort_by(|a, b| dates[b.1].cmp(&dates[a.1]).then(b.0.cmp(a.0)));
        governed.extend(tags.iter().map(|(t, _)| (*t).clone()));
        kept.extend(tags.iter().take(keep_last).map(|(t, _)| (*t).clone()));
    }
    governed
        .difference(&kept)
        .map(|t| (t.clone(), refs.tags[t].clone()))
        .collect()
}

/// The commits reachable from `heads` only through more than `depth - 1` parent links
/// (a breadth-first walk from every head at once gives each commit its least depth).
async fn beyond_depth(
    repos: &Repos,
    repo: &RepoRef,
    heads: Vec<String>,
    depth: usize,
) -> anyhow::Result<Vec<String>> {
    let mut least: HashMap<String, usize> = HashMap::new();
    let mut queue: VecDeque<(String, usize)> = heads.into_iter().map(|h| (h, 0)).collect();
    while let Some((id, at)) = queue.pop_front() {
        if least.contains_key(&id) {
            continue;
        }
        let Some(view) = repos.commit(repo, &id).await.map_err(hf_error)? else {
            continue;
        };
        least.insert(id, at);
        queue.extend(view.commit.parents.iter().map(|p| (p.clone(), at + 1)));
    }
    let mut cut: Vec<String> = least
        .into_iter()
        .filter(|(_, at)| *at >= depth)
        .map(|(id, _)| id)
        .collect();
    cut.sort();
    Ok(cut)
}

fn hf_error(e: crate::hf::HfError) -> anyhow::Error {
    anyhow::anyhow!("{}", e.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(tags: &str, keep_last: usize) -> HubRule {
        HubRule {
            repos: "models/*".into(),
            tags: tags.into(),
            keep_last: Some(keep_last),
            keep_commits: None,
        }
    }

    #[test]
    fn keeps_the_most_recent_commits_tags_and_those_no_rule_governs() {
        let mut refs = RefsDoc::default();
        let mut dates = BTreeMap::new();
        for (tag, commit, date) in [
            ("v1", "c1", "2026-01-01T00:00:00.000Z"),
            ("v2", "c2", "2026-02-01T00:00:00.000Z"),
            ("v3", "c3", "2026-03-01T00:00:00.000Z"),
            ("v3-again", "c3", "2026-03-01T00:00:00.000Z"),
            ("stable", "c1", "2026-01-01T00:00:00.000Z"),
        ] {
            refs.tags.insert(tag.into(), commit.into());
            dates.insert(commit.to_string(), date.to_string());
        }
        let doomed = tags_beyond_keep_last(&refs, &dates, &[&rule("v*", 2)]);
        // v3 and v3-again tie on date; the greater name goes first.
        assert_eq!(
            doomed.keys().collect::<Vec<_>>(),
            ["v1", "v2"],
            "kept: v3-again, v3; stable is not governed"
        );
        // A second rule keeping v1 saves it.
        let doomed = tags_beyond_keep_last(&refs, &dates, &[&rule("v*", 2), &rule("v1", 1)]);
        assert_eq!(doomed.keys().collect::<Vec<_>>(), ["v2"]);
    }

    #[test]
    fn a_rule_must_say_what_to_keep() {
        let mut r = rule("*", 1);
        assert!(r.validate().is_ok());
        r.keep_last = None;
        assert!(r.validate().unwrap_err().contains("says nothing to do"));
        r.keep_commits = Some(0);
        assert!(r
            .validate()
            .unwrap_err()
            .contains("keep_commits must be at least 1"));
    }
}
