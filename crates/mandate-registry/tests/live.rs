//! Real sockets on 127.0.0.1:0: a subscribed verifier index sees a revocation written over
//! HTTP, acknowledges it, resumes without gaps after the registry restarts, and starts over
//! when the registry comes back serving a different log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestAuthorizer, OPERATOR_TOKEN, READER_TOKEN};
use mandate_registry::{
    serve, AgentRef, Denied, Error, NewRevocation, RegistryAuth, RegistryClient, RegistryConfig,
    RegistryState, RevocationKind, RevocationStore, SharedIndex, SledStore, Subject,
    SubscribeOptions,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(5);

/// Polls `condition` every 10 ms until it holds; panics after [`WAIT`].
async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    server: JoinHandle<mandate_registry::Result<()>>,
}

impl Running {
    async fn stop(self) {
        self.stop.send(()).unwrap();
        let outcome = tokio::time::timeout(WAIT, self.server)
            .await
            .expect("serve returned after shutdown despite an open stream");
        outcome.unwrap().unwrap();
    }
}

async fn start(listener: TcpListener, store: Arc<dyn RevocationStore>) -> Running {
    let config = RegistryConfig {
        heartbeat_interval: Duration::from_millis(50),
        ..RegistryConfig::default()
    };
    start_with(listener, store, config).await
}

async fn start_with(
    listener: TcpListener,
    store: Arc<dyn RevocationStore>,
    config: RegistryConfig,
) -> Running {
    let state = RegistryState::with_config(store, Arc::new(TestAuthorizer), config);
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Running { addr, stop, server }
}

/// A client that reads with the reader's mandate.
fn reader(url: &str) -> RegistryClient {
    RegistryClient::new(url)
        .unwrap()
        .with_auth(RegistryAuth::bearer(READER_TOKEN))
}

fn options() -> SubscribeOptions {
    SubscribeOptions {
        idle_timeout: Duration::from_secs(1),
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        send_acks: true,
    }
}

const AGENTS: [AgentRef<'static>; 1] = [AgentRef {
    name: "orchestrator",
    public_key: "ed25519/1111",
}];

fn bobs_call(ids: &[Vec<u8>]) -> Subject<'_> {
    Subject {
        revocation_ids: ids,
        principal: "bob",
        task: "q3",
        agents: &AGENTS,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_over_http_reaches_a_subscribed_index() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn RevocationStore> = Arc::new(SledStore::open(dir.path()).unwrap());
    let running = start(TcpListener::bind("127.0.0.1:0").await.unwrap(), store).await;
    let client = reader(&format!("http://{}", running.addr));

    let index = SharedIndex::new(Duration::from_secs(2));
    let ids = vec![vec![1, 2, 3]];
    assert!(matches!(
        index.check(&bobs_call(&ids), Instant::now()),
        Err(Denied::Stale { since: None, .. })
    ));
    let _subscription = client.subscribe(index.clone(), options());
    eventually("the index to become fresh", || async {
        index.check(&bobs_call(&ids), Instant::now()).is_ok()
    })
    .await;

    let refused = client
        .revoke(
            &RegistryAuth::bearer("forged"),
            RevocationKind::Principal,
            "bob",
            "x",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, Error::Api { status: 401, code, .. } if code == "unauthenticated"),
        "{refused:?}"
    );

    let entry = client
        .revoke(
            &RegistryAuth::bearer(OPERATOR_TOKEN),
            RevocationKind::Principal,
            "bob",
            "kill switch",
        )
        .await
        .unwrap();
    assert_eq!((entry.seq, entry.revoked_by.as_str()), (1, "operator"));

    eventually("the index to deny bob", || async {
        index.check(&bobs_call(&ids), Instant::now()).is_err()
    })
    .await;
    assert_eq!(
        index.check(&bobs_call(&ids), Instant::now()),
        Err(Denied::Revoked {
            kind: RevocationKind::Principal,
            value: "bob".to_owned(),
            seq: 1,
            reason: "kill switch".to_owned(),
        })
    );

    eventually("the registry to count the ack", || async {
        let status = client.status(Some(entry.seq)).await.unwrap();
        status.subscribers == 1 && status.applied_by == 1
    })
    .await;
    let page = client.list(0, 10).await.unwrap();
    assert_eq!(page.entries, vec![entry]);

    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscription_resumes_without_gaps_after_a_registry_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn RevocationStore> = Arc::new(SledStore::open(dir.path()).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let running = start(listener, Arc::clone(&store)).await;
    let client = reader(&format!("http://{addr}"));

    let index = SharedIndex::new(Duration::from_secs(2));
    let _subscription = client.subscribe(index.clone(), options());
    client
        .revoke(
            &RegistryAuth::bearer(OPERATOR_TOKEN),
            RevocationKind::Task,
            "t1",
            "",
        )
        .await
        .unwrap();
    eventually("entry 1 applied", || async { index.last_seq() == 1 }).await;

    running.stop().await;
    // Written while no registry is serving: the subscriber must pick it up on reconnect.
    for value in ["t2", "t3"] {
        store
            .append(NewRevocation::revoke(RevocationKind::Task, value, "", "ops").unwrap())
            .unwrap();
    }
    let running = start(TcpListener::bind(addr).await.unwrap(), Arc::clone(&store)).await;
    client
        .revoke(
            &RegistryAuth::bearer(OPERATOR_TOKEN),
            RevocationKind::Agent,
            "orchestrator",
            "",
        )
        .await
        .unwrap();

    eventually("entries 2..=4 applied", || async { index.last_seq() == 4 }).await;
    let ids = vec![vec![9]];
    let tasks_revoked = index.with_index(|i| i.active_len());
    assert_eq!(tasks_revoked, 4, "every entry applied exactly once");
    match index.check(&bobs_call(&ids), Instant::now()) {
        Err(Denied::Revoked { kind, seq, .. }) => {
            assert_eq!((kind, seq), (RevocationKind::Agent, 4))
        }
        other => panic!("expected the agent revocation, got {other:?}"),
    }
    running.stop().await;
}

fn task(value: &str) -> NewRevocation {
    NewRevocation::revoke(RevocationKind::Task, value, "", "ops").unwrap()
}

fn principal(value: &str) -> NewRevocation {
    NewRevocation::revoke(RevocationKind::Principal, value, "left", "ops").unwrap()
}

/// A new sled store (its own log and epoch) holding `entries`.
fn sled_store_with(entries: Vec<NewRevocation>) -> (tempfile::TempDir, Arc<dyn RevocationStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn RevocationStore> = Arc::new(SledStore::open(dir.path()).unwrap());
    for new in entries {
        store.append(new).unwrap();
    }
    (dir, store)
}

/// Registry A's log: three tasks. Nothing in it concerns bob.
fn log_a() -> Vec<NewRevocation> {
    vec![task("t1"), task("t2"), task("t3")]
}

/// Waits until `index` was confirmed by the registry after `since` and holds `seq`,
/// then checks that it holds registry B's log (`b_epoch`, bob revoked at `bob_seq`) and
/// nothing of A's.
async fn assert_rebuilt_from_b(
    index: &SharedIndex,
    since: Instant,
    seq: u64,
    b_epoch: &str,
    bob_seq: u64,
) {
    eventually("the index to be confirmed by registry B", || async {
        index.last_seq() == seq
            && index.last_heartbeat().is_some_and(|at| at > since)
            && index.freshness(Instant::now()).is_ok()
    })
    .await;
    let ids = vec![vec![9]];
    match index.check(&bobs_call(&ids), Instant::now()) {
        Err(Denied::Revoked {
            kind,
            value,
            seq: revoked_at,
            ..
        }) => assert_eq!(
            (kind, value.as_str(), revoked_at),
            (RevocationKind::Principal, "bob", bob_seq),
            "B's revocation of bob applies"
        ),
        other => panic!("bob must be denied by B's log, got {other:?}"),
    }
    let a_task = Subject {
        revocation_ids: &ids,
        principal: "alice",
        task: "t1",
        agents: &[],
    };
    assert_eq!(
        index.check(&a_task, Instant::now()),
        Ok(()),
        "nothing of A's log is left"
    );
    assert_eq!(index.epoch().as_deref(), Some(b_epoch));
}

/// Registry A (seqs 1..=3) is replaced by registry B on another store whose log is longer
/// and revokes bob at seq 2. Resuming "after 3" would apply only B's seq 4 on top of A's
/// state and leave bob allowed; the subscriber must notice the new epoch and rebuild.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_rebuilds_its_index_when_the_registry_serves_another_log() {
    let (_a_dir, a) = sled_store_with(log_a());
    let a_epoch = a.epoch().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let running = start(listener, a).await;
    let client = reader(&format!("http://{addr}"));
    let index = SharedIndex::new(Duration::from_secs(2));
    let _subscription = client.subscribe(index.clone(), options());
    eventually("A's log applied", || async {
        index.last_seq() == 3 && index.freshness(Instant::now()).is_ok()
    })
    .await;
    assert_eq!(index.epoch(), Some(a_epoch));
    running.stop().await;

    let (_b_dir, b) = sled_store_with(vec![task("x1"), principal("bob"), task("x3"), task("x4")]);
    let b_epoch = b.epoch().unwrap();
    let b_started = Instant::now();
    let running = start(TcpListener::bind(addr).await.unwrap(), b).await;
    assert_rebuilt_from_b(&index, b_started, 4, &b_epoch, 2).await;
    running.stop().await;
}

/// As above, but B's log is shorter than what the subscriber holds, so B refuses the
/// resume point (409); the subscriber must learn B's epoch and start over instead of
/// staying stale for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_ahead_of_a_different_log_starts_over() {
    let (_a_dir, a) = sled_store_with(log_a());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let running = start(listener, a).await;
    let client = reader(&format!("http://{addr}"));
    let index = SharedIndex::new(Duration::from_secs(2));
    let _subscription = client.subscribe(index.clone(), options());
    eventually("A's log applied", || async { index.last_seq() == 3 }).await;
    running.stop().await;

    let (_b_dir, b) = sled_store_with(vec![principal("bob"), task("x2")]);
    let b_epoch = b.epoch().unwrap();
    let b_started = Instant::now();
    let running = start(TcpListener::bind(addr).await.unwrap(), b).await;
    assert_rebuilt_from_b(&index, b_started, 2, &b_epoch, 1).await;
    running.stop().await;
}

/// A snapshot records the log it was read from, so a subscription continuing from it
/// after the registry changed logs starts over too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_records_its_epoch_and_a_later_subscription_checks_it() {
    let (_a_dir, a) = sled_store_with(log_a());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let running = start(listener, Arc::clone(&a)).await;
    let client = reader(&format!("http://{addr}"));

    let index = client.snapshot(Duration::from_secs(2)).await.unwrap();
    assert_eq!(index.last_seq(), 3);
    assert_eq!(index.epoch(), Some(a.epoch().unwrap()));
    let status = client.status(None).await.unwrap();
    assert_eq!(status.epoch, a.epoch().unwrap(), "the status names the log");
    running.stop().await;

    let (_b_dir, b) = sled_store_with(vec![task("x1"), principal("bob"), task("x3"), task("x4")]);
    let b_epoch = b.epoch().unwrap();
    let b_started = Instant::now();
    let running = start(TcpListener::bind(addr).await.unwrap(), b).await;
    let _subscription = client.subscribe(index.clone(), options());
    assert_rebuilt_from_b(&index, b_started, 4, &b_epoch, 2).await;
    running.stop().await;
}

/// `serve` tells handlers the client's address, so the per-address stream limit
/// separates clients (127.0.0.2 is a different address on Linux's loopback).
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_limits_streams_per_client_address() {
    let config = RegistryConfig {
        max_streams_per_peer: 1,
        ..RegistryConfig::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let running = start_with(
        listener,
        Arc::new(mandate_registry::MemoryStore::new()),
        config,
    )
    .await;
    let url = format!("http://{addr}/v1/revocations/stream");
    let open = |from: &str| {
        let client = reqwest::Client::builder()
            .local_address(from.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap();
        let url = url.clone();
        async move {
            client
                .get(url)
                .bearer_auth(READER_TOKEN)
                .send()
                .await
                .unwrap()
        }
    };
    let first = open("127.0.0.1").await;
    assert_eq!(first.status(), 200);
    let second = open("127.0.0.1").await;
    assert_eq!(second.status(), 503, "one stream per address");
    let other = open("127.0.0.2").await;
    assert_eq!(other.status(), 200, "another address has its own allowance");
    drop((first, other));
    running.stop().await;
}

/// A flood of unauthenticated stream attempts from one address, some held open, does
/// not keep an authenticated verifier behind the same address from subscribing: a
/// refused attempt never takes a slot, even with one stream allowed per address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_stream_flood_does_not_keep_a_verifier_out() {
    let config = RegistryConfig {
        heartbeat_interval: Duration::from_millis(50),
        max_streams_per_peer: 1,
        max_subscribers: 2,
        ..RegistryConfig::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let running = start_with(
        listener,
        Arc::new(mandate_registry::MemoryStore::new()),
        config,
    )
    .await;
    let url = format!("http://{addr}/v1/revocations/stream");
    let raw = reqwest::Client::new();
    let attempt = move |i: usize| {
        let request = raw.get(&url);
        // Anonymous, forged, and a non-mandate scheme, in turn.
        let request = match i % 3 {
            0 => request,
            1 => request.bearer_auth("forged"),
            _ => request.header("authorization", "Basic b3A6cHc="),
        };
        async move { request.send().await.unwrap() }
    };
    // The flood's responses are held, as a client keeping its connections would.
    let held = futures_util::future::join_all((0..60).map(attempt.clone())).await;
    let statuses: Vec<u16> = held.iter().map(|r| r.status().as_u16()).collect();
    // Refused as unauthenticated (401), or as overloaded (503) when the flood
    // fills the evaluation pool's queue first; never admitted to a stream.
    assert!(
        statuses.iter().all(|status| matches!(*status, 401 | 503)),
        "every unauthenticated attempt is refused: {statuses:?}"
    );
    assert!(statuses.contains(&401), "{statuses:?}");

    // More keep coming while the verifier subscribes.
    let flooding = tokio::spawn({
        let attempt = attempt.clone();
        async move {
            for i in 0.. {
                let _ = attempt(i).await;
            }
        }
    });
    let client = reader(&format!("http://{addr}"));
    let index = SharedIndex::new(Duration::from_secs(2));
    let _subscription = client.subscribe(index.clone(), options());
    let ids = vec![vec![7u8]];
    eventually("the verifier to sync despite the flood", || async {
        index.check(&bobs_call(&ids), Instant::now()).is_ok()
    })
    .await;
    // The flood competes for the evaluation pool: a write may be answered
    // 503 (overloaded) and retried, as `mandate revoke` does.
    let mut tries = 0;
    while let Err(error) = client
        .revoke(
            &RegistryAuth::bearer(OPERATOR_TOKEN),
            RevocationKind::Principal,
            "bob",
            "flood",
        )
        .await
    {
        tries += 1;
        assert!(tries < 50, "the revocation never got through: {error}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eventually("the verifier to apply the revocation", || async {
        matches!(
            index.check(&bobs_call(&ids), Instant::now()),
            Err(Denied::Revoked { .. })
        )
    })
    .await;
    flooding.abort();
    drop(held);
    running.stop().await;
}
