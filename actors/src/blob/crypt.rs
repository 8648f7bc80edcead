//! Encryption at rest of stored objects: AES-256-GCM in fixed-size chunks, so a range read
//! decrypts only the chunks it touches and an upload is sealed as it streams.
//!
//! Layout of a sealed object: a header (`MAGIC`, the 8-byte id of the key, a random 32-byte
//! salt), then the chunks, each `CHUNK` plaintext bytes (the last one 1..=`CHUNK`, or 0 for an
//! empty object) followed by its 16-byte tag. Each object gets its own key, HKDF-SHA256 of the
//! node's key with the salt and the object's key (name) as info, so nonces never repeat across
//! objects and an object moved to another name fails to open. A chunk's nonce is its index and
//! a final-chunk flag, and the object's name is its associated data: reordered, truncated or
//! extended objects fail to open, as does any changed byte.

use super::BlobError;
use crate::store::Cipher;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, StreamExt};
use rand::RngCore;
use std::ops::Range;

/// Plaintext bytes per chunk.
pub(crate) const CHUNK: u64 = 64 * 1024;
const TAG: u64 = 16;
const SEALED: u64 = CHUNK + TAG;
pub(crate) const MAGIC: &[u8; 8] = b"CFBLOB\x00\x01";
const SALT: usize = 32;
/// Bytes of the header: magic, key id, salt.
pub(crate) const HEADER: u64 = (MAGIC.len() + 8 + SALT) as u64;

fn damaged(why: &str) -> BlobError {
    BlobError::Store(format!("a stored object is damaged or was tampered with: {why}"))
}

fn nonce(index: u64, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// The AEAD of one object.
fn object_aead(master: &[u8; 32], salt: &[u8], name: &str) -> Aes256Gcm {
    let mut key = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), master)
        .expand_multi_info(&[b"confab-blob-v1:", name.as_bytes()], &mut key)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    Aes256Gcm::new(&key.into())
}

/// Seals a stream of plaintext as it arrives.
pub(crate) struct Sealer {
    aead: Aes256Gcm,
    name: String,
    index: u64,
    /// Plaintext not sealed yet: a full chunk is sealed only once more bytes show it is not the
    /// last.
    pending: Vec<u8>,
}

impl Sealer {
    /// A sealer for the object `name`, and the header to store first.
    pub(crate) fn new(cipher: &Cipher, name: &str) -> (Sealer, Bytes) {
        let (id, master) = cipher.current_key();
        let mut salt = [0u8; SALT];
        rand::thread_rng().fill_bytes(&mut salt);
        let mut header = Vec::with_capacity(HEADER as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&id);
        header.extend_from_slice(&salt);
        let sealer = Sealer {
            aead: object_aead(master, &salt, name),
            name: name.to_owned(),
            index: 0,
            pending: Vec::with_capacity(CHUNK as usize),
        };
        (sealer, header.into())
    }

    fn seal(&mut self, last: bool) -> Vec<u8> {
        let n = nonce(self.index, last);
        self.index += 1;
        let sealed = self
            .aead
            .encrypt(Nonce::from_slice(&n), Payload { msg: &self.pending, aad: self.name.as_bytes() })
            .expect("AES-GCM encrypts any chunk under 64 GiB");
        self.pending.clear();
        sealed
    }

    /// Takes plaintext; hands `out` every chunk that is now sealed.
    pub(crate) fn push(&mut self, mut data: &[u8], mut out: impl FnMut(Vec<u8>)) {
        while !data.is_empty() {
            if self.pending.len() as u64 == CHUNK {
                out(self.seal(false));
            }
            let take = (CHUNK as usize - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
    }

    /// Seals the last chunk (empty only when the whole object is).
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.seal(true)
    }
}

/// Seals a whole small object: header and chunks.
pub(crate) fn seal_all(cipher: &Cipher, name: &str, plain: &[u8]) -> Bytes {
    let (mut sealer, header) = Sealer::new(cipher, name);
    let mut out = header.to_vec();
    sealer.push(plain, |c| out.extend_from_slice(&c));
    out.extend_from_slice(&sealer.finish());
    out.into()
}

/// A sealed object, known from its header and stored size.
pub(crate) struct Sealed {
    aead: Aes256Gcm,
    name: String,
    /// Chunks in the object.
    chunks: u64,
    stored: u64,
    /// Plaintext bytes.
    pub(crate) size: u64,
}

impl Sealed {
    /// Reads the header of object `name` of `stored` bytes; None when it is not sealed (stored
    /// before encryption was turned on).
    pub(crate) fn parse(cipher: &Cipher, name: &str, header: &[u8], stored: u64) -> Result<Option<Sealed>, BlobError> {
        if header.len() < HEADER as usize || &header[..MAGIC.len()] != MAGIC {
            return Ok(None);
        }
        let id: [u8; 8] = header[MAGIC.len()..MAGIC.len() + 8].try_into().expect("8 bytes");
        let master = cipher.key_by_id(&id).ok_or_else(|| {
            BlobError::Store(format!("an object is sealed with key {} that is not configured", hex::encode(id)))
        })?;
        let salt = &header[MAGIC.len() + 8..HEADER as usize];
        let body = stored - HEADER;
        let chunks = body.div_ceil(SEALED);
        if chunks == 0 || body - (chunks - 1) * SEALED < TAG || (chunks > 1 && body - (chunks - 1) * SEALED == TAG) {
            return Err(damaged("its length is not a whole number of chunks"));
        }
        Ok(Some(Sealed {
            aead: object_aead(master, salt, name),
            name: name.to_owned(),
            chunks,
            stored,
            size: body - chunks * TAG,
        }))
    }

    /// The stored bytes that hold plaintext `range` (not empty, within the size), and the
    /// first chunk's index.
    pub(crate) fn stored_range(&self, range: &Range<u64>) -> (Range<u64>, u64) {
        let (first, last) = (range.start / CHUNK, (range.end - 1) / CHUNK);
        (HEADER + first * SEALED..(HEADER + (last + 1) * SEALED).min(self.stored), first)
    }

    /// Decrypts `stored` (the bytes of `stored_range(range)`) into plaintext `range`.
    pub(crate) fn open_stream(
        self,
        stored: BoxStream<'static, Result<Bytes, BlobError>>,
        range: Range<u64>,
    ) -> BoxStream<'static, Result<Bytes, BlobError>> {
        let (_, first) = self.stored_range(&range);
        let state = OpenState {
            sealed: self,
            stored,
            buf: BytesMut::new(),
            index: first,
            skip: range.start - first * CHUNK,
            remaining: range.end - range.start,
        };
        futures::stream::try_unfold(state, OpenState::next).boxed()
    }
}

struct OpenState {
    sealed: Sealed,
    stored: BoxStream<'static, Result<Bytes, BlobError>>,
    buf: BytesMut,
    index: u64,
    /// Plaintext bytes to drop from the next chunk (the range starts inside it).
    skip: u64,
    remaining: u64,
}

impl OpenState {
    async fn next(mut self) -> Result<Option<(Bytes, OpenState)>, BlobError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let s = &self.sealed;
        let last = self.index + 1 == s.chunks;
        let want = if last { s.stored - HEADER - self.index * SEALED } else { SEALED } as usize;
        while self.buf.len() < want {
            match self.stored.next().await {
                Some(bytes) => self.buf.extend_from_slice(&bytes?),
                None => return Err(damaged("it ended early")),
            }
        }
        let chunk = self.buf.split_to(want);
        let plain = s
            .aead
            .decrypt(Nonce::from_slice(&nonce(self.index, last)), Payload { msg: &chunk, aad: s.name.as_bytes() })
            .map_err(|_| damaged(&format!("chunk {} failed authentication", self.index)))?;
        // The range starts inside the first chunk: `skip` is less than its length.
        let mut plain = Bytes::from(plain).slice(self.skip as usize..);
        plain.truncate(self.remaining.min(plain.len() as u64) as usize);
        self.skip = 0;
        self.remaining -= plain.len() as u64;
        self.index += 1;
        Ok(Some((plain, self)))
    }
}
