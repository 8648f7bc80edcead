//! Authentication state: login families with rotating refresh tokens, and email one-time codes.
//!
//! A login (password, email code) starts a *family*. Each refresh token is single-use: using it
//! marks it used and stores its successor in the same transaction. Presenting a used token again
//! means it was stolen (or replayed), so the whole family is revoked. Only SHA-256 hashes of tokens
//! and codes are stored.

use super::{Inner, Store, on_pool, rows};
use crate::error::Result;
use confab_schemas::{Role, UserId, UserRow, now_ms};
use sqlx::Row;

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshUse {
    /// Valid and unused: it is now used, and its successor stored.
    Rotated { family: String, user: UserId },
    /// Already used: the family is now revoked.
    Reused { family: String, user: UserId },
    /// Unknown, expired, or of a revoked family.
    Invalid,
}

/// A pending email code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailCode {
    pub code_hash: String,
    pub expires_at: i64,
    pub attempts: i64,
}

impl Store {
    /// Starts a login family with its first refresh token.
    pub async fn create_family(
        &self,
        family: &str,
        user: UserId,
        refresh_hash: &str,
        refresh_expires: i64,
    ) -> Result<()> {
        let now = now_ms();
        on_pool!(self, write, |p| {
            let mut tx = p.begin().await?;
            sqlx::query("INSERT INTO auth_families (id, user_id, created_at) VALUES ($1, $2, $3)")
                .bind(family)
                .bind(user.0)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO refresh_tokens (token_hash, family_id, expires_at) VALUES ($1, $2, $3)")
                .bind(refresh_hash)
                .bind(family)
                .bind(refresh_expires)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Uses a refresh token: rotates it to `next_hash`, or detects reuse and revokes the family.
    pub async fn use_refresh(&self, token_hash: &str, next_hash: &str, next_expires: i64) -> Result<RefreshUse> {
        let now = now_ms();
        on_pool!(self, write, |p| {
            let mut tx = p.begin().await?;
            let row = sqlx::query(
                "SELECT t.family_id, t.expires_at, t.used_at, f.user_id, f.revoked_at FROM refresh_tokens t \
                 JOIN auth_families f ON f.id = t.family_id WHERE t.token_hash = $1",
            )
            .bind(token_hash)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else { return Ok(RefreshUse::Invalid) };
            let family: String = row.try_get(0)?;
            let expires_at: i64 = row.try_get(1)?;
            let used_at: Option<i64> = row.try_get(2)?;
            let user = UserId(row.try_get(3)?);
            let revoked_at: Option<i64> = row.try_get(4)?;
            if revoked_at.is_some() || expires_at <= now {
                return Ok(RefreshUse::Invalid);
            }
            if used_at.is_some() {
                sqlx::query(
                    "UPDATE auth_families SET revoked_at = $1, revoked_reason = 'refresh token reused' WHERE id = $2",
                )
                .bind(now)
                .bind(&family)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                return Ok(RefreshUse::Reused { family, user });
            }
            sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2")
                .bind(now)
                .bind(token_hash)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO refresh_tokens (token_hash, family_id, expires_at) VALUES ($1, $2, $3)")
                .bind(next_hash)
                .bind(&family)
                .bind(next_expires)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(RefreshUse::Rotated { family, user })
        })
    }

    /// The user of a family that is not revoked.
    pub async fn family_user(&self, family: &str) -> Result<Option<UserRow>> {
        on_pool!(self, read, |p| {
            let row = sqlx::query(
                "SELECT u.id, u.username, u.role, u.created_at, u.password_hash FROM auth_families f \
                 JOIN users u ON u.id = f.user_id WHERE f.id = $1 AND f.revoked_at IS NULL",
            )
            .bind(family)
            .fetch_optional(p)
            .await?;
            row.map(|r| rows::user(&r)).transpose()
        })
    }

    /// Revokes one family (logout).
    pub async fn revoke_family(&self, family: &str, reason: &str) -> Result<()> {
        on_pool!(self, write, |p| {
            sqlx::query(
                "UPDATE auth_families SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL",
            )
            .bind(now_ms())
            .bind(reason)
            .bind(family)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Revokes every family of a user (password change, reset, ban).
    pub async fn revoke_user_families(&self, user: UserId, reason: &str) -> Result<()> {
        on_pool!(self, write, |p| {
            sqlx::query("UPDATE auth_families SET revoked_at = $1, revoked_reason = $2 WHERE user_id = $3 AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(reason)
                .bind(user.0)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>> {
        on_pool!(self, read, |p| {
            let row = sqlx::query("SELECT id, username, role, created_at, password_hash FROM users WHERE email = $1")
                .bind(email)
                .fetch_optional(p)
                .await?;
            row.map(|r| rows::user(&r)).transpose()
        })
    }

    /// Creates a user who signs in by email code (no password).
    pub async fn create_email_user(&self, username: &str, email: &str) -> Result<UserRow> {
        self.insert_user(username, Some(email), None, Role::User).await
    }

    /// Stores a new code for `email`, replacing any earlier one (and its attempt count).
    pub async fn put_email_code(&self, email: &str, code_hash: &str, expires_at: i64) -> Result<()> {
        on_pool!(self, write, |p| {
            sqlx::query(
                "INSERT INTO email_codes (email, code_hash, expires_at, attempts, created_at) VALUES ($1, $2, $3, 0, $4) \
                 ON CONFLICT (email) DO UPDATE SET code_hash = excluded.code_hash, expires_at = excluded.expires_at, \
                   attempts = 0, created_at = excluded.created_at",
            )
            .bind(email)
            .bind(code_hash)
            .bind(expires_at)
            .bind(now_ms())
            .execute(p)
            .await?;
        });
        Ok(())
    }

    pub async fn email_code(&self, email: &str) -> Result<Option<EmailCode>> {
        on_pool!(self, write, |p| {
            let row = sqlx::query("SELECT code_hash, expires_at, attempts FROM email_codes WHERE email = $1")
                .bind(email)
                .fetch_optional(p)
                .await?;
            row.map(|r| Ok(EmailCode { code_hash: r.try_get(0)?, expires_at: r.try_get(1)?, attempts: r.try_get(2)? }))
                .transpose()
        })
    }

    /// Counts a wrong guess.
    pub async fn bump_email_attempts(&self, email: &str) -> Result<()> {
        on_pool!(self, write, |p| {
            sqlx::query("UPDATE email_codes SET attempts = attempts + 1 WHERE email = $1")
                .bind(email)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// Consumes the code of `email` (single use). False when it was already consumed.
    pub async fn delete_email_code(&self, email: &str) -> Result<bool> {
        on_pool!(self, write, |p| {
            let done = sqlx::query("DELETE FROM email_codes WHERE email = $1").bind(email).execute(p).await?;
            Ok(done.rows_affected() == 1)
        })
    }
}
