//! Announcements: an admin posts one; it is stored with its lifetime and sent at once as a
//! `broadcast` frame to every open socket on every node (the cluster's session broadcast).
//! Every signed-in user lists the ones in force that they have not dismissed with
//! `GET /api/broadcasts` (the app reads it on sign-in and reconnect, so a user who was offline,
//! or whose socket shed the frame, sees it too), and dismisses one for good.
//!
//! Not sequenced in each user's inbox: that is one write per account for every announcement,
//! where one stored row and the per-user dismissal do the same.

use super::{Admin, audit};
use crate::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiJson, ApiPath};
use crate::rooms::user_ref;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use confab_actors::store::Broadcast;
use confab_schemas::wire::encode_server_frame;
use confab_schemas::{ErrorCode, ServerFrame, now_ms};
use serde::Deserialize;
use serde_json::{Value, json};

const MAX_BODY_CHARS: usize = 2000;
/// How long an announcement stays in force unless it says otherwise, and at most.
const DEFAULT_LIFETIME_MS: i64 = 24 * 3600 * 1000;
const MAX_LIFETIME_MS: i64 = 90 * 24 * 3600 * 1000;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/admin/broadcasts", post(post_route))
        .route("/api/broadcasts", axum::routing::get(list_route))
        .route("/api/broadcasts/{id}/dismiss", post(dismiss_route))
}

fn broadcast_json(b: &Broadcast) -> Value {
    let from = b.by.as_ref().map(|(id, name)| json!({"id": id, "username": name}));
    json!({"id": b.id, "body": b.body, "from": from, "ts": b.created_at, "expires_at": b.expires_at})
}

#[derive(Deserialize)]
struct NewBroadcast {
    body: String,
    /// Milliseconds since the Unix epoch; absent: a day from now.
    expires_at: Option<i64>,
}

/// `POST /api/admin/broadcasts {"body","expires_at"?}` → 201 the announcement; every open socket
/// on every node gets a `broadcast` frame. Admins only.
async fn post_route(
    Admin(actor): Admin,
    State(state): State<AppState>,
    ApiJson(b): ApiJson<NewBroadcast>,
) -> Result<Response, ApiError> {
    let body = b.body.trim();
    if body.is_empty() || body.chars().count() > MAX_BODY_CHARS || body.contains('\0') {
        return Err(ApiError::new(ErrorCode::Invalid, format!("body: 1 to {MAX_BODY_CHARS} characters")));
    }
    let now = now_ms();
    let expires_at = b.expires_at.unwrap_or(now + DEFAULT_LIFETIME_MS);
    if expires_at <= now || expires_at > now + MAX_LIFETIME_MS {
        return Err(ApiError::new(ErrorCode::Invalid, "expires_at: in the future, at most 90 days away (ms)"));
    }
    let store = state.system.store();
    let id = store.add_broadcast(actor.id, body, expires_at).await?;
    audit(&state, &actor, "admin.broadcast", None, json!({"id": id, "body": body, "expires_at": expires_at})).await?;
    let frame = ServerFrame::Broadcast { id, body: body.to_owned(), from: Some(user_ref(&actor)), ts: now, expires_at };
    state.system.broadcast_to_sessions(encode_server_frame(&frame), true);
    let stored = Broadcast {
        id,
        body: body.to_owned(),
        by: Some((actor.id, actor.username.clone())),
        created_at: now,
        expires_at,
    };
    Ok((StatusCode::CREATED, Json(broadcast_json(&stored))).into_response())
}

/// `GET /api/broadcasts` → `{"broadcasts"}`: those in force the caller has not dismissed, oldest first.
async fn list_route(State(state): State<AppState>, auth: AuthUser) -> Result<Json<Value>, ApiError> {
    let list = state.system.store().active_broadcasts(auth.id()).await?;
    Ok(Json(json!({"broadcasts": list.iter().map(broadcast_json).collect::<Vec<_>>()})))
}

/// `POST /api/broadcasts/{id}/dismiss` → 204; the caller no longer gets it listed.
async fn dismiss_route(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    if !state.system.store().dismiss_broadcast(auth.id(), id).await? {
        return Err(ApiError::new(ErrorCode::NotFound, "no such announcement"));
    }
    Ok(StatusCode::NO_CONTENT)
}
