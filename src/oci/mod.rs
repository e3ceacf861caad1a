//! The OCI distribution API at `/v2/`.

use crate::server::AppState;
use axum::Router;
use serde::Deserialize;

/// `[oci]` in the config file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OciSettings {}

impl OciSettings {
    pub fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
}
