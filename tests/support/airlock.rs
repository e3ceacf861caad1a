//! Runs the real `airlock` binary on an ephemeral loopback port.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_airlock");

pub struct Airlock {
    child: Child,
    /// `http://127.0.0.1:PORT` (`https://` when serving TLS)
    pub base: String,
    pub log: Arc<Mutex<String>>,
}

/// A command for the binary with no inherited Airlock or AWS settings.
pub fn command(cwd: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(cwd);
    for (k, _) in std::env::vars() {
        if k.starts_with("AIRLOCK_") || k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

impl Airlock {
    /// Starts `airlock serve` with the given extra arguments and environment, listening on
    /// 127.0.0.1:0 unless the arguments say otherwise, and waits until it listens.
    pub fn start(cwd: &Path, args: &[&str], envs: &[(&str, &str)]) -> Airlock {
        let mut cmd = command(cwd);
        cmd.arg("serve");
        if !args.contains(&"--listen") && !envs.iter().any(|(k, _)| *k == "AIRLOCK_LISTEN") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(args)
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn airlock");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Log first, then announce: callers read the log as soon as start() returns.
                {
                    let mut log = sink.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
                let announced = ["listening on http://", "listening on https://"]
                    .iter()
                    .find_map(|prefix| line.find(prefix));
                if let Some(i) = announced {
                    let addr: String = line[i + "listening on ".len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || ":/.[]".contains(*c))
                        .collect();
                    let _ = tx.send(addr);
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                panic!("airlock did not start; log:\n{}", log.lock().unwrap());
            }
        };
        Airlock { child, base, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// `http(s)://127.0.0.1:PORT` of the S3 listener (`--s3api-listen`), as announced
    /// before the main listener (so it is in the log once the server is up).
    pub fn s3_endpoint(&self) -> String {
        let log = self.log();
        let at = log.find("S3 API at ").expect("S3 listener announced") + "S3 API at ".len();
        log[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || ":/.".contains(*c))
            .collect()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The log once it contains `needle` (access lines are written when a response body
    /// has been sent, which can be just after the client has it).
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "`{needle}` never appeared in the log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Airlock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
