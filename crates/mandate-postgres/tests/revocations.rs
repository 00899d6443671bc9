//! The PostgreSQL revocation log against the registry's store contract and against
//! what several replicas need: one log identity, one gap-free sequence across
//! processes, notifications, and errors (not panics) when the database is gone.
//!
//! Each test creates its own database on the server `MANDATE_TEST_PG` names, and
//! skips (printing `SKIPPED: …`) when it is unset.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mandate_postgres::revocations::{ChangeListener, ListenTarget, PgRevocationStore};
use mandate_registry::contract::{check_concurrent_appends, check_contract};
use mandate_registry::{
    Error, IndexingStore, NewRevocation, RevocationEntry, RevocationKind, RevocationStore,
};

fn task(value: &str) -> NewRevocation {
    NewRevocation::revoke(RevocationKind::Task, value, "", "tester").unwrap()
}

/// Waits (bounded) until `done` holds.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn postgres_store_meets_the_contract() {
    let Some(url) = mandate_postgres::testing::fresh_database("postgres store contract") else {
        return;
    };
    check_contract(&PgRevocationStore::connect(&url).unwrap());
    let Some(url) = mandate_postgres::testing::fresh_database("postgres concurrent appends") else {
        return;
    };
    check_concurrent_appends(Arc::new(PgRevocationStore::connect(&url).unwrap()));
}

/// Two replicas on one database: one epoch, one sequence, each sees the other's entries,
/// and concurrent appends from both leave no gap.
#[test]
fn replicas_share_one_log() {
    let Some(url) = mandate_postgres::testing::fresh_database("postgres replicas share a log")
    else {
        return;
    };
    let a = Arc::new(PgRevocationStore::connect(&url).unwrap());
    let b = Arc::new(PgRevocationStore::connect(&url).unwrap());
    assert_eq!(
        a.epoch().unwrap(),
        b.epoch().unwrap(),
        "one log, one identity"
    );

    assert_eq!(a.append(task("t1")).unwrap().seq, 1);
    assert_eq!(b.append(task("t2")).unwrap().seq, 2);
    assert_eq!(a.current_seq().unwrap(), 2);
    let from_a: Vec<String> = a
        .list_after(0, 10)
        .unwrap()
        .into_iter()
        .map(|e| e.value)
        .collect();
    assert_eq!(from_a, ["t1", "t2"]);

    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = Arc::clone(if w % 2 == 0 { &a } else { &b });
            std::thread::spawn(move || {
                (0..25)
                    .map(|i| store.append(task(&format!("w{w}-{i}"))).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let acknowledged: Vec<_> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    let listed = mandate_registry::entries_after(b.as_ref(), 0).unwrap();
    let seqs: Vec<u64> = listed.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=202).collect::<Vec<_>>(),
        "gap-free across replicas"
    );
    for entry in &acknowledged {
        assert_eq!(
            &listed[usize::try_from(entry.seq).unwrap() - 1],
            entry,
            "every acknowledged entry is stored as acknowledged"
        );
    }

    // A replica restarted on the same database keeps the log and its identity.
    let epoch = a.epoch().unwrap();
    drop(a);
    let again = PgRevocationStore::connect(&url).unwrap();
    assert_eq!(again.epoch().unwrap(), epoch);
    assert_eq!(again.append(task("t-last")).unwrap().seq, 203);
}

/// A replica's index learns of another replica's appends through LISTEN/NOTIFY and
/// catch-up by sequence.
#[test]
fn a_listener_brings_another_replicas_entries_into_the_index() {
    let Some(url) = mandate_postgres::testing::fresh_database("postgres listener") else {
        return;
    };
    let writer = PgRevocationStore::connect(&url).unwrap();
    writer.append(task("before")).unwrap();
    let reader = PgRevocationStore::connect(&url).unwrap();
    let target = reader.listen_target().unwrap();
    let local = Arc::new(IndexingStore::shared(reader, Duration::from_secs(5)).unwrap());
    assert_eq!(local.index().last_seq(), 1, "the log is loaded at start");

    let wakes = Arc::new(AtomicUsize::new(0));
    let applied = Arc::new(AtomicUsize::new(0));
    let listener = {
        let (local, wakes, applied) =
            (Arc::clone(&local), Arc::clone(&wakes), Arc::clone(&applied));
        // A long tick: what arrives quickly arrives by notification.
        ChangeListener::spawn(&target, Duration::from_secs(60), move |reader| {
            wakes.fetch_add(1, Ordering::SeqCst);
            let entries = local
                .apply_listed(|after, limit| reader.list_after(after, limit))
                .unwrap();
            applied.fetch_add(entries.len(), Ordering::SeqCst);
        })
        .unwrap()
    };
    wait_for("the first catch-up after LISTEN", || {
        wakes.load(Ordering::SeqCst) >= 1
    });
    for i in 0..5 {
        writer.append(task(&format!("after-{i}"))).unwrap();
    }
    wait_for("the notified entries in the index", || {
        local.index().last_seq() == 6
    });
    assert_eq!(applied.load(Ordering::SeqCst), 5);

    // An append through the local replica lands in its index at once, after the
    // other replica's entries it follows.
    writer.append(task("other")).unwrap();
    let own = local.append(task("own")).unwrap();
    assert_eq!(own.seq, 8);
    assert_eq!(
        local.index().last_seq(),
        8,
        "the entry before it was caught up first"
    );
    listener.stop();
}

/// The listener reads on its own session: when that session is killed, it reconnects
/// and reads what was committed meanwhile (its notification lost with the session).
#[test]
fn a_listener_whose_session_is_killed_reconnects_and_catches_up() {
    let Some(url) = mandate_postgres::testing::fresh_database("postgres listener killed") else {
        return;
    };
    let writer = PgRevocationStore::connect(&url).unwrap();
    let reader = PgRevocationStore::connect(&url).unwrap();
    let target = reader.listen_target().unwrap();
    let local = Arc::new(IndexingStore::shared(reader, Duration::from_secs(5)).unwrap());
    let failures = Arc::new(AtomicUsize::new(0));
    let wakes = Arc::new(AtomicUsize::new(0));
    let listener = {
        let (local, failures, wakes) = (
            Arc::clone(&local),
            Arc::clone(&failures),
            Arc::clone(&wakes),
        );
        // The tick is what finds a session killed while idle.
        ChangeListener::spawn(&target, Duration::from_secs(1), move |reader| {
            wakes.fetch_add(1, Ordering::SeqCst);
            match local.apply_listed(|after, limit| reader.list_after(after, limit)) {
                Ok(_) => {}
                Err(Error::Storage { .. }) => {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
                Err(other) => panic!("unexpected error {other:?}"),
            }
        })
        .unwrap()
    };
    wait_for("the first catch-up after LISTEN", || {
        wakes.load(Ordering::SeqCst) >= 1
    });
    writer.append(task("one")).unwrap();
    wait_for("the first entry", || local.index().last_seq() == 1);

    // Kill the listening session (its last statement is the prepared read).
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
             AND query LIKE 'SELECT seq, kind%'",
            &[],
        )
        .unwrap();
    assert!(!killed.is_empty(), "the listening session was found");
    writer.append(task("two")).unwrap();
    writer.append(task("three")).unwrap();
    wait_for("the entries committed while the session was down", || {
        local.index().last_seq() == 3
    });
    assert_eq!(failures.load(Ordering::SeqCst), 0, "{failures:?}");
    listener.stop();
}

/// What one wake-up of a listener did: whether it read the log, and what it applied.
type Wake = (bool, Vec<RevocationEntry>);

/// A listener (tick: a minute, so every wake-up but the first is a notification's)
/// applying to `local` and recording its wake-ups.
fn recording_listener(
    target: &ListenTarget,
    local: &Arc<IndexingStore<PgRevocationStore>>,
) -> (ChangeListener, Arc<Mutex<Vec<Wake>>>) {
    let wakes = Arc::new(Mutex::new(Vec::new()));
    let listener = {
        let (local, wakes) = (Arc::clone(local), Arc::clone(&wakes));
        ChangeListener::spawn(target, Duration::from_secs(60), move |reader| {
            let entries = local
                .apply_listed(|after, limit| reader.list_after(after, limit))
                .unwrap();
            let read = reader.read_started().is_some();
            wakes.lock().unwrap().push((read, entries));
        })
        .unwrap()
    };
    wait_for("the first catch-up after LISTEN", || {
        !wakes.lock().unwrap().is_empty()
    });
    (listener, wakes)
}

/// Entries that fit in a notification reach another replica's index without a read,
/// exactly as the log holds them; a batch too large for a payload, and a notification
/// that is not signed under the log's key, are read by sequence instead — a forged
/// entry is never applied.
#[test]
fn notified_entries_are_applied_only_when_signed_and_complete() {
    let Some(url) = mandate_postgres::testing::fresh_database("postgres notified entries") else {
        return;
    };
    let writer = PgRevocationStore::connect(&url).unwrap();
    let reader = PgRevocationStore::connect(&url).unwrap();
    let target = reader.listen_target().unwrap();
    let local = Arc::new(IndexingStore::shared(reader, Duration::from_secs(5)).unwrap());
    let (listener, wakes) = recording_listener(&target, &local);
    wakes.lock().unwrap().clear();

    // One entry: carried by its notification.
    writer.append(task("carried")).unwrap();
    wait_for("the carried entry", || local.index().last_seq() == 1);
    let logged = writer.list_after(0, 10).unwrap();
    assert_eq!(
        wakes.lock().unwrap().clone(),
        vec![(false, logged.clone())],
        "applied from the payload, without a read, equal to the log's entry"
    );
    wakes.lock().unwrap().clear();

    // A batch whose payload would pass 8000 bytes: the notification says only how far.
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let n = 8;
    let kinds = vec!["task"; n];
    let values: Vec<String> = (0..n).map(|i| format!("big-{i}")).collect();
    let reasons = vec!["r".repeat(1000); n];
    let actors = vec!["tester"; n];
    let lifted = vec![false; n];
    admin
        .query(
            "SELECT * FROM mandate_append_revocations($1, $2, $3, $4, $5)",
            &[&kinds, &values, &reasons, &actors, &lifted],
        )
        .unwrap();
    wait_for("the large batch", || local.index().last_seq() == 9);
    let wakes_now = wakes.lock().unwrap().clone();
    assert!(wakes_now.iter().all(|(read, _)| *read), "{wakes_now:?}");
    let applied: Vec<RevocationEntry> = wakes_now.into_iter().flat_map(|(_, e)| e).collect();
    assert_eq!(applied, writer.list_after(1, 100).unwrap());
    wakes.lock().unwrap().clear();

    // A forged notification (any role that can connect may send one), claiming seq 10.
    let forged = serde_json::json!({
        "last": 10,
        "entries": [{
            "seq": 10, "kind": "task", "value": "forged", "reason": "", "revoked_by": "x",
            "at": "2026-01-01T00:00:00Z", "lifted": false,
        }],
    });
    admin
        .execute(
            "SELECT pg_notify('mandate_revocations', $1)",
            &[&format!("{} {forged}", "ab".repeat(32))],
        )
        .unwrap();
    wait_for("the forged notification's wake-up", || {
        !wakes.lock().unwrap().is_empty()
    });
    assert_eq!(
        wakes.lock().unwrap().clone(),
        vec![(true, Vec::new())],
        "read the log, found nothing"
    );
    assert_eq!(local.index().last_seq(), 9);
    // The real seq 10 is still applied when it comes.
    writer.append(task("real")).unwrap();
    wait_for("the real seq 10", || local.index().last_seq() == 10);
    assert_eq!(
        local.list_after(9, 10).unwrap()[0].value,
        "real",
        "the log's entry"
    );
    // Stopping would wait for the minute's tick: the thread ends on its own.
    drop(listener);
}

#[test]
fn an_unreachable_database_is_an_error_not_a_panic() {
    // Nothing listens on port 1.
    match PgRevocationStore::connect("postgres://postgres@127.0.0.1:1/none?connect_timeout=1") {
        Err(Error::Storage { operation, .. }) => assert_eq!(operation, "connecting to PostgreSQL"),
        other => panic!("expected a storage error, got {other:?}"),
    }
    match PgRevocationStore::connect("postgres://[bad") {
        Err(Error::Storage { .. }) => {}
        other => panic!("expected a storage error, got {other:?}"),
    }
}
