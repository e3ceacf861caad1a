//! Airlock: Hugging Face Hub, Python simple index and OCI registry APIs served from one
//! content-addressed object store, for air-gapped machine-learning platforms.

pub mod admin;
pub mod auth;
pub mod bundle;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod connections;
pub mod digest;
pub mod download;
pub mod drain;
pub mod gc;
pub mod hf;
pub mod metrics;
pub mod mirror;
pub mod modelimage;
pub mod observe;
pub mod oci;
pub mod progress;
pub mod pypi;
pub mod quota;
pub mod remote;
pub mod s3api;
pub mod sendfile;
pub mod server;
pub mod site;
pub mod spec;
pub mod store;
pub mod tls;
pub mod ui;
pub mod xet;
