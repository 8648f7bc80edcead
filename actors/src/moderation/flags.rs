//! The automatic flags as a room's sequencer applies them to a message of a member who is not
//! room staff: flood (beyond a rate: muted in the room for a time), repeated identical bodies,
//! banned words (refuse or hold) and links from young accounts (held).
//!
//! What they count must not be reset by anything a sender can cause, nor by the room moving:
//! the counts are per room and sender (never per connection, so reconnecting changes nothing),
//! and a room's incarnation (after a restart, a handoff or a failover) seeds a sender's counts
//! from their messages stored in the room (`seed`, the rows the sequencer reads anyway to
//! deduplicate their cids) the first time it sees them; a flood mute is stored as a room mute,
//! so it outlives the incarnation and holds on every node. Refused messages are not stored, so
//! they are not counted again after a move: a flood is counted in accepted sends, which is what
//! it limits. No per-message write: the counters cost no storage beyond the messages.

use super::settings::{Flags, WordAction};
use confab_schemas::{ErrorCode, Refusal, UserId};
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

/// What the flags make of a message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Pass,
    /// Refused; `flag` names the flag for its queue item (`None`: an earlier firing's mute).
    Refuse {
        refusal: Refusal,
        flag: Option<String>,
    },
    /// Flood: refused, and the sender is muted in the room for `minutes`.
    Mute {
        refusal: Refusal,
        minutes: u32,
        flag: String,
    },
    /// Held for a moderator, for this reason.
    Hold(String),
}

#[derive(Default)]
pub(crate) struct FlagState {
    sends: HashMap<UserId, VecDeque<Instant>>,
    bodies: HashMap<UserId, VecDeque<(Instant, u64)>>,
    muted: HashMap<UserId, Instant>,
    /// Senders whose stored messages were counted (`seed`).
    seeded: HashSet<UserId>,
}

/// The hash a repeat is compared by.
fn body_hash(body: &str) -> u64 {
    let mut h = DefaultHasher::new();
    body.trim().hash(&mut h);
    h.finish()
}

/// The most bodies remembered per sender.
const MAX_BODIES: usize = 1000;

/// Whether a body carries a link.
pub(crate) fn has_link(body: &str) -> bool {
    let lower = body.to_lowercase();
    lower.contains("http://") || lower.contains("https://") || lower.contains("www.")
}

fn banned_word(words: &[String], body: &str) -> Option<String> {
    let lower = body.to_lowercase();
    let tokens: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()).collect();
    words
        .iter()
        .find(|w| if w.chars().all(char::is_alphanumeric) { tokens.contains(&w.as_str()) } else { lower.contains(*w) })
        .cloned()
}

impl FlagState {
    /// Whether `user`'s stored messages were counted.
    pub(crate) fn knows(&self, user: UserId) -> bool {
        self.seeded.contains(&user)
    }

    /// Counts `user`'s stored messages here, newest first as (ts in ms, body), before any send
    /// of theirs this incarnation sees.
    pub(crate) fn seed<'a>(&mut self, user: UserId, newest_first: impl Iterator<Item = (i64, &'a str)>) {
        let (now, now_ms) = (Instant::now(), confab_schemas::now_ms());
        let mut stored: Vec<(Instant, u64)> = newest_first
            .take(MAX_BODIES)
            .filter_map(|(ts, body)| {
                let at = now.checked_sub(Duration::from_millis((now_ms - ts).max(0) as u64))?;
                Some((at, body_hash(body)))
            })
            .collect();
        stored.reverse();
        let sends = self.sends.entry(user).or_default();
        let bodies = self.bodies.entry(user).or_default();
        for (at, hash) in stored {
            sends.push_back(at);
            bodies.push_back((at, hash));
        }
        self.seeded.insert(user);
    }

    /// Applies `flags` to `user`'s message `body`; `account_age_ms` is asked only for a message
    /// with a link while `link_spam` is on.
    pub(crate) async fn check<F, Fut>(&mut self, flags: &Flags, user: UserId, body: &str, account_age_ms: F) -> Verdict
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Option<i64>>,
    {
        let now = Instant::now();
        if let Some(until) = self.muted.get(&user) {
            if *until > now {
                let secs = until.duration_since(now).as_secs() + 1;
                let refusal =
                    Refusal::new(ErrorCode::Muted, format!("you are muted in this room for {secs} more seconds"));
                return Verdict::Refuse { refusal, flag: None };
            }
            self.muted.remove(&user);
        }
        if let Some(f) = flags.flood {
            let window = Duration::from_secs(u64::from(f.seconds));
            let sends = self.sends.entry(user).or_default();
            while sends.front().is_some_and(|t| now.duration_since(*t) > window) {
                sends.pop_front();
            }
            if sends.len() >= f.messages as usize {
                sends.clear();
                self.muted.insert(user, now + Duration::from_secs(u64::from(f.mute_minutes) * 60));
                let refusal = Refusal::new(
                    ErrorCode::Muted,
                    format!("too many messages: you are muted in this room for {} minutes", f.mute_minutes),
                );
                let flag = format!("flood: more than {} messages in {} seconds", f.messages, f.seconds);
                return Verdict::Mute { refusal, minutes: f.mute_minutes, flag };
            }
            sends.push_back(now);
            if sends.len() > MAX_BODIES {
                sends.pop_front();
            }
        }
        if let Some(r) = flags.repeats {
            let window = Duration::from_secs(u64::from(r.seconds));
            let hash = body_hash(body);
            let bodies = self.bodies.entry(user).or_default();
            while bodies.front().is_some_and(|(t, _)| now.duration_since(*t) > window) {
                bodies.pop_front();
            }
            let same = bodies.iter().filter(|(_, b)| *b == hash).count();
            if same + 1 >= r.count as usize {
                let refusal = Refusal::new(ErrorCode::Repeated, "you sent this message too many times");
                let flag = format!("repeats: {} identical messages in {} seconds", r.count, r.seconds);
                return Verdict::Refuse { refusal, flag: Some(flag) };
            }
            bodies.push_back((now, hash));
            if bodies.len() > MAX_BODIES {
                bodies.pop_front();
            }
        }
        if let Some(w) = &flags.banned_words
            && let Some(word) = banned_word(&w.words, body)
        {
            let flag = format!("banned word: {word}");
            return match w.action {
                WordAction::Refuse => Verdict::Refuse {
                    refusal: Refusal::new(ErrorCode::BannedWord, "this message contains a word not allowed here"),
                    flag: Some(flag),
                },
                WordAction::Hold => Verdict::Hold(flag),
            };
        }
        if let Some(l) = flags.link_spam
            && has_link(body)
            && account_age_ms().await.is_some_and(|age| age < i64::from(l.min_account_age_minutes) * 60_000)
        {
            return Verdict::Hold(format!("link spam: account younger than {} minutes", l.min_account_age_minutes));
        }
        Verdict::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moderation::settings::{BannedWords, Flood, LinkSpam, Repeats};

    async fn run(st: &mut FlagState, flags: &Flags, body: &str, age: Option<i64>) -> Verdict {
        st.check(flags, UserId(1), body, || async move { age }).await
    }

    #[tokio::test]
    async fn each_flag_fires_at_its_threshold() {
        let mut st = FlagState::default();
        let flood = Flags { flood: Some(Flood { messages: 3, seconds: 60, mute_minutes: 5 }), ..Flags::default() };
        for i in 0..3 {
            assert_eq!(run(&mut st, &flood, &format!("m{i}"), None).await, Verdict::Pass);
        }
        assert!(matches!(run(&mut st, &flood, "m3", None).await, Verdict::Mute { minutes: 5, .. }));
        assert!(matches!(run(&mut st, &flood, "m4", None).await, Verdict::Refuse { flag: None, .. }));

        let mut st = FlagState::default();
        let rep = Flags { repeats: Some(Repeats { count: 3, seconds: 60 }), ..Flags::default() };
        assert_eq!(run(&mut st, &rep, "same", None).await, Verdict::Pass);
        assert_eq!(run(&mut st, &rep, "other", None).await, Verdict::Pass);
        assert_eq!(run(&mut st, &rep, "same", None).await, Verdict::Pass);
        assert!(matches!(run(&mut st, &rep, "same", None).await, Verdict::Refuse { flag: Some(_), .. }));

        let words = |action| Flags {
            banned_words: Some(BannedWords { words: vec!["spam".into()], action }),
            ..Flags::default()
        };
        let mut st = FlagState::default();
        assert_eq!(run(&mut st, &words(WordAction::Refuse), "spammer here", None).await, Verdict::Pass);
        assert!(matches!(run(&mut st, &words(WordAction::Refuse), "buy SPAM now", None).await, Verdict::Refuse { .. }));
        assert!(matches!(run(&mut st, &words(WordAction::Hold), "spam!", None).await, Verdict::Hold(_)));

        let links = Flags { link_spam: Some(LinkSpam { min_account_age_minutes: 10 }), ..Flags::default() };
        assert!(matches!(run(&mut st, &links, "see https://x.example", Some(60_000)).await, Verdict::Hold(_)));
        assert_eq!(run(&mut st, &links, "see https://x.example", Some(11 * 60_000)).await, Verdict::Pass);
        assert_eq!(run(&mut st, &links, "no link", Some(0)).await, Verdict::Pass);
    }

    #[tokio::test]
    async fn a_new_incarnation_counts_the_stored_messages() {
        let now = confab_schemas::now_ms();
        let flood = Flags { flood: Some(Flood { messages: 3, seconds: 60, mute_minutes: 5 }), ..Flags::default() };
        // Three stored within the minute (newest first), one long before: the next is the fourth.
        let mut st = FlagState::default();
        assert!(!st.knows(UserId(1)));
        let stored = [(now - 1_000, "c"), (now - 2_000, "b"), (now - 3_000, "a"), (now - 3_600_000, "old")];
        st.seed(UserId(1), stored.into_iter());
        assert!(st.knows(UserId(1)));
        assert!(matches!(run(&mut st, &flood, "d", None).await, Verdict::Mute { .. }));

        let rep = Flags { repeats: Some(Repeats { count: 3, seconds: 60 }), ..Flags::default() };
        let mut st = FlagState::default();
        st.seed(UserId(1), [(now - 1_000, "same"), (now - 2_000, "same ")].into_iter());
        assert!(matches!(run(&mut st, &rep, "same", None).await, Verdict::Refuse { flag: Some(_), .. }));
        // Another sender's count is their own.
        assert_eq!(st.check(&rep, UserId(2), "same", || async { None }).await, Verdict::Pass);
    }
}
