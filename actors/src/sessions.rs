//! The sessions of one node: `SessionSupervisor` (starts a session actor per connection,
//! closes sessions by user or login family, hands a failed session's client a resume hint) and
//! `SessionHandle`, what a connection's socket reader holds.

use crate::ctx::Ctx;
use crate::msg::session::SessionMsg;
use crate::outbound::Outbound;
use crate::session::{INBOUND_PERMITS, SessionActor, SessionArgs};
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
    Spawn(SessionArgs, RpcReplyPort<Result<ActorRef<SessionMsg>, String>>),
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

/// A live session as its supervisor tracks it: the actor, its user, its login family, its queue,
/// and when it started (ms since the epoch).
type SessionEntry = (ActorRef<SessionMsg>, UserId, Option<Arc<str>>, Outbound, i64);

pub(crate) struct SessSupState {
    ctx: Arc<Ctx>,
    sessions: HashMap<ActorId, SessionEntry>,
}

impl Actor for SessionSupervisor {
    type Msg = SessSupMsg;
    type State = SessSupState;
    type Arguments = Arc<Ctx>;

    async fn pre_start(&self, _me: ActorRef<SessSupMsg>, ctx: Arc<Ctx>) -> Result<SessSupState, ActorProcessingErr> {
        Ok(SessSupState { ctx, sessions: HashMap::new() })
    }

    async fn handle(
        &self,
        me: ActorRef<SessSupMsg>,
        msg: SessSupMsg,
        st: &mut SessSupState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SessSupMsg::Spawn(args, reply) => {
                let (user, family, out) = (args.user.id, args.family.clone(), args.out.clone());
                let res = Actor::spawn_linked(None, SessionActor, args, me.get_cell()).await;
                let res = res.map(|(actor, _)| {
                    st.sessions.insert(actor.get_id(), (actor.clone(), user, family, out, confab_schemas::now_ms()));
                    actor
                });
                let _ = reply.send(res.map_err(|e| e.to_string()));
            }
            SessSupMsg::Close { target, reason, reconnect } => {
                for (actor, uid, family, _, started) in st.sessions.values() {
                    let hit = match &target {
                        CloseTarget::All => true,
                        CloseTarget::User(u) => u == uid,
                        CloseTarget::UserStartedBy(u, at) => u == uid && started <= at,
                        CloseTarget::Family(f) => family.as_ref() == Some(f),
                    };
                    if hit {
                        let _ = actor.cast(SessionMsg::Close { reason: reason.clone(), reconnect });
                    }
                }
            }
            SessSupMsg::Count(reply) => {
                let _ = reply.send(st.sessions.len());
            }
            SessSupMsg::KillOne(user, reply) => {
                let victim = st.sessions.values().find(|(_, u, _, _, _)| *u == user).map(|(a, _, _, _, _)| a.clone());
                if let Some(a) = &victim {
                    a.kill();
                }
                let _ = reply.send(victim.is_some());
            }
            SessSupMsg::Broadcast(frame) => {
                for (_, _, _, out, _) in st.sessions.values() {
                    let _ = out.push_ephemeral(frame.clone());
                }
            }
            SessSupMsg::KillAll(reply) => {
                for (a, _, _, _, _) in st.sessions.values() {
                    a.kill();
                }
                let _ = reply.send(st.sessions.len());
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
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, StopReason::of(reason.as_deref()) == Some(StopReason::Killed))
            }
            _ => return Ok(()),
        };
        let Some((_, _, _, out, _)) = st.sessions.remove(&cell.get_id()) else { return Ok(()) };
        if failed {
            // The connection is the session's state: hand the client a resume hint and close.
            st.ctx.metrics.session_restarts.fetch_add(1, Relaxed);
            let hint = ServerFrame::Reconnect { reason: "session_restart".into(), resume: out.seal() };
            let _ = out.push(encode_server_frame(&hint));
            let _ = out.push(close_frame(1011, "session restart"));
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
    actor: ActorRef<SessionMsg>,
    permits: Arc<Semaphore>,
    out: Outbound,
}

impl SessionHandle {
    pub(crate) fn new(actor: ActorRef<SessionMsg>, out: Outbound) -> SessionHandle {
        SessionHandle { actor, permits: Arc::new(Semaphore::new(INBOUND_PERMITS)), out }
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
        self.actor.cast(SessionMsg::Frames(frames, Some(permits))).is_ok()
    }

    /// Ends the session (the socket closed).
    pub fn stop(&self) {
        self.actor.stop(StopReason::Disconnected.reason());
    }
}
