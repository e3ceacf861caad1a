//! The legacy upload API (`POST /legacy/`, multipart/form-data) as twine speaks it.
//! The file is spooled to local disk while it is hashed — its metadata lives in the zip
//! central directory at the end, so it must be seekable — then verified and published.

use super::ingest::{inspect, publish};
use super::names::normalize;
use super::project::{Added, Index};
use super::PypiError;
use super::PypiState;
use crate::auth::{Action, Identity, Protocol};
use crate::digest::{Algorithm, Digest, Hasher};
use axum::extract::{FromRequest, Multipart, Request};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use tokio::io::AsyncWriteExt;

/// Metadata fields (descriptions included) are small; this bounds what is kept in memory.
const MAX_FORM_TEXT_BYTES: usize = 16 * 1024 * 1024;

/// `identity` may write to some project (the dispatch checked that before the body is
/// read; a refused body is drained by the server, `crate::drain`, before the answer);
/// the project the file's metadata names is checked here once it is known.
pub async fn handle(
    state: &PypiState,
    index: &Index,
    identity: Identity,
    request: Request,
) -> Result<Response, PypiError> {
    let mut multipart = Multipart::from_request(request, state).await.map_err(|e| {
        PypiError::bad_request(format!("expected a multipart/form-data upload: {e}"))
    })?;

    let mut fields: HashMap<String, String> = HashMap::new();
    let mut text_bytes = 0usize;
    let mut content: Option<(tempfile::NamedTempFile, String, Digest, u64)> = None;
    let max = state.settings.max_upload_bytes;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| PypiError::bad_request(format!("malformed upload form: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_string();
        if name == "content" {
            let filename = field
                .file_name()
                .map(str::to_string)
                .ok_or_else(|| PypiError::bad_request("the `content` field has no filename"))?;
            if !super::names::is_safe_filename(&filename) {
                return Err(PypiError::bad_request(format!(
                    "`{filename}` is not a plain distribution filename (no paths or special characters)"
                )));
            }
            let spool = tempfile::NamedTempFile::new().map_err(|e| {
                PypiError::from(crate::store::StoreError::Unavailable(format!(
                    "spool file: {e}"
                )))
            })?;
            let mut out = tokio::fs::File::from_std(spool.reopen().map_err(spool_error)?);
            let mut hasher = Hasher::new(Algorithm::Sha256);
            let mut size = 0u64;
            while let Some(chunk) = field
                .chunk()
                .await
                .map_err(|e| PypiError::bad_request(format!("upload interrupted: {e}")))?
            {
                size += chunk.len() as u64;
                if size > max {
                    return Err(PypiError::too_large(format!(
                        "file larger than the {max}-byte upload limit (pypi.max_upload_bytes)"
                    )));
                }
                hasher.update(&chunk);
                out.write_all(&chunk).await.map_err(spool_error)?;
            }
            out.flush().await.map_err(spool_error)?;
            content = Some((spool, filename, hasher.finish(), size));
        } else {
            // Read piece by piece against what is left of the budget: a field is never
            // held whole before its size is known.
            let mut value = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(|e| {
                PypiError::bad_request(format!("malformed form field `{name}`: {e}"))
            })? {
                text_bytes += chunk.len();
                if text_bytes > MAX_FORM_TEXT_BYTES {
                    return Err(PypiError::too_large("upload form fields too large"));
                }
                value.extend_from_slice(&chunk);
            }
            let value = String::from_utf8(value)
                .map_err(|_| PypiError::bad_request(format!("form field `{name}` is not UTF-8")))?;
            // Repeated fields (classifiers, requires_dist) are not needed: the file's own
            // metadata is the source of truth.
            fields.entry(name).or_insert(value);
        }
    }

    match fields.get(":action").map(String::as_str) {
        Some("file_upload") => {}
        other => {
            return Err(PypiError::bad_request(format!(
                "unsupported :action {other:?}; only file_upload is supported"
            )))
        }
    }
    let (spool, filename, sha256, size) =
        content.ok_or_else(|| PypiError::bad_request("the upload has no `content` file field"))?;
    if let Some(claimed) = fields.get("sha256_digest").filter(|d| !d.is_empty()) {
        if claimed.to_ascii_lowercase() != sha256.hex() {
            return Err(PypiError::bad_request(format!(
                "sha256_digest {claimed} does not match the uploaded file ({}): the upload was corrupted",
                sha256.hex()
            )));
        }
    }

    let path = spool.path().to_path_buf();
    let name_for_blocking = filename.clone();
    let inspected = tokio::task::spawn_blocking(move || inspect(&path, &name_for_blocking))
        .await
        .map_err(|e| PypiError::bad_request(e.to_string()))?
        .map_err(|e| PypiError::bad_request(format!("invalid distribution: {e}")))?;

    // The form must describe the file it carries.
    if let Some(form_name) = fields.get("name") {
        if normalize(form_name) != normalize(&inspected.metadata.name) {
            return Err(PypiError::bad_request(format!(
                "form name `{form_name}` does not match the file's metadata name `{}`",
                inspected.metadata.name
            )));
        }
    }
    let project = normalize(&inspected.metadata.name);
    state.auth.authorize(
        &identity,
        Protocol::Pypi,
        Action::Write,
        &format!("{}/{project}", index.name),
    )?;

    if let Some(limit) = state.settings.quotas.of(&index.name) {
        let already = index
            .project(&project)
            .await?
            .is_some_and(|p| p.files.iter().any(|f| f.sha256 == sha256.hex()));
        let adding = if already { 0 } else { size };
        limit
            .admit(index.usage().await?, adding)
            .map_err(|e| PypiError::forbidden(e.to_string()))?;
    }
    let added = publish(index, &state.blobs, spool.path(), &inspected, &sha256, size).await?;
    tracing::info!(
        index = %index.name,
        project = %project,
        file = %filename,
        sha256 = %sha256.hex(),
        size,
        by = identity.name(),
        new = added == Added::New,
        "pypi upload"
    );
    Ok("OK\n".into_response())
}

fn spool_error(e: std::io::Error) -> PypiError {
    PypiError::from(crate::store::StoreError::Unavailable(format!(
        "spool file: {e}"
    )))
}
