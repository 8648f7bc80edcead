//! Accounts and logins: register, password login, email one-time codes, refresh, password
//! change, logout, `me`, and how a request proves who it is.
//!
//! A login starts a *family*: a short-lived signed access token (`tokens`) plus a single-use
//! refresh token that rotates on every refresh; reusing a refresh token revokes the family.
//! Browsers get both as HttpOnly `SameSite=Strict` cookies, plus a readable `confab_csrf` cookie
//! whose value they echo in `X-CSRF-Token` (see `security`). API clients use the JSON body and
//! `Authorization: Bearer`. Passwords are hashed with Argon2id off the async threads and must
//! pass a strength estimate (zxcvbn). Every guess (password, code) is reserved in the database
//! before it is compared (`limits`), so concurrent guesses on any node never exceed the limits.

use crate::AppState;
use crate::error::{ApiError, ApiJson};
use crate::limits::{self, LoginKeys};
use crate::tokens::{Claims, now_secs};
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use confab_actors::sessions::CloseTarget;
use confab_actors::store::RefreshUse;
use confab_schemas::{ErrorCode, Role, UserId, UserRow, now_ms};
use rand::{Rng, RngCore};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::Arc;

pub const ACCESS_COOKIE: &str = "confab_access";
pub const REFRESH_COOKIE: &str = "confab_refresh";
pub const CSRF_COOKIE: &str = "confab_csrf";

/// How many guesses an email code survives.
const CODE_MAX_ATTEMPTS: i64 = 5;
/// Codes pending at once for one address: a new request leaves the earlier ones valid.
const CODE_MAX_LIVE: i64 = 3;
/// A sign-in this recent may set a first password without a fresh code.
const RECENT_SIGN_IN_MS: i64 = 10 * 60 * 1000;
/// The least zxcvbn score (0 to 4) of an accepted password.
const MIN_PASSWORD_SCORE: zxcvbn::Score = zxcvbn::Score::Three;

static COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/auth/register", post(register_route))
        .route("/api/auth/login", post(login_route))
        .route("/api/auth/logout", post(logout_route))
        .route("/api/auth/refresh", post(refresh_route))
        .route("/api/auth/password", post(password_route))
        .route("/api/auth/email/request", post(email_request_route))
        .route("/api/auth/email/verify", post(email_verify_route))
        .route("/api/me", get(me_route))
}

// ---- validation and hashing ----

/// Checks a username: 3–32 letters, digits or `_`.
pub fn validate_username(name: &str) -> Result<(), ApiError> {
    let ok = (3..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok { Ok(()) } else { Err(ApiError::new(ErrorCode::Invalid, "username: 3 to 32 letters, digits or _")) }
}

/// Checks a password for `username`: 8 to 1024 characters, not the username, not a trivial
/// repetition, not a common password, and strong enough by zxcvbn's estimate.
pub fn validate_password(pw: &str, username: &str) -> Result<(), ApiError> {
    let n = pw.chars().count();
    if !(8..=1024).contains(&n) {
        return Err(ApiError::new(ErrorCode::Invalid, "password: 8 to 1024 characters"));
    }
    let weak = |why: &str| Err(ApiError::new(ErrorCode::WeakPassword, format!("{why}; choose another")));
    let lower = pw.to_lowercase();
    let name = username.to_lowercase();
    if name.len() >= 3 && lower.contains(&name) {
        return weak("the password contains the username");
    }
    if is_repetition(&lower) {
        return weak("the password repeats a few characters");
    }
    if COMMON_PASSWORDS.lines().any(|c| c == lower) {
        return weak("this password is too common");
    }
    // zxcvbn's work grows with the length: estimate on the first 100 characters.
    let head: String = pw.chars().take(100).collect();
    if zxcvbn::zxcvbn(&head, &[username]).score() < MIN_PASSWORD_SCORE {
        return weak("this password is too easy to guess");
    }
    Ok(())
}

/// True when `pw` (after trimming) is empty or one short unit said again and again
/// (`bbbbbbbb`, `abcabcabc`, spaces).
fn is_repetition(pw: &str) -> bool {
    let chars: Vec<char> = pw.trim().chars().collect();
    if chars.is_empty() {
        return true;
    }
    (1..=chars.len() / 2)
        .any(|unit| chars.len().is_multiple_of(unit) && chars.chunks(unit).all(|c| c == &chars[..unit]))
}

/// A random password of 20 letters and digits (about 119 bits), for an operator to hand over.
pub fn generated_password() -> String {
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    (0..20).map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char).collect()
}

/// Argon2id hash of a password (`passwords`: a few at a time, in reused memory).
pub async fn hash_password(pw: String) -> Result<String, ApiError> {
    crate::passwords::hash(pw)
        .await
        .ok_or_else(|| ApiError::Internal("password hashing did not run".into()))?
        .map_err(|e| ApiError::Internal(e.to_string()))
}

async fn verify_password(pw: String, hash: Option<String>) -> bool {
    // Without a hash, still spend the time of one verification: timing must not reveal accounts.
    const DUMMY: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$9sTbSlTio3Biev89thdrlKKiCaYsjjYVJxGAL3swxpQ";
    let real = hash.is_some();
    let ok = crate::passwords::verify(pw, hash.unwrap_or_else(|| DUMMY.to_owned())).await;
    ok && real
}

/// SHA-256 of a secret (refresh token, email code), as stored.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

fn user_json(u: &UserRow) -> serde_json::Value {
    json!({"id": u.id, "username": u.username, "role": u.role})
}

// ---- issuing logins ----

fn cookie_header(
    name: &str,
    value: &str,
    path: &str,
    max_age: u64,
    http_only: bool,
    secure: bool,
) -> Result<HeaderValue, ApiError> {
    let http_only = if http_only { "; HttpOnly" } else { "" };
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; SameSite=Strict{http_only}{secure}"
    ))
    .map_err(|e| ApiError::Internal(e.to_string()))
}

/// The answer to a successful login or refresh: tokens in the body and as cookies.
fn login_response(
    state: &AppState,
    user: &UserRow,
    family: &str,
    refresh: &str,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let cfg = &state.config;
    let expires = now_secs() + cfg.access_ttl.as_secs() as i64;
    let access = cfg.token_key.sign(&Claims { user: user.id, family: family.to_owned(), expires });
    let csrf = random_hex(16);
    let body = json!({
        "token": access, "refresh_token": refresh, "csrf_token": csrf,
        "expires_in": cfg.access_ttl.as_secs(), "user": user_json(user),
    });
    let mut resp = (status, Json(body)).into_response();
    let secure = cfg.secure_cookies;
    let h = resp.headers_mut();
    // Tokens must not stay in any cache.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.append(SET_COOKIE, cookie_header(ACCESS_COOKIE, &access, "/", cfg.access_ttl.as_secs(), true, secure)?);
    h.append(SET_COOKIE, cookie_header(REFRESH_COOKIE, refresh, "/api/auth", cfg.refresh_ttl.as_secs(), true, secure)?);
    h.append(SET_COOKIE, cookie_header(CSRF_COOKIE, &csrf, "/", cfg.refresh_ttl.as_secs(), false, secure)?);
    Ok(resp)
}

/// Starts a new login family for `user`.
async fn new_login(state: &AppState, user: &UserRow, status: StatusCode) -> Result<Response, ApiError> {
    let family = random_hex(16);
    let refresh = random_hex(32);
    let expires = now_ms() + state.config.refresh_ttl.as_millis() as i64;
    state.system.store().create_family(&family, user.id, &secret_hash(&refresh), expires).await?;
    login_response(state, user, &family, &refresh, status)
}

fn clear_cookies(resp: &mut Response, secure: bool) -> Result<(), ApiError> {
    let h = resp.headers_mut();
    h.append(SET_COOKIE, cookie_header(ACCESS_COOKIE, "", "/", 0, true, secure)?);
    h.append(SET_COOKIE, cookie_header(REFRESH_COOKIE, "", "/api/auth", 0, true, secure)?);
    h.append(SET_COOKIE, cookie_header(CSRF_COOKIE, "", "/", 0, false, secure)?);
    Ok(())
}

// ---- routes ----

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

/// `POST /api/auth/register {"username","password"}` → 201, logged in (as login answers).
/// Limited per client address (`--signups-per-ip-per-hour`).
async fn register_route(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    ApiJson(c): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    validate_username(&c.username)?;
    validate_password(&c.password, &c.username)?;
    let per_hour = state.config.signups_per_ip_per_hour;
    limits::hourly(&state, &format!("signup:ip:{}", addr.ip()), per_hour, "too many sign-ups from this address")
        .await?;
    let hash = hash_password(c.password).await?;
    let user = state.system.store().create_user(&c.username, &hash, Role::User).await?;
    state.system.store().audit(Some(user.id), "register", None, &user.username).await?;
    new_login(&state, &user, StatusCode::CREATED).await
}

/// `POST /api/auth/login {"username","password"}` → 200 `{"token","refresh_token","csrf_token",
/// "expires_in","user"}` and the cookies. Each attempt is reserved first (`limits`): backoff per
/// (account, address) and per address; the account's failures from anywhere only slow it.
async fn login_route(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    ApiJson(c): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    if c.username.len() > 64 || c.password.len() > 4096 {
        return Err(ApiError::new(ErrorCode::AuthFailed, "wrong username or password"));
    }
    let keys = LoginKeys::new(&c.username, addr.ip());
    let delay = limits::reserve_login(&state, &keys).await?;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let user = state.system.store().user_by_name(&c.username).await?;
    let ok = verify_password(c.password, user.as_ref().and_then(|u| u.password_hash.clone())).await;
    match user {
        Some(user) if ok => {
            limits::login_succeeded(&state, &keys).await?;
            crate::admin::refuse_if_banned(&state, &user).await?;
            new_login(&state, &user, StatusCode::OK).await
        }
        _ => Err(ApiError::new(ErrorCode::AuthFailed, "wrong username or password")),
    }
}

#[derive(Deserialize, Default)]
struct RefreshBody {
    refresh_token: Option<String>,
}

/// `POST /api/auth/refresh {"refresh_token"?}` (or the refresh cookie) → a new access token and a
/// new refresh token; the old one is spent. A spent token presented again revokes the login.
async fn refresh_route(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // The body is optional: browsers send the cookie and no body.
    let from_body = if body.is_empty() {
        None
    } else {
        serde_json::from_slice::<RefreshBody>(&body)
            .map_err(|e| ApiError::new(ErrorCode::Invalid, e.to_string()))?
            .refresh_token
    };
    let token = from_body.or_else(|| cookie(&headers, REFRESH_COOKIE));
    let Some(token) = token.filter(|t| t.len() <= 256) else {
        return Err(ApiError::new(ErrorCode::NotAuthenticated, "no refresh token"));
    };
    let next = random_hex(32);
    let expires = now_ms() + state.config.refresh_ttl.as_millis() as i64;
    let store = state.system.store();
    match store.use_refresh(&secret_hash(&token), &secret_hash(&next), expires).await? {
        RefreshUse::Rotated { family, user } => {
            let user = store
                .user_by_id(user)
                .await?
                .ok_or_else(|| ApiError::new(ErrorCode::NotAuthenticated, "no such user"))?;
            crate::admin::refuse_if_banned(&state, &user).await?;
            login_response(&state, &user, &family, &next, StatusCode::OK)
        }
        RefreshUse::Reused { family, user } => {
            store.audit(Some(user), "auth.refresh_reuse", None, &family).await?;
            state.system.close_sessions(CloseTarget::Family(Arc::from(family.as_str())), "login revoked", false);
            Err(ApiError::new(ErrorCode::NotAuthenticated, "this refresh token was already used: the login is revoked"))
        }
        RefreshUse::Invalid => {
            Err(ApiError::new(ErrorCode::NotAuthenticated, "the refresh token is invalid or expired"))
        }
    }
}

/// `POST /api/auth/logout` → 204; revokes this login and closes its sockets.
async fn logout_route(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    // An expired access token still names the family to revoke.
    let family = request_token(&headers).and_then(|t| state.config.token_key.verify(&t, i64::MIN).map(|c| c.family));
    if let Some(family) = family {
        state.system.store().revoke_family(&family, "logout").await?;
        state.system.close_sessions(CloseTarget::Family(Arc::from(family.as_str())), "logged out", false);
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    clear_cookies(&mut resp, state.config.secure_cookies)?;
    Ok(resp)
}

#[derive(Deserialize)]
struct PasswordChange {
    #[serde(default)]
    current_password: Option<String>,
    /// A fresh sign-in code, for an account without a password.
    #[serde(default)]
    code: Option<String>,
    new_password: String,
}

/// `POST /api/auth/password {"current_password"|"code", "new_password"}` → 200 with a new
/// login; every other login of the user is revoked and its sockets closed. An account with a
/// password proves it with `current_password`; an email-code account with a fresh `code` or a
/// sign-in of the last 10 minutes (else 403 `reauth_required`).
async fn password_route(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    auth: AuthUser,
    ApiJson(p): ApiJson<PasswordChange>,
) -> Result<Response, ApiError> {
    let AuthUser(user, claims) = auth;
    let store = state.system.store();
    validate_password(&p.new_password, &user.username)?;
    if user.password_hash.is_some() {
        let keys = LoginKeys::new(&user.username, addr.ip());
        limits::reserve_login(&state, &keys).await?;
        let current = p.current_password.unwrap_or_default();
        if current.len() > 4096 || !verify_password(current, user.password_hash.clone()).await {
            return Err(ApiError::new(ErrorCode::AuthFailed, "the current password is wrong"));
        }
        limits::login_succeeded(&state, &keys).await?;
    } else if let Some(code) = p.code {
        let email = store
            .user_email(user.id)
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::ReauthRequired, "this account has no email address"))?;
        check_email_code(&state, &email, &code, addr).await?;
    } else {
        let signed_in = store.family_created_at(&claims.family).await?.unwrap_or(0);
        if signed_in < now_ms() - RECENT_SIGN_IN_MS {
            return Err(ApiError::new(
                ErrorCode::ReauthRequired,
                "setting a password needs a fresh sign-in: give a new email code as \"code\", or sign in again",
            ));
        }
    }
    let hash = hash_password(p.new_password).await?;
    store.set_password_hash(user.id, &hash).await?;
    store.revoke_user_families(user.id, "password changed").await?;
    store.audit(Some(user.id), "auth.password_change", None, "").await?;
    state.system.close_sessions(CloseTarget::User(user.id), "password changed", false);
    new_login(&state, &user, StatusCode::OK).await
}

#[derive(Deserialize)]
struct EmailRequest {
    email: String,
}

fn normalize_email(email: &str) -> Result<String, ApiError> {
    let e = email.trim().to_lowercase();
    let valid = (3..=254).contains(&e.len())
        && e.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.'))
        && !e.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"'));
    if valid { Ok(e) } else { Err(ApiError::new(ErrorCode::Invalid, "not an email address")) }
}

/// `POST /api/auth/email/request {"email"}` → 202; mails a 6-digit code valid 10 minutes.
/// Limited per (address, email) and per address; at most 3 codes of an address are pending at
/// once, and a new one never replaces one already sent. The answer is the same whether or not an
/// account exists.
async fn email_request_route(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    ApiJson(r): ApiJson<EmailRequest>,
) -> Result<Response, ApiError> {
    let email = normalize_email(&r.email)?;
    limits::reserve_code_request(&state, &email, addr.ip()).await?;
    let code = format!("{:06}", rand::thread_rng().gen_range(0..1_000_000));
    let expires = now_ms() + state.config.code_ttl.as_millis() as i64;
    let stored = state
        .system
        .store()
        .put_email_code(&email, &secret_hash(&format!("{email}|{code}")), expires, CODE_MAX_ATTEMPTS, CODE_MAX_LIVE)
        .await?;
    if !stored {
        return Err(ApiError::Throttled(
            ErrorCode::RateLimited,
            "codes are already pending for this address: use one of them".into(),
            state.config.code_ttl,
        ));
    }
    state.mailer.send_code(&email, &code).await.map_err(|e| ApiError::Internal(format!("sending mail: {e}")))?;
    Ok((StatusCode::ACCEPTED, Json(json!({"sent": true, "expires_in": state.config.code_ttl.as_secs()})))
        .into_response())
}

#[derive(Deserialize)]
struct EmailVerify {
    email: String,
    code: String,
}

/// Checks a sign-in code of `email` and consumes it. Each guess is reserved against the address
/// (as password guesses are) and against every pending code before any comparison: a code is
/// compared at most 5 times, however many guesses arrive at once.
async fn check_email_code(state: &AppState, email: &str, code: &str, addr: SocketAddr) -> Result<(), ApiError> {
    let store = state.system.store();
    let now = now_ms();
    // Why nothing can match, before any guess is spent.
    let codes = store.email_codes(email).await?;
    if !codes.iter().any(|c| c.expires_at > now && c.attempts < CODE_MAX_ATTEMPTS) {
        return Err(if codes.iter().any(|c| c.expires_at > now) {
            ApiError::new(ErrorCode::TooManyAttempts, "too many wrong codes; request a new one")
        } else if codes.is_empty() {
            ApiError::new(ErrorCode::AuthFailed, "no code is pending for this address; request one")
        } else {
            ApiError::new(ErrorCode::CodeExpired, "the code has expired; request a new one")
        });
    }
    let address_key = format!("login:ip:{}", addr.ip());
    limits::reserve_address_guess(state, &address_key).await?;
    let reserved = store.reserve_code_guess(email, CODE_MAX_ATTEMPTS).await?;
    if reserved.is_empty() {
        return Err(ApiError::new(ErrorCode::TooManyAttempts, "too many wrong codes; request a new one"));
    }
    let guess = secret_hash(&format!("{email}|{}", code.trim()));
    let Some(hit) = reserved.iter().find(|c| crate::security::constant_eq(&c.code_hash, &guess)) else {
        return Err(ApiError::new(ErrorCode::AuthFailed, "wrong code"));
    };
    if !store.consume_email_code(email, hit.id).await? {
        return Err(ApiError::new(ErrorCode::AuthFailed, "the code was already used"));
    }
    store.refund_attempt(&address_key).await?;
    Ok(())
}

/// `POST /api/auth/email/verify {"email","code"}` → 200 like login (201 when it created the
/// account). A code works once, for 10 minutes, and dies after 5 guesses.
async fn email_verify_route(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    ApiJson(v): ApiJson<EmailVerify>,
) -> Result<Response, ApiError> {
    let email = normalize_email(&v.email)?;
    if v.code.len() > 64 {
        return Err(ApiError::new(ErrorCode::AuthFailed, "wrong code"));
    }
    check_email_code(&state, &email, &v.code, addr).await?;
    let store = state.system.store();
    let (user, status) = match store.user_by_email(&email).await? {
        Some(u) => (u, StatusCode::OK),
        None => (create_email_user(&state, &email).await?, StatusCode::CREATED),
    };
    crate::admin::refuse_if_banned(&state, &user).await?;
    store.audit(Some(user.id), "auth.email_login", None, &email).await?;
    new_login(&state, &user, status).await
}

/// An account for a verified address, named after its local part (made unique if taken).
async fn create_email_user(state: &AppState, email: &str) -> Result<UserRow, ApiError> {
    let local: String = email
        .split('@')
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(24)
        .collect();
    let base = if local.len() >= 3 { local } else { format!("user{local}") };
    for attempt in 0..8 {
        let name =
            if attempt == 0 { base.clone() } else { format!("{base}_{}", rand::thread_rng().gen_range(1000..10000)) };
        match state.system.store().create_email_user(&name, email).await {
            Ok(u) => return Ok(u),
            Err(confab_actors::Error::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(ErrorCode::Conflict, "could not find a free username"))
}

/// `GET /api/me` → `{"user"}`.
/// `GET /api/me` → the user, their inbox (join it like a room) and the node sequencing it now.
async fn me_route(State(state): State<AppState>, auth: AuthUser) -> Result<Json<serde_json::Value>, ApiError> {
    let inbox = confab_schemas::RoomId::inbox_of(auth.0.id);
    let node = state.system.cluster().owner_of(inbox);
    let profile = crate::people::own_profile_json(&state, &auth.0).await?;
    Ok(Json(json!({
        "user": user_json(&auth.0), "inbox": inbox, "inbox_node": node,
        "display_name": profile["display_name"], "status": profile["status"], "dm_policy": profile["dm_policy"],
    })))
}

// ---- who is asking ----

/// A cookie's value.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

/// The token of an `Authorization: Bearer` header (the scheme in any case).
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// The access token of a request: the `Authorization` header when there is one (then only it,
/// so a request is never judged on one credential and served on another), else the cookie.
pub fn request_token(headers: &HeaderMap) -> Option<String> {
    if headers.contains_key(AUTHORIZATION) {
        return bearer_token(headers);
    }
    cookie(headers, ACCESS_COOKIE)
}

/// The user and claims of a valid access token whose login is not revoked; 403 `banned` when
/// the account is banned.
pub async fn user_for_token(state: &AppState, token: &str) -> Result<Option<(UserRow, Claims)>, ApiError> {
    let Some(claims) = state.config.token_key.verify(token, now_secs()) else { return Ok(None) };
    match state.system.store().family_user_and_ban(&claims.family).await? {
        Some((user, ban)) if user.id == claims.user => match ban {
            Some(ban) => Err(crate::admin::banned(&ban)),
            None => Ok(Some((user, claims))),
        },
        _ => Ok(None),
    }
}

/// An authenticated user; rejects with 401 `not_authenticated`.
pub struct AuthUser(pub UserRow, pub Claims);

impl AuthUser {
    pub fn id(&self) -> UserId {
        self.0.id
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<AuthUser, ApiError> {
        let token =
            request_token(&parts.headers).ok_or_else(|| ApiError::new(ErrorCode::NotAuthenticated, "log in first"))?;
        match user_for_token(state, &token).await? {
            Some((user, claims)) => Ok(AuthUser(user, claims)),
            None => Err(ApiError::new(
                ErrorCode::NotAuthenticated,
                "the token is invalid, expired or revoked; refresh or log in",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_passwords_emails() {
        assert!(validate_username("ann_99").is_ok());
        for bad in ["ab", "a b", "x".repeat(33).as_str(), "ann!", "<script>"] {
            assert!(validate_username(bad).is_err(), "{bad}");
        }
        assert!(validate_password("correct horse", "ann_99").is_ok());
        assert!(validate_password("1234567", "ann_99").is_err());
        for weak in ["Password123", "        ", "bbbbbbbb", "abcabcabcabc", "ann_99ann_99", "xx_Ann_99_xx"] {
            assert!(
                matches!(validate_password(weak, "ann_99"), Err(ApiError::Refused(ErrorCode::WeakPassword, _))),
                "{weak:?}"
            );
        }
        assert_eq!(normalize_email(" Ann@Example.COM ").unwrap(), "ann@example.com");
        for bad in ["ann", "@x.io", "ann@x", "a b@x.io", "a@x.io>"] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_from_bearer_or_cookie() {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("a=1; confab_access=abc; b=2"));
        assert_eq!(request_token(&h).as_deref(), Some("abc"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer xyz"));
        assert_eq!(request_token(&h).as_deref(), Some("xyz"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("bearer xyz"));
        assert_eq!(request_token(&h).as_deref(), Some("xyz"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(request_token(&h), None, "another scheme never falls back to the cookie");
    }

    #[tokio::test]
    async fn argon2_roundtrip() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".into(), Some(hash.clone())).await);
        assert!(!verify_password("wrong horse".into(), Some(hash)).await);
        assert!(!verify_password("anything".into(), None).await);
    }
}
