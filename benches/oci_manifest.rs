//! Hot OCI manifest requests — HEAD and GET by tag, GET by digest — against nginx
//! serving a static file of the same size, with `wrk -t2 -c32` in one run. With
//! `DOCKER_REGISTRY=<path to Debian's docker-registry>` the same image is also pushed to
//! the reference registry (distribution 2.8) and measured there.
//!
//! `cargo bench --bench oci_manifest` (needs wrk and nginx; skopeo for DOCKER_REGISTRY).

#[path = "../tests/support/images.rs"]
mod images;
mod support;

use support::{airlock, have, nginx, Guard};

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::BIN;
const DURATION: &str = "5s";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

struct Load {
    rps: f64,
    p99_ms: f64,
    /// wrk saw answers other than 2xx (the numbers then mean little).
    errors: bool,
}

fn wrk(url: &str, method: &str, headers: &[&str], dir: &Path) -> Load {
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
    let errors = text.contains("Non-2xx") || !out.status.success();
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0);
    let p99_ms = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| {
            let v = v.trim();
            let (num, unit) = v.split_at(v.find(|c: char| c.is_alphabetic()).unwrap_or(v.len()));
            let n: f64 = num.parse().unwrap_or(f64::NAN);
            match unit {
                "us" => n / 1000.0,
                "s" => n * 1000.0,
                _ => n,
            }
        })
        .unwrap_or(f64::NAN);
    Load {
        rps,
        p99_ms,
        errors,
    }
}

/// HEAD load with the same shape as `wrk -t2 -c32`: wrk 4.1 waits for a body after a
/// HEAD answer that carries Content-Length (as the spec requires for manifests) and
/// so measures nothing. Responses are read up to the end of their headers.
fn head_load(url: &str, headers: &[&str]) -> Load {
    let rest = url.trim_start_matches("http://");
    let (addr, path) = rest.split_at(rest.find('/').unwrap());
    let mut request = format!("HEAD {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for h in headers {
        request.push_str(&format!("{h}\r\n"));
    }
    request.push_str("\r\n");
    let seconds: u64 = DURATION.trim_end_matches('s').parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (latencies, errors) = runtime.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let (addr, request) = (addr.to_string(), request.clone());
                tokio::spawn(async move {
                    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
                    stream.set_nodelay(true).unwrap();
                    let (mut latencies, mut errors) = (Vec::new(), false);
                    let mut buf = vec![0u8; 4096];
                    while tokio::time::Instant::now() < deadline {
                        let started = std::time::Instant::now();
                        stream.write_all(request.as_bytes()).await.unwrap();
                        let mut got = 0;
                        loop {
                            let n = stream.read(&mut buf[got..]).await.unwrap();
                            assert!(n > 0, "connection closed");
                            got += n;
                            if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                                break;
                            }
                        }
                        errors |= !buf.starts_with(b"HTTP/1.1 2");
                        latencies.push(started.elapsed());
                    }
                    (latencies, errors)
                })
            })
            .collect();
        let mut all = Vec::new();
        let mut errors = false;
        for t in tasks {
            let (l, e) = t.await.unwrap();
            all.extend(l);
            errors |= e;
        }
        (all, errors)
    });
    let mut sorted = latencies;
    sorted.sort();
    let p99 = sorted
        .get(sorted.len() * 99 / 100)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(f64::NAN);
    Load {
        rps: sorted.len() as f64 / seconds as f64,
        p99_ms: p99,
        errors,
    }
}

/// The load for one target: wrk, or [`head_load`] for HEAD.
fn load(url: &str, method: &str, headers: &[&str], dir: &Path) -> Load {
    if method == "HEAD" {
        head_load(url, headers)
    } else {
        wrk(url, method, headers, dir)
    }
}

/// The digest a registry serves for a tag (a reference registry may hold the image
/// under another digest if the pushing client recompressed it).
fn served_digest(port: u16, path: &str, accept: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "HEAD {path} HTTP/1.1\r\nHost: x\r\n{accept}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("docker-content-digest:")
            .map(|v| v.trim().to_string())
    })
}

/// Debian's docker-registry (distribution 2.8) on a free port, holding the same image.
fn docker_registry(dir: &Path, layout: &Path, tag: &str) -> Option<(Guard, u16)> {
    let bin = std::env::var("DOCKER_REGISTRY").ok()?;
    let (guard, host) = support::docker_registry(&bin, dir)?;
    let pushed = Command::new("skopeo")
        .args([
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:{tag}", layout.display()),
            &format!("docker://{host}/library/bench:{tag}"),
        ])
        .output()
        .ok()?;
    let port = host.rsplit_once(':')?.1.parse().ok()?;
    pushed.status.success().then_some((guard, port))
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("oci_manifest: run with `cargo bench --bench oci_manifest`");
        return;
    }
    if !have("wrk") {
        println!("oci_manifest: needs wrk on PATH (apt-get install wrk)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let store = dir.join("store");
    let layout = dir.join("layout");
    let (digest, manifest) = images::tiny_layout(&layout, "1.0", &vec![7u8; 4096]);
    let out = Command::new(BIN)
        .current_dir(dir)
        .args([
            "--store",
            store.to_str().unwrap(),
            "oci",
            "import",
            "--repo",
            "docker.io/library/bench",
        ])
        .arg(&layout)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_airlock, base) = airlock(dir, &store);

    let static_root = dir.join("static");
    std::fs::create_dir_all(&static_root).unwrap();
    std::fs::write(static_root.join("manifest.json"), &manifest).unwrap();
    let nginx = nginx(dir, &static_root);
    let registry = docker_registry(dir, &layout, "1.0");
    let accept = format!("Accept: {MANIFEST}");

    let targets = [
        (
            "HEAD manifest by tag",
            "HEAD",
            "/v2/library/bench/manifests/1.0".to_string(),
        ),
        (
            "GET manifest by tag",
            "GET",
            "/v2/library/bench/manifests/1.0".to_string(),
        ),
        (
            "GET manifest by digest",
            "GET",
            format!("/v2/library/bench/manifests/{digest}"),
        ),
    ];
    println!(
        "\nmanifest of {} bytes; wrk -t2 -c32 -d{DURATION}\n{:<24} {:>12} {:>8} {:>10} {:>8} {:>7} {:>12} {:>7}",
        manifest.len(),
        "target",
        "airlock r/s",
        "p99 ms",
        "nginx r/s",
        "p99 ms",
        "ratio",
        "registry r/s",
        "ratio"
    );
    for (name, method, path) in &targets {
        let a = load(&format!("{base}{path}"), method, &[&accept], dir);
        assert!(!a.errors, "airlock answered errors for {path}");
        let n = nginx.as_ref().map(|(_, port)| {
            load(
                &format!("http://127.0.0.1:{port}/manifest.json"),
                method,
                &[],
                dir,
            )
        });
        let r = registry.as_ref().map(|(_, port)| {
            let path = match served_digest(*port, "/v2/library/bench/manifests/1.0", &accept) {
                Some(d) if path.contains("sha256:") => format!("/v2/library/bench/manifests/{d}"),
                _ => path.clone(),
            };
            load(
                &format!("http://127.0.0.1:{port}{path}"),
                method,
                &[&accept],
                dir,
            )
        });
        let (n_rps, n_p99, n_ratio) = match &n {
            Some(n) => (
                format!("{:.0}", n.rps),
                format!("{:.2}", n.p99_ms),
                format!("{:.2}x", a.rps / n.rps),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let (r_rps, r_ratio) = match &r {
            Some(r) if !r.errors => (format!("{:.0}", r.rps), format!("{:.1}x", a.rps / r.rps)),
            Some(_) => ("errors".into(), "-".into()),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{name:<24} {:>12.0} {:>8.2} {n_rps:>10} {n_p99:>8} {n_ratio:>7} {r_rps:>12} {r_ratio:>7}",
            a.rps, a.p99_ms
        );
    }
    if registry.is_none() {
        println!("(set DOCKER_REGISTRY=/usr/bin/docker-registry to compare with distribution 2.8)");
    }
}
