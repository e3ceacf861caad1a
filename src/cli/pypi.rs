//! `airlock pypi ...`: import wheelhouses, yank and un-yank, remove, on the configured
//! store.

use crate::config::Config;
use crate::digest::Algorithm;
use crate::progress::{bytes_bar, report};
use crate::pypi::ingest::{inspect, publish};
use crate::pypi::project::Added;
use crate::pypi::{Index, DEFAULT_INDEX};
use crate::store::{hash_file, BlobStore};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Subcommand)]
pub enum PypiCommand {
    /// Import wheels and sdists (as `pip download` / `pip wheel` leave them) from
    /// directories or files. Skips files already present; never half-imports a file.
    Import {
        /// Directories (searched recursively) or distribution files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Index to import into.
        #[arg(long, default_value = DEFAULT_INDEX)]
        index: String,
    },
    /// Yank every file of a version (PEP 592): resolvers skip it unless pinned with ==.
    Yank {
        project: String,
        version: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long, default_value = DEFAULT_INDEX)]
        index: String,
    },
    /// Undo a yank.
    Unyank {
        project: String,
        version: String,
        #[arg(long, default_value = DEFAULT_INDEX)]
        index: String,
    },
    /// Remove a version's files (or one of them) from the index, where a yank is not
    /// enough. Pins to them break; the bytes go at the next `airlock gc` that finds
    /// nothing else referencing them.
    Remove {
        project: String,
        version: String,
        /// Only this file of the version (e.g. one broken wheel).
        #[arg(long)]
        file: Option<String>,
        #[arg(long, default_value = DEFAULT_INDEX)]
        index: String,
    },
}

pub async fn run(config: &Config, command: PypiCommand) -> anyhow::Result<()> {
    let index_name = match &command {
        PypiCommand::Import { index, .. }
        | PypiCommand::Yank { index, .. }
        | PypiCommand::Unyank { index, .. }
        | PypiCommand::Remove { index, .. } => index.clone(),
    };
    if !config.pypi.has_index(&index_name) {
        anyhow::bail!(
            "no index named `{index_name}`: add it to `pypi.indexes` in the config file, or use --index default"
        );
    }
    let stores = super::open_stores(config).await?;
    let index = Index::new(&index_name, stores.docs.clone());
    match command {
        PypiCommand::Import { paths, .. } => import(&stores.blobs, &index, &paths).await,
        PypiCommand::Yank {
            project,
            version,
            reason,
            ..
        } => {
            let n = index
                .set_yanked(&project, &version, Some(reason))
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            println!("yanked {project} {version} ({n} file(s) changed)");
            Ok(())
        }
        PypiCommand::Unyank {
            project, version, ..
        } => {
            let n = index
                .set_yanked(&project, &version, None)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            println!("un-yanked {project} {version} ({n} file(s) changed)");
            Ok(())
        }
        PypiCommand::Remove {
            project,
            version,
            file,
            ..
        } => {
            let removed = index
                .remove_files(&project, &version, file.as_deref())
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            for name in &removed {
                println!("removed {name}");
            }
            Ok(())
        }
    }
}

fn is_distribution(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    [".whl", ".tar.gz", ".zip", ".tgz"]
        .iter()
        .any(|s| name.ends_with(s))
}

fn collect(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        let md = std::fs::metadata(path).map_err(|e| {
            anyhow::anyhow!(
                "{}: {e}; give wheelhouse directories or distribution files",
                path.display()
            )
        })?;
        if md.is_dir() {
            let mut stack = vec![path.clone()];
            while let Some(dir) = stack.pop() {
                for entry in std::fs::read_dir(&dir)? {
                    let p = entry?.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if is_distribution(&p) {
                        files.push(p);
                    }
                }
            }
        } else {
            files.push(path.clone());
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

async fn import(blobs: &BlobStore, index: &Index, paths: &[PathBuf]) -> anyhow::Result<()> {
    let files = collect(paths)?;
    if files.is_empty() {
        anyhow::bail!(
            "no wheels or sdists found in the given paths (looked for .whl, .tar.gz, .zip)"
        );
    }
    let total: u64 = files
        .iter()
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.len())
        .sum();
    let bar = bytes_bar(total);
    let (mut new, mut present) = (0usize, 0usize);
    let mut failed: Vec<(PathBuf, String)> = Vec::new();
    for path in &files {
        let filename = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        bar.set_message(filename.clone());
        let size = path.metadata().map(|m| m.len()).unwrap_or(0);
        match import_one(blobs, index, path, &filename).await {
            Ok(Added::New) => {
                new += 1;
                report(&bar, format!("added    {filename}"));
            }
            Ok(Added::AlreadyPresent) => {
                present += 1;
                report(&bar, format!("present  {filename}"));
            }
            Err(reason) => {
                report(&bar, format!("FAILED   {filename}: {reason}"));
                failed.push((path.clone(), reason));
            }
        }
        bar.inc(size);
    }
    bar.finish_and_clear();
    eprintln!(
        "index `{}`: {new} added, {present} already present, {} failed ({} files, {} bytes)",
        index.name,
        failed.len(),
        files.len(),
        total
    );
    if !failed.is_empty() {
        for (path, reason) in &failed {
            eprintln!("  could not import {}: {reason}", path.display());
        }
        anyhow::bail!(
            "{} file(s) were not imported (nothing partial was stored); fix or remove them and run the import again",
            failed.len()
        );
    }
    Ok(())
}

async fn import_one(
    blobs: &BlobStore,
    index: &Index,
    path: &Path,
    filename: &str,
) -> Result<Added, String> {
    let (sha256, size) = hash_file(path, Algorithm::Sha256)
        .await
        .map_err(|e| e.to_string())?;
    let owned = (path.to_path_buf(), filename.to_string());
    let inspected = tokio::task::spawn_blocking(move || inspect(&owned.0, &owned.1))
        .await
        .map_err(|e| e.to_string())??;
    publish(index, blobs, path, &inspected, &sha256, size)
        .await
        .map_err(|e| e.message)
}
