//! `airlock gc` over a large filesystem store: half the blobs referenced by Python
//! project pages (50 files each), half referenced by nothing. Time and peak memory of a
//! dry run and of the real run (the sweep), at two store sizes to show how memory grows
//! per blob, against the same work done by `find` (the walk) and `rm` (the deletes)
//! measured in the same run.
//!
//! `cargo bench --bench gc` (needs GNU time, `/usr/bin/time`; `AIRLOCK_BENCH_BLOBS`,
//! default 100000: the larger size; the smaller is a fifth of it).

mod support;

use sha2::{Digest as _, Sha256};
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;
use support::{count_from_env, BIN};

const FILES_PER_PROJECT: usize = 50;

/// Writes `blobs` blobs (content `blob <i>`, keyed by its sha256) and project pages
/// naming the even ones; returns the odd (unreferenced) ones' paths.
fn build_store(root: &Path, blobs: usize) -> Vec<std::path::PathBuf> {
    let mut unreferenced = Vec::new();
    let mut projects: Vec<serde_json::Value> = Vec::new();
    let mut files = Vec::new();
    let mut list = Vec::new();
    for i in 0..blobs {
        let content = format!("blob {i}");
        let hex = hex::encode(Sha256::digest(content.as_bytes()));
        let dir = root.join("blobs/sha256").join(&hex[..2]);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(&hex);
        std::fs::write(&path, &content).unwrap();
        if i % 2 == 1 {
            unreferenced.push(path);
            continue;
        }
        files.push(serde_json::json!({
            "filename": format!("p{}-{i}-py3-none-any.whl", projects.len()),
            "version": format!("{i}"), "kind": "wheel", "sha256": hex,
            "size": content.len(), "upload_time": "2026-01-01T00:00:00.000000Z",
        }));
        if files.len() == FILES_PER_PROJECT {
            let name = format!("p{}", projects.len());
            list.push(serde_json::json!({"name": name, "normalized": name}));
            projects.push(serde_json::json!({"name": name, "files": std::mem::take(&mut files)}));
        }
    }
    let pages = root.join("pypi/default/projects");
    std::fs::create_dir_all(&pages).unwrap();
    for project in &projects {
        let name = project["name"].as_str().unwrap();
        std::fs::write(
            pages.join(format!("{name}.json")),
            serde_json::to_vec(project).unwrap(),
        )
        .unwrap();
    }
    std::fs::write(
        root.join("pypi/default/projects.json"),
        serde_json::to_vec(&list).unwrap(),
    )
    .unwrap();
    unreferenced
}

/// Runs `program` with `args` under GNU time, returning (seconds, peak resident KiB,
/// stdout). GNU time forks it from its own small image: the peak of a process spawned
/// straight from this one would count this process's pages, shared until the exec.
fn measure(dir: &Path, program: &str, args: &[&str]) -> (f64, u64, String) {
    let timing = dir.join("time.txt");
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&timing)
        .arg(program)
        .args(args)
        .current_dir(dir)
        .env("AIRLOCK_LOG", "warn")
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "{program} {args:?}: {}", out.status);
    let peak = std::fs::read_to_string(&timing).unwrap();
    let peak = peak.lines().last().unwrap().trim().parse().unwrap();
    (seconds, peak, String::from_utf8(out.stdout).unwrap())
}

struct Row {
    blobs: usize,
    dry: (f64, u64),
    sweep: (f64, u64),
    removed: u64,
    find: f64,
    rm: f64,
}

fn run(blobs: usize) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let unreferenced = build_store(&store, blobs);
    let store_arg = store.to_str().unwrap();
    let gc = |extra: &[&str]| {
        let mut args = vec!["--store", store_arg, "gc", "--json", "--grace", "0s"];
        args.extend_from_slice(extra);
        measure(dir.path(), BIN, &args)
    };
    let (find, _, listed) = measure(
        dir.path(),
        "find",
        &[store_arg, "-type", "f", "-printf", "%s %p\n"],
    );
    assert!(listed.lines().count() >= blobs);
    let (dry_s, dry_kib, _) = gc(&["--dry-run"]);
    // The same files through `rm`, in a copy of the store, as the reference for deletes.
    let copy = dir.path().join("copy");
    let status = Command::new("cp")
        .args(["-al", store.to_str().unwrap(), copy.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut list = Vec::new();
    for path in &unreferenced {
        let relative = path.strip_prefix(&store).unwrap();
        writeln!(list, "{}", copy.join(relative).display()).unwrap();
    }
    let started = Instant::now();
    let mut rm = Command::new("xargs")
        .args(["-d", "\n", "rm", "--"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    rm.stdin.take().unwrap().write_all(&list).unwrap();
    assert!(rm.wait().unwrap().success());
    let rm_s = started.elapsed().as_secs_f64();
    let (sweep_s, sweep_kib, report) = gc(&[]);
    let report: serde_json::Value = serde_json::from_str(report.trim()).unwrap();
    let removed = report["swept"]["blobs"]["count"].as_u64().unwrap();
    assert_eq!(removed as usize, unreferenced.len(), "{report}");
    assert!(unreferenced.iter().all(|p| !p.exists()));
    Row {
        blobs,
        dry: (dry_s, dry_kib),
        sweep: (sweep_s, sweep_kib),
        removed,
        find,
        rm: rm_s,
    }
}

fn main() {
    let large = count_from_env("AIRLOCK_BENCH_BLOBS", 100_000, 2_000_000);
    let rows = [run(large / 5), run(large)];
    println!(
        "{:>8} {:>10} {:>10} {:>9} {:>10} {:>10} {:>9} {:>9}",
        "blobs", "dry s", "dry MiB", "find s", "sweep s", "sweep MiB", "removed", "rm s"
    );
    for r in &rows {
        println!(
            "{:>8} {:>10.2} {:>10.1} {:>9.2} {:>10.2} {:>10.1} {:>9} {:>9.2}",
            r.blobs,
            r.dry.0,
            r.dry.1 as f64 / 1024.0,
            r.find,
            r.sweep.0,
            r.sweep.1 as f64 / 1024.0,
            r.removed,
            r.rm
        );
    }
    let (small, big) = (&rows[0], &rows[1]);
    let per_blob =
        |a: u64, b: u64| (b as f64 - a as f64) * 1024.0 / (big.blobs - small.blobs) as f64;
    println!(
        "peak memory per blob, from {} to {} blobs: dry run {:.0} B, sweep {:.0} B",
        small.blobs,
        big.blobs,
        per_blob(small.dry.1, big.dry.1),
        per_blob(small.sweep.1, big.sweep.1)
    );
    println!(
        "at {} blobs: dry run {:.1}x find's walk; sweep {:.1}x find + rm of the same files",
        big.blobs,
        big.dry.0 / big.find,
        big.sweep.0 / (big.find + big.rm)
    );
}
