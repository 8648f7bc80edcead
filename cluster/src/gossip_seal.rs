//! Sealed gossip: a chitchat [`Transport`] whose datagrams are sealed with XChaCha20-Poly1305
//! under the cluster's gossip key, so that without the key nobody joins, changes a node's status
//! or redirects traffic. It owns the gossip UDP socket, the keys, the wire format
//! `nonce (24) || ciphertext || tag (16)` with the fixed AAD `confab-gossip-v1`, and the count
//! of refused datagrams ([`refused_total`]).
//!
//! Route: chitchat 0.13 makes `Transport` and `Socket` public but not the envelope's encoding
//! (`ChitchatEnvelope::serialize`/`deserialize` are `pub(crate)`, and the public `Serializable`
//! trait is not implemented for it), so chitchat's own `UdpSocket` does the encoding over
//! loopback. To send, an encoder socket sends the envelope to a capture socket, and the captured
//! bytes are sealed and sent from the real socket. An incoming datagram is opened, then handed to
//! a decoder socket from a loopback feeder socket kept per peer: the feeder's address says which
//! peer it came from, so chitchat is given the real sender's address. The relay only binds
//! 127.0.0.1, and the decoder drops whatever does not come from one of its own feeders.
//!
//! Keys: every key opens. A peer is answered with the key that last opened its datagrams, and a
//! peer not heard from yet gets the first key. So a node holding [new, old] and one holding [old]
//! can talk. To rotate, give every node [new, old], then [new].
//! No replay protection: a recorded datagram can be sent again (chitchat ignores stale versions,
//! but a replayed syn gets an answer).

use anyhow::Context;
use async_trait::async_trait;
use chacha20poly1305::aead::{AeadCore, AeadInPlace, KeyInit, OsRng};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use chitchat::ChitchatEnvelope;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport, UdpSocket as ChitchatUdpSocket};
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tracing::{debug, warn};

/// Additional data of every seal: keeps the gossip key from being mistaken for any other use.
pub const AAD: &[u8] = b"confab-gossip-v1";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Bytes a seal adds to a chitchat datagram.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// The largest datagram sent or opened: chitchat's `MAX_UDP_DATAGRAM_PAYLOAD_SIZE` (private
/// there), the largest UDP payload over IPv4. Chitchat messages longer than this minus
/// [`OVERHEAD`] cannot be sealed and are dropped.
pub const MAX_DATAGRAM: usize = 65_507;
/// At most this many keys: a refused datagram costs one open per key.
pub const MAX_KEYS: usize = 8;
/// Peers remembered at once (feeder socket, key they use); the least recently heard goes first.
const MAX_PEERS: usize = 256;
/// How long chitchat's encoding may take to come back over loopback.
const LOOPBACK_WAIT: Duration = Duration::from_secs(1);

static REFUSED: AtomicU64 = AtomicU64::new(0);

/// Datagrams refused by every sealed gossip socket of this process: unsealed, sealed with an
/// unknown key or otherwise tampered with, too large, or sent to the loopback relay by someone
/// else. This is the value for `confab_gossip_datagrams_refused_total`.
pub fn refused_total() -> u64 {
    REFUSED.load(Ordering::Relaxed)
}

/// A chitchat transport that seals its datagrams (see the module doc).
#[derive(Clone)]
pub struct SealedTransport {
    shared: Arc<Shared>,
}

struct Shared {
    ciphers: Vec<XChaCha20Poly1305>,
    refused: AtomicU64,
}

impl std::fmt::Debug for SealedTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedTransport").field("keys", &self.shared.ciphers.len()).finish_non_exhaustive()
    }
}

impl SealedTransport {
    /// `keys[0]` seals to peers not heard from yet; every key opens. 1 to [`MAX_KEYS`] keys.
    pub fn new(keys: &[[u8; 32]]) -> crate::error::Result<SealedTransport> {
        if keys.is_empty() || keys.len() > MAX_KEYS {
            return Err(crate::error::Error::Gossip(format!(
                "{} gossip keys given, 1 to {MAX_KEYS} are needed",
                keys.len()
            )));
        }
        let ciphers = keys.iter().map(|k| XChaCha20Poly1305::new(k.into())).collect();
        Ok(SealedTransport { shared: Arc::new(Shared { ciphers, refused: AtomicU64::new(0) }) })
    }

    /// Datagrams refused by the sockets of this transport (also counted in [`refused_total`]).
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }
}

impl Shared {
    fn refuse(&self, from: SocketAddr, len: usize, why: &'static str) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        REFUSED.fetch_add(1, Ordering::Relaxed);
        debug!(%from, len, why, "gossip datagram refused");
    }
}

#[async_trait]
impl Transport for SealedTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let outer = UdpSocket::bind(listen_addr)
            .await
            .with_context(|| format!("failed to bind to {listen_addr}/UDP for gossip"))?;
        let lo = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let encoder = ChitchatUdpSocket::open(lo).await?;
        let decoder = ChitchatUdpSocket::open(lo).await?;
        let capture = UdpSocket::bind(lo).await.context("binding the gossip relay")?;
        Ok(Box::new(SealedSocket {
            shared: self.shared.clone(),
            encoder_addr: encoder.local_addr()?,
            capture_addr: capture.local_addr()?,
            decoder_addr: decoder.local_addr()?,
            outer,
            encoder,
            capture,
            decoder,
            peers: Peers::default(),
            wire: vec![0; MAX_DATAGRAM + 1],
            scratch: Vec::with_capacity(MAX_DATAGRAM),
            warned_oversized: false,
        }))
    }
}

struct SealedSocket {
    shared: Arc<Shared>,
    /// The real gossip socket: sealed datagrams only.
    outer: UdpSocket,
    /// Chitchat's socket encoding outgoing envelopes, sending them to `capture`.
    encoder: ChitchatUdpSocket,
    encoder_addr: SocketAddr,
    capture: UdpSocket,
    capture_addr: SocketAddr,
    /// Chitchat's socket decoding opened datagrams, sent to it by the peers' feeders.
    decoder: ChitchatUdpSocket,
    decoder_addr: SocketAddr,
    peers: Peers,
    /// One datagram read (one byte more than the largest, to see oversized ones).
    wire: Vec<u8>,
    /// One datagram opened or sealed.
    scratch: Vec<u8>,
    warned_oversized: bool,
}

enum Event {
    Decoded(RecvOutcome),
    Datagram(io::Result<(usize, SocketAddr)>),
}

#[async_trait]
impl Socket for SealedSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.outer.local_addr().context("failed to get UDP socket address")
    }

    async fn send(&mut self, to: SocketAddr, envelope: ChitchatEnvelope) -> anyhow::Result<SendOutcome> {
        // A send dropped halfway leaves its copy behind: discard it, it is not for `to`.
        while self.capture.try_recv_from(&mut self.wire).is_ok() {}
        let encoded = self.encoder.send(self.capture_addr, envelope).await?.num_bytes_sent;
        let (capture, wire, encoder_addr) = (&self.capture, &mut self.wire, self.encoder_addr);
        let n = tokio::time::timeout(LOOPBACK_WAIT, async {
            loop {
                // Only the encoder's copy, of the length it just sent (a leftover the drain
                // above missed would differ in length, most likely).
                let (n, from) = capture.recv_from(wire).await?;
                if from == encoder_addr && n == encoded {
                    return Ok::<_, io::Error>(n);
                }
            }
        })
        .await
        .context("chitchat's encoding did not come back over loopback")??;
        if n + OVERHEAD > MAX_DATAGRAM {
            if !self.warned_oversized {
                self.warned_oversized = true;
                warn!(len = n, %to, "gossip message too large to seal, dropped (warned once)");
            }
            return Ok(SendOutcome { num_bytes_sent: 0 });
        }
        let cipher = &self.shared.ciphers[self.peers.key_for(to)];
        if !seal(cipher, &self.wire[..n], &mut self.scratch) {
            return Ok(SendOutcome { num_bytes_sent: 0 });
        }
        let num_bytes_sent =
            self.outer.send_to(&self.scratch, to).await.context("failed to send chitchat message to peer")?;
        Ok(SendOutcome { num_bytes_sent })
    }

    /// Cancellable, as chitchat needs: every await is on a cancel-safe receive, and what follows
    /// one does not await.
    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            let event = tokio::select! {
                decoded = self.decoder.recv() => Event::Decoded(decoded?),
                datagram = self.outer.recv_from(&mut self.wire) => Event::Datagram(datagram),
            };
            match event {
                Event::Decoded(outcome) => match self.peers.peer_of_feeder(outcome.from_addr) {
                    Some(peer) => return Ok(RecvOutcome { from_addr: peer, ..outcome }),
                    // A local process writing to the relay, or a feeder forgotten meanwhile.
                    None => self.shared.refuse(outcome.from_addr, outcome.num_bytes_received, "not from a feeder"),
                },
                Event::Datagram(Ok((n, from))) => self.admit(n, from),
                Event::Datagram(Err(e)) if is_transient(&e) => warn!(error = %e, "transient gossip UDP recv error"),
                Event::Datagram(Err(e)) => return Err(e).context("fatal gossip UDP recv error"),
            }
        }
    }
}

impl SealedSocket {
    /// Opens the datagram in `wire[..n]` and hands it to the decoder through `from`'s feeder.
    fn admit(&mut self, n: usize, from: SocketAddr) {
        if n > MAX_DATAGRAM {
            return self.shared.refuse(from, n, "too large");
        }
        let Some(key) = open(&self.shared.ciphers, &self.wire[..n], &mut self.scratch) else {
            return self.shared.refuse(from, n, "does not open");
        };
        match self.peers.heard(from, key) {
            // A full decoder queue drops it, as a full UDP socket would.
            Ok(feeder) => {
                if let Err(e) = feeder.send_to(&self.scratch, self.decoder_addr) {
                    debug!(error = %e, %from, "gossip relay dropped a datagram");
                }
            }
            Err(e) => warn!(error = %e, %from, "no gossip relay socket for a peer"),
        }
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::OutOfMemory | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionRefused)
}

/// Seals `plaintext` into `out` under a fresh random nonce; false if it cannot be.
fn seal(cipher: &XChaCha20Poly1305, plaintext: &[u8], out: &mut Vec<u8>) -> bool {
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    out.clear();
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    match cipher.encrypt_in_place_detached(&nonce, AAD, &mut out[NONCE_LEN..]) {
        Ok(tag) => {
            out.extend_from_slice(&tag);
            true
        }
        Err(_) => false,
    }
}

/// Opens `datagram` into `out` with the first key that fits and returns that key's index. Costs
/// at most one open per key, and none for a datagram of impossible length.
fn open(ciphers: &[XChaCha20Poly1305], datagram: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    if datagram.len() < OVERHEAD || datagram.len() > MAX_DATAGRAM {
        return None;
    }
    let (nonce, rest) = datagram.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    let (nonce, tag) = (XNonce::from_slice(nonce), Tag::from_slice(tag));
    for (i, cipher) in ciphers.iter().enumerate() {
        out.clear();
        out.extend_from_slice(ciphertext);
        if cipher.decrypt_in_place_detached(nonce, AAD, out, tag).is_ok() {
            return Some(i);
        }
    }
    None
}

/// Peers heard from: their loopback feeder socket and the key their last datagram opened with.
#[derive(Default)]
struct Peers {
    by_addr: HashMap<SocketAddr, Peer>,
    by_feeder: HashMap<SocketAddr, SocketAddr>,
}

struct Peer {
    feeder: std::net::UdpSocket,
    feeder_addr: SocketAddr,
    key: usize,
    heard: Instant,
}

impl Peers {
    /// The key to seal to `to` with: the one it last used, else the first.
    fn key_for(&self, to: SocketAddr) -> usize {
        self.by_addr.get(&to).map_or(0, |p| p.key)
    }

    fn peer_of_feeder(&self, feeder: SocketAddr) -> Option<SocketAddr> {
        self.by_feeder.get(&feeder).copied()
    }

    /// Notes an opened datagram from `from` and returns its feeder.
    fn heard(&mut self, from: SocketAddr, key: usize) -> io::Result<&std::net::UdpSocket> {
        if !self.by_addr.contains_key(&from) {
            if self.by_addr.len() >= MAX_PEERS {
                let oldest = self.by_addr.iter().min_by_key(|(_, p)| p.heard).map(|(a, _)| *a);
                if let Some(peer) = oldest.and_then(|a| self.by_addr.remove(&a)) {
                    self.by_feeder.remove(&peer.feeder_addr);
                }
            }
            let feeder = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
            feeder.set_nonblocking(true)?;
            let feeder_addr = feeder.local_addr()?;
            self.by_feeder.insert(feeder_addr, from);
            self.by_addr.insert(from, Peer { feeder, feeder_addr, key, heard: Instant::now() });
        }
        let peer = self.by_addr.get_mut(&from).expect("inserted above");
        peer.key = key;
        peer.heard = Instant::now();
        Ok(&peer.feeder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chitchat::transport::UdpTransport;
    use chitchat::{ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, ProtocolVersion};
    use std::collections::BTreeSet;

    const CLUSTER: &str = "seal-test";

    fn free_addr() -> SocketAddr {
        std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
    }

    async fn node(name: &str, addr: SocketAddr, seeds: &[SocketAddr], transport: &dyn Transport) -> ChitchatHandle {
        let config = ChitchatConfig {
            chitchat_id: ChitchatId::new(name, 1, addr),
            cluster_id: CLUSTER.into(),
            gossip_interval: Duration::from_millis(100),
            listen_addr: addr,
            seed_nodes: seeds.iter().map(|s| s.to_string()).collect(),
            failure_detector_config: FailureDetectorConfig {
                initial_interval: Duration::from_millis(100),
                ..Default::default()
            },
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: ProtocolVersion::V0,
        };
        chitchat::spawn_chitchat(config, vec![("status".into(), "ready".into())], transport).await.unwrap()
    }

    /// Names of the nodes `h` holds as live, and of every node it knows anything about.
    async fn seen(h: &ChitchatHandle) -> (BTreeSet<String>, BTreeSet<String>) {
        h.with_chitchat(|cc| {
            let live = cc.live_nodes().map(|id| id.node_id.to_string()).collect();
            let known = cc.node_states().keys().map(|id| id.node_id.to_string()).collect();
            (live, known)
        })
        .await
    }

    async fn wait_live(h: &ChitchatHandle, expected: &[&str]) {
        let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (live, _) = seen(h).await;
            if live == expected {
                return;
            }
            assert!(Instant::now() < deadline, "live {live:?}, expected {expected:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn same_key_nodes_see_each_other() {
        let key = [7u8; 32];
        let (a_addr, b_addr) = (free_addr(), free_addr());
        let a = node("a", a_addr, &[], &SealedTransport::new(&[key]).unwrap()).await;
        let b = node("b", b_addr, &[a_addr], &SealedTransport::new(&[key]).unwrap()).await;
        wait_live(&a, &["a", "b"]).await;
        wait_live(&b, &["a", "b"]).await;
        let status = a
            .with_chitchat(|cc| {
                let id = cc.live_nodes().find(|id| &*id.node_id == "b").unwrap().clone();
                cc.node_state(&id).unwrap().get("status").map(str::to_owned)
            })
            .await;
        assert_eq!(status.as_deref(), Some("ready"));
        // The peer's real address reaches chitchat, not a relay address.
        let b_advertised = a.with_chitchat(|cc| cc.live_nodes().find(|id| &*id.node_id == "b").unwrap().clone()).await;
        assert_eq!(b_advertised.gossip_advertise_addr, b_addr);
    }

    /// The wiring: `membership::start` with keys seals, and members see each other.
    #[tokio::test]
    async fn membership_with_keys_forms_a_view() {
        let key = vec![[5u8; 32]];
        let (a_addr, b_addr) = (free_addr(), free_addr());
        let config = |id: &str, at: SocketAddr, seeds: Vec<String>| crate::membership::GossipConfig {
            node_id: id.into(),
            cluster_id: CLUSTER.into(),
            listen: at,
            advertise: at,
            seeds,
            initial: vec![(crate::membership::KEY_STATUS.into(), "ready".into())],
            gossip_keys: key.clone(),
        };
        let a = crate::membership::start(config("a", a_addr, vec![])).await.unwrap();
        let b = crate::membership::start(config("b", b_addr, vec![a_addr.to_string()])).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let view = a.with_chitchat(|cc| crate::membership::view_of(cc)).await;
            if view.ready() == ["a", "b"] {
                break;
            }
            assert!(Instant::now() < deadline, "view {view:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(b);
    }

    #[tokio::test]
    async fn rotated_keys_talk_to_the_old_key() {
        let (old, new) = ([1u8; 32], [2u8; 32]);
        let (a_addr, b_addr, c_addr) = (free_addr(), free_addr(), free_addr());
        // a is rotated; b still holds only the old key, c already only the new one.
        let a = node("a", a_addr, &[b_addr, c_addr], &SealedTransport::new(&[new, old]).unwrap()).await;
        let b = node("b", b_addr, &[a_addr], &SealedTransport::new(&[old]).unwrap()).await;
        let c = node("c", c_addr, &[a_addr], &SealedTransport::new(&[new]).unwrap()).await;
        wait_live(&a, &["a", "b", "c"]).await;
        wait_live(&b, &["a", "b", "c"]).await;
        wait_live(&c, &["a", "b", "c"]).await;
    }

    #[tokio::test]
    async fn wrong_key_and_plain_nodes_stay_out() {
        let (a_addr, b_addr, c_addr) = (free_addr(), free_addr(), free_addr());
        let keyed = SealedTransport::new(&[[3u8; 32]]).unwrap();
        let other = SealedTransport::new(&[[4u8; 32]]).unwrap();
        // Everybody seeds everybody: each one tries.
        let a = node("a", a_addr, &[b_addr, c_addr], &keyed).await;
        let b = node("b", b_addr, &[a_addr, c_addr], &other).await;
        let c = node("c", c_addr, &[a_addr, b_addr], &UdpTransport).await;
        let only = |n: &str| BTreeSet::from([n.to_owned()]);
        // 3 s of gossip every 100 ms: nobody learns of anybody.
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            for (h, name) in [(&a, "a"), (&b, "b"), (&c, "c")] {
                let (live, known) = seen(h).await;
                assert_eq!(live, only(name), "{name} sees {live:?}");
                assert_eq!(known, only(name), "{name} knows of {known:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // They did try: a refused b's and c's datagrams, b refused a's and c's.
        assert!(keyed.refused() >= 10, "a refused {}", keyed.refused());
        assert!(other.refused() >= 10, "b refused {}", other.refused());
        assert!(refused_total() >= keyed.refused() + other.refused());
    }

    #[tokio::test]
    async fn socket_refuses_forgeries_and_passes_sealed_datagrams() {
        let key = [9u8; 32];
        let transport = SealedTransport::new(&[key]).unwrap();
        let mut socket = transport.open("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let to = socket.local_addr().unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let cipher = XChaCha20Poly1305::new((&key).into());
        let mut sealed = Vec::new();
        // Garbage, a tampered seal, a seal under another key: refused.
        let good_plain = b"not a chitchat message, but sealed";
        assert!(seal(&cipher, good_plain, &mut sealed));
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        let mut foreign = Vec::new();
        assert!(seal(&XChaCha20Poly1305::new((&[8u8; 32]).into()), good_plain, &mut foreign));
        // The good one opens (chitchat then fails to decode it): not counted.
        for bad in [&sealed, &b"junk"[..], &tampered, &foreign] {
            sender.send_to(bad, to).await.unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while transport.refused() < 3 {
            assert!(Instant::now() < deadline, "refused {}", transport.refused());
            let _ = tokio::time::timeout(Duration::from_millis(20), socket.recv()).await;
        }
        assert_eq!(transport.refused(), 3);
    }

    #[test]
    fn open_tries_every_key_and_rejects_impossible_lengths() {
        let (k1, k2) = ([1u8; 32], [2u8; 32]);
        let ciphers = [XChaCha20Poly1305::new((&k1).into()), XChaCha20Poly1305::new((&k2).into())];
        let (mut sealed, mut out) = (Vec::new(), Vec::new());
        assert!(seal(&ciphers[1], b"hello", &mut sealed));
        assert_eq!(sealed.len(), 5 + OVERHEAD);
        assert_eq!(open(&ciphers, &sealed, &mut out), Some(1));
        assert_eq!(out, b"hello");
        assert_eq!(open(&ciphers[..1], &sealed, &mut out), None);
        // Another label (AAD) does not open.
        let nonce = XNonce::from_slice(&sealed[..NONCE_LEN]);
        let mut body = sealed[NONCE_LEN..sealed.len() - TAG_LEN].to_vec();
        let tag = Tag::from_slice(&sealed[sealed.len() - TAG_LEN..]);
        assert!(ciphers[1].decrypt_in_place_detached(nonce, b"other-use", &mut body, tag).is_err());
        assert_eq!(open(&ciphers, &sealed[..OVERHEAD - 1], &mut out), None);
        assert_eq!(open(&ciphers, &vec![0; MAX_DATAGRAM + 1], &mut out), None);
        // Two seals of the same message differ (fresh nonce).
        let mut again = Vec::new();
        assert!(seal(&ciphers[1], b"hello", &mut again));
        assert_ne!(sealed, again);
    }

    #[test]
    fn key_count_is_bounded() {
        assert!(SealedTransport::new(&[]).is_err());
        assert!(SealedTransport::new(&[[0u8; 32]; MAX_KEYS + 1]).is_err());
        assert!(SealedTransport::new(&[[0u8; 32]; MAX_KEYS]).is_ok());
    }
}
