//! How the queue carries out a decision, as a task of its own (it may wait on the room, which
//! may be waiting on the queue to hold a message). What gives a seq, or must be ordered against
//! one, goes through the room: a release (sequenced under its sender's cid, then recorded), a
//! reject (recorded by the room, which tells the sender), a delete. The rest is claimed in
//! storage first (a second decision of the item is refused before anything is done twice) and
//! opened again if its action fails. A mute or ban of a held message's sender rejects it too.
//! Every decision is written to the audit log with its room, target and reason.

use super::{Action, Command, DEFAULT_MUTE_MINUTES, Decision, internal};
use crate::ctx::Ctx;
use crate::store::{AuditAction, QueueItem, RoomSanctionKind};
use confab_schemas::{ErrorCode, Refusal, SystemEvent, UserId, UserRef, now_ms};
use serde_json::json;
use tracing::warn;

pub(super) async fn carry_out(ctx: &Ctx, by: &UserRef, item: &QueueItem, d: &Decision) -> Result<(), Refusal> {
    let room = item.room;
    let reason = d.reason.as_str();
    let held = item.kind == "held";
    match d.action {
        Action::Release => {
            ctx.command(room, by.clone(), &Command::Release { item: item.id }).await?;
            // Sequenced now (or by an earlier attempt, under the same cid): recorded.
            ctx.store.decide_item(item.id, "released", Some(by.id), reason).await.map_err(internal)?;
        }
        Action::Reject => {
            ctx.command(room, by.clone(), &Command::Reject { item: item.id, reason: reason.to_owned() }).await?;
        }
        Action::Mute | Action::Ban if held => {
            ctx.command(room, by.clone(), &Command::Reject { item: item.id, reason: reason.to_owned() }).await?;
            sanction(ctx, by, item, d).await?;
        }
        action => {
            if !ctx.store.decide_item(item.id, action.status(), Some(by.id), reason).await.map_err(internal)? {
                return Err(Refusal::new(ErrorCode::Conflict, "this item was decided already"));
            }
            let done = match action {
                Action::Delete => delete(ctx, by, item).await,
                Action::Mute | Action::Ban => sanction(ctx, by, item, d).await,
                _ => Ok(()),
            };
            if let Err(refusal) = done {
                if let Err(e) = ctx.store.reopen_item(item.id).await {
                    warn!(room = %room, item = item.id, err = %e, "reopening a queue item failed");
                }
                return Err(refusal);
            }
        }
    }
    let status = if held && matches!(d.action, Action::Mute | Action::Ban) { "rejected" } else { d.action.status() };
    let detail = json!({"item": item.id, "kind": item.kind, "seq": item.seq, "reason": reason});
    audit(ctx, by, &format!("room.queue_{status}"), item, sender(item), detail).await
}

fn sender(item: &QueueItem) -> Option<UserId> {
    item.sender.as_ref().map(|(id, _)| *id)
}

async fn delete(ctx: &Ctx, by: &UserRef, item: &QueueItem) -> Result<(), Refusal> {
    let seq = item.seq.unwrap_or(0);
    match ctx.command(item.room, by.clone(), &Command::Delete { seq }).await {
        // Deleted already: what the decision wanted.
        Ok(_) | Err(Refusal { code: ErrorCode::Gone, .. }) => Ok(()),
        Err(r) => Err(r),
    }
}

/// Mutes (for `minutes`, default `DEFAULT_MUTE_MINUTES`) or bans (for `minutes`, default until
/// lifted: removed from the room now) the item's sender in its room.
async fn sanction(ctx: &Ctx, by: &UserRef, item: &QueueItem, d: &Decision) -> Result<(), Refusal> {
    let Some((target, username)) = item.sender.clone() else {
        return Err(Refusal::new(ErrorCode::Invalid, "this item names no sender to sanction"));
    };
    let (kind, until) = match d.action {
        Action::Mute => {
            (RoomSanctionKind::Mute, Some(now_ms() + i64::from(d.minutes.unwrap_or(DEFAULT_MUTE_MINUTES)) * 60_000))
        }
        _ => (RoomSanctionKind::Ban, d.minutes.map(|m| now_ms() + i64::from(m) * 60_000)),
    };
    let store = &ctx.store;
    store.put_room_sanction(item.room, target, kind, Some(by.id), &d.reason, until).await.map_err(internal)?;
    if kind == RoomSanctionKind::Mute {
        ctx.mutes.invalidate();
    } else if store.remove_member(item.room, target).await.map_err(internal)? {
        let event = SystemEvent::MemberRemoved { user: UserRef { id: target, username: username.into() } };
        if let Err(refusal) = ctx.announce(item.room, by.clone(), event).await {
            warn!(room = %item.room, %refusal, "a ban removed a member but could not be announced");
        }
    }
    let detail = json!({"reason": d.reason, "expires_at": until, "item": item.id});
    audit(ctx, by, &format!("room.{}", kind.as_str()), item, Some(target), detail).await
}

async fn audit(
    ctx: &Ctx,
    by: &UserRef,
    action: &str,
    item: &QueueItem,
    target: Option<UserId>,
    detail: serde_json::Value,
) -> Result<(), Refusal> {
    let detail = detail.to_string();
    let entry = AuditAction { actor: Some(by.id), action, target, room: Some(item.room), detail: &detail };
    ctx.store.audit_action(entry).await.map_err(internal)
}
