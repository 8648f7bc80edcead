//! The room directory: the supervisor of this node's room actors (`RoomActor` for rooms owned
//! here, `RemoteRoom` for rooms owned elsewhere) and of their moderation queues. It starts a
//! room on first use where its placement says, keeps each room's `RoomShared` (subscribers and
//! pending writes) across incarnations, restarts a failed room, moves rooms whose owner
//! changed, and passivates idle ones. It hands out `RoomHandle`s, never its rooms' messages.

use crate::cluster::Placement;
use crate::ctx::Ctx;
use crate::error::Error;
use crate::moderation::{ModerationArgs, ModerationHandle, ModerationQueue};
use crate::msg::directory::DirMsg;
use crate::msg::room::{InboxHandle, RoomHandle};
use crate::remote::{RemoteArgs, RemoteRoom};
use crate::room::{RoomActor, RoomArgs, RoomShared};
use crate::stop::StopReason;
use confab_schemas::{ErrorCode, Refusal, RoomId, RoomKind, RoomRow};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tracing::{debug, info, warn};

struct RoomEntry {
    row: RoomRow,
    actor: Option<RoomHandle>,
    /// The owner node the actor proxies to; `None` when it is the local sequencer.
    remote: Option<Arc<str>>,
    shared: Arc<RoomShared>,
    /// The room's moderation queue, while the room is sequenced here.
    moderation: Option<ModerationHandle>,
}

pub(crate) struct RoomDirectory;

pub(crate) struct DirState {
    ctx: Arc<Ctx>,
    rooms: HashMap<RoomId, RoomEntry>,
    by_actor: HashMap<ActorId, RoomId>,
}

impl DirState {
    async fn start_room(&mut self, me: &ActorRef<DirMsg>, id: RoomId) -> Result<RoomHandle, ActorProcessingErr> {
        let name = format!("{}/room/{}", self.ctx.config.node_id, id);
        let placement = self.ctx.cluster().placement(id);
        match &placement {
            // The queue first: the room holds messages through it from its first send.
            Placement::Local => self.start_queue(me, id).await?,
            _ => self.stop_queue(id),
        }
        let entry = self.rooms.get_mut(&id).ok_or("unknown room")?;
        let (actor, remote) = match placement {
            Placement::Local => {
                // Starting reads and writes storage: not while it takes no writes.
                if let Some(refusal) = self.ctx.storage.refusal() {
                    return Err(refusal.message.into());
                }
                let args = RoomArgs { ctx: self.ctx.clone(), room: entry.row.clone(), shared: entry.shared.clone() };
                (Actor::spawn_linked(Some(name), RoomActor, args, me.get_cell()).await?.0, None)
            }
            Placement::Remote(link) => {
                // A lease this node may still hold for the room must not make the owner wait.
                self.ctx.store.release_lease(id, &self.ctx.config.node_id).await?;
                let node = link.node.clone();
                let args = RemoteArgs { ctx: self.ctx.clone(), room: id, shared: entry.shared.clone(), link };
                (Actor::spawn_linked(Some(name), RemoteRoom, args, me.get_cell()).await?.0, Some(node))
            }
            Placement::Unavailable(why) => return Err(why.into()),
        };
        let actor = RoomHandle::new(id, actor);
        entry.actor = Some(actor.clone());
        entry.remote = remote;
        self.by_actor.insert(actor.id(), id);
        Ok(actor)
    }

    /// Starts the room's moderation queue beside it, unless it runs.
    async fn start_queue(&mut self, me: &ActorRef<DirMsg>, id: RoomId) -> Result<(), ActorProcessingErr> {
        let entry = self.rooms.get_mut(&id).ok_or("unknown room")?;
        if entry.moderation.is_some() {
            return Ok(());
        }
        let args = ModerationArgs { room: id, ctx: self.ctx.clone() };
        let (m, _) = Actor::spawn_linked(None, ModerationQueue, args, me.get_cell()).await?;
        let handle = ModerationHandle::new(m);
        self.by_actor.insert(handle.id(), id);
        entry.shared.set_queue(Some(handle.clone()));
        entry.moderation = Some(handle);
        Ok(())
    }

    /// Stops the room's moderation queue (the room is sequenced elsewhere, or gone here): its
    /// items are stored, and the room's owner runs its own.
    fn stop_queue(&mut self, id: RoomId) {
        let Some(entry) = self.rooms.get_mut(&id) else { return };
        entry.shared.set_queue(None);
        if let Some(m) = entry.moderation.take() {
            self.by_actor.remove(&m.id());
            m.cell().stop(StopReason::Moved.reason());
        }
    }

    async fn activate(&mut self, me: &ActorRef<DirMsg>, id: RoomId) -> Result<RoomHandle, Refusal> {
        if let Some(actor) = self.rooms.get(&id).and_then(|e| e.actor.clone()) {
            return Ok(actor);
        }
        if let Some(refusal) = self.ctx.storage.refusal() {
            // Not running, and storage takes no writes: refused without a call that cannot answer.
            return Err(refusal);
        }
        if !self.rooms.contains_key(&id) {
            let mut row = self.ctx.store.room_by_id(id).await;
            // A user's inbox is made the first time anything needs it.
            if matches!(row, Ok(None))
                && let Some(user) = id.inbox_user()
            {
                if let Err(e) = self.ctx.store.ensure_inbox(user).await {
                    return Err(storage_refusal(e));
                }
                row = self.ctx.store.room_by_id(id).await;
            }
            let row = match row {
                Ok(Some(row)) => row,
                Ok(None) => return Err(Refusal::new(ErrorCode::UnknownRoom, format!("there is no room {id}"))),
                Err(e) => return Err(storage_refusal(e)),
            };
            let shared = Arc::new(RoomShared::default());
            // A stranger chat shows its two people only as `Stranger`, from its first frame.
            if row.kind == RoomKind::Stranger {
                match self.ctx.store.stranger_chat(id).await {
                    Ok(Some(chat)) => {
                        let _ = shared.seats.set(chat.seats);
                    }
                    Ok(None) => return Err(Refusal::new(ErrorCode::UnknownRoom, format!("there is no room {id}"))),
                    Err(e) => return Err(storage_refusal(e)),
                }
            }
            self.rooms.insert(id, RoomEntry { row, actor: None, remote: None, shared, moderation: None });
        }
        self.start_room(me, id).await.map_err(|e| {
            warn!(room = %id, err = %e, "room failed to start");
            Refusal::new(ErrorCode::Retry, "the room failed to start; try again")
        })
    }
}

impl DirState {
    /// Rooms whose placement changed move: a local room hands off (flushes, releases its lease,
    /// stops); a proxy whose owner changed stops. Both are started again by the supervision
    /// path with the new placement and the same subscribers.
    fn move_rooms(&mut self) {
        for (id, entry) in &self.rooms {
            let Some(actor) = &entry.actor else { continue };
            // By owner id, not link: a link that is down is the proxy's own business.
            let owner = self.ctx.cluster().owner_of(*id);
            let stale = match (&owner, &entry.remote) {
                (Some(o), None) => *o != self.ctx.config.node_id,
                (Some(o), Some(node)) => **o != **node,
                (None, _) => true,
            };
            if stale {
                actor.handoff();
            }
        }
    }

    /// A room that could not start: try again while anyone is subscribed to it, else forget it.
    fn retry_later(&mut self, me: &ActorRef<DirMsg>, id: RoomId, err: &str, after: Duration) {
        let wanted = self.rooms.get(&id).is_some_and(|e| e.shared.subscriber_count() > 0);
        if wanted {
            debug!(room = %id, %err, "room start failed; trying again");
            me.send_after(after, move || DirMsg::Restart(id));
        } else if self.rooms.contains_key(&id) {
            debug!(room = %id, %err, "room start failed; nobody waits for it");
            self.stop_queue(id);
            self.rooms.remove(&id);
        }
    }
}

fn storage_refusal(e: Error) -> Refusal {
    warn!(err = %e, "storage error");
    Refusal::new(ErrorCode::Internal, "storage error; try again")
}

impl Actor for RoomDirectory {
    type Msg = DirMsg;
    type State = DirState;
    type Arguments = Arc<Ctx>;

    async fn pre_start(&self, _me: ActorRef<DirMsg>, ctx: Arc<Ctx>) -> Result<DirState, ActorProcessingErr> {
        Ok(DirState { ctx, rooms: HashMap::new(), by_actor: HashMap::new() })
    }

    async fn handle(&self, me: ActorRef<DirMsg>, msg: DirMsg, st: &mut DirState) -> Result<(), ActorProcessingErr> {
        match msg {
            DirMsg::Activate(id, reply) => {
                let res = st.activate(&me, id).await;
                let _ = reply.send(res);
            }
            DirMsg::ActivateOwned(id, reply) => {
                let res = match st.ctx.cluster().placement(id) {
                    Placement::Local if st.rooms.get(&id).is_some_and(|e| e.remote.is_some()) => {
                        // The view changed and the proxy has not moved yet.
                        st.move_rooms();
                        Err(Refusal::new(ErrorCode::Retry, "the room is moving here"))
                    }
                    Placement::Local => st.activate(&me, id).await,
                    _ => Err(Refusal::new(ErrorCode::Retry, "not the owner")),
                };
                let _ = reply.send(res);
            }
            DirMsg::Proxy(id, reply) => {
                let proxy = st.rooms.get(&id).filter(|e| e.remote.is_some()).and_then(|e| e.actor.clone());
                let _ = reply.send(proxy);
            }
            DirMsg::ViewChanged => st.move_rooms(),
            DirMsg::PeerDown(node) => {
                for actor in st.rooms.values().filter_map(|e| e.actor.as_ref()) {
                    actor.peer_down(node.clone());
                }
            }
            DirMsg::OwnedCount(reply) => {
                let _ = reply.send(st.rooms.values().filter(|e| e.actor.is_some() && e.remote.is_none()).count());
            }
            DirMsg::Idle(id, actor_id) => {
                let Some(entry) = st.rooms.get(&id) else { return Ok(()) };
                if entry.actor.as_ref().map(|a| a.id()) != Some(actor_id) || entry.shared.subscriber_count() > 0 {
                    return Ok(());
                }
                let entry = st.rooms.remove(&id).expect("checked above");
                entry.shared.set_queue(None);
                for actor in entry.actor.iter().map(|a| a.cell()).chain(entry.moderation.iter().map(|m| m.cell())) {
                    st.by_actor.remove(&actor.get_id());
                    let _ = actor.stop_and_wait(StopReason::Idle.reason(), Some(Duration::from_secs(5))).await;
                }
                if entry.remote.is_none()
                    && let Err(e) = st.ctx.store.release_lease(id, &st.ctx.config.node_id).await
                {
                    warn!(room = %id, err = %e, "releasing an idle room's lease failed");
                }
            }
            DirMsg::Deleted(id) => {
                let Some(entry) = st.rooms.remove(&id) else { return Ok(()) };
                entry.shared.set_queue(None);
                for actor in entry.actor.iter().map(|a| a.cell()).chain(entry.moderation.iter().map(|m| m.cell())) {
                    st.by_actor.remove(&actor.get_id());
                    let _ = actor.stop_and_wait(StopReason::Deleted.reason(), Some(Duration::from_secs(5))).await;
                }
                // Subscribers are told once the actor is gone: a send they make on hearing it
                // finds no room (`unknown_room`), not a room that forgot them (`not_joined`).
                entry.shared.room_deleted(id);
                st.ctx.history.forget_room(id);
            }
            DirMsg::Restart(id) => {
                if st.rooms.get(&id).is_some_and(|e| e.actor.is_none())
                    && let Err(e) = st.start_room(&me, id).await
                {
                    st.retry_later(&me, id, &e.to_string(), Duration::from_millis(250));
                }
            }
            DirMsg::Kill(id, reply) => {
                let actor = st.rooms.get(&id).and_then(|e| e.actor.clone());
                if let Some(a) = &actor {
                    a.kill();
                }
                let _ = reply.send(actor.is_some());
            }
            DirMsg::KillQueue(id, reply) => {
                let queue = st.rooms.get(&id).and_then(|e| e.moderation.clone());
                if let Some(q) = &queue {
                    q.cell().kill();
                }
                let _ = reply.send(queue.is_some());
            }
            DirMsg::WriterRestarted => {
                for actor in st.rooms.values().filter_map(|e| e.actor.as_ref()) {
                    actor.writer_restarted();
                }
            }
            DirMsg::MemberAdded(id, user) => {
                if let Some(actor) = st.rooms.get(&id).and_then(|e| e.actor.as_ref()) {
                    actor.member_added(user);
                }
            }
            DirMsg::Activity(inboxes, frame) => {
                for id in inboxes {
                    let local = st.rooms.get(&id).filter(|e| e.remote.is_none()).and_then(|e| e.actor.clone());
                    if let Some(inbox) = local.and_then(InboxHandle::of) {
                        inbox.activity(frame.clone());
                    }
                }
            }
            DirMsg::ActiveRooms(reply) => {
                let owned = st.rooms.iter().filter(|(_, e)| e.actor.is_some() && e.remote.is_none());
                let _ = reply.send(owned.map(|(id, _)| *id).collect());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<DirMsg>,
        evt: SupervisionEvent,
        st: &mut DirState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, why, stopped) = match evt {
            SupervisionEvent::ActorFailed(cell, err) => (cell, err.to_string(), None),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let stopped = StopReason::of(reason.as_deref());
                (cell, reason.unwrap_or_default(), stopped)
            }
            _ => return Ok(()),
        };
        let Some(id) = st.by_actor.remove(&cell.get_id()) else { return Ok(()) };
        let Some(entry) = st.rooms.get_mut(&id) else { return Ok(()) };
        if entry.moderation.as_ref().is_some_and(|m| m.id() == cell.get_id()) {
            st.ctx.metrics.moderation_restarts.fetch_add(1, Relaxed);
            entry.moderation = None;
            entry.shared.set_queue(None);
            // Its items are stored: a new queue takes over at once while the room is here.
            if entry.remote.is_none()
                && let Err(e) = st.start_queue(&me, id).await
            {
                warn!(room = %id, err = %e, "the room's moderation queue failed to start again");
            }
            return Ok(());
        }
        entry.actor = None;
        let moved = stopped == Some(StopReason::Moved);
        entry.shared.moved.store(moved, Relaxed);
        if moved {
            debug!(room = %id, "room moved; starting what its new placement needs");
        } else {
            st.ctx.metrics.room_restarts.fetch_add(1, Relaxed);
            info!(room = %id, reason = %why, "room actor stopped; restarting it");
        }
        if moved {
            // Give the new owner a moment (it may still be taking the lease over).
            me.send_after(Duration::from_millis(20), move || DirMsg::Restart(id));
        } else if let Err(e) = st.start_room(&me, id).await {
            // Its sessions stop waiting for answers to their sends (`retry`).
            if let Some(entry) = st.rooms.get(&id) {
                entry.shared.room_down(id);
            }
            st.retry_later(&me, id, &e.to_string(), Duration::from_millis(100));
        }
        Ok(())
    }

    async fn post_stop(&self, me: ActorRef<DirMsg>, _st: &mut DirState) -> Result<(), ActorProcessingErr> {
        me.stop_children_and_wait(StopReason::Shutdown.reason(), Some(Duration::from_secs(10))).await;
        Ok(())
    }
}
