//! Node metrics: lock-free counters, gauges and histograms, rendered as Prometheus text.
//!
//! Names follow Prometheus's conventions: the unit last (`_seconds`, `_bytes`), counters end in
//! `_total`, histograms in seconds. `process` adds the standard `process_*` metrics. Every name
//! the Grafana dashboard (`docs/grafana/confab.json`) queries is exported by every node
//! (`tests/tests/observability.rs` checks it).

mod process;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds (µs) of the commit-latency histogram buckets.
const COMMIT_BUCKETS_US: [u64; 14] =
    [250, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 20_000, 30_000, 50_000, 100_000, 250_000, 1_000_000, u64::MAX];
/// Upper bounds (µs) of the fan-out lag histogram buckets.
const FANOUT_BUCKETS_US: [u64; 14] =
    [100, 250, 500, 1_000, 2_500, 5_000, 10_000, 15_000, 25_000, 50_000, 100_000, 250_000, 1_000_000, u64::MAX];

/// Upper bounds (µs) of the stranger-chat wait histogram buckets.
const WAIT_BUCKETS_US: [u64; 14] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    15_000_000,
    20_000_000,
    30_000_000,
    60_000_000,
    120_000_000,
    300_000_000,
    u64::MAX,
];
/// Interests named in `confab_stranger_waiting_by_interest` (the others add up under `_other`),
/// so a label's values stay few whatever people type.
pub const STRANGER_INTEREST_LABELS: usize = 10;

/// A histogram of durations over the buckets `bounds_us` its owner passes, rendered in seconds.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; 14],
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe_us(&self, bounds_us: &[u64; 14], micros: u64) {
        self.sum_us.fetch_add(micros, Relaxed);
        let idx = bounds_us.iter().position(|&b| micros <= b).unwrap_or(bounds_us.len() - 1);
        self.buckets[idx].fetch_add(1, Relaxed);
    }

    fn render(&self, bounds_us: &[u64; 14], out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in bounds_us.iter().enumerate() {
            cumulative += self.buckets[i].load(Relaxed);
            let le = if *bound == u64::MAX { "+Inf".to_owned() } else { format!("{}", *bound as f64 / 1e6) };
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_sum {}", self.sum_us.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

/// Every metric of a node. Shared as `Arc<Metrics>`.
#[derive(Debug, Default)]
pub struct Metrics {
    pub connections: AtomicI64,
    pub active_rooms: AtomicI64,
    pub messages_committed: AtomicU64,
    /// Messages committed during the last whole second, set by a sampler.
    pub messages_per_second: AtomicU64,
    pub writer_batches: AtomicU64,
    pub writer_batch_items: AtomicU64,
    pub writer_batch_max: AtomicU64,
    pub writer_failures: AtomicU64,
    /// How long each batch took to commit.
    commit: Histogram,
    /// How long committed messages waited before their room sent them to its subscribers (the
    /// fan-out window, and the room's mailbox), per fan-out, from the oldest message in it.
    fanout_lag: Histogram,
    pub room_restarts: AtomicU64,
    pub session_restarts: AtomicU64,
    /// Sessions parked now (idle, no running actor: `crate::session`).
    pub sessions_parked: AtomicU64,
    pub writer_restarts: AtomicU64,
    pub moderation_restarts: AtomicU64,
    pub sessions_closed_lagging: AtomicU64,
    pub ephemeral_dropped: AtomicU64,
    pub history_cache_hits: AtomicU64,
    pub history_cache_misses: AtomicU64,
    /// Reads of room history (join replays and history pages) by where they were served from:
    /// the room's in-memory tail, the history cache, the database (`confab_history_reads_total`).
    pub history_reads_tail: AtomicU64,
    pub history_reads_cache: AtomicU64,
    pub history_reads_database: AtomicU64,
    pub frames_in: AtomicU64,
    pub protocol_errors: AtomicU64,
    /// Rooms this node handed to another owner.
    pub handoffs: AtomicU64,
    /// Rooms this node took over from a node that was not live.
    pub failovers: AtomicU64,
    /// Sends forwarded to another node's room.
    pub forwards: AtomicU64,
    /// Proxies that subscribed afresh because the owner lost events or did not answer.
    pub resubscribes: AtomicU64,
    /// Uploads stored, their bytes, and uploads refused (size, type, quota, rate, cut off).
    pub uploads: AtomicU64,
    pub upload_bytes: AtomicU64,
    pub uploads_refused: AtomicU64,
    /// Sweeper runs this node made (holding the lease), files and bytes it deleted, failures.
    pub sweeper_runs: AtomicU64,
    pub sweeper_files_deleted: AtomicU64,
    pub sweeper_bytes_deleted: AtomicU64,
    pub sweeper_errors: AtomicU64,
    /// Stranger chats the match pool made here, how long each of their people waited, who
    /// waits (as the pool last read its queue; zero on nodes not running the pool) and, of them,
    /// how many named each of the most named interests (`STRANGER_INTEREST_LABELS`).
    pub stranger_matches: AtomicU64,
    stranger_wait: Histogram,
    pub stranger_waiting: AtomicI64,
    pub stranger_waiting_by_interest: std::sync::Mutex<Vec<(String, u64)>>,
    /// Stranger chats deleted after both left.
    pub stranger_chats_deleted: AtomicU64,
    pub match_pool_restarts: AtomicU64,
    /// 1 on the node running the match pool.
    pub match_pool_running: AtomicI64,
}

impl Metrics {
    /// Records one committed batch.
    pub fn record_batch(&self, items: usize, micros: u64) {
        self.writer_batches.fetch_add(1, Relaxed);
        self.writer_batch_items.fetch_add(items as u64, Relaxed);
        self.writer_batch_max.fetch_max(items as u64, Relaxed);
        self.commit.observe_us(&COMMIT_BUCKETS_US, micros);
    }

    /// Records one fan-out whose oldest message became durable `lag` ago.
    pub fn record_fanout_lag(&self, lag: Duration) {
        self.fanout_lag.observe_us(&FANOUT_BUCKETS_US, lag.as_micros().min(u64::MAX as u128) as u64);
    }

    /// Records how long someone waited for a stranger.
    pub fn record_stranger_wait(&self, wait: Duration) {
        self.stranger_wait.observe_us(&WAIT_BUCKETS_US, wait.as_micros().min(u64::MAX as u128) as u64);
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let mut gauge = |name: &str, help: &str, kind: &str, v: i128| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        gauge("confab_connections", "Open WebSocket connections.", "gauge", self.connections.load(Relaxed) as i128);
        gauge(
            "confab_sessions_parked",
            "Sessions parked: idle, their state kept without a running actor.",
            "gauge",
            self.sessions_parked.load(Relaxed) as i128,
        );
        gauge(
            "confab_active_rooms",
            "Room actors running on this node.",
            "gauge",
            self.active_rooms.load(Relaxed) as i128,
        );
        gauge(
            "confab_messages_committed_total",
            "Chat messages made durable.",
            "counter",
            self.messages_committed.load(Relaxed) as i128,
        );
        gauge(
            "confab_messages_per_second",
            "Messages committed during the last second.",
            "gauge",
            self.messages_per_second.load(Relaxed) as i128,
        );
        gauge(
            "confab_writer_batches_total",
            "Batches committed by the writer.",
            "counter",
            self.writer_batches.load(Relaxed) as i128,
        );
        gauge(
            "confab_writer_batch_items_total",
            "Writes committed in batches.",
            "counter",
            self.writer_batch_items.load(Relaxed) as i128,
        );
        gauge(
            "confab_writer_batch_max",
            "Largest batch committed.",
            "gauge",
            self.writer_batch_max.load(Relaxed) as i128,
        );
        gauge(
            "confab_handoffs_total",
            "Rooms handed off to another node.",
            "counter",
            self.handoffs.load(Relaxed) as i128,
        );
        gauge(
            "confab_failovers_total",
            "Rooms taken over from a node that was not live.",
            "counter",
            self.failovers.load(Relaxed) as i128,
        );
        gauge(
            "confab_forwards_total",
            "Sends forwarded to a room's owner node.",
            "counter",
            self.forwards.load(Relaxed) as i128,
        );
        gauge(
            "confab_resubscribes_total",
            "Room proxies that subscribed afresh because the owner lost events or did not answer.",
            "counter",
            self.resubscribes.load(Relaxed) as i128,
        );
        for (name, help, v) in [
            ("confab_uploads_total", "Uploads stored.", &self.uploads),
            ("confab_upload_bytes_total", "Bytes of uploads stored.", &self.upload_bytes),
            (
                "confab_uploads_refused_total",
                "Uploads refused (size, type, quota, rate, cut off).",
                &self.uploads_refused,
            ),
            ("confab_sweeper_runs_total", "Sweeper runs made by this node (the lease holder).", &self.sweeper_runs),
            (
                "confab_sweeper_files_deleted_total",
                "Unreferenced uploads the sweeper deleted.",
                &self.sweeper_files_deleted,
            ),
            (
                "confab_sweeper_deleted_bytes_total",
                "Bytes of the uploads the sweeper deleted.",
                &self.sweeper_bytes_deleted,
            ),
            ("confab_sweeper_errors_total", "Sweeper runs or deletions that failed.", &self.sweeper_errors),
        ] {
            gauge(name, help, "counter", v.load(Relaxed) as i128);
        }
        gauge(
            "confab_writer_failures_total",
            "Batches that failed to commit.",
            "counter",
            self.writer_failures.load(Relaxed) as i128,
        );
        gauge(
            "confab_sessions_closed_lagging_total",
            "Sessions closed because they fell behind.",
            "counter",
            self.sessions_closed_lagging.load(Relaxed) as i128,
        );
        gauge(
            "confab_ephemeral_dropped_total",
            "Typing/presence frames shed under backpressure.",
            "counter",
            self.ephemeral_dropped.load(Relaxed) as i128,
        );
        gauge(
            "confab_history_cache_hits_total",
            "History pages served from the cache.",
            "counter",
            self.history_cache_hits.load(Relaxed) as i128,
        );
        gauge(
            "confab_history_cache_misses_total",
            "History pages read from the database.",
            "counter",
            self.history_cache_misses.load(Relaxed) as i128,
        );
        gauge("confab_frames_in_total", "Client frames received.", "counter", self.frames_in.load(Relaxed) as i128);
        gauge(
            "confab_protocol_errors_total",
            "Error frames sent to clients.",
            "counter",
            self.protocol_errors.load(Relaxed) as i128,
        );

        let _ = writeln!(
            out,
            "# HELP confab_actor_restarts_total Actors restarted by their supervisor.\n# TYPE confab_actor_restarts_total counter"
        );
        for (kind, v) in [
            ("room", &self.room_restarts),
            ("session", &self.session_restarts),
            ("writer", &self.writer_restarts),
            ("moderation", &self.moderation_restarts),
            ("match_pool", &self.match_pool_restarts),
        ] {
            let _ = writeln!(out, "confab_actor_restarts_total{{kind=\"{kind}\"}} {}", v.load(Relaxed));
        }

        let _ = writeln!(
            out,
            "# HELP confab_history_reads_total Reads of room history (join replays, history pages) by source: \
             the room's in-memory tail, the history cache, or a database query.\n\
             # TYPE confab_history_reads_total counter"
        );
        for (source, v) in [
            ("tail", &self.history_reads_tail),
            ("cache", &self.history_reads_cache),
            ("database", &self.history_reads_database),
        ] {
            let _ = writeln!(out, "confab_history_reads_total{{source=\"{source}\"}} {}", v.load(Relaxed));
        }

        self.commit.render(
            &COMMIT_BUCKETS_US,
            &mut out,
            "confab_writer_commit_seconds",
            "Commit latency of writer batches.",
        );
        self.fanout_lag.render(
            &FANOUT_BUCKETS_US,
            &mut out,
            "confab_fanout_lag_seconds",
            "Time committed messages waited before their room sent them to its subscribers.",
        );
        self.stranger_wait.render(
            &WAIT_BUCKETS_US,
            &mut out,
            "confab_stranger_wait_seconds",
            "How long people waited in the match pool's queue before being paired.",
        );
        let _ = writeln!(
            out,
            "# HELP confab_stranger_matches_total Stranger chats the match pool made on this node.\n\
             # TYPE confab_stranger_matches_total counter\nconfab_stranger_matches_total {}\n\
             # HELP confab_stranger_chats_deleted_total Stranger chats deleted after both people left.\n\
             # TYPE confab_stranger_chats_deleted_total counter\nconfab_stranger_chats_deleted_total {}\n\
             # HELP confab_stranger_waiting People waiting for a stranger (on the node running the pool).\n\
             # TYPE confab_stranger_waiting gauge\nconfab_stranger_waiting {}\n\
             # HELP confab_stranger_waiting_by_interest People waiting, by interest (the most named; the rest as _other).\n\
             # TYPE confab_stranger_waiting_by_interest gauge\n\
             # HELP confab_match_pool_running 1 on the node that runs the match pool.\n\
             # TYPE confab_match_pool_running gauge\nconfab_match_pool_running {}",
            self.stranger_matches.load(Relaxed),
            self.stranger_chats_deleted.load(Relaxed),
            self.stranger_waiting.load(Relaxed),
            self.match_pool_running.load(Relaxed),
        );
        if let Ok(by) = self.stranger_waiting_by_interest.lock() {
            for (interest, n) in by.iter() {
                // Interests hold no quote nor backslash (`stranger::interests`).
                let _ = writeln!(out, "confab_stranger_waiting_by_interest{{interest=\"{interest}\"}} {n}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP confab_build_info The running build of confab.\n# TYPE confab_build_info gauge\n\
             confab_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        process::render(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.record_batch(10, 800);
        m.record_batch(3, 30_000);
        m.room_restarts.fetch_add(2, Relaxed);
        let text = m.render();
        assert!(text.contains("confab_writer_batch_items_total 13"));
        assert!(text.contains("confab_writer_batch_max 10"));
        assert!(text.contains("confab_actor_restarts_total{kind=\"room\"} 2"));
        assert!(text.contains("confab_writer_commit_seconds_bucket{le=\"0.001\"} 1"));
        assert!(text.contains("confab_writer_commit_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("confab_writer_commit_seconds_count 2"));
        m.record_fanout_lag(Duration::from_millis(3));
        let text = m.render();
        assert!(text.contains("confab_fanout_lag_seconds_bucket{le=\"0.0025\"} 0"));
        assert!(text.contains("confab_fanout_lag_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("confab_fanout_lag_seconds_sum 0.003"));
    }

    #[test]
    fn every_family_is_declared_once_and_counters_end_in_total() {
        let text = Metrics::default().render();
        let mut seen = std::collections::HashSet::new();
        for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
            let (name, kind) = line.split_once(' ').expect("name and type");
            assert!(seen.insert(name.to_owned()), "{name} declared twice");
            assert!(name.starts_with("confab_") || name.starts_with("process_"), "{name}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{name} is a {kind}");
        }
        assert!(seen.contains("process_resident_memory_bytes") && seen.contains("process_start_time_seconds"));
    }
}
