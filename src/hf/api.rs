//! The read side of the Hub API: repo info, tree, paths-info, refs, commits, listings,
//! whoami, and the file resolver.

use super::access::{may_read_gated_files, repo_access, RepoAccess};
use super::error::HfError;
use super::file_bytes::{self, FileBytes};
use super::model::{
    fnv1a, split_parent, CommitSummary, CommitView, FileEntry, RepoDoc, RepoRef, RepoType,
};
use super::tree::{json_bytes, ListPage};
use super::{Ctx, HfState};
use crate::auth::{Action, Identity, Protocol};
use crate::download::{blob_response, ranged_response};
use crate::store::{NameList, StoreError};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{header, HeaderMap, HeaderValue};
use serde_json::{json, Map, Value};
use std::sync::Arc;

const COMMITS_PAGE: usize = 50;
const LIST_PAGE: usize = 1000;
/// Repositories read at once for a list page (each a few S3 round trips).
const LIST_READS_IN_FLIGHT: usize = 16;

/// Loads a repository the caller may read. Private repos are invisible (RepoNotFound)
/// to callers without a read scope for them.
pub async fn readable(hf: &HfState, ctx: &Ctx, repo: &RepoRef) -> Result<RepoDoc, HfError> {
    let doc = hf
        .repos
        .repo(repo)
        .await?
        .ok_or_else(|| HfError::repo_not_found(&repo.id))?;
    match repo_access(&ctx.auth, &ctx.identity, repo, &doc) {
        RepoAccess::Granted => Ok(doc),
        RepoAccess::Unauthenticated => Err(crate::auth::AuthError::Unauthenticated.into()),
        RepoAccess::Hidden => Err(HfError::repo_not_found(&repo.id)),
    }
}

pub fn query_params(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn flag(params: &[(String, String)], name: &str) -> bool {
    params
        .iter()
        .any(|(k, v)| k == name && (v.eq_ignore_ascii_case("true") || v == "1"))
}

pub(super) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn json_response(value: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

pub(super) fn with_next_link(mut response: Response, next: Option<String>) -> Response {
    if let Some(url) = next {
        if let Ok(v) = HeaderValue::from_str(&format!("<{url}>; rel=\"next\"")) {
            response.headers_mut().insert(header::LINK, v);
        }
    }
    response
}

fn sibling(f: &FileEntry, blobs: bool) -> Value {
    if !blobs {
        return json!({ "rfilename": f.path });
    }
    let mut s = json!({ "rfilename": f.path, "blobId": f.oid, "size": f.size });
    if f.lfs {
        s["lfs"] = json!({ "sha256": f.sha256, "size": f.size, "pointerSize": f.pointer_size() });
    }
    s
}

/// The repository's info; `siblings`: its files, to list them all (a listing of
/// repositories leaves them out, and building 100,000 of them to drop them would cost
/// 40 ms).
pub fn info_json(
    repo: &RepoRef,
    doc: &RepoDoc,
    c: &CommitSummary,
    params: &[(String, String)],
    siblings: Option<&[FileEntry]>,
) -> Value {
    let blobs = flag(params, "blobs");
    let mut info = Map::new();
    info.insert(
        "_id".into(),
        // A stable short id (the Hub's `_id` is opaque; clients only echo it).
        json!(format!("{:x}", fnv1a(repo.id.as_bytes()))),
    );
    info.insert("id".into(), json!(repo.id));
    if repo.kind == RepoType::Model {
        info.insert("modelId".into(), json!(repo.id));
    }
    info.insert("author".into(), json!(repo.author()));
    info.insert("sha".into(), json!(c.id));
    info.insert("lastModified".into(), json!(c.date));
    info.insert("createdAt".into(), json!(doc.created_at));
    info.insert("private".into(), json!(doc.private));
    info.insert(
        "gated".into(),
        if doc.gated {
            json!("manual")
        } else {
            json!(false)
        },
    );
    info.insert("disabled".into(), json!(false));
    info.insert("downloads".into(), json!(0));
    info.insert("likes".into(), json!(0));
    info.insert("tags".into(), json!([]));
    info.insert("usedStorage".into(), json!(c.used_storage));
    if let Some(config) = &c.config {
        info.insert("config".into(), config.clone());
    }
    if let Some(files) = siblings {
        info.insert(
            "siblings".into(),
            Value::Array(files.iter().map(|f| sibling(f, blobs)).collect()),
        );
    }
    // `?expand=a&expand=b` asks for those keys only.
    let expand: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "expand" || k == "expand[]")
        .map(|(_, v)| v.as_str())
        .collect();
    if !expand.is_empty() {
        info.retain(|k, _| k == "_id" || k == "id" || expand.contains(&k.as_str()));
    }
    Value::Object(info)
}

pub async fn repo_info(
    hf: &HfState,
    ctx: &Ctx,
    repo: &RepoRef,
    rev: Option<&str>,
) -> Result<Response, HfError> {
    let doc = readable(hf, ctx, repo).await?;
    let view = hf.repos.resolve(repo, rev.unwrap_or("main")).await?;
    // The answer depends only on the commit, the visibility and the query: keep it.
    let query: Vec<String> = ctx.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let key = format!(
        "{}|{}|{}|{}",
        repo.key_dir(),
        view.commit.id,
        doc.private,
        query.join("&")
    );
    // Requests that miss together wait for one rendering: the info of a repository of
    // 100,000 files is 3 MB of JSON built from a tree of 100,000 siblings: once, not once
    // per caller.
    let body = hf
        .info_cache
        .get_with(key, async {
            let info = info_json(
                repo,
                &doc,
                &view.commit.summary(),
                &ctx.params,
                Some(&view.commit.files),
            );
            bytes::Bytes::from(info.to_string())
        })
        .await;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The Xet hash to advertise for a file: the one its commit recorded, if this store
/// holds the file's Xet data. A commit brought by a bundle names Xet hashes whose xorbs
/// stayed behind, and advertising what is not served fails the download (clients do
/// not fall back). The check is a document the doc cache keeps after the first
/// download, which the reconstruction reads anyway.
pub(super) async fn served_xet_hash<'a>(
    hf: &HfState,
    f: &'a FileEntry,
) -> Result<Option<&'a str>, HfError> {
    let Some(hash) = &f.xet_hash else {
        return Ok(None);
    };
    let Ok(parsed) = hash.parse() else {
        return Ok(None);
    };
    Ok(hf.xet.file(&parsed).await?.map(|_| hash.as_str()))
}

/// The file as Xet data only, when this store holds no blob of it: plain downloads
/// rebuild it from its xorbs. Only files whose commit names a served Xet hash are looked
/// for, so other files cost nothing more than before.
async fn held_as_xet(
    hf: &HfState,
    file: &FileEntry,
    digest: &crate::digest::Digest,
    xet_hash: Option<&str>,
) -> Result<Option<FileBytes>, HfError> {
    if xet_hash.is_none() || !file.lfs {
        return Ok(None);
    }
    Ok(file_bytes::locate(&hf.repos, digest, xet_hash)
        .await?
        .filter(|f| matches!(f, FileBytes::Xet(_))))
}

pub async fn refs(hf: &HfState, ctx: &Ctx, repo: &RepoRef) -> Result<Response, HfError> {
    readable(hf, ctx, repo).await?;
    let refs = hf.repos.refs(repo).await?;
    let list = |m: &std::collections::BTreeMap<String, String>, kind: &str| -> Vec<Value> {
        m.iter()
            .map(
                |(n, c)| json!({ "name": n, "ref": format!("refs/{kind}/{n}"), "targetCommit": c }),
            )
            .collect()
    };
    let mut out = json!({ "branches": list(&refs.branches, "heads"), "tags": list(&refs.tags, "tags"), "converts": [] });
    if flag(&ctx.params, "include_prs") {
        out["pullRequests"] = refs
            .prs
            .iter()
            .map(|(n, c)| json!({ "name": n.to_string(), "ref": format!("refs/pr/{n}"), "targetCommit": c }))
            .collect();
    }
    Ok(json_response(out))
}

pub async fn commits(
    hf: &HfState,
    ctx: &Ctx,
    repo: &RepoRef,
    rev: &str,
) -> Result<Response, HfError> {
    readable(hf, ctx, repo).await?;
    let start = match param(&ctx.params, "cursor") {
        Some(c) => hf
            .repos
            .commit(repo, c)
            .await?
            .ok_or_else(|| HfError::revision_not_found(c))?,
        None => hf.repos.resolve(repo, rev).await?,
    };
    // A page is the history from its first commit: fixed, until retention cuts it
    // (which starts a new generation of refs.json).
    let generation = hf.repos.refs(repo).await?.generation;
    let key = format!(
        "commits|{}|{generation}|{}",
        repo.key_dir(),
        start.commit.id
    );
    let page = match hf.list_pages.get(&key).await {
        Some(page) => page,
        None => {
            let page = Arc::new(commits_page(hf, repo, start).await?);
            hf.list_pages.insert(key, page.clone()).await;
            page
        }
    };
    let next = page.more_after.as_ref().map(|cursor| {
        format!(
            "{}/api/{}/{}/commits/{}?cursor={cursor}",
            ctx.base,
            repo.kind.plural(),
            repo.id,
            percent_encoding::utf8_percent_encode(rev, percent_encoding::NON_ALPHANUMERIC),
        )
    });
    Ok(with_next_link(json_bytes(page.body.clone()), next))
}

/// Up to `COMMITS_PAGE` commits from `start` back along first parents, and the commit
/// the next page starts at.
async fn commits_page(
    hf: &HfState,
    repo: &RepoRef,
    start: Arc<CommitView>,
) -> Result<ListPage, HfError> {
    let mut out = Vec::new();
    let mut current = Some(start);
    while let Some(view) = current.take() {
        if out.len() == COMMITS_PAGE {
            return Ok(ListPage {
                body: Value::Array(out).to_string().into(),
                more_after: Some(view.commit.id.clone()),
                kept_for: None,
            });
        }
        let c = &view.commit;
        out.push(json!({
            "id": c.id, "title": c.title, "message": c.message, "date": c.date,
            "authors": [{ "user": c.author, "avatar": null }],
        }));
        if let Some(parent) = c.parents.first() {
            current = hf.repos.commit(repo, parent).await?;
        }
    }
    Ok(ListPage {
        body: Value::Array(out).to_string().into(),
        more_after: None,
        kept_for: None,
    })
}

/// `GET /api/models?search=&author=&limit=`: what model browsers (MLIS among them) call.
/// A page is kept for the mutable TTL for the callers who all see the same one (anyone
/// anonymous; a token reading every repository): 1,000 repositories read and rendered
/// are ~12 ms, a kept page a lookup.
pub async fn list(hf: &HfState, ctx: &Ctx, kind: RepoType) -> Result<Response, HfError> {
    let view = if matches!(ctx.identity, Identity::Anonymous) {
        Some("anonymous")
    } else if ctx
        .auth
        .authorize(&ctx.identity, Protocol::Hf, Action::Read, "")
        .is_ok()
    {
        Some("all")
    } else {
        None
    };
    let ids = hf.repos.names(kind).await?;
    // The ids' fingerprint: a repository this process creates or deletes is a new page.
    let key = view.map(|view| {
        let query: Vec<String> = ctx.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "repos|{}|{}|{view}|{}",
            kind.plural(),
            ids.fingerprint(),
            query.join("&")
        )
    });
    // Callers who see the same page and miss it together wait for one build.
    let page = match key {
        Some(key) => hf
            .list_pages
            .try_get_with(key, async {
                Ok::<_, HfError>(Arc::new(repos_page(hf, ctx, kind, &ids).await?))
            })
            .await
            .map_err(|e| e.as_ref().clone())?,
        None => Arc::new(repos_page(hf, ctx, kind, &ids).await?),
    };
    let next = page.more_after.as_ref().map(|cursor| {
        let mut q: Vec<String> = ctx
            .params
            .iter()
            .filter(|(k, _)| k != "cursor")
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect();
        q.push(format!("cursor={cursor}"));
        format!("{}/api/{}?{}", ctx.base, kind.plural(), q.join("&"))
    });
    Ok(with_next_link(json_bytes(page.body.clone()), next))
}

/// One page of the repository list as this caller sees it; `more_after` is the cursor
/// of the next (a position among the matching ids).
async fn repos_page(
    hf: &HfState,
    ctx: &Ctx,
    kind: RepoType,
    ids: &NameList,
) -> Result<ListPage, HfError> {
    let search = param(&ctx.params, "search").map(str::to_ascii_lowercase);
    let author = param(&ctx.params, "author");
    let limit: usize = param(&ctx.params, "limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(LIST_PAGE)
        .min(LIST_PAGE);
    let start: usize = param(&ctx.params, "cursor")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let matching: Vec<&str> = ids
        .iter()
        .filter(|id| {
            search
                .as_ref()
                .is_none_or(|s| crate::store::contains_ignoring_case(id, s))
        })
        .filter(|id| author.is_none_or(|a| id.split_once('/').is_some_and(|(o, _)| o == a)))
        .collect();
    // Each repository is two or three small reads: a few at a time, in order, in
    // rounds of what the page still lacks (a repository the caller may not read is left
    // out, not reported, so a round may fall short).
    let mut out = Vec::new();
    let mut index = start;
    while index < matching.len() && out.len() < limit {
        let round = &matching[index..matching.len().min(index + limit - out.len())];
        index += round.len();
        let reads: Vec<_> = round
            .iter()
            .map(|id| listed_info(hf, ctx, kind, id))
            .collect();
        let infos: Vec<Option<Value>> = futures::stream::iter(reads)
            .buffered(LIST_READS_IN_FLIGHT)
            .collect()
            .await;
        out.extend(infos.into_iter().flatten());
    }
    Ok(ListPage {
        body: Value::Array(out).to_string().into(),
        more_after: (index < matching.len()).then(|| index.to_string()),
        kept_for: Some(hf.repos.mutable_ttl()),
    })
}

/// A repository as a list shows it, if the caller may read it and its main branch.
async fn listed_info(hf: &HfState, ctx: &Ctx, kind: RepoType, id: &str) -> Option<Value> {
    let repo = RepoRef::new(kind, id)?;
    let doc = readable(hf, ctx, &repo).await.ok()?;
    let summary = hf.repos.summary(&repo, "main").await.ok()?;
    Some(info_json(&repo, &doc, &summary, &[], None))
}

fn urlencode(v: &str) -> String {
    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
}

pub fn whoami(ctx: &Ctx) -> Result<Response, HfError> {
    let Identity::Token(principal) = &ctx.identity else {
        return Err(crate::auth::AuthError::InvalidCredentials.into());
    };
    let can_write = ctx
        .auth
        .authorize(&ctx.identity, Protocol::Hf, Action::Write, "")
        .is_ok();
    let role = if can_write { "write" } else { "read" };
    Ok(json_response(json!({
        "type": "user", "id": principal.name, "name": principal.name, "fullname": principal.name,
        "orgs": [], "isPro": false, "canPay": false, "emailVerified": true,
        "auth": { "type": "access_token", "accessToken": { "displayName": principal.name, "role": role } },
    })))
}

/// `HEAD`/`GET .../resolve/{rev}/{path}`: served directly (200/206), never redirected,
/// with the headers every huggingface_hub version needs.
pub async fn resolve(
    state: &HfState,
    ctx: &Ctx,
    repo: &RepoRef,
    rev: &str,
    path: &str,
    request: &HeaderMap,
    head: bool,
) -> Result<Response, HfError> {
    let hf = state;
    let doc = readable(hf, ctx, repo).await?;
    if doc.gated && !may_read_gated_files(&ctx.auth, &ctx.identity, repo) {
        let anonymous = matches!(ctx.identity, Identity::Anonymous);
        return Err(HfError::gated(&repo.id, anonymous));
    }
    let view = hf.repos.resolve(repo, rev).await?;
    let file = view
        .file(path)
        .ok_or_else(|| HfError::entry_not_found(path, &view.commit.id))?;
    let digest = crate::digest::Digest::sha256_hex(&file.sha256)
        .map_err(|e| HfError::bad_request(e.to_string()))?;
    let xet_hash = served_xet_hash(hf, file).await?;
    let body = async {
        Ok::<_, HfError>(match held_as_xet(hf, file, &digest, xet_hash).await? {
            Some(xet) => {
                let etag = format!("\"{}\"", digest.hex());
                let open = |range| async {
                    xet.read(&hf.repos, range)
                        .await
                        .map_err(|e| StoreError::Unavailable(e.message))
                };
                ranged_response(xet.size(), &etag, request, head, open).await?
            }
            None => {
                // A pull-through copy evicted since this process last saw it is fetched from
                // the upstream again (the failed read made the store forget it).
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    let filled = super::pullthrough::fill_file(
                        state.upstream.as_ref(),
                        &state.filler,
                        hf.repos.blobs(),
                        repo,
                        &view.commit.id,
                        file,
                        &digest,
                        request,
                        head,
                    )
                    .await?;
                    let served = match filled {
                        Some((size, body)) => Ok(crate::download::streamed(&digest, size, body)),
                        None => blob_response(hf.repos.blobs(), &digest, request, head).await,
                    };
                    match served {
                        Err(StoreError::NotFound(_))
                            if state.upstream.is_some() && attempts == 1 => {}
                        served => break served?,
                    }
                }
            }
        })
    };
    // A commit retention just cut may still be cached here while its files are gone.
    let mut response = match body.await {
        Ok(response) => response,
        Err(_) if hf.repos.commit_gone(repo, &view.commit.id).await? => {
            return Err(HfError::revision_not_found(rev));
        }
        Err(e) => return Err(e),
    };
    let h = response.headers_mut();
    let etag = if file.lfs { &file.sha256 } else { &file.oid };
    let set = |h: &mut HeaderMap, k: &'static str, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    set(h, "x-repo-commit", &view.commit.id);
    set(h, "etag", &format!("\"{etag}\""));
    if file.lfs {
        set(h, "x-linked-etag", &format!("\"{}\"", file.sha256));
    }
    set(h, "x-linked-size", &file.size.to_string());
    // Xet-capable clients (huggingface_hub 1.x/2.x with hf_xet) download through the CAS
    // when these are present; every other client ignores them and reads this body.
    if let Some(hash) = xet_hash {
        set(h, "x-xet-hash", hash);
        let token_url = format!(
            "{}/api/{}/{}/xet-read-token/{}",
            ctx.base,
            repo.kind.plural(),
            repo.id,
            view.commit.id
        );
        set(h, "link", &format!("<{token_url}>; rel=\"xet-auth\""));
    }
    let name = split_parent(path).1;
    let encoded = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    set(
        h,
        "content-disposition",
        &format!("inline; filename*=UTF-8''{encoded}"),
    );
    Ok(response)
}
