//! Where everything lives in the store. This comment is the data model: read it first.
//!
//! Every key below is relative to the store root (a directory, or `s3://bucket/prefix`).
//!
//! ```text
//! blobs/                            content, addressed by digest, written once, never modified
//!   sha256/<hh>/<hex>               one copy of a file whatever protocol brought it: a wheel,
//!   sha512/<hh>/<hex>               a safetensors shard, an image layer (<hh> = first two hex
//!                                   digits, to keep directories and S3 listings small)
//! oci/                              OCI registry metadata (owned by src/oci)
//!   repos/<host>/<path>/_repo.json  one repository (`docker.io/library/busybox`): its tags
//!                                   (tag -> digest) and manifests (digest -> media type, size,
//!                                   subject, artifactType, annotations); conditional updates.
//!                                   Listed in key order, they are /v2/_catalog
//!                                   (src/oci/registry.rs `all_names`).
//!                                   The manifest bytes are blobs under blobs/. `_` cannot
//!                                   start a name component, so no nested repo collides.
//!   repos/<host>/<path>/_blobs/<alg>/<hex>
//!                                   link: this repository holds that blob (pushed/mounted)
//!                                   — the only way a push may name a blob without its bytes
//!   catalog.json                    the repository list earlier versions kept (unused now)
//! pypi/<index>/                     one Python index (owned by src/pypi)
//!   projects/<normalized>.json      one project: its files (filename, sha256, sizes,
//!                                   upload time, yank state, where pull-through found it);
//!                                   listed in key order, the index's project list
//!   projects.json                   the project list earlier versions kept (unused now)
//! hf/                               Hugging Face repositories (owned by src/hf)
//!   <models|datasets|spaces>.json   the repository ids of one kind
//!   <kind>/<org>--<name>/           one repository (`--` stands for the `/` of the id; it
//!                                   never occurs in an id)
//!     repo.json                     visibility, gating, where it came from
//!     refs.json                     branches and tags -> commit id (conditional updates)
//!     commits/<id>.json             one commit: parents, message, its files (path, git
//!                                   oid, size, LFS sha256); immutable. A list of files
//!                                   over 1 MiB is in pages, blobs the commit names by
//!                                   sha256 (`hf/commit_doc.rs`)
//!     lfs/<sha256 hex>              link: a writer of this repository uploaded that LFS
//!                                   object (verified); a commit may name it by oid alone
//! xet/                              Xet content (the Hub's CAS, src/hf/xet_store.rs; formats
//!                                   in src/xet). <hash> is a Xet hash in the API's hex form
//!   xorbs/<hh>/<hash>               one xorb as uploaded, verified against its hash while
//!                                   it streamed in; immutable
//!   xorbs/<hh>/<hash>.index         its chunk index (hash, size, byte range per chunk),
//!                                   written after the xorb: the xorb counts as stored once
//!                                   this exists
//!   files/<hh>/<hash>.json          one file uploaded through Xet: its terms (xorb, chunk
//!                                   range, size), size and sha256, written once the file
//!                                   was rebuilt from its xorbs and its sha256 verified.
//!                                   Unless `[hf] xet_materialize`, there is no blob of it:
//!                                   readers rebuild it from these terms (hf/file_bytes.rs)
//!   sha256/<hh>/<sha256 hex>        the Xet file hash (API hex) of the file with that
//!                                   sha256, written after its files/ document: a commit
//!                                   looks it up once per LFS file and keeps the answer in
//!                                   the commit, so downloads know which files have Xet
//!                                   data without reading anything
//!   dedup/<hh>/<chunk>/<xorb>       that stored xorb holds that chunk, for the chunks hf_xet
//!                                   asks global dedup about: written empty with the xorb's
//!                                   index for its first chunk and every chunk whose hash is
//!                                   0 mod 1024, and for each uploaded file's first chunk
//!                                   with the file's other xorbs (a JSON list) once its shard
//!                                   is accepted. About one per 64 MiB. Several xorbs may hold
//!                                   one chunk (tenants that cannot read each other's), hence
//!                                   one key per xorb and a listing
//!   repos/<hh>/<xorb>/<kind>/<org>--<name>
//!                                   empty: a writer of that repository uploaded that xorb
//!                                   (a CAS write token for it). A dedup answer names a xorb
//!                                   only to a token that may read one of these repositories
//! modelimages/<kind>/<org>--<name>/ derived state of the OCI model images (src/modelimage):
//!                                   small, recomputable, never bundled
//!   served.json                     the commits whose images were served (newest last,
//!                                   bounded): a blob is looked up among these and the heads
//!   layers/<commit>.json            the modelcar tar layers of a commit: digest and size of
//!                                   each, computed once by reading the layer
//! gc/last.json                      the last `airlock gc` run's report (src/gc): what was
//!                                   referenced, reclaimable and removed; read by /metrics
//!   claims/<ms>-<random>.json       a writer is about to reference these stored keys (a
//!                                   manifest's layers, a commit's LFS objects, a shard's
//!                                   xorbs): the sweeper spares them (store/claims.rs)
//!   sweeps/lease.json               the one collector allowed to delete: owner, expiry
//!   sweeps/batch-<ms>-<random>.json keys a collector is deleting now, with its deadline: a
//!                                   writer claiming one of them waits for the batch
//!   access/<ms>-<random>.json       when blobs were last read (hex -> unix seconds), written
//!                                   by each `serve` every minute it saw reads, merged by the
//!                                   collector: pull-through eviction goes least recent first
//! changes/<ms>-<writer><n>.json     keys a process wrote or removed that the store totals
//!                                   count (blobs, items' pointer documents), sent about once
//!                                   a second; every server's totals follow them instead of
//!                                   walking the store. Removed after 10 minutes by the
//!                                   writers (store/changes.rs)
//! uploads/<protocol>/<id>/...       upload sessions in progress; never read by pulls, so an
//!                                   abandoned session is invisible and can be swept
//!   oci/<id>/state.json             an OCI blob upload: its chunks so far (conditional puts)
//!   oci/<id>/<n>-<random>           one PATCH body each; concatenated into blobs/ on the PUT
//! .tmp/                             (filesystem backend only) files being written; renamed
//!                                   into place once complete and verified, swept when stale
//! .locks/<hh>                       (filesystem backend only) flock files serializing
//!                                   conditional updates across processes, by key hash
//! ```
//!
//! Rules every protocol follows:
//! - Bodies go to `blobs/` through [`super::BlobStore`], which verifies the digest before the
//!   object becomes visible. Protocol metadata refers to bodies only by digest.
//! - A digest is not a key: a writer names a stored blob without sending it only through a
//!   link of the repository it writes (or an item it may read, or as an admin of the whole
//!   store). A put of a blob already stored still reads and verifies the body.
//! - Metadata documents are small JSON written through [`super::DocStore`]. Immutable ones
//!   (anything named by a digest or a commit id) are cached without expiry; mutable pointers
//!   (tags, branches, project pages) are read-modify-written with conditional puts so racing
//!   writers never lose an update, and cached for `cache.mutable_ttl` only.

use super::{ObjectKey, StoreError};
use crate::digest::Digest;

/// `blobs/<algorithm>/<first two hex>/<hex>`
pub fn blob_key(digest: &Digest) -> ObjectKey {
    let hex = digest.hex();
    ObjectKey::new(format!(
        "blobs/{}/{}/{}",
        digest.algorithm().as_str(),
        &hex[..2],
        hex
    ))
    .expect("a validated digest always makes a valid key")
}

/// The prefix under which all blobs of all algorithms are listed.
pub const BLOBS_PREFIX: &str = "blobs/";

/// Parses a key under `blobs/` back into its digest (for listings and store statistics).
pub fn digest_of_blob_key(key: &str) -> Option<Digest> {
    let mut parts = key.strip_prefix(BLOBS_PREFIX)?.split('/');
    let (algorithm, fanout, hex) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !hex.starts_with(fanout) || fanout.len() != 2 {
        return None;
    }
    Digest::new(algorithm.parse().ok()?, hex).ok()
}

/// Every metadata document by what it is. [`MetaKey::key`] builds the store key and
/// [`MetaKey::parse`] reads one back: no other code writes or splits these strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetaKey {
    OciCatalog,
    /// `name` is `<host>/<path>`.
    OciRepo {
        name: String,
    },
    /// The repository holds this blob.
    OciLink {
        name: String,
        digest: Digest,
    },
    PypiProjects {
        index: String,
    },
    PypiProject {
        index: String,
        project: String,
    },
    /// `kind` is the plural the Hub uses in URLs: `models`, `datasets`, `spaces`.
    HfList {
        kind: String,
    },
    HfRepo {
        kind: String,
        id: String,
    },
    HfRefs {
        kind: String,
        id: String,
    },
    HfCommit {
        kind: String,
        id: String,
        commit: String,
    },
    /// A writer of the repository uploaded this LFS object (verified): a commit may name
    /// it by oid alone.
    HfLfsLink {
        kind: String,
        id: String,
        digest: Digest,
    },
    /// An OCI upload session's state document.
    OciUploadState {
        id: String,
    },
    /// A stored xorb's chunk index; `hash` in the Xet API's hex form.
    XetXorbIndex {
        hash: String,
    },
    /// A file uploaded through Xet: its reconstruction and sha256.
    XetFile {
        hash: String,
    },
    /// The Xet file hash of the file with this sha256.
    XetSha256 {
        digest: Digest,
    },
    /// The stored xorb `xorb` holds the global-dedup eligible chunk `chunk`.
    XetDedupChunk {
        chunk: String,
        xorb: String,
    },
    /// A writer of the repository uploaded the xorb.
    XetXorbRepo {
        xorb: String,
        kind: String,
        id: String,
    },
    /// The commits of a Hub repository whose OCI model images were served.
    ModelImagesServed {
        kind: String,
        id: String,
    },
    /// The digests of a commit's modelcar tar layers.
    ModelImagesLayers {
        kind: String,
        id: String,
        commit: String,
    },
    /// The last garbage collection's report.
    GcLastRun,
    /// A writer's claim on stored keys it is about to reference (`at_ms`: when).
    GcClaim {
        at_ms: u64,
        id: String,
    },
    /// The collector's lease.
    GcLease,
    /// Keys a collector is deleting now.
    GcSweepBatch {
        at_ms: u64,
        id: String,
    },
    /// Blob reads some process noted.
    /// Keys a process wrote or removed that the store totals count (items' pointer
    /// documents and blobs), recorded so other processes' totals follow without a walk.
    StoreChanges {
        at_ms: u64,
        id: String,
    },
    GcAccess {
        at_ms: u64,
        id: String,
    },
}

/// The top-level folders of metadata a bundle carries; everything else is local state.
pub const META_PREFIXES: [&str; 3] = ["oci/", "pypi/", "hf/"];
pub const OCI_REPOS_PREFIX: &str = "oci/repos/";
pub const OCI_UPLOADS_PREFIX: &str = "uploads/oci/";
pub const PYPI_PREFIX: &str = "pypi/";

/// The folder of an index's project documents: listed in key order, it is the index's
/// project list (one key per project, so adding one writes nothing else).
pub fn pypi_projects_prefix(index: &str) -> String {
    format!("pypi/{index}/projects/")
}
pub const HF_PREFIX: &str = "hf/";
pub const MODEL_IMAGES_PREFIX: &str = "modelimages/";
pub const GC_CLAIMS_PREFIX: &str = "gc/claims/";
pub const GC_SWEEPS_PREFIX: &str = "gc/sweeps/";
pub const GC_ACCESS_PREFIX: &str = "gc/access/";
pub const CHANGES_PREFIX: &str = "changes/";

/// `modelimages/<kind>/<org>--<name>`
fn model_images_dir(kind: &str, id: &str) -> String {
    format!("{MODEL_IMAGES_PREFIX}{kind}/{}", id.replace('/', "--"))
}

/// `hf/<kind>/<org>--<name>`
pub fn hf_repo_dir(kind: &str, id: &str) -> String {
    format!("hf/{kind}/{}", id.replace('/', "--"))
}

/// `xet/xorbs/<hh>/<hash>`: a serialized xorb (`hash` in the Xet API's hex form).
pub fn xet_xorb_key(hash: &str) -> Result<ObjectKey, StoreError> {
    ObjectKey::new(format!(
        "xet/xorbs/{}/{hash}",
        hash.get(..2).unwrap_or_default()
    ))
}

/// Parses a key made by [`xet_xorb_key`] back into the xorb's hash (API hex form).
pub fn xorb_of_xet_key(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("xet/xorbs/")?;
    let (hh, hash) = rest.split_once('/')?;
    (hh.len() == 2 && hash.starts_with(hh) && !hash.contains(['/', '.'])).then_some(hash)
}

/// `xet/dedup/<hh>/<chunk>/`: the xorbs holding that chunk are listed below it.
pub fn xet_dedup_prefix(chunk: &str) -> String {
    format!("xet/dedup/{}/{chunk}/", chunk.get(..2).unwrap_or_default())
}

/// `xet/repos/<hh>/<xorb>/`: the repositories the xorb was uploaded for are listed below.
pub fn xet_xorb_repos_prefix(xorb: &str) -> String {
    format!("xet/repos/{}/{xorb}/", xorb.get(..2).unwrap_or_default())
}

/// `<ms>-<id>.json` (ms zero-padded to 13 digits, so names sort by time).
fn timed_name(file: &str) -> Option<(u64, String)> {
    let (at, id) = file.strip_suffix(".json")?.split_once('-')?;
    let valid = at.len() == 13
        && at.bytes().all(|b| b.is_ascii_digit())
        && !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_hexdigit());
    valid
        .then(|| (at.parse().ok(), id.to_string()))
        .and_then(|(a, i)| Some((a?, i)))
}

/// Whether the store totals count what `key` holds: a blob, or the document an item's
/// references and last change are read from (an image's `_repo.json`, a project's
/// document, a Hub repository's document, refs or commits).
pub fn counts_for_totals(key: &str) -> bool {
    if key.starts_with(BLOBS_PREFIX) {
        return digest_of_blob_key(key).is_some();
    }
    if !META_PREFIXES.iter().any(|p| key.starts_with(p)) {
        return false;
    }
    matches!(
        MetaKey::parse(key),
        Some(
            MetaKey::OciRepo { .. }
                | MetaKey::PypiProject { .. }
                | MetaKey::HfRepo { .. }
                | MetaKey::HfRefs { .. }
                | MetaKey::HfCommit { .. }
        )
    )
}

/// `uploads/oci/<id>/<n>-<random>`: one PATCH body of an upload session.
pub fn oci_upload_chunk(id: &str, n: usize, random: u64) -> Result<ObjectKey, StoreError> {
    ObjectKey::new(format!("{OCI_UPLOADS_PREFIX}{id}/{n:06}-{random:016x}"))
}

impl MetaKey {
    pub fn key(&self) -> Result<ObjectKey, StoreError> {
        ObjectKey::new(match self {
            MetaKey::OciCatalog => "oci/catalog.json".to_string(),
            MetaKey::OciRepo { name } => format!("{OCI_REPOS_PREFIX}{name}/_repo.json"),
            MetaKey::OciLink { name, digest } => format!(
                "{OCI_REPOS_PREFIX}{name}/_blobs/{}/{}",
                digest.algorithm().as_str(),
                digest.hex()
            ),
            MetaKey::PypiProjects { index } => format!("pypi/{index}/projects.json"),
            MetaKey::PypiProject { index, project } => {
                format!("pypi/{index}/projects/{project}.json")
            }
            MetaKey::HfList { kind } => format!("hf/{kind}.json"),
            MetaKey::HfRepo { kind, id } => format!("{}/repo.json", hf_repo_dir(kind, id)),
            MetaKey::HfRefs { kind, id } => format!("{}/refs.json", hf_repo_dir(kind, id)),
            MetaKey::HfCommit { kind, id, commit } => {
                format!("{}/commits/{commit}.json", hf_repo_dir(kind, id))
            }
            MetaKey::HfLfsLink { kind, id, digest } => {
                format!("{}/lfs/{}", hf_repo_dir(kind, id), digest.hex())
            }
            MetaKey::OciUploadState { id } => format!("{OCI_UPLOADS_PREFIX}{id}/state.json"),
            MetaKey::XetXorbIndex { hash } => {
                format!(
                    "xet/xorbs/{}/{hash}.index",
                    hash.get(..2).unwrap_or_default()
                )
            }
            MetaKey::XetFile { hash } => {
                format!(
                    "xet/files/{}/{hash}.json",
                    hash.get(..2).unwrap_or_default()
                )
            }
            MetaKey::XetSha256 { digest } => {
                let hex = digest.hex();
                format!("xet/sha256/{}/{hex}", &hex[..2])
            }
            MetaKey::XetDedupChunk { chunk, xorb } => {
                format!("{}{xorb}", xet_dedup_prefix(chunk))
            }
            MetaKey::XetXorbRepo { xorb, kind, id } => {
                format!(
                    "{}{kind}/{}",
                    xet_xorb_repos_prefix(xorb),
                    id.replace('/', "--")
                )
            }
            MetaKey::ModelImagesServed { kind, id } => {
                format!("{}/served.json", model_images_dir(kind, id))
            }
            MetaKey::ModelImagesLayers { kind, id, commit } => {
                format!("{}/layers/{commit}.json", model_images_dir(kind, id))
            }
            MetaKey::GcLastRun => "gc/last.json".to_string(),
            MetaKey::GcClaim { at_ms, id } => format!("{GC_CLAIMS_PREFIX}{at_ms:013}-{id}.json"),
            MetaKey::GcLease => format!("{GC_SWEEPS_PREFIX}lease.json"),
            MetaKey::GcSweepBatch { at_ms, id } => {
                format!("{GC_SWEEPS_PREFIX}batch-{at_ms:013}-{id}.json")
            }
            MetaKey::GcAccess { at_ms, id } => format!("{GC_ACCESS_PREFIX}{at_ms:013}-{id}.json"),
            MetaKey::StoreChanges { at_ms, id } => format!("{CHANGES_PREFIX}{at_ms:013}-{id}.json"),
        })
    }

    /// What a key names; `None` for blobs, temporary files and keys this version does
    /// not know.
    pub fn parse(key: &str) -> Option<MetaKey> {
        let parts: Vec<&str> = key.split('/').collect();
        let hf_id = |dir: &str| dir.replace("--", "/");
        Some(match parts.as_slice() {
            ["oci", "catalog.json"] => MetaKey::OciCatalog,
            ["oci", "repos", name @ .., "_repo.json"] if !name.is_empty() => MetaKey::OciRepo {
                name: name.join("/"),
            },
            ["oci", "repos", name @ .., "_blobs", algorithm, hex] if !name.is_empty() => {
                MetaKey::OciLink {
                    name: name.join("/"),
                    digest: Digest::new(algorithm.parse().ok()?, hex).ok()?,
                }
            }
            ["pypi", index, "projects.json"] => MetaKey::PypiProjects {
                index: index.to_string(),
            },
            ["pypi", index, "projects", file] => MetaKey::PypiProject {
                index: index.to_string(),
                project: file.strip_suffix(".json")?.to_string(),
            },
            ["hf", list] => MetaKey::HfList {
                kind: list.strip_suffix(".json")?.to_string(),
            },
            ["hf", kind, dir, "repo.json"] => MetaKey::HfRepo {
                kind: kind.to_string(),
                id: hf_id(dir),
            },
            ["hf", kind, dir, "refs.json"] => MetaKey::HfRefs {
                kind: kind.to_string(),
                id: hf_id(dir),
            },
            ["hf", kind, dir, "commits", file] => MetaKey::HfCommit {
                kind: kind.to_string(),
                id: hf_id(dir),
                commit: file.strip_suffix(".json")?.to_string(),
            },
            ["hf", kind, dir, "lfs", hex] => MetaKey::HfLfsLink {
                kind: kind.to_string(),
                id: hf_id(dir),
                digest: Digest::sha256_hex(hex).ok()?,
            },
            ["uploads", "oci", id, "state.json"] => MetaKey::OciUploadState { id: id.to_string() },
            ["xet", "xorbs", hh, file] if file.starts_with(hh) => MetaKey::XetXorbIndex {
                hash: file.strip_suffix(".index")?.to_string(),
            },
            ["xet", "files", hh, file] if file.starts_with(hh) => MetaKey::XetFile {
                hash: file.strip_suffix(".json")?.to_string(),
            },
            ["xet", "sha256", hh, hex] if hex.starts_with(hh) => MetaKey::XetSha256 {
                digest: Digest::sha256_hex(hex).ok()?,
            },
            ["xet", "dedup", hh, chunk, xorb] if chunk.starts_with(hh) => MetaKey::XetDedupChunk {
                chunk: chunk.to_string(),
                xorb: xorb.to_string(),
            },
            ["xet", "repos", hh, xorb, kind, dir] if xorb.starts_with(hh) => MetaKey::XetXorbRepo {
                xorb: xorb.to_string(),
                kind: kind.to_string(),
                id: hf_id(dir),
            },
            ["modelimages", kind, dir, "served.json"] => MetaKey::ModelImagesServed {
                kind: kind.to_string(),
                id: hf_id(dir),
            },
            ["modelimages", kind, dir, "layers", file] => MetaKey::ModelImagesLayers {
                kind: kind.to_string(),
                id: hf_id(dir),
                commit: file.strip_suffix(".json")?.to_string(),
            },
            ["gc", "last.json"] => MetaKey::GcLastRun,
            ["gc", "claims", file] => {
                let (at_ms, id) = timed_name(file)?;
                MetaKey::GcClaim { at_ms, id }
            }
            ["gc", "sweeps", "lease.json"] => MetaKey::GcLease,
            ["gc", "access", file] => {
                let (at_ms, id) = timed_name(file)?;
                MetaKey::GcAccess { at_ms, id }
            }
            ["changes", file] => {
                let (at_ms, id) = timed_name(file)?;
                MetaKey::StoreChanges { at_ms, id }
            }
            ["gc", "sweeps", file] => {
                let (at_ms, id) = timed_name(file.strip_prefix("batch-")?)?;
                MetaKey::GcSweepBatch { at_ms, id }
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Algorithm;

    #[test]
    fn blob_keys_round_trip() {
        let d = Digest::of_bytes(Algorithm::Sha256, b"hello");
        let key = blob_key(&d);
        assert_eq!(
            key.as_str(),
            "blobs/sha256/2c/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(digest_of_blob_key(key.as_str()), Some(d));
        assert_eq!(digest_of_blob_key("blobs/sha256/zz/abc"), None);
    }

    #[test]
    fn metadata_keys_round_trip() {
        let d = Digest::of_bytes(Algorithm::Sha256, b"x");
        let all = [
            MetaKey::OciCatalog,
            MetaKey::OciRepo {
                name: "docker.io/library/busybox".into(),
            },
            MetaKey::OciLink {
                name: "quay.io/a/b".into(),
                digest: d.clone(),
            },
            MetaKey::PypiProjects {
                index: "default".into(),
            },
            MetaKey::PypiProject {
                index: "team".into(),
                project: "numpy".into(),
            },
            MetaKey::HfList {
                kind: "models".into(),
            },
            MetaKey::HfRepo {
                kind: "models".into(),
                id: "org/m".into(),
            },
            MetaKey::HfRefs {
                kind: "datasets".into(),
                id: "gpt2".into(),
            },
            MetaKey::HfCommit {
                kind: "models".into(),
                id: "org/m".into(),
                commit: "a".repeat(40),
            },
            MetaKey::HfLfsLink {
                kind: "models".into(),
                id: "org/m".into(),
                digest: d.clone(),
            },
            MetaKey::OciUploadState { id: "0".repeat(32) },
            MetaKey::XetXorbIndex {
                hash: "ab".repeat(32),
            },
            MetaKey::XetFile {
                hash: "cd".repeat(32),
            },
            MetaKey::XetSha256 { digest: d.clone() },
            MetaKey::XetDedupChunk {
                chunk: "ef".repeat(32),
                xorb: "ab".repeat(32),
            },
            MetaKey::XetXorbRepo {
                xorb: "ab".repeat(32),
                kind: "models".into(),
                id: "org/m".into(),
            },
            MetaKey::XetXorbRepo {
                xorb: "ab".repeat(32),
                kind: "datasets".into(),
                id: "gpt2".into(),
            },
            MetaKey::ModelImagesServed {
                kind: "models".into(),
                id: "org/m".into(),
            },
            MetaKey::ModelImagesLayers {
                kind: "models".into(),
                id: "org/m".into(),
                commit: "b".repeat(40),
            },
            MetaKey::GcLastRun,
            MetaKey::GcClaim {
                at_ms: 1_700_000_000_000,
                id: "00ff".into(),
            },
            MetaKey::GcLease,
            MetaKey::GcSweepBatch {
                at_ms: 12,
                id: "ab".into(),
            },
            MetaKey::GcAccess {
                at_ms: 99,
                id: "0a".into(),
            },
            MetaKey::StoreChanges {
                at_ms: 1_700_000_000_123,
                id: "c0ffee".into(),
            },
        ];
        for k in all {
            let key = k.key().unwrap();
            assert_eq!(MetaKey::parse(key.as_str()), Some(k), "{key}");
        }
        assert_eq!(
            MetaKey::OciRepo {
                name: "docker.io/x".into()
            }
            .key()
            .unwrap()
            .as_str(),
            "oci/repos/docker.io/x/_repo.json"
        );
        assert_eq!(MetaKey::parse(blob_key(&d).as_str()), None);
        assert_eq!(MetaKey::parse("oci/repos/_repo.json"), None);
        assert_eq!(MetaKey::parse("hf/something/new"), None);
        assert_eq!(
            MetaKey::XetSha256 { digest: d.clone() }
                .key()
                .unwrap()
                .as_str(),
            format!("xet/sha256/{}/{}", &d.hex()[..2], d.hex())
        );
        assert_eq!(MetaKey::parse("xet/sha256/00/not-a-digest"), None);
        // Listing prefixes are the keys' own prefixes.
        let chunk = MetaKey::XetDedupChunk {
            chunk: "ef".repeat(32),
            xorb: "ab".repeat(32),
        };
        let key = chunk.key().unwrap();
        assert_eq!(
            key.as_str(),
            format!("xet/dedup/ef/{}/{}", "ef".repeat(32), "ab".repeat(32))
        );
        assert!(key
            .as_str()
            .starts_with(&xet_dedup_prefix(&"ef".repeat(32))));
        let repo = MetaKey::XetXorbRepo {
            xorb: "ab".repeat(32),
            kind: "models".into(),
            id: "org/m".into(),
        };
        assert_eq!(
            repo.key().unwrap().as_str(),
            format!("{}models/org--m", xet_xorb_repos_prefix(&"ab".repeat(32)))
        );
        assert_eq!(MetaKey::parse("xet/dedup/00/ef/ab"), None);
        // The xorb itself is content, not a document.
        assert_eq!(
            MetaKey::parse(xet_xorb_key(&"ab".repeat(32)).unwrap().as_str()),
            None
        );
    }
}
