//! Sequencing: what a room does with a send. It checks the sender (joined, the user its session
//! joined as, not rate-limited), deduplicates by `cid` (a resend gets its original ack), assigns
//! the next gap-free `seq`, and hands the messages of one mailbox message to the writer at once.
//! When the writer answers, the durable messages are acked and queued for the fan-out in seq
//! order; a fenced, gapped or failed write stops the room, which recovers from storage.

use super::*;

/// A sender's newest messages loaded to deduplicate a `cid` from before this incarnation.
pub(super) const SENDER_DEDUPE_LOAD: u32 = 256;

/// A token bucket: `burst` tokens, refilled at `rate` per second.
pub(super) struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RoomState {
    /// Sequences a session's (or a peer's) sends one by one, answering each refusal at once, and
    /// hands what it sequenced to the writer together.
    pub(super) async fn send_all(
        &mut self,
        session: u64,
        user: &UserRef,
        reply: &ReplyTo,
        sends: Vec<Draft>,
    ) -> Result<(), ActorProcessingErr> {
        let mut writes = Vec::with_capacity(sends.len());
        for item in sends {
            let cid = item.cid.clone();
            if let Err(refusal) = self.send(session, user, reply, item, &mut writes, None).await {
                let frame = encode_server_frame(&refusal.frame(Some(cid.to_string())));
                reply.answer(self.room.id, user.id, cid, frame);
                self.ctx.metrics.protocol_errors.fetch_add(1, Relaxed);
            }
        }
        self.hand_to_writer(writes)
    }

    /// Sequences a system event (a change already made in storage), done by `by`, under the
    /// announcer's `cid` (so a repeat is the same event); `reply` gets the ack when it is durable.
    pub(super) async fn announce(
        &mut self,
        by: &UserRef,
        event: SystemEvent,
        cid: Arc<str>,
        reply: ReplyTo,
    ) -> Result<(), ActorProcessingErr> {
        let body: Arc<str> = serde_json::to_string(&event).unwrap_or_default().into();
        let item = Draft::system(cid.clone(), body);
        let mut writes = Vec::new();
        if let Err(refusal) = self.send(0, by, &reply, item, &mut writes, None).await {
            warn!(room = %self.room.id, %refusal, "a system event could not be sequenced");
            reply.answer(self.room.id, by.id, cid.clone(), encode_server_frame(&refusal.frame(Some(cid.to_string()))));
        }
        self.hand_to_writer(writes)
    }

    /// Hands sequenced messages to the writer, which answers this incarnation's `commit_reply`.
    fn hand_to_writer(&self, writes: Vec<NewMessage>) -> Result<(), ActorProcessingErr> {
        if writes.is_empty() {
            return Ok(());
        }
        if !self.ctx.writer.get().is_some_and(|w| w.messages(writes, self.commit_reply.clone())) {
            // The writer stopped since `send` looked: as after a writer restart, the room
            // resyncs and the sessions send again what was not committed.
            return Err("the writer stopped with writes in flight; resyncing from storage".into());
        }
        Ok(())
    }

    /// Sequences one message and adds its write to `writes` (the caller hands them to the
    /// writer), or refuses it. `released`: a staff command's message (a released held one, or
    /// a delete), which skips the checks of a sender's own send.
    pub(super) async fn send(
        &mut self,
        session: u64,
        user: &UserRef,
        reply: &ReplyTo,
        item: Draft,
        writes: &mut Vec<NewMessage>,
        released: Option<premod::Released>,
    ) -> Result<(), Refusal> {
        let Draft { cid, body, reply_to, kind, target, attachments: upload_ids } = item;
        let system = kind == EventKind::System;
        if system && body.starts_with(crate::moderation::COMMAND_PREFIX) {
            return Box::pin(self.command(user, reply, cid, &body, writes)).await;
        }
        if !upload_ids.is_empty() && kind != EventKind::Message {
            return Err(Refusal::new(ErrorCode::Invalid, "only a message carries attachments"));
        }
        if self.room.id.is_inbox() && !system {
            return Err(Refusal::new(ErrorCode::Forbidden, "an inbox is written by the server only"));
        }
        match reply {
            // A system event announces a change its node already authorised and made; a
            // staff command's message was authorised by its node too.
            _ if system || released.is_some() => {}
            ReplyTo::Waiter(_) => {
                return Err(Refusal::new(ErrorCode::Invalid, "only system events are sequenced for the node"));
            }
            ReplyTo::Session(_) => {
                if !self.shared.lock().subs.iter().any(|s| s.s.session == session) {
                    return Err(Refusal::new(ErrorCode::NotJoined, "join the room before sending"));
                }
            }
            // A node forwards sends only for sessions an incarnation of this room admitted. One
            // this incarnation does not know was admitted before a restart, and its node joins it
            // again once told of the restart: the send is to be repeated, not refused.
            // A peer is trusted to have authenticated its sessions, not to speak for another
            // user on one of them: the send's author must be the user the session joined as.
            ReplyTo::Node(link) => match self.remote.get(&(link.node.clone(), session)) {
                None => return Err(Refusal::new(ErrorCode::Retry, "the room restarted; send again")),
                Some(joined) if joined.id != user.id => {
                    warn!(room = %self.room.id, peer = %link.node, session, "a peer sent as a user its session did not join as");
                    return Err(Refusal::new(ErrorCode::Forbidden, "this session joined as another user"));
                }
                Some(_) => {}
            },
        }
        if !self.ctx.cluster().may_sequence() {
            return Err(Refusal::new(ErrorCode::Retry, "this node is cut off from its cluster; send again shortly"));
        }
        if let Some(r) = reply_to
            && (r == 0 || r > self.head || kind != EventKind::Message)
        {
            return Err(Refusal::new(ErrorCode::Invalid, format!("reply_to {r} is not a message of this room")));
        }
        // Deduplicate before rate limiting: a retry must get its original ack.
        self.load_sender(user.id).await?;
        match self.sent.get(user.id, &cid) {
            Some(Recent::Committed { seq, id, ts }) => {
                // The message may still be held for the fan-out window: it goes first, so that
                // this ack does not overtake it.
                self.release_held();
                let ack = ServerFrame::Ack { cid: cid.clone(), room: self.room_id(), seq, id, ts };
                reply.answer(self.room_id(), user.id, cid, encode_server_frame(&ack));
                return Ok(());
            }
            Some(Recent::Pending) => {
                // The ack goes to whichever session asked last.
                if let Some(p) =
                    self.shared.lock().pending.iter_mut().find(|p| p.row.sender == user.id && p.row.cid == cid)
                {
                    p.reply = reply.clone();
                }
                return Ok(());
            }
            None => {}
        }
        // Refused at once while storage takes no writes: nothing piles up behind the writer.
        if let Some(refusal) = self.ctx.storage.refusal() {
            return Err(refusal);
        }
        let author = match kind {
            EventKind::Edit | EventKind::Delete => Some(self.check_target(user, kind, target).await?),
            _ => None,
        };
        let deleted_for = author.filter(|a| kind == EventKind::Delete && *a != user.id);
        if self.room.kind == RoomKind::Dm && matches!(kind, EventKind::Message | EventKind::Edit) {
            self.check_dm_blocks(user.id).await?;
        }
        if !system && released.is_none() {
            self.take_token(user.id)?;
            if kind == EventKind::Message
                && let premod::Pass::Held = self
                    .moderate(user, reply, premod::Sending { cid: &cid, body: &body, reply_to, uploads: &upload_ids })
                    .await?
            {
                return Ok(());
            }
        }
        let cfg = &self.ctx.config;
        if self.shared.lock().pending.len() >= cfg.max_inflight_per_room {
            return Err(Refusal::new(ErrorCode::Overloaded, "the room is busy; send again shortly"));
        }
        if self.ctx.writer.get().is_none() {
            return Err(Refusal::new(ErrorCode::Retry, "storage is restarting; send again"));
        }
        // Claimed last, so that nothing refuses the message once its uploads are its own (a
        // resend of the same cid claims them again).
        let attachments =
            if upload_ids.is_empty() { Vec::new() } else { self.claim_attachments(user.id, &cid, &upload_ids).await? };
        let seq = self.next_seq;
        let mentions = if kind == EventKind::Message && body.contains('@') {
            inbox_notes::mentioned(&body, &self.names, user.id)
        } else {
            Vec::new()
        };
        let row = MessageRow {
            id: 0,
            room: self.room_id(),
            seq,
            sender: user.id,
            sender_name: user.username.clone(),
            cid: cid.clone(),
            body: body.clone(),
            reply_to,
            ts: now_ms(),
            edited_at: None,
            deleted: false,
            kind,
            target,
            attachments: attachments.clone(),
        };
        let new = NewMessage {
            room: row.room,
            epoch: self.epoch,
            seq,
            sender: user.id,
            ts: row.ts,
            draft: Draft { cid: cid.clone(), body, reply_to, kind, target, attachments: upload_ids },
            mentions: mentions.clone(),
            attachments,
        };
        if kind == EventKind::Delete {
            self.deleting.extend(target);
        }
        writes.push(new);
        self.next_seq += 1;
        self.shared.lock().pending.push_back(Pending {
            row,
            mentions,
            reply: reply.clone(),
            sent_at: Instant::now(),
            deleted_for,
            released,
        });
        self.sent.pending(user.id, cid);
        Ok(())
    }

    /// What this incarnation needs to know of a sender it has not seen yet, from storage: their
    /// recent cids (to deduplicate a resend from before it) and, for the automatic flags, their
    /// recent messages here, stored or held (so a flood or repeat count is not reset by a
    /// restart or a move).
    pub(super) async fn load_sender(&mut self, user: UserId) -> Result<(), Refusal> {
        if self.sent.knows(user) && self.flags.knows(user) {
            return Ok(());
        }
        // A database that cannot answer is not asked (the sender gets `retry` at once).
        if let Some(refusal) = self.ctx.storage.refusal() {
            return Err(refusal);
        }
        let rows = self.ctx.store.recent_by_sender(self.room_id(), user, SENDER_DEDUPE_LOAD).await.map_err(internal)?;
        if !self.flags.knows(user) {
            let mut counted: Vec<(i64, &str)> =
                rows.iter().filter(|r| r.kind == EventKind::Message && !r.deleted).map(|r| (r.ts, &*r.body)).collect();
            // In a room with moderation, their held messages count too.
            let moderated = self.room.kind == RoomKind::Room && !self.room.id.is_inbox() && {
                self.ctx.mod_settings.ensure(&self.ctx).await;
                let settings = self.ctx.mod_settings.effective(self.room_id());
                settings.premod || settings.flags.any()
            };
            let held = if moderated {
                self.ctx.store.recent_held(self.room_id(), user, SENDER_DEDUPE_LOAD).await.map_err(internal)?
            } else {
                Vec::new()
            };
            counted.extend(held.iter().map(|(ts, body)| (*ts, body.as_str())));
            counted.sort_by_key(|c| std::cmp::Reverse(c.0));
            self.flags.seed(user, counted.into_iter());
        }
        if !self.sent.knows(user) {
            // Newest first from storage; remembered oldest first.
            let stored = rows.into_iter().rev().map(|r| (r.cid, Recent::Committed { seq: r.seq, id: r.id, ts: r.ts }));
            self.sent.load(user, stored);
        }
        Ok(())
    }

    fn take_token(&mut self, user: UserId) -> Result<(), Refusal> {
        let (burst, rate) = (self.ctx.config.rate_burst as f64, self.ctx.config.rate_per_sec);
        let now = Instant::now();
        let b = self.buckets.entry(user).or_insert(Bucket { tokens: burst, at: now });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait_ms = ((1.0 - b.tokens) / rate * 1000.0).ceil() as u64;
            Err(Refusal::new(ErrorCode::RateLimited, format!("too many messages; retry in {wait_ms} ms")))
        }
    }

    /// The writer's answers: fan out and ack what is durable, in seq order.
    pub(super) fn committed(&mut self, results: Vec<(u64, WriteResult)>) -> Result<(), ActorProcessingErr> {
        let room = self.room_id();
        let shared = self.shared.clone();
        // Members who left or were removed: they get the event, then their subscriptions end.
        let mut leaving = Vec::new();
        let result = self.commit_results(&shared, results, &mut leaving);
        if !leaving.is_empty() {
            self.release_held();
            let left = encode_server_frame(&ServerFrame::Left { room });
            for user in leaving {
                self.members.remove(&user);
                self.names.retain(|_, u| *u != user);
                let mut sh = shared.lock();
                let sessions: Vec<u64> = sh.subs.iter().filter(|s| s.s.user.id == user).map(|s| s.s.session).collect();
                for session in sessions {
                    if let Some(sub) = sh.subs.iter().find(|s| s.s.session == session) {
                        sub.s.out.forget(room);
                        let _ = sub.s.out.push(left.clone());
                    }
                    self.remove_sub(&mut sh, session);
                }
                // `remote_leave` takes the lock itself.
                drop(sh);
                let remote: Vec<RemoteKey> =
                    self.remote.iter().filter(|(_, u)| u.id == user).map(|(k, _)| k.clone()).collect();
                for (node, session) in remote {
                    self.remote_leave(&node, session);
                }
            }
        }
        result
    }

    fn commit_results(
        &mut self,
        shared: &Arc<RoomShared>,
        results: Vec<(u64, WriteResult)>,
        leaving: &mut Vec<UserId>,
    ) -> Result<(), ActorProcessingErr> {
        let room = self.room_id();
        let mut sh = shared.lock();
        for (seq, result) in results {
            let id = match result {
                Ok(WriteOutcome::Committed { id }) => id,
                Ok(WriteOutcome::Fenced) => {
                    return Err(format!("room {room}: lease epoch {} was fenced", self.epoch).into());
                }
                Ok(WriteOutcome::Gap) => {
                    return Err(format!("room {room}: seq {seq} does not follow the stored head; resyncing").into());
                }
                Err(()) => {
                    // The room restarts and reads what did commit from storage; until then its
                    // senders are told to send again (the cid makes that idempotent).
                    for p in &sh.pending {
                        let retry = Refusal::new(ErrorCode::Retry, "storage is unavailable; send again shortly");
                        let frame = encode_server_frame(&retry.frame(Some(p.row.cid.to_string())));
                        p.reply.answer(room, p.row.sender, p.row.cid.clone(), frame);
                    }
                    return Err(format!("room {room}: write of seq {seq} failed").into());
                }
            };
            let Some(mut p) = sh.pending.pop_front() else {
                return Err(format!("room {room}: commit of seq {seq} with nothing pending").into());
            };
            if p.row.seq != seq {
                return Err(format!("room {room}: commit of seq {seq} but {} pending first", p.row.seq).into());
            }
            p.row.id = id;
            self.head = seq;
            self.held.push((seq, self.shared.encode(ServerFrame::event(&p.row, &self.ctx.config.media))));
            if p.row.kind == EventKind::System
                && let Ok(event) = serde_json::from_str::<SystemEvent>(&p.row.body)
            {
                self.apply_system(event, leaving);
            }
            if p.row.kind == EventKind::Delete
                && let Some(target) = p.row.target
            {
                self.erased(&mut sh.tail, target);
                if let Some(author) = p.deleted_for {
                    self.audit_delete(p.row.sender, author, target, seq);
                }
            }
            self.note_committed(&p.row, &p.mentions);
            let ack = encode_server_frame(&ServerFrame::ack(&p.row));
            match p.released.take().filter(|r| !r.cmd_cid.is_empty()) {
                // A released held message: its releaser is answered under the command's cid,
                // its sender's sessions under the message's.
                Some(r) => {
                    let senders = self.sender_acks(&sh, p.row.sender, &p.row.cid, &ack);
                    self.held_acks.push(fanout::HeldAck { reply: p.reply, user: r.by, cid: r.cmd_cid, frame: ack });
                    self.held_acks.extend(senders);
                }
                None => self.held_acks.push(fanout::HeldAck {
                    reply: p.reply,
                    user: p.row.sender,
                    cid: p.row.cid.clone(),
                    frame: ack,
                }),
            }
            self.sent.committed(p.row.sender, p.row.cid.clone(), seq, id, p.row.ts);
            sh.tail.push_back(p.row);
            if sh.tail.len() > self.ctx.config.tail_len {
                sh.tail.pop_front();
            }
        }
        Ok(())
    }
}

pub(super) fn internal(err: crate::Error) -> Refusal {
    warn!(%err, "room storage error");
    Refusal::new(ErrorCode::Internal, "storage error; try again")
}

impl RoomState {
    /// A direct conversation of two takes no message (nor edit) while either blocked the other:
    /// the one who blocked is told `blocked`, the other only that the message was refused. Read
    /// from storage on each send, so a block holds at once on every node.
    async fn check_dm_blocks(&self, sender: UserId) -> Result<(), Refusal> {
        if self.members.len() != 2 {
            return Ok(());
        }
        let Some(other) = self.members.iter().copied().find(|m| *m != sender) else { return Ok(()) };
        match self.ctx.store.blocks_between(sender, other).await.map_err(internal)? {
            (true, _) => Err(Refusal::new(ErrorCode::Blocked, "you blocked this person: unblock them to write")),
            (_, true) => Err(Refusal::dm_refused()),
            _ => Ok(()),
        }
    }
}
