//! The `RevocationStore` contract, run against every implementation through one helper.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use mandate_registry::contract::{check_concurrent_appends, check_contract};
use mandate_registry::{
    Denied, Error, IndexingStore, MemoryStore, NewRevocation, RevocationEntry, RevocationKind,
    RevocationStore, SledStore, Subject,
};

fn revoke(kind: RevocationKind, value: &str) -> NewRevocation {
    NewRevocation::revoke(kind, value, "test", "tester").unwrap()
}

#[test]
fn memory_store_meets_the_contract() {
    check_contract(&MemoryStore::new());
    check_concurrent_appends(Arc::new(MemoryStore::new()));
    assert_ne!(
        MemoryStore::new().epoch().unwrap(),
        MemoryStore::new().epoch().unwrap(),
        "every memory store is its own log"
    );
}

#[test]
fn sled_store_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    check_contract(&SledStore::open(dir.path()).unwrap());
    let dir = tempfile::tempdir().unwrap();
    check_concurrent_appends(Arc::new(SledStore::open(dir.path()).unwrap()));
}

#[test]
fn indexing_store_meets_the_contract() {
    check_contract(&IndexingStore::new(MemoryStore::new()).unwrap());
    let store = MemoryStore::new();
    let epoch = store.epoch().unwrap();
    let indexing = IndexingStore::new(store).unwrap();
    assert_eq!(indexing.epoch().unwrap(), epoch);
    assert_eq!(
        indexing.index().epoch(),
        Some(epoch),
        "its index is bound to the log"
    );
}

#[test]
fn sled_stores_in_different_directories_are_different_logs() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a_epoch = SledStore::open(a.path()).unwrap().epoch().unwrap();
    assert_ne!(a_epoch, SledStore::open(b.path()).unwrap().epoch().unwrap());
    assert_eq!(
        SledStore::open(a.path()).unwrap().epoch().unwrap(),
        a_epoch,
        "the epoch survives reopening"
    );
    // A wiped store is a new log, even where the old one stood.
    std::fs::remove_dir_all(a.path()).unwrap();
    assert_ne!(SledStore::open(a.path()).unwrap().epoch().unwrap(), a_epoch);
}

#[test]
fn open_existing_never_creates_a_store() {
    let parent = tempfile::tempdir().unwrap();
    let missing = parent.path().join("typo");
    match SledStore::open_existing(&missing) {
        Err(error @ Error::StoreNotFound { .. }) => {
            let text = error.to_string();
            assert!(
                text.contains("typo") && text.contains("does not exist"),
                "{text}"
            );
        }
        other => panic!("expected StoreNotFound, got {other:?}"),
    }
    assert!(!missing.exists(), "no directory was created");

    let empty = parent.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    match SledStore::open_existing(&empty) {
        Err(Error::StoreNotFound { path, problem }) => {
            assert_eq!(path, empty);
            assert_eq!(problem, "the directory holds no sled database");
        }
        other => panic!("expected StoreNotFound, got {other:?}"),
    }
    assert_eq!(
        std::fs::read_dir(&empty).unwrap().count(),
        0,
        "nothing was created"
    );

    let (written, epoch) = {
        let store = SledStore::open(&empty).unwrap();
        (
            store.append(revoke(RevocationKind::Task, "t1")).unwrap(),
            store.epoch().unwrap(),
        )
    };
    let store = SledStore::open_existing(&empty).unwrap();
    assert_eq!(store.list_after(0, 10).unwrap(), vec![written]);
    assert_eq!(store.epoch().unwrap(), epoch);
}

/// A store whose acknowledged entries the index cannot apply (here: seqs skip ahead).
struct Skipping(MemoryStore);

impl RevocationStore for Skipping {
    fn append(&self, new: NewRevocation) -> mandate_registry::Result<RevocationEntry> {
        let mut entry = self.0.append(new)?;
        entry.seq += 1;
        Ok(entry)
    }
    fn list_after(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> mandate_registry::Result<Vec<RevocationEntry>> {
        self.0.list_after(after_seq, limit)
    }
    fn current_seq(&self) -> mandate_registry::Result<u64> {
        self.0.current_seq()
    }
    fn epoch(&self) -> mandate_registry::Result<String> {
        self.0.epoch()
    }
}

#[test]
fn indexing_store_fails_closed_when_its_index_cannot_take_an_entry() {
    let store = IndexingStore::new(Skipping(MemoryStore::new())).unwrap();
    let index = store.index();
    let subject = Subject {
        revocation_ids: &[],
        principal: "alice",
        task: "q3",
        agents: &[],
    };
    let now = Instant::now();
    assert_eq!(index.check(&subject, now), Ok(()), "fresh while in step");

    match store.append(revoke(RevocationKind::Principal, "bob")) {
        Err(Error::SeqGap { expected, got }) => assert_eq!((expected, got), (1, 2)),
        other => panic!("expected the apply error, got {other:?}"),
    }
    assert_eq!(
        index.check(&subject, now + Duration::from_secs(1)),
        Err(Denied::Stale {
            since: None,
            bound: Duration::MAX
        }),
        "an index that missed an acknowledged entry must not stay fresh"
    );
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
