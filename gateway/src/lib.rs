//! Confab's HTTP face: the REST API, authentication, the WebSocket endpoint (`/ws`, upgraded with
//! fastwebsockets), health and metrics, security headers, and the web page embedded in the binary.
//!
//! The gateway holds no chat state: it authenticates, validates, and hands work to the actors
//! through `ActorSystem`. It must never block a socket on another socket.

pub mod auth;
pub mod error;
pub mod health;
pub mod rooms;
pub mod web;
pub mod ws;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use confab_actors::ActorSystem;
use std::sync::Arc;
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
    /// How long a login session lasts.
    pub session_ttl: Duration,
    /// Mark cookies `Secure` (set when served over TLS).
    pub secure_cookies: bool,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            node_id: "node".into(),
            max_frame_bytes: 64 * 1024,
            max_body_bytes: 64 * 1024,
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            secure_cookies: false,
        }
    }
}

/// What every handler shares.
pub struct AppInner {
    pub system: Arc<ActorSystem>,
    pub config: GatewayConfig,
}

pub type AppState = Arc<AppInner>;

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    Router::new()
        .merge(auth::routes())
        .merge(rooms::routes())
        .merge(health::routes())
        .merge(ws::routes())
        .merge(web::routes())
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(web::security_headers))
        .with_state(state)
}
