//! What a pushed manifest says about itself: its media type, what it references and
//! what the referrers API reports for it. The bytes themselves are never rewritten.

use super::error::{Code, OciError, Result};
use crate::digest::Digest;
use serde_json::Value;
use std::collections::BTreeMap;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The media types a manifest may be pushed and served as: the OCI image spec's and
/// Docker's schema 2. Anything else (`text/html` above all) would be served from
/// Airlock's origin with the type its pusher chose.
pub fn is_index_type(media_type: &str) -> Option<bool> {
    match media_type {
        OCI_INDEX | DOCKER_LIST => Some(true),
        OCI_MANIFEST | DOCKER_MANIFEST => Some(false),
        _ => None,
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inspected {
    pub media_type: String,
    pub subject: Option<Digest>,
    /// The manifest's `artifactType`, else its config's media type (referrers report it).
    pub artifact_type: Option<String>,
    pub annotations: Option<BTreeMap<String, String>>,
    /// Config and layers that must already be in the repository.
    pub blobs: Vec<Digest>,
    /// Manifests an index lists, which must already be in the repository.
    pub children: Vec<Digest>,
}

fn invalid(why: impl Into<String>) -> OciError {
    OciError::new(Code::ManifestInvalid, why)
}

struct Descriptor {
    media_type: Option<String>,
    digest: Digest,
    has_urls: bool,
}

fn descriptor(v: &Value, field: &str) -> Result<Descriptor> {
    let obj = v
        .as_object()
        .ok_or_else(|| invalid(format!("`{field}` is not a descriptor object")))?;
    let digest = obj
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("`{field}` has no digest")))?;
    let digest: Digest = digest
        .parse()
        .map_err(|e| invalid(format!("`{field}` digest `{digest}`: {e}")))?;
    if obj.get("size").is_none_or(|s| s.as_u64().is_none()) {
        return Err(invalid(format!("`{field}` has no valid size")));
    }
    Ok(Descriptor {
        media_type: obj
            .get("mediaType")
            .and_then(Value::as_str)
            .map(str::to_string),
        digest,
        has_urls: obj
            .get("urls")
            .and_then(Value::as_array)
            .is_some_and(|u| !u.is_empty()),
    })
}

fn descriptors(body: &Value, field: &str) -> Result<Vec<Descriptor>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(|d| descriptor(d, field)).collect(),
        Some(_) => Err(invalid(format!("`{field}` is not an array"))),
    }
}

/// Checks a manifest as pushed with `content_type` (the request's, parameters removed).
pub fn inspect(bytes: &[u8], content_type: Option<&str>) -> Result<Inspected> {
    let body: Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("manifest is not JSON: {e}")))?;
    if !body.is_object() {
        return Err(invalid("manifest is not a JSON object"));
    }
    match body.get("schemaVersion").and_then(Value::as_u64) {
        Some(2) => {}
        Some(1) => {
            return Err(invalid(
                "schema 1 manifests are not supported; push a schema 2 or OCI manifest",
            ))
        }
        _ => return Err(invalid("schemaVersion must be 2")),
    }
    let declared = match body.get("mediaType") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) => Some(d.as_str()),
        Some(_) => return Err(invalid("`mediaType` is not a string")),
    };
    let content_type = content_type.filter(|c| !c.is_empty());
    if let (Some(declared), Some(ct)) = (declared, content_type) {
        if declared != ct {
            return Err(invalid(format!(
                "Content-Type `{ct}` differs from the manifest's mediaType `{declared}`"
            )));
        }
    }
    // Both shapes at once is the CVE-2021-41190 ambiguity: one client reads an image,
    // another an index, under the same digest.
    let has_index_fields = body.get("manifests").is_some();
    let has_image_fields = body.get("config").is_some() || body.get("layers").is_some();
    let media_type = match content_type.or(declared) {
        Some(t) => t.to_string(),
        None if has_index_fields && has_image_fields => {
            return Err(invalid(
                "a manifest with both `manifests` and `config`/`layers` is ambiguous",
            ))
        }
        None if has_index_fields => OCI_INDEX.to_string(),
        None => OCI_MANIFEST.to_string(),
    };
    let is_index = is_index_type(&media_type).ok_or_else(|| {
        invalid(format!(
            "media type `{media_type}` is not a manifest type: push it as {OCI_MANIFEST}, {OCI_INDEX}, {DOCKER_MANIFEST} or {DOCKER_LIST}"
        ))
    })?;
    if is_index && has_image_fields {
        return Err(invalid(format!(
            "an index ({media_type}) has no `config` or `layers`"
        )));
    }
    if !is_index && has_index_fields {
        return Err(invalid(format!(
            "an image manifest ({media_type}) has no `manifests`"
        )));
    }

    let mut inspected = Inspected {
        media_type,
        ..Default::default()
    };
    inspected.children = descriptors(&body, "manifests")?
        .into_iter()
        .map(|d| d.digest)
        .collect();
    let mut config_type = None;
    if let Some(config) = body.get("config") {
        let config = descriptor(config, "config")?;
        config_type = config.media_type.clone();
        inspected.blobs.push(config.digest);
    } else if !is_index {
        return Err(invalid("an image manifest needs a `config` descriptor"));
    }
    // Non-distributable layers (with `urls`) are never pushed.
    inspected.blobs.extend(
        descriptors(&body, "layers")?
            .into_iter()
            .filter(|d| !d.has_urls)
            .map(|d| d.digest),
    );
    if let Some(subject) = body.get("subject").filter(|s| !s.is_null()) {
        inspected.subject = Some(descriptor(subject, "subject")?.digest);
    }
    inspected.artifact_type = body
        .get("artifactType")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or(config_type.filter(|_| !is_index));
    if let Some(annotations) = body.get("annotations").and_then(Value::as_object) {
        inspected.annotations = Some(
            annotations
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect(),
        );
    }
    Ok(inspected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn reads_image_manifests_indexes_and_artifacts() {
        let m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/x-sbom",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": d('a'), "size": 2},
            "layers": [
                {"mediaType": "x", "digest": d('b'), "size": 1},
                {"mediaType": "x", "digest": d('c'), "size": 1, "urls": ["https://x"]}
            ],
            "subject": {"mediaType": OCI_MANIFEST, "digest": d('e'), "size": 10},
            "annotations": {"k": "v"}
        });
        let i = inspect(m.to_string().as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(i.blobs.len(), 2);
        assert_eq!(i.subject.unwrap().to_string(), d('e'));
        assert_eq!(i.artifact_type.as_deref(), Some("application/x-sbom"));
        assert_eq!(i.annotations.unwrap()["k"], "v");

        let idx = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": OCI_MANIFEST, "digest": d('f'), "size": 3}]});
        let i = inspect(idx.to_string().as_bytes(), None).unwrap();
        assert_eq!(i.media_type, OCI_INDEX);
        assert_eq!(i.children.len(), 1);
        assert!(i.artifact_type.is_none());
    }

    #[test]
    fn refuses_what_is_not_a_manifest() {
        assert!(inspect(b"not json", None).is_err());
        assert!(inspect(b"[]", None).is_err());
        assert!(inspect(br#"{"schemaVersion":1}"#, None).is_err());
        let m = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": "sha256:zz", "size": 1}, "layers": []});
        assert!(inspect(m.to_string().as_bytes(), None).is_err());
        let m = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": d('a'), "size": 1}});
        assert!(inspect(m.to_string().as_bytes(), Some(OCI_INDEX)).is_err());
    }

    #[test]
    fn upstreams_are_asked_for_exactly_the_types_a_push_may_carry() {
        let asked: Vec<&str> = crate::remote::MANIFEST_ACCEPT
            .split(',')
            .map(str::trim)
            .collect();
        assert!(
            asked.iter().all(|t| is_index_type(t).is_some()),
            "{asked:?}"
        );
        for t in [OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST, DOCKER_LIST] {
            assert!(asked.contains(&t), "{t}");
        }
    }

    #[test]
    fn only_manifest_media_types() {
        let m = |media: Option<&str>| {
            let mut v = serde_json::json!({"schemaVersion": 2,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d('a'), "size": 2},
                "layers": [], "annotations": {"x": "<script>alert(1)</script>"}});
            if let Some(t) = media {
                v["mediaType"] = t.into();
            }
            v.to_string()
        };
        for bad in [
            "text/html",
            "application/json",
            "image/svg+xml",
            "application/vnd.oci.artifact.manifest.v1+json",
        ] {
            let e = inspect(m(None).as_bytes(), Some(bad)).unwrap_err();
            assert_eq!(e.code, Code::ManifestInvalid, "{bad}");
            assert!(
                inspect(m(Some(bad)).as_bytes(), None).is_err(),
                "{bad} in the body"
            );
        }
        assert_eq!(
            inspect(m(None).as_bytes(), Some(DOCKER_MANIFEST))
                .unwrap()
                .media_type,
            DOCKER_MANIFEST
        );
        assert!(inspect(m(Some(OCI_MANIFEST)).as_bytes(), Some(DOCKER_MANIFEST)).is_err());
        let not_a_string = serde_json::json!({"schemaVersion": 2, "mediaType": 7, "config": {"digest": d('a'), "size": 1}});
        assert!(inspect(not_a_string.to_string().as_bytes(), None).is_err());
    }

    #[test]
    fn refuses_ambiguous_documents() {
        let config = serde_json::json!({"mediaType": "x", "digest": d('a'), "size": 2});
        let child = serde_json::json!([{"mediaType": OCI_MANIFEST, "digest": d('b'), "size": 3}]);
        let both = serde_json::json!({"schemaVersion": 2, "config": config, "layers": [], "manifests": child});
        for ct in [
            None,
            Some(OCI_MANIFEST),
            Some(OCI_INDEX),
            Some(DOCKER_MANIFEST),
            Some(DOCKER_LIST),
        ] {
            assert!(inspect(both.to_string().as_bytes(), ct).is_err(), "{ct:?}");
        }
        let index_with_layers = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": child, "layers": []});
        assert!(inspect(index_with_layers.to_string().as_bytes(), None).is_err());
        let image_with_manifests = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "manifests": []});
        assert!(inspect(image_with_manifests.to_string().as_bytes(), None).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// Arbitrary bytes: refused or inspected, never a panic; what is inspected names
        /// no more blobs than the document has bytes.
        #[test]
        fn arbitrary_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1024)) {
            if let Ok(i) = inspect(&bytes, None) {
                proptest::prop_assert!(i.blobs.len() + i.children.len() <= bytes.len());
            }
        }

        /// Manifest-shaped JSON with the fields that matter: accepted only with a
        /// manifest media type, and only in the shape that type has.
        #[test]
        fn manifest_shapes(media in proptest::option::of(proptest::sample::select(vec![OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST, "text/html", ""])),
                           ct in proptest::option::of(proptest::sample::select(vec![OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST, "text/html"])),
                           config in proptest::prelude::any::<bool>(),
                           layers in 0usize..3,
                           manifests in proptest::option::of(0usize..3)) {
            let desc = serde_json::json!({"mediaType": "x", "digest": d('c'), "size": 1});
            let mut v = serde_json::json!({"schemaVersion": 2});
            if let Some(m) = media { v["mediaType"] = m.into(); }
            if config { v["config"] = desc.clone(); }
            if layers > 0 { v["layers"] = vec![desc.clone(); layers].into(); }
            if let Some(n) = manifests { v["manifests"] = vec![desc.clone(); n].into(); }
            if let Ok(i) = inspect(v.to_string().as_bytes(), ct) {
                match is_index_type(&i.media_type) {
                    Some(true) => proptest::prop_assert!(!config && layers == 0),
                    Some(false) => proptest::prop_assert!(config && manifests.is_none()),
                    None => proptest::prop_assert!(false, "served as {}", i.media_type),
                }
            }
        }
    }
}
