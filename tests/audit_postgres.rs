//! The audit trail of several replicas on one PostgreSQL database, through the
//! `mandate` binary and real HTTP: two `mandate serve` processes share the
//! revocation log and the audit store, each writing a hash-chained log of its own
//! with its own key; `mandate audit --store postgres://…` and either replica's
//! `GET /v1/audit` read every replica's records merged in commit order;
//! `audit verify` checks every writer's chain and names the writer and the first
//! record someone edited in the database; a second process with the same key is
//! refused at start.
//!
//! Each test gets a fresh database from `MANDATE_TEST_PG` and skips (printing
//! `SKIPPED: …`) when it is unset.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeSet;

use common::server::{poll, Server};
use common::world::{Holder, World};
use common::{audit_records, mandate};
use serde_json::Value;

const SERVICE: &str = "analytics";

struct Fixture {
    w: World,
    db: String,
    /// Keyed, granting `registry:revoke` and `audit:read`.
    ops: Holder,
    /// Bearer, for task t-42.
    alice: Holder,
}

impl Fixture {
    fn new(test: &str) -> Option<Fixture> {
        let db = mandate_postgres::testing::fresh_database(test)?;
        let w = World::new();
        let ops = w.keyed("ops", "operator", &["registry:revoke", "audit:read"], &[]);
        let alice = w.bearer(
            "alice@example.com",
            "reporter",
            &["analytics:read"],
            &["--task", "t-42"],
        );
        Some(Fixture { w, db, ops, alice })
    }

    /// `mandate serve` on the shared database, writing the audit trail there
    /// with the key file `key`.
    fn try_replica(&self, key: &str) -> Result<Server, String> {
        let key = self.w.path(key);
        let extra = [
            "--heartbeat",
            "200ms",
            "--audit-store",
            &self.db,
            "--audit-key",
            &key,
        ];
        self.w.try_serve_store(&self.db, &extra)
    }

    fn replica(&self, key: &str) -> Server {
        self.try_replica(key).unwrap_or_else(|e| panic!("{e}"))
    }

    fn call(&self, server: &Server, operation: &str, request_id: &str) -> u16 {
        let body = self.alice.body(SERVICE, operation, "/q3");
        let reply = common::http::http(
            "POST",
            &format!("{}/v1/authorize", server.url),
            Some(&body),
            &[
                ("content-type", "application/json"),
                ("x-request-id", request_id),
            ],
        );
        reply.status
    }

    fn over_http(&self, server: &Server) -> Vec<Value> {
        audit_records(&[
            "--url",
            &server.url,
            "--auth",
            &self.ops.token,
            "--auth-key",
            self.ops.key_file(),
        ])
    }
}

fn request_ids(records: &[Value]) -> BTreeSet<String> {
    records
        .iter()
        .filter_map(|r| r["request_id"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn replicas_write_their_own_chains_and_read_one_trail() {
    let Some(fx) = Fixture::new("audit trail of replicas") else {
        return;
    };
    let a = fx.replica("a-audit.key");
    let b = fx.replica("b-audit.key");

    assert_eq!(fx.call(&a, "read", "a-1"), 200);
    assert_eq!(fx.call(&b, "read", "b-1"), 200);
    assert_eq!(fx.call(&b, "write", "b-2"), 403);
    mandate(&[
        "revoke",
        "--task",
        "t-42",
        "--registry",
        &a.url,
        "--auth",
        &fx.ops.token,
        "--auth-key",
        fx.ops.key_file(),
    ])
    .ok();
    // Replica B learns of the revocation from the shared log and denies.
    poll("replica B to deny the revoked task", || {
        (fx.call(&b, "read", "b-3") == 403).then_some(())
    });

    // From the store: every replica's records, each writer's in its order.
    let all = audit_records(&["--store", &fx.db]);
    let writers: BTreeSet<&str> = all.iter().map(|r| r["writer"].as_str().unwrap()).collect();
    assert_eq!(writers.len(), 2, "{all:#?}");
    let ids = request_ids(&all);
    for id in ["a-1", "b-1", "b-2", "b-3"] {
        assert!(ids.contains(id), "{id} missing: {ids:?}");
    }
    assert!(
        all.iter()
            .any(|r| r["event"] == "registry" && r["value"] == "t-42"),
        "the revocation is recorded: {all:#?}"
    );
    for writer in &writers {
        let seqs: Vec<u64> = all
            .iter()
            .filter(|r| r["writer"] == *writer)
            .map(|r| r["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    }

    // Over HTTP, either replica serves the whole trail.
    for server in [&a, &b] {
        let served = fx.over_http(server);
        assert_eq!(request_ids(&served), ids, "{}", server.url);
    }
    let denied = audit_records(&["--store", &fx.db, "--decision", "deny"]);
    assert!(denied.iter().all(|r| r["decision"] == "deny"));
    assert!(request_ids(&denied).contains("b-3"));

    // The story of the task, across replicas.
    let story = mandate(&["audit", "trace", "t-42", "--store", &fx.db]);
    let story = story.ok();
    assert!(story.contains("revoke"), "{story}");

    // A second process with A's key is refused: one writer per chain.
    let twin = fx.try_replica("a-audit.key");
    let refused = twin.err().expect("the twin must not start");
    assert!(refused.contains("same audit key"), "{refused}");

    // Every chain verifies.
    let verified = mandate(&["audit", "verify", "--store", &fx.db]);
    let out = verified.ok();
    assert!(out.contains("ok: 2 writer log(s)"), "{out}");

    // A head kept outside naming a writer whose log is gone.
    let zeros = "0".repeat(64);
    let missing = format!("sha256:0123456789abcdef:1:{zeros}");
    mandate(&[
        "audit",
        "verify",
        "--store",
        &fx.db,
        "--expect-head",
        &missing,
    ])
    .fails(1, "its log is missing");

    // An edit in the database, by someone who can write it, is named.
    drop(a);
    drop(b);
    let mut client = postgres::Client::connect(&fx.db, postgres::NoTls).unwrap();
    let edited = client
        .execute(
            "UPDATE mandate_audit_entries \
             SET body = convert_to(replace(convert_from(body, 'UTF8'), '\"allow\"', '\"deny\"'), 'UTF8') \
             WHERE pos = (SELECT min(pos) FROM mandate_audit_entries \
                          WHERE convert_from(body, 'UTF8') LIKE '%\"allow\"%')",
            &[],
        )
        .unwrap();
    assert_eq!(edited, 1);
    let tampered = mandate(&["audit", "verify", "--store", &fx.db]);
    tampered.fails(1, "TAMPERED: writer sha256:");
    assert!(tampered.stdout.contains("record #1"), "{}", tampered.stdout);
}

#[test]
fn a_postgres_audit_store_needs_a_key_per_replica() {
    let Some(fx) = Fixture::new("audit store needs a key") else {
        return;
    };
    let run = mandate(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--root-pub",
        fx.w.root_pub_file(),
        "--store",
        &fx.db,
        "--audit-store",
        &fx.db,
    ]);
    run.error("audit.key");
}
