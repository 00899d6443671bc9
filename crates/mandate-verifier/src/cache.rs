//! What a verifier remembers between calls, all bounded and all safe to
//! share: verified tokens by the hash of their text, and each token's claims
//! and cost shape by its digest.
//!
//! Nothing here can turn a deny into an allow: entries are made only after
//! signatures verified, are pure functions of the token's bytes and the
//! verifier's fixed root keys, and every per-call check (expiry, revocation,
//! proof of possession, Datalog) still runs on every call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mandate_core::{Claims, Mandate, Request};

use crate::complexity::{FactCounts, Shape};

/// What the verifier keeps per token: its claims and chain, and its shape.
#[derive(Debug)]
pub(crate) struct TokenInfo {
    pub claims: Claims,
    shape: Result<Shape, String>,
}

impl TokenInfo {
    /// Checks the token's queries against the budget for `request`.
    pub(crate) fn vet(
        &self,
        request: &Request,
        policy: &FactCounts,
        max_facts: u64,
    ) -> Result<(), String> {
        match &self.shape {
            Ok(shape) => shape.check(request, policy, max_facts),
            Err(reason) => Err(reason.clone()),
        }
    }
}

/// Token information by token digest (a hash of every block's signature,
/// [`Mandate::digest_hex`]), so a token used for many calls is read once.
/// Not by token id: the last block's signature alone does not identify a
/// token (two tokens can end in the same block). Entries are made only for
/// tokens whose signatures verified. Bounded: cleared when full.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    tokens: Mutex<HashMap<String, Arc<TokenInfo>>>,
}

const CACHE_CAPACITY: usize = 10_000;

impl TokenCache {
    pub(crate) fn get(&self, digest: &str, mandate: &Mandate) -> Arc<TokenInfo> {
        let lock = || self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(info) = lock().get(digest) {
            return Arc::clone(info);
        }
        let (claims, blocks) = mandate.read();
        let info = Arc::new(TokenInfo {
            claims,
            shape: Shape::read(&blocks),
        });
        let mut tokens = lock();
        if tokens.len() >= CACHE_CAPACITY {
            tokens.clear();
        }
        tokens.insert(digest.to_string(), Arc::clone(&info));
        info
    }
}

/// Verified tokens by the SHA-256 of their text, so a token presented again
/// skips signature verification (the costliest step: two Ed25519 checks per
/// signed hop). Sound because verification is a pure function of the text
/// and this verifier's fixed root keys; expiry, revocation, proof of
/// possession and the Datalog checks still run on every call. Bounded:
/// cleared when full.
#[derive(Debug, Default)]
pub(crate) struct VerifiedCache {
    tokens: Mutex<HashMap<[u8; 32], Arc<Mandate>>>,
}

const VERIFIED_CAPACITY: usize = 4_096;

impl VerifiedCache {
    pub(crate) fn get_or_verify(
        &self,
        text: &str,
        verify: impl FnOnce(&str) -> Result<Mandate, crate::Error>,
    ) -> Result<Arc<Mandate>, crate::Error> {
        use sha2::Digest as _;
        let key: [u8; 32] = sha2::Sha256::digest(text.trim().as_bytes()).into();
        let lock = || self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mandate) = lock().get(&key) {
            return Ok(Arc::clone(mandate));
        }
        let mandate = Arc::new(verify(text)?);
        let mut tokens = lock();
        if tokens.len() >= VERIFIED_CAPACITY {
            tokens.clear();
        }
        tokens.insert(key, Arc::clone(&mandate));
        Ok(mandate)
    }
}
