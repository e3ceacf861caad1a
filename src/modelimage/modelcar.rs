//! The KServe modelcar image of one commit: the configured base image (busybox-like,
//! already in the registry) with uncompressed tar layers appended that put the files
//! under `/models/`, as an index over the base's platforms. The base's layers are served
//! as stored; the model layers are streamed from the stored files with generated tar
//! framing (`tar.rs`), their digests computed once and recorded.

use super::tar::{Layer, Segment};
use crate::digest::{Algorithm, Digest};
use crate::hf::model::FileEntry;
use crate::oci::manifest::{is_index_type, OCI_INDEX, OCI_MANIFEST};
use crate::oci::registry::Registry;
use crate::oci::synthesized::{BoxFuture, RangeRead, SynthBlob};
use crate::oci::{canonical, Code, OciError};
use crate::store::{BlobStore, ByteRange, ByteStream, GetOptions, StoreError};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};
use std::ops::Range;
use std::sync::Arc;

pub const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
/// Base manifests and configs are small; anything larger is not a base image.
const MAX_BASE_DOCUMENT: usize = 4 * 1024 * 1024;

/// One platform of the base image.
#[derive(Clone, Debug)]
pub struct BasePlatform {
    pub platform: Value,
    pub manifest: Value,
    pub config: Value,
}

#[derive(Clone, Debug)]
pub struct Base {
    /// The digest the base reference resolved to: images are cached per base.
    pub digest: Digest,
    pub platforms: Vec<BasePlatform>,
}

fn base_missing(reference: &str, why: impl std::fmt::Display) -> OciError {
    OciError::new(
        Code::ManifestUnknown,
        format!("the modelcar base image `{reference}` ([model_images] base): {why}"),
    )
}

async fn read_json(
    registry: &Registry,
    digest: &Digest,
    manifest: bool,
) -> Result<Value, OciError> {
    let bytes = if manifest {
        registry.manifest_bytes(digest).await?
    } else {
        let got = registry.blobs().get(digest, GetOptions::default()).await?;
        crate::store::collect_limited(got.body, MAX_BASE_DOCUMENT)
            .await
            .map_err(|e| OciError::from(StoreError::Unavailable(format!("{digest}: {e}"))))?
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| OciError::new(Code::ManifestInvalid, format!("{digest}: {e}")))
}

fn digest_of(v: &Value) -> Option<Digest> {
    v["digest"].as_str()?.parse().ok()
}

/// What `name:tag` or `name@digest` is in the registry now: the manifest digest, and
/// whether it is an index. Cheap (the repository document is cached).
pub async fn resolve(registry: &Registry, reference: &str) -> Result<(Digest, bool), OciError> {
    let (name, tag, pinned) = match reference.split_once('@') {
        Some((n, d)) => (
            n,
            None,
            Some(
                d.parse::<Digest>()
                    .map_err(|e| base_missing(reference, e))?,
            ),
        ),
        None => match reference.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
            Some((n, t)) => (n, Some(t), None),
            None => (reference, Some("latest"), None),
        },
    };
    let name = canonical(name, None, "docker.io").map_err(|e| base_missing(reference, e.0))?;
    let doc = registry
        .repo(&name)
        .await?
        .ok_or_else(|| base_missing(reference, "not in the store; push or import it"))?;
    let digest = match (tag, pinned) {
        (_, Some(d)) => d,
        (Some(t), None) => doc
            .tags
            .get(t)
            .cloned()
            .ok_or_else(|| base_missing(reference, "no such tag in the store"))?,
        (None, None) => unreachable!("a reference has a tag or a digest"),
    };
    let entry = doc
        .manifests
        .get(&digest)
        .ok_or_else(|| base_missing(reference, "its manifest is not in the store"))?;
    Ok((digest, is_index_type(&entry.media_type) == Some(true)))
}

/// Every platform of the base manifest `digest` (an index if `is_index`), with its config.
pub async fn load(
    registry: &Registry,
    reference: &str,
    digest: Digest,
    is_index: bool,
) -> Result<Base, OciError> {
    let top = read_json(registry, &digest, true).await?;
    let mut platforms = Vec::new();
    if is_index {
        for child in top["manifests"].as_array().into_iter().flatten() {
            let platform = child["platform"].clone();
            // Attestations and other non-runnable entries name no real platform.
            if platform["os"] == "unknown" || platform.is_null() {
                continue;
            }
            let Some(d) = digest_of(child) else { continue };
            let manifest = read_json(registry, &d, true).await?;
            let config = match digest_of(&manifest["config"]) {
                Some(c) => read_json(registry, &c, false).await?,
                None => continue,
            };
            platforms.push(BasePlatform {
                platform,
                manifest,
                config,
            });
        }
    } else {
        let config_digest = digest_of(&top["config"])
            .ok_or_else(|| base_missing(reference, "its manifest names no config"))?;
        let config = read_json(registry, &config_digest, false).await?;
        let mut platform = json!({"architecture": config["architecture"], "os": config["os"]});
        if let Some(v) = config["variant"].as_str() {
            platform["variant"] = v.into();
        }
        platforms.push(BasePlatform {
            platform,
            manifest: top,
            config,
        });
    }
    if platforms.is_empty() {
        return Err(base_missing(reference, "no runnable platform"));
    }
    Ok(Base { digest, platforms })
}

/// One platform's config: the base's, with the model layers added to its rootfs (an
/// uncompressed layer's diff id is its digest) and to its history.
pub fn config(base: &Value, layers: &[(Digest, u64)], commit: &str) -> Vec<u8> {
    let mut config = base.clone();
    let ids = &mut config["rootfs"]["diff_ids"];
    if !ids.is_array() {
        *ids = json!([]);
    }
    let ids = ids.as_array_mut().expect("an array");
    ids.extend(layers.iter().map(|(d, _)| Value::String(d.to_string())));
    if let Some(history) = config["history"].as_array_mut() {
        history.extend(layers.iter().map(|_| {
            json!({"created": "1970-01-01T00:00:00Z", "created_by": format!("airlock: model files of commit {commit}")})
        }));
    }
    serde_json::to_vec(&config).expect("serializable")
}

/// One platform's manifest: the base's layers, then the model's.
pub fn manifest(
    base: &BasePlatform,
    config: &[u8],
    layers: &[(Digest, u64)],
    commit: &str,
) -> Vec<u8> {
    let mut all: Vec<Value> = base.manifest["layers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    all.extend(
        layers.iter().map(
            |(d, size)| json!({"mediaType": LAYER_TYPE, "digest": d.to_string(), "size": size}),
        ),
    );
    let config_type = base.manifest["config"]["mediaType"].clone();
    let m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": config_type,
            "digest": Digest::of_bytes(Algorithm::Sha256, config).to_string(),
            "size": config.len(),
        },
        "layers": all,
        "annotations": {"org.opencontainers.image.revision": commit},
    });
    serde_json::to_vec(&m).expect("serializable")
}

pub fn index(manifests: &[(Value, Vec<u8>)]) -> Vec<u8> {
    let entries: Vec<Value> = manifests
        .iter()
        .map(|(platform, bytes)| {
            json!({
                "mediaType": OCI_MANIFEST,
                "digest": Digest::of_bytes(Algorithm::Sha256, bytes).to_string(),
                "size": bytes.len(),
                "platform": platform,
            })
        })
        .collect();
    serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}))
        .expect("serializable")
}

/// A repository file's bytes in `range`, however `file_blob` serves it.
pub async fn read_file(
    blobs: &BlobStore,
    blob: &SynthBlob,
    range: Range<u64>,
) -> Result<ByteStream, StoreError> {
    match blob {
        SynthBlob::Stored(d) => {
            let range = Some(ByteRange::Bounded {
                start: range.start,
                end: range.end - 1,
            });
            Ok(blobs.get(d, GetOptions { range }).await?.body)
        }
        SynthBlob::Generated { reader, .. } => reader.read(range).await,
    }
}

/// A model layer, read by range: generated framing and ranges of the files.
pub struct TarReader {
    pub layer: Layer,
    /// The commit's files, each with how its bytes are served.
    pub files: Arc<Vec<(FileEntry, Option<SynthBlob>)>>,
    pub blobs: BlobStore,
}

enum Part {
    Data(Bytes),
    File(SynthBlob, Range<u64>),
}

impl TarReader {
    fn parts(&self, range: Range<u64>) -> Result<Vec<Part>, StoreError> {
        let mut parts = Vec::new();
        let mut at = 0u64;
        for segment in &self.layer.segments {
            let len = match segment {
                Segment::Data(d) => d.len() as u64,
                Segment::File(i) => self.files[*i].0.size,
            };
            let (start, end) = (range.start.max(at), range.end.min(at + len));
            if start < end {
                let (from, to) = (start - at, end - at);
                parts.push(match segment {
                    Segment::Data(d) => Part::Data(d.slice(from as usize..to as usize)),
                    Segment::File(i) => {
                        let (entry, blob) = &self.files[*i];
                        let blob = blob.clone().ok_or_else(|| {
                            StoreError::NotFound(format!("the content of {}", entry.path))
                        })?;
                        Part::File(blob, from..to)
                    }
                });
            }
            at += len;
        }
        Ok(parts)
    }
}

impl RangeRead for TarReader {
    fn read(&self, range: Range<u64>) -> BoxFuture<'_, Result<ByteStream, StoreError>> {
        Box::pin(async move {
            let parts = self.parts(range)?;
            let blobs = self.blobs.clone();
            let stream = futures::stream::iter(parts)
                .then(move |part| {
                    let blobs = blobs.clone();
                    async move {
                        match part {
                            Part::Data(d) => Ok(crate::store::bytes_stream(d)),
                            Part::File(blob, range) => read_file(&blobs, &blob, range)
                                .await
                                .map_err(std::io::Error::other),
                        }
                    }
                })
                .try_flatten();
            Ok(Box::pin(stream) as ByteStream)
        })
    }
}

/// The digest of a layer, by reading it once.
pub async fn digest_of_layer(reader: &TarReader) -> Result<Digest, StoreError> {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    let mut body = reader.read(0..reader.layer.size).await?;
    while let Some(chunk) = body.next().await {
        hasher.update(&chunk.map_err(StoreError::Body)?);
    }
    Digest::sha256_hex(&hex::encode(hasher.finalize()))
        .map_err(|e| StoreError::Unavailable(format!("layer digest: {e}")))
}

/// Bumped whenever `tar::plan` or the framing changes: older records are recomputed.
pub const PLAN: u32 = 1;

/// `modelimages/.../layers/<commit>.json`: what reading the layers once found.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct LayerRecord {
    pub plan: u32,
    pub layers: Vec<(Digest, u64)>,
}

/// The modelcar index of a commit over every platform of the base, with its manifests,
/// configs and blobs.
pub fn assemble(
    base: &Base,
    commit: &str,
    readers: &[Arc<TarReader>],
    layers: &[(Digest, u64)],
) -> super::image::Images {
    let mut images = super::image::Images::default();
    let mut platforms = Vec::new();
    for p in &base.platforms {
        for l in p.manifest["layers"].as_array().into_iter().flatten() {
            if let Some(d) = digest_of(l) {
                images.add_blob(d.clone(), SynthBlob::Stored(d));
            }
        }
        let config_bytes = config(&p.config, layers, commit);
        let manifest_bytes = manifest(p, &config_bytes, layers, commit);
        images.add_document(config_bytes.into());
        images.add_manifest(OCI_MANIFEST, manifest_bytes.clone());
        platforms.push((p.platform.clone(), manifest_bytes));
    }
    for (reader, (digest, size)) in readers.iter().zip(layers) {
        let reader: Arc<dyn RangeRead> = reader.clone();
        images.add_blob(
            digest.clone(),
            SynthBlob::Generated {
                size: *size,
                reader,
            },
        );
    }
    let index = images.add_manifest(OCI_INDEX, index(&platforms));
    images.tags.insert(super::names::Kind::ModelCar, index);
    images
}
