//! `POST /api/chaos`: kills actors on this node for chaos harnesses. Off unless the node runs
//! with `--enable-chaos`, and for admins only. Killed actors are restarted by their supervisors;
//! nothing acknowledged may be lost.

use crate::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiJson};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use confab_schemas::{ErrorCode, Role, RoomId, UserId};
use serde::Deserialize;
use serde_json::{Value, json};

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/chaos", post(chaos_route))
}

/// What to kill: `room` (with `room`), `session` (one of `user`'s), `writer`, or every actor of
/// a kind on this node: `rooms`, `sessions`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Kill {
    kill: String,
    room: Option<i64>,
    user: Option<i64>,
}

async fn chaos_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiJson(k): ApiJson<Kill>,
) -> Result<Json<Value>, ApiError> {
    if !state.config.enable_chaos {
        return Err(ApiError::new(ErrorCode::Forbidden, "chaos is off on this node (start it with --enable-chaos)"));
    }
    if user.role != Role::Admin {
        return Err(ApiError::new(ErrorCode::Forbidden, "chaos is for admins"));
    }
    let system = &state.system;
    let killed: usize = match (k.kill.as_str(), k.room, k.user) {
        ("room", Some(room), _) => usize::from(system.kill_room(RoomId(room)).await),
        ("session", _, Some(user)) => usize::from(system.kill_session(UserId(user)).await),
        ("writer", _, _) => usize::from(system.kill_writer()),
        ("rooms", _, _) => system.kill_all_rooms().await,
        ("sessions", _, _) => system.kill_all_sessions().await,
        _ => {
            return Err(ApiError::new(
                ErrorCode::Invalid,
                "kill one of: room (with room), session (with user), writer, rooms, sessions",
            ));
        }
    };
    tracing::warn!(kill = %k.kill, killed, by = %user.username, "chaos");
    Ok(Json(json!({ "node": system.config().node_id, "killed": killed })))
}
