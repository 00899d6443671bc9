//! The writer, the links and the heads, on both logs: records come back as
//! written, and every kind of tampering is named at its first bad record.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mandate_audit::contract::event;
use mandate_audit::{
    query_all, verify, AuditLog, AuditWriter, FileLog, Filter, LogTrail, MemoryLog, SledLog,
    WriterConfig, WriterKey,
};

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
    let records = query_all(&LogTrail(log.clone()), &Filter::default(), None).unwrap();
    assert_eq!(records.len(), 20);
    assert_eq!(records[4].seq, 5);
    let verified = verify(log.as_ref(), &[]).unwrap().unwrap();
    assert_eq!(verified.records, 20);
    assert_eq!(verified.unsigned_tail(), 0, "close signs the last head");
    let filter = Filter {
        task: Some("t-7".into()),
        ..Filter::default()
    };
    assert_eq!(
        query_all(&LogTrail(log.clone()), &filter, None)
            .unwrap()
            .len(),
        1
    );
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
    let records = query_all(&LogTrail(log.clone()), &Filter::default(), None).unwrap();
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

/// The segment file of a log of one segment, and the end of its last frame.
fn segment_and_end(dir: &Path) -> (PathBuf, u64) {
    let segment = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .unwrap();
    let reader = FileLog::open_existing(dir).unwrap();
    let end = reader
        .read(1, 10_000)
        .unwrap()
        .iter()
        .map(|e| 4 + 8 + 32 + e.body.len() as u64)
        .sum();
    (segment, end)
}

/// Writes `bytes` at `offset` of `path`, over what is there.
fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    use std::io::{Seek as _, SeekFrom, Write as _};
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(bytes).unwrap();
}

/// A frame header: length, sequence number, previous hash.
fn frame_header(body_len: u32, seq: u64) -> Vec<u8> {
    let mut bytes = (40 + body_len).to_le_bytes().to_vec();
    bytes.extend_from_slice(&seq.to_le_bytes());
    bytes.extend_from_slice(&[7u8; 32]);
    bytes
}

/// Opens a writer on `dir`, appends record `seq`, closes, and checks that the
/// log verifies with `seq` records.
fn continues_at(dir: &Path, seq: u64) {
    let log: Arc<dyn AuditLog> = Arc::new(FileLog::open(dir).unwrap());
    let writer = AuditWriter::start(
        Arc::clone(&log),
        WriterKey::generate(),
        WriterConfig::default(),
    )
    .unwrap();
    assert_eq!(writer.append_blocking(event(seq)).unwrap(), seq);
    writer.close_blocking().unwrap();
    assert_eq!(verify(log.as_ref(), &[]).unwrap().unwrap().records, seq);
}

#[test]
fn a_file_log_writes_over_zeros_it_wrote_ahead_and_reopens_without_cutting() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log: Arc<dyn AuditLog> = Arc::new(FileLog::open(dir.path()).unwrap());
        fill(log, 10).close_blocking().unwrap();
    }
    let (segment, end) = segment_and_end(dir.path());
    let size = std::fs::metadata(&segment).unwrap().len();
    assert!(
        size > end + 8192 && size <= end + 1024 * 1024,
        "zeros written ahead of the frames: size {size}, frames end at {end}"
    );
    let tail = std::fs::read(&segment).unwrap();
    assert!(tail[end as usize..].iter().all(|b| *b == 0));
    // Reopened: the zeros are space to write over, not a torn tail.
    continues_at(dir.path(), 11);
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len(),
        size,
        "record 11 was written over the zeros"
    );
    let (_, end_11) = segment_and_end(dir.path());
    assert!(end_11 > end);
}

#[test]
fn a_torn_tail_is_cut_and_the_log_continues() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    {
        let log: Arc<dyn AuditLog> = Arc::new(FileLog::open(dir.path()).unwrap());
        fill(log, 4).close_blocking().unwrap();
    }
    let (segment, whole) = segment_and_end(dir.path());
    // A log written without zeros ahead (by an earlier version): a crash in
    // the middle of a batch's write leaves a frame whose length runs past
    // the end of the file.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(whole)
        .unwrap();
    {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&segment)
            .unwrap();
        file.write_all(&frame_header(460, 5)).unwrap();
        file.write_all(&[7u8; 10]).unwrap();
    }
    let reader = FileLog::open_existing(dir.path()).unwrap();
    assert_eq!(
        reader.read(1, 100).unwrap().len(),
        4,
        "readers stop before a torn frame"
    );
    assert!(verify(&reader, &[]).unwrap().is_ok());
    drop(FileLog::open(dir.path()).unwrap());
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len(),
        whole,
        "the torn tail is cut"
    );
    continues_at(dir.path(), 5);
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
fn a_batch_torn_over_zeros_written_ahead_is_cut_and_the_log_continues() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log: Arc<dyn AuditLog> = Arc::new(FileLog::open(dir.path()).unwrap());
        fill(log, 4).close_blocking().unwrap();
    }
    let (segment, whole) = segment_and_end(dir.path());
    let size = std::fs::metadata(&segment).unwrap().len();
    assert!(size > whole + 8192, "zeros ahead: {size} > {whole}");
    // The batch's first page written up to the middle of a frame, the rest
    // not: a frame with zeros in its body.
    let mut torn = frame_header(600, 5);
    torn.extend_from_slice(b"{\"seq\":5,\"time\":");
    write_at(&segment, whole, &torn);
    let reader = FileLog::open_existing(dir.path()).unwrap();
    assert_eq!(
        reader.read(1, 100).unwrap().len(),
        4,
        "readers stop before a frame with zeros in it"
    );
    assert_eq!(verify(&reader, &[]).unwrap().unwrap().records, 4);
    continues_at(dir.path(), 5);

    // A later page of a batch written and an earlier one not: zeros where a
    // frame should start, then part of a frame.
    let (segment, whole) = segment_and_end(dir.path());
    let mut later = frame_header(30, 9);
    later.extend_from_slice(&[b'x'; 30]);
    write_at(&segment, whole + 4096, &later);
    assert!(
        FileLog::open_existing(dir.path())
            .unwrap()
            .read(1, 100)
            .is_err(),
        "a reader cannot tell a torn batch from damage"
    );
    continues_at(dir.path(), 6);
    let (segment, whole) = segment_and_end(dir.path());
    let rest = std::fs::read(&segment).unwrap();
    assert!(
        rest[whole as usize..].iter().all(|b| *b == 0),
        "the writer cut the torn batch before writing record 6"
    );
}

#[test]
fn damage_under_a_signed_head_is_not_taken_for_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log: Arc<dyn AuditLog> = Arc::new(FileLog::open(dir.path()).unwrap());
        fill(log, 4).close_blocking().unwrap();
    }
    let (segment, _) = segment_and_end(dir.path());
    let entries = FileLog::open_existing(dir.path())
        .unwrap()
        .read(1, 4)
        .unwrap();
    // Zeros in record 3, which the head signed at close (#4) covers.
    let third: u64 = entries[..2]
        .iter()
        .map(|e| 4 + 8 + 32 + e.body.len() as u64)
        .sum();
    write_at(&segment, third + 44 + 5, &[0u8; 8]);
    let refused = FileLog::open(dir.path()).unwrap_err();
    assert!(
        refused.to_string().contains("head was signed at #4"),
        "{refused}"
    );
    assert!(
        std::fs::metadata(&segment).unwrap().len() > third,
        "nothing is cut"
    );
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

#[test]
fn every_log_meets_the_contract() {
    use mandate_audit::contract::check_log;
    use mandate_core::SecretKey;

    let secret = SecretKey::generate();
    let key = || WriterKey::new(&secret).unwrap();
    let memory: Arc<dyn AuditLog> = Arc::new(MemoryLog::new());
    check_log(&|| Arc::clone(&memory), &key);
    let files = tempfile::tempdir().unwrap();
    check_log(&|| Arc::new(FileLog::open(files.path()).unwrap()), &key);
    let sled = tempfile::tempdir().unwrap();
    check_log(&|| Arc::new(SledLog::open(sled.path()).unwrap()), &key);
}
