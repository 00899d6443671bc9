//! Black-box test of a PostgreSQL outage under two registry replicas: the replicas
//! (`mandate registry serve --store postgres://…`) reach the database through a TCP
//! relay this test owns, and "stopping PostgreSQL" closes the relay's listener and
//! every relayed connection (the machine's server, shared with other tests, keeps
//! running). While it is down the replicas report not ready, refuse revocations
//! without acknowledging any, and the verifier subscribed to them (`mandate serve
//! --registry A,B`) denies every call once its staleness bound has passed; when the
//! relay listens again on the same port, everything recovers without a restart.
//!
//! The test gets a fresh database from `MANDATE_TEST_PG` and skips (printing
//! `SKIPPED: …`) when it is unset. Every wait polls under [`PATIENCE`]: no assertion
//! depends on how fast anything happens.

#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.

#[path = "common/mod.rs"]
mod common;

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::http::{post, Reply};
use common::replicas::Replicas;
use common::server::STEP;
use common::world::Holder;

/// The verifier's staleness bound.
const STALENESS: &str = "2s";
/// The longest any wait of this test lasts: the database pool's connection timeout,
/// the listener's reconnection backoff and the verifier's own backoff add up to far
/// less, so reaching it means something never recovered.
const PATIENCE: Duration = Duration::from_secs(60);

const SERVICE: &str = "analytics";
const RESOURCE: &str = "/datasets/q3/sales";

/// A TCP relay from `127.0.0.1:PORT` to the PostgreSQL server that can be cut (the
/// listener closed, every relayed connection shut down) and restored on the same port.
struct Relay {
    port: u16,
    upstream: String,
    running: Option<Running>,
}

struct Running {
    stop: Arc<AtomicBool>,
    accept: JoinHandle<()>,
    /// Both ends of every relayed connection, to shut them down on a cut.
    connections: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    /// Listens on a free loopback port, relaying to `upstream` (`HOST:PORT`).
    fn start(upstream: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let port = listener.local_addr().unwrap().port();
        let mut relay = Relay {
            port,
            upstream: upstream.to_owned(),
            running: None,
        };
        relay.running = Some(relay.serve(listener));
        relay
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn serve(&self, listener: TcpListener) -> Running {
        // Non-blocking, so the accept loop notices a cut and drops the listener.
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let (stop, connections) = (Arc::clone(&stop), Arc::clone(&connections));
            let upstream = self.upstream.clone();
            thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    match listener.accept() {
                        Ok((client, _)) => relay_one(client, &upstream, &connections),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(STEP),
                        Err(e) => panic!("relay accept: {e}"),
                    }
                }
                // The listener is dropped here: connecting is refused from now on.
            })
        };
        Running {
            stop,
            accept,
            connections,
        }
    }

    /// "Stops PostgreSQL": closes the listener, then every relayed connection.
    fn cut(&mut self) {
        let running = self.running.take().expect("the relay is running");
        running.stop.store(true, Ordering::Release);
        // Joined first, so no connection is accepted after the shutdowns below.
        running.accept.join().expect("the relay's accept loop");
        for stream in running.connections.lock().unwrap().drain(..) {
            let _already_closed = stream.shutdown(Shutdown::Both);
        }
    }

    /// "Brings PostgreSQL back": listens again on the same port.
    fn restore(&mut self) {
        assert!(self.running.is_none(), "the relay is cut");
        let (listener, _) = wait_for("the relay's port to be free again", || {
            TcpListener::bind(self.addr()).ok()
        });
        self.running = Some(self.serve(listener));
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if self.running.is_some() {
            self.cut();
        }
    }
}

/// Connects `client` to `upstream` and copies bytes both ways on two threads.
fn relay_one(client: TcpStream, upstream: &str, connections: &Mutex<Vec<TcpStream>>) {
    client.set_nonblocking(false).unwrap();
    let Ok(server) = TcpStream::connect(upstream) else {
        return; // Dropping `client` refuses it, as a server that is down would.
    };
    let mut registered = connections.lock().unwrap();
    registered.push(client.try_clone().unwrap());
    registered.push(server.try_clone().unwrap());
    drop(registered);
    for (mut from, mut to) in [
        (client.try_clone().unwrap(), server.try_clone().unwrap()),
        (server, client),
    ] {
        thread::spawn(move || {
            let _ended = io::copy(&mut from, &mut to);
            let _already_closed = to.shutdown(Shutdown::Write);
        });
    }
}

/// `url` (`postgres://[USER@]HOST:PORT/DB`) split into its `HOST:PORT` and the same URL
/// pointing at `via` instead.
fn reroute(url: &str, via: &str) -> (String, String) {
    let scheme_end = url.find("://").unwrap() + 3;
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host_start = authority.rfind('@').map_or(0, |at| at + 1);
    let host = &authority[host_start..];
    let upstream = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    let rerouted = format!(
        "{}{}{via}{}",
        &url[..scheme_end],
        &authority[..host_start],
        &rest[authority_end..]
    );
    (upstream, rerouted)
}

/// Calls `f` every [`STEP`] until it returns `Some`, at most [`PATIENCE`].
#[track_caller]
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> (T, Duration) {
    let start = Instant::now();
    loop {
        if let Some(value) = f() {
            return (value, start.elapsed());
        }
        assert!(
            start.elapsed() < PATIENCE,
            "timed out after {PATIENCE:?} waiting for {what}"
        );
        thread::sleep(STEP);
    }
}

/// `GET URL/readyz`: its status and body, or `None` when it did not answer within a
/// load balancer's usual probe timeout (5 s). A replica's store probe waits at most 1 s
/// for a connection, so with the database gone it must still answer, 503, in time: a
/// probe that hangs would never be seen as not ready here, and the test would fail.
fn readyz(url: &str) -> Option<(u16, Value)> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    let response = match agent.get(&format!("{url}/readyz")).call() {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(ureq::Error::Transport(_)) => return None,
    };
    let status = response.status();
    let body = response.into_json().expect("/readyz answers JSON");
    Some((status, body))
}

/// The principals revoked in the log, as one replica lists it.
fn revoked(fx: &Replicas, registry: &str) -> Vec<String> {
    fx.list(registry)
        .iter()
        .map(|e| e["value"].as_str().unwrap().to_owned())
        .collect()
}

fn read(holder: &Holder, verifier: &str) -> Reply {
    post(verifier, &holder.body(SERVICE, "read", RESOURCE))
}

#[test]
fn a_postgres_outage_makes_replicas_not_ready_verifiers_deny_and_everything_recovers() {
    let Some(db) = mandate_postgres::testing::fresh_database("pg_outage: cut and restore") else {
        return;
    };
    let fx = Replicas::new();
    let (upstream, _) = reroute(&db, "unused");
    let mut relay = Relay::start(&upstream);
    let (_, store) = reroute(&db, &relay.addr());
    let replicas = [
        fx.replica("replica-a", &store),
        fx.replica("replica-b", &store),
    ];
    let verifier = fx.verifier(
        &format!("{},{}", replicas[0].url, replicas[1].url),
        STALENESS,
    );
    let alice = fx.w.bearer("alice", "reporter", &["analytics:read"], &[]);
    let bob = fx.w.bearer("bob", "reporter", &["analytics:read"], &[]);

    // Up: every replica ready, the verifier fresh and allowing.
    for replica in &replicas {
        wait_for(&format!("{} to be ready", replica.name), || {
            readyz(&replica.url).filter(|(status, _)| *status == 200)
        });
    }
    wait_for("the verifier to sync and allow", || {
        (read(&alice, &verifier.url).status == 200).then_some(())
    });
    read(&bob, &verifier.url).assert_allowed();

    // PostgreSQL goes away.
    relay.cut();

    for replica in &replicas {
        let ((_, body), waited) =
            wait_for(&format!("{} to report not ready", replica.name), || {
                readyz(&replica.url).filter(|(status, _)| *status == 503)
            });
        assert_eq!(body["ready"], false, "{}: {body}", replica.name);
        assert_eq!(
            body["store"]["ok"], false,
            "{}: the store check names the outage: {body}",
            replica.name
        );
        eprintln!(
            "measured: {} not ready {waited:?} after the cut",
            replica.name
        );
    }

    // A revocation cannot be written: refused, nothing acknowledged.
    let refused = fx.revoke(&replicas[0].url, &["--principal", "bob"]);
    assert_ne!(
        refused.code, 0,
        "a revoke without a database is refused\n{refused}"
    );
    assert!(
        !refused.stdout.contains("(seq "),
        "nothing acknowledged\n{refused}"
    );
    eprintln!("refused during the outage: {}", refused.stderr.trim());
    // Unavailable, never "forbidden": the operator's right is not in question.
    assert!(
        refused.stderr.contains("answered 5"),
        "refused by the registry with a 5xx\n{refused}"
    );

    // The verifier denies every call once no replica confirmed its state in the bound.
    let (denied, waited) = wait_for("the verifier to deny as stale", || {
        let reply = read(&alice, &verifier.url);
        (reply.status == 403).then_some(reply)
    });
    denied.assert_denied("stale");
    read(&bob, &verifier.url).assert_denied("stale");
    let (status, body) = readyz(&verifier.url).expect("the verifier's /readyz answers");
    assert_eq!(status, 503, "the stale verifier is not ready: {body}");
    eprintln!("measured: verifier denying as stale {waited:?} after the replicas went not ready");

    // PostgreSQL comes back on the same address.
    relay.restore();

    for replica in &replicas {
        let (_, waited) = wait_for(&format!("{} to be ready again", replica.name), || {
            readyz(&replica.url).filter(|(status, _)| *status == 200)
        });
        eprintln!(
            "measured: {} ready again {waited:?} after the restore",
            replica.name
        );
    }
    let (_, waited) = wait_for("the verifier to be fresh and allow again", || {
        let reply = read(&alice, &verifier.url);
        (reply.status == 200).then_some(reply)
    });
    eprintln!("measured: verifier allowing again {waited:?} after the replicas were ready");
    read(&bob, &verifier.url).assert_allowed();
    assert!(
        revoked(&fx, &replicas[1].url).is_empty(),
        "the revoke refused during the outage left nothing in the log"
    );

    // Writes work again, and reach the verifier.
    let run = fx.revoke(&replicas[1].url, &["--principal", "alice"]);
    assert!(run.ok().contains("(seq 1)"), "the log's first entry\n{run}");
    let (reply, _) = wait_for("the verifier to deny the revoked principal", || {
        let reply = read(&alice, &verifier.url);
        (reply.status == 403).then_some(reply)
    });
    reply.assert_denied("revoked");
    read(&bob, &verifier.url).assert_allowed();
    assert_eq!(revoked(&fx, &replicas[0].url), ["alice"]);
}

#[test]
fn a_postgres_url_is_rerouted_through_the_relay() {
    assert_eq!(
        reroute("postgres://postgres@127.0.0.1:5432/db_1", "127.0.0.1:9"),
        (
            "127.0.0.1:5432".to_owned(),
            "postgres://postgres@127.0.0.1:9/db_1".to_owned()
        )
    );
    assert_eq!(
        reroute("postgres://localhost/db?sslmode=disable", "127.0.0.1:9"),
        (
            "localhost:5432".to_owned(),
            "postgres://127.0.0.1:9/db?sslmode=disable".to_owned()
        )
    );
}
