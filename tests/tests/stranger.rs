//! Talk to a stranger on one node: matching by shared interests (the most shared first,
//! widening for those who accept fewer), the chat as a room where each side is only "Stranger",
//! "next", leaving, a report that keeps its chat while others are deleted on time, blocks, and
//! every refusal. Runs on SQLite, and on PostgreSQL when `CONFAB_TEST_DATABASE_URL` is set. The
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
    let again = alice.ws.recv_where("the answer", |f| f["type"] == "matched" || f["type"] == "waiting").await;
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
