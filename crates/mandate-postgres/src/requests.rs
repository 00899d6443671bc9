//! Agents' requests for more rights in PostgreSQL, shared by every issuer
//! replica.
//!
//! As with tasks, a request is one row, created and swapped as every such
//! record is (see `records`), so two approvals racing on two replicas grant
//! once and an approval racing a denial has one winner.
//! Each statement commits before it returns: a decision is durable when it
//! is acknowledged.

use std::time::SystemTime;

use mandate_issuer::requests::{RequestState, RequestStore, RightRequest, StoreError};
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{Client, Row};

use crate::millis::{from_time, to_time};
use crate::off_runtime::{self, OwnedPool};
use crate::records::{self, RecordRow};
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

impl RecordRow for RequestRow {
    const TABLE: &'static str = "mandate_right_requests";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "task",
        "principal",
        "agent",
        "rights",
        "reason",
        "policy_reason",
        "state",
        "created_ms",
        "expires_ms",
        "decided_by",
    ];

    fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
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
}

fn decode(row: &Row) -> Result<RightRequest, StoreError> {
    RequestRow::read(row)
        .map_err(|_| StoreError::Corrupt(records::id_of(row)))?
        .request()
}

impl RequestStore for PgRequestStore {
    fn create(&self, request: &RightRequest) -> Result<(), StoreError> {
        if records::insert(&mut *self.client()?, &RequestRow::of(request)).map_err(backend)? {
            Ok(())
        } else {
            Err(StoreError::Exists(request.id.clone()))
        }
    }

    fn get(&self, id: &str) -> Result<Option<RightRequest>, StoreError> {
        let row = records::select::<RequestRow>(&mut *self.client()?, id).map_err(backend)?;
        row.as_ref().map(decode).transpose()
    }

    fn replace(&self, current: &RightRequest, new: &RightRequest) -> Result<bool, StoreError> {
        records::swap(
            &mut *self.client()?,
            &RequestRow::of(current),
            &RequestRow::of(new),
        )
        .map_err(backend)
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
                &format!(
                    "SELECT {} FROM mandate_right_requests ORDER BY created_ms, id",
                    records::columns::<RequestRow>()
                ),
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
