//! Minting: the one place an authority block is written and signed.
//!
//! [`mint`] writes the authority block — principal, first agent, task,
//! rights, issue time, expiry and its enforcing check, and any initial
//! restrictions — and signs it with a root key whose id travels in the token.
//! The issuer never sees an agent's private key and never evaluates a
//! request; values reach Datalog only as bound parameters.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use biscuit_auth::builder::{self, BlockBuilder};
use mandate_core::name::{self, NameKind};
use mandate_core::vocab;
use mandate_core::{Mandate, PublicKey, Restrictions, Right, RootKey};

/// Why a mandate could not be minted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request is incomplete or holds a value that cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// A restriction or claim was refused by the core vocabulary.
    #[error(transparent)]
    Core(#[from] mandate_core::Error),
    /// biscuit-auth failed to build or sign the token.
    #[error("could not sign the mandate")]
    Signing(#[source] biscuit_auth::error::Token),
}

/// The longest lifetime a mandate may be minted with: mandates are for one
/// task, and a long-lived one is a static key by another name.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Everything the issuer binds into a mandate.
#[derive(Debug, Clone)]
pub struct MintRequest {
    /// Who the agent acts for, in canonical spelling (lower case, NFC; see
    /// [`mandate_core::name`]): `mint` refuses any other.
    pub principal: String,
    /// The first agent's name.
    pub agent: String,
    /// The first agent's public key; `None` mints a bearer mandate, usable by
    /// whoever holds it.
    pub agent_key: Option<PublicKey>,
    /// The task id; `None` gets a fresh unique id.
    pub task: Option<String>,
    /// The rights granted, at least one.
    pub rights: Vec<Right>,
    /// Lifetime from `now`.
    pub ttl: Duration,
    /// Restrictions written into the authority block from the start.
    pub restrictions: Restrictions,
    /// Issue time (injected so tests and golden vectors are reproducible).
    pub now: SystemTime,
}

/// Mints a mandate signed by `root`.
///
/// # Errors
/// [`Error::Invalid`] for a missing right or a lifetime that is zero or
/// beyond [`MAX_TTL`]; [`Error::Core`] for a bad restriction or a principal,
/// agent or task name that is not canonical (see [`mandate_core::name`]).
pub fn mint(root: &RootKey, request: &MintRequest) -> Result<Mandate, Error> {
    if request.rights.is_empty() {
        return Err(Error::Invalid("a mandate needs at least one right".into()));
    }
    if request.ttl.is_zero() || request.ttl > MAX_TTL {
        return Err(Error::Invalid(format!(
            "ttl must be between 1s and {}",
            humantime::format_duration(MAX_TTL)
        )));
    }
    // The same rules revoke and lift apply, so the spelling minted here is
    // the one an operator can revoke.
    name::check(NameKind::Principal, &request.principal)?;
    name::check(NameKind::Agent, &request.agent)?;
    let task = match &request.task {
        Some(task) => {
            name::check(NameKind::Task, task)?;
            task.clone()
        }
        None => format!("task-{}", uuid::Uuid::new_v4()),
    };
    let expires_at = request.now + request.ttl;
    mandate_core::check_within_rights(&request.restrictions, &request.rights, expires_at)?;

    // The agent key as 32 bytes (no bytes for a bearer mandate): the
    // verifier compares it with hop signers' keys as bytes, never as text.
    let agent_key = request.agent_key.map(|k| k.to_bytes()).unwrap_or_default();
    let mut block = BlockBuilder::new();
    let facts = [
        builder::fact(vocab::PRINCIPAL, &[builder::string(&request.principal)]),
        builder::fact(
            vocab::AGENT,
            &[builder::string(&request.agent), builder::bytes(&agent_key)],
        ),
        builder::fact(vocab::TASK, &[builder::string(&task)]),
        builder::fact(vocab::ISSUED_AT, &[builder::date(&request.now)]),
        builder::fact(vocab::EXPIRES_AT, &[builder::date(&expires_at)]),
    ];
    for fact in facts {
        block = block.fact(fact).map_err(Error::Signing)?;
    }
    let mut rights = request.rights.clone();
    rights.sort();
    rights.dedup();
    for right in &rights {
        block = block
            .fact(builder::fact(
                vocab::RIGHT,
                &[
                    builder::string(&right.service),
                    builder::string(&right.operation),
                ],
            ))
            .map_err(Error::Signing)?;
    }
    let mut params = HashMap::new();
    params.insert("expires".to_string(), builder::date(&expires_at));
    block = block
        .code_with_params(
            format!(
                "check if {time}($t), $t <= {{expires}};\n\
                 check if {service}($s), {operation}($o), {right}($s, $o);",
                time = vocab::TIME,
                service = vocab::SERVICE,
                operation = vocab::OPERATION,
                right = vocab::RIGHT,
            ),
            params,
            HashMap::new(),
        )
        .map_err(Error::Signing)?;
    block = request.restrictions.add_to(block, 0)?;

    Ok(Mandate::sign(
        biscuit_auth::Biscuit::builder().merge(block),
        root,
    )?)
}
