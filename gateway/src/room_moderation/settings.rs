//! Moderation settings: a room's pre-moderation and flags (its staff read them; its owner and
//! site admins change them), and the site's flags every room without its own uses (site staff
//! read them; admins change them). Every node applies a change within
//! `confab_actors::moderation::settings::SETTINGS_CACHE` (this node at once).

use super::{audit, owner_of, staff_of};
use crate::AppState;
use crate::admin::{Admin, Staff};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiJson, ApiPath};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use confab_actors::moderation::settings::Flags;
use confab_actors::store::AuditAction;
use confab_schemas::{ErrorCode, RoomId};
use serde::Deserialize;
use serde_json::{Value, json};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/rooms/{id}/moderation", get(room_get_route).patch(room_patch_route))
        .route("/api/admin/moderation", get(site_get_route).put(site_put_route))
}

/// A room's settings: `{"premod","flags" (its own),"site_flags","effective_flags"}`.
async fn room_json(state: &AppState, room: RoomId) -> Result<Value, ApiError> {
    let store = state.system.store();
    let own = store.moderation_settings(room.0).await?;
    let site = store.moderation_settings(0).await?.map(|s| Flags::parse(&s.flags)).unwrap_or_default();
    let (premod, flags) = own.map_or((false, Flags::default()), |s| (s.premod, Flags::parse(&s.flags)));
    let effective = flags.over(&site);
    Ok(json!({"room": room, "premod": premod, "flags": flags, "site_flags": site, "effective_flags": effective}))
}

fn invalid(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::Invalid, e.to_string())
}

/// `GET /api/rooms/{id}/moderation` → the room's settings (room staff).
async fn room_get_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Value>, ApiError> {
    let (room, _) = staff_of(&state, &user, id).await?;
    Ok(Json(room_json(&state, room.id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoomPatch {
    premod: Option<bool>,
    /// Replaces the room's own flags (`{}`: the site's again).
    flags: Option<Value>,
}

/// `PATCH /api/rooms/{id}/moderation {"premod"?,"flags"?}` → the room's settings (its owner or
/// a site admin).
async fn room_patch_route(
    State(state): State<AppState>,
    AuthUser(user, _): AuthUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(patch): ApiJson<RoomPatch>,
) -> Result<Json<Value>, ApiError> {
    let (room, _) = owner_of(&state, &user, id).await?;
    let store = state.system.store();
    let own = store.moderation_settings(room.id.0).await?;
    let (mut premod, mut flags) = own.map_or((false, Flags::default()), |s| (s.premod, Flags::parse(&s.flags)));
    if let Some(p) = patch.premod {
        premod = p;
    }
    if let Some(f) = patch.flags {
        flags = serde_json::from_value(f).map_err(|e| invalid(format!("flags: {e}")))?;
        flags.validate().map_err(invalid)?;
    }
    let json = serde_json::to_string(&flags).map_err(invalid)?;
    store.put_moderation_settings(room.id.0, premod, &json).await?;
    state.system.moderation_settings_changed();
    audit(&state, &user, "room.moderation", &room, None, json!({"premod": premod, "flags": flags})).await?;
    Ok(Json(room_json(&state, room.id).await?))
}

/// `GET /api/admin/moderation` → `{"flags"}`: the site's flags (site staff).
async fn site_get_route(Staff(_): Staff, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let site = state.system.store().moderation_settings(0).await?.map(|s| Flags::parse(&s.flags)).unwrap_or_default();
    Ok(Json(json!({"flags": site})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SitePut {
    flags: Value,
}

/// `PUT /api/admin/moderation {"flags"}` → `{"flags"}` (admins).
async fn site_put_route(
    Admin(admin): Admin,
    State(state): State<AppState>,
    ApiJson(put): ApiJson<SitePut>,
) -> Result<Json<Value>, ApiError> {
    let mut flags: Flags = serde_json::from_value(put.flags).map_err(|e| invalid(format!("flags: {e}")))?;
    flags.validate().map_err(invalid)?;
    let json = serde_json::to_string(&flags).map_err(invalid)?;
    state.system.store().put_moderation_settings(0, false, &json).await?;
    state.system.moderation_settings_changed();
    let detail = json!({"flags": flags}).to_string();
    let entry =
        AuditAction { actor: Some(admin.id), action: "admin.moderation", target: None, room: None, detail: &detail };
    state.system.store().audit_action(entry).await?;
    Ok(Json(json!({"flags": flags})))
}
