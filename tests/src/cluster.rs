//! A cluster sandbox: N node processes of `confab-test-node` on loopback, gossiping with each
//! other, sharing one fresh PostgreSQL database (dropped at the end), one token secret and one
//! cluster key (made with `confab cluster init`, as an operator would), and clients that survive
//! nodes dying: they reconnect to the next node and resume.
//!
//! Node `i` binds its gossip and node-to-node ports on its own loopback address
//! (`Sandbox::node_ip(i)`: 127.A.B.2, 127.A.B.3, … with A.B random per sandbox, so tests running
//! at once never share one) and dials from it, so a test can cut every packet between two nodes
//! by address; HTTP stays on 127.0.0.1.
//!
//! Clusters need PostgreSQL, so these tests use `CONFAB_TEST_DATABASE_URL`, else
//! `CONFAB_CLUSTER_DATABASE_URL`, else the server at `postgres://postgres@127.0.0.1:5432/postgres`
//! (the one CI starts), on both test passes. They also need shared blob storage: the S3 store of
//! `CONFAB_TEST_S3_*` (`crate::s3`), under a prefix of the sandbox's own.

use crate::client::Api;
use crate::process::NodeProcess;
use crate::{TestDb, Ws, eventually};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub struct Sandbox {
    pub db: TestDb,
    /// `None` once a node was killed or stopped.
    pub nodes: Vec<Option<NodeProcess>>,
    pub gossip: Vec<u16>,
    pub cluster_ports: Vec<u16>,
    pub bases: Vec<String>,
    pub ws_urls: Vec<String>,
    secret: PathBuf,
    /// The cluster key file every node is given.
    pub key_file: PathBuf,
    /// `127.A.B`: the loopback network of this sandbox's nodes.
    net: String,
    bin: String,
    /// The S3 store every node keeps attachments in, and this sandbox's prefix in it.
    pub s3: crate::s3::S3Env,
    pub s3_prefix: String,
    /// Flags of each node's own, after the sandbox's (`start_with`, `restart_with`).
    extra_args: Vec<Vec<String>>,
}

struct Spawned {
    process: NodeProcess,
    base: String,
    ws_url: String,
    gossip: u16,
    cluster: u16,
}

fn free_udp_port(ip: &str) -> u16 {
    std::net::UdpSocket::bind((ip, 0)).expect("bind udp").local_addr().expect("addr").port()
}

fn free_tcp_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0)).expect("bind").local_addr().expect("addr").port()
}

impl Sandbox {
    /// Starts `n` nodes (`n0`, `n1`, …) and waits until each sees all of them ready.
    pub async fn start(bin: &str, n: usize) -> Sandbox {
        Sandbox::start_with(bin, n, |_| Vec::new()).await
    }

    /// Like `start`, node `i` with the flags `args(i)` besides the sandbox's.
    pub async fn start_with(bin: &str, n: usize, args: impl Fn(usize) -> Vec<String>) -> Sandbox {
        let s3 = crate::s3::S3Env::required("a cluster sandbox");
        let server = std::env::var("CONFAB_TEST_DATABASE_URL")
            .or_else(|_| std::env::var("CONFAB_CLUSTER_DATABASE_URL"))
            .unwrap_or_else(|_| DEFAULT_PG.to_owned());
        let db = TestDb::postgres_at(&server).await;
        let secret = db.dir.path().join("auth-secret");
        std::fs::write(&secret, format!("{:064x}", rand::random::<u128>()).repeat(2)).expect("secret");
        let key_file = db.dir.path().join("cluster.key");
        let out = tokio::process::Command::new(bin)
            .args(["cluster", "init", "--out"])
            .arg(&key_file)
            .output()
            .await
            .expect("run confab cluster init");
        assert!(out.status.success(), "cluster init: {}", String::from_utf8_lossy(&out.stderr));
        let mut sb = Sandbox {
            db,
            nodes: Vec::new(),
            gossip: Vec::new(),
            cluster_ports: Vec::new(),
            bases: Vec::new(),
            ws_urls: Vec::new(),
            secret,
            key_file,
            net: format!("127.{}.{}", 1 + rand::random::<u8>() % 254, rand::random::<u8>() % 255),
            bin: bin.to_owned(),
            s3,
            s3_prefix: format!("sandbox-{:016x}", rand::random::<u64>()),
            extra_args: Vec::new(),
        };
        for i in 0..n {
            sb.extra_args.push(args(i));
            sb.add().await;
        }
        sb.wait_ready(n).await;
        sb
    }

    /// The loopback address node `i` gossips and links from.
    pub fn node_ip(&self, i: usize) -> String {
        format!("{}.{}", self.net, i + 2)
    }

    /// Starts one more node, seeded with the first node's gossip address; returns its index.
    pub async fn add(&mut self) -> usize {
        let i = self.nodes.len();
        if self.extra_args.len() == i {
            self.extra_args.push(Vec::new());
        }
        let node = self.spawn(i, free_udp_port(&self.node_ip(i)), free_tcp_port(&self.node_ip(i)), None).await;
        self.bases.push(node.base.clone());
        self.ws_urls.push(node.ws_url.clone());
        self.gossip.push(node.gossip);
        self.cluster_ports.push(node.cluster);
        self.nodes.push(Some(node.process));
        i
    }

    /// Starts node `i` again (same id, data dir, HTTP and node ports: a new generation) after it
    /// was killed or stopped.
    pub async fn restart(&mut self, i: usize) {
        let args = self.extra_args[i].clone();
        self.restart_with(i, args).await;
    }

    /// Like `restart`, with `args` as the node's own flags from now on.
    pub async fn restart_with(&mut self, i: usize, args: Vec<String>) {
        self.extra_args[i] = args;
        assert!(self.nodes[i].is_none(), "n{i} is still running");
        let port = self.bases[i].rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
        let node = self.spawn(i, self.gossip[i], self.cluster_ports[i], Some(port)).await;
        self.bases[i] = node.base.clone();
        self.ws_urls[i] = node.ws_url.clone();
        self.nodes[i] = Some(node.process);
    }

    async fn spawn(&self, i: usize, g: u16, c: u16, http: Option<u16>) -> Spawned {
        let ip = self.node_ip(i);
        let seeds: Vec<String> = (0..self.gossip.len())
            .filter(|j| *j != i)
            .take(2)
            .map(|j| format!("{}:{}", self.node_ip(j), self.gossip[j]))
            .collect();
        let seeds = if seeds.is_empty() { format!("{ip}:{g}") } else { seeds.join(",") };
        let dir = self.db.dir.path().join(format!("n{i}"));
        let args: Vec<String> = vec![
            "--node-id".into(),
            format!("n{i}"),
            "--gossip-listen".into(),
            format!("{ip}:{g}"),
            "--cluster-listen".into(),
            format!("{ip}:{c}"),
            "--cluster-key-file".into(),
            self.key_file.display().to_string(),
            "--seeds".into(),
            seeds,
            "--auth-secret-file".into(),
            self.secret.display().to_string(),
            "--enable-chaos".into(),
            "true".into(),
            "--max-connections-per-ip".into(),
            "0".into(),
            "--lease-ttl-secs".into(),
            "6".into(),
        ];
        let mut args = args;
        args.extend(self.s3.node_args(&dir, &self.s3_prefix));
        args.extend(self.extra_args[i].iter().cloned());
        if let Ok(filter) = std::env::var("CONFAB_TEST_NODE_LOG") {
            args.extend(["--log".to_owned(), filter]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let process = match http {
            Some(port) => NodeProcess::spawn_at(port, &[], &self.bin, &dir, &self.db.url, &args).await,
            None => NodeProcess::spawn(&self.bin, &dir, &self.db.url, &args).await,
        };
        Spawned { base: process.base.clone(), ws_url: process.ws_url.clone(), gossip: g, cluster: c, process }
    }

    pub fn live(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|i| self.nodes[*i].is_some()).collect()
    }

    /// Waits until every live node lists `n` ready members.
    pub async fn wait_ready(&self, n: usize) {
        let api = Api::register(&self.bases[self.live()[0]], &crate::unique("watch")).await;
        for i in self.live() {
            let api = api.on(&self.bases[i]);
            eventually(&format!("node n{i} to see {n} ready members"), || {
                let api = api.clone();
                async move {
                    let (_, v) = api.get("/api/cluster").await;
                    let ready = v["members"].as_array()?.iter().filter(|m| m["status"] == "ready").count();
                    // And connected to every other member.
                    let text = api.http.get(format!("{}/metrics", api.base)).send().await.ok()?.text().await.ok()?;
                    let peers = text.lines().filter(|l| l.starts_with("confab_peer_connects_total{")).count();
                    (ready == n && peers + 1 >= n).then_some(())
                }
            })
            .await;
        }
    }

    /// SIGKILL node `i`.
    pub async fn kill9(&mut self, i: usize) {
        if let Some(mut n) = self.nodes[i].take() {
            n.kill9().await;
        }
    }

    /// SIGTERM node `i`; its exit code.
    pub async fn terminate(&mut self, i: usize) -> Option<i32> {
        let mut n = self.nodes[i].take().expect("running");
        n.terminate().await
    }

    /// A public room whose owner (by `api`'s node) is `owner`.
    pub async fn room_owned_by(&self, api: &Api, owner: &str) -> i64 {
        for _ in 0..200 {
            let room = api.create_room(&crate::unique("r"), "public").await;
            if owner_of(api, room).await == owner {
                return room;
            }
        }
        panic!("no room landed on {owner}");
    }

    /// Makes `username` an admin through the CLI, as an operator would.
    pub async fn make_admin(&self, username: &str) {
        let out = tokio::process::Command::new(&self.bin)
            .args(["admin", "set-role", username, "admin", "--database-url", &self.db.url])
            .output()
            .await
            .expect("run confab admin");
        assert!(out.status.success(), "set-role: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// The owner node of a room as `api`'s node reports it.
pub async fn owner_of(api: &Api, room: i64) -> String {
    let (status, v) = api.get(&format!("/api/rooms/{room}")).await;
    assert_eq!(status, 200, "room {room}: {v}");
    v["owner_node"].as_str().unwrap_or_default().to_owned()
}

/// A WebSocket to the first of `urls` that accepts one, starting at `start`.
pub async fn connect_any(api: &Api, urls: &[String], start: usize) -> (Ws, usize) {
    let deadline = Instant::now() + crate::DEADLINE;
    let mut i = start;
    loop {
        let url = &urls[i % urls.len()];
        if let Some(ws) = try_ws(api, url).await {
            return (ws, i % urls.len());
        }
        assert!(Instant::now() < deadline, "no node accepted a WebSocket");
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn try_ws(api: &Api, url: &str) -> Option<Ws> {
    let mut req = url.into_client_request().ok()?;
    req.headers_mut().insert("authorization", HeaderValue::from_str(&format!("Bearer {}", api.token)).ok()?);
    let (stream, _) =
        tokio::time::timeout(Duration::from_secs(3), tokio_tungstenite::connect_async(req)).await.ok()?.ok()?;
    let mut ws = Ws::from_stream(stream);
    let hello = tokio::time::timeout(Duration::from_secs(3), ws.next()).await.ok()??;
    (hello["type"] == "hello").then_some(ws)
}

/// Joins `room` (replaying after `since`), tolerating `retry` answers while the room moves.
async fn join_retrying(ws: &mut Ws, room: i64, since: u64) -> bool {
    // Up to 30 s: a room can be unavailable for a while under faults (a pause, a partition).
    for _ in 0..300 {
        if !ws.try_send(json!({"type": "join", "room": room, "since": since})).await {
            return false;
        }
        loop {
            match ws.next().await {
                Some(f) if f["type"] == "joined" && f["room"] == room => return true,
                Some(f) if f["type"] == "error" && f["room"] == room => {
                    assert_eq!(f["code"], "retry", "join refused: {f}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    break;
                }
                Some(_) => {}
                None => return false,
            }
        }
    }
    panic!("could not join room {room}");
}

/// What a reliable sender saw: every ack by cid, and when each arrived.
pub struct SendReport {
    pub acks: HashMap<String, Value>,
    pub ack_times: Vec<Instant>,
}

/// Sends `n` messages to `room` with at most `window` unacknowledged, through any node of
/// `urls`: on a closed connection it reconnects to the next node and resends what is unacked
/// (same cids), and resends on `retry`/`overloaded`.
pub async fn send_reliably_any(
    api: &Api,
    urls: &[String],
    room: i64,
    prefix: &str,
    n: usize,
    window: usize,
) -> SendReport {
    send_reliably(api, urls, room, prefix, n, None, window).await
}

/// Like `send_reliably_any`, but sends one message every 25 ms or so until `stop`, then waits
/// for every ack.
pub async fn send_until(
    api: &Api,
    urls: &[String],
    room: i64,
    prefix: &str,
    stop: Instant,
    window: usize,
) -> SendReport {
    send_reliably(api, urls, room, prefix, usize::MAX, Some((stop, Duration::from_millis(25))), window).await
}

/// Like `send_until`, one message every `every` (under a node's default rate limit, 5 a second,
/// for nodes started without the harness's higher limits); a `rate_limited` answer is sent again.
pub async fn send_until_every(
    api: &Api,
    urls: &[String],
    room: i64,
    prefix: &str,
    stop: Instant,
    every: Duration,
    window: usize,
) -> SendReport {
    send_reliably(api, urls, room, prefix, usize::MAX, Some((stop, every)), window).await
}

async fn send_reliably(
    api: &Api,
    urls: &[String],
    room: i64,
    prefix: &str,
    n: usize,
    paced: Option<(Instant, Duration)>,
    window: usize,
) -> SendReport {
    let stop = paced.map(|(s, _)| s);
    let frame = |i: usize| json!({"type": "send", "room": room, "cid": format!("{prefix}-{i}"), "body": format!("{prefix} #{i}")});
    let (mut ws, mut at) = connect_any(api, urls, 0).await;
    while !join_retrying(&mut ws, room, 0).await {
        (ws, at) = connect_any(api, urls, at + 1).await;
    }
    let mut report = SendReport { acks: HashMap::new(), ack_times: Vec::new() };
    let mut unacked: BTreeMap<usize, ()> = BTreeMap::new();
    let mut next = 0;
    let deadline = stop.unwrap_or_else(Instant::now) + Duration::from_secs(120);
    loop {
        let cap = if stop.is_some_and(|s| Instant::now() >= s) { next } else { n };
        if next >= cap && unacked.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "sender stuck: {} acked, {} not", report.acks.len(), unacked.len());
        while next < cap && unacked.len() < window {
            if let Some((_, every)) = paced {
                tokio::time::sleep(every).await;
            }
            let _ = ws.try_send(frame(next)).await;
            unacked.insert(next, ());
            next += 1;
            if stop.is_some() {
                break;
            }
        }
        match ws.next().await {
            Some(f) if f["type"] == "ack" => {
                let cid = f["cid"].as_str().expect("cid").to_owned();
                let i: usize = cid.rsplit('-').next().and_then(|s| s.parse().ok()).expect("our cid");
                unacked.remove(&i);
                report.ack_times.push(Instant::now());
                if let Some(old) = report.acks.insert(cid.clone(), f.clone()) {
                    assert_eq!(old, f, "a repeated cid got a different ack");
                }
            }
            Some(f) if f["type"] == "error" => {
                let code = f["code"].as_str().unwrap_or_default();
                assert!(matches!(code, "retry" | "overloaded" | "rate_limited"), "unexpected error {f}");
                if let Some(i) = f["ref"].as_str().and_then(|c| c.rsplit('-').next()).and_then(|s| s.parse().ok()) {
                    let wait = if code == "rate_limited" { 250 } else { 20 };
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    let _ = ws.try_send(frame(i)).await;
                }
            }
            Some(_) => {}
            None => loop {
                (ws, at) = connect_any(api, urls, at + 1).await;
                if join_retrying(&mut ws, room, 0).await {
                    for &i in unacked.keys() {
                        let _ = ws.try_send(frame(i)).await;
                    }
                    break;
                }
            },
        }
    }
    ws.close().await;
    report
}

/// What a receiver saw: messages in arrival order, and when each arrived.
pub struct Received {
    pub messages: Vec<Value>,
    pub times: Vec<Instant>,
}

/// Receives `room` from seq 1 until `count` messages arrived, through any node of `urls`,
/// resuming with `since` after a closed connection.
pub async fn receive_all_any(api: &Api, urls: &[String], room: i64, count: u64) -> Received {
    receive_until(api, urls, room, Arc::new(AtomicU64::new(count))).await
}

/// Like `receive_all_any`, with a count set later (`u64::MAX` until then).
pub async fn receive_until(api: &Api, urls: &[String], room: i64, count: Arc<AtomicU64>) -> Received {
    let (mut ws, mut at) = connect_any(api, urls, 0).await;
    while !join_retrying(&mut ws, room, 0).await {
        (ws, at) = connect_any(api, urls, at + 1).await;
    }
    let mut got = Received { messages: Vec::new(), times: Vec::new() };
    let mut deadline = None;
    loop {
        let target = count.load(Relaxed);
        if got.messages.len() as u64 >= target {
            break;
        }
        if target != u64::MAX {
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + Duration::from_secs(120));
            assert!(Instant::now() < deadline, "receiver stuck at {} of {target}", got.messages.len());
        }
        let Ok(next) = ws.next_or_quiet(Duration::from_secs(1)).await else { continue };
        match next {
            Some(f) if f["type"] == "message" && f["room"] == room => {
                got.messages.push(f);
                got.times.push(Instant::now());
            }
            Some(f) if f["type"] == "resync" => panic!("unexpected resync {f}"),
            Some(_) => {}
            None => loop {
                (ws, at) = connect_any(api, urls, at + 1).await;
                let since = got.messages.last().map(|m| m["seq"].as_u64().expect("seq")).unwrap_or(0);
                if join_retrying(&mut ws, room, since).await {
                    break;
                }
            },
        }
    }
    ws.close().await;
    got
}

/// The invariants: the receiver saw seqs 1..=n once each, in order; every ack names a seq whose
/// message carries that cid's body; storage (read through `api`) holds exactly those n.
pub async fn check_invariants(api: &Api, room: i64, prefix: &str, sent: &SendReport, got: &Received) {
    let n = sent.acks.len() as u64;
    let seqs: Vec<u64> = got.messages.iter().map(|m| m["seq"].as_u64().expect("seq")).collect();
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "the receiver saw a gap, a duplicate or disorder");
    let by_seq: HashMap<u64, &Value> = got.messages.iter().map(|m| (m["seq"].as_u64().expect("seq"), m)).collect();
    for (cid, ack) in &sent.acks {
        let seq = ack["seq"].as_u64().expect("ack seq");
        let i = cid.rsplit('-').next().expect("index");
        assert_eq!(by_seq[&seq]["body"], format!("{prefix} #{i}"), "ack of {cid} names seq {seq}");
    }
    let mut stored = Vec::new();
    let mut after = 0;
    loop {
        let (status, v) = api.get(&format!("/api/rooms/{room}/messages?after={after}&limit=100")).await;
        assert_eq!(status, 200, "history: {v}");
        let page = v["messages"].as_array().expect("messages").clone();
        if page.is_empty() {
            break;
        }
        after = page.last().expect("row")["seq"].as_u64().expect("seq");
        stored.extend(page.into_iter().map(|m| m["seq"].as_u64().expect("seq")));
    }
    assert_eq!(stored, (1..=n).collect::<Vec<_>>(), "storage holds a gap or a duplicate");
}

/// The longest pause between consecutive instants.
pub fn longest_pause(times: &[Instant]) -> Duration {
    times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
}
