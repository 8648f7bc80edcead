//! `confab bench stranger`: N users enter the match pool's queue over D seconds (evenly spread),
//! each through its own WebSocket with 1 to 3 interests drawn from a pool of tags, accepting
//! fewer after the server's wait; each waits for `matched` and closes. Prints pairs made per
//! second (over the entering window, and the peak second), the wait from `match` sent to
//! `matched` received (p50 … max), and who was never paired within the drain.

use super::report::{Latency, new_histogram};
use super::{ConnArgs, net, prepare, run_id, users};
use clap::Args;
use fastwebsockets::OpCode;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub(crate) struct StrangerArgs {
    /// Users entering the queue.
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Seconds over which they enter.
    #[arg(long, default_value_t = 60.0)]
    over: f64,
    /// Distinct interests to draw from.
    #[arg(long, default_value_t = 40)]
    tags: usize,
    /// Longest wait for `matched` after the last user entered, in seconds.
    #[arg(long, default_value_t = 30.0)]
    drain: f64,
    #[command(flatten)]
    pub(crate) conn: ConnArgs,
}

/// What one user saw.
enum Outcome {
    /// Paired: the wait, and when (since the start).
    Paired(Duration, Duration),
    Unpaired,
    Failed(&'static str, String),
}

pub(crate) async fn run(a: &StrangerArgs) -> anyhow::Result<bool> {
    if a.users < 2 || a.tags == 0 || a.over.is_nan() || a.over <= 0.0 {
        anyhow::bail!("need at least 2 users, 1 tag and a positive --over");
    }
    let (nodes, sources) = prepare(&a.conn, a.users)?;
    let run = run_id();
    let tokens = users(&nodes, &run, a.users, &a.conn.password).await?;
    eprintln!("stranger: {} users entering over {} s…", a.users, a.over);
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(a.over + a.drain);
    let mut tasks = Vec::with_capacity(a.users);
    for (k, token) in tokens.into_iter().enumerate() {
        let (addr, source) = (nodes[k % nodes.len()], sources[k % sources.len()]);
        let at = start + Duration::from_secs_f64(a.over * k as f64 / a.users as f64);
        let n = 1 + rand::random::<u32>() as usize % 3;
        let interests: Vec<String> =
            (0..n).map(|_| format!("tag{}", rand::random::<u32>() as usize % a.tags)).collect();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let ws = match net::ws_connect(addr, source, &token).await {
                Ok(ws) => ws,
                Err(e) => return Outcome::Failed(e.kind, e.detail),
            };
            let (mut r, mut w) = net::split(ws, false);
            let frame = json!({"type": "match", "interests": interests, "fewer": true}).to_string();
            let sent = Instant::now();
            if let Err(e) = net::send_text(&mut w, frame.into_bytes()).await {
                return Outcome::Failed("send", e.to_string());
            }
            loop {
                let left = until.saturating_duration_since(Instant::now());
                let frame = match tokio::time::timeout(left, net::read(&mut r)).await {
                    Err(_) => return Outcome::Unpaired,
                    Ok(Err(e)) => return Outcome::Failed("read", e.to_string()),
                    Ok(Ok(f)) => f,
                };
                if frame.opcode == OpCode::Close {
                    return Outcome::Failed("closed", String::new());
                }
                if frame.payload.starts_with(b"{\"type\":\"matched\"") {
                    return Outcome::Paired(sent.elapsed(), start.elapsed());
                }
                if frame.payload.starts_with(b"{\"type\":\"error\"") {
                    return Outcome::Failed("refused", String::from_utf8_lossy(&frame.payload).into_owned());
                }
            }
        }));
    }
    let mut waits = new_histogram();
    let mut per_second: BTreeMap<u64, u64> = BTreeMap::new();
    let (mut paired, mut unpaired) = (0u64, 0u64);
    let mut errors: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut sample = None;
    for t in tasks {
        match t.await {
            Ok(Outcome::Paired(wait, at)) => {
                paired += 1;
                let _ = waits.record((wait.as_micros() as u64).max(1));
                *per_second.entry(at.as_secs()).or_default() += 1;
            }
            Ok(Outcome::Unpaired) => unpaired += 1,
            Ok(Outcome::Failed(kind, detail)) => {
                *errors.entry(kind).or_default() += 1;
                sample.get_or_insert(format!("{kind}: {detail}"));
            }
            Err(_) => *errors.entry("panic").or_default() += 1,
        }
    }
    let last = per_second.keys().next_back().copied().unwrap_or(0) + 1;
    let pairs = paired as f64 / 2.0;
    let rate = pairs / (last as f64).max(a.over);
    let peak = per_second.values().max().copied().unwrap_or(0) as f64 / 2.0;
    let wait = Latency::of(&waits);
    if a.conn.json {
        println!(
            "{}",
            json!({"users": a.users, "over_s": a.over, "paired": paired, "unpaired": unpaired,
                   "pairs_per_s": rate, "peak_pairs_per_s": peak, "wait": wait.json(), "errors": errors})
        );
    } else {
        println!("stranger: {} users over {} s, {} tags", a.users, a.over, a.tags);
        println!("  paired     {paired} ({pairs:.0} pairs), never paired {unpaired}, errors {errors:?}");
        println!("  matches    {rate:.1} pairs/s over the run · peak {peak:.0} pairs/s");
        println!("  wait       {}", wait.line());
        if let Some(s) = sample {
            println!("  first error: {s}");
        }
    }
    Ok(unpaired == 0 && errors.is_empty())
}
