//! The soak's short version: `confab bench soak`'s own program (`node/src/bench/soak.rs`) for 45 s
//! at a low load against an in-process node, members connecting, leaving and resuming all the
//! time (about a thousand resumes). It must lose, duplicate and reorder nothing, see no error, and
//! leave no descriptor behind.
//!
//! What is asserted about resources, and why only that: the generator runs in the node's process,
//! so `/proc/self/fd` counts both ends of every socket. Once the run is over and every client has
//! closed, the count must come back to where it was before the load, give or take `FD_SLACK`:
//! the database pools open connections on demand (PostgreSQL up to 16 sockets, SQLite 4 readers
//! with their files), so the end may sit that much above the start. A leak of even one
//! descriptor per reconnect would be hundreds above it. Memory is not asserted: its slope over
//! 45 s is noise (allocator, caches filling up); the long run reports it.

use confab::bench::soak::{SoakSpec, open_fds, run_soak};
use confab_tests::{NodeOpts, TestNode, eventually};
use std::time::Duration;

/// Descriptors the node may hold at the end beyond its count before the load.
const FD_SLACK: u64 = 24;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_loses_nothing_and_leaks_no_descriptor() {
    let mut opts = NodeOpts::default();
    opts.args.max_connections_per_ip = Some(0);
    let node = TestNode::start(opts).await;
    let addr = node.node.as_ref().expect("running").addr;
    let pid = std::process::id();
    let fds_before = open_fds(pid).expect("/proc/self/fd");
    let spec = SoakSpec {
        nodes: vec![addr],
        rooms: 8,
        members: 12,
        senders: 2,
        rate: 4.0,
        duration: Duration::from_secs(45),
        online: Duration::from_secs(4),
        offline: Duration::from_secs(1),
        leave_share: 0.3,
        sample_every: Duration::from_secs(1),
        warmup: Duration::from_secs(10),
        drain: Duration::from_secs(20),
        server_pid: Some(pid),
        users: None,
        password: "soak-password-1".into(),
        connect_concurrency: 32,
        sources: vec![None],
        progress: false,
    };
    let r = run_soak(&spec).await.expect("the soak runs");
    r.print();
    assert_eq!(r.connected, r.connections, "every member connected");
    assert!(r.reconnects + r.rejoins_same_socket > 300, "the members churned: {} resumes", r.reconnects);
    assert!(r.rejoins_same_socket > 0, "some members left and rejoined on their socket");
    assert!(r.acked > 2_000, "the senders sent: {} acked", r.acked);
    assert_eq!(
        (r.lost, r.duplicates, r.out_of_order, r.seq_gaps, r.seq_regressions),
        (0, 0, 0, 0, 0),
        "lost, duplicates, out of order, seq gaps, seq regressions"
    );
    assert!(r.drained, "every acked message reached every member");
    assert_eq!(r.away_at_end, 0, "every member came back");
    assert!(r.error_frames.is_empty(), "error frames: {:?}", r.error_frames);
    assert!(r.reconnect_errors.is_empty(), "failed reconnects: {:?}", r.reconnect_errors);
    assert_eq!(r.unexpected_drops, 0, "sockets the server ended");
    assert_eq!(r.refused, 0, "sends refused for good");
    let fds = eventually("the node's descriptors back to where they were", || async {
        let n = open_fds(pid)?;
        (n <= fds_before + FD_SLACK).then_some(n)
    })
    .await;
    eprintln!("descriptors: {fds_before} before the load, {fds} after it");
    node.stop().await;
}
