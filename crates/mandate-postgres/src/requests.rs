//! Agents' requests for more rights in PostgreSQL, shared by every issuer
//! replica.
//!
//! As with tasks, a request is one row and every decision one conditional
//! `UPDATE` naming the whole current record, so two approvals racing on
//! two replicas grant once and an approval racing a denial has one winner.
//! Each statement commits before it returns: a decision is durable when it
//! is acknowledged.

use std::time::SystemTime;

use mandate_issuer::requests::{RequestState, RequestStore, RightRequest, StoreError};
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{Client, Row};

use crate::millis::{from_time, to_time};
use crate::off_runtime::{self, OwnedPool};
use crate::{Error, Pool};

/// Requests in PostgreSQL.
#[derive(Debug)]
pub struct PgRequestStore {
    pool: OwnedPool,
}

impl PgRequestStore {
    /// The request store in the database `pool` reaches, its schema migrated.
    /// Safe to call inside an async runtime (the work runs on a plain thread).
    ///
    /// # Errors
    /// The database cannot be reached or migrated.
    pub fn open(pool: Pool) -> Result<PgRequestStore, Error> {
        Ok(PgRequestStore {
            pool: OwnedPool::migrated(pool, crate::tasks::migrate)?,
        })
    }

    /// Connects to `url` (a pool with default bounds) and opens the store,
    /// as [`PgRequestStore::open`].
    ///
    /// # Errors
    /// A malformed URL, or a database that cannot be reached or migrated.
    pub fn connect(url: &str) -> Result<PgRequestStore, Error> {
        PgRequestStore::open(off_runtime::connect(url)?)
    }

    fn client(&self) -> Result<impl std::ops::DerefMut<Target = Client>, StoreError> {
        self.pool
            .get()
            .map_err(|e| StoreError::Backend(e.to_string()))
    }
}

fn backend(error: postgres::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

/// A request as its row's values.
struct RequestRow {
    id: String,
    task: String,
    principal: String,
    agent: String,
    rights: Vec<String>,
    reason: String,
    policy_reason: String,
    state: String,
    created_ms: i64,
    expires_ms: i64,
    decided_by: Option<String>,
}

impl RequestRow {
    fn of(request: &RightRequest) -> RequestRow {
        RequestRow {
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
            created_ms: from_time(request.created),
            expires_ms: from_time(request.expires_at),
            decided_by: request.decided_by.clone(),
        }
    }

    /// The values in [`COLUMNS`]' order.
    fn values(&self) -> [&(dyn ToSql + Sync); 11] {
        [
            &self.id,
            &self.task,
            &self.principal,
            &self.agent,
            &self.rights,
            &self.reason,
            &self.policy_reason,
            &self.state,
            &self.created_ms,
            &self.expires_ms,
            &self.decided_by,
        ]
    }

    fn read(row: &Row) -> Result<RequestRow, postgres::Error> {
        Ok(RequestRow {
            id: row.try_get(0)?,
            task: row.try_get(1)?,
            principal: row.try_get(2)?,
            agent: row.try_get(3)?,
            rights: row.try_get(4)?,
            reason: row.try_get(5)?,
            policy_reason: row.try_get(6)?,
            state: row.try_get(7)?,
            created_ms: row.try_get(8)?,
            expires_ms: row.try_get(9)?,
            decided_by: row.try_get(10)?,
        })
    }

    fn request(self) -> Result<RightRequest, StoreError> {
        let corrupt = || StoreError::Corrupt(self.id.clone());
        let rights = self
            .rights
            .iter()
            .map(|r| r.parse())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| corrupt())?;
        let state = RequestState::parse(&self.state).ok_or_else(corrupt)?;
        let created = to_time(self.created_ms).ok_or_else(corrupt)?;
        let expires_at = to_time(self.expires_ms).ok_or_else(corrupt)?;
        Ok(RightRequest {
            id: self.id,
            task: self.task,
            principal: self.principal,
            agent: self.agent,
            rights,
            reason: self.reason,
            policy_reason: self.policy_reason,
            state,
            created,
            expires_at,
            decided_by: self.decided_by,
        })
    }
}

const COLUMNS: &str = "id, task, principal, agent, rights, reason, policy_reason, state, \
                       created_ms, expires_ms, decided_by";

fn decode(row: &Row) -> Result<RightRequest, StoreError> {
    let id: String = row.try_get(0).unwrap_or_default();
    RequestRow::read(row)
        .map_err(|_| StoreError::Corrupt(id))?
        .request()
}

impl RequestStore for PgRequestStore {
    fn create(&self, request: &RightRequest) -> Result<(), StoreError> {
        let r = RequestRow::of(request);
        let inserted = self
            .client()?
            .execute(
                &format!(
                    "INSERT INTO mandate_right_requests ({COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (id) DO NOTHING"
                ),
                &r.values(),
            )
            .map_err(backend)?;
        if inserted == 1 {
            Ok(())
        } else {
            Err(StoreError::Exists(request.id.clone()))
        }
    }

    fn get(&self, id: &str) -> Result<Option<RightRequest>, StoreError> {
        let row = self
            .client()?
            .query_opt(
                &format!("SELECT {COLUMNS} FROM mandate_right_requests WHERE id = $1"),
                &[&id],
            )
            .map_err(backend)?;
        row.as_ref().map(decode).transpose()
    }

    fn replace(&self, current: &RightRequest, new: &RightRequest) -> Result<bool, StoreError> {
        let (c, n) = (RequestRow::of(current), RequestRow::of(new));
        let mut values: Vec<&(dyn ToSql + Sync)> = c.values().to_vec();
        // The id stays; the other ten columns take the new record's values.
        values.extend_from_slice(&n.values()[1..]);
        let swapped = self
            .client()?
            .execute(
                "UPDATE mandate_right_requests SET \
                   task = $12, principal = $13, agent = $14, rights = $15, reason = $16, \
                   policy_reason = $17, state = $18, created_ms = $19, expires_ms = $20, \
                   decided_by = $21 \
                 WHERE id = $1 AND task = $2 AND principal = $3 AND agent = $4 \
                   AND rights = $5 AND reason = $6 AND policy_reason = $7 AND state = $8 \
                   AND created_ms = $9 AND expires_ms = $10 \
                   AND decided_by IS NOT DISTINCT FROM $11",
                &values,
            )
            .map_err(backend)?;
        Ok(swapped == 1)
    }

    fn find(
        &self,
        keep: &dyn Fn(&RightRequest) -> bool,
        limit: usize,
    ) -> Result<Vec<RightRequest>, StoreError> {
        let mut client = self.client()?;
        // Oldest first, streamed: reading stops at the `limit`-th match.
        let no_params: [&(dyn ToSql + Sync); 0] = [];
        let mut rows = client
            .query_raw(
                &format!("SELECT {COLUMNS} FROM mandate_right_requests ORDER BY created_ms, id"),
                no_params,
            )
            .map_err(backend)?;
        let mut found = Vec::new();
        while found.len() < limit {
            let Some(row) = rows.next().map_err(backend)? else {
                break;
            };
            let request = decode(&row)?;
            if keep(&request) {
                found.push(request);
            }
        }
        Ok(found)
    }

    fn prune_settled(&self, expired_before: SystemTime, limit: usize) -> Result<usize, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // A pending row is never removed and a settled one never changes
        // again, so this races with no decision; rows another replica is
        // deleting at the same time are skipped, not waited on.
        let removed = self
            .client()?
            .execute(
                "DELETE FROM mandate_right_requests WHERE id = ANY(ARRAY( \
                   SELECT id FROM mandate_right_requests \
                   WHERE state <> 'pending' AND expires_ms <= $1 \
                   LIMIT $2 FOR UPDATE SKIP LOCKED))",
                &[&from_time(expired_before), &limit],
            )
            .map_err(backend)?;
        Ok(usize::try_from(removed).unwrap_or(usize::MAX))
    }
}
