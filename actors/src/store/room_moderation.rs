//! Room moderation in storage: who stands where in a room (owner, room moderator, member, and the
//! site role), room sanctions (a mute or ban per room and user, lifted by deleting it, and past
//! its `expires_at` as good as lifted), the moderation queue (rows of `reports`: reports, held
//! messages and automatic flags, each decided once) and the moderation settings of each room
//! and of the site (room id 0).
//!
//! Nothing here decides who may do what: the gateway and the room actor read `standing` on every
//! request or frame and decide.

use super::{Cipher, Inner, Store, on_pool};
use crate::error::Result;
use confab_schemas::{Attachment, Role, RoomId, UserId, now_ms};
use sqlx::Row;

/// Where a user stands in a room, read in one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub site: Role,
    pub owner: bool,
    pub room_moderator: bool,
    pub member: bool,
}

impl Standing {
    /// Owner, room moderator, site moderator or admin.
    pub fn is_staff(&self) -> bool {
        self.owner || self.room_moderator || self.site.rank() >= Role::Moderator.rank()
    }

    /// `owner`, `moderator`, `member` or `None` (not a member), as `my_role` shows it.
    pub fn room_role(&self) -> Option<&'static str> {
        if self.owner {
            Some("owner")
        } else if self.room_moderator {
            Some("moderator")
        } else if self.member {
            Some("member")
        } else {
            None
        }
    }
}

/// A room sanction's kind (a `remove` is not stored: it is a removal from the members).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomSanctionKind {
    Mute,
    Ban,
}

impl RoomSanctionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomSanctionKind::Mute => "mute",
            RoomSanctionKind::Ban => "ban",
        }
    }

    pub fn parse(s: &str) -> Option<RoomSanctionKind> {
        match s {
            "mute" => Some(RoomSanctionKind::Mute),
            "ban" => Some(RoomSanctionKind::Ban),
            _ => None,
        }
    }
}

/// A room sanction in force, with the names of whom and by whom.
#[derive(Debug, Clone)]
pub struct RoomSanction {
    pub user: (UserId, String),
    pub kind: String,
    pub reason: String,
    pub by: Option<(UserId, String)>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

/// An item of a room's moderation queue.
#[derive(Debug, Clone)]
pub struct QueueItem {
    pub id: i64,
    pub room: RoomId,
    pub room_name: String,
    /// `report`, `held` or `flag`.
    pub kind: String,
    pub seq: Option<u64>,
    pub reporter: Option<(UserId, String)>,
    pub sender: Option<(UserId, String)>,
    pub reason: String,
    /// A held message's (or a flagged one's) body.
    pub body: Option<String>,
    pub cid: Option<String>,
    pub reply_to: Option<u64>,
    pub status: String,
    pub created_at: i64,
    pub decided_by: Option<(UserId, String)>,
    pub decided_at: Option<i64>,
    /// The reason its decider gave (a rejected message's is shown to its sender).
    pub decision_reason: Option<String>,
    /// A held message's attachments (claimed for it when it was held).
    pub attachments: Vec<Attachment>,
}

/// A new queue item: a held message or an automatic flag.
#[derive(Debug, Clone, Copy)]
pub struct NewItem<'a> {
    pub room: RoomId,
    /// `held` or `flag`.
    pub kind: &'a str,
    pub sender: UserId,
    pub reason: &'a str,
    pub body: &'a str,
    pub cid: &'a str,
    pub reply_to: Option<u64>,
    /// A held message's attachments, claimed for it already.
    pub attachments: &'a [Attachment],
}

/// Which queue items to read, newest first.
#[derive(Debug, Clone, Copy)]
pub struct QueueFilter {
    /// `None`: every room.
    pub room: Option<RoomId>,
    pub open_only: bool,
    /// Items with an id below this one (the previous page's `next`).
    pub before: Option<i64>,
    pub limit: u32,
}

/// A room's (or the site's) stored moderation settings: premod and the flags as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSettings {
    /// 0: the site-wide defaults.
    pub room: i64,
    pub premod: bool,
    pub flags: String,
    pub updated_at: i64,
}

macro_rules! queue_sql {
    ($rest:literal) => {
        concat!(
            "SELECT q.id, q.room_id, r.name AS room_name, q.kind, q.seq, q.reporter_id, ru.username AS reporter_name, \
               COALESCE(q.sender_id, msg.sender_id) AS sender_id, su.username AS sender_name, q.reason, q.body, q.body_key, \
               q.cid, q.reply_to, q.status, q.created_at, q.decided_by, du.username AS decided_name, q.decided_at, \
               q.decision_reason, q.attachments \
             FROM reports q LEFT JOIN rooms r ON r.id = q.room_id \
               LEFT JOIN messages msg ON q.kind = 'report' AND msg.room_id = q.room_id AND msg.seq = q.seq \
               LEFT JOIN users ru ON ru.id = q.reporter_id \
               LEFT JOIN users su ON su.id = COALESCE(q.sender_id, msg.sender_id) \
               LEFT JOIN users du ON du.id = q.decided_by ",
            $rest
        )
    };
}

fn named(id: Option<i64>, name: Option<String>) -> Option<(UserId, String)> {
    id.map(|id| (UserId(id), name.unwrap_or_default()))
}

fn queue_item<R>(r: &R, cipher: Option<&Cipher>) -> Result<QueueItem>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let kind: String = r.try_get("kind")?;
    let room: i64 = r.try_get("room_id")?;
    let body: Option<String> = r.try_get("body")?;
    let body = match (body, r.try_get::<Option<String>, _>("body_key")?) {
        (Some(sealed), Some(key)) => match cipher {
            Some(c) => Some(c.open(&key, room, 0, &sealed)?),
            None => return Err(crate::Error::Invalid("an encrypted queue item and no key configured".into())),
        },
        (body, _) => body,
    };
    let reporter = if kind == "report" { named(r.try_get("reporter_id")?, r.try_get("reporter_name")?) } else { None };
    Ok(QueueItem {
        id: r.try_get("id")?,
        room: RoomId(room),
        room_name: r.try_get::<Option<String>, _>("room_name")?.unwrap_or_default(),
        kind,
        seq: r.try_get::<Option<i64>, _>("seq")?.map(|s| s as u64),
        reporter,
        sender: named(r.try_get("sender_id")?, r.try_get("sender_name")?),
        reason: r.try_get("reason")?,
        body,
        cid: r.try_get("cid")?,
        reply_to: r.try_get::<Option<i64>, _>("reply_to")?.map(|s| s as u64),
        status: r.try_get("status")?,
        created_at: r.try_get("created_at")?,
        decided_by: named(r.try_get("decided_by")?, r.try_get("decided_name")?),
        decided_at: r.try_get("decided_at")?,
        decision_reason: r.try_get("decision_reason")?,
        attachments: match r.try_get::<Option<String>, _>("attachments")? {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| crate::Error::Invalid(format!("the attachments of queue item {room}: {e}")))?,
            None => Vec::new(),
        },
    })
}

impl Store {
    // ---- standing ----

    /// Where `user` stands in `room`; `None` when there is no such user.
    pub async fn standing(&self, room: RoomId, user: UserId) -> Result<Option<Standing>> {
        on_pool!(self, read, |p| {
            let row = sqlx::query(
                "SELECT u.role AS site_role, r.owner_id, m.role AS room_role FROM users u \
                   LEFT JOIN rooms r ON r.id = $1 \
                   LEFT JOIN room_members m ON m.room_id = $1 AND m.user_id = u.id \
                 WHERE u.id = $2",
            )
            .bind(room.0)
            .bind(user.0)
            .fetch_optional(p)
            .await?;
            row.map(|r| {
                let room_role: Option<String> = r.try_get("room_role")?;
                Ok(Standing {
                    site: Role::parse(&r.try_get::<String, _>("site_role")?),
                    owner: r.try_get::<Option<i64>, _>("owner_id")? == Some(user.0),
                    room_moderator: room_role.as_deref() == Some("moderator"),
                    member: room_role.is_some(),
                })
            })
            .transpose()
        })
    }

    /// The users who are staff of `room`: its owner, its moderators, the site's moderators and
    /// admins.
    pub async fn room_staff(&self, room: RoomId) -> Result<Vec<UserId>> {
        on_pool!(self, read, |p| {
            let rows = sqlx::query(
                "SELECT owner_id FROM rooms WHERE id = $1 AND owner_id IS NOT NULL \
                 UNION SELECT user_id FROM room_members WHERE room_id = $1 AND role = 'moderator' \
                 UNION SELECT id FROM users WHERE role IN ('moderator', 'admin')",
            )
            .bind(room.0)
            .fetch_all(p)
            .await?;
            rows.iter().map(|r| Ok(UserId(r.try_get(0)?))).collect()
        })
    }

    /// Makes a member a room moderator (or a plain member again); false when not a member.
    pub async fn set_room_moderator(&self, room: RoomId, user: UserId, moderator: bool) -> Result<bool> {
        on_pool!(self, write, |p| {
            let done = sqlx::query("UPDATE room_members SET role = $3 WHERE room_id = $1 AND user_id = $2")
                .bind(room.0)
                .bind(user.0)
                .bind(if moderator { "moderator" } else { "member" })
                .execute(p)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    // ---- room sanctions ----

    /// Puts a room sanction (replacing one of the same kind); `expires_at` `None`: until lifted.
    pub async fn put_room_sanction(
        &self,
        room: RoomId,
        user: UserId,
        kind: RoomSanctionKind,
        by: Option<UserId>,
        reason: &str,
        expires_at: Option<i64>,
    ) -> Result<()> {
        on_pool!(self, write, |p| {
            sqlx::query(
                "INSERT INTO room_sanctions (room_id, user_id, kind, reason, by_id, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (room_id, user_id, kind) DO UPDATE SET \
                   reason = excluded.reason, by_id = excluded.by_id, created_at = excluded.created_at, \
                   expires_at = excluded.expires_at",
            )
            .bind(room.0)
            .bind(user.0)
            .bind(kind.as_str())
            .bind(reason)
            .bind(by.map(|u| u.0))
            .bind(now_ms())
            .bind(expires_at)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    /// Lifts a room sanction; false when none was in force.
    pub async fn lift_room_sanction(&self, room: RoomId, user: UserId, kind: RoomSanctionKind) -> Result<bool> {
        on_pool!(self, write, |p| {
            let done = sqlx::query(
                "DELETE FROM room_sanctions WHERE room_id = $1 AND user_id = $2 AND kind = $3 \
                   AND (expires_at IS NULL OR expires_at > $4)",
            )
            .bind(room.0)
            .bind(user.0)
            .bind(kind.as_str())
            .bind(now_ms())
            .execute(p)
            .await?;
            sqlx::query("DELETE FROM room_sanctions WHERE room_id = $1 AND user_id = $2 AND kind = $3")
                .bind(room.0)
                .bind(user.0)
                .bind(kind.as_str())
                .execute(p)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Whether `user` is banned from `room` now.
    pub async fn room_banned(&self, room: RoomId, user: UserId) -> Result<bool> {
        on_pool!(self, read, |p| {
            let row = sqlx::query(
                "SELECT 1 FROM room_sanctions WHERE room_id = $1 AND user_id = $2 AND kind = 'ban' \
                   AND (expires_at IS NULL OR expires_at > $3)",
            )
            .bind(room.0)
            .bind(user.0)
            .bind(now_ms())
            .fetch_optional(p)
            .await?;
            Ok(row.is_some())
        })
    }

    /// The sanctions in force in `room`, newest first.
    pub async fn room_sanctions(&self, room: RoomId) -> Result<Vec<RoomSanction>> {
        on_pool!(self, read, |p| {
            let rows = sqlx::query(
                "SELECT s.user_id, u.username, s.kind, s.reason, s.by_id, b.username AS by_name, s.created_at, \
                   s.expires_at FROM room_sanctions s JOIN users u ON u.id = s.user_id \
                   LEFT JOIN users b ON b.id = s.by_id \
                 WHERE s.room_id = $1 AND (s.expires_at IS NULL OR s.expires_at > $2) \
                 ORDER BY s.created_at DESC LIMIT 500",
            )
            .bind(room.0)
            .bind(now_ms())
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(RoomSanction {
                        user: (UserId(r.try_get("user_id")?), r.try_get("username")?),
                        kind: r.try_get("kind")?,
                        reason: r.try_get("reason")?,
                        by: named(r.try_get("by_id")?, r.try_get("by_name")?),
                        created_at: r.try_get("created_at")?,
                        expires_at: r.try_get("expires_at")?,
                    })
                })
                .collect()
        })
    }

    /// Every room mute in force: room, user and its end (`i64::MAX`: until lifted).
    pub async fn active_room_mutes(&self) -> Result<Vec<(RoomId, UserId, i64)>> {
        on_pool!(self, read, |p| {
            let rows = sqlx::query(
                "SELECT room_id, user_id, expires_at FROM room_sanctions \
                 WHERE kind = 'mute' AND (expires_at IS NULL OR expires_at > $1)",
            )
            .bind(now_ms())
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|r| {
                    let until: Option<i64> = r.try_get(2)?;
                    Ok((RoomId(r.try_get(0)?), UserId(r.try_get(1)?), until.unwrap_or(i64::MAX)))
                })
                .collect()
        })
    }

    // ---- the queue ----

    /// Stores a held message or a flag; a held message resent with the same cid is the item
    /// stored first (its id is returned again).
    pub async fn add_queue_item(&self, item: NewItem<'_>) -> Result<i64> {
        let (key, body) = match &self.cipher {
            Some(c) => {
                let (key, sealed) = c.seal(item.room.0, 0, item.body)?;
                (Some(key), sealed)
            }
            None => (None, item.body.to_owned()),
        };
        let attachments = if item.attachments.is_empty() {
            None
        } else {
            Some(serde_json::to_string(item.attachments).map_err(|e| crate::Error::Invalid(e.to_string()))?)
        };
        on_pool!(self, write, |p| {
            sqlx::query(
                "INSERT INTO reports (room_id, seq, reporter_id, reason, created_at, kind, sender_id, body, cid, \
                   reply_to, body_key, attachments) VALUES ($1, NULL, $2, $3, $4, $5, $2, $6, $7, $8, $9, $10) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(item.room.0)
            .bind(item.sender.0)
            .bind(item.reason)
            .bind(now_ms())
            .bind(item.kind)
            .bind(&body)
            .bind(item.cid)
            .bind(item.reply_to.map(|s| s as i64))
            .bind(key.as_deref())
            .bind(attachments.as_deref())
            .execute(p)
            .await?;
            let id: i64 = sqlx::query(
                "SELECT id FROM reports WHERE room_id = $1 AND sender_id = $2 AND cid = $3 AND kind = $4 \
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(item.room.0)
            .bind(item.sender.0)
            .bind(item.cid)
            .bind(item.kind)
            .fetch_one(p)
            .await?
            .try_get(0)?;
            Ok(id)
        })
    }

    /// One queue item.
    pub async fn queue_item(&self, id: i64) -> Result<Option<QueueItem>> {
        on_pool!(self, read, |p| {
            let row = sqlx::query(queue_sql!("WHERE q.id = $1")).bind(id).fetch_optional(p).await?;
            row.map(|r| queue_item(&r, self.cipher.as_deref())).transpose()
        })
    }

    /// The held item of `sender`'s `cid` in `room`, if that message was held.
    pub async fn held_item(&self, room: RoomId, sender: UserId, cid: &str) -> Result<Option<QueueItem>> {
        on_pool!(self, read, |p| {
            let row =
                sqlx::query(queue_sql!("WHERE q.room_id = $1 AND q.sender_id = $2 AND q.cid = $3 AND q.kind = 'held'"))
                    .bind(room.0)
                    .bind(sender.0)
                    .bind(cid)
                    .fetch_optional(p)
                    .await?;
            row.map(|r| queue_item(&r, self.cipher.as_deref())).transpose()
        })
    }

    /// `sender`'s messages held in `room` (whatever became of them), newest first, as (when
    /// held, body): what the automatic flags count besides their stored messages.
    pub async fn recent_held(&self, room: RoomId, sender: UserId, limit: u32) -> Result<Vec<(i64, String)>> {
        on_pool!(self, read, |p| {
            let rows = sqlx::query(queue_sql!(
                "WHERE q.room_id = $1 AND q.sender_id = $2 AND q.kind = 'held' ORDER BY q.id DESC LIMIT $3"
            ))
            .bind(room.0)
            .bind(sender.0)
            .bind(i64::from(limit))
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|r| queue_item(r, self.cipher.as_deref()).map(|i| (i.created_at, i.body.unwrap_or_default())))
                .collect()
        })
    }

    /// Queue items matching `f`, newest first.
    pub async fn queue_page(&self, f: QueueFilter) -> Result<Vec<QueueItem>> {
        on_pool!(self, read, |p| {
            let rows = sqlx::query(queue_sql!(
                "WHERE ($1 = 0 OR q.room_id = $1) AND ($2 = 0 OR q.status = 'open') AND q.id < $3 \
                 ORDER BY q.id DESC LIMIT $4"
            ))
            .bind(f.room.map_or(0, |r| r.0))
            .bind(i64::from(f.open_only))
            .bind(f.before.unwrap_or(i64::MAX))
            .bind(i64::from(f.limit))
            .fetch_all(p)
            .await?;
            rows.iter().map(|r| queue_item(r, self.cipher.as_deref())).collect()
        })
    }

    /// Decides an open item: sets its status; false when it was decided already.
    pub async fn decide_item(&self, id: i64, status: &str, by: Option<UserId>, reason: &str) -> Result<bool> {
        on_pool!(self, write, |p| {
            let done = sqlx::query(
                "UPDATE reports SET status = $2, decided_by = $3, decided_at = $4, decision_reason = $5 \
                 WHERE id = $1 AND status = 'open'",
            )
            .bind(id)
            .bind(status)
            .bind(by.map(|u| u.0))
            .bind(now_ms())
            .bind(reason)
            .execute(p)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Opens a decided item again (its decision's action failed).
    pub async fn reopen_item(&self, id: i64) -> Result<()> {
        on_pool!(self, write, |p| {
            sqlx::query(
                "UPDATE reports SET status = 'open', decided_by = NULL, decided_at = NULL, decision_reason = NULL                  WHERE id = $1",
            )
            .bind(id)
            .execute(p)
            .await?;
        });
        Ok(())
    }

    // ---- settings ----

    /// Every stored moderation setting (rooms with their own, and the site's as room 0).
    pub async fn all_moderation_settings(&self) -> Result<Vec<StoredSettings>> {
        on_pool!(self, read, |p| {
            let rows =
                sqlx::query("SELECT room_id, premod, flags, updated_at FROM moderation_settings").fetch_all(p).await?;
            rows.iter()
                .map(|r| {
                    Ok(StoredSettings {
                        room: r.try_get(0)?,
                        premod: r.try_get::<i64, _>(1)? != 0,
                        flags: r.try_get(2)?,
                        updated_at: r.try_get(3)?,
                    })
                })
                .collect()
        })
    }

    /// One room's (0: the site's) stored settings.
    pub async fn moderation_settings(&self, room: i64) -> Result<Option<StoredSettings>> {
        on_pool!(self, read, |p| {
            let row =
                sqlx::query("SELECT room_id, premod, flags, updated_at FROM moderation_settings WHERE room_id = $1")
                    .bind(room)
                    .fetch_optional(p)
                    .await?;
            row.map(|r| {
                Ok(StoredSettings {
                    room: r.try_get(0)?,
                    premod: r.try_get::<i64, _>(1)? != 0,
                    flags: r.try_get(2)?,
                    updated_at: r.try_get(3)?,
                })
            })
            .transpose()
        })
    }

    /// Stores a room's (0: the site's) settings.
    pub async fn put_moderation_settings(&self, room: i64, premod: bool, flags: &str) -> Result<()> {
        on_pool!(self, write, |p| {
            sqlx::query(
                "INSERT INTO moderation_settings (room_id, premod, flags, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (room_id) DO UPDATE SET premod = excluded.premod, flags = excluded.flags, \
                   updated_at = excluded.updated_at",
            )
            .bind(room)
            .bind(i64::from(premod))
            .bind(flags)
            .bind(now_ms())
            .execute(p)
            .await?;
        });
        Ok(())
    }
}
