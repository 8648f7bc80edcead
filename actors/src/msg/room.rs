//! What a room actor (`RoomActor`, or `RemoteRoom` for a room owned by another node) is told,
//! and the typed handles in front of it: `RoomHandle` for any room, `InboxHandle` for a user's
//! inbox. Other crates (the cluster's router) call the handles; only this crate builds `RoomMsg`.

use super::session::{SessionMsg, SessionRef};
use crate::cluster::NodeLink;
use crate::outbound::{JoinTicket, Outbound};
use crate::writer::Committed;
use bytes::Bytes;
use confab_schemas::node::NodeFrame;
use confab_schemas::{Draft, ErrorCode, Refusal, RoomId, SystemEvent, UserId, UserRef};
use ractor::rpc::CallResult;
use ractor::{ActorId, ActorRef, RpcReplyPort};
use std::sync::Arc;
use std::time::Duration;

/// How long a caller waits for a room's head.
const HEAD_CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an announcer waits for a system event's ack before it asks again (same cid).
const ANNOUNCE_WAIT: Duration = Duration::from_secs(10);

/// The cid of a `SendResult` that is no answer: a frame for every session of its user joined
/// to the room on the receiving node (`held`, `queued`, `rejected`, a released message's ack).
pub(crate) const TO_USER: &str = "~to-user";

/// A session subscribed to a room.
#[derive(Clone)]
pub(crate) struct Subscriber {
    pub(crate) session: u64,
    pub(crate) user: UserRef,
    pub(crate) out: Outbound,
    pub(crate) session_ref: SessionRef,
    /// The join attempt this subscription answers (see `Outbound::begin_join`).
    pub(crate) ticket: JoinTicket,
}

/// Where the answer to a send goes: a local session, or the node a remote session is on.
#[derive(Clone)]
pub(crate) enum ReplyTo {
    Session(SessionRef),
    Node(NodeLink),
    /// A task of this node waits for the answer (a system event it announced: `Ctx::announce`).
    Waiter(tokio::sync::mpsc::Sender<Bytes>),
}

impl ReplyTo {
    /// Sends `frame` (an `ack` or `error`) for `user`'s `cid`.
    pub(crate) fn answer(&self, room: RoomId, user: UserId, cid: Arc<str>, frame: Bytes) {
        match self {
            ReplyTo::Session(s) => {
                let _ = s.cast(SessionMsg::SendResults { room, cids: vec![cid], frames: frame });
            }
            ReplyTo::Node(link) => {
                let _ = link.send(NodeFrame::SendResult { room, user, cid: cid.to_string(), frame });
            }
            ReplyTo::Waiter(tx) => {
                let _ = tx.try_send(frame);
            }
        }
    }
}

/// Messages of a room actor.
pub(crate) enum RoomMsg {
    Join {
        sub: Subscriber,
        since: Option<u64>,
        reply: RpcReplyPort<Result<u64, Refusal>>,
    },
    Leave {
        session: u64,
    },
    /// Post messages, in order; each one's outcome (ack or error) goes back to `reply`. A session
    /// hands over all its sends to the room from one read of its socket in one `Send`.
    Send {
        session: u64,
        user: UserRef,
        reply: ReplyTo,
        sends: Vec<Draft>,
    },
    Typing {
        session: u64,
        user: UserRef,
        on: bool,
    },
    /// The writer's answer for some of this incarnation's writes, in seq order.
    Committed(Committed),
    MemberAdded(UserId),
    /// Sequence a system event (a change already made in storage), done by `by`; `cid` makes
    /// it idempotent (a repeat after a restart is the same event), `reply` gets its ack.
    Announce {
        by: UserRef,
        event: SystemEvent,
        cid: Arc<str>,
        reply: ReplyTo,
    },
    /// A staff command (`moderation::Command`) as a system draft, done by `by`; `reply` gets
    /// its answer (an `ack` or an `error`).
    Command {
        by: UserRef,
        draft: Draft,
        reply: ReplyTo,
    },
    /// The writer was restarted: writes in flight may be lost.
    WriterRestarted,
    /// The committed head seq.
    Head(RpcReplyPort<u64>),
    Tick,
    /// Another node wants this room's events (it has subscribers here).
    NodeSubscribe(NodeLink),
    /// A session of another node joins; the answer goes back on the link.
    RemoteJoin {
        link: NodeLink,
        req: u64,
        session: u64,
        user: UserRef,
    },
    RemoteLeave {
        node: Arc<str>,
        session: u64,
    },
    RemoteTyping {
        node: Arc<str>,
        session: u64,
        user: UserRef,
        on: bool,
    },
    /// The connection to a node closed: forget its subscription and sessions.
    PeerDown(Arc<str>),
    /// This node no longer owns the room: flush, release the lease and stop (the directory
    /// starts what the new placement needs, keeping the subscribers).
    Handoff,
    /// A frame from the room's owner (for a room sequenced elsewhere).
    FromOwner(NodeFrame),
    /// The fan-out window has passed: send what was held back (self-sent).
    ReleaseHeld,
    /// For an inbox: a frame for its subscribers that is not an event (`activity`).
    Ephemeral(Bytes),
    /// From the room's moderation queue: an item it stored (a flag, a report), for the room's
    /// staff joined to it (`queued`, as a held message is announced).
    Queued(Box<crate::store::QueueItem>),
}

/// The writer answers a room through a reference derived from the room's (`get_derived`), so
/// it never names `RoomMsg`.
impl From<Committed> for RoomMsg {
    fn from(c: Committed) -> RoomMsg {
        RoomMsg::Committed(c)
    }
}

impl TryFrom<RoomMsg> for Committed {
    type Error = RoomMsg;

    fn try_from(msg: RoomMsg) -> Result<Committed, RoomMsg> {
        match msg {
            RoomMsg::Committed(c) => Ok(c),
            other => Err(other),
        }
    }
}

/// A running room actor of this node: the room's sequencer, or the proxy of a room another node
/// sequences (callers need not know which). Cheap to clone. A method that returns `false` found
/// the actor gone (stopped, restarting or moved): look the room up again.
#[derive(Clone)]
pub struct RoomHandle {
    room: RoomId,
    actor: ActorRef<RoomMsg>,
}

impl RoomHandle {
    pub(crate) fn new(room: RoomId, actor: ActorRef<RoomMsg>) -> RoomHandle {
        RoomHandle { room, actor }
    }

    pub fn room(&self) -> RoomId {
        self.room
    }

    /// The actor's id (the directory tells incarnations apart by it).
    pub(crate) fn id(&self) -> ActorId {
        self.actor.get_id()
    }

    pub(crate) fn cell(&self) -> ractor::ActorCell {
        self.actor.get_cell()
    }

    pub(crate) fn kill(&self) {
        self.actor.kill();
    }

    /// Subscribes a local session from `since`; `None` when no answer came within `wait`.
    pub(crate) async fn join(
        &self,
        sub: Subscriber,
        since: Option<u64>,
        wait: Duration,
    ) -> Option<Result<u64, Refusal>> {
        match self.actor.call(|reply| RoomMsg::Join { sub, since, reply }, Some(wait)).await {
            Ok(CallResult::Success(res)) => Some(res),
            _ => None,
        }
    }

    pub(crate) fn leave(&self, session: u64) {
        let _ = self.actor.cast(RoomMsg::Leave { session });
    }

    /// Hands a local session's sends to the room, in order; each is answered on `reply`.
    pub(crate) fn send(&self, session: u64, user: UserRef, reply: ReplyTo, sends: Vec<Draft>) -> bool {
        self.actor.cast(RoomMsg::Send { session, user, reply, sends }).is_ok()
    }

    pub(crate) fn typing(&self, session: u64, user: UserRef, on: bool) {
        let _ = self.actor.cast(RoomMsg::Typing { session, user, on });
    }

    /// Sequences a system event of the room (a change already made in storage), done by `by`,
    /// under `cid`, and waits for its answer: `Ok(true)` once it is durable, `Ok(false)` when it
    /// is to be tried again (no answer: the actor stopped with it, or the writer is slow; or a
    /// `retry`), a refusal otherwise. See `Ctx::announce`, which tries again.
    pub(crate) async fn announce_once(&self, by: UserRef, event: SystemEvent, cid: Arc<str>) -> Result<bool, Refusal> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(1);
        if self.actor.cast(RoomMsg::Announce { by, event, cid, reply: ReplyTo::Waiter(tx) }).is_err() {
            return Ok(false);
        }
        let Ok(Some(frame)) = tokio::time::timeout(ANNOUNCE_WAIT, rx.recv()).await else { return Ok(false) };
        // The answer is a whole WebSocket text frame: its JSON starts at the first brace.
        let json = frame.iter().position(|b| *b == b'{').map_or(&frame[..0], |i| &frame[i..]);
        match serde_json::from_slice::<confab_schemas::ServerFrame>(json) {
            Ok(confab_schemas::ServerFrame::Ack { .. }) => Ok(true),
            Ok(confab_schemas::ServerFrame::Error { code: ErrorCode::Retry | ErrorCode::Overloaded, .. }) => Ok(false),
            Ok(confab_schemas::ServerFrame::Error { code, message, .. }) => Err(Refusal::new(code, message)),
            _ => Err(Refusal::new(ErrorCode::Internal, "an unexpected answer to a system event")),
        }
    }

    /// Hands a staff command to the room and waits for its answer frame; `None`: no answer
    /// (the actor stopped with it, or is slow): to be asked again under the same cid.
    pub(crate) async fn command_once(&self, by: UserRef, draft: Draft) -> Option<confab_schemas::ServerFrame> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(1);
        if self.actor.cast(RoomMsg::Command { by, draft, reply: ReplyTo::Waiter(tx) }).is_err() {
            return None;
        }
        let Ok(Some(frame)) = tokio::time::timeout(ANNOUNCE_WAIT, rx.recv()).await else { return None };
        let json = frame.iter().position(|b| *b == b'{').map_or(&frame[..0], |i| &frame[i..]);
        serde_json::from_slice::<confab_schemas::ServerFrame>(json).ok()
    }

    /// The room's committed head seq (`None`: the actor did not answer).
    pub async fn head(&self) -> Option<u64> {
        ractor::call_t!(self.actor, RoomMsg::Head, HEAD_CALL_TIMEOUT.as_millis() as u64).ok()
    }

    /// A new queue item of the room, for its staff joined to it (`queued`).
    pub(crate) fn queued(&self, item: crate::store::QueueItem) {
        let _ = self.actor.cast(RoomMsg::Queued(Box::new(item)));
    }

    pub(crate) fn member_added(&self, user: UserId) {
        let _ = self.actor.cast(RoomMsg::MemberAdded(user));
    }

    pub(crate) fn writer_restarted(&self) {
        let _ = self.actor.cast(RoomMsg::WriterRestarted);
    }

    /// This node no longer owns the room (or the proxy's owner changed): move.
    pub(crate) fn handoff(&self) {
        let _ = self.actor.cast(RoomMsg::Handoff);
    }

    // ---- what other nodes ask of a room this node owns (the cluster's router) ----

    /// Subscribes the node at the end of `link` to the room's events.
    pub fn subscribe_node(&self, link: NodeLink) -> bool {
        self.actor.cast(RoomMsg::NodeSubscribe(link)).is_ok()
    }

    /// The connection to `node` closed, or it unsubscribed: forget its subscription and sessions.
    pub fn peer_down(&self, node: Arc<str>) {
        let _ = self.actor.cast(RoomMsg::PeerDown(node));
    }

    /// A session of the node at the end of `link` joins; the answer (`JoinResult` for `req`)
    /// goes back on the link.
    pub fn remote_join(&self, link: NodeLink, req: u64, session: u64, user: UserRef) -> bool {
        self.actor.cast(RoomMsg::RemoteJoin { link, req, session, user }).is_ok()
    }

    pub fn remote_leave(&self, node: Arc<str>, session: u64) {
        let _ = self.actor.cast(RoomMsg::RemoteLeave { node, session });
    }

    /// A send of a session of the node at the end of `link`; answered on the link.
    pub fn remote_send(&self, link: NodeLink, session: u64, user: UserRef, draft: Draft) -> bool {
        self.send(session, user, ReplyTo::Node(link), vec![draft])
    }

    pub fn remote_typing(&self, node: Arc<str>, session: u64, user: UserRef, on: bool) {
        let _ = self.actor.cast(RoomMsg::RemoteTyping { node, session, user, on });
    }

    /// A frame from the owner of a room this node proxies. Hands the frame back when the proxy
    /// is gone (to try the room's next proxy); `None` once delivered (or lost with its proxy).
    pub fn from_owner(&self, frame: NodeFrame) -> Option<NodeFrame> {
        match self.actor.cast(RoomMsg::FromOwner(frame)) {
            Err(ractor::MessagingErr::SendErr(RoomMsg::FromOwner(f))) => Some(f),
            _ => None,
        }
    }
}

/// The running actor of a user's inbox (a room of its own, sequenced like one).
#[derive(Clone)]
pub struct InboxHandle(RoomHandle);

impl InboxHandle {
    /// The inbox behind `room`, if `room` is an inbox.
    pub(crate) fn of(room: RoomHandle) -> Option<InboxHandle> {
        room.room.is_inbox().then_some(InboxHandle(room))
    }

    /// An `activity` frame for the inbox's subscribers (not an event: not sequenced).
    pub fn activity(&self, frame: Bytes) {
        let _ = self.0.actor.cast(RoomMsg::Ephemeral(frame));
    }
}
