//! Presence changes are rate-limited per user and room: a user who joins and leaves in a loop
//! (or reconnects in one) would otherwise send every member of the room a frame per change.
//!
//! Each user has a token bucket (`BURST` changes, then one per `1 / PER_SEC` seconds). A change
//! over the limit is held, not lost: the room's tick broadcasts the user's state once tokens are
//! back, and only if it differs from what members were last told (a flap while held shows
//! nothing), so members always end up seeing the true state.

use confab_schemas::{UserId, UserRef};
use std::collections::HashMap;
use std::time::Instant;

const BURST: f32 = 4.0;
const PER_SEC: f32 = 0.5;

struct Entry {
    tokens: f32,
    at: Instant,
    /// What members were last told.
    shown: bool,
    /// A change not told yet.
    held: Option<(UserRef, bool)>,
}

impl Entry {
    fn refill(&mut self, now: Instant) {
        self.tokens = (self.tokens + (now - self.at).as_secs_f32() * PER_SEC).min(BURST);
        self.at = now;
    }
}

#[derive(Default)]
pub struct PresenceLimiter {
    users: HashMap<UserId, Entry>,
}

impl PresenceLimiter {
    /// `user` went online or offline: true to tell the members now; false when the change is
    /// held (or cancels a held one).
    pub fn change(&mut self, user: &UserRef, online: bool) -> bool {
        self.change_at(user, online, Instant::now())
    }

    fn change_at(&mut self, user: &UserRef, online: bool, now: Instant) -> bool {
        let e = self.users.entry(user.id).or_insert(Entry { tokens: BURST, at: now, shown: !online, held: None });
        e.refill(now);
        if e.shown == online {
            e.held = None;
            return false;
        }
        if e.tokens >= 1.0 && e.held.is_none() {
            e.tokens -= 1.0;
            e.shown = online;
            return true;
        }
        e.held = Some((user.clone(), online));
        false
    }

    /// Held changes whose tokens are back: what to tell the members now.
    pub fn due(&mut self) -> Vec<(UserRef, bool)> {
        self.due_at(Instant::now())
    }

    fn due_at(&mut self, now: Instant) -> Vec<(UserRef, bool)> {
        let mut out = Vec::new();
        self.users.retain(|_, e| {
            e.refill(now);
            if e.tokens >= 1.0
                && let Some((user, online)) = e.held.take()
            {
                e.tokens -= 1.0;
                e.shown = online;
                out.push((user, online));
            }
            // A user with a full bucket and nothing held is forgotten: memory stays bounded.
            e.held.is_some() || e.tokens < BURST
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn user() -> UserRef {
        UserRef { id: UserId(7), username: "u".into() }
    }

    #[test]
    fn a_loop_is_limited_and_the_final_state_is_told() {
        let mut l = PresenceLimiter::default();
        let t0 = Instant::now();
        let told = (0..100).filter(|i| l.change_at(&user(), i % 2 == 0, t0)).count();
        assert_eq!(told, 4, "the burst, then held");
        // The loop ended offline (i = 99), which members were last told after the burst.
        assert!(l.due_at(t0 + Duration::from_secs(10)).is_empty());
    }

    #[test]
    fn a_held_change_is_told_once_tokens_are_back() {
        let mut l = PresenceLimiter::default();
        let t0 = Instant::now();
        for i in 0..5 {
            l.change_at(&user(), i % 2 == 0, t0);
        }
        // Fifth change (online) held.
        assert!(l.due_at(t0).is_empty());
        let due = l.due_at(t0 + Duration::from_secs(3));
        assert_eq!(due.len(), 1);
        assert!(due[0].1, "the user is online");
    }
}
