//! OCI model images made from the Hub's stored files (src/modelimage), pulled by real
//! registry clients on loopback, on the filesystem store and on S3 (Garage): skopeo
//! copies the ModelPack artifact `huggingface.co/<org>/<name>:<rev>-modelpack` into an
//! OCI layout, whose weights layer is the file itself. `bash tests/run-all.sh` installs
//! skopeo.

mod support;

use std::path::{Path, PathBuf};
use support::backend::{Backend, StoreArgs};
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
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let url = url.to_string();
    let token = token.map(str::to_string);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let mut r = support::http::client().request(method, url);
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
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
    // the other branch's files and commit).
    let after = store.objects();
    let added: Vec<&(String, u64)> = after
        .iter()
        .filter(|o| !before.contains(o))
        .filter(|(k, _)| !k.starts_with("hf/") && !k.starts_with("blobs/"))
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

on_both_stores!(
    sync,
    ignore_fs = "needs skopeo: `bash tests/run-all.sh` sets it up",
    ignore_s3 = "needs skopeo and Garage: `bash tests/run-all.sh` sets them up":
    modelpack_artifact,
);
