//! Measurements of the PostgreSQL revocation log, on the server `MANDATE_TEST_PG` names
//! (each run in a fresh database):
//!
//! 1. Durable writes per second: `PgRevocationStore::append` from 1, 8 and 32 threads.
//!    Every append returns after its transaction committed (WAL flushed); concurrent
//!    appends of one process share a commit (group commit), appends of different
//!    processes serialize on the log's advisory lock.
//! 2. Joining a log of 1 M entries: the entries are inserted in bulk with SQL, then a
//!    fresh index reads the whole log by sequence (`load_index`, page by page, what a
//!    registry replica does at start and what its stream sends a new verifier) — time
//!    to fully synced, the growth of this process's resident memory, and its peak.
//!    (The same join over HTTP, with the real binaries: the `join_over_http` bench.)
//!
//! `MANDATE_TEST_PG=postgres://postgres@127.0.0.1:5432/test cargo bench -p mandate-postgres
//! --bench revocations` (add `-- --quick` for 100 k entries instead of 1 M).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use mandate_postgres::revocations::PgRevocationStore;
use mandate_registry::{load_index, NewRevocation, RevocationKind, RevocationStore};

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let Some(url) = mandate_postgres::testing::fresh_database("bench revocations") else {
        return;
    };
    let store = Arc::new(PgRevocationStore::connect(&url).unwrap());
    println!("durable revocation writes (PostgreSQL, commit per batch, synchronous_commit on)");
    for writers in [1usize, 8, 32] {
        let per_writer = 4000 / writers;
        let start = Instant::now();
        let threads: Vec<_> = (0..writers)
            .map(|w| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for i in 0..per_writer {
                        let new = NewRevocation::revoke(
                            RevocationKind::Task,
                            format!("bench-{writers}-{w}-{i}"),
                            "",
                            "bench",
                        )
                        .unwrap();
                        store.append(new).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let elapsed = start.elapsed();
        let total = writers * per_writer;
        println!(
            "  {writers:>2} writer(s): {total:>6} appends in {:>7.2?} → {:>7.0} writes/s",
            elapsed,
            total as f64 / elapsed.as_secs_f64()
        );
    }

    let entries: i64 = if quick { 100_000 } else { 1_000_000 };
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let base = store.current_seq().unwrap() as i64;
    client
        .execute(
            "INSERT INTO mandate_revocations (seq, kind, value, reason, revoked_by, recorded_at, lifted) \
             SELECT $1 + g, 'task', 'join-' || g, '', 'bench', now(), false \
             FROM generate_series(1, $2::bigint) AS g",
            &[&base, &entries],
        )
        .unwrap();
    let total = store.current_seq().unwrap();
    let rss_before = resident_kib();
    let start = Instant::now();
    let index = load_index(store.as_ref(), Duration::from_secs(5)).unwrap();
    let elapsed = start.elapsed();
    let rss_after = resident_kib();
    assert_eq!(index.last_seq(), total);
    println!(
        "joining a log of {total} entries: fully synced in {elapsed:.2?}, resident memory +{} MiB \
         (this process: {} MiB, peak {} MiB)",
        rss_after.saturating_sub(rss_before) / 1024,
        rss_after / 1024,
        status_kib("VmHWM:") / 1024
    );
}

/// This process's resident set size in KiB (Linux), 0 elsewhere.
fn resident_kib() -> u64 {
    status_kib("VmRSS:")
}

/// A `… kB` line of `/proc/self/status` (Linux), 0 elsewhere.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
