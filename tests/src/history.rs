//! Room history as a client folds it: messages with their latest edit and deletes applied, from
//! event frames (`message`, `edited`, `deleted`) or from REST pages (folded by the server).

use crate::Api;
use serde_json::Value;
use std::collections::BTreeMap;

/// Messages by seq: (body, edited, deleted). A deleted message has no body and no edit mark.
pub type Folded = BTreeMap<u64, (String, bool, bool)>;

/// Folds event frames of `room` the way a client does.
pub fn fold(frames: &[Value], room: i64) -> Folded {
    let mut out = Folded::new();
    for f in frames.iter().filter(|f| f["room"] == room) {
        let target = f["target"].as_u64().unwrap_or(0);
        match f["type"].as_str() {
            Some("message") => {
                out.insert(
                    f["seq"].as_u64().expect("seq"),
                    (f["body"].as_str().expect("body").to_owned(), false, false),
                );
            }
            Some("edited") => {
                if let Some(m) = out.get_mut(&target) {
                    *m = (f["body"].as_str().expect("body").to_owned(), true, m.2);
                }
            }
            Some("deleted") => {
                if let Some(m) = out.get_mut(&target) {
                    *m = (String::new(), false, true);
                }
            }
            _ => {}
        }
    }
    out
}

/// Every page of `room`'s REST history (`page` events at a time): the folded messages, the
/// events (`edited`, `deleted` frames) and the highest seq seen.
pub async fn rest_history(api: &Api, room: i64, page: u32) -> (Folded, Vec<Value>, u64) {
    let (mut out, mut events, mut after) = (Folded::new(), Vec::new(), 0);
    loop {
        let (status, v) = api.get(&format!("/api/rooms/{room}/messages?after={after}&limit={page}")).await;
        assert_eq!(status, 200, "{v}");
        let msgs = v["messages"].as_array().expect("messages");
        let evs = v["events"].as_array().expect("events");
        if msgs.is_empty() && evs.is_empty() {
            return (out, events, after);
        }
        for m in msgs {
            let seq = m["seq"].as_u64().expect("seq");
            out.insert(seq, (m["body"].as_str().expect("body").to_owned(), m["edited"] == true, m["deleted"] == true));
            after = after.max(seq);
        }
        for e in evs {
            after = after.max(e["seq"].as_u64().expect("seq"));
            events.push(e.clone());
        }
    }
}
