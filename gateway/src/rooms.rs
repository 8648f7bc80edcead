//! Rooms over REST: list, create, inspect, rename and describe, add and remove members, leave,
//! transfer ownership, read history, report. Every change to a room is also a `system` event of
//! its sequence (`ActorSystem::announce`).
//!
//! Visibility: a public room is visible to every user (joining makes them a member); a private
//! room only to its members, and only its owner (or an admin) adds members. Public names are
//! unique; a private name only among its owner's private rooms, so a taken name reveals nothing.
//! Names refuse control, bidirectional-override and invisible characters (`is_deceptive`).

use crate::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::limits;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use confab_actors::store::{DmMember, RoomPage};
use confab_schemas::MediaUrls;
use confab_schemas::client::{RemovedReason, RoomSummary};
use confab_schemas::wire::encode_server_frame;
use confab_schemas::{
    ErrorCode, MessageRow, Role, RoomId, RoomKind, RoomRow, ServerFrame, SystemEvent, UserId, UserRef, UserRow,
    Visibility,
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/rooms", get(list_route).post(create_route))
        .route("/api/rooms/{id}", get(room_route).patch(update_route).delete(delete_route))
        .route("/api/rooms/{id}/members", post(add_member_route))
        .route("/api/rooms/{id}/members/{user}", axum::routing::delete(remove_member_route))
        .route("/api/rooms/{id}/leave", post(leave_route))
        .route("/api/rooms/{id}/owner", post(owner_route))
        .route("/api/rooms/{id}/messages", get(messages_route))
        .route("/api/rooms/{id}/reports", post(report_route))
}

pub(crate) fn room_json(r: &RoomRow) -> Value {
    json!({
        "id": r.id, "kind": r.kind, "name": r.name, "description": r.description, "visibility": r.visibility,
        "owner_id": r.owner_id, "created_at": r.created_at,
        // A chat room without an owner (`general`) belongs to the system.
        "system": r.owner_id.is_none() && r.kind == RoomKind::Room,
    })
}

/// The people of a direct conversation, as its JSON lists them.
pub(crate) fn dm_members_json(members: &[DmMember]) -> Value {
    members.iter().map(|m| json!({"id": m.id, "username": m.username, "display_name": m.display_name})).collect()
}

/// A direct conversation has no owner and no one to add, remove or hand it to.
fn not_a_dm(room: &RoomRow) -> Result<(), ApiError> {
    match room.kind {
        RoomKind::Dm => return Err(ApiError::new(ErrorCode::Forbidden, "a direct conversation has nothing to manage")),
        RoomKind::Stranger => return Err(ApiError::new(ErrorCode::Forbidden, "a stranger chat has nothing to manage")),
        RoomKind::Room => {}
    }
    Ok(())
}

pub(crate) fn user_ref(u: &UserRow) -> UserRef {
    UserRef { id: u.id, username: u.username.as_str().into() }
}

/// The room's owner, or an admin.
fn may_manage(room: &RoomRow, user: &UserRow) -> Result<(), ApiError> {
    not_a_dm(room)?;
    if room.owner_id == Some(user.id) || user.role == Role::Admin {
        return Ok(());
    }
    Err(ApiError::new(ErrorCode::Forbidden, "only the room's owner (or an admin) can do this"))
}

/// Sequences a system event; the change is made already, so a failure to announce it is logged.
pub(crate) async fn announce(state: &AppState, room: RoomId, by: &UserRow, event: SystemEvent) {
    if let Err(refusal) = state.system.announce(room, user_ref(by), event).await {
        tracing::warn!(%room, %refusal, "a room change was made but could not be announced");
    }
}

#[derive(Deserialize)]
struct RoomUpdate {
    name: Option<String>,
    description: Option<String>,
}

/// `PATCH /api/rooms/{id} {"name"?, "description"?}` → the room; its owner (or an admin)
/// renames or describes it, and members get a `system` event for each change.
async fn update_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(update): ApiJson<RoomUpdate>,
) -> Result<Json<Value>, ApiError> {
    let room = visible_room(&state, &user, RoomId(id)).await?;
    may_manage(&room, &user)?;
    let name = update.name.as_deref().map(str::trim).filter(|n| *n != room.name);
    if let Some(n) = name {
        validate_room_name(n)?;
    }
    let description = update.description.as_deref().map(str::trim).filter(|d| *d != room.description);
    if let Some(d) = description {
        validate_description(d)?;
    }
    if name.is_none() && description.is_none() {
        return Ok(Json(room_json(&room)));
    }
    let store = state.system.store();
    store.update_room(&room, name, description).await?;
    if let Some(n) = name {
        store.audit(Some(user.id), "room.rename", Some(room.id), n).await?;
        announce(&state, room.id, &user, SystemEvent::Renamed { name: n.to_owned() }).await;
    }
    if let Some(d) = description {
        store.audit(Some(user.id), "room.describe", Some(room.id), d).await?;
        announce(&state, room.id, &user, SystemEvent::Described { description: d.to_owned() }).await;
    }
    let room =
        store.room_by_id(room.id).await?.ok_or_else(|| ApiError::new(ErrorCode::UnknownRoom, "the room is gone"))?;
    Ok(Json(room_json(&room)))
}

/// Deletes `room` with its history (the caller checked who may, and audited it); its members are
/// told: a private room leaves each member's list through their inbox; a public one is in every
/// user's list, so every connected session is told (and a later room list omits it).
pub(crate) async fn delete_room(state: &AppState, by: &UserRow, room: &RoomRow) -> Result<(), ApiError> {
    let members = state.system.store().room_members(room.id).await?;
    if !state.system.delete_room(room.id).await? {
        return Err(ApiError::new(ErrorCode::UnknownRoom, format!("there is no room {}", room.id)));
    }
    match room.visibility {
        Visibility::Private => {
            for (member, _, _) in members {
                let event = SystemEvent::RoomRemoved { room: room.id, reason: RemovedReason::Deleted };
                state.system.tell_inbox(member, user_ref(by), event);
            }
        }
        Visibility::Public => {
            let frame = encode_server_frame(&ServerFrame::RoomDeleted { room: room.id });
            state.system.broadcast_to_sessions(frame, true);
        }
    }
    Ok(())
}

/// `DELETE /api/rooms/{id}` → 204; its owner (or an admin) deletes the room with its history.
/// Its subscribers get `room_deleted`. A system room (`general`) is not deleted.
async fn delete_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    let room = visible_room(&state, &user, RoomId(id)).await?;
    if room.owner_id.is_none() {
        return Err(ApiError::new(ErrorCode::Forbidden, "a system room cannot be deleted"));
    }
    may_manage(&room, &user)?;
    state.system.store().audit(Some(user.id), "room.delete", Some(room.id), &room.name).await?;
    delete_room(&state, &user, &room).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/rooms/{id}/leave` → 204; the user stops being a member (and gets no more of its
/// events). The owner hands the room to someone else first.
async fn leave_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    let room = visible_room(&state, &user, RoomId(id)).await?;
    not_a_dm(&room)?;
    if room.owner_id == Some(user.id) {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "you own this room: transfer it to another member before leaving",
        ));
    }
    let store = state.system.store();
    if !store.remove_member(room.id, user.id).await? {
        return Err(ApiError::new(ErrorCode::NotMember, "you are not a member of this room"));
    }
    store.audit(Some(user.id), "room.leave", Some(room.id), &user.username).await?;
    announce(&state, room.id, &user, SystemEvent::MemberLeft { user: user_ref(&user) }).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/rooms/{id}/members/{user_id}` → 204; the owner (or an admin) removes a member.
async fn remove_member_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiPath((id, member)): ApiPath<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    let room = visible_room(&state, &user, RoomId(id)).await?;
    may_manage(&room, &user)?;
    if room.owner_id == Some(UserId(member)) {
        return Err(ApiError::new(ErrorCode::Conflict, "the owner cannot be removed: transfer the room first"));
    }
    let store = state.system.store();
    let target = store
        .user_by_id(UserId(member))
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no user {member}")))?;
    if !store.remove_member(room.id, target.id).await? {
        return Err(ApiError::new(ErrorCode::NotFound, format!("{} is not a member", target.username)));
    }
    store.audit(Some(user.id), "room.remove_member", Some(room.id), &target.username).await?;
    announce(&state, room.id, &user, SystemEvent::MemberRemoved { user: user_ref(&target) }).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct NewOwner {
    username: String,
}

/// `POST /api/rooms/{id}/owner {"username"}` → the room; its owner (or an admin) hands it to
/// another user, who becomes a member if they were not.
async fn owner_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<NewOwner>,
) -> Result<Json<Value>, ApiError> {
    let room = visible_room(&state, &user, RoomId(id)).await?;
    may_manage(&room, &user)?;
    if room.owner_id.is_none() {
        return Err(ApiError::new(ErrorCode::Forbidden, "a system room has no owner to change"));
    }
    let store = state.system.store();
    let owner = store
        .user_by_name(&body.username)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no user {}", body.username)))?;
    let was_member = store.is_member(room.id, owner.id).await?;
    store.set_room_owner(&room, owner.id).await?;
    if !was_member {
        let event = SystemEvent::RoomAdded {
            room: room.id,
            name: room.name.clone(),
            visibility: room.visibility.as_str().to_owned(),
            kind: room.kind,
            members: Vec::new(),
        };
        state.system.tell_inbox(owner.id, user_ref(&user), event);
    }
    store.audit(Some(user.id), "room.transfer", Some(room.id), &owner.username).await?;
    announce(&state, room.id, &user, SystemEvent::OwnerChanged { owner: user_ref(&owner) }).await;
    state.system.member_added(room.id, owner.id);
    let room =
        store.room_by_id(room.id).await?.ok_or_else(|| ApiError::new(ErrorCode::UnknownRoom, "the room is gone"))?;
    Ok(Json(room_json(&room)))
}

fn validate_description(d: &str) -> Result<(), ApiError> {
    if d.chars().count() > 500 || d.contains('\0') {
        return Err(ApiError::new(ErrorCode::Invalid, "description: at most 500 characters, no NUL"));
    }
    Ok(())
}

/// A message as REST returns it: the same fields as the `message` frame.
pub fn message_json(m: &MessageRow, urls: &dyn MediaUrls) -> Value {
    serde_json::to_value(ServerFrame::message(m, urls))
        .map(|mut v| {
            if let Some(o) = v.as_object_mut() {
                o.remove("type");
                o.insert("edited".into(), json!(m.edited_at.is_some()));
                o.insert("edited_at".into(), json!(m.edited_at));
                o.insert("deleted".into(), json!(m.deleted));
            }
            v
        })
        .unwrap_or(Value::Null)
}

/// The room, if `user` may see it: 404 when it does not exist (or is an inbox: those are not
/// rooms to manage), 403 when it is private to others.
pub(crate) async fn visible_room(state: &AppState, user: &UserRow, id: RoomId) -> Result<RoomRow, ApiError> {
    if id.is_inbox() {
        return Err(ApiError::new(ErrorCode::UnknownRoom, format!("there is no room {id}")));
    }
    let store = state.system.store();
    let room = store
        .room_by_id(id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::UnknownRoom, format!("there is no room {id}")))?;
    // An admin sees every private room, but no one else's direct conversation.
    let admin = user.role == Role::Admin && room.kind == RoomKind::Room;
    if room.visibility == Visibility::Private && !admin && !store.is_member(id, user.id).await? {
        return Err(ApiError::new(ErrorCode::NotMember, "this room is private"));
    }
    Ok(room)
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<u32>,
    after: Option<i64>,
    before: Option<i64>,
}

/// Rooms per page of `GET /api/rooms` unless `limit` says otherwise; `MAX_ROOM_PAGE` at most.
const ROOM_PAGE: u32 = 100;
const MAX_ROOM_PAGE: u32 = 500;

/// `GET /api/rooms?limit=N&after=ID|before=ID` → `{"rooms": [...], "next"}`: public rooms and the
/// user's private rooms by ascending id, with membership, head seq, read cursor, unread count and
/// the newest message (`last`, or null). A page holds `limit` rooms (1 to 500, default 100): the
/// first ones, those after `after`, or the last ones before `before`. `next` is the cursor of
/// the following page in the same direction (give it as `after`, or as `before`), null at the end.
async fn list_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(ROOM_PAGE);
    if !(1..=MAX_ROOM_PAGE).contains(&limit) {
        return Err(ApiError::new(ErrorCode::Invalid, "limit: 1 to 500"));
    }
    if q.before.is_some() && q.after.is_some() {
        return Err(ApiError::new(ErrorCode::Invalid, "give before or after, not both"));
    }
    let newest_first = q.before.is_some();
    let page = RoomPage {
        after: q.after.unwrap_or(0),
        before: q.before.unwrap_or(i64::MAX),
        // One more than asked tells whether another page follows.
        limit: limit + 1,
        newest_first,
    };
    let store = state.system.store();
    let mut rooms = store.rooms_page(user.id, page).await?;
    let more = rooms.len() > limit as usize;
    if more {
        if newest_first {
            rooms.remove(0);
        } else {
            rooms.pop();
        }
    }
    let next = match (more, newest_first) {
        (false, _) => Value::Null,
        (true, false) => json!(rooms.last().map(|l| l.room.id)),
        (true, true) => json!(rooms.first().map(|l| l.room.id)),
    };
    let (first, last) = match (rooms.first(), rooms.last()) {
        (Some(f), Some(l)) => (f.room.id.0, l.room.id.0),
        _ => return Ok(Json(json!({"rooms": [], "next": null}))),
    };
    let mentions: HashMap<RoomId, u64> = store.unread_mentions(user.id).await?.into_iter().collect();
    let dm_members = if rooms.iter().any(|l| l.room.kind == RoomKind::Dm) {
        store.dm_members_of(user.id).await?
    } else {
        HashMap::new()
    };
    let urls = &state.system.config().media;
    let last_messages: HashMap<RoomId, Value> = store
        .last_messages_between(user.id, first, last)
        .await?
        .iter()
        .map(|m| (m.room, message_json(m, urls)))
        .collect();
    let rooms: Vec<Value> = rooms
        .iter()
        .map(|l| {
            let mut v = room_json(&l.room);
            if let Some(o) = v.as_object_mut() {
                o.insert("member".into(), json!(l.member));
                o.insert("head_seq".into(), json!(l.head_seq));
                o.insert("read_seq".into(), json!(l.read_seq));
                o.insert("unread".into(), json!(l.unread));
                o.insert("mentions".into(), json!(mentions.get(&l.room.id).copied().unwrap_or(0)));
                o.insert("last".into(), last_messages.get(&l.room.id).cloned().unwrap_or(Value::Null));
                if let Some(members) = dm_members.get(&l.room.id) {
                    o.insert("members".into(), dm_members_json(members));
                }
            }
            v
        })
        .collect();
    Ok(Json(json!({"rooms": rooms, "next": next})))
}

/// Characters that let a name pose as another: bidirectional overrides, embeddings and
/// isolates, zero-width and other invisible characters, and the BOM.
pub fn is_deceptive(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// Checks a room name: 1 to 64 characters, none of them control or deceptive ones.
pub fn validate_room_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(|c| c.is_control() || is_deceptive(c)) {
        return Err(ApiError::new(
            ErrorCode::Invalid,
            "name: 1 to 64 characters, no control, invisible or direction-changing characters",
        ));
    }
    Ok(())
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
/// 409 when a public room, or one of the user's own private rooms, has the name. Limited per
/// user (`--rooms-per-user-per-hour`).
async fn create_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiJson(new): ApiJson<NewRoom>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = new.name.trim();
    validate_room_name(name)?;
    validate_description(&new.description)?;
    let visibility = match new.visibility.as_deref() {
        None => Visibility::Public,
        Some(v) => {
            Visibility::parse(v).ok_or_else(|| ApiError::new(ErrorCode::Invalid, "visibility: public or private"))?
        }
    };
    let per_hour = state.config.rooms_per_user_per_hour;
    limits::hourly(
        &state,
        &format!("rooms:user:{}", user.id),
        per_hour,
        "too many new rooms; wait before creating more",
    )
    .await?;
    let room = state.system.store().create_room(name, new.description.trim(), visibility, Some(user.id)).await?;
    state.system.store().audit(Some(user.id), "room.create", Some(room.id), &room.name).await?;
    // The creator's other sessions list it; a public room appears for everyone connected.
    let added = SystemEvent::RoomAdded {
        room: room.id,
        name: room.name.clone(),
        visibility: room.visibility.as_str().to_owned(),
        kind: room.kind,
        members: Vec::new(),
    };
    state.system.tell_inbox(user.id, user_ref(&user), added);
    if room.visibility == Visibility::Public {
        let summary = RoomSummary {
            id: room.id,
            name: room.name.clone(),
            description: room.description.clone(),
            visibility: room.visibility.as_str().to_owned(),
            owner: room.owner_id,
        };
        let frame = encode_server_frame(&ServerFrame::RoomCreated { room: summary });
        state.system.broadcast_to_sessions(frame, true);
    }
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
    let members = match room.kind {
        RoomKind::Dm => dm_members_json(&store.dm_members(room.id).await?),
        // Two strangers, as each sees the other: no id, no name.
        RoomKind::Stranger => match store.stranger_chat(room.id).await? {
            Some(chat) => confab_schemas::stranger::STRANGER_SEATS
                .iter()
                .zip(chat.seats.0)
                .filter(|(_, u)| chat.left[usize::from(*u != chat.seats.0[0])].is_none())
                .map(|(alias, _)| json!({"id": alias, "username": confab_schemas::stranger::STRANGER_NAME}))
                .collect(),
            None => json!([]),
        },
        RoomKind::Room => store
            .room_members(room.id)
            .await?
            .into_iter()
            .map(|(id, username, role)| json!({"id": id, "username": username, "role": role}))
            .collect(),
    };
    let head = store.head_seq(room.id).await?;
    let my_role = match room.kind {
        RoomKind::Room => store.standing(room.id, user.id).await?.and_then(|s| s.room_role()),
        RoomKind::Dm | RoomKind::Stranger => None,
    };
    let mut v = room_json(&room);
    if let Some(o) = v.as_object_mut() {
        o.insert("my_role".into(), json!(my_role));
        o.insert("members".into(), members);
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
    not_a_dm(&room)?;
    if room.owner_id != Some(user.id) && user.role != Role::Admin {
        return Err(ApiError::new(ErrorCode::Forbidden, "only the room's owner adds members"));
    }
    let store = state.system.store();
    let member = store
        .user_by_name(&body.username)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no user {}", body.username)))?;
    let already = store.is_member(room.id, member.id).await?;
    if !already && store.room_banned(room.id, member.id).await? {
        return Err(ApiError::new(ErrorCode::Conflict, format!("{} is banned from this room", member.username)));
    }
    store.add_member(room.id, member.id).await?;
    store.audit(Some(user.id), "room.add_member", Some(room.id), &member.username).await?;
    state.system.member_added(room.id, member.id);
    if !already {
        announce(&state, room.id, &user, SystemEvent::MemberAdded { user: user_ref(&member) }).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct HistoryQuery {
    before: Option<u64>,
    after: Option<u64>,
    around: Option<u64>,
    limit: Option<u32>,
}

/// `GET /api/rooms/{id}/messages?before=SEQ&after=SEQ&limit=N` → `{"messages": [...ascending],
/// "events": [...], "has_more"}`: the events with seqs in the newest `limit` by default, before
/// `before`, or from `after` on. Messages come with their latest edit folded in (`edited`) and
/// deleted ones as tombstones (`deleted`, empty body); `events` are the range's `edited` and
/// `deleted` frames. `limit` is 1 to 100 (default 50). `around=SEQ` (alone) gives the events
/// around SEQ instead, about half before and half after, with `has_more_after` (newer events
/// exist): how a search result opens the room at its message.
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
    if [q.before.is_some(), q.after.is_some(), q.around.is_some()].iter().filter(|&&b| b).count() > 1 {
        return Err(ApiError::new(ErrorCode::Invalid, "give one of before, after or around"));
    }
    if q.around == Some(0) {
        return Err(ApiError::new(ErrorCode::Invalid, "around: a seq, from 1"));
    }
    // A user reads their own inbox's history like a room's (after a `resync`; one not made yet
    // reads as empty).
    let (room, kind) = if RoomId(id) == RoomId::inbox_of(user.id) {
        (RoomId(id), RoomKind::Room)
    } else {
        let row = visible_room(&state, &user, RoomId(id)).await?;
        (row.id, row.kind)
    };
    // A stranger chat's people are shown as `Stranger` (as its frames show them).
    let seats = match kind {
        RoomKind::Stranger => state.system.store().stranger_chat(room).await?.map(|c| c.seats),
        _ => None,
    };
    let page = match q.around {
        Some(around) => state.system.folded_around(room, around, limit).await?,
        None => state.system.folded_history(room, q.before, q.after, limit).await?,
    };
    let urls = &state.system.config().media;
    let messages: Vec<Value> = page
        .messages
        .iter()
        .map(|m| match (&seats, seats.as_ref().and_then(|s| s.alias(m.sender))) {
            (Some(_), Some(alias)) => {
                let shown = MessageRow {
                    sender: alias,
                    sender_name: confab_schemas::stranger::STRANGER_NAME.into(),
                    ..m.clone()
                };
                message_json(&shown, urls)
            }
            _ => message_json(m, urls),
        })
        .collect();
    let events: Vec<Value> = page
        .events
        .iter()
        .map(|e| {
            let frame = ServerFrame::event(e, urls);
            let frame = match &seats {
                Some(s) => s.mask(frame),
                None => frame,
            };
            serde_json::to_value(frame).unwrap_or(Value::Null)
        })
        .collect();
    let mut out = json!({"messages": messages, "events": events, "has_more": page.has_more});
    if q.around.is_some() {
        out["has_more_after"] = json!(page.has_more_after);
    }
    Ok(Json(out))
}

#[derive(Deserialize)]
struct NewReport {
    seq: Option<u64>,
    reason: String,
}

/// `POST /api/rooms/{id}/reports {"seq"?, "reason"}` → 201 `{"id"}`, through the room's
/// moderation queue. `seq` names a message of the room (1 to its head); limited per user.
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
    if let Some(seq) = r.seq {
        let head = state.system.store().head_seq(room.id).await?;
        if seq == 0 || seq > head {
            return Err(ApiError::new(ErrorCode::Invalid, format!("seq: the room has messages 1 to {head}")));
        }
    }
    let per_hour = state.config.reports_per_user_per_hour;
    limits::hourly(&state, &format!("reports:user:{}", user.id), per_hour, "too many reports; wait before filing more")
        .await?;
    let report = state.system.report(room.id, r.seq, user_ref(&user), r.reason).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": report}))))
}
