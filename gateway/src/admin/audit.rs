//! The audit log as admins read it: newest first, filtered by actor, target and action, paged
//! with `before`.

use super::{Admin, target};
use crate::AppState;
use crate::error::{ApiError, ApiQuery};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use confab_actors::store::{AuditEntry, AuditFilter};
use confab_schemas::{ErrorCode, UserId};
use serde::Deserialize;
use serde_json::{Value, json};

const PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/admin/audit", get(audit_route))
}

#[derive(Deserialize)]
struct AuditQuery {
    /// Username of who acted.
    actor: Option<String>,
    /// Username of whom it was done to.
    target: Option<String>,
    /// An action name, e.g. `admin.ban`.
    action: Option<String>,
    /// The `next_before` of the previous page.
    before: Option<i64>,
    limit: Option<u32>,
}

fn person(p: &Option<(UserId, String)>) -> Value {
    p.as_ref().map_or(Value::Null, |(id, name)| json!({"id": id, "username": name}))
}

fn entry_json(e: &AuditEntry) -> Value {
    // Staff actions keep their detail as a JSON object; older entries as text.
    let detail = serde_json::from_str::<Value>(&e.detail)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| Value::String(e.detail.clone()));
    json!({
        "id": e.id, "at": e.at, "actor": person(&e.actor), "action": e.action,
        "target": person(&e.target), "room": e.room, "detail": detail,
    })
}

/// `GET /api/admin/audit?actor=&target=&action=&before=&limit=` → `{"entries","next_before"}`
/// (`next_before` null on the last page). Admins only; an unknown username is 404.
async fn audit_route(
    Admin(_): Admin,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::new(ErrorCode::Invalid, format!("limit: 1 to {MAX_PAGE}")));
    }
    if q.action.as_ref().is_some_and(|a| a.len() > 64) {
        return Err(ApiError::new(ErrorCode::Invalid, "action: at most 64 bytes"));
    }
    let actor = match &q.actor {
        Some(name) => Some(target(&state, name).await?.id),
        None => None,
    };
    let whom = match &q.target {
        Some(name) => Some(target(&state, name).await?.id),
        None => None,
    };
    let filter =
        AuditFilter { actor, target: whom, action: q.action.filter(|a| !a.is_empty()), before: q.before, limit };
    let entries = state.system.store().audit_page(&filter).await?;
    let next = (entries.len() == limit as usize).then(|| entries.last().map(|e| e.id)).flatten();
    Ok(Json(json!({"entries": entries.iter().map(entry_json).collect::<Vec<_>>(), "next_before": next})))
}
