//! Measurements of the PostgreSQL audit store, on the server `MANDATE_TEST_PG` names
//! (a fresh database per run):
//!
//! 1. Durable appends through the audit writer (group commit: every record waiting
//!    shares one transaction and one WAL flush) from 1, 16 and 256 threads, each
//!    appending and waiting, as decisions do: records/s and the mean batch.
//! 2. The same with two writers (two replicas' logs) appending at once: the merged
//!    trail's lock serializes their commits.
//! 3. One raw batch of N records (`PgAuditLog::append` alone): the cost of a commit.
//!
//! `MANDATE_TEST_PG=postgres://postgres@127.0.0.1:5432/test cargo bench -p mandate-postgres
//! --bench audit`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use mandate_audit::contract::event;
use mandate_audit::integrity::{entry_hash, StoredEntry, GENESIS};
use mandate_audit::{AuditLog, AuditWriter, WriterConfig, WriterKey};
use mandate_core::SecretKey;
use mandate_postgres::PgAuditStore;

/// How long each case runs.
const RUN: Duration = Duration::from_secs(4);

fn writer(store: &PgAuditStore) -> Arc<AuditWriter> {
    let secret = SecretKey::generate();
    let log: Arc<dyn AuditLog> = Arc::new(store.writer_log(&secret.public().to_string()).unwrap());
    Arc::new(
        AuditWriter::start(
            log,
            WriterKey::new(&secret).unwrap(),
            WriterConfig::default(),
        )
        .unwrap(),
    )
}

/// Appends from `threads` threads per writer until `RUN` has passed; records/s.
fn load(writers: &[Arc<AuditWriter>], threads: usize) -> f64 {
    let start = Instant::now();
    let handles: Vec<_> = writers
        .iter()
        .flat_map(|writer| (0..threads).map(move |_| Arc::clone(writer)))
        .map(|writer| {
            std::thread::spawn(move || {
                let mut n = 0u64;
                while start.elapsed() < RUN {
                    writer.append_blocking(event(n)).unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    total as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let Some(url) = mandate_postgres::testing::fresh_database("bench audit") else {
        return;
    };
    let store = PgAuditStore::connect(&url).unwrap();
    println!("durable audit appends (PostgreSQL, group commit, synchronous_commit on)");
    let one = writer(&store);
    for threads in [1usize, 16, 256] {
        let rate = load(std::slice::from_ref(&one), threads);
        println!("  1 writer, {threads:>3} waiting appenders: {rate:>8.0} records/s");
    }
    let two = [writer(&store), writer(&store)];
    for threads in [16usize, 128] {
        let rate = load(&two, threads);
        println!("  2 writers, {threads:>3} appenders each: {rate:>8.0} records/s");
    }

    println!("one batch, PgAuditLog::append alone (median of 50)");
    let secret = SecretKey::generate();
    let raw = store.writer_log(&secret.public().to_string()).unwrap();
    let body = serde_json::to_vec(&event(1)).unwrap();
    let mut tip = (0u64, GENESIS);
    for size in [1usize, 32, 256] {
        let mut times = Vec::new();
        for _ in 0..50 {
            let entries: Vec<StoredEntry> = (0..size)
                .map(|_| {
                    let seq = tip.0 + 1;
                    let entry = StoredEntry {
                        seq,
                        prev: tip.1,
                        body: body.clone(),
                    };
                    tip = (seq, entry_hash(seq, &entry.prev, &entry.body));
                    entry
                })
                .collect();
            let start = Instant::now();
            raw.append(&entries, None, true).unwrap();
            times.push(start.elapsed());
        }
        times.sort();
        println!("  {size:>3} records: {:>8.2?}", times[times.len() / 2]);
    }
}
