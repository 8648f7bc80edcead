//! `SessionActor`: one per client connection.
//!
//! It owns the user's identity, the rooms the connection joined and the outbound queue (the
//! socket's writer task drains it). The gateway's reader task parses frames and hands them over,
//! all those of one read of the socket in one message; at most `INBOUND_PERMITS` frames wait for
//! the actor, so a flooding client slows only itself. The sends among them go to each room in
//! one message too: under load a socket read brings several frames, and the actors' mailboxes
//! carry one message per read instead of one per frame.
//! It validates what can be checked without the room (body length, cid, room count) and forwards
//! the rest to room actors through their `RoomHandle`s; rooms answer on its `SessionMsg`s
//! (`crate::msg::session`), so the room never names this module.
//!
//! A join waits at most `JOIN_CALL_TIMEOUT` for its room and then tries again; each try is a new
//! attempt on the outbound queue (`Outbound::begin_join`), and a try it gave up on can no longer
//! answer, so the client gets one `joined` per `join` it sent. Its `reconnect` hints carry, per
//! joined room, the last seq queued before them (`Outbound::seal`).
//!
//! A session actor is not restarted in place: its state *is* the connection. When it fails or is
//! killed, its supervisor sends the client a `reconnect` frame and closes the socket; the client
//! resumes with `join … since`, which replays exactly what it missed.
//!
//! Parking: a session with nothing in flight that got no message for `session_park_after` hands
//! its state to its `SessionRef` and stops (an idle connection then costs no running actor); the
//! next message for it starts a new actor with that state (`SessionStart::Resume`). Rooms write to
//! the connection's outbound queue directly, so a parked session still gets every message of its
//! rooms.

use crate::ctx::Ctx;
use crate::msg::room::{ReplyTo, RoomHandle, Subscriber};
use crate::msg::session::{ParkedState, SessionMsg, SessionRef, WeakSessionRef};
use crate::outbound::Outbound;
use crate::stop::StopReason;
use crate::store::CursorWrite;
use confab_schemas::wire::{close_frame, encode_server_frame};
use confab_schemas::{ClientFrame, Draft, ErrorCode, EventKind, Refusal, RoomId, ServerFrame, UserRef};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Frames a reader may hand over before waiting for the session to catch up.
pub const INBOUND_PERMITS: usize = 64;
/// Longest client message id.
pub const MAX_CID_LEN: usize = 64;
/// Unanswered sends a connection may have per room (below the room's per-sender dedupe window).
pub const MAX_IN_FLIGHT: usize = 128;
/// Room restarts a send may live through before the session gives up on it (a message that
/// makes its room fail every time must not loop forever).
pub const MAX_RESENDS: u8 = 3;
/// How long a join waits for its room before trying again (the room may be restarting or
/// moving, or its owner slow to answer).
pub const JOIN_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A send the room has not answered yet.
struct InFlight {
    draft: Draft,
    /// Room restarts this send has lived through.
    resends: u8,
}

pub(crate) struct SessionArgs {
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) id: u64,
    pub(crate) user: UserRef,
    /// The login family the connection authenticated with.
    pub(crate) family: Option<Arc<str>>,
    pub(crate) out: Outbound,
}

/// How a session actor starts: for a new connection, or again with a parked session's state.
pub(crate) enum SessionStart {
    /// A new connection's, with the session's address (its actor hands it to rooms).
    New(SessionArgs, SessionRef),
    Resume(ParkedState),
}

pub(crate) struct SessionActor;

pub(crate) struct SessionState {
    ctx: Arc<Ctx>,
    id: u64,
    user: UserRef,
    out: Outbound,
    rooms: Joined,
    /// Per room, the sends not answered yet, oldest first.
    in_flight: HashMap<RoomId, VecDeque<InFlight>, foldhash::fast::RandomState>,
    closing: bool,
    /// cids made up for edits and deletes that came without one.
    made_up: u64,
    /// The session's address; weak, since a parked state lives in it.
    me: WeakSessionRef,
    /// Messages handled that came through `me` (see `SessionRef::park`).
    received: u64,
    /// When the last of them was handled.
    last_active: Instant,
    /// A `Park` is on a timer.
    park_armed: bool,
    /// This actor handed its state over and stops: `post_stop` leaves the rooms alone.
    parked: bool,
}

impl Actor for SessionActor {
    type Msg = SessionMsg;
    type State = SessionState;
    type Arguments = SessionStart;

    async fn pre_start(
        &self,
        me: ActorRef<SessionMsg>,
        start: SessionStart,
    ) -> Result<SessionState, ActorProcessingErr> {
        let mut st = match start {
            SessionStart::New(a, me) => SessionState {
                ctx: a.ctx,
                id: a.id,
                user: a.user,
                out: a.out,
                rooms: Joined::default(),
                in_flight: HashMap::default(),
                closing: false,
                made_up: 0,
                me: me.downgrade(),
                received: 0,
                last_active: Instant::now(),
                park_armed: false,
                parked: false,
            },
            SessionStart::Resume(state) => match state.downcast::<SessionState>() {
                Ok(st) => {
                    tracing::debug!(session = st.id, "woken");
                    st.ctx.metrics.sessions_parked.fetch_sub(1, Relaxed);
                    *st
                }
                Err(_) => return Err("a parked session's state is not a session's".into()),
            },
        };
        st.arm_park(&me);
        Ok(st)
    }

    async fn post_stop(&self, _me: ActorRef<SessionMsg>, st: &mut SessionState) -> Result<(), ActorProcessingErr> {
        if !st.parked {
            st.retire();
        }
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<SessionMsg>,
        msg: SessionMsg,
        st: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        if !matches!(msg, SessionMsg::Park) {
            st.received += 1;
            st.last_active = Instant::now();
        }
        match msg {
            SessionMsg::Park => {
                st.park_armed = false;
                if st.try_park(&me) {
                    return Ok(());
                }
            }
            SessionMsg::Disconnected => me.stop(StopReason::Disconnected.reason()),
            SessionMsg::Frames(frames, _permits) => st.frames(frames).await,
            // The queue's cursor for `room` is `last_seq`: the last message queued to it.
            SessionMsg::Lagging { room, last_seq } => {
                tracing::debug!(session = st.id, %room, last_seq, "fell behind a room; closing with a resume cursor");
                st.close(&me, "lagging", true);
            }
            SessionMsg::Close { reason, reconnect } => st.close(&me, &reason, reconnect),
            SessionMsg::SendResults { room, cids, frames } => {
                // One answer settles every send of its cid: a repeat that came while the first
                // was pending gets no answer of its own (the room sequences a cid once), and
                // must not wait in the window for one.
                if let Some(q) = st.in_flight.get_mut(&room) {
                    q.retain(|f| !cids.contains(&f.draft.cid));
                }
                // Empty when the room wrote them behind its messages already.
                if !frames.is_empty() && st.out.push(frames).is_err() {
                    st.close(&me, "lagging", true);
                }
            }
            SessionMsg::RoomRestarted { room, crashed } => st.resend(room, crashed).await,
            SessionMsg::StrangerPlace => crate::stranger::place_taken(&st.ctx, st.id, &st.user, &st.out).await,
            SessionMsg::RoomDown { room } => {
                let n = st.in_flight.get(&room).map_or(0, VecDeque::len);
                st.fail_in_flight(room, 0..n, ErrorCode::Retry, "storage is unavailable; send again shortly");
            }
        }
        st.arm_park(&me);
        Ok(())
    }
}

/// The rooms a session joined: a vector, grown one at a time (most connections join a few
/// rooms, and an idle connection's memory counts: a map took 116 bytes for one room).
#[derive(Default)]
struct Joined(Vec<RoomHandle>);

impl Joined {
    fn get(&self, room: &RoomId) -> Option<&RoomHandle> {
        self.0.iter().find(|h| h.room() == *room)
    }

    fn contains_key(&self, room: &RoomId) -> bool {
        self.get(room).is_some()
    }

    fn insert(&mut self, room: RoomId, handle: RoomHandle) {
        debug_assert_eq!(handle.room(), room);
        match self.0.iter_mut().find(|h| h.room() == room) {
            Some(h) => *h = handle,
            None => {
                self.0.reserve_exact(1);
                self.0.push(handle);
            }
        }
    }

    fn remove(&mut self, room: &RoomId) -> Option<RoomHandle> {
        let i = self.0.iter().position(|h| h.room() == *room)?;
        Some(self.0.swap_remove(i))
    }

    fn keys(&self) -> impl Iterator<Item = RoomId> + '_ {
        self.0.iter().map(RoomHandle::room)
    }

    fn values(&self) -> impl Iterator<Item = &RoomHandle> {
        self.0.iter()
    }
}

/// Ends a parked session whose connection closed: what a running one's `post_stop` does.
pub(crate) fn retire_parked(state: ParkedState) {
    if let Ok(mut st) = state.downcast::<SessionState>() {
        st.ctx.metrics.sessions_parked.fetch_sub(1, Relaxed);
        st.retire();
    }
}

impl SessionState {
    /// The connection is over: leave the rooms and the match queue.
    fn retire(&mut self) {
        for room in self.rooms.values() {
            room.leave(self.id);
        }
        crate::stranger::session_closed(&self.ctx, self.id, &self.user);
    }

    /// Nothing waits for an answer: the session may park.
    fn idle(&self) -> bool {
        !self.closing && self.in_flight.values().all(VecDeque::is_empty)
    }

    /// Keeps one `Park` on a timer while the session is idle and parking is on.
    fn arm_park(&mut self, me: &ActorRef<SessionMsg>) {
        let after = self.ctx.config.session_park_after;
        if self.park_armed || after.is_zero() || !self.idle() {
            return;
        }
        self.park_armed = true;
        let wait = after.saturating_sub(self.last_active.elapsed()).max(Duration::from_millis(1));
        me.send_after(wait, || SessionMsg::Park);
    }

    /// Parks the session if it has been idle for `session_park_after`: its state goes to its
    /// `SessionRef` and this actor stops. False when it stays (it re-arms the timer then).
    fn try_park(&mut self, me: &ActorRef<SessionMsg>) -> bool {
        let after = self.ctx.config.session_park_after;
        if after.is_zero() || !self.idle() || self.last_active.elapsed() < after {
            return false;
        }
        let Some(cell) = self.me.upgrade() else { return false };
        let parked = cell.park(me.get_id(), self.received, || {
            Box::new(SessionState {
                ctx: self.ctx.clone(),
                id: self.id,
                user: self.user.clone(),
                out: self.out.clone(),
                rooms: std::mem::take(&mut self.rooms),
                in_flight: std::mem::take(&mut self.in_flight),
                closing: false,
                made_up: self.made_up,
                me: self.me.clone(),
                received: 0,
                last_active: self.last_active,
                park_armed: false,
                parked: false,
            })
        });
        if parked {
            tracing::debug!(session = self.id, "parked");
            self.parked = true;
            self.ctx.metrics.sessions_parked.fetch_add(1, Relaxed);
            me.stop(StopReason::Parked.reason());
        }
        parked
    }

    /// This session's address, for rooms and the match pool.
    fn me_ref(&self) -> Option<SessionRef> {
        self.me.upgrade()
    }

    fn error(&self, code: ErrorCode, message: impl Into<String>, reference: Option<String>) {
        self.refuse(ServerFrame::error(code, message, reference));
    }

    /// Refuses a join, leave or read, naming its room.
    fn room_error(&self, code: ErrorCode, message: impl Into<String>, room: RoomId) {
        self.refuse(ServerFrame::room_error(code, message, room));
    }

    fn refuse(&self, frame: ServerFrame) {
        self.ctx.metrics.protocol_errors.fetch_add(1, Relaxed);
        let _ = self.out.push(encode_server_frame(&frame));
    }

    /// Handles frames in order. Sends wait until the next frame of another kind, or the end,
    /// and then go to each room in one message.
    async fn frames(&mut self, frames: Vec<ClientFrame>) {
        // Per room with queued sends, the in-flight index of the first.
        let mut queued: Vec<(RoomId, usize)> = Vec::new();
        // Not while storage takes no writes: the sends are refused anyway, and the read could
        // hold the session for the pool's whole acquire timeout.
        if self.ctx.storage.refusal().is_none()
            && frames.iter().any(|f| matches!(f, ClientFrame::Send { .. } | ClientFrame::Edit { .. }))
        {
            self.ctx.mutes.refresh(&self.ctx.store).await;
        }
        for frame in frames {
            if self.closing {
                break;
            }
            self.ctx.metrics.frames_in.fetch_add(1, Relaxed);
            self.frame(frame, &mut queued).await;
        }
        self.forward_queued(&mut queued).await;
    }

    async fn forward_queued(&mut self, queued: &mut Vec<(RoomId, usize)>) {
        for (room, first) in std::mem::take(queued) {
            let end = self.in_flight.get(&room).map_or(0, VecDeque::len);
            self.forward(room, first..end).await;
        }
    }

    /// Handles one frame: a send joins `queued`; any other frame first forwards what is queued.
    async fn frame(&mut self, frame: ClientFrame, queued: &mut Vec<(RoomId, usize)>) {
        if !matches!(frame, ClientFrame::Send { .. } | ClientFrame::Edit { .. } | ClientFrame::Delete { .. }) {
            self.forward_queued(queued).await;
        }
        let frame = match frame.into_draft(|kind| self.made_up_cid(kind)) {
            Ok((room, draft)) => {
                if let Some(i) = self.queue_send(room, draft)
                    && !queued.iter().any(|(r, _)| *r == room)
                {
                    queued.push((room, i));
                }
                return;
            }
            Err(frame) => frame,
        };
        match frame {
            // Drafts, queued above.
            ClientFrame::Send { .. } | ClientFrame::Edit { .. } | ClientFrame::Delete { .. } => {}
            ClientFrame::Auth { .. } => self.error(ErrorCode::Invalid, "already authenticated", None),
            ClientFrame::Join { room, since } => self.join(room, since).await,
            ClientFrame::Leave { room } => {
                if let Some(actor) = self.rooms.remove(&room) {
                    // Answers to sends already made still arrive; they are just not resent.
                    self.in_flight.remove(&room);
                    actor.leave(self.id);
                    self.out.forget(room);
                    let _ = self.out.push(encode_server_frame(&ServerFrame::Left { room }));
                } else {
                    self.room_error(ErrorCode::NotJoined, "not in this room", room);
                }
            }
            ClientFrame::Typing { room, on } => {
                if let Some(actor) = self.rooms.get(&room) {
                    actor.typing(self.id, self.user.clone(), on);
                }
            }
            ClientFrame::Read { room, seq } => {
                if !self.rooms.contains_key(&room) {
                    return self.room_error(ErrorCode::NotJoined, "join the room before marking it read", room);
                }
                if let Some(w) = self.ctx.writer.get() {
                    w.cursor(CursorWrite { user: self.user.id, room, seq });
                }
            }
            ClientFrame::Ping => {
                let _ = self.out.push(encode_server_frame(&ServerFrame::Pong));
            }
            // Boxed: an awaited future is laid out inside this one, and so inside every session
            // actor's loop future, sized for its largest state; the match pool's requests (their
            // queries and the moderation queue's commands) would add about 17 KiB to every idle
            // connection (`confab bench idle`: 29.7 KiB each instead of 12.4).
            ClientFrame::Stranger(f) => {
                if let Some(me) = self.me_ref() {
                    Box::pin(crate::stranger::handle(&self.ctx, self.id, &self.user, &self.out, &me, f)).await
                }
            }
        }
    }

    async fn join(&mut self, room: RoomId, since: Option<u64>) {
        // The user's own inbox does not count toward the rooms a connection may join.
        let joined = self.rooms.keys().filter(|r| !r.is_inbox()).count();
        if !self.rooms.contains_key(&room) && !room.is_inbox() && joined >= self.ctx.config.max_rooms_per_session {
            let max = self.ctx.config.max_rooms_per_session;
            return self.room_error(
                ErrorCode::TooManyRooms,
                format!("a connection may join at most {max} rooms"),
                room,
            );
        }
        let Some(me_ref) = self.me_ref() else { return };
        // Several tries: a room that passivates, restarts or moves to another node between lookup
        // and join answers no call.
        for attempt in 0..20 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let actor = match self.ctx.activate(room).await {
                Ok(a) => a,
                Err(Refusal { code: ErrorCode::Retry, .. }) => continue,
                Err(Refusal { code, message }) => return self.room_error(code, message, room),
            };
            // Only this attempt may answer from now on.
            let ticket = self.out.begin_join(room);
            let sub = Subscriber {
                session: self.id,
                user: self.user.clone(),
                out: self.out.clone(),
                session_ref: me_ref.clone(),
                ticket,
            };
            match actor.join(sub, since, JOIN_CALL_TIMEOUT).await {
                Some(Ok(_head)) => {
                    self.rooms.insert(room, actor);
                    return;
                }
                Some(Err(r)) if r.code != ErrorCode::Retry => {
                    return self.room_error(r.code, r.message, room);
                }
                // No answer in time (or a retry): this attempt may no longer answer, unless its
                // `joined` was queued already, in which case the join did happen.
                _ => {
                    if self.out.cancel_join(ticket) {
                        self.rooms.insert(room, actor);
                        return;
                    }
                }
            }
        }
        self.room_error(ErrorCode::Retry, "the room is restarting; join again", room);
    }

    /// A cid for an edit or delete that came without one (it is then not idempotent).
    fn made_up_cid(&mut self, kind: EventKind) -> String {
        let what = if kind == EventKind::Edit { "edit" } else { "delete" };
        self.made_up += 1;
        format!("~{what}-{}-{}-{}", self.id, confab_schemas::now_ms(), self.made_up)
    }

    /// Checks a send, edit or delete and queues it in flight (its index there), or refuses it.
    fn queue_send(&mut self, room: RoomId, d: Draft) -> Option<usize> {
        if let Err(r) = self.check_send(room, &d) {
            self.error(r.code, r.message, Some(d.cid.to_string()));
            return None;
        }
        let q = self.in_flight.entry(room).or_default();
        q.push_back(InFlight { draft: d, resends: 0 });
        Some(q.len() - 1)
    }

    /// What can be checked of a send, edit or delete without its room.
    fn check_send(&self, room: RoomId, d: &Draft) -> Result<(), Refusal> {
        let (cid, body) = (&*d.cid, &*d.body);
        if d.kind != EventKind::Message && d.target.is_none_or(|t| t == 0) {
            return Err(Refusal::new(ErrorCode::NotFound, "seq names no message"));
        }
        if cid.is_empty() || cid.len() > MAX_CID_LEN {
            return Err(Refusal::new(ErrorCode::Invalid, format!("cid must be 1 to {MAX_CID_LEN} bytes")));
        }
        if body.contains('\0') || cid.contains('\0') {
            return Err(Refusal::new(ErrorCode::Invalid, "messages may not contain NUL characters"));
        }
        if body.trim().is_empty() && d.kind != EventKind::Delete && d.attachments.is_empty() {
            return Err(Refusal::new(ErrorCode::EmptyBody, "the message is empty"));
        }
        check_attachment_ids(&d.attachments)?;
        if d.kind != EventKind::Delete
            && let Some(muted) =
                self.ctx.mutes.refusal(self.user.id).or_else(|| self.ctx.mutes.room_refusal(room, self.user.id))
        {
            return Err(muted);
        }
        let max = self.ctx.config.max_body_chars;
        if body.len() > max && body.chars().count() > max {
            return Err(Refusal::new(ErrorCode::TooLong, format!("messages are at most {max} characters")));
        }
        if !self.rooms.contains_key(&room) {
            return Err(Refusal::new(ErrorCode::NotJoined, "join the room before sending"));
        }
        if self.in_flight.get(&room).is_some_and(|q| q.len() >= MAX_IN_FLIGHT) {
            return Err(Refusal::new(ErrorCode::Overloaded, "too many unacknowledged messages; wait for acks"));
        }
        Ok(())
    }

    /// Casts the in-flight sends `range` of `room` to the room actor, looking the actor up again
    /// when the one we knew is gone.
    async fn forward(&mut self, room: RoomId, range: std::ops::Range<usize>) {
        for attempt in 0..2 {
            let actor = match (attempt, self.rooms.get(&room)) {
                (0, Some(a)) => a.clone(),
                _ => match self.ctx.activate(room).await {
                    Ok(a) => {
                        self.rooms.insert(room, a.clone());
                        a
                    }
                    Err(r) => return self.fail_in_flight(room, range, r.code, &r.message),
                },
            };
            let Some(q) = self.in_flight.get(&room) else { return };
            let sends = q.range(range.clone()).map(|f| f.draft.clone()).collect();
            let Some(me_ref) = self.me_ref() else { return };
            if actor.send(self.id, self.user.clone(), ReplyTo::Session(me_ref), sends) {
                return;
            }
            // The room actor was replaced: its subscribers survived, only the reference changed.
        }
        self.fail_in_flight(room, range, ErrorCode::Retry, "the room is restarting; send again");
    }

    /// Gives up on some in-flight sends: each gets an error frame naming its cid.
    fn fail_in_flight(&mut self, room: RoomId, range: std::ops::Range<usize>, code: ErrorCode, message: &str) {
        let failed: Vec<InFlight> = match self.in_flight.get_mut(&room) {
            Some(q) => q.drain(range).collect(),
            None => return,
        };
        for f in failed {
            self.error(code, message, Some(f.draft.cid.to_string()));
        }
    }

    /// After a room actor restart, every unanswered send goes to the new one, in the original
    /// order. Ones that did commit are recognised by their cid and just acked again.
    async fn resend(&mut self, room: RoomId, crashed: bool) {
        if !self.rooms.contains_key(&room) {
            return;
        }
        match self.ctx.activate(room).await {
            Ok(actor) => {
                self.rooms.insert(room, actor);
            }
            Err(r) => {
                let n = self.in_flight.get(&room).map_or(0, VecDeque::len);
                return self.fail_in_flight(room, 0..n, r.code, &r.message);
            }
        }
        let mut gave_up = Vec::new();
        if let Some(q) = self.in_flight.get_mut(&room) {
            q.retain_mut(|f| {
                f.resends += u8::from(crashed);
                let keep = f.resends <= MAX_RESENDS;
                if !keep {
                    gave_up.push(f.draft.cid.to_string());
                }
                keep
            });
        }
        for cid in gave_up {
            self.error(ErrorCode::Internal, "the message could not be stored", Some(cid));
        }
        let n = self.in_flight.get(&room).map_or(0, VecDeque::len);
        if n > 0 {
            self.forward(room, 0..n).await;
        }
    }

    /// Sends the last frames and stops: queued frames first, then the hint, then the close frame.
    /// With `reconnect`, the hint names each joined room's last seq queued before it (no message
    /// is queued after it).
    fn close(&mut self, me: &ActorRef<SessionMsg>, reason: &str, reconnect: bool) {
        if self.closing {
            return;
        }
        tracing::debug!(session = self.id, reason, reconnect, "closing the connection");
        self.closing = true;
        let resume: Option<BTreeMap<String, u64>> = reconnect.then(|| self.out.seal());
        let out = self.out.clone();
        let hint =
            resume.map(|resume| encode_server_frame(&ServerFrame::Reconnect { reason: reason.to_owned(), resume }));
        // A ban says so in an `error` frame before the close.
        let banned = (!reconnect && reason == crate::sessions::BANNED_REASON)
            .then(|| encode_server_frame(&ServerFrame::error(ErrorCode::Banned, "this account is banned", None)));
        let code = if hint.is_some() {
            1012
        } else if banned.is_some() {
            1008
        } else {
            1000
        };
        let close = close_frame(code, reason);
        let me = me.clone();
        tokio::spawn(async move {
            let last_frames = async {
                if let Some(hint) = hint {
                    out.push_wait(hint).await?;
                }
                if let Some(banned) = banned {
                    out.push_wait(banned).await?;
                }
                out.push_wait(close).await
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), last_frames).await;
            me.stop(StopReason::Closed.reason());
        });
    }
}

/// The upload ids of a send: at most `MAX_ATTACHMENTS`, each of an upload id's form, no repeats.
fn check_attachment_ids(ids: &[Arc<str>]) -> Result<(), Refusal> {
    use confab_schemas::attachments::{MAX_ATTACHMENTS, valid_upload_id};
    if ids.len() > MAX_ATTACHMENTS {
        return Err(Refusal::new(
            ErrorCode::TooManyAttachments,
            format!("a message carries at most {MAX_ATTACHMENTS} attachments"),
        ));
    }
    for (i, id) in ids.iter().enumerate() {
        if !valid_upload_id(id) {
            return Err(Refusal::new(ErrorCode::AttachmentNotFound, "an attachment is not an upload id"));
        }
        if ids[..i].contains(id) {
            return Err(Refusal::new(ErrorCode::Invalid, "an upload is attached twice"));
        }
    }
    Ok(())
}
