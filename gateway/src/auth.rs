//! Accounts and login sessions: register, login, logout, `me`, and how a request proves who it
//! is (the `confab_session` cookie, or `Authorization: Bearer <token>`).
//!
//! Passwords are hashed with Argon2id off the async threads. A login session is an opaque random
//! token; only its SHA-256 is stored, so a leaked database does not leak sessions.

use crate::AppState;
use crate::error::{ApiError, ApiJson};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{FromRequestParts, State};
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use confab_schemas::{ErrorCode, Role, UserRow, now_ms};
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

pub const COOKIE_NAME: &str = "confab_session";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/auth/register", post(register_route))
        .route("/api/auth/login", post(login_route))
        .route("/api/auth/logout", post(logout_route))
        .route("/api/me", get(me_route))
}

#[derive(Deserialize)]
pub struct Credentials {
    username: String,
    password: String,
}

/// Checks a username: 3–32 letters, digits or `_`.
pub fn validate_username(name: &str) -> Result<(), ApiError> {
    let ok = (3..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok { Ok(()) } else { Err(ApiError::new(ErrorCode::Invalid, "username: 3 to 32 letters, digits or _")) }
}

/// Checks a password: 8 to 1024 characters.
pub fn validate_password(pw: &str) -> Result<(), ApiError> {
    let n = pw.chars().count();
    if (8..=1024).contains(&n) {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::Invalid, "password: 8 to 1024 characters"))
    }
}

/// Argon2id hash of a password, computed on a blocking thread.
pub async fn hash_password(pw: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        Argon2::default().hash_password(pw.as_bytes(), &salt).map(|h| h.to_string())
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(e.to_string()))
}

async fn verify_password(pw: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|h| Argon2::default().verify_password(pw.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// The stored form of a session token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn user_json(u: &UserRow) -> serde_json::Value {
    json!({"id": u.id, "username": u.username, "role": u.role})
}

/// Starts a login session: the token in the body and in an HttpOnly cookie.
async fn login_response(state: &AppState, user: &UserRow, status: StatusCode) -> Result<Response, ApiError> {
    let token = new_token();
    let ttl = state.config.session_ttl;
    state.system.store().create_auth_session(&token_hash(&token), user.id, now_ms() + ttl.as_millis() as i64).await?;
    let secure = if state.config.secure_cookies { "; Secure" } else { "" };
    let cookie = format!("{COOKIE_NAME}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}", ttl.as_secs());
    let mut resp = (status, Json(json!({"token": token, "user": user_json(user)}))).into_response();
    resp.headers_mut()
        .insert(SET_COOKIE, HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.to_string()))?);
    Ok(resp)
}

/// `POST /api/auth/register {"username","password"}` → 201 `{"token","user"}` and the cookie.
async fn register_route(State(state): State<AppState>, ApiJson(c): ApiJson<Credentials>) -> Result<Response, ApiError> {
    validate_username(&c.username)?;
    validate_password(&c.password)?;
    let hash = hash_password(c.password).await?;
    let user = state.system.store().create_user(&c.username, &hash, Role::User).await?;
    state.system.store().audit(Some(user.id), "register", None, &user.username).await?;
    login_response(&state, &user, StatusCode::CREATED).await
}

/// `POST /api/auth/login {"username","password"}` → 200 `{"token","user"}` and the cookie.
async fn login_route(State(state): State<AppState>, ApiJson(c): ApiJson<Credentials>) -> Result<Response, ApiError> {
    let user = state.system.store().user_by_name(&c.username).await?;
    let ok = match user.as_ref().and_then(|u| u.password_hash.clone()) {
        Some(hash) => verify_password(c.password, hash).await,
        None => false,
    };
    match user {
        Some(user) if ok => login_response(&state, &user, StatusCode::OK).await,
        _ => Err(ApiError::new(ErrorCode::AuthFailed, "wrong username or password")),
    }
}

/// `POST /api/auth/logout` → 204; ends the session and closes its sockets.
async fn logout_route(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = request_token(&headers) {
        let hash = token_hash(&token);
        if let Some(user) = state.system.store().user_by_session(&hash).await? {
            state.system.close_sessions(Some(user.id), "logged out", false);
        }
        state.system.store().delete_auth_session(&hash).await?;
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let clear = format!("{COOKIE_NAME}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    resp.headers_mut()
        .insert(SET_COOKIE, HeaderValue::from_str(&clear).map_err(|e| ApiError::Internal(e.to_string()))?);
    Ok(resp)
}

/// `GET /api/me` → `{"user"}`.
async fn me_route(AuthUser(user): AuthUser) -> Json<serde_json::Value> {
    Json(json!({"user": user_json(&user)}))
}

/// The session token of a request: bearer header first, then the cookie.
pub fn request_token(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some(t) = v.strip_prefix("Bearer ")
    {
        return Some(t.trim().to_owned());
    }
    cookie_token(headers)
}

/// The session token carried by the cookie, if any.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE_NAME)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

/// The user behind a token, if the session is live.
pub async fn user_for_token(state: &AppState, token: &str) -> Result<Option<UserRow>, ApiError> {
    if token.len() > 256 {
        return Ok(None);
    }
    Ok(state.system.store().user_by_session(&token_hash(token)).await?)
}

/// An authenticated user; rejects with 401 `not_authenticated`.
pub struct AuthUser(pub UserRow);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<AuthUser, ApiError> {
        let token =
            request_token(&parts.headers).ok_or_else(|| ApiError::new(ErrorCode::NotAuthenticated, "log in first"))?;
        match user_for_token(state, &token).await? {
            Some(user) => Ok(AuthUser(user)),
            None => Err(ApiError::new(ErrorCode::NotAuthenticated, "the session is invalid or expired; log in again")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_and_passwords() {
        assert!(validate_username("ann_99").is_ok());
        for bad in ["ab", "a b", "x".repeat(33).as_str(), "ann!", "<script>"] {
            assert!(validate_username(bad).is_err(), "{bad}");
        }
        assert!(validate_password("12345678").is_ok());
        assert!(validate_password("1234567").is_err());
    }

    #[test]
    fn tokens_from_bearer_or_cookie() {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("a=1; confab_session=abc; b=2"));
        assert_eq!(request_token(&h).as_deref(), Some("abc"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer xyz"));
        assert_eq!(request_token(&h).as_deref(), Some("xyz"));
        assert_eq!(cookie_token(&h).as_deref(), Some("abc"));
    }

    #[tokio::test]
    async fn argon2_roundtrip() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".into(), hash.clone()).await);
        assert!(!verify_password("wrong horse".into(), hash).await);
    }
}
