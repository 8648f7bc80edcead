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
