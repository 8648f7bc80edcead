//! The stranger chat in storage (`match_queue`, `stranger_chats`, `stranger_seats`,
//! `stranger_avoid`; migration 0014). The queue is the record of who waits: the match pool keeps
//! nothing a SIGKILL could lose. A pairing is one transaction that takes both people out of the
//! queue (a row already gone, taken by another pairing or left, makes it do nothing), checks
//! blocks, makes the room (kind `stranger`, its two members), seats both (a user's seat is a
//! primary key: at most one stranger chat each, whichever pool made the pair) and remembers the
//! pair so it is not made again soon.

use super::{Inner, Store, on_pool, rows};
use crate::error::{Error, Result};
use confab_schemas::{RoomId, RoomRow, Seats, UserId, now_ms};
use sqlx::Row;

/// The session id of a queue row whose connection closed (session ids start at 1).
pub const DETACHED: u64 = 0;

/// Someone waiting in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    pub user: UserId,
    /// Normalised, at most `stranger::MAX_INTERESTS`.
    pub interests: Vec<String>,
    /// After the wait, a stranger with fewer shared interests (or none) will do.
    pub fewer: bool,
    /// When they entered (kept when they send `match` again: their place in the queue).
    pub entered_at: i64,
    /// When their session last said they still wait.
    pub seen_at: i64,
    pub node: String,
    /// `DETACHED` while its connection is gone (the pool skips it).
    pub session: u64,
}

/// A stranger chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrangerChat {
    pub room: RoomId,
    pub seats: Seats,
    pub shared: Vec<String>,
    pub created_at: i64,
    /// When each seat left.
    pub left: [Option<i64>; 2],
    pub reported_at: Option<i64>,
}

/// What a pairing did.
#[derive(Debug, Clone)]
pub enum Pairing {
    Paired(RoomRow),
    /// One of them is no longer in the queue (left, or paired by another pool).
    Gone,
    /// One of them blocked the other.
    Blocked,
    /// One of them sits in a stranger chat already.
    Seated,
}

fn join_lines(v: &[String]) -> String {
    v.join("\n")
}

fn split_lines(s: &str) -> Vec<String> {
    s.split('\n').filter(|t| !t.is_empty()).map(str::to_owned).collect()
}

macro_rules! chat_of_row {
    ($r:expr) => {{
        let r = $r;
        StrangerChat {
            room: RoomId(r.try_get("room_id")?),
            seats: Seats([UserId(r.try_get("user_a")?), UserId(r.try_get("user_b")?)]),
            shared: split_lines(&r.try_get::<String, _>("shared")?),
            created_at: r.try_get("created_at")?,
            left: [r.try_get("left_a")?, r.try_get("left_b")?],
            reported_at: r.try_get("reported_at")?,
        }
    }};
}

/// Keeps `$a` from being paired with `$b` until `$until`, in transaction `$tx`.
macro_rules! avoid_in {
    ($tx:ident, $a:expr, $b:expr, $until:expr) => {
        sqlx::query(
            "INSERT INTO stranger_avoid (user_id, other_id, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, other_id) DO UPDATE SET expires_at = CASE WHEN excluded.expires_at > stranger_avoid.expires_at \
             THEN excluded.expires_at ELSE stranger_avoid.expires_at END",
        )
        .bind($a.0)
        .bind($b.0)
        .bind($until)
        .execute(&mut *$tx)
        .await?
    };
}

const CHAT_COLUMNS: &str = "c.room_id, c.user_a, c.user_b, c.shared, c.created_at, c.left_a, c.left_b, c.reported_at";

impl Store {
    /// Puts `e` in the queue, or renews its row (interests, session, `seen_at`), keeping the
    /// time it first entered.
    pub async fn enter_queue(&self, e: &QueueEntry) -> Result<()> {
        on_pool!(self, write, |p| {
            sqlx::query(
                "INSERT INTO match_queue (user_id, interests, fewer, entered_at, seen_at, node_id, session_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (user_id) DO UPDATE SET \
                 interests = excluded.interests, fewer = excluded.fewer, seen_at = excluded.seen_at, \
                 node_id = excluded.node_id, session_id = excluded.session_id",
            )
            .bind(e.user.0)
            .bind(join_lines(&e.interests))
            .bind(e.fewer)
            .bind(e.entered_at)
            .bind(e.seen_at)
            .bind(&e.node)
            .bind(e.session as i64)
            .execute(p)
            .await?;
            Ok(())
        })
    }

    /// Takes `user` out of the queue; true if they were in it.
    pub async fn leave_queue(&self, user: UserId) -> Result<bool> {
        on_pool!(self, write, |p| {
            let done = sqlx::query("DELETE FROM match_queue WHERE user_id = $1").bind(user.0).execute(p).await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// The session `session` of `node` that put `user` in the queue closed: their row is handed
    /// to `next`, another session of theirs on `node` that waits too, or else detached (session
    /// 0, `seen_at` now): the pool skips it, a new connection of theirs within the grace takes it
    /// over (`take_over_queue`), and `prune_queue` deletes it after. A row another session took
    /// over already is left alone. True if the row was this session's.
    pub async fn release_queue_session(
        &self,
        user: UserId,
        node: &str,
        session: u64,
        next: Option<u64>,
    ) -> Result<bool> {
        on_pool!(self, write, |p| {
            let done = sqlx::query(
                "UPDATE match_queue SET session_id = $4, seen_at = $5 \
                 WHERE user_id = $1 AND node_id = $2 AND session_id = $3",
            )
            .bind(user.0)
            .bind(node)
            .bind(session as i64)
            .bind(next.unwrap_or(DETACHED) as i64)
            .bind(now_ms())
            .execute(p)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Gives `user`'s queue row, if any, to the session `session` of `node` (a new connection of
    /// theirs), keeping their interests and place; a detached row only if it was detached after
    /// `detached_since` (else it is deleted). The row as it is now.
    pub async fn take_over_queue(
        &self,
        user: UserId,
        node: &str,
        session: u64,
        detached_since: i64,
    ) -> Result<Option<QueueEntry>> {
        let Some(mut entry) = self.queue_entry(user).await? else { return Ok(None) };
        let now = now_ms();
        on_pool!(self, write, |p| {
            if entry.session == DETACHED && entry.seen_at < detached_since {
                sqlx::query("DELETE FROM match_queue WHERE user_id = $1 AND session_id = $2 AND seen_at = $3")
                    .bind(user.0)
                    .bind(DETACHED as i64)
                    .bind(entry.seen_at)
                    .execute(p)
                    .await?;
                return Ok(None);
            }
            // Only the row as read (`entered_at` is its identity: a later entry is another).
            let done = sqlx::query(
                "UPDATE match_queue SET node_id = $2, session_id = $3, seen_at = $4 \
                 WHERE user_id = $1 AND entered_at = $5",
            )
            .bind(user.0)
            .bind(node)
            .bind(session as i64)
            .bind(now)
            .bind(entry.entered_at)
            .execute(p)
            .await?;
            if done.rows_affected() == 0 {
                return Ok(None);
            }
        });
        entry.node = node.to_owned();
        entry.session = session;
        entry.seen_at = now;
        Ok(Some(entry))
    }

    /// Whether `user` waits in the queue.
    pub async fn queue_entry(&self, user: UserId) -> Result<Option<QueueEntry>> {
        Ok(self.queue_where(Some(user), 0).await?.pop())
    }

    /// Everyone in the queue seen since `seen_since`, first come first.
    pub async fn queue(&self, seen_since: i64) -> Result<Vec<QueueEntry>> {
        self.queue_where(None, seen_since).await
    }

    async fn queue_where(&self, user: Option<UserId>, seen_since: i64) -> Result<Vec<QueueEntry>> {
        on_pool!(self, write, |p| {
            let rows = sqlx::query(
                "SELECT user_id, interests, fewer, entered_at, seen_at, node_id, session_id FROM match_queue \
                 WHERE ($1 IS NULL OR user_id = $1) AND seen_at >= $2 ORDER BY entered_at, user_id",
            )
            .bind(user.map(|u| u.0))
            .bind(seen_since)
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(QueueEntry {
                        user: UserId(r.try_get(0)?),
                        interests: split_lines(&r.try_get::<String, _>(1)?),
                        fewer: r.try_get(2)?,
                        entered_at: r.try_get(3)?,
                        seen_at: r.try_get(4)?,
                        node: r.try_get(5)?,
                        session: r.try_get::<i64, _>(6)? as u64,
                    })
                })
                .collect()
        })
    }

    /// How many wait (seen since `seen_since`, connected).
    pub async fn queue_len(&self, seen_since: i64) -> Result<u64> {
        on_pool!(self, read, |p| {
            let n: i64 = sqlx::query("SELECT COUNT(*) FROM match_queue WHERE seen_at >= $1 AND session_id <> $2")
                .bind(seen_since)
                .bind(DETACHED as i64)
                .fetch_one(p)
                .await?
                .get(0);
            Ok(n as u64)
        })
    }

    /// Deletes queue rows not seen since `before` (their sessions are gone), and detached rows
    /// detached before `detached_before` (nobody came back for them); how many.
    pub async fn prune_queue(&self, before: i64, detached_before: i64) -> Result<u64> {
        on_pool!(self, write, |p| {
            let done = sqlx::query("DELETE FROM match_queue WHERE seen_at < $1 OR (session_id = $3 AND seen_at < $2)")
                .bind(before)
                .bind(detached_before)
                .bind(DETACHED as i64)
                .execute(p)
                .await?;
            Ok(done.rows_affected())
        })
    }

    /// The stranger chat `user` sits in.
    pub async fn stranger_seat(&self, user: UserId) -> Result<Option<StrangerChat>> {
        on_pool!(self, write, |p| {
            let sql = format!(
                "SELECT {CHAT_COLUMNS} FROM stranger_seats s JOIN stranger_chats c ON c.room_id = s.room_id \
                 WHERE s.user_id = $1"
            );
            let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(user.0).fetch_optional(p).await?;
            Ok(match row {
                Some(r) => Some(chat_of_row!(&r)),
                None => None,
            })
        })
    }

    /// The stranger chats some of `users` sit in, by user.
    pub async fn stranger_seats_of(&self, users: &[UserId]) -> Result<Vec<(UserId, StrangerChat)>> {
        let mut out = Vec::new();
        for chunk in users.chunks(500) {
            let list: Vec<String> = chunk.iter().map(|u| u.0.to_string()).collect();
            // Ids are numbers we hold, never text from a client.
            let sql = format!(
                "SELECT s.user_id, {CHAT_COLUMNS} FROM stranger_seats s JOIN stranger_chats c ON c.room_id = s.room_id \
                 WHERE s.user_id IN ({})",
                list.join(",")
            );
            on_pool!(self, write, |p| {
                for r in &sqlx::query(sqlx::AssertSqlSafe(sql.clone())).fetch_all(p).await? {
                    out.push((UserId(r.try_get("user_id")?), chat_of_row!(r)));
                }
            });
        }
        Ok(out)
    }

    /// Renews `seen_at` of the queue rows `node`'s sessions of `users` put there (they still
    /// wait).
    pub async fn renew_queue(&self, node: &str, users: &[UserId]) -> Result<()> {
        let now = now_ms();
        for chunk in users.chunks(500) {
            let list: Vec<String> = chunk.iter().map(|u| u.0.to_string()).collect();
            // Ids are numbers we hold, never text from a client.
            let sql =
                format!("UPDATE match_queue SET seen_at = $2 WHERE node_id = $1 AND user_id IN ({})", list.join(","));
            on_pool!(self, write, |p| {
                sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(node).bind(now).execute(p).await?;
            });
        }
        Ok(())
    }

    /// The stranger chat of `room`, if it is one.
    pub async fn stranger_chat(&self, room: RoomId) -> Result<Option<StrangerChat>> {
        on_pool!(self, read, |p| {
            let sql = format!("SELECT {CHAT_COLUMNS} FROM stranger_chats c WHERE c.room_id = $1");
            let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(room.0).fetch_optional(p).await?;
            Ok(match row {
                Some(r) => Some(chat_of_row!(&r)),
                None => None,
            })
        })
    }

    /// Pairs `a` and `b` (see the module doc); `avoid_ms`: how long they are not paired again.
    pub async fn pair_strangers(
        &self,
        a: &QueueEntry,
        b: &QueueEntry,
        shared: &[String],
        avoid_ms: i64,
    ) -> Result<Pairing> {
        let (a, b) = if a.user < b.user { (a, b) } else { (b, a) };
        let now = now_ms();
        let key = format!("\u{2}stranger\u{2}{},{},{now}", a.user, b.user);
        on_pool!(self, write, |p| {
            async {
                let mut tx = p.begin().await?;
                for e in [a, b] {
                    let done = sqlx::query("DELETE FROM match_queue WHERE user_id = $1 AND entered_at = $2")
                        .bind(e.user.0)
                        .bind(e.entered_at)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Ok(Pairing::Gone);
                    }
                }
                let blocked = sqlx::query(
                    "SELECT 1 FROM blocks WHERE (user_id = $1 AND blocked_id = $2) OR (user_id = $2 AND blocked_id = $1)",
                )
                .bind(a.user.0)
                .bind(b.user.0)
                .fetch_optional(&mut *tx)
                .await?;
                if blocked.is_some() {
                    return Ok(Pairing::Blocked);
                }
                let id: i64 = sqlx::query(
                    "INSERT INTO rooms (name, name_lower, description, visibility, owner_id, created_at, kind) \
                     VALUES ('', $1, '', 'private', NULL, $2, 'stranger') RETURNING id",
                )
                .bind(&key)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?
                .get(0);
                for e in [a, b] {
                    let seated = sqlx::query(
                        "INSERT INTO stranger_seats (user_id, room_id) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING",
                    )
                    .bind(e.user.0)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    if seated.rows_affected() == 0 {
                        return Ok(Pairing::Seated);
                    }
                    sqlx::query(
                        "INSERT INTO room_members (room_id, user_id, role, joined_at) VALUES ($1, $2, 'member', $3)",
                    )
                    .bind(id)
                    .bind(e.user.0)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query(
                    "INSERT INTO stranger_chats (room_id, user_a, user_b, shared, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind(a.user.0)
                .bind(b.user.0)
                .bind(join_lines(shared))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                for (x, y) in [(a.user, b.user), (b.user, a.user)] {
                    avoid_in!(tx, x, y, now + avoid_ms);
                }
                let row = sqlx::query(
                    "SELECT id, name, description, visibility, owner_id, created_at, kind FROM rooms WHERE id = $1",
                )
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                let room = rows::room(&row)?;
                tx.commit().await?;
                Ok::<_, Error>(Pairing::Paired(room))
            }
            .await
        })
    }

    /// Takes `user` out of their stranger chat (seat, membership; the chat records when); the
    /// chat and the seat index they had, if they sat in one.
    pub async fn leave_stranger_chat(&self, user: UserId) -> Result<Option<(StrangerChat, usize)>> {
        let Some(chat) = self.stranger_seat(user).await? else { return Ok(None) };
        let seat = if chat.seats.0[0] == user { 0 } else { 1 };
        let now = now_ms();
        let left = if seat == 0 {
            "UPDATE stranger_chats SET left_a = $2 WHERE room_id = $1 AND left_a IS NULL"
        } else {
            "UPDATE stranger_chats SET left_b = $2 WHERE room_id = $1 AND left_b IS NULL"
        };
        on_pool!(self, write, |p| {
            async {
                let mut tx = p.begin().await?;
                let done = sqlx::query("DELETE FROM stranger_seats WHERE user_id = $1 AND room_id = $2")
                    .bind(user.0)
                    .bind(chat.room.0)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(None);
                }
                sqlx::query(left).bind(chat.room.0).bind(now).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM room_members WHERE room_id = $1 AND user_id = $2")
                    .bind(chat.room.0)
                    .bind(user.0)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, Error>(Some((chat.clone(), seat)))
            }
            .await
        })
    }

    /// Marks a stranger chat reported (kept until moderators are done with it) and keeps its two
    /// people apart until `avoid_until`.
    pub async fn report_stranger_chat(&self, chat: &StrangerChat, avoid_until: i64) -> Result<()> {
        let [a, b] = chat.seats.0;
        on_pool!(self, write, |p| {
            async {
                let mut tx = p.begin().await?;
                sqlx::query("UPDATE stranger_chats SET reported_at = $2 WHERE room_id = $1 AND reported_at IS NULL")
                    .bind(chat.room.0)
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await?;
                for (x, y) in [(a, b), (b, a)] {
                    avoid_in!(tx, x, y, avoid_until);
                }
                tx.commit().await?;
                Ok::<_, Error>(())
            }
            .await
        })
    }

    /// Keeps a stranger chat for moderators (a flag fired in it): marked as reported, without
    /// keeping its two people apart.
    pub async fn keep_stranger_chat(&self, room: RoomId) -> Result<()> {
        on_pool!(self, write, |p| {
            sqlx::query("UPDATE stranger_chats SET reported_at = $2 WHERE room_id = $1 AND reported_at IS NULL")
                .bind(room.0)
                .bind(now_ms())
                .execute(p)
                .await?;
            Ok(())
        })
    }

    /// Keeps `a` and `b` apart until `until` (blocked each other, found at a pairing; or one
    /// blocked the other in a stranger chat: `i64::MAX`, for good).
    pub async fn avoid_pair(&self, a: UserId, b: UserId, until: i64) -> Result<()> {
        on_pool!(self, write, |p| {
            async {
                let mut tx = p.begin().await?;
                for (x, y) in [(a, b), (b, a)] {
                    avoid_in!(tx, x, y, until);
                }
                tx.commit().await?;
                Ok::<_, Error>(())
            }
            .await
        })
    }

    /// The pairs kept apart now, among the users `among` (each pair once per direction).
    pub async fn avoided_pairs(&self, among: &[UserId]) -> Result<Vec<(UserId, UserId)>> {
        let now = now_ms();
        let mut out = Vec::new();
        for chunk in among.chunks(500) {
            let list: Vec<String> = chunk.iter().map(|u| u.0.to_string()).collect();
            // Ids are numbers we hold, never text from a client.
            let sql = format!(
                "SELECT user_id, other_id FROM stranger_avoid WHERE expires_at > $1 AND user_id IN ({})",
                list.join(",")
            );
            on_pool!(self, read, |p| {
                for r in &sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(now).fetch_all(p).await? {
                    out.push((UserId(r.try_get(0)?), UserId(r.try_get(1)?)));
                }
            });
        }
        Ok(out)
    }

    /// Stranger chats both people left before `before`, never reported: to delete.
    pub async fn stranger_chats_ended_before(&self, before: i64, limit: u32) -> Result<Vec<RoomId>> {
        on_pool!(self, read, |p| {
            let rows = sqlx::query(
                "SELECT room_id FROM stranger_chats WHERE reported_at IS NULL AND left_a IS NOT NULL \
                 AND left_b IS NOT NULL AND left_a < $1 AND left_b < $1 ORDER BY room_id LIMIT $2",
            )
            .bind(before)
            .bind(limit as i64)
            .fetch_all(p)
            .await?;
            rows.iter().map(|r| Ok(RoomId(r.try_get(0)?))).collect()
        })
    }

    /// Forgets a deleted stranger chat's row, and pairs kept apart until before `now`.
    pub async fn forget_stranger_chat(&self, room: RoomId) -> Result<()> {
        on_pool!(self, write, |p| {
            sqlx::query("DELETE FROM stranger_chats WHERE room_id = $1").bind(room.0).execute(p).await?;
            sqlx::query("DELETE FROM stranger_avoid WHERE expires_at < $1").bind(now_ms()).execute(p).await?;
            Ok(())
        })
    }
}
