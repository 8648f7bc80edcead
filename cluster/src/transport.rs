//! The node-to-node transport: one TCP connection per pair of nodes (the node with the smaller id
//! dials, the other accepts), secured by a Noise handshake with the cluster key before any frame
//! is read (`link`), then `Hello`/`HelloAck` naming the nodes, then postcard frames both ways.
//! Each link speaks one protocol version: the dialer picks the newest one both nodes speak (from
//! the peer's gossip) and names it in the handshake; the acceptor speaks any of its own.
//!
//! Liveness: a writer sends a `Heartbeat` whenever its link has been idle for `HEARTBEAT_EVERY`;
//! a reader that hears nothing for `LINK_SILENCE` declares the link dead and closes it, and the
//! dialer redials (backoff capped at `MAX_BACKOFF`) while the peer is a member. Each connection
//! has a writer task draining the link's bounded queue (every frame queued is sealed and written
//! in one flush) and a reader that hands frames to the router.
//!
//! Refusals (no key, wrong key, another cluster or protocol version, too many handshakes at once)
//! are logged and counted before any frame of the stranger is decoded.

use crate::error::{Error, Result};
use crate::link::{self, Opener, Sealer};
use crate::router::Router;
use crate::state::{ClusterState, PeerCounters};
use confab_actors::ActorSystem;
use confab_actors::cluster::NodeLink;
use confab_schemas::node::{NodeFrame, decode_node_frame};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::io::{BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

/// Frames a link queues before it counts as broken.
const LINK_CAPACITY: usize = 65_536;
/// The whole handshake (Noise and hello) must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// Handshakes in progress at once; more connections are refused at once (a flood of strangers
/// cannot hold the port).
const MAX_HANDSHAKES: usize = 64;
/// An idle link sends a heartbeat this often.
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(200);
/// A link silent for this long is dead.
pub const LINK_SILENCE: Duration = Duration::from_millis(1000);
/// Longest pause between two dials of a member.
const MAX_BACKOFF: Duration = Duration::from_millis(400);

/// What every connection needs.
#[derive(Clone)]
pub struct Net {
    pub state: Arc<ClusterState>,
    pub system: Arc<ActorSystem>,
    pub cluster_id: String,
    /// Link keys (Noise psk), the one in use first.
    pub psks: Arc<Vec<[u8; 32]>>,
    /// The node-to-node protocol versions this node speaks, newest first.
    pub versions: Arc<Vec<u32>>,
    /// The address outgoing links are bound to (the listen address, unless it is a wildcard).
    pub bind_ip: Option<IpAddr>,
    pub handshakes: Arc<Semaphore>,
}

impl Net {
    pub fn new(
        state: Arc<ClusterState>,
        system: Arc<ActorSystem>,
        cluster_id: String,
        psks: Vec<[u8; 32]>,
        versions: Vec<u32>,
        listen: SocketAddr,
    ) -> Net {
        let bind_ip = Some(listen.ip()).filter(|ip| !ip.is_unspecified());
        Net {
            state,
            system,
            cluster_id,
            psks: Arc::new(psks),
            versions: Arc::new(versions),
            bind_ip,
            handshakes: Arc::new(Semaphore::new(MAX_HANDSHAKES)),
        }
    }
}

type Reader = BufReader<OwnedReadHalf>;
type Writer = BufWriter<OwnedWriteHalf>;

/// An established, authenticated connection.
struct Conn {
    /// The protocol version it speaks.
    version: u32,
    r: Reader,
    w: Writer,
    sealer: Sealer,
    opener: Opener,
}

fn split(stream: TcpStream) -> (Reader, Writer) {
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    (BufReader::with_capacity(64 * 1024, r), BufWriter::with_capacity(64 * 1024, w))
}

fn refused(net: &Net, from: SocketAddr, why: &str) {
    net.state.peers_refused.fetch_add(1, Relaxed);
    warn!(%from, why, "refused a node-to-node connection");
}

/// Accepts connections from peers.
pub async fn accept_loop(listener: TcpListener, net: Net) {
    loop {
        let Ok((stream, from)) = listener.accept().await else { continue };
        let Ok(permit) = net.handshakes.clone().try_acquire_owned() else {
            refused(&net, from, "too many handshakes in progress");
            continue;
        };
        let net = net.clone();
        tokio::spawn(async move {
            let accepted = tokio::time::timeout(HANDSHAKE_TIMEOUT, accept(&net, stream)).await;
            drop(permit);
            match accepted {
                Ok(Ok((peer, conn))) => run_connection(net, peer, conn).await,
                Ok(Err(e)) => refused(&net, from, &e.to_string()),
                Err(_) => refused(&net, from, "handshake timed out"),
            }
        });
    }
}

async fn accept(net: &Net, stream: TcpStream) -> Result<(String, Conn)> {
    let (mut r, mut w) = split(stream);
    let (cipher, spoken) = link::respond(&mut r, &mut w, &net.cluster_id, &net.psks, &net.versions).await?;
    let (mut sealer, mut opener) = cipher.split();
    let peer = match opener.next(&mut r).await? {
        NodeFrame::Hello { version, cluster_id, node_id }
            if version == spoken && cluster_id == net.cluster_id && node_id != net.state.node_id =>
        {
            node_id
        }
        other => return Err(Error::Handshake(format!("expected a hello, got {other:?}"))),
    };
    sealer.send(&mut w, &NodeFrame::HelloAck { node_id: net.state.node_id.clone() }).await?;
    Ok((peer, Conn { version: spoken, r, w, sealer, opener }))
}

/// Keeps a connection to `peer` while it is a member: dials, handshakes, runs, and redials with
/// backoff after a failure.
pub async fn dial_loop(net: Net, peer: String) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let view = net.state.view();
        let Some((addr, theirs)) = view.live.get(&peer).and_then(|m| Some((m.cluster_addr?, m.protocols.clone())))
        else {
            debug!(%peer, "peer left the view; no more dialing");
            return;
        };
        let Some(version) = crate::membership::common_version(&net.versions, &theirs) else {
            warn!(%peer, theirs = ?theirs, ours = ?net.versions, "no node-to-node protocol version in common; not dialing");
            tokio::time::sleep(MAX_BACKOFF * 10).await;
            continue;
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, dial(&net, &peer, addr, version)).await {
            Ok(Ok(conn)) => {
                backoff = Duration::from_millis(50);
                run_connection(net.clone(), peer.clone(), conn).await;
            }
            failed => {
                let err = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".into(),
                };
                debug!(%peer, %addr, %err, "dial failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn dial(net: &Net, peer: &str, addr: SocketAddr, version: u32) -> Result<Conn> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(ip) = net.bind_ip.filter(|ip| ip.is_ipv4() == addr.is_ipv4()) {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let (mut r, mut w) = split(socket.connect(addr).await?);
    let psk = net.psks.first().ok_or_else(|| Error::Handshake("no cluster key".into()))?;
    let (mut sealer, mut opener) = link::initiate(&mut r, &mut w, &net.cluster_id, psk, version).await?.split();
    let hello = NodeFrame::Hello { version, cluster_id: net.cluster_id.clone(), node_id: net.state.node_id.clone() };
    sealer.send(&mut w, &hello).await?;
    match opener.next(&mut r).await? {
        NodeFrame::HelloAck { node_id } if node_id == peer => Ok(Conn { version, r, w, sealer, opener }),
        other => Err(Error::Handshake(format!("unexpected answer {other:?}"))),
    }
}

/// Runs one established connection until either side closes it, it falls silent or its queue
/// overflows.
async fn run_connection(net: Net, peer: String, conn: Conn) {
    let Conn { version, mut r, w, sealer, mut opener } = conn;
    let (link, rx) = NodeLink::channel(peer.clone().into(), LINK_CAPACITY);
    let counters = net.state.add_link(link.clone(), version);
    info!(%peer, protocol = version, "connected to peer");
    net.system.view_changed();
    let writer = tokio::spawn(write_loop(w, sealer, rx, link.clone(), counters.clone()));
    let mut router = Router::new(net.system.clone(), link.clone());
    // Beside the read loop, not a branch of its `select!`: a branch that completes drops the
    // read in progress, and a read dropped halfway loses its bytes and breaks the stream.
    let upgrade = tokio::spawn(break_for_newer_version(net.clone(), peer.clone(), version, link.clone()));
    loop {
        tokio::select! {
            next = tokio::time::timeout(LINK_SILENCE, opener.next_bytes(&mut r)) => match next {
                Ok(Ok(bytes)) => {
                    counters.heard();
                    counters.frames_in.fetch_add(1, Relaxed);
                    counters.bytes_in.fetch_add(bytes.len() as u64 + 4, Relaxed);
                    match decode_node_frame(&bytes) {
                        Ok(frame) => router.dispatch(frame).await,
                        Err(e) => {
                            warn!(%peer, err = %e, "undecodable frame from peer; closing the connection");
                            break;
                        }
                    }
                }
                Ok(Err(e)) => {
                    debug!(%peer, err = %e, "peer connection failed");
                    break;
                }
                Err(_) => {
                    warn!(%peer, silent_ms = LINK_SILENCE.as_millis() as u64, "peer link fell silent; closing it");
                    break;
                }
            },
            _ = wait_broken(&link) => break,
        }
    }
    upgrade.abort();
    writer.abort();
    if net.state.remove_link(&link) {
        info!(%peer, "peer connection closed");
    }
    net.system.peer_down(peer.into());
    net.system.view_changed();
}

/// A newer version than `version` both nodes speak, once gossip shows one (the peer, or this
/// node's view of it, was upgraded after the link was made): the link is then made again in it.
fn newer_version(net: &Net, peer: &str, version: u32) -> Option<u32> {
    let view = net.state.view();
    let common = view.live.get(peer).and_then(|m| crate::membership::common_version(&net.versions, &m.protocols));
    common.filter(|c| *c > version)
}

/// Breaks `link` (so it is made again) once gossip shows a newer version both nodes speak.
async fn break_for_newer_version(net: Net, peer: String, version: u32, link: NodeLink) {
    let mut check = tokio::time::interval(Duration::from_millis(500));
    loop {
        check.tick().await;
        if let Some(newer) = newer_version(&net, &peer, version) {
            info!(%peer, from = version, to = newer, "both nodes speak a newer protocol now; reconnecting in it");
            link.break_link();
            return;
        }
    }
}

async fn wait_broken(link: &NodeLink) {
    while !link.is_broken() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn write_loop(
    mut w: Writer,
    mut sealer: Sealer,
    mut rx: tokio::sync::mpsc::Receiver<NodeFrame>,
    link: NodeLink,
    counters: Arc<PeerCounters>,
) {
    let mut batch = Vec::with_capacity(64);
    loop {
        match tokio::time::timeout(HEARTBEAT_EVERY, rx.recv_many(&mut batch, 256)).await {
            Ok(0) => return,
            Ok(_) => {}
            Err(_) => batch.push(NodeFrame::Heartbeat),
        }
        for frame in batch.drain(..) {
            match sealer.feed(&frame) {
                Ok(n) => {
                    counters.bytes_out.fetch_add(n as u64, Relaxed);
                }
                Err(e) => warn!(peer = %link.node, err = %e, "a frame could not be encoded; dropped"),
            }
        }
        if sealer.flush(&mut w).await.is_err() {
            link.break_link();
            return;
        }
    }
}
