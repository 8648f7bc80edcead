//! Attacks on the limits of authentication and the smaller defences, as an outsider makes them:
//! racing limits with hundreds of concurrent guesses (on two nodes sharing one database), locking
//! other people's accounts, racing refresh-token rotation, enumerating private rooms, flooding
//! sign-ups, rooms and reports, weak passwords, CSRF and Origin tricks, deceptive names.
//! Storage-related tests run on SQLite, and on PostgreSQL with `CONFAB_TEST_DATABASE_URL`.

use confab::ServeArgs;
use confab_tests::smtp::SmtpSink;
use confab_tests::{Api, NodeOpts, TestNode, eventually, unique};
use futures::future::join_all;
use serde_json::{Value, json};
use std::net::IpAddr;

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// A client whose requests come from `ip` (any 127.x.y.z reaches the node on 127.0.0.1).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder().local_address(ip.parse::<IpAddr>().unwrap()).build().unwrap()
}

fn post(http: &reqwest::Client, url: String, body: Value) -> impl Future<Output = (u16, Value)> + use<> {
    let req = http.post(url).json(&body);
    async move {
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}

/// A second node on the first one's database (the cluster's shared truth for limits), where
/// a database serves several nodes: PostgreSQL. A SQLite database serves one node (it is locked),
/// so on SQLite the races run against the first node alone (`None`).
async fn second_node(first: &TestNode, args: ServeArgs) -> Option<TestNode> {
    if first.db.url.starts_with("sqlite") {
        return None;
    }
    let args = ServeArgs { database_url: Some(first.db.url.clone()), ..args };
    Some(TestNode::start(NodeOpts { args }).await)
}

/// The second node's address, or the first's when there is no second node.
fn base_of<'a>(a: &'a TestNode, b: &'a Option<TestNode>) -> &'a str {
    b.as_ref().map_or(&a.base, |b| &b.base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_concurrent_code_guesses_compare_the_code_five_times() {
    let mut smtp = SmtpSink::start().await;
    // A generous per-address allowance, so that only the code's own limit is at stake.
    let args = ServeArgs { smtp_url: Some(smtp.url.clone()), login_free_attempts: Some(1000), ..Default::default() };
    let a = TestNode::start(NodeOpts { args: args.clone() }).await;
    let b = second_node(&a, args).await;
    let http = reqwest::Client::new();
    let email = format!("{}@example.com", unique("race"));
    let (s, _) = post(&http, format!("{}/api/auth/email/request", a.base), json!({"email": email})).await;
    assert_eq!(s, 202);
    let right = smtp.next_code().await;
    let wrong = |i: usize| format!("{:06}", (right.parse::<usize>().unwrap() + 1 + i) % 1_000_000);
    let guesses = (0..300).map(|i| {
        let node = if i % 2 == 0 { a.base.as_str() } else { base_of(&a, &b) };
        post(&http, format!("{node}/api/auth/email/verify"), json!({"email": email, "code": wrong(i)}))
    });
    let answers = join_all(guesses).await;
    let compared = answers.iter().filter(|(s, v)| *s == 401 && v["error"]["message"] == "wrong code").count();
    let refused = answers.iter().filter(|(s, v)| *s == 429 && code(v) == "too_many_attempts").count();
    println!("300 concurrent guesses on 2 nodes: {compared} compared, {refused} refused before comparing");
    assert_eq!((compared, refused), (5, 295), "{:?}", &answers[..10]);
    let stored = a.system().store().email_codes(&email).await.unwrap();
    assert_eq!(stored.iter().map(|c| c.attempts).collect::<Vec<_>>(), vec![5], "the counter holds what was reserved");
    // The right code, beyond the fifth guess, is not even compared.
    let (s, v) =
        post(&http, format!("{}/api/auth/email/verify", base_of(&a, &b)), json!({"email": email, "code": right})).await;
    assert_eq!((s, code(&v)), (429, "too_many_attempts"));
    if let Some(b) = b {
        b.stop().await;
    }
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_concurrent_wrong_passwords_get_five_checks() {
    let a = TestNode::start(NodeOpts::default()).await;
    let b = second_node(&a, ServeArgs::default()).await;
    let victim = a.user(&unique("pwrace")).await;
    let http = reqwest::Client::new();
    let tries = (0..30).map(|i| {
        let node = if i % 2 == 0 { a.base.as_str() } else { base_of(&a, &b) };
        post(
            &http,
            format!("{node}/api/auth/login"),
            json!({"username": victim.username, "password": format!("guess {i}!")}),
        )
    });
    let answers = join_all(tries).await;
    let checked = answers.iter().filter(|(s, _)| *s == 401).count();
    let refused = answers.iter().filter(|(s, v)| *s == 429 && code(v) == "rate_limited").count();
    println!("30 concurrent wrong passwords on 2 nodes: {checked} checked, {refused} refused before checking");
    assert_eq!((checked, refused), (5, 25), "{answers:?}");
    let key = format!("login:acct:{}|ip:127.0.0.1", victim.username.to_lowercase());
    assert_eq!(a.system().store().limit_hits(&key).await.unwrap(), 5, "the counter holds what was reserved");
    let (s, _) = post(
        &http,
        format!("{}/api/auth/login", a.base),
        json!({"username": victim.username, "password": "correct horse"}),
    )
    .await;
    assert_eq!(s, 429, "the right password from the guessing address waits too");
    if let Some(b) = b {
        b.stop().await;
    }
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_lock_the_owner_out() {
    let mut smtp = SmtpSink::start().await;
    let args = ServeArgs { smtp_url: Some(smtp.url.clone()), ..Default::default() };
    let node = TestNode::start(NodeOpts { args }).await;
    let owner = node.user(&unique("own")).await;
    let (stranger, home) = (client_from("127.0.0.1"), client_from("127.0.0.2"));
    let login = |http: &reqwest::Client, pw: &str| {
        post(http, format!("{}/api/auth/login", node.base), json!({"username": owner.username, "password": pw}))
    };
    // A burst of wrong passwords blocks the stranger's address for this account...
    let mut blocked = false;
    for i in 0..12 {
        blocked |= login(&stranger, &format!("nope {i}!")).await.0 == 429;
    }
    assert!(blocked, "the stranger is backing off");
    // ...but the owner, from home, still signs in (at most a bounded delay later).
    let started = std::time::Instant::now();
    let (s, v) = login(&home, "correct horse").await;
    println!("owner's login after the stranger's burst: {s} in {} ms", started.elapsed().as_millis());
    assert_eq!(s, 200, "{v}");

    // Sign-in codes: a stranger's requests do not replace the code the owner holds.
    let email = format!("{}@example.com", unique("mine"));
    let request =
        |http: &reqwest::Client| post(http, format!("{}/api/auth/email/request", node.base), json!({"email": email}));
    assert_eq!(request(&home).await.0, 202);
    let owners_code = smtp.next_code().await;
    assert_eq!(request(&stranger).await.0, 202);
    smtp.next_code().await;
    assert_eq!(request(&client_from("127.0.0.3")).await.0, 202);
    smtp.next_code().await;
    let (s, v) = request(&client_from("127.0.0.4")).await;
    assert_eq!((s, code(&v)), (429, "rate_limited"), "three codes pending at most");
    let (s, v) =
        post(&home, format!("{}/api/auth/email/verify", node.base), json!({"email": email, "code": owners_code})).await;
    assert_eq!(s, 201, "the owner's code still works: {v}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_refreshes_of_one_token_are_a_reuse() {
    let node = TestNode::start(NodeOpts::default()).await;
    let http = reqwest::Client::new();
    for round in 0..5 {
        let (s, first) = post(
            &http,
            format!("{}/api/auth/register", node.base),
            json!({"username": unique(&format!("rot{round}_")), "password": "correct horse"}),
        )
        .await;
        assert_eq!(s, 201);
        let refreshes = (0..8).map(|_| {
            post(&http, format!("{}/api/auth/refresh", node.base), json!({"refresh_token": first["refresh_token"]}))
        });
        let answers = join_all(refreshes).await;
        let won: Vec<&Value> = answers.iter().filter(|(s, _)| *s == 200).map(|(_, v)| v).collect();
        println!("round {round}: {} of 8 simultaneous refreshes rotated", won.len());
        assert!(won.len() <= 1, "{answers:?}");
        // The losers were reuses: the login is revoked, the winner's tokens with it.
        for v in won {
            let (s, _) =
                post(&http, format!("{}/api/auth/refresh", node.base), json!({"refresh_token": v["refresh_token"]}))
                    .await;
            assert_eq!(s, 401, "the winner's refresh token dies with the family");
            let me = http.get(format!("{}/api/me", node.base)).bearer_auth(v["token"].as_str().unwrap()).send().await;
            assert_eq!(me.unwrap().status(), 401);
        }
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_checked_against_the_room_and_limited() {
    let node = TestNode::start(NodeOpts::default()).await;
    let api = node.user(&unique("rep")).await;
    let room = api.create_room(&unique("reported"), "public").await;
    let mut ws = api.ws(&node.ws_url).await;
    ws.join(room, None).await;
    ws.send(json!({"type": "send", "room": room, "cid": "c1", "body": "hello"})).await;
    ws.recv_type("ack").await;
    let path = format!("/api/rooms/{room}/reports");
    let report = |seq: Value| api.post(&path, json!({"seq": seq, "reason": "spam"}));
    for seq in [json!(9_223_372_036_854_775_808u64), json!(2), json!(0)] {
        let (s, v) = report(seq.clone()).await;
        assert_eq!((s, code(&v)), (400, "invalid"), "seq {seq}");
    }
    let mut filed = 0;
    let (s, v) = loop {
        let (s, v) = report(json!(1)).await;
        if s != 201 || filed > 100 {
            break (s, v);
        }
        filed += 1;
    };
    assert_eq!((s, code(&v), filed), (429, "rate_limited", 30), "{v}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_room_names_cannot_be_enumerated() {
    let node = TestNode::start(NodeOpts::default()).await;
    let (alice, bob) = (node.user(&unique("alice")).await, node.user(&unique("bob")).await);
    let secret = unique("merger-plans");
    alice.create_room(&secret, "private").await;
    // Bob's probes learn nothing: both names are free to him.
    let (s, v) = bob.post("/api/rooms", json!({"name": secret, "visibility": "private"})).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = bob.post("/api/rooms", json!({"name": secret.to_uppercase(), "visibility": "public"})).await;
    assert_eq!(s, 201, "{v}");
    // Names stay unique where they are seen: a public one, and one's own private ones.
    let (s, _) = alice.post("/api/rooms", json!({"name": secret, "visibility": "public"})).await;
    assert_eq!(s, 409);
    let (s, _) = alice.post("/api/rooms", json!({"name": secret, "visibility": "private"})).await;
    assert_eq!(s, 409);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ups_and_room_creation_are_limited_and_the_room_list_pages() {
    let args = ServeArgs { signups_per_ip_per_hour: Some(5), rooms_per_user_per_hour: Some(5), ..Default::default() };
    let node = TestNode::start(NodeOpts { args }).await;
    let http = reqwest::Client::new();
    let signups = (0..12).map(|i| {
        post(
            &http,
            format!("{}/api/auth/register", node.base),
            json!({"username": unique(&format!("flood{i}_")), "password": "correct horse"}),
        )
    });
    let answers = join_all(signups).await;
    let made = answers.iter().filter(|(s, _)| *s == 201).count();
    assert!(answers.iter().all(|(s, v)| *s == 201 || (*s == 429 && code(v) == "rate_limited")), "{answers:?}");
    assert_eq!(made, 5, "five sign-ups an hour from one address");
    let (s, _) = post(
        &client_from("127.0.0.2"),
        format!("{}/api/auth/register", node.base),
        json!({"username": unique("elsewhere"), "password": "correct horse"}),
    )
    .await;
    assert_eq!(s, 201, "another address is not affected");
    let v = &answers.iter().find(|(s, _)| *s == 201).unwrap().1;
    let api = Api {
        http: reqwest::Client::new(),
        base: node.base.clone(),
        token: v["token"].as_str().unwrap().into(),
        user_id: v["user"]["id"].as_i64().unwrap(),
        username: v["user"]["username"].as_str().unwrap().into(),
    };
    let creates = (0..20).map(|i| api.post("/api/rooms", json!({"name": unique(&format!("r{i}_"))})));
    let answers = join_all(creates).await;
    assert_eq!(answers.iter().filter(|(s, _)| *s == 201).count(), 5, "{answers:?}");
    assert!(answers.iter().all(|(s, _)| *s == 201 || *s == 429));

    // Pages: every visible room exactly once, forwards and backwards.
    let (_, all) = api.get("/api/rooms").await;
    let all: Vec<i64> = all["rooms"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(all.len(), 6, "general and five rooms");
    let walk = |first: String, dir: &'static str| {
        let api = api.clone();
        async move {
            let (mut seen, mut path) = (Vec::new(), first);
            loop {
                let (s, page) = api.get(&path).await;
                assert_eq!(s, 200, "{page}");
                let rooms = page["rooms"].as_array().unwrap();
                assert!(rooms.len() <= 4);
                let ids: Vec<i64> = rooms.iter().map(|r| r["id"].as_i64().unwrap()).collect();
                if dir == "before" {
                    seen.splice(0..0, ids);
                } else {
                    seen.extend(ids);
                }
                let Some(next) = page["next"].as_i64() else { return seen };
                path = format!("/api/rooms?limit=4&{dir}={next}");
            }
        }
    };
    assert_eq!(walk("/api/rooms?limit=4".into(), "after").await, all);
    assert_eq!(walk(format!("/api/rooms?limit=4&before={}", i64::MAX), "before").await, all);
    assert_eq!(api.get("/api/rooms?limit=0").await.0, 400);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_passwords_are_refused() {
    let node = TestNode::start(NodeOpts::default()).await;
    let http = reqwest::Client::new();
    let name = unique("weakling");
    for pw in
        ["        ".to_owned(), "bbbbbbbb".to_owned(), name.clone(), format!("{name}!"), "abcabcabcabc".to_owned()]
    {
        let (s, v) =
            post(&http, format!("{}/api/auth/register", node.base), json!({"username": name, "password": pw})).await;
        assert_eq!((s, code(&v)), (400, "weak_password"), "{pw:?}: {v}");
    }
    let (s, _) =
        post(&http, format!("{}/api/auth/register", node.base), json!({"username": name, "password": "correct horse"}))
            .await;
    assert_eq!(s, 201);
    node.stop().await;
}

/// Ages a login, as if it signed in an hour ago.
async fn age_family(db: &confab_tests::TestDb, token: &str) {
    use sqlx::Connection;
    let family = token.split('.').nth(2).unwrap().to_owned();
    let sql = "UPDATE auth_families SET created_at = created_at - 3600000 WHERE id = $1";
    if db.is_postgres() {
        let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query(sql).bind(family).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::query(sql).bind(family).execute(&mut c).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_password_needs_a_fresh_sign_in_not_a_bare_token() {
    let mut smtp = SmtpSink::start().await;
    let args = ServeArgs { smtp_url: Some(smtp.url.clone()), ..Default::default() };
    let node = TestNode::start(NodeOpts { args }).await;
    let http = reqwest::Client::new();
    let email = format!("{}@example.com", unique("nopw"));
    post(&http, format!("{}/api/auth/email/request", node.base), json!({"email": email})).await;
    let c = smtp.next_code().await;
    let (s, v) = post(&http, format!("{}/api/auth/email/verify", node.base), json!({"email": email, "code": c})).await;
    assert_eq!(s, 201);
    let token = v["token"].as_str().unwrap().to_owned();
    // A stolen access token of an old sign-in cannot set the password.
    age_family(&node.db, &token).await;
    let set = |body: Value| {
        let r = http.post(format!("{}/api/auth/password", node.base)).bearer_auth(&token).json(&body).send();
        async move {
            let r = r.await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (s, v) = set(json!({"new_password": "violet tundra forty two"})).await;
    assert_eq!((s, code(&v)), (403, "reauth_required"), "{v}");
    let (s, _) = set(json!({"new_password": "violet tundra forty two", "code": "123456"})).await;
    assert!(s == 401 || s == 429, "a made-up code does not do: {s}");
    // A fresh code does.
    post(&http, format!("{}/api/auth/email/request", node.base), json!({"email": email})).await;
    let fresh = smtp.next_code().await;
    let (s, v) = set(json!({"new_password": "violet tundra forty two", "code": fresh})).await;
    assert_eq!(s, 200, "{v}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_valid_bearer_token_skips_the_csrf_check() {
    let node = TestNode::start(NodeOpts::default()).await;
    let browser = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let r = browser
        .post(format!("{}/api/auth/register", node.base))
        .json(&json!({"username": unique("jar"), "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["cache-control"], "no-store", "token responses are never cached");
    let token = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    // A cross-site form cannot set these, but a page on an allowed origin, or a confused client,
    // can: none of them may stand in for the CSRF token while the cookie rides along.
    for auth in ["Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Bearer forged", "bearer ", "", "Token abc"] {
        let r = browser
            .post(format!("{}/api/rooms", node.base))
            .header("authorization", auth)
            .json(&json!({"name": unique("csrf")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{auth:?}");
        assert_eq!(code(&r.json().await.unwrap()), "csrf_failed", "{auth:?}");
    }
    let r = browser
        .post(format!("{}/api/rooms", node.base))
        .header("authorization", format!("bearer {token}"))
        .json(&json!({"name": unique("api")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "a valid bearer token (any case) is an API client");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origin_is_compared_with_the_public_origins_not_the_host() {
    let node = TestNode::start(NodeOpts::default()).await;
    let api = node.user(&unique("orig")).await;
    let create = |origin: String, host: Option<&'static str>| {
        let mut req = api
            .http
            .post(format!("{}/api/rooms", node.base))
            .bearer_auth(&api.token)
            .header("origin", origin)
            .json(&json!({"name": unique("o")}));
        if let Some(h) = host {
            req = req.header("host", h);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let port = node.base.rsplit(':').next().unwrap().to_owned();
    assert_eq!(create("http://evil.example".into(), Some("evil.example")).await, 403, "a Host to match proves nothing");
    assert_eq!(create(format!("https://127.0.0.1:{port}"), None).await, 403, "another scheme is another origin");
    assert_eq!(create(node.base.clone(), None).await, 201);
    assert_eq!(create(format!("http://localhost:{port}"), None).await, 201);
    // A configured public origin replaces the defaults.
    let args = ServeArgs { public_origin: Some(vec!["https://chat.example".into()]), ..Default::default() };
    let proxied = TestNode::start(NodeOpts { args }).await;
    let api = proxied.user(&unique("prox")).await;
    for (origin, status) in [("https://chat.example", 201), ("http://chat.example", 403), (proxied.base.as_str(), 403)]
    {
        let r = api
            .http
            .post(format!("{}/api/rooms", proxied.base))
            .bearer_auth(&api.token)
            .header("origin", origin)
            .json(&json!({"name": unique("p")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{origin}");
    }
    proxied.stop().await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_cannot_hide_direction_overrides_or_invisible_characters() {
    let node = TestNode::start(NodeOpts::default()).await;
    let api = node.user(&unique("bidi")).await;
    for name in ["invoice\u{202E}fdp.exe", "gen\u{200B}eral", "\u{2066}admins\u{2069}", "\u{FEFF}general", "a\u{00AD}b"]
    {
        let (s, v) = api.post("/api/rooms", json!({"name": name})).await;
        assert_eq!((s, code(&v)), (400, "invalid"), "{name:?}");
    }
    let (s, _) = api.post("/api/rooms", json!({"name": "café ☕ 東京"})).await;
    assert_eq!(s, 201, "other non-ASCII names are fine");
    eventually("the room list to show it", || async {
        let (_, v) = api.get("/api/rooms").await;
        v["rooms"].as_array()?.iter().any(|r| r["name"] == "café ☕ 東京").then_some(())
    })
    .await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_shows_deceptive_characters_and_pages_through_the_room_list() {
    use confab_tests::browser::Driver;
    use confab_tests::chat_page::{open_room, sign_up, wait_message};
    let node = TestNode::start(NodeOpts::default()).await;
    // More rooms than one page of the list holds: the app must follow `next`.
    let store = node.system().store();
    let mut last = String::new();
    for i in 0..501 {
        last = format!("page-room-{i}");
        store.create_room(&last, "", confab_schemas::Visibility::Public, None).await.unwrap();
    }
    let driver = Driver::start().await;
    let b = driver.browser(1280, 800).await;
    sign_up(&b, &node.base, &unique("gail")).await;
    b.wait_for(
        "the last page's room in the list",
        "return [...document.querySelectorAll('#rooms .room-name')].some((x) => x.textContent === arguments[0]) || null;",
        json!([last]),
    )
    .await;
    open_room(&b, "general").await;
    let mallory = node.user(&unique("mallory")).await;
    let room = mallory.room_id("general").await;
    let mut ws = mallory.ws(&node.ws_url).await;
    ws.join(room, Some(0)).await;
    let body = "pay at https://bank.example/\u{202E}gpj.exe or ask pay\u{200B}pal";
    ws.send(json!({"type": "send", "room": room, "cid": "bidi", "body": body})).await;
    ws.recv_type("ack").await;
    wait_message(&b, "pay at https://bank.example/⟨U+202E⟩gpj.exe or ask pay⟨U+200B⟩pal").await;
    let shown = b
        .exec(
            "const li = [...document.querySelectorAll('#messages .msg[data-seq]')].pop(); \
             const a = li.querySelector('.body a'); \
             return { link: a.textContent, href: a.href, marks: li.querySelectorAll('.body .hidden-char').length };",
            json!([]),
        )
        .await;
    assert_eq!(shown["link"], "https://bank.example/⟨U+202E⟩gpj.exe", "the link says what it holds");
    assert_eq!(shown["href"], "https://bank.example/%E2%80%AEgpj.exe");
    assert_eq!(shown["marks"], 1, "the zero-width space outside the link is marked");
    b.quit().await;
    node.stop().await;
}
