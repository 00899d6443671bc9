//! The stored form of a right request (JSON), private to the stores: the
//! domain type [`RightRequest`] is not a wire format.

use mandate_core::Right;
use serde::{Deserialize, Serialize};

use super::{RequestState, RightRequest, StoreError};
use crate::tasks::record::{ms, time};

#[derive(Serialize, Deserialize)]
struct Record {
    id: String,
    task: String,
    principal: String,
    agent: String,
    rights: Vec<String>,
    reason: String,
    policy_reason: String,
    state: String,
    created_ms: u64,
    expires_ms: u64,
    decided_by: Option<String>,
}

pub(super) fn encode(request: &RightRequest) -> Vec<u8> {
    let record = Record {
        id: request.id.clone(),
        task: request.task.clone(),
        principal: request.principal.clone(),
        agent: request.agent.clone(),
        rights: request
            .rights
            .iter()
            .map(|r| format!("{}:{}", r.service, r.operation))
            .collect(),
        reason: request.reason.clone(),
        policy_reason: request.policy_reason.clone(),
        state: request.state.as_str().to_owned(),
        created_ms: ms(request.created),
        expires_ms: ms(request.expires_at),
        decided_by: request.decided_by.clone(),
    };
    // A struct of strings and numbers always serialises.
    serde_json::to_vec(&record).unwrap_or_default()
}

pub(super) fn decode(id: &str, bytes: &[u8]) -> Result<RightRequest, StoreError> {
    let corrupt = || StoreError::Corrupt(id.to_owned());
    let record: Record = serde_json::from_slice(bytes).map_err(|_| corrupt())?;
    let rights = record
        .rights
        .iter()
        .map(|r| r.parse::<Right>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| corrupt())?;
    Ok(RightRequest {
        id: record.id,
        task: record.task,
        principal: record.principal,
        agent: record.agent,
        rights,
        reason: record.reason,
        policy_reason: record.policy_reason,
        state: RequestState::parse(&record.state).ok_or_else(corrupt)?,
        created: time(record.created_ms),
        expires_at: time(record.expires_ms),
        decided_by: record.decided_by,
    })
}
