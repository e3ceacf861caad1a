//! Hugging Face repos from the Hub API (huggingface.co or another Airlock).
//!
//! The revision is resolved to its commit id (`/api/<kind>/<repo>/revision/<rev>`), the
//! file list comes from `/tree/<commit>?recursive=true` with each file's git oid and, for
//! LFS files, the sha256 and size; files go through `/resolve/<commit>/<path>`. The
//! commit is stored under the upstream's id with the upstream's oids, so clients that pin
//! commits or compare etags see what they would see upstream. With allow/ignore patterns
//! the stored commit lists only the chosen files (as a `snapshot_download` with the same
//! patterns would have them).
//!
//! Skipping: an LFS file is skipped when its sha256 blob is stored. A small (non-LFS) file
//! is known only by its git oid upstream, so it is skipped when a stored commit of the
//! same repo lists that oid; after an interrupted first run those small files are fetched
//! again (the large LFS ones are not).

use super::glob::keep;
use super::report::Status;
use super::Mirror;
use crate::digest::Digest;
use crate::hf::model::{is_commit_id, Commit, FileEntry, RepoRef, RepoType};
use crate::remote::hf::{Hub, TreeEntry};
use crate::remote::{error_chain, FetchError, Req};
use crate::spec::{HfItem, HfRepoType};
use futures::StreamExt;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::collections::HashMap;

/// A revision in a URL: `/` escaped too (`refs%2Fpr%2F1`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

struct Ctx<'a> {
    m: &'a Mirror,
    hub: Hub<'a>,
    repo: RepoRef,
}

impl Ctx<'_> {
    fn api(&self, rest: &str) -> String {
        self.hub.api(self.repo.kind.plural(), &self.repo.id, rest)
    }

    async fn json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        self.hub
            .json(url)
            .await
            .map(|(_, v)| v)
            .map_err(|e| e.to_string())
    }
}

pub async fn mirror_item(m: &Mirror, item: &HfItem) {
    let kind = match item.repo_type {
        HfRepoType::Model => RepoType::Model,
        HfRepoType::Dataset => RepoType::Dataset,
    };
    let Some(repo) = RepoRef::new(kind, &item.repo) else {
        m.report.record(
            format!("hf {}", item.repo),
            Status::Failed("not a valid repo id (org/name)".into()),
        );
        return;
    };
    let token = std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty());
    let base = m.spec.upstreams.hf.trim_end_matches('/').to_string();
    let ctx = Ctx {
        m,
        hub: Hub {
            client: &m.client,
            req: Req::default().bearer(token.as_deref(), &base),
            base,
        },
        repo,
    };
    for rev in &item.revisions {
        let what = format!("hf {}{}@{rev}", kind.url_prefix(), item.repo);
        if let Err(reason) = mirror_revision(&ctx, item, rev).await {
            m.report.record(what, Status::Failed(reason));
        }
    }
}

async fn mirror_revision(ctx: &Ctx<'_>, item: &HfItem, rev: &str) -> Result<(), String> {
    let m = ctx.m;
    let encoded_rev = utf8_percent_encode(rev, SEGMENT).to_string();
    let info: serde_json::Value = ctx
        .json(&ctx.api(&format!("/revision/{encoded_rev}")))
        .await?;
    let sha = info["sha"]
        .as_str()
        .filter(|s| is_commit_id(s))
        .ok_or_else(|| format!("revision `{rev}`: the upstream answered no commit id"))?
        .to_string();
    m.report.message(format!("{} @ {}", ctx.repo.id, &sha[..8]));

    let mut entries = ctx
        .hub
        .tree(ctx.repo.kind.plural(), &ctx.repo.id, &sha)
        .await
        .map_err(|e| e.to_string())?;
    entries.retain(|e| keep(&e.path, &item.allow, &item.ignore));

    let known = known_oids(ctx, &sha).await.map_err(|e| e.message)?;
    let prefix = ctx.repo.kind.url_prefix();
    let files = futures::stream::iter(entries.iter().map(|e| {
        let url = ctx.hub.file_url(prefix, &ctx.repo.id, &sha, &e.path);
        let what = format!("hf {prefix}{}@{} {}", ctx.repo.id, &sha[..8], e.path);
        let known = &known;
        async move {
            let result = fetch_file(ctx, e, &url, known).await;
            match &result {
                Ok((_, status)) => m.report.record(&what, status.clone()),
                Err(reason) => m.report.record(&what, Status::Failed(reason.clone())),
            }
            result.ok().map(|(entry, _)| entry)
        }
    }))
    .buffer_unordered(m.concurrency)
    .collect::<Vec<_>>()
    .await;
    if m.dry_run {
        return Ok(());
    }
    let failed = files.iter().filter(|f| f.is_none()).count();
    if failed > 0 {
        return Err(format!(
            "commit {sha} not stored: {failed} file(s) failed; run again to fetch them"
        ));
    }
    let files: Vec<FileEntry> = files.into_iter().flatten().collect();

    // Title, message and date as upstream has them, when it says (informational only).
    let history: Result<Vec<serde_json::Value>, _> =
        ctx.json(&ctx.api(&format!("/commits/{sha}"))).await;
    let first = history
        .ok()
        .and_then(|h| h.into_iter().next())
        .unwrap_or_default();
    let text = |k: &str| first[k].as_str().map(str::to_string);
    let commit = Commit {
        id: sha.clone(),
        parents: Vec::new(),
        title: text("title").unwrap_or_else(|| format!("Mirrored from {}", ctx.hub.base)),
        message: text("message").unwrap_or_default(),
        author: first["authors"][0]["user"]
            .as_str()
            .unwrap_or("airlock-mirror")
            .to_string(),
        date: text("date").unwrap_or_else(crate::hf::repo::now_iso),
        files,
        config: None,
    };
    let created = info["createdAt"].as_str().map(str::to_string);
    m.repos
        .create_empty(&ctx.repo, created.unwrap_or_else(crate::hf::repo::now_iso))
        .await
        .map_err(|e| e.message)?;
    let pages = m
        .repos
        .store_commit(&ctx.repo, commit)
        .await
        .map_err(|e| e.message)?;
    let named = name_mirrored(ctx, rev, &sha).await;
    pages.release().await;
    named
}

/// Points `rev` (a branch or tag name) at the mirrored commit `sha`.
async fn name_mirrored(ctx: &Ctx<'_>, rev: &str, sha: &str) -> Result<(), String> {
    if !is_commit_id(rev) {
        let is_tag = upstream_is_tag(ctx, rev).await;
        ctx.m
            .repos
            .update_refs(&ctx.repo, |refs| {
                let name = rev
                    .trim_start_matches("refs/heads/")
                    .trim_start_matches("refs/tags/");
                if is_tag {
                    refs.tags.insert(name.to_string(), sha.to_string());
                } else {
                    refs.branches.insert(name.to_string(), sha.to_string());
                }
                Ok(())
            })
            .await
            .map_err(|e| e.message)?;
    }
    Ok(())
}

/// Whether `rev` names a tag upstream (else it is stored as a branch).
async fn upstream_is_tag(ctx: &Ctx<'_>, rev: &str) -> bool {
    if rev.starts_with("refs/tags/") {
        return true;
    }
    match ctx.json::<serde_json::Value>(&ctx.api("/refs")).await {
        Ok(refs) => refs["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["name"].as_str() == Some(rev)),
        Err(_) => false,
    }
}

/// git oid -> sha256 of every file in the stored commits of this repo (its refs' heads and
/// the commit being mirrored), so small files already stored are not fetched again.
async fn known_oids(
    ctx: &Ctx<'_>,
    sha: &str,
) -> Result<HashMap<String, String>, crate::hf::HfError> {
    let repos = &ctx.m.repos;
    let refs = repos.refs(&ctx.repo).await?;
    let mut ids: Vec<String> = refs
        .branches
        .values()
        .chain(refs.tags.values())
        .cloned()
        .collect();
    ids.push(sha.to_string());
    let mut known = HashMap::new();
    for id in ids {
        if let Some(view) = repos.commit(&ctx.repo, &id).await? {
            for f in &view.commit.files {
                known.insert(f.oid.clone(), f.sha256.clone());
            }
        }
    }
    Ok(known)
}

async fn fetch_file(
    ctx: &Ctx<'_>,
    e: &TreeEntry,
    url: &str,
    known: &HashMap<String, String>,
) -> Result<(FileEntry, Status), String> {
    let m = ctx.m;
    let blobs = &m.blobs;
    let entry = |sha256: String, size: u64, lfs: bool| FileEntry {
        path: e.path.clone(),
        size,
        sha256,
        oid: e.oid.clone(),
        lfs,
        xet_hash: None,
    };
    if let Some(lfs) = &e.lfs {
        let digest = Digest::sha256_hex(&lfs.sha256)
            .map_err(|err| format!("LFS sha256 {}: {err}", lfs.sha256))?;
        if blobs.exists(&digest).await.map_err(|e| e.to_string())? {
            return Ok((entry(lfs.sha256.clone(), lfs.size, true), Status::Skipped));
        }
        if m.dry_run {
            return Ok((
                entry(lfs.sha256.clone(), lfs.size, true),
                Status::WouldFetch,
            ));
        }
        m.report.expect_bytes(lfs.size);
        m.client
            .download_blob(
                url,
                &ctx.hub.req,
                blobs,
                &digest,
                Some(lfs.size),
                m.report.bar(),
            )
            .await
            .map_err(|e| e.to_string())?;
        return Ok((entry(lfs.sha256.clone(), lfs.size, true), Status::New));
    }
    if let Some(sha256) = known.get(&e.oid) {
        let digest = Digest::sha256_hex(sha256).map_err(|e| e.to_string())?;
        if blobs.exists(&digest).await.map_err(|e| e.to_string())? {
            return Ok((entry(sha256.clone(), e.size, false), Status::Skipped));
        }
    }
    if m.dry_run {
        return Ok((entry(String::new(), e.size, false), Status::WouldFetch));
    }
    m.report.expect_bytes(e.size);
    // Unique: identical files (same oid, e.g. empty `__init__.py`) may be in flight together.
    let tmp = m
        .scratch
        .path()
        .join(format!("hf-{}-{:016x}", e.oid, rand::random::<u64>()));
    let (sha256, oid, size) = m
        .client
        .download_file(url, &ctx.hub.req, &tmp, m.report.bar())
        .await
        .map_err(|e: FetchError| e.to_string())?;
    let result = async {
        if oid != e.oid {
            return Err(format!(
                "content hashes to git oid {oid}, not {} as the upstream lists it; nothing was stored",
                e.oid
            ));
        }
        let file = tokio::fs::File::open(&tmp).await.map_err(|e| error_chain(&e))?;
        let body = Box::pin(tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024));
        blobs.put(&sha256, body, Some(size)).await.map_err(|e| e.to_string())?;
        Ok((entry(sha256.hex().to_string(), size, false), Status::New))
    }
    .await;
    let _ = tokio::fs::remove_file(&tmp).await;
    result
}
