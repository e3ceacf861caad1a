//! Bundles: the store's content carried across an air gap as files.
//!
//! `airlock bundle export` packs objects of this store (all of it, or what a content spec
//! names, minus what the receiver's `have.json` says it holds) into one tar stream;
//! `airlock bundle import` on the other side verifies everything, then publishes it.
//!
//! The format (version 2; a bundle without Xet content is written as version 1, which
//! airlock versions before Xet read), a plain POSIX/GNU tar stream that `tar tf` can list:
//!
//! ```text
//! manifest.json            {"format":"airlock-bundle","version":2,"created":..., "source":...,
//!                           "selection":...,
//!                           "objects":[{"key","kind":"blob"|"doc"|"xet-file","digest","size"}],
//!                           "xorbs":[{"hash","size"}]}          (xorbs: version 2 only)
//! manifest.json.sig        optional: base64 ed25519 signature of manifest.json's exact bytes
//! objects/<alg>/<hex>      each distinct content once, named by its digest (in manifest order)
//! xorbs/<hash>             each xorb, named by its Xet hash (API hex), after the objects
//! ```
//!
//! `key` is the object's store key (`store/layout.rs`): `blobs/...` for content, `oci/`,
//! `pypi/` and `hf/` for metadata documents, `xet/files/...` for the record of a file
//! uploaded through Xet; never `uploads/` or `.tmp/`. A file with a Xet record travels as
//! that record and its xorbs, not as a blob (`xet.rs`); its sha256 mapping is rebuilt by
//! the receiver from the verified record. With `--split`
//! the same stream is cut into volumes `NAME.000`, `NAME.001`, ... (`cat NAME.* | tar t`
//! works); import takes the volumes, or the directory holding them, and reads them in order.
//!
//! `have.json` (`airlock bundle have`) lists the blobs, the documents (with Xet records)
//! by content digest, and the xorbs the receiver holds; its version stays 1 because
//! `xorbs` is optional both ways (an older have.json lists none, an older sender ignores
//! it).
//!
//! Import verifies before it publishes, in two passes over the files: the first checks the
//! signature (when a public key is configured), then hashes every object the store lacks
//! against the manifest and keeps the (small) documents in memory; only when everything
//! verified does the second pass stream blobs and xorbs into the store (each verified
//! again by the store as it is written), adopt the Xet file records (each proven against
//! the stored xorbs and its sha256) and then merge the documents in. A corrupt, missing or
//! unexpected object therefore leaves the store exactly as it was. An import interrupted in
//! the second pass leaves only complete, verified blobs (content-addressed and invisible
//! until a document refers to them); running it again skips them and finishes.

pub mod export;
pub mod have;
pub mod import;
pub mod manifest;
pub mod merge;
pub mod select;
pub mod sign;
pub mod volumes;
pub mod xet;

use serde::Deserialize;

/// `[bundle]` in the config file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BundleSettings {
    /// Public keys (base64, as `airlock bundle keygen` writes `PREFIX.pub`, or paths to such
    /// files). When any is set, import accepts only bundles signed by one of them.
    pub public_keys: Vec<String>,
}

/// Lists every object under `prefix`, page by page.
pub(crate) async fn list_all(
    store: &crate::store::DynStore,
    prefix: &str,
) -> crate::store::Result<Vec<crate::store::ObjectMeta>> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list(prefix, after.as_deref(), 1000).await?;
        all.extend(page.objects);
        match page.next_start_after {
            Some(next) => after = Some(next),
            None => return Ok(all),
        }
    }
}
