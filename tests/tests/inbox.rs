//! The per-user inbox: one sequence per user, joined like a room, that tells every session of
//! the user what happens to their rooms when they are not looking: added to or removed from a
//! room, mentions, a new public room, and (coalesced, not stored) each room's new head, message
//! count and newest message. Runs on SQLite, and on PostgreSQL when
//! `CONFAB_TEST_DATABASE_URL` is set.

use confab_tests::{Api, NodeOpts, TestNode, Ws, eventually, unique};
use serde_json::{Value, json};
use std::collections::HashMap;

fn inbox(user: &Api) -> i64 {
    -user.user_id
}

/// The next inbox event (a `system` frame of the inbox) with this op.
async fn inbox_event(ws: &mut Ws, user: &Api, op: &str) -> Value {
    let room = inbox(user);
    ws.recv_where(op, |f| f["type"] == "system" && f["room"] == room && f["event"]["op"] == op).await
}

async fn send(ws: &mut Ws, room: i64, cid: &str, body: &str) -> u64 {
    ws.send(json!({"type": "send", "room": room, "cid": cid, "body": body})).await;
    let ack = ws.recv_where("ack", |f| (f["type"] == "ack" || f["type"] == "error") && f["cid"] == cid).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    ack["seq"].as_u64().unwrap()
}

/// The rooms of `user`'s list by id, every page.
async fn listing(user: &Api) -> HashMap<i64, Value> {
    let mut out = HashMap::new();
    let mut path = "/api/rooms?limit=500".to_owned();
    loop {
        let (status, body) = user.get(&path).await;
        assert_eq!(status, 200, "{body}");
        out.extend(body["rooms"].as_array().unwrap().iter().map(|r| (r["id"].as_i64().unwrap(), r.clone())));
        let Some(next) = body["next"].as_i64() else { return out };
        path = format!("/api/rooms?limit=500&after={next}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_tells_a_user_about_rooms_mentions_and_activity() {
    let node = TestNode::start(NodeOpts::default()).await;
    let (alice, bob) = (node.user(&unique("alice")).await, node.user(&unique("bob")).await);
    let (_, me) = bob.get("/api/me").await;
    assert_eq!(me["inbox"].as_i64(), Some(inbox(&bob)), "{me}");
    let mut wb = bob.ws(&node.ws_url).await;
    let joined = wb.join(inbox(&bob), None).await;
    assert_eq!(joined["head"], 0, "a new inbox is empty: {joined}");
    let mut wa = alice.ws(&node.ws_url).await;

    // Nobody else joins, writes to or manages someone's inbox.
    wa.send(json!({"type": "join", "room": inbox(&bob)})).await;
    let refused = wa.recv_type("error").await;
    assert_eq!(refused["code"], "not_member", "{refused}");
    wb.send(json!({"type": "send", "room": inbox(&bob), "cid": "x", "body": "hi"})).await;
    let refused = wb.recv_where("refusal", |f| f["type"] == "error" && f["ref"] == "x").await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    let (status, _) = bob.call(reqwest::Method::DELETE, &format!("/api/rooms/{}", inbox(&bob)), None).await;
    assert_eq!(status, 404);
    assert!(listing(&bob).await.keys().all(|id| *id > 0), "an inbox is not in the room list");

    // Invited to a private room: it appears in the inbox, live.
    let private = alice.create_room(&unique("secret"), "private").await;
    let (status, body) = alice.post(&format!("/api/rooms/{private}/members"), json!({"username": bob.username})).await;
    assert_eq!(status, 204, "{body}");
    let added = inbox_event(&mut wb, &bob, "room_added").await;
    assert_eq!(added["event"]["room"].as_i64(), Some(private), "{added}");
    assert_eq!(added["event"]["visibility"], "private");
    assert_eq!(added["by"]["id"], alice.user_id);
    let added_seq = added["seq"].as_u64().unwrap();

    // A new public room reaches every connected session.
    let public = alice.create_room(&unique("plaza"), "public").await;
    let created = wb.recv_type("room_created").await;
    assert_eq!(created["room"]["id"].as_i64(), Some(public), "{created}");
    assert_eq!(created["room"]["visibility"], "public");

    // Alice talks in the private room, which Bob is not viewing: a mention reaches his inbox,
    // and the room's activity (head, count, newest message) comes coalesced.
    wa.join(private, None).await;
    send(&mut wa, private, "a1", "hello there").await;
    let seq = send(&mut wa, private, "a2", &format!("@{} look at this", bob.username)).await;
    send(&mut wa, private, "a3", &format!("mail {}@example.org is not a mention", bob.username)).await;
    let mention = inbox_event(&mut wb, &bob, "mention").await;
    assert_eq!((mention["event"]["room"].as_i64(), mention["event"]["target"].as_u64()), (Some(private), Some(seq)));
    assert_eq!(mention["event"]["from"]["username"], alice.username.as_str());
    assert!(mention["event"]["excerpt"].as_str().unwrap().contains("look at this"), "{mention}");
    let mut counted = 0;
    let last = loop {
        let a = wb.recv_where("activity", |f| f["type"] == "activity" && f["room"].as_i64() == Some(private)).await;
        counted += a["messages"].as_u64().unwrap();
        if a["head"].as_u64() >= Some(seq + 1) {
            break a;
        }
    };
    assert_eq!(counted, 3, "three messages since the member was added: {last}");
    assert!(last["last"]["body"].as_str().unwrap().contains("is not a mention"), "{last}");

    // The room list agrees: unread counts messages only (not the member_added event), mentions
    // apart; reading clears both.
    let list = listing(&bob).await;
    let row = &list[&private];
    assert_eq!((row["unread"].as_u64(), row["mentions"].as_u64()), (Some(3), Some(1)), "{row}");
    wb.join(private, None).await;
    wb.send(json!({"type": "read", "room": private, "seq": seq})).await;
    let row = eventually("the read cursor", || async {
        let row = listing(&bob).await.remove(&private)?;
        (row["read_seq"].as_u64() == Some(seq)).then_some(row)
    })
    .await;
    assert_eq!((row["unread"].as_u64(), row["mentions"].as_u64()), (Some(1), Some(0)), "{row}");

    // A second session resumes the inbox with `since` and gets exactly what came after.
    let mut wb2 = bob.ws(&node.ws_url).await;
    wb2.join(inbox(&bob), Some(added_seq)).await;
    let replayed = inbox_event(&mut wb2, &bob, "mention").await;
    assert_eq!(replayed["seq"], mention["seq"]);

    // Leaving and being removed take rooms out of the list, through the inbox.
    let (status, _) = bob.post(&format!("/api/rooms/{private}/leave"), json!({})).await;
    assert_eq!(status, 204);
    let removed = inbox_event(&mut wb, &bob, "room_removed").await;
    assert_eq!((removed["event"]["room"].as_i64(), removed["event"]["reason"].as_str()), (Some(private), Some("left")));
    let again = inbox_event(&mut wb2, &bob, "room_removed").await;
    assert_eq!(again["seq"], removed["seq"], "every session of the user gets it");
    let (status, _) = alice.post(&format!("/api/rooms/{private}/members"), json!({"username": bob.username})).await;
    assert_eq!(status, 204);
    inbox_event(&mut wb, &bob, "room_added").await;
    let (status, _) =
        alice.call(reqwest::Method::DELETE, &format!("/api/rooms/{private}/members/{}", bob.user_id), None).await;
    assert_eq!(status, 204);
    let removed = inbox_event(&mut wb, &bob, "room_removed").await;
    assert_eq!(removed["event"]["reason"], "removed", "{removed}");

    // A deleted private room leaves its members' lists; a deleted public room every session's.
    let doomed = alice.create_room(&unique("doomed"), "private").await;
    alice.post(&format!("/api/rooms/{doomed}/members"), json!({"username": bob.username})).await;
    inbox_event(&mut wb, &bob, "room_added").await;
    let (status, _) = alice.call(reqwest::Method::DELETE, &format!("/api/rooms/{doomed}"), None).await;
    assert_eq!(status, 204);
    let removed = inbox_event(&mut wb, &bob, "room_removed").await;
    assert_eq!(
        (removed["event"]["room"].as_i64(), removed["event"]["reason"].as_str()),
        (Some(doomed), Some("deleted"))
    );
    let (status, _) = alice.call(reqwest::Method::DELETE, &format!("/api/rooms/{public}"), None).await;
    assert_eq!(status, 204);
    let gone =
        wb.recv_where("room_deleted", |f| f["type"] == "room_deleted" && f["room"].as_i64() == Some(public)).await;
    assert_eq!(gone["room"].as_i64(), Some(public));
    node.stop().await;
}

/// A user in 500 rooms follows all of them over one socket joined to nothing but the inbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_in_500_rooms_gets_live_unread_counts_on_one_socket() {
    const ROOMS: usize = 500;
    let node = TestNode::start(NodeOpts::default()).await;
    let (alice, bob) = (node.user(&unique("alice")).await, node.user(&unique("bob")).await);
    let mut rooms = Vec::with_capacity(ROOMS);
    for i in 0..ROOMS {
        let room = alice.create_room(&format!("{}-{i}", unique("many")), "private").await;
        let (status, _) = alice.post(&format!("/api/rooms/{room}/members"), json!({"username": bob.username})).await;
        assert_eq!(status, 204);
        rooms.push(room);
    }
    let mut wb = bob.ws(&node.ws_url).await;
    wb.join(inbox(&bob), None).await;
    // Alice writes once in every room, from sockets of at most 100 rooms each.
    for chunk in rooms.chunks(100) {
        let mut wa = alice.ws(&node.ws_url).await;
        for room in chunk {
            wa.join(*room, None).await;
        }
        for room in chunk {
            send(&mut wa, *room, &format!("m{room}"), "news").await;
        }
        wa.close().await;
    }
    let mut heads: HashMap<i64, u64> = HashMap::new();
    while heads.len() < ROOMS || heads.values().any(|h| *h < 2) {
        let a = wb.recv_type("activity").await;
        let head = a["head"].as_u64().unwrap();
        let e = heads.entry(a["room"].as_i64().unwrap()).or_default();
        *e = (*e).max(head);
    }
    assert!(rooms.iter().all(|r| heads[r] == 2), "each room: member_added, then the message");
    let list = listing(&bob).await;
    assert!(rooms.iter().all(|r| list[r]["unread"] == 1), "one unread message in each of the {ROOMS} rooms");
    println!("{ROOMS} rooms followed over one socket: an activity frame for each");
    node.stop().await;
}
