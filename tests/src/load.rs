//! A well-behaved client under chaos: it sends `n` messages with a window of unacknowledged ones,
//! resends the same `cid` when told to retry, and reconnects (rejoining with `since`) when its
//! connection closes. It returns every ack, one per cid.

use crate::{Api, Ws};
use serde_json::Value;
use std::collections::HashMap;

pub async fn send_reliably(
    api: &Api,
    ws_url: &str,
    room: i64,
    prefix: &str,
    n: usize,
    window: usize,
) -> HashMap<String, Value> {
    // The cluster client with one node: it reconnects to the same one.
    crate::cluster::send_reliably_any(api, &[ws_url.to_owned()], room, prefix, n, window).await.acks
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
