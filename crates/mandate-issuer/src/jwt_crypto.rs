//! RSA signature checks of identity tokens through `ring`.
//!
//! `jsonwebtoken`'s pure-Rust backend checks an RS256 signature with
//! `num-bigint-dig`, about 2.4 million instructions for a 2048-bit key:
//! more than half of a whole token exchange. `ring` (already linked for
//! TLS) does the same check in a small fraction of that. [`install`] makes a
//! `jsonwebtoken` crypto provider that is the pure-Rust one except for RSA
//! verification (RS256/384/512, PS256/384/512) with a key given by its
//! components (as in a JWKS) of 2048 to 8192 bits and an odd public exponent
//! below 2^32, which goes to `ring`; any other key keeps the pure-Rust check,
//! so no token is judged differently, only faster.
//!
//! The provider is process-wide and can be set once, before the first JWT
//! is signed or checked: [`IdentityProviders::new`](crate::idp::IdentityProviders::new)
//! calls [`install`]. If something else chose the provider first, tokens are
//! still checked, by that provider.

use std::sync::LazyLock;

use jsonwebtoken::crypto::{rust_crypto, CryptoProvider, JwtVerifier};
use jsonwebtoken::signature::{self, Verifier};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};
use ring::signature::{self as ring_sig, RsaPublicKeyComponents};

static PROVIDER: LazyLock<CryptoProvider> = LazyLock::new(|| CryptoProvider {
    verifier_factory: new_verifier,
    ..rust_crypto::DEFAULT_PROVIDER.clone()
});

/// Makes RSA checks of identity tokens go through `ring` for this process.
/// Returns whether this provider is the one in use (false: another was
/// chosen first; tokens are still checked, only slower).
pub fn install() -> bool {
    let ours: &'static CryptoProvider = &PROVIDER;
    match ours.install_default() {
        Ok(()) => true,
        Err(current) => std::ptr::eq(current, ours),
    }
}

fn new_verifier(
    algorithm: &Algorithm,
    key: &DecodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    let params: &'static ring_sig::RsaParameters = match algorithm {
        Algorithm::RS256 => &ring_sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &ring_sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &ring_sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &ring_sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &ring_sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &ring_sig::RSA_PSS_2048_8192_SHA512,
        _ => return (rust_crypto::DEFAULT_PROVIDER.verifier_factory)(algorithm, key),
    };
    if let DecodingKeyKind::RsaModulusExponent { n, e } = key.kind() {
        let (n, e) = (strip_zeros(n), strip_zeros(e));
        if ring_takes(n, e) {
            return Ok(Box::new(RingRsaVerifier {
                algorithm: *algorithm,
                params,
                n: n.to_vec(),
                e: e.to_vec(),
            }));
        }
    }
    (rust_crypto::DEFAULT_PROVIDER.verifier_factory)(algorithm, key)
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// Whether `ring` checks with this key exactly as the pure-Rust backend
/// does: a modulus of 2048 to 8192 bits, an odd exponent from 3 to 2^32 - 1
/// (both without leading zeros).
fn ring_takes(n: &[u8], e: &[u8]) -> bool {
    let modulus = match n.first() {
        Some(first) => (n.len() == 256 && first & 0x80 != 0) || (257..=1024).contains(&n.len()),
        None => false,
    };
    let exponent = match (e.len(), e.last()) {
        (1, Some(last)) => *last >= 3 && last & 1 == 1,
        (2..=4, Some(last)) => last & 1 == 1,
        _ => false,
    };
    modulus && exponent
}

struct RingRsaVerifier {
    algorithm: Algorithm,
    params: &'static ring_sig::RsaParameters,
    n: Vec<u8>,
    e: Vec<u8>,
}

impl Verifier<Vec<u8>> for RingRsaVerifier {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> Result<(), signature::Error> {
        RsaPublicKeyComponents {
            n: &self.n,
            e: &self.e,
        }
        .verify(self.params, msg, sig)
        .map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for RingRsaVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{EncodingKey, Header, Validation};

    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/fixtures/idp")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn ring_checks_rsa_signatures_with_the_same_verdicts() {
        let set: JwkSet = serde_json::from_slice(&fixture("jwks.json")).unwrap();
        let key = DecodingKey::from_jwk(set.find("rsa-1").unwrap()).unwrap();
        // The fixture's key goes to ring.
        let DecodingKeyKind::RsaModulusExponent { n, e } = key.kind() else {
            panic!("components expected");
        };
        assert!(ring_takes(strip_zeros(n), strip_zeros(e)));

        let encoding = EncodingKey::from_rsa_pem(&fixture("rsa.pem")).unwrap();
        let claims = serde_json::json!({"sub": "alice", "exp": 4_000_000_000u64});
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &encoding).unwrap();
        // `new_verifier` directly: which provider the process chose depends
        // on which test signed or checked a JWT first.
        let verifier = new_verifier(&Algorithm::RS256, &key).unwrap();
        let check = |token: &str| {
            let (message, signature) = token.rsplit_once('.').unwrap();
            let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
            verifier.verify(message.as_bytes(), &signature).is_ok()
        };
        assert!(check(&token));

        // A changed payload or signature is refused.
        let (head, rest) = token.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let other = jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &serde_json::json!({"sub": "mallory", "exp": 4_000_000_000u64}),
            &encoding,
        )
        .unwrap();
        let other_payload = other.split('.').nth(1).unwrap();
        assert!(!check(&format!("{head}.{other_payload}.{signature}")));
        let (message, signature) = token.rsplit_once('.').unwrap();
        let mut flipped = URL_SAFE_NO_PAD.decode(signature).unwrap();
        flipped[100] ^= 1;
        assert!(!check(&format!(
            "{message}.{}",
            URL_SAFE_NO_PAD.encode(flipped)
        )));

        // Through `decode`, whatever provider the process uses.
        install();
        let validation = Validation::new(Algorithm::RS256);
        let decoded = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation);
        assert_eq!(decoded.unwrap().claims["sub"], "alice");
    }

    #[test]
    fn keys_ring_would_judge_differently_stay_with_the_pure_rust_check() {
        let big = |len: usize| {
            let mut n = vec![0x80u8];
            n.resize(len, 1);
            n
        };
        let f4 = [1u8, 0, 1];
        assert!(ring_takes(&big(256), &f4));
        assert!(ring_takes(&big(1024), &f4));
        // Under 2048 bits, over 8192 bits.
        assert!(!ring_takes(&big(128), &f4));
        assert!(!ring_takes(&[0x7f; 256], &f4));
        assert!(!ring_takes(&big(1025), &f4));
        // Even, too small or too large exponents.
        assert!(!ring_takes(&big(256), &[1, 0, 0]));
        assert!(!ring_takes(&big(256), &[1]));
        assert!(!ring_takes(&big(256), &[1, 0, 0, 0, 1]));
        assert!(!ring_takes(&[], &f4));
    }
}
