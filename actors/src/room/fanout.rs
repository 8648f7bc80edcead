//! The fan-out of committed events: held for the fan-out window, then sent to every local
//! subscriber (the same bytes, in chunks sharing one outbound slot) and once to every subscribed
//! node, with each sender's acks right behind its messages.

use super::*;
use crate::msg::session::SessionRef;

impl RoomState {
    /// Sends the held messages now, or once the fan-out window since the last fan-out has
    /// passed. A quiet room's message goes out at once; a busy room's messages go out together,
    /// at most once per window, so that each socket gets them in one write.
    pub(super) fn release_or_hold(&mut self, me: &ActorRef<RoomMsg>) {
        if self.held.is_empty() {
            return;
        }
        let window = self.ctx.config.fanout_window;
        let since = self.last_fanout.elapsed();
        if since >= window || self.moving {
            self.release_held();
        } else if !self.release_armed {
            self.release_armed = true;
            me.send_after(window - since, || RoomMsg::ReleaseHeld);
        }
    }

    /// Sends every held message to every subscriber, in seq order, then their acks.
    pub(super) fn release_held(&mut self) {
        self.release_armed = false;
        if self.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.held);
        if let Some(durable) = self.held_since.take() {
            self.ctx.metrics.record_fanout_lag(durable.elapsed());
        }
        let shared = self.shared.clone();
        let mut sh = shared.lock();
        let room = self.room.id;
        // Once per subscribed node and message; a node whose link broke subscribes again and
        // catches up.
        for (seq, frame) in &held {
            sh.nodes.retain(|link| link.send(NodeFrame::Event { room, seq: *seq, frame: frame.clone() }).is_ok());
        }
        // A sender's acks go behind the last messages, in the same buffer: one write to its
        // socket per fan-out. The session is told first (it forgets the sends), then the
        // frames go out.
        let (mut acks, by_session) = group_answers(room, std::mem::take(&mut self.held_acks));
        for a in &mut acks {
            a.tell(room);
        }
        let chunks = held.len().div_ceil(FANOUT_CHUNK);
        for (k, chunk) in held.chunks(FANOUT_CHUNK).enumerate() {
            let last = chunk[chunk.len() - 1].0;
            let frames = match chunk {
                [(_, one)] => one.clone(),
                many => {
                    let mut buf = Vec::with_capacity(many.iter().map(|(_, f)| f.len()).sum());
                    for (_, f) in many {
                        buf.extend_from_slice(f);
                    }
                    Bytes::from(buf)
                }
            };
            let with_acks = (k + 1 == chunks && !acks.is_empty()).then_some((&mut acks[..], &by_session));
            self.fan_out(&mut sh, chunk, frames, with_acks);
            sh.fanned = last;
        }
        drop(sh);
        for a in acks {
            a.hand_over(room);
        }
        self.last_fanout = Instant::now();
    }

    /// Sends committed messages (`chunk`, whose frames `frames` holds in one buffer) to every
    /// live subscriber: the same bytes to each, followed by the subscriber's own acks if `acks`
    /// has some for it. A subscriber that has some of them already gets only the others.
    pub(super) fn fan_out(
        &mut self,
        sh: &mut Shared,
        chunk: &[(u64, Bytes)],
        frames: Bytes,
        mut acks: Option<(&mut [SessionAcks], &ByActor)>,
    ) {
        let (first, seq) = (chunk[0].0, chunk[chunk.len() - 1].0);
        let room = self.room.id;
        let mut lagging = Vec::new();
        let mut gone = Vec::new();
        for sub in sh.subs.iter_mut() {
            if sub.replay != 0 {
                continue;
            }
            let mut mine = acks
                .as_mut()
                .and_then(|(a, index)| index.get(&sub.s.session_ref.id()).map(|&i| &mut a[i]))
                .filter(|a| !a.written);
            let out = match &mine {
                Some(a) => Bytes::from([&frames[..], &a.frames[..]].concat()),
                None => frames.clone(),
            };
            let mut pushed = sub.s.out.push_messages(room, first, seq, out);
            if let Ok(Queued::Partly(had)) = pushed {
                // Only on a path that replayed some of these to it already (never in steady state).
                let mut rest: Vec<u8> = chunk.iter().filter(|(s, _)| *s > had).flat_map(|(_, f)| f.to_vec()).collect();
                if let Some(a) = &mine {
                    rest.extend_from_slice(&a.frames);
                }
                pushed = sub.s.out.push_messages(room, had + 1, seq, Bytes::from(rest));
            }
            match pushed {
                Ok(Queued::Yes | Queued::Partly(_)) => {
                    sub.last_seq = seq;
                    if let Some(a) = mine.as_mut() {
                        a.written = true;
                    }
                }
                Ok(Queued::AlreadySent) => sub.last_seq = seq,
                Err(Refused::Full) => lagging.push(sub.s.session),
                Err(Refused::Closed | Refused::Stale) => gone.push(sub.s.session),
            }
        }
        for session in lagging {
            self.drop_lagging(sh, self.room.id, session);
        }
        for session in gone {
            self.remove_sub(sh, session);
        }
    }
}

/// An ack held behind the message it answers, until the fan-out.
pub(super) struct HeldAck {
    pub(super) reply: ReplyTo,
    pub(super) user: UserId,
    pub(super) cid: Arc<str>,
    pub(super) frame: Bytes,
}

/// An index by session id, with a hash cheap enough to look up every subscriber of a fan-out.
pub(super) type ByActor = HashMap<u64, usize, foldhash::fast::RandomState>;

/// One fan-out's acks for one local session, answered right after its messages.
pub(super) struct SessionAcks {
    session: SessionRef,
    cids: Vec<Arc<str>>,
    /// Their frames, in one buffer.
    frames: Bytes,
    /// Already written to the session's socket behind the messages, in the same buffer.
    written: bool,
}

impl SessionAcks {
    /// Tells the session its sends are answered, before the acks can reach the socket: a
    /// client that sends again the moment it reads an ack must find a free place in the
    /// session's window. The frames follow with `hand_over` unless the fan-out wrote them.
    fn tell(&mut self, room: RoomId) {
        let cids = std::mem::take(&mut self.cids);
        let _ = self.session.cast(SessionMsg::SendResults { room, cids, frames: Bytes::new() });
    }

    /// Hands the session the frames the fan-out did not write (it no longer subscribes, or
    /// its queue was full), for its own socket.
    fn hand_over(self, room: RoomId) {
        if !self.written {
            let _ = self.session.cast(SessionMsg::SendResults { room, cids: Vec::new(), frames: self.frames });
        }
    }
}

/// Groups answers by local session, keeping their order, with an index of the groups by
/// session; answers for sessions of other nodes go at once.
pub(super) fn group_answers(room: RoomId, answers: Vec<HeldAck>) -> (Vec<SessionAcks>, ByActor) {
    let mut sessions: Vec<SessionAcks> = Vec::new();
    let mut frames: Vec<Vec<Bytes>> = Vec::new();
    let mut index = ByActor::default();
    for HeldAck { reply, user, cid, frame } in answers {
        match reply {
            ReplyTo::Session(s) => {
                let i = *index.entry(s.id()).or_insert_with(|| {
                    sessions.push(SessionAcks { session: s, cids: Vec::new(), frames: Bytes::new(), written: false });
                    frames.push(Vec::new());
                    sessions.len() - 1
                });
                sessions[i].cids.push(cid);
                frames[i].push(frame);
            }
            node => node.answer(room, user, cid, frame),
        }
    }
    for (acks, frames) in sessions.iter_mut().zip(frames) {
        acks.frames = match <[Bytes; 1]>::try_from(frames) {
            Ok([one]) => one,
            Err(many) => Bytes::from(many.concat()),
        };
    }
    (sessions, index)
}
