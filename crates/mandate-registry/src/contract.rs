//! The [`RevocationStore`] contract as test functions, so that every implementation —
//! in this crate or another (PostgreSQL) — is held to the same checks, through one
//! helper taking `&dyn RevocationStore`.
//!
//! Built only with the `testing` feature: these functions panic on a broken contract, as
//! tests do, and have no place in a server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use crate::entry::NewRevocation;
use crate::kind::RevocationKind;
use crate::store::RevocationStore;

fn revoke(kind: RevocationKind, value: &str) -> NewRevocation {
    NewRevocation::revoke(kind, value, "test", "tester").unwrap()
}

/// Everything a store must do. `store` must be empty.
///
/// # Panics
/// When `store` breaks the contract.
pub fn check_contract(store: &dyn RevocationStore) {
    assert_eq!(
        store.current_seq().unwrap(),
        0,
        "empty store starts at seq 0"
    );
    assert!(store.list_after(0, 10).unwrap().is_empty());
    let epoch = store.epoch().unwrap();
    assert!(
        !epoch.is_empty() && epoch.len() <= 64 && epoch.bytes().all(|b| b.is_ascii_graphic()),
        "epoch {epoch:?}"
    );

    let first = store
        .append(revoke(RevocationKind::Principal, "alice"))
        .unwrap();
    assert_eq!(first.seq, 1, "first seq is 1");
    assert_eq!(first.value, "alice");
    assert_eq!(first.revoked_by, "tester");
    assert!(!first.lifted);

    let lift = NewRevocation::lift(RevocationKind::Principal, "alice", "back", "tester").unwrap();
    let second = store.append(lift).unwrap();
    assert_eq!(second.seq, 2);
    assert!(second.lifted);
    for i in 0..8 {
        store
            .append(revoke(RevocationKind::Task, &format!("task-{i}")))
            .unwrap();
    }
    assert_eq!(store.current_seq().unwrap(), 10);

    let all = store.list_after(0, 100).unwrap();
    let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=10).collect::<Vec<_>>(),
        "ordered by seq, no gaps"
    );
    assert_eq!(all[0], first, "stored entry equals the acknowledged one");
    assert_eq!(all[1], second);

    let page = store.list_after(3, 4).unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5, 6, 7]);
    assert_eq!(page[0].value, "task-1");
    assert!(store.list_after(10, 5).unwrap().is_empty());
    assert!(store.list_after(u64::MAX, 5).unwrap().is_empty());
    assert!(store.list_after(0, 0).unwrap().is_empty());
    assert_eq!(
        store.epoch().unwrap(),
        epoch,
        "appends never change the epoch"
    );
    store.flush().unwrap();
}

/// Concurrent appends get distinct, consecutive seqs. `store` must be empty.
///
/// # Panics
/// When `store` breaks the contract.
pub fn check_concurrent_appends(store: Arc<dyn RevocationStore>) {
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                (0..10)
                    .map(|i| {
                        store
                            .append(revoke(RevocationKind::Agent, &format!("agent-{t}-{i}")))
                            .unwrap()
                            .seq
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=40).collect::<Vec<_>>());
    let listed: Vec<u64> = store
        .list_after(0, 100)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(listed, (1..=40).collect::<Vec<_>>());
}
