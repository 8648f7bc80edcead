//! `confab bench reconnect-storm`: a loaded node loses every client at once (a load balancer
//! reload) and they all come back within `--spread`, each resuming its room with `since` (the
//! last seq it saw) while the senders keep sending.
//!
//! R rooms × M members (S senders per room at X msg/s) run for `--before` seconds; then every
//! socket is reset at once (senders' too, unless `--senders-stay`: their unanswered sends go
//! again on the new socket with the same cid). Reports how long until every client resumed (its
//! replay reached the head its `joined` gave), live delivery latency before, during (drop → all
//! resumed) and after the storm, loss, duplicates and order across it, and the history reads the
//! resumes cost (`confab_history_reads_total` by source, scraped before the drop and once all
//! resumed). The clients are `resume.rs`'s.

use super::body;
use super::report::{Latency, cpu_seconds, r3};
use super::resume::{self, Churn, Fleet};
use super::{ConnArgs, Setup, net, prepare, rest, run_id, users};
use anyhow::bail;
use clap::Args;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Args, Debug)]
pub(crate) struct StormArgs {
    #[arg(long, default_value_t = 390)]
    rooms: usize,
    /// Member connections per room (senders included).
    #[arg(long, default_value_t = 50)]
    members: usize,
    /// Senders per room.
    #[arg(long, default_value_t = 2)]
    senders: usize,
    /// Messages per second, per sender.
    #[arg(long, default_value_t = 0.5)]
    rate: f64,
    /// Seconds of traffic before the drop.
    #[arg(long, default_value_t = 10.0)]
    before: f64,
    /// Members reconnect at a uniform random time within this many seconds of the drop.
    #[arg(long, default_value_t = 1.0)]
    spread: f64,
    /// Seconds of traffic once every client resumed.
    #[arg(long, default_value_t = 5.0)]
    after: f64,
    /// The longest wait for every client to resume, in seconds from the drop.
    #[arg(long, default_value_t = 60.0)]
    resume_deadline: f64,
    /// Longest wait after sending for outstanding acks and deliveries, in seconds.
    #[arg(long, default_value_t = 10.0)]
    drain: f64,
    /// Senders keep their sockets (only receivers drop).
    #[arg(long)]
    senders_stay: bool,
    /// The target: every client resumed within this many seconds of the drop.
    #[arg(long, default_value_t = 3.0)]
    target: f64,
    /// Users to spread the connections over (default: one per sender plus 4 for receivers).
    #[arg(long)]
    users: Option<usize>,
    #[command(flatten)]
    conn: ConnArgs,
}

impl StormArgs {
    pub(crate) fn threads(&self) -> Option<usize> {
        self.conn.threads
    }
}

/// The metrics the storm reads before and after: history reads by source.
const READ_METRICS: [&str; 5] = [
    "confab_history_reads_total{source=\"tail\"}",
    "confab_history_reads_total{source=\"cache\"}",
    "confab_history_reads_total{source=\"database\"}",
    "confab_history_cache_hits_total",
    "confab_history_cache_misses_total",
];

/// The named samples of every node's `/metrics`, summed; None when a scrape fails.
pub(crate) async fn scrape(nodes: &[SocketAddr], names: &[&str]) -> Option<BTreeMap<String, f64>> {
    let mut sum: BTreeMap<String, f64> = BTreeMap::new();
    let mut seen = Vec::new();
    for &n in nodes {
        if seen.contains(&n) {
            continue;
        }
        seen.push(n);
        let (status, text) = net::http(n, "GET", "/metrics", None, None).await.ok()?;
        if status != 200 {
            return None;
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else { continue };
            if names.contains(&name)
                && let Ok(v) = value.trim().parse::<f64>()
            {
                *sum.entry(name.to_owned()).or_default() += v;
            }
        }
    }
    Some(sum)
}

fn delta(a: &Option<BTreeMap<String, f64>>, b: &Option<BTreeMap<String, f64>>, name: &str) -> Option<f64> {
    Some(b.as_ref()?.get(name).copied().unwrap_or(0.0) - a.as_ref()?.get(name).copied().unwrap_or(0.0))
}

pub(crate) async fn run(a: &StormArgs) -> anyhow::Result<bool> {
    if a.rooms == 0 || a.members == 0 || a.senders == 0 || a.senders > a.members {
        bail!("need rooms ≥ 1, members ≥ 1 and 1 ≤ senders ≤ members");
    }
    if !(a.rate > 0.0 && a.before > 0.0 && a.spread >= 0.0 && a.after >= 0.0) {
        bail!("--rate and --before must be positive, --spread and --after not negative");
    }
    let total = a.rooms * a.members;
    let (nodes, sources) = prepare(&a.conn, total)?;
    let run = run_id();
    let n_users = a.users.unwrap_or(a.rooms * a.senders + 4).max(1);
    let tokens = users(&nodes, &run, n_users, &a.conn.password).await?;
    let setup = Setup {
        nodes: nodes.clone(),
        tokens,
        explicit_users: a.users.is_some(),
        connect_concurrency: a.conn.connect_concurrency.max(1),
        sources,
        server_pid: a.conn.server_pid.map(|p| p.to_string()),
        run_id: run.clone(),
        lazy_ack: false,
        placement: Default::default(),
    };
    let setup_start = Instant::now();
    let mut rooms = Vec::with_capacity(a.rooms);
    for r in 0..a.rooms {
        rooms.push(
            rest::create_room(nodes[r % nodes.len()], &setup.tokens[0], &format!("bench-{run}-storm-r{r}")).await?,
        );
    }
    let drop = CancellationToken::new();
    let churn =
        Churn::Storm { drop: drop.clone(), spread: Duration::from_secs_f64(a.spread), senders_stay: a.senders_stay };
    let fleet = Arc::new(Fleet::new(rooms, a.members, a.senders, a.rate, churn));
    let (start_tx, start_rx) = watch::channel::<Option<Instant>>(None);
    eprintln!("reconnect-storm: connecting {total} member connections…");
    let (members, send_loops, connected) = resume::connect_all(&fleet, &setup, &start_rx).await;
    let setup_secs = setup_start.elapsed().as_secs_f64();
    eprintln!("  {connected}/{total} connected in {setup_secs:.1} s; {} s of traffic before the drop", a.before);

    let t0 = Instant::now() + Duration::from_millis(100);
    let _ = start_tx.send(Some(t0));
    tokio::time::sleep_until((t0 + Duration::from_secs_f64(a.before)).into()).await;

    let pid = setup.server_pid.as_deref();
    let m0 = scrape(&nodes, &READ_METRICS).await;
    let staying = if a.senders_stay { (a.rooms * a.senders).min(connected) } else { 0 };
    let expect = (connected - staying) as u64;
    fleet.expect_resumes.store(expect, Relaxed);
    let cpu0 = (cpu_seconds("self"), pid.and_then(cpu_seconds));
    let drop_at = Instant::now();
    let drop_nanos = body::instant_nanos(drop_at);
    fleet.boundaries[0].store(drop_nanos, Relaxed);
    eprintln!("dropping {expect} connections; they reconnect within {} s…", a.spread);
    drop.cancel();
    let deadline = drop_at + Duration::from_secs_f64(a.resume_deadline);
    while fleet.resumed_after_drop.load(Relaxed) < expect && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let resumed = fleet.resumed_after_drop.load(Relaxed);
    let storm_end = Instant::now();
    let cpu1 = (cpu_seconds("self"), pid.and_then(cpu_seconds));
    let m1 = scrape(&nodes, &READ_METRICS).await;
    let all_resumed = resumed >= expect;
    let resumed_secs =
        all_resumed.then(|| fleet.last_resumed_nanos.load(Relaxed).saturating_sub(drop_nanos) as f64 / 1e9);
    eprintln!(
        "  {resumed}/{expect} resumed{}; {} s of traffic after",
        resumed_secs.map_or(String::new(), |s| format!(", the last {s:.2} s after the drop")),
        a.after
    );
    tokio::time::sleep(Duration::from_secs_f64(a.after)).await;

    fleet.settle.cancel();
    fleet.sending.cancel();
    let drain_start = Instant::now();
    let drained = fleet.drain(drain_start + Duration::from_secs_f64(a.drain)).await;
    let drain_secs = drain_start.elapsed().as_secs_f64();
    let checks = resume::finish(&fleet, members, send_loops).await;
    let storm_secs = (storm_end - drop_at).as_secs_f64();
    let cpu_pct = |a: Option<f64>, b: Option<f64>| Some((b? - a?) / storm_secs * 100.0);
    let lat: Vec<Latency> = fleet.live.iter().map(|s| Latency::of(&s.merged())).collect();
    let resume = Latency::of(&fleet.resume.merged());
    let rejoin = Latency::of(&fleet.rejoin.merged());
    let reads: Vec<(&str, Option<f64>)> = READ_METRICS.iter().map(|n| (*n, delta(&m0, &m1, n))).collect();
    let errors = fleet.errors.lock().expect("lock").clone();
    let reconnect_errors = fleet.reconnect_errors.lock().expect("lock").clone();
    let refused: u64 = fleet.senders.iter().map(|s| s.refused()).sum();
    let target_met = resumed_secs.is_some_and(|s| s <= a.target);
    let ok = connected == total && all_resumed && checks.clean() && drained;

    if a.conn.json {
        let v = json!({
            "kind": "reconnect-storm",
            "rooms": a.rooms, "members": a.members, "senders_per_room": a.senders, "rate_per_sender": a.rate,
            "before_s": a.before, "spread_s": a.spread, "after_s": a.after, "senders_stay": a.senders_stay,
            "connections": total, "connected": connected, "setup_s": r3(setup_secs),
            "connect_errors": checks.connect_errors, "connect_error_sample": checks.connect_error_sample,
            "dropped": expect, "resumed": resumed, "all_resumed_s": resumed_secs.map(r3),
            "target_s": a.target, "target_met": target_met,
            "resume_after_drop": resume.json(), "joined_after_drop": rejoin.json(),
        });
        let more = json!({
            "reconnects": fleet.reconnects.load(Relaxed), "reconnect_errors": reconnect_errors,
            "reconnect_error_sample": fleet.reconnect_error_sample.lock().expect("lock").clone(),
            "unexpected_drops": fleet.unexpected_drops.load(Relaxed),
            "drop_reasons": fleet.drop_reasons.lock().expect("lock").clone(),
            "live_latency_before": lat[0].json(), "live_latency_storm": lat[1].json(), "live_latency_after": lat[2].json(),
            "catch_up_deliveries": fleet.catch_up.load(Relaxed),
            "sent": fleet.sent.load(Relaxed), "resent": fleet.resent.load(Relaxed), "acked": fleet.acked.load(Relaxed),
            "refused": refused, "deliveries": fleet.deliveries.load(Relaxed), "drained": drained, "drain_s": r3(drain_secs),
            "lost": checks.lost, "duplicates": checks.duplicates, "out_of_order": checks.out_of_order,
            "seq_gaps": checks.seq_gaps, "seq_regressions": checks.seq_regressions, "away_at_end": checks.away_at_end,
            "resyncs": fleet.resyncs.load(Relaxed), "error_frames": errors,
            "history_reads_during_storm": reads.iter().map(|(n, v)| (n.to_string(), json!(v))).collect::<BTreeMap<_, _>>(),
            "storm_s": r3(storm_secs),
            "bench_cpu_pct_storm": cpu_pct(cpu0.0, cpu1.0).map(r3), "server_cpu_pct_storm": cpu_pct(cpu0.1, cpu1.1).map(r3),
        });
        let mut v = v;
        if let (Some(v), serde_json::Value::Object(more)) = (v.as_object_mut(), more) {
            v.extend(more);
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ok);
    }
    println!("confab bench reconnect-storm");
    println!(
        "{} rooms × {} members, {} sender(s)/room at {} msg/s each; drop after {} s, reconnects spread over {} s{}",
        a.rooms,
        a.members,
        a.senders,
        a.rate,
        a.before,
        a.spread,
        if a.senders_stay { ", senders stay" } else { "" }
    );
    let row = |k: &str, v: String| println!("  {k:<24} {v}");
    row(
        "connections",
        format!(
            "{connected}/{total} connected in {setup_secs:.1} s{}",
            if checks.connect_errors.is_empty() {
                String::new()
            } else {
                format!(
                    ", errors {:?} (e.g. {})",
                    checks.connect_errors,
                    checks.connect_error_sample.as_deref().unwrap_or("")
                )
            }
        ),
    );
    row(
        "resumed",
        format!(
            "{resumed}/{expect}; {} (target {} s: {})",
            resumed_secs
                .map_or("NOT all resumed".to_owned(), |s| format!("every client resumed {s:.2} s after the drop")),
            a.target,
            if target_met { "met" } else { "MISSED" }
        ),
    );
    row("resumed after the drop", resume.line());
    row("joined after the drop", rejoin.line());
    row(
        "reconnects",
        format!(
            "{} ({} failed attempts{}; {} sockets ended without being asked{})",
            fleet.reconnects.load(Relaxed),
            reconnect_errors.values().sum::<u64>(),
            if reconnect_errors.is_empty() {
                String::new()
            } else {
                format!(
                    ": {reconnect_errors:?}, e.g. {}",
                    fleet.reconnect_error_sample.lock().expect("lock").as_deref().unwrap_or("")
                )
            },
            fleet.unexpected_drops.load(Relaxed),
            {
                let reasons = fleet.drop_reasons.lock().expect("lock");
                if reasons.is_empty() { String::new() } else { format!(" {reasons:?}") }
            }
        ),
    );
    row("live latency before", lat[0].line());
    row("live latency in storm", lat[1].line());
    row("live latency after", lat[2].line());
    row("catch-up deliveries", format!("{} (sent while their receiver was away)", fleet.catch_up.load(Relaxed)));
    row(
        "sends",
        format!(
            "{} sent, {} sent again after a reconnect or retry, {} acked, {} refused",
            fleet.sent.load(Relaxed),
            fleet.resent.load(Relaxed),
            fleet.acked.load(Relaxed),
            refused
        ),
    );
    row(
        "delivered",
        format!(
            "{} deliveries; drain {:.2} s{}",
            fleet.deliveries.load(Relaxed),
            drain_secs,
            if drained { "" } else { " (NOT drained)" }
        ),
    );
    row("loss / dup / order", checks.line());
    row(
        "error frames",
        if errors.is_empty() { "none".to_owned() } else { format!("{errors:?}") }
            + &format!(" · resyncs {}", fleet.resyncs.load(Relaxed)),
    );
    let fmt = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.0}"));
    row(
        "history reads in storm",
        format!(
            "tail {} · cache {} · database {} (confab_history_reads_total; cache pages hit {} / missed {})",
            fmt(reads[0].1),
            fmt(reads[1].1),
            fmt(reads[2].1),
            fmt(reads[3].1),
            fmt(reads[4].1)
        ),
    );
    let pct = |p: Option<f64>| p.map_or("n/a".to_owned(), |p| format!("{p:.0}% of one core"));
    row(
        "cpu in storm",
        format!(
            "bench {} · server {} (over {storm_secs:.2} s)",
            pct(cpu_pct(cpu0.0, cpu1.0)),
            pct(cpu_pct(cpu0.1, cpu1.1))
        ),
    );
    Ok(ok)
}
