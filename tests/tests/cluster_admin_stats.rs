//! The admin statistics of a 2-node cluster: `GET /api/admin/stats` through one node lists every
//! live node with its own counters, which each node publishes in gossip: the other node's
//! connections, the rooms it sequences and the messages it commits per second while a user
//! sends to a room it owns. PostgreSQL (and the test S3 store), as every cluster.

use confab_tests::cluster::{Sandbox, connect_any};
use confab_tests::{Api, unique};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_confab-test-node");

/// The entry of node `id` in a stats answer.
fn node<'a>(stats: &'a Value, id: &str) -> Option<&'a Value> {
    stats["nodes"].as_array()?.iter().find(|n| n["id"] == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_stats_list_every_node_with_its_gossiped_counters() {
    let sb = Sandbox::start(BIN, 2).await;
    let admin = Api::register(&sb.bases[0], &unique("admin")).await;
    sb.make_admin(&admin.username).await;
    let sender = Api::register(&sb.bases[1], &unique("sender")).await;
    let room = sb.room_owned_by(&sender, "n1").await;
    let (mut ws, _) = connect_any(&sender, &[sb.ws_urls[1].clone()], 0).await;
    ws.join(room, None).await;

    // Send in bursts on node 1 until node 0's answer shows node 1 committing messages.
    let deadline = tokio::time::Instant::now() + confab_tests::DEADLINE;
    let mut sent = 0u64;
    let stats = loop {
        for _ in 0..20 {
            let cid = unique("c");
            ws.send(json!({"type": "send", "room": room, "cid": cid, "body": format!("m{sent}")})).await;
            ws.recv_where("the ack", |v| v["type"] == "ack" && v["cid"] == cid).await;
            sent += 1;
        }
        let (status, stats) = admin.get("/api/admin/stats").await;
        assert_eq!(status, 200, "{stats}");
        let busy = node(&stats, "n1").is_some_and(|n| n["messages_per_second"].as_u64().unwrap_or(0) > 0);
        if busy {
            break stats;
        }
        assert!(tokio::time::Instant::now() < deadline, "node 1's rate never reached node 0: {stats}");
    };
    assert_eq!(stats["nodes"].as_array().map(Vec::len), Some(2), "{stats}");
    let n0 = node(&stats, "n0").expect("n0");
    let n1 = node(&stats, "n1").expect("n1");
    assert_eq!(n0["this_node"], true);
    assert_eq!(n1["this_node"], false);
    assert!(n1["connections"].as_u64().unwrap_or(0) >= 1, "the sender's socket on node 1: {stats}");
    assert!(n1["rooms_owned"].as_u64().unwrap_or(0) >= 1, "node 1 sequences the room: {stats}");
    assert!(n1["addr"].is_string(), "{stats}");
    assert!(stats["messages_total"].as_u64().unwrap_or(0) >= sent, "{stats}");

    // A plain user is refused, on either node.
    for base in &sb.bases {
        let (status, body) = sender.on(base).get("/api/admin/stats").await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"]["code"], "forbidden");
    }
}
