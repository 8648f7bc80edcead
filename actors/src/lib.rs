//! Confab's actors and store.
//!
//! Supervision tree of one node (every arrow is `spawn_linked`; a supervisor restarts a failed
//! child, counts the restart in `Metrics`, and reloads the child's state from storage):
//!
//! ```text
//! WriterSupervisor ── BatchWriter            (one per node; batches commits, answers when durable)
//! RoomSupervisor ──┬─ RoomActor(room)        (one per active room owned here: its only sequencer)
//!                  ├─ RemoteRoom(room)       (one per active room owned by another node: a proxy)
//!                  └─ ModerationQueue(room)  (one per active room: reports)
//! SessionSupervisor ── SessionActor(conn)    (one per WebSocket connection)
//! ```
//!
//! The store (`store`) is the only code that talks to the database; the history cache (`history`)
//! keeps immutable pages of room history in foyer. This crate knows nothing of HTTP or gossip:
//! gateways and the cluster talk to it only through the handles in `system`, and it asks the
//! cluster where rooms live through `cluster::ClusterHooks`.

pub mod cluster;
pub mod commit_thread;
pub mod error;
pub mod history;
pub mod metrics;
pub mod moderation;
pub mod outbound;
pub mod presence_limit;
pub mod priority;
pub mod remote;
pub mod replay;
pub mod room;
pub mod sent_cids;
pub mod session;
pub mod stop;
pub mod store;
pub mod system;
pub mod writer;

pub use error::{Error, Result};
pub use metrics::Metrics;
pub use store::Store;
pub use system::{ActorSystem, SystemConfig};
