//! Confab's actors and store.
//!
//! Supervision tree of one node (every arrow is `spawn_linked`; a supervisor restarts a failed
//! child, counts the restart in `Metrics`, and reloads the child's state from storage):
//!
//! ```text
//! WriterSupervisor ── BatchWriter            (writer: one per node; batches commits, answers when durable)
//! RoomDirectory ───┬─ RoomActor(room)        (room: one per active room owned here, its only sequencer)
//!                  ├─ RemoteRoom(room)       (remote: one per active room owned by another node, a proxy)
//!                  └─ ModerationQueue(room)  (moderation: one per room sequenced here, beside it: reports, held
//!                                             messages, flags and decisions; a release gets its seq from the room)
//! SessionSupervisor ── SessionActor(conn)    (sessions, session: one per WebSocket connection, none while
//!                                             it is parked: `msg::session::SessionRef` keeps its state)
//! PoolSupervisor ───── MatchPool             (stranger: only on the node the pool's key is placed on)
//! ```
//!
//! Layers, each importing only those below it (no import circles): `msg` (every actor's
//! messages and the typed handles that send them: `RoomHandle`, `InboxHandle`; the writer's own
//! `WriterHandle` and `Committed` answer live in `writer`) and `ctx` (configuration and what
//! every actor shares); then the actors (`room`, `remote`, `session`); then their supervisors
//! (`directory`, `sessions`, `writer`); then `system`, the `ActorSystem` other crates hold.
//!
//! The store (`store`) is the only code that talks to the database; the history cache (`history`)
//! keeps immutable pages of room history in foyer. Blob storage (`blob`) keeps the bytes of
//! attachments behind `object_store`; they never pass through an actor. This crate knows nothing of HTTP or gossip:
//! gateways and the cluster talk to it only through `ActorSystem` and the handles in `msg`, and
//! it asks the cluster where rooms live through `cluster::ClusterHooks`.

pub mod blob;
pub mod cluster;
pub mod commit_thread;
pub mod ctx;
mod directory;
pub mod error;
pub mod history;
pub mod media;
pub mod metrics;
pub mod moderation;
pub mod msg;
pub mod mute_cache;
pub mod outbound;
pub mod presence_limit;
pub mod priority;
mod remote;
mod room;
pub mod sent_cids;
pub mod session;
pub mod sessions;
pub mod stop;
pub mod storage_health;
pub mod store;
pub mod stranger;
pub mod sweeper;
pub mod system;
mod writer;

pub use ctx::SystemConfig;
pub use error::{Error, Result};
pub use metrics::Metrics;
pub use msg::{InboxHandle, RoomHandle};
pub use store::Store;
pub use system::ActorSystem;
