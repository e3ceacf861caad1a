//! Store totals served without making a request wait for the store walk.
//!
//! The walk reads every item's metadata and lists every blob: seconds at a million
//! blobs, and an operator's page refresh must never pay for it. The last totals are kept
//! and served whatever their age; a request that finds them older than [`TOTALS_TTL`]
//! starts one walk in the background (never two at once) and the next request gets its
//! result. Only the first request after start-up waits for a walk, and no longer than
//! [`FIRST_WAIT`]: past it the answer says "computing" and the page asks again. Nothing
//! is walked at start-up, so start-up time does not grow with the store.

use super::totals::{self, Totals};
use super::{CatalogError, CatalogState, TOTALS_TTL};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long the first request waits for the first walk before answering "computing".
const FIRST_WAIT: Duration = Duration::from_millis(150);

#[derive(Debug)]
pub struct TotalsKeeper {
    kept: watch::Sender<Kept>,
    walking: Arc<AtomicBool>,
}

#[derive(Clone, Debug, Default)]
struct Kept {
    /// The last walk's totals and when it finished.
    totals: Option<(Instant, Arc<Totals>)>,
    /// Why the last walk failed, while no totals are kept.
    error: Option<String>,
}

/// What a request gets.
pub enum Current {
    Ready(Arc<Totals>),
    /// The first walk is still going.
    Computing,
}

impl Default for TotalsKeeper {
    fn default() -> Self {
        TotalsKeeper {
            kept: watch::Sender::new(Kept::default()),
            walking: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl TotalsKeeper {
    pub async fn current(&self, catalog: &CatalogState) -> Result<Current, CatalogError> {
        let kept = self.kept.borrow().clone();
        let stale = kept
            .totals
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= TOTALS_TTL);
        if stale {
            self.start_walk(catalog);
        }
        if let Some((_, totals)) = kept.totals {
            return Ok(Current::Ready(totals));
        }
        let mut kept = self.kept.subscribe();
        let first = kept.wait_for(|k| k.totals.is_some() || k.error.is_some());
        let Ok(Ok(kept)) = tokio::time::timeout(FIRST_WAIT, first).await else {
            return Ok(Current::Computing);
        };
        match (&kept.totals, &kept.error) {
            (Some((_, totals)), _) => Ok(Current::Ready(totals.clone())),
            (None, error) => Err(CatalogError::Store(crate::store::StoreError::Unavailable(
                error.clone().unwrap_or_default(),
            ))),
        }
    }

    /// Starts a walk unless one is going.
    fn start_walk(&self, catalog: &CatalogState) {
        if self.walking.swap(true, Ordering::AcqRel) {
            return;
        }
        // A request waiting from now on waits for this walk, not the last one's error.
        self.kept.send_modify(|k| k.error = None);
        let walking = WalkFlag(self.walking.clone());
        let catalog = catalog.clone();
        tokio::spawn(async move {
            let result = totals::compute(&catalog).await;
            catalog.totals.kept.send_modify(|k| match result {
                Ok(totals) => {
                    k.totals = Some((Instant::now(), Arc::new(totals)));
                    k.error = None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "store totals: the walk failed; the last totals stay");
                    k.error = Some(e.to_string());
                }
            });
            drop(walking);
        });
    }
}

/// Clears the walking flag however the walk ends, a panic included: a flag left set
/// would stop every later walk.
struct WalkFlag(Arc<AtomicBool>);

impl Drop for WalkFlag {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
