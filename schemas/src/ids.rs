//! Newtype ids for users and rooms. Both are database-assigned `i64` and travel as JSON numbers.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A user's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub i64);

/// A room's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoomId(pub i64);

impl RoomId {
    /// The inbox of `user`: the per-user event sequence (see `InboxEvent`), placed and sequenced
    /// like a room. Inbox ids are the negated user ids, so any node finds a user's inbox (and
    /// its owner node) without a lookup; ordinary rooms have positive ids.
    pub fn inbox_of(user: UserId) -> RoomId {
        RoomId(-user.0)
    }

    /// Whether this is a user's inbox rather than a room people talk in.
    pub fn is_inbox(self) -> bool {
        self.0 < 0
    }

    /// The user whose inbox this is.
    pub fn inbox_user(self) -> Option<UserId> {
        self.is_inbox().then_some(UserId(-self.0))
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
