//! `Draft`: what a client asks a room to sequence (a message, an edit or a delete) in one shape,
//! from the parsed frame through the session's checks, the room (and the node protocol, for a
//! room owned elsewhere) to the store's row. The wire formats keep their own shapes: the JSON
//! frames (`send`, `edit`, `delete`) become a draft with `ClientFrame::into_draft`, and postcard
//! encodes a draft exactly as the fields `NodeFrame::Send` carried before it, followed by the
//! upload ids of its attachments (node protocol 5).

use crate::client::ClientFrame;
use crate::ids::RoomId;
use crate::rows::EventKind;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One event a sender asks a room to sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Draft {
    /// The sender's id for it: a resend with the same `cid` gets the first one's ack.
    pub cid: Arc<str>,
    /// The text (empty for a delete; a `SystemEvent` as JSON for a system event).
    pub body: Arc<str>,
    /// The message a message replies to.
    pub reply_to: Option<u64>,
    /// A message, or an edit or delete of the message `target`, or a system event.
    pub kind: EventKind,
    pub target: Option<u64>,
    /// The uploads a message carries (their ids, at most `MAX_ATTACHMENTS`), which the room
    /// claims for this message before sequencing it.
    pub attachments: Vec<Arc<str>>,
}

impl Draft {
    pub fn message(cid: Arc<str>, body: Arc<str>, reply_to: Option<u64>) -> Draft {
        Draft { cid, body, reply_to, kind: EventKind::Message, target: None, attachments: Vec::new() }
    }

    /// A new body for message `target`.
    pub fn edit(cid: Arc<str>, target: u64, body: Arc<str>) -> Draft {
        Draft { cid, body, reply_to: None, kind: EventKind::Edit, target: Some(target), attachments: Vec::new() }
    }

    /// The deletion of message `target`.
    pub fn delete(cid: Arc<str>, target: u64) -> Draft {
        let body = Arc::from("");
        Draft { cid, body, reply_to: None, kind: EventKind::Delete, target: Some(target), attachments: Vec::new() }
    }

    /// A system event (a `SystemEvent` as JSON), announced by the server.
    pub fn system(cid: Arc<str>, body: Arc<str>) -> Draft {
        Draft { cid, body, reply_to: None, kind: EventKind::System, target: None, attachments: Vec::new() }
    }
}

impl ClientFrame {
    /// The room and draft of a `send`, `edit` or `delete`; `made_up` gives a cid to an edit or
    /// delete that came without one. Any other frame comes back as it was.
    pub fn into_draft(self, made_up: impl FnOnce(EventKind) -> String) -> Result<(RoomId, Draft), ClientFrame> {
        Ok(match self {
            ClientFrame::Send { room, cid, body, reply_to, attachments } => {
                let mut draft = Draft::message(cid.into(), body.into(), reply_to);
                draft.attachments = attachments.into_iter().map(Arc::from).collect();
                (room, draft)
            }
            ClientFrame::Edit { room, seq, body, cid } => {
                let cid = cid.unwrap_or_else(|| made_up(EventKind::Edit));
                (room, Draft::edit(cid.into(), seq, body.into()))
            }
            ClientFrame::Delete { room, seq, cid } => {
                let cid = cid.unwrap_or_else(|| made_up(EventKind::Delete));
                (room, Draft::delete(cid.into(), seq))
            }
            other => return Err(other),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_become_drafts() {
        let attachments = vec!["f".repeat(32)];
        let send =
            ClientFrame::Send { room: RoomId(1), cid: "a".into(), body: "hi".into(), reply_to: Some(3), attachments };
        let (room, d) = send.into_draft(|_| unreachable!()).unwrap();
        assert_eq!((room, &*d.cid, &*d.body, d.reply_to, d.kind), (RoomId(1), "a", "hi", Some(3), EventKind::Message));
        assert_eq!(d.attachments, vec![Arc::<str>::from("f".repeat(32))]);
        let delete = ClientFrame::Delete { room: RoomId(2), seq: 7, cid: None };
        let (_, d) = delete.into_draft(|k| format!("~{k:?}")).unwrap();
        assert_eq!((&*d.cid, &*d.body, d.kind, d.target), ("~Delete", "", EventKind::Delete, Some(7)));
        assert_eq!(ClientFrame::Ping.into_draft(|_| unreachable!()), Err(ClientFrame::Ping));
    }
}
