//! How each operation's cost grows with the store's size (issue #17 item 1).
//!
//! Generates stores of increasing size through the library's own write APIs
//! (`scale/gen.rs`): at size N, N PyPI projects of 3 files, N/10 OCI repositories of one
//! tiny image, N/100 Hub models of 3 files; plus, at every size, the same large items (a
//! 5,000-file project, a 5,000-tag repository (10,000 takes 4 minutes to push), a 50-platform image index, a 100,000-file
//! Hub repository and a 1,000-commit one). On each store it measures, in one run:
//! generation rates; start-up time and idle RSS; the PyPI root, `/v2/_catalog` and the
//! Hub list (cold and warm, time to first byte and total, against nginx serving the same
//! bytes); the web catalog's list, search, store page and item pages; hot metadata
//! requests (32 keep-alive connections, requests/s, p50, p99, against nginx serving a
//! static file of the same size with the same load); peak RSS after the loads;
//! `airlock bundle have` and `bundle export --have` (time, peak RSS); `airlock pypi
//! import` of 1,000 wheels.
//!
//! `cargo bench --bench scale` (needs nginx; GNU time at /usr/bin/time for peak RSS of
//! the commands). Knobs:
//! - `AIRLOCK_SCALE_SIZES=1000,10000` (default) — the sizes N.
//! - `AIRLOCK_SCALE_STORES=fs` (default), `fs,s3` or `s3` — `s3` runs the same on Garage
//!   (`garage` on PATH), in one store grown from each size to the next (the large items
//!   made once; from the second size on, the import finds its wheels already there).
//! - `AIRLOCK_SCALE_DURATION=2` — seconds per load; `AIRLOCK_SCALE_CONCURRENCY=8` —
//!   generator items in flight; `AIRLOCK_SCALE_IMPORT=1000` — wheels imported.
//! - `AIRLOCK_SCALE_LARGE=pypi_files=5000,tags=5000,platforms=50,hf_files=100000,commits=1000`.
//! - `AIRLOCK_SCALE_KEEP=1` — the filesystem stores are kept in `target/scale/stores/`
//!   and a later run with the same size measures the kept store instead of generating it
//!   again (minutes at N=250,000); its generation figures are then missing, and the
//!   import measures importing wheels already there. Remove the folder to start over.
//!
//! Prints one table per store and writes every figure to `target/scale/results.jsonl`
//! (one object per measurement) and `target/scale/results.csv` (one row per figure:
//! store, size, section, name, metric, value), plus the tables to `tables.txt`.

#[path = "../tests/support/garage.rs"]
#[allow(dead_code)]
mod garage;
#[path = "scale/gen.rs"]
mod gen;
#[path = "scale/load.rs"]
mod load;
mod support;
#[path = "../tests/support/wheels.rs"]
#[allow(dead_code)]
mod wheels;

use gen::names;
use load::{Load, Req};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{count_from_env, have, Guard, BIN};

const ADMIN_TOKEN: &str = "scale-bench-admin-token";
const PYPI_JSON: &str = "application/vnd.pypi.simple.v1+json";
const OCI_ACCEPT: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

// ---------------------------------------------------------------- results

/// One measurement: its figures by metric name, and what went wrong, if anything.
#[derive(Clone, Debug)]
struct Rec {
    store: String,
    size: usize,
    section: &'static str,
    name: String,
    metrics: Vec<(&'static str, f64)>,
    error: Option<String>,
    /// Worth reading but not a failure (the first lost-race error of a generator step).
    note: Option<String>,
}

impl Rec {
    fn get(&self, metric: &str) -> f64 {
        self.metrics
            .iter()
            .find(|(m, _)| *m == metric)
            .map_or(f64::NAN, |(_, v)| *v)
    }
}

struct Report {
    dir: PathBuf,
    recs: Vec<Rec>,
}

impl Report {
    fn add(&mut self, rec: Rec) {
        if let Some(e) = &rec.error {
            eprintln!("scale: {} N={} {}: {e}", rec.store, rec.size, rec.name);
        }
        self.recs.push(rec);
        self.write();
    }

    /// Rewrites the JSON lines and the CSV with everything so far (so a run cut short
    /// keeps what it measured).
    fn write(&self) {
        let mut jsonl = String::new();
        let mut csv = String::from("store,size,section,name,metric,value\n");
        for r in &self.recs {
            let mut obj = serde_json::Map::new();
            obj.insert("store".into(), r.store.clone().into());
            obj.insert("size".into(), r.size.into());
            obj.insert("section".into(), r.section.into());
            obj.insert("name".into(), r.name.clone().into());
            for (m, v) in &r.metrics {
                let value =
                    serde_json::Number::from_f64(*v).map_or(serde_json::Value::Null, Into::into);
                obj.insert((*m).into(), value);
                csv.push_str(&format!(
                    "{},{},{},\"{}\",{m},{v}\n",
                    r.store,
                    r.size,
                    r.section,
                    r.name.replace('"', "'")
                ));
            }
            if let Some(n) = &r.note {
                obj.insert("note".into(), n.clone().into());
            }
            if let Some(e) = &r.error {
                obj.insert("error".into(), e.clone().into());
                csv.push_str(&format!(
                    "{},{},{},\"{}\",error,\"{}\"\n",
                    r.store,
                    r.size,
                    r.section,
                    r.name.replace('"', "'"),
                    e.replace('"', "'").replace('\n', " ")
                ));
            }
            jsonl.push_str(&serde_json::Value::Object(obj).to_string());
            jsonl.push('\n');
        }
        std::fs::write(self.dir.join("results.jsonl"), jsonl).unwrap();
        std::fs::write(self.dir.join("results.csv"), csv).unwrap();
    }

    /// One table per store and section: a row per measurement, a column per size.
    fn tables(&self, store: &str, sizes: &[usize]) -> String {
        let mut out = String::new();
        let sections = [
            ("generation", "generation (items/s; first/last tenth of the items; retries after lost races)"),
            ("listing", "listings after generation (entries found / expected)"),
            ("process", "process"),
            ("root", "root pages: time to first byte / total, ms (cold = first request after start; warm = median of 5; nginx = same bytes, warm)"),
            ("catalog", "web catalog (admin token): first request / median of the next ones, ms (store page: the walk until it has totals)"),
            ("hot", "hot metadata: airlock r/s, p50/p99 ms (32 connections) | ratio to nginx r/s on a static file of the same size"),
            ("clients", "huggingface_hub on the large repository: seconds (what it returned)"),
            ("cli", "commands"),
        ];
        for (section, title) in sections {
            let recs: Vec<&Rec> = self
                .recs
                .iter()
                .filter(|r| r.store == store && r.section == section)
                .collect();
            if recs.is_empty() {
                continue;
            }
            let mut columns: Vec<usize> = sizes.to_vec();
            if recs.iter().any(|r| r.size == 0) {
                columns.insert(0, 0);
            }
            let mut rows: Vec<String> = Vec::new();
            let mut cells: BTreeMap<(String, usize), String> = BTreeMap::new();
            for r in &recs {
                if !rows.contains(&r.name) {
                    rows.push(r.name.clone());
                }
                cells.insert((r.name.clone(), r.size), cell(r));
            }
            let name_width = rows.iter().map(|r| r.len()).max().unwrap_or(10).max(6);
            let widths: Vec<usize> = columns
                .iter()
                .map(|c| {
                    rows.iter()
                        .filter_map(|r| cells.get(&(r.clone(), *c)))
                        .map(|s| s.len())
                        .max()
                        .unwrap_or(0)
                        .max(column_title(*c).len())
                })
                .collect();
            out.push_str(&format!("\n== {store}: {title} ==\n"));
            out.push_str(&format!("{:<name_width$}", ""));
            for (c, w) in columns.iter().zip(&widths) {
                out.push_str(&format!(" | {:<w$}", column_title(*c)));
            }
            out.push('\n');
            for row in &rows {
                out.push_str(&format!("{row:<name_width$}"));
                for (c, w) in columns.iter().zip(&widths) {
                    let text = cells.get(&(row.clone(), *c)).map_or("", String::as_str);
                    out.push_str(&format!(" | {text:<w$}"));
                }
                out.push('\n');
            }
        }
        let notes: Vec<&Rec> = self
            .recs
            .iter()
            .filter(|r| r.store == store && r.note.is_some())
            .collect();
        if !notes.is_empty() {
            out.push_str(&format!("\n== {store}: notes ==\n"));
            for r in notes {
                let n: String = r
                    .note
                    .as_deref()
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect();
                out.push_str(&format!("N={} {}: {n}\n", r.size, r.name));
            }
        }
        let errors: Vec<&Rec> = self
            .recs
            .iter()
            .filter(|r| r.store == store && r.error.is_some())
            .collect();
        if !errors.is_empty() {
            out.push_str(&format!("\n== {store}: errors ==\n"));
            for r in errors {
                let e = r.error.as_deref().unwrap_or_default();
                let e: String = e.chars().take(400).collect();
                out.push_str(&format!("N={} {}: {e}\n", r.size, r.name));
            }
        }
        out
    }
}

fn column_title(size: usize) -> String {
    if size == 0 {
        "large items (once)".into()
    } else {
        format!("N={size}")
    }
}

fn human_bytes(b: f64) -> String {
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / 1024.0 / 1024.0)
    } else if b >= 1024.0 {
        format!("{:.0} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

fn cell(r: &Rec) -> String {
    let failed = |text: String| match &r.error {
        Some(e) => {
            let short: String = e.chars().take(40).collect();
            if text.is_empty() {
                format!("FAILED: {short}")
            } else {
                format!("{text} FAILED")
            }
        }
        None => text,
    };
    let text = match r.section {
        "generation" => {
            if r.get("items").is_nan() {
                String::new()
            } else {
                format!(
                    "{:.0}/s ({:.0} in {:.1}s; {:.0}/{:.0}){}",
                    r.get("per_s"),
                    r.get("items"),
                    r.get("seconds"),
                    r.get("first_tenth_per_s"),
                    r.get("last_tenth_per_s"),
                    if r.get("retries") > 0.0 {
                        format!(" {} retries", r.get("retries"))
                    } else {
                        String::new()
                    }
                )
            }
        }
        "listing" => format!("{:.0} / {:.0}", r.get("found"), r.get("expected")),
        "process" => {
            if r.get("kib").is_nan() {
                format!("{:.0} ms", r.get("ms"))
            } else {
                format!("{:.1} MiB", r.get("kib") / 1024.0)
            }
        }
        "root" => {
            if r.get("cold_total_ms").is_nan() {
                String::new()
            } else {
                format!(
                    "{}: cold {:.1}/{:.1}, warm {:.1}/{:.1}, nginx {:.1}/{:.1}",
                    human_bytes(r.get("bytes")),
                    r.get("cold_ttfb_ms"),
                    r.get("cold_total_ms"),
                    r.get("warm_ttfb_ms"),
                    r.get("warm_total_ms"),
                    r.get("nginx_ttfb_ms"),
                    r.get("nginx_total_ms"),
                )
            }
        }
        "catalog" => {
            if r.get("first_ms").is_nan() {
                String::new()
            } else {
                let walk = r.get("walk_ms");
                let follow = r.get("follow_ms");
                format!(
                    "{}: {:.1} / {:.1}{}{}",
                    human_bytes(r.get("bytes")),
                    r.get("first_ms"),
                    r.get("warm_ms"),
                    match walk.is_nan() {
                        true => String::new(),
                        false => format!(" (walk {walk:.0})"),
                    },
                    match follow.is_nan() {
                        true => String::new(),
                        false => format!(" (change shown {follow:.0})"),
                    }
                )
            }
        }
        "hot" => {
            if r.get("rps").is_nan() {
                String::new()
            } else {
                let direct = r.get("ratio_s3_direct");
                format!(
                    "{:.0} r/s {:.2}/{:.2} | {:.2}x ({}){}",
                    r.get("rps"),
                    r.get("p50_ms"),
                    r.get("p99_ms"),
                    r.get("ratio"),
                    human_bytes(r.get("bytes")),
                    match direct.is_nan() {
                        true => String::new(),
                        false => format!(", {direct:.2}x S3 read directly"),
                    }
                )
            }
        }
        "clients" => format!("{:.2} s ({:.0})", r.get("seconds"), r.get("items")),
        "cli" => {
            if r.name.starts_with("bundle") {
                format!(
                    "{:.2} s, peak {:.1} MiB, {} out",
                    r.get("seconds"),
                    r.get("peak_kib") / 1024.0,
                    human_bytes(r.get("bytes"))
                )
            } else {
                format!("{:.1} wheels/s ({:.1} s)", r.get("per_s"), r.get("seconds"))
            }
        }
        _ => String::new(),
    };
    failed(text)
}

// ---------------------------------------------------------------- processes

/// How a store is named on the command line, and the environment that reaches it.
#[derive(Clone)]
struct StoreArgs {
    args: Vec<String>,
    envs: Vec<(String, String)>,
    /// A store kept from an earlier run (`AIRLOCK_SCALE_KEEP`) or grown from the last
    /// size: its import finds the wheels already there.
    kept: bool,
    /// On S3: the same bucket opened to sign download URLs, so a file download is also
    /// measured against the S3 server read directly (what Airlock's own read costs).
    direct: Option<airlock::store::DynStore>,
}

/// `airlock serve`: the guard, its base URL and the time from spawn to listening.
fn serve(dir: &Path, store: &StoreArgs) -> (Guard, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .current_dir(dir)
        .args(&store.args)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-token",
            ADMIN_TOKEN,
        ])
        .envs(store.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AIRLOCK_LOG", "warn,airlock::server=info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let guard = Guard(child);
    let base = loop {
        let line = lines
            .next()
            .expect("airlock exited before listening")
            .unwrap();
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
    (guard, base, elapsed)
}

fn status_kib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(f64::NAN)
}

/// `airlock bundle export --have` of the two largest items (the 100,000-file model and
/// the 5,000-file project) against what this store holds itself: the cost of reading
/// and consulting a have file of every blob, whatever is left to send.
fn bundle_export_have(ctx: &Ctx, store: &str, n: usize, args: &StoreArgs, have: &Path) -> Rec {
    eprintln!("scale: {store} N={n}: bundle export --have");
    let spec = ctx.work.join("export-spec.toml");
    std::fs::write(
        &spec,
        format!(
            "[[hf]]\nrepo = \"{}\"\n\n[[pypi]]\nprojects = [\"{}\"]\n",
            names::BIG_HF,
            names::BIG_PROJECT
        ),
    )
    .unwrap();
    let out = ctx.work.join("export.tar");
    let mut rec = Rec {
        store: store.into(),
        size: n,
        section: "cli",
        name: "bundle export --have (largest model and project)".into(),
        metrics: Vec::new(),
        error: None,
        note: None,
    };
    let command = [
        "bundle",
        "export",
        "--spec",
        spec.to_str().unwrap(),
        "--have",
        have.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    match measured_cli(ctx.work, args, &command) {
        Ok((s, peak, _)) => {
            let bytes = std::fs::metadata(&out).map_or(f64::NAN, |m| m.len() as f64);
            rec.metrics = vec![("seconds", s), ("peak_kib", peak), ("bytes", bytes)];
        }
        Err(e) => rec.error = Some(e),
    }
    std::fs::remove_file(&out).ok();
    rec
}

/// Runs an airlock command under GNU time: (seconds, peak RSS KiB, stdout bytes).
fn measured_cli(dir: &Path, store: &StoreArgs, args: &[&str]) -> Result<(f64, f64, u64), String> {
    let timing = dir.join("time.txt");
    let out_path = dir.join("cli-stdout");
    let out = std::fs::File::create(&out_path).unwrap();
    let started = Instant::now();
    let mut cmd = if Path::new("/usr/bin/time").exists() {
        let mut c = Command::new("/usr/bin/time");
        c.args(["-f", "%M", "-o", timing.to_str().unwrap(), BIN]);
        c
    } else {
        Command::new(BIN)
    };
    let output = cmd
        .args(&store.args)
        .args(args)
        .envs(store.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AIRLOCK_LOG", "warn")
        .current_dir(dir)
        .stdout(out)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        return Err(format!(
            "airlock {args:?}: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        ));
    }
    let peak = std::fs::read_to_string(&timing)
        .ok()
        .and_then(|t| t.lines().last().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(f64::NAN);
    let bytes = std::fs::metadata(&out_path).map_or(0, |m| m.len());
    Ok((seconds, peak, bytes))
}

// ---------------------------------------------------------------- one size

struct Ctx<'a> {
    rt: &'a tokio::runtime::Runtime,
    client: reqwest::Client,
    work: &'a Path,
    static_root: PathBuf,
    nginx_port: Option<u16>,
    duration: Duration,
    wheelhouse: &'a Path,
    imports: usize,
    /// `AIRLOCK_SCALE_KEEP`: filesystem stores kept in `out_dir/stores` and reused.
    keep: bool,
    out_dir: PathBuf,
}

impl Ctx<'_> {
    fn nginx_file(&self, key: &str, body: &[u8]) -> Option<String> {
        let port = self.nginx_port?;
        let file = format!("{key}.bin");
        std::fs::write(self.static_root.join(&file), body).unwrap();
        Some(format!("http://127.0.0.1:{port}/{file}"))
    }
}

/// A target of the hot loads: a short key (also the nginx file's name), a label and the
/// request. nginx gets a GET for a POST (paths-info): it serves no POST to a file.
struct Hot {
    key: &'static str,
    label: String,
    req: Req,
}

fn hot_targets(base: &str, n: usize, ctx: &Ctx) -> Vec<Hot> {
    let project = names::project_url(n / 2);
    let image = names::image_repo(n / 20);
    let model = names::model(n / 200);
    let big_file = names::big_hf_file(gen_large().hf_files / 2);
    let mid_tag = names::tag(gen_large().tags / 2);
    let mut targets = vec![
        Hot {
            key: "pypi-html-3",
            label: "pypi page HTML, 3 files".into(),
            req: Req::get(format!("{base}/simple/{project}/")),
        },
        Hot {
            key: "pypi-json-3",
            label: "pypi page JSON, 3 files".into(),
            req: Req::get(format!("{base}/simple/{project}/")).header("accept", PYPI_JSON),
        },
        Hot {
            key: "pypi-html-big",
            label: format!("pypi page HTML, {} files", gen_large().pypi_files),
            req: Req::get(format!("{base}/simple/{}/", names::BIG_PROJECT)),
        },
        Hot {
            key: "pypi-json-big",
            label: format!("pypi page JSON, {} files", gen_large().pypi_files),
            req: Req::get(format!("{base}/simple/{}/", names::BIG_PROJECT))
                .header("accept", PYPI_JSON),
        },
    ];
    // A file download from each project: its URL as the JSON page gives it.
    for (key, label, page) in [
        (
            "pypi-file-3",
            "pypi file GET, 3-file project".to_string(),
            format!("{base}/simple/{project}/"),
        ),
        (
            "pypi-file-big",
            format!("pypi file GET, {}-file project", gen_large().pypi_files),
            format!("{base}/simple/{}/", names::BIG_PROJECT),
        ),
    ] {
        let url = ctx.rt.block_on(async {
            let t = load::ok(
                &ctx.client,
                &Req::get(page.clone()).header("accept", PYPI_JSON),
            )
            .await
            .ok()?;
            let json: serde_json::Value = serde_json::from_slice(&t.body).ok()?;
            let files = json["files"].as_array()?;
            let relative = files.get(files.len() / 2)?["url"].as_str()?.to_string();
            reqwest::Url::parse(&page)
                .ok()?
                .join(&relative)
                .ok()
                .map(|u| u.to_string())
        });
        targets.push(Hot {
            key,
            label,
            req: Req::get(url.unwrap_or_else(|| format!("{page}#no-file-url"))),
        });
    }
    targets.extend([
        Hot {
            key: "oci-manifest-small",
            label: "oci manifest GET by tag, 1-tag repo".into(),
            req: Req::get(format!("{base}/v2/{image}/manifests/v1")).header("accept", OCI_ACCEPT),
        },
        Hot {
            key: "oci-manifest-big",
            label: format!("oci manifest GET by tag, {}-tag repo", gen_large().tags),
            req: Req::get(format!(
                "{base}/v2/{}/manifests/{mid_tag}",
                names::BIG_TAGS_REPO
            ))
            .header("accept", OCI_ACCEPT),
        },
        Hot {
            key: "oci-index",
            label: format!("oci index GET by tag, {} platforms", gen_large().platforms),
            req: Req::get(format!(
                "{base}/v2/{}/manifests/latest",
                names::MULTIARCH_REPO
            ))
            .header("accept", OCI_ACCEPT),
        },
        Hot {
            key: "oci-tags-small",
            label: "oci tags/list, 1-tag repo".into(),
            req: Req::get(format!("{base}/v2/{image}/tags/list")),
        },
        Hot {
            key: "oci-tags-big",
            label: format!("oci tags/list?n=100, {}-tag repo", gen_large().tags),
            req: Req::get(format!(
                "{base}/v2/{}/tags/list?n=100",
                names::BIG_TAGS_REPO
            )),
        },
        Hot {
            key: "oci-tags-big-last",
            label: format!(
                "oci tags/list?n=100&last=(middle), {}-tag repo",
                gen_large().tags
            ),
            req: Req::get(format!(
                "{base}/v2/{}/tags/list?n=100&last={mid_tag}",
                names::BIG_TAGS_REPO
            )),
        },
        Hot {
            key: "hf-revision-small",
            label: "hf revision/main, 3-file repo".into(),
            req: Req::get(format!("{base}/api/models/{model}/revision/main")),
        },
        Hot {
            key: "hf-revision-big",
            label: format!("hf revision/main, {}-file repo", gen_large().hf_files),
            req: Req::get(format!("{base}/api/models/{}/revision/main", names::BIG_HF)),
        },
        Hot {
            key: "hf-revision-history",
            label: format!("hf revision/main, {}-commit repo", gen_large().commits),
            req: Req::get(format!(
                "{base}/api/models/{}/revision/main",
                names::HISTORY_HF
            )),
        },
        Hot {
            key: "hf-commits-history",
            label: format!("hf commits/main, {}-commit repo", gen_large().commits),
            req: Req::get(format!(
                "{base}/api/models/{}/commits/main",
                names::HISTORY_HF
            )),
        },
        Hot {
            key: "hf-tree-small",
            label: "hf tree/main, 3-file repo".into(),
            req: Req::get(format!("{base}/api/models/{model}/tree/main")),
        },
        Hot {
            key: "hf-tree-big",
            label: format!(
                "hf tree/main (first page), {}-file repo",
                gen_large().hf_files
            ),
            req: Req::get(format!("{base}/api/models/{}/tree/main", names::BIG_HF)),
        },
        Hot {
            key: "hf-paths-small",
            label: "hf paths-info (POST form), 3-file repo".into(),
            req: Req::get(format!("{base}/api/models/{model}/paths-info/main"))
                .form("paths=config.json"),
        },
        Hot {
            key: "hf-paths-big",
            label: format!(
                "hf paths-info (POST form), {}-file repo",
                gen_large().hf_files
            ),
            req: Req::get(format!(
                "{base}/api/models/{}/paths-info/main",
                names::BIG_HF
            ))
            .form(&format!("paths={big_file}")),
        },
        Hot {
            key: "hf-resolve-small",
            label: "hf resolve HEAD, 3-file repo".into(),
            req: Req::head(format!("{base}/{model}/resolve/main/config.json")),
        },
        Hot {
            key: "hf-resolve-big",
            label: format!("hf resolve HEAD, {}-file repo", gen_large().hf_files),
            req: Req::head(format!("{base}/{}/resolve/main/{big_file}", names::BIG_HF)),
        },
    ]);
    targets
}

fn gen_large() -> gen::Large {
    gen::Large::from_env()
}

fn measure_hot(
    ctx: &Ctx,
    report: &mut Report,
    store: &str,
    n: usize,
    base: &str,
    pid: u32,
    direct: Option<&airlock::store::DynStore>,
) {
    let targets = hot_targets(base, n, ctx);
    for t in targets {
        eprintln!("scale: {store} N={n}: load {}", t.label);
        let result: Result<(Load, Option<Load>, Option<Load>, usize), String> =
            ctx.rt.block_on(async {
                let first = load::ok(&ctx.client, &t.req).await?;
                // HEAD has no body: nginx answers a HEAD of a file of the announced length.
                let size = if t.req.method == reqwest::Method::HEAD {
                    first.content_length.unwrap_or(0) as usize
                } else {
                    first.body.len()
                };
                let ours = load::load(&ctx.client, &t.req, ctx.duration).await?;
                let body = vec![b'x'; size];
                let reference = match ctx.nginx_file(t.key, &body) {
                    Some(url) => {
                        let req = if t.req.method == reqwest::Method::HEAD {
                            Req::head(url)
                        } else {
                            // paths-info is a POST; nginx serves the same bytes to a GET.
                            Req::get(url)
                        };
                        Some(load::load(&ctx.client, &req, ctx.duration).await?)
                    }
                    None => None,
                };
                // A file download on S3: the same object fetched from the S3 server itself,
                // by a signed URL, as its reference too.
                let from_s3 = match direct.filter(|_| t.key.starts_with("pypi-file")) {
                    Some(store) => {
                        let digest = airlock::digest::Digest::of_bytes(
                            airlock::digest::Algorithm::Sha256,
                            &first.body,
                        );
                        let key = airlock::store::layout::blob_key(&digest);
                        let url = store
                            .presigned_get(&key)
                            .await
                            .map_err(|e| e.to_string())?
                            .ok_or("no signed URL")?;
                        Some(load::load(&ctx.client, &Req::get(url), ctx.duration).await?)
                    }
                    None => None,
                };
                Ok((ours, reference, from_s3, size))
            });
        let mut rec = Rec {
            store: store.into(),
            size: n,
            section: "hot",
            name: t.label.clone(),
            metrics: Vec::new(),
            error: None,
            note: None,
        };
        match result {
            Ok((ours, reference, from_s3, size)) => {
                rec.metrics = vec![
                    ("rps", ours.rps),
                    ("p50_ms", ours.p50_ms),
                    ("p99_ms", ours.p99_ms),
                    ("bytes", size as f64),
                    ("requests", ours.requests as f64),
                    ("airlock_vmhwm_kib", status_kib(pid, "VmHWM")),
                ];
                if let Some(r) = reference {
                    rec.metrics.extend([
                        ("nginx_rps", r.rps),
                        ("nginx_p50_ms", r.p50_ms),
                        ("nginx_p99_ms", r.p99_ms),
                        ("ratio", ours.rps / r.rps),
                    ]);
                }
                if let Some(r) = from_s3 {
                    rec.metrics.extend([
                        ("s3_direct_rps", r.rps),
                        ("s3_direct_p99_ms", r.p99_ms),
                        ("ratio_s3_direct", ours.rps / r.rps),
                    ]);
                }
            }
            Err(e) => rec.error = Some(e),
        }
        report.add(rec);
    }
}

/// The first request (cold) and the median of up to `warm` more, stopping early once
/// `budget` is spent: (first, median warm ttfb, median warm total, body).
fn series(
    ctx: &Ctx,
    req: &Req,
    warm: usize,
    budget: Duration,
) -> Result<(load::Timed, f64, f64), String> {
    ctx.rt.block_on(async {
        let started = Instant::now();
        let first = load::ok(&ctx.client, req).await?;
        let mut ttfb = Vec::new();
        let mut total = Vec::new();
        for _ in 0..warm {
            if started.elapsed() > budget && !total.is_empty() {
                break;
            }
            let t = load::ok(&ctx.client, req).await?;
            ttfb.push(t.ttfb.as_secs_f64() * 1000.0);
            total.push(t.total.as_secs_f64() * 1000.0);
        }
        let median = |v: Vec<f64>| {
            if v.is_empty() {
                f64::NAN
            } else {
                support::median(v)
            }
        };
        Ok((first, median(ttfb), median(total)))
    })
}

fn measure_roots(ctx: &Ctx, report: &mut Report, store: &str, n: usize, base: &str) {
    let targets = [
        (
            "simple-html",
            "pypi /simple/ (HTML)",
            Req::get(format!("{base}/simple/")),
        ),
        (
            "simple-json",
            "pypi /simple/ (JSON)",
            Req::get(format!("{base}/simple/")).header("accept", PYPI_JSON),
        ),
        (
            "catalog-all",
            "oci /v2/_catalog",
            Req::get(format!("{base}/v2/_catalog")),
        ),
        (
            "catalog-n",
            "oci /v2/_catalog?n=100",
            Req::get(format!("{base}/v2/_catalog?n=100")),
        ),
        (
            "hf-list",
            "hf /api/models (first page)",
            Req::get(format!("{base}/api/models")),
        ),
    ];
    for (key, label, req) in targets {
        eprintln!("scale: {store} N={n}: {label}");
        let mut rec = Rec {
            store: store.into(),
            size: n,
            section: "root",
            name: label.into(),
            metrics: Vec::new(),
            error: None,
            note: None,
        };
        match series(ctx, &req, 5, Duration::from_secs(30)) {
            Ok((first, warm_ttfb, warm_total)) => {
                rec.metrics = vec![
                    ("bytes", first.body.len() as f64),
                    ("cold_ttfb_ms", first.ttfb.as_secs_f64() * 1000.0),
                    ("cold_total_ms", first.total.as_secs_f64() * 1000.0),
                    ("warm_ttfb_ms", warm_ttfb),
                    ("warm_total_ms", warm_total),
                ];
                if let Some(url) = ctx.nginx_file(key, &first.body) {
                    if let Ok((_, t, total)) =
                        series(ctx, &Req::get(url), 5, Duration::from_secs(10))
                    {
                        rec.metrics
                            .extend([("nginx_ttfb_ms", t), ("nginx_total_ms", total)]);
                    }
                }
            }
            Err(e) => rec.error = Some(e),
        }
        report.add(rec);
    }
}

fn measure_catalog(ctx: &Ctx, report: &mut Report, store: &str, n: usize, base: &str) {
    let api = format!("{base}/_airlock/catalog");
    let large = gen_large();
    let targets = [
        ("store page (totals)".to_string(), format!("{api}/store")),
        ("list (first page)".to_string(), format!("{api}/items")),
        (
            "list images (first page)".to_string(),
            format!("{api}/items?kind=image"),
        ),
        (
            "list, offset at the end".to_string(),
            format!("{api}/items?offset={}", n + n / 10),
        ),
        (
            "search, one hit".to_string(),
            format!("{api}/items?q={}", names::project(n / 3)),
        ),
        (
            "search, no hit".to_string(),
            format!("{api}/items?q=no-such-item"),
        ),
        (
            format!("item: project of {} files", large.pypi_files),
            format!("{api}/items/projects/default/{}", names::BIG_PROJECT),
        ),
        (
            "item: project of 3 files".to_string(),
            format!("{api}/items/projects/default/{}", names::project_url(n / 2)),
        ),
        (
            format!("item: image of {} tags", large.tags),
            format!("{api}/items/images/{}", names::BIG_TAGS_REPO),
        ),
        (
            format!("item: index of {} platforms", large.platforms),
            format!("{api}/items/images/{}", names::MULTIARCH_REPO),
        ),
        (
            format!("item: model of {} files", large.hf_files),
            format!("{api}/items/models/{}", names::BIG_HF),
        ),
        (
            format!("item: model of {} commits", large.commits),
            format!("{api}/items/models/{}", names::HISTORY_HF),
        ),
        (
            "item: model of 3 files".to_string(),
            format!("{api}/items/models/{}", names::model(n / 200)),
        ),
    ];
    for (label, url) in targets {
        eprintln!("scale: {store} N={n}: catalog {label}");
        let req = Req::get(url).header("authorization", &format!("Bearer {ADMIN_TOKEN}"));
        let mut rec = Rec {
            store: store.into(),
            size: n,
            section: "catalog",
            name: label,
            metrics: Vec::new(),
            error: None,
            note: None,
        };
        // The store page answers "computing" until its background walk is done: the
        // first answer's time, then how long the walk took, then the warm answers.
        let walked = match rec.name.starts_with("store page") {
            true => Some(store_walk(ctx, &req)),
            false => None,
        };
        // Then how long a change takes to show there (a model created, then deleted).
        let followed = match walked {
            Some(Ok(_)) => Some(store_follow(ctx, &req, base)),
            _ => None,
        };
        match (walked, series(ctx, &req, 3, Duration::from_secs(15))) {
            (Some(Err(e)), _) | (_, Err(e)) => rec.error = Some(e),
            (walked, Ok((first, _, warm))) => {
                let (first_ms, walk_ms) = match walked {
                    Some(Ok(times)) => times,
                    _ => (first.total.as_secs_f64() * 1000.0, f64::NAN),
                };
                rec.metrics = vec![
                    ("bytes", first.body.len() as f64),
                    ("first_ms", first_ms),
                    ("warm_ms", warm),
                    ("walk_ms", walk_ms),
                ];
                match followed {
                    Some(Ok(ms)) => rec.metrics.push(("follow_ms", ms)),
                    Some(Err(e)) => rec.error = Some(e),
                    None => {}
                }
            }
        }
        report.add(rec);
    }
}

/// The store page's first answer (ms) and the time until it carries totals (ms), asking
/// every 50 ms for at most 10 minutes.
fn store_walk(ctx: &Ctx, req: &Req) -> Result<(f64, f64), String> {
    ctx.rt.block_on(async {
        let started = Instant::now();
        let first = load::ok(&ctx.client, req).await?;
        let mut answer = first.body.clone();
        for _ in 0..12_000 {
            let page: serde_json::Value =
                serde_json::from_slice(&answer).map_err(|e| format!("store page: {e}"))?;
            if page["computing"] != true {
                let walk = started.elapsed().as_secs_f64() * 1000.0;
                return Ok((first.total.as_secs_f64() * 1000.0, walk));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            answer = load::ok(&ctx.client, req).await?.body;
        }
        Err("store page: still computing after 10 minutes".to_string())
    })
}

/// How long a model created through the Hub API takes to be counted on the store page
/// (ms, asking every 20 ms for at most a minute); the model is deleted again, and its
/// going awaited, so the store is left as it was.
fn store_follow(ctx: &Ctx, req: &Req, base: &str) -> Result<f64, String> {
    ctx.rt.block_on(async {
        let models = |page: &[u8]| -> Result<u64, String> {
            let page: serde_json::Value =
                serde_json::from_slice(page).map_err(|e| format!("store page: {e}"))?;
            Ok(page["items"]["models"].as_u64().unwrap_or(0))
        };
        let before = models(&load::ok(&ctx.client, req).await?.body)?;
        let repo = serde_json::json!({"name": "follow-probe", "organization": "scale-bench"});
        let change = |method: reqwest::Method, path: &str| {
            ctx.client
                .request(method, format!("{base}{path}"))
                .bearer_auth(ADMIN_TOKEN)
                .json(&repo)
                .send()
        };
        let until = |count: u64| async move {
            let started = Instant::now();
            for _ in 0..3000 {
                if models(&load::ok(&ctx.client, req).await?.body)? == count {
                    return Ok(started.elapsed().as_secs_f64() * 1000.0);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(format!(
                "store page: {count} models not shown within a minute"
            ))
        };
        let created = change(reqwest::Method::POST, "/api/repos/create")
            .await
            .map_err(|e| e.to_string())?;
        if !created.status().is_success() {
            return Err(format!("creating the probe model: {}", created.status()));
        }
        let shown = until(before + 1).await?;
        change(reqwest::Method::DELETE, "/api/repos/delete")
            .await
            .map_err(|e| e.to_string())?;
        until(before).await?;
        Ok(shown)
    })
}

fn gen_rec(store: &str, size: usize, step: &gen::Step) -> Rec {
    Rec {
        store: store.into(),
        size,
        section: "generation",
        name: format!("{} ({})", step.name, step.unit),
        metrics: vec![
            ("items", step.items as f64),
            ("seconds", step.seconds),
            ("per_s", step.rate()),
            ("first_tenth_per_s", step.first_rate),
            ("last_tenth_per_s", step.last_rate),
            ("retries", step.retries as f64),
        ],
        error: step.error.clone(),
        note: step
            .retry_sample
            .as_ref()
            .map(|e| format!("{} retries; the first: {e}", step.retries)),
    }
}

/// Everything measured on one generated store of size `n`.
fn measure_store(ctx: &Ctx, report: &mut Report, store: &str, n: usize, args: &StoreArgs) {
    let (guard, base, startup) = serve(ctx.work, args);
    let pid = guard.0.id();
    std::thread::sleep(Duration::from_millis(500));
    let idle = status_kib(pid, "VmRSS");
    let process = |name: &str, metric: &'static str, value: f64| Rec {
        store: store.into(),
        size: n,
        section: "process",
        name: name.into(),
        metrics: vec![(metric, value)],
        error: None,
        note: None,
    };
    report.add(process(
        "start-up to listening",
        "ms",
        startup.as_secs_f64() * 1000.0,
    ));
    report.add(process("idle RSS after start", "kib", idle));
    measure_roots(ctx, report, store, n, &base);
    report.add(process(
        "peak RSS after the root pages",
        "kib",
        status_kib(pid, "VmHWM"),
    ));
    measure_catalog(ctx, report, store, n, &base);
    report.add(process(
        "peak RSS after the web catalog",
        "kib",
        status_kib(pid, "VmHWM"),
    ));
    measure_hot(ctx, report, store, n, &base, pid, args.direct.as_ref());
    report.add(process(
        "RSS after the hot loads",
        "kib",
        status_kib(pid, "VmRSS"),
    ));
    measure_clients(ctx, report, store, n, &base);
    report.add(process(
        "peak RSS (VmHWM) after all requests",
        "kib",
        status_kib(pid, "VmHWM"),
    ));
    drop(guard);

    eprintln!("scale: {store} N={n}: bundle have");
    let mut rec = Rec {
        store: store.into(),
        size: n,
        section: "cli",
        name: "bundle have".into(),
        metrics: Vec::new(),
        error: None,
        note: None,
    };
    let have = ctx.work.join("have.json");
    match measured_cli(ctx.work, args, &["bundle", "have"]) {
        Ok((s, peak, bytes)) => {
            rec.metrics = vec![("seconds", s), ("peak_kib", peak), ("bytes", bytes as f64)];
            std::fs::copy(ctx.work.join("cli-stdout"), &have).unwrap();
        }
        Err(e) => rec.error = Some(e),
    }
    let had = rec.error.is_none();
    report.add(rec);
    if had {
        report.add(bundle_export_have(ctx, store, n, args, &have));
    }
    std::fs::remove_file(&have).ok();

    eprintln!(
        "scale: {store} N={n}: pypi import of {} wheels",
        ctx.imports
    );
    let mut rec = Rec {
        store: store.into(),
        size: n,
        section: "cli",
        name: if args.kept {
            format!("pypi import, {} wheels already there", ctx.imports)
        } else {
            format!("pypi import, {} new wheels", ctx.imports)
        },
        metrics: Vec::new(),
        error: None,
        note: None,
    };
    match measured_cli(
        ctx.work,
        args,
        &["pypi", "import", ctx.wheelhouse.to_str().unwrap()],
    ) {
        Ok((s, peak, _)) => {
            rec.metrics = vec![
                ("seconds", s),
                ("per_s", ctx.imports as f64 / s),
                ("peak_kib", peak),
            ]
        }
        Err(e) => rec.error = Some(e),
    }
    report.add(rec);
}

/// The Python with huggingface_hub the tests set up (`AIRLOCK_TEST_VENV`, or
/// `target/test-venv` as `bash tests/run-all.sh` leaves it).
fn hf_python() -> Option<PathBuf> {
    let venv = std::env::var_os("AIRLOCK_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv"));
    let python = venv.join("bin/python");
    let has_hub = Command::new(&python)
        .args(["-c", "import huggingface_hub"])
        .output()
        .is_ok_and(|o| o.status.success());
    has_hub.then_some(python)
}

/// huggingface_hub itself on the large repository: the whole recursive tree (every
/// page), the repository's info, and a `snapshot_download` of ten files picked by
/// `allow_patterns` from all of them.
fn measure_clients(ctx: &Ctx, report: &mut Report, store: &str, n: usize, base: &str) {
    let Some(python) = hf_python() else {
        eprintln!(
            "scale: huggingface_hub SKIPPED: no venv with it (bash tests/run-all.sh makes one)"
        );
        return;
    };
    eprintln!("scale: {store} N={n}: huggingface_hub on the large repository");
    let script = format!(
        r#"
import json, tempfile, time
from huggingface_hub import HfApi, snapshot_download
api = HfApi()
repo = "{repo}"
out = {{}}
t = time.perf_counter()
n = sum(1 for _ in api.list_repo_tree(repo, recursive=True))
out["list_repo_tree(recursive=True)"] = (time.perf_counter() - t, n)
t = time.perf_counter()
n = len(api.model_info(repo).siblings)
out["model_info (siblings)"] = (time.perf_counter() - t, n)
t = time.perf_counter()
folder = snapshot_download(repo, allow_patterns=["{pattern}"], cache_dir=tempfile.mkdtemp())
import os
n = sum(len(f) for _, _, f in os.walk(folder))
out["snapshot_download(allow_patterns=10 files)"] = (time.perf_counter() - t, n)
print(json.dumps(out))
"#,
        repo = names::BIG_HF,
        pattern = names::big_hf_file(12_340).replace("0.txt", "?.txt"),
    );
    let home = ctx.work.join("hf-home");
    let output = Command::new(python)
        .arg("-c")
        .arg(script)
        .env("HF_ENDPOINT", base)
        .env("HF_HOME", &home)
        .env("HF_TOKEN", ADMIN_TOKEN)
        .env("HF_HUB_DISABLE_XET", "1")
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        .output();
    let _ = std::fs::remove_dir_all(&home);
    let parsed: Result<BTreeMap<String, (f64, f64)>, String> = match output {
        Ok(o) if o.status.success() => {
            serde_json::from_slice(&o.stdout).map_err(|e| format!("{e}"))
        }
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr)
            .lines()
            .last()
            .unwrap_or_default()
            .to_string()),
        Err(e) => Err(e.to_string()),
    };
    match parsed {
        Ok(figures) => {
            for (name, (seconds, items)) in figures {
                report.add(Rec {
                    store: store.into(),
                    size: n,
                    section: "clients",
                    name,
                    metrics: vec![("seconds", seconds), ("items", items)],
                    error: None,
                    note: None,
                });
            }
        }
        Err(e) => report.add(Rec {
            store: store.into(),
            size: n,
            section: "clients",
            name: "huggingface_hub".into(),
            metrics: Vec::new(),
            error: Some(e),
            note: None,
        }),
    }
}

/// Generates the sized items from size `from` up to `n` into an opened store and checks
/// the listings; the store also holds `imported` projects of an earlier size's import.
fn generate_sized(
    ctx: &Ctx,
    report: &mut Report,
    store: &str,
    (from, n): (usize, usize),
    imported: usize,
    generator: &gen::Generator,
) {
    let started = Instant::now();
    let steps = ctx.rt.block_on(gen::sized_items(generator, from, n));
    let made = (n - from) + (n / 10 - from / 10) + (n / 100 - from / 100);
    let total = started.elapsed().as_secs_f64();
    for step in &steps {
        report.add(gen_rec(store, n, step));
    }
    report.add(Rec {
        store: store.into(),
        size: n,
        section: "generation",
        name: "all sized items (items)".into(),
        metrics: vec![
            ("items", made as f64),
            ("seconds", total),
            ("per_s", made as f64 / total),
            ("first_tenth_per_s", f64::NAN),
            ("last_tenth_per_s", f64::NAN),
            ("retries", 0.0),
        ],
        error: None,
        note: None,
    });
    let listed = ctx.rt.block_on(generator.listed());
    let stored = ctx.rt.block_on(generator.stored_projects()).unwrap_or(0);
    for (name, found, expected) in [
        ("pypi project documents stored", stored, n + 1 + imported),
        ("pypi project list entries", listed.0, n + 1 + imported),
        ("oci catalog entries", listed.1, n / 10 + 2),
        ("hf models list entries", listed.2, n / 100 + 2),
    ] {
        report.add(Rec {
            store: store.into(),
            size: n,
            section: "listing",
            name: name.into(),
            metrics: vec![("found", found as f64), ("expected", expected as f64)],
            error: (found != expected).then(|| format!("{found} listed, {expected} made")),
            note: None,
        });
    }
}

/// A generator writing into the filesystem store at `root`.
fn fs_generator(ctx: &Ctx, root: &Path, concurrency: usize) -> gen::Generator {
    ctx.rt.block_on(async {
        let stores = gen::open(
            &airlock::store::StoreUrl::File(root.to_path_buf()),
            &Default::default(),
        )
        .await
        .unwrap();
        gen::Generator::new(stores, concurrency)
    })
}

/// Marks a kept store as whole (`AIRLOCK_SCALE_KEEP`): written after its generation.
const GENERATED_MARK: &str = ".scale-generated";

fn run_fs(ctx: &Ctx, report: &mut Report, sizes: &[usize], concurrency: usize) {
    let kept = ctx.keep.then(|| ctx.out_dir.join("stores"));
    let stores_dir = kept.clone().unwrap_or_else(|| ctx.work.to_path_buf());
    std::fs::create_dir_all(&stores_dir).unwrap();
    let reused = |n: usize| {
        kept.is_some()
            && stores_dir
                .join(format!("fs-{n}"))
                .join(GENERATED_MARK)
                .exists()
    };
    let template = stores_dir.join("fs-large");
    if sizes.iter().all(|&n| reused(n)) {
        return run_fs_sizes(ctx, report, sizes, concurrency, &stores_dir, kept.is_some());
    }
    let _ = std::fs::remove_dir_all(&template);
    eprintln!("scale: fs: generating the large items once (copied into every size)");
    let generator = fs_generator(ctx, &template, concurrency);
    let steps = ctx.rt.block_on(gen::large_items(&generator, &gen_large()));
    for step in &steps {
        report.add(gen_rec("fs", 0, step));
    }
    drop(generator);
    run_fs_sizes(ctx, report, sizes, concurrency, &stores_dir, kept.is_some());
}

/// Each size's store (a copy of the large items' one, `fs-large` in `stores_dir`),
/// generated unless kept from an earlier run, then measured.
fn run_fs_sizes(
    ctx: &Ctx,
    report: &mut Report,
    sizes: &[usize],
    concurrency: usize,
    stores_dir: &Path,
    keep: bool,
) {
    let template = stores_dir.join("fs-large");
    for &n in sizes {
        let root = stores_dir.join(format!("fs-{n}"));
        let mut measured_before = false;
        if keep && root.join(GENERATED_MARK).exists() {
            eprintln!(
                "scale: fs N={n}: measuring the store kept in {}",
                root.display()
            );
            measured_before = true;
        } else {
            let _ = std::fs::remove_dir_all(&root);
            let status = Command::new("cp")
                .args(["-a", template.to_str().unwrap(), root.to_str().unwrap()])
                .status()
                .unwrap();
            assert!(status.success(), "copying the large items' store");
            let generator = fs_generator(ctx, &root, concurrency);
            generate_sized(ctx, report, "fs", (0, n), 0, &generator);
            drop(generator);
            std::fs::write(root.join(GENERATED_MARK), b"").unwrap();
        }
        let args = StoreArgs {
            args: vec!["--store".into(), root.to_str().unwrap().into()],
            envs: Vec::new(),
            kept: measured_before,
            direct: None,
        };
        measure_store(ctx, report, "fs", n, &args);
        report.add(Rec {
            store: "fs".into(),
            size: n,
            section: "process",
            name: "store size on disk".into(),
            metrics: vec![("kib", support::store_bytes(&root) as f64 / 1024.0)],
            error: None,
            note: None,
        });
        if !keep {
            let _ = std::fs::remove_dir_all(&root);
        }
        println!(
            "{}",
            report.tables("fs", &sizes[..=sizes.iter().position(|s| *s == n).unwrap()])
        );
    }
}

fn run_s3(ctx: &Ctx, report: &mut Report, sizes: &[usize], concurrency: usize) {
    if !have("garage") {
        println!("scale: s3 SKIPPED: no `garage` on PATH (cargo install garage --locked)");
        return;
    }
    let garage = match std::panic::catch_unwind(garage::Garage::start) {
        Ok(g) => g,
        Err(_) => {
            println!("scale: s3 SKIPPED: Garage did not start");
            return;
        }
    };
    // One store grown from each size to the next: the large items are made once, and
    // each size adds only its new items (generation on Garage runs at a tenth of the
    // filesystem's rate here, so N=10,000 would otherwise cost the smaller sizes again).
    let prefix = format!("scale-{}", hex::encode(rand::random::<[u8; 4]>()));
    let url = airlock::store::StoreUrl::S3 {
        bucket: garage.bucket.clone(),
        prefix: prefix.clone(),
    };
    let generator = ctx.rt.block_on(async {
        let stores = gen::open(&url, &garage.settings()).await.unwrap();
        gen::Generator::new(stores, concurrency)
    });
    eprintln!("scale: s3: generating the large items once");
    let steps = ctx.rt.block_on(gen::large_items(&generator, &gen_large()));
    for step in &steps {
        report.add(gen_rec("s3", 0, step));
    }
    let mut sorted = sizes.to_vec();
    sorted.sort_unstable();
    let mut generated = 0;
    for &n in &sorted {
        // From the second size on, the store holds the wheels the last size imported.
        let imported = if generated > 0 { ctx.imports } else { 0 };
        generate_sized(ctx, report, "s3", (generated, n), imported, &generator);
        let grown = generated > 0;
        generated = n;
        let args = StoreArgs {
            args: vec![
                "--store".into(),
                format!("s3://{}/{prefix}", garage.bucket),
                "--s3-endpoint".into(),
                garage.endpoint.clone(),
                "--s3-region".into(),
                garage.region.clone(),
            ],
            envs: vec![
                ("AWS_ACCESS_KEY_ID".into(), garage.key_id.clone()),
                ("AWS_SECRET_ACCESS_KEY".into(), garage.secret.clone()),
                ("AWS_REGION".into(), garage.region.clone()),
            ],
            kept: grown,
            direct: Some(ctx.rt.block_on(async {
                let settings = airlock::store::S3Settings {
                    redirect_downloads: true,
                    ..garage.settings()
                };
                let url: airlock::store::StoreUrl =
                    format!("s3://{}/{prefix}", garage.bucket).parse().unwrap();
                airlock::store::open(&url, &settings).await.unwrap()
            })),
        };
        measure_store(ctx, report, "s3", n, &args);
        println!(
            "{}",
            report.tables(
                "s3",
                &sorted[..=sorted.iter().position(|s| *s == n).unwrap()]
            )
        );
    }
    drop(generator);
    drop(garage);
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("scale: run with `cargo bench --bench scale`");
        return;
    }
    let sizes: Vec<usize> = std::env::var("AIRLOCK_SCALE_SIZES")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            s.trim()
                .parse()
                .ok()
                .filter(|n| (100..=10_000_000).contains(n))
                .unwrap_or_else(|| {
                    panic!("AIRLOCK_SCALE_SIZES: `{s}` is not a size of 100 or more")
                })
        })
        .collect();
    let stores: Vec<String> = std::env::var("AIRLOCK_SCALE_STORES")
        .unwrap_or_else(|_| "fs".into())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let duration = Duration::from_secs(count_from_env("AIRLOCK_SCALE_DURATION", 2, 60) as u64);
    let concurrency = count_from_env("AIRLOCK_SCALE_CONCURRENCY", 8, 256);
    let imports = count_from_env("AIRLOCK_SCALE_IMPORT", 1000, 100_000);

    // target/scale/, next to the bench binary's target/release/deps/.
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    let out_dir = target.join("scale");
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut report = Report {
        dir: out_dir.clone(),
        recs: Vec::new(),
    };

    let tmp = tempfile::Builder::new()
        .prefix("airlock-scale-")
        .tempdir()
        .unwrap();
    let work = tmp.path();
    let static_root = work.join("static");
    std::fs::create_dir_all(&static_root).unwrap();
    let nginx = support::nginx(work, &static_root);
    if nginx.is_none() {
        println!("scale: nginx not found: no reference figures");
    }
    let wheelhouse = work.join("wheelhouse");
    std::fs::create_dir_all(&wheelhouse).unwrap();
    for i in 0..imports {
        wheels::wheel(&format!("imp_{i:05}"), "1.0", &[], Some(">=3.8")).write_to(&wheelhouse);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ctx = Ctx {
        rt: &rt,
        client: rt.block_on(async { load::client() }),
        work,
        static_root,
        nginx_port: nginx.as_ref().map(|(_, p)| *p),
        duration,
        wheelhouse: &wheelhouse,
        imports,
        keep: std::env::var("AIRLOCK_SCALE_KEEP").is_ok_and(|v| v == "1"),
        out_dir: out_dir.clone(),
    };
    let started = Instant::now();
    println!(
        "scale: sizes {sizes:?}, stores {stores:?}, {}s loads, generator concurrency {concurrency}, large items {:?}",
        duration.as_secs(),
        gen_large()
    );
    let mut printed = String::new();
    for store in &stores {
        match store.as_str() {
            "fs" => run_fs(&ctx, &mut report, &sizes, concurrency),
            "s3" => run_s3(&ctx, &mut report, &sizes, concurrency),
            other => println!("scale: unknown store `{other}` in AIRLOCK_SCALE_STORES (fs, s3)"),
        }
        printed.push_str(&report.tables(store, &sizes));
    }
    let summary = format!(
        "{printed}\nscale: whole run {:.0} s; figures in {}/results.jsonl and results.csv\n",
        started.elapsed().as_secs_f64(),
        out_dir.display()
    );
    println!("\n######## summary ########{summary}");
    let mut f = std::fs::File::create(out_dir.join("tables.txt")).unwrap();
    f.write_all(summary.as_bytes()).unwrap();
    drop(nginx);
}
