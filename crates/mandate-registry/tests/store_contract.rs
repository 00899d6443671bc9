//! The `RevocationStore` contract, run against every implementation through one helper.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use mandate_registry::{
    Error, MemoryStore, NewRevocation, RevocationKind, RevocationStore, SledStore,
};

fn revoke(kind: RevocationKind, value: &str) -> NewRevocation {
    NewRevocation::revoke(kind, value, "test", "tester").unwrap()
}

/// Everything a store must do. `store` must be empty.
fn check_contract(store: &dyn RevocationStore) {
    assert_eq!(
        store.current_seq().unwrap(),
        0,
        "empty store starts at seq 0"
    );
    assert!(store.list_after(0, 10).unwrap().is_empty());

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
    store.flush().unwrap();
}

/// Concurrent appends get distinct, consecutive seqs.
fn check_concurrent_appends(store: Arc<dyn RevocationStore>) {
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

#[test]
fn memory_store_meets_the_contract() {
    check_contract(&MemoryStore::new());
    check_concurrent_appends(Arc::new(MemoryStore::new()));
}

#[test]
fn sled_store_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    check_contract(&SledStore::open(dir.path()).unwrap());
    let dir = tempfile::tempdir().unwrap();
    check_concurrent_appends(Arc::new(SledStore::open(dir.path()).unwrap()));
}

#[test]
fn sled_store_keeps_entries_and_seq_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let written = {
        let store = SledStore::open(dir.path()).unwrap();
        store
            .append(revoke(RevocationKind::Principal, "bob"))
            .unwrap();
        store
            .append(revoke(RevocationKind::TokenId, "00ff"))
            .unwrap()
    };
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.current_seq().unwrap(), 2);
    let entries = store.list_after(0, 10).unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1], written, "entry survives reopen byte for byte");
    let next = store.append(revoke(RevocationKind::Task, "t-9")).unwrap();
    assert_eq!(next.seq, 3, "seq continues after reopen");
}

#[test]
fn sled_store_refuses_a_directory_already_open() {
    let dir = tempfile::tempdir().unwrap();
    let _held = SledStore::open(dir.path()).unwrap();
    match SledStore::open(dir.path()) {
        Err(Error::Storage { operation, .. }) => assert_eq!(operation, "opening the sled database"),
        other => panic!("expected a storage error, got {other:?}"),
    }
}
