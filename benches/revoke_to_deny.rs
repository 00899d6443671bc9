//! Revoke → deny latency across registry replicas on PostgreSQL: how long after a
//! revocation is acknowledged every verifier denies the revoked task.
//!
//! ```text
//! MANDATE_TEST_PG=postgres://postgres@127.0.0.1:5432/test \
//!     cargo bench -p mandate-cli --bench revoke_to_deny [-- --quick] [-- --rounds N --poll-us N]
//! ```
//!
//! Two deployments run one after the other, each on a fresh database of the server
//! `MANDATE_TEST_PG` names (without it the bench prints `SKIPPED` and exits 0):
//!
//! - the baseline: one `mandate registry serve --store postgres://…` replica and one
//!   `mandate serve --registry URL` verifier following it;
//! - the fleet: three replicas and eight verifiers, each given all three replicas
//!   (`--registry A,B,C`) and following a different first one, so the verifiers spread
//!   over the replicas (3, 3, 2).
//!
//! Each round revokes a fresh task through one replica (round-robin) with the
//! operator's keyed mandate over real HTTP. The clock starts when the write's HTTP
//! response (the acknowledgement) arrives. Then every verifier is asked `POST
//! /v1/authorize` with a bearer mandate of that task, every `--poll-us` microseconds
//! (default 1000), until it denies *because the task is revoked*; any other answer
//! (a deny for staleness, an error) fails the bench. One sample is first deny − ack,
//! per verifier and round. Every mandate is minted, and every verifier has allowed it,
//! before the clock starts. The figure reported is p50 / p90 / p99 / max over all
//! samples; the fleet's are also split by whether the verifier follows the replica the
//! write went through (the in-process broadcast) or another one (PostgreSQL `NOTIFY`
//! → that replica's `LISTEN` session → catch-up read → its streams).
//!
//! `--quick` runs 30 rounds instead of 200; without `--bench` (`cargo test --benches`)
//! 3 rounds check the plumbing, not the timing. The servers, the pollers and the database
//! share the machine, so the numbers include their competition for its cores.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)] // reason: a bench fails loudly.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::replicas::Replicas;
use common::server::{poll, Server};
use mandate_core::SecretKey;
use mandate_postgres::testing::TEST_PG_VAR;
use mandate_registry::{RegistryAuth, RegistryClient, RevocationKind};

/// Verifiers' staleness bound: well above the replicas' 200 ms heartbeat, so a loaded
/// machine does not turn a verifier stale in the middle of a round.
const STALENESS: &str = "2s";
const SERVICE: &str = "analytics";
const RESOURCE: &str = "/datasets/q3/sales";
/// The longest a verifier may go on allowing a revoked task before the bench fails.
const GIVE_UP: Duration = Duration::from_secs(5);

/// What the command line asked for.
struct Options {
    rounds: usize,
    poll: Duration,
}

impl Options {
    fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
        let mut args: Vec<String> = args.collect();
        // `cargo bench` passes `--bench`; without it (`cargo test --benches`) a short pass
        // checks the plumbing, not the timing.
        let benching = args.iter().any(|arg| arg == "--bench");
        args.retain(|arg| arg != "--bench");
        let mut options = Options {
            rounds: if benching { 200 } else { 3 },
            poll: Duration::from_micros(1000),
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut number = |name: &str| -> Result<u64, String> {
                let value = args
                    .next()
                    .ok_or_else(|| format!("{name} needs a number"))?;
                value
                    .parse()
                    .map_err(|_| format!("{name} needs a number, not {value:?}"))
            };
            match arg.as_str() {
                "--quick" => options.rounds = 30,
                "--rounds" => options.rounds = number("--rounds")?.clamp(1, 100_000) as usize,
                "--poll-us" => {
                    options.poll = Duration::from_micros(number("--poll-us")?.min(1_000_000));
                }
                other => {
                    return Err(format!(
                        "unknown argument {other:?} (expected --quick, --rounds N, --poll-us N)"
                    ))
                }
            }
        }
        Ok(options)
    }
}

fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    if std::env::var_os(TEST_PG_VAR).is_none() {
        eprintln!("SKIPPED: revoke_to_deny needs PostgreSQL; set {TEST_PG_VAR} to a server URL");
        return ExitCode::SUCCESS;
    }
    let world = Replicas::new();
    let tasks: Vec<Task> = (0..options.rounds)
        .map(|round| Task::mint(&world, round))
        .collect();
    eprintln!(
        "{} mandates minted; {} rounds, polling every {:?}",
        tasks.len(),
        options.rounds,
        options.poll
    );

    // One deployment at a time: the baseline's processes are gone before the fleet's start.
    let Some(baseline) = Deployment::start(&world, "revoke_to_deny: baseline", 1, 1)
        .map(|deployment| deployment.measure(&world, &tasks, options.poll))
    else {
        return ExitCode::SUCCESS;
    };
    let Some(fleet) = Deployment::start(&world, "revoke_to_deny: fleet", 3, 8)
        .map(|deployment| deployment.measure(&world, &tasks, options.poll))
    else {
        return ExitCode::SUCCESS;
    };

    println!();
    println!(
        "revoke → deny, {} rounds, polled every {:?} (ms)",
        options.rounds, options.poll
    );
    println!("| deployment | samples | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|---|");
    report("1 replica, 1 verifier", &latencies(&baseline, |_| true));
    report("3 replicas, 8 verifiers", &latencies(&fleet, |_| true));
    report(
        "… verifiers following the written replica",
        &latencies(&fleet, |s| s.same_replica),
    );
    report(
        "… verifiers following another replica",
        &latencies(&fleet, |s| !s.same_replica),
    );
    report("the write itself (baseline)", &baseline.writes);
    report("the write itself (fleet)", &fleet.writes);
    ExitCode::SUCCESS
}

/// One round's task and a bearer mandate of it.
struct Task {
    name: String,
    /// The body of `POST /v1/authorize` for a read within the task.
    body: String,
}

impl Task {
    fn mint(world: &Replicas, round: usize) -> Task {
        let name = format!("bench-task-{round}");
        let holder = world
            .w
            .bearer("alice", "reporter", &["analytics:read"], &["--task", &name]);
        let body = holder.body(SERVICE, "read", RESOURCE);
        Task { name, body }
    }
}

/// One verifier's answer to one round.
struct Sample {
    /// First revoked deny − acknowledgement.
    latency: Duration,
    /// The verifier follows the replica the write went through.
    same_replica: bool,
}

/// What one deployment's rounds measured.
struct Measured {
    /// Every verifier's sample of every round.
    samples: Vec<Sample>,
    /// Each round's write, from sending it to its acknowledgement.
    writes: Vec<Duration>,
}

/// Replicas on one fresh database, verifiers following them, and a poller per verifier.
struct Deployment {
    replicas: Vec<Server>,
    verifiers: Vec<Server>,
    /// The replica each verifier follows first.
    follows: Vec<usize>,
    /// The operator's client for each replica.
    writers: Vec<RegistryClient>,
}

impl Deployment {
    /// `None` (after `SKIPPED`) when `MANDATE_TEST_PG` is unset.
    fn start(world: &Replicas, name: &str, replicas: usize, verifiers: usize) -> Option<Self> {
        let db = mandate_postgres::testing::fresh_database(name)?;
        let replicas: Vec<Server> = (0..replicas)
            .map(|n| world.replica(&format!("replica-{n}"), &db))
            .collect();
        let urls: Vec<&str> = replicas.iter().map(|r| r.url.as_str()).collect();
        // Verifier n lists the replicas starting at n mod R: it follows that one.
        let follows: Vec<usize> = (0..verifiers).map(|n| n % urls.len()).collect();
        let verifiers: Vec<Server> = follows
            .iter()
            .map(|&first| {
                let list: Vec<&str> = urls[first..]
                    .iter()
                    .chain(&urls[..first])
                    .copied()
                    .collect();
                world.verifier(&list.join(","), STALENESS)
            })
            .collect();
        let writers: Vec<RegistryClient> = urls
            .iter()
            .map(|url| {
                RegistryClient::new(url)
                    .unwrap()
                    .with_auth(operator_auth(world))
            })
            .collect();
        let deployment = Deployment {
            replicas,
            verifiers,
            follows,
            writers,
        };
        deployment.wait_for_subscribers();
        Some(deployment)
    }

    /// Waits until each replica streams to the verifiers that follow it.
    fn wait_for_subscribers(&self) {
        let runtime = runtime();
        for (n, writer) in self.writers.iter().enumerate() {
            let expected = self.follows.iter().filter(|&&f| f == n).count();
            poll(&format!("{expected} subscribers on replica {n}"), || {
                let status = runtime.block_on(writer.status(None)).ok()?;
                (status.subscribers == expected).then_some(())
            });
        }
    }

    /// Runs one round per task.
    fn measure(&self, world: &Replicas, tasks: &[Task], every: Duration) -> Measured {
        let runtime = runtime();
        let auth = operator_auth(world);
        let pollers: Vec<Poller> = self
            .verifiers
            .iter()
            .map(|v| Poller::spawn(&v.url, every))
            .collect();
        // Verifiers that just subscribed turn fresh with their first heartbeat.
        if let Some(first) = tasks.first() {
            for (n, poller) in pollers.iter().enumerate() {
                poll(&format!("verifier {n} to allow"), || {
                    poller.ask(Job::Allow(first.body.clone())).ok()
                });
            }
        }
        let mut samples = Vec::with_capacity(tasks.len() * pollers.len());
        let mut writes = Vec::with_capacity(tasks.len());
        for (round, task) in tasks.iter().enumerate() {
            // Before the clock: every verifier is fresh and allows the task's mandate.
            for (poller, verifier) in pollers.iter().zip(&self.verifiers) {
                let answer = poller.ask(Job::Allow(task.body.clone()));
                if let Err(problem) = answer {
                    panic!(
                        "round {round}: {problem}; verifier log:\n{}",
                        verifier.stderr()
                    );
                }
            }
            let through = round % self.writers.len();
            let sent = Instant::now();
            let entry = runtime
                .block_on(self.writers[through].revoke(
                    &auth,
                    RevocationKind::Task,
                    &task.name,
                    "benchmark",
                ))
                .unwrap_or_else(|e| panic!("round {round}: revoking {}: {e}", task.name));
            let acknowledged = Instant::now();
            for poller in &pollers {
                poller.send(Job::Deny {
                    body: task.body.clone(),
                    revoked: format!("revoked: task {}", task.name),
                    since: acknowledged,
                });
            }
            for (n, poller) in pollers.iter().enumerate() {
                let latency = poller.answer().unwrap_or_else(|problem| {
                    panic!(
                        "round {round} (seq {}): {problem}; verifier log:\n{}",
                        entry.seq,
                        self.verifiers[n].stderr()
                    )
                });
                samples.push(Sample {
                    latency,
                    same_replica: self.follows[n] == through,
                });
            }
            writes.push(acknowledged - sent);
        }
        self.check_still_spread(&runtime);
        Measured { samples, writes }
    }

    /// Warns when a verifier moved to another replica during the rounds (a replica
    /// silent for half the staleness bound): the split by replica would be off then.
    fn check_still_spread(&self, runtime: &tokio::runtime::Runtime) {
        for (n, writer) in self.writers.iter().enumerate() {
            let expected = self.follows.iter().filter(|&&f| f == n).count();
            match runtime.block_on(writer.status(None)) {
                Ok(status) if status.subscribers == expected => {}
                Ok(status) => eprintln!(
                    "warning: replica {n} streams to {} verifiers, not {expected}: \
                     the split by replica is approximate",
                    status.subscribers
                ),
                Err(e) => eprintln!("warning: replica {n} status: {e}"),
            }
        }
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        // Verifiers first, so none reconnects to a replica that is going away.
        self.verifiers.clear();
        self.replicas.clear();
    }
}

/// The operator's keyed mandate (`registry:revoke`, `registry:read`).
fn operator_auth(world: &Replicas) -> RegistryAuth {
    let key = SecretKey::read(Path::new(world.ops.key_file())).unwrap();
    RegistryAuth::keyed(world.ops.token.clone(), key).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// What a poller is asked to do.
enum Job {
    /// Answer `Ok` when the verifier allows `body` now.
    Allow(String),
    /// Ask with `body` until the verifier denies with a reason containing `revoked`;
    /// answer the time from `since` to that deny.
    Deny {
        body: String,
        revoked: String,
        since: Instant,
    },
}

/// A thread asking one verifier over one kept-alive connection.
struct Poller {
    jobs: mpsc::Sender<Job>,
    answers: mpsc::Receiver<Result<Duration, String>>,
}

impl Poller {
    fn spawn(verifier: &str, every: Duration) -> Poller {
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (answer_tx, answers) = mpsc::channel();
        let url = format!("{verifier}/v1/authorize");
        thread::spawn(move || {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(5))
                .build();
            for job in job_rx {
                let answer = match job {
                    Job::Allow(body) => match authorize(&agent, &url, &body) {
                        (200, _) => Ok(Duration::ZERO),
                        (status, reason) => Err(format!(
                            "expected the unrevoked task to be allowed, got {status}: {reason}"
                        )),
                    },
                    Job::Deny {
                        body,
                        revoked,
                        since,
                    } => wait_for_deny(&agent, &url, &body, &revoked, since, every),
                };
                if answer_tx.send(answer).is_err() {
                    return;
                }
            }
        });
        Poller { jobs, answers }
    }

    fn send(&self, job: Job) {
        self.jobs.send(job).expect("the poller is running");
    }

    fn answer(&self) -> Result<Duration, String> {
        self.answers.recv().expect("the poller answers")
    }

    fn ask(&self, job: Job) -> Result<Duration, String> {
        self.send(job);
        self.answer()
    }
}

/// Asks every `every` until the answer is a deny whose reason contains `revoked`.
fn wait_for_deny(
    agent: &ureq::Agent,
    url: &str,
    body: &str,
    revoked: &str,
    since: Instant,
    every: Duration,
) -> Result<Duration, String> {
    loop {
        let (status, reason) = authorize(agent, url, body);
        let answered = since.elapsed();
        match status {
            403 if reason.contains(revoked) => return Ok(answered),
            200 if answered < GIVE_UP => thread::sleep(every),
            200 => return Err(format!("still allowed {answered:?} after the revocation")),
            _ => {
                return Err(format!(
                    "expected allow or a revoked deny, got {status}: {reason}"
                ))
            }
        }
    }
}

/// `POST /v1/authorize`: the status and the decision's reason.
fn authorize(agent: &ureq::Agent, url: &str, body: &str) -> (u16, String) {
    let response = match agent
        .post(url)
        .set("Content-Type", "application/json")
        .send_string(body)
    {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(e) => return (0, e.to_string()),
    };
    let status = response.status();
    let text = response.into_string().unwrap_or_default();
    let reason = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|json| json["reason"].as_str().map(str::to_owned))
        .unwrap_or(text);
    (status, reason)
}

fn latencies(measured: &Measured, keep: impl Fn(&Sample) -> bool) -> Vec<Duration> {
    measured
        .samples
        .iter()
        .filter(|s| keep(s))
        .map(|s| s.latency)
        .collect()
}

/// One table row: p50, p90, p99 and max in milliseconds (nearest rank).
fn report(what: &str, samples: &[Duration]) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = |p: f64| {
        let n = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
        sorted
            .get(n - 1)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "| {what} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
        sorted.len(),
        rank(0.50),
        rank(0.90),
        rank(0.99),
        sorted.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
    );
}
