//! Room moderation on a 3-node cluster: pre-moderation keeps the room's sequence gap-free with
//! messages held, released and rejected through different nodes while the room's owner node is
//! SIGKILLed (held messages are stored, so they outlive it); room staff on another node get
//! `queued` and the sender its ack there; a room ban through one node takes the target's socket
//! on another out of the room; a room moderator demoted through one node has no
//! power at once on another; what the repeat flag counted on the dead owner still counts on the
//! node that takes its room over. PostgreSQL (and the test S3 store), as every cluster.

use confab_tests::cluster::{Sandbox, connect_any, owner_of};
use confab_tests::{Api, Ws, eventually, unique};
use reqwest::Method;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_confab-test-node");

async fn ws_on(api: &Api, url: &str) -> Ws {
    connect_any(api, &[url.to_owned()], 0).await.0
}

/// Sends `body` (fresh cids, every 100 ms) until the answer is of type `ty`; returns it.
async fn send_until(ws: &mut Ws, room: i64, body: &str, ty: &str) -> Value {
    let deadline = tokio::time::Instant::now() + confab_tests::DEADLINE;
    loop {
        let cid = unique("c");
        ws.send(json!({"type": "send", "room": room, "cid": cid, "body": body})).await;
        let answer = ws.recv_where("the answer", |v| v["cid"] == cid || v["ref"] == cid).await;
        if answer["type"] == ty {
            return answer;
        }
        assert!(tokio::time::Instant::now() < deadline, "no {ty}: {answer}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Sends `body` (fresh cids, every 100 ms) until the answer is not `retry` or `overloaded`
/// (the room is moving); returns it.
async fn send_settled(ws: &mut Ws, room: i64, body: &str) -> Value {
    let deadline = tokio::time::Instant::now() + confab_tests::DEADLINE;
    loop {
        let cid = unique("c");
        ws.send(json!({"type": "send", "room": room, "cid": cid, "body": body})).await;
        let answer = ws.recv_where("the answer", |v| v["cid"] == cid || v["ref"] == cid).await;
        if !(answer["type"] == "error" && ["retry", "overloaded"].contains(&answer["code"].as_str().unwrap_or(""))) {
            return answer;
        }
        assert!(tokio::time::Instant::now() < deadline, "the room did not settle: {answer}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Decides a queue item through `api`'s node, asking again while the room moves (503, which
/// decides nothing). One ask may itself take long (the node tries the room again for a while
/// before it answers 503), so an ask started before the deadline may be followed by another: a
/// slow failover is not mistaken for a lost decision.
async fn decide(api: &Api, room: i64, item: &Value, action: &str) -> Value {
    let path = format!("/api/rooms/{room}/queue/{item}/decision");
    let deadline = tokio::time::Instant::now() + confab_tests::DEADLINE;
    loop {
        let started = tokio::time::Instant::now();
        let (status, body) = api.post(&path, json!({"action": action, "reason": "test"})).await;
        match status {
            200 => return body,
            503 if started < deadline => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            _ => panic!("{action} of {item}: {status} {body}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn premoderation_stays_gap_free_across_a_sigkill_of_the_owner_and_demotions_hold_everywhere() {
    let mut sb = Sandbox::start(BIN, 3).await;
    let owner = Api::register(&sb.bases[0], &unique("owner")).await;
    let sender = Api::register(&sb.bases[0], &unique("sender")).await;
    let moderator = Api::register(&sb.bases[1], &unique("mod")).await;
    let room = sb.room_owned_by(&owner, "n2").await;
    let mut sws = ws_on(&sender, &sb.ws_urls[0]).await;
    sws.join(room, None).await;
    let mut mws = ws_on(&moderator, &sb.ws_urls[1]).await;
    mws.join(room, None).await;
    assert_eq!(send_until(&mut sws, room, "before", "ack").await["seq"], 1);
    let path = format!("/api/rooms/{room}/moderators/{}", moderator.username);
    assert_eq!(owner.call(Method::PUT, &path, None).await.0, 204);
    let (s, _) =
        owner.call(Method::PATCH, &format!("/api/rooms/{room}/moderation"), Some(json!({"premod": true}))).await;
    assert_eq!(s, 200);

    // Held on the owner n2 (within its settings cache); the moderator on n1 sees each queued.
    let first = send_until(&mut sws, room, "held a", "held").await;
    let mut held = vec![first];
    for body in ["held b", "held c"] {
        held.push(send_until(&mut sws, room, body, "held").await);
    }
    for h in &held {
        mws.recv_where("queued", |v| v["type"] == "queued" && v["item"]["id"] == h["item"]).await;
    }
    // Released through n1: the sender on n0 gets the ack for its cid.
    decide(&moderator, room, &held[0]["item"], "release").await;
    let ack = sws.recv_where("ack of a", |v| v["type"] == "ack" && v["cid"] == held[0]["cid"]).await;
    let released_a = ack["seq"].as_u64().unwrap();

    // A room of n2's with the repeat flag: two identical messages before n2 dies.
    let flagged = sb.room_owned_by(&owner, "n2").await;
    let flags = json!({"flags": {"repeats": {"count": 3, "seconds": 600}}});
    let (s, body) = owner.call(Method::PATCH, &format!("/api/rooms/{flagged}/moderation"), Some(flags)).await;
    assert_eq!(s, 200, "{body}");
    sws.join(flagged, None).await;
    for _ in 0..2 {
        assert_eq!(send_settled(&mut sws, flagged, "same again").await["type"], "ack");
    }

    // SIGKILL the owner: the other two are still held (stored), released and rejected through
    // the survivors, and the sequence goes on without a gap.
    sb.kill9(2).await;
    let on0 = moderator.on(&sb.bases[0]);
    let released = decide(&on0, room, &held[1]["item"], "release").await;
    assert_eq!(released["status"], "released");
    let rejected = decide(&moderator, room, &held[2]["item"], "reject").await;
    assert_eq!(rejected["status"], "rejected");
    let (s, again) =
        on0.post(&format!("/api/rooms/{room}/queue/{}/decision", held[2]["item"]), json!({"action": "release"})).await;
    assert_eq!(s, 409, "{again}");
    let history = eventually("history with the released message", || async {
        let (_, h) = owner.get(&format!("/api/rooms/{room}/messages")).await;
        let bodies: Vec<String> =
            h["messages"].as_array()?.iter().map(|m| m["body"].as_str().unwrap_or("").to_owned()).collect();
        bodies.contains(&"held b".to_owned()).then_some(h)
    })
    .await;
    let seqs: Vec<u64> = history["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "gap-free: {history}");
    assert!(!history.to_string().contains("held c"), "a rejected message never gets a seq");
    let now = owner_of(&owner, room).await;
    assert!(now == "n0" || now == "n1", "a survivor sequenced the release: {now}");
    let a = &history["messages"][(released_a - 1) as usize];
    assert_eq!((a["seq"].as_u64(), a["body"].as_str()), (Some(released_a), Some("held a")), "{history}");

    // The survivor that took the flagged room over counts the two stored messages: the third is refused.
    let third = send_settled(&mut sws, flagged, "same again").await;
    assert_eq!(third["code"], "repeated", "{third}");

    // A ban through n1 takes the sender's socket on n0 out of the room (its `member_removed` is
    // durable when the ban is answered; how soon it reaches another node depends on the
    // machine, so this waits on it, not on a clock), and refuses its next join there.
    let (s, body) = moderator
        .post(&format!("/api/rooms/{room}/sanctions"), json!({"username": sender.username, "kind": "ban"}))
        .await;
    assert_eq!(s, 201, "{body}");
    sws.recv_where("left", |v| v["type"] == "left" && v["room"] == room).await;
    sws.send(json!({"type": "join", "room": room})).await;
    let refused = sws.recv_where("the join's refusal", |v| v["type"] == "error" && v["room"] == room).await;
    assert_eq!(refused["code"], "forbidden", "{refused}");

    // Demoted through n0: refused at once on n1.
    assert_eq!(moderator.get(&format!("/api/rooms/{room}/queue")).await.0, 200);
    assert_eq!(owner.call(Method::DELETE, &path, None).await.0, 204);
    let (s, body) = moderator.get(&format!("/api/rooms/{room}/queue")).await;
    assert_eq!(s, 403, "demoted on n0, refused at once on n1: {body}");
    let (s, _) = moderator
        .post(&format!("/api/rooms/{room}/sanctions"), json!({"username": sender.username, "kind": "mute"}))
        .await;
    assert_eq!(s, 403);
}
