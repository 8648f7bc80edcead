//! Bans, kicks and mutes, by site moderators and admins.
//!
//! - A ban (with a reason and an optional expiry) refuses the account's sign-in and refresh
//!   (`refuse_if_banned`) and every request and connection (`auth::user_for_token`) with 403
//!   `banned`, and closes its open sockets on every node: at once through the cluster's close
//!   broadcast, and within about a second through a revocation row every node polls
//!   (`confab::revocations`), which also reaches a node the broadcast missed and a socket that
//!   connected while the ban was being written. Each socket gets an `error` frame `banned` and a
//!   close.
//! - A kick closes every socket of the account the same two ways; its logins stay valid, so it may
//!   come back at once.
//! - A mute refuses the account's sends and edits everywhere with `muted` until it ends; each
//!   node reads the mutes in force from storage (at most `confab_actors::mute_cache::MUTE_CACHE`
//!   old), so it holds on every node.

use super::{Staff, audit, may_act_on, reason, target};
use crate::AppState;
use crate::error::{ApiError, ApiJson, ApiPath};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use confab_actors::sessions::{BANNED_REASON, CloseTarget, KICKED_REASON};
use confab_actors::store::Ban;
use confab_schemas::{ErrorCode, UserId, UserRow, now_ms};
use serde::Deserialize;
use serde_json::json;

/// The longest mute: 30 days.
const MAX_MUTE_SECS: u64 = 30 * 24 * 3600;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/admin/bans", post(ban_route))
        .route("/api/admin/bans/{username}", delete(unban_route))
        .route("/api/admin/kicks", post(kick_route))
        .route("/api/admin/mutes", post(mute_route))
        .route("/api/admin/mutes/{username}", delete(unmute_route))
}

/// 403 `banned` when `user` is banned now.
pub async fn refuse_if_banned(state: &AppState, user: &UserRow) -> Result<(), ApiError> {
    match state.system.store().active_ban(user.id).await? {
        None => Ok(()),
        Some(ban) => Err(banned(&ban)),
    }
}

/// The refusal of a banned account, with the ban's reason and end.
pub fn banned(ban: &Ban) -> ApiError {
    let until = ban.expires_at.map_or(String::new(), |t| format!(" until {t} (ms since the epoch)"));
    ApiError::new(ErrorCode::Banned, format!("this account is banned{until}: {}", ban.reason))
}

/// Closes every socket of `user` on every node: now through the cluster, and through a
/// revocation row that every node polls, should the broadcast miss one.
pub(super) async fn close_everywhere(state: &AppState, user: UserId, why: &str) -> Result<(), ApiError> {
    state.system.close_sessions(CloseTarget::User(user), why, false);
    state.system.store().add_revocation(user, why, false).await?;
    Ok(())
}

#[derive(Deserialize)]
struct BanRequest {
    username: String,
    reason: Option<String>,
    /// Milliseconds since the Unix epoch; absent: until lifted.
    expires_at: Option<i64>,
}

/// `POST /api/admin/bans {"username","reason","expires_at"?}` → 201 `{"username","reason","expires_at"}`.
async fn ban_route(
    Staff(actor): Staff,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<BanRequest>,
) -> Result<Response, ApiError> {
    let reason = reason(req.reason.as_deref(), true)?;
    if req.expires_at.is_some_and(|t| t <= now_ms()) {
        return Err(ApiError::new(ErrorCode::Invalid, "expires_at must be in the future (ms since the epoch)"));
    }
    let target = target(&state, &req.username).await?;
    may_act_on(&actor, &target)?;
    state.system.store().ban_user(target.id, actor.id, &reason, req.expires_at).await?;
    audit(&state, &actor, "admin.ban", Some(&target), json!({"reason": reason, "expires_at": req.expires_at})).await?;
    close_everywhere(&state, target.id, BANNED_REASON).await?;
    let body = json!({"username": target.username, "reason": reason, "expires_at": req.expires_at});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `DELETE /api/admin/bans/{username}` → 204; 404 when no ban is in force.
async fn unban_route(
    Staff(actor): Staff,
    State(state): State<AppState>,
    ApiPath(username): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    lift(&state, &actor, &username, Lift::Ban).await
}

/// Which sanction a `DELETE` lifts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lift {
    Ban,
    Mute,
}

/// Lifts `username`'s ban or mute (404 when none is in force) and audits it.
async fn lift(state: &AppState, actor: &UserRow, username: &str, what: Lift) -> Result<StatusCode, ApiError> {
    let target = target(state, username).await?;
    may_act_on(actor, &target)?;
    let store = state.system.store();
    let (lifted, action, none) = match what {
        Lift::Ban => (store.unban_user(target.id).await?, "admin.unban", "this account is not banned"),
        Lift::Mute => (store.unmute_user(target.id).await?, "admin.unmute", "this account is not muted"),
    };
    if !lifted {
        return Err(ApiError::new(ErrorCode::NotFound, none));
    }
    audit(state, actor, action, Some(&target), json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct KickRequest {
    username: String,
    reason: Option<String>,
}

/// `POST /api/admin/kicks {"username","reason"?}` → 204; closes every socket of the account now.
async fn kick_route(
    Staff(actor): Staff,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<KickRequest>,
) -> Result<StatusCode, ApiError> {
    let reason = reason(req.reason.as_deref(), false)?;
    let target = target(&state, &req.username).await?;
    may_act_on(&actor, &target)?;
    audit(&state, &actor, "admin.kick", Some(&target), json!({"reason": reason})).await?;
    close_everywhere(&state, target.id, KICKED_REASON).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct MuteRequest {
    username: String,
    seconds: u64,
    reason: Option<String>,
}

/// `POST /api/admin/mutes {"username","seconds","reason"?}` → 201 `{"username","muted_until"}`;
/// `seconds` from 1 to 30 days.
async fn mute_route(
    Staff(actor): Staff,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<MuteRequest>,
) -> Result<Response, ApiError> {
    let reason = reason(req.reason.as_deref(), false)?;
    if !(1..=MAX_MUTE_SECS).contains(&req.seconds) {
        return Err(ApiError::new(ErrorCode::Invalid, format!("seconds: 1 to {MAX_MUTE_SECS}")));
    }
    let target = target(&state, &req.username).await?;
    may_act_on(&actor, &target)?;
    let until = now_ms() + req.seconds as i64 * 1000;
    state.system.store().mute_user(target.id, actor.id, &reason, until).await?;
    audit(&state, &actor, "admin.mute", Some(&target), json!({"reason": reason, "expires_at": until})).await?;
    Ok((StatusCode::CREATED, Json(json!({"username": target.username, "muted_until": until}))).into_response())
}

/// `DELETE /api/admin/mutes/{username}` → 204; 404 when no mute is in force.
async fn unmute_route(
    Staff(actor): Staff,
    State(state): State<AppState>,
    ApiPath(username): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    lift(&state, &actor, &username, Lift::Mute).await
}
