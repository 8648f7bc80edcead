//! Durability and lifecycle of real node processes: an ack means durable even across SIGKILL,
//! and SIGTERM drains (clients get a reconnect hint) and exits 0.

use confab_tests::process::NodeProcess;
use confab_tests::{Api, TestDb, Ws, unique};
use serde_json::json;
use std::collections::HashMap;

const BIN: &str = env!("CARGO_BIN_EXE_confab-test-node");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_messages_survive_kill_9() {
    let db = TestDb::create().await;
    // SQLite with its default durability (fsync on every commit).
    let mut node = NodeProcess::spawn(BIN, db.dir.path(), &db.url, &[]).await;
    let api = Api::register(&node.base, &unique("dur")).await;
    let room = api.room_id("general").await;
    const N: usize = 200;
    let acked = confab_tests::load::send_reliably(&api, &node.ws_url, room, "k", N, 32).await;
    let acks: HashMap<u64, String> = acked
        .iter()
        .map(|(cid, ack)| (ack["seq"].as_u64().unwrap(), format!("k #{}", cid.trim_start_matches("k-"))))
        .collect();
    assert_eq!(acks.len(), N);
    // Kill the instant the last ack arrived: nothing gets a chance to flush on the way out.
    node.kill9().await;

    let node = NodeProcess::spawn(BIN, db.dir.path(), &db.url, &[]).await;
    let api = Api { base: node.base.clone(), ..api };
    let (status, page) = api.get(&format!("/api/rooms/{room}/messages?after=0&limit=100")).await;
    assert_eq!(status, 200);
    let (_, page2) = api.get(&format!("/api/rooms/{room}/messages?after=100&limit=100")).await;
    let stored: Vec<_> =
        page["messages"].as_array().unwrap().iter().chain(page2["messages"].as_array().unwrap()).cloned().collect();
    assert_eq!(stored.len(), N);
    for m in &stored {
        let seq = m["seq"].as_u64().unwrap();
        assert_eq!(Some(m["body"].as_str().unwrap()), acks.get(&seq).map(String::as_str), "seq {seq}");
    }
    // The sequence continues after the restart.
    let mut ws = api.ws(&node.ws_url).await;
    ws.join(room, Some(N as u64)).await;
    ws.send(json!({"type": "send", "room": room, "cid": "after-restart", "body": "next"})).await;
    assert_eq!(ws.recv_type("ack").await["seq"], N as u64 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_tells_clients_to_reconnect_and_exits_zero() {
    let db = TestDb::create().await;
    let mut node = NodeProcess::spawn(BIN, db.dir.path(), &db.url, &[]).await;
    let api = Api::register(&node.base, &unique("term")).await;
    let room = api.room_id("general").await;
    let mut ws: Ws = api.ws(&node.ws_url).await;
    ws.join(room, None).await;
    ws.send(json!({"type": "send", "room": room, "cid": "last", "body": "before shutdown"})).await;
    let ack = ws.recv_type("ack").await;
    let code = node.terminate().await;
    let frames = ws.until_closed().await;
    assert!(
        frames.iter().any(|f| f["type"] == "reconnect" && f["reason"] == "shutdown"),
        "a reconnect hint before the close: {frames:?}"
    );
    assert_eq!(code, Some(0), "exit code");
    let node = NodeProcess::spawn(BIN, db.dir.path(), &db.url, &[]).await;
    let api = Api { base: node.base.clone(), ..api };
    let (_, page) = api.get(&format!("/api/rooms/{room}/messages")).await;
    assert_eq!(page["messages"][0]["seq"], ack["seq"]);
}

/// The nice value of each thread of process `pid` named `name` (`comm`).
fn nice_of_threads(pid: u32, name: &str) -> Vec<i32> {
    let mut nices = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("list threads").flatten() {
        let Ok(comm) = std::fs::read_to_string(task.path().join("comm")) else { continue };
        if comm.trim_end() != name {
            continue;
        }
        // A thread may end between the listing and the read.
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        // Fields after the parenthesised name: state is field 3, nice is field 19.
        let after = &stat[stat.rfind(')').expect("comm end") + 2..];
        nices.push(after.split(' ').nth(16).expect("nice field").parse().expect("nice value"));
    }
    nices
}

/// True when this process may lower nice values (CAP_SYS_NICE in its effective set).
fn may_raise_priority() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let caps = status.lines().find_map(|l| l.strip_prefix("CapEff:")).expect("CapEff");
    u64::from_str_radix(caps.trim(), 16).expect("hex") & (1 << 23) != 0
}

/// Starts a node (through `wrapper`, see `NodeProcess::spawn_via`) with `flags`, sends a message
/// through both commit threads and checks that they run at nice value `commit`.
async fn node_with_commit_threads_at(db: &TestDb, wrapper: &[&str], flags: &[&str], commit: i32) -> (NodeProcess, u32) {
    let node = NodeProcess::spawn_via(wrapper, BIN, db.dir.path(), &db.url, flags).await;
    let api = Api::register(&node.base, &unique("nice")).await;
    let room = api.room_id("general").await;
    confab_tests::load::send_reliably(&api, &node.ws_url, room, "n", 1, 1).await;
    let pid = node.child.id().expect("running");
    assert_eq!(nice_of_threads(pid, "writer-commit"), vec![commit], "commit thread, flags {flags:?}");
    if db.url.starts_with("sqlite:") {
        assert_eq!(nice_of_threads(pid, "sqlite-writer"), vec![commit], "SQLite writer thread, flags {flags:?}");
    }
    (node, pid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commit_threads_run_at_the_writer_nice_value() {
    let db = TestDb::create().await;
    // The default, -10, where the process may lower nice values; otherwise they stay at 0 (and
    // the other threads are raised instead: the next test).
    let expected = if may_raise_priority() { -10 } else { 0 };
    for (flags, want) in [(&[][..], expected), (&["--writer-nice", "0"][..], 0)] {
        let (mut node, _) = node_with_commit_threads_at(&db, &[], flags, want).await;
        node.terminate().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cap_sys_nice_the_other_threads_run_below_the_commit_threads() {
    let db = TestDb::create().await;
    // A node that may not lower nice values: this process's own state, or (as root) the
    // capability dropped from the node's bounding set by util-linux's setpriv.
    let wrapper: &[&str] =
        if may_raise_priority() { &["setpriv", "--inh-caps=-sys_nice", "--bounding-set=-sys_nice"] } else { &[] };
    for (flags, others) in [(&[][..], 10), (&["--writer-nice", "-4"][..], 4), (&["--writer-nice", "0"][..], 0)] {
        let (mut node, pid) = node_with_commit_threads_at(&db, wrapper, flags, 0).await;
        for name in ["tokio-rt-worker", "socket-writer"] {
            let nices = nice_of_threads(pid, name);
            assert!(!nices.is_empty(), "the node has {name} threads");
            assert!(nices.iter().all(|&n| n == others), "{name} threads at {nices:?}, want {others}, flags {flags:?}");
        }
        node.terminate().await;
    }
}
