//! The moderation queue: a room's items for its staff, every room's for site staff
//! (`/api/admin/queue`), and decisions. A held message is released (it gets the next seq then,
//! through the room's sequencer) or rejected (it never gets one); any other item is dismissed,
//! or its message deleted, or its sender muted or banned in the room. An item is decided once:
//! deciding it again is 409 `conflict`.

use super::sanctions::{apply, may_sanction};
use super::{audit, reason, staff_of};
use crate::AppState;
use crate::admin::Staff;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::rooms::user_ref;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use confab_actors::moderation::{Command, item_json};
use confab_actors::store::{QueueFilter, QueueItem};
use confab_schemas::{ErrorCode, RoomId, now_ms};
use serde::Deserialize;
use serde_json::{Value, json};

const PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;
/// Messages shown on each side of a reported one.
const CONTEXT: u64 = 2;
/// A mute from the queue lasts this long unless `minutes` says otherwise.
const DEFAULT_MUTE_MINUTES: u32 = 60;
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
    let context = match item.seq {
        Some(seq) => {
            let from = seq.saturating_sub(CONTEXT).max(1);
            state.system.store().messages_between(item.room, from, seq + CONTEXT, (2 * CONTEXT + 1) as u32).await?
        }
        None => Vec::new(),
    };
    Ok(item_json(item, &context))
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
struct Decision {
    action: String,
    reason: Option<String>,
    /// How long a `mute` (default 60) or a `ban` (default: until lifted) lasts.
    minutes: Option<u32>,
}

/// `POST /api/rooms/{id}/queue/{item}/decision {"action","reason"?,"minutes"?}` → the item.
async fn decision_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiPath((id, item_id)): ApiPath<(i64, i64)>,
    ApiJson(d): ApiJson<Decision>,
) -> Result<Json<Value>, ApiError> {
    let (room, standing) = staff_of(&state, &user, id).await?;
    let why = reason(d.reason.as_deref())?;
    if d.minutes.is_some_and(|m| !(1..=MAX_MINUTES).contains(&m)) {
        return Err(ApiError::new(ErrorCode::Invalid, format!("minutes: 1 to {MAX_MINUTES}")));
    }
    let store = state.system.store();
    let item = store
        .queue_item(item_id)
        .await?
        .filter(|i| i.room == room.id)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no item {item_id} in this room's queue")))?;
    let held = item.kind == "held";
    match (d.action.as_str(), held) {
        ("release" | "reject", false) => {
            return Err(ApiError::new(ErrorCode::Invalid, "only a held message is released or rejected"));
        }
        ("dismiss" | "delete" | "mute" | "ban", true) => {
            return Err(ApiError::new(ErrorCode::Invalid, "a held message is released or rejected"));
        }
        ("release" | "reject" | "dismiss" | "delete" | "mute" | "ban", _) => {}
        _ => return Err(ApiError::new(ErrorCode::Invalid, "action: dismiss, delete, mute, ban, release or reject")),
    }
    if item.status != "open" {
        return Err(ApiError::new(ErrorCode::Conflict, format!("this item was decided already ({})", item.status)));
    }
    let by = user_ref(&user);
    let status = match d.action.as_str() {
        "release" => {
            state.system.moderate(room.id, by, Command::Release { item: item.id }).await?;
            // Released by the room; a second release got the same ack and finds it decided.
            if !store.decide_item(item.id, "released", Some(user.id), &why).await? {
                return Err(ApiError::new(ErrorCode::Conflict, "this item was decided already"));
            }
            "released"
        }
        "reject" => {
            // The room writes the decision (it orders it against a release).
            state.system.moderate(room.id, by, Command::Reject { item: item.id, reason: why.clone() }).await?;
            "rejected"
        }
        action => {
            let target = match (&item.sender, action) {
                (Some((sender, _)), "mute" | "ban") => {
                    let target = store
                        .user_by_id(*sender)
                        .await?
                        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "the sender's account is gone"))?;
                    may_sanction(&state, &room, &user, &standing, &target).await?;
                    Some(target)
                }
                (None, "mute" | "ban") => {
                    return Err(ApiError::new(ErrorCode::Invalid, "this item names no sender to sanction"));
                }
                _ => None,
            };
            if action == "delete" && item.seq.is_none() {
                return Err(ApiError::new(ErrorCode::Invalid, "this item names no message to delete"));
            }
            let status = match action {
                "dismiss" => "dismissed",
                "delete" => "deleted",
                "mute" => "muted",
                _ => "banned",
            };
            // Claimed first: a second decision is refused before anything is done twice.
            if !store.decide_item(item.id, status, Some(user.id), &why).await? {
                return Err(ApiError::new(ErrorCode::Conflict, "this item was decided already"));
            }
            let done = act(&state, &user, &room, &item, action, target.as_ref(), &why, d.minutes).await;
            if let Err(e) = done {
                store.reopen_item(item.id).await?;
                return Err(e);
            }
            status
        }
    };
    let target = match &item.sender {
        Some((id, _)) => store.user_by_id(*id).await?,
        None => None,
    };
    let detail = json!({"item": item.id, "kind": item.kind, "seq": item.seq, "reason": why});
    audit(&state, &user, &format!("room.queue_{status}"), &room, target.as_ref(), detail).await?;
    let item =
        store.queue_item(item.id).await?.ok_or_else(|| ApiError::new(ErrorCode::NotFound, "the item is gone"))?;
    Ok(Json(with_context(&state, &item).await?))
}

/// What a decision other than release or reject does.
#[allow(clippy::too_many_arguments)]
async fn act(
    state: &AppState,
    user: &confab_schemas::UserRow,
    room: &confab_schemas::RoomRow,
    item: &QueueItem,
    action: &str,
    target: Option<&confab_schemas::UserRow>,
    why: &str,
    minutes: Option<u32>,
) -> Result<(), ApiError> {
    match (action, target) {
        ("delete", _) => {
            let seq = item.seq.unwrap_or(0);
            match state.system.moderate(room.id, user_ref(user), Command::Delete { seq }).await {
                Ok(_) => Ok(()),
                // Deleted already: what the decision wanted.
                Err(r) if r.code == ErrorCode::Gone => Ok(()),
                Err(r) => Err(r.into()),
            }
        }
        ("mute", Some(t)) => {
            let until = now_ms() + i64::from(minutes.unwrap_or(DEFAULT_MUTE_MINUTES)) * 60_000;
            apply(state, user, room, t, "mute", why, Some(until)).await
        }
        ("ban", Some(t)) => {
            let until = minutes.map(|m| now_ms() + i64::from(m) * 60_000);
            apply(state, user, room, t, "ban", why, until).await
        }
        _ => Ok(()),
    }
}
