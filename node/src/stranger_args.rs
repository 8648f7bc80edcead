//! Options of the stranger chat's match pool (`confab serve --stranger-…`), flattened into
//! `ServeArgs`.

use anyhow::bail;
use confab_actors::stranger::StrangerConfig;
use serde::Deserialize;
use std::time::Duration;

/// Match pool options.
#[derive(clap::Args, Debug, Default, Clone, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct StrangerArgs {
    /// Seconds after which someone who accepts fewer shared interests may be paired with a
    /// stranger sharing none [default: 10].
    #[arg(long, env = "CONFAB_STRANGER_WIDEN_SECS")]
    pub stranger_widen_secs: Option<f64>,
    /// Milliseconds between two rounds of the match pool [default: 200].
    #[arg(long, env = "CONFAB_STRANGER_TICK_MS")]
    pub stranger_tick_ms: Option<u64>,
    /// Seconds after both people left a stranger chat before its messages and files are
    /// deleted, unless reported [default: 86400].
    #[arg(long, env = "CONFAB_STRANGER_RETENTION_SECS")]
    pub stranger_retention_secs: Option<f64>,
    /// Seconds two people who talked are not paired again [default: 600].
    #[arg(long, env = "CONFAB_STRANGER_AVOID_SECS")]
    pub stranger_avoid_secs: Option<u64>,
    /// Times a user may enter the queue per minute [default: 30].
    #[arg(long, env = "CONFAB_STRANGER_ENTERS_PER_MINUTE")]
    pub stranger_enters_per_minute: Option<u32>,
    /// Times a user may say "next" per minute [default: 20].
    #[arg(long, env = "CONFAB_STRANGER_NEXTS_PER_MINUTE")]
    pub stranger_nexts_per_minute: Option<u32>,
    /// Seconds someone whose connection dropped while waiting keeps their place in the queue
    /// (a new connection within them is told `waiting`) [default: 20].
    #[arg(long, env = "CONFAB_STRANGER_RECONNECT_GRACE_SECS")]
    pub stranger_reconnect_grace_secs: Option<f64>,
}

macro_rules! merge_stranger {
    ($hi:expr, $lo:expr, $($f:ident),*) => { StrangerArgs { $($f: $hi.$f.clone().or($lo.$f.clone())),* } };
}

impl StrangerArgs {
    /// These options over `lower`'s (a file's).
    pub fn over(&self, lower: &StrangerArgs) -> StrangerArgs {
        merge_stranger!(
            self,
            lower,
            stranger_widen_secs,
            stranger_tick_ms,
            stranger_retention_secs,
            stranger_avoid_secs,
            stranger_enters_per_minute,
            stranger_nexts_per_minute,
            stranger_reconnect_grace_secs
        )
    }

    /// Defaults applied and values checked.
    pub fn resolve(&self) -> anyhow::Result<StrangerConfig> {
        let d = StrangerConfig::default();
        let secs = |v: Option<f64>, default: Duration, name: &str| -> anyhow::Result<Duration> {
            match v {
                Some(s) if !(s.is_finite() && (0.0..=366.0 * 86400.0).contains(&s)) => {
                    bail!("--{name}: 0 to 31622400 seconds")
                }
                Some(s) => Ok(Duration::from_secs_f64(s)),
                None => Ok(default),
            }
        };
        let tick = match self.stranger_tick_ms {
            Some(ms) if !(10..=10_000).contains(&ms) => bail!("--stranger-tick-ms: 10 to 10000"),
            Some(ms) => Duration::from_millis(ms),
            None => d.tick,
        };
        let per_minute = |v: Option<u32>, default: u32, name: &str| -> anyhow::Result<u32> {
            match v {
                Some(0) => bail!("--{name} must be at least 1"),
                Some(v) => Ok(v),
                None => Ok(default),
            }
        };
        Ok(StrangerConfig {
            widen_after: secs(self.stranger_widen_secs, d.widen_after, "stranger-widen-secs")?,
            tick,
            retention: secs(self.stranger_retention_secs, d.retention, "stranger-retention-secs")?,
            avoid: self.stranger_avoid_secs.map(Duration::from_secs).unwrap_or(d.avoid),
            enters_per_minute: per_minute(
                self.stranger_enters_per_minute,
                d.enters_per_minute,
                "stranger-enters-per-minute",
            )?,
            nexts_per_minute: per_minute(
                self.stranger_nexts_per_minute,
                d.nexts_per_minute,
                "stranger-nexts-per-minute",
            )?,
            reconnect_grace: secs(
                self.stranger_reconnect_grace_secs,
                d.reconnect_grace,
                "stranger-reconnect-grace-secs",
            )?,
            ..d
        })
    }
}
