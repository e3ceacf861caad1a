#![allow(dead_code)]
//! Test images built offline: a busybox OCI image layout made with `umoci` from
//! Debian's `busybox-static`, and small layouts written directly by code.

use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `<dir>/layout`, an OCI image layout holding `busybox:<tag>` whose command is
/// `echo <greeting>`. Returns the layout path.
pub fn busybox_layout(dir: &Path, tag: &str, greeting: &str) -> PathBuf {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("busybox not found: apt-get install busybox-static (bash tests/run-all.sh does)");
    let layout = dir.join("layout");
    let rootfs = dir.join("rootfs-bin");
    std::fs::create_dir_all(&rootfs).unwrap();
    std::fs::copy(&busybox, rootfs.join("busybox")).unwrap();
    for applet in ["sh", "echo", "cat", "ls"] {
        std::os::unix::fs::symlink("busybox", rootfs.join(applet)).unwrap();
    }
    let image = format!("{}:{tag}", layout.display());
    run(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout));
    run(Command::new("umoci").args(["new", "--image", &image]));
    run(Command::new("umoci")
        .args(["insert", "--image", &image])
        .arg(&rootfs)
        .arg("/bin"));
    run(Command::new("umoci").args([
        "config",
        "--image",
        &image,
        "--config.cmd",
        "/bin/echo",
        "--config.cmd",
        greeting,
    ]));
    layout
}

/// The digest of the manifest a layout's index names first.
pub fn layout_manifest_digest(layout: &Path) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Writes a tiny single-layer OCI layout by code (no tools needed). `ref_name` goes into
/// `org.opencontainers.image.ref.name`. Returns the manifest's digest and bytes.
pub fn tiny_layout(layout: &Path, ref_name: &str, layer: &[u8]) -> (String, Vec<u8>) {
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let d = sha256(data);
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), data).unwrap();
        d
    };
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = put(config);
    let layer_digest = put(layer);
    let manifest = serde_json::to_vec_pretty(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}]
    }))
    .unwrap();
    let digest = put(&manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest, "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": ref_name}
        }]
    });
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    (digest, manifest)
}

/// skopeo with no user or system registry configuration leaking in.
pub fn skopeo(dir: &Path) -> Command {
    let policy = dir.join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    let mut cmd = Command::new("skopeo");
    cmd.arg("--policy")
        .arg(&policy)
        .arg("--registries-conf")
        .arg(dir.join("registries.conf"))
        .env("HOME", dir)
        .env_remove("REGISTRY_AUTH_FILE");
    if !dir.join("registries.conf").exists() {
        std::fs::write(dir.join("registries.conf"), "").unwrap();
    }
    cmd
}
