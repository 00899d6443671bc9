//! The PostgreSQL audit store against the audit log contract, and against what
//! several replicas need: one chain per writer key, one merged trail in commit
//! order, one writing process per log, and tampering named at the first bad record.
//!
//! Each test creates its own database on the server `MANDATE_TEST_PG` names, and
//! skips (printing `SKIPPED: …`) when it is unset.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.

use std::collections::BTreeMap;
use std::sync::Arc;

use mandate_audit::contract::check_log;
use mandate_audit::{
    query_all, verify, AuditLog, AuditWriter, Event, Filter, Record, RegistryAction, RegistryEvent,
    Trail, WriterConfig, WriterKey,
};
use mandate_core::SecretKey;
use mandate_postgres::PgAuditStore;

fn event(writer: &str, n: u64) -> Event {
    Event::Registry(RegistryEvent {
        action: RegistryAction::Revoke,
        revocation: n,
        kind: "task".into(),
        value: format!("{writer}-{n}"),
        reason: String::new(),
        by: writer.into(),
    })
}

/// A writer key that can be read again (as a restarted replica reads its file).
struct Key(SecretKey);

impl Key {
    fn new() -> Key {
        Key(SecretKey::generate())
    }

    fn writer(&self) -> WriterKey {
        WriterKey::new(&self.0).unwrap()
    }

    fn public(&self) -> String {
        self.0.public().to_string()
    }
}

fn writer_of(store: &PgAuditStore, key: &Key) -> AuditWriter {
    let log: Arc<dyn AuditLog> = Arc::new(store.writer_log(&key.public()).unwrap());
    AuditWriter::start(log, key.writer(), WriterConfig::default()).unwrap()
}

fn psql(url: &str, sql: &str) -> u64 {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    client.execute(sql, &[]).unwrap()
}

#[test]
fn a_writers_log_meets_the_contract() {
    let Some(url) = mandate_postgres::testing::fresh_database("audit log contract") else {
        return;
    };
    let store = PgAuditStore::connect(&url).unwrap();
    let key = Key::new();
    check_log(
        &|| Arc::new(store.writer_log(&key.public()).unwrap()),
        &|| key.writer(),
    );
}

#[test]
fn replicas_keep_a_chain_each_and_read_one_trail_in_commit_order() {
    let Some(url) = mandate_postgres::testing::fresh_database("audit replicas") else {
        return;
    };
    // Two replicas: two processes' stores on one database, each its own key.
    let (a, b) = (Key::new(), Key::new());
    let store_a = PgAuditStore::connect(&url).unwrap();
    let store_b = PgAuditStore::connect(&url).unwrap();
    let writer_a = Arc::new(writer_of(&store_a, &a));
    let writer_b = Arc::new(writer_of(&store_b, &b));
    let threads: Vec<_> = [("a", Arc::clone(&writer_a)), ("b", Arc::clone(&writer_b))]
        .into_iter()
        .map(|(name, writer)| {
            std::thread::spawn(move || {
                for n in 1..=100 {
                    assert_eq!(writer.append_blocking(event(name, n)).unwrap(), n);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    writer_a.close_blocking().unwrap();
    writer_b.close_blocking().unwrap();

    let logs = store_a.logs().unwrap();
    assert_eq!(logs.len(), 2, "one log per writer key");
    for log in &logs {
        let pinned = [log.writer().parse().unwrap()];
        let verified = verify(log, &pinned).unwrap().expect("each chain verifies");
        assert_eq!(verified.records, 100);
        assert_eq!(verified.unsigned_tail(), 0);
    }

    // The trail: every record once, positions 1..=200 without a gap, and
    // each writer's records in its own order.
    let trail = store_b.trail();
    let entries = trail.read_after(0, 1000).unwrap();
    assert_eq!(
        entries.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=200).collect::<Vec<_>>()
    );
    let mut per_writer: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for entry in &entries {
        let record: Record = serde_json::from_slice(&entry.body).unwrap();
        assert_eq!(record.seq, entry.seq);
        per_writer
            .entry(record.writer)
            .or_default()
            .push(record.seq);
    }
    assert_eq!(per_writer.len(), 2);
    for seqs in per_writer.values() {
        assert_eq!(seqs, &(1..=100).collect::<Vec<_>>(), "a chain in order");
    }
    // Paging continues after a position.
    assert_eq!(trail.read_after(150, 10).unwrap()[0].position, 151);

    // Queries read every writer's records.
    let filter = Filter {
        task: Some("b-7".into()),
        ..Filter::default()
    };
    let found = query_all(&trail, &filter, None).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].writer, writer_b.fingerprint());
}

#[test]
fn one_process_writes_a_log_at_a_time() {
    let Some(url) = mandate_postgres::testing::fresh_database("audit writer lock") else {
        return;
    };
    let key = Key::new();
    let first = PgAuditStore::connect(&url).unwrap();
    let second = PgAuditStore::connect(&url).unwrap();
    let held = first.writer_log(&key.public()).unwrap();
    let refused = second.writer_log(&key.public()).unwrap_err().to_string();
    assert!(refused.contains("same audit key"), "{refused}");
    drop(held);
    let writer = writer_of(&second, &key);
    assert_eq!(writer.append_blocking(event("k", 1)).unwrap(), 1);
    writer.close_blocking().unwrap();
    drop(writer);

    // Even past the lock (a batch written behind the writer's back), the
    // chain cannot fork: a batch must follow the log's newest entry.
    let log = second.writer_log(&key.public()).unwrap();
    let stale = log.read(1, 1).unwrap();
    let error = log.append(&stale, None, true).unwrap_err().to_string();
    assert!(error.contains("another process writes it"), "{error}");
}

#[test]
fn tampering_in_the_database_is_named_at_the_first_bad_record() {
    let Some(url) = mandate_postgres::testing::fresh_database("audit tampering") else {
        return;
    };
    let store = PgAuditStore::connect(&url).unwrap();
    let key = Key::new();
    let writer = writer_of(&store, &key);
    for n in 1..=20 {
        writer.append_blocking(event("w", n)).unwrap();
    }
    writer.close_blocking().unwrap();
    drop(writer);
    let check = || {
        let logs = store.logs().unwrap();
        verify(&logs[0], &[*key.writer().public()]).unwrap()
    };
    assert!(check().is_ok());

    // An edited record.
    psql(
        &url,
        "UPDATE mandate_audit_entries \
         SET body = convert_to(replace(convert_from(body, 'UTF8'), 'w-7', 'w-8'), 'UTF8') \
         WHERE seq = 7",
    );
    assert_eq!(check().unwrap_err().seq, 7);
    psql(
        &url,
        "UPDATE mandate_audit_entries \
         SET body = convert_to(replace(convert_from(body, 'UTF8'), 'w-8', 'w-7'), 'UTF8') \
         WHERE seq = 7",
    );
    assert!(check().is_ok(), "restored");

    // A deleted record.
    let saved: Vec<u8> = {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client
            .query_one("SELECT body FROM mandate_audit_entries WHERE seq = 12", &[])
            .unwrap()
            .get(0)
    };
    assert!(!saved.is_empty());
    psql(&url, "DELETE FROM mandate_audit_entries WHERE seq = 12");
    assert_eq!(check().unwrap_err().seq, 12);

    // A truncated log: the signed head still names record #20.
    psql(&url, "DELETE FROM mandate_audit_entries WHERE seq >= 12");
    let truncated = check().unwrap_err();
    assert!(truncated.seq >= 11, "{truncated}");
}

#[test]
fn a_buffered_writer_is_flushed_by_a_synchronous_commit() {
    let Some(url) = mandate_postgres::testing::fresh_database("audit buffered") else {
        return;
    };
    let store = PgAuditStore::connect(&url).unwrap();
    let key = Key::new();
    let log: Arc<dyn AuditLog> = Arc::new(store.writer_log(&key.public()).unwrap());
    let config = WriterConfig {
        durability: mandate_audit::Durability::Buffered {
            flush_every: std::time::Duration::from_millis(20),
        },
        ..WriterConfig::default()
    };
    let writer = AuditWriter::start(Arc::clone(&log), key.writer(), config).unwrap();
    for n in 1..=10 {
        writer.append_blocking(event("buffered", n)).unwrap();
    }
    log.flush().unwrap();
    writer.close_blocking().unwrap();
    assert_eq!(log.last().unwrap().map(|e| e.seq), Some(10));
    assert!(verify(log.as_ref(), &[]).unwrap().is_ok());
}
