//! The store: every read and write of durable state, with one implementation for SQLite and one
//! for PostgreSQL behind one API.
//!
//! Both backends run the same SQL text where the dialects agree (sqlx binds `$N` on SQLite too);
//! the `on_pool!` macro instantiates each body once per backend, so the two can never drift apart
//! silently. SQLite gets a single-connection write pool (the batching writer is then the only
//! writer, and there is no `SQLITE_BUSY`) and a separate read pool. Chat messages are written only
//! by the batching writer through `commit_batch`, which checks each room's lease epoch in the same
//! transaction: a stale owner's writes are fenced off.

mod admin_rooms;
mod auth;
pub mod backup;
mod batch;
mod cipher;
mod dms;
mod families;
mod gin_cleaner;
mod inbox;
mod limits;
mod moderation;
mod people;
mod revocations;
mod room_moderation;
mod rows;
mod search;
mod stranger;
mod uploads;

pub use admin_rooms::{AdminRoom, RoomSort};
pub use auth::{EmailCode, RefreshUse};
pub use batch::{CursorWrite, NewMessage, WriteOutcome};
pub use cipher::Cipher;
pub use dms::{DmMember, dm_key};
pub use limits::{Backoff, Limited};
pub use moderation::{AdminUser, AuditAction, AuditEntry, AuditFilter, Ban, Broadcast, Mute, SiteStats, UserSort};
pub use people::{DmPolicy, Profile, ProfileUpdate};
pub use revocations::Revocation;
pub use room_moderation::{NewItem, QueueFilter, QueueItem, RoomSanction, RoomSanctionKind, Standing, StoredSettings};
pub use search::{
    MAX_QUERY_CHARS, MAX_QUERY_WORDS, QueryError, SearchFilter, SearchHit, SearchQuery, Segment, snippet,
};
pub use stranger::{DETACHED, Pairing, QueueEntry, StrangerChat};
pub use uploads::{ClaimRefusal, Tombstone, UploadRow, UploadUsage};

use crate::error::{Error, Result};
use confab_schemas::{MessageRow, Role, RoomId, RoomKind, RoomRow, UserId, UserRow, Visibility, now_ms};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The columns `rows::message` reads, of `messages m` joined with `users u`.
macro_rules! message_columns {
    () => {
        "m.id, m.room_id, m.seq, m.sender_id, u.username, m.cid, m.body, m.reply_to, m.created_at, m.edited_at, \
         m.deleted_at, m.body_key, m.kind, m.target, m.attachments"
    };
}

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Inner,
    /// Encrypts message bodies at rest when set.
    cipher: Option<Arc<Cipher>>,
    /// The writer indexes messages for search (`search.rs`; never with `cipher`).
    search: bool,
    /// Token checks waiting to be read together (`families.rs`).
    families: Arc<families::FamilyReads>,
}

#[derive(Clone, Debug)]
enum Inner {
    Sqlite { read: SqlitePool, write: SqlitePool },
    Postgres(PgPool),
}

/// Which backend a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs `$body` with `$p` bound to the concrete pool of the backend (`read` or `write` side).
macro_rules! on_pool {
    ($store:expr, $side:ident, |$p:ident| $body:expr) => {
        match &$store.inner {
            Inner::Sqlite { read, write } => {
                let _ = (&read, &write);
                let $p = on_pool!(@side read, write, $side);
                $body
            }
            Inner::Postgres(pg) => {
                let $p = pg;
                $body
            }
        }
    };
    (@side $read:ident, $write:ident, read) => { $read };
    (@side $read:ident, $write:ident, write) => { $write };
}
pub(crate) use on_pool;

/// How SQLite syncs a commit to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteSync {
    /// fsync on every commit: durable across power loss.
    Full,
    /// fsync at checkpoints: durable across process crashes (`kill -9`), not power loss.
    Normal,
}

impl Store {
    /// Opens (creating if needed) the database at `url` and applies the migrations.
    pub async fn connect(url: &str, sqlite_sync: SqliteSync) -> Result<Store> {
        Store::open(url, sqlite_sync, 0).await
    }

    /// `connect`, with the SQLite writer connection's thread at nice value `writer_nice` (0: the
    /// default priority; see `crate::priority`).
    pub async fn open(url: &str, sqlite_sync: SqliteSync, writer_nice: i32) -> Result<Store> {
        let store = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool =
                PgPoolOptions::new().max_connections(16).acquire_timeout(Duration::from_secs(10)).connect(url).await?;
            confab_schemas::POSTGRES_MIGRATOR.run(&pool).await?;
            Store { inner: Inner::Postgres(pool), cipher: None, search: true, families: Default::default() }
        } else {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(match sqlite_sync {
                    SqliteSync::Full => SqliteSynchronous::Full,
                    SqliteSync::Normal => SqliteSynchronous::Normal,
                })
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            // The writer's connection: a page cache that holds a whole batch's pages (the default
            // 2 MiB spills mid-transaction), and checkpoints every 16,384 WAL pages instead of 1,000: a
            // batch rewrites the same index pages of every room, which a checkpoint copies once however
            // often they were rewritten (BENCHMARKS.md, "Writer").
            let write_opts = opts
                .clone()
                .pragma("cache_size", "-65536")
                .pragma("wal_autocheckpoint", "16384")
                .thread_name(|_| crate::priority::SQLITE_WRITER_THREAD.to_owned());
            // One connection for good: closing it when idle would drop its page cache, and its
            // thread's priority is set when it connects.
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .after_connect(move |_, _| {
                    Box::pin(async move {
                        crate::priority::set_named(crate::priority::SQLITE_WRITER_THREAD, writer_nice);
                        Ok(())
                    })
                })
                .connect_with(write_opts)
                .await?;
            confab_schemas::SQLITE_MIGRATOR.run(&write).await?;
            let read_opts = opts.read_only(true).thread_name(|n| format!("sqlite-read-{n}"));
            let read = SqlitePoolOptions::new().max_connections(4).connect_with(read_opts).await?;
            Store { inner: Inner::Sqlite { read, write }, cipher: None, search: true, families: Default::default() }
        };
        Ok(store)
    }

    /// This store with message bodies encrypted at rest under `cipher`.
    pub fn with_cipher(mut self, cipher: Cipher) -> Store {
        self.cipher = Some(Arc::new(cipher));
        self
    }

    pub fn backend(&self) -> Backend {
        match self.inner {
            Inner::Sqlite { .. } => Backend::Sqlite,
            Inner::Postgres(_) => Backend::Postgres,
        }
    }

    /// Closes every connection.
    pub async fn close(&self) {
        match &self.inner {
            Inner::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
            Inner::Postgres(pg) => pg.close().await,
        }
    }

    // ---- users and auth sessions ----

    /// Creates a user; usernames are unique without regard to case.
    pub async fn create_user(&self, username: &str, password_hash: &str, role: Role) -> Result<UserRow> {
        self.insert_user(username, None, Some(password_hash), role).await
    }

    /// Inserts a user with a password, an email, or both.
    async fn insert_user(
        &self,
        username: &str,
        email: Option<&str>,
        password_hash: Option<&str>,
        role: Role,
    ) -> Result<UserRow> {
        let now = now_ms();
        let res = on_pool!(self, write, |p| {
            sqlx::query(
                "INSERT INTO users (username, username_lower, email, password_hash, role, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(username)
            .bind(username.to_lowercase())
            .bind(email)
            .bind(password_hash)
            .bind(role.as_str())
            .bind(now)
            .fetch_one(p)
            .await
            .map(|r| r.get::<i64, _>(0))
        });
        match res.map_err(Error::from) {
            Ok(id) => Ok(UserRow {
                id: UserId(id),
                username: username.to_owned(),
                role,
                created_at: now,
                password_hash: password_hash.map(str::to_owned),
            }),
            Err(e) if e.is_unique_violation() => {
                Err(Error::Conflict(if email.is_some() { "username or email" } else { "username" }))
            }
            Err(e) => Err(e),
        }
    }

    pub async fn user_by_name(&self, username: &str) -> Result<Option<UserRow>> {
        on_pool!(self, read, |p| {
            let row = sqlx::query(
                "SELECT id, username, role, created_at, password_hash FROM users WHERE username_lower = $1",
            )
            .bind(username.to_lowercase())
            .fetch_optional(p)
            .await?;
            row.map(|r| rows::user(&r)).transpose()
        })
    }

    pub async fn user_by_id(&self, id: UserId) -> Result<Option<UserRow>> {
        on_pool!(self, read, |p| {
            let row = sqlx::query("SELECT id, username, role, created_at, password_hash FROM users WHERE id = $1")
                .bind(id.0)
                .fetch_optional(p)
                .await?;
            row.map(|r| rows::user(&r)).transpose()
        })
    }

    pub async fn set_user_role(&self, id: UserId, role: Role) -> Result<()> {
        on_pool!(self, write, |p| {
            sqlx::query("UPDATE users SET role = $1 WHERE id = $2").bind(role.as_str()).bind(id.0).execute(p).await?;
        });
        Ok(())
    }

    pub async fn set_password_hash(&self, id: UserId, hash: &str) -> Result<()> {
        on_pool!(self, write, |p| {
            sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2").bind(hash).bind(id.0).execute(p).await?;
        });
        Ok(())
    }

    // ---- rooms and members ----

    /// Creates a room; the owner (if any) becomes its first member with the role `owner`.
    pub async fn create_room(
        &self,
        name: &str,
        description: &str,
        visibility: Visibility,
        owner: Option<UserId>,
    ) -> Result<RoomRow> {
        let now = now_ms();
        let res: Result<i64> = on_pool!(self, write, |p| {
            async {
                let mut tx = p.begin().await?;
                let id: i64 = sqlx::query(
                    "INSERT INTO rooms (name, name_lower, description, visibility, owner_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                )
                .bind(name)
                .bind(room_name_key(name, visibility, owner))
                .bind(description)
                .bind(visibility.as_str())
                .bind(owner.map(|o| o.0))
                .bind(now)
                .fetch_one(&mut *tx)
                .await?
                .get(0);
                if let Some(owner) = owner {
                    sqlx::query(
                        "INSERT INTO room_members (room_id, user_id, role, joined_at) VALUES ($1, $2, 'owner', $3)",
                    )
                    .bind(id)
                    .bind(owner.0)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(id)
            }
            .await
        });
        match res {
            Ok(id) => Ok(RoomRow {
                id: RoomId(id),
                name: name.to_owned(),
                description: description.to_owned(),
                visibility,
                owner_id: owner,
                created_at: now,
                kind: RoomKind::Room,
            }),
            Err(e) if e.is_unique_violation() => Err(Error::Conflict("room name")),
            Err(e) => Err(e),
        }
    }

    /// Renames or describes a room (`None`: unchanged). A taken name is a `Conflict`.
    pub async fn update_room(&self, room: &RoomRow, name: Option<&str>, description: Option<&str>) -> Result<()> {
        let name = name.unwrap_or(&room.name);
        let key = room_name_key(name, room.visibility, room.owner_id);
        let res: Result<()> = on_pool!(self, write, |p| {
            sqlx::query("UPDATE rooms SET name = $2, name_lower = $3, description = $4 WHERE id = $1")
                .bind(room.id.0)
                .bind(name)
                .bind(key)
                .bind(description.unwrap_or(&room.description))
                .execute(p)
                .await?;
            Ok(())
        });
        match res {
            Err(e) if e.is_unique_violation() => Err(Error::Conflict("room name")),
            other => other,
        }
    }

    /// Makes `owner` (who becomes a member) the room's owner; the previous owner stays a member.
    pub async fn set_room_owner(&self, room: &RoomRow, owner: UserId) -> Result<()> {
        let key = room_name_key(&room.name, room.visibility, Some(owner));
        let res: Result<()> = on_pool!(self, write, |p| {
            async {
                let mut tx = p.begin().await?;
                sqlx::query("UPDATE rooms SET owner_id = $2, name_lower = $3 WHERE id = $1")
                    .bind(room.id.0)
                    .bind(owner.0)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE room_members SET role = 'member' WHERE room_id = $1 AND role = 'owner'")
                    .bind(room.id.0)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO room_members (room_id, user_id, role, joined_at) VALUES ($1, $2, 'owner', $3) \
                     ON CONFLICT (room_id, user_id) DO UPDATE SET role = 'owner'",
                )
                .bind(room.id.0)
                .bind(owner.0)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }
            .await
        });
        match res {
            Err(e) if e.is_unique_violation() => Err(Error::Conflict("room name")),
            other => other,
        }
    }

    /// Deletes a room and everything of it: its events, read cursors, lease, reports and
    /// members, in one transaction. False if there was no such room.
    pub async fn delete_room(&self, room: RoomId) -> Result<bool> {
        on_pool!(self, write, |p| {
            async {
                let mut tx = p.begin().await?;
                if self.backend() == Backend::Sqlite {
                    // The room's words leave the search index with its messages.
                    sqlx::query(search::SQLITE_FORGET_ROOM).bind(room.0).execute(&mut *tx).await?;
                }
                for sql in [
                    "DELETE FROM messages WHERE room_id = $1",
                    "DELETE FROM read_cursors WHERE room_id = $1",
                    "DELETE FROM room_leases WHERE room_id = $1",
                    "DELETE FROM reports WHERE room_id = $1",
                    "DELETE FROM room_members WHERE room_id = $1",
                    "DELETE FROM mentions WHERE room_id = $1",
                ] {
                    sqlx::query(sql).bind(room.0).execute(&mut *tx).await?;
                }
                let done = sqlx::query("DELETE FROM rooms WHERE id = $1").bind(room.0).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(done.rows_affected() > 0)
            }
            .await
        })
    }

    /// Removes a member; true if they were one.
    pub async fn remove_member(&self, room: RoomId, user: UserId) -> Result<bool> {
        on_pool!(self, write, |p| {
            let done = sqlx::query("DELETE FROM room_members WHERE room_id = $1 AND user_id = $2")
                .bind(room.0)
                .bind(user.0)
                .execute(p)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Creates the public room `name` unless a room of that name exists.
    pub async fn ensure_room(&self, name: &str, description: &str) -> Result<RoomRow> {
        if let Some(room) = self.room_by_name(name).await? {
            return Ok(room);
        }
        match self.create_room(name, description, Visibility::Public, None).await {
            Err(Error::Conflict(_)) => self.room_by_name(name).await?.ok_or(Error::NotFound("room")),
            other => other,
        }
    }

    pub async fn room_by_id(&self, id: RoomId) -> Result<Option<RoomRow>> {
        on_pool!(self, read, |p| {
            let row = sqlx::query(
                "SELECT id, name, description, visibility, owner_id, created_at, kind FROM rooms WHERE id = $1",
            )
            .bind(id.0)
            .fetch_optional(p)
            .await?;
            row.map(|r| rows::room(&r)).transpose()
        })
    }

    /// The public room `name`.
    pub async fn room_by_name(&self, name: &str) -> Result<Option<RoomRow>> {
        on_pool!(self, read, |p| {
            let row = sqlx::query(
                "SELECT id, name, description, visibility, owner_id, created_at, kind FROM rooms WHERE name_lower = $1",
            )
            .bind(room_name_key(name, Visibility::Public, None))
            .fetch_optional(p)
            .await?;
            row.map(|r| rows::room(&r)).transpose()
        })
    }

    /// Rooms a user can see: every public room and the private rooms they belong to, with
    /// membership, head seq and read cursor.
    pub async fn rooms_for(&self, user: UserId) -> Result<Vec<RoomListing>> {
        self.rooms_page(user, RoomPage { after: 0, before: i64::MAX, limit: u32::MAX, newest_first: false }).await
    }

    /// One page of `rooms_for`: ids strictly between `after` and `before`, at most `limit`, the
    /// lowest ids first (or the highest, with `newest_first`), ascending either way.
    pub async fn rooms_page(&self, user: UserId, page: RoomPage) -> Result<Vec<RoomListing>> {
        let order = if page.newest_first { "DESC" } else { "ASC" };
        let mut out = self.rooms_page_sorted(user, page, order).await?;
        if page.newest_first {
            out.reverse();
        }
        Ok(out)
    }

    async fn rooms_page_sorted(&self, user: UserId, page: RoomPage, order: &str) -> Result<Vec<RoomListing>> {
        let sql = if order == "DESC" { ROOMS_PAGE_SQL_DESC } else { ROOMS_PAGE_SQL_ASC };
        on_pool!(self, read, |p| {
            let rows = sqlx::query(sql)
                .bind(user.0)
                .bind(page.after)
                .bind(page.before)
                .bind(i64::from(page.limit))
                .fetch_all(p)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(RoomListing {
                        room: rows::room(r)?,
                        member: r.try_get::<bool, _>("member")?,
                        head_seq: r.try_get::<i64, _>("head_seq")? as u64,
                        read_seq: r.try_get::<i64, _>("read_seq")? as u64,
                        unread: r.try_get::<i64, _>("unread")? as u64,
                    })
                })
                .collect()
        })
    }

    /// The newest message of each room `user` can see (rooms without messages are left out), for
    /// the room list's preview line. One indexed `MAX(seq)` probe per room, as in `rooms_for`.
    pub async fn last_messages_for(&self, user: UserId) -> Result<Vec<MessageRow>> {
        self.last_messages_between(user, i64::MIN, i64::MAX).await
    }

    /// `last_messages_for`, for the rooms with `first <= id <= last` (one page of the list).
    pub async fn last_messages_between(&self, user: UserId, first: i64, last: i64) -> Result<Vec<MessageRow>> {
        on_pool!(self, read, |p| {
            let rows = sqlx::query(
                concat!("SELECT ", message_columns!(), " \
                 FROM rooms r LEFT JOIN room_members rm ON rm.room_id = r.id AND rm.user_id = $1 \
                 JOIN messages m ON m.room_id = r.id AND m.seq = (SELECT MAX(seq) FROM messages WHERE room_id = r.id AND kind = 0) \
                 LEFT JOIN users u ON u.id = m.sender_id \
                 WHERE (r.visibility = 'public' OR rm.user_id IS NOT NULL) AND r.id >= $2 AND r.id <= $3 AND r.id > 0"),
            )
            .bind(user.0)
            .bind(first)
            .bind(last)
            .fetch_all(p)
            .await?;
            rows.iter().map(|r| rows::message(r, self.cipher.as_deref())).collect()
        })
    }

    /// Members of a room with their role in it (`owner`, `moderator` or `member`).
    pub async fn room_members(&self, room: RoomId) -> Result<Vec<(UserId, String, String)>> {
        on_pool!(self, read, |p| {
            let rows = sqlx::query(
                "SELECT u.id, u.username, m.role FROM room_members m JOIN users u ON u.id = m.user_id \
                 WHERE m.room_id = $1 ORDER BY u.username_lower",
            )
            .bind(room.0)
            .fetch_all(p)
            .await?;
            rows.iter().map(|r| Ok((UserId(r.try_get("id")?), r.try_get("username")?, r.try_get("role")?))).collect()
        })
    }

    pub async fn is_member(&self, room: RoomId, user: UserId) -> Result<bool> {
        on_pool!(self, read, |p| {
            let row = sqlx::query("SELECT 1 FROM room_members WHERE room_id = $1 AND user_id = $2")
                .bind(room.0)
                .bind(user.0)
                .fetch_optional(p)
                .await?;
            Ok(row.is_some())
        })
    }

    /// Adds a member; adding an existing member is not an error.
    pub async fn add_member(&self, room: RoomId, user: UserId) -> Result<()> {
        on_pool!(self, write, |p| {
            sqlx::query(
                "INSERT INTO room_members (room_id, user_id, role, joined_at) VALUES ($1, $2, 'member', $3) \
                 ON CONFLICT (room_id, user_id) DO NOTHING",
            )
            .bind(room.0)
            .bind(user.0)
            .bind(now_ms())
            .execute(p)
            .await?;
        });
        Ok(())
    }

    // ---- messages ----

    /// The highest committed seq of a room (0 when empty).
    pub async fn head_seq(&self, room: RoomId) -> Result<u64> {
        on_pool!(self, read, |p| {
            let head: Option<i64> =
                sqlx::query("SELECT MAX(seq) FROM messages WHERE room_id = $1").bind(room.0).fetch_one(p).await?.get(0);
            Ok(head.unwrap_or(0) as u64)
        })
    }

    /// Messages with `from <= seq <= to`, ascending, at most `limit`.
    pub async fn messages_between(&self, room: RoomId, from: u64, to: u64, limit: u32) -> Result<Vec<MessageRow>> {
        on_pool!(self, read, |p| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                message_columns!(),
                " FROM messages m LEFT JOIN users u ON u.id = m.sender_id \
                 WHERE m.room_id = $1 AND m.seq >= $2 AND m.seq <= $3 ORDER BY m.seq LIMIT $4"
            ))
            .bind(room.0)
            .bind(from as i64)
            .bind(to.min(i64::MAX as u64) as i64)
            .bind(limit as i64)
            .fetch_all(p)
            .await?;
            rows.iter().map(|r| rows::message(r, self.cipher.as_deref())).collect()
        })
    }

    /// The newest `limit` messages with `seq < before`, ascending.
    pub async fn messages_before(&self, room: RoomId, before: u64, limit: u32) -> Result<Vec<MessageRow>> {
        on_pool!(self, read, |p| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                message_columns!(),
                " FROM messages m LEFT JOIN users u ON u.id = m.sender_id \
                 WHERE m.room_id = $1 AND m.seq < $2 ORDER BY m.seq DESC LIMIT $3"
            ))
            .bind(room.0)
            .bind(before.min(i64::MAX as u64) as i64)
            .bind(limit as i64)
            .fetch_all(p)
            .await?;
            let mut out: Vec<MessageRow> =
                rows.iter().map(|r| rows::message(r, self.cipher.as_deref())).collect::<Result<_>>()?;
            out.reverse();
            Ok(out)
        })
    }

    /// A sender's newest `limit` messages in a room, for deduplication by `cid` after a restart.
    pub async fn recent_by_sender(&self, room: RoomId, sender: UserId, limit: u32) -> Result<Vec<MessageRow>> {
        on_pool!(self, read, |p| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                message_columns!(),
                " FROM messages m LEFT JOIN users u ON u.id = m.sender_id \
                 WHERE m.room_id = $1 AND m.sender_id = $2 ORDER BY m.seq DESC LIMIT $3"
            ))
            .bind(room.0)
            .bind(sender.0)
            .bind(limit as i64)
            .fetch_all(p)
            .await?;
            rows.iter().map(|r| rows::message(r, self.cipher.as_deref())).collect()
        })
    }

    /// The seqs of the edits of message `target`.
    pub async fn edits_of(&self, room: RoomId, target: u64) -> Result<Vec<u64>> {
        on_pool!(self, read, |p| {
            let rows = sqlx::query("SELECT seq FROM messages WHERE room_id = $1 AND target = $2 AND kind = 1")
                .bind(room.0)
                .bind(target as i64)
                .fetch_all(p)
                .await?;
            rows.iter().map(|r| Ok(r.try_get::<i64, _>(0)? as u64)).collect()
        })
    }

    /// The edits and deletes of the messages `from..=to`, ascending by seq: what a history page
    /// folds in (a later edit's body, a delete's tombstone).
    pub async fn changes_of(&self, room: RoomId, from: u64, to: u64) -> Result<Vec<MessageRow>> {
        on_pool!(self, read, |p| {
            let rows = sqlx::query(concat!(
                "SELECT ",
                message_columns!(),
                " FROM messages m \
                 LEFT JOIN users u ON u.id = m.sender_id \
                 WHERE m.room_id = $1 AND m.target >= $2 AND m.target <= $3 ORDER BY m.seq"
            ))
            .bind(room.0)
            .bind(from as i64)
            .bind(to.min(i64::MAX as u64) as i64)
            .fetch_all(p)
            .await?;
            rows.iter().map(|r| rows::message(r, self.cipher.as_deref())).collect()
        })
    }

    /// The one message a sender posted under `cid`, if any.
    pub async fn message_by_cid(&self, room: RoomId, sender: UserId, cid: &str) -> Result<Option<MessageRow>> {
        on_pool!(self, read, |p| {
            let row = sqlx::query(concat!(
                "SELECT ",
                message_columns!(),
                " FROM messages m LEFT JOIN users u ON u.id = m.sender_id \
                 WHERE m.room_id = $1 AND m.sender_id = $2 AND m.cid = $3"
            ))
            .bind(room.0)
            .bind(sender.0)
            .bind(cid)
            .fetch_optional(p)
            .await?;
            row.map(|r| rows::message(&r, self.cipher.as_deref())).transpose()
        })
    }

    /// A user's read cursor in a room (0 when never read).
    pub async fn read_cursor(&self, user: UserId, room: RoomId) -> Result<u64> {
        on_pool!(self, read, |p| {
            let row = sqlx::query("SELECT seq FROM read_cursors WHERE user_id = $1 AND room_id = $2")
                .bind(user.0)
                .bind(room.0)
                .fetch_optional(p)
                .await?;
            Ok(row.map(|r| r.get::<i64, _>(0) as u64).unwrap_or(0))
        })
    }

    // ---- leases, moderation, audit ----

    /// Takes a room's lease for `node`, returning the new, higher epoch. Writes carrying an older
    /// epoch fail from now on.
    pub async fn take_lease(&self, room: RoomId, node: &str, ttl_ms: i64) -> Result<u64> {
        on_pool!(self, write, |p| {
            let epoch: i64 = sqlx::query(
                "INSERT INTO room_leases (room_id, owner_node, epoch, expires_at) VALUES ($1, $2, 1, $3) \
                 ON CONFLICT (room_id) DO UPDATE SET epoch = room_leases.epoch + 1, \
                   owner_node = excluded.owner_node, expires_at = excluded.expires_at RETURNING epoch",
            )
            .bind(room.0)
            .bind(node)
            .bind(now_ms() + ttl_ms)
            .fetch_one(p)
            .await?
            .get(0);
            Ok(epoch as u64)
        })
    }

    /// Takes a room's lease for `node` unless another node holds it: free, lapsed, released, ours,
    /// or held by a node `holder_gone` says is not live. Returns the new epoch, or `None` when the
    /// holder must be waited for. The take is a compare-and-set on the epoch it read, so two
    /// nodes racing for one room cannot both win.
    pub async fn try_take_lease(
        &self,
        room: RoomId,
        node: &str,
        ttl_ms: i64,
        holder_gone: impl Fn(&str) -> bool,
    ) -> Result<Option<u64>> {
        let now = now_ms();
        let current = on_pool!(self, read, |p| {
            let row = sqlx::query("SELECT epoch, owner_node, expires_at FROM room_leases WHERE room_id = $1")
                .bind(room.0)
                .fetch_optional(p)
                .await?;
            row.map(|r| (r.get::<i64, _>(0), r.get::<String, _>(1), r.get::<i64, _>(2)))
        });
        let expected = match current {
            None => None,
            Some((epoch, holder, expires))
                if holder == node || holder.is_empty() || expires <= now || holder_gone(&holder) =>
            {
                Some(epoch)
            }
            Some(_) => return Ok(None),
        };
        let expires = now + ttl_ms;
        on_pool!(self, write, |p| {
            let row = match expected {
                None => {
                    sqlx::query(
                        "INSERT INTO room_leases (room_id, owner_node, epoch, expires_at) VALUES ($1, $2, 1, $3) \
                     ON CONFLICT (room_id) DO NOTHING RETURNING epoch",
                    )
                    .bind(room.0)
                    .bind(node)
                    .bind(expires)
                    .fetch_optional(p)
                    .await?
                }
                Some(epoch) => {
                    sqlx::query(
                        "UPDATE room_leases SET epoch = epoch + 1, owner_node = $2, expires_at = $3 \
                     WHERE room_id = $1 AND epoch = $4 RETURNING epoch",
                    )
                    .bind(room.0)
                    .bind(node)
                    .bind(expires)
                    .bind(epoch)
                    .fetch_optional(p)
                    .await?
                }
            };
            Ok(row.map(|r| r.get::<i64, _>(0) as u64))
        })
    }

    /// Gives up `node`'s lease of a room (handoff, passivation), so the next owner need not wait.
    /// The epoch stays: the next take raises it.
    pub async fn release_lease(&self, room: RoomId, node: &str) -> Result<()> {
        on_pool!(self, write, |p| {
            sqlx::query(
                "UPDATE room_leases SET owner_node = '', expires_at = 0 WHERE room_id = $1 AND owner_node = $2",
            )
            .bind(room.0)
            .bind(node)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// A small real write, to learn whether the database takes writes (again): the row of
    /// `task_leases` named after `node`'s probe, which no task takes.
    pub async fn probe_write(&self, node: &str) -> Result<()> {
        let name = format!("storage-probe/{node}");
        on_pool!(self, write, |p| {
            sqlx::query(
                "INSERT INTO task_leases (name, owner_node, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET expires_at = excluded.expires_at",
            )
            .bind(&name)
            .bind(node)
            .bind(now_ms())
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Extends every lease `node` holds to `ttl_ms` from now; returns how many.
    pub async fn renew_leases(&self, node: &str, ttl_ms: i64) -> Result<u64> {
        on_pool!(self, write, |p| {
            let done = sqlx::query("UPDATE room_leases SET expires_at = $1 WHERE owner_node = $2")
                .bind(now_ms() + ttl_ms)
                .bind(node)
                .execute(p)
                .await?;
            Ok(done.rows_affected())
        })
    }

    /// The current epoch and owner of a room's lease.
    pub async fn lease(&self, room: RoomId) -> Result<Option<(u64, String)>> {
        on_pool!(self, read, |p| {
            let row = sqlx::query("SELECT epoch, owner_node FROM room_leases WHERE room_id = $1")
                .bind(room.0)
                .fetch_optional(p)
                .await?;
            Ok(row.map(|r| (r.get::<i64, _>(0) as u64, r.get::<String, _>(1))))
        })
    }

    /// Files a user's report about a room (and optionally one message).
    pub async fn add_report(&self, room: RoomId, seq: Option<u64>, reporter: UserId, reason: &str) -> Result<i64> {
        on_pool!(self, write, |p| {
            let id: i64 = sqlx::query(
                "INSERT INTO reports (room_id, seq, reporter_id, reason, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(room.0)
            .bind(seq.map(|s| s as i64))
            .bind(reporter.0)
            .bind(reason)
            .bind(now_ms())
            .fetch_one(p)
            .await?
            .get(0);
            Ok(id)
        })
    }

    /// Appends to the audit log.
    pub async fn audit(&self, actor: Option<UserId>, action: &str, room: Option<RoomId>, detail: &str) -> Result<()> {
        on_pool!(self, write, |p| {
            sqlx::query("INSERT INTO audit_log (at, actor_id, action, room_id, detail) VALUES ($1, $2, $3, $4, $5)")
                .bind(now_ms())
                .bind(actor.map(|a| a.0))
                .bind(action)
                .bind(room.map(|r| r.0))
                .bind(detail)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// Audit entries, newest first: (at, actor, action, room, detail).
    pub async fn audit_entries(&self, limit: u32) -> Result<Vec<(i64, Option<i64>, String, Option<i64>, String)>> {
        on_pool!(self, read, |p| {
            let rows =
                sqlx::query("SELECT at, actor_id, action, room_id, detail FROM audit_log ORDER BY id DESC LIMIT $1")
                    .bind(limit as i64)
                    .fetch_all(p)
                    .await?;
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?)))
                .collect()
        })
    }
}

/// Which rooms of the list to read (see `Store::rooms_page`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomPage {
    pub after: i64,
    pub before: i64,
    pub limit: u32,
    pub newest_first: bool,
}

macro_rules! rooms_page_sql {
    ($order:literal) => {
        concat!(
            "SELECT r.id, r.name, r.description, r.visibility, r.owner_id, r.created_at, r.kind, \
               (m.user_id IS NOT NULL) AS member, \
               COALESCE((SELECT MAX(seq) FROM messages WHERE room_id = r.id), 0) AS head_seq, \
               COALESCE(c.seq, 0) AS read_seq, \
               CASE WHEN m.user_id IS NULL THEN 0 ELSE (SELECT COUNT(*) FROM (SELECT 1 FROM messages u \
                 WHERE u.room_id = r.id AND u.seq > COALESCE(c.seq, 0) AND u.kind = 0 AND u.deleted_at IS NULL \
                 LIMIT 1000) t) END AS unread \
             FROM rooms r LEFT JOIN room_members m ON m.room_id = r.id AND m.user_id = $1 \
               LEFT JOIN read_cursors c ON c.room_id = r.id AND c.user_id = $1 \
             WHERE (r.visibility = 'public' OR m.user_id IS NOT NULL) AND r.id > $2 AND r.id < $3 AND r.id > 0 \
               AND r.kind <> 'stranger' \
             ORDER BY r.id ",
            $order,
            " LIMIT $4"
        )
    };
}
const ROOMS_PAGE_SQL_ASC: &str = rooms_page_sql!("ASC");
const ROOMS_PAGE_SQL_DESC: &str = rooms_page_sql!("DESC");

/// The uniqueness key of a room's name (`rooms.name_lower`): the lowercase name of a public
/// room; a private room's is scoped to its owner (names never hold control characters), so a
/// taken name never reveals another user's private room.
fn room_name_key(name: &str, visibility: Visibility, owner: Option<UserId>) -> String {
    let lower = name.to_lowercase();
    match visibility {
        Visibility::Public => lower,
        Visibility::Private => format!("\u{1}{}\u{1}{lower}", owner.map_or(0, |o| o.0)),
    }
}

/// A room as a user sees it in the room list.
#[derive(Debug, Clone)]
pub struct RoomListing {
    pub room: RoomRow,
    pub member: bool,
    pub head_seq: u64,
    pub read_seq: u64,
    /// Messages after the read cursor, not deleted (at most 1,000 counted; 0 for non-members).
    pub unread: u64,
}
