//! The token check of every authenticated request and WebSocket (`family_user_and_ban`): the
//! user of a login family that is not revoked, with their ban in force. Checks that arrive while
//! one is being read are read together: the first check of a burst starts a task that reads
//! every waiting family in one query (at most `MAX_BATCH` a query) until none waits. A quiet node
//! reads each check on its own, as before; a reconnect storm's thousands of checks become a few
//! hundred reads instead of each waiting its turn for one of the read pool's connections.

use super::moderation::{Ban, ban_of};
use super::{Inner, Store, on_pool, rows};
use crate::error::{Error, Result};
use confab_schemas::{UserRow, now_ms};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Families one query reads at most.
const MAX_BATCH: usize = 256;

type Answer = Result<Option<(UserRow, Option<Ban>)>>;

/// The checks waiting to be read, and whether a task is reading them.
#[derive(Default)]
pub(super) struct FamilyReads {
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<(String, oneshot::Sender<Answer>)>,
    reading: bool,
}

impl std::fmt::Debug for FamilyReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FamilyReads").finish_non_exhaustive()
    }
}

impl FamilyReads {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Lets the next check start a reader again if the reading task is dropped mid-read (its
/// runtime shutting down); the checks it held fall back to a read of their own.
struct Reading {
    reads: Arc<FamilyReads>,
    done: bool,
}

impl Drop for Reading {
    fn drop(&mut self) {
        if !self.done {
            let mut q = self.reads.lock();
            q.reading = false;
            q.waiting.clear();
        }
    }
}

impl Store {
    /// The user of a login family that is not revoked, with their ban in force: what every
    /// authenticated request reads (together with the checks that arrive meanwhile).
    pub async fn family_user_and_ban(&self, family: &str) -> Answer {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut q = self.families.lock();
            q.waiting.push((family.to_owned(), tx));
            !std::mem::replace(&mut q.reading, true)
        };
        if start {
            let store = self.clone();
            tokio::spawn(async move { store.read_waiting_families().await });
        }
        match rx.await {
            Ok(answer) => answer,
            Err(_) => self.families_users_and_bans(&[family]).await.map(|mut found| found.remove(family)),
        }
    }

    /// Reads the waiting checks, a batch at a time, until none waits.
    async fn read_waiting_families(&self) {
        let mut reading = Reading { reads: self.families.clone(), done: false };
        loop {
            let batch: Vec<(String, oneshot::Sender<Answer>)> = {
                let mut q = self.families.lock();
                if q.waiting.is_empty() {
                    q.reading = false;
                    reading.done = true;
                    return;
                }
                let n = q.waiting.len().min(MAX_BATCH);
                q.waiting.drain(..n).collect()
            };
            let mut families: Vec<&str> = batch.iter().map(|(f, _)| f.as_str()).collect();
            families.sort_unstable();
            families.dedup();
            match self.families_users_and_bans(&families).await {
                Ok(found) => {
                    for (family, tx) in batch {
                        let _ = tx.send(Ok(found.get(family.as_str()).cloned()));
                    }
                }
                Err(e) => {
                    let e = Arc::new(e);
                    for (_, tx) in batch {
                        let _ = tx.send(Err(Error::Shared(e.clone())));
                    }
                }
            }
        }
    }

    /// `family_user_and_ban` for several families (without repeats) in one query; families not
    /// found (or revoked) are absent.
    async fn families_users_and_bans(&self, families: &[&str]) -> Result<HashMap<String, (UserRow, Option<Ban>)>> {
        let marks: Vec<String> = (0..families.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT f.id AS family, u.id, u.username, u.role, u.created_at, u.password_hash, \
               (b.user_id IS NOT NULL) AS banned, b.reason AS ban_reason, b.by_id AS ban_by, \
               b.created_at AS ban_at, b.expires_at AS ban_expires \
             FROM auth_families f JOIN users u ON u.id = f.user_id \
               LEFT JOIN user_bans b ON b.user_id = u.id AND (b.expires_at IS NULL OR b.expires_at > $1) \
             WHERE f.revoked_at IS NULL AND f.id IN ({})",
            marks.join(", ")
        );
        let now = now_ms();
        let mut found = HashMap::with_capacity(families.len());
        on_pool!(self, read, |p| {
            // Audited: the statement's only variable part is its numbered placeholders.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(now);
            for f in families {
                q = q.bind(*f);
            }
            for r in q.fetch_all(p).await? {
                use sqlx::Row;
                let family: String = r.try_get("family")?;
                if let std::collections::hash_map::Entry::Vacant(e) = found.entry(family) {
                    e.insert((rows::user(&r)?, ban_of(&r)?));
                }
            }
        });
        Ok(found)
    }
}
