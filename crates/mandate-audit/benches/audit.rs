//! What the audit trail costs: `cargo bench -p mandate-audit`.
//!
//! - `record/build`: the work a server adds on the decision path before it
//!   waits — a `DecisionRecord` made from a real warm `Decision` (minted,
//!   verified, decided once beforehand) and handed to the writer's queue is
//!   measured by `record/build_and_submit` on an in-memory log;
//! - `record/encode_and_link`: the writer's share per record: JSON encoding
//!   and the SHA-256 link;
//! - `append/durable_file/N` and `append/durable_sled/N`: N concurrent
//!   decisions appended to a durable log (segment files, the default; sled,
//!   for stores made before) and acknowledged (one group-committed flush per
//!   batch), i.e. N records per iteration: records/s = N / time;
//! - after the criterion groups, `verify` of a file log of
//!   `MANDATE_BENCH_VERIFY_RECORDS` records (default 1 000 000), built once
//!   (buffered, not timed) and verified once, timed, with the result printed.
//!   Set it to 0 to skip.
//! - then `cpu`: `MANDATE_BENCH_CPU_RECORDS` decision records (default
//!   100 000) appended durably to a file log by 32 concurrent tasks on a
//!   2-thread runtime, as a server's requests append them; prints the
//!   records/s and the CPU every thread of the process used per record
//!   (`/proc/self/task/*/schedstat`, Linux): the decision path's record, the
//!   hand-offs to the writer and back, encoding, hashing and the disk
//!   writes, without HTTP or evaluation. Set it to 0 to skip.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use mandate_audit::integrity::entry_hash;
use mandate_audit::{
    AuditLog, AuditWriter, DecisionContext, DecisionRecord, Durability, Event, FileLog, MemoryLog,
    Record, SledLog, WriterConfig, WriterKey,
};
use mandate_core::{KeySet, Request, ResourcePath, RootKey, SecretKey};
use mandate_issuer::{mint, MintRequest};
use mandate_verifier::{Decision, Verifier};

/// A warm decision for bob's analytics agent, with attributes.
fn decision() -> Decision {
    let root = RootKey {
        secret: SecretKey::generate(),
        key_id: Some(1),
    };
    let mut keys = KeySet::new();
    keys.insert(Some(1), root.secret.public());
    let mandate = mint(
        &root,
        &MintRequest {
            principal: "bob@example.com".into(),
            agent: "analytics-bot".into(),
            agent_key: None,
            task: Some("t-42".into()),
            rights: vec!["datasets:read".parse().unwrap()],
            ttl: Duration::from_secs(3600),
            restrictions: Default::default(),
            now: SystemTime::now(),
        },
    )
    .unwrap();
    let token = mandate.to_base64().unwrap();
    let verifier = Verifier::builder().root_keys(keys).build().unwrap();
    let mut request = Request::new(
        "datasets",
        "read",
        ResourcePath::parse("/q3-sales/regions/emea").unwrap(),
        SystemTime::now(),
    );
    request.attrs = vec![
        ("rows".into(), mandate_core::AttrValue::Int(1000)),
        ("format".into(), mandate_core::AttrValue::Str("csv".into())),
    ];
    verifier.authorize(&token, &request).unwrap();
    let decision = verifier.authorize(&token, &request).unwrap();
    assert!(decision.allowed, "{:?}", decision.reason);
    decision
}

fn context() -> DecisionContext {
    DecisionContext {
        api: "authorize",
        request_id: "m-18c2f-1f".into(),
        verifier: "mandate@127.0.0.1:7700".into(),
        revocation_seq: Some(17),
        token_fingerprint: "sha256:06d70c39e6c12666".into(),
    }
}

fn record_cost(c: &mut Criterion) {
    let decision = decision();
    let context = context();
    let mut group = c.benchmark_group("record");
    group.bench_function("build", |b| {
        b.iter(|| black_box(DecisionRecord::new(black_box(&decision), &context)))
    });
    let record = Record {
        seq: 12,
        time: "2026-12-01T10:00:00.000Z".into(),
        writer: "sha256:c4f0853d522f27e5".into(),
        event: Event::Decision(DecisionRecord::new(&decision, &context)),
    };
    let prev = [7u8; 32];
    group.bench_function("encode_and_link", |b| {
        b.iter(|| {
            let body = serde_json::to_vec(black_box(&record)).unwrap();
            black_box(entry_hash(12, &prev, &body))
        })
    });
    println!(
        "one decision record is {} bytes of JSON",
        serde_json::to_vec(&record).unwrap().len()
    );
    // End to end through the writer thread on a log in memory: what one
    // acknowledged record costs in CPU when nothing waits for a disk.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let writer = Arc::new(
        AuditWriter::start(
            Arc::new(MemoryLog::new()),
            WriterKey::generate(),
            WriterConfig::default(),
        )
        .unwrap(),
    );
    group.throughput(Throughput::Elements(64));
    group.bench_function("build_and_append_64_in_memory", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut waits = Vec::with_capacity(64);
                for _ in 0..64 {
                    let writer = Arc::clone(&writer);
                    let record = DecisionRecord::new(&decision, &context);
                    waits.push(tokio::spawn(async move {
                        writer.append(Event::Decision(record)).await.unwrap()
                    }));
                }
                for wait in waits {
                    wait.await.unwrap();
                }
            })
        })
    });
    group.finish();
}

fn append_durable(c: &mut Criterion) {
    let file = tempfile::tempdir().unwrap();
    append_durable_to(c, "file", Arc::new(FileLog::open(file.path()).unwrap()));
    let sled = tempfile::tempdir().unwrap();
    append_durable_to(c, "sled", Arc::new(SledLog::open(sled.path()).unwrap()));
}

fn append_durable_to(c: &mut Criterion, name: &str, log: Arc<dyn AuditLog>) {
    let decision = decision();
    let context = context();
    let writer =
        Arc::new(AuditWriter::start(log, WriterKey::generate(), WriterConfig::default()).unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group(format!("append/durable_{name}"));
    group.sample_size(20);
    for concurrent in [1usize, 16, 256] {
        group.throughput(Throughput::Elements(concurrent as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(concurrent),
            &concurrent,
            |b, &n| {
                b.iter(|| {
                    runtime.block_on(async {
                        let mut waits = Vec::with_capacity(n);
                        for _ in 0..n {
                            let writer = Arc::clone(&writer);
                            let record = DecisionRecord::new(&decision, &context);
                            waits.push(tokio::spawn(async move {
                                writer.append(Event::Decision(record)).await.unwrap()
                            }));
                        }
                        for wait in waits {
                            wait.await.unwrap();
                        }
                    })
                })
            },
        );
    }
    group.finish();
    writer.close_blocking().unwrap();
}

/// Builds a file log of `records` decision records, then times one verify.
fn verify_table(records: u64) {
    if records == 0 {
        return;
    }
    let decision = decision();
    let context = context();
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn AuditLog> = Arc::new(FileLog::open(dir.path()).unwrap());
    let config = WriterConfig {
        durability: Durability::Buffered {
            flush_every: Duration::from_secs(1),
        },
        queue: 16_384,
        ..WriterConfig::default()
    };
    let writer = AuditWriter::start(Arc::clone(&log), WriterKey::generate(), config).unwrap();
    let built = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut waits = std::collections::VecDeque::new();
        for _ in 0..records {
            if waits.len() >= 8192 {
                let wait: tokio::task::JoinHandle<u64> = waits.pop_front().unwrap();
                wait.await.unwrap();
            }
            let record = DecisionRecord::new(&decision, &context);
            let writer = writer.clone();
            waits.push_back(tokio::spawn(async move {
                writer.append(Event::Decision(record)).await.unwrap()
            }));
        }
        for wait in waits {
            wait.await.unwrap();
        }
    });
    writer.close_blocking().unwrap();
    println!(
        "verify: built a file log of {records} records in {:.1?} (buffered writes)",
        built.elapsed()
    );
    let started = Instant::now();
    let verified = mandate_audit::verify(log.as_ref(), &[]).unwrap().unwrap();
    let took = started.elapsed();
    assert_eq!(verified.records, records);
    println!(
        "verify: {records} records, {} signed heads: {:.2?} ({:.2} µs/record)",
        verified.heads,
        took,
        took.as_secs_f64() * 1e6 / records as f64
    );
}

/// CPU time every thread of this process has run so far, or `None` where
/// `/proc/self/task/*/schedstat` is not there.
fn process_cpu() -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let text = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

/// Appends `records` decision records durably from 32 tasks and prints the
/// CPU per record.
fn durable_cpu_table(records: u64) {
    const TASKS: u64 = 32;
    if records == 0 {
        return;
    }
    let decision = Arc::new(decision());
    let context = Arc::new(context());
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn AuditLog> = Arc::new(FileLog::open(dir.path()).unwrap());
    let writer =
        Arc::new(AuditWriter::start(log, WriterKey::generate(), WriterConfig::default()).unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let each = records / TASKS;
    let Some(cpu_before) = process_cpu() else {
        println!("cpu: skipped (no /proc/self/task/*/schedstat)");
        return;
    };
    let started = Instant::now();
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..TASKS {
            let (writer, decision, context) = (
                Arc::clone(&writer),
                Arc::clone(&decision),
                Arc::clone(&context),
            );
            tasks.push(tokio::spawn(async move {
                for _ in 0..each {
                    let record = DecisionRecord::new(&decision, &context);
                    writer.append(Event::Decision(record)).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
    let took = started.elapsed();
    let cpu = process_cpu().unwrap_or(cpu_before) - cpu_before;
    let appended = each * TASKS;
    println!(
        "cpu: {appended} durable records from {TASKS} tasks in {took:.2?} ({:.0} records/s): \
         {:.2} µs of CPU per record",
        appended as f64 / took.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / appended as f64
    );
    writer.close_blocking().unwrap();
}

criterion_group!(benches, record_cost, append_durable);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // Only under `cargo bench`, not `cargo test --benches`.
    if std::env::args().any(|a| a == "--bench") {
        let records = std::env::var("MANDATE_BENCH_VERIFY_RECORDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000);
        verify_table(records);
        let records = std::env::var("MANDATE_BENCH_CPU_RECORDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000);
        durable_cpu_table(records);
    }
}
