//! Attempt counters and rate limits shared by every node of a cluster, in the `auth_limits` table.
//!
//! A caller *reserves* before it does the guarded work (compare a password, send a code, create
//! a room): the reservation is one conditional upsert, so a burst of concurrent requests, on one
//! node or many, is counted one by one and no more than the limit get through. Nothing here
//! compares secrets; a limit refused never counts.

use super::{Inner, Store, on_pool};
use crate::error::Result;
use confab_schemas::now_ms;
use sqlx::Row;

/// Exponential backoff of a key: `free` reservations pass, the `free`-th blocks the key for
/// `base_ms`, each further one doubles the block up to `max_ms`. A key quiet for `max_ms` starts
/// over; `clear_limit` (a success) starts it over at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub free: u32,
    pub base_ms: i64,
    pub max_ms: i64,
}

impl Backoff {
    /// How long the `hits`-th failure blocks the key.
    pub fn block_ms(&self, hits: i64) -> i64 {
        if hits < i64::from(self.free) {
            return 0;
        }
        let doublings = (hits - i64::from(self.free)).min(20) as u32;
        self.base_ms.saturating_mul(1 << doublings).min(self.max_ms)
    }
}

/// What a refused reservation says: retry after this many milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after_ms: i64,
}

impl Store {
    /// Reserves one attempt of `key` under `backoff`, counted as a failure until `clear_limit`.
    /// `Ok(hits)` (the attempts counted so far, this one included) or `Err` while the key is
    /// blocked.
    pub async fn reserve_attempt(&self, key: &str, backoff: Backoff) -> Result<std::result::Result<i64, Limited>> {
        let now = now_ms();
        let stale = now - backoff.max_ms;
        on_pool!(self, write, |p| {
            let mut tx = p.begin().await?;
            // A blocked key is left alone (the WHERE); a concurrent reservation waits for this
            // transaction's row lock and then sees the block it sets.
            let hits: Option<i64> = sqlx::query(
                "INSERT INTO auth_limits (key, hits, since, blocked_until) VALUES ($1, 1, $2, 0) \
                 ON CONFLICT (key) DO UPDATE SET \
                   hits = CASE WHEN auth_limits.since <= $3 THEN 1 ELSE auth_limits.hits + 1 END, since = $2 \
                 WHERE auth_limits.blocked_until <= $2 RETURNING hits",
            )
            .bind(key)
            .bind(now)
            .bind(stale)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.get(0));
            let Some(hits) = hits else {
                let until: i64 = sqlx::query("SELECT blocked_until FROM auth_limits WHERE key = $1")
                    .bind(key)
                    .fetch_one(&mut *tx)
                    .await?
                    .get(0);
                tx.commit().await?;
                return Ok(Err(Limited { retry_after_ms: (until - now).max(1) }));
            };
            let block = backoff.block_ms(hits);
            if block > 0 {
                sqlx::query("UPDATE auth_limits SET blocked_until = $2 WHERE key = $1")
                    .bind(key)
                    .bind(now + block)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(Ok(hits))
        })
    }

    /// Counts one event of `key` against `limit` per `window_ms` (a fixed window). `Ok(count)`,
    /// or `Err` when the window's `limit` events have happened.
    pub async fn take_rate(&self, key: &str, limit: u32, window_ms: i64) -> Result<std::result::Result<i64, Limited>> {
        let now = now_ms();
        let expired = now - window_ms;
        on_pool!(self, write, |p| {
            let count: Option<i64> = sqlx::query(
                "INSERT INTO auth_limits (key, hits, since, blocked_until) VALUES ($1, 1, $2, 0) \
                 ON CONFLICT (key) DO UPDATE SET \
                   hits = CASE WHEN auth_limits.since <= $3 THEN 1 ELSE auth_limits.hits + 1 END, \
                   since = CASE WHEN auth_limits.since <= $3 THEN $2 ELSE auth_limits.since END \
                 WHERE auth_limits.since <= $3 OR auth_limits.hits < $4 RETURNING hits",
            )
            .bind(key)
            .bind(now)
            .bind(expired)
            .bind(i64::from(limit))
            .fetch_optional(p)
            .await?
            .map(|r| r.get(0));
            if let Some(count) = count {
                return Ok(Ok(count));
            }
            let since: i64 =
                sqlx::query("SELECT since FROM auth_limits WHERE key = $1").bind(key).fetch_one(p).await?.get(0);
            Ok(Err(Limited { retry_after_ms: (since + window_ms - now).max(1) }))
        })
    }

    /// Forgets `key` (a success ends a backoff).
    pub async fn clear_limit(&self, key: &str) -> Result<()> {
        on_pool!(self, write, |p| {
            sqlx::query("DELETE FROM auth_limits WHERE key = $1").bind(key).execute(p).await?;
        });
        Ok(())
    }

    /// Gives back one reservation of `key` (the attempt succeeded); a block it set stays.
    pub async fn refund_attempt(&self, key: &str) -> Result<()> {
        on_pool!(self, write, |p| {
            sqlx::query("UPDATE auth_limits SET hits = hits - 1 WHERE key = $1 AND hits > 0")
                .bind(key)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// The count a key holds (0 when unknown), for operators and tests.
    pub async fn limit_hits(&self, key: &str) -> Result<i64> {
        on_pool!(self, write, |p| {
            let row = sqlx::query("SELECT hits FROM auth_limits WHERE key = $1").bind(key).fetch_optional(p).await?;
            Ok(row.map(|r| r.get::<i64, _>(0)).unwrap_or(0))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Backoff;

    #[test]
    fn backoff_doubles_after_the_free_attempts_up_to_the_cap() {
        let b = Backoff { free: 3, base_ms: 1000, max_ms: 5000 };
        assert_eq!([1, 2, 3, 4, 5, 6, 40].map(|h| b.block_ms(h)), [0, 0, 1000, 2000, 4000, 5000, 5000]);
    }
}
