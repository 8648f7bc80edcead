//! Direct messages, people and blocking on one node: opening a conversation (idempotent, group
//! conversations, every refusal), its place in each member's list through the inbox, the people
//! directory and profiles with presence, and what a block refuses. Runs on SQLite, and on
//! PostgreSQL when `CONFAB_TEST_DATABASE_URL` is set. The cluster side is in `cluster_dms.rs`.

use confab_tests::{Api, NodeOpts, TestNode, Ws, eventually, unique};
use reqwest::Method;
use serde_json::{Value, json};

async fn open_dm(user: &Api, with: &[&Api]) -> (u16, Value) {
    let names: Vec<&str> = with.iter().map(|u| u.username.as_str()).collect();
    user.post("/api/dms", json!({ "usernames": names })).await
}

/// Sends and returns the ack or the error frame.
async fn send(ws: &mut Ws, room: i64, cid: &str, body: &str) -> Value {
    ws.send(json!({"type": "send", "room": room, "cid": cid, "body": body})).await;
    ws.recv_where("the answer", |f| f["type"] == "ack" && f["cid"] == cid || f["type"] == "error" && f["ref"] == cid)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_conversation_is_one_room_of_its_people_and_appears_live() {
    let node = TestNode::start(NodeOpts::default()).await;
    let (alice, bob, carol) =
        (node.user(&unique("alice")).await, node.user(&unique("bob")).await, node.user(&unique("carol")).await);
    let mut wb = bob.ws(&node.ws_url).await;
    wb.join(-bob.user_id, None).await;

    let (status, body) = alice.post("/api/dms", json!({"username": bob.username})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["created"], true);
    let room = &body["room"];
    let dm = room["id"].as_i64().unwrap();
    assert_eq!(
        (room["kind"].as_str(), room["owner_id"].is_null(), room["system"].as_bool()),
        (Some("dm"), true, Some(false))
    );
    let names: Vec<&str> =
        room["members"].as_array().unwrap().iter().map(|m| m["username"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{room}");
    assert!(names.contains(&alice.username.as_str()) && names.contains(&bob.username.as_str()));

    // Bob's list gets it live through his inbox.
    let added = wb.recv_where("room_added", |f| f["type"] == "system" && f["event"]["op"] == "room_added").await;
    assert_eq!((added["event"]["room"].as_i64(), added["event"]["kind"].as_str()), (Some(dm), Some("dm")), "{added}");
    assert_eq!(added["event"]["members"].as_array().map(Vec::len), Some(2), "{added}");

    // Opening it again, from either side, in any case of the name, gives the same room.
    let (status, again) = bob.post("/api/dms", json!({"username": alice.username.to_uppercase()})).await;
    assert_eq!((status, again["created"].as_bool(), again["room"]["id"].as_i64()), (200, Some(false), Some(dm)));

    // Listed with its kind and people for its members; hidden from everyone else.
    let (_, list) = bob.get("/api/rooms?limit=500").await;
    let row = list["rooms"].as_array().unwrap().iter().find(|r| r["id"].as_i64() == Some(dm)).cloned().unwrap();
    assert_eq!((row["kind"].as_str(), row["members"].as_array().map(Vec::len)), (Some("dm"), Some(2)), "{row}");
    let (_, list) = carol.get("/api/rooms?limit=500").await;
    assert!(list["rooms"].as_array().unwrap().iter().all(|r| r["id"].as_i64() != Some(dm)));

    // It is a room: sequenced, acked, delivered, counted unread.
    let mut wa = alice.ws(&node.ws_url).await;
    wa.join(dm, None).await;
    let ack = send(&mut wa, dm, "d1", "hello bob").await;
    assert_eq!((ack["type"].as_str(), ack["seq"].as_u64()), (Some("ack"), Some(1)), "{ack}");
    let row = eventually("an unread direct message", || async {
        let (_, list) = bob.get("/api/rooms?limit=500").await;
        list["rooms"].as_array()?.iter().find(|r| r["id"].as_i64() == Some(dm) && r["unread"] == 1).cloned()
    })
    .await;
    assert_eq!(row["last"]["body"], "hello bob");
    wb.join(dm, None).await;
    let ack = send(&mut wb, dm, "d2", "hi alice").await;
    assert_eq!(ack["seq"], 2, "{ack}");
    let got = wa
        .recv_where("bob's answer", |f| f["type"] == "message" && f["room"].as_i64() == Some(dm) && f["seq"] == 2)
        .await;
    assert_eq!(got["body"], "hi alice");

    // No one else joins, reads, or manages it; not even an admin reads it.
    let mut wc = carol.ws(&node.ws_url).await;
    wc.send(json!({"type": "join", "room": dm})).await;
    assert_eq!(wc.recv_type("error").await["code"], "not_member");
    let (status, _) = carol.get(&format!("/api/rooms/{dm}/messages")).await;
    assert_eq!(status, 403);
    let admin = node.user(&unique("admin")).await;
    node.system()
        .store()
        .set_user_role(confab_schemas::UserId(admin.user_id), confab_schemas::Role::Admin)
        .await
        .unwrap();
    let private = alice.create_room(&unique("private"), "private").await;
    let (status, _) = admin.get(&format!("/api/rooms/{private}/messages")).await;
    assert_eq!(status, 200, "an admin reads a private room");
    let (status, _) = admin.get(&format!("/api/rooms/{dm}/messages")).await;
    assert_eq!(status, 403, "an admin does not read direct messages");
    for (method, path, body) in [
        (Method::POST, format!("/api/rooms/{dm}/members"), Some(json!({"username": carol.username}))),
        (Method::PATCH, format!("/api/rooms/{dm}"), Some(json!({"name": "mine"}))),
        (Method::POST, format!("/api/rooms/{dm}/owner"), Some(json!({"username": alice.username}))),
        (Method::DELETE, format!("/api/rooms/{dm}"), None),
        (Method::POST, format!("/api/rooms/{dm}/leave"), None),
    ] {
        let (status, body) = alice.call(method, &path, body).await;
        assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{path}: {body}");
    }

    // A group conversation of three: its own room, whoever opens it and in whatever order.
    let (status, group) = open_dm(&alice, &[&bob, &carol]).await;
    assert_eq!(status, 201, "{group}");
    let gid = group["room"]["id"].as_i64().unwrap();
    assert_ne!(gid, dm);
    let (status, same) = open_dm(&carol, &[&alice, &bob, &carol]).await;
    assert_eq!((status, same["room"]["id"].as_i64()), (200, Some(gid)), "{same}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_conversation_refuses_bad_requests_clearly() {
    let node = TestNode::start(NodeOpts::default()).await;
    let alice = node.user(&unique("alice")).await;
    let bob = node.user(&unique("bob")).await;
    let code = |body: &Value| body["error"]["code"].as_str().map(str::to_owned);

    let (status, body) = alice.post("/api/dms", json!({"username": alice.username})).await;
    assert_eq!((status, code(&body).as_deref()), (400, Some("dm_self")), "{body}");
    let (status, body) = alice.post("/api/dms", json!({"username": "nobody-at-all-here"})).await;
    assert_eq!((status, code(&body).as_deref()), (404, Some("not_found")), "{body}");
    let (status, body) = alice.post("/api/dms", json!({"usernames": []})).await;
    assert_eq!((status, code(&body).as_deref()), (400, Some("invalid")), "{body}");
    let (status, body) = alice.post("/api/dms", json!({})).await;
    assert_eq!((status, code(&body).as_deref()), (400, Some("invalid")), "{body}");
    let (status, body) = alice.post("/api/dms", json!({"username": bob.username, "usernames": [bob.username]})).await;
    assert_eq!((status, code(&body).as_deref()), (400, Some("invalid")), "{body}");
    let (status, body) = alice.post("/api/dms", json!({"username": 42})).await;
    assert_eq!(status, 400, "{body}");

    // Eleven people (ten others) is one too many; a list of thousands is refused before any lookup.
    let mut others = Vec::new();
    for i in 0..10 {
        others.push(node.user(&unique(&format!("p{i}"))).await.username);
    }
    let (status, body) = alice.post("/api/dms", json!({"usernames": others})).await;
    assert_eq!((status, code(&body).as_deref()), (400, Some("too_many_members")), "{body}");
    let many: Vec<String> = (0..5000).map(|i| format!("u{i}")).collect();
    let (status, body) = alice.post("/api/dms", json!({"usernames": many})).await;
    assert_eq!((status, code(&body).as_deref()), (400, Some("too_many_members")), "{body}");
    // Nine others and oneself named among them is ten: allowed.
    let nine: Vec<String> = others[..9].iter().cloned().chain([alice.username.clone()]).collect();
    let (status, body) = alice.post("/api/dms", json!({"usernames": nine})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["room"]["members"].as_array().map(Vec::len), Some(10));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_refuses_direct_messages_either_way_without_telling() {
    let node = TestNode::start(NodeOpts::default()).await;
    let (alice, bob) = (node.user(&unique("alice")).await, node.user(&unique("bob")).await);
    let (_, opened) = alice.post("/api/dms", json!({"username": bob.username})).await;
    let dm = opened["room"]["id"].as_i64().unwrap();
    let (mut wa, mut wb) = (alice.ws(&node.ws_url).await, bob.ws(&node.ws_url).await);
    wa.join(dm, None).await;
    wb.join(dm, None).await;
    assert_eq!(send(&mut wb, dm, "b1", "before").await["type"], "ack");

    let (status, body) = alice.post("/api/blocks", json!({"username": bob.username})).await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = alice.post("/api/blocks", json!({"username": bob.username})).await;
    assert_eq!(status, 204, "blocking twice is not an error");
    let (_, blocks) = alice.get("/api/blocks").await;
    assert_eq!(blocks["blocks"][0]["username"], bob.username.as_str(), "{blocks}");

    // Sends in the conversation are refused both ways: the blocker hears why, the blocked
    // user only that it was refused.
    let refused = send(&mut wb, dm, "b2", "after").await;
    assert_eq!((refused["type"].as_str(), refused["code"].as_str()), (Some("error"), Some("dm_refused")), "{refused}");
    let refused = send(&mut wa, dm, "a1", "after").await;
    assert_eq!(refused["code"], "blocked", "{refused}");
    // Opening it again either way: the same codes.
    let (status, body) = bob.post("/api/dms", json!({"username": alice.username})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("dm_refused")), "{body}");
    let (status, body) = alice.post("/api/dms", json!({"username": bob.username})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("blocked")), "{body}");
    // Bob is not told: Alice's profile and his own block list look as before.
    let (_, profile) = bob.get(&format!("/api/users/{}", alice.username)).await;
    assert_eq!(profile["blocked"], false, "{profile}");
    let (_, his) = bob.get("/api/blocks").await;
    assert_eq!(his["blocks"], json!([]));
    let (_, seen) = alice.get(&format!("/api/users/{}", bob.username)).await;
    assert_eq!(seen["blocked"], true, "{seen}");

    // Unblocking undoes it; the same cid now goes through.
    let (status, _) = alice.call(Method::DELETE, &format!("/api/blocks/{}", bob.username), None).await;
    assert_eq!(status, 204);
    let ack = send(&mut wb, dm, "b3", "after unblock").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let history = eventually("the history", || async {
        let (_, h) = alice.get(&format!("/api/rooms/{dm}/messages")).await;
        let bodies: Vec<String> =
            h["messages"].as_array()?.iter().map(|m| m["body"].as_str().unwrap().to_owned()).collect();
        (bodies.len() == 2).then_some(bodies)
    })
    .await;
    assert_eq!(history, ["before", "after unblock"], "nothing refused was stored");

    // Blocking oneself or nobody.
    let (status, body) = alice.post("/api/blocks", json!({"username": alice.username})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid")));
    let (status, _) = alice.post("/api/blocks", json!({"username": "no-such-user-x"})).await;
    assert_eq!(status, 404);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_find_each_other_and_choose_who_may_write() {
    let node = TestNode::start(NodeOpts::default()).await;
    let tag = unique("zq");
    let alice = node.user(&format!("{tag}alice")).await;
    let bob = node.user(&format!("{tag}bob")).await;
    let carol = node.user(&unique("carol")).await;

    // A profile: display name and status, shown back as text.
    let (status, me) = bob
        .call(
            Method::PATCH,
            "/api/me/profile",
            Some(json!({"display_name": "Bob <b>Builder</b>", "status": "fixing things", "dm_policy": "shared_rooms"})),
        )
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        (me["display_name"].as_str(), me["dm_policy"].as_str()),
        (Some("Bob <b>Builder</b>"), Some("shared_rooms"))
    );
    for bad in
        [json!({"display_name": "x".repeat(65)}), json!({"status": "a\u{202E}b"}), json!({"dm_policy": "friends"})]
    {
        let (status, body) = bob.call(Method::PATCH, "/api/me/profile", Some(bad)).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid")), "{body}");
    }
    let (_, me) = bob.get("/api/me").await;
    assert_eq!(me["status"], "fixing things");

    // The directory: a prefix of the username or the display name, paginated.
    let (status, found) = carol.get(&format!("/api/users?q={}", tag.to_uppercase())).await;
    assert_eq!(status, 200, "{found}");
    let names: Vec<&str> = found["users"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, [alice.username.as_str(), bob.username.as_str()]);
    let (_, page) = carol.get(&format!("/api/users?q={tag}&limit=1")).await;
    assert_eq!(page["users"].as_array().map(Vec::len), Some(1));
    let next = page["next"].as_str().unwrap().to_owned();
    let (_, page2) = carol.get(&format!("/api/users?q={tag}&limit=1&after={next}")).await;
    assert_eq!(page2["users"][0]["username"], bob.username.as_str(), "{page2}");
    let (_, by_display) = carol.get("/api/users?q=bob%20%3Cb").await;
    assert!(by_display["users"].as_array().unwrap().iter().any(|u| u["id"].as_i64() == Some(bob.user_id)));
    // Wildcards are text: `%` and `_` match only themselves.
    let (_, none) = carol.get("/api/users?q=%25").await;
    assert_eq!(none["users"], json!([]), "{none}");
    let (_, none) = carol.get("/api/users?q=_").await;
    assert_eq!(none["users"], json!([]), "{none}");
    for bad in ["/api/users?limit=0", "/api/users?limit=51", "/api/users?limit=x"] {
        let (status, _) = carol.get(bad).await;
        assert_eq!(status, 400, "{bad}");
    }
    let (status, _) = carol.get(&format!("/api/users?q={}", "a".repeat(65))).await;
    assert_eq!(status, 400);
    let (status, _) = carol.get("/api/users/nobody-of-that-name").await;
    assert_eq!(status, 404);

    // Presence: online while a session follows its inbox; last seen when it leaves.
    let (_, p) = carol.get(&format!("/api/users/{}", alice.username)).await;
    assert_eq!(p["online"], false, "{p}");
    let mut wa = alice.ws(&node.ws_url).await;
    wa.join(-alice.user_id, None).await;
    eventually("alice online", || async {
        let (_, p) = carol.get(&format!("/api/users/{}", alice.username)).await;
        (p["online"] == true).then_some(())
    })
    .await;
    wa.close().await;
    let p = eventually("alice offline", || async {
        let (_, p) = carol.get(&format!("/api/users/{}", alice.username)).await;
        (p["online"] == false).then_some(p)
    })
    .await;
    assert!(p["last_seen"].as_i64().is_some(), "{p}");

    // Bob takes direct messages only from people he shares a room with.
    let (status, body) = carol.post("/api/dms", json!({"username": bob.username})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("dm_refused")), "{body}");
    let room = bob.create_room(&unique("club"), "private").await;
    let (status, _) = bob.post(&format!("/api/rooms/{room}/members"), json!({"username": carol.username})).await;
    assert_eq!(status, 204);
    let (status, body) = carol.post("/api/dms", json!({"username": bob.username})).await;
    assert_eq!(status, 201, "sharing a room now: {body}");
    node.stop().await;
}
