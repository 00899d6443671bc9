//! The actor token: an agent's proof, at exchange time, that it holds the
//! private key of the public key the mandate will name.
//!
//! Format: a compact JWS (`typ: mandate-actor+jwt`, `alg: EdDSA`) signed
//! with the agent's Ed25519 key, whose claims are
//!
//! | claim | meaning |
//! | --- | --- |
//! | `sub` | the agent's name (canonical, see `mandate_core::name`) |
//! | `agent_key` | its public key, `ed25519/<hex>`; the signature must verify with it |
//! | `aud` | the issuer's identifier (`issuer` in its metadata) |
//! | `sth` | base64url SHA-256 of the exact `subject_token` sent with it |
//! | `iat`, `exp` | issue and expiry time, at most [`MAX_LIFETIME`] apart |
//! | `jti` | a unique id; each is accepted once while the token is valid |
//!
//! Binding `sth` means a captured actor token works with no other subject
//! token; `aud` means it works at no other issuer; `jti` means it works once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::Signer as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mandate_core::name::{self, NameKind};
use mandate_core::{PublicKey, SecretKey};
use sha2::Digest as _;

use crate::oauth::{ErrorCode, Refusal};
use crate::remembered::{Full, Remembered};

/// The JWS `typ` of an actor token.
pub const ACTOR_TYP: &str = "mandate-actor+jwt";
/// The longest validity an actor token may state.
pub const MAX_LIFETIME: Duration = Duration::from_secs(300);
/// The largest actor token accepted.
pub const MAX_ACTOR_TOKEN_LEN: usize = 2048;
/// The most unexpired `jti`s remembered; past it new exchanges are refused
/// (fail closed) until old ones expire.
pub const MAX_REMEMBERED: usize = 100_000;

#[derive(serde::Serialize, serde::Deserialize)]
struct Claims {
    sub: String,
    agent_key: String,
    aud: String,
    sth: String,
    iat: u64,
    exp: u64,
    jti: String,
}

/// The verified agent behind an actor token.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The agent's name.
    pub name: String,
    /// The key it proved to hold.
    pub key: PublicKey,
}

/// The `sth` of a subject token.
pub fn subject_token_hash(subject_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(subject_token.as_bytes()))
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Signs an actor token for `agent` holding `key`, for the issuer whose
/// identifier is `issuer_id`, bound to `subject_token`, valid 60 s from `now`.
pub fn sign(
    key: &SecretKey,
    agent: &str,
    issuer_id: &str,
    subject_token: &str,
    now: SystemTime,
) -> String {
    let mut jti = [0u8; 16];
    // Without OS randomness the jti is all zeros; the issuer then refuses its
    // second use, so this fails closed.
    let _ = getrandom::getrandom(&mut jti);
    let claims = Claims {
        sub: agent.to_owned(),
        agent_key: key.public().to_string(),
        aud: issuer_id.to_owned(),
        sth: subject_token_hash(subject_token),
        iat: secs(now),
        exp: secs(now) + 60,
        jti: hex::encode(jti),
    };
    let header = serde_json::json!({"alg": "EdDSA", "typ": ACTOR_TYP});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default())
    );
    let secret = key.key_pair().private().to_bytes();
    let bytes: [u8; 32] = secret.as_slice().try_into().unwrap_or([0u8; 32]);
    let signature = ed25519_dalek::SigningKey::from_bytes(&bytes).sign(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    )
}

/// Verifies actor tokens for one issuer and remembers their `jti`s.
#[derive(Debug)]
pub struct ActorVerifier {
    issuer_id: String,
    skew: Duration,
    seen: Remembered<String>,
}

impl ActorVerifier {
    /// A verifier accepting `aud == issuer_id`, with `skew` on times.
    pub fn new(issuer_id: impl Into<String>, skew: Duration) -> ActorVerifier {
        ActorVerifier {
            issuer_id: issuer_id.into(),
            skew,
            seen: Remembered::new(MAX_REMEMBERED),
        }
    }

    /// Verifies `token` for `subject_token` at `now`, and spends its `jti`.
    ///
    /// # Errors
    /// `invalid_request` for an oversized token, `invalid_grant` for any
    /// other defect, `temporarily_unavailable` when the replay memory is full.
    pub fn verify(
        &self,
        token: &str,
        subject_token: &str,
        now: SystemTime,
    ) -> Result<Actor, Refusal> {
        self.verify_for(token, subject_token, now, |_| Ok(()))
    }

    /// As [`ActorVerifier::verify`], spending the `jti` only once `expected`
    /// accepts the actor. The key is named by the token itself, so anyone
    /// can sign an actor token: where the agent is known beforehand (the
    /// agent a waiting task was asked for), checking it before the `jti` is
    /// remembered keeps strangers from filling the replay memory.
    ///
    /// # Errors
    /// As [`ActorVerifier::verify`], and `expected`'s refusal.
    pub fn verify_for(
        &self,
        token: &str,
        subject_token: &str,
        now: SystemTime,
        expected: impl FnOnce(&Actor) -> Result<(), Refusal>,
    ) -> Result<Actor, Refusal> {
        if token.len() > MAX_ACTOR_TOKEN_LEN {
            return Err(Refusal::request(format!(
                "actor_token is larger than {MAX_ACTOR_TOKEN_LEN} bytes"
            )));
        }
        let bad = |why: &str| Refusal::grant(format!("actor_token {why}"));
        let header = jsonwebtoken::decode_header(token).map_err(|_| bad("is not a JWS"))?;
        if header.alg != Algorithm::EdDSA || header.typ.as_deref() != Some(ACTOR_TYP) {
            return Err(bad("must be an EdDSA JWS of type mandate-actor+jwt"));
        }
        // The key is named by the token itself; the signature check below is
        // what proves possession of it.
        let claimed = jsonwebtoken::dangerous::insecure_decode::<Claims>(token)
            .map_err(|_| bad("has malformed claims"))?
            .claims;
        let key: PublicKey = claimed
            .agent_key
            .parse()
            .map_err(|_| bad("has no valid `agent_key`"))?;
        let decoding = DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(key.to_bytes()))
            .map_err(|_| bad("has no valid `agent_key`"))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        validation.set_audience(&[&self.issuer_id]);
        let claims = jsonwebtoken::decode::<Claims>(token, &decoding, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidAudience => bad("is for another issuer"),
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    bad("signature does not verify with its agent_key")
                }
                _ => bad("is malformed"),
            })?
            .claims;
        name::check(NameKind::Agent, &claims.sub)
            .map_err(|e| bad(&format!("`sub` is not a canonical agent name: {e}")))?;
        if claims.sth != subject_token_hash(subject_token) {
            return Err(bad("is bound to another subject_token"));
        }
        let now = secs(now);
        let skew = self.skew.as_secs();
        if claims.exp < claims.iat || claims.exp - claims.iat > MAX_LIFETIME.as_secs() {
            return Err(bad("lifetime is longer than 5 minutes"));
        }
        if claims.iat > now + skew || now > claims.exp + skew {
            return Err(bad("is expired or not valid yet"));
        }
        if claims.jti.is_empty() || claims.jti.len() > 128 {
            return Err(bad("has no valid `jti`"));
        }
        let actor = Actor {
            name: claims.sub,
            key,
        };
        expected(&actor)?;
        self.spend(&claims.jti, claims.exp + skew, now)?;
        Ok(actor)
    }

    fn spend(&self, jti: &str, until: u64, now: u64) -> Result<(), Refusal> {
        match self.seen.insert_new(jti.to_owned(), until, now) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Refusal::grant("actor_token was already used")),
            Err(Full) => Err(Refusal::new(
                ErrorCode::TemporarilyUnavailable,
                "too many recent exchanges; retry shortly",
            )),
        }
    }
}
