//! What a room tells its members' inboxes. Durable, as events of the member's inbox: being
//! added to or removed from the room, and mentions (`@name`, resolved against the members when
//! the message is sequenced and recorded in `mentions` with it). Not durable, coalesced to one
//! `activity` frame per room every tick (500 ms): the room's new head, how many messages came,
//! the newest one and a new name, sent once per node to the inboxes that node owns; an inbox
//! with no subscriber is not running and drops it (the room list reloads those figures).

use super::*;
use crate::cluster::Placement;
use confab_schemas::client::{ActivityLast, RemovedReason, excerpt};

/// At most this many members are mentioned by one message (the rest are not notified).
pub(crate) const MAX_MENTIONS: usize = 20;

/// Changes of the room not yet told to the inboxes of its members.
#[derive(Default)]
pub(super) struct Activity {
    messages: u32,
    /// The newest message (its preview is made at the flush, not per message).
    last: Option<MessageRow>,
    name: Option<String>,
}

/// The members `body` mentions (`@name`, case-insensitive, names of `names`), without `except`.
pub(crate) fn mentioned(body: &str, names: &HashMap<Arc<str>, UserId>, except: UserId) -> Vec<UserId> {
    let mut out = Vec::new();
    let bytes = body.as_bytes();
    let mut i = 0;
    while let Some(at) = body[i..].find('@') {
        let start = i + at + 1;
        // A mention starts a word: not `a@b` (an address).
        let word_start = i + at == 0 || !is_name_byte(bytes[i + at - 1]);
        let end = start + body[start..].bytes().take_while(|b| is_name_byte(*b)).count();
        if word_start && end > start {
            let name = body[start..end].to_lowercase();
            if let Some(&u) = names.get(name.as_str())
                && u != except
                && !out.contains(&u)
            {
                out.push(u);
                if out.len() == MAX_MENTIONS {
                    break;
                }
            }
        }
        i = end.max(start);
    }
    out
}

/// Characters of a username (the gateway allows ASCII letters, digits and `_`).
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl RoomState {
    /// What a committed event of this room means for its members' inboxes.
    pub(super) fn note_committed(&mut self, row: &MessageRow, mentions: &[UserId]) {
        if self.room.id.is_inbox() {
            return;
        }
        let by = || UserRef { id: row.sender, username: row.sender_name.clone() };
        match row.kind {
            EventKind::Message => {
                self.activity.messages += 1;
                self.activity.last = Some(row.clone());
                if mentions.is_empty() {
                    return;
                }
                let event = SystemEvent::Mention {
                    room: self.room.id,
                    target: row.seq,
                    from: by(),
                    excerpt: excerpt(&row.body),
                };
                let notes: Vec<_> = mentions.iter().map(|u| (*u, event.clone())).collect();
                self.tell_inboxes(&by(), notes);
            }
            EventKind::System => {
                let Ok(event) = serde_json::from_str::<SystemEvent>(&row.body) else { return };
                let room = self.room.id;
                let note = match event {
                    SystemEvent::MemberAdded { user } => Some((
                        user.id,
                        SystemEvent::RoomAdded {
                            room,
                            name: self.room.name.clone(),
                            visibility: self.room.visibility.as_str().to_owned(),
                            kind: self.room.kind,
                            members: Vec::new(),
                        },
                    )),
                    SystemEvent::MemberLeft { user } => {
                        Some((user.id, SystemEvent::RoomRemoved { room, reason: RemovedReason::Left }))
                    }
                    SystemEvent::MemberRemoved { user } => {
                        Some((user.id, SystemEvent::RoomRemoved { room, reason: RemovedReason::Removed }))
                    }
                    SystemEvent::Renamed { name } => {
                        self.activity.name = Some(name);
                        None
                    }
                    _ => None,
                };
                self.tell_inboxes(&by(), note.into_iter().collect());
            }
            _ => {}
        }
    }

    /// Sequences `notes` in the inboxes they name, wherever those are (not waiting for them).
    pub(super) fn tell_inboxes(&self, by: &UserRef, notes: Vec<(UserId, SystemEvent)>) {
        // A stranger chat tells no inbox anything (it would name the stranger).
        if notes.is_empty() || self.room.kind == RoomKind::Stranger {
            return;
        }
        let ctx = self.ctx.clone();
        let by = by.clone();
        tokio::spawn(async move {
            for (user, event) in notes {
                ctx.tell_inbox(user, by.clone(), event).await;
            }
        });
    }

    /// Sends the coalesced `activity` of the last tick to the inboxes of the members.
    pub(super) fn flush_activity(&mut self) {
        // Nothing to tell: no message and no new name since the last flush; nothing ever of a
        // stranger chat (its preview would name the stranger).
        if (self.activity.messages == 0 && self.activity.name.is_none()) || self.room.kind == RoomKind::Stranger {
            return;
        }
        let a = std::mem::take(&mut self.activity);
        let frame = encode_server_frame(&ServerFrame::Activity {
            room: self.room.id,
            head: self.head,
            messages: a.messages,
            last: a.last.map(|m| ActivityLast {
                seq: m.seq,
                from: UserRef { id: m.sender, username: m.sender_name.clone() },
                body: excerpt(&m.body),
                ts: m.ts,
            }),
            name: a.name,
        });
        let inboxes: Vec<RoomId> = self.members.iter().map(|u| RoomId::inbox_of(*u)).collect();
        let places = self.ctx.cluster().placements(&inboxes);
        let mut local = Vec::new();
        let mut remote: HashMap<Arc<str>, (NodeLink, Vec<RoomId>)> = HashMap::new();
        for (inbox, place) in inboxes.into_iter().zip(places) {
            match place {
                Placement::Local => local.push(inbox),
                Placement::Remote(link) => remote.entry(link.node.clone()).or_insert((link, Vec::new())).1.push(inbox),
                Placement::Unavailable(_) => {}
            }
        }
        if !local.is_empty()
            && let Some(dir) = self.ctx.rooms.get()
        {
            let _ = dir.cast(DirMsg::Activity(local, frame.clone()));
        }
        for (_, (link, inboxes)) in remote {
            let _ = link.send(NodeFrame::Activity { inboxes, frame: frame.clone() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> HashMap<Arc<str>, UserId> {
        [("alice", 1), ("bob", 2), ("carol_k", 3)].into_iter().map(|(n, u)| (Arc::from(n), UserId(u))).collect()
    }

    #[test]
    fn mentions_are_members_named_at_a_word_start() {
        let n = names();
        assert_eq!(mentioned("hi @Bob and @alice!", &n, UserId(9)), vec![UserId(2), UserId(1)]);
        assert_eq!(mentioned("@carol_k, @bob. @bob", &n, UserId(9)), vec![UserId(3), UserId(2)]);
        // Not an address, not a stranger, not the author, not a bare @.
        assert!(mentioned("mail bob@alice.org or @dave @ @", &n, UserId(9)).is_empty());
        assert_eq!(mentioned("@alice @bob", &n, UserId(1)), vec![UserId(2)]);
        assert!(mentioned("née @ünïcode", &n, UserId(9)).is_empty());
    }
}
