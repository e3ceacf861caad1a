//! The read side of the Hub API: repo info, tree, paths-info, refs, commits, listings,
//! whoami, and the file resolver.

use super::access::{may_read_gated_files, repo_access, RepoAccess};
use super::error::HfError;
use super::file_bytes::{self, FileBytes};
use super::model::{split_parent, CommitView, FileEntry, RepoDoc, RepoRef, RepoType};
use super::{Ctx, HfState};
use crate::auth::{Action, Identity, Protocol};
use crate::download::{blob_response, ranged_response};
use crate::store::StoreError;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue};
use serde_json::{json, Map, Value};
use std::ops::Bound;
use std::sync::Arc;

/// Entries per tree page; the client follows `Link: rel="next"`.
const TREE_PAGE: usize = 1000;
const COMMITS_PAGE: usize = 50;
const LIST_PAGE: usize = 1000;

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

fn flag(params: &[(String, String)], name: &str) -> bool {
    params
        .iter()
        .any(|(k, v)| k == name && (v.eq_ignore_ascii_case("true") || v == "1"))
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
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

fn with_next_link(mut response: Response, next: Option<String>) -> Response {
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

pub fn info_json(
    repo: &RepoRef,
    doc: &RepoDoc,
    view: &CommitView,
    params: &[(String, String)],
) -> Value {
    let blobs = flag(params, "blobs");
    let c = &view.commit;
    let mut info = Map::new();
    info.insert(
        "_id".into(),
        json!(format!("{:x}", fnv(repo.id.as_bytes()))),
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
    info.insert(
        "usedStorage".into(),
        json!(c.files.iter().map(|f| f.size).sum::<u64>()),
    );
    if let Some(config) = &c.config {
        info.insert("config".into(), config.clone());
    }
    info.insert(
        "siblings".into(),
        Value::Array(c.files.iter().map(|f| sibling(f, blobs)).collect()),
    );
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

/// A stable short id (the Hub's `_id` is opaque; clients only echo it).
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100000001b3)
    })
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
    if let Some(body) = hf.info_cache.get(&key).await {
        return Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response());
    }
    let body = bytes::Bytes::from(info_json(repo, &doc, &view, &ctx.params).to_string());
    hf.info_cache.insert(key, body.clone()).await;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

fn file_json(f: &FileEntry) -> Value {
    let mut v = json!({ "type": "file", "oid": f.oid, "size": f.size, "path": f.path });
    if f.lfs {
        v["lfs"] = json!({ "oid": f.sha256, "size": f.size, "pointerSize": f.pointer_size() });
    }
    if let Some(hash) = &f.xet_hash {
        v["xetHash"] = json!(hash);
    }
    v
}

/// The Xet hash to advertise for a file: the one its commit recorded, if this store
/// holds the file's Xet data. A commit brought by a bundle names Xet hashes whose xorbs
/// stayed behind, and advertising what is not served fails the download (clients do
/// not fall back). The check is a document the doc cache keeps after the first
/// download, which the reconstruction reads anyway.
async fn served_xet_hash<'a>(hf: &HfState, f: &'a FileEntry) -> Result<Option<&'a str>, HfError> {
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

/// Drops `xetHash` from listed entries whose Xet data this store does not hold.
async fn keep_served_xet_hashes(
    hf: &HfState,
    view: &CommitView,
    entries: &mut [Value],
) -> Result<(), HfError> {
    for v in entries.iter_mut() {
        if v.get("xetHash").is_none() {
            continue;
        }
        let served = match view.file(v["path"].as_str().unwrap_or_default()) {
            Some(f) => served_xet_hash(hf, f).await?.is_some(),
            None => false,
        };
        if !served {
            if let Value::Object(m) = v {
                m.remove("xetHash");
            }
        }
    }
    Ok(())
}

fn dir_json(path: &str, oid: &str) -> Value {
    json!({ "type": "directory", "oid": oid, "size": 0, "path": path })
}

/// Every entry (files and directories) under `path`, sorted by path.
/// One page of the entries under `path` (its direct children, or all below it when
/// `recursive`) after the path `after`, in path order, at most `limit`; whether more
/// follow. It reads only as far as the page: the commit's files are sorted by path, so
/// the page starts at a binary search, and a subdirectory's files are skipped in one
/// jump when not `recursive`.
fn entries_page(
    view: &CommitView,
    path: &str,
    recursive: bool,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<(String, Value)>, bool), HfError> {
    if !path.is_empty() && !view.dirs.contains_key(path) {
        return Err(HfError::entry_not_found(path, &view.commit.id));
    }
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    };
    let direct = |p: &str| recursive || split_parent(p).0 == path;
    let start: &str = match after {
        Some(a) if a >= prefix.as_str() => a,
        _ => &prefix,
    };
    let mut dirs = view
        .dirs
        .range::<str, _>((Bound::Excluded(start), Bound::Unbounded))
        .take_while(|(d, _)| d.starts_with(&prefix))
        .filter(|(d, _)| direct(d))
        .peekable();
    let files = &view.commit.files;
    let mut at = files.partition_point(|f| f.path.as_str() <= start);
    // The next file at or after `at` to list.
    let next_file = |mut at: usize| -> Option<usize> {
        while let Some(f) = files.get(at) {
            if !f.path.starts_with(&prefix) {
                return None;
            }
            if direct(&f.path) {
                return Some(at);
            }
            // Below a subdirectory: its files are one run; jump past it (`0` follows `/`).
            let rest = &f.path[prefix.len()..];
            let sub = &rest[..rest.find('/').unwrap_or(rest.len())];
            let past = format!("{prefix}{sub}0");
            at = files.partition_point(|f| f.path < past);
        }
        None
    };
    let mut out = Vec::new();
    let mut file = next_file(at);
    loop {
        let take_dir = match (dirs.peek(), file) {
            (None, None) => return Ok((out, false)),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((d, _)), Some(i)) => d.as_str() < files[i].path.as_str(),
        };
        if out.len() == limit {
            return Ok((out, true));
        }
        if take_dir {
            let (d, oid) = dirs.next().expect("peeked");
            out.push((d.clone(), dir_json(d, oid)));
        } else {
            let i = file.expect("compared");
            out.push((files[i].path.clone(), file_json(&files[i])));
            at = i + 1;
            file = next_file(at);
        }
    }
}

/// The latest commit (within a bounded walk of first parents) that changed `path`.
async fn last_commit(
    hf: &HfState,
    repo: &RepoRef,
    view: &Arc<CommitView>,
    path: &str,
    oid: &str,
) -> Value {
    let mut current = view.clone();
    for _ in 0..50 {
        let Some(parent_id) = current.commit.parents.first() else {
            break;
        };
        let Ok(Some(parent)) = hf.repos.commit(repo, parent_id).await else {
            break;
        };
        let parent_oid = parent
            .file(path)
            .map(|f| f.oid.as_str())
            .or_else(|| parent.dirs.get(path).map(String::as_str));
        if parent_oid != Some(oid) {
            break;
        }
        current = parent;
    }
    let c = &current.commit;
    json!({ "id": c.id, "title": c.title, "date": c.date })
}

pub async fn tree(
    hf: &HfState,
    ctx: &Ctx,
    repo: &RepoRef,
    rev: &str,
    path: &str,
) -> Result<Response, HfError> {
    readable(hf, ctx, repo).await?;
    let view = hf.repos.resolve(repo, rev).await?;
    let recursive = flag(&ctx.params, "recursive");
    let expand = flag(&ctx.params, "expand");
    // The cursor is the last path of the page before.
    let after = param(&ctx.params, "cursor");
    let (page, more) = entries_page(&view, path, recursive, after, TREE_PAGE)?;
    let last = page.last().map(|(p, _)| p.clone());
    let mut out = Vec::with_capacity(page.len());
    for (p, mut v) in page {
        if expand {
            let oid = v["oid"].as_str().unwrap_or_default().to_string();
            v["lastCommit"] = last_commit(hf, repo, &view, &p, &oid).await;
        }
        out.push(v);
    }
    keep_served_xet_hashes(hf, &view, &mut out).await?;
    let next = last.filter(|_| more).map(|last| {
        let encoded_rev =
            percent_encoding::utf8_percent_encode(rev, percent_encoding::NON_ALPHANUMERIC);
        let encoded_path =
            percent_encoding::utf8_percent_encode(path, percent_encoding::NON_ALPHANUMERIC);
        format!(
            "{}/api/{}/{}/tree/{encoded_rev}{}?recursive={recursive}&expand={expand}&cursor={}",
            ctx.base,
            repo.kind.plural(),
            repo.id,
            if path.is_empty() {
                String::new()
            } else {
                format!("/{encoded_path}")
            },
            percent_encoding::utf8_percent_encode(&last, percent_encoding::NON_ALPHANUMERIC)
        )
    });
    Ok(with_next_link(json_response(Value::Array(out)), next))
}

pub async fn paths_info(
    hf: &HfState,
    ctx: &Ctx,
    repo: &RepoRef,
    rev: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, HfError> {
    readable(hf, ctx, repo).await?;
    let view = hf.repos.resolve(repo, rev).await?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let (paths, expand): (Vec<String>, bool) = if is_json {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| HfError::bad_request(format!("invalid JSON: {e}")))?;
        let paths = v["paths"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        (paths, v["expand"].as_bool().unwrap_or(false))
    } else {
        let form: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
        let paths = form
            .iter()
            .filter(|(k, _)| k == "paths" || k == "paths[]")
            .map(|(_, v)| v.clone())
            .collect();
        (paths, flag(&form, "expand"))
    };
    let mut out = Vec::new();
    for p in paths {
        let p = p.trim_matches('/').to_string();
        if let Some(f) = view.file(&p) {
            let mut v = file_json(f);
            if expand {
                v["lastCommit"] = last_commit(hf, repo, &view, &p, &f.oid).await;
            }
            out.push(v);
        } else if let Some(oid) = view.dirs.get(&p) {
            out.push(dir_json(&p, oid));
        }
    }
    keep_served_xet_hashes(hf, &view, &mut out).await?;
    Ok(json_response(Value::Array(out)))
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
    let mut out = Vec::new();
    let mut current = Some(start);
    while let Some(view) = current.take() {
        if out.len() == COMMITS_PAGE {
            let next = format!(
                "{}/api/{}/{}/commits/{}?cursor={}",
                ctx.base,
                repo.kind.plural(),
                repo.id,
                percent_encoding::utf8_percent_encode(rev, percent_encoding::NON_ALPHANUMERIC),
                view.commit.id
            );
            return Ok(with_next_link(json_response(Value::Array(out)), Some(next)));
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
    Ok(json_response(Value::Array(out)))
}

/// `GET /api/models?search=&author=&limit=`: what model browsers (MLIS among them) call.
pub async fn list(hf: &HfState, ctx: &Ctx, kind: RepoType) -> Result<Response, HfError> {
    let search = param(&ctx.params, "search").map(str::to_ascii_lowercase);
    let author = param(&ctx.params, "author");
    let limit: usize = param(&ctx.params, "limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(LIST_PAGE)
        .min(LIST_PAGE);
    let start: usize = param(&ctx.params, "cursor")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let ids = hf.repos.list(kind).await?;
    let matching: Vec<&String> = ids
        .iter()
        .filter(|id| {
            search
                .as_ref()
                .is_none_or(|s| id.to_ascii_lowercase().contains(s))
        })
        .filter(|id| author.is_none_or(|a| id.split_once('/').is_some_and(|(o, _)| o == a)))
        .collect();
    let mut out = Vec::new();
    let mut index = start;
    while index < matching.len() && out.len() < limit {
        let id = matching[index];
        index += 1;
        let Some(repo) = RepoRef::new(kind, id) else {
            continue;
        };
        // Private repos the caller may not read are left out, not reported.
        let Ok(doc) = readable(hf, ctx, &repo).await else {
            continue;
        };
        let Ok(view) = hf.repos.resolve(&repo, "main").await else {
            continue;
        };
        let mut info = info_json(&repo, &doc, &view, &[]);
        if let Value::Object(m) = &mut info {
            m.remove("siblings");
        }
        out.push(info);
    }
    let next = (index < matching.len()).then(|| {
        let mut q: Vec<String> = ctx
            .params
            .iter()
            .filter(|(k, _)| k != "cursor")
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect();
        q.push(format!("cursor={index}"));
        format!("{}/api/{}?{}", ctx.base, kind.plural(), q.join("&"))
    });
    Ok(with_next_link(json_response(Value::Array(out)), next))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hf::model::Commit;

    fn view(paths: &[&str]) -> CommitView {
        let mut files: Vec<FileEntry> = paths
            .iter()
            .map(|p| FileEntry {
                path: p.to_string(),
                size: 1,
                sha256: "a".repeat(64),
                oid: "b".repeat(40),
                lfs: false,
                xet_hash: None,
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        CommitView::new(Commit {
            id: "c".repeat(40),
            parents: Vec::new(),
            title: String::new(),
            message: String::new(),
            author: String::new(),
            date: String::new(),
            files,
            config: None,
        })
    }

    /// Every entry, as the whole listing would have it: directories and files under
    /// `path`, direct or all, in path order.
    fn everything(view: &CommitView, path: &str, recursive: bool) -> Vec<String> {
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let direct = |p: &str| recursive || split_parent(p).0 == path;
        let mut all: Vec<String> = view
            .dirs
            .keys()
            .chain(view.commit.files.iter().map(|f| &f.path))
            .filter(|p| p.starts_with(&prefix) && direct(p))
            .cloned()
            .collect();
        all.sort();
        all
    }

    #[test]
    fn pages_after_a_cursor_make_the_whole_listing() {
        let view = view(&[
            "a/b.txt",
            "a/b/x",
            "a/b/y/z",
            "a/b0",
            "a/c",
            "a.txt",
            "b",
            "bb/c",
            "z/deep/er/f",
            "z/g",
            "README.md",
        ]);
        for path in ["", "a", "a/b", "z", "z/deep"] {
            for recursive in [false, true] {
                let want = everything(&view, path, recursive);
                for limit in [1, 2, 3, 100] {
                    let mut got = Vec::new();
                    let mut after: Option<String> = None;
                    for _ in 0..100 {
                        let (page, more) =
                            entries_page(&view, path, recursive, after.as_deref(), limit).unwrap();
                        assert!(page.len() <= limit);
                        got.extend(page.iter().map(|(p, _)| p.clone()));
                        if !more {
                            break;
                        }
                        after = got.last().cloned();
                    }
                    assert_eq!(got, want, "{path:?} recursive={recursive} limit={limit}");
                }
            }
        }
        assert!(entries_page(&view, "nope", false, None, 10).is_err());
    }
}
