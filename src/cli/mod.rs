//! The command line: `airlock serve`, `airlock check`, and the commands that work on
//! the store directly (imports, bundles, mirror). Every subcommand takes the same store
//! configuration; each builds only the store and the domain objects it uses.

mod bundle;
mod gc;
mod hf;
mod mirror;
mod oci;
mod pypi;

use crate::config::{Config, GlobalArgs, LogFormat, ServeArgs};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "airlock",
    version,
    about = "Hugging Face, PyPI and OCI APIs for air-gapped ML platforms, from one object store"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// The Python package index: import wheelhouses, yank versions.
    #[command(subcommand)]
    Pypi(pypi::PypiCommand),
    /// The OCI registry: import image layouts and docker-save tarballs, print containerd
    /// and podman mirror configuration.
    #[command(subcommand)]
    Oci(oci::OciCommand),
    /// The Hugging Face Hub: import model and dataset repositories.
    #[command(subcommand)]
    Hf(hf::HfCommand),
    /// Bundles: carry the store's content across an air gap as verified, signed files.
    #[command(subcommand)]
    Bundle(bundle::BundleCommand),
    /// Fill the store from upstream hubs, indexes and registries named in a content spec.
    Mirror(mirror::MirrorArgs),
    /// Garbage collection: report what nothing references, remove abandoned uploads.
    Gc(gc::GcArgs),
    /// Check the configuration and that the store is reachable and writable, then exit.
    Check,
    /// Exit 0 if the server at URL answers /healthz with 200 (for container health checks).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let serve_args = match &cli.command {
        Command::Serve(args) => args.clone(),
        Command::Healthcheck { url } => return healthcheck(url),
        Command::Check
        | Command::Pypi(_)
        | Command::Hf(_)
        | Command::Oci(_)
        | Command::Bundle(_)
        | Command::Mirror(_)
        | Command::Gc(_) => ServeArgs::default(),
    };
    let config = match Config::resolve(&cli.global, &serve_args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("airlock: {e}");
            return ExitCode::from(2);
        }
    };
    let serving = matches!(cli.command, Command::Serve(_));
    let log = init_tracing(config.log_format, serving);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        let result = match cli.command {
            Command::Serve(_) => crate::server::serve(config).await,
            Command::Check => check(config).await,
            Command::Hf(cmd) => {
                let stores = open_stores(&config).await?;
                let repos = crate::hf::repo::Repos::new(stores.docs, stores.blobs);
                hf::run(&repos, cmd).await
            }
            Command::Pypi(cmd) => pypi::run(&config, cmd).await,
            Command::Oci(cmd) => oci::run(config, cmd).await,
            Command::Bundle(cmd) => bundle::run(config, cmd).await,
            Command::Mirror(args) => mirror::run(open_stores(&config).await?, args).await,
            Command::Gc(args) => {
                let stores = open_stores(&config).await?;
                gc::run(stores, &config.gc, config.oci.purge_uploads_after, args).await
            }
            Command::Healthcheck { .. } => unreachable!("handled before configuration"),
        };
        // What the command changed reaches the servers' store totals, failed or not.
        crate::store::changes::flush_all().await;
        result
    });
    // The last log lines are out before the line that says why the command failed.
    drop(log);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line that says what is wrong and what to do.
            eprintln!("airlock: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The configured store, for the commands that work on it directly.
pub async fn open_stores(config: &Config) -> anyhow::Result<crate::store::Stores> {
    crate::store::Stores::open(&config.store, &config.s3, &config.cache).await
}

async fn check(config: Config) -> anyhow::Result<()> {
    let store = crate::store::open(&config.store, &config.s3).await?;
    println!("store: {} (reachable, writable)", store.describe());
    println!("listen: {}", config.listen);
    println!("anonymous read: {}", config.anonymous_read);
    if let Some(files) = &config.tls {
        files
            .load()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        println!("tls: {} (certificate and key match)", files.cert.display());
    }
    println!(
        "tokens: {} configured{}",
        config.tokens.len(),
        if config.admin_token.is_some() {
            " + admin"
        } else {
            ""
        }
    );
    Ok(())
}

/// The probe asks whether the server answers, not who it is: the certificate names the
/// service, rarely 127.0.0.1, so it is not verified (and nothing secret is sent).
fn https_probe(url: &str) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .no_proxy()
            .timeout(std::time::Duration::from_secs(3))
            .build()
            .map_err(|e| e.to_string())?;
        let response = client.get(url).send().await.map_err(|e| e.to_string())?;
        match response.status().as_u16() {
            200 => Ok(()),
            status => Err(format!("status {status}")),
        }
    })
}

/// A plain HTTP/1.0 GET, so the runtime image needs no curl; over HTTPS, a GET with
/// rustls.
fn healthcheck(url: &str) -> ExitCode {
    use std::io::{Read, Write};
    let probe = || -> Result<(), String> {
        let url = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
        let host = url.host_str().ok_or("URL without host")?;
        let port = url.port_or_known_default().unwrap_or(80);
        let timeout = std::time::Duration::from_secs(3);
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
            .map_err(|e| e.to_string())?
            .next()
            .ok_or("address did not resolve")?;
        let mut stream =
            std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        write!(
            stream,
            "GET {} HTTP/1.0\r\nHost: {host}\r\n\r\n",
            url.path()
        )
        .map_err(|e| e.to_string())?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).map_err(|e| e.to_string())?;
        match &head[9..12] {
            b"200" => Ok(()),
            status => Err(format!("status {}", String::from_utf8_lossy(status))),
        }
    };
    let result = if url.starts_with("https://") {
        https_probe(url)
    } else {
        probe()
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("airlock: unhealthy: {e}");
            ExitCode::FAILURE
        }
    }
}

fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

/// Logs to stderr. A server's lines (one per request) go through a thread of their own,
/// which writes whatever has queued up in one call and never drops a line (a full queue
/// makes the request wait, as a full pipe would); the returned guard writes the rest
/// when dropped. A command's lines are written as they come, between its progress lines.
fn init_tracing(
    format: LogFormat,
    serving: bool,
) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("AIRLOCK_LOG").unwrap_or_else(|_| {
        EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn,hyper=warn")
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = if serving {
        let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
            .lossy(false)
            // A bounded queue (about 1 MiB of lines): memory stays flat under any load.
            .buffered_lines_limit(4096)
            .thread_name("airlock-log")
            .finish(std::io::BufWriter::new(std::io::stderr()));
        (BoxMakeWriter::new(writer), Some(guard))
    } else {
        (BoxMakeWriter::new(std::io::stderr), None)
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
    guard
}
