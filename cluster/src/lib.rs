//! The cluster: gossip membership (chitchat), room ownership, the node-to-node transport and the
//! routing of room traffic between nodes.
//!
//! - `membership`: chitchat over UDP; every node publishes its addresses, status and load.
//! - `state`: the current view and links, and the answers the actors ask (`ClusterHooks`):
//!   a room's owner is chosen by rendezvous hashing over the ready nodes, so every node derives
//!   the same owner from the same view.
//! - `key`: the cluster credential (a pre-shared key file, rotatable) and the keys derived from it.
//! - `link`: the Noise channel every node-to-node connection runs in.
//! - `transport`: one TCP connection per pair of nodes, versioned postcard frames, heartbeats.
//! - `router`: frames from a peer to the room actors and proxies of this node.
//!
//! Fencing lives in storage: before sequencing a room a node takes its lease with a higher epoch
//! (`RoomActor`), and every commit checks the epoch, so a stale owner's writes fail. Leases are
//! renewed here while this node hears a majority of the cluster over live links; a node cut off
//! from the others stops renewing, and its rooms stop sequencing before their leases lapse. A
//! clock task notices when the process was paused, and the node then waits out a grace period
//! before it sequences or takes a lease again.

pub mod error;
pub mod gossip_seal;
pub mod key;
pub mod link;
pub mod membership;
pub mod router;
pub mod state;
pub mod transport;

use confab_actors::ActorSystem;
use confab_actors::cluster::ClusterHooks;
use membership::{
    KEY_CLUSTER_ADDR, KEY_HTTP_ADDR, KEY_MSG_RATE, KEY_PROTOCOL, KEY_ROOMS, KEY_SESSIONS, KEY_STATUS, Status,
};
use state::ClusterState;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use tracing::{info, warn};
use transport::Net;

use confab_schemas::RoomId;

/// How a node joins its cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub node_id: String,
    pub cluster_id: String,
    /// UDP address gossip binds (port 0 picks one).
    pub gossip_listen: SocketAddr,
    /// TCP address the node-to-node transport binds.
    pub cluster_listen: SocketAddr,
    /// Addresses other nodes reach this one at (default: the bound ones).
    pub gossip_advertise: Option<SocketAddr>,
    pub cluster_advertise: Option<SocketAddr>,
    /// This node's public HTTP address, published for clients and operators.
    pub http_addr: String,
    /// Gossip seeds, `host:port` (DNS names allowed).
    pub seeds: Vec<String>,
    pub lease_ttl: Duration,
    /// The cluster credential every node holds.
    pub key: key::ClusterKey,
    /// The node-to-node protocol versions this node speaks, newest first (normally
    /// `SPOKEN_NODE_PROTOCOL_VERSIONS`; only the previous one to act as a node of that version).
    pub protocol_versions: Vec<u32>,
}

/// A running cluster membership.
pub struct Cluster {
    pub state: Arc<ClusterState>,
    gossip: chitchat::ChitchatHandle,
    tasks: Vec<JoinHandle<()>>,
    pub gossip_addr: SocketAddr,
    pub cluster_addr: SocketAddr,
}

impl Cluster {
    /// Binds the transport, starts gossip and plugs the cluster into `system`. The node publishes
    /// `joining` until it has heard from the cluster (or found itself alone), then `ready`.
    pub async fn start(config: ClusterConfig, system: Arc<ActorSystem>) -> error::Result<Cluster> {
        let listener = TcpListener::bind(config.cluster_listen).await?;
        let cluster_addr = match config.cluster_advertise {
            Some(a) => a,
            None => reachable(listener.local_addr()?).await,
        };
        let gossip_listen = match config.gossip_listen.port() {
            // chitchat binds itself: find a free port first.
            0 => UdpSocket::bind(config.gossip_listen).await?.local_addr()?,
            _ => config.gossip_listen,
        };
        let gossip_addr = match config.gossip_advertise {
            Some(a) => a,
            None => reachable(gossip_listen).await,
        };
        let state = Arc::new(ClusterState::new(config.node_id.clone(), config.http_addr.clone(), config.lease_ttl));
        system.set_cluster(state.clone() as Arc<dyn ClusterHooks>);
        let mut initial = vec![
            (KEY_CLUSTER_ADDR.into(), cluster_addr.to_string()),
            (KEY_HTTP_ADDR.into(), config.http_addr.clone()),
            (KEY_STATUS.into(), Status::Joining.as_str().into()),
        ];
        // Version 5 did not publish its versions; a node acting as one does not either.
        if config.protocol_versions != [5] {
            initial.push((KEY_PROTOCOL.into(), membership::protocol_value(&config.protocol_versions)));
        }
        let gossip = membership::start(membership::GossipConfig {
            node_id: config.node_id.clone(),
            cluster_id: config.cluster_id.clone(),
            listen: gossip_listen,
            advertise: gossip_addr,
            seeds: config.seeds.clone(),
            initial,
            gossip_keys: config.key.gossip_keys(),
        })
        .await?;
        let net = Net::new(
            state.clone(),
            system.clone(),
            config.cluster_id.clone(),
            config.key.link_psks(),
            config.protocol_versions.clone(),
            config.cluster_listen,
        );
        let mut tasks = vec![tokio::spawn(transport::accept_loop(listener, net.clone()))];
        tasks.push(tokio::spawn(renew_loop(state.clone(), system.clone())));
        tasks.push(tokio::spawn(clock_loop(state.clone(), system.clone())));
        let cluster = Cluster { state, gossip, tasks, gossip_addr, cluster_addr };
        let watch = tokio::spawn(watch_loop(
            cluster.state.clone(),
            system.clone(),
            net,
            cluster.gossip.chitchat(),
            !config.seeds.is_empty(),
        ));
        let mut cluster = cluster;
        cluster.tasks.push(watch);
        info!(
            gossip = %gossip_addr,
            transport = %cluster_addr,
            seeds = ?config.seeds,
            protocols = ?config.protocol_versions,
            "cluster membership started"
        );
        Ok(cluster)
    }

    /// Stops owning rooms: publishes `draining`, waits for the others to see it, hands every
    /// room this node sequences to its new owner, and returns once none is left (or `within`).
    pub async fn drain(&self, system: &ActorSystem, within: Duration) -> bool {
        self.state.draining.store(true, std::sync::atomic::Ordering::Relaxed);
        membership::publish(&self.gossip, KEY_STATUS, Status::Draining.as_str().into()).await;
        // Gossip reaches every node within a few rounds; handing off earlier only makes the
        // others bounce requests back until they see it.
        tokio::time::sleep(membership::GOSSIP_INTERVAL * 5).await;
        system.view_changed();
        let deadline = Instant::now() + within;
        loop {
            let left = system.owned_rooms().await;
            if left == 0 {
                return true;
            }
            if Instant::now() > deadline {
                warn!(rooms = left, "drain: rooms still here at the deadline");
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Leaves gossip and stops the transport.
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = self.gossip.shutdown().await;
    }
}

/// Follows gossip: installs new views, keeps a connection to every member whose id is larger
/// than ours (the smaller id dials), publishes this node's load, and turns `ready` once it has
/// heard from the cluster.
async fn watch_loop(
    state: Arc<ClusterState>,
    system: Arc<ActorSystem>,
    net: Net,
    chitchat: Arc<tokio::sync::Mutex<chitchat::Chitchat>>,
    has_seeds: bool,
) {
    let started = Instant::now();
    let mut ready = false;
    let mut dialers: HashMap<String, JoinHandle<()>> = HashMap::new();
    let mut every = tokio::time::interval(Duration::from_millis(50));
    let mut load_at = Instant::now();
    loop {
        every.tick().await;
        let view = {
            let cc = chitchat.lock().await;
            membership::view_of(&cc)
        };
        let others = view.live.len() > 1;
        if state.set_view(view) {
            system.view_changed();
        }
        let view = state.view();
        for (id, member) in &view.live {
            if *id > state.node_id && member.cluster_addr.is_some() {
                let running = dialers.get(id).is_some_and(|h| !h.is_finished());
                if !running {
                    dialers.insert(id.clone(), tokio::spawn(transport::dial_loop(net.clone(), id.clone())));
                }
            }
        }
        dialers.retain(|_, h| !h.is_finished());
        // Ready once the seeds answered, or after a while alone (the first node of a cluster).
        if !ready && (!has_seeds || others || started.elapsed() > Duration::from_secs(3)) {
            ready = true;
            let draining = state.draining.load(std::sync::atomic::Ordering::Relaxed);
            if !draining {
                let mut cc = chitchat.lock().await;
                cc.self_node_state().set(KEY_STATUS, Status::Ready.as_str());
                info!(alone = !others, "node ready");
            }
        }
        if load_at.elapsed() > Duration::from_secs(1) {
            load_at = Instant::now();
            let rooms = system.owned_rooms().await;
            let sessions = system.session_count().await;
            let rate = system.metrics().messages_per_second.load(std::sync::atomic::Ordering::Relaxed);
            let mut cc = chitchat.lock().await;
            cc.self_node_state().set(KEY_ROOMS, rooms);
            cc.self_node_state().set(KEY_SESSIONS, sessions);
            cc.self_node_state().set(KEY_MSG_RATE, rate);
        }
    }
}

/// Ticks the state's clock; a late tick means the process was paused, and its rooms are told
/// to check their rights (they stop sequencing until the grace has passed).
async fn clock_loop(state: Arc<ClusterState>, system: Arc<ActorSystem>) {
    let mut every = tokio::time::interval(Duration::from_millis(50));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Some(gap) = state.tick() {
            warn!(paused_ms = gap.as_millis() as u64, "this node was paused; it waits before sequencing again");
            system.view_changed();
        }
    }
}

/// Renews this node's leases every quarter of their ttl while it hears a majority of the
/// cluster and is not waking from a pause.
async fn renew_loop(state: Arc<ClusterState>, system: Arc<ActorSystem>) {
    let ttl = state.lease_ttl;
    loop {
        let at = Instant::now();
        if state.quorum_now() && !state.waking() {
            match system.store().renew_leases(&state.node_id, ttl.as_millis() as i64).await {
                Ok(_) => state.renewed(at),
                Err(e) => warn!(err = %e, "lease renewal failed"),
            }
        }
        // Until the first renewal (gossip has not shown a majority yet) try again soon.
        let fresh = state.renewed_at().is_some_and(|r| r >= at);
        tokio::time::sleep(if fresh { ttl / 4 } else { Duration::from_millis(50) }).await;
    }
}

/// The address other nodes reach a bound address at: itself, or for a wildcard bind this host's
/// first non-loopback address (its hostname's, as in a container), else loopback.
pub async fn reachable(bound: SocketAddr) -> SocketAddr {
    if !bound.ip().is_unspecified() {
        return bound;
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_owned()))
        .unwrap_or_default();
    let found = tokio::net::lookup_host((host.as_str(), bound.port()))
        .await
        .ok()
        .and_then(|mut addrs| addrs.find(|a| a.is_ipv4() && !a.ip().is_loopback()));
    found.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], bound.port())))
}

/// Resolves `host:port` (a DNS name or an address).
pub async fn resolve(addr: &str) -> error::Result<SocketAddr> {
    tokio::net::lookup_host(addr)
        .await?
        .next()
        .ok_or_else(|| error::Error::Handshake(format!("{addr} does not resolve")))
}

/// Rendezvous (highest random weight) hashing: the node with the highest hash of (room, node id)
/// owns the room. Adding or removing a node moves only that node's rooms. The hash is FNV-1a, so
/// every build and platform computes the same owner.
pub fn room_owner<'a>(room: RoomId, nodes: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    nodes.into_iter().max_by_key(|node| (weight(room, node), *node))
}

fn weight(room: RoomId, node: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in room.0.to_le_bytes().iter().chain(node.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // FNV's low bits mix poorly for short keys: finish with a multiply-xorshift.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i}")).collect()
    }

    #[test]
    fn single_node_owns_everything() {
        let one = nodes(1);
        assert!((0..100).all(|r| room_owner(RoomId(r), one.iter().map(String::as_str)) == Some("node-0")));
    }

    #[test]
    fn rendezvous_moves_only_the_rooms_of_a_removed_node() {
        let three = nodes(3);
        let two: Vec<&str> = three.iter().map(String::as_str).filter(|m| *m != "node-2").collect();
        let mut per_node = [0usize; 3];
        for r in 0..3000 {
            let before = room_owner(RoomId(r), three.iter().map(String::as_str)).unwrap();
            let after = room_owner(RoomId(r), two.iter().copied()).unwrap();
            per_node[before.trim_start_matches("node-").parse::<usize>().unwrap()] += 1;
            if before != "node-2" {
                assert_eq!(before, after, "room {r} moved although its owner stayed");
            }
        }
        assert!(per_node.iter().all(|&n| n > 800), "balanced: {per_node:?}");
    }
}
