//! Every PyPI request as one typed value, parsed from the raw path in one place.

use super::names::{is_safe_filename, is_valid_name, normalize};
use super::{PypiError, DEFAULT_INDEX};
use crate::auth::{Action, Permission};
use http::Method;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `/simple/` of an index.
    Root {
        index: String,
        page_path: String,
    },
    /// `/simple/<normalized>/`
    Project {
        index: String,
        normalized: String,
        page_path: String,
    },
    /// A file or its `.metadata`.
    File {
        index: String,
        project: String,
        sha256: String,
        filename: String,
        metadata: bool,
    },
    /// The legacy upload API (twine).
    Upload {
        index: String,
    },
    /// Non-normalized names and missing trailing slashes (PEP 503).
    Redirect {
        to: String,
    },
    MethodNotAllowed {
        allow: &'static str,
    },
}

impl Endpoint {
    pub fn parse(method: &Method, path: &str) -> Result<Endpoint, PypiError> {
        let not_found = || PypiError::not_found(format!("no such index page: {path}"));
        let (index, base, rest) = if let Some(rest) = path.strip_prefix("/pypi/") {
            let (index, rest) = rest.split_once('/').unwrap_or((rest, ""));
            if index.is_empty() {
                return Err(not_found());
            }
            (index.to_string(), format!("/pypi/{index}/"), rest)
        } else {
            (
                DEFAULT_INDEX.to_string(),
                "/".to_string(),
                path.trim_start_matches('/'),
            )
        };
        let read = method == Method::GET || method == Method::HEAD;

        if rest == "legacy" || rest == "legacy/" {
            if method != Method::POST {
                return Ok(Endpoint::MethodNotAllowed { allow: "POST" });
            }
            return Ok(Endpoint::Upload { index });
        }
        if let Some(files) = rest.strip_prefix("files/") {
            let parts: Vec<&str> = files.split('/').collect();
            let [project, sha256, filename] = parts[..] else {
                return Err(not_found());
            };
            let (filename, metadata) = match filename.strip_suffix(".metadata") {
                Some(f) => (f, true),
                None => (filename, false),
            };
            let valid = is_valid_name(project)
                && project == normalize(project)
                && sha256.len() == 64
                && sha256
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                && is_safe_filename(filename);
            if !valid {
                return Err(not_found());
            }
            if !read {
                return Ok(Endpoint::MethodNotAllowed { allow: "GET, HEAD" });
            }
            return Ok(Endpoint::File {
                index,
                project: project.to_string(),
                sha256: sha256.to_string(),
                filename: filename.to_string(),
                metadata,
            });
        }
        let simple = format!("{base}simple/");
        match rest.strip_prefix("simple") {
            Some("") => Ok(Endpoint::Redirect { to: simple }),
            Some("/") if read => Ok(Endpoint::Root {
                index,
                page_path: simple,
            }),
            Some(rest) if read => {
                let rest = rest.trim_start_matches('/');
                let (name, tail) = rest.split_once('/').unwrap_or((rest, ""));
                if !is_valid_name(name) || !tail.is_empty() {
                    return Err(not_found());
                }
                let normalized = normalize(name);
                let page_path = format!("{simple}{normalized}/");
                if name != normalized || !rest.ends_with('/') {
                    return Ok(Endpoint::Redirect { to: page_path });
                }
                Ok(Endpoint::Project {
                    index,
                    normalized,
                    page_path,
                })
            }
            Some(_) => Ok(Endpoint::MethodNotAllowed { allow: "GET, HEAD" }),
            None => Err(not_found()),
        }
    }

    pub fn index(&self) -> Option<&str> {
        match self {
            Endpoint::Root { index, .. }
            | Endpoint::Project { index, .. }
            | Endpoint::File { index, .. }
            | Endpoint::Upload { index } => Some(index),
            Endpoint::Redirect { .. } | Endpoint::MethodNotAllowed { .. } => None,
        }
    }

    /// What the request needs, checked before any store or upstream work. Reads are
    /// checked against `<index>/<project>`; an upload needs a write scope in PyPI, and
    /// its project (named by the file's own metadata) is checked once that is read.
    pub fn permission(&self) -> Permission {
        let read = |name: String| Permission::On {
            action: Action::Read,
            name,
        };
        match self {
            Endpoint::Root { index, .. } => read(format!("{index}/")),
            Endpoint::Project {
                index, normalized, ..
            } => read(format!("{index}/{normalized}")),
            Endpoint::File { index, project, .. } => read(format!("{index}/{project}")),
            Endpoint::Upload { .. } => Permission::AnyName(Action::Write),
            Endpoint::Redirect { .. } | Endpoint::MethodNotAllowed { .. } => Permission::None,
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Endpoint::Root { .. } => "pypi.root",
            Endpoint::Project { .. } => "pypi.project",
            Endpoint::File {
                metadata: false, ..
            } => "pypi.file",
            Endpoint::File { metadata: true, .. } => "pypi.metadata",
            Endpoint::Upload { .. } => "pypi.upload",
            Endpoint::Redirect { .. } => "pypi.redirect",
            Endpoint::MethodNotAllowed { .. } => "pypi.method_not_allowed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Result<Endpoint, PypiError> {
        Endpoint::parse(&Method::GET, path)
    }

    #[test]
    fn parses_pages_and_redirects() {
        assert_eq!(
            get("/simple").unwrap(),
            Endpoint::Redirect {
                to: "/simple/".into()
            }
        );
        assert!(
            matches!(get("/simple/").unwrap(), Endpoint::Root { index, .. } if index == "default")
        );
        assert_eq!(
            get("/simple/Foo_Bar/").unwrap(),
            Endpoint::Redirect {
                to: "/simple/foo-bar/".into()
            }
        );
        assert_eq!(
            get("/simple/foo-bar").unwrap(),
            Endpoint::Redirect {
                to: "/simple/foo-bar/".into()
            }
        );
        assert_eq!(
            get("/pypi/team/simple/foo/").unwrap(),
            Endpoint::Project {
                index: "team".into(),
                normalized: "foo".into(),
                page_path: "/pypi/team/simple/foo/".into()
            }
        );
        assert!(get("/simple/../etc/passwd").is_err());
        assert!(get("/simple/foo/bar/").is_err());
    }

    #[test]
    fn parses_files_uploads_and_refuses_oddities() {
        let sha = "a".repeat(64);
        let e = get(&format!(
            "/pypi/default/files/foo/{sha}/foo-1.0-py3-none-any.whl.metadata"
        ))
        .unwrap();
        assert!(
            matches!(e, Endpoint::File { metadata: true, ref filename, .. } if filename == "foo-1.0-py3-none-any.whl")
        );
        assert!(get(&format!("/pypi/default/files/foo/{sha}/..")).is_err());
        assert!(get("/pypi/default/files/foo/abc/foo-1.0.tar.gz").is_err());
        assert_eq!(
            Endpoint::parse(&Method::POST, "/legacy/").unwrap(),
            Endpoint::Upload {
                index: "default".into()
            }
        );
        assert_eq!(
            Endpoint::parse(&Method::POST, "/pypi/team/legacy/").unwrap(),
            Endpoint::Upload {
                index: "team".into()
            }
        );
        assert!(matches!(
            get("/legacy/").unwrap(),
            Endpoint::MethodNotAllowed { .. }
        ));
    }
}
