//! The sweeper: deletes the files nothing references any more. An upload never attached within
//! `orphan_ttl`, the files of deleted messages and of deleted rooms, and claims whose message
//! never committed (after `orphan_ttl` too). It runs every `every` on exactly one node of a
//! cluster at a time, the holder of the `sweeper` task lease in the database (renewed at each
//! run, lapsing after three missed runs, so another node takes over when its holder dies).
//!
//! Never a referenced file: a run first tombstones the unreferenced rows in one statement (a
//! claim needs an untombstoned row, and the tombstone re-reads the claim), then deletes the
//! tombstoned rows' blobs, then the rows. A run cut short leaves tombstones the next one
//! finishes. Its work shows in `/metrics` (`confab_sweeper_*`).

use crate::blob::{BlobError, BlobStore};
use crate::metrics::Metrics;
use crate::store::Store;
use confab_schemas::now_ms;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tracing::{debug, warn};

/// The task lease's name.
const LEASE: &str = "sweeper";
/// Tombstones handled per read.
const BATCH: u32 = 500;

/// How the sweeper runs.
#[derive(Debug, Clone)]
pub struct SweeperConfig {
    pub node_id: String,
    pub every: Duration,
    pub orphan_ttl: Duration,
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Whether this node held the lease (and so swept).
    pub swept: bool,
    pub files: u64,
    pub bytes: u64,
    pub errors: u64,
}

/// Runs the sweeper until the task is aborted (it may be at any point: see the module doc).
pub fn spawn(store: Store, blobs: BlobStore, metrics: Arc<Metrics>, cfg: SweeperConfig) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(cfg.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match sweep(&store, &blobs, &metrics, &cfg).await {
                Ok(r) if r.files > 0 => debug!(files = r.files, bytes = r.bytes, "sweeper deleted files"),
                Ok(_) => {}
                Err(e) => {
                    metrics.sweeper_errors.fetch_add(1, Relaxed);
                    warn!(err = %e, "sweeper run failed");
                }
            }
        }
    })
}

/// One run: takes (or renews) the lease, then deletes what nothing references.
pub async fn sweep(
    store: &Store,
    blobs: &BlobStore,
    metrics: &Metrics,
    cfg: &SweeperConfig,
) -> crate::Result<SweepReport> {
    let lease_ms = (cfg.every.as_millis() as i64).saturating_mul(3).max(10_000);
    if !store.take_task_lease(LEASE, &cfg.node_id, lease_ms).await? {
        return Ok(SweepReport::default());
    }
    metrics.sweeper_runs.fetch_add(1, Relaxed);
    let mut report = SweepReport { swept: true, ..Default::default() };
    store.tombstone_unreferenced(now_ms() - cfg.orphan_ttl.as_millis() as i64).await?;
    loop {
        let batch = store.tombstones(BATCH).await?;
        let full = batch.len() as u32 == BATCH;
        let mut progressed = false;
        for t in batch {
            let mut keys = vec![format!("u/{}", t.id)];
            if t.thumb {
                keys.push(format!("t/{}", t.id));
            }
            let mut ok = true;
            for key in keys {
                match blobs.delete(&key).await {
                    Ok(()) | Err(BlobError::NotFound) => {}
                    Err(e) => {
                        warn!(%key, err = %e, "sweeper could not delete a blob; it tries again next run");
                        ok = false;
                    }
                }
            }
            if !ok {
                report.errors += 1;
                metrics.sweeper_errors.fetch_add(1, Relaxed);
                continue;
            }
            store.forget_upload(t.owner, &t.id).await?;
            progressed = true;
            report.files += 1;
            report.bytes += t.size;
            metrics.sweeper_files_deleted.fetch_add(1, Relaxed);
            metrics.sweeper_bytes_deleted.fetch_add(t.size, Relaxed);
        }
        if !full || !progressed {
            break;
        }
    }
    Ok(report)
}
