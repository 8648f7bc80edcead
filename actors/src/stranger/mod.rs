//! Talk to a stranger: the match pool, pairing people by shared interests into stranger chats.
//!
//! ```text
//! PoolSupervisor (every node) ── MatchPool   (only on the node that owns `stranger::MATCH_POOL`)
//! Desk (every node, a task)                  (this node's waiting sessions: tells them `matched`)
//! ```
//!
//! - `requests`: what a session does with `match`, `unmatch`, `next`, `stranger_report` and
//!   `stranger_block` (checks, rate limits, the queue row, leaving a chat), and what a new
//!   connection is told (`waiting` or `matched`) and a closed one leaves behind (a place kept for
//!   `reconnect_grace`).
//! - `pool`: the `MatchPool` actor, placed in the cluster by its own key like a room (rendezvous
//!   hashing of `MATCH_POOL` over the ready nodes) and fenced by the `match-pool` task lease; its
//!   supervisor on every node starts it where the view says and restarts it when it fails. Each
//!   round reads the queue, pairs (`matching`) and makes each pair in one transaction
//!   (`Store::pair_strangers`), and deletes chats both people left `retention` ago, unreported.
//! - `desk`: per node, the sessions waiting here; it finds their seats once the pool made them
//!   and sends `matched`, sends `waiting` counts, and renews their queue rows.
//!
//! Nothing a SIGKILL can lose lives in memory: the queue is in the database (each session's node
//! renews its rows; rows of dead nodes' sessions go stale and are skipped, and a client that
//! reconnects elsewhere takes its row over on connecting, keeping its place), so a new owner of the pool
//! carries on with everyone who waited. The database also holds the invariants: a pairing takes
//! both queue rows or nothing, and a user's seat is a primary key (one stranger chat each) even
//! if two nodes run a pool for a moment. No node-to-node frame is needed.
//!
//! A stranger chat is a room of kind `stranger` (sequenced, durable, fenced like any room, with
//! typing and attachments); its two members are shown only as `Stranger` (`Seats`, applied by
//! the room and its proxies to every frame, and by the gateway to history).

mod desk;
pub mod interests;
pub mod matching;
mod pool;
mod requests;

pub(crate) use desk::{Desk, run_desk};
pub(crate) use pool::{PoolSupMsg, PoolSupervisor};
pub(crate) use requests::{handle, place_taken, session_closed};

use std::time::Duration;

/// The match pool's tunables.
#[derive(Debug, Clone)]
pub struct StrangerConfig {
    /// After this wait, someone who accepts fewer shared interests may be paired with none.
    pub widen_after: Duration,
    /// How often the pool pairs (it also pairs at once when someone enters on its node) and the
    /// desk looks for seats.
    pub tick: Duration,
    /// Stranger chats both people left are deleted (messages and files) this long after,
    /// unless reported.
    pub retention: Duration,
    /// People who talked are not paired again for this long.
    pub avoid: Duration,
    /// People who reported or blocked each other are not paired again for this long.
    pub avoid_reported: Duration,
    /// Times a user may enter the queue per minute (`match` from outside it, `next`).
    pub enters_per_minute: u32,
    /// Times a user may say `next` per minute.
    pub nexts_per_minute: u32,
    /// A queue row its session's node has not renewed for this long is skipped (the node died).
    pub stale_after: Duration,
    /// Someone whose connection dropped while waiting keeps their place this long: a new
    /// connection of theirs within it takes the place over (and is told `waiting`); after it,
    /// they are out of the queue.
    pub reconnect_grace: Duration,
}

impl Default for StrangerConfig {
    fn default() -> Self {
        StrangerConfig {
            widen_after: Duration::from_secs(10),
            tick: Duration::from_millis(200),
            retention: Duration::from_secs(24 * 3600),
            avoid: Duration::from_secs(600),
            avoid_reported: Duration::from_secs(30 * 24 * 3600),
            enters_per_minute: 30,
            nexts_per_minute: 20,
            stale_after: Duration::from_secs(30),
            reconnect_grace: Duration::from_secs(20),
        }
    }
}
