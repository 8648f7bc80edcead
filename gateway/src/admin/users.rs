//! The staff's list of users; role changes and password resets by admins.
//!
//! A role change needs no revocation: every request reads the role from the database, so a
//! demoted moderator or admin loses their power at once on every node, logins kept.

use super::{Admin, Staff, audit, may_act_on, page_size, target};
use crate::AppState;
use crate::auth::{generated_password, hash_password};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::CACHE_CONTROL;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use confab_actors::store::{AdminUser, UserSort};
use confab_schemas::{ErrorCode, Role};
use serde::Deserialize;
use serde_json::{Value, json};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/admin/users", get(users_route))
        .route("/api/admin/users/{username}/role", post(role_route))
        .route("/api/admin/users/{username}/password", post(password_route))
}

#[derive(Deserialize)]
struct UsersQuery {
    /// A username prefix.
    #[serde(default)]
    q: String,
    /// `name` (default), `last_seen` or `newest`.
    sort: Option<String>,
    #[serde(default)]
    offset: u32,
    limit: Option<u32>,
}

fn user_json(u: &AdminUser) -> Value {
    json!({
        "id": u.id, "username": u.username, "role": u.role, "created_at": u.created_at,
        "online": u.online, "last_seen": u.last_seen,
        "banned": u.ban.is_some(),
        "ban": u.ban.as_ref().map(|b| json!({"reason": b.reason, "since": b.created_at, "expires_at": b.expires_at})),
        "muted_until": u.muted_until,
    })
}

/// `GET /api/admin/users?q=&sort=name|last_seen|newest&offset=&limit=` → `{"users","next_offset"}`
/// (`next_offset` null on the last page). Moderators and admins.
async fn users_route(
    Staff(_): Staff,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<UsersQuery>,
) -> Result<Json<Value>, ApiError> {
    let sort = match q.sort.as_deref().unwrap_or("name") {
        "name" => UserSort::Name,
        "last_seen" => UserSort::LastSeen,
        "newest" => UserSort::Newest,
        _ => return Err(ApiError::new(ErrorCode::Invalid, "sort: name, last_seen or newest")),
    };
    let limit = page_size(&q.q, q.limit)?;
    // One more than asked tells whether there is a next page.
    let mut users = state.system.store().admin_users(&q.q, sort, q.offset, limit + 1).await?;
    let next = (users.len() > limit as usize).then(|| q.offset + limit);
    users.truncate(limit as usize);
    Ok(Json(json!({"users": users.iter().map(user_json).collect::<Vec<_>>(), "next_offset": next})))
}

#[derive(Deserialize)]
struct RoleChange {
    role: String,
}

/// `POST /api/admin/users/{username}/role {"role":"user"|"moderator"|"admin"}` → `{"username","role"}`.
/// Admins only; not their own role, nor another admin's.
async fn role_route(
    Admin(actor): Admin,
    State(state): State<AppState>,
    ApiPath(username): ApiPath<String>,
    ApiJson(change): ApiJson<RoleChange>,
) -> Result<Json<Value>, ApiError> {
    let role = match change.role.as_str() {
        "user" => Role::User,
        "moderator" => Role::Moderator,
        "admin" => Role::Admin,
        _ => return Err(ApiError::new(ErrorCode::Invalid, "role: user, moderator or admin")),
    };
    let target = target(&state, &username).await?;
    may_act_on(&actor, &target)?;
    if role != target.role {
        state.system.store().set_user_role(target.id, role).await?;
        let detail = json!({"from": target.role, "to": role});
        audit(&state, &actor, "admin.set_role", Some(&target), detail).await?;
    }
    Ok(Json(json!({"username": target.username, "role": role})))
}

/// `POST /api/admin/users/{username}/password` → `{"username","password"}`: a new generated
/// password, shown only in this answer; every login of the account ends and its sockets close on
/// every node. Admins only; not their own, nor another admin's.
async fn password_route(
    Admin(actor): Admin,
    State(state): State<AppState>,
    ApiPath(username): ApiPath<String>,
) -> Result<Response, ApiError> {
    let target = target(&state, &username).await?;
    may_act_on(&actor, &target)?;
    let password = generated_password();
    let hash = hash_password(password.clone()).await?;
    let store = state.system.store();
    store.set_password_hash(target.id, &hash).await?;
    store.revoke_user_families(target.id, "password reset by admin").await?;
    audit(&state, &actor, "admin.reset_password", Some(&target), json!({})).await?;
    super::sanctions::close_everywhere(&state, target.id, "password reset by admin").await?;
    let mut resp = Json(json!({"username": target.username, "password": password})).into_response();
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}
