//! The PostgreSQL audit trail attacked as a stranger would, through the
//! `mandate` binary and real HTTP on loopback: someone who can write the
//! database edits, deletes, moves and replaces rows, and `audit verify` must
//! name each as tampering (exit 1), never panic or call it a mere error; a
//! database that cannot be reached is one clear error line; and a database
//! that stops answering (a stalled host: the connection open, nothing coming
//! back) makes a replica refuse decisions within a bound and report itself
//! not ready, then recover when it answers again.
//!
//! What `verify` cannot see from the store alone, and these tests do not
//! claim: a whole writer's log deleted (a head kept outside names it, see
//! `audit_postgres.rs`), a tail cut together with its heads, and two
//! writers' records swapped in the merged trail (positions are not signed).
//!
//! Each test gets a fresh database from `MANDATE_TEST_PG` and skips (printing
//! `SKIPPED: …`) when it is unset.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.

#[path = "common/mod.rs"]
mod common;

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::server::Server;
use common::world::{Holder, World};
use common::{mandate, Run};
use serde_json::Value;

const SERVICE: &str = "analytics";

/// How long a decision may wait for a database that stopped answering: the
/// writer's bound (10 s) with room to spare.
const REFUSED_WITHIN: Duration = Duration::from_secs(25);
/// The longest recovery may take once the database answers again.
const PATIENCE: Duration = Duration::from_secs(60);

struct Fixture {
    w: World,
    db: String,
    alice: Holder,
}

impl Fixture {
    fn new(test: &str) -> Option<Fixture> {
        let db = mandate_postgres::testing::fresh_database(test)?;
        let w = World::new();
        let alice = w.bearer("alice@example.com", "reporter", &["analytics:read"], &[]);
        Some(Fixture { w, db, alice })
    }

    /// `mandate serve` with its revocations in the database and its audit
    /// trail at `audit` (the database, or a way to it), signed with `key`.
    fn replica(&self, audit: &str, key: &str) -> Server {
        let key = self.w.path(key);
        self.w
            .serve_store(&self.db, &["--audit-store", audit, "--audit-key", &key])
    }

    /// `POST /v1/authorize` for alice, waiting as long as the server takes.
    fn call(&self, server: &Server, resource: &str) -> (u16, Value) {
        let body = self.alice.body(SERVICE, "read", resource);
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(60))
            .build();
        let answer = agent
            .post(&format!("{}/v1/authorize", server.url))
            .set("content-type", "application/json")
            .send_string(&body);
        let response = match answer {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(e) => panic!("POST /v1/authorize: {e}"),
        };
        let status = response.status();
        (status, response.into_json().unwrap())
    }

    fn verify(&self, extra: &[&str]) -> Run {
        let mut args = vec!["audit", "verify", "--store", &self.db];
        args.extend_from_slice(extra);
        mandate(&args)
    }

    fn sql(&self, sql: &str) {
        let mut client = postgres::Client::connect(&self.db, postgres::NoTls).unwrap();
        client
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// A text value the first row of `sql` holds.
    fn value(&self, sql: &str) -> String {
        let mut client = postgres::Client::connect(&self.db, postgres::NoTls).unwrap();
        client.query_one(sql, &[]).unwrap().get(0)
    }
}

/// The audit rows copied aside, and put back before each attack.
const KEEP: &str = "
    CREATE TABLE kept_logs AS SELECT * FROM mandate_audit_logs;
    CREATE TABLE kept_entries AS SELECT * FROM mandate_audit_entries;
    CREATE TABLE kept_heads AS SELECT * FROM mandate_audit_heads;";
const RESTORE: &str = "
    DELETE FROM mandate_audit_heads;
    DELETE FROM mandate_audit_entries;
    DELETE FROM mandate_audit_logs;
    INSERT INTO mandate_audit_logs SELECT * FROM kept_logs;
    INSERT INTO mandate_audit_entries SELECT * FROM kept_entries;
    INSERT INTO mandate_audit_heads SELECT * FROM kept_heads;";

#[test]
fn verify_names_each_edit_of_the_database_as_tampering() {
    let Some(fx) = Fixture::new("audit attacks: tampering") else {
        return;
    };
    {
        let a = fx.replica(&fx.db, "a-audit.key");
        let b = fx.replica(&fx.db, "b-audit.key");
        for n in 0..3 {
            assert_eq!(fx.call(&a, &format!("/a{n}")).0, 200);
            assert_eq!(fx.call(&b, &format!("/b{n}")).0, 200);
        }
    } // Both replicas stop: their newest records are signed as they close.
    fx.verify(&[]).ok();
    fx.sql(KEEP);

    let first = "(SELECT log_id FROM mandate_audit_logs ORDER BY created_at, log_id LIMIT 1)";
    let a_pub = fx.w.public("a-audit.key");
    let b_pub = fx.w.public("b-audit.key");
    let swap_writers = format!(
        "UPDATE mandate_audit_logs SET writer = 'moving' WHERE writer = '{a_pub}';
         UPDATE mandate_audit_logs SET writer = '{a_pub}' WHERE writer = '{b_pub}';
         UPDATE mandate_audit_logs SET writer = '{b_pub}' WHERE writer = 'moving';"
    );
    let cases: Vec<(&str, String, Vec<&str>, &str)> = vec![
        (
            "a record deleted",
            format!("DELETE FROM mandate_audit_entries WHERE log_id = {first} AND seq = 2"),
            vec![],
            "record #2: missing (deleted)",
        ),
        (
            "the signed tail cut",
            format!(
                "DELETE FROM mandate_audit_entries WHERE log_id = {first} AND seq >=
                   (SELECT max(seq) FROM mandate_audit_heads WHERE log_id = {first})"
            ),
            vec![],
            "missing (truncated)",
        ),
        (
            "every head deleted",
            format!("DELETE FROM mandate_audit_heads WHERE log_id = {first}"),
            vec![],
            "no signed head at all",
        ),
        (
            "two records of one writer swapped in the trail",
            format!(
                "UPDATE mandate_audit_entries SET pos = pos + 1000000
                   WHERE log_id = {first} AND seq IN (1, 2);
                 UPDATE mandate_audit_entries SET pos =
                   (SELECT pos - 1000000 FROM mandate_audit_entries WHERE log_id = {first} AND seq = 2)
                   WHERE log_id = {first} AND seq = 1;
                 UPDATE mandate_audit_entries SET pos =
                   (SELECT min(pos) FROM kept_entries WHERE log_id = {first})
                   WHERE log_id = {first} AND seq = 2;"
            ),
            vec![],
            "record #2: out of place in the trail",
        ),
        (
            "a head replaced by text that is not a head",
            format!(
                "UPDATE mandate_audit_heads SET head = '{{\"seq\":'
                   WHERE id = (SELECT min(id) FROM mandate_audit_heads WHERE log_id = {first})"
            ),
            vec![],
            "unreadable: signed head",
        ),
        (
            "a head's row moved to a negative record number",
            format!(
                "UPDATE mandate_audit_heads SET seq = -1
                   WHERE id = (SELECT min(id) FROM mandate_audit_heads WHERE log_id = {first})"
            ),
            vec![],
            "unreadable: signed head",
        ),
        (
            "a writer column that is no key",
            format!("UPDATE mandate_audit_logs SET writer = 'garbage' WHERE log_id = {first}"),
            vec![],
            "names a writer key that does not read",
        ),
        (
            "two logs' writers swapped",
            swap_writers.clone(),
            vec![],
            "not a given writer key",
        ),
        (
            "two logs' writers swapped, both keys pinned",
            swap_writers,
            vec!["--writer-pub", &a_pub, "--writer-pub", &b_pub],
            "not a given writer key",
        ),
    ];
    for (attack, sql, extra, needle) in &cases {
        fx.sql(RESTORE);
        fx.verify(extra).ok();
        fx.sql(sql);
        let run = fx.verify(extra);
        assert_eq!(run.code, 1, "{attack}: expected TAMPERED (exit 1)\n{run}");
        assert!(
            run.stdout.contains("TAMPERED") && run.stdout.contains(needle),
            "{attack}: expected {needle:?}\n{run}"
        );
    }

    // A record made NULL (its table's constraint dropped first): tampering to
    // verify, an error to a reader, a panic to neither.
    fx.sql(RESTORE);
    let log = fx.value(&format!("SELECT {first}"));
    fx.sql(&format!(
        "ALTER TABLE mandate_audit_entries ALTER COLUMN body DROP NOT NULL;
         UPDATE mandate_audit_entries SET body = NULL WHERE log_id = '{log}' AND seq = 3;"
    ));
    fx.verify(&[])
        .fails(1, "record #3: unreadable: the record is not bytes");
    mandate(&["audit", "--store", &fx.db]).error("reading the audit trail");
}

#[test]
fn a_reader_needs_only_select_and_never_creates_a_trail() {
    let Some(fx) = Fixture::new("audit attacks: a read-only auditor") else {
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let role = format!("mandate_auditor_{}_{nanos}", std::process::id());
    fx.sql(&format!("CREATE ROLE {role} LOGIN"));
    let config: postgres::Config = fx.db.parse().unwrap();
    let as_auditor = url_as(&fx.db, &role, &host_port(&config));

    // Nothing there yet: an error, and no tables made.
    mandate(&["audit", "verify", "--store", &as_auditor]).error("holds no audit trail");
    let made = fx.value("SELECT coalesce(to_regclass('mandate_audit_logs')::text, 'none')");
    assert_eq!(made, "none");

    {
        let replica = fx.replica(&fx.db, "audit.key");
        assert_eq!(fx.call(&replica, "/q").0, 200);
    }
    fx.sql(&format!(
        "GRANT SELECT ON mandate_audit_logs, mandate_audit_entries, mandate_audit_heads TO {role}"
    ));
    let verified = mandate(&["audit", "verify", "--store", &as_auditor]);
    fx.sql(&format!("DROP OWNED BY {role}; DROP ROLE {role}"));
    assert!(verified.ok().contains("ok: 1 writer log(s)"), "{verified}");
}

#[test]
fn an_unreachable_audit_database_is_one_clear_error() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://ops:pw-never-shown@127.0.0.1:{port}/audit");
    let started = Instant::now();
    for args in [
        vec!["audit", "--store", &url],
        vec!["audit", "verify", "--store", &url],
    ] {
        let run = mandate(&args);
        let line = run.error("Connection refused");
        assert!(line.contains("postgres://ops:***@"), "{run}");
        assert!(!run.stderr.contains("pw-never-shown"), "{run}");
    }
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_database_that_stops_answering_refuses_decisions_then_recovers() {
    let Some(fx) = Fixture::new("audit attacks: a stalled database") else {
        return;
    };
    let relay = StallingRelay::start(&fx.db);
    let replica = fx.replica(&relay.url, "audit.key");
    assert_eq!(fx.call(&replica, "/before").0, 200);

    relay.stall(true);
    let started = Instant::now();
    let (status, body) = fx.call(&replica, "/stalled");
    let waited = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "audit_unavailable", "{body}");
    assert!(waited < REFUSED_WITHIN, "refused only after {waited:?}");
    let ready = common::http::http("GET", &format!("{}/readyz", replica.url), None, &[]);
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert_eq!(ready.body["audit"]["ok"], false, "{}", ready.body);

    relay.stall(false);
    let started = Instant::now();
    loop {
        if fx.call(&replica, "/after").0 == 200 {
            break;
        }
        assert!(started.elapsed() < PATIENCE, "never recovered");
        thread::sleep(Duration::from_millis(200));
    }
    let ready = common::http::http("GET", &format!("{}/readyz", replica.url), None, &[]);
    assert_eq!(ready.status, 200, "{}", ready.body);
    drop(replica);
    fx.verify(&[]).ok();
}

/// A TCP relay to the PostgreSQL server that can stall: while it does,
/// connections stay open and no byte moves either way (a host that stopped
/// answering, not one that went away).
struct StallingRelay {
    /// The database's URL through the relay.
    url: String,
    stalled: Arc<AtomicBool>,
}

impl StallingRelay {
    fn start(db: &str) -> StallingRelay {
        let config: postgres::Config = db.parse().unwrap();
        let upstream = host_port(&config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stalled = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stalled);
        // Runs for the test process's life; each accepted connection gets
        // two pumps.
        thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let flag = Arc::clone(&flag);
                    thread::spawn(move || pump(from, to, &flag));
                }
            }
        });
        let user = config.get_user().unwrap_or("postgres");
        StallingRelay {
            url: url_as(db, user, &format!("127.0.0.1:{port}")),
            stalled,
        }
    }

    fn stall(&self, on: bool) {
        self.stalled.store(on, Ordering::SeqCst);
    }
}

/// Copies bytes from `from` to `to`, holding each chunk while stalled.
fn pump(mut from: TcpStream, mut to: TcpStream, stalled: &AtomicBool) {
    let mut buffer = [0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buffer) {
        if n == 0 {
            break;
        }
        while stalled.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(20));
        }
        if to.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// The `HOST:PORT` a URL's configuration reaches.
fn host_port(config: &postgres::Config) -> String {
    let host = match &config.get_hosts()[0] {
        postgres::config::Host::Tcp(host) => host.clone(),
        other => panic!("these tests need a TCP host, not {other:?}"),
    };
    format!("{host}:{}", config.get_ports().first().unwrap_or(&5432))
}

/// The database `db` names, as `user` (no password) through `host_port`.
fn url_as(db: &str, user: &str, host_port: &str) -> String {
    let config: postgres::Config = db.parse().unwrap();
    let name = config.get_dbname().unwrap();
    format!("postgres://{user}@{host_port}/{name}")
}
