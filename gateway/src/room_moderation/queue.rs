//! The moderation queue: a room's items for its staff, every room's for site staff
//! (`/api/admin/queue`), and decisions, which the room's `ModerationQueue` actor takes
//! (`ActorSystem::decide`). A held message is released (it gets the next seq then, through the
//! room's sequencer) or rejected (it never gets one); any other item is dismissed, or its
//! message deleted; the sender of any item may be muted or banned in the room (a held message
//! of theirs is rejected with it). An item is decided once: deciding it again is 409 `conflict`.

use super::sanctions::may_sanction;
use super::{reason, staff_of};
use crate::AppState;
use crate::admin::Staff;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::rooms::user_ref;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use confab_actors::moderation::{Action, Decision, item_with_context};
use confab_actors::store::{QueueFilter, QueueItem};
use confab_schemas::{ErrorCode, RoomId};
use serde::Deserialize;
use serde_json::{Value, json};

const PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;
const MAX_MINUTES: u32 = 30 * 24 * 60;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/rooms/{id}/queue", get(room_queue_route))
        .route("/api/rooms/{id}/queue/{item}/decision", post(decision_route))
        .route("/api/admin/queue", get(admin_queue_route))
}

#[derive(Deserialize)]
struct QueueQuery {
    /// `open` (the default) or `all`.
    status: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
}

fn filter(q: &QueueQuery, room: Option<RoomId>) -> Result<QueueFilter, ApiError> {
    let open_only = match q.status.as_deref() {
        None | Some("open") => true,
        Some("all") => false,
        Some(_) => return Err(ApiError::new(ErrorCode::Invalid, "status: open or all")),
    };
    let limit = q.limit.unwrap_or(PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::new(ErrorCode::Invalid, format!("limit: 1 to {MAX_PAGE}")));
    }
    Ok(QueueFilter { room, open_only, before: q.before, limit })
}

/// An item with the messages around the one it is about.
async fn with_context(state: &AppState, item: &QueueItem) -> Result<Value, ApiError> {
    Ok(item_with_context(state.system.store(), item, &state.system.config().media).await?)
}

async fn page(state: &AppState, f: QueueFilter) -> Result<Json<Value>, ApiError> {
    let items = state.system.store().queue_page(f).await?;
    let mut out = Vec::with_capacity(items.len());
    for item in &items {
        out.push(with_context(state, item).await?);
    }
    let next = (items.len() == f.limit as usize).then(|| items.last().map(|i| i.id)).flatten();
    Ok(Json(json!({"items": out, "next": next})))
}

/// `GET /api/rooms/{id}/queue?status=open|all&before=&limit=` → `{"items","next"}` (room staff).
async fn room_queue_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<QueueQuery>,
) -> Result<Json<Value>, ApiError> {
    let (room, _) = staff_of(&state, &user, id).await?;
    page(&state, filter(&q, Some(room.id))?).await
}

/// `GET /api/admin/queue?status=open|all&before=&limit=` → every room's items (site staff).
async fn admin_queue_route(
    Staff(_): Staff,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<QueueQuery>,
) -> Result<Json<Value>, ApiError> {
    page(&state, filter(&q, None)?).await
}

#[derive(Deserialize)]
struct DecisionBody {
    action: String,
    reason: Option<String>,
    /// How long a `mute` (default 60) or a `ban` (default: until lifted) lasts.
    minutes: Option<u32>,
}

/// `POST /api/rooms/{id}/queue/{item}/decision {"action","reason"?,"minutes"?}` → the item.
/// The caller's standing (and, for a mute or ban, their power over the item's sender) is
/// checked here; the room's moderation queue, on the node that sequences the room, takes the
/// decision (once per item: `conflict` after) and writes it to the audit log.
async fn decision_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiPath((id, item_id)): ApiPath<(i64, i64)>,
    ApiJson(d): ApiJson<DecisionBody>,
) -> Result<Json<Value>, ApiError> {
    let (room, standing) = staff_of(&state, &user, id).await?;
    let why = reason(d.reason.as_deref())?;
    let action = Action::parse(&d.action)
        .ok_or_else(|| ApiError::new(ErrorCode::Invalid, "action: dismiss, delete, mute, ban, release or reject"))?;
    if d.minutes.is_some_and(|m| !(1..=MAX_MINUTES).contains(&m)) {
        return Err(ApiError::new(ErrorCode::Invalid, format!("minutes: 1 to {MAX_MINUTES}")));
    }
    let store = state.system.store();
    let not_found = || ApiError::new(ErrorCode::NotFound, format!("no item {item_id} in this room's queue"));
    let item = store.queue_item(item_id).await?.filter(|i| i.room == room.id).ok_or_else(not_found)?;
    if matches!(action, Action::Mute | Action::Ban)
        && let Some((sender, _)) = &item.sender
    {
        let target = store
            .user_by_id(*sender)
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "the sender's account is gone"))?;
        may_sanction(&state, &room, &user, &standing, &target).await?;
    }
    let decision = Decision { item: item.id, action, reason: why, minutes: d.minutes };
    state.system.decide(room.id, user_ref(&user), decision).await?;
    let item = store.queue_item(item.id).await?.ok_or_else(not_found)?;
    Ok(Json(with_context(&state, &item).await?))
}
