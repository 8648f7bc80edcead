//! `RoomActor`: the only sequencer of one room on this node.
//!
//! It checks membership and the per-user rate limit, deduplicates by the sender's `cid`, assigns
//! the next gap-free `seq`, hands the message to the batching writer, and carries on sequencing.
//! Only when the writer answers that a message is durable does it fan the message out (encoded
//! once, the same bytes for every subscriber) and ack the sender. It keeps the recent tail, the
//! members, who is online and typing.
//!
//! What survives a crash lives in `RoomShared`, which the room supervisor keeps across restarts:
//! the subscribers (with the last seq each was sent) and the messages handed to the writer but not
//! yet answered. A restarted room takes the lease with a new epoch (so the dead incarnation's
//! writes are fenced), reloads head and tail from storage, acks the pending messages that did
//! commit, asks for a retry of those that did not, and replays to every subscriber what it missed.
//! So a crash never produces a gap, a duplicate or a lost ack for the clients of this room.
//!
//! The room must never block on a subscriber: fan-out uses `try_send`; a subscriber whose queue is
//! full stops being fed and is told to close with its resume cursor.
//!
//! Split by concern: this module holds the actor, its dispatch, sequencing and the lease;
//! `presence` (online, typing, sessions of other nodes), `events` (edits, deletes and system
//! events beyond plain messages), `fanout` (the fan-out window and acks), `recovery` (what a
//! restarted incarnation does) and `inbox_notes` (what members' inboxes are told) extend
//! `RoomState`; `shared` is what outlives an incarnation and `replay` feeds a joiner what it
//! missed. Its messages and handle are in `crate::msg::room`; the writer answers it through a
//! reference derived from its own (`Committed`).

mod events;
mod fanout;
mod inbox_notes;
mod presence;
mod recovery;
pub(crate) mod replay;
mod shared;

pub(crate) use shared::{RoomShared, Sub, stale_join};

use crate::cluster::NodeLink;
use crate::ctx::Ctx;
use crate::msg::directory::DirMsg;
use crate::msg::room::{ReplyTo, RoomMsg, SendItem, Subscriber};
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
    ErrorCode, EventKind, MessageRow, Refusal, Role, RoomId, RoomRow, ServerFrame, SystemEvent, UserId, UserRef,
    Visibility, now_ms,
};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use replay::NotQueued;
use shared::{Pending, Shared};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// A session of another node, as the owner knows it: (node, that node's session id).
type RemoteKey = (Arc<str>, u64);

pub(crate) struct RoomArgs {
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) room: RoomRow,
    pub(crate) shared: Arc<RoomShared>,
}

pub(crate) struct RoomActor;

/// A token bucket: `burst` tokens, refilled at `rate` per second.
struct Bucket {
    tokens: f64,
    at: Instant,
}

pub(crate) struct RoomState {
    ctx: Arc<Ctx>,
    /// Where the writer answers this incarnation (derived from its own reference once).
    commit_reply: CommitReply,
    room: RoomRow,
    shared: Arc<RoomShared>,
    epoch: u64,
    head: u64,
    next_seq: u64,
    tail: VecDeque<MessageRow>,
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
}

/// Held messages that share one buffer (one outbound slot) in a fan-out.
const FANOUT_CHUNK: usize = 32;
/// A sender's newest messages loaded to deduplicate a `cid` from before this incarnation.
const SENDER_DEDUPE_LOAD: u32 = 256;

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
            tail,
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
            deleting: HashSet::new(),
            moving: false,
            held: Vec::new(),
            held_acks: Vec::new(),
            last_fanout: Instant::now(),
            release_armed: false,
        };
        st.recover().await?;
        st.ticker = Some(me.send_interval(Duration::from_millis(500), || RoomMsg::Tick));
        ctx.metrics.active_rooms.fetch_add(1, Relaxed);
        debug!(room = %id, epoch, head, "room active");
        Ok(st)
    }

    async fn post_stop(&self, _me: ActorRef<RoomMsg>, st: &mut RoomState) -> Result<(), ActorProcessingErr> {
        st.release_held();
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
        let result = st.handle(&me, msg).await;
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
                // Sequenced one by one, then handed to the writer together.
                let mut writes = Vec::with_capacity(sends.len());
                for item in sends {
                    let cid = item.cid.clone();
                    if let Err(refusal) = st.send(session, &user, &reply, item, &mut writes).await {
                        let frame = encode_server_frame(&refusal.frame(Some(cid.to_string())));
                        reply.answer(st.room.id, user.id, cid, frame);
                        st.ctx.metrics.protocol_errors.fetch_add(1, Relaxed);
                    }
                }
                if !writes.is_empty() {
                    let handed = st.ctx.writer.get().is_some_and(|w| w.messages(writes, st.commit_reply.clone()));
                    if !handed {
                        // The writer stopped since `send` looked: as after a writer restart, the
                        // room resyncs and the sessions send again what was not committed.
                        return Err("the writer stopped with writes in flight; resyncing from storage".into());
                    }
                }
            }
            RoomMsg::Typing { session, user, on } => st.typing(Except::Local(session), user, on),
            RoomMsg::RemoteTyping { node, session, user, on } => {
                // Only as the user the session joined as.
                if st.remote.get(&(node.clone(), session)).is_some_and(|u| u.id == user.id) {
                    st.typing(Except::Remote(node, session), user, on);
                }
            }
            RoomMsg::NodeSubscribe(link) => {
                st.last_activity = Instant::now();
                let shared = st.shared.clone();
                let mut sh = shared.lock();
                sh.nodes.retain(|l| l.node != link.node);
                if link.send(NodeFrame::Subscribed { room: st.room.id, head: st.head }).is_ok() {
                    sh.nodes.push(link);
                }
            }
            RoomMsg::RemoteJoin { link, req, session, user } => {
                st.last_activity = Instant::now();
                let result = st.remote_join(&link.node, session, user).await;
                let _ = link.send(NodeFrame::JoinResult { room: st.room.id, req, result });
            }
            RoomMsg::RemoteLeave { node, session } => st.remote_leave(&node, session),
            RoomMsg::PeerDown(node) => {
                let shared = st.shared.clone();
                let mut sh = shared.lock();
                sh.nodes.retain(|l| l.node != node);
                let gone: Vec<u64> = st.remote.keys().filter(|(n, _)| *n == node).map(|(_, s)| *s).collect();
                drop(sh);
                for session in gone {
                    st.remote_leave(&node, session);
                }
            }
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
            RoomMsg::Committed(Committed { epoch, results }) => {
                if epoch == st.epoch {
                    st.committed(results)?;
                    st.release_or_hold(me);
                    if st.moving {
                        st.finish_handoff(me).await;
                    }
                }
            }
            RoomMsg::MemberAdded(user) => {
                st.members.insert(user);
            }
            RoomMsg::Announce { by, event } => {
                let body: Arc<str> = serde_json::to_string(&event).unwrap_or_default().into();
                let cid: Arc<str> = format!("~sys-{}-{}", now_ms(), st.next_seq).into();
                let item = SendItem { cid, body, reply_to: None, kind: EventKind::System, target: None };
                let mut writes = Vec::new();
                if let Err(refusal) = st.send(0, &by, &ReplyTo::Nobody, item, &mut writes).await {
                    warn!(room = %st.room.id, %refusal, "a system event could not be sequenced");
                }
                if !writes.is_empty() {
                    let handed = st.ctx.writer.get().is_some_and(|w| w.messages(writes, st.commit_reply.clone()));
                    if !handed {
                        return Err("the writer stopped with writes in flight; resyncing from storage".into());
                    }
                }
            }
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
        let joined = ServerFrame::Joined { room, head, online: online_list, online_count };
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

    /// Sequences one message and adds its write to `writes` (the caller hands them to the
    /// writer), or refuses it.
    async fn send(
        &mut self,
        session: u64,
        user: &UserRef,
        reply: &ReplyTo,
        item: SendItem,
        writes: &mut Vec<NewMessage>,
    ) -> Result<(), Refusal> {
        let SendItem { cid, body, reply_to, kind, target } = item;
        let system = kind == EventKind::System;
        if self.room.id.is_inbox() && !system {
            return Err(Refusal::new(ErrorCode::Forbidden, "an inbox is written by the server only"));
        }
        match reply {
            // A system event announces a change its node already authorised and made.
            _ if system => {}
            ReplyTo::Nobody => {
                return Err(Refusal::new(ErrorCode::Invalid, "only system events are sequenced for nobody"));
            }
            ReplyTo::Session(_) => {
                if !self.shared.lock().subs.iter().any(|s| s.s.session == session) {
                    return Err(Refusal::new(ErrorCode::NotJoined, "join the room before sending"));
                }
            }
            // A node forwards sends only for sessions an incarnation of this room admitted. One
            // this incarnation does not know was admitted before a restart, and its node joins it
            // again once told of the restart: the send is to be repeated, not refused.
            // A peer is trusted to have authenticated its sessions, not to speak for another
            // user on one of them: the send's author must be the user the session joined as.
            ReplyTo::Node(link) => match self.remote.get(&(link.node.clone(), session)) {
                None => return Err(Refusal::new(ErrorCode::Retry, "the room restarted; send again")),
                Some(joined) if joined.id != user.id => {
                    warn!(room = %self.room.id, peer = %link.node, session, "a peer sent as a user its session did not join as");
                    return Err(Refusal::new(ErrorCode::Forbidden, "this session joined as another user"));
                }
                Some(_) => {}
            },
        }
        if !self.ctx.cluster().may_sequence() {
            return Err(Refusal::new(ErrorCode::Retry, "this node is cut off from its cluster; send again shortly"));
        }
        if let Some(r) = reply_to
            && (r == 0 || r > self.head || kind != EventKind::Message)
        {
            return Err(Refusal::new(ErrorCode::Invalid, format!("reply_to {r} is not a message of this room")));
        }
        // Deduplicate before rate limiting: a retry must get its original ack.
        if !self.sent.knows(user.id) {
            let rows =
                self.ctx.store.recent_by_sender(self.room_id(), user.id, SENDER_DEDUPE_LOAD).await.map_err(internal)?;
            // Newest first from storage; remembered oldest first.
            let stored = rows.into_iter().rev().map(|r| (r.cid, Recent::Committed { seq: r.seq, id: r.id, ts: r.ts }));
            self.sent.load(user.id, stored);
        }
        match self.sent.get(user.id, &cid) {
            Some(Recent::Committed { seq, id, ts }) => {
                // The message may still be held for the fan-out window: it goes first, so that
                // this ack does not overtake it.
                self.release_held();
                let ack = ServerFrame::Ack { cid: cid.clone(), room: self.room_id(), seq, id, ts };
                reply.answer(self.room_id(), user.id, cid, encode_server_frame(&ack));
                return Ok(());
            }
            Some(Recent::Pending) => {
                // The ack goes to whichever session asked last.
                if let Some(p) =
                    self.shared.lock().pending.iter_mut().find(|p| p.row.sender == user.id && p.row.cid == cid)
                {
                    p.reply = reply.clone();
                }
                return Ok(());
            }
            None => {}
        }
        if matches!(kind, EventKind::Edit | EventKind::Delete) {
            self.check_target(user, kind, target).await?;
        }
        if !system {
            self.take_token(user.id)?;
        }
        let cfg = &self.ctx.config;
        if self.shared.lock().pending.len() >= cfg.max_inflight_per_room {
            return Err(Refusal::new(ErrorCode::Overloaded, "the room is busy; send again shortly"));
        }
        if self.ctx.writer.get().is_none() {
            return Err(Refusal::new(ErrorCode::Retry, "storage is restarting; send again"));
        }
        let seq = self.next_seq;
        let mentions = if kind == EventKind::Message && body.contains('@') {
            inbox_notes::mentioned(&body, &self.names, user.id)
        } else {
            Vec::new()
        };
        let row = MessageRow {
            id: 0,
            room: self.room_id(),
            seq,
            sender: user.id,
            sender_name: user.username.clone(),
            cid: cid.clone(),
            body: body.clone(),
            reply_to,
            ts: now_ms(),
            edited_at: None,
            deleted: false,
            kind,
            target,
        };
        let new = NewMessage {
            room: row.room,
            epoch: self.epoch,
            seq,
            sender: user.id,
            cid: cid.clone(),
            body,
            reply_to,
            ts: row.ts,
            kind,
            target,
            mentions: mentions.clone(),
        };
        if kind == EventKind::Delete {
            self.deleting.extend(target);
        }
        writes.push(new);
        self.next_seq += 1;
        self.shared.lock().pending.push_back(Pending { row, mentions, reply: reply.clone(), sent_at: Instant::now() });
        self.sent.pending(user.id, cid);
        Ok(())
    }

    fn take_token(&mut self, user: UserId) -> Result<(), Refusal> {
        let (burst, rate) = (self.ctx.config.rate_burst as f64, self.ctx.config.rate_per_sec);
        let now = Instant::now();
        let b = self.buckets.entry(user).or_insert(Bucket { tokens: burst, at: now });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait_ms = ((1.0 - b.tokens) / rate * 1000.0).ceil() as u64;
            Err(Refusal::new(ErrorCode::RateLimited, format!("too many messages; retry in {wait_ms} ms")))
        }
    }

    /// The writer's answers: fan out and ack what is durable, in seq order.
    fn committed(&mut self, results: Vec<(u64, WriteResult)>) -> Result<(), ActorProcessingErr> {
        let room = self.room_id();
        let shared = self.shared.clone();
        // Members who left or were removed: they get the event, then their subscriptions end.
        let mut leaving = Vec::new();
        let result = self.commit_results(&shared, results, &mut leaving);
        if !leaving.is_empty() {
            self.release_held();
            let left = encode_server_frame(&ServerFrame::Left { room });
            for user in leaving {
                self.members.remove(&user);
                self.names.retain(|_, u| *u != user);
                let mut sh = shared.lock();
                let sessions: Vec<u64> = sh.subs.iter().filter(|s| s.s.user.id == user).map(|s| s.s.session).collect();
                for session in sessions {
                    if let Some(sub) = sh.subs.iter().find(|s| s.s.session == session) {
                        sub.s.out.forget(room);
                        let _ = sub.s.out.push(left.clone());
                    }
                    self.remove_sub(&mut sh, session);
                }
                // `remote_leave` takes the lock itself.
                drop(sh);
                let remote: Vec<RemoteKey> =
                    self.remote.iter().filter(|(_, u)| u.id == user).map(|(k, _)| k.clone()).collect();
                for (node, session) in remote {
                    self.remote_leave(&node, session);
                }
            }
        }
        result
    }

    fn commit_results(
        &mut self,
        shared: &Arc<RoomShared>,
        results: Vec<(u64, WriteResult)>,
        leaving: &mut Vec<UserId>,
    ) -> Result<(), ActorProcessingErr> {
        let room = self.room_id();
        let mut sh = shared.lock();
        for (seq, result) in results {
            let id = match result {
                Ok(WriteOutcome::Committed { id }) => id,
                Ok(WriteOutcome::Fenced) => {
                    return Err(format!("room {room}: lease epoch {} was fenced", self.epoch).into());
                }
                Ok(WriteOutcome::Gap) => {
                    return Err(format!("room {room}: seq {seq} does not follow the stored head; resyncing").into());
                }
                Err(()) => return Err(format!("room {room}: write of seq {seq} failed").into()),
            };
            let Some(mut p) = sh.pending.pop_front() else {
                return Err(format!("room {room}: commit of seq {seq} with nothing pending").into());
            };
            if p.row.seq != seq {
                return Err(format!("room {room}: commit of seq {seq} but {} pending first", p.row.seq).into());
            }
            p.row.id = id;
            self.head = seq;
            self.held.push((seq, encode_server_frame(&ServerFrame::event(&p.row))));
            if p.row.kind == EventKind::System
                && let Ok(event) = serde_json::from_str::<SystemEvent>(&p.row.body)
            {
                self.apply_system(event, leaving);
            }
            if p.row.kind == EventKind::Delete
                && let Some(target) = p.row.target
            {
                self.erased(target);
            }
            self.note_committed(&p.row, &p.mentions);
            let ack = encode_server_frame(&ServerFrame::ack(&p.row));
            self.held_acks.push(fanout::HeldAck {
                reply: p.reply,
                user: p.row.sender,
                cid: p.row.cid.clone(),
                frame: ack,
            });
            self.sent.committed(p.row.sender, p.row.cid.clone(), seq, id, p.row.ts);
            self.tail.push_back(p.row);
            if self.tail.len() > self.ctx.config.tail_len {
                self.tail.pop_front();
            }
        }
        Ok(())
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
        let held = self.presence.due();
        if !held.is_empty() {
            let sh = self.shared.lock();
            for (user, online) in held {
                let frame = encode_server_frame(&ServerFrame::Presence { room: self.room.id, user, online });
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

impl RoomState {
    /// Ends a handoff once every write in flight is answered: releases the lease, tells the
    /// subscribed nodes to find the new owner, and stops (the directory keeps the subscribers).
    async fn finish_handoff(&mut self, me: &ActorRef<RoomMsg>) {
        if !self.shared.lock().pending.is_empty() {
            return;
        }
        if let Err(e) = self.ctx.store.release_lease(self.room.id, &self.ctx.config.node_id).await {
            warn!(room = %self.room.id, err = %e, "releasing the lease failed; the next owner waits for it to lapse");
        }
        for link in self.shared.lock().nodes.drain(..) {
            let _ = link.send(NodeFrame::Moved { room: self.room.id });
        }
        self.ctx.metrics.handoffs.fetch_add(1, Relaxed);
        me.stop(StopReason::Moved.reason());
    }
}

/// Who a presence or typing frame is not for.
#[derive(Clone)]
pub(crate) enum Except {
    Nobody,
    Local(u64),
    Remote(Arc<str>, u64),
}

/// Longest wait for another live node to release a room's lease (a handoff in progress).
const LEASE_WAIT: Duration = Duration::from_secs(3);

/// Takes the room's lease: at once when it is free, lapsed, ours or held by a node that is not
/// live; otherwise waits for its holder to hand it over.
async fn acquire_lease(ctx: &Ctx, room: RoomId) -> Result<u64, ActorProcessingErr> {
    let cluster = ctx.cluster();
    let deadline = Instant::now() + LEASE_WAIT;
    loop {
        if !cluster.may_sequence() {
            return Err(format!("room {room}: this node cannot reach a majority of its cluster").into());
        }
        let node = &ctx.config.node_id;
        // Set when the lease is taken from a holder that is not live: a failover.
        let forced = std::sync::atomic::AtomicBool::new(false);
        let gone = |holder: &str| {
            let gone = !cluster.is_live(holder);
            forced.store(gone, Relaxed);
            gone
        };
        let taken = ctx.store.try_take_lease(room, node, ctx.config.lease_ttl_ms, gone).await?;
        if let Some(epoch) = taken {
            if forced.load(Relaxed) {
                ctx.metrics.failovers.fetch_add(1, Relaxed);
                tracing::info!(%room, epoch, "took the room over from a node that is not live");
            }
            return Ok(epoch);
        }
        if Instant::now() > deadline {
            return Err(format!("room {room}: its lease is still held by a live node").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn internal(err: crate::Error) -> Refusal {
    warn!(%err, "room storage error");
    Refusal::new(ErrorCode::Internal, "storage error; try again")
}
