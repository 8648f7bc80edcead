//! Which limits guard which requests, and how a refusal looks (429 `rate_limited` with
//! `Retry-After`). The counters live in the database (`Store::reserve_attempt`, `take_rate`),
//! so every node of a cluster shares them, and each is taken before the work it guards.
//!
//! Passwords are throttled per (account, address) and per address with exponential backoff; an
//! account's own failures, from anywhere, only slow its logins by a bounded delay, so nobody can
//! lock its owner out.

use crate::AppState;
use crate::error::ApiError;
use confab_actors::store::{Backoff, Limited};
use confab_schemas::ErrorCode;
use std::net::IpAddr;
use std::time::Duration;

/// Longest a login waits because of its account's failures from other addresses.
pub const ACCOUNT_DELAY_CAP: Duration = Duration::from_secs(2);
/// An address may fail this many times the per-account allowance across accounts.
const ADDRESS_FACTOR: u32 = 4;
const HOUR_MS: i64 = 3_600_000;

/// The keys one login attempt reserves.
pub struct LoginKeys {
    pub address: String,
    pub account_address: String,
    pub account: String,
}

impl LoginKeys {
    pub fn new(account: &str, ip: IpAddr) -> LoginKeys {
        let account = account.to_lowercase();
        LoginKeys {
            address: format!("login:ip:{ip}"),
            account_address: format!("login:acct:{account}|ip:{ip}"),
            account: format!("login:acct:{account}"),
        }
    }
}

fn login_backoff(free: u32) -> Backoff {
    Backoff { free: free.max(1), base_ms: 1000, max_ms: 15 * 60 * 1000 }
}

/// A 429 for a refused reservation.
pub fn refused(limited: Limited, message: &str) -> ApiError {
    ApiError::Throttled(
        ErrorCode::RateLimited,
        message.into(),
        Duration::from_millis(limited.retry_after_ms.max(1) as u64),
    )
}

/// Reserves a guess from this address (passwords and sign-in codes alike).
pub async fn reserve_address_guess(state: &AppState, key: &str) -> Result<(), ApiError> {
    let free = state.config.login_free_attempts.saturating_mul(ADDRESS_FACTOR);
    state
        .system
        .store()
        .reserve_attempt(key, login_backoff(free))
        .await?
        .map(|_| ())
        .map_err(|l| refused(l, "too many attempts from this address; wait before trying again"))
}

/// Reserves one password attempt: refused while this address, or this account from this
/// address, is backing off. Returns how long to slow the attempt for the account's recent
/// failures from anywhere (at most `ACCOUNT_DELAY_CAP`).
pub async fn reserve_login(state: &AppState, keys: &LoginKeys) -> Result<Duration, ApiError> {
    let store = state.system.store();
    let free = state.config.login_free_attempts;
    store
        .reserve_attempt(&keys.account_address, login_backoff(free))
        .await?
        .map_err(|l| refused(l, "too many attempts; wait before trying again"))?;
    reserve_address_guess(state, &keys.address).await?;
    // Counted, never blocked: a delay that doubles past twice the allowance, capped.
    let never = Backoff { free: u32::MAX, base_ms: 0, max_ms: 15 * 60 * 1000 };
    let hits = store.reserve_attempt(&keys.account, never).await?.unwrap_or(0);
    let over = hits - 2 * i64::from(free.max(1));
    Ok(if over <= 0 {
        Duration::ZERO
    } else {
        Duration::from_millis(100u64.saturating_mul(1 << over.min(10))).min(ACCOUNT_DELAY_CAP)
    })
}

/// A login succeeded: the account starts over; the address's reservation is given back.
pub async fn login_succeeded(state: &AppState, keys: &LoginKeys) -> Result<(), ApiError> {
    let store = state.system.store();
    store.clear_limit(&keys.account_address).await?;
    store.clear_limit(&keys.account).await?;
    store.refund_attempt(&keys.address).await?;
    Ok(())
}

/// Reserves a sign-in code request: per (address, email) and, more loosely, per address.
pub async fn reserve_code_request(state: &AppState, email: &str, ip: IpAddr) -> Result<(), ApiError> {
    let free = state.config.code_free_requests.max(1);
    let backoff = |free: u32| Backoff { free, base_ms: 30_000, max_ms: HOUR_MS };
    let store = state.system.store();
    let message = "too many code requests; wait before asking again";
    store
        .reserve_attempt(&format!("code:email:{email}|ip:{ip}"), backoff(free))
        .await?
        .map_err(|l| refused(l, message))?;
    store
        .reserve_attempt(&format!("code:ip:{ip}"), backoff(free.saturating_mul(3)))
        .await?
        .map_err(|l| refused(l, message))?;
    Ok(())
}

/// Counts one event of `key` against `per_hour` (0: no limit).
pub async fn hourly(state: &AppState, key: &str, per_hour: u32, message: &str) -> Result<(), ApiError> {
    if per_hour == 0 {
        return Ok(());
    }
    state.system.store().take_rate(key, per_hour, HOUR_MS).await?.map(|_| ()).map_err(|l| refused(l, message))
}
