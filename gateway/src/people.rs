//! People over REST: the user directory (prefix search), profiles with cluster-wide presence,
//! one's own profile (display name, status line, who may open a direct conversation), and
//! blocking. A block is never told to the blocked user; what it refuses is in `dms` and in the
//! room's sequencing (`actors/src/room/sequencing.rs`).

use crate::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::rooms::is_deceptive;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, patch};
use axum::{Json, Router};
use confab_actors::store::{DmPolicy, Profile, ProfileUpdate};
use confab_schemas::{ErrorCode, UserId, UserRow};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashSet;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/users", get(directory_route))
        .route("/api/users/{username}", get(profile_route))
        .route("/api/me/profile", patch(update_profile_route))
        .route("/api/blocks", get(blocks_route).post(block_route))
        .route("/api/blocks/{username}", delete(unblock_route))
}

/// A profile as every route shows it; `blocked`: whether the viewer blocked this user.
pub(crate) fn profile_json(p: &Profile, blocked: bool) -> Value {
    json!({
        "id": p.id, "username": p.username, "display_name": p.display_name, "status": p.status,
        "online": p.online, "last_seen": p.last_seen, "created_at": p.created_at, "blocked": blocked,
    })
}

/// Longest prefix the directory takes.
const MAX_QUERY_CHARS: usize = 64;
const PAGE: u32 = 20;
const MAX_PAGE: u32 = 50;

#[derive(Deserialize)]
struct DirectoryQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    after: String,
    limit: Option<u32>,
}

/// `GET /api/users?q=PREFIX&after=CURSOR&limit=N` → `{"users": [profile…], "next"}`: users whose
/// username or display name starts with `q` (without regard to case; all users without `q`), by
/// username; `next` is the cursor of the following page (give it as `after`), null at the end.
async fn directory_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiQuery(q): ApiQuery<DirectoryQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::new(ErrorCode::Invalid, "limit: 1 to 50"));
    }
    let prefix = q.q.trim();
    if prefix.chars().count() > MAX_QUERY_CHARS || q.after.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::new(ErrorCode::TooLong, "q and after: at most 64 characters"));
    }
    if prefix.chars().any(char::is_control) {
        return Err(ApiError::new(ErrorCode::Invalid, "q: no control characters"));
    }
    let store = state.system.store();
    // One more than asked tells whether another page follows.
    let mut people = store.find_people(prefix, &q.after, limit + 1).await?;
    let more = people.len() > limit as usize;
    people.truncate(limit as usize);
    let blocked = blocked_set(&state, user.id).await?;
    let next = if more { json!(people.last().map(|p| p.username.to_lowercase())) } else { Value::Null };
    let users: Vec<Value> = people.iter().map(|p| profile_json(p, blocked.contains(&p.id))).collect();
    Ok(Json(json!({"users": users, "next": next})))
}

async fn blocked_set(state: &AppState, user: UserId) -> Result<HashSet<UserId>, ApiError> {
    Ok(state.system.store().blocks_of(user).await?.into_iter().map(|(id, _)| id).collect())
}

/// The profile of `username`, or 404.
async fn profile_of(state: &AppState, username: &str) -> Result<Profile, ApiError> {
    state
        .system
        .store()
        .profile_by_name(username)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no user {username}")))
}

/// `GET /api/users/{username}` → the profile.
async fn profile_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiPath(username): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let p = profile_of(&state, &username).await?;
    let blocked = p.id != user.id && state.system.store().blocks_between(user.id, p.id).await?.0;
    Ok(Json(profile_json(&p, blocked)))
}

/// One's own profile: the public one and who may open a direct conversation.
pub(crate) async fn own_profile_json(state: &AppState, user: &UserRow) -> Result<Value, ApiError> {
    let p = state
        .system
        .store()
        .profile(user.id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "your account is gone"))?;
    let mut v = profile_json(&p, false);
    if let Some(o) = v.as_object_mut() {
        o.insert("dm_policy".into(), json!(p.dm_policy.as_str()));
    }
    Ok(v)
}

#[derive(Deserialize)]
struct ProfileChange {
    display_name: Option<String>,
    status: Option<String>,
    dm_policy: Option<String>,
}

/// Checks a line of profile text: at most `max` characters, no control or deceptive ones.
fn profile_text<'a>(field: &str, text: &'a str, max: usize) -> Result<&'a str, ApiError> {
    let text = text.trim();
    if text.chars().count() > max || text.chars().any(|c| c.is_control() || is_deceptive(c)) {
        return Err(ApiError::new(
            ErrorCode::Invalid,
            format!("{field}: at most {max} characters, no control, invisible or direction-changing characters"),
        ));
    }
    Ok(text)
}

/// `PATCH /api/me/profile {"display_name"?, "status"?, "dm_policy"?}` → one's own profile.
async fn update_profile_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiJson(change): ApiJson<ProfileChange>,
) -> Result<Json<Value>, ApiError> {
    let display_name = change.display_name.as_deref().map(|d| profile_text("display_name", d, 64)).transpose()?;
    let status = change.status.as_deref().map(|s| profile_text("status", s, 140)).transpose()?;
    let dm_policy = change
        .dm_policy
        .as_deref()
        .map(|p| {
            DmPolicy::parse(p).ok_or_else(|| ApiError::new(ErrorCode::Invalid, "dm_policy: everyone or shared_rooms"))
        })
        .transpose()?;
    let update = ProfileUpdate { display_name, status, dm_policy };
    state.system.store().update_profile(user.id, &update).await?;
    Ok(Json(own_profile_json(&state, &user).await?))
}

/// `GET /api/blocks` → `{"blocks": [{"id", "username"}…]}`: the users one blocked.
async fn blocks_route(State(state): State<AppState>, AuthUser(user, _): AuthUser) -> Result<Json<Value>, ApiError> {
    let blocks: Vec<Value> = state
        .system
        .store()
        .blocks_of(user.id)
        .await?
        .into_iter()
        .map(|(id, username)| json!({"id": id, "username": username}))
        .collect();
    Ok(Json(json!({"blocks": blocks})))
}

#[derive(Deserialize)]
struct BlockRequest {
    username: String,
}

/// `POST /api/blocks {"username"}` → 204; a repeat does nothing. The blocked user is not told.
async fn block_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiJson(body): ApiJson<BlockRequest>,
) -> Result<StatusCode, ApiError> {
    let target = profile_of(&state, &body.username).await?;
    if target.id == user.id {
        return Err(ApiError::new(ErrorCode::Invalid, "you cannot block yourself"));
    }
    // Not in the audit log: who blocks whom is theirs alone.
    state.system.store().block(user.id, target.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/blocks/{username}` → 204, blocked or not.
async fn unblock_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiPath(username): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let target = profile_of(&state, &username).await?;
    state.system.store().unblock(user.id, target.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
