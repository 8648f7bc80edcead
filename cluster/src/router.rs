//! Routing of the frames one peer sends: requests for rooms this node owns go to their room
//! actors (answers go back on the same connection, unchanged), and events of rooms another node
//! owns go to their local proxies, which fan them out to this node's sessions.

use confab_actors::cluster::NodeLink;
use confab_actors::sessions::CloseTarget;
use confab_actors::{ActorSystem, RoomHandle};
use confab_schemas::node::{CloseScope, NodeFrame};
use confab_schemas::wire::encode_server_frame;
use confab_schemas::{ErrorCode, Refusal, RoomId};
use std::collections::HashMap;
use std::sync::Arc;

/// The router of one connection.
pub struct Router {
    system: Arc<ActorSystem>,
    link: NodeLink,
    /// Room actors of owned rooms this peer talks to.
    owned: HashMap<RoomId, RoomHandle>,
    /// Proxies of rooms this peer owns.
    proxies: HashMap<RoomId, RoomHandle>,
}

impl Router {
    pub fn new(system: Arc<ActorSystem>, link: NodeLink) -> Router {
        Router { system, link, owned: HashMap::new(), proxies: HashMap::new() }
    }

    pub async fn dispatch(&mut self, frame: NodeFrame) {
        match frame {
            NodeFrame::Subscribe { room } => {
                let link = self.link.clone();
                self.for_owned_room(room, |r| r.subscribe_node(link.clone())).await;
            }
            NodeFrame::Unsubscribe { room } => {
                if let Some(actor) = self.owned.get(&room) {
                    actor.peer_down(self.link.node.clone());
                }
            }
            NodeFrame::Join { room, req, session, user } => {
                let link = self.link.clone();
                self.for_owned_room(room, |r| r.remote_join(link.clone(), req, session, user.clone())).await;
            }
            NodeFrame::Leave { room, session } => {
                if let Some(actor) = self.owned.get(&room) {
                    actor.remote_leave(self.link.node.clone(), session);
                }
            }
            NodeFrame::Send { room, session, user, draft } => {
                let link = self.link.clone();
                let uid = user.id;
                let sent = self
                    .for_owned_room(room, |r| r.remote_send(link.clone(), session, user.clone(), draft.clone()))
                    .await;
                if !sent {
                    let cid = draft.cid.to_string();
                    let frame =
                        Refusal::new(ErrorCode::Retry, "the room is moving; send again").frame(Some(cid.clone()));
                    let _ =
                        link.send(NodeFrame::SendResult { room, user: uid, cid, frame: encode_server_frame(&frame) });
                }
            }
            NodeFrame::Typing { room, session, user, on } => {
                if let Some(actor) = self.owned.get(&room) {
                    actor.remote_typing(self.link.node.clone(), session, user, on);
                }
            }
            NodeFrame::Close { scope, reason, reconnect } => {
                let target = match scope {
                    CloseScope::User(u) => CloseTarget::User(u),
                    CloseScope::Family(f) => CloseTarget::Family(f.into()),
                };
                self.system.close_local_sessions(target, &reason, reconnect);
            }
            frame @ (NodeFrame::Subscribed { .. }
            | NodeFrame::Event { .. }
            | NodeFrame::Ephemeral { .. }
            | NodeFrame::JoinResult { .. }
            | NodeFrame::SendResult { .. }
            | NodeFrame::Restarted { .. }
            | NodeFrame::Moved { .. }) => {
                let room = frame_room(&frame);
                self.for_proxy(room, frame).await;
            }
            NodeFrame::Forget { room, seqs } => self.system.forget_history(room, &seqs),
            NodeFrame::RoomDeleted { room } => self.system.room_deleted_here(room),
            NodeFrame::Activity { inboxes, frame } => self.system.inbox_activity(inboxes, frame),
            NodeFrame::Broadcast { frame } => self.system.broadcast_to_sessions(frame, false),
            NodeFrame::Hello { .. } | NodeFrame::HelloAck { .. } | NodeFrame::Heartbeat => {}
        }
    }

    /// Casts to the local sequencer of `room`; when this node does not own it, tells the peer
    /// to look for the owner again. Returns whether the message was delivered.
    async fn for_owned_room(&mut self, room: RoomId, deliver: impl Fn(&RoomHandle) -> bool) -> bool {
        for _ in 0..2 {
            let actor = match self.owned.get(&room) {
                Some(a) => a.clone(),
                None => match self.system.owned_room(room).await {
                    Ok(a) => {
                        self.owned.insert(room, a.clone());
                        a
                    }
                    Err(refusal) => {
                        if refusal.code != ErrorCode::UnknownRoom {
                            let _ = self.link.send(NodeFrame::Moved { room });
                        }
                        return false;
                    }
                },
            };
            if deliver(&actor) {
                return true;
            }
            self.owned.remove(&room);
        }
        false
    }

    async fn for_proxy(&mut self, room: RoomId, frame: NodeFrame) {
        let mut frame = Some(frame);
        for _ in 0..2 {
            let proxy = match self.proxies.get(&room) {
                Some(p) => p.clone(),
                None => match self.system.room_proxy(room).await {
                    Some(p) => {
                        self.proxies.insert(room, p.clone());
                        p
                    }
                    None => return,
                },
            };
            match proxy.from_owner(frame.take().expect("present")) {
                None => return,
                Some(f) => frame = Some(f),
            }
            self.proxies.remove(&room);
        }
    }
}

fn frame_room(frame: &NodeFrame) -> RoomId {
    match frame {
        NodeFrame::Subscribed { room, .. }
        | NodeFrame::Event { room, .. }
        | NodeFrame::Ephemeral { room, .. }
        | NodeFrame::JoinResult { room, .. }
        | NodeFrame::SendResult { room, .. }
        | NodeFrame::Restarted { room }
        | NodeFrame::Moved { room } => *room,
        _ => RoomId(0),
    }
}
