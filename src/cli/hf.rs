//! `airlock hf ...`: import repositories from local folders.

use crate::hf::import::{import, ImportRequest};
use crate::hf::model::RepoType;
use crate::hf::repo::Repos;
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum HfCommand {
    /// Import a model or dataset repository from local files, without a network.
    Import {
        /// Repository id, e.g. `org/name` (or a legacy one-segment id such as `gpt2`).
        repo_id: String,
        /// A plain folder, a huggingface_hub cache folder (models--org--name), or a
        /// `hf download --local-dir` folder.
        source: PathBuf,
        #[arg(long = "type", default_value = "model", value_parser = ["model", "dataset", "space"])]
        kind: String,
        /// Branch a plain or local-dir folder is committed to (cache folders bring their own refs).
        #[arg(long, default_value = "main")]
        revision: String,
        /// Create the repository as private (when it does not exist yet).
        #[arg(long)]
        private: bool,
        /// Gate the repository: everyone sees it, only tokens with a read scope get its files.
        #[arg(long)]
        gated: bool,
    },
}

pub async fn run(repos: &Repos, command: HfCommand) -> anyhow::Result<()> {
    let HfCommand::Import {
        repo_id,
        source,
        kind,
        revision,
        private,
        gated,
    } = command;
    let request = ImportRequest {
        repo_id,
        source,
        kind: RepoType::from_singular(&kind).expect("clap checked the type"),
        revision,
        private,
        gated,
    };
    import(repos, request).await
}
