//! The `cid`s each sender used lately in one room, so that a resend gets its original ack instead
//! of a second copy of the message.
//!
//! One small table per sender, not one table for the whole room: a lookup touches only that
//! sender's newest cids, a busy room's tables stop growing once each sender's is full, and the
//! room forgets whole senders that went quiet. A sender the room does not know (new, or forgotten)
//! is loaded from storage before its first send is sequenced (`RoomState::send`).
//!
//! A cid still waiting for its commit (`Recent::Pending`) is never forgotten: its resend must
//! reach the pending write, not become a second one.

use confab_schemas::UserId;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Newest cids remembered per sender (older ones are forgotten first). Above the most sends a
/// client has unanswered in one room in practice; a resend older than this is a new message.
pub const PER_SENDER: usize = 1024;
/// Cids remembered per room; above it the least recently active senders are forgotten.
pub const PER_ROOM: usize = 65_536;

/// What a cid became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recent {
    Pending,
    Committed { seq: u64, id: i64, ts: i64 },
}

type FastMap<K, V> = HashMap<K, V, foldhash::quality::RandomState>;

#[derive(Default)]
struct Sender {
    cids: FastMap<Arc<str>, Recent>,
    order: VecDeque<Arc<str>>,
    pending: usize,
    /// `SentCids::clock` at this sender's last send.
    last_use: u64,
}

/// The room's memory of recent cids, by sender.
#[derive(Default)]
pub struct SentCids {
    senders: HashMap<UserId, Sender>,
    total: usize,
    clock: u64,
}

impl SentCids {
    /// Whether `user`'s cids are here (otherwise they must be loaded from storage first).
    pub fn knows(&self, user: UserId) -> bool {
        self.senders.contains_key(&user)
    }

    /// Starts remembering `user` with the cids storage has for it, oldest first.
    pub fn load(&mut self, user: UserId, stored: impl IntoIterator<Item = (Arc<str>, Recent)>) {
        self.senders.entry(user).or_default();
        for (cid, recent) in stored {
            self.put(user, cid, recent);
        }
    }

    pub fn get(&self, user: UserId, cid: &str) -> Option<Recent> {
        self.senders.get(&user).and_then(|s| s.cids.get(cid).copied())
    }

    /// Records `cid` as sent and waiting for its commit.
    pub fn pending(&mut self, user: UserId, cid: Arc<str>) {
        self.put(user, cid, Recent::Pending);
    }

    /// Records `cid` as committed at `seq`.
    pub fn committed(&mut self, user: UserId, cid: Arc<str>, seq: u64, id: i64, ts: i64) {
        self.put(user, cid, Recent::Committed { seq, id, ts });
    }

    /// Cids remembered in all.
    pub fn len(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    fn put(&mut self, user: UserId, cid: Arc<str>, recent: Recent) {
        self.clock += 1;
        let s = self.senders.entry(user).or_default();
        s.last_use = self.clock;
        let was = s.cids.insert(cid.clone(), recent);
        match was {
            None => {
                s.order.push_back(cid);
                self.total += 1;
            }
            Some(Recent::Pending) => s.pending -= 1,
            Some(Recent::Committed { .. }) => {}
        }
        if recent == Recent::Pending {
            s.pending += 1;
        }
        while s.order.len() > PER_SENDER {
            let Some(old) = s.order.pop_front() else { break };
            match s.cids.remove(&old) {
                Some(Recent::Pending) => {
                    // Still waiting for its commit: it stays, and so do the newer ones.
                    s.cids.insert(old.clone(), Recent::Pending);
                    s.order.push_front(old);
                    break;
                }
                Some(Recent::Committed { .. }) => self.total -= 1,
                None => {}
            }
        }
        if self.total > PER_ROOM {
            self.forget_quiet_senders(user);
        }
    }

    /// Forgets the least recently active senders (none with a pending cid, never `keep`) until
    /// three quarters of the room's budget is used, so that this runs once per many sends.
    fn forget_quiet_senders(&mut self, keep: UserId) {
        let mut quiet: Vec<(u64, UserId)> =
            self.senders.iter().filter(|(u, s)| **u != keep && s.pending == 0).map(|(u, s)| (s.last_use, *u)).collect();
        quiet.sort_unstable();
        for (_, user) in quiet {
            if self.total <= PER_ROOM * 3 / 4 {
                break;
            }
            if let Some(s) = self.senders.remove(&user) {
                self.total -= s.cids.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(i: usize) -> Arc<str> {
        Arc::from(format!("c{i}"))
    }

    #[test]
    fn a_pending_cid_becomes_committed_and_is_found() {
        let mut m = SentCids::default();
        let u = UserId(1);
        assert!(!m.knows(u));
        m.load(u, []);
        assert!(m.knows(u));
        m.pending(u, cid(1));
        assert_eq!(m.get(u, "c1"), Some(Recent::Pending));
        m.committed(u, cid(1), 7, 70, 700);
        assert_eq!(m.get(u, "c1"), Some(Recent::Committed { seq: 7, id: 70, ts: 700 }));
        assert_eq!(m.get(UserId(2), "c1"), None);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn a_sender_keeps_its_newest_cids_but_never_drops_a_pending_one() {
        let mut m = SentCids::default();
        let u = UserId(1);
        m.pending(u, cid(0));
        for i in 1..=PER_SENDER + 10 {
            m.committed(u, cid(i), i as u64, i as i64, 0);
        }
        assert_eq!(m.get(u, "c0"), Some(Recent::Pending), "the pending cid at the front stays");
        assert!(m.get(u, &format!("c{}", PER_SENDER + 10)).is_some());
        m.committed(u, cid(0), 0, 0, 0);
        m.committed(u, cid(PER_SENDER + 11), 0, 0, 0);
        assert_eq!(m.get(u, "c0"), None, "once committed it ages out like the rest");
        assert!(m.len() <= PER_SENDER);
    }

    #[test]
    fn a_full_room_forgets_its_quietest_senders_first() {
        let mut m = SentCids::default();
        let senders = PER_ROOM / PER_SENDER + 1;
        for u in 0..senders {
            for i in 0..PER_SENDER {
                m.committed(UserId(u as i64), cid(i), i as u64, 0, 0);
            }
        }
        // Sender 0 was the first to fill up and has been quiet since: it went first.
        assert!(!m.knows(UserId(0)));
        assert!(m.knows(UserId(senders as i64 - 1)));
        assert!(m.len() <= PER_ROOM);
    }

    #[test]
    fn a_sender_with_a_pending_cid_is_never_forgotten() {
        let mut m = SentCids::default();
        m.pending(UserId(0), cid(0));
        for u in 1..=PER_ROOM / PER_SENDER + 1 {
            for i in 0..PER_SENDER {
                m.committed(UserId(u as i64), cid(i), i as u64, 0, 0);
            }
        }
        assert_eq!(m.get(UserId(0), "c0"), Some(Recent::Pending));
        assert!(!m.knows(UserId(1)));
    }
}
