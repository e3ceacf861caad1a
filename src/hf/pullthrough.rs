//! Hugging Face pull-through: a revision missing here, or a branch not checked within
//! the TTL, is read from the upstream Hub (`remote::hf`) and recorded with the
//! upstream's commit id, blob oids and LFS sha256, so pinned revisions work unchanged.
//! Small (non-LFS) files are fetched then, verified against their git blob oid (their
//! sha256, the store's key, is not in the listing); LFS files on first download,
//! verified against their LFS sha256.
//!
//! A repository private or gated upstream is recorded private or gated here. Every
//! upstream file name is checked with the rules of an uploaded path; one that breaks
//! them (`../x`, an empty segment, a backslash) is left out with a warning.

use super::git::{blob_oid, lfs_pointer};
use super::model::{is_commit_id, is_valid_path, Commit, FileEntry, RepoRef};
use super::repo::{now_iso, Repos};
use super::HfError;
use crate::digest::Digest;
use crate::remote::hf::{Hub, Revision, Sibling};
use crate::remote::{body_of, revalidate, Filled, Filler, Lookup, Upstream, UpstreamError};
use crate::store::{BlobStore, ByteStream};
use futures::{StreamExt, TryStreamExt};
use http::{header, HeaderMap, StatusCode};
use std::sync::Arc;

/// Small files are read whole when a revision is recorded; nothing bigger is accepted
/// as a non-LFS file.
const MAX_SMALL_FILE: usize = 64 * 1024 * 1024;
/// Small files fetched at once when a revision is recorded.
const PARALLEL: usize = 8;

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

fn hub(up: &Upstream) -> Hub<'_> {
    Hub {
        client: &up.client,
        base: up.base.clone(),
        req: up.req(),
    }
}

/// Pull-through for the readers of the repositories outside the Hub routes (the S3
/// view): the Hub's own upstream and the fetches in flight it shares, so a file asked
/// for by both is fetched once.
#[derive(Clone, Debug)]
pub struct Pull {
    pub upstream: Arc<Upstream>,
    pub filler: Filler,
}

impl Pull {
    /// Makes sure an LFS file of a recorded commit is stored: fetched from the upstream
    /// and verified against its sha256 when it is not (shared with any fetch of it
    /// already under way), for readers that then read it from the store by range.
    pub async fn store_file(
        &self,
        blobs: &BlobStore,
        repo: &RepoRef,
        commit: &str,
        file: &FileEntry,
        digest: &Digest,
    ) -> Result<(), HfError> {
        if blobs.exists(digest).await? {
            return Ok(());
        }
        let up = &self.upstream;
        let url = hub(up).file_url(repo.kind.url_prefix(), &repo.id, commit, &file.path);
        self.filler
            .fill(digest, Some(file.size), false, up.clone().open(url))
            .await
            .map_err(failed)?;
        Ok(())
    }
}

/// Before a revision is read: brings it in from the upstream when missing or stale.
/// Repositories made here (not by pull-through) are left alone.
pub async fn refresh_revision(
    upstream: Option<&Upstream>,
    repos: &Repos,
    repo: &RepoRef,
    rev: &str,
) -> Result<(), HfError> {
    let Some(up) = upstream else {
        return Ok(());
    };
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
            Ok((commit, visibility)) => {
                repos
                    .record_upstream(repo, commit, rev, visibility)
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

/// The upstream's commit for `rev`, with every file described and the small ones
/// stored, and how the upstream has the repository: (private, gated).
async fn revision(
    up: &Upstream,
    repos: &Repos,
    repo: &RepoRef,
    rev: &str,
) -> Result<(Commit, (bool, bool)), UpstreamError> {
    let hub = hub(up);
    let info: Revision = hub.revision(repo.kind.plural(), &repo.id, rev).await?;
    let visibility = (info.private, info.gated);
    let bad = |why: String| UpstreamError::Unavailable(format!("{}: {why}", up.base));
    if let Some(known) = repos
        .commit(repo, &info.sha)
        .await
        .map_err(|e| bad(e.message))?
    {
        return Ok((known.commit.clone(), visibility));
    }
    let sha = info.sha.clone();
    let described = info
        .siblings
        .into_iter()
        .filter(|s| {
            let ok = is_valid_path(&s.rfilename);
            if !ok {
                tracing::warn!(upstream = %up.base, repo = %repo.id, path = ?s.rfilename,
                    "an upstream file name that is no valid repository path; left out");
            }
            ok
        })
        .map(|s| describe(&hub, repos, repo, &sha, s));
    let files: Vec<FileEntry> = futures::stream::iter(described)
        .buffer_unordered(PARALLEL)
        .try_collect()
        .await?;
    let commit = Commit {
        id: info.sha,
        parents: Vec::new(),
        title: format!("pulled through from {}", up.base),
        message: String::new(),
        author: String::new(),
        date: info.last_modified.unwrap_or_else(now_iso),
        files,
        config: None,
    };
    Ok((commit, visibility))
}

/// One sibling of the listing as a file entry (a small file is fetched and stored).
async fn describe(
    hub: &Hub<'_>,
    repos: &Repos,
    repo: &RepoRef,
    commit: &str,
    s: Sibling,
) -> Result<FileEntry, UpstreamError> {
    if let Some(lfs) = &s.lfs {
        let oid = s
            .blob_id
            .clone()
            .unwrap_or_else(|| blob_oid(lfs_pointer(&lfs.sha256, lfs.size).as_bytes()));
        return Ok(FileEntry {
            path: s.rfilename,
            size: lfs.size,
            sha256: lfs.sha256.clone(),
            oid,
            lfs: true,
            xet_hash: None,
        });
    }
    small_file(hub, repos, repo, commit, &s.rfilename, s.blob_id.as_deref()).await
}

/// A regular file read whole, checked against its git blob oid, stored.
async fn small_file(
    hub: &Hub<'_>,
    repos: &Repos,
    repo: &RepoRef,
    commit: &str,
    path: &str,
    oid: Option<&str>,
) -> Result<FileEntry, UpstreamError> {
    let url = hub.file_url(repo.kind.url_prefix(), &repo.id, commit, path);
    let bad = |why: String| UpstreamError::Unavailable(format!("{url}: {why}"));
    let response = hub.client.get(&url, &hub.req.clone().accept("*/*")).await?;
    let (body, _) = body_of(response);
    let bytes = crate::store::collect_limited(body, MAX_SMALL_FILE)
        .await
        .map_err(|e| bad(format!("a non-LFS file: {e}")))?;
    let actual = blob_oid(&bytes);
    if oid.is_some_and(|o| o != actual) {
        return Err(bad(format!(
            "content has blob oid {actual}, not {}",
            oid.unwrap_or_default()
        )));
    }
    repos
        .store_small_file(path, bytes)
        .await
        .map_err(|e| bad(e.message))
}

/// An LFS file whose bytes are not stored yet: fetched from the upstream, verified.
/// `Some` streams it to this caller; `None`: serve it from the store.
#[allow(clippy::too_many_arguments)]
pub async fn fill_file(
    upstream: Option<&Arc<Upstream>>,
    filler: &Filler,
    blobs: &BlobStore,
    repo: &RepoRef,
    commit: &str,
    file: &FileEntry,
    digest: &Digest,
    request: &HeaderMap,
    head: bool,
) -> Result<Option<(u64, ByteStream)>, HfError> {
    let Some(up) = upstream else {
        return Ok(None);
    };
    if blobs.exists(digest).await? {
        return Ok(None);
    }
    let whole = !head
        && !request.contains_key(header::RANGE)
        && !request.contains_key(header::IF_NONE_MATCH);
    let url = hub(up).file_url(repo.kind.url_prefix(), &repo.id, commit, &file.path);
    let filled = filler
        .fill(digest, Some(file.size), whole, up.clone().open(url))
        .await
        .map_err(failed)?;
    Ok(match filled {
        Filled::Stored => None,
        Filled::Streaming { size, body } => Some((size, body)),
    })
}
