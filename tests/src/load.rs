//! A well-behaved client under chaos: it sends `n` messages with a window of unacknowledged ones,
//! resends the same `cid` when told to retry, and reconnects (rejoining with `since`) when its
//! connection closes. It returns every ack, one per cid.

use crate::{Api, Ws};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

pub async fn send_reliably(
    api: &Api,
    ws_url: &str,
    room: i64,
    prefix: &str,
    n: usize,
    window: usize,
) -> HashMap<String, Value> {
    let frame = |i: usize| json!({"type": "send", "room": room, "cid": format!("{prefix}-{i}"), "body": format!("{prefix} #{i}")});
    let mut ws = api.ws(ws_url).await;
    ws.join(room, Some(0)).await;
    let mut acks: HashMap<String, Value> = HashMap::new();
    let mut unacked: BTreeMap<usize, ()> = BTreeMap::new();
    let mut next = 0;
    while acks.len() < n {
        while next < n && unacked.len() < window {
            let _ = ws.try_send(frame(next)).await; // a lost send is resent after the reconnect
            unacked.insert(next, ());
            next += 1;
        }
        match ws.next().await {
            Some(f) if f["type"] == "ack" => {
                let cid = f["cid"].as_str().expect("cid").to_owned();
                let i: usize = cid.rsplit('-').next().and_then(|s| s.parse().ok()).expect("our cid");
                unacked.remove(&i);
                if let Some(old) = acks.insert(cid.clone(), f.clone()) {
                    assert_eq!(old, f, "a repeated cid got a different ack");
                }
            }
            Some(f) if f["type"] == "error" => {
                let code = f["code"].as_str().unwrap_or_default();
                assert!(matches!(code, "retry" | "overloaded"), "unexpected error {f}");
                if let Some(i) = f["ref"].as_str().and_then(|c| c.rsplit('-').next()).and_then(|s| s.parse().ok()) {
                    let _ = ws.try_send(frame(i)).await;
                }
            }
            Some(_) => {}
            None => {
                // Closed (session restart, lagging): reconnect and resend what is unacked.
                ws = api.ws(ws_url).await;
                ws.join(room, Some(0)).await;
                for &i in unacked.keys() {
                    let _ = ws.try_send(frame(i)).await;
                }
            }
        }
    }
    ws.close().await;
    acks
}

/// Receives the messages of `room` from seq 1 until `count` arrived, reconnecting with `since`
/// when the connection closes. Returns the seqs in arrival order.
pub async fn receive_all(ws: &mut Ws, api: &Api, ws_url: &str, room: i64, count: u64) -> Vec<Value> {
    let mut got: Vec<Value> = Vec::new();
    while (got.len() as u64) < count {
        match ws.next().await {
            Some(f) if f["type"] == "message" && f["room"] == room => got.push(f),
            Some(f) if f["type"] == "resync" => panic!("unexpected resync {f}"),
            Some(_) => {}
            None => {
                *ws = api.ws(ws_url).await;
                let since = got.last().map(|m| m["seq"].as_u64().unwrap()).unwrap_or(0);
                ws.join(room, Some(since)).await;
            }
        }
    }
    got
}
