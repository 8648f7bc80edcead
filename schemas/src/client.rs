//! The client protocol v1: JSON text frames on `/ws`, tagged by `"type"`.
//!
//! `ClientFrame` is what browsers send; `ServerFrame` is what they receive. Error codes are stable
//! strings (`ErrorCode`), shared with the REST API's error bodies.

use crate::attachments::{AttachmentView, MediaUrls};
use crate::ids::{RoomId, UserId};
use crate::rows::{EventKind, MessageRow, Role, RoomKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A frame from a client.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Authenticate a socket that came without cookie or bearer header.
    Auth {
        token: String,
    },
    /// Subscribe to a room and replay every message with `seq > since`.
    Join {
        room: RoomId,
        #[serde(default)]
        since: Option<u64>,
    },
    Leave {
        room: RoomId,
    },
    /// Post a message; `cid` is the client's idempotency key.
    Send {
        room: RoomId,
        cid: String,
        body: String,
        #[serde(default)]
        reply_to: Option<u64>,
        /// Upload ids (`POST /api/uploads`) the message carries, at most `MAX_ATTACHMENTS`; the
        /// body may then be empty.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<String>,
    },
    Typing {
        room: RoomId,
        on: bool,
    },
    /// Replace the body of one's own message `seq`; every member gets an `edited` event.
    Edit {
        room: RoomId,
        seq: u64,
        body: String,
        /// Makes the edit idempotent like a send (one is made up when absent).
        #[serde(default)]
        cid: Option<String>,
    },
    /// Delete message `seq` (one's own; the room's owner, moderators and admins: any).
    Delete {
        room: RoomId,
        seq: u64,
        #[serde(default)]
        cid: Option<String>,
    },
    /// Move the user's read cursor.
    Read {
        room: RoomId,
        seq: u64,
    },
    Ping,
    /// A request to the match pool (`crate::stranger`); parsed beside the others, never by the
    /// derive.
    #[serde(skip)]
    Stranger(crate::stranger::StrangerFrame),
}

/// A user as the protocol names one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    pub id: UserId,
    pub username: Arc<str>,
}

/// Who the server authenticated, in `hello`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HelloUser {
    pub id: UserId,
    pub username: String,
    pub role: Role,
}

/// A frame to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Hello {
        user: HelloUser,
        node: String,
        protocol: u32,
        /// The user's inbox: join it (with `since`) like a room to get `InboxEvent`s.
        inbox: RoomId,
    },
    /// Answer to `join`: the room's head and who is online (at most `ONLINE_LIST_MAX` listed).
    Joined {
        room: RoomId,
        head: u64,
        online: Vec<UserRef>,
        online_count: usize,
    },
    Left {
        room: RoomId,
    },
    Message {
        room: RoomId,
        seq: u64,
        id: i64,
        from: UserRef,
        body: Arc<str>,
        ts: i64,
        reply_to: Option<u64>,
        /// Its files, with signed URLs (absent when none).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<AttachmentView>,
    },
    /// Message `target` has a new body (event `seq`).
    Edited {
        room: RoomId,
        seq: u64,
        id: i64,
        target: u64,
        from: UserRef,
        body: Arc<str>,
        ts: i64,
    },
    /// Something happened to the room (event `seq`), done by `by`.
    System {
        room: RoomId,
        seq: u64,
        id: i64,
        by: UserRef,
        event: SystemEvent,
        ts: i64,
    },
    /// Message `target` was deleted (event `seq`) by `by`.
    Deleted {
        room: RoomId,
        seq: u64,
        id: i64,
        target: u64,
        by: UserRef,
        ts: i64,
    },
    Ack {
        cid: Arc<str>,
        room: RoomId,
        seq: u64,
        id: i64,
        ts: i64,
    },
    Error {
        code: ErrorCode,
        message: String,
        /// The `cid` of the send it refuses.
        #[serde(rename = "ref")]
        reference: Option<String>,
        /// The room of the join, leave or read it refuses.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<RoomId>,
    },
    Typing {
        room: RoomId,
        user: UserRef,
        on: bool,
    },
    Presence {
        room: RoomId,
        user: UserRef,
        online: bool,
    },
    /// The client should reconnect and rejoin each room with `since` = the given seq.
    Reconnect {
        reason: String,
        resume: BTreeMap<String, u64>,
    },
    /// The room was deleted, with its history: it is gone from this connection.
    RoomDeleted {
        room: RoomId,
    },
    /// On an inbox subscription, not sequenced: a room of the user's moved on. `head` is its
    /// last event seq, `messages` how many messages came since its previous `activity`,
    /// `last` its newest message (a preview), `name` its name when it changed.
    Activity {
        room: RoomId,
        head: u64,
        messages: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last: Option<ActivityLast>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// To every connected session: someone created a public room.
    RoomCreated {
        room: RoomSummary,
    },
    /// To every connected session on every node: an admin's announcement, in force until
    /// `expires_at` (ms) unless dismissed (`GET /api/broadcasts` lists those in force).
    Broadcast {
        id: i64,
        body: String,
        from: Option<UserRef>,
        ts: i64,
        expires_at: i64,
    },
    /// A send of a pre-moderated room (or one a flag held) waits for a moderator: no ack and no
    /// seq until it is released (then the normal `ack`), or `rejected`.
    Held {
        room: RoomId,
        cid: String,
        item: i64,
    },
    /// To the room's staff joined to it: a new item of its moderation queue (as the queue
    /// route lists it).
    Queued {
        room: RoomId,
        item: serde_json::Value,
    },
    /// A held message was rejected: it never gets a seq.
    Rejected {
        room: RoomId,
        cid: String,
        reason: String,
    },
    /// The gap is too large to replay: reload history over REST and rejoin from `head`.
    Resync {
        room: RoomId,
        head: u64,
    },
    Pong,
    /// In the match pool's queue (answer to `match`, `next`, and again now and then): how many
    /// people wait, and the interests one entered with (normalised).
    Waiting {
        waiting: u64,
        interests: Vec<String>,
    },
    /// Paired with a stranger in the stranger chat `room` (join it like a room); `shared` are
    /// the interests both entered with, `you` how one is shown in it.
    Matched {
        room: RoomId,
        shared: Vec<String>,
        you: UserRef,
    },
    /// Out of the queue and out of any stranger chat (answer to `unmatch`, `stranger_report` and
    /// `stranger_block`).
    Unmatched {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<RoomId>,
    },
    /// The access token expires in `expires_in` seconds: refresh it and send a new `auth` frame.
    Reauth {
        expires_in: i64,
    },
    /// A new `auth` frame was accepted.
    Authenticated {
        expires_in: i64,
    },
}

/// The newest message of a room, as an `activity` frame previews it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityLast {
    pub seq: u64,
    pub from: UserRef,
    /// At most `EXCERPT_CHARS` characters of the body.
    pub body: String,
    pub ts: i64,
}

/// A room as `room_created` names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomSummary {
    pub id: RoomId,
    pub name: String,
    pub description: String,
    pub visibility: String,
    pub owner: Option<UserId>,
}

/// How much of a body a preview (`activity`, `mention`) carries.
pub const EXCERPT_CHARS: usize = 140;

/// The first `EXCERPT_CHARS` characters of `body`.
pub fn excerpt(body: &str) -> String {
    match body.char_indices().nth(EXCERPT_CHARS) {
        Some((i, _)) => format!("{}…", &body[..i]),
        None => body.to_owned(),
    }
}

/// Why a room left a user's list (`room_removed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovedReason {
    Left,
    Removed,
    Deleted,
}

/// What a `system` event says happened to a room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum SystemEvent {
    /// The owner (or an admin) added `user` to the room.
    MemberAdded {
        user: UserRef,
    },
    /// `user` left the room.
    MemberLeft {
        user: UserRef,
    },
    /// The owner (or an admin) removed `user` from the room.
    MemberRemoved {
        user: UserRef,
    },
    Renamed {
        name: String,
    },
    Described {
        description: String,
    },
    /// The room now belongs to `owner`.
    OwnerChanged {
        owner: UserRef,
    },
    // The events of a user's inbox (a `system` frame whose `room` is the inbox).
    /// The user was added to `room` (invited, or created or joined it).
    RoomAdded {
        room: RoomId,
        name: String,
        visibility: String,
        /// `dm` for a direct conversation (then `members` lists its people).
        #[serde(default, skip_serializing_if = "RoomKind::is_room")]
        kind: RoomKind,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        members: Vec<UserRef>,
    },
    /// `room` left the user's list.
    RoomRemoved {
        room: RoomId,
        reason: RemovedReason,
    },
    /// `from` wrote `@user` in message `target` of `room`.
    Mention {
        room: RoomId,
        target: u64,
        from: UserRef,
        excerpt: String,
    },
}

/// The most online users listed in a `joined` frame; `online_count` has the total.
pub const ONLINE_LIST_MAX: usize = 100;

impl ServerFrame {
    /// The frame of a committed event: `message`, `edited` or `deleted`. A message's
    /// attachments get URLs signed by `urls` now: encode a stored row afresh for each replay.
    pub fn event(m: &MessageRow, urls: &dyn MediaUrls) -> ServerFrame {
        let from = UserRef { id: m.sender, username: m.sender_name.clone() };
        match (m.kind, m.target) {
            (EventKind::Edit, Some(target)) => {
                ServerFrame::Edited { room: m.room, seq: m.seq, id: m.id, target, from, body: m.body.clone(), ts: m.ts }
            }
            (EventKind::Delete, Some(target)) => {
                ServerFrame::Deleted { room: m.room, seq: m.seq, id: m.id, target, by: from, ts: m.ts }
            }
            (EventKind::System, _) => match serde_json::from_str::<SystemEvent>(&m.body) {
                Ok(event) => ServerFrame::System { room: m.room, seq: m.seq, id: m.id, by: from, event, ts: m.ts },
                // Not a system event this version knows: shown as what it says.
                Err(_) => ServerFrame::message(m, urls),
            },
            _ => ServerFrame::message(m, urls),
        }
    }

    /// The `message` frame of a committed row.
    pub fn message(m: &MessageRow, urls: &dyn MediaUrls) -> ServerFrame {
        ServerFrame::Message {
            room: m.room,
            seq: m.seq,
            id: m.id,
            from: UserRef { id: m.sender, username: m.sender_name.clone() },
            body: m.body.clone(),
            ts: m.ts,
            reply_to: m.reply_to,
            attachments: AttachmentView::all(&m.attachments, urls),
        }
    }

    /// The `ack` frame of a committed row.
    pub fn ack(m: &MessageRow) -> ServerFrame {
        ServerFrame::Ack { cid: m.cid.clone(), room: m.room, seq: m.seq, id: m.id, ts: m.ts }
    }

    pub fn error(code: ErrorCode, message: impl Into<String>, reference: Option<String>) -> ServerFrame {
        ServerFrame::Error { code, message: message.into(), reference, room: None }
    }

    /// An error about a room-level request (join, leave, read): names the room.
    pub fn room_error(code: ErrorCode, message: impl Into<String>, room: RoomId) -> ServerFrame {
        ServerFrame::Error { code, message: message.into(), reference: None, room: Some(room) }
    }
}

/// Stable, machine-readable error codes of the protocol and the REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadFrame,
    UnknownType,
    MissingField,
    FrameTooLarge,
    TooLong,
    EmptyBody,
    UnknownRoom,
    NotMember,
    NotJoined,
    TooManyRooms,
    NotAuthenticated,
    AuthFailed,
    Forbidden,
    RateLimited,
    Overloaded,
    Retry,
    Conflict,
    NotFound,
    Invalid,
    Internal,
    CsrfFailed,
    WeakPassword,
    CodeExpired,
    TooManyAttempts,
    TooManyConnections,
    /// A request (its body) did not arrive in time.
    RequestTimeout,
    /// Needs a fresh sign-in (or a fresh email code) first.
    ReauthRequired,
    /// What the request is about was deleted.
    Gone,
    /// You blocked the person this is about: unblock them first.
    Blocked,
    /// The person does not take direct messages from you (they accept them only from people
    /// they share a room with, or they blocked you: which one is not told).
    DmRefused,
    /// A direct message to oneself.
    DmSelf,
    /// More people than a group direct message holds (10 with its opener).
    TooManyMembers,
    /// A search without a word to look for.
    EmptyQuery,
    /// Search is off on this node (message bodies are encrypted at rest).
    SearchUnavailable,
    /// A file larger than its kind's limit (HTTP 413).
    TooLarge,
    /// A file whose bytes are of no type uploads accept (HTTP 415).
    UnsupportedType,
    /// The user's stored uploads would pass their quota (HTTP 429).
    QuotaExceeded,
    /// A send names an upload that does not exist, is not the sender's, or expired.
    AttachmentNotFound,
    /// A send names an upload already attached to another message.
    AttachmentUsed,
    /// Too many attachments on one message.
    TooManyAttachments,
    /// The account is banned from the site: it cannot sign in, refresh or connect (HTTP 403).
    Banned,
    /// The account is muted: it may not send anywhere until the mute ends.
    Muted,
    /// The message contains a word the room's (or the site's) flags refuse.
    BannedWord,
    /// The same message sent too many times in a short while.
    Repeated,
    /// More interests than a `match` takes (`stranger::MAX_INTERESTS`).
    TooManyInterests,
    /// `stranger_report` or `stranger_block` from someone in no stranger chat.
    NoStrangerChat,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::MissingField => "missing_field",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::TooLong => "too_long",
            ErrorCode::EmptyBody => "empty_body",
            ErrorCode::UnknownRoom => "unknown_room",
            ErrorCode::NotMember => "not_member",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::TooManyRooms => "too_many_rooms",
            ErrorCode::NotAuthenticated => "not_authenticated",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Retry => "retry",
            ErrorCode::Conflict => "conflict",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Invalid => "invalid",
            ErrorCode::Internal => "internal",
            ErrorCode::CsrfFailed => "csrf_failed",
            ErrorCode::WeakPassword => "weak_password",
            ErrorCode::CodeExpired => "code_expired",
            ErrorCode::TooManyAttempts => "too_many_attempts",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::ReauthRequired => "reauth_required",
            ErrorCode::Gone => "gone",
            ErrorCode::Blocked => "blocked",
            ErrorCode::DmRefused => "dm_refused",
            ErrorCode::DmSelf => "dm_self",
            ErrorCode::TooManyMembers => "too_many_members",
            ErrorCode::EmptyQuery => "empty_query",
            ErrorCode::SearchUnavailable => "search_unavailable",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::UnsupportedType => "unsupported_type",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::AttachmentNotFound => "attachment_not_found",
            ErrorCode::AttachmentUsed => "attachment_used",
            ErrorCode::TooManyAttachments => "too_many_attachments",
            ErrorCode::Banned => "banned",
            ErrorCode::Muted => "muted",
            ErrorCode::BannedWord => "banned_word",
            ErrorCode::Repeated => "repeated",
            ErrorCode::TooManyInterests => "too_many_interests",
            ErrorCode::NoStrangerChat => "no_stranger_chat",
        }
    }
}

/// Why a request was refused: a protocol error code and a message for people, what an `error`
/// frame (or a REST error body) carries. Postcard encodes it as the `(code, message)` pair it
/// replaced, so node frames that carry one keep their bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal { code, message: message.into() }
    }

    /// A refused direct message, which does not say why (a block is never told).
    pub fn dm_refused() -> Refusal {
        Refusal::new(
            ErrorCode::DmRefused,
            "this person does not take direct messages from you (some take them only from people they share a room with)",
        )
    }

    /// The `error` frame of this refusal, naming the request it answers (a `cid`).
    pub fn frame(self, reference: Option<String>) -> ServerFrame {
        ServerFrame::error(self.code, self.message, reference)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

pub use crate::parse::parse_client_frame;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_client_frame() {
        let join = parse_client_frame(br#"{"type":"join","room":3,"since":7}"#).unwrap();
        assert_eq!(join, ClientFrame::Join { room: RoomId(3), since: Some(7) });
        let send = parse_client_frame(br#"{"type":"send","room":1,"cid":"a","body":"hi"}"#).unwrap();
        let attachments = Vec::new();
        assert_eq!(
            send,
            ClientFrame::Send { room: RoomId(1), cid: "a".into(), body: "hi".into(), reply_to: None, attachments }
        );
        assert_eq!(parse_client_frame(br#"{"type":"ping"}"#).unwrap(), ClientFrame::Ping);
    }

    #[test]
    fn classifies_bad_frames() {
        assert_eq!(parse_client_frame(br#"{"type":"dance"}"#).unwrap_err().code, ErrorCode::UnknownType);
        assert_eq!(parse_client_frame(br#"{"type":"send","room":1}"#).unwrap_err().code, ErrorCode::MissingField);
        assert_eq!(parse_client_frame(b"not json").unwrap_err().code, ErrorCode::BadFrame);
        assert_eq!(parse_client_frame(br#"{"room":1}"#).unwrap_err().code, ErrorCode::MissingField);
    }

    #[test]
    fn error_codes_serialize_as_their_names() {
        for code in [ErrorCode::BadFrame, ErrorCode::NotMember, ErrorCode::RateLimited, ErrorCode::Retry] {
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::json!(code.as_str()));
        }
    }
}
