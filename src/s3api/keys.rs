//! Buckets and keys as repository files, both ways.
//!
//! - bucket `models`: model repositories; bucket `datasets`: dataset repositories;
//! - key `<org>/<name>/<path>`: `path` at the default branch (`main`);
//! - key `<org>/<name>@<rev>/<path>`: `path` at `rev`, a branch, a tag or a commit id,
//!   with `/` inside the revision written `%2F` (`org/m@refs%2Fpr%2F1/config.json`), as
//!   the Hub writes it in URLs. `@` is not allowed in repository ids, so the split is
//!   unambiguous.
//!
//! Only `org/name` repositories are served: a legacy one-segment id (`gpt2`) would make
//! `gpt2/config.json` read as the repository `gpt2/config.json`.

use crate::hf::model::{is_commit_id, is_valid_path, is_valid_ref_name, RepoRef, RepoType};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

/// The revision a key without `@<rev>` reads.
pub const DEFAULT_BRANCH: &str = "main";

/// What a revision segment escapes: `/` (it separates key segments) and `%` itself.
const REV_ESCAPE: &AsciiSet = &CONTROLS.add(b'/').add(b'%');

/// The repository kind a bucket holds.
pub fn bucket_kind(bucket: &str) -> Option<RepoType> {
    match bucket {
        "models" => Some(RepoType::Model),
        "datasets" => Some(RepoType::Dataset),
        _ => None,
    }
}

/// The buckets, in ListBuckets order.
pub const BUCKETS: [&str; 2] = ["datasets", "models"];

/// A repository at a revision, as the first two key segments name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoAt {
    pub repo: RepoRef,
    /// `None`: the default branch.
    pub rev: Option<String>,
}

impl RepoAt {
    pub fn rev(&self) -> &str {
        self.rev.as_deref().unwrap_or(DEFAULT_BRANCH)
    }

    /// `org/name/` or `org/name@<rev>/`: what every key of this repository starts with.
    pub fn key_prefix(&self) -> String {
        match &self.rev {
            None => format!("{}/", self.repo.id),
            Some(rev) => format!("{}@{}/", self.repo.id, utf8_percent_encode(rev, REV_ESCAPE)),
        }
    }
}

/// `org` and `name[@rev]` to a repository; `None` when they name none that could exist.
pub fn parse_repo(kind: RepoType, org: &str, name_rev: &str) -> Option<RepoAt> {
    let (name, rev) = match name_rev.split_once('@') {
        Some((name, raw)) => {
            let rev = percent_decode_str(raw).decode_utf8().ok()?.into_owned();
            (is_commit_id(&rev) || is_valid_ref_name(&rev)).then_some(())?;
            (name, Some(rev))
        }
        None => (name_rev, None),
    };
    let repo = RepoRef::new(kind, &format!("{org}/{name}"))?;
    Some(RepoAt { repo, rev })
}

/// A key naming one file: `None` (answered NoSuchKey) for a key that names no repository
/// or whose path is not one a repository can hold (`..`, empty segments).
pub fn parse_file_key(kind: RepoType, key: &str) -> Option<(RepoAt, String)> {
    let mut parts = key.splitn(3, '/');
    let (org, name_rev, path) = (parts.next()?, parts.next()?, parts.next()?);
    let at = parse_repo(kind, org, name_rev)?;
    is_valid_path(path).then(|| (at, path.to_string()))
}

/// When a listing prefix names a revision (`org/name@rev` followed by `/` or nothing),
/// the repository at that revision: pinned keys are listed only under such a prefix.
pub fn pinned_scope(kind: RepoType, prefix: &str) -> Option<RepoAt> {
    let mut parts = prefix.splitn(3, '/');
    let (org, name_rev) = (parts.next()?, parts.next()?);
    if !name_rev.contains('@') {
        return None;
    }
    parse_repo(kind, org, name_rev)
}

/// The repository a listing prefix is inside or names whole (`org/name`, `org/name/...`,
/// `org/name@rev...`): the one repository pull-through may bring in for that listing.
pub fn prefix_repo(kind: RepoType, prefix: &str) -> Option<RepoAt> {
    let mut parts = prefix.splitn(3, '/');
    let (org, name_rev) = (parts.next()?, parts.next()?);
    parse_repo(kind, org, name_rev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_a_file_at_a_revision() {
        let (at, path) = parse_file_key(RepoType::Model, "org/tiny/sub/w.bin").unwrap();
        assert_eq!(
            (at.repo.id.as_str(), at.rev(), path.as_str()),
            ("org/tiny", "main", "sub/w.bin")
        );
        assert_eq!(at.key_prefix(), "org/tiny/");
        let (at, path) = parse_file_key(RepoType::Model, "org/tiny@refs%2Fpr%2F1/a").unwrap();
        assert_eq!(
            (at.rev(), path.as_str(), at.key_prefix()),
            ("refs/pr/1", "a", "org/tiny@refs%2Fpr%2F1/".to_string())
        );
        let commit = "a".repeat(40);
        let (at, _) = parse_file_key(RepoType::Dataset, &format!("o/d@{commit}/x")).unwrap();
        assert_eq!(
            (at.repo.kind, at.rev()),
            (RepoType::Dataset, commit.as_str())
        );
    }

    #[test]
    fn a_prefix_names_at_most_one_repository() {
        let name = |p| prefix_repo(RepoType::Model, p).map(|at| at.key_prefix());
        assert_eq!(name("org/tiny/"), Some("org/tiny/".into()));
        assert_eq!(name("org/tiny/sub/w"), Some("org/tiny/".into()));
        assert_eq!(name("org/tiny"), Some("org/tiny/".into()));
        assert_eq!(name("org/tiny@v1/"), Some("org/tiny@v1/".into()));
        for none in ["", "org", "org/", "org//x", "../x/y"] {
            assert_eq!(name(none), None, "{none}");
        }
    }

    #[test]
    fn keys_that_name_no_file_are_refused() {
        for bad in [
            "org/tiny",
            "org/tiny/",
            "org/tiny//x",
            "org/tiny/../x",
            "org/tiny/a/./b",
            "org/tiny/a\\b",
            "org/ti--ny/x",
            "org/tiny@/x",
            "org/tiny@../x",
            "org/tiny@a%2F..%2Fb/x",
            "org/tiny@v1@v2/x",
            "../tiny/x",
            "org",
        ] {
            assert_eq!(parse_file_key(RepoType::Model, bad), None, "{bad}");
        }
    }

    #[test]
    fn only_prefixes_naming_a_revision_are_pinned() {
        let at = pinned_scope(RepoType::Model, "org/tiny@v1").unwrap();
        assert_eq!((at.repo.id.as_str(), at.rev()), ("org/tiny", "v1"));
        assert!(pinned_scope(RepoType::Model, "org/tiny@v1/sub/").is_some());
        for plain in ["", "org", "org/", "org/tiny", "org/tiny/", "org/tiny@"] {
            assert_eq!(pinned_scope(RepoType::Model, plain), None, "{plain}");
        }
        assert_eq!(bucket_kind("models"), Some(RepoType::Model));
        assert_eq!(bucket_kind("spaces"), None);
    }
}
