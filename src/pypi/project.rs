//! The index's data model and every change to it. A project is one small JSON
//! document listing its files; bodies and `.metadata` files are blobs by sha256.
//!
//! ```text
//! pypi/<index>/projects/<normalized>.json ProjectDoc: every file with its hashes and flags
//! ```
//! A project document is read-modify-written with conditional puts
//! (`DocStore::update_json_with`), so two uploads racing on one project both land. The
//! index's project list is the listing of those documents, a page at a time: adding a
//! project writes nothing else. (`pypi/<index>/projects.json`, one list of every project
//! that earlier versions kept, is no longer read or written.)

use super::names::{normalize, DistKind};
use super::PypiError;
use crate::store::layout::{pypi_projects_prefix, MetaKey};
use crate::store::{DocStore, Document, Mutability, NameList, ObjectKey, StoreError};
use std::sync::Arc;

/// Projects per listing page (a store may return fewer: S3 lists at most 1,000).
pub const PROJECTS_PAGE: usize = 5000;

/// One page of an index's project list.
#[derive(Debug, Default)]
pub struct ProjectsPage {
    /// Normalized names, in key order.
    pub names: Vec<String>,
    /// Where the next page starts; `None` on the last.
    pub next: Option<String>,
}
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProjectDoc {
    /// The name as first uploaded (pages show it; URLs use the normalized form).
    pub name: String,
    pub files: Vec<FileEntry>,
}

impl ProjectDoc {
    fn named(display_name: &str) -> ProjectDoc {
        ProjectDoc {
            name: display_name.to_string(),
            files: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    pub filename: String,
    pub version: String,
    pub kind: DistKind,
    pub sha256: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_python: Option<String>,
    /// sha256 of the core metadata served at `<file>.metadata` (PEP 658), when announced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_sha256: Option<String>,
    /// Yanked (PEP 592), with the reason (possibly empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yanked: Option<String>,
    /// RFC 3339 UTC with microseconds, as PEP 700 writes it.
    pub upload_time: String,
    /// Pull-through: where the upstream serves the file (`.metadata` appended for its
    /// core metadata), fetched on the first download. Unset for uploaded files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_url: Option<String>,
}

/// An entry of the `projects.json` that earlier versions kept (bundles may carry one).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProjectListEntry {
    pub name: String,
    pub normalized: String,
}

/// What adding a file did.
#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    New,
    /// The same filename with the same content was already there.
    AlreadyPresent,
}

/// One index (the default one or a named one) over the shared metadata store.
#[derive(Clone, Debug)]
pub struct Index {
    pub name: String,
    docs: DocStore,
}

impl Index {
    pub fn new(name: &str, docs: DocStore) -> Index {
        Index {
            name: name.to_string(),
            docs,
        }
    }

    fn project_key(&self, normalized: &str) -> Result<ObjectKey, PypiError> {
        MetaKey::PypiProject {
            index: self.name.clone(),
            project: normalized.to_string(),
        }
        .key()
        .map_err(|_| PypiError::not_found(format!("no project named `{normalized}`")))
    }

    /// One page of the index's projects (normalized names, in key order) after the
    /// opaque `cursor` of the page before; the next page's cursor, if any.
    pub async fn projects_page(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<ProjectsPage, PypiError> {
        let prefix = pypi_projects_prefix(&self.name);
        let page = self.docs.list_keys(&prefix, cursor, limit).await?;
        let names = page
            .keys
            .iter()
            .filter_map(|key| match MetaKey::parse(key.as_str()) {
                Some(MetaKey::PypiProject { index, project }) if index == self.name => {
                    Some(project)
                }
                _ => None,
            })
            .collect();
        Ok(ProjectsPage {
            names,
            next: page.next_start_after,
        })
    }

    /// Every project of the index (normalized names, in key order), listed a page at a
    /// time and kept (`DocStore::kept_list`): the root page and the catalog read it, not
    /// the store. A project this process creates is listed at once.
    pub async fn names(&self) -> Result<Arc<NameList>, PypiError> {
        let index = self.clone();
        self.docs
            .kept_list(&self.list_id(), move || async move {
                let mut all = NameList::new();
                let mut cursor: Option<String> = None;
                loop {
                    let page = index
                        .projects_page(cursor.as_deref(), PROJECTS_PAGE)
                        .await?;
                    for name in &page.names {
                        all.push(name);
                    }
                    match page.next {
                        Some(next) => cursor = Some(next),
                        None => return Ok(all),
                    }
                }
            })
            .await
            .map_err(|e: Arc<PypiError>| (*e).clone())
    }

    fn list_id(&self) -> String {
        format!("pypi/{}/projects", self.name)
    }

    /// After a write that may have created a project's document.
    async fn listed(&self, created: bool) {
        if created {
            self.docs.forget_list(&self.list_id()).await;
        }
    }

    pub async fn project(&self, normalized: &str) -> Result<Option<ProjectDoc>, PypiError> {
        self.raw_project(normalized)
            .await?
            .map(|d| parse(&d.bytes))
            .transpose()
    }

    /// The stored project document, unparsed, with its version (pages are cached by it).
    pub async fn raw_project(&self, normalized: &str) -> Result<Option<Document>, PypiError> {
        let key = self.project_key(normalized)?;
        Ok(self.docs.get(&key, Mutability::Mutable).await?)
    }

    /// The bytes of the files uploaded or imported here (not those pull-through lists),
    /// each body once: what `[pypi] quotas` limits.
    pub async fn usage(&self) -> Result<u64, PypiError> {
        let mut bodies = std::collections::HashMap::new();
        for normalized in self.names().await?.iter() {
            let Some(project) = self.project(normalized).await? else {
                continue;
            };
            for file in project.files.iter().filter(|f| f.upstream_url.is_none()) {
                bodies.insert(file.sha256.clone(), file.size);
            }
        }
        Ok(bodies.values().sum())
    }

    /// Records a file whose body (and metadata) are already stored. A different file
    /// under an existing filename is refused: published URLs never change content.
    pub async fn add_file(&self, display_name: &str, entry: FileEntry) -> Result<Added, PypiError> {
        let normalized = normalize(display_name);
        let key = self.project_key(&normalized)?;
        let mut outcome = Added::New;
        let mut created = false;
        self.docs
            .update_json_with(&key, decode, |doc| {
                created = doc.is_none();
                let doc = doc.get_or_insert_with(|| ProjectDoc::named(display_name));
                if let Some(existing) = doc.files.iter().find(|f| f.filename == entry.filename) {
                    if existing.sha256 == entry.sha256 {
                        outcome = Added::AlreadyPresent;
                        return Ok(false);
                    }
                    return Err(conflict(&entry.filename, &existing.sha256));
                }
                outcome = Added::New;
                doc.files.push(entry.clone());
                Ok(true)
            })
            .await?;
        self.listed(created).await;
        Ok(outcome)
    }

    /// Takes in a project page read from the upstream: files not yet listed are added
    /// (their bodies fetched on first download), yanks follow the upstream. A filename
    /// already listed with other content keeps it: published URLs never change content.
    ///
    /// Unless `with_local`, a project that has a file of its own (uploaded or imported
    /// here) takes nothing from the upstream, and upstream files listed before its first
    /// own file are dropped: its names are the local owner's (dependency confusion).
    pub async fn merge_upstream(
        &self,
        display_name: &str,
        files: &[FileEntry],
        with_local: bool,
    ) -> Result<(), PypiError> {
        let normalized = normalize(display_name);
        let key = self.project_key(&normalized)?;
        let mut created = false;
        self.docs
            .update_json_with(&key, decode, |doc| {
                let mut changed = doc.is_none();
                created = changed;
                let doc = doc.get_or_insert_with(|| ProjectDoc::named(display_name));
                if !with_local && doc.files.iter().any(|f| f.upstream_url.is_none()) {
                    let before = doc.files.len();
                    doc.files.retain(|f| f.upstream_url.is_none());
                    return Ok(doc.files.len() != before);
                }
                for f in files {
                    match doc.files.iter_mut().find(|e| e.filename == f.filename) {
                        Some(e) if e.sha256 == f.sha256 && e.yanked != f.yanked => {
                            e.yanked = f.yanked.clone();
                            changed = true;
                        }
                        Some(_) => {}
                        None => {
                            doc.files.push(f.clone());
                            changed = true;
                        }
                    }
                }
                Ok::<_, PypiError>(changed)
            })
            .await?;
        self.listed(created).await;
        Ok(())
    }

    /// Yanks (`Some(reason)`) or un-yanks (`None`) every file of one version; returns how
    /// many files changed.
    pub async fn set_yanked(
        &self,
        project: &str,
        version: &str,
        reason: Option<String>,
    ) -> Result<usize, PypiError> {
        let normalized = normalize(project);
        let key = self.project_key(&normalized)?;
        let mut changed = 0;
        let mut found = false;
        self.docs
            .update_json_with(&key, decode, |doc: &mut Option<ProjectDoc>| {
                let Some(doc) = doc else {
                    return Err(PypiError::not_found(format!(
                        "no project `{project}` in index `{}`",
                        self.name
                    )));
                };
                changed = 0;
                found = false;
                for f in doc.files.iter_mut().filter(|f| f.version == version) {
                    found = true;
                    if f.yanked != reason {
                        f.yanked = reason.clone();
                        changed += 1;
                    }
                }
                if !found {
                    let known: Vec<_> = doc.files.iter().map(|f| f.version.as_str()).collect();
                    return Err(PypiError::not_found(format!(
                        "`{project}` has no version {version} (known: {})",
                        known.join(", ")
                    )));
                }
                Ok(changed > 0)
            })
            .await?;
        Ok(changed)
    }

    /// Removes the files of a version (or the one file named) from the project's page:
    /// what an admin does where a yank is not enough (a broken or unlawful upload). The
    /// bytes stay until garbage collection finds nothing else referencing them.
    pub async fn remove_files(
        &self,
        project: &str,
        version: &str,
        filename: Option<&str>,
    ) -> Result<Vec<String>, PypiError> {
        let normalized = normalize(project);
        let key = self.project_key(&normalized)?;
        let mut removed = Vec::new();
        self.docs
            .update_json_with(&key, decode, |doc: &mut Option<ProjectDoc>| {
                let Some(doc) = doc else {
                    return Err(PypiError::not_found(format!(
                        "no project `{project}` in index `{}`",
                        self.name
                    )));
                };
                let doomed = |f: &FileEntry| {
                    f.version == version && filename.is_none_or(|name| f.filename == name)
                };
                removed = doc
                    .files
                    .iter()
                    .filter(|f| doomed(f))
                    .map(|f| f.filename.clone())
                    .collect();
                if removed.is_empty() {
                    let known: Vec<_> = doc
                        .files
                        .iter()
                        .filter(|f| f.version == version)
                        .map(|f| f.filename.as_str())
                        .collect();
                    return Err(PypiError::not_found(format!(
                        "`{project}` has no {} (files of that version: {})",
                        match filename {
                            Some(name) => format!("file {name} in version {version}"),
                            None => format!("version {version}"),
                        },
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    )));
                }
                doc.files.retain(|f| !doomed(f));
                Ok(true)
            })
            .await?;
        Ok(removed)
    }
}

/// twine's `--skip-existing` looks for this wording (and the 409).
pub fn conflict(filename: &str, existing_sha256: &str) -> PypiError {
    PypiError::conflict(format!(
        "File already exists: {filename} was already uploaded with different content (sha256 {existing_sha256}); \
         published files never change, upload a new version instead"
    ))
}

fn decode<T: serde::de::DeserializeOwned>(doc: &Document) -> Result<T, PypiError> {
    parse(&doc.bytes)
}

pub fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, PypiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        PypiError::from(StoreError::Unavailable(format!(
            "corrupt index document: {e}"
        )))
    })
}
