//! Single-node chat behaviour: ordering under concurrent senders, idempotent sends, resume,
//! history paging, membership and presence.

use confab_tests::{NodeOpts, TestNode, Ws, eventually, unique};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

fn seqs(frames: &[Value]) -> Vec<u64> {
    frames.iter().map(|f| f["seq"].as_u64().expect("seq")).collect()
}

/// Sends `n` messages with cids `{prefix}-{i}` (at most 64 unacknowledged, as a client should)
/// and waits for every ack; returns cid → ack.
async fn send_all(ws: &mut Ws, room: i64, prefix: &str, n: usize) -> HashMap<String, Value> {
    let mut acks = HashMap::new();
    let mut sent = 0;
    while acks.len() < n {
        while sent < n && sent - acks.len() < 64 {
            ws.send(json!({"type": "send", "room": room, "cid": format!("{prefix}-{sent}"), "body": format!("{prefix} says {sent}")})).await;
            sent += 1;
        }
        let ack = ws.recv_type("ack").await;
        acks.insert(ack["cid"].as_str().expect("cid").to_owned(), ack);
    }
    acks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_every_receiver_sees_every_message_once_in_order() {
    let node = TestNode::start(NodeOpts::default()).await;
    let api = node.user(&unique("obs")).await;
    let room = api.room_id("general").await;
    let mut observers = Vec::new();
    for _ in 0..3 {
        let mut ws = api.ws(&node.ws_url).await;
        ws.join(room, None).await;
        observers.push(ws);
    }
    const SENDERS: usize = 5;
    const EACH: usize = 40;
    let mut tasks = Vec::new();
    for s in 0..SENDERS {
        let user = node.user(&unique(&format!("s{s}_"))).await;
        let url = node.ws_url.clone();
        tasks.push(tokio::spawn(async move {
            let mut ws = user.ws(&url).await;
            // Others may have sent already: replay from the start.
            ws.join(room, Some(0)).await;
            let acks = send_all(&mut ws, room, &format!("u{s}"), EACH).await;
            (acks, ws.messages(room, SENDERS * EACH).await)
        }));
    }
    let mut all_acked = Vec::new();
    for t in tasks {
        let (acks, seen) = t.await.expect("sender task");
        all_acked.extend(acks.values().map(|a| a["seq"].as_u64().unwrap()));
        assert_eq!(seqs(&seen), (1..=(SENDERS * EACH) as u64).collect::<Vec<_>>(), "a sender's view");
    }
    all_acked.sort_unstable();
    assert_eq!(all_acked, (1..=(SENDERS * EACH) as u64).collect::<Vec<_>>(), "acks are the seqs, once each");
    for ws in observers.iter_mut() {
        let seen = ws.messages(room, SENDERS * EACH).await;
        assert_eq!(seqs(&seen), (1..=(SENDERS * EACH) as u64).collect::<Vec<_>>());
        // Per sender, the order of cids follows their sending order.
        for s in 0..SENDERS {
            let mine: Vec<&str> =
                seen.iter().map(|m| m["body"].as_str().unwrap()).filter(|b| b.starts_with(&format!("u{s} "))).collect();
            let expected: Vec<String> = (0..EACH).map(|i| format!("u{s} says {i}")).collect();
            assert_eq!(mine, expected);
        }
    }
    node.stop().await;
}

/// A busy room holds messages for its fan-out window and sends them together: every member still
/// gets every message once and in order, and a sender never gets the ack for seq N before the
/// messages up to N (it would resume after N and miss one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_room_sends_in_windows_and_never_acks_ahead_of_its_messages() {
    let args = confab::ServeArgs { fanout_window_ms: Some(200), ..Default::default() };
    let node = TestNode::start(NodeOpts { args }).await;
    let api = node.user(&unique("win")).await;
    let room = api.room_id("general").await;
    let mut observer = api.ws(&node.ws_url).await;
    observer.join(room, None).await;
    const N: usize = 30;
    let mut senders = Vec::new();
    for s in 0..2 {
        let user = node.user(&unique(&format!("w{s}_"))).await;
        let mut ws = user.ws(&node.ws_url).await;
        ws.join(room, None).await;
        senders.push(ws);
    }
    for i in 0..N {
        for (s, ws) in senders.iter_mut().enumerate() {
            ws.send(json!({"type": "send", "room": room, "cid": format!("c{s}-{i}"), "body": format!("{s}:{i}")}))
                .await;
        }
    }
    for ws in senders.iter_mut() {
        // Frames in arrival order: each ack's seq must already have been delivered.
        let (mut highest, mut acks) = (0u64, 0);
        while acks < N {
            let f = ws.next().await.expect("a frame");
            match f["type"].as_str() {
                Some("message") => {
                    let seq = f["seq"].as_u64().expect("seq");
                    assert_eq!(seq, highest + 1, "messages in order, none skipped");
                    highest = seq;
                }
                Some("ack") => {
                    let seq = f["seq"].as_u64().expect("seq");
                    assert!(seq <= highest, "ack for seq {seq} before that message (seen up to {highest})");
                    acks += 1;
                }
                _ => {}
            }
        }
    }
    let seen = observer.messages(room, 2 * N).await;
    assert_eq!(seqs(&seen), (1..=(2 * N) as u64).collect::<Vec<_>>());
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_of_a_message_held_for_the_window_is_not_acked_ahead_of_it() {
    let args = confab::ServeArgs { fanout_window_ms: Some(1000), ..Default::default() };
    let node = TestNode::start(NodeOpts { args }).await;
    let api = node.user(&unique("held")).await;
    let room = api.room_id("general").await;
    let mut ws = api.ws(&node.ws_url).await;
    ws.join(room, None).await;
    // The first message goes out at once and opens a window; the second is held for the rest of it.
    ws.send(json!({"type": "send", "room": room, "cid": "a", "body": "a"})).await;
    while ws.next().await.expect("a frame")["type"] != "ack" {}
    ws.send(json!({"type": "send", "room": room, "cid": "b", "body": "b"})).await;
    let path = format!("/api/rooms/{room}/messages");
    eventually("b to be committed", || async {
        let (_, body) = api.get(&path).await;
        body["messages"].as_array()?.iter().any(|m| m["body"] == "b").then_some(())
    })
    .await;
    // Sent again while its message is still held: the original ack, but not before the message.
    ws.send(json!({"type": "send", "room": room, "cid": "b", "body": "b"})).await;
    let (mut delivered, mut acks) = (false, 0);
    while acks < 2 {
        let f = ws.next().await.expect("a frame");
        match f["type"].as_str() {
            Some("message") if f["body"] == "b" => delivered = true,
            Some("ack") if f["cid"] == "b" => {
                assert!(delivered, "ack for b before message b");
                acks += 1;
            }
            _ => {}
        }
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_cid_gets_the_original_ack_and_stores_one_message() {
    let node = TestNode::start(NodeOpts::default()).await;
    let api = node.user(&unique("dup")).await;
    let room = api.room_id("general").await;
    let mut ws = api.ws(&node.ws_url).await;
    ws.join(room, None).await;
    let send = json!({"type": "send", "room": room, "cid": "same-cid", "body": "once"});
    ws.send(send.clone()).await;
    let first = ws.recv_type("ack").await;
    ws.send(send.clone()).await;
    let second = ws.recv_type("ack").await;
    assert_eq!(first, second);
    // Also after reconnecting: the new session gets the same ack.
    ws.close().await;
    let mut ws = api.ws(&node.ws_url).await;
    ws.join(room, Some(1)).await;
    ws.send(send).await;
    assert_eq!(ws.recv_type("ack").await, first);
    let (_, history) = api.get(&format!("/api/rooms/{room}/messages")).await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 1);
    // And after a restart of the node, from storage.
    let db = node.stop().await;
    let node = TestNode::start_on(db, NodeOpts::default()).await;
    let api = confab_tests::Api { base: node.base.clone(), ..api };
    let mut ws = api.ws(&node.ws_url).await;
    ws.join(room, Some(1)).await;
    ws.send(json!({"type": "send", "room": room, "cid": "same-cid", "body": "once"})).await;
    assert_eq!(ws.recv_type("ack").await, first);
    node.stop().await;
}

/// Frames that arrive in one read go to the session, and their sends to the room, together:
/// each still gets its own answer, in order, and refusals in between stop nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_read_together_are_answered_one_by_one_in_order() {
    let node = TestNode::start(NodeOpts::default()).await;
    let api = node.user(&unique("burst")).await;
    let room = api.room_id("general").await;
    let other = api.create_room(&unique("elsewhere"), "public").await;
    let mut ws = api.ws(&node.ws_url).await;
    ws.join(room, None).await;
    let mut watcher = api.ws(&node.ws_url).await;
    watcher.join(room, None).await;
    let send = |cid: &str, body: &str| json!({"type": "send", "room": room, "cid": cid, "body": body});
    let mut frames = vec![
        send("b-1", "one"),
        send("b-2", "two"),
        send("b-empty", "   "),
        json!({"type": "typing", "room": room, "on": true}),
        send("b-3", "three"),
        json!({"type": "send", "room": other, "cid": "b-elsewhere", "body": "not joined"}),
        send("b-1", "one again"),
        json!({"type": "ping"}),
    ];
    frames.extend((4..=40).map(|i| send(&format!("b-{i}"), &format!("message {i}"))));
    ws.send_together(&frames).await;

    assert_eq!(ws.expect_error("empty_body").await["ref"], "b-empty");
    assert_eq!(ws.expect_error("not_joined").await["ref"], "b-elsewhere");
    ws.recv_type("pong").await;
    let mut acks = Vec::new();
    while acks.len() < 40 {
        let ack = ws.recv_type("ack").await;
        acks.push((ack["cid"].as_str().expect("cid").to_owned(), ack["seq"].as_u64().expect("seq")));
    }
    // b-1 … b-40 in the order sent, with consecutive seqs: the resend of b-1 while it was still
    // waiting for its commit made no second message (its one ack answers both).
    let cids: Vec<String> = acks.iter().map(|(c, _)| c.clone()).collect();
    assert_eq!(cids, (1..=40).map(|i| format!("b-{i}")).collect::<Vec<_>>());
    assert!(acks.windows(2).all(|w| w[1].1 == w[0].1 + 1), "consecutive seqs: {acks:?}");
    ws.ping().await;
    assert!(ws.backlog.iter().all(|f| f["type"] != "ack"), "one ack per message: {:?}", ws.backlog);
    // The other member sees the 40 messages once each, in that order.
    let mut seen = Vec::new();
    while seen.len() < 40 {
        let m = watcher.recv_type("message").await;
        seen.push(m["body"].as_str().expect("body").to_owned());
    }
    let want: Vec<String> =
        ["one", "two", "three"].iter().map(|s| s.to_string()).chain((4..=40).map(|i| format!("message {i}"))).collect();
    assert_eq!(seen, want);
    node.stop().await;
}

/// Keeps the session's whole window (`MAX_IN_FLIGHT`, 128) unanswered in `room`: sends the next
/// message as soon as an ack arrives, `total` in all. Returns the error frames it got.
async fn keep_window_full(mut ws: Ws, room: i64, tag: String, total: usize) -> Vec<Value> {
    const WINDOW: usize = 128;
    let send =
        |i: usize| json!({"type": "send", "room": room, "cid": format!("{tag}-{i}"), "body": format!("{tag} {i}")});
    let first: Vec<Value> = (0..WINDOW).map(send).collect();
    ws.send_together(&first).await;
    let (mut sent, mut answered, mut errors) = (WINDOW, 0, Vec::new());
    while answered < total {
        let frame = ws.next().await.expect("the connection stays open");
        match frame["type"].as_str() {
            Some("ack") => {
                answered += 1;
                if sent < total {
                    ws.send(send(sent)).await;
                    sent += 1;
                }
            }
            Some("error") => {
                answered += 1;
                errors.push(frame);
            }
            _ => {}
        }
    }
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_answers_each_ack_with_a_send_is_never_refused() {
    // A client may keep 128 sends unanswered per room. The one that sends again the moment an
    // ack arrives must find a free place: the session has to hear of the ack no later than the
    // client does, however busy the room is with its fan-out.
    let node = TestNode::start(NodeOpts::default()).await;
    let api = node.user(&unique("window")).await;
    let room = api.create_room(&unique("full-window"), "public").await;
    let mut sockets = Vec::new();
    for _ in 0..4 {
        let mut ws = api.ws(&node.ws_url).await;
        ws.join(room, None).await;
        sockets.push(ws);
    }
    // Members that joined after the senders, and only read, come after them in each fan-out and
    // widen the gap between an ack on the wire and the end of the fan-out.
    let mut readers = Vec::new();
    for _ in 0..200 {
        let mut ws = api.ws(&node.ws_url).await;
        ws.join(room, None).await;
        readers.push(tokio::spawn(async move { while ws.next().await.is_some() {} }));
    }
    let senders: Vec<_> = (sockets.into_iter().enumerate())
        .map(|(k, ws)| tokio::spawn(keep_window_full(ws, room, format!("w{k}"), 1500)))
        .collect();
    for s in senders {
        let errors = s.await.expect("sender task");
        assert!(errors.is_empty(), "no send refused: {} errors, first {:?}", errors.len(), errors.first());
    }
    readers.iter().for_each(|r| r.abort());
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_with_since_replays_exactly_the_gap() {
    let node = TestNode::start(NodeOpts::default()).await;
    let (a, b) = (node.user(&unique("a")).await, node.user(&unique("b")).await);
    let room = a.create_room(&unique("resume"), "public").await;
    let mut wa = a.ws(&node.ws_url).await;
    let mut wb = b.ws(&node.ws_url).await;
    wa.join(room, None).await;
    wb.join(room, None).await;
    send_all(&mut wb, room, "before", 5).await;
    let seen = wa.messages(room, 5).await;
    let last = seen.last().unwrap()["seq"].as_u64().unwrap();
    wa.close().await;
    send_all(&mut wb, room, "gap", 7).await;
    let mut wa = a.ws(&node.ws_url).await;
    let joined = wa.join(room, Some(last)).await;
    assert_eq!(joined["head"], 12);
    let replayed = wa.messages(room, 7).await;
    assert_eq!(seqs(&replayed), (6..=12).collect::<Vec<_>>());
    // Live traffic continues right after the replay, with nothing in between.
    send_all(&mut wb, room, "after", 1).await;
    assert_eq!(wa.messages(room, 1).await[0]["seq"], 13);
    assert!(wa.backlog.iter().all(|f| f["type"] != "message"), "no duplicate: {:?}", wa.backlog);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_reach_the_first_message_and_use_the_cache() {
    let node = TestNode::start(NodeOpts::default()).await;
    let api = node.user(&unique("hist")).await;
    let room = api.create_room(&unique("long"), "public").await;
    let mut ws = api.ws(&node.ws_url).await;
    ws.join(room, None).await;
    send_all(&mut ws, room, "m", 230).await;
    let mut collected = Vec::new();
    let (_, mut page) = api.get(&format!("/api/rooms/{room}/messages?limit=100")).await;
    loop {
        let msgs = page["messages"].as_array().unwrap().clone();
        assert!(!msgs.is_empty());
        let first = msgs[0]["seq"].as_u64().unwrap();
        collected.splice(0..0, msgs);
        if !page["has_more"].as_bool().unwrap() {
            break;
        }
        page = api.get(&format!("/api/rooms/{room}/messages?before={first}&limit=100")).await.1;
    }
    assert_eq!(seqs(&collected), (1..=230).collect::<Vec<_>>());
    assert_eq!(collected[0]["body"], "m says 0");
    assert_eq!(collected[0]["from"]["username"], api.username);
    // `after` reads forward.
    let (_, fwd) = api.get(&format!("/api/rooms/{room}/messages?after=200&limit=10")).await;
    assert_eq!(seqs(fwd["messages"].as_array().unwrap()), (201..=210).collect::<Vec<_>>());
    // The second read of the same old pages comes from the cache.
    let hits = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("confab_history_cache_hits_total"))
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let before = hits(&reqwest::get(format!("{}/metrics", node.base)).await.unwrap().text().await.unwrap());
    api.get(&format!("/api/rooms/{room}/messages?before=65&limit=64")).await;
    let after = hits(&reqwest::get(format!("{}/metrics", node.base)).await.unwrap().text().await.unwrap());
    assert!(after > before, "cache hits {before} -> {after}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_rooms_need_the_owner_to_add_members() {
    let node = TestNode::start(NodeOpts::default()).await;
    let (owner, guest) = (node.user(&unique("own")).await, node.user(&unique("gst")).await);
    let room = owner.create_room(&unique("secret"), "private").await;
    let (status, body) = guest.get(&format!("/api/rooms/{room}/messages")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("not_member")));
    let mut ws = guest.ws(&node.ws_url).await;
    ws.send(json!({"type": "join", "room": room})).await;
    ws.expect_error("not_member").await;
    let (status, _) = guest.post(&format!("/api/rooms/{room}/members"), json!({"username": guest.username})).await;
    assert_eq!(status, 403, "only the owner adds members");
    let (status, _) = owner.post(&format!("/api/rooms/{room}/members"), json!({"username": guest.username})).await;
    assert_eq!(status, 204);
    let joined = ws.join(room, None).await;
    // Adding the member is the room's first event (`member_added`), committed before or after
    // this join.
    assert!(joined["head"].as_u64().is_some_and(|h| h <= 1), "{joined}");
    let (status, listing) = guest.get("/api/rooms").await;
    assert_eq!(status, 200);
    assert!(listing["rooms"].as_array().unwrap().iter().any(|r| r["id"] == room && r["member"] == true));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_typing_and_unread_counts() {
    let node = TestNode::start(NodeOpts::default()).await;
    let (a, b) = (node.user(&unique("pa")).await, node.user(&unique("pb")).await);
    let room = a.create_room(&unique("lobby"), "public").await;
    let mut wa = a.ws(&node.ws_url).await;
    wa.join(room, None).await;
    let mut wb = b.ws(&node.ws_url).await;
    let joined = wb.join(room, None).await;
    assert_eq!(joined["online_count"], 2);
    let p = wa.recv_type("presence").await;
    assert_eq!((p["user"]["id"].as_i64(), p["online"].as_bool()), (Some(b.user_id), Some(true)));
    wb.send(json!({"type": "typing", "room": room, "on": true})).await;
    let t = wa.recv_type("typing").await;
    assert_eq!(t["user"]["username"], b.username);
    send_all(&mut wb, room, "unread", 3).await;
    wa.messages(room, 3).await;
    let unread = |v: &Value| {
        v["rooms"].as_array().unwrap().iter().find(|r| r["id"] == room).unwrap()["unread"].as_u64().unwrap()
    };
    assert_eq!(unread(&a.get("/api/rooms").await.1), 3);
    wa.send(json!({"type": "read", "room": room, "seq": 2})).await;
    confab_tests::eventually("the read cursor to be stored", || async {
        (unread(&a.get("/api/rooms").await.1) == 1).then_some(())
    })
    .await;
    wb.close().await;
    let p = wa.recv_where("offline presence", |f| f["type"] == "presence" && f["online"] == false).await;
    assert_eq!(p["user"]["id"], b.user_id);
    node.stop().await;
}

/// A user who joins and leaves a room in a loop does not send every member a presence frame per
/// change: a few, then at most one every two seconds, and members still end up seeing the true
/// state (offline, once the loop stops).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_leave_loop_does_not_flood_members_with_presence() {
    let node = TestNode::start(NodeOpts::default()).await;
    let (a, b) = (node.user(&unique("by")).await, node.user(&unique("loop")).await);
    let room = a.create_room(&unique("calm"), "public").await;
    let mut wa = a.ws(&node.ws_url).await;
    wa.join(room, None).await;
    let mut wb = b.ws(&node.ws_url).await;
    let started = std::time::Instant::now();
    const LOOPS: usize = 50;
    for _ in 0..LOOPS {
        wb.join(room, None).await;
        wb.send(json!({"type": "leave", "room": room})).await;
        wb.recv_type("left").await;
    }
    let elapsed = started.elapsed();
    // Read what reached the bystander until its view settles on "offline".
    let mut frames = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match wa.next_or_quiet(Duration::from_millis(500)).await {
            Ok(Some(f)) if f["type"] == "presence" && f["user"]["id"] == b.user_id => frames.push(f),
            Ok(Some(_)) => {}
            Ok(None) => panic!("the bystander's socket closed"),
            Err(()) => {
                if frames.last().is_some_and(|f| f["online"] == false) || std::time::Instant::now() > deadline {
                    break;
                }
            }
        }
    }
    println!("{} presence frames reached a member for {} changes in {elapsed:?}", frames.len(), 2 * LOOPS);
    let bound = 4 + (elapsed.as_secs_f64() * 0.5).ceil() as usize + 2;
    assert!(frames.len() <= bound, "{} presence frames for one user's loop (bound {bound})", frames.len());
    assert_eq!(frames.last().map(|f| f["online"].clone()), Some(json!(false)), "the member sees the final state");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_rooms_passivate_and_come_back_with_their_sequence() {
    let args = confab::ServeArgs { room_idle_secs: Some(1), ..Default::default() };
    let node = TestNode::start(NodeOpts { args }).await;
    let api = node.user(&unique("idle")).await;
    let room = api.create_room(&unique("sleepy"), "public").await;
    let mut ws = api.ws(&node.ws_url).await;
    ws.join(room, None).await;
    send_all(&mut ws, room, "before", 3).await;
    ws.send(json!({"type": "leave", "room": room})).await;
    ws.recv_type("left").await;
    let rid = confab_schemas::RoomId(room);
    confab_tests::eventually("the idle room to passivate", || async {
        (!node.system().active_rooms().await.contains(&rid)).then_some(())
    })
    .await;
    let joined = ws.join(room, Some(3)).await;
    assert_eq!(joined["head"], 3);
    assert!(node.system().active_rooms().await.contains(&rid), "activated again on use");
    let acks = send_all(&mut ws, room, "after", 1).await;
    assert_eq!(acks["after-0"]["seq"], 4);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_go_through_the_moderation_queue_to_the_audit_log() {
    let node = TestNode::start(NodeOpts::default()).await;
    let api = node.user(&unique("rep")).await;
    let room = api.room_id("general").await;
    let (status, body) = api.post(&format!("/api/rooms/{room}/reports"), json!({"reason": "spam links"})).await;
    assert_eq!(status, 201, "{body}");
    assert!(body["id"].as_i64().unwrap() > 0);
    let (status, _) = api.post(&format!("/api/rooms/{room}/reports"), json!({"reason": ""})).await;
    assert_eq!(status, 400);
    let audit = node.system().store().audit_entries(10).await.unwrap();
    assert!(audit.iter().any(|(_, actor, action, r, detail)| action == "report"
        && *actor == Some(api.user_id)
        && *r == Some(room)
        && detail.contains("spam links")));
    node.stop().await;
}
