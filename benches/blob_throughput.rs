//! Blob download throughput and memory: Airlock against the reference servers it must keep
//! up with, measured in one run on loopback.
//!
//! ```text
//! cargo bench --bench blob_throughput
//! AIRLOCK_BENCH_SIZE=64MiB AIRLOCK_BENCH_SKIP_S3=1 cargo bench --bench blob_throughput
//! ```
//!
//! (a) a blob read through `GET /_airlock/blobs/sha256:<hex>` from the filesystem store
//!     vs. the same file served by nginx (`sendfile on`), 1 and 8 concurrent streams;
//! (b) the same blob through Airlock's S3 store vs. a direct, presigned GET of the same
//!     object from Garage, 1 and 8 concurrent streams, proxied by Airlock and with
//!     `--s3-redirect-downloads` (a 307 to a presigned URL, which the client follows);
//! (c) peak RSS of each Airlock process (VmHWM, and VmRSS sampled every few ms) while it
//!     serves (a) or (b), and of a fresh process serving a blob a quarter of the size, to
//!     show memory does not follow the blob size.
//!
//! One HTTP client (reqwest on hyper, HTTP/1.1, one connection per stream) does every
//! download the same way: bytes are counted and dropped, and the full length must arrive.
//! Each figure is the median of `AIRLOCK_BENCH_RUNS` runs (default 3), targets alternating
//! run by run; each part starts with one unmeasured download per target to warm the page
//! cache and the connection pool. Missed targets are reported, never fatal.
//!
//! Knobs: `AIRLOCK_BENCH_SIZE` (default `1GiB`; `64MiB`, `512MB`, plain bytes),
//! `AIRLOCK_BENCH_RUNS` (1..=20), `AIRLOCK_BENCH_SKIP_S3=1`, `AIRLOCK_BENCH_SKIP_FS=1`, `AIRLOCK_BENCH_BIN` (another
//! `airlock` binary to measure, e.g. a build with a proposed change). Needs `nginx` for the
//! reference of (a) and `garage` on PATH for (b); a missing one is reported and its part
//! skipped. Everything started here runs on 127.0.0.1, is killed when the bench ends (Drop
//! guards, and a parent-death signal should the bench itself be killed), and every
//! temporary directory is removed.
//!
//! `cargo test --all-targets` runs bench binaries without `--bench`: then this only says
//! how to run it and exits.

use airlock::digest::Algorithm;
use airlock::store::layout::blob_key;
use airlock::store::{BlobMeta, BlobStore, FsStore, S3Store};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "../tests/support/garage.rs"]
mod garage;
mod support;

use support::{clock_ticks_per_second, machine_busy_ticks};

const AIRLOCK: &str = env!("CARGO_BIN_EXE_airlock");

/// The Airlock binary to measure: `AIRLOCK_BENCH_BIN` (to compare another build), else
/// the one Cargo built for this bench.
fn airlock_bin() -> String {
    std::env::var("AIRLOCK_BENCH_BIN").unwrap_or_else(|_| AIRLOCK.to_string())
}
const CONCURRENT: usize = 8;
const TARGET_RATIO: f64 = 0.9;
const RSS_LIMIT_MIB: f64 = 100.0;
/// Peak RSS serving the full-size blob may exceed the quarter-size peak by this much
/// before it counts as growing with the blob (a leak would show as hundreds of MiB).
const RSS_GROWTH_TOLERANCE_MIB: f64 = 16.0;
/// Generous: a 1 GiB download at 100 MB/s, eight at once, takes 80 s.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
const START_TIMEOUT: Duration = Duration::from_secs(60);
const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(5);
/// Above this share of the machine's CPU used by other processes, a figure is flagged noisy.
const BUSY_SHARE: f64 = 0.10;
const MB: f64 = 1e6;
const MIB: f64 = (1u64 << 20) as f64;
const GIB: f64 = (1u64 << 30) as f64;

fn main() -> ExitCode {
    if !std::env::args().skip(1).any(|a| a == "--bench") {
        println!("blob_throughput: run it with `cargo bench --bench blob_throughput` (nothing to do in test mode)");
        return ExitCode::SUCCESS;
    }
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("blob_throughput: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    // Children are spawned from this (main) thread inside block_on, so their
    // parent-death signal fires only when the bench process itself goes away.
    let mut report = Report {
        load_before: load_average(),
        ..Default::default()
    };
    let machine_before = machine_busy_ticks();
    let own_before = own_ticks_with_children();
    let started = Instant::now();
    if let Err(e) = runtime.block_on(run(&settings, &mut report)) {
        report.errors.push(format!("{e:#}"));
    }
    // Every child has been waited for by now, so its CPU time is in our children's times.
    report.foreign_share = foreign_share(
        machine_busy_ticks().saturating_sub(machine_before),
        own_ticks_with_children().saturating_sub(own_before),
        started.elapsed(),
    );
    report.print(&settings);
    ExitCode::SUCCESS
}

// ---------------------------------------------------------------------------------------
// Settings

struct Settings {
    size: u64,
    small: u64,
    runs: usize,
    skip_fs: bool,
    skip_s3: bool,
}

impl Settings {
    fn from_env() -> Result<Settings> {
        let size = match std::env::var("AIRLOCK_BENCH_SIZE") {
            Ok(s) => parse_size(&s)
                .filter(|n| *n >= 4)
                .ok_or_else(|| anyhow!("AIRLOCK_BENCH_SIZE={s:?}: give a size such as 1GiB, 64MiB, 512MB or a byte count (at least 4)"))?,
            Err(_) => 1 << 30,
        };
        let runs = match std::env::var("AIRLOCK_BENCH_RUNS") {
            Ok(s) => s
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=20).contains(n))
                .ok_or_else(|| anyhow!("AIRLOCK_BENCH_RUNS={s:?}: give a number from 1 to 20"))?,
            Err(_) => 3,
        };
        let flag = |name: &str| {
            std::env::var(name).is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false" | "no"))
        };
        Ok(Settings {
            size,
            small: size / 4,
            runs,
            skip_fs: flag("AIRLOCK_BENCH_SKIP_FS"),
            skip_s3: flag("AIRLOCK_BENCH_SKIP_S3"),
        })
    }
}

/// `1GiB`, `64MiB`, `512MB`, `1.5G`, `1048576`.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number.parse().ok()?;
    let unit: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "kb" => 1e3,
        "m" | "mib" => MIB,
        "mb" => 1e6,
        "g" | "gib" => GIB,
        "gb" => 1e9,
        _ => return None,
    };
    Some((number * unit) as u64)
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= GIB {
        format!("{:.2} GiB", b / GIB)
    } else if b >= MIB {
        format!("{:.1} MiB", b / MIB)
    } else {
        format!("{bytes} B")
    }
}

// ---------------------------------------------------------------------------------------
// The run

struct Blob {
    meta: BlobMeta,
    /// Path of the blob file inside the filesystem store, relative to the store root.
    key: String,
}

impl Blob {
    fn admin_path(&self) -> String {
        format!("/_airlock/blobs/{}", self.meta.digest)
    }
}

async fn run(settings: &Settings, report: &mut Report) -> Result<()> {
    // Declared first, dropped last: every process below is gone before it is removed.
    garage::sweep_dead_dirs(WORK_PREFIX);
    let work = tempfile::Builder::new()
        .prefix(&format!("{WORK_PREFIX}{}-", std::process::id()))
        .tempdir()
        .context("creating the work directory")?;
    let store_dir = work.path().join("store");
    let token = hex::encode(rand::random::<[u8; 16]>());
    let client = http_client()?;

    eprintln!(
        "blob_throughput: generating {} and {} of random data in {}",
        human(settings.size),
        human(settings.small),
        work.path().display()
    );
    let fs_blobs = BlobStore::new(Arc::new(FsStore::open(&store_dir).await?), 16);
    let mut blobs = Vec::new();
    for (i, size) in [settings.size, settings.small].into_iter().enumerate() {
        let source = work.path().join(format!("source-{i}.bin"));
        write_random(
            &source,
            size,
            0x5eed_0000 + i as u64 + rand::random::<u32>() as u64,
        )?;
        let meta = fs_blobs
            .put_file(&source, Algorithm::Sha256)
            .await
            .context("importing the blob into the filesystem store")?;
        std::fs::remove_file(&source)?;
        let key = blob_key(&meta.digest).as_str().to_string();
        blobs.push(Blob { meta, key });
    }
    let small = blobs.pop().unwrap();
    let big = blobs.pop().unwrap();
    anyhow::ensure!(big.meta.size == settings.size && small.meta.size == settings.small);

    let ctx = Ctx {
        settings,
        client: &client,
        token: &token,
        work: work.path(),
        store_dir: &store_dir,
        big: &big,
        small: &small,
    };
    if settings.skip_fs {
        report
            .notes
            .push("filesystem part skipped: AIRLOCK_BENCH_SKIP_FS is set".into());
    } else {
        eprintln!("blob_throughput: (a) filesystem store vs nginx");
        if let Err(e) = fs_part(&ctx, report).await {
            report.errors.push(format!("filesystem part failed: {e:#}"));
        }
    }
    if settings.skip_s3 {
        report
            .notes
            .push("S3 part skipped: AIRLOCK_BENCH_SKIP_S3 is set".into());
    } else if !on_path("garage") {
        report.notes.push(
            "S3 part SKIPPED: no `garage` binary on PATH (install it with `cargo install garage --locked`)"
                .into(),
        );
    } else {
        eprintln!("blob_throughput: (b) S3 store on Garage vs direct presigned GET");
        if let Err(e) = s3_part(&ctx, report).await {
            report.errors.push(format!("S3 part failed: {e:#}"));
        }
    }
    drop(work);
    Ok(())
}

const WORK_PREFIX: &str = "airlock-bench-";

struct Ctx<'a> {
    settings: &'a Settings,
    client: &'a reqwest::Client,
    token: &'a str,
    work: &'a Path,
    store_dir: &'a Path,
    big: &'a Blob,
    small: &'a Blob,
}

async fn fs_part(ctx: &Ctx<'_>, report: &mut Report) -> Result<()> {
    let store = ctx.store_dir.display().to_string();
    let args = ["--store", store.as_str(), "--admin-token", ctx.token];

    // Peak RSS serving the quarter-size blob, from a process of its own.
    {
        let airlock = Airlock::start("fs-small", &args, &[])?;
        let target = Target::airlock("airlock fs", &airlock, ctx.small, ctx.token);
        report
            .rss
            .push(rss_probe(ctx, &airlock, &target, ctx.small.meta.size, "fs").await?);
    }

    let nginx = if !Path::new(NGINX).is_file() && !on_path("nginx") {
        report.notes.push(format!(
            "nginx reference SKIPPED: no nginx at {NGINX} or on PATH (apt-get install nginx); Airlock alone is measured"
        ));
        None
    } else {
        let dir = ctx.work.join("nginx");
        match Nginx::start(&dir, ctx.store_dir) {
            Ok(n) => Some(n),
            Err(e) => {
                report
                    .notes
                    .push(format!("nginx reference SKIPPED: it did not start: {e:#}"));
                None
            }
        }
    };

    let airlock = Airlock::start("fs", &args, &[])?;
    let idle = status_kib(airlock.pid(), "VmRSS").unwrap_or(0);
    let sampler = RssSampler::start(airlock.pid());
    let ours = Target::airlock("airlock (fs store)", &airlock, ctx.big, ctx.token);
    let reference = nginx.as_ref().map(|n| Target {
        name: "nginx (sendfile)".into(),
        url: format!("http://127.0.0.1:{}/{}", n.port, ctx.big.key),
        bearer: None,
        server_pids: n.pids(),
        upstream_pids: Vec::new(),
    });
    let size = ctx.big.meta.size;
    warm_up(ctx.client, &ours, reference.as_ref(), size).await?;
    for streams in [1, CONCURRENT] {
        let c = compare(ctx, "fs", &ours, reference.as_ref(), streams, size).await;
        report.comparisons.push(c?);
    }
    report.rss.push(RssResult {
        store: "fs",
        blob_size: size,
        idle_kib: idle,
        hwm_kib: status_kib(airlock.pid(), "VmHWM").unwrap_or(0),
        sampled_kib: sampler.stop(),
    });
    Ok(())
}

async fn s3_part(ctx: &Ctx<'_>, report: &mut Report) -> Result<()> {
    let garage = std::panic::catch_unwind(garage::Garage::start)
        .map_err(|_| anyhow!("Garage did not start (see the panic message above)"))?;
    let prefix = format!("bench-{}", hex::encode(rand::random::<[u8; 6]>()));
    let s3 = S3Store::open(garage.bucket.clone(), prefix.clone(), &garage.settings())
        .await
        .context("opening the S3 store on Garage")?;
    let s3_blobs = BlobStore::new(Arc::new(s3), 16);
    for blob in [ctx.big, ctx.small] {
        eprintln!(
            "blob_throughput: uploading {} to Garage",
            human(blob.meta.size)
        );
        let uploaded = s3_blobs
            .put_file(&ctx.store_dir.join(&blob.key), Algorithm::Sha256)
            .await
            .context("uploading the blob to Garage")?;
        anyhow::ensure!(uploaded == blob.meta, "uploaded blob differs: {uploaded:?}");
    }
    let garage_pid = find_garage_pid(&garage.dir);
    if garage_pid.is_none() {
        report
            .notes
            .push("could not find Garage's pid: its CPU time is not counted".into());
    }

    let store = format!("s3://{}/{prefix}", garage.bucket);
    let args = [
        "--store",
        store.as_str(),
        "--s3-endpoint",
        garage.endpoint.as_str(),
        "--s3-region",
        garage.region.as_str(),
        "--admin-token",
        ctx.token,
    ];
    let envs = [
        ("AWS_ACCESS_KEY_ID", garage.key_id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", garage.secret.as_str()),
        ("AWS_REGION", garage.region.as_str()),
    ];
    {
        let airlock = Airlock::start("s3-small", &args, &envs)?;
        let target = Target::airlock("airlock s3", &airlock, ctx.small, ctx.token);
        report
            .rss
            .push(rss_probe(ctx, &airlock, &target, ctx.small.meta.size, "S3").await?);
    }

    let airlock = Airlock::start("s3", &args, &envs)?;
    let idle = status_kib(airlock.pid(), "VmRSS").unwrap_or(0);
    let sampler = RssSampler::start(airlock.pid());
    let ours = Target {
        upstream_pids: garage_pid.into_iter().collect(),
        ..Target::airlock("airlock (S3 store)", &airlock, ctx.big, ctx.token)
    };
    let reference = Target {
        name: "garage (direct, presigned)".into(),
        url: presigned_get(&garage, &format!("{prefix}/{}", ctx.big.key)).await?,
        bearer: None,
        server_pids: garage_pid.into_iter().collect(),
        upstream_pids: Vec::new(),
    };
    let size = ctx.big.meta.size;
    warm_up(ctx.client, &ours, Some(&reference), size).await?;
    for streams in [1, CONCURRENT] {
        let c = compare(ctx, "S3", &ours, Some(&reference), streams, size).await;
        report.comparisons.push(c?);
    }
    report.rss.push(RssResult {
        store: "S3",
        blob_size: size,
        idle_kib: idle,
        hwm_kib: status_kib(airlock.pid(), "VmHWM").unwrap_or(0),
        sampled_kib: sampler.stop(),
    });
    drop(airlock);

    // The same blob with `s3.redirect_downloads`: Airlock answers 307 to a presigned URL
    // and the client (which follows it, as pip, huggingface_hub and containerd do) reads
    // from Garage itself. Airlock's share is one small request per download.
    let mut redirect_args = args.to_vec();
    redirect_args.extend(["--s3-redirect-downloads", "true"]);
    let airlock = Airlock::start("s3-redirect", &redirect_args, &envs)?;
    let ours = Target {
        upstream_pids: garage_pid.into_iter().collect(),
        ..Target::airlock("airlock (S3, redirect)", &airlock, ctx.big, ctx.token)
    };
    warm_up(ctx.client, &ours, Some(&reference), size).await?;
    for streams in [1, CONCURRENT] {
        let c = compare(ctx, "S3 redirect", &ours, Some(&reference), streams, size).await;
        report.comparisons.push(c?);
    }
    drop(airlock);
    drop(garage);
    Ok(())
}

/// A presigned GET URL for `key`, so the bench's own HTTP client fetches it directly.
async fn presigned_get(garage: &garage::Garage, key: &str) -> Result<String> {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_s3::presigning::PresigningConfig;
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(garage.region.clone()))
        .endpoint_url(&garage.endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(
            &garage.key_id,
            &garage.secret,
            None,
            None,
            "airlock-bench",
        ))
        .build();
    let presigned = aws_sdk_s3::Client::from_conf(config)
        .get_object()
        .bucket(&garage.bucket)
        .key(key)
        .presigned(PresigningConfig::expires_in(Duration::from_secs(6 * 3600))?)
        .await
        .context("presigning the direct GET")?;
    Ok(presigned.uri().to_string())
}

// ---------------------------------------------------------------------------------------
// Downloads

#[derive(Clone)]
struct Target {
    name: String,
    url: String,
    bearer: Option<String>,
    /// The processes serving this target (CPU time, syscalls).
    server_pids: Vec<u32>,
    /// Processes the server itself reads from (Garage behind Airlock's S3 store).
    upstream_pids: Vec<u32>,
}

impl Target {
    fn airlock(name: &str, airlock: &Airlock, blob: &Blob, token: &str) -> Target {
        Target {
            name: name.into(),
            url: format!("{}{}", airlock.base, blob.admin_path()),
            bearer: Some(token.to_string()),
            server_pids: vec![airlock.pid()],
            upstream_pids: Vec::new(),
        }
    }
}

fn http_client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(2 * CONCURRENT)
        .timeout(REQUEST_TIMEOUT)
        .build()?)
}

/// One whole-blob GET: counts and drops the body, fails unless exactly `expected` bytes came.
async fn fetch(client: reqwest::Client, target: Arc<Target>, expected: u64) -> Result<()> {
    let mut request = client.get(&target.url);
    if let Some(token) = &target.bearer {
        request = request.bearer_auth(token);
    }
    let mut response = request
        .send()
        .await
        .with_context(|| format!("GET from {}", target.name))?;
    if response.status() != reqwest::StatusCode::OK {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        bail!("{} answered {status}: {}", target.name, text.trim());
    }
    let mut got = 0u64;
    while let Some(chunk) = response
        .chunk()
        .await
        .with_context(|| format!("reading the body from {} after {got} bytes", target.name))?
    {
        got += chunk.len() as u64;
    }
    anyhow::ensure!(
        got == expected,
        "{} sent {got} bytes, expected {expected}",
        target.name
    );
    Ok(())
}

/// `streams` concurrent whole-blob downloads; returns the wall time of all of them.
async fn transfer(
    client: &reqwest::Client,
    target: &Target,
    streams: usize,
    size: u64,
) -> Result<Duration> {
    let target = Arc::new(target.clone());
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..streams {
        set.spawn(fetch(client.clone(), target.clone(), size));
    }
    while let Some(done) = set.join_next().await {
        done.context("download task")??;
    }
    Ok(start.elapsed())
}

async fn warm_up(
    client: &reqwest::Client,
    ours: &Target,
    reference: Option<&Target>,
    size: u64,
) -> Result<()> {
    for target in std::iter::once(ours).chain(reference) {
        transfer(client, target, 1, size).await?;
    }
    Ok(())
}

#[derive(Default)]
struct Stats {
    name: String,
    /// MB/s (10^6 bytes per second), one per run.
    samples: Vec<f64>,
    server_ticks: u64,
    upstream_ticks: u64,
    client_ticks: u64,
    /// The server processes' write-side syscalls (write, writev, sendfile, ...).
    server_writes: u64,
    bytes: u64,
    /// CPU ticks of processes outside this measurement, and the time measured.
    foreign_ticks: u64,
    seconds: f64,
}

impl Stats {
    fn median(&self) -> f64 {
        let mut v = self.samples.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    fn best(&self) -> f64 {
        self.samples.iter().copied().fold(f64::NAN, f64::max)
    }

    fn worst(&self) -> f64 {
        self.samples.iter().copied().fold(f64::NAN, f64::min)
    }

    /// CPU seconds per GiB delivered.
    fn cpu_per_gib(&self, ticks: u64) -> f64 {
        ticks as f64 / clock_ticks_per_second() / (self.bytes as f64 / GIB)
    }

    /// Share of the machine's CPU that other processes took during these runs.
    fn foreign_share(&self) -> f64 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        (self.foreign_ticks as f64 / (self.seconds * clock_ticks_per_second() * cores))
            .clamp(0.0, 1.0)
    }

    /// KiB delivered per write-side syscall of the server.
    fn kib_per_write(&self) -> f64 {
        self.bytes as f64 / 1024.0 / self.server_writes.max(1) as f64
    }
}

struct Comparison {
    part: &'static str,
    streams: usize,
    ours: Stats,
    reference: Option<Stats>,
}

impl Comparison {
    fn ratio(&self) -> Option<f64> {
        self.reference
            .as_ref()
            .map(|r| self.ours.median() / r.median())
    }

    fn best_ratio(&self) -> Option<f64> {
        self.reference.as_ref().map(|r| self.ours.best() / r.best())
    }
}

async fn compare(
    ctx: &Ctx<'_>,
    part: &'static str,
    ours: &Target,
    reference: Option<&Target>,
    streams: usize,
    size: u64,
) -> Result<Comparison> {
    let mut targets: Vec<(&Target, Stats)> = std::iter::once(ours)
        .chain(reference)
        .map(|t| {
            let stats = Stats {
                name: t.name.clone(),
                ..Default::default()
            };
            (t, stats)
        })
        .collect();
    for run in 0..ctx.settings.runs {
        // Alternate which target goes first, so neither always follows the other.
        let order: Vec<usize> = if run % 2 == 0 {
            (0..targets.len()).collect()
        } else {
            (0..targets.len()).rev().collect()
        };
        for i in order {
            let (target, stats) = &mut targets[i];
            let server_before = cpu_ticks_of(&target.server_pids);
            let upstream_before = cpu_ticks_of(&target.upstream_pids);
            let writes_before = write_syscalls_of(&target.server_pids);
            let client_before = cpu_ticks(std::process::id()).unwrap_or(0);
            let machine_before = machine_busy_ticks();
            let took = transfer(ctx.client, target, streams, size).await?;
            let machine = machine_busy_ticks().saturating_sub(machine_before);
            let client = cpu_ticks(std::process::id())
                .unwrap_or(0)
                .saturating_sub(client_before);
            let server = cpu_ticks_of(&target.server_pids).saturating_sub(server_before);
            let upstream = cpu_ticks_of(&target.upstream_pids).saturating_sub(upstream_before);
            stats.client_ticks += client;
            stats.server_ticks += server;
            stats.upstream_ticks += upstream;
            stats.foreign_ticks += machine.saturating_sub(client + server + upstream);
            stats.seconds += took.as_secs_f64();
            stats.server_writes +=
                write_syscalls_of(&target.server_pids).saturating_sub(writes_before);
            let bytes = size * streams as u64;
            stats.bytes += bytes;
            let mbps = bytes as f64 / took.as_secs_f64() / MB;
            stats.samples.push(mbps);
            eprintln!(
                "blob_throughput:   {part} x{streams} run {}: {:<28} {mbps:>8.1} MB/s",
                run + 1,
                target.name
            );
        }
    }
    let mut stats = targets.into_iter().map(|(_, s)| s);
    let ours = stats.next().unwrap();
    Ok(Comparison {
        part,
        streams,
        ours,
        reference: stats.next(),
    })
}

// ---------------------------------------------------------------------------------------
// Memory

struct RssResult {
    store: &'static str,
    blob_size: u64,
    idle_kib: u64,
    hwm_kib: u64,
    sampled_kib: u64,
}

impl RssResult {
    fn peak_mib(&self) -> f64 {
        self.hwm_kib.max(self.sampled_kib) as f64 / 1024.0
    }
}

/// Serves `blob` once alone and once to `CONCURRENT` streams, from a fresh process,
/// and reports its memory.
async fn rss_probe(
    ctx: &Ctx<'_>,
    airlock: &Airlock,
    target: &Target,
    size: u64,
    store: &'static str,
) -> Result<RssResult> {
    let idle = status_kib(airlock.pid(), "VmRSS").unwrap_or(0);
    let sampler = RssSampler::start(airlock.pid());
    transfer(ctx.client, target, 1, size).await?;
    transfer(ctx.client, target, 1, size).await?;
    transfer(ctx.client, target, CONCURRENT, size).await?;
    Ok(RssResult {
        store,
        blob_size: size,
        idle_kib: idle,
        hwm_kib: status_kib(airlock.pid(), "VmHWM").unwrap_or(0),
        sampled_kib: sampler.stop(),
    })
}

/// Samples a process's VmRSS until stopped; keeps the largest value.
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            // Bounded twice: by the stop flag and by a day's worth of samples.
            let max_samples = 24 * 3600 * 1000 / RSS_SAMPLE_EVERY.as_millis() as u64;
            for _ in 0..max_samples {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                match status_kib(pid, "VmRSS") {
                    Some(kib) => {
                        p.fetch_max(kib, Ordering::Relaxed);
                    }
                    None => break,
                }
                std::thread::sleep(RSS_SAMPLE_EVERY);
            }
        });
        RssSampler {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    /// Stops sampling; returns the peak VmRSS seen in KiB.
    fn stop(mut self) -> u64 {
        self.halt();
        self.peak.load(Ordering::Relaxed)
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.halt();
    }
}

// ---------------------------------------------------------------------------------------
// /proc

/// A `kB` field of /proc/<pid>/status (VmRSS, VmHWM).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// Fields of /proc/<pid>/stat after the command name (field 3 onwards).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let f = stat_fields(pid)?;
    // utime and stime are fields 14 and 15; the vector starts at field 3.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn cpu_ticks_of(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|p| cpu_ticks(*p)).sum()
}

/// This process's CPU time plus that of its children already waited for, in ticks.
fn own_ticks_with_children() -> u64 {
    stat_fields(std::process::id()).map_or(0, |f| {
        (11..=14)
            .filter_map(|i| f.get(i)?.parse::<u64>().ok())
            .sum()
    })
}

/// The share of the machine's CPU capacity that processes other than this bench's used.
fn foreign_share(machine_ticks: u64, own_ticks: u64, elapsed: Duration) -> f64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let capacity = elapsed.as_secs_f64() * clock_ticks_per_second() * cores;
    (machine_ticks.saturating_sub(own_ticks) as f64 / capacity).clamp(0.0, 1.0)
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Write-side syscalls (`syscw` of /proc/<pid>/io) of all the processes.
fn write_syscalls_of(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| {
            let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
            io.lines()
                .find_map(|l| l.strip_prefix("syscw:"))?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .sum()
}

fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            stat_fields(*pid)
                .and_then(|f| f.get(1)?.parse::<u32>().ok())
                .is_some_and(|ppid| ppid == parent)
        })
        .collect()
}

/// The `garage server` whose command line names a config file in `dir`.
fn find_garage_pid(dir: &Path) -> Option<u32> {
    let config = dir.join("garage.toml").display().to_string();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
                args.contains(&config.as_bytes()) && args.contains(&b"server".as_slice())
            })
        })
}

// ---------------------------------------------------------------------------------------
// Processes

mod sys {
    use std::os::raw::{c_int, c_ulong};
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    extern "C" {
        fn prctl(option: c_int, ...) -> c_int;
        fn getppid() -> c_int;
        fn kill(pid: c_int, sig: c_int) -> c_int;
        fn geteuid() -> u32;
    }

    pub const SIGKILL: c_int = 9;
    pub const SIGTERM: c_int = 15;

    /// The child gets `signal` when the thread that spawned it (here: main) exits, so
    /// nothing outlives a bench killed before its guards could run.
    pub fn die_with_parent(cmd: &mut Command, signal: c_int) {
        const PR_SET_PDEATHSIG: c_int = 1;
        let parent = std::process::id() as c_int;
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if prctl(PR_SET_PDEATHSIG, signal as c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if getppid() != parent {
                    return Err(std::io::Error::other("the bench exited"));
                }
                Ok(())
            });
        }
    }

    pub fn signal(pid: u32, signal: c_int) {
        // SAFETY: plain syscall on a pid this bench started.
        unsafe {
            kill(pid as c_int, signal);
        }
    }

    pub fn is_root() -> bool {
        // SAFETY: plain syscall.
        unsafe { geteuid() == 0 }
    }
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// An `airlock serve` on an ephemeral loopback port; killed on drop.
struct Airlock {
    child: Child,
    base: String,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Airlock {
    fn start(label: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<Airlock> {
        let bin = airlock_bin();
        let mut cmd = Command::new(&bin);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("AIRLOCK_") || k.starts_with("AWS_") {
                cmd.env_remove(k.as_ref());
            }
        }
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        sys::die_with_parent(&mut cmd, sys::SIGKILL);
        let mut child = cmd.spawn().with_context(|| format!("starting {bin}"))?;
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            // Ends when the process closes stderr, i.e. exits.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("listening on http://") {
                    let base: String = line[i + "listening on ".len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || ":/.[]".contains(*c))
                        .collect();
                    let _ = tx.send(base);
                }
                let mut log = sink.lock().unwrap();
                if log.len() == 50 {
                    log.pop_front();
                }
                log.push_back(line);
            }
        });
        let mut airlock = Airlock {
            child,
            base: String::new(),
            log,
        };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(base) => {
                eprintln!(
                    "blob_throughput: airlock ({label}) pid {} at {base}",
                    airlock.pid()
                );
                airlock.base = base;
            }
            Err(_) => bail!(
                "airlock ({label}) did not report listening within {START_TIMEOUT:?}; its log:\n{}",
                airlock.log_tail()
            ),
        }
        Ok(airlock)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap();
        log.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Airlock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const NGINX: &str = "/usr/sbin/nginx";

/// nginx (master and workers) serving `root` on a free loopback port; stopped on drop.
struct Nginx {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Nginx {
    fn start(dir: &Path, root: &Path) -> Result<Nginx> {
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let d = dir.display();
        let user = if sys::is_root() {
            // The store directory is private to this user; workers must be able to read it.
            "user root;\n"
        } else {
            ""
        };
        let conf = format!(
            r#"{user}daemon off;
master_process on;
worker_processes auto;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 10000;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
"#,
            root = root.display()
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::File::create(&conf_path)?.write_all(conf.as_bytes())?;
        let binary = if Path::new(NGINX).is_file() {
            NGINX
        } else {
            "nginx"
        };
        let mut cmd = Command::new(binary);
        cmd.arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SIGTERM, not SIGKILL: the master then takes its workers down with it.
        sys::die_with_parent(&mut cmd, sys::SIGTERM);
        let child = cmd.spawn().with_context(|| format!("starting {binary}"))?;
        let mut nginx = Nginx {
            child,
            port,
            dir: dir.to_path_buf(),
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                bail!("nginx exited ({status}): {}", nginx.error_log());
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "nginx did not listen on {addr} within 10s: {}",
                    nginx.error_log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Workers are forked right after the socket is bound: let them all appear.
        let deadline = Instant::now() + Duration::from_secs(5);
        while children_of(nginx.child.id()).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(nginx)
    }

    /// Master and workers.
    fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.child.id()];
        pids.extend(children_of(self.child.id()));
        pids
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let workers = children_of(self.child.id());
        sys::signal(self.child.id(), sys::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for pid in workers {
            // Only a worker still parented to nobody else we know of: its own name says so.
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if cmdline.starts_with(b"nginx: worker") {
                sys::signal(pid, sys::SIGKILL);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Data

/// `size` bytes of incompressible data (splitmix64), written in 1 MiB pieces.
fn write_random(path: &Path, size: u64, seed: u64) -> Result<()> {
    let mut file = std::fs::File::create(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut state = seed;
    let mut left = size;
    while left > 0 {
        for word in buf.chunks_exact_mut(8) {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            word.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        file.write_all(&buf[..n])?;
        left -= n as u64;
    }
    file.sync_all()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Report

#[derive(Default)]
struct Report {
    /// Other work on the machine skews every figure, so the table says how busy it was:
    /// /proc/loadavg at the start, and the share of all CPUs that processes other than
    /// this bench and its children used while it ran.
    load_before: String,
    foreign_share: f64,
    notes: Vec<String>,
    errors: Vec<String>,
    comparisons: Vec<Comparison>,
    rss: Vec<RssResult>,
}

impl Report {
    fn print(&self, settings: &Settings) {
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        println!();
        println!(
            "=== Airlock blob throughput: {} blob, median of {} run(s), {cores} cores, client in this process ===",
            human(settings.size),
            settings.runs
        );
        println!(
            "other processes used {:.0}% of the machine's CPU during the run (load average at start: {})",
            self.foreign_share * 100.0,
            self.load_before
        );
        if self.foreign_share > BUSY_SHARE {
            println!("WARNING: other work kept the machine busy during this run: the figures are noisy (see the `other` column; compare best as well as median, or run again when idle)");
        }
        println!("MB/s = 10^6 bytes/s over all streams (median, best and worst run).");
        println!("CPU = CPU seconds per GiB delivered: srv = the serving process(es), up = Garage behind Airlock, cli = this bench's client.");
        println!("KiB/wr = bytes delivered per write-side syscall of the server (write/writev/sendfile).");
        println!("other = share of all CPUs taken by processes outside the measurement while it ran (noise).");
        println!();
        println!(
            "{:<4} {:>7}  {:<27} {:>8} {:>8} {:>8}  {:>7} {:>7} {:>7} {:>7} {:>6}",
            "part",
            "streams",
            "target",
            "median",
            "best",
            "worst",
            "srv CPU",
            "up CPU",
            "cli CPU",
            "KiB/wr",
            "other"
        );
        for c in &self.comparisons {
            for s in std::iter::once(&c.ours).chain(&c.reference) {
                println!(
                    "{:<4} {:>7}  {:<27} {:>8.1} {:>8.1} {:>8.1}  {:>7.2} {:>7} {:>7.2} {:>7.0} {:>5.0}%",
                    c.part,
                    c.streams,
                    s.name,
                    s.median(),
                    s.best(),
                    s.worst(),
                    s.cpu_per_gib(s.server_ticks),
                    if s.upstream_ticks > 0 {
                        format!("{:.2}", s.cpu_per_gib(s.upstream_ticks))
                    } else {
                        "-".into()
                    },
                    s.cpu_per_gib(s.client_ticks),
                    s.kib_per_write(),
                    s.foreign_share() * 100.0,
                );
            }
            if let (Some(median), Some(best)) = (c.ratio(), c.best_ratio()) {
                println!(
                    "{:<4} {:>7}  {:<27} {:>8.3} {:>8.3}",
                    c.part, c.streams, "  ratio airlock/reference", median, best
                );
            }
        }
        println!();
        println!(
            "{:<5} {:>10}  {:>10} {:>12} {:>12}",
            "store", "blob", "idle RSS", "peak VmHWM", "peak sampled"
        );
        for r in &self.rss {
            println!(
                "{:<5} {:>10}  {:>7.1} MiB {:>8.1} MiB {:>8.1} MiB",
                r.store,
                human(r.blob_size),
                r.idle_kib as f64 / 1024.0,
                r.hwm_kib as f64 / 1024.0,
                r.sampled_kib as f64 / 1024.0
            );
        }
        println!();
        println!("targets:");
        for (ok, line) in self.checks() {
            println!("  [{}] {line}", if ok { " ok " } else { "MISS" });
        }
        for note in &self.notes {
            println!("  note: {note}");
        }
        for error in &self.errors {
            println!("  ERROR: {error}");
        }
    }

    fn checks(&self) -> Vec<(bool, String)> {
        let mut checks = Vec::new();
        for c in &self.comparisons {
            let (Some(ratio), Some(reference)) = (c.ratio(), &c.reference) else {
                continue;
            };
            let streams = if c.streams == 1 {
                "single stream".to_string()
            } else {
                format!("{} concurrent streams", c.streams)
            };
            checks.push((
                ratio >= TARGET_RATIO,
                format!(
                    "{} {streams}: {:.1} vs {:.1} MB/s = {ratio:.3}x {} (target >= {TARGET_RATIO}x)",
                    c.part,
                    c.ours.median(),
                    reference.median(),
                    reference.name
                ),
            ));
        }
        for store in ["fs", "S3"] {
            let mut rows: Vec<&RssResult> = self.rss.iter().filter(|r| r.store == store).collect();
            rows.sort_by_key(|r| r.blob_size);
            for r in &rows {
                checks.push((
                    r.peak_mib() < RSS_LIMIT_MIB,
                    format!(
                        "{store} peak RSS serving {}: {:.1} MiB (target < {RSS_LIMIT_MIB} MiB)",
                        human(r.blob_size),
                        r.peak_mib()
                    ),
                ));
            }
            if let [small, big] = rows[..] {
                let growth = big.peak_mib() - small.peak_mib();
                checks.push((
                    growth <= RSS_GROWTH_TOLERANCE_MIB,
                    format!(
                        "{store} peak RSS independent of blob size: {} -> {:.1} MiB, {} -> {:.1} MiB ({growth:+.1} MiB for {:.0}x the size; tolerance {RSS_GROWTH_TOLERANCE_MIB} MiB)",
                        human(small.blob_size),
                        small.peak_mib(),
                        human(big.blob_size),
                        big.peak_mib(),
                        big.blob_size as f64 / small.blob_size as f64
                    ),
                ));
            }
        }
        checks
    }
}
