//! Revocations for every node to apply: `confab admin` writes one row per account whose open
//! sockets must close, and each node polls the rows it has not applied yet (`confab::revocations`).
//!
//! Rows are stamped by the database's clock on PostgreSQL (one clock for every node and every
//! operator's shell) and by the host's on SQLite (the CLI and the node share the file, so the
//! host). Rows older than a day are deleted when a new one is written.

use super::{Inner, Store, on_pool};
use crate::error::Result;
use confab_schemas::{UserId, now_ms};
use sqlx::Row;

/// How long a revocation row is kept.
const KEEP_MS: i64 = 24 * 3600 * 1000;

/// One revocation: close every open socket of `user`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub id: i64,
    pub user: UserId,
    /// Milliseconds since the Unix epoch, by the database's clock (see the module doc).
    pub at: i64,
    pub reason: String,
    /// The client may reconnect at once (its login still holds).
    pub reconnect: bool,
}

impl Store {
    /// Records that every open socket of `user` must close, on every node.
    pub async fn add_revocation(&self, user: UserId, reason: &str, reconnect: bool) -> Result<()> {
        match &self.inner {
            Inner::Sqlite { write, .. } => {
                let now = now_ms();
                sqlx::query("DELETE FROM revocations WHERE at < $1").bind(now - KEEP_MS).execute(write).await?;
                sqlx::query("INSERT INTO revocations (user_id, at, reason, reconnect) VALUES ($1, $2, $3, $4)")
                    .bind(user.0)
                    .bind(now)
                    .bind(reason)
                    .bind(reconnect)
                    .execute(write)
                    .await?;
            }
            Inner::Postgres(pg) => {
                const NOW: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";
                sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM revocations WHERE at < {NOW} - $1")))
                    .bind(KEEP_MS)
                    .execute(pg)
                    .await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO revocations (user_id, at, reason, reconnect) VALUES ($1, {NOW}, $2, $3)"
                )))
                .bind(user.0)
                .bind(reason)
                .bind(reconnect)
                .execute(pg)
                .await?;
            }
        }
        Ok(())
    }

    /// Revocations stamped after `after` (milliseconds), oldest first.
    pub async fn revocations_since(&self, after: i64) -> Result<Vec<Revocation>> {
        on_pool!(self, read, |p| {
            let rows =
                sqlx::query("SELECT id, user_id, at, reason, reconnect FROM revocations WHERE at > $1 ORDER BY at, id")
                    .bind(after)
                    .fetch_all(p)
                    .await?;
            rows.iter()
                .map(|r| {
                    Ok(Revocation {
                        id: r.try_get(0)?,
                        user: UserId(r.try_get(1)?),
                        at: r.try_get(2)?,
                        reason: r.try_get(3)?,
                        reconnect: r.try_get(4)?,
                    })
                })
                .collect()
        })
    }
}
