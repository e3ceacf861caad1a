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
//!   catalog.json                    every repository ever pushed: {"repositories": [...]}
//!   repos/<host>/<path>/_repo.json  one repository (`docker.io/library/busybox`): its tags
//!                                   (tag -> digest) and manifests (digest -> media type, size,
//!                                   subject, artifactType, annotations); conditional updates.
//!                                   The manifest bytes are blobs under blobs/. `_` cannot
//!                                   start a name component, so no nested repo collides.
//!   repos/<host>/<path>/_blobs/<alg>/<hex>
//!                                   link: this repository holds that blob (pushed/mounted)
//! pypi/                             Python index metadata (owned by src/pypi)
//! hf/                               Hugging Face repos, refs and commits (owned by src/hf)
//! uploads/<protocol>/<id>/...       upload sessions in progress; never read by pulls, so an
//!                                   abandoned session is invisible and can be swept
//!   oci/<id>/state.json             an OCI blob upload: its chunks so far (conditional puts)
//!   oci/<id>/<n>-<random>           one PATCH body each; concatenated into blobs/ on the PUT
//! .tmp/                             (filesystem backend only) files being written; renamed
//!                                   into place once complete and verified, swept when stale
//! ```
//!
//! Rules every protocol follows:
//! - Bodies go to `blobs/` through [`super::BlobStore`], which verifies the digest before the
//!   object becomes visible. Protocol metadata refers to bodies only by digest.
//! - Metadata documents are small JSON written through [`super::DocStore`]. Immutable ones
//!   (anything named by a digest or a commit id) are cached without expiry; mutable pointers
//!   (tags, branches, project pages) are read-modify-written with conditional puts so racing
//!   writers never lose an update, and cached for `cache.mutable_ttl` only.

use super::ObjectKey;
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
}
