//! Talk to a stranger on one node: matching by shared interests (the most shared first,
//! widening for those who accept fewer), the chat as a room where each side is only "Stranger",
//! "next", leaving, a report that keeps its chat while others are deleted on time, blocks (of
//! accounts, and of a stranger from the chat: never paired again), edits and deletes shown as
//! Stranger's, a dropped connection that keeps its place or finds its chat, the site's automatic
//! flags, and every refusal. Runs on SQLite, and on PostgreSQL when `CONFAB_TEST_DATABASE_URL` is set. The
//! cluster side is in `cluster_stranger.rs`.

use confab_tests::{Api, NodeOpts, TestNode, Ws, eventually, unique};
use serde_json::{Value, json};
use std::time::Duration;

/// A node whose pool widens after `widen` s and deletes ended chats after `retention` s.
async fn node(widen: f64, retention: f64) -> TestNode {
    let mut opts = NodeOpts::default();
    opts.args.stranger.stranger_widen_secs = Some(widen);
    opts.args.stranger.stranger_retention_secs = Some(retention);
    opts.args.stranger.stranger_tick_ms = Some(50);
    TestNode::start(opts).await
}

struct Stranger {
    api: Api,
    ws: Ws,
}

async fn person(node: &TestNode, name: &str) -> Stranger {
    let api = node.user(&unique(name)).await;
    let ws = api.ws(&node.ws_url).await;
    Stranger { api, ws }
}

impl Stranger {
    /// Enters the queue; returns the `waiting` frame.
    async fn enter(&mut self, interests: &[&str], fewer: bool) -> Value {
        self.ws.send(json!({"type": "match", "interests": interests, "fewer": fewer})).await;
        self.ws.recv_where("waiting", |f| f["type"] == "waiting" || f["type"] == "error").await
    }

    async fn matched(&mut self) -> Value {
        self.ws.recv_type("matched").await
    }
}

fn room_of(m: &Value) -> i64 {
    m["room"].as_i64().expect("a room")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_who_share_an_interest_are_matched_and_see_each_other_only_as_stranger() {
    let node = node(10.0, 3600.0).await;
    let mut alice = person(&node, "alice").await;
    let mut bob = person(&node, "bob").await;

    let waiting = alice.enter(&[" #Cats ", "Music", "cats"], false).await;
    assert_eq!(waiting["type"], "waiting", "{waiting}");
    assert_eq!(waiting["interests"], json!(["cats", "music"]));
    assert!(waiting["waiting"].as_u64() >= Some(1), "{waiting}");
    bob.enter(&["CATS", "chess"], false).await;
    let (ma, mb) = (alice.matched().await, bob.matched().await);
    let room = room_of(&ma);
    assert_eq!(room_of(&mb), room);
    assert_eq!((ma["shared"].clone(), mb["shared"].clone()), (json!(["cats"]), json!(["cats"])));
    assert_eq!((ma["you"]["username"].as_str(), mb["you"]["username"].as_str()), (Some("Stranger"), Some("Stranger")));
    assert_ne!(ma["you"]["id"], mb["you"]["id"]);
    assert!(ma["you"]["id"].as_i64() < Some(0), "an alias is no user's id: {ma}");

    // They chat in the room like in any room, each seeing the other only as Stranger.
    alice.ws.join(room, None).await;
    let joined = bob.ws.join(room, None).await;
    assert!(!joined.to_string().contains(&alice.api.username), "{joined}");
    alice.ws.send(json!({"type": "typing", "room": room, "on": true})).await;
    let typing = bob.ws.recv_type("typing").await;
    assert_eq!(typing["user"], ma["you"], "{typing}");
    alice.ws.send(json!({"type": "send", "room": room, "cid": "a1", "body": "hello stranger"})).await;
    assert_eq!(alice.ws.recv_type("ack").await["seq"], 1);
    let msg = bob.ws.recv_where("the message", |f| f["type"] == "message" && f["room"] == room).await;
    assert_eq!((msg["body"].as_str(), &msg["from"]), (Some("hello stranger"), &ma["you"]), "{msg}");
    bob.ws.send(json!({"type": "send", "room": room, "cid": "b1", "body": "hi"})).await;
    let back = alice.ws.recv_where("bob's message", |f| f["type"] == "message" && f["seq"] == 2).await;
    assert_eq!(back["from"], mb["you"]);
    let (status, history) = bob.api.get(&format!("/api/rooms/{room}/messages")).await;
    assert_eq!(status, 200, "{history}");
    let text = history.to_string();
    assert!(!text.contains(&alice.api.username) && !text.contains(&bob.api.username), "{text}");
    assert_eq!(history["messages"][0]["from"], ma["you"], "{history}");
    let (_, info) = bob.api.get(&format!("/api/rooms/{room}")).await;
    assert!(!info.to_string().contains(&alice.api.username), "{info}");
    // Search never shows a stranger chat (its results would name the stranger).
    let (status, found) = bob.api.get("/api/search?q=hello").await;
    assert_eq!(status, 200, "{found}");
    let results = found["results"].as_array().expect("results");
    assert!(results.iter().all(|r| r["room"].as_i64() != Some(room)), "{found}");
    assert!(!found.to_string().contains(&alice.api.username), "{found}");
    // Not in anyone's room list; nobody else joins it.
    let (_, list) = alice.api.get("/api/rooms?limit=500").await;
    assert!(list["rooms"].as_array().unwrap().iter().all(|r| r["id"].as_i64() != Some(room)), "{list}");
    let mut carol = person(&node, "carol").await;
    carol.ws.send(json!({"type": "join", "room": room})).await;
    carol.ws.expect_error("not_member").await;

    // At most one chat: entering again answers the chat one is in (how a client finds it again).
    alice.ws.send(json!({"type": "match", "interests": ["dogs"]})).await;
    // (A `waiting` with her first interests is a count the desk sent before she was paired.)
    let again = alice
        .ws
        .recv_where("the answer", |f| {
            f["type"] == "matched" || f["type"] == "waiting" && f["interests"] == json!(["dogs"])
        })
        .await;
    assert_eq!(again["type"], "matched", "{again}");
    assert_eq!(room_of(&again), room);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_most_shared_interests_win_and_the_wait_widens_for_those_who_accept_fewer() {
    let node = node(1.0, 3600.0).await;
    let mut a = person(&node, "a").await;
    let mut bc = person(&node, "bc").await;
    let mut abc = person(&node, "abc").await;
    // Nobody shares anything yet: both wait (neither accepts fewer).
    a.enter(&["apples"], false).await;
    bc.enter(&["bananas", "cherries"], false).await;
    let m = abc.enter(&["apples", "bananas", "cherries"], false).await;
    assert_eq!(m["type"], "waiting");
    let m = abc.matched().await;
    assert_eq!(m["shared"], json!(["bananas", "cherries"]), "{m}");
    assert_eq!(room_of(&bc.matched().await), room_of(&m));

    // Two who share nothing but accept fewer are paired once the wait has widened.
    let mut x = person(&node, "x").await;
    let mut y = person(&node, "y").await;
    let entered = std::time::Instant::now();
    x.enter(&["xylophones"], true).await;
    y.enter(&["yachts"], true).await;
    let mx = x.matched().await;
    assert!(entered.elapsed() >= Duration::from_millis(900), "paired before the wait widened");
    assert_eq!(mx["shared"], json!([]), "{mx}");
    assert_eq!(room_of(&y.matched().await), room_of(&mx));
    // `a` never accepted fewer and still waits.
    assert!(
        a.ws.next_or_quiet(Duration::from_millis(300)).await.map_or(true, |f| f.is_none_or(|f| f["type"] != "matched"))
    );
    a.ws.send(json!({"type": "unmatch"})).await;
    assert_eq!(a.ws.recv_type("unmatched").await["room"], Value::Null);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_and_leaving_end_a_chat_and_a_reported_chat_is_kept_while_others_are_deleted() {
    let node = node(0.5, 1.0).await;
    let mut alice = person(&node, "alice").await;
    let mut bob = person(&node, "bob").await;
    alice.enter(&["go"], false).await;
    bob.enter(&["go"], false).await;
    let first = room_of(&alice.matched().await);
    bob.matched().await;
    bob.ws.join(first, None).await;
    alice.ws.join(first, None).await;
    alice.ws.send(json!({"type": "send", "room": first, "cid": "a1", "body": "bye soon"})).await;
    alice.ws.recv_type("ack").await;

    // "next": alice leaves (bob sees Stranger leave) and waits again; bob is not paired with her
    // again soon, even sharing the interest.
    alice.ws.send(json!({"type": "next", "interests": ["go"], "fewer": true})).await;
    assert_eq!(alice.ws.recv_type("waiting").await["interests"], json!(["go"]));
    let left = bob.ws.recv_where("stranger left", |f| f["type"] == "system" && f["event"]["op"] == "member_left").await;
    assert_eq!(left["event"]["user"]["username"], "Stranger", "{left}");
    assert!(!left.to_string().contains(&alice.api.username), "{left}");
    // Bob's chat is over once the stranger left: `match` enters the queue again.
    bob.ws.send(json!({"type": "match", "interests": ["go"], "fewer": true})).await;
    bob.ws.recv_type("waiting").await;
    let mut carol = person(&node, "carol").await;
    let mut dave = person(&node, "dave").await;
    carol.enter(&["go"], false).await;
    dave.enter(&["go"], false).await;
    let (ma, mb, mc, md) = (alice.matched().await, bob.matched().await, carol.matched().await, dave.matched().await);
    assert_ne!(room_of(&ma), room_of(&mb), "alice and bob were paired again at once");
    let reported = room_of(&ma);
    assert!([room_of(&mc), room_of(&md)].contains(&reported));

    // The first chat, both gone, is deleted (messages and all) after the retention.
    eventually("the first chat deleted", || async {
        let gone = node.system().store().room_by_id(confab_schemas::RoomId(first)).await.unwrap().is_none();
        gone.then_some(())
    })
    .await;
    let (status, _) = bob.api.get(&format!("/api/rooms/{first}/messages")).await;
    assert!(status == 404 || status == 403, "{status}");

    // Alice reports her chat: it goes to the moderators' queue, she is out of it, and it is
    // kept after both left, while the other chat of the moment is deleted.
    let other = room_of(&mb);
    alice.ws.send(json!({"type": "stranger_report", "reason": "rude"})).await;
    assert_eq!(room_of(&alice.ws.recv_type("unmatched").await), reported);
    let partner = if room_of(&mc) == reported { &mut carol } else { &mut dave };
    partner.ws.send(json!({"type": "unmatch"})).await;
    assert_eq!(room_of(&partner.ws.recv_type("unmatched").await), reported);
    bob.ws.send(json!({"type": "unmatch"})).await;
    bob.ws.recv_type("unmatched").await;
    let third = if room_of(&mc) == reported { &mut dave } else { &mut carol };
    third.ws.send(json!({"type": "unmatch"})).await;
    third.ws.recv_type("unmatched").await;
    eventually("the unreported chat deleted", || async {
        node.system().store().room_by_id(confab_schemas::RoomId(other)).await.unwrap().is_none().then_some(())
    })
    .await;
    let store = node.system().store();
    assert!(store.room_by_id(confab_schemas::RoomId(reported)).await.unwrap().is_some(), "the reported chat is kept");
    let chat = store.stranger_chat(confab_schemas::RoomId(reported)).await.unwrap().expect("its record");
    assert!(chat.reported_at.is_some());
    let moderator = node.user_with_role("mod", confab_schemas::Role::Moderator).await;
    let (status, queue) = moderator.get("/api/admin/queue?status=all").await;
    assert_eq!(status, 200, "{queue}");
    assert!(queue.to_string().contains("rude"), "the report is in the queue: {queue}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_who_blocked_each_other_are_never_paired() {
    let node = node(0.2, 3600.0).await;
    let mut alice = person(&node, "alice").await;
    let mut bob = person(&node, "bob").await;
    let (status, body) = alice.api.post("/api/blocks", json!({"username": bob.api.username})).await;
    assert!(status < 300, "{status} {body}");
    alice.enter(&["go"], true).await;
    bob.enter(&["go"], true).await;
    let mut carol = person(&node, "carol").await;
    carol.enter(&["go"], true).await;
    let mc = carol.matched().await;
    // Carol is paired with one of them; the other keeps waiting for someone else.
    let mut dave = person(&node, "dave").await;
    dave.enter(&[], true).await;
    let md = dave.matched().await;
    let (ra, rb) = (room_of(&alice.matched().await), room_of(&bob.matched().await));
    assert_ne!(ra, rb, "blocked people were paired");
    let mut rooms = [room_of(&mc), room_of(&md)];
    rooms.sort();
    let mut theirs = [ra, rb];
    theirs.sort();
    assert_eq!(rooms, theirs);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() {
    let mut opts = NodeOpts::default();
    opts.args.stranger.stranger_enters_per_minute = Some(2);
    let node = TestNode::start(opts).await;
    let mut alice = person(&node, "alice").await;
    let eleven: Vec<String> = (0..11).map(|i| format!("tag{i}")).collect();
    alice.ws.send(json!({"type": "match", "interests": eleven})).await;
    alice.ws.expect_error("too_many_interests").await;
    alice.ws.send(json!({"type": "match", "interests": ["<script>"]})).await;
    alice.ws.expect_error("invalid").await;
    alice.ws.send(json!({"type": "match", "interests": ["x".repeat(33)]})).await;
    alice.ws.expect_error("invalid").await;
    alice.ws.send(json!({"type": "match", "interests": "cats"})).await;
    alice.ws.expect_error("bad_frame").await;
    alice.ws.send(json!({"type": "match", "colour": "red"})).await;
    alice.ws.expect_error("bad_frame").await;
    alice.ws.send(json!({"type": "stranger_report", "reason": "x"})).await;
    alice.ws.expect_error("no_stranger_chat").await;
    alice.ws.send(json!({"type": "stranger_block"})).await;
    alice.ws.expect_error("no_stranger_chat").await;
    // Unknown fields are refused on the field-less frames too (no user to name a stranger by).
    alice.ws.send(json!({"type": "stranger_block", "user": 7})).await;
    alice.ws.expect_error("bad_frame").await;
    alice.ws.send(json!({"type": "unmatch", "room": 1})).await;
    alice.ws.expect_error("bad_frame").await;
    // Entering is rate limited (sending `match` again while waiting is not entering again).
    for _ in 0..2 {
        assert_eq!(alice.enter(&["a"], false).await["type"], "waiting");
        assert_eq!(alice.enter(&["a"], false).await["type"], "waiting");
        alice.ws.send(json!({"type": "unmatch"})).await;
        alice.ws.recv_type("unmatched").await;
    }
    alice.ws.send(json!({"type": "match", "interests": ["a"]})).await;
    alice.ws.expect_error("rate_limited").await;
    // A muted user cannot enter.
    let mut bob = person(&node, "bob").await;
    let admin = confab_schemas::UserId(alice.api.user_id);
    let until = confab_schemas::now_ms() + 60_000;
    node.system().store().mute_user(confab_schemas::UserId(bob.api.user_id), admin, "test", until).await.unwrap();
    // What an admin's mute does on its node (other nodes read it within a second).
    node.system().room_mutes_changed();
    bob.ws.send(json!({"type": "match", "interests": ["a"]})).await;
    bob.ws.expect_error("muted").await;
    // The connection survived every refusal.
    alice.ws.ping().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_show_the_wait_and_who_waits_per_interest() {
    let node = node(10.0, 3600.0).await;
    let mut alice = person(&node, "alice").await;
    alice.enter(&["metrics"], false).await;
    let text = eventually("waiting per interest in /metrics", || async {
        let text = reqwest::get(format!("{}/metrics", node.base)).await.ok()?.text().await.ok()?;
        text.contains("confab_stranger_waiting_by_interest{interest=\"metrics\"} 1").then_some(text)
    })
    .await;
    assert!(text.contains("confab_stranger_waiting 1"), "{text}");
    let mut bob = person(&node, "bob").await;
    bob.enter(&["metrics"], false).await;
    bob.matched().await;
    eventually("the wait histogram", || async {
        let text = reqwest::get(format!("{}/metrics", node.base)).await.ok()?.text().await.ok()?;
        text.contains("confab_stranger_wait_seconds_count 2").then_some(())
    })
    .await;
    node.stop().await;
}

/// A node with the given pool settings (ticks of 50 ms).
async fn node_with(f: impl FnOnce(&mut confab::stranger_args::StrangerArgs)) -> TestNode {
    let mut opts = NodeOpts::default();
    opts.args.stranger.stranger_tick_ms = Some(50);
    f(&mut opts.args.stranger);
    TestNode::start(opts).await
}

/// Reads `ws` for `quiet`, asserting it is never told `matched`.
async fn never_matched(ws: &mut Ws, quiet: Duration, who: &str) {
    let until = std::time::Instant::now() + quiet;
    while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
        match ws.next_or_quiet(left).await {
            Ok(Some(f)) => assert_ne!(f["type"], "matched", "{who} was paired: {f}"),
            Ok(None) => panic!("{who}'s connection closed"),
            Err(()) => return,
        }
    }
}

/// Two people paired on `tag`.
async fn paired(node: &TestNode, tag: &str, fewer: bool) -> (Stranger, Stranger, Value, Value) {
    let mut a = person(node, "a").await;
    let mut b = person(node, "b").await;
    a.enter(&[tag], fewer).await;
    b.enter(&[tag], fewer).await;
    let (ma, mb) = (a.matched().await, b.matched().await);
    assert_eq!(room_of(&ma), room_of(&mb));
    (a, b, ma, mb)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_a_stranger_ends_the_chat_and_the_two_are_never_paired_again() {
    // People who talked are kept apart for 1 s only: what keeps these two apart is the block.
    let node = node_with(|s| {
        s.stranger_widen_secs = Some(0.2);
        s.stranger_avoid_secs = Some(1);
    })
    .await;
    let (mut alice, mut bob, ma, _) = paired(&node, "blocked", true).await;
    let room = room_of(&ma);
    bob.ws.join(room, None).await;
    alice.ws.send(json!({"type": "stranger_block"})).await;
    assert_eq!(room_of(&alice.ws.recv_type("unmatched").await), room);
    // Bob sees Stranger leave, nothing more; alice learns nothing of him either.
    let left = bob.ws.recv_where("stranger left", |f| f["type"] == "system" && f["event"]["op"] == "member_left").await;
    assert_eq!(left["event"]["user"]["username"], "Stranger", "{left}");
    let (status, blocks) = alice.api.get("/api/blocks").await;
    assert_eq!(status, 200, "{blocks}");
    assert!(!blocks.to_string().contains(&bob.api.username), "a stranger's block names nobody: {blocks}");
    // Out of the chat: a second block has nothing to block.
    alice.ws.send(json!({"type": "stranger_block"})).await;
    alice.ws.expect_error("no_stranger_chat").await;
    bob.ws.send(json!({"type": "unmatch"})).await;
    bob.ws.recv_type("unmatched").await;

    // A pair of control, paired after them: once they are paired again, the time that keeps
    // people who talked apart is over for alice and bob too.
    let (mut carol, mut dave, mc, _) = paired(&node, "control", false).await;
    for p in [&mut carol, &mut dave] {
        p.ws.send(json!({"type": "unmatch"})).await;
        p.ws.recv_type("unmatched").await;
    }
    alice.enter(&["blocked"], true).await;
    bob.enter(&["blocked"], true).await;
    carol.enter(&["control"], false).await;
    dave.enter(&["control"], false).await;
    let again = carol.matched().await;
    assert_ne!(room_of(&again), room_of(&mc));
    dave.matched().await;
    // Alice and bob are the only two waiting, with the same interest, accepting anyone: never
    // paired (the pool pairs every 50 ms).
    never_matched(&mut alice.ws, Duration::from_millis(1500), "alice").await;
    // Someone else with that interest is paired with one of them at once; the other still waits.
    let mut erin = person(&node, "erin").await;
    erin.enter(&["blocked"], false).await;
    let me = erin.matched().await;
    let store = node.system().store();
    let seat_a = store.stranger_seat(confab_schemas::UserId(alice.api.user_id)).await.unwrap().map(|c| c.room.0);
    let seat_b = store.stranger_seat(confab_schemas::UserId(bob.api.user_id)).await.unwrap().map(|c| c.room.0);
    let other = match (seat_a, seat_b) {
        (Some(r), None) if r == room_of(&me) => &mut bob,
        (None, Some(r)) if r == room_of(&me) => &mut alice,
        seats => panic!("erin's chat {} and the seats of alice and bob: {seats:?}", room_of(&me)),
    };
    never_matched(&mut other.ws, Duration::from_millis(500), "the one left").await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_keeps_its_place_in_the_queue_or_finds_its_chat() {
    let node = node_with(|s| {
        s.stranger_reconnect_grace_secs = Some(2.0);
        // The pool prunes every half second.
        s.stranger_retention_secs = Some(2.0);
    })
    .await;
    let store = node.system().store();
    let mut alice = person(&node, "alice").await;
    alice.enter(&["reconnect"], false).await;
    let uid = confab_schemas::UserId(alice.api.user_id);
    let entered = store.queue_entry(uid).await.unwrap().expect("alice waits").entered_at;
    alice.ws.close().await;
    eventually("alice's place detached", || async {
        store.queue_entry(uid).await.unwrap().filter(|e| e.session == 0).map(|_| ())
    })
    .await;
    // While she is away nobody is paired with her.
    let mut bob = person(&node, "bob").await;
    bob.enter(&["reconnect"], false).await;
    never_matched(&mut bob.ws, Duration::from_millis(500), "bob").await;
    // She comes back and asks where she was: told `waiting`, with her place, and paired with bob.
    let mut ws = alice.api.ws(&node.ws_url).await;
    ws.send(json!({"type": "stranger_resume"})).await;
    let waiting = ws.recv_where("waiting", |f| f["type"] == "waiting" || f["type"] == "matched").await;
    assert_eq!(waiting["type"], "waiting", "{waiting}");
    assert_eq!(waiting["interests"], json!(["reconnect"]));
    let m = ws.recv_type("matched").await;
    assert_eq!(room_of(&bob.matched().await), room_of(&m));
    let chat = store.stranger_chat(confab_schemas::RoomId(room_of(&m))).await.unwrap().expect("the chat");
    assert!(chat.created_at >= entered);
    // In a chat: a new connection that asks is told `matched` with it.
    ws.close().await;
    let mut ws = alice.api.ws(&node.ws_url).await;
    ws.send(json!({"type": "stranger_resume"})).await;
    let again = ws.recv_type("matched").await;
    assert_eq!((room_of(&again), &again["you"]), (room_of(&m), &m["you"]));
    ws.join(room_of(&m), None).await;

    // Two connections: the one that waits keeps the place when the other closes.
    let mut dave = person(&node, "dave").await;
    dave.enter(&["two tabs"], false).await;
    let mut second = dave.api.ws(&node.ws_url).await;
    second.send(json!({"type": "stranger_resume"})).await;
    assert_eq!(second.recv_type("waiting").await["interests"], json!(["two tabs"]));
    second.close().await;
    let did = confab_schemas::UserId(dave.api.user_id);
    eventually("dave's place with his first connection", || async {
        store.queue_entry(did).await.unwrap().filter(|e| e.session != 0).map(|_| ())
    })
    .await;
    let mut erin = person(&node, "erin").await;
    erin.enter(&["two tabs"], false).await;
    assert_eq!(room_of(&dave.matched().await), room_of(&erin.matched().await));

    // Past the grace the place is gone: a new connection that asks is told `unmatched`, and one
    // that does not ask is told nothing (the server looks nothing up for it).
    let mut carol = person(&node, "carol").await;
    carol.enter(&["lonely"], false).await;
    carol.ws.close().await;
    let cid = confab_schemas::UserId(carol.api.user_id);
    eventually("carol out of the queue", || async { store.queue_entry(cid).await.unwrap().is_none().then_some(()) })
        .await;
    let mut ws = carol.api.ws(&node.ws_url).await;
    ws.send(json!({"type": "stranger_resume"})).await;
    let none = ws
        .recv_where("unmatched", |f| ["unmatched", "waiting", "matched"].contains(&f["type"].as_str().unwrap_or("")))
        .await;
    assert_eq!(none, json!({"type": "unmatched"}));
    let mut quiet = alice.api.ws(&node.ws_url).await;
    quiet.ping().await;
    assert!(quiet.backlog.iter().all(|f| f["type"] != "waiting" && f["type"] != "matched"), "{:?}", quiet.backlog);
    node.stop().await;
}

/// Every user `v` names (an object with a `username`) is a stranger's alias.
fn assert_only_strangers(v: &Value, frame: &str) {
    match v {
        Value::Object(o) => {
            if o.contains_key("username") {
                assert_eq!(o["username"], "Stranger", "{frame}");
                assert!(o["id"].as_i64() < Some(0), "a user's own id in {frame}");
            }
            o.values().for_each(|v| assert_only_strangers(v, frame));
        }
        Value::Array(a) => a.iter().for_each(|v| assert_only_strangers(v, frame)),
        _ => {}
    }
}

/// Every frame `ws` still has (backlog and socket, until quiet for 300 ms).
async fn drain(ws: &mut Ws) -> Vec<Value> {
    let mut out = Vec::new();
    while let Ok(Some(f)) = ws.next_or_quiet(Duration::from_millis(300)).await {
        out.push(f);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_deletes_typing_and_reads_in_a_stranger_chat_name_nobody() {
    let node = node(10.0, 3600.0).await;
    let (mut alice, mut bob, ma, mb) = paired(&node, "edits", false).await;
    let room = room_of(&ma);
    alice.ws.join(room, None).await;
    bob.ws.join(room, None).await;
    let mut seen = Vec::new();
    alice.ws.send(json!({"type": "send", "room": room, "cid": "a1", "body": "helo"})).await;
    let seq = alice.ws.recv_type("ack").await["seq"].as_u64().unwrap();
    seen.push(bob.ws.recv_where("the message", |f| f["type"] == "message" && f["room"] == room).await);
    alice.ws.send(json!({"type": "edit", "room": room, "seq": seq, "body": "hello", "cid": "e1"})).await;
    let edited = bob.ws.recv_where("the edit", |f| f["type"] == "edited").await;
    assert_eq!((edited["target"].as_u64(), edited["body"].as_str()), (Some(seq), Some("hello")), "{edited}");
    assert_eq!(edited["from"], ma["you"], "{edited}");
    seen.push(edited);
    // Bob can neither edit nor delete the stranger's message.
    bob.ws.send(json!({"type": "edit", "room": room, "seq": seq, "body": "mine now", "cid": "b1"})).await;
    assert_eq!(bob.ws.recv_where("the refusal", |f| f["type"] == "error").await["ref"], "b1");
    bob.ws.send(json!({"type": "delete", "room": room, "seq": seq, "cid": "b2"})).await;
    assert_eq!(bob.ws.recv_where("the refusal", |f| f["type"] == "error").await["ref"], "b2");
    bob.ws.send(json!({"type": "typing", "room": room, "on": true})).await;
    let typing = alice.ws.recv_type("typing").await;
    assert_eq!(typing["user"], mb["you"], "{typing}");
    seen.push(typing);
    bob.ws.send(json!({"type": "read", "room": room, "seq": seq})).await;
    alice.ws.send(json!({"type": "delete", "room": room, "seq": seq, "cid": "d1"})).await;
    let deleted = bob.ws.recv_where("the delete", |f| f["type"] == "deleted").await;
    assert_eq!((deleted["target"].as_u64(), &deleted["by"]), (Some(seq), &ma["you"]), "{deleted}");
    seen.push(deleted);
    // History as either side reads it: the edit and the delete are Stranger's.
    let (status, history) = bob.api.get(&format!("/api/rooms/{room}/messages")).await;
    assert_eq!(status, 200, "{history}");
    seen.push(history);
    seen.extend(drain(&mut alice.ws).await);
    seen.extend(drain(&mut bob.ws).await);
    for f in &seen {
        let text = f.to_string();
        for api in [&alice.api, &bob.api] {
            assert!(!text.contains(&api.username), "{} named in {text}", api.username);
        }
        assert_only_strangers(f, &text);
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sites_automatic_flags_apply_in_a_stranger_chat_and_keep_it_for_moderators() {
    let node = node(10.0, 1.0).await;
    let admin = node.user_with_role("admin", confab_schemas::Role::Admin).await;
    let words = json!({"flags": {"banned_words": {"words": ["scam"], "action": "refuse"}}});
    let (status, body) = admin.call(reqwest::Method::PUT, "/api/admin/moderation", Some(words)).await;
    assert_eq!(status, 200, "{body}");
    let (mut alice, mut bob, ma, _) = paired(&node, "flags", false).await;
    let room = room_of(&ma);
    alice.ws.join(room, None).await;
    bob.ws.join(room, None).await;
    alice.ws.send(json!({"type": "send", "room": room, "cid": "s1", "body": "a SCAM for you"})).await;
    let refused = alice.ws.recv_where("the refusal", |f| f["type"] == "error" || f["type"] == "ack").await;
    assert_eq!((refused["code"].as_str(), refused["ref"].as_str()), (Some("banned_word"), Some("s1")), "{refused}");
    // Held instead, with the hold action: the stranger never sees it.
    let hold = json!({"flags": {"banned_words": {"words": ["scam"], "action": "hold"}}});
    let (status, body) = admin.call(reqwest::Method::PUT, "/api/admin/moderation", Some(hold)).await;
    assert_eq!(status, 200, "{body}");
    alice.ws.send(json!({"type": "send", "room": room, "cid": "s2", "body": "another scam"})).await;
    let held = alice.ws.recv_where("the hold", |f| f["type"] == "held" || f["type"] == "error").await;
    assert_eq!(held["type"], "held", "{held}");
    alice.ws.send(json!({"type": "send", "room": room, "cid": "s3", "body": "fine words"})).await;
    let got = bob.ws.recv_where("a message", |f| f["type"] == "message").await;
    assert_eq!(got["body"], "fine words", "the flagged ones never reached the stranger: {got}");
    // Both go to the moderators, like a report.
    let (status, queue) = admin.get("/api/admin/queue?status=all").await;
    assert_eq!(status, 200, "{queue}");
    let text = queue.to_string();
    assert!(text.contains("a SCAM for you") && text.contains("another scam"), "{text}");
    // Both leave: the flagged chat is kept, while another chat both left is deleted.
    let (mut carol, mut dave, mc, _) = paired(&node, "unflagged", false).await;
    for p in [&mut alice, &mut bob, &mut carol, &mut dave] {
        p.ws.send(json!({"type": "unmatch"})).await;
        p.ws.recv_type("unmatched").await;
    }
    let store = node.system().store();
    eventually("the unflagged chat deleted", || async {
        store.room_by_id(confab_schemas::RoomId(room_of(&mc))).await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(store.room_by_id(confab_schemas::RoomId(room)).await.unwrap().is_some(), "the flagged chat is kept");
    node.stop().await;
}
