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
use std::sync::{Arc, Mutex};

use mandate_core::{Claims, Mandate, Request};

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
}

/// The checks of a token's blocks as escaped Datalog, read only when a
/// denial quotes one (deciding prints nothing), by token digest. Bounded in
/// bytes as well as entries: the text is what a holder appending blocks
/// chooses.
#[derive(Debug)]
pub(crate) struct CheckTexts(Bounded<String, Vec<Vec<String>>>);

/// The most bytes of check text kept.
const CHECK_TEXT_BYTES: usize = 16 * 1024 * 1024;

impl Default for CheckTexts {
    fn default() -> Self {
        CheckTexts(Bounded::new(10_000, CHECK_TEXT_BYTES))
    }
}

impl CheckTexts {
    /// The checks of `mandate` (digest `digest`), block by block.
    pub(crate) fn get(&self, digest: &str, mandate: &Mandate) -> Arc<Vec<Vec<String>>> {
        let made = self.0.get_or_try_insert(digest.to_string(), || {
            let checks: Vec<Vec<String>> =
                mandate.read_text().into_iter().map(|b| b.checks).collect();
            let bytes = checks.iter().flatten().map(|c| c.len() + 24).sum();
            Ok::<_, std::convert::Infallible>((checks, bytes))
        });
        match made {
            Ok(checks) => checks,
            Err(never) => match never {},
        }
    }
}

/// Check `check` of block `block` of `checks` ([`CheckTexts::get`]).
pub(crate) fn check_text(checks: &[Vec<String>], block: u32, check: u32) -> Option<&str> {
    checks
        .get(usize::try_from(block).ok()?)?
        .get(usize::try_from(check).ok()?)
        .map(String::as_str)
}

impl TokenInfo {
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
            Shape::read(&mandate.read_text())
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

/// A map that is cleared when it reaches its capacity, in entries or in
/// bytes: what a cache of input-derived entries needs to stay bounded
/// without bookkeeping.
#[derive(Debug)]
struct Bounded<K, V> {
    capacity: usize,
    /// The most bytes the entries may weigh, as their makers estimate them.
    budget: usize,
    map: Mutex<Entries<K, V>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug)]
struct Entries<K, V> {
    map: HashMap<K, Arc<V>>,
    bytes: usize,
}

impl<K: std::hash::Hash + Eq, V> Bounded<K, V> {
    fn new(capacity: usize, budget: usize) -> Self {
        Bounded {
            capacity,
            budget,
            map: Mutex::new(Entries {
                map: HashMap::new(),
                bytes: 0,
            }),
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

    /// The entry for `key`, made with `make` (outside the lock) if absent;
    /// `make` also says what the new entry weighs in bytes.
    fn get_or_try_insert<E>(
        &self,
        key: K,
        make: impl FnOnce() -> Result<(V, usize), E>,
    ) -> Result<Arc<V>, E> {
        // A poisoned lock only means another thread panicked between two
        // consistent states of the map; keep using it.
        let lock = || self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(value) = lock().map.get(&key) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Arc::clone(value));
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let (value, bytes) = make()?;
        let value = Arc::new(value);
        let mut entries = lock();
        if entries.map.len() >= self.capacity || entries.bytes.saturating_add(bytes) > self.budget {
            entries.map.clear();
            entries.bytes = 0;
        }
        if entries.map.insert(key, Arc::clone(&value)).is_none() {
            entries.bytes = entries.bytes.saturating_add(bytes);
        }
        Ok(value)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).map.len()
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
        TokenCache(Bounded::new(10_000, usize::MAX))
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
            let info = TokenInfo {
                holder_key,
                claims,
                shape: Shape::read(&blocks),
            };
            // Weighed by count only: claims come from the signed authority
            // block, and the shape is a few counts whatever the token holds.
            Ok::<_, std::convert::Infallible>((info, 0))
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
///
/// Bounded in bytes too: anyone holding a token can append unsigned blocks
/// offline and present as many distinct, valid tokens as they like, each
/// up to the longest accepted; a parsed token takes about
/// [`PARSED_PER_TEXT_BYTE`] times its text in memory.
#[derive(Debug)]
pub(crate) struct VerifiedCache(Bounded<[u8; 32], Verified>);

/// Memory a verified token takes per byte of its text, measured (a 60 KB
/// token held about 235 KB), rounded up.
const PARSED_PER_TEXT_BYTE: usize = 4;
/// The most memory the verified tokens may take: 4,096 tokens of 4 KiB
/// (four signed hops are about 2.3 KB), or 256 of the longest accepted.
const VERIFIED_BYTES: usize = 64 * 1024 * 1024;

impl Default for VerifiedCache {
    fn default() -> Self {
        VerifiedCache(Bounded::new(4_096, VERIFIED_BYTES))
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
            let bytes = text.len().saturating_mul(PARSED_PER_TEXT_BYTE);
            Ok((Verified { mandate, ids }, bytes))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // reason: a test fails loudly.

    use super::*;

    #[test]
    fn a_cache_is_cleared_at_its_count_or_its_bytes_whichever_comes_first() {
        let cache: Bounded<u32, u32> = Bounded::new(3, 100);
        for key in 0..3 {
            cache
                .get_or_try_insert(key, || Ok::<_, ()>((key, 10)))
                .unwrap();
        }
        assert_eq!(cache.len(), 3);
        // The count is reached: cleared, then the new entry.
        cache.get_or_try_insert(3, || Ok::<_, ()>((3, 10))).unwrap();
        assert_eq!(cache.len(), 1);
        // 10 + 60 fits; 31 more would pass 100 bytes: cleared first.
        cache.get_or_try_insert(4, || Ok::<_, ()>((4, 60))).unwrap();
        assert_eq!(cache.len(), 2);
        cache.get_or_try_insert(5, || Ok::<_, ()>((5, 31))).unwrap();
        assert_eq!(cache.len(), 1);
        // A hit weighs nothing more.
        cache.get_or_try_insert(5, || Ok::<_, ()>((0, 30))).unwrap();
        assert_eq!(
            *cache.get_or_try_insert(5, || Ok::<_, ()>((0, 30))).unwrap(),
            5
        );
        assert_eq!(cache.counts(), CacheCounts { hits: 2, misses: 6 });
    }
}
