//! Black-box tests of several registry replicas on one PostgreSQL database: three
//! `mandate registry serve --store postgres://…` processes share one revocation log; a
//! verifier subscribed to one replica learns of revocations written through another;
//! `kill -9` of a replica while revocations stream in through all of them loses no
//! acknowledged entry and leaves no gap a reader could see.
//!
//! Each test gets a fresh database from `MANDATE_TEST_PG` and skips (printing
//! `SKIPPED: …`) when it is unset. Every wait polls in [`STEP`]s under a [`TIMEOUT`].

#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use common::http::{post, Reply};
use common::replicas::Replicas;
use common::server::{poll, Server};
use common::world::Holder;

/// The subscribed verifier's staleness bound.
const STALENESS: &str = "1s";

const SERVICE: &str = "analytics";
const RESOURCE: &str = "/datasets/q3/sales";

/// The replicas' world and the fresh database they share.
struct Fixture {
    r: Replicas,
    db: String,
}

impl Fixture {
    /// `None` when no PostgreSQL server is configured.
    fn new(test: &str) -> Option<Fixture> {
        let db = mandate_postgres::testing::fresh_database(test)?;
        Some(Fixture {
            r: Replicas::new(),
            db,
        })
    }

    fn replica(&self, name: &str) -> Server {
        self.r.replica(name, &self.db)
    }

    fn verifier(&self, registry: &str) -> Server {
        self.r.verifier(registry, STALENESS)
    }
}

/// The seq in the `revoked KIND VALUE (seq N)` line of `revoke`'s output.
fn acknowledged_seq(stdout: &str) -> Option<u64> {
    stdout.lines().find_map(|line| {
        let rest = &line[line.find(" (seq ")? + 6..];
        rest.split(')').next()?.parse().ok()
    })
}

fn read(holder: &Holder, verifier: &str) -> Reply {
    post(verifier, &holder.body(SERVICE, "read", RESOURCE))
}

#[test]
fn a_revocation_written_through_one_replica_reaches_a_verifier_of_another() {
    let Some(fx) = Fixture::new("replicas: cross-replica revocation") else {
        return;
    };
    let a = fx.replica("replica-a");
    let b = fx.replica("replica-b");
    let _c = fx.replica("replica-c");
    let verifier = fx.verifier(&b.url);
    let alice =
        fx.r.w
            .bearer("alice", "reporter", &["analytics:read"], &["--task", "q3"]);
    poll("the verifier to sync and allow", || {
        (read(&alice, &verifier.url).status == 200).then_some(())
    });

    let run = fx.r.revoke(&a.url, &["--principal", "alice"]);
    let seq = acknowledged_seq(run.ok()).unwrap_or_else(|| panic!("no seq in\n{run}"));
    assert_eq!(seq, 1, "the first entry of a fresh shared log\n{run}");

    let (reply, waited) = poll("the verifier of replica B to deny", || {
        let reply = read(&alice, &verifier.url);
        (reply.status == 403).then_some(reply)
    });
    reply.assert_denied("alice");
    assert!(
        reply.reason().contains("revoked"),
        "denied for the revocation: {}",
        reply.reason()
    );
    eprintln!("measured: revoked through replica A → denied by B's verifier within {waited:?}");

    // Every replica serves the same log, under the same identity.
    let from_b = fx.r.list(&b.url);
    assert_eq!(from_b.len(), 1);
    assert_eq!(from_b[0]["value"], "alice");
    assert_eq!(from_b[0]["seq"], 1);
}

#[test]
fn kill_9_of_a_replica_loses_no_acknowledged_revocation() {
    let Some(fx) = Fixture::new("replicas: kill -9 while writing") else {
        return;
    };
    let fx = Arc::new(fx);
    let replicas = [
        fx.replica("replica-a"),
        fx.replica("replica-b"),
        fx.replica("replica-c"),
    ];
    let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
    let mut replicas = replicas.map(Some);
    let victim = 1;
    let verifier = fx.verifier(&urls[2]);

    // One writer per replica, each revoking its own tasks until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = urls
        .iter()
        .enumerate()
        .map(|(n, url)| {
            let (fx, url, stop) = (Arc::clone(&fx), url.clone(), Arc::clone(&stop));
            thread::spawn(move || {
                let mut acknowledged = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Acquire) && i < 40 {
                    let task = format!("task-{n}-{i}");
                    let run = fx.r.revoke(&url, &["--task", &task]);
                    if run.code == 0 {
                        let seq = acknowledged_seq(&run.stdout)
                            .unwrap_or_else(|| panic!("no seq in\n{run}"));
                        acknowledged.push((seq, task));
                    }
                    i += 1;
                }
                acknowledged
            })
        })
        .collect();

    // Kill one replica once writes are flowing through every replica.
    poll("writes through every replica", || {
        let listed = fx.r.list(&urls[0]);
        (0..3)
            .all(|n| {
                listed.iter().any(|e| {
                    e["value"]
                        .as_str()
                        .unwrap()
                        .starts_with(&format!("task-{n}-"))
                })
            })
            .then_some(())
    });
    replicas[victim].take().unwrap().kill();
    let written_after_kill = fx.r.list(&urls[0]).len();
    poll("more writes through the surviving replicas", || {
        (fx.r.list(&urls[2]).len() >= written_after_kill + 6).then_some(())
    });
    stop.store(true, Ordering::Release);
    let acknowledged: Vec<(u64, String)> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();

    // Every acknowledged entry is in the log, under the seq it was acknowledged with,
    // and the log has no gap.
    let listed = fx.r.list(&urls[0]);
    let by_seq: BTreeMap<u64, String> = listed
        .iter()
        .map(|e| {
            (
                e["seq"].as_u64().unwrap(),
                e["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        by_seq.keys().copied().collect::<Vec<_>>(),
        (1..=listed.len() as u64).collect::<Vec<_>>(),
        "seqs 1..=n, no gap"
    );
    for (seq, task) in &acknowledged {
        assert_eq!(
            by_seq.get(seq),
            Some(task),
            "acknowledged entry #{seq} ({task}) is in the log"
        );
    }
    assert!(
        acknowledged.len() >= written_after_kill,
        "writes went on after the kill: {} acknowledged",
        acknowledged.len()
    );
    assert_eq!(
        fx.r.list(&urls[2]).len(),
        listed.len(),
        "the surviving replicas serve the same log"
    );

    // The verifier on a surviving replica stays fresh and denies what was revoked
    // through the others, including through the killed one before it died.
    let (n, i) = (victim, 0);
    let holder = fx.r.w.bearer(
        "bob",
        "reporter",
        &["analytics:read"],
        &["--task", &format!("task-{n}-{i}")],
    );
    let (reply, _) = poll(
        "the verifier to deny a task revoked through the killed replica",
        || {
            let reply = read(&holder, &verifier.url);
            (reply.status == 403).then_some(reply)
        },
    );
    reply.assert_denied(&format!("task-{n}-{i}"));
}
