//! Direct conversations over REST: `POST /api/dms` opens (or returns) the one conversation of a
//! set of 2 to 10 people. Storage makes it race-free (`Store::open_dm`: a unique key on the member
//! set); this module checks who may write to whom (blocks either way, and who takes direct
//! messages only from people they share a room with) and tells each member's inbox of a new one,
//! so it appears live in their lists. Sending in one is a room send (a direct conversation is a
//! room of kind `dm`).

use crate::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiJson};
use crate::limits;
use crate::rooms::{announce, dm_members_json, room_json};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use confab_actors::store::DmPolicy;
use confab_schemas::{ErrorCode, Refusal, RoomId, RoomKind, SystemEvent, UserId, UserRef, UserRow};
use serde::Deserialize;
use serde_json::{Value, json};

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/dms", post(open_route))
}

/// Most people a group conversation holds besides its opener.
const MAX_OTHERS: usize = 9;

#[derive(Deserialize)]
struct OpenDm {
    username: Option<String>,
    usernames: Option<Vec<String>>,
}

/// `POST /api/dms {"username"}` or `{"usernames": […]}` (1 to 9 others) → 201 `{"room", "created":
/// true}` when made now, 200 with `"created": false` when it existed. Refusals: `dm_self`,
/// `not_found`, `blocked` (the opener blocked one of them), `dm_refused` (one of them blocked
/// the opener, or takes direct messages only from people they share a room with: which one is
/// not told), `too_many_members`, `invalid`.
async fn open_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiJson(body): ApiJson<OpenDm>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let names = match (body.username, body.usernames) {
        (Some(one), None) => vec![one],
        (None, Some(many)) => many,
        _ => return Err(ApiError::new(ErrorCode::Invalid, "give username or usernames")),
    };
    // Bounded before any lookup: a long list costs the sender, not the node.
    if names.len() > MAX_OTHERS + 1 {
        return Err(ApiError::new(ErrorCode::TooManyMembers, "a group conversation holds at most 10 people"));
    }
    if names.is_empty() {
        return Err(ApiError::new(ErrorCode::Invalid, "name at least one person"));
    }
    let store = state.system.store();
    let mut others: Vec<UserRow> = Vec::with_capacity(names.len());
    for name in &names {
        let other = store
            .user_by_name(name.trim())
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no user {}", name.trim())))?;
        if other.id != user.id && !others.iter().any(|o| o.id == other.id) {
            others.push(other);
        }
    }
    if others.is_empty() {
        return Err(ApiError::new(ErrorCode::DmSelf, "a direct message needs someone other than you"));
    }
    if others.len() > MAX_OTHERS {
        return Err(ApiError::new(ErrorCode::TooManyMembers, "a group conversation holds at most 10 people"));
    }
    let mut members: Vec<UserId> = others.iter().map(|o| o.id).chain([user.id]).collect();
    members.sort();
    let existing = store.dm_of(&members).await?;
    for other in &others {
        let (i_blocked, they_blocked) = store.blocks_between(user.id, other.id).await?;
        if i_blocked {
            return Err(ApiError::new(
                ErrorCode::Blocked,
                format!("you blocked {}: unblock them to write", other.username),
            ));
        }
        if they_blocked {
            return Err(Refusal::dm_refused().into());
        }
        // Someone who takes messages only from people they share a room with keeps a
        // conversation that exists.
        if existing.is_none() {
            let policy = store.profile(other.id).await?.map(|p| p.dm_policy);
            if policy == Some(DmPolicy::SharedRooms) && !store.share_a_room(user.id, other.id).await? {
                return Err(Refusal::dm_refused().into());
            }
        }
    }
    if existing.is_none() {
        let per_hour = state.config.rooms_per_user_per_hour.saturating_mul(4);
        limits::hourly(&state, &format!("dms:user:{}", user.id), per_hour, "too many new conversations; wait a while")
            .await?;
    }
    let (room, created) = store.open_dm(&members).await?;
    let people = store.dm_members(room.id).await?;
    if created {
        tell_members(&state, &user, room.id, &people).await;
    }
    let mut v = room_json(&room);
    if let Some(o) = v.as_object_mut() {
        o.insert("members".into(), dm_members_json(&people));
        o.insert("member".into(), json!(true));
    }
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(json!({"room": v, "created": created}))))
}

/// Sequences `room_added` in every member's inbox, and returns once each is durable (or could
/// not be sequenced: logged; the conversation is in their room list all the same).
async fn tell_members(state: &AppState, by: &UserRow, room: RoomId, people: &[confab_actors::store::DmMember]) {
    let members: Vec<UserRef> =
        people.iter().map(|m| UserRef { id: m.id, username: m.username.as_str().into() }).collect();
    let announcements = people.iter().map(|m| {
        let event = SystemEvent::RoomAdded {
            room,
            name: String::new(),
            visibility: "private".to_owned(),
            kind: RoomKind::Dm,
            members: members.clone(),
        };
        announce(state, RoomId::inbox_of(m.id), by, event)
    });
    futures::future::join_all(announcements).await;
}
