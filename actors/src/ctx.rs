//! The shared context of the node's actors: `SystemConfig` (limits and tunables) and `Ctx`,
//! what every actor reads (store, metrics, the writer, the room directory, the history cache,
//! the cluster). It holds handles and message types only, never an actor's behaviour.

use crate::cluster::{ClusterHooks, SingleNode};
use crate::history::HistoryCache;
use crate::metrics::Metrics;
use crate::msg::directory::DirMsg;
use crate::msg::room::RoomHandle;
use crate::store::Store;
use crate::writer::WriterSlot;
use confab_schemas::{ErrorCode, Refusal, RoomId, SystemEvent, UserId, UserRef};
use ractor::ActorRef;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tracing::warn;

/// How long a caller waits for the directory to start a room.
const ACTIVATE_CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Limits and tunables of the actors.
#[derive(Debug, Clone)]
pub struct SystemConfig {
    pub node_id: String,
    /// The HTTP address this node serves, as `GET /api/cluster` shows it.
    pub http_addr: String,
    pub max_body_chars: usize,
    pub max_rooms_per_session: usize,
    /// A session idle this long (no frame, no room notice, nothing in flight) parks: its actor
    /// stops and its state waits in its `SessionRef` for the next message. Zero: never.
    pub session_park_after: Duration,
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
    /// Signs the URLs of attachments in frames and history (the node's auth secret, the URLs'
    /// lifetime).
    pub media: crate::media::MediaSigner,
    /// An upload no message claimed within this time is gone (the sweeper deletes it).
    pub upload_orphan_ttl: Duration,
    /// The match pool's tunables (`crate::stranger`).
    pub stranger: crate::stranger::StrangerConfig,
}

impl Default for SystemConfig {
    fn default() -> Self {
        SystemConfig {
            node_id: "node".into(),
            http_addr: String::new(),
            max_body_chars: 4000,
            max_rooms_per_session: 100,
            session_park_after: Duration::from_secs(1),
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
            media: crate::media::MediaSigner::default(),
            upload_orphan_ttl: Duration::from_secs(24 * 3600),
            stranger: Default::default(),
        }
    }
}

/// What every actor of the node shares.
pub(crate) struct Ctx {
    pub(crate) store: Store,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) config: SystemConfig,
    pub(crate) writer: WriterSlot,
    /// The room directory (set once it runs).
    pub(crate) rooms: OnceLock<ActorRef<DirMsg>>,
    pub(crate) history: HistoryCache,
    pub(crate) next_session: AtomicU64,
    pub(crate) cluster: OnceLock<Arc<dyn ClusterHooks>>,
    pub(crate) single: SingleNode,
    /// Site-wide mutes in force, as last read (`crate::mute_cache`).
    pub(crate) mutes: crate::mute_cache::Mutes,
    /// Pre-moderation and flags of rooms and the site, as last read (`crate::moderation::settings`).
    pub(crate) mod_settings: crate::moderation::settings::SettingsCache,
    /// Whether storage takes writes now (`crate::storage_health`).
    pub(crate) storage: Arc<crate::storage_health::StorageHealth>,
    /// This node's sessions waiting for a stranger (`crate::stranger`).
    pub(crate) stranger: crate::stranger::Desk,
    /// The match pool's supervisor on this node (set once it runs).
    pub(crate) match_pool: OnceLock<ActorRef<crate::stranger::PoolSupMsg>>,
}

impl Ctx {
    /// The cluster as this node sees it (alone until `ActorSystem::set_cluster`).
    pub(crate) fn cluster(&self) -> &dyn ClusterHooks {
        match self.cluster.get() {
            Some(c) => c.as_ref(),
            None => &self.single,
        }
    }

    /// The running actor of a room, started if needed.
    pub(crate) async fn activate(&self, room: RoomId) -> Result<RoomHandle, Refusal> {
        let dir = self.rooms.get().ok_or(Refusal::new(ErrorCode::Retry, "the node is starting"))?;
        match ractor::call_t!(dir, DirMsg::Activate, ACTIVATE_CALL_TIMEOUT.as_millis() as u64, room) {
            Ok(res) => res,
            Err(_) => Err(Refusal::new(ErrorCode::Retry, "the node is busy; try again")),
        }
    }

    /// Sequences a system event in `room` on its owner, wherever that is, and returns once it
    /// is durable. One cid for every attempt, so an attempt that committed before its room died
    /// is not sequenced twice: tries again while the room starts, restarts or moves (its actor
    /// may die with the announcement still in its mailbox), for about half a minute.
    pub(crate) async fn announce(&self, room: RoomId, by: UserRef, event: SystemEvent) -> Result<(), Refusal> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let cid: Arc<str> =
            format!("~sys-{}-{}-{}", self.config.node_id, confab_schemas::now_ms(), NEXT.fetch_add(1, Relaxed)).into();
        for attempt in 0..60u64 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 + 50 * attempt.min(8))).await;
            }
            match self.activate(room).await {
                Ok(handle) => {
                    if handle.announce_once(by.clone(), event.clone(), cid.clone()).await? {
                        return Ok(());
                    }
                }
                Err(Refusal { code: ErrorCode::Retry, .. }) => {}
                Err(refusal) => return Err(refusal),
            }
        }
        warn!(%room, "a system event could not be sequenced: its room did not answer");
        Err(Refusal::new(ErrorCode::Retry, "the room did not answer; try again"))
    }

    /// Hands a staff command to `room`'s sequencer, wherever it runs, asking again (under the
    /// same cid) while it does not answer; the answer is its `ack` frame, or its refusal.
    pub(crate) async fn command(
        &self,
        room: RoomId,
        by: UserRef,
        command: &crate::moderation::Command,
    ) -> Result<confab_schemas::ServerFrame, Refusal> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let cid: Arc<str> =
            format!("~mod-{}-{}-{}", self.config.node_id, confab_schemas::now_ms(), NEXT.fetch_add(1, Relaxed)).into();
        let draft = confab_schemas::Draft::system(cid, command.body().into());
        for attempt in 0..60u64 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 + 50 * attempt.min(8))).await;
            }
            match self.activate(room).await {
                Ok(handle) => match handle.command_once(by.clone(), draft.clone()).await {
                    Some(confab_schemas::ServerFrame::Error {
                        code: ErrorCode::Retry | ErrorCode::Overloaded, ..
                    }) => tracing::debug!(%room, "a moderation command is to be sent again"),
                    Some(confab_schemas::ServerFrame::Error { code, message, .. }) => {
                        return Err(Refusal::new(code, message));
                    }
                    Some(frame) => return Ok(frame),
                    None => {}
                },
                Err(Refusal { code: ErrorCode::Retry, .. }) => {}
                Err(refusal) => return Err(refusal),
            }
        }
        warn!(%room, "a moderation command got no answer from its room");
        Err(Refusal::new(ErrorCode::Retry, "the room did not answer; try again"))
    }

    /// Sequences an event in `user`'s inbox (from inside the actors): `announce`, logged when
    /// it fails.
    pub(crate) async fn tell_inbox(&self, user: UserId, by: UserRef, event: SystemEvent) {
        let room = RoomId::inbox_of(user);
        if let Err(refusal) = self.announce(room, by, event).await {
            warn!(%room, %refusal, "an inbox event could not be sequenced");
        }
    }
}
