//! The command line: `airlock serve`, `airlock check`, and (from the protocol modules)
//! the import commands. Every subcommand takes the same store configuration.

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
    /// Check the configuration and that the store is reachable and writable, then exit.
    Check,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let serve_args = match &cli.command {
        Command::Serve(args) => args.clone(),
        Command::Check => ServeArgs::default(),
    };
    let config = match Config::resolve(&cli.global, &serve_args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("airlock: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(_) => crate::server::serve(config).await,
            Command::Check => check(config).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line that says what is wrong and what to do.
            eprintln!("airlock: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

async fn check(config: Config) -> anyhow::Result<()> {
    let store = crate::store::open(&config.store, &config.s3).await?;
    println!("store: {} (reachable, writable)", store.describe());
    println!("listen: {}", config.listen);
    println!("anonymous read: {}", config.anonymous_read);
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

fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("AIRLOCK_LOG").unwrap_or_else(|_| {
        EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn,hyper=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}
