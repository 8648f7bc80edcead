//! Cluster scenarios on real node processes sharing one PostgreSQL database (see
//! `confab_tests::cluster`). Each checks every invariant: no acknowledged loss, per-room order,
//! no duplicates, resume works. Figures (failover, handoff pause) are printed, never asserted.

use confab_tests::cluster::{
    Received, Sandbox, check_invariants, longest_pause, owner_of, receive_all_any, send_reliably_any,
};
use confab_tests::partition::Partition;
use confab_tests::{Api, eventually, unique};
use serde_json::json;
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_confab-test-node");

fn urls(sb: &Sandbox, order: &[usize]) -> Vec<String> {
    order.iter().map(|i| sb.ws_urls[*i].clone()).collect()
}

/// The sum of a metric's samples in a node's `/metrics` text.
async fn metric(base: &str, name: &str) -> u64 {
    let text = reqwest::get(format!("{base}/metrics")).await.expect("metrics").text().await.expect("text");
    text.lines()
        .filter(|l| {
            l.starts_with(name) && (l.as_bytes().get(name.len()) == Some(&b' ') || l[name.len()..].starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_two_nodes_chat_in_a_room_owned_by_a_third() {
    let sb = Sandbox::start(BIN, 3).await;
    let alice = Api::register(&sb.bases[0], &unique("alice")).await;
    let bob = Api::register(&sb.bases[1], &unique("bob")).await;
    let room = sb.room_owned_by(&alice, "n2").await;
    for i in 0..3 {
        assert_eq!(owner_of(&alice.on(&sb.bases[i]), room).await, "n2", "every node names the same owner");
    }
    let mut a = alice.ws(&sb.ws_urls[0]).await;
    a.join(room, Some(0)).await;
    let mut b = bob.ws(&sb.ws_urls[1]).await;
    let joined = b.join(room, Some(0)).await;
    assert!(
        joined["online"].as_array().unwrap().iter().any(|u| u["id"] == alice.user_id),
        "presence is cluster-wide: {joined}"
    );
    let presence = a.recv_where("bob online", |f| f["type"] == "presence" && f["user"]["id"] == bob.user_id).await;
    assert_eq!(presence["online"], true);

    let t0 = Instant::now();
    for i in 0..20 {
        a.send(json!({"type": "send", "room": room, "cid": format!("a{i}"), "body": format!("from a {i}")})).await;
        b.send(json!({"type": "send", "room": room, "cid": format!("b{i}"), "body": format!("from b {i}")})).await;
    }
    let seen_a = a.messages(room, 40).await;
    let seen_b = b.messages(room, 40).await;
    let seqs = |v: &[serde_json::Value]| v.iter().map(|m| m["seq"].as_u64().unwrap()).collect::<Vec<_>>();
    assert_eq!(seqs(&seen_a), (1..=40).collect::<Vec<_>>());
    assert_eq!(seqs(&seen_a), seqs(&seen_b), "both nodes deliver the same order");
    println!("40 cross-node messages delivered to both clients in {:?}", t0.elapsed());

    // A repeated cid through another node gets the identical ack.
    let mut a2 = alice.ws(&sb.ws_urls[1]).await;
    a2.join(room, None).await;
    a2.send(json!({"type": "send", "room": room, "cid": "a3", "body": "from a 3"})).await;
    let ack = a2.recv_type("ack").await;
    assert_eq!(ack["seq"], seen_a.iter().find(|m| m["body"] == "from a 3").unwrap()["seq"]);

    // History and resume through a node that is neither.
    let carol_api = alice.on(&sb.bases[2]);
    let (_, page) = carol_api.get(&format!("/api/rooms/{room}/messages?after=0&limit=100")).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 40);
    let mut r = alice.ws(&sb.ws_urls[2]).await;
    r.join(room, Some(35)).await;
    assert_eq!(seqs(&r.messages(room, 5).await), vec![36, 37, 38, 39, 40]);

    // Traffic only to nodes that need it: a room owned by n0 with subscribers on n0 and n1
    // sends nothing to n2.
    let quiet = sb.room_owned_by(&alice, "n0").await;
    let mut qa = alice.ws(&sb.ws_urls[0]).await;
    qa.join(quiet, Some(0)).await;
    let mut qb = bob.ws(&sb.ws_urls[1]).await;
    qb.join(quiet, Some(0)).await;
    let n2_before = metric(&sb.bases[2], "confab_peer_frames_in_total").await;
    let n1_before = metric(&sb.bases[1], "confab_peer_frames_in_total").await;
    for i in 0..100 {
        qa.send(json!({"type": "send", "room": quiet, "cid": format!("q{i}"), "body": "q"})).await;
    }
    qb.messages(quiet, 100).await;
    let n2_delta = metric(&sb.bases[2], "confab_peer_frames_in_total").await - n2_before;
    let n1_delta = metric(&sb.bases[1], "confab_peer_frames_in_total").await - n1_before;
    println!("frames in during 100 messages: subscribed n1 {n1_delta}, unsubscribed n2 {n2_delta}");
    assert!(n1_delta >= 100, "n1 gets each event once: {n1_delta}");
    assert!(n2_delta < 10, "n2 has no subscriber and gets nothing of the room: {n2_delta}");
}

/// SIGKILL the owner in the middle of a send storm: the next owner takes the lease and continues
/// the sequence; clients on the other nodes resume with no gap and no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_owner_during_a_send_storm_loses_nothing() {
    let mut sb = Sandbox::start(BIN, 3).await;
    let sender = Api::register(&sb.bases[0], &unique("snd")).await;
    let receiver = Api::register(&sb.bases[1], &unique("rcv")).await;
    let room = sb.room_owned_by(&sender, "n2").await;
    const N: usize = 400;
    let (s, u) = (sender.clone(), urls(&sb, &[0, 1]));
    let sending = tokio::spawn(async move { send_reliably_any(&s, &u, room, "k", N, 16).await });
    let (r, u) = (receiver.clone(), urls(&sb, &[1, 0]));
    let receiving = tokio::spawn(async move { receive_all_any(&r, &u, room, N as u64).await });

    eventually("100 messages before the kill", || async {
        let (_, v) = sender.get(&format!("/api/rooms/{room}")).await;
        (v["head_seq"].as_u64().unwrap_or(0) >= 100).then_some(())
    })
    .await;
    let killed_at = Instant::now();
    let killed_ms = confab_schemas::now_ms();
    sb.kill9(2).await;
    eventually("the survivors to declare n2 dead", || async {
        let (_, v) = sender.get("/api/cluster").await;
        (v["members"].as_array()?.len() == 2).then_some(())
    })
    .await;
    println!(
        "failure detection: n0 dropped the SIGKILLed n2 from its members {:?} after the kill",
        killed_at.elapsed()
    );
    let sent = sending.await.expect("sender");
    let got: Received = receiving.await.expect("receiver");
    check_invariants(&sender, room, "k", &sent, &got).await;
    assert!(
        metric(&sb.bases[0], "confab_failovers_total").await + metric(&sb.bases[1], "confab_failovers_total").await
            >= 1
    );
    // The first message sequenced after the kill (its ts is set when it is sequenced).
    let first_ts = sent.acks.values().filter_map(|a| a["ts"].as_i64()).filter(|ts| *ts > killed_ms).min();
    let first_ts = first_ts.expect("messages sequenced after the kill");
    println!(
        "failover: the room sequenced its next message {} ms after SIGKILL of its owner (test saw the kill at {:?})",
        first_ts - killed_ms,
        killed_at.elapsed()
    );
    let owner = owner_of(&sender, room).await;
    assert!(owner == "n0" || owner == "n1", "a surviving node owns the room: {owner}");
}

/// SIGTERM drains: the node hands its rooms off, closes its sessions with a reconnect hint and
/// exits 0; the room keeps its sequence on the new owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_a_node_and_hands_off_its_rooms() {
    let mut sb = Sandbox::start(BIN, 3).await;
    let sender = Api::register(&sb.bases[0], &unique("snd")).await;
    let receiver = Api::register(&sb.bases[1], &unique("rcv")).await;
    let room = sb.room_owned_by(&sender, "n2").await;
    // A client on the draining node itself is told to reconnect elsewhere.
    let watcher = Api::register(&sb.bases[2], &unique("w")).await;
    let mut w = watcher.ws(&sb.ws_urls[2]).await;
    w.join(room, Some(0)).await;
    const N: usize = 300;
    let (s, u) = (sender.clone(), urls(&sb, &[0, 1]));
    let sending = tokio::spawn(async move { send_reliably_any(&s, &u, room, "d", N, 8).await });
    let (r, u) = (receiver.clone(), urls(&sb, &[1, 0]));
    let receiving = tokio::spawn(async move { receive_all_any(&r, &u, room, N as u64).await });
    eventually("50 messages before the drain", || async {
        let (_, v) = sender.get(&format!("/api/rooms/{room}")).await;
        (v["head_seq"].as_u64().unwrap_or(0) >= 50).then_some(())
    })
    .await;
    let code = sb.terminate(2).await;
    assert_eq!(code, Some(0), "a drained node exits 0");
    let closing = w.until_closed().await;
    assert!(closing.iter().any(|f| f["type"] == "reconnect"), "sessions get a reconnect hint: {closing:?}");
    let sent = sending.await.expect("sender");
    let got = receiving.await.expect("receiver");
    check_invariants(&sender, room, "d", &sent, &got).await;
    println!("drain: longest delivery pause at the receiver {:?}", longest_pause(&got.times));
}

/// A node that joins under load takes its rooms over by handoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_added_under_load_takes_over_its_rooms() {
    let mut sb = Sandbox::start(BIN, 2).await;
    let sender = Api::register(&sb.bases[0], &unique("snd")).await;
    let receiver = Api::register(&sb.bases[1], &unique("rcv")).await;
    // A room the third node will own once it joins.
    let mut room = 0;
    for _ in 0..200 {
        let r = sender.create_room(&unique("r"), "public").await;
        if confab_cluster::room_owner(confab_schemas::RoomId(r), ["n0", "n1", "n2"]) == Some("n2") {
            room = r;
            break;
        }
    }
    assert!(room > 0);
    const N: usize = 400;
    let (s, u) = (sender.clone(), urls(&sb, &[0, 1]));
    let sending = tokio::spawn(async move { send_reliably_any(&s, &u, room, "j", N, 8).await });
    let (r, u) = (receiver.clone(), urls(&sb, &[1, 0]));
    let receiving = tokio::spawn(async move { receive_all_any(&r, &u, room, N as u64).await });
    eventually("80 messages before the join", || async {
        let (_, v) = sender.get(&format!("/api/rooms/{room}")).await;
        (v["head_seq"].as_u64().unwrap_or(0) >= 80).then_some(())
    })
    .await;
    sb.add().await;
    sb.wait_ready(3).await;
    let sent = sending.await.expect("sender");
    let got = receiving.await.expect("receiver");
    check_invariants(&sender, room, "j", &sent, &got).await;
    assert_eq!(owner_of(&sender, room).await, "n2");
    let handoffs =
        metric(&sb.bases[0], "confab_handoffs_total").await + metric(&sb.bases[1], "confab_handoffs_total").await;
    assert!(handoffs >= 1, "the old owner handed the room off");
    println!("join handoff: longest delivery pause at the receiver {:?}", longest_pause(&got.times));
}

/// Room actors, the writer and sessions killed again and again on every node, through the
/// chaos endpoint, while a sender on one node and a receiver on another chat in a room owned by
/// a third.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_kills_actors_on_every_node_under_load() {
    let sb = Sandbox::start(BIN, 3).await;
    let admin_name = unique("admin");
    let admin = Api::register(&sb.bases[0], &admin_name).await;
    sb.make_admin(&admin_name).await;
    let (_, login) = confab_tests::client::login(&sb.bases[0], &admin_name, "correct horse").await;
    let admin = Api { token: login["token"].as_str().unwrap().to_owned(), ..admin };
    let sender = Api::register(&sb.bases[0], &unique("snd")).await;
    let receiver = Api::register(&sb.bases[1], &unique("rcv")).await;
    let room = sb.room_owned_by(&sender, "n2").await;
    const N: usize = 400;
    let (s, u) = (sender.clone(), urls(&sb, &[0, 1, 2]));
    let sending = tokio::spawn(async move { send_reliably_any(&s, &u, room, "x", N, 16).await });
    let (r, u) = (receiver.clone(), urls(&sb, &[1, 2, 0]));
    let receiving = tokio::spawn(async move { receive_all_any(&r, &u, room, N as u64).await });
    let kills = [
        (2, json!({"kill": "room", "room": room})),
        (2, json!({"kill": "writer"})),
        (0, json!({"kill": "rooms"})),
        (1, json!({"kill": "session", "user": receiver.user_id})),
        (0, json!({"kill": "session", "user": sender.user_id})),
        (2, json!({"kill": "rooms"})),
    ];
    let mut done = 0;
    for (i, (node, body)) in kills.iter().enumerate() {
        let target = (i as u64 + 1) * 50;
        eventually("traffic between kills", || async {
            let (_, v) = sender.get(&format!("/api/rooms/{room}")).await;
            (v["head_seq"].as_u64().unwrap_or(0) >= target || sending.is_finished()).then_some(())
        })
        .await;
        if sending.is_finished() {
            break;
        }
        let (status, v) = admin.on(&sb.bases[*node]).post("/api/chaos", body.clone()).await;
        assert_eq!(status, 200, "chaos {body}: {v}");
        done += 1;
    }
    let sent = sending.await.expect("sender");
    let got = receiving.await.expect("receiver");
    check_invariants(&sender, room, "x", &sent, &got).await;
    assert!(done >= 3, "kills landed mid-stream: {done}");
    // Refusals: chaos needs an admin.
    let (status, _) = sender.post("/api/chaos", json!({"kill": "writer"})).await;
    assert_eq!(status, 403);
}

/// A node cut off from the others (its gossip and node-to-node ports blocked, the database still
/// reachable) stops sequencing once it loses sight of a majority; the others take its rooms over.
/// A client of the cut-off node keeps trying; after the partition heals everything it was acked
/// is there exactly once, and no seq was written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_node_stops_sequencing_and_nothing_splits() {
    let sb = Sandbox::start(BIN, 3).await;
    let sender = Api::register(&sb.bases[0], &unique("snd")).await;
    let receiver = Api::register(&sb.bases[1], &unique("rcv")).await;
    let island = Api::register(&sb.bases[2], &unique("isl")).await;
    let room = sb.room_owned_by(&sender, "n2").await;
    const N: usize = 300;
    const M: usize = 60;
    let (s, u) = (sender.clone(), urls(&sb, &[0, 1]));
    let sending = tokio::spawn(async move { send_reliably_any(&s, &u, room, "s", N, 8).await });
    let (i, u) = (island.clone(), urls(&sb, &[2]));
    let island_sending = tokio::spawn(async move { send_reliably_any(&i, &u, room, "i", M, 4).await });
    let (r, u) = (receiver.clone(), urls(&sb, &[1, 0]));
    let receiving = tokio::spawn(async move { receive_all_any(&r, &u, room, (N + M) as u64).await });
    eventually("60 messages before the partition", || async {
        let (_, v) = sender.get(&format!("/api/rooms/{room}")).await;
        (v["head_seq"].as_u64().unwrap_or(0) >= 60).then_some(())
    })
    .await;
    let cut = Instant::now();
    let partition = Partition::isolate(&sb, 2).await;
    eventually("n2 to lose its majority", || async {
        (metric(&sb.bases[2], "confab_cluster_quorum").await == 0).then_some(())
    })
    .await;
    let lost = cut.elapsed();
    eventually("the majority to own the room", || async {
        let owner = owner_of(&sender, room).await;
        (owner == "n0" || owner == "n1").then_some(())
    })
    .await;
    println!("partition: n2 lost its majority {lost:?} after the cut; room moved to {}", owner_of(&sender, room).await);
    // The majority keeps going while n2 is cut off.
    let head = sender.get(&format!("/api/rooms/{room}")).await.1["head_seq"].as_u64().unwrap();
    eventually("the majority to sequence while n2 is cut off", || async {
        let (_, v) = sender.get(&format!("/api/rooms/{room}")).await;
        (v["head_seq"].as_u64().unwrap_or(0) >= head + 20 || sending.is_finished()).then_some(())
    })
    .await;
    drop(partition);
    let sent = sending.await.expect("sender");
    let island_sent = island_sending.await.expect("island sender");
    let got = receiving.await.expect("receiver");
    // Every seq once, in order, at the receiver and in storage; every ack of either sender names
    // its own message.
    let total = (N + M) as u64;
    let seqs: Vec<u64> = got.messages.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "gap, duplicate or disorder at the receiver");
    let by_seq: std::collections::HashMap<u64, &serde_json::Value> =
        got.messages.iter().map(|m| (m["seq"].as_u64().unwrap(), m)).collect();
    for (prefix, report) in [("s", &sent), ("i", &island_sent)] {
        for (cid, ack) in &report.acks {
            let i = cid.rsplit('-').next().unwrap();
            assert_eq!(by_seq[&ack["seq"].as_u64().unwrap()]["body"], format!("{prefix} #{i}"), "ack of {cid}");
        }
    }
    let (_, v) = sender.get(&format!("/api/rooms/{room}")).await;
    assert_eq!(v["head_seq"].as_u64().unwrap(), total, "storage holds exactly the acked messages");
}

/// A password change on one node closes the user's sockets on every node; another cluster's or
/// another protocol version's handshake is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_every_node_and_foreign_peers_are_refused() {
    let sb = Sandbox::start(BIN, 2).await;
    let user = Api::register(&sb.bases[0], &unique("rev")).await;
    let mut far = user.ws(&sb.ws_urls[1]).await;
    far.ping().await;
    let (status, v) = user
        .post("/api/auth/password", json!({"current_password": "correct horse", "new_password": "another good horse"}))
        .await;
    assert_eq!(status, 200, "password change: {v}");
    let last = far.until_closed().await;
    println!("the socket on n1 closed after a password change on n0: {last:?}");

    // Strangers on the node-to-node port. A peer that speaks the plain protocol (a hello of
    // this cluster and version, or of another) gets no answer and is closed.
    use futures::{SinkExt, StreamExt};
    use tokio_util::codec::{Framed, LengthDelimitedCodec};
    let port = (sb.node_ip(0), sb.cluster_ports[0]);
    for (cluster_id, version) in [
        ("confab", confab_schemas::node::NODE_PROTOCOL_VERSION),
        ("another", confab_schemas::node::NODE_PROTOCOL_VERSION),
        ("confab", 2),
    ] {
        let stream = tokio::net::TcpStream::connect(port.clone()).await.expect("connect");
        let mut framed = Framed::new(stream, LengthDelimitedCodec::new());
        let hello = confab_schemas::node::NodeFrame::Hello {
            version,
            cluster_id: cluster_id.into(),
            node_id: "intruder".into(),
        };
        framed
            .send(tokio_util::bytes::Bytes::from(confab_schemas::node::encode_node_frame(&hello).unwrap()))
            .await
            .expect("send hello");
        let answer =
            tokio::time::timeout(std::time::Duration::from_secs(5), framed.next()).await.expect("closed in time");
        assert!(answer.as_ref().is_none_or(|r| r.is_err()), "a plain peer got an answer: {answer:?}");
    }
    // An oversized length prefix is refused before anything is read.
    let mut stream = tokio::net::TcpStream::connect(port.clone()).await.expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut stream, &u32::MAX.to_be_bytes()).await.expect("write");
    let mut buf = [0u8; 16];
    let n =
        tokio::time::timeout(std::time::Duration::from_secs(5), tokio::io::AsyncReadExt::read(&mut stream, &mut buf))
            .await
            .expect("closed in time");
    assert!(matches!(n, Ok(0) | Err(_)), "an oversized frame was not refused");
    // A Noise handshake under a key of its own: refused, nothing answered.
    let stream = tokio::net::TcpStream::connect(port.clone()).await.expect("connect");
    let (mut r, mut w) = stream.into_split();
    let wrong = confab_cluster::key::ClusterKey::generate().link_psks()[0];
    let refused =
        confab_cluster::link::initiate(&mut r, &mut w, "confab", &wrong, confab_schemas::node::NODE_PROTOCOL_VERSION)
            .await;
    assert!(refused.is_err(), "a stranger's key was accepted");
    // The same handshake with the cluster's key succeeds: the refusals above are the key's doing.
    let key = confab_cluster::key::ClusterKey::parse(&std::fs::read_to_string(&sb.key_file).unwrap()).unwrap();
    let stream = tokio::net::TcpStream::connect(port.clone()).await.expect("connect");
    let (mut r, mut w) = stream.into_split();
    let accepted = confab_cluster::link::initiate(
        &mut r,
        &mut w,
        "confab",
        &key.link_psks()[0],
        confab_schemas::node::NODE_PROTOCOL_VERSION,
    )
    .await;
    assert!(accepted.is_ok(), "the cluster key was refused: {:?}", accepted.err());
    drop((r, w));
    let refusals = metric(&sb.bases[0], "confab_cluster_peers_refused_total").await;
    println!("node-to-node refusals counted on n0: {refusals}");
    assert!(refusals >= 5, "every stranger is counted: {refusals}");

    // A stranger that speaks chitchat's gossip (the cluster's id, plain datagrams) with the
    // nodes as its seeds: nobody lets it in, and it learns of nobody.
    let stranger_addr: std::net::SocketAddr = format!("{}:0", sb.node_ip(5)).parse().unwrap();
    let stranger_addr = std::net::UdpSocket::bind(stranger_addr).unwrap().local_addr().unwrap();
    let seeds: Vec<String> = (0..2).map(|i| format!("{}:{}", sb.node_ip(i), sb.gossip[i])).collect();
    let config = chitchat::ChitchatConfig {
        chitchat_id: chitchat::ChitchatId::new("intruder", 1, stranger_addr),
        cluster_id: "confab".into(),
        gossip_interval: std::time::Duration::from_millis(100),
        listen_addr: stranger_addr,
        seed_nodes: seeds,
        failure_detector_config: chitchat::FailureDetectorConfig {
            initial_interval: std::time::Duration::from_millis(100),
            ..Default::default()
        },
        marked_for_deletion_grace_period: std::time::Duration::from_secs(3600),
        catchup_callback: None,
        extra_liveness_predicate: None,
        protocol_version: chitchat::ProtocolVersion::V0,
    };
    let initial = vec![("status".to_owned(), "ready".to_owned()), ("cluster_addr".to_owned(), "10.9.9.9:1".to_owned())];
    let stranger = chitchat::spawn_chitchat(config, initial, &chitchat::transport::UdpTransport).await.expect("gossip");
    let refused_before = metric(&sb.bases[0], "confab_gossip_datagrams_refused_total").await;
    eventually("n0 to refuse the stranger's datagrams", || async {
        (metric(&sb.bases[0], "confab_gossip_datagrams_refused_total").await >= refused_before + 10).then_some(())
    })
    .await;
    let known: Vec<String> =
        stranger.with_chitchat(|cc| cc.node_states().keys().map(|id| id.node_id.to_string()).collect()).await;
    assert_eq!(known, ["intruder"], "the stranger learned of other nodes");
    let watcher = Api::register(&sb.bases[0], &unique("obs")).await;
    for i in 0..2 {
        let (_, v) = watcher.on(&sb.bases[i]).get("/api/cluster").await;
        let members: Vec<&str> =
            v["members"].as_array().unwrap().iter().filter_map(|m| m["node_id"].as_str()).collect();
        assert!(!members.contains(&"intruder"), "n{i} lists the stranger: {members:?}");
        assert_eq!(members.len(), 2, "n{i}: {members:?}");
    }
    let _ = stranger.shutdown().await;
    // The cluster still works.
    sb.wait_ready(2).await;
}

/// `confab chaos` (the CLI) kills a node's room actors, as an operator would from a shell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chaos_command_kills_actors_on_a_node() {
    let sb = Sandbox::start(BIN, 2).await;
    let name = unique("op");
    let op = Api::register(&sb.bases[0], &name).await;
    sb.make_admin(&name).await;
    let room = sb.room_owned_by(&op, "n1").await;
    let mut ws = op.ws(&sb.ws_urls[0]).await;
    ws.join(room, Some(0)).await;
    let node = sb.bases[1].trim_start_matches("http://").to_owned();
    let out = tokio::process::Command::new(BIN)
        .args(["chaos", "rooms", "--node", &node, "--username", &name, "--password", "correct horse"])
        .output()
        .await
        .expect("run confab chaos");
    assert!(out.status.success(), "confab chaos: {}", String::from_utf8_lossy(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON answer");
    assert_eq!(answer["node"], "n1");
    assert!(answer["killed"].as_u64().unwrap() >= 1, "{answer}");
    // The room restarted on its owner and goes on.
    ws.send(json!({"type": "send", "room": room, "cid": "after", "body": "still here"})).await;
    assert_eq!(ws.recv_type("ack").await["seq"], 1);
}

/// A SIGKILLed owner that comes back (same id and ports, a new gossip generation) takes its rooms
/// back by handoff from the node that took them over, while messages flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_that_comes_back_takes_its_rooms_back() {
    let mut sb = Sandbox::start(BIN, 3).await;
    let sender = Api::register(&sb.bases[0], &unique("snd")).await;
    let receiver = Api::register(&sb.bases[1], &unique("rcv")).await;
    let room = sb.room_owned_by(&sender, "n2").await;
    const N: usize = 500;
    let (s, u) = (sender.clone(), urls(&sb, &[0, 1]));
    let sending = tokio::spawn(async move { send_reliably_any(&s, &u, room, "b", N, 8).await });
    let (r, u) = (receiver.clone(), urls(&sb, &[1, 0]));
    let receiving = tokio::spawn(async move { receive_all_any(&r, &u, room, N as u64).await });
    let head = |min: u64| {
        let sender = sender.clone();
        async move {
            eventually(&format!("{min} messages"), || async {
                let (_, v) = sender.get(&format!("/api/rooms/{room}")).await;
                (v["head_seq"].as_u64().unwrap_or(0) >= min).then_some(())
            })
            .await
        }
    };
    head(80).await;
    sb.kill9(2).await;
    eventually("the room to move off the dead node", || async {
        (owner_of(&sender, room).await != "n2").then_some(())
    })
    .await;
    head(200).await;
    sb.restart(2).await;
    sb.wait_ready(3).await;
    eventually("the room to come back to n2", || async { (owner_of(&sender, room).await == "n2").then_some(()) }).await;
    let sent = sending.await.expect("sender");
    let got = receiving.await.expect("receiver");
    check_invariants(&sender, room, "b", &sent, &got).await;
    println!("restart: longest delivery pause at the receiver {:?}", longest_pause(&got.times));
}

/// A process holding the cluster key is a peer, trusted to have authenticated its own users, and
/// no further: on a session it joined as one user it cannot send as another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_cannot_send_as_another_user_than_its_session_joined_as() {
    use confab_schemas::node::{NODE_PROTOCOL_VERSION, NodeFrame};
    use confab_schemas::{Draft, RoomId, UserId, UserRef};
    let sb = Sandbox::start(BIN, 2).await;
    let alice = Api::register(&sb.bases[0], &unique("al")).await;
    let mallory = Api::register(&sb.bases[0], &unique("ma")).await;
    let room = sb.room_owned_by(&alice, "n0").await;
    let key = confab_cluster::key::ClusterKey::parse(&std::fs::read_to_string(&sb.key_file).unwrap()).unwrap();
    let stream = tokio::net::TcpStream::connect((sb.node_ip(0), sb.cluster_ports[0])).await.expect("connect");
    let (mut r, mut w) = stream.into_split();
    let cipher = confab_cluster::link::initiate(&mut r, &mut w, "confab", &key.link_psks()[0], NODE_PROTOCOL_VERSION)
        .await
        .expect("handshake");
    let (mut tx, mut rx) = cipher.split();
    let hello = NodeFrame::Hello { version: NODE_PROTOCOL_VERSION, cluster_id: "confab".into(), node_id: "n9".into() };
    tx.send(&mut w, &hello).await.unwrap();
    assert!(matches!(rx.next(&mut r).await.unwrap(), NodeFrame::HelloAck { .. }));
    let as_user = |api: &Api| UserRef { id: UserId(api.user_id), username: api.username.as_str().into() };
    let room = RoomId(room);
    tx.send(&mut w, &NodeFrame::Join { room, req: 1, session: 7, user: as_user(&alice) }).await.unwrap();
    let send = |user: UserRef, cid: &str| NodeFrame::Send {
        room,
        session: 7,
        user,
        draft: Draft::message(cid.into(), "who am I".into(), None),
    };
    tx.send(&mut w, &send(as_user(&mallory), "forged")).await.unwrap();
    tx.send(&mut w, &send(as_user(&alice), "honest")).await.unwrap();
    let mut answers = std::collections::HashMap::new();
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while answers.len() < 2 {
        assert!(Instant::now() < deadline, "answers: {answers:?}");
        let frame = tokio::time::timeout(std::time::Duration::from_secs(5), rx.next(&mut r)).await.expect("a frame");
        match frame.expect("a frame") {
            NodeFrame::SendResult { cid, frame, .. } => {
                let text = String::from_utf8_lossy(&frame).to_string();
                answers.insert(cid, text);
            }
            NodeFrame::JoinResult { result, .. } => assert!(result.is_ok(), "{result:?}"),
            _ => {}
        }
        tx.send(&mut w, &NodeFrame::Heartbeat).await.unwrap();
    }
    println!("answers to the peer: {answers:?}");
    assert!(answers["forged"].contains("\"code\":\"forbidden\""), "{}", answers["forged"]);
    assert!(answers["honest"].contains("\"type\":\"ack\""), "{}", answers["honest"]);
    let (_, v) = alice.get(&format!("/api/rooms/{}/messages", room.0)).await;
    let senders: Vec<i64> =
        v["messages"].as_array().unwrap().iter().map(|m| m["from"]["id"].as_i64().unwrap()).collect();
    assert_eq!(senders, [alice.user_id], "only alice's message is stored");
}
