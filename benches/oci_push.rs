//! Pushing a large layer with skopeo: Airlock (filesystem store) against Debian's
//! `docker-registry` (distribution 2.8, filesystem driver), in one run on loopback.
//!
//! ```text
//! cargo bench --bench oci_push
//! AIRLOCK_BENCH_SIZE=256MiB AIRLOCK_BENCH_RUNS=5 cargo bench --bench oci_push
//! ```
//!
//! One OCI layout with a single incompressible layer (default 1 GiB) is copied by
//! `skopeo copy oci:... docker://...` into an empty store of each registry; targets
//! alternate run by run, each run on a fresh store so nothing is skipped as already
//! present. skopeo sends the layer as one streaming PATCH and closes with a PUT, which is
//! what docker and podman do too. Reported: median and best seconds, MB/s, the ratio,
//! and skopeo copying the same layout to a local `dir:` (the client's own cost, a floor).
//! The target (issue #3) is Airlock >= 2x docker-registry.
//!
//! Needs skopeo and docker-registry (`DOCKER_REGISTRY=<path>` or on PATH); a missing one
//! is reported and the bench exits. Everything runs on 127.0.0.1 and is stopped at the end.

mod support;

use sha2::{Digest as _, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use support::{airlock_with, docker_registry, have, median, size_from_env};

const TARGET_RATIO: f64 = 2.0;
const TOKEN: &str = "bench-push-token";

/// Writes an OCI layout whose one layer is `size` pseudo-random bytes, streamed to disk.
/// The layer is labelled gzip, as pushed layers are: skopeo would gzip an uncompressed
/// layer on the way, and the push would measure the client's compressor.
fn big_layout(layout: &Path, size: u64) -> (String, u64) {
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let tmp = blobs.join("layer.tmp");
    // gzip in stored (level 0) blocks: a real gzip stream that skopeo passes through as
    // is, written fast, and as incompressible as the random bytes inside it.
    let mut file = flate2::write::GzEncoder::new(
        std::io::BufWriter::new(std::fs::File::create(&tmp).unwrap()),
        flate2::Compression::none(),
    );
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for word in chunk.chunks_exact_mut(8) {
            // xorshift64: incompressible, and fast enough not to dominate set-up.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    file.finish().unwrap().flush().unwrap();
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(&tmp).unwrap(), &mut hasher).unwrap();
    let layer = hex::encode(hasher.finalize());
    let size = std::fs::metadata(&tmp).unwrap().len();
    std::fs::rename(&tmp, blobs.join(&layer)).unwrap();
    let put = |data: &[u8]| {
        let d = hex::encode(Sha256::digest(data));
        std::fs::write(blobs.join(&d), data).unwrap();
        format!("sha256:{d}")
    };
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []}
    }))
    .unwrap();
    let config_digest = put(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": format!("sha256:{layer}"), "size": size}]
    }))
    .unwrap();
    let manifest_digest = put(&manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "1.0"}
        }]
    });
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    (layer, size)
}

/// Seconds for one `skopeo copy` of the layout into `host`, with `creds` if given.
fn push(layout: &Path, host: &str, creds: Option<&str>) -> f64 {
    let started = Instant::now();
    let mut skopeo = Command::new("skopeo");
    skopeo.arg("copy");
    if let Some(creds) = creds {
        skopeo.arg(format!("--dest-creds={creds}"));
    }
    let out = skopeo
        .args([
            "--quiet",
            "--dest-tls-verify=false",
            &format!("oci:{}:1.0", layout.display()),
            &format!("docker://{host}/bench/layer:1.0"),
        ])
        .output()
        .expect("run skopeo");
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "skopeo push to {host} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    seconds
}

/// Seconds for skopeo to copy the layout to a local `dir:` destination: what the client
/// alone costs (read, digest, write), a floor no registry push can go below.
fn client_floor(layout: &Path, dest: &Path) -> f64 {
    let started = Instant::now();
    let out = Command::new("skopeo")
        .args(["copy", "--quiet", &format!("oci:{}:1.0", layout.display())])
        .arg(format!("dir:{}", dest.display()))
        .output()
        .expect("run skopeo");
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "skopeo copy to a directory failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(dest);
    seconds
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("oci_push: run with `cargo bench --bench oci_push`");
        return;
    }
    let registry = std::env::var("DOCKER_REGISTRY").unwrap_or_else(|_| "docker-registry".into());
    for tool in ["skopeo", registry.as_str()] {
        if !have(tool) {
            println!("oci_push: needs {tool} (apt-get install skopeo docker-registry)");
            return;
        }
    }
    let size = size_from_env("AIRLOCK_BENCH_SIZE", 1 << 30);
    let runs: usize = std::env::var("AIRLOCK_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|r| (1..=20).contains(r))
        .unwrap_or(3);
    let tmp = tempfile::tempdir_in(std::env::var("TMPDIR").unwrap_or("/var/tmp".into())).unwrap();
    let layout = tmp.path().join("layout");
    eprintln!("oci_push: writing a {size}-byte layer");
    let (layer, size) = big_layout(&layout, size);

    let (mut ours, mut theirs, mut floor) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ours_cpu, mut theirs_cpu) = (Vec::new(), Vec::new());
    for run in 0..runs {
        // Alternate who goes first, so drift on the machine hits both alike.
        for airlock_turn in [run % 2 == 0, run % 2 != 0] {
            let dir = tmp.path().join(format!("run-{run}-{airlock_turn}"));
            std::fs::create_dir_all(&dir).unwrap();
            if airlock_turn {
                let store: PathBuf = dir.join("store");
                let (guard, base) = airlock_with(&dir, &store, &["--admin-token", TOKEN]);
                let host = base.trim_start_matches("http://").to_string();
                let seconds = push(&layout, &host, Some(&format!("bench:{TOKEN}")));
                let stored = store.join(format!("blobs/sha256/{}/{layer}", &layer[..2]));
                let listing = Command::new("find").arg(&store).output().unwrap();
                assert_eq!(
                    std::fs::metadata(&stored).map(|m| m.len()).ok(),
                    Some(size),
                    "the layer is not in Airlock's store:\n{}",
                    String::from_utf8_lossy(&listing.stdout)
                );
                ours.push(seconds);
                ours_cpu.push(cpu_seconds(guard.0.id()));
                drop(guard);
            } else {
                let (guard, host) =
                    docker_registry(&registry, &dir).expect("start docker-registry");
                theirs.push(push(&layout, &host, None));
                theirs_cpu.push(cpu_seconds(guard.0.id()));
                drop(guard);
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
        floor.push(client_floor(&layout, &tmp.path().join("floor")));
        eprintln!(
            "oci_push: run {} airlock {:.2}s docker-registry {:.2}s skopeo to dir: {:.2}s",
            run + 1,
            ours[run],
            theirs[run],
            floor[run]
        );
    }
    let mb = size as f64 / 1e6;
    let (a, d) = (median(ours.clone()), median(theirs.clone()));
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "skopeo push of one {:.0} MB layer, median of {runs} (best)",
        mb
    );
    println!(
        "  airlock (fs store)   {a:7.2} s ({:.2})  {:7.1} MB/s",
        best(&ours),
        mb / a
    );
    println!(
        "  docker-registry 2.8  {d:7.2} s ({:.2})  {:7.1} MB/s",
        best(&theirs),
        mb / d
    );
    let gib = size as f64 / (1u64 << 30) as f64;
    println!(
        "  server CPU per GiB pushed: airlock {:.2} s, docker-registry {:.2} s",
        median(ours_cpu) / gib,
        median(theirs_cpu) / gib
    );
    let f = median(floor.clone());
    println!(
        "  skopeo to dir: (floor){f:7.2} s ({:.2})  {:7.1} MB/s  (the client alone: no push can be faster)",
        best(&floor),
        mb / f
    );
    let ratio = d / a;
    println!(
        "  [{}] airlock/docker-registry throughput: {ratio:.2}x (target >= {TARGET_RATIO}x)",
        if ratio >= TARGET_RATIO {
            " ok "
        } else {
            "MISS"
        }
    );
}
