//! `airlock mirror --spec mirror.toml`: fills the store from upstreams that speak the
//! protocols Airlock serves (huggingface.co, a PEP 691 index, any OCI registry, or
//! another Airlock), through the same domain code the import commands use.
//!
//! Every object is verified against the digest the upstream announced before it becomes
//! visible (`BlobStore::put` streams and verifies), an object already stored is skipped
//! without being fetched, so an interrupted run is resumed by running it again, and the
//! summary lists what was new, skipped and failed (non-zero exit when anything failed).
//!
//! - `hf.rs`: repos at a revision keep the upstream's commit id, git oids and LFS sha256.
//! - `pypi.rs` (+ `simple.rs`, `requirements.rs`, `wheel.rs`): files chosen by
//!   requirement, hash, platform tag, Python version and format, with `.metadata`.
//! - `oci.rs`: images by tag or digest, an index byte-exact with the chosen platforms,
//!   referrers (`image.rs`: references, platforms).
//!
//! Every request goes through the one outbound stack (`remote::`, its `mirror` profile:
//! retries with backoff, a concurrency limit) and everything is stored through the
//! protocols' domain APIs (registry, index, repos) and the blob store.

pub(crate) mod glob;
mod hf;
mod image;
mod oci;
mod pypi;
mod report;
mod requirements;
mod wheel;

use crate::hf::repo::Repos;
use crate::oci::registry::Registry;
use crate::pypi::Index;
use crate::remote::{Client, Profile};
use crate::spec::ContentSpec;
use crate::store::{BlobStore, Stores};
use report::Report;

/// What every mirror step needs.
pub struct Mirror {
    pub blobs: BlobStore,
    pub registry: Registry,
    pub repos: Repos,
    /// The default index, where mirrored distributions go.
    pub index: Index,
    pub spec: ContentSpec,
    pub client: Client,
    pub report: Report,
    pub concurrency: usize,
    pub dry_run: bool,
    /// Downloads land here before ingestion when their digest is not known up front.
    pub scratch: tempfile::TempDir,
}

pub async fn run(
    stores: Stores,
    spec: ContentSpec,
    concurrency: usize,
    dry_run: bool,
) -> anyhow::Result<()> {
    let mirror = Mirror {
        registry: Registry::new(stores.docs.clone(), stores.blobs.clone()),
        repos: Repos::new(stores.docs.clone(), stores.blobs.clone()),
        index: Index::new(crate::pypi::DEFAULT_INDEX, stores.docs),
        blobs: stores.blobs,
        spec,
        client: Client::new(Profile::mirror(concurrency))?,
        report: Report::new(),
        concurrency: concurrency.max(1),
        dry_run,
        scratch: tempfile::Builder::new()
            .prefix("airlock-mirror-")
            .tempdir()?,
    };
    for item in &mirror.spec.hf {
        hf::mirror_item(&mirror, item).await;
    }
    for item in &mirror.spec.pypi {
        pypi::mirror_item(&mirror, item).await;
    }
    for item in &mirror.spec.oci {
        oci::mirror_item(&mirror, item).await;
    }
    mirror.report.finish(dry_run)
}
