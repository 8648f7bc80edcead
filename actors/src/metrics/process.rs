//! The standard `process_*` metrics of Prometheus's client libraries, read from `/proc/self` at
//! each scrape (Linux; elsewhere nothing is rendered): start time (a restarted node shows a new
//! one), CPU seconds, resident and virtual memory, open and allowed file descriptors.

use std::fmt::Write as _;

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on every Linux ABI).
const TICKS_PER_SECOND: f64 = 100.0;
/// Bytes per page of `/proc/<pid>/stat`'s resident set size.
const PAGE_BYTES: u64 = 4096;

pub(super) fn render(out: &mut String) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return };
    // The fields after the parenthesised command name (which may hold spaces): state is field 3.
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else { return };
    let fields: Vec<&str> = after.split(' ').collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let (utime, stime, start_ticks, vsize, rss_pages) = (field(14), field(15), field(22), field(23), field(24));
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok()))
        .unwrap_or(0);
    let open_fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0);
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<u64>().ok()
        })
        .unwrap_or(0);
    let mut metric = |name: &str, help: &str, kind: &str, value: f64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    };
    metric(
        "process_cpu_seconds_total",
        "CPU time the process used, user and system.",
        "counter",
        (utime + stime) as f64 / TICKS_PER_SECOND,
    );
    metric(
        "process_start_time_seconds",
        "When the process started, in seconds since the Unix epoch.",
        "gauge",
        boot as f64 + start_ticks as f64 / TICKS_PER_SECOND,
    );
    metric("process_resident_memory_bytes", "Resident memory.", "gauge", (rss_pages * PAGE_BYTES) as f64);
    metric("process_virtual_memory_bytes", "Virtual memory.", "gauge", vsize as f64);
    metric("process_open_fds", "Open file descriptors.", "gauge", open_fds as f64);
    metric("process_max_fds", "The limit on open file descriptors.", "gauge", max_fds as f64);
}
