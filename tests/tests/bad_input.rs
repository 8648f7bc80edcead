//! Bad input gets a clear, stable error and disturbs nobody: malformed and unknown frames, missing
//! fields, limits, unknown rooms, membership, authentication, and the REST equivalents.

use confab::ServeArgs;
use confab_tests::{Api, NodeOpts, TestNode, Ws, unique};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn opts() -> NodeOpts {
    NodeOpts {
        args: ServeArgs {
            max_body_chars: Some(50),
            max_frame_bytes: Some(2048),
            max_rooms_per_session: Some(2),
            ..Default::default()
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_frame_gets_its_error_code_and_the_connection_stays_usable() {
    let node = TestNode::start(opts()).await;
    let (api, other) = (node.user(&unique("bad")).await, node.user(&unique("calm")).await);
    let room = api.room_id("general").await;
    let mut observer = other.ws(&node.ws_url).await;
    observer.join(room, None).await;
    let mut ws = api.ws(&node.ws_url).await;
    ws.join(room, None).await;

    let cases: Vec<(Message, &str)> = vec![
        (Message::text("not json at all"), "bad_frame"),
        (Message::text("[1,2,3]"), "bad_frame"),
        (Message::text("{}"), "missing_field"),
        (Message::text(r#"{"type":"dance"}"#), "unknown_type"),
        (Message::text(r#"{"type":"send","room":1}"#), "missing_field"),
        (Message::text(r#"{"type":"join","room":"one"}"#), "bad_frame"),
        (Message::text(r#"{"type":"send","room":1,"cid":"x","body":"hi","extra":true}"#), "bad_frame"),
        (Message::binary(vec![1u8, 2, 3]), "bad_frame"),
    ];
    for (msg, code) in cases {
        ws.send_raw(msg).await;
        ws.expect_error(code).await;
        ws.ping().await;
    }
    let send = |cid: &str, body: &str| json!({"type": "send", "room": room, "cid": cid, "body": body});
    ws.send(send("long", &"é".repeat(51))).await;
    assert_eq!(ws.expect_error("too_long").await["ref"], "long");
    ws.send(send("empty", "   ")).await;
    ws.expect_error("empty_body").await;
    ws.send(send(&"c".repeat(65), "hi")).await;
    ws.expect_error("invalid").await;
    ws.send(json!({"type": "send", "room": room, "cid": "r", "body": "hi", "reply_to": 999})).await;
    ws.expect_error("invalid").await;
    ws.send(json!({"type": "join", "room": 987654})).await;
    assert_eq!(ws.expect_error("unknown_room").await["room"], 987654, "a join's error names its room");
    let elsewhere = api.create_room(&unique("elsewhere"), "public").await;
    ws.send(
        send("nj", "hi")
            .as_object()
            .map(|o| {
                let mut o = o.clone();
                o.insert("room".into(), json!(elsewhere));
                serde_json::Value::Object(o)
            })
            .unwrap(),
    )
    .await;
    ws.expect_error("not_joined").await;
    ws.send(json!({"type": "read", "room": elsewhere, "seq": 1})).await;
    ws.expect_error("not_joined").await;
    let private = other.create_room(&unique("priv"), "private").await;
    ws.send(json!({"type": "join", "room": private})).await;
    assert_eq!(ws.expect_error("not_member").await["room"], private);
    ws.join(elsewhere, None).await;
    let third = api.create_room(&unique("third"), "public").await;
    ws.send(json!({"type": "join", "room": third})).await;
    ws.expect_error("too_many_rooms").await;
    ws.send(json!({"type": "auth", "token": "forged"})).await;
    ws.expect_error("not_authenticated").await;

    // Still a working connection: a good message goes through, and the observer saw only it.
    ws.send(send("good", "a fine message")).await;
    let ack = ws.recv_type("ack").await;
    assert_eq!(ack["seq"], 1);
    let seen = observer.messages(room, 1).await;
    assert_eq!(seen[0]["body"], "a fine message");
    assert!(observer.backlog.iter().all(|f| f["type"] != "error"), "{:?}", observer.backlog);
    observer.ping().await;

    // An oversize frame ends only that connection, with a reason.
    ws.send(send("huge", &"x".repeat(4096))).await;
    ws.expect_error("frame_too_large").await;
    ws.until_closed().await;
    observer.ping().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_must_authenticate() {
    let node = TestNode::start(NodeOpts::default()).await;
    let api = node.user(&unique("auth")).await;
    // No credentials and a frame other than auth: refused and closed.
    let mut ws = Ws::anonymous(&node.ws_url).await;
    ws.send(json!({"type": "join", "room": 1})).await;
    ws.expect_error("not_authenticated").await;
    ws.until_closed().await;
    // A wrong token in the auth frame.
    let mut ws = Ws::anonymous(&node.ws_url).await;
    ws.send(json!({"type": "auth", "token": "forged"})).await;
    ws.expect_error("not_authenticated").await;
    // The right token in the auth frame.
    let mut ws = Ws::anonymous(&node.ws_url).await;
    ws.send(json!({"type": "auth", "token": api.token})).await;
    assert_eq!(ws.recv_type("hello").await["user"]["username"], api.username);
    // A forged bearer header is refused at the upgrade.
    let mut req = node.ws_url.as_str().into_client_request().unwrap();
    req.headers_mut().insert("authorization", "Bearer forged".parse().unwrap());
    let err = tokio_tungstenite::connect_async(req).await.expect_err("refused");
    assert!(err.to_string().contains("401"), "{err}");
    // A cookie sent from a foreign origin is refused.
    let mut req = node.ws_url.as_str().into_client_request().unwrap();
    req.headers_mut().insert("cookie", format!("confab_session={}", api.token).parse().unwrap());
    req.headers_mut().insert("origin", "https://evil.example".parse().unwrap());
    let err = tokio_tungstenite::connect_async(req).await.expect_err("refused");
    assert!(err.to_string().contains("403"), "{err}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_message_rate_limit_fires_and_recovers() {
    let args = ServeArgs { rate_burst: Some(3), rate_per_sec: Some(20.0), ..Default::default() };
    let node = TestNode::start(NodeOpts { args }).await;
    let api = node.user(&unique("fast")).await;
    let room = api.room_id("general").await;
    let mut ws = api.ws(&node.ws_url).await;
    ws.join(room, None).await;
    for i in 0..4 {
        ws.send(json!({"type": "send", "room": room, "cid": format!("r{i}"), "body": "spam"})).await;
    }
    let limited = ws.expect_error("rate_limited").await;
    assert_eq!(limited["ref"], "r3");
    // The bucket refills: sending the same cid again succeeds within the deadline.
    let deadline = tokio::time::Instant::now() + confab_tests::DEADLINE;
    let ack = loop {
        assert!(tokio::time::Instant::now() < deadline, "the bucket never refilled");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        ws.send(json!({"type": "send", "room": room, "cid": "r3", "body": "spam"})).await;
        let f = ws.recv_where("ack or error", |f| f["type"] == "ack" && f["cid"] == "r3" || f["type"] == "error").await;
        if f["type"] == "ack" {
            break f;
        }
        assert_eq!(f["code"], "rate_limited");
    };
    assert_eq!(ack["seq"], 4);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_refusals_are_json_with_stable_codes() {
    let node = TestNode::start(NodeOpts::default()).await;
    let api = node.user(&unique("rest")).await;
    let http = reqwest::Client::new();
    let base = &node.base;
    let code = |v: &serde_json::Value| v["error"]["code"].as_str().unwrap_or("").to_owned();

    let r = http
        .post(format!("{base}/api/auth/register"))
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(code(&r.json().await.unwrap()), "invalid");
    for (body, status, c) in [
        (json!({"username": api.username.to_uppercase(), "password": "correct horse"}), 409, "conflict"),
        (json!({"username": "no spaces", "password": "long enough"}), 400, "invalid"),
        (json!({"username": unique("shortpw"), "password": "short"}), 400, "invalid"),
    ] {
        let r = http.post(format!("{base}/api/auth/register")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), status, "{body}");
        assert_eq!(code(&r.json().await.unwrap()), c);
    }
    let (status, v) = confab_tests::client::login(base, &api.username, "wrong password").await;
    assert_eq!((status, code(&v).as_str()), (401, "auth_failed"));
    let r = http.get(format!("{base}/api/rooms")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(code(&r.json().await.unwrap()), "not_authenticated");
    let r = http.get(format!("{base}/api/me")).bearer_auth("forged").send().await.unwrap();
    assert_eq!(r.status(), 401);

    let room = api.room_id("general").await;
    for (path, status, c) in [
        (format!("/api/rooms/{room}/messages?limit=500"), 400, "invalid"),
        (format!("/api/rooms/{room}/messages?before=abc"), 400, "invalid"),
        (format!("/api/rooms/{room}/messages?before=5&after=2"), 400, "invalid"),
        ("/api/rooms/987654/messages".to_owned(), 404, "unknown_room"),
        ("/api/rooms/notanumber".to_owned(), 400, "invalid"),
    ] {
        let (s, v) = api.get(&path).await;
        assert_eq!((s, code(&v).as_str()), (status, c), "{path}");
    }
    let (s, v) = api.post("/api/rooms", json!({"name": ""})).await;
    assert_eq!((s, code(&v).as_str()), (400, "invalid"));
    let (s, v) = api.post("/api/rooms", json!({"name": "general"})).await;
    assert_eq!((s, code(&v).as_str()), (409, "conflict"));
    let (s, v) = api.post("/api/rooms", json!({"name": "x", "visibility": "secret"})).await;
    assert_eq!((s, code(&v).as_str()), (400, "invalid"));
    let r = http.get(format!("{base}/ws")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(code(&r.json().await.unwrap()), "invalid");
    let r = http
        .post(format!("{base}/api/rooms"))
        .bearer_auth(&api.token)
        .json(&json!({"name": "y".repeat(100_000)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    // Security headers on every response, errors included.
    for path in ["/", "/healthz", "/api/rooms", "/app.js"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        let h = r.headers();
        assert!(h["content-security-policy"].to_str().unwrap().contains("script-src 'self'"), "{path}");
        assert!(h["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"), "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_stored_and_returned_verbatim() {
    let node = TestNode::start(NodeOpts::default()).await;
    let api: Api = node.user(&unique("verb")).await;
    let room = api.room_id("general").await;
    let mut ws = api.ws(&node.ws_url).await;
    ws.join(room, None).await;
    let bodies = [
        "<img src=x onerror=alert(1)>",
        "'; DROP TABLE messages; --",
        "Robert'); DELETE FROM users WHERE ('1'='1",
        "emoji 🎉 and \u{1} control and \"quotes\"\nnew line\ttab",
    ];
    for (i, b) in bodies.iter().enumerate() {
        ws.send(json!({"type": "send", "room": room, "cid": format!("v{i}"), "body": b})).await;
        ws.recv_where("ack", |f| f["type"] == "ack" && f["cid"] == format!("v{i}")).await;
    }
    // NUL cannot be stored by PostgreSQL: refused on every backend alike.
    ws.send(json!({"type": "send", "room": room, "cid": "nul", "body": "a \u{0} b"})).await;
    assert_eq!(ws.expect_error("invalid").await["ref"], "nul");
    let live = ws.messages(room, bodies.len()).await;
    let (_, history) = api.get(&format!("/api/rooms/{room}/messages")).await;
    for (i, b) in bodies.iter().enumerate() {
        assert_eq!(live[i]["body"], *b);
        assert_eq!(history["messages"][i]["body"], *b);
    }
    node.stop().await;
}
