//! `GET /healthz` (the process answers), `GET /readyz` (the database answers), `GET /metrics`
//! (Prometheus text).

use crate::AppState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use confab_schemas::RoomId;
use serde_json::json;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz_route))
        .route("/readyz", get(readyz_route))
        .route("/metrics", get(metrics_route))
}

/// `GET /healthz` → 200 while the process serves HTTP.
async fn healthz_route() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz` → 200 when the database answers, else 503.
async fn readyz_route(State(state): State<AppState>) -> impl IntoResponse {
    match state.system.store().head_seq(RoomId(0)).await {
        Ok(_) => (StatusCode::OK, Json(json!({"status": "ready", "node": state.config.node_id}))),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "reason": e.to_string()}))),
    }
}

/// `GET /metrics` → Prometheus text.
async fn metrics_route(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.system.metrics().render())
}
