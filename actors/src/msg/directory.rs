//! What the room directory (the rooms' supervisor, `crate::directory`) is asked.

use super::room::RoomHandle;
use confab_schemas::{Refusal, RoomId, UserId};
use ractor::{ActorId, RpcReplyPort};
use std::sync::Arc;

/// Messages of the room directory.
pub(crate) enum DirMsg {
    Activate(RoomId, RpcReplyPort<Result<RoomHandle, Refusal>>),
    /// For another node: the room's local sequencer, refused when this node does not own it.
    ActivateOwned(RoomId, RpcReplyPort<Result<RoomHandle, Refusal>>),
    /// The running proxy of a room owned elsewhere, if any.
    Proxy(RoomId, RpcReplyPort<Option<RoomHandle>>),
    /// Membership changed: rooms whose owner changed move.
    ViewChanged,
    /// The connection to a node closed.
    PeerDown(Arc<str>),
    /// Rooms sequenced here (not proxies).
    OwnedCount(RpcReplyPort<usize>),
    /// A room found itself idle; passivate it if it still is that incarnation.
    Idle(RoomId, ActorId),
    /// The room was deleted: its actors stop for good and its subscribers are told.
    Deleted(RoomId),
    /// Try again to start a room whose restart failed.
    Restart(RoomId),
    /// Test and chaos hook: kill a room's actor (it is restarted).
    Kill(RoomId, RpcReplyPort<bool>),
    /// Test and chaos hook: kill a room's moderation queue (it is restarted).
    KillQueue(RoomId, RpcReplyPort<bool>),
    WriterRestarted,
    MemberAdded(RoomId, UserId),
    ActiveRooms(RpcReplyPort<Vec<RoomId>>),
    /// An `activity` frame for these inboxes, if they run here as their sequencer.
    Activity(Vec<RoomId>, bytes::Bytes),
}
