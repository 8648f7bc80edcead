//! A session's outbound queue as rooms see it: bounded, pre-encoded frames, shed by class.
//!
//! Chat messages and acks are never dropped: when the queue is full the room stops feeding the
//! session and tells it to close with a resume cursor. Typing and presence are only enqueued while
//! the queue is at most half full, so they are shed first.
//!
//! It also keeps, per joined room, the highest message seq queued to the client (its resume
//! cursor) and which join attempt may still answer: a message at or below the cursor is never
//! queued twice, whichever path (fan-out, replay, a late join) offers it, a join attempt the
//! session gave up on cannot answer, and a `reconnect` hint carries the cursors of the frames
//! queued before it.
//!
//! The queue allocates nothing until a frame is queued and gives its buffer back once a burst is
//! drained, so an idle connection costs only the small shared header (a tokio channel keeps a
//! block of slots per connection for its whole life).

use bytes::Bytes;
use confab_schemas::wire::{Opcode, close_frame, encode_server_frame};
use confab_schemas::{RoomId, ServerFrame};
use futures::task::AtomicWaker;
use std::collections::{BTreeMap, VecDeque};
use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use tokio::sync::Notify;

/// Frames a drained queue may keep room for; a larger buffer is given back.
const KEEP_SLOTS: usize = 8;

struct Shared {
    queue: Mutex<Queue>,
    capacity: usize,
    /// Wakes the receiver (a frame arrived, or the last sender left): one waiter at most, so a
    /// waker slot rather than a wait list (cheaper on the fan-out's path, and the receiver's
    /// pending future is a reference).
    arrived: AtomicWaker,
    /// Wakes a sender waiting for room.
    drained: Notify,
    senders: AtomicUsize,
}

struct Queue {
    frames: VecDeque<Bytes>,
    receiver_gone: bool,
    /// The receiver ends once the queue is empty, though senders remain (see [`Finisher`]).
    finished: bool,
    /// A `reconnect` hint is on its way: no more messages, the cursors are final.
    sealed: bool,
    /// A frame that must not be lost found the queue full: the hint and the close went behind
    /// what is queued (see [`Outbound::push`]).
    overflowed: bool,
    /// Per room, the client's position (a few rooms per connection: a vector is fastest).
    cursors: Vec<Cursor>,
    /// The last join attempt handed out.
    attempts: u64,
}

/// One room's position in this connection's stream.
struct Cursor {
    room: RoomId,
    /// The highest seq queued (or known to the client, from its `since`); meaningful once
    /// `joined`.
    seq: u64,
    /// A `joined` frame for the room was queued: the client is in the room.
    joined: bool,
    /// The join attempt allowed to answer (0: none).
    attempt: u64,
    /// That attempt's `joined` was queued.
    answered: bool,
}

impl Queue {
    /// The client's cursor in every room it joined: what a `reconnect` hint tells it to resume
    /// from.
    fn resume(&self) -> BTreeMap<String, u64> {
        self.cursors.iter().filter(|c| c.joined).map(|c| (c.room.to_string(), c.seq)).collect()
    }

    fn cursor(&mut self, room: RoomId) -> Option<&mut Cursor> {
        self.cursors.iter_mut().find(|c| c.room == room)
    }

    fn cursor_or_new(&mut self, room: RoomId) -> &mut Cursor {
        match self.cursors.iter().position(|c| c.room == room) {
            Some(i) => &mut self.cursors[i],
            None => {
                self.cursors.push(Cursor { room, seq: 0, joined: false, attempt: 0, answered: false });
                self.cursors.last_mut().expect("just pushed")
            }
        }
    }
}

/// One join attempt of a session for a room: only the newest attempt may answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinTicket {
    pub room: RoomId,
    pub attempt: u64,
}

/// Whether a message frame was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    Yes,
    /// The client already has every seq of it: nothing was queued.
    AlreadySent,
    /// It has some of them, up to this seq: queue only the ones after it.
    Partly(u64),
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The sending side of one connection's outbound queue.
pub struct Outbound {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound").field("capacity", &self.shared.capacity).finish()
    }
}

impl Clone for Outbound {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Outbound { shared: self.shared.clone() }
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.arrived.wake();
        }
    }
}

/// The receiving side: the socket's writer task.
pub struct OutboundRx {
    shared: Arc<Shared>,
}

impl Drop for OutboundRx {
    fn drop(&mut self) {
        self.shared.lock().receiver_gone = true;
        self.shared.drained.notify_one();
    }
}

/// Frames taken from the queue together, to be written with one call.
pub struct Batch {
    pub bytes: Bytes,
    /// It ends with a close frame: nothing is written after it.
    pub closing: bool,
}

/// Whether a pre-encoded frame is a close frame (FIN and opcode 8).
pub fn is_close(frame: &[u8]) -> bool {
    frame.first() == Some(&(0x80 | Opcode::Close as u8))
}

/// Why a frame was not enqueued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue is full (chat) or too full for an ephemeral frame.
    Full,
    /// The connection is gone (or closing: its resume cursors are final).
    Closed,
    /// The join attempt was given up or superseded: the session no longer waits for it.
    Stale,
}

/// Ends the receiving side once what is queued is written, whoever still holds a sender: the
/// connection's reader is done. It does not count as a sender.
pub struct Finisher {
    shared: Arc<Shared>,
}

impl Finisher {
    pub fn finish(self) {
        self.shared.lock().finished = true;
        self.shared.arrived.wake();
    }
}

/// Nothing is queued right now (or nothing ever will be again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Empty;

impl Outbound {
    /// A queue of `capacity` frames and its receiving end (the socket's writer task).
    pub fn channel(capacity: usize) -> (Outbound, OutboundRx) {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                frames: VecDeque::new(),
                receiver_gone: false,
                finished: false,
                sealed: false,
                overflowed: false,
                cursors: Vec::new(),
                attempts: 0,
            }),
            capacity: capacity.max(2),
            arrived: AtomicWaker::new(),
            drained: Notify::new(),
            senders: AtomicUsize::new(1),
        });
        (Outbound { shared: shared.clone() }, OutboundRx { shared })
    }

    fn push_within(&self, frame: Bytes, limit: usize) -> Result<(), Refused> {
        let mut q = self.shared.lock();
        if q.receiver_gone {
            return Err(Refused::Closed);
        }
        if q.frames.len() >= limit {
            return Err(Refused::Full);
        }
        q.frames.push_back(frame);
        drop(q);
        self.shared.arrived.wake();
        Ok(())
    }

    /// Enqueues a frame that must not be lost (message, ack, error, control). When the queue is
    /// full, the frame is refused and the connection ends there: a `reconnect` hint with the
    /// client's cursors and a close frame go behind what is queued (beyond the capacity, once),
    /// so an answer the client waits for is never dropped without the client being told to
    /// reconnect and send again (a client that sends without reading meets this).
    pub fn push(&self, frame: Bytes) -> Result<(), Refused> {
        match self.push_within(frame, self.shared.capacity) {
            Err(Refused::Full) => {
                self.overflow();
                Err(Refused::Full)
            }
            other => other,
        }
    }

    /// The queue could not take a frame that must not be lost: seals it, then queues the hint
    /// and the close (once).
    fn overflow(&self) {
        let mut q = self.shared.lock();
        if q.overflowed || q.receiver_gone {
            return;
        }
        q.overflowed = true;
        q.sealed = true;
        let resume = q.resume();
        let reason = "lagging";
        q.frames.push_back(encode_server_frame(&ServerFrame::Reconnect { reason: reason.to_owned(), resume }));
        q.frames.push_back(close_frame(1012, reason));
        drop(q);
        self.shared.arrived.wake();
    }

    /// Enqueues a sheddable frame (typing, presence) only while the queue is at most half full.
    pub fn push_ephemeral(&self, frame: Bytes) -> Result<(), Refused> {
        self.push_within(frame, self.shared.capacity / 2)
    }

    /// Waits for room, for the last frames of a closing session.
    pub async fn push_wait(&self, frame: Bytes) -> Result<(), Refused> {
        loop {
            let drained = self.shared.drained.notified();
            match self.push_within(frame.clone(), self.shared.capacity) {
                Err(Refused::Full) => drained.await,
                other => return other,
            }
        }
    }

    /// A frame that must not be lost found the queue full: the connection is ending (its hint
    /// and close are queued), and nothing more it is sent reaches the client.
    pub fn overflowed(&self) -> bool {
        self.shared.lock().overflowed
    }

    pub fn is_closed(&self) -> bool {
        self.shared.lock().receiver_gone
    }

    /// Queues the frames of messages `first..=last` of `room` (the fan-out's hot path), unless
    /// the client already has them; then `room`'s cursor is `last`.
    pub fn push_messages(&self, room: RoomId, first: u64, last: u64, frames: Bytes) -> Result<Queued, Refused> {
        let mut q = self.shared.lock();
        if q.receiver_gone || q.sealed {
            return Err(Refused::Closed);
        }
        let cap = self.shared.capacity;
        let len = q.frames.len();
        if let Some(c) = q.cursor(room) {
            if last <= c.seq {
                return Ok(Queued::AlreadySent);
            }
            if first <= c.seq {
                return Ok(Queued::Partly(c.seq));
            }
            if len >= cap {
                return Err(Refused::Full);
            }
            c.seq = last;
        } else if len >= cap {
            return Err(Refused::Full);
        }
        q.frames.push_back(frames);
        drop(q);
        self.shared.arrived.wake();
        Ok(Queued::Yes)
    }

    /// Queues one replayed message of `room`, waiting while the queue is half full: a replay
    /// goes at the pace the client reads and leaves room for its live rooms. Ok without queuing
    /// when the client already has it.
    pub async fn push_replayed(&self, room: RoomId, seq: u64, frame: Bytes) -> Result<(), Refused> {
        loop {
            let drained = self.shared.drained.notified();
            {
                let mut q = self.shared.lock();
                if q.receiver_gone || q.sealed {
                    return Err(Refused::Closed);
                }
                let full = q.frames.len() >= self.shared.capacity / 2;
                match q.cursor(room) {
                    Some(c) if seq <= c.seq => return Ok(()),
                    Some(c) if !full => {
                        c.seq = seq;
                        q.frames.push_back(frame);
                        drop(q);
                        self.shared.arrived.wake();
                        return Ok(());
                    }
                    // Left or closed meanwhile.
                    None => return Err(Refused::Closed),
                    Some(_) => {}
                }
            }
            drained.await;
        }
    }

    /// The client's cursor in `room`: the highest seq it has (or was queued).
    pub fn cursor(&self, room: RoomId) -> Option<u64> {
        let mut q = self.shared.lock();
        q.cursor(room).filter(|c| c.joined).map(|c| c.seq)
    }

    /// A new join attempt for `room`: the ones before it can no longer answer.
    pub fn begin_join(&self, room: RoomId) -> JoinTicket {
        let mut q = self.shared.lock();
        q.attempts += 1;
        let attempt = q.attempts;
        let c = q.cursor_or_new(room);
        c.attempt = attempt;
        c.answered = false;
        JoinTicket { room, attempt }
    }

    /// Gives up on a join attempt (its call timed out). True when it had answered already: the
    /// client got its `joined`, so the join happened.
    pub fn cancel_join(&self, ticket: JoinTicket) -> bool {
        let mut q = self.shared.lock();
        match q.cursor(ticket.room) {
            Some(c) if c.attempt == ticket.attempt => {
                c.attempt = 0;
                c.answered
            }
            _ => false,
        }
    }

    /// Queues a join's answer (`joined`, maybe `resync`) if `ticket` is still the attempt the
    /// session waits for; the client then has everything up to `from` (its `since`, or the
    /// head), or more if it was in the room already. Returns the seq the replay starts after.
    pub fn push_joined(&self, ticket: JoinTicket, from: u64, frames: Bytes) -> Result<u64, Refused> {
        let mut q = self.shared.lock();
        if q.receiver_gone || q.sealed {
            return Err(Refused::Closed);
        }
        let full = q.frames.len() >= self.shared.capacity;
        let Some(c) = q.cursor(ticket.room).filter(|c| c.attempt == ticket.attempt && !c.answered) else {
            return Err(Refused::Stale);
        };
        if full {
            return Err(Refused::Full);
        }
        c.answered = true;
        c.seq = if c.joined { c.seq.max(from) } else { from };
        c.joined = true;
        let after = c.seq;
        q.frames.push_back(frames);
        drop(q);
        self.shared.arrived.wake();
        Ok(after)
    }

    /// The client left `room`: it has no position there any more.
    pub fn forget(&self, room: RoomId) {
        self.shared.lock().cursors.retain(|c| c.room != room);
    }

    /// No more messages from now on; returns the client's cursor in every room it joined (what
    /// a `reconnect` hint queued next tells it to resume from).
    pub fn seal(&self) -> BTreeMap<String, u64> {
        let mut q = self.shared.lock();
        q.sealed = true;
        q.resume()
    }
}

impl OutboundRx {
    /// The next frame; `None` once the queue is empty and every sender is gone or the
    /// [`Finisher`] said so.
    pub async fn recv(&mut self) -> Option<Bytes> {
        self.recv_with(|rx, q| rx.pop(q)).await
    }

    /// Waits for frames, then takes what is queued, up to `max` frames or a close frame, as one
    /// buffer to write with one call (one lock for the lot). `None`: the queue is over.
    pub async fn recv_batch(&mut self, max: usize) -> Option<Batch> {
        self.recv_with(|rx, q| rx.pop_batch(q, max)).await
    }

    /// Waits until `take` finds something under the lock, or the queue is over (`None`).
    async fn recv_with<T>(&mut self, take: impl Fn(&Self, &mut Queue) -> Option<T>) -> Option<T> {
        // Something, the end (`Some(None)`), or nothing yet (`None`).
        let attempt = |rx: &Self| {
            let mut q = rx.shared.lock();
            if let Some(found) = take(rx, &mut q) {
                return Some(Some(found));
            }
            // Under the lock: a last sender pushes before it leaves, so its frame is seen.
            (q.finished || rx.shared.senders.load(Ordering::Acquire) == 0).then_some(None)
        };
        poll_fn(|cx| {
            if let Some(next) = attempt(self) {
                return Poll::Ready(next);
            }
            // Registered, then a second look: a frame pushed in between wakes this waker.
            self.shared.arrived.register(cx.waker());
            match attempt(self) {
                Some(next) => Poll::Ready(next),
                None => Poll::Pending,
            }
        })
        .await
    }

    fn pop_batch(&self, q: &mut Queue, max: usize) -> Option<Batch> {
        let first = q.frames.pop_front()?;
        let batch = match q.frames.front() {
            Some(next) if !is_close(&first) => {
                let mut buf = Vec::with_capacity(first.len() + next.len());
                buf.extend_from_slice(&first);
                let (mut frames, mut closing) = (1, false);
                while frames < max && !closing {
                    let Some(next) = q.frames.pop_front() else { break };
                    closing = is_close(&next);
                    buf.extend_from_slice(&next);
                    frames += 1;
                }
                Batch { bytes: Bytes::from(buf), closing }
            }
            _ => Batch { closing: is_close(&first), bytes: first },
        };
        self.release_if_drained(q);
        Some(batch)
    }

    /// The next frame if one is queued.
    pub fn try_recv(&self) -> Result<Bytes, Empty> {
        self.pop(&mut self.shared.lock()).ok_or(Empty)
    }

    fn pop(&self, q: &mut Queue) -> Option<Bytes> {
        let frame = q.frames.pop_front()?;
        self.release_if_drained(q);
        Some(frame)
    }

    /// Frames were taken: gives a drained burst's buffer back and wakes a sender waiting for room.
    fn release_if_drained(&self, q: &mut Queue) {
        if q.frames.is_empty() && q.frames.capacity() > KEEP_SLOTS {
            q.frames = VecDeque::new();
        }
        self.shared.drained.notify_one();
    }

    /// A handle that ends this receiver once the queue is drained.
    pub fn finisher(&self) -> Finisher {
        Finisher { shared: self.shared.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ephemeral_frames_are_shed_before_chat() {
        let (out, mut rx) = Outbound::channel(4);
        out.push(Bytes::from_static(b"1")).unwrap();
        out.push(Bytes::from_static(b"2")).unwrap();
        assert_eq!(out.push_ephemeral(Bytes::from_static(b"t")), Err(Refused::Full));
        let (out2, _rx2) = Outbound::channel(4);
        out2.push(Bytes::from_static(b"1")).unwrap();
        assert_eq!(out2.push_ephemeral(Bytes::from_static(b"t")), Ok(()));
        out.push(Bytes::from_static(b"3")).unwrap();
        out.push(Bytes::from_static(b"4")).unwrap();
        assert_eq!(out.push(Bytes::from_static(b"5")), Err(Refused::Full));
        assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(b"1"));
        drop(rx);
        assert_eq!(out.push(Bytes::from_static(b"x")), Err(Refused::Closed));
        assert!(out.is_closed());
    }

    #[tokio::test]
    async fn the_receiver_ends_when_every_sender_is_gone_and_waiters_get_room() {
        let (out, mut rx) = Outbound::channel(2);
        let second = out.clone();
        out.push(Bytes::from_static(b"a")).unwrap();
        out.push(Bytes::from_static(b"b")).unwrap();
        let waiting = tokio::spawn(async move { second.push_wait(Bytes::from_static(b"c")).await });
        assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(b"a"));
        assert_eq!(waiting.await.unwrap(), Ok(()));
        drop(out);
        assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(b"b"));
        assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(b"c"));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_batch_takes_what_is_queued_up_to_its_cap_or_a_close() {
        let (out, mut rx) = Outbound::channel(16);
        for f in [&b"a"[..], b"b", b"c"] {
            out.push(Bytes::copy_from_slice(f)).unwrap();
        }
        let b = rx.recv_batch(2).await.unwrap();
        assert_eq!((&b.bytes[..], b.closing), (&b"ab"[..], false));
        let close = close_frame(1000, "");
        out.push(close.clone()).unwrap();
        out.push(Bytes::from_static(b"after")).unwrap();
        let b = rx.recv_batch(8).await.unwrap();
        assert_eq!((b.bytes, b.closing), (Bytes::from([&b"c"[..], &close[..]].concat()), true));
        let b = rx.recv_batch(8).await.unwrap();
        assert_eq!((&b.bytes[..], b.closing), (&b"after"[..], false));
        // A close alone is a batch of its own.
        out.push(close.clone()).unwrap();
        let b = rx.recv_batch(8).await.unwrap();
        assert_eq!((b.bytes, b.closing), (close, true));
        // A waiting receiver is woken by the next frame, and ends with the last sender.
        let waiting = tokio::spawn(async move {
            let first = rx.recv_batch(8).await.map(|b| b.bytes);
            (first, rx.recv_batch(8).await.is_none())
        });
        tokio::task::yield_now().await;
        out.push(Bytes::from_static(b"late")).unwrap();
        drop(out);
        assert_eq!(waiting.await.unwrap(), (Some(Bytes::from_static(b"late")), true));
    }

    #[tokio::test]
    async fn a_finished_receiver_writes_what_is_queued_then_ends() {
        let (out, mut rx) = Outbound::channel(4);
        out.push(Bytes::from_static(b"a")).unwrap();
        rx.finisher().finish();
        assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(b"a"));
        assert_eq!(rx.recv().await, None, "ends though a sender remains");
        // A waiting receiver is woken by the finish.
        let (_out, mut rx) = Outbound::channel(4);
        let finisher = rx.finisher();
        let waiting = tokio::spawn(async move { rx.recv().await });
        tokio::task::yield_now().await;
        finisher.finish();
        assert_eq!(waiting.await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_lost_frame_ends_the_connection_with_a_resume_hint() {
        let (out, rx) = Outbound::channel(2);
        let room = RoomId(7);
        let ticket = out.begin_join(room);
        out.push_joined(ticket, 4, Bytes::from_static(b"j")).unwrap();
        out.push(Bytes::from_static(b"a")).unwrap();
        // Full: refused, and the hint and the close are queued behind, once.
        assert!(!out.overflowed());
        assert_eq!(out.push(Bytes::from_static(b"lost")), Err(Refused::Full));
        assert!(out.overflowed());
        assert_eq!(out.push(Bytes::from_static(b"lost too")), Err(Refused::Full));
        assert!(out.push_messages(room, 5, 5, Bytes::from_static(b"m")).is_err(), "sealed");
        let frames: Vec<Bytes> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(frames.len(), 4, "{frames:?}");
        assert_eq!(frames[1], Bytes::from_static(b"a"));
        let hint = String::from_utf8_lossy(&frames[2]);
        assert!(hint.contains(r#""type":"reconnect""#) && hint.contains(r#""7":4"#), "{hint}");
        assert_eq!(frames[3], close_frame(1012, "lagging"));
    }

    #[tokio::test]
    async fn a_drained_burst_gives_its_buffer_back() {
        let (out, rx) = Outbound::channel(1024);
        for _ in 0..500 {
            out.push(Bytes::from_static(b"m")).unwrap();
        }
        while rx.try_recv().is_ok() {}
        assert_eq!(rx.shared.lock().frames.capacity(), 0);
    }
}
