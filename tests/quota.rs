//! Quotas with the real clients, on the filesystem store and on Garage: a push past an
//! OCI namespace's, a Python index's or a Hub organization's quota is refused with the
//! protocol's own error naming the quota (skopeo, twine, huggingface_hub print it), and
//! nothing of it is stored; other scopes are not limited; deleting frees quota at once.

mod support;

use std::path::Path;
use support::airlock::Airlock;
use support::backend::{Backend, StoreArgs};
use support::images::{skopeo, tiny_layout};
use support::process::{ok, venv_dir, venv_tool};
use support::{pseudo_random, ADMIN};

const CONFIG: &str = r#"
[oci]
quotas = { "docker.io/team" = "700KiB" }
[pypi]
indexes = ["team"]
quotas = { team = "600KiB" }
[hf]
quotas = { org = "600KiB" }
"#;

fn serve(backend: Backend, dir: &Path) -> (StoreArgs, Airlock) {
    let config = dir.join("airlock.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let store = StoreArgs::new(backend, dir);
    let server = store.serve(
        dir,
        &["--config", config.to_str().unwrap(), "--admin-token", ADMIN],
    );
    (store, server)
}

fn push(dir: &Path, server: &Airlock, layout: &Path, image: &str) -> std::process::Output {
    let host = server.base.trim_start_matches("http://");
    skopeo(dir)
        .args([
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            "--dest-creds",
            &format!("ci:{ADMIN}"),
            &format!("oci:{}:v1", layout.display()),
            &format!("docker://{host}/{image}"),
        ])
        .output()
        .unwrap()
}

/// skopeo: the second image would take `docker.io/team` past 700 KiB.
async fn oci_namespace_quota(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (store, server) = serve(backend, dir);
    let (a, b) = (pseudo_random(400 << 10, 1), pseudo_random(400 << 10, 2));
    let (layout_a, layout_b) = (dir.join("a"), dir.join("b"));
    tiny_layout(&layout_a, "v1", &a);
    tiny_layout(&layout_b, "v1", &b);
    support::process::output_ok(
        push(dir, &server, &layout_a, "docker.io/team/a:v1"),
        "skopeo",
    );

    let refused = push(dir, &server, &layout_b, "docker.io/team/b:v1");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("quota exceeded") && stderr.contains("docker.io/team"),
        "{stderr}"
    );
    assert!(!store.has_blob(&b), "the refused layer is not stored");
    assert_eq!(store.keys_under("uploads/"), Vec::<String>::new());
    let http = support::http::client();
    let manifest = |name: &str| {
        http.get(server.url(&format!("/v2/{name}/manifests/v1")))
            .bearer_auth(ADMIN)
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
    };
    assert_eq!(manifest("team/b").await.unwrap().status(), 404);

    // Another namespace has no quota; deleting the first image frees the team's at once.
    support::process::output_ok(
        push(dir, &server, &layout_b, "docker.io/other/b:v1"),
        "skopeo",
    );
    let digest = manifest("team/a").await.unwrap().headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_string();
    let r = http
        .delete(server.url(&format!("/v2/team/a/manifests/{digest}")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    support::process::output_ok(
        push(dir, &server, &layout_b, "docker.io/team/b:v1"),
        "skopeo",
    );
}

fn twine(server: &Airlock, index_path: &str, wheel: &Path) -> std::process::Output {
    venv_tool("twine")
        .args(["upload", "--non-interactive", "--disable-progress-bar"])
        .arg("--repository-url")
        .arg(server.url(index_path))
        .args(["-u", "__token__", "-p", ADMIN])
        .arg(wheel)
        .output()
        .unwrap()
}

/// twine: the second wheel would take the index `team` past 600 KiB.
async fn pypi_index_quota(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (store, server) = serve(backend, dir);
    let small =
        support::wheels::wheel_with_data("first", "1.0", &[], None, pseudo_random(300 << 10, 3));
    let big =
        support::wheels::wheel_with_data("second", "1.0", &[], None, pseudo_random(400 << 10, 4));
    let (small_path, big_path) = (small.write_to(dir), big.write_to(dir));
    support::process::output_ok(twine(&server, "/pypi/team/legacy/", &small_path), "twine");
    let refused = twine(&server, "/pypi/team/legacy/", &big_path);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&refused.stdout),
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(!refused.status.success(), "{text}");
    assert!(
        text.contains("403") && text.contains("quota exceeded") && text.contains("`team`"),
        "{text}"
    );
    assert!(
        !store.has_blob(&big.bytes),
        "the refused wheel is not stored"
    );
    let r = support::http::client()
        .get(server.url("/pypi/team/simple/second/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the refused wheel is not listed");
    // The default index has no quota.
    support::process::output_ok(twine(&server, "/legacy/", &big_path), "twine");
}

/// huggingface_hub, through Xet and through LFS: the second file would take the
/// organization `org` past 600 KiB, and the client shows why; another organization is not
/// limited.
async fn hf_organization_quota(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (store, server) = serve(backend, dir);
    let big = pseudo_random(400 << 10, 6);
    std::fs::write(dir.join("small.bin"), pseudo_random(300 << 10, 5)).unwrap();
    std::fs::write(dir.join("big.bin"), &big).unwrap();
    let python = |xet: bool, script: &str| {
        let mut python = support::hf_python_in(
            &venv_dir("AIRLOCK_TEST_VENV"),
            &server.base,
            &dir.join("home"),
        );
        if !xet {
            python.env("HF_HUB_DISABLE_XET", "1");
        }
        let preamble = format!(
            "import os\nfrom huggingface_hub import HfApi\nfrom huggingface_hub.utils import HfHubHTTPError\napi = HfApi()\nos.chdir({:?})\n",
            dir.to_str().unwrap()
        );
        ok(python
            .env("HF_TOKEN", ADMIN)
            .arg("-c")
            .arg(format!("{preamble}{script}")))
    };
    python(
        true,
        r#"
api.create_repo("org/m")
api.upload_file(path_or_fileobj="small.bin", path_in_repo="small.bin", repo_id="org/m")
"#,
    );
    let xorbs = store.keys_under("xet/xorbs/");
    for xet in [true, false] {
        let out = python(
            xet,
            r#"
try:
    api.upload_file(path_or_fileobj="big.bin", path_in_repo="big.bin", repo_id="org/m")
    raise SystemExit("the upload past the quota was accepted")
except HfHubHTTPError as e:
    assert e.response.status_code == 403, e
    print("REFUSED", e)
assert "big.bin" not in api.list_repo_files("org/m")
"#,
        );
        assert!(
            out.contains("REFUSED") && out.contains("quota exceeded") && out.contains("`org`"),
            "{out}"
        );
        assert!(!store.has_blob(&big), "the refused file is not stored");
        assert_eq!(store.keys_under("xet/xorbs/"), xorbs, "nor are xorbs of it");
    }
    // The same file twice in the organization counts once: re-uploading it is admitted.
    python(
        false,
        r#"
api.upload_file(path_or_fileobj="small.bin", path_in_repo="small.bin", repo_id="org/m")
api.create_repo("elsewhere/m")
api.upload_file(path_or_fileobj="big.bin", path_in_repo="big.bin", repo_id="elsewhere/m")
"#,
    );
    assert!(store.has_blob(&big), "another organization is not limited");
}

on_both_stores!(
    async,
    ignore_fs = "needs skopeo, twine and huggingface_hub: `bash tests/run-all.sh` sets them up",
    ignore_s3 = "needs skopeo, twine, huggingface_hub and Garage: `bash tests/run-all.sh` sets them up":
    oci_namespace_quota,
    pypi_index_quota,
    hf_organization_quota,
);
