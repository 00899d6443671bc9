//! Reading the trail: filters over records (principal, agent, task,
//! decision, service, time) and pages of matching records in sequence
//! order, newest last.

use std::time::SystemTime;

use crate::decision::Outcome;
use crate::log::AuditLog;
use crate::record::Record;
use crate::{Error, Result};

/// Which records a query wants; every field set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// The principal.
    pub principal: Option<String>,
    /// An agent anywhere in the chain.
    pub agent: Option<String>,
    /// The task.
    pub task: Option<String>,
    /// Allow or deny (decisions and refusals only).
    pub decision: Option<Outcome>,
    /// The service.
    pub service: Option<String>,
    /// Records written at or after this time.
    pub since: Option<SystemTime>,
    /// Records written at or before this time.
    pub until: Option<SystemTime>,
}

impl Filter {
    /// Whether `record` matches.
    pub fn matches(&self, record: &Record) -> bool {
        let event = &record.event;
        if let Some(p) = &self.principal {
            if event.principal() != Some(p.as_str()) {
                return false;
            }
        }
        if let Some(a) = &self.agent {
            if !event.mentions_agent(a) {
                return false;
            }
        }
        if let Some(t) = &self.task {
            if event.task() != Some(t.as_str()) {
                return false;
            }
        }
        if let Some(d) = self.decision {
            if event.outcome() != Some(d) {
                return false;
            }
        }
        if let Some(s) = &self.service {
            if event.service() != Some(s.as_str()) {
                return false;
            }
        }
        if self.since.is_some() || self.until.is_some() {
            let Ok(at) = humantime::parse_rfc3339_weak(&record.time) else {
                return false;
            };
            if self.since.is_some_and(|since| at < since) || self.until.is_some_and(|u| at > u) {
                return false;
            }
        }
        true
    }
}

/// One page of matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Matching records, in sequence order.
    pub records: Vec<Record>,
    /// The sequence number to continue after, when the log holds more.
    pub next_after: Option<u64>,
    /// The newest sequence number read (`after` when none was): a follower
    /// continues after it once the log grows.
    pub scanned_to: u64,
}

/// Parses a stored record body.
///
/// # Errors
/// [`Error::Corrupt`] when the body is not a record.
pub fn decode(seq: u64, body: &[u8]) -> Result<Record> {
    serde_json::from_slice(body).map_err(|e| Error::Corrupt {
        seq,
        message: e.to_string(),
    })
}

/// Up to `limit` records with `seq > after` that match `filter`, oldest
/// first, reading at most `scan` records.
///
/// # Errors
/// [`Error`] when the log cannot be read.
pub fn query(
    log: &dyn AuditLog,
    filter: &Filter,
    after: u64,
    limit: usize,
    scan: usize,
) -> Result<Page> {
    let mut records = Vec::new();
    let mut next = after.saturating_add(1);
    let mut scanned = 0usize;
    let mut scanned_to = after;
    loop {
        let chunk = log.read(next, 4096)?;
        let Some(last) = chunk.last().map(|e| e.seq) else {
            return Ok(Page {
                records,
                next_after: None,
                scanned_to,
            });
        };
        for entry in chunk {
            scanned += 1;
            scanned_to = entry.seq;
            let record = decode(entry.seq, &entry.body)?;
            if filter.matches(&record) {
                records.push(record);
                if records.len() >= limit {
                    return Ok(Page {
                        records,
                        next_after: Some(entry.seq),
                        scanned_to,
                    });
                }
            }
            if scanned >= scan {
                return Ok(Page {
                    records,
                    next_after: Some(entry.seq),
                    scanned_to,
                });
            }
        }
        next = last.saturating_add(1);
    }
}

/// Every matching record, oldest first; the newest `last` only when given.
///
/// # Errors
/// [`Error`] when the log cannot be read.
pub fn query_all(log: &dyn AuditLog, filter: &Filter, last: Option<usize>) -> Result<Vec<Record>> {
    let page = query(log, filter, 0, usize::MAX, usize::MAX)?;
    let mut records = page.records;
    if let Some(n) = last {
        let drop = records.len().saturating_sub(n);
        records.drain(..drop);
    }
    Ok(records)
}

/// A time bound as people write it: a duration ago (`10m`, `2h`) or an RFC
/// 3339 time (`2026-12-01T10:00:00Z`).
///
/// # Errors
/// A message naming what was expected.
pub fn parse_time_bound(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    let text = text.trim();
    if let Ok(ago) = humantime::parse_duration(text) {
        return now
            .checked_sub(ago)
            .ok_or_else(|| format!("`{text}` reaches before the start of time"));
    }
    humantime::parse_rfc3339_weak(text)
        .map_err(|_| format!("`{text}` is neither a duration (10m, 2h) nor an RFC 3339 time"))
}
