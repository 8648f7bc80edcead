//! `confab bench soak`: a long run at a steady load while clients connect, leave and resume all
//! the time, watching the server for leaks.
//!
//! R rooms × M members (S senders per room at X msg/s; by default 100 × 50 with 2 senders at
//! 3.5 msg/s, 35,000 deliveries/s, half of what one node on one core held in `fanout`). Each
//! member stays for an exponential time (mean `--online`), then goes away for up to `--offline`:
//! some receivers leave the room and join it again on the same socket, the others (and every
//! sender) close the socket, half of them with a reset, and reconnect; all resume with `since`
//! (`resume.rs`). Every `--sample-every` seconds the server's resident memory and open file
//! descriptors are read from `/proc/<pid>`; the report gives their least-squares slope per hour
//! (samples of the first `--warmup` seconds left out), errors, and the loss, duplicate and order
//! checks over every resume. `tests/tests/soak.rs` runs it for 45 s against an in-process node.

use super::report::{Latency, r3, rss_kib};
use super::resume::{self, Churn, Fleet};
use super::{ConnArgs, Setup, prepare, rest, run_id, users};
use anyhow::bail;
use clap::Args;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Args, Debug)]
pub(crate) struct SoakArgs {
    #[arg(long, default_value_t = 100)]
    rooms: usize,
    /// Member connections per room (senders included).
    #[arg(long, default_value_t = 50)]
    members: usize,
    /// Senders per room.
    #[arg(long, default_value_t = 2)]
    senders: usize,
    /// Messages per second, per sender.
    #[arg(long, default_value_t = 3.5)]
    rate: f64,
    /// Seconds to run.
    #[arg(long, default_value_t = 3600.0)]
    duration: f64,
    /// Mean seconds a member stays before it goes away.
    #[arg(long, default_value_t = 60.0)]
    online: f64,
    /// Longest time a member stays away, in seconds.
    #[arg(long, default_value_t = 2.0)]
    offline: f64,
    /// Share of receivers that leave the room and join again on the same socket (the others
    /// reconnect).
    #[arg(long, default_value_t = 0.3)]
    leave_share: f64,
    /// Seconds between samples of the server's memory and file descriptors.
    #[arg(long, default_value_t = 5.0)]
    sample_every: f64,
    /// Seconds of samples left out of the slopes (caches and pools filling up).
    #[arg(long, default_value_t = 120.0)]
    warmup: f64,
    /// Longest wait at the end for outstanding acks and deliveries, in seconds.
    #[arg(long, default_value_t = 20.0)]
    drain: f64,
    /// Users to spread the connections over (default: one per sender plus 4 for receivers).
    #[arg(long)]
    users: Option<usize>,
    #[command(flatten)]
    conn: ConnArgs,
}

impl SoakArgs {
    pub(crate) fn threads(&self) -> Option<usize> {
        self.conn.threads
    }
}

/// What one soak does.
#[derive(Debug, Clone)]
pub struct SoakSpec {
    pub nodes: Vec<SocketAddr>,
    pub rooms: usize,
    pub members: usize,
    pub senders: usize,
    /// Messages per second, per sender.
    pub rate: f64,
    pub duration: Duration,
    /// Mean time a member stays.
    pub online: Duration,
    /// Longest time a member stays away.
    pub offline: Duration,
    pub leave_share: f64,
    pub sample_every: Duration,
    pub warmup: Duration,
    pub drain: Duration,
    /// The server to sample (`/proc/<pid>`); the generator's own process when it runs the node.
    pub server_pid: Option<u32>,
    pub users: Option<usize>,
    pub password: String,
    pub connect_concurrency: usize,
    /// Client source addresses (`None`: the kernel's choice).
    pub sources: Vec<Option<IpAddr>>,
    /// A line per sample on stderr.
    pub progress: bool,
}

/// One reading of the server.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at_s: f64,
    pub rss_kib: Option<u64>,
    pub fds: Option<u64>,
}

/// What a soak printed.
#[derive(Debug, Clone)]
pub struct SoakReport {
    pub spec: SoakSpec,
    pub connections: usize,
    pub connected: usize,
    pub connect_errors: BTreeMap<String, u64>,
    pub samples: Vec<Sample>,
    /// Least-squares slopes over the samples after the warm-up, per hour.
    pub rss_slope_kib_per_hour: Option<f64>,
    pub fd_slope_per_hour: Option<f64>,
    pub reconnects: u64,
    pub rejoins_same_socket: u64,
    pub reconnect_errors: BTreeMap<String, u64>,
    pub reconnect_error_sample: Option<String>,
    pub unexpected_drops: u64,
    pub drop_reasons: BTreeMap<String, u64>,
    pub error_frames: BTreeMap<String, u64>,
    pub resyncs: u64,
    pub sent: u64,
    pub resent: u64,
    pub acked: u64,
    pub refused: u64,
    pub deliveries: u64,
    pub catch_up: u64,
    pub drained: bool,
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub seq_gaps: u64,
    pub seq_regressions: u64,
    pub away_at_end: u64,
    live: Latency,
    resume: Latency,
}

impl SoakReport {
    /// Every member connected, every acked message delivered exactly once in order, no error
    /// frame, no failed reconnect, no socket dropped by the server.
    pub fn clean(&self) -> bool {
        self.connected == self.connections
            && self.drained
            && self.lost + self.duplicates + self.out_of_order + self.seq_gaps + self.seq_regressions == 0
            && self.away_at_end == 0
            && self.error_frames.is_empty()
            && self.reconnect_errors.is_empty()
            && self.unexpected_drops == 0
            && self.refused == 0
    }

    /// p99 of live delivery latency, ms.
    pub fn live_p99_ms(&self) -> f64 {
        self.live.p99
    }

    pub fn print(&self) {
        let s = &self.spec;
        println!("confab bench soak");
        println!(
            "{} rooms × {} members, {} sender(s)/room at {} msg/s each, {:.0} s; members stay {:.0} s on average, away up to {:.1} s ({:.0}% of receivers leave and rejoin on the socket)",
            s.rooms,
            s.members,
            s.senders,
            s.rate,
            s.duration.as_secs_f64(),
            s.online.as_secs_f64(),
            s.offline.as_secs_f64(),
            s.leave_share * 100.0
        );
        let row = |k: &str, v: String| println!("  {k:<22} {v}");
        row(
            "connections",
            format!(
                "{}/{} connected{}",
                self.connected,
                self.connections,
                if self.connect_errors.is_empty() {
                    String::new()
                } else {
                    format!(", errors {:?}", self.connect_errors)
                }
            ),
        );
        row(
            "churn",
            format!(
                "{} reconnects, {} leave-and-rejoins; {} failed reconnect attempts{}; {} sockets ended without being asked{}",
                self.reconnects,
                self.rejoins_same_socket,
                self.reconnect_errors.values().sum::<u64>(),
                match (&self.reconnect_error_sample, self.reconnect_errors.is_empty()) {
                    (Some(e), false) => format!(" {:?} (e.g. {e})", self.reconnect_errors),
                    _ => String::new(),
                },
                self.unexpected_drops,
                if self.drop_reasons.is_empty() { String::new() } else { format!(" {:?}", self.drop_reasons) }
            ),
        );
        row(
            "sends",
            format!(
                "{} sent, {} sent again, {} acked, {} refused; {} deliveries ({} catch-up){}",
                self.sent,
                self.resent,
                self.acked,
                self.refused,
                self.deliveries,
                self.catch_up,
                if self.drained { "" } else { "; NOT drained" }
            ),
        );
        row("live latency", self.live.line());
        row("resume (away → head)", self.resume.line());
        row(
            "loss / dup / order",
            format!(
                "lost {} · duplicates {} · out-of-order {} · seq gaps {} · seq regressions {} · away at the end {}",
                self.lost, self.duplicates, self.out_of_order, self.seq_gaps, self.seq_regressions, self.away_at_end
            ),
        );
        row(
            "error frames",
            if self.error_frames.is_empty() { "none".to_owned() } else { format!("{:?}", self.error_frames) }
                + &format!(" · resyncs {}", self.resyncs),
        );
        let (first, last) = self.steady_ends();
        let mib = |k: Option<u64>| k.map_or("n/a".to_owned(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
        let fds = |k: Option<u64>| k.map_or("n/a".to_owned(), |k| k.to_string());
        row(
            "server memory (RSS)",
            format!(
                "{} → {} after warm-up; slope {} (max {})",
                mib(first.and_then(|s| s.rss_kib)),
                mib(last.and_then(|s| s.rss_kib)),
                self.rss_slope_kib_per_hour.map_or("n/a".to_owned(), |k| format!("{:+.2} MiB/h", k / 1024.0)),
                mib(self.samples.iter().filter_map(|s| s.rss_kib).max())
            ),
        );
        row(
            "server open fds",
            format!(
                "{} → {} after warm-up; slope {} (min {}, max {})",
                fds(first.and_then(|s| s.fds)),
                fds(last.and_then(|s| s.fds)),
                self.fd_slope_per_hour.map_or("n/a".to_owned(), |k| format!("{k:+.1}/h")),
                fds(self.samples.iter().filter_map(|s| s.fds).min()),
                fds(self.samples.iter().filter_map(|s| s.fds).max())
            ),
        );
        row(
            "samples",
            format!(
                "{} (every {:.0} s, first {:.0} s left out)",
                self.samples.len(),
                s.sample_every.as_secs_f64(),
                s.warmup.as_secs_f64()
            ),
        );
        row("verdict", if self.clean() { "clean".to_owned() } else { "NOT clean".to_owned() });
    }

    fn steady_ends(&self) -> (Option<Sample>, Option<Sample>) {
        let warm = self.spec.warmup.as_secs_f64();
        let mut steady = self.samples.iter().filter(|s| s.at_s >= warm);
        (steady.next().copied(), self.samples.iter().rfind(|s| s.at_s >= warm).copied())
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        let s = &self.spec;
        let v = json!({
            "kind": "soak", "rooms": s.rooms, "members": s.members, "senders_per_room": s.senders,
            "rate_per_sender": s.rate, "duration_s": s.duration.as_secs_f64(), "online_mean_s": s.online.as_secs_f64(),
            "offline_max_s": s.offline.as_secs_f64(), "leave_share": s.leave_share, "warmup_s": s.warmup.as_secs_f64(),
            "connections": self.connections, "connected": self.connected, "connect_errors": self.connect_errors,
            "reconnects": self.reconnects, "rejoins_same_socket": self.rejoins_same_socket,
            "reconnect_errors": self.reconnect_errors, "unexpected_drops": self.unexpected_drops,
            "drop_reasons": self.drop_reasons,
            "error_frames": self.error_frames, "resyncs": self.resyncs,
            "sent": self.sent, "resent": self.resent, "acked": self.acked, "refused": self.refused,
            "deliveries": self.deliveries, "catch_up_deliveries": self.catch_up, "drained": self.drained,
            "lost": self.lost, "duplicates": self.duplicates, "out_of_order": self.out_of_order,
            "seq_gaps": self.seq_gaps, "seq_regressions": self.seq_regressions, "away_at_end": self.away_at_end,
            "live_latency": self.live.json(), "resume": self.resume.json(),
        });
        let more = json!({
            "rss_slope_kib_per_hour": self.rss_slope_kib_per_hour.map(r3), "fd_slope_per_hour": self.fd_slope_per_hour.map(r3),
            "samples": self.samples.iter().map(|s| json!({"at_s": r3(s.at_s), "rss_kib": s.rss_kib, "fds": s.fds})).collect::<Vec<_>>(),
            "clean": self.clean(),
        });
        let mut v = v;
        if let (Some(v), serde_json::Value::Object(more)) = (v.as_object_mut(), more) {
            v.extend(more);
        }
        v
    }
}

/// Open file descriptors of a process.
pub fn open_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// The least-squares slope of `(x, y)` points (y per unit of x); None under two distinct x.
pub(crate) fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    Some(points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>() / sxx)
}

/// Runs a soak: users and rooms, every member connected, the churning load for `duration`
/// with samples of the server, then a settle (nobody goes away any more) and a drain.
pub async fn run_soak(spec: &SoakSpec) -> anyhow::Result<SoakReport> {
    if spec.rooms == 0 || spec.members == 0 || spec.senders == 0 || spec.senders > spec.members {
        bail!("need rooms ≥ 1, members ≥ 1 and 1 ≤ senders ≤ members");
    }
    if !(spec.rate > 0.0 && !spec.online.is_zero() && (0.0..=1.0).contains(&spec.leave_share)) {
        bail!("--rate and --online must be positive, --leave-share within 0..1");
    }
    let total = spec.rooms * spec.members;
    let run = run_id();
    let n_users = spec.users.unwrap_or(spec.rooms * spec.senders + 4).max(1);
    let tokens = users(&spec.nodes, &run, n_users, &spec.password).await?;
    let setup = Setup {
        nodes: spec.nodes.clone(),
        tokens,
        explicit_users: spec.users.is_some(),
        connect_concurrency: spec.connect_concurrency.max(1),
        sources: spec.sources.clone(),
        server_pid: spec.server_pid.map(|p| p.to_string()),
        run_id: run.clone(),
        lazy_ack: false,
        placement: Default::default(),
    };
    let mut rooms = Vec::with_capacity(spec.rooms);
    for r in 0..spec.rooms {
        let node = spec.nodes[r % spec.nodes.len()];
        rooms.push(rest::create_room(node, &setup.tokens[0], &format!("bench-{run}-soak-r{r}")).await?);
    }
    let churn = Churn::Random { online: spec.online, offline: spec.offline, leave_share: spec.leave_share };
    let fleet = Arc::new(Fleet::new(rooms, spec.members, spec.senders, spec.rate, churn));
    let (start_tx, start_rx) = watch::channel::<Option<Instant>>(None);
    if spec.progress {
        eprintln!("soak: connecting {total} member connections…");
    }
    let (members, send_loops, connected) = resume::connect_all(&fleet, &setup, &start_rx).await;
    let t0 = Instant::now();
    let _ = start_tx.send(Some(t0));
    let pid = spec.server_pid;
    let mut samples = Vec::new();
    let mut next = t0;
    let end = t0 + spec.duration;
    while next <= end {
        tokio::time::sleep_until(next.into()).await;
        let s = Sample {
            at_s: t0.elapsed().as_secs_f64(),
            rss_kib: pid.and_then(|p| rss_kib(&p.to_string())),
            fds: pid.and_then(open_fds),
        };
        if spec.progress {
            eprintln!(
                "  t={:>6.0} s  rss {:>8} KiB  fds {:>6}  reconnects {:>7}  rejoins {:>7}  acked {:>9}  deliveries {:>11}  errors {:?}",
                s.at_s,
                s.rss_kib.map_or("-".into(), |k| k.to_string()),
                s.fds.map_or("-".into(), |k| k.to_string()),
                fleet.reconnects.load(Relaxed),
                fleet.rejoins_same_socket.load(Relaxed),
                fleet.acked.load(Relaxed),
                fleet.deliveries.load(Relaxed),
                fleet.errors.lock().expect("lock"),
            );
        }
        samples.push(s);
        next += spec.sample_every;
    }
    fleet.settle.cancel();
    fleet.sending.cancel();
    let drained = fleet.drain(Instant::now() + spec.drain).await;
    let checks = resume::finish(&fleet, members, send_loops).await;
    let warm = spec.warmup.as_secs_f64();
    let steady: Vec<&Sample> = samples.iter().filter(|s| s.at_s >= warm).collect();
    let rss: Vec<(f64, f64)> = steady.iter().filter_map(|s| Some((s.at_s / 3600.0, s.rss_kib? as f64))).collect();
    let fds: Vec<(f64, f64)> = steady.iter().filter_map(|s| Some((s.at_s / 3600.0, s.fds? as f64))).collect();
    Ok(SoakReport {
        spec: spec.clone(),
        connections: total,
        connected,
        connect_errors: checks.connect_errors.clone(),
        rss_slope_kib_per_hour: slope(&rss),
        fd_slope_per_hour: slope(&fds),
        samples,
        reconnects: fleet.reconnects.load(Relaxed),
        rejoins_same_socket: fleet.rejoins_same_socket.load(Relaxed),
        reconnect_errors: fleet.reconnect_errors.lock().expect("lock").clone(),
        reconnect_error_sample: fleet.reconnect_error_sample.lock().expect("lock").clone(),
        unexpected_drops: fleet.unexpected_drops.load(Relaxed),
        drop_reasons: fleet.drop_reasons.lock().expect("lock").clone(),
        error_frames: fleet.errors.lock().expect("lock").clone(),
        resyncs: fleet.resyncs.load(Relaxed),
        sent: fleet.sent.load(Relaxed),
        resent: fleet.resent.load(Relaxed),
        acked: fleet.acked.load(Relaxed),
        refused: fleet.senders.iter().map(|s| s.refused()).sum(),
        deliveries: fleet.deliveries.load(Relaxed),
        catch_up: fleet.catch_up.load(Relaxed),
        drained,
        lost: checks.lost,
        duplicates: checks.duplicates,
        out_of_order: checks.out_of_order,
        seq_gaps: checks.seq_gaps,
        seq_regressions: checks.seq_regressions,
        away_at_end: checks.away_at_end,
        live: Latency::of(&fleet.live[0].merged()),
        resume: Latency::of(&fleet.resume.merged()),
    })
}

pub(crate) async fn run(a: &SoakArgs) -> anyhow::Result<bool> {
    let (nodes, sources) = prepare(&a.conn, a.rooms * a.members)?;
    if a.duration > 840.0 {
        eprintln!(
            "warning: the benchmark users' access tokens expire (the server's --access-ttl-secs, 900 by default) \
             and the soak does not refresh them: start the server with --access-ttl-secs above {:.0}",
            a.duration + 300.0
        );
    }
    if a.conn.server_pid.is_none() {
        eprintln!("warning: without --server-pid the soak cannot sample the server's memory and descriptors");
    }
    let spec = SoakSpec {
        nodes,
        rooms: a.rooms,
        members: a.members,
        senders: a.senders,
        rate: a.rate,
        duration: Duration::from_secs_f64(a.duration.max(0.0)),
        online: Duration::from_secs_f64(a.online.max(0.0)),
        offline: Duration::from_secs_f64(a.offline.max(0.0)),
        leave_share: a.leave_share,
        sample_every: Duration::from_secs_f64(a.sample_every.max(0.1)),
        warmup: Duration::from_secs_f64(a.warmup.max(0.0)),
        drain: Duration::from_secs_f64(a.drain.max(0.0)),
        server_pid: a.conn.server_pid,
        users: a.users,
        password: a.conn.password.clone(),
        connect_concurrency: a.conn.connect_concurrency,
        sources,
        progress: true,
    };
    let r = run_soak(&spec).await?;
    if a.conn.json {
        println!("{}", serde_json::to_string_pretty(&r.json())?);
    } else {
        r.print();
    }
    Ok(r.clean())
}

#[cfg(test)]
mod tests {
    #[test]
    fn least_squares_slope() {
        let pts: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 3.0 * i as f64 + 7.0)).collect();
        assert!((super::slope(&pts).unwrap() - 3.0).abs() < 1e-9);
        assert_eq!(super::slope(&[(1.0, 2.0)]), None);
        assert_eq!(super::slope(&[(1.0, 2.0), (1.0, 5.0)]), None);
    }
}
