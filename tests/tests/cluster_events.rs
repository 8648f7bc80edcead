//! Edits and deletes on a 3-node cluster: they survive a SIGKILL of the room's owner and the
//! handoff back when it returns; a client on another node that stays joined throughout (resuming
//! with `since` after each disconnect), a client that joins afresh and REST history all fold to
//! the same messages; an edit resent by cid after a failover is the same edit.

use confab_tests::cluster::{Sandbox, connect_any, owner_of, send_reliably_any};
use confab_tests::history::{fold, rest_history};
use confab_tests::{Api, Ws, eventually, unique};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_confab-test-node");

/// Joins `room` on `ws` from `since`, riding out `retry` answers; false if the socket closed.
async fn join(ws: &mut Ws, room: i64, since: u64) -> bool {
    for _ in 0..300 {
        if !ws.try_send(json!({"type": "join", "room": room, "since": since})).await {
            return false;
        }
        loop {
            match ws.next_or_quiet(Duration::from_secs(5)).await {
                Ok(Some(f)) if f["type"] == "joined" && f["room"] == room => return true,
                Ok(Some(f)) if f["type"] == "error" && f["room"] == room => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    break;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(()) => return false,
            }
        }
    }
    false
}

/// Sends an edit or delete until it is acknowledged, through any node of `urls`, reconnecting
/// and resending (same cid) as nodes die; returns the ack.
async fn act(api: &Api, urls: &[String], room: i64, frame: Value) -> Value {
    let cid = frame["cid"].clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut at = 0;
    loop {
        assert!(Instant::now() < deadline, "{frame} was never acknowledged");
        let (mut ws, i) = connect_any(api, urls, at).await;
        at = i + 1;
        if !join(&mut ws, room, u64::MAX >> 1).await {
            continue;
        }
        loop {
            if !ws.try_send(frame.clone()).await {
                break;
            }
            let answer = loop {
                match ws.next_or_quiet(Duration::from_secs(5)).await {
                    Ok(Some(f)) if f["cid"] == cid && f["type"] == "ack" => break Some(f),
                    Ok(Some(f)) if f["ref"] == cid && f["type"] == "error" => break Some(f),
                    Ok(Some(_)) => {}
                    Ok(None) | Err(()) => break None,
                }
            };
            match answer {
                Some(a) if a["type"] == "ack" => return a,
                Some(e) => {
                    assert!(matches!(e["code"].as_str(), Some("retry" | "overloaded")), "{frame} refused: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                None => break,
            }
        }
    }
}

/// Everything of `room` a client sees, from seq 0, through any of `urls`, resuming with `since`
/// after a disconnect, until it has seen seq `until` (set later).
async fn watch(api: Api, urls: Vec<String>, room: i64, until: Arc<AtomicU64>) -> Vec<Value> {
    let mut frames: Vec<Value> = Vec::new();
    let mut last = 0;
    let mut at = 0;
    let deadline = Instant::now() + Duration::from_secs(180);
    while last < until.load(Relaxed) {
        assert!(Instant::now() < deadline, "the watcher is stuck at seq {last}");
        let (mut ws, i) = connect_any(&api, &urls, at).await;
        at = i + 1;
        if !join(&mut ws, room, last).await {
            continue;
        }
        while last < until.load(Relaxed) {
            match ws.next_or_quiet(Duration::from_secs(1)).await {
                Ok(Some(f)) if f["room"] == room && f["seq"].is_u64() && f["type"] != "ack" => {
                    let seq = f["seq"].as_u64().unwrap();
                    assert_eq!(seq, last + 1, "the watcher saw a gap or a duplicate: {f}");
                    last = seq;
                    frames.push(f);
                }
                Ok(Some(f)) if f["type"] == "resync" => panic!("unexpected resync {f}"),
                Ok(Some(_)) | Err(()) => {}
                Ok(None) => break,
            }
        }
    }
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_deletes_survive_failover_and_handoff() {
    let mut sb = Sandbox::start(BIN, 3).await;
    let author = Api::register(&sb.bases[0], &unique("au")).await;
    let room = sb.room_owned_by(&author, "n2").await;
    let urls: Vec<String> = vec![sb.ws_urls[0].clone(), sb.ws_urls[1].clone()];
    let until = Arc::new(AtomicU64::new(u64::MAX));
    let watcher = Api::register(&sb.bases[1], &unique("wa")).await;
    let watching =
        tokio::spawn(watch(watcher, vec![sb.ws_urls[1].clone(), sb.ws_urls[0].clone()], room, until.clone()));

    let sent = send_reliably_any(&author, &urls, room, "m", 10, 4).await;
    let seq_of = |i: usize| sent.acks[&format!("m-{i}")]["seq"].as_u64().unwrap();
    let edit = |i: usize, cid: &str| json!({"type": "edit", "room": room, "seq": seq_of(i), "body": format!("m {i} edited"), "cid": cid});
    let delete = |i: usize, cid: &str| json!({"type": "delete", "room": room, "seq": seq_of(i), "cid": cid});
    let first_edit = act(&author, &urls, room, edit(0, "e0")).await;
    act(&author, &urls, room, edit(1, "e1")).await;
    act(&author, &urls, room, delete(2, "d2")).await;

    sb.kill9(2).await;
    // The same edit again after the owner died: the new owner knows its cid.
    let again = act(&author, &urls, room, edit(0, "e0")).await;
    assert_eq!(again["seq"], first_edit["seq"], "an edit resent by cid after a failover is the same edit");
    act(&author, &urls, room, edit(3, "e3")).await;
    act(&author, &urls, room, delete(1, "d1")).await;
    // A system event after the failover, through n0, whichever node owns the room now.
    let renamed = unique("renamed");
    let (status, _) =
        author.call(reqwest::Method::PATCH, &format!("/api/rooms/{room}"), Some(json!({"name": renamed}))).await;
    assert_eq!(status, 200);
    let failed_over = owner_of(&author, room).await;
    assert_ne!(failed_over, "n2");

    sb.restart(2).await;
    sb.wait_ready(3).await;
    eventually("the room to move back to n2", || async { (owner_of(&author, room).await == "n2").then_some(()) }).await;
    act(&author, &urls, room, edit(4, "e4")).await;
    act(&author, &urls, room, delete(0, "d0")).await;
    act(&author, &urls, room, edit(4, "e4b")).await;
    // And one after the handoff back.
    let (status, _) = author
        .call(reqwest::Method::PATCH, &format!("/api/rooms/{room}"), Some(json!({"description": "after the handoff"})))
        .await;
    assert_eq!(status, 200);

    let (rest, _, head) = rest_history(&author, room, 100).await;
    until.store(head, Relaxed);
    let watched = watching.await.expect("watcher");
    let ops: Vec<&str> =
        watched.iter().filter(|f| f["type"] == "system").filter_map(|f| f["event"]["op"].as_str()).collect();
    assert_eq!(ops, ["renamed", "described"], "each system event once, in order, across the failover and the handoff");
    let live = fold(&watched, room);
    assert_eq!(live, rest, "the client that stayed folds to REST's history");
    let fresh = Api::register(&sb.bases[0], &unique("fr")).await;
    let joined = watch(fresh, vec![sb.ws_urls[2].clone()], room, Arc::new(AtomicU64::new(head))).await;
    assert_eq!(fold(&joined, room), rest, "a client joining afresh on the returned owner folds to the same");
    assert_eq!(rest.len(), 10);
    assert_eq!(rest[&seq_of(0)], (String::new(), false, true));
    assert_eq!(rest[&seq_of(1)], (String::new(), false, true));
    assert_eq!(rest[&seq_of(2)], (String::new(), false, true));
    assert_eq!(rest[&seq_of(3)], ("m 3 edited".to_owned(), true, false));
    assert_eq!(rest[&seq_of(4)], ("m 4 edited".to_owned(), true, false));
    assert_eq!(rest[&seq_of(5)], ("m #5".to_owned(), false, false));
    assert_eq!(head, 10 + 8 + 2, "ten messages, eight edits or deletes and two system events, each once");
    println!("room moved n2 → {failed_over} → n2; {head} events, folded the same three ways");
}

/// Room changes made through any node are system events of the room's one sequence: a member
/// removed through another node than the owner's gets the event on a third node, then nothing
/// more of the room there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_changes_through_any_node_reach_members_on_every_node() {
    let sb = Sandbox::start(BIN, 3).await;
    let owner = Api::register(&sb.bases[1], &unique("ow")).await;
    let room = loop {
        let r = owner.create_room(&unique("priv"), "private").await;
        if owner_of(&owner, r).await == "n2" {
            break r;
        }
    };
    let member = Api::register(&sb.bases[0], &unique("me")).await;
    let (status, _) = owner.post(&format!("/api/rooms/{room}/members"), json!({"username": member.username})).await;
    assert_eq!(status, 204);
    let mut wm = member.ws(&sb.ws_urls[0]).await;
    wm.join(room, Some(0)).await;
    let added = wm.recv_where("member_added", |f| f["type"] == "system" && f["event"]["op"] == "member_added").await;
    assert_eq!(added["event"]["user"]["id"], member.user_id, "replayed with since=0");
    let (status, _) = owner
        .call(reqwest::Method::PATCH, &format!("/api/rooms/{room}"), Some(json!({"description": "from n1"})))
        .await;
    assert_eq!(status, 200);
    wm.recv_where("described", |f| f["type"] == "system" && f["event"]["op"] == "described").await;
    let (status, _) =
        owner.call(reqwest::Method::DELETE, &format!("/api/rooms/{room}/members/{}", member.user_id), None).await;
    assert_eq!(status, 204);
    wm.recv_where("member_removed", |f| f["type"] == "system" && f["event"]["op"] == "member_removed").await;
    wm.recv_where("left", |f| f["type"] == "left" && f["room"] == room).await;
    let mut wo = owner.ws(&sb.ws_urls[1]).await;
    wo.join(room, None).await;
    let ack = act(
        &owner,
        &[sb.ws_urls[1].clone()],
        room,
        json!({"type": "send", "room": room, "cid": "o1", "body": "after"}),
    )
    .await;
    let seq = ack["seq"].as_u64().unwrap();
    wm.send(json!({"type": "send", "room": room, "cid": "m1", "body": "let me in"})).await;
    let refused = wm.recv_where("a refusal", |f| f["type"] == "error" && f["ref"] == "m1").await;
    assert_eq!(refused["code"], "not_joined", "{refused}");
    assert!(!wm.backlog.iter().any(|f| f["seq"] == seq && f["room"] == room), "a removed member got a later message");
    // Deleted through n0 (neither the owner's node nor the subscriber's): the subscriber on n1
    // is told, and the room is gone everywhere.
    let (status, _) = owner.on(&sb.bases[0]).call(reqwest::Method::DELETE, &format!("/api/rooms/{room}"), None).await;
    assert_eq!(status, 204);
    wo.recv_where("room_deleted", |f| f["type"] == "room_deleted" && f["room"] == room).await;
    for base in &sb.bases {
        assert_eq!(owner.on(base).get(&format!("/api/rooms/{room}")).await.0, 404);
    }
}

/// A user's inbox on a 3-node cluster: its events reach the user's sessions on every node,
/// whichever node changes the room, and survive a SIGKILL of the node that sequences the inbox:
/// a session that resumes with `since` sees every inbox event once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_events_reach_every_node_and_survive_the_inbox_owner_dying() {
    let mut sb = Sandbox::start(BIN, 3).await;
    // A user whose inbox n2 sequences; their sessions are on n0 and n1.
    let bob = loop {
        let u = Api::register(&sb.bases[0], &unique("bob")).await;
        let (_, me) = u.get("/api/me").await;
        if me["inbox_node"] == "n2" {
            break u;
        }
    };
    let inbox = -bob.user_id;
    let alice = Api::register(&sb.bases[1], &unique("al")).await;
    let mut sessions = Vec::new();
    for i in [0, 1] {
        let mut ws = bob.on(&sb.bases[i]).ws(&sb.ws_urls[i]).await;
        assert!(join(&mut ws, inbox, 0).await);
        sessions.push(ws);
    }
    let inbox_event =
        |op: &'static str| move |f: &Value| f["type"] == "system" && f["room"] == inbox && f["event"]["op"] == op;

    // Changes through n1 and n2 reach both sessions; so does a mention.
    let room = alice.create_room(&unique("priv"), "private").await;
    let (status, _) = alice.post(&format!("/api/rooms/{room}/members"), json!({"username": bob.username})).await;
    assert_eq!(status, 204);
    let mut wa = alice.ws(&sb.ws_urls[1]).await;
    assert!(join(&mut wa, room, 0).await);
    act(
        &alice,
        &[sb.ws_urls[1].clone()],
        room,
        json!({"type": "send", "room": room, "cid": "a1", "body": format!("hi @{}", bob.username)}),
    )
    .await;
    let mut last = 0;
    for ws in &mut sessions {
        let added = ws.recv_where("room_added", inbox_event("room_added")).await;
        assert_eq!(added["event"]["room"], room);
        let mention = ws.recv_where("mention", inbox_event("mention")).await;
        assert_eq!(mention["seq"].as_u64(), Some(added["seq"].as_u64().unwrap() + 1), "in order, no gap");
        ws.recv_where("activity", |f| f["type"] == "activity" && f["room"] == room).await;
        last = mention["seq"].as_u64().unwrap();
    }

    // The inbox's node dies; the next change is sequenced by its new owner and reaches the
    // session on n0, which resumes from what it had.
    sb.kill9(2).await;
    let second = alice.on(&sb.bases[1]).create_room(&unique("priv"), "private").await;
    let (status, _) =
        alice.on(&sb.bases[1]).post(&format!("/api/rooms/{second}/members"), json!({"username": bob.username})).await;
    assert_eq!(status, 204);
    let mut ws = sessions.swap_remove(0);
    let added = loop {
        match ws.next_or_quiet(Duration::from_secs(2)).await {
            Ok(Some(f)) if inbox_event("room_added")(&f) && f["event"]["room"] == second => break f,
            Ok(Some(f)) if f["room"] == inbox && f["seq"].is_u64() => {
                assert_eq!(f["seq"].as_u64(), Some(last + 1), "no gap, no duplicate: {f}");
                last += 1;
            }
            Ok(Some(_)) | Err(()) => {}
            Ok(None) => {
                // Closed (its subscription moved): resume from what it had.
                let (fresh, _) = connect_any(&bob, &[sb.ws_urls[0].clone()], 0).await;
                ws = fresh;
                assert!(join(&mut ws, inbox, last).await);
            }
        }
    };
    assert_eq!(added["seq"].as_u64(), Some(last + 1), "the new owner continues the inbox's sequence");
    let (_, me) = bob.get("/api/me").await;
    println!("inbox moved n2 → {}; its events reached n0 and n1 in order", me["inbox_node"]);
}
