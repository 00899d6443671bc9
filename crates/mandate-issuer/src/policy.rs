//! The issuance policy: Datalog that decides what a verified principal's
//! agent is granted (`datalog/policies/issuance.datalog` is the default and
//! documents the vocabulary).
//!
//! A policy states rules and facts only; it may not define any fact the
//! issuer states (identity, agent, request), since the authorizer would
//! trust those as the issuer's own. Every value from the identity token or
//! the request reaches Datalog as a built term, never as text. Evaluation
//! runs under explicit [`RunLimits`], set with `AuthorizerBuilder::set_limits`
//! before `build` (biscuit-auth 6.0.0 ignores limits given later during fact
//! generation); hitting one is a refusal, never a grant.
//!
//! The outcome never widens the request: only requested rights can be
//! granted, and the lifetime is the smallest of what was asked, what the
//! policy allows and what the issuer allows.
//!
//! The same policy decides requests for more rights during a task
//! ([`IssuancePolicy::decide_request`], [`RequestInput`]). Then the issuer
//! states what it knows of the task (`principal`, `task`, `agent`,
//! `agent_key`, `held_right`, `request_reason`, the time left as
//! `requested_ttl`) and the login facts of the identity the task was opened
//! with, kept in the task's record (`subject`, `email`, `group`, `claim`,
//! `idp`): a rule that needs a group fires at run time as at exchange.

use std::path::Path;
use std::time::{Duration, SystemTime};

use biscuit_auth::builder::{self, AuthorizerBuilder, Term};
use biscuit_auth::datalog::RunLimits;
use mandate_core::{PublicKey, Right};

use crate::idp::{ClaimValue, Identity};

/// The services of Mandate itself — the audit trail, the revocation
/// registry, this issuer's requests and tasks — whose rights are for
/// operators (minted with `mandate issue`), never granted through a login
/// or a task, whatever a policy says.
pub const RESERVED_SERVICES: [&str; 4] = ["audit", "registry", "requests", "tasks"];

/// A denial when `rights` name a [`RESERVED_SERVICES`] service.
fn reserved(rights: &[Right]) -> Option<Outcome> {
    let right = rights
        .iter()
        .find(|r| RESERVED_SERVICES.contains(&r.service.as_str()))?;
    Some(Outcome::Deny {
        reason: format!(
            "{}:{} is a right on Mandate's own {} service: for operators, never granted to a login",
            right.service, right.operation, right.service
        ),
    })
}

/// The default policy, compiled in.
pub const DEFAULT_POLICY: &str = include_str!("../../../datalog/policies/issuance.datalog");

/// Facts the issuer states; a policy defining one is refused.
pub const INPUT_FACTS: &[&str] = &[
    "subject",
    "email",
    "group",
    "claim",
    "idp",
    "agent",
    "agent_key",
    "requested_right",
    "audience",
    "requested_ttl",
    "task_description",
    "time",
    "held_right",
    "request_reason",
];

/// Why a policy cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The text does not parse (with the position).
    #[error(transparent)]
    Parse(#[from] mandate_core::Error),
    /// The policy defines a fact the issuer states.
    #[error("issuance policy `{policy}` defines `{fact}`, a fact only the issuer states")]
    DefinesInput {
        /// The policy's name.
        policy: String,
        /// The fact.
        fact: String,
    },
    /// The policy holds checks or allow/deny policies, which mean nothing here.
    #[error("issuance policy `{0}` may hold only facts and rules (grant, max_ttl, deny, ask)")]
    NotRules(String),
    /// The file could not be read.
    #[error(
        "reading issuance policy {}",
        mandate_core::keys::describe_path(std::path::Path::new(path))
    )]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// What is asked of the policy.
#[derive(Debug, Clone)]
pub struct PolicyInput<'a> {
    /// The verified principal.
    pub identity: &'a Identity,
    /// The agent's name.
    pub agent: &'a str,
    /// The agent's key.
    pub agent_key: &'a PublicKey,
    /// The rights requested.
    pub rights: &'a [Right],
    /// The services named as audience or resource.
    pub audience: &'a [String],
    /// The task lifetime requested.
    pub ttl: Duration,
    /// The task's description.
    pub description: &'a str,
    /// Now.
    pub now: SystemTime,
}

/// What is asked of the policy when a task's agent asks for more rights.
#[derive(Debug, Clone)]
pub struct RequestInput<'a> {
    /// The task's principal.
    pub principal: &'a str,
    /// The login the task was opened with, when its record keeps it.
    pub identity: Option<&'a Identity>,
    /// The task.
    pub task: &'a str,
    /// The task's agent.
    pub agent: &'a str,
    /// Its key.
    pub agent_key: &'a PublicKey,
    /// The rights the task holds.
    pub held: &'a [Right],
    /// The rights asked for (not held).
    pub rights: &'a [Right],
    /// The agent's reason.
    pub reason: &'a str,
    /// The task's description.
    pub description: &'a str,
    /// Time left until the task's deadline.
    pub time_left: Duration,
    /// Now.
    pub now: SystemTime,
}

/// What the policy decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Grant these rights (a non-empty subset of those requested) for at
    /// most `max_ttl` (`None`: the policy set no bound).
    Allow {
        /// The rights granted, sorted.
        rights: Vec<Right>,
        /// The policy's bound on the lifetime.
        max_ttl: Option<Duration>,
    },
    /// Refuse, with the policy's reason.
    Deny {
        /// The reason.
        reason: String,
    },
    /// A person must approve first.
    Ask {
        /// The reason.
        reason: String,
    },
}

/// A parsed issuance policy.
#[derive(Debug, Clone)]
pub struct IssuancePolicy {
    name: String,
    builder: AuthorizerBuilder,
    limits: RunLimits,
    queries: Queries,
}

/// The queries reading a policy's conclusion, parsed once rather than on
/// every decision.
#[derive(Debug, Clone)]
struct Queries {
    deny: builder::Rule,
    ask: builder::Rule,
    grant: builder::Rule,
    max_ttl: builder::Rule,
}

impl Queries {
    fn parse() -> Result<Queries, mandate_core::Error> {
        let rule = |text: &str| {
            text.parse::<builder::Rule>()
                .map_err(|e| mandate_core::Error::from_datalog(text, e))
        };
        Ok(Queries {
            deny: rule("out($r) <- deny($r)")?,
            ask: rule("out($r) <- ask($r)")?,
            grant: rule("out($s, $o) <- grant($s, $o)")?,
            max_ttl: rule("out($t) <- max_ttl($t)")?,
        })
    }
}

impl IssuancePolicy {
    /// The compiled-in default policy.
    ///
    /// # Errors
    /// Only if the shipped file were broken (a test covers it).
    pub fn default_policy() -> Result<IssuancePolicy, PolicyError> {
        IssuancePolicy::from_source("issuance.datalog", DEFAULT_POLICY)
    }

    /// Parses and vets `source`; `name` appears in errors.
    ///
    /// # Errors
    /// [`PolicyError`].
    pub fn from_source(name: &str, source: &str) -> Result<IssuancePolicy, PolicyError> {
        let parsed = mandate_core::parse_datalog(source, mandate_core::DatalogKind::Policy)?;
        if !parsed.checks.is_empty() || !parsed.policies.is_empty() {
            return Err(PolicyError::NotRules(name.to_owned()));
        }
        let defined = parsed
            .facts
            .iter()
            .map(|(_, f)| &f.predicate.name)
            .chain(parsed.rules.iter().map(|(_, r)| &r.head.name));
        for fact in defined {
            if INPUT_FACTS.contains(&fact.as_str())
                || mandate_core::vocab::ISSUER_ONLY.contains(&fact.as_str())
            {
                return Err(PolicyError::DefinesInput {
                    policy: name.to_owned(),
                    fact: fact.clone(),
                });
            }
        }
        let builder = AuthorizerBuilder::new()
            .code(source)
            .map_err(|e| mandate_core::Error::from_datalog(source, e))?;
        Ok(IssuancePolicy {
            name: name.to_owned(),
            builder,
            limits: mandate_core::default_run_limits(),
            queries: Queries::parse()?,
        })
    }

    /// Reads and vets a policy file.
    ///
    /// # Errors
    /// [`PolicyError`].
    pub fn from_file(path: &Path) -> Result<IssuancePolicy, PolicyError> {
        let source =
            mandate_core::text_file::read_text_file(path, mandate_core::text_file::MAX_TEXT_FILE)
                .map_err(|source| PolicyError::Read {
                path: path.display().to_string(),
                source,
            })?;
        IssuancePolicy::from_source(&path.display().to_string(), &source)
    }

    /// The same policy under other limits.
    #[must_use]
    pub fn with_limits(mut self, limits: RunLimits) -> IssuancePolicy {
        self.limits = limits;
        self
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Decides `input`. An evaluation error (a limit hit, say) is a denial
    /// naming it.
    pub fn decide(&self, input: &PolicyInput<'_>) -> Outcome {
        if let Some(denial) = reserved(input.rights) {
            return denial;
        }
        match self.evaluate(input) {
            Ok(outcome) => outcome,
            Err(error) => Outcome::Deny {
                reason: format!("issuance policy could not be evaluated: {error}"),
            },
        }
    }

    /// Decides a request for more rights during a task. The lifetime in an
    /// allow is ignored by the caller: a task's deadline never moves. An
    /// evaluation error is a denial naming it.
    pub fn decide_request(&self, input: &RequestInput<'_>) -> Outcome {
        if let Some(denial) = reserved(input.rights) {
            return denial;
        }
        let str = |s: &str| builder::string(s);
        let mut facts: Vec<builder::Fact> = vec![
            builder::fact("principal", &[str(input.principal)]),
            builder::fact("task", &[str(input.task)]),
            builder::fact("agent", &[str(input.agent)]),
            builder::fact("agent_key", &[str(&input.agent_key.to_string())]),
            builder::fact("request_reason", &[str(input.reason)]),
            builder::fact("task_description", &[str(input.description)]),
            builder::fact(
                "requested_ttl",
                &[builder::int(
                    i64::try_from(input.time_left.as_secs()).unwrap_or(i64::MAX),
                )],
            ),
            builder::fact("time", &[builder::date(&input.now)]),
        ];
        if let Some(identity) = input.identity {
            identity_facts(identity, &mut facts);
        }
        for right in input.held {
            facts.push(builder::fact(
                "held_right",
                &[str(&right.service), str(&right.operation)],
            ));
        }
        for right in input.rights {
            facts.push(builder::fact(
                "requested_right",
                &[str(&right.service), str(&right.operation)],
            ));
        }
        match self.conclude(facts, input.rights) {
            Ok(outcome) => outcome,
            Err(error) => Outcome::Deny {
                reason: format!("issuance policy could not be evaluated: {error}"),
            },
        }
    }

    fn evaluate(&self, input: &PolicyInput<'_>) -> Result<Outcome, biscuit_auth::error::Token> {
        let str = |s: &str| builder::string(s);
        let mut facts: Vec<builder::Fact> = Vec::new();
        identity_facts(input.identity, &mut facts);
        facts.push(builder::fact("agent", &[str(input.agent)]));
        facts.push(builder::fact(
            "agent_key",
            &[str(&input.agent_key.to_string())],
        ));
        for right in input.rights {
            facts.push(builder::fact(
                "requested_right",
                &[str(&right.service), str(&right.operation)],
            ));
        }
        for service in input.audience {
            facts.push(builder::fact("audience", &[str(service)]));
        }
        let ttl = i64::try_from(input.ttl.as_secs()).unwrap_or(i64::MAX);
        facts.push(builder::fact("requested_ttl", &[builder::int(ttl)]));
        facts.push(builder::fact("task_description", &[str(input.description)]));
        facts.push(builder::fact("time", &[builder::date(&input.now)]));
        self.conclude(facts, input.rights)
    }

    /// Runs the policy over `facts` and reads its conclusion about
    /// `requested`.
    fn conclude(
        &self,
        facts: Vec<builder::Fact>,
        requested: &[Right],
    ) -> Result<Outcome, biscuit_auth::error::Token> {
        let mut authorizer = self.builder.clone();
        for fact in facts {
            authorizer = authorizer.fact(fact)?;
        }
        // Limits before build: see the module documentation.
        let mut authorizer = authorizer
            .set_limits(self.limits.clone())
            .build_unauthenticated()?;

        let denies: Vec<(String,)> = authorizer.query(self.queries.deny.clone())?;
        if let Some((reason,)) = denies.into_iter().min() {
            return Ok(Outcome::Deny { reason });
        }
        let asks: Vec<(String,)> = authorizer.query(self.queries.ask.clone())?;
        if let Some((reason,)) = asks.into_iter().min() {
            return Ok(Outcome::Ask { reason });
        }
        let grants: Vec<(String, String)> = authorizer.query(self.queries.grant.clone())?;
        let mut rights: Vec<Right> = requested
            .iter()
            .filter(|r| {
                grants
                    .iter()
                    .any(|(s, o)| *s == r.service && *o == r.operation)
            })
            .cloned()
            .collect();
        rights.sort();
        rights.dedup();
        if rights.is_empty() {
            return Ok(Outcome::Deny {
                reason: "the issuance policy grants none of the requested rights".into(),
            });
        }
        let ttls: Vec<(i64,)> = authorizer.query(self.queries.max_ttl.clone())?;
        let max_ttl = ttls
            .into_iter()
            .map(|(t,)| Duration::from_secs(u64::try_from(t).unwrap_or(0)))
            .min();
        Ok(Outcome::Allow { rights, max_ttl })
    }
}

/// The facts of a verified login: `subject`, `idp`, `email`, `group`,
/// `claim`, each value a built term.
fn identity_facts(id: &Identity, facts: &mut Vec<builder::Fact>) {
    let str = |s: &str| builder::string(s);
    facts.push(builder::fact("subject", &[str(&id.subject)]));
    facts.push(builder::fact("idp", &[str(&id.issuer)]));
    if let Some(email) = &id.email {
        facts.push(builder::fact("email", &[str(email)]));
    }
    for group in &id.groups {
        facts.push(builder::fact("group", &[str(group)]));
    }
    for (name, value) in &id.claims {
        let value: Term = match value {
            ClaimValue::Str(s) => str(s),
            ClaimValue::Int(i) => builder::int(*i),
            ClaimValue::Bool(b) => builder::boolean(*b),
        };
        facts.push(builder::fact("claim", &[str(name), value]));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn rights(text: &str) -> Vec<Right> {
        text.split_whitespace()
            .map(|r| r.parse().unwrap())
            .collect()
    }

    #[test]
    fn the_default_policy_decides_requests_during_a_task() {
        let policy = IssuancePolicy::default_policy().unwrap();
        let key = mandate_core::SecretKey::generate().public();
        let none = "the issuance policy grants none of the requested rights";
        // (held, asked, outcome)
        let cases: Vec<(&str, &str, Outcome)> = vec![
            (
                "expenses:submit",
                "expenses:read",
                Outcome::Allow {
                    rights: rights("expenses:read"),
                    // The staff bound; a running task's deadline never moves.
                    max_ttl: Some(Duration::from_secs(3600)),
                },
            ),
            (
                "analytics:read",
                "payments:transfer",
                Outcome::Ask {
                    reason: "payments:transfer needs approval".into(),
                },
            ),
            (
                "analytics:read",
                "analytics:admin payments:transfer",
                Outcome::Deny {
                    reason: "admin rights are not added to a running task".into(),
                },
            ),
            // The login's facts at run time: the staff rule fires for staff.
            (
                "analytics:read",
                "expenses:read",
                Outcome::Allow {
                    rights: rights("expenses:read"),
                    max_ttl: Some(Duration::from_secs(3600)),
                },
            ),
            (
                "analytics:read",
                "expenses:submit",
                Outcome::Allow {
                    rights: rights("expenses:submit"),
                    max_ttl: Some(Duration::from_secs(3600)),
                },
            ),
        ];
        let staff = Identity {
            issuer: "https://idp.test".into(),
            subject: "sub-alice".into(),
            principal: "alice@example.com".into(),
            email: Some("alice@example.com".into()),
            groups: vec!["staff".into()],
            claims: vec![("department".into(), ClaimValue::Str("finance".into()))],
        };
        let outsider = Identity {
            groups: vec!["contractors".into()],
            ..staff.clone()
        };
        // Without the login (or with another group) the staff rules do not fire.
        for identity in [None, Some(&outsider)] {
            let (held, asked) = (rights("analytics:read"), rights("expenses:read"));
            let outcome = policy.decide_request(&RequestInput {
                principal: "alice@example.com",
                identity,
                task: "task-1",
                agent: "orchestrator",
                agent_key: &key,
                held: &held,
                rights: &asked,
                reason: "needed",
                description: "",
                time_left: Duration::from_secs(600),
                now: SystemTime::now(),
            });
            assert_eq!(
                outcome,
                Outcome::Deny {
                    reason: none.into()
                },
                "{identity:?}"
            );
        }
        for (held, asked, expected) in cases {
            let (held_rights, asked_rights) = (rights(held), rights(asked));
            let outcome = policy.decide_request(&RequestInput {
                principal: "alice@example.com",
                identity: Some(&staff),
                task: "task-1",
                agent: "orchestrator",
                agent_key: &key,
                held: &held_rights,
                rights: &asked_rights,
                reason: "needed",
                description: "",
                time_left: Duration::from_secs(600),
                now: SystemTime::now(),
            });
            assert_eq!(outcome, expected, "holding {held}, asking {asked}");
        }
    }

    #[test]
    fn a_policy_may_not_state_run_time_facts() {
        for fact in ["held_right(\"a\", \"b\");", "request_reason(\"x\");"] {
            assert!(matches!(
                IssuancePolicy::from_source("p", fact),
                Err(PolicyError::DefinesInput { .. })
            ));
        }
    }
}
