//! Shared test harness: real servers on loopback (Airlock itself, Garage) and
//! generated test content.
#![allow(dead_code)]

pub mod airlock;
pub mod backend;
pub mod cluster;
pub mod containerd;
pub mod garage;
pub mod http;
pub mod hub;
pub mod images;
pub mod process;
pub mod pullthrough;
pub mod store_walk;
pub mod twine;
pub mod wheels;

use ::airlock::digest::Algorithm;
use ::airlock::store::{BlobStore, DynStore, FsStore};
use std::path::Path;

/// The admin token every suite starts Airlock with.
pub const ADMIN: &str = "admin-token-for-tests-0123";

/// Writes `size` pseudo-random bytes to a file and stores it as a blob in `store_dir`.
pub async fn seed_blob(store_dir: &Path, size: usize) -> (String, Vec<u8>) {
    let data = pseudo_random(size, 0x9e37_79b9);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &data).unwrap();
    let store: DynStore = std::sync::Arc::new(FsStore::open(store_dir).await.unwrap());
    let blobs = BlobStore::new(store, 16);
    let meta = blobs
        .put_file(file.path(), Algorithm::Sha256)
        .await
        .unwrap();
    (meta.digest.to_string(), data)
}

/// Deterministic pseudo-random bytes (xorshift), so test content is not trivially alike
/// and can be regenerated from its seed.
pub fn pseudo_random(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// The virtualenv's Python with huggingface_hub pointed at `endpoint`, a private cache
/// and no Hub settings leaking in from the environment.
pub fn hf_python(endpoint: &str, home: &Path) -> std::process::Command {
    hf_python_in(&process::venv_dir("AIRLOCK_TEST_VENV"), endpoint, home)
}

/// As [`hf_python`], with the Python of the virtualenv `venv`.
pub fn hf_python_in(venv: &Path, endpoint: &str, home: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(venv.join("bin/python"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HF_") || k.starts_with("HUGGING") || k == "TRANSFORMERS_OFFLINE" {
            cmd.env_remove(k);
        }
    }
    cmd.env("HF_ENDPOINT", endpoint)
        .env("HF_HOME", home)
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_UPDATE_CHECK", "1")
        .env("PYTHONUNBUFFERED", "1");
    cmd
}

/// `sha256:<hex>` of `data`, as OCI and the store name content.
pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

/// The bare hex SHA-256 of `data`, as PyPI and HF name content.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(data))
}

/// Pushes a one-layer image to `name:tag` through the registry API at `base` with
/// `token`, as a client does: the config and layer blobs, then the manifest. Returns the
/// manifest digest.
pub async fn push_image(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
    tag: &str,
    layer: &[u8],
) -> String {
    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    for blob in [&config[..], layer] {
        let r = http
            .post(format!(
                "{base}/v2/{name}/blobs/uploads/?digest={}",
                sha256(blob)
            ))
            .bearer_auth(token)
            .body(blob.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(layer), "size": layer.len()}]
    }))
    .unwrap();
    let r = http
        .put(format!("{base}/v2/{name}/manifests/{tag}"))
        .bearer_auth(token)
        .header("content-type", OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    sha256(&manifest)
}
