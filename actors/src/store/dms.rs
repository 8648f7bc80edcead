//! Direct conversations in storage: a room of kind `dm` without owner or name, whose members are
//! fixed when it is made. Its name key (`rooms.name_lower`, unique) is made of its members' ids,
//! so opening the same conversation twice, even at the same instant on two nodes, gives one room.

use super::{Inner, Store, on_pool, rows};
use crate::error::{Error, Result};
use confab_schemas::{RoomId, RoomRow, UserId, now_ms};
use sqlx::Row;
use std::collections::HashMap;

/// The unique name key of the conversation of `members` (ids ascending, no repeats). It cannot
/// collide with a room's (no control characters) nor an inbox's (`\x02inbox\x02…`).
pub fn dm_key(members: &[UserId]) -> String {
    let ids: Vec<String> = members.iter().map(|u| u.0.to_string()).collect();
    format!("\u{2}dm\u{2}{}", ids.join(","))
}

/// A member of a direct conversation as its listing shows them.
#[derive(Debug, Clone)]
pub struct DmMember {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
}

impl Store {
    /// The direct conversation of `members` (ids ascending, no repeats, 2 to 10), made now if it
    /// did not exist: the room and whether it was made by this call.
    pub async fn open_dm(&self, members: &[UserId]) -> Result<(RoomRow, bool)> {
        let key = dm_key(members);
        let now = now_ms();
        let made: Option<i64> = on_pool!(self, write, |p| {
            async {
                let mut tx = p.begin().await?;
                // A concurrent opener's insert makes this one do nothing (PostgreSQL waits for it
                // to commit first); the room is then read below.
                let id: Option<i64> = sqlx::query(
                    "INSERT INTO rooms (name, name_lower, description, visibility, owner_id, created_at, kind) \
                     VALUES ('', $1, '', 'private', NULL, $2, 'dm') ON CONFLICT (name_lower) DO NOTHING RETURNING id",
                )
                .bind(&key)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.get(0));
                if let Some(id) = id {
                    for m in members {
                        sqlx::query(
                            "INSERT INTO room_members (room_id, user_id, role, joined_at) VALUES ($1, $2, 'member', $3)",
                        )
                        .bind(id)
                        .bind(m.0)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                tx.commit().await?;
                Ok::<_, Error>(id)
            }
            .await
        })?;
        let room = on_pool!(self, write, |p| {
            let row = sqlx::query(
                "SELECT id, name, description, visibility, owner_id, created_at, kind FROM rooms WHERE name_lower = $1",
            )
            .bind(&key)
            .fetch_optional(p)
            .await?;
            row.map(|r| rows::room(&r)).transpose()
        })?
        .ok_or(Error::NotFound("direct conversation"))?;
        Ok((room, made.is_some()))
    }

    /// The direct conversation of `members` (ids ascending, no repeats), if it exists.
    pub async fn dm_of(&self, members: &[UserId]) -> Result<Option<RoomRow>> {
        on_pool!(self, read, |p| {
            let row = sqlx::query(
                "SELECT id, name, description, visibility, owner_id, created_at, kind FROM rooms WHERE name_lower = $1",
            )
            .bind(dm_key(members))
            .fetch_optional(p)
            .await?;
            row.map(|r| rows::room(&r)).transpose()
        })
    }

    /// The members of the direct conversations `user` is in, by conversation.
    pub async fn dm_members_of(&self, user: UserId) -> Result<HashMap<RoomId, Vec<DmMember>>> {
        let rows = on_pool!(self, read, |p| {
            sqlx::query(
                "SELECT o.room_id, u.id, u.username, u.display_name FROM room_members me \
                 JOIN rooms r ON r.id = me.room_id AND r.kind = 'dm' \
                 JOIN room_members o ON o.room_id = me.room_id JOIN users u ON u.id = o.user_id \
                 WHERE me.user_id = $1 ORDER BY o.room_id, u.username_lower",
            )
            .bind(user.0)
            .fetch_all(p)
            .await?
            .iter()
            .map(|r| {
                Ok((
                    RoomId(r.try_get(0)?),
                    DmMember { id: UserId(r.try_get(1)?), username: r.try_get(2)?, display_name: r.try_get(3)? },
                ))
            })
            .collect::<Result<Vec<_>>>()
        })?;
        let mut out: HashMap<RoomId, Vec<DmMember>> = HashMap::new();
        for (room, member) in rows {
            out.entry(room).or_default().push(member);
        }
        Ok(out)
    }

    /// The members of one direct conversation, by username.
    pub async fn dm_members(&self, room: RoomId) -> Result<Vec<DmMember>> {
        on_pool!(self, read, |p| {
            sqlx::query(
                "SELECT u.id, u.username, u.display_name FROM room_members m JOIN users u ON u.id = m.user_id \
                 WHERE m.room_id = $1 ORDER BY u.username_lower",
            )
            .bind(room.0)
            .fetch_all(p)
            .await?
            .iter()
            .map(|r| Ok(DmMember { id: UserId(r.try_get(0)?), username: r.try_get(1)?, display_name: r.try_get(2)? }))
            .collect()
        })
    }
}
