//! Join replay: what a joiner missed, sent from the history cache page by page at the pace its
//! own socket drains, then handed over to the room's live fan-out. Subscribers whose queue could
//! not take what they missed while their room restarted or moved (`catch_up`) get the rest the
//! same way.
//!
//! A replaying subscriber is skipped by the fan-out. Its task reads one page (64 messages) at a
//! time and queues a message only while the connection's queue is at most half full
//! (`Outbound::push_replayed`), so a joiner that does not read holds one page and half its own
//! queue, and the room actor never waits or reads history for it. Once the task has reached
//! the last seq fanned out (`Shared::fanned`), checked under the room's lock, the subscriber
//! goes live. The task never outlives its subscription: a newer join, a leave or a closed
//! connection ends it. What the room's in-memory tail (`Shared::tail`) still holds is read from
//! it, so a client resuming after a short absence costs no database read; older history comes
//! from the history cache (full pages) or the database (`confab_history_reads_total`).

use super::shared::{RoomShared, Sub, joined_frames};
use crate::ctx::Ctx;
use crate::history::PAGE;
use crate::msg::room::Subscriber;
use crate::msg::session::SessionMsg;
use crate::outbound::Refused;
use bytes::Bytes;
use confab_schemas::{RoomId, ServerFrame};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use tracing::warn;

/// Where a join's replay starts: after `since` (the head when none), or at the head with a
/// `resync` when the gap is larger than `max_replay`.
pub(crate) fn replay_from(head: u64, since: Option<u64>, max_replay: u64) -> (u64, bool) {
    let since = since.unwrap_or(head).min(head);
    let resync = head - since > max_replay;
    (if resync { head } else { since }, resync)
}

/// Why a join's answer was not queued.
pub(crate) enum NotQueued {
    /// The joiner's queue is full: it was told to close with its cursor.
    Full,
    /// The session gave this attempt up (its call timed out) or is gone: nobody waits for it.
    Stale,
}

/// Queues a join's answer for `sub`'s attempt: `joined`, then `resync` when the replay starts at
/// `head` for want of room. Returns the seq its replay starts after (what the client has).
pub(crate) fn queue_joined(
    sub: &Subscriber,
    joined: ServerFrame,
    head: u64,
    from: u64,
    resync: bool,
) -> Result<u64, NotQueued> {
    let room = sub.ticket.room;
    let frames = joined_frames(joined, resync.then_some(ServerFrame::Resync { room, head }));
    match sub.out.push_joined(sub.ticket, from, frames) {
        Ok(after) => Ok(after),
        Err(Refused::Full) => {
            let _ = sub.session_ref.cast(SessionMsg::Lagging { room, last_seq: from });
            Err(NotQueued::Full)
        }
        Err(Refused::Stale | Refused::Closed) => Err(NotQueued::Stale),
    }
}

/// Queues to every live subscriber the messages of `missed` (in seq order, each encoded once
/// for all) it does not have yet, as far as its queue takes them: what a restart or a new
/// subscription at the owner left it without. `catch_up` then replays the rest.
pub(crate) fn push_missed(room: RoomId, subs: &mut [Sub], missed: &[(u64, Bytes)]) {
    for sub in subs.iter_mut().filter(|s| s.replay == 0) {
        let after = sub.last_seq;
        for (seq, frame) in missed.iter().filter(|(seq, _)| *seq > after) {
            if sub.s.out.push_messages(room, *seq, *seq, frame.clone()).is_err() {
                break;
            }
            sub.last_seq = *seq;
        }
    }
}

/// Subscribers still behind `head` after a restart or a new subscription at the owner (their
/// queue could not take all they missed) catch up as a joiner does, each through its own paced
/// replay, so that a backlog larger than a connection's queue (a partition healing) never closes
/// a socket that is reading. Called under the room's lock, with `fanned` already at `head`.
pub(crate) fn catch_up(ctx: &Arc<Ctx>, shared: &Arc<RoomShared>, room: RoomId, subs: &mut [Sub], head: u64) {
    for sub in subs.iter_mut().filter(|s| s.replay == 0 && s.last_seq < head) {
        sub.replay = sub.s.ticket.attempt.max(1);
        start(ctx.clone(), shared.clone(), room, sub.s.session, sub.replay, sub.last_seq);
    }
}

/// Replays `room` after seq `after` to the subscriber of `session` whose replay is `replay` (its
/// join attempt), in a task of its own.
pub(crate) fn start(ctx: Arc<Ctx>, shared: Arc<RoomShared>, room: RoomId, session: u64, replay: u64, after: u64) {
    tokio::spawn(run(ctx, shared, room, session, replay, after));
}

async fn run(ctx: Arc<Ctx>, shared: Arc<RoomShared>, room: RoomId, session: u64, replay: u64, after: u64) {
    let mut pos = after;
    loop {
        // Where the live stream is; live from here when the replay got there.
        let (target, out, session_ref, from_tail) = {
            let mut sh = shared.lock();
            let fanned = sh.fanned;
            let Some(sub) = sh.subs.iter_mut().find(|s| s.s.session == session && s.replay == replay) else {
                return;
            };
            sub.last_seq = pos;
            if pos >= fanned {
                sub.replay = 0;
                return;
            }
            let (out, session_ref) = (sub.s.out.clone(), sub.s.session_ref.clone());
            (fanned, out, session_ref, sh.tail_after(pos, fanned, PAGE as usize))
        };
        let rows = match from_tail {
            Some(rows) => {
                ctx.metrics.history_reads_tail.fetch_add(1, Relaxed);
                Ok(rows)
            }
            None => {
                let page_end = (pos / PAGE + 1) * PAGE;
                ctx.history.range(&ctx.store, &ctx.metrics, room, pos + 1, page_end.min(target), target).await
            }
        };
        let rows = match rows {
            Ok(rows) if rows.first().is_some_and(|r| r.seq == pos + 1) => rows,
            other => {
                // Storage failed or holds a gap: the client resumes later from what it has.
                if let Err(e) = other {
                    warn!(%room, err = %e, "replay read failed");
                } else {
                    warn!(%room, after = pos, "replay found no next message in storage");
                }
                let _ = session_ref.cast(SessionMsg::Lagging { room, last_seq: pos });
                return;
            }
        };
        for row in &rows {
            if row.seq != pos + 1 {
                break;
            }
            let frame = shared.encode(ServerFrame::event(row, &ctx.config.media));
            if out.push_replayed(room, row.seq, frame).await.is_err() {
                // Gone, closing, or no longer in the room.
                return;
            }
            pos = row.seq;
        }
    }
}
