//! Garbage collection (`airlock gc`): which stored bytes a live item of some protocol
//! still references, which nothing does, and the upload sessions nobody finished.
//!
//! A cross-cutting feature like `bundle`: it reads each protocol's documents through its
//! domain types (`Registry`, `ProjectDoc`, `Repos`) and the store, and no protocol
//! imports it. The mark (`mark.rs`) is global across protocols, so a blob shared by a
//! wheel, an image layer and a model file stays while any of them references it.
//!
//! What it removes: what retention rules say, the blobs and xorbs nothing references
//! (`sweep.rs`, safe against writers on every replica by `store/claims.rs`), the
//! model-image records of deleted Hub repositories (`derived.rs`), abandoned OCI upload
//! sessions (`oci::purge_uploads`, which `serve` also runs on its own timer, `[oci]
//! purge_uploads_after`). A grace period spares what was written, or linked to a
//! repository by a push or an LFS upload, within `grace`: a manifest or commit naming it
//! may be on its way (and will claim it when it comes).

mod derived;
mod evict;
pub mod hub_history;
pub mod mark;
pub mod retention;
mod schedule;
mod sweep;
pub mod versions;

pub use schedule::{spawn, Evictable, GcSettings};

use evict::Cached;
use futures::TryStreamExt;
use mark::{Marks, PROTOCOLS};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant, SystemTime};
use sweep::{Item, Sweep};

use crate::store::claims::{self, HeldLease, Lease, CLAIM_LIFETIME};
use crate::store::layout::{self, MetaKey};
use crate::store::{DocStore, Mutability, PutMode, Stores};
pub use sweep::Swept;

#[derive(Clone, Debug)]
pub struct Options {
    /// Report only: remove nothing.
    pub dry_run: bool,
    /// Content written or linked more recently than this is never reclaimable.
    pub grace: Duration,
    /// Upload sessions started longer ago than this are removed.
    pub uploads_older_than: Duration,
    /// OCI tag retention, applied before the mark.
    pub retention: Vec<retention::RetentionRule>,
    /// Python release retention, applied before the mark.
    pub python_retention: Vec<versions::VersionRule>,
    /// Hub tag retention, applied before the mark.
    pub hub_retention: Vec<hub_history::HubRule>,
    /// Pull-through's copies beyond this many bytes are evicted, least recently read first.
    pub pull_through_budget: Option<u64>,
    /// Pull-through's copies nobody read for this long are evicted.
    pub pull_through_unused_after: Option<Duration>,
    /// Only copies of these protocols' items: those with an upstream to fetch them again.
    pub evictable: Evictable,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tally {
    pub count: u64,
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, bytes: u64) {
        self.count += 1;
        self.bytes += bytes;
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Report {
    pub store: String,
    pub dry_run: bool,
    pub grace_seconds: u64,
    /// Blobs some live item references.
    pub referenced: Tally,
    /// The same, by the one protocol referencing them, or `shared` by several.
    pub referenced_by: BTreeMap<String, Tally>,
    /// Unreferenced blobs within the grace period: kept.
    pub recent: Tally,
    /// Unreferenced blobs past the grace period.
    pub reclaimable: Tally,
    pub xorbs_referenced: Tally,
    pub xorbs_recent: Tally,
    pub xorbs_reclaimable: Tally,
    /// References to content the store does not hold (a document naming a missing
    /// manifest, commit or Xet record).
    pub dangling: u64,
    /// Tags (and the images only they reached) and untagged manifests retention
    /// removed, or would remove.
    #[serde(default)]
    pub retention: retention::Removed,
    /// Python releases retention removed (or would remove).
    #[serde(default)]
    pub releases_removed: Vec<versions::RemovedVersion>,
    /// Hub tags and old commits retention removed (or would remove).
    #[serde(default)]
    pub hub_retention: hub_history::Removed,
    /// Model-image records of deleted Hub repositories removed (or that would be).
    #[serde(default)]
    pub model_image_records_removed: u64,
    /// What the sweep removed (nothing in a dry run).
    #[serde(default)]
    pub swept: Swept,
    /// Blobs only pull-through's copies of upstream items reference (evictable).
    #[serde(default)]
    pub pull_through: Tally,
    /// Those evicted (or that would be, in a dry run): read again, they are fetched again.
    #[serde(default)]
    pub evicted: Tally,
    /// Abandoned OCI upload sessions (`oci::purge_uploads`).
    pub uploads: crate::oci::PurgedUploads,
    /// Writes killed processes left in the backend (S3 multipart uploads, files in the
    /// directory store's `.tmp/`) older than the upload age, removed (or that would be).
    #[serde(default)]
    pub abandoned_writes: u64,
    pub seconds: f64,
    /// When the run ended, in seconds since the Unix epoch.
    #[serde(default)]
    pub finished_at: u64,
}

/// Marks, counts and sweeps what `options` says; progress goes to the log.
pub async fn run(stores: &Stores, options: &Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    let mut report = Report {
        store: stores.store.describe(),
        dry_run: options.dry_run,
        grace_seconds: options.grace.as_secs(),
        ..Default::default()
    };
    // One collection deletes at a time; a dry run only reads.
    let lease = match options.dry_run {
        true => None,
        false => {
            let lease = Lease::take(stores.store.clone()).await?.keep();
            let abandoned = claims::clear_abandoned_batches(&stores.store).await?;
            if abandoned > 0 {
                tracing::info!(
                    batches = abandoned,
                    "a previous collection stopped halfway; its batches are over"
                );
            }
            Some(lease)
        }
    };
    let outcome = collect(stores, options, lease.as_ref(), &mut report).await;
    if let Some(lease) = lease {
        lease.release().await?;
    }
    outcome?;
    report.seconds = started.elapsed().as_secs_f64();
    report.finished_at = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    record(&stores.docs, &report).await?;
    Ok(report)
}

async fn collect(
    stores: &Stores,
    options: &Options,
    lease: Option<&HeldLease>,
    report: &mut Report,
) -> anyhow::Result<()> {
    // Links first, then the mark, then the blobs: a blob stored and linked after its
    // link listing is younger than the grace period anyway.
    let mark_started = SystemTime::now();
    let cutoff = mark_started
        .checked_sub(options.grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let found = mark::inventory(stores, cutoff).await?;
    report.retention = retention::apply(
        stores,
        &found.oci_repos,
        &options.retention,
        options.dry_run,
    )
    .await?;
    report.releases_removed =
        versions::apply(stores, &options.python_retention, options.dry_run).await?;
    report.hub_retention = hub_history::apply(
        stores,
        &found.hf_refs,
        &options.hub_retention,
        options.dry_run,
    )
    .await?;
    let mut marks = Marks::default();
    mark::mark_oci(stores, &found.oci_repos, &mut marks).await?;
    mark::mark_pypi(stores, &mut marks).await?;
    mark::mark_hf(stores, &found.hf_refs, &mut marks).await?;
    mark::mark_recent_xet_files(stores, &found.xet_files_recent, &mut marks).await?;
    let linked_recently = found.linked_recently;
    report.dangling = marks.dangling;
    tracing::info!(blobs = marks.blob_count(), "marked");

    let mut sweep = lease.map(|lease| Sweep::new(stores, lease, mark_started, cutoff));
    let mut cached: Vec<Cached> = Vec::new();
    let evictable = options.evictable.bits();
    let recent = |modified: Option<SystemTime>| modified.is_none_or(|t| t > cutoff);
    let mut blobs = mark::listing(stores, layout::BLOBS_PREFIX);
    while let Some(meta) = blobs.try_next().await? {
        let Some(digest) = mark::blob_digest(&meta.key) else {
            continue;
        };
        match marks.of(&digest) {
            0 if recent(meta.last_modified) || linked_recently.contains(&digest) => {
                report.recent.add(meta.size)
            }
            0 => {
                report.reclaimable.add(meta.size);
                if let Some(sweep) = sweep.as_mut() {
                    sweep.add(Item::Blob(digest), meta.size).await?;
                }
            }
            bits => {
                report.referenced.add(meta.size);
                if bits & mark::LOCAL == 0 && bits & !evictable == 0 {
                    report.pull_through.add(meta.size);
                    cached.push(Cached {
                        digest,
                        size: meta.size,
                        stored: meta.last_modified.map_or(0, unix_secs),
                    });
                }
                let protocols = bits & !mark::LOCAL;
                let by = match PROTOCOLS.iter().find(|p| protocols == **p as u8) {
                    Some(one) => one.name(),
                    None => "shared",
                };
                report
                    .referenced_by
                    .entry(by.to_string())
                    .or_default()
                    .add(meta.size);
            }
        }
    }
    let mut xorbs = mark::listing(stores, "xet/xorbs/");
    while let Some(meta) = xorbs.try_next().await? {
        let Some(xorb) = layout::xorb_of_xet_key(meta.key.as_str()).and_then(|h| h.parse().ok())
        else {
            continue;
        };
        if marks.xorb_marked(&xorb) {
            report.xorbs_referenced.add(meta.size);
        } else if recent(meta.last_modified) {
            report.xorbs_recent.add(meta.size);
        } else {
            report.xorbs_reclaimable.add(meta.size);
            if let Some(sweep) = sweep.as_mut() {
                sweep.add(Item::Xorb(xorb), meta.size).await?;
            }
        }
    }
    if let Some(sweep) = sweep.as_mut() {
        sweep.flush().await?;
    }
    if options.pull_through_budget.is_some() || options.pull_through_unused_after.is_some() {
        let mut evict = lease.map(|lease| Sweep::new(stores, lease, mark_started, cutoff));
        report.evicted = evict::run(stores, options, cached, evict.as_mut()).await?;
    }
    if let Some(sweep) = sweep {
        report.swept = sweep.swept;
        // Claims no later collection honours.
        let stale = SystemTime::now()
            .checked_sub(CLAIM_LIFETIME)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        claims::remove_stale_claims(&stores.store, stale).await?;
    }
    report.uploads = crate::oci::purge_uploads(
        &stores.store,
        &stores.docs,
        options.uploads_older_than,
        options.dry_run,
    )
    .await?;
    let before = SystemTime::now()
        .checked_sub(options.uploads_older_than)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    report.abandoned_writes = stores
        .store
        .remove_abandoned_writes(before, options.dry_run)
        .await?;
    report.model_image_records_removed =
        derived::sweep_model_images(stores, options.dry_run).await?;
    Ok(())
}

/// Keeps the report as the store's last run, for `/metrics` on every replica.
async fn record(docs: &DocStore, report: &Report) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec(report)?;
    docs.put(
        &MetaKey::GcLastRun.key()?,
        bytes.into(),
        PutMode::Overwrite,
        Mutability::Mutable,
    )
    .await?;
    Ok(())
}

/// The last run's report, if a run has finished on this store.
pub async fn last_run(docs: &DocStore) -> Option<Report> {
    let key = MetaKey::GcLastRun.key().ok()?;
    let doc = docs.get(&key, Mutability::Mutable).await.ok()??;
    serde_json::from_slice(&doc.bytes).ok()
}

/// The last run as Prometheus gauges (nothing before the first run).
pub fn render_metrics(last: Option<&Report>) -> String {
    let Some(r) = last else {
        return String::new();
    };
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, samples: &[(String, u64)]| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (labels, value) in samples {
            out.push_str(&format!("{name}{labels} {value}\n"));
        }
    };
    gauge(
        "airlock_gc_last_run_timestamp_seconds",
        "When the last `airlock gc` run (or scheduled run) on this store ended.",
        &[(String::new(), r.finished_at)],
    );
    gauge(
        "airlock_gc_last_run_dry_run",
        "1 when the last run removed nothing by request (--dry-run).",
        &[(String::new(), u64::from(r.dry_run))],
    );
    let by: Vec<(String, u64)> = r
        .referenced_by
        .iter()
        .map(|(p, t)| (format!("{{protocol=\"{p}\"}}"), t.bytes))
        .collect();
    gauge(
        "airlock_store_referenced_bytes",
        "Blob bytes a live item references, by the one protocol referencing them or `shared`, as of the last GC run.",
        &by,
    );
    gauge(
        "airlock_store_reclaimable_bytes",
        "Bytes nothing references, past the grace period, as of the last GC run.",
        &[
            ("{kind=\"blob\"}".to_string(), r.reclaimable.bytes),
            ("{kind=\"xorb\"}".to_string(), r.xorbs_reclaimable.bytes),
        ],
    );
    gauge(
        "airlock_gc_last_run_removed_bytes",
        "Bytes the last run's sweep removed.",
        &[
            ("{kind=\"blob\"}".to_string(), r.swept.blobs.bytes),
            ("{kind=\"xorb\"}".to_string(), r.swept.xorbs.bytes),
        ],
    );
    gauge(
        "airlock_store_pull_through_bytes",
        "Blob bytes only pull-through's copies of upstream items reference (evictable), as of the last GC run.",
        &[(String::new(), r.pull_through.bytes)],
    );
    gauge(
        "airlock_gc_last_run_evicted_bytes",
        "Pull-through bytes the last run evicted (or would have, in a dry run).",
        &[(String::new(), r.evicted.bytes)],
    );
    gauge(
        "airlock_gc_last_run_uploads_removed",
        "Abandoned upload sessions the last run removed (or would have, in a dry run).",
        &[(String::new(), r.uploads.sessions)],
    );
    out
}

use crate::quota::human as size;

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.count, size(self.bytes))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let by: Vec<String> = PROTOCOLS
            .iter()
            .map(|p| p.name())
            .chain(["shared"])
            .filter_map(|name| self.referenced_by.get(name).map(|t| format!("{name} {t}")))
            .collect();
        writeln!(f, "store: {}", self.store)?;
        let verb = if self.dry_run {
            "would remove"
        } else {
            "removed"
        };
        if !self.retention.tags.is_empty() {
            let tags: Vec<String> = self
                .retention
                .tags
                .iter()
                .map(|r| format!("{}:{}", r.repository, r.tag))
                .collect();
            writeln!(
                f,
                "retention {verb} {} tag(s): {}",
                tags.len(),
                tags.join(", ")
            )?;
        }
        if !self.retention.untagged.is_empty() {
            let manifests: Vec<String> = self
                .retention
                .untagged
                .iter()
                .map(|r| format!("{}@{}", r.repository, r.digest))
                .collect();
            writeln!(
                f,
                "retention {verb} {} untagged manifest(s): {}",
                manifests.len(),
                manifests.join(", ")
            )?;
        }
        if !self.releases_removed.is_empty() {
            let releases: Vec<String> = self
                .releases_removed
                .iter()
                .map(|r| format!("{}/{} {}", r.index, r.project, r.version))
                .collect();
            writeln!(
                f,
                "retention {verb} {} Python release(s): {}",
                releases.len(),
                releases.join(", ")
            )?;
        }
        if !self.hub_retention.tags.is_empty() {
            let tags: Vec<String> = self
                .hub_retention
                .tags
                .iter()
                .map(|t| format!("{}@{}", t.repo, t.tag))
                .collect();
            writeln!(
                f,
                "retention {verb} {} Hub tag(s): {}",
                tags.len(),
                tags.join(", ")
            )?;
        }
        for (repo, commits) in &self.hub_retention.commits {
            writeln!(f, "retention {verb} {commits} old commit(s) of {repo}")?;
        }
        writeln!(
            f,
            "blobs referenced: {} [{}]",
            self.referenced,
            by.join(", ")
        )?;
        writeln!(
            f,
            "blobs unreferenced, within the {} s grace period (kept): {}",
            self.grace_seconds, self.recent
        )?;
        writeln!(f, "blobs unreferenced, reclaimable: {}", self.reclaimable)?;
        writeln!(
            f,
            "xorbs referenced: {}; within the grace period: {}; reclaimable: {}",
            self.xorbs_referenced, self.xorbs_recent, self.xorbs_reclaimable
        )?;
        if self.dangling > 0 {
            writeln!(
                f,
                "references to content not in the store (a manifest, commit or Xet record named but absent): {}",
                self.dangling
            )?;
        }
        if self.model_image_records_removed > 0 {
            writeln!(
                f,
                "model image records of deleted repositories: {verb} {}",
                self.model_image_records_removed
            )?;
        }
        writeln!(
            f,
            "abandoned upload sessions: {verb} {} ({}); {} still active",
            self.uploads.sessions,
            size(self.uploads.bytes),
            self.uploads.active
        )?;
        if self.pull_through.count > 0 {
            writeln!(
                f,
                "pull-through copies (referenced only by upstream items): {}; evicted, least recently read first: {}",
                self.pull_through, self.evicted
            )?;
        }
        if self.abandoned_writes > 0 {
            writeln!(
                f,
                "unfinished writes left by killed processes (S3 multipart uploads, .tmp files): {verb} {}",
                self.abandoned_writes
            )?;
        }
        if self.dry_run {
            return write!(
                f,
                "dry run: nothing was removed; the unreferenced blobs and xorbs past the grace period are what a run would remove ({:.1} s)",
                self.seconds
            );
        }
        let s = &self.swept;
        writeln!(f, "removed: blobs {}; xorbs {}", s.blobs, s.xorbs)?;
        if s.claimed + s.changed + s.deferred > 0 {
            writeln!(
                f,
                "kept: {} claimed by a push or commit while the sweep ran, {} written again since the listing, {} left for the next run (deadline or lease)",
                s.claimed, s.changed, s.deferred
            )?;
        }
        write!(f, "done in {:.1} s", self.seconds)
    }
}
