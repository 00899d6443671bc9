//! The stored form of a task (JSON), private to the stores: the domain type
//! [`Task`] is not a wire format.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mandate_core::{PublicKey, Right};
use serde::{Deserialize, Serialize};

use super::{StoreError, Task, TaskState};
use crate::idp::{ClaimValue, Identity};

#[derive(Serialize, Deserialize)]
struct Record {
    id: String,
    principal: String,
    agent: String,
    agent_key: String,
    rights: Vec<String>,
    description: String,
    open: bool,
    created_ms: u64,
    deadline_ms: u64,
    mandates: u64,
    closed_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    closed_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identity: Option<IdentityRecord>,
}

/// The login a task was opened with, as stored.
#[derive(Serialize, Deserialize)]
struct IdentityRecord {
    issuer: String,
    subject: String,
    principal: String,
    email: Option<String>,
    groups: Vec<String>,
    /// Claim values as JSON strings, integers or booleans.
    claims: Vec<(String, serde_json::Value)>,
}

fn identity_record(identity: &Identity) -> IdentityRecord {
    IdentityRecord {
        issuer: identity.issuer.clone(),
        subject: identity.subject.clone(),
        principal: identity.principal.clone(),
        email: identity.email.clone(),
        groups: identity.groups.clone(),
        claims: identity
            .claims
            .iter()
            .map(|(name, value)| {
                let value = match value {
                    ClaimValue::Str(s) => serde_json::Value::from(s.as_str()),
                    ClaimValue::Int(i) => serde_json::Value::from(*i),
                    ClaimValue::Bool(b) => serde_json::Value::from(*b),
                };
                (name.clone(), value)
            })
            .collect(),
    }
}

fn identity_of(record: IdentityRecord) -> Option<Identity> {
    let claims = record
        .claims
        .into_iter()
        .map(|(name, value)| {
            let value = match value {
                serde_json::Value::String(s) => ClaimValue::Str(s),
                serde_json::Value::Bool(b) => ClaimValue::Bool(b),
                serde_json::Value::Number(n) => ClaimValue::Int(n.as_i64()?),
                _ => return None,
            };
            Some((name, value))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Identity {
        issuer: record.issuer,
        subject: record.subject,
        principal: record.principal,
        email: record.email,
        groups: record.groups,
        claims,
    })
}

/// The login a task was opened with in its stored form (JSON), for a store
/// that keeps it in a column of its own.
pub fn identity_to_json(identity: &Identity) -> String {
    serde_json::to_string(&identity_record(identity)).unwrap_or_default()
}

/// The login stored by [`identity_to_json`]; `None` when it does not decode.
pub fn identity_from_json(json: &str) -> Option<Identity> {
    identity_of(serde_json::from_str(json).ok()?)
}

/// Milliseconds since the epoch, as stored records keep time.
pub(crate) fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The time a stored record kept as [`ms`].
pub(crate) fn time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

pub(super) fn encode(task: &Task) -> Vec<u8> {
    let record = Record {
        id: task.id.clone(),
        principal: task.principal.clone(),
        agent: task.agent.clone(),
        agent_key: task.agent_key.to_string(),
        rights: task
            .rights
            .iter()
            .map(|r| format!("{}:{}", r.service, r.operation))
            .collect(),
        description: task.description.clone(),
        open: task.state == TaskState::Open,
        created_ms: ms(task.created),
        deadline_ms: ms(task.deadline),
        mandates: task.mandates,
        closed_by: task.closed_by.clone(),
        closed_ms: task.closed_at.map(ms),
        identity: task.identity.as_ref().map(identity_record),
    };
    // A struct of strings and numbers always serialises.
    serde_json::to_vec(&record).unwrap_or_default()
}

pub(super) fn decode(id: &str, bytes: &[u8]) -> Result<Task, StoreError> {
    let corrupt = || StoreError::Corrupt(id.to_owned());
    let record: Record = serde_json::from_slice(bytes).map_err(|_| corrupt())?;
    let agent_key: PublicKey = record.agent_key.parse().map_err(|_| corrupt())?;
    let identity = match record.identity {
        Some(stored) => Some(identity_of(stored).ok_or_else(corrupt)?),
        None => None,
    };
    let rights = record
        .rights
        .iter()
        .map(|r| r.parse::<Right>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| corrupt())?;
    Ok(Task {
        id: record.id,
        principal: record.principal,
        agent: record.agent,
        agent_key,
        rights,
        description: record.description,
        state: if record.open {
            TaskState::Open
        } else {
            TaskState::Closed
        },
        created: time(record.created_ms),
        deadline: time(record.deadline_ms),
        mandates: record.mandates,
        closed_by: record.closed_by,
        closed_at: record.closed_ms.map(time),
        identity,
    })
}
