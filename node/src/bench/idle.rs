//! `confab bench idle`: open C authenticated WebSocket connections (after `hello`; with `--join`,
//! also joined to one room), hold them, and report the server's resident memory per connection.

use super::report::{r3, rss_kib};
use super::{ConnArgs, net, prepare, rest, run_id, users};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// A held connection: its socket halves, kept so the server keeps its session.
enum Held {
    Plain(#[allow(dead_code)] fastwebsockets::WebSocket<tokio::net::TcpStream>),
    Joined(#[allow(dead_code)] net::WsRead, #[allow(dead_code)] net::WsWrite),
}

pub(crate) async fn run(
    conn: &ConnArgs,
    connections: usize,
    hold: f64,
    n_users: usize,
    join: bool,
) -> anyhow::Result<bool> {
    let (nodes, sources) = prepare(conn, connections)?;
    let run = run_id();
    let tokens = users(&nodes, &run, n_users.max(1), &conn.password).await?;
    let room =
        if join { Some(rest::create_room(nodes[0], &tokens[0], &format!("bench-{run}-idle")).await?) } else { None };
    let pid = conn.server_pid.map(|p| p.to_string());
    // Let the registrations' memory settle before the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = pid.as_deref().and_then(rss_kib);
    let bench_before = rss_kib("self");

    eprintln!("idle: opening {connections} connections…");
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(conn.connect_concurrency.max(1)));
    let mut tasks = Vec::with_capacity(connections);
    for k in 0..connections {
        let (addr, source, token) =
            (nodes[k % nodes.len()], sources[k % sources.len()], tokens[k % tokens.len()].clone());
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await;
            let open = async {
                let ws = net::ws_connect(addr, source, &token).await?;
                match room {
                    None => Ok(Held::Plain(ws)),
                    Some(room) => {
                        let (mut r, mut w) = net::split(ws, false);
                        net::join(&mut r, &mut w, room).await?;
                        Ok(Held::Joined(r, w))
                    }
                }
            };
            tokio::time::timeout(Duration::from_secs(60), open)
                .await
                .unwrap_or_else(|_| Err(net::ConnectError { kind: "timeout", detail: "setup took over 60 s".into() }))
        }));
    }
    let mut held = Vec::with_capacity(connections);
    let mut errors: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut sample = None;
    for t in tasks {
        match t.await {
            Ok(Ok(h)) => held.push(h),
            Ok(Err(e)) => {
                *errors.entry(e.kind).or_default() += 1;
                sample.get_or_insert(format!("{}: {}", e.kind, e.detail));
            }
            Err(_) => *errors.entry("panic").or_default() += 1,
        }
    }
    let setup = started.elapsed().as_secs_f64();
    eprintln!("  {} open in {setup:.1} s; holding {hold} s", held.len());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_open = pid.as_deref().and_then(rss_kib);
    let bench_open = rss_kib("self");
    tokio::time::sleep(Duration::from_secs_f64(hold)).await;
    let rss_end = pid.as_deref().and_then(rss_kib);
    let metrics_connections = match net::http(nodes[0], "GET", "/metrics", None, None).await {
        Ok((200, text)) => {
            text.lines().find_map(|l| l.strip_prefix("confab_connections ")).and_then(|v| v.trim().parse::<f64>().ok())
        }
        _ => None,
    };
    let opened = held.len();
    let per_conn = |after: Option<u64>| match (rss_before, after) {
        (Some(b), Some(a)) if opened > 0 => Some((a as f64 - b as f64) / opened as f64),
        _ => None,
    };
    let bench_per_conn = match (bench_before, bench_open) {
        (Some(b), Some(a)) if opened > 0 => Some((a as f64 - b as f64) / opened as f64),
        _ => None,
    };
    if conn.json {
        let v = json!({
            "kind": "idle", "connections": connections, "opened": opened, "joined_one_room": join,
            "connect_errors": errors, "connect_error_sample": sample, "setup_s": r3(setup),
            "server_connections_metric": metrics_connections,
            "server_rss_kib_before": rss_before, "server_rss_kib_open": rss_open, "server_rss_kib_end_of_hold": rss_end,
            "server_kib_per_connection": per_conn(rss_open).map(r3),
            "server_kib_per_connection_end_of_hold": per_conn(rss_end).map(r3),
            "bench_rss_kib_before": bench_before, "bench_rss_kib_open": bench_open,
            "bench_kib_per_connection": bench_per_conn.map(r3),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("confab bench idle");
        let row = |k: &str, v: String| println!("  {k:<24} {v}");
        row(
            "connections",
            format!(
                "{opened}/{connections} open in {setup:.1} s ({}){}",
                if join { "all joined to one room" } else { "authenticated, no room joined" },
                if errors.is_empty() {
                    String::new()
                } else {
                    format!(", errors {errors:?} (e.g. {})", sample.as_deref().unwrap_or(""))
                }
            ),
        );
        if let Some(m) = metrics_connections {
            row("server says", format!("confab_connections {m}"));
        }
        let kib = |x: Option<u64>| x.map_or("n/a".to_owned(), |k| format!("{k} KiB"));
        row(
            "server VmRSS",
            format!("before {} · all open {} · end of hold {}", kib(rss_before), kib(rss_open), kib(rss_end)),
        );
        let per = |x: Option<f64>| x.map_or("n/a (give --server-pid)".to_owned(), |k| format!("{k:.2} KiB"));
        row("server per connection", format!("{} (end of hold: {})", per(per_conn(rss_open)), per(per_conn(rss_end))));
        row("bench per connection", per(bench_per_conn));
    }
    drop(held);
    Ok(errors.is_empty())
}
