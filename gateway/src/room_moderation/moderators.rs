//! Room moderators: the room's owner (or a site admin) appoints members and removes them.

use super::{audit, owner_of, user_named};
use crate::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiPath};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::put;
use confab_schemas::ErrorCode;
use serde_json::json;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/rooms/{id}/moderators/{username}", put(appoint_route).delete(dismiss_route))
}

/// `PUT /api/rooms/{id}/moderators/{username}` → 204: a member becomes a room moderator.
async fn appoint_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiPath((id, username)): ApiPath<(i64, String)>,
) -> Result<StatusCode, ApiError> {
    set(&state, &user, id, &username, true).await
}

/// `DELETE /api/rooms/{id}/moderators/{username}` → 204: a room moderator is a member again.
async fn dismiss_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiPath((id, username)): ApiPath<(i64, String)>,
) -> Result<StatusCode, ApiError> {
    set(&state, &user, id, &username, false).await
}

async fn set(
    state: &AppState,
    user: &confab_schemas::UserRow,
    id: i64,
    username: &str,
    moderator: bool,
) -> Result<StatusCode, ApiError> {
    let (room, _) = owner_of(state, user, id).await?;
    let target = user_named(state, username).await?;
    if room.owner_id == Some(target.id) {
        return Err(ApiError::new(ErrorCode::Conflict, "the owner is not a moderator of their room"));
    }
    let store = state.system.store();
    let standing = store.standing(room.id, target.id).await?;
    if !standing.is_some_and(|s| s.member) {
        return Err(ApiError::new(ErrorCode::NotFound, format!("{} is not a member of this room", target.username)));
    }
    if !moderator && !standing.is_some_and(|s| s.room_moderator) {
        return Err(ApiError::new(ErrorCode::NotFound, format!("{} is not a moderator of this room", target.username)));
    }
    store.set_room_moderator(room.id, target.id, moderator).await?;
    let action = if moderator { "room.moderator_add" } else { "room.moderator_remove" };
    audit(state, user, action, &room, Some(&target), json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}
