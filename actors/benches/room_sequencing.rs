//! Criterion benchmark of the per-message path through a room actor, driven through the public
//! API exactly as the gateway drives it: an `ActorSystem` on a temporary SQLite file, one session
//! joined to one room, `send` frames handed to the session, timed until their `ack` frames are in
//! the session's outbound queue. That covers session validation, the room's rate limit, dedupe and
//! sequencing, the batching writer's commit (SQLite `synchronous = normal`, so the figure is not
//! mostly fsync), fan-out of the encoded `message` frame and the ack.

use confab_actors::outbound::Outbound;
use confab_actors::sessions::SessionHandle;
use confab_actors::store::SqliteSync;
use confab_actors::{ActorSystem, Store, SystemConfig};
use confab_schemas::{ClientFrame, Role, RoomId, UserRef, Visibility};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::time::{Duration, Instant};

struct Fixture {
    system: ActorSystem,
    session: SessionHandle,
    rx: confab_actors::outbound::OutboundRx,
    room: RoomId,
    next_cid: u64,
    _dir: tempfile::TempDir,
}

fn contains(frame: &[u8], needle: &[u8]) -> bool {
    count(frame, needle) > 0
}

/// How often `needle` occurs: one outbound buffer may hold several frames (a room writes a
/// sender's acks behind its messages in one buffer).
fn count(frame: &[u8], needle: &[u8]) -> usize {
    frame.windows(needle.len()).filter(|w| *w == needle).count()
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = Store::connect(&url, SqliteSync::Normal).await.expect("open the store");
    let user = store.create_user("bench_sender", "not-a-hash", Role::User).await.expect("user");
    let room = store.create_room("bench", "", Visibility::Public, Some(user.id)).await.expect("room");
    // The rate limit would shape the load: lift it, as `confab bench` does. No fan-out window
    // and no gap between commits: a round trip here would otherwise wait for the window (10 ms)
    // and the gap (2 ms) since the last one, and measure those.
    let config = SystemConfig {
        rate_burst: 1_000_000,
        rate_per_sec: 1_000_000.0,
        fanout_window: Duration::ZERO,
        commit_gap: Duration::ZERO,
        ..SystemConfig::default()
    };
    let system = ActorSystem::start(store, config).await.expect("actor system");
    let (out, mut rx) = Outbound::channel(4096);
    let who = UserRef { id: user.id, username: user.username.as_str().into() };
    let session = system.spawn_session(who, None, out).await.expect("session");
    assert!(session.deliver(vec![ClientFrame::Join { room: room.id, since: None }]).await);
    loop {
        let f = rx.recv().await.expect("joined frame");
        if contains(&f, br#""type":"joined""#) {
            break;
        }
        assert!(!contains(&f, br#""type":"error""#), "join refused: {}", String::from_utf8_lossy(&f));
    }
    Fixture { system, session, rx, room: room.id, next_cid: 0, _dir: dir }
}

impl Fixture {
    /// Sends `n` messages back to back, `per_read` to a handover (as the reader hands over the
    /// frames of one socket read), then waits for their `n` acks.
    async fn send_and_ack(&mut self, n: usize, per_read: usize) {
        let mut frames = Vec::with_capacity(per_read);
        for i in 0..n {
            self.next_cid += 1;
            frames.push(ClientFrame::Send {
                room: self.room,
                cid: format!("c{}", self.next_cid),
                body: "a chat message of a typical length, about sixty bytes long.".into(),
                reply_to: None,
                attachments: Vec::new(),
            });
            if frames.len() == per_read || i + 1 == n {
                assert!(self.session.deliver(std::mem::take(&mut frames)).await, "session gone");
            }
        }
        let mut acks = 0;
        while acks < n {
            let f = self.rx.recv().await.expect("outbound queue open");
            let n_acks = count(&f, br#""type":"ack""#);
            if n_acks > 0 {
                acks += n_acks;
            } else {
                assert!(!contains(&f, br#""type":"error""#), "send refused: {}", String::from_utf8_lossy(&f));
            }
        }
    }
}

fn sequencing(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut fx = rt.block_on(fixture());
    let mut g = c.benchmark_group("room/send_to_ack");
    // 1: one message at a time (latency of the whole path); 100: pipelined (throughput; the
    // writer batches them), handed over one frame at a time or ten at a time (ten frames from one
    // socket read). A round starts the moment the last one's acks are read: the session has
    // heard of them by then, so 100 stay below the 128 a connection may have per room.
    for (n, per_read) in [(1usize, 1usize), (100, 1), (100, 10)] {
        g.throughput(Throughput::Elements(n as u64));
        let id = if per_read == 1 { format!("{n}") } else { format!("{n}, {per_read} per read") };
        g.bench_with_input(BenchmarkId::new("in_flight", id), &n, |b, &n| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    rt.block_on(fx.send_and_ack(n, per_read));
                }
                start.elapsed()
            })
        });
    }
    g.finish();
    rt.block_on(fx.system.shutdown(Duration::from_secs(5)));
}

criterion_group!(benches, sequencing);
criterion_main!(benches);
