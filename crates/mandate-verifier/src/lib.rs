//! Verifies mandates and decides requests against Datalog policies.
//!
//! A [`Verifier`] is built once from the trusted root keys, a service
//! [`Policy`] and explicit run limits; [`Verifier::authorize`] then takes a
//! token as it arrived and a [`Request`], and returns a [`Decision`] that names
//! the principal, the agent and, on a denial, the check that failed.
//!
//! The verifier core does no I/O: policies arrive as text, time arrives in
//! the request, and nothing is logged here (callers log decisions, with
//! token fingerprints). Every Datalog evaluation runs under the configured
//! [`RunLimits`], set on the authorizer builder before it is built so they
//! also bound fact generation.

mod cache;
mod complexity;
mod decision;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "mapping")]
pub mod mapping;
#[cfg(feature = "axum")]
pub mod middleware;
mod policy;
#[cfg(feature = "http")]
pub mod pool;
mod replay;
mod revocation;
mod roots;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use biscuit_auth::builder::{self, AuthorizerBuilder};
use biscuit_auth::datalog::RunLimits;
use biscuit_auth::error::{Logic, Token};
use mandate_core::{vocab, Chain, KeySet, Mandate, PopError, Request};
use replay::ReplayCache;

pub use cache::CacheCounts;
pub use complexity::{
    BYTE_BUDGET, ELEMENT_BUDGET, MAX_LITERAL_ELEMENTS, MAX_REGEXES, STEP_BUDGET, TOTAL_FACTOR,
};
pub use decision::{Decision, FailedCheck, Reason};
pub use mandate_core::bounds::{MAX_BLOCKS, MAX_STATEMENTS};

/// The one JSON error shape of every Mandate HTTP API (the authorization API
/// here, the revocation registry), `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// Inside [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// A stable machine-readable code (`invalid_token`, `bad_request`, ...).
    pub code: String,
    /// A sentence for people; never internal detail.
    pub message: String,
}
pub use policy::Policy;
pub use revocation::{Dependencies, RevocationCheck, RevocationDenial, RevocationSubject};
pub use roots::SharedKeySet;

/// Why a token could not be judged at all (as opposed to a denial).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token is malformed, tampered with, or signed by an untrusted root.
    #[error(transparent)]
    Token(#[from] mandate_core::Error),
    /// The mandate expired before the request time.
    #[error("token expired at {}", mandate_core::print::rfc3339(*.at))]
    Expired {
        /// The authority block's `expires_at`.
        at: SystemTime,
    },
    /// The verifier was built without a trusted root key.
    #[error("no trusted root key configured")]
    NoRootKey,
    /// biscuit-auth failed in a way that is not a decision.
    #[error("authorizer error")]
    Authorizer(#[source] Token),
}

/// How far ahead of the request a proof may be dated where proofs made
/// before the verifier started are refused
/// ([`VerifierBuilder::refuse_proofs_from_before_start`]): a proof used
/// before a restart is then at most this much newer than the restart.
pub const FUTURE_SKEW: Duration = Duration::from_secs(5);

/// Builds a [`Verifier`].
#[derive(Debug, Clone)]
pub struct VerifierBuilder {
    keys: KeySet,
    shared: Option<SharedKeySet>,
    policy: Policy,
    limits: RunLimits,
    pop_window: Duration,
    require_pop: bool,
    replay_capacity: usize,
    proofs_after_start: bool,
    revocation: Option<Arc<dyn RevocationCheck>>,
}

impl VerifierBuilder {
    /// Trusts the root keys in `keys`.
    pub fn root_keys(mut self, keys: KeySet) -> Self {
        self.keys = keys;
        self.shared = None;
        self
    }

    /// Trusts whatever `keys` holds at each call: a set kept current by a
    /// follower of the issuer's published keys. It may be empty when the
    /// verifier is built (every token is then refused until it is loaded).
    pub fn shared_root_keys(mut self, keys: SharedKeySet) -> Self {
        self.shared = Some(keys);
        self
    }

    /// Decides with `policy` instead of `datalog/policies/default.datalog`.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Evaluates under `limits` instead of [`mandate_core::default_run_limits`].
    pub fn limits(mut self, limits: RunLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Accepts proofs of possession made within `window` of the request
    /// time (default 30 s).
    pub fn pop_window(mut self, window: Duration) -> Self {
        self.pop_window = window;
        self
    }

    /// Refuses bearer tokens: every request must carry a proof of
    /// possession by an agent key named in the chain.
    pub fn require_pop(mut self, require: bool) -> Self {
        self.require_pop = require;
        self
    }

    /// How many proof nonces the replay cache holds (default 1 000 000);
    /// when full of live nonces, new proofs are refused.
    pub fn replay_capacity(mut self, capacity: usize) -> Self {
        self.replay_capacity = capacity;
        self
    }

    /// Refuses proofs of possession made before the verifier was built
    /// ([`PopError::BeforeStart`]), and proofs dated more than
    /// [`FUTURE_SKEW`] after the request (a proof dated ahead, used before a
    /// restart, would otherwise be newer than the restart). Its replay cache
    /// starts empty, so a proof captured before a restart could otherwise be
    /// replayed within its window; for endpoints that change state, whose
    /// clients sign a fresh proof per call. Off by default (an offline check
    /// judges proofs made earlier).
    pub fn refuse_proofs_from_before_start(mut self, refuse: bool) -> Self {
        self.proofs_after_start = refuse;
        self
    }

    /// Consults `check` on every call, including calls whose token was
    /// verified before. Without it, revocations are not honoured: fine for
    /// offline checks, never for a service.
    pub fn revocation(mut self, check: Arc<dyn RevocationCheck>) -> Self {
        self.revocation = Some(check);
        self
    }

    /// Builds the verifier.
    ///
    /// # Errors
    /// [`Error::NoRootKey`] when no root key is trusted: a verifier that
    /// trusts nothing could only deny, which is always a configuration
    /// mistake.
    pub fn build(self) -> Result<Verifier, Error> {
        let keys = match self.shared {
            Some(shared) => shared,
            None if self.keys.is_empty() => return Err(Error::NoRootKey),
            None => SharedKeySet::new(self.keys),
        };
        Ok(Verifier {
            keys,
            base: self.policy.authorizer().set_limits(self.limits.clone()),
            policy: self.policy,
            pop_window: self.pop_window,
            require_pop: self.require_pop,
            replay: Arc::new(ReplayCache::new(
                self.replay_capacity,
                if self.proofs_after_start {
                    millis(SystemTime::now())
                } else {
                    0
                },
            )),
            revocation: self.revocation,
            max_facts: self.limits.max_facts,
            tokens: Arc::default(),
            verified: Arc::default(),
            check_texts: Arc::default(),
        })
    }
}

/// Decides requests for one service. Clones share the replay cache.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: SharedKeySet,
    base: AuthorizerBuilder,
    policy: Policy,
    pop_window: Duration,
    require_pop: bool,
    replay: Arc<ReplayCache>,
    revocation: Option<Arc<dyn RevocationCheck>>,
    max_facts: u64,
    tokens: Arc<cache::TokenCache>,
    verified: Arc<cache::VerifiedCache>,
    check_texts: Arc<cache::CheckTexts>,
}

impl Verifier {
    /// A builder with the default policy and [`mandate_core::default_run_limits`].
    pub fn builder() -> VerifierBuilder {
        VerifierBuilder {
            keys: KeySet::new(),
            shared: None,
            policy: Policy::default_policy(),
            limits: mandate_core::default_run_limits(),
            pop_window: Duration::from_secs(30),
            require_pop: false,
            replay_capacity: 1_000_000,
            proofs_after_start: false,
            revocation: None,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Whether this verifier consults revocation state.
    pub fn checks_revocation(&self) -> bool {
        self.revocation.is_some()
    }

    /// Parses the token and checks its signatures against the trusted roots.
    ///
    /// # Errors
    /// [`Error::Token`] for malformed, tampered or untrusted tokens.
    pub fn verify(&self, token: &str) -> Result<Mandate, Error> {
        Ok(Mandate::from_base64(token, &self.keys.get())?)
    }

    /// The root keys this verifier trusts (shared with whatever keeps them
    /// current, when they follow a published set).
    pub fn root_keys(&self) -> &SharedKeySet {
        &self.keys
    }

    /// Verifies `token` and decides `request`.
    ///
    /// # Errors
    /// [`Error::Token`] when the token cannot be trusted, [`Error::Expired`]
    /// when it expired. A request the mandate does not allow is not an
    /// error: it is a [`Decision`] with `allowed == false`.
    pub fn authorize(&self, token: &str, request: &Request) -> Result<Decision, Error> {
        let verified = self
            .verified
            .get_or_verify(token, |text| self.verify(text))?;
        self.decide(&verified.mandate, &verified.ids, request)
    }

    /// Hits and misses of the cache of verified tokens (by text) and of the
    /// cache of token claims, chain and shape (by digest), since this
    /// verifier was built; clones share them.
    pub fn cache_counts(&self) -> (CacheCounts, CacheCounts) {
        (self.verified.counts(), self.tokens.counts())
    }

    /// Decides `request` for an already verified mandate: chain, revocation
    /// state, proof of possession, then the token's checks and the service
    /// policy.
    ///
    /// # Errors
    /// As [`Verifier::authorize`], minus token parsing.
    pub fn authorize_mandate(
        &self,
        mandate: &Mandate,
        request: &Request,
    ) -> Result<Decision, Error> {
        self.decide(mandate, &cache::TokenIds::of(mandate), request)
    }

    /// [`Verifier::authorize_mandate`], with the mandate's ids read before;
    /// the decision names the root key id the mandate is signed under.
    fn decide(
        &self,
        mandate: &Mandate,
        ids: &cache::TokenIds,
        request: &Request,
    ) -> Result<Decision, Error> {
        let mut decision = self.decide_under_root(mandate, ids, request)?;
        decision.root_key_id = mandate.root_key_id();
        Ok(decision)
    }

    /// [`Verifier::decide`] without the root key id.
    fn decide_under_root(
        &self,
        mandate: &Mandate,
        ids: &cache::TokenIds,
        request: &Request,
    ) -> Result<Decision, Error> {
        // A `Mandate` made by another verifier (or signed by an untrusted
        // root) is not trusted here just because it is a `Mandate`; nor is
        // one verified earlier under a root since retired or replaced.
        let keys = self.keys.get();
        match keys.choose_at(mandate.root_key_id(), request.time) {
            Ok(key) if *key == mandate.root() => {}
            Err(retired @ mandate_core::Error::InvalidSignature { .. }) => {
                return Err(Error::Token(retired))
            }
            _ => {
                return Err(Error::Token(mandate_core::Error::InvalidSignature {
                    reason: "the mandate was verified under a root this verifier does not trust"
                        .into(),
                }))
            }
        }
        if request.time < std::time::UNIX_EPOCH {
            return Err(Error::Token(mandate_core::Error::Invalid(
                "request time before 1970".into(),
            )));
        }
        let token_id = &ids.token_id;
        let digest = &ids.digest;
        let info = self.tokens.get(digest, mandate);
        let claims = &info.claims;
        if let Some(at) = claims.expires_at {
            if request.time > at {
                return Err(Error::Expired { at });
            }
        }
        let chain = match &claims.chain {
            Ok(chain) => chain,
            Err(broken) => {
                let reason = Reason::ChainBroken {
                    error: broken.clone(),
                };
                return Ok(Decision::new(token_id, request, claims, reason));
            }
        };
        if let Err(denial) = self.check_revocation(&ids.revocation_ids, claims, &chain.links) {
            let reason = Reason::Revoked { denial };
            return Ok(Decision::new(token_id, request, claims, reason));
        }
        if let Err(refused) =
            self.check_possession(chain, info.holder_key.as_ref(), digest, request)
        {
            let reason = Reason::ProofOfPossession { error: refused };
            return Ok(Decision::new(token_id, request, claims, reason));
        }

        if let Err(message) = info.vet(mandate, request, self.policy.counts(), self.max_facts) {
            return Ok(Decision::new(
                token_id,
                request,
                claims,
                Reason::TooComplex { message },
            ));
        }
        let builder = self.request_facts(request, chain)?;
        let mut authorizer = builder
            .build(mandate.biscuit())
            .map_err(Error::Authorizer)?;
        let author = |block: Option<u32>| {
            block
                .and_then(|b| chain.authors.get(b as usize))
                .map_or_else(|| "the service policy".to_string(), ToString::to_string)
        };
        // The checks' display text, looked up once, and only if one failed.
        let texts = std::cell::OnceCell::new();
        let failed = |checks: &[biscuit_auth::error::FailedCheck]| -> Vec<FailedCheck> {
            checks
                .iter()
                .map(|c| {
                    let mut check = FailedCheck::from(c);
                    check.author = author(check.block);
                    // A token's check is reported as Mandate prints it
                    // (escaped), not as biscuit does.
                    if let Some(text) = check.block.and_then(|b| {
                        let checks =
                            texts.get_or_init(|| self.check_texts.get(&ids.digest, mandate));
                        cache::check_text(checks, b, check.check)
                    }) {
                        check.rule = text.to_string();
                    }
                    check
                })
                .collect()
        };
        let reason = match authorizer.authorize() {
            Ok(index) => Reason::Allowed {
                policy: self.policy.policy_text(index),
            },
            Err(Token::FailedLogic(Logic::Unauthorized { policy, checks })) => match policy {
                biscuit_auth::error::MatchedPolicy::Deny(index) if checks.is_empty() => {
                    Reason::DenyPolicy {
                        policy: self.policy.policy_text(index),
                    }
                }
                _ => Reason::FailedChecks {
                    checks: failed(&checks),
                },
            },
            Err(Token::FailedLogic(Logic::NoMatchingPolicy { checks })) => {
                if checks.is_empty() {
                    Reason::NoMatchingPolicy
                } else {
                    Reason::FailedChecks {
                        checks: failed(&checks),
                    }
                }
            }
            Err(Token::RunLimit(limit)) => Reason::RunLimit {
                limit: limit.to_string(),
            },
            Err(Token::Execution(e)) => Reason::Evaluation {
                message: e.to_string(),
            },
            Err(other) => return Err(Error::Authorizer(other)),
        };
        Ok(Decision::new(token_id, request, claims, reason))
    }

    /// As [`Verifier::authorize`], and when the request is allowed, also what
    /// the mandate's revocation state depends on: a service keeps those to
    /// re-check a call in flight ([`Verifier::recheck`]) whenever the
    /// revocation state changes, without the token.
    ///
    /// # Errors
    /// As [`Verifier::authorize`].
    pub fn authorize_with_dependencies(
        &self,
        token: &str,
        request: &Request,
    ) -> Result<(Decision, Option<Dependencies>), Error> {
        let verified = self
            .verified
            .get_or_verify(token, |text| self.verify(text))?;
        let decision = self.decide(&verified.mandate, &verified.ids, request)?;
        if !decision.allowed {
            return Ok((decision, None));
        }
        let info = self.tokens.get(&verified.ids.digest, &verified.mandate);
        let claims = &info.claims;
        let agents = claims
            .chain
            .as_ref()
            .map(|c| c.links.clone())
            .unwrap_or_default();
        let dependencies = Dependencies::new(
            verified.ids.revocation_ids.clone(),
            claims.principal.clone(),
            claims.task.clone(),
            agents,
        );
        Ok((decision, Some(dependencies)))
    }

    /// Re-checks only the revocation state of an allowed call's
    /// [`Dependencies`]; fails closed when the state is stale.
    ///
    /// # Errors
    /// As [`Verifier::revalidate`].
    pub fn recheck(&self, dependencies: &Dependencies) -> Result<(), RevocationDenial> {
        match &self.revocation {
            Some(revocation) => revocation.check(&dependencies.subject()),
            None => Ok(()),
        }
    }

    /// Moves whenever this verifier's revocation state may have changed (see
    /// [`RevocationCheck::changes`]); `None` when the verifier consults no
    /// revocation state, or its source cannot notify.
    #[cfg(feature = "http")]
    pub fn revocation_changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.revocation.as_ref().and_then(|r| r.changes())
    }

    /// Re-checks only the revocation state for a mandate that was allowed
    /// earlier: a service calls this before committing the effects of a
    /// long-running call, so a revocation that lands while the call is in
    /// flight still stops it. Fails closed when the state is stale.
    ///
    /// # Errors
    /// [`RevocationDenial`] when something the token depends on was revoked
    /// since, or the state cannot be vouched for; `Ok` when this verifier
    /// does not consult revocations.
    pub fn revalidate(&self, mandate: &Mandate) -> Result<(), RevocationDenial> {
        if self.revocation.is_none() {
            return Ok(());
        }
        let ids = cache::TokenIds::of(mandate);
        let info = self.tokens.get(&ids.digest, mandate);
        let claims = &info.claims;
        let agents = claims
            .chain
            .as_ref()
            .map(|c| c.links.as_slice())
            .unwrap_or(&[]);
        self.check_revocation(&ids.revocation_ids, claims, agents)
    }

    /// Consults the revocation state, if this verifier has one.
    fn check_revocation(
        &self,
        revocation_ids: &[Vec<u8>],
        claims: &mandate_core::Claims,
        agents: &[mandate_core::Link],
    ) -> Result<(), RevocationDenial> {
        let Some(revocation) = &self.revocation else {
            return Ok(());
        };
        revocation.check(&RevocationSubject {
            revocation_ids,
            principal: &claims.principal,
            task: &claims.task,
            agents,
        })
    }

    /// A chain whose holder has a key needs that key's proof for this very
    /// request; a bearer chain needs none unless this verifier requires it.
    fn check_possession(
        &self,
        chain: &Chain,
        holder_key: Option<&Result<ed25519_dalek::VerifyingKey, ()>>,
        token_digest: &str,
        request: &Request,
    ) -> Result<(), PopError> {
        let holder = chain.holder();
        let Some(key) = holder_key else {
            return if self.require_pop {
                Err(PopError::BearerRefused)
            } else {
                Ok(())
            };
        };
        let proof = request.proof.as_ref().ok_or_else(|| PopError::Missing {
            agent: holder.name.clone(),
        })?;
        let bad = || PopError::BadSignature {
            agent: holder.name.clone(),
        };
        let key = key.as_ref().map_err(|()| bad())?;
        proof.verify(&holder.name, key, token_digest, request, self.pop_window)?;
        let now_ms = millis(request.time);
        let wall_ms = millis(SystemTime::now());
        let window_ms = u64::try_from(self.pop_window.as_millis()).unwrap_or(u64::MAX);
        // Kept a whole window past the later of the request's time and this
        // machine's, whichever a replay could be judged at.
        let forget_after = now_ms
            .max(wall_ms)
            .max(proof.timestamp_ms)
            .saturating_add(window_ms);
        self.replay.check_and_insert(
            proof.nonce,
            proof.timestamp_ms,
            now_ms,
            wall_ms,
            forget_after,
        )
    }

    fn request_facts(&self, request: &Request, chain: &Chain) -> Result<AuthorizerBuilder, Error> {
        let fact = |name: &str, terms: &[builder::Term]| builder::fact(name, terms);
        let mut facts = vec![
            fact(vocab::TIME, &[builder::date(&request.time)]),
            fact(vocab::SERVICE, &[builder::string(&request.service)]),
            fact(vocab::OPERATION, &[builder::string(&request.operation)]),
            fact(
                vocab::RESOURCE,
                &[builder::string(request.resource.as_str())],
            ),
            fact(
                vocab::ACTING_AGENT,
                &[builder::string(&chain.holder().name)],
            ),
            fact(
                vocab::DELEGATION_DEPTH,
                &[builder::int(i64::from(chain.depth()))],
            ),
        ];
        for (key, value) in &request.attrs {
            facts.push(fact(vocab::ATTR, &[builder::string(key), value.to_term()]));
            if let mandate_core::AttrValue::Str(text) = value {
                if let Some(host) = mandate_core::url_host(text) {
                    facts.push(fact(
                        vocab::ATTR_HOST,
                        &[builder::string(key), builder::string(&host)],
                    ));
                }
            }
        }
        let mut builder = self.base.clone();
        for f in facts {
            builder = builder.fact(f).map_err(Error::Authorizer)?;
        }
        Ok(builder)
    }
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
