//! The test harness: real nodes on loopback (in-process through `confab::start`, or as processes
//! of the `confab-test-node` binary), a fresh database per node (SQLite in a temp dir, or a fresh
//! PostgreSQL database when `CONFAB_TEST_DATABASE_URL` is set), and HTTP / WebSocket clients that
//! wait on conditions with deadlines, never on bare sleeps.

pub mod browser;
pub mod chat_page;
pub mod client;
pub mod cluster;
pub mod db;
pub mod history;
pub mod load;
pub mod partition;
pub mod pg_server;
pub mod process;
pub mod s3;
pub mod smtp;

pub use client::{Api, Ws};
pub use db::TestDb;

use confab::{NodeConfig, ServeArgs};
use std::time::Duration;

/// How long any single wait in a test may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Options a test may change; everything else is the node's default.
#[derive(Clone, Default)]
pub struct NodeOpts {
    pub args: ServeArgs,
}

/// A node running inside the test process.
pub struct TestNode {
    pub node: Option<confab::Node>,
    pub base: String,
    pub ws_url: String,
    pub db: TestDb,
}

impl TestNode {
    /// Starts a node on port 0 with generous rate limits (tests that test limits set their own).
    pub async fn start(opts: NodeOpts) -> TestNode {
        let db = TestDb::create().await;
        Self::start_on(db, opts).await
    }

    /// Starts a node on an existing database (a restart).
    pub async fn start_on(db: TestDb, opts: NodeOpts) -> TestNode {
        init_logs();
        let mut args = opts.args;
        args.data_dir.get_or_insert_with(|| db.dir.path().to_path_buf());
        args.database_url.get_or_insert_with(|| db.url.clone());
        args.rate_burst.get_or_insert(100_000);
        args.max_tcp_connections_per_ip.get_or_insert(0);
        args.rate_per_sec.get_or_insert(100_000.0);
        args.signups_per_ip_per_hour.get_or_insert(0);
        args.rooms_per_user_per_hour.get_or_insert(0);
        args.node_id.get_or_insert_with(|| format!("test-{}", rand::random::<u32>()));
        args.sqlite_sync.get_or_insert_with(|| "normal".into());
        let config = NodeConfig::resolve(&args).expect("valid test config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let node = confab::start(config, listener).await.expect("node starts");
        let base = format!("http://{}", node.addr);
        let ws_url = format!("ws://{}/ws", node.addr);
        TestNode { node: Some(node), base, ws_url, db }
    }

    pub fn system(&self) -> &confab_actors::ActorSystem {
        &self.node.as_ref().expect("running").system
    }

    /// Stops the node gracefully and hands back its database.
    pub async fn stop(mut self) -> TestDb {
        if let Some(node) = self.node.take() {
            node.shutdown().await;
        }
        self.db
    }

    /// Registers a user and returns its API client.
    pub async fn user(&self, name: &str) -> Api {
        Api::register(&self.base, name).await
    }

    /// Registers a user (named `name` and a unique number) with a site role.
    pub async fn user_with_role(&self, name: &str, role: confab_schemas::Role) -> Api {
        let api = self.user(&unique(name)).await;
        self.system().store().set_user_role(confab_schemas::UserId(api.user_id), role).await.expect("set role");
        api
    }
}

/// Polls `check` until it returns `Some`, or panics after `DEADLINE`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A GET of `base` + `path` (a media URL), with a `Range` header when given: status, headers
/// and bytes.
pub async fn fetch(base: &str, path: &str, range: Option<&str>) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = reqwest::Client::new().get(format!("{base}{path}"));
    if let Some(r) = range {
        req = req.header("range", r);
    }
    let resp = req.send().await.expect("GET request");
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    (status, headers, resp.bytes().await.unwrap_or_default().to_vec())
}

/// The `code` of a REST error body.
pub fn error_code(body: &serde_json::Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

/// A short unique name for users, rooms and cids: six random digits (apart across processes),
/// then a counter, so that one process never makes the same name twice (50 cids drawn from a
/// million once collided in a burst, and the room rightly answered the repeat with one ack).
pub fn unique(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}{:06}{n}", rand::random::<u32>() % 1_000_000)
}

/// Node logs go to the test's output (shown for failing tests); `RUST_LOG` sets the filter.
pub fn init_logs() {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_test_writer()
        .try_init();
}
