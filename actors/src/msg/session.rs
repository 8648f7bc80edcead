//! What a session actor is told: frames its reader parsed, and the answers and notices of the
//! rooms it joined; and `SessionRef`, the address they go through, which wakes a parked session.

use bytes::Bytes;
use confab_schemas::{ClientFrame, RoomId};
use ractor::{ActorId, ActorRef};
use std::any::Any;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::OwnedSemaphorePermit;

/// Messages of a session actor.
pub(crate) enum SessionMsg {
    /// Parsed client frames, in the order they came; the permits return to the reader once
    /// they are handled.
    Frames(Vec<ClientFrame>, Option<OwnedSemaphorePermit>),
    /// A room stopped feeding this session: it fell behind after `last_seq`.
    Lagging { room: RoomId, last_seq: u64 },
    /// Close the connection with a reconnect hint (shutdown) or for good (logout, revocation).
    Close { reason: String, reconnect: bool },
    /// A room's answers to some of this session's sends: `frames` holds one `ack` or `error`
    /// frame per cid, in order, ready for the socket (one write however many there are). After a
    /// fan-out the room sends the cids alone first, before its acks can reach the socket behind
    /// the messages they answer, and the frames it could not write there come later, alone.
    SendResults { room: RoomId, cids: Vec<Arc<str>>, frames: Bytes },
    /// A room actor restarted (`crashed`) or the room moved to another node: sends it had not
    /// answered are sent again. Only crashes count against a send's resends.
    RoomRestarted { room: RoomId, crashed: bool },
    /// A room actor stopped and cannot start again for now (its storage takes no writes): its
    /// unanswered sends are refused with `retry`, and the client sends them again.
    RoomDown { room: RoomId },
    /// The user's place in the match queue was given to this session (a new connection of
    /// someone who waited): it waits here from now on (`crate::stranger`).
    StrangerPlace,
    /// The socket closed while the actor was starting: stop.
    Disconnected,
    /// The session's own timer: park if it has been idle long enough (never sent through a
    /// `SessionRef`, so it is not counted there).
    Park,
}

/// A message for a session that can no longer be reached (its connection ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gone;

/// What a parked session keeps: the session actor's state, opaque here (`crate::session` owns
/// it).
pub(crate) type ParkedState = Box<dyn Any + Send>;

/// Starts an actor for a parked session's state (the session supervisor's, `crate::sessions`);
/// it answers with `SessionRef::started`, or `SessionRef::gone` when it cannot.
pub(crate) type Waker = Arc<dyn Fn(SessionRef, ParkedState) + Send + Sync>;

/// The one address of a session, whether its actor runs or is parked: every message for a
/// session goes through it, never through the actor's own reference.
///
/// An idle session parks (`crate::session`): its actor hands its state over here and stops, so
/// an idle connection costs no running actor (its mailboxes and loop future were three quarters
/// of an idle connection's memory). The next message wakes it: the waker starts a new actor with
/// the state, and the messages that came meanwhile reach that actor first, in order. The actor
/// parks only if it has handled every message sent to it (`sent`, counted here under the lock,
/// against the count it handled), so none is lost in a stopping actor's mailbox.
#[derive(Clone)]
pub(crate) struct SessionRef(Arc<SessionCell>);

/// A `SessionRef` that does not keep the session's cell alive (held by its own state).
#[derive(Clone)]
pub(crate) struct WeakSessionRef(Weak<SessionCell>);

pub(crate) struct SessionCell {
    id: u64,
    wake: Option<Waker>,
    slot: Mutex<Slot>,
}

struct Slot {
    state: Run,
    /// The connection ended: the session must not park any more.
    ending: bool,
}

enum Run {
    /// An actor is being started; these messages wait for it.
    Starting(Vec<SessionMsg>),
    /// `sent` messages went to `actor` through this cell.
    Active {
        actor: ActorRef<SessionMsg>,
        sent: u64,
    },
    Parked(ParkedState),
    Gone,
}

impl SessionRef {
    /// The address of session `id` before its actor has started; `wake` restarts it after it
    /// parked (`None`: it never parks).
    pub(crate) fn starting(id: u64, wake: Option<Waker>) -> SessionRef {
        SessionRef(Arc::new(SessionCell {
            id,
            wake,
            slot: Mutex::new(Slot { state: Run::Starting(Vec::new()), ending: false }),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.0.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session's id (unique on this node).
    pub(crate) fn id(&self) -> u64 {
        self.0.id
    }

    pub(crate) fn downgrade(&self) -> WeakSessionRef {
        WeakSessionRef(Arc::downgrade(&self.0))
    }

    /// Sends `msg` to the session, waking it if it is parked.
    pub(crate) fn cast(&self, msg: SessionMsg) -> Result<(), Gone> {
        let mut slot = self.lock();
        match &mut slot.state {
            Run::Active { actor, sent } => {
                actor.cast(msg).map_err(|_| Gone)?;
                *sent += 1;
                Ok(())
            }
            Run::Starting(waiting) => {
                waiting.push(msg);
                Ok(())
            }
            Run::Gone => Err(Gone),
            Run::Parked(_) => {
                let Run::Parked(state) = std::mem::replace(&mut slot.state, Run::Starting(vec![msg])) else {
                    unreachable!("matched Parked")
                };
                let Some(wake) = self.0.wake.clone() else {
                    slot.state = Run::Gone;
                    return Err(Gone);
                };
                drop(slot);
                wake(self.clone(), state);
                Ok(())
            }
        }
    }

    /// Its actor started: the messages that came meanwhile go to it first, in order. False when
    /// the session ended meanwhile (the caller stops the actor).
    pub(crate) fn started(&self, actor: ActorRef<SessionMsg>) -> bool {
        let mut slot = self.lock();
        match std::mem::replace(&mut slot.state, Run::Gone) {
            Run::Starting(waiting) => {
                let sent = waiting.len() as u64;
                for msg in waiting {
                    let _ = actor.cast(msg);
                }
                slot.state = Run::Active { actor, sent };
                true
            }
            other => {
                slot.state = other;
                false
            }
        }
    }

    /// Parks the state `park` makes, if `actor` runs the session, has handled all `received`
    /// messages sent to it, and the connection goes on. True when it parked: the actor stops.
    pub(crate) fn park(&self, actor: ActorId, received: u64, park: impl FnOnce() -> ParkedState) -> bool {
        let mut slot = self.lock();
        let idle = matches!(&slot.state, Run::Active { actor: a, sent } if a.get_id() == actor && *sent == received);
        if !idle || slot.ending {
            return false;
        }
        slot.state = Run::Parked(park());
        true
    }

    /// The connection ended: stops a running actor (`stop`), or hands back a parked state for
    /// its owner to retire; a starting actor is told with `SessionMsg::Disconnected`.
    pub(crate) fn end(&self, stop: impl FnOnce(&ActorRef<SessionMsg>)) -> Option<ParkedState> {
        let mut slot = self.lock();
        slot.ending = true;
        match &mut slot.state {
            Run::Active { actor, .. } => {
                stop(actor);
                None
            }
            Run::Starting(waiting) => {
                waiting.push(SessionMsg::Disconnected);
                None
            }
            Run::Parked(_) => match std::mem::replace(&mut slot.state, Run::Gone) {
                Run::Parked(state) => Some(state),
                _ => None,
            },
            Run::Gone => None,
        }
    }

    /// The session is over. True when that dropped a parked state.
    pub(crate) fn gone(&self) -> bool {
        let state = std::mem::replace(&mut self.lock().state, Run::Gone);
        matches!(state, Run::Parked(_))
    }

    /// The running actor, if any.
    pub(crate) fn actor(&self) -> Option<ActorRef<SessionMsg>> {
        match &self.lock().state {
            Run::Active { actor, .. } => Some(actor.clone()),
            _ => None,
        }
    }
}

impl WeakSessionRef {
    pub(crate) fn upgrade(&self) -> Option<SessionRef> {
        self.0.upgrade().map(SessionRef)
    }
}
