//! The site's figures for admins: users, online now, messages in total and today (UTC), banned
//! and muted accounts, from storage (so the same on every node); and the answering node's own
//! counters (sockets, rooms it sequences). Other nodes' counters are not gathered yet.

use super::Admin;
use crate::AppState;
use crate::error::ApiError;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use confab_schemas::now_ms;
use serde_json::{Value, json};

const DAY_MS: i64 = 24 * 3600 * 1000;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/admin/stats", get(stats_route))
}

/// `GET /api/admin/stats` → `{"users","online","messages_total","messages_today","banned","muted","node"}`.
async fn stats_route(Admin(_): Admin, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let now = now_ms();
    let s = state.system.store().site_stats(now - now.rem_euclid(DAY_MS)).await?;
    let node = json!({
        "id": state.config.node_id,
        "sessions": state.system.session_count().await,
        "rooms_owned": state.system.owned_rooms().await,
    });
    Ok(Json(json!({
        "users": s.users, "online": s.online, "messages_total": s.messages_total,
        "messages_today": s.messages_since, "banned": s.banned, "muted": s.muted, "node": node,
    })))
}
