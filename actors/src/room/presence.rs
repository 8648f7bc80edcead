//! Who is online in a room and who is typing: presence frames (rate-limited per user by
//! `presence_limit`), the online list of `joined`, typing. Ephemeral frames go to local sessions
//! (shed first under pressure) and once to every subscribed node (see `remote_subs`).

use super::*;

impl RoomState {
    /// The online list of a `joined` frame, `first` at its head, and the online count.
    pub(super) fn online_list(&self, first: &UserRef) -> (Vec<UserRef>, usize) {
        let list = std::iter::once(first.clone())
            .chain(
                self.online
                    .iter()
                    .filter(|(id, _)| **id != first.id)
                    .map(|(id, (name, _))| UserRef { id: *id, username: name.clone() }),
            )
            .take(ONLINE_LIST_MAX)
            .collect();
        (list, self.online.len() + usize::from(!self.online.contains_key(&first.id)))
    }

    /// One more subscription of `user`; announces them online when it is the first.
    pub(super) fn online(&mut self, sh: &Shared, user: &UserRef, except: Except) {
        let entry = self.online.entry(user.id).or_insert((user.username.clone(), 0));
        entry.1 += 1;
        let first = entry.1 == 1;
        if first {
            self.user_presence(true);
        }
        if first && self.presence.change(user, true) {
            let frame =
                self.shared.encode(ServerFrame::Presence { room: self.room.id, user: user.clone(), online: true });
            self.broadcast_ephemeral(sh, frame, except);
        }
    }

    /// One fewer subscription of `user`; announces them offline when it was the last.
    pub(super) fn offline(&mut self, sh: &mut Shared, user: UserId, user_ref: &UserRef) {
        if let Some(entry) = self.online.get_mut(&user) {
            entry.1 -= 1;
            if entry.1 == 0 {
                self.online.remove(&user);
                self.user_presence(false);
                self.typing_at.remove(&user);
                if self.presence.change(user_ref, false) {
                    let frame = self.shared.encode(ServerFrame::Presence {
                        room: self.room.id,
                        user: user_ref.clone(),
                        online: false,
                    });
                    self.broadcast_ephemeral(sh, frame, Except::Nobody);
                }
            }
        }
    }

    /// Presence and typing: to local sessions (shed first under pressure) and once to every
    /// subscribed node, which passes it on to its own sessions.
    pub(super) fn broadcast_ephemeral(&self, sh: &Shared, frame: Bytes, except: Except) {
        let local_except = match except {
            Except::Local(s) => Some(s),
            _ => None,
        };
        for sub in sh.subs.iter().filter(|s| Some(s.s.session) != local_except) {
            if sub.s.out.push_ephemeral(frame.clone()).is_err() {
                self.ctx.metrics.ephemeral_dropped.fetch_add(1, Relaxed);
            }
        }
        for link in &sh.nodes {
            let except = match &except {
                Except::Remote(node, s) if *node == link.node => Some(*s),
                _ => None,
            };
            let _ = link.send(NodeFrame::Ephemeral { room: self.room.id, except, frame: frame.clone() });
        }
    }

    pub(super) fn typing(&mut self, from: Except, user: UserRef, on: bool) {
        if on {
            let now = Instant::now();
            if self.typing_at.get(&user.id).is_some_and(|t| now.duration_since(*t) < Duration::from_millis(1000)) {
                return;
            }
            self.typing_at.insert(user.id, now);
        } else {
            self.typing_at.remove(&user.id);
        }
        let sh = self.shared.lock();
        let joined = match &from {
            Except::Local(session) => sh.subs.iter().any(|s| s.s.session == *session),
            Except::Remote(node, session) => self.remote.contains_key(&(node.clone(), *session)),
            Except::Nobody => false,
        };
        if !joined {
            return;
        }
        let frame = self.shared.encode(ServerFrame::Typing { room: self.room.id, user, on });
        self.broadcast_ephemeral(&sh, frame, from);
    }
}
