//! Identity tokens handed to agents: every subject token a token exchange
//! verified. An approval is a person's own say; an identity token the
//! person gave an agent to exchange is in the agent's hands, so it never
//! approves (nor lists) requests for more rights.
//!
//! Kept in memory until each token expires (with the clock skew), at most
//! [`MAX_HANDED`]: when that many unexpired tokens were exchanged, further
//! exchanges are refused as temporarily unavailable rather than forgetting
//! one. Only verified tokens are remembered, so only real logins fill it.
//! Tokens are known by what their signature covers, so a signature rewritten
//! into another valid one is the same token. Each issuer replica (and each
//! run of it) remembers the tokens exchanged with it; an approval also needs
//! a sign-in from a later second than the request (see
//! [`crate::requests::Negotiator::decide`]), which no token the agent held
//! when it asked can show, on any replica.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::Digest as _;

use crate::oauth::{ErrorCode, Refusal};
use crate::remembered::Remembered;

/// The most unexpired exchanged identity tokens remembered.
pub const MAX_HANDED: usize = 100_000;

/// The exchanged identity tokens of one issuer, by SHA-256.
#[derive(Debug)]
pub(crate) struct HandedTokens {
    remembered: Remembered<[u8; 32]>,
}

impl Default for HandedTokens {
    fn default() -> HandedTokens {
        HandedTokens {
            remembered: Remembered::new(MAX_HANDED),
        }
    }
}

impl HandedTokens {
    /// Remembers `token` (verified, expiring at `expires`) as handed to an
    /// agent, until `expires` plus `skew`.
    ///
    /// # Errors
    /// `temporarily_unavailable` when [`MAX_HANDED`] unexpired tokens are
    /// remembered already.
    pub(crate) fn remember(
        &self,
        token: &str,
        expires: SystemTime,
        skew: Duration,
        now: SystemTime,
    ) -> Result<(), Refusal> {
        let until = secs(expires).saturating_add(skew.as_secs());
        self.remembered
            .keep(digest(token), until, secs(now))
            .map_err(|_| {
                Refusal::new(
                    ErrorCode::TemporarilyUnavailable,
                    "too many recent exchanges; retry shortly",
                )
            })
    }

    /// Whether `token` was exchanged and has not expired since.
    pub(crate) fn contains(&self, token: &str, now: SystemTime) -> bool {
        self.remembered.contains(&digest(token), secs(now))
    }
}

/// The SHA-256 of what the token's signature covers (`header.payload`), not
/// of the whole token: some signatures can be rewritten into another that
/// still verifies (ECDSA's `s` and `n - s`), which would make the same
/// token look new.
fn digest(token: &str) -> [u8; 32] {
    let token = token.trim();
    let signed = token.rsplit_once('.').map_or(token, |(signed, _)| signed);
    sha2::Sha256::digest(signed.as_bytes()).into()
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_token_is_remembered_until_it_expires_and_others_are_not() {
        let handed = HandedTokens::default();
        let now = SystemTime::now();
        let skew = Duration::from_secs(30);
        handed
            .remember("a.b.c", now + Duration::from_secs(60), skew, now)
            .unwrap();
        assert!(handed.contains("a.b.c", now));
        assert!(handed.contains(" a.b.c\n", now + Duration::from_secs(89)));
        assert!(!handed.contains("a.b.c", now + Duration::from_secs(91)));
        // Another signature over the same header and payload is the same token.
        assert!(handed.contains("a.b.other-signature", now));
        assert!(!handed.contains("a.d.c", now));
    }
}
