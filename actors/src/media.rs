//! Signed media URLs: `/media/<id>?exp=<unix s>&sig=<hex>` (a thumbnail: `/media/<id>/thumb?…`).
//!
//! The signature is an HMAC-SHA256, truncated to 128 bits, over the upload id, the variant (file
//! or thumbnail) and the expiry, under a key derived from the node's auth secret (so every node
//! of a cluster, which shares that secret, signs and verifies the same URLs, and a media URL can
//! never pass for an access token). A URL is only ever made for someone who may read the message
//! that carries the file: the frames and history entries of a room go to its members only.
//! Expiries are rounded up to a step (a tenth of the lifetime, at most a minute), so replays of
//! one message within a step carry the same URL and the browser's cache serves it again.

use confab_schemas::MediaUrls;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the HMAC kept in a URL.
const SIG_BYTES: usize = 16;

/// Signs and checks media URLs.
#[derive(Clone)]
pub struct MediaSigner {
    key: [u8; 32],
    ttl: Duration,
}

impl std::fmt::Debug for MediaSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MediaSigner(ttl {:?})", self.ttl)
    }
}

impl Default for MediaSigner {
    /// A random key (URLs die with the process) and a 30-minute lifetime.
    fn default() -> MediaSigner {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
        MediaSigner::new(&secret, Duration::from_secs(30 * 60))
    }
}

impl MediaSigner {
    /// A signer under a key derived from `secret` (the node's auth secret), whose URLs live `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> MediaSigner {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(b"confab media urls v1");
        MediaSigner { key: mac.finalize().into_bytes().into(), ttl: ttl.max(Duration::from_secs(1)) }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn sig(&self, id: &str, thumb: bool, exp: i64) -> [u8; SIG_BYTES] {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(format!("{id}\n{}\n{exp}", if thumb { "thumb" } else { "file" }).as_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; SIG_BYTES];
        out.copy_from_slice(&full[..SIG_BYTES]);
        out
    }

    /// When a URL signed at `now` (unix seconds) expires.
    fn expiry(&self, now: i64) -> i64 {
        let ttl = self.ttl.as_secs().max(1) as i64;
        let step = (ttl / 10).clamp(1, 60);
        (now + ttl + step - 1) / step * step
    }

    /// The signed path and query of the file (or thumbnail) `id`, valid until `exp`.
    pub fn url_until(&self, id: &str, thumb: bool, exp: i64) -> String {
        let sig = hex::encode(self.sig(id, thumb, exp));
        let variant = if thumb { "/thumb" } else { "" };
        format!("/media/{id}{variant}?exp={exp}&sig={sig}")
    }

    /// Whether `sig` (hex) signs (`id`, variant, `exp`) and `exp` is not past `now` (unix s).
    pub fn verify(&self, id: &str, thumb: bool, exp: i64, sig: &str, now: i64) -> bool {
        let Ok(given) = hex::decode(sig) else { return false };
        if given.len() != SIG_BYTES || exp < now {
            return false;
        }
        let want = self.sig(id, thumb, exp);
        given.iter().zip(want.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// Unix seconds now.
pub fn now_secs() -> i64 {
    confab_schemas::now_ms() / 1000
}

impl MediaUrls for MediaSigner {
    fn url(&self, id: &str, thumb: bool) -> String {
        self.url_until(id, thumb, self.expiry(now_secs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_refuses_what_it_did_not_sign() {
        let s = MediaSigner::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(1800));
        let id = "0123456789abcdef0123456789abcdef";
        let other = "fedcba9876543210fedcba9876543210";
        let url = s.url(id, false);
        let q = url.split_once('?').unwrap().1;
        let exp: i64 = q.split('&').next().unwrap()[4..].parse().unwrap();
        let sig = &q.split('&').nth(1).unwrap()[4..];
        let now = now_secs();
        assert!(exp >= now + 1800 && exp <= now + 1800 + 180, "{exp} vs {now}");
        assert!(s.verify(id, false, exp, sig, now));
        assert!(!s.verify(id, true, exp, sig, now), "a file's signature is no thumbnail's");
        assert!(!s.verify(other, false, exp, sig, now), "nor another file's");
        assert!(!s.verify(id, false, exp + 1, sig, now), "nor another expiry's");
        assert!(!s.verify(id, false, exp, sig, exp + 1), "expired");
        assert!(!s.verify(id, false, exp, "zz", now));
        let another_key = MediaSigner::new(b"another secret of thirty-two byte", Duration::from_secs(1800));
        assert!(!another_key.verify(id, false, exp, sig, now));
    }
}
