//! Hugging Face pull-through: a revision missing here, or a branch not checked within
//! the TTL, is read from the upstream Hub (`/api/<kind>s/<id>/revision/<rev>?blobs=true`)
//! and recorded with the upstream's commit id, blob oids and LFS sha256, so pinned
//! revisions work unchanged. Small (non-LFS) files are fetched then, verified against
//! their git blob oid (their sha256, the store's key, is not in the listing); LFS files
//! on first download, verified against their LFS sha256.

use super::fill::{streamed, Filled};
use super::{client::chain, revalidate, Lookup, Upstream, UpstreamError};
use crate::digest::Digest;
use crate::hf::git::{blob_oid, lfs_pointer};
use crate::hf::model::{is_commit_id, Commit, FileEntry, RepoRef};
use crate::hf::repo::{now_iso, Repos};
use crate::hf::HfError;
use crate::hf::HfState;
use axum::response::Response;
use futures::{StreamExt, TryStreamExt};
use http::{header, HeaderMap, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

/// Small files are read whole when a revision is recorded; nothing bigger is accepted
/// as a non-LFS file.
const MAX_SMALL_FILE: usize = 64 * 1024 * 1024;
/// Small files fetched at once when a revision is recorded.
const PARALLEL: usize = 8;
/// Path segments keep their `/`; everything else unusual is escaped.
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.');

fn failed(e: UpstreamError) -> HfError {
    match e {
        UpstreamError::NotFound(what) => HfError::new(
            StatusCode::NOT_FOUND,
            Some("EntryNotFound"),
            format!("not on the upstream: {what}"),
        ),
        e => HfError::new(StatusCode::BAD_GATEWAY, None, format!("{e}; retry later")),
    }
}

/// Before a revision is read: brings it in from the upstream when missing or stale.
/// Repositories made here (not by pull-through) are left alone.
pub async fn refresh_revision(state: &HfState, repo: &RepoRef, rev: &str) -> Result<(), HfError> {
    let Some(up) = &state.upstream else {
        return Ok(());
    };
    let repos = &state.repos;
    let local = repos.repo(repo).await?;
    if local.as_ref().is_some_and(|d| !d.mirrored) {
        return Ok(());
    }
    let have = local.is_some() && repos.resolve(repo, rev).await.is_ok();
    if have && is_commit_id(rev) {
        return Ok(());
    }
    let fetch = async {
        match revision(up, repos, repo, rev).await {
            Ok(commit) => {
                repos
                    .record_upstream(repo, commit, rev)
                    .await
                    .map_err(|e| UpstreamError::Unavailable(e.message))?;
                Ok(Lookup::Stored)
            }
            Err(UpstreamError::NotFound(_)) => Ok(Lookup::Absent),
            Err(e) => Err(e),
        }
    };
    let key = format!("hf/{}@{rev}", repo.key_dir());
    revalidate(up, key, have, fetch)
        .await
        .map(|_| ())
        .map_err(failed)
}

fn file_url(up: &Upstream, repo: &RepoRef, commit: &str, path: &str) -> String {
    up.url(&format!(
        "/{}{}/resolve/{commit}/{}",
        repo.kind.url_prefix(),
        repo.id,
        utf8_percent_encode(path, PATH)
    ))
}

/// The upstream's commit for `rev`, with every file described and the small ones stored.
async fn revision(
    up: &Upstream,
    repos: &Repos,
    repo: &RepoRef,
    rev: &str,
) -> Result<Commit, UpstreamError> {
    let url = up.url(&format!(
        "/api/{}/{}/revision/{}?blobs=true",
        repo.kind.plural(),
        repo.id,
        utf8_percent_encode(rev, NON_ALPHANUMERIC)
    ));
    let bad = |why: String| UpstreamError::Unavailable(format!("{url}: {why}"));
    let info: Value = up
        .get(&url, "application/json")
        .await?
        .json()
        .await
        .map_err(|e| bad(chain(&e)))?;
    let sha = info["sha"]
        .as_str()
        .filter(|s| is_commit_id(s))
        .ok_or_else(|| bad("no commit sha in the answer".into()))?
        .to_string();
    let date = info["lastModified"]
        .as_str()
        .map_or_else(now_iso, str::to_string);
    if let Some(known) = repos.commit(repo, &sha).await.map_err(|e| bad(e.message))? {
        return Ok(known.commit.clone());
    }
    let siblings = info["siblings"]
        .as_array()
        .ok_or_else(|| bad("no siblings in the answer".into()))?;
    let described = siblings
        .iter()
        .cloned()
        .map(|s| describe(up, repos, repo, &sha, s));
    let files: Vec<FileEntry> = futures::stream::iter(described)
        .buffer_unordered(PARALLEL)
        .try_collect()
        .await?;
    Ok(Commit {
        id: sha,
        parents: Vec::new(),
        title: format!("pulled through from {}", up.base),
        message: String::new(),
        author: String::new(),
        date,
        files,
        config: None,
    })
}

/// One sibling of the listing as a file entry (a small file is fetched and stored).
async fn describe(
    up: &Upstream,
    repos: &Repos,
    repo: &RepoRef,
    commit: &str,
    s: Value,
) -> Result<FileEntry, UpstreamError> {
    let path = s["rfilename"].as_str().ok_or_else(|| {
        UpstreamError::Unavailable(format!("{}: a sibling without rfilename", up.base))
    })?;
    let lfs = &s["lfs"];
    if let Some(sha256) = lfs["sha256"].as_str() {
        let size = lfs["size"].as_u64().or(s["size"].as_u64()).unwrap_or(0);
        let oid = s["blobId"].as_str().map_or_else(
            || blob_oid(lfs_pointer(sha256, size).as_bytes()),
            str::to_string,
        );
        return Ok(FileEntry {
            path: path.to_string(),
            size,
            sha256: sha256.to_ascii_lowercase(),
            oid,
            lfs: true,
        });
    }
    small_file(up, repos, repo, commit, path, s["blobId"].as_str()).await
}

/// A regular file read whole, checked against its git blob oid, stored.
async fn small_file(
    up: &Upstream,
    repos: &Repos,
    repo: &RepoRef,
    commit: &str,
    path: &str,
    oid: Option<&str>,
) -> Result<FileEntry, UpstreamError> {
    let url = file_url(up, repo, commit, path);
    let bad = |why: String| UpstreamError::Unavailable(format!("{url}: {why}"));
    let mut body = up.get(&url, "*/*").await?.bytes_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| bad(chain(&e)))?;
        if bytes.len() + chunk.len() > MAX_SMALL_FILE {
            return Err(bad(format!(
                "a non-LFS file larger than {MAX_SMALL_FILE} bytes"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    let actual = blob_oid(&bytes);
    if oid.is_some_and(|o| o != actual) {
        return Err(bad(format!(
            "content has blob oid {actual}, not {}",
            oid.unwrap_or_default()
        )));
    }
    repos
        .store_small_file(path, bytes.into())
        .await
        .map_err(|e| bad(e.message))
}

/// An LFS file whose bytes are not stored yet: fetched from the upstream, verified.
/// `Some` streams it to this caller; `None`: serve it from the store.
pub async fn fill_file(
    state: &HfState,
    repo: &RepoRef,
    commit: &str,
    file: &FileEntry,
    digest: &Digest,
    request: &HeaderMap,
    head: bool,
) -> Result<Option<Response>, HfError> {
    let Some(up) = &state.upstream else {
        return Ok(None);
    };
    if state.repos.blobs().exists(digest).await? {
        return Ok(None);
    }
    let whole = !head
        && !request.contains_key(header::RANGE)
        && !request.contains_key(header::IF_NONE_MATCH);
    let url = file_url(up, repo, commit, &file.path);
    let filled = state
        .filler
        .fill(digest, Some(file.size), whole, up.clone().open(url))
        .await
        .map_err(failed)?;
    Ok(match filled {
        Filled::Stored => None,
        Filled::Streaming { size, body } => Some(streamed(digest, size, body)),
    })
}
