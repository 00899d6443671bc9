//! Service policies: Datalog text that decides requests after the token's
//! own checks.
//!
//! A policy is parsed once, when the verifier is built. It is refused when it
//! does not parse (with the position), when it has no `allow` policy, or
//! when it defines a fact only the issuer may state (`principal`, `right`,
//! ...): the authorizer trusts its own facts as much as the authority
//! block's, so such a policy could grant what no issuer signed.

use std::path::Path;

use biscuit_auth::builder::AuthorizerBuilder;
use mandate_core::vocab;

use crate::Error;

/// The default policy, `datalog/policies/default.datalog`, compiled in.
const DEFAULT_POLICY: &str = include_str!("../../../datalog/policies/default.datalog");

/// A parsed service policy.
#[derive(Debug, Clone)]
pub struct Policy {
    name: String,
    source: String,
    builder: AuthorizerBuilder,
    policies: Vec<String>,
    counts: crate::complexity::FactCounts,
}

impl Policy {
    /// The compiled-in default policy.
    pub fn default_policy() -> Policy {
        // The default policy is part of this crate and covered by tests; if it
        // failed to parse, no verifier could be built, so fall back to a
        // policy that denies everything rather than panic.
        Policy::from_source("default", DEFAULT_POLICY)
            .or_else(|_| Policy::from_source("deny-all", "deny if true;"))
            .unwrap_or_else(|_| Policy::empty())
    }

    fn empty() -> Policy {
        Policy {
            name: "empty".into(),
            source: String::new(),
            builder: AuthorizerBuilder::new(),
            policies: Vec::new(),
            counts: Default::default(),
        }
    }

    /// Parses policy text; `name` appears in decisions (a file name, say).
    ///
    /// # Errors
    /// [`Error::Token`] wrapping [`mandate_core::Error::Datalog`] (with line
    /// and column) or [`mandate_core::Error::Invalid`].
    pub fn from_source(name: &str, source: &str) -> Result<Policy, Error> {
        let parsed = mandate_core::parse_datalog(source, mandate_core::DatalogKind::Policy)?;
        let invalid = |msg: String| Error::Token(mandate_core::Error::Invalid(msg));
        let defined = parsed
            .facts
            .iter()
            .map(|(_, f)| &f.predicate.name)
            .chain(parsed.rules.iter().map(|(_, r)| &r.head.name));
        for fact in defined {
            if vocab::ISSUER_ONLY.contains(&fact.as_str())
                || vocab::VERIFIER_ONLY.contains(&fact.as_str())
            {
                return Err(invalid(format!(
                    "policy `{name}` defines `{fact}`, a fact only the issuer or the verifier may state"
                )));
            }
        }
        let policies: Vec<String> = parsed
            .policies
            .iter()
            .map(|(text, _)| text.trim().to_string())
            .collect();
        let has_allow = parsed
            .policies
            .iter()
            .any(|(_, p)| p.kind == biscuit_parser::builder::PolicyKind::Allow);
        let mut counts = crate::complexity::FactCounts::default();
        for (_, fact) in &parsed.facts {
            *counts.facts.entry(fact.predicate.name.clone()).or_default() += 1;
        }
        for (_, rule) in &parsed.rules {
            counts.heads.insert(rule.head.name.clone());
        }
        let builder = AuthorizerBuilder::new()
            .code(source)
            .map_err(|e| mandate_core::Error::from_datalog(source, e))?;
        if !has_allow {
            return Err(invalid(format!(
                "policy `{name}` has no `allow if` policy, so it could never allow a request"
            )));
        }
        Ok(Policy {
            name: name.to_string(),
            source: source.to_string(),
            policies,
            builder,
            counts,
        })
    }

    /// Reads and parses a policy file.
    ///
    /// # Errors
    /// As [`Policy::from_source`], plus [`mandate_core::Error::Io`].
    pub fn from_file(path: &Path) -> Result<Policy, Error> {
        let source =
            mandate_core::text_file::read_text_file(path, mandate_core::text_file::MAX_TEXT_FILE)
                .map_err(|source| mandate_core::Error::Io {
                action: "reading",
                path: path.into(),
                source,
            })?;
        Policy::from_source(&path.display().to_string(), &source)
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The policy's Datalog text.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub(crate) fn authorizer(&self) -> AuthorizerBuilder {
        self.builder.clone()
    }

    pub(crate) fn counts(&self) -> &crate::complexity::FactCounts {
        &self.counts
    }

    pub(crate) fn policy_text(&self, index: usize) -> String {
        self.policies
            .get(index)
            .cloned()
            .unwrap_or_else(|| format!("policy #{index}"))
    }
}
