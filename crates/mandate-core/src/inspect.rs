//! Inspection: a readable report of what a token says, and whether its
//! signatures verify.
//!
//! The report reads the authority block without trusting it unless the
//! caller supplied root keys and they verified; [`SignatureStatus`] says
//! which. Nothing here decides a request.

use std::time::SystemTime;

use serde::Serialize;

use crate::authority::AuthorityClaims;
use crate::keys::KeySet;
use crate::restrict::Right;
use crate::token::UnverifiedMandate;
use crate::Error;

/// Whether the report's claims are backed by verified signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SignatureStatus {
    /// No root key was given; nothing in the report is verified.
    NotChecked,
    /// Every signature verified against a trusted root key.
    Valid,
    /// Verification failed; the report shows what the bytes claim.
    Invalid {
        /// Why verification failed.
        reason: String,
    },
}

/// One block of the token.
#[derive(Debug, Clone, Serialize)]
pub struct BlockReport {
    /// 0 for the authority block.
    pub index: usize,
    /// The block's revocation id, hex.
    pub id: String,
    /// The agent key that signed the block, for a signed hop.
    pub signed_by: Option<String>,
    /// The block as escaped Datalog, for people (never parsed back).
    pub source: String,
}

/// A readable report of a token.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// Whether the claims below were verified.
    pub signature: SignatureStatus,
    /// The root key id the token names.
    pub root_key_id: Option<u32>,
    /// `principal(P)`.
    pub principal: Option<String>,
    /// `agent(Name, Key)` facts of the authority block, as (name, key).
    pub agents: Vec<AgentReport>,
    /// True when the first agent has no key: whoever holds the token can use it.
    pub bearer: bool,
    /// The delegation chain as the signatures state it, first agent to
    /// holder (verified only when `signature` is valid).
    pub chain: Vec<String>,
    /// Why the chain is broken, if it is (a verifier would deny).
    pub chain_error: Option<String>,
    /// `task(Id)`.
    pub task: Option<String>,
    /// `right(S, O)` facts as `S:O`.
    pub rights: Vec<String>,
    /// `issued_at`, RFC 3339.
    pub issued_at: Option<String>,
    /// `expires_at`, RFC 3339.
    pub expires_at: Option<String>,
    /// The expiry that applies after every block's shorter `--ttl`.
    pub effective_expires_at: Option<String>,
    /// Seconds until the effective expiry at inspection time; negative once
    /// expired.
    pub expires_in_seconds: Option<i64>,
    /// The last block's revocation id: the id that revokes this token and
    /// everything delegated from it.
    pub token_id: String,
    /// The authority block's revocation id: revokes the whole tree.
    pub root_id: String,
    /// Every block, authority first.
    pub blocks: Vec<BlockReport>,
}

/// An agent named in the authority block.
#[derive(Debug, Clone, Serialize)]
pub struct AgentReport {
    /// The agent's name.
    pub name: String,
    /// Its public key, empty for a bearer mandate, or why the bytes are not
    /// a key.
    pub key: String,
}

/// Reports what `token` says at `now`; with `root_keys`, also whether its
/// signatures verify.
///
/// # Errors
/// [`Error::Datalog`] or [`Error::Biscuit`] only if a block cannot be printed
/// back, which a parsed token should never cause.
pub fn inspect(
    token: &UnverifiedMandate,
    root_keys: Option<&KeySet>,
    now: SystemTime,
) -> Result<Inspection, Error> {
    let signature = match root_keys {
        None => SignatureStatus::NotChecked,
        Some(keys) => match token.verify(keys) {
            Ok(_) => SignatureStatus::Valid,
            Err(e) => SignatureStatus::Invalid {
                reason: e.to_string(),
            },
        },
    };
    let contents = token.blocks_with_text()?;
    let claims = contents
        .first()
        .map(|authority| AuthorityClaims::from_facts(&authority.facts))
        .unwrap_or_default();
    let (chain, chain_error) = match crate::chain::read(&contents).1 {
        Ok(chain) => (chain.names(), None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let ids = token.revocation_ids();
    let blocks = contents
        .iter()
        .enumerate()
        .map(|(index, block)| BlockReport {
            index,
            id: ids.get(index).map(hex::encode).unwrap_or_default(),
            signed_by: block.signer.map(|k| k.to_string()),
            source: block.source.clone(),
        })
        .collect();
    let rfc3339 = crate::print::rfc3339;
    let effective = crate::scope::effective_expiry(&claims, &contents).or(claims.expires_at);
    let remaining = effective.map(|exp| match exp.duration_since(now) {
        Ok(left) => i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
        Err(past) => -i64::try_from(past.duration().as_secs()).unwrap_or(i64::MAX),
    });
    Ok(Inspection {
        signature,
        root_key_id: token.root_key_id(),
        bearer: claims
            .agents
            .first()
            .is_none_or(|(_, key)| matches!(key, Ok(None))),
        chain,
        chain_error,
        principal: claims.principal,
        agents: claims
            .agents
            .into_iter()
            .map(|(name, key)| AgentReport {
                name,
                key: match key {
                    Ok(Some(key)) => key.to_string(),
                    Ok(None) => String::new(),
                    Err(why) => format!("<{why}>"),
                },
            })
            .collect(),
        task: claims.task,
        rights: claims.rights.iter().map(Right::to_string).collect(),
        issued_at: claims.issued_at.map(rfc3339),
        expires_at: claims.expires_at.map(rfc3339),
        effective_expires_at: effective.map(rfc3339),
        expires_in_seconds: remaining,
        token_id: token.token_id_hex(),
        root_id: token.root_id_hex(),
        blocks,
    })
}
