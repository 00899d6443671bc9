//! Reading the trail: filters over records (principal, agent, task,
//! decision, service, time) and pages of matching records in the trail's
//! order (a log's sequence, or several writers' logs merged), newest last.

use std::time::SystemTime;

use crate::decision::Outcome;
use crate::record::Record;
use crate::trail::Trail;
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
    /// Matching records, in the trail's order.
    pub records: Vec<Record>,
    /// The trail position of each record in `records` (for a single log,
    /// its sequence number).
    pub positions: Vec<u64>,
    /// The position to continue after, when the trail holds more.
    pub next_after: Option<u64>,
    /// The newest position read (`after` when none was): a follower
    /// continues after it once the trail grows.
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

/// Up to `limit` records at positions after `after` that match `filter`,
/// oldest first, reading at most `scan` records.
///
/// # Errors
/// [`Error`] when the trail cannot be read.
pub fn query(
    trail: &dyn Trail,
    filter: &Filter,
    after: u64,
    limit: usize,
    scan: usize,
) -> Result<Page> {
    let mut page = Page {
        records: Vec::new(),
        positions: Vec::new(),
        next_after: None,
        scanned_to: after,
    };
    let mut scanned = 0usize;
    loop {
        let chunk = trail.read_after(page.scanned_to, 4096)?;
        if chunk.is_empty() {
            return Ok(page);
        }
        for entry in chunk {
            scanned += 1;
            page.scanned_to = entry.position;
            let record = decode(entry.seq, &entry.body)?;
            if filter.matches(&record) {
                page.records.push(record);
                page.positions.push(entry.position);
                if page.records.len() >= limit {
                    page.next_after = Some(entry.position);
                    return Ok(page);
                }
            }
            if scanned >= scan {
                page.next_after = Some(entry.position);
                return Ok(page);
            }
        }
    }
}

/// Every matching record, oldest first; the newest `last` only when given.
///
/// # Errors
/// [`Error`] when the trail cannot be read.
pub fn query_all(trail: &dyn Trail, filter: &Filter, last: Option<usize>) -> Result<Vec<Record>> {
    let page = query(trail, filter, 0, usize::MAX, usize::MAX)?;
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
