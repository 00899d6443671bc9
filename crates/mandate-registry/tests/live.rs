//! Real sockets on 127.0.0.1:0: a subscribed verifier index sees a revocation written over
//! HTTP, acknowledges it, and resumes without gaps after the registry restarts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestAuthorizer, OPERATOR_TOKEN};
use mandate_registry::{
    serve, AgentRef, Denied, Error, NewRevocation, RegistryClient, RegistryConfig, RegistryState,
    RevocationKind, RevocationStore, SharedIndex, SledStore, Subject, SubscribeOptions,
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
    let state = RegistryState::with_config(store, Arc::new(TestAuthorizer), config);
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Running { addr, stop, server }
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
    let client = RegistryClient::new(&format!("http://{}", running.addr)).unwrap();

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
        .revoke("forged", RevocationKind::Principal, "bob", "x")
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, Error::Api { status: 401, code, .. } if code == "unauthenticated"),
        "{refused:?}"
    );

    let entry = client
        .revoke(
            OPERATOR_TOKEN,
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
    let client = RegistryClient::new(&format!("http://{addr}")).unwrap();

    let index = SharedIndex::new(Duration::from_secs(2));
    let _subscription = client.subscribe(index.clone(), options());
    client
        .revoke(OPERATOR_TOKEN, RevocationKind::Task, "t1", "")
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
        .revoke(OPERATOR_TOKEN, RevocationKind::Agent, "orchestrator", "")
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
