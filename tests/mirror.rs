//! `airlock mirror` against a second Airlock on loopback as the upstream, seeded with
//! the import commands: a Hugging Face repo, wheels and an sdist, a two-platform image
//! index with referrers. Requests reach the upstream through a small TCP proxy in this
//! file that logs every request path and can answer 503 or stall a request, so retries,
//! interruptions and "nothing fetched twice" are observed from the upstream's side.

mod support;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::airlock::Airlock;
use support::backend::{Backend, StoreArgs};
use support::http;
use support::process::run_ok;
use support::pullthrough::{seed_model, Node};
use support::sha256;
use support::wheels;
use support::ADMIN;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

// ---------------------------------------------------------------- the proxy

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Action {
    Forward,
    Fail503,
    /// Hold the request unanswered (the mirror is killed meanwhile).
    Stall,
    /// Forward, but flip the last byte of the response body.
    Corrupt,
}

type Policy = Box<dyn FnMut(&str) -> Action + Send>;

/// A loopback HTTP proxy in front of the upstream: one request per connection (it adds
/// `Connection: close`), so it sees and logs every request path.
struct Proxy {
    base: String,
    log: Arc<Mutex<Vec<(String, Action)>>>,
    policy: Arc<Mutex<Policy>>,
}

impl Proxy {
    fn start(upstream: &str) -> Proxy {
        let target = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let policy: Arc<Mutex<Policy>> = Arc::new(Mutex::new(Box::new(|_| Action::Forward)));
        let (l, p) = (log.clone(), policy.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (l, p, target) = (l.clone(), p.clone(), target.clone());
                std::thread::spawn(move || serve_one(client, &target, &l, &p));
            }
        });
        Proxy { base, log, policy }
    }

    fn set(&self, policy: impl FnMut(&str) -> Action + Send + 'static) {
        *self.policy.lock().unwrap() = Box::new(policy);
    }

    fn take_log(&self) -> Vec<(String, Action)> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

fn serve_one(
    mut client: TcpStream,
    target: &str,
    log: &Mutex<Vec<(String, Action)>>,
    policy: &Mutex<Policy>,
) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let path = text.split_whitespace().nth(1).unwrap_or("").to_string();
    let action = (policy.lock().unwrap())(&path);
    log.lock().unwrap().push((path, action));
    match action {
        Action::Fail503 => {
            let _ = client.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
        Action::Stall => std::thread::sleep(Duration::from_secs(120)),
        Action::Forward | Action::Corrupt => {
            let mut lines: Vec<&str> = text.trim_end().split("\r\n").collect();
            lines.retain(|l| !l.to_ascii_lowercase().starts_with("connection:"));
            let head = format!("{}\r\nconnection: close\r\n\r\n", lines.join("\r\n"));
            let Ok(mut upstream) = TcpStream::connect(target) else {
                return;
            };
            upstream.write_all(head.as_bytes()).unwrap();
            if action == Action::Corrupt {
                let mut response = Vec::new();
                let _ = upstream.read_to_end(&mut response);
                if let Some(last) = response.last_mut() {
                    *last ^= 0xff;
                }
                let _ = client.write_all(&response);
            } else {
                let _ = std::io::copy(&mut upstream, &mut client);
            }
        }
    }
}

/// Requests that move file bodies: registry blobs, Hub files, distribution files.
fn downloads(log: &[(String, Action)]) -> Vec<String> {
    log.iter()
        .filter(|(p, _)| p.contains("/blobs/") || p.contains("/resolve/") || p.contains("/files/"))
        .map(|(p, _)| p.clone())
        .collect()
}

// ---------------------------------------------------------------- the upstream

struct Upstream {
    node: Node,
    _dir: tempfile::TempDir,
    /// The pinned commit of `org/tiny`.
    commit: String,
    demo_1_0: wheels::Dist,
    other_1_0: wheels::Dist,
    image: ImageDigests,
}

struct ImageDigests {
    index: String,
    amd64: String,
    arm64: String,
    amd64_layer: String,
    sbom_of_amd64: String,
    sbom_of_arm64: String,
}
/// Two platforms, each with a config and a layer, an index over them, and an SBOM-like
/// artifact referring to each platform's manifest.
fn write_layout(layout: &Path) -> ImageDigests {
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let d = sha256(data);
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), data).unwrap();
        (d, data.len())
    };
    let platform_manifest = |arch: &str| {
        let config = format!(
            r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}}}}"#
        );
        let (cd, cs) = put(config.as_bytes());
        let (ld, ls) = put(format!("layer for {arch} {}", "x".repeat(4096)).as_bytes());
        let m = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ls}]
        }))
        .unwrap();
        let (md, ms) = put(&m);
        (md, ms, ld)
    };
    let (amd64, amd64_size, amd64_layer) = platform_manifest("amd64");
    let (arm64, arm64_size, _) = platform_manifest("arm64");
    let index = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": amd64, "size": amd64_size, "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": OCI_MANIFEST, "digest": arm64, "size": arm64_size, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}
        ]
    }))
    .unwrap();
    let (index_digest, index_size) = put(&index);
    let (empty, _) = put(b"{}");
    let sbom = |subject: &str, size: usize| {
        let (ld, ls) = put(format!("sbom of {subject}").as_bytes());
        let m = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.sbom+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [{"mediaType": "application/json", "digest": ld, "size": ls}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": size}
        }))
        .unwrap();
        put(&m)
    };
    let (sbom_of_amd64, s1) = sbom(&amd64, amd64_size);
    let (sbom_of_arm64, s2) = sbom(&arm64, arm64_size);
    let layout_index = json!({
        "schemaVersion": 2,
        "manifests": [
            {"mediaType": OCI_INDEX, "digest": index_digest, "size": index_size,
             "annotations": {"org.opencontainers.image.ref.name": "v1"}},
            {"mediaType": OCI_MANIFEST, "digest": sbom_of_amd64, "size": s1},
            {"mediaType": OCI_MANIFEST, "digest": sbom_of_arm64, "size": s2}
        ]
    });
    std::fs::write(layout.join("index.json"), layout_index.to_string()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    ImageDigests {
        index: index_digest,
        amd64,
        arm64,
        amd64_layer,
        sbom_of_amd64,
        sbom_of_arm64,
    }
}

fn renamed(mut dist: wheels::Dist, filename: &str) -> wheels::Dist {
    dist.filename = filename.to_string();
    dist
}

/// The upstream Airlock (filesystem store) with `config`, seeded by import.
fn start_upstream(config: &str) -> Upstream {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(
        dir.path(),
        StoreArgs::new(Backend::Fs, dir.path()),
        config,
        None,
    );
    // A small model: JSON (a plain git file), LFS files by the Hub's default attributes.
    seed_model(
        &node,
        "org/tiny",
        &[
            ("config.json", br#"{"model_type":"bert"}"#),
            ("README.md", b"# tiny\n"),
            ("model.safetensors", &[7u8; 300_000]),
            ("sub/extra.bin", &[8u8; 1000]),
            ("sub/skip.bin", &[9u8; 1000]),
        ],
    );

    let wheelhouse = dir.path().join("wheelhouse");
    std::fs::create_dir_all(&wheelhouse).unwrap();
    let demo_1_0 = wheels::wheel("demo", "1.0", &[], None);
    let other_1_0 = wheels::wheel("other", "1.0", &[], None);
    let dists = [
        wheels::wheel("demo", "1.0", &[], None),
        wheels::wheel("other", "1.0", &[], None),
        renamed(
            wheels::wheel("demo", "1.5", &[], None),
            "demo-1.5-cp311-cp311-manylinux2014_x86_64.whl",
        ),
        renamed(
            wheels::wheel("demo", "2.0", &[], Some(">=3.8")),
            "demo-2.0-cp311-cp311-manylinux2014_x86_64.whl",
        ),
        renamed(
            wheels::wheel("demo", "2.0", &["x"], None),
            "demo-2.0-cp312-cp312-manylinux2014_x86_64.whl",
        ),
        renamed(
            wheels::wheel("demo", "2.0", &["y"], None),
            "demo-2.0-cp311-cp311-win_amd64.whl",
        ),
        wheels::wheel("demo", "2.0", &["z"], None),
        wheels::sdist("demo", "2.0", &[]),
        renamed(
            wheels::wheel("demo", "2.1rc1", &[], None),
            "demo-2.1rc1-cp311-cp311-manylinux2014_x86_64.whl",
        ),
    ];
    for d in &dists {
        d.write_to(&wheelhouse);
    }
    node.import(&["pypi", "import", wheelhouse.to_str().unwrap()]);

    let layout = dir.path().join("layout");
    let image = write_layout(&layout);
    node.import(&[
        "oci",
        "import",
        "--repo",
        "docker.io/team/app",
        layout.to_str().unwrap(),
    ]);

    let bearer = format!("Bearer {ADMIN}");
    let info = get_json(
        &node.server.url("/api/models/org/tiny/revision/main"),
        &[("authorization", &bearer)],
    );
    Upstream {
        commit: info["sha"].as_str().unwrap().to_string(),
        node,
        _dir: dir,
        demo_1_0,
        other_1_0,
        image,
    }
}

// ---------------------------------------------------------------- helpers

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
    rt().block_on(async {
        let mut req = http::following_redirects().get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, ct, r.bytes().await.unwrap().to_vec())
    })
}

fn get_json(url: &str, headers: &[(&str, &str)]) -> Value {
    let (status, _, body) = get(url, headers);
    assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

fn write_spec(dir: &Path, upstream: &str, up: &Upstream, requirements: &str) -> PathBuf {
    std::fs::write(dir.join("requirements.txt"), requirements).unwrap();
    let spec = format!(
        r#"
[upstreams]
hf = "{upstream}"
pypi = "{upstream}/simple"
[upstreams.oci]
"docker.io" = "{upstream}"

[[hf]]
repo = "org/tiny"
revisions = ["main", "{commit}"]
allow = ["*.json", "*.safetensors", "sub/"]
ignore = ["sub/skip*"]

[[pypi]]
requirements = "requirements.txt"

[[pypi]]
projects = ["demo>=2"]
platforms = ["manylinux*_x86_64"]
python = ["3.11"]
formats = ["wheel"]

[[oci]]
image = "docker.io/team/app:v1"
platforms = ["linux/amd64"]
"#,
        commit = up.commit
    );
    let path = dir.join("mirror.toml");
    std::fs::write(&path, spec).unwrap();
    path
}

fn good_requirements(up: &Upstream) -> String {
    format!(
        "# pinned, with hashes\ndemo==1.0 \\\n    --hash=sha256:{}\nother==1.0 --hash=sha256:{}\n",
        up.demo_1_0.sha256(),
        up.other_1_0.sha256()
    )
}

fn mirror(store: &StoreArgs, dir: &Path, spec: &Path, extra: &[&str]) -> Output {
    let out = store
        .cli(dir)
        .args(["mirror", "--spec", spec.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// What the served mirror must answer, compared with the upstream.
fn check_mirrored(up: &Upstream, served: &Airlock) {
    // Hugging Face: the same commit id and, for the chosen files, the same oids.
    let info = get_json(&served.url("/api/models/org/tiny/revision/main"), &[]);
    assert_eq!(info["sha"], up.commit.as_str());
    let pinned = get_json(
        &served.url(&format!("/api/models/org/tiny/revision/{}", up.commit)),
        &[],
    );
    assert_eq!(pinned["sha"], up.commit.as_str());
    let tree = |base: &Airlock| {
        let v = get_json(
            &base.url("/api/models/org/tiny/tree/main?recursive=true"),
            &[],
        );
        v.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "file")
            .map(|e| (e["path"].as_str().unwrap().to_string(), e.clone()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let (upstream_tree, mirrored_tree) = (tree(&up.node.server), tree(served));
    assert_eq!(
        mirrored_tree.keys().collect::<Vec<_>>(),
        ["config.json", "model.safetensors", "sub/extra.bin"],
        "allow/ignore as snapshot_download applies them"
    );
    for (path, entry) in &mirrored_tree {
        assert_eq!(
            entry, &upstream_tree[path],
            "{path}: same oid, size and LFS sha256"
        );
    }
    let (status, _, body) = get(&served.url("/org/tiny/resolve/main/model.safetensors"), &[]);
    assert_eq!((status, body.len()), (200, 300_000));

    // Python: the pinned wheel with its hash; the specifier/platform/python/format pick.
    let accept = [("accept", "application/vnd.pypi.simple.v1+json")];
    let page = |base: &Airlock, p: &str| get_json(&base.url(&format!("/simple/{p}/")), &accept);
    let names = |v: &Value| {
        let mut n: Vec<String> = v["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["filename"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    };
    let mirrored = page(served, "demo");
    assert_eq!(
        names(&mirrored),
        [
            "demo-1.0-py3-none-any.whl",
            "demo-2.0-cp311-cp311-manylinux2014_x86_64.whl"
        ]
    );
    let upstream_page = page(&up.node.server, "demo");
    for f in mirrored["files"].as_array().unwrap() {
        let u = upstream_page["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["filename"] == f["filename"])
            .unwrap();
        for key in [
            "hashes",
            "upload-time",
            "core-metadata",
            "requires-python",
            "yanked",
        ] {
            assert_eq!(
                f[key], u[key],
                "{key} of {} kept from upstream",
                f["filename"]
            );
        }
    }
    assert_eq!(
        get(&served.url("/simple/other/"), &accept).0,
        404,
        "the wrong-hash file was refused"
    );

    // OCI: the index byte for byte, the chosen platform and its referrer only.
    let accept_index = [("accept", OCI_INDEX)];
    let (_, ct, index) = get(
        &served.url("/v2/docker.io/team/app/manifests/v1"),
        &accept_index,
    );
    let (_, _, upstream_index) = get(
        &up.node.server.url("/v2/docker.io/team/app/manifests/v1"),
        &accept_index,
    );
    assert_eq!(index, upstream_index);
    assert_eq!(ct, OCI_INDEX);
    assert_eq!(sha256(&index), up.image.index);
    let manifest = |d: &str| {
        get(
            &served.url(&format!("/v2/docker.io/team/app/manifests/{d}")),
            &[],
        )
        .0
    };
    assert_eq!(manifest(&up.image.amd64), 200);
    assert_eq!(manifest(&up.image.arm64), 404, "platform not chosen");
    assert_eq!(manifest(&up.image.sbom_of_amd64), 200);
    assert_eq!(
        manifest(&up.image.sbom_of_arm64),
        404,
        "referrer of a platform not chosen"
    );
    let referrers = get_json(
        &served.url(&format!(
            "/v2/docker.io/team/app/referrers/{}",
            up.image.amd64
        )),
        &[],
    );
    assert_eq!(
        referrers["manifests"][0]["digest"],
        up.image.sbom_of_amd64.as_str()
    );
    let (status, _, layer) = get(
        &served.url(&format!(
            "/v2/docker.io/team/app/blobs/{}",
            up.image.amd64_layer
        )),
        &[],
    );
    assert_eq!(
        (status, sha256(&layer)),
        (200, up.image.amd64_layer.clone())
    );
}

// ---------------------------------------------------------------- tests

/// Everything once through a proxy whose first answer is a 503 (the retry succeeds),
/// with one requirement whose hash is wrong (that file refused and reported, exit 1),
/// then the mirror served and compared with the upstream.
fn mirror_everything(backend: Backend) {
    let up = start_upstream("");
    let proxy = Proxy::start(&up.node.server.base);
    let mut first = true;
    proxy.set(move |_| {
        if std::mem::take(&mut first) {
            Action::Fail503
        } else {
            Action::Forward
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let store = StoreArgs::new(backend, dir.path());
    let wrong = "ab".repeat(32);
    let requirements = good_requirements(&up).replace(&up.other_1_0.sha256(), &wrong);
    let spec = write_spec(dir.path(), &proxy.base, &up, &requirements);

    let dry = mirror(&store, dir.path(), &spec, &["--dry-run"]);
    assert!(
        stderr(&dry).contains("fetch    hf org/tiny@"),
        "dry run lists what it would fetch"
    );
    let log = proxy.take_log();
    assert_eq!(log[0].1, Action::Fail503);
    assert!(
        downloads(&log).is_empty(),
        "a dry run downloads no file: {log:?}"
    );

    let out = mirror(&store, dir.path(), &spec, &["--concurrency", "3"]);
    assert!(!out.status.success(), "a refused file fails the run");
    let text = stderr(&out);
    assert!(
        text.contains("FAILED   pypi other-1.0-py3-none-any.whl: refused"),
        "{text}"
    );
    assert!(text.contains("1 failed"), "{text}");
    let served = store.serve(dir.path(), &[]);
    check_mirrored(&up, &served);
    drop(served);

    // With the right hash only the refused file is fetched; everything else is skipped.
    std::fs::write(dir.path().join("requirements.txt"), good_requirements(&up)).unwrap();
    proxy.take_log();
    let out = mirror(&store, dir.path(), &spec, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let fetched = downloads(&proxy.take_log());
    assert!(
        fetched.len() == 2
            && fetched[0].ends_with("/other-1.0-py3-none-any.whl")
            && fetched[1].ends_with("/other-1.0-py3-none-any.whl.metadata"),
        "the file and its upstream .metadata, nothing else: {fetched:?}"
    );
    assert!(stderr(&out).contains("0 failed"));
}

#[test]
fn mirror_everything_from_another_airlock() {
    mirror_everything(Backend::Fs);
}

#[test]
#[ignore = "needs Garage: bash tests/run-all.sh"]
fn mirror_everything_into_s3() {
    mirror_everything(Backend::S3);
}

/// A mirror killed while a layer download hangs, then run again: only what was missing
/// is fetched; a third run fetches nothing at all.
#[test]
fn an_interrupted_mirror_resumes_without_fetching_twice() {
    let up = start_upstream("");
    let proxy = Proxy::start(&up.node.server.base);
    let layer = up.image.amd64_layer.clone();
    proxy.set(move |path| {
        if path.contains(&layer) {
            Action::Stall
        } else {
            Action::Forward
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let store = StoreArgs::new(Backend::Fs, dir.path());
    let spec = write_spec(dir.path(), &proxy.base, &up, &good_requirements(&up));

    let mut child = store
        .cli(dir.path())
        .args(["mirror", "--spec", spec.to_str().unwrap()])
        // SIGKILL gives the mirror no chance to remove its scratch directory: keep it
        // inside the test's own, which is removed.
        .env("TMPDIR", dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !proxy
        .log
        .lock()
        .unwrap()
        .iter()
        .any(|(_, a)| *a == Action::Stall)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the layer was never requested"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Kill only once the mirror has nothing left to do but wait for the stalled layer:
    // a request still in flight at the kill was never stored, and fetching it again is
    // right. Quiet for 1.5 s means every other download has arrived and been stored.
    let mut seen = proxy.log.lock().unwrap().len();
    let mut quiet_since = std::time::Instant::now();
    while quiet_since.elapsed() < Duration::from_millis(1500) {
        assert!(
            std::time::Instant::now() < deadline,
            "the mirror never settled on the stalled layer"
        );
        std::thread::sleep(Duration::from_millis(100));
        let now = proxy.log.lock().unwrap().len();
        if now != seen {
            (seen, quiet_since) = (now, std::time::Instant::now());
        }
    }
    child.kill().unwrap(); // SIGKILL: no chance to tidy up
    child.wait().unwrap();
    let first = downloads(&proxy.take_log());
    assert!(first.iter().any(|p| p.contains("/resolve/")), "{first:?}");

    proxy.set(|_| Action::Forward);
    let out = mirror(&store, dir.path(), &spec, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let second = downloads(&proxy.take_log());
    assert!(
        second.iter().any(|p| p.contains(&up.image.amd64_layer)),
        "the interrupted layer is fetched: {second:?}"
    );
    let fetched_twice: Vec<&String> = second
        .iter()
        .filter(|p| first.contains(p) && !p.contains(&up.image.amd64_layer))
        .collect();
    assert!(fetched_twice.is_empty(), "fetched again: {fetched_twice:?}");

    let out = mirror(&store, dir.path(), &spec, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let third = downloads(&proxy.take_log());
    assert!(
        third.is_empty(),
        "a complete mirror fetches nothing: {third:?}"
    );
    assert!(stderr(&out).contains(" 0 new,"), "{}", stderr(&out));
}

/// Bodies that do not match the upstream's digest are refused and nothing of them, nor
/// of what needs them (the commit, the manifest), becomes visible.
#[test]
fn corrupted_bodies_are_refused() {
    let up = start_upstream("");
    let proxy = Proxy::start(&up.node.server.base);
    let layer = up.image.amd64_layer.clone();
    proxy.set(move |path| {
        if path.contains(&layer) || path.ends_with("/model.safetensors") {
            Action::Corrupt
        } else {
            Action::Forward
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let store = StoreArgs::new(Backend::Fs, dir.path());
    let spec = write_spec(dir.path(), &proxy.base, &up, &good_requirements(&up));
    let out = mirror(&store, dir.path(), &spec, &[]);
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(
        text.contains("model.safetensors: ") && text.contains("digest mismatch"),
        "{text}"
    );
    assert!(
        text.contains(&format!("blob {}: ", up.image.amd64_layer)),
        "{text}"
    );
    let served = store.serve(dir.path(), &[]);
    let status = |p: &str| get(&served.url(p), &[]).0;
    assert_eq!(
        status("/api/models/org/tiny/revision/main"),
        404,
        "no commit without all its files"
    );
    assert_eq!(
        status(&format!(
            "/v2/docker.io/team/app/blobs/{}",
            up.image.amd64_layer
        )),
        404
    );
    assert_eq!(status("/v2/docker.io/team/app/manifests/v1"), 404);
    assert_eq!(status("/simple/demo/"), 200, "what was sound is stored");
}

/// An upstream that lets nobody read anonymously: the registry's token flow with Basic
/// credentials from the environment, and the Hub with HF_TOKEN.
#[test]
fn registry_token_flow_and_hub_token() {
    let up = start_upstream("anonymous_read = false\n");
    let dir = tempfile::tempdir().unwrap();
    let store = StoreArgs::new(Backend::Fs, dir.path());
    let spec = dir.path().join("mirror.toml");
    std::fs::write(
        &spec,
        format!(
            "[upstreams]\nhf = \"{0}\"\n[upstreams.oci]\n\"docker.io\" = \"{0}\"\n\
             [[hf]]\nrepo = \"org/tiny\"\nallow = [\"*.json\"]\n\
             [[oci]]\nimage = \"docker.io/team/app:v1\"\nplatforms = [\"linux/arm64\"]\nreferrers = false\n",
            up.node.server.base
        ),
    )
    .unwrap();
    let anonymous = mirror(&store, dir.path(), &spec, &[]);
    assert!(!anonymous.status.success());
    assert!(stderr(&anonymous).contains("401"), "{}", stderr(&anonymous));

    let out = store
        .cli(dir.path())
        .args(["mirror", "--spec", spec.to_str().unwrap()])
        .env("AIRLOCK_MIRROR_OCI_AUTH_DOCKER_IO", format!("ci:{ADMIN}"))
        .env("HF_TOKEN", ADMIN)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let token_requests = up.node.server.log().matches("path=/token").count();
    assert!(
        token_requests >= 1,
        "the registry's token endpoint was used"
    );
    let served = store.serve(dir.path(), &[]);
    let (status, _, _) = get(
        &served.url(&format!(
            "/v2/docker.io/team/app/manifests/{}",
            up.image.arm64
        )),
        &[],
    );
    assert_eq!(status, 200);
    assert_eq!(
        get_json(&served.url("/api/models/org/tiny/revision/main"), &[])["sha"],
        up.commit.as_str()
    );
}

/// pip and huggingface_hub read what was mirrored, from the mirror.
#[test]
#[ignore = "needs pip, huggingface_hub and skopeo: `bash tests/run-all.sh` sets them up"]
fn real_clients_read_the_mirror() {
    let venv = PathBuf::from(
        std::env::var("AIRLOCK_TEST_VENV").expect("AIRLOCK_TEST_VENV: run bash tests/run-all.sh"),
    );
    let up = start_upstream("");
    let dir = tempfile::tempdir().unwrap();
    let store = StoreArgs::new(Backend::Fs, dir.path());
    let spec = write_spec(
        dir.path(),
        &up.node.server.base,
        &up,
        &good_requirements(&up),
    );
    assert!(mirror(&store, dir.path(), &spec, &[]).status.success());
    let served = store.serve(dir.path(), &[]);
    let dest = dir.path().join("dl");
    run_ok(
        Command::new(venv.join("bin/pip"))
            .args([
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "--no-cache-dir",
                "--require-hashes",
                "-d",
            ])
            .arg(&dest)
            .args(["--index-url", &served.url("/simple/"), "-r"])
            .arg(dir.path().join("requirements.txt")),
    );
    assert!(dest.join("demo-1.0-py3-none-any.whl").is_file());
    let script = format!(
        "from huggingface_hub import snapshot_download\n\
         p = snapshot_download('org/tiny', revision='{}', cache_dir='{}')\n\
         import os; print(sorted(os.listdir(p)))",
        up.commit,
        dir.path().join("hf").display()
    );
    let out = run_ok(
        Command::new(venv.join("bin/python"))
            .env("HF_ENDPOINT", &served.base)
            .env("HF_HUB_DISABLE_TELEMETRY", "1")
            .env_remove("HF_TOKEN")
            .args(["-c", &script]),
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("'config.json', 'model.safetensors', 'sub'"),
        "{printed}"
    );
    // skopeo pulls the mirrored platform of the index; the other was left upstream.
    let host = served.base.trim_start_matches("http://");
    let image = format!("docker://{host}/docker.io/team/app:v1");
    let pulled = dir.path().join("pulled");
    run_ok(
        Command::new("skopeo")
            .args([
                "copy",
                "--src-tls-verify=false",
                "--override-arch",
                "amd64",
                &image,
            ])
            .arg(format!("oci:{}:v1", pulled.display())),
    );
    // skopeo 1.9 gzips the uncompressed test layer on its way into the layout; the
    // content must be the amd64 layer the upstream holds.
    let expected = format!("layer for amd64 {}", "x".repeat(4096)).into_bytes();
    let found = std::fs::read_dir(pulled.join("blobs/sha256"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .any(|blob| {
            let mut plain = Vec::new();
            let gunzipped = std::io::Read::read_to_end(
                &mut flate2::read::GzDecoder::new(&blob[..]),
                &mut plain,
            )
            .is_ok();
            blob == expected || (gunzipped && plain == expected)
        });
    assert!(found, "the amd64 layer is not in what skopeo pulled");
    let refused = Command::new("skopeo")
        .args([
            "copy",
            "--src-tls-verify=false",
            "--override-arch",
            "arm64",
            &image,
        ])
        .arg(format!("oci:{}:arm", dir.path().join("arm").display()))
        .output()
        .unwrap();
    assert!(!refused.status.success(), "arm64 was not mirrored");
}
