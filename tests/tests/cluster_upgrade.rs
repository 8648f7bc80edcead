//! A rolling upgrade on a real cluster: three nodes of the previous node-to-node protocol version
//! (started with the hidden `--node-protocol-version`, which makes a node speak and publish only
//! what a build of that version did) are replaced one at a time by nodes of this version (stop
//! with a drain, start again on the same data), while two rooms take traffic. Between steps the
//! cluster is mixed: links between an old and a new node speak the old version, links between new
//! nodes the new one, and a room owned by a new node serves clients of old nodes and the other way
//! round. At the end every invariant holds: each acknowledged message stored once, in order, with
//! no gap, and each receiver saw every seq once.

use confab_schemas::node::NODE_PROTOCOL_VERSION;
use confab_tests::cluster::{Sandbox, check_invariants, owner_of, receive_until, send_until};
use confab_tests::{Api, eventually, unique};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_confab-test-node");
const OLD: u32 = NODE_PROTOCOL_VERSION - 1;

fn old_flags() -> Vec<String> {
    vec!["--node-protocol-version".into(), OLD.to_string()]
}

fn urls(sb: &Sandbox, order: &[usize]) -> Vec<String> {
    order.iter().map(|i| sb.ws_urls[*i].clone()).collect()
}

/// Waits until node `i` has a live link to every other node, speaking `expected(peer)`.
async fn links_speak(sb: &Sandbox, api: &Api, i: usize, expected: impl Fn(usize) -> u32) {
    let api = api.on(&sb.bases[i]);
    let want: Vec<(String, u32)> = (0..3).filter(|j| *j != i).map(|j| (format!("n{j}"), expected(j))).collect();
    eventually(&format!("n{i}'s links to speak {want:?}"), || {
        let (api, want) = (api.clone(), want.clone());
        async move {
            let (_, v) = api.get("/api/cluster").await;
            let members = v["members"].as_array()?;
            want.iter()
                .all(|(node, version)| {
                    members.iter().any(|m| m["node_id"] == node.as_str() && m["link_protocol"] == *version)
                })
                .then_some(())
        }
    })
    .await;
}

/// Waits until the room's head passed `at_least` (traffic flows).
async fn head_reaches(api: &Api, room: i64, at_least: u64) -> u64 {
    eventually(&format!("room {room} to pass seq {at_least}"), || async {
        let (_, v) = api.get(&format!("/api/rooms/{room}")).await;
        let head = v["head_seq"].as_u64()?;
        (head >= at_least).then_some(head)
    })
    .await
}

/// A client of node `from` sends to `room` and a client of node `to` receives it.
async fn chat_across(sb: &Sandbox, alice: &Api, bob: &Api, room: i64, from: usize, to: usize) {
    let mut a = alice.ws(&sb.ws_urls[from]).await;
    let mut b = bob.ws(&sb.ws_urls[to]).await;
    let head = b.join(room, None).await["head"].as_u64().unwrap_or(0);
    a.join(room, None).await;
    a.send(json!({"type": "send", "room": room, "cid": unique("x"), "body": format!("n{from} to n{to}")})).await;
    let ack = a.recv_type("ack").await;
    let got = b.messages(room, 1).await;
    assert_eq!(got[0]["seq"], ack["seq"], "the message crossed");
    assert_eq!(got[0]["seq"].as_u64(), Some(head + 1), "no gap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_of_the_previous_version_upgrades_one_node_at_a_time_losing_nothing() {
    let mut sb = Sandbox::start_with(BIN, 3, |_| old_flags()).await;
    let alice = Api::register(&sb.bases[1], &unique("up")).await;
    let bob = Api::register(&sb.bases[2], &unique("up")).await;
    for i in 0..3 {
        links_speak(&sb, &alice, i, |_| OLD).await;
    }
    let (_, v) = alice.get("/api/cluster").await;
    assert!(
        v["members"].as_array().unwrap().iter().all(|m| m["protocols"] == json!([OLD])),
        "a node of the previous version publishes no versions (read as {OLD}): {v}"
    );
    // Two rooms under traffic the whole time, their senders and receivers on different nodes.
    let rooms = [sb.room_owned_by(&alice, "n0").await, sb.room_owned_by(&alice, "n2").await];
    let stop = Instant::now() + Duration::from_secs(15);
    let mut traffic = Vec::new();
    for (k, room) in rooms.into_iter().enumerate() {
        let (s, u) = (alice.clone(), urls(&sb, &[1, 2, 0]));
        let prefix = format!("r{k}");
        let sending = tokio::spawn(async move { send_until(&s, &u, room, &prefix, stop, 4).await });
        let count = Arc::new(AtomicU64::new(u64::MAX));
        let (r, u, c) = (bob.clone(), urls(&sb, &[2, 0, 1]), count.clone());
        let receiving = tokio::spawn(async move { receive_until(&r, &u, room, c).await });
        traffic.push((room, sending, receiving, count));
    }
    let started = Instant::now();
    for i in 0..3 {
        if Instant::now() + Duration::from_secs(5) < stop {
            // Each step while messages flow.
            let head = head_reaches(&alice, rooms[0], 1).await;
            head_reaches(&alice, rooms[0], head + 10).await;
        }
        let t = Instant::now();
        assert_eq!(sb.terminate(i).await, Some(0), "n{i} drained and stopped cleanly");
        sb.restart_with(i, Vec::new()).await;
        sb.wait_ready(3).await;
        println!("n{i} replaced by version {NODE_PROTOCOL_VERSION} in {:?}", t.elapsed());
        // Links between two upgraded nodes speak the new version, the others the old one.
        let version = |j: usize| if j <= i { NODE_PROTOCOL_VERSION } else { OLD };
        for j in 0..3 {
            links_speak(&sb, &alice, j, |k| version(j).min(version(k))).await;
        }
        if i == 0 {
            // Mixed: a room of the new node serves clients of old nodes, and the other way round.
            let new_room = sb.room_owned_by(&alice, "n0").await;
            chat_across(&sb, &alice, &bob, new_room, 1, 2).await;
            let old_room = sb.room_owned_by(&alice, "n1").await;
            chat_across(&sb, &alice, &bob, old_room, 0, 2).await;
            for j in 0..3 {
                assert_eq!(owner_of(&alice.on(&sb.bases[j]), new_room).await, "n0", "every version names one owner");
            }
        }
    }
    println!(
        "the rolling upgrade took {:?}; traffic {}",
        started.elapsed(),
        if Instant::now() < stop { "went on through all of it" } else { "stopped before its end" }
    );
    let (_, v) = alice.get("/api/cluster").await;
    assert!(
        v["members"].as_array().unwrap().iter().all(|m| m["protocols"][0] == NODE_PROTOCOL_VERSION),
        "every node speaks the new version: {v}"
    );
    for (k, (room, sending, receiving, count)) in traffic.into_iter().enumerate() {
        let sent = sending.await.expect("sender");
        count.store(sent.acks.len() as u64, Relaxed);
        let got = receiving.await.expect("receiver");
        println!("room {k}: {} messages acknowledged through the upgrade", sent.acks.len());
        check_invariants(&alice, room, &format!("r{k}"), &sent, &got).await;
    }
}
