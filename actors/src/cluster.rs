//! The actors' view of the cluster: where a room lives, the links to other nodes, and whether
//! this node may hold leases. `confab-cluster` implements `ClusterHooks` (gossip, transport);
//! without it a node is alone and owns every room (`SingleNode`).

use confab_schemas::RoomId;
use confab_schemas::node::NodeFrame;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use tokio::sync::mpsc;

/// Where a room is sequenced, as this node sees the cluster now.
#[derive(Clone)]
pub enum Placement {
    /// This node owns the room.
    Local,
    /// Another node owns it; frames for it go through this link.
    Remote(NodeLink),
    /// The owner is known but not reachable yet, or no node is ready.
    Unavailable(String),
}

/// A member of the cluster, for `GET /api/cluster`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MemberInfo {
    pub node_id: String,
    pub http_addr: String,
    pub status: String,
    pub rooms: u64,
    pub sessions: u64,
    /// Messages the node committed during the last whole second.
    pub messages_per_second: u64,
    pub this_node: bool,
    /// The node-to-node protocol versions it speaks, newest first.
    pub protocols: Vec<u32>,
    /// The version this node's link to it speaks (none: no live link, or this node).
    pub link_protocol: Option<u32>,
}

/// What the actors ask of the cluster.
pub trait ClusterHooks: Send + Sync + 'static {
    /// Where `room` is sequenced now.
    fn placement(&self, room: RoomId) -> Placement;
    /// `placement` of each of `rooms` (one look at the cluster's view for all of them).
    fn placements(&self, rooms: &[RoomId]) -> Vec<Placement> {
        rooms.iter().map(|r| self.placement(*r)).collect()
    }
    /// The id of the node that owns `room` now, if any node is ready.
    fn owner_of(&self, room: RoomId) -> Option<String>;
    /// Whether `node` is a live member (a lease it holds must be respected).
    fn is_live(&self, node: &str) -> bool;
    /// Whether this node may take and keep leases (it sees a majority of the cluster, and its
    /// leases were renewed recently).
    fn may_sequence(&self) -> bool;
    /// Sends a frame to every other node (cluster-wide closes).
    fn broadcast(&self, frame: NodeFrame);
    /// The members as this node sees them.
    fn members(&self) -> Vec<MemberInfo>;
    /// Extra lines for `/metrics` (routing counters).
    fn metrics_text(&self) -> String;
}

/// A node alone: it owns every room and always may sequence.
pub struct SingleNode {
    pub node_id: String,
    pub http_addr: String,
}

impl ClusterHooks for SingleNode {
    fn placement(&self, _room: RoomId) -> Placement {
        Placement::Local
    }
    fn owner_of(&self, _room: RoomId) -> Option<String> {
        Some(self.node_id.clone())
    }
    fn is_live(&self, node: &str) -> bool {
        node == self.node_id
    }
    fn may_sequence(&self) -> bool {
        true
    }
    fn broadcast(&self, _frame: NodeFrame) {}
    fn members(&self) -> Vec<MemberInfo> {
        vec![MemberInfo {
            node_id: self.node_id.clone(),
            http_addr: self.http_addr.clone(),
            status: "ready".into(),
            rooms: 0,
            sessions: 0,
            messages_per_second: 0,
            this_node: true,
            protocols: confab_schemas::node::SPOKEN_NODE_PROTOCOL_VERSIONS.to_vec(),
            link_protocol: None,
        }]
    }
    fn metrics_text(&self) -> String {
        String::new()
    }
}

/// Why a frame could not be queued on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkDown;

/// The sending side of the connection to one peer: a bounded queue drained by the connection's
/// writer task. A queue that fills up breaks the link (the peer resubscribes and catches up from
/// storage), so no room actor ever waits on a slow peer and nothing is dropped silently.
#[derive(Clone)]
pub struct NodeLink {
    pub node: Arc<str>,
    tx: mpsc::Sender<NodeFrame>,
    broken: Arc<AtomicBool>,
    frames: Arc<AtomicU64>,
}

impl NodeLink {
    /// A link to `node` and the queue its writer task drains.
    pub fn channel(node: Arc<str>, capacity: usize) -> (NodeLink, mpsc::Receiver<NodeFrame>) {
        let (tx, rx) = mpsc::channel(capacity);
        let link = NodeLink { node, tx, broken: Arc::default(), frames: Arc::default() };
        (link, rx)
    }

    /// Queues a frame; a full queue breaks the link.
    pub fn send(&self, frame: NodeFrame) -> Result<(), LinkDown> {
        if self.broken.load(Relaxed) {
            return Err(LinkDown);
        }
        match self.tx.try_send(frame) {
            Ok(()) => {
                self.frames.fetch_add(1, Relaxed);
                Ok(())
            }
            Err(_) => {
                self.broken.store(true, Relaxed);
                Err(LinkDown)
            }
        }
    }

    /// Whether the link was broken (full queue or closed connection).
    pub fn is_broken(&self) -> bool {
        self.broken.load(Relaxed) || self.tx.is_closed()
    }

    /// Marks the link broken (its connection closed).
    pub fn break_link(&self) {
        self.broken.store(true, Relaxed);
    }

    /// Frames queued on this link so far.
    pub fn frames_sent(&self) -> u64 {
        self.frames.load(Relaxed)
    }

    /// Whether both are handles of the same connection.
    pub fn same(&self, other: &NodeLink) -> bool {
        Arc::ptr_eq(&self.broken, &other.broken)
    }
}
