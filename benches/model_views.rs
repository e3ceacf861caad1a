//! One stored model, every way it is loaded: the S3 API and the OCI model images against
//! the Hub's resolve route and a plain blob read of the same bytes, in one run on loopback,
//! on the filesystem store (sendfile where the route allows it).
//!
//! ```text
//! cargo bench --bench model_views
//! AIRLOCK_BENCH_SIZE=1GiB AIRLOCK_BENCH_RUNS=5 cargo bench --bench model_views
//! ```
//!
//! (a) one file of `AIRLOCK_BENCH_SIZE` (default 200 MiB) read whole by: the Hub's
//!     `resolve` (the reference), S3 GetObject, the ModelPack layer (the file's own
//!     digest), the modelcar's model tar layer (generated framing around the file), and
//!     `/_airlock/blobs/sha256:<hex>`; median of `AIRLOCK_BENCH_RUNS` (default 3), routes
//!     alternating run by run after one unmeasured read each;
//! (b) the bytes the store gains when both images are first pulled, and how long the first
//!     modelcar manifest takes (its layer digests are computed by reading the layers once);
//! (c) ListObjectsV2 over a 10,000-file model: 1,000 keys a page, every page of 10 full
//!     listings, p50 and p99 per page; and one delimited listing of its 100 folders.
//!
//! `AIRLOCK_BENCH_STORE=s3` runs it on Garage with the bytes proxied, `s3-redirect` with
//! `redirect_downloads` (the Hub's resolve and the blob routes then answer with a
//! presigned redirect to Garage, which reqwest follows; S3 GetObject always streams).
//!
//! The targets of issue #15 (S3 and the modelcar layer within 0.9x of the reference,
//! ListObjectsV2 p99 under 20 ms a page) are reported, never fatal. Everything runs on
//! 127.0.0.1 and is stopped when the bench ends; the temporary directory is removed.

#[allow(dead_code)]
#[path = "../tests/support/garage.rs"]
mod garage;
#[path = "../tests/support/images.rs"]
mod images;
mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{count_from_env, median, sha256_file, size_from_env, store_bytes, Guard, BIN};

const TARGET_RATIO: f64 = 0.9;
const LIST_P99_MS: f64 = 20.0;
const MANY_FILES: usize = 10_000;
/// The blob route needs a token (a digest is not a capability); the others read anonymously.
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789abcdef";

/// Where the bench keeps its store (`AIRLOCK_BENCH_STORE`): `fs` (default), `s3` (Garage,
/// bytes proxied) or `s3-redirect` (Garage with `redirect_downloads`).
struct BenchStore {
    args: Vec<String>,
    env: Vec<(String, String)>,
    dir: Option<std::path::PathBuf>,
    s3: Option<(garage::Garage, String)>,
    name: String,
}

impl BenchStore {
    fn from_env(dir: &Path) -> BenchStore {
        let kind = std::env::var("AIRLOCK_BENCH_STORE").unwrap_or_else(|_| "fs".into());
        match kind.as_str() {
            "fs" => {
                let root = dir.join("store");
                BenchStore {
                    args: vec!["--store".into(), root.to_string_lossy().into()],
                    env: vec![],
                    dir: Some(root),
                    s3: None,
                    name: "filesystem store".into(),
                }
            }
            "s3" | "s3-redirect" => {
                let g = garage::Garage::start();
                let prefix = format!("bench-{}", hex::encode(rand::random::<[u8; 6]>()));
                let redirect = kind == "s3-redirect";
                BenchStore {
                    args: vec![
                        "--store".into(),
                        format!("s3://{}/{prefix}", g.bucket),
                        "--s3-endpoint".into(),
                        g.endpoint.clone(),
                        "--s3-redirect-downloads".into(),
                        redirect.to_string(),
                    ],
                    env: vec![
                        ("AWS_ACCESS_KEY_ID".into(), g.key_id.clone()),
                        ("AWS_SECRET_ACCESS_KEY".into(), g.secret.clone()),
                        ("AWS_REGION".into(), g.region.clone()),
                    ],
                    dir: None,
                    s3: Some((g, format!("{prefix}/"))),
                    name: format!(
                        "S3 store on Garage{}",
                        if redirect {
                            ", redirect_downloads"
                        } else {
                            ", proxied"
                        }
                    ),
                }
            }
            other => panic!("AIRLOCK_BENCH_STORE: `{other}`; use fs, s3 or s3-redirect"),
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Every byte stored, listed the way the backend lists it.
    async fn bytes(&self) -> u64 {
        if let Some(dir) = &self.dir {
            return store_bytes(dir);
        }
        let (g, prefix) = self.s3.as_ref().expect("an S3 store");
        let client = g.client();
        let mut total = 0u64;
        let mut token = None;
        loop {
            let page = client
                .list_objects_v2()
                .bucket(&g.bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .unwrap();
            total += page
                .contents()
                .iter()
                .map(|o| o.size().unwrap_or(0) as u64)
                .sum::<u64>();
            match page.next_continuation_token() {
                Some(next) => token = Some(next.to_string()),
                None => return total,
            }
        }
    }
}

fn cli(dir: &Path, store: &BenchStore, args: &[&str]) {
    let out = store
        .command()
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `airlock serve` with the S3 listener; its base URL and the S3 endpoint.
fn serve(dir: &Path, store: &BenchStore) -> (Guard, String, String) {
    let config = dir.join("airlock.toml");
    std::fs::write(&config, "[s3api]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let mut child = store
        .command()
        .current_dir(dir)
        .arg("--config")
        .arg(&config)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-token",
            ADMIN_TOKEN,
        ])
        .env("AIRLOCK_LOG", "warn,airlock::server=info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url_after = |line: &str, marker: &str| {
        line.find(marker).map(|i| {
            line[i + marker.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || ":/.".contains(*c))
                .collect::<String>()
        })
    };
    let mut s3 = None;
    let base = loop {
        let line = lines.next().expect("airlock exited").unwrap();
        if let Some(url) = url_after(&line, "S3 API at ") {
            s3 = Some(url);
        }
        if let Some(url) = url_after(&line, "listening on ") {
            break url;
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (
        Guard(child),
        base,
        s3.expect("the S3 listener is announced first"),
    )
}

/// Deterministic bytes that do not compress.
fn write_random(path: &Path, size: u64) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut left = size;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        for word in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
        }
        let n = left.min(buf.len() as u64) as usize;
        out.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    out.flush().unwrap();
}

/// Downloads `url` whole, counting and dropping the bytes; MB/s.
async fn throughput(client: &reqwest::Client, url: &str, size: u64) -> f64 {
    let started = Instant::now();
    let mut request = client.get(url);
    if url.contains("/_airlock/") {
        request = request.bearer_auth(ADMIN_TOKEN);
    }
    let mut r = request.send().await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    let mut got = 0u64;
    while let Some(chunk) = r.chunk().await.unwrap() {
        got += chunk.len() as u64;
    }
    assert_eq!(got, size, "{url}: the whole body");
    got as f64 / 1e6 / started.elapsed().as_secs_f64()
}

async fn json(client: &reqwest::Client, url: &str, accept: &str) -> serde_json::Value {
    let r = client
        .get(url)
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.unwrap()
}

fn percentile(sorted: &[Duration], p: usize) -> f64 {
    let i = (sorted.len() * p / 100).min(sorted.len() - 1);
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("model_views: run with `cargo bench --bench model_views`");
        return;
    }
    let size = size_from_env("AIRLOCK_BENCH_SIZE", 200 << 20);
    let runs = count_from_env("AIRLOCK_BENCH_RUNS", 3, 20);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let store = BenchStore::from_env(dir);
    println!("model_views on the {}", store.name);

    // The model: one weights file and a config, imported as a user's upload would be.
    let big = dir.join("big");
    std::fs::create_dir_all(&big).unwrap();
    std::fs::write(big.join("config.json"), r#"{"model_type": "bench"}"#).unwrap();
    let weights = big.join("model.safetensors");
    write_random(&weights, size);
    let sha = sha256_file(&weights);
    cli(
        dir,
        &store,
        &["hf", "import", "bench/big", big.to_str().unwrap()],
    );
    // A 10,000-file model in 100 folders for the listings.
    let many = dir.join("many");
    for i in 0..MANY_FILES {
        let folder = many.join(format!("part-{:03}", i / 100));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(
            folder.join(format!("shard-{i:05}.json")),
            format!("{{\"i\": {i}}}"),
        )
        .unwrap();
    }
    let started = Instant::now();
    cli(
        dir,
        &store,
        &["hf", "import", "bench/many", many.to_str().unwrap()],
    );
    println!(
        "setup: {} MiB weights (sha256 {}), {MANY_FILES} small files imported in {:.1} s",
        size >> 20,
        &sha[..12],
        started.elapsed().as_secs_f64()
    );
    // The modelcar base, where the default `[model_images] base` looks for it.
    let layout = dir.join("base");
    images::tiny_layout(&layout, "latest", &vec![7u8; 4096]);
    cli(
        dir,
        &store,
        &[
            "oci",
            "import",
            "--repo",
            "docker.io/library/busybox",
            layout.to_str().unwrap(),
        ],
    );

    let (_airlock, base, s3) = serve(dir, &store);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let v2 = |path: &str| format!("{base}/v2/huggingface.co/bench/big/{path}");

        // (b) What pulling both images adds to the store, and the first modelcar manifest.
        let before = store.bytes().await;
        let modelpack = json(
            &client,
            &v2("manifests/main-modelpack"),
            "application/vnd.oci.image.manifest.v1+json",
        )
        .await;
        let started = Instant::now();
        let index = json(&client, &v2("manifests/main"), "application/vnd.oci.image.index.v1+json").await;
        let first_modelcar = started.elapsed();
        let platform = index["manifests"][0]["digest"].as_str().unwrap().to_string();
        let modelcar = json(
            &client,
            &v2(&format!("manifests/{platform}")),
            "application/vnd.oci.image.manifest.v1+json",
        )
        .await;
        let layer = modelcar["layers"]
            .as_array()
            .unwrap()
            .iter()
            .max_by_key(|l| l["size"].as_u64().unwrap())
            .unwrap()
            .clone();
        let layer_size = layer["size"].as_u64().unwrap();
        let layer_url = v2(&format!("blobs/{}", layer["digest"].as_str().unwrap()));
        let pack_layer = modelpack["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["digest"] == format!("sha256:{sha}"))
            .expect("the weights are a ModelPack layer under their own digest");
        assert_eq!(pack_layer["size"].as_u64().unwrap(), size);

        let routes: Vec<(&str, String, u64)> = vec![
            ("HF resolve (reference)", format!("{base}/bench/big/resolve/main/model.safetensors"), size),
            ("S3 GetObject", format!("{s3}/models/bench/big/model.safetensors"), size),
            ("ModelPack layer", v2(&format!("blobs/sha256:{sha}")), size),
            ("modelcar tar layer", layer_url, layer_size),
            ("blob route", format!("{base}/_airlock/blobs/sha256:{sha}"), size),
        ];
        for (_, url, n) in &routes {
            throughput(&client, url, *n).await;
        }
        let after = store.bytes().await;
        println!(
            "\n(b) store growth from pulling both images whole: {} B on {} B; first modelcar manifest {:.2} s (layer digests read once)",
            after - before,
            size,
            first_modelcar.as_secs_f64()
        );

        // (a) Throughput, routes alternating run by run.
        let mut figures = vec![Vec::new(); routes.len()];
        for _ in 0..runs {
            for (i, (_, url, n)) in routes.iter().enumerate() {
                figures[i].push(throughput(&client, url, *n).await);
            }
        }
        let medians: Vec<f64> = figures.into_iter().map(median).collect();
        println!("\n(a) {} MiB read whole, median of {runs}:", size >> 20);
        for (i, (name, _, _)) in routes.iter().enumerate() {
            let ratio = medians[i] / medians[0];
            let target = match *name {
                "S3 GetObject" | "modelcar tar layer" if ratio < TARGET_RATIO => "  MISSED 0.9x",
                "S3 GetObject" | "modelcar tar layer" => "  (target 0.9x: met)",
                _ => "",
            };
            println!("  {name:<24} {:>8.0} MB/s  {ratio:.2}x{target}", medians[i]);
        }
        let modelcar_vs_blob = medians[3] / medians[4];
        println!("  modelcar tar layer vs blob route: {modelcar_vs_blob:.2}x");

        // (c) ListObjectsV2 pages over the 10,000-file model.
        let mut pages = Vec::new();
        for _ in 0..10 {
            let mut token: Option<String> = None;
            let mut keys = 0;
            loop {
                let mut url = format!("{s3}/models?list-type=2&prefix=bench/many/&max-keys=1000");
                if let Some(t) = &token {
                    url.push_str(&format!("&continuation-token={}", urlencode(t)));
                }
                let started = Instant::now();
                let r = client.get(&url).send().await.unwrap();
                assert!(r.status().is_success(), "{url}: {}", r.status());
                let body = r.text().await.unwrap();
                pages.push(started.elapsed());
                keys += body.matches("<Key>").count();
                token = between(&body, "<NextContinuationToken>", "</NextContinuationToken>");
                if token.is_none() {
                    break;
                }
            }
            assert_eq!(keys, MANY_FILES + 1, "every key listed (with .gitattributes)");
        }
        pages.sort();
        let p99 = percentile(&pages, 99);
        let started = Instant::now();
        let body = client
            .get(format!("{s3}/models?list-type=2&prefix=bench/many/&delimiter=/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let delimited = started.elapsed();
        assert_eq!(body.matches("<CommonPrefixes>").count(), MANY_FILES / 100);
        println!(
            "\n(c) ListObjectsV2, {MANY_FILES} files, 1,000 keys a page, {} pages: p50 {:.1} ms, p99 {p99:.1} ms{}; delimited (100 folders) {:.1} ms",
            pages.len(),
            percentile(&pages, 50),
            if p99 < LIST_P99_MS { "  (target 20 ms: met)" } else { "  MISSED 20 ms" },
            delimited.as_secs_f64() * 1000.0
        );
    });
}

fn between(text: &str, open: &str, close: &str) -> Option<String> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(text[start..end].to_string())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
