//! Room moderation: the `ModerationQueue` actor (one per active room, supervised beside it),
//! which files users' reports to the queue and the audit log; the queue item as clients see it
//! (`item_json`); the settings (`settings`: pre-moderation and the automatic flags, per room and
//! site-wide, with the node's cache) and the flags as the room's sequencer applies them
//! (`flags`). Held messages and flags are queued by the room's sequencer itself (it must answer
//! the sender in order); decisions are made by the gateway's room staff routes, through the room
//! for what needs a seq (release, delete) or an answer to the sender (reject).

pub(crate) mod flags;
pub mod settings;

use crate::store::{QueueItem, Store};
use confab_schemas::{MessageRow, RoomId, UserId};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::{Value, json};

pub enum ModerationMsg {
    Report { seq: Option<u64>, reporter: UserId, reason: String, reply: RpcReplyPort<Result<i64, String>> },
}

pub struct ModerationArgs {
    pub room: RoomId,
    pub store: Store,
}

pub struct ModerationQueue;

impl Actor for ModerationQueue {
    type Msg = ModerationMsg;
    type State = ModerationArgs;
    type Arguments = ModerationArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<ModerationMsg>,
        args: ModerationArgs,
    ) -> Result<ModerationArgs, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        _me: ActorRef<ModerationMsg>,
        msg: ModerationMsg,
        st: &mut ModerationArgs,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ModerationMsg::Report { seq, reporter, reason, reply } => {
                let res = async {
                    let id = st.store.add_report(st.room, seq, reporter, &reason).await?;
                    let detail = format!("report {id} seq {seq:?}: {reason}");
                    st.store.audit(Some(reporter), "report", Some(st.room), &detail).await?;
                    Ok::<_, crate::Error>(id)
                }
                .await;
                let _ = reply.send(res.map_err(|e| e.to_string()));
            }
        }
        Ok(())
    }
}

fn person(p: &Option<(UserId, String)>) -> Value {
    p.as_ref().map_or(Value::Null, |(id, name)| json!({"id": id, "username": name}))
}

/// A queue item as the queue routes list it and `queued` frames carry it; `context` is the
/// messages around a reported one (its body is the item's `body`).
pub fn item_json(item: &QueueItem, context: &[MessageRow]) -> Value {
    let body = match (&item.body, item.seq) {
        (Some(b), _) => Value::String(b.clone()),
        (None, Some(seq)) => context.iter().find(|m| m.seq == seq).map_or(Value::Null, |m| json!(m.body)),
        (None, None) => Value::Null,
    };
    let context: Vec<Value> = context
        .iter()
        .map(|m| json!({"seq": m.seq, "sender": {"id": m.sender, "username": m.sender_name}, "body": m.body, "ts": m.ts}))
        .collect();
    json!({
        "id": item.id, "kind": item.kind, "room": item.room, "room_name": item.room_name, "seq": item.seq,
        "reporter": person(&item.reporter), "sender": person(&item.sender), "reason": item.reason, "body": body,
        "context": context, "status": item.status, "created_at": item.created_at,
        "decided_by": person(&item.decided_by), "decided_at": item.decided_at,
    })
}

/// What room staff ask of a room's sequencer, sent to it as the body of a system draft (so it
/// reaches the owner of the room on any node the way a system event does): release or reject a
/// held message, delete a message. Only nodes send system drafts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    Release { item: i64 },
    Reject { item: i64, reason: String },
    Delete { seq: u64 },
}

/// How a command's body starts (no system event's does).
pub(crate) const COMMAND_PREFIX: &str = "{\"moderation\":";

#[derive(serde::Serialize, serde::Deserialize)]
struct Wrapped {
    moderation: Command,
}

impl Command {
    pub(crate) fn body(&self) -> String {
        serde_json::to_string(&Wrapped { moderation: self.clone() }).unwrap_or_default()
    }

    pub(crate) fn parse(body: &str) -> Option<Command> {
        serde_json::from_str::<Wrapped>(body).ok().map(|w| w.moderation)
    }
}
