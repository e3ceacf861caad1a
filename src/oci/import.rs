//! Importing images without a network: OCI image layouts (a directory, or a tar of one
//! as `oci-archive`) byte for byte, and `docker save` tarballs. Docker 25+ writes an OCI
//! layout inside its tarballs, which is imported as such (digests preserved); older
//! `docker save` output holds only uncompressed layers and a config, from which a Docker
//! schema 2 manifest is made (a new digest: the original registry manifest is not in it).

use super::manifest::{self, Inspected};
use super::names::canonical;
use super::registry::{ManifestEntry, Registry};
use crate::digest::{Algorithm, Digest};
use crate::store::bytes_stream;
use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use serde_json::Value;
use std::path::{Path, PathBuf};

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// What one import call did, for the summary line.
#[derive(Debug, Default)]
pub struct Outcome {
    pub images_new: usize,
    pub images_present: usize,
    pub blobs_new: usize,
    pub blobs_present: usize,
    pub bytes_new: u64,
}

/// One image found in a source: where it goes and what it is.
#[derive(Debug)]
pub struct Found {
    pub repo: String,
    pub tag: Option<String>,
    pub kind: FoundKind,
}

#[derive(Debug)]
pub enum FoundKind {
    /// A manifest or index in an OCI layout.
    Layout {
        digest: Digest,
        media_type: Option<String>,
    },
    /// A legacy `docker save` entry.
    Legacy { config: String, layers: Vec<String> },
}

/// A source opened for reading: a directory (a tar is unpacked to a temporary one).
pub struct Source {
    pub root: PathBuf,
    _unpacked: Option<tempfile::TempDir>,
}

pub fn open(path: &Path) -> anyhow::Result<Source> {
    let md = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    if md.is_dir() {
        return Ok(Source {
            root: path.to_path_buf(),
            _unpacked: None,
        });
    }
    let dir = tempfile::Builder::new()
        .prefix("airlock-oci-import-")
        .tempdir()
        .context("temporary directory for unpacking")?;
    let mut file = std::fs::File::open(path)?;
    let mut magic = [0u8; 2];
    let gz = std::io::Read::read(&mut file, &mut magic)? == 2 && magic == [0x1f, 0x8b];
    let file = std::fs::File::open(path)?;
    let reader: Box<dyn std::io::Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    // `unpack` refuses entries that would land outside the directory.
    tar::Archive::new(reader)
        .unpack(dir.path())
        .with_context(|| format!("{}: not a readable tar archive", path.display()))?;
    Ok(Source {
        root: dir.path().to_path_buf(),
        _unpacked: Some(dir),
    })
}

fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    root.join("blobs")
        .join(digest.algorithm().as_str())
        .join(digest.hex())
}

/// `name[:tag]` of a full reference, with the repository in canonical form.
fn split_reference(reference: &str, default_host: &str) -> Option<(String, Option<String>)> {
    let reference = reference.split('@').next()?;
    let (name, tag) = match reference.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, Some(t.to_string())),
        _ => (reference, None),
    };
    Some((canonical(name, None, default_host).ok()?, tag))
}

/// Lists the images in a source. `repo` names the repository for layouts whose
/// entries carry only a tag.
pub fn list(source: &Source, repo: Option<&str>, default_host: &str) -> anyhow::Result<Vec<Found>> {
    let root = &source.root;
    let index_path = root.join("index.json");
    if index_path.exists() {
        let index: Value = serde_json::from_slice(&std::fs::read(&index_path)?)
            .context("index.json is not JSON")?;
        let mut found = Vec::new();
        for d in index["manifests"].as_array().into_iter().flatten() {
            let digest: Digest = d["digest"]
                .as_str()
                .ok_or_else(|| anyhow!("index.json: a descriptor without digest"))?
                .parse()?;
            let annotations = &d["annotations"];
            let full = annotations["io.containerd.image.name"].as_str();
            let ref_name = annotations["org.opencontainers.image.ref.name"].as_str();
            let (repo, tag) = match (full, ref_name) {
                (Some(full), _) => split_reference(full, default_host)
                    .ok_or_else(|| anyhow!("index.json: `{full}` is not an image reference"))?,
                (None, Some(r)) if r.contains('/') => split_reference(r, default_host)
                    .ok_or_else(|| anyhow!("index.json: `{r}` is not an image reference"))?,
                (None, tag) => {
                    let repo = repo.ok_or_else(|| {
                        anyhow!(
                            "the layout names its images only by tag; give --repo (e.g. --repo docker.io/library/busybox)"
                        )
                    })?;
                    let repo = canonical(repo, None, default_host)
                        .map_err(|e| anyhow!("--repo: {}", e.0))?;
                    (repo, tag.map(str::to_string))
                }
            };
            if let Some(t) = &tag {
                if !super::names::is_valid_tag(t) {
                    bail!("index.json: `{t}` is not a valid tag");
                }
            }
            found.push(Found {
                repo,
                tag,
                kind: FoundKind::Layout {
                    digest,
                    media_type: d["mediaType"].as_str().map(str::to_string),
                },
            });
        }
        return Ok(found);
    }
    let manifest_path = root.join("manifest.json");
    if manifest_path.exists() {
        let entries: Value = serde_json::from_slice(&std::fs::read(&manifest_path)?)
            .context("manifest.json is not JSON")?;
        let mut found = Vec::new();
        for e in entries.as_array().into_iter().flatten() {
            let config = e["Config"]
                .as_str()
                .ok_or_else(|| anyhow!("manifest.json: an entry without Config"))?;
            let layers: Vec<String> = e["Layers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect();
            let tags: Vec<&str> = e["RepoTags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if tags.is_empty() {
                bail!("manifest.json: an image without RepoTags; save it by name (docker save NAME:TAG)");
            }
            for t in tags {
                let (repo, tag) = split_reference(t, default_host)
                    .ok_or_else(|| anyhow!("manifest.json: `{t}` is not an image reference"))?;
                found.push(Found {
                    repo,
                    tag,
                    kind: FoundKind::Legacy {
                        config: config.to_string(),
                        layers: layers.clone(),
                    },
                });
            }
        }
        return Ok(found);
    }
    bail!("neither an OCI image layout (index.json) nor a docker save archive (manifest.json)")
}

pub struct Importer {
    registry: Registry,
    pub outcome: Outcome,
    /// Called with the size of every blob file handled, for progress.
    pub on_bytes: Box<dyn Fn(u64) + Send + Sync>,
}

impl Importer {
    pub fn new(registry: Registry) -> Self {
        Importer {
            registry,
            outcome: Outcome::default(),
            on_bytes: Box::new(|_| {}),
        }
    }

    /// Imports one image; `Ok(true)` if anything was new.
    pub async fn import(&mut self, source: &Source, found: &Found) -> anyhow::Result<bool> {
        let before = (self.outcome.blobs_new, self.outcome.images_new);
        let (digest, entry) = match &found.kind {
            FoundKind::Layout { digest, media_type } => {
                self.layout_manifest(&source.root, &found.repo, digest, media_type.as_deref())
                    .await?
            }
            FoundKind::Legacy { config, layers } => {
                self.legacy(&source.root, &found.repo, config, layers)
                    .await?
            }
        };
        let added = self
            .register(&found.repo, &digest, entry, found.tag.as_deref())
            .await?;
        if added {
            self.outcome.images_new += 1;
        } else {
            self.outcome.images_present += 1;
        }
        Ok((self.outcome.blobs_new, self.outcome.images_new) != before)
    }

    async fn blob_file(&mut self, repo: &str, path: &Path, digest: &Digest) -> anyhow::Result<u64> {
        let size = std::fs::metadata(path)
            .with_context(|| {
                format!(
                    "blob {digest} is missing from the source ({})",
                    path.display()
                )
            })?
            .len();
        if self.registry.blobs().exists(digest).await? {
            self.outcome.blobs_present += 1;
        } else {
            let stored = self
                .registry
                .blobs()
                .put_file(path, digest.algorithm())
                .await
                .with_context(|| format!("{}", path.display()))?;
            if &stored.digest != digest {
                bail!(
                    "{}: content is {}, not {digest} as the image says",
                    path.display(),
                    stored.digest
                );
            }
            self.outcome.blobs_new += 1;
            self.outcome.bytes_new += size;
        }
        self.registry.link_blob(repo, digest).await?;
        (self.on_bytes)(size);
        Ok(size)
    }

    /// A manifest or index from a layout, children and blobs first.
    async fn layout_manifest(
        &mut self,
        root: &Path,
        repo: &str,
        digest: &Digest,
        media_type: Option<&str>,
    ) -> anyhow::Result<(Digest, ManifestEntry)> {
        let path = blob_path(root, digest);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("manifest {digest} is missing from the layout"))?;
        if bytes.len() > super::MAX_MANIFEST_BYTES {
            bail!(
                "manifest {digest} is larger than {} bytes",
                super::MAX_MANIFEST_BYTES
            );
        }
        if Digest::of_bytes(digest.algorithm(), &bytes) != *digest {
            bail!(
                "{}: content does not match its digest {digest}",
                path.display()
            );
        }
        let inspected: Inspected = manifest::inspect(&bytes, media_type)
            .map_err(|e| anyhow!("manifest {digest}: {}", e.message))?;
        let body: Value = serde_json::from_slice(&bytes)?;
        for child in body["manifests"].as_array().into_iter().flatten() {
            let child_digest: Digest = child["digest"].as_str().unwrap_or_default().parse()?;
            if !blob_path(root, &child_digest).exists() {
                // Multi-platform indexes saved for one platform list the others without
                // their content; clients pick the platform that is there.
                continue;
            }
            let (d, entry) = Box::pin(self.layout_manifest(
                root,
                repo,
                &child_digest,
                child["mediaType"].as_str(),
            ))
            .await?;
            self.register(repo, &d, entry, None).await?;
        }
        for blob in &inspected.blobs {
            self.blob_file(repo, &blob_path(root, blob), blob).await?;
        }
        self.registry
            .blobs()
            .put(
                digest,
                bytes_stream(bytes.clone()),
                Some(bytes.len() as u64),
            )
            .await?;
        Ok((
            digest.clone(),
            ManifestEntry::new(&inspected, bytes.len() as u64),
        ))
    }

    /// A Docker schema 2 manifest for a legacy `docker save` entry.
    async fn legacy(
        &mut self,
        root: &Path,
        repo: &str,
        config: &str,
        layers: &[String],
    ) -> anyhow::Result<(Digest, ManifestEntry)> {
        let inside = |p: &str| -> anyhow::Result<PathBuf> {
            let path = root.join(p);
            let real = path
                .canonicalize()
                .with_context(|| format!("{p} is missing from the archive"))?;
            if !real.starts_with(root.canonicalize()?) {
                bail!("{p} points outside the archive");
            }
            Ok(real)
        };
        let config_path = inside(config)?;
        let (config_digest, config_size) =
            crate::store::hash_file(&config_path, Algorithm::Sha256).await?;
        self.blob_file(repo, &config_path, &config_digest).await?;
        let mut descriptors = Vec::new();
        for layer in layers {
            let path = inside(layer)?;
            let (digest, size) = crate::store::hash_file(&path, Algorithm::Sha256).await?;
            self.blob_file(repo, &path, &digest).await?;
            let mut magic = [0u8; 2];
            let n = std::io::Read::read(&mut std::fs::File::open(&path)?, &mut magic)?;
            let media_type = if n == 2 && magic == [0x1f, 0x8b] {
                "application/vnd.docker.image.rootfs.diff.tar.gzip"
            } else {
                "application/vnd.docker.image.rootfs.diff.tar"
            };
            descriptors.push(serde_json::json!({
                "mediaType": media_type, "size": size, "digest": digest.to_string(),
            }));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": config_size, "digest": config_digest.to_string()},
            "layers": descriptors,
        });
        let bytes = serde_json::to_vec_pretty(&manifest)?;
        let digest = Digest::of_bytes(Algorithm::Sha256, &bytes);
        let inspected = manifest::inspect(&bytes, Some(DOCKER_MANIFEST))
            .map_err(|e| anyhow!("generated manifest: {}", e.message))?;
        self.registry
            .blobs()
            .put(
                &digest,
                bytes_stream(Bytes::from(bytes.clone())),
                Some(bytes.len() as u64),
            )
            .await?;
        Ok((digest, ManifestEntry::new(&inspected, bytes.len() as u64)))
    }

    /// Enters a manifest (and its tag) in the repository; `true` if that changed anything.
    async fn register(
        &self,
        repo: &str,
        digest: &Digest,
        entry: ManifestEntry,
        tag: Option<&str>,
    ) -> anyhow::Result<bool> {
        let (claim, gone) = self
            .registry
            .claim_manifest(digest, &entry.media_type)
            .await
            .map_err(|e| anyhow!("{}", e.message))?;
        let recorded = match gone.first() {
            Some(d) => Err(anyhow!(
                "{d} was removed by garbage collection while the import ran; run the import again"
            )),
            None => self
                .registry
                .record_manifest(repo, digest, entry, tag)
                .await
                .map_err(|e| anyhow!("{}", e.message)),
        };
        claim.release().await;
        recorded
    }
}

/// Bytes of blob files a source holds (for the progress bar).
pub fn total_bytes(source: &Source) -> u64 {
    fn walk(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => walk(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    }
    walk(&source.root)
}
