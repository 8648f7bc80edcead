//! Confab's HTTP face: the REST API, authentication, the WebSocket endpoint (`/ws`, upgraded with
//! fastwebsockets, read by `ws_read`), health and metrics, security headers, and the web page embedded in the binary.
//!
//! The gateway holds no chat state: it authenticates, validates, and hands work to the actors
//! through `ActorSystem`. It must never block a socket on another socket.

pub mod admin;
pub mod admission;
pub mod auth;
mod chaos;
mod dms;
pub mod error;
pub mod health;
pub mod limits;
pub mod mail;
mod passwords;
mod people;
mod room_moderation;
pub mod rooms;
mod search;
pub mod security;
pub mod socket_writers;
pub mod tokens;
pub mod trace;
pub mod uploads;
pub mod web;
pub mod ws;
mod ws_read;
mod ws_socket;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use confab_actors::ActorSystem;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use error::ApiError;

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub node_id: String,
    /// Largest WebSocket message accepted (bytes); a larger one closes the socket with 1009.
    pub max_frame_bytes: usize,
    /// Largest REST request body (bytes).
    pub max_body_bytes: usize,
    /// Signs access tokens; every node of a cluster must have the same.
    pub token_key: tokens::TokenKey,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// How long an emailed sign-in code is valid.
    pub code_ttl: Duration,
    /// Mark cookies `Secure` (always when the node serves TLS).
    pub secure_cookies: bool,
    /// The node serves TLS itself: adds HSTS.
    pub tls: bool,
    /// Origins (`https://chat.example.com`) besides the node's own that may use the API and `/ws`.
    pub allowed_origins: Vec<String>,
    /// The node's own origins, as browsers name them (empty: the forms of its listen address,
    /// filled in when it binds; `security::default_public_origins`).
    pub public_origins: Vec<String>,
    /// Accounts one client address may register per hour (0: no limit).
    pub signups_per_ip_per_hour: u32,
    /// Rooms one user may create per hour (0: no limit).
    pub rooms_per_user_per_hour: u32,
    /// Reports one user may file per hour (0: no limit).
    pub reports_per_user_per_hour: u32,
    /// Wrong logins per IP or account before backoff starts.
    pub login_free_attempts: u32,
    /// Code requests per IP or address before backoff starts.
    pub code_free_requests: u32,
    /// Open WebSockets per client IP (0: no limit).
    pub max_connections_per_ip: usize,
    /// Open TCP connections per client IP, WebSockets included (0: no limit).
    pub max_tcp_per_ip: usize,
    /// Connections node-wide that are not an authenticated WebSocket (0: no limit).
    pub max_unauthenticated: usize,
    /// How long a client has to send a request's headers, and how long a kept-alive connection
    /// may wait idle for its next request.
    pub header_timeout: Duration,
    /// How long a client has to send a request's body once its headers are in.
    pub body_timeout: Duration,
    /// How long a WebSocket has, from its upgrade, to authenticate; whatever it sends meanwhile.
    pub ws_auth_timeout: Duration,
    /// Admins may kill actors through `POST /api/chaos`.
    pub enable_chaos: bool,
    /// Threads that write to WebSockets, apart from the actors' runtime (0: write from it).
    pub socket_writer_threads: usize,
    /// Limits of `POST /api/uploads`.
    pub uploads: uploads::UploadConfig,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            node_id: "node".into(),
            max_frame_bytes: 64 * 1024,
            max_body_bytes: 64 * 1024,
            // Never an empty or fixed key: a default configuration signs with a fresh random one.
            token_key: tokens::TokenKey::random(),
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            code_ttl: Duration::from_secs(600),
            secure_cookies: false,
            tls: false,
            allowed_origins: Vec::new(),
            public_origins: Vec::new(),
            signups_per_ip_per_hour: 10,
            rooms_per_user_per_hour: 30,
            reports_per_user_per_hour: 30,
            login_free_attempts: 5,
            code_free_requests: 3,
            max_connections_per_ip: 256,
            max_tcp_per_ip: 256 + 64,
            max_unauthenticated: 16_384,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            ws_auth_timeout: Duration::from_secs(10),
            enable_chaos: false,
            socket_writer_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            uploads: uploads::UploadConfig::default(),
        }
    }
}

/// What every handler shares.
pub struct AppInner {
    pub system: Arc<ActorSystem>,
    pub config: GatewayConfig,
    pub mailer: mail::Mailer,
    /// Open WebSockets per client IP.
    pub connections: Mutex<HashMap<IpAddr, usize>>,
    /// Open TCP connections: per client IP, and those not yet authenticated.
    pub admission: Arc<admission::Admission>,
    /// Where WebSocket writer tasks run.
    pub writers: socket_writers::SocketWriters,
    /// File storage for uploads and media (`None`: uploads are refused).
    pub uploads: Option<uploads::Uploads>,
}

impl AppInner {
    pub fn new(system: Arc<ActorSystem>, config: GatewayConfig, mailer: mail::Mailer) -> AppInner {
        let writers = socket_writers::SocketWriters::new(config.socket_writer_threads);
        let admission = admission::Admission::new(config.max_tcp_per_ip, config.max_unauthenticated);
        AppInner { system, config, mailer, connections: Mutex::new(HashMap::new()), admission, writers, uploads: None }
    }

    /// This gateway with file storage for uploads and media.
    pub fn with_blobs(mut self, blobs: confab_actors::blob::BlobStore) -> AppInner {
        self.uploads = Some(uploads::Uploads::new(blobs, &self.config.uploads));
        self
    }
}

pub type AppState = Arc<AppInner>;

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    let app = Router::new()
        .merge(auth::routes())
        .merge(admin::routes())
        .merge(rooms::routes())
        .merge(room_moderation::routes())
        .merge(dms::routes())
        .merge(people::routes())
        .merge(search::routes())
        .merge(uploads::routes())
        .merge(health::routes())
        .merge(chaos::routes())
        .merge(ws::routes())
        .merge(web::routes())
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(state.clone(), security::body_deadline))
        .layer(axum::middleware::from_fn_with_state(state.clone(), security::web_defences))
        .with_state(state);
    trace::traced(app)
}
