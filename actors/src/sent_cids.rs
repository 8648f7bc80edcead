//! The `cid`s each sender used lately in one room, so that a resend gets its original ack instead
//! of a second copy of the message.
//!
//! One small table per sender, not one table for the whole room: a lookup touches only that
//! sender's newest cids, a busy room's tables stop growing once each sender's is full, and the
//! room forgets whole senders that went quiet.
//!
//! A sender's cids live in two generations of at most `GENERATION` each: new cids go into the
//! current one; when it is full the previous one is forgotten and its table, emptied, becomes the
//! current one. Nothing is ever removed from a table one entry at a time, so the tables never
//! fill with tombstones: hashbrown grows a table whose tombstones used up its room unless it is at
//! most half full, and with one table and FIFO eviction a full sender's table ended at 4,096
//! buckets (about 196 KB) after doubling three times, each doubling in fresh memory
//! (BENCHMARKS.md, "The stalls"). With generations a busy sender holds two tables of 512 buckets
//! and, once both exist, allocates nothing more.
//!
//! A sender the room does not know (new, or forgotten) is loaded from storage before its first
//! send is sequenced (`RoomState::send`).
//!
//! A cid still waiting for its commit (`Recent::Pending`) is never forgotten: its resend must
//! reach the pending write, not become a second one.

use confab_schemas::UserId;
use std::collections::HashMap;
use std::sync::Arc;

/// Cids per generation: a sender's newest `GENERATION` to `2 × GENERATION` cids are remembered
/// (older ones are forgotten first). Far above the most sends a client may have unanswered in
/// one room (128); a resend older than this is a new message. 448 is seven eighths of 512, the
/// most a table of 512 buckets holds.
pub const GENERATION: usize = 448;
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
    /// Where new cids go.
    current: FastMap<Arc<str>, Recent>,
    /// The generation before: forgotten when `current` is full.
    previous: FastMap<Arc<str>, Recent>,
    pending: usize,
    /// `SentCids::clock` at this sender's last send.
    last_use: u64,
}

impl Sender {
    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    /// Forgets the previous generation, except its cids still waiting for their commit (they
    /// move to the new one), and starts a new one in the forgotten one's table.
    fn next_generation(&mut self) {
        let mut old = std::mem::take(&mut self.previous);
        let still_pending: Vec<(Arc<str>, Recent)> = old.drain().filter(|(_, r)| *r == Recent::Pending).collect();
        self.previous = std::mem::replace(&mut self.current, old);
        self.current.extend(still_pending);
    }
}

/// The room's memory of recent cids, by sender.
#[derive(Default)]
pub struct SentCids {
    senders: FastMap<UserId, Sender>,
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
        self.senders.get(&user).and_then(|s| s.current.get(cid).or_else(|| s.previous.get(cid)).copied())
    }

    /// Records `cid`, which `get` did not find, as sent and waiting for its commit.
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
        let before = s.len();
        // A pending cid is new (the room's `get` just missed it) and not looked up again; a cid
        // already remembered is updated where it is.
        debug_assert!(recent != Recent::Pending || !(s.current.contains_key(&cid) || s.previous.contains_key(&cid)));
        let found =
            if recent == Recent::Pending { None } else { s.current.get_mut(&cid).or_else(|| s.previous.get_mut(&cid)) };
        let was = match found {
            Some(r) => Some(std::mem::replace(r, recent)),
            None => {
                if s.current.len() >= GENERATION {
                    s.next_generation();
                }
                s.current.insert(cid, recent);
                None
            }
        };
        if was == Some(Recent::Pending) {
            s.pending -= 1;
        }
        if recent == Recent::Pending {
            s.pending += 1;
        }
        self.total = self.total - before + s.len();
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
                self.total -= s.len();
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

    /// The most cids a sender's memory holds.
    const KEPT: usize = 2 * GENERATION;

    #[test]
    fn a_sender_keeps_its_newest_cids_but_never_drops_a_pending_one() {
        let mut m = SentCids::default();
        let u = UserId(1);
        m.pending(u, cid(0));
        for i in 1..=3 * KEPT {
            m.committed(u, cid(i), i as u64, i as i64, 0);
        }
        assert_eq!(m.get(u, "c0"), Some(Recent::Pending), "the pending cid stays, however old");
        // The newest GENERATION at least are there; what came 2 × GENERATION before is not.
        for i in 3 * KEPT - GENERATION + 1..=3 * KEPT {
            assert!(m.get(u, &format!("c{i}")).is_some(), "c{i}");
        }
        assert_eq!(m.get(u, &format!("c{}", 3 * KEPT - KEPT)), None);
        assert!(m.len() <= KEPT + 1);
        m.committed(u, cid(0), 0, 0, 0);
        assert_eq!(m.get(u, "c0"), Some(Recent::Committed { seq: 0, id: 0, ts: 0 }));
        for i in 3 * KEPT + 1..=4 * KEPT {
            m.committed(u, cid(i), 0, 0, 0);
        }
        assert_eq!(m.get(u, "c0"), None, "once committed it ages out like the rest");
        assert!(m.len() <= KEPT);
    }

    #[test]
    fn a_busy_senders_tables_stay_at_512_buckets() {
        let mut m = SentCids::default();
        let u = UserId(1);
        for i in 0..10 * KEPT {
            m.pending(u, cid(i));
            m.committed(u, cid(i), i as u64, 0, 0);
        }
        let s = &m.senders[&u];
        assert_eq!(s.len(), KEPT);
        // A table of 512 buckets holds 448; one that had doubled would hold 896.
        assert!(s.current.capacity() <= GENERATION && s.previous.capacity() <= GENERATION);
        assert_eq!(s.pending, 0);
        assert_eq!(m.len(), KEPT);
    }

    #[test]
    fn a_full_room_forgets_its_quietest_senders_first() {
        let mut m = SentCids::default();
        let senders = PER_ROOM / KEPT + 1;
        for u in 0..senders {
            for i in 0..KEPT {
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
        for u in 1..=PER_ROOM / KEPT + 1 {
            for i in 0..KEPT {
                m.committed(UserId(u as i64), cid(i), i as u64, 0, 0);
            }
        }
        assert_eq!(m.get(UserId(0), "c0"), Some(Recent::Pending));
        assert!(!m.knows(UserId(1)));
    }
}
