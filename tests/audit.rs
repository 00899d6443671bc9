//! The audit trail through the `mandate` binary and real HTTP: every
//! decision and revocation of `mandate serve` recorded before it is
//! answered, read back with filters (from the store and over HTTP with
//! `audit:read`), traced, verified; tampering of each kind on the real sled
//! files named at its first bad record; an unwritable store refused and
//! reported, then recovered; and no acknowledged decision lost to kill -9.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::mandate;
use common::server::{poll, Server};
use common::world::{Holder, World};
use serde_json::{json, Value};

/// A root, an operator (revoke + audit:read, keyed), a reader without
/// audit:read, and alice's bearer mandate for task t-42.
struct Fixture {
    w: World,
    /// Keyed, granting `registry:revoke` and `audit:read`.
    ops: Holder,
    alice: String,
}

impl Fixture {
    fn new() -> Fixture {
        let w = World::new();
        let ops = w.keyed("ops", "operator", &["registry:revoke", "audit:read"], &[]);
        let task = ["--task", "t-42"];
        let alice = w.bearer("alice@example.com", "reporter", &["analytics:read"], &task);
        Fixture {
            ops,
            alice: alice.token,
            w,
        }
    }

    /// `mandate serve` with a registry store and an audit store at `audit`.
    fn serve(&self, name: &str, audit: &Path, extra: &[&str]) -> Server {
        let store = self.w.path(&format!("{name}-store"));
        let audit = audit.display().to_string();
        let key = self.w.path(&format!("{name}-audit.key"));
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--root-pub",
            self.w.root_pub_file(),
            "--store",
            &store,
            "--audit-store",
            &audit,
            "--audit-key",
            &key,
        ];
        args.extend_from_slice(extra);
        Server::start(name, &args, self.w.file(&format!("{name}.log")))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn body(&self, operation: &str) -> String {
        json!({
            "token": self.alice,
            "service": "analytics",
            "operation": operation,
            "resource": "/q3",
        })
        .to_string()
    }
}

struct Reply {
    status: u16,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {}", self.status, self.text))
    }
}

fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Result<Reply, String> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let mut request = agent.request(method, url);
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let result = if body.is_empty() {
        request.call()
    } else {
        request
            .set("Content-Type", "application/json")
            .send_string(body)
    };
    match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => Ok(Reply {
            status: response.status(),
            text: response.into_string().unwrap_or_default(),
        }),
        Err(e) => Err(format!("{method} {url}: {e}")),
    }
}

fn authorize(server: &Server, body: &str, request_id: &str) -> Reply {
    http(
        "POST",
        &format!("{}/v1/authorize", server.url),
        &[("X-Request-Id", request_id)],
        body,
    )
    .unwrap()
}

/// The records `mandate audit ARGS --json` prints, one JSON object a line.
fn records(args: &[&str]) -> Vec<Value> {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    all.push("--json");
    mandate(&all)
        .ok()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn every_decision_and_revocation_is_recorded_queryable_and_traced() {
    let fx = Fixture::new();
    let audit = fx.w.file("audit");
    let mut server = fx.serve("serve", &audit, &[]);

    assert_eq!(authorize(&server, &fx.body("read"), "req-1").status, 200);
    assert_eq!(authorize(&server, &fx.body("write"), "req-2").status, 403);
    mandate(&[
        "revoke",
        "--task",
        "t-42",
        "--reason",
        "kill switch",
        "--registry",
        &server.url,
        "--auth",
        &fx.ops.token,
        "--auth-key",
        fx.ops.key_file(),
    ])
    .ok();
    let revoked = authorize(&server, &fx.body("read"), "req-3");
    assert_eq!(revoked.status, 403, "{}", revoked.text);

    // Over HTTP, with a keyed mandate granting audit:read.
    let url = server.url.clone();
    let over_http = |extra: &[&str]| {
        let mut args = vec![
            "--url",
            &url,
            "--auth",
            &fx.ops.token,
            "--auth-key",
            fx.ops.key_file(),
        ];
        args.extend_from_slice(extra);
        records(&args)
    };
    let all = over_http(&[]);
    let events: Vec<&str> = all.iter().map(|r| r["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        ["decision", "decision", "registry", "decision"],
        "{all:#?}"
    );
    let seqs: Vec<u64> = all.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4], "newest last");
    let first = &all[0];
    assert_eq!(first["decision"], "allow");
    assert_eq!(first["principal"], "alice@example.com");
    assert_eq!(first["chain"], json!([{"name": "reporter", "key": ""}]));
    assert_eq!(first["request_id"], "req-1");
    assert_eq!(first["api"], "authorize");
    assert!(first["token"].as_str().unwrap().starts_with("sha256:"));
    assert!(!first.to_string().contains(&fx.alice), "never the token");
    assert_eq!(all[1]["reason"]["kind"], "failed_checks", "{:#}", all[1]);
    assert_eq!(all[1]["reason"]["checks"][0]["author"], "the issuer");
    assert_eq!(all[2]["action"], "revoke");
    assert_eq!(all[2]["value"], "t-42");
    assert_eq!(all[2]["by"], "ops via operator");
    assert_eq!(all[3]["reason"]["kind"], "revoked");
    assert_eq!(all[3]["reason"]["value"], "t-42");
    assert_eq!(all[3]["revocation_seq"], 1);

    let denied = over_http(&["--decision", "deny"]);
    assert_eq!(denied.len(), 2);
    assert_eq!(over_http(&["--task", "t-42"]).len(), 4);
    assert_eq!(over_http(&["--principal", "bob"]).len(), 0);
    assert_eq!(
        over_http(&["--service", "analytics", "--since", "10m"]).len(),
        3
    );
    assert_eq!(over_http(&["--until", "1h"]).len(), 0);

    // Reading needs audit:read: no mandate is 401, alice's is 403.
    let anonymous = http("GET", &format!("{url}/v1/audit"), &[], "").unwrap();
    assert_eq!(anonymous.status, 401, "{}", anonymous.text);
    assert_eq!(anonymous.json()["error"]["code"], "unauthenticated");
    let bearer = format!("Bearer {}", fx.alice);
    let forbidden = http(
        "GET",
        &format!("{url}/v1/audit"),
        &[("Authorization", &bearer)],
        "",
    )
    .unwrap();
    assert_eq!(forbidden.status, 403, "{}", forbidden.text);
    let bad = http(
        "GET",
        &format!("{url}/v1/audit?decision=maybe"),
        &[("Authorization", &bearer)],
        "",
    )
    .unwrap();
    assert_eq!(bad.status, 403, "authentication comes first: {}", bad.text);
    mandate(&[
        "audit",
        "--url",
        &url,
        "--auth",
        &fx.ops.token,
        "--auth-key",
        fx.ops.key_file(),
        "--decision",
        "maybe",
    ])
    .error("--decision");

    // A clean stop signs the last head; the store then reads and verifies.
    server.terminate();
    let audit_dir = audit.display().to_string();
    let text = mandate(&["audit", "--store", &audit_dir]).ok().to_owned();
    assert!(
        text.contains("reporter for alice@example.com: analytics read /q3 → deny: revoked task t-42 (#1: kill switch)"),
        "{text}"
    );
    let verified = mandate(&["audit", "verify", "--store", &audit_dir]);
    assert!(verified.ok().starts_with("ok: 4 record(s)"), "{verified}");
    assert!(!verified.stdout.contains("not yet covered"), "{verified}");
    let trace = mandate(&["audit", "trace", "t-42", "--store", &audit_dir]);
    let story = trace.ok();
    assert!(
        story.contains("4 record(s), 1 allowed, 2 denied"),
        "{trace}"
    );
    assert!(
        story.contains("ended by: #3 ops via operator: revoked task t-42"),
        "{trace}"
    );
    let token_id = first["token_id"].as_str().unwrap();
    assert!(
        mandate(&["audit", "trace", token_id, "--store", &audit_dir])
            .ok()
            .contains("4 record(s)")
    );

    // Bad input is exit 2 with one line.
    mandate(&["audit", "--store", &fx.w.path("nowhere")]).error("holds no audit log");
    // The registry's store is not an audit log, and is left untouched.
    mandate(&["audit", "--store", &fx.w.path("serve-store")]).error("holds no audit log");
    mandate(&["audit", "--store", &audit_dir, "--since", "yesterday"]).error("--since");
    mandate(&["audit", "trace", "t-0", "--store", &audit_dir]).error("no record names");
}

/// The sled tree the audit log keeps records in, as an attacker with write
/// access to the files sees it.
fn tree(dir: &Path) -> (sled::Db, sled::Tree) {
    let db = sled::open(dir).unwrap();
    let tree = db.open_tree("audit").unwrap();
    (db, tree)
}

fn record_key(seq: u64) -> Vec<u8> {
    let mut key = vec![b'r'];
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn tampering_of_each_kind_is_named_at_the_first_bad_record() {
    let fx = Fixture::new();
    let audit = fx.w.file("audit");
    let mut server = fx.serve("serve", &audit, &[]);
    for i in 0..8 {
        let operation = if i % 2 == 0 { "read" } else { "write" };
        authorize(&server, &fx.body(operation), &format!("req-{i}"));
    }
    server.terminate();
    let verify = |dir: &Path| mandate(&["audit", "verify", "--store", &dir.display().to_string()]);
    assert!(verify(&audit).ok().starts_with("ok: 8 record(s)"));

    let tampered = |name: &str, change: &dyn Fn(&sled::Tree)| {
        let copy = fx.w.file(name);
        copy_dir(&audit, &copy);
        {
            let (db, tree) = tree(&copy);
            change(&tree);
            db.flush().unwrap();
        }
        verify(&copy)
    };

    // An edited field: "deny" becomes "allow" in record #4.
    let run = tampered("edit", &|tree| {
        let value = tree.get(record_key(4)).unwrap().unwrap();
        let text = String::from_utf8(value.to_vec()[32..].to_vec()).unwrap();
        assert!(text.contains("\"decision\":\"deny\""), "{text}");
        let mut edited = value[..32].to_vec();
        edited.extend_from_slice(text.replace("\"deny\"", "\"allow\"").as_bytes());
        tree.insert(record_key(4), edited).unwrap();
    });
    run.fails(1, "TAMPERED: record #4: changed");

    let run = tampered("delete", &|tree| {
        tree.remove(record_key(5)).unwrap();
    });
    run.fails(1, "TAMPERED: record #5: missing (deleted)");

    let run = tampered("reorder", &|tree| {
        let three = tree.get(record_key(3)).unwrap().unwrap();
        let four = tree.get(record_key(4)).unwrap().unwrap();
        tree.insert(record_key(3), four).unwrap();
        tree.insert(record_key(4), three).unwrap();
    });
    run.fails(1, "TAMPERED: record #3: out of place");

    let run = tampered("truncate", &|tree| {
        for seq in 6..=8 {
            tree.remove(record_key(seq)).unwrap();
        }
    });
    run.fails(1, "TAMPERED: record #6: missing (truncated)");

    // Cut with its newest heads: only a head kept outside the store (the
    // server logs each one) can tell.
    let last_head = {
        let (_db, tree) = tree(&audit);
        let (_, value) = tree.scan_prefix([b'h']).next_back().unwrap().unwrap();
        let head: Value = serde_json::from_slice(&value).unwrap();
        format!("{}:{}", head["seq"], head["hash"].as_str().unwrap())
    };
    let cut = fx.w.file("cut");
    copy_dir(&audit, &cut);
    {
        let (db, tree) = tree(&cut);
        for seq in 6..=8 {
            tree.remove(record_key(seq)).unwrap();
        }
        let heads: Vec<_> = tree
            .scan_prefix([b'h'])
            .keys()
            .map(Result::unwrap)
            .collect();
        for key in heads {
            let mut head_five = vec![b'h'];
            head_five.extend_from_slice(&5u64.to_be_bytes());
            if key.as_ref() > head_five.as_slice() {
                tree.remove(key).unwrap();
            }
        }
        db.flush().unwrap();
    }
    let cut = cut.display().to_string();
    assert!(verify(Path::new(&cut)).ok().starts_with("ok: 5 record(s)"));
    mandate(&[
        "audit",
        "verify",
        "--store",
        &cut,
        "--expect-head",
        &last_head,
    ])
    .fails(1, "TAMPERED: record #6: missing (truncated)");
    mandate(&[
        "audit",
        "verify",
        "--store",
        &cut,
        "--expect-head",
        "8:beef",
    ])
    .error("--expect-head");

    // The tail from #5 replaced by records re-linked consistently: only the
    // head signed over the original #8 can tell.
    let run = tampered("relink", &|tree| {
        let mut prev: [u8; 32] = tree.get(record_key(5)).unwrap().unwrap()[..32]
            .try_into()
            .unwrap();
        for seq in 5..=8 {
            let value = tree.get(record_key(seq)).unwrap().unwrap();
            let body = String::from_utf8(value[32..].to_vec())
                .unwrap()
                .replace("\"deny\"", "\"allow\"");
            let mut rewritten = prev.to_vec();
            rewritten.extend_from_slice(body.as_bytes());
            tree.insert(record_key(seq), rewritten).unwrap();
            prev = mandate_audit::integrity::entry_hash(seq, &prev, body.as_bytes());
        }
    });
    run.fails(1, "TAMPERED: record #");
    assert!(run.stdout.contains("replaced"), "{run}");

    // A forged head: its signature no longer verifies.
    let run = tampered("forged-head", &|tree| {
        let (key, value) = tree.scan_prefix([b'h']).next_back().unwrap().unwrap();
        let text = String::from_utf8(value.to_vec()).unwrap();
        let head: Value = serde_json::from_str(&text).unwrap();
        let hash = head["hash"].as_str().unwrap();
        let forged = text.replace(hash, &"0".repeat(64));
        tree.insert(key, forged.as_bytes()).unwrap();
    });
    run.fails(1, "bad signature");

    // A head signed by another writer key, when the key is pinned.
    let other = fx.w.keygen("other-writer");
    let pinned = mandate(&[
        "audit",
        "verify",
        "--store",
        &audit.display().to_string(),
        "--writer-pub",
        &other,
    ]);
    pinned.fails(1, "not a given writer key");
    let writer_pub = fx.w.path("serve-audit.key.pub");
    assert!(mandate(&[
        "audit",
        "verify",
        "--store",
        &audit.display().to_string(),
        "--writer-pub",
        &writer_pub,
    ])
    .ok()
    .starts_with("ok:"));
}

/// A small tmpfs, unmounted on drop, to fill up.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: &Path) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(path.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the file system of `path` until a write fails.
fn fill(path: &Path) {
    use std::io::Write as _;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while file
        .write_all(&chunk)
        .and_then(|()| file.sync_all())
        .is_ok()
    {}
}

#[test]
fn an_unwritable_audit_store_denies_and_is_not_ready_until_it_recovers() {
    let fx = Fixture::new();
    let Some(disk) = Tmpfs::mount(&fx.w.file("disk")) else {
        println!("SKIPPED: mounting a tmpfs needs root");
        return;
    };
    let audit = disk.0.join("audit");
    let server = fx.serve("serve", &audit, &[]);
    assert_eq!(authorize(&server, &fx.body("read"), "before").status, 200);

    let filler = disk.0.join("filler");
    fill(&filler);
    // sled writes into space it already holds until it needs more: keep
    // deciding until a record cannot be written. Every answer before that
    // was recorded (checked below); the first one that was not is refused.
    let mut allowed = vec!["before".to_owned()];
    let refused = (0..20_000)
        .find_map(|i| {
            let id = format!("filling-{i}");
            let reply = authorize(&server, &fx.body("read"), &id);
            if reply.status == 200 {
                allowed.push(id);
                None
            } else {
                Some(reply)
            }
        })
        .expect("a full disk refuses a decision");
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(refused.json()["error"]["code"], "audit_unavailable");
    let ready = http("GET", &format!("{}/readyz", server.url), &[], "").unwrap();
    assert_eq!(ready.status, 503, "{}", ready.text);
    let body = ready.json();
    assert_eq!(body["audit"]["ok"], false, "{body:#}");
    assert!(
        body["audit"]["detail"]
            .as_str()
            .unwrap()
            .contains("denying"),
        "{body:#}"
    );
    // Still refused, never allowed unrecorded.
    assert_eq!(
        authorize(&server, &fx.body("read"), "still-full").status,
        503
    );

    std::fs::remove_file(&filler).unwrap();
    poll("/readyz to recover", || {
        let ready = http("GET", &format!("{}/readyz", server.url), &[], "").ok()?;
        (ready.status == 200).then_some(())
    });
    assert_eq!(authorize(&server, &fx.body("read"), "after").status, 200);
    drop(server);
    let ids: BTreeSet<String> = records(&["--store", &audit.display().to_string()])
        .iter()
        .filter_map(|r| r["request_id"].as_str().map(str::to_owned))
        .collect();
    for id in &allowed {
        assert!(ids.contains(id), "{id} was allowed but not recorded");
    }
    assert!(ids.contains("after"));
    assert!(
        !ids.contains("still-full"),
        "a refused decision has no record"
    );
    mandate(&["audit", "verify", "--store", &audit.display().to_string()]).ok();
}

#[test]
fn kill_9_during_a_burst_loses_no_acknowledged_decision() {
    let fx = Fixture::new();
    let audit = fx.w.file("audit");
    let mut server = fx.serve("serve", &audit, &[]);
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for client in 0..4 {
        let (url, body) = (server.url.clone(), fx.body("read"));
        let (acknowledged, stop) = (Arc::clone(&acknowledged), Arc::clone(&stop));
        clients.push(std::thread::spawn(move || {
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let id = format!("c{client}-{i}");
                match http(
                    "POST",
                    &format!("{url}/v1/authorize"),
                    &[("X-Request-Id", &id)],
                    &body,
                ) {
                    Ok(reply) if reply.status == 200 => {
                        acknowledged.lock().unwrap().insert(id);
                    }
                    Ok(reply) => panic!("{id}: {} {}", reply.status, reply.text),
                    Err(_) => break,
                }
            }
        }));
    }
    poll("200 acknowledged decisions", || {
        (acknowledged.lock().unwrap().len() >= 200).then_some(())
    });
    server.kill();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let recorded: BTreeSet<String> = records(&["--store", &audit.display().to_string()])
        .iter()
        .filter_map(|r| r["request_id"].as_str().map(str::to_owned))
        .collect();
    let lost: Vec<&String> = acknowledged.difference(&recorded).collect();
    assert!(lost.is_empty(), "acknowledged but not recorded: {lost:?}");
    let verified = mandate(&["audit", "verify", "--store", &audit.display().to_string()]);
    assert!(verified.ok().starts_with("ok:"), "{verified}");
}
