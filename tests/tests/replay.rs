//! Join replay on one node process: a replay is paced by the joiner's own socket, served page by
//! page, never sends a seq twice to a connection, and costs the other members nothing.

use confab_tests::process::NodeProcess;
use confab_tests::{Api, NodeOpts, TestDb, TestNode, Ws, eventually, unique};
use serde_json::{Value, json};
use sqlx::Connection;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_confab-test-node");

/// Messages in the attacked room.
const FILL: u64 = 10_000;
/// Characters per message body: ~3.7 KB frames, so a replay of the whole room is ~37 MB.
const BODY: usize = 3_600;
const ATTACK_SOCKETS: usize = 5;
const JOINS_PER_SOCKET: usize = 10;
/// The attackers ask for everything after `head - GAP`.
const GAP: u64 = 9_990;
/// Bystander messages, alternating between the attacked room and another.
const BYSTANDER: usize = 150;

/// Sends `n` big messages to `room` with a window of unacknowledged ones, and waits for every ack.
async fn fill(api: &Api, ws_url: &str, room: i64, n: u64) {
    let mut ws = api.ws(ws_url).await;
    // Not joined to the room's stream (its fan-out would only fill this socket): joining once
    // and leaving keeps membership, but sends need a joined room, so join and drain as we go.
    ws.join(room, None).await;
    let body = "r".repeat(BODY);
    let (mut sent, mut acked) = (0u64, 0u64);
    while acked < n {
        while sent < n && sent - acked < 100 {
            ws.send(json!({"type": "send", "room": room, "cid": format!("f{sent}"), "body": body})).await;
            sent += 1;
        }
        match ws.next().await {
            Some(f) if f["type"] == "ack" => acked += 1,
            Some(f) if f["type"] == "error" => panic!("fill refused: {f}"),
            Some(_) => {}
            None => panic!("fill connection closed"),
        }
    }
    ws.close().await;
}

async fn head(api: &Api, room: i64) -> u64 {
    let (status, v) = api.get(&format!("/api/rooms/{room}")).await;
    assert_eq!(status, 200, "{v}");
    v["head_seq"].as_u64().expect("head_seq")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Reads an attacker's connection until it has `room` up to `until`: every `joined` it asked for
/// and a gap-free, duplicate-free run of messages from `since + 1` (or a `resync`). A closed
/// connection is resumed as a client would, with the last seq it got.
async fn read_attacker(api: &Api, ws_url: &str, mut ws: Ws, room: i64, since: u64, until: u64) -> (usize, u64) {
    let mut last = since;
    let mut joined = 0;
    let mut messages = 0u64;
    loop {
        if joined >= JOINS_PER_SOCKET && last >= until {
            return (joined, messages);
        }
        match ws.next().await {
            Some(f) if f["type"] == "joined" && f["room"] == room => joined += 1,
            Some(f) if f["type"] == "resync" => {
                last = f["head"].as_u64().expect("head");
            }
            Some(f) if f["type"] == "message" && f["room"] == room => {
                let seq = f["seq"].as_u64().expect("seq");
                assert!(seq > last, "seq {seq} again after {last}: a duplicate");
                assert_eq!(seq, last + 1, "a gap after {last}");
                last = seq;
                messages += 1;
            }
            Some(_) => {}
            None => {
                ws = api.ws(ws_url).await;
                ws.join(room, Some(last)).await;
                joined = JOINS_PER_SOCKET;
            }
        }
    }
}

/// 50 joins asking for ~37 MB of replay each, over sockets that do not read, while a bystander
/// chats in the same room and another: the node's memory stays bounded, the attackers get a
/// gap-free replay once they read, and the bystander's latency is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_are_paced_by_the_joiners_socket() {
    let db = TestDb::create().await;
    let node = NodeProcess::spawn(BIN, db.dir.path(), &db.url, &[]).await;
    let owner = Api::register(&node.base, &unique("own")).await;
    let room = owner.create_room(&unique("big"), "public").await;
    let other = owner.create_room(&unique("calm"), "public").await;
    let t0 = Instant::now();
    fill(&owner, &node.ws_url, room, FILL).await;
    println!("{FILL} messages stored in {:?}", t0.elapsed());
    let head0 = head(&owner, room).await;
    assert_eq!(head0, FILL);
    let since = head0 - GAP;

    let bystander = Api::register(&node.base, &unique("by")).await;
    let mut tx = bystander.ws(&node.ws_url).await;
    tx.join(room, None).await;
    tx.join(other, None).await;
    let mut rx = bystander.ws(&node.ws_url).await;
    rx.join(room, None).await;
    rx.join(other, None).await;

    let rss_before = node.rss_bytes();
    let peak = Arc::new(AtomicU64::new(rss_before));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling, pid) = (peak.clone(), sampling.clone(), node.pid());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    && let Some(kb) = s.lines().find_map(|l| l.strip_prefix("VmRSS:"))
                    && let Ok(kb) = kb.trim().trim_end_matches("kB").trim().parse::<u64>()
                {
                    peak.fetch_max(kb * 1024, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    // The attack: joins that ask for nearly the whole room, on sockets that never read.
    let attacker = Api::register(&node.base, &unique("atk")).await;
    let mut attackers = Vec::new();
    for _ in 0..ATTACK_SOCKETS {
        let mut ws = attacker.ws(&node.ws_url).await;
        let joins: Vec<Value> =
            (0..JOINS_PER_SOCKET).map(|_| json!({"type": "join", "room": room, "since": since})).collect();
        ws.send_together(&joins).await;
        attackers.push(ws);
    }

    // Meanwhile the bystander chats, one message every 20 ms, and another connection of theirs
    // times each one's arrival.
    let receiving = tokio::spawn(async move {
        let mut arrived = HashMap::new();
        let mut last = Vec::new();
        while arrived.len() < BYSTANDER {
            // The old code held the bystander up for longer than the usual deadline.
            match rx.next_within(Duration::from_secs(120)).await {
                Some(f) if f["type"] == "message" && f["body"].as_str().is_some_and(|b| b.starts_with("hello ")) => {
                    arrived.insert(f["body"].as_str().expect("body").to_owned(), Instant::now());
                }
                Some(f) => last.push(f),
                None => panic!("the bystander's connection closed after {} messages: {last:?}", arrived.len()),
            }
        }
        arrived
    });
    let mut sent_at = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..BYSTANDER {
        tick.tick().await;
        let to = if i % 2 == 0 { room } else { other };
        let cid = format!("b{i}");
        tx.send(json!({"type": "send", "room": to, "cid": cid, "body": format!("hello {i}")})).await;
        sent_at.insert(format!("hello {i}"), Instant::now());
    }
    let arrived = tokio::time::timeout(Duration::from_secs(120), receiving).await.expect("in time").expect("rx");
    let mut latencies: Vec<Duration> =
        sent_at.iter().map(|(cid, t)| arrived[cid].saturating_duration_since(*t)).collect();
    latencies.sort();
    println!(
        "bystander latency during the attack: p50 {:?}, p99 {:?}, max {:?} ({} messages)",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1],
        latencies.len()
    );
    let rss_attack = peak.load(Ordering::Relaxed);

    // The attackers read at last: each socket gets its joins answered and the replay gap-free.
    let until = eventually("the bystander's messages stored", || async {
        let h = head(&owner, room).await;
        (h == head0 + BYSTANDER as u64 / 2).then_some(h)
    })
    .await;
    let mut reading = Vec::new();
    for ws in attackers {
        let (api, url) = (attacker.clone(), node.ws_url.clone());
        reading.push(tokio::spawn(async move { read_attacker(&api, &url, ws, room, since, until).await }));
    }
    for r in reading {
        let (joined, messages) = r.await.expect("attacker");
        assert_eq!(joined, JOINS_PER_SOCKET);
        assert!(messages <= until - since, "{messages} messages for a replay of {}", until - since);
    }
    sampling.store(false, Ordering::Relaxed);
    sampler.await.expect("sampler");
    let peak = peak.load(Ordering::Relaxed);
    let mb = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "node RSS: {:.0} MB before the attack, peak {:.0} MB while the attackers did not read, {:.0} MB peak overall",
        mb(rss_before),
        mb(rss_attack),
        mb(peak)
    );
    // What the attack may cost: the history cache filling up (64 MB by default) plus each
    // attacking socket's outbound queue (1024 frames of ~3.7 KB) and the pages being replayed;
    // 160 MB leaves room for allocator slack. The whole room is ~37 MB, and 50 unpaced replays
    // hold several copies of it at once.
    assert!(
        peak - rss_before < 160 << 20,
        "the attack grew the node from {:.0} MB to {:.0} MB",
        mb(rss_before),
        mb(peak)
    );
}

/// The room's storage is stuck longer than the session waits for a join (10 s), so the session
/// gives up on its first try and tries again while the first is still in the room's mailbox:
/// the client gets one `joined` and the replay once. PostgreSQL, whose table lock makes the
/// room's membership insert wait as long as the test holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_the_session_gave_up_on_is_not_answered() {
    let server = std::env::var("CONFAB_TEST_DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let node = TestNode::start_on(TestDb::postgres_at(&server).await, NodeOpts::default()).await;
    let owner = node.user(&unique("own")).await;
    let room = owner.create_room(&unique("slow"), "public").await;
    const N: usize = 30;
    confab_tests::load::send_reliably(&owner, &node.ws_url, room, "s", N, 8).await;

    let joiner = node.user(&unique("late")).await;
    let mut ws = joiner.ws(&node.ws_url).await;
    let mut conn = sqlx::PgConnection::connect(&node.db.url).await.expect("connect");
    let mut lock = conn.begin().await.expect("begin");
    sqlx::query("LOCK TABLE room_members IN EXCLUSIVE MODE").execute(&mut *lock).await.expect("lock");
    ws.send(json!({"type": "join", "room": room, "since": 0})).await;
    // The scripted fault: membership stays locked past the session's join timeout.
    tokio::time::sleep(Duration::from_secs(12)).await;
    lock.commit().await.expect("unlock");

    ws.send(json!({"type": "ping"})).await;
    let mut frames = Vec::new();
    let count = |frames: &[Value]| frames.iter().filter(|f| f["type"] == "message").count();
    while count(&frames) < N || !frames.iter().any(|f| f["type"] == "pong") {
        frames.push(ws.next().await.expect("connection open"));
    }
    let joined = frames.iter().filter(|f| f["type"] == "joined").count();
    assert_eq!(joined, 1, "one join, one `joined`: {frames:?}");
    let seqs: Vec<u64> =
        frames.iter().filter(|f| f["type"] == "message").map(|f| f["seq"].as_u64().expect("seq")).collect();
    assert_eq!(seqs, (1..=N as u64).collect::<Vec<_>>(), "the replay once, in order");
    node.stop().await;
}
