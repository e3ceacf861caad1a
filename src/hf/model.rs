//! What a Hugging Face repository is here: its id, type, refs and commits.
//!
//! ```text
//! hf/<models|datasets|spaces>.json                      list of repo ids (for /api/models)
//! hf/<models|datasets|spaces>/<org>--<name>/repo.json   RepoDoc: type, visibility, creation
//! hf/<...>/<org>--<name>/refs.json                      RefsDoc: branches, tags, refs/pr/N
//! hf/<...>/<org>--<name>/commits/<40 hex>.json          Commit: parents, message, every file
//!                                                       (large file lists in blobs: commit_doc.rs)
//! ```
//! The Hub forbids `--` in repo ids, so `org--name` (as in the huggingface_hub cache) is
//! unambiguous. File bodies are blobs by sha256; a commit lists each file with its git
//! oid and whether it is LFS, so oids, pointers and commit ids stay git-faithful.

use super::git;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RepoType {
    Model,
    Dataset,
    Space,
}

impl RepoType {
    pub fn plural(self) -> &'static str {
        match self {
            RepoType::Model => "models",
            RepoType::Dataset => "datasets",
            RepoType::Space => "spaces",
        }
    }

    /// The prefix of file URLs: `""`, `datasets/`, `spaces/`.
    pub fn url_prefix(self) -> &'static str {
        match self {
            RepoType::Model => "",
            RepoType::Dataset => "datasets/",
            RepoType::Space => "spaces/",
        }
    }

    pub fn from_plural(s: &str) -> Option<RepoType> {
        match s {
            "models" => Some(RepoType::Model),
            "datasets" => Some(RepoType::Dataset),
            "spaces" => Some(RepoType::Space),
            _ => None,
        }
    }

    pub fn from_singular(s: &str) -> Option<RepoType> {
        match s {
            "model" => Some(RepoType::Model),
            "dataset" => Some(RepoType::Dataset),
            "space" => Some(RepoType::Space),
            _ => None,
        }
    }
}

/// A validated repo id: `name` (legacy) or `namespace/name`, each `[\w\-.]{1,96}`,
/// no `--` or `..`, not starting or ending with `-` or `.`.
pub fn is_valid_repo_id(id: &str) -> bool {
    let segments: Vec<&str> = id.split('/').collect();
    (1..=2).contains(&segments.len())
        && segments.iter().all(|s| {
            (1..=96).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
                && !s.starts_with(['-', '.'])
                && !s.ends_with(['-', '.'])
                && !s.contains("--")
                && !s.contains("..")
        })
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RepoRef {
    pub kind: RepoType,
    pub id: String,
}

impl RepoRef {
    pub fn new(kind: RepoType, id: &str) -> Option<RepoRef> {
        is_valid_repo_id(id).then(|| RepoRef {
            kind,
            id: id.to_string(),
        })
    }

    pub fn key_dir(&self) -> String {
        crate::store::layout::hf_repo_dir(self.kind.plural(), &self.id)
    }

    /// The name scopes are checked against: `models/org/m`, `datasets/org/d`,
    /// `spaces/org/s`. The kind is always spelled out, so the model `datasets/x` and the
    /// dataset `x` are two names; `Scope` reads a config prefix without a kind as a model's.
    pub fn scope_name(&self) -> String {
        format!("{}/{}", self.kind.plural(), self.id)
    }

    pub fn author(&self) -> Option<&str> {
        self.id.split_once('/').map(|(a, _)| a)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RepoDoc {
    pub id: String,
    pub kind: RepoType,
    #[serde(default)]
    pub private: bool,
    /// Listed and described to everyone, but files only for tokens with a read scope.
    #[serde(default)]
    pub gated: bool,
    pub created_at: String,
    /// Made by pull-through: its refs follow the upstream's. Repositories made here (by
    /// upload or import) never take refs from an upstream.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mirrored: bool,
}

/// The two kinds of named ref a client creates and deletes: to the refs document both
/// are a name pointing at a commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefKind {
    Branch,
    Tag,
}

impl RefKind {
    pub fn noun(self) -> &'static str {
        match self {
            RefKind::Branch => "branch",
            RefKind::Tag => "tag",
        }
    }

    pub fn names(self, refs: &mut RefsDoc) -> &mut BTreeMap<String, String> {
        match self {
            RefKind::Branch => &mut refs.branches,
            RefKind::Tag => &mut refs.tags,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefsDoc {
    #[serde(default)]
    pub branches: BTreeMap<String, String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// `refs/pr/<n>`
    #[serde(default)]
    pub prs: BTreeMap<u64, String>,
    /// Changes whenever commits a process may have cached stop existing (the repository
    /// made again under its name, retention cutting its history): cached commits are
    /// keyed by it, so every replica reads them again. Milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl RefsDoc {
    /// The refs of a repository made now: no names yet, a new generation.
    pub fn new() -> RefsDoc {
        RefsDoc {
            generation: RefsDoc::next_generation(0),
            ..RefsDoc::default()
        }
    }

    /// A generation after `current`: the time now, or one more when the clock is behind.
    pub fn next_generation(current: u64) -> u64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        now.max(current + 1)
    }

    /// A branch, tag or `refs/...` name to its commit (not 40-hex ids: callers check those).
    pub fn lookup(&self, rev: &str) -> Option<&String> {
        if let Some(b) = rev.strip_prefix("refs/heads/") {
            return self.branches.get(b);
        }
        if let Some(t) = rev.strip_prefix("refs/tags/") {
            return self.tags.get(t);
        }
        if let Some(n) = rev.strip_prefix("refs/pr/") {
            return n.parse().ok().and_then(|n: u64| self.prs.get(&n));
        }
        self.branches.get(rev).or_else(|| self.tags.get(rev))
    }
}

pub fn is_commit_id(rev: &str) -> bool {
    rev.len() == 40
        && rev
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A branch or tag name: no path tricks, nothing git would refuse.
pub fn is_valid_ref_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with(['/', '.', '-'])
        && !name.ends_with(['/', '.'])
        && !name.contains("..")
        && !name.contains("//")
        && !is_commit_id(name)
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    /// sha256 of the content: the blob's key, and the LFS oid.
    pub sha256: String,
    /// git blob oid: of the content for regular files, of the pointer for LFS files.
    pub oid: String,
    pub lfs: bool,
    /// The Xet file hash (API hex) when the content was uploaded through Xet, looked up
    /// once when the commit was made: resolve and tree advertise Xet from it without a
    /// store read. Commits from before Xet, and from elsewhere, have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xet_hash: Option<String>,
}

impl FileEntry {
    pub fn pointer_size(&self) -> usize {
        git::lfs_pointer(&self.sha256, self.size).len()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Commit {
    pub id: String,
    pub parents: Vec<String>,
    pub title: String,
    pub message: String,
    pub author: String,
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, the only form huggingface_hub parses.
    pub date: String,
    /// Sorted by path.
    pub files: Vec<FileEntry>,
    /// `architectures` and `model_type` from config.json, for listings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
}

/// What a repository list shows of a commit: known without its file list.
#[derive(Clone, Debug)]
pub struct CommitSummary {
    pub id: String,
    pub date: String,
    pub config: Option<serde_json::Value>,
    pub files: usize,
    /// The sum of its files' sizes (the Hub's `usedStorage`).
    pub used_storage: u64,
}

impl Commit {
    pub fn summary(&self) -> CommitSummary {
        CommitSummary {
            id: self.id.clone(),
            date: self.date.clone(),
            config: self.config.clone(),
            files: self.files.len(),
            used_storage: self.files.iter().map(|f| f.size).sum(),
        }
    }
}

/// A commit with its directory tree worked out (directory path -> tree oid).
#[derive(Debug)]
pub struct CommitView {
    pub commit: Commit,
    pub dirs: BTreeMap<String, String>,
    pub root_tree: String,
    /// The sha256 of each blob holding a page of a large commit's file list
    /// (`hf/commit_doc.rs`): referenced by the commit as much as its files are.
    pub pages: Vec<String>,
}

impl CommitView {
    /// Roughly what the view holds in memory (strings and per-entry overhead), for
    /// caches bounded by bytes.
    pub fn approximate_bytes(&self) -> usize {
        let c = &self.commit;
        let files: usize = c
            .files
            .iter()
            .map(|f| f.path.len() + f.sha256.len() + f.oid.len() + 64)
            .sum();
        let dirs: usize = self.dirs.iter().map(|(k, v)| k.len() + v.len() + 64).sum();
        let text = c.id.len() + c.title.len() + c.message.len() + c.author.len() + c.date.len();
        let config = c.config.as_ref().map_or(0, |v| v.to_string().len());
        256 + files + dirs + text + config + c.parents.iter().map(String::len).sum::<usize>()
    }

    pub fn new(commit: Commit) -> CommitView {
        let (dirs, root_tree) = tree_oids(&commit.files);
        CommitView {
            commit,
            dirs,
            root_tree,
            pages: Vec::new(),
        }
    }

    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.commit
            .files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.commit.files[i])
    }
}

/// Tree oids of every directory (bottom-up) and of the root.
pub fn tree_oids(files: &[FileEntry]) -> (BTreeMap<String, String>, String) {
    // directory -> (child name, oid, is_dir)
    let mut children: BTreeMap<String, Vec<(String, String, bool)>> = BTreeMap::new();
    children.insert(String::new(), Vec::new());
    for f in files {
        let (dir, name) = split_parent(&f.path);
        children
            .entry(dir.to_string())
            .or_default()
            .push((name.to_string(), f.oid.clone(), false));
        // Make sure every ancestor exists.
        let mut d = dir;
        while !d.is_empty() {
            let (parent, _) = split_parent(d);
            children.entry(parent.to_string()).or_default();
            d = parent;
        }
    }
    let mut oids: BTreeMap<String, String> = BTreeMap::new();
    // Deepest directories first.
    let mut dirs: Vec<String> = children.keys().cloned().collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count() + usize::from(!d.is_empty())));
    for dir in dirs {
        let mut entries: Vec<(String, String, bool)> =
            children.get(&dir).cloned().unwrap_or_default();
        for (sub, oid) in oids.iter() {
            if !sub.is_empty() && split_parent(sub).0 == dir {
                entries.push((split_parent(sub).1.to_string(), oid.clone(), true));
            }
        }
        let mut tree: Vec<git::TreeEntry<'_>> = entries
            .iter()
            .map(|(name, oid, is_dir)| git::TreeEntry {
                name,
                oid,
                is_dir: *is_dir,
            })
            .collect();
        let oid = git::tree_oid(&mut tree);
        oids.insert(dir, oid);
    }
    let root = oids.remove("").expect("root tree");
    (oids, root)
}

/// 64-bit FNV-1a: a hash that never changes between versions or machines, for ids and
/// boundaries that must stay where they were.
pub fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `a/b/c` -> (`a/b`, `c`); `c` -> (``, `c`)
pub fn split_parent(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

/// A path inside a repo: relative, no empty, `.` or `..` segments, no backslashes.
pub fn is_valid_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 1024
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
        && !path.chars().any(|c| c == '\\' || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, oid: &str) -> FileEntry {
        FileEntry {
            path: path.into(),
            size: 1,
            sha256: "0".repeat(64),
            oid: oid.into(),
            lfs: false,
            xet_hash: None,
        }
    }

    #[test]
    fn repo_ids_follow_the_hub_rules() {
        for ok in ["gpt2", "org/model", "Org_1/model.v2-final"] {
            assert!(is_valid_repo_id(ok), "{ok}");
        }
        for bad in [
            "", "a/b/c", "org/--x", "org/a--b", "org/a..b", "../x", "org/", "-x", "a b",
        ] {
            assert!(!is_valid_repo_id(bad), "{bad}");
        }
    }

    #[test]
    fn trees_hash_like_git() {
        // git: hello.txt + sub/hello.txt, both "hello\n"
        let hello = "ce013625030ba8dba906f756967f9e9ca394464a";
        let (dirs, root) = tree_oids(&[file("hello.txt", hello), file("sub/hello.txt", hello)]);
        assert_eq!(dirs["sub"], "aaa96ced2d9a1c8e72c56b253a0e2fe78393feb7");
        assert_eq!(root, "aa8d2a2305dec630ed6f30b068bb2669a9c32857");
    }

    #[test]
    fn refs_resolve_names() {
        let mut refs = RefsDoc::default();
        refs.branches.insert("main".into(), "a".repeat(40));
        refs.tags.insert("v1".into(), "b".repeat(40));
        refs.prs.insert(1, "c".repeat(40));
        assert_eq!(refs.lookup("main").unwrap(), &"a".repeat(40));
        assert_eq!(refs.lookup("refs/heads/main").unwrap(), &"a".repeat(40));
        assert_eq!(refs.lookup("v1").unwrap(), &"b".repeat(40));
        assert_eq!(refs.lookup("refs/pr/1").unwrap(), &"c".repeat(40));
        assert!(refs.lookup("nope").is_none());
    }
}
