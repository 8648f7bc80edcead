//! Attacks on the node's edge: slow and idle connections from one address against a node with
//! 1,024 file descriptors (slowloris), a WebSocket that pings instead of authenticating, and
//! `confab admin` revocations reaching open sockets on every node.

use confab_tests::cluster::Sandbox;
use confab_tests::process::NodeProcess;
use confab_tests::{Api, DEADLINE, NodeOpts, TestDb, TestNode, Ws, eventually, unique};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const BIN: &str = env!("CARGO_BIN_EXE_confab-test-node");

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A TCP connection to `addr` from the loopback address `from` (Linux routes all of 127/8).
async fn tcp_from(from: IpAddr, addr: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(from, 0))?;
    sock.connect(addr).await
}

fn node_addr(base: &str) -> SocketAddr {
    base.trim_start_matches("http://").parse().unwrap()
}

/// Registers a user through a client whose sockets come from `from`.
async fn register_from(from: IpAddr, base: &str, name: &str) -> Api {
    let http = reqwest::Client::builder().local_address(from).timeout(DEADLINE).build().unwrap();
    let resp = http
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"username": name, "password": "correct horse"}))
        .send()
        .await
        .expect("register request");
    assert_eq!(resp.status(), 201, "register {name}");
    let body: Value = resp.json().await.unwrap();
    Api {
        http,
        base: base.to_owned(),
        token: body["token"].as_str().unwrap().to_owned(),
        user_id: body["user"]["id"].as_i64().unwrap(),
        username: name.to_owned(),
    }
}

/// An authenticated WebSocket from `from`, after its `hello`.
async fn ws_from(from: IpAddr, api: &Api, ws_url: &str) -> Ws {
    let mut req = ws_url.into_client_request().unwrap();
    req.headers_mut().insert("authorization", HeaderValue::from_str(&format!("Bearer {}", api.token)).unwrap());
    let tcp = tcp_from(from, node_addr(&api.base)).await.expect("connect");
    let (stream, _) = tokio::time::timeout(DEADLINE, tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(tcp)))
        .await
        .expect("upgrade in time")
        .expect("upgrade");
    let mut ws = Ws::from_stream(stream);
    ws.recv_type("hello").await;
    ws
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// 1,100 half-sent requests and idle connections from one address, against a node limited to
/// 1,024 open files: a client from another address still registers and chats, the attacker's
/// sockets are closed (refused at accept, or after the header timeout), and a WebSocket that
/// pings instead of authenticating is closed at its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_from_one_address_do_not_lock_others_out() {
    let db = TestDb::create().await;
    let flags = ["--header-timeout-secs", "3", "--body-timeout-secs", "3", "--ws-auth-timeout-secs", "3"];
    let node = NodeProcess::spawn_via(&["prlimit", "--nofile=1024:1024"], BIN, db.dir.path(), &db.url, &flags).await;
    let addr = node_addr(&node.base);

    // Bystanders chatting from 127.0.0.3 since before the attack.
    let (sender, receiver) = (
        register_from(ip("127.0.0.3"), &node.base, &unique("snd")).await,
        register_from(ip("127.0.0.3"), &node.base, &unique("rcv")).await,
    );
    let room = sender.room_id("general").await;
    let mut tx = ws_from(ip("127.0.0.3"), &sender, &node.ws_url).await;
    let mut rx = ws_from(ip("127.0.0.3"), &receiver, &node.ws_url).await;
    tx.join(room, None).await;
    rx.join(room, None).await;

    // The attack, from 127.0.0.1: every other connection sends half a request, the rest nothing.
    let start = Instant::now();
    let mut attackers = Vec::new();
    let mut connect_failed = 0;
    for i in 0..1100 {
        match tcp_from(ip("127.0.0.1"), addr).await {
            Ok(mut s) => {
                if i % 2 == 0 {
                    let _ = s.write_all(b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nX-Slow: ").await;
                }
                attackers.push(s);
            }
            Err(_) => connect_failed += 1,
        }
    }
    println!("attack: {} connections open from 127.0.0.1 ({connect_failed} failed to connect)", attackers.len());
    let closes = tokio::spawn(async move {
        let waits = attackers.into_iter().map(|mut s| async move {
            let mut buf = [0u8; 512];
            loop {
                match tokio::time::timeout(DEADLINE, s.read(&mut buf)).await {
                    Err(_) => return None,
                    Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
                    // A refusal's 429 (or a 408): read on until the close.
                    Ok(Ok(_)) => {}
                }
            }
        });
        futures::future::join_all(waits).await
    });

    // (a) A newcomer from 127.0.0.2 registers, connects and chats during the attack.
    let newcomer = register_from(ip("127.0.0.2"), &node.base, &unique("new")).await;
    let mut ws = ws_from(ip("127.0.0.2"), &newcomer, &node.ws_url).await;
    ws.join(room, None).await;
    ws.send(json!({"type": "send", "room": room, "cid": "hello", "body": "made it in"})).await;
    assert!(ws.recv_type("ack").await["seq"].as_u64().is_some());

    // (c) A socket that never authenticates but pings and sends rubbish is closed at its deadline.
    let tcp = tcp_from(ip("127.0.0.4"), addr).await.expect("connect");
    let (mut lurker, _) = tokio_tungstenite::client_async(node.ws_url.as_str(), MaybeTlsStream::Plain(tcp))
        .await
        .expect("anonymous upgrade");
    let opened = Instant::now();
    let mut refusal = None;
    loop {
        assert!(opened.elapsed() < DEADLINE, "the unauthenticated socket is still open after {DEADLINE:?}");
        tokio::select! {
            msg = lurker.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["code"] == "not_authenticated" {
                        refusal = Some(v);
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            // Pacing of the pings, not a wait for a condition.
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if lurker.send(Message::Ping(b"still here".to_vec().into())).await.is_err()
                    || lurker.send(Message::text("not json")).await.is_err()
                {
                    break;
                }
            }
        }
    }
    println!("the pinging unauthenticated socket closed after {:?}: {refusal:?}", opened.elapsed());
    assert!(refusal.is_some(), "closed with a not_authenticated error");

    // The bystanders' round trip (send on one socket, arrival on the other) under attack.
    let mut rtts = Vec::new();
    for i in 0..50 {
        let sent = Instant::now();
        tx.send(json!({"type": "send", "room": room, "cid": format!("b{i}"), "body": format!("bystander {i}")})).await;
        rx.recv_where("the bystander's message", |v| v["type"] == "message" && v["body"] == format!("bystander {i}"))
            .await;
        rtts.push(sent.elapsed());
    }
    rtts.sort();
    println!(
        "bystander round trip during the attack: p50 {:?}, p99 {:?}, max {:?} ({} messages)",
        percentile(&rtts, 0.5),
        percentile(&rtts, 0.99),
        rtts.last().unwrap(),
        rtts.len()
    );

    // (b) Every attacking socket is closed: refused at accept, or after the header timeout.
    let closed = closes.await.unwrap();
    let still_open = closed.iter().filter(|c| c.is_none()).count();
    assert_eq!(still_open, 0, "{still_open} attacking sockets still open after {DEADLINE:?}");
    let late: Vec<Duration> = closed.iter().flatten().copied().filter(|d| *d >= Duration::from_secs(2)).collect();
    println!(
        "attacking sockets closed: {} within 2 s (refused), {} later (header timeout), the last after {:?}",
        closed.len() - late.len(),
        late.len(),
        closed.iter().flatten().max().unwrap()
    );
    // The node still serves the attacker's address once its sockets are gone.
    let again = register_from(ip("127.0.0.1"), &node.base, &unique("after")).await;
    assert_eq!(again.get("/api/me").await.0, 200);
}

/// Runs `confab admin ARGS` against the database at `url`.
async fn admin(url: &str, data_dir: &std::path::Path, args: &[&str]) -> String {
    let out = tokio::process::Command::new(BIN)
        .arg("admin")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--database-url")
        .arg(url)
        .output()
        .await
        .expect("run confab admin");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "confab admin {args:?}: {text}");
    text
}

/// Waits until each socket is closed by the server; prints how long that took.
async fn all_closed(what: &str, since: Instant, sockets: Vec<Ws>) {
    for (i, mut ws) in sockets.into_iter().enumerate() {
        let frames = ws.until_closed().await;
        println!("{what} #{i} closed {:?} after the command: {frames:?}", since.elapsed());
    }
}

/// `confab admin reset-password` and `set-role`, run as processes against a running 2-node
/// cluster: the account's sockets on both nodes close within seconds, and its old token is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_revocations_close_sockets_on_every_node() {
    let sb = Sandbox::start(BIN, 2).await;
    let dir = sb.db.dir.path().to_path_buf();
    let ann = Api::register(&sb.bases[0], &unique("ann")).await;
    let boss = unique("boss");
    let bob = Api::register(&sb.bases[0], &boss).await;
    sb.make_admin(&boss).await;
    let carl = Api::register(&sb.bases[1], &unique("carl")).await;
    let ann_ws = vec![ann.ws(&sb.ws_urls[0]).await, ann.ws(&sb.ws_urls[1]).await];
    let bob_ws = vec![bob.ws(&sb.ws_urls[0]).await, bob.ws(&sb.ws_urls[1]).await];
    let mut bystander = carl.ws(&sb.ws_urls[1]).await;

    let t = Instant::now();
    admin(&sb.db.url, &dir, &["reset-password", &ann.username]).await;
    all_closed("ann's socket", t, ann_ws).await;
    for base in &sb.bases {
        assert_eq!(ann.on(base).get("/api/me").await.0, 401, "ann's old token on {base}");
    }

    let t = Instant::now();
    admin(&sb.db.url, &dir, &["set-role", &boss, "user"]).await;
    all_closed("bob's socket", t, bob_ws).await;
    for base in &sb.bases {
        assert_eq!(bob.on(base).get("/api/me").await.0, 401, "bob's old token on {base}");
    }
    // Nobody else was touched.
    bystander.ping().await;
    assert_eq!(carl.get("/api/me").await.0, 200);
}

/// The same on one node (SQLite by default: the CLI writes the node's own file); a promotion
/// ends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_revocations_close_sockets_on_a_single_node() {
    let node = TestNode::start(NodeOpts::default()).await;
    let (url, dir) = (node.db.url.clone(), node.db.dir.path().to_path_buf());
    let ann = node.user(&unique("ann")).await;
    let dave = node.user(&unique("dave")).await;
    let mut bystander = node.user(&unique("eve")).await.ws(&node.ws_url).await;

    let open = vec![ann.ws(&node.ws_url).await, ann.ws(&node.ws_url).await];
    let t = Instant::now();
    admin(&url, &dir, &["reset-password", &ann.username]).await;
    all_closed("ann's socket", t, open).await;
    assert_eq!(ann.get("/api/me").await.0, 401, "ann's old token");

    let mut open = dave.ws(&node.ws_url).await;
    admin(&url, &dir, &["set-role", &dave.username, "moderator"]).await;
    let t = Instant::now();
    admin(&url, &dir, &["set-role", &dave.username, "user"]).await;
    let frames = open.until_closed().await;
    println!("dave's socket (demoted) closed {:?} after the command: {frames:?}", t.elapsed());
    assert_eq!(dave.get("/api/me").await.0, 401, "a demotion ends the login");
    // A promotion ends nothing.
    let (_, v) = confab_tests::client::login(&node.base, &dave.username, "correct horse").await;
    let dave = Api { token: v["token"].as_str().unwrap().to_owned(), ..dave };
    let mut open = dave.ws(&node.ws_url).await;
    admin(&url, &dir, &["set-role", &dave.username, "admin"]).await;
    eventually("the new role to show", || async {
        (dave.get("/api/me").await.1.to_string().contains("\"admin\"")).then_some(())
    })
    .await;
    open.ping().await;
    bystander.ping().await;
    node.stop().await;
}
