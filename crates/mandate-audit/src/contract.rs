//! The [`AuditLog`] contract as test functions, so every backend — the file
//! log, sled, memory and the PostgreSQL store in another crate — is held to
//! the same checks. For tests only (feature `testing`).
//!
//! Each check panics with a message naming what broke.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // reason: test code fails loudly.

use std::sync::Arc;

use crate::log::AuditLog;
use crate::{verify, AuditWriter, Event, RegistryAction, RegistryEvent, WriterConfig, WriterKey};

/// A registry event numbered `n` (its revocation and task `t-n`): records
/// that differ, for tests of any log.
pub fn event(n: u64) -> Event {
    Event::Registry(RegistryEvent {
        action: RegistryAction::Revoke,
        revocation: n,
        kind: "task".into(),
        value: format!("t-{n}"),
        reason: String::new(),
        by: "contract".into(),
    })
}

/// Runs every check on logs made by `open`, which opens the same (initially
/// empty) log again each time it is called, once the previous handle is
/// dropped; `key` is the writer's key, as a restarted writer reads it again.
pub fn check_log(open: &dyn Fn() -> Arc<dyn AuditLog>, key: &dyn Fn() -> WriterKey) {
    check_empty(&*open());
    check_append_read_and_heads(open(), key());
    check_restart_continues_the_chain(open, key);
    check_concurrent_appends(open(), key());
}

fn check_empty(log: &dyn AuditLog) {
    assert!(log.last().unwrap().is_none(), "a new log has no last entry");
    assert!(log.read(1, 10).unwrap().is_empty(), "a new log reads empty");
    assert!(log.heads().unwrap().is_empty(), "a new log has no heads");
    assert!(!log.log_id().unwrap().is_empty(), "a log has an id");
}

fn check_append_read_and_heads(log: Arc<dyn AuditLog>, key: WriterKey) {
    let writer = AuditWriter::start(Arc::clone(&log), key, WriterConfig::default()).unwrap();
    for n in 1..=50 {
        assert_eq!(
            writer.append_blocking(event(n)).unwrap(),
            n,
            "seq of record {n}"
        );
    }
    writer.close_blocking().unwrap();
    drop(writer);
    let first = log.read(1, 10).unwrap();
    assert_eq!(
        first.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>(),
        "read(1, 10)"
    );
    let tail = log.read(45, 100).unwrap();
    assert_eq!(
        tail.first().map(|e| e.seq),
        Some(45),
        "read(45, ..) starts at 45"
    );
    assert_eq!(tail.len(), 6, "read(45, 100) ends at the newest");
    assert_eq!(log.last().unwrap().map(|e| e.seq), Some(50), "last");
    for pair in first.windows(2) {
        assert_eq!(
            pair[1].prev,
            pair[0].hash(),
            "each entry links to the one before"
        );
    }
    let heads = log.heads().unwrap();
    assert_eq!(
        heads.last().map(|h| h.seq),
        Some(50),
        "closing signs the newest"
    );
    let verified = verify(log.as_ref(), &[])
        .unwrap()
        .expect("the log verifies");
    assert_eq!(verified.records, 50);
    assert_eq!(verified.unsigned_tail(), 0);
}

fn check_restart_continues_the_chain(
    open: &dyn Fn() -> Arc<dyn AuditLog>,
    key: &dyn Fn() -> WriterKey,
) {
    let id = open().log_id().unwrap();
    let reopened = open();
    assert_eq!(
        reopened.log_id().unwrap(),
        id,
        "a reopened log keeps its id"
    );
    let writer = AuditWriter::start(Arc::clone(&reopened), key(), WriterConfig::default()).unwrap();
    assert_eq!(
        writer.append_blocking(event(51)).unwrap(),
        51,
        "the chain continues"
    );
    writer.close_blocking().unwrap();
    drop(writer);
    let verified = verify(reopened.as_ref(), &[])
        .unwrap()
        .expect("the log verifies");
    assert_eq!(verified.records, 51);
}

fn check_concurrent_appends(log: Arc<dyn AuditLog>, key: WriterKey) {
    let writer =
        Arc::new(AuditWriter::start(Arc::clone(&log), key, WriterConfig::default()).unwrap());
    let before = log.last().unwrap().map_or(0, |e| e.seq);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let writer = Arc::clone(&writer);
            std::thread::spawn(move || {
                (0..25)
                    .map(|i| writer.append_blocking(event(1000 + t * 25 + i)).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (before + 1..=before + 200).collect::<Vec<_>>(),
        "every concurrent append acknowledged once, without gaps"
    );
    writer.close_blocking().unwrap();
    let verified = verify(log.as_ref(), &[])
        .unwrap()
        .expect("the log verifies");
    assert_eq!(verified.records, before + 200);
}
