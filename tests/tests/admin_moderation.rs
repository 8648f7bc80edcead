//! Site-wide moderation over `/api/admin/…`: every route refuses users and room owners (a table
//! over all routes), bans close sockets and refuse sign-ins until lifted, kicks close sockets the
//! user may reopen, mutes refuse sends with `muted` until they end, broadcasts reach connected
//! users and are listed for later ones, demotions take effect at once, and the audit log lists
//! every action. On SQLite, or PostgreSQL with `CONFAB_TEST_DATABASE_URL`.

use confab_schemas::Role;
use confab_tests::client::login;
use confab_tests::{Api, NodeOpts, TestNode, Ws, error_code as code, eventually, unique};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Sends a message with a fresh cid and returns the answer: an `ack` or an `error` for it.
async fn try_send(ws: &mut Ws, room: i64) -> Value {
    let cid = unique("c");
    ws.send(json!({"type": "send", "room": room, "cid": cid, "body": "hello"})).await;
    ws.recv_where("the answer to a send", |v| (v["type"] == "ack" && v["cid"] == cid) || v["ref"] == cid).await
}

/// Sends (polling every 50 ms) until an answer satisfies `pred`, or fails after the deadline.
async fn send_until(ws: &mut Ws, room: i64, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + confab_tests::DEADLINE;
    loop {
        let answer = try_send(ws, room).await;
        if pred(&answer) {
            return answer;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}: {answer}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn audit_actions(admin: &Api, query: &str) -> Vec<(String, String)> {
    let (status, body) = admin.get(&format!("/api/admin/audit?{query}")).await;
    assert_eq!(status, 200, "{body}");
    body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap().to_owned(), e["target"]["username"].as_str().unwrap_or("").to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_refuses_users_room_owners_and_moderators_where_admin_only() {
    let node = TestNode::start(NodeOpts::default()).await;
    let admin = node.user_with_role("admin", Role::Admin).await;
    let moderator = node.user_with_role("mod", Role::Moderator).await;
    let user = node.user(&unique("plain")).await;
    let owner = node.user(&unique("owner")).await;
    let victim = node.user(&unique("victim")).await;
    let owned = owner.create_room(&unique("owned"), "private").await;
    let v = &victim.username;

    // (method, path, body, moderators may)
    let routes: Vec<(Method, String, Option<Value>, bool)> = vec![
        (Method::GET, "/api/admin/users".into(), None, true),
        (Method::POST, format!("/api/admin/users/{v}/role"), Some(json!({"role": "admin"})), false),
        (Method::GET, "/api/admin/audit".into(), None, false),
        (Method::GET, "/api/admin/stats".into(), None, false),
        (Method::POST, "/api/admin/bans".into(), Some(json!({"username": v, "reason": "spam"})), true),
        (Method::DELETE, format!("/api/admin/bans/{v}"), None, true),
        (Method::POST, "/api/admin/kicks".into(), Some(json!({"username": v})), true),
        (Method::POST, "/api/admin/mutes".into(), Some(json!({"username": v, "seconds": 60, "reason": "x"})), true),
        (Method::DELETE, format!("/api/admin/mutes/{v}"), None, true),
        (Method::POST, "/api/admin/broadcasts".into(), Some(json!({"body": "hello all"})), false),
        (Method::POST, format!("/api/admin/users/{v}/password"), None, false),
        (Method::GET, "/api/admin/rooms".into(), None, false),
        (Method::GET, "/api/admin/rooms?q=owned&sort=newest".into(), None, false),
        (Method::DELETE, format!("/api/admin/rooms/{owned}?reason=x"), None, false),
        (Method::GET, "/api/admin/queue".into(), None, true),
        (Method::GET, "/api/admin/moderation".into(), None, true),
        (
            Method::PUT,
            "/api/admin/moderation".into(),
            Some(json!({"flags": {"repeats": {"count": 2, "seconds": 9}}})),
            false,
        ),
    ];
    let mut victim_ws = victim.ws(&node.ws_url).await;
    for (method, path, body, moderators) in &routes {
        let mut callers = vec![("user", &user), ("room owner", &owner), ("the target", &victim)];
        if !moderators {
            callers.push(("site moderator", &moderator));
        }
        for (who, caller) in callers {
            let (status, answer) = caller.call(method.clone(), path, body.clone()).await;
            assert_eq!((status, code(&answer)), (403, Some("forbidden")), "{who} {method} {path}: {answer}");
        }
        let (status, answer) = reqwest::Client::new()
            .request(method.clone(), format!("{}{path}", node.base))
            .send()
            .await
            .map(|r| (r.status().as_u16(), r))
            .unwrap();
        assert_eq!(status, 401, "{method} {path} without a login: {:?}", answer.text().await);
    }

    // Nothing changed: no staff action in the log, the victim signs in, sends, keeps their role,
    // their socket stayed open, and no announcement exists.
    let staff_actions: Vec<_> =
        audit_actions(&admin, "limit=200").await.into_iter().filter(|(a, _)| a.starts_with("admin.")).collect();
    assert!(staff_actions.is_empty(), "{staff_actions:?}");
    assert_eq!(login(&node.base, v, "correct horse").await.0, 200);
    let room = victim.create_room(&unique("mine"), "public").await;
    victim_ws.join(room, None).await;
    assert_eq!(try_send(&mut victim_ws, room).await["type"], "ack");
    let (_, me) = victim.get("/api/me").await;
    assert_eq!(me["user"]["role"], "user");
    assert_eq!(victim.get("/api/broadcasts").await.1["broadcasts"], json!([]));
    assert_eq!(owner.get(&format!("/api/rooms/{owned}")).await.0, 200, "the owner's room is still there");
    assert_eq!(admin.get("/api/admin/moderation").await.1["flags"], json!({}), "the site's flags are unchanged");

    // Staff never act on their own rank or above, nor on themselves.
    let (status, body) = moderator.post("/api/admin/bans", json!({"username": admin.username, "reason": "r"})).await;
    assert_eq!((status, code(&body)), (403, Some("forbidden")));
    let (status, body) =
        admin.post(&format!("/api/admin/users/{}/role", admin.username), json!({"role": "user"})).await;
    assert_eq!((status, code(&body)), (403, Some("forbidden")));
    // Bad input: a clear 400 or 404.
    for (path, body, expect) in [
        ("/api/admin/bans", json!({"username": v}), 400),
        ("/api/admin/bans", json!({"username": v, "reason": "r", "expires_at": 1}), 400),
        ("/api/admin/bans", json!({"username": "nobody_at_all", "reason": "r"}), 404),
        ("/api/admin/mutes", json!({"username": v, "seconds": 0}), 400),
        ("/api/admin/broadcasts", json!({"body": "   "}), 400),
        ("/api/admin/bans", json!({"reason": "r"}), 400),
    ] {
        let (status, answer) = admin.post(path, body.clone()).await;
        assert_eq!(status, expect, "{path} {body}: {answer}");
        assert!(code(&answer).is_some(), "{answer}");
    }
    let (status, body) = admin.post(&format!("/api/admin/users/{v}/role"), json!({"role": "emperor"})).await;
    assert_eq!((status, code(&body)), (400, Some("invalid")));
    let (status, _) = admin.get("/api/admin/users?sort=shoe_size").await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_closes_sockets_and_refuses_sign_in_until_lifted() {
    let node = TestNode::start(NodeOpts::default()).await;
    let moderator = node.user_with_role("mod", Role::Moderator).await;
    let admin = node.user_with_role("admin", Role::Admin).await;
    let victim = node.user(&unique("victim")).await;
    let mut first = victim.ws(&node.ws_url).await;
    let mut second = victim.ws(&node.ws_url).await;
    let (_, earlier) = login(&node.base, &victim.username, "correct horse").await;
    let refresh_token = earlier["refresh_token"].as_str().unwrap().to_owned();

    let (status, body) =
        moderator.post("/api/admin/bans", json!({"username": victim.username, "reason": "spam links"})).await;
    assert_eq!(status, 201, "{body}");
    for ws in [&mut first, &mut second] {
        let frames = ws.until_closed().await;
        assert!(frames.iter().any(|f| f["type"] == "error" && f["code"] == "banned"), "{frames:?}");
    }
    let (status, body) = login(&node.base, &victim.username, "correct horse").await;
    assert_eq!((status, code(&body)), (403, Some("banned")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("spam links"), "{body}");
    let (status, body) = victim.get("/api/me").await;
    assert_eq!((status, code(&body)), (403, Some("banned")), "the token of an earlier login no longer works");
    let (status, body) = victim.post("/api/auth/refresh", json!({"refresh_token": refresh_token})).await;
    assert_eq!((status, code(&body)), (403, Some("banned")), "no refresh while banned: {body}");
    let mut req = node.ws_url.as_str().into_client_request().unwrap();
    req.headers_mut().insert("authorization", HeaderValue::from_str(&format!("Bearer {}", victim.token)).unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("a banned user connected: {:?}", other.map(|_| ())),
    }
    // A first `auth` frame gets an `error` frame `banned`.
    let mut anon = Ws::anonymous(&node.ws_url).await;
    anon.send(json!({"type": "auth", "token": victim.token})).await;
    anon.expect_error("banned").await;

    let (_, users) = admin.get(&format!("/api/admin/users?q={}", victim.username)).await;
    let row = &users["users"][0];
    assert_eq!((row["username"].as_str(), row["banned"].as_bool()), (Some(victim.username.as_str()), Some(true)));
    assert_eq!(row["ban"]["reason"], "spam links");
    assert!(admin.get("/api/admin/stats").await.1["banned"].as_i64().unwrap() >= 1);

    let (status, _) = moderator.call(Method::DELETE, &format!("/api/admin/bans/{}", victim.username), None).await;
    assert_eq!(status, 204);
    let (status, body) = moderator.call(Method::DELETE, &format!("/api/admin/bans/{}", victim.username), None).await;
    assert_eq!((status, code(&body)), (404, Some("not_found")));
    assert_eq!(login(&node.base, &victim.username, "correct horse").await.0, 200);
    victim.ws(&node.ws_url).await.ping().await;

    // A ban that has run out is no ban.
    let soon = confab_schemas::now_ms() + 1_500;
    let (status, _) = admin
        .post("/api/admin/bans", json!({"username": victim.username, "reason": "cool off", "expires_at": soon}))
        .await;
    assert_eq!(status, 201);
    assert_eq!(login(&node.base, &victim.username, "correct horse").await.0, 403);
    eventually("the ban to run out", || async {
        (login(&node.base, &victim.username, "correct horse").await.0 == 200).then_some(())
    })
    .await;

    let actions = audit_actions(&admin, &format!("target={}", victim.username)).await;
    let names: Vec<&str> = actions.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(names, ["admin.ban", "admin.unban", "admin.ban"], "newest first");
    let (_, page) = admin.get(&format!("/api/admin/audit?actor={}&action=admin.ban", moderator.username)).await;
    let entry = &page["entries"][0];
    assert_eq!(entry["actor"]["username"], moderator.username.as_str());
    assert_eq!(entry["target"]["username"], victim.username.as_str());
    assert_eq!(entry["detail"]["reason"], "spam links");
    let (_, one) = admin.get(&format!("/api/admin/audit?target={}&limit=1", victim.username)).await;
    let before = one["next_before"].as_i64().expect("a next page");
    let (_, rest) = admin.get(&format!("/api/admin/audit?target={}&before={before}", victim.username)).await;
    assert_eq!(rest["entries"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kick_closes_sockets_and_the_user_comes_back() {
    let node = TestNode::start(NodeOpts::default()).await;
    let moderator = node.user_with_role("mod", Role::Moderator).await;
    let victim = node.user(&unique("victim")).await;
    let mut ws = victim.ws(&node.ws_url).await;
    let (status, body) = moderator.post("/api/admin/kicks", json!({"username": victim.username})).await;
    assert_eq!(status, 204, "{body}");
    ws.until_closed().await;
    let room = victim.create_room(&unique("back"), "public").await;
    let mut again = victim.ws(&node.ws_url).await;
    again.join(room, None).await;
    assert_eq!(try_send(&mut again, room).await["type"], "ack");
    let admin = node.user_with_role("admin", Role::Admin).await;
    assert_eq!(audit_actions(&admin, "action=admin.kick").await, [("admin.kick".into(), victim.username.clone())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mute_refuses_sends_until_it_ends_or_is_lifted() {
    let node = TestNode::start(NodeOpts::default()).await;
    let moderator = node.user_with_role("mod", Role::Moderator).await;
    let victim = node.user(&unique("victim")).await;
    let room = victim.create_room(&unique("loud"), "public").await;
    let mut ws = victim.ws(&node.ws_url).await;
    ws.join(room, None).await;
    assert_eq!(try_send(&mut ws, room).await["type"], "ack");

    let (status, body) =
        moderator.post("/api/admin/mutes", json!({"username": victim.username, "seconds": 2, "reason": "flood"})).await;
    assert_eq!(status, 201, "{body}");
    let refused = send_until(&mut ws, room, "a send refused as muted", |a| a["code"] == "muted").await;
    assert_eq!(refused["type"], "error");
    send_until(&mut ws, room, "the mute to end", |a| a["type"] == "ack").await;

    let (status, _) = moderator
        .post("/api/admin/mutes", json!({"username": victim.username, "seconds": 600, "reason": "again"}))
        .await;
    assert_eq!(status, 201);
    send_until(&mut ws, room, "a send refused as muted", |a| a["code"] == "muted").await;
    let admin = node.user_with_role("admin", Role::Admin).await;
    let (_, users) = admin.get(&format!("/api/admin/users?q={}", victim.username)).await;
    assert!(users["users"][0]["muted_until"].as_i64().is_some(), "{users}");
    let (status, _) = moderator.call(Method::DELETE, &format!("/api/admin/mutes/{}", victim.username), None).await;
    assert_eq!(status, 204);
    send_until(&mut ws, room, "the lifted mute", |a| a["type"] == "ack").await;
    let names: Vec<String> =
        audit_actions(&admin, &format!("target={}", victim.username)).await.into_iter().map(|(a, _)| a).collect();
    assert_eq!(names, ["admin.unmute", "admin.mute", "admin.mute"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasts_reach_connected_users_and_later_sign_ins_until_dismissed() {
    let node = TestNode::start(NodeOpts::default()).await;
    let admin = node.user_with_role("admin", Role::Admin).await;
    let online = node.user(&unique("online")).await;
    let mut ws = online.ws(&node.ws_url).await;
    let (status, posted) = admin.post("/api/admin/broadcasts", json!({"body": "maintenance at noon"})).await;
    assert_eq!(status, 201, "{posted}");
    let frame = ws.recv_type("broadcast").await;
    assert_eq!((frame["id"].clone(), frame["body"].as_str()), (posted["id"].clone(), Some("maintenance at noon")));
    assert_eq!(frame["from"]["username"], admin.username.as_str());

    let later = node.user(&unique("later")).await;
    let (_, list) = later.get("/api/broadcasts").await;
    assert_eq!(list["broadcasts"][0]["body"], "maintenance at noon", "{list}");
    let id = posted["id"].as_i64().unwrap();
    let (status, _) = later.post(&format!("/api/broadcasts/{id}/dismiss"), json!({})).await;
    assert_eq!(status, 204);
    assert_eq!(later.get("/api/broadcasts").await.1["broadcasts"], json!([]));
    assert_eq!(online.get("/api/broadcasts").await.1["broadcasts"].as_array().unwrap().len(), 1);
    let (status, _) = later.post("/api/broadcasts/999999999/dismiss", json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(audit_actions(&admin, "action=admin.broadcast").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_moderator_loses_power_at_once_and_stats_count() {
    let node = TestNode::start(NodeOpts::default()).await;
    let admin = node.user_with_role("admin", Role::Admin).await;
    let moderator = node.user_with_role("mod", Role::Moderator).await;
    assert_eq!(moderator.get("/api/admin/users").await.0, 200);
    let (status, body) =
        admin.post(&format!("/api/admin/users/{}/role", moderator.username), json!({"role": "user"})).await;
    assert_eq!((status, body["role"].as_str()), (200, Some("user")), "{body}");
    let (status, body) = moderator.get("/api/admin/users").await;
    assert_eq!((status, code(&body)), (403, Some("forbidden")), "the same token, refused now");
    let (status, _) =
        admin.post(&format!("/api/admin/users/{}/role", moderator.username), json!({"role": "moderator"})).await;
    assert_eq!(status, 200);
    assert_eq!(moderator.get("/api/admin/users").await.0, 200);
    let roles: Vec<String> = audit_actions(&admin, "action=admin.set_role").await.into_iter().map(|(a, _)| a).collect();
    assert_eq!(roles.len(), 2);

    let (status, stats) = admin.get("/api/admin/stats").await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["users"], 2);
    for key in ["online", "messages_total", "messages_today", "banned", "muted"] {
        assert!(stats[key].as_i64().is_some(), "{key}: {stats}");
    }
    assert!(stats["node"]["id"].is_string(), "{stats}");
    let (_, page) = admin.get("/api/admin/users?sort=newest&limit=1").await;
    assert_eq!(page["users"][0]["username"], moderator.username.as_str());
    assert_eq!(page["next_offset"], 1);
    assert_eq!(page["users"][0]["role"], "moderator");
    let (status, page) = admin.get("/api/admin/users?sort=last_seen").await;
    assert_eq!((status, page["users"].as_array().map(Vec::len)), (200, Some(2)), "{page}");
    let (_, page) = admin.get(&format!("/api/admin/users?q={}", &moderator.username[..4])).await;
    let names: Vec<&str> = page["users"].as_array().unwrap().iter().filter_map(|u| u["username"].as_str()).collect();
    assert_eq!(names, [moderator.username.as_str()], "a prefix search");
    let (_, page) = admin.get("/api/admin/users?q=%25").await;
    assert_eq!(page["users"], json!([]), "a % in the search is a character, not a wildcard");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_resets_a_password_and_every_login_ends() {
    let node = TestNode::start(NodeOpts::default()).await;
    let admin = node.user_with_role("admin", Role::Admin).await;
    let victim = node.user(&unique("victim")).await;
    let mut ws = victim.ws(&node.ws_url).await;
    let (status, body) = admin.post(&format!("/api/admin/users/{}/password", victim.username), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let password = body["password"].as_str().unwrap();
    assert_eq!(password.len(), 20);
    ws.until_closed().await;
    assert_eq!(victim.get("/api/me").await.0, 401, "the earlier login ended");
    assert_eq!(login(&node.base, &victim.username, "correct horse").await.0, 401);
    assert_eq!(login(&node.base, &victim.username, password).await.0, 200);
    assert_eq!(
        audit_actions(&admin, "action=admin.reset_password").await,
        [("admin.reset_password".into(), victim.username.clone())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderator_deletes_any_message_and_the_audit_log_says_so() {
    let node = TestNode::start(NodeOpts::default()).await;
    let admin = node.user_with_role("admin", Role::Admin).await;
    let moderator = node.user_with_role("mod", Role::Moderator).await;
    let author = node.user(&unique("author")).await;
    let room = author.create_room(&unique("r"), "public").await;
    let mut wa = author.ws(&node.ws_url).await;
    wa.join(room, None).await;
    let ack = try_send(&mut wa, room).await;
    let seq = ack["seq"].as_u64().unwrap();
    // The author deleting their own message is no moderation: not audited.
    let own = try_send(&mut wa, room).await["seq"].as_u64().unwrap();
    wa.send(json!({"type": "delete", "room": room, "seq": own, "cid": "own"})).await;
    wa.recv_where("the own delete's ack", |v| v["type"] == "ack" && v["cid"] == "own").await;

    let mut wm = moderator.ws(&node.ws_url).await;
    wm.join(room, None).await;
    wm.send(json!({"type": "delete", "room": room, "seq": seq, "cid": "mod-del"})).await;
    wm.recv_where("the delete's ack", |v| v["type"] == "ack" && v["cid"] == "mod-del").await;
    let entries = eventually("the audited delete", || async {
        let (_, page) = admin.get("/api/admin/audit?action=message.delete").await;
        let entries = page["entries"].as_array().cloned().unwrap_or_default();
        (!entries.is_empty()).then_some(entries)
    })
    .await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["actor"]["username"], moderator.username.as_str());
    assert_eq!(entries[0]["target"]["username"], author.username.as_str());
    assert_eq!((entries[0]["room"].as_i64(), entries[0]["detail"]["seq"].as_u64()), (Some(room), Some(seq)));
}
