//! A randomised fault schedule on a real cluster: for `CONFAB_FAULT_SECS` (150 by default) one
//! fault at a time — SIGKILL and restart, SIGSTOP and SIGCONT, a partition and its heal, a drain
//! (SIGTERM) and restart, a node added — while clients on every node send to and read from three
//! rooms, resending by cid across reconnects. At the end every invariant is checked: each
//! acknowledged message stored once, seqs without gap, every receiver saw each seq once in order,
//! every ack names its own message. The seed is printed; `CONFAB_FAULT_SEED` replays a schedule.

use confab_tests::cluster::{Sandbox, SendReport, receive_until, send_until};
use confab_tests::partition::Partition;
use confab_tests::{Api, unique};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_confab-test-node");

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_random_fault_schedule_breaks_no_invariant() {
    let secs = env_or("CONFAB_FAULT_SECS", 150);
    let seed = env_or("CONFAB_FAULT_SEED", rand::random::<u32>() as u64);
    println!("fault schedule: {secs} s, seed {seed} (CONFAB_FAULT_SEED={seed} replays it)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut sb = Sandbox::start(BIN, 3).await;
    let api = Api::register(&sb.bases[0], &unique("f")).await;
    let mut rooms = Vec::new();
    for owner in ["n0", "n1", "n2"] {
        rooms.push(sb.room_owned_by(&api, owner).await);
    }
    let started = Instant::now();
    let stop = started + Duration::from_secs(secs);
    let orders = [[0, 1, 2], [1, 2, 0], [2, 0, 1]];
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    let mut targets = Vec::new();
    for (k, room) in rooms.iter().copied().enumerate() {
        let urls: Vec<String> = orders[k].iter().map(|i| sb.ws_urls[*i].clone()).collect();
        let sender = Api::register(&sb.bases[k], &unique("s")).await;
        let u = urls.clone();
        senders.push(tokio::spawn(async move { send_until(&sender, &u, room, &format!("r{k}"), stop, 4).await }));
        let mut rurls = urls.clone();
        rurls.rotate_left(1);
        let receiver = Api::register(&sb.bases[k], &unique("r")).await;
        let target = Arc::new(AtomicU64::new(u64::MAX));
        targets.push(target.clone());
        receivers.push(tokio::spawn(async move { receive_until(&receiver, &rurls, room, target).await }));
    }
    let mut log = Vec::new();
    let mut added = false;
    while started.elapsed() + Duration::from_secs(15) < Duration::from_secs(secs) {
        let live = sb.live();
        let victim = live[rng.gen_range(0..live.len())];
        let hold = Duration::from_millis(rng.gen_range(1500..7000));
        let at = started.elapsed().as_secs_f32();
        let action = rng.gen_range(0..if added { 4 } else { 5 });
        let what = match action {
            0 => {
                sb.kill9(victim).await;
                tokio::time::sleep(hold).await;
                sb.restart(victim).await;
                format!("SIGKILL n{victim}, restarted after {hold:?}")
            }
            1 => {
                let node = sb.nodes[victim].as_ref().expect("live");
                node.pause();
                tokio::time::sleep(hold).await;
                node.resume();
                format!("SIGSTOP n{victim} for {hold:?}")
            }
            2 => {
                let cut = Partition::isolate(&sb, victim).await;
                tokio::time::sleep(hold).await;
                drop(cut);
                format!("partition of n{victim} for {hold:?}")
            }
            3 => {
                let code = sb.terminate(victim).await;
                tokio::time::sleep(hold / 2).await;
                sb.restart(victim).await;
                format!("drain of n{victim} (exit {code:?}), restarted after {:?}", hold / 2)
            }
            _ => {
                added = true;
                let i = sb.add().await;
                format!("added n{i}")
            }
        };
        println!("[{at:6.1} s] {what}");
        log.push(what);
        sb.wait_ready(sb.live().len()).await;
    }
    let sent: Vec<SendReport> =
        futures::future::join_all(senders).await.into_iter().map(|r| r.expect("sender")).collect();
    for (target, report) in targets.iter().zip(&sent) {
        target.store(report.acks.len() as u64, Relaxed);
    }
    let got: Vec<_> = futures::future::join_all(receivers).await.into_iter().map(|r| r.expect("receiver")).collect();
    for (k, room) in rooms.iter().enumerate() {
        let prefix = format!("r{k}");
        let seqs: Vec<u64> = got[k].messages.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
        let n = sent[k].acks.len() as u64;
        assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "room {room}: the receiver saw a gap, a duplicate or disorder");
        let by_seq: HashMap<u64, &Value> = got[k].messages.iter().map(|m| (m["seq"].as_u64().unwrap(), m)).collect();
        for (cid, ack) in &sent[k].acks {
            let i = cid.rsplit('-').next().unwrap();
            assert_eq!(by_seq[&ack["seq"].as_u64().unwrap()]["body"], format!("{prefix} #{i}"), "ack of {cid}");
        }
        let (_, v) = api.get(&format!("/api/rooms/{room}")).await;
        assert_eq!(v["head_seq"].as_u64(), Some(n), "room {room}: storage holds exactly the acked messages");
        println!("room {room}: {n} messages acked, stored once each, received in order");
    }
    println!("{} faults: {log:?}", log.len());
}
