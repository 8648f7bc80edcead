//! The batched commit: the only way chat messages and read cursors reach the database.
//!
//! One transaction per batch. It first reads, in one query, the lease epoch and the stored head of
//! every room in the batch (under a share lock on the lease rows on PostgreSQL; SQLite's single
//! writer connection serialises everything anyway). It drops the writes of rooms whose epoch moved
//! on (`Fenced`), checks that each room's writes continue its stored head without a hole (`Gap`),
//! then inserts the rest with multi-row inserts. So the database itself refuses a gap in a room's
//! sequence, whatever an actor got wrong.

use super::{Backend, Inner, Store, on_pool};
use crate::error::Result;
use confab_schemas::{RoomId, UserId};
use sqlx::{QueryBuilder, Row};
use std::collections::HashMap;
use std::sync::Arc;

/// A message the room actor has sequenced and wants durable.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub room: RoomId,
    pub epoch: u64,
    pub seq: u64,
    pub sender: UserId,
    pub cid: Arc<str>,
    pub body: Arc<str>,
    pub reply_to: Option<u64>,
    pub ts: i64,
}

/// A read cursor to move forward (never backward).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorWrite {
    pub user: UserId,
    pub room: RoomId,
    pub seq: u64,
}

/// What became of one message of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Durable, with its database id.
    Committed { id: i64 },
    /// Refused: the room's lease has a newer epoch, so this writer's room actor is stale.
    Fenced,
    /// Refused: the seq does not follow the room's stored head (an earlier write was lost), so
    /// committing it would leave a gap.
    Gap,
}

/// Rows per multi-row insert; 8 binds a row keeps far below SQLite's 32,766 bind limit.
const INSERT_CHUNK: usize = 1000;

/// The rows of `$head <room ids…> $tail` over every room of the batch, chunked like inserts.
macro_rules! rows_for_rooms {
    ($tx:ident, $rooms:expr, $head:expr, $tail:expr) => {{
        let mut rows = Vec::new();
        for chunk in $rooms.chunks(INSERT_CHUNK) {
            let mut q = QueryBuilder::new($head);
            let mut list = q.separated(", ");
            for room in chunk {
                list.push_bind(*room);
            }
            q.push($tail);
            rows.extend(q.build().fetch_all(&mut *$tx).await?);
        }
        rows
    }};
}

impl Store {
    /// Commits messages and cursors in one transaction; returns one outcome per message, in order.
    pub async fn commit_batch(&self, msgs: &[NewMessage], cursors: &[CursorWrite]) -> Result<Vec<WriteOutcome>> {
        let backend = self.backend();
        let cursors = latest_cursors(cursors);
        on_pool!(self, write, |p| {
            let mut tx = p.begin().await?;

            let mut rooms: Vec<i64> = msgs.iter().map(|m| m.room.0).collect();
            rooms.sort_unstable();
            rooms.dedup();
            // One round trip for both checks: each room's lease epoch and its stored head.
            let lock = if backend == Backend::Postgres { ") FOR SHARE OF l" } else { ")" };
            let read = "SELECT l.room_id, l.epoch, (SELECT MAX(m.seq) FROM messages m WHERE m.room_id = l.room_id) \
                        FROM room_leases l WHERE l.room_id IN (";
            let mut epochs: HashMap<i64, u64> = HashMap::with_capacity(rooms.len());
            let mut heads: HashMap<i64, u64> = HashMap::with_capacity(rooms.len());
            for row in rows_for_rooms!(tx, rooms, read, lock) {
                let room: i64 = row.try_get(0)?;
                epochs.insert(room, row.try_get::<i64, _>(1)? as u64);
                heads.insert(room, row.try_get::<Option<i64>, _>(2)?.unwrap_or(0) as u64);
            }

            let mut outcomes = vec![WriteOutcome::Fenced; msgs.len()];
            let mut live: Vec<usize> = Vec::with_capacity(msgs.len());
            let mut next: HashMap<i64, Option<u64>> = HashMap::with_capacity(rooms.len());
            for (i, m) in msgs.iter().enumerate() {
                if epochs.get(&m.room.0) != Some(&m.epoch) {
                    continue;
                }
                // `None` once a room hit a hole: nothing after it in this batch may commit.
                let expected =
                    next.entry(m.room.0).or_insert_with(|| Some(heads.get(&m.room.0).copied().unwrap_or(0) + 1));
                if *expected == Some(m.seq) {
                    *expected = Some(m.seq + 1);
                    live.push(i);
                } else {
                    *expected = None;
                    outcomes[i] = WriteOutcome::Gap;
                }
            }
            let mut ids: HashMap<(i64, i64), i64> = HashMap::with_capacity(live.len());
            // Bodies as stored: sealed under the current key when encryption is on.
            let stored: Vec<(Option<String>, Option<String>)> = match &self.cipher {
                Some(c) => live
                    .iter()
                    .map(|&i| c.seal(msgs[i].room.0, msgs[i].seq, &msgs[i].body).map(|(k, b)| (Some(k), Some(b))))
                    .collect::<Result<_>>()?,
                None => vec![(None, None); live.len()],
            };
            for (n, chunk) in live.chunks(INSERT_CHUNK).enumerate() {
                let mut q = QueryBuilder::new(
                    "INSERT INTO messages (room_id, seq, sender_id, cid, body, body_key, reply_to, created_at) ",
                );
                let sealed = &stored[n * INSERT_CHUNK..];
                q.push_values(chunk.iter().zip(sealed), |mut b, (&i, (key, body))| {
                    let m = &msgs[i];
                    b.push_bind(m.room.0)
                        .push_bind(m.seq as i64)
                        .push_bind(m.sender.0)
                        .push_bind(&*m.cid)
                        .push_bind(body.as_deref().unwrap_or(&m.body))
                        .push_bind(key.as_deref())
                        .push_bind(m.reply_to.map(|s| s as i64))
                        .push_bind(m.ts);
                });
                q.push(" RETURNING id, room_id, seq");
                for row in q.build().fetch_all(&mut *tx).await? {
                    ids.insert((row.try_get(1)?, row.try_get(2)?), row.try_get(0)?);
                }
            }
            for i in live {
                if let Some(id) = ids.get(&(msgs[i].room.0, msgs[i].seq as i64)) {
                    outcomes[i] = WriteOutcome::Committed { id: *id };
                }
            }

            for chunk in cursors.chunks(INSERT_CHUNK) {
                let mut q = QueryBuilder::new("INSERT INTO read_cursors (user_id, room_id, seq, updated_at) ");
                let now = confab_schemas::now_ms();
                q.push_values(chunk, |mut b, c| {
                    b.push_bind(c.user.0).push_bind(c.room.0).push_bind(c.seq as i64).push_bind(now);
                });
                q.push(match backend {
                    Backend::Sqlite => {
                        " ON CONFLICT (user_id, room_id) DO UPDATE SET seq = MAX(read_cursors.seq, excluded.seq), \
                         updated_at = excluded.updated_at"
                    }
                    Backend::Postgres => {
                        " ON CONFLICT (user_id, room_id) DO UPDATE SET seq = GREATEST(read_cursors.seq, excluded.seq), \
                         updated_at = excluded.updated_at"
                    }
                });
                q.build().execute(&mut *tx).await?;
            }

            tx.commit().await?;
            Ok(outcomes)
        })
    }
}

/// One cursor per (user, room), the highest: PostgreSQL refuses to upsert a row twice in one statement.
fn latest_cursors(cursors: &[CursorWrite]) -> Vec<CursorWrite> {
    let mut best: HashMap<(UserId, RoomId), u64> = HashMap::new();
    for c in cursors {
        let e = best.entry((c.user, c.room)).or_insert(0);
        *e = (*e).max(c.seq);
    }
    best.into_iter().map(|((user, room), seq)| CursorWrite { user, room, seq }).collect()
}
