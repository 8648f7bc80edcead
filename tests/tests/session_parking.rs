//! Idle sessions park (their actor stops; their state waits in the session's address) and wake
//! on the next message. Nothing is lost or reordered across parking and waking: frames sent to a
//! parked session, acks and messages of its rooms, closes, kills and disconnects all reach it or
//! end it as they would a running one.

use confab_actors::sessions::CloseTarget;
use confab_schemas::UserId;
use confab_tests::{NodeOpts, TestNode, eventually, unique};
use serde_json::json;
use std::sync::atomic::Ordering::Relaxed;

/// A node whose sessions park after 50 ms idle.
async fn parking_node() -> TestNode {
    let mut opts = NodeOpts::default();
    opts.args.session_park_ms = Some(50);
    TestNode::start(opts).await
}

fn parked(node: &TestNode) -> u64 {
    node.system().metrics().sessions_parked.load(Relaxed)
}

async fn wait_parked(node: &TestNode, n: u64, what: &str) {
    eventually(what, || async { (parked(node) >= n).then_some(()) }).await;
}

#[tokio::test]
async fn parked_sessions_wake_for_their_frames_and_their_rooms_keep_writing_to_them() {
    let node = parking_node().await;
    let (a, b) = (node.user(&unique("pa")).await, node.user(&unique("pb")).await);
    let room = a.create_room(&unique("park"), "public").await;
    let mut wa = a.ws(&node.ws_url).await;
    wa.join(room, Some(0)).await;
    let mut wb = b.ws(&node.ws_url).await;
    wb.join(room, Some(0)).await;
    wait_parked(&node, 2, "both sessions to park").await;

    let mut sent = 0u64;
    for round in 0..4 {
        // A burst from a parked session: the first frame wakes it, the rest queue behind it in
        // order while its actor starts.
        let frames: Vec<_> = (0..20)
            .map(|i| json!({"type": "send", "room": room, "cid": format!("r{round}-{i}"), "body": format!("m{round}-{i}")}))
            .collect();
        wa.send_together(&frames).await;
        for i in 0..20 {
            let cid = format!("r{round}-{i}");
            let ack = wa.recv_where("ack", |f| f["type"] == "ack" && f["cid"] == cid.as_str()).await;
            assert_eq!(ack["seq"], sent + i + 1, "acks in order: {ack}");
        }
        // B never woke: the room wrote to its socket directly.
        let got = wb.messages(room, 20).await;
        let seqs: Vec<u64> = got.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, ((sent + 1)..=(sent + 20)).collect::<Vec<_>>());
        assert_eq!(got[0]["body"], format!("m{round}-0"));
        sent += 20;
        wait_parked(&node, 2, "both sessions to park again").await;
    }
    // A parked session answers a ping (a frame wakes it) and parks again.
    wb.ping().await;
    wait_parked(&node, 2, "B to park after its ping").await;
    assert_eq!(node.system().session_count().await, 2);
}

#[tokio::test]
async fn closes_and_kills_reach_parked_sessions_and_a_parked_disconnect_leaves_its_rooms() {
    let node = parking_node().await;
    let (a, b, c) = (node.user(&unique("ka")).await, node.user(&unique("kb")).await, node.user(&unique("kc")).await);
    let room = a.create_room(&unique("kill"), "public").await;
    let mut wa = a.ws(&node.ws_url).await;
    wa.join(room, Some(0)).await;
    let mut wb = b.ws(&node.ws_url).await;
    wb.join(room, Some(0)).await;
    let mut wc = c.ws(&node.ws_url).await;
    wc.join(room, Some(0)).await;
    wait_parked(&node, 3, "three sessions to park").await;

    // A close for B's user (a logout, a ban) wakes its session, which says why and closes.
    node.system().close_sessions(CloseTarget::User(UserId(b.user_id)), "logged out", false);
    let frames = wb.until_closed().await;
    assert!(frames.iter().all(|f| f["type"] != "reconnect"), "a close for good has no resume hint: {frames:?}");

    // A killed parked session's client gets a resume hint and its socket closes, as a running
    // one's does.
    let restarts = node.system().metrics().session_restarts.load(Relaxed);
    assert!(node.system().kill_session(UserId(c.user_id)).await);
    let frames = wc.until_closed().await;
    assert!(
        frames.iter().any(|f| f["type"] == "reconnect" && f["reason"] == "session_restart"),
        "a resume hint: {frames:?}"
    );
    assert_eq!(node.system().metrics().session_restarts.load(Relaxed), restarts + 1);

    // Only A is left, parked; its disconnect ends it without waking it.
    eventually("B and C gone", || async { (node.system().session_count().await == 1).then_some(()) }).await;
    wait_parked(&node, 1, "A parked").await;
    wa.close().await;
    eventually("A gone", || async { (node.system().session_count().await == 0).then_some(()) }).await;
    eventually("no parked session left", || async { (parked(&node) == 0).then_some(()) }).await;

    // The room kept no subscriber for any of them: a new member's message reaches only the
    // new connection, and nothing breaks.
    let mut wa2 = a.ws(&node.ws_url).await;
    wa2.join(room, Some(0)).await;
    wa2.send(json!({"type": "send", "room": room, "cid": "after", "body": "after"})).await;
    wa2.recv_where("ack", |f| f["type"] == "ack" && f["cid"] == "after").await;
}

#[tokio::test]
async fn a_sender_that_pauses_longer_than_the_park_time_loses_nothing() {
    let node = parking_node().await;
    let (a, b) = (node.user(&unique("sa")).await, node.user(&unique("sb")).await);
    let room = a.create_room(&unique("pause"), "public").await;
    let mut wb = b.ws(&node.ws_url).await;
    wb.join(room, Some(0)).await;
    let mut wa = a.ws(&node.ws_url).await;
    wa.join(room, Some(0)).await;
    // Sends one at a time with pauses around the park time, so some land while the session is
    // parking, some while it is parked, some while it is starting again.
    for i in 0..40u64 {
        wa.send(json!({"type": "send", "room": room, "cid": format!("p{i}"), "body": format!("p{i}")})).await;
        let ack = wa.recv_where("ack", |f| f["type"] == "ack" && f["cid"] == format!("p{i}").as_str()).await;
        assert_eq!(ack["seq"], i + 1);
        // A timer, not a condition: the point is to hit every phase of parking.
        tokio::time::sleep(std::time::Duration::from_millis(10 + (i % 8) * 10)).await;
    }
    let got = wb.messages(room, 40).await;
    let seqs: Vec<u64> = got.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=40).collect::<Vec<_>>());
}

/// A cid sent again while its first send is pending is answered by that send's one ack, and
/// leaves nothing waiting in the session: it still parks (the repeat once waited in the
/// session's window for an answer that never comes, keeping the session awake for good).
#[tokio::test]
async fn a_cid_repeated_while_pending_is_answered_once_and_the_session_still_parks() {
    let node = parking_node().await;
    let a = node.user(&unique("rep")).await;
    let room = a.create_room(&unique("rep"), "public").await;
    let mut wa = a.ws(&node.ws_url).await;
    wa.join(room, Some(0)).await;
    wait_parked(&node, 1, "the session to park").await;

    let send = |cid: &str, body: &str| json!({"type": "send", "room": room, "cid": cid, "body": body});
    wa.send_together(&[send("twice", "first"), send("twice", "second"), send("after", "third")]).await;
    // The room acks in seq order: everything for "twice" comes before the ack of "after".
    let mut acks = Vec::new();
    let mut bodies = Vec::new();
    loop {
        let f = wa.next().await.expect("the socket stays open");
        match f["type"].as_str() {
            Some("ack") => acks.push(f["cid"].as_str().unwrap().to_owned()),
            Some("message") => bodies.push(f["body"].as_str().unwrap().to_owned()),
            Some("error") => panic!("refused: {f}"),
            _ => {}
        }
        if acks.last().is_some_and(|c| c == "after") {
            break;
        }
    }
    assert_eq!(acks, ["twice", "after"]);
    assert_eq!(bodies, ["first", "third"]);
    wait_parked(&node, 1, "the session to park with nothing in flight").await;
    let (_, history) = a.get(&format!("/api/rooms/{room}/messages")).await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 2, "{history}");
}
