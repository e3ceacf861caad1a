//! The images of one commit, generated in memory: their manifests and every blob they
//! name, by digest. A pure function of the commit, so cached without expiry.

use super::modelpack::{self, Descriptor};
use super::names::Kind;
use crate::digest::{Algorithm, Digest};
use crate::hf::model::{CommitView, FileEntry};
use crate::oci::synthesized::{InMemory, SynthBlob, SynthManifest};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct Images {
    pub manifests: HashMap<Kind, (Digest, SynthManifest)>,
    pub blobs: HashMap<Digest, SynthBlob>,
    /// Roughly what this holds in memory, for the cache's byte bound.
    pub bytes: usize,
}

impl Images {
    pub fn manifest_by_digest(&self, digest: &Digest) -> Option<&SynthManifest> {
        self.manifests
            .values()
            .find(|(d, _)| d == digest)
            .map(|(_, m)| m)
    }

    /// A generated document: served as a manifest or a blob, or both (clients may fetch
    /// manifests through the blob endpoint).
    fn add_document(&mut self, bytes: Bytes) -> Digest {
        let digest = Digest::of_bytes(Algorithm::Sha256, &bytes);
        self.bytes += bytes.len() + 128;
        let size = bytes.len() as u64;
        let reader = Arc::new(InMemory(bytes));
        self.blobs
            .insert(digest.clone(), SynthBlob::Generated { size, reader });
        digest
    }

    fn add_manifest(&mut self, kind: Kind, media_type: &'static str, bytes: Vec<u8>) {
        let bytes = Bytes::from(bytes);
        let digest = self.add_document(bytes.clone());
        self.manifests
            .insert(kind, (digest, SynthManifest { media_type, bytes }));
    }
}

/// Builds the images of a commit; `file_blob` is how a repository file is served.
pub fn build(
    repo_id: &str,
    view: &CommitView,
    file_blob: impl Fn(&FileEntry) -> Option<SynthBlob>,
) -> Images {
    let commit = &view.commit;
    let mut images = Images::default();
    for f in &commit.files {
        if let (Some(blob), Ok(d)) = (file_blob(f), Digest::sha256_hex(&f.sha256)) {
            images.bytes += f.path.len() + 160;
            images.blobs.insert(d, blob);
        }
    }
    let config = Bytes::from(modelpack::config(repo_id, &commit.id, &commit.files));
    let config_descriptor = Descriptor {
        media_type: modelpack::CONFIG_TYPE,
        digest: Digest::of_bytes(Algorithm::Sha256, &config).to_string(),
        size: config.len() as u64,
        platform: None,
        annotations: Default::default(),
    };
    images.add_document(config);
    let layers = modelpack::layers(&commit.files);
    let manifest = modelpack::manifest(&config_descriptor, &layers, &commit.id);
    images.add_manifest(Kind::ModelPack, modelpack::OCI_MANIFEST, manifest);
    images
}
