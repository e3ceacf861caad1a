//! `[model_images]`: the base image of the modelcars.

use serde::Deserialize;

/// `[model_images]` in the config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelImageSettings {
    /// The image modelcars are built on (`name:tag` or `name@digest`), already in the
    /// registry; it needs `sh`, `ln` and `sleep` for KServe. Empty: no modelcars.
    pub base: String,
}

impl Default for ModelImageSettings {
    fn default() -> Self {
        ModelImageSettings {
            base: "docker.io/library/busybox:latest".into(),
        }
    }
}

impl ModelImageSettings {
    pub fn validate(&self) -> Result<(), String> {
        let name = self.base.split('@').next().unwrap_or_default();
        let name = match name.rsplit_once(':') {
            Some((n, tag)) if !tag.contains('/') => n,
            _ => name,
        };
        if !self.base.is_empty() && crate::oci::canonical(name, None, "docker.io").is_err() {
            return Err(format!(
                "`model_images.base`: `{}` is not an image reference; write e.g. docker.io/library/busybox:latest",
                self.base
            ));
        }
        Ok(())
    }
}
