//! Site-wide moderation in storage: bans and mutes (one row per user, lifted by deleting it, and
//! past its `expires_at` as good as lifted), broadcast announcements with per-user dismissals, the
//! audit log with its filters, the admins' list of users and the site's figures.
//!
//! Nothing here decides who may do what: the gateway checks the caller's role (read from the
//! database on every request) before it calls any of these.

use super::{Inner, Store, on_pool};
use crate::error::Result;
use confab_schemas::{Role, RoomId, UserId, now_ms};
use sqlx::Row;

/// A ban in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub reason: String,
    pub by: Option<UserId>,
    pub created_at: i64,
    /// `None`: until lifted.
    pub expires_at: Option<i64>,
}

/// A mute in force (the user may not send anywhere until `expires_at`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mute {
    pub reason: String,
    pub expires_at: i64,
}

/// One line of the audit log, with the names of its actor and target.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub actor: Option<(UserId, String)>,
    pub action: String,
    pub target: Option<(UserId, String)>,
    pub room: Option<RoomId>,
    pub detail: String,
}

/// Which audit entries to read, newest first. `None`: any.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<UserId>,
    pub target: Option<UserId>,
    pub action: Option<String>,
    /// Entries with an id below this one (the previous page's last id).
    pub before: Option<i64>,
    pub limit: u32,
}

/// An action to record in the audit log: who did what to whom, and why.
#[derive(Debug, Clone, Copy)]
pub struct AuditAction<'a> {
    pub actor: Option<UserId>,
    pub action: &'a str,
    pub target: Option<UserId>,
    pub room: Option<RoomId>,
    pub detail: &'a str,
}

/// How the admins' list of users is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSort {
    /// By username, A to Z.
    Name,
    /// Most recently seen first (never seen last).
    LastSeen,
    /// Newest accounts first.
    Newest,
}

/// A user as the admins' list shows them.
#[derive(Debug, Clone)]
pub struct AdminUser {
    pub id: UserId,
    pub username: String,
    pub role: Role,
    pub created_at: i64,
    pub online: bool,
    pub last_seen: Option<i64>,
    pub ban: Option<Ban>,
    pub muted_until: Option<i64>,
}

/// The site's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteStats {
    pub users: i64,
    pub online: i64,
    /// Chat messages (not edits, deletes or system events) ever sent in rooms, deleted ones included.
    pub messages_total: i64,
    /// Of those, sent since `since` (the start of the day, UTC, for the gateway).
    pub messages_since: i64,
    pub banned: i64,
    pub muted: i64,
}

/// A stored announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broadcast {
    pub id: i64,
    pub body: String,
    pub by: Option<(UserId, String)>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// The admins' list of users: `SELECT … WHERE <search> ORDER BY $order LIMIT/OFFSET`.
/// `$1` now, `$2` the `LIKE` pattern, `$3` limit, `$4` offset.
macro_rules! admin_users_sql {
    ($order:literal) => {
        concat!(
            "SELECT u.id, u.username, u.role, u.created_at, u.online_until, u.last_seen_at, \
               b.reason AS ban_reason, b.by_id AS ban_by, b.created_at AS ban_at, b.expires_at AS ban_expires, \
               (b.user_id IS NOT NULL) AS banned, m.expires_at AS muted_until \
             FROM users u \
               LEFT JOIN user_bans b ON b.user_id = u.id AND (b.expires_at IS NULL OR b.expires_at > $1) \
               LEFT JOIN user_mutes m ON m.user_id = u.id AND m.expires_at > $1 \
             WHERE u.username_lower LIKE $2 ESCAPE '\\' ORDER BY ",
            $order,
            " LIMIT $3 OFFSET $4"
        )
    };
}

/// The two kinds of site-wide sanction, each a table of one row per user.
#[derive(Debug, Clone, Copy)]
enum Sanction {
    Ban,
    Mute,
}

/// Puts a sanction row: `$1` user, `$2` reason, `$3` by, `$4` now, `$5` expiry.
macro_rules! upsert_sanction_sql {
    ($table:literal) => {
        concat!(
            "INSERT INTO ",
            $table,
            " (user_id, reason, by_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (user_id) DO UPDATE SET reason = excluded.reason, by_id = excluded.by_id, \
               created_at = excluded.created_at, expires_at = excluded.expires_at"
        )
    };
}

impl Sanction {
    fn upsert_sql(self) -> &'static str {
        match self {
            Sanction::Ban => upsert_sanction_sql!("user_bans"),
            Sanction::Mute => upsert_sanction_sql!("user_mutes"),
        }
    }

    fn delete_sql(self) -> &'static str {
        match self {
            Sanction::Ban => "DELETE FROM user_bans WHERE user_id = $1",
            Sanction::Mute => "DELETE FROM user_mutes WHERE user_id = $1",
        }
    }
}

macro_rules! broadcast_sql {
    ($rest:literal) => {
        concat!(
            "SELECT b.id, b.body, b.by_id, u.username, b.created_at, b.expires_at FROM broadcasts b \
             LEFT JOIN users u ON u.id = b.by_id ",
            $rest
        )
    };
}

/// The ban columns `banned`, `ban_reason`, `ban_by`, `ban_at`, `ban_expires` of a row that
/// left-joined the ban in force.
pub(super) fn ban_of<R>(r: &R) -> Result<Option<Ban>>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    if !r.try_get::<bool, _>("banned")? {
        return Ok(None);
    }
    Ok(Some(Ban {
        reason: r.try_get::<Option<String>, _>("ban_reason")?.unwrap_or_default(),
        by: r.try_get::<Option<i64>, _>("ban_by")?.map(UserId),
        created_at: r.try_get::<Option<i64>, _>("ban_at")?.unwrap_or(0),
        expires_at: r.try_get("ban_expires")?,
    }))
}

fn broadcast_row<R>(r: &R) -> Result<Broadcast>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Broadcast {
        id: r.try_get(0)?,
        body: r.try_get(1)?,
        by: named(r.try_get(2)?, r.try_get(3)?),
        created_at: r.try_get(4)?,
        expires_at: r.try_get(5)?,
    })
}

fn named(id: Option<i64>, name: Option<String>) -> Option<(UserId, String)> {
    id.map(|id| (UserId(id), name.unwrap_or_default()))
}

impl Store {
    /// Appends an action to the audit log, with its target user.
    pub async fn audit_action(&self, a: AuditAction<'_>) -> Result<()> {
        on_pool!(self, write, |p| {
            sqlx::query(
                "INSERT INTO audit_log (at, actor_id, action, room_id, target_user_id, detail) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(now_ms())
            .bind(a.actor.map(|u| u.0))
            .bind(a.action)
            .bind(a.room.map(|r| r.0))
            .bind(a.target.map(|u| u.0))
            .bind(a.detail)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Audit entries matching `f`, newest first.
    pub async fn audit_page(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
        // 0 and '' stand for "any": ids start at 1 and every action has a name.
        on_pool!(self, read, |p| {
            let rows = sqlx::query(
                "SELECT l.id, l.at, l.actor_id, a.username AS actor_name, l.action, l.target_user_id, \
                   t.username AS target_name, l.room_id, l.detail FROM audit_log l \
                   LEFT JOIN users a ON a.id = l.actor_id LEFT JOIN users t ON t.id = l.target_user_id \
                 WHERE ($1 = 0 OR l.actor_id = $1) AND ($2 = 0 OR l.target_user_id = $2) \
                   AND ($3 = '' OR l.action = $3) AND l.id < $4 ORDER BY l.id DESC LIMIT $5",
            )
            .bind(f.actor.map_or(0, |u| u.0))
            .bind(f.target.map_or(0, |u| u.0))
            .bind(f.action.as_deref().unwrap_or(""))
            .bind(f.before.unwrap_or(i64::MAX))
            .bind(i64::from(f.limit))
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(AuditEntry {
                        id: r.try_get("id")?,
                        at: r.try_get("at")?,
                        actor: named(r.try_get("actor_id")?, r.try_get("actor_name")?),
                        action: r.try_get("action")?,
                        target: named(r.try_get("target_user_id")?, r.try_get("target_name")?),
                        room: r.try_get::<Option<i64>, _>("room_id")?.map(RoomId),
                        detail: r.try_get("detail")?,
                    })
                })
                .collect()
        })
    }

    // ---- bans and mutes ----

    /// Bans `user` (replacing a ban in force); `expires_at` `None`: until lifted.
    pub async fn ban_user(&self, user: UserId, by: UserId, reason: &str, expires_at: Option<i64>) -> Result<()> {
        self.put_sanction(Sanction::Ban, user, by, reason, expires_at).await
    }

    /// Lifts `user`'s ban; false when there was none in force.
    pub async fn unban_user(&self, user: UserId) -> Result<bool> {
        let in_force = self.active_ban(user).await?.is_some();
        self.lift_sanction(Sanction::Ban, user).await?;
        Ok(in_force)
    }

    async fn put_sanction(
        &self,
        kind: Sanction,
        user: UserId,
        by: UserId,
        reason: &str,
        expires_at: Option<i64>,
    ) -> Result<()> {
        on_pool!(self, write, |p| {
            sqlx::query(kind.upsert_sql())
                .bind(user.0)
                .bind(reason)
                .bind(by.0)
                .bind(now_ms())
                .bind(expires_at)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    async fn lift_sanction(&self, kind: Sanction, user: UserId) -> Result<()> {
        on_pool!(self, write, |p| {
            sqlx::query(kind.delete_sql()).bind(user.0).execute(p).await?;
        });
        Ok(())
    }

    /// `user`'s ban in force, if any.
    pub async fn active_ban(&self, user: UserId) -> Result<Option<Ban>> {
        on_pool!(self, read, |p| {
            let row = sqlx::query(
                "SELECT reason, by_id, created_at, expires_at FROM user_bans \
                 WHERE user_id = $1 AND (expires_at IS NULL OR expires_at > $2)",
            )
            .bind(user.0)
            .bind(now_ms())
            .fetch_optional(p)
            .await?;
            row.map(|r| {
                Ok(Ban {
                    reason: r.try_get(0)?,
                    by: r.try_get::<Option<i64>, _>(1)?.map(UserId),
                    created_at: r.try_get(2)?,
                    expires_at: r.try_get(3)?,
                })
            })
            .transpose()
        })
    }

    /// Mutes `user` until `expires_at` (replacing a mute in force).
    pub async fn mute_user(&self, user: UserId, by: UserId, reason: &str, expires_at: i64) -> Result<()> {
        self.put_sanction(Sanction::Mute, user, by, reason, Some(expires_at)).await
    }

    /// Lifts `user`'s mute; false when there was none in force.
    pub async fn unmute_user(&self, user: UserId) -> Result<bool> {
        let in_force = self.active_mute(user).await?.is_some();
        self.lift_sanction(Sanction::Mute, user).await?;
        Ok(in_force)
    }

    /// `user`'s mute in force, if any.
    pub async fn active_mute(&self, user: UserId) -> Result<Option<Mute>> {
        on_pool!(self, read, |p| {
            let row = sqlx::query("SELECT reason, expires_at FROM user_mutes WHERE user_id = $1 AND expires_at > $2")
                .bind(user.0)
                .bind(now_ms())
                .fetch_optional(p)
                .await?;
            row.map(|r| Ok(Mute { reason: r.try_get(0)?, expires_at: r.try_get(1)? })).transpose()
        })
    }

    /// Every mute in force: the user and its end.
    pub async fn active_mutes(&self) -> Result<Vec<(UserId, i64)>> {
        on_pool!(self, read, |p| {
            let rows = sqlx::query("SELECT user_id, expires_at FROM user_mutes WHERE expires_at > $1")
                .bind(now_ms())
                .fetch_all(p)
                .await?;
            rows.iter().map(|r| Ok((UserId(r.try_get(0)?), r.try_get(1)?))).collect()
        })
    }

    // ---- the admins' views ----

    /// Users whose username starts with `prefix` (without regard to case), in `sort` order,
    /// `offset` skipped, at most `limit`.
    pub async fn admin_users(&self, prefix: &str, sort: UserSort, offset: u32, limit: u32) -> Result<Vec<AdminUser>> {
        let now = now_ms();
        let pattern = super::people::prefix_pattern(&prefix.to_lowercase());
        let sql = match sort {
            UserSort::Name => admin_users_sql!("u.username_lower"),
            UserSort::LastSeen => {
                admin_users_sql!("CASE WHEN u.last_seen_at IS NULL THEN 1 ELSE 0 END, u.last_seen_at DESC, u.id")
            }
            UserSort::Newest => admin_users_sql!("u.id DESC"),
        };
        on_pool!(self, read, |p| {
            let rows = sqlx::query(sql)
                .bind(now)
                .bind(&pattern)
                .bind(i64::from(limit))
                .bind(i64::from(offset))
                .fetch_all(p)
                .await?;
            rows.iter()
                .map(|r| {
                    let online_until: Option<i64> = r.try_get("online_until")?;
                    let ban = ban_of(r)?;
                    Ok(AdminUser {
                        id: UserId(r.try_get("id")?),
                        username: r.try_get("username")?,
                        role: Role::parse(&r.try_get::<String, _>("role")?),
                        created_at: r.try_get("created_at")?,
                        online: online_until.is_some_and(|t| t > now),
                        last_seen: r.try_get("last_seen_at")?,
                        ban,
                        muted_until: r.try_get("muted_until")?,
                    })
                })
                .collect()
        })
    }

    /// The site's figures; `messages_since` counts messages sent from `since` on.
    pub async fn site_stats(&self, since: i64) -> Result<SiteStats> {
        let now = now_ms();
        on_pool!(self, read, |p| {
            let r = sqlx::query(
                "SELECT (SELECT COUNT(*) FROM users), \
                   (SELECT COUNT(*) FROM users WHERE online_until > $1), \
                   (SELECT COUNT(*) FROM messages WHERE kind = 0 AND room_id > 0), \
                   (SELECT COUNT(*) FROM messages WHERE kind = 0 AND room_id > 0 AND created_at >= $2), \
                   (SELECT COUNT(*) FROM user_bans WHERE expires_at IS NULL OR expires_at > $1), \
                   (SELECT COUNT(*) FROM user_mutes WHERE expires_at > $1)",
            )
            .bind(now)
            .bind(since)
            .fetch_one(p)
            .await?;
            Ok(SiteStats {
                users: r.try_get(0)?,
                online: r.try_get(1)?,
                messages_total: r.try_get(2)?,
                messages_since: r.try_get(3)?,
                banned: r.try_get(4)?,
                muted: r.try_get(5)?,
            })
        })
    }

    // ---- broadcasts ----

    /// Stores an announcement.
    pub async fn add_broadcast(&self, by: UserId, body: &str, expires_at: i64) -> Result<i64> {
        on_pool!(self, write, |p| {
            let id: i64 = sqlx::query(
                "INSERT INTO broadcasts (body, by_id, created_at, expires_at) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(body)
            .bind(by.0)
            .bind(now_ms())
            .bind(expires_at)
            .fetch_one(p)
            .await?
            .get(0);
            Ok(id)
        })
    }

    /// One announcement, expired or not.
    pub async fn broadcast(&self, id: i64) -> Result<Option<Broadcast>> {
        on_pool!(self, read, |p| {
            let row = sqlx::query(broadcast_sql!("WHERE b.id = $1")).bind(id).fetch_optional(p).await?;
            row.map(|r| broadcast_row(&r)).transpose()
        })
    }

    /// The announcements in force that `user` has not dismissed, oldest first.
    pub async fn active_broadcasts(&self, user: UserId) -> Result<Vec<Broadcast>> {
        on_pool!(self, read, |p| {
            let rows = sqlx::query(broadcast_sql!(
                "WHERE b.expires_at > $1 AND NOT EXISTS (SELECT 1 FROM broadcast_dismissals d \
                   WHERE d.user_id = $2 AND d.broadcast_id = b.id) ORDER BY b.id LIMIT 100"
            ))
            .bind(now_ms())
            .bind(user.0)
            .fetch_all(p)
            .await?;
            rows.iter().map(broadcast_row).collect()
        })
    }

    /// `user` dismisses announcement `id`; false when there is no such announcement.
    pub async fn dismiss_broadcast(&self, user: UserId, id: i64) -> Result<bool> {
        if self.broadcast(id).await?.is_none() {
            return Ok(false);
        }
        on_pool!(self, write, |p| {
            sqlx::query(
                "INSERT INTO broadcast_dismissals (user_id, broadcast_id) VALUES ($1, $2) \
                 ON CONFLICT (user_id, broadcast_id) DO NOTHING",
            )
            .bind(user.0)
            .bind(id)
            .execute(p)
            .await?;
        });
        Ok(true)
    }
}
