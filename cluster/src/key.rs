//! The cluster credential: one or more 32-byte secrets every node of a cluster holds.
//!
//! A key file holds one key per line, `confab-cluster-key-v1:<base64url of 32 bytes>` (blank lines
//! and `#` comments allowed). The first key is the one a node uses when it speaks; every key is
//! accepted when it listens, so a key is rotated without downtime: add the new key as the second
//! line on every node, then make it the first on every node, then remove the old one.
//!
//! Nothing encrypts with the raw secret: node links and gossip each use their own key derived with
//! HMAC-SHA256 under a purpose label, so one use can never be replayed as another.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

const PREFIX: &str = "confab-cluster-key-v1:";

/// A cluster's keys, the one in use first.
#[derive(Clone)]
pub struct ClusterKey {
    keys: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterKey({} key(s), secret)", self.keys.len())
    }
}

impl ClusterKey {
    /// A new random key, from the operating system's generator.
    pub fn generate() -> ClusterKey {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        ClusterKey { keys: vec![k] }
    }

    /// Reads a key file's text.
    pub fn parse(text: &str) -> Result<ClusterKey, String> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some(b64) = line.strip_prefix(PREFIX) else {
                return Err(format!("line {}: a cluster key starts with `{PREFIX}`", n + 1));
            };
            let bytes = URL_SAFE_NO_PAD
                .decode(b64.trim_end_matches('='))
                .map_err(|_| format!("line {}: the key is not base64url", n + 1))?;
            let key: [u8; 32] = bytes.try_into().map_err(|_| format!("line {}: a cluster key is 32 bytes", n + 1))?;
            if key == [0u8; 32] {
                return Err(format!("line {}: an all-zero key is not a secret", n + 1));
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err("no cluster key in the file (make one with `confab cluster init`)".into());
        }
        Ok(ClusterKey { keys })
    }

    /// The key file's text for this key set.
    pub fn to_text(&self) -> String {
        let mut out =
            String::from("# Confab cluster key: every node of the cluster needs this file. Keep it secret.\n");
        for k in &self.keys {
            out.push_str(PREFIX);
            out.push_str(&URL_SAFE_NO_PAD.encode(k));
            out.push('\n');
        }
        out
    }

    /// How many keys are accepted.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn derive(key: &[u8; 32], purpose: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(b"confab-cluster-v1/");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Pre-shared keys for node links (Noise psk), the one in use first.
    pub fn link_psks(&self) -> Vec<[u8; 32]> {
        self.keys.iter().map(|k| Self::derive(k, "node-link")).collect()
    }

    /// AEAD keys for gossip datagrams, the one in use first.
    pub fn gossip_keys(&self) -> Vec<[u8; 32]> {
        self.keys.iter().map(|k| Self::derive(k, "gossip")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_round_trips_and_derived_keys_differ_by_purpose() {
        let k = ClusterKey::generate();
        let back = ClusterKey::parse(&k.to_text()).unwrap();
        assert_eq!(back.link_psks(), k.link_psks());
        assert_ne!(k.link_psks()[0], k.gossip_keys()[0]);
        assert_ne!(ClusterKey::generate().link_psks(), k.link_psks());
    }

    #[test]
    fn rotation_lists_keep_their_order() {
        let (a, b) = (ClusterKey::generate(), ClusterKey::generate());
        let both = ClusterKey::parse(&format!("{}\n{}", b.to_text(), a.to_text())).unwrap();
        assert_eq!(both.len(), 2);
        assert_eq!(both.link_psks()[0], b.link_psks()[0]);
        assert_eq!(both.link_psks()[1], a.link_psks()[0]);
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        for bad in ["", "# only a comment\n", "hello", "confab-cluster-key-v1:abc", "confab-cluster-key-v1:!!!!"] {
            assert!(ClusterKey::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let zero = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode([0u8; 32]));
        assert!(ClusterKey::parse(&zero).unwrap_err().contains("all-zero"));
    }
}
