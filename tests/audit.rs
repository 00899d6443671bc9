//! The audit trail through the `mandate` binary and real HTTP: every
//! decision and revocation of `mandate serve` recorded before it is
//! answered, read back with filters (from the store and over HTTP with
//! `audit:read`, in pages and followed as an event stream, also from
//! `mandate issuer serve`), traced, verified; tampering of each kind on the
//! real segment files named at its first bad record; an unwritable store
//! refused and reported, then recovered; no acknowledged decision lost to
//! kill -9; offline revocations recorded too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::server::{poll, Server};
use common::world::{Holder, World};
use common::{audit_records as records, mandate};
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

#[derive(Debug)]
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
    let typed = headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
    let result = if body.is_empty() {
        request.call()
    } else if typed {
        request.send_string(body)
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

/// One record of a file audit log as an attacker with write access to the
/// files sees it (the format docs/audit.md describes): its sequence number,
/// the previous record's hash and the record's JSON.
#[derive(Clone)]
struct Frame {
    seq: u64,
    prev: [u8; 32],
    body: String,
}

/// The one segment file of a small log.
fn segment(dir: &Path) -> std::path::PathBuf {
    let mut segments: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    assert_eq!(segments.len(), 1, "{segments:?}");
    segments.remove(0)
}

fn read_frames(dir: &Path) -> Vec<Frame> {
    let bytes = std::fs::read(segment(dir)).unwrap();
    let mut frames = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if len == 0 {
            // The zeros the writer keeps ahead of its newest frame.
            break;
        }
        let frame = &bytes[at + 4..at + 4 + len];
        frames.push(Frame {
            seq: u64::from_le_bytes(frame[..8].try_into().unwrap()),
            prev: frame[8..40].try_into().unwrap(),
            body: String::from_utf8(frame[40..].to_vec()).unwrap(),
        });
        at += 4 + len;
    }
    frames
}

fn write_frames(dir: &Path, frames: &[Frame]) {
    let mut bytes = Vec::new();
    for frame in frames {
        bytes.extend_from_slice(&(40 + frame.body.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&frame.seq.to_le_bytes());
        bytes.extend_from_slice(&frame.prev);
        bytes.extend_from_slice(frame.body.as_bytes());
    }
    std::fs::write(segment(dir), bytes).unwrap();
}

/// The signed heads, one JSON line each.
fn head_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("heads.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_head_lines(dir: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(dir.join("heads.jsonl"), text).unwrap();
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
    assert_eq!(read_frames(&audit).len(), 8);

    let tampered = |name: &str, change: &dyn Fn(&mut Vec<Frame>)| {
        let copy = fx.w.file(name);
        copy_dir(&audit, &copy);
        let mut frames = read_frames(&copy);
        change(&mut frames);
        write_frames(&copy, &frames);
        verify(&copy)
    };

    // An edited field: "deny" becomes "allow" in record #4.
    let run = tampered("edit", &|frames| {
        let body = &mut frames[3].body;
        assert!(body.contains("\"decision\":\"deny\""), "{body}");
        *body = body.replace("\"deny\"", "\"allow\"");
    });
    run.fails(1, "TAMPERED: record #4: changed");

    let run = tampered("delete", &|frames| {
        frames.remove(4);
    });
    run.fails(1, "TAMPERED: record #5: missing (deleted)");

    let run = tampered("reorder", &|frames| frames.swap(2, 3));
    run.fails(1, "TAMPERED: record #3: out of place");
    // Moving only the contents, each frame keeping its number, is caught too.
    let run = tampered("reorder-contents", &|frames| {
        let (three, four) = (frames[2].clone(), frames[3].clone());
        frames[2] = Frame { seq: 3, ..four };
        frames[3] = Frame { seq: 4, ..three };
    });
    run.fails(1, "TAMPERED: record #3: out of place");

    let run = tampered("truncate", &|frames| frames.truncate(5));
    run.fails(1, "TAMPERED: record #6: missing (truncated)");

    // Cut with its newest heads: only a head kept outside the store (the
    // server logs each one) can tell.
    let last_head = {
        let lines = head_lines(&audit);
        let head: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
        format!("{}:{}", head["seq"], head["hash"].as_str().unwrap())
    };
    let cut = fx.w.file("cut");
    copy_dir(&audit, &cut);
    let mut frames = read_frames(&cut);
    frames.truncate(5);
    write_frames(&cut, &frames);
    let kept: Vec<String> = head_lines(&cut)
        .into_iter()
        .filter(|line| {
            serde_json::from_str::<Value>(line).unwrap()["seq"]
                .as_u64()
                .unwrap()
                <= 5
        })
        .collect();
    assert!(!kept.is_empty(), "the first batch is signed");
    write_head_lines(&cut, &kept);
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
    let run = tampered("relink", &|frames| {
        let mut prev = frames[4].prev;
        for frame in &mut frames[4..] {
            frame.body = frame.body.replace("\"deny\"", "\"allow\"");
            frame.prev = prev;
            prev = mandate_audit::integrity::entry_hash(frame.seq, &prev, frame.body.as_bytes());
        }
    });
    run.fails(1, "TAMPERED: record #");
    assert!(run.stdout.contains("replaced"), "{run}");

    // A forged head: its signature no longer verifies.
    let forged = fx.w.file("forged-head");
    copy_dir(&audit, &forged);
    let mut lines = head_lines(&forged);
    let head: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    let hash = head["hash"].as_str().unwrap().to_owned();
    let last = lines.len() - 1;
    lines[last] = lines[last].replace(&hash, &"0".repeat(64));
    write_head_lines(&forged, &lines);
    verify(&forged).fails(1, "bad signature");

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
    // A write may land in space the file system already holds: keep
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

/// A bearer mandate granting audit:read under the fixture's root.
fn auditor(fx: &Fixture) -> String {
    let root = fx.w.path("root");
    mandate(&[
        "issue",
        "--root-key",
        &root,
        "--ttl",
        "10m",
        "--principal",
        "security",
        "--agent",
        "auditor",
        "--right",
        "audit:read",
    ])
    .ok_trimmed()
}

/// An open `GET /v1/audit` event stream: its `record` events as they come.
struct Stream {
    events: std::sync::mpsc::Receiver<(u64, Value)>,
}

impl Stream {
    /// Opens the stream at `url` (query included); `Err` with the refusal.
    fn open(url: &str, token: &str, last_event_id: Option<u64>) -> Result<Stream, Reply> {
        use std::io::BufRead as _;
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .build();
        let mut request = agent
            .get(url)
            .set("Accept", "text/event-stream")
            .set("Authorization", &format!("Bearer {token}"));
        if let Some(id) = last_event_id {
            request = request.set("Last-Event-ID", &id.to_string());
        }
        let response = match request.call() {
            Ok(response) => response,
            Err(ureq::Error::Status(status, response)) => {
                return Err(Reply {
                    status,
                    text: response.into_string().unwrap_or_default(),
                })
            }
            Err(e) => panic!("{url}: {e}"),
        };
        assert_eq!(response.content_type(), "text/event-stream");
        let (tx, events) = std::sync::mpsc::channel();
        let reader = std::io::BufReader::new(response.into_reader());
        std::thread::spawn(move || {
            let (mut kind, mut id) = (String::new(), 0u64);
            for line in reader.lines().map_while(Result::ok) {
                if let Some(value) = line.strip_prefix("event:") {
                    kind = value.trim().to_owned();
                } else if let Some(value) = line.strip_prefix("id:") {
                    id = value.trim().parse().unwrap();
                } else if let Some(data) = line.strip_prefix("data:") {
                    if kind == "record" {
                        let record: Value = serde_json::from_str(data.trim()).unwrap();
                        if tx.send((id, record)).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(Stream { events })
    }

    /// The next record (bounded wait: a stream that stays silent fails).
    fn next(&self) -> (u64, Value) {
        self.events
            .recv_timeout(Duration::from_secs(20))
            .expect("a record on the stream")
    }
}

#[test]
fn the_trail_is_followed_as_an_event_stream() {
    let fx = Fixture::new();
    let audit = fx.w.file("audit");
    let server = fx.serve("serve", &audit, &[]);
    let auditor = auditor(&fx);
    assert_eq!(authorize(&server, &fx.body("read"), "before-1").status, 200);
    assert_eq!(
        authorize(&server, &fx.body("write"), "before-2").status,
        403
    );

    // Everything so far, then what is decided while the stream is open.
    let url = format!("{}/v1/audit", server.url);
    let all = Stream::open(&url, &auditor, None).unwrap();
    let denies = Stream::open(&format!("{url}?decision=deny"), &auditor, None).unwrap();
    assert_eq!(all.next().1["request_id"], "before-1");
    assert_eq!(all.next().1["request_id"], "before-2");
    assert_eq!(denies.next().1["request_id"], "before-2");
    assert_eq!(authorize(&server, &fx.body("read"), "live-1").status, 200);
    assert_eq!(authorize(&server, &fx.body("write"), "live-2").status, 403);
    let (id, record) = all.next();
    assert_eq!((id, &record["request_id"]), (3, &json!("live-1")));
    let (id, record) = all.next();
    assert_eq!((id, &record["request_id"]), (4, &json!("live-2")));
    let (id, record) = denies.next();
    assert_eq!(
        (id, &record["request_id"]),
        (4, &json!("live-2")),
        "filtered"
    );

    // A client reconnecting with Last-Event-ID resumes after that record.
    let resumed = Stream::open(&url, &auditor, Some(2)).unwrap();
    assert_eq!(resumed.next().0, 3);
    assert_eq!(resumed.next().0, 4);

    // The same reading rights as pages: none is 401, alice's is 403.
    let refused = Stream::open(&url, "", None).err().unwrap();
    assert_eq!(refused.status, 401, "{}", refused.text);
    let refused = Stream::open(&url, &fx.alice, None).err().unwrap();
    assert_eq!(refused.status, 403, "{}", refused.text);
    let bearer = format!("Bearer {auditor}");
    let bad = http(
        "GET",
        &url,
        &[
            ("Accept", "text/event-stream"),
            ("Authorization", &bearer),
            ("Last-Event-ID", "four"),
        ],
        "",
    )
    .unwrap();
    assert_eq!(bad.status, 400, "{}", bad.text);

    // Streams are bounded: with every slot taken, one more is refused.
    drop((all, denies, resumed));
    let mut open = Vec::new();
    let refused = loop {
        match Stream::open(&url, &auditor, Some(4)) {
            Ok(stream) => open.push(stream),
            Err(reply) => break reply,
        }
        assert!(open.len() <= 64, "streams are not bounded");
    };
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(refused.json()["error"]["code"], "too_many_followers");
    drop(open);

    // `mandate audit --follow` over HTTP prints what the server pushes.
    let mut follower = common::command(&[
        "audit",
        "--url",
        &server.url,
        "--auth",
        &fx.ops.token,
        "--auth-key",
        fx.ops.key_file(),
        "--decision",
        "allow",
        "--follow",
        "--json",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    let stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let next_line = || -> Value {
        serde_json::from_str(&lines.recv_timeout(Duration::from_secs(20)).unwrap()).unwrap()
    };
    assert_eq!(next_line()["request_id"], "before-1");
    assert_eq!(next_line()["request_id"], "live-1");
    // Pushed to the follower (and, through it, the streams dropped above
    // notice their clients are gone and free their slots).
    assert_eq!(authorize(&server, &fx.body("read"), "followed").status, 200);
    assert_eq!(next_line()["request_id"], "followed");
    follower.kill().unwrap();
    follower.wait().unwrap();

    // A file log reads while the server writes it.
    let store = records(&["--store", &audit.display().to_string()]);
    assert!(store.len() >= 5, "{store:#?}");
}

#[test]
fn offline_revocations_are_recorded_when_an_audit_store_is_given() {
    let fx = Fixture::new();
    let store = fx.w.path("registry");
    let audit = fx.w.path("offline-audit");
    // The registry store must exist: `mandate serve` creates it.
    let mut server = Server::start(
        "serve",
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--root-pub",
            fx.w.root_pub_file(),
            "--store",
            &store,
        ],
        fx.w.file("serve.log"),
    )
    .unwrap();
    server.terminate();

    let revoked = mandate(&[
        "revoke",
        "--task",
        "t-42",
        "--reason",
        "offline",
        "--store",
        &store,
        "--audit-store",
        &audit,
    ]);
    assert!(revoked.ok().contains("recorded as #1"), "{revoked}");
    let lifted = mandate(&[
        "revoke",
        "--principal",
        "mallory",
        "--store",
        &store,
        "--audit-store",
        &audit,
    ]);
    assert!(lifted.ok().contains("recorded as #2"), "{lifted}");
    let all = records(&["--store", &audit]);
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(all[0]["event"], "registry");
    assert_eq!(all[0]["action"], "revoke");
    assert_eq!(all[0]["kind"], "task");
    assert_eq!(all[0]["value"], "t-42");
    assert_eq!(all[0]["revocation"], 1);
    assert_eq!(all[0]["reason"], "offline");
    assert!(
        all[0]["by"].as_str().unwrap().starts_with("local operator"),
        "{:#}",
        all[0]
    );
    assert_eq!(all[1]["kind"], "principal");
    assert_eq!(all[1]["revocation"], 2);
    let verified = mandate(&["audit", "verify", "--store", &audit]);
    assert!(verified.ok().starts_with("ok: 2 record(s)"), "{verified}");
    assert!(!verified.stdout.contains("not yet covered"), "{verified}");
    // The writer key is created beside the store, private.
    let key = fx.w.file("offline-audit.key");
    assert!(key.is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // Without --store there is nothing offline to record.
    mandate(&["revoke", "--task", "t-1", "--audit-store", &audit]).usage_error("required");
    // A store that cannot hold a log is refused before anything is revoked.
    let not_a_folder = fx.w.file("a-file");
    std::fs::write(&not_a_folder, "x").unwrap();
    mandate(&[
        "revoke",
        "--task",
        "t-43",
        "--store",
        &store,
        "--audit-store",
        &not_a_folder.display().to_string(),
    ])
    .error("audit store");
    let entries = mandate(&["revocations", "list", "--store", &store]);
    assert!(!entries.ok().contains("t-43"), "{entries}");
}

#[test]
fn the_issuers_trail_is_readable_while_it_runs() {
    let fx = Fixture::new();
    let jwks = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/idp/jwks.json");
    let config = fx.w.file("issuer.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:0"
id = "urn:test:issuer"
root_key = "{root}"
store = "{tasks}"
[revocations]
store = "{revocations}"
[audit]
store = "{audit}"
[[idp]]
issuer = "https://idp.test"
audience = "mandate-issuer"
jwks_file = "{jwks}"
"#,
            root = fx.w.path("root"),
            tasks = fx.w.path("tasks"),
            revocations = fx.w.path("issuer-revocations"),
            audit = fx.w.path("issuer-audit"),
            jwks = jwks.display(),
        ),
    )
    .unwrap();
    let issuer = Server::start(
        "issuer",
        &["issuer", "serve", "--config", &config.display().to_string()],
        fx.w.file("issuer.log"),
    )
    .unwrap();
    // A refused exchange (the identity token is not one): recorded before
    // it is answered.
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair(
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        )
        .append_pair("subject_token", "not-a-jwt")
        .append_pair(
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:id_token",
        )
        .append_pair("actor_token", "not-a-proof")
        .append_pair(
            "actor_token_type",
            "urn:mandate:params:oauth:token-type:agent-proof",
        )
        .append_pair("scope", "analytics:read")
        .finish();
    let refused = http(
        "POST",
        &format!("{}/oauth2/token", issuer.url),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &form,
    )
    .unwrap();
    assert!((400..500).contains(&refused.status), "{}", refused.text);

    // Read over HTTP with a mandate under the issuer's root granting audit:read.
    let all = records(&[
        "--url",
        &issuer.url,
        "--auth",
        &fx.ops.token,
        "--auth-key",
        fx.ops.key_file(),
    ]);
    assert!(!all.is_empty(), "the refused exchange is recorded");
    assert_eq!(all[0]["event"], "issuer");
    assert_eq!(all[0]["action"], "exchange_refused");
    let url = format!("{}/v1/audit", issuer.url);
    let stream = Stream::open(&url, &auditor(&fx), None).unwrap();
    assert_eq!(stream.next().1["action"], "exchange_refused");
    // The same rights as on `mandate serve`.
    let anonymous = http("GET", &url, &[], "").unwrap();
    assert_eq!(anonymous.status, 401, "{}", anonymous.text);
    let bearer = format!("Bearer {}", fx.alice);
    let forbidden = http("GET", &url, &[("Authorization", &bearer)], "").unwrap();
    assert_eq!(forbidden.status, 403, "{}", forbidden.text);
    let stranger = common::Dir::new();
    stranger.keygen("root");
    let foreign = mandate(&[
        "issue",
        "--root-key",
        &stranger.path("root"),
        "--ttl",
        "10m",
        "--principal",
        "security",
        "--agent",
        "auditor",
        "--right",
        "audit:read",
    ])
    .ok_trimmed();
    let untrusted = http(
        "GET",
        &url,
        &[("Authorization", &format!("Bearer {foreign}"))],
        "",
    )
    .unwrap();
    assert_eq!(untrusted.status, 401, "{}", untrusted.text);
}
