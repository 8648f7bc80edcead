//! What this node knows of the cluster right now (the gossip view, the links to peers, lease
//! rights, routing counters), and the answers the actors ask of it (`ClusterHooks`).
//!
//! Lease rights need more than gossip: this node must hear, over live links, from a majority of
//! the nodes it knows of (gossip marks peers dead one at a time, so a cut-off node would
//! otherwise still count a majority), it must not have just woken from a pause (its view is
//! stale: `WAKE_GRACE`), and its leases must have been renewed recently. A lease is taken from
//! another node at once only when that node has been dead in the view for `DEAD_STABLE`, no link
//! to it is alive, this node is not in its wake grace, and it is not just back from a long
//! partition (`healing`); otherwise the lease must lapse first.

use crate::membership::{Status, View};
use crate::room_owner;
use confab_actors::cluster::{ClusterHooks, MemberInfo, NodeLink, Placement};
use confab_schemas::RoomId;
use confab_schemas::node::NodeFrame;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// A gap this long between two ticks of the clock task is a pause (SIGSTOP, a frozen VM).
pub const PAUSE: Duration = Duration::from_millis(1000);
/// After a pause, this node neither sequences nor takes leases for this long.
pub const WAKE_GRACE: Duration = Duration::from_millis(2000);
/// A peer must be dead in the view this long before its leases are taken at once.
pub const DEAD_STABLE: Duration = Duration::from_millis(300);

fn now_ms() -> u64 {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// Counters of one peer's connection.
#[derive(Default)]
pub struct PeerCounters {
    pub frames_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub connects: AtomicU64,
    /// The protocol version the current (or last) link speaks.
    pub protocol: AtomicU32,
    /// When the current link last heard from the peer (`now_ms`; 0: never).
    heard_ms: AtomicU64,
}

impl PeerCounters {
    /// Something arrived from the peer.
    pub fn heard(&self) {
        self.heard_ms.store(now_ms(), Relaxed);
    }

    fn heard_within(&self, bound: Duration) -> bool {
        let at = self.heard_ms.load(Relaxed);
        at != 0 && now_ms().saturating_sub(at) <= bound.as_millis() as u64
    }
}

/// The clock task's last tick and the last pause it saw.
struct Clock {
    /// Whether this node had a majority at the last tick, and whether it ever had one.
    quorum: bool,
    had_quorum: bool,
    /// When it last lost its majority, and whether its view counted a node dead since then.
    lost_at: Option<Instant>,
    dead_during_loss: bool,
    /// When it last regained a majority after losing it for a lease ttl or more while its view
    /// counted a node dead (a long partition healed).
    healed_at: Option<Instant>,
    last_tick: Instant,
    woken_at: Option<Instant>,
}

/// Each peer's counters and its current link.
pub type Peers = HashMap<String, (Arc<PeerCounters>, Option<NodeLink>)>;

pub struct ClusterState {
    pub node_id: String,
    pub http_addr: String,
    view: RwLock<Arc<View>>,
    links: RwLock<HashMap<String, NodeLink>>,
    pub peers: Mutex<Peers>,
    /// This node is draining: it owns no room any more.
    pub draining: AtomicBool,
    /// When this node's leases were last renewed (`None`: never).
    renewed: Mutex<Option<Instant>>,
    pub lease_ttl: Duration,
    pub nodes_declared_dead: AtomicU64,
    /// Node-to-node connections refused (no key, wrong key, another cluster, too many at once).
    pub peers_refused: AtomicU64,
    /// Since when each peer in the view's dead set has been there.
    dead_since: Mutex<HashMap<String, Instant>>,
    clock: Mutex<Clock>,
    pub pauses: AtomicU64,
}

impl ClusterState {
    pub fn new(node_id: String, http_addr: String, lease_ttl: Duration) -> ClusterState {
        ClusterState {
            node_id,
            http_addr,
            view: RwLock::default(),
            links: RwLock::default(),
            peers: Mutex::default(),
            draining: AtomicBool::new(false),
            renewed: Mutex::new(None),
            lease_ttl,
            nodes_declared_dead: AtomicU64::new(0),
            peers_refused: AtomicU64::new(0),
            dead_since: Mutex::default(),
            clock: Mutex::new(Clock {
                last_tick: Instant::now(),
                woken_at: None,
                quorum: false,
                had_quorum: false,
                lost_at: None,
                dead_during_loss: false,
                healed_at: None,
            }),
            pauses: AtomicU64::new(0),
        }
    }

    /// Called by the clock task every few tens of milliseconds: returns the length of a pause
    /// if this tick came after one. A pause voids the lease renewals made before it.
    pub fn tick(&self) -> Option<Duration> {
        self.quorum_now();
        let mut c = self.clock.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let gap = now - c.last_tick;
        c.last_tick = now;
        if gap < PAUSE {
            return None;
        }
        c.woken_at = Some(now);
        drop(c);
        self.pauses.fetch_add(1, Relaxed);
        *self.renewed.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Some(gap)
    }

    /// `has_quorum`, noting when a majority comes back after a loss. Every decision that rests
    /// on the majority asks through here, so a room started the instant a link returns (before
    /// the clock's next tick) already sees the heal.
    pub fn quorum_now(&self) -> bool {
        // Under the clock's lock, so two callers cannot record the transitions out of order.
        let mut c = self.clock.lock().unwrap_or_else(|p| p.into_inner());
        let quorum = self.has_quorum();
        let now = Instant::now();
        if !quorum && c.quorum {
            c.lost_at = Some(now);
            c.dead_during_loss = false;
        }
        // The view is read only while the majority is lost (this runs on every send's check).
        c.dead_during_loss |= !quorum && !self.view().dead.is_empty();
        // Healed from a long partition: a majority again after a lease ttl or more without one,
        // during which the view counted a node dead (gossip may have revived it since, before
        // its link is back, and a peer just revived can flap dead again until its failure
        // detector has samples). Not a node starting up (it never had a majority, or lost one
        // only as members appeared in its view), nor a majority lost for a moment when a peer
        // dies (its rooms fail over at once as before).
        let long = c.lost_at.is_some_and(|l| now - l >= self.lease_ttl);
        if quorum && !c.quorum && c.had_quorum && c.dead_during_loss && long {
            c.healed_at = Some(now);
        }
        c.quorum = quorum;
        c.had_quorum |= quorum;
        quorum
    }

    /// This node regained a majority within a lease ttl, after losing it: its view may still
    /// count as dead a node it has not reconnected to yet (or one that flaps dead just after
    /// coming back), and hold others' rooms as its own. It takes no unexpired lease from anyone
    /// until then (a holder that really died lets its lease lapse within the ttl anyway).
    pub fn healing(&self) -> bool {
        self.quorum_now();
        let c = self.clock.lock().unwrap_or_else(|p| p.into_inner());
        c.healed_at.is_some_and(|h| h.elapsed() < self.lease_ttl)
    }

    /// This node was paused (or its clock task starved) recently: its view may be stale.
    pub fn waking(&self) -> bool {
        let c = self.clock.lock().unwrap_or_else(|p| p.into_inner());
        c.last_tick.elapsed() >= PAUSE || c.woken_at.is_some_and(|w| w.elapsed() < WAKE_GRACE)
    }

    /// This node hears, over live links, from a majority of the nodes it knows of (itself
    /// included; nodes drained away are not counted), and gossip agrees.
    pub fn has_quorum(&self) -> bool {
        let view = self.view();
        if !view.has_quorum() {
            return false;
        }
        let known = view.live.len() + view.dead.len();
        let linked = 1 + view.live.keys().filter(|n| **n != self.node_id && self.link(n).is_some()).count();
        linked * 2 > known
    }

    pub fn view(&self) -> Arc<View> {
        self.view.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Installs a new view; true when it differs from the old one in what ownership depends on.
    pub fn set_view(&self, view: View) -> bool {
        let mut cur = self.view.write().unwrap_or_else(|p| p.into_inner());
        let before: Vec<(String, Status)> = cur.live.values().map(|m| (m.node_id.clone(), m.status)).collect();
        let after: Vec<(String, Status)> = view.live.values().map(|m| (m.node_id.clone(), m.status)).collect();
        let newly_dead = view.dead.difference(&cur.dead).count() as u64;
        self.nodes_declared_dead.fetch_add(newly_dead, Relaxed);
        {
            let mut since = self.dead_since.lock().unwrap_or_else(|p| p.into_inner());
            since.retain(|n, _| view.dead.contains(n));
            for n in &view.dead {
                since.entry(n.clone()).or_insert_with(Instant::now);
            }
        }
        let changed = before != after || cur.dead != view.dead;
        *cur = Arc::new(view);
        changed
    }

    /// The ready nodes that own rooms, as every node computes them from the same view.
    fn owners(&self) -> Vec<String> {
        let view = self.view();
        let mut ready: Vec<String> = view.ready().into_iter().map(str::to_owned).collect();
        if self.draining.load(Relaxed) {
            ready.retain(|n| *n != self.node_id);
        }
        ready
    }

    /// The live link to `node`: connected, and heard from within the silence bound.
    pub fn link(&self, node: &str) -> Option<NodeLink> {
        let link =
            self.links.read().unwrap_or_else(|p| p.into_inner()).get(node).filter(|l| !l.is_broken()).cloned()?;
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let heard = peers.get(node).is_some_and(|(c, _)| c.heard_within(crate::transport::LINK_SILENCE));
        heard.then_some(link)
    }

    pub fn add_link(&self, link: NodeLink, protocol: u32) -> Arc<PeerCounters> {
        self.links.write().unwrap_or_else(|p| p.into_inner()).insert(link.node.to_string(), link.clone());
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let entry = peers.entry(link.node.to_string()).or_default();
        entry.0.connects.fetch_add(1, Relaxed);
        entry.0.protocol.store(protocol, Relaxed);
        entry.0.heard();
        entry.1 = Some(link);
        entry.0.clone()
    }

    /// Forgets a link if it is still the current one for its node; true if it was.
    pub fn remove_link(&self, link: &NodeLink) -> bool {
        link.break_link();
        let mut links = self.links.write().unwrap_or_else(|p| p.into_inner());
        if links.get(&*link.node).is_some_and(|l| l.same(link)) {
            links.remove(&*link.node);
            return true;
        }
        false
    }

    pub fn renewed(&self, at: Instant) {
        *self.renewed.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
    }

    pub fn renewed_at(&self) -> Option<Instant> {
        *self.renewed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn leases_fresh(&self) -> bool {
        let renewed = *self.renewed.lock().unwrap_or_else(|p| p.into_inner());
        // A margin of a third of the ttl: stop before another node may take the lease over.
        renewed.is_some_and(|at| at.elapsed() < self.lease_ttl * 2 / 3)
    }
}

impl ClusterHooks for ClusterState {
    fn placement(&self, room: RoomId) -> Placement {
        let owners = self.owners();
        let Some(owner) = room_owner(room, owners.iter().map(String::as_str)) else {
            return Placement::Unavailable("no node of the cluster is ready".into());
        };
        if owner == self.node_id {
            return Placement::Local;
        }
        match self.link(owner) {
            Some(link) => Placement::Remote(link),
            None => Placement::Unavailable(format!("the owner {owner} is not connected yet")),
        }
    }

    fn placements(&self, rooms: &[RoomId]) -> Vec<Placement> {
        let owners = self.owners();
        let mut links: HashMap<&str, Option<NodeLink>> = HashMap::new();
        rooms
            .iter()
            .map(|room| match room_owner(*room, owners.iter().map(String::as_str)) {
                None => Placement::Unavailable("no node of the cluster is ready".into()),
                Some(owner) if owner == self.node_id => Placement::Local,
                Some(owner) => match links.entry(owner).or_insert_with(|| self.link(owner)) {
                    Some(link) => Placement::Remote(link.clone()),
                    None => Placement::Unavailable(format!("the owner {owner} is not connected yet")),
                },
            })
            .collect()
    }

    fn owner_of(&self, room: RoomId) -> Option<String> {
        let owners = self.owners();
        room_owner(room, owners.iter().map(String::as_str)).map(str::to_owned)
    }

    fn is_live(&self, node: &str) -> bool {
        // Only a node known dead loses its leases at once; an unknown holder's lease lapses.
        if node == self.node_id || self.waking() || self.healing() || self.link(node).is_some() {
            return true;
        }
        let since = self.dead_since.lock().unwrap_or_else(|p| p.into_inner()).get(node).copied();
        let live = since.is_none_or(|at| at.elapsed() < DEAD_STABLE);
        if !live {
            let view = self.view();
            tracing::info!(
                node,
                dead_for_ms = since.map_or(0, |at| at.elapsed().as_millis() as u64),
                live = ?view.live.keys().collect::<Vec<_>>(),
                dead = ?view.dead,
                "a lease holder counts as not live"
            );
        }
        live
    }

    fn may_sequence(&self) -> bool {
        !self.waking() && self.quorum_now() && self.leases_fresh()
    }

    fn broadcast(&self, frame: NodeFrame) {
        for link in self.links.read().unwrap_or_else(|p| p.into_inner()).values() {
            let _ = link.send(frame.clone());
        }
    }

    fn members(&self) -> Vec<MemberInfo> {
        let linked: HashMap<String, u32> = {
            let links = self.links.read().unwrap_or_else(|p| p.into_inner());
            let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
            links
                .iter()
                .filter(|(_, l)| !l.is_broken())
                .filter_map(|(node, _)| Some((node.clone(), peers.get(node)?.0.protocol.load(Relaxed))))
                .collect()
        };
        self.view()
            .live
            .values()
            .map(|m| MemberInfo {
                node_id: m.node_id.clone(),
                http_addr: m.http_addr.clone(),
                status: m.status.as_str().to_owned(),
                rooms: m.rooms,
                sessions: m.sessions,
                messages_per_second: m.messages_per_second,
                this_node: m.node_id == self.node_id,
                protocols: m.protocols.clone(),
                link_protocol: linked.get(&m.node_id).copied(),
            })
            .collect()
    }

    fn metrics_text(&self) -> String {
        let mut out = String::new();
        let view = self.view();
        let _ = writeln!(out, "# HELP confab_cluster_live_nodes Live members of the cluster.");
        let _ = writeln!(out, "# TYPE confab_cluster_live_nodes gauge\nconfab_cluster_live_nodes {}", view.live.len());
        let _ = writeln!(out, "# HELP confab_cluster_dead_nodes Members declared dead and not yet forgotten.");
        let _ = writeln!(out, "# TYPE confab_cluster_dead_nodes gauge\nconfab_cluster_dead_nodes {}", view.dead.len());
        let dead = self.nodes_declared_dead.load(Relaxed);
        let _ = writeln!(out, "# HELP confab_cluster_nodes_declared_dead_total Members gossip declared dead so far.");
        let _ = writeln!(
            out,
            "# TYPE confab_cluster_nodes_declared_dead_total counter\nconfab_cluster_nodes_declared_dead_total {dead}"
        );
        let _ = writeln!(out, "# HELP confab_cluster_quorum Whether this node sees a majority of the cluster.");
        let _ =
            writeln!(out, "# TYPE confab_cluster_quorum gauge\nconfab_cluster_quorum {}", u8::from(self.has_quorum()));
        let counters = [
            (
                "confab_cluster_peers_refused_total",
                "Node-to-node connections refused before any frame was read (no or wrong cluster key, another cluster or version, too many handshakes).",
                self.peers_refused.load(Relaxed),
            ),
            (
                "confab_gossip_datagrams_refused_total",
                "Gossip datagrams dropped because they did not open under the cluster key.",
                crate::gossip_seal::refused_total(),
            ),
            (
                "confab_cluster_pauses_total",
                "Pauses of this process longer than a second that it noticed on waking.",
                self.pauses.load(Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        }
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let mut series = |name: &str, help: &str, value: &dyn Fn(&PeerCounters, Option<&NodeLink>) -> u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (peer, (c, link)) in peers.iter() {
                let _ = writeln!(out, "{name}{{peer=\"{peer}\"}} {}", value(c, link.as_ref()));
            }
        };
        series("confab_peer_frames_out_total", "Frames queued to a peer.", &|_, l| l.map_or(0, NodeLink::frames_sent));
        series("confab_peer_frames_in_total", "Frames received from a peer.", &|c, _| c.frames_in.load(Relaxed));
        series("confab_peer_sent_bytes_total", "Bytes written to a peer.", &|c, _| c.bytes_out.load(Relaxed));
        series("confab_peer_received_bytes_total", "Bytes read from a peer.", &|c, _| c.bytes_in.load(Relaxed));
        series("confab_peer_connects_total", "Connections made with a peer.", &|c, _| c.connects.load(Relaxed));
        out
    }
}
