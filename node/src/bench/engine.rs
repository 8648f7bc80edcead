//! The fan-out engine: R rooms × M member connections, S of them senders at X msg/s each, for D
//! seconds, then a drain. Used by `fanout`, `hot-room` and each `--ramp` step.

use super::body::{self, Scanned};
use super::net::{self, ConnectError, WsRead, WsWrite};
use super::placement::RoomNodes;
use super::report::{Latency, WriterDelta, WriterScrape, cpu_seconds, new_histogram, r3};
use super::track::{Bitmap, SenderTrack, SeqTrack};
use super::{Setup, rest};
use fastwebsockets::OpCode;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// The protocol's limit of unanswered sends per connection and room.
pub(crate) const MAX_IN_FLIGHT: usize = 128;
/// Latency samples a connection buffers before taking a shard's lock.
const LAT_BUF: usize = 256;
/// Histogram shards (locks) shared by all connections.
const SHARDS: usize = 64;
/// Width of the windows of send time whose slowest delivery is reported.
const WINDOW: Duration = Duration::from_millis(100);
/// Delay before a send refused with `retry`/`overloaded` goes out again.
pub(crate) const RESEND_DELAY: Duration = Duration::from_millis(5);

/// What one run does.
#[derive(Debug, Clone)]
pub(crate) struct RunSpec {
    pub rooms: usize,
    pub members: usize,
    pub senders: usize,
    /// Messages per second, per sender.
    pub rate: f64,
    pub duration: Duration,
    pub drain: Duration,
    pub pad: usize,
    /// A label for room names (run id and step).
    pub label: String,
}

impl RunSpec {
    fn sends_per_sender(&self) -> u64 {
        (self.duration.as_secs_f64() * self.rate).round() as u64
    }
}

/// Latency histograms behind a few locks; connections buffer samples and flush in bulk.
pub(crate) struct Shards(Vec<Mutex<Histogram<u64>>>);

impl Shards {
    pub(crate) fn new() -> Shards {
        Shards((0..SHARDS).map(|_| Mutex::new(new_histogram())).collect())
    }
    /// Records one sample (rare events; frequent ones go through a `LatBuf`).
    pub(crate) fn record_one(&self, conn: usize, nanos: u64) {
        self.0[conn % SHARDS].lock().expect("histogram lock").saturating_record((nanos / 1000).max(1));
    }
    pub(crate) fn merged(&self) -> Histogram<u64> {
        let mut h = new_histogram();
        for s in &self.0 {
            h.add(&*s.lock().expect("histogram lock")).expect("same bounds");
        }
        h
    }
}

pub(crate) struct LatBuf<'a> {
    shards: &'a Shards,
    shard: usize,
    buf: Vec<u64>,
}

impl<'a> LatBuf<'a> {
    pub(crate) fn new(shards: &'a Shards, conn: usize) -> LatBuf<'a> {
        LatBuf { shards, shard: conn % SHARDS, buf: Vec::with_capacity(LAT_BUF) }
    }
    pub(crate) fn record_nanos(&mut self, nanos: u64) {
        self.buf.push((nanos / 1000).max(1));
        if self.buf.len() >= LAT_BUF {
            self.flush();
        }
    }
    pub(crate) fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let mut h = self.shards.0[self.shard].lock().expect("histogram lock");
        for &v in &self.buf {
            h.saturating_record(v);
        }
        self.buf.clear();
    }
}

impl Drop for LatBuf<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// State of one run, shared by all its connections.
struct Ctx {
    spec: RunSpec,
    rooms: Vec<i64>,
    e2e: Shards,
    ack: Shards,
    deliveries: AtomicU64,
    /// First arrivals of a counter at a receiver.
    distinct: AtomicU64,
    sent: AtomicU64,
    resent: AtomicU64,
    acked: AtomicU64,
    acked_per_room: Vec<AtomicU64>,
    last_ack_nanos: AtomicU64,
    /// When sending starts (Unix ns), set before the start signal.
    t0_nanos: AtomicU64,
    /// Per `WINDOW` of scheduled send time from `t0_nanos`: the slowest first delivery (µs).
    window_max_us: Vec<AtomicU64>,
    senders_done: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    stop: CancellationToken,
}

impl Ctx {
    fn count_error(&self, code: &str) {
        *self.errors.lock().expect("errors lock").entry(code.to_owned()).or_default() += 1;
    }
}

/// The sending side of a sender connection, shared with its reader (which sees the acks).
struct Sender {
    gidx: u32,
    room_idx: usize,
    state: Mutex<SenderState>,
    window: Notify,
    resend: mpsc::UnboundedSender<u64>,
}

#[derive(Default)]
struct SenderState {
    /// counter → scheduled send time (Unix ns) of sends not yet answered.
    pending: HashMap<u64, u64>,
    acked: Bitmap,
    refused: u64,
}

impl Sender {
    fn in_flight(&self) -> usize {
        self.state.lock().expect("sender lock").pending.len()
    }
}

/// What a member connection brings back.
#[derive(Default)]
struct ConnOut {
    room_idx: usize,
    connected: bool,
    connect_error: Option<ConnectError>,
    tracks: Vec<SenderTrack>,
    seq: SeqTrack,
    deliveries: u64,
    last_recv_nanos: u64,
    /// The socket ended before the run did.
    dropped: bool,
    reconnect_frames: u64,
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub(crate) struct RunReport {
    pub spec: RunSpec,
    pub connections: usize,
    pub connected: usize,
    pub connect_errors: BTreeMap<String, u64>,
    pub connect_error_sample: Option<String>,
    pub setup_secs: f64,
    pub offered: u64,
    pub offered_rate: f64,
    pub sent: u64,
    pub resent: u64,
    pub acked: u64,
    pub refused: u64,
    pub acked_rate: f64,
    pub deliveries: u64,
    pub expected_deliveries: u64,
    pub expected_offered_deliveries: u64,
    pub delivery_rate: f64,
    pub drain_secs: f64,
    pub e2e: Latency,
    pub ack: Latency,
    pub send_lag: Latency,
    /// The `WINDOW`s of send time with the slowest deliveries: (start, s from the start of
    /// sending; slowest delivery, ms), slowest first, and the median of all windows' slowest.
    pub slowest_windows: Vec<(f64, f64)>,
    pub window_median_ms: f64,
    /// When sending started, Unix ns (to line the windows up with other records).
    pub start_unix_nanos: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub seq_gaps: u64,
    pub seq_regressions: u64,
    /// gidx → (lost, duplicates, out of order), only senders with nonzero figures.
    pub per_sender: BTreeMap<u32, (u64, u64, u64)>,
    pub error_frames: BTreeMap<String, u64>,
    pub dropped_connections: u64,
    pub reconnect_frames: u64,
    pub bench_cpu_pct: Option<f64>,
    pub server_cpu_pct: Option<f64>,
    pub writer: Option<WriterDelta>,
    /// The writer from `WRITER_WARMUP` after the start to the end: without the first commits,
    /// which also load every sender's recent cids and every room's state.
    pub writer_steady: Option<WriterDelta>,
}

/// Seconds of sending left out of the steady writer figures (runs of at least 3× as long).
const WRITER_WARMUP: Duration = Duration::from_secs(2);

impl RunReport {
    /// The run delivered everything it was asked to, without loss, within the p99 bound.
    pub(crate) fn sustained(&self, p99_bound_ms: f64) -> bool {
        self.connected == self.connections
            && self.lost == 0
            && self.e2e.p99 <= p99_bound_ms
            && self.deliveries as f64 >= 0.99 * self.expected_offered_deliveries as f64
    }

    pub(crate) fn json(&self) -> Value {
        let per_sender: Vec<Value> = self
            .per_sender
            .iter()
            .map(|(g, (l, d, o))| json!({"sender": g, "lost": l, "duplicates": d, "out_of_order": o}))
            .collect();
        let mut j = json!({
            "rooms": self.spec.rooms, "members": self.spec.members, "senders_per_room": self.spec.senders,
            "rate_per_sender": self.spec.rate, "duration_s": self.spec.duration.as_secs_f64(), "body_pad": self.spec.pad,
            "connections": self.connections, "connected": self.connected,
            "connect_errors": self.connect_errors, "connect_error_sample": self.connect_error_sample,
            "setup_s": r3(self.setup_secs),
            "offered_msgs": self.offered, "offered_msgs_per_s": r3(self.offered_rate),
            "sent": self.sent, "resent": self.resent, "acked": self.acked, "refused": self.refused,
            "acked_msgs_per_s": r3(self.acked_rate),
            "deliveries": self.deliveries, "expected_deliveries_of_acked": self.expected_deliveries,
            "expected_deliveries_of_offered": self.expected_offered_deliveries,
            "deliveries_per_s": r3(self.delivery_rate), "drain_s": r3(self.drain_secs),
            "e2e_latency": self.e2e.json(), "ack_latency": self.ack.json(), "send_lag": self.send_lag.json(),
            "lost": self.lost, "duplicates": self.duplicates, "out_of_order": self.out_of_order,
            "seq_gaps": self.seq_gaps, "seq_regressions": self.seq_regressions, "per_sender": per_sender,
            "error_frames": self.error_frames, "dropped_connections": self.dropped_connections,
            "reconnect_frames": self.reconnect_frames,
            "bench_cpu_pct": self.bench_cpu_pct.map(r3), "server_cpu_pct": self.server_cpu_pct.map(r3),
            "writer": self.writer.as_ref().map(WriterDelta::json),
            "writer_after_warmup": self.writer_steady.as_ref().map(|w| {
                let mut j = w.json();
                j["warmup_s"] = json!(WRITER_WARMUP.as_secs_f64());
                j
            }),
        });
        j["slowest_windows"] = json!({
            "window_ms": WINDOW.as_millis() as u64,
            "sending_started_unix_s": self.start_unix_nanos as f64 / 1e9,
            "median_max_ms": r3(self.window_median_ms),
            "slowest": self.slowest_windows.iter().map(|&(at, ms)| json!({"at_s": r3(at), "max_ms": r3(ms)})).collect::<Vec<_>>(),
        });
        j
    }

    pub(crate) fn print(&self) {
        let s = &self.spec;
        println!(
            "{} rooms × {} members, {} sender(s)/room at {} msg/s each, {} s (+ drain {:.2} s)",
            s.rooms,
            s.members,
            s.senders,
            s.rate,
            s.duration.as_secs_f64(),
            self.drain_secs
        );
        let row = |k: &str, v: String| println!("  {k:<22} {v}");
        row(
            "connections",
            format!(
                "{}/{} connected in {:.1} s{}",
                self.connected,
                self.connections,
                self.setup_secs,
                if self.connect_errors.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", errors {:?} (e.g. {})",
                        self.connect_errors,
                        self.connect_error_sample.as_deref().unwrap_or("")
                    )
                }
            ),
        );
        row("offered", format!("{:.0} msg/s ({} msgs)", self.offered_rate, self.offered));
        row(
            "acked",
            format!(
                "{:.0} msg/s ({} acked, {} sent, {} resent, {} refused)",
                self.acked_rate, self.acked, self.sent, self.resent, self.refused
            ),
        );
        row(
            "delivered",
            format!(
                "{:.0} deliveries/s ({} of {} expected for acked msgs; {} for offered)",
                self.delivery_rate, self.deliveries, self.expected_deliveries, self.expected_offered_deliveries
            ),
        );
        row("e2e latency", self.e2e.line());
        row("ack latency", self.ack.line());
        row("send lag (generator)", self.send_lag.line());
        if !self.slowest_windows.is_empty() {
            let worst: Vec<String> =
                self.slowest_windows.iter().map(|(at, ms)| format!("{ms:.1} ms at {at:.1} s")).collect();
            row(
                &format!("slowest {} ms of sends", WINDOW.as_millis()),
                format!("{} (median window {:.1} ms)", worst.join(" · "), self.window_median_ms),
            );
        }
        row(
            "loss / dup / order",
            format!(
                "lost {} · duplicates {} · out-of-order {} · seq gaps {} · seq regressions {}",
                self.lost, self.duplicates, self.out_of_order, self.seq_gaps, self.seq_regressions
            ),
        );
        for (g, (l, d, o)) in self.per_sender.iter().take(20) {
            row("", format!("sender {g}: lost {l}, duplicates {d}, out-of-order {o}"));
        }
        if self.per_sender.len() > 20 {
            row("", format!("… {} more senders with nonzero figures", self.per_sender.len() - 20));
        }
        row(
            "error frames",
            if self.error_frames.is_empty() { "none".to_owned() } else { format!("{:?}", self.error_frames) },
        );
        row(
            "connections lost",
            format!("{} dropped, {} reconnect frames", self.dropped_connections, self.reconnect_frames),
        );
        let pct = |p: Option<f64>| p.map_or("n/a".to_owned(), |p| format!("{p:.0}% of one core"));
        row("cpu", format!("bench {} · server {}", pct(self.bench_cpu_pct), pct(self.server_cpu_pct)));
        if let Some(w) = &self.writer {
            row("writer", w.line());
        }
        if let Some(w) = &self.writer_steady {
            row(&format!("writer after {} s", WRITER_WARMUP.as_secs()), w.line());
        }
    }
}

/// Runs one load: creates the rooms, connects and joins every member, sends, drains, reports.
pub(crate) async fn run(setup: &Setup, spec: RunSpec) -> anyhow::Result<RunReport> {
    let setup_start = Instant::now();
    let owner = &setup.tokens[0];
    let mut rooms = Vec::with_capacity(spec.rooms);
    for r in 0..spec.rooms {
        let name = format!("{}-r{r}", spec.label);
        rooms.push(rest::create_room(setup.nodes[r % setup.nodes.len()], owner, &name).await?);
    }
    let placed = RoomNodes::resolve(setup.placement, &setup.nodes, owner, &rooms).await?;
    if setup.nodes.len() > 1 {
        let mut per_node = vec![0usize; setup.nodes.len()];
        for k in 0..spec.rooms * spec.members {
            per_node[placed.node(k / spec.members, k % spec.members, k)] += 1;
        }
        eprintln!("placement {:?}: connections per node {per_node:?}", setup.placement);
    }
    let ctx = Arc::new(Ctx {
        acked_per_room: (0..spec.rooms).map(|_| AtomicU64::new(0)).collect(),
        spec: spec.clone(),
        rooms,
        e2e: Shards::new(),
        ack: Shards::new(),
        deliveries: AtomicU64::new(0),
        distinct: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        resent: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        last_ack_nanos: AtomicU64::new(0),
        t0_nanos: AtomicU64::new(0),
        window_max_us: (0..=spec.duration.as_millis() / WINDOW.as_millis()).map(|_| AtomicU64::new(0)).collect(),
        senders_done: AtomicU64::new(0),
        errors: Mutex::new(BTreeMap::new()),
        stop: CancellationToken::new(),
    });

    let total = spec.rooms * spec.members;
    let n_senders = spec.rooms * spec.senders;
    let sender_users = if setup.explicit_users { 0 } else { n_senders.min(setup.tokens.len()) };
    let (start_tx, start_rx) = watch::channel::<Option<Instant>>(None);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<bool>();
    let gate = Arc::new(Semaphore::new(setup.connect_concurrency));
    let mut senders: Vec<Arc<Sender>> = Vec::with_capacity(n_senders);
    let mut conns = Vec::with_capacity(total);
    let mut sender_tasks = Vec::with_capacity(n_senders);
    let mut receiver_seq = 0usize;
    for k in 0..total {
        let (room_idx, pos) = (k / spec.members, k % spec.members);
        let sender = (pos < spec.senders).then(|| (room_idx * spec.senders + pos) as u32);
        let user = match sender {
            _ if setup.explicit_users => k % setup.tokens.len(),
            Some(g) => g as usize % setup.tokens.len(),
            None => {
                receiver_seq += 1;
                let pool = setup.tokens.len() - sender_users;
                if pool == 0 { receiver_seq % setup.tokens.len() } else { sender_users + receiver_seq % pool }
            }
        };
        let shared = sender.map(|g| {
            let (tx, rx) = mpsc::unbounded_channel();
            let s = Arc::new(Sender {
                gidx: g,
                room_idx,
                state: Mutex::new(SenderState::default()),
                window: Notify::new(),
                resend: tx,
            });
            senders.push(s.clone());
            (s, rx)
        });
        let (writer_tx, writer_rx) = tokio::sync::oneshot::channel::<(WsWrite, mpsc::UnboundedReceiver<u64>)>();
        let sender_arc = shared.as_ref().map(|(s, _)| s.clone());
        if let Some((s, _)) = &shared {
            let ctx = ctx.clone();
            let s = s.clone();
            let start_rx = start_rx.clone();
            sender_tasks.push(tokio::spawn(async move {
                let Ok((w, resend_rx)) = writer_rx.await else { return Histogram::<u64>::new(1).expect("hist") };
                send_loop(ctx, s, w, resend_rx, start_rx).await
            }));
        }
        let conn = Conn {
            ctx: ctx.clone(),
            k,
            room_idx,
            addr: setup.nodes[placed.node(room_idx, pos, k)],
            source: setup.sources[k % setup.sources.len()],
            token: setup.tokens[user].clone(),
            sender: sender_arc,
            resend_rx: shared.map(|(_, rx)| rx),
            writer_tx: Some(writer_tx),
            lazy_ack: setup.lazy_ack,
        };
        conns.push(tokio::spawn(conn.run(gate.clone(), ready_tx.clone(), start_rx.clone())));
    }
    drop(ready_tx);
    let mut ready = 0;
    let mut connected = 0;
    while ready < total {
        match tokio::time::timeout(Duration::from_secs(180), ready_rx.recv()).await {
            Ok(Some(ok)) => {
                ready += 1;
                connected += ok as usize;
            }
            _ => break,
        }
    }
    let setup_secs = setup_start.elapsed().as_secs_f64();

    // Go.
    let before = scrape_writer(&setup.nodes).await;
    let cpu0 = (cpu_seconds("self"), setup.server_pid.as_deref().and_then(cpu_seconds));
    let t0 = Instant::now() + Duration::from_millis(100);
    let t0_nanos = body::instant_nanos(t0);
    ctx.t0_nanos.store(t0_nanos, Relaxed);
    let _ = start_tx.send(Some(t0));
    let warm_scrape = (spec.duration >= 3 * WRITER_WARMUP).then(|| {
        let nodes = setup.nodes.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until((t0 + WRITER_WARMUP).into()).await;
            (Instant::now(), scrape_writer(&nodes).await)
        })
    });
    tokio::time::sleep_until((t0 + spec.duration).into()).await;

    // Drain: until every sender has its answers and every member has every acked message.
    let members_of_room: Vec<u64> = vec![spec.members as u64; spec.rooms];
    let drain_start = Instant::now();
    let deadline = t0 + spec.duration + spec.drain;
    loop {
        let expected: u64 =
            ctx.acked_per_room.iter().zip(&members_of_room).map(|(a, m)| a.load(Relaxed) * m).sum::<u64>();
        let done = ctx.senders_done.load(Relaxed) as usize >= n_senders && ctx.distinct.load(Relaxed) >= expected;
        if done || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let end = Instant::now();
    let drain_secs = (end - drain_start).as_secs_f64();
    let wall = (end - t0).as_secs_f64();
    let cpu1 = (cpu_seconds("self"), setup.server_pid.as_deref().and_then(cpu_seconds));
    let after = scrape_writer(&setup.nodes).await;
    ctx.stop.cancel();

    let mut send_lag = new_histogram();
    for t in sender_tasks {
        if let Ok(h) = t.await {
            let _ = send_lag.add(&h);
        }
    }
    let mut outs = Vec::with_capacity(total);
    for c in conns {
        outs.push(c.await.unwrap_or_default());
    }
    let (slowest_windows, window_median_ms) = slowest_windows(&ctx.window_max_us);

    // Loss: per receiver and sender of its room, acked counters that never arrived.
    let acked_maps: Vec<Bitmap> = senders.iter().map(|s| s.state.lock().expect("lock").acked.clone()).collect();
    let refused: u64 = senders.iter().map(|s| s.state.lock().expect("lock").refused).sum();
    let mut rep_connect_errors = BTreeMap::new();
    let mut sample = None;
    let (mut lost, mut dups, mut ooo, mut gaps, mut regress, mut dropped, mut reconnects) = (0, 0, 0, 0, 0, 0, 0);
    let mut deliveries = 0;
    let mut last_recv = 0;
    let mut per_sender: BTreeMap<u32, (u64, u64, u64)> = BTreeMap::new();
    let mut connected_per_room = vec![0u64; spec.rooms];
    for o in &outs {
        if let Some(e) = &o.connect_error {
            *rep_connect_errors.entry(e.kind.to_owned()).or_insert(0u64) += 1;
            sample.get_or_insert_with(|| format!("{}: {}", e.kind, e.detail));
        }
        if !o.connected {
            continue;
        }
        connected_per_room[o.room_idx] += 1;
        deliveries += o.deliveries;
        last_recv = last_recv.max(o.last_recv_nanos);
        gaps += o.seq.gaps;
        regress += o.seq.regressions;
        dropped += o.dropped as u64;
        reconnects += o.reconnect_frames;
        for (s, t) in o.tracks.iter().enumerate() {
            let g = o.room_idx * spec.senders + s;
            let l = t.lost(&acked_maps[g]);
            lost += l;
            dups += t.duplicates;
            ooo += t.out_of_order;
            if l + t.duplicates + t.out_of_order > 0 {
                let e = per_sender.entry(g as u32).or_default();
                e.0 += l;
                e.1 += t.duplicates;
                e.2 += t.out_of_order;
            }
        }
    }
    let acked = ctx.acked.load(Relaxed);
    let expected_deliveries: u64 =
        senders.iter().zip(&acked_maps).map(|(s, a)| a.len() * connected_per_room[s.room_idx]).sum();
    let offered = spec.sends_per_sender() * n_senders as u64;
    let expected_offered: u64 =
        connected_per_room.iter().map(|c| c * spec.sends_per_sender() * spec.senders as u64).sum();
    let secs_to = |nanos: u64| if nanos > t0_nanos { (nanos - t0_nanos) as f64 / 1e9 } else { f64::NAN };
    let cpu_pct = |a: Option<f64>, b: Option<f64>| Some((b? - a?) / wall * 100.0);
    let writer = match (before, &after) {
        (Some(a), Some(b)) => Some(WriterDelta::between(&a, b, wall)),
        _ => None,
    };
    let writer_steady = match (warm_scrape, &after) {
        (Some(task), Some(b)) => match task.await {
            Ok((at, Some(a))) => Some(WriterDelta::between(&a, b, (end - at).as_secs_f64())),
            _ => None,
        },
        _ => None,
    };
    let errors = ctx.errors.lock().expect("errors lock").clone();
    Ok(RunReport {
        connections: total,
        connected,
        connect_errors: rep_connect_errors,
        connect_error_sample: sample,
        setup_secs,
        offered,
        offered_rate: offered as f64 / spec.duration.as_secs_f64(),
        sent: ctx.sent.load(Relaxed),
        resent: ctx.resent.load(Relaxed),
        acked,
        refused,
        acked_rate: acked as f64 / secs_to(ctx.last_ack_nanos.load(Relaxed)).max(spec.duration.as_secs_f64()),
        deliveries,
        expected_deliveries,
        expected_offered_deliveries: expected_offered,
        delivery_rate: deliveries as f64 / secs_to(last_recv).max(spec.duration.as_secs_f64()),
        drain_secs,
        e2e: Latency::of(&ctx.e2e.merged()),
        ack: Latency::of(&ctx.ack.merged()),
        send_lag: Latency::of(&send_lag),
        slowest_windows,
        window_median_ms,
        start_unix_nanos: t0_nanos,
        lost,
        duplicates: dups,
        out_of_order: ooo,
        seq_gaps: gaps,
        seq_regressions: regress,
        per_sender,
        error_frames: errors,
        dropped_connections: dropped,
        reconnect_frames: reconnects,
        bench_cpu_pct: cpu_pct(cpu0.0, cpu1.0),
        server_cpu_pct: cpu_pct(cpu0.1, cpu1.1),
        writer,
        writer_steady,
        spec,
    })
}

/// The three windows with the slowest deliveries, slowest first, as (start s, ms), and the
/// median of the windows' slowest (windows without deliveries left out).
fn slowest_windows(max_us: &[AtomicU64]) -> (Vec<(f64, f64)>, f64) {
    let mut ws: Vec<(usize, u64)> =
        max_us.iter().map(|m| m.load(Relaxed)).enumerate().filter(|&(_, us)| us > 0).collect();
    if ws.is_empty() {
        return (Vec::new(), f64::NAN);
    }
    ws.sort_unstable_by_key(|&(_, us)| us);
    let median = ws[ws.len() / 2].1 as f64 / 1000.0;
    let at = |i: usize| (i as u128 * WINDOW.as_millis()) as f64 / 1000.0;
    (ws.iter().rev().take(3).map(|&(i, us)| (at(i), us as f64 / 1000.0)).collect(), median)
}

/// The writer metrics of all nodes, summed; None when a scrape fails.
async fn scrape_writer(nodes: &[SocketAddr]) -> Option<WriterScrape> {
    let mut sum = WriterScrape::default();
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
        let s = WriterScrape::parse(&text);
        sum.batches += s.batches;
        sum.items += s.items;
        sum.committed += s.committed;
        sum.batch_max = sum.batch_max.max(s.batch_max);
        sum.commit_sum += s.commit_sum;
        for (le, v) in s.commit_buckets {
            match sum.commit_buckets.iter_mut().find(|x| x.0 == le) {
                Some(x) => x.1 += v,
                None => sum.commit_buckets.push((le, v)),
            }
        }
    }
    Some(sum)
}

/// One member connection.
struct Conn {
    ctx: Arc<Ctx>,
    k: usize,
    room_idx: usize,
    addr: SocketAddr,
    source: Option<IpAddr>,
    token: String,
    sender: Option<Arc<Sender>>,
    resend_rx: Option<mpsc::UnboundedReceiver<u64>>,
    writer_tx: Option<tokio::sync::oneshot::Sender<(WsWrite, mpsc::UnboundedReceiver<u64>)>>,
    lazy_ack: bool,
}

impl Conn {
    async fn run(
        mut self,
        gate: Arc<Semaphore>,
        ready: mpsc::UnboundedSender<bool>,
        mut start: watch::Receiver<Option<Instant>>,
    ) -> ConnOut {
        let mut out = ConnOut { room_idx: self.room_idx, ..ConnOut::default() };
        let opened = {
            let _permit = gate.acquire().await;
            let room = self.ctx.rooms[self.room_idx];
            tokio::time::timeout(Duration::from_secs(60), async {
                let ws = net::ws_connect(self.addr, self.source, &self.token).await?;
                let (mut r, mut w) = net::split(ws, self.lazy_ack);
                net::join(&mut r, &mut w, room).await?;
                Ok::<_, ConnectError>((r, w))
            })
            .await
            .unwrap_or_else(|_| Err(ConnectError { kind: "timeout", detail: "setup took over 60 s".into() }))
        };
        let (mut r, w) = match opened {
            Ok(x) => x,
            Err(e) => {
                out.connect_error = Some(e);
                let _ = ready.send(false);
                return out;
            }
        };
        out.connected = true;
        out.tracks = vec![SenderTrack::default(); self.ctx.spec.senders];
        let _ = ready.send(true);
        // A sender's write half goes to its send loop; a receiver keeps it (dropping it would
        // half-close the socket).
        let _keep = match (self.writer_tx.take(), self.resend_rx.take()) {
            (Some(tx), Some(rx)) => {
                let _ = tx.send((w, rx));
                None
            }
            _ => Some(w),
        };
        let _ = start.wait_for(Option::is_some).await;
        self.receive(&mut r, &mut out).await;
        out
    }

    async fn receive(&self, r: &mut WsRead, out: &mut ConnOut) {
        let ctx = &*self.ctx;
        let senders = ctx.spec.senders as u64;
        let base = (self.room_idx as u64) * senders;
        let mut e2e = LatBuf::new(&ctx.e2e, self.k);
        let mut ack = LatBuf::new(&ctx.ack, self.k);
        let t0_nanos = ctx.t0_nanos.load(Relaxed);
        let mut stop = std::pin::pin!(ctx.stop.cancelled());
        loop {
            let frame = tokio::select! {
                biased;
                f = net::read(r) => f,
                _ = &mut stop => return,
            };
            let frame = match frame {
                Ok(f) => f,
                Err(_) => {
                    // A sender's own write half closing at the stop ends its socket too: not a drop.
                    out.dropped = !ctx.stop.is_cancelled();
                    // Wait for the end of the run; nothing more comes on this socket.
                    stop.await;
                    return;
                }
            };
            match frame.opcode {
                OpCode::Text => {}
                OpCode::Close => {
                    out.dropped = !ctx.stop.is_cancelled();
                    stop.await;
                    return;
                }
                _ => continue,
            }
            let now = body::now_nanos();
            match body::scan(&frame.payload) {
                Scanned::Bench(m) => {
                    out.deliveries += 1;
                    out.last_recv_nanos = now;
                    ctx.deliveries.fetch_add(1, Relaxed);
                    out.seq.record(m.seq);
                    let local = (m.sender as u64).wrapping_sub(base);
                    if local < senders {
                        let t = &mut out.tracks[local as usize];
                        if !t.seen.contains(m.counter) {
                            ctx.distinct.fetch_add(1, Relaxed);
                            let lat = now.saturating_sub(m.sent_nanos);
                            e2e.record_nanos(lat);
                            let w = m.sent_nanos.saturating_sub(t0_nanos) / WINDOW.as_nanos() as u64;
                            if let Some(max) = ctx.window_max_us.get(w as usize) {
                                max.fetch_max(lat / 1000, Relaxed);
                            }
                        }
                        t.record(m.counter);
                    }
                }
                Scanned::Ack(cid) => {
                    if let (Some(s), Some((g, counter))) = (&self.sender, body::parse_cid(cid))
                        && g == s.gidx
                    {
                        {
                            let sched = {
                                let mut st = s.state.lock().expect("sender lock");
                                let sched = st.pending.remove(&counter);
                                if sched.is_some() {
                                    st.acked.insert(counter);
                                }
                                sched
                            };
                            if let Some(sched) = sched {
                                s.window.notify_one();
                                ack.record_nanos(now.saturating_sub(sched));
                                ctx.acked.fetch_add(1, Relaxed);
                                ctx.acked_per_room[self.room_idx].fetch_add(1, Relaxed);
                                ctx.last_ack_nanos.fetch_max(now, Relaxed);
                            }
                        }
                    }
                }
                Scanned::Error => {
                    let (code, reference) = body::parse_error(&frame.payload);
                    ctx.count_error(&code);
                    if let (Some(s), Some((g, counter))) =
                        (&self.sender, reference.as_deref().and_then(|r| body::parse_cid(r.as_bytes())))
                        && g == s.gidx
                    {
                        {
                            if code == "retry" || code == "overloaded" {
                                let _ = s.resend.send(counter);
                            } else {
                                // Refused for good: it will never be acked.
                                let mut st = s.state.lock().expect("sender lock");
                                if st.pending.remove(&counter).is_some() {
                                    st.refused += 1;
                                }
                                drop(st);
                                s.window.notify_one();
                            }
                        }
                    }
                }
                Scanned::Reconnect => out.reconnect_frames += 1,
                Scanned::OtherMessage | Scanned::Other => {}
            }
        }
    }
}

/// The sending half of a sender: X msg/s on a precise schedule, at most 128 unanswered.
async fn send_loop(
    ctx: Arc<Ctx>,
    s: Arc<Sender>,
    mut w: WsWrite,
    mut resend_rx: mpsc::UnboundedReceiver<u64>,
    mut start: watch::Receiver<Option<Instant>>,
) -> Histogram<u64> {
    let mut lag = new_histogram();
    let Ok(t0) = start.wait_for(Option::is_some).await.map(|v| v.expect("set")) else { return lag };
    let spec = &ctx.spec;
    let room = ctx.rooms[s.room_idx];
    let total_senders = (spec.rooms * spec.senders) as f64;
    let period = Duration::from_secs_f64(1.0 / spec.rate);
    // Senders start staggered over one period, so the offered load is smooth.
    let first = t0 + period.mul_f64(s.gidx as f64 / total_senders);
    let mut ticks = tokio::time::interval_at(first.into(), period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let n_total = spec.sends_per_sender();
    let mut counter = 0u64;
    let mut due: VecDeque<(u64, u64)> = VecDeque::new(); // (counter, scheduled ns) waiting for the window
    let mut resends: VecDeque<(Instant, u64)> = VecDeque::new();
    let mut stop = std::pin::pin!(ctx.stop.cancelled());
    let mut failed = false;
    let mut finished = false;
    loop {
        if !finished && failed {
            finished = true;
            ctx.senders_done.fetch_add(1, Relaxed);
        }
        if !finished && counter >= n_total && due.is_empty() && resends.is_empty() && s.in_flight() == 0 {
            finished = true;
            ctx.senders_done.fetch_add(1, Relaxed);
        }
        let window_open = !due.is_empty() && s.in_flight() < MAX_IN_FLIGHT;
        if window_open && !failed {
            while let Some(&(c, sched)) = due.front() {
                if s.in_flight() >= MAX_IN_FLIGHT {
                    break;
                }
                due.pop_front();
                s.state.lock().expect("sender lock").pending.insert(c, sched);
                let now = body::now_nanos();
                lag.saturating_record((now.saturating_sub(sched) / 1000).max(1));
                if net::send_text(&mut w, body::send_frame(room, s.gidx, c, sched, spec.pad)).await.is_err() {
                    failed = true;
                    break;
                }
                ctx.sent.fetch_add(1, Relaxed);
            }
            continue;
        }
        let next_resend = resends.front().map(|&(at, _)| at);
        tokio::select! {
            biased;
            _ = &mut stop => break,
            Some(c) = resend_rx.recv() => resends.push_back((Instant::now() + RESEND_DELAY, c)),
            _ = tokio::time::sleep_until(next_resend.unwrap_or_else(Instant::now).into()), if next_resend.is_some() => {
                let (_, c) = resends.pop_front().expect("front");
                let sched = s.state.lock().expect("sender lock").pending.get(&c).copied();
                if let (Some(sched), false) = (sched, failed) {
                    if net::send_text(&mut w, body::send_frame(room, s.gidx, c, sched, spec.pad)).await.is_err() {
                        failed = true;
                    }
                    ctx.resent.fetch_add(1, Relaxed);
                }
            }
            _ = s.window.notified(), if !due.is_empty() => {}
            t = ticks.tick(), if counter < n_total => {
                due.push_back((counter, body::instant_nanos(t.into_std())));
                counter += 1;
            }
            // Everything sent: wait for the answers (acks arrive on the reader), then for the stop.
            _ = s.window.notified(), if counter >= n_total && due.is_empty() => {}
        }
    }
    // Keep the write half open until the run ends: dropping it half-closes the socket.
    drop(w);
    lag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slowest_windows_come_first_with_their_start_and_the_median_skips_empty_windows() {
        let us = [0, 12_000, 130_000, 0, 15_000, 90_000, 11_000];
        let max: Vec<AtomicU64> = us.iter().map(|&u| AtomicU64::new(u)).collect();
        let (worst, median) = slowest_windows(&max);
        assert_eq!(worst, vec![(0.2, 130.0), (0.5, 90.0), (0.4, 15.0)]);
        // Five windows with deliveries: 11, 12, 15, 90, 130 ms.
        assert_eq!(median, 15.0);
        let none: Vec<AtomicU64> = (0..4).map(|_| AtomicU64::new(0)).collect();
        let (worst, median) = slowest_windows(&none);
        assert!(worst.is_empty() && median.is_nan());
    }
}
