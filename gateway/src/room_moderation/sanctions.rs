//! Room sanctions by the room's staff: `remove` (out of the room now; a public room may be joined
//! again), `ban` (removed, and refused on joining until it is lifted or ends) and `mute` (its
//! sends in the room refused with `muted`; every node reads the room mutes in force at most
//! `confab_actors::mute_cache::MUTE_CACHE` old). A removal is the room's `member_removed` event:
//! the target's sockets joined to the room get `left` on every node and stop receiving. Never
//! on the owner, on site staff or on oneself; a room moderator not on another room moderator.

use super::{audit, reason, staff_of, user_named};
use crate::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiJson, ApiPath};
use crate::rooms::{announce, user_ref};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use confab_actors::store::{RoomSanctionKind, Standing};
use confab_schemas::{ErrorCode, Role, RoomRow, SystemEvent, UserRow, now_ms};
use serde::Deserialize;
use serde_json::{Value, json};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/rooms/{id}/sanctions", post(sanction_route).get(list_route))
        .route("/api/rooms/{id}/sanctions/{username}/{kind}", delete(lift_route))
}

/// What a room's staff may do to whom: never to themselves, the owner or site staff; a room
/// moderator (who is not site staff) not to another room moderator.
pub(super) async fn may_sanction(
    state: &AppState,
    room: &RoomRow,
    actor: &UserRow,
    standing: &Standing,
    target: &UserRow,
) -> Result<(), ApiError> {
    if actor.id == target.id {
        return Err(ApiError::new(ErrorCode::Forbidden, "not on yourself"));
    }
    if room.owner_id == Some(target.id) {
        return Err(ApiError::new(ErrorCode::Forbidden, "not on the room's owner"));
    }
    if target.role.rank() >= Role::Moderator.rank() {
        return Err(ApiError::new(ErrorCode::Forbidden, "not on site staff"));
    }
    let site_staff = actor.role.rank() >= Role::Moderator.rank();
    if !standing.owner && !site_staff {
        let theirs = state.system.store().standing(room.id, target.id).await?;
        if theirs.is_some_and(|s| s.room_moderator) {
            return Err(ApiError::new(ErrorCode::Forbidden, "a room moderator does not sanction another"));
        }
    }
    Ok(())
}

/// Takes `target` out of the room (when a member): storage first, then the room's event.
async fn remove(state: &AppState, actor: &UserRow, room: &RoomRow, target: &UserRow) -> Result<bool, ApiError> {
    if !state.system.store().remove_member(room.id, target.id).await? {
        return Ok(false);
    }
    announce(state, room.id, actor, SystemEvent::MemberRemoved { user: user_ref(target) }).await;
    Ok(true)
}

/// Applies a sanction `kind` (`mute`, `ban` or `remove`) the caller may apply, and audits it.
pub(super) async fn apply(
    state: &AppState,
    actor: &UserRow,
    room: &RoomRow,
    target: &UserRow,
    kind: &str,
    reason: &str,
    expires_at: Option<i64>,
) -> Result<(), ApiError> {
    let store = state.system.store();
    match kind {
        "remove" => {
            if !remove(state, actor, room, target).await? {
                return Err(ApiError::new(ErrorCode::NotFound, format!("{} is not a member", target.username)));
            }
        }
        "mute" | "ban" => {
            let k = RoomSanctionKind::parse(kind).unwrap_or(RoomSanctionKind::Mute);
            store.put_room_sanction(room.id, target.id, k, Some(actor.id), reason, expires_at).await?;
            if k == RoomSanctionKind::Mute {
                state.system.room_mutes_changed();
            } else {
                remove(state, actor, room, target).await?;
            }
        }
        _ => return Err(ApiError::new(ErrorCode::Invalid, "kind: mute, ban or remove")),
    }
    let action = format!("room.{kind}");
    audit(state, actor, &action, room, Some(target), json!({"reason": reason, "expires_at": expires_at})).await
}

#[derive(Deserialize)]
struct NewSanction {
    username: String,
    kind: String,
    reason: Option<String>,
    /// Milliseconds since the Unix epoch; absent: until lifted.
    expires_at: Option<i64>,
}

/// `POST /api/rooms/{id}/sanctions {"username","kind","reason"?,"expires_at"?}` → 201
/// `{"username","kind","reason","expires_at"}`.
async fn sanction_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<NewSanction>,
) -> Result<Response, ApiError> {
    let (room, standing) = super::staff_of(&state, &user, id).await?;
    let reason = reason(req.reason.as_deref())?;
    if !matches!(req.kind.as_str(), "mute" | "ban" | "remove") {
        return Err(ApiError::new(ErrorCode::Invalid, "kind: mute, ban or remove"));
    }
    if req.expires_at.is_some_and(|t| t <= now_ms()) {
        return Err(ApiError::new(ErrorCode::Invalid, "expires_at must be in the future (ms since the epoch)"));
    }
    let target = user_named(&state, &req.username).await?;
    may_sanction(&state, &room, &user, &standing, &target).await?;
    apply(&state, &user, &room, &target, &req.kind, &reason, req.expires_at).await?;
    let body = json!({"username": target.username, "kind": req.kind, "reason": reason, "expires_at": req.expires_at});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `DELETE /api/rooms/{id}/sanctions/{username}/{kind}` → 204; 404 when none is in force.
async fn lift_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiPath((id, username, kind)): ApiPath<(i64, String, String)>,
) -> Result<StatusCode, ApiError> {
    let (room, standing) = staff_of(&state, &user, id).await?;
    let k = RoomSanctionKind::parse(&kind).ok_or_else(|| ApiError::new(ErrorCode::Invalid, "kind: mute or ban"))?;
    let target = user_named(&state, &username).await?;
    may_sanction(&state, &room, &user, &standing, &target).await?;
    if !state.system.store().lift_room_sanction(room.id, target.id, k).await? {
        return Err(ApiError::new(ErrorCode::NotFound, format!("no {kind} of {} is in force here", target.username)));
    }
    if k == RoomSanctionKind::Mute {
        state.system.room_mutes_changed();
    }
    audit(&state, &user, &format!("room.un{kind}"), &room, Some(&target), json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/rooms/{id}/sanctions` → `{"sanctions":[{"username","kind","reason","by","created_at","expires_at"}]}`.
async fn list_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    let (room, _) = staff_of(&state, &user, id).await?;
    let list = state.system.store().room_sanctions(room.id).await?;
    let sanctions: Vec<Value> = list
        .iter()
        .map(|s| {
            json!({
                "username": s.user.1, "kind": s.kind, "reason": s.reason,
                "by": s.by.as_ref().map(|(_, name)| name.clone()),
                "created_at": s.created_at, "expires_at": s.expires_at,
            })
        })
        .collect();
    Ok(Json(json!({"sanctions": sanctions})))
}
