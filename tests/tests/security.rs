//! Tests that attack: forged, expired and revoked tokens on HTTP and WebSocket, refresh-token
//! reuse, CSRF, foreign origins, brute force, email-code expiry/reuse/guessing, connection limits.

use confab::ServeArgs;
use confab_tests::client::login;
use confab_tests::smtp::SmtpSink;
use confab_tests::{Api, NodeOpts, TestNode, Ws, eventually, unique};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

async fn ws_status(url: &str, headers: &[(&'static str, &str)]) -> u16 {
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(*k, v.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("unexpected {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_revoked_tokens_are_refused_on_http_and_websocket() {
    let node = TestNode::start(NodeOpts::default()).await;
    let api = node.user(&unique("tok")).await;
    let other = node.user(&unique("oth")).await;
    // Forged: the signature does not cover another user id.
    let forged = api.token.replacen(&format!("v1.{}.", api.user_id), &format!("v1.{}.", other.user_id), 1);
    assert_ne!(forged, api.token);
    let r = api.http.get(format!("{}/api/me", node.base)).bearer_auth(&forged).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(ws_status(&node.ws_url, &[("authorization", &format!("Bearer {forged}"))]).await, 401);
    // Revoked: logout ends the login for HTTP, new sockets, and open sockets.
    let mut open = api.ws(&node.ws_url).await;
    let r = api.http.post(format!("{}/api/auth/logout", node.base)).bearer_auth(&api.token).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let (status, v) = api.get("/api/me").await;
    assert_eq!((status, code(&v)), (401, "not_authenticated"));
    assert_eq!(ws_status(&node.ws_url, &[("authorization", &format!("Bearer {}", api.token))]).await, 401);
    open.until_closed().await;
    // The other user's login is untouched.
    assert_eq!(other.get("/api/me").await.0, 200);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_access_tokens_are_refused_and_sockets_are_asked_to_reauthenticate() {
    let args = ServeArgs { access_ttl_secs: Some(2), ..Default::default() };
    let node = TestNode::start(NodeOpts { args }).await;
    let api = node.user(&unique("exp")).await;
    let (_, login) = login(&node.base, &api.username, "correct horse").await;
    let api = Api { token: login["token"].as_str().unwrap().into(), ..api };
    let mut ws = api.ws(&node.ws_url).await;
    // Before expiry the socket is asked to re-authenticate; a fresh token extends it.
    let hint = ws.recv_type("reauth").await;
    assert!(hint["expires_in"].as_i64().unwrap() <= 2);
    let refreshed: Value = api
        .http
        .post(format!("{}/api/auth/refresh", node.base))
        .json(&json!({"refresh_token": login["refresh_token"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fresh = refreshed["token"].as_str().unwrap().to_owned();
    ws.send(json!({"type": "auth", "token": fresh})).await;
    ws.recv_type("authenticated").await;
    // The old token expires: refused over HTTP and for new sockets.
    eventually("the first access token to expire", || async { (api.get("/api/me").await.0 == 401).then_some(()) })
        .await;
    assert_eq!(ws_status(&node.ws_url, &[("authorization", &format!("Bearer {}", api.token))]).await, 401);
    // A socket that does not re-authenticate is closed when its token expires.
    let api2 = Api { token: fresh, ..api };
    let mut quiet = api2.ws(&node.ws_url).await;
    let frames = quiet.until_closed().await;
    assert!(frames.iter().any(|f| f["type"] == "reauth"), "{frames:?}");
    assert!(frames.iter().any(|f| f["type"] == "error" && f["code"] == "not_authenticated"), "{frames:?}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_refresh_token_revokes_the_whole_login() {
    let node = TestNode::start(NodeOpts::default()).await;
    let name = unique("ref");
    let r = reqwest::Client::new()
        .post(format!("{}/api/auth/register", node.base))
        .json(&json!({"username": name, "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    let first: Value = r.json().await.unwrap();
    let http = reqwest::Client::new();
    let refresh = |t: Value| {
        let http = http.clone();
        let url = format!("{}/api/auth/refresh", node.base);
        async move {
            let r = http.post(url).json(&json!({"refresh_token": t})).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, second) = refresh(first["refresh_token"].clone()).await;
    assert_eq!(s, 200);
    assert_ne!(second["refresh_token"], first["refresh_token"], "rotated");
    // The thief replays the first token: refused, and the login is revoked for everyone.
    let (s, v) = refresh(first["refresh_token"].clone()).await;
    assert_eq!((s, code(&v)), (401, "not_authenticated"));
    let (s, _) = refresh(second["refresh_token"].clone()).await;
    assert_eq!(s, 401, "the legitimate successor dies with the family");
    let r =
        http.get(format!("{}/api/me", node.base)).bearer_auth(second["token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(r.status(), 401, "and so do its access tokens");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_requests_need_the_csrf_token_and_a_friendly_origin() {
    let args = ServeArgs { allowed_origins: Some(vec!["https://friend.example".into()]), ..Default::default() };
    let node = TestNode::start(NodeOpts { args }).await;
    // A browser: the cookie jar holds the session.
    let browser = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let r = browser
        .post(format!("{}/api/auth/register", node.base))
        .json(&json!({"username": unique("csrf"), "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let csrf = r.json::<Value>().await.unwrap()["csrf_token"].as_str().unwrap().to_owned();
    assert_eq!(browser.get(format!("{}/api/me", node.base)).send().await.unwrap().status(), 200, "reads need no token");
    let create = |name: &str, token: Option<&str>, origin: Option<&str>| {
        let mut req = browser.post(format!("{}/api/rooms", node.base)).json(&json!({"name": name}));
        if let Some(t) = token {
            req = req.header("x-csrf-token", t);
        }
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    let r = create(&unique("r"), None, None).await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(code(&r.json().await.unwrap()), "csrf_failed");
    let r = create(&unique("r"), Some("guessed"), None).await.unwrap();
    assert_eq!(r.status(), 403);
    let r = create(&unique("r"), Some(&csrf), Some("https://evil.example")).await.unwrap();
    assert_eq!(r.status(), 403, "a foreign origin even with the token");
    let r = create(&unique("r"), Some(&csrf), None).await.unwrap();
    assert_eq!(r.status(), 201);
    let r = create(&unique("r"), Some(&csrf), Some("https://friend.example")).await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["access-control-allow-origin"], "https://friend.example");
    // Foreign origins cannot open sockets; allow-listed ones can.
    let api = node.user(&unique("wso")).await;
    let bearer = format!("Bearer {}", api.token);
    assert_eq!(ws_status(&node.ws_url, &[("authorization", &bearer), ("origin", "https://evil.example")]).await, 403);
    assert_eq!(ws_status(&node.ws_url, &[("authorization", &bearer), ("origin", "https://friend.example")]).await, 101);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brute_force_logins_are_throttled_with_backoff() {
    let node = TestNode::start(NodeOpts::default()).await;
    let api = node.user(&unique("bf")).await;
    let http = reqwest::Client::new();
    let login = |pw: &'static str| {
        http.post(format!("{}/api/auth/login", node.base))
            .json(&json!({"username": api.username, "password": pw}))
            .send()
    };
    for _ in 0..5 {
        assert_eq!(login("wrong guess!").await.unwrap().status(), 401);
    }
    let r = login("wrong guess!").await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    let r = login("correct horse").await.unwrap();
    assert_eq!(r.status(), 429, "blocked even with the right password while backing off");
    // The block lifts: then the right password works.
    eventually("the backoff to lift", || async {
        (login("correct horse").await.unwrap().status() == 200).then_some(())
    })
    .await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_codes_work_once_and_resist_guessing() {
    let mut smtp = SmtpSink::start().await;
    let args = ServeArgs { smtp_url: Some(smtp.url.clone()), ..Default::default() };
    let node = TestNode::start(NodeOpts { args }).await;
    let http = reqwest::Client::new();
    let email = format!("{}@example.com", unique("mail"));
    let post = |path: &'static str, body: Value| {
        let http = http.clone();
        let url = format!("{}{path}", node.base);
        async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, _) = post("/api/auth/email/request", json!({"email": email})).await;
    assert_eq!(s, 202);
    let code1 = smtp.next_code().await;
    let (s, v) = post("/api/auth/email/verify", json!({"email": email, "code": code1})).await;
    assert_eq!(s, 201, "the first sign-in creates the account: {v}");
    let user = v["user"]["username"].as_str().unwrap().to_owned();
    let token = v["token"].as_str().unwrap().to_owned();
    assert_eq!(http.get(format!("{}/api/me", node.base)).bearer_auth(&token).send().await.unwrap().status(), 200);
    // Single use.
    let (s, v) = post("/api/auth/email/verify", json!({"email": email, "code": code1})).await;
    assert_eq!((s, code(&v)), (401, "auth_failed"));
    // Five wrong guesses kill a code, even for the right one afterwards.
    post("/api/auth/email/request", json!({"email": email})).await;
    let code2 = smtp.next_code().await;
    let wrong = if code2 == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let (s, _) = post("/api/auth/email/verify", json!({"email": email, "code": wrong})).await;
        assert_eq!(s, 401);
    }
    let (s, v) = post("/api/auth/email/verify", json!({"email": email, "code": code2})).await;
    assert_eq!((s, code(&v)), (429, "too_many_attempts"));
    // A fresh code logs into the same account.
    post("/api/auth/email/request", json!({"email": email})).await;
    let code3 = smtp.next_code().await;
    // The five wrong guesses also put this IP into backoff; a blocked try does not spend the code.
    let (s, v) = eventually("the IP backoff to lift", || {
        let attempt = post("/api/auth/email/verify", json!({"email": email, "code": code3}));
        async move { Some(attempt.await).filter(|(s, _)| *s != 429) }
    })
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["user"]["username"], user);
    // A fourth request for the same address within the window is throttled.
    let (s, v) = post("/api/auth/email/request", json!({"email": email})).await;
    assert_eq!((s, code(&v)), (429, "rate_limited"));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_email_codes_are_refused() {
    let mut smtp = SmtpSink::start().await;
    let args = ServeArgs { smtp_url: Some(smtp.url.clone()), code_ttl_secs: Some(0), ..Default::default() };
    let node = TestNode::start(NodeOpts { args }).await;
    let http = reqwest::Client::new();
    let email = format!("{}@example.com", unique("late"));
    http.post(format!("{}/api/auth/email/request", node.base)).json(&json!({"email": email})).send().await.unwrap();
    let c = smtp.next_code().await;
    let r = http
        .post(format!("{}/api/auth/email/verify", node.base))
        .json(&json!({"email": email, "code": c}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(code(&r.json().await.unwrap()), "code_expired");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_revokes_other_logins_and_closes_their_sockets() {
    let node = TestNode::start(NodeOpts::default()).await;
    let api = node.user(&unique("pw")).await;
    let mut ws = api.ws(&node.ws_url).await;
    let (s, v) = api
        .post("/api/auth/password", json!({"current_password": "wrong one!", "new_password": "new horse battery"}))
        .await;
    assert_eq!((s, code(&v)), (401, "auth_failed"));
    let (s, v) = api
        .post("/api/auth/password", json!({"current_password": "correct horse", "new_password": "password123"}))
        .await;
    assert_eq!((s, code(&v)), (400, "weak_password"));
    let (s, v) = api
        .post("/api/auth/password", json!({"current_password": "correct horse", "new_password": "new horse battery"}))
        .await;
    assert_eq!(s, 200);
    ws.until_closed().await;
    assert_eq!(api.get("/api/me").await.0, 401, "the old login is revoked");
    let fresh = Api { token: v["token"].as_str().unwrap().into(), ..api.clone() };
    assert_eq!(fresh.get("/api/me").await.0, 200, "the answer carries a new login");
    assert_eq!(login(&node.base, &api.username, "correct horse").await.0, 401);
    assert_eq!(login(&node.base, &api.username, "new horse battery").await.0, 200);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_ip_are_limited() {
    let args = ServeArgs { max_connections_per_ip: Some(2), ..Default::default() };
    let node = TestNode::start(NodeOpts { args }).await;
    let api = node.user(&unique("conn")).await;
    let a: Ws = api.ws(&node.ws_url).await;
    let _b = api.ws(&node.ws_url).await;
    assert_eq!(ws_status(&node.ws_url, &[("authorization", &format!("Bearer {}", api.token))]).await, 429);
    a.close().await;
    eventually("a slot to free up", || async {
        (ws_status(&node.ws_url, &[("authorization", &format!("Bearer {}", api.token))]).await == 101).then_some(())
    })
    .await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_registrations_hashes_a_few_passwords_at_a_time() {
    // Argon2id takes 19 MiB per hash. 64 registrations at once used to run 64 hashes at once
    // (one per blocking thread), and each left its 19 MiB behind in the allocator: 1.2 GB at the
    // peak. Hashes now run a few at a time, in working memory that is reused.
    const BIN: &str = env!("CARGO_BIN_EXE_confab-test-node");
    let db = confab_tests::TestDb::create().await;
    let node = confab_tests::process::NodeProcess::spawn(BIN, db.dir.path(), &db.url, &[]).await;
    let names: Vec<String> = (0..64).map(|i| unique(&format!("burst{i}"))).collect();
    let apis = futures::future::join_all(names.iter().map(|n| Api::register(&node.base, n))).await;
    assert_eq!(apis.len(), 64, "every registration succeeded");
    let (status, _) = login(&node.base, &names[63], "correct horse").await;
    assert_eq!(status, 200);
    let pid = node.child.id().expect("running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    // At most 8 hashes at once (152 MiB) plus the node itself.
    assert!(peak_kib < 400 * 1024, "peak resident memory {} MiB", peak_kib / 1024);
}
