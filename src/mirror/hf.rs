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

use super::client::{error_chain, FetchError, Req};
use super::glob::keep;
use super::report::Status;
use super::Mirror;
use crate::digest::Digest;
use crate::hf::model::{is_commit_id, Commit, FileEntry, RepoRef, RepoType};
use crate::hf::HfError;
use crate::spec::{HfItem, HfRepoType};
use futures::StreamExt;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use std::collections::HashMap;

/// Path segments keep `/` between them but escape everything URL-significant.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
const MAX_API_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Deserialize)]
struct TreeEntry {
    #[serde(rename = "type")]
    kind: String,
    oid: String,
    #[serde(default)]
    size: u64,
    path: String,
    #[serde(default)]
    lfs: Option<Lfs>,
}

#[derive(Debug, Deserialize)]
struct Lfs {
    oid: String,
    size: u64,
}

fn hf_err(e: HfError) -> String {
    e.message
}

fn encode_path(path: &str) -> String {
    path.split('/')
        .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

struct Ctx<'a> {
    m: &'a Mirror,
    base: String,
    repo: RepoRef,
    req: Req,
}

impl Ctx<'_> {
    fn api(&self, rest: &str) -> String {
        format!(
            "{}/api/{}/{}{rest}",
            self.base,
            self.repo.kind.plural(),
            self.repo.id
        )
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
    ) -> Result<(reqwest::header::HeaderMap, T), String> {
        let (headers, body) = self
            .m
            .client
            .get_small(url, &self.req, MAX_API_BYTES)
            .await
            .map_err(|e| e.to_string())?;
        let value =
            serde_json::from_slice(&body).map_err(|e| format!("{url}: unexpected answer: {e}"))?;
        Ok((headers, value))
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
    let ctx = Ctx {
        m,
        base: m.spec.upstreams.hf.trim_end_matches('/').to_string(),
        repo,
        req: Req::default().bearer(token.as_deref()),
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
    let (_, info): (_, serde_json::Value) = ctx
        .json(&ctx.api(&format!("/revision/{encoded_rev}")))
        .await?;
    let sha = info["sha"]
        .as_str()
        .filter(|s| is_commit_id(s))
        .ok_or_else(|| format!("revision `{rev}`: the upstream answered no commit id"))?
        .to_string();
    m.report.message(format!("{} @ {}", ctx.repo.id, &sha[..8]));

    // The whole tree, following `Link: rel="next"` pages.
    let mut entries: Vec<TreeEntry> = Vec::new();
    let mut next = Some(ctx.api(&format!("/tree/{sha}?recursive=true")));
    while let Some(url) = next.take() {
        let (headers, page): (_, Vec<TreeEntry>) = ctx.json(&url).await?;
        entries.extend(page.into_iter().filter(|e| e.kind == "file"));
        next = headers
            .get(reqwest::header::LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(next_link);
    }
    entries.retain(|e| keep(&e.path, &item.allow, &item.ignore));

    let repos = &m.repos;
    let known = known_oids(ctx, &sha).await.map_err(hf_err)?;
    let prefix = ctx.repo.kind.url_prefix();
    let files = futures::stream::iter(entries.iter().map(|e| {
        let url = format!(
            "{}/{prefix}{}/resolve/{sha}/{}",
            ctx.base,
            ctx.repo.id,
            encode_path(&e.path)
        );
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
    let history: Result<(_, Vec<serde_json::Value>), _> =
        ctx.json(&ctx.api(&format!("/commits/{sha}"))).await;
    let first = history
        .ok()
        .and_then(|(_, h)| h.into_iter().next())
        .unwrap_or_default();
    let text = |k: &str| first[k].as_str().map(str::to_string);
    let commit = Commit {
        id: sha.clone(),
        parents: Vec::new(),
        title: text("title").unwrap_or_else(|| format!("Mirrored from {}", ctx.base)),
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
    repos
        .create_empty(&ctx.repo, created.unwrap_or_else(crate::hf::repo::now_iso))
        .await
        .map_err(hf_err)?;
    repos
        .store_commit(&ctx.repo, commit)
        .await
        .map_err(hf_err)?;
    if !is_commit_id(rev) {
        let is_tag = upstream_is_tag(ctx, rev).await;
        repos
            .update_refs(&ctx.repo, |refs| {
                let name = rev
                    .trim_start_matches("refs/heads/")
                    .trim_start_matches("refs/tags/");
                if is_tag {
                    refs.tags.insert(name.to_string(), sha.clone());
                } else {
                    refs.branches.insert(name.to_string(), sha.clone());
                }
                Ok(())
            })
            .await
            .map_err(hf_err)?;
    }
    Ok(())
}

/// Whether `rev` names a tag upstream (else it is stored as a branch).
async fn upstream_is_tag(ctx: &Ctx<'_>, rev: &str) -> bool {
    if rev.starts_with("refs/tags/") {
        return true;
    }
    match ctx.json::<serde_json::Value>(&ctx.api("/refs")).await {
        Ok((_, refs)) => refs["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["name"].as_str() == Some(rev)),
        Err(_) => false,
    }
}

/// git oid -> sha256 of every file in the stored commits of this repo (its refs' heads and
/// the commit being mirrored), so small files already stored are not fetched again.
async fn known_oids(ctx: &Ctx<'_>, sha: &str) -> Result<HashMap<String, String>, HfError> {
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
    let blobs = &m.stores.blobs;
    let entry = |sha256: String, size: u64, lfs: bool| FileEntry {
        path: e.path.clone(),
        size,
        sha256,
        oid: e.oid.clone(),
        lfs,
    };
    if let Some(lfs) = &e.lfs {
        let digest =
            Digest::sha256_hex(&lfs.oid).map_err(|err| format!("LFS oid {}: {err}", lfs.oid))?;
        if blobs.exists(&digest).await.map_err(|e| e.to_string())? {
            return Ok((entry(lfs.oid.clone(), lfs.size, true), Status::Skipped));
        }
        if m.dry_run {
            return Ok((entry(lfs.oid.clone(), lfs.size, true), Status::WouldFetch));
        }
        m.report.expect_bytes(lfs.size);
        m.client
            .download_blob(
                url,
                &ctx.req,
                blobs,
                &digest,
                Some(lfs.size),
                m.report.bar(),
            )
            .await
            .map_err(|e| e.to_string())?;
        return Ok((entry(lfs.oid.clone(), lfs.size, true), Status::New));
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
        .download_file(url, &ctx.req, &tmp, m.report.bar())
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

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers_and_paths() {
        assert_eq!(
            next_link("<https://hub/api/models/a/b/tree/main?cursor=x>; rel=\"next\"").as_deref(),
            Some("https://hub/api/models/a/b/tree/main?cursor=x")
        );
        assert_eq!(next_link("<https://x>; rel=\"prev\""), None);
        assert_eq!(encode_path("sub dir/a+b#.json"), "sub%20dir/a%2Bb%23.json");
    }
}
