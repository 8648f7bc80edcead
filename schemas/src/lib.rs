//! Shared types of Confab: ids, the client JSON protocol (v1), what a client asks a room to sequence
//! (`Draft`), the node-to-node postcard protocol,
//! storage rows, pre-encoded WebSocket frames and the SQL migrations for SQLite and PostgreSQL.
//!
//! This crate owns no behaviour beyond encoding and decoding; it must never depend on another
//! Confab crate.

pub mod attachments;
pub mod client;
pub mod draft;
pub mod ids;
pub mod node;
mod parse;
pub mod rows;
pub mod stranger;
pub mod wire;

pub use attachments::{Attachment, AttachmentKind, AttachmentView, MediaUrls};
pub use client::{ClientFrame, ErrorCode, Refusal, ServerFrame, SystemEvent, UserRef};
pub use draft::Draft;
pub use ids::{RoomId, UserId};
pub use rows::{EventKind, MessageRow, Role, RoomKind, RoomRow, UserRow, Visibility};
pub use stranger::{Seats, StrangerFrame};

/// Version of the client WebSocket protocol spoken on `/ws`. Version 2: a room's seqs number
/// all its events (`message`, `edited`, `deleted`), not only messages; clients of version 1 keep
/// working if they ignore frame types they do not know and do not expect message seqs to be
/// consecutive. Version 3 adds the user's inbox (`hello.inbox`, joined like a room; its events
/// are `system` frames with the ops `room_added`, `room_removed`, `mention`), the `activity` and
/// `room_created` frames; earlier clients that ignore what they do not know keep working.
pub const PROTOCOL_VERSION: u32 = 3;

/// Migrations for the embedded SQLite database.
pub static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
/// Migrations for PostgreSQL.
pub static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Milliseconds since the Unix epoch, the one time unit of storage and protocol.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
