//! `RemoteRoom`: a room sequenced by another node, as this node's sessions see it.
//!
//! It answers the room actor's messages (`RoomMsg`, sent through a `RoomHandle`) for local
//! sessions, so a session never knows where its room lives. It subscribes this node once at the owner; the owner sends every event
//! once per subscribed node and this actor fans it out to the local subscribers (the same bytes
//! to each). Joins, sends and typing are forwarded to the owner, and its answers come back
//! unchanged.
//!
//! A session has at most one join pending here: a join that comes again while the owner has
//! not answered (the session's call timed out and it tried again) takes the pending one's
//! place, so the owner's one answer admits it once. An answer for an attempt the session gave
//! up on is dropped, and the owner told the session left unless it is subscribed here. A
//! replay goes through `replay`, paced by the joiner's socket, from where the session is.
//!
//! A subscription is checked, not trusted: when the owner has sent nothing for `QUIET`, the
//! proxy asks again (`Subscribe` is idempotent at the owner) and compares the head it answers
//! with its own. A head ahead of ours (events were lost), or no answer within `ANSWER_WITHIN`
//! (nor to the first subscription or a join), restarts the proxy, which subscribes afresh and
//! replays what its subscribers missed.
//!
//! Ordering is kept by seq: the owner answers `Subscribed { head }` before any later event on
//! the same connection; an event that skips seqs (it cannot on one connection, but storage is
//! the record) is preceded by the missing rows read from the shared store; older seqs are
//! dropped. When the owner moves, restarts or its connection breaks, this actor stops with
//! `StopReason::Moved`; the directory starts what the new placement needs with the same subscribers, which
//! are replayed what they missed, and their sessions send their unanswered sends again (the
//! owner deduplicates by cid).

use crate::cluster::NodeLink;
use crate::ctx::Ctx;
use crate::msg::directory::DirMsg;
use crate::msg::room::{ReplyTo, RoomMsg, Subscriber, TO_USER};
use crate::msg::session::SessionMsg;
use crate::outbound::{Queued, Refused};
use crate::room::replay::{self, NotQueued};
use crate::room::{RoomShared, Sub, stale_join};
use crate::stop::StopReason;
use confab_schemas::node::NodeFrame;
use confab_schemas::wire::encode_server_frame;
use confab_schemas::{Draft, ErrorCode, Refusal, RoomId, ServerFrame, SystemEvent, UserId};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tracing::debug;

/// The member a `system` event frame says left or was removed, if it is one. Only frames that
/// start as a system event are parsed (a cheap prefix check on the hot path).
fn leaving_user(frame: &bytes::Bytes) -> Option<UserId> {
    let start = frame.iter().position(|b| *b == b'{')?;
    if !frame[start..].starts_with(br#"{"type":"system""#) {
        return None;
    }
    match serde_json::from_slice::<ServerFrame>(&frame[start..]).ok()? {
        ServerFrame::System {
            event: SystemEvent::MemberLeft { user } | SystemEvent::MemberRemoved { user }, ..
        } => Some(user.id),
        _ => None,
    }
}

/// Silence from the owner after which the subscription is checked.
const QUIET: Duration = Duration::from_secs(5);
/// How long the owner has to answer a subscription, a check or a join.
const ANSWER_WITHIN: Duration = Duration::from_secs(6);

pub(crate) struct RemoteArgs {
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) room: RoomId,
    pub(crate) shared: Arc<RoomShared>,
    pub(crate) link: NodeLink,
}

pub(crate) struct RemoteRoom;

struct PendingJoin {
    sub: Subscriber,
    since: Option<u64>,
    reply: Option<RpcReplyPort<Result<u64, Refusal>>>,
}

pub(crate) struct RemoteState {
    ctx: Arc<Ctx>,
    room: RoomId,
    shared: Arc<RoomShared>,
    link: NodeLink,
    /// The last seq this node received (`None` until the owner answered the subscription).
    head: Option<u64>,
    joins: HashMap<u64, PendingJoin>,
    next_req: u64,
    /// Sends forwarded and not answered yet: whom to answer.
    sends: HashMap<(UserId, Arc<str>), ReplyTo>,
    /// Local sessions the owner admitted on this subscription.
    admitted: HashSet<u64>,
    /// Sends of sessions whose join the owner has not answered yet, in order.
    held: Vec<(u64, NodeFrame)>,
    last_activity: Instant,
    ticker: Option<tokio::task::JoinHandle<()>>,
    /// When the owner last sent anything for this room (or the subscription was sent).
    heard: Instant,
    /// A check of the subscription is out since then.
    probe: Option<Instant>,
    /// When the oldest join still unanswered was forwarded, by request id.
    join_sent: HashMap<u64, Instant>,
}

impl Actor for RemoteRoom {
    type Msg = RoomMsg;
    type State = RemoteState;
    type Arguments = RemoteArgs;

    async fn pre_start(&self, me: ActorRef<RoomMsg>, a: RemoteArgs) -> Result<RemoteState, ActorProcessingErr> {
        // The room is owned elsewhere: no tail of an earlier local incarnation is replayed here.
        a.shared.lock().tail.clear();
        a.link.send(NodeFrame::Subscribe { room: a.room }).map_err(|_| format!("no connection to {}", a.link.node))?;
        let mut st = RemoteState {
            ctx: a.ctx,
            room: a.room,
            shared: a.shared,
            link: a.link,
            head: None,
            joins: HashMap::new(),
            next_req: 1,
            sends: HashMap::new(),
            admitted: HashSet::new(),
            held: Vec::new(),
            last_activity: Instant::now(),
            ticker: None,
            heard: Instant::now(),
            probe: None,
            join_sent: HashMap::new(),
        };
        // Subscribers kept from before (restart, owner moved): join them at the owner again and
        // have their sessions send their unanswered sends again.
        let subs: Vec<Subscriber> = st.shared.lock().subs.iter().map(|s| s.s.clone()).collect();
        for sub in subs {
            let req = st.req();
            let _ = st.link.send(NodeFrame::Join { room: st.room, req, session: sub.session, user: sub.user.clone() });
            let _ = sub.session_ref.cast(SessionMsg::RoomRestarted { room: st.room, crashed: false });
            st.joins.insert(req, PendingJoin { sub, since: None, reply: None });
            st.join_sent.insert(req, Instant::now());
        }
        st.ticker = Some(me.send_interval(Duration::from_millis(500), || RoomMsg::Tick));
        debug!(room = %st.room, owner = %st.link.node, "room proxied");
        Ok(st)
    }

    async fn post_stop(&self, _me: ActorRef<RoomMsg>, st: &mut RemoteState) -> Result<(), ActorProcessingErr> {
        if let Some(t) = st.ticker.take() {
            t.abort();
        }
        let _ = st.link.send(NodeFrame::Unsubscribe { room: st.room });
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<RoomMsg>,
        msg: RoomMsg,
        st: &mut RemoteState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RoomMsg::Join { sub, since, reply } => {
                st.last_activity = Instant::now();
                // The owner answers the join already on its way for this session; the newest
                // attempt takes its place (an earlier caller gave up waiting).
                if let Some(pending) = st.joins.values_mut().find(|j| j.sub.session == sub.session) {
                    *pending = PendingJoin { sub, since, reply: Some(reply) };
                    return Ok(());
                }
                let req = st.req();
                let frame = NodeFrame::Join { room: st.room, req, session: sub.session, user: sub.user.clone() };
                st.joins.insert(req, PendingJoin { sub, since, reply: Some(reply) });
                st.join_sent.insert(req, Instant::now());
                st.forward(&me, frame);
            }
            RoomMsg::Leave { session } => {
                st.shared.lock().subs.retain(|s| s.s.session != session);
                st.admitted.remove(&session);
                let _ = st.link.send(NodeFrame::Leave { room: st.room, session });
            }
            RoomMsg::Send { session, user, reply, sends } => {
                st.last_activity = Instant::now();
                let ReplyTo::Session(reply) = reply else { return Ok(()) };
                for draft in sends {
                    let cid = draft.cid.clone();
                    st.sends.insert((user.id, cid.clone()), ReplyTo::Session(reply.clone()));
                    st.ctx.metrics.forwards.fetch_add(1, Relaxed);
                    let frame = NodeFrame::Send { room: st.room, session, user: user.clone(), draft };
                    if st.admitted.contains(&session) {
                        st.forward(&me, frame);
                    } else if st.joins.values().any(|j| j.sub.session == session) {
                        // The owner must see the session's join first (it is on its way).
                        st.held.push((session, frame));
                    } else {
                        st.sends.remove(&(user.id, cid.clone()));
                        let refusal = Refusal::new(ErrorCode::NotJoined, "join the room before sending")
                            .frame(Some(cid.to_string()));
                        ReplyTo::Session(reply.clone()).answer(st.room, user.id, cid, encode_server_frame(&refusal));
                    }
                }
            }
            RoomMsg::Typing { session, user, on } => {
                let _ = st.link.send(NodeFrame::Typing { room: st.room, session, user, on });
            }
            RoomMsg::Command { by, draft, reply } => {
                st.sends.insert((by.id, draft.cid.clone()), reply);
                let frame = NodeFrame::Send { room: st.room, session: 0, user: by, draft };
                st.forward(&me, frame);
            }
            RoomMsg::Announce { by, event, cid, reply } => {
                st.sends.insert((by.id, cid.clone()), reply);
                let body = serde_json::to_string(&event).unwrap_or_default();
                let draft = Draft::system(cid, body.into());
                let frame = NodeFrame::Send { room: st.room, session: 0, user: by, draft };
                st.forward(&me, frame);
            }
            RoomMsg::Head(reply) => {
                let _ = reply.send(st.head.unwrap_or(0));
            }
            RoomMsg::Tick => st.tick(&me),
            RoomMsg::PeerDown(node) if node == st.link.node => me.stop(StopReason::Moved.reason()),
            RoomMsg::Handoff => me.stop(StopReason::Moved.reason()),
            RoomMsg::FromOwner(frame) => st.owner_frame(&me, frame).await?,
            _ => {}
        }
        Ok(())
    }
}

impl RemoteState {
    fn req(&mut self) -> u64 {
        self.next_req += 1;
        self.next_req
    }

    /// Sends a frame to the owner; a broken link stops this actor (the directory starts it again
    /// once the owner is reachable, and the sessions resend).
    fn forward(&mut self, me: &ActorRef<RoomMsg>, frame: NodeFrame) {
        if self.link.send(frame).is_err() {
            me.stop(StopReason::Moved.reason());
        }
    }

    async fn owner_frame(&mut self, me: &ActorRef<RoomMsg>, frame: NodeFrame) -> Result<(), ActorProcessingErr> {
        self.heard = Instant::now();
        match frame {
            NodeFrame::Subscribed { head, .. } if self.probe.is_some() && self.head.is_some() => {
                self.probe = None;
                if self.head.is_some_and(|h| h < head) {
                    tracing::warn!(room = %self.room, owner = %self.link.node, ours = ?self.head, head,
                        "events from the owner were lost; subscribing afresh");
                    self.ctx.metrics.resubscribes.fetch_add(1, Relaxed);
                    me.stop(StopReason::Moved.reason());
                }
            }
            NodeFrame::Subscribed { head, .. } => {
                self.probe = None;
                self.head = Some(head);
                self.catch_up_subscribers(head).await?;
            }
            NodeFrame::Event { seq, frame, .. } => {
                let Some(head) = self.head else { return Ok(()) };
                if seq <= head {
                    return Ok(());
                }
                if seq > head + 1 {
                    let rows =
                        self.ctx.store.messages_between(self.room, head + 1, seq - 1, (seq - 1 - head) as u32).await?;
                    for row in rows {
                        self.fan_out(self.shared.encode(ServerFrame::event(&row, &self.ctx.config.media)), row.seq);
                    }
                }
                let leaving = leaving_user(&frame);
                self.fan_out(frame, seq);
                self.head = Some(seq);
                if let Some(user) = leaving {
                    self.drop_user(user);
                }
            }
            NodeFrame::Ephemeral { except, frame, .. } => {
                for sub in self.shared.lock().subs.iter().filter(|s| Some(s.s.session) != except) {
                    if sub.s.out.push_ephemeral(frame.clone()).is_err() {
                        self.ctx.metrics.ephemeral_dropped.fetch_add(1, Relaxed);
                    }
                }
            }
            NodeFrame::JoinResult { req, result, .. } => {
                self.join_sent.remove(&req);
                let Some(join) = self.joins.remove(&req) else { return Ok(()) };
                let session = join.sub.session;
                if result.is_ok() {
                    self.admitted.insert(session);
                }
                match (join.reply, result) {
                    (Some(reply), Ok(info)) => {
                        let res = if reply.is_closed() {
                            Err(stale_join())
                        } else {
                            self.join_local(join.sub, join.since, info).await
                        };
                        if res.is_err() {
                            self.forget_unless_subscribed(session);
                        }
                        let _ = reply.send(res);
                    }
                    (Some(reply), Err(refusal)) => {
                        let _ = reply.send(Err(refusal));
                    }
                    // A subscriber kept from before, admitted again (or no longer: its sends
                    // get the owner's refusal).
                    (None, _) => {}
                }
                let (mine, rest): (Vec<_>, Vec<_>) = self.held.drain(..).partition(|(s, _)| *s == session);
                self.held = rest;
                for (_, frame) in mine {
                    self.forward(me, frame);
                }
            }
            NodeFrame::SendResult { user, cid, frame, .. } if cid == TO_USER => {
                for sub in self.shared.lock().subs.iter().filter(|s| s.s.user.id == user) {
                    let _ = sub.s.out.push(frame.clone());
                }
            }
            NodeFrame::SendResult { user, cid, frame, .. } => {
                let cid: Arc<str> = cid.into();
                if let Some(reply) = self.sends.remove(&(user, cid.clone())) {
                    reply.answer(self.room, user, cid, frame);
                }
            }
            NodeFrame::Restarted { .. } | NodeFrame::Moved { .. } => me.stop(StopReason::Moved.reason()),
            _ => {}
        }
        Ok(())
    }

    /// After subscribing: subscribers kept from before get what they missed, read once from
    /// storage; one whose queue cannot take it all gets the rest at its socket's pace
    /// (`replay::catch_up`) rather than a close with a resume hint.
    async fn catch_up_subscribers(&mut self, head: u64) -> Result<(), ActorProcessingErr> {
        let oldest = self.shared.lock().subs.iter().filter(|s| s.replay == 0).map(|s| s.last_seq).min();
        let rows = match oldest.filter(|o| *o < head) {
            Some(o) => self.ctx.store.messages_between(self.room, o + 1, head, (head - o) as u32).await?,
            None => Vec::new(),
        };
        let media = &self.ctx.config.media;
        let missed: Vec<_> = rows.iter().map(|r| (r.seq, self.shared.encode(ServerFrame::event(r, media)))).collect();
        let shared = self.shared.clone();
        let mut sh = shared.lock();
        replay::push_missed(self.room, &mut sh.subs, &missed);
        sh.fanned = head;
        replay::catch_up(&self.ctx, &self.shared, self.room, &mut sh.subs, head);
        Ok(())
    }

    /// A local session joins once the owner admitted it: `joined` now, what it missed from its
    /// replay task, then live events. A session subscribed already keeps its place.
    async fn join_local(
        &mut self,
        sub: Subscriber,
        since: Option<u64>,
        info: confab_schemas::node::JoinedInfo,
    ) -> Result<u64, Refusal> {
        let head = *self.head.get_or_insert(info.head);
        let (from, resync) = replay::replay_from(head, since, self.ctx.config.max_replay);
        let room = self.room;
        let joined =
            self.shared.mask(ServerFrame::Joined { room, head, online: info.online, online_count: info.online_count });
        let shared = self.shared.clone();
        let mut sh = shared.lock();
        let after = match replay::queue_joined(&sub, joined, head, from, resync) {
            Ok(after) => after,
            Err(NotQueued::Full) => {
                let _ = self.link.send(NodeFrame::Leave { room, session: sub.session });
                return Ok(head);
            }
            Err(NotQueued::Stale) => return Err(stale_join()),
        };
        sh.fanned = head;
        sh.subs.retain(|s| s.s.session != sub.session);
        let session = sub.session;
        let new = Sub::new(sub, after, head);
        let replay = new.replay;
        sh.subs.push(new);
        drop(sh);
        if replay != 0 {
            replay::start(self.ctx.clone(), shared, room, session, replay, after);
        }
        Ok(head)
    }

    /// The owner admitted a session that no longer waits for it: unless it is subscribed here
    /// (or joining again), the owner forgets it.
    fn forget_unless_subscribed(&mut self, session: u64) {
        let subscribed = self.shared.lock().subs.iter().any(|s| s.s.session == session);
        if !subscribed && !self.joins.values().any(|j| j.sub.session == session) {
            self.admitted.remove(&session);
            let _ = self.link.send(NodeFrame::Leave { room: self.room, session });
        }
    }

    /// A member left or was removed: their subscriptions here end (after the event reached them).
    fn drop_user(&mut self, user: UserId) {
        let room = self.room;
        let left = encode_server_frame(&ServerFrame::Left { room });
        let mut gone = Vec::new();
        let mut sh = self.shared.lock();
        sh.subs.retain(|s| {
            if s.s.user.id != user {
                return true;
            }
            s.s.out.forget(room);
            let _ = s.s.out.push(left.clone());
            gone.push(s.s.session);
            false
        });
        drop(sh);
        for session in gone {
            self.admitted.remove(&session);
        }
    }

    /// One committed message to every local subscriber; `fanned` moves under the same lock, so
    /// a replay that reaches it goes live without missing this message.
    fn fan_out(&mut self, frame: bytes::Bytes, seq: u64) {
        let shared = self.shared.clone();
        let mut sh = shared.lock();
        sh.fanned = seq;
        let (mut lagging, mut gone) = (Vec::new(), Vec::new());
        for sub in sh.subs.iter_mut().filter(|s| s.last_seq < seq && s.replay == 0) {
            match sub.s.out.push_messages(self.room, seq, seq, frame.clone()) {
                Ok(Queued::Yes | Queued::AlreadySent | Queued::Partly(_)) => sub.last_seq = seq,
                Err(Refused::Full) => lagging.push(sub.s.session),
                Err(Refused::Closed | Refused::Stale) => gone.push(sub.s.session),
            }
        }
        self.drop_subs(&mut sh.subs, &lagging, true);
        self.drop_subs(&mut sh.subs, &gone, false);
    }

    /// Forgets subscribers; lagging ones are told to close with their resume cursor.
    fn drop_subs(&self, subs: &mut Vec<Sub>, sessions: &[u64], lagging: bool) {
        for session in sessions {
            if let Some(i) = subs.iter().position(|s| s.s.session == *session) {
                let sub = subs.swap_remove(i);
                if lagging {
                    let _ = sub.s.session_ref.cast(SessionMsg::Lagging { room: self.room, last_seq: sub.last_seq });
                    self.ctx.metrics.sessions_closed_lagging.fetch_add(1, Relaxed);
                }
                let _ = self.link.send(NodeFrame::Leave { room: self.room, session: *session });
            }
        }
    }

    fn tick(&mut self, me: &ActorRef<RoomMsg>) {
        if self.link.is_broken() {
            me.stop(StopReason::Moved.reason());
            return;
        }
        // The subscription, a check of it or a join went unanswered: subscribe afresh.
        let unanswered = if self.head.is_none() && self.heard.elapsed() > ANSWER_WITHIN {
            Some("the subscription")
        } else if self.probe.is_some_and(|p| p.elapsed() > ANSWER_WITHIN) {
            Some("a check of the subscription")
        } else if self.join_sent.values().any(|at| at.elapsed() > ANSWER_WITHIN) {
            Some("a join")
        } else {
            None
        };
        if let Some(what) = unanswered {
            tracing::warn!(room = %self.room, owner = %self.link.node, what, "the owner did not answer; subscribing afresh");
            self.ctx.metrics.resubscribes.fetch_add(1, Relaxed);
            me.stop(StopReason::Moved.reason());
            return;
        }
        if self.probe.is_none() && self.head.is_some() && self.heard.elapsed() > QUIET {
            self.probe = Some(Instant::now());
            self.forward(me, NodeFrame::Subscribe { room: self.room });
        }
        let idle = self.shared.lock().subs.is_empty()
            && self.joins.is_empty()
            && self.sends.is_empty()
            && self.last_activity.elapsed() > self.ctx.config.room_idle;
        if idle && let Some(dir) = self.ctx.rooms.get() {
            let _ = dir.cast(DirMsg::Idle(self.room, me.get_id()));
        }
    }
}
