//! Whether the node's storage takes writes now: what `/readyz` reports, and what rooms and the
//! room directory check before they sequence a send or start a room.
//!
//! The batching writer is the witness: a failed commit marks storage *failing* until a commit or
//! one of the writer's probe writes succeeds (`WriterMsg::Probe`, every `PROBE_EVERY` while
//! failing); a commit that has run for longer than `COMMIT_STALL` marks it *stalled* (the
//! database is slow or a lock holds the messages table) until it ends. Either way sends are
//! refused at once with `retry` instead of piling up behind the writer: while the database is
//! away a node holds no more than what was in flight when it went, and nothing waits on a
//! database call that cannot answer.
//!
//! It must never mark storage healthy on anything but a write that reached the database.

use confab_schemas::{ErrorCode, Refusal};
use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant};

/// A commit running longer than this counts as stalled storage.
pub(crate) const COMMIT_STALL: Duration = Duration::from_secs(2);
/// How often the writer tries a probe write while storage is failing.
pub(crate) const PROBE_EVERY: Duration = Duration::from_millis(500);

/// The state of storage as the writer last saw it (shared by the writer's incarnations).
#[derive(Debug)]
pub struct StorageHealth {
    /// When this was made: commit start times are counted from here.
    since: Instant,
    /// Milliseconds (from `since`, plus one) at which the commit in progress started; 0: none.
    commit_started: AtomicU64,
    /// The last commit or probe failed.
    failing: AtomicBool,
    /// Why, for `/readyz` and the logs.
    last_error: Mutex<String>,
}

impl Default for StorageHealth {
    fn default() -> Self {
        StorageHealth {
            since: Instant::now(),
            commit_started: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            last_error: Mutex::new(String::new()),
        }
    }
}

impl StorageHealth {
    /// A commit (or probe) starts.
    pub(crate) fn commit_begins(&self) {
        self.commit_started.store(self.since.elapsed().as_millis() as u64 + 1, Relaxed);
    }

    /// The commit (or probe) ended: `Err` with the database's error when it failed.
    pub(crate) fn commit_ends(&self, result: Result<(), String>) {
        self.commit_started.store(0, Relaxed);
        match result {
            Ok(()) => {
                if self.failing.swap(false, Relaxed) {
                    tracing::info!("storage takes writes again");
                }
            }
            Err(err) => {
                if !self.failing.swap(true, Relaxed) {
                    tracing::warn!(%err, "storage refused a write; sends are refused until it takes one");
                }
                *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = err;
            }
        }
    }

    /// The last commit or probe failed.
    pub(crate) fn failing(&self) -> bool {
        self.failing.load(Relaxed)
    }

    /// How long the commit in progress has run, when it has run longer than `COMMIT_STALL`.
    fn stalled_for(&self) -> Option<Duration> {
        let started = self.commit_started.load(Relaxed);
        let running = Duration::from_millis((self.since.elapsed().as_millis() as u64 + 1).saturating_sub(started));
        (started != 0 && running > COMMIT_STALL).then_some(running)
    }

    /// Why storage takes no writes now, if it does not.
    pub fn unavailable(&self) -> Option<String> {
        if self.failing() {
            let err = self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
            return Some(format!("the last write failed: {err}"));
        }
        self.stalled_for().map(|d| format!("a commit has been running for {} ms", d.as_millis()))
    }

    /// The refusal of a send (or a room start) while storage takes no writes.
    pub(crate) fn refusal(&self) -> Option<Refusal> {
        if self.failing() || self.stalled_for().is_some() {
            return Some(Refusal::new(ErrorCode::Retry, "storage is unavailable; send again shortly"));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_refuses_until_one_succeeds() {
        let h = StorageHealth::default();
        assert!(h.refusal().is_none() && h.unavailable().is_none());
        h.commit_begins();
        h.commit_ends(Err("disk full".into()));
        assert_eq!(h.refusal().map(|r| r.code), Some(ErrorCode::Retry));
        assert!(h.unavailable().is_some_and(|why| why.contains("disk full")));
        h.commit_begins();
        h.commit_ends(Ok(()));
        assert!(h.refusal().is_none());
    }

    #[test]
    fn a_long_commit_counts_as_stalled_while_it_runs() {
        let h = StorageHealth::default();
        h.commit_begins();
        assert!(h.refusal().is_none(), "a commit that just started is not a stall");
        // A commit that started longer ago than the stall limit.
        h.commit_started.store(1, Relaxed);
        let h = StorageHealth { since: Instant::now() - COMMIT_STALL * 2, ..h };
        assert!(h.unavailable().is_some_and(|why| why.contains("running")));
        h.commit_ends(Ok(()));
        assert!(h.refusal().is_none());
    }
}
