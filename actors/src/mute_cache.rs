//! The node's view of site-wide and room mutes: every mute in force, read from storage at most once per
//! `MUTE_CACHE` and only while someone sends, shared by every session of the node. So a mute (or
//! its lifting) made on any node holds on every node within about that time, for one small read
//! a second per node rather than one per sender. A muted user's sends and edits are refused with
//! `muted`; deletes of their own messages are not.
//!
//! A send waits for the reread when what is known is stale, so a mute set while nobody sent is
//! never missed. When storage cannot be read the last known state stays for another period (a
//! failing database must not stop every sender; it stops the sends themselves soon enough).

use crate::store::Store;
use confab_schemas::{ErrorCode, Refusal, RoomId, UserId, now_ms};
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;
use tokio::time::Instant;

/// How long the node trusts what it read of the mutes in force.
pub const MUTE_CACHE: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(crate) struct Mutes {
    /// Muted users and the end of each mute (ms since the epoch), and when that was read.
    known: RwLock<(HashMap<UserId, i64>, Option<Instant>)>,
    /// Room mutes: (room, user) and the end of each (`i64::MAX`: until lifted).
    rooms: RwLock<HashMap<(RoomId, UserId), i64>>,
    /// One reread at a time; the others wait for it.
    reread: tokio::sync::Mutex<()>,
}

impl Mutes {
    fn fresh(&self) -> bool {
        self.known.read().unwrap_or_else(|e| e.into_inner()).1.is_some_and(|t| t.elapsed() < MUTE_CACHE)
    }

    /// Reads the mutes again when what is known is older than `MUTE_CACHE`.
    pub(crate) async fn refresh(&self, store: &Store) {
        if self.fresh() {
            return;
        }
        let _one = self.reread.lock().await;
        if self.fresh() {
            return;
        }
        let read = store.active_mutes().await;
        let rooms = store.active_room_mutes().await;
        if let Ok(rows) = rooms {
            *self.rooms.write().unwrap_or_else(|e| e.into_inner()) =
                rows.into_iter().map(|(r, u, t)| ((r, u), t)).collect();
        }
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        match read {
            Ok(rows) => known.0 = rows.into_iter().collect(),
            Err(e) => tracing::warn!(err = %e, "reading the mutes failed; keeping the last ones"),
        }
        known.1 = Some(Instant::now());
    }

    /// What is known is stale: the next send reads the mutes again (a mute set on this node).
    pub(crate) fn invalidate(&self) {
        self.known.write().unwrap_or_else(|e| e.into_inner()).1 = None;
    }

    /// The refusal of a send by `user` in `room` while muted there.
    pub(crate) fn room_refusal(&self, room: RoomId, user: UserId) -> Option<Refusal> {
        let until = *self.rooms.read().unwrap_or_else(|e| e.into_inner()).get(&(room, user))?;
        let left = until.saturating_sub(now_ms());
        (left > 0).then(|| {
            if until == i64::MAX {
                return Refusal::new(ErrorCode::Muted, "you are muted in this room");
            }
            let secs = (left + 999) / 1000;
            Refusal::new(ErrorCode::Muted, format!("you are muted in this room for {secs} more seconds"))
        })
    }

    /// The refusal of a send by `user` while muted.
    pub(crate) fn refusal(&self, user: UserId) -> Option<Refusal> {
        let until = *self.known.read().unwrap_or_else(|e| e.into_inner()).0.get(&user)?;
        let left = until - now_ms();
        (left > 0).then(|| {
            let secs = (left + 999) / 1000;
            Refusal::new(ErrorCode::Muted, format!("you are muted for {secs} more seconds"))
        })
    }
}
