//! The issuer's tasks in PostgreSQL, shared by every issuer replica.
//!
//! A task is one row, column for column, created and swapped as every such
//! record is (see `records`): of two replicas updating one task at once,
//! exactly one swap wins and the other sees `Ok(false)`. Each statement
//! commits before it returns, so a close is durable when it is acknowledged.
//!
//! This module must never hold a row lock across a call back into the
//! issuer: each method is one statement.

use std::time::SystemTime;

use mandate_issuer::tasks::{identity_from_json, identity_to_json, StoreError};
use mandate_issuer::{Task, TaskState, TaskStore};
use postgres::types::ToSql;
use postgres::{Client, Row};

use crate::millis::{from_time, to_time};
use crate::off_runtime::{self, OwnedPool};
use crate::records::{self, RecordRow};
use crate::{Error, Pool};

/// The migration table of the issuer's schema (tasks and requests).
pub(crate) const ISSUER_MIGRATIONS: &str = "mandate_issuer_migrations";

mod embedded {
    refinery::embed_migrations!("migrations/issuer");
}

/// Applies the issuer's migrations (tasks and requests) once per database.
pub(crate) fn migrate(pool: &Pool) -> Result<(), Error> {
    crate::migrate::run(pool, embedded::migrations::runner(), ISSUER_MIGRATIONS)
}

/// Tasks in PostgreSQL.
#[derive(Debug)]
pub struct PgTaskStore {
    pool: OwnedPool,
}

impl PgTaskStore {
    /// The task store in the database `pool` reaches, its schema migrated.
    /// Safe to call inside an async runtime (the work runs on a plain thread).
    ///
    /// # Errors
    /// The database cannot be reached or migrated.
    pub fn open(pool: Pool) -> Result<PgTaskStore, Error> {
        Ok(PgTaskStore {
            pool: OwnedPool::migrated(pool, migrate)?,
        })
    }

    /// Connects to `url` (a pool with default bounds) and opens the store,
    /// as [`PgTaskStore::open`].
    ///
    /// # Errors
    /// A malformed URL, or a database that cannot be reached or migrated.
    pub fn connect(url: &str) -> Result<PgTaskStore, Error> {
        PgTaskStore::open(off_runtime::connect(url)?)
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

/// A task as its row's values.
#[derive(Debug, PartialEq)]
struct TaskRow {
    id: String,
    principal: String,
    agent: String,
    agent_key: String,
    rights: Vec<String>,
    description: String,
    open: bool,
    created_ms: i64,
    deadline_ms: i64,
    mandates: i64,
    closed_by: Option<String>,
    /// When it closed (milliseconds), once closed.
    closed_ms: Option<i64>,
    /// The login the task was opened with, as the sled store keeps it (JSON).
    identity: Option<String>,
}

impl TaskRow {
    fn of(task: &Task) -> TaskRow {
        TaskRow {
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
            created_ms: from_time(task.created),
            deadline_ms: from_time(task.deadline),
            mandates: i64::try_from(task.mandates).unwrap_or(i64::MAX),
            closed_by: task.closed_by.clone(),
            closed_ms: task.closed_at.map(from_time),
            identity: task.identity.as_ref().map(identity_to_json),
        }
    }

    fn task(self) -> Result<Task, StoreError> {
        let corrupt = || StoreError::Corrupt(self.id.clone());
        let agent_key = self.agent_key.parse().map_err(|_| corrupt())?;
        let rights = self
            .rights
            .iter()
            .map(|r| r.parse())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| corrupt())?;
        let created = to_time(self.created_ms).ok_or_else(corrupt)?;
        let deadline = to_time(self.deadline_ms).ok_or_else(corrupt)?;
        let mandates = u64::try_from(self.mandates).map_err(|_| corrupt())?;
        let closed_at = match self.closed_ms {
            Some(ms) => Some(to_time(ms).ok_or_else(corrupt)?),
            None => None,
        };
        let identity = match &self.identity {
            Some(json) => Some(identity_from_json(json).ok_or_else(corrupt)?),
            None => None,
        };
        Ok(Task {
            id: self.id,
            principal: self.principal,
            agent: self.agent,
            agent_key,
            rights,
            description: self.description,
            state: if self.open {
                TaskState::Open
            } else {
                TaskState::Closed
            },
            created,
            deadline,
            mandates,
            closed_by: self.closed_by,
            closed_at,
            identity,
        })
    }
}

impl RecordRow for TaskRow {
    const TABLE: &'static str = "mandate_tasks";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "principal",
        "agent",
        "agent_key",
        "rights",
        "description",
        "open",
        "created_ms",
        "deadline_ms",
        "mandates",
        "closed_by",
        "identity",
        "closed_ms",
    ];

    fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.id,
            &self.principal,
            &self.agent,
            &self.agent_key,
            &self.rights,
            &self.description,
            &self.open,
            &self.created_ms,
            &self.deadline_ms,
            &self.mandates,
            &self.closed_by,
            &self.identity,
            &self.closed_ms,
        ]
    }

    fn read(row: &Row) -> Result<TaskRow, postgres::Error> {
        Ok(TaskRow {
            id: row.try_get(0)?,
            principal: row.try_get(1)?,
            agent: row.try_get(2)?,
            agent_key: row.try_get(3)?,
            rights: row.try_get(4)?,
            description: row.try_get(5)?,
            open: row.try_get(6)?,
            created_ms: row.try_get(7)?,
            deadline_ms: row.try_get(8)?,
            mandates: row.try_get(9)?,
            closed_by: row.try_get(10)?,
            identity: row.try_get(11)?,
            closed_ms: row.try_get(12)?,
        })
    }
}

fn decode(row: &Row) -> Result<Task, StoreError> {
    TaskRow::read(row)
        .map_err(|_| StoreError::Corrupt(records::id_of(row)))?
        .task()
}

impl TaskStore for PgTaskStore {
    fn create(&self, task: &Task) -> Result<(), StoreError> {
        if records::insert(&mut *self.client()?, &TaskRow::of(task)).map_err(backend)? {
            Ok(())
        } else {
            Err(StoreError::Exists(task.id.clone()))
        }
    }

    fn get(&self, id: &str) -> Result<Option<Task>, StoreError> {
        let row = records::select::<TaskRow>(&mut *self.client()?, id).map_err(backend)?;
        row.as_ref().map(decode).transpose()
    }

    fn replace(&self, current: &Task, new: &Task) -> Result<bool, StoreError> {
        // The whole current record is the condition: any change since it was
        // read (a refresh's count, a close) makes this swap lose.
        records::swap(
            &mut *self.client()?,
            &TaskRow::of(current),
            &TaskRow::of(new),
        )
        .map_err(backend)
    }

    fn overdue(&self, now: SystemTime, limit: usize) -> Result<Vec<Task>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client()?
            .query(
                &format!(
                    "SELECT {} FROM mandate_tasks \
                     WHERE open AND deadline_ms <= $1 ORDER BY deadline_ms LIMIT $2",
                    records::columns::<TaskRow>()
                ),
                &[&from_time(now), &limit],
            )
            .map_err(backend)?;
        rows.iter().map(decode).collect()
    }

    fn prune_closed(&self, closed_before: SystemTime, limit: usize) -> Result<usize, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // One statement: a closed row never changes again, and rows another
        // replica is deleting at the same time are skipped, not waited on.
        // `= ANY(ARRAY(...))` deletes by primary key whatever the table's
        // size (an `IN` may be planned as a scan of the whole table).
        let removed = self
            .client()?
            .execute(
                "DELETE FROM mandate_tasks WHERE id = ANY(ARRAY( \
                   SELECT id FROM mandate_tasks \
                   WHERE NOT open AND COALESCE(closed_ms, deadline_ms) <= $1 \
                   LIMIT $2 FOR UPDATE SKIP LOCKED))",
                &[&from_time(closed_before), &limit],
            )
            .map_err(backend)?;
        Ok(usize::try_from(removed).unwrap_or(usize::MAX))
    }
}
