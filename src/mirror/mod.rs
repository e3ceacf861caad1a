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
//!   referrers (`image.rs`: references, platforms); `auth.rs` answers registry challenges.

mod auth;
mod client;
pub(crate) mod glob;
mod hf;
mod image;
mod oci;
mod pypi;
mod report;
mod requirements;
mod simple;
mod wheel;

use crate::hf::repo::Repos;
use crate::oci::registry::Registry;
use crate::spec::ContentSpec;
use crate::store::Stores;
use client::Client;
use report::Report;

/// What every mirror step needs.
pub struct Mirror {
    pub stores: Stores,
    /// The Hub's and the registry's domain objects over `stores`.
    pub repos: Repos,
    pub registry: Registry,
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
        repos: Repos::new(stores.docs.clone(), stores.blobs.clone()),
        registry: Registry::new(stores.docs.clone(), stores.blobs.clone()),
        stores,
        spec,
        client: Client::new(concurrency)?,
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
