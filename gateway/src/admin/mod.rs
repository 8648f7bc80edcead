//! The site's staff routes under `/api/admin/…`, and the announcements every user reads.
//!
//! - `sanctions`: bans, kicks and mutes (moderators and admins);
//! - `users`: the list of users (moderators and admins), role changes and password resets (admins);
//! - `audit`: the audit log with filters (admins);
//! - `stats`: the site's figures and this node's counters (admins);
//! - `rooms`: every chat room, private ones too, with owner and member count, and deleting one
//!   (admins);
//! - `broadcasts`: announcements (admins post them; every signed-in user lists and dismisses them).
//!
//! Every route checks the caller's role on the server, from the database on every request (the
//! access token carries no role), so a demotion takes effect at once on every node. The role
//! check is the handler's first extractor: a caller without the role gets 403 `forbidden` before
//! anything of the request is read, and nothing changes. Staff act only on accounts of a lower
//! role than their own, never on themselves. Each action is written to the audit log: who
//! (`actor`), whom (`target`), what (`action`) and why (`detail`, a JSON object).

mod audit;
mod broadcasts;
mod rooms;
mod sanctions;
mod stats;
mod users;

pub use sanctions::{banned, refuse_if_banned};

use crate::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use confab_actors::store::AuditAction;
use confab_schemas::{ErrorCode, Role, UserRow};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .merge(sanctions::routes())
        .merge(users::routes())
        .merge(audit::routes())
        .merge(stats::routes())
        .merge(broadcasts::routes())
        .merge(rooms::routes())
}

/// A signed-in site moderator or admin; anyone else gets 403 `forbidden`.
pub(crate) struct Staff(pub UserRow);

/// A signed-in site admin; anyone else gets 403 `forbidden`.
pub(crate) struct Admin(pub UserRow);

impl FromRequestParts<AppState> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Staff, ApiError> {
        let AuthUser(user, _) = AuthUser::from_request_parts(parts, state).await?;
        if user.role.rank() < Role::Moderator.rank() {
            return Err(ApiError::new(ErrorCode::Forbidden, "site moderators and admins only"));
        }
        Ok(Staff(user))
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Admin, ApiError> {
        let AuthUser(user, _) = AuthUser::from_request_parts(parts, state).await?;
        if user.role != Role::Admin {
            return Err(ApiError::new(ErrorCode::Forbidden, "site admins only"));
        }
        Ok(Admin(user))
    }
}

/// The account named `username`, or 404.
async fn target(state: &AppState, username: &str) -> Result<UserRow, ApiError> {
    if username.len() > 64 {
        return Err(ApiError::new(ErrorCode::NotFound, "no such user"));
    }
    state.system.store().user_by_name(username).await?.ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such user"))
}

/// Staff act only on accounts of a lower role than their own, and never on themselves.
fn may_act_on(actor: &UserRow, target: &UserRow) -> Result<(), ApiError> {
    if actor.id == target.id {
        return Err(ApiError::new(ErrorCode::Forbidden, "not on your own account"));
    }
    if target.role.rank() >= actor.role.rank() {
        return Err(ApiError::new(ErrorCode::Forbidden, "only on accounts of a lower role than yours"));
    }
    Ok(())
}

/// Writes `action` by `actor` on `target` to the audit log, with `detail` (a JSON object).
async fn audit(
    state: &AppState,
    actor: &UserRow,
    action: &str,
    target: Option<&UserRow>,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    let detail = detail.to_string();
    let entry =
        AuditAction { actor: Some(actor.id), action, target: target.map(|t| t.id), room: None, detail: &detail };
    state.system.store().audit_action(entry).await?;
    Ok(())
}

/// Rows listed per page by default, and at most.
const PAGE: u32 = 50;
const MAX_PAGE: u32 = 200;

/// A list's search text (at most 64 bytes) and page size (`limit`, 1 to `MAX_PAGE`; default `PAGE`).
fn page_size(q: &str, limit: Option<u32>) -> Result<u32, ApiError> {
    if q.len() > 64 {
        return Err(ApiError::new(ErrorCode::Invalid, "q: at most 64 bytes"));
    }
    let limit = limit.unwrap_or(PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::new(ErrorCode::Invalid, format!("limit: 1 to {MAX_PAGE}")));
    }
    Ok(limit)
}

/// A reason given for an action: trimmed, at most 500 characters.
fn reason(text: Option<&str>, required: bool) -> Result<String, ApiError> {
    let r = text.unwrap_or("").trim();
    if required && r.is_empty() {
        return Err(ApiError::new(ErrorCode::Invalid, "give a reason"));
    }
    if r.chars().count() > 500 {
        return Err(ApiError::new(ErrorCode::Invalid, "a reason is at most 500 characters"));
    }
    Ok(r.to_owned())
}
