//! Moderation in the sequencer: whether a message may pass (room bans on joining; the automatic
//! flags and pre-moderation on sending, for members who are not room staff, in rooms and in
//! stranger chats, where a flag also keeps the chat for moderators as a report does), holding a message
//! (the room's `ModerationQueue` claims its uploads and stores it before its sender hears
//! `held`, so it survives a kill or a failover; the room's staff joined to it get `queued`), and
//! the commands that reach the room's owner: a staff decision or a report is handed to the
//! room's queue, which decides; what the queue asks back is carried out here, the one place that
//! gives a seq: a release sequences the held message under its sender's cid (the next seq then;
//! the sender gets the normal ack), a reject answers the sender `rejected` and never gives it a
//! seq, a delete sequences a delete. The sequencer orders a release against a reject of one item.

use super::*;
use crate::moderation::flags::{Verdict, has_link};
use crate::moderation::{Command, Flagged, Held, ModerationHandle, item_json, item_with_context};
use crate::msg::room::TO_USER;
use crate::store::{QueueItem, RoomSanctionKind};

/// What the sender of a rejected message reads: the moderator's reason, if one was given.
fn rejection(reason: &str) -> String {
    if reason.is_empty() { "a moderator rejected this message".to_owned() } else { reason.to_owned() }
}

/// A released held message, while its write is in flight: who released it, under which cid.
pub(crate) struct Released {
    pub(crate) by: UserId,
    pub(crate) cmd_cid: Arc<str>,
}

/// A chat message moderation looks at.
pub(super) struct Sending<'a> {
    pub(super) cid: &'a Arc<str>,
    pub(super) body: &'a Arc<str>,
    pub(super) reply_to: Option<u64>,
    /// Its upload ids.
    pub(super) uploads: &'a [Arc<str>],
}

/// What moderation makes of a send.
pub(super) enum Pass {
    Yes,
    /// Held: its sender was answered.
    Held,
}

impl RoomState {
    /// A user banned from the room may not join it.
    pub(super) async fn check_room_ban(&self, user: UserId) -> Result<(), Refusal> {
        if self.room.kind == RoomKind::Room
            && self.ctx.store.room_banned(self.room_id(), user).await.map_err(internal)?
        {
            return Err(Refusal::new(ErrorCode::Forbidden, "you are banned from this room"));
        }
        Ok(())
    }

    /// Applies pre-moderation and the flags to a chat message of `user` (not a system event, not
    /// a release): passes it, holds it (answering `held`), or refuses it.
    pub(super) async fn moderate(
        &mut self,
        user: &UserRef,
        reply: &ReplyTo,
        draft: Sending<'_>,
    ) -> Result<Pass, Refusal> {
        let Sending { cid, body, reply_to, uploads } = draft;
        // Rooms and stranger chats (which have no settings of their own: the site's flags).
        if !matches!(self.room.kind, RoomKind::Room | RoomKind::Stranger) || self.room.id.is_inbox() {
            return Ok(Pass::Yes);
        }
        self.ctx.mod_settings.ensure(&self.ctx).await;
        let settings = self.ctx.mod_settings.effective(self.room_id());
        if !settings.premod && !settings.flags.any() {
            return Ok(Pass::Yes);
        }
        let standing = self.ctx.store.standing(self.room_id(), user.id).await.map_err(internal)?;
        if standing.is_some_and(|s| s.is_staff()) {
            return Ok(Pass::Yes);
        }
        let store = self.ctx.store.clone();
        let uid = user.id;
        let verdict = self
            .flags
            .check(&settings.flags, user.id, body, || async move {
                if !has_link(body) {
                    return None;
                }
                store.user_by_id(uid).await.ok().flatten().map(|u| now_ms() - u.created_at)
            })
            .await;
        if !matches!(verdict, Verdict::Pass) {
            self.keep_stranger_chat();
        }
        let reason = match verdict {
            Verdict::Pass if settings.premod => "pre-moderation".to_owned(),
            Verdict::Pass => return Ok(Pass::Yes),
            Verdict::Refuse { refusal, flag } => {
                if let Some(flag) = flag {
                    self.flag(user.id, &flag, cid, body, None);
                }
                return Err(refusal);
            }
            Verdict::Mute { refusal, minutes, flag } => {
                let until = now_ms() + i64::from(minutes) * 60_000;
                self.flag(user.id, &flag, cid, body, Some(until));
                return Err(refusal);
            }
            Verdict::Hold(reason) => reason,
        };
        let queue = self.queue()?;
        let held =
            Held { sender: user.id, cid: cid.clone(), body: body.clone(), reply_to, reason, uploads: uploads.to_vec() };
        let stored = queue.hold(held).await?;
        let room = self.room_id();
        let answer = match stored.status.as_str() {
            "rejected" => ServerFrame::Rejected {
                room,
                cid: cid.to_string(),
                reason: rejection(stored.decision_reason.as_deref().unwrap_or("")),
            },
            _ => ServerFrame::Held { room, cid: cid.to_string(), item: stored.id },
        };
        reply.answer(room, user.id, cid.clone(), encode_server_frame(&answer));
        if stored.status == "open" {
            self.tell_staff(&stored).await;
        }
        Ok(Pass::Held)
    }

    /// A flag fired in a stranger chat: like a report, the chat is kept for moderators instead
    /// of being deleted once both left (not waited for).
    fn keep_stranger_chat(&self) {
        if self.room.kind != RoomKind::Stranger {
            return;
        }
        let (store, room) = (self.ctx.store.clone(), self.room_id());
        tokio::spawn(async move {
            if let Err(e) = store.keep_stranger_chat(room).await {
                warn!(%room, err = %e, "keeping a flagged stranger chat failed");
            }
        });
    }

    /// The room's moderation queue (started beside the room by the directory).
    fn queue(&self) -> Result<ModerationHandle, Refusal> {
        self.shared.queue().ok_or_else(|| Refusal::new(ErrorCode::Retry, "moderation is restarting; send again"))
    }

    /// Files a flag's queue item (and, for a flood, the room mute it brings), not waited for.
    fn flag(&self, user: UserId, flag: &str, cid: &Arc<str>, body: &str, mute_until: Option<i64>) {
        let flagged =
            Flagged { sender: user, flag: flag.to_owned(), cid: cid.to_string(), body: body.to_owned(), mute_until };
        match self.shared.queue() {
            Some(q) => q.flag(flagged),
            None => {
                warn!(room = %self.room.id, flag, "a flag fired while the room's queue restarts; not filed");
                // A flood's mute is stored all the same: it must outlive this incarnation.
                if let Some(until) = mute_until {
                    let (store, room, reason) = (self.ctx.store.clone(), self.room_id(), flagged.flag);
                    tokio::spawn(async move {
                        let mute =
                            store.put_room_sanction(room, user, RoomSanctionKind::Mute, None, &reason, Some(until));
                        if let Err(e) = mute.await {
                            warn!(%room, err = %e, "storing a flood mute failed");
                        }
                    });
                }
            }
        }
    }

    /// `queued` to the room's staff joined to it, on every node (site staff are the staff of
    /// every room): a held message as it is held, a flag or a report as the queue stores it.
    pub(super) async fn tell_staff(&self, item: &QueueItem) {
        let staff: HashSet<UserId> = match self.ctx.store.room_staff(self.room_id()).await {
            Ok(s) => s.into_iter().collect(),
            Err(e) => {
                warn!(room = %self.room.id, err = %e, "reading the room's staff failed");
                return;
            }
        };
        let item = match item_with_context(&self.ctx.store, item, &self.ctx.config.media).await {
            Ok(item) => item,
            Err(e) => {
                warn!(room = %self.room.id, err = %e, "reading a queue item's context failed");
                item_json(item, &[], &self.ctx.config.media)
            }
        };
        let frame = encode_server_frame(&ServerFrame::Queued { room: self.room_id(), item });
        self.tell_users(&staff, &frame);
    }

    /// A frame for every session of these users joined to the room, here and on other nodes.
    pub(super) fn tell_users(&self, users: &HashSet<UserId>, frame: &Bytes) {
        let sh = self.shared.lock();
        for sub in sh.subs.iter().filter(|s| users.contains(&s.s.user.id)) {
            let _ = sub.s.out.push(frame.clone());
        }
        for (node, user) in self.remote_users(users) {
            if let Some(link) = sh.nodes.iter().find(|l| l.node == node) {
                let _ = link.send(NodeFrame::SendResult {
                    room: self.room.id,
                    user,
                    cid: TO_USER.into(),
                    frame: frame.clone(),
                });
            }
        }
    }

    /// The (node, user) pairs of other nodes' sessions of `users` joined here.
    fn remote_users(&self, users: &HashSet<UserId>) -> HashSet<(Arc<str>, UserId)> {
        self.remote.iter().filter(|(_, u)| users.contains(&u.id)).map(|((node, _), u)| (node.clone(), u.id)).collect()
    }

    /// Where a released message's ack goes besides its releaser: every session of its sender
    /// joined to the room (after the message, like any ack).
    pub(super) fn sender_acks(&self, sh: &Shared, sender: UserId, cid: &Arc<str>, ack: &Bytes) -> Vec<fanout::HeldAck> {
        let mut acks: Vec<fanout::HeldAck> = sh
            .subs
            .iter()
            .filter(|s| s.s.user.id == sender)
            .map(|s| fanout::HeldAck {
                reply: ReplyTo::Session(s.s.session_ref.clone()),
                user: sender,
                cid: cid.clone(),
                frame: ack.clone(),
            })
            .collect();
        for (node, user) in self.remote_users(&HashSet::from([sender])) {
            if let Some(link) = sh.nodes.iter().find(|l| l.node == node) {
                acks.push(fanout::HeldAck {
                    reply: ReplyTo::Node(link.clone()),
                    user,
                    cid: TO_USER.into(),
                    frame: ack.clone(),
                });
            }
        }
        acks
    }

    /// Carries out a staff command (`by` was authorised by its node). Answers `reply` under
    /// (`by`, `cmd_cid`) itself, except a release or delete, answered once durable; those add
    /// their write to `writes`.
    pub(super) async fn command(
        &mut self,
        by: &UserRef,
        reply: &ReplyTo,
        cmd_cid: Arc<str>,
        body: &str,
        writes: &mut Vec<NewMessage>,
    ) -> Result<(), Refusal> {
        if matches!(reply, ReplyTo::Session(_)) {
            return Err(Refusal::new(ErrorCode::Forbidden, "not a frame for clients"));
        }
        let command =
            Command::parse(body).ok_or_else(|| Refusal::new(ErrorCode::Invalid, "an unknown moderation command"))?;
        let item_id = match command {
            Command::Delete { seq } => {
                let draft = Draft {
                    cid: cmd_cid,
                    body: "".into(),
                    reply_to: None,
                    kind: EventKind::Delete,
                    target: Some(seq),
                    attachments: Vec::new(),
                };
                return self.send(0, by, reply, draft, writes, Some(Released { by: by.id, cmd_cid: "".into() })).await;
            }
            // For the queue, which answers them itself.
            Command::Decide(decision) => {
                if !self.queue()?.decide(by.clone(), decision, reply.clone(), cmd_cid) {
                    return Err(Refusal::new(ErrorCode::Retry, "moderation is restarting; try again"));
                }
                return Ok(());
            }
            Command::Report { seq, reason } => {
                if !self.queue()?.report(by.clone(), seq, reason, reply.clone(), cmd_cid) {
                    return Err(Refusal::new(ErrorCode::Retry, "moderation is restarting; try again"));
                }
                return Ok(());
            }
            Command::Release { item } | Command::Reject { item, .. } => item,
        };
        let item = self
            .ctx
            .store
            .queue_item(item_id)
            .await
            .map_err(internal)?
            .filter(|i| i.room == self.room_id() && i.kind == "held")
            .ok_or_else(|| Refusal::new(ErrorCode::NotFound, format!("no held message {item_id} in this room")))?;
        let room = self.room_id();
        if item.status != "open" {
            // The queue decides an item once at a time, so a reject found done by the one who
            // asks it is this command sent again (its answer was slow): done, not `conflict`.
            let again = matches!(command, Command::Reject { .. })
                && item.status == "rejected"
                && item.decided_by.as_ref().is_some_and(|(who, _)| *who == by.id);
            if again {
                let done = ServerFrame::Ack { cid: cmd_cid.clone(), room, seq: 0, id: item.id, ts: now_ms() };
                reply.answer(room, by.id, cmd_cid, encode_server_frame(&done));
                return Ok(());
            }
            return Err(Refusal::new(ErrorCode::Conflict, format!("this message was {} already", item.status)));
        }
        let (Some((sender, sender_name)), Some(cid)) = (item.sender.clone(), item.cid.clone()) else {
            return Err(Refusal::new(ErrorCode::Internal, "the held message lacks its sender"));
        };
        let cid: Arc<str> = cid.into();
        self.load_sender(sender).await?;
        let known = self.sent.get(sender, &cid);
        match command {
            Command::Release { .. } => match known {
                Some(Recent::Committed { seq, id, ts }) => {
                    // Released before (its status was not written yet): the same ack.
                    self.release_held();
                    let ack = ServerFrame::Ack { cid: cid.clone(), room: self.room_id(), seq, id, ts };
                    reply.answer(self.room_id(), by.id, cmd_cid, encode_server_frame(&ack));
                    Ok(())
                }
                // Its write is in flight (this command sent again): not decided yet, nor refused.
                Some(Recent::Pending) => {
                    Err(Refusal::new(ErrorCode::Retry, "this message is being released; try again"))
                }
                None => {
                    let draft = Draft {
                        cid,
                        body: item.body.unwrap_or_default().into(),
                        reply_to: item.reply_to.filter(|r| *r <= self.head),
                        kind: EventKind::Message,
                        target: None,
                        attachments: item.attachments.iter().map(|a| a.id.clone()).collect(),
                    };
                    let sender = UserRef { id: sender, username: sender_name.into() };
                    self.send(0, &sender, reply, draft, writes, Some(Released { by: by.id, cmd_cid })).await
                }
            },
            Command::Reject { reason, .. } => {
                if known.is_some() {
                    return Err(Refusal::new(ErrorCode::Conflict, "this message was released already"));
                }
                if !self.ctx.store.decide_item(item.id, "rejected", Some(by.id), &reason).await.map_err(internal)? {
                    return Err(Refusal::new(ErrorCode::Conflict, "this message was decided already"));
                }
                let frame = ServerFrame::Rejected { room, cid: cid.to_string(), reason: rejection(&reason) };
                self.tell_users(&HashSet::from([sender]), &encode_server_frame(&frame));
                let done = ServerFrame::Ack { cid: cmd_cid.clone(), room, seq: 0, id: item.id, ts: now_ms() };
                reply.answer(room, by.id, cmd_cid, encode_server_frame(&done));
                Ok(())
            }
            Command::Delete { .. } | Command::Decide(_) | Command::Report { .. } => Ok(()),
        }
    }
}
