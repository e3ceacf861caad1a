//! Airlock: Hugging Face Hub, Python simple index and OCI registry APIs served from one
//! content-addressed object store, for air-gapped machine-learning platforms.

pub mod digest;
pub mod store;
