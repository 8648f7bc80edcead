//! A room actor's recovery after a restart: which pending writes committed, acks for those,
//! retries for the others, and to every subscriber what it missed (the rest through a paced
//! replay when its queue cannot take it all).

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
        for sub in &sh.subs {
            self.online.entry(sub.s.user.id).or_insert((sub.s.user.username.clone(), 0)).1 += 1;
        }
        // What the live subscribers missed, each message encoded once for all of them (a
        // replaying one's task carries on, up to the new `fanned`).
        let media = &self.ctx.config.media;
        let missed: Vec<_> = older
            .iter()
            .chain(sh.tail.iter())
            .filter(|r| r.seq > min_last && r.seq <= head)
            .map(|r| (r.seq, self.shared.encode(ServerFrame::event(r, media))))
            .collect();
        replay::push_missed(room, &mut sh.subs, &missed);
        // A subscriber whose queue could not take all it missed gets the rest at its socket's
        // pace, as a joiner does, rather than a close with a resume hint.
        sh.fanned = head;
        replay::catch_up(&self.ctx, &self.shared, room, &mut sh.subs, head);
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
