//! The content spec: one TOML file that names models, Python projects and images.
//!
//! `airlock mirror --spec` fetches what it names from upstreams; `airlock bundle export
//! --spec` packs what it names from the local store. One format for both, so the file an
//! operator writes for the connected side also selects what crosses the gap.
//!
//! ```toml
//! [upstreams]
//! hf = "https://huggingface.co"             # or another Airlock: http://airlock:8080
//! pypi = "https://pypi.org/simple"          # a PEP 503/691 simple index
//! [upstreams.oci]                           # registry host -> URL (default https://<host>)
//! "docker.io" = "https://registry-1.docker.io"
//!
//! [[hf]]
//! repo = "org/name"
//! type = "model"                            # model | dataset
//! revisions = ["main"]                      # branches, tags or commit ids
//! allow = ["*.json", "*.safetensors"]       # globs as snapshot_download's allow_patterns
//! ignore = ["*.bin"]
//!
//! [[pypi]]
//! requirements = "requirements.txt"         # pinned `name==version` lines, hashes honoured
//! projects = ["numpy>=1.26,<2", "tokenizers"]
//! platforms = ["manylinux2014_x86_64", "any"]   # wheel platform tags; empty = all
//! python = ["3.11"]                         # empty = all
//! formats = ["wheel", "sdist"]
//!
//! [[oci]]
//! image = "docker.io/library/busybox:1.36"  # a tag or @sha256:...
//! platforms = ["linux/amd64"]               # of an index; empty = all
//! referrers = true                          # signatures, SBOMs, when the upstream has them
//! ```

use anyhow::{bail, Context};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentSpec {
    #[serde(default)]
    pub upstreams: Upstreams,
    #[serde(default)]
    pub hf: Vec<HfItem>,
    #[serde(default)]
    pub pypi: Vec<PypiItem>,
    #[serde(default)]
    pub oci: Vec<OciItem>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstreams {
    #[serde(default = "default_hf_upstream")]
    pub hf: String,
    #[serde(default = "default_pypi_upstream")]
    pub pypi: String,
    /// Registry host (as it appears in image names) to the URL to fetch it from. A host not
    /// listed is fetched from `https://<host>`, and `docker.io` from its real API host.
    #[serde(default)]
    pub oci: BTreeMap<String, String>,
}

impl Default for Upstreams {
    fn default() -> Self {
        Self {
            hf: default_hf_upstream(),
            pypi: default_pypi_upstream(),
            oci: BTreeMap::new(),
        }
    }
}

impl Upstreams {
    /// The base URL that serves `/v2/` for a registry host.
    pub fn oci_registry_url(&self, host: &str) -> String {
        match self.oci.get(host) {
            Some(url) => url.trim_end_matches('/').to_string(),
            None if host == "docker.io" => "https://registry-1.docker.io".to_string(),
            None => format!("https://{host}"),
        }
    }
}

fn default_hf_upstream() -> String {
    "https://huggingface.co".to_string()
}

fn default_pypi_upstream() -> String {
    "https://pypi.org/simple".to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HfRepoType {
    #[default]
    Model,
    Dataset,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HfItem {
    pub repo: String,
    #[serde(default, rename = "type")]
    pub repo_type: HfRepoType,
    #[serde(default = "default_revisions")]
    pub revisions: Vec<String>,
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub ignore: Vec<String>,
}

fn default_revisions() -> Vec<String> {
    vec!["main".to_string()]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DistFormat {
    Wheel,
    Sdist,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PypiItem {
    /// A pinned requirements file, relative to the spec file.
    #[serde(default)]
    pub requirements: Option<PathBuf>,
    /// Requirement strings: a name with an optional version specifier.
    #[serde(default)]
    pub projects: Vec<String>,
    #[serde(default)]
    pub platforms: Vec<String>,
    #[serde(default)]
    pub python: Vec<String>,
    #[serde(default = "default_formats")]
    pub formats: Vec<DistFormat>,
}

fn default_formats() -> Vec<DistFormat> {
    vec![DistFormat::Wheel, DistFormat::Sdist]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OciItem {
    pub image: String,
    #[serde(default)]
    pub platforms: Vec<String>,
    #[serde(default = "default_true")]
    pub referrers: bool,
}

fn default_true() -> bool {
    true
}

impl ContentSpec {
    /// Reads a spec file; relative `requirements` paths are made relative to its directory.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the spec file {}", path.display()))?;
        let mut spec: ContentSpec = toml::from_str(&text).with_context(|| {
            format!(
                "{} is not a valid content spec (see the format in the README)",
                path.display()
            )
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for item in &mut spec.pypi {
            if let Some(req) = &mut item.requirements {
                if req.is_relative() {
                    *req = base.join(&*req);
                }
            }
        }
        spec.validate()?;
        Ok(spec)
    }

    fn validate(&self) -> anyhow::Result<()> {
        for item in &self.hf {
            if item.repo.split('/').count() > 2 || item.repo.is_empty() {
                bail!("hf repo {:?}: write it as `org/name` or `name`", item.repo);
            }
            if item.revisions.is_empty() {
                bail!(
                    "hf repo {:?}: revisions is empty; leave it out for main",
                    item.repo
                );
            }
        }
        for item in &self.pypi {
            if item.requirements.is_none() && item.projects.is_empty() {
                bail!("a [[pypi]] entry needs `requirements` or `projects`");
            }
            if item.formats.is_empty() {
                bail!("a [[pypi]] entry has an empty `formats`; leave it out for both");
            }
        }
        for item in &self.oci {
            if item.image.is_empty() {
                bail!("an [[oci]] entry has an empty `image`");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let doc = include_str!("spec.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start_matches(' '))
            .collect::<Vec<_>>()
            .join("\n");
        let spec: ContentSpec = toml::from_str(&doc).unwrap();
        spec.validate().unwrap();
        assert_eq!(spec.hf[0].repo, "org/name");
        assert_eq!(spec.pypi[0].formats, [DistFormat::Wheel, DistFormat::Sdist]);
        assert_eq!(
            spec.upstreams.oci_registry_url("docker.io"),
            "https://registry-1.docker.io"
        );
        assert_eq!(
            spec.upstreams.oci_registry_url("quay.io"),
            "https://quay.io"
        );
        assert!(spec.oci[0].referrers);
    }

    #[test]
    fn refuses_unknown_keys_and_empty_items() {
        assert!(toml::from_str::<ContentSpec>("[[hf]]\nrepo = \"a/b\"\nrevison = []").is_err());
        let spec: ContentSpec = toml::from_str("[[pypi]]\nplatforms = []").unwrap();
        assert!(spec.validate().is_err());
    }
}
