//! The writer, the links and the heads, on both logs: records come back as
//! written, and every kind of tampering is named at its first bad record.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use mandate_audit::{
    query_all, verify, AuditLog, AuditWriter, Event, FileLog, Filter, MemoryLog, RegistryAction,
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

#[test]
fn a_reopened_file_log_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log: Arc<dyn AuditLog> = Arc::new(FileLog::open(dir.path()).unwrap());
        fill(log, 5).close_blocking().unwrap();
    }
    let log: Arc<dyn AuditLog> = Arc::new(FileLog::open(dir.path()).unwrap());
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
    let records = query_all(log.as_ref(), &Filter::default(), None).unwrap();
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=6).collect::<Vec<_>>()
    );
}

#[test]
fn a_file_log_is_written_by_one_process_and_read_by_any() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn AuditLog> = Arc::new(FileLog::open(dir.path()).unwrap());
    let writer = fill(Arc::clone(&log), 3);
    let refused = FileLog::open(dir.path()).unwrap_err();
    assert!(refused.to_string().contains("another process"), "{refused}");
    // A reader sees every acknowledged record while the writer runs.
    let reader = FileLog::open_existing(dir.path()).unwrap();
    assert_eq!(reader.read(1, 100).unwrap().len(), 3);
    assert_eq!(reader.log_id().unwrap(), log.log_id().unwrap());
    writer.close_blocking().unwrap();
    let empty = tempfile::tempdir().unwrap();
    assert!(FileLog::open_existing(empty.path()).is_err());
}

#[test]
fn a_torn_tail_is_cut_and_the_log_continues() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    {
        let log: Arc<dyn AuditLog> = Arc::new(FileLog::open(dir.path()).unwrap());
        fill(log, 4).close_blocking().unwrap();
    }
    let segment = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .unwrap();
    let whole = std::fs::metadata(&segment).unwrap().len();
    // What a crash in the middle of a batch's write leaves: a frame whose
    // length runs past the end of the file, then zeros.
    {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&segment)
            .unwrap();
        file.write_all(&500u32.to_le_bytes()).unwrap();
        file.write_all(&5u64.to_le_bytes()).unwrap();
        file.write_all(&[7u8; 42]).unwrap();
    }
    let reader = FileLog::open_existing(dir.path()).unwrap();
    assert_eq!(
        reader.read(1, 100).unwrap().len(),
        4,
        "readers stop before a torn frame"
    );
    assert!(verify(&reader, &[]).unwrap().is_ok());
    let log: Arc<dyn AuditLog> = Arc::new(FileLog::open(dir.path()).unwrap());
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len(),
        whole,
        "the torn tail is cut"
    );
    let writer = AuditWriter::start(
        Arc::clone(&log),
        WriterKey::generate(),
        WriterConfig::default(),
    )
    .unwrap();
    assert_eq!(writer.append_blocking(event(5)).unwrap(), 5);
    writer.close_blocking().unwrap();
    assert_eq!(verify(log.as_ref(), &[]).unwrap().unwrap().records, 5);
    drop(log);
    // Zeros where the next frame should start are a torn tail too.
    {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&segment)
            .unwrap();
        file.write_all(&[0u8; 4096]).unwrap();
    }
    let reader = FileLog::open_existing(dir.path()).unwrap();
    assert_eq!(verify(&reader, &[]).unwrap().unwrap().records, 5);
}

#[test]
fn a_file_log_reads_from_any_position_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments: about 40 records each.
    let log: Arc<dyn AuditLog> =
        Arc::new(FileLog::open_with_segments(dir.path(), 8 * 1024).unwrap());
    let writer = fill(Arc::clone(&log), 1000);
    writer.close_blocking().unwrap();
    let segments = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "seg")
        })
        .count();
    assert!(segments > 10, "{segments} segments");
    assert_eq!(verify(log.as_ref(), &[]).unwrap().unwrap().records, 1000);
    for from in [1u64, 2, 255, 256, 257, 700, 1000] {
        let got = log.read(from, 3).unwrap();
        let want: Vec<u64> = (from..=(from + 2).min(1000)).collect();
        assert_eq!(
            got.iter().map(|e| e.seq).collect::<Vec<_>>(),
            want,
            "from {from}"
        );
    }
    assert!(log.read(1001, 10).unwrap().is_empty());
    assert_eq!(log.last().unwrap().unwrap().seq, 1000);
}
