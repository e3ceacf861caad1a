//! The one outbound stack: everything Airlock fetches from elsewhere goes through here,
//! whether for `airlock mirror` or for pull-through.
//!
//! - `client.rs`: one HTTP client with two named profiles (`pull_through`: bounded
//!   connect and read times, no retries; `mirror`: retries with backoff, a concurrency
//!   limit), credentials sent to their own origin only.
//! - `token.rs`: the registry token flow (Bearer challenge, token realm, Basic), tokens
//!   cached per scope.
//! - `simple.rs`: the PEP 691 JSON / PEP 503 HTML project page reader, bounded and linear.
//! - `hf.rs`: a Hub repository at a revision, and a commit's tree.
//! - `upstream.rs` and `fill.rs`: a pull-through upstream (TTL, revalidation shared by
//!   concurrent callers) and the filler that makes concurrent misses of one blob share
//!   one fetch, streamed to the first client while the store verifies it.
//!
//! Pull-through, the protocols' side (`oci/pullthrough.rs`, `pypi/pullthrough.rs`,
//! `hf/pullthrough.rs`):
//! - A miss is fetched from the upstream, streamed to the client that asked while it is
//!   written to the store (verified against its digest before it becomes visible).
//! - Mutable lookups (tags, branches, project pages) are revalidated against the upstream
//!   once per `upstream_ttl`; concurrent revalidations of one name share one request.
//! - When the upstream is down, what is stored keeps being served, however stale; a miss
//!   is the protocol's 5xx, never a "not found" a client would believe. Only the upstream
//!   saying 404 makes a miss a 404.
//!
//! This module sits directly above the store: it knows nothing of the protocols, the
//! server or the configuration file.

mod client;
pub mod fill;
pub mod hf;
pub mod simple;
pub mod token;
mod upstream;

pub use client::{error_chain, Client, FetchError, Profile, Req, Small};
pub use fill::{Filled, Filler, Open};
pub use upstream::{
    body_of, revalidate, Lookup, Upstream, UpstreamError, UpstreamSettings, DEFAULT_TTL,
};

/// Every manifest media type Airlock stores (exactly those the registry accepts on push),
/// asked for by every manifest request: an upstream serves only what the request
/// accepts, and asking for a type that would then be refused wastes the fetch.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";
