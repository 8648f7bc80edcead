//! Watching a node: `--log-format json` writes one JSON object per line naming the node, with the
//! request id of each HTTP request (`x-request-id`, kept from the client or made) and the room of
//! each room actor as span fields; and every metric the Grafana dashboard
//! (`docs/grafana/confab.json`) queries is exported at `/metrics`, on a single node (the node's
//! own metrics) and on a cluster node (the per-peer and membership ones too), and follows
//! Prometheus's naming conventions. Real node processes.

use confab_tests::cluster::Sandbox;
use confab_tests::process::NodeProcess;
use confab_tests::{Api, TestDb, eventually, unique};
use serde_json::{Value, json};
use std::collections::BTreeSet;

const BIN: &str = env!("CARGO_BIN_EXE_confab-test-node");
const DASHBOARD: &str = include_str!("../../docs/grafana/confab.json");

/// The node's log lines parsed as JSON; panics on a line that is not one JSON object.
fn json_lines(node: &NodeProcess) -> Vec<Value> {
    let lines = node.stdout.lock().unwrap().clone();
    lines
        .iter()
        .map(|l| match serde_json::from_str::<Value>(l) {
            Ok(v @ Value::Object(_)) => v,
            _ => panic!("a log line that is not a JSON object: {l}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_name_the_node_the_request_and_the_room() {
    let db = TestDb::sqlite();
    let flags = [
        "--log-format",
        "json",
        "--log",
        "info,confab_gateway::trace=debug,confab_actors::room=debug",
        "--node-id",
        "obs-node",
    ];
    let node = NodeProcess::spawn(BIN, db.dir.path(), &db.url, &flags).await;
    let http = reqwest::Client::new();

    // A client's own request id is kept and answered; a request without one gets a new one.
    let resp = http.get(format!("{}/healthz", node.base)).header("x-request-id", "probe-42").send().await.unwrap();
    assert_eq!(resp.headers()["x-request-id"], "probe-42");
    let resp = http.get(format!("{}/readyz", node.base)).send().await.unwrap();
    let made = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(made.len(), 36, "a UUID: {made}");
    // One that could garble a log is replaced.
    let resp = http.get(format!("{}/healthz", node.base)).header("x-request-id", "a b\"c").send().await.unwrap();
    assert_ne!(resp.headers()["x-request-id"], "a b\"c");

    // A room actor at work.
    let api = Api::register(&node.base, &unique("obs")).await;
    let room = api.room_id("general").await;
    let mut ws = api.ws(&node.ws_url).await;
    ws.join(room, None).await;
    ws.send(json!({"type": "send", "room": room, "cid": "c1", "body": "hello"})).await;
    ws.recv_type("ack").await;

    let lines = eventually("the request and room lines in the log", || {
        let lines = json_lines(&node);
        let request = |id: &str| lines.iter().any(|l| l["request_id"] == id && l["message"] == "request done");
        let in_room =
            |l: &Value| l["room"] == room && l["spans"].as_array().is_some_and(|s| s.contains(&json!("room")));
        let ok = request("probe-42") && request(&made) && lines.iter().any(in_room);
        async move { ok.then_some(lines) }
    })
    .await;
    for l in &lines {
        assert_eq!(l["node"], "obs-node", "every line names the node: {l}");
        assert!(l["ts"].is_string() && l["level"].is_string() && l["target"].is_string(), "{l}");
    }
    let probe = lines.iter().find(|l| l["request_id"] == "probe-42").unwrap();
    assert_eq!(
        (probe["method"].as_str(), probe["path"].as_str(), probe["status"].as_u64()),
        (Some("GET"), Some("/healthz"), Some(200))
    );
    assert!(lines.iter().any(|l| l["message"].as_str().is_some_and(|m| m.starts_with("confab listening"))));
}

/// The metric names (`confab_*`, `process_*`) of every query of the dashboard.
fn dashboard_metrics() -> BTreeSet<String> {
    let dash: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let mut names = BTreeSet::new();
    for panel in dash["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a PromQL expression");
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
                if word.starts_with("confab_") || word.starts_with("process_") {
                    names.insert(word.to_owned());
                }
            }
        }
    }
    assert!(names.len() > 20, "the dashboard queries the node's metrics: {names:?}");
    names
}

/// The sample names of a Prometheus text exposition.
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_owned())
        .collect()
}

/// Prometheus's conventions over a whole exposition: each family declared once, with HELP and
/// TYPE; counters, and only counters, end in `_total`; histograms in `_seconds`; every sample
/// belongs to a declared family.
fn assert_conventions(text: &str) {
    let mut kinds = std::collections::BTreeMap::new();
    for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let (name, kind) = line.split_once(' ').expect("name and type");
        assert!(kinds.insert(name.to_owned(), kind.to_owned()).is_none(), "{name} declared twice");
        assert!(text.contains(&format!("# HELP {name} ")), "{name} has no HELP");
        assert_eq!(kind == "counter", name.ends_with("_total"), "{name} is a {kind}");
        if kind == "histogram" {
            assert!(name.ends_with("_seconds"), "{name}: histograms here measure time, in seconds");
        }
    }
    for sample in exported(text) {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| sample.strip_suffix(s).filter(|f| kinds.get(*f).is_some_and(|k| k == "histogram")))
            .unwrap_or(&sample);
        assert!(kinds.contains_key(family), "{sample} has no # TYPE");
    }
}

async fn missing_from(base: &str, wanted: &BTreeSet<String>) -> BTreeSet<String> {
    let text = reqwest::get(format!("{base}/metrics")).await.expect("GET /metrics").text().await.expect("text");
    assert_conventions(&text);
    let have = exported(&text);
    wanted.iter().filter(|n| !have.contains(*n)).cloned().collect()
}

/// Metrics only a cluster member exports.
fn cluster_only(name: &str) -> bool {
    ["confab_peer_", "confab_cluster_", "confab_gossip_"].iter().any(|p| name.starts_with(p))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_exports_every_node_metric_the_dashboard_queries() {
    let db = TestDb::sqlite();
    let node = NodeProcess::spawn(BIN, db.dir.path(), &db.url, &[]).await;
    let wanted: BTreeSet<String> = dashboard_metrics().into_iter().filter(|n| !cluster_only(n)).collect();
    let missing = missing_from(&node.base, &wanted).await;
    assert!(missing.is_empty(), "the dashboard queries metrics the node does not export: {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_node_exports_every_metric_the_dashboard_queries() {
    let sb = Sandbox::start(BIN, 2).await;
    let wanted = dashboard_metrics();
    // Traffic between the nodes, so every peer series exists.
    let api = Api::register(&sb.bases[0], &unique("dash")).await;
    let room = api.room_id("general").await;
    for ws_url in &sb.ws_urls {
        let mut ws = api.ws(ws_url).await;
        ws.join(room, None).await;
        ws.send(json!({"type": "send", "room": room, "cid": unique("c"), "body": "hi"})).await;
        ws.recv_type("ack").await;
    }
    for base in &sb.bases {
        eventually("every dashboard metric on a cluster node", || async {
            missing_from(base, &wanted).await.is_empty().then_some(())
        })
        .await;
    }
}
