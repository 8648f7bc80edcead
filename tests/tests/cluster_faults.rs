//! Long partitions, pauses and a randomised fault schedule on a real cluster (node processes on
//! their own loopback addresses, PostgreSQL shared). Every scenario ends with the invariants
//! checked: each acknowledged message stored once, in seq order with no gap, every receiver saw
//! each seq once and in order, and no node took a room over from a node the majority still saw
//! alive (`confab_failovers_total` of the faulty node stays 0). Times (link recovery, join after
//! a heal) are printed; the bounds asserted are loose, the figures are in the output.

use confab_tests::cluster::{Received, Sandbox, SendReport, owner_of, receive_all_any, receive_until, send_until};
use confab_tests::partition::Partition;
use confab_tests::{Api, Ws, eventually, unique};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_confab-test-node");

fn urls(sb: &Sandbox, order: &[usize]) -> Vec<String> {
    order.iter().map(|i| sb.ws_urls[*i].clone()).collect()
}

/// The sum of a metric's samples in a node's `/metrics` text (`None`: the node did not answer).
async fn metric(base: &str, name: &str) -> Option<u64> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().ok()?;
    let text = client.get(format!("{base}/metrics")).send().await.ok()?.text().await.ok()?;
    Some(
        text.lines()
            .filter(|l| {
                l.starts_with(name) && (l.as_bytes().get(name.len()) == Some(&b' ') || l[name.len()..].starts_with('{'))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum(),
    )
}

/// Seconds a partition lasts (the 30; `CONFAB_TEST_PARTITION_SECS` shortens it).
fn partition_secs() -> u64 {
    std::env::var("CONFAB_TEST_PARTITION_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(30)
}

/// Every acknowledged message of every sender is stored once, in order, without a gap, and the
/// receivers saw exactly the stored seqs, in order.
async fn check_room(api: &Api, room: i64, senders: &[(&str, &SendReport)], receivers: &[&Received]) {
    let total: usize = senders.iter().map(|(_, r)| r.acks.len()).sum();
    let mut stored: Vec<Value> = Vec::new();
    let mut after = 0;
    loop {
        let (status, v) = api.get(&format!("/api/rooms/{room}/messages?after={after}&limit=100")).await;
        assert_eq!(status, 200, "history: {v}");
        let page = v["messages"].as_array().expect("messages").clone();
        let Some(last) = page.last() else { break };
        after = last["seq"].as_u64().expect("seq");
        stored.extend(page);
    }
    let seqs: Vec<u64> = stored.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=total as u64).collect::<Vec<_>>(), "storage holds a gap or a duplicate");
    let by_seq: HashMap<u64, &Value> = stored.iter().map(|m| (m["seq"].as_u64().unwrap(), m)).collect();
    for (prefix, report) in senders {
        for (cid, ack) in &report.acks {
            let i = cid.rsplit('-').next().unwrap();
            let seq = ack["seq"].as_u64().unwrap();
            assert_eq!(by_seq[&seq]["body"], format!("{prefix} #{i}"), "the ack of {cid} names seq {seq}");
        }
    }
    for got in receivers {
        let seen: Vec<u64> = got.messages.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
        assert_eq!(seen, seqs, "a receiver saw a gap, a duplicate or disorder");
    }
}

/// Joins `room` from seq 0 on `ws` as soon as the room answers, counting every `joined` and
/// every message until `count` arrived and a ping's pong came after them.
async fn join_and_read(ws: &mut Ws, room: i64, count: usize) -> (Vec<Value>, usize, Instant) {
    let mut frames = Vec::new();
    let mut joined_at = None;
    ws.send(json!({"type": "join", "room": room, "since": 0})).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut pinged = false;
    loop {
        assert!(Instant::now() < deadline, "no join or not every message: {} frames", frames.len());
        let Ok(Some(f)) = ws.next_or_quiet(Duration::from_secs(1)).await else { continue };
        if f["type"] == "joined" && f["room"] == room {
            joined_at.get_or_insert_with(Instant::now);
        }
        if f["type"] == "error" && f["room"] == room && f["code"] == "retry" {
            tokio::time::sleep(Duration::from_millis(50)).await;
            ws.send(json!({"type": "join", "room": room, "since": 0})).await;
        }
        let pong = f["type"] == "pong";
        frames.push(f);
        let messages = frames.iter().filter(|m| m["type"] == "message" && m["room"] == room).count();
        if pong && pinged {
            break;
        }
        if messages >= count && !pinged {
            // Any late or repeated answer would arrive before the pong.
            ws.send(json!({"type": "ping"})).await;
            pinged = true;
        }
    }
    let joined = frames.iter().filter(|f| f["type"] == "joined" && f["room"] == room).count();
    (frames, joined, joined_at.expect("joined"))
}

/// A node cut off for `partition_secs()` (the room's owner, or not), then healed: its links
/// come back, a client joining through it gets one `joined` and every message once, and the
/// cut-off node never took a room over.
async fn long_partition(cut_owner: bool) {
    // A 256-frame queue is smaller than what the room sends during the cut: the heal's catch-up
    // must reach a reading client at its pace, not close it as lagging.
    let sb = Sandbox::start_with(BIN, 3, |_| vec!["--outbound-queue".into(), "256".into()]).await;
    let sender = Api::register(&sb.bases[1], &unique("snd")).await;
    let room = sb.room_owned_by(&sender, "n0").await;
    let isolated = if cut_owner { 0 } else { 2 };
    let majority: Vec<usize> = (0..3).filter(|i| *i != isolated).collect();
    let secs = partition_secs();
    let stop = Instant::now() + Duration::from_secs(secs + 6);
    let (s, u) = (sender.clone(), urls(&sb, &majority));
    let sending = tokio::spawn(async move { send_until(&s, &u, room, "s", stop, 4).await });
    let receiver = Api::register(&sb.bases[majority[0]], &unique("rcv")).await;
    let target = Arc::new(AtomicU64::new(u64::MAX));
    let (r, u, t) = (receiver.clone(), urls(&sb, &majority), target.clone());
    let receiving = tokio::spawn(async move { receive_until(&r, &u, room, t).await });
    eventually("traffic before the cut", || async {
        let (_, v) = sender.get(&format!("/api/rooms/{room}")).await;
        (v["head_seq"].as_u64().unwrap_or(0) >= 20).then_some(())
    })
    .await;
    let failovers_before = metric(&sb.bases[isolated], "confab_failovers_total").await.expect("metrics");
    // A client of the node about to be cut off, joined to the room before the cut.
    let islander = Api::register(&sb.bases[isolated], &unique("isl")).await;
    let mut island = islander.ws(&sb.ws_urls[isolated]).await;
    island.join(room, None).await;
    let partition = Partition::isolate(&sb, isolated).await;
    let cut = Instant::now();
    eventually("the cut-off node to lose its majority", || async {
        (metric(&sb.bases[isolated], "confab_cluster_quorum").await == Some(0)).then_some(())
    })
    .await;
    println!("n{isolated} lost its majority {:?} after the cut", cut.elapsed());
    // The cut-off node acks nothing from now until the heal, whoever owns the room.
    for k in 0..5 {
        island.send(json!({"type": "send", "room": room, "cid": format!("i-{k}"), "body": format!("i #{k}")})).await;
    }
    let heal_at = cut + Duration::from_secs(secs);
    let mut island_frames = Vec::new();
    while Instant::now() < heal_at {
        let wait = heal_at.saturating_duration_since(Instant::now()).min(Duration::from_millis(500));
        match island.next_or_quiet(wait).await {
            Ok(Some(f)) => island_frames.push(f),
            Ok(None) => break,
            Err(()) => {}
        }
    }
    let acked: Vec<&Value> = island_frames.iter().filter(|f| f["type"] == "ack").collect();
    assert!(acked.is_empty(), "the cut-off node acked sends while cut off: {acked:?}");
    println!("island frames while cut off: {}", island_frames.len());
    tokio::time::sleep(heal_at.saturating_duration_since(Instant::now())).await;
    let head_at_heal = sender.get(&format!("/api/rooms/{room}")).await.1["head_seq"].as_u64().unwrap();
    assert!(head_at_heal >= 40, "the majority kept sequencing during the partition: head {head_at_heal}");
    drop(partition);
    let healed = Instant::now();
    // The island reads its socket from the heal on, as a client does: what the room sent during
    // the cut (about 1,200 messages in 30 s) comes to it now. A socket nobody read could fill its
    // queue and be closed with a resume hint, which is the server's backpressure; a reading one
    // must get everything on the same connection.
    let (stop_reading, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let island_reader = tokio::spawn(async move {
        let mut read = Vec::new();
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                f = island.next_or_quiet(Duration::from_millis(200)) => match f {
                    Ok(Some(f)) => read.push(f),
                    Ok(None) => break,
                    Err(()) => {}
                },
            }
        }
        (island, read)
    });
    // A client joins through the healed node at once.
    let joiner = Api::register(&sb.bases[majority[0]], &unique("late")).await;
    let mut ws = joiner.ws(&sb.ws_urls[isolated]).await;
    let (frames, joined, joined_at) = join_and_read(&mut ws, room, head_at_heal as usize).await;
    eventually("the healed node to hear a majority again", || async {
        (metric(&sb.bases[isolated], "confab_cluster_quorum").await == Some(1)).then_some(())
    })
    .await;
    let links_back = healed.elapsed();
    println!(
        "partition of {secs} s (n{isolated}, owner: {cut_owner}): links and majority back {links_back:?} after the heal, \
         joined through n{isolated} {:?} after the heal",
        joined_at - healed
    );
    assert_eq!(joined, 1, "one join, one `joined`");
    let seqs: Vec<u64> = frames
        .iter()
        .filter(|f| f["type"] == "message" && f["room"] == room)
        .map(|f| f["seq"].as_u64().unwrap())
        .collect();
    for w in seqs.windows(2) {
        assert_eq!(w[1], w[0] + 1, "the joiner saw a gap or a duplicate: {} after {}", w[1], w[0]);
    }
    assert_eq!(seqs.first(), Some(&1));
    assert!(joined_at - healed < Duration::from_secs(10), "joined long after the heal");
    let sent = sending.await.expect("sender");
    let _ = stop_reading.send(());
    let (mut island, read) = island_reader.await.expect("the island's reader");
    println!("the island read {} frames after the heal", read.len());
    island.backlog.extend(read);
    // What the island's session sent again on its own after the heal is acked by now.
    island.ping().await;
    let island_acks: HashMap<String, Value> = island
        .backlog
        .drain(..)
        .filter(|f| f["type"] == "ack")
        .map(|f| (f["cid"].as_str().unwrap().to_owned(), f))
        .collect();
    let island_report = SendReport { acks: island_acks, ack_times: Vec::new() };
    target.store((sent.acks.len() + island_report.acks.len()) as u64, Relaxed);
    let got = receiving.await.expect("receiver");
    println!("island sends acked after the heal: {}", island_report.acks.len());
    check_room(&sender, room, &[("s", &sent), ("i", &island_report)], &[&got]).await;
    let failovers_after = metric(&sb.bases[isolated], "confab_failovers_total").await.expect("metrics");
    assert_eq!(failovers_after, failovers_before, "the cut-off node took a room over from a live node");
    println!("{} messages, owner now {}", sent.acks.len(), owner_of(&sender, room).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_partition_of_the_owner_heals_without_duplicates() {
    long_partition(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_partition_of_another_node_heals_without_duplicates() {
    long_partition(false).await;
}

/// A node stopped (SIGSTOP) for longer than its leases, then woken: it takes no room of a node
/// that stayed alive, and acks nothing for one; every ack anywhere names its own stored message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_woken_after_its_lease_takes_no_live_nodes_room() {
    let sb = Sandbox::start(BIN, 3).await;
    let sender = Api::register(&sb.bases[0], &unique("snd")).await;
    let live_room = sb.room_owned_by(&sender, "n1").await;
    let own_room = sb.room_owned_by(&sender, "n2").await;
    // A client of the node to be paused, joined to both rooms.
    let sleeper = Api::register(&sb.bases[2], &unique("slp")).await;
    let mut ws = sleeper.ws(&sb.ws_urls[2]).await;
    ws.join(live_room, Some(0)).await;
    ws.join(own_room, Some(0)).await;
    let failovers_before = metric(&sb.bases[2], "confab_failovers_total").await.expect("metrics");
    let stop = Instant::now() + Duration::from_secs(16);
    let mut sending = Vec::new();
    for (room, prefix) in [(live_room, "l"), (own_room, "o")] {
        let (s, u) = (sender.clone(), urls(&sb, &[0, 1]));
        sending.push(tokio::spawn(async move { send_until(&s, &u, room, prefix, stop, 4).await }));
    }
    let node = sb.nodes[2].as_ref().expect("n2 runs");
    node.pause();
    // Longer than the sandbox's 6 s lease: the others take n2's rooms over meanwhile.
    let paused = Instant::now();
    eventually("the majority to take the paused node's room", || async {
        (owner_of(&sender, own_room).await != "n2").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(8).saturating_sub(paused.elapsed())).await;
    node.resume();
    let woke = Instant::now();
    // The woken client sends at once to both rooms, on its old socket.
    for (room, cid) in [(live_room, "w-0"), (own_room, "w-1")] {
        ws.send(json!({"type": "send", "room": room, "cid": cid, "body": format!("woken {cid}")})).await;
    }
    let mut woken_acks = Vec::new();
    while woke.elapsed() < Duration::from_secs(4) {
        match ws.next_or_quiet(Duration::from_millis(200)).await {
            Ok(Some(f)) if f["type"] == "ack" => woken_acks.push(f),
            Ok(None) => break,
            _ => {}
        }
    }
    println!("acks the woken node's client got in its first 4 s: {woken_acks:?}");
    let sent: Vec<SendReport> =
        futures::future::join_all(sending).await.into_iter().map(|r| r.expect("sender")).collect();
    let failovers_after = metric(&sb.bases[2], "confab_failovers_total").await.expect("metrics");
    assert_eq!(failovers_after, failovers_before, "the woken node took a room from a live node");
    let pauses = metric(&sb.bases[2], "confab_cluster_pauses_total").await.expect("metrics");
    assert!(pauses >= 1, "the node noticed its pause");
    // Every ack the woken client got names its own message in storage.
    for ack in &woken_acks {
        let room = ack["room"].as_i64().unwrap();
        let seq = ack["seq"].as_u64().unwrap();
        let (_, v) = sender.get(&format!("/api/rooms/{room}/messages?after={}&limit=1", seq - 1)).await;
        assert_eq!(v["messages"][0]["body"], format!("woken {}", ack["cid"].as_str().unwrap()), "ack {ack}");
    }
    for (room, prefix, report) in [(live_room, "l", &sent[0]), (own_room, "o", &sent[1])] {
        let extra = woken_acks.iter().filter(|a| a["room"] == room).count();
        let got = receive_all_any(&sender, &urls(&sb, &[0]), room, (report.acks.len() + extra) as u64).await;
        let stored: Vec<u64> = got.messages.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
        assert_eq!(stored, (1..=stored.len() as u64).collect::<Vec<_>>(), "room {room}: gap or duplicate");
        let by_seq: HashMap<u64, &Value> = got.messages.iter().map(|m| (m["seq"].as_u64().unwrap(), m)).collect();
        for (cid, ack) in &report.acks {
            let i = cid.rsplit('-').next().unwrap();
            assert_eq!(by_seq[&ack["seq"].as_u64().unwrap()]["body"], format!("{prefix} #{i}"), "ack of {cid}");
        }
    }
}
