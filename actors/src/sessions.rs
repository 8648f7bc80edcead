//! The sessions of one node: `SessionSupervisor` (starts a session actor per connection, and
//! again when a parked session wakes; closes sessions by user or login family, parked ones
//! included; hands a failed session's client a resume hint) and `SessionHandle`, what a
//! connection's socket reader holds.

use crate::ctx::Ctx;
use crate::msg::session::{ParkedState, SessionMsg, SessionRef, Waker};
use crate::outbound::Outbound;
use crate::session::{INBOUND_PERMITS, SessionActor, SessionArgs, SessionStart};
use crate::stop::StopReason;
use confab_schemas::wire::{close_frame, encode_server_frame};
use confab_schemas::{ClientFrame, ServerFrame, UserId};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::Semaphore;
use tracing::warn;

/// The close reason of a ban: the sessions it closes first send an `error` frame `banned`.
pub const BANNED_REASON: &str = "banned";
/// The close reason of a kick by staff (the login stays valid: the client may come back).
pub const KICKED_REASON: &str = "kicked";

/// Which sessions to close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseTarget {
    All,
    /// Every session of a user (password change, ban).
    User(UserId),
    /// The sessions of a user that started at or before this time (ms since the epoch): a kick
    /// read from the revocations table up to a second late leaves alone the socket the kicked
    /// user opened again since (a kick lets them come back).
    UserStartedBy(UserId, i64),
    /// The sessions of one login family (logout, refresh-token reuse).
    Family(Arc<str>),
}

pub(crate) enum SessSupMsg {
    /// Starts the session of a new connection (its `me` is not started yet).
    Spawn(SessionArgs, RpcReplyPort<Result<SessionRef, String>>),
    /// Starts a parked session again (a message came for it).
    Wake(SessionRef, ParkedState),
    /// A parked session's connection closed.
    Ended(u64),
    /// Close sessions, with a reconnect hint or for good.
    Close {
        target: CloseTarget,
        reason: String,
        reconnect: bool,
    },
    Count(RpcReplyPort<usize>),
    /// Test and chaos hook: kill one session of a user.
    KillOne(UserId, RpcReplyPort<bool>),
    KillAll(RpcReplyPort<usize>),
    /// A client frame for every session (`room_created`), shed first like presence.
    Broadcast(bytes::Bytes),
}

pub(crate) struct SessionSupervisor;

/// A live session as its supervisor tracks it, running or parked: its address, its user, its
/// login family, its queue, and when it started (ms since the epoch).
type SessionEntry = (SessionRef, UserId, Option<Arc<str>>, Outbound, i64);

pub(crate) struct SessSupState {
    ctx: Arc<Ctx>,
    /// By session id.
    sessions: HashMap<u64, SessionEntry>,
    /// The running actors' sessions.
    actors: HashMap<ActorId, u64>,
    /// Wakes a parked session through this supervisor.
    waker: Waker,
}

impl SessSupState {
    /// Starts an actor for session `me` and hands it what came meanwhile.
    async fn start(&mut self, sup: &ActorRef<SessSupMsg>, me: &SessionRef, start: SessionStart) -> Result<(), String> {
        let (actor, _) =
            Actor::spawn_linked(None, SessionActor, start, sup.get_cell()).await.map_err(|e| e.to_string())?;
        self.actors.insert(actor.get_id(), me.id());
        if !me.started(actor.clone()) {
            actor.stop(StopReason::Disconnected.reason());
        }
        Ok(())
    }

    /// A session failed or was killed: the connection is the session's state, so the client
    /// gets a resume hint and the socket closes.
    fn restart_hint(&self, out: &Outbound) {
        self.ctx.metrics.session_restarts.fetch_add(1, Relaxed);
        let hint = ServerFrame::Reconnect { reason: "session_restart".into(), resume: out.seal() };
        let _ = out.push(encode_server_frame(&hint));
        let _ = out.push(close_frame(1011, "session restart"));
    }

    /// Kills session `id`'s actor, or ends it if parked (a kill's effect: hint and close).
    fn kill(&mut self, id: u64) {
        let Some((me, ..)) = self.sessions.get(&id) else { return };
        if let Some(actor) = me.actor() {
            actor.kill();
        } else if me.gone() {
            self.ctx.metrics.sessions_parked.fetch_sub(1, Relaxed);
            if let Some((_, _, _, out, _)) = self.sessions.remove(&id) {
                self.restart_hint(&out);
            }
        }
    }
}

impl Actor for SessionSupervisor {
    type Msg = SessSupMsg;
    type State = SessSupState;
    type Arguments = Arc<Ctx>;

    async fn pre_start(&self, me: ActorRef<SessSupMsg>, ctx: Arc<Ctx>) -> Result<SessSupState, ActorProcessingErr> {
        let metrics = ctx.metrics.clone();
        let waker: Waker = Arc::new(move |session: SessionRef, state: ParkedState| {
            // Only while the node stops: the state is dropped with the message.
            if me.cast(SessSupMsg::Wake(session.clone(), state)).is_err() {
                session.gone();
                metrics.sessions_parked.fetch_sub(1, Relaxed);
            }
        });
        Ok(SessSupState { ctx, sessions: HashMap::new(), actors: HashMap::new(), waker })
    }

    async fn handle(
        &self,
        me: ActorRef<SessSupMsg>,
        msg: SessSupMsg,
        st: &mut SessSupState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SessSupMsg::Spawn(args, reply) => {
                let (id, user, family, out) = (args.id, args.user.id, args.family.clone(), args.out.clone());
                let wake = (!st.ctx.config.session_park_after.is_zero()).then(|| st.waker.clone());
                let session = SessionRef::starting(id, wake);
                let res = st.start(&me, &session, SessionStart::New(args, session.clone())).await.map(|()| {
                    st.sessions.insert(id, (session.clone(), user, family, out, confab_schemas::now_ms()));
                    session
                });
                let _ = reply.send(res);
            }
            SessSupMsg::Wake(session, state) => {
                if let Err(err) = st.start(&me, &session, SessionStart::Resume(state)).await {
                    warn!(%err, "a parked session could not start again");
                    session.gone();
                    st.ctx.metrics.sessions_parked.fetch_sub(1, Relaxed);
                    if let Some((_, _, _, out, _)) = st.sessions.remove(&session.id()) {
                        st.restart_hint(&out);
                    }
                }
            }
            SessSupMsg::Ended(id) => {
                st.sessions.remove(&id);
            }
            SessSupMsg::Close { target, reason, reconnect } => {
                for (session, uid, family, _, started) in st.sessions.values() {
                    let hit = match &target {
                        CloseTarget::All => true,
                        CloseTarget::User(u) => u == uid,
                        CloseTarget::UserStartedBy(u, at) => u == uid && started <= at,
                        CloseTarget::Family(f) => family.as_ref() == Some(f),
                    };
                    if hit {
                        let _ = session.cast(SessionMsg::Close { reason: reason.clone(), reconnect });
                    }
                }
            }
            SessSupMsg::Count(reply) => {
                let _ = reply.send(st.sessions.len());
            }
            SessSupMsg::KillOne(user, reply) => {
                let victim = st.sessions.iter().find(|(_, (_, u, _, _, _))| *u == user).map(|(id, _)| *id);
                if let Some(id) = victim {
                    st.kill(id);
                }
                let _ = reply.send(victim.is_some());
            }
            SessSupMsg::Broadcast(frame) => {
                for (_, _, _, out, _) in st.sessions.values() {
                    let _ = out.push_ephemeral(frame.clone());
                }
            }
            SessSupMsg::KillAll(reply) => {
                let n = st.sessions.len();
                let ids: Vec<u64> = st.sessions.keys().copied().collect();
                for id in ids {
                    st.kill(id);
                }
                let _ = reply.send(n);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _me: ActorRef<SessSupMsg>,
        evt: SupervisionEvent,
        st: &mut SessSupState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, failed) = match evt {
            SupervisionEvent::ActorFailed(cell, err) => {
                warn!(%err, "session actor failed");
                (cell, true)
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => match StopReason::of(reason.as_deref()) {
                // Its state waits in its `SessionRef`; the session goes on.
                Some(StopReason::Parked) => {
                    st.actors.remove(&cell.get_id());
                    return Ok(());
                }
                why => {
                    tracing::debug!(actor = %cell.get_id(), ?why, "a session actor stopped");
                    (cell, why == Some(StopReason::Killed))
                }
            },
            _ => return Ok(()),
        };
        let Some(id) = st.actors.remove(&cell.get_id()) else { return Ok(()) };
        // A newer actor of the same session (started after this one parked) is not this one.
        let current =
            st.sessions.get(&id).is_some_and(|(me, ..)| me.actor().is_none_or(|a| a.get_id() == cell.get_id()));
        if !current {
            return Ok(());
        }
        let Some((me, _, _, out, _)) = st.sessions.remove(&id) else { return Ok(()) };
        tracing::debug!(session = id, failed, "a session's actor ended: the session is over");
        if me.gone() {
            st.ctx.metrics.sessions_parked.fetch_sub(1, Relaxed);
        }
        if failed {
            st.restart_hint(&out);
        }
        Ok(())
    }

    async fn post_stop(&self, me: ActorRef<SessSupMsg>, _st: &mut SessSupState) -> Result<(), ActorProcessingErr> {
        me.stop_children_and_wait(StopReason::Shutdown.reason(), Some(Duration::from_secs(10))).await;
        Ok(())
    }
}

/// A connection's session, as its socket reader sees it.
#[derive(Clone)]
pub struct SessionHandle {
    session: SessionRef,
    sup: ActorRef<SessSupMsg>,
    permits: Arc<Semaphore>,
    out: Outbound,
}

impl SessionHandle {
    pub(crate) fn new(session: SessionRef, sup: ActorRef<SessSupMsg>, out: Outbound) -> SessionHandle {
        SessionHandle { session, sup, permits: Arc::new(Semaphore::new(INBOUND_PERMITS)), out }
    }

    /// The connection's outbound queue.
    pub fn out(&self) -> &Outbound {
        &self.out
    }

    /// Hands parsed frames (at most `INBOUND_PERMITS`) to the session in one message, waiting
    /// while too many are unhandled. False once the session is gone.
    pub async fn deliver(&self, frames: Vec<ClientFrame>) -> bool {
        let n = frames.len().clamp(1, INBOUND_PERMITS) as u32;
        let Ok(permits) = self.permits.clone().acquire_many_owned(n).await else { return false };
        self.session.cast(SessionMsg::Frames(frames, Some(permits))).is_ok()
    }

    /// Ends the session (the socket closed): stops its actor, or retires it if parked.
    pub fn stop(&self) {
        if let Some(parked) = self.session.end(|actor| actor.stop(StopReason::Disconnected.reason())) {
            crate::session::retire_parked(parked);
            let _ = self.sup.cast(SessSupMsg::Ended(self.session.id()));
        }
    }
}
