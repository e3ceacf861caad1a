//! What the benches share: starting Airlock on loopback and stopping what they start,
//! their knobs (sizes and counts from the environment), and small measuring helpers.

#![allow(dead_code)] // each bench uses its own subset

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_airlock");

/// Stops the process it holds when dropped.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        // A graceful stop first: nginx's master takes its workers down with it on
        // SIGQUIT, while SIGKILL would leave them running.
        let _ = Command::new("kill")
            .args(["-QUIT", &self.0.id().to_string()])
            .status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn airlock(dir: &Path, store: &Path) -> (Guard, String) {
    airlock_with(dir, store, &[])
}

/// `airlock serve` on `store` with extra `serve` arguments; returns its `http://` base.
pub fn airlock_with(dir: &Path, store: &Path, extra: &[&str]) -> (Guard, String) {
    let mut child = Command::new(BIN)
        .current_dir(dir)
        .args([
            "--store",
            store.to_str().unwrap(),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(extra)
        .env("AIRLOCK_LOG", "warn,airlock::server=info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
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
    std::thread::spawn(move || for _ in lines {});
    (Guard(child), base)
}

/// nginx serving `root` on a free loopback port with sendfile: the static-file reference.
pub fn nginx(dir: &Path, root: &Path) -> Option<(Guard, u16)> {
    let nginx = ["/usr/sbin/nginx", "nginx"]
        .into_iter()
        .find(|n| Path::new(n).exists() || have(n))?;
    let port = free_port();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off; worker_processes auto; user root; pid {d}/nginx.pid; error_log {d}/nginx-error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{ access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;\n\
               client_body_temp_path {d}/b; proxy_temp_path {d}/p; fastcgi_temp_path {d}/f; uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;\n\
               server {{ listen 127.0.0.1:{port}; root {r}; }} }}\n",
            d = dir.display(),
            r = root.display()
        ),
    )
    .unwrap();
    let child = Command::new(nginx)
        .args(["-c", conf.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    std::thread::sleep(Duration::from_millis(300));
    Some((Guard(child), port))
}

/// Debian's docker-registry (distribution 2.8, filesystem driver) with its data under
/// `dir`, on a free loopback port; returns it and its `host:port` once it listens.
pub fn docker_registry(bin: &str, dir: &Path) -> Option<(Guard, String)> {
    let port = free_port();
    let conf = dir.join("registry.yml");
    std::fs::write(
        &conf,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new(bin)
        .args(["serve", conf.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let guard = Guard(child);
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            return Some((guard, addr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("docker-registry did not listen on {addr}");
    None
}

/// A size such as `1GiB`, `64MiB`, `512MB`, `256 MiB` or plain bytes from `var`, else
/// `default`.
pub fn size_from_env(var: &str, default: u64) -> u64 {
    let Ok(text) = std::env::var(var) else {
        return default;
    };
    let text = text.trim();
    let (number, unit) =
        text.split_at(text.find(|c: char| c.is_alphabetic()).unwrap_or(text.len()));
    let n: u64 = number
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{var}: a number with an optional unit, e.g. 256MiB"));
    n * match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => panic!("{var}: unknown unit {other}"),
    }
}

/// A count from `var` between 1 and `max`, else `default`.
pub fn count_from_env(var: &str, default: usize, max: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|r| (1..=max).contains(r))
        .unwrap_or(default)
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut std::fs::File::open(path).unwrap(), &mut hasher).unwrap();
    hex::encode(hasher.finalize())
}

/// The bytes of every file below `root` (a filesystem store), at any depth.
pub fn store_bytes(root: &Path) -> u64 {
    std::fs::read_dir(root)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let meta = e.metadata().unwrap();
                    if meta.is_dir() {
                        store_bytes(&e.path())
                    } else {
                        meta.len()
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Busy CPU time of the whole machine (all CPUs) from /proc/stat, in clock ticks.
pub fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let v: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal ...: all but idle and iowait.
    [0, 1, 2, 5, 6, 7].iter().filter_map(|i| v.get(*i)).sum()
}

/// Clock ticks per second (`_SC_CLK_TCK`), the unit of /proc CPU times; 100 if unknown.
pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}
