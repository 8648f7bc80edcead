//! Access tokens: short-lived, signed with HMAC-SHA256 under the node's auth secret.
//!
//! Format: `v1.<user id>.<family id>.<expiry, unix seconds>.<signature, base64url>`. The signature
//! covers everything before it. A token is good until its expiry *and* while its login family is
//! not revoked (logout, password change, refresh-token reuse), which the extractor checks in storage.
//! Every node of a cluster must share the secret (`--auth-secret-file`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use confab_schemas::UserId;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What a valid access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub user: UserId,
    pub family: String,
    /// Unix seconds.
    pub expires: i64,
}

/// Signs and checks access tokens.
#[derive(Clone)]
pub struct TokenKey {
    secret: Vec<u8>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    pub fn new(secret: Vec<u8>) -> TokenKey {
        TokenKey { secret }
    }

    /// A key of 32 random bytes (tokens it signs die with the process).
    pub fn random() -> TokenKey {
        let mut secret = vec![0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
        TokenKey { secret }
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.secret).expect("HMAC takes keys of any length")
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let payload = format!("v1.{}.{}.{}", claims.user.0, claims.family, claims.expires);
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{payload}.{sig}")
    }

    /// The claims of a well-signed, unexpired token (`now` in unix seconds).
    pub fn verify(&self, token: &str, now: i64) -> Option<Claims> {
        if token.len() > 512 {
            return None;
        }
        let (payload, sig) = token.rsplit_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&sig).ok()?;
        let mut parts = payload.split('.');
        if parts.next()? != "v1" {
            return None;
        }
        let user = UserId(parts.next()?.parse().ok()?);
        let family = parts.next()?.to_owned();
        let expires: i64 = parts.next()?.parse().ok()?;
        if parts.next().is_some() || expires <= now {
            return None;
        }
        Some(Claims { user, family, expires })
    }
}

/// Unix seconds now.
pub fn now_secs() -> i64 {
    confab_schemas::now_ms() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_tokens_verify_and_forgeries_do_not() {
        let key = TokenKey::new(b"0123456789abcdef0123456789abcdef".to_vec());
        let claims = Claims { user: UserId(7), family: "fam".into(), expires: 2_000 };
        let token = key.sign(&claims);
        assert_eq!(key.verify(&token, 1_000), Some(claims.clone()));
        assert_eq!(key.verify(&token, 2_000), None, "expired");
        let forged = token.replacen("v1.7.", "v1.8.", 1);
        assert_eq!(key.verify(&forged, 1_000), None, "another user");
        let other = TokenKey::new(b"another secret of enough length!".to_vec());
        assert_eq!(other.verify(&token, 1_000), None, "another key");
        assert_eq!(key.verify("v1.7.fam.2000", 1_000), None, "unsigned");
        assert_eq!(key.verify("garbage", 1_000), None);
    }
}
