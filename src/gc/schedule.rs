//! `[gc]`: the defaults of `airlock gc`, and collections run by `airlock serve` itself.
//!
//! Every replica runs its own on the timer, offset by a random part of a tenth of the
//! interval so replicas sharing a store do not all start at once. Today a run removes
//! only abandoned upload sessions (older than `[oci] purge_uploads_after`), which any
//! number of runs can do side by side (a removal is idempotent); its report becomes the
//! store's `gc/last.json`, which `/metrics` shows on every replica.

use super::{run, Options};
use crate::store::Stores;
use serde::Deserialize;
use std::time::Duration;

/// `[gc]` in the config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcSettings {
    /// How often `airlock serve` collects; `0s` turns it off.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Content written or linked more recently than this is never reclaimable.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// `[[gc.retention]]`: OCI tags kept per repository pattern, applied by every run.
    pub retention: Vec<super::retention::RetentionRule>,
    /// `[[gc.python_retention]]`: Python releases kept per project pattern.
    pub python_retention: Vec<super::versions::VersionRule>,
    /// `[[gc.hub_retention]]`: Hub tags and history kept per repository pattern.
    pub hub_retention: Vec<super::hub_history::HubRule>,
    /// Pull-through's copies beyond this many bytes (`"200GiB"`) are evicted, least
    /// recently read first.
    #[serde(deserialize_with = "crate::quota::optional_size")]
    pub pull_through_budget: Option<u64>,
    /// Pull-through's copies nobody read for this long (`"30d"`) are evicted.
    #[serde(with = "humantime_serde")]
    pub pull_through_unused_after: Option<Duration>,
    /// How often `serve` records which blobs were read (for the two above).
    #[serde(with = "humantime_serde")]
    pub access_flush: Duration,
    /// The protocols with an upstream (from their sections, not `[gc]`).
    #[serde(skip)]
    pub evictable: Evictable,
}

/// Protocols whose pull-through copies may be evicted: those that can fetch them again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evictable {
    pub oci: bool,
    pub pypi: bool,
    pub hf: bool,
}

impl Evictable {
    /// The protocol bits (`mark::Protocol`) of these.
    pub fn bits(self) -> u8 {
        use super::mark::Protocol;
        [
            (self.oci, Protocol::Oci),
            (self.pypi, Protocol::Pypi),
            (self.hf, Protocol::Hf),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .fold(0, |bits, (_, p)| bits | *p as u8)
    }
}

impl Options {
    /// A run as `settings` configures it, with the run's own dry-run flag, grace period
    /// and upload age.
    pub fn from_settings(
        settings: &GcSettings,
        dry_run: bool,
        grace: Duration,
        uploads_older_than: Duration,
    ) -> Options {
        Options {
            dry_run,
            grace,
            uploads_older_than,
            retention: settings.retention.clone(),
            python_retention: settings.python_retention.clone(),
            hub_retention: settings.hub_retention.clone(),
            pull_through_budget: settings.pull_through_budget,
            pull_through_unused_after: settings.pull_through_unused_after,
            evictable: settings.evictable,
        }
    }
}

impl Default for GcSettings {
    fn default() -> Self {
        GcSettings {
            interval: Duration::from_secs(24 * 3600),
            grace: Duration::from_secs(3600),
            retention: Vec::new(),
            python_retention: Vec::new(),
            hub_retention: Vec::new(),
            pull_through_budget: None,
            pull_through_unused_after: None,
            access_flush: Duration::from_secs(60),
            evictable: Evictable::default(),
        }
    }
}

/// Starts the timer (none when `interval` is zero); the first run is one interval after
/// start-up. Abort the handle to stop it.
pub fn spawn(
    stores: Stores,
    settings: GcSettings,
    uploads_older_than: Duration,
) -> Option<tokio::task::JoinHandle<()>> {
    if settings.interval.is_zero() {
        return None;
    }
    let options = Options::from_settings(&settings, false, settings.grace, uploads_older_than);
    Some(tokio::spawn(async move {
        loop {
            let spread = settings.interval.as_secs_f64() / 10.0 * rand::random::<f64>();
            tokio::time::sleep(settings.interval + Duration::from_secs_f64(spread)).await;
            match run(&stores, &options).await {
                Ok(report) => tracing::info!(
                    uploads_removed = report.uploads.sessions,
                    reclaimable_bytes = report.reclaimable.bytes,
                    seconds = report.seconds,
                    "scheduled garbage collection done"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "scheduled garbage collection failed; the next one runs on time")
                }
            }
        }
    }))
}
