#![allow(dead_code)]
//! Three `airlock serve` processes on one Garage bucket, as replicas behind a Service are.

use super::airlock::Airlock;
use super::backend::{Backend, StoreArgs};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

pub const ADMIN: &str = "admin-token-for-tests-0123";
/// Short, so a replica that cached a page before the others changed it catches up fast.
pub const MUTABLE_TTL: Duration = Duration::from_secs(1);

pub struct Cluster {
    pub replicas: Vec<Airlock>,
    pub store: StoreArgs,
    dir: tempfile::TempDir,
}

impl Cluster {
    pub fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreArgs::new(Backend::S3, dir.path());
        let config = dir.path().join("airlock.toml");
        std::fs::write(
            &config,
            format!("[cache]\nmutable_ttl = \"{}s\"\n", MUTABLE_TTL.as_secs()),
        )
        .unwrap();
        let replicas = (0..3)
            .map(|i| {
                let cwd = dir.path().join(format!("replica-{i}"));
                std::fs::create_dir_all(&cwd).unwrap();
                store.serve(
                    &cwd,
                    &["--config", config.to_str().unwrap(), "--admin-token", ADMIN],
                )
            })
            .collect();
        Cluster {
            replicas,
            store,
            dir,
        }
    }

    pub fn replica(&self, i: usize) -> &Airlock {
        &self.replicas[i % self.replicas.len()]
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Spawns a blocking command on tokio's blocking pool, so several run at once.
pub trait OutputAsync {
    fn output_async(self) -> tokio::task::JoinHandle<std::io::Result<std::process::Output>>;
}

impl OutputAsync for &mut Command {
    fn output_async(self) -> tokio::task::JoinHandle<std::io::Result<std::process::Output>> {
        let mut cmd = std::mem::replace(self, Command::new("true"));
        tokio::task::spawn_blocking(move || cmd.output())
    }
}
