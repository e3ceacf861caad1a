//! Pull-through caching: each protocol may name an upstream (`[oci] upstream`,
//! `[pypi] upstream`, `[hf] upstream`), often another Airlock in the next security zone.
//!
//! - A miss is fetched from the upstream, streamed to the client that asked while it is
//!   written to the store (verified against its digest before it becomes visible), and
//!   concurrent misses for one blob share one upstream fetch (`fill.rs`).
//! - Mutable lookups (tags, branches, project pages) are revalidated against the upstream
//!   once per `upstream_ttl`; concurrent revalidations of one name share one request.
//! - When the upstream is down, what is stored keeps being served, however stale; a miss
//!   is the protocol's 5xx, never a "not found" a client would believe. Only the upstream
//!   saying 404 makes a miss a 404.
//!
//! Without an upstream configured nothing here runs.

mod client;
pub mod fill;
pub mod hf;
pub mod oci;
pub mod pypi;
mod registry_client;

pub use client::{Upstream, UpstreamError, UpstreamSettings};
pub use fill::{Filled, Filler};

use crate::store::BlobStore;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// `upstream_ttl` unless configured.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// The upstreams of one server, and what they share.
#[derive(Debug)]
pub struct Upstreams {
    pub oci: Option<Arc<oci::OciUpstream>>,
    pub pypi: Option<Arc<Upstream>>,
    pub hf: Option<Arc<Upstream>>,
    pub filler: Filler,
}

impl Upstreams {
    /// One per configured `upstream`: OCI's (with the registry it stands for, if one),
    /// PyPI's and the Hub's.
    pub fn new(
        oci: (UpstreamSettings, Option<String>),
        pypi: UpstreamSettings,
        hf: UpstreamSettings,
        blobs: BlobStore,
    ) -> anyhow::Result<Upstreams> {
        let open = |section: &'static str, s: UpstreamSettings| {
            s.url
                .as_ref()
                .map(|_| Upstream::new(section, &s))
                .transpose()
        };
        Ok(Upstreams {
            oci: open("oci", oci.0)?.map(|up| Arc::new(oci::OciUpstream::new(up, oci.1))),
            pypi: open("pypi", pypi)?.map(Arc::new),
            hf: open("hf", hf)?.map(Arc::new),
            filler: Filler::new(blobs),
        })
    }
}

/// What revalidating a mutable name found upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Found, and stored.
    Stored,
    /// The upstream does not have it.
    Absent,
}

/// Revalidates `key` unless that was done within the TTL; concurrent callers for one
/// key share one upstream request. `have` is whether the store already holds a version.
/// Upstream down: fine if we have one (served stale), else the error for a 5xx.
pub async fn revalidate<F>(
    upstream: &Upstream,
    key: String,
    have: bool,
    fetch: F,
) -> Result<Lookup, UpstreamError>
where
    F: Future<Output = Result<Lookup, UpstreamError>> + Send,
{
    match upstream.fresh.try_get_with(key.clone(), fetch).await {
        Ok(found) => Ok(found),
        Err(e) if have => {
            tracing::warn!(upstream = %upstream.base, %key, error = %e, "upstream unreachable; serving the stored copy");
            // Not asked again for a TTL: a down upstream must not slow every request.
            upstream.fresh.insert(key, Lookup::Stored).await;
            Ok(Lookup::Stored)
        }
        Err(e) => Err(Arc::unwrap_or_clone(e)),
    }
}
