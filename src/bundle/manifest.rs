//! `manifest.json` (what a bundle holds) and `have.json` (what a receiver holds).

use crate::digest::{Algorithm, Digest};
use crate::store::layout::{digest_of_blob_key, MetaKey};
use crate::store::ObjectKey;
use crate::xet::xorb::MAX_XORB_BYTES;
use crate::xet::MerkleHash;
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashSet};

pub const FORMAT: &str = "airlock-bundle";
/// Version 2 adds Xet content (`xorbs`, `xet-file` objects); a bundle without any is
/// still written as version 1, which every airlock reads.
pub const VERSION: u32 = 2;
const VERSION_WITHOUT_XET: u32 = 1;
/// `have.json` only ever gained optional fields (`xorbs`): any version-1 reader reads it.
pub const HAVE_VERSION: u32 = 1;
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
    /// A Xet file record (`xet/files/...`): verified against the xorbs, not merged.
    #[serde(rename = "xet-file")]
    XetFile,
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
    /// Serialized xorbs, each the tar entry `xorbs/<hash>`, verified by its Xet hash.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xorbs: Vec<XorbEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XorbEntry {
    /// The Xet hash in the API's hex form (checked by [`Manifest::parse`]).
    pub hash: String,
    pub size: u64,
}

impl XorbEntry {
    pub fn hash(&self) -> MerkleHash {
        self.hash
            .parse()
            .expect("checked when the manifest was parsed")
    }
}

/// The tar entry name of a xorb.
pub fn xorb_entry_name(hash: &MerkleHash) -> String {
    format!("xorbs/{hash}")
}

/// The xorb an `xorbs/<hash>` entry name stands for.
pub fn xorb_of_entry_name(name: &str) -> Option<MerkleHash> {
    name.strip_prefix("xorbs/")?.parse().ok()
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
    pub fn new(
        source: String,
        selection: String,
        objects: Vec<Entry>,
        xorbs: Vec<XorbEntry>,
    ) -> Manifest {
        let xet = !xorbs.is_empty() || objects.iter().any(|e| e.kind == Kind::XetFile);
        Manifest {
            format: FORMAT.into(),
            version: if xet { VERSION } else { VERSION_WITHOUT_XET },
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            source,
            selection,
            objects,
            xorbs,
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
        if !(VERSION_WITHOUT_XET..=VERSION).contains(&m.version) {
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
                Kind::XetFile
                    if !matches!(MetaKey::parse(&e.key), Some(MetaKey::XetFile { .. })) =>
                {
                    return Err(bad("is not a Xet file record (xet/files/...)"));
                }
                Kind::Doc | Kind::XetFile if e.size > MAX_DOCUMENT_BYTES as u64 => {
                    return Err(bad("is larger than any metadata document"));
                }
                Kind::Doc | Kind::XetFile if e.digest.algorithm() != Algorithm::Sha256 => {
                    return Err(bad("has a document digest that is not sha256"));
                }
                _ => {}
            }
        }
        let mut xorbs = HashSet::new();
        for x in &m.xorbs {
            let canonical = x.hash.parse::<MerkleHash>().map(|h| h.to_api_hex());
            if canonical.as_ref() != Ok(&x.hash) {
                bail!("manifest.json: xorb {:?} is not a Xet hash: the manifest is damaged or altered; copy the bundle again", x.hash);
            }
            if !xorbs.insert(x.hash.as_str()) {
                bail!("manifest.json: xorb {} is listed twice: the manifest is damaged or altered; copy the bundle again", x.hash);
            }
            if x.size > MAX_XORB_BYTES {
                bail!("manifest.json: xorb {} is larger than any xorb: the manifest is damaged or altered; copy the bundle again", x.hash);
            }
        }
        Ok(m)
    }

    pub fn total_bytes(&self) -> u64 {
        self.objects.iter().map(|e| e.size).sum::<u64>()
            + self.xorbs.iter().map(|x| x.size).sum::<u64>()
    }
}

/// `airlock bundle have`: the blobs and documents a store already holds, so the sender
/// packs only the rest.
///
/// Compact on purpose: the have.json of a store of a million blobs and 340,000
/// documents is 117 MB, and read into sets of `Digest`s and `String`s it took 340 MB.
/// It is read as a stream into sorted arrays of raw hashes instead: 32 bytes a blob, 48
/// a document (the first 128 bits of its key's sha256 with its content's sha256).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Have {
    pub format: String,
    pub version: u32,
    /// sha256 blobs, raw, sorted.
    sha256: Vec<[u8; 32]>,
    /// Blobs of other algorithms (rare).
    other_blobs: BTreeSet<Digest>,
    /// Documents: (key hash, content sha256), sorted. A key is known by half its sha256:
    /// another key with the same half costs 2^64 hashes to find.
    docs: Vec<([u8; 16], [u8; 32])>,
    /// Xorbs (Xet hash, API hex form). Absent from the have.json of an airlock without
    /// Xet, which holds none.
    pub xorbs: BTreeSet<String>,
}

impl Have {
    pub fn load(path: &std::path::Path) -> anyhow::Result<Have> {
        let file = std::fs::File::open(path).with_context(|| {
            format!(
                "cannot read {}; write it on the receiving side with `airlock bundle have > have.json`",
                path.display()
            )
        })?;
        let mut reader = serde_json::Deserializer::from_reader(std::io::BufReader::new(file));
        let have = Have::deserialize(&mut reader)
            .and_then(|have| reader.end().map(|()| have))
            .with_context(|| {
                format!(
                    "{} is not a have.json written by `airlock bundle have`",
                    path.display()
                )
            })?;
        if have.format != format!("{FORMAT}-have") || have.version != HAVE_VERSION {
            bail!(
                "{} is not a version {HAVE_VERSION} have.json; write it again with `airlock bundle have`",
                path.display()
            );
        }
        Ok(have)
    }

    /// Whether the receiver already holds exactly this object.
    pub fn holds(&self, entry: &Entry) -> bool {
        match entry.kind {
            Kind::Blob => self.holds_blob(&entry.digest),
            Kind::Doc | Kind::XetFile => {
                let held = self.doc_content(&entry.key);
                held.is_some() && held == entry.digest.sha256_bytes()
            }
        }
    }

    pub fn holds_blob(&self, digest: &Digest) -> bool {
        match digest.sha256_bytes() {
            Some(raw) => self.sha256.binary_search(&raw).is_ok(),
            None => self.other_blobs.contains(digest),
        }
    }

    /// The sha256 of the document the receiver holds under `key`.
    pub fn doc_content(&self, key: &str) -> Option<[u8; 32]> {
        let hash = key_hash(key);
        let at = self.docs.binary_search_by(|(k, _)| k.cmp(&hash)).ok()?;
        Some(self.docs[at].1)
    }

    #[cfg(test)]
    pub fn blob_count(&self) -> usize {
        self.sha256.len() + self.other_blobs.len()
    }

    #[cfg(test)]
    pub fn add_blob(&mut self, digest: Digest) {
        match digest.sha256_bytes() {
            Some(raw) => {
                if let Err(at) = self.sha256.binary_search(&raw) {
                    self.sha256.insert(at, raw);
                }
            }
            None => {
                self.other_blobs.insert(digest);
            }
        }
    }

    #[cfg(test)]
    /// Records that the receiver holds `key` with content of sha256 `content_hex`.
    pub fn add_doc(&mut self, key: &str, content_hex: &str) -> anyhow::Result<()> {
        let content = sha256_of_hex(content_hex)?;
        let hash = key_hash(key);
        match self.docs.binary_search_by(|(k, _)| k.cmp(&hash)) {
            Ok(at) => self.docs[at].1 = content,
            Err(at) => self.docs.insert(at, (hash, content)),
        }
        Ok(())
    }
}

fn key_hash(key: &str) -> [u8; 16] {
    use sha2::Digest as _;
    let full = sha2::Sha256::digest(key.as_bytes());
    full[..16].try_into().expect("16 bytes")
}

fn sha256_of_hex(hex: &str) -> anyhow::Result<[u8; 32]> {
    let mut raw = [0u8; 32];
    hex::decode_to_slice(hex, &mut raw)
        .map_err(|_| anyhow::anyhow!("`{hex}` is not the hex of a sha256"))?;
    Ok(raw)
}

impl<'de> Deserialize<'de> for Have {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(HaveVisitor)
    }
}

struct HaveVisitor;

impl<'de> serde::de::Visitor<'de> for HaveVisitor {
    type Value = Have;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a have.json object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Have, A::Error> {
        use serde::de::Error as _;
        let mut have = Have::default();
        while let Some(field) = map.next_key::<String>()? {
            match field.as_str() {
                "format" => have.format = map.next_value()?,
                "version" => have.version = map.next_value()?,
                "blobs" => {
                    let Blobs(sha256, other) = map.next_value()?;
                    (have.sha256, have.other_blobs) = (sha256, other);
                }
                "docs" => have.docs = map.next_value::<Docs>()?.0,
                "xorbs" => have.xorbs = map.next_value()?,
                other => {
                    return Err(A::Error::unknown_field(
                        other,
                        &["format", "version", "blobs", "docs", "xorbs"],
                    ))
                }
            }
        }
        Ok(have)
    }
}

/// The `blobs` list, read element by element into raw hashes, sorted.
struct Blobs(Vec<[u8; 32]>, BTreeSet<Digest>);

impl<'de> Deserialize<'de> for Blobs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Blobs;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of digests")
            }
            fn visit_seq<S: serde::de::SeqAccess<'de>>(
                self,
                mut seq: S,
            ) -> Result<Blobs, S::Error> {
                let (mut sha256, mut other) = (Vec::new(), BTreeSet::new());
                while let Some(digest) = seq.next_element::<Digest>()? {
                    match digest.sha256_bytes() {
                        Some(raw) => sha256.push(raw),
                        None => {
                            other.insert(digest);
                        }
                    }
                }
                sha256.sort_unstable();
                sha256.dedup();
                sha256.shrink_to_fit();
                Ok(Blobs(sha256, other))
            }
        }
        d.deserialize_seq(V)
    }
}

/// The `docs` object, read entry by entry into key hashes and content hashes, sorted.
struct Docs(Vec<([u8; 16], [u8; 32])>);

impl<'de> Deserialize<'de> for Docs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Docs;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of document keys and content sha256")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<Docs, M::Error> {
                let mut docs = Vec::new();
                while let Some((key, content)) = map.next_entry::<String, String>()? {
                    let content = sha256_of_hex(&content).map_err(serde::de::Error::custom)?;
                    docs.push((key_hash(&key), content));
                }
                docs.sort_unstable_by_key(|d| d.0);
                docs.dedup_by(|a, b| a.0 == b.0);
                docs.shrink_to_fit();
                Ok(Docs(docs))
            }
        }
        d.deserialize_map(V)
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
            Vec::new(),
        )
    }

    /// A bundle with Xet content: a file record and a xorb.
    fn with_xet() -> Manifest {
        let mut m = sample();
        let record = Digest::of_bytes(Algorithm::Sha256, b"{}");
        m.objects.push(Entry {
            key: format!("xet/files/ab/{}.json", "ab".repeat(32)),
            kind: Kind::XetFile,
            digest: record,
            size: 2,
        });
        Manifest::new(
            m.source,
            m.selection,
            m.objects,
            vec![XorbEntry {
                hash: "cd".repeat(32),
                size: 1000,
            }],
        )
    }

    #[test]
    fn xet_content_makes_a_version_2_manifest() {
        assert_eq!(sample().version, 1, "readable by airlock before Xet");
        assert!(!String::from_utf8(sample().to_bytes())
            .unwrap()
            .contains("xorbs"));
        let m = with_xet();
        assert_eq!(m.version, 2);
        assert_eq!(Manifest::parse(&m.to_bytes()).unwrap(), m);
        assert_eq!(m.total_bytes(), 7 + 2 + 1000);
        let h = m.xorbs[0].hash();
        assert_eq!(xorb_of_entry_name(&xorb_entry_name(&h)), Some(h));

        let mut bad = with_xet();
        bad.xorbs[0].hash = "CD".repeat(32);
        assert!(Manifest::parse(&bad.to_bytes()).is_err(), "not canonical");
        let mut bad = with_xet();
        bad.xorbs[0].size = MAX_XORB_BYTES + 1;
        assert!(Manifest::parse(&bad.to_bytes()).is_err(), "too large");
        let mut bad = with_xet();
        bad.xorbs.push(bad.xorbs[0].clone());
        assert!(Manifest::parse(&bad.to_bytes()).is_err(), "twice");
        let mut bad = with_xet();
        bad.objects[2].key = "hf/models/org--m/commits/x.json".into();
        assert!(
            Manifest::parse(&bad.to_bytes()).is_err(),
            "record elsewhere"
        );
        let mut bad = with_xet();
        bad.version = 3;
        assert!(Manifest::parse(&bad.to_bytes()).is_err(), "newer version");
    }

    #[test]
    fn old_have_files_read_and_xorbs_are_held_by_hash() {
        let old = r#"{"format":"airlock-bundle-have","version":1,"blobs":[],"docs":{}}"#;
        let have: Have = serde_json::from_str(old).unwrap();
        assert!(have.xorbs.is_empty());
        let new = format!(
            r#"{{"format":"airlock-bundle-have","version":1,"blobs":[],"docs":{{}},"xorbs":["{}"]}}"#,
            "cd".repeat(32)
        );
        let mut have: Have = serde_json::from_str(&new).unwrap();
        assert!(have.xorbs.contains(&"cd".repeat(32)));
        let m = with_xet();
        assert!(!have.holds(&m.objects[2]));
        have.add_doc(&m.objects[2].key, m.objects[2].digest.hex())
            .unwrap();
        assert!(have.holds(&m.objects[2]));
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
        have.add_blob(m.objects[0].digest.clone());
        assert!(have.holds(&m.objects[0]));
        have.add_doc("oci/catalog.json", &"0".repeat(64)).unwrap();
        assert!(!have.holds(&m.objects[1]), "same key, other content");
        have.add_doc("oci/catalog.json", m.objects[1].digest.hex())
            .unwrap();
        assert!(have.holds(&m.objects[1]));
        // Read back from its JSON, the same answers; a malformed one is refused.
        let text = format!(
            r#"{{"format":"airlock-bundle-have","version":1,"blobs":["{}","sha512:{}"],"docs":{{"oci/catalog.json":"{}"}}}}"#,
            m.objects[0].digest,
            "ab".repeat(64),
            m.objects[1].digest.hex()
        );
        let read: Have = serde_json::from_str(&text).unwrap();
        assert!(read.holds(&m.objects[0]) && read.holds(&m.objects[1]));
        assert_eq!(read.blob_count(), 2);
        assert!(read.holds_blob(&format!("sha512:{}", "ab".repeat(64)).parse().unwrap()));
        assert!(
            serde_json::from_str::<Have>(&text.replace(m.objects[1].digest.hex(), "zz")).is_err()
        );
        assert!(serde_json::from_str::<Have>(&text.replace("sha512:", "md5:")).is_err());
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
