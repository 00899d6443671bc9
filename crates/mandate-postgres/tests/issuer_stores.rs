//! The task and request stores' contract, one set of test functions run
//! against every implementation: memory, sled and PostgreSQL (skipped, with
//! `SKIPPED: ...` on stderr, when `MANDATE_TEST_PG` is unset).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mandate_core::SecretKey;
use mandate_issuer::idp::{ClaimValue, Identity};
use mandate_issuer::requests::{
    MemoryRequestStore, RequestState, RequestStore, RightRequest, SledRequestStore,
    StoreError as RequestStoreError,
};
use mandate_issuer::tasks::StoreError as TaskStoreError;
use mandate_issuer::{MemoryTaskStore, SledTaskStore, Task, TaskState, TaskStore};
use mandate_postgres::testing::fresh_database;
use mandate_postgres::{PgRequestStore, PgTaskStore, Pool, PoolOptions};

/// A whole-millisecond instant: stored forms keep no finer time.
fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

const T0: u64 = 1_764_590_400_123;

fn task(id: &str, deadline: SystemTime) -> Task {
    Task {
        id: id.into(),
        principal: "alice@example.com".into(),
        agent: "orchestrator".into(),
        agent_key: SecretKey::generate().public(),
        rights: vec![
            "datasets:read".parse().unwrap(),
            "reports:write".parse().unwrap(),
        ],
        description: "quarterly report, it's \"urgent\"".into(),
        state: TaskState::Open,
        created: at(T0),
        deadline,
        mandates: 1,
        closed_by: None,
        closed_at: None,
        // The login is kept, so run-time requests see the same facts.
        identity: Some(Identity {
            issuer: "https://login.example.com".into(),
            subject: "u-17".into(),
            principal: "alice@example.com".into(),
            email: Some("alice@example.com".into()),
            groups: vec!["staff".into(), "finance \"eu\"".into()],
            claims: vec![
                ("tier".into(), ClaimValue::Str("gold".into())),
                ("level".into(), ClaimValue::Int(3)),
                ("mfa".into(), ClaimValue::Bool(true)),
            ],
        }),
    }
}

fn refreshed(task: &Task) -> Task {
    Task {
        mandates: task.mandates + 1,
        ..task.clone()
    }
}

fn closed(task: &Task, by: &str) -> Task {
    Task {
        state: TaskState::Closed,
        closed_by: Some(by.into()),
        closed_at: Some(UNIX_EPOCH + Duration::from_millis(1_764_590_500_000)),
        ..task.clone()
    }
}

/// Create, read, swap once, lose a stale swap, find overdue tasks.
fn tasks_swap_once(store: &dyn TaskStore) {
    let t = task("task-1", at(T0 + 60_000));
    store.create(&t).unwrap();
    assert!(matches!(
        store.create(&t),
        Err(TaskStoreError::Exists(id)) if id == "task-1"
    ));
    assert_eq!(store.get("task-1").unwrap().unwrap(), t);
    assert!(store.get("task-2").unwrap().is_none());

    let r = refreshed(&t);
    assert!(store.replace(&t, &r).unwrap());
    // Stale: the stored record is `r` now.
    assert!(!store.replace(&t, &closed(&t, "agent")).unwrap());
    let c = closed(&r, "operator");
    assert!(store.replace(&r, &c).unwrap());
    assert!(!store.replace(&r, &refreshed(&r)).unwrap());
    assert_eq!(store.get("task-1").unwrap().unwrap(), c);

    // Overdue: open and past the deadline, never a closed one, at most `limit`.
    store.create(&task("late-1", at(T0 + 1_000))).unwrap();
    store.create(&task("late-2", at(T0 + 2_000))).unwrap();
    store.create(&task("later", at(T0 + 90_000))).unwrap();
    let mut overdue: Vec<String> = store
        .overdue(at(T0 + 60_000), 10)
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    overdue.sort();
    assert_eq!(overdue, ["late-1", "late-2"]);
    assert_eq!(store.overdue(at(T0 + 60_000), 1).unwrap().len(), 1);
    assert!(store.overdue(at(T0), 10).unwrap().is_empty());
}

/// Many threads swap the same record at once: exactly one wins.
fn tasks_race_has_one_winner(store: Arc<dyn TaskStore>) {
    let t = task("raced", at(T0 + 60_000));
    store.create(&t).unwrap();
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (store, barrier, t) = (store.clone(), barrier.clone(), t.clone());
            std::thread::spawn(move || {
                let new = if i % 2 == 0 {
                    closed(&t, &format!("closer-{i}"))
                } else {
                    refreshed(&t)
                };
                barrier.wait();
                (store.replace(&t, &new).unwrap(), new)
            })
        })
        .collect();
    let outcomes: Vec<(bool, Task)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners: Vec<&Task> = outcomes
        .iter()
        .filter(|(won, _)| *won)
        .map(|(_, t)| t)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one swap wins");
    assert_eq!(&store.get("raced").unwrap().unwrap(), winners[0]);
}

fn pending(id: &str, created_ms: u64) -> RightRequest {
    RightRequest {
        id: id.into(),
        task: "task-1".into(),
        principal: "alice@example.com".into(),
        agent: "orchestrator".into(),
        rights: vec!["payments:transfer".parse().unwrap()],
        reason: "pay the supplier".into(),
        policy_reason: "needs approval".into(),
        state: RequestState::Pending,
        created: at(created_ms),
        expires_at: at(created_ms + 60_000),
        decided_by: None,
    }
}

/// A decision swaps once; a stale swap fails; `find` is oldest first.
fn requests_decide_once(store: &dyn RequestStore) {
    let request = pending("req-1", T0);
    store.create(&request).unwrap();
    assert!(matches!(
        store.create(&request),
        Err(RequestStoreError::Exists(_))
    ));
    let granted = RightRequest {
        state: RequestState::Granted,
        decided_by: Some("alice@example.com".into()),
        ..request.clone()
    };
    let denied = RightRequest {
        state: RequestState::Denied,
        decided_by: Some("carol@example.com".into()),
        ..request.clone()
    };
    assert!(store.replace(&request, &granted).unwrap());
    assert!(!store.replace(&request, &denied).unwrap());
    assert!(!store.replace(&request, &granted).unwrap());
    assert_eq!(store.get("req-1").unwrap().unwrap(), granted);
    assert!(store.get("req-9").unwrap().is_none());

    store.create(&pending("req-3", T0 + 3)).unwrap();
    store.create(&pending("req-2", T0 + 2)).unwrap();
    let found: Vec<String> = store
        .find(&|r| r.state == RequestState::Pending, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(found, ["req-2", "req-3"]);
    let first = store.find(&|_| true, 1).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].id, "req-1");
}

fn pg_pool(url: &str) -> Pool {
    Pool::connect(url, &PoolOptions::default()).unwrap()
}

#[test]
fn memory_tasks_swap_once() {
    tasks_swap_once(&MemoryTaskStore::new());
    tasks_race_has_one_winner(Arc::new(MemoryTaskStore::new()));
}

#[test]
fn sled_tasks_swap_once_and_a_close_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tasks");
    tasks_swap_once(&SledTaskStore::open(&path).unwrap());
    let reopened = SledTaskStore::open(&path).unwrap();
    assert_eq!(
        reopened.get("task-1").unwrap().unwrap().state,
        TaskState::Closed
    );
    drop(reopened);
    tasks_race_has_one_winner(Arc::new(
        SledTaskStore::open(&dir.path().join("race")).unwrap(),
    ));
}

#[test]
fn postgres_tasks_swap_once_and_a_close_survives_reconnecting() {
    let Some(url) = fresh_database("postgres_tasks_swap_once") else {
        return;
    };
    tasks_swap_once(&PgTaskStore::open(pg_pool(&url)).unwrap());
    // Another pool (as another replica would): the close is there.
    let other = PgTaskStore::open(pg_pool(&url)).unwrap();
    assert_eq!(
        other.get("task-1").unwrap().unwrap().state,
        TaskState::Closed
    );
    tasks_race_has_one_winner(Arc::new(other));
}

#[test]
fn postgres_tasks_race_across_two_pools_has_one_winner() {
    let Some(url) = fresh_database("postgres_tasks_race_across_two_pools") else {
        return;
    };
    let a = PgTaskStore::open(pg_pool(&url)).unwrap();
    let b = PgTaskStore::open(pg_pool(&url)).unwrap();
    let t = task("shared", at(T0 + 60_000));
    a.create(&t).unwrap();
    assert!(matches!(b.create(&t), Err(TaskStoreError::Exists(_))));
    let (ca, cb) = (closed(&t, "agent"), refreshed(&t));
    let barrier = Arc::new(Barrier::new(2));
    let (ba, bb) = (barrier.clone(), barrier);
    let (ta, tb) = (t.clone(), t);
    let ha = std::thread::spawn(move || {
        ba.wait();
        a.replace(&ta, &ca).unwrap()
    });
    let hb = std::thread::spawn(move || {
        bb.wait();
        b.replace(&tb, &cb).unwrap()
    });
    let (wa, wb) = (ha.join().unwrap(), hb.join().unwrap());
    assert!(wa ^ wb, "one of the two replicas' swaps wins: {wa} {wb}");
}

#[test]
fn a_corrupt_postgres_row_is_reported_not_panicked_on() {
    let Some(url) = fresh_database("a_corrupt_postgres_row") else {
        return;
    };
    let store = PgTaskStore::open(pg_pool(&url)).unwrap();
    store.create(&task("task-1", at(T0 + 60_000))).unwrap();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .execute(
            "UPDATE mandate_tasks SET agent_key = 'not a key' WHERE id = 'task-1'",
            &[],
        )
        .unwrap();
    assert!(matches!(
        store.get("task-1"),
        Err(TaskStoreError::Corrupt(id)) if id == "task-1"
    ));
}

#[test]
fn memory_requests_decide_once() {
    requests_decide_once(&MemoryRequestStore::new());
}

#[test]
fn sled_requests_decide_once() {
    let dir = tempfile::tempdir().unwrap();
    requests_decide_once(&SledRequestStore::open(dir.path()).unwrap());
}

#[test]
fn postgres_requests_decide_once_and_keep_it() {
    let Some(url) = fresh_database("postgres_requests_decide_once") else {
        return;
    };
    requests_decide_once(&PgRequestStore::open(pg_pool(&url)).unwrap());
    let other = PgRequestStore::open(pg_pool(&url)).unwrap();
    assert_eq!(
        other.get("req-1").unwrap().unwrap().state,
        RequestState::Granted
    );
}

/// Pruning: only closed tasks past the cutoff go (a task closed before
/// close times were kept counts from its deadline), at most `limit` at once;
/// open tasks stay.
fn tasks_prune_only_closed(store: &dyn TaskStore) {
    let open = task("open", at(T0 + 1_000));
    store.create(&open).unwrap();
    let mut old = closed(&task("closed-old", at(T0 + 1_000)), "agent");
    old.closed_at = Some(at(T0 + 10_000));
    store.create(&old).unwrap();
    let mut recent = closed(&task("closed-recent", at(T0 + 1_000)), "agent");
    recent.closed_at = Some(at(T0 + 50_000));
    store.create(&recent).unwrap();
    let mut legacy = closed(&task("closed-legacy", at(T0 + 90_000)), "deadline");
    legacy.closed_at = None;
    store.create(&legacy).unwrap();

    assert_eq!(store.prune_closed(at(T0 + 20_000), 10).unwrap(), 1);
    assert!(store.get("closed-old").unwrap().is_none());
    assert!(store.get("closed-recent").unwrap().is_some());
    assert!(store.get("closed-legacy").unwrap().is_some());
    assert_eq!(store.prune_closed(at(T0 + 60_000), 10).unwrap(), 1);
    assert_eq!(store.prune_closed(at(T0 + 100_000), 10).unwrap(), 1);
    assert_eq!(store.get("open").unwrap().unwrap(), open, "open tasks stay");

    for i in 0..5 {
        let mut t = closed(&task(&format!("batch-{i}"), at(T0 + 1_000)), "agent");
        t.closed_at = Some(at(T0 + 10_000));
        store.create(&t).unwrap();
    }
    assert_eq!(
        store.prune_closed(at(T0 + 20_000), 2).unwrap(),
        2,
        "bounded"
    );
    assert_eq!(store.prune_closed(at(T0 + 20_000), 10).unwrap(), 3);
    assert_eq!(store.prune_closed(at(T0 + 20_000), 10).unwrap(), 0);
}

/// Pruning: only settled requests past the cutoff go; a request still
/// pending in its record stays, even long past its expiry.
fn requests_prune_only_settled(store: &dyn RequestStore) {
    let settled = |id: &str, state: RequestState| RightRequest {
        state,
        decided_by: Some("alice@example.com".into()),
        ..pending(id, T0)
    };
    store.create(&pending("still-pending", T0)).unwrap();
    store
        .create(&settled("granted", RequestState::Granted))
        .unwrap();
    store
        .create(&settled("denied", RequestState::Denied))
        .unwrap();
    store
        .create(&settled("expired", RequestState::Expired))
        .unwrap();
    let recent = RightRequest {
        expires_at: at(T0 + 500_000),
        ..settled("recent", RequestState::Denied)
    };
    store.create(&recent).unwrap();

    // Everything but `recent` expired at T0 + 60 s.
    assert_eq!(store.prune_settled(at(T0 + 59_999), 10).unwrap(), 0);
    assert_eq!(
        store.prune_settled(at(T0 + 60_000), 2).unwrap(),
        2,
        "bounded"
    );
    assert_eq!(store.prune_settled(at(T0 + 60_000), 10).unwrap(), 1);
    assert!(store.get("still-pending").unwrap().is_some());
    assert_eq!(store.get("recent").unwrap().unwrap(), recent);
    assert_eq!(store.prune_settled(at(T0 + 10_000_000), 10).unwrap(), 1);
    assert!(store.get("still-pending").unwrap().is_some());
}

#[test]
fn memory_and_sled_stores_prune_only_what_is_finished() {
    tasks_prune_only_closed(&MemoryTaskStore::new());
    requests_prune_only_settled(&MemoryRequestStore::new());
    let dir = tempfile::tempdir().unwrap();
    tasks_prune_only_closed(&SledTaskStore::open(&dir.path().join("tasks")).unwrap());
    requests_prune_only_settled(&SledRequestStore::open(&dir.path().join("requests")).unwrap());
}

#[test]
fn postgres_stores_prune_only_what_is_finished() {
    let Some(url) = fresh_database("postgres_stores_prune") else {
        return;
    };
    tasks_prune_only_closed(&PgTaskStore::open(pg_pool(&url)).unwrap());
    requests_prune_only_settled(&PgRequestStore::open(pg_pool(&url)).unwrap());
}
