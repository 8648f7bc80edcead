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

use crate::outbound::{Outbound, Refused};
use crate::session::SessionMsg;
use crate::store::{NewMessage, WriteOutcome};
use crate::system::Ctx;
use crate::writer::{WriteResult, WriterMsg};
use bytes::Bytes;
use confab_schemas::client::ONLINE_LIST_MAX;
use confab_schemas::wire::encode_server_frame;
use confab_schemas::{ErrorCode, MessageRow, RoomId, RoomRow, ServerFrame, UserId, UserRef, Visibility, now_ms};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// A session subscribed to a room.
#[derive(Clone)]
pub struct Subscriber {
    pub session: u64,
    pub user: UserRef,
    pub out: Outbound,
    pub session_ref: ActorRef<SessionMsg>,
}

/// A refusal: a protocol error code and a human message.
pub type Refusal = (ErrorCode, String);

/// Messages of a room actor.
pub enum RoomMsg {
    Join {
        sub: Subscriber,
        since: Option<u64>,
        reply: RpcReplyPort<Result<u64, Refusal>>,
    },
    Leave {
        session: u64,
    },
    /// Post a message; the outcome (ack or error) goes back to `reply` as `SendResult`.
    Send {
        session: u64,
        user: UserRef,
        reply: ActorRef<SessionMsg>,
        cid: Arc<str>,
        body: Arc<str>,
        reply_to: Option<u64>,
    },
    Typing {
        session: u64,
        user: UserRef,
        on: bool,
    },
    /// The writer's answer for some of this incarnation's writes, in seq order.
    Committed {
        epoch: u64,
        results: Vec<(u64, WriteResult)>,
    },
    MemberAdded(UserId),
    /// The writer was restarted: writes in flight may be lost.
    WriterRestarted,
    /// The committed head seq.
    Head(RpcReplyPort<u64>),
    Tick,
}

/// State that outlives one incarnation of a room actor.
#[derive(Default)]
pub struct RoomShared {
    inner: Mutex<Shared>,
}

#[derive(Default)]
struct Shared {
    subs: Vec<Sub>,
    pending: VecDeque<Pending>,
}

struct Sub {
    s: Subscriber,
    /// The last message seq enqueued to this subscriber.
    last_seq: u64,
}

struct Pending {
    row: MessageRow,
    /// The session to answer (the last one that sent this cid).
    reply: ActorRef<SessionMsg>,
    sent_at: Instant,
}

impl RoomShared {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sessions subscribed right now.
    pub fn subscriber_count(&self) -> usize {
        self.lock().subs.len()
    }
}

pub struct RoomArgs {
    pub ctx: Arc<Ctx>,
    pub room: RoomRow,
    pub shared: Arc<RoomShared>,
}

pub struct RoomActor;

enum Recent {
    Pending,
    Committed { seq: u64, id: i64, ts: i64 },
}

/// A token bucket: `burst` tokens, refilled at `rate` per second.
struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct RoomState {
    ctx: Arc<Ctx>,
    room: RoomRow,
    shared: Arc<RoomShared>,
    epoch: u64,
    head: u64,
    next_seq: u64,
    tail: VecDeque<MessageRow>,
    members: HashSet<UserId>,
    recent: HashMap<(UserId, Arc<str>), Recent>,
    recent_order: VecDeque<(UserId, Arc<str>)>,
    loaded_senders: HashSet<UserId>,
    buckets: HashMap<UserId, Bucket>,
    typing_at: HashMap<UserId, Instant>,
    online: HashMap<UserId, (Arc<str>, u32)>,
    last_activity: Instant,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

/// Most recent `cid`s remembered per room before the oldest are forgotten.
const RECENT_CAP: usize = 65_536;
/// A sender's newest messages loaded to deduplicate a `cid` from before this incarnation.
const SENDER_DEDUPE_LOAD: u32 = 256;

impl Actor for RoomActor {
    type Msg = RoomMsg;
    type State = RoomState;
    type Arguments = RoomArgs;

    async fn pre_start(&self, me: ActorRef<RoomMsg>, args: RoomArgs) -> Result<RoomState, ActorProcessingErr> {
        let ctx = args.ctx;
        let id = args.room.id;
        let epoch = ctx.store.take_lease(id, &ctx.config.node_id, ctx.config.lease_ttl_ms).await?;
        let head = ctx.store.head_seq(id).await?;
        let tail_len = ctx.config.tail_len as u64;
        let tail: VecDeque<MessageRow> = ctx
            .store
            .messages_between(id, head.saturating_sub(tail_len - 1).max(1), head, tail_len as u32)
            .await?
            .into();
        let members = ctx.store.room_members(id).await?.into_iter().map(|(u, _, _)| u).collect();
        let mut st = RoomState {
            ctx: ctx.clone(),
            room: args.room,
            shared: args.shared,
            epoch,
            head,
            next_seq: head + 1,
            tail,
            members,
            recent: HashMap::new(),
            recent_order: VecDeque::new(),
            loaded_senders: HashSet::new(),
            buckets: HashMap::new(),
            typing_at: HashMap::new(),
            online: HashMap::new(),
            last_activity: Instant::now(),
            ticker: None,
        };
        st.recover().await?;
        st.ticker = Some(me.send_interval(Duration::from_millis(500), || RoomMsg::Tick));
        ctx.metrics.active_rooms.fetch_add(1, Relaxed);
        debug!(room = %id, epoch, head, "room active");
        Ok(st)
    }

    async fn post_stop(&self, _me: ActorRef<RoomMsg>, st: &mut RoomState) -> Result<(), ActorProcessingErr> {
        if let Some(t) = st.ticker.take() {
            t.abort();
        }
        st.ctx.metrics.active_rooms.fetch_sub(1, Relaxed);
        Ok(())
    }

    async fn handle(&self, me: ActorRef<RoomMsg>, msg: RoomMsg, st: &mut RoomState) -> Result<(), ActorProcessingErr> {
        match msg {
            RoomMsg::Join { sub, since, reply } => {
                st.last_activity = Instant::now();
                let res = st.join(sub, since).await;
                let _ = reply.send(res);
            }
            RoomMsg::Leave { session } => st.leave(session),
            RoomMsg::Send { session, user, reply, cid, body, reply_to } => {
                st.last_activity = Instant::now();
                if let Err((code, msg)) = st.send(&me, session, user, &reply, cid.clone(), body, reply_to).await {
                    let frame = encode_server_frame(&ServerFrame::error(code, msg, Some(cid.to_string())));
                    let _ = reply.cast(SessionMsg::SendResult { room: st.room.id, cid, frame });
                    st.ctx.metrics.protocol_errors.fetch_add(1, Relaxed);
                }
            }
            RoomMsg::Typing { session, user, on } => st.typing(session, user, on),
            RoomMsg::Committed { epoch, results } => {
                if epoch == st.epoch {
                    st.committed(results)?;
                }
            }
            RoomMsg::MemberAdded(user) => {
                st.members.insert(user);
            }
            RoomMsg::WriterRestarted => {
                if !st.shared.lock().pending.is_empty() {
                    return Err("writer restarted with writes in flight; resyncing from storage".into());
                }
            }
            RoomMsg::Head(reply) => {
                let _ = reply.send(st.head);
            }
            RoomMsg::Tick => st.tick(&me)?,
        }
        Ok(())
    }
}

impl RoomState {
    fn room_id(&self) -> RoomId {
        self.room.id
    }

    /// After (re)start: settle the previous incarnation's pending writes and replay gaps.
    async fn recover(&mut self) -> Result<(), ActorProcessingErr> {
        let (min_last, has_subs) = {
            let sh = self.shared.lock();
            (sh.subs.iter().map(|s| s.last_seq).min().unwrap_or(self.head), !sh.subs.is_empty())
        };
        let older = if has_subs { self.rows_before_tail(min_last).await? } else { Vec::new() };
        let shared = self.shared.clone();
        let mut sh = shared.lock();
        // What the previous incarnation committed is acked now; the rest its senders' sessions
        // send again when told of the restart (the cid makes that idempotent).
        let pending: Vec<Pending> = sh.pending.drain(..).collect();
        for p in pending.into_iter().filter(|p| p.row.seq <= self.head) {
            if let Some(row) = self.tail.iter().find(|r| r.seq == p.row.seq && r.cid == p.row.cid) {
                let frame = encode_server_frame(&ServerFrame::ack(row));
                let _ = p.reply.cast(SessionMsg::SendResult { room: self.room.id, cid: p.row.cid.clone(), frame });
            }
        }
        for sub in &sh.subs {
            let _ = sub.s.session_ref.cast(SessionMsg::RoomRestarted { room: self.room.id });
        }
        let head = self.head;
        let room = self.room_id();
        let mut lagging = Vec::new();
        for sub in sh.subs.iter_mut() {
            let after = sub.last_seq;
            let rows = older.iter().chain(self.tail.iter()).filter(|r| r.seq > after && r.seq <= head);
            for row in rows {
                if sub.s.out.push(encode_server_frame(&ServerFrame::message(row))).is_err() {
                    lagging.push(sub.s.session);
                    break;
                }
                sub.last_seq = row.seq;
            }
            self.online.entry(sub.s.user.id).or_insert((sub.s.user.username.clone(), 0)).1 += 1;
        }
        for session in lagging {
            self.drop_lagging(&mut sh, room, session);
        }
        Ok(())
    }

    /// Rows from `after + 1` up to just before the tail, from storage.
    async fn rows_before_tail(&self, after: u64) -> Result<Vec<MessageRow>, crate::Error> {
        let tail_start = self.tail.front().map(|r| r.seq).unwrap_or(self.head + 1);
        if after + 1 >= tail_start {
            return Ok(Vec::new());
        }
        self.ctx
            .store
            .messages_between(self.room_id(), after + 1, tail_start - 1, (tail_start - 1 - after) as u32)
            .await
    }

    async fn join(&mut self, sub: Subscriber, since: Option<u64>) -> Result<u64, Refusal> {
        let user = sub.user.id;
        if !self.members.contains(&user) {
            if self.room.visibility == Visibility::Private {
                return Err((ErrorCode::NotMember, "this room is private: ask its owner to add you".into()));
            }
            self.ctx.store.add_member(self.room_id(), user).await.map_err(internal)?;
            self.members.insert(user);
        }
        let head = self.head;
        let since = since.unwrap_or(head).min(head);
        let resync = head - since > self.ctx.config.max_replay;
        let from = if resync { head } else { since };
        let older = self.rows_before_tail(from).await.map_err(internal)?;

        let room = self.room_id();
        // The joiner first: they are online in this room from now on.
        let online_list: Vec<UserRef> = std::iter::once(sub.user.clone())
            .chain(
                self.online
                    .iter()
                    .filter(|(id, _)| **id != user)
                    .map(|(id, (name, _))| UserRef { id: *id, username: name.clone() }),
            )
            .take(ONLINE_LIST_MAX)
            .collect();
        let online_count = self.online.len() + usize::from(!self.online.contains_key(&user));
        let shared = self.shared.clone();
        let mut sh = shared.lock();
        if let Some(i) = sh.subs.iter().position(|s| s.s.session == sub.session) {
            sh.subs.swap_remove(i);
            self.offline(&mut sh, user, &sub.user);
        }
        let joined = ServerFrame::Joined { room, head, online: online_list, online_count };
        let mut ok = sub.out.push(encode_server_frame(&joined)).is_ok();
        if ok && resync {
            ok = sub.out.push(encode_server_frame(&ServerFrame::Resync { room, head })).is_ok();
        }
        let mut last = from;
        if ok {
            for row in older.iter().chain(self.tail.iter()).filter(|r| r.seq > from && r.seq <= head) {
                if sub.out.push(encode_server_frame(&ServerFrame::message(row))).is_err() {
                    ok = false;
                    break;
                }
                last = row.seq;
            }
        }
        if !ok {
            let _ = sub.session_ref.cast(SessionMsg::Lagging { room, last_seq: last });
            self.ctx.metrics.sessions_closed_lagging.fetch_add(1, Relaxed);
            return Ok(head);
        }
        let entry = self.online.entry(user).or_insert((sub.user.username.clone(), 0));
        entry.1 += 1;
        let first = entry.1 == 1;
        let user_ref = sub.user.clone();
        let session = sub.session;
        sh.subs.push(Sub { s: sub, last_seq: head });
        if first {
            let frame = encode_server_frame(&ServerFrame::Presence { room, user: user_ref, online: true });
            self.broadcast_ephemeral(&sh, frame, Some(session));
        }
        Ok(head)
    }

    fn leave(&mut self, session: u64) {
        let shared = self.shared.clone();
        self.remove_sub(&mut shared.lock(), session);
    }

    /// One fewer subscription of `user`; announces them offline when it was the last.
    fn offline(&mut self, sh: &mut Shared, user: UserId, user_ref: &UserRef) {
        if let Some(entry) = self.online.get_mut(&user) {
            entry.1 -= 1;
            if entry.1 == 0 {
                self.online.remove(&user);
                self.typing_at.remove(&user);
                let frame = encode_server_frame(&ServerFrame::Presence {
                    room: self.room.id,
                    user: user_ref.clone(),
                    online: false,
                });
                self.broadcast_ephemeral(sh, frame, None);
            }
        }
    }

    fn broadcast_ephemeral(&self, sh: &Shared, frame: Bytes, except: Option<u64>) {
        for sub in sh.subs.iter().filter(|s| Some(s.s.session) != except) {
            if sub.s.out.push_ephemeral(frame.clone()).is_err() {
                self.ctx.metrics.ephemeral_dropped.fetch_add(1, Relaxed);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn send(
        &mut self,
        me: &ActorRef<RoomMsg>,
        session: u64,
        user: UserRef,
        reply: &ActorRef<SessionMsg>,
        cid: Arc<str>,
        body: Arc<str>,
        reply_to: Option<u64>,
    ) -> Result<(), Refusal> {
        if !self.shared.lock().subs.iter().any(|s| s.s.session == session) {
            return Err((ErrorCode::NotJoined, "join the room before sending".into()));
        }
        if let Some(r) = reply_to
            && (r == 0 || r > self.head)
        {
            return Err((ErrorCode::Invalid, format!("reply_to {r} is not a message of this room")));
        }
        // Deduplicate before rate limiting: a retry must get its original ack.
        let key = (user.id, cid.clone());
        if !self.loaded_senders.contains(&user.id) {
            let rows =
                self.ctx.store.recent_by_sender(self.room_id(), user.id, SENDER_DEDUPE_LOAD).await.map_err(internal)?;
            for r in rows {
                self.remember((r.sender, r.cid.clone()), Recent::Committed { seq: r.seq, id: r.id, ts: r.ts });
            }
            self.loaded_senders.insert(user.id);
        }
        match self.recent.get(&key) {
            Some(Recent::Committed { seq, id, ts }) => {
                let ack = ServerFrame::Ack { cid: cid.clone(), room: self.room_id(), seq: *seq, id: *id, ts: *ts };
                let _ =
                    reply.cast(SessionMsg::SendResult { room: self.room_id(), cid, frame: encode_server_frame(&ack) });
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
        self.take_token(user.id)?;
        let cfg = &self.ctx.config;
        if self.shared.lock().pending.len() >= cfg.max_inflight_per_room {
            return Err((ErrorCode::Overloaded, "the room is busy; send again shortly".into()));
        }
        let Some(writer) = self.ctx.writer.get() else {
            return Err((ErrorCode::Retry, "storage is restarting; send again".into()));
        };
        let seq = self.next_seq;
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
        };
        if writer.cast(WriterMsg::Message(new, me.clone())).is_err() {
            return Err((ErrorCode::Retry, "storage is restarting; send again".into()));
        }
        self.next_seq += 1;
        self.shared.lock().pending.push_back(Pending { row, reply: reply.clone(), sent_at: Instant::now() });
        self.remember(key, Recent::Pending);
        Ok(())
    }

    fn remember(&mut self, key: (UserId, Arc<str>), value: Recent) {
        if self.recent.insert(key.clone(), value).is_none() {
            self.recent_order.push_back(key);
        }
        while self.recent_order.len() > RECENT_CAP {
            if let Some(old) = self.recent_order.pop_front() {
                if matches!(self.recent.get(&old), Some(Recent::Pending)) {
                    self.recent_order.push_back(old);
                    break;
                }
                self.recent.remove(&old);
                // Its sender's older cids must come from storage again.
                self.loaded_senders.remove(&old.0);
            }
        }
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
            Err((ErrorCode::RateLimited, format!("too many messages; retry in {wait_ms} ms")))
        }
    }

    /// The writer's answers: fan out and ack what is durable, in seq order.
    fn committed(&mut self, results: Vec<(u64, WriteResult)>) -> Result<(), ActorProcessingErr> {
        let room = self.room_id();
        let shared = self.shared.clone();
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
            let frame = encode_server_frame(&ServerFrame::message(&p.row));
            self.fan_out(&mut sh, frame, seq);
            let ack = encode_server_frame(&ServerFrame::ack(&p.row));
            let _ = p.reply.cast(SessionMsg::SendResult { room, cid: p.row.cid.clone(), frame: ack });
            self.remember((p.row.sender, p.row.cid.clone()), Recent::Committed { seq, id, ts: p.row.ts });
            self.tail.push_back(p.row);
            if self.tail.len() > self.ctx.config.tail_len {
                self.tail.pop_front();
            }
        }
        Ok(())
    }

    /// Sends one committed message to every subscriber: the same bytes to each.
    fn fan_out(&mut self, sh: &mut Shared, frame: Bytes, seq: u64) {
        let mut lagging = Vec::new();
        let mut gone = Vec::new();
        for sub in sh.subs.iter_mut() {
            match sub.s.out.push(frame.clone()) {
                Ok(()) => sub.last_seq = seq,
                Err(Refused::Full) => lagging.push(sub.s.session),
                Err(Refused::Closed) => gone.push(sub.s.session),
            }
        }
        for session in lagging {
            self.drop_lagging(sh, self.room.id, session);
        }
        for session in gone {
            self.remove_sub(sh, session);
        }
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

    fn typing(&mut self, session: u64, user: UserRef, on: bool) {
        if on {
            let now = Instant::now();
            if self.typing_at.get(&user.id).is_some_and(|t| now.duration_since(*t) < Duration::from_millis(1000)) {
                return;
            }
            self.typing_at.insert(user.id, now);
        } else {
            self.typing_at.remove(&user.id);
        }
        let sh = self.shared.lock();
        if !sh.subs.iter().any(|s| s.s.session == session) {
            return;
        }
        let frame = encode_server_frame(&ServerFrame::Typing { room: self.room.id, user, on });
        self.broadcast_ephemeral(&sh, frame, Some(session));
    }

    fn tick(&mut self, me: &ActorRef<RoomMsg>) -> Result<(), ActorProcessingErr> {
        let sh = self.shared.lock();
        if let Some(p) = sh.pending.front()
            && p.sent_at.elapsed() > self.ctx.config.write_timeout
        {
            warn!(room = %self.room.id, seq = p.row.seq, "write timed out; resyncing from storage");
            return Err("write timed out".into());
        }
        if sh.subs.is_empty() && sh.pending.is_empty() && self.last_activity.elapsed() > self.ctx.config.room_idle {
            drop(sh);
            if let Some(dir) = self.ctx.rooms.get() {
                let _ = dir.cast(crate::system::DirMsg::Idle(self.room.id, me.get_id()));
            }
        }
        Ok(())
    }
}

fn internal(err: crate::Error) -> Refusal {
    warn!(%err, "room storage error");
    (ErrorCode::Internal, "storage error; try again".into())
}
