//! `manifest.json` (what a bundle holds) and `have.json` (what a receiver holds).

use crate::digest::{Algorithm, Digest};
use crate::store::layout::digest_of_blob_key;
use crate::store::ObjectKey;
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};

pub const FORMAT: &str = "airlock-bundle";
pub const VERSION: u32 = 1;
pub const MANIFEST_NAME: &str = "manifest.json";
pub const SIGNATURE_NAME: &str = "manifest.json.sig";
/// Metadata a bundle may carry; everything else in the store is local state.
pub const DOC_PREFIXES: [&str; 3] = crate::store::layout::META_PREFIXES;
/// The metadata layer's own limit (`store/docs.rs`): a larger "document" is not one.
const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;
/// A manifest lists every object; a few hundred bytes each, so this allows millions.
pub const MAX_MANIFEST_BYTES: u64 = 1024 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Blob,
    Doc,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub key: String,
    pub kind: Kind,
    pub digest: Digest,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    /// RFC 3339 UTC.
    pub created: String,
    /// The exporting store and program, for the operator's records.
    pub source: String,
    /// What was selected: everything, or the spec, and whether a have.json was applied.
    #[serde(default)]
    pub selection: String,
    pub objects: Vec<Entry>,
}

/// The tar entry name of some content.
pub fn entry_name(digest: &Digest) -> String {
    format!("objects/{}/{}", digest.algorithm().as_str(), digest.hex())
}

/// The digest an `objects/<alg>/<hex>` entry name stands for.
pub fn digest_of_entry_name(name: &str) -> Option<Digest> {
    let (algorithm, hex) = name.strip_prefix("objects/")?.split_once('/')?;
    Digest::new(algorithm.parse().ok()?, hex).ok()
}

pub fn is_exportable_doc(key: &str) -> bool {
    DOC_PREFIXES.iter().any(|p| key.starts_with(p))
}

impl Manifest {
    pub fn new(source: String, selection: String, objects: Vec<Entry>) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            version: VERSION,
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            source,
            selection,
            objects,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("serializable");
        bytes.push(b'\n');
        bytes
    }

    /// Parses and checks a manifest: a tampered one fails here or when its objects are
    /// hashed, never after anything was published.
    pub fn parse(bytes: &[u8]) -> anyhow::Result<Manifest> {
        let m: Manifest = serde_json::from_slice(bytes).context(
            "manifest.json is not a valid bundle manifest (damaged or altered); copy the bundle again",
        )?;
        if m.format != FORMAT {
            bail!(
                "manifest.json is not an Airlock bundle (format {:?})",
                m.format
            );
        }
        if m.version != VERSION {
            bail!(
                "bundle format version {} is not supported (this airlock reads {VERSION}); import it with the airlock version that wrote it",
                m.version
            );
        }
        let mut keys = HashSet::new();
        for e in &m.objects {
            let bad = |why: &str| {
                anyhow::anyhow!(
                    "manifest.json: object `{}` {why}: the manifest is damaged or altered; copy the bundle again",
                    e.key
                )
            };
            ObjectKey::new(e.key.clone()).map_err(|_| bad("is not a valid store key"))?;
            if !keys.insert(e.key.as_str()) {
                return Err(bad("is listed twice"));
            }
            match e.kind {
                Kind::Blob if digest_of_blob_key(&e.key).as_ref() != Some(&e.digest) => {
                    return Err(bad("is not stored under its digest"));
                }
                Kind::Doc if !is_exportable_doc(&e.key) => {
                    return Err(bad("is not under oci/, pypi/ or hf/"));
                }
                Kind::Doc if e.size > MAX_DOCUMENT_BYTES as u64 => {
                    return Err(bad("is larger than any metadata document"));
                }
                Kind::Doc if e.digest.algorithm() != Algorithm::Sha256 => {
                    return Err(bad("has a document digest that is not sha256"));
                }
                _ => {}
            }
        }
        Ok(m)
    }

    pub fn total_bytes(&self) -> u64 {
        self.objects.iter().map(|e| e.size).sum()
    }
}

/// `airlock bundle have`: the blobs and documents a store already holds, so the sender
/// packs only the rest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Have {
    pub format: String,
    pub version: u32,
    pub blobs: BTreeSet<Digest>,
    /// Document key -> sha256 hex of its current content.
    pub docs: BTreeMap<String, String>,
}

impl Have {
    pub fn load(path: &std::path::Path) -> anyhow::Result<Have> {
        let text = std::fs::read(path).with_context(|| {
            format!(
                "cannot read {}; write it on the receiving side with `airlock bundle have > have.json`",
                path.display()
            )
        })?;
        let have: Have = serde_json::from_slice(&text).with_context(|| {
            format!(
                "{} is not a have.json written by `airlock bundle have`",
                path.display()
            )
        })?;
        if have.format != format!("{FORMAT}-have") || have.version != VERSION {
            bail!(
                "{} is not a version {VERSION} have.json; write it again with `airlock bundle have`",
                path.display()
            );
        }
        Ok(have)
    }

    /// Whether the receiver already holds exactly this object.
    pub fn holds(&self, entry: &Entry) -> bool {
        match entry.kind {
            Kind::Blob => self.blobs.contains(&entry.digest),
            Kind::Doc => self.docs.get(&entry.key).map(String::as_str) == Some(entry.digest.hex()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::layout::blob_key;

    fn sample() -> Manifest {
        let blob = Digest::of_bytes(Algorithm::Sha256, b"wheel");
        let doc = Digest::of_bytes(Algorithm::Sha256, b"{}");
        Manifest::new(
            "test".into(),
            "everything".into(),
            vec![
                Entry {
                    key: blob_key(&blob).to_string(),
                    kind: Kind::Blob,
                    digest: blob,
                    size: 5,
                },
                Entry {
                    key: "oci/catalog.json".into(),
                    kind: Kind::Doc,
                    digest: doc,
                    size: 2,
                },
            ],
        )
    }

    #[test]
    fn round_trips_and_names_entries() {
        let m = sample();
        assert_eq!(Manifest::parse(&m.to_bytes()).unwrap(), m);
        let d = &m.objects[0].digest;
        assert_eq!(digest_of_entry_name(&entry_name(d)).as_ref(), Some(d));
        assert_eq!(digest_of_entry_name("objects/sha256/../x"), None);
        assert_eq!(m.total_bytes(), 7);
    }

    #[test]
    fn refuses_tampered_manifests() {
        let mut m = sample();
        m.objects[0].key = blob_key(&m.objects[1].digest).to_string();
        assert!(
            Manifest::parse(&m.to_bytes()).is_err(),
            "blob under another digest"
        );

        let mut m = sample();
        m.objects[1].key = "uploads/oci/x/state.json".into();
        assert!(Manifest::parse(&m.to_bytes()).is_err(), "upload session");

        let mut m = sample();
        m.objects[1].key = "oci/../../etc/passwd".into();
        assert!(Manifest::parse(&m.to_bytes()).is_err(), "traversal");

        let mut m = sample();
        m.objects.push(m.objects[1].clone());
        assert!(Manifest::parse(&m.to_bytes()).is_err(), "duplicate");

        let text = String::from_utf8(sample().to_bytes()).unwrap();
        assert!(Manifest::parse(text.replace("airlock-bundle", "x").as_bytes()).is_err());
        assert!(Manifest::parse(&text.as_bytes()[..text.len() / 2]).is_err());
    }

    #[test]
    fn have_matches_by_digest_and_doc_content() {
        let m = sample();
        let mut have = Have::default();
        assert!(!have.holds(&m.objects[0]));
        have.blobs.insert(m.objects[0].digest.clone());
        assert!(have.holds(&m.objects[0]));
        have.docs.insert("oci/catalog.json".into(), "0".repeat(64));
        assert!(!have.holds(&m.objects[1]), "same key, other content");
        have.docs.insert(
            "oci/catalog.json".into(),
            m.objects[1].digest.hex().to_string(),
        );
        assert!(have.holds(&m.objects[1]));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// Arbitrary bytes, and a valid manifest with bytes flipped: refused or read,
        /// never a panic.
        #[test]
        fn any_manifest_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
                              flips in proptest::collection::vec((0usize..4096, proptest::prelude::any::<u8>()), 0..8)) {
            let _ = Manifest::parse(&bytes);
            let mut m = sample().to_bytes();
            for (at, b) in flips {
                let i = at % m.len();
                m[i] = b;
            }
            let _ = Manifest::parse(&m);
        }
    }
}
