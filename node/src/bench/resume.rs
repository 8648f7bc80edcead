//! Clients that come back: members that drop their socket (or leave the room) and resume it
//! with `since`, and senders whose unanswered sends survive a reconnect (sent again with the
//! same cid, in counter order, before anything new, so the server's cid dedupe keeps them
//! exactly-once). The reconnect storm (`storm.rs`) and the soak (`soak.rs`) decide when members
//! go away (`Churn`); delivery is checked the engine's way (`track.rs`): every acked message
//! exactly once at every member, each room's seqs without gap or repeat, across every resume.
//!
//! A member's delivery latency is "live" only for messages sent after its current join: a
//! message sent while it was away reaches it by the replay, and is counted as a catch-up.

use super::body::{self, Scanned};
use super::engine::{LatBuf, MAX_IN_FLIGHT, RESEND_DELAY, Shards};
use super::net::{self, ConnectError, WsRead, WsWrite};
use super::track::{Bitmap, SenderTrack, SeqTrack};
use fastwebsockets::OpCode;
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// Latency phases by send time: before the first boundary, between, after the second.
pub(crate) const PHASES: usize = 3;
/// Longest wait for one reconnect (TCP, upgrade, `hello`, `joined`).
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);
/// A receiver pings this often, as the web client does (the server closes a socket silent for 90 s).
const PING_EVERY: Duration = Duration::from_secs(25);

/// When members go away and how they come back.
#[derive(Clone)]
pub(crate) enum Churn {
    /// All at once when `drop` is cancelled (once): the socket is reset, and the member
    /// reconnects after a uniform delay in `[0, spread)`. Senders stay when `senders_stay`.
    Storm { drop: CancellationToken, spread: Duration, senders_stay: bool },
    /// Each member stays for an exponential time of mean `online`, then goes away for a uniform
    /// time in `[0, offline)`: a share `leave_share` of the receivers leave the room and join it
    /// again on the same socket, the others (and senders) close the socket and reconnect.
    Random { online: Duration, offline: Duration, leave_share: f64 },
}

/// What every member and sender of a run shares.
pub(crate) struct Fleet {
    pub rooms: Vec<i64>,
    pub members: usize,
    pub senders_per_room: usize,
    pub rate: f64,
    pub senders: Vec<Arc<Sender>>,
    pub churn: Churn,
    /// Live delivery latency, by phase of send time (`boundaries`).
    pub live: [Shards; PHASES],
    pub ack: Shards,
    /// From a member going away to its replay reaching the head its `joined` gave.
    pub resume: Shards,
    /// From a member going away to its `joined`.
    pub rejoin: Shards,
    /// Unix ns where the latency phases change; `u64::MAX` while not reached.
    pub boundaries: [AtomicU64; PHASES - 1],
    pub connected: AtomicU64,
    /// How many members a storm's drop sends away (the boundary "after" is set when all resumed).
    pub expect_resumes: AtomicU64,
    /// Members that resumed after a storm's drop, and when the last one did (Unix ns).
    pub resumed_after_drop: AtomicU64,
    pub last_resumed_nanos: AtomicU64,
    pub deliveries: AtomicU64,
    pub distinct: AtomicU64,
    pub catch_up: AtomicU64,
    pub sent: AtomicU64,
    pub resent: AtomicU64,
    pub acked: AtomicU64,
    pub acked_per_room: Vec<AtomicU64>,
    pub connected_per_room: Vec<AtomicU64>,
    pub reconnects: AtomicU64,
    pub rejoins_same_socket: AtomicU64,
    /// Members away right now (a drain waits for them).
    pub away: AtomicU64,
    pub unexpected_drops: AtomicU64,
    /// Why sockets ended without the member asking: a close frame's code and reason, a read error,
    /// a leave that failed.
    pub drop_reasons: Mutex<BTreeMap<String, u64>>,
    pub resyncs: AtomicU64,
    pub senders_done: AtomicUsize,
    pub errors: Mutex<BTreeMap<String, u64>>,
    pub reconnect_errors: Mutex<BTreeMap<String, u64>>,
    pub reconnect_error_sample: Mutex<Option<String>>,
    /// Cancelled: no new sends are scheduled (what is due still goes out).
    pub sending: CancellationToken,
    /// Cancelled: members go away no more (those away still come back).
    pub settle: CancellationToken,
    /// Cancelled: the run is over, members stop reading.
    pub stop: CancellationToken,
}

impl Fleet {
    pub(crate) fn new(rooms: Vec<i64>, members: usize, senders_per_room: usize, rate: f64, churn: Churn) -> Fleet {
        let n = rooms.len();
        let senders = (0..n * senders_per_room)
            .map(|g| {
                let room_idx = g / senders_per_room;
                Arc::new(Sender {
                    gidx: g as u32,
                    room_idx,
                    room: rooms[room_idx],
                    state: Mutex::new(SenderState::default()),
                    writer: tokio::sync::Mutex::new(None),
                    wake: Notify::new(),
                })
            })
            .collect();
        Fleet {
            acked_per_room: (0..n).map(|_| AtomicU64::new(0)).collect(),
            connected_per_room: (0..n).map(|_| AtomicU64::new(0)).collect(),
            rooms,
            members,
            senders_per_room,
            rate,
            senders,
            churn,
            live: [Shards::new(), Shards::new(), Shards::new()],
            ack: Shards::new(),
            resume: Shards::new(),
            rejoin: Shards::new(),
            boundaries: [AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX)],
            connected: AtomicU64::new(0),
            expect_resumes: AtomicU64::new(u64::MAX),
            resumed_after_drop: AtomicU64::new(0),
            last_resumed_nanos: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            distinct: AtomicU64::new(0),
            catch_up: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            resent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            rejoins_same_socket: AtomicU64::new(0),
            away: AtomicU64::new(0),
            unexpected_drops: AtomicU64::new(0),
            drop_reasons: Mutex::new(BTreeMap::new()),
            resyncs: AtomicU64::new(0),
            senders_done: AtomicUsize::new(0),
            errors: Mutex::new(BTreeMap::new()),
            reconnect_errors: Mutex::new(BTreeMap::new()),
            reconnect_error_sample: Mutex::new(None),
            sending: CancellationToken::new(),
            settle: CancellationToken::new(),
            stop: CancellationToken::new(),
        }
    }

    fn phase(&self, sent_nanos: u64) -> usize {
        self.boundaries.iter().filter(|b| b.load(Relaxed) <= sent_nanos).count()
    }

    fn count_error(&self, code: &str) {
        *self.errors.lock().expect("errors lock").entry(code.to_owned()).or_default() += 1;
    }

    fn count_drop(&self, why: String) {
        self.unexpected_drops.fetch_add(1, Relaxed);
        *self.drop_reasons.lock().expect("lock").entry(why).or_default() += 1;
    }

    fn count_reconnect_error(&self, e: &ConnectError) {
        *self.reconnect_errors.lock().expect("lock").entry(e.kind.to_owned()).or_default() += 1;
        self.reconnect_error_sample.lock().expect("lock").get_or_insert_with(|| format!("{}: {}", e.kind, e.detail));
    }

    /// Deliveries owed: every acked message to every connected member of its room.
    pub(crate) fn expected_distinct(&self) -> u64 {
        self.acked_per_room.iter().zip(&self.connected_per_room).map(|(a, m)| a.load(Relaxed) * m.load(Relaxed)).sum()
    }

    /// Waits until every sender has its answers and every member every acked message, or
    /// `deadline`. Returns whether everything arrived.
    pub(crate) async fn drain(&self, deadline: Instant) -> bool {
        loop {
            let done = self.senders_done.load(Relaxed) >= self.senders.len()
                && self.away.load(Relaxed) == 0
                && self.distinct.load(Relaxed) >= self.expected_distinct();
            if done {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One sender's sends, shared by its send loop and the reader of its current socket.
pub(crate) struct Sender {
    pub gidx: u32,
    pub room_idx: usize,
    room: i64,
    state: Mutex<SenderState>,
    /// The write half of its current socket; `None` while it is away.
    writer: tokio::sync::Mutex<Option<WsWrite>>,
    wake: Notify,
}

#[derive(Default)]
struct SenderState {
    /// counter → Unix ns of its first send, for sends not answered yet.
    pending: BTreeMap<u64, u64>,
    acked: Bitmap,
    refused: u64,
    /// Counters scheduled and not sent yet (away, or the window full).
    due: VecDeque<u64>,
    /// Sends refused with `retry`/`overloaded`, to send again at the instant.
    retry: VecDeque<(Instant, u64)>,
}

impl Sender {
    pub(crate) fn acked(&self) -> Bitmap {
        self.state.lock().expect("sender lock").acked.clone()
    }

    pub(crate) fn refused(&self) -> u64 {
        self.state.lock().expect("sender lock").refused
    }

    fn idle(&self) -> bool {
        let st = self.state.lock().expect("sender lock");
        st.pending.is_empty() && st.due.is_empty() && st.retry.is_empty()
    }

    /// A new socket: what was unanswered goes again first (same cid, same body), then what is due.
    async fn attach(&self, fleet: &Fleet, mut w: WsWrite) {
        let mut slot = self.writer.lock().await;
        let again: Vec<(u64, u64)> = {
            let mut st = self.state.lock().expect("sender lock");
            st.retry.clear();
            st.pending.iter().map(|(&c, &t)| (c, t)).collect()
        };
        for (c, t) in again {
            if net::send_text(&mut w, body::send_frame(self.room, self.gidx, c, t, 0)).await.is_err() {
                return;
            }
            fleet.resent.fetch_add(1, Relaxed);
        }
        *slot = Some(w);
        drop(slot);
        self.flush(fleet).await;
    }

    /// The socket is going away: sends wait for the next one.
    async fn detach(&self) {
        self.writer.lock().await.take();
    }

    /// Sends what is due while the window has room.
    async fn flush(&self, fleet: &Fleet) {
        let mut slot = self.writer.lock().await;
        let Some(w) = slot.as_mut() else { return };
        loop {
            let (c, t) = {
                let mut st = self.state.lock().expect("sender lock");
                if st.pending.len() >= MAX_IN_FLIGHT {
                    return;
                }
                let Some(c) = st.due.pop_front() else { return };
                let t = body::now_nanos();
                st.pending.insert(c, t);
                (c, t)
            };
            if net::send_text(w, body::send_frame(self.room, self.gidx, c, t, 0)).await.is_err() {
                // The reader sees the socket end and reconnects; `c` is resent then.
                *slot = None;
                return;
            }
            fleet.sent.fetch_add(1, Relaxed);
        }
    }

    async fn resend(&self, fleet: &Fleet, c: u64) {
        let mut slot = self.writer.lock().await;
        let Some(w) = slot.as_mut() else { return };
        let Some(t) = self.state.lock().expect("sender lock").pending.get(&c).copied() else { return };
        if net::send_text(w, body::send_frame(self.room, self.gidx, c, t, 0)).await.is_err() {
            *slot = None;
            return;
        }
        fleet.resent.fetch_add(1, Relaxed);
    }

    fn on_ack(&self, fleet: &Fleet, counter: u64, now: u64, ack: &mut LatBuf<'_>) {
        let first = {
            let mut st = self.state.lock().expect("sender lock");
            let first = st.pending.remove(&counter);
            if first.is_some() {
                st.acked.insert(counter);
            }
            first
        };
        if let Some(first) = first {
            ack.record_nanos(now.saturating_sub(first));
            fleet.acked.fetch_add(1, Relaxed);
            fleet.acked_per_room[self.room_idx].fetch_add(1, Relaxed);
            self.wake.notify_one();
        }
    }

    fn on_refusal(&self, code: &str, counter: u64) {
        let mut st = self.state.lock().expect("sender lock");
        if !st.pending.contains_key(&counter) {
            return;
        }
        if code == "retry" || code == "overloaded" {
            st.retry.push_back((Instant::now() + RESEND_DELAY, counter));
        } else {
            // Refused for good: it will never be acked.
            st.pending.remove(&counter);
            st.refused += 1;
        }
        drop(st);
        self.wake.notify_one();
    }
}

/// A sender's schedule: `rate` sends a second from `t0` (staggered over one period) until
/// `fleet.sending` is cancelled, then what is left is answered.
pub(crate) async fn send_loop(fleet: Arc<Fleet>, s: Arc<Sender>, mut start: watch::Receiver<Option<Instant>>) {
    let Ok(t0) = start.wait_for(Option::is_some).await.map(|v| v.expect("set")) else { return };
    let period = Duration::from_secs_f64(1.0 / fleet.rate);
    let first = t0 + period.mul_f64(s.gidx as f64 / fleet.senders.len().max(1) as f64);
    let mut ticks = tokio::time::interval_at(first.into(), period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut counter = 0u64;
    let mut sending = true;
    loop {
        if !sending && s.idle() {
            break;
        }
        let next_retry = s.state.lock().expect("sender lock").retry.front().map(|&(at, _)| at);
        tokio::select! {
            biased;
            _ = fleet.stop.cancelled() => return,
            _ = fleet.sending.cancelled(), if sending => sending = false,
            _ = tokio::time::sleep_until(next_retry.unwrap_or_else(Instant::now).into()), if next_retry.is_some() => {
                let c = s.state.lock().expect("sender lock").retry.pop_front().map(|(_, c)| c);
                if let Some(c) = c {
                    s.resend(&fleet, c).await;
                }
            }
            _ = s.wake.notified() => s.flush(&fleet).await,
            _ = ticks.tick(), if sending => {
                s.state.lock().expect("sender lock").due.push_back(counter);
                counter += 1;
                s.flush(&fleet).await;
            }
        }
    }
    fleet.senders_done.fetch_add(1, Relaxed);
}

/// One member connection (a sender's too) and where it connects.
pub(crate) struct Member {
    pub fleet: Arc<Fleet>,
    pub k: usize,
    pub room_idx: usize,
    pub addr: SocketAddr,
    pub source: Option<IpAddr>,
    pub token: String,
    pub sender: Option<Arc<Sender>>,
}

/// What a member brings back.
#[derive(Default)]
pub(crate) struct MemberOut {
    pub room_idx: usize,
    pub connected: bool,
    pub connect_error: Option<ConnectError>,
    pub tracks: Vec<SenderTrack>,
    pub seq: SeqTrack,
    /// Away at the end of the run (a reconnect that never succeeded).
    pub away_at_end: bool,
}

/// Why a member's reading stopped.
enum Break {
    Stop,
    /// Go away: close the socket, or leave the room, and come back after `after`.
    Away {
        after: Duration,
        leave: bool,
    },
    /// The socket ended by itself (why).
    Broken(String),
}

/// A member's delivery state across its sockets.
struct Cursor {
    tracks: Vec<SenderTrack>,
    seq: SeqTrack,
    /// The highest event seq seen: the `since` of the next resume.
    last_seq: u64,
    /// Unix ns of the current join: messages sent before it are catch-up.
    joined_nanos: u64,
    /// Resuming: the head the join gave, and when the member went away (Unix ns).
    awaiting: Option<(u64, u64)>,
    /// This resume follows a storm's drop.
    after_drop: bool,
}

impl Member {
    pub(crate) async fn run(
        self,
        gate: Arc<Semaphore>,
        ready: mpsc::UnboundedSender<bool>,
        mut start: watch::Receiver<Option<Instant>>,
    ) -> MemberOut {
        let fleet = self.fleet.clone();
        let mut out = MemberOut { room_idx: self.room_idx, ..MemberOut::default() };
        let opened = {
            let _permit = gate.acquire().await;
            tokio::time::timeout(Duration::from_secs(60), self.open(None))
                .await
                .unwrap_or_else(|_| Err(ConnectError { kind: "timeout", detail: "setup took over 60 s".into() }))
        };
        let (mut r, w, head) = match opened {
            Ok(x) => x,
            Err(e) => {
                out.connect_error = Some(e);
                let _ = ready.send(false);
                return out;
            }
        };
        out.connected = true;
        fleet.connected_per_room[self.room_idx].fetch_add(1, Relaxed);
        let _ = ready.send(true);
        let mut cur = Cursor {
            tracks: vec![SenderTrack::default(); fleet.senders_per_room],
            seq: SeqTrack::default(),
            last_seq: head,
            joined_nanos: 0,
            awaiting: None,
            after_drop: false,
        };
        let mut w = Some(w);
        let _ = start.wait_for(Option::is_some).await;
        let mut lat: Vec<LatBuf<'_>> = fleet.live.iter().map(|s| LatBuf::new(s, self.k)).collect();
        let mut ack = LatBuf::new(&fleet.ack, self.k);
        let mut dropped_once = false;
        loop {
            // A sender's write half goes to its `Sender`; a receiver keeps its own (dropping it
            // would half-close the socket).
            if let Some(s) = &self.sender
                && let Some(w) = w.take()
            {
                s.attach(&fleet, w).await;
            }
            let brk = {
                let away = self.away(&mut dropped_once);
                tokio::pin!(away);
                // A receiver's write half pings meanwhile (senders are never silent that long).
                let pinger = w.take().map(Pinger::start);
                let brk = loop {
                    let frame = tokio::select! {
                        biased;
                        _ = fleet.stop.cancelled() => break Break::Stop,
                        b = &mut away => break b,
                        f = net::read(&mut r) => f,
                    };
                    let frame = match frame {
                        Ok(f) if f.opcode == OpCode::Close => break Break::Broken(close_reason(&f.payload)),
                        Ok(f) if f.opcode == OpCode::Text => f,
                        Ok(_) => continue,
                        Err(e) => break Break::Broken(format!("read: {e}")),
                    };
                    self.on_frame(&mut cur, &frame.payload, &mut lat, &mut ack);
                };
                if let Some(p) = pinger {
                    w = p.stop().await;
                }
                brk
            };
            let away_at = body::now_nanos();
            fleet.away.fetch_add(1, Relaxed);
            let storm_drop = matches!(brk, Break::Away { .. }) && matches!(fleet.churn, Churn::Storm { .. });
            let (after, leave) = match brk {
                Break::Stop => {
                    fleet.away.fetch_sub(1, Relaxed);
                    break;
                }
                Break::Away { after, leave } => (after, leave),
                Break::Broken(why) => {
                    if fleet.stop.is_cancelled() {
                        fleet.away.fetch_sub(1, Relaxed);
                        break;
                    }
                    fleet.count_drop(why);
                    (Duration::ZERO, false)
                }
            };
            cur.after_drop = storm_drop;
            if leave && self.sender.is_none() {
                // Leave on the same socket: read what is still on its way until `left`.
                let Some(wr) = w.as_mut() else { break };
                match self.leave_and_rejoin(&mut r, wr, &mut cur, after, away_at, &mut lat, &mut ack).await {
                    Ok(()) => {
                        fleet.away.fetch_sub(1, Relaxed);
                        continue;
                    }
                    // The socket failed meanwhile: reconnect instead.
                    Err(why) => fleet.count_drop(format!("leave and rejoin: {why}")),
                }
            }
            if let Some(s) = &self.sender {
                s.detach().await;
            }
            drop((r, w.take()));
            tokio::select! {
                _ = fleet.stop.cancelled() => { out.away_at_end = true; break }
                _ = tokio::time::sleep(after) => {}
            }
            let Some((nr, nw, head)) = self.reopen(cur.last_seq).await else {
                out.away_at_end = true;
                break;
            };
            fleet.reconnects.fetch_add(1, Relaxed);
            fleet.away.fetch_sub(1, Relaxed);
            r = nr;
            w = Some(nw);
            self.joined(&mut cur, head, away_at);
        }
        if let Some(s) = &self.sender {
            s.detach().await;
        }
        out.tracks = cur.tracks;
        out.seq = cur.seq;
        out
    }

    /// Resolves when this member should go away; never when the churn says it stays.
    async fn away(&self, dropped_once: &mut bool) -> Break {
        let fleet = &self.fleet;
        match &fleet.churn {
            Churn::Storm { drop, spread, senders_stay } => {
                if *dropped_once || (*senders_stay && self.sender.is_some()) {
                    return std::future::pending().await;
                }
                drop.cancelled().await;
                *dropped_once = true;
                let after = spread.mul_f64(rand::random::<f64>());
                Break::Away { after, leave: false }
            }
            Churn::Random { online, offline, leave_share } => {
                let stay = online.mul_f64(-(1.0 - rand::random::<f64>()).ln());
                tokio::select! {
                    _ = tokio::time::sleep(stay) => {}
                    _ = fleet.settle.cancelled() => return std::future::pending().await,
                }
                if fleet.settle.is_cancelled() {
                    return std::future::pending().await;
                }
                let after = offline.mul_f64(rand::random::<f64>());
                Break::Away { after, leave: rand::random::<f64>() < *leave_share }
            }
        }
    }

    async fn open(&self, since: Option<u64>) -> Result<(WsRead, WsWrite, u64), ConnectError> {
        let abortive = match &self.fleet.churn {
            Churn::Storm { .. } => true,
            Churn::Random { .. } => rand::random::<bool>(),
        };
        let ws = net::ws_connect_with(self.addr, self.source, &self.token, abortive).await?;
        let (mut r, mut w) = net::split(ws, false);
        let head = net::join_since(&mut r, &mut w, self.fleet.rooms[self.room_idx], since).await?;
        Ok((r, w, head))
    }

    /// Reconnects and resumes after `since`, trying again until it works or the run stops.
    async fn reopen(&self, since: u64) -> Option<(WsRead, WsWrite, u64)> {
        let mut backoff = Duration::from_millis(50);
        loop {
            if self.fleet.stop.is_cancelled() {
                return None;
            }
            let attempt = tokio::time::timeout(OPEN_TIMEOUT, self.open(Some(since)))
                .await
                .unwrap_or_else(|_| Err(ConnectError { kind: "timeout", detail: "reconnect took over 15 s".into() }));
            match attempt {
                Ok(x) => return Some(x),
                Err(e) => self.fleet.count_reconnect_error(&e),
            }
            tokio::select! {
                _ = self.fleet.stop.cancelled() => return None,
                _ = tokio::time::sleep(backoff.mul_f64(0.5 + rand::random::<f64>())) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// A join answered with `head`: resumed at once when nothing was missed.
    fn joined(&self, cur: &mut Cursor, head: u64, away_at: u64) {
        let now = body::now_nanos();
        cur.joined_nanos = now;
        self.fleet.rejoin.record_one(self.k, now.saturating_sub(away_at));
        cur.awaiting = Some((head, away_at));
        self.check_resumed(cur, now);
    }

    fn check_resumed(&self, cur: &mut Cursor, now: u64) {
        let Some((head, away_at)) = cur.awaiting else { return };
        if cur.last_seq < head {
            return;
        }
        cur.awaiting = None;
        let fleet = &self.fleet;
        fleet.resume.record_one(self.k, now.saturating_sub(away_at));
        if cur.after_drop {
            cur.after_drop = false;
            fleet.last_resumed_nanos.fetch_max(now, Relaxed);
            let n = fleet.resumed_after_drop.fetch_add(1, Relaxed) + 1;
            if n >= fleet.expect_resumes.load(Relaxed) {
                // Everyone is back: live traffic from now on is "after the storm".
                fleet.boundaries[1].fetch_min(now, Relaxed);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn leave_and_rejoin(
        &self,
        r: &mut WsRead,
        w: &mut WsWrite,
        cur: &mut Cursor,
        after: Duration,
        away_at: u64,
        lat: &mut [LatBuf<'_>],
        ack: &mut LatBuf<'_>,
    ) -> Result<(), String> {
        let room = self.fleet.rooms[self.room_idx];
        net::send_text(w, format!(r#"{{"type":"leave","room":{room}}}"#).into_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        tokio::time::timeout(OPEN_TIMEOUT, async {
            loop {
                let frame = match net::read(r).await {
                    Ok(f) if f.opcode == OpCode::Text => f,
                    Ok(f) if f.opcode == OpCode::Close => return Err(close_reason(&f.payload)),
                    Ok(_) => continue,
                    Err(e) => return Err(format!("read: {e}")),
                };
                if frame.payload.starts_with(b"{\"type\":\"left\"") {
                    return Ok(());
                }
                self.on_frame(cur, &frame.payload, lat, ack);
            }
        })
        .await
        .map_err(|_| "no `left` within 15 s".to_owned())??;
        tokio::select! {
            _ = self.fleet.stop.cancelled() => return Err("the run ended".into()),
            _ = tokio::time::sleep(after) => {}
        }
        match tokio::time::timeout(OPEN_TIMEOUT, net::join_since(r, w, room, Some(cur.last_seq))).await {
            Ok(Ok(head)) => {
                self.fleet.rejoins_same_socket.fetch_add(1, Relaxed);
                self.joined(cur, head, away_at);
                Ok(())
            }
            Ok(Err(e)) => {
                self.fleet.count_reconnect_error(&e);
                Err(format!("join: {}", e.detail))
            }
            Err(_) => Err("no `joined` within 15 s".into()),
        }
    }

    fn on_frame(&self, cur: &mut Cursor, payload: &[u8], lat: &mut [LatBuf<'_>], ack: &mut LatBuf<'_>) {
        let fleet = &*self.fleet;
        let now = body::now_nanos();
        match body::scan(payload) {
            Scanned::Bench(m) => {
                fleet.deliveries.fetch_add(1, Relaxed);
                cur.seq.record(m.seq);
                cur.last_seq = cur.last_seq.max(m.seq);
                let local = (m.sender as u64).wrapping_sub((self.room_idx * fleet.senders_per_room) as u64);
                if let Some(t) = cur.tracks.get_mut(local as usize) {
                    if !t.seen.contains(m.counter) {
                        fleet.distinct.fetch_add(1, Relaxed);
                        if m.sent_nanos >= cur.joined_nanos {
                            lat[fleet.phase(m.sent_nanos)].record_nanos(now.saturating_sub(m.sent_nanos));
                        } else {
                            fleet.catch_up.fetch_add(1, Relaxed);
                        }
                    }
                    t.record(m.counter);
                }
                self.check_resumed(cur, now);
            }
            Scanned::Ack(cid) => {
                if let (Some(s), Some((g, counter))) = (&self.sender, body::parse_cid(cid))
                    && g == s.gidx
                {
                    s.on_ack(fleet, counter, now, ack);
                }
            }
            Scanned::Error => {
                let (code, reference) = body::parse_error(payload);
                fleet.count_error(&code);
                if let (Some(s), Some((g, counter))) =
                    (&self.sender, reference.as_deref().and_then(|r| body::parse_cid(r.as_bytes())))
                    && g == s.gidx
                {
                    s.on_refusal(&code, counter);
                }
            }
            Scanned::OtherMessage | Scanned::Other => {
                if payload.starts_with(b"{\"type\":\"resync\"") {
                    fleet.resyncs.fetch_add(1, Relaxed);
                } else if let Some(seq) = event_seq(payload) {
                    cur.seq.record(seq);
                    cur.last_seq = cur.last_seq.max(seq);
                    self.check_resumed(cur, now);
                }
            }
            Scanned::Reconnect => {}
        }
    }
}

/// A receiver's write half while it reads: a `ping` every `PING_EVERY`, as the web client sends
/// (the server closes a socket silent for 90 s). It runs beside the reads, so no read is ever
/// cancelled for it (fastwebsockets' `read_frame` is not cancel-safe in the middle of a frame).
struct Pinger {
    task: tokio::task::JoinHandle<Option<WsWrite>>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl Pinger {
    fn start(mut w: WsWrite) -> Pinger {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => return Some(w),
                    _ = tokio::time::sleep(PING_EVERY) => {
                        if net::send_text(&mut w, br#"{"type":"ping"}"#.to_vec()).await.is_err() {
                            let _ = stopped.await;
                            return Some(w);
                        }
                    }
                }
            }
        });
        Pinger { task, stop }
    }

    /// The write half back (None only if the task panicked).
    async fn stop(self) -> Option<WsWrite> {
        let _ = self.stop.send(());
        self.task.await.ok().flatten()
    }
}

/// A close frame's code and reason, as the report counts it.
fn close_reason(payload: &[u8]) -> String {
    match payload {
        [a, b, reason @ ..] => format!("closed {} {}", u16::from_be_bytes([*a, *b]), String::from_utf8_lossy(reason)),
        _ => "closed".to_owned(),
    }
}

/// The seq of a room event frame that is not a benchmark message (system, edit, delete, or a
/// message with another body).
fn event_seq(payload: &[u8]) -> Option<u64> {
    let event: [&[u8]; 4] =
        [b"{\"type\":\"message\"", b"{\"type\":\"system\"", b"{\"type\":\"edited\"", b"{\"type\":\"deleted\""];
    if !event.iter().any(|p| payload.starts_with(p)) {
        return None;
    }
    let at = body::find(payload, b"\"seq\":")?;
    body::parse_u64(&payload[at + 6..]).map(|(s, _)| s)
}

/// Loss, duplicates and order over all members, against what each sender had acked.
#[derive(Debug, Default, Clone)]
pub(crate) struct Checks {
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub seq_gaps: u64,
    pub seq_regressions: u64,
    pub away_at_end: u64,
    pub connect_errors: BTreeMap<String, u64>,
    pub connect_error_sample: Option<String>,
    pub connected_per_room: Vec<u64>,
}

impl Checks {
    pub(crate) fn of(fleet: &Fleet, outs: &[MemberOut]) -> Checks {
        let acked: Vec<Bitmap> = fleet.senders.iter().map(|s| s.acked()).collect();
        let mut c = Checks { connected_per_room: vec![0; fleet.rooms.len()], ..Checks::default() };
        for o in outs {
            if let Some(e) = &o.connect_error {
                *c.connect_errors.entry(e.kind.to_owned()).or_default() += 1;
                c.connect_error_sample.get_or_insert_with(|| format!("{}: {}", e.kind, e.detail));
            }
            if !o.connected {
                continue;
            }
            c.connected_per_room[o.room_idx] += 1;
            c.seq_gaps += o.seq.gaps;
            c.seq_regressions += o.seq.regressions;
            c.away_at_end += o.away_at_end as u64;
            for (s, t) in o.tracks.iter().enumerate() {
                c.lost += t.lost(&acked[o.room_idx * fleet.senders_per_room + s]);
                c.duplicates += t.duplicates;
                c.out_of_order += t.out_of_order;
            }
        }
        c
    }

    pub(crate) fn clean(&self) -> bool {
        self.lost == 0
            && self.duplicates == 0
            && self.out_of_order == 0
            && self.seq_gaps == 0
            && self.seq_regressions == 0
            && self.away_at_end == 0
    }

    pub(crate) fn line(&self) -> String {
        format!(
            "lost {} · duplicates {} · out-of-order {} · seq gaps {} · seq regressions {} · away at the end {}",
            self.lost, self.duplicates, self.out_of_order, self.seq_gaps, self.seq_regressions, self.away_at_end
        )
    }
}

/// Ends the run (members stop reading, senders stop) and checks what every member received.
pub(crate) async fn finish(
    fleet: &Fleet,
    members: Vec<tokio::task::JoinHandle<MemberOut>>,
    send_loops: Vec<tokio::task::JoinHandle<()>>,
) -> Checks {
    fleet.stop.cancel();
    for s in send_loops {
        let _ = s.await;
    }
    let mut outs = Vec::with_capacity(members.len());
    for m in members {
        outs.push(m.await.unwrap_or_default());
    }
    Checks::of(fleet, &outs)
}

/// Spawns every sender's loop and every member (member k of room k / members; the first
/// `senders_per_room` of a room send), waits until all are connected (or failed), and returns
/// the members' tasks, the sender loops and how many connected.
pub(crate) async fn connect_all(
    fleet: &Arc<Fleet>,
    setup: &super::Setup,
    start: &watch::Receiver<Option<Instant>>,
) -> (Vec<tokio::task::JoinHandle<MemberOut>>, Vec<tokio::task::JoinHandle<()>>, usize) {
    let total = fleet.rooms.len() * fleet.members;
    let n_senders = fleet.senders.len();
    let sender_users = if setup.explicit_users { 0 } else { n_senders.min(setup.tokens.len()) };
    let gate = Arc::new(Semaphore::new(setup.connect_concurrency));
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<bool>();
    let send_loops: Vec<tokio::task::JoinHandle<()>> =
        fleet.senders.iter().map(|s| tokio::spawn(send_loop(fleet.clone(), s.clone(), start.clone()))).collect();
    let mut members = Vec::with_capacity(total);
    let mut receiver_seq = 0usize;
    for k in 0..total {
        let (room_idx, pos) = (k / fleet.members, k % fleet.members);
        let sender =
            (pos < fleet.senders_per_room).then(|| fleet.senders[room_idx * fleet.senders_per_room + pos].clone());
        let user = match &sender {
            _ if setup.explicit_users => k % setup.tokens.len(),
            Some(s) => s.gidx as usize % setup.tokens.len(),
            None => {
                receiver_seq += 1;
                let pool = setup.tokens.len() - sender_users;
                if pool == 0 { receiver_seq % setup.tokens.len() } else { sender_users + receiver_seq % pool }
            }
        };
        let m = Member {
            fleet: fleet.clone(),
            k,
            room_idx,
            addr: setup.nodes[k % setup.nodes.len()],
            source: setup.sources[k % setup.sources.len()],
            token: setup.tokens[user].clone(),
            sender,
        };
        members.push(tokio::spawn(m.run(gate.clone(), ready_tx.clone(), start.clone())));
    }
    drop(ready_tx);
    let mut connected = 0;
    for _ in 0..total {
        match tokio::time::timeout(Duration::from_secs(180), ready_rx.recv()).await {
            Ok(Some(ok)) => connected += ok as usize,
            _ => break,
        }
    }
    fleet.connected.store(connected as u64, Relaxed);
    (members, send_loops, connected)
}
