//! The batched commit: the only way chat messages and read cursors reach the database.
//!
//! One transaction per batch. It first reads, in one query, the lease epoch and the stored head of
//! every room in the batch (under a share lock on the lease rows on PostgreSQL; SQLite's single
//! writer connection serialises everything anyway). It drops the writes of rooms whose epoch moved
//! on (`Fenced`), checks that each room's writes continue its stored head without a hole (`Gap`),
//! then inserts the rest. So the database itself refuses a gap in a room's sequence, whatever an
//! actor got wrong.
//!
//! The two backends insert differently, each in the way that is cheapest for it (see the profile
//! in BENCHMARKS.md, "Writer"):
//! - SQLite: multi-row `INSERT … VALUES` without `RETURNING`, from a few cached statements (see
//!   `sqlite_insert_sql`), and the room list as one JSON array. sqlx runs SQLite on its own thread
//!   and hands every returned row over a channel, one at a time; instead, the ids are taken from
//!   `last_insert_rowid()`: `messages.id` is `AUTOINCREMENT` and the writer connection is the only
//!   one writing, so the rows of one statement get consecutive ids in the order of its `VALUES`.
//! - PostgreSQL: one `INSERT … SELECT FROM UNNEST($1, …, $8)` with one array per column, so the
//!   statement text never changes (one prepared statement, planned once per connection) however
//!   many rows a batch has, and the room list is one array bound to `= ANY($1)`.
//!
//! Search (when `Store::search_available`): the same transaction indexes what it commits. New
//! messages go into the index in one statement per insert (SQLite: copied into `messages_fts` from
//! the rows just inserted, by their id range; PostgreSQL: the insert fills `messages.search`). An
//! edit re-indexes its message with the new body, a delete takes it out. Edits and deletes take the
//! old words out even when indexing is off, so the index never knows more than storage does.

use super::{Inner, Store};
use crate::error::{Error, Result};
use confab_schemas::{Attachment, Draft, EventKind, RoomId, UserId};
use sqlx::{PgPool, QueryBuilder, Row, SqlitePool};
use std::collections::HashMap;
use std::sync::Arc;

/// A message the room actor has sequenced and wants durable.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub room: RoomId,
    pub epoch: u64,
    pub seq: u64,
    pub sender: UserId,
    pub ts: i64,
    /// What the sender asked for: cid, body, what it replies to, kind and target.
    pub draft: Draft,
    /// Users the message mentions (`@name`), recorded in `mentions` in the same transaction.
    pub mentions: Vec<UserId>,
    /// The files it carries (claimed by the room), stored as JSON in `messages.attachments`.
    pub attachments: Vec<Attachment>,
}

impl NewMessage {
    /// `messages.attachments`: JSON, or NULL for a message without files.
    fn attachments_json(&self) -> Option<String> {
        (!self.attachments.is_empty()).then(|| serde_json::to_string(&self.attachments).unwrap_or_default())
    }
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

/// Read cursors per upsert statement (both backends; 4 binds a row, far below SQLite's 32,766).
const CURSOR_CHUNK: usize = 1000;

/// The read of each room's lease epoch and stored head, on SQLite, for the rooms of `$1` (a JSON
/// array of ids), as one row holding a JSON array of `[room, epoch, head]`: sqlx hands every row
/// of a result from its SQLite thread to the caller's one at a time, and with a row per room that
/// was a hundred thread switches per commit. One statement text whatever the rooms, so it is
/// prepared once.
const SQLITE_READ: &str = "SELECT json_group_array(json_array(l.room_id, l.epoch, \
                           (SELECT MAX(m.seq) FROM messages m WHERE m.room_id = l.room_id))) \
                           FROM room_leases l WHERE l.room_id IN (SELECT value FROM json_each($1))";

/// The same read on PostgreSQL, locking the lease rows until the commit.
const PG_READ: &str = "SELECT l.room_id, l.epoch, (SELECT MAX(m.seq) FROM messages m WHERE m.room_id = l.room_id) \
                       FROM room_leases l WHERE l.room_id = ANY($1) FOR SHARE OF l";

/// `OR ROLLBACK`: a constraint failure (a repeated cid) ends the whole transaction at once, as the
/// batch fails as a whole anyway; so SQLite needs no statement journal to undo just this statement.
/// The chunks that carry no file leave `attachments` out (its NULL default): binding an eleventh
/// NULL for every row cost the saturated writer measurably (BENCHMARKS.md).
const SQLITE_INSERT: &str = "INSERT OR ROLLBACK INTO messages \
                             (room_id, seq, sender_id, cid, body, body_key, reply_to, created_at, kind, target";

/// Columns of a message row in the inserts, without `attachments`.
const COLUMNS: usize = 10;

/// A delete takes the bodies of its message and of that message's edits out of storage, in the
/// transaction that commits it, and its attachments (whose files the sweeper then deletes).
const ERASE: &str = "UPDATE messages SET body = '', body_key = NULL, deleted_at = $3, attachments = NULL \
                     WHERE room_id = $1 AND (seq = $2 OR (kind = 1 AND target = $2))";
/// `ERASE` on PostgreSQL, which also empties the message's search words.
const PG_ERASE: &str = "UPDATE messages SET body = '', body_key = NULL, deleted_at = $3, search = NULL, \
                        attachments = NULL \
                        WHERE room_id = $1 AND (seq = $2 OR (kind = 1 AND target = $2))";
/// A deleted message mentions nobody any more.
const ERASE_MENTIONS: &str = "DELETE FROM mentions WHERE room_id = $1 AND seq = $2";

/// Mentions of the committed messages of a batch, per statement (3 binds a row).
const MENTION_CHUNK: usize = 1000;

/// Records who the committed messages of a batch mention, and erases the deleted ones' bodies
/// (a macro for the same reason as `upsert_cursors`).
macro_rules! mentions_and_erasures {
    ($tx:ident, $msgs:expr, $outcomes:expr, $erase:expr) => {
        let committed = $msgs.iter().zip($outcomes.iter()).filter(|(_, o)| matches!(o, WriteOutcome::Committed { .. }));
        let rows: Vec<(UserId, i64, i64)> =
            committed.flat_map(|(m, _)| m.mentions.iter().map(move |u| (*u, m.room.0, m.seq as i64))).collect();
        for chunk in rows.chunks(MENTION_CHUNK) {
            let mut q = QueryBuilder::new("INSERT INTO mentions (user_id, room_id, seq) ");
            q.push_values(chunk, |mut b, (u, room, seq)| {
                b.push_bind(u.0).push_bind(*room).push_bind(*seq);
            });
            q.push(" ON CONFLICT DO NOTHING");
            q.build().execute(&mut *$tx).await?;
        }
        for m in erasures($msgs, &$outcomes) {
            let target = m.draft.target.unwrap_or(0) as i64;
            sqlx::query($erase).bind(m.room.0).bind(target).bind(m.ts).execute(&mut *$tx).await?;
            sqlx::query(ERASE_MENTIONS).bind(m.room.0).bind(target).execute(&mut *$tx).await?;
        }
    };
}

/// Rows per SQLite insert statement: a power of two (see `sqlite_insert_sql`).
const SQLITE_INSERT_ROWS: usize = 1024;

/// The SQLite insert of `rows` rows (a power of two), cached: with one statement text per batch
/// size, sqlx prepared a new statement for nearly every commit, and preparing an insert of a
/// thousand rows was 5% of the server's CPU in the writer scenario (BENCHMARKS.md). A batch of n
/// rows uses the statement for the next power of two, its unused rows bound to NULL and dropped
/// by the `WHERE`; so the writer uses at most 11 statements per form (with and without the
/// `attachments` column), all prepared once. The rows keep the order of the `VALUES` (a `VALUES`
/// subquery is read in order), so their ids are consecutive.
fn sqlite_insert_sql(rows: usize, files: bool) -> &'static str {
    static SQL: std::sync::OnceLock<[Vec<String>; 2]> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
        [false, true].map(|files| {
            let (extra, columns) = if files { (", attachments", COLUMNS + 1) } else { ("", COLUMNS) };
            (0..=SQLITE_INSERT_ROWS.trailing_zeros())
                .map(|k| {
                    let one = format!("({})", vec!["?"; columns].join(", "));
                    let values = vec![one.as_str(); 1 << k].join(", ");
                    format!("{SQLITE_INSERT}{extra}) SELECT * FROM (VALUES {values}) WHERE column1 IS NOT NULL")
                })
                .collect()
        })
    });
    &all[files as usize][rows.next_power_of_two().trailing_zeros() as usize]
}

/// `$11`: whether to fill `search` (the words of each plain message, for search).
const PG_INSERT: &str = "INSERT INTO messages \
                         (room_id, seq, sender_id, cid, body, body_key, reply_to, created_at, kind, target, search, \
                         attachments) \
                         SELECT r, s, snd, c, b, bk, rt, ts, k, tg, \
                           CASE WHEN $11 AND k = 0 THEN to_tsvector('simple', b) END, att \
                         FROM UNNEST($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::text[], $6::text[], \
                         $7::int8[], $8::int8[], $9::int8[], $10::int8[], $12::text[]) \
                         AS t(r, s, snd, c, b, bk, rt, ts, k, tg, att) \
                         RETURNING id, room_id, seq";

/// SQLite: indexes the plain messages of one insert, by their id range, from the rows just
/// written (so no body is bound twice).
const SQLITE_INDEX: &str = "INSERT INTO messages_fts (rowid, body) SELECT id, body FROM messages \
                            WHERE id >= $1 AND id <= $2 AND kind = 0 AND deleted_at IS NULL";
/// SQLite: takes message `$2` of room `$1` out of the index (an edit or a delete of it).
const SQLITE_UNINDEX: &str =
    "DELETE FROM messages_fts WHERE rowid = (SELECT id FROM messages WHERE room_id = $1 AND seq = $2 AND kind = 0)";
/// SQLite: indexes message `$2` of room `$1` with its edited body `$3`, unless it is deleted.
const SQLITE_REINDEX: &str = "INSERT INTO messages_fts (rowid, body) SELECT id, $3 FROM messages \
                              WHERE room_id = $1 AND seq = $2 AND kind = 0 AND deleted_at IS NULL";
/// PostgreSQL: message `$2` of room `$1` was edited: its words are those of `$4` when indexing
/// (`$3`), none otherwise. A deleted message keeps none.
const PG_REINDEX: &str = "UPDATE messages SET search = CASE WHEN $3 THEN to_tsvector('simple', $4::text) END \
                          WHERE room_id = $1 AND seq = $2 AND kind = 0 AND deleted_at IS NULL";

/// Moves read cursors forward inside `$tx`, in chunks, with the backend's `$upsert` clause (the
/// same statement otherwise; a macro because the two transactions have different types).
macro_rules! upsert_cursors {
    ($tx:ident, $cursors:expr, $upsert:expr) => {
        for chunk in $cursors.chunks(CURSOR_CHUNK) {
            let mut q = QueryBuilder::new(CURSOR_INSERT);
            let now = confab_schemas::now_ms();
            q.push_values(chunk, |mut b, c| {
                b.push_bind(c.user.0).push_bind(c.room.0).push_bind(c.seq as i64).push_bind(now);
            });
            q.push($upsert);
            q.build().execute(&mut *$tx).await?;
        }
    };
}

const CURSOR_INSERT: &str = "INSERT INTO read_cursors (user_id, room_id, seq, updated_at) ";
const SQLITE_CURSOR_UPSERT: &str = " ON CONFLICT (user_id, room_id) DO UPDATE SET \
                                    seq = MAX(read_cursors.seq, excluded.seq), updated_at = excluded.updated_at";
const PG_CURSOR_UPSERT: &str = " ON CONFLICT (user_id, room_id) DO UPDATE SET \
                                seq = GREATEST(read_cursors.seq, excluded.seq), updated_at = excluded.updated_at";

/// A commit slower than this is logged with the time of each of its steps.
const SLOW_COMMIT: std::time::Duration = std::time::Duration::from_millis(100);

/// How long each step of a SQLite commit took: begin, read, insert, cursors, commit (the sync).
struct Phases {
    last: std::time::Instant,
    took: Vec<std::time::Duration>,
}

impl Phases {
    fn start() -> Phases {
        Phases { last: std::time::Instant::now(), took: Vec::with_capacity(5) }
    }

    fn mark(&mut self) {
        let now = std::time::Instant::now();
        self.took.push(now - self.last);
        self.last = now;
    }

    fn warn_if_slow(&self, writes: usize) {
        let total: std::time::Duration = self.took.iter().sum();
        if total >= SLOW_COMMIT {
            let ms: Vec<String> = self.took.iter().map(|d| format!("{:.1}", d.as_secs_f64() * 1e3)).collect();
            tracing::warn!(
                writes,
                total_ms = total.as_secs_f64() * 1e3,
                "slow commit; ms per step (begin, read, insert, cursors, commit): {}",
                ms.join(", ")
            );
        }
    }
}

/// Each room's lease epoch and stored head, as read inside the transaction.
type RoomStates = HashMap<i64, (u64, u64)>;

impl Store {
    /// Commits messages and cursors in one transaction; returns one outcome per message, in order.
    pub async fn commit_batch(&self, msgs: &[NewMessage], cursors: &[CursorWrite]) -> Result<Vec<WriteOutcome>> {
        let cursors = latest_cursors(cursors);
        let mut rooms: Vec<i64> = msgs.iter().map(|m| m.room.0).collect();
        rooms.sort_unstable();
        rooms.dedup();
        match &self.inner {
            Inner::Sqlite { write, .. } => self.commit_sqlite(write, msgs, &rooms, &cursors).await,
            Inner::Postgres(pg) => self.commit_pg(pg, msgs, &rooms, &cursors).await,
        }
    }

    async fn commit_sqlite(
        &self,
        p: &SqlitePool,
        msgs: &[NewMessage],
        rooms: &[i64],
        cursors: &[CursorWrite],
    ) -> Result<Vec<WriteOutcome>> {
        let mut phases = Phases::start();
        let mut tx = p.begin().await?;
        phases.mark();

        let mut states = RoomStates::with_capacity(rooms.len());
        if !rooms.is_empty() {
            let list = serde_json::to_string(rooms).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            let json: String = sqlx::query(SQLITE_READ).bind(list).fetch_one(&mut *tx).await?.try_get(0)?;
            let rows: Vec<(i64, i64, Option<i64>)> =
                serde_json::from_str(&json).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            for (room, epoch, head) in rows {
                states.insert(room, (epoch as u64, head.unwrap_or(0) as u64));
            }
        }

        phases.mark();
        let (mut outcomes, live) = plan(msgs, &states);
        let stored = self.stored_bodies(msgs, &live)?;
        let mut inserted: Vec<(i64, i64)> = Vec::new();
        for (chunk, sealed) in live.chunks(SQLITE_INSERT_ROWS).zip(stored.chunks(SQLITE_INSERT_ROWS)) {
            let files = chunk.iter().any(|&i| !msgs[i].attachments.is_empty());
            let sql = sqlite_insert_sql(chunk.len(), files);
            let mut q = sqlx::query(sql);
            for (&i, (key, body)) in chunk.iter().zip(sealed) {
                let m = &msgs[i];
                q = q
                    .bind(m.room.0)
                    .bind(m.seq as i64)
                    .bind(m.sender.0)
                    .bind(m.draft.cid.clone())
                    .bind(body.clone().unwrap_or_else(|| m.draft.body.clone()))
                    .bind(key.clone())
                    .bind(m.draft.reply_to.map(|s| s as i64))
                    .bind(m.ts)
                    .bind(m.draft.kind.code())
                    .bind(m.draft.target.map(|s| s as i64));
                if files {
                    q = q.bind(m.attachments_json());
                }
            }
            // The statement's unused rows: NULLs.
            for _ in 0..(chunk.len().next_power_of_two() - chunk.len()) * (COLUMNS + files as usize) {
                q = q.bind(None::<i64>);
            }
            let done = q.execute(&mut *tx).await?;
            let n = chunk.len() as i64;
            if done.rows_affected() != n as u64 {
                return Err(Error::Invalid(format!("inserted {} of {n} messages", done.rows_affected())));
            }
            // Consecutive ids, in the order of the VALUES (see the module comment).
            let first = done.last_insert_rowid() - n + 1;
            inserted.push((first, first + n - 1));
            for (k, &i) in chunk.iter().enumerate() {
                outcomes[i] = WriteOutcome::Committed { id: first + k as i64 };
            }
        }

        mentions_and_erasures!(tx, msgs, outcomes, ERASE);
        let index = self.search_available();
        if index {
            for (first, last) in inserted {
                sqlx::query(SQLITE_INDEX).bind(first).bind(last).execute(&mut *tx).await?;
            }
        }
        for (m, edit) in changes(msgs, &outcomes) {
            let target = m.draft.target.unwrap_or(0) as i64;
            sqlx::query(SQLITE_UNINDEX).bind(m.room.0).bind(target).execute(&mut *tx).await?;
            if index && edit {
                let body = &*m.draft.body;
                sqlx::query(SQLITE_REINDEX).bind(m.room.0).bind(target).bind(body).execute(&mut *tx).await?;
            }
        }
        phases.mark();
        upsert_cursors!(tx, cursors, SQLITE_CURSOR_UPSERT);
        phases.mark();
        tx.commit().await?;
        phases.mark();
        phases.warn_if_slow(msgs.len() + cursors.len());
        Ok(outcomes)
    }

    async fn commit_pg(
        &self,
        p: &PgPool,
        msgs: &[NewMessage],
        rooms: &[i64],
        cursors: &[CursorWrite],
    ) -> Result<Vec<WriteOutcome>> {
        let mut tx = p.begin().await?;

        let mut states = RoomStates::with_capacity(rooms.len());
        if !rooms.is_empty() {
            for row in sqlx::query(PG_READ).bind(rooms).fetch_all(&mut *tx).await? {
                states.insert(row.try_get(0)?, (row.try_get::<i64, _>(1)? as u64, head_of(&row)?));
            }
        }

        let (mut outcomes, live) = plan(msgs, &states);
        if !live.is_empty() {
            let stored = self.stored_bodies(msgs, &live)?;
            let n = live.len();
            let (mut room, mut seq, mut sender) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
            let (mut cid, mut body, mut key) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
            let (mut reply_to, mut ts) = (Vec::with_capacity(n), Vec::with_capacity(n));
            let (mut kind, mut target) = (Vec::with_capacity(n), Vec::with_capacity(n));
            let mut attachments = Vec::with_capacity(n);
            for (&i, (k, b)) in live.iter().zip(&stored) {
                let m = &msgs[i];
                room.push(m.room.0);
                seq.push(m.seq as i64);
                sender.push(m.sender.0);
                cid.push(&*m.draft.cid);
                body.push(b.as_deref().unwrap_or(&m.draft.body));
                key.push(k.as_deref());
                reply_to.push(m.draft.reply_to.map(|s| s as i64));
                ts.push(m.ts);
                kind.push(m.draft.kind.code());
                target.push(m.draft.target.map(|s| s as i64));
                attachments.push(m.attachments_json());
            }
            let rows = sqlx::query(PG_INSERT)
                .bind(&room)
                .bind(&seq)
                .bind(&sender)
                .bind(&cid)
                .bind(&body)
                .bind(&key)
                .bind(&reply_to)
                .bind(&ts)
                .bind(&kind)
                .bind(&target)
                .bind(self.search_available())
                .bind(&attachments)
                .fetch_all(&mut *tx)
                .await?;
            let mut ids: HashMap<(i64, i64), i64> = HashMap::with_capacity(rows.len());
            for row in rows {
                ids.insert((row.try_get(1)?, row.try_get(2)?), row.try_get(0)?);
            }
            for i in live {
                if let Some(id) = ids.get(&(msgs[i].room.0, msgs[i].seq as i64)) {
                    outcomes[i] = WriteOutcome::Committed { id: *id };
                }
            }
        }

        mentions_and_erasures!(tx, msgs, outcomes, PG_ERASE);
        let index = self.search_available();
        for (m, edit) in changes(msgs, &outcomes) {
            if edit {
                let target = m.draft.target.unwrap_or(0) as i64;
                let body = &*m.draft.body;
                sqlx::query(PG_REINDEX).bind(m.room.0).bind(target).bind(index).bind(body).execute(&mut *tx).await?;
            }
        }
        upsert_cursors!(tx, cursors, PG_CURSOR_UPSERT);

        tx.commit().await?;
        Ok(outcomes)
    }

    /// Bodies as stored for the `live` messages: `(key id, sealed body)` when encryption is on,
    /// `(None, None)` (the plain body) when it is off.
    #[allow(clippy::type_complexity)]
    fn stored_bodies(&self, msgs: &[NewMessage], live: &[usize]) -> Result<Vec<(Option<Arc<str>>, Option<Arc<str>>)>> {
        match &self.cipher {
            Some(c) => live
                .iter()
                .map(|&i| {
                    let m = &msgs[i];
                    c.seal(m.room.0, m.seq, &m.draft.body).map(|(k, b)| (Some(Arc::from(k)), Some(Arc::from(b))))
                })
                .collect(),
            None => Ok(vec![(None, None); live.len()]),
        }
    }
}

/// A room's stored head from the read's third column (no message yet: 0).
fn head_of<R: Row>(row: &R) -> Result<u64>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(row.try_get::<Option<i64>, _>(2)?.unwrap_or(0) as u64)
}

/// Decides each message against its room's lease epoch and stored head: returns the outcomes
/// (`Fenced` or `Gap` for the refused, a placeholder for the rest) and the indexes to insert.
fn plan(msgs: &[NewMessage], states: &RoomStates) -> (Vec<WriteOutcome>, Vec<usize>) {
    let mut outcomes = vec![WriteOutcome::Fenced; msgs.len()];
    let mut live: Vec<usize> = Vec::with_capacity(msgs.len());
    // The seq each room expects next; `None` once it hit a hole: nothing after it in this batch
    // may commit.
    let mut next: HashMap<i64, Option<u64>> = HashMap::with_capacity(states.len());
    for (i, m) in msgs.iter().enumerate() {
        let Some(&(epoch, head)) = states.get(&m.room.0) else { continue };
        if epoch != m.epoch {
            continue;
        }
        let expected = next.entry(m.room.0).or_insert(Some(head + 1));
        if *expected == Some(m.seq) {
            *expected = Some(m.seq + 1);
            live.push(i);
        } else {
            *expected = None;
            outcomes[i] = WriteOutcome::Gap;
        }
    }
    (outcomes, live)
}

/// The deletes of a batch that commit: each erases its message's body.
fn erasures<'a>(msgs: &'a [NewMessage], outcomes: &'a [WriteOutcome]) -> impl Iterator<Item = &'a NewMessage> {
    msgs.iter()
        .zip(outcomes)
        .filter(|(m, o)| {
            m.draft.kind == EventKind::Delete && m.draft.target.is_some() && matches!(o, WriteOutcome::Committed { .. })
        })
        .map(|(m, _)| m)
}

/// The edits (`true`) and deletes (`false`) of a batch that commit, in order: each changes
/// what the search index holds for its target.
fn changes<'a>(msgs: &'a [NewMessage], outcomes: &'a [WriteOutcome]) -> impl Iterator<Item = (&'a NewMessage, bool)> {
    msgs.iter()
        .zip(outcomes)
        .filter(|(m, o)| {
            matches!(m.draft.kind, EventKind::Edit | EventKind::Delete)
                && m.draft.target.is_some()
                && matches!(o, WriteOutcome::Committed { .. })
        })
        .map(|(m, _)| (m, m.draft.kind == EventKind::Edit))
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
