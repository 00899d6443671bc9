//! The writer, the links and the heads, on both logs: records come back as
//! written, and every kind of tampering is named at its first bad record.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use mandate_audit::{
    query_all, verify, AuditLog, AuditWriter, Event, Filter, MemoryLog, RegistryAction,
    RegistryEvent, SledLog, WriterConfig, WriterKey,
};

fn event(n: u64) -> Event {
    Event::Registry(RegistryEvent {
        action: RegistryAction::Revoke,
        revocation: n,
        kind: "task".into(),
        value: format!("t-{n}"),
        reason: String::new(),
        by: "ops".into(),
    })
}

fn fill(log: Arc<dyn AuditLog>, n: u64) -> AuditWriter {
    let writer = AuditWriter::start(log, WriterKey::generate(), WriterConfig::default()).unwrap();
    for i in 1..=n {
        assert_eq!(writer.append_blocking(event(i)).unwrap(), i);
    }
    writer
}

#[test]
fn records_come_back_in_order_and_verify() {
    let log: Arc<dyn AuditLog> = Arc::new(MemoryLog::new());
    let writer = fill(Arc::clone(&log), 20);
    writer.close_blocking().unwrap();
    let records = query_all(log.as_ref(), &Filter::default(), None).unwrap();
    assert_eq!(records.len(), 20);
    assert_eq!(records[4].seq, 5);
    let verified = verify(log.as_ref(), &[]).unwrap().unwrap();
    assert_eq!(verified.records, 20);
    assert_eq!(verified.unsigned_tail(), 0, "close signs the last head");
    let filter = Filter {
        task: Some("t-7".into()),
        ..Filter::default()
    };
    assert_eq!(query_all(log.as_ref(), &filter, None).unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_batched_and_all_acknowledged() {
    let log: Arc<dyn AuditLog> = Arc::new(MemoryLog::new());
    let writer = AuditWriter::start(
        Arc::clone(&log),
        WriterKey::generate(),
        WriterConfig::default(),
    )
    .unwrap();
    let mut tasks = Vec::new();
    for i in 0..500 {
        let writer = writer.clone();
        tasks.push(tokio::spawn(async move {
            writer.append(event(i)).await.unwrap()
        }));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(task.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=500).collect::<Vec<_>>());
    writer.close().await.unwrap();
    assert_eq!(verify(log.as_ref(), &[]).unwrap().unwrap().records, 500);
}

#[test]
fn a_reopened_sled_log_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log: Arc<dyn AuditLog> = Arc::new(SledLog::open(dir.path()).unwrap());
        fill(log, 5).close_blocking().unwrap();
    }
    let log: Arc<dyn AuditLog> = Arc::new(SledLog::open(dir.path()).unwrap());
    let writer = AuditWriter::start(
        Arc::clone(&log),
        WriterKey::generate(),
        WriterConfig::default(),
    )
    .unwrap();
    assert_eq!(writer.append_blocking(event(6)).unwrap(), 6);
    writer.close_blocking().unwrap();
    let verified = verify(log.as_ref(), &[]).unwrap().unwrap();
    assert_eq!((verified.records, verified.writers.len()), (6, 2));
}

#[test]
fn a_pinned_writer_key_refuses_heads_of_another() {
    let log: Arc<dyn AuditLog> = Arc::new(MemoryLog::new());
    fill(Arc::clone(&log), 3).close_blocking().unwrap();
    let other = WriterKey::generate();
    let tampered = verify(log.as_ref(), &[*other.public()])
        .unwrap()
        .unwrap_err();
    assert!(
        tampered.problem.contains("not a given writer key"),
        "{tampered}"
    );
}
