//! Black-box tests of revocation: the end-to-end flow through a registry
//! and a subscribed verifier, the single-process deployment, reliability
//! (kill -9 mid-stream, reconnect, fail-closed staleness), and the HTTP
//! contract of the authorization API.
//!
//! Everything runs the real `mandate` binary and talks real HTTP on
//! `127.0.0.1:0`. Every child process lives in a [`Server`] guard that kills
//! it on drop, so a failing test leaks nothing. Every wait polls in
//! [`STEP`]s under a [`TIMEOUT`]; nothing sleeps a fixed long time. Every
//! assertion names the status or exit code *and* the reason text.
//!
//! Measured delays are printed on stderr (`-- --nocapture` shows them).

#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.

#[path = "common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use common::http::{http, post, post_raw, Reply, JSON};
use common::server::{poll, Server, STEP};
use common::world::{Holder, World};
use common::{mandate, mandate_stdin, request_flags, shorten, tokens, Run};

/// The registries' heartbeat interval in these tests.
const HEARTBEAT: &str = "200ms";
/// The subscribed verifiers' staleness bound in these tests.
const STALENESS: &str = "1s";

const SERVICE: &str = "analytics";
const RESOURCE: &str = "/datasets/q3/sales";

// ---------------------------------------------------------------------------
// Output of the binary
// ---------------------------------------------------------------------------

/// The seq in a `revoked KIND VALUE (seq N)` line that starts with `prefix`.
fn seq_of(stdout: &str, prefix: &str) -> Option<u64> {
    stdout.lines().find_map(|line| {
        let rest = line.strip_prefix(prefix)?.strip_prefix(" (seq ")?;
        rest.split(')').next()?.parse().ok()
    })
}

// ---------------------------------------------------------------------------
// Keys, tokens and servers
// ---------------------------------------------------------------------------

// These tests' one use of a holder, next to the shared ones.
impl Holder {
    /// Reads [`RESOURCE`] through the authorization API at `base`.
    fn read(&self, base: &str) -> Reply {
        post(base, &self.body(SERVICE, "read", RESOURCE))
    }
}

/// A [`World`] with the operator's mandate and the verifiers' read mandate.
struct Fixture {
    w: World,
    /// A keyed mandate granting `registry:revoke` and `registry:read`, for
    /// `--auth` with `--auth-key`.
    ops: Holder,
    /// A keyed mandate granting `registry:read`, for `--registry-auth` with
    /// `--registry-auth-key`.
    reader: Holder,
}

impl std::ops::Deref for Fixture {
    type Target = World;

    fn deref(&self) -> &World {
        &self.w
    }
}

impl Fixture {
    fn new() -> Fixture {
        let w = World::new();
        let rights = ["registry:revoke", "registry:read"];
        let ops = w.keyed("ops", "operator", &rights, &[]);
        let reader = w.keyed("verifiers", "verifier", &["registry:read"], &[]);
        Fixture { w, ops, reader }
    }

    /// `--registry URL` with the verifiers' keyed read mandate.
    fn registry_source<'a>(&'a self, url: &'a str) -> [&'a str; 6] {
        [
            "--registry",
            url,
            "--registry-auth",
            &self.reader.token,
            "--registry-auth-key",
            self.reader.key_file(),
        ]
    }

    /// `principal`'s bearer token for `agent`, granting `rights`.
    fn bearer_as(&self, principal: &str, agent: &str, rights: &[&str]) -> String {
        self.w.bearer(principal, agent, rights, &[]).token
    }

    /// A bearer token reading `analytics` for `principal` in `task`.
    fn bearer(&self, principal: &str, task: &str) -> Holder {
        let extra = ["--task", task];
        self.w
            .bearer(principal, "reporter", &["analytics:read"], &extra)
    }

    /// Scenario 2's first hop: a parent held by `orchestrator` (keyed) for
    /// `principal` in `task`, and a child delegated with a signed hop to
    /// `child_agent`, narrowed to reading `/datasets/q3`. Each tree has keys
    /// of its own, named `PRINCIPAL-TASK-AGENT`.
    fn delegated(
        &self,
        principal: &str,
        task: &str,
        orchestrator: &str,
        child_agent: &str,
    ) -> (Holder, Holder) {
        let orch_key = format!("{principal}-{task}-{orchestrator}");
        let child_key = format!("{principal}-{task}-{child_agent}");
        let rights = ["analytics:read", "analytics:write"];
        let extra = ["--task", task];
        let parent = self.keyed_as(&orch_key, principal, orchestrator, &rights, &extra);
        self.keygen(&child_key);
        let child = tokens::hop(
            &parent.token,
            parent.key_file(),
            child_agent,
            &self.public(&child_key),
            &["--operation", "read", "--resource-prefix", "/datasets/q3"],
        )
        .ok_trimmed();
        let child = Holder {
            token: child,
            key: Some(self.path(&child_key)),
        };
        (parent, child)
    }

    /// `mandate registry serve --store STORE --listen LISTEN`.
    fn try_registry(&self, store: &str, listen: &str) -> Result<Server, String> {
        self.try_registry_with(store, listen, &[])
    }

    /// As [`Fixture::try_registry`], with `extra` flags.
    fn try_registry_with(
        &self,
        store: &str,
        listen: &str,
        extra: &[&str],
    ) -> Result<Server, String> {
        let args = [&["--listen", listen, "--heartbeat", HEARTBEAT], extra].concat();
        self.try_serve_registry(store, &args)
    }

    fn registry(&self, store: &str) -> Server {
        self.try_registry(store, "127.0.0.1:0").unwrap()
    }

    /// `mandate serve --registry URL`: a verifier subscribed to a registry.
    fn sidecar(&self, registry: &str) -> Server {
        let root = self.root_pub_file();
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--root-pub", root];
        args.extend(self.registry_source(registry));
        args.extend(["--staleness", STALENESS]);
        self.serve("sidecar", &args)
    }

    /// `mandate serve --store STORE`: verifier and registry in one process.
    fn single(&self, store: &str) -> Server {
        self.serve_store(store, &["--heartbeat", HEARTBEAT])
    }

    /// `mandate authorize --root-pub ROOT FROM...` of reading [`RESOURCE`]
    /// with `holder`'s token, revocations from `--store` or `--registry`.
    fn authorize(&self, from: &[&str], holder: &Holder) -> Run {
        let request = request_flags(SERVICE, "read", RESOURCE);
        self.w.authorize(&holder.token, &request, from)
    }

    /// `registry` and `verifier`, subscribed to it, for revoking through.
    fn subscribed<'a>(&'a self, registry: &'a Server, verifier: &'a Server) -> Subscribed<'a> {
        Subscribed {
            fx: self,
            registry: &registry.url,
            verifier: &verifier.url,
        }
    }

    /// `mandate revoke TARGET --registry URL --auth OPS --auth-key KEY`.
    fn revoke(&self, registry: &str, target: &[&str]) -> Run {
        let mut args = vec!["revoke"];
        args.extend_from_slice(target);
        args.extend_from_slice(&["--registry", registry, "--auth", &self.ops.token]);
        args.extend_from_slice(&["--auth-key", self.ops.key_file()]);
        mandate(&args)
    }
}

/// Waits until the sidecar at `base` has synced (it denies as stale until
/// its first heartbeat) and allows `holder`.
fn wait_allowed(base: &str, holder: &Holder) -> Duration {
    let ((), waited) = poll("the verifier to allow", || {
        (holder.read(base).status == 200).then_some(())
    });
    holder.read(base).assert_allowed();
    waited
}

/// A registry, the one verifier subscribed to it, and the fixture whose
/// operator mandate writes to the registry.
struct Subscribed<'a> {
    fx: &'a Fixture,
    registry: &'a str,
    verifier: &'a str,
}

impl Subscribed<'_> {
    /// Revokes through the registry with the CLI, asserts the
    /// acknowledgement (`revoked KIND VALUE (seq N)`, applied by the one
    /// subscribed verifier), then sends the very next request (its proof made
    /// beforehand) and returns it with the delay from starting `revoke` to
    /// that answer.
    fn revoke_then_read(
        &self,
        target: &[&str],
        expect: &str,
        holder: &Holder,
    ) -> (Reply, Duration) {
        let body = holder.body(SERVICE, "read", RESOURCE);
        let start = Instant::now();
        let run = self.fx.revoke(self.registry, target);
        let revoked_in = start.elapsed();
        let out = run.ok();
        assert!(
            seq_of(out, expect).is_some(),
            "expected {expect:?} (seq N)\n{run}"
        );
        assert!(
            out.contains("applied by 1 of 1 connected verifiers"),
            "the subscribed verifier should have applied it\n{run}"
        );
        let reply = post(self.verifier, &body);
        let delay = start.elapsed();
        eprintln!(
            "measured: `revoke {}` took {revoked_in:?}; revoke start → next decision {delay:?}",
            shorten(&target.join(" "))
        );
        (reply, delay)
    }

    /// [`Self::revoke_then_read`], asserting that the very next request is
    /// denied with `reason`. Order, not time: `revoke` returned only after
    /// the verifier acknowledged the entry, and the next request after that
    /// is denied. The delay is printed, and measured by the propagation
    /// benchmark, never asserted: a loaded machine can break any bound.
    #[track_caller]
    fn revoke_denies(&self, target: &[&str], expect: &str, holder: &Holder, reason: &str) -> Reply {
        let (reply, _delay) = self.revoke_then_read(target, expect, holder);
        reply.assert_denied(reason);
        reply
    }
}

// ---------------------------------------------------------------------------
// 1. Done when: registry + subscribed verifier, each kind of revocation
// ---------------------------------------------------------------------------

#[test]
fn revoking_the_principal_denies_the_very_next_call_and_lifting_restores_it() {
    let fx = Fixture::new();
    let registry = fx.registry("store");
    let verifier = fx.sidecar(&registry.url);
    let live = fx.subscribed(&registry, &verifier);
    let (parent, child) = fx.delegated("bob", "q3-report", "orchestrator", "analytics");
    let other = fx.bearer("carol", "carol-task");

    let synced = wait_allowed(&verifier.url, &child);
    eprintln!("measured: subscribed verifier first allowed after {synced:?}");
    parent.read(&verifier.url).assert_allowed();

    let reply = live.revoke_denies(
        &["--principal", "bob", "--reason", "kill switch"],
        "revoked principal bob",
        &child,
        "revoked: principal bob (revocation #1: kill switch)",
    );
    assert_eq!(reply.body["principal"], "bob", "{}", reply.body);
    assert_eq!(
        reply.body["chain"],
        json!(["orchestrator", "analytics"]),
        "{}",
        reply.body
    );
    parent
        .read(&verifier.url)
        .assert_denied("revoked: principal bob (revocation #1: kill switch)");
    other.read(&verifier.url).assert_allowed();

    // Lifting is acknowledged like revoking; the next request is allowed.
    let (reply, _delay) = live.revoke_then_read(
        &["--principal", "bob", "--lift", "--reason", "all clear"],
        "lifted principal bob",
        &child,
    );
    reply.assert_allowed();
    parent.read(&verifier.url).assert_allowed();
}

#[test]
fn revoking_the_task_denies_every_token_of_the_task_and_only_those() {
    let fx = Fixture::new();
    let registry = fx.registry("store");
    let verifier = fx.sidecar(&registry.url);
    let live = fx.subscribed(&registry, &verifier);
    let (parent, child) = fx.delegated("bob", "q3-report", "orchestrator", "analytics");
    let same_principal_other_task = fx.bearer("bob", "q4-report");
    wait_allowed(&verifier.url, &child);

    live.revoke_denies(
        &["--task", "q3-report", "--reason", "task cancelled"],
        "revoked task q3-report",
        &child,
        "revoked: task q3-report (revocation #1: task cancelled)",
    );
    parent
        .read(&verifier.url)
        .assert_denied("revoked: task q3-report");
    same_principal_other_task
        .read(&verifier.url)
        .assert_allowed();

    // A task revocation is permanent.
    let run = fx.revoke(&registry.url, &["--task", "q3-report", "--lift"]);
    assert_eq!(run.code, 2, "lifting a task must be refused\n{run}");
    assert!(run.stderr.starts_with("error: "), "{run}");
    assert!(run.stderr.contains("task"), "{run}");
    child
        .read(&verifier.url)
        .assert_denied("revoked: task q3-report");
}

#[test]
fn revoking_an_agent_by_name_or_by_key_denies_chains_that_contain_it() {
    let fx = Fixture::new();
    let registry = fx.registry("store");
    let verifier = fx.sidecar(&registry.url);
    let live = fx.subscribed(&registry, &verifier);
    // Two trees whose first agents share a name but not a key.
    let (parent_a, child_a) = fx.delegated("bob", "task-a", "orchestrator", "analytics");
    let (parent_b, child_b) = fx.delegated("bob", "task-b", "orchestrator", "charting");
    wait_allowed(&verifier.url, &child_a);
    for holder in [&parent_a, &parent_b, &child_b] {
        holder.read(&verifier.url).assert_allowed();
    }

    // By name: the child's agent. The parent's chain does not contain it.
    live.revoke_denies(
        &["--agent", "analytics", "--reason", "compromised"],
        "revoked agent analytics",
        &child_a,
        "revoked: agent analytics (revocation #1: compromised)",
    );
    parent_a.read(&verifier.url).assert_allowed();
    child_b.read(&verifier.url).assert_allowed();

    // By key: tree b's orchestrator, which holds parent b and signed child b's hop.
    let orch_b_pub = &fx.public("bob-task-b-orchestrator");
    live.revoke_denies(
        &["--agent", orch_b_pub, "--reason", "key leaked"],
        &format!("revoked agent {orch_b_pub}"),
        &child_b,
        &format!("revoked: agent {orch_b_pub} (revocation #2: key leaked)"),
    );
    parent_b
        .read(&verifier.url)
        .assert_denied(&format!("revoked: agent {orch_b_pub}"));
    // Same name, other key: untouched.
    parent_a.read(&verifier.url).assert_allowed();

    // Lifting the name restores child a.
    let (reply, _) = live.revoke_then_read(
        &["--agent", "analytics", "--lift"],
        "lifted agent analytics",
        &child_a,
    );
    reply.assert_allowed();

    // A key's hex digits alone are refused, not revoked as a name nobody
    // has (and, as they may be a private key, not echoed).
    let orch_a_pub = &fx.public("bob-task-a-orchestrator");
    let bare = orch_a_pub
        .strip_prefix("ed25519/")
        .expect("keys print as ed25519/<hex>");
    let run = fx.revoke(&registry.url, &["--agent", bare]);
    run.error("64 hex digits alone are not taken");
    assert!(!run.stderr.contains(bare), "{run}");
    parent_a.read(&verifier.url).assert_allowed();
    // An agent so named is revoked by `name:`; the key is untouched.
    let named = format!("name:{bare}");
    let (reply, _) = live.revoke_then_read(
        &["--agent", &named],
        &format!("revoked agent {bare}"),
        &parent_a,
    );
    reply.assert_allowed();
}

#[test]
fn revoking_a_token_id_kills_the_child_and_keeps_the_parent_and_root_kills_the_tree() {
    let fx = Fixture::new();
    let registry = fx.registry("store");
    let verifier = fx.sidecar(&registry.url);
    let live = fx.subscribed(&registry, &verifier);
    let (parent, child) = fx.delegated("bob", "q3-report", "orchestrator", "analytics");
    let (parent2, child2) = fx.delegated("bob", "q3-other", "orchestrator", "analytics");
    wait_allowed(&verifier.url, &child);
    let parent_id = parent.read(&verifier.url).body["token_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let child_id = child.read(&verifier.url).body["token_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(parent_id, child_id);

    // `--token CHILD`: the child's own (last block) id.
    live.revoke_denies(
        &["--token", &child.token, "--reason", "leaked"],
        &format!("revoked token_id {child_id}"),
        &child,
        &format!("revoked: token_id {child_id} (revocation #1: leaked)"),
    );
    parent.read(&verifier.url).assert_allowed();

    // `--token PARENT --root`: the authority block id, so the whole tree.
    live.revoke_denies(
        &["--token", &parent.token, "--root", "--reason", "tree"],
        &format!("revoked token_id {parent_id}"),
        &parent,
        &format!("revoked: token_id {parent_id} (revocation #2: tree)"),
    );
    child.read(&verifier.url).assert_denied("revoked: token_id");

    // The other tree of the same principal and agents is untouched, and
    // `--id HEX` works like `--token`.
    parent2.read(&verifier.url).assert_allowed();
    let child2_id = child2.read(&verifier.url).body["token_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (reply, _) = live.revoke_then_read(
        &["--id", &child2_id],
        &format!("revoked token_id {child2_id}"),
        &child2,
    );
    reply.assert_denied(&format!("revoked: token_id {child2_id} (revocation #3)"));
    parent2.read(&verifier.url).assert_allowed();
}

// ---------------------------------------------------------------------------
// 2. One process: `mandate serve --store`
// ---------------------------------------------------------------------------

#[test]
fn single_process_serve_store_revokes_and_the_store_keeps_it_after_shutdown() {
    let fx = Fixture::new();
    let mut server = fx.single("store");
    let report = fx.bearer("alice", "expenses-1");
    let untouched = fx.bearer("alice", "expenses-2");
    wait_allowed(&server.url, &report);

    // Writes need a keyed mandate granting registry:revoke, with its proof.
    let revoke_as = |auth: &str, key: &[&str]| {
        let mut args = vec![
            "revoke",
            "--task",
            "expenses-1",
            "--registry",
            &server.url,
            "--auth",
            auth,
        ];
        args.extend_from_slice(key);
        mandate(&args)
    };
    revoke_as(&fx.reader.token, &["--auth-key", fx.reader.key_file()]).fails(2, "403 forbidden");
    revoke_as(&report.token, &[]).fails(2, "401 unauthenticated: bearer token refused");
    revoke_as("garbage", &[]).fails(2, "401 unauthenticated");
    report.read(&server.url).assert_allowed();

    // The store is the server's while it runs.
    let run = mandate(&["revoke", "--task", "x", "--store", &fx.path("store")]);
    run.fails(2, "pass --registry instead");

    let body = report.body(SERVICE, "read", RESOURCE);
    let start = Instant::now();
    let run = fx.revoke(
        &server.url,
        &["--task", "expenses-1", "--reason", "report filed"],
    );
    assert_eq!(
        seq_of(run.ok(), "revoked task expenses-1"),
        Some(1),
        "{run}"
    );
    let reply = post(&server.url, &body);
    eprintln!(
        "measured: serve --store, revoke start → next decision {:?}",
        start.elapsed()
    );
    reply.assert_denied("revoked: task expenses-1 (revocation #1: report filed)");
    untouched.read(&server.url).assert_allowed();

    server.terminate();

    // Offline: the store has it.
    let store = fx.path("store");
    let authorize = |holder: &Holder| fx.authorize(&["--store", &store], holder);
    let run = authorize(&report);
    run.fails(1, "revoked: task expenses-1 (revocation #1: report filed)");
    assert!(run.stdout.starts_with("DENY"), "{run}");
    let run = authorize(&untouched);
    assert!(run.ok().starts_with("ALLOW"), "{run}");

    let run = mandate(&["revoke", "--principal", "mallory", "--store", &store]);
    assert_eq!(
        seq_of(run.ok(), "revoked principal mallory"),
        Some(2),
        "{run}"
    );

    let run = mandate(&["revocations", "list", "--store", &store, "--json"]);
    let entries: Value = serde_json::from_str(run.ok()).expect("JSON list");
    let entries = entries.as_array().expect("an array");
    assert_eq!(entries.len(), 2, "{run}");
    let first = &entries[0];
    assert_eq!(first["seq"], 1, "{run}");
    assert_eq!(first["kind"], "task", "{run}");
    assert_eq!(first["value"], "expenses-1", "{run}");
    assert_eq!(first["reason"], "report filed", "{run}");
    assert_eq!(first["revoked_by"], "ops via operator", "{run}");
    assert_eq!(first["lifted"], false, "{run}");
    assert!(
        first["at"].as_str().is_some_and(|at| at.ends_with('Z')),
        "{run}"
    );
    let second = &entries[1];
    assert_eq!(second["seq"], 2, "{run}");
    assert_eq!(second["kind"], "principal", "{run}");
    assert_eq!(second["value"], "mallory", "{run}");
    assert!(
        second["revoked_by"]
            .as_str()
            .is_some_and(|by| by.starts_with("local operator")),
        "{run}"
    );
}

// ---------------------------------------------------------------------------
// 3. Reliability (item 7)
// ---------------------------------------------------------------------------

/// Tells a background thread to stop, also when the test fails first.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Restarts the registry on exactly `port`, retrying while the port is not
/// yet free.
fn restart_registry(fx: &Fixture, store: &str, port: u16) -> Server {
    let listen = format!("127.0.0.1:{port}");
    let mut refused = 0;
    let (server, waited) = poll("the registry to bind its old port again", || {
        let started = fx.try_registry(store, &listen).ok();
        refused += usize::from(started.is_none());
        started
    });
    eprintln!(
        "measured: registry restarted on 127.0.0.1:{port} in {waited:?} \
         ({refused} attempts refused first)"
    );
    server
}

#[test]
fn kill_9_mid_stream_loses_no_acknowledged_revocation_and_verifiers_fail_closed_then_recover() {
    let fx = Fixture::new();
    let mut registry = fx.registry("store");
    let port = registry.port();
    let verifier = fx.sidecar(&registry.url);
    let unrevoked = fx.bearer("bob", "unrevoked");
    let burst_victim = fx.bearer("bob", "burst-1");
    let offline_victim = fx.bearer("bob", "offline-task");
    let live_victim = fx.bearer("bob", "after-restart");
    wait_allowed(&verifier.url, &unrevoked);

    // A stream of revocations from a background thread; acknowledged means the
    // registry answered 201, i.e. the CLI printed `(seq N)`.
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let writer = {
        let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop.0));
        let (url, ops) = (registry.url.clone(), fx.ops.token.clone());
        let ops_key = fx.ops.key_file().to_owned();
        thread::spawn(move || {
            let mut attempts = 0u32;
            while !stop.load(Ordering::SeqCst) {
                attempts += 1;
                let task = format!("burst-{attempts}");
                let run = mandate(&[
                    "revoke",
                    "--task",
                    &task,
                    "--reason",
                    "burst",
                    "--registry",
                    &url,
                    "--auth",
                    &ops,
                    "--auth-key",
                    &ops_key,
                ]);
                match seq_of(&run.stdout, &format!("revoked task {task}")) {
                    Some(seq) => acked.lock().unwrap().push((task, seq)),
                    None => thread::sleep(STEP),
                }
            }
            attempts
        })
    };
    poll("8 acknowledged revocations", || {
        (acked.lock().unwrap().len() >= 8).then_some(())
    });
    burst_victim
        .read(&verifier.url)
        .assert_denied("revoked: task burst-1 (revocation #1: burst)");

    // kill -9 while revocations are still being written.
    unrevoked.read(&verifier.url).assert_allowed();
    registry.kill();
    let killed = Instant::now();

    // The verifier keeps allowing within the staleness bound, then denies
    // everything as stale.
    let mut allowed_after_kill = 0;
    let ((stale, stale_after), _) = poll("the verifier to deny as stale", || {
        let reply = unrevoked.read(&verifier.url);
        if reply.status == 200 {
            allowed_after_kill += 1;
            None
        } else {
            Some((reply, killed.elapsed()))
        }
    });
    stale.assert_denied("revocation state stale");
    assert!(stale.reason().contains("bound 1s"), "{}", stale.body);
    eprintln!(
        "measured: verifier denied as stale {stale_after:?} after kill -9 \
         (bound {STALENESS}, heartbeat {HEARTBEAT}; {allowed_after_kill} calls allowed before)"
    );
    // Order and outcome, not time: it allowed right before the kill, denies
    // as stale (naming its bound) once no heartbeat came, within the poll's
    // timeout. Exactly when is the index's contract, tested with injected
    // instants in crates/mandate-registry/tests/index.rs
    // (`an_index_goes_stale_after_the_bound`); a loaded machine delays
    // heartbeats and polls alike, so a wall-clock bound here could lie.
    // Fail closed: it keeps denying while the registry is down.
    unrevoked
        .read(&verifier.url)
        .assert_denied("revocation state stale");

    drop(stop);
    let attempts = writer.join().expect("writer thread");
    let acked = acked.lock().unwrap().clone();

    // While the registry is down, an operator writes to its store directly;
    // the verifier must catch up on it after the restart.
    let run = mandate(&[
        "revoke",
        "--task",
        "offline-task",
        "--reason",
        "written offline",
        "--store",
        &fx.path("store"),
    ]);
    let offline_seq = seq_of(run.ok(), "revoked task offline-task").expect("seq");

    let registry = restart_registry(&fx, "store", port);
    let restarted = Instant::now();
    assert_eq!(registry.port(), port);

    // Every acknowledged revocation is present and served, seqs gap-free.
    let mut args = vec!["revocations", "list", "--json"];
    args.extend(fx.registry_source(&registry.url));
    let run = mandate(&args);
    let entries: Value = serde_json::from_str(run.ok()).expect("JSON list");
    let entries = entries.as_array().expect("an array");
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "seqs must be gap-free\n{run}");
    for (task, seq) in &acked {
        let entry = entries
            .iter()
            .find(|e| e["seq"] == *seq)
            .unwrap_or_else(|| panic!("acknowledged seq {seq} ({task}) lost\n{run}"));
        assert_eq!(entry["kind"], "task", "{run}");
        assert_eq!(entry["value"], task.as_str(), "seq {seq}\n{run}");
        assert_eq!(entry["reason"], "burst", "{run}");
    }
    assert!(
        entries
            .iter()
            .any(|e| e["seq"] == offline_seq && e["value"] == "offline-task"),
        "{run}"
    );
    eprintln!(
        "measured: {} of {attempts} revokes acknowledged around kill -9; \
         {} entries after restart (incl. 1 written offline), seqs 1..={} gap-free",
        acked.len(),
        entries.len(),
        seqs.len()
    );

    // The verifier reconnects to the same address and catches up.
    let (recovered, _) = poll("the verifier to allow again after the restart", || {
        (unrevoked.read(&verifier.url).status == 200).then(|| restarted.elapsed())
    });
    eprintln!(
        "measured: verifier allowed again {recovered:?} after the restarted registry \
         announced its address"
    );
    unrevoked.read(&verifier.url).assert_allowed();
    offline_victim
        .read(&verifier.url)
        .assert_denied("revoked: task offline-task");
    burst_victim
        .read(&verifier.url)
        .assert_denied("revoked: task burst-1");

    // Offline checks against the restarted registry see the burst too.
    let run = fx.authorize(&fx.registry_source(&registry.url), &burst_victim);
    run.fails(1, "revoked: task burst-1 (revocation #1: burst)");

    // And live revocations flow again.
    let live = fx.subscribed(&registry, &verifier);
    live.revoke_denies(
        &["--task", "after-restart"],
        "revoked task after-restart",
        &live_victim,
        "revoked: task after-restart",
    );
    unrevoked.read(&verifier.url).assert_allowed();
}

#[test]
fn a_verifier_that_never_synced_denies_with_one_clear_stale_reason() {
    let fx = Fixture::new();
    // A registry address where nothing listens.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let verifier = fx.sidecar(&format!("http://127.0.0.1:{port}"));
    let holder = fx.bearer("bob", "never-synced");

    let health = http("GET", &format!("{}/v1/health", verifier.url), None, &[]);
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.body["revocation_checked"], true, "{}", health.body);
    let missing = http("GET", &format!("{}/v1/nope", verifier.url), None, &[]);
    missing.assert_error(404, "not_found", "");

    let reply = holder.read(&verifier.url);
    reply.assert_denied("never synced");
    let reason = reply.reason();
    assert!(
        reason.starts_with("revocation state stale"),
        "{}",
        reply.body
    );
    assert_eq!(
        reason.matches("revocation state stale").count(),
        1,
        "the reason repeats itself: {reason:?}"
    );
}

/// `mandate serve --registry A,B` with replica A down from the start (its
/// process killed): the verifier moves on to B, syncs from it, becomes
/// ready naming B, and applies what is revoked through B. (Replicas sharing
/// one log across processes need a shared store; the in-process failover
/// between two live replicas is tested in the registry crate.)
#[test]
fn a_verifier_given_two_replicas_syncs_from_the_second_when_the_first_is_down() {
    let fx = Fixture::new();
    let mut a = fx.registry("store-a");
    let b = fx.registry("store-b");
    a.kill();
    let replicas = format!("{},{}", a.url, b.url);
    let verifier = fx.sidecar(&replicas);
    let holder = fx.bearer("bob", "failover");

    let synced = wait_allowed(&verifier.url, &holder);
    eprintln!("measured: verifier with replica A down first allowed after {synced:?}");
    let ready = http("GET", &format!("{}/readyz", verifier.url), None, &[]);
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(
        ready.body["registry"]["in_use"],
        b.url.as_str(),
        "{}",
        ready.body
    );
    assert_eq!(ready.body["registry"]["connected"], true, "{}", ready.body);
    assert_eq!(
        ready.body["registry"]["replicas"],
        json!([a.url, b.url]),
        "{}",
        ready.body
    );
    let detail = ready.body["revocations"]["detail"].as_str().unwrap_or("");
    assert!(
        detail.ends_with(&format!("from {}", b.url)),
        "{}",
        ready.body
    );
    let text = ureq::get(&format!("{}/metrics", verifier.url))
        .call()
        .expect("metrics")
        .into_string()
        .expect("metrics text");
    let in_use = format!("mandate_registry_replica_in_use{{replica=\"{}\"}} 1", b.url);
    assert!(text.contains(&in_use), "{text}");
    assert!(
        verifier.stderr().contains(&b.url),
        "the log names the replica in use"
    );

    let live = fx.subscribed(&b, &verifier);
    live.revoke_denies(
        &["--task", "failover", "--reason", "replica test"],
        "revoked task failover",
        &holder,
        "revoked: task failover",
    );
}

// ---------------------------------------------------------------------------
// 4. The authorization API's HTTP contract
// ---------------------------------------------------------------------------

#[test]
fn authorization_api_answers_each_kind_of_bad_request_with_its_status_and_shape() {
    let fx = Fixture::new();
    let server = fx.single("store");
    let base = server.url.as_str();
    // Expiry is decided on the wall clock: mint the short-lived token first
    // and check it last.
    let bob_reads = [
        "--principal",
        "bob",
        "--agent",
        "reporter",
        "--right",
        "analytics:read",
    ];
    let short_lived = Holder {
        token: fx.issue(&[&bob_reads[..], &["--ttl", "1s"]].concat()),
        key: None,
    };
    let bearer = fx.bearer("bob", "contract");
    let (_, child) = fx.delegated("bob", "contract-keyed", "orchestrator", "analytics");
    wait_allowed(base, &bearer);

    let health = http("GET", &format!("{base}/v1/health"), None, &[]);
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.body["status"], "ok", "{}", health.body);
    assert_eq!(health.body["revocation_checked"], true, "{}", health.body);

    let good = json!({
        "token": bearer.token,
        "service": SERVICE,
        "operation": "read",
        "resource": RESOURCE,
    });
    let with = |key: &str, value: Value| {
        let mut body = good.clone();
        body[key] = value;
        body.to_string()
    };
    let without = |key: &str| {
        let mut body = good.clone();
        body.as_object_mut().unwrap().remove(key);
        body.to_string()
    };

    // 400: the body.
    post(base, &without("service")).assert_error(400, "bad_request", "missing field `service`");
    post(base, &without("token")).assert_error(400, "bad_request", "missing field `token`");
    post(base, r#"{"token":"#).assert_error(400, "bad_request", "JSON");
    post(base, &with("extra", json!(1))).assert_error(400, "bad_request", "unknown field `extra`");
    post(base, &with("resource", json!("/a/../b"))).assert_error(400, "bad_request", "`/a/../b`");
    post(base, &with("pop", json!("garbage"))).assert_error(
        400,
        "bad_request",
        "proof of possession",
    );
    post(base, &with("attrs", json!({"amount": [1]}))).assert_error(400, "bad_request", "attrs");
    http(
        "POST",
        &format!("{base}/v1/authorize"),
        Some(&good.to_string()),
        &[],
    )
    .assert_error(415, "unsupported_media_type", "Content-Type");

    // 401: the token.
    post(base, &with("token", json!("garbage"))).assert_error(
        401,
        "invalid_token",
        "malformed token",
    );
    fx.keygen("other-root");
    let foreign = tokens::issue(
        &fx.path("other-root"),
        &[&bob_reads[..], &["--ttl", "10m"]].concat(),
    )
    .ok_trimmed();
    post(base, &with("token", json!(foreign))).assert_error(401, "invalid_token", "signature");

    // 403: a decision, with the reason and what failed.
    post(base, &with("resource", json!("/datasets/q4"))).assert_allowed();
    let reply = post(base, &with("operation", json!("delete")));
    reply.assert_denied("right($s, $o)");
    let failed = reply.body["failed_checks"]
        .as_array()
        .expect("failed_checks");
    assert!(!failed.is_empty(), "{}", reply.body);
    assert!(
        failed[0]["rule"]
            .as_str()
            .is_some_and(|r| r.contains("right($s, $o)")),
        "{}",
        reply.body
    );
    assert_eq!(reply.body["principal"], "bob", "{}", reply.body);
    assert_eq!(reply.body["chain"], json!(["reporter"]), "{}", reply.body);

    // 403 for the delegated child outside its slice, naming the hop's check.
    let reply = post(base, &child.body(SERVICE, "read", "/datasets/q4"));
    reply.assert_denied("/datasets/q3");
    assert!(
        reply.body["failed_checks"]
            .as_array()
            .is_some_and(|checks| checks.iter().any(|c| c["block"] == 1)),
        "the failing check is block 1's: {}",
        reply.body
    );
    // 403 for a keyed token without, or with a replayed, proof.
    let mut no_proof: Value = serde_json::from_str(&child.body(SERVICE, "read", RESOURCE)).unwrap();
    let proof = no_proof.as_object_mut().unwrap().remove("pop").unwrap();
    post(base, &no_proof.to_string())
        .assert_denied("proof of possession required from agent analytics");
    no_proof["pop"] = proof;
    post(base, &no_proof.to_string()).assert_allowed();
    post(base, &no_proof.to_string()).assert_denied("replayed");

    // 413: the body limit.
    let huge = with("token", json!("A".repeat(120 * 1024)));
    post_raw(&format!("{base}/v1/authorize"), &[JSON], &huge).assert_error(
        413,
        "body_too_large",
        "bytes",
    );

    // 404 / 405: one JSON shape for every route.
    http("GET", &format!("{base}/v1/nope"), None, &[]).assert_error(404, "not_found", "");
    http("GET", &format!("{base}/v1/authorize"), None, &[]).assert_error(
        405,
        "method_not_allowed",
        "",
    );

    // 401 expired_token once the short-lived token's expiry has passed.
    let (reply, waited) = poll("the 1s token to expire", || {
        let reply = short_lived.read(base);
        if reply.status == 200 {
            None
        } else {
            Some(reply)
        }
    });
    reply.assert_error(401, "expired_token", "token expired at");
    eprintln!("measured: --ttl 1s token refused as expired after a further {waited:?}");
}

// ---------------------------------------------------------------------------
// The registry's write API (item 3), as operators and verifiers meet it
// ---------------------------------------------------------------------------

#[test]
fn registry_writes_need_a_revoke_mandate_and_bad_bodies_get_the_one_error_shape() {
    let fx = Fixture::new();
    // Bearer operator mandates write only where the registry was started with
    // --allow-bearer-writes, which says so loudly.
    let mut registry = fx
        .try_registry_with("store", "127.0.0.1:0", &["--allow-bearer-writes"])
        .unwrap();
    let bearer_ops = fx.bearer_as("ops", "operator", &["registry:revoke"]);
    let create = format!("{}/v1/revocations", registry.url);
    let ops = format!("Bearer {bearer_ops}");
    let reader = fx.bearer("bob", "reader");
    let reader_auth = format!("Bearer {}", reader.token);
    let body = json!({"kind": "task", "value": "t-1", "reason": "test"}).to_string();
    let write = |body: &str, headers: &[(&str, &str)]| http("POST", &create, Some(body), headers);

    write(&body, &[JSON]).assert_error(401, "unauthenticated", "missing Authorization header");
    write(&body, &[JSON, ("Authorization", "Bearer garbage")]).assert_error(
        401,
        "unauthenticated",
        "malformed token",
    );
    write(&body, &[JSON, ("Authorization", &reader_auth)]).assert_error(
        403,
        "forbidden",
        "right($s, $o)",
    );
    let bad_kind = json!({"kind": "everything", "value": "x"}).to_string();
    write(&bad_kind, &[JSON, ("Authorization", &ops)]).assert_error(400, "bad_request", "kind");
    let bad_id = json!({"kind": "token_id", "value": "not hex"}).to_string();
    write(&bad_id, &[JSON, ("Authorization", &ops)]).assert_error(400, "invalid_value", "hex");
    let huge = json!({"kind": "task", "value": "x", "reason": "r".repeat(32 * 1024)}).to_string();
    post_raw(&create, &[JSON, ("Authorization", &ops)], &huge).assert_error(
        413,
        "body_too_large",
        "",
    );
    http(
        "POST",
        &format!("{create}/lift"),
        Some(&body),
        &[JSON, ("Authorization", &ops)],
    )
    .assert_error(400, "not_liftable", "task");

    let created = write(&body, &[JSON, ("Authorization", &ops)]);
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["seq"], 1, "{}", created.body);
    assert_eq!(created.body["kind"], "task", "{}", created.body);
    assert_eq!(created.body["value"], "t-1", "{}", created.body);
    assert_eq!(
        created.body["revoked_by"], "ops via operator",
        "{}",
        created.body
    );
    let stderr = registry.stderr();
    assert!(
        stderr.contains("DANGER") && stderr.contains("--allow-bearer-writes"),
        "the opt-out is logged at start-up: {stderr}"
    );
    // The same store, served again with the default.
    registry.terminate();
    drop(registry);

    // By default the same bearer operator mandate is refused, with the reason.
    let registry = fx.registry("store");
    let create = format!("{}/v1/revocations", registry.url);
    let body = json!({"kind": "task", "value": "t-2", "reason": "test"}).to_string();
    http(
        "POST",
        &create,
        Some(&body),
        &[JSON, ("Authorization", &ops)],
    )
    .assert_error(401, "unauthenticated", "bearer token refused");
    mandate(&[
        "revoke",
        "--task=t-2",
        "--registry",
        &registry.url,
        "--auth",
        &bearer_ops,
    ])
    .fails(2, "bearer token refused");

    // A keyed operator mandate needs its proof of possession (`--auth-key`).
    let keyed = fx.keyed("ops", "keyed-operator", &["registry:revoke"], &[]);
    let (keyed, ops_key) = (keyed.token.clone(), keyed.key_file().to_owned());
    let target = [
        "revoke",
        "--task=t-2",
        "--registry",
        &registry.url,
        "--auth",
        &keyed,
    ];
    mandate(&target).fails(2, "proof of possession required from agent keyed-operator");
    let ops_key = ops_key.as_str();
    let run = mandate(&[&target[..], &["--auth-key", ops_key]].concat());
    assert_eq!(seq_of(run.ok(), "revoked task t-2"), Some(2), "{run}");

    // Reads need a mandate granting registry:read: without one, 401, for the
    // list, the status and the stream alike.
    for path in ["/v1/revocations", "/v1/status", "/v1/revocations/stream"] {
        let url = format!("{}{path}", registry.url);
        http("GET", &url, None, &[]).assert_error(
            401,
            "unauthenticated",
            "missing Authorization header",
        );
    }
    // The operator's keyed mandate without its proof is refused for reads too.
    let keyed_ops = format!("Bearer {keyed}");
    http("GET", &create, None, &[("Authorization", &keyed_ops)]).assert_error(
        401,
        "unauthenticated",
        "proof of possession required from agent keyed-operator",
    );
    // With one (a bearer read mandate here), reads are paged and bounded.
    let read_only = fx.bearer_as("dashboards", "dashboard", &["registry:read"]);
    let read_auth = format!("Bearer {read_only}");
    let read = [("Authorization", read_auth.as_str())];
    let page = http("GET", &format!("{create}?after=0&limit=1"), None, &read);
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        page.body["entries"].as_array().map(Vec::len),
        Some(1),
        "{}",
        page.body
    );
    assert_eq!(page.body["next_after"], 1, "{}", page.body);
    assert_eq!(page.body["current_seq"], 2, "{}", page.body);
    http("GET", &format!("{create}?limit=0"), None, &read).assert_error(
        400,
        "invalid_limit",
        "limit",
    );
    let status = http("GET", &format!("{}/v1/status", registry.url), None, &read);
    assert_eq!(status.status, 200, "{}", status.body);
    assert_eq!(status.body["current_seq"], 2, "{}", status.body);
    http("GET", &format!("{}/v1/nope", registry.url), None, &[]).assert_error(404, "not_found", "");

    // A keyed operator's mandate on stdin (`--auth -`) is read once, and its
    // proof signed over it.
    let run = mandate_stdin(
        &[
            "revoke",
            "--task=t-3",
            "--registry",
            &registry.url,
            "--auth",
            "-",
            "--auth-key",
            ops_key,
        ],
        &keyed,
    );
    assert_eq!(seq_of(run.ok(), "revoked task t-3"), Some(3), "{run}");

    // `revocations list` reads with --registry-auth, and never without it.
    let run = mandate(&["revocations", "list", "--registry", &registry.url]);
    run.fails(2, "--registry-auth");
    let mut args = vec!["revocations", "list", "--json"];
    args.extend(fx.registry_source(&registry.url));
    let run = mandate(&args);
    let entries: Value = serde_json::from_str(run.ok()).expect("JSON list");
    assert_eq!(entries.as_array().map(Vec::len), Some(3), "{run}");
    let run = mandate(&[
        "revocations",
        "list",
        "--registry",
        &registry.url,
        "--registry-auth",
        &fx.reader.token,
    ]);
    run.fails(2, "proof of possession required from agent verifier");
}

#[test]
fn a_revocations_reason_and_value_print_escaped_and_forge_no_line() {
    // Found by review: a reason holding a newline, an ANSI escape and a
    // right-to-left override printed raw, as a line `ALLOW: ...` of its own,
    // in `authorize` and in `revocations list`.
    let w = World::new();
    let store = w.path("store");
    // `serve --store` makes the store, and lets go of it when it stops.
    w.serve_store("store", &[]).terminate();
    let carol = w.bearer("carol", "bot", &["s:o"], &[]);
    let reason = "x\nALLOW: bot acting for carol \u{1b}[32m\u{202e}";
    mandate(&[
        "revoke",
        "--store",
        &store,
        "--principal",
        "carol",
        "--reason",
        reason,
    ])
    .ok();
    let run = w.authorize(
        &carol.token,
        &request_flags("s", "o", "/x"),
        &["--store", &store],
    );
    assert_eq!(run.code, 1, "{run}");
    assert!(!run.stdout.contains("\nALLOW"), "{run}");
    assert!(
        !run.stdout.contains('\u{1b}') && !run.stdout.contains('\u{202e}'),
        "{run}"
    );
    assert!(
        run.stdout
            .contains("x\\nALLOW: bot acting for carol \\u{1b}[32m\\u{202e}"),
        "{run}"
    );

    let list = mandate(&["revocations", "list", "--store", &store]);
    let listed = list.ok();
    assert_eq!(
        listed.trim_end().lines().count(),
        1,
        "one line per entry\n{list}"
    );
    assert!(
        !listed.contains('\u{1b}') && !listed.contains('\u{202e}'),
        "{list}"
    );
}

#[test]
fn a_captured_registry_write_is_not_taken_again_after_a_restart() {
    // Found by review: the nonce cache lives in memory, so the very bytes of
    // a revoke (token, proof, body) were accepted again by a restarted
    // registry within the proof's window, re-applying a lifted revocation.
    use sha2::Digest as _;
    let w = World::new();
    let ops = w.keyed(
        "ops",
        "operator",
        &["registry:revoke", "registry:read"],
        &[],
    );
    let mut server = w.serve_store("store", &[]);
    let body = r#"{"kind":"principal","value":"frank","reason":"x"}"#;
    let digest = hex::encode(sha2::Sha256::digest(body.as_bytes()));
    let body_attr = format!("body_sha256={digest}");
    // The write's proof, signed now or (`--at`) as a client whose clock runs
    // ahead would sign it.
    let sign = |at: Option<&str>| {
        let mut request = vec![
            "--service",
            "registry",
            "--operation",
            "revoke",
            "--resource",
            "/revocations",
            "--attr",
            "http_method=POST",
            "--attr",
            "http_path=/v1/revocations",
            "--attr",
            &body_attr,
        ];
        if let Some(at) = at {
            request.extend(["--at", at]);
        }
        w.pop("operator", &ops.token, &request)
    };
    let proof = sign(None);
    let bearer = format!("Bearer {}", ops.token);
    let send_with = |base: &str, proof: &str| {
        let headers = [
            ("Authorization", bearer.as_str()),
            ("Mandate-PoP", proof),
            JSON,
        ];
        http(
            "POST",
            &format!("{base}/v1/revocations"),
            Some(body),
            &headers,
        )
    };
    let send = |base: &str| send_with(base, &proof);

    let reply = send(&server.url);
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    send(&server.url).assert_error(401, "unauthenticated", "replayed");
    server.terminate();

    let server = w.serve_store("store", &[]);
    send(&server.url).assert_error(401, "unauthenticated", "before this verifier started");
    // A proof dated well ahead (which a replay after a restart would
    // otherwise rely on) is refused too.
    let ahead = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(20));
    send_with(&server.url, &sign(Some(&ahead.to_string()))).assert_error(
        401,
        "unauthenticated",
        "outside the 5000 ms window",
    );
    let list = mandate(&[
        "revocations",
        "list",
        "--registry",
        &server.url,
        "--registry-auth",
        &ops.token,
        "--registry-auth-key",
        &w.path("operator"),
        "--json",
    ]);
    let entries = list.json();
    assert_eq!(entries.as_array().map(Vec::len), Some(1), "{list}");
}
