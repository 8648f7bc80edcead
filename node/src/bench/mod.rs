//! `confab bench`: a load generator that is a real client of the public protocol (REST for users
//! and rooms, WebSocket for everything else), pointed at one or more nodes.
//!
//! - `fanout`: R rooms × M member connections, S senders per room at X msg/s each, for D seconds,
//!   then a drain; reports offered/acked/delivered rates, end-to-end and ack latency, loss,
//!   duplicates and order. `--ramp` raises the rate until the p99 bound or delivery fails.
//! - `hot-room`: the same with one room (2000 members, 1 sender by default).
//! - `idle`: C authenticated connections held open; with `--server-pid`, the server's RSS per
//!   connection.
//! - `upload`: N concurrent uploads of S MB while C users chat: throughput, the server's RSS
//!   before and at its peak, chat latency before and during (`upload.rs`).
//! - `reconnect-storm`: every client of a loaded node drops at once and resumes with `since`
//!   within a second: time until all resumed, live latency meanwhile, loss, history reads
//!   (`storm.rs`, clients in `resume.rs`).
//! - `soak`: a long run at a steady load while members connect, leave and resume all the time;
//!   the server's memory and descriptors sampled, their slope reported (`soak.rs`).
//! - `stranger`: N users enter the match pool's queue over D seconds (10,000 over a minute by
//!   default): pairs made per second and the wait to be paired (`stranger.rs`).
//! - `search`: full-text search on a store it fills itself (1,000,000 messages by default), not
//!   through a node: query p50/p99 and the index's size (`search.rs`).
//!
//! Receivers decode only what they measure: the `"body":"bench|…` of a message frame, scanned
//! without a JSON parser. Times are Unix nanoseconds from one monotonic clock in this process.

mod body;
mod engine;
mod idle;
pub(crate) mod net;
mod placement;
mod report;
mod rest;
mod resume;
mod search;
pub mod soak;
mod storm;
mod stranger;
mod track;
mod upload;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use engine::{RunReport, RunSpec};
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// `confab bench …`
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    cmd: BenchCmd,
}

#[derive(Subcommand, Debug)]
enum BenchCmd {
    /// R rooms × M members, S senders per room at X msg/s each.
    Fanout(FanoutArgs),
    /// One room with many members (fanout with R = 1).
    HotRoom(HotRoomArgs),
    /// Hold C authenticated connections; report the server's memory per connection.
    Idle(IdleArgs),
    /// Every client drops at once and reconnects within a second, resuming with `since`.
    ReconnectStorm(storm::StormArgs),
    /// A long steady load with members connecting, leaving and resuming; server memory and fds.
    Soak(soak::SoakArgs),
    /// Fill a new database with generated messages, then time search queries on it.
    Search(search::SearchArgs),
    /// N concurrent uploads of S MB while users chat: throughput, server memory, chat latency.
    Upload(upload::UploadArgs),
    /// N users enter the stranger chat's queue over D seconds: pairs per second, the wait.
    Stranger(stranger::StrangerArgs),
}

/// Where and how to connect.
#[derive(Args, Debug, Clone)]
struct ConnArgs {
    /// A node's HTTP address; repeat for several (connections are spread round-robin).
    #[arg(long = "node", default_value = "127.0.0.1:8080")]
    nodes: Vec<String>,
    /// Runtime worker threads (default: the CPUs this process may run on).
    #[arg(long)]
    threads: Option<usize>,
    /// Bind client sockets to this many loopback sources (127.0.0.2, …); by default none up to
    /// 5,000 connections and one per 2,500 above that.
    #[arg(long)]
    source_addrs: Option<usize>,
    /// Connections being set up at once.
    #[arg(long, default_value_t = 128)]
    connect_concurrency: usize,
    /// Password of the benchmark users.
    #[arg(long, default_value = "bench-password")]
    password: String,
    /// The server's process id: report its CPU (and, for idle, its memory).
    #[arg(long)]
    server_pid: Option<u32>,
    /// More server processes whose CPU adds to `--server-pid`'s (the other nodes of a cluster);
    /// repeat for each.
    #[arg(long)]
    also_pid: Vec<u32>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Member sockets ask the kernel to delay their ACKs (`TCP_QUICKACK` off after each read)
    /// instead of acknowledging every segment at once, the kernel's default for a socket that
    /// only receives. Cheaper for the generator on loopback; see `net::LazyAck`.
    #[arg(long)]
    lazy_ack: bool,
}

/// How long and how hard to send.
#[derive(Args, Debug, Clone)]
struct LoadArgs {
    /// Seconds of sending (per step with --ramp).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Longest wait after sending for outstanding acks and deliveries, in seconds.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    /// Users to spread the connections over (default: one per sender plus 4 for receivers).
    #[arg(long)]
    users: Option<usize>,
    /// Pad message bodies to this many bytes.
    #[arg(long, default_value_t = 0)]
    pad: usize,
    /// Raise the rate step by step until the p99 bound or delivery fails.
    #[arg(long)]
    ramp: bool,
    /// Rate multiplier between ramp steps.
    #[arg(long, default_value_t = 1.5)]
    ramp_factor: f64,
    /// The end-to-end p99 a ramp step must stay within.
    #[arg(long, default_value_t = 50.0)]
    p99_bound_ms: f64,
    /// The most ramp steps.
    #[arg(long, default_value_t = 12)]
    max_steps: usize,
    /// Which node each room's members connect to: round-robin (`spread`), the room's owner
    /// (`owner`: every delivery local) or the other nodes (`remote`: every send and delivery
    /// crosses a node-to-node link).
    #[arg(long, value_enum, default_value_t)]
    placement: placement::Placement,
}

#[derive(Args, Debug)]
struct FanoutArgs {
    #[arg(long, default_value_t = 100)]
    rooms: usize,
    /// Member connections per room (senders included).
    #[arg(long, default_value_t = 50)]
    members: usize,
    /// Senders per room.
    #[arg(long, default_value_t = 2)]
    senders: usize,
    /// Messages per second, per sender.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    #[command(flatten)]
    load: LoadArgs,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Args, Debug)]
struct HotRoomArgs {
    /// Member connections (senders included).
    #[arg(long, default_value_t = 2000)]
    members: usize,
    #[arg(long, default_value_t = 1)]
    senders: usize,
    /// Messages per second, per sender.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    #[command(flatten)]
    load: LoadArgs,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Args, Debug)]
struct IdleArgs {
    /// Connections to open.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Seconds to hold them once all are open.
    #[arg(long, default_value_t = 10.0)]
    hold: f64,
    /// Users to spread the connections over.
    #[arg(long, default_value_t = 4)]
    users: usize,
    /// Also join every connection to one (new) room.
    #[arg(long)]
    join: bool,
    #[command(flatten)]
    conn: ConnArgs,
}

/// What every run shares: nodes, users (tokens), client sockets.
pub(crate) struct Setup {
    pub nodes: Vec<SocketAddr>,
    pub tokens: Vec<String>,
    /// `--users` was given: spread all connections over all users.
    pub explicit_users: bool,
    pub connect_concurrency: usize,
    pub sources: Vec<Option<IpAddr>>,
    pub server_pid: Option<String>,
    pub run_id: String,
    /// Member sockets ask for delayed ACKs (`--lazy-ack`).
    pub lazy_ack: bool,
    /// Which node each room's members connect to (`--placement`).
    pub placement: placement::Placement,
}

/// Runs `confab bench …`.
pub fn main(args: BenchArgs) -> std::process::ExitCode {
    let threads = match &args.cmd {
        BenchCmd::Fanout(a) => a.conn.threads,
        BenchCmd::HotRoom(a) => a.conn.threads,
        BenchCmd::Idle(a) => a.conn.threads,
        BenchCmd::ReconnectStorm(a) => a.threads(),
        BenchCmd::Soak(a) => a.threads(),
        BenchCmd::Search(_) => None,
        BenchCmd::Upload(a) => a.conn.threads,
        BenchCmd::Stranger(a) => a.conn.threads,
    };
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
    }
    .expect("tokio runtime");
    match runtime.block_on(run(args)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("confab bench: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(args: BenchArgs) -> anyhow::Result<bool> {
    match args.cmd {
        BenchCmd::Fanout(a) => load(a.rooms, a.members, a.senders, a.rate, &a.load, &a.conn, "fanout").await,
        BenchCmd::HotRoom(a) => load(1, a.members, a.senders, a.rate, &a.load, &a.conn, "hot-room").await,
        BenchCmd::Idle(a) => idle::run(&a.conn, a.connections, a.hold, a.users, a.join).await,
        BenchCmd::ReconnectStorm(a) => storm::run(&a).await,
        BenchCmd::Soak(a) => soak::run(&a).await,
        BenchCmd::Search(a) => search::run(&a).await,
        BenchCmd::Upload(a) => upload::run(&a).await,
        BenchCmd::Stranger(a) => stranger::run(&a).await,
    }
}

/// Resolves the nodes, raises the fd limit and picks client source addresses.
fn prepare(conn: &ConnArgs, connections: usize) -> anyhow::Result<(Vec<SocketAddr>, Vec<Option<IpAddr>>)> {
    let mut nodes = Vec::new();
    for n in &conn.nodes {
        nodes.push(n.to_socket_addrs().with_context(|| format!("--node {n}"))?.next().context("no address")?);
    }
    let limit = rlimit::increase_nofile_limit(u64::MAX).context("raising the open-file limit")?;
    let needed = connections as u64 + 64;
    if limit < needed {
        eprintln!(
            "warning: the open-file limit is {limit}; {connections} connections need about {needed} (raise `ulimit -Hn`)"
        );
    }
    // The kernel picks a connection's local port by probing the ephemeral range for a free
    // one; with 20,000 connections from one address each connect probed so long that the
    // generator spent two thirds of a reconnect storm there and was the storm's limit.
    let n_sources = conn.source_addrs.unwrap_or(if connections > 5_000 { connections.div_ceil(2_500) } else { 0 });
    let sources = if n_sources == 0 {
        vec![None]
    } else {
        if nodes.iter().any(|a| !a.ip().is_loopback()) {
            bail!("several source addresses work only against loopback nodes");
        }
        (0..n_sources).map(|i| Some(IpAddr::V4(Ipv4Addr::new(127, 0, (i / 250) as u8, (2 + i % 250) as u8)))).collect()
    };
    Ok((nodes, sources))
}

/// A short id that makes this run's user and room names unique.
fn run_id() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let r: u16 = rand::random();
    format!("{}{:x}", radix36(secs % 60_466_176), r % 4096)
}

fn radix36(mut n: u64) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = Vec::new();
    loop {
        s.push(digits[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    s.reverse();
    String::from_utf8(s).expect("ascii")
}

/// Registers (or logs in) `n` users named `b<run>_<i>`, a few at a time (hashing is slow).
async fn users(nodes: &[SocketAddr], run: &str, n: usize, password: &str) -> anyhow::Result<Vec<String>> {
    let started = std::time::Instant::now();
    eprintln!("registering {n} users…");
    let mut tokens = vec![String::new(); n];
    let mut set = tokio::task::JoinSet::new();
    let mut next = 0;
    let mut done = 0;
    while done < n {
        while next < n && set.len() < 8 {
            let (addr, name, pw) = (nodes[next % nodes.len()], format!("b{run}_{next}"), password.to_owned());
            let i = next;
            set.spawn(async move { (i, rest::user_token(addr, &name, &pw).await) });
            next += 1;
        }
        let (i, token) = set.join_next().await.context("join set")??;
        tokens[i] = token?;
        done += 1;
    }
    eprintln!("  {n} users in {:.1} s", started.elapsed().as_secs_f64());
    Ok(tokens)
}

#[allow(clippy::too_many_arguments)]
async fn load(
    rooms: usize,
    members: usize,
    senders: usize,
    rate: f64,
    load: &LoadArgs,
    conn: &ConnArgs,
    kind: &str,
) -> anyhow::Result<bool> {
    if rooms == 0 || members == 0 || senders == 0 || senders > members {
        bail!("need rooms ≥ 1, members ≥ 1 and 1 ≤ senders ≤ members");
    }
    if rate.is_nan() || rate <= 0.0 || load.duration.is_nan() || load.duration <= 0.0 {
        bail!("--rate and --duration must be positive");
    }
    let (nodes, sources) = prepare(conn, rooms * members)?;
    let run = run_id();
    let n_users = load.users.unwrap_or(rooms * senders + 4).max(1);
    let tokens = users(&nodes, &run, n_users, &conn.password).await?;
    let setup = Setup {
        nodes,
        tokens,
        explicit_users: load.users.is_some(),
        connect_concurrency: conn.connect_concurrency.max(1),
        sources,
        server_pid: conn.server_pid.map(|p| {
            std::iter::once(p).chain(conn.also_pid.iter().copied()).map(|p| p.to_string()).collect::<Vec<_>>().join(",")
        }),
        run_id: run,
        lazy_ack: conn.lazy_ack,
        placement: load.placement,
    };
    let spec = |step: usize, rate: f64| RunSpec {
        rooms,
        members,
        senders,
        rate,
        duration: Duration::from_secs_f64(load.duration),
        drain: Duration::from_secs_f64(load.drain),
        pad: load.pad,
        label: format!("bench-{}-s{step}", setup.run_id),
    };
    if !load.ramp {
        eprintln!("{kind}: connecting {} member connections…", rooms * members);
        let r = engine::run(&setup, spec(0, rate)).await?;
        if conn.json {
            let mut v = r.json();
            v["kind"] = json!(kind);
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            println!("confab bench {kind}");
            r.print();
        }
        return Ok(r.connected == r.connections);
    }

    let mut steps: Vec<RunReport> = Vec::new();
    let mut best: Option<usize> = None;
    let mut rate = rate;
    for step in 0..load.max_steps.max(1) {
        eprintln!("{kind} ramp step {step}: {rate:.2} msg/s per sender…");
        let r = engine::run(&setup, spec(step, rate)).await?;
        let ok = r.sustained(load.p99_bound_ms);
        if !conn.json {
            println!("── step {step}: {}", if ok { "sustained" } else { "NOT sustained" });
            r.print();
        }
        steps.push(r);
        if !ok {
            break;
        }
        best = Some(step);
        rate *= load.ramp_factor;
    }
    if conn.json {
        let v = json!({
            "kind": kind, "ramp": true, "p99_bound_ms": load.p99_bound_ms, "ramp_factor": load.ramp_factor,
            "highest_sustained_step": best,
            "highest_sustained": best.map(|b| steps[b].json()),
            "steps": steps.iter().map(|s| { let mut v = s.json(); v["sustained"] = json!(s.sustained(load.p99_bound_ms)); v }).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("\nconfab bench {kind} --ramp (p99 bound {} ms):", load.p99_bound_ms);
        println!(
            "  {:>4} {:>10} {:>12} {:>14} {:>9} {:>9} {:>7} {:>7} {:>6}",
            "step", "msg/s/snd", "offered/s", "deliveries/s", "p50 ms", "p99 ms", "lost", "bench%", "ok"
        );
        for (i, s) in steps.iter().enumerate() {
            println!(
                "  {:>4} {:>10.2} {:>12.0} {:>14.0} {:>9.2} {:>9.2} {:>7} {:>7} {:>6}",
                i,
                s.spec.rate,
                s.offered_rate,
                s.delivery_rate,
                s.e2e.p50,
                s.e2e.p99,
                s.lost,
                s.bench_cpu_pct.map_or("-".into(), |p| format!("{p:.0}")),
                if s.sustained(load.p99_bound_ms) { "yes" } else { "no" }
            );
        }
        match best {
            Some(b) => println!(
                "  highest sustained: step {b}, {:.2} msg/s per sender, {:.0} msgs/s offered, {:.0} deliveries/s, p99 {:.2} ms",
                steps[b].spec.rate, steps[b].offered_rate, steps[b].delivery_rate, steps[b].e2e.p99
            ),
            None => println!("  no step was sustained"),
        }
    }
    Ok(best.is_some())
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_ids_fit_usernames() {
        let id = super::run_id();
        let name = format!("b{id}_99999");
        assert!(name.len() <= 32 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'), "{name}");
        assert_eq!(super::radix36(0), "0");
        assert_eq!(super::radix36(35), "z");
        assert_eq!(super::radix36(36), "10");
    }
}
