//! Tree listings: `GET /api/<kind>/<repo>/tree/<rev>[/<path>]` page by page, and
//! `POST .../paths-info/<rev>`. A page is found by binary search in the commit's sorted
//! file list and rendered straight from it; a rendered page is kept, since a commit
//! never changes (a repository of 100,000 files is listed by 100 requests, each as cheap
//! as a small one once rendered).

use super::api::{flag, param, readable, served_xet_hash, with_next_link};
use super::error::HfError;
use super::model::{split_parent, CommitView, FileEntry, RepoRef};
use super::{Ctx, HfState};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderMap};
use serde::Serialize;
use serde_json::{json, Value};
use std::ops::Bound;
use std::sync::Arc;

/// Entries per tree page; the client follows `Link: rel="next"`.
const TREE_PAGE: usize = 1000;

/// A rendered page of a listing (a tree, a commit history), and where the next page
/// starts when more follow: kept by what it was rendered from, which never changes.
#[derive(Debug)]
pub struct ListPage {
    pub body: Bytes,
    pub more_after: Option<String>,
    /// How long the page may be kept: `None` for a page of something immutable (its
    /// key names the commit), the mutable TTL for one that follows moving refs.
    pub kept_for: Option<std::time::Duration>,
}

/// A kept page's lifetime is its own (`ListPage::kept_for`).
pub struct KeptFor;

impl moka::Expiry<String, Arc<ListPage>> for KeptFor {
    fn expire_after_create(
        &self,
        _: &String,
        page: &Arc<ListPage>,
        _: std::time::Instant,
    ) -> Option<std::time::Duration> {
        page.kept_for
    }
}

impl ListPage {
    pub fn weight(&self) -> usize {
        self.body.len() + self.more_after.as_ref().map_or(0, String::len) + 64
    }
}

/// One entry of a listing, borrowed from the commit.
enum Entry<'a> {
    Dir { path: &'a str, oid: &'a str },
    File(&'a FileEntry),
}

impl Entry<'_> {
    #[cfg(test)]
    fn path(&self) -> &str {
        match self {
            Entry::Dir { path, .. } => path,
            Entry::File(f) => &f.path,
        }
    }
}

/// An entry as the Hub's tree and paths-info answers give it.
#[derive(Serialize)]
struct Listed<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    oid: &'a str,
    size: u64,
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    lfs: Option<ListedLfs<'a>>,
    #[serde(rename = "xetHash", skip_serializing_if = "Option::is_none")]
    xet_hash: Option<&'a str>,
    #[serde(rename = "lastCommit", skip_serializing_if = "Option::is_none")]
    last_commit: Option<Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListedLfs<'a> {
    oid: &'a str,
    size: u64,
    pointer_size: usize,
}

/// The entry as listed, and whether that answer is final: a file whose Xet data this
/// store does not hold (yet) is listed without its Xet hash, which a later import may
/// change, so such a page is not kept.
async fn listed<'a>(
    hf: &HfState,
    repo: &RepoRef,
    view: &Arc<CommitView>,
    entry: Entry<'a>,
    expand: bool,
) -> Result<(Listed<'a>, bool), HfError> {
    let (mut item, last) = match entry {
        Entry::Dir { path, oid } => (
            Listed {
                kind: "directory",
                oid,
                size: 0,
                path,
                lfs: None,
                xet_hash: None,
                last_commit: None,
            },
            true,
        ),
        Entry::File(f) => {
            let xet_hash = served_xet_hash(hf, f).await?;
            let listed = Listed {
                kind: "file",
                oid: &f.oid,
                size: f.size,
                path: &f.path,
                lfs: f.lfs.then(|| ListedLfs {
                    oid: &f.sha256,
                    size: f.size,
                    pointer_size: f.pointer_size(),
                }),
                xet_hash,
                last_commit: None,
            };
            (listed, f.xet_hash.is_none() || xet_hash.is_some())
        }
    };
    if expand {
        item.last_commit = Some(last_commit(hf, repo, view, item.path, item.oid).await);
    }
    Ok((item, last))
}

pub(super) fn json_bytes(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// One page of the entries under `path` (its direct children, or all below it when
/// `recursive`) after the path `after`, in path order, at most `limit`; whether more
/// follow. It reads only as far as the page: the commit's files are sorted by path, so
/// the page starts at a binary search, and a subdirectory's files are skipped in one
/// jump when not `recursive`.
fn entries_page<'a>(
    view: &'a CommitView,
    path: &str,
    recursive: bool,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<Entry<'a>>, bool), HfError> {
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
            out.push(Entry::Dir { path: d, oid });
        } else {
            let i = file.expect("compared");
            out.push(Entry::File(&files[i]));
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
    // `lastCommit` walks the history, which retention may cut: it starts a new
    // generation of refs.json (as the commit cache is keyed).
    let generation = if expand {
        hf.repos.refs(repo).await?.generation
    } else {
        0
    };
    let key = format!(
        "tree|{}|{}|{generation}|{path}|{recursive}|{expand}|{}",
        repo.key_dir(),
        view.commit.id,
        after.unwrap_or_default()
    );
    let page = match hf.list_pages.get(&key).await {
        Some(page) => page,
        None => {
            let (entries, more) = entries_page(&view, path, recursive, after, TREE_PAGE)?;
            let mut items = Vec::with_capacity(entries.len());
            let mut lasting = true;
            for entry in entries {
                let (item, last) = listed(hf, repo, &view, entry, expand).await?;
                lasting &= last;
                items.push(item);
            }
            let page = Arc::new(ListPage {
                body: serde_json::to_vec(&items).expect("serializable").into(),
                more_after: items.last().filter(|_| more).map(|i| i.path.to_string()),
                kept_for: None,
            });
            if lasting {
                hf.list_pages.insert(key, page.clone()).await;
            }
            page
        }
    };
    let next = page.more_after.as_ref().map(|last| {
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
            percent_encoding::utf8_percent_encode(last, percent_encoding::NON_ALPHANUMERIC)
        )
    });
    Ok(with_next_link(json_bytes(page.body.clone()), next))
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
    for p in &paths {
        let p = p.trim_matches('/');
        let entry = match (view.file(p), view.dirs.get_key_value(p)) {
            (Some(f), _) => Entry::File(f),
            (None, Some((path, oid))) => Entry::Dir { path, oid },
            (None, None) => continue,
        };
        out.push(listed(hf, repo, &view, entry, expand).await?.0);
    }
    Ok(json_bytes(
        serde_json::to_vec(&out).expect("serializable").into(),
    ))
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
                        got.extend(page.iter().map(|e| e.path().to_string()));
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
