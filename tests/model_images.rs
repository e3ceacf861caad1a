//! OCI model images made from the Hub's stored files (src/modelimage), pulled by real
//! registry clients on loopback, on the filesystem store and on S3 (Garage): skopeo
//! copies the ModelPack artifact `huggingface.co/<org>/<name>:<rev>-modelpack` into an
//! OCI layout, whose weights layer is the file itself; containerd pulls the modelcar
//! `huggingface.co/<org>/<name>:<rev>` (busybox built with umoci plus the files under
//! /models) and runs it, and KServe's `kserve-storage` extracts it. `bash
//! tests/run-all.sh` installs skopeo, umoci, containerd, runc, busybox-static and the
//! kserve-storage virtualenv (AIRLOCK_TEST_VENV_S3).

mod support;

use std::path::{Path, PathBuf};
use support::backend::{Backend, StoreArgs};
use support::containerd::Containerd;
use support::images::{self, skopeo};
use support::process::ok;

const ADMIN: &str = "admin-token-for-tests-0123";

/// A real safetensors file: an 8-byte little-endian header length, the JSON header,
/// then the tensor bytes.
fn safetensors(values: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..values)
        .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
        .collect();
    let header = format!(
        r#"{{"embeddings.weight":{{"dtype":"F32","shape":[{},8],"data_offsets":[0,{}]}}}}"#,
        values / 8,
        data.len()
    );
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&data);
    out
}

/// A tiny model folder: config, tokenizer, weights, a README and a nested file.
fn make_model(dir: &Path, name: &str, extra: &[(&str, &[u8])]) -> PathBuf {
    let root = dir.join(name);
    std::fs::create_dir_all(root.join("nested")).unwrap();
    let files: Vec<(&str, Vec<u8>)> = vec![
        (
            "config.json",
            br#"{"model_type":"bert","architectures":["BertModel"],"hidden_size":8}"#.to_vec(),
        ),
        (
            "tokenizer.json",
            br#"{"version":"1.0","model":{"type":"WordLevel","vocab":{"[UNK]":0,"hello":1},"unk_token":"[UNK]"}}"#.to_vec(),
        ),
        ("model.safetensors", safetensors(64 * 1024)),
        ("README.md", b"# tiny\n".to_vec()),
        ("nested/extra.bin", support::pseudo_random(70_000, 3)),
    ];
    for (path, content) in files
        .iter()
        .map(|(p, c)| (*p, c.as_slice()))
        .chain(extra.iter().copied())
    {
        std::fs::write(root.join(path), content).unwrap();
    }
    root
}

fn import(store: &StoreArgs, dir: &Path, args: &[&str]) {
    ok(store.cli(dir).args(["hf", "import"]).args(args));
}

fn host_of(base: &str) -> &str {
    base.trim_start_matches("http://")
}

/// The layout's one manifest, parsed.
fn layout_manifest(layout: &Path) -> serde_json::Value {
    let digest = images::layout_manifest_digest(layout);
    let bytes = std::fs::read(
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// A request to the registry: its status and body.
fn request(method: &str, url: &str, token: Option<&str>) -> (u16, String) {
    let (status, body) = request_bytes(method, url, token, None);
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn request_bytes(
    method: &str,
    url: &str,
    token: Option<&str>,
    range: Option<&str>,
) -> (u16, Vec<u8>) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let url = url.to_string();
    let token = token.map(str::to_string);
    let range = range.map(str::to_string);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let mut r = support::http::client().request(method, url);
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            if let Some(range) = range {
                r = r.header("range", range);
            }
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
        })
}

fn modelpack_artifact(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let store = StoreArgs::new(backend, dir);
    let model = make_model(dir, "tiny", &[]);
    let weights = std::fs::read(model.join("model.safetensors")).unwrap();
    // The Hub's ids keep their case; the OCI name is lowercase.
    import(&store, dir, &["org/Tiny", model.to_str().unwrap()]);
    let secret = make_model(dir, "secret", &[("only-secret.bin", b"private bytes")]);
    import(
        &store,
        dir,
        &["org/secret", secret.to_str().unwrap(), "--private"],
    );
    import(&store, dir, &["org/Dup", model.to_str().unwrap()]);
    import(&store, dir, &["org/dup", model.to_str().unwrap()]);
    // Branches written by the CLI below reach the server's cache within a second.
    let config = dir.join("airlock.toml");
    std::fs::write(&config, "[cache]\nmutable_ttl = \"1s\"\n").unwrap();
    let config = config.to_string_lossy().into_owned();
    let server = store.serve(dir, &["--admin-token", ADMIN, "--config", &config]);
    let host = host_of(&server.base).to_string();
    let before = store.objects();

    let pull = |reference: &str, out: &str| -> PathBuf {
        let layout = dir.join(out);
        ok(skopeo(dir).args([
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{host}/{reference}"),
            &format!("oci:{}:x", layout.display()),
        ]));
        layout
    };
    let first = pull("huggingface.co/org/tiny:main-modelpack", "first");
    let manifest = layout_manifest(&first);
    assert_eq!(
        manifest["artifactType"],
        "application/vnd.cncf.model.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.cncf.model.config.v1+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    let paths: Vec<&str> = layers
        .iter()
        .map(|l| {
            l["annotations"]["org.cncf.model.filepath"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(
        paths,
        [
            ".gitattributes",
            "README.md",
            "config.json",
            "model.safetensors",
            "nested/extra.bin",
            "tokenizer.json"
        ]
    );
    let weights_layer = &layers[3];
    assert_eq!(
        weights_layer["mediaType"],
        "application/vnd.cncf.model.weight.v1.raw"
    );
    // Zero copy: the layer is the file, its digest the file's sha256.
    let sha = support::sha256_hex(&weights);
    assert_eq!(weights_layer["digest"], format!("sha256:{sha}"));
    assert_eq!(
        std::fs::read(first.join("blobs/sha256").join(&sha)).unwrap(),
        weights
    );
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            first.join("blobs/sha256").join(
                manifest["config"]["digest"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("sha256:"),
            ),
        )
        .unwrap(),
    )
    .unwrap();
    let diff_ids: Vec<&serde_json::Value> = layers.iter().map(|l| &l["digest"]).collect();
    assert_eq!(
        config["modelfs"]["diff_ids"]
            .as_array()
            .unwrap()
            .iter()
            .collect::<Vec<_>>(),
        diff_ids
    );
    let digest = images::layout_manifest_digest(&first);

    // The same digest again, and after an unrelated commit on another branch.
    let other = make_model(dir, "other", &[("more.txt", b"another branch")]);
    import(
        &store,
        dir,
        &["org/Tiny", other.to_str().unwrap(), "--revision", "other"],
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let second = pull("huggingface.co/org/tiny:main-modelpack", "second");
    assert_eq!(images::layout_manifest_digest(&second), digest);
    let by_digest = ok(skopeo(dir).args([
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{host}/huggingface.co/org/tiny@{digest}"),
    ]));
    assert_eq!(support::sha256(by_digest.as_bytes()), digest);

    let v2 = |path: &str| format!("{}/v2/huggingface.co/{path}", server.base);
    // Tags are the revisions, each in both kinds.
    let (status, body) = request("GET", &v2("org/tiny/tags/list"), None);
    assert_eq!(status, 200, "{body}");
    let tags: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        tags["tags"],
        serde_json::json!(["main", "main-modelpack", "other", "other-modelpack"])
    );
    // A revision that does not exist.
    let (status, body) = request("GET", &v2("org/tiny/manifests/nope-modelpack"), None);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("MANIFEST_UNKNOWN"), "{body}");
    // Two repositories that differ only in case have no OCI name.
    let (status, body) = request("GET", &v2("org/dup/manifests/main-modelpack"), None);
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("NAME_UNKNOWN") && body.contains("differ only in case"),
        "{body}"
    );

    // A private repository: refused anonymously (skopeo gets the challenge, then no
    // token can help it), served with a token that may read it.
    let secret_ref = format!("docker://{host}/huggingface.co/org/secret:main-modelpack");
    let out = skopeo(dir)
        .args(["inspect", "--tls-verify=false", "--raw", &secret_ref])
        .output()
        .unwrap();
    assert!(!out.status.success(), "anonymous pull of a private model");
    ok(skopeo(dir).args([
        "inspect",
        "--tls-verify=false",
        "--raw",
        "--creds",
        &format!("ci:{ADMIN}"),
        &secret_ref,
    ]));
    // A digest is not a capability: the private file is no blob of the public name.
    let private_sha = support::sha256_hex(b"private bytes");
    let (status, body) = request(
        "GET",
        &v2(&format!("org/tiny/blobs/sha256:{private_sha}")),
        Some(ADMIN),
    );
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("BLOB_UNKNOWN"), "{body}");

    // Nothing can be pushed under the reserved names, not even by the admin.
    let (status, body) = request("POST", &v2("org/tiny/blobs/uploads/"), Some(ADMIN));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("DENIED"), "{body}");
    let pushed = skopeo(dir)
        .args([
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &format!("ci:{ADMIN}"),
            &format!("oci:{}:x", first.display()),
            &format!("docker://{host}/huggingface.co/org/tiny:pushed"),
        ])
        .output()
        .unwrap();
    assert!(!pushed.status.success(), "a push under huggingface.co/");

    // The pulls added only the small record of served commits (the second import wrote
    // the other branch's files and commit, and the record of those changes for the
    // store totals).
    let after = store.objects();
    let added: Vec<&(String, u64)> = after
        .iter()
        .filter(|o| !before.contains(o))
        .filter(|(k, _)| {
            !k.starts_with("hf/") && !k.starts_with("blobs/") && !k.starts_with("changes/")
        })
        .collect();
    let names: Vec<&str> = added.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "modelimages/models/org--Tiny/served.json",
            "modelimages/models/org--secret/served.json"
        ]
    );
    let bytes: u64 = added.iter().map(|(_, n)| n).sum();
    eprintln!("store growth from the model image pulls: {bytes} bytes in {names:?}");
    assert!(bytes < 1024, "{added:?}");
    let new_blobs: Vec<&(String, u64)> = after
        .iter()
        .filter(|o| !before.contains(o) && o.0.starts_with("blobs/"))
        .collect();
    let other_files: Vec<String> = ["more.txt"]
        .iter()
        .map(|f| support::sha256_hex(&std::fs::read(other.join(f)).unwrap()))
        .collect();
    assert!(
        new_blobs
            .iter()
            .all(|(k, _)| other_files.iter().any(|h| k.ends_with(h))),
        "blobs written by the pulls: {new_blobs:?}"
    );
}

/// `Storage.download(uri, out)`, then every file under `out` as `<path> <sha256>`.
const KSERVE_DOWNLOAD: &str = r#"
import hashlib, os, sys
from kserve_storage import Storage
uri, out = sys.argv[1], sys.argv[2]
Storage.download(uri, out)
for root, _, files in os.walk(out):
    for f in files:
        p = os.path.join(root, f)
        print(os.path.relpath(p, out), hashlib.sha256(open(p, "rb").read()).hexdigest())
"#;

/// Every file under `root`: its path relative to `root` and its bytes.
fn walk(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

fn modelcar_image(backend: Backend) {
    // containerd's socket path must stay short.
    let dir = tempfile::Builder::new()
        .prefix("modelcar")
        .tempdir_in("/tmp")
        .unwrap();
    let dir = dir.path();
    let store = StoreArgs::new(backend, dir);
    let model = make_model(dir, "tiny", &[]);
    let weights = std::fs::read(model.join("model.safetensors")).unwrap();
    import(&store, dir, &["org/Tiny", model.to_str().unwrap()]);
    // The base, as the default `[model_images] base` names it.
    let layout = images::busybox_layout(dir, "latest", "unused");
    ok(store
        .cli(dir)
        .args(["oci", "import", "--repo", "docker.io/library/busybox"])
        .arg(&layout));
    let server = store.serve(dir, &["--admin-token", ADMIN]);
    let host = host_of(&server.base).to_string();
    let before = store.objects();

    let v2 = |path: &str| format!("{}/v2/huggingface.co/{path}", server.base);
    let (status, index) = request("GET", &v2("org/tiny/manifests/main"), None);
    assert_eq!(status, 200, "{index}");
    let index: serde_json::Value = serde_json::from_str(&index).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let child = index["manifests"][0]["digest"].as_str().unwrap();
    let (status, manifest) = request("GET", &v2(&format!("org/tiny/manifests/{child}")), None);
    assert_eq!(status, 200, "{manifest}");
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let last = manifest["layers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["mediaType"], "application/vnd.oci.image.layer.v1.tar");
    // The layer is a tar of the files, served whole and by exact ranges.
    let layer_url = v2(&format!(
        "org/tiny/blobs/{}",
        last["digest"].as_str().unwrap()
    ));
    let (status, layer) = request_bytes("GET", &layer_url, None, None);
    assert_eq!(status, 200);
    assert_eq!(support::sha256(&layer), last["digest"].as_str().unwrap());
    assert_eq!(layer.len() as u64, last["size"].as_u64().unwrap());
    let (status, part) = request_bytes("GET", &layer_url, None, Some("bytes=1000-70999"));
    assert_eq!(status, 206);
    assert_eq!(part, &layer[1000..71000]);
    let mut archive = tar::Archive::new(&layer[..]);
    let mut found = None;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_string_lossy() == "models/model.safetensors" {
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut body).unwrap();
            found = Some(body);
        }
    }
    assert_eq!(found.as_deref(), Some(&weights[..]));

    // KServe's storage initializer extracts /models byte for byte.
    let out_dir = dir.join("kserve-out");
    let listing = ok(std::process::Command::new(
        support::process::venv_dir("AIRLOCK_TEST_VENV_S3").join("bin/python"),
    )
    .env("HOME", dir)
    .env("KSERVE_OCI_INSECURE_REGISTRY", "true")
    .arg("-c")
    .arg(KSERVE_DOWNLOAD)
    .arg(format!("oci://{host}/huggingface.co/org/tiny:main"))
    .arg(&out_dir));
    let mut expected: Vec<String> = walk(&model)
        .into_iter()
        .map(|(path, bytes)| format!("{path} {}", support::sha256_hex(&bytes)))
        .collect();
    expected.push(format!(
        ".gitattributes {}",
        support::sha256_hex(&std::fs::read(out_dir.join(".gitattributes")).unwrap())
    ));
    expected.sort();
    let mut got: Vec<&str> = listing.lines().collect();
    got.sort();
    assert_eq!(got, expected);

    // containerd pulls it and runs the base's shell over /models.
    let ctd = Containerd::start(dir);
    let image = format!("{host}/huggingface.co/org/tiny:main");
    ok(ctd.ctr().args([
        "images",
        "pull",
        "--plain-http",
        "--snapshotter",
        "native",
        &image,
    ]));
    let out = ok(ctd.ctr().args([
        "run",
        "--snapshotter",
        "native",
        "--rm",
        &image,
        "modelcar-test",
        "/bin/sh",
        "-c",
        "ls /models && /bin/busybox sha256sum /models/model.safetensors",
    ]));
    assert!(
        out.contains("config.json") && out.contains("nested"),
        "{out}"
    );
    assert!(
        out.contains(&support::sha256_hex(&weights)),
        "{out}\ncontainerd log:\n{}",
        ctd.log()
    );

    // Through a node mirror, as KServe names it: `huggingface.co/org/tiny:main`, the
    // host that `airlock oci hosts-toml` sends to Airlock (`?ns=huggingface.co`).
    let hosts = dir.join("certs.d");
    ok(std::process::Command::new(support::airlock::BIN)
        .args([
            "oci",
            "hosts-toml",
            "--upstream",
            "huggingface.co",
            "--airlock",
        ])
        .arg(&server.base)
        .arg("--write")
        .arg(&hosts));
    let pulled = ok(ctd
        .ctr()
        .args(["images", "pull", "--snapshotter", "native", "--hosts-dir"])
        .arg(&hosts)
        .arg("huggingface.co/org/tiny:main"));
    let index_digest =
        support::sha256(&request_bytes("GET", &v2("org/tiny/manifests/main"), None, None).1);
    assert!(pulled.contains(&index_digest), "{pulled}");

    // The store grew by the served-commits record and the layer digests only.
    let after = store.objects();
    let added: Vec<&(String, u64)> = after.iter().filter(|o| !before.contains(o)).collect();
    assert!(
        added
            .iter()
            .all(|(k, _)| k.starts_with("modelimages/models/org--Tiny/")),
        "{added:?}"
    );
    let bytes: u64 = added.iter().map(|(_, n)| n).sum();
    eprintln!("store growth from the modelcar pull: {bytes} bytes in {added:?}");
    assert!(bytes < 2048, "{added:?}");
}

on_both_stores!(
    sync,
    ignore_fs = "needs skopeo: `bash tests/run-all.sh` sets it up",
    ignore_s3 = "needs skopeo and Garage: `bash tests/run-all.sh` sets them up":
    modelpack_artifact,
);

mod modelcar {
    use super::*;
    on_both_stores!(
        sync,
        ignore_fs = "needs containerd, runc, umoci, busybox-static (as root) and kserve-storage: `bash tests/run-all.sh` sets them up",
        ignore_s3 = "needs containerd, runc, umoci, busybox-static, kserve-storage and Garage: `bash tests/run-all.sh` sets them up":
        modelcar_image,
    );
}
