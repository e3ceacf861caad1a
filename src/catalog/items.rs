//! The item list (every kind, searched by name) and item details.

use super::access::{Reader, Visibility};
use super::endpoint::ListQuery;
use super::CatalogState;
use super::{hf_items, image_items, python_items, CatalogError, ItemId, Kind};
use crate::store::{contains_ignoring_case, NameList};
use serde_json::{json, Value};
use std::sync::Arc;

/// One kind's names as its listing keeps them (an index's projects, every image
/// repository, a kind of Hub repository), in name order.
struct Source {
    kind: Kind,
    /// The Python index, for projects.
    index: Option<String>,
    names: Arc<NameList>,
}

impl Source {
    fn item(&self, name: &str) -> ItemId {
        match (self.kind, &self.index) {
            (Kind::Project, Some(index)) => ItemId::Project {
                index: index.clone(),
                name: name.to_string(),
            },
            (Kind::Image, _) => ItemId::Image {
                name: name.to_string(),
            },
            (kind, _) => ItemId::Hf {
                kind,
                id: name.to_string(),
            },
        }
    }
}

/// Every listing of the wanted kinds, in kind order: each protocol's kept name list,
/// read in place (a list request copies no name it does not show).
async fn sources(state: &CatalogState, kind: Option<Kind>) -> Result<Vec<Source>, CatalogError> {
    let mut out = Vec::new();
    for k in Kind::ALL
        .into_iter()
        .filter(|k| kind.is_none_or(|w| w == *k))
    {
        match k {
            Kind::Model | Kind::Dataset => out.push(Source {
                kind: k,
                index: None,
                names: hf_items::all(state, k).await?,
            }),
            Kind::Image => out.push(Source {
                kind: k,
                index: None,
                names: image_items::all(state).await?,
            }),
            Kind::Project => {
                for (index, names) in python_items::all(state).await? {
                    out.push(Source {
                        kind: k,
                        index: Some(index),
                        names,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// A search: a name matches when it contains the query, ignoring ASCII case (every
/// listed name is ASCII), or for projects its normalized form.
struct Search {
    q: String,
    normalized: String,
}

impl Search {
    fn new(q: &str) -> Search {
        Search {
            q: q.to_string(),
            normalized: crate::pypi::normalize(q),
        }
    }

    fn matches(&self, kind: Kind, name: &str) -> bool {
        contains_ignoring_case(name, &self.q)
            || (kind == Kind::Project && name.contains(self.normalized.as_str()))
    }
}

/// The matching names of every source in turn, by position (a plain cursor: an
/// iterator adapter's closures cannot be held across the visibility checks' awaits).
struct Matching<'a> {
    sources: &'a [Source],
    search: Option<&'a Search>,
    /// The source, and the name in it, looked at next.
    at: (usize, usize),
}

impl<'a> Matching<'a> {
    fn next(&mut self) -> Option<(&'a Source, &'a str)> {
        while let Some(source) = self.sources.get(self.at.0) {
            while self.at.1 < source.names.len() {
                let name = source.names.get(self.at.1);
                self.at.1 += 1;
                if self.search.is_none_or(|s| s.matches(source.kind, name)) {
                    return Some((source, name));
                }
            }
            self.at = (self.at.0 + 1, 0);
        }
        None
    }
}

/// One page of items the reader may see whose name contains `q`. Visibility is checked
/// only as far as the page reaches, so a large store costs one page of reads; the names
/// before `offset` are only matched.
pub async fn list(
    state: &CatalogState,
    reader: &Reader,
    query: &ListQuery,
) -> Result<Value, CatalogError> {
    let sources = sources(state, query.kind).await?;
    let search = query.q.as_deref().map(Search::new);
    let mut matching = Matching {
        sources: &sources,
        search: search.as_ref(),
        at: (0, 0),
    };
    for _ in 0..query.offset {
        if matching.next().is_none() {
            break;
        }
    }
    let mut position = query.offset;
    let mut items = Vec::new();
    let mut next = matching.next();
    while let Some((source, name)) = next {
        if items.len() == query.limit {
            break;
        }
        position += 1;
        next = matching.next();
        let id = source.item(name);
        // Not readable with this caller's credentials: left out, never reported.
        let doc = match reader.visibility(state, &id).await {
            Ok(Visibility::Visible(doc)) => doc,
            Ok(Visibility::Hidden) | Err(CatalogError::Auth(_)) => continue,
            Err(e) => return Err(e),
        };
        let Some(details) = summary(state, &id, doc.as_ref()).await? else {
            continue;
        };
        let mut row = json!({
            "kind": id.kind(),
            "name": name,
            "path": id.to_string(),
        });
        merge(&mut row, details);
        items.push(row);
    }
    Ok(json!({
        "items": items,
        "next_offset": next.is_some().then_some(position),
    }))
}

/// A list row's details; `None` for an item listed but gone meanwhile.
async fn summary(
    state: &CatalogState,
    id: &ItemId,
    hf_doc: Option<&crate::hf::model::RepoDoc>,
) -> Result<Option<Value>, CatalogError> {
    let gone = |e: &CatalogError| matches!(e, CatalogError::NotFound(_));
    Ok(match id {
        ItemId::Hf { .. } => match (id.hf_repo(), hf_doc) {
            (Some(repo), Some(doc)) => Some(hf_items::summary(state, &repo, doc).await?),
            _ => None,
        },
        ItemId::Project { index, name } => match python_items::project(state, index, name).await {
            Ok(doc) => {
                // The listing names projects by normalized name; the row shows the
                // name as first uploaded.
                let mut row = json!({ "index": index, "name": doc.name });
                merge(&mut row, python_items::summary(&doc));
                Some(row)
            }
            Err(e) if gone(&e) => None,
            Err(e) => return Err(e),
        },
        ItemId::Image { name } => match image_items::repo(state, name).await {
            Ok(doc) => Some(image_items::summary(state, name, &doc).await),
            Err(e) if gone(&e) => None,
            Err(e) => return Err(e),
        },
    })
}

/// One item in full, with snippets using `base` (the URL clients reach Airlock at).
pub async fn detail(
    state: &CatalogState,
    reader: &Reader,
    id: &ItemId,
    revision: Option<&str>,
    base: &str,
) -> Result<Value, CatalogError> {
    let unknown = || CatalogError::NotFound(format!("no {} `{}`", kind_word(id.kind()), id.name()));
    let hf_doc = match reader.visibility(state, id).await? {
        Visibility::Visible(doc) => doc,
        Visibility::Hidden => return Err(unknown()),
    };
    let details = match id {
        ItemId::Hf { .. } => {
            let (Some(repo), Some(doc)) = (id.hf_repo(), hf_doc) else {
                return Err(unknown());
            };
            hf_items::detail(state, &repo, &doc, revision, base).await?
        }
        ItemId::Project { index, name } => {
            let doc = python_items::project(state, index, name).await?;
            python_items::detail(state, index, &doc, base)
        }
        ItemId::Image { name } => {
            let doc = image_items::repo(state, name).await?;
            image_items::detail(state, name, &doc, base).await
        }
    };
    let mut out = json!({
        "kind": id.kind(),
        "name": id.name(),
        "path": id.to_string(),
    });
    merge(&mut out, details);
    Ok(out)
}

fn kind_word(kind: Kind) -> &'static str {
    match kind {
        Kind::Model => "model",
        Kind::Dataset => "dataset",
        Kind::Project => "Python project",
        Kind::Image => "image repository",
    }
}

/// Adds `extra`'s fields to `into` (both objects).
fn merge(into: &mut Value, extra: Value) {
    if let (Value::Object(into), Value::Object(extra)) = (into, extra) {
        into.extend(extra);
    }
}
