//! A real Garage S3 server on loopback for the S3 store tests.
//!
//! [`Garage::start`] runs `garage server` (v2.x, from PATH) on free loopback ports with a
//! temporary directory, one node, the sqlite metadata engine and fixed test credentials,
//! then lays out the node, imports the key and creates the bucket with the `garage` CLI.
//! [`shared`] starts one lazily per test binary; [`s3_store`] opens an `S3Store` on it
//! under a fresh random prefix, so suite tests never see each other's objects.
//!
//! No Garage outlives its test binary: every server is spawned from one long-lived
//! thread with `PR_SET_PDEATHSIG = SIGKILL`, so the kernel kills it when the binary exits
//! or dies, even though the shared instance lives in a static that is never dropped.
//! Data directories of earlier binaries (named after their pid) are removed at the next
//! start once that pid is gone.

use airlock::store::{DynStore, S3Settings, S3Store};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Fixed test credentials: `garage key import` accepts them, so every run uses the same.
pub const KEY_ID: &str = "GK0a1b2c3d4e5f60718293a4b5";
pub const SECRET: &str = "5e3f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7";
pub const KEY_NAME: &str = "airlock-test";
pub const BUCKET: &str = "airlock-test";
pub const REGION: &str = "garage";
const DIR_PREFIX: &str = "airlock-garage-";
/// How long a fresh or restarted server may take to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Garage {
    /// `http://127.0.0.1:PORT`, the S3 API.
    pub endpoint: String,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
    pub region: String,
    /// Garage's admin API (`http://127.0.0.1:PORT`), token `admin_token`.
    pub admin_endpoint: String,
    pub admin_token: String,
    /// Data, metadata, `garage.toml` and `garage.log`; removed on drop.
    pub dir: PathBuf,
    s3_addr: SocketAddr,
    process: Mutex<Option<Child>>,
}

impl std::fmt::Debug for Garage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Garage")
            .field("endpoint", &self.endpoint)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Garage {
    /// Starts a new, empty Garage with the test key and bucket, and waits until it
    /// serves S3. Blocks (call from `spawn_blocking` in async code if that matters).
    pub fn start() -> Garage {
        check_garage_on_path();
        sweep_dead_dirs(DIR_PREFIX);
        let dir = std::env::temp_dir().join(format!(
            "{DIR_PREFIX}{}-{}",
            std::process::id(),
            hex::encode(rand::random::<[u8; 6]>())
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let [rpc_port, s3_port, admin_port] = free_ports();
        let admin_token = hex::encode(rand::random::<[u8; 16]>());
        let config = format!(
            r#"metadata_dir = "{dir}/meta"
data_dir = "{dir}/data"
db_engine = "sqlite"
replication_factor = 1

rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{rpc_secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3_port}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin_port}"
admin_token = "{admin_token}"
"#,
            dir = dir.display(),
            rpc_secret = hex::encode(rand::random::<[u8; 32]>()),
        );
        std::fs::write(dir.join("garage.toml"), config).unwrap();
        let garage = Garage {
            endpoint: format!("http://127.0.0.1:{s3_port}"),
            bucket: BUCKET.to_string(),
            key_id: KEY_ID.to_string(),
            secret: SECRET.to_string(),
            region: REGION.to_string(),
            admin_endpoint: format!("http://127.0.0.1:{admin_port}"),
            admin_token,
            s3_addr: SocketAddr::from(([127, 0, 0, 1], s3_port)),
            process: Mutex::new(None),
            dir,
        };
        garage.spawn_server();
        garage.wait_for_rpc();
        garage.setup();
        garage.wait_for_s3();
        garage
    }

    /// Kills the server; its data stays for [`Garage::restart`].
    pub fn stop(&self) {
        if let Some(mut child) = self.process.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports and data, and waits until it serves S3.
    pub fn restart(&self) {
        self.stop();
        self.spawn_server();
        self.wait_for_rpc();
        self.wait_for_s3();
    }

    /// Settings for an `S3Store` on this server (explicit credentials: no process env).
    pub fn settings(&self) -> S3Settings {
        S3Settings {
            endpoint: Some(self.endpoint.clone()),
            region: Some(self.region.clone()),
            path_style: Some(true),
            access_key_id: Some(self.key_id.clone()),
            secret_access_key: Some(self.secret.clone()),
            ..Default::default()
        }
    }

    /// Opens an `S3Store` on the test bucket under `prefix`.
    pub async fn store(&self, prefix: &str) -> S3Store {
        S3Store::open(self.bucket.clone(), prefix.to_string(), &self.settings())
            .await
            .unwrap_or_else(|e| {
                panic!("opening the S3 store on {self:?}: {e:#}{}", self.log_tail())
            })
    }

    /// A plain S3 client on this server, for looking at the bucket the way S3 sees it
    /// (raw listings, incomplete multipart uploads) rather than through a store.
    pub fn client(&self) -> aws_sdk_s3::Client {
        use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(http)
            .region(Region::new(self.region.clone()))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .credentials_provider(Credentials::new(
                &self.key_id,
                &self.secret,
                None,
                None,
                "airlock-test",
            ))
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// `garage -c <this server's config>`, for running more CLI commands.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("garage");
        cmd.arg("-c").arg(self.dir.join("garage.toml"));
        cmd.env("RUST_LOG", "warn");
        cmd
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self
            .command()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running garage {args:?}: {e}"));
        if !out.status.success() {
            panic!(
                "garage {} failed ({}): {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                self.log_tail()
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn setup(&self) {
        let id = self.run(&["node", "id", "-q"]);
        let id = id.trim().split('@').next().unwrap().to_string();
        self.run(&["layout", "assign", "-z", "dc1", "-c", "1G", &id]);
        self.run(&["layout", "apply", "--version", "1"]);
        self.run(&[
            "key",
            "import",
            "--yes",
            &self.key_id,
            &self.secret,
            "-n",
            KEY_NAME,
        ]);
        self.run(&["bucket", "create", &self.bucket]);
        self.run(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            &self.bucket,
            "--key",
            KEY_NAME,
        ]);
    }

    fn spawn_server(&self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("garage.log"))
            .unwrap();
        let mut cmd = self.command();
        cmd.arg("server")
            .env("RUST_LOG", "garage=info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = spawn_tied_to_this_process(cmd)
            .unwrap_or_else(|e| panic!("starting garage server: {e}"));
        *self.process.lock().unwrap() = Some(child);
    }

    fn wait_for_rpc(&self) {
        self.wait_until("`garage status` to succeed", || {
            self.command()
                .arg("status")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
    }

    fn wait_for_s3(&self) {
        self.wait_until("the S3 port to accept connections", || {
            TcpStream::connect_timeout(&self.s3_addr, Duration::from_millis(200)).is_ok()
        });
    }

    fn wait_until(&self, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if ready() {
                return;
            }
            if let Some(child) = self.process.lock().unwrap().as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "garage server exited ({status}) while waiting for {what}{}",
                        self.log_tail()
                    );
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "garage not ready after {READY_TIMEOUT:?}: waited for {what}{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The end of the server log, for panic messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("garage.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!(
            "\n--- {} (last lines) ---\n{tail}",
            self.dir.join("garage.log").display()
        )
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The Garage every test in this binary shares, started on first use.
pub fn shared() -> &'static Garage {
    static SHARED: OnceLock<Garage> = OnceLock::new();
    SHARED.get_or_init(Garage::start)
}

/// An `S3Store` on the shared Garage under a fresh random prefix.
pub async fn s3_store() -> (DynStore, ()) {
    let garage = tokio::task::spawn_blocking(shared).await.unwrap();
    let prefix = format!("suite/{}", hex::encode(rand::random::<[u8; 8]>()));
    (Arc::new(garage.store(&prefix).await) as DynStore, ())
}

fn check_garage_on_path() {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("garage").is_file()));
    if !found {
        panic!("garage not found on PATH: run `bash tests/run-all.sh` (installs it with cargo install garage --locked) or install it yourself");
    }
}

/// Distinct free loopback ports (all bound at once, then released for Garage).
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

/// Removes directories under the temp dir named `<prefix><pid>-...` whose process is
/// gone: left by test or bench binaries killed before they could clean up.
pub fn sweep_dead_dirs(prefix: &str) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `cmd` so that it dies with this process. `PR_SET_PDEATHSIG` fires when the
/// *thread* that forked the child exits, so all spawns happen on one thread that lives
/// as long as the process.
fn spawn_tied_to_this_process(cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("garage-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    set_death_signal(&mut cmd);
                    let _ = reply.send(cmd.spawn());
                }
                // The sender lives in a static, so this thread never gets here.
                loop {
                    std::thread::park();
                }
            })
            .unwrap();
        Mutex::new(tx)
    });
    let (reply, result) = mpsc::channel();
    spawner.lock().unwrap().send((cmd, reply)).unwrap();
    result.recv().unwrap()
}

#[cfg(target_os = "linux")]
fn set_death_signal(cmd: &mut Command) {
    use std::os::raw::{c_int, c_ulong};
    use std::os::unix::process::CommandExt;
    // Declared here rather than adding the libc crate for two calls; both are in the C
    // library std already links, and both are async-signal-safe.
    extern "C" {
        fn prctl(option: c_int, ...) -> c_int;
        fn getppid() -> c_int;
    }
    const PR_SET_PDEATHSIG: c_int = 1;
    const SIGKILL: c_ulong = 9;
    let parent = std::process::id() as c_int;
    // SAFETY: the closure only makes async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before prctl took effect: do not start orphaned.
            if getppid() != parent {
                return Err(std::io::Error::other("test process exited"));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn set_death_signal(_cmd: &mut Command) {}
