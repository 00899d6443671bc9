//! Verifying a principal's identity token (an OIDC ID token or a JWT access
//! token) against the configured identity providers.
//!
//! Only RS256, ES256 and EdDSA are accepted, and the key's type must match
//! the token's `alg` (an HS256 token "signed" with a public key is refused
//! before any key is looked at; `alg: none` does not parse). The provider is
//! chosen by the token's `iss` among the configured ones, then `iss`, `aud`,
//! `exp` (required), `nbf` and `iat` are checked against the injected time
//! with a small skew. The principal is read from one configured claim and
//! must already be a canonical principal name: it is refused, never
//! rewritten, so what is minted is what an operator can revoke.
//!
//! An [`Identity`] exists only from [`IdentityProviders::verify`].

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mandate_core::name::{self, NameKind};
use serde_json::{Map, Value};

use crate::jwks::{Jwks, JwksError, JwksSource};
use crate::oauth::Refusal;

/// The largest subject token accepted.
pub const MAX_SUBJECT_TOKEN_LEN: usize = 8 * 1024;
/// At most this many claims and groups reach the issuance policy.
pub const MAX_POLICY_CLAIMS: usize = 64;
/// Claim values longer than this are not given to the policy.
pub const MAX_CLAIM_VALUE_LEN: usize = 256;

/// One trusted identity provider.
#[derive(Debug, Clone)]
pub struct IdpConfig {
    /// The exact `iss` its tokens carry.
    pub issuer: String,
    /// The `aud` a token must name to be exchanged here.
    pub audience: String,
    /// Where its signing keys are.
    pub jwks: JwksSource,
    /// The claim the principal is read from (`email` or `sub`).
    pub principal_claim: String,
    /// The claim listing the principal's groups (an array of strings).
    pub groups_claim: String,
}

/// A verified principal, as the issuance policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The provider's `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// The canonical principal name.
    pub principal: String,
    /// `email`, when present.
    pub email: Option<String>,
    /// Groups, at most [`MAX_POLICY_CLAIMS`].
    pub groups: Vec<String>,
    /// Top-level string, integer and boolean claims (bounded).
    pub claims: Vec<(String, ClaimValue)>,
}

/// A claim value given to the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimValue {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
}

struct Provider {
    config: IdpConfig,
    jwks: Jwks,
}

/// The configured providers, by issuer.
pub struct IdentityProviders {
    providers: HashMap<String, Provider>,
    skew: Duration,
}

impl std::fmt::Debug for IdentityProviders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityProviders")
            .field("issuers", &self.providers.keys().collect::<Vec<_>>())
            .field("skew", &self.skew)
            .finish()
    }
}

/// The default clock skew allowed on `exp`, `nbf` and `iat`.
pub const DEFAULT_SKEW: Duration = Duration::from_secs(30);

impl IdentityProviders {
    /// Providers from their configurations; `max_age` and `min_refetch` as
    /// in [`Jwks::new`].
    pub fn new(
        configs: Vec<IdpConfig>,
        skew: Duration,
        max_age: Duration,
        min_refetch: Duration,
    ) -> IdentityProviders {
        // RSA signatures through `ring`: the same verdicts, a fraction of
        // the cost (see `jwt_crypto`).
        crate::jwt_crypto::install();
        let providers = configs
            .into_iter()
            .map(|config| {
                let jwks = Jwks::new(config.jwks.clone(), max_age, min_refetch);
                (config.issuer.clone(), Provider { config, jwks })
            })
            .collect();
        IdentityProviders { providers, skew }
    }

    /// Verifies `token` at `now`, loading keys when the cache lacks them.
    ///
    /// # Errors
    /// `invalid_request` for an oversized token, `invalid_grant` for any
    /// token that is not a valid identity token from a configured provider.
    pub async fn verify(&self, token: &str, now: SystemTime) -> Result<Identity, Refusal> {
        let (provider, header) = self.provider_for(token)?;
        let key = match provider.jwks.find(header.kid.as_deref()).await {
            Ok(key) => key,
            Err(JwksError::Unavailable(why)) => {
                tracing::error!(issuer = %provider.config.issuer, %why, "identity provider keys unavailable");
                return Err(Refusal::new(
                    crate::oauth::ErrorCode::TemporarilyUnavailable,
                    "the identity provider's keys cannot be loaded",
                ));
            }
            Err(other) => return Err(Refusal::grant(other.to_string())),
        };
        self.check(provider, &header, &key, token, now)
    }

    /// Verifies `token` with cached keys only (no I/O); `None` when the
    /// cache lacks the key, so the caller can fall back to [`Self::verify`].
    ///
    /// # Errors
    /// As [`Self::verify`].
    pub fn verify_cached(&self, token: &str, now: SystemTime) -> Option<Result<Identity, Refusal>> {
        let (provider, header) = match self.provider_for(token) {
            Ok(found) => found,
            Err(refusal) => return Some(Err(refusal)),
        };
        let key = provider.jwks.cached(header.kid.as_deref())?;
        Some(self.check(provider, &header, &key, token, now))
    }

    fn provider_for(&self, token: &str) -> Result<(&Provider, jsonwebtoken::Header), Refusal> {
        if token.len() > MAX_SUBJECT_TOKEN_LEN {
            return Err(Refusal::request(format!(
                "subject_token is larger than {MAX_SUBJECT_TOKEN_LEN} bytes"
            )));
        }
        // The header is read before any signature check only to choose the
        // provider and key; every value read here is checked again below.
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            Refusal::grant("subject_token is not a signed JWT with an accepted algorithm")
        })?;
        if !matches!(
            header.alg,
            Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA
        ) {
            return Err(Refusal::grant(format!(
                "subject_token algorithm {:?} is not accepted (RS256, ES256, EdDSA only)",
                header.alg
            )));
        }
        #[derive(serde::Deserialize)]
        struct Peek {
            iss: Option<String>,
        }
        let issuer = jsonwebtoken::dangerous::insecure_decode::<Peek>(token)
            .ok()
            .and_then(|data| data.claims.iss)
            .ok_or_else(|| Refusal::grant("subject_token has no readable `iss`"))?;
        let provider = self.providers.get(&issuer).ok_or_else(|| {
            Refusal::grant("subject_token is from an identity provider this issuer does not trust")
        })?;
        Ok((provider, header))
    }

    fn check(
        &self,
        provider: &Provider,
        header: &jsonwebtoken::Header,
        key: &Jwk,
        token: &str,
        now: SystemTime,
    ) -> Result<Identity, Refusal> {
        if !key_fits(key, header.alg) {
            return Err(Refusal::grant(format!(
                "the identity provider's key `{}` is not a key for {:?}",
                crate::jwks::shown_kid(header.kid.as_deref().unwrap_or("")),
                header.alg
            )));
        }
        let decoding = DecodingKey::from_jwk(key)
            .map_err(|_| Refusal::grant("the identity provider's key cannot be used"))?;
        let mut validation = Validation::new(header.alg);
        // Time is checked below against the injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        validation.set_issuer(&[&provider.config.issuer]);
        validation.set_audience(&[&provider.config.audience]);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &decoding, &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                Refusal::grant(match e.kind() {
                    ErrorKind::InvalidSignature => "subject_token signature does not verify",
                    ErrorKind::InvalidIssuer => "subject_token `iss` is wrong",
                    ErrorKind::InvalidAudience => "subject_token `aud` does not name this issuer",
                    ErrorKind::MissingRequiredClaim(_) => "subject_token lacks `iss` or `aud`",
                    ErrorKind::InvalidAlgorithm => "subject_token algorithm does not match the key",
                    _ => "subject_token is malformed",
                })
            })?;
        let claims = data.claims;
        self.check_times(&claims, now)?;
        identity(&provider.config, claims)
    }

    fn check_times(&self, claims: &Map<String, Value>, now: SystemTime) -> Result<(), Refusal> {
        let now = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let skew = self.skew.as_secs();
        let number = |name: &str| -> Result<Option<u64>, Refusal> {
            match claims.get(name) {
                None => Ok(None),
                Some(value) => value
                    .as_u64()
                    .map(Some)
                    .ok_or_else(|| Refusal::grant(format!("subject_token `{name}` is not a time"))),
            }
        };
        let exp = number("exp")?.ok_or_else(|| Refusal::grant("subject_token has no `exp`"))?;
        if now > exp.saturating_add(skew) {
            return Err(Refusal::grant("subject_token has expired"));
        }
        if let Some(nbf) = number("nbf")? {
            if nbf > now.saturating_add(skew) {
                return Err(Refusal::grant("subject_token is not valid yet (`nbf`)"));
            }
        }
        if let Some(iat) = number("iat")? {
            if iat > now.saturating_add(skew) {
                return Err(Refusal::grant(
                    "subject_token was issued in the future (`iat`)",
                ));
            }
        }
        Ok(())
    }
}

/// When an identity token was issued and when it expires (`iat`, `exp`),
/// read from a token [`IdentityProviders::verify`] accepted; `None` for a
/// time the token does not state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenTimes {
    /// `iat`.
    pub issued_at: Option<SystemTime>,
    /// `exp`.
    pub expires: Option<SystemTime>,
}

impl TokenTimes {
    /// The times of `token`, which must have been verified already: this
    /// reads its claims without checking them again.
    pub fn of_verified(token: &str) -> TokenTimes {
        #[derive(serde::Deserialize)]
        struct Peek {
            iat: Option<u64>,
            exp: Option<u64>,
        }
        let time = |secs: u64| UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs));
        jsonwebtoken::dangerous::insecure_decode::<Peek>(token)
            .map(|data| TokenTimes {
                issued_at: data.claims.iat.and_then(time),
                expires: data.claims.exp.and_then(time),
            })
            .unwrap_or_default()
    }
}

/// Whether `key` can verify `alg` (type, curve, and its own `alg` if stated).
fn key_fits(key: &Jwk, alg: Algorithm) -> bool {
    let stated = match key.common.key_algorithm {
        None => true,
        Some(KeyAlgorithm::RS256) => alg == Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => alg == Algorithm::ES256,
        Some(KeyAlgorithm::EdDSA) => alg == Algorithm::EdDSA,
        Some(_) => false,
    };
    let shape = match (&key.algorithm, alg) {
        (AlgorithmParameters::RSA(_), Algorithm::RS256) => true,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => {
            p.curve == EllipticCurve::Ed25519
        }
        _ => false,
    };
    stated && shape
}

fn identity(config: &IdpConfig, claims: Map<String, Value>) -> Result<Identity, Refusal> {
    let string = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    let subject = string("sub").ok_or_else(|| Refusal::grant("subject_token has no `sub`"))?;
    let principal = string(&config.principal_claim).ok_or_else(|| {
        Refusal::grant(format!(
            "subject_token has no string `{}` claim to name the principal",
            config.principal_claim
        ))
    })?;
    let unverified = match claims.get("email_verified") {
        Some(Value::Bool(verified)) => !verified,
        // Some providers send the flag as a string.
        Some(Value::String(verified)) => verified != "true",
        // Absent: the provider does not say (many never do).
        None => false,
        // A number, null, a list: not a statement that it was verified.
        Some(_) => true,
    };
    if config.principal_claim == "email" && unverified {
        return Err(Refusal::grant("the principal's email is not verified"));
    }
    name::check(NameKind::Principal, &principal).map_err(|e| {
        Refusal::grant(format!(
            "`{}` claim is not a canonical principal name: {e}",
            config.principal_claim
        ))
    })?;
    let groups = claims
        .get(&config.groups_claim)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .filter(|g| g.len() <= MAX_CLAIM_VALUE_LEN)
                .take(MAX_POLICY_CLAIMS)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mut policy_claims = Vec::new();
    for (key, value) in &claims {
        if policy_claims.len() >= MAX_POLICY_CLAIMS || key.len() > MAX_CLAIM_VALUE_LEN {
            continue;
        }
        let value = match value {
            Value::String(s) if s.len() <= MAX_CLAIM_VALUE_LEN => ClaimValue::Str(s.clone()),
            Value::Bool(b) => ClaimValue::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => ClaimValue::Int(i),
                None => continue,
            },
            _ => continue,
        };
        policy_claims.push((key.clone(), value));
    }
    Ok(Identity {
        issuer: config.issuer.clone(),
        subject,
        principal,
        email: string("email"),
        groups,
        claims: policy_claims,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn config() -> IdpConfig {
        IdpConfig {
            issuer: "https://idp.example.com".into(),
            audience: "mandate".into(),
            jwks: JwksSource::File("jwks.json".into()),
            principal_claim: "email".into(),
            groups_claim: "groups".into(),
        }
    }

    fn claims(verified: Option<Value>) -> Map<String, Value> {
        let mut claims = Map::new();
        claims.insert("sub".into(), "u-1".into());
        claims.insert("email".into(), "alice@example.com".into());
        if let Some(verified) = verified {
            claims.insert("email_verified".into(), verified);
        }
        claims
    }

    #[test]
    fn an_email_not_verified_names_no_principal_whether_the_flag_is_a_boolean_or_a_string() {
        for refused in [
            Value::Bool(false),
            "false".into(),
            "False".into(),
            "".into(),
            1.into(),
            Value::Null,
        ] {
            let error = identity(&config(), claims(Some(refused.clone()))).unwrap_err();
            assert!(error.description.contains("not verified"), "{refused}");
        }
        for accepted in [None, Some(Value::Bool(true)), Some("true".into())] {
            let who = identity(&config(), claims(accepted)).unwrap();
            assert_eq!(who.principal, "alice@example.com");
        }
    }
}
