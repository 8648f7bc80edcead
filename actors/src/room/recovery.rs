//! A room actor's recovery after a restart: which pending writes committed, acks for those,
//! retries for the others, and a replay to every subscriber of what it missed.

use super::*;

impl RoomState {
    /// After (re)start: settle the previous incarnation's pending writes and replay gaps.
    pub(super) async fn recover(&mut self) -> Result<(), ActorProcessingErr> {
        let (min_last, has_subs) = {
            let sh = self.shared.lock();
            let live = sh.subs.iter().filter(|s| s.replay == 0);
            (live.clone().map(|s| s.last_seq).min().unwrap_or(self.head), live.count() > 0)
        };
        let older = if has_subs { self.rows_before_tail(min_last).await? } else { Vec::new() };
        let shared = self.shared.clone();
        let mut sh = shared.lock();
        // What the previous incarnation committed is acked now; the rest its senders' sessions
        // send again when told of the restart (the cid makes that idempotent).
        let pending: Vec<Pending> = sh.pending.drain(..).collect();
        for p in pending.into_iter().filter(|p| p.row.seq <= self.head) {
            if let Some(row) = sh.tail.iter().find(|r| r.seq == p.row.seq && r.cid == p.row.cid) {
                let frame = encode_server_frame(&ServerFrame::ack(row));
                p.reply.answer(self.room.id, p.row.sender, p.row.cid.clone(), frame);
            }
        }
        let crashed = !self.shared.moved.swap(false, Relaxed);
        for sub in &sh.subs {
            let _ = sub.s.session_ref.cast(SessionMsg::RoomRestarted { room: self.room.id, crashed });
        }
        // Other nodes subscribe again (and resend their sessions' unanswered sends).
        for link in sh.nodes.drain(..) {
            let _ = link.send(NodeFrame::Restarted { room: self.room.id });
        }
        let head = self.head;
        let room = self.room_id();
        let mut lagging = Vec::new();
        let Shared { subs, tail, .. } = &mut *sh;
        for sub in subs.iter_mut() {
            self.online.entry(sub.s.user.id).or_insert((sub.s.user.username.clone(), 0)).1 += 1;
            if sub.replay != 0 {
                // Its replay task carries on, up to the new `fanned`.
                continue;
            }
            let after = sub.last_seq;
            let rows = older.iter().chain(tail.iter()).filter(|r| r.seq > after && r.seq <= head);
            for row in rows {
                let frame = self.shared.encode(ServerFrame::event(row, &self.ctx.config.media));
                if sub.s.out.push_messages(room, row.seq, row.seq, frame).is_err() {
                    lagging.push(sub.s.session);
                    break;
                }
                sub.last_seq = row.seq;
            }
        }
        sh.fanned = head;
        for session in lagging {
            self.drop_lagging(&mut sh, room, session);
        }
        Ok(())
    }

    /// Rows from `after + 1` up to just before the tail, from storage.
    pub(super) async fn rows_before_tail(&self, after: u64) -> Result<Vec<MessageRow>, crate::Error> {
        let tail_start = self.shared.lock().tail.front().map(|r| r.seq).unwrap_or(self.head + 1);
        if after + 1 >= tail_start {
            return Ok(Vec::new());
        }
        self.ctx
            .store
            .messages_between(self.room_id(), after + 1, tail_start - 1, (tail_start - 1 - after) as u32)
            .await
    }
}
