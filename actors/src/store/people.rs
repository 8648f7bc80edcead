//! People in storage: profiles (display name, status line, who may open a direct conversation),
//! the directory's prefix search, presence as the users' inbox actors write it, and blocks.

use super::{Inner, Store, on_pool};
use crate::error::Result;
use confab_schemas::{UserId, now_ms};
use sqlx::Row;

/// Who may open a direct conversation with a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmPolicy {
    Everyone,
    /// Only people they share a room with.
    SharedRooms,
}

impl DmPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            DmPolicy::Everyone => "everyone",
            DmPolicy::SharedRooms => "shared_rooms",
        }
    }

    pub fn parse(s: &str) -> Option<DmPolicy> {
        match s {
            "everyone" => Some(DmPolicy::Everyone),
            "shared_rooms" => Some(DmPolicy::SharedRooms),
            _ => None,
        }
    }
}

/// A user as the people directory shows them.
#[derive(Debug, Clone)]
pub struct Profile {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub status: String,
    /// A session of theirs follows their inbox on some node (as of the last renewal).
    pub online: bool,
    pub last_seen: Option<i64>,
    pub created_at: i64,
    pub dm_policy: DmPolicy,
}

/// A profile change (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct ProfileUpdate<'a> {
    pub display_name: Option<&'a str>,
    pub status: Option<&'a str>,
    pub dm_policy: Option<DmPolicy>,
}

/// A `SELECT` of profile rows from `users`, followed by `$rest`.
macro_rules! profile_sql {
    ($rest:literal) => {
        concat!(
            "SELECT id, username, display_name, status, online_until, last_seen_at, created_at, dm_policy FROM users ",
            $rest
        )
    };
}

fn profile<R>(r: &R, now: i64) -> Result<Profile>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let online_until: Option<i64> = r.try_get("online_until")?;
    let policy: String = r.try_get("dm_policy")?;
    Ok(Profile {
        id: UserId(r.try_get("id")?),
        username: r.try_get("username")?,
        display_name: r.try_get("display_name")?,
        status: r.try_get("status")?,
        online: online_until.is_some_and(|t| t > now),
        last_seen: r.try_get("last_seen_at")?,
        created_at: r.try_get("created_at")?,
        dm_policy: DmPolicy::parse(&policy).unwrap_or(DmPolicy::Everyone),
    })
}

/// `LIKE` pattern of a prefix: its wildcards and the escape character taken literally.
pub(super) fn prefix_pattern(prefix: &str) -> String {
    let mut p = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

impl Store {
    pub async fn profile(&self, user: UserId) -> Result<Option<Profile>> {
        let now = now_ms();
        on_pool!(self, read, |p| {
            let row = sqlx::query(profile_sql!("WHERE id = $1")).bind(user.0).fetch_optional(p).await?;
            row.map(|r| profile(&r, now)).transpose()
        })
    }

    pub async fn profile_by_name(&self, username: &str) -> Result<Option<Profile>> {
        let now = now_ms();
        on_pool!(self, read, |p| {
            let row = sqlx::query(profile_sql!("WHERE username_lower = $1"))
                .bind(username.to_lowercase())
                .fetch_optional(p)
                .await?;
            row.map(|r| profile(&r, now)).transpose()
        })
    }

    /// The directory: users whose username or display name starts with `prefix` (without regard
    /// to case), by username, those after the username `after`, at most `limit`.
    pub async fn find_people(&self, prefix: &str, after: &str, limit: u32) -> Result<Vec<Profile>> {
        let now = now_ms();
        let pattern = prefix_pattern(&prefix.to_lowercase());
        on_pool!(self, read, |p| {
            let sql = profile_sql!(
                "WHERE (username_lower LIKE $1 ESCAPE '\\' OR display_lower LIKE $1 ESCAPE '\\') \
                   AND username_lower > $2 ORDER BY username_lower LIMIT $3"
            );
            let rows =
                sqlx::query(sql).bind(&pattern).bind(after.to_lowercase()).bind(i64::from(limit)).fetch_all(p).await?;
            rows.iter().map(|r| profile(r, now)).collect()
        })
    }

    pub async fn update_profile(&self, user: UserId, update: &ProfileUpdate<'_>) -> Result<()> {
        on_pool!(self, write, |p| {
            sqlx::query(
                "UPDATE users SET display_name = COALESCE($2, display_name), \
                   display_lower = COALESCE($3, display_lower), status = COALESCE($4, status), \
                   dm_policy = COALESCE($5, dm_policy) WHERE id = $1",
            )
            .bind(user.0)
            .bind(update.display_name)
            .bind(update.display_name.map(str::to_lowercase))
            .bind(update.status)
            .bind(update.dm_policy.map(DmPolicy::as_str))
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Presence as `user`'s inbox actor sees it: online until `online_until` (renewed while
    /// online), or offline (`None`) since now. `stamp` orders the writes: an older one that
    /// arrives late changes nothing.
    pub async fn set_presence(&self, user: UserId, online_until: Option<i64>, stamp: i64) -> Result<()> {
        on_pool!(self, write, |p| {
            sqlx::query(
                "UPDATE users SET online_until = $2, last_seen_at = $3, presence_stamp = $3 \
                 WHERE id = $1 AND presence_stamp < $3",
            )
            .bind(user.0)
            .bind(online_until)
            .bind(stamp)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// `user` blocks `blocked`; a repeat does nothing.
    pub async fn block(&self, user: UserId, blocked: UserId) -> Result<()> {
        on_pool!(self, write, |p| {
            sqlx::query(
                "INSERT INTO blocks (user_id, blocked_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(user.0)
            .bind(blocked.0)
            .bind(now_ms())
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// `user` unblocks `blocked`; true if they had blocked them.
    pub async fn unblock(&self, user: UserId, blocked: UserId) -> Result<bool> {
        on_pool!(self, write, |p| {
            let done = sqlx::query("DELETE FROM blocks WHERE user_id = $1 AND blocked_id = $2")
                .bind(user.0)
                .bind(blocked.0)
                .execute(p)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// The users `user` blocked, by username.
    pub async fn blocks_of(&self, user: UserId) -> Result<Vec<(UserId, String)>> {
        on_pool!(self, read, |p| {
            let rows = sqlx::query(
                "SELECT u.id, u.username FROM blocks b JOIN users u ON u.id = b.blocked_id \
                 WHERE b.user_id = $1 ORDER BY u.username_lower",
            )
            .bind(user.0)
            .fetch_all(p)
            .await?;
            rows.iter().map(|r| Ok((UserId(r.try_get(0)?), r.try_get(1)?))).collect()
        })
    }

    /// Whether `a` blocked `b`, and whether `b` blocked `a`.
    pub async fn blocks_between(&self, a: UserId, b: UserId) -> Result<(bool, bool)> {
        on_pool!(self, read, |p| {
            let rows = sqlx::query(
                "SELECT user_id FROM blocks WHERE (user_id = $1 AND blocked_id = $2) \
                 OR (user_id = $2 AND blocked_id = $1)",
            )
            .bind(a.0)
            .bind(b.0)
            .fetch_all(p)
            .await?;
            let mut out = (false, false);
            for r in &rows {
                if r.try_get::<i64, _>(0)? == a.0 {
                    out.0 = true;
                } else {
                    out.1 = true;
                }
            }
            Ok(out)
        })
    }

    /// Whether `a` and `b` are both members of some chat room (not a direct conversation).
    pub async fn share_a_room(&self, a: UserId, b: UserId) -> Result<bool> {
        on_pool!(self, read, |p| {
            let row = sqlx::query(
                "SELECT 1 FROM room_members x JOIN room_members y ON y.room_id = x.room_id AND y.user_id = $2 \
                 JOIN rooms r ON r.id = x.room_id WHERE x.user_id = $1 AND r.kind = 'room' AND r.id > 0 LIMIT 1",
            )
            .bind(a.0)
            .bind(b.0)
            .fetch_optional(p)
            .await?;
            Ok(row.is_some())
        })
    }
}
