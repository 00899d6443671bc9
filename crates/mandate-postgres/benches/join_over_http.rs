//! A new verifier joining a registry of 1 M revocations over HTTP, measured end to end
//! with the real binaries on the server `MANDATE_TEST_PG` names (a fresh database):
//!
//! 1. The log is filled in bulk with SQL (1 M task entries, as the `revocations` bench).
//! 2. `mandate registry serve --store postgres://…` starts on it; time until its
//!    `/readyz` answers 200 (it loads the whole log into its own index first), and its
//!    peak resident memory (`VmHWM` in `/proc/PID/status`).
//! 3. `mandate serve --registry URL` (a verifier, authenticated by a bearer
//!    `registry:read` mandate) starts; time from spawn until its `/readyz` answers 200
//!    and names the log's last seq ("fresh at revocation #N"): it has streamed every
//!    entry and heard the registry's heartbeat vouch for them. Then its peak resident
//!    memory.
//!
//! The binary measured is `MANDATE_BIN`, or the `mandate` next to this bench (build it
//! first: `cargo build --release -p mandate-cli`). `MANDATE_BASELINE_BIN=PATH` measures a
//! second binary the same way on the same database, reported first, for a before/after
//! in one run.
//!
//! `MANDATE_TEST_PG=postgres://postgres@127.0.0.1:5432/test cargo bench -p
//! mandate-postgres --bench join_over_http` (add `-- --quick` for 100 k entries).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use mandate_core::{Restrictions, RootKey, SecretKey};
use mandate_issuer::MintRequest;
use mandate_postgres::revocations::PgRevocationStore;
use mandate_registry::RevocationStore;

/// The longest either process may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How often `/readyz` is asked.
const POLL: Duration = Duration::from_millis(10);

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let current = match std::env::var_os("MANDATE_BIN") {
        Some(path) => PathBuf::from(path),
        None => sibling_binary(),
    };
    if !current.is_file() {
        println!(
            "SKIPPED: no mandate binary at {}; run `cargo build --release -p mandate-cli` or set MANDATE_BIN",
            current.display()
        );
        return;
    }
    let Some(url) = mandate_postgres::testing::fresh_database("bench join over http") else {
        return;
    };
    let entries: i64 = if quick { 100_000 } else { 1_000_000 };
    let total = fill(&url, entries);

    let secret = SecretKey::generate();
    let root_pub = format!("1={}", secret.public());
    let root = RootKey {
        secret,
        key_id: Some(1),
    };
    let reader = mint_reader(&root);

    println!("a verifier joining a registry of {total} entries over HTTP (PostgreSQL store)");
    let mut runs = Vec::new();
    if let Some(baseline) = std::env::var_os("MANDATE_BASELINE_BIN") {
        runs.push(("before", PathBuf::from(baseline)));
    }
    runs.push(("after", current));
    for (label, binary) in runs {
        join(label, &binary, &url, &root_pub, &reader, total);
    }
}

/// The `mandate` binary built alongside this bench (`target/release/mandate`).
fn sibling_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/release/deps/join_over_http-HASH → target/release/mandate
    exe.parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("mandate"))
        .unwrap_or_default()
}

/// Creates the schema and fills the log with `entries` task revocations; returns the
/// newest seq.
fn fill(url: &str, entries: i64) -> u64 {
    let store = PgRevocationStore::connect(url).unwrap();
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    client
        .execute(
            "INSERT INTO mandate_revocations (seq, kind, value, reason, revoked_by, recorded_at, lifted) \
             SELECT g, 'task', 'join-' || g, '', 'bench', now(), false \
             FROM generate_series(1, $1::bigint) AS g",
            &[&entries],
        )
        .unwrap();
    client
        .batch_execute("VACUUM ANALYZE mandate_revocations")
        .unwrap();
    store.current_seq().unwrap()
}

fn mint_reader(root: &RootKey) -> String {
    let request = MintRequest {
        principal: "verifiers".into(),
        agent: "verifier".into(),
        agent_key: None,
        task: Some("join-bench".into()),
        rights: vec!["registry:read".parse().unwrap()],
        ttl: Duration::from_secs(3600),
        restrictions: Restrictions::default(),
        now: SystemTime::now(),
    };
    mandate_issuer::mint(root, &request)
        .unwrap()
        .to_base64()
        .unwrap()
}

/// Starts a registry replica and then a verifier following it, and reports both.
fn join(label: &str, binary: &Path, url: &str, root_pub: &str, reader: &str, total: u64) {
    let started = Instant::now();
    let registry = Process::start(
        binary,
        &[
            "registry",
            "serve",
            "--store",
            url,
            "--root-pub",
            root_pub,
            "--listen",
            "127.0.0.1:0",
        ],
    );
    registry.wait_ready(started, None);
    let registry_ready = started.elapsed();
    let registry_peak = registry.peak_mib();
    let registry_cpu = registry.cpu();

    let started = Instant::now();
    let verifier = Process::start(
        binary,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--root-pub",
            root_pub,
            "--registry",
            &registry.url,
            "--registry-auth",
            reader,
            "--staleness",
            "30s",
        ],
    );
    let detail = format!("fresh at revocation #{total} ");
    verifier.wait_ready(started, Some(&detail));
    let verifier_ready = started.elapsed();
    println!(
        "  {label:>6}: registry replica ready in {registry_ready:>8.2?} (peak {registry_peak:>4} MiB, \
         CPU {registry_cpu:.2?}); verifier fully synced in {verifier_ready:>8.2?} (peak {:>4} MiB, \
         CPU {:.2?}; the registry spent {:.2?} streaming to it)",
        verifier.peak_mib(),
        verifier.cpu(),
        registry.cpu().saturating_sub(registry_cpu),
    );
}

/// A `mandate` server process, killed on drop.
struct Process {
    child: Child,
    url: String,
}

impl Process {
    /// Spawns `binary ARGS` and reads its address from the first line it prints.
    fn start(binary: &Path, args: &[&str]) -> Process {
        let mut child = Command::new(binary)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", binary.display()));
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        // Keep reading whatever else it prints, so it never writes into a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let start = line
            .find("http://")
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        let url = line[start..]
            .split([',', ' ', '\n'])
            .next()
            .unwrap()
            .to_owned();
        Process { child, url }
    }

    /// Polls `/readyz` until it answers 200 (with `detail` in its body, when given).
    fn wait_ready(&self, started: Instant, detail: Option<&str>) {
        let address = self.url.trim_start_matches("http://").to_owned();
        loop {
            if let Some((status, body)) = get(&address, "/readyz") {
                if status == 200 && detail.is_none_or(|detail| body.contains(detail)) {
                    return;
                }
            }
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "{} not ready within {READY_TIMEOUT:?}",
                self.url
            );
            std::thread::sleep(POLL);
        }
    }

    /// The CPU time the process has used so far (user + system), from
    /// `/proc/PID/stat`, counted in Linux's 100 ticks per second.
    fn cpu(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i).and_then(|field| field.parse::<u64>().ok()))
            .sum();
        Duration::from_millis(ticks * 10)
    }

    /// The process's peak resident set size so far, in MiB (`VmHWM`).
    fn peak_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
            / 1024
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET on loopback: the status and the body, or `None` while the
/// server does not answer.
fn get(address: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}
