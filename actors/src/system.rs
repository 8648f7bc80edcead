//! `ActorSystem`: the actors of one node, as the gateway and the cluster reach them. It starts
//! the supervision tree (writer, room directory, sessions; see the crate doc), and offers typed
//! entry points: sessions, history, announcements, room handles for the cluster's router, chaos
//! hooks and a graceful shutdown. The supervisors live in `directory`, `sessions` and `writer`.

use crate::cluster::{ClusterHooks, SingleNode};
use crate::ctx::{Ctx, SystemConfig};
use crate::directory::RoomDirectory;
use crate::error::{Error, Result};
use crate::history::HistoryCache;
use crate::metrics::Metrics;
use crate::msg::directory::DirMsg;
use crate::msg::room::RoomHandle;
use crate::outbound::Outbound;
use crate::session::SessionArgs;
use crate::sessions::{CloseTarget, SessSupMsg, SessionHandle, SessionSupervisor};
use crate::stop::StopReason;
use crate::store::Store;
use crate::writer::{WriterArgs, WriterSlot, WriterSupArgs, WriterSupMsg, WriterSupervisor};
use confab_schemas::node::{CloseScope, NodeFrame};
use confab_schemas::{ErrorCode, EventKind, MessageRow, Refusal, RoomId, UserId, UserRef};
use ractor::{Actor, ActorRef};
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tracing::info;

/// How long a caller waits for the directory or the sessions' supervisor.
const CALL_TIMEOUT_MS: u64 = 5_000;
/// How long `storage_ready` waits for a read.
const READY_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a caller waits for the directory to start a room or a session (it may read storage).
const START_CALL_TIMEOUT_MS: u64 = 15_000;

/// A page of history as REST shows it (`ActorSystem::folded_history`).
pub struct FoldedPage {
    /// Messages, their latest edit folded in, deleted ones without a body.
    pub messages: Vec<MessageRow>,
    /// The edits and deletes of the range.
    pub events: Vec<MessageRow>,
    /// Older events exist.
    pub has_more: bool,
    /// Newer events exist (known for `folded_around` only; false otherwise).
    pub has_more_after: bool,
}

/// The actors of one node.
pub struct ActorSystem {
    ctx: Arc<Ctx>,
    writer_sup: ActorRef<WriterSupMsg>,
    rooms: ActorRef<DirMsg>,
    sessions: ActorRef<SessSupMsg>,
    sampler: tokio::task::JoinHandle<()>,
    /// The match pool's supervisor and this node's desk (`crate::stranger`).
    match_pool: ActorRef<crate::stranger::PoolSupMsg>,
    desk: tokio::task::JoinHandle<()>,
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
            mutes: Default::default(),
            mod_settings: Default::default(),
            storage: Default::default(),
            stranger: Default::default(),
            match_pool: OnceLock::new(),
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
            health: ctx.storage.clone(),
            node_id: node.as_str().into(),
        };
        let sup_args =
            WriterSupArgs { writer: writer_args, slot: ctx.writer.clone(), name: format!("{node}/writer"), on_restart };
        let (writer_sup, _) =
            Actor::spawn(Some(format!("{node}/writer-sup")), WriterSupervisor, sup_args).await.map_err(spawn_err)?;
        let (sessions, _) =
            Actor::spawn(Some(format!("{node}/sessions")), SessionSupervisor, ctx.clone()).await.map_err(spawn_err)?;
        let (match_pool, _) =
            Actor::spawn(Some(format!("{node}/match-pool")), crate::stranger::PoolSupervisor, ctx.clone())
                .await
                .map_err(spawn_err)?;
        let _ = ctx.match_pool.set(match_pool.clone());
        let desk = tokio::spawn(crate::stranger::run_desk(ctx.clone()));
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
        Ok(ActorSystem { ctx, writer_sup, rooms, sessions, sampler, match_pool, desk })
    }

    /// The shared context (for the crate's tests, which drive actors through their handles).
    #[cfg(test)]
    pub(crate) fn ctx(&self) -> &Arc<Ctx> {
        &self.ctx
    }

    pub fn store(&self) -> &Store {
        &self.ctx.store
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.ctx.metrics
    }

    /// Whether this node can take sends now: `Err` with the reason when its storage refused the
    /// last write, has a commit stalled, or does not answer a read within `READY_READ_TIMEOUT`.
    pub async fn storage_ready(&self) -> std::result::Result<(), String> {
        if let Some(why) = self.ctx.storage.unavailable() {
            return Err(why);
        }
        match tokio::time::timeout(READY_READ_TIMEOUT, self.ctx.store.head_seq(RoomId(0))).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("the database did not answer a read within {} s", READY_READ_TIMEOUT.as_secs())),
        }
    }

    pub fn config(&self) -> &SystemConfig {
        &self.ctx.config
    }

    /// Starts the session actor of a new connection whose frames go to `out`.
    /// `family` names the login the connection authenticated with, so logout closes it.
    pub async fn spawn_session(&self, user: UserRef, family: Option<Arc<str>>, out: Outbound) -> Result<SessionHandle> {
        let id = self.ctx.next_session.fetch_add(1, Relaxed);
        let args = SessionArgs { ctx: self.ctx.clone(), id, user, family, out: out.clone() };
        let actor = ractor::call_t!(self.sessions, SessSupMsg::Spawn, START_CALL_TIMEOUT_MS, args)
            .map_err(|e| Error::Actor(e.to_string()))?
            .map_err(Error::Actor)?;
        Ok(SessionHandle::new(actor, self.sessions.clone(), out))
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
        self.fold(room, rows, has_more, false).await
    }

    /// The page of about `limit` events around `around` (about half older, the rest newer; fewer
    /// on one side near either end, more on the other), folded as `folded_history` folds, with
    /// whether older and newer events exist: how a search result opens its room at a message.
    pub async fn folded_around(&self, room: RoomId, around: u64, limit: u32) -> Result<FoldedPage> {
        let head = self.ctx.store.head_seq(room).await?;
        let limit = limit.clamp(1, 100) as u64;
        let around = around.clamp(1, head.max(1));
        let from = around.saturating_sub(limit / 2).min((head + 1).saturating_sub(limit)).max(1);
        let to = from.saturating_add(limit - 1);
        let rows = self.ctx.history.range(&self.ctx.store, &self.ctx.metrics, room, from, to, head).await?;
        self.fold(room, rows, from > 1, to < head).await
    }

    /// Folds a range of events (see `folded_history`).
    async fn fold(
        &self,
        room: RoomId,
        rows: Vec<MessageRow>,
        has_more: bool,
        has_more_after: bool,
    ) -> Result<FoldedPage> {
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
        Ok(FoldedPage { messages, events, has_more, has_more_after })
    }

    /// Sequences a system event of `room` (a change already made in storage) on its owner,
    /// wherever that is; members get it like any event, and members who left or were removed
    /// stop getting the room's events after it.
    pub async fn announce(&self, room: RoomId, by: UserRef, event: confab_schemas::SystemEvent) -> Result<(), Refusal> {
        self.ctx.announce(room, by, event).await
    }

    /// Sequences `event` in `user`'s inbox (not waiting for it).
    pub fn tell_inbox(&self, user: UserId, by: UserRef, event: confab_schemas::SystemEvent) {
        let ctx = self.ctx.clone();
        tokio::spawn(async move { ctx.tell_inbox(user, by, event).await });
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

    /// Hands a staff decision on an item of `room`'s moderation queue to the queue, on the node
    /// that sequences the room (the caller checked that `by` is the room's staff and may
    /// sanction the item's sender). `Ok` once it is carried out; a refusal says why not
    /// (`not_found`, `invalid`, `conflict`: decided already or being decided).
    pub async fn decide(
        &self,
        room: RoomId,
        by: UserRef,
        decision: crate::moderation::Decision,
    ) -> Result<(), Refusal> {
        self.ctx.command(room, by, &crate::moderation::Command::Decide(decision)).await.map(|_| ())
    }

    /// A room mute was set or lifted on this node: the next send here reads the mutes again
    /// (other nodes within `mute_cache::MUTE_CACHE`).
    pub fn room_mutes_changed(&self) {
        self.ctx.mutes.invalidate();
    }

    /// Moderation settings were changed on this node: the next send here reads them again
    /// (other nodes within `moderation::settings::SETTINGS_CACHE`).
    pub fn moderation_settings_changed(&self) {
        self.ctx.mod_settings.invalidate();
    }

    /// Files a report through the room's moderation queue, on the node that sequences the room;
    /// the report's id.
    pub async fn report(&self, room: RoomId, seq: Option<u64>, by: UserRef, reason: String) -> Result<i64, Refusal> {
        match self.ctx.command(room, by, &crate::moderation::Command::Report { seq, reason }).await? {
            confab_schemas::ServerFrame::Ack { id, .. } => Ok(id),
            _ => Err(Refusal::new(ErrorCode::Internal, "an unexpected answer to a report")),
        }
    }

    /// Closes sessions (logout, revocation, ban) on this node and, for a user or a login, on
    /// every node of the cluster.
    pub fn close_sessions(&self, target: CloseTarget, reason: &str, reconnect: bool) {
        let scope = match &target {
            // `UserStartedBy` is the revocations poll's, which every node runs itself.
            CloseTarget::All | CloseTarget::UserStartedBy(..) => None,
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
        let _ = self.match_pool.cast(crate::stranger::PoolSupMsg::Check);
    }

    /// The connection to `node` closed.
    pub fn peer_down(&self, node: Arc<str>) {
        let _ = self.rooms.cast(DirMsg::PeerDown(node));
    }

    /// The local sequencer of a room this node owns, for another node's request.
    pub async fn owned_room(&self, room: RoomId) -> Result<RoomHandle, Refusal> {
        ractor::call_t!(self.rooms, DirMsg::ActivateOwned, START_CALL_TIMEOUT_MS, room)
            .unwrap_or_else(|_| Err(Refusal::new(ErrorCode::Retry, "the node is busy; try again")))
    }

    /// The proxy of a room owned by another node, if one runs here.
    pub async fn room_proxy(&self, room: RoomId) -> Option<RoomHandle> {
        ractor::call_t!(self.rooms, DirMsg::Proxy, CALL_TIMEOUT_MS, room).ok().flatten()
    }

    /// How many rooms this node sequences.
    pub async fn owned_rooms(&self) -> usize {
        ractor::call_t!(self.rooms, DirMsg::OwnedCount, CALL_TIMEOUT_MS).unwrap_or(0)
    }

    pub async fn session_count(&self) -> usize {
        ractor::call_t!(self.sessions, SessSupMsg::Count, CALL_TIMEOUT_MS).unwrap_or(0)
    }

    pub async fn active_rooms(&self) -> Vec<RoomId> {
        ractor::call_t!(self.rooms, DirMsg::ActiveRooms, CALL_TIMEOUT_MS).unwrap_or_default()
    }

    /// Chaos hook: kills a room's actor; its supervisor restarts it.
    pub async fn kill_room(&self, room: RoomId) -> bool {
        ractor::call_t!(self.rooms, DirMsg::Kill, CALL_TIMEOUT_MS, room).unwrap_or(false)
    }

    /// Chaos hook: kills a room's moderation queue; its supervisor restarts it.
    pub async fn kill_queue(&self, room: RoomId) -> bool {
        ractor::call_t!(self.rooms, DirMsg::KillQueue, CALL_TIMEOUT_MS, room).unwrap_or(false)
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
        ractor::call_t!(self.sessions, SessSupMsg::KillAll, CALL_TIMEOUT_MS).unwrap_or(0)
    }

    /// Chaos hook: kills the batching writer; its supervisor restarts it.
    pub fn kill_writer(&self) -> bool {
        self.ctx.writer.get().map(|w| w.kill()).is_some()
    }

    /// Chaos hook: kills one session actor of a user.
    pub async fn kill_session(&self, user: UserId) -> bool {
        ractor::call_t!(self.sessions, SessSupMsg::KillOne, CALL_TIMEOUT_MS, user).unwrap_or(false)
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
        self.desk.abort();
        let _ = self.match_pool.stop_and_wait(None, Some(Duration::from_secs(5))).await;
        let _ = self.rooms.stop_and_wait(StopReason::Shutdown.reason(), Some(Duration::from_secs(10))).await;
        let _ = self.sessions.stop_and_wait(StopReason::Shutdown.reason(), Some(Duration::from_secs(10))).await;
        let _ = ractor::call_t!(self.writer_sup, WriterSupMsg::Shutdown, 30_000);
        self.sampler.abort();
        self.ctx.history.close().await;
        self.ctx.store.close().await;
        info!("actors stopped");
    }
}
