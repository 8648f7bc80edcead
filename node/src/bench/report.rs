//! Percentiles, the server's writer metrics, process CPU, and printing.

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Histograms count microseconds, 1 µs to 10 minutes, 3 significant figures.
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Latency {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    pub(crate) fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }

    pub(crate) fn json(&self) -> Value {
        json!({"count": self.count, "p50_ms": r3(self.p50), "p90_ms": r3(self.p90), "p99_ms": r3(self.p99),
               "p999_ms": r3(self.p999), "max_ms": r3(self.max)})
    }

    /// `p50 / p90 / p99 / p99.9 / max` in ms.
    pub(crate) fn line(&self) -> String {
        if self.count == 0 {
            return "no samples".to_owned();
        }
        format!(
            "p50 {} · p90 {} · p99 {} · p99.9 {} · max {} ms  (n={})",
            f(self.p50),
            f(self.p90),
            f(self.p99),
            f(self.p999),
            f(self.max),
            self.count
        )
    }
}

fn f(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

pub(crate) fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The writer's figures in one `/metrics` scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct WriterScrape {
    pub batches: f64,
    pub items: f64,
    pub committed: f64,
    pub batch_max: f64,
    /// (upper bound in seconds, cumulative count); `+Inf` is `f64::INFINITY`.
    pub commit_buckets: Vec<(f64, f64)>,
    pub commit_sum: f64,
}

impl WriterScrape {
    pub(crate) fn parse(text: &str) -> WriterScrape {
        let mut s = WriterScrape::default();
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let Some((name, value)) = line.rsplit_once(' ') else { continue };
            let Ok(v) = value.trim().parse::<f64>() else { continue };
            match name {
                "confab_writer_batches_total" => s.batches = v,
                "confab_writer_batch_items_total" => s.items = v,
                "confab_writer_batch_max" => s.batch_max = v,
                "confab_messages_committed_total" => s.committed = v,
                "confab_writer_commit_seconds_sum" => s.commit_sum = v,
                _ => {
                    if let Some(rest) = name.strip_prefix("confab_writer_commit_seconds_bucket{le=\"") {
                        let le = rest.trim_end_matches("\"}");
                        let le = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::NAN) };
                        s.commit_buckets.push((le, v));
                    }
                }
            }
        }
        s
    }
}

/// What the writer did between two scrapes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WriterDelta {
    pub secs: f64,
    pub batches: f64,
    pub items: f64,
    pub committed: f64,
    pub batch_max: f64,
    pub commit_mean_ms: f64,
    /// Upper bucket bounds (ms) that hold the 50th and 99th percentile commit.
    pub commit_p50_le_ms: f64,
    pub commit_p99_le_ms: f64,
    /// Upper bound of the bucket that holds the slowest commit.
    pub commit_max_le_ms: f64,
}

impl WriterDelta {
    pub(crate) fn between(a: &WriterScrape, b: &WriterScrape, secs: f64) -> WriterDelta {
        let batches = b.batches - a.batches;
        let buckets: Vec<(f64, f64)> = b
            .commit_buckets
            .iter()
            .map(|&(le, n)| (le, n - a.commit_buckets.iter().find(|x| x.0 == le).map_or(0.0, |x| x.1)))
            .collect();
        let total = buckets.last().map_or(0.0, |x| x.1);
        let q = |q: f64| {
            buckets.iter().find(|&&(_, n)| total > 0.0 && n >= q * total).map_or(f64::NAN, |&(le, _)| le * 1000.0)
        };
        WriterDelta {
            secs,
            batches,
            items: b.items - a.items,
            committed: b.committed - a.committed,
            batch_max: b.batch_max,
            commit_mean_ms: if batches > 0.0 { (b.commit_sum - a.commit_sum) / batches * 1000.0 } else { f64::NAN },
            commit_p50_le_ms: q(0.50),
            commit_p99_le_ms: q(0.99),
            commit_max_le_ms: q(1.0),
        }
    }

    pub(crate) fn avg_batch(&self) -> f64 {
        if self.batches > 0.0 { self.items / self.batches } else { 0.0 }
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "window_s": r3(self.secs), "batches": self.batches, "items": self.items,
            "messages_committed": self.committed,
            "commits_per_s": r3(self.batches / self.secs), "items_per_s": r3(self.items / self.secs),
            "avg_batch": r3(self.avg_batch()), "batch_max_ever": self.batch_max,
            "commit_mean_ms": num(self.commit_mean_ms),
            "commit_p50_le_ms": num(self.commit_p50_le_ms), "commit_p99_le_ms": num(self.commit_p99_le_ms),
            "commit_max_le_ms": num(self.commit_max_le_ms),
        })
    }

    pub(crate) fn line(&self) -> String {
        format!(
            "{:.0} commits/s, {:.0} items/s, avg batch {:.1} (max ever {:.0}); commit mean {:.2} ms, p50 ≤ {} ms, p99 ≤ {} ms, max ≤ {} ms",
            self.batches / self.secs,
            self.items / self.secs,
            self.avg_batch(),
            self.batch_max,
            self.commit_mean_ms,
            self.commit_p50_le_ms,
            self.commit_p99_le_ms,
            self.commit_max_le_ms
        )
    }
}

fn num(x: f64) -> Value {
    if x.is_finite() { json!(r3(x)) } else { Value::Null }
}

/// CPU time (user + system) of a process, or of several separated by commas, in seconds, from
/// `/proc/<pid>/stat`.
pub(crate) fn cpu_seconds(pid: &str) -> Option<f64> {
    // Several processes (`--also-pid`): their sum.
    pid.split(',').map(|p| parse_stat_cpu(&std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?)).sum()
}

/// utime + stime of a `/proc/<pid>/stat` line, at USER_HZ = 100 (fixed in Linux's ABI).
pub(crate) fn parse_stat_cpu(stat: &str) -> Option<f64> {
    // The command name may contain spaces: fields count from after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) … utime is field 14 of the line, so index 11 here.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// VmRSS of a process in KiB.
pub(crate) fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_in_ms() {
        let mut h = new_histogram();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap(); // 1 ms .. 1000 ms
        }
        let l = Latency::of(&h);
        assert_eq!(l.count, 1000);
        assert!((l.p50 - 500.0).abs() < 1.0, "{l:?}");
        assert!((l.p90 - 900.0).abs() < 1.0, "{l:?}");
        assert!((l.p99 - 990.0).abs() < 1.0, "{l:?}");
        assert!((l.max - 1000.0).abs() < 1.0, "{l:?}");
        assert_eq!(Latency::of(&new_histogram()), Latency::default());
        assert!(l.line().contains("p99 990"));
    }

    #[test]
    fn writer_metrics_delta() {
        let a = WriterScrape::parse(
            "# HELP x\nconfab_writer_batches_total 10\nconfab_writer_batch_items_total 100\n\
             confab_writer_commit_seconds_bucket{le=\"0.001\"} 5\nconfab_writer_commit_seconds_bucket{le=\"0.01\"} 10\n\
             confab_writer_commit_seconds_bucket{le=\"+Inf\"} 10\nconfab_writer_commit_seconds_sum 0.02\n",
        );
        assert_eq!(a.batches, 10.0);
        assert_eq!(a.commit_buckets.len(), 3);
        let b = WriterScrape::parse(
            "confab_writer_batches_total 110\nconfab_writer_batch_items_total 2100\nconfab_writer_batch_max 40\n\
             confab_writer_commit_seconds_bucket{le=\"0.001\"} 55\nconfab_writer_commit_seconds_bucket{le=\"0.01\"} 109\n\
             confab_writer_commit_seconds_bucket{le=\"+Inf\"} 110\nconfab_writer_commit_seconds_sum 0.22\n",
        );
        let d = WriterDelta::between(&a, &b, 2.0);
        assert_eq!(d.batches, 100.0);
        assert_eq!(d.avg_batch(), 20.0);
        assert!((d.commit_mean_ms - 2.0).abs() < 1e-9);
        assert_eq!(d.commit_p50_le_ms, 1.0);
        assert_eq!(d.commit_p99_le_ms, 10.0);
    }

    #[test]
    fn proc_stat() {
        let line = "1234 (my prog) S 1 1234 1234 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 4 0 100 0 0";
        assert_eq!(parse_stat_cpu(line), Some(3.0));
    }
}
