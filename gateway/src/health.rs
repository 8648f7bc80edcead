//! `GET /healthz` (the process answers), `GET /readyz` (the database answers), `GET /metrics`
//! (Prometheus text, with the cluster's routing counters) and `GET /api/cluster` (the members).

use crate::AppState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz_route))
        .route("/readyz", get(readyz_route))
        .route("/metrics", get(metrics_route))
        .route("/api/cluster", get(cluster_route))
}

/// `GET /healthz` → 200 while the process serves HTTP.
async fn healthz_route() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz` → 200 when the node can take sends: its storage took the last write, no commit
/// is stalled, and the database answers a read (`ActorSystem::storage_ready`); else 503 with the
/// reason.
async fn readyz_route(State(state): State<AppState>) -> impl IntoResponse {
    match state.system.storage_ready().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready", "node": state.config.node_id}))),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "reason": why}))),
    }
}

/// `GET /metrics` → Prometheus text.
async fn metrics_route(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = state.system.metrics().render();
    text.push_str(&state.system.cluster().metrics_text());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// `GET /api/cluster` → the members as this node sees them (node id, HTTP address, status, rooms
/// each sequences, sessions) and which one answered.
async fn cluster_route(State(state): State<AppState>, _user: crate::auth::AuthUser) -> Json<serde_json::Value> {
    let cluster = state.system.cluster();
    let mut members = cluster.members();
    let this = state.system.config().node_id.clone();
    let rooms = state.system.owned_rooms().await as u64;
    for m in members.iter_mut().filter(|m| m.node_id == this) {
        m.rooms = rooms;
        m.sessions = state.system.session_count().await as u64;
    }
    Json(serde_json::json!({ "node": this, "members": members }))
}
