//! Revoke → deny latency: how long after an operator revokes a principal does every
//! subscribed verifier process deny that principal's token?
//!
//! The parent process runs a registry in-process (`serve` on `127.0.0.1:0`, a `SledStore`
//! that flushes every append, writes authorized by a `MandateWriteAuthorizer` trusting a
//! fresh root key), mints one bearer mandate per principal `p0..pN`, a keyed operator
//! mandate granting `registry:revoke` (each write carries its proof) and a bearer
//! `registry:read` mandate for the verifiers' streams, and starts `MANDATE_BENCH_VERIFIERS` (default 8)
//! child processes of this same executable. Each child subscribes a `SharedIndex`
//! (staleness bound 3 s) to the registry, builds a `Verifier` with that index as its
//! revocation check, and calls `Verifier::authorize(token_i, request)` in a tight loop until
//! the decision is a denial whose reason names the revoked principal `p_i`; it then prints
//! `i <unix ns>` and moves on to token `i + 1`.
//!
//! The parent revokes `p_i` over HTTP with `RegistryClient::revoke`, noting the wall clock
//! before the call (`t0`) and when the registry acknowledged it (`t_ack`, after the durable
//! write), waits until every child has reported `i`, and goes on with `i + 1`. It reports
//! p50/p99/max over all `verifiers × revocations` samples of `deny - t0` (the end-to-end
//! figure) and of `deny - t_ack`; per revocation, of the slowest verifier's `deny - t0`
//! (when *every* verifier denies); and of `t_ack - t0` (the write and its fsync, seen from
//! the client). Parent and children read
//! the same system clock, so the differences are meaningful.
//!
//! Tokens are bearer mandates (no agent key), so each call needs no proof of possession;
//! the revocation check runs before the proof check in `authorize_mandate`, so a keyed
//! token would be denied at the same point.
//!
//! Everything is bounded: children must be ready within 60 s and must see each revocation
//! within 10 s; on any failure the parent kills and reaps every child. A child also exits
//! when its stdin (held by the parent) closes, so even a parent killed with SIGKILL leaves
//! no verifier running.
//!
//! `cargo bench -p mandate-registry --bench propagation` runs the measurement (defaults:
//! 8 verifiers, 200 revocations; override with `MANDATE_BENCH_VERIFIERS` and
//! `MANDATE_BENCH_REVOCATIONS`). `MANDATE_BENCH_POLL_US=N` makes each verifier sleep N µs
//! between calls instead of spinning, to separate the system's latency from CPU starvation
//! when more verifier processes spin than there are cores. Without `--bench` (as under `cargo test --benches`) it runs
//! a 2-verifier, 3-revocation smoke pass that checks the plumbing, not the timing.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mandate_core::{KeySet, PublicKey, Request, ResourcePath, Restrictions, RootKey, SecretKey};
use mandate_issuer::MintRequest;
use mandate_registry::{
    serve, MandateWriteAuthorizer, RegistryAuth, RegistryClient, RegistryConfig, RegistryState,
    RevocationKind, SharedIndex, SledStore, SubscribeOptions,
};
use mandate_verifier::{Reason, Verifier};

/// Set (to the registry URL) in a child's environment: run as a verifier.
const CHILD_URL_ENV: &str = "MANDATE_BENCH_PROPAGATION_URL";
/// The file with the root public key (first line), the verifiers' read mandate (second)
/// and the tokens (one per line).
const CHILD_TOKENS_ENV: &str = "MANDATE_BENCH_PROPAGATION_TOKENS";

/// Microseconds each verifier sleeps between calls; 0 (the default) is a tight loop.
const POLL_ENV: &str = "MANDATE_BENCH_POLL_US";

const STALENESS_BOUND: Duration = Duration::from_secs(3);
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const DENY_TIMEOUT: Duration = Duration::from_secs(10);
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
const GOAL_P99: Duration = Duration::from_millis(50);

const SERVICE: &str = "svc";
const OPERATION: &str = "read";

fn main() -> ExitCode {
    if let Ok(url) = std::env::var(CHILD_URL_ENV) {
        return child(&url);
    }
    let benching = std::env::args().any(|a| a == "--bench");
    let (verifiers, revocations) = if benching {
        (
            env_usize("MANDATE_BENCH_VERIFIERS", 8),
            env_usize("MANDATE_BENCH_REVOCATIONS", 200),
        )
    } else {
        (2, 3)
    };
    match parent(verifiers, revocations, benching) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("propagation bench failed: {message}");
            ExitCode::FAILURE
        }
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        })
        .unwrap_or(default)
}

fn now_ns() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_nanos()).unwrap()
}

fn request() -> Request {
    Request::new(
        SERVICE,
        OPERATION,
        ResourcePath::parse("/data/q3").unwrap(),
        SystemTime::now(),
    )
}

// ---------------------------------------------------------------------------------------
// Parent: registry, tokens, children, revocations, statistics.

/// The child processes; killed and reaped when dropped, however the parent ends.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            // Errors mean the child has already exited and been reaped.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Children {
    /// Closes every child's stdin (their signal to exit) and waits, bounded, for them.
    fn finish(&mut self) -> Result<(), String> {
        for child in &mut self.0 {
            drop(child.stdin.take());
        }
        let deadline = Instant::now() + EXIT_TIMEOUT;
        for (n, child) in self.0.iter_mut().enumerate() {
            loop {
                match child
                    .try_wait()
                    .map_err(|e| format!("waiting for child {n}: {e}"))?
                {
                    Some(_) => break,
                    None if Instant::now() > deadline => {
                        return Err(format!("child {n} did not exit within {EXIT_TIMEOUT:?}"));
                    }
                    None => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }
        Ok(())
    }
}

enum Message {
    Line(usize, String),
    Closed(usize),
}

struct Samples {
    /// Report time minus the time just before the revoke call.
    from_call: Vec<i64>,
    /// Report time minus the time the registry acknowledged the write.
    from_ack: Vec<i64>,
    /// Acknowledgement time minus the time just before the revoke call.
    ack: Vec<i64>,
    /// Per revocation: the last verifier's report minus the time before the revoke call.
    slowest: Vec<i64>,
}

fn mint_bearer(root: &RootKey, principal: &str, agent: &str, right: &str) -> String {
    mint(root, principal, agent, None, right)
}

fn mint(
    root: &RootKey,
    principal: &str,
    agent: &str,
    key: Option<&SecretKey>,
    right: &str,
) -> String {
    let request = MintRequest {
        principal: principal.into(),
        agent: agent.into(),
        agent_key: key.map(SecretKey::public),
        task: Some(format!("task-{principal}")),
        rights: vec![right.parse().unwrap()],
        ttl: Duration::from_secs(3600),
        restrictions: Restrictions::default(),
        now: SystemTime::now(),
    };
    mandate_issuer::mint(root, &request)
        .unwrap()
        .to_base64()
        .unwrap()
}

fn parent(verifiers: usize, revocations: usize, benching: bool) -> Result<(), String> {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).map_err(|e| e.to_string())?;

    let secret = SecretKey::generate();
    let root_public = secret.public();
    let root = RootKey {
        secret,
        key_id: Some(1),
    };
    let tokens: Vec<String> = (0..revocations)
        .map(|i| mint_bearer(&root, &format!("p{i}"), &format!("agent-{i}"), "svc:read"))
        .collect();
    // The operator is keyed, as the registry requires by default: each write carries a
    // proof bound to it. Verifiers read the log with a bearer read mandate (line 2).
    let operator_key = SecretKey::generate();
    let operator = mint(
        &root,
        "operator",
        "ops-console",
        Some(&operator_key),
        "registry:revoke",
    );
    let operator = RegistryAuth::keyed(operator, operator_key).map_err(|e| e.to_string())?;
    let reader = mint_bearer(&root, "verifiers", "verifier", "registry:read");
    let tokens_path = tmp.path().join("tokens.txt");
    let mut file_text = format!("{root_public}\n{reader}\n");
    for token in &tokens {
        file_text.push_str(token);
        file_text.push('\n');
    }
    std::fs::write(&tokens_path, file_text).map_err(|e| e.to_string())?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let store = SledStore::open(&tmp.path().join("store")).map_err(|e| e.to_string())?;
    let authorizer =
        MandateWriteAuthorizer::new(Verifier::builder().root_keys(KeySet::single(root_public)))
            .map_err(|e| e.to_string())?;
    let config = RegistryConfig {
        shutdown_grace: Duration::from_secs(2),
        ..RegistryConfig::default()
    };
    let heartbeat = config.heartbeat_interval;
    let state = RegistryState::with_config(Arc::new(store), Arc::new(authorizer), config);
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .map_err(|e| e.to_string())?;
    let url = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(serve(listener, state, async {
        let _ = stopped.await;
    }));
    let client = RegistryClient::new(&url).map_err(|e| e.to_string())?;

    let (tx, rx) = mpsc::channel();
    let mut children = Children(Vec::with_capacity(verifiers));
    for n in 0..verifiers {
        let mut child = spawn_child(&url, &tokens_path)?;
        let stdout = child.stdout.take().ok_or("child has no stdout")?;
        children.0.push(child);
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(Message::Line(n, line)).is_err() {
                    return;
                }
            }
            let _ = tx.send(Message::Closed(n));
        });
    }
    drop(tx);

    wait_ready(&rx, verifiers)?;
    eprintln!(
        "{verifiers} verifier processes subscribed to {url}; revoking {revocations} principals"
    );

    let mut samples = Samples {
        from_call: Vec::with_capacity(verifiers * revocations),
        from_ack: Vec::with_capacity(verifiers * revocations),
        ack: Vec::with_capacity(revocations),
        slowest: Vec::with_capacity(revocations),
    };
    let mut done: Vec<Option<(u64, u64)>> = vec![None; verifiers];
    let started = Instant::now();
    for i in 0..revocations {
        let principal = format!("p{i}");
        let t0 = now_ns();
        runtime
            .block_on(client.revoke(
                &operator,
                RevocationKind::Principal,
                &principal,
                "propagation bench",
            ))
            .map_err(|e| format!("revoking {principal}: {e}"))?;
        let t_ack = now_ns();
        samples.ack.push(t_ack - t0);
        let mut reports = vec![None; verifiers];
        let deadline = Instant::now() + DENY_TIMEOUT;
        while reports.iter().any(Option::is_none) {
            let wait = deadline.saturating_duration_since(Instant::now());
            let (n, line) = match rx.recv_timeout(wait) {
                Ok(Message::Line(n, line)) => (n, line),
                // A child exits after `done`; only an earlier exit is a failure.
                Ok(Message::Closed(n)) if done[n].is_some() => continue,
                Ok(Message::Closed(n)) => return Err(format!("child {n} exited during {i}")),
                Err(_) => {
                    let missing: Vec<usize> =
                        (0..verifiers).filter(|&n| reports[n].is_none()).collect();
                    return Err(format!(
                        "children {missing:?} did not deny {principal} within {DENY_TIMEOUT:?}"
                    ));
                }
            };
            // A child that has seen the last revocation says `done` at once, possibly
            // before a slower child has reported that revocation.
            if let Some(totals) = parse_done(&line) {
                if i + 1 == revocations && done[n].is_none() {
                    done[n] = Some(totals);
                    continue;
                }
                return Err(format!("child {n} finished early, during revocation {i}"));
            }
            let (index, at) = parse_report(&line)
                .ok_or_else(|| format!("child {n} during revocation {i}: {line}"))?;
            if index != i || reports[n].is_some() {
                return Err(format!("child {n} reported {index} while {i} was pending"));
            }
            reports[n] = Some(at);
        }
        let reports: Vec<i64> = reports.into_iter().flatten().collect();
        for &at in &reports {
            samples.from_call.push(at - t0);
            samples.from_ack.push(at - t_ack);
        }
        samples
            .slowest
            .push(reports.iter().max().map_or(0, |at| at - t0));
    }
    let elapsed = started.elapsed();

    // Children print `done CALLS OTHER_DENIALS` after the last token.
    let deadline = Instant::now() + EXIT_TIMEOUT;
    while let Some(n) = done.iter().position(Option::is_none) {
        let wait = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(Message::Line(m, line)) => match parse_done(&line) {
                Some(totals) if done[m].is_none() => done[m] = Some(totals),
                _ => return Err(format!("child {m} said {line:?} while waiting for done")),
            },
            Ok(Message::Closed(m)) if done[m].is_some() => {}
            Ok(Message::Closed(m)) => return Err(format!("child {m} exited before done")),
            Err(_) => return Err(format!("child {n} did not finish within {EXIT_TIMEOUT:?}")),
        }
    }
    let calls = done.iter().flatten().map(|d| d.0).sum();
    let other_denials = done.iter().flatten().map(|d| d.1).sum();
    children.finish()?;
    let _ = stop.send(());
    runtime
        .block_on(async { tokio::time::timeout(EXIT_TIMEOUT, server).await })
        .map_err(|_| "registry did not shut down")?
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;

    report(&Report {
        verifiers,
        poll: Duration::from_micros(env_usize(POLL_ENV, 0) as u64),
        revocations,
        heartbeat,
        elapsed,
        calls,
        other_denials,
        samples: &samples,
    });
    if !benching {
        eprintln!("(smoke run: pass --bench, as `cargo bench` does, for the measurement)");
    }
    Ok(())
}

fn spawn_child(url: &str, tokens: &Path) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    Command::new(exe)
        .env(CHILD_URL_ENV, url)
        .env(CHILD_TOKENS_ENV, tokens)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting a verifier process: {e}"))
}

/// Waits, bounded, until every child said `ready`.
fn wait_ready(rx: &mpsc::Receiver<Message>, children: usize) -> Result<(), String> {
    let mut ready = vec![false; children];
    let deadline = Instant::now() + READY_TIMEOUT;
    while let Some(n) = ready.iter().position(|r| !r) {
        let wait = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(Message::Line(m, line)) if line == "ready" && !ready[m] => ready[m] = true,
            Ok(Message::Line(m, line)) => {
                return Err(format!("child {m} said {line:?} while starting"))
            }
            Ok(Message::Closed(m)) => return Err(format!("child {m} exited while starting")),
            Err(_) => return Err(format!("child {n} not ready within {READY_TIMEOUT:?}")),
        }
    }
    Ok(())
}

fn parse_done(line: &str) -> Option<(u64, u64)> {
    let (calls, other) = line.strip_prefix("done ")?.split_once(' ')?;
    Some((calls.parse().ok()?, other.parse().ok()?))
}

fn parse_report(line: &str) -> Option<(usize, i64)> {
    let (index, at) = line.split_once(' ')?;
    Some((index.parse().ok()?, at.parse().ok()?))
}

struct Report<'a> {
    verifiers: usize,
    poll: Duration,
    revocations: usize,
    heartbeat: Duration,
    elapsed: Duration,
    calls: u64,
    other_denials: u64,
    samples: &'a Samples,
}

fn report(r: &Report<'_>) {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!();
    println!(
        "revoke → deny latency: {} verifier processes, {} principal revocations, {} samples",
        r.verifiers,
        r.revocations,
        r.samples.from_call.len()
    );
    println!(
        "  bearer mandates; {}; {cores} CPU cores; SledStore (flush per append); \
         heartbeat {:?}, staleness bound {:?}",
        match r.poll {
            Duration::ZERO => "tight authorize() loop per verifier".to_owned(),
            poll => format!("authorize() every {poll:?} per verifier"),
        },
        r.heartbeat,
        STALENESS_BOUND
    );
    println!(
        "  {:<36} {:>10} {:>10} {:>10}",
        "measure (ms)", "p50", "p99", "max"
    );
    let rows = [
        ("deny, from revoke call", &r.samples.from_call),
        ("deny, from registry ack", &r.samples.from_ack),
        ("all verifiers deny, from revoke call", &r.samples.slowest),
        ("revoke ack (HTTP + durable write)", &r.samples.ack),
    ];
    for (name, values) in rows {
        let mut sorted = values.clone();
        sorted.sort_unstable();
        println!(
            "  {name:<36} {:>10.3} {:>10.3} {:>10.3}",
            ms(percentile(&sorted, 0.50)),
            ms(percentile(&sorted, 0.99)),
            ms(*sorted.last().unwrap_or(&0)),
        );
    }
    let mut sorted = r.samples.from_call.clone();
    sorted.sort_unstable();
    let p99 = percentile(&sorted, 0.99);
    let goal = i64::try_from(GOAL_P99.as_nanos()).unwrap_or(i64::MAX);
    println!(
        "  goal p99 ≤ {GOAL_P99:?}: {}",
        if p99 <= goal { "met" } else { "NOT met" }
    );
    let seconds = r.elapsed.as_secs_f64();
    println!(
        "  {} authorize calls in {seconds:.1} s across all verifiers ({:.0}/s); \
         {} denials for another reason (e.g. stale)",
        r.calls,
        r.calls as f64 / seconds,
        r.other_denials
    );
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(ns: i64) -> f64 {
    ns as f64 / 1e6
}

// ---------------------------------------------------------------------------------------
// Child: one verifier process.

fn child(url: &str) -> ExitCode {
    // The parent holds our stdin; when it closes (the parent finished, or died), exit, so
    // no verifier outlives the benchmark.
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });

    let path = std::env::var(CHILD_TOKENS_ENV).expect("tokens file in the environment");
    let text = std::fs::read_to_string(path).expect("reading the tokens file");
    let mut lines = text.lines();
    let root: PublicKey = lines.next().expect("root key line").parse().unwrap();
    let reader = lines.next().expect("read mandate line");
    let tokens: Vec<&str> = lines.collect();

    // One worker thread runs the subscription; the main thread is the service calling
    // `authorize` in a loop.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let index = SharedIndex::new(STALENESS_BOUND);
    let client = RegistryClient::new(url)
        .unwrap()
        .with_auth(RegistryAuth::bearer(reader));
    let _subscription = client.subscribe(index.clone(), SubscribeOptions::default());
    let verifier = Verifier::builder()
        .root_keys(KeySet::single(root))
        .revocation(Arc::new(index))
        .build()
        .unwrap();

    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let decision = verifier.authorize(tokens[0], &request()).unwrap();
        if decision.allowed {
            break;
        }
        if Instant::now() > deadline {
            println!("not ready: {}", decision.reason);
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("ready");

    let poll = Duration::from_micros(env_usize(POLL_ENV, 0) as u64);
    let mut calls = 0u64;
    let mut other_denials = 0u64;
    for (i, token) in tokens.iter().enumerate() {
        // "revoked: principal p1 (revocation #2: ...)"; the space keeps p1 apart from p10.
        let expected = format!("principal p{i} ");
        let deadline = Instant::now() + DENY_TIMEOUT;
        loop {
            let decision = verifier.authorize(token, &request()).unwrap();
            calls += 1;
            if !decision.allowed {
                if let Reason::Revoked { denial } = &decision.reason {
                    let message = denial.to_string();
                    if message.starts_with("revoked:") && message.contains(&expected) {
                        println!("{i} {}", now_ns());
                        break;
                    }
                }
                other_denials += 1;
                if other_denials <= 3 {
                    eprintln!(
                        "verifier: p{i} denied for another reason: {}",
                        decision.reason
                    );
                }
            }
            if !poll.is_zero() {
                std::thread::sleep(poll);
            }
            if Instant::now() > deadline {
                println!("timeout on p{i}: last decision: {}", decision.reason);
                return ExitCode::FAILURE;
            }
        }
    }
    println!("done {calls} {other_denials}");
    ExitCode::SUCCESS
}
