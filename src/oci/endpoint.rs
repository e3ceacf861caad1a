//! Every registry request as one typed value, parsed from the raw path in one place.
//! Names have many segments, so the path is matched from the right.

use super::error::{Code, OciError, Result};
use super::names::{canonical, is_valid_tag};
use crate::auth::Action;
use crate::digest::Digest;
use http::Method;

/// A repository as the request named it, and where it is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repo {
    /// The name in the request path, for URLs written back to this client.
    pub path: String,
    /// `<host>/<path>`: the storage key and the name scopes are checked against.
    pub name: String,
}

impl Repo {
    /// The name for URLs this response hands back (`Location`): the request's own,
    /// unless only `?ns=` made it mean this repository. Clients follow such URLs
    /// without re-adding `ns`, so those carry the host-prefixed name instead.
    pub fn url_name(&self, default_host: &str) -> &str {
        match canonical(&self.path, None, default_host) {
            Ok(name) if name == self.name => &self.path,
            _ => &self.name,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::Tag(t) => f.write_str(t),
            Reference::Digest(d) => write!(f, "{d}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags { repo: Repo },
    /// `/v2/<name>/manifests/<reference>`
    Manifest { repo: Repo, reference: Reference },
    /// `/v2/<name>/blobs/<digest>`
    Blob { repo: Repo, digest: Digest },
    /// `/v2/<name>/blobs/uploads/`
    UploadStart { repo: Repo },
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload { repo: Repo, id: String },
    /// `/v2/<name>/referrers/<digest>`
    Referrers { repo: Repo, digest: Digest },
}

pub fn parse_digest(text: &str) -> Result<Digest> {
    text.parse()
        .map_err(|e| OciError::new(Code::DigestInvalid, format!("`{text}`: {e}")))
}

/// Upload ids are 32 lowercase hex characters; anything else names no session.
pub fn is_upload_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Endpoint {
    /// `path` is the request path, `ns` containerd's upstream parameter.
    pub fn parse(path: &str, ns: Option<&str>, default_host: &str) -> Result<Endpoint> {
        let unknown = || {
            OciError::new(Code::NameUnknown, format!("no registry endpoint at {path}"))
                .with_status(http::StatusCode::NOT_FOUND)
        };
        let rest = match path.strip_prefix("/v2") {
            Some("") | Some("/") => return Ok(Endpoint::Base),
            Some(rest) => rest.strip_prefix('/').ok_or_else(unknown)?,
            None => return Err(unknown()),
        };
        if rest == "_catalog" {
            return Ok(Endpoint::Catalog);
        }
        let segs: Vec<&str> = rest.split('/').collect();
        let n = segs.len();
        let repo = |count: usize| -> Result<Repo> {
            let raw = segs[..count].join("/");
            let name = canonical(&raw, ns, default_host)
                .map_err(|e| OciError::new(Code::NameInvalid, e.0))?;
            Ok(Repo { path: raw, name })
        };
        let tail = |k: usize| -> &str {
            if n >= k {
                segs[n - k]
            } else {
                ""
            }
        };

        if n >= 3 && tail(2) == "tags" && tail(1) == "list" {
            return Ok(Endpoint::Tags { repo: repo(n - 2)? });
        }
        if n >= 3 && tail(2) == "manifests" {
            let text = tail(1);
            let reference = if text.contains(':') {
                Reference::Digest(parse_digest(text)?)
            } else if is_valid_tag(text) {
                Reference::Tag(text.to_string())
            } else {
                return Err(OciError::new(
                    Code::TagInvalid,
                    format!("`{text}` is neither a tag ([A-Za-z0-9_][A-Za-z0-9._-]{{0,127}}) nor a digest"),
                ));
            };
            return Ok(Endpoint::Manifest {
                repo: repo(n - 2)?,
                reference,
            });
        }
        // `blobs/uploads/` (trailing slash) and `blobs/uploads`
        if n >= 4 && tail(3) == "blobs" && tail(2) == "uploads" && tail(1).is_empty() {
            return Ok(Endpoint::UploadStart { repo: repo(n - 3)? });
        }
        if n >= 3 && tail(2) == "blobs" && tail(1) == "uploads" {
            return Ok(Endpoint::UploadStart { repo: repo(n - 2)? });
        }
        if n >= 4 && tail(3) == "blobs" && tail(2) == "uploads" {
            let id = tail(1);
            if !is_upload_id(id) {
                return Err(OciError::new(
                    Code::BlobUploadUnknown,
                    format!("no upload session `{id}`"),
                ));
            }
            return Ok(Endpoint::Upload {
                repo: repo(n - 3)?,
                id: id.to_string(),
            });
        }
        if n >= 3 && tail(2) == "blobs" {
            return Ok(Endpoint::Blob {
                digest: parse_digest(tail(1))?,
                repo: repo(n - 2)?,
            });
        }
        if n >= 3 && tail(2) == "referrers" {
            return Ok(Endpoint::Referrers {
                digest: parse_digest(tail(1))?,
                repo: repo(n - 2)?,
            });
        }
        Err(unknown())
    }

    pub fn repo(&self) -> Option<&Repo> {
        match self {
            Endpoint::Base | Endpoint::Catalog => None,
            Endpoint::Tags { repo }
            | Endpoint::Manifest { repo, .. }
            | Endpoint::Blob { repo, .. }
            | Endpoint::UploadStart { repo }
            | Endpoint::Upload { repo, .. }
            | Endpoint::Referrers { repo, .. } => Some(repo),
        }
    }

    /// The methods this endpoint answers, for `Allow` on a 405.
    pub fn allowed(&self) -> &'static str {
        match self {
            Endpoint::Base => "GET, HEAD",
            Endpoint::Catalog | Endpoint::Tags { .. } | Endpoint::Referrers { .. } => "GET",
            Endpoint::Manifest { .. } => "GET, HEAD, PUT, DELETE",
            Endpoint::Blob { .. } => "GET, HEAD, DELETE",
            Endpoint::UploadStart { .. } => "POST",
            Endpoint::Upload { .. } => "GET, PATCH, PUT, DELETE",
        }
    }

    /// What a method on this endpoint needs; `None` if the method is not served here.
    /// Base and catalog need no scope of their own (the catalog is filtered per name).
    pub fn action(&self, method: &Method) -> Option<Action> {
        let read = method == Method::GET || method == Method::HEAD;
        match self {
            Endpoint::Base => read.then_some(Action::Read),
            Endpoint::Catalog | Endpoint::Tags { .. } | Endpoint::Referrers { .. } => {
                (method == Method::GET).then_some(Action::Read)
            }
            Endpoint::Manifest { .. } | Endpoint::Blob { .. } => match *method {
                Method::GET | Method::HEAD => Some(Action::Read),
                Method::PUT if matches!(self, Endpoint::Manifest { .. }) => Some(Action::Write),
                Method::DELETE => Some(Action::Admin),
                _ => None,
            },
            Endpoint::UploadStart { .. } => (method == Method::POST).then_some(Action::Write),
            Endpoint::Upload { .. } => matches!(
                *method,
                Method::GET | Method::PATCH | Method::PUT | Method::DELETE
            )
            .then_some(Action::Write),
        }
    }

    pub fn label(&self, method: &Method) -> &'static str {
        let head = method == Method::HEAD;
        match self {
            Endpoint::Base => "oci.base",
            Endpoint::Catalog => "oci.catalog",
            Endpoint::Tags { .. } => "oci.tags",
            Endpoint::Referrers { .. } => "oci.referrers",
            Endpoint::Manifest { .. } => match *method {
                Method::PUT => "oci.manifest.put",
                Method::DELETE => "oci.manifest.delete",
                _ if head => "oci.manifest.head",
                _ => "oci.manifest.get",
            },
            Endpoint::Blob { .. } => match *method {
                Method::DELETE => "oci.blob.delete",
                _ if head => "oci.blob.head",
                _ => "oci.blob.get",
            },
            Endpoint::UploadStart { .. } => "oci.upload.start",
            Endpoint::Upload { .. } => match *method {
                Method::PATCH => "oci.upload.patch",
                Method::PUT => "oci.upload.finish",
                Method::DELETE => "oci.upload.cancel",
                _ => "oci.upload.status",
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(path: &str) -> Result<Endpoint> {
        Endpoint::parse(path, None, "docker.io")
    }

    #[test]
    fn parses_multi_segment_names_from_the_right() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(parse("/v2/").unwrap(), Endpoint::Base);
        assert_eq!(parse("/v2").unwrap(), Endpoint::Base);
        assert_eq!(parse("/v2/_catalog").unwrap(), Endpoint::Catalog);
        let Endpoint::Manifest { repo, reference } =
            parse("/v2/quay.io/a/b/c/manifests/v1").unwrap()
        else {
            panic!()
        };
        assert_eq!(repo.name, "quay.io/a/b/c");
        assert_eq!(reference, Reference::Tag("v1".into()));
        assert!(matches!(
            parse(&format!("/v2/busybox/blobs/{d}")).unwrap(),
            Endpoint::Blob { repo, .. } if repo.name == "docker.io/library/busybox"
        ));
        assert!(matches!(
            parse("/v2/a/b/blobs/uploads/").unwrap(),
            Endpoint::UploadStart { .. }
        ));
        assert!(matches!(
            parse(&format!("/v2/a/blobs/uploads/{}", "0".repeat(32))).unwrap(),
            Endpoint::Upload { .. }
        ));
        // A repository may itself be called `blobs`.
        assert!(matches!(
            parse("/v2/x/blobs/tags/list").unwrap(),
            Endpoint::Tags { repo } if repo.name == "docker.io/x/blobs"
        ));
        assert!(matches!(
            parse(&format!("/v2/a/referrers/{d}")).unwrap(),
            Endpoint::Referrers { .. }
        ));
    }

    #[test]
    fn refuses_bad_names_references_and_ids() {
        let code = |p: &str| parse(p).unwrap_err().code;
        assert_eq!(code("/v2/../etc/manifests/x"), Code::NameInvalid);
        assert_eq!(code("/v2/a/%2e%2e/manifests/x"), Code::NameInvalid);
        assert_eq!(code("/v2/A/manifests/x"), Code::NameInvalid);
        assert_eq!(code("/v2/a/manifests/.x"), Code::TagInvalid);
        assert_eq!(code("/v2/a/manifests/md5:abc"), Code::DigestInvalid);
        assert_eq!(code("/v2/a/blobs/sha256:abc"), Code::DigestInvalid);
        assert_eq!(code("/v2/a/blobs/uploads/xyz"), Code::BlobUploadUnknown);
        assert_eq!(code("/v2/a/nothing"), Code::NameUnknown);
    }
}
