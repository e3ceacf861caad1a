//! Retention of Python releases (`[[gc.python_retention]]`): in the projects a rule
//! names (a glob over `<index>/<project>`), only the `keep_last` most recently uploaded
//! versions stay; the files of the others leave the index before the mark, as `airlock
//! pypi remove` takes them, and what only they referenced is then unreferenced. Only
//! files uploaded or imported here count: what pull-through lists is the upstream's. A
//! version several rules govern stays if any of them keeps it; ties go to the greater
//! version string.

use super::mark::for_each_object;
use crate::mirror::glob::fnmatch;
use crate::pypi::project::Index;
use crate::store::layout::{MetaKey, PYPI_PREFIX};
use crate::store::Stores;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One `[[gc.python_retention]]` rule.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionRule {
    /// Projects, a glob over `<index>/<normalized name>` (`default/*`, `team/ml-*`).
    pub projects: String,
    /// How many versions stay, most recently uploaded first (at least 1).
    pub keep_last: usize,
}

impl VersionRule {
    pub fn validate(&self) -> Result<(), String> {
        if self.keep_last == 0 {
            return Err(format!(
                "`gc.python_retention` for `{}`: keep_last must be at least 1 (to remove a project's releases, use `airlock pypi remove`)",
                self.projects
            ));
        }
        Ok(())
    }
}

/// A release a rule removed (or would remove, in a dry run).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedVersion {
    pub index: String,
    pub project: String,
    pub version: String,
}

/// Applies `rules` to every project of every index.
pub async fn apply(
    stores: &Stores,
    rules: &[VersionRule],
    dry_run: bool,
) -> anyhow::Result<Vec<RemovedVersion>> {
    let mut removed = Vec::new();
    if rules.is_empty() {
        return Ok(removed);
    }
    let mut projects = Vec::new();
    for_each_object(stores, PYPI_PREFIX, |meta| {
        if let Some(MetaKey::PypiProject { index, project }) = MetaKey::parse(meta.key.as_str()) {
            projects.push((index, project));
        }
    })
    .await?;
    for (index_name, project) in projects {
        let path = format!("{index_name}/{project}");
        let Some(keep_last) = rules
            .iter()
            .filter(|r| fnmatch(&r.projects, &path))
            .map(|r| r.keep_last)
            .max()
        else {
            continue;
        };
        let index = Index::new(&index_name, stores.docs.clone());
        let Some(doc) = index.project(&project).await.map_err(pypi_error)? else {
            continue;
        };
        // Each version's latest upload (RFC 3339 in UTC sorts as time).
        let mut uploaded: BTreeMap<&str, &str> = BTreeMap::new();
        for file in doc.files.iter().filter(|f| f.upstream_url.is_none()) {
            let at = uploaded.entry(&file.version).or_default();
            *at = (*at).max(file.upload_time.as_str());
        }
        let mut versions: Vec<(&str, &str)> = uploaded.into_iter().collect();
        versions.sort_by(|a, b| b.1.cmp(a.1).then(b.0.cmp(a.0)));
        for (version, _) in versions.into_iter().skip(keep_last) {
            if !dry_run {
                index
                    .remove_files(&project, version, None)
                    .await
                    .map_err(pypi_error)?;
                tracing::info!(index = %index_name, %project, %version, "release removed by retention");
            }
            removed.push(RemovedVersion {
                index: index_name.clone(),
                project: project.clone(),
                version: version.to_string(),
            });
        }
    }
    Ok(removed)
}

fn pypi_error(e: crate::pypi::PypiError) -> anyhow::Error {
    anyhow::anyhow!("{}", e.message)
}
