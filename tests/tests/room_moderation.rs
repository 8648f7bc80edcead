//! Room moderation: every room-staff and admin route refuses a plain user and a moderator of
//! another room (a table over all routes, nothing changed); room moderators are appointed and
//! lose their power at once when removed; sanctions mute, ban and remove; the queue lists
//! reports and flags with their context and takes one decision each; pre-moderation holds
//! messages (`held`, `queued`) that get the next seq when released and none when rejected; the
//! automatic flags fire at their thresholds. On SQLite, or PostgreSQL with
//! `CONFAB_TEST_DATABASE_URL`.

use confab_schemas::Role;
use confab_tests::{Api, NodeOpts, TestNode, Ws, error_code as code, eventually, unique};
use reqwest::Method;
use serde_json::{Value, json};

/// Sends `body` with a fresh cid; the answer for it: `ack`, `held`, `rejected` or `error`.
async fn send(ws: &mut Ws, room: i64, body: &str) -> Value {
    let cid = unique("c");
    ws.send(json!({"type": "send", "room": room, "cid": cid, "body": body})).await;
    ws.recv_where("the answer to a send", |v| v["cid"] == cid || v["ref"] == cid).await
}

/// A member of `room` (joined over REST by joining its socket).
async fn member(node: &TestNode, api: &Api, room: i64) -> Ws {
    let mut ws = api.ws(&node.ws_url).await;
    ws.join(room, None).await;
    ws
}

async fn put(api: &Api, path: &str) -> (u16, Value) {
    api.call(Method::PUT, path, None).await
}

async fn del(api: &Api, path: &str) -> (u16, Value) {
    api.call(Method::DELETE, path, None).await
}

/// Sets `room`'s own flags (as its owner).
async fn set_flags(owner: &Api, room: i64, flags: Value) {
    let (s, b) =
        owner.call(Method::PATCH, &format!("/api/rooms/{room}/moderation"), Some(json!({"flags": flags}))).await;
    assert_eq!(s, 200, "{b}");
}

/// The staff actions of the audit log (not the room changes every member makes).
async fn staff_actions(admin: &Api) -> Vec<String> {
    let (status, body) = admin.get("/api/admin/audit?limit=200").await;
    assert_eq!(status, 200, "{body}");
    let staff = |a: &str| {
        a.starts_with("room.moderator")
            || a.starts_with("room.queue")
            || a.starts_with("admin.")
            || ["room.mute", "room.ban", "room.remove", "room.moderation"].contains(&a)
    };
    body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| staff(a))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_room_staff_and_admin_route_refuses_users_and_moderators_of_other_rooms() {
    let node = TestNode::start(NodeOpts::default()).await;
    let admin = node.user_with_role("admin", Role::Admin).await;
    let owner = node.user(&unique("owner")).await;
    let victim = node.user(&unique("victim")).await;
    let user = node.user(&unique("plain")).await;
    let other_mod = node.user(&unique("othermod")).await;
    let room = owner.create_room(&unique("room"), "public").await;
    let other = owner.create_room(&unique("other"), "public").await;
    let mut victim_ws = member(&node, &victim, room).await;
    let _user_ws = member(&node, &user, room).await;
    let _m = member(&node, &other_mod, room).await;
    let _m2 = member(&node, &other_mod, other).await;
    assert_eq!(put(&owner, &format!("/api/rooms/{other}/moderators/{}", other_mod.username)).await.0, 204);
    // A report to decide, and a held message.
    assert_eq!(send(&mut victim_ws, room, "first").await["type"], "ack");
    let (s, report) = victim.post(&format!("/api/rooms/{room}/reports"), json!({"seq": 1, "reason": "rude"})).await;
    assert_eq!(s, 201, "{report}");
    let item = report["id"].as_i64().unwrap();
    let v = &victim.username;

    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::PUT, format!("/api/rooms/{room}/moderators/{v}"), None),
        (Method::DELETE, format!("/api/rooms/{room}/moderators/{v}"), None),
        (Method::POST, format!("/api/rooms/{room}/sanctions"), Some(json!({"username": v, "kind": "mute"}))),
        (Method::POST, format!("/api/rooms/{room}/sanctions"), Some(json!({"username": v, "kind": "ban"}))),
        (Method::POST, format!("/api/rooms/{room}/sanctions"), Some(json!({"username": v, "kind": "remove"}))),
        (Method::DELETE, format!("/api/rooms/{room}/sanctions/{v}/mute"), None),
        (Method::DELETE, format!("/api/rooms/{room}/sanctions/{v}/ban"), None),
        (Method::GET, format!("/api/rooms/{room}/sanctions"), None),
        (Method::GET, format!("/api/rooms/{room}/queue"), None),
        (Method::POST, format!("/api/rooms/{room}/queue/{item}/decision"), Some(json!({"action": "dismiss"}))),
        (Method::POST, format!("/api/rooms/{room}/queue/{item}/decision"), Some(json!({"action": "ban"}))),
        (Method::GET, format!("/api/rooms/{room}/moderation"), None),
        (Method::PATCH, format!("/api/rooms/{room}/moderation"), Some(json!({"premod": true}))),
        (Method::GET, "/api/admin/queue".into(), None),
        (Method::GET, "/api/admin/moderation".into(), None),
        (Method::PUT, "/api/admin/moderation".into(), Some(json!({"flags": {"repeats": {"count": 2, "seconds": 9}}}))),
        // The site's routes too: a room moderator is no site staff.
        (Method::GET, "/api/admin/users".into(), None),
        (Method::POST, "/api/admin/bans".into(), Some(json!({"username": v, "reason": "spam"}))),
        (Method::POST, "/api/admin/kicks".into(), Some(json!({"username": v}))),
        (Method::POST, "/api/admin/mutes".into(), Some(json!({"username": v, "seconds": 60}))),
        (Method::GET, "/api/admin/audit".into(), None),
        (Method::DELETE, format!("/api/admin/bans/{v}"), None),
        (Method::DELETE, format!("/api/admin/mutes/{v}"), None),
        (Method::POST, format!("/api/admin/users/{v}/role"), Some(json!({"role": "moderator"}))),
        (Method::POST, format!("/api/admin/users/{v}/password"), None),
        // The owner's routes: room moderators have none of them.
        (Method::PATCH, format!("/api/rooms/{room}"), Some(json!({"name": unique("renamed")}))),
        (Method::POST, format!("/api/rooms/{room}/members"), Some(json!({"username": v}))),
        (Method::DELETE, format!("/api/rooms/{room}/members/{}", victim.user_id), None),
        (Method::POST, format!("/api/rooms/{room}/owner"), Some(json!({"username": v}))),
        (Method::DELETE, format!("/api/rooms/{room}"), None),
        (Method::GET, "/api/admin/stats".into(), None),
        (Method::POST, "/api/admin/broadcasts".into(), Some(json!({"body": "hi"}))),
        (Method::GET, "/api/admin/rooms".into(), None),
        (Method::GET, "/api/admin/rooms?q=room&sort=members".into(), None),
        (Method::DELETE, format!("/api/admin/rooms/{room}"), None),
        (Method::DELETE, format!("/api/admin/rooms/{other}?reason=spam"), None),
    ];
    for (method, path, body) in &routes {
        for (who, caller) in [("user", &user), ("moderator of another room", &other_mod), ("the target", &victim)] {
            let (status, answer) = caller.call(method.clone(), path, body.clone()).await;
            assert_eq!((status, code(&answer)), (403, Some("forbidden")), "{who} {method} {path}: {answer}");
        }
    }
    // Nothing changed: no staff action, the victim still sends, the report is open, no premod.
    assert_eq!(staff_actions(&admin).await, vec!["room.moderator_add".to_owned()]);
    assert_eq!(send(&mut victim_ws, room, "still here").await["type"], "ack");
    let (_, q) = owner.get(&format!("/api/rooms/{room}/queue")).await;
    assert_eq!(q["items"][0]["status"], "open", "{q}");
    assert_eq!(q["items"][0]["context"][0]["body"], "first", "{q}");
    let (_, m) = owner.get(&format!("/api/rooms/{room}/moderation")).await;
    assert_eq!(m["premod"], false);
    let (_, r) = victim.get(&format!("/api/rooms/{room}")).await;
    assert_eq!(r["my_role"], "member");
    let (_, r) = other_mod.get(&format!("/api/rooms/{other}")).await;
    assert_eq!(r["my_role"], "moderator");

    // And the moderator of the other room can act there (the table refused them for their rank,
    // not for a broken route).
    let (s, body) = other_mod.get(&format!("/api/rooms/{other}/queue")).await;
    assert_eq!(s, 200, "{body}");
    // Bad input: clear 400s and 404s.
    for (method, path, body, expect) in [
        (Method::POST, format!("/api/rooms/{room}/sanctions"), json!({"username": v, "kind": "exile"}), 400),
        (Method::POST, format!("/api/rooms/{room}/sanctions"), json!({"username": "nobody-here", "kind": "mute"}), 404),
        (Method::POST, format!("/api/rooms/{room}/queue/{item}/decision"), json!({"action": "release"}), 400),
        (Method::POST, format!("/api/rooms/{room}/queue/999999/decision"), json!({"action": "dismiss"}), 404),
        (Method::PATCH, format!("/api/rooms/{room}/moderation"), json!({"flags": {"flood": {"messages": 0}}}), 400),
        (Method::PATCH, format!("/api/rooms/{room}/moderation"), json!({"flags": {"nonsense": 1}}), 400),
    ] {
        let (status, answer) = owner.call(method.clone(), &path, Some(body)).await;
        assert_eq!(status, expect, "{method} {path}: {answer}");
    }
    let (s, _) =
        owner.post(&format!("/api/rooms/{room}/sanctions"), json!({"username": owner.username, "kind": "mute"})).await;
    assert_eq!(s, 403, "not on oneself");
    let (s, _) =
        owner.post(&format!("/api/rooms/{room}/sanctions"), json!({"username": admin.username, "kind": "ban"})).await;
    assert_eq!(s, 403, "not on site staff");

    // A private room: its staff routes refuse the same callers (they cannot even see it), and a
    // site moderator who is not a member is its staff all the same.
    let secret = owner.create_room(&unique("secret"), "private").await;
    let (s, b) = owner.post(&format!("/api/rooms/{secret}/members"), json!({"username": v})).await;
    assert!((200..300).contains(&s), "{b}");
    let mut in_secret = member(&node, &victim, secret).await;
    let said = send(&mut in_secret, secret, "secret first").await;
    assert_eq!(said["type"], "ack", "{said}");
    let (s, report) =
        victim.post(&format!("/api/rooms/{secret}/reports"), json!({"seq": said["seq"], "reason": "x"})).await;
    assert_eq!(s, 201, "{report}");
    let item = report["id"].as_i64().unwrap();
    let private_routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/rooms/{secret}/queue"), None),
        (Method::POST, format!("/api/rooms/{secret}/queue/{item}/decision"), Some(json!({"action": "dismiss"}))),
        (Method::POST, format!("/api/rooms/{secret}/queue/{item}/decision"), Some(json!({"action": "mute"}))),
        (Method::POST, format!("/api/rooms/{secret}/sanctions"), Some(json!({"username": v, "kind": "ban"}))),
        (Method::GET, format!("/api/rooms/{secret}/sanctions"), None),
        (Method::GET, format!("/api/rooms/{secret}/moderation"), None),
    ];
    for (method, path, body) in &private_routes {
        for (who, caller) in [("user", &user), ("moderator of another room", &other_mod)] {
            let (status, answer) = caller.call(method.clone(), path, body.clone()).await;
            assert_eq!(status, 403, "{who} {method} {path}: {answer}");
            assert!(matches!(code(&answer), Some("forbidden" | "not_member")), "{who} {method} {path}: {answer}");
        }
    }
    let (_, q) = owner.get(&format!("/api/rooms/{secret}/queue")).await;
    assert_eq!(q["items"][0]["status"], "open", "nothing changed: {q}");
    let site_mod = node.user_with_role("sitemod", Role::Moderator).await;
    let (s, q) = site_mod.get(&format!("/api/rooms/{secret}/queue")).await;
    assert_eq!((s, &q["items"][0]["id"]), (200, &json!(item)), "{q}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_moderators_sanction_and_lose_their_power_when_removed() {
    let node = TestNode::start(NodeOpts::default()).await;
    let owner = node.user(&unique("owner")).await;
    let moderator = node.user(&unique("mod")).await;
    let second = node.user(&unique("mod2")).await;
    let victim = node.user(&unique("victim")).await;
    let room = owner.create_room(&unique("room"), "public").await;
    let mut mod_ws = member(&node, &moderator, room).await;
    let _s = member(&node, &second, room).await;
    let mut victim_ws = member(&node, &victim, room).await;
    let v = victim.username.clone();
    assert_eq!(put(&owner, &format!("/api/rooms/{room}/moderators/{}", moderator.username)).await.0, 204);
    assert_eq!(put(&owner, &format!("/api/rooms/{room}/moderators/{}", second.username)).await.0, 204);
    let (_, r) = owner.get(&format!("/api/rooms/{room}")).await;
    assert_eq!(r["my_role"], "owner");
    let roles: Vec<(String, String)> = r["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["username"].as_str().unwrap().to_owned(), m["role"].as_str().unwrap().to_owned()))
        .collect();
    assert!(roles.contains(&(moderator.username.clone(), "moderator".into())), "{roles:?}");
    // Only the owner appoints; a moderator does not sanction another moderator.
    assert_eq!(put(&moderator, &format!("/api/rooms/{room}/moderators/{v}")).await.0, 403);
    let (s, _) = moderator
        .post(&format!("/api/rooms/{room}/sanctions"), json!({"username": second.username, "kind": "mute"}))
        .await;
    assert_eq!(s, 403);

    // A moderator deletes another's message with the delete frame.
    let sent = send(&mut victim_ws, room, "delete me").await;
    let seq = sent["seq"].as_u64().unwrap();
    mod_ws.send(json!({"type": "delete", "room": room, "seq": seq, "cid": unique("d")})).await;
    mod_ws.recv_where("deleted", |v| v["type"] == "deleted" && v["target"] == seq).await;

    // Mute: the victim's sends are refused with `muted` in this room only.
    let (s, body) = moderator
        .post(&format!("/api/rooms/{room}/sanctions"), json!({"username": v, "kind": "mute", "reason": "calm down"}))
        .await;
    assert_eq!(s, 201, "{body}");
    let refused = send(&mut victim_ws, room, "can I?").await;
    assert_eq!((refused["type"].as_str(), refused["code"].as_str()), (Some("error"), Some("muted")), "{refused}");
    let elsewhere = victim.create_room(&unique("mine"), "public").await;
    victim_ws.join(elsewhere, None).await;
    assert_eq!(send(&mut victim_ws, elsewhere, "here I can").await["type"], "ack");
    let (_, list) = moderator.get(&format!("/api/rooms/{room}/sanctions")).await;
    assert_eq!(list["sanctions"][0]["kind"], "mute", "{list}");
    assert_eq!(list["sanctions"][0]["by"], json!(moderator.username));
    assert_eq!(del(&moderator, &format!("/api/rooms/{room}/sanctions/{v}/mute")).await.0, 204);
    assert_eq!(send(&mut victim_ws, room, "free again").await["type"], "ack");

    // Remove: `left` now; a public room may be joined again.
    let (s, _) =
        moderator.post(&format!("/api/rooms/{room}/sanctions"), json!({"username": v, "kind": "remove"})).await;
    assert_eq!(s, 201);
    victim_ws.recv_where("left", |f| f["type"] == "left" && f["room"] == room).await;
    victim_ws.join(room, None).await;

    // Ban: `left`, and joining again is refused until it is lifted.
    let (s, _) = moderator.post(&format!("/api/rooms/{room}/sanctions"), json!({"username": v, "kind": "ban"})).await;
    assert_eq!(s, 201);
    victim_ws.recv_where("left", |f| f["type"] == "left" && f["room"] == room).await;
    victim_ws.send(json!({"type": "join", "room": room})).await;
    let refused = victim_ws.recv_where("the join's refusal", |f| f["type"] == "error" && f["room"] == room).await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    assert_eq!(del(&moderator, &format!("/api/rooms/{room}/sanctions/{v}/ban")).await.0, 204);
    victim_ws.join(room, None).await;

    // Demoted: no power at once (routes and frames).
    assert_eq!(del(&owner, &format!("/api/rooms/{room}/moderators/{}", moderator.username)).await.0, 204);
    let (s, _) = moderator.post(&format!("/api/rooms/{room}/sanctions"), json!({"username": v, "kind": "mute"})).await;
    assert_eq!(s, 403);
    assert_eq!(moderator.get(&format!("/api/rooms/{room}/queue")).await.0, 403);
    let sent = send(&mut victim_ws, room, "try deleting this").await;
    let seq = sent["seq"].as_u64().unwrap();
    let cid = unique("d");
    mod_ws.send(json!({"type": "delete", "room": room, "seq": seq, "cid": cid})).await;
    let e = mod_ws.recv_where("refusal", |v| v["ref"] == cid).await;
    assert_eq!(e["code"], "forbidden", "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_lists_reports_and_decides_each_once() {
    let node = TestNode::start(NodeOpts::default()).await;
    let admin = node.user_with_role("admin", Role::Admin).await;
    let owner = node.user(&unique("owner")).await;
    let victim = node.user(&unique("victim")).await;
    let reporter = node.user(&unique("reporter")).await;
    let name = unique("room");
    let room = owner.create_room(&name, "public").await;
    let mut victim_ws = member(&node, &victim, room).await;
    for body in ["one", "two", "three"] {
        assert_eq!(send(&mut victim_ws, room, body).await["type"], "ack");
    }
    let mut ids = Vec::new();
    for seq in [2, 3] {
        let (s, r) = reporter.post(&format!("/api/rooms/{room}/reports"), json!({"seq": seq, "reason": "bad"})).await;
        assert_eq!(s, 201, "{r}");
        ids.push(r["id"].as_i64().unwrap());
    }
    let (s, q) = admin.get("/api/admin/queue").await;
    assert_eq!(s, 200, "{q}");
    let mine: Vec<&Value> = q["items"].as_array().unwrap().iter().filter(|i| i["room"] == room).collect();
    assert_eq!(mine.len(), 2, "{q}");
    assert_eq!(mine[0]["room_name"], json!(name));
    assert_eq!(mine[1]["body"], "two");
    assert_eq!(mine[1]["sender"]["username"], json!(victim.username));
    assert_eq!(mine[1]["reporter"]["username"], json!(reporter.username));
    let ctx: Vec<&str> = mine[1]["context"].as_array().unwrap().iter().map(|c| c["body"].as_str().unwrap()).collect();
    assert_eq!(ctx, ["one", "two", "three"]);

    // Delete the message of the first; deciding again is 409.
    let path = format!("/api/rooms/{room}/queue/{}/decision", ids[0]);
    let (s, item) = owner.post(&path, json!({"action": "delete", "reason": "rude"})).await;
    assert_eq!(s, 200, "{item}");
    assert_eq!(item["status"], "deleted");
    assert_eq!(item["decided_by"]["username"], json!(owner.username));
    victim_ws.recv_where("deleted", |v| v["type"] == "deleted" && v["target"] == 2).await;
    let (s, again) = owner.post(&path, json!({"action": "dismiss"})).await;
    assert_eq!((s, code(&again)), (409, Some("conflict")), "{again}");
    // Mute the sender from the second.
    let path = format!("/api/rooms/{room}/queue/{}/decision", ids[1]);
    let (s, item) = owner.post(&path, json!({"action": "mute", "minutes": 5})).await;
    assert_eq!(s, 200, "{item}");
    assert_eq!(item["status"], "muted");
    assert_eq!(send(&mut victim_ws, room, "muted?").await["code"], "muted");
    let (_, open) = owner.get(&format!("/api/rooms/{room}/queue?status=open")).await;
    assert_eq!(open["items"], json!([]), "{open}");
    let (_, all) = owner.get(&format!("/api/rooms/{room}/queue?status=all&limit=1")).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1);
    assert!(all["next"].is_i64(), "{all}");
    let (_, audit) = admin.get("/api/admin/audit?action=room.queue_deleted").await;
    assert_eq!(audit["entries"][0]["room"], room, "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn premoderation_holds_releases_with_the_next_seq_and_rejects_without_one() {
    let node = TestNode::start(NodeOpts::default()).await;
    let owner = node.user(&unique("owner")).await;
    let sender = node.user(&unique("sender")).await;
    let room = owner.create_room(&unique("room"), "public").await;
    let mut owner_ws = member(&node, &owner, room).await;
    let mut sender_ws = member(&node, &sender, room).await;
    assert_eq!(send(&mut sender_ws, room, "before").await["seq"], 1);
    let (s, m) =
        owner.call(Method::PATCH, &format!("/api/rooms/{room}/moderation"), Some(json!({"premod": true}))).await;
    assert_eq!((s, &m["premod"]), (200, &json!(true)), "{m}");

    let held: Vec<Value> = {
        let mut out = Vec::new();
        for body in ["held one", "held two", "held three"] {
            let answer = send(&mut sender_ws, room, body).await;
            assert_eq!(answer["type"], "held", "{answer}");
            out.push(answer);
        }
        out
    };
    // Staff are not held, and see each held message queued.
    assert_eq!(send(&mut owner_ws, room, "staff speaks").await["seq"], 2);
    for h in &held {
        let q = owner_ws.recv_where("queued", |v| v["type"] == "queued" && v["item"]["id"] == h["item"]).await;
        assert_eq!(q["item"]["kind"], "held");
        assert_eq!(q["item"]["status"], "open");
    }
    let decide = |item: &Value, action: &str| {
        let path = format!("/api/rooms/{room}/queue/{}/decision", item["item"]);
        let action = action.to_owned();
        let owner = &owner;
        async move { owner.post(&path, json!({"action": action})).await }
    };
    // Release the second: it gets seq 3 now; the sender gets the ack for its cid.
    let (s, item) = decide(&held[1], "release").await;
    assert_eq!((s, &item["status"]), (200, &json!("released")), "{item}");
    let ack = sender_ws.recv_where("ack", |v| v["type"] == "ack" && v["cid"] == held[1]["cid"]).await;
    assert_eq!(ack["seq"], 3, "{ack}");
    let msg = owner_ws.recv_where("message", |v| v["type"] == "message" && v["seq"] == 3).await;
    assert_eq!(msg["body"], "held two");
    // Reject the first: `rejected`, no seq; deciding again is 409.
    let (s, item) = decide(&held[0], "reject").await;
    assert_eq!((s, &item["status"]), (200, &json!("rejected")), "{item}");
    let rejected = sender_ws.recv_where("rejected", |v| v["type"] == "rejected" && v["cid"] == held[0]["cid"]).await;
    assert_eq!(rejected["room"], room);
    assert_eq!(decide(&held[0], "release").await.0, 409);
    assert_eq!(decide(&held[1], "reject").await.0, 409);
    // A resend of a rejected cid is told so again, never sequenced.
    sender_ws.send(json!({"type": "send", "room": room, "cid": held[0]["cid"], "body": "held one"})).await;
    sender_ws.recv_where("rejected again", |v| v["type"] == "rejected" && v["cid"] == held[0]["cid"]).await;
    // The room's actor is killed: the third is still held, and released with the next seq.
    assert!(node.system().kill_room(confab_schemas::RoomId(room)).await);
    let (s, item) = decide(&held[2], "release").await;
    assert_eq!(s, 200, "{item}");
    let ack = sender_ws.recv_where("ack", |v| v["type"] == "ack" && v["cid"] == held[2]["cid"]).await;
    assert_eq!(ack["seq"], 4, "{ack}");
    // Gap-free: 1..4 in history, the rejected body nowhere.
    let (_, h) = owner.get(&format!("/api/rooms/{room}/messages")).await;
    let seqs: Vec<u64> = h["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4], "{h}");
    assert!(!h.to_string().contains("held one"));
    // Premod off: sends pass again.
    owner.call(Method::PATCH, &format!("/api/rooms/{room}/moderation"), Some(json!({"premod": false}))).await;
    assert_eq!(send(&mut sender_ws, room, "free").await["seq"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_flags_fire_at_their_thresholds() {
    let node = TestNode::start(NodeOpts::default()).await;
    let admin = node.user_with_role("admin", Role::Admin).await;
    let owner = node.user(&unique("owner")).await;
    let sender = node.user(&unique("sender")).await;
    let room = owner.create_room(&unique("room"), "public").await;
    let mut ws = member(&node, &sender, room).await;
    let mut owner_ws = member(&node, &owner, room).await;
    let patch = |flags: Value| set_flags(&owner, room, flags);
    // Site-wide repeats; the room's banned words.
    let (s, b) = admin
        .call(Method::PUT, "/api/admin/moderation", Some(json!({"flags": {"repeats": {"count": 3, "seconds": 60}}})))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(send(&mut ws, room, "again").await["type"], "ack");
    assert_eq!(send(&mut ws, room, "again").await["type"], "ack");
    assert_eq!(send(&mut ws, room, "again").await["code"], "repeated");
    patch(json!({"banned_words": {"words": ["Spam"], "action": "refuse"}})).await;
    assert_eq!(send(&mut ws, room, "spammy is fine").await["type"], "ack");
    assert_eq!(send(&mut ws, room, "buy spam").await["code"], "banned_word");
    patch(json!({"banned_words": {"words": ["spam"], "action": "hold"}})).await;
    assert_eq!(send(&mut ws, room, "more spam").await["type"], "held");
    // Links from a young account are held.
    patch(json!({"link_spam": {"min_account_age_minutes": 60}})).await;
    assert_eq!(send(&mut ws, room, "see https://example.com").await["type"], "held");
    assert_eq!(send(&mut owner_ws, room, "staff link https://example.com").await["type"], "ack");
    // Flood: beyond 3 in 60 s, muted in the room.
    patch(json!({"flood": {"messages": 3, "seconds": 60, "mute_minutes": 5}})).await;
    for i in 0..3 {
        assert_eq!(send(&mut ws, room, &format!("flood {i}")).await["type"], "ack");
    }
    assert_eq!(send(&mut ws, room, "flood 3").await["code"], "muted");
    let (_, sanctions) = owner.get(&format!("/api/rooms/{room}/sanctions")).await;
    let flood_mute = eventually("the flood mute stored", || {
        let owner = &owner;
        async move {
            let (_, s) = owner.get(&format!("/api/rooms/{room}/sanctions")).await;
            (s["sanctions"].as_array().is_some_and(|a| !a.is_empty())).then_some(s)
        }
    })
    .await;
    assert_eq!(flood_mute["sanctions"][0]["kind"], "mute", "{sanctions}");
    // Every firing is a queue item.
    let items = eventually("the flags queued", || {
        let owner = &owner;
        async move {
            let (_, q) = owner.get(&format!("/api/rooms/{room}/queue")).await;
            let kinds: Vec<String> =
                q["items"].as_array()?.iter().map(|i| i["kind"].as_str().unwrap_or("").to_owned()).collect();
            (kinds.iter().filter(|k| *k == "flag").count() == 3).then_some(kinds)
        }
    })
    .await;
    assert_eq!(items.iter().filter(|k| *k == "held").count(), 2, "{items:?}");
}

/// A node, and a public room with pre-moderation on: its owner and a member, both joined.
struct PremodRoom {
    node: TestNode,
    owner: Api,
    sender: Api,
    room: i64,
    owner_ws: Ws,
    sender_ws: Ws,
}

async fn premod_room(opts: NodeOpts) -> PremodRoom {
    let node = TestNode::start(opts).await;
    let owner = node.user(&unique("owner")).await;
    let sender = node.user(&unique("sender")).await;
    let room = owner.create_room(&unique("room"), "public").await;
    let owner_ws = member(&node, &owner, room).await;
    let sender_ws = member(&node, &sender, room).await;
    let (s, m) =
        owner.call(Method::PATCH, &format!("/api/rooms/{room}/moderation"), Some(json!({"premod": true}))).await;
    assert_eq!(s, 200, "{m}");
    PremodRoom { node, owner, sender, room, owner_ws, sender_ws }
}

/// Uploads `bytes` as a text file named `name`; its id.
async fn upload_text(api: &Api, name: &str, bytes: &[u8]) -> String {
    let boundary = "confabmodboundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let resp = api
        .http
        .post(format!("{}/api/uploads", api.base))
        .bearer_auth(&api.token)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .expect("upload request");
    let status = resp.status().as_u16();
    let answer: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 201, "{answer}");
    answer["id"].as_str().expect("an upload id").to_owned()
}

/// Sends `body` with `attachments` and a fresh cid, again under the same cid while the answer is
/// `retry` (the room's queue restarting); the answer for it.
async fn send_with(ws: &mut Ws, room: i64, body: &str, attachments: &[&str]) -> Value {
    let cid = unique("c");
    let deadline = tokio::time::Instant::now() + confab_tests::DEADLINE;
    loop {
        ws.send(json!({"type": "send", "room": room, "cid": cid, "body": body, "attachments": attachments})).await;
        let answer = ws.recv_where("the answer to a send", |v| v["cid"] == cid || v["ref"] == cid).await;
        if answer["code"] != "retry" {
            return answer;
        }
        assert!(tokio::time::Instant::now() < deadline, "still retry: {answer}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Held messages carry their attachments (claimed when held: another send cannot take them;
/// staff see them; the release sequences them with the message); the room's moderation queue
/// actor is killed while messages are held and its restart loses nothing; a mute from a held
/// message's queue item rejects the message and mutes its sender for the given time, with the
/// given reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_messages_carry_attachments_and_outlive_a_killed_queue() {
    let mut opts = NodeOpts::default();
    opts.args.uploads.uploads_per_minute = Some(0);
    let PremodRoom { node, owner, sender, room, mut owner_ws, mut sender_ws } = premod_room(opts).await;

    let file = upload_text(&sender, "notes.txt", b"some notes to review").await;
    let held = send_with(&mut sender_ws, room, "with a file", &[&file]).await;
    assert_eq!(held["type"], "held", "{held}");
    let queued = owner_ws.recv_where("queued", |v| v["type"] == "queued" && v["item"]["id"] == held["item"]).await;
    assert_eq!(queued["item"]["attachments"][0]["name"], "notes.txt", "{queued}");
    // Claimed by the held message: another message cannot carry it.
    let other = send_with(&mut sender_ws, room, "the same file again", &[&file]).await;
    assert_eq!(other["code"], "attachment_used", "{other}");

    // The queue actor dies with messages held; a new one takes over.
    let rid = confab_schemas::RoomId(room);
    assert!(node.system().kill_queue(rid).await, "the room's queue runs beside it");
    let second = send_with(&mut sender_ws, room, "held after the kill", &[]).await;
    assert_eq!(second["type"], "held", "{second}");
    let third = send_with(&mut sender_ws, room, "to be rejected with a mute", &[]).await;
    assert_eq!(third["type"], "held", "{third}");
    assert!(node.system().kill_queue(rid).await);

    let decide = |item: &Value, body: Value| {
        let path = format!("/api/rooms/{room}/queue/{item}/decision");
        let owner = &owner;
        async move { owner.post(&path, body).await }
    };
    let (s, item) = decide(&held["item"], json!({"action": "release"})).await;
    assert_eq!((s, &item["status"]), (200, &json!("released")), "{item}");
    let ack = sender_ws.recv_where("ack", |v| v["type"] == "ack" && v["cid"] == held["cid"]).await;
    let msg = owner_ws.recv_where("the released message", |v| v["type"] == "message" && v["seq"] == ack["seq"]).await;
    assert_eq!(msg["body"], "with a file");
    assert_eq!(msg["attachments"][0]["id"], json!(file), "{msg}");
    assert_eq!(confab_tests::fetch(&node.base, msg["attachments"][0]["url"].as_str().unwrap(), None).await.0, 200);
    let (s, item) = decide(&second["item"], json!({"action": "release"})).await;
    assert_eq!((s, &item["status"]), (200, &json!("released")), "{item}");

    // A mute from a held message: it is rejected, its sender muted for 5 minutes, with the reason.
    let (s, item) = decide(&third["item"], json!({"action": "mute", "minutes": 5, "reason": "too pushy"})).await;
    assert_eq!((s, &item["status"]), (200, &json!("rejected")), "{item}");
    sender_ws.recv_where("rejected", |v| v["type"] == "rejected" && v["cid"] == third["cid"]).await;
    let (_, list) = owner.get(&format!("/api/rooms/{room}/sanctions")).await;
    let mute = &list["sanctions"][0];
    assert_eq!((&mute["kind"], &mute["reason"]), (&json!("mute"), &json!("too pushy")), "{list}");
    let ends = mute["expires_at"].as_i64().unwrap() - confab_schemas::now_ms();
    assert!((4 * 60_000..=5 * 60_000).contains(&ends), "muted for 5 minutes: {list}");
    assert_eq!(send(&mut sender_ws, room, "muted now").await["code"], "muted");
    // Deciding again is a conflict; a report-only action on a held message is refused.
    assert_eq!(decide(&third["item"], json!({"action": "release"})).await.0, 409);
    // Gap-free: the two released messages follow the history.
    let (_, h) = owner.get(&format!("/api/rooms/{room}/messages")).await;
    let seqs: Vec<u64> = h["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2], "{h}");
    assert!(!h.to_string().contains("to be rejected"));
    let (_, audit) = owner.get(&format!("/api/rooms/{room}/queue?status=all")).await;
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(3), "{audit}");
}

/// What the flood and repeat flags count is not reset by a restart of the room's actor (as on a
/// move to another node: the new incarnation counts the sender's stored messages) nor by the
/// sender reconnecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flag_counts_outlive_a_room_restart_and_a_reconnect() {
    let node = TestNode::start(NodeOpts::default()).await;
    let owner = node.user(&unique("owner")).await;
    let sender = node.user(&unique("sender")).await;
    let flooder = node.user(&unique("flooder")).await;
    let room = owner.create_room(&unique("room"), "public").await;
    let patch = |flags: Value| set_flags(&owner, room, flags);
    patch(
        json!({"repeats": {"count": 3, "seconds": 600}, "flood": {"messages": 4, "seconds": 600, "mute_minutes": 5}}),
    )
    .await;
    let rid = confab_schemas::RoomId(room);

    // Two identical messages, then the room restarts and the sender reconnects: the third is refused.
    let mut ws = member(&node, &sender, room).await;
    assert_eq!(send(&mut ws, room, "buy now").await["type"], "ack");
    assert_eq!(send(&mut ws, room, "buy now").await["type"], "ack");
    assert!(node.system().kill_room(rid).await);
    ws.close().await;
    let mut ws = member(&node, &sender, room).await;
    assert_eq!(send(&mut ws, room, "buy now").await["code"], "repeated");

    // Four messages, a restart, a reconnect: the fifth floods.
    let mut fw = member(&node, &flooder, room).await;
    for i in 0..4 {
        assert_eq!(send(&mut fw, room, &format!("m{i}")).await["type"], "ack");
    }
    assert!(node.system().kill_room(rid).await);
    fw.close().await;
    let mut fw = member(&node, &flooder, room).await;
    assert_eq!(send(&mut fw, room, "m4").await["code"], "muted");
    // And the flood mute is stored: it holds after another restart.
    eventually("the flood mute stored", || {
        let owner = &owner;
        async move {
            let (_, s) = owner.get(&format!("/api/rooms/{room}/sanctions")).await;
            (s["sanctions"].as_array().is_some_and(|a| !a.is_empty())).then_some(())
        }
    })
    .await;
    assert!(node.system().kill_room(rid).await);
    assert_eq!(send(&mut fw, room, "m5").await["code"], "muted");
}

/// The admins' list of rooms: private rooms too, with owner and member count, searched, sorted
/// and paged; deleting one with a reason (audited; its members told); a site moderator is
/// refused (they see no private room); a system room is not deleted; bad input is a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_list_every_room_and_delete_one() {
    let node = TestNode::start(NodeOpts::default()).await;
    let admin = node.user_with_role("admin", Role::Admin).await;
    let moderator = node.user_with_role("sitemod", Role::Moderator).await;
    let owner = node.user(&unique("owner")).await;
    let friend = node.user(&unique("friend")).await;
    let tag = unique("zq");
    let private = owner.create_room(&format!("{tag}-secret"), "private").await;
    let public = owner.create_room(&format!("{tag}-open"), "public").await;
    let (s, _) = owner.post(&format!("/api/rooms/{private}/members"), json!({"username": friend.username})).await;
    assert_eq!(s, 204);

    let (s, page) = admin.get(&format!("/api/admin/rooms?q={}", tag.to_uppercase())).await;
    assert_eq!(s, 200, "{page}");
    let rooms = page["rooms"].as_array().unwrap();
    assert_eq!(rooms.len(), 2, "{page}");
    let secret = rooms.iter().find(|r| r["id"] == private).expect("the private room is listed");
    assert_eq!(
        (&secret["visibility"], &secret["owner"]["username"], &secret["members"]),
        (&json!("private"), &json!(owner.username), &json!(2)),
        "{page}"
    );
    assert!(page["next_offset"].is_null());
    let (_, by_members) = admin.get(&format!("/api/admin/rooms?q={tag}&sort=members&limit=1")).await;
    assert_eq!((&by_members["rooms"][0]["id"], &by_members["next_offset"]), (&json!(private), &json!(1)));
    let (_, next) = admin.get(&format!("/api/admin/rooms?q={tag}&sort=members&limit=1&offset=1")).await;
    assert_eq!((&next["rooms"][0]["id"], &next["next_offset"]), (&json!(public), &Value::Null), "{next}");
    for bad in ["sort=loudest", "limit=0", "limit=201"] {
        assert_eq!(admin.get(&format!("/api/admin/rooms?{bad}")).await.0, 400, "{bad}");
    }
    // Site moderators see no private room: the list is the admins'.
    let (s, body) = moderator.get("/api/admin/rooms").await;
    assert_eq!((s, code(&body)), (403, Some("forbidden")));
    assert_eq!(moderator.call(Method::DELETE, &format!("/api/admin/rooms/{private}"), None).await.0, 403);

    // Deleted by an admin: the member is told, the room is gone, the audit log says why.
    let mut fws = friend.ws(&node.ws_url).await;
    fws.join(private, None).await;
    let (s, body) = admin.call(Method::DELETE, &format!("/api/admin/rooms/{private}?reason=abuse"), None).await;
    assert_eq!(s, 204, "{body}");
    fws.recv_where("the room's deletion", |v| v["room"] == private && v.to_string().contains("delete")).await;
    assert_eq!(owner.get(&format!("/api/rooms/{private}")).await.0, 404);
    let (_, audit) = admin.get("/api/admin/audit?action=admin.delete_room").await;
    let entry = &audit["entries"][0];
    assert_eq!(entry["room"], private, "{audit}");
    assert!(entry.to_string().contains("abuse"), "{audit}");
    let (_, page) = admin.get(&format!("/api/admin/rooms?q={tag}")).await;
    assert_eq!(page["rooms"].as_array().map(Vec::len), Some(1), "{page}");
    // Not the system room; not a room that does not exist.
    let general = admin.room_id("general").await;
    let (s, body) = admin.call(Method::DELETE, &format!("/api/admin/rooms/{general}"), None).await;
    assert_eq!((s, code(&body)), (403, Some("forbidden")), "{body}");
    assert_eq!(admin.call(Method::DELETE, "/api/admin/rooms/999999999", None).await.0, 404);
}

/// A held message's file outlives the uploads' orphan time while it waits (the sweeper keeps it):
/// released after that time, the message carries it; a rejected one's file is swept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_message_keeps_its_file_from_the_sweeper_until_decided() {
    let mut opts = NodeOpts::default();
    opts.args.uploads.uploads_per_minute = Some(0);
    opts.args.uploads.upload_orphan_ttl_secs = Some(2);
    opts.args.uploads.upload_sweep_secs = Some(1);
    let PremodRoom { node, owner, sender, room, mut owner_ws, mut sender_ws } = premod_room(opts).await;
    let file_of = |id: &str| node.db.dir.path().join("blobs").join("u").join(id);
    let kept = upload_text(&sender, "kept.txt", b"released later").await;
    let dropped = upload_text(&sender, "dropped.txt", b"rejected later").await;
    let held_kept = send_with(&mut sender_ws, room, "keep my file", &[&kept]).await;
    let held_dropped = send_with(&mut sender_ws, room, "drop my file", &[&dropped]).await;
    assert_eq!((&held_kept["type"], &held_dropped["type"]), (&json!("held"), &json!("held")));

    // An upload no message took is swept once the orphan time is up; the held ones are not.
    let orphan = upload_text(&sender, "orphan.txt", b"never sent").await;
    eventually("the orphan to be swept", || async { (!file_of(&orphan).exists()).then_some(()) }).await;
    let metrics = node.system().metrics().clone();
    let runs = metrics.sweeper_runs.load(std::sync::atomic::Ordering::Relaxed);
    eventually("two more sweeps", || async {
        (metrics.sweeper_runs.load(std::sync::atomic::Ordering::Relaxed) >= runs + 2).then_some(())
    })
    .await;
    assert!(file_of(&kept).exists() && file_of(&dropped).exists(), "held messages' files are kept");

    let decide = |item: &Value, action: &str| {
        let path = format!("/api/rooms/{room}/queue/{item}/decision");
        let owner = &owner;
        let body = json!({"action": action});
        async move { owner.post(&path, body).await }
    };
    assert_eq!(decide(&held_kept["item"], "release").await.0, 200);
    let msg =
        owner_ws.recv_where("the released message", |v| v["type"] == "message" && v["body"] == "keep my file").await;
    assert_eq!(confab_tests::fetch(&node.base, msg["attachments"][0]["url"].as_str().unwrap(), None).await.0, 200);
    assert_eq!(decide(&held_dropped["item"], "reject").await.0, 200);
    eventually("the rejected message's file to go", || async { (!file_of(&dropped).exists()).then_some(()) }).await;
    let runs = metrics.sweeper_runs.load(std::sync::atomic::Ordering::Relaxed);
    eventually("two more sweeps", || async {
        (metrics.sweeper_runs.load(std::sync::atomic::Ordering::Relaxed) >= runs + 2).then_some(())
    })
    .await;
    assert!(file_of(&kept).exists(), "the released message's file stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_and_reports_reach_the_rooms_staff_live() {
    let node = TestNode::start(NodeOpts::default()).await;
    let site_mod = node.user_with_role("sitemod", Role::Moderator).await;
    let owner = node.user(&unique("owner")).await;
    let sender = node.user(&unique("sender")).await;
    let reporter = node.user(&unique("reporter")).await;
    let room = owner.create_room(&unique("room"), "public").await;
    let mut owner_ws = member(&node, &owner, room).await;
    let mut site_ws = member(&node, &site_mod, room).await;
    let mut sender_ws = member(&node, &sender, room).await;
    let mut reporter_ws = member(&node, &reporter, room).await;
    assert_eq!(send(&mut sender_ws, room, "one").await["seq"], 1);
    assert_eq!(send(&mut sender_ws, room, "two").await["seq"], 2);
    set_flags(&owner, room, json!({"banned_words": {"words": ["spam"], "action": "refuse"}})).await;

    // An automatic flag: the owner and the site moderator joined see it without reloading.
    assert_eq!(send(&mut sender_ws, room, "buy spam").await["code"], "banned_word");
    for ws in [&mut owner_ws, &mut site_ws] {
        let q = ws.recv_where("the flag queued", |v| v["type"] == "queued" && v["item"]["kind"] == "flag").await;
        assert_eq!(q["room"], room, "{q}");
        assert_eq!(q["item"]["body"], "buy spam", "{q}");
        assert_eq!(q["item"]["sender"]["username"], json!(sender.username), "{q}");
        assert_eq!(q["item"]["status"], "open", "{q}");
    }
    // A member's report, with the messages around the reported one.
    let (s, report) = reporter.post(&format!("/api/rooms/{room}/reports"), json!({"seq": 2, "reason": "rude"})).await;
    assert_eq!(s, 201, "{report}");
    for ws in [&mut owner_ws, &mut site_ws] {
        let q = ws.recv_where("the report queued", |v| v["type"] == "queued" && v["item"]["id"] == report["id"]).await;
        assert_eq!(q["item"]["kind"], "report", "{q}");
        assert_eq!(q["item"]["reporter"]["username"], json!(reporter.username), "{q}");
        assert_eq!(q["item"]["body"], "two", "{q}");
        let ctx: Vec<&str> =
            q["item"]["context"].as_array().unwrap().iter().filter_map(|c| c["body"].as_str()).collect();
        assert!(ctx.starts_with(&["one", "two"]), "{q}");
    }
    // Members who are not staff get none: a message sent after them reaches them with no
    // `queued` frame before it (the room tells its staff in order with its messages).
    assert_eq!(send(&mut owner_ws, room, "after").await["type"], "ack");
    for ws in [&mut sender_ws, &mut reporter_ws] {
        ws.recv_where("the later message", |v| v["type"] == "message" && v["body"] == "after").await;
        assert!(!ws.backlog.iter().any(|v| v["type"] == "queued"), "{:?}", ws.backlog);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_staff_decide_in_private_rooms_they_are_not_in() {
    let node = TestNode::start(NodeOpts::default()).await;
    let admin = node.user_with_role("admin", Role::Admin).await;
    let site_mod = node.user_with_role("sitemod", Role::Moderator).await;
    let owner = node.user(&unique("owner")).await;
    let sender = node.user(&unique("sender")).await;
    let other_mod = node.user(&unique("othermod")).await;
    let room = owner.create_room(&unique("secret"), "private").await;
    let _theirs = other_mod.create_room(&unique("theirs"), "public").await;
    let (s, b) = owner.post(&format!("/api/rooms/{room}/members"), json!({"username": sender.username})).await;
    assert!(s == 200 || s == 201 || s == 204, "{s} {b}");
    let mut sender_ws = member(&node, &sender, room).await;
    let first = send(&mut sender_ws, room, "first").await;
    assert_eq!(first["type"], "ack", "{first}");
    let (s, m) =
        owner.call(Method::PATCH, &format!("/api/rooms/{room}/moderation"), Some(json!({"premod": true}))).await;
    assert_eq!(s, 200, "{m}");
    let (mut held, mut held_cids) = (Vec::new(), Vec::new());
    for body in ["held one", "held two", "held three"] {
        let answer = send(&mut sender_ws, room, body).await;
        assert_eq!(answer["type"], "held", "{answer}");
        held.push(answer["item"].as_i64().unwrap());
        held_cids.push(answer["cid"].clone());
    }
    let (s, report) =
        owner.post(&format!("/api/rooms/{room}/reports"), json!({"seq": first["seq"], "reason": "check"})).await;
    assert_eq!(s, 201, "{report}");
    let decision = |item: i64| format!("/api/rooms/{room}/queue/{item}/decision");

    // Neither a plain user nor a moderator of another room sees or decides anything here.
    for (who, caller) in [("user", &sender), ("moderator of another room", &other_mod)] {
        let (s, b) = caller.post(&decision(held[0]), json!({"action": "release"})).await;
        assert_eq!(s, 403, "{who}: {b}");
        let (s, b) = caller.get(&format!("/api/rooms/{room}/queue")).await;
        assert_eq!(s, 403, "{who}: {b}");
    }
    // A site moderator who is no member lists the queue and decides; an admin too.
    let (s, q) = site_mod.get(&format!("/api/rooms/{room}/queue")).await;
    assert_eq!((s, q["items"].as_array().map(Vec::len)), (200, Some(4)), "{q}");
    let (s, item) = site_mod.post(&decision(held[0]), json!({"action": "release"})).await;
    assert_eq!((s, &item["status"]), (200, &json!("released")), "{item}");
    let ack = sender_ws.recv_where("the release's ack", |v| v["type"] == "ack" && v["cid"] == held_cids[0]).await;
    assert_eq!(ack["seq"], first["seq"].as_u64().unwrap() + 1, "the next seq: {ack}");
    let (s, item) = admin.post(&decision(held[1]), json!({"action": "reject", "reason": "off topic"})).await;
    assert_eq!((s, &item["status"]), (200, &json!("rejected")), "{item}");
    let (s, item) = site_mod.post(&decision(report["id"].as_i64().unwrap()), json!({"action": "dismiss"})).await;
    assert_eq!((s, &item["status"]), (200, &json!("dismissed")), "{item}");
    // Still no member, and bad input still gets its clear answer.
    let (_, r) = owner.get(&format!("/api/rooms/{room}")).await;
    assert!(!r["members"].to_string().contains(&site_mod.username), "{r}");
    let (s, b) = site_mod.post(&decision(held[2]), json!({"action": "dismiss"})).await;
    assert_eq!((s, code(&b)), (400, Some("invalid")), "{b}");
    let (s, b) = site_mod.post(&decision(999_999), json!({"action": "release"})).await;
    assert_eq!((s, code(&b)), (404, Some("not_found")), "{b}");
    let (s, b) =
        site_mod.post(&format!("/api/rooms/999999/queue/{}/decision", held[2]), json!({"action": "release"})).await;
    assert_eq!(s, 404, "{b}");
    let (_, audit) = admin.get("/api/admin/audit?action=room.queue_released").await;
    assert_eq!(audit["entries"][0]["room"], room, "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reject_carries_its_reason_to_the_sender_and_the_audit_log() {
    let node = TestNode::start(NodeOpts::default()).await;
    let admin = node.user_with_role("admin", Role::Admin).await;
    let owner = node.user(&unique("owner")).await;
    let sender = node.user(&unique("sender")).await;
    let room = owner.create_room(&unique("room"), "public").await;
    let mut sender_ws = member(&node, &sender, room).await;
    let (s, m) =
        owner.call(Method::PATCH, &format!("/api/rooms/{room}/moderation"), Some(json!({"premod": true}))).await;
    assert_eq!(s, 200, "{m}");
    let with = send(&mut sender_ws, room, "with a reason").await;
    let without = send(&mut sender_ws, room, "without one").await;
    assert_eq!((&with["type"], &without["type"]), (&json!("held"), &json!("held")));
    let decision = |held: &Value| format!("/api/rooms/{room}/queue/{}/decision", held["item"]);

    // Bad input: a reason too long, or not text.
    let (s, b) = owner.post(&decision(&with), json!({"action": "reject", "reason": "x".repeat(501)})).await;
    assert_eq!((s, code(&b)), (400, Some("invalid")), "{b}");
    let (s, b) = owner.post(&decision(&with), json!({"action": "reject", "reason": 5})).await;
    assert_eq!(s, 400, "{b}");

    let (s, item) = owner.post(&decision(&with), json!({"action": "reject", "reason": "  not here, please  "})).await;
    assert_eq!((s, &item["status"], &item["decision_reason"]), (200, &json!("rejected"), &json!("not here, please")));
    let r = sender_ws.recv_where("rejected", |v| v["type"] == "rejected" && v["cid"] == with["cid"]).await;
    assert_eq!(r["reason"], "not here, please", "{r}");
    // A resend of its cid is told the same reason.
    sender_ws.send(json!({"type": "send", "room": room, "cid": with["cid"], "body": "with a reason"})).await;
    let r = sender_ws.recv_where("rejected again", |v| v["type"] == "rejected" && v["cid"] == with["cid"]).await;
    assert_eq!(r["reason"], "not here, please", "{r}");
    // No reason: the sender is told it was rejected, with no moderator's words.
    let (s, item) = owner.post(&decision(&without), json!({"action": "reject"})).await;
    assert_eq!((s, &item["status"]), (200, &json!("rejected")), "{item}");
    let r = sender_ws.recv_where("rejected", |v| v["type"] == "rejected" && v["cid"] == without["cid"]).await;
    assert_eq!(r["reason"], "a moderator rejected this message", "{r}");

    let (_, audit) = admin.get("/api/admin/audit?action=room.queue_rejected").await;
    let details: Vec<Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["room"] == room)
        .map(|e| e["detail"].clone())
        .collect();
    assert_eq!(details.len(), 2, "{audit}");
    assert!(details.iter().any(|d| d["reason"] == "not here, please" && d["item"] == with["item"]), "{details:?}");
    assert!(details.iter().any(|d| d["reason"] == "" && d["item"] == without["item"]), "{details:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admins_room_search_ignores_case_beyond_ascii() {
    let node = TestNode::start(NodeOpts::default()).await;
    let admin = node.user_with_role("admin", Role::Admin).await;
    let owner = node.user(&unique("owner")).await;
    // No digit in the names, so a search for the owner's id could match only the key's prefix.
    let tag: String =
        unique("t").chars().map(|c| if c.is_ascii_digit() { (b'a' + (c as u8 - b'0')) as char } else { c }).collect();
    let public = format!("Ärger {tag}");
    let private = format!("ÖL Straße {tag}");
    owner.create_room(&public, "public").await;
    owner.create_room(&private, "private").await;
    let names = |q: String| {
        let admin = &admin;
        async move {
            let (s, b) = admin.get(&format!("/api/admin/rooms?q={}", urlencode(&q))).await;
            assert_eq!(s, 200, "{b}");
            let mut names: Vec<String> =
                b["rooms"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect();
            names.sort();
            names
        }
    };
    assert_eq!(names(format!("ärger {tag}")).await, vec![public.clone()]);
    assert_eq!(names(format!("ÄRGER {tag}")).await, vec![public.clone()]);
    assert_eq!(names(format!("öl straße {tag}")).await, vec![private.clone()]);
    assert_eq!(names(format!("Öl STRASSE {tag}")).await, Vec::<String>::new(), "ß is no ss");
    assert_eq!(names(tag.to_uppercase()).await, [public.clone(), private.clone()]);
    // A private room's key holds its owner's id: a search for the id finds no room by it.
    assert_eq!(names(format!("{}", owner.user_id)).await.iter().filter(|n| n.ends_with(&tag)).count(), 0);
    assert_eq!(names("%".into()).await.iter().filter(|n| n.ends_with(&tag)).count(), 0);
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}
