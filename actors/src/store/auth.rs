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
    pub id: i64,
    pub code_hash: String,
    pub expires_at: i64,
    pub attempts: i64,
}

/// Revokes the family `$family` whose refresh token was used twice, inside transaction `$tx`.
macro_rules! revoke_reused {
    ($tx:expr, $family:expr, $now:expr) => {
        sqlx::query("UPDATE auth_families SET revoked_at = $1, revoked_reason = 'refresh token reused' WHERE id = $2")
            .bind($now)
            .bind($family)
            .execute(&mut *$tx)
            .await?
    };
}

impl EmailCode {
    /// From the columns `id, code_hash, expires_at, attempts`.
    fn from_row<R: Row>(r: &R) -> std::result::Result<EmailCode, sqlx::Error>
    where
        usize: sqlx::ColumnIndex<R>,
        i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        Ok(EmailCode {
            id: r.try_get(0)?,
            code_hash: r.try_get(1)?,
            expires_at: r.try_get(2)?,
            attempts: r.try_get(3)?,
        })
    }
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
                revoke_reused!(tx, &family, now);
                tx.commit().await?;
                return Ok(RefreshUse::Reused { family, user });
            }
            // Compare-and-set: of two concurrent uses (on PostgreSQL both may have read the
            // token unused), only one marks it; the other is a reuse.
            let marked =
                sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL")
                    .bind(now)
                    .bind(token_hash)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            if marked != 1 {
                revoke_reused!(tx, &family, now);
                tx.commit().await?;
                return Ok(RefreshUse::Reused { family, user });
            }
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

    /// Stores a new code for `email` unless `max_live` codes of it are already pending (alive
    /// and not worn out by `max_attempts` guesses): earlier codes stay valid. False when refused.
    pub async fn put_email_code(
        &self,
        email: &str,
        code_hash: &str,
        expires_at: i64,
        max_attempts: i64,
        max_live: i64,
    ) -> Result<bool> {
        let now = now_ms();
        on_pool!(self, write, |p| {
            // Codes long dead are of no use, not even to say why a guess failed.
            sqlx::query("DELETE FROM email_codes WHERE email = $1 AND expires_at <= $2")
                .bind(email)
                .bind(now - 3_600_000)
                .execute(p)
                .await?;
            let done = sqlx::query(
                "INSERT INTO email_codes (email, code_hash, expires_at, attempts, created_at) \
                 SELECT $1, $2, $3, 0, $4 WHERE (SELECT COUNT(*) FROM email_codes \
                   WHERE email = $1 AND expires_at > $4 AND attempts < $5) < $6",
            )
            .bind(email)
            .bind(code_hash)
            .bind(expires_at)
            .bind(now)
            .bind(max_attempts)
            .bind(max_live)
            .execute(p)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// The codes of `email`, oldest first (live or not).
    pub async fn email_codes(&self, email: &str) -> Result<Vec<EmailCode>> {
        on_pool!(self, write, |p| {
            let rows =
                sqlx::query("SELECT id, code_hash, expires_at, attempts FROM email_codes WHERE email = $1 ORDER BY id")
                    .bind(email)
                    .fetch_all(p)
                    .await?;
            rows.iter().map(|r| Ok(EmailCode::from_row(r)?)).collect()
        })
    }

    /// Reserves one guess against every live code of `email` (unexpired, fewer than
    /// `max_attempts` guesses) and returns those codes: the guess may be compared with them
    /// only. One conditional `UPDATE … RETURNING`, so concurrent guesses, on any node, never
    /// compare a code more than `max_attempts` times.
    pub async fn reserve_code_guess(&self, email: &str, max_attempts: i64) -> Result<Vec<EmailCode>> {
        on_pool!(self, write, |p| {
            let rows = sqlx::query(
                "UPDATE email_codes SET attempts = attempts + 1 \
                 WHERE email = $1 AND expires_at > $2 AND attempts < $3 \
                 RETURNING id, code_hash, expires_at, attempts",
            )
            .bind(email)
            .bind(now_ms())
            .bind(max_attempts)
            .fetch_all(p)
            .await?;
            rows.iter().map(|r| Ok(EmailCode::from_row(r)?)).collect()
        })
    }

    /// Consumes code `id` of `email` (single use) and drops the address's other codes. False
    /// when another request consumed it first.
    pub async fn consume_email_code(&self, email: &str, id: i64) -> Result<bool> {
        on_pool!(self, write, |p| {
            let done = sqlx::query("DELETE FROM email_codes WHERE id = $1 AND email = $2")
                .bind(id)
                .bind(email)
                .execute(p)
                .await?;
            if done.rows_affected() != 1 {
                return Ok(false);
            }
            sqlx::query("DELETE FROM email_codes WHERE email = $1").bind(email).execute(p).await?;
            Ok(true)
        })
    }

    /// When a login family started (its sign-in), if it exists.
    pub async fn family_created_at(&self, family: &str) -> Result<Option<i64>> {
        on_pool!(self, read, |p| {
            let row = sqlx::query("SELECT created_at FROM auth_families WHERE id = $1")
                .bind(family)
                .fetch_optional(p)
                .await?;
            Ok(row.map(|r| r.get::<i64, _>(0)))
        })
    }

    /// The email address of a user, if any.
    pub async fn user_email(&self, user: UserId) -> Result<Option<String>> {
        on_pool!(self, read, |p| {
            let row = sqlx::query("SELECT email FROM users WHERE id = $1").bind(user.0).fetch_optional(p).await?;
            Ok(row.and_then(|r| r.get::<Option<String>, _>(0)))
        })
    }
}
