//! Hot metadata requests — PyPI project pages, the Hub's HEAD resolve and revision info —
//! against nginx serving a static file of the same size, measured with `wrk -t2 -c32` in
//! one run; plus the PyPI root page and start-up time with 100,000 projects.
//!
//! `cargo bench --bench metadata_rps` (needs wrk and nginx on PATH; `PYPISERVER=<path to
//! pypi-server>` adds pypiserver on the same wheelhouse as a second reference).

#[path = "../tests/support/wheels.rs"]
#[allow(dead_code)]
mod wheels;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{free_port, have, nginx, Guard, BIN};
const DURATION: &str = "5s";

/// Starts `airlock serve` and returns it with its base URL and the time to listening.
fn airlock(dir: &Path, store: &Path) -> (Guard, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .current_dir(dir)
        .args([
            "--store",
            store.to_str().unwrap(),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("AIRLOCK_LOG", "warn,airlock::server=info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let base = loop {
        let line = lines.next().expect("airlock exited").unwrap();
        if let Some(i) = line.find("listening on http://") {
            break line[i + 13..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_string();
        }
    };
    let elapsed = started.elapsed();
    std::thread::spawn(move || for _ in lines {});
    (Guard(child), base, elapsed)
}

fn cli(dir: &Path, store: &Path, args: &[&str]) {
    let out = Command::new(BIN)
        .current_dir(dir)
        .args(["--store", store.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Load {
    rps: f64,
    p99_ms: f64,
}

/// wrk's parser waits for a body after a HEAD answer with a Content-Length, so HEAD is
/// driven by 32 keep-alive connections of our own, used the same way for every target.
fn head_load(url: &str) -> Load {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(32)
            .build()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let (client, url) = (client.clone(), url.to_string());
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    while Instant::now() < until {
                        let t = Instant::now();
                        let r = client.head(&url).send().await.unwrap();
                        assert!(r.status().is_success(), "{url}: {}", r.status());
                        latencies.push(t.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort();
        let p99 = all[all.len() * 99 / 100].as_secs_f64() * 1000.0;
        Load {
            rps: all.len() as f64 / 5.0,
            p99_ms: p99,
        }
    })
}

/// `wrk -t2 -c32` with optional method and headers; requests per second and p99.
fn wrk(url: &str, method: &str, headers: &[&str], dir: &Path) -> Load {
    if method == "HEAD" {
        return head_load(url);
    }
    let script = dir.join(format!("wrk-{method}.lua"));
    std::fs::write(&script, format!("wrk.method = \"{method}\"\n")).unwrap();
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t2",
        "-c32",
        "-d",
        DURATION,
        "--latency",
        "-s",
        script.to_str().unwrap(),
    ]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0);
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| parse_latency(v.trim()))
        .unwrap_or(f64::NAN);
    assert!(!text.contains("Non-2xx"), "{url} answered errors:\n{text}");
    Load { rps, p99_ms: p99 }
}

fn parse_latency(v: &str) -> f64 {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => n,
    }
}

fn body_size(url: &str, headers: &[&str]) -> usize {
    let mut cmd = Command::new("curl");
    cmd.args(["-sf"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().unwrap();
    assert!(out.status.success(), "{url}");
    out.stdout.len()
}

fn seed(dir: &Path, store: &Path) {
    let house = dir.join("wheelhouse");
    std::fs::create_dir_all(&house).unwrap();
    for v in 0..20 {
        wheels::wheel(
            "torchlike",
            &format!("2.{v}.0"),
            &["numpy>=1.26", "filelock"],
            Some(">=3.9"),
        )
        .write_to(&house);
        wheels::sdist("torchlike", &format!("2.{v}.0"), &["numpy>=1.26"]).write_to(&house);
    }
    cli(dir, store, &["pypi", "import", house.to_str().unwrap()]);
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(
        model.join("config.json"),
        r#"{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":4096}"#,
    )
    .unwrap();
    std::fs::write(model.join("tokenizer_config.json"), "{}").unwrap();
    cli(
        dir,
        store,
        &["hf", "import", "org/tiny", model.to_str().unwrap()],
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("metadata_rps: run with `cargo bench --bench metadata_rps`");
        return;
    }
    if !have("curl") {
        println!("metadata_rps: needs wrk and curl on PATH (apt-get install wrk curl)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    if !have("wrk") {
        println!("metadata_rps: wrk is not on PATH (apt-get install wrk): only the root page and start-up");
        root_page_with_100k_projects(dir);
        return;
    }
    let store = dir.join("store");
    seed(dir, &store);
    let (_airlock, base, _) = airlock(dir, &store);
    let static_root = dir.join("static");
    std::fs::create_dir_all(&static_root).unwrap();
    let nginx = nginx(dir, &static_root);
    if nginx.is_none() {
        println!("nginx not found: ratios are not printed");
    }

    let json = "Accept: application/vnd.pypi.simple.v1+json";
    let targets: Vec<(&str, String, &str, Vec<&str>)> = vec![
        (
            "pypi project page (HTML)",
            format!("{base}/simple/torchlike/"),
            "GET",
            vec![],
        ),
        (
            "pypi project page (JSON)",
            format!("{base}/simple/torchlike/"),
            "GET",
            vec![json],
        ),
        (
            "hf HEAD resolve config.json",
            format!("{base}/org/tiny/resolve/main/config.json"),
            "HEAD",
            vec![],
        ),
        (
            "hf GET revision/main",
            format!("{base}/api/models/org/tiny/revision/main"),
            "GET",
            vec![],
        ),
    ];
    println!(
        "\n{:<30} {:>12} {:>9} {:>14} {:>9} {:>7}",
        "target", "airlock r/s", "p99 ms", "nginx r/s", "p99 ms", "ratio"
    );
    for (name, url, method, headers) in &targets {
        let size = if *method == "HEAD" {
            0
        } else {
            body_size(url, headers)
        };
        let a = wrk(url, method, headers, dir);
        let reference = nginx.as_ref().map(|(_, port)| {
            let file = format!(
                "{}.bin",
                name.replace(' ', "_").replace(['(', ')', '/'], "")
            );
            std::fs::write(static_root.join(&file), vec![b'x'; size]).unwrap();
            wrk(&format!("http://127.0.0.1:{port}/{file}"), method, &[], dir)
        });
        match reference {
            Some(r) => println!(
                "{name:<30} {:>12.0} {:>9.2} {:>14.0} {:>9.2} {:>6.2}x",
                a.rps,
                a.p99_ms,
                r.rps,
                r.p99_ms,
                a.rps / r.rps
            ),
            None => println!("{name:<30} {:>12.0} {:>9.2}", a.rps, a.p99_ms),
        }
    }

    if let Ok(pypiserver) = std::env::var("PYPISERVER") {
        let port = free_port();
        let child = Command::new(&pypiserver)
            .args([
                "run",
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                dir.join("wheelhouse").to_str().unwrap(),
            ])
            .stderr(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let _guard = Guard(child);
        std::thread::sleep(Duration::from_secs(2));
        let p = wrk(
            &format!("http://127.0.0.1:{port}/simple/torchlike/"),
            "GET",
            &[],
            dir,
        );
        let a = wrk(&format!("{base}/simple/torchlike/"), "GET", &[], dir);
        println!(
            "pypi project page: airlock {:.0} r/s vs pypiserver {:.0} r/s: {:.1}x",
            a.rps,
            p.rps,
            a.rps / p.rps
        );
    } else {
        println!("(set PYPISERVER=/path/to/pypi-server to compare with pypiserver)");
    }

    root_page_with_100k_projects(dir);
}

/// Time to first byte and total of one GET (curl's own timers), and the body's size.
fn timed_get(url: &str, accept: &str, out: &Path) -> (f64, f64, u64) {
    let o = Command::new("curl")
        .args([
            "-sf",
            "-o",
            out.to_str().unwrap(),
            "-H",
            &format!("Accept: {accept}"),
        ])
        .args([
            "-w",
            "%{time_starttransfer} %{time_total} %{size_download}",
            url,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{url}");
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let v: Vec<f64> = text
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    (v[0] * 1000.0, v[1] * 1000.0, v[2] as u64)
}

/// The `/simple/` root with 100,000 projects (one project document each: the listing of
/// those documents is the project list), against nginx serving the same bytes; and
/// start-up time with 100,000 vs 10. The documents are written straight into the store's
/// layout, as `pypi import` would leave them, to build the store in seconds.
fn root_page_with_100k_projects(dir: &Path) {
    let static_root = dir.join("static-root");
    std::fs::create_dir_all(&static_root).unwrap();
    let nginx = nginx(dir, &static_root);
    let mut startup = Vec::new();
    for n in [10usize, 100_000] {
        let store = dir.join(format!("catalog-{n}"));
        let projects = store.join("pypi/default/projects");
        std::fs::create_dir_all(&projects).unwrap();
        for i in 0..n {
            let doc = serde_json::json!({"name": format!("Project_{i:06}"), "files": [{
                "filename": format!("project_{i:06}-1.0.tar.gz"), "version": "1.0", "kind": "sdist",
                "sha256": format!("{i:064x}"), "size": 100, "upload_time": "2026-01-01T00:00:00.000000Z"}]});
            std::fs::write(
                projects.join(format!("project-{i:06}.json")),
                serde_json::to_vec(&doc).unwrap(),
            )
            .unwrap();
        }
        let (guard, base, started) = airlock(dir, &store);
        startup.push((n, started));
        if n == 100_000 {
            for (label, accept) in [
                ("HTML", "text/html"),
                ("JSON", "application/vnd.pypi.simple.v1+json"),
            ] {
                let body = static_root.join(format!("root-{label}"));
                let url = format!("{base}/simple/");
                let cold = timed_get(&url, accept, &body);
                let warm = (0..4)
                    .map(|_| timed_get(&url, accept, &body))
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .unwrap();
                let reference = nginx.as_ref().map(|(_, port)| {
                    let url = format!("http://127.0.0.1:{port}/root-{label}");
                    (0..5)
                        .map(|_| timed_get(&url, accept, &dir.join("nginx-copy")))
                        .min_by(|a, b| a.1.total_cmp(&b.1))
                        .unwrap()
                });
                println!(
                    "/simple/ root, 100,000 projects ({label}, {} bytes): cold first byte {:.0} ms, total {:.0} ms; warm first byte {:.1} ms, total {:.1} ms{}",
                    cold.2,
                    cold.0,
                    cold.1,
                    warm.0,
                    warm.1,
                    reference
                        .map(|r| format!("; nginx same bytes: first byte {:.1} ms, total {:.1} ms", r.0, r.1))
                        .unwrap_or_default()
                );
            }
        }
        drop(guard);
    }
    for (n, t) in startup {
        println!(
            "start-up to listening with {n} projects: {:.0} ms",
            t.as_secs_f64() * 1000.0
        );
    }
}
