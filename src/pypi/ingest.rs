//! Taking a distribution file in — from a twine upload or a wheelhouse import alike:
//! read its real metadata, check it against the filename, store body and `.metadata`
//! as blobs, then record it in the project document.

use super::metadata::{extract, CoreMetadata};
use super::names::{parse_filename, DistFilename, DistKind};
use super::project::{Added, FileEntry, Index};
use super::PypiError;
use crate::digest::Digest;
use crate::store::{bytes_stream, BlobStore};
use std::path::Path;
use std::time::SystemTime;

/// A distribution file, read and checked, not yet stored.
#[derive(Debug)]
pub struct Inspected {
    pub filename: String,
    pub dist: DistFilename,
    pub metadata: CoreMetadata,
    pub metadata_bytes: Vec<u8>,
}

/// Reads the metadata out of a local file (blocking: run it off the async threads).
pub fn inspect(path: &Path, filename: &str) -> Result<Inspected, String> {
    let kind = if filename.ends_with(".whl") {
        DistKind::Wheel
    } else if [".tar.gz", ".zip", ".tgz"]
        .iter()
        .any(|s| filename.ends_with(s))
    {
        DistKind::Sdist
    } else {
        return Err(format!(
            "`{filename}` is neither a wheel (.whl) nor an sdist (.tar.gz, .zip)"
        ));
    };
    let metadata_bytes = extract(path, kind, filename)?;
    let text = String::from_utf8_lossy(&metadata_bytes);
    let metadata = CoreMetadata::parse(&text)?;
    let dist = parse_filename(filename, &metadata.name).ok_or_else(|| {
        format!(
            "`{filename}` is not a valid {} filename for project `{}` (from its metadata)",
            if kind == DistKind::Wheel {
                "wheel"
            } else {
                "sdist"
            },
            metadata.name
        )
    })?;
    if loose_version(&dist.version) != loose_version(&metadata.version) {
        return Err(format!(
            "`{filename}` says version {} but its metadata says {}",
            dist.version, metadata.version
        ));
    }
    Ok(Inspected {
        filename: filename.to_string(),
        dist,
        metadata,
        metadata_bytes,
    })
}

/// Filenames escape `-` as `_` and may differ in case from the metadata's spelling.
fn loose_version(v: &str) -> String {
    v.trim().to_ascii_lowercase().replace(['_', '-'], ".")
}

/// What an upstream index says about a mirrored file, kept instead of what an upload
/// would get (its time, yank state and Requires-Python as published there).
#[derive(Debug, Clone, Default)]
pub struct Upstream {
    pub upload_time: Option<String>,
    pub yanked: Option<String>,
    pub requires_python: Option<String>,
    /// The upstream's own `.metadata` file, already stored as a blob (sha256 hex).
    pub metadata_sha256: Option<String>,
}

/// Stores the file's body and metadata, then lists it in the index.
pub async fn publish(
    index: &Index,
    blobs: &BlobStore,
    path: &Path,
    inspected: &Inspected,
    sha256: &Digest,
    size: u64,
) -> Result<Added, PypiError> {
    publish_with(index, blobs, path, inspected, sha256, size, None).await
}

/// [`publish`], keeping what `upstream` says where it says it (`airlock mirror`).
pub async fn publish_with(
    index: &Index,
    blobs: &BlobStore,
    path: &Path,
    inspected: &Inspected,
    sha256: &Digest,
    size: u64,
    upstream: Option<Upstream>,
) -> Result<Added, PypiError> {
    let upstream = upstream.unwrap_or_default();
    // Refuse a conflicting filename before spending a store write on it
    // (add_file checks again, atomically).
    let normalized = super::names::normalize(&inspected.metadata.name);
    if let Some(doc) = index.project(&normalized).await? {
        if let Some(existing) = doc.files.iter().find(|f| f.filename == inspected.filename) {
            if existing.sha256 == sha256.hex() {
                return Ok(Added::AlreadyPresent);
            }
            return Err(super::project::conflict(
                &inspected.filename,
                &existing.sha256,
            ));
        }
    }
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| PypiError::bad_request(format!("cannot read {}: {e}", path.display())))?;
    let body = Box::pin(tokio_util::io::ReaderStream::with_capacity(
        file,
        256 * 1024,
    ));
    blobs.put(sha256, body, Some(size)).await?;

    // PEP 658 metadata is announced for wheels, whose METADATA is authoritative; an
    // sdist's PKG-INFO may leave dependencies to be computed at build time.
    let metadata_sha256 = if upstream.metadata_sha256.is_some() {
        upstream.metadata_sha256.clone()
    } else if inspected.dist.kind == DistKind::Wheel {
        let digest = Digest::of_bytes(crate::digest::Algorithm::Sha256, &inspected.metadata_bytes);
        let len = inspected.metadata_bytes.len() as u64;
        blobs
            .put(
                &digest,
                bytes_stream(inspected.metadata_bytes.clone()),
                Some(len),
            )
            .await?;
        Some(digest.hex().to_string())
    } else {
        None
    };

    let entry = FileEntry {
        filename: inspected.filename.clone(),
        version: inspected.dist.version.clone(),
        kind: inspected.dist.kind,
        sha256: sha256.hex().to_string(),
        size,
        requires_python: upstream
            .requires_python
            .or_else(|| inspected.metadata.requires_python.clone()),
        metadata_sha256,
        yanked: upstream.yanked,
        upload_time: upstream
            .upload_time
            .unwrap_or_else(|| humantime::format_rfc3339_micros(SystemTime::now()).to_string()),
        upstream_url: None,
    };
    // Claimed until the index names them: a collection running now may have found the
    // body already stored and named by nothing (a removed release uploaded again).
    let mut named = vec![sha256.clone()];
    if upstream.metadata_sha256.is_none() {
        if let Some(Ok(metadata)) = entry.metadata_sha256.as_deref().map(Digest::sha256_hex) {
            named.push(metadata);
        }
    }
    let (claim, gone) = blobs.claim(&named).await?;
    let added = match gone.first() {
        Some(d) => Err(PypiError::bad_request(format!(
            "{}: garbage collection removed its stored content ({d}) while it was being published; upload it again",
            inspected.filename
        ))),
        None => index.add_file(&inspected.metadata.name, entry).await,
    };
    claim.release().await;
    added
}
