//! The actor system of one node: its configuration, the shared context every actor reads, the
//! room directory (the rooms' supervisor), the sessions' supervisor, and `ActorSystem`, the handle
//! through which the gateway (and later the cluster) reach the actors.

use crate::cluster::{ClusterHooks, Placement, SingleNode};
use crate::error::{Error, Result};
use crate::history::HistoryCache;
use crate::metrics::Metrics;
use crate::moderation::{ModerationArgs, ModerationMsg, ModerationQueue};
use crate::outbound::Outbound;
use crate::remote::{RemoteArgs, RemoteRoom};
use crate::room::{Refusal, RoomActor, RoomArgs, RoomMsg, RoomShared};
use crate::session::{INBOUND_PERMITS, SessionActor, SessionArgs, SessionMsg};
use crate::stop::StopReason;
use crate::store::Store;
use crate::writer::{WriterArgs, WriterSlot, WriterSupArgs, WriterSupMsg, WriterSupervisor};
use confab_schemas::node::{CloseScope, NodeFrame};
use confab_schemas::wire::{close_frame, encode_server_frame};
use confab_schemas::{ClientFrame, ErrorCode, EventKind, MessageRow, RoomId, RoomRow, ServerFrame, UserId, UserRef};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

/// Limits and tunables of the actors.
#[derive(Debug, Clone)]
pub struct SystemConfig {
    pub node_id: String,
    /// The HTTP address this node serves, as `GET /api/cluster` shows it.
    pub http_addr: String,
    pub max_body_chars: usize,
    pub max_rooms_per_session: usize,
    pub outbound_capacity: usize,
    pub tail_len: usize,
    /// Largest gap replayed on join; a larger one gets `resync`.
    pub max_replay: u64,
    pub max_inflight_per_room: usize,
    pub room_idle: Duration,
    pub write_timeout: Duration,
    pub lease_ttl_ms: i64,
    /// Messages per user per room: bucket size and refill per second.
    pub rate_burst: u32,
    pub rate_per_sec: f64,
    pub max_batch: usize,
    /// Shortest time between the end of one commit and the start of the next: writes arriving
    /// meanwhile share the next commit (group commit). Zero commits as soon as the writer is free.
    pub commit_gap: Duration,
    /// Nice value of the commit thread and the SQLite writer thread (0: unchanged; see
    /// `crate::priority`).
    pub writer_nice: i32,
    /// A room sends committed messages to its subscribers at most once per window: a message
    /// committed sooner after the last fan-out waits for the rest of the window and goes out
    /// with the others, in one write per socket. Zero sends each commit's messages at once.
    pub fanout_window: Duration,
    /// Where foyer spills history pages (`None`: memory only).
    pub cache_dir: Option<PathBuf>,
    pub cache_memory_bytes: usize,
    pub cache_disk_bytes: usize,
}

impl Default for SystemConfig {
    fn default() -> Self {
        SystemConfig {
            node_id: "node".into(),
            http_addr: String::new(),
            max_body_chars: 4000,
            max_rooms_per_session: 100,
            outbound_capacity: 1024,
            tail_len: 512,
            max_replay: 10_000,
            max_inflight_per_room: 4096,
            room_idle: Duration::from_secs(120),
            write_timeout: Duration::from_secs(10),
            lease_ttl_ms: 30_000,
            rate_burst: 20,
            rate_per_sec: 5.0,
            max_batch: 2000,
            commit_gap: Duration::from_millis(2),
            writer_nice: -10,
            fanout_window: Duration::from_millis(10),
            cache_dir: None,
            cache_memory_bytes: 64 << 20,
            cache_disk_bytes: 256 << 20,
        }
    }
}

/// What every actor of the node shares.
pub struct Ctx {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub config: SystemConfig,
    pub writer: WriterSlot,
    pub rooms: OnceLock<ActorRef<DirMsg>>,
    pub history: HistoryCache,
    next_session: AtomicU64,
    cluster: OnceLock<Arc<dyn ClusterHooks>>,
    single: SingleNode,
}

impl Ctx {
    /// The cluster as this node sees it (alone until `ActorSystem::set_cluster`).
    pub fn cluster(&self) -> &dyn ClusterHooks {
        match self.cluster.get() {
            Some(c) => c.as_ref(),
            None => &self.single,
        }
    }

    /// The running actor of a room, started if needed.
    pub async fn activate(&self, room: RoomId) -> Result<ActorRef<RoomMsg>, Refusal> {
        let dir = self.rooms.get().ok_or(Refusal::new(ErrorCode::Retry, "the node is starting"))?;
        match ractor::call_t!(dir, DirMsg::Activate, 15_000, room) {
            Ok(res) => res,
            Err(_) => Err(Refusal::new(ErrorCode::Retry, "the node is busy; try again")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Room directory: supervises room actors and their moderation queues.

/// Messages of the room directory.
/// A page of history as REST shows it (`ActorSystem::folded_history`).
pub struct FoldedPage {
    /// Messages, their latest edit folded in, deleted ones without a body.
    pub messages: Vec<MessageRow>,
    /// The edits and deletes of the range.
    pub events: Vec<MessageRow>,
    /// Older events exist.
    pub has_more: bool,
}

pub enum DirMsg {
    Activate(RoomId, RpcReplyPort<Result<ActorRef<RoomMsg>, Refusal>>),
    /// For another node: the room's local sequencer, refused when this node does not own it.
    ActivateOwned(RoomId, RpcReplyPort<Result<ActorRef<RoomMsg>, Refusal>>),
    /// The running proxy of a room owned elsewhere, if any.
    Proxy(RoomId, RpcReplyPort<Option<ActorRef<RoomMsg>>>),
    /// Membership changed: rooms whose owner changed move.
    ViewChanged,
    /// The connection to a node closed.
    PeerDown(Arc<str>),
    /// Rooms sequenced here (not proxies).
    OwnedCount(RpcReplyPort<usize>),
    /// A room found itself idle; passivate it if it still is that incarnation.
    Idle(RoomId, ActorId),
    /// The room was deleted: its actors stop for good and its subscribers are told.
    Deleted(RoomId),
    /// Try again to start a room whose restart failed.
    Restart(RoomId),
    /// Test and chaos hook: kill a room's actor (it is restarted).
    Kill(RoomId, RpcReplyPort<bool>),
    WriterRestarted,
    MemberAdded(RoomId, UserId),
    Report(RoomId, Option<u64>, UserId, String, RpcReplyPort<Result<i64, Refusal>>),
    ActiveRooms(RpcReplyPort<Vec<RoomId>>),
    /// An `activity` frame for these inboxes, if they run here as their sequencer.
    Activity(Vec<RoomId>, bytes::Bytes),
}

struct RoomEntry {
    row: RoomRow,
    actor: Option<ActorRef<RoomMsg>>,
    /// The owner node the actor proxies to; `None` when it is the local sequencer.
    remote: Option<Arc<str>>,
    shared: Arc<RoomShared>,
    moderation: Option<ActorRef<ModerationMsg>>,
}

pub struct RoomDirectory;

pub struct DirState {
    ctx: Arc<Ctx>,
    rooms: HashMap<RoomId, RoomEntry>,
    by_actor: HashMap<ActorId, RoomId>,
}

impl DirState {
    async fn start_room(&mut self, me: &ActorRef<DirMsg>, id: RoomId) -> Result<ActorRef<RoomMsg>, ActorProcessingErr> {
        let entry = self.rooms.get_mut(&id).ok_or("unknown room")?;
        let name = format!("{}/room/{}", self.ctx.config.node_id, id);
        let (actor, remote) = match self.ctx.cluster().placement(id) {
            Placement::Local => {
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
        entry.actor = Some(actor.clone());
        entry.remote = remote;
        self.by_actor.insert(actor.get_id(), id);
        if entry.moderation.is_none() {
            let args = ModerationArgs { room: id, store: self.ctx.store.clone() };
            let (m, _) = Actor::spawn_linked(None, ModerationQueue, args, me.get_cell()).await?;
            self.by_actor.insert(m.get_id(), id);
            entry.moderation = Some(m);
        }
        Ok(actor)
    }

    async fn activate(&mut self, me: &ActorRef<DirMsg>, id: RoomId) -> Result<ActorRef<RoomMsg>, Refusal> {
        if let Some(actor) = self.rooms.get(&id).and_then(|e| e.actor.clone()) {
            return Ok(actor);
        }
        if !self.rooms.contains_key(&id) {
            // A user's inbox is made the first time anything needs it.
            if let Some(user) = id.inbox_user()
                && let Err(e) = self.ctx.store.ensure_inbox(user).await
            {
                return Err(storage_refusal(e));
            }
            let row = match self.ctx.store.room_by_id(id).await {
                Ok(Some(row)) => row,
                Ok(None) => return Err(Refusal::new(ErrorCode::UnknownRoom, format!("there is no room {id}"))),
                Err(e) => return Err(storage_refusal(e)),
            };
            self.rooms
                .insert(id, RoomEntry { row, actor: None, remote: None, shared: Arc::default(), moderation: None });
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
                let _ = actor.cast(RoomMsg::Handoff);
            }
        }
    }

    /// A room that could not start: try again while anyone is subscribed to it, else forget it.
    fn retry_later(&mut self, me: &ActorRef<DirMsg>, id: RoomId, err: &str, after: Duration) {
        let wanted = self.rooms.get(&id).is_some_and(|e| e.shared.subscriber_count() > 0);
        if wanted {
            debug!(room = %id, %err, "room start failed; trying again");
            me.send_after(after, move || DirMsg::Restart(id));
        } else if let Some(entry) = self.rooms.remove(&id) {
            debug!(room = %id, %err, "room start failed; nobody waits for it");
            if let Some(m) = entry.moderation {
                self.by_actor.remove(&m.get_id());
                m.stop(None);
            }
        }
    }
}

/// Sequences a system event in `room` (an inbox, from inside the actors), trying again while
/// the room starts or moves; gives up (logged) after about ten seconds.
pub(crate) async fn announce_in(ctx: &Ctx, room: RoomId, by: UserRef, event: confab_schemas::SystemEvent) {
    for attempt in 0..40 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        match ctx.activate(room).await {
            Ok(actor) => {
                if actor.cast(RoomMsg::Announce { by: by.clone(), event: event.clone() }).is_ok() {
                    return;
                }
            }
            Err(Refusal { code: ErrorCode::Retry, .. }) => {}
            Err(refusal) => {
                warn!(room = %room, %refusal, "an inbox event could not be sequenced");
                return;
            }
        }
    }
    warn!(room = %room, "an inbox event could not be sequenced: its inbox did not start");
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
                    let _ = actor.cast(RoomMsg::PeerDown(node.clone()));
                }
            }
            DirMsg::OwnedCount(reply) => {
                let _ = reply.send(st.rooms.values().filter(|e| e.actor.is_some() && e.remote.is_none()).count());
            }
            DirMsg::Idle(id, actor_id) => {
                let Some(entry) = st.rooms.get(&id) else { return Ok(()) };
                if entry.actor.as_ref().map(|a| a.get_id()) != Some(actor_id) || entry.shared.subscriber_count() > 0 {
                    return Ok(());
                }
                let entry = st.rooms.remove(&id).expect("checked above");
                for actor in
                    entry.actor.iter().map(|a| a.get_cell()).chain(entry.moderation.iter().map(|m| m.get_cell()))
                {
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
                entry.shared.room_deleted(id);
                for actor in
                    entry.actor.iter().map(|a| a.get_cell()).chain(entry.moderation.iter().map(|m| m.get_cell()))
                {
                    st.by_actor.remove(&actor.get_id());
                    let _ = actor.stop_and_wait(StopReason::Deleted.reason(), Some(Duration::from_secs(5))).await;
                }
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
            DirMsg::WriterRestarted => {
                for actor in st.rooms.values().filter_map(|e| e.actor.as_ref()) {
                    let _ = actor.cast(RoomMsg::WriterRestarted);
                }
            }
            DirMsg::MemberAdded(id, user) => {
                if let Some(actor) = st.rooms.get(&id).and_then(|e| e.actor.as_ref()) {
                    let _ = actor.cast(RoomMsg::MemberAdded(user));
                }
            }
            DirMsg::Report(id, seq, reporter, reason, reply) => {
                if let Err(e) = st.activate(&me, id).await {
                    let _ = reply.send(Err(e));
                    return Ok(());
                }
                let Some(m) = st.rooms.get(&id).and_then(|e| e.moderation.clone()) else {
                    let _ = reply.send(Err(Refusal::new(ErrorCode::Retry, "moderation is restarting")));
                    return Ok(());
                };
                // Answered by the queue itself, so the directory does not wait on storage.
                tokio::spawn(async move {
                    let call = m.call(
                        |reply| ModerationMsg::Report { seq, reporter, reason, reply },
                        Some(Duration::from_secs(10)),
                    );
                    let res = match call.await {
                        Ok(ractor::rpc::CallResult::Success(Ok(id))) => Ok(id),
                        Ok(ractor::rpc::CallResult::Success(Err(e))) => Err(Refusal::new(ErrorCode::Internal, e)),
                        _ => Err(Refusal::new(ErrorCode::Retry, "moderation is restarting")),
                    };
                    let _ = reply.send(res);
                });
            }
            DirMsg::Activity(inboxes, frame) => {
                for id in inboxes {
                    if let Some(actor) = st.rooms.get(&id).filter(|e| e.remote.is_none()).and_then(|e| e.actor.as_ref())
                    {
                        let _ = actor.cast(RoomMsg::Ephemeral(frame.clone()));
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
        if entry.moderation.as_ref().is_some_and(|m| m.get_id() == cell.get_id()) {
            st.ctx.metrics.moderation_restarts.fetch_add(1, Relaxed);
            let args = ModerationArgs { room: id, store: st.ctx.store.clone() };
            let (m, _) = Actor::spawn_linked(None, ModerationQueue, args, me.get_cell()).await?;
            st.by_actor.insert(m.get_id(), id);
            entry.moderation = Some(m);
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
            st.retry_later(&me, id, &e.to_string(), Duration::from_millis(100));
        }
        Ok(())
    }

    async fn post_stop(&self, me: ActorRef<DirMsg>, _st: &mut DirState) -> Result<(), ActorProcessingErr> {
        me.stop_children_and_wait(StopReason::Shutdown.reason(), Some(Duration::from_secs(10))).await;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Session supervisor.

/// Which sessions to close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseTarget {
    All,
    /// Every session of a user (password change, ban).
    User(UserId),
    /// The sessions of one login family (logout, refresh-token reuse).
    Family(Arc<str>),
}

pub enum SessSupMsg {
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

pub struct SessionSupervisor;

/// A live session as its supervisor tracks it: the actor, its user, its login family, its queue.
type SessionEntry = (ActorRef<SessionMsg>, UserId, Option<Arc<str>>, Outbound);

pub struct SessSupState {
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
                    st.sessions.insert(actor.get_id(), (actor.clone(), user, family, out));
                    actor
                });
                let _ = reply.send(res.map_err(|e| e.to_string()));
            }
            SessSupMsg::Close { target, reason, reconnect } => {
                for (actor, uid, family, _) in st.sessions.values() {
                    let hit = match &target {
                        CloseTarget::All => true,
                        CloseTarget::User(u) => u == uid,
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
                let victim = st.sessions.values().find(|(_, u, _, _)| *u == user).map(|(a, _, _, _)| a.clone());
                if let Some(a) = &victim {
                    a.kill();
                }
                let _ = reply.send(victim.is_some());
            }
            SessSupMsg::Broadcast(frame) => {
                for (_, _, _, out) in st.sessions.values() {
                    let _ = out.push_ephemeral(frame.clone());
                }
            }
            SessSupMsg::KillAll(reply) => {
                for (a, _, _, _) in st.sessions.values() {
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
        let Some((_, _, _, out)) = st.sessions.remove(&cell.get_id()) else { return Ok(()) };
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

// ---------------------------------------------------------------------------------------------
// The handle.

/// A connection's session, as its socket reader sees it.
#[derive(Clone)]
pub struct SessionHandle {
    actor: ActorRef<SessionMsg>,
    permits: Arc<Semaphore>,
    out: Outbound,
}

impl SessionHandle {
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

/// The actors of one node.
pub struct ActorSystem {
    ctx: Arc<Ctx>,
    writer_sup: ActorRef<WriterSupMsg>,
    rooms: ActorRef<DirMsg>,
    sessions: ActorRef<SessSupMsg>,
    sampler: tokio::task::JoinHandle<()>,
}

impl ActorSystem {
    /// Starts the supervision tree on `store`.
    pub async fn start(store: Store, config: SystemConfig) -> Result<ActorSystem> {
        if let Some(dir) = &config.cache_dir {
            // The cache is never the record: start it empty, whatever a previous run left.
            let _ = std::fs::remove_dir_all(dir);
        }
        let history =
            HistoryCache::open(config.cache_dir.as_deref(), config.cache_memory_bytes, config.cache_disk_bytes).await?;
        let metrics = Arc::new(Metrics::default());
        let ctx = Arc::new(Ctx {
            store: store.clone(),
            metrics: metrics.clone(),
            writer: WriterSlot::default(),
            rooms: OnceLock::new(),
            history,
            next_session: AtomicU64::new(1),
            cluster: OnceLock::new(),
            single: SingleNode { node_id: config.node_id.clone(), http_addr: config.http_addr.clone() },
            config,
        });
        let node = ctx.config.node_id.clone();
        let spawn_err = |e: ractor::SpawnErr| Error::Actor(e.to_string());
        let (rooms, _) =
            Actor::spawn(Some(format!("{node}/rooms")), RoomDirectory, ctx.clone()).await.map_err(spawn_err)?;
        let _ = ctx.rooms.set(rooms.clone());
        let on_restart = {
            let rooms = rooms.clone();
            Arc::new(move || {
                let _ = rooms.cast(DirMsg::WriterRestarted);
            })
        };
        let commits = crate::commit_thread::CommitThread::start("writer-commit", ctx.config.writer_nice)
            .map_err(|e| Error::Actor(format!("starting the commit thread: {e}")))?;
        let writer_args = WriterArgs {
            store,
            metrics: metrics.clone(),
            max_batch: ctx.config.max_batch,
            min_gap: ctx.config.commit_gap,
            commits,
        };
        let sup_args =
            WriterSupArgs { writer: writer_args, slot: ctx.writer.clone(), name: format!("{node}/writer"), on_restart };
        let (writer_sup, _) =
            Actor::spawn(Some(format!("{node}/writer-sup")), WriterSupervisor, sup_args).await.map_err(spawn_err)?;
        let (sessions, _) =
            Actor::spawn(Some(format!("{node}/sessions")), SessionSupervisor, ctx.clone()).await.map_err(spawn_err)?;
        let sampler = tokio::spawn(async move {
            let mut last = metrics.messages_committed.load(Relaxed);
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                let now = metrics.messages_committed.load(Relaxed);
                metrics.messages_per_second.store(now - last, Relaxed);
                last = now;
            }
        });
        Ok(ActorSystem { ctx, writer_sup, rooms, sessions, sampler })
    }

    pub fn store(&self) -> &Store {
        &self.ctx.store
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.ctx.metrics
    }

    pub fn config(&self) -> &SystemConfig {
        &self.ctx.config
    }

    /// Starts the session actor of a new connection whose frames go to `out`.
    /// `family` names the login the connection authenticated with, so logout closes it.
    pub async fn spawn_session(&self, user: UserRef, family: Option<Arc<str>>, out: Outbound) -> Result<SessionHandle> {
        let id = self.ctx.next_session.fetch_add(1, Relaxed);
        let args = SessionArgs { ctx: self.ctx.clone(), id, user, family, out: out.clone() };
        let actor = ractor::call_t!(self.sessions, SessSupMsg::Spawn, 10_000, args)
            .map_err(|e| Error::Actor(e.to_string()))?
            .map_err(Error::Actor)?;
        Ok(SessionHandle { actor, permits: Arc::new(Semaphore::new(INBOUND_PERMITS)), out })
    }

    /// Committed history of a room: `after` (ascending from it) or else the page before `before`
    /// (default: the newest page). Returns the rows and whether older ones exist.
    pub async fn history(
        &self,
        room: RoomId,
        before: Option<u64>,
        after: Option<u64>,
        limit: u32,
    ) -> Result<(Vec<MessageRow>, bool)> {
        let head = self.ctx.store.head_seq(room).await?;
        let limit = limit.clamp(1, 100) as u64;
        let (from, to) = match after {
            Some(after) => (after + 1, after.saturating_add(limit)),
            None => {
                let before = before.unwrap_or(head + 1).min(head + 1);
                (before.saturating_sub(limit).max(1), before.saturating_sub(1))
            }
        };
        let rows = self.ctx.history.range(&self.ctx.store, &self.ctx.metrics, room, from, to, head).await?;
        let first = rows.first().map(|r| r.seq).unwrap_or(from);
        Ok((rows, first > 1))
    }

    /// A page of history as REST shows it (see `history` for the range): the messages of the
    /// range with their latest edit folded in and deleted ones as tombstones (no body), the
    /// edits and deletes of the range (so a client knows every seq it has seen), and whether
    /// older events exist. Cached pages hold the events as they were sequenced; the fold reads
    /// the changes of the range's messages from storage each time.
    pub async fn folded_history(
        &self,
        room: RoomId,
        before: Option<u64>,
        after: Option<u64>,
        limit: u32,
    ) -> Result<FoldedPage> {
        let (rows, has_more) = self.history(room, before, after, limit).await?;
        let (mut messages, events): (Vec<MessageRow>, Vec<MessageRow>) =
            rows.into_iter().partition(|r| r.kind == EventKind::Message);
        if let (Some(first), Some(last)) = (messages.first().map(|m| m.seq), messages.last().map(|m| m.seq)) {
            let changes = self.ctx.store.changes_of(room, first, last).await?;
            let index: HashMap<u64, usize> = messages.iter().enumerate().map(|(i, m)| (m.seq, i)).collect();
            for c in changes {
                let Some(&i) = c.target.as_ref().and_then(|t| index.get(t)) else { continue };
                let m = &mut messages[i];
                match c.kind {
                    EventKind::Edit if !m.deleted => {
                        m.body = c.body;
                        m.edited_at = Some(c.ts);
                    }
                    EventKind::Delete => m.deleted = true,
                    _ => {}
                }
            }
        }
        // A cached page may predate a delete: no deleted body leaves through REST.
        for m in messages.iter_mut().filter(|m| m.deleted) {
            m.body = Arc::from("");
            m.edited_at = None;
        }
        Ok(FoldedPage { messages, events, has_more })
    }

    /// Sequences a system event of `room` (a change already made in storage) on its owner,
    /// wherever that is; members get it like any event, and members who left or were removed
    /// stop getting the room's events after it.
    pub async fn announce(&self, room: RoomId, by: UserRef, event: confab_schemas::SystemEvent) -> Result<(), Refusal> {
        let actor = self.ctx.activate(room).await?;
        actor
            .cast(RoomMsg::Announce { by, event })
            .map_err(|_| Refusal::new(ErrorCode::Retry, "the room is restarting"))
    }

    /// Sequences `event` in `user`'s inbox (not waiting for it).
    pub fn tell_inbox(&self, user: UserId, by: UserRef, event: confab_schemas::SystemEvent) {
        let ctx = self.ctx.clone();
        tokio::spawn(async move { announce_in(&ctx, RoomId::inbox_of(user), by, event).await });
    }

    /// An `activity` frame from another node for inboxes this node owns.
    pub fn inbox_activity(&self, inboxes: Vec<RoomId>, frame: bytes::Bytes) {
        let _ = self.rooms.cast(DirMsg::Activity(inboxes, frame));
    }

    /// A client frame for every session of this node and, with `cluster`, of every node.
    pub fn broadcast_to_sessions(&self, frame: bytes::Bytes, cluster: bool) {
        if cluster {
            self.ctx.cluster().broadcast(NodeFrame::Broadcast { frame: frame.clone() });
        }
        let _ = self.sessions.cast(SessSupMsg::Broadcast(frame));
    }

    /// Deletes a room with its history (storage first), then stops it on this node and on every
    /// other node; its subscribers get `room_deleted`.
    pub async fn delete_room(&self, room: RoomId) -> Result<bool> {
        if !self.ctx.store.delete_room(room).await? {
            return Ok(false);
        }
        self.room_deleted_here(room);
        self.ctx.cluster().broadcast(NodeFrame::RoomDeleted { room });
        Ok(true)
    }

    /// Another node deleted `room`: stop it here.
    pub fn room_deleted_here(&self, room: RoomId) {
        let _ = self.rooms.cast(DirMsg::Deleted(room));
    }

    /// Drops cached history of `room` whose stored bodies were erased (a delete on its owner).
    pub fn forget_history(&self, room: RoomId, seqs: &[u64]) {
        for seq in seqs {
            self.ctx.history.invalidate(room, *seq);
        }
    }

    /// Tells an active room that a member was added (private rooms check membership in memory).
    pub fn member_added(&self, room: RoomId, user: UserId) {
        let _ = self.rooms.cast(DirMsg::MemberAdded(room, user));
    }

    /// Files a report through the room's moderation queue.
    pub async fn report(
        &self,
        room: RoomId,
        seq: Option<u64>,
        reporter: UserId,
        reason: String,
    ) -> Result<i64, Refusal> {
        ractor::call_t!(self.rooms, DirMsg::Report, 15_000, room, seq, reporter, reason)
            .unwrap_or_else(|_| Err(Refusal::new(ErrorCode::Retry, "the node is busy; try again")))
    }

    /// Closes sessions (logout, revocation, ban) on this node and, for a user or a login, on
    /// every node of the cluster.
    pub fn close_sessions(&self, target: CloseTarget, reason: &str, reconnect: bool) {
        let scope = match &target {
            CloseTarget::All => None,
            CloseTarget::User(u) => Some(CloseScope::User(*u)),
            CloseTarget::Family(f) => Some(CloseScope::Family(f.to_string())),
        };
        if let Some(scope) = scope {
            self.ctx.cluster().broadcast(NodeFrame::Close { scope, reason: reason.into(), reconnect });
        }
        self.close_local_sessions(target, reason, reconnect);
    }

    /// Closes sessions of this node only (a close another node broadcast).
    pub fn close_local_sessions(&self, target: CloseTarget, reason: &str, reconnect: bool) {
        let _ = self.sessions.cast(SessSupMsg::Close { target, reason: reason.into(), reconnect });
    }

    // ---- the cluster's entry points ----

    /// Plugs in the cluster (before the node serves anyone).
    pub fn set_cluster(&self, hooks: Arc<dyn ClusterHooks>) {
        let _ = self.ctx.cluster.set(hooks);
    }

    pub fn cluster(&self) -> &dyn ClusterHooks {
        self.ctx.cluster()
    }

    /// Membership changed: rooms whose owner changed move.
    pub fn view_changed(&self) {
        let _ = self.rooms.cast(DirMsg::ViewChanged);
    }

    /// The connection to `node` closed.
    pub fn peer_down(&self, node: Arc<str>) {
        let _ = self.rooms.cast(DirMsg::PeerDown(node));
    }

    /// The local sequencer of a room this node owns, for another node's request.
    pub async fn owned_room(&self, room: RoomId) -> Result<ActorRef<RoomMsg>, Refusal> {
        ractor::call_t!(self.rooms, DirMsg::ActivateOwned, 15_000, room)
            .unwrap_or_else(|_| Err(Refusal::new(ErrorCode::Retry, "the node is busy; try again")))
    }

    /// The proxy of a room owned by another node, if one runs here.
    pub async fn room_proxy(&self, room: RoomId) -> Option<ActorRef<RoomMsg>> {
        ractor::call_t!(self.rooms, DirMsg::Proxy, 5_000, room).ok().flatten()
    }

    /// How many rooms this node sequences.
    pub async fn owned_rooms(&self) -> usize {
        ractor::call_t!(self.rooms, DirMsg::OwnedCount, 5_000).unwrap_or(0)
    }

    pub async fn session_count(&self) -> usize {
        ractor::call_t!(self.sessions, SessSupMsg::Count, 5_000).unwrap_or(0)
    }

    pub async fn active_rooms(&self) -> Vec<RoomId> {
        ractor::call_t!(self.rooms, DirMsg::ActiveRooms, 5_000).unwrap_or_default()
    }

    /// Chaos hook: kills a room's actor; its supervisor restarts it.
    pub async fn kill_room(&self, room: RoomId) -> bool {
        ractor::call_t!(self.rooms, DirMsg::Kill, 5_000, room).unwrap_or(false)
    }

    /// Chaos hook: kills every room actor sequenced here; returns how many.
    pub async fn kill_all_rooms(&self) -> usize {
        let mut n = 0;
        for room in self.active_rooms().await {
            n += usize::from(self.kill_room(room).await);
        }
        n
    }

    /// Chaos hook: kills every session actor of this node; returns how many.
    pub async fn kill_all_sessions(&self) -> usize {
        ractor::call_t!(self.sessions, SessSupMsg::KillAll, 5_000).unwrap_or(0)
    }

    /// Chaos hook: kills the batching writer; its supervisor restarts it.
    pub fn kill_writer(&self) -> bool {
        self.ctx.writer.get().map(|w| w.kill()).is_some()
    }

    /// Chaos hook: kills one session actor of a user.
    pub async fn kill_session(&self, user: UserId) -> bool {
        ractor::call_t!(self.sessions, SessSupMsg::KillOne, 5_000, user).unwrap_or(false)
    }

    /// Commits everything the writer holds.
    pub async fn sync_writer(&self) -> bool {
        self.ctx.writer.sync().await
    }

    /// Graceful stop: close every session with a reconnect hint, let in-flight writes commit,
    /// stop the rooms, flush and stop the writer, close the cache and the store.
    pub async fn shutdown(&self, grace: Duration) {
        self.close_sessions(CloseTarget::All, "shutdown", true);
        let deadline = tokio::time::Instant::now() + grace;
        while self.session_count().await > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.ctx.writer.sync().await;
        let _ = self.rooms.stop_and_wait(StopReason::Shutdown.reason(), Some(Duration::from_secs(10))).await;
        let _ = self.sessions.stop_and_wait(StopReason::Shutdown.reason(), Some(Duration::from_secs(10))).await;
        let _ = ractor::call_t!(self.writer_sup, WriterSupMsg::Shutdown, 30_000);
        self.sampler.abort();
        self.ctx.history.close().await;
        self.ctx.store.close().await;
        info!("actors stopped");
    }
}
