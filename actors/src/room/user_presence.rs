//! A user's presence across the cluster, kept by their inbox: one actor in the whole cluster,
//! which every session of the user follows. Online from its first subscription, renewed every
//! `RENEW` while one remains, offline (last seen now) when the last one leaves. If the inbox's
//! node dies, the row says online until its `online_until` passes (`LIFETIME`), unless the
//! sessions follow the inbox on its new owner first.

use super::*;

/// How often an online user's row is renewed.
const RENEW: Duration = Duration::from_secs(30);
/// How long a renewal keeps a user online.
const LIFETIME_MS: i64 = 90_000;

/// What the inbox last wrote.
#[derive(Default)]
pub(super) struct UserPresence {
    online: bool,
    renewed: Option<Instant>,
    /// The newest write's stamp (milliseconds, strictly increasing), which orders the writes.
    stamp: i64,
}

impl RoomState {
    /// The inbox's user got their first subscription (`true`) or lost their last one.
    pub(super) fn user_presence(&mut self, online: bool) {
        if let Some(user) = self.room.id.inbox_user() {
            self.user_presence.online = online;
            self.write_presence(user);
        }
    }

    /// Renews an online user's row when due (at the tick).
    pub(super) fn renew_user_presence(&mut self) {
        if let Some(user) = self.room.id.inbox_user()
            && self.user_presence.online
            && self.user_presence.renewed.is_none_or(|t| t.elapsed() >= RENEW)
        {
            self.write_presence(user);
        }
    }

    fn write_presence(&mut self, user: UserId) {
        let p = &mut self.user_presence;
        p.stamp = (p.stamp + 1).max(now_ms());
        p.renewed = Some(Instant::now());
        let (stamp, until) = (p.stamp, p.online.then_some(p.stamp + LIFETIME_MS));
        let store = self.ctx.store.clone();
        // Off the inbox's mailbox: the stamp keeps a late write from undoing a newer one.
        tokio::spawn(async move {
            if let Err(e) = store.set_presence(user, until, stamp).await {
                warn!(%user, error = %e, "presence could not be written");
            }
        });
    }
}
