//! Storage rows as the store returns them, and their JSON shape in the REST API.

use crate::attachments::Attachment;
use crate::ids::{RoomId, UserId};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A user's role, from least to most privileged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Moderator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Moderator => "moderator",
            Role::Admin => "admin",
        }
    }

    /// How much power the role holds: user 0, moderator 1, admin 2.
    pub fn rank(self) -> u8 {
        match self {
            Role::User => 0,
            Role::Moderator => 1,
            Role::Admin => 2,
        }
    }

    /// Parses the stored form; anything unknown is the least privileged role.
    pub fn parse(s: &str) -> Role {
        match s {
            "admin" => Role::Admin,
            "moderator" => Role::Moderator,
            _ => Role::User,
        }
    }
}

/// Who may see and join a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Listed to everyone; joining makes a user a member.
    Public,
    /// Listed to members only; the owner adds members.
    Private,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
        }
    }

    pub fn parse(s: &str) -> Option<Visibility> {
        match s {
            "public" => Some(Visibility::Public),
            "private" => Some(Visibility::Private),
            _ => None,
        }
    }
}

/// What a room is: a chat room, or a direct conversation of 2 to 10 people (no owner, no name,
/// no one else joins it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomKind {
    #[default]
    Room,
    Dm,
    /// A chat of two strangers the match pool paired (`crate::stranger`).
    Stranger,
}

impl RoomKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomKind::Room => "room",
            RoomKind::Dm => "dm",
            RoomKind::Stranger => "stranger",
        }
    }

    pub fn parse(s: &str) -> Option<RoomKind> {
        match s {
            "room" => Some(RoomKind::Room),
            "dm" => Some(RoomKind::Dm),
            "stranger" => Some(RoomKind::Stranger),
            _ => None,
        }
    }

    pub fn is_room(&self) -> bool {
        *self == RoomKind::Room
    }
}

/// A user account. The password hash never leaves the store through serde.
#[derive(Debug, Clone, Serialize)]
pub struct UserRow {
    pub id: UserId,
    pub username: String,
    pub role: Role,
    pub created_at: i64,
    #[serde(skip)]
    pub password_hash: Option<String>,
}

/// A room.
#[derive(Debug, Clone, Serialize)]
pub struct RoomRow {
    pub id: RoomId,
    pub name: String,
    pub description: String,
    pub visibility: Visibility,
    pub owner_id: Option<UserId>,
    pub created_at: i64,
    pub kind: RoomKind,
}

/// What an event of a room's sequence is. Every event takes the next seq of its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A chat message.
    #[default]
    Message,
    /// A new body for the message `target` (its author's).
    Edit,
    /// The message `target` is deleted: its body, and its edits' bodies, are gone from storage.
    Delete,
    /// Something happened to the room (`SystemEvent`, as JSON in the body).
    System,
}

impl EventKind {
    /// The stored form (the `kind` column).
    pub fn code(self) -> i64 {
        match self {
            EventKind::Message => 0,
            EventKind::Edit => 1,
            EventKind::Delete => 2,
            EventKind::System => 3,
        }
    }

    pub fn from_code(code: i64) -> EventKind {
        match code {
            1 => EventKind::Edit,
            2 => EventKind::Delete,
            3 => EventKind::System,
            _ => EventKind::Message,
        }
    }
}

/// A committed event of a room (a chat message, an edit, a delete). `body` and `username` are
/// shared so fan-out and caches clone cheaply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRow {
    pub id: i64,
    pub room: RoomId,
    pub seq: u64,
    pub sender: UserId,
    pub sender_name: Arc<str>,
    pub cid: Arc<str>,
    pub body: Arc<str>,
    pub reply_to: Option<u64>,
    pub ts: i64,
    pub edited_at: Option<i64>,
    pub deleted: bool,
    pub kind: EventKind,
    /// The message an edit or delete is about.
    pub target: Option<u64>,
    /// A message's files (their metadata; the bytes are in blob storage).
    pub attachments: Vec<Attachment>,
}
