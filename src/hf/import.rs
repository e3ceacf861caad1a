//! Importing repositories without a network (`airlock hf import`): from a plain folder, a huggingface_hub cache folder
//! (`models--org--name` with its snapshots and refs) or a `hf download --local-dir` folder.

use super::git::{self, BlobHasher};
use super::model::{is_commit_id, is_valid_path, Commit, FileEntry, RepoRef, RepoType};
use super::repo::Repos;
use super::repo::{lfs_by_attributes, now_iso, Op, Parent, DEFAULT_GITATTRIBUTES};
use crate::digest::{Algorithm, Digest, Hasher};
use crate::progress::bytes_bar;
use indicatif::ProgressBar;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tokio::io::AsyncReadExt;

/// What `airlock hf import` was asked to do.
pub struct ImportRequest {
    pub repo_id: String,
    pub source: PathBuf,
    pub kind: RepoType,
    pub revision: String,
    pub private: bool,
    pub gated: bool,
}

/// Imports a folder into a repository, creating the repository if needed.
pub async fn import(repos: &Repos, request: ImportRequest) -> anyhow::Result<()> {
    let (repo_id, source, kind) = (&request.repo_id, &request.source, request.kind);
    let repo = RepoRef::new(kind, repo_id).ok_or_else(|| {
        anyhow::anyhow!(
            "`{repo_id}` is not a valid repo id: use org/name with letters, digits, '-', '_', '.'"
        )
    })?;
    if !source.is_dir() {
        anyhow::bail!("{} is not a folder: give a model folder, a huggingface_hub cache folder or a --local-dir folder", source.display());
    }
    if repos.repo(&repo).await.map_err(err)?.is_none() {
        repos
            .create(&repo, request.private, "airlock-import")
            .await
            .map_err(err)?;
        eprintln!(
            "created {} {}",
            kind.plural().trim_end_matches('s'),
            repo.id
        );
    }
    if request.gated {
        repos.set_gated(&repo, true).await.map_err(err)?;
    }
    if source.join("snapshots").is_dir() {
        import_cache(repos, &repo, source).await
    } else {
        import_folder(repos, &repo, source, &request.revision).await
    }
}

fn err(e: super::HfError) -> anyhow::Error {
    anyhow::anyhow!("{}", e.message)
}

/// Every regular file under `root` (symlinks followed), relative paths with `/`.
fn walk(root: &Path, skip: &dyn Fn(&str) -> bool) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let rel = path
                .strip_prefix(root)?
                .to_string_lossy()
                .replace('\\', "/");
            if skip(&rel) {
                continue;
            }
            let md = std::fs::metadata(&path)?;
            if md.is_dir() {
                stack.push(path);
            } else if md.is_file() {
                if !is_valid_path(&rel) {
                    anyhow::bail!("{}: not a usable repository path", path.display());
                }
                out.push((rel, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Hashes a file once for both identities (sha256, git blob oid), then streams it into
/// the blob store, which verifies the sha256 again while writing.
async fn store_file(
    repos: &Repos,
    rel: &str,
    path: &Path,
    lfs: bool,
    bar: &ProgressBar,
) -> anyhow::Result<FileEntry> {
    let size = tokio::fs::metadata(path).await?.len();
    let mut file = tokio::fs::File::open(path).await?;
    let mut sha256 = Hasher::new(Algorithm::Sha256);
    let mut oid = BlobHasher::new(size);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        sha256.update(&buf[..n]);
        oid.update(&buf[..n]);
        bar.inc(n as u64);
    }
    let digest: Digest = sha256.finish();
    let file = tokio::fs::File::open(path).await?;
    let body = Box::pin(tokio_util::io::ReaderStream::with_capacity(
        file,
        256 * 1024,
    ));
    repos
        .blobs()
        .put(&digest, body, Some(size))
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let sha = digest.hex().to_string();
    let git_oid = if lfs {
        git::blob_oid(git::lfs_pointer(&sha, size).as_bytes())
    } else {
        oid.finish()
    };
    Ok(FileEntry {
        path: rel.to_string(),
        size,
        sha256: sha,
        oid: git_oid,
        lfs,
        xet_hash: None,
    })
}

/// A plain or `--local-dir` folder becomes one new commit on `branch`, whose parent is
/// the branch's previous head; an identical file set makes no commit at all.
async fn import_folder(
    repos: &Repos,
    repo: &RepoRef,
    source: &Path,
    branch: &str,
) -> anyhow::Result<()> {
    let files = walk(source, &|rel| {
        rel == ".git" || rel == ".cache" || rel.starts_with(".cache/") || rel.starts_with(".git/")
    })?;
    if files.is_empty() {
        anyhow::bail!("{} has no files to import", source.display());
    }
    // `hf download --local-dir` records the commit and etag of every file it fetched.
    let metadata_dir = source.join(".cache/huggingface/download");
    let mut origin: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (rel, _) in &files {
        if let Ok(text) = std::fs::read_to_string(metadata_dir.join(format!("{rel}.metadata"))) {
            let mut lines = text.lines();
            if let (Some(commit), Some(etag)) = (lines.next(), lines.next()) {
                origin.insert(
                    rel.clone(),
                    (
                        commit.trim().to_string(),
                        etag.trim().trim_matches('"').to_string(),
                    ),
                );
            }
        }
    }
    let attributes = match files.iter().find(|(rel, _)| rel == ".gitattributes") {
        Some((_, p)) => std::fs::read_to_string(p).unwrap_or_default(),
        None => DEFAULT_GITATTRIBUTES.to_string(),
    };
    let total = files
        .iter()
        .filter_map(|(_, p)| p.metadata().ok())
        .map(|m| m.len())
        .sum();
    let bar = bytes_bar(total);
    let mut entries = Vec::new();
    for (rel, path) in &files {
        bar.set_message(rel.clone());
        let size = path.metadata()?.len();
        let lfs = match origin.get(rel) {
            Some((_, etag)) => etag.len() == 64,
            None => size >= git::LFS_THRESHOLD || lfs_by_attributes(&attributes, rel),
        };
        entries.push(store_file(repos, rel, path, lfs, &bar).await?);
    }
    if !files.iter().any(|(rel, _)| rel == ".gitattributes") {
        entries.push(
            repos
                .store_small_file(".gitattributes", DEFAULT_GITATTRIBUTES.into())
                .await
                .map_err(err)?,
        );
    }
    bar.finish_and_clear();

    let refs = repos.refs(repo).await.map_err(err)?;
    if let Some(head) = refs.branches.get(branch) {
        if let Some(view) = repos.commit(repo, head).await.map_err(err)? {
            let mut sorted = entries.clone();
            sorted.sort_by(|a, b| a.path.cmp(&b.path));
            if view.commit.files == sorted {
                eprintln!("{}: `{branch}` already holds exactly these files (commit {head}); nothing to do", repo.id);
                return Ok(());
            }
        }
    }
    // A --local-dir download of one commit keeps that commit's id.
    let commits: std::collections::BTreeSet<&String> = origin.values().map(|(c, _)| c).collect();
    let original = match commits.into_iter().collect::<Vec<_>>().as_slice() {
        [one] if is_commit_id(one) && origin.len() == files.len() => Some((*one).clone()),
        _ => None,
    };
    let title = format!("Import {} files from {}", entries.len(), source.display());
    let view = repos
        .commit_changes(
            repo,
            branch,
            Parent::Latest,
            vec![Op::ReplaceAll(entries)],
            &title,
            "",
            "airlock-import",
            original,
        )
        .await
        .map_err(err)?;
    eprintln!(
        "{}: `{branch}` -> commit {} ({} files, {total} bytes)",
        repo.id,
        view.commit.id,
        view.commit.files.len()
    );
    Ok(())
}

/// A huggingface_hub cache folder: each snapshot keeps its commit id, each ref its target.
async fn import_cache(repos: &Repos, repo: &RepoRef, source: &Path) -> anyhow::Result<()> {
    let mut snapshots = Vec::new();
    for entry in std::fs::read_dir(source.join("snapshots"))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if is_commit_id(&name) && path.is_dir() {
            snapshots.push((name, path));
        }
    }
    snapshots.sort();
    if snapshots.is_empty() {
        anyhow::bail!(
            "{}/snapshots holds no commit folders: is this a huggingface_hub cache folder?",
            source.display()
        );
    }
    let mut total = 0;
    let mut listed = Vec::new();
    for (sha, dir) in &snapshots {
        let files = walk(dir, &|_| false)?;
        total += files
            .iter()
            .filter_map(|(_, p)| p.metadata().ok())
            .map(|m| m.len())
            .sum::<u64>();
        listed.push((sha.clone(), files));
    }
    let bar = bytes_bar(total);
    // Held until the refs name the commits (`Repos::store_commit`).
    let mut claims = Vec::new();
    for (sha, files) in listed {
        let mut entries = Vec::new();
        for (rel, path) in &files {
            bar.set_message(format!("{} {rel}", &sha[..8]));
            // The cache names each blob by its etag: a sha256 for LFS files, a git oid otherwise.
            let etag = std::fs::canonicalize(path)?
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            let entry = store_file(repos, rel, path, etag.len() == 64, &bar).await?;
            if etag.len() == 40 && entry.oid != etag {
                anyhow::bail!(
                    "{}: content does not match its git oid {etag}: the cache is damaged",
                    path.display()
                );
            }
            if etag.len() == 64 && entry.sha256 != etag {
                anyhow::bail!(
                    "{}: content does not match its sha256 {etag}: the cache is damaged",
                    path.display()
                );
            }
            entries.push(entry);
        }
        let commit = Commit {
            id: sha.clone(),
            parents: Vec::new(),
            title: "Imported from a huggingface_hub cache".into(),
            message: format!("Imported from {}", source.display()),
            author: "airlock-import".into(),
            date: now_iso(),
            files: entries,
            config: None,
        };
        claims.push(repos.store_commit(repo, commit).await.map_err(err)?);
    }
    bar.finish_and_clear();
    // refs/main, refs/<branch>, refs/pr/<n>: files holding a commit id.
    let refs_dir = source.join("refs");
    let mut found = Vec::new();
    if refs_dir.is_dir() {
        for (rel, path) in walk(&refs_dir, &|_| false)? {
            let target = std::fs::read_to_string(&path)?.trim().to_string();
            if is_commit_id(&target) && snapshots.iter().any(|(s, _)| *s == target) {
                found.push((rel, target));
            }
        }
    }
    let named = repos
        .update_refs(repo, |refs| {
            for (name, target) in &found {
                match name.strip_prefix("pr/").and_then(|n| n.parse::<u64>().ok()) {
                    Some(n) => {
                        refs.prs.insert(n, target.clone());
                    }
                    None => {
                        refs.branches.insert(name.clone(), target.clone());
                    }
                }
            }
            Ok(())
        })
        .await;
    for claim in claims {
        claim.release().await;
    }
    named.map_err(err)?;
    for (name, target) in &found {
        eprintln!("{}: {name} -> {target}", repo.id);
    }
    eprintln!(
        "{}: imported {} snapshot(s), {total} bytes",
        repo.id,
        snapshots.len()
    );
    Ok(())
}
