//! Room moderation over REST: a room's staff (its owner, its moderators, and the site's
//! moderators and admins) and what they do in it.
//!
//! - `moderators`: the owner (or a site admin) appoints and removes room moderators;
//! - `sanctions`: mute, ban and remove members of the room, list and lift sanctions;
//! - `queue`: the room's moderation queue (and `/api/admin/queue` across rooms) and decisions;
//! - `settings`: pre-moderation and the automatic flags of a room, and the site's flags.
//!
//! Every route reads the caller's standing in the room from the database on every request
//! (`Store::standing`), so a demoted moderator has no power from then on, on every node. A room
//! moderator has none in another room. Each action is written to the audit log with its room.

mod moderators;
mod queue;
mod sanctions;
mod settings;

use crate::AppState;
use crate::error::ApiError;
use crate::rooms::visible_room;
use axum::Router;
use confab_actors::store::{AuditAction, Standing};
use confab_schemas::{ErrorCode, Role, RoomId, RoomKind, RoomRow, UserRow};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .merge(moderators::routes())
        .merge(sanctions::routes())
        .merge(queue::routes())
        .merge(settings::routes())
}

/// The caller's standing in a room of chat (not a direct conversation) they may see; site
/// staff (moderators and admins) see every room of chat, private ones they are not in too.
async fn standing_in(state: &AppState, user: &UserRow, id: i64) -> Result<(RoomRow, Standing), ApiError> {
    let room = match site_staff_room(state, user, RoomId(id)).await? {
        Some(room) => room,
        None => visible_room(state, user, RoomId(id)).await?,
    };
    if room.kind == RoomKind::Dm {
        return Err(ApiError::new(ErrorCode::Forbidden, "a direct conversation has no moderation"));
    }
    let standing = state
        .system
        .store()
        .standing(room.id, user.id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::Forbidden, "no such user"))?;
    Ok((room, standing))
}

/// The room of chat `id`, if the caller is site staff and it is one (whatever its visibility);
/// `None` for anyone else, and for a direct conversation or a stranger chat.
async fn site_staff_room(state: &AppState, user: &UserRow, id: RoomId) -> Result<Option<RoomRow>, ApiError> {
    if user.role.rank() < Role::Moderator.rank() || id.is_inbox() {
        return Ok(None);
    }
    Ok(state.system.store().room_by_id(id).await?.filter(|r| r.kind == RoomKind::Room))
}

/// The room, if the caller is its staff; 403 otherwise.
async fn staff_of(state: &AppState, user: &UserRow, id: i64) -> Result<(RoomRow, Standing), ApiError> {
    let (room, standing) = standing_in(state, user, id).await?;
    if !standing.is_staff() {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "only the room's owner and moderators (or site staff) can do this",
        ));
    }
    Ok((room, standing))
}

/// The room, if the caller owns it or is a site admin; 403 otherwise.
async fn owner_of(state: &AppState, user: &UserRow, id: i64) -> Result<(RoomRow, Standing), ApiError> {
    let (room, standing) = standing_in(state, user, id).await?;
    if !standing.owner && user.role != Role::Admin {
        return Err(ApiError::new(ErrorCode::Forbidden, "only the room's owner (or a site admin) can do this"));
    }
    Ok((room, standing))
}

/// Writes a room staff action to the audit log, with `detail` (a JSON object).
async fn audit(
    state: &AppState,
    actor: &UserRow,
    action: &str,
    room: &RoomRow,
    target: Option<&UserRow>,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    let detail = detail.to_string();
    let entry = AuditAction {
        actor: Some(actor.id),
        action,
        target: target.map(|t| t.id),
        room: Some(room.id),
        detail: &detail,
    };
    state.system.store().audit_action(entry).await?;
    Ok(())
}

/// The account named `username`, or 404.
async fn user_named(state: &AppState, username: &str) -> Result<UserRow, ApiError> {
    if username.len() > 64 {
        return Err(ApiError::new(ErrorCode::NotFound, "no such user"));
    }
    state.system.store().user_by_name(username).await?.ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such user"))
}

/// A reason given for an action: trimmed, at most 500 characters, no NUL.
fn reason(text: Option<&str>) -> Result<String, ApiError> {
    let r = text.unwrap_or("").trim();
    if r.chars().count() > 500 || r.contains('\0') {
        return Err(ApiError::new(ErrorCode::Invalid, "a reason is at most 500 characters, no NUL"));
    }
    Ok(r.to_owned())
}
