//! Room moderation: the `ModerationQueue` actor (one per room active on its owner node,
//! supervised by the room directory beside the room, placed with it and moving with it on
//! handoff: the node that sequences a room runs its queue), the queue item as clients see it
//! (`item_json`), the settings (`settings`: pre-moderation and the automatic flags, per room and
//! site-wide, with the node's cache) and the flags as the room's sequencer applies them (`flags`).
//!
//! The queue owns the room's queue items and their decisions:
//! - **reports** (filed by members, with the messages around the reported one as context);
//! - **held messages**: the room's sequencer, which decides that a message is held (premod or a
//!   flag), asks the queue to hold it (`ModerationHandle::hold`, awaited, so the sender's
//!   answers stay in order); the queue claims its uploads and stores it before the sender hears
//!   `held`, so it survives any actor kill and the owner's failover;
//! - **automatic flags** (`flag`: stored, and a flood's room mute with it);
//! - **decisions** (dismiss, delete, mute, ban; release and reject for a held message), which the
//!   gateway's staff routes (having checked the caller's standing) send to the room's owner as
//!   a command (`Command::Decide`), and the room hands to its queue. The queue takes one decision
//!   per item at a time, and writes each to the audit log (who, whom, what, why). The command is
//!   sent again when its answer is slow (`Ctx::command`, after 10 s): the queue knows it by its
//!   cid and answers it with its decision's outcome, never `conflict`;
//! - **announcing** each new item to the room's staff joined to it (`queued`, through the room,
//!   which knows who is joined on every node): held messages, flags and reports alike.
//!
//! The queue never gives a seq: a release (and a delete) goes through the room, the room's only
//! sequencer, which sequences the held message under its sender's cid (the next seq then; the
//! sender gets the normal ack), so the room's sequence never has a hole; a reject is carried out
//! by the room too (it orders it against a release of the same message), and never gets a seq.
//! The queue never waits on its room inside a message (the room waits on it to hold): decisions
//! that need the room run as tasks of the queue, which hear back with `Decided`.

mod decide;
pub(crate) mod flags;
pub mod settings;
#[cfg(test)]
mod tests;

use crate::ctx::Ctx;
use crate::msg::room::ReplyTo;
use crate::store::{ClaimRefusal, NewItem, QueueItem, RoomSanctionKind, Store};
use confab_schemas::wire::encode_server_frame;
use confab_schemas::{AttachmentView, now_ms};
use confab_schemas::{ErrorCode, MediaUrls, MessageRow, Refusal, RoomId, ServerFrame, UserId, UserRef};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// How long a room waits for its queue to store a held message.
const HOLD_TIMEOUT: Duration = Duration::from_secs(10);

/// What staff decide of a queue item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Dismiss,
    Delete,
    Mute,
    Ban,
    Release,
    Reject,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "dismiss" => Action::Dismiss,
            "delete" => Action::Delete,
            "mute" => Action::Mute,
            "ban" => Action::Ban,
            "release" => Action::Release,
            "reject" => Action::Reject,
            _ => return None,
        })
    }

    /// The item's status once this decision is taken.
    pub fn status(self) -> &'static str {
        match self {
            Action::Dismiss => "dismissed",
            Action::Delete => "deleted",
            Action::Mute => "muted",
            Action::Ban => "banned",
            Action::Release => "released",
            Action::Reject => "rejected",
        }
    }

    /// Whether this decision is one for an item of `kind`: a held message is released or
    /// rejected (or its sender muted or banned, which rejects it); any other item is dismissed,
    /// its message deleted, or its sender muted or banned.
    pub fn fits(self, kind: &str) -> bool {
        match self {
            Action::Release | Action::Reject => kind == "held",
            Action::Dismiss | Action::Delete => kind != "held",
            Action::Mute | Action::Ban => true,
        }
    }
}

/// A decision on item `item`, by staff its node authorised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub item: i64,
    pub action: Action,
    pub reason: String,
    /// How long a mute (default `DEFAULT_MUTE_MINUTES`) or a ban (default: until lifted) lasts.
    pub minutes: Option<u32>,
}

/// A mute decided from the queue lasts this long unless the decision says otherwise.
pub const DEFAULT_MUTE_MINUTES: u32 = 60;

/// What reaches a room's owner as the body of a system draft (so it gets there from any node the
/// way a system event does): what staff decide and what members report (for its queue), and
/// what the queue asks of its room (release or reject a held message, delete a message). Only
/// nodes send system drafts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Command {
    Release {
        item: i64,
    },
    Reject {
        item: i64,
        reason: String,
    },
    Delete {
        seq: u64,
    },
    /// For the room's queue: a staff decision.
    Decide(Decision),
    /// For the room's queue: a member's report of message `seq` (or of the room).
    Report {
        seq: Option<u64>,
        reason: String,
    },
}

/// How a command's body starts (no system event's does).
pub(crate) const COMMAND_PREFIX: &str = "{\"moderation\":";

#[derive(Serialize, Deserialize)]
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

/// A message the room's sequencer holds (its checks passed; premod or a flag holds it).
pub(crate) struct Held {
    pub(crate) sender: UserId,
    pub(crate) cid: Arc<str>,
    pub(crate) body: Arc<str>,
    pub(crate) reply_to: Option<u64>,
    pub(crate) reason: String,
    /// Upload ids (checked in form by the sender's session), claimed when it is held.
    pub(crate) uploads: Vec<Arc<str>>,
}

/// An automatic flag that fired on a message it refused.
pub(crate) struct Flagged {
    pub(crate) sender: UserId,
    pub(crate) flag: String,
    pub(crate) cid: String,
    pub(crate) body: String,
    /// A flood's room mute, until then.
    pub(crate) mute_until: Option<i64>,
}

pub(crate) enum ModerationMsg {
    Report {
        by: UserRef,
        seq: Option<u64>,
        reason: String,
        reply: ReplyTo,
        cid: Arc<str>,
    },
    Hold {
        held: Held,
        reply: RpcReplyPort<Result<QueueItem, Refusal>>,
    },
    Flag(Flagged),
    Decide {
        by: UserRef,
        decision: Decision,
        reply: ReplyTo,
        cid: Arc<str>,
    },
    /// A decision's task finished: its item, decider, command cid and answer.
    Decided {
        item: i64,
        by: UserId,
        cid: Arc<str>,
        res: Result<i64, Refusal>,
    },
}

/// The typed handle in front of a room's queue. Cheap to clone.
#[derive(Clone)]
pub(crate) struct ModerationHandle(ActorRef<ModerationMsg>);

impl ModerationHandle {
    pub(crate) fn new(actor: ActorRef<ModerationMsg>) -> ModerationHandle {
        ModerationHandle(actor)
    }

    pub(crate) fn id(&self) -> ActorId {
        self.0.get_id()
    }

    pub(crate) fn cell(&self) -> ractor::ActorCell {
        self.0.get_cell()
    }

    /// Holds a message: claims its uploads and stores it; the stored item (a resend of its cid:
    /// the one stored first, maybe decided since), or why it cannot be held.
    pub(crate) async fn hold(&self, held: Held) -> Result<QueueItem, Refusal> {
        match self.0.call(|reply| ModerationMsg::Hold { held, reply }, Some(HOLD_TIMEOUT)).await {
            Ok(CallResult::Success(res)) => res,
            _ => Err(Refusal::new(ErrorCode::Retry, "moderation is restarting; send again")),
        }
    }

    /// Files an automatic flag (not waited for).
    pub(crate) fn flag(&self, flagged: Flagged) {
        let _ = self.0.cast(ModerationMsg::Flag(flagged));
    }

    /// Takes a staff decision; `reply` gets an `ack` under `cid` (its `id` the item's) or an error.
    pub(crate) fn decide(&self, by: UserRef, decision: Decision, reply: ReplyTo, cid: Arc<str>) -> bool {
        self.0.cast(ModerationMsg::Decide { by, decision, reply, cid }).is_ok()
    }

    /// Files a member's report; `reply` gets an `ack` under `cid` (its `id` the report's) or an error.
    pub(crate) fn report(&self, by: UserRef, seq: Option<u64>, reason: String, reply: ReplyTo, cid: Arc<str>) -> bool {
        self.0.cast(ModerationMsg::Report { by, seq, reason, reply, cid }).is_ok()
    }
}

pub(crate) struct ModerationArgs {
    pub(crate) room: RoomId,
    pub(crate) ctx: Arc<Ctx>,
}

pub(crate) struct ModerationQueue;

pub(crate) struct QueueState {
    room: RoomId,
    ctx: Arc<Ctx>,
    /// Items with a decision under way, with the cid of the command that asked it: another
    /// decision of one is refused meanwhile (`retry`: it may yet fail).
    deciding: HashMap<i64, Arc<str>>,
    /// Who asked again for a decision under way, by its command's cid: the command is sent
    /// again when its answer is slow (`Ctx::command`), and the same decision is not another one.
    waiting: HashMap<Arc<str>, Vec<ReplyTo>>,
    /// The answers of the last decisions by their command's cid (at most `ANSWERS_KEPT`): a
    /// command sent again after its decision was taken gets the same answer, not `conflict`.
    answered: VecDeque<(Arc<str>, Result<i64, Refusal>)>,
}

/// How many decisions' answers a queue keeps for commands sent again.
const ANSWERS_KEPT: usize = 64;

impl Actor for ModerationQueue {
    type Msg = ModerationMsg;
    type State = QueueState;
    type Arguments = ModerationArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<ModerationMsg>,
        args: ModerationArgs,
    ) -> Result<QueueState, ActorProcessingErr> {
        Ok(QueueState {
            room: args.room,
            ctx: args.ctx,
            deciding: HashMap::new(),
            waiting: HashMap::new(),
            answered: VecDeque::new(),
        })
    }

    async fn handle(
        &self,
        me: ActorRef<ModerationMsg>,
        msg: ModerationMsg,
        st: &mut QueueState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ModerationMsg::Report { by, seq, reason, reply, cid } => {
                let res = st.report(by.id, seq, &reason).await;
                if let Ok(id) = res {
                    st.announce(id);
                }
                answer(st.room, &reply, by.id, cid, res);
            }
            ModerationMsg::Hold { held, reply } => {
                let _ = reply.send(st.hold(held).await);
            }
            ModerationMsg::Flag(f) => st.flag(f).await,
            ModerationMsg::Decide { by, decision, reply, cid } => {
                // The same command again (its answer was slow): the same decision, not another.
                if let Some((_, res)) = st.answered.iter().find(|(c, _)| *c == cid) {
                    answer(st.room, &reply, by.id, cid, res.clone());
                    return Ok(());
                }
                if st.deciding.values().any(|c| *c == cid) {
                    st.waiting.entry(cid).or_default().push(reply);
                    return Ok(());
                }
                let item = match st.check(&decision).await {
                    Ok(item) => item,
                    Err(refusal) => {
                        answer(st.room, &reply, by.id, cid, Err(refusal));
                        return Ok(());
                    }
                };
                st.deciding.insert(item.id, cid.clone());
                st.waiting.insert(cid.clone(), vec![reply]);
                let ctx = st.ctx.clone();
                tokio::spawn(async move {
                    let res = decide::carry_out(&ctx, &by, &item, &decision).await.map(|()| item.id);
                    let _ = me.cast(ModerationMsg::Decided { item: item.id, by: by.id, cid, res });
                });
            }
            ModerationMsg::Decided { item, by, cid, res } => {
                st.deciding.remove(&item);
                for reply in st.waiting.remove(&cid).unwrap_or_default() {
                    answer(st.room, &reply, by, cid.clone(), res.clone());
                }
                if st.answered.len() == ANSWERS_KEPT {
                    st.answered.pop_front();
                }
                st.answered.push_back((cid, res));
            }
        }
        Ok(())
    }
}

/// Answers a report or a decision: an `ack` whose `id` is the item's, or the refusal.
fn answer(room: RoomId, reply: &ReplyTo, user: UserId, cid: Arc<str>, res: Result<i64, Refusal>) {
    let frame = match res {
        Ok(id) => ServerFrame::Ack { cid: cid.clone(), room, seq: 0, id, ts: now_ms() },
        Err(refusal) => refusal.frame(Some(cid.to_string())),
    };
    reply.answer(room, user, cid, encode_server_frame(&frame));
}

fn internal(err: crate::Error) -> Refusal {
    warn!(%err, "moderation storage error");
    Refusal::new(ErrorCode::Internal, "storage error; try again")
}

impl QueueState {
    async fn report(&self, reporter: UserId, seq: Option<u64>, reason: &str) -> Result<i64, Refusal> {
        let id = self.ctx.store.add_report(self.room, seq, reporter, reason).await.map_err(internal)?;
        let detail = format!("report {id} seq {seq:?}: {reason}");
        self.ctx.store.audit(Some(reporter), "report", Some(self.room), &detail).await.map_err(internal)?;
        Ok(id)
    }

    /// Tells the room's staff joined to it of a new item (`queued`), through the room, which
    /// knows who is joined here and on other nodes; not waited for (the room may be waiting on
    /// this queue to hold a message).
    fn announce(&self, id: i64) {
        let (ctx, room) = (self.ctx.clone(), self.room);
        tokio::spawn(async move {
            let item = match ctx.store.queue_item(id).await {
                Ok(item) => item,
                Err(e) => {
                    warn!(%room, item = id, err = %e, "reading a new queue item failed");
                    None
                }
            };
            let Some(item) = item else { return };
            match ctx.activate(room).await {
                Ok(handle) => handle.queued(item),
                Err(refusal) => warn!(%room, item = id, %refusal, "a new queue item could not be announced"),
            }
        });
    }

    async fn hold(&self, held: Held) -> Result<QueueItem, Refusal> {
        let attachments = if held.uploads.is_empty() {
            Vec::new()
        } else {
            // Claimed for its cid now (seq 0: not sequenced), so nothing else takes them and the
            // sweeper keeps them while it is held; its release claims them again with its seq.
            let orphans_before = now_ms() - self.ctx.config.upload_orphan_ttl.as_millis() as i64;
            self.ctx
                .store
                .claim_uploads(held.sender, self.room, &held.cid, 0, &held.uploads, orphans_before)
                .await
                .map_err(internal)?
                .map_err(Refusal::from)?
        };
        let item = NewItem {
            room: self.room,
            kind: "held",
            sender: held.sender,
            reason: &held.reason,
            body: &held.body,
            cid: &held.cid,
            reply_to: held.reply_to,
            attachments: &attachments,
        };
        let id = self.ctx.store.add_queue_item(item).await.map_err(internal)?;
        self.ctx
            .store
            .queue_item(id)
            .await
            .map_err(internal)?
            .ok_or_else(|| Refusal::new(ErrorCode::Internal, "the held message was not stored; send again"))
    }

    async fn flag(&self, f: Flagged) {
        let item = NewItem {
            room: self.room,
            kind: "flag",
            sender: f.sender,
            reason: &f.flag,
            body: &f.body,
            cid: &f.cid,
            reply_to: None,
            attachments: &[],
        };
        match self.ctx.store.add_queue_item(item).await {
            Ok(id) => self.announce(id),
            Err(e) => warn!(room = %self.room, err = %e, "storing a flag failed"),
        }
        if let Some(until) = f.mute_until {
            let mute = self.ctx.store.put_room_sanction(
                self.room,
                f.sender,
                RoomSanctionKind::Mute,
                None,
                &f.flag,
                Some(until),
            );
            match mute.await {
                Ok(()) => self.ctx.mutes.invalidate(),
                Err(e) => warn!(room = %self.room, err = %e, "storing a flood mute failed"),
            }
        }
    }

    /// The item a decision is about, if it may be taken now: in this room, open, of a kind the
    /// decision fits, no other decision of it under way.
    async fn check(&self, d: &Decision) -> Result<QueueItem, Refusal> {
        let item = self
            .ctx
            .store
            .queue_item(d.item)
            .await
            .map_err(internal)?
            .filter(|i| i.room == self.room)
            .ok_or_else(|| Refusal::new(ErrorCode::NotFound, format!("no item {} in this room's queue", d.item)))?;
        if !d.action.fits(&item.kind) {
            let what = if item.kind == "held" {
                "a held message is released or rejected (or its sender muted or banned)"
            } else {
                "only a held message is released or rejected"
            };
            return Err(Refusal::new(ErrorCode::Invalid, what));
        }
        if item.status != "open" {
            return Err(Refusal::new(ErrorCode::Conflict, format!("this item was decided already ({})", item.status)));
        }
        if self.deciding.contains_key(&item.id) {
            // Not `conflict`: that decision may yet fail and leave the item open.
            return Err(Refusal::new(ErrorCode::Retry, "another decision on this item is under way; try again"));
        }
        if matches!(d.action, Action::Mute | Action::Ban) && item.sender.is_none() {
            return Err(Refusal::new(ErrorCode::Invalid, "this item names no sender to sanction"));
        }
        if d.action == Action::Delete && item.seq.is_none() {
            return Err(Refusal::new(ErrorCode::Invalid, "this item names no message to delete"));
        }
        Ok(item)
    }
}

fn person(p: &Option<(UserId, String)>) -> Value {
    p.as_ref().map_or(Value::Null, |(id, name)| json!({"id": id, "username": name}))
}

/// A queue item as the queue routes list it and `queued` frames carry it; `context` is the
/// messages around a reported one (its body is the item's `body`); a held message's
/// attachments with signed URLs.
pub fn item_json(item: &QueueItem, context: &[MessageRow], urls: &dyn MediaUrls) -> Value {
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
        "decision_reason": item.decision_reason,
        "attachments": AttachmentView::all(&item.attachments, urls),
    })
}

/// Messages shown on each side of a reported one.
pub const CONTEXT: u64 = 2;

/// `item_json` with its context: the messages around the one it is about (`CONTEXT` each side).
pub async fn item_with_context(store: &Store, item: &QueueItem, urls: &(dyn MediaUrls + Sync)) -> crate::Result<Value> {
    let context = match item.seq {
        Some(seq) => {
            let from = seq.saturating_sub(CONTEXT).max(1);
            store.messages_between(item.room, from, seq + CONTEXT, (2 * CONTEXT + 1) as u32).await?
        }
        None => Vec::new(),
    };
    Ok(item_json(item, &context, urls))
}

/// Why uploads could not be claimed, as the sender reads it.
impl From<ClaimRefusal> for Refusal {
    fn from(refusal: ClaimRefusal) -> Refusal {
        match refusal {
            ClaimRefusal::NotFound(id) => Refusal::new(
                ErrorCode::AttachmentNotFound,
                format!("there is no upload {id} of yours (uploads not sent within their time are deleted)"),
            ),
            ClaimRefusal::Used(id) => {
                Refusal::new(ErrorCode::AttachmentUsed, format!("upload {id} is attached to another message"))
            }
        }
    }
}
