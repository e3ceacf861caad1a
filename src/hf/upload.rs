//! The write side of the Hub API, as huggingface_hub drives it without Xet:
//! create_repo → preupload → LFS batch (basic transfer to signed, expiring URLs) → PUT →
//! verify → NDJSON commit; plus branches and tags, squashing a branch's history and
//! deleting a repository. (With Xet, the bytes go to the CAS instead of the PUT; the
//! commit is the same.)

use super::endpoint::RefOp;
use super::error::HfError;
use super::file_bytes::stored_size;
use super::git;
use super::gitattributes::Attributes;
use super::model::{
    is_commit_id, is_valid_path, is_valid_ref_name, FileEntry, RefKind, RepoRef, RepoType,
};
use super::ndjson::Lines;
use super::repo::{Op, Parent};
use super::{Ctx, HfState};
use crate::auth::{Action, Protocol};
use crate::digest::Digest;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// How long an LFS upload URL stays valid.
const UPLOAD_URL_TTL_SECS: u64 = 3600;
/// One NDJSON line of a commit: a regular file travels base64-encoded inside one, and
/// preupload sends every file of `LFS_THRESHOLD` bytes or more through LFS instead.
const MAX_COMMIT_LINE: usize = (git::LFS_THRESHOLD as usize / 3 + 1) * 4 + 64 * 1024;
/// A whole commit body, and its number of operations (each one kept until the commit).
const MAX_COMMIT_BODY: u64 = 4 * 1024 * 1024 * 1024;
const MAX_COMMIT_OPERATIONS: usize = 100_000;
/// Pattern-matching steps one preupload may cost (`Attributes::cost`): about a second of
/// CPU; the default `.gitattributes` and a 256-file batch need a few million.
const MAX_PREUPLOAD_MATCH_STEPS: u64 = 500_000_000;

fn json_response(value: Value) -> Response {
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, HfError> {
    serde_json::from_slice(body)
        .map_err(|e| HfError::bad_request(format!("invalid JSON body: {e}")))
}

fn author(ctx: &Ctx) -> String {
    ctx.identity.name().to_string()
}

/// A repository as `create_repo` and `delete_repo` name it in their bodies.
#[derive(Deserialize)]
struct RepoName {
    name: String,
    organization: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

impl RepoName {
    fn repo(&self) -> Result<RepoRef, HfError> {
        let kind = match self.kind.as_deref() {
            None => RepoType::Model,
            Some(k) => RepoType::from_singular(k)
                .ok_or_else(|| HfError::bad_request(format!("unknown repo type `{k}`")))?,
        };
        let id = match &self.organization {
            Some(org) => format!("{org}/{}", self.name),
            None => self.name.clone(),
        };
        RepoRef::new(kind, &id)
            .ok_or_else(|| HfError::bad_request(format!("`{id}` is not a valid repo id")))
    }
}

#[derive(Deserialize)]
struct CreateRepoRequest {
    #[serde(flatten)]
    name: RepoName,
    #[serde(default)]
    private: Option<bool>,
    visibility: Option<String>,
}

pub async fn create_repo(hf: &HfState, ctx: &Ctx, body: Bytes) -> Result<Response, HfError> {
    let req: CreateRepoRequest = parse_json(&body)?;
    let repo = req.name.repo()?;
    let (kind, id) = (repo.kind, repo.id.clone());
    ctx.auth.authorize(
        &ctx.identity,
        Protocol::Hf,
        Action::Write,
        &repo.scope_name(),
    )?;
    let private = req.private.unwrap_or(false) || req.visibility.as_deref() == Some("private");
    let url = format!("{}/{}{}", ctx.base, kind.url_prefix(), id);
    if !hf.repos.create(&repo, private, &author(ctx)).await? {
        let mut r = json_response(json!({ "error": "You already created this repo", "url": url }));
        *r.status_mut() = http::StatusCode::CONFLICT;
        return Ok(r);
    }
    Ok(json_response(json!({ "url": url, "name": id, "id": id })))
}

/// `delete_repo`, for an admin scope of the repository (see `Repos::delete` for what
/// goes and what stays). A caller who may not read the repository is answered as if it
/// did not exist, as is everyone when it does not.
pub async fn delete_repo(hf: &HfState, ctx: &Ctx, body: Bytes) -> Result<Response, HfError> {
    let repo = parse_json::<RepoName>(&body)?.repo()?;
    let name = repo.scope_name();
    if let Err(refused) = ctx
        .auth
        .authorize(&ctx.identity, Protocol::Hf, Action::Admin, &name)
    {
        super::api::readable(hf, ctx, &repo).await?;
        return Err(refused.into());
    }
    if !hf.repos.delete(&repo).await? {
        return Err(HfError::repo_not_found(&repo.id));
    }
    Ok(json_response(json!({})))
}

#[derive(Deserialize, Default)]
struct SquashRequest {
    message: Option<String>,
}

/// `super_squash_history`: the branch's history becomes one commit of its head's files.
/// A tag or commit id is refused (400), as the Hub does.
pub async fn super_squash(
    hf: &HfState,
    ctx: &Ctx,
    repo: &RepoRef,
    branch: &str,
    body: Bytes,
) -> Result<Response, HfError> {
    super::api::readable(hf, ctx, repo).await?;
    let req: SquashRequest = if body.is_empty() {
        SquashRequest::default()
    } else {
        parse_json(&body)?
    };
    let branch = branch.strip_prefix("refs/heads/").unwrap_or(branch);
    let refs = hf.repos.refs(repo).await?;
    if !refs.branches.contains_key(branch) {
        if is_commit_id(branch) || refs.lookup(branch).is_some() {
            return Err(HfError::bad_request(format!(
                "`{branch}` is not a branch: only a branch's history can be squashed"
            )));
        }
        return Err(HfError::revision_not_found(branch));
    }
    let message = req
        .message
        .unwrap_or_else(|| format!("Super-squash branch '{branch}'"));
    let view = hf
        .repos
        .squash(repo, branch, &message, &author(ctx))
        .await?;
    Ok(json_response(json!({ "commitOid": view.commit.id })))
}

#[derive(Deserialize)]
struct PreuploadRequest {
    files: Vec<PreuploadFile>,
}

#[derive(Deserialize)]
struct PreuploadFile {
    path: String,
    #[serde(default)]
    sample: String,
    size: u64,
}

async fn gitattributes(hf: &HfState, files: &[FileEntry]) -> String {
    let Some(f) = files
        .iter()
        .find(|f| f.path == ".gitattributes" && f.size <= 1024 * 1024)
    else {
        return String::new();
    };
    super::file_bytes::read_small(&hf.repos, &f.sha256, 1024 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Which files go through LFS: large ones, binary ones, and those `.gitattributes` marks.
pub async fn preupload(
    hf: &HfState,
    ctx: &Ctx,
    repo: &RepoRef,
    rev: &str,
    body: Bytes,
) -> Result<Response, HfError> {
    super::api::readable(hf, ctx, repo).await?;
    let req: PreuploadRequest = parse_json(&body)?;
    let view = hf.repos.resolve(repo, rev).await?;
    // The first a client says of an upload, before any byte through LFS or Xet, and
    // where huggingface_hub shows the server's message: the quota is checked here by
    // size, as the content is not named yet. A file of the same path and size as the
    // branch's counts nothing (the client skips it if unchanged); the LFS batch, each
    // Xet xorb and the commit check again, by content.
    let adding: Vec<(String, u64)> = req
        .files
        .iter()
        .filter(|f| view.file(&f.path).is_none_or(|e| e.size != f.size))
        .map(|f| (format!("preupload:{}", f.path), f.size))
        .collect();
    super::quota::admit(hf, repo, &adding).await?;
    let attributes = Attributes::parse(&gitattributes(hf, &view.commit.files).await);
    let cost: u64 = req
        .files
        .iter()
        .map(|f| attributes.cost(f.path.len()))
        .sum();
    if cost > MAX_PREUPLOAD_MATCH_STEPS {
        return Err(HfError::bad_request(
            "too many files for this repository's .gitattributes in one preupload: send fewer at a time",
        ));
    }
    // Up to MAX_PREUPLOAD_MATCH_STEPS of pattern matching: off the async workers.
    let (asked, marked) = tokio::task::spawn_blocking(move || {
        let marked: Vec<bool> = req
            .files
            .iter()
            .map(|f| attributes.is_lfs(&f.path))
            .collect();
        (req.files, marked)
    })
    .await
    .map_err(|e| {
        HfError::new(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            None,
            format!("preupload: {e}"),
        )
    })?;
    let files: Vec<Value> = asked
        .iter()
        .zip(marked)
        .map(|(f, by_attributes)| {
            let sample = base64::engine::general_purpose::STANDARD.decode(&f.sample).unwrap_or_default();
            let lfs = f.size > 0
                && (f.size >= git::LFS_THRESHOLD || sample.contains(&0) || by_attributes);
            let mut v = json!({ "path": f.path, "uploadMode": if lfs { "lfs" } else { "regular" }, "shouldIgnore": false });
            if let Some(existing) = view.file(&f.path) {
                // The client skips a file whose oid it already matches.
                v["oid"] = json!(if existing.lfs { &existing.sha256 } else { &existing.oid });
            }
            v
        })
        .collect();
    Ok(json_response(
        json!({ "files": files, "commitOid": view.commit.id }),
    ))
}

#[derive(Deserialize)]
struct BatchRequest {
    operation: String,
    #[serde(default)]
    transfers: Vec<String>,
    objects: Vec<BatchObject>,
}

#[derive(Deserialize)]
struct BatchObject {
    oid: String,
    size: u64,
}

/// Signs an upload URL for one object of one size, for one repository (`models/org/m`):
/// the upload links the object to that repository, so the URL must name it unforgeably.
fn sign(key: &[u8; 32], repo: &str, oid: &str, size: u64, expires: u64) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(format!("{repo}:{oid}:{size}:{expires}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// `models/org/m`, as upload URLs carry the repository.
fn repo_param(repo: &RepoRef) -> String {
    format!("{}/{}", repo.kind.plural(), repo.id)
}

fn lfs_json(value: Value) -> Response {
    (
        [(http::header::CONTENT_TYPE, "application/vnd.git-lfs+json")],
        value.to_string(),
    )
        .into_response()
}

/// The git-LFS batch API, `xet` when the client offers it, else `basic`: with `basic`
/// each object gets a signed upload URL
/// unless this repository already holds it (an upload for it, or a branch or tag head
/// with it), which the client then skips. An object stored for another repository is
/// uploaded again (verified, not rewritten): a known digest is not proof of possession.
pub async fn lfs_batch(
    hf: &HfState,
    ctx: &Ctx,
    repo: &RepoRef,
    body: Bytes,
) -> Result<Response, HfError> {
    super::api::readable(hf, ctx, repo).await?;
    let req: BatchRequest = parse_json(&body)?;
    if req.operation != "upload" {
        return Err(HfError::bad_request(
            "only the upload operation is supported; download files through /resolve/",
        ));
    }
    // huggingface_hub 1.0 to 1.19 (with hf_xet) offer `xet` here and upload through Xet
    // only if the answer chooses it, as the Hub does: chunk-level dedup for them too. The
    // objects then need no actions; the client asks xet-write-token for a CAS token.
    // Before either transfer hands out anything to upload.
    let adding: Vec<(String, u64)> = req
        .objects
        .iter()
        .map(|o| (o.oid.clone(), o.size))
        .collect();
    super::quota::admit(hf, repo, &adding).await?;
    if req.transfers.iter().any(|t| t == "xet") {
        return Ok(lfs_json(xet_batch_answer(&req.objects)));
    }
    if !req.transfers.is_empty() && !req.transfers.iter().any(|t| t == "basic") {
        return Err(HfError::bad_request(
            "this LFS batch API offers the basic and xet transfers only",
        ));
    }
    let expires = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        + UPLOAD_URL_TTL_SECS;
    let admin = ctx.auth.is_store_admin(&ctx.identity);
    let target = repo_param(repo);
    let mut heads = None;
    let mut objects = Vec::new();
    for o in &req.objects {
        let Ok(digest) = Digest::sha256_hex(&o.oid) else {
            objects.push(json!({ "oid": o.oid, "size": o.size, "error": { "code": 422, "message": "oid must be 64 lowercase hex characters (sha256)" } }));
            continue;
        };
        if stored_size(&hf.repos, &digest).await? == Some(o.size)
            && (admin || hf.repos.holds_lfs(repo, &digest, &mut heads).await?)
        {
            objects.push(json!({ "oid": o.oid, "size": o.size }));
            continue;
        }
        let sig = sign(&hf.signing_key, &target, &o.oid, o.size, expires);
        let href = format!(
            "{}/api/lfs-upload/{}?size={}&expires={expires}&repo={target}&sig={sig}",
            ctx.base, o.oid, o.size
        );
        let verify = format!(
            "{}/api/{}/{}/lfs-verify",
            ctx.base,
            repo.kind.plural(),
            repo.id
        );
        objects.push(json!({
            "oid": o.oid, "size": o.size, "authenticated": true,
            "actions": {
                "upload": { "href": href, "header": {}, "expires_in": UPLOAD_URL_TTL_SECS },
                "verify": { "href": verify, "header": {} },
            },
        }));
    }
    Ok(lfs_json(
        json!({ "transfer": "basic", "objects": objects, "hash_algo": "sha256" }),
    ))
}

/// The batch answer choosing the `xet` transfer: each object as asked, or an error for an
/// oid that is not a sha256 (the commit will name it by that sha256).
fn xet_batch_answer(objects: &[BatchObject]) -> Value {
    let objects: Vec<Value> = objects
        .iter()
        .map(|o| match Digest::sha256_hex(&o.oid) {
            Ok(_) => json!({ "oid": o.oid, "size": o.size }),
            Err(_) => json!({ "oid": o.oid, "size": o.size, "error": { "code": 422, "message": "oid must be 64 lowercase hex characters (sha256)" } }),
        })
        .collect();
    json!({ "transfer": "xet", "objects": objects, "hash_algo": "sha256" })
}

/// `PUT` to a signed URL: the body is streamed into the blob store and published only
/// if it hashes to the oid and has the signed size (checked even when the object is
/// stored already); then the repository the URL was signed for holds it.
pub async fn lfs_upload(hf: &HfState, oid: &str, request: Request) -> Result<Response, HfError> {
    let params = super::api::query_params(request.uri().query());
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (Some(size), Some(expires), Some(target), Some(sig)) =
        (get("size"), get("expires"), get("repo"), get("sig"))
    else {
        return Err(HfError::forbidden(
            "upload URL is missing its signature; request a new one through the LFS batch API",
        ));
    };
    let (Ok(size), Ok(expires)) = (size.parse::<u64>(), expires.parse::<u64>()) else {
        return Err(HfError::forbidden("malformed upload URL"));
    };
    let expected = sign(&hf.signing_key, &target, oid, size, expires);
    let valid: bool = subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), sig.as_bytes()).into();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(u64::MAX);
    if !valid {
        return Err(HfError::forbidden("invalid upload signature"));
    }
    if now > expires {
        return Err(HfError::forbidden(
            "upload URL expired; request a new one through the LFS batch API",
        ));
    }
    let repo = target
        .split_once('/')
        .and_then(|(plural, id)| RepoRef::new(RepoType::from_plural(plural)?, id))
        .ok_or_else(|| HfError::forbidden("malformed upload URL"))?;
    let digest = Digest::sha256_hex(oid).map_err(|e| HfError::bad_request(e.to_string()))?;
    let body = super::body_stream(request.into_body());
    hf.repos.blobs().put(&digest, body, Some(size)).await?;
    hf.repos.link_lfs(&repo, &digest).await?;
    Ok(http::StatusCode::OK.into_response())
}

pub async fn lfs_verify(
    hf: &HfState,
    ctx: &Ctx,
    repo: &RepoRef,
    body: Bytes,
) -> Result<Response, HfError> {
    super::api::readable(hf, ctx, repo).await?;
    let o: BatchObject = parse_json(&body)?;
    let digest = Digest::sha256_hex(&o.oid).map_err(|e| HfError::bad_request(e.to_string()))?;
    // Stored for another repository only: not uploaded here, as far as this one knows.
    let held = ctx.auth.is_store_admin(&ctx.identity)
        || hf.repos.holds_lfs(repo, &digest, &mut None).await?;
    let not_uploaded = || HfError::not_found(format!("object {} was not uploaded", o.oid));
    match stored_size(&hf.repos, &digest).await? {
        Some(_) if !held => Err(not_uploaded()),
        Some(size) if size == o.size => Ok(lfs_json(json!({ "oid": o.oid, "size": o.size }))),
        Some(size) => Err(HfError::bad_request(format!(
            "object {} has {size} bytes, not {}",
            o.oid, o.size
        ))),
        None => Err(not_uploaded()),
    }
}

/// The size of a stored LFS object (a blob, or a file uploaded through Xet) this
/// repository may name in a commit, or `None` (the same answer whether it is stored for
/// another repository or nowhere: a commit must not tell which digests exist).
async fn lfs_object(
    hf: &HfState,
    ctx: &Ctx,
    repo: &RepoRef,
    digest: &Digest,
    heads: &mut Option<std::collections::HashSet<String>>,
) -> Result<Option<u64>, HfError> {
    if !ctx.auth.is_store_admin(&ctx.identity) && !hf.repos.holds_lfs(repo, digest, heads).await? {
        return Ok(None);
    }
    stored_size(&hf.repos, digest).await
}

#[derive(Deserialize)]
struct CommitLine {
    key: String,
    value: Value,
}

/// The NDJSON commit: read line by line (memory bounded by one line), files stored as
/// they arrive, then one atomic branch update.
pub async fn commit(
    hf: &HfState,
    ctx: &Ctx,
    repo: &RepoRef,
    rev: &str,
    body: Body,
) -> Result<Response, HfError> {
    super::api::readable(hf, ctx, repo).await?;
    if ctx
        .params
        .iter()
        .any(|(k, v)| k == "create_pr" && (v == "1" || v.eq_ignore_ascii_case("true")))
    {
        return Err(HfError::bad_request(
            "pull requests cannot be opened on Airlock; commit to a branch instead",
        ));
    }
    if is_commit_id(rev) {
        return Err(HfError::bad_request(format!(
            "cannot commit onto commit {rev}: name a branch"
        )));
    }
    let branch = rev.strip_prefix("refs/heads/").unwrap_or(rev).to_string();
    let refs = hf.repos.refs(repo).await?;
    if !refs.branches.contains_key(&branch) {
        return Err(HfError::revision_not_found(rev));
    }

    let mut title = String::from("Upload with huggingface_hub");
    let mut description = String::new();
    let mut parent = Parent::Latest;
    let mut ops: Vec<Op> = Vec::new();
    let mut heads = None;
    let mut lines = Lines::new(body.into_data_stream(), MAX_COMMIT_LINE, MAX_COMMIT_BODY);
    while let Some(ready) = lines.ready().await? {
        for line in ready {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if ops.len() >= MAX_COMMIT_OPERATIONS {
                return Err(HfError::new(
                    http::StatusCode::PAYLOAD_TOO_LARGE,
                    None,
                    format!("more than {MAX_COMMIT_OPERATIONS} operations: split the commit"),
                ));
            }
            let line: CommitLine = parse_json(&line)?;
            let v = &line.value;
            let path = |v: &Value| -> Result<String, HfError> {
                let p = v["path"]
                    .as_str()
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string();
                if !is_valid_path(&p) {
                    return Err(HfError::bad_request(format!(
                        "invalid path in commit: `{p}`"
                    )));
                }
                Ok(p)
            };
            match line.key.as_str() {
                "header" => {
                    title = v["summary"].as_str().unwrap_or(&title).to_string();
                    description = v["description"].as_str().unwrap_or_default().to_string();
                    if let Some(p) = v["parentCommit"].as_str() {
                        parent = Parent::Exactly(p.to_string());
                    }
                }
                "file" => {
                    let p = path(v)?;
                    let content = base64::engine::general_purpose::STANDARD
                        .decode(v["content"].as_str().unwrap_or_default())
                        .map_err(|e| {
                            HfError::bad_request(format!("{p}: content is not base64: {e}"))
                        })?;
                    ops.push(Op::Put(
                        hf.repos.store_small_file(&p, content.into()).await?,
                    ));
                }
                "lfsFile" => {
                    let p = path(v)?;
                    let oid = v["oid"].as_str().unwrap_or_default();
                    let digest = Digest::sha256_hex(oid)
                        .map_err(|e| HfError::bad_request(format!("{p}: {e}")))?;
                    let stored = lfs_object(hf, ctx, repo, &digest, &mut heads)
                        .await?
                        .ok_or_else(|| {
                            HfError::bad_request(format!(
                                "{p}: LFS object {oid} was never uploaded to this repository; upload the file's content (LFS batch API) before committing it"
                            ))
                        })?;
                    if let Some(size) = v["size"].as_u64() {
                        if size != stored {
                            return Err(HfError::bad_request(format!(
                                "{p}: LFS object has {stored} bytes, not {size}"
                            )));
                        }
                    }
                    let pointer = git::lfs_pointer(oid, stored);
                    // Looked up once here so that no download has to.
                    let xet_hash = hf.xet.hash_of(&digest).await?;
                    ops.push(Op::Put(FileEntry {
                        path: p,
                        size: stored,
                        sha256: oid.to_string(),
                        oid: git::blob_oid(pointer.as_bytes()),
                        lfs: true,
                        xet_hash,
                    }));
                }
                "deletedFile" => ops.push(Op::Delete(path(v)?)),
                "deletedFolder" => ops.push(Op::DeleteFolder(path(v)?)),
                other => {
                    return Err(HfError::bad_request(format!(
                        "unknown commit operation `{other}`"
                    )))
                }
            }
        }
    }
    let adding: Vec<(String, u64)> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Put(entry) => Some((entry.sha256.clone(), entry.size)),
            _ => None,
        })
        .collect();
    super::quota::admit(hf, repo, &adding).await?;
    let view = hf
        .repos
        .commit_changes(
            repo,
            &branch,
            parent,
            ops,
            &title,
            &description,
            &author(ctx),
            None,
        )
        .await?;
    let id = &view.commit.id;
    Ok(json_response(json!({
        "success": true,
        "commitOid": id,
        "commitUrl": format!("{}/{}{}/commit/{id}", ctx.base, repo.kind.url_prefix(), repo.id),
        "commitMessage": view.commit.message,
        "hookOutput": "",
        "pullRequestUrl": null,
    })))
}

/// Creates or deletes a branch or tag.
pub async fn change_ref(
    hf: &HfState,
    ctx: &Ctx,
    repo: &RepoRef,
    kind: RefKind,
    op: RefOp,
    path: &str,
    body: Bytes,
) -> Result<Response, HfError> {
    super::api::readable(hf, ctx, repo).await?;
    match op {
        RefOp::Create => {
            let (name, from) = new_ref(kind, path, &body)?;
            let target = hf.repos.resolve(repo, &from).await?.commit.id.clone();
            hf.repos
                .update_refs(repo, |refs| {
                    let names = kind.names(refs);
                    if names.contains_key(&name) {
                        let noun = kind.noun();
                        return Err(HfError::conflict(format!("{noun} `{name}` already exists")));
                    }
                    names.insert(name.clone(), target.clone());
                    Ok(())
                })
                .await?;
        }
        RefOp::Delete => {
            if kind == RefKind::Branch && path == "main" {
                return Err(HfError::forbidden("the main branch cannot be deleted"));
            }
            hf.repos
                .update_refs(repo, |refs| match kind.names(refs).remove(path) {
                    Some(_) => Ok(()),
                    None => Err(HfError::revision_not_found(path)),
                })
                .await?;
        }
    }
    Ok(json_response(json!({})))
}

/// A new ref's name and the revision it starts at. A branch is named in the path and
/// starts at the body's optional `startingPoint` (else main); a tag is named by the
/// body's `tag` and points at the path's revision.
fn new_ref(kind: RefKind, path: &str, body: &[u8]) -> Result<(String, String), HfError> {
    let check = |name: &str| match is_valid_ref_name(name) {
        true => Ok(name.to_string()),
        false => Err(HfError::bad_request(format!(
            "`{name}` is not a valid {} name",
            kind.noun()
        ))),
    };
    match kind {
        RefKind::Branch => {
            let name = check(path)?;
            let start: Value = if body.is_empty() {
                json!({})
            } else {
                parse_json(body)?
            };
            let from = start["startingPoint"].as_str().unwrap_or("main");
            Ok((name, from.to_string()))
        }
        RefKind::Tag => {
            let req: Value = parse_json(body)?;
            let tag = req["tag"]
                .as_str()
                .ok_or_else(|| HfError::bad_request("missing `tag`"))?;
            Ok((check(tag)?, path.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// LFS batch and preupload bodies of any shape: parsed or a 400, never a panic.
        #[test]
        fn any_batch_or_preupload_body(text in r#"[{}\[\]":, a-z0-9]{0,128}"#, raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            for body in [text.as_bytes(), &raw[..]] {
                if let Err(e) = parse_json::<BatchRequest>(body) {
                    proptest::prop_assert_eq!(e.status, http::StatusCode::BAD_REQUEST);
                }
                let _ = parse_json::<PreuploadRequest>(body);
                let _ = parse_json::<BatchObject>(body);
            }
        }
    }
}
