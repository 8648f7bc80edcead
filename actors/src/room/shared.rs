//! What outlives one incarnation of a room actor (`RoomShared`, kept by the room directory):
//! the local subscribers with the last seq each was sent, the nodes subscribed to the room, the
//! messages handed to the writer but not answered yet, and the handle of the room's queue. The room actor, the proxy of a room
//! owned elsewhere and the join replay share it under one lock.

use crate::cluster::NodeLink;
use crate::moderation::ModerationHandle;
use crate::msg::room::{ReplyTo, Subscriber};
use bytes::Bytes;
use confab_schemas::wire::encode_server_frame;
use confab_schemas::{ErrorCode, MessageRow, Refusal, RoomId, ServerFrame, UserId};
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// State that outlives one incarnation of a room actor.
#[derive(Default)]
pub(crate) struct RoomShared {
    inner: Mutex<Shared>,
    /// The last incarnation stopped because the room moved, not because it failed.
    pub(crate) moved: std::sync::atomic::AtomicBool,
    /// The room's moderation queue while the room is sequenced here (set by the directory,
    /// which restarts it apart from the room).
    queue: Mutex<Option<ModerationHandle>>,
    /// A stranger chat's two members, shown as `Stranger` in every frame (set once, by the
    /// directory, before any incarnation starts).
    pub(crate) seats: std::sync::OnceLock<confab_schemas::Seats>,
}

impl RoomShared {
    /// `frame` as this room shows it (a stranger chat's members masked).
    pub(crate) fn mask(&self, frame: confab_schemas::ServerFrame) -> confab_schemas::ServerFrame {
        match self.seats.get() {
            Some(seats) => seats.mask(frame),
            None => frame,
        }
    }

    /// `frame` masked and encoded.
    pub(crate) fn encode(&self, frame: confab_schemas::ServerFrame) -> bytes::Bytes {
        confab_schemas::wire::encode_server_frame(&self.mask(frame))
    }
}

/// A room's subscribers and writes in flight, under `RoomShared`'s lock.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) subs: Vec<Sub>,
    pub(super) pending: VecDeque<Pending>,
    /// Nodes subscribed to this room's events (on the owner).
    pub(super) nodes: Vec<NodeLink>,
    /// The last seq fanned out to live subscribers: a replay that got there goes live.
    pub(crate) fanned: u64,
    /// The room's newest committed events (at most `tail_len`), oldest first, kept by the local
    /// room actor; a join's replay reads them here before the history cache or the database.
    /// Empty on a proxy of a room owned elsewhere.
    pub(crate) tail: VecDeque<MessageRow>,
}

/// One local subscriber, as the room feeds it.
pub(crate) struct Sub {
    pub(crate) s: Subscriber,
    /// The last message seq enqueued to this subscriber.
    pub(crate) last_seq: u64,
    /// Catching up (its join attempt; 0: live): the fan-out skips it, `replay` feeds it.
    pub(crate) replay: u64,
}

impl Sub {
    /// A subscription at `after`, replaying up to `fanned` first when it is behind.
    pub(crate) fn new(s: Subscriber, after: u64, fanned: u64) -> Sub {
        let replay = if after < fanned { s.ticket.attempt.max(1) } else { 0 };
        Sub { s, last_seq: after, replay }
    }
}

/// A message handed to the writer and not answered yet.
pub(super) struct Pending {
    pub(super) row: MessageRow,
    /// The members the message mentions.
    pub(super) mentions: Vec<UserId>,
    /// Where to answer (the last one that sent this cid).
    pub(super) reply: ReplyTo,
    pub(super) sent_at: Instant,
    /// For a delete of another user's message: that user (the delete is audited once durable).
    pub(super) deleted_for: Option<UserId>,
    /// A staff command's message (`premod::Released`).
    pub(super) released: Option<super::premod::Released>,
}

impl Shared {
    /// The events after seq `after`, up to seq `to` and at most `limit` of them, when the tail
    /// holds the first of them (it is gap-free, so it then holds them all up to its newest).
    pub(crate) fn tail_after(&self, after: u64, to: u64, limit: usize) -> Option<Vec<MessageRow>> {
        let first = self.tail.front()?.seq;
        if after + 1 < first || to <= after {
            return None;
        }
        let rows: Vec<MessageRow> = self
            .tail
            .iter()
            .skip((after + 1 - first) as usize)
            .take_while(|r| r.seq <= to)
            .take(limit)
            .cloned()
            .collect();
        rows.first().is_some_and(|r| r.seq == after + 1).then_some(rows)
    }
}

impl RoomShared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Shared> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The room's moderation queue, if it runs.
    pub(crate) fn queue(&self) -> Option<ModerationHandle> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set_queue(&self, queue: Option<ModerationHandle>) {
        *self.queue.lock().unwrap_or_else(|p| p.into_inner()) = queue;
    }

    /// The room was deleted: every subscriber of this node is told, and forgets it.
    pub(crate) fn room_deleted(&self, room: RoomId) {
        let frame = encode_server_frame(&ServerFrame::RoomDeleted { room });
        let mut sh = self.lock();
        for sub in sh.subs.drain(..) {
            sub.s.out.forget(room);
            let _ = sub.s.out.push(frame.clone());
        }
        sh.nodes.clear();
    }

    /// The room's actor stopped and cannot start again for now: each subscribed session refuses
    /// its unanswered sends with `retry` (`SessionMsg::RoomDown`).
    pub(crate) fn room_down(&self, room: RoomId) {
        for sub in &self.lock().subs {
            let _ = sub.s.session_ref.cast(crate::msg::session::SessionMsg::RoomDown { room });
        }
    }

    /// Sessions and nodes subscribed right now.
    pub(crate) fn subscriber_count(&self) -> usize {
        let sh = self.lock();
        sh.subs.len() + sh.nodes.len()
    }
}

/// A join's answer in one buffer: `joined`, then `resync` when the gap was too large.
pub(crate) fn joined_frames(joined: ServerFrame, resync: Option<ServerFrame>) -> Bytes {
    match resync {
        None => encode_server_frame(&joined),
        Some(r) => Bytes::from([encode_server_frame(&joined), encode_server_frame(&r)].concat()),
    }
}

/// The answer to a join attempt its session no longer waits for (nobody reads it).
pub(crate) fn stale_join() -> Refusal {
    Refusal::new(ErrorCode::Retry, "the join was given up; join again")
}
