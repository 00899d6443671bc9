//! What a verifier remembers between calls, all bounded and all safe to
//! share: verified tokens (with the ids every call needs) by the hash of
//! their text, and each token's claims and cost shape by its digest. Each
//! cache counts its hits and misses for the operator's metrics.
//!
//! Nothing here can turn a deny into an allow: entries are made only after
//! signatures verified, are pure functions of the token's bytes and the
//! root key they verified under (which every call checks is still trusted,
//! so a retired root's cached tokens are refused), and every per-call check
//! (expiry, revocation, proof of possession, Datalog) still runs on every
//! call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use mandate_core::{BlockContents, Claims, Mandate, Request};

use crate::complexity::{FactCounts, Shape};

/// What the verifier keeps per token: its claims and chain, and its shape.
#[derive(Debug)]
pub(crate) struct TokenInfo {
    pub claims: Claims,
    /// The acting agent's key as a curve point, decompressed once per token
    /// (`None` for a bearer chain or a broken one; `Err` when the bytes are
    /// not a point, which fails every proof).
    pub holder_key: Option<Result<ed25519_dalek::VerifyingKey, ()>>,
    shape: Result<Shape, String>,
    /// The blocks with their display text, read only when a denial quotes a
    /// check or a query (deciding prints nothing).
    text: OnceLock<Vec<BlockContents>>,
}

impl TokenInfo {
    fn text(&self, mandate: &Mandate) -> &[BlockContents] {
        self.text.get_or_init(|| mandate.read_text())
    }

    /// Check `check` of block `block` as escaped Datalog, if there is one.
    pub(crate) fn check_text(&self, mandate: &Mandate, block: u32, check: u32) -> Option<&str> {
        self.text(mandate)
            .get(usize::try_from(block).ok()?)?
            .checks
            .get(usize::try_from(check).ok()?)
            .map(String::as_str)
    }

    /// Checks the token's queries against the budget for `request`.
    pub(crate) fn vet(
        &self,
        mandate: &Mandate,
        request: &Request,
        policy: &FactCounts,
        max_facts: u64,
    ) -> Result<(), String> {
        let refused = match &self.shape {
            Ok(shape) => shape.check(request, policy, max_facts),
            Err(reason) => Err(reason.clone()),
        };
        // The shape was read without text; the same judgement on the blocks
        // read with text names the query in the refusal.
        refused.map_err(|reason| {
            Shape::read(self.text(mandate))
                .and_then(|shape| shape.check(request, policy, max_facts))
                .err()
                .unwrap_or(reason)
        })
    }
}

/// How often a cache answered from memory, and how often it had to make
/// the entry (including lookups whose making failed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheCounts {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that made the entry.
    pub misses: u64,
}

/// A map that is cleared when it reaches its capacity: what a cache of
/// input-derived entries needs to stay bounded without bookkeeping.
#[derive(Debug)]
struct Bounded<K, V> {
    capacity: usize,
    map: Mutex<HashMap<K, Arc<V>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<K: std::hash::Hash + Eq, V> Bounded<K, V> {
    fn new(capacity: usize) -> Self {
        Bounded {
            capacity,
            map: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn counts(&self) -> CacheCounts {
        CacheCounts {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// The entry for `key`, made with `make` (outside the lock) if absent.
    fn get_or_try_insert<E>(
        &self,
        key: K,
        make: impl FnOnce() -> Result<V, E>,
    ) -> Result<Arc<V>, E> {
        // A poisoned lock only means another thread panicked between two
        // consistent states of the map; keep using it.
        let lock = || self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(value) = lock().get(&key) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Arc::clone(value));
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let value = Arc::new(make()?);
        let mut map = lock();
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(key, Arc::clone(&value));
        Ok(value)
    }
}

/// Token information by token digest (a hash of every block's signature,
/// [`Mandate::digest_hex`]), so a token used for many calls is read once.
/// Not by token id: the last block's signature alone does not identify a
/// token (two tokens can end in the same block). Entries are made only for
/// tokens whose signatures verified.
#[derive(Debug)]
pub(crate) struct TokenCache(Bounded<String, TokenInfo>);

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache(Bounded::new(10_000))
    }
}

impl TokenCache {
    pub(crate) fn counts(&self) -> CacheCounts {
        self.0.counts()
    }

    pub(crate) fn get(&self, digest: &str, mandate: &Mandate) -> Arc<TokenInfo> {
        let made = self.0.get_or_try_insert(digest.to_string(), || {
            let (claims, blocks) = mandate.read();
            let holder_key = claims
                .chain
                .as_ref()
                .ok()
                .and_then(|chain| chain.holder().key)
                .map(|key| key.verifying_key().map_err(|_| ()));
            Ok::<_, std::convert::Infallible>(TokenInfo {
                holder_key,
                claims,
                shape: Shape::read(&blocks),
                text: OnceLock::new(),
            })
        });
        match made {
            Ok(info) => info,
            Err(never) => match never {},
        }
    }
}

/// What identifies a verified token, read once: its revocation ids (one per
/// block), its token id (the last one, hex) and its digest (over every
/// block's signature, hex). Each call needs all three, and each read copies
/// and hashes every block's signature.
#[derive(Debug)]
pub(crate) struct TokenIds {
    pub revocation_ids: Vec<Vec<u8>>,
    pub token_id: String,
    pub digest: String,
}

impl TokenIds {
    pub(crate) fn of(mandate: &Mandate) -> TokenIds {
        TokenIds {
            revocation_ids: mandate.revocation_ids(),
            token_id: mandate.token_id_hex(),
            digest: mandate.digest_hex(),
        }
    }
}

/// A mandate whose signatures verified, with its ids.
#[derive(Debug)]
pub(crate) struct Verified {
    pub mandate: Mandate,
    pub ids: TokenIds,
}

/// Verified tokens by the SHA-256 of their text, so a token presented again
/// skips signature verification (the costliest step: two Ed25519 checks per
/// signed hop). Sound because verification is a pure function of the text
/// and this verifier's fixed root keys; expiry, revocation, proof of
/// possession and the Datalog checks still run on every call.
#[derive(Debug)]
pub(crate) struct VerifiedCache(Bounded<[u8; 32], Verified>);

impl Default for VerifiedCache {
    fn default() -> Self {
        VerifiedCache(Bounded::new(4_096))
    }
}

impl VerifiedCache {
    pub(crate) fn counts(&self) -> CacheCounts {
        self.0.counts()
    }

    pub(crate) fn get_or_verify(
        &self,
        text: &str,
        verify: impl FnOnce(&str) -> Result<Mandate, crate::Error>,
    ) -> Result<Arc<Verified>, crate::Error> {
        use sha2::Digest as _;
        let key: [u8; 32] = sha2::Sha256::digest(text.trim().as_bytes()).into();
        self.0.get_or_try_insert(key, || {
            let mandate = verify(text)?;
            let ids = TokenIds::of(&mandate);
            Ok(Verified { mandate, ids })
        })
    }
}
