//! Joins and resumes across nodes: a join through a node whose room owner answers late is
//! answered once and replays no seq twice; a drained node's `reconnect` hint carries each joined
//! room's last seq, and resuming from it leaves no gap and no duplicate.

use confab_tests::cluster::{Sandbox, send_reliably_any};
use confab_tests::{Api, Ws, unique};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_confab-test-node");

/// Frames from `ws` until `done` says enough, or the connection closes.
async fn read_until(ws: &mut Ws, wait: Duration, mut done: impl FnMut(&[Value]) -> bool) -> Vec<Value> {
    let mut frames = Vec::new();
    while !done(&frames) {
        match ws.next_within(wait).await {
            Some(f) => frames.push(f),
            None => break,
        }
    }
    frames
}

/// The seqs of `room`'s message frames, checked strictly increasing (no duplicate, no disorder).
fn seqs_of(frames: &[Value], room: i64) -> Vec<u64> {
    let seqs: Vec<u64> = frames
        .iter()
        .filter(|f| f["type"] == "message" && f["room"] == room)
        .map(|f| f["seq"].as_u64().expect("seq"))
        .collect();
    for w in seqs.windows(2) {
        assert!(w[1] > w[0], "room {room}: seq {} after {}: a duplicate or disorder in {seqs:?}", w[1], w[0]);
    }
    seqs
}

/// The owner is stopped (SIGSTOP) for longer than a session waits for a join, so the session
/// tries again while its first try is still pending at the owner; when the owner wakes up, the
/// client gets one `joined` and every message once. (Live delivery after such a pause depends on
/// the proxy noticing the owner lost its lease, which the cluster link handles, not joins.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_answered_late_by_the_owner_is_answered_once() {
    let sb = Sandbox::start(BIN, 3).await;
    let sender = Api::register(&sb.bases[1], &unique("snd")).await;
    let room = sb.room_owned_by(&sender, "n2").await;
    const BEFORE: usize = 60;
    send_reliably_any(&sender, &[sb.ws_urls[1].clone()], room, "p", BEFORE, 16).await;

    let joiner = Api::register(&sb.bases[0], &unique("late")).await;
    let mut ws = joiner.ws(&sb.ws_urls[0]).await;
    let owner = sb.nodes[2].as_ref().expect("n2 runs");
    owner.pause();
    ws.send(json!({"type": "join", "room": room, "since": 0})).await;
    // The scripted fault: the owner stays stopped longer than the session's 10 s join timeout,
    // so the session gives up on its first try and tries again.
    tokio::time::sleep(Duration::from_secs(12)).await;
    owner.resume();
    let mut frames = Vec::new();
    frames.extend(
        read_until(&mut ws, Duration::from_secs(20), |f| {
            f.iter().filter(|m| m["type"] == "message" && m["room"] == room).count() >= BEFORE
        })
        .await,
    );
    // Any further answer to the first try would come now; a ping's pong comes after it.
    ws.send(json!({"type": "ping"})).await;
    frames.extend(read_until(&mut ws, Duration::from_secs(20), |f| f.iter().any(|m| m["type"] == "pong")).await);
    let joined = frames.iter().filter(|f| f["type"] == "joined" && f["room"] == room).count();
    assert_eq!(joined, 1, "one join, one `joined`: {frames:?}");
    assert_eq!(seqs_of(&frames, room), (1..=BEFORE as u64).collect::<Vec<_>>());
}

/// A client joined to two rooms on a node that drains gets a `reconnect` hint whose `resume`
/// maps each room to the last seq it received; resuming elsewhere from there has no gap and no
/// duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_nodes_reconnect_hint_carries_the_last_seq_of_each_room() {
    let mut sb = Sandbox::start(BIN, 3).await;
    let sender = Api::register(&sb.bases[0], &unique("snd")).await;
    // One room sequenced on the draining node, one proxied there.
    let moving = sb.room_owned_by(&sender, "n2").await;
    let staying = sb.room_owned_by(&sender, "n0").await;
    let client = Api::register(&sb.bases[2], &unique("cl")).await;
    let mut ws = client.ws(&sb.ws_urls[2]).await;
    ws.join(moving, Some(0)).await;
    ws.join(staying, Some(0)).await;
    let url0 = [sb.ws_urls[0].clone()];
    send_reliably_any(&sender, &url0, moving, "m", 30, 8).await;
    send_reliably_any(&sender, &url0, staying, "s", 20, 8).await;

    let code = sb.terminate(2).await;
    assert_eq!(code, Some(0));
    let frames = ws.until_closed().await;
    let got_moving = seqs_of(&frames, moving);
    let got_staying = seqs_of(&frames, staying);
    let hint = frames.iter().find(|f| f["type"] == "reconnect").unwrap_or_else(|| panic!("no hint in {frames:?}"));
    let resume: BTreeMap<String, u64> = serde_json::from_value(hint["resume"].clone()).expect("resume map");
    let last = |got: &[u64]| got.last().copied().unwrap_or(0);
    let expected = BTreeMap::from([(moving.to_string(), last(&got_moving)), (staying.to_string(), last(&got_staying))]);
    assert_eq!(resume, expected, "the hint names each joined room's last seq received: {hint}");
    assert_eq!(got_moving, (1..=30).collect::<Vec<_>>());
    assert_eq!(got_staying, (1..=20).collect::<Vec<_>>());

    // Resume on another node from the hint, while more is sent.
    let mut ws = client.ws(&sb.ws_urls[1]).await;
    for (room, since) in [(moving, resume[&moving.to_string()]), (staying, resume[&staying.to_string()])] {
        ws.send(json!({"type": "join", "room": room, "since": since})).await;
        ws.recv_where("joined", |f| f["type"] == "joined" && f["room"] == room).await;
    }
    send_reliably_any(&sender, &url0, moving, "m2", 10, 8).await;
    send_reliably_any(&sender, &url0, staying, "s2", 10, 8).await;
    let more = read_until(&mut ws, Duration::from_secs(20), |f| {
        let n = |r: i64| f.iter().filter(|m| m["type"] == "message" && m["room"] == r).count();
        n(moving) >= 10 && n(staying) >= 10
    })
    .await;
    let mut all_moving = got_moving;
    all_moving.extend(seqs_of(&more, moving));
    let mut all_staying = got_staying;
    all_staying.extend(seqs_of(&more, staying));
    assert_eq!(all_moving, (1..=40).collect::<Vec<_>>(), "no gap, no duplicate across the resume");
    assert_eq!(all_staying, (1..=30).collect::<Vec<_>>(), "no gap, no duplicate across the resume");
}
