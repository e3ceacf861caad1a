//! Runs the server and the CLI on either store: the filesystem, or S3 on the shared
//! Garage (a fresh prefix each time, so tests never see each other's data).

use super::airlock::{command, Airlock};
use std::path::Path;
use std::process::Command;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Fs,
    S3,
    /// S3, with blob downloads answered by redirects to presigned Garage URLs.
    S3Redirect,
}

/// Store arguments and environment for one test's store.
pub struct StoreArgs {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl StoreArgs {
    pub fn new(backend: Backend, dir: &Path) -> StoreArgs {
        match backend {
            Backend::Fs => StoreArgs {
                args: vec!["--store".into(), dir.join("store").to_string_lossy().into()],
                env: vec![],
            },
            Backend::S3 | Backend::S3Redirect => {
                let g = super::garage::shared();
                let prefix = format!("t-{}", hex::encode(rand::random::<[u8; 6]>()));
                StoreArgs {
                    args: vec![
                        "--store".into(),
                        format!("s3://{}/{prefix}", g.bucket),
                        "--s3-endpoint".into(),
                        g.endpoint.clone(),
                        "--s3-redirect-downloads".into(),
                        (backend == Backend::S3Redirect).to_string(),
                    ],
                    env: vec![
                        ("AWS_ACCESS_KEY_ID".into(), g.key_id.clone()),
                        ("AWS_SECRET_ACCESS_KEY".into(), g.secret.clone()),
                        ("AWS_REGION".into(), g.region.clone()),
                    ],
                }
            }
        }
    }

    /// `airlock serve` on this store, plus extra arguments.
    pub fn serve(&self, dir: &Path, extra: &[&str]) -> Airlock {
        let mut args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Airlock::start(dir, &args, &env)
    }

    /// An `airlock` command (import, yank, ...) on this store.
    pub fn cli(&self, dir: &Path) -> Command {
        let mut cmd = command(dir);
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }
}
