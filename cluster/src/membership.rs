//! Membership by chitchat gossip over UDP.
//!
//! Each node publishes its node-to-node address, public HTTP address, status (`joining`,
//! `ready`, `draining`), load (rooms it sequences, sessions, messages committed per second) and the node-to-node protocol
//! versions it speaks (`protocol`, from version 6 on; a member without it speaks only 5).
//! Keys stay readable across one protocol version: a version may add keys, never changes what
//! an existing key means, and drops a key only when no version that reads it can still be
//! mixed in (unknown keys are ignored, so older nodes read newer ones' state). A restarted node gets a new
//! generation (its start time); members are keyed by node id, keeping the highest generation.
//! Failure detection is tuned for loopback and LAN clusters: gossip every 100 ms with phi 8
//! declares a silent node dead after about two seconds; dead nodes are forgotten after two
//! minutes. Gossip datagrams are sealed with the cluster's gossip key (`gossip_seal`).

use crate::gossip_seal::SealedTransport;
use chitchat::transport::UdpTransport;
use chitchat::{ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, NodeState, ProtocolVersion};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;
use tracing::warn;

pub const KEY_CLUSTER_ADDR: &str = "cluster_addr";
pub const KEY_HTTP_ADDR: &str = "http_addr";
pub const KEY_STATUS: &str = "status";
pub const KEY_ROOMS: &str = "rooms";
pub const KEY_SESSIONS: &str = "sessions";
/// Messages this node committed during the last whole second (the admin panel's per-node figures).
pub const KEY_MSG_RATE: &str = "msgs_per_s";
/// The node-to-node protocol versions a node speaks, comma-separated (`6,5`).
pub const KEY_PROTOCOL: &str = "protocol";
/// What a member that does not publish `protocol` speaks: it was built before the key existed.
const PROTOCOL_WITHOUT_KEY: [u32; 1] = [5];

/// Gossip period: with phi 8, a silent node is declared dead after about 18 periods.
pub const GOSSIP_INTERVAL: Duration = Duration::from_millis(100);
/// How long a dead node is remembered (its status counts for quorum) before it is forgotten.
pub const DEAD_NODE_GRACE: Duration = Duration::from_secs(120);

/// A node's status as it publishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Joining,
    Ready,
    Draining,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Joining => "joining",
            Status::Ready => "ready",
            Status::Draining => "draining",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "ready" => Status::Ready,
            "draining" => Status::Draining,
            _ => Status::Joining,
        }
    }
}

/// A live member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub node_id: String,
    pub generation: u64,
    pub cluster_addr: Option<SocketAddr>,
    pub http_addr: String,
    pub status: Status,
    pub rooms: u64,
    pub sessions: u64,
    pub messages_per_second: u64,
    /// The node-to-node protocol versions it speaks.
    pub protocols: Vec<u32>,
}

/// The cluster as gossip shows it at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// Live members by node id (this node included).
    pub live: BTreeMap<String, Member>,
    /// Nodes declared dead and not yet forgotten, that were not draining when last heard of.
    pub dead: BTreeSet<String>,
}

impl View {
    /// Node ids that own rooms: live and ready.
    pub fn ready(&self) -> Vec<&str> {
        self.live.values().filter(|m| m.status == Status::Ready).map(|m| m.node_id.as_str()).collect()
    }

    /// A majority of the nodes this node knows of (live plus dead, not counting drained ones)
    /// is live. A node cut off from the rest loses it and stops sequencing.
    pub fn has_quorum(&self) -> bool {
        let live = self.live.len();
        live * 2 > live + self.dead.len()
    }
}

/// Settings of the gossip.
pub struct GossipConfig {
    pub node_id: String,
    pub cluster_id: String,
    pub listen: SocketAddr,
    pub advertise: SocketAddr,
    pub seeds: Vec<String>,
    pub initial: Vec<(String, String)>,
    /// Gossip keys: the first seals, every one opens (see `gossip_seal`). Empty: gossip is not
    /// authenticated at all (tests only).
    pub gossip_keys: Vec<[u8; 32]>,
}

/// Starts gossip.
pub async fn start(c: GossipConfig) -> crate::error::Result<ChitchatHandle> {
    let generation =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(1);
    let config = ChitchatConfig {
        chitchat_id: ChitchatId::new(c.node_id, generation, c.advertise),
        cluster_id: c.cluster_id,
        gossip_interval: GOSSIP_INTERVAL,
        listen_addr: c.listen,
        seed_nodes: c.seeds,
        failure_detector_config: FailureDetectorConfig {
            phi_threshold: 8.0,
            sampling_window_size: 1000,
            max_interval: Duration::from_secs(5),
            initial_interval: GOSSIP_INTERVAL,
            dead_node_grace_period: DEAD_NODE_GRACE,
        },
        marked_for_deletion_grace_period: Duration::from_secs(3600),
        catchup_callback: None,
        extra_liveness_predicate: None,
        protocol_version: ProtocolVersion::V0,
    };
    let handle = if c.gossip_keys.is_empty() {
        warn!("no gossip key: gossip is not authenticated");
        chitchat::spawn_chitchat(config, c.initial, &UdpTransport).await
    } else {
        chitchat::spawn_chitchat(config, c.initial, &SealedTransport::new(&c.gossip_keys)?).await
    };
    handle.map_err(|e| crate::error::Error::Gossip(e.to_string()))
}

/// Reads the current view out of chitchat.
pub fn view_of(cc: &chitchat::Chitchat) -> View {
    let mut view = View::default();
    for id in cc.live_nodes() {
        if let Some(state) = cc.node_state(id) {
            let m = member(id, state);
            let keep = view.live.get(&m.node_id).is_none_or(|old| old.generation < m.generation);
            if keep {
                view.live.insert(m.node_id.clone(), m);
            }
        }
    }
    for id in cc.dead_nodes() {
        if view.live.contains_key(&*id.node_id) {
            continue; // an older generation of a node that came back
        }
        let drained = cc.node_state(id).and_then(|s| s.get(KEY_STATUS)).is_some_and(|s| s == Status::Draining.as_str());
        if !drained {
            view.dead.insert(id.node_id.to_string());
        }
    }
    view
}

fn member(id: &ChitchatId, state: &NodeState) -> Member {
    Member {
        node_id: id.node_id.to_string(),
        generation: id.generation_id,
        cluster_addr: state.get(KEY_CLUSTER_ADDR).and_then(|a| a.parse().ok()),
        http_addr: state.get(KEY_HTTP_ADDR).unwrap_or_default().to_owned(),
        status: Status::parse(state.get(KEY_STATUS).unwrap_or_default()),
        rooms: state.get(KEY_ROOMS).and_then(|v| v.parse().ok()).unwrap_or(0),
        sessions: state.get(KEY_SESSIONS).and_then(|v| v.parse().ok()).unwrap_or(0),
        messages_per_second: state.get(KEY_MSG_RATE).and_then(|v| v.parse().ok()).unwrap_or(0),
        protocols: protocols(state.get(KEY_PROTOCOL)),
    }
}

/// The versions of a `protocol` value (unparsable entries are skipped).
fn protocols(value: Option<&str>) -> Vec<u32> {
    match value {
        Some(v) => v.split(',').filter_map(|p| p.trim().parse().ok()).collect(),
        None => PROTOCOL_WITHOUT_KEY.to_vec(),
    }
}

/// The `protocol` value of a node that speaks `versions`.
pub fn protocol_value(versions: &[u32]) -> String {
    versions.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// The newest version both `ours` and `theirs` speak.
pub fn common_version(ours: &[u32], theirs: &[u32]) -> Option<u32> {
    ours.iter().filter(|v| theirs.contains(v)).max().copied()
}

/// Publishes one of this node's keys.
pub async fn publish(handle: &ChitchatHandle, key: &str, value: String) {
    handle.with_chitchat(|cc| cc.self_node_state().set(key, value.clone())).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_without_the_protocol_key_speaks_5_and_links_pick_the_newest_common_version() {
        assert_eq!(protocols(None), [5]);
        assert_eq!(protocols(Some(&protocol_value(&[6, 5]))), [6, 5]);
        assert_eq!(protocols(Some("7, x,6")), [7, 6]);
        assert_eq!(common_version(&[6, 5], &protocols(None)), Some(5));
        assert_eq!(common_version(&[6, 5], &[7, 6]), Some(6));
        assert_eq!(common_version(&[6, 5], &[6, 5]), Some(6));
        assert_eq!(common_version(&[5], &[7, 6]), None);
    }
}
