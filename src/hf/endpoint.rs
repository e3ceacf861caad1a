//! Every Hub request as one typed value, parsed from the raw (percent-encoded) path:
//! revisions such as `refs%2Fpr%2F1` and tree paths such as `a%2Fb` are split first and
//! decoded after, so an encoded `/` never becomes a separator.

use super::error::HfError;
use super::model::{is_valid_path, RefKind, RepoRef, RepoType};
use crate::auth::{Action, Permission};
use http::Method;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefOp {
    Create,
    Delete,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    WhoAmI,
    List {
        kind: RepoType,
    },
    CreateRepo,
    /// `DELETE /api/repos/delete`: the repository is named in the body.
    DeleteRepo,
    ValidateYaml,
    RepoInfo {
        repo: RepoRef,
        rev: Option<String>,
    },
    Tree {
        repo: RepoRef,
        rev: String,
        path: String,
    },
    PathsInfo {
        repo: RepoRef,
        rev: String,
    },
    Refs {
        repo: RepoRef,
    },
    Commits {
        repo: RepoRef,
        rev: String,
    },
    Preupload {
        repo: RepoRef,
        rev: String,
    },
    Commit {
        repo: RepoRef,
        rev: String,
    },
    /// `path` names the branch or tag, except when creating a tag: then it is the
    /// revision tagged (the tag's name is in the body).
    Ref {
        repo: RepoRef,
        kind: RefKind,
        op: RefOp,
        path: String,
    },
    /// Replaces the branch's history by one commit of its head's files.
    SuperSquash {
        repo: RepoRef,
        branch: String,
    },
    /// A CAS access token for the repository (`xet-read-token` / `xet-write-token`).
    XetToken {
        repo: RepoRef,
        write: bool,
    },
    /// `POST /v1/telemetry`: hf_xet reports transfer statistics to the Hub's root;
    /// accepted and dropped.
    XetTelemetry,
    LfsBatch {
        repo: RepoRef,
    },
    LfsVerify {
        repo: RepoRef,
    },
    /// The signed, self-authorizing upload URL handed out by the LFS batch.
    LfsUpload {
        oid: String,
    },
    Resolve {
        repo: RepoRef,
        rev: String,
        path: String,
        head: bool,
    },
}

const API_MARKERS: [&str; 12] = [
    "revision",
    "tree",
    "paths-info",
    "refs",
    "commits",
    "preupload",
    "commit",
    "branch",
    "tag",
    "super-squash",
    "xet-write-token",
    "xet-read-token",
];

fn decode(segment: &str) -> Result<String, HfError> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| HfError::bad_request("path is not valid UTF-8"))
}

/// `refs/pr/1` may arrive encoded as one segment or raw as three.
fn take_rev(segments: &[&str]) -> Result<(String, usize), HfError> {
    let first = segments
        .first()
        .ok_or_else(|| HfError::bad_request("missing revision"))?;
    if *first == "refs" && segments.len() >= 3 {
        return Ok((
            format!("refs/{}/{}", decode(segments[1])?, decode(segments[2])?),
            3,
        ));
    }
    Ok((decode(first)?, 1))
}

fn join_path(segments: &[&str]) -> Result<String, HfError> {
    let parts = segments
        .iter()
        .map(|s| decode(s))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(parts.join("/"))
}

fn repo(kind: RepoType, segments: &[&str]) -> Result<RepoRef, HfError> {
    let id = segments
        .iter()
        .map(|s| decode(s))
        .collect::<Result<Vec<_>, _>>()?
        .join("/");
    RepoRef::new(kind, &id).ok_or_else(|| HfError::repo_not_found(&id))
}

/// Splits `<repo (1 or 2 segments)>/<marker>/<rest>`: a two-segment repo wins when its
/// third segment is a marker.
fn split_repo<'a>(segments: &'a [&'a str], markers: &[&str]) -> Option<(usize, &'a str)> {
    if segments.len() >= 3 && markers.contains(&segments[2]) {
        return Some((2, segments[2]));
    }
    if segments.len() >= 2 && markers.contains(&segments[1]) {
        return Some((1, segments[1]));
    }
    None
}

impl Endpoint {
    /// `path` is the raw path with any `/hf` prefix already removed.
    pub fn parse(method: &Method, path: &str) -> Result<Endpoint, HfError> {
        let not_found = || HfError::not_found(format!("no Hub API route for {path}"));
        let trimmed = path.trim_start_matches('/');
        let segments: Vec<&str> = trimmed.split('/').collect();
        let is = |m: &Method| method == m;

        if trimmed == "v1/telemetry" && is(&Method::POST) {
            return Ok(Endpoint::XetTelemetry);
        }
        if let Some(rest) = trimmed.strip_prefix("api/") {
            let segs: Vec<&str> = rest.split('/').collect();
            match (segs.as_slice(), method.clone()) {
                (["whoami-v2"], _) => return Ok(Endpoint::WhoAmI),
                (["repos", "create"], m) if m == Method::POST => return Ok(Endpoint::CreateRepo),
                (["repos", "delete"], m) if m == Method::DELETE => return Ok(Endpoint::DeleteRepo),
                (["validate-yaml"], m) if m == Method::POST => return Ok(Endpoint::ValidateYaml),
                (["lfs-upload", oid], m) if m == Method::PUT => {
                    return Ok(Endpoint::LfsUpload {
                        oid: oid.to_string(),
                    })
                }
                ([kind], _) if RepoType::from_plural(kind).is_some() => {
                    return Ok(Endpoint::List {
                        kind: RepoType::from_plural(kind).unwrap(),
                    })
                }
                _ => {}
            }
            let kind = segs
                .first()
                .and_then(|k| RepoType::from_plural(k))
                .ok_or_else(not_found)?;
            let segs = &segs[1..];
            let mut markers = API_MARKERS.to_vec();
            markers.push("lfs-verify");
            let Some((n, marker)) = split_repo(segs, &markers) else {
                // /api/models/{repo}
                if (1..=2).contains(&segs.len()) && (is(&Method::GET) || is(&Method::HEAD)) {
                    return Ok(Endpoint::RepoInfo {
                        repo: repo(kind, segs)?,
                        rev: None,
                    });
                }
                return Err(not_found());
            };
            let repo = repo(kind, &segs[..n])?;
            let rest = &segs[n + 1..];
            return match (marker, method) {
                ("revision", m) if m == Method::GET && !rest.is_empty() => Ok(Endpoint::RepoInfo {
                    repo,
                    rev: Some(join_path(rest)?),
                }),
                ("tree", m) if m == Method::GET && !rest.is_empty() => {
                    let (rev, used) = take_rev(rest)?;
                    let path = join_path(&rest[used..])?;
                    if !path.is_empty() && !is_valid_path(&path) {
                        return Err(HfError::bad_request(format!("invalid path `{path}`")));
                    }
                    Ok(Endpoint::Tree { repo, rev, path })
                }
                ("paths-info", m) if m == Method::POST && !rest.is_empty() => {
                    Ok(Endpoint::PathsInfo {
                        repo,
                        rev: join_path(rest)?,
                    })
                }
                ("refs", m) if m == Method::GET && rest.is_empty() => Ok(Endpoint::Refs { repo }),
                ("commits", m) if m == Method::GET && !rest.is_empty() => Ok(Endpoint::Commits {
                    repo,
                    rev: join_path(rest)?,
                }),
                ("preupload", m) if m == Method::POST && !rest.is_empty() => {
                    Ok(Endpoint::Preupload {
                        repo,
                        rev: join_path(rest)?,
                    })
                }
                ("commit", m) if m == Method::POST && !rest.is_empty() => Ok(Endpoint::Commit {
                    repo,
                    rev: join_path(rest)?,
                }),
                (marker @ ("branch" | "tag"), m)
                    if (m == Method::POST || m == Method::DELETE) && !rest.is_empty() =>
                {
                    Ok(Endpoint::Ref {
                        repo,
                        kind: match marker {
                            "branch" => RefKind::Branch,
                            _ => RefKind::Tag,
                        },
                        op: if m == Method::POST {
                            RefOp::Create
                        } else {
                            RefOp::Delete
                        },
                        path: join_path(rest)?,
                    })
                }
                ("super-squash", m) if m == Method::POST && !rest.is_empty() => {
                    Ok(Endpoint::SuperSquash {
                        repo,
                        branch: join_path(rest)?,
                    })
                }
                // The revision (possibly the literal `None`) does not narrow the token:
                // a CAS token grants the repository's content, as commits decide refs.
                ("xet-write-token" | "xet-read-token", m)
                    if m == Method::GET || m == Method::POST =>
                {
                    Ok(Endpoint::XetToken {
                        repo,
                        write: marker == "xet-write-token",
                    })
                }
                ("lfs-verify", m) if m == Method::POST => Ok(Endpoint::LfsVerify { repo }),
                _ => Err(not_found()),
            };
        }

        // Files and git-LFS: /[datasets/|spaces/]{repo}/resolve/{rev}/{path}, /{repo}.git/info/lfs/objects/batch
        let (kind, segs) = match segments.first() {
            Some(&"datasets") => (RepoType::Dataset, &segments[1..]),
            Some(&"spaces") => (RepoType::Space, &segments[1..]),
            _ => (RepoType::Model, &segments[..]),
        };
        if let Some(repo_path) = segs.join("/").strip_suffix(".git/info/lfs/objects/batch") {
            if is(&Method::POST) {
                let repo_segs: Vec<&str> = repo_path.split('/').collect();
                return Ok(Endpoint::LfsBatch {
                    repo: repo(kind, &repo_segs)?,
                });
            }
            return Err(not_found());
        }
        if let Some((n, _)) = split_repo(segs, &["resolve"]) {
            if !(is(&Method::GET) || is(&Method::HEAD)) {
                return Err(not_found());
            }
            let repo = repo(kind, &segs[..n])?;
            let rest = &segs[n + 1..];
            let (rev, used) = take_rev(rest)?;
            let path = join_path(&rest[used..])?;
            if !is_valid_path(&path) {
                return Err(HfError::entry_not_found(
                    &path,
                    "0000000000000000000000000000000000000000",
                ));
            }
            return Ok(Endpoint::Resolve {
                repo,
                rev,
                path,
                head: is(&Method::HEAD),
            });
        }
        Err(not_found())
    }

    /// The repository an endpoint works on, if any.
    pub fn repo(&self) -> Option<&RepoRef> {
        use Endpoint::*;
        match self {
            RepoInfo { repo, .. }
            | Tree { repo, .. }
            | PathsInfo { repo, .. }
            | Refs { repo }
            | Commits { repo, .. }
            | Preupload { repo, .. }
            | Commit { repo, .. }
            | Ref { repo, .. }
            | SuperSquash { repo, .. }
            | XetToken { repo, .. }
            | LfsBatch { repo }
            | LfsVerify { repo }
            | Resolve { repo, .. } => Some(repo),
            WhoAmI
            | List { .. }
            | CreateRepo
            | DeleteRepo
            | ValidateYaml
            | LfsUpload { .. }
            | XetTelemetry => None,
        }
    }

    /// What the request needs, checked before any store or upstream work. Reads name
    /// the repository (its private/gated flags are checked once it is loaded); listings
    /// and `whoami` answer per caller; creating a repository needs a write scope and
    /// deleting one an admin scope, the name in the body checked once read. Squashing a
    /// branch's history needs write, as on the Hub: it is a forced update of a branch,
    /// like deleting one, and the old commits stay stored.
    pub fn permission(&self) -> Permission {
        use Endpoint::*;
        let on = |action, repo: &RepoRef| Permission::On {
            action,
            name: repo.scope_name(),
        };
        match self {
            WhoAmI | List { .. } | ValidateYaml | XetTelemetry | LfsUpload { .. } => {
                Permission::None
            }
            CreateRepo => Permission::AnyName(Action::Write),
            DeleteRepo => Permission::AnyName(Action::Admin),
            RepoInfo { repo, .. }
            | Tree { repo, .. }
            | PathsInfo { repo, .. }
            | Refs { repo }
            | Commits { repo, .. }
            | Resolve { repo, .. }
            | XetToken { repo, write: false } => on(Action::Read, repo),
            XetToken { repo, write: true } => on(Action::Write, repo),
            Preupload { repo, .. }
            | Commit { repo, .. }
            | Ref { repo, .. }
            | SuperSquash { repo, .. }
            | LfsBatch { repo }
            | LfsVerify { repo } => on(Action::Write, repo),
        }
    }

    pub fn label(&self) -> &'static str {
        use Endpoint::*;
        match self {
            WhoAmI => "hf.whoami",
            List { .. } => "hf.list",
            CreateRepo => "hf.create_repo",
            DeleteRepo => "hf.delete_repo",
            ValidateYaml => "hf.validate_yaml",
            RepoInfo { .. } => "hf.repo_info",
            Tree { .. } => "hf.tree",
            PathsInfo { .. } => "hf.paths_info",
            Refs { .. } => "hf.refs",
            Commits { .. } => "hf.commits",
            Preupload { .. } => "hf.preupload",
            Commit { .. } => "hf.commit",
            Ref { kind, .. } => match kind {
                RefKind::Branch => "hf.branch",
                RefKind::Tag => "hf.tag",
            },
            SuperSquash { .. } => "hf.super_squash",
            XetToken { .. } => "hf.xet_token",
            XetTelemetry => "hf.xet_telemetry",
            LfsBatch { .. } => "hf.lfs_batch",
            LfsVerify { .. } => "hf.lfs_verify",
            LfsUpload { .. } => "hf.lfs_upload",
            Resolve { head: true, .. } => "hf.resolve.head",
            Resolve { head: false, .. } => "hf.resolve.get",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(p: &str) -> Endpoint {
        Endpoint::parse(&Method::GET, p).unwrap()
    }

    fn model(id: &str) -> RepoRef {
        RepoRef::new(RepoType::Model, id).unwrap()
    }

    #[test]
    fn parses_api_routes_with_encoded_revisions_and_paths() {
        assert_eq!(
            get("/api/models/org/m"),
            Endpoint::RepoInfo {
                repo: model("org/m"),
                rev: None
            }
        );
        assert_eq!(
            get("/api/models/gpt2"),
            Endpoint::RepoInfo {
                repo: model("gpt2"),
                rev: None
            }
        );
        assert_eq!(
            get("/api/models/org/m/revision/refs%2Fpr%2F1"),
            Endpoint::RepoInfo {
                repo: model("org/m"),
                rev: Some("refs/pr/1".into())
            }
        );
        assert_eq!(
            get("/api/models/org/m/tree/main/sub%2Fdir"),
            Endpoint::Tree {
                repo: model("org/m"),
                rev: "main".into(),
                path: "sub/dir".into()
            }
        );
        assert_eq!(
            get("/api/models/gpt2/tree/feature%2Fx/a/b"),
            Endpoint::Tree {
                repo: model("gpt2"),
                rev: "feature/x".into(),
                path: "a/b".into()
            }
        );
        assert_eq!(
            get("/api/datasets"),
            Endpoint::List {
                kind: RepoType::Dataset
            }
        );
        // A repo named like a marker.
        assert_eq!(
            get("/api/models/org/tree/tree/main"),
            Endpoint::Tree {
                repo: model("org/tree"),
                rev: "main".into(),
                path: "".into()
            }
        );
    }

    #[test]
    fn parses_deletion_routes_with_their_permissions() {
        let delete = Endpoint::parse(&Method::DELETE, "/api/repos/delete").unwrap();
        assert_eq!(delete, Endpoint::DeleteRepo);
        assert_eq!(delete.permission(), Permission::AnyName(Action::Admin));
        assert!(Endpoint::parse(&Method::GET, "/api/repos/delete").is_err());
        let squash = Endpoint::parse(
            &Method::POST,
            "/api/datasets/org/d/super-squash/feature%2Fx",
        )
        .unwrap();
        let ds = RepoRef::new(RepoType::Dataset, "org/d").unwrap();
        assert_eq!(
            squash,
            Endpoint::SuperSquash {
                repo: ds,
                branch: "feature/x".into()
            }
        );
        assert_eq!(
            squash.permission(),
            Permission::On {
                action: Action::Write,
                name: "datasets/org/d".into()
            }
        );
        assert!(Endpoint::parse(&Method::GET, "/api/models/org/m/super-squash/main").is_err());
        for (method, kind) in [(Method::DELETE, "branch"), (Method::DELETE, "tag")] {
            let e = Endpoint::parse(&method, &format!("/api/models/org/m/{kind}/v1")).unwrap();
            assert!(
                matches!(
                    e,
                    Endpoint::Ref {
                        op: RefOp::Delete,
                        ..
                    }
                ),
                "{e:?}"
            );
        }
    }

    #[test]
    fn parses_file_routes() {
        assert_eq!(
            get("/org/m/resolve/main/sub%20dir/tok%231.json"),
            Endpoint::Resolve {
                repo: model("org/m"),
                rev: "main".into(),
                path: "sub dir/tok#1.json".into(),
                head: false
            }
        );
        assert_eq!(
            get("/gpt2/resolve/refs%2Fpr%2F2/config.json"),
            Endpoint::Resolve {
                repo: model("gpt2"),
                rev: "refs/pr/2".into(),
                path: "config.json".into(),
                head: false
            }
        );
        let ds = RepoRef::new(RepoType::Dataset, "org/d").unwrap();
        assert_eq!(
            get("/datasets/org/d/resolve/main/data/train.csv"),
            Endpoint::Resolve {
                repo: ds.clone(),
                rev: "main".into(),
                path: "data/train.csv".into(),
                head: false
            }
        );
        assert_eq!(
            Endpoint::parse(&Method::POST, "/datasets/org/d.git/info/lfs/objects/batch").unwrap(),
            Endpoint::LfsBatch { repo: ds }
        );
        assert!(Endpoint::parse(&Method::GET, "/org/m/resolve/main/..%2F..%2Fetc").is_err());
        assert!(Endpoint::parse(&Method::GET, "/a/b/c/resolve/main/x").is_err());
    }
}
