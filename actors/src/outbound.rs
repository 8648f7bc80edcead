//! A session's outbound queue as rooms see it: bounded, pre-encoded frames, shed by class.
//!
//! Chat messages and acks are never dropped: when the queue is full the room stops feeding the
//! session and tells it to close with a resume cursor. Typing and presence are only enqueued while
//! the queue is at most half full, so they are shed first.
//!
//! The queue allocates nothing until a frame is queued and gives its buffer back once a burst is
//! drained, so an idle connection costs only the small shared header (a tokio channel keeps a
//! block of slots per connection for its whole life).

use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// Frames a drained queue may keep room for; a larger buffer is given back.
const KEEP_SLOTS: usize = 8;

struct Shared {
    queue: Mutex<Queue>,
    capacity: usize,
    /// Wakes the receiver (a frame arrived, or the last sender left).
    arrived: Notify,
    /// Wakes a sender waiting for room.
    drained: Notify,
    senders: AtomicUsize,
}

struct Queue {
    frames: VecDeque<Bytes>,
    receiver_gone: bool,
    /// The receiver ends once the queue is empty, though senders remain (see [`Finisher`]).
    finished: bool,
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
            self.shared.arrived.notify_one();
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

/// Why a frame was not enqueued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue is full (chat) or too full for an ephemeral frame.
    Full,
    /// The connection is gone.
    Closed,
}

/// Ends the receiving side once what is queued is written, whoever still holds a sender: the
/// connection's reader is done. It does not count as a sender.
pub struct Finisher {
    shared: Arc<Shared>,
}

impl Finisher {
    pub fn finish(self) {
        self.shared.lock().finished = true;
        self.shared.arrived.notify_one();
    }
}

/// Nothing is queued right now (or nothing ever will be again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Empty;

impl Outbound {
    /// A queue of `capacity` frames and its receiving end (the socket's writer task).
    pub fn channel(capacity: usize) -> (Outbound, OutboundRx) {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue { frames: VecDeque::new(), receiver_gone: false, finished: false }),
            capacity: capacity.max(2),
            arrived: Notify::new(),
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
        self.shared.arrived.notify_one();
        Ok(())
    }

    /// Enqueues a frame that must not be lost (message, ack, error, control).
    pub fn push(&self, frame: Bytes) -> Result<(), Refused> {
        self.push_within(frame, self.shared.capacity)
    }

    /// Enqueues a sheddable frame (typing, presence) only while the queue is at most half full.
    pub fn push_ephemeral(&self, frame: Bytes) -> Result<(), Refused> {
        self.push_within(frame, self.shared.capacity / 2)
    }

    /// Waits for room, for the last frames of a closing session.
    pub async fn push_wait(&self, frame: Bytes) -> Result<(), Refused> {
        loop {
            let drained = self.shared.drained.notified();
            match self.push(frame.clone()) {
                Err(Refused::Full) => drained.await,
                other => return other,
            }
        }
    }

    pub fn is_closed(&self) -> bool {
        self.shared.lock().receiver_gone
    }
}

impl OutboundRx {
    /// The next frame; `None` once the queue is empty and every sender is gone or the
    /// [`Finisher`] said so.
    pub async fn recv(&mut self) -> Option<Bytes> {
        loop {
            let arrived = self.shared.arrived.notified();
            if let Some(next) = self.next() {
                return next;
            }
            arrived.await;
        }
    }

    /// A frame, the end (`Some(None)`), or nothing yet (`None`).
    fn next(&self) -> Option<Option<Bytes>> {
        let mut q = self.shared.lock();
        if let Some(frame) = self.pop(&mut q) {
            return Some(Some(frame));
        }
        // Under the lock: a last sender pushes before it leaves, so its frame is seen.
        (q.finished || self.shared.senders.load(Ordering::Acquire) == 0).then_some(None)
    }

    /// The next frame if one is queued.
    pub fn try_recv(&self) -> Result<Bytes, Empty> {
        self.pop(&mut self.shared.lock()).ok_or(Empty)
    }

    fn pop(&self, q: &mut Queue) -> Option<Bytes> {
        let frame = q.frames.pop_front()?;
        if q.frames.is_empty() && q.frames.capacity() > KEEP_SLOTS {
            q.frames = VecDeque::new();
        }
        self.shared.drained.notify_one();
        Some(frame)
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
    async fn a_drained_burst_gives_its_buffer_back() {
        let (out, rx) = Outbound::channel(1024);
        for _ in 0..500 {
            out.push(Bytes::from_static(b"m")).unwrap();
        }
        while rx.try_recv().is_ok() {}
        assert_eq!(rx.shared.lock().frames.capacity(), 0);
    }
}
