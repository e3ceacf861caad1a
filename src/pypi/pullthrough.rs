//! PyPI pull-through for the default index: a project page missing or not checked
//! within the TTL is read from the upstream index (`remote::simple`: PEP 691 JSON
//! preferred, PEP 503 HTML understood) and merged into the project document; each
//! file's body and `.metadata` are fetched on first download and verified against the
//! sha256 the page gave. A file without a usable sha256, or whose name is not one of the
//! project's distributions, is left out: its bytes could not be verified.
//!
//! A project with files of its own (uploaded or imported here) is never merged with the
//! upstream unless the operator lists it in `[pypi] upstream_merge`, as devpi's
//! `mirror_whitelist` and Artifactory's exclude patterns let operators decide: otherwise
//! anyone who registers the same name upstream with a higher version wins the install
//! (dependency confusion). Such a project is not even looked up upstream, so its name
//! does not leave the zone. Pages list every file under Airlock's own URL, and say
//! nothing of PEP 708 (`tracks`, `alternate-locations`): no client is told that two
//! sources are one project.

use super::names::parse_filename;
use super::project::FileEntry;
use super::{Index, PypiError, DEFAULT_INDEX};
use crate::digest::Digest;
use crate::remote::simple::{self, DistFile};
use crate::remote::{revalidate, Filled, Filler, Lookup, Upstream, UpstreamError};
use crate::store::{BlobStore, ByteStream};
use http::{header, HeaderMap};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

/// The PyPI upstream and the projects an operator lets it merge into local ones.
#[derive(Debug)]
pub struct PypiUpstream {
    pub up: Arc<Upstream>,
    /// Normalized names.
    merge: HashSet<String>,
}

impl PypiUpstream {
    pub fn new(up: Upstream, merge: &[String]) -> PypiUpstream {
        PypiUpstream {
            up: Arc::new(up),
            merge: merge.iter().map(|n| super::normalize(n)).collect(),
        }
    }
}

fn failed(e: UpstreamError) -> PypiError {
    match e {
        UpstreamError::NotFound(what) => {
            PypiError::not_found(format!("not on the upstream index: {what}"))
        }
        e => PypiError::bad_gateway(format!("{e}; retry later")),
    }
}

/// Before a project page is served: brings it in from the upstream when missing or stale.
pub async fn refresh_project(
    upstream: Option<&PypiUpstream>,
    index: &Index,
    normalized: &str,
) -> Result<(), PypiError> {
    let Some(pypi) = upstream else {
        return Ok(());
    };
    if index.name != DEFAULT_INDEX {
        return Ok(());
    }
    let up = &pypi.up;
    let with_local = pypi.merge.contains(normalized);
    let doc = index.project(normalized).await?;
    let local = doc
        .as_ref()
        .filter(|d| d.files.iter().any(|f| f.upstream_url.is_none()));
    if let (Some(doc), false) = (local, with_local) {
        if doc.files.iter().any(|f| f.upstream_url.is_some()) {
            index.merge_upstream(&doc.name, &[], false).await?;
        }
        return Ok(());
    }
    let have = doc.is_some();
    let fetch = async {
        let url = up.url(&format!("/{normalized}/"));
        match simple::fetch(&up.client, &url, up.req()).await {
            Ok(page) => {
                let name = page.name.unwrap_or_else(|| normalized.to_string());
                let files = entries(page.files, normalized);
                index
                    .merge_upstream(&name, &files, with_local)
                    .await
                    .map_err(|e| UpstreamError::Unavailable(e.message))?;
                Ok(Lookup::Stored)
            }
            Err(e) => match UpstreamError::from(e) {
                UpstreamError::NotFound(_) => Ok(Lookup::Absent),
                e => Err(e),
            },
        }
    };
    revalidate(up, format!("pypi/{normalized}"), have, fetch)
        .await
        .map(|_| ())
        .map_err(failed)
}

fn is_sha256(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The listed files of `project` that can be verified, as file entries.
fn entries(files: Vec<DistFile>, project: &str) -> Vec<FileEntry> {
    files
        .into_iter()
        .filter_map(|f| entry(f, project))
        .collect()
}

fn entry(f: DistFile, project: &str) -> Option<FileEntry> {
    let dist = parse_filename(&f.filename, project)?;
    let sha256 = f.sha256.filter(|h| is_sha256(h))?;
    Some(FileEntry {
        version: dist.version,
        kind: dist.kind,
        sha256,
        size: f.size,
        requires_python: f.requires_python.filter(|r| !r.is_empty()),
        metadata_sha256: f.metadata.flatten().filter(|h| is_sha256(h)),
        yanked: f.yanked,
        upload_time: f
            .upload_time
            .unwrap_or_else(|| humantime::format_rfc3339_micros(SystemTime::now()).to_string()),
        upstream_url: Some(f.url),
        filename: f.filename,
    })
}

/// A listed file (or its `.metadata`) whose bytes are not stored yet: fetched from the
/// upstream, verified. `Some` streams it to this caller; `None`: serve it from the store.
#[allow(clippy::too_many_arguments)]
pub async fn fill_file(
    upstream: Option<&PypiUpstream>,
    filler: &Filler,
    blobs: &BlobStore,
    entry: &FileEntry,
    metadata: bool,
    digest: &Digest,
    request: &HeaderMap,
    head: bool,
) -> Result<Option<(u64, ByteStream)>, PypiError> {
    let (Some(PypiUpstream { up, .. }), Some(url)) = (upstream, &entry.upstream_url) else {
        return Ok(None);
    };
    if blobs.exists(digest).await? {
        return Ok(None);
    }
    let url = match metadata {
        true => format!("{url}.metadata"),
        false => url.clone(),
    };
    let size = (!metadata && entry.size > 0).then_some(entry.size);
    let whole = !head
        && !request.contains_key(header::RANGE)
        && !request.contains_key(header::IF_NONE_MATCH);
    let filled = filler
        .fill(digest, size, whole, up.clone().open(url))
        .await
        .map_err(failed)?;
    Ok(match filled {
        Filled::Stored => None,
        Filled::Streaming { size, body } => Some((size, body)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_verifiable_files_of_the_project_are_taken() {
        let page = url::Url::parse("http://up:8080/simple/demo-pkg/").unwrap();
        let h = "ab".repeat(32);
        let m = "cd".repeat(32);
        let html = format!(
            r#"<a href="../../pypi/default/files/demo-pkg/{h}/demo_pkg-1.0-py3-none-any.whl#sha256={h}" data-core-metadata="sha256={m}">demo_pkg-1.0-py3-none-any.whl</a>
            <A HREF='https://files.example/demo_pkg-1.1.tar.gz'>demo_pkg-1.1.tar.gz</A>
            <a href="demo_pkg-1.2.tar.gz#sha256=abc">demo_pkg-1.2.tar.gz</a>
            <a href="other-1.0.tar.gz#sha256={h}">other-1.0.tar.gz</a>"#
        );
        let files = simple::parse("text/html", html.as_bytes(), &page)
            .unwrap()
            .files;
        let taken = entries(files, "demo-pkg");
        assert_eq!(
            taken.len(),
            1,
            "unhashed, badly hashed and foreign files are left out"
        );
        let f = &taken[0];
        assert_eq!(
            f.upstream_url.as_deref(),
            Some(
                format!(
                    "http://up:8080/pypi/default/files/demo-pkg/{h}/demo_pkg-1.0-py3-none-any.whl"
                )
                .as_str()
            )
        );
        assert_eq!(f.metadata_sha256.as_deref(), Some(m.as_str()));
        assert_eq!(f.version, "1.0");
    }
}
