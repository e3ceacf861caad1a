//! The reserved name space and what its tags mean.
//!
//! `huggingface.co/<org>/<name>`: a first segment with a `.` is a registry host to every
//! OCI client and to `oci::names::canonical`, so these names never meet Docker Hub's
//! (`airlock:8080/hf/org/x` would be `docker.io/hf/org/x`). Nothing is stored under
//! them; pushes and the OCI pull-through are refused (the Hub's pull-through brings the
//! repositories in: `ModelImages::pull_revision`).
//!
//! Tags: `<rev>` is the KServe modelcar image (an index over the base image's
//! platforms), `<rev>-modelpack` the CNCF ModelPack artifact; `<rev>` is a branch, a tag
//! or a 40-hex commit id. A branch or tag name with `/` is no OCI tag: pull its commit id.

use crate::oci::names::is_valid_tag;

pub const HOST: &str = "huggingface.co";
pub const MODELPACK_SUFFIX: &str = "-modelpack";

/// The HF repo id as the OCI name spells it (lowercase), if the name is reserved.
pub fn lowercase_id(name: &str) -> Option<&str> {
    name.strip_prefix(HOST)?.strip_prefix('/')
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    ModelCar,
    ModelPack,
}

/// `main` → (main, modelcar); `main-modelpack` → (main, ModelPack).
pub fn parse_tag(tag: &str) -> (&str, Kind) {
    match tag.strip_suffix(MODELPACK_SUFFIX) {
        Some(rev) if !rev.is_empty() => (rev, Kind::ModelPack),
        _ => (tag, Kind::ModelCar),
    }
}

/// The tags a repository's revisions answer to, sorted.
pub fn tags_of<'a>(revisions: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut tags: Vec<String> = revisions
        .flat_map(|rev| [rev.clone(), format!("{rev}{MODELPACK_SUFFIX}")])
        .filter(|t| is_valid_tag(t))
        .collect();
    tags.sort();
    tags.dedup();
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names_and_tags() {
        assert_eq!(lowercase_id("huggingface.co/org/tiny"), Some("org/tiny"));
        assert_eq!(lowercase_id("huggingface.co/gpt2"), Some("gpt2"));
        assert_eq!(lowercase_id("huggingface.com/org/x"), None);
        assert_eq!(lowercase_id("docker.io/hf/org/x"), None);
        assert_eq!(parse_tag("main"), ("main", Kind::ModelCar));
        assert_eq!(parse_tag("v1-modelpack"), ("v1", Kind::ModelPack));
        assert_eq!(parse_tag("-modelpack"), ("-modelpack", Kind::ModelCar));
        let revs = ["main".to_string(), "feature/x".to_string(), "v1.0".into()];
        assert_eq!(
            tags_of(revs.iter()),
            ["main", "main-modelpack", "v1.0", "v1.0-modelpack"]
        );
    }
}
