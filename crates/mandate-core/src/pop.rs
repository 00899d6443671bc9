//! Proof of possession: a per-request signature by the acting agent's key.
//!
//! A proof signs the token's digest (every block's signature, see
//! [`crate::Mandate::digest_hex`]), the request's service, operation,
//! resource and attributes, a timestamp and a random nonce. A stolen token is useless
//! without the agent's secret key, and a captured proof is useless for any
//! other request, any other token, after its window, or a second time (the
//! verifier keeps the nonces it saw inside the window).
//!
//! Text form: `v1.<unix-millis>.<nonce hex>.<signature hex>`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use crate::keys::SecretKey;
use crate::request::Request;
use crate::Error;

/// Domain separation: these bytes start every signed message, so a proof
/// signature can never be mistaken for a Biscuit block signature.
const DOMAIN: &[u8] = b"mandate-pop-v1\0";

/// A proof of possession for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// When the proof was made, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// 16 random bytes, unique per proof.
    pub nonce: [u8; 16],
    signature: Vec<u8>,
}

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PopError {
    /// The proof's signature does not verify with the acting agent's key for
    /// this token and request.
    #[error("proof of possession does not verify for agent {agent}, this token and this request")]
    BadSignature {
        /// The acting agent.
        agent: String,
    },
    /// The proof was made outside the accepted window around the request time.
    #[error("proof of possession is {age_ms} ms from the request time, outside the {window_ms} ms window")]
    OutsideWindow {
        /// Distance from the request time.
        age_ms: u64,
        /// The window.
        window_ms: u64,
    },
    /// The nonce was already used inside the window.
    #[error("proof of possession replayed (nonce already seen)")]
    Replayed,
    /// The proof was made before this verifier started remembering nonces
    /// (it restarted since): it may have been used already, so it is
    /// refused; a fresh proof is accepted.
    #[error("proof of possession made before this verifier started; sign a fresh one")]
    BeforeStart,
    /// The replay cache is full; the proof cannot be judged, so it is refused.
    #[error("proof of possession refused: replay cache full")]
    CacheFull,
    /// No proof came with a request whose chain names agent keys.
    #[error("proof of possession required from agent {agent}")]
    Missing {
        /// The acting agent.
        agent: String,
    },
    /// The verifier requires proofs and the token is a bearer token.
    #[error("bearer token refused: this verifier requires proof of possession")]
    BearerRefused,
}

impl Proof {
    /// Signs a proof for `request` on the token whose digest is
    /// `token_digest` ([`crate::UnverifiedMandate::digest_hex`]), at `now`.
    pub fn sign(key: &SecretKey, token_digest: &str, request: &Request, now: SystemTime) -> Proof {
        let timestamp_ms = millis(now);
        let mut nonce = [0u8; 16];
        // Without OS randomness the nonce stays zero; the verifier then sees
        // a repeated nonce and refuses the second use, so this fails closed.
        let _ = getrandom::getrandom(&mut nonce);
        let message = message(token_digest, request, timestamp_ms, &nonce);
        let signature = signing_key(key)
            .map(|k| k.sign(&message).to_bytes().to_vec())
            .unwrap_or_default();
        Proof {
            timestamp_ms,
            nonce,
            signature,
        }
    }

    /// Verifies the signature with the acting agent's `key` and checks the
    /// timestamp against the request time. Replay is the caller's job (it
    /// needs shared state).
    ///
    /// # Errors
    /// [`PopError::BadSignature`], [`PopError::OutsideWindow`].
    pub fn verify(
        &self,
        agent: &str,
        key: &VerifyingKey,
        token_digest: &str,
        request: &Request,
        window: Duration,
    ) -> Result<(), PopError> {
        let message = message(token_digest, request, self.timestamp_ms, &self.nonce);
        let bad = || PopError::BadSignature {
            agent: agent.to_string(),
        };
        let signature = ed25519_dalek::Signature::from_slice(&self.signature).map_err(|_| bad())?;
        key.verify_strict(&message, &signature).map_err(|_| bad())?;
        let at = millis(request.time);
        let age_ms = at.abs_diff(self.timestamp_ms);
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        if age_ms > window_ms {
            return Err(PopError::OutsideWindow { age_ms, window_ms });
        }
        Ok(())
    }

    /// The text form.
    pub fn to_text(&self) -> String {
        format!(
            "v1.{}.{}.{}",
            self.timestamp_ms,
            hex::encode(self.nonce),
            hex::encode(&self.signature)
        )
    }

    /// Parses the text form.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming what is malformed.
    pub fn parse(text: &str) -> Result<Proof, Error> {
        let bad = |what: &str| Error::Invalid(format!("malformed proof of possession: {what}"));
        let text = text.trim();
        if text.len() > 512 {
            return Err(bad("too long"));
        }
        let mut parts = text.split('.');
        if parts.next() != Some("v1") {
            return Err(bad("expected `v1.<millis>.<nonce>.<signature>`"));
        }
        let timestamp_ms = parts
            .next()
            .and_then(|t| t.parse::<u64>().ok())
            .ok_or_else(|| bad("timestamp"))?;
        let nonce: [u8; 16] = parts
            .next()
            .and_then(|n| hex::decode(n).ok())
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| bad("nonce must be 32 hex digits"))?;
        let signature = parts
            .next()
            .and_then(|s| hex::decode(s).ok())
            .filter(|s| s.len() == 64)
            .ok_or_else(|| bad("signature must be 128 hex digits"))?;
        if parts.next().is_some() {
            return Err(bad("trailing fields"));
        }
        Ok(Proof {
            timestamp_ms,
            nonce,
            signature,
        })
    }
}

fn signing_key(key: &SecretKey) -> Option<SigningKey> {
    let secret = key.key_pair().private().to_bytes();
    let bytes: [u8; 32] = secret.as_slice().try_into().ok()?;
    Some(SigningKey::from_bytes(&bytes))
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The signed message: every field length-prefixed, so no two different
/// requests serialise to the same bytes.
fn message(token_digest: &str, request: &Request, timestamp_ms: u64, nonce: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(DOMAIN);
    let mut field = |bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        out.extend_from_slice(bytes);
    };
    field(token_digest.as_bytes());
    field(request.service.as_bytes());
    field(request.operation.as_bytes());
    field(request.resource.as_str().as_bytes());
    // Key and typed value are separate length-prefixed fields, so no
    // attribute can be read as another (`a="x=i:5"` is not `"a=s:x"=5`).
    let mut attrs: Vec<(&str, Vec<u8>)> = request
        .attrs
        .iter()
        .map(|(k, v)| {
            let value = match v {
                crate::AttrValue::Int(n) => [b"i".as_slice(), &n.to_be_bytes()].concat(),
                crate::AttrValue::Str(s) => [b"s".as_slice(), s.as_bytes()].concat(),
            };
            (k.as_str(), value)
        })
        .collect();
    attrs.sort();
    field(&(attrs.len() as u64).to_be_bytes());
    for (key, value) in &attrs {
        field(key.as_bytes());
        field(value);
    }
    field(&timestamp_ms.to_be_bytes());
    field(nonce);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn vk(key: &crate::PublicKey) -> VerifyingKey {
        crate::AgentKey::from(*key).verifying_key().unwrap()
    }
    use crate::ResourcePath;

    fn request(resource: &str, at: SystemTime) -> Request {
        Request::new("svc", "read", ResourcePath::parse(resource).unwrap(), at)
    }

    #[test]
    fn proof_binds_key_token_request_and_time() {
        let key = SecretKey::generate();
        let now = SystemTime::now();
        let req = request("/a", now);
        let proof = Proof::sign(&key, "abcd", &req, now);
        let window = Duration::from_secs(30);
        let parsed = Proof::parse(&proof.to_text()).unwrap();
        assert_eq!(parsed, proof);
        assert!(proof
            .verify("a", &vk(&key.public()), "abcd", &req, window)
            .is_ok());
        let other = SecretKey::generate().public();
        assert!(matches!(
            proof.verify("a", &vk(&other), "abcd", &req, window),
            Err(PopError::BadSignature { .. })
        ));
        assert!(proof
            .verify("a", &vk(&key.public()), "abce", &req, window)
            .is_err());
        assert!(proof
            .verify("a", &vk(&key.public()), "abcd", &request("/b", now), window)
            .is_err());
        let later = request("/a", now + Duration::from_secs(31));
        assert!(matches!(
            proof.verify("a", &vk(&key.public()), "abcd", &later, window),
            Err(PopError::OutsideWindow { .. })
        ));
        assert_ne!(Proof::sign(&key, "abcd", &req, now).nonce, proof.nonce);
    }

    #[test]
    fn attributes_cannot_be_read_as_others() {
        let key = SecretKey::generate();
        let now = SystemTime::now();
        let window = Duration::from_secs(30);
        let one = request("/a", now).with_attr_arg("a=x=i:5").unwrap();
        let other = request("/a", now).with_attr_arg("a=s:x=5").unwrap();
        let proof = Proof::sign(&key, "d", &one, now);
        assert!(proof
            .verify("a", &vk(&key.public()), "d", &one, window)
            .is_ok());
        assert!(proof
            .verify("a", &vk(&key.public()), "d", &other, window)
            .is_err());
        let int = request("/a", now).with_attr_arg("n=5").unwrap();
        let text = request("/a", now);
        let text = Request {
            attrs: vec![("n".into(), crate::AttrValue::Str("5".into()))],
            ..text
        };
        let proof = Proof::sign(&key, "d", &int, now);
        assert!(proof
            .verify("a", &vk(&key.public()), "d", &text, window)
            .is_err());
    }

    #[test]
    fn malformed_proofs_are_refused() {
        for bad in [
            "",
            "v2.1.00.00",
            "v1.x.00.00",
            "v1.1.0011.00",
            "v1.1.00000000000000000000000000000000.zz",
        ] {
            assert!(Proof::parse(bad).is_err(), "{bad:?}");
        }
    }
}
