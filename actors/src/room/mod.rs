//! `RoomActor`: the only sequencer of one room on this node.
//!
//! It checks membership and the per-user rate limit, deduplicates by the sender's `cid`, assigns
//! the next gap-free `seq`, hands the message to the batching writer, and carries on sequencing.
//! Only when the writer answers that a message is durable does it fan the message out (encoded
//! once, the same bytes for every subscriber) and ack the sender. It keeps the recent tail, the
//! members, who is online and typing.
//!
//! What survives a crash lives in `RoomShared`, which the room directory keeps across restarts:
//! the subscribers (with the last seq each was sent) and the messages handed to the writer but not
//! yet answered. A restarted room takes the lease with a new epoch (so the dead incarnation's
//! writes are fenced), reloads head and tail from storage, acks the pending messages that did
//! commit, asks for a retry of those that did not, and replays to every subscriber what it missed.
//! So a crash never produces a gap, a duplicate or a lost ack for the clients of this room.
//!
//! The room must never block on a subscriber: fan-out uses `try_send`; a subscriber whose queue is
//! full stops being fed and is told to close with its resume cursor.
//!
//! Split by concern: this module holds the actor, its state, its dispatch, joins and leaves;
//! `sequencing` (checks, cid dedupe, seq, the writer's answers), `lease` (taking the lease,
//! handoff), `fanout` (the fan-out window and acks), `presence` (online and typing),
//! `remote_subs` (nodes subscribed here and their sessions), `events` (edits, deletes and system
//! events beyond plain messages), `recovery` (what a restarted incarnation does) and
//! `inbox_notes` (what members' inboxes are told) extend `RoomState`; `shared` is what outlives
//! an incarnation and `replay` feeds a joiner what it missed; `tests` drive it without a socket.
//! Its messages and handle are in `crate::msg::room`; the writer answers it through a reference
//! derived from its own (`Committed`), so neither module imports the other.

mod attachments;
mod events;
mod fanout;
mod inbox_notes;
mod lease;
mod premod;
mod presence;
mod recovery;
mod remote_subs;
pub(crate) mod replay;
mod sequencing;
mod shared;
#[cfg(test)]
mod tests;
mod user_presence;

pub(crate) use shared::{RoomShared, Sub, stale_join};

use crate::cluster::NodeLink;
use crate::ctx::Ctx;
use crate::msg::directory::DirMsg;
use crate::msg::room::{ReplyTo, RoomMsg, Subscriber};
use crate::msg::session::SessionMsg;
use crate::outbound::{Queued, Refused};
use crate::sent_cids::{Recent, SentCids};
use crate::stop::StopReason;
use crate::store::{NewMessage, WriteOutcome};
use crate::writer::{CommitReply, Committed, WriteResult};
use bytes::Bytes;
use confab_schemas::client::ONLINE_LIST_MAX;
use confab_schemas::node::{JoinedInfo, NodeFrame};
use confab_schemas::wire::encode_server_frame;
use confab_schemas::{
    Draft, ErrorCode, EventKind, MessageRow, Refusal, RoomId, RoomKind, RoomRow, ServerFrame, SystemEvent, UserId,
    UserRef, Visibility, now_ms,
};
use lease::acquire_lease;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use remote_subs::RemoteKey;
use replay::NotQueued;
use sequencing::{Bucket, internal};
use shared::{Pending, Shared};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tracing::{Instrument as _, debug, warn};

pub(crate) struct RoomArgs {
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) room: RoomRow,
    pub(crate) shared: Arc<RoomShared>,
}

pub(crate) struct RoomActor;

pub(crate) struct RoomState {
    ctx: Arc<Ctx>,
    /// Where the writer answers this incarnation (derived from its own reference once).
    commit_reply: CommitReply,
    room: RoomRow,
    shared: Arc<RoomShared>,
    epoch: u64,
    head: u64,
    next_seq: u64,
    members: HashSet<UserId>,
    /// The members by lowercase username, to find who a message mentions.
    names: HashMap<Arc<str>, UserId>,
    /// What the members' inboxes are told at the next tick.
    activity: inbox_notes::Activity,
    /// Each sender's recent cids, to deduplicate resends.
    sent: SentCids,
    buckets: HashMap<UserId, Bucket, foldhash::fast::RandomState>,
    typing_at: HashMap<UserId, Instant>,
    online: HashMap<UserId, (Arc<str>, u32)>,
    last_activity: Instant,
    ticker: Option<tokio::task::JoinHandle<()>>,
    /// Sessions of other nodes joined to this room.
    remote: HashMap<RemoteKey, UserRef>,
    /// Presence changes per user, rate-limited.
    presence: crate::presence_limit::PresenceLimiter,
    /// An inbox's user's presence across the cluster (what it last wrote).
    user_presence: user_presence::UserPresence,
    /// Messages this incarnation sequenced a delete of (committed or not): no edit or second
    /// delete of them.
    deleting: HashSet<u64>,
    /// Handing off: sends are left unanswered (their sessions send them again to the new owner).
    moving: bool,
    /// Committed message frames not yet sent to subscribers (see `SystemConfig::fanout_window`).
    held: Vec<(u64, Bytes)>,
    /// Their acks, answered right after them: a client never has an ack for seq N before every
    /// message up to N (it resumes from the highest seq it has seen).
    held_acks: Vec<fanout::HeldAck>,
    /// When subscribers were last sent messages.
    last_fanout: Instant,
    /// A `ReleaseHeld` is on its way.
    release_armed: bool,
    /// When the oldest of `held` became durable (for `confab_fanout_lag_seconds`).
    held_since: Option<Instant>,
    /// The `room` span: every line logged while this room handles a message names the room.
    span: tracing::Span,
    /// What the automatic flags remember of recent sends.
    flags: crate::moderation::flags::FlagState,
}

/// Held messages that share one buffer (one outbound slot) in a fan-out.
const FANOUT_CHUNK: usize = 32;
impl Actor for RoomActor {
    type Msg = RoomMsg;
    type State = RoomState;
    type Arguments = RoomArgs;

    async fn pre_start(&self, me: ActorRef<RoomMsg>, args: RoomArgs) -> Result<RoomState, ActorProcessingErr> {
        let ctx = args.ctx;
        let id = args.room.id;
        let epoch = acquire_lease(&ctx, id).await?;
        let head = ctx.store.head_seq(id).await?;
        let tail_len = ctx.config.tail_len as u64;
        let tail: VecDeque<MessageRow> = ctx
            .store
            .messages_between(id, head.saturating_sub(tail_len - 1).max(1), head, tail_len as u32)
            .await?
            .into();
        // The tail lives in `RoomShared` (join replays read it); this incarnation's replaces
        // whatever an earlier one left.
        args.shared.lock().tail = tail;
        let listed = ctx.store.room_members(id).await?;
        let members = listed.iter().map(|(u, _, _)| *u).collect();
        let names = listed.into_iter().map(|(u, name, _)| (Arc::from(name.to_lowercase()), u)).collect();
        let mut st = RoomState {
            ctx: ctx.clone(),
            commit_reply: me.get_derived(),
            room: args.room,
            shared: args.shared,
            epoch,
            head,
            next_seq: head + 1,
            members,
            names,
            activity: Default::default(),
            sent: SentCids::default(),
            buckets: HashMap::default(),
            typing_at: HashMap::new(),
            online: HashMap::new(),
            last_activity: Instant::now(),
            ticker: None,
            remote: HashMap::new(),
            presence: Default::default(),
            user_presence: Default::default(),
            deleting: HashSet::new(),
            moving: false,
            held: Vec::new(),
            held_acks: Vec::new(),
            last_fanout: Instant::now(),
            release_armed: false,
            held_since: None,
            span: tracing::info_span!("room", room = id.0),
            flags: Default::default(),
        };
        st.recover().await?;
        st.ticker = Some(me.send_interval(Duration::from_millis(500), || RoomMsg::Tick));
        ctx.metrics.active_rooms.fetch_add(1, Relaxed);
        debug!(parent: &st.span, epoch, head, "room active");
        Ok(st)
    }

    async fn post_stop(&self, _me: ActorRef<RoomMsg>, st: &mut RoomState) -> Result<(), ActorProcessingErr> {
        st.release_held();
        // A later proxy of the room (it moved) must not replay from this node's stale tail.
        st.shared.lock().tail.clear();
        if let Some(t) = st.ticker.take() {
            t.abort();
        }
        st.ctx.metrics.active_rooms.fetch_sub(1, Relaxed);
        Ok(())
    }

    async fn handle(&self, me: ActorRef<RoomMsg>, msg: RoomMsg, st: &mut RoomState) -> Result<(), ActorProcessingErr> {
        // Messages held for the fan-out window go out before anything that could depend on
        // them: a join's replay, a leave, presence, typing, a handoff. Only new sends and
        // commits let them wait.
        if !matches!(msg, RoomMsg::Send { .. } | RoomMsg::Committed(_)) {
            st.release_held();
        }
        let span = st.span.clone();
        let result = st.handle(&me, msg).instrument(span).await;
        if result.is_err() {
            // The room stops: what is durable still reaches its subscribers.
            st.release_held();
        }
        result
    }
}

impl RoomState {
    async fn handle(&mut self, me: &ActorRef<RoomMsg>, msg: RoomMsg) -> Result<(), ActorProcessingErr> {
        let st = self;
        match msg {
            RoomMsg::Join { sub, since, reply } => {
                debug!(?since, "join");
                st.last_activity = Instant::now();
                let res = st.join(sub, since).await;
                let _ = reply.send(res);
            }
            RoomMsg::Leave { session } => st.leave(session),
            RoomMsg::Send { session, user, reply, sends } => {
                st.last_activity = Instant::now();
                if st.moving {
                    // Left unanswered: the session sends them again to the room's new owner.
                    return Ok(());
                }
                st.send_all(session, &user, &reply, sends).await?;
            }
            RoomMsg::Typing { session, user, on } => st.typing(Except::Local(session), user, on),
            RoomMsg::RemoteTyping { node, session, user, on } => st.remote_typing(node, session, user, on),
            RoomMsg::NodeSubscribe(link) => {
                st.last_activity = Instant::now();
                st.node_subscribe(link);
            }
            RoomMsg::RemoteJoin { link, req, session, user } => {
                st.last_activity = Instant::now();
                st.answer_remote_join(link, req, session, user).await;
            }
            RoomMsg::RemoteLeave { node, session } => st.remote_leave(&node, session),
            RoomMsg::PeerDown(node) => st.peer_down(&node),
            RoomMsg::Handoff => {
                st.moving = true;
                st.finish_handoff(me).await;
            }
            RoomMsg::FromOwner(_) | RoomMsg::ReleaseHeld => {}
            RoomMsg::Ephemeral(frame) => {
                if st.room.id.is_inbox() {
                    st.broadcast_ephemeral(&st.shared.lock(), frame, Except::Nobody);
                }
            }
            RoomMsg::Committed(Committed { epoch, results, at }) => {
                if epoch == st.epoch {
                    let held_before = !st.held.is_empty();
                    st.committed(results)?;
                    if !held_before && !st.held.is_empty() {
                        st.held_since = Some(at);
                    }
                    st.release_or_hold(me);
                    if st.moving {
                        st.finish_handoff(me).await;
                    }
                }
            }
            RoomMsg::MemberAdded(user) => {
                st.members.insert(user);
            }
            RoomMsg::Queued(item) => st.tell_staff(&item).await,
            RoomMsg::Announce { by, event, cid, reply } => st.announce(&by, event, cid, reply).await?,
            RoomMsg::Command { by, draft, reply } => st.send_all(0, &by, &reply, vec![draft]).await?,
            RoomMsg::WriterRestarted => {
                if !st.shared.lock().pending.is_empty() {
                    return Err("writer restarted with writes in flight; resyncing from storage".into());
                }
            }
            RoomMsg::Head(reply) => {
                let _ = reply.send(st.head);
            }
            RoomMsg::Tick => st.tick(me)?,
        }
        Ok(())
    }
}

impl RoomState {
    fn room_id(&self) -> RoomId {
        self.room.id
    }

    /// Admits `user`: a member already, or a newcomer to a public room (added now).
    async fn ensure_member(&mut self, who: &UserRef) -> Result<(), Refusal> {
        let user = who.id;
        if self.members.contains(&user) {
            return Ok(());
        }
        self.check_room_ban(user).await?;
        if self.room.visibility == Visibility::Private {
            // A member added through another node is only in storage.
            if !self.ctx.store.is_member(self.room_id(), user).await.map_err(internal)? {
                return Err(Refusal::new(ErrorCode::NotMember, "this room is private: ask its owner to add you"));
            }
        } else {
            self.ctx.store.add_member(self.room_id(), user).await.map_err(internal)?;
        }
        self.members.insert(user);
        self.names.insert(who.username.to_lowercase().into(), user);
        Ok(())
    }

    /// Admits a local session: `joined` (and `resync` when the gap is too large) now, the
    /// messages it missed from its replay task, then live events. A session already subscribed
    /// keeps its place: its replay starts from what it has, whatever `since` says.
    async fn join(&mut self, sub: Subscriber, since: Option<u64>) -> Result<u64, Refusal> {
        self.ensure_member(&sub.user.clone()).await?;
        let head = self.head;
        let (from, resync) = replay::replay_from(head, since, self.ctx.config.max_replay);
        let room = self.room_id();
        // The joiner first: they are online in this room from now on.
        let (online_list, online_count) = self.online_list(&sub.user);
        let joined = self.shared.mask(ServerFrame::Joined { room, head, online: online_list, online_count });
        let shared = self.shared.clone();
        let mut sh = shared.lock();
        let after = match replay::queue_joined(&sub, joined, head, from, resync) {
            Ok(after) => after,
            Err(NotQueued::Full) => {
                self.ctx.metrics.sessions_closed_lagging.fetch_add(1, Relaxed);
                return Ok(head);
            }
            Err(NotQueued::Stale) => return Err(stale_join()),
        };
        let existed = match sh.subs.iter().position(|s| s.s.session == sub.session) {
            Some(i) => {
                sh.subs.swap_remove(i);
                true
            }
            None => false,
        };
        let user_ref = sub.user.clone();
        let session = sub.session;
        let fanned = sh.fanned;
        let new = Sub::new(sub, after, fanned);
        let replay = new.replay;
        sh.subs.push(new);
        if !existed {
            self.online(&sh, &user_ref, Except::Local(session));
        }
        drop(sh);
        if replay != 0 {
            replay::start(self.ctx.clone(), shared, room, session, replay, after);
        }
        Ok(head)
    }

    fn leave(&mut self, session: u64) {
        let shared = self.shared.clone();
        self.remove_sub(&mut shared.lock(), session);
    }

    /// Forgets a subscriber (it left, or its connection is gone).
    fn remove_sub(&mut self, sh: &mut Shared, session: u64) {
        if let Some(i) = sh.subs.iter().position(|s| s.s.session == session) {
            let sub = sh.subs.swap_remove(i);
            self.offline(sh, sub.s.user.id, &sub.s.user);
        }
    }

    /// Stops feeding a subscriber that fell behind and tells its session to close with a cursor.
    fn drop_lagging(&mut self, sh: &mut Shared, room: RoomId, session: u64) {
        if let Some(i) = sh.subs.iter().position(|s| s.s.session == session) {
            let sub = sh.subs.swap_remove(i);
            let _ = sub.s.session_ref.cast(SessionMsg::Lagging { room, last_seq: sub.last_seq });
            self.ctx.metrics.sessions_closed_lagging.fetch_add(1, Relaxed);
            self.offline(sh, sub.s.user.id, &sub.s.user);
        }
    }

    fn tick(&mut self, me: &ActorRef<RoomMsg>) -> Result<(), ActorProcessingErr> {
        self.flush_activity();
        self.renew_user_presence();
        let held = self.presence.due();
        if !held.is_empty() {
            let sh = self.shared.lock();
            for (user, online) in held {
                let frame = self.shared.encode(ServerFrame::Presence { room: self.room.id, user, online });
                self.broadcast_ephemeral(&sh, frame, Except::Nobody);
            }
        }
        let sh = self.shared.lock();
        if let Some(p) = sh.pending.front()
            && p.sent_at.elapsed() > self.ctx.config.write_timeout
        {
            warn!(room = %self.room.id, seq = p.row.seq, "write timed out; resyncing from storage");
            return Err("write timed out".into());
        }
        if !self.ctx.cluster().may_sequence() {
            drop(sh);
            warn!(room = %self.room.id, "this node lost its lease rights; the room stops sequencing here");
            return Err("lease lapsed: this node cannot reach a majority of its cluster".into());
        }
        if sh.subs.is_empty()
            && sh.nodes.is_empty()
            && sh.pending.is_empty()
            && self.last_activity.elapsed() > self.ctx.config.room_idle
        {
            drop(sh);
            if let Some(dir) = self.ctx.rooms.get() {
                let _ = dir.cast(DirMsg::Idle(self.room.id, me.get_id()));
            }
        }
        Ok(())
    }
}

/// Who a presence or typing frame is not for.
#[derive(Clone)]
pub(crate) enum Except {
    Nobody,
    Local(u64),
    Remote(Arc<str>, u64),
}
