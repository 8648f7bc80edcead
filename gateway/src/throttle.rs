//! Throttles with exponential backoff, for login attempts and email-code requests, keyed by
//! client IP and by account. In memory, per node.
//!
//! A key may fail `free - 1` times freely; the `free`-th failure blocks it for `base`, and each
//! further one doubles the block, up to `max`. A success clears the key; a key quiet for `max`
//! starts over.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Throttle {
    free: u32,
    base: Duration,
    max: Duration,
    keys: Mutex<HashMap<String, Entry>>,
}

#[derive(Clone, Copy)]
struct Entry {
    failures: u32,
    blocked_until: Instant,
    last: Instant,
}

/// Keys kept before quiet ones are pruned.
const PRUNE_AT: usize = 100_000;

impl Throttle {
    pub fn new(free: u32, base: Duration, max: Duration) -> Throttle {
        Throttle { free, base, max, keys: Mutex::new(HashMap::new()) }
    }

    /// `Err(wait)` while `key` is blocked.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match keys.get(key) {
            Some(e) if e.blocked_until > now => Err(e.blocked_until - now),
            _ => Ok(()),
        }
    }

    /// Counts a failure (or, for rate limits, an event) against `key`.
    pub fn fail(&self, key: &str) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if keys.len() > PRUNE_AT {
            let max = self.max;
            keys.retain(|_, e| now.duration_since(e.last) < max);
        }
        let e = keys.entry(key.to_owned()).or_insert(Entry { failures: 0, blocked_until: now, last: now });
        if now.duration_since(e.last) >= self.max {
            e.failures = 0;
        }
        e.failures += 1;
        e.last = now;
        if e.failures >= self.free {
            let doublings = (e.failures - self.free).min(20);
            e.blocked_until = now + (self.base * 2u32.pow(doublings)).min(self.max);
        }
    }

    pub fn succeed(&self, key: &str) {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_after_the_free_failures() {
        let t = Throttle::new(3, Duration::from_secs(1), Duration::from_secs(60));
        t.fail("k");
        t.fail("k");
        assert!(t.check("k").is_ok());
        t.fail("k");
        let w1 = t.check("k").unwrap_err();
        assert!(w1 > Duration::from_millis(900) && w1 <= Duration::from_secs(1));
        t.fail("k");
        let w2 = t.check("k").unwrap_err();
        assert!(w2 > Duration::from_millis(1900) && w2 <= Duration::from_secs(2));
        assert!(t.check("other").is_ok());
        t.succeed("k");
        assert!(t.check("k").is_ok());
    }
}
