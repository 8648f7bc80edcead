//! A session's outbound queue as rooms see it: bounded, pre-encoded frames, shed by class.
//!
//! Chat messages and acks are never dropped: when the queue is full the room stops feeding the
//! session and tells it to close with a resume cursor. Typing and presence are only enqueued while
//! the queue is at most half full, so they are shed first.

use bytes::Bytes;
use tokio::sync::mpsc;

/// The sending side of one connection's outbound queue.
#[derive(Debug, Clone)]
pub struct Outbound {
    tx: mpsc::Sender<Bytes>,
}

/// Why a frame was not enqueued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue is full (chat) or too full for an ephemeral frame.
    Full,
    /// The connection is gone.
    Closed,
}

impl Outbound {
    /// A queue of `capacity` frames and its receiving end (the socket's writer task).
    pub fn channel(capacity: usize) -> (Outbound, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(capacity.max(2));
        (Outbound { tx }, rx)
    }

    /// Enqueues a frame that must not be lost (message, ack, error, control).
    pub fn push(&self, frame: Bytes) -> Result<(), Refused> {
        self.tx.try_send(frame).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Refused::Full,
            mpsc::error::TrySendError::Closed(_) => Refused::Closed,
        })
    }

    /// Enqueues a sheddable frame (typing, presence) only while the queue is at most half full.
    pub fn push_ephemeral(&self, frame: Bytes) -> Result<(), Refused> {
        if self.tx.capacity() * 2 < self.tx.max_capacity() {
            return Err(Refused::Full);
        }
        self.push(frame)
    }

    /// Waits for room, for the last frames of a closing session.
    pub async fn push_wait(&self, frame: Bytes) -> Result<(), Refused> {
        self.tx.send(frame).await.map_err(|_| Refused::Closed)
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
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
        assert_eq!(out.push_ephemeral(Bytes::from_static(b"t")), Ok(()));
        assert_eq!(out.push_ephemeral(Bytes::from_static(b"t")), Err(Refused::Full));
        out.push(Bytes::from_static(b"4")).unwrap();
        assert_eq!(out.push(Bytes::from_static(b"5")), Err(Refused::Full));
        assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(b"1"));
        drop(rx);
        assert_eq!(out.push(Bytes::from_static(b"x")), Err(Refused::Closed));
    }
}
