//! Cluster membership and room ownership.
//!
//! This first version is single-node: the membership holds only this node, which therefore owns
//! every room. Ownership is already computed the way the cluster will compute it, by rendezvous
//! hashing of the room id over the ready nodes, so every node derives the same owner from the
//! same view. Gossip (chitchat), the node-to-node transport and handoff come with the cluster.

use confab_schemas::RoomId;
use std::hash::{DefaultHasher, Hash, Hasher};

/// A member of the cluster as ownership sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub node_id: String,
    pub http_addr: String,
}

/// The nodes this node knows of (today: itself).
#[derive(Debug, Clone)]
pub struct Membership {
    members: Vec<Member>,
}

impl Membership {
    pub fn single(local: Member) -> Membership {
        Membership { members: vec![local] }
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The owner of `room` among the current members.
    pub fn owner(&self, room: RoomId) -> Option<&Member> {
        room_owner(room, &self.members)
    }
}

/// Rendezvous (highest random weight) hashing: the member with the highest hash of
/// (room, node id) owns the room. Adding or removing a node moves only that node's rooms.
pub fn room_owner(room: RoomId, members: &[Member]) -> Option<&Member> {
    members.iter().max_by_key(|m| {
        let mut h = DefaultHasher::new();
        room.0.hash(&mut h);
        m.node_id.hash(&mut h);
        (h.finish(), m.node_id.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: usize) -> Vec<Member> {
        (0..n).map(|i| Member { node_id: format!("node-{i}"), http_addr: format!("127.0.0.1:{}", 8000 + i) }).collect()
    }

    #[test]
    fn single_node_owns_everything() {
        let m = Membership::single(members(1).remove(0));
        assert!((0..100).all(|r| m.owner(RoomId(r)).unwrap().node_id == "node-0"));
    }

    #[test]
    fn rendezvous_moves_only_the_rooms_of_a_removed_node() {
        let three = members(3);
        let two: Vec<Member> = three.iter().filter(|m| m.node_id != "node-2").cloned().collect();
        let mut per_node = [0usize; 3];
        for r in 0..3000 {
            let before = room_owner(RoomId(r), &three).unwrap().node_id.clone();
            let after = room_owner(RoomId(r), &two).unwrap().node_id.clone();
            per_node[before.trim_start_matches("node-").parse::<usize>().unwrap()] += 1;
            if before != "node-2" {
                assert_eq!(before, after, "room {r} moved although its owner stayed");
            }
        }
        assert!(per_node.iter().all(|&n| n > 800), "balanced: {per_node:?}");
    }
}
