//! A user's inbox in storage: a row of `rooms` with the id `-user` (`RoomId::inbox_of`), whose
//! only member is the user, so its events are stored, sequenced, fenced and replayed like any
//! room's. This module creates that row when a user first needs it, and keeps `mentions`: who
//! was mentioned in which message, for the room list's mention count.

use super::{Inner, Store, on_pool};
use crate::error::Result;
use confab_schemas::{RoomId, UserId, now_ms};
use sqlx::Row;

impl Store {
    /// Makes sure `user`'s inbox exists (its row and membership); a repeat does nothing. The
    /// room directory calls it when it finds no row for the inbox.
    pub async fn ensure_inbox(&self, user: UserId) -> Result<()> {
        let inbox = RoomId::inbox_of(user);
        let now = now_ms();
        on_pool!(self, write, |p| {
            async {
                let mut tx = p.begin().await?;
                // The name key cannot collide with a room's: those hold no control character 2.
                sqlx::query(
                    "INSERT INTO rooms (id, name, name_lower, description, visibility, owner_id, created_at) \
                     VALUES ($1, 'inbox', $2, '', 'private', $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(inbox.0)
                .bind(format!("\u{2}inbox\u{2}{}", user.0))
                .bind(user.0)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO room_members (room_id, user_id, role, joined_at) VALUES ($1, $2, 'owner', $3) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(inbox.0)
                .bind(user.0)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }
            .await
        })
    }

    /// How many mentions of `user` each room has after the user's read cursor, for the rooms
    /// with mentions.
    pub async fn unread_mentions(&self, user: UserId) -> Result<Vec<(RoomId, u64)>> {
        on_pool!(self, read, |p| {
            let rows = sqlx::query(
                "SELECT m.room_id, COUNT(*) AS n FROM mentions m \
                 LEFT JOIN read_cursors c ON c.user_id = m.user_id AND c.room_id = m.room_id \
                 WHERE m.user_id = $1 AND m.seq > COALESCE(c.seq, 0) GROUP BY m.room_id",
            )
            .bind(user.0)
            .fetch_all(p)
            .await?;
            rows.iter().map(|r| Ok((RoomId(r.try_get(0)?), r.try_get::<i64, _>(1)? as u64))).collect()
        })
    }
}
