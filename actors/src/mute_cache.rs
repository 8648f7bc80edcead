//! A session's view of its user's site-wide mute: read from storage at most once per
//! `MUTE_CACHE` while the user sends, so a mute (or its lifting) by staff on any node holds on
//! every node within that time. A muted user's sends and edits are refused with `muted`; deletes
//! of their own messages are not.
//!
//! When storage cannot be read the last known state stays (a failing database must not stop
//! every sender; it stops the sends themselves soon enough).

use crate::store::Store;
use confab_schemas::{ErrorCode, Refusal, UserId, now_ms};
use std::time::Duration;
use tokio::time::Instant;

/// How long a session trusts what it read of its user's mute.
pub const MUTE_CACHE: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(crate) struct MuteCache {
    checked_at: Option<Instant>,
    /// The end of the mute in force (ms since the epoch), if any.
    until: Option<i64>,
}

impl MuteCache {
    /// Reads the mute again when what is known is older than `MUTE_CACHE`.
    pub(crate) async fn refresh(&mut self, store: &Store, user: UserId) {
        if self.checked_at.is_some_and(|t| t.elapsed() < MUTE_CACHE) {
            return;
        }
        match store.active_mute(user).await {
            Ok(mute) => {
                self.until = mute.map(|m| m.expires_at);
                self.checked_at = Some(Instant::now());
            }
            Err(e) => tracing::debug!(user = user.0, err = %e, "reading the mute failed; keeping the last state"),
        }
    }

    /// The refusal of a send while muted.
    pub(crate) fn refusal(&self) -> Option<Refusal> {
        let until = self.until.filter(|&t| t > now_ms())?;
        let secs = (until - now_ms() + 999) / 1000;
        Some(Refusal::new(ErrorCode::Muted, format!("you are muted for {secs} more seconds")))
    }
}
