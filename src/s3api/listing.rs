//! ListObjects (v1 and v2) over the repositories of a bucket.
//!
//! The keys of a bucket, sorted, are the files of each repository the caller may read,
//! repository after repository: every key of `org/name` starts with `org/name/`, and no
//! such prefix is the prefix of another, so ordering the repositories by that prefix and
//! each repository's files by path (as commits keep them) orders all keys. A page seeks
//! to its start with binary searches and skips whole runs of keys that roll up into one
//! common prefix; a repository whose every key rolls up into the same prefix
//! (`Delimiter=/` at the bucket's top) is not even opened. Pinned keys
//! (`org/name@rev/...`) are listed when the prefix names the revision (`keys.rs`).

use super::keys::{self, RepoAt};
use crate::auth::{Auth, Identity};
use crate::hf::access::{repo_access, RepoAccess};
use crate::hf::model::{CommitView, RepoType};
use crate::hf::repo::Repos;
use crate::hf::HfError;
use base64::Engine as _;
use std::sync::Arc;
use std::time::SystemTime;

/// One listing request, v1 or v2 alike.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Only keys and common prefixes after this (marker, start-after, or a continuation
    /// token's position).
    pub after: Option<String>,
    pub max_keys: u32,
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub key: String,
    pub size: u64,
    /// The sha256 of the content, hex.
    pub sha256: String,
    pub last_modified: SystemTime,
}

#[derive(Clone, Debug, Default)]
pub struct Page {
    pub contents: Vec<Entry>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or common prefix returned: where the next page starts after.
    pub last: Option<String>,
}

/// The revision a repository's keys are read at, opened lazily.
struct Segment {
    at: RepoAt,
    prefix: String,
    /// `None` until asked; then the commit, or `None` inside for a repository the caller
    /// may not read or whose revision does not exist (it has no keys).
    view: Option<Option<Arc<CommitView>>>,
}

/// The sorted keys a listing walks.
pub struct Source<'a> {
    repos: &'a Repos,
    auth: &'a Auth,
    identity: &'a Identity,
    segments: Vec<Segment>,
}

impl<'a> Source<'a> {
    /// The repositories of `kind` whose keys may start with `prefix`.
    pub async fn new(
        repos: &'a Repos,
        auth: &'a Auth,
        identity: &'a Identity,
        kind: RepoType,
        prefix: &str,
    ) -> Result<Source<'a>, HfError> {
        let ats: Vec<RepoAt> = match keys::pinned_scope(kind, prefix) {
            Some(at) => vec![at],
            None => repos
                .list(kind)
                .await?
                .iter()
                .filter_map(|id| {
                    let (org, name) = id.split_once('/')?;
                    keys::parse_repo(kind, org, name)
                })
                .collect(),
        };
        let mut segments: Vec<Segment> = ats
            .into_iter()
            .map(|at| Segment {
                prefix: at.key_prefix(),
                at,
                view: None,
            })
            .filter(|s| s.prefix.starts_with(prefix) || prefix.starts_with(&s.prefix))
            .collect();
        segments.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        segments.dedup_by(|a, b| a.prefix == b.prefix);
        Ok(Source {
            repos,
            auth,
            identity,
            segments,
        })
    }

    /// Whether the caller may read the repository of segment `i`, without opening its
    /// commit.
    async fn visible(&self, i: usize) -> Result<bool, HfError> {
        let repo = &self.segments[i].at.repo;
        let Some(doc) = self.repos.repo(repo).await? else {
            return Ok(false);
        };
        Ok(repo_access(self.auth, self.identity, repo, &doc) == RepoAccess::Granted)
    }

    /// The commit segment `i` lists, opened once.
    async fn view(&mut self, i: usize) -> Result<Option<Arc<CommitView>>, HfError> {
        if let Some(view) = &self.segments[i].view {
            return Ok(view.clone());
        }
        let view = if self.visible(i).await? {
            let at = &self.segments[i].at;
            match self.repos.resolve(&at.repo, at.rev()).await {
                Ok(view) => Some(view),
                Err(e) if e.status == http::StatusCode::NOT_FOUND => None,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        self.segments[i].view = Some(view.clone());
        Ok(view)
    }
}

/// A position in the source: segment, then file index in its commit.
#[derive(Clone, Copy, Debug)]
struct Cursor {
    segment: usize,
    file: usize,
}

enum Item {
    Key(Entry),
    /// Everything from here up to the end of this common prefix rolls up into it.
    Prefix(String),
}

fn entry(prefix: &str, view: &CommitView, file: usize) -> Entry {
    let f = &view.commit.files[file];
    Entry {
        key: format!("{prefix}{}", f.path),
        size: f.size,
        sha256: f.sha256.clone(),
        last_modified: commit_date(view),
    }
}

/// When the revision was committed: the Last-Modified of each of its files.
pub fn commit_date(view: &CommitView) -> SystemTime {
    humantime::parse_rfc3339_weak(&view.commit.date).unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The common prefix `key` rolls up into under `prefix` and `delimiter`, if any.
fn rolled_up(key: &str, prefix: &str, delimiter: Option<&str>) -> Option<String> {
    let d = delimiter?;
    let rest = key.strip_prefix(prefix)?;
    rest.find(d)
        .map(|i| key[..prefix.len() + i + d.len()].to_string())
}

impl Source<'_> {
    /// The first position whose key is at least `target`.
    async fn seek(&mut self, target: &str) -> Result<Cursor, HfError> {
        let i = self
            .segments
            .partition_point(|s| s.prefix.as_str() < target);
        if i > 0 && target.starts_with(&self.segments[i - 1].prefix) {
            let rest = &target[self.segments[i - 1].prefix.len()..];
            let file = match self.view(i - 1).await? {
                Some(view) => view
                    .commit
                    .files
                    .partition_point(|f| f.path.as_str() < rest),
                None => 0,
            };
            return Ok(Cursor {
                segment: i - 1,
                file,
            });
        }
        Ok(Cursor {
            segment: i,
            file: 0,
        })
    }

    /// The first position after every key that starts with `common` (at or after `at`).
    async fn skip_prefix(&mut self, mut at: Cursor, common: &str) -> Result<Cursor, HfError> {
        let Some(segment) = self.segments.get(at.segment) else {
            return Ok(at);
        };
        if segment.prefix.starts_with(common) {
            while self
                .segments
                .get(at.segment)
                .is_some_and(|s| s.prefix.starts_with(common))
            {
                at.segment += 1;
            }
            at.file = 0;
            return Ok(at);
        }
        let rest = &common[segment.prefix.len()..];
        if let Some(view) = self.view(at.segment).await? {
            let files = &view.commit.files;
            at.file = at
                .file
                .max(files.partition_point(|f| f.path.as_str() < rest || f.path.starts_with(rest)));
        }
        Ok(at)
    }

    /// The item at `at` (moving past exhausted segments), or `None` past the prefix.
    async fn item(
        &mut self,
        at: &mut Cursor,
        prefix: &str,
        delimiter: Option<&str>,
    ) -> Result<Option<Item>, HfError> {
        loop {
            let Some(segment) = self.segments.get(at.segment) else {
                return Ok(None);
            };
            let seg_prefix = segment.prefix.clone();
            if !seg_prefix.starts_with(prefix) && !prefix.starts_with(&seg_prefix) {
                return Ok(None);
            }
            // Every key of this repository rolls up into the same prefix: known unopened.
            if seg_prefix.len() > prefix.len() {
                if let Some(common) = rolled_up(&seg_prefix, prefix, delimiter) {
                    if self.visible(at.segment).await? {
                        return Ok(Some(Item::Prefix(common)));
                    }
                    *at = Cursor {
                        segment: at.segment + 1,
                        file: 0,
                    };
                    continue;
                }
            }
            let view = match self.view(at.segment).await? {
                Some(view) if at.file < view.commit.files.len() => view,
                _ => {
                    *at = Cursor {
                        segment: at.segment + 1,
                        file: 0,
                    };
                    continue;
                }
            };
            let e = entry(&seg_prefix, &view, at.file);
            if !e.key.starts_with(prefix) {
                return Ok(None);
            }
            return Ok(Some(match rolled_up(&e.key, prefix, delimiter) {
                Some(common) => Item::Prefix(common),
                None => Item::Key(e),
            }));
        }
    }

    /// One page of the listing.
    pub async fn page(&mut self, req: &Request) -> Result<Page, HfError> {
        let prefix = req.prefix.as_str();
        let delimiter = req.delimiter.as_deref();
        let after = req.after.as_deref();
        let start = match after {
            Some(a) if a > prefix => a,
            _ => prefix,
        };
        let mut at = self.seek(start).await?;
        let mut page = Page::default();
        while let Some(item) = self.item(&mut at, prefix, delimiter).await? {
            let name = match &item {
                Item::Key(e) => e.key.as_str(),
                Item::Prefix(p) => p.as_str(),
            };
            let skipped = after.is_some_and(|a| name <= a);
            if !skipped {
                if page.contents.len() + page.common_prefixes.len() >= req.max_keys as usize {
                    page.truncated = true;
                    break;
                }
                page.last = Some(name.to_string());
            }
            match item {
                Item::Key(e) => {
                    if !skipped {
                        page.contents.push(e);
                    }
                    at.file += 1;
                }
                Item::Prefix(p) => {
                    at = self.skip_prefix(at, &p).await?;
                    if !skipped {
                        page.common_prefixes.push(p);
                    }
                }
            }
        }
        Ok(page)
    }
}

/// The longest continuation token accepted: a key at most `MAX_KEY_LEN` bytes, encoded.
const MAX_TOKEN_LEN: usize = 2 * super::endpoint::MAX_KEY_LEN;

/// A ListObjectsV2 continuation token: the position to continue after, opaque to clients.
pub fn continuation_token(last: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last)
}

/// The position a continuation token stands for; `None` for one this server did not make.
pub fn parse_continuation_token(token: &str) -> Option<String> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    String::from_utf8(bytes)
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= super::endpoint::MAX_KEY_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roll_up_under_the_prefix() {
        assert_eq!(
            rolled_up("org/m/a/b", "org/", Some("/")).as_deref(),
            Some("org/m/")
        );
        assert_eq!(rolled_up("org/m/a/b", "org/m/a/", Some("/")), None);
        assert_eq!(rolled_up("org/m/x", "", None), None);
        assert_eq!(
            rolled_up("org/m/x.bin", "org/m/", Some(".")).as_deref(),
            Some("org/m/x.")
        );
    }

    #[test]
    fn tokens_round_trip_and_refuse_forgeries() {
        let t = continuation_token("org/m/é+ x");
        assert_eq!(parse_continuation_token(&t).as_deref(), Some("org/m/é+ x"));
        assert_eq!(parse_continuation_token("not base64!"), None);
        assert_eq!(parse_continuation_token(""), None);
        assert_eq!(parse_continuation_token(&"A".repeat(5000)), None);
    }
}
