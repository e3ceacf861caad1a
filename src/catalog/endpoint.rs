//! Catalog requests, parsed from the raw path and query in one place: handlers get an
//! [`Endpoint`] with validated names, never raw strings, so a name that could escape its
//! place in the store (`..`, empty or encoded-slash segments) is refused here as unknown.
//!
//! ```text
//! /_airlock/catalog/items?q=&kind=&limit=&offset=     the list (every kind, filtered)
//! /_airlock/catalog/items/models/<org>/<name>[?revision=]
//! /_airlock/catalog/items/datasets/<org>/<name>[?revision=]
//! /_airlock/catalog/items/projects/<index>/<name>
//! /_airlock/catalog/items/images/<host>/<path...>
//! /_airlock/catalog/store                             totals, dedup savings, recent changes
//! ```

use super::CatalogError;
use crate::hf::model::{RepoRef, RepoType};
use std::fmt;

pub const PREFIX: &str = "/_airlock/catalog";
/// The most items one list page holds, whatever `limit` asks.
pub const MAX_PAGE: usize = 500;
const DEFAULT_PAGE: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Model,
    Dataset,
    Project,
    Image,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Model, Kind::Dataset, Kind::Project, Kind::Image];

    pub fn plural(self) -> &'static str {
        match self {
            Kind::Model => "models",
            Kind::Dataset => "datasets",
            Kind::Project => "projects",
            Kind::Image => "images",
        }
    }

    /// `model` or `models` (what a `kind=` filter or a path segment says).
    pub(super) fn parse(s: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| s == k.plural() || s == k.plural().trim_end_matches('s'))
    }
}

/// One item of the catalog, however it is stored.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ItemId {
    /// A model or dataset repository.
    Hf { kind: Kind, id: String },
    /// A project of one Python index, by normalized name.
    Project { index: String, name: String },
    /// An OCI repository, by its canonical `<host>/<path>` name.
    Image { name: String },
}

impl ItemId {
    pub fn kind(&self) -> Kind {
        match self {
            ItemId::Hf { kind, .. } => *kind,
            ItemId::Project { .. } => Kind::Project,
            ItemId::Image { .. } => Kind::Image,
        }
    }

    /// What the list shows and searches: the repo id, project name or image name.
    pub fn name(&self) -> &str {
        match self {
            ItemId::Hf { id, .. } => id,
            ItemId::Project { name, .. } => name,
            ItemId::Image { name } => name,
        }
    }

    pub fn hf_repo(&self) -> Option<RepoRef> {
        match self {
            ItemId::Hf { kind, id } => RepoRef::new(hf_type(*kind)?, id),
            _ => None,
        }
    }
}

impl ItemId {
    /// The item whose [`Display`](fmt::Display) path this is (a path this process made:
    /// shaped, not validated as a request's path is).
    pub fn from_path(path: &str) -> Option<ItemId> {
        let (kind, rest) = path.split_once('/')?;
        Some(match Kind::parse(kind)? {
            Kind::Project => {
                let (index, name) = rest.split_once('/')?;
                ItemId::Project {
                    index: index.to_string(),
                    name: name.to_string(),
                }
            }
            Kind::Image => ItemId::Image {
                name: rest.to_string(),
            },
            kind => ItemId::Hf {
                kind,
                id: rest.to_string(),
            },
        })
    }
}

/// The item's path under `/_airlock/catalog/items/` (and the UI's `?item=`).
impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ItemId::Hf { kind, id } => write!(f, "{}/{id}", kind.plural()),
            ItemId::Project { index, name } => write!(f, "projects/{index}/{name}"),
            ItemId::Image { name } => write!(f, "images/{name}"),
        }
    }
}

pub fn hf_type(kind: Kind) -> Option<RepoType> {
    match kind {
        Kind::Model => Some(RepoType::Model),
        Kind::Dataset => Some(RepoType::Dataset),
        _ => None,
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Lowercased substring the name must contain.
    pub q: Option<String>,
    pub kind: Option<Kind>,
    pub limit: usize,
    /// Position in the sorted, filtered name list to start from (`next_offset` of the
    /// previous page).
    pub offset: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Items(ListQuery),
    Item {
        item: ItemId,
        /// A branch, tag or commit (models and datasets only; `main` when absent).
        revision: Option<String>,
    },
    Store,
}

impl Endpoint {
    /// `path` is the request's raw (still percent-encoded) path.
    pub fn parse(path: &str, query: Option<&str>) -> Result<Endpoint, CatalogError> {
        let params: Vec<(String, String)> =
            url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        let rest = path
            .strip_prefix(PREFIX)
            .ok_or_else(|| unknown(path))?
            .trim_end_matches('/');
        match rest {
            "/store" => return Ok(Endpoint::Store),
            "/items" => return list_query(&param).map(Endpoint::Items),
            _ => {}
        }
        let item_path = rest.strip_prefix("/items/").ok_or_else(|| unknown(path))?;
        let segments = decode_segments(item_path).ok_or_else(|| unknown(path))?;
        let item = item_id(&segments).ok_or_else(|| unknown(path))?;
        let revision = param("revision").map(str::to_string);
        if revision.is_some() && item.hf_repo().is_none() {
            return Err(CatalogError::BadRequest(
                "`revision` applies to models and datasets only".into(),
            ));
        }
        Ok(Endpoint::Item { item, revision })
    }

    pub fn label(&self) -> &'static str {
        match self {
            Endpoint::Items(_) => "catalog.items",
            Endpoint::Item { .. } => "catalog.item",
            Endpoint::Store => "catalog.store",
        }
    }
}

fn unknown(path: &str) -> CatalogError {
    CatalogError::NotFound(format!(
        "no catalog item or endpoint at `{path}`; see {PREFIX}/items and {PREFIX}/store"
    ))
}

fn list_query<'a>(param: &impl Fn(&str) -> Option<&'a str>) -> Result<ListQuery, CatalogError> {
    let kind = match param("kind") {
        None | Some("all") => None,
        Some(k) => Some(Kind::parse(k).ok_or_else(|| {
            CatalogError::BadRequest(format!("kind=`{k}`: use model, dataset, project or image"))
        })?),
    };
    let number = |name: &str, default: usize| match param(name) {
        None => Ok(default),
        Some(v) => v.parse::<usize>().map_err(|_| {
            CatalogError::BadRequest(format!("{name}=`{v}` is not a non-negative number"))
        }),
    };
    Ok(ListQuery {
        q: param("q")
            .map(|q| q.trim().to_lowercase())
            .filter(|q| !q.is_empty()),
        kind,
        limit: number("limit", DEFAULT_PAGE)?.clamp(1, MAX_PAGE),
        offset: number("offset", 0)?,
    })
}

/// Percent-decoded segments; `None` if any is empty, `.`/`..`, holds a `/` or a
/// backslash once decoded, or is not UTF-8.
fn decode_segments(path: &str) -> Option<Vec<String>> {
    path.split('/')
        .map(|raw| {
            let s = percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .ok()?
                .into_owned();
            let bad = s.is_empty() || s == "." || s == ".." || s.contains(['/', '\\']);
            (!bad && !s.chars().any(char::is_control)).then_some(s)
        })
        .collect()
}

fn item_id(segments: &[String]) -> Option<ItemId> {
    let (kind, rest) = segments.split_first()?;
    let kind = Kind::parse(kind)?;
    match kind {
        Kind::Model | Kind::Dataset => {
            let id = rest.join("/");
            RepoRef::new(hf_type(kind)?, &id)?;
            Some(ItemId::Hf { kind, id })
        }
        Kind::Project => match rest {
            [index, name] if crate::pypi::normalize(name) == *name && is_plain(name) => {
                Some(ItemId::Project {
                    index: index.clone(),
                    name: name.clone(),
                })
            }
            _ => None,
        },
        Kind::Image => {
            let name = rest.join("/");
            // Only the canonical form names a stored repository.
            let canonical = crate::oci::canonical(&name, None, "docker.io").ok()?;
            (canonical == name).then_some(ItemId::Image { name })
        }
    }
}

fn is_plain(name: &str) -> bool {
    name.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(path: &str) -> Result<Endpoint, CatalogError> {
        Endpoint::parse(&format!("{PREFIX}/items/{path}"), None)
    }

    #[test]
    fn items_are_parsed_and_round_trip() {
        for path in [
            "models/org/tiny",
            "models/gpt2",
            "datasets/org/data",
            "projects/default/demo-core",
            "images/docker.io/library/busybox",
            "images/quay.io/org/app/sub",
        ] {
            match item(path).unwrap() {
                Endpoint::Item { item, revision } => {
                    assert_eq!(item.to_string(), path);
                    assert_eq!(ItemId::from_path(path), Some(item.clone()));
                    assert_eq!(revision, None);
                }
                other => panic!("{path}: {other:?}"),
            }
        }
    }

    #[test]
    fn escapes_and_odd_names_are_unknown() {
        for path in [
            "models/../etc/passwd",
            "models/org/%2e%2e",
            "models/org%2Fx/y",
            "models/a/b/c",
            "projects/default/../x",
            "projects/default/Demo_Core",
            "projects/default",
            "images/docker.io/library/../x",
            "images/busybox",
            "images/docker.io/Library/x",
            "things/x",
        ] {
            assert!(
                matches!(item(path), Err(CatalogError::NotFound(_))),
                "{path}"
            );
        }
    }

    #[test]
    fn list_queries() {
        let parse = |q: &str| Endpoint::parse(&format!("{PREFIX}/items"), Some(q));
        assert_eq!(
            parse("q=%20Tiny%20&kind=models&limit=9999&offset=3").unwrap(),
            Endpoint::Items(ListQuery {
                q: Some("tiny".into()),
                kind: Some(Kind::Model),
                limit: MAX_PAGE,
                offset: 3,
            })
        );
        assert!(matches!(
            parse("kind=spaceship"),
            Err(CatalogError::BadRequest(_))
        ));
        assert!(matches!(
            parse("limit=-1"),
            Err(CatalogError::BadRequest(_))
        ));
        assert_eq!(
            Endpoint::parse(&format!("{PREFIX}/store/"), None).unwrap(),
            Endpoint::Store
        );
        assert!(matches!(
            Endpoint::parse(
                &format!("{PREFIX}/items/images/docker.io/library/busybox"),
                Some("revision=main")
            ),
            Err(CatalogError::BadRequest(_))
        ));
    }
}
