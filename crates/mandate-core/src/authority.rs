//! What a mandate's authority block states (the principal, the agents, the
//! task, the rights and the validity period), read from its facts without
//! judging whether the block was verified.
//!
//! A fact of the vocabulary with the wrong shape, or stated twice, makes the
//! authority block malformed rather than being guessed at.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::blocks::{Fact, Value};
use crate::keys::AgentKey;
use crate::restrict::Right;
use crate::vocab;

/// An agent key as the authority block or a hop states it: 32 bytes of
/// Ed25519 public key, or no bytes for a bearer first agent.
pub(crate) fn agent_key(value: &Value) -> Result<Option<AgentKey>, String> {
    match value {
        Value::Bytes(bytes) if bytes.is_empty() => Ok(None),
        Value::Bytes(bytes) => AgentKey::from_slice(bytes)
            .map(Some)
            .map_err(|e| e.to_string()),
        _ => Err("the agent key is not a byte string".into()),
    }
}

/// What the authority block states, read without judging whether it was
/// verified.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuthorityClaims {
    pub principal: Option<String>,
    /// Every `agent(Name, Key)` fact: the name and its key, or why the key
    /// is not one.
    pub agents: Vec<(String, Result<Option<AgentKey>, String>)>,
    pub task: Option<String>,
    pub rights: Vec<Right>,
    pub issued_at: Option<SystemTime>,
    pub expires_at: Option<SystemTime>,
    /// The first vocabulary fact with an unexpected shape or stated twice.
    pub malformed: Option<String>,
}

impl AuthorityClaims {
    pub(crate) fn from_facts(facts: &[Fact]) -> AuthorityClaims {
        let mut claims = AuthorityClaims::default();
        let flag = |claims: &mut AuthorityClaims, why: String| {
            claims.malformed.get_or_insert(why);
        };
        for fact in facts {
            let name = fact.name.as_str();
            let once = |slot: bool| {
                if slot {
                    Err(format!("`{name}` is stated more than once"))
                } else {
                    Ok(())
                }
            };
            let result =
                match (name, fact.terms.as_slice()) {
                    (vocab::PRINCIPAL, [Value::Str(p)]) => once(claims.principal.is_some())
                        .map(|()| claims.principal = Some(p.clone())),
                    (vocab::AGENT, [Value::Str(agent), key]) => {
                        claims.agents.push((agent.clone(), agent_key(key)));
                        Ok(())
                    }
                    (vocab::TASK, [Value::Str(t)]) => {
                        once(claims.task.is_some()).map(|()| claims.task = Some(t.clone()))
                    }
                    (vocab::RIGHT, [Value::Str(s), Value::Str(o)]) => {
                        claims.rights.push(Right {
                            service: s.clone(),
                            operation: o.clone(),
                        });
                        Ok(())
                    }
                    (vocab::ISSUED_AT, [Value::Date(t)]) => {
                        once(claims.issued_at.is_some()).map(|()| claims.issued_at = Some(date(*t)))
                    }
                    (vocab::EXPIRES_AT, [Value::Date(t)]) => once(claims.expires_at.is_some())
                        .map(|()| claims.expires_at = Some(date(*t))),
                    (
                        vocab::PRINCIPAL
                        | vocab::AGENT
                        | vocab::TASK
                        | vocab::RIGHT
                        | vocab::ISSUED_AT
                        | vocab::EXPIRES_AT,
                        _,
                    ) => Err(format!("`{name}` has an unexpected shape")),
                    _ => Ok(()),
                };
            if let Err(why) = result {
                flag(&mut claims, why);
            }
        }
        if claims.agents.len() > 1 {
            flag(&mut claims, "`agent` is stated more than once".into());
        }
        claims
    }
}

fn date(secs: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .unwrap_or(UNIX_EPOCH)
}
