//! Node configuration: defaults ← TOML file (`--config`) ← environment (`CONFAB_*`) ← flags,
//! validated into one `NodeConfig`.
//!
//! Every option is declared once, in `ServeArgs`: clap reads flags and environment from it, serde
//! reads the file into the same struct (kebab-case keys, unknown keys refused), and `merge` lets
//! the flag or env value win over the file's. Defaults are applied last, in `NodeConfig::resolve`.

use anyhow::{Context, bail};
use confab_actors::SystemConfig;
use confab_actors::store::{Cipher, SqliteSync};
use confab_gateway::GatewayConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Options of `confab serve`.
#[derive(clap::Args, Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeArgs {
    /// TOML file with any of these options (kebab-case keys); flags and env override it.
    #[arg(long, env = "CONFAB_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// HTTP and WebSocket listen address [default: 127.0.0.1:8080].
    #[arg(long, env = "CONFAB_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the SQLite database, the node id and the history cache [default: ./data].
    #[arg(long, env = "CONFAB_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: `sqlite://PATH` or `postgres://…` [default: SQLite at <data-dir>/confab.db].
    #[arg(long, env = "CONFAB_DATABASE_URL")]
    pub database_url: Option<String>,
    /// This node's id [default: generated once and kept in <data-dir>/node-id].
    #[arg(long, env = "CONFAB_NODE_ID")]
    pub node_id: Option<String>,
    /// SQLite durability: `full` (fsync every commit; survives power loss) or `normal`
    /// (survives process crashes only) [default: full].
    #[arg(long, env = "CONFAB_SQLITE_SYNC")]
    pub sqlite_sync: Option<String>,
    /// Longest chat message, in characters [default: 4000].
    #[arg(long, env = "CONFAB_MAX_BODY_CHARS")]
    pub max_body_chars: Option<usize>,
    /// Largest WebSocket message, in bytes [default: 65536].
    #[arg(long, env = "CONFAB_MAX_FRAME_BYTES")]
    pub max_frame_bytes: Option<usize>,
    /// Most rooms one connection may join [default: 100].
    #[arg(long, env = "CONFAB_MAX_ROOMS_PER_SESSION")]
    pub max_rooms_per_session: Option<usize>,
    /// Milliseconds without a frame or a room notice after which an idle session parks (its
    /// actor stops; its state waits for the next message); 0 never parks [default: 1000].
    #[arg(long, env = "CONFAB_SESSION_PARK_MS")]
    pub session_park_ms: Option<u64>,
    /// Messages a user may send in a burst, per room [default: 20].
    #[arg(long, env = "CONFAB_RATE_BURST")]
    pub rate_burst: Option<u32>,
    /// Messages per second a user's burst refills, per room [default: 5].
    #[arg(long, env = "CONFAB_RATE_PER_SEC")]
    pub rate_per_sec: Option<f64>,
    /// Frames queued for one connection before it counts as lagging [default: 1024].
    #[arg(long, env = "CONFAB_OUTBOUND_QUEUE")]
    pub outbound_queue: Option<usize>,
    /// Most writes in one database transaction [default: 2000].
    #[arg(long, env = "CONFAB_MAX_BATCH")]
    pub max_batch: Option<usize>,
    /// A busy room sends messages to its members at most once per this many milliseconds,
    /// several per write; a quiet room's message goes out at once. 0 sends each commit at once
    /// [default: 10].
    #[arg(long, env = "CONFAB_FANOUT_WINDOW_MS")]
    pub fanout_window_ms: Option<u64>,
    /// Shortest time between two commits, in microseconds: writes arriving meanwhile share the
    /// next commit. A write after a quiet spell commits at once [default: 2000].
    #[arg(long, env = "CONFAB_COMMIT_GAP_US")]
    pub commit_gap_us: Option<u64>,
    /// Nice value of the threads that commit (the writer's and its SQLite connection's), -20 to
    /// 19; below 0 they get the CPU ahead of the socket threads. That needs CAP_SYS_NICE; without
    /// it the other threads run at the opposite value instead. 0 leaves every thread alone
    /// [default: -10].
    #[arg(long, env = "CONFAB_WRITER_NICE", allow_negative_numbers = true)]
    pub writer_nice: Option<i32>,
    /// Threads that write to WebSockets, apart from the actors' runtime; 0 writes from the
    /// actors' runtime [default: the CPUs this process may use].
    #[arg(long, env = "CONFAB_SOCKET_WRITER_THREADS")]
    pub socket_writer_threads: Option<usize>,
    /// Seconds without subscribers before a room actor passivates [default: 120].
    #[arg(long, env = "CONFAB_ROOM_IDLE_SECS")]
    pub room_idle_secs: Option<u64>,
    /// Seconds to drain connections and flush on SIGINT/SIGTERM [default: 10].
    #[arg(long, env = "CONFAB_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// Mark cookies Secure (set this behind a TLS-terminating proxy) [default: false].
    #[arg(long, env = "CONFAB_SECURE_COOKIES")]
    pub secure_cookies: Option<bool>,
    /// Log filter, e.g. `info` or `confab=debug` [default: info, or RUST_LOG].
    #[arg(long, env = "CONFAB_LOG")]
    pub log: Option<String>,
    /// Log lines as `text` (for people) or `json` (one object per line with the node id and the
    /// request and room ids, for a log pipeline) [default: text].
    #[arg(long, env = "CONFAB_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// File holding the secret that signs access tokens; every node of a cluster needs the same
    /// [default: generated once in <data-dir>/auth-secret].
    #[arg(long, env = "CONFAB_AUTH_SECRET_FILE")]
    pub auth_secret_file: Option<PathBuf>,
    /// Lifetime of access tokens, in seconds [default: 900].
    #[arg(long, env = "CONFAB_ACCESS_TTL_SECS")]
    pub access_ttl_secs: Option<u64>,
    /// Lifetime of refresh tokens, in seconds [default: 2592000, 30 days].
    #[arg(long, env = "CONFAB_REFRESH_TTL_SECS")]
    pub refresh_ttl_secs: Option<u64>,
    /// Other origins allowed to call the API and open /ws, comma-separated
    /// (`https://chat.example.com`) [default: none; the node's own origin is always allowed].
    #[arg(long, env = "CONFAB_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Option<Vec<String>>,
    /// This node's origins as browsers name them, comma-separated or repeated
    /// (`https://chat.example.com`); the Origin of a write must be one of them or of
    /// --allowed-origins [default: http:// (https:// with TLS) and the listen address, plus
    /// localhost and the loopback addresses when it listens on one or on all].
    #[arg(long, env = "CONFAB_PUBLIC_ORIGIN", value_delimiter = ',')]
    pub public_origin: Option<Vec<String>>,
    /// Accounts one client address may register per hour, 0 for no limit [default: 10].
    #[arg(long, env = "CONFAB_SIGNUPS_PER_IP_PER_HOUR")]
    pub signups_per_ip_per_hour: Option<u32>,
    /// Rooms one user may create per hour, 0 for no limit [default: 30].
    #[arg(long, env = "CONFAB_ROOMS_PER_USER_PER_HOUR")]
    pub rooms_per_user_per_hour: Option<u32>,
    /// SMTP server for sign-in codes, `smtp://[user:pass@]host[:port]` [default: none: codes are
    /// written to the log and to <data-dir>/outbox/].
    #[arg(long, env = "CONFAB_SMTP_URL")]
    pub smtp_url: Option<String>,
    /// Sender of sign-in mail [default: Confab <noreply@localhost>].
    #[arg(long, env = "CONFAB_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// Serve HTTPS and wss:// with this PEM certificate chain (needs --tls-key) [default: plain HTTP].
    #[arg(long, env = "CONFAB_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "CONFAB_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Encrypt message bodies at rest with the 32-byte key in this file (64 hex digits or base64);
    /// or give the key itself in the env CONFAB_ENCRYPTION_KEY [default: bodies stored in clear].
    #[arg(long, env = "CONFAB_ENCRYPTION_KEY_FILE")]
    pub encryption_key_file: Option<PathBuf>,
    /// Earlier keys, comma-separated files, still used to read bodies stored under them.
    #[arg(long, env = "CONFAB_ENCRYPTION_OLD_KEY_FILES", value_delimiter = ',')]
    pub encryption_old_key_files: Option<Vec<PathBuf>>,
    /// Full-text search: `on` indexes every message in the writer's transaction and serves
    /// GET /api/search; `off` indexes nothing new and answers search with 503. Always off while
    /// bodies are encrypted at rest [default: on].
    #[arg(long, env = "CONFAB_SEARCH")]
    pub search: Option<String>,
    /// PostgreSQL only: merge the search index's pending list into the index every this many
    /// milliseconds on a connection of its own, so the writer's commits do not; 0 leaves the merge
    /// to whichever insert fills the list (PostgreSQL's default) [default: 200].
    #[arg(long, env = "CONFAB_SEARCH_MERGE_MS")]
    pub search_merge_ms: Option<u64>,
    /// How long an emailed sign-in code is valid, in seconds [default: 600].
    #[arg(long, env = "CONFAB_CODE_TTL_SECS")]
    pub code_ttl_secs: Option<u64>,
    /// Open WebSockets per client IP, 0 for no limit [default: 256].
    #[arg(long, env = "CONFAB_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    /// Open TCP connections per client IP, WebSockets included, counted from accept to close; 0
    /// for no limit [default: --max-connections-per-ip + 64, at most a quarter of
    /// --max-unauthenticated-connections; no limit when --max-connections-per-ip is 0].
    #[arg(long, env = "CONFAB_MAX_TCP_CONNECTIONS_PER_IP")]
    pub max_tcp_connections_per_ip: Option<usize>,
    /// Connections, node-wide, that are not an authenticated WebSocket (HTTP requests, sockets
    /// before their `auth`); past it new connections are refused. 0 for no limit [default: half
    /// the open-file limit, at most 16384].
    #[arg(long, env = "CONFAB_MAX_UNAUTHENTICATED_CONNECTIONS")]
    pub max_unauthenticated_connections: Option<usize>,
    /// Seconds a client has to send a request's headers; also how long a kept-alive connection
    /// may wait idle for its next request [default: 10].
    #[arg(long, env = "CONFAB_HEADER_TIMEOUT_SECS")]
    pub header_timeout_secs: Option<u64>,
    /// Seconds a client has to send a request's body after its headers [default: 10].
    #[arg(long, env = "CONFAB_BODY_TIMEOUT_SECS")]
    pub body_timeout_secs: Option<u64>,
    /// Seconds a WebSocket has, from its upgrade, to authenticate [default: 10].
    #[arg(long, env = "CONFAB_WS_AUTH_TIMEOUT_SECS")]
    pub ws_auth_timeout_secs: Option<u64>,
    /// How often the node checks the database for revocations written by `confab admin`, in
    /// milliseconds [default: 1000].
    #[arg(long, env = "CONFAB_REVOCATION_POLL_MS")]
    pub revocation_poll_ms: Option<u64>,
    /// Wrong logins per IP or account before exponential backoff [default: 5].
    #[arg(long, env = "CONFAB_LOGIN_FREE_ATTEMPTS")]
    pub login_free_attempts: Option<u32>,
    /// Sign-in code requests per IP or address before exponential backoff [default: 3].
    #[arg(long, env = "CONFAB_CODE_FREE_REQUESTS")]
    pub code_free_requests: Option<u32>,
    /// Gossip seeds of the cluster to join, `host:port` of other nodes' --gossip-listen,
    /// comma-separated (DNS names allowed). Clusters need PostgreSQL [default: none, one node].
    #[arg(long, env = "CONFAB_SEEDS", value_delimiter = ',')]
    pub seeds: Option<Vec<String>>,
    /// UDP address for cluster gossip; setting it (or --seeds) makes the node a cluster member
    /// [default: 0.0.0.0:7946 in a cluster].
    #[arg(long, env = "CONFAB_GOSSIP_LISTEN")]
    pub gossip_listen: Option<SocketAddr>,
    /// TCP address for node-to-node traffic [default: 0.0.0.0:7947 in a cluster].
    #[arg(long, env = "CONFAB_CLUSTER_LISTEN")]
    pub cluster_listen: Option<SocketAddr>,
    /// Gossip address other nodes reach this one at [default: --gossip-listen, with this host's
    /// address when that is 0.0.0.0].
    #[arg(long, env = "CONFAB_GOSSIP_ADVERTISE")]
    pub gossip_advertise: Option<String>,
    /// Node-to-node address other nodes reach this one at [default: like --gossip-advertise].
    #[arg(long, env = "CONFAB_CLUSTER_ADVERTISE")]
    pub cluster_advertise: Option<String>,
    /// This node's public HTTP address, shown in GET /api/cluster [default: its listen address].
    #[arg(long, env = "CONFAB_PUBLIC_ADDR")]
    pub public_addr: Option<String>,
    /// Name of the cluster; nodes of another cluster are refused [default: confab].
    #[arg(long, env = "CONFAB_CLUSTER_ID")]
    pub cluster_id: Option<String>,
    /// File holding the cluster key (`confab cluster init` makes one); every node of a cluster
    /// needs the same file, and a cluster node refuses to start without it. Or give the key's
    /// text itself in the env CONFAB_CLUSTER_KEY.
    #[arg(long, env = "CONFAB_CLUSTER_KEY_FILE")]
    pub cluster_key_file: Option<PathBuf>,
    /// Seconds a room's lease lasts without renewal; a dead owner's rooms move sooner, as soon
    /// as gossip declares it dead [default: 10].
    #[arg(long, env = "CONFAB_LEASE_TTL_SECS")]
    pub lease_ttl_secs: Option<u64>,
    /// Let admins kill actors through POST /api/chaos and `confab chaos` (for chaos tests only)
    /// [default: false].
    #[arg(long, env = "CONFAB_ENABLE_CHAOS")]
    pub enable_chaos: Option<bool>,
    /// Speak only this node-to-node protocol version (the previous one: act as a node of the
    /// version before, for upgrade tests) [default: the newest and the previous].
    #[arg(long, env = "CONFAB_NODE_PROTOCOL_VERSION", hide = true)]
    pub node_protocol_version: Option<u32>,
    #[command(flatten)]
    #[serde(flatten)]
    pub uploads: crate::upload_args::UploadArgs,
    /// The stranger chat's match pool (`--stranger-*`).
    #[command(flatten)]
    #[serde(flatten)]
    pub stranger: crate::stranger_args::StrangerArgs,
    /// Blob storage of attachments (`--blob-store`, `--s3-*`).
    #[command(flatten)]
    #[serde(flatten)]
    pub storage: crate::storage_args::StorageArgs,
}

macro_rules! merge {
    ($hi:expr, $lo:expr, $($f:ident),*) => { ServeArgs {
        config: $hi.config.clone(),
        uploads: $hi.uploads.over(&$lo.uploads),
        stranger: $hi.stranger.over(&$lo.stranger),
        storage: $hi.storage.over(&$lo.storage),
        $($f: $hi.$f.clone().or($lo.$f.clone())),*
    } };
}

impl ServeArgs {
    /// These options over the file's (when `--config` names one).
    pub fn with_file(&self) -> anyhow::Result<ServeArgs> {
        let Some(path) = &self.config else { return Ok(self.clone()) };
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: ServeArgs = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        Ok(merge!(
            self,
            file,
            listen,
            data_dir,
            database_url,
            node_id,
            sqlite_sync,
            max_body_chars,
            max_frame_bytes,
            max_rooms_per_session,
            session_park_ms,
            max_tcp_connections_per_ip,
            max_unauthenticated_connections,
            header_timeout_secs,
            body_timeout_secs,
            ws_auth_timeout_secs,
            revocation_poll_ms,
            node_protocol_version,
            rate_burst,
            rate_per_sec,
            outbound_queue,
            max_batch,
            fanout_window_ms,
            commit_gap_us,
            writer_nice,
            socket_writer_threads,
            room_idle_secs,
            shutdown_grace_secs,
            secure_cookies,
            log,
            log_format,
            auth_secret_file,
            access_ttl_secs,
            refresh_ttl_secs,
            allowed_origins,
            public_origin,
            signups_per_ip_per_hour,
            rooms_per_user_per_hour,
            smtp_url,
            smtp_from,
            max_connections_per_ip,
            login_free_attempts,
            code_free_requests,
            code_ttl_secs,
            tls_cert,
            tls_key,
            encryption_key_file,
            encryption_old_key_files,
            search,
            search_merge_ms,
            seeds,
            gossip_listen,
            cluster_listen,
            gossip_advertise,
            cluster_advertise,
            public_addr,
            cluster_id,
            cluster_key_file,
            lease_ttl_secs,
            enable_chaos
        ))
    }
}

/// A validated configuration of one node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub sqlite_sync: SqliteSync,
    pub shutdown_grace: Duration,
    pub log: Option<String>,
    pub log_format: crate::logs::LogFormat,
    pub system: SystemConfig,
    pub gateway: GatewayConfig,
    pub smtp_url: Option<String>,
    pub smtp_from: String,
    /// Certificate chain and key files when the node serves TLS itself.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Encryption at rest of message bodies.
    pub cipher: Option<Cipher>,
    /// The writer indexes messages for search (`--search`).
    pub search: bool,
    /// How often PostgreSQL's search index pending list is merged (`--search-merge-ms`); `None`: never.
    pub search_merge: Option<Duration>,
    /// Cluster membership, when the node is part of a cluster.
    pub cluster: Option<ClusterSettings>,
    pub enable_chaos: bool,
    /// How often to poll the database for revocations written by `confab admin`.
    pub revocation_poll: Duration,
    /// How often the sweeper of unreferenced uploads runs.
    pub upload_sweep_every: Duration,
    /// Where attachments are stored (`BlobStore::open` takes it).
    pub blob: confab_actors::blob::BlobConfig,
}

/// How a node joins its cluster (addresses still to be resolved against the bound ones).
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub seeds: Vec<String>,
    pub gossip_listen: SocketAddr,
    pub cluster_listen: SocketAddr,
    pub gossip_advertise: Option<String>,
    pub cluster_advertise: Option<String>,
    pub public_addr: Option<String>,
    pub cluster_id: String,
    pub key: confab_cluster::key::ClusterKey,
    /// The node-to-node protocol versions this node speaks, newest first.
    pub protocol_versions: Vec<u32>,
}

impl NodeConfig {
    /// Applies the file, then the defaults, and validates.
    pub fn resolve(args: &ServeArgs) -> anyhow::Result<NodeConfig> {
        let a = args.with_file()?;
        let data_dir = a.data_dir.clone().unwrap_or_else(|| PathBuf::from("./data"));
        let database_url =
            a.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", data_dir.join("confab.db").display()));
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            bail!("--database-url must start with sqlite:, postgres:// or postgresql://");
        }
        let sqlite_sync = match a.sqlite_sync.as_deref().unwrap_or("full") {
            "full" => SqliteSync::Full,
            "normal" => SqliteSync::Normal,
            other => bail!("--sqlite-sync must be full or normal, not {other}"),
        };
        let node_id = match &a.node_id {
            Some(id) => id.clone(),
            None => persistent_node_id(&data_dir)?,
        };
        if node_id.is_empty()
            || node_id.len() > 64
            || !node_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            bail!("--node-id: 1 to 64 letters, digits, - or _");
        }
        let d = SystemConfig::default();
        let g = GatewayConfig::default();
        let system = SystemConfig {
            node_id: node_id.clone(),
            max_body_chars: positive(a.max_body_chars.unwrap_or(d.max_body_chars), "max-body-chars")?,
            max_rooms_per_session: positive(
                a.max_rooms_per_session.unwrap_or(d.max_rooms_per_session),
                "max-rooms-per-session",
            )?,
            session_park_after: a.session_park_ms.map(Duration::from_millis).unwrap_or(d.session_park_after),
            outbound_capacity: positive(a.outbound_queue.unwrap_or(d.outbound_capacity), "outbound-queue")?,
            rate_burst: positive(a.rate_burst.unwrap_or(d.rate_burst) as usize, "rate-burst")? as u32,
            rate_per_sec: a.rate_per_sec.unwrap_or(d.rate_per_sec),
            max_batch: positive(a.max_batch.unwrap_or(d.max_batch), "max-batch")?,
            commit_gap: match a.commit_gap_us {
                Some(us) if us > 1_000_000 => bail!("--commit-gap-us is at most 1000000"),
                Some(us) => Duration::from_micros(us),
                None => d.commit_gap,
            },
            writer_nice: match a.writer_nice {
                Some(n) if !(-20..=19).contains(&n) => bail!("--writer-nice is between -20 and 19"),
                Some(n) => n,
                None => d.writer_nice,
            },
            fanout_window: match a.fanout_window_ms {
                Some(ms) if ms > 1000 => bail!("--fanout-window-ms is at most 1000"),
                Some(ms) => Duration::from_millis(ms),
                None => d.fanout_window,
            },
            room_idle: a.room_idle_secs.map(Duration::from_secs).unwrap_or(d.room_idle),
            lease_ttl_ms: positive(a.lease_ttl_secs.unwrap_or(10) as usize, "lease-ttl-secs")? as i64 * 1000,
            cache_dir: Some(data_dir.join("cache")),
            ..d
        };
        if !(system.rate_per_sec > 0.0 && system.rate_per_sec.is_finite()) {
            bail!("--rate-per-sec must be a positive number");
        }
        let secret = match &a.auth_secret_file {
            Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
            None => persistent_secret(&data_dir)?,
        };
        if secret.len() < 32 {
            bail!("the auth secret must be at least 32 bytes");
        }
        let uploads = a.uploads.resolve()?;
        let system = SystemConfig {
            media: confab_actors::media::MediaSigner::new(&secret, uploads.media_url_ttl),
            upload_orphan_ttl: uploads.orphan_ttl,
            stranger: a.stranger.resolve()?,
            ..system
        };
        let allowed_origins: Vec<String> = a.allowed_origins.clone().unwrap_or_default();
        let public_origins: Vec<String> =
            a.public_origin.clone().unwrap_or_default().into_iter().filter(|o| !o.is_empty()).collect();
        for (flag, list) in [("--allowed-origins", &allowed_origins), ("--public-origin", &public_origins)] {
            if let Some(bad) =
                list.iter().find(|o| !(o.starts_with("http://") || o.starts_with("https://")) || o.ends_with('/'))
            {
                bail!("{flag}: {bad} is not an origin like https://chat.example.com");
            }
        }
        let read_key = |path: &PathBuf| -> anyhow::Result<[u8; 32]> {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            Cipher::parse_key(&text).with_context(|| format!("the key in {}", path.display()))
        };
        let current = match (&a.encryption_key_file, std::env::var("CONFAB_ENCRYPTION_KEY")) {
            (Some(path), _) => Some(read_key(path)?),
            (None, Ok(text)) => Some(Cipher::parse_key(&text).context("CONFAB_ENCRYPTION_KEY")?),
            (None, Err(_)) => None,
        };
        let older: Vec<[u8; 32]> =
            a.encryption_old_key_files.iter().flatten().map(read_key).collect::<anyhow::Result<_>>()?;
        let cipher = match current {
            Some(k) => Some(Cipher::new(k, &older)),
            None if older.is_empty() => None,
            None => bail!("--encryption-old-key-files needs a current key (--encryption-key-file)"),
        };
        let search = match a.search.as_deref().unwrap_or("on") {
            "on" => true,
            "off" => false,
            other => bail!("--search must be on or off, not {other}"),
        };
        let tls = match (&a.tls_cert, &a.tls_key) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            (None, None) => None,
            _ => bail!("--tls-cert and --tls-key go together"),
        };
        let max_connections_per_ip = a.max_connections_per_ip.unwrap_or(g.max_connections_per_ip);
        let max_unauthenticated = a.max_unauthenticated_connections.unwrap_or_else(|| {
            let files = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(32_768, |(soft, _)| soft);
            (files / 2).clamp(64, 16_384) as usize
        });
        // One address must not be able to fill the node-wide cap by itself.
        let max_tcp_per_ip =
            a.max_tcp_connections_per_ip.unwrap_or(match (max_connections_per_ip, max_unauthenticated) {
                (0, _) => 0,
                (ws, 0) => ws + 64,
                (ws, cap) => (ws + 64).min((cap / 4).max(8)),
            });
        let gateway = GatewayConfig {
            node_id,
            tls: tls.is_some(),
            max_frame_bytes: positive(a.max_frame_bytes.unwrap_or(g.max_frame_bytes), "max-frame-bytes")?,
            secure_cookies: a.secure_cookies.unwrap_or(false) || tls.is_some(),
            token_key: confab_gateway::tokens::TokenKey::new(secret),
            access_ttl: Duration::from_secs(
                positive(a.access_ttl_secs.unwrap_or(900) as usize, "access-ttl-secs")? as u64
            ),
            refresh_ttl: Duration::from_secs(positive(
                a.refresh_ttl_secs.unwrap_or(30 * 24 * 3600) as usize,
                "refresh-ttl-secs",
            )? as u64),
            allowed_origins,
            public_origins,
            signups_per_ip_per_hour: a.signups_per_ip_per_hour.unwrap_or(g.signups_per_ip_per_hour),
            rooms_per_user_per_hour: a.rooms_per_user_per_hour.unwrap_or(g.rooms_per_user_per_hour),
            code_ttl: Duration::from_secs(a.code_ttl_secs.unwrap_or(600)),
            max_connections_per_ip,
            max_tcp_per_ip,
            max_unauthenticated,
            header_timeout: seconds(a.header_timeout_secs, g.header_timeout, "header-timeout-secs")?,
            body_timeout: seconds(a.body_timeout_secs, g.body_timeout, "body-timeout-secs")?,
            ws_auth_timeout: seconds(a.ws_auth_timeout_secs, g.ws_auth_timeout, "ws-auth-timeout-secs")?,
            login_free_attempts: a.login_free_attempts.unwrap_or(g.login_free_attempts),
            code_free_requests: a.code_free_requests.unwrap_or(g.code_free_requests),
            enable_chaos: a.enable_chaos.unwrap_or(false),
            socket_writer_threads: a.socket_writer_threads.unwrap_or(g.socket_writer_threads),
            uploads: uploads.gateway,
            ..g
        };
        let seeds: Vec<String> = a.seeds.clone().unwrap_or_default().into_iter().filter(|s| !s.is_empty()).collect();
        let cluster = if seeds.is_empty() && a.gossip_listen.is_none() {
            None
        } else {
            if database_url.starts_with("sqlite:") {
                bail!(
                    "a cluster needs a database every node shares: --seeds and --gossip-listen need \
                     --database-url postgres://… (each node's SQLite file would be its own, and messages \
                     would be lost on failover)"
                );
            }
            let key = match (&a.cluster_key_file, std::env::var("CONFAB_CLUSTER_KEY")) {
                (Some(path), _) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("reading the cluster key file {}", path.display()))?;
                    confab_cluster::key::ClusterKey::parse(&text)
                        .map_err(|e| anyhow::anyhow!("the cluster key file {}: {e}", path.display()))?
                }
                (None, Ok(text)) => confab_cluster::key::ClusterKey::parse(&text.replace("\\n", "\n"))
                    .map_err(|e| anyhow::anyhow!("CONFAB_CLUSTER_KEY: {e}"))?,
                (None, Err(_)) => bail!(
                    "a cluster node needs the cluster key, which authenticates and encrypts node-to-node \
                     links and gossip: make one with `confab cluster init --out cluster.key`, give every \
                     node the same file with --cluster-key-file (or its text in CONFAB_CLUSTER_KEY)"
                ),
            };
            use confab_schemas::node::SPOKEN_NODE_PROTOCOL_VERSIONS as SPOKEN;
            let protocol_versions = match a.node_protocol_version {
                None => SPOKEN.to_vec(),
                Some(v) if SPOKEN.contains(&v) => SPOKEN.iter().copied().filter(|s| *s <= v).collect(),
                Some(v) => bail!("--node-protocol-version: this build speaks {SPOKEN:?}, not {v}"),
            };
            Some(ClusterSettings {
                key,
                seeds,
                protocol_versions,
                gossip_listen: a.gossip_listen.unwrap_or_else(|| "0.0.0.0:7946".parse().expect("valid default")),
                cluster_listen: a.cluster_listen.unwrap_or_else(|| "0.0.0.0:7947".parse().expect("valid default")),
                gossip_advertise: a.gossip_advertise.clone(),
                cluster_advertise: a.cluster_advertise.clone(),
                public_addr: a.public_addr.clone(),
                cluster_id: a.cluster_id.clone().unwrap_or_else(|| "confab".into()),
            })
        };
        let blob = a.storage.blob_config(&data_dir, cipher.clone(), cluster.is_some())?;
        Ok(NodeConfig {
            blob,
            cluster,
            enable_chaos: a.enable_chaos.unwrap_or(false),
            revocation_poll: Duration::from_millis(positive(
                a.revocation_poll_ms.unwrap_or(1000) as usize,
                "revocation-poll-ms",
            )? as u64),
            upload_sweep_every: uploads.sweep_every,
            listen: a.listen.unwrap_or_else(|| "127.0.0.1:8080".parse().expect("valid default")),
            data_dir,
            database_url,
            sqlite_sync,
            shutdown_grace: Duration::from_secs(a.shutdown_grace_secs.unwrap_or(10)),
            log: a.log.clone(),
            log_format: crate::logs::LogFormat::parse(a.log_format.as_deref().unwrap_or("text"))?,
            smtp_url: a.smtp_url.clone(),
            tls,
            cipher,
            search,
            search_merge: match a.search_merge_ms.unwrap_or(200) {
                0 => None,
                ms => Some(Duration::from_millis(ms)),
            },
            smtp_from: a.smtp_from.clone().unwrap_or_else(|| "Confab <noreply@localhost>".into()),
            system,
            gateway,
        })
    }
}

/// A timeout flag in seconds (at least 1), or the default.
fn seconds(v: Option<u64>, default: Duration, name: &str) -> anyhow::Result<Duration> {
    match v {
        Some(0) => bail!("--{name} must be at least 1"),
        Some(s) => Ok(Duration::from_secs(s)),
        None => Ok(default),
    }
}

fn positive(v: usize, name: &str) -> anyhow::Result<usize> {
    if v == 0 { bail!("--{name} must be at least 1") } else { Ok(v) }
}

/// The token-signing secret kept in the data dir (owner-only), generated on first start.
fn persistent_secret(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let path = data_dir.join("auth-secret");
    if let Ok(s) = std::fs::read(&path) {
        return Ok(s);
    }
    let mut raw = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
    let secret = hex::encode(raw).into_bytes();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    std::io::Write::write_all(&mut opts.open(&path).with_context(|| format!("creating {}", path.display()))?, &secret)?;
    Ok(secret)
}

/// The node id kept in the data dir, generated on first start.
fn persistent_node_id(data_dir: &Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let path = data_dir.join("node-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        return Ok(id.trim().to_owned());
    }
    let id = format!("node-{:016x}", rand_u64());
    std::fs::write(&path, &id).with_context(|| format!("writing {}", path.display()))?;
    Ok(id)
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_then_file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("confab.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nmax-body-chars = 100\nnode-id = \"n1\"\n").unwrap();
        let args = ServeArgs { config: Some(file.clone()), data_dir: Some(dir.path().into()), ..Default::default() };
        let c = NodeConfig::resolve(&args).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.system.max_body_chars, 100);
        assert_eq!(c.system.max_rooms_per_session, 100);
        assert!(c.database_url.ends_with("confab.db"));
        let args = ServeArgs {
            config: Some(file),
            max_body_chars: Some(7),
            data_dir: Some(dir.path().into()),
            ..Default::default()
        };
        assert_eq!(NodeConfig::resolve(&args).unwrap().system.max_body_chars, 7);
    }

    #[test]
    fn refuses_bad_values_and_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let base = ServeArgs { data_dir: Some(dir.path().into()), node_id: Some("n".into()), ..Default::default() };
        assert!(NodeConfig::resolve(&ServeArgs { database_url: Some("mysql://x".into()), ..base.clone() }).is_err());
        assert!(NodeConfig::resolve(&ServeArgs { sqlite_sync: Some("off".into()), ..base.clone() }).is_err());
        assert!(NodeConfig::resolve(&ServeArgs { max_batch: Some(0), ..base.clone() }).is_err());
        assert!(NodeConfig::resolve(&ServeArgs { fanout_window_ms: Some(1001), ..base.clone() }).is_err());
        assert!(NodeConfig::resolve(&ServeArgs { commit_gap_us: Some(1_000_001), ..base.clone() }).is_err());
        let tuned = ServeArgs {
            fanout_window_ms: Some(0),
            commit_gap_us: Some(500),
            socket_writer_threads: Some(0),
            ..base.clone()
        };
        let c = NodeConfig::resolve(&tuned).unwrap();
        assert_eq!(c.system.fanout_window, Duration::ZERO);
        assert_eq!(c.system.commit_gap, Duration::from_micros(500));
        assert_eq!(c.gateway.socket_writer_threads, 0);
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        assert!(NodeConfig::resolve(&ServeArgs { config: Some(file), ..base }).is_err());
    }

    #[test]
    fn connection_limits_follow_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let base = ServeArgs { data_dir: Some(dir.path().into()), node_id: Some("n".into()), ..Default::default() };
        let with = |ws: usize, cap: usize| ServeArgs {
            max_connections_per_ip: Some(ws),
            max_unauthenticated_connections: Some(cap),
            ..base.clone()
        };
        let g = |args: &ServeArgs| NodeConfig::resolve(args).unwrap().gateway;
        assert_eq!(g(&with(256, 16_384)).max_tcp_per_ip, 320);
        assert_eq!(g(&with(256, 512)).max_tcp_per_ip, 128, "one address fills at most a quarter of the cap");
        assert_eq!(g(&with(0, 512)).max_tcp_per_ip, 0, "no WebSocket limit, no TCP limit");
        let explicit = ServeArgs { max_tcp_connections_per_ip: Some(7), ..with(0, 0) };
        assert_eq!((g(&explicit).max_tcp_per_ip, g(&explicit).max_unauthenticated), (7, 0));
        assert!(NodeConfig::resolve(&ServeArgs { header_timeout_secs: Some(0), ..base.clone() }).is_err());
        let c = NodeConfig::resolve(&ServeArgs { ws_auth_timeout_secs: Some(3), ..base }).unwrap();
        assert_eq!(c.gateway.ws_auth_timeout, Duration::from_secs(3));
        assert_eq!(c.revocation_poll, Duration::from_secs(1));
    }

    #[test]
    fn a_cluster_needs_postgres() {
        let dir = tempfile::tempdir().unwrap();
        let base = ServeArgs { data_dir: Some(dir.path().into()), node_id: Some("n".into()), ..Default::default() };
        let seeded = ServeArgs { seeds: Some(vec!["10.0.0.1:7946".into()]), ..base.clone() };
        let err = NodeConfig::resolve(&seeded).unwrap_err().to_string();
        assert!(err.contains("postgres"), "the refusal says why: {err}");
        let gossip = ServeArgs { gossip_listen: Some("127.0.0.1:0".parse().unwrap()), ..base.clone() };
        assert!(NodeConfig::resolve(&gossip).is_err());
        let pg = ServeArgs { database_url: Some("postgres://h/db".into()), ..seeded };
        let err = NodeConfig::resolve(&pg).unwrap_err().to_string();
        assert!(err.contains("cluster key") && err.contains("confab cluster init"), "the refusal says why: {err}");
        let key_file = dir.path().join("cluster.key");
        std::fs::write(&key_file, confab_cluster::key::ClusterKey::generate().to_text()).unwrap();
        let pg = ServeArgs { cluster_key_file: Some(key_file), ..pg };
        let err = NodeConfig::resolve(&pg).unwrap_err().to_string();
        assert!(err.contains("--blob-store s3"), "a cluster refuses local blob storage: {err}");
        let storage = crate::storage_args::StorageArgs {
            blob_store: Some("s3".into()),
            s3_endpoint: Some("https://s3.example.com".into()),
            s3_bucket: Some("b".into()),
            s3_access_key: Some("k".into()),
            s3_secret_key: Some("s".into()),
            ..Default::default()
        };
        let pg = ServeArgs { storage, ..pg };
        let c = NodeConfig::resolve(&pg).unwrap().cluster.expect("a cluster member");
        assert_eq!(c.seeds, vec!["10.0.0.1:7946".to_owned()]);
        assert_eq!(c.key.len(), 1);
        assert_eq!(c.protocol_versions, confab_schemas::node::SPOKEN_NODE_PROTOCOL_VERSIONS);
        let previous = confab_schemas::node::NODE_PROTOCOL_VERSION - 1;
        let old = ServeArgs { node_protocol_version: Some(previous), ..pg.clone() };
        assert_eq!(NodeConfig::resolve(&old).unwrap().cluster.unwrap().protocol_versions, [previous]);
        let ancient = ServeArgs { node_protocol_version: Some(previous - 1), ..pg.clone() };
        let err = NodeConfig::resolve(&ancient).unwrap_err().to_string();
        assert!(err.contains("--node-protocol-version"), "the refusal says why: {err}");
        assert!(NodeConfig::resolve(&base).unwrap().cluster.is_none());
    }

    #[test]
    fn blob_storage_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("confab.toml");
        std::fs::write(
            &file,
            "blob-store = \"s3\"\ns3-endpoint = \"http://127.0.0.1:3900\"\ns3-allow-http = true\n\
             s3-bucket = \"att\"\ns3-access-key = \"GK1\"\ns3-secret-key = \"x\"\ns3-prefix = \"p\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(file.clone()),
            data_dir: Some(dir.path().into()),
            node_id: Some("n".into()),
            ..Default::default()
        };
        let c = NodeConfig::resolve(&args).unwrap();
        assert!(matches!(c.blob.kind, confab_actors::blob::BlobKind::S3 { ref bucket, .. } if bucket == "att"));
        // A flag wins over the file.
        let storage = crate::storage_args::StorageArgs { s3_bucket: Some("flag".into()), ..Default::default() };
        let c = NodeConfig::resolve(&ServeArgs { storage, ..args.clone() }).unwrap();
        assert!(matches!(c.blob.kind, confab_actors::blob::BlobKind::S3 { ref bucket, .. } if bucket == "flag"));
        std::fs::write(&file, "blob-store = \"local\"\ns3-bucket-typo = \"x\"\n").unwrap();
        let err = format!("{:#}", NodeConfig::resolve(&args).unwrap_err());
        assert!(err.contains("s3-bucket-typo"), "unknown keys are refused: {err}");
        let local = ServeArgs { data_dir: Some(dir.path().into()), node_id: Some("n".into()), ..Default::default() };
        let c = NodeConfig::resolve(&local).unwrap();
        assert!(matches!(c.blob.kind, confab_actors::blob::BlobKind::Local { ref dir } if dir.ends_with("blobs")));
    }

    #[test]
    fn node_id_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let args = ServeArgs { data_dir: Some(dir.path().into()), ..Default::default() };
        let a = NodeConfig::resolve(&args).unwrap().system.node_id;
        let b = NodeConfig::resolve(&args).unwrap().system.node_id;
        assert_eq!(a, b);
        assert!(a.starts_with("node-"));
    }
}
