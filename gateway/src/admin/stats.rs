//! The site's figures for admins: users, online now, messages in total and today (UTC), banned
//! and muted accounts, from storage (so the same on every node); and each live node's own
//! counters (sockets, rooms it sequences, messages committed per second), which every node
//! publishes in the cluster's gossip every second (`confab_cluster::membership`). The answering
//! node reads its own counters directly, so they are fresh and present without a cluster too.

use super::Admin;
use crate::AppState;
use crate::error::ApiError;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use confab_schemas::now_ms;
use serde_json::{Value, json};
use std::sync::atomic::Ordering::Relaxed;

const DAY_MS: i64 = 24 * 3600 * 1000;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/admin/stats", get(stats_route))
}

/// `GET /api/admin/stats` → `{"users","online","messages_total","messages_today","banned","muted",
/// "node","nodes":[{"id","addr","status","connections","rooms_owned","messages_per_second","this_node"}]}`.
async fn stats_route(Admin(_): Admin, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let now = now_ms();
    let s = state.system.store().site_stats(now - now.rem_euclid(DAY_MS)).await?;
    let sessions = state.system.session_count().await;
    let rooms_owned = state.system.owned_rooms().await;
    let rate = state.system.metrics().messages_per_second.load(Relaxed);
    let node = json!({"id": state.config.node_id, "sessions": sessions, "rooms_owned": rooms_owned});
    let mut members = state.system.cluster().members();
    members.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    let nodes: Vec<Value> = members
        .iter()
        .map(|m| {
            let (connections, rooms, mps) = if m.this_node {
                (sessions as u64, rooms_owned as u64, rate)
            } else {
                (m.sessions, m.rooms, m.messages_per_second)
            };
            let addr = (!m.http_addr.is_empty()).then_some(m.http_addr.as_str());
            json!({
                "id": m.node_id, "addr": addr, "status": m.status, "connections": connections,
                "rooms_owned": rooms, "messages_per_second": mps, "this_node": m.this_node,
            })
        })
        .collect();
    Ok(Json(json!({
        "users": s.users, "online": s.online, "messages_total": s.messages_total,
        "messages_today": s.messages_since, "banned": s.banned, "muted": s.muted, "node": node, "nodes": nodes,
    })))
}
