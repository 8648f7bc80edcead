//! Which node each member connection of a room goes to (`--placement`): round-robin over the
//! nodes, all on the node that owns the room (every delivery local), or all on the nodes that do
//! not (every send and delivery crosses a node-to-node link). The last two measure what a
//! delivery across nodes costs against a local one inside the same cluster.

use super::rest::get_json;
use anyhow::{Context, anyhow, bail};
use clap::ValueEnum;
use std::net::SocketAddr;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum Placement {
    /// Connections round-robin over the nodes.
    #[default]
    Spread,
    /// Every member of a room (senders too) on the node that owns the room.
    Owner,
    /// Every member of a room (senders too) on the nodes that do not own it, alternating.
    Remote,
}

/// Where each room's members connect: for room `r`, `nodes_of[r]` lists the indexes into the
/// node list its members take in turn; empty for `spread`.
pub(crate) struct RoomNodes {
    nodes: usize,
    nodes_of: Vec<Vec<usize>>,
}

impl RoomNodes {
    /// The node (an index into the node list) of the member at position `pos` of room `room`,
    /// whose connection is the `k`th of the run.
    pub(crate) fn node(&self, room: usize, pos: usize, k: usize) -> usize {
        match self.nodes_of.get(room) {
            Some(list) => list[pos % list.len()],
            None => k % self.nodes,
        }
    }

    /// Asks the nodes who they are and who owns each room, and places the members accordingly.
    pub(crate) async fn resolve(
        placement: Placement,
        nodes: &[SocketAddr],
        token: &str,
        rooms: &[i64],
    ) -> anyhow::Result<RoomNodes> {
        if placement == Placement::Spread {
            return Ok(RoomNodes { nodes: nodes.len(), nodes_of: Vec::new() });
        }
        if placement == Placement::Remote && nodes.len() < 2 {
            bail!("--placement remote needs at least two --node addresses of one cluster");
        }
        let mut ids = Vec::with_capacity(nodes.len());
        for &n in nodes {
            let v = get_json(n, token, "/api/cluster").await?;
            ids.push(v["node"].as_str().ok_or_else(|| anyhow!("{n}: /api/cluster names no node: {v}"))?.to_owned());
        }
        let mut nodes_of = Vec::with_capacity(rooms.len());
        for room in rooms {
            let v = get_json(nodes[0], token, &format!("/api/rooms/{room}")).await?;
            let owner = v["owner_node"].as_str().unwrap_or_default();
            let at = ids
                .iter()
                .position(|id| id == owner)
                .with_context(|| format!("room {room}: its owner {owner:?} is none of the --node addresses {ids:?}"))?;
            nodes_of.push(match placement {
                Placement::Owner => vec![at],
                _ => (0..nodes.len()).filter(|&i| i != at).collect(),
            });
        }
        Ok(RoomNodes { nodes: nodes.len(), nodes_of })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_takes_its_nodes_in_turn() {
        let rn = RoomNodes { nodes: 3, nodes_of: vec![vec![1], vec![0, 2]] };
        assert_eq!((0..3).map(|p| rn.node(0, p, 7 + p)).collect::<Vec<_>>(), [1, 1, 1]);
        assert_eq!((0..3).map(|p| rn.node(1, p, 9 + p)).collect::<Vec<_>>(), [0, 2, 0]);
        let spread = RoomNodes { nodes: 3, nodes_of: Vec::new() };
        assert_eq!((0..4).map(|k| spread.node(k / 2, k % 2, k)).collect::<Vec<_>>(), [0, 1, 2, 0]);
    }
}
