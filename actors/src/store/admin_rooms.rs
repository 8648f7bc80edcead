//! The admins' list of rooms: every chat room, public and private (not direct conversations,
//! inboxes or stranger chats), searched by a part of its name, with its owner and member count.

use super::{Inner, Store, on_pool};
use crate::error::Result;
use confab_schemas::{RoomId, UserId, Visibility};
use sqlx::Row;

/// A room as the admins' list shows it.
#[derive(Debug, Clone)]
pub struct AdminRoom {
    pub id: RoomId,
    pub name: String,
    pub visibility: Visibility,
    pub owner: Option<(UserId, String)>,
    pub members: i64,
    pub created_at: i64,
}

/// How the admins' list of rooms is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomSort {
    Name,
    Newest,
    Members,
}

/// `SELECT … WHERE <search> ORDER BY $order LIMIT/OFFSET`: `$1` the `LIKE` pattern of a public
/// room's name key, `$4` of a private one's, `$2` limit, `$3` offset.
///
/// The search reads the name key `rooms.name_lower`, the name lowercased by Rust when it is
/// written (`room_name_key`), so any letter matches in any case on both databases (SQLite's
/// `LOWER` knows ASCII only). A private room's key is `\u{1}<owner id>\u{1}<name>`: its pattern
/// skips that prefix (names hold no control characters), so a search never matches the id.
macro_rules! admin_rooms_sql {
    ($order:literal) => {
        concat!(
            "SELECT r.id, r.name, r.visibility, r.owner_id, u.username AS owner_name, r.created_at, \
               (SELECT COUNT(*) FROM room_members m WHERE m.room_id = r.id) AS members \
             FROM rooms r LEFT JOIN users u ON u.id = r.owner_id \
             WHERE r.id > 0 AND r.kind = 'room' AND ( \
               (r.visibility = 'public' AND r.name_lower LIKE $1 ESCAPE '\\') \
               OR (r.visibility = 'private' AND r.name_lower LIKE $4 ESCAPE '\\')) ORDER BY ",
            $order,
            " LIMIT $2 OFFSET $3"
        )
    };
}

impl Store {
    /// Chat rooms whose name contains `search` (any case), `limit` from `offset`.
    pub async fn admin_rooms(&self, search: &str, sort: RoomSort, offset: u32, limit: u32) -> Result<Vec<AdminRoom>> {
        let mut pattern = String::from("%");
        // Lowercased as the name key is; a control character is in no name.
        for c in search.to_lowercase().chars().filter(|c| !c.is_control()) {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        let private = format!("\u{1}%\u{1}{pattern}");
        let sql = match sort {
            RoomSort::Name => admin_rooms_sql!("LOWER(r.name), r.id"),
            RoomSort::Newest => admin_rooms_sql!("r.id DESC"),
            RoomSort::Members => admin_rooms_sql!("members DESC, r.id"),
        };
        on_pool!(self, read, |p| {
            let rows = sqlx::query(sql)
                .bind(&pattern)
                .bind(i64::from(limit))
                .bind(i64::from(offset))
                .bind(&private)
                .fetch_all(p)
                .await?;
            rows.iter()
                .map(|r| {
                    let owner: Option<i64> = r.try_get("owner_id")?;
                    let owner_name: Option<String> = r.try_get("owner_name")?;
                    Ok(AdminRoom {
                        id: RoomId(r.try_get("id")?),
                        name: r.try_get("name")?,
                        visibility: Visibility::parse(&r.try_get::<String, _>("visibility")?)
                            .unwrap_or(Visibility::Private),
                        owner: owner.map(|id| (UserId(id), owner_name.unwrap_or_default())),
                        members: r.try_get("members")?,
                        created_at: r.try_get("created_at")?,
                    })
                })
                .collect()
        })
    }
}
