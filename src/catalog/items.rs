//! The item list (every kind, searched by name) and item details.

use super::access::{Reader, Visibility};
use super::endpoint::ListQuery;
use super::CatalogState;
use super::{hf_items, image_items, python_items, CatalogError, ItemId, Kind};
use serde_json::{json, Value};

/// An item as the list knows it before reading its own documents.
struct Listed {
    id: ItemId,
    /// The name to show and search: the project name as first uploaded, else the id's.
    display: String,
}

/// Every item of the wanted kinds, in kind order then name order: from the listing
/// documents only (hf/<kind>.json, the listing of each index's project documents,
/// the listing of the OCI repository documents).
async fn all(state: &CatalogState, kind: Option<Kind>) -> Result<Vec<Listed>, CatalogError> {
    let mut out = Vec::new();
    for k in Kind::ALL
        .into_iter()
        .filter(|k| kind.is_none_or(|w| w == *k))
    {
        let ids =
            match k {
                Kind::Model | Kind::Dataset => hf_items::all(state, k).await?,
                Kind::Image => image_items::all(state).await?,
                Kind::Project => {
                    out.extend(python_items::all(state).await?.iter().map(|(id, display)| {
                        Listed {
                            id: id.clone(),
                            display: display.clone(),
                        }
                    }));
                    continue;
                }
            };
        out.extend(ids.into_iter().map(|id| Listed {
            display: id.name().to_string(),
            id,
        }));
    }
    Ok(out)
}

fn matches(item: &Listed, q: &str) -> bool {
    item.display.to_lowercase().contains(q)
        || item.id.name().contains(q)
        || (item.id.kind() == Kind::Project && item.id.name().contains(&crate::pypi::normalize(q)))
}

/// One page of items the reader may see whose name contains `q`. Visibility is checked
/// only as far as the page reaches, so a large store costs one page of reads.
pub async fn list(
    state: &CatalogState,
    reader: &Reader,
    query: &ListQuery,
) -> Result<Value, CatalogError> {
    let matching: Vec<Listed> = all(state, query.kind)
        .await?
        .into_iter()
        .filter(|item| query.q.as_deref().is_none_or(|q| matches(item, q)))
        .collect();
    let mut items = Vec::new();
    let mut position = query.offset;
    while position < matching.len() && items.len() < query.limit {
        let item = &matching[position];
        position += 1;
        // Not readable with this caller's credentials: left out, never reported.
        let doc = match reader.visibility(state, &item.id).await {
            Ok(Visibility::Visible(doc)) => doc,
            Ok(Visibility::Hidden) | Err(CatalogError::Auth(_)) => continue,
            Err(e) => return Err(e),
        };
        let Some(details) = summary(state, &item.id, doc.as_ref()).await? else {
            continue;
        };
        let mut row = json!({
            "kind": item.id.kind(),
            "name": item.display,
            "path": item.id.to_string(),
        });
        merge(&mut row, details);
        items.push(row);
    }
    Ok(json!({
        "items": items,
        "next_offset": (position < matching.len()).then_some(position),
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
