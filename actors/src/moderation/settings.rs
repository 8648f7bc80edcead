//! Moderation settings: pre-moderation per room and the automatic flags, per room and site-wide
//! (a flag a room sets overrides the site's; all off by default), with the node's cache of them.
//!
//! The cache holds every stored setting (only rooms with settings of their own have a row), read
//! at most once per `SETTINGS_CACHE` and only while someone sends, so a change made on any node
//! holds on every node within about that time; a change made on this node holds at once. A room's
//! sequencer never waits for a periodic reread (it runs in the background, the last settings
//! apply meanwhile); it waits only when nothing was read yet or this node changed them.

use crate::store::Store;
use confab_schemas::RoomId;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// How long a node trusts what it read of the settings.
pub const SETTINGS_CACHE: Duration = Duration::from_secs(1);

/// Beyond `messages` in `seconds`: muted in the room for `mute_minutes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flood {
    pub messages: u32,
    pub seconds: u32,
    pub mute_minutes: u32,
}

/// What a banned word does to its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WordAction {
    /// Refused with `banned_word`.
    Refuse,
    /// Held for a moderator.
    Hold,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BannedWords {
    pub words: Vec<String>,
    pub action: WordAction,
}

/// A message with a link from an account younger than this is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpam {
    pub min_account_age_minutes: u32,
}

/// The `count`-th identical body within `seconds` is refused with `repeated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repeats {
    pub count: u32,
    pub seconds: u32,
}

/// The automatic flags; an absent one is off (or, in a room, the site's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flags {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flood: Option<Flood>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub banned_words: Option<BannedWords>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_spam: Option<LinkSpam>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<Repeats>,
}

/// The longest window or mute a flag takes: a day (in seconds or minutes).
const MAX_SECONDS: u32 = 24 * 3600;
const MAX_MINUTES: u32 = 30 * 24 * 60;
/// At most this many banned words of at most `MAX_WORD` characters.
const MAX_WORDS: usize = 500;
const MAX_WORD: usize = 100;

impl Flags {
    /// The flags of a room: each one it sets, else the site's.
    pub fn over(&self, site: &Flags) -> Flags {
        Flags {
            flood: self.flood.or(site.flood),
            banned_words: self.banned_words.clone().or_else(|| site.banned_words.clone()),
            link_spam: self.link_spam.or(site.link_spam),
            repeats: self.repeats.or(site.repeats),
        }
    }

    pub fn any(&self) -> bool {
        self.flood.is_some() || self.banned_words.is_some() || self.link_spam.is_some() || self.repeats.is_some()
    }

    /// Checks the numbers and words; the message says what is wrong.
    pub fn validate(&mut self) -> Result<(), String> {
        if let Some(f) = self.flood
            && (f.messages == 0
                || !(1..=MAX_SECONDS).contains(&f.seconds)
                || !(1..=MAX_MINUTES).contains(&f.mute_minutes))
        {
            return Err(format!("flood: messages from 1, seconds 1 to {MAX_SECONDS}, mute_minutes 1 to {MAX_MINUTES}"));
        }
        if let Some(r) = self.repeats
            && (r.count < 2 || !(1..=MAX_SECONDS).contains(&r.seconds))
        {
            return Err(format!("repeats: count from 2, seconds 1 to {MAX_SECONDS}"));
        }
        if let Some(l) = self.link_spam
            && l.min_account_age_minutes > MAX_MINUTES
        {
            return Err(format!("link_spam: min_account_age_minutes 0 to {MAX_MINUTES}"));
        }
        if let Some(w) = &mut self.banned_words {
            w.words = w.words.iter().map(|w| w.trim().to_lowercase()).filter(|w| !w.is_empty()).collect();
            if w.words.len() > MAX_WORDS || w.words.iter().any(|w| w.chars().count() > MAX_WORD || w.contains('\0')) {
                return Err(format!("banned_words: at most {MAX_WORDS} words of at most {MAX_WORD} characters"));
            }
        }
        Ok(())
    }

    /// The stored form; an unreadable one is all off.
    pub fn parse(json: &str) -> Flags {
        serde_json::from_str(json).unwrap_or_default()
    }
}

/// What a room's moderation is now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effective {
    pub premod: bool,
    pub flags: Flags,
}

/// Room id (0: the site) → premod and flags.
type Known = HashMap<i64, (bool, Flags)>;

#[derive(Debug, Default)]
pub(crate) struct SettingsCache {
    /// Room id (0: the site) → premod and flags, and when that was read.
    known: RwLock<(Known, Option<Instant>)>,
    reread: tokio::sync::Mutex<()>,
    /// A background reread is under way.
    rereading: AtomicBool,
}

impl SettingsCache {
    fn fresh(&self) -> bool {
        self.known.read().unwrap_or_else(|e| e.into_inner()).1.is_some_and(|t| t.elapsed() < SETTINGS_CACHE)
    }

    /// Reads the settings again when what is known is older than `SETTINGS_CACHE`.
    pub(crate) async fn refresh(&self, store: &Store) {
        if self.fresh() {
            return;
        }
        let _one = self.reread.lock().await;
        if self.fresh() {
            return;
        }
        let read = store.all_moderation_settings().await;
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        match read {
            Ok(rows) => known.0 = rows.into_iter().map(|s| (s.room, (s.premod, Flags::parse(&s.flags)))).collect(),
            Err(e) => tracing::warn!(err = %e, "reading the moderation settings failed; keeping the last ones"),
        }
        known.1 = Some(Instant::now());
    }

    /// Makes sure the settings are known for a send: waits for a read when there is nothing (or
    /// only what this node changed since) to go by, else starts a background reread when what
    /// is known is stale.
    pub(crate) async fn ensure(&self, ctx: &Arc<crate::ctx::Ctx>) {
        if self.fresh() {
            return;
        }
        let known = self.known.read().unwrap_or_else(|e| e.into_inner()).1.is_some();
        if !known {
            return self.refresh(&ctx.store).await;
        }
        if !self.rereading.swap(true, Ordering::AcqRel) {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                ctx.mod_settings.refresh(&ctx.store).await;
                ctx.mod_settings.rereading.store(false, Ordering::Release);
            });
        }
    }

    /// Read again at the next send (a change made on this node).
    pub(crate) fn invalidate(&self) {
        self.known.write().unwrap_or_else(|e| e.into_inner()).1 = None;
    }

    /// `room`'s moderation as last read.
    pub(crate) fn effective(&self, room: RoomId) -> Effective {
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        let site = known.0.get(&0).map(|(_, f)| f.clone()).unwrap_or_default();
        match known.0.get(&room.0) {
            Some((premod, flags)) => Effective { premod: *premod, flags: flags.over(&site) },
            None => Effective { premod: false, flags: site },
        }
    }
}
