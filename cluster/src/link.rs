//! The secure channel under every node-to-node connection: a Noise handshake with the cluster's
//! pre-shared key (`Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s`, by `snow`), then every byte encrypted
//! and authenticated.
//!
//! Both sides prove they hold the key before either reads a frame: a peer without it fails the
//! handshake's first message (the responder tries each accepted key, so keys rotate without
//! downtime). The prologue binds the cluster id and the protocol version the link will speak:
//! the initiator names the version it chose (the newest both nodes speak, from gossip), the
//! responder tries each version it speaks, so nodes of another cluster, or with no version in
//! common, fail the handshake, and the version cannot be changed by anyone without the key.
//!
//! On the wire each Noise message is a 2-byte big-endian length and at most 65,535 bytes of
//! ciphertext; the plaintext inside is the stream of node frames, each a 4-byte big-endian length
//! and a postcard frame, checked against `MAX_NODE_FRAME` before it is buffered.

use crate::error::{Error, Result};
use confab_schemas::node::{MAX_NODE_FRAME, NodeFrame, decode_node_frame, encode_node_frame};
use snow::StatelessTransportState;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const PATTERN: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";
const MAX_MESSAGE: usize = 65_535;
const TAG: usize = 16;
/// The most plaintext one Noise message carries.
const MAX_CHUNK: usize = MAX_MESSAGE - TAG;

fn prologue(cluster_id: &str, version: u32) -> Vec<u8> {
    format!("confab-node-link/{version}/{cluster_id}").into_bytes()
}

fn noise_err(e: snow::Error) -> Error {
    Error::Handshake(format!("noise: {e}"))
}

async fn read_message<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let len = r.read_u16().await? as usize;
    buf.resize(len, 0);
    r.read_exact(buf).await?;
    Ok(())
}

async fn write_message<W: AsyncWrite + Unpin>(w: &mut W, msg: &[u8]) -> std::io::Result<()> {
    w.write_u16(msg.len() as u16).await?;
    w.write_all(msg).await?;
    w.flush().await
}

/// The initiator's side: proves the key with the first message, for a link speaking `version`;
/// checks the answer.
pub async fn initiate<R, W>(r: &mut R, w: &mut W, cluster_id: &str, psk: &[u8; 32], version: u32) -> Result<Cipher>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let prologue = prologue(cluster_id, version);
    let mut hs = snow::Builder::new(PATTERN.parse().map_err(noise_err)?)
        .psk(0, psk)
        .and_then(|b| b.prologue(&prologue))
        .and_then(|b| b.build_initiator())
        .map_err(noise_err)?;
    let mut out = vec![0u8; MAX_MESSAGE];
    let n = hs.write_message(&[], &mut out).map_err(noise_err)?;
    write_message(w, &out[..n]).await?;
    let mut msg = Vec::new();
    read_message(r, &mut msg).await?;
    hs.read_message(&msg, &mut out).map_err(|_| Error::Handshake("the peer does not hold the cluster key".into()))?;
    Ok(Cipher(Arc::new(hs.into_stateless_transport_mode().map_err(noise_err)?)))
}

/// The responder's side: the first message must open under one of `psks` and one of
/// `versions`; returns the channel and the version the initiator chose.
pub async fn respond<R, W>(
    r: &mut R,
    w: &mut W,
    cluster_id: &str,
    psks: &[[u8; 32]],
    versions: &[u32],
) -> Result<(Cipher, u32)>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut msg = Vec::new();
    read_message(r, &mut msg).await?;
    let mut out = vec![0u8; MAX_MESSAGE];
    for &version in versions {
        let prologue = prologue(cluster_id, version);
        for psk in psks {
            let mut hs = snow::Builder::new(PATTERN.parse().map_err(noise_err)?)
                .psk(0, psk)
                .and_then(|b| b.prologue(&prologue))
                .and_then(|b| b.build_responder())
                .map_err(noise_err)?;
            if hs.read_message(&msg, &mut out).is_err() {
                continue;
            }
            let n = hs.write_message(&[], &mut out).map_err(noise_err)?;
            write_message(w, &out[..n]).await?;
            return Ok((Cipher(Arc::new(hs.into_stateless_transport_mode().map_err(noise_err)?)), version));
        }
    }
    Err(Error::Handshake(
        "the peer does not hold the cluster key (or speaks another cluster, or no protocol version of ours)".into(),
    ))
}

/// The keys of an established link; split into its two directions.
pub struct Cipher(Arc<StatelessTransportState>);

impl Cipher {
    pub fn split(self) -> (Sealer, Opener) {
        let sealer = Sealer { state: self.0.clone(), nonce: 0, plain: Vec::new(), out: vec![0u8; MAX_MESSAGE] };
        let opener = Opener { state: self.0, nonce: 0, plain: Vec::new(), start: 0, msg: Vec::new() };
        (sealer, opener)
    }
}

/// Writes frames: buffers them as plaintext, seals them in Noise messages on `flush`.
pub struct Sealer {
    state: Arc<StatelessTransportState>,
    nonce: u64,
    plain: Vec<u8>,
    out: Vec<u8>,
}

impl Sealer {
    /// Buffers one frame; returns its size on the wire before encryption.
    pub fn feed(&mut self, frame: &NodeFrame) -> Result<usize> {
        let bytes = encode_node_frame(frame)?;
        if bytes.len() > MAX_NODE_FRAME {
            return Err(Error::Handshake(format!("a frame of {} bytes is over the limit", bytes.len())));
        }
        self.plain.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        self.plain.extend_from_slice(&bytes);
        Ok(bytes.len() + 4)
    }

    /// Seals and writes everything buffered.
    pub async fn flush<W: AsyncWrite + Unpin>(&mut self, w: &mut W) -> Result<()> {
        for chunk in self.plain.chunks(MAX_CHUNK) {
            let n = self.state.write_message(self.nonce, chunk, &mut self.out).map_err(noise_err)?;
            self.nonce += 1;
            w.write_u16(n as u16).await?;
            w.write_all(&self.out[..n]).await?;
        }
        self.plain.clear();
        w.flush().await?;
        Ok(())
    }

    /// Seals, writes and flushes one frame.
    pub async fn send<W: AsyncWrite + Unpin>(&mut self, w: &mut W, frame: &NodeFrame) -> Result<()> {
        self.feed(frame)?;
        self.flush(w).await
    }
}

/// Reads frames: opens Noise messages and cuts the plaintext into frames.
pub struct Opener {
    state: Arc<StatelessTransportState>,
    nonce: u64,
    plain: Vec<u8>,
    start: usize,
    msg: Vec<u8>,
}

impl Opener {
    /// The next complete frame's bytes already buffered, if any.
    fn buffered(&mut self) -> Result<Option<Vec<u8>>> {
        let avail = &self.plain[self.start..];
        if avail.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([avail[0], avail[1], avail[2], avail[3]]) as usize;
        if len > MAX_NODE_FRAME {
            return Err(Error::Handshake(format!("the peer announced a frame of {len} bytes")));
        }
        if avail.len() < 4 + len {
            return Ok(None);
        }
        let frame = avail[4..4 + len].to_vec();
        self.start += 4 + len;
        if self.start == self.plain.len() {
            self.plain.clear();
            self.start = 0;
        }
        Ok(Some(frame))
    }

    /// Reads the next frame's bytes (with its encoded length, for counters).
    pub async fn next_bytes<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<Vec<u8>> {
        loop {
            if let Some(frame) = self.buffered()? {
                return Ok(frame);
            }
            read_message(r, &mut self.msg).await?;
            if self.start > 0 {
                self.plain.drain(..self.start);
                self.start = 0;
            }
            let at = self.plain.len();
            self.plain.resize(at + self.msg.len(), 0);
            let n = self
                .state
                .read_message(self.nonce, &self.msg, &mut self.plain[at..])
                .map_err(|_| Error::Handshake("a message from the peer failed authentication".into()))?;
            self.nonce += 1;
            self.plain.truncate(at + n);
        }
    }

    /// Reads and decodes the next frame.
    pub async fn next<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<NodeFrame> {
        let bytes = self.next_bytes(r).await?;
        Ok(decode_node_frame(&bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> [u8; 32] {
        [b; 32]
    }

    /// The versions both sides use: the initiator's choice, the responder's list.
    const V: u32 = confab_schemas::node::NODE_PROTOCOL_VERSION;
    const BOTH: [u32; 2] = [V, V - 1];

    async fn pair(init_key: [u8; 32], accepted: Vec<[u8; 32]>, init_cluster: &str) -> (Result<Cipher>, Result<Cipher>) {
        let (init, resp) = pair_speaking(init_key, accepted, init_cluster, V, &BOTH).await;
        (init, resp.map(|(c, _)| c))
    }

    async fn pair_speaking(
        init_key: [u8; 32],
        accepted: Vec<[u8; 32]>,
        init_cluster: &str,
        version: u32,
        versions: &[u32],
    ) -> (Result<Cipher>, Result<(Cipher, u32)>) {
        let (a, b) = tokio::io::duplex(1 << 20);
        let (mut ar, mut aw) = tokio::io::split(a);
        let (mut br, mut bw) = tokio::io::split(b);
        let cluster = init_cluster.to_owned();
        let init = tokio::spawn(async move { initiate(&mut ar, &mut aw, &cluster, &init_key, version).await });
        let resp = respond(&mut br, &mut bw, "c", &accepted, versions).await;
        if resp.is_err() {
            // The initiator waits for an answer that never comes.
            drop((br, bw));
        }
        (init.await.unwrap(), resp)
    }

    #[tokio::test]
    async fn the_responder_learns_the_version_the_initiator_chose_among_its_own() {
        let (init, resp) = pair_speaking(key(1), vec![key(1)], "c", V - 1, &BOTH).await;
        assert!(init.is_ok());
        assert_eq!(resp.unwrap().1, V - 1, "a node of the previous version is answered in it");
        let (init, resp) = pair_speaking(key(1), vec![key(1)], "c", V, &BOTH).await;
        assert!(init.is_ok() && resp.unwrap().1 == V);
        // A node that speaks only the previous version refuses a link in the newer one.
        let (init, resp) = pair_speaking(key(1), vec![key(1)], "c", V, &[V - 1]).await;
        assert!(init.is_err() && resp.is_err());
        let (init, resp) = pair_speaking(key(1), vec![key(1)], "c", V - 2, &BOTH).await;
        assert!(init.is_err() && resp.is_err(), "two versions back is refused");
    }

    #[tokio::test]
    async fn the_right_key_connects_and_frames_cross_in_both_directions() {
        let (a, b) = tokio::io::duplex(1 << 20);
        let (mut ar, mut aw) = tokio::io::split(a);
        let (mut br, mut bw) = tokio::io::split(b);
        let init = tokio::spawn(async move {
            let c = initiate(&mut ar, &mut aw, "c", &key(1), V).await.unwrap();
            (c, ar, aw)
        });
        let (resp, _) = respond(&mut br, &mut bw, "c", &[key(2), key(1)], &BOTH).await.unwrap();
        let (init, mut ar, mut aw) = init.await.unwrap();
        let (mut a_seal, _) = init.split();
        let (_, mut b_open) = resp.split();
        let big = NodeFrame::Event { room: confab_schemas::RoomId(7), seq: 1, frame: vec![b'x'; 200_000].into() };
        a_seal.feed(&NodeFrame::Heartbeat).unwrap();
        a_seal.feed(&big).unwrap();
        a_seal.flush(&mut aw).await.unwrap();
        assert_eq!(b_open.next(&mut br).await.unwrap(), NodeFrame::Heartbeat);
        assert_eq!(b_open.next(&mut br).await.unwrap(), big);
        let _ = &mut ar;
    }

    #[tokio::test]
    async fn a_wrong_key_or_cluster_is_refused_on_both_sides() {
        let (init, resp) = pair(key(3), vec![key(1)], "c").await;
        assert!(resp.is_err() && init.is_err());
        let (init, resp) = pair(key(1), vec![key(1)], "other").await;
        assert!(resp.is_err() && init.is_err());
        let (init, resp) = pair(key(1), vec![key(9), key(1)], "c").await;
        assert!(resp.is_ok() && init.is_ok());
    }

    #[tokio::test]
    async fn tampered_or_oversized_input_is_an_error() {
        let (a, b) = tokio::io::duplex(1 << 20);
        let (mut ar, mut aw) = tokio::io::split(a);
        let (mut br, mut bw) = tokio::io::split(b);
        let init = tokio::spawn(async move { initiate(&mut ar, &mut aw, "c", &key(1), V).await.map(|c| (c, aw)) });
        let (resp, _) = respond(&mut br, &mut bw, "c", &[key(1)], &BOTH).await.unwrap();
        let (init, mut aw) = init.await.unwrap().unwrap();
        let (mut seal, _) = init.split();
        // A frame header that announces more than the limit, sealed properly.
        seal.plain.extend_from_slice(&((MAX_NODE_FRAME + 1) as u32).to_be_bytes());
        seal.flush(&mut aw).await.unwrap();
        let (_, mut open) = resp.split();
        assert!(open.next(&mut br).await.is_err());
        // Bytes that are not a sealed message.
        aw.write_all(&[0, 3, 1, 2, 3]).await.unwrap();
        let (_, mut open2) = Cipher(open.state.clone()).split();
        assert!(open2.next(&mut br).await.is_err());
    }
}
