//! Pull-through caching against the real binary: an upstream Airlock seeded with the
//! import commands, a downstream Airlock configured with it as its upstream, and
//! clients talking to the downstream only (all on loopback).

mod support;

use futures::StreamExt;
use sha2::{Digest as _, Sha256};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::backend::{Backend, StoreArgs};
use support::http;
use support::pullthrough::{
    downstream, downstream_of, seed_model, seed_tiny, seed_wheel, upstream, Node,
};
use support::store_walk::stored_blobs;
use support::wheels::wheel;
use support::{sha256, ADMIN};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MIB: usize = 1024 * 1024;

/// The big layer's content: MiB `n` is a fixed pattern whose first 8 bytes hold `n`, so
/// clients can check what they get without hashing it (slow in a debug build).
fn pattern_mib(n: usize) -> Vec<u8> {
    let mut chunk: Vec<u8> = (0..MIB).map(|i| (i * 131 % 251) as u8).collect();
    chunk[..8].copy_from_slice(&(n as u64).to_le_bytes());
    chunk
}

/// An image `docker.io/library/big:1.0` with one layer of `size` bytes, written to disk a
/// chunk at a time (never whole in memory); the layer's digest.
fn seed_big(node: &Node, size: usize) -> String {
    let layout = node.dir.join("layout-big");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let tmp = blobs.join("layer.tmp");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp).unwrap());
    let mut hasher = Sha256::new();
    for n in 0..size.div_ceil(MIB) {
        let chunk = pattern_mib(n);
        let part = &chunk[..MIB.min(size - n * MIB)];
        hasher.update(part);
        file.write_all(part).unwrap();
    }
    file.flush().unwrap();
    let layer = format!("sha256:{}", hex::encode(hasher.finalize()));
    std::fs::rename(&tmp, blobs.join(layer.trim_start_matches("sha256:"))).unwrap();
    let put = |data: &[u8]| {
        let d = sha256(data);
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), data).unwrap();
        d
    };
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = put(config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": size}]
    }))
    .unwrap();
    let manifest_digest = put(&manifest);
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": "docker.io/library/big:1.0"}}]});
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    node.import(&["oci", "import", layout.to_str().unwrap()]);
    std::fs::remove_dir_all(&layout).unwrap();
    layer
}

/// GETs `url` streaming, hashing as it goes: (status, sha256 digest, bytes).
async fn fetch_hashed(http: &reqwest::Client, url: &str) -> Result<(u16, String, u64), String> {
    let response = http.get(url).send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let mut body = response.bytes_stream();
    let mut hasher = Sha256::new();
    let mut n = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("after {n} bytes: {e}"))?;
        n += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok((
        status,
        format!("sha256:{}", hex::encode(hasher.finalize())),
        n,
    ))
}

/// GETs `url` streaming and compares it with the big layer's pattern as it goes:
/// (status, whether every byte matched, bytes).
async fn fetch_pattern(http: &reqwest::Client, url: &str) -> Result<(u16, bool, u64), String> {
    let response = http.get(url).send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let mut body = response.bytes_stream();
    let (mut offset, mut same) = (0usize, true);
    let mut expected = pattern_mib(0);
    while let Some(chunk) = body.next().await {
        let mut chunk = &chunk.map_err(|e| format!("after {offset} bytes: {e}"))?[..];
        while !chunk.is_empty() {
            let within = offset % MIB;
            if within == 0 {
                expected[..8].copy_from_slice(&((offset / MIB) as u64).to_le_bytes());
            }
            let n = chunk.len().min(MIB - within);
            same &= chunk[..n] == expected[within..within + n];
            chunk = &chunk[n..];
            offset += n;
        }
    }
    Ok((status, same, offset as u64))
}

fn manifest_path(name: &str, reference: &str) -> String {
    format!("/v2/docker.io/library/{name}/manifests/{reference}")
}

fn blob_path(name: &str, digest: &str) -> String {
    format!("/v2/docker.io/library/{name}/blobs/{digest}")
}

async fn get_manifest(
    http: &reqwest::Client,
    node: &Node,
    name: &str,
    reference: &str,
) -> reqwest::Response {
    http.get(node.server.url(&manifest_path(name, reference)))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap()
}

async fn oci_miss_is_pulled_through_then_served_while_the_upstream_is_down(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let up = upstream(Backend::Fs, dir.path(), "");
    let layer = b"a layer from the upper zone".to_vec();
    let (digest, manifest) = seed_tiny(&up, "tiny", "1.0", &layer);
    let down = downstream(backend, dir.path(), &up, "");
    let http = http::following_redirects();

    // A tag miss: fetched, stored, served byte for byte with its digest.
    let r = get_manifest(&http, &down, "tiny", "1.0").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
    assert_eq!(r.headers()["content-type"], OCI_MANIFEST);
    assert_eq!(r.bytes().await.unwrap(), manifest);
    // containerd's way of naming it (?ns=) meets the same repository.
    let r = http
        .get(
            down.server
                .url(&format!("/v2/library/tiny/manifests/{digest}?ns=docker.io")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let blob = http
        .get(down.server.url(&blob_path("tiny", &sha256(&layer))))
        .send()
        .await
        .unwrap();
    assert_eq!(blob.status(), 200);
    assert_eq!(
        blob.headers()["docker-content-digest"],
        sha256(&layer).as_str()
    );
    assert_eq!(blob.bytes().await.unwrap(), layer);
    // The upstream says it has no such tag or blob: a real 404.
    let r = get_manifest(&http, &down, "tiny", "nope").await;
    assert_eq!(r.status(), 404);
    let absent = sha256(b"nobody has this");
    let r = http
        .get(down.server.url(&blob_path("tiny", &absent)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Upstream gone, TTL passed: the stored copy is still served (and quickly).
    drop(up);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let started = std::time::Instant::now();
    let r = get_manifest(&http, &down, "tiny", "1.0").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), manifest);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let r = http
        .get(down.server.url(&blob_path("tiny", &sha256(&layer))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A miss cannot be answered: a 5xx the client retries, never a 404 it believes.
    for path in [
        manifest_path("tiny", "2.0"),
        manifest_path("other", "1.0"),
        blob_path("tiny", &absent),
    ] {
        let r = http.get(down.server.url(&path)).send().await.unwrap();
        assert!(r.status().is_server_error(), "{path}: {}", r.status());
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["errors"][0]["code"], "UNAVAILABLE", "{body}");
    }
}

async fn oci_token_flow_against_an_upstream_without_anonymous_read(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let up = upstream(
        Backend::Fs,
        dir.path(),
        "anonymous_read = false\n[[tokens]]\nname = \"mirror\"\nsecret = \"mirror-token-0123456789\"\nscopes = [\"read\"]\n",
    );
    let (digest, manifest) = seed_tiny(&up, "private", "1.0", b"for token holders");
    // Without credentials the upstream refuses: a 5xx that says so, not a 404.
    let anonymous = downstream(backend, &dir.path().join("anon"), &up, "");
    let http = http::following_redirects();
    let r = get_manifest(&http, &anonymous, "private", "1.0").await;
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("401"));
    // With the token: 401 challenge -> /token with Basic credentials -> Bearer retry.
    std::env::set_var("PT_MIRROR_TOKEN", "mirror-token-0123456789");
    let down = downstream(
        backend,
        dir.path(),
        &up,
        "upstream_token_env = \"PT_MIRROR_TOKEN\"",
    );
    let r = get_manifest(&http, &down, "private", "1.0").await;
    assert_eq!(r.status(), 200, "{}", down.server.log());
    assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
    assert_eq!(r.bytes().await.unwrap(), manifest);
    assert!(up.gets("/token") >= 1, "{}", up.server.log());
}

async fn a_tag_moved_upstream_is_seen_after_the_ttl(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let up = upstream(Backend::Fs, dir.path(), "");
    let (first, _) = seed_tiny(&up, "moving", "latest", b"version one");
    let down = downstream(backend, dir.path(), &up, "");
    let http = http::following_redirects();
    let r = get_manifest(&http, &down, "moving", "latest").await;
    assert_eq!(r.headers()["docker-content-digest"], first.as_str());

    let (second, manifest) = seed_tiny(&up, "moving", "latest", b"version two");
    assert_ne!(first, second);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let r = get_manifest(&http, &down, "moving", "latest").await;
    assert_eq!(r.headers()["docker-content-digest"], second.as_str());
    assert_eq!(r.bytes().await.unwrap(), manifest);
    // The old manifest stays reachable by digest.
    let r = get_manifest(&http, &down, "moving", &first).await;
    assert_eq!(r.status(), 200);
}

async fn concurrent_misses_share_one_fetch(backend: Backend) {
    const CLIENTS: usize = 32;
    const SIZE: usize = 200 * MIB;
    let dir = tempfile::tempdir().unwrap();
    let up = upstream(backend, dir.path(), "");
    let layer = seed_big(&up, SIZE);
    let down = downstream(backend, dir.path(), &up, "");
    let http = http::following_redirects();
    let url = down.server.url(&blob_path("big", &layer));
    let clients = (0..CLIENTS).map(|_| {
        let (http, url) = (http.clone(), url.clone());
        tokio::spawn(async move { fetch_pattern(&http, &url).await })
    });
    for result in futures::future::join_all(clients).await {
        assert_eq!(result.unwrap().unwrap(), (200, true, SIZE as u64));
    }
    let fetches = up.gets(&blob_path("big", &layer));
    eprintln!("{CLIENTS} concurrent misses of a {SIZE}-byte blob: {fetches} upstream fetch(es)");
    assert_eq!(fetches, 1, "{}", up.server.log());
    // And it is stored: the upstream is not asked again.
    let (status, digest, _) = fetch_hashed(&http, &url).await.unwrap();
    assert_eq!((status, digest), (200, layer.clone()));
    assert_eq!(up.gets(&blob_path("big", &layer)), 1);
}

#[tokio::test]
async fn concurrent_misses_share_one_upstream_fetch_fs() {
    concurrent_misses_share_one_fetch(Backend::Fs).await;
}

#[tokio::test]
#[ignore = "needs Garage: bash tests/run-all.sh"]
async fn concurrent_misses_share_one_upstream_fetch_s3() {
    concurrent_misses_share_one_fetch(Backend::S3).await;
}

async fn an_upstream_stopped_mid_transfer_leaves_nothing_partial(backend: Backend) {
    const SIZE: usize = 64 * MIB;
    let dir = tempfile::tempdir().unwrap();
    let mut up = upstream(Backend::Fs, dir.path(), "");
    let layer = seed_big(&up, SIZE);
    let down = downstream(backend, dir.path(), &up, "");
    let http = http::following_redirects();
    let url = down.server.url(&blob_path("big", &layer));

    // Read a little, then stall: the downstream's fetch stalls with us (backpressure),
    // so the upstream is certainly killed mid-transfer. Read on (a MiB at a time, well
    // short of the end) until the store is visibly writing the blob: a temporary file on
    // disk, a multipart upload on S3 (begun once its first 8 MiB part is full).
    let response = http.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut got = 0usize;
    let mut checked = 0usize;
    loop {
        got += body.next().await.unwrap().unwrap().len();
        if got >= 4 * MIB && got >= checked + MIB {
            checked = got;
            if !down.store.unfinished_writes().is_empty() {
                break;
            }
            assert!(got < SIZE / 2, "no write in progress after {got} bytes");
        }
    }
    eprintln!("upstream killed after {got} of {SIZE} bytes reached the client");
    up.server.signal("KILL");
    let mut failed = false;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => got += c.len(),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(
        failed && got < SIZE,
        "the client must see the transfer fail ({got} bytes)"
    );
    let hex = layer.trim_start_matches("sha256:");
    // Give the downstream a moment to clean up its temporary file (on S3: to abort its
    // multipart upload), then nothing of the transfer may be left: no blob, no
    // temporary file, no incomplete multipart upload.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stored = stored_blobs(&down.store, hex);
    assert!(stored.is_empty(), "{stored:?}");
    let partial = down.store.unfinished_writes();
    assert!(partial.is_empty(), "partial writes left: {partial:?}");
    // While it is down the miss is a 5xx; once it is back, the next request succeeds.
    let r = http.get(&url).send().await.unwrap();
    assert!(r.status().is_server_error(), "{}", r.status());
    up.restart();
    let (status, digest, n) = fetch_hashed(&http, &url).await.unwrap();
    assert_eq!((status, digest, n), (200, layer.clone(), SIZE as u64));
    assert_eq!(stored_blobs(&down.store, hex).len(), 1);
    assert_eq!(down.store.unfinished_writes(), Vec::<String>::new());
}

const PYPI_JSON: &str = "application/vnd.pypi.simple.v1+json";

async fn project_json(http: &reqwest::Client, node: &Node, project: &str) -> reqwest::Response {
    http.get(node.server.url(&format!("/simple/{project}/")))
        .header("accept", PYPI_JSON)
        .send()
        .await
        .unwrap()
}

async fn pypi_miss_is_pulled_through_then_served_while_the_upstream_is_down(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let up = upstream(Backend::Fs, dir.path(), "");
    let dist = seed_wheel(&up, "demo-pkg", "1.0");
    let down = downstream(backend, dir.path(), &up, "");
    let http = http::following_redirects();

    let page: serde_json::Value = project_json(&http, &down, "demo-pkg")
        .await
        .json()
        .await
        .unwrap();
    let file = &page["files"][0];
    assert_eq!(file["filename"], dist.filename.as_str(), "{page}");
    assert_eq!(file["hashes"]["sha256"], dist.sha256());
    assert_eq!(file["requires-python"], ">=3.8");
    let metadata_sha = file["core-metadata"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    // The file URL is the downstream's own, as for any stored file.
    let url = reqwest::Url::parse(&down.server.url("/simple/demo-pkg/"))
        .unwrap()
        .join(file["url"].as_str().unwrap())
        .unwrap();
    assert!(url.as_str().starts_with(&down.server.base), "{url}");
    let body = http.get(url.clone()).send().await.unwrap();
    assert_eq!(body.status(), 200);
    assert_eq!(body.bytes().await.unwrap(), dist.bytes);
    let metadata = http.get(format!("{url}.metadata")).send().await.unwrap();
    assert_eq!(metadata.status(), 200);
    assert_eq!(
        sha256(&metadata.bytes().await.unwrap()),
        format!("sha256:{metadata_sha}")
    );
    // Not on the upstream either: a real 404.
    assert_eq!(
        project_json(&http, &down, "no-such-project").await.status(),
        404
    );

    // A new version upstream shows after the TTL.
    let newer = seed_wheel(&up, "demo-pkg", "2.0");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let page: serde_json::Value = project_json(&http, &down, "demo-pkg")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["files"].as_array().unwrap().len(), 2, "{page}");

    // Upstream down: the page and the fetched file are still served; a file whose bytes
    // were never fetched and an unknown project are 502, not 404.
    drop(up);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let page: serde_json::Value = project_json(&http, &down, "demo-pkg")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["files"].as_array().unwrap().len(), 2);
    let body = http.get(url).send().await.unwrap();
    assert_eq!(body.bytes().await.unwrap(), dist.bytes);
    let never_fetched = page["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["filename"] == newer.filename.as_str())
        .unwrap();
    let url = reqwest::Url::parse(&down.server.url("/simple/demo-pkg/"))
        .unwrap()
        .join(never_fetched["url"].as_str().unwrap())
        .unwrap();
    assert_eq!(http.get(url).send().await.unwrap().status(), 502);
    assert_eq!(
        project_json(&http, &down, "other-project").await.status(),
        502
    );
}

fn pip_installs_through_the_pull_through_cache(backend: Backend) {
    let venv = std::env::var("AIRLOCK_TEST_VENV")
        .expect("AIRLOCK_TEST_VENV is not set: run `bash tests/run-all.sh`");
    let dir = tempfile::tempdir().unwrap();
    let up = upstream(Backend::Fs, dir.path(), "");
    let dist = seed_wheel(&up, "pulled-pkg", "1.2");
    let down = downstream(backend, dir.path(), &up, "");
    let out = std::process::Command::new(Path::new(&venv).join("bin/pip"))
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .args(["download", "--no-deps", "--no-cache-dir", "-d"])
        .arg(dir.path().join("got"))
        .args([
            "--index-url",
            &down.server.url("/simple/"),
            "pulled-pkg==1.2",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = std::fs::read(dir.path().join("got").join(&dist.filename)).unwrap();
    assert_eq!(got, dist.bytes);
}

/// Pushes a one-layer image to `name:tag` through `node`'s registry API; its manifest digest.
async fn push_tiny(
    http: &reqwest::Client,
    node: &Node,
    name: &str,
    tag: &str,
    layer: &[u8],
) -> String {
    support::push_image(http, &node.server.base, ADMIN, name, tag, layer).await
}

#[tokio::test]
#[ignore = "needs Garage: bash tests/run-all.sh"]
async fn two_instances_on_one_bucket_agree_within_the_mutable_ttl() {
    const TTL: Duration = Duration::from_secs(1);
    let dir = tempfile::tempdir().unwrap();
    let store = StoreArgs::new(Backend::S3, dir.path());
    let config = "[cache]\nmutable_ttl = \"1s\"\n";
    let a = Node::start(&dir.path().join("a"), store.clone(), config, None);
    let b = Node::start(&dir.path().join("b"), store, config, None);
    let http = http::following_redirects();
    let name = "docker.io/team/shared";
    let tag_url = |node: &Node| node.server.url(&format!("/v2/{name}/manifests/1.0"));
    let digest_of = |r: &reqwest::Response| {
        r.headers()["docker-content-digest"]
            .to_str()
            .unwrap()
            .to_string()
    };

    let first = push_tiny(&http, &a, name, "1.0", b"pushed through a").await;
    let r = http
        .get(tag_url(&b))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!((r.status().as_u16(), digest_of(&r)), (200, first.clone()));
    let layer = http
        .get(
            b.server
                .url(&format!("/v2/{name}/blobs/{}", sha256(b"pushed through a"))),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(layer.bytes().await.unwrap(), &b"pushed through a"[..]);

    // b has the tag cached now; a moves it. b follows within the TTL (plus polling slack).
    let second = push_tiny(&http, &a, name, "1.0", b"pushed again through a").await;
    let moved = std::time::Instant::now();
    loop {
        let r = http
            .get(tag_url(&b))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        if digest_of(&r) == second {
            break;
        }
        assert_eq!(digest_of(&r), first);
        assert!(
            moved.elapsed() < TTL + Duration::from_millis(500),
            "b still serves the old tag after {:?}",
            moved.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "the other instance saw the moved tag after {:?} (mutable_ttl {TTL:?})",
        moved.elapsed()
    );
}

async fn hf_miss_is_pulled_through_with_upstream_ids_then_served_while_the_upstream_is_down(
    backend: Backend,
) {
    let dir = tempfile::tempdir().unwrap();
    let up = upstream(Backend::Fs, dir.path(), "");
    let config = br#"{"architectures":["Tiny"],"model_type":"tiny"}"#.to_vec();
    // Above the 10 MiB LFS threshold: listed with its sha256, fetched on first download.
    let weights: Vec<u8> = (0..11 * MIB).map(|i| (i % 253) as u8).collect();
    seed_model(
        &up,
        "org/tiny",
        &[("config.json", &config), ("model.safetensors", &weights)],
    );
    let down = downstream(backend, dir.path(), &up, "");
    let http = http::following_redirects();
    let info = |node: &Node| {
        let url = node
            .server
            .url("/api/models/org/tiny/revision/main?blobs=true");
        let http = http.clone();
        async move { http.get(url).send().await.unwrap() }
    };

    let upstream_info: serde_json::Value = info(&up).await.json().await.unwrap();
    let r = info(&down).await;
    assert_eq!(r.status(), 200);
    let mirrored: serde_json::Value = r.json().await.unwrap();
    // The upstream's commit id and oids, so revisions pinned upstream work here.
    assert_eq!(mirrored["sha"], upstream_info["sha"]);
    assert_eq!(
        mirrored["siblings"], upstream_info["siblings"],
        "{mirrored}"
    );
    let sha = mirrored["sha"].as_str().unwrap().to_string();

    for (path, content) in [("config.json", &config), ("model.safetensors", &weights)] {
        let r = http
            .get(down.server.url(&format!("/org/tiny/resolve/main/{path}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["x-repo-commit"], sha.as_str());
        assert_eq!(r.bytes().await.unwrap(), content.as_slice(), "{path}");
    }
    let r = http
        .get(
            down.server
                .url(&format!("/org/tiny/resolve/{sha}/config.json")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Not upstream either: the Hub's 404.
    let r = http
        .get(down.server.url("/api/models/org/absent/revision/main"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    drop(up);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let r = http
        .get(down.server.url("/org/tiny/resolve/main/model.safetensors"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), weights);
    let r = http
        .get(down.server.url("/api/models/org/other/revision/main"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.headers().contains_key("x-error-message"));
}

/// The S3 view of a pull-through Airlock reads what the Hub routes would bring in: a
/// listing inside a repository brings the revision in, HEAD answers from the listing
/// without fetching, GET brings the file in (streamed whole, or stored first for a
/// range), and what came in stays readable with the upstream gone.
async fn hf_miss_is_pulled_through_by_the_s3_view(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let up = upstream(Backend::Fs, dir.path(), "");
    let config = br#"{"model_type":"tiny"}"#.to_vec();
    // Above the 10 MiB LFS threshold: listed with their sha256, fetched on first read.
    let weights: Vec<u8> = (0..11 * MIB).map(|i| (i % 251) as u8).collect();
    let shard: Vec<u8> = (0..11 * MIB).map(|i| (i % 241) as u8).collect();
    seed_model(
        &up,
        "org/tiny",
        &[
            ("config.json", &config),
            ("model.safetensors", &weights),
            ("shards/b.bin", &shard),
        ],
    );
    let base = &up.server.base;
    let store = StoreArgs::new(backend, &dir.path().join("down"));
    let down = Node::start(
        &dir.path().join("down"),
        store,
        &format!(
            "[hf]\nupstream = \"{base}\"\nupstream_ttl = \"1s\"\n\
             [s3api]\nlisten = \"127.0.0.1:0\"\n"
        ),
        None,
    );
    let s3 = down.server.s3_endpoint();
    let http = http::client();
    let get = |path: &str, range: Option<&str>, head: bool| {
        let url = format!("{s3}{path}");
        let mut r = if head { http.head(url) } else { http.get(url) };
        if let Some(range) = range {
            r = r.header("range", range);
        }
        r.send()
    };

    // Nothing here yet: the listing of the repository brings its revision in.
    let r = get("/models?list-type=2&prefix=org/tiny/", None, false)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let listing = r.text().await.unwrap();
    for key in [
        "org/tiny/config.json",
        "org/tiny/model.safetensors",
        "org/tiny/shards/b.bin",
    ] {
        assert!(
            listing.contains(&format!("<Key>{key}</Key>")),
            "{key}: {listing}"
        );
    }
    let (weights_hex, shard_hex) = (support::sha256_hex(&weights), support::sha256_hex(&shard));
    assert!(stored_blobs(&down.store, &weights_hex).is_empty());

    // HEAD: size and ETag from the listing, nothing fetched.
    let r = get("/models/org/tiny/model.safetensors", None, true)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-length"],
        (11 * MIB).to_string().as_str()
    );
    assert_eq!(r.headers()["etag"], format!("\"{weights_hex}\"").as_str());
    assert!(
        stored_blobs(&down.store, &weights_hex).is_empty(),
        "HEAD fetched the file"
    );

    // A range: the file comes in whole and verified, then the range is read from it.
    let r = get(
        "/models/org/tiny/model.safetensors",
        Some("bytes=1000-1999"),
        false,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(&r.bytes().await.unwrap()[..], &weights[1000..2000]);
    assert_eq!(stored_blobs(&down.store, &weights_hex).len(), 1);
    // A whole GET: streamed as it arrives, stored on the way.
    let r = get("/models/org/tiny/shards/b.bin", None, false)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], format!("\"{shard_hex}\"").as_str());
    assert_eq!(r.bytes().await.unwrap(), shard);
    assert_eq!(stored_blobs(&down.store, &shard_hex).len(), 1);
    // A repository on neither side, and one only upstream asked for by file.
    let r = get("/models/org/absent/config.json", None, false)
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("<Code>NoSuchKey</Code>"));

    drop(up);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    for (path, content) in [("config.json", &config), ("model.safetensors", &weights)] {
        let r = get(&format!("/models/org/tiny/{path}"), None, false)
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path} with the upstream down");
        assert_eq!(&r.bytes().await.unwrap()[..], content.as_slice(), "{path}");
    }
    // Unknown here, upstream down: a 503 the SDKs retry, not a missing key.
    let r = get("/models/org/other/config.json", None, false)
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("<Code>ServiceUnavailable</Code>"));
}

/// The OCI model images of a pull-through Airlock: a tag brings the revision in, the
/// ModelPack layers and the modelcar layers read files fetched from the upstream on first
/// use, every digest holds, and the images stay whole with the upstream gone.
async fn hf_miss_is_pulled_through_by_the_model_images(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let up = upstream(Backend::Fs, dir.path(), "");
    let config = br#"{"model_type":"tiny"}"#.to_vec();
    let weights: Vec<u8> = (0..11 * MIB).map(|i| (i % 239) as u8).collect();
    let other: Vec<u8> = (0..11 * MIB).map(|i| (i % 233) as u8).collect();
    seed_model(
        &up,
        "org/tiny",
        &[
            ("config.json", &config),
            ("model.safetensors", &weights),
            ("other.bin", &other),
        ],
    );
    let base = &up.server.base;
    let store = StoreArgs::new(backend, &dir.path().join("down"));
    let down = Node::start(
        &dir.path().join("down"),
        store,
        &format!("[hf]\nupstream = \"{base}\"\nupstream_ttl = \"1s\"\n"),
        None,
    );
    // The modelcar base, where the default `[model_images] base` looks for it.
    seed_tiny(&down, "busybox", "latest", b"base layer");
    let http = http::client();
    let v2 = |path: &str| {
        down.server
            .url(&format!("/v2/huggingface.co/org/tiny/{path}"))
    };
    let json = |url: String, accept: &'static str| {
        let http = http.clone();
        async move {
            let r = http.get(url).header("accept", accept).send().await.unwrap();
            assert_eq!(r.status(), 200, "{}", r.url());
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let blob = |digest: &str| {
        let (http, url) = (http.clone(), v2(&format!("blobs/{digest}")));
        async move {
            let r = http.get(url).send().await.unwrap();
            assert_eq!(r.status(), 200, "{}", r.url());
            r.bytes().await.unwrap()
        }
    };

    // ModelPack: the weights layer is the file, fetched on its first read.
    let pack = json(v2("manifests/main-modelpack"), OCI_MANIFEST).await;
    let weights_hex = support::sha256_hex(&weights);
    assert!(stored_blobs(&down.store, &weights_hex).is_empty());
    let layer = format!("sha256:{weights_hex}");
    assert!(pack["layers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["digest"] == layer.as_str()));
    assert_eq!(blob(&layer).await, weights);
    assert_eq!(stored_blobs(&down.store, &weights_hex).len(), 1);

    // Modelcar: its layers read every file (the rest fetched now); each digest holds.
    let index = json(
        v2("manifests/main"),
        "application/vnd.oci.image.index.v1+json",
    )
    .await;
    let platform = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let car = json(v2(&format!("manifests/{platform}")), OCI_MANIFEST).await;
    let layers: Vec<String> = car["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    assert!(layers.len() >= 2, "{car}");
    drop(up);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    for digest in &layers {
        assert_eq!(
            &sha256(&blob(digest).await),
            digest,
            "with the upstream down"
        );
    }
    assert_eq!(
        stored_blobs(&down.store, &support::sha256_hex(&other)).len(),
        1
    );
}

/// The permission a request needs is checked before any upstream work: a caller the
/// downstream refuses makes it fetch nothing, in any protocol.
async fn a_refused_caller_triggers_no_upstream_fetch(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let up = upstream(Backend::Fs, dir.path(), "");
    seed_model(&up, "org/tiny", &[("config.json", b"{}")]);
    seed_wheel(&up, "demo", "1.0");
    seed_tiny(&up, "busybox", "1.36", b"layer");
    let base = &up.server.base;
    let store = StoreArgs::new(backend, &dir.path().join("down"));
    let config = format!(
        "anonymous_read = false\n\
         [[tokens]]\nname = \"images\"\nsecret = \"images-token-0123456789abcdef\"\n\
         scopes = [\"read:oci\"]\n\
         [[tokens]]\nname = \"tiny\"\nsecret = \"tiny-token-0123456789abcdef\"\n\
         scopes = [\"read:hf:org/tiny\"]\n\
         [oci]\nupstream = \"{base}\"\n\
         [pypi]\nupstream = \"{base}/simple/\"\n\
         [hf]\nupstream = \"{base}\"\n\
         [s3api]\nlisten = \"127.0.0.1:0\"\n"
    );
    let down = Node::start(&dir.path().join("down"), store, &config, None);
    let s3 = down.server.s3_endpoint();
    let http = http::following_redirects();
    let upstream_gets = || {
        up.server
            .log()
            .lines()
            .filter(|l| l.contains("method=GET") && !l.contains("path=/healthz"))
            .count()
    };
    let before = upstream_gets();
    let get = |path: &str, token: Option<&str>| {
        let mut r = http.get(down.server.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let refused = [
        ("/api/models/org/tiny/revision/main", None, 401),
        ("/org/tiny/resolve/main/config.json", None, 401),
        ("/simple/demo/", None, 401),
        ("/v2/library/busybox/manifests/1.36", None, 401),
        // A token for images only: the Hub hides the repository, PyPI refuses.
        (
            "/api/models/org/tiny/revision/main",
            Some("images-token-0123456789abcdef"),
            404,
        ),
        ("/simple/demo/", Some("images-token-0123456789abcdef"), 403),
        // The model images read with the Hub's scopes: no OCI scope reaches them, and a
        // model not here is unknown to whoever may not read it.
        (
            "/v2/huggingface.co/org/tiny/manifests/main-modelpack",
            None,
            404,
        ),
        (
            "/v2/huggingface.co/org/tiny/manifests/main-modelpack",
            Some("images-token-0123456789abcdef"),
            404,
        ),
    ];
    for (path, token, status) in refused {
        let r = get(path, token).await.unwrap();
        assert_eq!(r.status(), status, "{path} with {token:?}");
    }
    // The S3 view: anonymous, and signed by a token for another repository.
    let r = http
        .get(format!("{s3}/models/org/tiny/config.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let tiny_only = s3_client(&s3, "tiny", "tiny-token-0123456789abcdef");
    for key in ["org/other/config.json", "org/other@main/config.json"] {
        let refused = tiny_only
            .get_object()
            .bucket("models")
            .key(key)
            .send()
            .await;
        let code = refused
            .err()
            .and_then(|e| e.into_service_error().meta().code().map(str::to_string));
        assert_eq!(code.as_deref(), Some("NoSuchKey"), "{key}");
    }
    let listed = tiny_only
        .list_objects_v2()
        .bucket("models")
        .prefix("org/other/")
        .send()
        .await
        .unwrap();
    assert!(listed.contents().is_empty());
    assert_eq!(
        upstream_gets(),
        before,
        "refused requests reached the upstream"
    );
    let fetched: Vec<String> = down
        .store
        .object_keys()
        .into_iter()
        .filter(|k| k.starts_with("hf/") || k.starts_with("pypi/") || k.starts_with("oci/"))
        .collect();
    assert!(
        fetched.is_empty(),
        "stored for refused callers: {fetched:?}"
    );

    // The same requests with a token that may read are pulled through.
    for path in ["/api/models/org/tiny/revision/main", "/simple/demo/"] {
        let r = get(path, Some(ADMIN)).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    assert!(upstream_gets() > before);
    let config = tiny_only
        .get_object()
        .bucket("models")
        .key("org/tiny/config.json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        &config.body.collect().await.unwrap().into_bytes()[..],
        b"{}"
    );
}

/// The AWS SDK for Rust, path-style, signing as the token `name`.
fn s3_client(endpoint: &str, name: &str, secret: &str) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http)
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(name, secret, None, None, "test"))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

// The downstream's store is what each one exercises; the upstream stays on the filesystem.
/// A tiny HTTP/1.1 peer on loopback for what no Airlock does (list files elsewhere,
/// send a token realm elsewhere): answers every request with `answer(head)` and keeps
/// each request's head (request line and headers) to look at afterwards.
struct Peer {
    /// `http://<host>:<port>`
    base: String,
    heads: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

/// (status, extra headers, body)
type Answer = (u16, Vec<(String, String)>, Vec<u8>);

impl Peer {
    /// Listens on 127.0.0.1; `host` is how its URLs name it (`127.0.0.1` or `localhost`,
    /// two different hosts to a client).
    async fn start(host: &str, answer: impl Fn(&str) -> Answer + Send + Sync + 'static) -> Peer {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{host}:{}", listener.local_addr().unwrap().port());
        let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let answer = std::sync::Arc::new(answer);
        let seen = heads.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (answer, seen) = (answer.clone(), seen.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).to_string();
                    seen.lock().unwrap().push(head.clone());
                    let (status, headers, body) = answer(&head);
                    let mut out = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                        body.len()
                    );
                    for (k, v) in headers {
                        out.push_str(&format!("{k}: {v}\r\n"));
                    }
                    out.push_str("\r\n");
                    let _ = conn.write_all(out.as_bytes()).await;
                    if !head.starts_with("HEAD ") {
                        let _ = conn.write_all(&body).await;
                    }
                    let _ = conn.shutdown().await;
                });
            }
        });
        Peer { base, heads, task }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    /// The `Authorization` values of the requests seen.
    fn authorizations(&self) -> Vec<String> {
        self.heads()
            .iter()
            .flat_map(|h| h.lines().map(str::to_string).collect::<Vec<_>>())
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("authorization")
                    .then(|| v.trim().to_string())
            })
            .collect()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The PyPI upstream token goes to the upstream's origin only: a file its page lists on
/// another origin is fetched without it.
async fn pypi_upstream_token_stays_on_the_upstream_origin(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let file = b"an sdist hosted elsewhere".to_vec();
    let hex = sha256(&file).trim_start_matches("sha256:").to_string();
    let body = file.clone();
    let files = Peer::start("127.0.0.1", move |_| (200, vec![], body.clone())).await;
    let page = serde_json::json!({
        "meta": {"api-version": "1.1"}, "name": "demo-pkg",
        "files": [{"filename": "demo_pkg-1.0.tar.gz", "size": file.len(),
                   "url": format!("{}/packages/demo_pkg-1.0.tar.gz", files.base),
                   "hashes": {"sha256": hex}}]
    })
    .to_string();
    let index = Peer::start("127.0.0.1", move |_| {
        let json = "application/vnd.pypi.simple.v1+json".to_string();
        (
            200,
            vec![("Content-Type".into(), json)],
            page.clone().into_bytes(),
        )
    })
    .await;
    std::env::set_var("PT_PYPI_TOKEN", "pypi-upstream-secret");
    let down = downstream_of(
        backend,
        dir.path(),
        "pypi",
        &format!("{}/simple/", index.base),
        "upstream_token_env = \"PT_PYPI_TOKEN\"",
    );
    let http = http::following_redirects();
    let r = project_json(&http, &down, "demo-pkg").await;
    assert_eq!(r.status(), 200, "{}", down.server.log());
    let page: serde_json::Value = r.json().await.unwrap();
    let href = page["files"][0]["url"].as_str().unwrap();
    assert!(
        !href.contains(&files.base),
        "only Airlock's own URLs: {href}"
    );
    let url = reqwest::Url::parse(&down.server.url("/simple/demo-pkg/"))
        .unwrap()
        .join(href)
        .unwrap();
    let got = http.get(url).send().await.unwrap();
    assert_eq!(got.status(), 200, "{}", down.server.log());
    assert_eq!(got.bytes().await.unwrap(), file);
    assert_eq!(
        index.authorizations(),
        vec!["Bearer pypi-upstream-secret".to_string()],
        "the upstream itself gets the token"
    );
    assert_eq!(files.heads().len(), 1);
    assert_eq!(
        files.authorizations(),
        Vec::<String>::new(),
        "another origin never gets the upstream token"
    );
}

/// The OCI upstream credential goes to a token realm on the upstream's host, or one the
/// operator listed; a realm elsewhere is asked anonymously.
async fn oci_upstream_credential_goes_to_no_foreign_realm(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let realm = Peer::start("localhost", |_| {
        (200, vec![], br#"{"token":"realm-token"}"#.to_vec())
    })
    .await;
    let challenge = format!(r#"Bearer realm="{}/token",service="up""#, realm.base);
    let registry = Peer::start("127.0.0.1", move |head| {
        if head.contains("Bearer realm-token") {
            (
                404,
                vec![],
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#.to_vec(),
            )
        } else {
            (
                401,
                vec![("WWW-Authenticate".into(), challenge.clone())],
                vec![],
            )
        }
    })
    .await;
    std::env::set_var("PT_OCI_TOKEN", "oci-upstream-secret");
    let http = http::following_redirects();
    let path = manifest_path("absent", "1.0");
    let down = downstream_of(
        backend,
        &dir.path().join("foreign"),
        "oci",
        &registry.base,
        "upstream_token_env = \"PT_OCI_TOKEN\"",
    );
    let r = http.get(down.server.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), 404, "{}", down.server.log());
    assert_eq!(realm.heads().len(), 1, "a token was asked for");
    assert_eq!(
        realm.authorizations(),
        Vec::<String>::new(),
        "a realm on another host gets no credential"
    );
    // Listed by the operator: that realm is trusted with it.
    let listed = downstream_of(
        backend,
        &dir.path().join("listed"),
        "oci",
        &registry.base,
        &format!(
            "upstream_token_env = \"PT_OCI_TOKEN\"\nupstream_token_realms = [\"{}/token\"]",
            realm.base
        ),
    );
    let r = http.get(listed.server.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), 404, "{}", listed.server.log());
    assert_eq!(realm.authorizations().len(), 1);
    assert!(realm.authorizations()[0].starts_with("Basic "));
}

/// `twine upload` of `dist` to `node`'s default index.
fn twine_upload(node: &Node, dist: &support::wheels::Dist) {
    let path = dist.write_to(&node.dir);
    let out = support::process::venv_tool("twine")
        .args(["upload", "--non-interactive", "--disable-progress-bar"])
        .arg("--repository-url")
        .arg(node.server.url("/legacy/"))
        .args(["-u", "__token__", "-p", ADMIN])
        .arg(path)
        .output()
        .unwrap();
    support::process::output_ok(out, "twine upload");
}

/// The filenames `node` lists for `project`.
fn listed(node: &Node, project: &str) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = project_json(&http::following_redirects(), node, project).await;
        assert_eq!(r.status(), 200, "{}", node.server.log());
        let page: serde_json::Value = r.json().await.unwrap();
        let mut names: Vec<String> = page["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["filename"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    })
}

/// Dependency confusion: a project with local files never gets the upstream's files
/// (a higher version there would win the install), unless the operator lists it.
fn pypi_local_projects_are_never_merged_with_the_upstream(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let up = upstream(Backend::Fs, dir.path(), "");
    let attacker = seed_wheel(&up, "acme-utils", "99.0");
    let earlier = seed_wheel(&up, "pulled-first", "5.0");
    let down = downstream(backend, dir.path(), &up, "");

    let ours = wheel("acme-utils", "1.0", &[], None);
    twine_upload(&down, &ours);
    assert_eq!(listed(&down, "acme-utils"), vec![ours.filename.clone()]);
    assert_eq!(
        up.gets("/simple/acme-utils/"),
        0,
        "a local name is not even looked up"
    );
    let venv = PathBuf::from(std::env::var("AIRLOCK_TEST_VENV").unwrap());
    let got = dir.path().join("got");
    let out = std::process::Command::new(venv.join("bin/pip"))
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .args(["download", "--no-deps", "--no-cache-dir", "-d"])
        .arg(&got)
        .args(["--index-url", &down.server.url("/simple/"), "acme-utils"])
        .output()
        .unwrap();
    support::process::output_ok(out, "pip download");
    assert!(got.join(&ours.filename).exists(), "pip took the local 1.0");
    assert!(!got.join(&attacker.filename).exists());

    // Pulled through first, then uploaded here: from then on only the local files.
    assert_eq!(
        listed(&down, "pulled-first"),
        vec![earlier.filename.clone()]
    );
    let local = wheel("pulled-first", "1.0", &[], None);
    twine_upload(&down, &local);
    assert_eq!(listed(&down, "pulled-first"), vec![local.filename.clone()]);

    // The operator says this project may have both.
    let merging = downstream_of(
        backend,
        &dir.path().join("merging"),
        "pypi",
        &up.server.url("/simple/"),
        "upstream_merge = [\"Acme_Utils\"]",
    );
    twine_upload(&merging, &ours);
    let mut both = vec![attacker.filename.clone(), ours.filename.clone()];
    both.sort();
    assert_eq!(listed(&merging, "acme-utils"), both);
}

/// A tag pushed here is never moved by pull-through, whether the upstream has the same
/// name from the start or it was pulled through before the push.
async fn a_locally_pushed_tag_is_never_moved_by_pull_through(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let up = upstream(Backend::Fs, dir.path(), "");
    let (upstream_digest, _) = seed_tiny(&up, "shared", "1.0", b"the upstream's 1.0");
    let (pulled, _) = seed_tiny(&up, "later", "1.0", b"the upstream's later 1.0");
    let down = downstream(backend, dir.path(), &up, "");
    let http = http::following_redirects();
    let ours = push_tiny(
        &http,
        &down,
        "docker.io/library/shared",
        "1.0",
        b"our own 1.0",
    )
    .await;
    assert_ne!(ours, upstream_digest);
    // Pulled through first, pushed here afterwards.
    let r = get_manifest(&http, &down, "later", "1.0").await;
    assert_eq!(r.headers()["docker-content-digest"], pulled.as_str());
    let ours_later = push_tiny(
        &http,
        &down,
        "docker.io/library/later",
        "1.0",
        b"our own later",
    )
    .await;
    for round in 0..2 {
        if round == 1 {
            // Past `upstream_ttl` (1s): pull-through would revalidate an upstream tag.
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        for (name, want) in [("shared", &ours), ("later", &ours_later)] {
            let r = get_manifest(&http, &down, name, "1.0").await;
            assert_eq!(r.status(), 200);
            assert_eq!(
                r.headers()["docker-content-digest"],
                want.as_str(),
                "{name}:1.0, round {round}"
            );
        }
    }
    assert_eq!(
        up.gets(&manifest_path("shared", "1.0")),
        0,
        "a local tag is not even looked up"
    );
}

/// A client that joins another repository's fill in flight is linked only when the
/// upstream says its own repository holds the blob.
async fn a_joined_fill_links_only_what_the_upstream_confirmed(backend: Backend) {
    const SIZE: usize = 48 * MIB;
    let dir = tempfile::tempdir().unwrap();
    let up = upstream(Backend::Fs, dir.path(), "");
    let layer = seed_big(&up, SIZE);
    let down = downstream(backend, dir.path(), &up, "");
    let http = http::following_redirects();
    // The first client takes one chunk and stops reading: the fill stays in flight.
    let first = http
        .get(down.server.url(&blob_path("big", &layer)))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let mut body = first.bytes_stream();
    body.next().await.unwrap().unwrap();
    // Another repository, which the upstream does not say holds that blob, joins it.
    let url = down.server.url(&blob_path("elsewhere", &layer));
    let joiner = tokio::spawn({
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut n = 0;
    while let Some(chunk) = body.next().await {
        n += chunk.unwrap().len();
    }
    assert!(n > 0);
    assert_eq!(joiner.await.unwrap(), 404, "{}", down.server.log());
    let again = http
        .get(down.server.url(&blob_path("elsewhere", &layer)))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404, "not linked into `elsewhere`");
}

/// What an upstream Hub says of a repository is kept: private stays private, gated stays
/// gated, and a file name no upload could have (`../../escape.txt`) is left out.
async fn hf_upstream_privacy_and_paths_are_kept(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let hub = Peer::start("127.0.0.1", move |head| {
        let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
        // Every file, wherever a client's URL normalization lands it.
        if !path.starts_with("/api/") {
            return (200, vec![], b"hi\n".to_vec());
        }
        let Some(rest) = path.strip_prefix("/api/models/org/") else {
            return (404, vec![], vec![]);
        };
        let name = rest.split('/').next().unwrap_or("");
        let info = serde_json::json!({
            "id": format!("org/{name}"), "sha": sha,
            "private": name == "secret",
            "gated": if name == "gated" { serde_json::json!("manual") } else { serde_json::json!(false) },
            "siblings": [{"rfilename": "ok.txt"}, {"rfilename": "../../escape.txt"},
                         {"rfilename": "a//b.txt"}, {"rfilename": "/abs.txt"}, {"rfilename": "back\\slash.txt"}]
        });
        let json = ("Content-Type".to_string(), "application/json".to_string());
        (200, vec![json], info.to_string().into_bytes())
    })
    .await;
    let down = downstream_of(backend, dir.path(), "hf", &hub.base, "");
    let http = http::following_redirects();
    let get = |path: &str| http.get(down.server.url(path)).send();

    let r = get("/api/models/org/open").await.unwrap();
    assert_eq!(r.status(), 200, "{}", down.server.log());
    let info: serde_json::Value = r.json().await.unwrap();
    let names: Vec<&str> = info["siblings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rfilename"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["ok.txt"], "only valid repository paths");
    assert_eq!(
        get("/org/open/resolve/main/ok.txt").await.unwrap().status(),
        200
    );

    let r = get("/api/models/org/secret").await.unwrap();
    assert!(
        matches!(r.status().as_u16(), 401 | 404),
        "private upstream, private here: {}",
        r.status()
    );
    let r = get("/org/secret/resolve/main/ok.txt").await.unwrap();
    assert!(matches!(r.status().as_u16(), 401 | 404), "{}", r.status());

    let r = get("/org/gated/resolve/main/ok.txt").await.unwrap();
    assert!(
        matches!(r.status().as_u16(), 401 | 403),
        "gated upstream, gated here: {}",
        r.status()
    );
    let info: serde_json::Value = get("/api/models/org/gated")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(info["gated"], serde_json::json!(false), "{info}");
}

on_both_stores!(
    async:
    hf_upstream_privacy_and_paths_are_kept,
    a_locally_pushed_tag_is_never_moved_by_pull_through,
    a_joined_fill_links_only_what_the_upstream_confirmed,
    pypi_upstream_token_stays_on_the_upstream_origin,
    oci_upstream_credential_goes_to_no_foreign_realm,
    oci_miss_is_pulled_through_then_served_while_the_upstream_is_down,
    oci_token_flow_against_an_upstream_without_anonymous_read,
    a_tag_moved_upstream_is_seen_after_the_ttl,
    an_upstream_stopped_mid_transfer_leaves_nothing_partial,
    pypi_miss_is_pulled_through_then_served_while_the_upstream_is_down,
    hf_miss_is_pulled_through_with_upstream_ids_then_served_while_the_upstream_is_down,
    hf_miss_is_pulled_through_by_the_s3_view,
    hf_miss_is_pulled_through_by_the_model_images,
    a_refused_caller_triggers_no_upstream_fetch,
);

mod pip_installs_through_the_pull_through_cache {
    #[test]
    #[ignore = "needs pip: `bash tests/run-all.sh` sets it up"]
    fn fs() {
        super::pip_installs_through_the_pull_through_cache(super::Backend::Fs);
    }

    #[test]
    #[ignore = "needs pip and Garage: `bash tests/run-all.sh` sets them up"]
    fn s3() {
        super::pip_installs_through_the_pull_through_cache(super::Backend::S3);
    }
}

mod pypi_local_projects_are_never_merged_with_the_upstream {
    #[test]
    #[ignore = "needs twine and pip: `bash tests/run-all.sh` sets them up"]
    fn fs() {
        super::pypi_local_projects_are_never_merged_with_the_upstream(super::Backend::Fs);
    }

    #[test]
    #[ignore = "needs twine, pip and Garage: `bash tests/run-all.sh` sets them up"]
    fn s3() {
        super::pypi_local_projects_are_never_merged_with_the_upstream(super::Backend::S3);
    }
}
