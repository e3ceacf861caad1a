//! Xet against LFS through Airlock with the real client (issue #14): what the stock
//! `huggingface_hub` + `hf_xet` gets from Airlock's Xet CAS, next to the same client with
//! `HF_HUB_DISABLE_XET=1` (the LFS batch API up, plain `resolve` down), in one run on
//! loopback, on the filesystem store.
//!
//! ```text
//! cargo bench --bench xet_transfer
//! AIRLOCK_BENCH_SIZE=64MiB AIRLOCK_BENCH_REV_SIZE=32MiB cargo bench --bench xet_transfer
//! ```
//!
//! (1) one file of `AIRLOCK_BENCH_SIZE` (default 1 GiB) uploaded with `upload_file` and
//!     downloaded with `hf_hub_download` into a fresh cache, once through Xet (repository
//!     `bench/xet`) and once through LFS (`bench/lfs`), each run with new random bytes
//!     (and a fresh `HF_HOME`) so every upload is a real one and nothing dedups against
//!     the other path; the sha256 of every download is checked. For each phase: the
//!     client's MB/s and seconds (timed inside Python around the call, so interpreter
//!     start-up is not counted), Airlock's CPU seconds per GiB (utime + stime of the
//!     server from `/proc/<pid>/stat`), the client's own CPU seconds per GiB, and the
//!     requests Airlock logged, which show the path really taken (a Xet upload that fell
//!     back to LFS, or a download that fell back to `resolve`, fails the bench).
//!     Median of `AIRLOCK_BENCH_RUNS` (default 3; each run moves 4 GiB, single runs vary
//!     by about 30 % on two cores).
//! (2) stored bytes for `AIRLOCK_BENCH_REVISIONS` (default 5) revisions of a
//!     `AIRLOCK_BENCH_REV_SIZE` (default 200 MiB) file, each changing
//!     `AIRLOCK_BENCH_CHANGE_PERCENT` (default 1) % of the previous one in four runs at
//!     deterministic offsets, uploaded through Xet to `bench/revs` (one `HF_HOME`, as one
//!     user's machine) against N full copies, and the same revisions through LFS to
//!     `bench/revs-lfs` for reference. The last revision of each is downloaded and checked.
//!
//! Speeds and ratios are reported, never fatal; wrong bytes, or a path not taken, are.
//! The other processes' share of the machine's CPU during each phase is printed too (on a
//! small machine a concurrent build skews the speeds). Needs the virtualenv in
//! `AIRLOCK_TEST_VENV` (default `target/test-venv`), which `bash tests/run-all.sh` makes.
//! Everything runs on 127.0.0.1 and is stopped when the bench ends; the temporary
//! directory is removed.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{
    clock_ticks_per_second, count_from_env, machine_busy_ticks, median, sha256_file, size_from_env,
    store_bytes, Guard, BIN,
};

/// Creates the repositories and authorizes every upload.
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789abcdef";
const GIB: f64 = (1u64 << 30) as f64;
/// Access lines are written once a response body is sent, just after the client has it.
const SETTLE: Duration = Duration::from_millis(300);

/// One script for every client step; the step and its arguments come in `BENCH_*`
/// variables, the result as one JSON line. Timed around the call itself.
const CLIENT: &str = r#"
import json, os, time
from importlib.metadata import version
import huggingface_hub
from huggingface_hub import HfApi, hf_hub_download
op = os.environ["BENCH_OP"]
xet = not os.environ.get("HF_HUB_DISABLE_XET")
if xet:
    import hf_xet  # imported here, not inside the timed call
out = {}
if op == "versions":
    out = {"huggingface_hub": huggingface_hub.__version__, "hf_xet": version("hf_xet")}
elif op == "create":
    api = HfApi()
    for repo in os.environ["BENCH_REPOS"].split(","):
        api.create_repo(repo, exist_ok=True)
elif op == "upload":
    api = HfApi()
    c0, t0 = time.process_time(), time.perf_counter()
    info = api.upload_file(path_or_fileobj=os.environ["BENCH_FILE"],
                           path_in_repo=os.environ["BENCH_NAME"], repo_id=os.environ["BENCH_REPO"])
    t1, c1 = time.perf_counter(), time.process_time()
    out = {"seconds": t1 - t0, "cpu": c1 - c0, "commit": info.oid}
elif op == "download":
    c0, t0 = time.process_time(), time.perf_counter()
    path = hf_hub_download(os.environ["BENCH_REPO"], os.environ["BENCH_NAME"],
                           cache_dir=os.environ["BENCH_CACHE"])
    t1, c1 = time.perf_counter(), time.process_time()
    out = {"seconds": t1 - t0, "cpu": c1 - c0, "path": os.path.realpath(path)}
else:
    raise SystemExit("unknown BENCH_OP " + op)
print("BENCH-RESULT " + json.dumps(out), flush=True)
"#;

// ---------------------------------------------------------------------------------------
// Knobs

fn percent_from_env() -> f64 {
    std::env::var("AIRLOCK_BENCH_CHANGE_PERCENT")
        .ok()
        .and_then(|p| p.parse::<f64>().ok())
        .filter(|p| *p > 0.0 && *p <= 100.0)
        .unwrap_or(1.0)
}

/// `AIRLOCK_TEST_VENV`, else `target/test-venv`, as `tests/run-all.sh` makes it.
fn venv() -> PathBuf {
    let venv = std::env::var_os("AIRLOCK_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv"));
    assert!(
        venv.join("bin/python").exists(),
        "no Python client at {}: run `bash tests/run-all.sh` once, which installs \
         huggingface_hub and hf_xet into that virtualenv (or set AIRLOCK_TEST_VENV)",
        venv.display()
    );
    venv
}

// ---------------------------------------------------------------------------------------
// Airlock and what it logs

/// Requests and response bytes per route label, from Airlock's access log.
type Routes = BTreeMap<String, (u64, u64)>;

struct Server {
    _guard: Guard,
    pid: u32,
    base: String,
    routes: Arc<Mutex<Routes>>,
    /// Everything but access lines (warnings, errors), for a failure message.
    other: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn routes(&self) -> Routes {
        self.routes.lock().unwrap().clone()
    }

    fn log_tail(&self) -> String {
        let other = self.other.lock().unwrap();
        other[other.len().saturating_sub(40)..].join("\n")
    }
}

/// The value of `key=` in a text-format log line (quoted values unquoted).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[at..];
    if let Some(quoted) = rest.strip_prefix('"') {
        return quoted.split('"').next();
    }
    rest.split_whitespace().next()
}

/// `airlock serve` on loopback with the access log on; no inherited `AIRLOCK_*` settings.
fn serve(dir: &Path, store: &Path) -> Server {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("AIRLOCK_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .current_dir(dir)
        .args(["--store", store.to_str().unwrap()])
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-token",
            ADMIN_TOKEN,
        ])
        .env(
            "AIRLOCK_LOG",
            "warn,airlock::server=info,airlock::access=info",
        )
        .env("AIRLOCK_LOG_FORMAT", "text")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let guard = Guard(child);
    let marker = "listening on ";
    let base = loop {
        let line = lines.next().expect("airlock exited").unwrap();
        if let Some(i) = line.find(marker) {
            break line[i + marker.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || ":/.".contains(*c))
                .collect::<String>();
        }
    };
    let routes = Arc::new(Mutex::new(Routes::new()));
    let other = Arc::new(Mutex::new(Vec::new()));
    let (routes_in, other_in) = (routes.clone(), other.clone());
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            match field(&line, "route") {
                Some(route) => {
                    let bytes = field(&line, "bytes").and_then(|b| b.parse().ok());
                    // A request no route took is named by what it asked for, hashes elided.
                    let key = if route == "unmatched" {
                        let path = field(&line, "path").unwrap_or("?");
                        let path: Vec<&str> = path
                            .split('/')
                            .map(|s| {
                                if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
                                    "{hash}"
                                } else {
                                    s
                                }
                            })
                            .collect();
                        format!(
                            "unmatched {} {} {}",
                            field(&line, "method").unwrap_or("?"),
                            path.join("/"),
                            field(&line, "status").unwrap_or("?")
                        )
                    } else {
                        route.to_string()
                    };
                    let mut routes = routes_in.lock().unwrap();
                    let entry = routes.entry(key).or_default();
                    entry.0 += 1;
                    entry.1 += bytes.unwrap_or(0);
                }
                None => other_in.lock().unwrap().push(line),
            }
        }
    });
    Server {
        _guard: guard,
        pid,
        base,
        routes,
        other,
    }
}

/// What the routes logged between two snapshots.
fn routes_since(before: &Routes, after: &Routes) -> Routes {
    after
        .iter()
        .map(|(route, (n, bytes))| {
            let (n0, b0) = before.get(route).copied().unwrap_or_default();
            (route.clone(), (n - n0, bytes - b0))
        })
        .filter(|(_, (n, _))| *n > 0)
        .collect()
}

fn requests(routes: &Routes, route: &str) -> u64 {
    routes.get(route).map_or(0, |r| r.0)
}

fn sent_bytes(routes: &Routes, route: &str) -> u64 {
    routes.get(route).map_or(0, |r| r.1)
}

fn routes_line(routes: &Routes) -> String {
    routes
        .iter()
        .map(|(route, (n, bytes))| {
            if *bytes >= 1 << 20 {
                format!(
                    "{route} x{n} ({:.0} MiB sent)",
                    *bytes as f64 / (1u64 << 20) as f64
                )
            } else {
                format!("{route} x{n}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------
// /proc

/// utime + stime (fields 14 and 15 of /proc/<pid>/stat), in clock ticks; with
/// `children`, also cutime + cstime (16 and 17: children already waited for).
fn cpu_ticks(pid: u32, children: bool) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name (field 2) is in parentheses and may hold spaces.
    let fields: Vec<u64> = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // The vector starts at field 3.
    let last = if children { 14 } else { 12 };
    fields[11..=last].iter().sum()
}

/// CPU counters around one client step: Airlock's, this bench's with its waited-for
/// children (the Python clients), and the machine's.
struct Cpu {
    airlock: u64,
    ours: u64,
    machine: u64,
    at: Instant,
}

impl Cpu {
    fn now(airlock: u32) -> Cpu {
        Cpu {
            airlock: cpu_ticks(airlock, false),
            ours: cpu_ticks(std::process::id(), true),
            machine: machine_busy_ticks(),
            at: Instant::now(),
        }
    }

    /// Airlock's CPU seconds since `self`, and the share of the machine's capacity that
    /// other processes used meanwhile.
    fn since(&self, airlock: u32) -> (f64, f64) {
        let now = Cpu::now(airlock);
        let hz = clock_ticks_per_second();
        let server = now.airlock - self.airlock;
        let ours = now.ours - self.ours;
        let foreign = (now.machine - self.machine).saturating_sub(server + ours);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let capacity = now.at.duration_since(self.at).as_secs_f64() * hz * cores;
        (
            server as f64 / hz,
            (foreign as f64 / capacity).clamp(0.0, 1.0),
        )
    }
}

// ---------------------------------------------------------------------------------------
// The client

#[derive(Clone, Copy, PartialEq)]
enum Via {
    Xet,
    Lfs,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::Xet => "Xet",
            Via::Lfs => "LFS",
        }
    }
}

/// The virtualenv's Python pointed at Airlock with `home` as its private HF_HOME, as the
/// tests run it (no Hub settings inherited), with or without Xet.
fn python(venv: &Path, base: &str, home: &Path, via: Via) -> Command {
    let mut cmd = Command::new(venv.join("bin/python"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HF_") || k.starts_with("HUGGING") || k == "TRANSFORMERS_OFFLINE" {
            cmd.env_remove(k);
        }
    }
    cmd.env("HF_ENDPOINT", base)
        .env("HF_HOME", home)
        .env("HF_TOKEN", ADMIN_TOKEN)
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_UPDATE_CHECK", "1")
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONUNBUFFERED", "1")
        .arg("-c")
        .arg(CLIENT);
    if via == Via::Lfs {
        cmd.env("HF_HUB_DISABLE_XET", "1");
    }
    cmd
}

/// Runs one client step; its JSON result and the wall time of the whole process.
fn client(mut cmd: Command, server: &Server) -> (Value, f64) {
    let started = Instant::now();
    let out = cmd.output().unwrap();
    let wall = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client step failed ({:?}):\n{stdout}{}\nairlock log:\n{}",
        cmd.get_envs()
            .filter(|(k, _)| k.to_str().is_some_and(|k| k.starts_with("BENCH_")))
            .collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr),
        server.log_tail()
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCH-RESULT "))
        .unwrap_or_else(|| panic!("no result from the client:\n{stdout}"));
    (serde_json::from_str(line).unwrap(), wall)
}

/// One measured client step.
struct Phase {
    seconds: f64,
    wall: f64,
    client_cpu: f64,
    airlock_cpu: f64,
    foreign: f64,
    routes: Routes,
    result: Value,
}

fn measured(cmd: Command, server: &Server) -> Phase {
    let routes = server.routes();
    let cpu = Cpu::now(server.pid);
    let (result, wall) = client(cmd, server);
    std::thread::sleep(SETTLE);
    let (airlock_cpu, foreign) = cpu.since(server.pid);
    Phase {
        seconds: result["seconds"].as_f64().unwrap(),
        wall,
        client_cpu: result["cpu"].as_f64().unwrap(),
        airlock_cpu,
        foreign,
        routes: routes_since(&routes, &server.routes()),
        result,
    }
}

fn upload(env: &Env, via: Via, home: &Path, repo: &str, name: &str, file: &Path) -> Phase {
    let mut cmd = python(&env.venv, &env.server.base, home, via);
    cmd.env("BENCH_OP", "upload")
        .env("BENCH_REPO", repo)
        .env("BENCH_NAME", name)
        .env("BENCH_FILE", file);
    let phase = measured(cmd, &env.server);
    let r = &phase.routes;
    match via {
        Via::Xet => assert!(
            requests(r, "xet.xorb.upload") > 0
                && requests(r, "xet.shard") > 0
                && requests(r, "hf.lfs_upload") == 0,
            "the Xet upload of {repo}/{name} did not go through Xet: {}",
            routes_line(r)
        ),
        Via::Lfs => assert!(
            requests(r, "hf.lfs_upload") > 0 && !r.keys().any(|k| k.starts_with("xet.")),
            "the LFS upload of {repo}/{name} did not go through LFS: {}",
            routes_line(r)
        ),
    }
    phase
}

/// Downloads `repo`'s `name` into a fresh cache and checks it is `sha` and `size` long.
fn download(env: &Env, via: Via, repo: &str, name: &str, sha: &str, size: u64) -> Phase {
    let home = tempfile::tempdir_in(&env.dir).unwrap();
    let mut cmd = python(&env.venv, &env.server.base, home.path(), via);
    cmd.env("BENCH_OP", "download")
        .env("BENCH_REPO", repo)
        .env("BENCH_NAME", name)
        .env("BENCH_CACHE", home.path().join("cache"));
    let phase = measured(cmd, &env.server);
    let path = PathBuf::from(phase.result["path"].as_str().unwrap());
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        size,
        "{repo}/{name} via {}: size",
        via.name()
    );
    assert_eq!(
        sha256_file(&path),
        sha,
        "{repo}/{name} via {}: the downloaded bytes differ from the uploaded ones",
        via.name()
    );
    let r = &phase.routes;
    match via {
        Via::Xet => assert!(
            requests(r, "xet.reconstruction") > 0
                && sent_bytes(r, "xet.fetch") > 0
                && sent_bytes(r, "hf.resolve.get") < size / 100,
            "the Xet download of {repo}/{name} did not go through Xet: {}",
            routes_line(r)
        ),
        Via::Lfs => assert!(
            sent_bytes(r, "hf.resolve.get") >= size && !r.keys().any(|k| k.starts_with("xet.")),
            "the LFS download of {repo}/{name} was not a plain resolve: {}",
            routes_line(r)
        ),
    }
    phase
}

struct Env {
    dir: PathBuf,
    venv: PathBuf,
    server: Server,
}

// ---------------------------------------------------------------------------------------
// Bytes

/// xorshift64: deterministic bytes that do not compress.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for word in buf.chunks_mut(8) {
            let x = self.next();
            word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
        }
    }
}

/// `size` bytes from `seed`: another seed, other bytes.
fn write_random(path: &Path, size: u64, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut left = size;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        rng.fill(&mut buf);
        let n = left.min(buf.len() as u64) as usize;
        out.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    out.flush().unwrap();
}

/// Overwrites `percent` % of the file in four runs of new bytes, one in each quarter at
/// an offset drawn from `seed`; the bytes changed.
fn change(path: &Path, size: u64, percent: f64, seed: u64) -> u64 {
    let run = ((size as f64 * percent / 100.0 / 4.0) as u64).max(1);
    let quarter = size / 4;
    let mut rng = Rng::new(seed);
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let mut buf = vec![0u8; run as usize];
    for k in 0..4 {
        let at = k * quarter + rng.next() % (quarter - run.min(quarter) + 1);
        rng.fill(&mut buf);
        file.seek(SeekFrom::Start(at)).unwrap();
        file.write_all(&buf).unwrap();
    }
    file.sync_all().unwrap();
    run * 4
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

// ---------------------------------------------------------------------------------------

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("xet_transfer: run with `cargo bench --bench xet_transfer`");
        return;
    }
    let size = size_from_env("AIRLOCK_BENCH_SIZE", 1 << 30);
    let runs = count_from_env("AIRLOCK_BENCH_RUNS", 3, 20);
    let rev_size = size_from_env("AIRLOCK_BENCH_REV_SIZE", 200 << 20);
    let revisions = count_from_env("AIRLOCK_BENCH_REVISIONS", 5, 100);
    let percent = percent_from_env();
    let venv = venv();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let store = dir.join("store");
    let server = serve(&dir, &store);
    let env = Env { dir, venv, server };
    let dir = &env.dir;

    let setup = |op: &str| {
        let home = dir.join("home-setup");
        let mut cmd = python(&env.venv, &env.server.base, &home, Via::Xet);
        cmd.env("BENCH_OP", op).env(
            "BENCH_REPOS",
            "bench/xet,bench/lfs,bench/revs,bench/revs-lfs",
        );
        client(cmd, &env.server).0
    };
    let versions = setup("versions");
    setup("create");
    let hz = clock_ticks_per_second();
    println!(
        "xet_transfer: huggingface_hub {} + hf_xet {}, Airlock on {} (filesystem store), {} cores, {hz} clock ticks/s",
        versions["huggingface_hub"].as_str().unwrap(),
        versions["hf_xet"].as_str().unwrap(),
        env.server.base,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );

    // (1) Upload and download throughput, Xet and LFS side by side, run by run.
    let gib = size as f64 / GIB;
    let mut phases: BTreeMap<(&str, &str), Vec<Phase>> = BTreeMap::new();
    for run in 0..runs {
        // Alternate which path goes first, run by run.
        let order = if run % 2 == 0 {
            [Via::Xet, Via::Lfs]
        } else {
            [Via::Lfs, Via::Xet]
        };
        for via in order {
            let (repo, seed) = match via {
                Via::Xet => ("bench/xet", 1000 + run as u64),
                Via::Lfs => ("bench/lfs", 2000 + run as u64),
            };
            let name = format!("run-{run}.bin");
            let file = dir.join(&name);
            write_random(&file, size, seed);
            let sha = sha256_file(&file);
            let home = tempfile::tempdir_in(dir).unwrap();
            let up = upload(&env, via, home.path(), repo, &name, &file);
            drop(home);
            std::fs::remove_file(&file).unwrap();
            let down = download(&env, via, repo, &name, &sha, size);
            for (what, phase) in [("upload", up), ("download", down)] {
                println!(
                    "  run {}: {} {what:<8} {:>7.0} MB/s ({:.2} s in the call, {:.2} s with start-up), \
                     Airlock {:.2} CPU s/GiB, client {:.2} CPU s/GiB, others {:.0} % of the CPU; {}",
                    run + 1,
                    via.name(),
                    size as f64 / 1e6 / phase.seconds,
                    phase.seconds,
                    phase.wall,
                    phase.airlock_cpu / gib,
                    phase.client_cpu / gib,
                    phase.foreign * 100.0,
                    routes_line(&phase.routes)
                );
                phases.entry((via.name(), what)).or_default().push(phase);
            }
        }
    }

    // (2) Stored bytes for N revisions, Xet and then LFS.
    let mut rev_tables = Vec::new();
    // Other bytes for each path: the LFS batch API takes a file whose sha256 the store
    // already holds (from the Xet uploads) without an upload.
    for (via, repo, seed) in [
        (Via::Xet, "bench/revs", 3000),
        (Via::Lfs, "bench/revs-lfs", 5000),
    ] {
        let file = dir.join(format!("revs-{}.bin", via.name()));
        let home = dir.join(format!("home-revs-{}", via.name()));
        write_random(&file, rev_size, seed);
        let start = store_bytes(&store);
        let mut previous = start;
        let mut rows = Vec::new();
        for revision in 1..=revisions {
            let changed = if revision == 1 {
                rev_size
            } else {
                change(&file, rev_size, percent, seed + 1000 + revision as u64)
            };
            let phase = upload(&env, via, &home, repo, "model.safetensors", &file);
            let now = store_bytes(&store);
            rows.push((revision, changed, now - previous, now - start, phase));
            previous = now;
        }
        let sha = sha256_file(&file);
        let check = download(&env, via, repo, "model.safetensors", &sha, rev_size);
        drop(check);
        std::fs::remove_file(&file).unwrap();
        rev_tables.push((via, repo, rows));
    }

    // The report.
    let m = |via: &str, what: &str, f: &dyn Fn(&Phase) -> f64| {
        median(phases[&(via, what)].iter().map(f).collect())
    };
    println!(
        "\n(1) {} MiB file, huggingface_hub upload_file / hf_hub_download (fresh cache), \
         median of {runs} run(s); MB/s = 10^6 B/s timed inside Python around the call",
        size >> 20
    );
    println!(
        "  {:<14} {:>9} {:>9} {:>11} {:>14} {:>14} {:>8}",
        "phase", "MB/s", "call s", "process s", "Airlock CPU", "client CPU", "others"
    );
    println!(
        "  {:<14} {:>9} {:>9} {:>11} {:>14} {:>14} {:>8}",
        "", "", "", "", "s/GiB", "s/GiB", "CPU %"
    );
    for what in ["upload", "download"] {
        for via in ["Xet", "LFS"] {
            println!(
                "  {:<14} {:>9.0} {:>9.2} {:>11.2} {:>14.2} {:>14.2} {:>8.0}",
                format!("{via} {what}"),
                m(via, what, &|p| size as f64 / 1e6 / p.seconds),
                m(via, what, &|p| p.seconds),
                m(via, what, &|p| p.wall),
                m(via, what, &|p| p.airlock_cpu / gib),
                m(via, what, &|p| p.client_cpu / gib),
                m(via, what, &|p| p.foreign * 100.0),
            );
        }
    }
    for what in ["upload", "download"] {
        let speed = m("Xet", what, &|p| p.seconds.recip()) / m("LFS", what, &|p| p.seconds.recip());
        let cpu = m("Xet", what, &|p| p.airlock_cpu) / m("LFS", what, &|p| p.airlock_cpu);
        println!("  Xet vs LFS {what:<8}: {speed:.2}x the speed, {cpu:.2}x Airlock's CPU per byte");
    }
    for what in ["upload", "download"] {
        for via in ["Xet", "LFS"] {
            let last = phases[&(via, what)].last().unwrap();
            println!("  requests, {via} {what}: {}", routes_line(&last.routes));
        }
    }

    println!(
        "\n(2) {revisions} revisions of a {} MiB file, each changing {percent} % of the previous \
         one in 4 runs; store bytes against {revisions} full copies",
        rev_size >> 20
    );
    let mut totals = Vec::new();
    for (via, repo, rows) in &rev_tables {
        println!("  {} ({repo}):", via.name());
        println!(
            "    {:>3} {:>12} {:>14} {:>9} {:>15} {:>15} {:>7} {:>8}",
            "rev",
            "changed B",
            "store added B",
            "% of file",
            "cumulative B",
            "N copies B",
            "ratio",
            "upload s"
        );
        for (revision, changed, added, cumulative, phase) in rows {
            let copies = *revision as u64 * rev_size;
            println!(
                "    {:>3} {:>12} {:>14} {:>8.2}% {:>15} {:>15} {:>7.3} {:>8.2}",
                revision,
                changed,
                added,
                100.0 * *added as f64 / rev_size as f64,
                cumulative,
                copies,
                *cumulative as f64 / copies as f64,
                phase.seconds
            );
        }
        let later: Vec<f64> = rows
            .iter()
            .skip(1)
            .map(|r| 100.0 * r.2 as f64 / rev_size as f64)
            .collect();
        if !later.is_empty() {
            println!(
                "    revisions 2..{revisions}: median {:.2} % of the file added each ({percent} % changed)",
                median(later)
            );
        }
        totals.push(rows.last().map_or(0, |r| r.3));
    }
    if let [xet, lfs] = totals[..] {
        println!(
            "  after {revisions} revisions: Xet stores {:.1} MiB, LFS {:.1} MiB ({:.3}x), {revisions} full copies {:.1} MiB",
            mib(xet),
            mib(lfs),
            xet as f64 / lfs as f64,
            mib(revisions as u64 * rev_size)
        );
    }
}
