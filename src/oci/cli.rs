//! `airlock oci ...`
use crate::server::AppState;

#[derive(Debug, clap::Subcommand)]
pub enum OciCommand {}

pub async fn run(_state: AppState, command: OciCommand) -> anyhow::Result<()> {
    match command {}
}
