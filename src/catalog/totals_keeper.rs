//! Store totals kept up to date without walking the store for every change, and
//! without making a request wait.
//!
//! The first request starts the keeper: one walk of the store (every item's metadata,
//! every blob listed: about a minute at a million blobs), then, every [`POLL`], the
//! change records every process writes (`store::changes`): each item and blob a new
//! record names is looked at again, and the figures are counted anew in memory. A
//! change anywhere shows within seconds, at a cost that grows with the change, not the
//! store. Requests are answered from what is kept (`updated_at` says when the last
//! change was followed). Only the first request after start-up waits for the walk, and
//! no longer than [`FIRST_WAIT`]: past it the answer says "computing" and the page asks
//! again. Nothing is walked at start-up, so start-up time does not grow with the store.
//!
//! The store is walked again only when the records cannot be trusted: when they were
//! not read for longer than they are kept (the store was unreachable), and when a
//! request finds the last walk older than [`TOTALS_WALKED_AGAIN_AFTER`] (a process
//! killed between a write and its record leaves a change only a walk sees).

use super::totals::Totals;
use super::totals_walk::{self, Changes};
use super::{CatalogError, CatalogState, TOTALS_WALKED_AGAIN_AFTER};
use crate::store::changes;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{watch, Notify, RwLock, RwLockReadGuard};

/// How long the first request waits for the first walk before answering "computing".
const FIRST_WAIT: Duration = Duration::from_millis(150);
/// How often the change records are read.
const POLL: Duration = Duration::from_secs(2);
/// How long records read last may be trusted to hold every change since: what the store
/// keeps, less a margin for clocks.
const RECORDS_TRUSTED_FOR: Duration = changes::KEPT_FOR.saturating_sub(Duration::from_secs(120));
/// How long a failed walk waits before the next, unless a request asks sooner.
const RETRY_AFTER: Duration = Duration::from_secs(30);
/// Changed keys past which walking is cheaper than looking at each (a bundle of a
/// million blobs imported: a million HEADs, against a thousand listing pages).
const WALK_INSTEAD_ABOVE: usize = 100_000;

#[derive(Debug)]
pub struct TotalsKeeper {
    totals: RwLock<Option<Totals>>,
    status: watch::Sender<Status>,
    /// A request asks for a walk (the first, or again after a failure or a long time).
    wanted: Notify,
    started: AtomicBool,
}

#[derive(Clone, Debug, Default)]
struct Status {
    /// Why the last walk failed, while no totals are kept.
    error: Option<String>,
    /// The walk is older than requests accept.
    walk_again: bool,
}

impl Default for TotalsKeeper {
    fn default() -> Self {
        TotalsKeeper {
            totals: RwLock::new(None),
            status: watch::Sender::new(Status::default()),
            wanted: Notify::new(),
            started: AtomicBool::new(false),
        }
    }
}

/// What a request gets.
pub enum Current<'a> {
    Ready(RwLockReadGuard<'a, Totals>),
    /// The first walk is still going.
    Computing,
}

impl TotalsKeeper {
    pub async fn current(&self, catalog: &CatalogState) -> Result<Current<'_>, CatalogError> {
        if !self.started.swap(true, Ordering::AcqRel) {
            tokio::spawn(keep(catalog.clone()));
        }
        let mut status = self.status.subscribe();
        if let Ok(ready) = RwLockReadGuard::try_map(self.totals.read().await, Option::as_ref) {
            let old = ready
                .walked_at()
                .elapsed()
                .is_ok_and(|age| age >= TOTALS_WALKED_AGAIN_AFTER);
            if old {
                self.status
                    .send_if_modified(|s| !std::mem::replace(&mut s.walk_again, true));
                self.wanted.notify_one();
            }
            return Ok(Current::Ready(ready));
        }
        // Waits for the walk this asks for, not the last one's failure.
        self.status.send_if_modified(|s| s.error.take().is_some());
        self.wanted.notify_one();
        let walked = async {
            loop {
                if let Ok(ready) =
                    RwLockReadGuard::try_map(self.totals.read().await, Option::as_ref)
                {
                    return Ok(ready);
                }
                if let Some(error) = status.borrow_and_update().error.clone() {
                    return Err(error);
                }
                if status.changed().await.is_err() {
                    return Err("the totals keeper stopped".to_string());
                }
            }
        };
        match tokio::time::timeout(FIRST_WAIT, walked).await {
            Err(_) => Ok(Current::Computing),
            Ok(Ok(ready)) => Ok(Current::Ready(ready)),
            Ok(Err(error)) => Err(CatalogError::Store(crate::store::StoreError::Unavailable(
                error,
            ))),
        }
    }
}

/// The keeper: walks, then follows the records, for as long as the process runs.
async fn keep(catalog: CatalogState) {
    let keeper = catalog.totals.clone();
    // Records whose changes the totals hold (read and followed, or older than the walk).
    let mut followed: HashSet<String> = HashSet::new();
    // When the records were last read and followed completely.
    let mut read_at: Option<Instant> = None;
    loop {
        let untrusted = read_at.is_none_or(|at| at.elapsed() >= RECORDS_TRUSTED_FOR);
        let walk_again = keeper.status.borrow().walk_again;
        if untrusted || walk_again {
            keeper.status.send_modify(|s| s.error = None);
            match walk(&catalog, &mut followed).await {
                Ok(()) => {
                    read_at = Some(Instant::now());
                    keeper.status.send_modify(|s| s.walk_again = false);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "store totals: the walk failed; the last totals stay");
                    keeper.status.send_modify(|s| s.error = Some(e.to_string()));
                    tokio::select! {
                        _ = keeper.wanted.notified() => {}
                        _ = tokio::time::sleep(RETRY_AFTER) => {}
                    }
                    continue;
                }
            }
        }
        tokio::select! {
            _ = keeper.wanted.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
        match follow_records(&catalog, &mut followed).await {
            Ok(Followed::All) => read_at = Some(Instant::now()),
            Ok(Followed::TooMany(keys)) => {
                tracing::info!(
                    keys,
                    "store totals: walking the store again rather than looking at every change"
                );
                keeper.status.send_modify(|s| s.walk_again = true);
            }
            Err(e) => tracing::warn!(error = %e, "store totals: changes not followed yet"),
        }
    }
}

/// Walks the store. The records there before the walk name changes it sees.
async fn walk(catalog: &CatalogState, followed: &mut HashSet<String>) -> Result<(), CatalogError> {
    let before: HashSet<String> = changes::list_records(&catalog.store)
        .await?
        .into_iter()
        .map(|r| r.key.as_str().to_string())
        .collect();
    let started = SystemTime::now();
    let totals = totals_walk::compute(catalog).await?;
    tracing::info!(
        seconds = started.elapsed().unwrap_or_default().as_secs_f64(),
        "store totals: walked the store"
    );
    *catalog.totals.totals.write().await = Some(totals);
    *followed = before;
    Ok(())
}

enum Followed {
    All,
    /// More keys changed than are worth looking at one by one; nothing was followed.
    TooMany(usize),
}

/// Follows the records not followed yet.
async fn follow_records(
    catalog: &CatalogState,
    followed: &mut HashSet<String>,
) -> Result<Followed, CatalogError> {
    let records = changes::list_records(&catalog.store).await?;
    let mut new = Vec::new();
    let mut keys = Changes::default();
    let mut count = 0;
    for record in &records {
        let name = record.key.as_str();
        if followed.contains(name) {
            continue;
        }
        for key in changes::read_record(&catalog.store, &record.key).await? {
            keys.add(&key);
            count += 1;
        }
        if count > WALK_INSTEAD_ABOVE {
            return Ok(Followed::TooMany(count));
        }
        new.push(name.to_string());
    }
    if !keys.is_empty() {
        totals_walk::follow(catalog, &catalog.totals.totals, keys).await?;
    }
    // Forget the records removed meanwhile: the set stays as small as the store's.
    let listed: HashSet<&str> = records.iter().map(|r| r.key.as_str()).collect();
    followed.retain(|name| listed.contains(name.as_str()));
    followed.extend(new);
    Ok(Followed::All)
}
