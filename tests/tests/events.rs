//! A room is a sequence of events: messages, edits and deletes each take the next seq, are
//! durable before every member gets them, fold into REST history (latest edit, tombstones), and
//! replay with `since` so that a client that comes back folds to the same history. Runs on SQLite,
//! and on PostgreSQL when `CONFAB_TEST_DATABASE_URL` is set.

use confab_tests::history::{fold, rest_history};
use confab_tests::{NodeOpts, TestNode, Ws, unique};
use serde_json::{Value, json};

/// Sends `frame` and returns the answer for its cid: the `ack` or the `error`.
async fn act(ws: &mut Ws, frame: Value) -> Value {
    let cid = frame["cid"].clone();
    ws.send(frame).await;
    ws.recv_where("an answer", |f| (f["type"] == "ack" && f["cid"] == cid) || (f["type"] == "error" && f["ref"] == cid))
        .await
}

async fn send(ws: &mut Ws, room: i64, cid: &str, body: &str) -> u64 {
    let ack = act(ws, json!({"type": "send", "room": room, "cid": cid, "body": body})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    ack["seq"].as_u64().unwrap()
}

async fn refused(ws: &mut Ws, frame: Value, code: &str) {
    let answer = act(ws, frame.clone()).await;
    assert_eq!((answer["type"].as_str(), answer["code"].as_str()), (Some("error"), Some(code)), "{frame} → {answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_deletes_are_events_that_fold_into_history() {
    let node = TestNode::start(NodeOpts::default()).await;
    let (owner, bob) = (node.user(&unique("own")).await, node.user(&unique("bob")).await);
    let room = owner.create_room(&unique("events"), "public").await;
    let mut wo = owner.ws(&node.ws_url).await;
    wo.join(room, None).await;
    let mut wb = bob.ws(&node.ws_url).await;
    wb.join(room, None).await;

    let first = send(&mut wo, room, "o1", "first words").await;
    let second = send(&mut wb, room, "b1", "bob says").await;
    // The author edits: an event with its own seq, to every member; a resend of the same cid is
    // the same edit.
    let edit = json!({"type": "edit", "room": room, "seq": first, "body": "first words, edited", "cid": "e1"});
    let ack = act(&mut wo, edit.clone()).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let edit_seq = ack["seq"].as_u64().unwrap();
    assert_eq!(edit_seq, second + 1);
    let seen = wb.recv_type("edited").await;
    assert_eq!((seen["seq"].as_u64(), seen["target"].as_u64()), (Some(edit_seq), Some(first)));
    assert_eq!(seen["body"], "first words, edited");
    assert_eq!(seen["from"]["id"], owner.user_id);
    let again = act(&mut wo, edit).await;
    assert_eq!(again["seq"].as_u64(), Some(edit_seq), "the same cid, the same edit");

    // What may not be done, each with its code.
    let long = "x".repeat(4001);
    refused(&mut wb, json!({"type": "edit", "room": room, "seq": first, "body": "mine now", "cid": "x1"}), "forbidden")
        .await;
    refused(&mut wb, json!({"type": "edit", "room": room, "seq": 999, "body": "where", "cid": "x2"}), "not_found")
        .await;
    refused(&mut wb, json!({"type": "edit", "room": room, "seq": second, "body": "  ", "cid": "x3"}), "empty_body")
        .await;
    refused(&mut wb, json!({"type": "edit", "room": room, "seq": second, "body": long, "cid": "x4"}), "too_long").await;
    refused(&mut wb, json!({"type": "delete", "room": room, "seq": first, "cid": "x5"}), "forbidden").await;
    refused(
        &mut wo,
        json!({"type": "edit", "room": room, "seq": edit_seq, "body": "an edit of an edit", "cid": "x6"}),
        "invalid",
    )
    .await;
    refused(&mut wb, json!({"type": "delete", "room": room, "seq": 0, "cid": "x7"}), "not_found").await;
    // The room's owner deletes anyone's message; then it cannot be edited or deleted again.
    let del = act(&mut wo, json!({"type": "delete", "room": room, "seq": second, "cid": "d1"})).await;
    assert_eq!(del["type"], "ack", "{del}");
    let gone = wb.recv_type("deleted").await;
    assert_eq!((gone["target"].as_u64(), gone["by"]["id"].as_i64()), (Some(second), Some(owner.user_id)));
    refused(&mut wb, json!({"type": "edit", "room": room, "seq": second, "body": "undo", "cid": "x8"}), "gone").await;
    refused(&mut wo, json!({"type": "delete", "room": room, "seq": second, "cid": "x9"}), "gone").await;
    // An edit without a cid works too (it is then not idempotent).
    let third = send(&mut wb, room, "b2", "typo here").await;
    let ack = act(&mut wb, json!({"type": "edit", "room": room, "seq": third, "body": "no typo", "cid": "e2"})).await;
    assert_eq!(ack["type"], "ack");
    wb.send(json!({"type": "edit", "room": room, "seq": third, "body": "no typo at all"})).await;
    wo.recv_where("the cid-less edit", |f| f["type"] == "edited" && f["body"] == "no typo at all").await;
    // The author deletes their edited message: the body and the edits' bodies leave storage.
    let ack = act(&mut wo, json!({"type": "delete", "room": room, "seq": first, "cid": "d2"})).await;
    assert_eq!(ack["type"], "ack");
    wb.recv_where("the delete", |f| f["type"] == "deleted" && f["target"] == first).await;
    let store = node.system().store();
    for seq in [first, edit_seq] {
        let rows = store.messages_between(confab_schemas::RoomId(room), seq, seq, 1).await.unwrap();
        assert_eq!(&*rows[0].body, "", "seq {seq}: the body is gone from storage");
    }
    let rows = store.messages_between(confab_schemas::RoomId(room), third, third, 1).await.unwrap();
    assert_eq!(&*rows[0].body, "typo here", "an edit is a later event: the message row keeps its words");

    // REST folds: latest edit in, deletes as tombstones, and the events of every page.
    let (folded, events, _) = rest_history(&owner, room, 3).await;
    assert_eq!(folded[&first], (String::new(), false, true), "a tombstone: no body, no edit mark");
    assert_eq!(folded[&second], (String::new(), false, true));
    assert_eq!(folded[&third], ("no typo at all".to_owned(), true, false));
    assert_eq!(folded.len(), 3, "only messages are messages: {folded:?}");
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["edited", "deleted", "edited", "edited", "deleted"]);
    assert!(events.iter().all(|e| e["type"] != "edited" || e["target"] != first || e["body"] == ""), "{events:?}");

    // A client that comes back with `since` folds to the same history as REST; so does one from 0.
    for since in [0, second] {
        let mut wc = bob.ws(&node.ws_url).await;
        wc.join(room, Some(since)).await;
        wc.ping().await;
        let mut frames = Vec::new();
        while let Ok(Some(f)) = wc.next_or_quiet(std::time::Duration::from_millis(300)).await {
            frames.push(f);
        }
        // What the client had at `since`: the first two messages as they were then.
        let mut base: Vec<Value> = Vec::new();
        if since != 0 {
            base.push(json!({"type": "message", "room": room, "seq": first, "body": "first words"}));
            base.push(json!({"type": "message", "room": room, "seq": second, "body": "bob says"}));
        }
        base.extend(frames);
        let mine = fold(&base, room);
        assert_eq!(mine, folded, "resumed from {since}");
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderators_and_admins_delete_any_message_and_others_do_not() {
    let node = TestNode::start(NodeOpts::default()).await;
    let (author, admin, other) =
        (node.user(&unique("au")).await, node.user(&unique("adm")).await, node.user(&unique("oth")).await);
    let store = node.system().store();
    store.set_user_role(confab_schemas::UserId(admin.user_id), confab_schemas::Role::Admin).await.unwrap();
    let general = author.room_id("general").await;
    let mut wa = author.ws(&node.ws_url).await;
    wa.join(general, None).await;
    let seq = send(&mut wa, general, "a1", "delete me if you can").await;
    let mut wo = other.ws(&node.ws_url).await;
    wo.join(general, None).await;
    refused(&mut wo, json!({"type": "delete", "room": general, "seq": seq, "cid": "o1"}), "forbidden").await;
    let mut wm = admin.ws(&node.ws_url).await;
    wm.join(general, None).await;
    let ack = act(&mut wm, json!({"type": "delete", "room": general, "seq": seq, "cid": "m1"})).await;
    assert_eq!(ack["type"], "ack", "an admin deletes: {ack}");
    let seen = wa.recv_where("the delete", |f| f["type"] == "deleted" && f["target"] == seq).await;
    assert_eq!(seen["by"]["id"], admin.user_id);
    node.stop().await;
}

/// The next `system` event `op` of `room` on `ws` (others stay in the backlog).
async fn system_event(ws: &mut Ws, room: i64, op: &str) -> Value {
    ws.recv_where(op, |f| f["type"] == "system" && f["room"] == room && f["event"]["op"] == op).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_changes_are_system_events_of_the_sequence() {
    use reqwest::Method;
    let node = TestNode::start(NodeOpts::default()).await;
    let (alice, bob, carol) =
        (node.user(&unique("al")).await, node.user(&unique("bo")).await, node.user(&unique("ca")).await);
    let room = alice.create_room(&unique("club"), "private").await;
    let mut wa = alice.ws(&node.ws_url).await;
    wa.join(room, None).await;
    for who in [&bob, &carol] {
        let (status, v) = alice.post(&format!("/api/rooms/{room}/members"), json!({"username": who.username})).await;
        assert_eq!(status, 204, "{v}");
        let added = system_event(&mut wa, room, "member_added").await;
        assert_eq!(added["event"]["user"]["id"], who.user_id);
        assert_eq!(added["by"]["id"], alice.user_id);
    }
    let (mut wb, mut wc) = (bob.ws(&node.ws_url).await, carol.ws(&node.ws_url).await);
    wb.join(room, None).await;
    wc.join(room, None).await;

    // Only the owner (or an admin) renames, describes, removes and hands over.
    let patch = |api: &confab_tests::Api, body: Value| {
        let api = api.clone();
        async move { api.call(Method::PATCH, &format!("/api/rooms/{room}"), Some(body)).await }
    };
    assert_eq!(patch(&bob, json!({"name": "mine"})).await.0, 403);
    let (status, v) = patch(&alice, json!({"name": "The Club", "description": "members only"})).await;
    assert_eq!((status, v["name"].as_str()), (200, Some("The Club")), "{v}");
    for ws in [&mut wa, &mut wb, &mut wc] {
        assert_eq!(system_event(ws, room, "renamed").await["event"]["name"], "The Club");
        assert_eq!(system_event(ws, room, "described").await["event"]["description"], "members only");
    }
    assert_eq!(patch(&alice, json!({"name": "bad\u{202E}name"})).await.0, 400);
    let (status, _) = alice.post(&format!("/api/rooms/{room}/leave"), json!({})).await;
    assert_eq!(status, 409, "the owner hands the room over before leaving");

    // The owner removes carol: she gets the event, then nothing more of the room.
    let (status, _) = alice.call(Method::DELETE, &format!("/api/rooms/{room}/members/{}", carol.user_id), None).await;
    assert_eq!(status, 204);
    let removed = system_event(&mut wc, room, "member_removed").await;
    assert_eq!(removed["event"]["user"]["id"], carol.user_id);
    wc.recv_where("left", |f| f["type"] == "left" && f["room"] == room).await;
    refused(&mut wc, json!({"type": "send", "room": room, "cid": "c1", "body": "still here?"}), "not_joined").await;
    assert_eq!(carol.get(&format!("/api/rooms/{room}")).await.0, 403, "a private room is closed to a removed member");
    system_event(&mut wb, room, "member_removed").await;

    // Alice hands the room to bob, then leaves it.
    let (status, v) = alice.post(&format!("/api/rooms/{room}/owner"), json!({"username": bob.username})).await;
    assert_eq!((status, v["owner_id"].as_i64()), (200, Some(bob.user_id)), "{v}");
    assert_eq!(system_event(&mut wb, room, "owner_changed").await["event"]["owner"]["id"], bob.user_id);
    let (status, _) = alice.post(&format!("/api/rooms/{room}/leave"), json!({})).await;
    assert_eq!(status, 204);
    assert_eq!(system_event(&mut wb, room, "member_left").await["event"]["user"]["id"], alice.user_id);
    let sent = send(&mut wb, room, "b1", "just me now").await;
    wb.ping().await;
    // Alice got her own leave, then `left`, and not bob's message.
    system_event(&mut wa, room, "member_left").await;
    wa.recv_where("left", |f| f["type"] == "left" && f["room"] == room).await;
    wa.ping().await;
    assert!(!wa.backlog.iter().any(|f| f["seq"] == sent), "a member who left got a later message");

    // Every change is in the room's history, in order.
    let (status, v) = bob.get(&format!("/api/rooms/{room}/messages?after=0&limit=100")).await;
    assert_eq!(status, 200);
    let ops: Vec<&str> = v["events"].as_array().unwrap().iter().filter_map(|e| e["event"]["op"].as_str()).collect();
    assert_eq!(
        ops,
        ["member_added", "member_added", "renamed", "described", "member_removed", "owner_changed", "member_left"]
    );
    // `general` belongs to the system.
    let general = bob.room_id("general").await;
    let (_, g) = bob.get(&format!("/api/rooms/{general}")).await;
    assert_eq!(g["system"], true, "{g}");
    assert_eq!(patch(&bob, json!({"name": "x"})).await.0, 200, "bob owns his room");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_room_takes_its_history_with_it() {
    use reqwest::Method;
    let node = TestNode::start(NodeOpts::default()).await;
    let (owner, guest) = (node.user(&unique("ow")).await, node.user(&unique("gu")).await);
    let room = owner.create_room(&unique("doomed"), "public").await;
    let mut wg = guest.ws(&node.ws_url).await;
    wg.join(room, None).await;
    send(&mut wg, room, "g1", "soon gone").await;
    assert_eq!(guest.call(Method::DELETE, &format!("/api/rooms/{room}"), None).await.0, 403, "not the owner's");
    let general = owner.room_id("general").await;
    assert_eq!(owner.call(Method::DELETE, &format!("/api/rooms/{general}"), None).await.0, 403);
    assert_eq!(owner.call(Method::DELETE, &format!("/api/rooms/{room}"), None).await.0, 204);
    let gone = wg.recv_where("room_deleted", |f| f["type"] == "room_deleted").await;
    assert_eq!(gone["room"], room);
    refused(&mut wg, json!({"type": "send", "room": room, "cid": "g2", "body": "hello?"}), "unknown_room").await;
    assert_eq!(guest.get(&format!("/api/rooms/{room}")).await.0, 404);
    assert_eq!(guest.get(&format!("/api/rooms/{room}/messages")).await.0, 404);
    let rows = node.system().store().messages_between(confab_schemas::RoomId(room), 1, 100, 100).await.unwrap();
    assert!(rows.is_empty(), "the history went with the room");
    node.stop().await;
}

/// Edits, deletes and system events across kills of the room's actor (and of the watcher's
/// inbox): a member who stays joined sees every event once, in order, and folds to REST's
/// history; inbox events keep coming after the inbox's actor is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_survive_room_actor_kills() {
    let node = TestNode::start(NodeOpts::default()).await;
    let (owner, bob) = (node.user(&unique("own")).await, node.user(&unique("bob")).await);
    let room = owner.create_room(&unique("kills"), "private").await;
    let mut wo = owner.ws(&node.ws_url).await;
    wo.join(room, None).await;
    let mut wb = bob.ws(&node.ws_url).await;
    let inbox = -bob.user_id;
    wb.join(inbox, None).await;
    let (status, _) = owner.post(&format!("/api/rooms/{room}/members"), json!({"username": bob.username})).await;
    assert_eq!(status, 204);
    wb.recv_where("room_added", |f| f["room"] == inbox && f["event"]["op"] == "room_added").await;
    wb.join(room, Some(0)).await;
    let mut seqs = Vec::new();
    for i in 0..6 {
        seqs.push(send(&mut wo, room, &format!("m{i}"), &format!("message {i}")).await);
    }
    assert!(node.system().kill_room(confab_schemas::RoomId(room)).await);
    let ack =
        act(&mut wo, json!({"type": "edit", "room": room, "seq": seqs[0], "body": "edited 0", "cid": "e0"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert!(node.system().kill_room(confab_schemas::RoomId(room)).await);
    let ack = act(&mut wo, json!({"type": "delete", "room": room, "seq": seqs[1], "cid": "d1"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let (status, _) = owner
        .call(reqwest::Method::PATCH, &format!("/api/rooms/{room}"), Some(json!({"name": unique("renamed")})))
        .await;
    assert_eq!(status, 200);
    assert!(node.system().kill_room(confab_schemas::RoomId(room)).await);
    let ack =
        act(&mut wo, json!({"type": "edit", "room": room, "seq": seqs[2], "body": "edited 2", "cid": "e2"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    // The same edit again after a kill is the same edit.
    assert!(node.system().kill_room(confab_schemas::RoomId(room)).await);
    let again =
        act(&mut wo, json!({"type": "edit", "room": room, "seq": seqs[2], "body": "edited 2", "cid": "e2"})).await;
    assert_eq!(again["seq"], ack["seq"]);
    let mention = send(&mut wo, room, "m-last", &format!("done, @{}", bob.username)).await;

    // Bob, joined throughout, saw every event once and in order.
    let (rest, _, head) = rest_history(&owner, room, 100).await;
    let mut frames = Vec::new();
    let mut last = 0;
    while last < head {
        let f = wb.recv_where("an event", |f| f["room"] == room && f["seq"].is_u64()).await;
        let seq = f["seq"].as_u64().unwrap();
        assert_eq!(seq, last + 1, "a gap or a duplicate: {f}");
        last = seq;
        frames.push(f);
    }
    assert_eq!(fold(&frames, room), rest, "the member who stayed folds to REST's history");
    assert!(frames.iter().any(|f| f["type"] == "system" && f["event"]["op"] == "renamed"));

    // The inbox: killed, restarted with its subscriber, and the mention still arrives once.
    // (The inbox may be between a kill and its restart, or running: either way nothing is lost.)
    node.system().kill_room(confab_schemas::RoomId(inbox)).await;
    let m = wb.recv_where("mention", |f| f["room"] == inbox && f["event"]["op"] == "mention").await;
    assert_eq!(m["event"]["target"].as_u64(), Some(mention));
    let (status, _) = owner.post(&format!("/api/rooms/{room}/members"), json!({"username": bob.username})).await;
    assert_eq!(status, 204, "adding an existing member again is no new event");
    assert!(node.system().kill_room(confab_schemas::RoomId(inbox)).await);
    let (status, _) =
        owner.call(reqwest::Method::DELETE, &format!("/api/rooms/{room}/members/{}", bob.user_id), None).await;
    assert_eq!(status, 204);
    let removed = wb.recv_where("room_removed", |f| f["room"] == inbox && f["event"]["op"] == "room_removed").await;
    assert_eq!(removed["seq"].as_u64(), Some(m["seq"].as_u64().unwrap() + 1), "the inbox's sequence has no gap");
    node.stop().await;
}
