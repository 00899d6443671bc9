//! What makes the log tamper-evident: every stored entry carries the hash of
//! the one before it, and writers sign heads — a sequence number and the
//! hash of the record at it — with their own Ed25519 key.
//!
//! An entry's hash is SHA-256 over a domain tag, its sequence number, the
//! previous hash and the record's exact JSON bytes, so changing, moving or
//! dropping any record breaks every later link; a tail rewritten with
//! consistent links still disagrees with the heads signed before the
//! rewrite, which only the writer's key can make. Nothing here parses a
//! record: hashes are over the bytes as stored.

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use mandate_core::{PublicKey, SecretKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The previous hash of the first record.
pub const GENESIS: Hash = [0; 32];

/// Separates these hashes from any other use of SHA-256.
const ENTRY_DOMAIN: &[u8] = b"mandate-audit entry v1\0";
/// Separates head signatures from any other use of the writer's key.
const HEAD_DOMAIN: &[u8] = b"mandate-audit head v1\0";

/// One record as stored: its sequence number, the previous record's hash
/// and the record's JSON bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// Position in the log, from 1.
    pub seq: u64,
    /// The hash of the record at `seq - 1` ([`GENESIS`] for the first).
    pub prev: Hash,
    /// The record, JSON.
    pub body: Vec<u8>,
}

impl StoredEntry {
    /// This entry's hash, which the next entry carries as `prev`.
    pub fn hash(&self) -> Hash {
        entry_hash(self.seq, &self.prev, &self.body)
    }
}

/// The hash of the entry `seq` with `prev` and `body`.
pub fn entry_hash(seq: u64, prev: &Hash, body: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(ENTRY_DOMAIN);
    hasher.update(seq.to_be_bytes());
    hasher.update(prev);
    hasher.update(body);
    hasher.finalize().into()
}

/// A head signed by a writer: "the record at `seq` has hash `hash`".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHead {
    /// The record the head covers (and, through the links, every one before).
    pub seq: u64,
    /// That record's hash, hex.
    pub hash: String,
    /// The writer's public key, `ed25519/<hex>`.
    pub writer: String,
    /// Ed25519 signature, hex.
    pub signature: String,
    /// When it was signed, RFC 3339.
    pub time: String,
}

fn head_message(log_id: &str, seq: u64, hash: &Hash) -> Vec<u8> {
    let mut message = Vec::with_capacity(HEAD_DOMAIN.len() + log_id.len() + 1 + 8 + 32);
    message.extend_from_slice(HEAD_DOMAIN);
    message.extend_from_slice(log_id.as_bytes());
    message.push(0);
    message.extend_from_slice(&seq.to_be_bytes());
    message.extend_from_slice(hash);
    message
}

/// A writer's signing key. `Debug` shows only its public half.
pub struct WriterKey {
    signing: SigningKey,
    public: PublicKey,
}

impl std::fmt::Debug for WriterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WriterKey(public: {}, secret: <redacted>)", self.public)
    }
}

impl WriterKey {
    /// The writer key of `secret`.
    ///
    /// # Errors
    /// When the key is not Ed25519.
    pub fn new(secret: &SecretKey) -> crate::Result<WriterKey> {
        let bytes = secret.key_pair().private().to_bytes();
        let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            crate::Error::Key(mandate_core::Error::InvalidKey {
                reason: "the audit writer key must be Ed25519".into(),
            })
        })?;
        Ok(WriterKey {
            signing: SigningKey::from_bytes(&bytes),
            public: secret.public(),
        })
    }

    /// A fresh key (tests, benchmarks).
    pub fn generate() -> WriterKey {
        // `SecretKey::generate` is always Ed25519, so `new` cannot fail.
        let secret = SecretKey::generate();
        let bytes = secret.key_pair().private().to_bytes();
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&bytes[..32.min(bytes.len())]);
        WriterKey {
            signing: SigningKey::from_bytes(&seed),
            public: secret.public(),
        }
    }

    /// The public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// `sha256:<16 hex>` of the public key's text: the `writer` of records.
    pub fn fingerprint(&self) -> String {
        mandate_core::fingerprint(&self.public.to_string())
    }

    /// Signs the head (`seq`, `hash`) of the log `log_id`.
    pub fn sign_head(&self, log_id: &str, seq: u64, hash: &Hash, time: String) -> SignedHead {
        let signature = self.signing.sign(&head_message(log_id, seq, hash));
        SignedHead {
            seq,
            hash: hex::encode(hash),
            writer: self.public.to_string(),
            signature: hex::encode(signature.to_bytes()),
            time,
        }
    }
}

/// Whether `head` is a valid signature of its writer over (`seq`, `hash`)
/// of the log `log_id`.
pub fn head_signature_valid(log_id: &str, head: &SignedHead) -> bool {
    let Ok(key) = head.writer.parse::<PublicKey>() else {
        return false;
    };
    let Ok(key_bytes) = <[u8; 32]>::try_from(key.to_bytes().as_slice()) else {
        return false;
    };
    let Ok(key) = VerifyingKey::from_bytes(&key_bytes) else {
        return false;
    };
    let Some(hash) = parse_hash(&head.hash) else {
        return false;
    };
    let Ok(signature) = hex::decode(&head.signature) else {
        return false;
    };
    let Ok(signature) = ed25519_dalek::Signature::from_slice(&signature) else {
        return false;
    };
    key.verify_strict(&head_message(log_id, head.seq, &hash), &signature)
        .is_ok()
}

/// A hash from 64 hex digits.
pub fn parse_hash(text: &str) -> Option<Hash> {
    let bytes = hex::decode(text).ok()?;
    bytes.try_into().ok()
}
