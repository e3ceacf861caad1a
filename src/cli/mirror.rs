//! `airlock mirror --spec mirror.toml [--concurrency N] [--dry-run]`.

use crate::spec::ContentSpec;
use crate::store::Stores;
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Upstream credentials come from the environment:
  HF_TOKEN                          bearer token for the Hugging Face upstream
  AIRLOCK_MIRROR_OCI_AUTH_<HOST>    per registry host (docker.io -> ..._DOCKER_IO):
                                    `user:password` (Basic, and for the token flow)
                                    or a bare bearer token
  AIRLOCK_MIRROR_OCI_REALM_<HOST>   a token realm on another host trusted with those
                                    credentials (docker.io: https://auth.docker.io/token)
Run the same command again after an interruption: what is stored is skipped.")]
pub struct MirrorArgs {
    /// The content spec: `[upstreams]`, `[[hf]]`, `[[pypi]]`, `[[oci]]` (see the README).
    #[arg(long)]
    pub spec: PathBuf,
    /// Downloads in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// List what would be fetched; store nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn run(stores: Stores, args: MirrorArgs) -> anyhow::Result<()> {
    let spec = ContentSpec::load(&args.spec)?;
    crate::mirror::run(stores, spec, args.concurrency as usize, args.dry_run).await
}
