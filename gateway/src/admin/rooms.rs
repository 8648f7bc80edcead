//! The admins' list of rooms: every chat room, private ones too (the rooms list of `/api/rooms`
//! shows a user only what they may see; admins see every private room, site moderators do
//! not, so this list is for admins only), searched by a part of its name, with its owner and
//! member count; and deleting one. Direct conversations are not listed: they have no
//! owner to answer for them, and their members' privacy is theirs.

use super::{Admin, page_size, reason};
use crate::AppState;
use crate::error::{ApiError, ApiPath, ApiQuery};
use crate::rooms::delete_room;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use confab_actors::store::{AdminRoom, AuditAction, RoomSort};
use confab_schemas::{ErrorCode, RoomId, RoomKind};
use serde::Deserialize;
use serde_json::{Value, json};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/admin/rooms", get(rooms_route)).route("/api/admin/rooms/{id}", delete(delete_route))
}

#[derive(Deserialize)]
struct RoomsQuery {
    /// A part of the name.
    #[serde(default)]
    q: String,
    /// `name` (default), `newest` or `members`.
    sort: Option<String>,
    #[serde(default)]
    offset: u32,
    limit: Option<u32>,
}

fn room_json(r: &AdminRoom) -> Value {
    json!({
        "id": r.id, "name": r.name, "visibility": r.visibility.as_str(),
        "owner": r.owner.as_ref().map(|(id, name)| json!({"id": id, "username": name})),
        "members": r.members, "created_at": r.created_at,
    })
}

/// `GET /api/admin/rooms?q=&sort=name|newest|members&offset=&limit=` → `{"rooms","next_offset"}`
/// (`next_offset` null on the last page): `{"id","name","visibility","owner","members","created_at"}`
/// each. Admins only.
async fn rooms_route(
    Admin(_): Admin,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<RoomsQuery>,
) -> Result<Json<Value>, ApiError> {
    let sort = match q.sort.as_deref().unwrap_or("name") {
        "name" => RoomSort::Name,
        "newest" => RoomSort::Newest,
        "members" => RoomSort::Members,
        _ => return Err(ApiError::new(ErrorCode::Invalid, "sort: name, newest or members")),
    };
    let limit = page_size(&q.q, q.limit)?;
    // One more than asked tells whether there is a next page.
    let mut rooms = state.system.store().admin_rooms(q.q.trim(), sort, q.offset, limit + 1).await?;
    let next = (rooms.len() > limit as usize).then(|| q.offset + limit);
    rooms.truncate(limit as usize);
    Ok(Json(json!({"rooms": rooms.iter().map(room_json).collect::<Vec<_>>(), "next_offset": next})))
}

#[derive(Deserialize)]
struct DeleteQuery {
    reason: Option<String>,
}

/// `DELETE /api/admin/rooms/{id}?reason=` → 204: the room is deleted with its history, its
/// members told. Admins only; a system room (no owner) and a direct conversation are refused.
async fn delete_route(
    Admin(admin): Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    let why = reason(q.reason.as_deref(), false)?;
    let room = state
        .system
        .store()
        .room_by_id(RoomId(id))
        .await?
        .filter(|r| !r.id.is_inbox() && r.kind == RoomKind::Room)
        .ok_or_else(|| ApiError::new(ErrorCode::UnknownRoom, format!("there is no room {id}")))?;
    if room.owner_id.is_none() {
        return Err(ApiError::new(ErrorCode::Forbidden, "a system room cannot be deleted"));
    }
    let detail = json!({"name": room.name, "visibility": room.visibility.as_str(), "reason": why}).to_string();
    let entry = AuditAction {
        actor: Some(admin.id),
        action: "admin.delete_room",
        target: room.owner_id,
        room: Some(room.id),
        detail: &detail,
    };
    state.system.store().audit_action(entry).await?;
    delete_room(&state, &admin, &room).await?;
    Ok(StatusCode::NO_CONTENT)
}
