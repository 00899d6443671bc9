//! Black-box tests of the offline commands on a PostgreSQL revocation store:
//! `mandate revoke --store postgres://…` (with `--lift` and `--audit-store`),
//! `revocations list --store` and `authorize --store` act on the very log that running
//! `mandate registry serve` replicas share, say exactly what they say on a sled folder,
//! and never print the URL's password. An unreachable database is one `error:` line and
//! exit 2, within the commands' short connect timeout.
//!
//! The tests that need a server get a fresh database from `MANDATE_TEST_PG` and skip
//! (printing `SKIPPED: …`) when it is unset; the unreachable one needs none. Every wait
//! polls in [`STEP`](common::server::STEP)s under a bound.

#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use serde_json::Value;

use common::replicas::Replicas;
use common::server::poll;
use common::world::{Holder, World};
use common::{mandate, request_flags, Run};
use mandate_postgres::StoreLocation;

const SERVICE: &str = "analytics";
const RESOURCE: &str = "/datasets/q3/sales";
/// Put into every database URL: it must never be printed.
const PASSWORD: &str = "s3cret-pg-password";

/// A world with an operator, and a fresh database named by a URL that carries a
/// password (the test server trusts loopback, so it is ignored there, but the
/// commands must still hide it).
struct Fixture {
    r: Replicas,
    /// The URL given to `--store`, password included.
    db: String,
    /// The same URL as the commands show it.
    shown: String,
}

impl Fixture {
    /// `None` when no PostgreSQL server is configured.
    fn new(test: &str) -> Option<Fixture> {
        let db = with_password(&mandate_postgres::testing::fresh_database(test)?);
        let shown = db.parse::<StoreLocation>().unwrap().to_string();
        assert!(!shown.contains(PASSWORD), "{shown}");
        Some(Fixture {
            r: Replicas::new(),
            db,
            shown,
        })
    }

    fn w(&self) -> &World {
        &self.r.w
    }
}

/// `url` with [`PASSWORD`] as its user's password (`postgres://user@…` →
/// `postgres://user:PASSWORD@…`; a URL without a user gets `postgres`).
fn with_password(url: &str) -> String {
    let scheme_end = url.find("://").unwrap() + 3;
    let rest = &url[scheme_end..];
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    match authority.rfind('@') {
        Some(at) if authority[..at].contains(':') => url.to_owned(),
        Some(at) => format!(
            "{}{}:{PASSWORD}{}",
            &url[..scheme_end],
            &rest[..at],
            &rest[at..]
        ),
        None => format!("{}postgres:{PASSWORD}@{rest}", &url[..scheme_end]),
    }
}

/// Asserts the run printed the password nowhere; returns it.
#[track_caller]
fn hides_password(run: Run) -> Run {
    assert!(
        !run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD),
        "the database password was printed\n{run}"
    );
    run
}

/// `mandate revoke TARGET --store STORE EXTRA...`.
fn revoke(store: &str, target: &[&str], extra: &[&str]) -> Run {
    let mut args = vec!["revoke"];
    args.extend_from_slice(target);
    args.extend_from_slice(&["--store", store]);
    args.extend_from_slice(extra);
    hides_password(mandate(&args))
}

/// `mandate revocations list --store STORE EXTRA...`.
fn list(store: &str, extra: &[&str]) -> Run {
    let mut args = vec!["revocations", "list", "--store", store];
    args.extend_from_slice(extra);
    hides_password(mandate(&args))
}

/// `mandate authorize` of `holder` reading [`RESOURCE`], revocations from `store`, as JSON.
fn authorize(w: &World, store: &str, holder: &Holder) -> Run {
    let request = request_flags(SERVICE, "read", RESOURCE);
    hides_password(w.authorize(&holder.token, &request, &["--store", store, "--json"]))
}

/// `mandate audit --store DIR --json`: one record per line.
fn audit_records(dir: &str) -> Vec<Value> {
    mandate(&["audit", "--store", dir, "--json"])
        .ok()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn offline_commands_write_and_read_the_log_a_running_replica_serves() {
    let Some(fx) = Fixture::new("cli_postgres: offline commands beside a replica") else {
        return;
    };
    let w = fx.w();
    let replica = fx.r.replica("replica", &fx.db);
    let report = w.bearer("alice", "reporter", &["analytics:read"], &["--task", "t1"]);
    let other = w.bearer("alice", "reporter", &["analytics:read"], &["--task", "t2"]);

    // An audit store that cannot hold a log is refused before anything is revoked.
    let not_a_folder = w.write("a-file", "x");
    revoke(&fx.db, &["--task", "t1"], &["--audit-store", &not_a_folder]).error("audit store");
    assert_eq!(list(&fx.db, &[]).ok(), "no revocations\n");

    // Revoked offline, straight into the shared database, and recorded.
    let audit = w.path("audit");
    let run = revoke(
        &fx.db,
        &["--task", "t1", "--reason", "report filed"],
        &["--audit-store", &audit],
    );
    assert_eq!(
        run.ok(),
        format!(
            "revoked task t1 (seq 1), written to {}\nrecorded as #1 in {audit}\n",
            fx.shown
        ),
        "{run}"
    );
    let records = audit_records(&audit);
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0]["event"], "registry");
    assert_eq!(records[0]["action"], "revoke");
    assert_eq!(records[0]["kind"], "task");
    assert_eq!(records[0]["value"], "t1");
    assert_eq!(records[0]["revocation"], 1);
    assert_eq!(records[0]["reason"], "report filed");
    let verified = mandate(&["audit", "verify", "--store", &audit]);
    assert!(verified.ok().starts_with("ok: 1 record(s)"), "{verified}");

    // Decided offline against the database: the revoked task denied, another allowed.
    authorize(w, &fx.db, &report).denied_because("revoked: task t1 (revocation #1: report filed)");
    let allowed = authorize(w, &fx.db, &other).allowed();
    assert_eq!(allowed["revocation_checked"], true, "{allowed}");

    // The running replica serves what the offline command wrote.
    let (served, _) = poll("the replica to serve the offline revocation", || {
        let entries = fx.r.list(&replica.url);
        (!entries.is_empty()).then_some(entries)
    });
    assert_eq!(served.len(), 1, "{served:#?}");
    assert_eq!(served[0]["seq"], 1);
    assert_eq!(served[0]["kind"], "task");
    assert_eq!(served[0]["value"], "t1");
    assert_eq!(served[0]["reason"], "report filed");
    assert!(
        served[0]["revoked_by"]
            .as_str()
            .is_some_and(|by| by.starts_with("local operator")),
        "{served:#?}"
    );

    // And the offline commands read what the replica wrote, next in the same log.
    let run = fx.r.revoke(&replica.url, &["--principal", "bob"]);
    assert!(
        run.ok().starts_with("revoked principal bob (seq 2)"),
        "{run}"
    );
    let run = list(&fx.db, &[]);
    let lines: Vec<&str> = run.ok().lines().collect();
    assert_eq!(lines.len(), 2, "{run}");
    assert!(lines[0].starts_with("#1 "), "{run}");
    assert!(
        lines[0].contains(" task ") && lines[0].contains("t1"),
        "{run}"
    );
    assert!(lines[0].ends_with("— report filed"), "{run}");
    assert!(lines[1].starts_with("#2 "), "{run}");
    assert!(lines[1].contains("principal bob"), "{run}");
    assert!(lines[1].contains("by ops via operator"), "{run}");
    let after = list(&fx.db, &["--after", "1", "--json"]).json();
    assert_eq!(after.as_array().unwrap().len(), 1, "{after}");
    assert_eq!(after[0]["value"], "bob", "{after}");

    // A mistyped database is named, never an empty log that revokes nothing.
    // (The database's name is the URL's path, before any `?` options.)
    let typo = |url: &str| match url.split_once('?') {
        Some((base, options)) => format!("{base}_typo?{options}"),
        None => format!("{url}_typo"),
    };
    let run = authorize(w, &typo(&fx.db), &report);
    run.error("does not exist");
    let shown = format!("opening store {}", typo(&fx.shown));
    assert!(run.stderr.contains(&shown), "{run}");
}

/// What one command printed, with the store's name replaced, so that runs on two
/// stores compare; the clock's readings are dropped (a decision's `time`, a listed
/// entry's `at`).
fn normalized(run: &Run, store: &str) -> (i32, String) {
    let stdout = run.stdout.replace(store, "STORE");
    let stdout = match serde_json::from_str::<Value>(&stdout) {
        Ok(Value::Array(mut entries)) => {
            for entry in &mut entries {
                entry.as_object_mut().unwrap().remove("at");
            }
            serde_json::to_string_pretty(&entries).unwrap()
        }
        Ok(Value::Object(mut decision)) => {
            decision.remove("time");
            serde_json::to_string_pretty(&decision).unwrap()
        }
        _ => stdout,
    };
    (run.code, stdout)
}

/// Revoke bob, decide, lift, decide, list: each run, as [`normalized`].
fn lift_script(w: &World, store: &str, shown: &str, bob: &Holder) -> Vec<(i32, String)> {
    let runs = [
        revoke(
            store,
            &["--principal", "bob", "--reason", "kill switch"],
            &[],
        ),
        authorize(w, store, bob),
        revoke(store, &["--principal", "bob", "--lift"], &[]),
        authorize(w, store, bob),
        list(store, &["--json"]),
    ];
    runs.iter().map(|run| normalized(run, shown)).collect()
}

#[test]
fn lifting_offline_restores_the_principal_and_says_what_it_says_on_sled() {
    let Some(fx) = Fixture::new("cli_postgres: lift, as on sled") else {
        return;
    };
    let w = fx.w();
    let bob = w.bearer("bob", "reporter", &["analytics:read"], &["--task", "q3"]);

    let on_postgres = lift_script(w, &fx.db, &fx.shown, &bob);
    assert_eq!(on_postgres[0].0, 0, "{on_postgres:#?}");
    assert_eq!(
        on_postgres[0].1,
        "revoked principal bob (seq 1), written to STORE\n"
    );
    assert_eq!(on_postgres[1].0, 1, "bob denied: {on_postgres:#?}");
    assert!(
        on_postgres[1]
            .1
            .contains("revoked: principal bob (revocation #1: kill switch)"),
        "{on_postgres:#?}"
    );
    assert_eq!(
        on_postgres[2].1,
        "lifted principal bob (seq 2), written to STORE\n"
    );
    assert_eq!(on_postgres[3].0, 0, "bob allowed again: {on_postgres:#?}");

    // The same commands on a sled folder (made by a registry that then stopped).
    let mut registry = w.serve_registry("sled", &[]);
    registry.terminate();
    let folder = w.path("sled");
    let on_sled = lift_script(w, &folder, &folder, &bob);
    assert_eq!(on_postgres, on_sled);
}

#[test]
fn an_unreachable_database_is_one_line_and_exit_2_within_seconds() {
    let w = World::new();
    let holder = w.bearer("alice", "reporter", &["analytics:read"], &[]);
    // Nothing listens on port 1. Servers wait 5 s for a connection; a command gives
    // up after 2, so each run ends well before the servers' wait would.
    let url = format!("postgres://ops:{PASSWORD}@127.0.0.1:1/mandate");
    let shown = "opening store postgres://ops:***@127.0.0.1:1/mandate";
    for name in ["revoke", "lift", "list", "authorize"] {
        let start = Instant::now();
        let run = match name {
            "revoke" => revoke(&url, &["--task", "t1"], &[]),
            "lift" => revoke(&url, &["--principal", "bob", "--lift"], &[]),
            "list" => list(&url, &[]),
            _ => authorize(&w, &url, &holder),
        };
        let took = start.elapsed();
        let stderr = run.error(shown);
        // The cause itself, not only the client's top line.
        assert!(
            stderr.contains("error connecting to server: Connection refused"),
            "{run}"
        );
        assert!(
            took < Duration::from_secs(5),
            "{name} took {took:?}, not the commands' short connect timeout\n{run}"
        );
        eprintln!("measured: {name} on an unreachable database failed after {took:?}");
    }
}
