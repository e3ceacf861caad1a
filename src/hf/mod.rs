//! The Hugging Face Hub API at the root and under `/hf`.

use crate::server::AppState;
use axum::Router;
use serde::Deserialize;

/// `[hf]` in the config file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HfSettings {}

impl HfSettings {
    pub fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
}
