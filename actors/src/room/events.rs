//! What makes a room a sequence of events beyond messages: the checks on an edit or delete of
//! a message, what a committed delete erases (the tail, every node's history cache), and what a
//! committed system event changes in the room actor's picture of the room.

use super::*;

impl RoomState {
    /// Whether `user` may edit (its author) or delete (its author, the room's owner, moderators
    /// and admins) the message `target`; its author when so.
    pub(super) async fn check_target(
        &mut self,
        user: &UserRef,
        kind: EventKind,
        target: Option<u64>,
    ) -> Result<UserId, Refusal> {
        let t = target.unwrap_or(0);
        if t == 0 || t > self.head {
            return Err(Refusal::new(ErrorCode::NotFound, format!("there is no message {t} in this room")));
        }
        if self.deleting.contains(&t) {
            return Err(Refusal::new(ErrorCode::Gone, format!("message {t} was deleted")));
        }
        let in_tail = self.shared.lock().tail.iter().find(|r| r.seq == t).cloned();
        let row =
            match in_tail {
                Some(r) => r,
                None => {
                    self.ctx.store.messages_between(self.room_id(), t, t, 1).await.map_err(internal)?.pop().ok_or_else(
                        || Refusal::new(ErrorCode::NotFound, format!("there is no message {t} in this room")),
                    )?
                }
            };
        if row.kind != EventKind::Message {
            return Err(Refusal::new(
                ErrorCode::Invalid,
                format!("event {t} is not a message: only messages are edited or deleted"),
            ));
        }
        if row.deleted {
            return Err(Refusal::new(ErrorCode::Gone, format!("message {t} was deleted")));
        }
        if row.sender == user.id {
            return Ok(row.sender);
        }
        if kind == EventKind::Edit {
            return Err(Refusal::new(ErrorCode::Forbidden, "only its author can edit a message"));
        }
        // Read from storage on each delete: a demoted moderator has no power from then on.
        let standing = self.ctx.store.standing(self.room_id(), user.id).await.map_err(internal)?;
        if standing.is_some_and(|s| s.is_staff()) {
            return Ok(row.sender);
        }
        Err(Refusal::new(
            ErrorCode::Forbidden,
            "only its author, the room's staff or a site moderator can delete a message",
        ))
    }

    /// After a delete committed: when someone other than the message's author deleted it (the
    /// room's owner, a site moderator or admin), the audit log gets `message.delete` with who,
    /// whose message (`author`, known from `check_target`) and which; not waited for.
    pub(super) fn audit_delete(&self, deleter: UserId, author: UserId, target: u64, seq: u64) {
        let room = self.room_id();
        let store = self.ctx.store.clone();
        tokio::spawn(async move {
            let detail = serde_json::json!({"seq": target, "event": seq}).to_string();
            let entry = crate::store::AuditAction {
                actor: Some(deleter),
                action: "message.delete",
                target: Some(author),
                room: Some(room),
                detail: &detail,
            };
            if let Err(e) = store.audit_action(entry).await {
                tracing::warn!(%room, target, err = %e, "auditing a moderator's delete failed");
            }
        });
    }

    /// After a delete committed: its message's body (and its edits' bodies) are gone from the
    /// tail, and from every node's history cache.
    pub(super) fn erased(&mut self, tail: &mut VecDeque<MessageRow>, target: u64) {
        let mut seqs = vec![target];
        for r in tail.iter_mut() {
            if r.seq == target || (r.kind == EventKind::Edit && r.target == Some(target)) {
                r.body = Arc::from("");
                if r.seq == target {
                    r.deleted = true;
                } else {
                    seqs.push(r.seq);
                }
            }
        }
        let room = self.room_id();
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            // Edits older than the tail are only in storage.
            if let Ok(more) = ctx.store.edits_of(room, target).await {
                seqs.extend(more);
            }
            seqs.sort_unstable();
            seqs.dedup();
            for seq in &seqs {
                ctx.history.invalidate(room, *seq);
            }
            ctx.cluster().broadcast(NodeFrame::Forget { room, seqs });
        });
    }

    /// What a committed system event changes in this actor's picture of the room.
    pub(super) fn apply_system(&mut self, event: SystemEvent, leaving: &mut Vec<UserId>) {
        match event {
            SystemEvent::MemberAdded { user } => {
                self.members.insert(user.id);
                self.names.insert(user.username.to_lowercase().into(), user.id);
            }
            SystemEvent::MemberLeft { user } | SystemEvent::MemberRemoved { user } => leaving.push(user.id),
            SystemEvent::Renamed { name } => self.room.name = name,
            SystemEvent::Described { description } => self.room.description = description,
            SystemEvent::OwnerChanged { owner } => self.room.owner_id = Some(owner.id),
            // Inbox events change nothing of the inbox itself.
            SystemEvent::RoomAdded { .. } | SystemEvent::RoomRemoved { .. } | SystemEvent::Mention { .. } => {}
        }
    }
}
