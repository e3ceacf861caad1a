//! The images of one commit, generated in memory: their manifests and every blob they
//! name, by digest. A pure function of the commit (and of the base image for the
//! modelcar), so cached without expiry.

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
    /// What `<rev>` and `<rev>-modelpack` point at.
    pub tags: HashMap<Kind, Digest>,
    pub manifests: HashMap<Digest, SynthManifest>,
    pub blobs: HashMap<Digest, SynthBlob>,
    /// Roughly what this holds in memory, for the cache's byte bound.
    pub bytes: usize,
}

impl Images {
    /// A generated document: served as a blob (configs; clients may fetch manifests
    /// through the blob endpoint too).
    pub fn add_document(&mut self, bytes: Bytes) -> Digest {
        let digest = Digest::of_bytes(Algorithm::Sha256, &bytes);
        self.bytes += bytes.len() + 128;
        let size = bytes.len() as u64;
        let reader = Arc::new(InMemory(bytes));
        self.blobs
            .insert(digest.clone(), SynthBlob::Generated { size, reader });
        digest
    }

    pub fn add_manifest(&mut self, media_type: &'static str, bytes: Vec<u8>) -> Digest {
        let bytes = Bytes::from(bytes);
        let digest = self.add_document(bytes.clone());
        self.manifests
            .insert(digest.clone(), SynthManifest { media_type, bytes });
        digest
    }

    pub fn add_blob(&mut self, digest: Digest, blob: SynthBlob) {
        self.bytes += 160;
        self.blobs.insert(digest, blob);
    }
}

/// The ModelPack artifact of a commit; `file_blob` is how a repository file is served.
pub fn modelpack(
    repo_id: &str,
    view: &CommitView,
    file_blob: impl Fn(&FileEntry) -> Option<SynthBlob>,
) -> Images {
    let commit = &view.commit;
    let mut images = Images::default();
    for f in &commit.files {
        if let (Some(blob), Ok(d)) = (file_blob(f), Digest::sha256_hex(&f.sha256)) {
            images.add_blob(d, blob);
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
    let digest = images.add_manifest(modelpack::OCI_MANIFEST, manifest);
    images.tags.insert(Kind::ModelPack, digest);
    images
}
