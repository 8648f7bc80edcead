//! The node-to-node protocol: versioned postcard frames behind a handshake.
//!
//! Every frame is a variant of one enum (appending variants keeps old decoders working; adding
//! fields to a variant does not, so such a change bumps `NODE_PROTOCOL_VERSION`). Connections are framed by length (checked
//! against `MAX_NODE_FRAME` before a frame is read) and open with `Hello`/`HelloAck`
//! inside an authenticated, encrypted channel (the cluster crate's `link`).
//!
//! Rolling upgrades: a node speaks its own version and the one before it
//! (`SPOKEN_NODE_PROTOCOL_VERSIONS`), publishes them in gossip, and each link speaks the newest
//! version both of its nodes speak (chosen by the dialer, bound into the handshake), so a cluster
//! of version N-1 can be replaced by version N one node at a time. A version that changes a
//! frame must still write the previous layout on links that speak the previous version; the
//! frames of each past version are recorded in `schemas/tests/data/` and must keep decoding.
//! Version 6 changed no frame: it added the negotiation (version 5 refused every other version).

use crate::client::{Refusal, UserRef};
use crate::draft::Draft;
use crate::ids::{RoomId, UserId};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The newest version this build speaks, carried in the handshake.
pub const NODE_PROTOCOL_VERSION: u32 = 6;
/// Every version this build speaks, newest first: its own and the one before.
pub const SPOKEN_NODE_PROTOCOL_VERSIONS: [u32; 2] = [NODE_PROTOCOL_VERSION, NODE_PROTOCOL_VERSION - 1];
/// Largest node-to-node frame accepted, checked before a frame is read.
pub const MAX_NODE_FRAME: usize = 4 * 1024 * 1024;

/// What a room's owner tells a node that joined one of its sessions to the room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinedInfo {
    pub head: u64,
    pub online: Vec<UserRef>,
    pub online_count: usize,
}

/// Which sessions a cluster-wide close reaches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CloseScope {
    User(UserId),
    Family(String),
}

/// A frame between nodes. `session` ids are the sending node's own; `frame` fields carry a
/// client frame already encoded as JSON, so it is encoded once for the whole cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NodeFrame {
    Hello {
        version: u32,
        cluster_id: String,
        node_id: String,
    },
    HelloAck {
        node_id: String,
    },
    /// Subscribe the sending node to a room's events (sent to the room's owner).
    Subscribe {
        room: RoomId,
    },
    /// The owner's answer: events after `head` follow on this connection, in order.
    Subscribed {
        room: RoomId,
        head: u64,
    },
    Unsubscribe {
        room: RoomId,
    },
    /// A committed message of a room.
    Event {
        room: RoomId,
        seq: u64,
        frame: Bytes,
    },
    /// Presence or typing; not for the session `except` of the receiving node.
    Ephemeral {
        room: RoomId,
        except: Option<u64>,
        frame: Bytes,
    },
    /// One of the sender's sessions joins a room (membership, presence at the owner).
    Join {
        room: RoomId,
        req: u64,
        session: u64,
        user: UserRef,
    },
    JoinResult {
        room: RoomId,
        req: u64,
        result: Result<JoinedInfo, Refusal>,
    },
    Leave {
        room: RoomId,
        session: u64,
    },
    /// A send, edit or delete of a session of the sending node (or a system event, `session` 0).
    Send {
        room: RoomId,
        session: u64,
        user: UserRef,
        draft: Draft,
    },
    /// The owner's answer to a `Send`: an `ack` or `error` client frame for `user`'s `cid`.
    SendResult {
        room: RoomId,
        user: UserId,
        cid: String,
        frame: Bytes,
    },
    Typing {
        room: RoomId,
        session: u64,
        user: UserRef,
        on: bool,
    },
    /// The room's actor restarted at the owner: unanswered sends must be sent again.
    Restarted {
        room: RoomId,
    },
    /// The sender does not (or no longer) own the room: find its owner again.
    Moved {
        room: RoomId,
    },
    /// Close the matching sessions on the receiving node.
    Close {
        scope: CloseScope,
        reason: String,
        reconnect: bool,
    },
    /// Sent when a link has been idle: a link silent for longer than its bound is dead.
    Heartbeat,
    /// The stored bodies of these events of `room` were erased (a delete): drop any cached copy.
    Forget {
        room: RoomId,
        seqs: Vec<u64>,
    },
    /// `room` was deleted with its history: stop its actors, tell its subscribers.
    RoomDeleted {
        room: RoomId,
    },
    /// A room's `activity` client frame for these inboxes, which the receiving node owns: each
    /// one that is active passes it to its subscribers (inactive ones have nobody to tell).
    Activity {
        inboxes: Vec<RoomId>,
        frame: Bytes,
    },
    /// A client frame for every session of the receiving node (`room_created`).
    Broadcast {
        frame: Bytes,
    },
}

/// Encodes a node frame with postcard.
pub fn encode_node_frame(frame: &NodeFrame) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_stdvec(frame)
}

/// Decodes a node frame, refusing oversize input before decoding.
pub fn decode_node_frame(bytes: &[u8]) -> Result<NodeFrame, postcard::Error> {
    if bytes.len() > MAX_NODE_FRAME {
        return Err(postcard::Error::DeserializeBadEncoding);
    }
    postcard::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_roundtrips() {
        let hello = NodeFrame::Hello { version: NODE_PROTOCOL_VERSION, cluster_id: "c".into(), node_id: "n1".into() };
        let bytes = encode_node_frame(&hello).unwrap();
        assert_eq!(decode_node_frame(&bytes).unwrap(), hello);
        assert!(decode_node_frame(&[0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn a_refusal_keeps_the_bytes_of_the_pair_it_replaced() {
        let refusal = Refusal::new(crate::ErrorCode::NotMember, "private");
        let pair: Result<JoinedInfo, (crate::ErrorCode, String)> = Err((refusal.code, refusal.message.clone()));
        let ours: Result<JoinedInfo, Refusal> = Err(refusal);
        assert_eq!(postcard::to_stdvec(&ours).unwrap(), postcard::to_stdvec(&pair).unwrap());
    }

    #[test]
    fn a_send_keeps_the_bytes_of_its_flat_fields() {
        let user = UserRef { id: UserId(4), username: "ann".into() };
        let kind = crate::EventKind::Message;
        let ids: Vec<std::sync::Arc<str>> = vec!["a".repeat(32).into(), "b".repeat(32).into()];
        for attachments in [Vec::new(), ids] {
            let draft =
                Draft { cid: "c1".into(), body: "hi".into(), reply_to: Some(2), kind, target: None, attachments };
            let frame = NodeFrame::Send { room: RoomId(3), session: 5, user: user.clone(), draft: draft.clone() };
            // Variant 10 (`Send`), then the fields it had before `Draft`: room, session, user, cid,
            // body, reply_to, kind, target; then (protocol 5) the attachments' upload ids.
            let mut flat = postcard::to_stdvec(&10u32).unwrap();
            let fields = (RoomId(3), 5u64, user.clone(), "c1", "hi", Some(2u64), kind, None::<u64>);
            flat.extend(postcard::to_stdvec(&fields).unwrap());
            let ids: Vec<&str> = draft.attachments.iter().map(|a| &**a).collect();
            flat.extend(postcard::to_stdvec(&ids).unwrap());
            assert_eq!(encode_node_frame(&frame).unwrap(), flat);
            assert_eq!(decode_node_frame(&flat).unwrap(), frame);
        }
    }
}
