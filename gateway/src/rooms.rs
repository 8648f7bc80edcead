//! Rooms over REST: list, create, inspect, add members, read history, report.
//!
//! Visibility: a public room is visible to every user (joining makes them a member); a private
//! room only to its members, and only its owner (or an admin) adds members.

use crate::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use confab_schemas::{ErrorCode, MessageRow, Role, RoomId, RoomRow, ServerFrame, UserRow, Visibility};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/rooms", get(list_route).post(create_route))
        .route("/api/rooms/{id}", get(room_route))
        .route("/api/rooms/{id}/members", post(add_member_route))
        .route("/api/rooms/{id}/messages", get(messages_route))
        .route("/api/rooms/{id}/reports", post(report_route))
}

fn room_json(r: &RoomRow) -> Value {
    json!({
        "id": r.id, "name": r.name, "description": r.description, "visibility": r.visibility,
        "owner_id": r.owner_id, "created_at": r.created_at,
    })
}

/// A message as REST returns it: the same fields as the `message` frame.
pub fn message_json(m: &MessageRow) -> Value {
    serde_json::to_value(ServerFrame::message(m))
        .map(|mut v| {
            if let Some(o) = v.as_object_mut() {
                o.remove("type");
                o.insert("edited".into(), json!(m.edited_at.is_some()));
                o.insert("deleted".into(), json!(m.deleted));
            }
            v
        })
        .unwrap_or(Value::Null)
}

/// The room, if `user` may see it: 404 when it does not exist, 403 when it is private to others.
async fn visible_room(state: &AppState, user: &UserRow, id: RoomId) -> Result<RoomRow, ApiError> {
    let store = state.system.store();
    let room = store
        .room_by_id(id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::UnknownRoom, format!("there is no room {id}")))?;
    if room.visibility == Visibility::Private && user.role != Role::Admin && !store.is_member(id, user.id).await? {
        return Err(ApiError::new(ErrorCode::NotMember, "this room is private"));
    }
    Ok(room)
}

/// `GET /api/rooms` → `{"rooms": [...]}`: public rooms and the user's private rooms, with
/// membership, head seq, read cursor, unread count and the newest message (`last`, or null).
async fn list_route(State(state): State<AppState>, AuthUser(user, _): AuthUser) -> Result<Json<Value>, ApiError> {
    let store = state.system.store();
    let rooms = store.rooms_for(user.id).await?;
    let last: HashMap<RoomId, Value> =
        store.last_messages_for(user.id).await?.iter().map(|m| (m.room, message_json(m))).collect();
    let rooms: Vec<Value> = rooms
        .iter()
        .map(|l| {
            let mut v = room_json(&l.room);
            let unread = if l.member { l.head_seq.saturating_sub(l.read_seq) } else { 0 };
            if let Some(o) = v.as_object_mut() {
                o.insert("member".into(), json!(l.member));
                o.insert("head_seq".into(), json!(l.head_seq));
                o.insert("read_seq".into(), json!(l.read_seq));
                o.insert("unread".into(), json!(unread));
                o.insert("last".into(), last.get(&l.room.id).cloned().unwrap_or(Value::Null));
            }
            v
        })
        .collect();
    Ok(Json(json!({"rooms": rooms})))
}

#[derive(Deserialize)]
struct NewRoom {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    visibility: Option<String>,
}

/// `POST /api/rooms {"name","description"?,"visibility"?}` → 201 room; the creator owns it.
async fn create_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiJson(new): ApiJson<NewRoom>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::new(ErrorCode::Invalid, "name: 1 to 64 characters, no control characters"));
    }
    if new.description.chars().count() > 500 || new.description.contains('\0') {
        return Err(ApiError::new(ErrorCode::Invalid, "description: at most 500 characters, no NUL"));
    }
    let visibility = match new.visibility.as_deref() {
        None => Visibility::Public,
        Some(v) => {
            Visibility::parse(v).ok_or_else(|| ApiError::new(ErrorCode::Invalid, "visibility: public or private"))?
        }
    };
    let room = state.system.store().create_room(name, new.description.trim(), visibility, Some(user.id)).await?;
    state.system.store().audit(Some(user.id), "room.create", Some(room.id), &room.name).await?;
    let mut v = room_json(&room);
    if let Some(o) = v.as_object_mut() {
        o.insert("member".into(), json!(true));
        o.insert("head_seq".into(), json!(0));
        o.insert("unread".into(), json!(0));
    }
    Ok((StatusCode::CREATED, Json(v)))
}

/// `GET /api/rooms/{id}` → the room with its members and head seq.
async fn room_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    let room = visible_room(&state, &user, RoomId(id)).await?;
    let store = state.system.store();
    let members: Vec<Value> = store
        .room_members(room.id)
        .await?
        .into_iter()
        .map(|(id, username, role)| json!({"id": id, "username": username, "role": role}))
        .collect();
    let head = store.head_seq(room.id).await?;
    let mut v = room_json(&room);
    if let Some(o) = v.as_object_mut() {
        o.insert("members".into(), Value::Array(members));
        o.insert("head_seq".into(), json!(head));
        o.insert("owner_node".into(), json!(state.system.cluster().owner_of(room.id)));
    }
    Ok(Json(v))
}

#[derive(Deserialize)]
struct AddMember {
    username: String,
}

/// `POST /api/rooms/{id}/members {"username"}` → 204; the owner (or an admin) adds a member.
async fn add_member_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<AddMember>,
) -> Result<StatusCode, ApiError> {
    let room = visible_room(&state, &user, RoomId(id)).await?;
    if room.owner_id != Some(user.id) && user.role != Role::Admin {
        return Err(ApiError::new(ErrorCode::Forbidden, "only the room's owner adds members"));
    }
    let store = state.system.store();
    let member = store
        .user_by_name(&body.username)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no user {}", body.username)))?;
    store.add_member(room.id, member.id).await?;
    store.audit(Some(user.id), "room.add_member", Some(room.id), &member.username).await?;
    state.system.member_added(room.id, member.id);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct HistoryQuery {
    before: Option<u64>,
    after: Option<u64>,
    limit: Option<u32>,
}

/// `GET /api/rooms/{id}/messages?before=SEQ&after=SEQ&limit=N` → `{"messages": [...ascending],
/// "has_more"}`: the newest page by default, the page before `before`, or from `after` on.
/// `limit` is 1 to 100 (default 50).
async fn messages_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::new(ErrorCode::Invalid, "limit: 1 to 100"));
    }
    if q.before.is_some() && q.after.is_some() {
        return Err(ApiError::new(ErrorCode::Invalid, "give before or after, not both"));
    }
    let room = visible_room(&state, &user, RoomId(id)).await?;
    let (rows, has_more) = state.system.history(room.id, q.before, q.after, limit).await?;
    let messages: Vec<Value> = rows.iter().map(message_json).collect();
    Ok(Json(json!({"messages": messages, "has_more": has_more})))
}

#[derive(Deserialize)]
struct NewReport {
    seq: Option<u64>,
    reason: String,
}

/// `POST /api/rooms/{id}/reports {"seq"?, "reason"}` → 201 `{"id"}`, through the room's
/// moderation queue.
async fn report_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(r): ApiJson<NewReport>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if r.reason.trim().is_empty() || r.reason.chars().count() > 1000 || r.reason.contains('\0') {
        return Err(ApiError::new(ErrorCode::Invalid, "reason: 1 to 1000 characters, no NUL"));
    }
    let room = visible_room(&state, &user, RoomId(id)).await?;
    let report = state.system.report(room.id, r.seq, user.id, r.reason).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": report}))))
}
