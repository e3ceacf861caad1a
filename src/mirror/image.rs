//! Image references and platform choice for `[[oci]]` items: pure functions, apart
//! from the network side in `oci.rs`.

use crate::digest::Digest;
use serde_json::Value;
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

/// `host/path:tag` or `host/path@sha256:...` -> (canonical `host/path`, reference).
pub fn parse_image(image: &str) -> Result<(String, Reference), String> {
    let (name, reference) = match image.split_once('@') {
        Some((name, digest)) => {
            let d: Digest = digest
                .parse()
                .map_err(|e| format!("`{image}`: digest: {e}"))?;
            // `name:tag@digest`: the digest decides.
            let name = match name.rsplit_once(':') {
                Some((n, t)) if !t.contains('/') => n,
                _ => name,
            };
            (name, Reference::Digest(d))
        }
        None => match image.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, Reference::Tag(t.to_string())),
            _ => (image, Reference::Tag("latest".to_string())),
        },
    };
    let canonical = crate::oci::canonical(name, None, "docker.io").map_err(|e| e.0)?;
    Ok((canonical, reference))
}

/// Whether a `url` is the registry `host` itself (else it is a mirror that needs `?ns=`).
pub fn is_the_registry(host: &str, url: &str) -> bool {
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    let authority = match (u.host_str(), u.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => return false,
    };
    authority == host
        || (host == "docker.io"
            && ["registry-1.docker.io", "index.docker.io"].contains(&authority.as_str()))
}

/// `os/arch[/variant]` patterns; a pattern without a variant takes every variant.
fn platform_chosen(platform: &Value, chosen: &[String]) -> bool {
    let os = platform["os"].as_str().unwrap_or_default();
    let arch = platform["architecture"].as_str().unwrap_or_default();
    let variant = platform["variant"].as_str();
    chosen.iter().any(|p| {
        let mut parts = p.split('/');
        let (want_os, want_arch, want_variant) = (parts.next(), parts.next(), parts.next());
        want_os == Some(os)
            && want_arch == Some(arch)
            && want_variant.is_none_or(|v| Some(v) == variant)
    })
}

/// The children of an index the spec asks for: the chosen platforms, and attestation
/// manifests (`vnd.docker.reference.digest`) of those.
pub fn choose_children(index: &Value, chosen: &[String]) -> Vec<(Digest, Option<String>)> {
    let children: Vec<&Value> = index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let mut picked: BTreeSet<String> = BTreeSet::new();
    for c in &children {
        if chosen.is_empty() || platform_chosen(&c["platform"], chosen) {
            picked.extend(c["digest"].as_str().map(str::to_string));
        }
    }
    for c in &children {
        let refers = c["annotations"]["vnd.docker.reference.digest"].as_str();
        if refers.is_some_and(|d| picked.contains(d)) {
            picked.extend(c["digest"].as_str().map(str::to_string));
        }
    }
    children
        .iter()
        .filter(|c| c["digest"].as_str().is_some_and(|d| picked.contains(d)))
        .filter_map(|c| {
            Some((
                c["digest"].as_str()?.parse().ok()?,
                c["mediaType"].as_str().map(str::to_string),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            parse_image("busybox").unwrap(),
            (
                "docker.io/library/busybox".into(),
                Reference::Tag("latest".into())
            )
        );
        assert_eq!(
            parse_image("localhost:5000/team/app:v1").unwrap(),
            (
                "localhost:5000/team/app".into(),
                Reference::Tag("v1".into())
            )
        );
        assert_eq!(
            parse_image(&format!("quay.io/org/app:v1@{d}")).unwrap(),
            (
                "quay.io/org/app".into(),
                Reference::Digest(d.parse().unwrap())
            )
        );
        assert!(parse_image("UPPER/case").is_err());
    }

    #[test]
    fn registry_or_mirror() {
        assert!(is_the_registry("docker.io", "https://registry-1.docker.io"));
        assert!(is_the_registry("quay.io", "https://quay.io"));
        assert!(is_the_registry("localhost:5000", "http://localhost:5000"));
        assert!(!is_the_registry("docker.io", "http://127.0.0.1:8080"));
    }

    #[test]
    fn platform_subsets() {
        let index = serde_json::json!({"manifests": [
            {"digest": format!("sha256:{}", "1".repeat(64)), "platform": {"os": "linux", "architecture": "amd64"}},
            {"digest": format!("sha256:{}", "2".repeat(64)), "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"digest": format!("sha256:{}", "3".repeat(64)), "platform": {"os": "unknown", "architecture": "unknown"},
             "annotations": {"vnd.docker.reference.digest": format!("sha256:{}", "2".repeat(64))}},
        ]});
        let hex = |v: Vec<(Digest, Option<String>)>| {
            v.into_iter()
                .map(|(d, _)| d.hex()[..1].to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(hex(choose_children(&index, &[])), ["1", "2", "3"]);
        assert_eq!(hex(choose_children(&index, &["linux/amd64".into()])), ["1"]);
        assert_eq!(
            hex(choose_children(&index, &["linux/arm64".into()])),
            ["2", "3"]
        );
        assert!(choose_children(&index, &["linux/arm64/v7".into()]).is_empty());
    }
}
