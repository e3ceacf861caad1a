//! Progress while the mirror runs and the summary at the end: what was new, what was
//! already stored (skipped) and what failed, with the reason.

use crate::progress::{bytes_bar, report};
use indicatif::ProgressBar;
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    New,
    Skipped,
    /// `--dry-run`: would be fetched.
    WouldFetch,
    Failed(String),
}

#[derive(Debug)]
pub struct Report {
    bar: ProgressBar,
    lines: Mutex<Vec<(String, Status)>>,
}

impl Report {
    pub fn new() -> Report {
        Report {
            bar: bytes_bar(0),
            lines: Mutex::new(Vec::new()),
        }
    }

    /// More bytes are expected (sizes become known as listings arrive).
    pub fn expect_bytes(&self, n: u64) {
        self.bar.inc_length(n);
    }

    /// The bar downloads advance as their bytes arrive.
    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }

    pub fn message(&self, msg: String) {
        self.bar.set_message(msg);
    }

    /// Records one object's outcome and prints it (above the bar on a terminal).
    pub fn record(&self, what: impl Into<String>, status: Status) {
        let what = what.into();
        let line = match &status {
            Status::New => format!("new      {what}"),
            Status::Skipped => format!("skipped  {what} (already stored)"),
            Status::WouldFetch => format!("fetch    {what}"),
            Status::Failed(reason) => format!("FAILED   {what}: {reason}"),
        };
        report(&self.bar, line);
        self.lines
            .lock()
            .expect("not poisoned")
            .push((what, status));
    }

    pub fn failed(&self) -> Vec<(String, String)> {
        self.lines
            .lock()
            .expect("not poisoned")
            .iter()
            .filter_map(|(w, s)| match s {
                Status::Failed(r) => Some((w.clone(), r.clone())),
                _ => None,
            })
            .collect()
    }

    fn count(&self, want: fn(&Status) -> bool) -> usize {
        self.lines
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|(_, s)| want(s))
            .count()
    }

    /// Prints the summary; `Err` (so a non-zero exit) when anything failed.
    pub fn finish(&self, dry_run: bool) -> anyhow::Result<()> {
        self.bar.finish_and_clear();
        let failed = self.failed();
        if dry_run {
            eprintln!(
                "dry run: {} to fetch, {} already stored, {} failed",
                self.count(|s| *s == Status::WouldFetch),
                self.count(|s| *s == Status::Skipped),
                failed.len()
            );
        } else {
            eprintln!(
                "mirror: {} new, {} skipped (already stored), {} failed",
                self.count(|s| *s == Status::New),
                self.count(|s| *s == Status::Skipped),
                failed.len()
            );
        }
        for (what, reason) in &failed {
            eprintln!("  failed: {what}: {reason}");
        }
        if !failed.is_empty() {
            anyhow::bail!(
                "{} object(s) failed (nothing partial was stored); fix the cause and run the same command again: what is stored is skipped",
                failed.len()
            );
        }
        Ok(())
    }
}

impl Default for Report {
    fn default() -> Self {
        Report::new()
    }
}
