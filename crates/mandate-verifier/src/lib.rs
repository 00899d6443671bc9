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

mod decision;
mod policy;

use std::time::SystemTime;

use biscuit_auth::builder::{self, AuthorizerBuilder, Rule};
use biscuit_auth::datalog::RunLimits;
use biscuit_auth::error::{Logic, Token};
use mandate_core::{vocab, KeySet, Mandate, Request};

pub use decision::{Decision, FailedCheck, Reason};
pub use policy::Policy;

/// Why a token could not be judged at all (as opposed to a denial).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token is malformed, tampered with, or signed by an untrusted root.
    #[error(transparent)]
    Token(#[from] mandate_core::Error),
    /// The mandate expired before the request time.
    #[error("token expired at {}", humantime::format_rfc3339_seconds(*.at))]
    Expired {
        /// The authority block's `expires_at`.
        at: SystemTime,
    },
    /// The verifier was built without a trusted root key.
    #[error("no trusted root key configured")]
    NoRootKey,
    /// biscuit-auth failed in a way that is not a decision.
    #[error("authorizer error: {0}")]
    Authorizer(#[source] Token),
}

/// Builds a [`Verifier`].
#[derive(Debug, Clone)]
pub struct VerifierBuilder {
    keys: KeySet,
    policy: Policy,
    limits: RunLimits,
}

impl VerifierBuilder {
    /// Trusts the root keys in `keys` (merged with any already given).
    pub fn root_keys(mut self, keys: KeySet) -> Self {
        self.keys = keys;
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

    /// Builds the verifier.
    ///
    /// # Errors
    /// [`Error::NoRootKey`] when no root key is trusted: a verifier that
    /// trusts nothing could only deny, which is always a configuration
    /// mistake.
    pub fn build(self) -> Result<Verifier, Error> {
        if self.keys.is_empty() {
            return Err(Error::NoRootKey);
        }
        Ok(Verifier {
            keys: self.keys,
            base: self.policy.authorizer().set_limits(self.limits.clone()),
            policy: self.policy,
            queries: ClaimQueries::new()?,
        })
    }
}

/// Pre-parsed queries that read the claims of a verified mandate from the
/// authority block (queries see only authority and authorizer facts, and
/// the policy may not define issuer facts, so they cannot be spoofed).
#[derive(Debug, Clone)]
struct ClaimQueries {
    principal: Rule,
    agent: Rule,
    task: Rule,
    expires_at: Rule,
}

impl ClaimQueries {
    fn new() -> Result<ClaimQueries, Error> {
        let parse = |text: String| -> Result<Rule, Error> {
            Rule::try_from(text.as_str()).map_err(Error::Authorizer)
        };
        Ok(ClaimQueries {
            principal: parse(format!("q($p) <- {}($p)", vocab::PRINCIPAL))?,
            agent: parse(format!("q($n, $k) <- {}($n, $k)", vocab::AGENT))?,
            task: parse(format!("q($t) <- {}($t)", vocab::TASK))?,
            expires_at: parse(format!("q($e) <- {}($e)", vocab::EXPIRES_AT))?,
        })
    }
}

/// Decides requests for one service. Cheap to share between threads.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: KeySet,
    base: AuthorizerBuilder,
    policy: Policy,
    queries: ClaimQueries,
}

impl Verifier {
    /// A builder with the default policy and [`mandate_core::default_run_limits`].
    pub fn builder() -> VerifierBuilder {
        VerifierBuilder {
            keys: KeySet::new(),
            policy: Policy::default_policy(),
            limits: mandate_core::default_run_limits(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Parses the token and checks its signatures against the trusted roots.
    ///
    /// # Errors
    /// [`Error::Token`] for malformed, tampered or untrusted tokens.
    pub fn verify(&self, token: &str) -> Result<Mandate, Error> {
        Ok(Mandate::from_base64(token, &self.keys)?)
    }

    /// Verifies `token` and decides `request`.
    ///
    /// # Errors
    /// [`Error::Token`] when the token cannot be trusted, [`Error::Expired`]
    /// when it expired. A request the mandate does not allow is not an
    /// error: it is a [`Decision`] with `allowed == false`.
    pub fn authorize(&self, token: &str, request: &Request) -> Result<Decision, Error> {
        let mandate = self.verify(token)?;
        self.authorize_mandate(&mandate, request)
    }

    /// Decides `request` for an already verified mandate.
    ///
    /// # Errors
    /// As [`Verifier::authorize`], minus token parsing.
    pub fn authorize_mandate(
        &self,
        mandate: &Mandate,
        request: &Request,
    ) -> Result<Decision, Error> {
        let builder = self.request_facts(request)?;
        let mut authorizer = builder
            .build(mandate.biscuit())
            .map_err(Error::Authorizer)?;
        let outcome = authorizer.authorize();

        let claims = decision::Claims::read(&mut authorizer, &self.queries);
        if outcome.is_err() {
            if let Some(at) = claims.expires_at {
                if request.time > at {
                    return Err(Error::Expired { at });
                }
            }
        }
        let reason = match outcome {
            Ok(index) => Reason::Allowed {
                policy: self.policy.allow_policy(index),
            },
            Err(Token::FailedLogic(Logic::Unauthorized { policy, checks })) => {
                let failed: Vec<FailedCheck> = checks.iter().map(FailedCheck::from).collect();
                match policy {
                    biscuit_auth::error::MatchedPolicy::Deny(index) if failed.is_empty() => {
                        Reason::DenyPolicy {
                            policy: self.policy.allow_policy(index),
                        }
                    }
                    _ => Reason::FailedChecks { checks: failed },
                }
            }
            Err(Token::FailedLogic(Logic::NoMatchingPolicy { checks })) => {
                let failed: Vec<FailedCheck> = checks.iter().map(FailedCheck::from).collect();
                if failed.is_empty() {
                    Reason::NoMatchingPolicy
                } else {
                    Reason::FailedChecks { checks: failed }
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
        Ok(Decision::new(mandate, request, claims, reason))
    }

    fn request_facts(&self, request: &Request) -> Result<AuthorizerBuilder, Error> {
        let fact = |name: &str, terms: &[builder::Term]| builder::fact(name, terms);
        let mut facts = vec![
            fact(vocab::TIME, &[builder::date(&request.time)]),
            fact(vocab::SERVICE, &[builder::string(&request.service)]),
            fact(vocab::OPERATION, &[builder::string(&request.operation)]),
            fact(
                vocab::RESOURCE,
                &[builder::string(request.resource.as_str())],
            ),
            // Without signed hops the first agent is the acting agent.
            fact(vocab::DELEGATION_DEPTH, &[builder::int(0)]),
        ];
        for (key, value) in &request.attrs {
            facts.push(fact(vocab::ATTR, &[builder::string(key), value.to_term()]));
        }
        let mut builder = self.base.clone();
        for f in facts {
            builder = builder.fact(f).map_err(Error::Authorizer)?;
        }
        builder
            .rule(self.policy.acting_agent_rule().clone())
            .map_err(Error::Authorizer)
    }
}
