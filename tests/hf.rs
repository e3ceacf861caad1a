//! The Hub API over HTTP against the real binary: repo info, tree, resolve headers,
//! errors with X-Error-Code, private repos, the `/hf` prefix, and refused uploads.

mod support;

use serde_json::Value;
use std::path::Path;
use support::airlock::{command, Airlock};
use support::http;
use support::hub;
use support::store_walk::file_count;

const ADMIN: &str = "admin-token-for-tests-0123";
const READER: &str = "reader-token-0123456789";

/// A small model folder: config, a file in a folder with an awkward name, and a file
/// large enough to be LFS.
fn model_folder(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("model");
    std::fs::create_dir_all(root.join("sub dir")).unwrap();
    std::fs::write(
        root.join("config.json"),
        r#"{"architectures":["TinyModel"],"model_type":"tiny"}"#,
    )
    .unwrap();
    std::fs::write(root.join("sub dir/tok#1.json"), "{}").unwrap();
    let big: Vec<u8> = (0..11 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(root.join("weights.bin"), big).unwrap();
    root
}

struct Fixture {
    server: Airlock,
    dir: tempfile::TempDir,
}

fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("airlock.toml");
    std::fs::write(
        &config,
        format!(
            "store = \"{}\"\n[[tokens]]\nname = \"reader\"\nsecret = \"{READER}\"\nscopes = [\"read:hf:secret/\"]\n",
            dir.path().join("store").display()
        ),
    )
    .unwrap();
    let folder = model_folder(dir.path());
    let import = |args: &[&str]| {
        let out = command(dir.path())
            .args(["--config", config.to_str().unwrap(), "hf", "import"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    import(&["org/tiny", folder.to_str().unwrap()]);
    import(&["secret/model", folder.to_str().unwrap(), "--private"]);
    import(&["secret/gated", folder.to_str().unwrap(), "--gated"]);
    let server = Airlock::start(
        dir.path(),
        &["--config", config.to_str().unwrap(), "--admin-token", ADMIN],
        &[],
    );
    Fixture { server, dir }
}

async fn get_json(url: &str) -> Value {
    let r = http::client().get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.json().await.unwrap()
}

#[tokio::test]
async fn repo_info_tree_and_resolve_carry_what_clients_need() {
    let fx = start();
    let base = &fx.server.base;
    let info = get_json(&format!("{base}/api/models/org/tiny")).await;
    assert_eq!(info["id"], "org/tiny");
    let sha = info["sha"].as_str().unwrap().to_string();
    assert_eq!(sha.len(), 40);
    assert!(info["lastModified"].as_str().unwrap().ends_with('Z'));
    assert_eq!(info["config"]["model_type"], "tiny");
    let siblings: Vec<&str> = info["siblings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rfilename"].as_str().unwrap())
        .collect();
    assert_eq!(
        siblings,
        [
            ".gitattributes",
            "config.json",
            "sub dir/tok#1.json",
            "weights.bin"
        ]
    );
    let with_blobs = get_json(&format!(
        "{base}/api/models/org/tiny/revision/main?blobs=true"
    ))
    .await;
    let weights = &with_blobs["siblings"][3];
    assert_eq!(weights["lfs"]["size"], 11 * 1024 * 1024);
    assert_eq!(weights["lfs"]["sha256"].as_str().unwrap().len(), 64);
    let expanded = get_json(&format!(
        "{base}/api/models/org/tiny?expand=sha&expand=private"
    ))
    .await;
    assert!(expanded.get("siblings").is_none() && expanded["sha"] == sha.as_str());

    // Tree: root, non-recursive; a sub-folder addressed with an encoded slash; no xetHash.
    let tree = get_json(&format!(
        "{base}/api/models/org/tiny/tree/main?recursive=false&expand=false"
    ))
    .await;
    let paths: Vec<&str> = tree
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [".gitattributes", "config.json", "sub dir", "weights.bin"]
    );
    assert!(!tree.to_string().contains("xetHash"));
    let sub = get_json(&format!(
        "{base}/api/models/org/tiny/tree/{sha}/sub%20dir?recursive=true&expand=true"
    ))
    .await;
    assert_eq!(sub[0]["path"], "sub dir/tok#1.json");
    assert_eq!(sub[0]["oid"], "9e26dfeeb6e641a33dae4961196235bdb965b21b"); // git hash-object of "{}"
    assert_eq!(sub[0]["lastCommit"]["id"], sha.as_str());

    // Resolve: HEAD and GET with the headers huggingface_hub requires, served directly.
    let url = format!("{base}/org/tiny/resolve/main/weights.bin");
    let r = http::client().head(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-repo-commit"], sha.as_str());
    let lfs_sha = weights["lfs"]["sha256"].as_str().unwrap();
    assert_eq!(
        r.headers()["x-linked-etag"],
        format!("\"{lfs_sha}\"").as_str()
    );
    assert_eq!(r.headers()["etag"], format!("\"{lfs_sha}\"").as_str());
    assert_eq!(
        r.headers()["x-linked-size"],
        (11 * 1024 * 1024).to_string().as_str()
    );
    assert_eq!(
        r.headers()["content-length"],
        (11 * 1024 * 1024).to_string().as_str()
    );
    assert!(
        r.headers().get("x-xet-hash").is_none() && r.headers().get("content-encoding").is_none()
    );
    let r = http::client()
        .get(&url)
        .header("range", "bytes=0-11")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().len(), 12);
    let r = http::client()
        .get(&url)
        .header("range", "bytes=99999999-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    let r = http::client()
        .get(format!(
            "{base}/org/tiny/resolve/{sha}/sub%20dir/tok%231.json"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["etag"],
        "\"9e26dfeeb6e641a33dae4961196235bdb965b21b\""
    );
    assert_eq!(r.text().await.unwrap(), "{}");

    // Everything again under /hf.
    let r = http::client()
        .head(format!("{base}/hf/org/tiny/resolve/main/config.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let info = get_json(&format!("{base}/hf/api/models/org/tiny/revision/{sha}")).await;
    assert_eq!(info["sha"], sha.as_str());
}

async fn assert_error(
    r: reqwest::Response,
    status: u16,
    code: Option<&str>,
) -> reqwest::header::HeaderMap {
    assert_eq!(r.status(), status);
    let headers = r.headers().clone();
    assert_eq!(
        headers.get("x-error-code").map(|v| v.to_str().unwrap()),
        code
    );
    assert!(headers.contains_key("x-error-message"));
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].is_string());
    headers
}

#[tokio::test]
async fn errors_use_the_hub_codes() {
    let fx = start();
    let base = &fx.server.base;
    let c = http::client();
    assert_error(
        c.get(format!("{base}/api/models/org/missing"))
            .send()
            .await
            .unwrap(),
        404,
        Some("RepoNotFound"),
    )
    .await;
    assert_error(
        c.get(format!("{base}/api/models/org/tiny/revision/nope"))
            .send()
            .await
            .unwrap(),
        404,
        Some("RevisionNotFound"),
    )
    .await;
    let h = assert_error(
        c.get(format!("{base}/org/tiny/resolve/main/missing.json"))
            .send()
            .await
            .unwrap(),
        404,
        Some("EntryNotFound"),
    )
    .await;
    assert_eq!(h["x-repo-commit"].len(), 40);
    assert_error(
        c.get(format!("{base}/api/models/org/tiny/tree/main/nothing"))
            .send()
            .await
            .unwrap(),
        404,
        Some("EntryNotFound"),
    )
    .await;
    // Traversal in paths and repo ids.
    assert_error(
        c.get(format!("{base}/org/tiny/resolve/main/..%2F..%2Fstore"))
            .send()
            .await
            .unwrap(),
        404,
        Some("EntryNotFound"),
    )
    .await;
    assert_error(
        c.get(format!("{base}/api/models/..%2F..%2Fetc/passwd"))
            .send()
            .await
            .unwrap(),
        404,
        Some("RepoNotFound"),
    )
    .await;
    assert_error(
        c.get(format!("{base}/api/models/org/tiny/tree/main/a%2F..%2F.."))
            .send()
            .await
            .unwrap(),
        400,
        None,
    )
    .await;
    // A bad token is an auth error, not a missing repo.
    let r = c
        .get(format!("{base}/api/models/org/tiny"))
        .bearer_auth("wrong-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["x-error-message"],
        "Invalid credentials in Authorization header"
    );
}

#[tokio::test]
async fn private_repos_are_invisible_without_a_read_scope() {
    let fx = start();
    let base = &fx.server.base;
    let c = http::client();
    assert_error(
        c.get(format!("{base}/api/models/secret/model"))
            .send()
            .await
            .unwrap(),
        401,
        Some("RepoNotFound"),
    )
    .await;
    let r = c
        .get(format!("{base}/api/models/secret/model"))
        .bearer_auth(READER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .head(format!("{base}/secret/model/resolve/main/config.json"))
        .bearer_auth(READER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The reader's scope covers secret/ only; listings hide what a caller may not read.
    let list: Value = c
        .get(format!("{base}/api/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["org/tiny", "secret/gated"]);
    let list: Value = c
        .get(format!("{base}/api/models?search=MOD&author=secret"))
        .bearer_auth(READER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["id"], "secret/model");
    assert_eq!(list[0]["config"]["architectures"][0], "TinyModel");
    // A gated repo is described to everyone, its files only to tokens that may read it.
    let info: Value = c
        .get(format!("{base}/api/models/secret/gated"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["gated"], "manual");
    let url = format!("{base}/secret/gated/resolve/main/config.json");
    assert_error(c.get(&url).send().await.unwrap(), 401, Some("GatedRepo")).await;
    let head = c.head(&url).send().await.unwrap();
    assert_eq!(
        (head.status().as_u16(), &head.headers()["x-error-code"]),
        (
            401,
            &"GatedRepo".parse::<reqwest::header::HeaderValue>().unwrap()
        )
    );
    let admin_only = c.get(&url).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(admin_only.status(), 200);
    assert_eq!(
        c.get(&url)
            .bearer_auth(READER)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Read scope is not write scope.
    let r = c
        .post(format!("{base}/api/repos/create"))
        .bearer_auth(READER)
        .json(&serde_json::json!({"name": "new", "organization": "secret"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .post(format!("{base}/api/repos/create"))
        .json(&serde_json::json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn bad_uploads_are_refused_and_store_nothing() {
    let fx = start();
    let base = &fx.server.base;
    let c = http::client();
    let blobs = || file_count(&fx.dir.path().join("store/blobs"));
    let before = blobs();

    // A commit naming an LFS object that was never uploaded.
    let r = hub::commit(&c, base, ADMIN, "org/tiny")
        .body(hub::ndjson(&[
            hub::header_line("bad"),
            hub::lfs_line("w.bin", &"a".repeat(64), 5),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("never uploaded"));
    // A commit with a traversal path.
    let r = hub::commit(&c, base, ADMIN, "org/tiny")
        .body(hub::ndjson(&[hub::file_line("../x", b"xyz")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // An LFS upload whose body does not match its oid.
    let content = b"the real content".to_vec();
    let oid = support::sha256_hex(&content);
    let href =
        hub::upload_href(&hub::lfs_batch(&c, base, ADMIN, "org/tiny", &oid, content.len()).await);
    let r = c
        .put(&href)
        .body(b"other content...".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Forged, expired and missing signatures.
    for (what, url) in [
        ("forged", href.replace("sig=", "sig=00")),
        ("expired", href.replace("expires=", "expires=1")),
        ("unsigned", href.split('?').next().unwrap().to_string()),
    ] {
        let r = c.put(&url).body(content.clone()).send().await.unwrap();
        assert_eq!(r.status(), 403, "{what}: {url}");
    }
    assert_eq!(blobs(), before, "nothing stored by refused uploads");
    // The genuine body is accepted.
    assert_eq!(
        c.put(&href).body(content).send().await.unwrap().status(),
        200
    );
    assert_eq!(blobs(), before + 1);
}

/// The Rust `hf-hub` crate (what TGI, candle and mistral.rs download with): a metadata
/// probe with `Range: bytes=0-0`, then the file, in parallel ranges for large ones.
#[tokio::test]
async fn the_rust_hf_hub_client_downloads() {
    let fx = start();
    let cache = fx.dir.path().join("hf-hub-cache");
    let api = hf_hub::api::tokio::ApiBuilder::new()
        .with_endpoint(fx.server.base.clone())
        .with_cache_dir(cache)
        .with_progress(false)
        .build()
        .unwrap();
    let repo = api.model("org/tiny".to_string());
    let config = repo.get("config.json").await.unwrap();
    assert_eq!(
        std::fs::read_to_string(config).unwrap(),
        r#"{"architectures":["TinyModel"],"model_type":"tiny"}"#
    );
    let weights = repo.get("weights.bin").await.unwrap();
    assert_eq!(
        std::fs::read(weights).unwrap(),
        std::fs::read(fx.dir.path().join("model/weights.bin")).unwrap()
    );
    let info = repo.info().await.unwrap();
    assert_eq!(info.siblings.len(), 4);
    let tagged = api.repo(hf_hub::Repo::with_revision(
        "org/tiny".to_string(),
        hf_hub::RepoType::Model,
        info.sha.clone(),
    ));
    // (hf-hub 0.4 does not percent-encode file names, so a plain one here.)
    let pinned = tagged.get("config.json").await.unwrap();
    assert!(pinned.to_string_lossy().contains(&info.sha), "{pinned:?}");
    assert!(repo.get("missing.json").await.is_err());
}

#[tokio::test]
async fn an_unreachable_store_is_a_5xx_never_a_404() {
    let fx = start();
    let base = &fx.server.base;
    // Warm nothing: the first read of this repo must reach the store.
    let store = fx.dir.path().join("store");
    std::fs::rename(&store, fx.dir.path().join("moved")).unwrap();
    for url in [
        format!("{base}/api/models/org/tiny"),
        format!("{base}/org/tiny/resolve/main/config.json"),
    ] {
        let r = http::client().get(&url).send().await.unwrap();
        assert!(r.status().is_server_error(), "{url}: {}", r.status());
        assert!(r.headers().get("x-error-code").is_none(), "{url}");
    }
    std::fs::rename(fx.dir.path().join("moved"), &store).unwrap();
    assert_eq!(
        http::client()
            .get(format!("{base}/api/models/org/tiny"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// huggingface_hub 1.0 to 1.19 offer `xet` in the LFS batch and upload through Xet only
/// when the answer chooses it (then with no actions: the bytes go to the CAS); a client
/// that offers only `basic` (git-lfs, huggingface_hub 0.x) still gets signed upload URLs.
#[tokio::test]
async fn lfs_batch_chooses_xet_when_offered() {
    let fx = start();
    let c = http::client();
    let oid = support::sha256_hex(b"through xet");
    let batch = |transfers: Value, oid: String| {
        c.post(format!(
            "{}/org/tiny.git/info/lfs/objects/batch",
            fx.server.base
        ))
        .bearer_auth(ADMIN)
        .header("content-type", "application/vnd.git-lfs+json")
        .json(&serde_json::json!({
            "operation": "upload", "transfers": transfers, "hash_algo": "sha256",
            "ref": {"name": "main"}, "objects": [{"oid": oid, "size": 11}],
        }))
        .send()
    };
    let answer: Value = batch(
        serde_json::json!(["basic", "multipart", "xet"]),
        oid.clone(),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(answer["transfer"], "xet", "{answer}");
    assert_eq!(answer["objects"][0]["oid"], oid.as_str(), "{answer}");
    assert!(answer["objects"][0].get("actions").is_none(), "{answer}");
    let answer: Value = batch(serde_json::json!(["xet"]), "not-a-sha256".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["objects"][0]["error"]["code"], 422, "{answer}");
    let answer: Value = batch(serde_json::json!(["basic"]), oid)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["transfer"], "basic", "{answer}");
    hub::upload_href(&answer);
}
