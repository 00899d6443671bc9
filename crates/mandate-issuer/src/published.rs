//! The published root key set: the document `GET /.well-known/mandate-keys`
//! answers and verifiers following `--root-keys-url` read (docs/keys.md).
//!
//! ```json
//! {"keys": [{"kid": 2, "alg": "Ed25519", "public_key": "ed25519/…",
//!            "not_before": "2026-12-01T13:00:00Z"},
//!           {"kid": 1, "alg": "Ed25519", "public_key": "ed25519/…",
//!            "not_before": "2026-11-01T09:00:00Z", "not_after": "2026-12-02T13:00:00Z"}]}
//! ```
//!
//! Only public keys appear here. A reader bounds what it accepts (bytes and
//! keys) before it trusts anything, and refuses the whole document when one
//! key is unreadable or an id repeats: a verifier then keeps its last good
//! set instead of trusting half of a garbled one.

use std::collections::BTreeSet;
use std::time::SystemTime;

use mandate_core::{KeySet, Validity};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The largest document a verifier reads.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// The most keys a document may hold.
pub const MAX_KEYS: usize = 64;

/// The only algorithm: Ed25519, as every Mandate root key.
pub const ALG: &str = "Ed25519";

/// The media type of the document.
pub const CONTENT_TYPE: &str = "application/json";

/// The key set document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedKeys {
    /// Every key a verifier should trust now, newest first.
    pub keys: Vec<PublishedKey>,
}

/// One published key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedKey {
    /// The key id mandates signed by it carry (absent for a root written
    /// without ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<u32>,
    /// Always `Ed25519`.
    pub alg: String,
    /// `ed25519/<64 hex digits>`.
    pub public_key: String,
    /// Trusted from (RFC 3339); absent: since always.
    #[serde(
        with = "humantime_serde",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub not_before: Option<SystemTime>,
    /// Trusted until (RFC 3339); absent: until a later document says
    /// otherwise.
    #[serde(
        with = "humantime_serde",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub not_after: Option<SystemTime>,
}

/// Why a document cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishedKeysError {
    /// Larger than [`MAX_DOCUMENT_BYTES`].
    #[error("the key set is larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge,
    /// More than [`MAX_KEYS`] keys.
    #[error("the key set holds more than {MAX_KEYS} keys")]
    TooManyKeys,
    /// Not the JSON shape above.
    #[error("not a Mandate key set: {0}")]
    Malformed(String),
    /// A key that is not an Ed25519 public key, or a repeated id.
    #[error("key {index} of the key set: {reason}")]
    BadKey {
        /// Its position in `keys`.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

impl PublishedKeys {
    /// The document for `set` (newest key id first).
    pub fn from_key_set(set: &KeySet) -> PublishedKeys {
        let mut keys: Vec<PublishedKey> = set
            .iter()
            .map(|(kid, key, window)| PublishedKey {
                kid,
                alg: ALG.to_owned(),
                public_key: key.to_string(),
                not_before: window.not_before,
                not_after: window.not_after,
            })
            .collect();
        keys.reverse();
        PublishedKeys { keys }
    }

    /// The document as served, and its entity tag (a hash of those bytes).
    ///
    /// # Errors
    /// Serialisation failing (it does not, for this shape).
    pub fn to_bytes_with_etag(&self) -> Result<(Vec<u8>, String), serde_json::Error> {
        let bytes = serde_json::to_vec(self)?;
        let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&bytes))[..32]);
        Ok((bytes, etag))
    }

    /// Reads a document, within the bounds above.
    ///
    /// # Errors
    /// [`PublishedKeysError`].
    pub fn parse(bytes: &[u8]) -> Result<PublishedKeys, PublishedKeysError> {
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(PublishedKeysError::TooLarge);
        }
        let document: PublishedKeys = serde_json::from_slice(bytes).map_err(|e| {
            // Only the position: the message may quote the document.
            PublishedKeysError::Malformed(format!(
                "error at line {}, column {}",
                e.line(),
                e.column()
            ))
        })?;
        if document.keys.len() > MAX_KEYS {
            return Err(PublishedKeysError::TooManyKeys);
        }
        Ok(document)
    }

    /// The keys to trust, each within its window.
    ///
    /// # Errors
    /// [`PublishedKeysError::BadKey`] for an unreadable key, another
    /// algorithm or a repeated id: the whole document is refused.
    pub fn to_key_set(&self) -> Result<KeySet, PublishedKeysError> {
        let mut set = KeySet::new();
        let mut ids = BTreeSet::new();
        for (index, key) in self.keys.iter().enumerate() {
            let bad = |reason: String| PublishedKeysError::BadKey { index, reason };
            if key.alg != ALG {
                return Err(bad(format!("algorithm must be {ALG}")));
            }
            if !ids.insert(key.kid) {
                return Err(bad("its key id is listed twice".into()));
            }
            let public = key
                .public_key
                .parse::<mandate_core::PublicKey>()
                .map_err(|e| bad(e.to_string()))?;
            if key.not_before.is_none() && key.not_after.is_none() {
                set.insert(key.kid, public);
            } else {
                set.insert_valid(
                    key.kid,
                    public,
                    Validity {
                        not_before: key.not_before,
                        not_after: key.not_after,
                    },
                );
            }
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn a_published_set_round_trips_with_its_windows() {
        let t = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut set = KeySet::new();
        let window = Validity {
            not_before: Some(t),
            not_after: Some(t + Duration::from_secs(60)),
        };
        set.insert_valid(
            Some(1),
            mandate_core::SecretKey::generate().public(),
            window,
        );
        set.insert(Some(2), mandate_core::SecretKey::generate().public());
        let document = PublishedKeys::from_key_set(&set);
        assert_eq!(document.keys[0].kid, Some(2));
        let (bytes, etag) = document.to_bytes_with_etag().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("\"alg\":\"Ed25519\""), "{text}");
        assert!(text.contains("2027-01-15T08:00:00Z"), "{text}");
        assert_eq!(etag.len(), 34);
        let back = PublishedKeys::parse(&bytes).unwrap().to_key_set().unwrap();
        assert_eq!(back, set);
    }

    #[test]
    fn oversized_crowded_or_garbled_documents_are_refused_whole() {
        assert_eq!(
            PublishedKeys::parse(&vec![b' '; MAX_DOCUMENT_BYTES + 1]),
            Err(PublishedKeysError::TooLarge)
        );
        let key = mandate_core::SecretKey::generate().public().to_string();
        let many: Vec<String> = (0..=MAX_KEYS)
            .map(|i| format!(r#"{{"kid":{i},"alg":"Ed25519","public_key":"{key}"}}"#))
            .collect();
        let text = format!(r#"{{"keys":[{}]}}"#, many.join(","));
        assert_eq!(
            PublishedKeys::parse(text.as_bytes()),
            Err(PublishedKeysError::TooManyKeys)
        );
        let twice = format!(
            r#"{{"keys":[{{"kid":1,"alg":"Ed25519","public_key":"{key}"}},{{"kid":1,"alg":"Ed25519","public_key":"{key}"}}]}}"#
        );
        assert!(matches!(
            PublishedKeys::parse(twice.as_bytes()).unwrap().to_key_set(),
            Err(PublishedKeysError::BadKey { index: 1, .. })
        ));
        let other = format!(r#"{{"keys":[{{"kid":1,"alg":"RS256","public_key":"{key}"}}]}}"#);
        assert!(PublishedKeys::parse(other.as_bytes())
            .unwrap()
            .to_key_set()
            .is_err());
    }
}
