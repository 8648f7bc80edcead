//! Killing actors under load on one node: a room actor, the writer, a session actor. Their
//! supervisors restart them; every acknowledged message survives exactly once and in order, and
//! clients of other rooms do not notice.

use confab_tests::load::{receive_all, send_reliably};
use confab_tests::{Api, NodeOpts, TestNode, eventually, unique};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;

const N: usize = 600;

enum Victim {
    Room,
    Writer,
    Session,
}

/// A sender and a receiver in one room while `victim` is killed again and again; a bystander
/// pair chats in another room meanwhile.
async fn kill_under_load(victim: Victim) {
    let node = TestNode::start(NodeOpts::default()).await;
    let (sender, receiver, bystander) =
        (node.user(&unique("snd")).await, node.user(&unique("rcv")).await, node.user(&unique("by")).await);
    let room = sender.create_room(&unique("chaos"), "public").await;
    let quiet = bystander.create_room(&unique("quiet"), "public").await;

    let mut rx = receiver.ws(&node.ws_url).await;
    rx.join(room, Some(0)).await;
    let mut by_rx = bystander.ws(&node.ws_url).await;
    by_rx.join(quiet, Some(0)).await;

    let url = node.ws_url.clone();
    let s = sender.clone();
    let sending = tokio::spawn(async move { send_reliably(&s, &url, room, "c", N, 16).await });
    let url = node.ws_url.clone();
    let b = bystander.clone();
    let by_sending = tokio::spawn(async move { send_reliably(&b, &url, quiet, "q", N / 4, 4).await });

    let metrics = node.system().metrics().clone();
    let restarts = || match victim {
        Victim::Room => metrics.room_restarts.load(Relaxed),
        Victim::Writer => metrics.writer_restarts.load(Relaxed),
        Victim::Session => metrics.session_restarts.load(Relaxed),
    };
    let mut landed = 0u64;
    for _ in 1..=5u64 {
        // Wait for traffic between kills, so each kill lands mid-stream; stop once the sender is
        // done (it may outrun the kills).
        let target = metrics.messages_committed.load(Relaxed) + 20;
        eventually("traffic between kills", || async {
            (metrics.messages_committed.load(Relaxed) >= target || sending.is_finished()).then_some(())
        })
        .await;
        if sending.is_finished() {
            break;
        }
        let killed = match victim {
            Victim::Room => node.system().kill_room(confab_schemas::RoomId(room)).await,
            Victim::Writer => node.system().kill_writer(),
            Victim::Session => node.system().kill_session(confab_schemas::UserId(sender.user_id)).await,
        };
        if !killed {
            continue; // e.g. the sender's session was between reconnects
        }
        landed += 1;
        eventually("the supervisor to restart the actor", || async { (restarts() >= landed).then_some(()) }).await;
    }
    assert!(landed >= 2, "at least two kills landed mid-stream ({landed})");

    let bounded = |t| tokio::time::timeout(confab_tests::DEADLINE * 3, t);
    let acks = bounded(sending).await.expect("the sender finishes in time").expect("sender");
    let by_acks = bounded(by_sending).await.expect("the bystander finishes in time").expect("bystander sender");
    check_room(&receiver, &node.ws_url, &mut rx, room, &acks).await;

    // The bystander's receiving connection stayed open the whole time and saw everything once.
    let seen = by_rx.messages(quiet, N / 4).await;
    let seqs: Vec<u64> = seen.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=(N / 4) as u64).collect::<Vec<_>>());
    assert_eq!(by_acks.len(), N / 4);
    by_rx.ping().await;
    node.stop().await;
}

/// Every ack's seq is a distinct message; the receiver saw 1..=N once, in order; history agrees.
async fn check_room(
    api: &Api,
    ws_url: &str,
    rx: &mut confab_tests::Ws,
    room: i64,
    acks: &std::collections::HashMap<String, Value>,
) {
    assert_eq!(acks.len(), N);
    let acked: HashSet<u64> = acks.values().map(|a| a["seq"].as_u64().unwrap()).collect();
    assert_eq!(acked.len(), N, "two cids acked with one seq");
    let got = receive_all(rx, api, ws_url, room, N as u64).await;
    let seqs: Vec<u64> = got.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=N as u64).collect::<Vec<_>>(), "receiver: gap, duplicate or disorder");
    assert_eq!(acked, seqs.iter().copied().collect(), "every acked seq was delivered");
    let mut stored = Vec::new();
    let mut after = 0;
    loop {
        let (status, page) = api.get(&format!("/api/rooms/{room}/messages?after={after}&limit=100")).await;
        assert_eq!(status, 200);
        let msgs = page["messages"].as_array().unwrap().clone();
        if msgs.is_empty() {
            break;
        }
        after = msgs.last().unwrap()["seq"].as_u64().unwrap();
        stored.extend(msgs);
    }
    assert_eq!(stored.len(), N, "history holds each message once");
    for (cid, ack) in acks {
        let m = &stored[ack["seq"].as_u64().unwrap() as usize - 1];
        let i = cid.trim_start_matches("c-");
        assert_eq!(m["body"], format!("c #{i}"), "the acked seq holds the acked message");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_room_actor_loses_nothing_and_disturbs_no_other_room() {
    kill_under_load(Victim::Room).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_writer_loses_nothing_and_disturbs_no_other_room() {
    kill_under_load(Victim::Writer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_session_actor_closes_only_its_connection() {
    kill_under_load(Victim::Session).await;
}
