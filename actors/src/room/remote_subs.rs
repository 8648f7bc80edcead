//! Remote subscriptions, on the room's owner: nodes subscribed to the room's events (each gets
//! every event once and fans it out to its own sessions), and the sessions of those nodes that
//! joined (membership and presence here; the answer goes back on the node's link). A peer is
//! trusted to have authenticated its sessions, not to speak for another user on one of them.

use super::*;

/// A session of another node, as the owner knows it: (node, that node's session id).
pub(super) type RemoteKey = (Arc<str>, u64);

impl RoomState {
    /// Subscribes a node to the room's events: `Subscribed { head }` first, then every event
    /// after it on the same link.
    pub(super) fn node_subscribe(&mut self, link: NodeLink) {
        let shared = self.shared.clone();
        let mut sh = shared.lock();
        sh.nodes.retain(|l| l.node != link.node);
        if link.send(NodeFrame::Subscribed { room: self.room.id, head: self.head }).is_ok() {
            sh.nodes.push(link);
        }
    }

    /// A session of another node joins; the answer goes back on its link.
    pub(super) async fn answer_remote_join(&mut self, link: NodeLink, req: u64, session: u64, user: UserRef) {
        let result = self.remote_join(&link.node, session, user).await;
        let _ = link.send(NodeFrame::JoinResult { room: self.room.id, req, result });
    }

    /// A session of another node joins: membership and presence here, the rest on its node.
    pub(super) async fn remote_join(
        &mut self,
        node: &Arc<str>,
        session: u64,
        user: UserRef,
    ) -> Result<JoinedInfo, Refusal> {
        self.ensure_member(&user).await?;
        let (online, online_count) = self.online_list(&user);
        let key = (node.clone(), session);
        if self.remote.get(&key).is_some_and(|u| u.id != user.id) {
            return Err(Refusal::new(ErrorCode::Forbidden, "this session joined as another user"));
        }
        if self.remote.insert(key, user.clone()).is_none() {
            let shared = self.shared.clone();
            self.online(&shared.lock(), &user, Except::Remote(node.clone(), session));
        }
        Ok(JoinedInfo { head: self.head, online, online_count })
    }

    pub(super) fn remote_leave(&mut self, node: &Arc<str>, session: u64) {
        if let Some(user) = self.remote.remove(&(node.clone(), session)) {
            let shared = self.shared.clone();
            self.offline(&mut shared.lock(), user.id, &user);
        }
    }

    /// Typing of a session of another node: only as the user the session joined as.
    pub(super) fn remote_typing(&mut self, node: Arc<str>, session: u64, user: UserRef, on: bool) {
        if self.remote.get(&(node.clone(), session)).is_some_and(|u| u.id == user.id) {
            self.typing(Except::Remote(node, session), user, on);
        }
    }

    /// The connection to `node` closed (or it unsubscribed): its subscription and its sessions
    /// are forgotten.
    pub(super) fn peer_down(&mut self, node: &Arc<str>) {
        let shared = self.shared.clone();
        let mut sh = shared.lock();
        sh.nodes.retain(|l| l.node != *node);
        let gone: Vec<u64> = self.remote.keys().filter(|(n, _)| n == node).map(|(_, s)| *s).collect();
        drop(sh);
        for session in gone {
            self.remote_leave(node, session);
        }
    }
}
