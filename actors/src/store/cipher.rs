//! Encryption at rest of message bodies: AES-256-GCM with a random 96-bit nonce per body, the
//! (room, seq) of the message as associated data (a body cannot be moved to another row), and the
//! key's id stored beside each body so keys can rotate: new bodies use the current key, old ones
//! stay readable with any configured older key.

use crate::error::{Error, Result};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The keys a store encrypts and decrypts with.
#[derive(Clone)]
pub struct Cipher {
    current: String,
    keys: HashMap<String, Aes256Gcm>,
    /// The keys themselves, by id: blob storage derives a key per object from them.
    raw: HashMap<String, [u8; 32]>,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cipher(current key {})", self.current)
    }
}

/// A key's id: the first 8 bytes of its SHA-256, in hex. Reveals nothing usable about the key.
fn key_id(key: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(key)[..8])
}

impl Cipher {
    /// `current` encrypts; it and every key of `older` decrypt.
    pub fn new(current: [u8; 32], older: &[[u8; 32]]) -> Cipher {
        let mut keys = HashMap::new();
        let mut raw = HashMap::new();
        for k in older.iter().chain(std::iter::once(&current)) {
            keys.insert(key_id(k), Aes256Gcm::new(k.into()));
            raw.insert(key_id(k), *k);
        }
        Cipher { current: key_id(&current), keys, raw }
    }

    /// Parses a key written as 64 hex digits or 44 base64 characters.
    pub fn parse_key(text: &str) -> Result<[u8; 32]> {
        let t = text.trim();
        let bytes = hex::decode(t).ok().or_else(|| STANDARD.decode(t).ok()).unwrap_or_default();
        bytes.try_into().map_err(|_| Error::Invalid("an encryption key is 32 bytes, as 64 hex digits or base64".into()))
    }

    pub fn current_id(&self) -> &str {
        &self.current
    }

    /// The current key and its id as 8 bytes (blob storage seals with it).
    pub(crate) fn current_key(&self) -> ([u8; 8], &[u8; 32]) {
        let id = hex::decode(&self.current).ok().and_then(|b| b.try_into().ok()).expect("ids are 8 bytes in hex");
        (id, &self.raw[&self.current])
    }

    /// A configured key by its id as 8 bytes.
    pub(crate) fn key_by_id(&self, id: &[u8; 8]) -> Option<&[u8; 32]> {
        self.raw.get(&hex::encode(id))
    }

    fn aad(room: i64, seq: u64) -> String {
        format!("confab-body:{room}:{seq}")
    }

    /// `(key id, base64 of nonce ‖ ciphertext)`.
    pub fn seal(&self, room: i64, seq: u64, body: &str) -> Result<(String, String)> {
        let cipher = &self.keys[&self.current];
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = Self::aad(room, seq);
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: body.as_bytes(), aad: aad.as_bytes() })
            .map_err(|_| Error::Invalid("encryption failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok((self.current.clone(), STANDARD.encode(out)))
    }

    pub fn open(&self, key: &str, room: i64, seq: u64, stored: &str) -> Result<String> {
        let cipher = self.keys.get(key).ok_or_else(|| Error::Invalid(format!("no key with id {key} is configured")))?;
        let raw = STANDARD.decode(stored).map_err(|_| Error::Invalid("a stored body is not base64".into()))?;
        if raw.len() < 12 {
            return Err(Error::Invalid("a stored body is too short".into()));
        }
        let aad = Self::aad(room, seq);
        let plain = cipher
            .decrypt(Nonce::from_slice(&raw[..12]), Payload { msg: &raw[12..], aad: aad.as_bytes() })
            .map_err(|_| Error::Invalid(format!("body of room {room} seq {seq} failed authentication")))?;
        String::from_utf8(plain).map_err(|_| Error::Invalid("a decrypted body is not UTF-8".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_rotate_and_refuse_tampering() {
        let (k1, k2) = ([1u8; 32], [2u8; 32]);
        let old = Cipher::new(k1, &[]);
        let (id1, sealed) = old.seal(5, 9, "secret text").unwrap();
        assert!(!sealed.contains("secret"));
        let rotated = Cipher::new(k2, &[k1]);
        assert_eq!(rotated.open(&id1, 5, 9, &sealed).unwrap(), "secret text");
        let (id2, _) = rotated.seal(5, 10, "new").unwrap();
        assert_ne!(id1, id2);
        assert!(rotated.open(&id1, 5, 10, &sealed).is_err(), "moved to another row");
        assert!(Cipher::new(k2, &[]).open(&id1, 5, 9, &sealed).is_err(), "old key gone");
        assert_eq!(Cipher::parse_key(&"ab".repeat(32)).unwrap(), [0xab; 32]);
        assert!(Cipher::parse_key("short").is_err());
    }
}
