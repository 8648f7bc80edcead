//! Direct conversations, blocking and presence on a 3-node cluster: two people opening the same
//! conversation at the same instant on different nodes get one; a block made on one node holds at
//! once on every node; presence is per user across the cluster; a conversation's messages survive
//! a SIGKILL of its owner with no gap, no duplicate and nothing acknowledged lost.

use confab_tests::cluster::{Sandbox, check_invariants, connect_any, owner_of, receive_until, send_until};
use confab_tests::{Api, eventually, unique};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_confab-test-node");

/// Sends once through `api`'s socket on `url`, in `room`, and returns the ack or the error.
async fn send_once(api: &Api, url: &str, room: i64, cid: &str) -> Value {
    let (mut ws, _) = connect_any(api, &[url.to_owned()], 0).await;
    ws.send(json!({"type": "join", "room": room})).await;
    ws.recv_where("joined", |f| f["type"] == "joined" && f["room"] == room).await;
    ws.send(json!({"type": "send", "room": room, "cid": cid, "body": cid})).await;
    let answer = ws
        .recv_where("the answer", |f| f["type"] == "ack" && f["cid"] == cid || f["type"] == "error" && f["ref"] == cid)
        .await;
    ws.close().await;
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_blocks_and_presence_hold_across_nodes() {
    let sb = Sandbox::start(BIN, 3).await;

    // Ten pairs, each opening their conversation at the same instant from two nodes.
    let mut pairs = Vec::new();
    for i in 0..10 {
        let a = Api::register(&sb.bases[0], &unique(&format!("a{i}"))).await;
        let b = Api::register(&sb.bases[1], &unique(&format!("b{i}"))).await;
        pairs.push((a, b));
    }
    let opens = pairs.iter().map(|(a, b)| async move {
        let (x, y) = tokio::join!(
            a.post("/api/dms", json!({"username": b.username})),
            b.post("/api/dms", json!({"username": a.username}))
        );
        (x, y)
    });
    for ((sa, va), (sb_, vb)) in futures::future::join_all(opens).await {
        assert!(matches!((sa, sb_), (201, 200) | (200, 201) | (200, 200) | (201, 201)), "{va} {vb}");
        assert_eq!(va["room"]["id"], vb["room"]["id"], "two conversations for one pair: {va} {vb}");
        assert_eq!(
            [va["created"].as_bool(), vb["created"].as_bool()].iter().filter(|c| **c == Some(true)).count(),
            1,
            "exactly one of them made it: {va} {vb}"
        );
    }

    // A block made through node 0 holds at once through every node, both ways.
    let (alice, bob) = &pairs[0];
    let (_, opened) = alice.post("/api/dms", json!({"username": bob.username})).await;
    let dm = opened["room"]["id"].as_i64().unwrap();
    let (status, _) = alice.post("/api/blocks", json!({"username": bob.username})).await;
    assert_eq!(status, 204);
    for (i, url) in sb.ws_urls.iter().enumerate() {
        let refused = send_once(&bob.on(&sb.bases[i]), url, dm, &format!("b-{i}")).await;
        assert_eq!(refused["code"], "dm_refused", "through node {i}: {refused}");
        let refused = send_once(&alice.on(&sb.bases[i]), url, dm, &format!("a-{i}")).await;
        assert_eq!(refused["code"], "blocked", "through node {i}: {refused}");
        let (status, body) = bob.on(&sb.bases[i]).post("/api/dms", json!({"username": alice.username})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (403, Some("dm_refused")), "node {i}: {body}");
    }
    let (status, _) =
        alice.on(&sb.bases[2]).call(reqwest::Method::DELETE, &format!("/api/blocks/{}", bob.username), None).await;
    assert_eq!(status, 204);
    let ack = send_once(&bob.on(&sb.bases[1]), &sb.ws_urls[1], dm, "b-after").await;
    assert_eq!(ack["type"], "ack", "{ack}");

    // Presence is the user's, whichever node their session is on and whichever node asks.
    let (carol, dave) = &pairs[1];
    let mut wc = carol.on(&sb.bases[1]).ws(&sb.ws_urls[1]).await;
    wc.send(json!({"type": "join", "room": -carol.user_id})).await;
    wc.recv_where("the inbox", |f| f["type"] == "joined").await;
    for base in &sb.bases {
        eventually("carol online everywhere", || async {
            let (_, p) = dave.on(base).get(&format!("/api/users/{}", carol.username)).await;
            (p["online"] == true).then_some(())
        })
        .await;
    }
    wc.close().await;
    eventually("carol offline", || async {
        let (_, p) = dave.on(&sb.bases[2]).get(&format!("/api/users/{}", carol.username)).await;
        (p["online"] == false && p["last_seen"].is_i64()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_conversation_survives_a_sigkill_of_its_owner() {
    let mut sb = Sandbox::start(BIN, 3).await;
    let alice = Api::register(&sb.bases[0], &unique("al")).await;
    // A conversation owned by node 2 (its placement follows its id: try partners until one is).
    let (dm, bob) = loop {
        let bob = Api::register(&sb.bases[1], &unique("bo")).await;
        let (status, opened) = alice.post("/api/dms", json!({"username": bob.username})).await;
        assert_eq!(status, 201, "{opened}");
        let dm = opened["room"]["id"].as_i64().unwrap();
        if owner_of(&alice, dm).await == "n2" {
            break (dm, bob);
        }
    };
    let urls = vec![sb.ws_urls[0].clone(), sb.ws_urls[1].clone()];
    let count = Arc::new(AtomicU64::new(u64::MAX));
    let receiving = tokio::spawn({
        let (bob, urls, count) = (bob.clone(), vec![sb.ws_urls[1].clone(), sb.ws_urls[0].clone()], count.clone());
        async move { receive_until(&bob, &urls, dm, count).await }
    });
    let sending = tokio::spawn({
        let (alice, urls) = (alice.clone(), urls.clone());
        // About 25 ms apart for 8 s: the kill lands mid-conversation.
        let stop = std::time::Instant::now() + Duration::from_secs(8);
        async move { send_until(&alice, &urls, dm, "dm", stop, 8).await }
    });
    // Kill the owner once the conversation is under way.
    eventually("messages flowing", || async {
        let (_, h) = alice.get(&format!("/api/rooms/{dm}/messages?limit=1")).await;
        (h["messages"][0]["seq"].as_u64() >= Some(50)).then_some(())
    })
    .await;
    let (_, h) = alice.get(&format!("/api/rooms/{dm}/messages?limit=1")).await;
    let before_kill = h["messages"][0]["seq"].as_u64().unwrap();
    sb.kill9(2).await;
    let sent = sending.await.unwrap();
    assert!(
        sent.acks.len() as u64 > before_kill + 50,
        "the conversation went on after the kill: {before_kill} then {}",
        sent.acks.len()
    );
    count.store(sent.acks.len() as u64, Relaxed);
    let got = tokio::time::timeout(Duration::from_secs(180), receiving).await.expect("receiver").unwrap();
    check_invariants(&alice, dm, "dm", &sent, &got).await;
    assert_ne!(owner_of(&alice, dm).await, "n2", "another node took the conversation over");
}
