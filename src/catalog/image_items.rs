//! Images in the catalog: an OCI repository's tags, what each tag's manifest holds
//! (platforms of an index, config and layers), read from the stored manifest bytes.

use super::CatalogState;
use super::{snippets, CatalogError, ItemId};
use crate::digest::Digest;
use crate::oci::registry::{Registry, RepoDoc};
use crate::store::layout::MetaKey;
use crate::store::NameList;
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Manifests read at once for an item page.
const MANIFEST_READS_IN_FLIGHT: usize = 16;

pub async fn all(state: &CatalogState) -> Result<Arc<NameList>, CatalogError> {
    Ok(state.registry.all_names().await?)
}

pub async fn repo(state: &CatalogState, name: &str) -> Result<Arc<RepoDoc>, CatalogError> {
    state
        .registry
        .clone()
        .repo(name)
        .await?
        .ok_or_else(|| CatalogError::NotFound(format!("no image repository `{name}`")))
}

/// A descriptor a manifest points at.
struct Descriptor {
    digest: Digest,
    size: u64,
    platform: Option<Value>,
}

/// What one manifest references: child manifests (an index) and blobs (config, layers).
#[derive(Default)]
struct References {
    children: Vec<Descriptor>,
    blobs: Vec<Descriptor>,
}

fn descriptors(body: &Value, field: &str) -> Vec<Descriptor> {
    let list = match body.get(field) {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    };
    list.into_iter()
        .filter_map(|d| {
            Some(Descriptor {
                digest: d.get("digest")?.as_str()?.parse().ok()?,
                size: d.get("size")?.as_u64()?,
                platform: d.get("platform").cloned(),
            })
        })
        .collect()
}

/// The manifest's references, or none when its bytes are not stored (a platform a
/// mirror left out) or do not parse.
async fn references(registry: &Registry, digest: &Digest) -> References {
    let Ok(bytes) = registry.manifest_bytes(digest).await else {
        return References::default();
    };
    let Ok(body) = serde_json::from_slice::<Value>(&bytes) else {
        return References::default();
    };
    let mut blobs = descriptors(&body, "config");
    blobs.extend(descriptors(&body, "layers"));
    blobs.extend(descriptors(&body, "blobs"));
    References {
        children: descriptors(&body, "manifests"),
        blobs,
    }
}

/// One tag: its manifest, the platforms of an index, and the bytes a pull of every
/// stored platform fetches (each manifest, config and layer once).
async fn describe_tag(registry: &Registry, doc: &RepoDoc, tag: &str, digest: &Digest) -> Value {
    let entry = doc.manifests.get(digest);
    let mut sizes: BTreeMap<Digest, u64> = BTreeMap::new();
    sizes.insert(digest.clone(), entry.map(|e| e.size).unwrap_or(0));
    let top = references(registry, digest).await;
    let mut platforms = Vec::new();
    for child in &top.children {
        let present = doc.manifests.contains_key(&child.digest);
        platforms.push(json!({
            "digest": child.digest.to_string(),
            "platform": child.platform,
            "stored": present,
        }));
        if present {
            sizes.insert(child.digest.clone(), child.size);
            for blob in references(registry, &child.digest).await.blobs {
                sizes.insert(blob.digest, blob.size);
            }
        }
    }
    for blob in top.blobs {
        sizes.insert(blob.digest, blob.size);
    }
    json!({
        "tag": tag,
        "digest": digest.to_string(),
        "media_type": entry.map(|e| e.media_type.as_str()),
        "platforms": (!top.children.is_empty()).then_some(platforms),
        "size": sizes.values().sum::<u64>(),
    })
}

/// A list row; `updated` is when the repository document last changed (a push, a tag).
pub async fn summary(state: &CatalogState, name: &str, doc: &RepoDoc) -> Value {
    let key = crate::oci::registry::repo_key(name).ok();
    let changed = match key {
        Some(key) => state
            .store
            .head(&key)
            .await
            .ok()
            .and_then(|m| m.last_modified),
        None => None,
    };
    json!({
        "updated": changed.map(|at| humantime::format_rfc3339_seconds(at).to_string()),
        "tags": doc.tags.len(),
        "tag_names": doc.tags.keys().take(5).collect::<Vec<_>>(),
        "manifests": doc.manifests.len(),
    })
}

pub async fn detail(state: &CatalogState, name: &str, doc: &RepoDoc, base: &str) -> Value {
    let registry = state.registry.clone();
    // A manifest read each (an S3 round trip on a cold cache): a few at a time, so that
    // a repository of thousands of tags is not thousands of waits in a row.
    let described: Vec<_> = doc
        .tags
        .iter()
        .map(|(tag, digest)| describe_tag(&registry, doc, tag, digest))
        .collect();
    let tags: Vec<Value> = futures::stream::iter(described)
        .buffered(MANIFEST_READS_IN_FLIGHT)
        .collect()
        .await;
    // `latest` if there is one, else the last tag in order: what the snippets pull.
    let example = doc
        .tags
        .keys()
        .find(|t| *t == "latest")
        .or(doc.tags.keys().next_back());
    json!({
        "tags": tags,
        "manifests": doc.manifests.len(),
        "snippets": snippets::image(base, name, example.map(String::as_str)),
    })
}

/// Every manifest of the repository and every blob those manifests name.
pub async fn referenced_blobs(registry: &Registry, doc: &RepoDoc) -> Vec<Digest> {
    let mut out = Vec::new();
    for digest in doc.manifests.keys() {
        out.push(digest.clone());
        out.extend(
            references(registry, digest)
                .await
                .blobs
                .into_iter()
                .map(|d| d.digest),
        );
    }
    out
}

/// `oci/repos/<host>/<path>/_repo.json` to the repository.
pub fn repo_of_key(key: &str) -> Option<ItemId> {
    let MetaKey::OciRepo { name } = MetaKey::parse(key)? else {
        return None;
    };
    Some(ItemId::Image { name })
}
