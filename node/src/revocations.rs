//! Revocations written outside the node reach its open sockets: `confab admin reset-password`
//! and `set-role` write a row to the `revocations` table, and every node polls it (about once a
//! second) and closes the local sessions of each account named there.
//!
//! Polling, not PostgreSQL's `LISTEN/NOTIFY`: it works the same on SQLite (where the CLI writes the
//! node's own file from another process), needs no extra kind of database connection, and costs
//! one indexed read a second. The cursor is the newest stamp seen, by the database's clock, minus
//! `LOOKBACK`; rows are applied once each (by id), so a row whose transaction committed a little
//! after a newer one's is still seen.

use confab_actors::ActorSystem;
use confab_actors::sessions::{CloseTarget, KICKED_REASON};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How far back each poll looks from the newest stamp seen.
const LOOKBACK_MS: i64 = 60_000;

/// Takes the revocations written so far as applied, then polls every `every` until `stop`.
pub async fn watch(
    system: Arc<ActorSystem>,
    every: Duration,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut seen = Seen::default();
    // Rows already there name sockets of an earlier run: nothing to close.
    for r in system.store().revocations_since(i64::MIN).await? {
        seen.apply(r.id, r.at);
    }
    Ok(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            match system.store().revocations_since(seen.newest - LOOKBACK_MS).await {
                Ok(rows) => {
                    failing = false;
                    for r in rows {
                        if seen.apply(r.id, r.at) {
                            info!(user = r.user.0, reason = %r.reason, "revocation: closing the account's sockets");
                            // A kick (the user may come back) spares the sockets opened since it.
                            let target = if r.reconnect || r.reason == KICKED_REASON {
                                CloseTarget::UserStartedBy(r.user, r.at)
                            } else {
                                CloseTarget::User(r.user)
                            };
                            system.close_local_sessions(target, &r.reason, r.reconnect);
                        }
                    }
                    seen.forget_older();
                }
                Err(e) if !failing => {
                    failing = true;
                    warn!(err = %e, "polling revocations failed; retrying");
                }
                Err(_) => {}
            }
        }
    }))
}

/// Revocations applied (id → stamp) within the lookback, and the newest stamp.
#[derive(Default)]
struct Seen {
    ids: HashMap<i64, i64>,
    newest: i64,
}

impl Seen {
    /// Records a row; true when it had not been applied yet.
    fn apply(&mut self, id: i64, at: i64) -> bool {
        self.newest = self.newest.max(at);
        self.ids.insert(id, at).is_none()
    }

    fn forget_older(&mut self) {
        let horizon = self.newest - LOOKBACK_MS;
        self.ids.retain(|_, at| *at > horizon);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rows_apply_once_and_late_commits_are_seen() {
        let mut s = super::Seen::default();
        assert!(s.apply(2, 10_000));
        assert!(!s.apply(2, 10_000));
        // Id 1 committed after id 2, with an older stamp: still applied once.
        assert!(s.apply(1, 9_000));
        assert!(!s.apply(1, 9_000));
        s.apply(3, 200_000);
        s.forget_older();
        assert_eq!(s.ids.len(), 1);
    }
}
