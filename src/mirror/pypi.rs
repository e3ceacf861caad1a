//! Python distributions from a simple repository into the default index, through the
//! same ingestion `airlock pypi import` uses (metadata read from the file and checked
//! against its name), keeping the upstream's upload time, yank state, Requires-Python
//! and `.metadata` file.
//!
//! Which files: every version the requirement's specifiers allow (prereleases only when
//! a specifier names one; yanked files only for an exact `==` pin, as PEP 592 says), of
//! the formats asked for, whose wheel tags suit `platforms` and `python`. A requirement
//! with `--hash` values takes only files with one of those hashes: any other candidate is
//! refused and reported as failed.

use super::report::Status;
use super::requirements::{parse_file, parse_requirement, Wanted};
use super::wheel::{parse as parse_name, platform_ok, python_ok};
use super::Mirror;
use crate::digest::Digest;
use crate::pypi::ingest::{inspect, publish_with, Upstream};
use crate::pypi::project::Added;
use crate::pypi::{normalize, Index};
use crate::remote::simple::{self, DistFile};
use crate::remote::{error_chain, Req};
use crate::spec::{DistFormat, PypiItem};
use futures::StreamExt;
use std::path::Path;

pub async fn mirror_item(m: &Mirror, item: &PypiItem) {
    let mut wanted: Vec<Wanted> = Vec::new();
    if let Some(path) = &item.requirements {
        let parsed = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read it: {e}"))
            .and_then(|t| parse_file(&t));
        match parsed {
            Ok(w) => wanted.extend(w),
            Err(reason) => {
                m.report.record(
                    format!("pypi requirements {}", path.display()),
                    Status::Failed(reason),
                );
                return;
            }
        }
    }
    for p in &item.projects {
        match parse_requirement(p) {
            Ok(w) => wanted.push(w),
            Err(reason) => m.report.record(format!("pypi {p}"), Status::Failed(reason)),
        }
    }
    for w in &wanted {
        if let Err(reason) = mirror_requirement(m, item, &m.index, w).await {
            m.report
                .record(format!("pypi {}", w.name), Status::Failed(reason));
        }
    }
}

/// Whether a listed file is one the item and requirement ask for.
fn chosen(item: &PypiItem, w: &Wanted, f: &DistFile) -> bool {
    let Some(dist) = parse_name(&f.filename, &w.name) else {
        return false;
    };
    let Ok(version) = dist.version.parse::<pep440_rs::Version>() else {
        return false;
    };
    let prereleases_ok = w.specifiers.iter().any(|s| s.any_prerelease());
    let format = if dist.wheel {
        DistFormat::Wheel
    } else {
        DistFormat::Sdist
    };
    w.specifiers.contains(&version)
        && (prereleases_ok || !version.any_prerelease())
        && (w.pinned || f.yanked.is_none())
        && item.formats.contains(&format)
        && platform_ok(&dist, &item.platforms)
        && python_ok(&dist, f.requires_python.as_deref(), &item.python)
}

async fn mirror_requirement(
    m: &Mirror,
    item: &PypiItem,
    index: &Index,
    w: &Wanted,
) -> Result<(), String> {
    let base = m.spec.upstreams.pypi.trim_end_matches('/');
    let page_url = format!("{base}/{}/", normalize(&w.name));
    let files = simple::fetch(&m.client, &page_url, Req::default())
        .await
        .map_err(|e| e.to_string())?
        .files;
    let mut selected: Vec<&DistFile> = files.iter().filter(|f| chosen(item, w, f)).collect();
    if selected.is_empty() {
        return Err(format!(
            "no file of `{}` matches the specifiers, formats, platforms and Python versions asked for ({} files listed upstream)",
            w.name,
            files.len()
        ));
    }
    if !w.hashes.is_empty() {
        selected.retain(|f| match &f.sha256 {
            Some(h) if !w.hashes.contains(h) => {
                m.report.record(
                    format!("pypi {}", f.filename),
                    Status::Failed(format!(
                        "refused: its sha256 {h} is not among the --hash values the requirements file gives for {}",
                        w.name
                    )),
                );
                false
            }
            _ => true,
        });
    }
    futures::stream::iter(selected.into_iter().map(|f| async move {
        let what = format!("pypi {}", f.filename);
        match fetch_dist(m, index, w, f).await {
            Ok(status) => m.report.record(what, status),
            Err(reason) => m.report.record(what, Status::Failed(reason)),
        }
    }))
    .buffer_unordered(m.concurrency)
    .collect::<Vec<()>>()
    .await;
    Ok(())
}

async fn fetch_dist(m: &Mirror, index: &Index, w: &Wanted, f: &DistFile) -> Result<Status, String> {
    let normalized = normalize(&w.name);
    let listed = index.project(&normalized).await.map_err(|e| e.message)?;
    if let Some(existing) = listed
        .iter()
        .flat_map(|d| &d.files)
        .find(|e| e.filename == f.filename)
    {
        return match &f.sha256 {
            Some(h) if *h != existing.sha256 => Err(format!(
                "the store already holds {} with sha256 {}, the upstream now lists {h}; published files never change",
                f.filename, existing.sha256
            )),
            _ => Ok(Status::Skipped),
        };
    }
    if m.dry_run {
        return Ok(Status::WouldFetch);
    }
    let tmp = m.scratch.path().join(format!("pypi-{}", f.filename));
    let result = fetch_and_publish(m, index, w, f, &tmp).await;
    let _ = tokio::fs::remove_file(&tmp).await;
    result
}

async fn fetch_and_publish(
    m: &Mirror,
    index: &Index,
    w: &Wanted,
    f: &DistFile,
    tmp: &Path,
) -> Result<Status, String> {
    let blobs = &m.blobs;
    let announced = f
        .sha256
        .as_deref()
        .map(Digest::sha256_hex)
        .transpose()
        .map_err(|e| format!("upstream sha256: {e}"))?;
    // The body may be stored already (a run interrupted before the index was updated):
    // take it from the store instead of the network.
    let stored = match &announced {
        Some(d) => blobs.exists(d).await.map_err(|e| e.to_string())?,
        None => false,
    };
    let (sha256, size) = if let (true, Some(d)) = (stored, &announced) {
        copy_blob_to(blobs, d, tmp).await?
    } else {
        let (sha256, _, size) = m
            .client
            .download_file(&f.url, &Req::default(), tmp, m.report.bar())
            .await
            .map_err(|e| e.to_string())?;
        (sha256, size)
    };
    if announced.as_ref().is_some_and(|a| *a != sha256) {
        return Err(format!(
            "content hashes to {sha256}, not {} as the upstream says; nothing was stored",
            f.sha256.as_deref().unwrap_or_default()
        ));
    }
    if !w.hashes.is_empty() && !w.hashes.contains(sha256.hex()) {
        return Err(format!(
            "refused: its sha256 {} is not among the --hash values the requirements file gives for {}",
            sha256.hex(),
            w.name
        ));
    }
    let owned = (tmp.to_path_buf(), f.filename.clone());
    let inspected = tokio::task::spawn_blocking(move || inspect(&owned.0, &owned.1))
        .await
        .map_err(|e| e.to_string())??;
    let upstream = Upstream {
        upload_time: f.upload_time.clone(),
        yanked: f.yanked.clone(),
        requires_python: f.requires_python.clone(),
        metadata_sha256: fetch_metadata(m, f).await,
    };
    match publish_with(index, blobs, tmp, &inspected, &sha256, size, Some(upstream)).await {
        Ok(Added::New) => Ok(Status::New),
        Ok(Added::AlreadyPresent) => Ok(Status::Skipped),
        Err(e) => Err(e.message),
    }
}

/// The upstream's `.metadata` file (PEP 658/714), stored as a blob and verified against
/// its announced hash; `None` (the metadata read from the file is used) when there is none.
async fn fetch_metadata(m: &Mirror, f: &DistFile) -> Option<String> {
    let announced = f.metadata.as_ref()?;
    let mut url = url::Url::parse(&f.url).ok()?;
    url.set_path(&format!("{}.metadata", url.path()));
    let blobs = &m.blobs;
    let outcome = match announced.as_deref().map(Digest::sha256_hex) {
        Some(Ok(digest)) => m
            .client
            .download_blob(
                url.as_str(),
                &Req::default(),
                blobs,
                &digest,
                None,
                &indicatif::ProgressBar::hidden(),
            )
            .await
            .map(|_| digest)
            .map_err(|e| e.to_string()),
        Some(Err(e)) => Err(e.to_string()),
        None => {
            let tmp = m.scratch.path().join(format!("meta-{}", f.filename));
            let got = async {
                let (digest, _, size) = m
                    .client
                    .download_file(
                        url.as_str(),
                        &Req::default(),
                        &tmp,
                        &indicatif::ProgressBar::hidden(),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                let file = tokio::fs::File::open(&tmp)
                    .await
                    .map_err(|e| error_chain(&e))?;
                let body = Box::pin(tokio_util::io::ReaderStream::new(file));
                blobs
                    .put(&digest, body, Some(size))
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(digest)
            }
            .await;
            let _ = tokio::fs::remove_file(&tmp).await;
            got
        }
    };
    match outcome {
        Ok(digest) => Some(digest.hex().to_string()),
        Err(e) => {
            tracing::warn!(file = %f.filename, "upstream .metadata not usable, reading it from the file instead: {e}");
            None
        }
    }
}

/// Writes a stored blob to a local file (for ingestion), returning its digest and size.
async fn copy_blob_to(
    blobs: &crate::store::BlobStore,
    digest: &Digest,
    path: &Path,
) -> Result<(Digest, u64), String> {
    use tokio::io::AsyncWriteExt;
    let got = blobs
        .get(digest, Default::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| error_chain(&e))?;
    let mut body = got.body;
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| error_chain(&e))?;
        size += chunk.len() as u64;
        file.write_all(&chunk).await.map_err(|e| error_chain(&e))?;
    }
    file.flush().await.map_err(|e| error_chain(&e))?;
    Ok((digest.clone(), size))
}
