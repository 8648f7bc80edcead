//! Keeps the PostgreSQL search index's pending list short from outside the writer's commits.
//!
//! The GIN index on `messages.search` takes new entries into a pending list (`fastupdate`);
//! the insert that finds the list over `gin_pending_list_limit` merges the whole list into the
//! index inside its own transaction, which was the batching writer's commit: its p99 went from
//! <= 20 ms to <= 250 ms at 25k msg/s (BENCHMARKS.md). This task merges the list every `every`
//! on a pool connection of its own (`gin_clean_pending_list`), so the list stays far below the
//! limit and the writer's inserts only append to it. An insert that still finds the list over
//! the limit while a merge runs skips its own merge (PostgreSQL takes the merge lock
//! conditionally for inserts), so the writer never waits on this task. The index stays
//! consistent with each commit either way: entries in the pending list are searched too.

use super::{Inner, Store};
use std::time::Duration;
use tracing::warn;

/// The index the writer fills (migration `0009_search`).
const MERGE: &str = "SELECT gin_clean_pending_list('messages_search'::regclass)";

impl Store {
    /// Merges the search index's pending list every `every` until the task is aborted; `None`
    /// when there is nothing to do (SQLite, or search unavailable).
    pub fn spawn_gin_cleaner(&self, every: Duration) -> Option<tokio::task::JoinHandle<()>> {
        let Inner::Postgres(pool) = &self.inner else { return None };
        if !self.search_available() {
            return None;
        }
        let pool = pool.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tick.tick().await;
                match sqlx::query(MERGE).execute(&pool).await {
                    Ok(_) => failing = false,
                    // Logged once per outage: the database may be away for a while.
                    Err(e) if !failing => {
                        failing = true;
                        warn!(err = %e, "merging the search index's pending list failed");
                    }
                    Err(_) => {}
                }
            }
        }))
    }
}
