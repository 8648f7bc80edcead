//! The node-to-node transport: one TCP connection per pair of nodes (the node with the smaller id
//! dials, the other accepts), length-delimited postcard frames (length checked against
//! `MAX_NODE_FRAME` before a frame is read), a `Hello`/`HelloAck` handshake carrying the protocol
//! version and the cluster id, and reconnects with backoff while the peer is a member.
//!
//! Each connection has a writer task draining the link's bounded queue (every frame queued is
//! written in one flush) and a reader that hands frames to the router.

use crate::error::{Error, Result};
use crate::router::Router;
use crate::state::{ClusterState, PeerCounters};
use confab_actors::ActorSystem;
use confab_actors::cluster::NodeLink;
use confab_schemas::node::{MAX_NODE_FRAME, NODE_PROTOCOL_VERSION, NodeFrame, decode_node_frame, encode_node_frame};
use futures::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tracing::{debug, info, warn};

/// Frames a link queues before it counts as broken.
const LINK_CAPACITY: usize = 65_536;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// What every connection needs.
#[derive(Clone)]
pub struct Net {
    pub state: Arc<ClusterState>,
    pub system: Arc<ActorSystem>,
    pub cluster_id: String,
}

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder().max_frame_length(MAX_NODE_FRAME).new_codec()
}

type Reader = FramedRead<tokio::net::tcp::OwnedReadHalf, LengthDelimitedCodec>;
type Writer = FramedWrite<tokio::net::tcp::OwnedWriteHalf, LengthDelimitedCodec>;

async fn read_frame(r: &mut Reader) -> Result<NodeFrame> {
    let bytes = r.next().await.ok_or_else(|| Error::Handshake("connection closed".into()))??;
    Ok(decode_node_frame(&bytes)?)
}

async fn write_frame(w: &mut Writer, f: &NodeFrame) -> Result<()> {
    w.send(bytes::Bytes::from(encode_node_frame(f)?)).await?;
    Ok(())
}

/// Accepts connections from peers.
pub async fn accept_loop(listener: TcpListener, net: Net) {
    loop {
        let Ok((stream, from)) = listener.accept().await else { continue };
        let net = net.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let (r, w) = stream.into_split();
            let (mut r, mut w) = (FramedRead::new(r, codec()), FramedWrite::new(w, codec()));
            let hello = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame(&mut r)).await;
            let peer = match hello {
                Ok(Ok(NodeFrame::Hello { version, cluster_id, node_id })) => {
                    if version != NODE_PROTOCOL_VERSION || cluster_id != net.cluster_id {
                        warn!(%from, version, %cluster_id, "refused a peer of another protocol version or cluster");
                        return;
                    }
                    node_id
                }
                other => {
                    debug!(%from, ?other, "refused a connection without a valid hello");
                    return;
                }
            };
            let ack = NodeFrame::HelloAck { node_id: net.state.node_id.clone() };
            if write_frame(&mut w, &ack).await.is_err() {
                return;
            }
            run_connection(net, peer, r, w).await;
        });
    }
}

/// Keeps a connection to `peer` while it is a member: dials, handshakes, runs, and redials with
/// backoff after a failure.
pub async fn dial_loop(net: Net, peer: String) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let view = net.state.view();
        let Some(addr) = view.live.get(&peer).and_then(|m| m.cluster_addr) else {
            debug!(%peer, "peer left the view; no more dialing");
            return;
        };
        match dial(&net, &peer, addr).await {
            Ok((r, w)) => {
                backoff = Duration::from_millis(50);
                run_connection(net.clone(), peer.clone(), r, w).await;
            }
            Err(e) => {
                debug!(%peer, %addr, err = %e, "dial failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

async fn dial(net: &Net, peer: &str, addr: SocketAddr) -> Result<(Reader, Writer)> {
    let timeout = |_| Error::Handshake("timed out".into());
    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(addr)).await.map_err(timeout)??;
    stream.set_nodelay(true)?;
    let (r, w) = stream.into_split();
    let (mut r, mut w) = (FramedRead::new(r, codec()), FramedWrite::new(w, codec()));
    let hello = NodeFrame::Hello {
        version: NODE_PROTOCOL_VERSION,
        cluster_id: net.cluster_id.clone(),
        node_id: net.state.node_id.clone(),
    };
    write_frame(&mut w, &hello).await?;
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame(&mut r)).await.map_err(timeout)?? {
        NodeFrame::HelloAck { node_id } if node_id == peer => Ok((r, w)),
        other => Err(Error::Handshake(format!("unexpected answer {other:?}"))),
    }
}

/// Runs one established connection until either side closes it or its queue overflows.
async fn run_connection(net: Net, peer: String, mut r: Reader, w: Writer) {
    let (link, rx) = NodeLink::channel(peer.clone().into(), LINK_CAPACITY);
    let counters = net.state.add_link(link.clone());
    info!(%peer, "connected to peer");
    net.system.view_changed();
    let writer = tokio::spawn(write_loop(w, rx, link.clone(), counters.clone()));
    let mut router = Router::new(net.system.clone(), link.clone());
    loop {
        tokio::select! {
            next = r.next() => match next {
                Some(Ok(bytes)) => {
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
                Some(Err(e)) => {
                    debug!(%peer, err = %e, "peer connection failed");
                    break;
                }
                None => break,
            },
            _ = wait_broken(&link) => break,
        }
    }
    writer.abort();
    if net.state.remove_link(&link) {
        info!(%peer, "peer connection closed");
    }
    net.system.peer_down(peer.into());
    net.system.view_changed();
}

async fn wait_broken(link: &NodeLink) {
    while !link.is_broken() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn write_loop(
    mut w: Writer,
    mut rx: tokio::sync::mpsc::Receiver<NodeFrame>,
    link: NodeLink,
    counters: Arc<PeerCounters>,
) {
    let mut batch = Vec::with_capacity(64);
    while rx.recv_many(&mut batch, 256).await > 0 {
        for frame in batch.drain(..) {
            let Ok(bytes) = encode_node_frame(&frame) else { continue };
            counters.bytes_out.fetch_add(bytes.len() as u64 + 4, Relaxed);
            if w.feed(bytes::Bytes::from(bytes)).await.is_err() {
                link.break_link();
                return;
            }
        }
        if SinkExt::<bytes::Bytes>::flush(&mut w).await.is_err() {
            link.break_link();
            return;
        }
    }
}
