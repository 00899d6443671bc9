//! Scenario 5, kill switch mid-task: while bob's three agents from scenario 2
//! keep calling the datasets service (three replicas, each subscribed to a
//! revocation registry over HTTP on 127.0.0.1) and a long export is in
//! flight, an operator revokes bob through the registry's API with a keyed
//! mandate granting `registry:revoke`, its proof bound to that one write; the
//! replicas read the registry's stream with a mandate granting `registry:read`.
//! Every agent's next call, and the export at
//! its next chunk, is denied with the revocation as the reason. Every
//! decision of the replicas and the revocation itself are recorded in one
//! audit store, and the trail is printed read back from it: the calls
//! allowed, the revocation, then each agent's denial.
//!
//! The delay from sending the revocation to each denial is measured and
//! printed; the program fails when one exceeds [`BOUND`] on the machine it
//! runs on. [`run`] itself checks order and outcome only (what happened, and
//! after what), which no load on the machine can change.
//!
//! `cargo run -p mandate-cli --example kill_switch`

// Scenario 2's chain, and with it the scaffolding every scenario shares.
#[allow(dead_code)] // reason: scenario 2's own `run` and `main` are not used here.
#[path = "quarterly_analytics.rs"]
mod quarterly_analytics;

use std::path::Path;
use std::sync::{mpsc, Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context as _, Result};
use mandate_audit::{Event, Outcome as Decided, ReasonRecord, RegistryAction};
use mandate_core::Restrictions;
use mandate_registry::{
    serve, MandateWriteAuthorizer, RegistryAuth, RegistryClient, RegistryConfig, RegistryState,
    RevocationEntry, RevocationKind, RevocationStore, SharedIndex, SledStore, SubscribeOptions,
    Subscription,
};
use mandate_server::audit::AuditedStore;
use mandate_verifier::{Decision, Policy, Reason, RevocationDenial, Verifier};
use quarterly_analytics::common::{Agent, AuditTrail, Issuer, Service, StoredTrail};
use quarterly_analytics::BobsChain;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The propagation bound the program holds itself to, from the operator
/// sending the revocation to each agent's denial; the measured delays are
/// printed.
pub const BOUND: Duration = Duration::from_secs(2);
/// The registry's heartbeat interval here.
const HEARTBEAT: Duration = Duration::from_millis(100);
/// A replica that has not heard from the registry for this long denies
/// everything (fail closed).
const STALENESS: Duration = Duration::from_secs(3);
/// Pause between two calls of one agent, and between two export chunks.
const PACE: Duration = Duration::from_millis(10);
/// No wait in this scenario lasts longer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The operator's reason, which every denial must carry.
pub const REASON: &str = "kill switch: bob's session was compromised";

/// One agent's calls until the revocation stopped it.
pub struct AgentRun {
    /// Its first call, allowed.
    pub first_allowed: Decision,
    /// How many calls were allowed before the revocation reached it.
    pub allowed: usize,
    /// Its first denied call.
    pub denied: Decision,
    /// From the operator sending the revocation to that denial.
    pub denied_after: Duration,
}

/// The long export that was in flight when the operator revoked bob.
pub struct InFlight {
    /// The export's call, allowed at its start.
    pub started: Decision,
    /// Chunks streamed before the revocation stopped it.
    pub chunks: usize,
    /// Why it stopped.
    pub stopped: RevocationDenial,
    /// From the operator sending the revocation to the stop.
    pub stopped_after: Duration,
}

/// What the scenario observed.
pub struct Outcome {
    /// The registry's entry for the revocation.
    pub revocation: RevocationEntry,
    /// orchestrator, analytics-agent and charting-agent, in that order.
    pub agents: Vec<AgentRun>,
    /// The export.
    pub in_flight: InFlight,
    /// The slowest of all the denials above.
    pub slowest: Duration,
    /// Every decision of the replicas and the revocation, read back from
    /// the audit store they were recorded in.
    pub trail: StoredTrail,
}

/// What happened between starting the registry and stopping it.
struct Observed {
    revocation: RevocationEntry,
    agents: Vec<AgentRun>,
    in_flight: InFlight,
    slowest: Duration,
}

/// The resources each agent keeps calling, and the export's.
const RESOURCES: [&str; 3] = [
    "/datasets/q3/revenue",
    "/datasets/q3/costs",
    "/datasets/q3/revenue/emea",
];
const EXPORT: &str = "/datasets/q3/revenue/export";

/// Runs the scenario, printing what happens and the trail read back from
/// the audit store; fails unless every agent and the export were stopped by
/// the revocation, after it was sent, and the trail shows it in that order.
/// Every thread, subscription and server it starts has stopped when it
/// returns.
pub fn run() -> Result<Outcome> {
    println!("Scenario 5: the kill switch, pulled while bob's agents are at work\n");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let folder = tempfile::tempdir()?;
    let issuer = Issuer::generate();
    let trail = AuditTrail::open()?;
    let registry = Registry::start(&runtime, folder.path(), &issuer, &trail)?;
    println!(
        "1. the revocation registry listens on {} (sled log in {}),",
        registry.url,
        folder.path().display()
    );
    println!(
        "   heartbeat every {HEARTBEAT:?}; replicas deny everything after {STALENESS:?} of silence\n"
    );
    let observed = drive(&runtime, &registry.url, &issuer, &trail);
    let stopped = registry.stop(&runtime);
    runtime.shutdown_timeout(TIMEOUT);
    let observed = observed?;
    stopped?;
    println!();
    let trail = trail.read_back("6. the trail, read back from the audit store")?;
    let outcome = Outcome {
        revocation: observed.revocation,
        agents: observed.agents,
        in_flight: observed.in_flight,
        slowest: observed.slowest,
        trail,
    };
    check_trail(&outcome)?;
    println!(
        "\nScenario 5 held: every agent and the export were stopped by the revocation, the slowest\n\
         after {} ms; the trail shows the calls allowed, the revocation, then each denial.",
        outcome.slowest.as_millis()
    );
    Ok(outcome)
}

/// Everything between starting the registry and stopping it.
fn drive(runtime: &Runtime, url: &str, issuer: &Issuer, trail: &AuditTrail) -> Result<Observed> {
    // The replicas read the registry with their own keyed read mandate; each
    // request carries a fresh proof bound to it.
    let replica = Agent::new("datasets-replicas");
    let read_token = issuer.mint(
        "datasets-service",
        &replica,
        "revocation-feed",
        &["registry:read"],
        Restrictions::default(),
    )?;
    let client = RegistryClient::new(url)?
        .with_auth(RegistryAuth::keyed(read_token, replica.into_secret_key())?);
    let chain = quarterly_analytics::delegate_chain(issuer)?;
    let operator = Agent::new("operator");
    let ops_token = issuer.mint(
        "ops-team",
        &operator,
        "incident-117",
        &["registry:revoke"],
        Restrictions::default(),
    )?;
    let operator = RegistryAuth::keyed(ops_token, operator.into_secret_key())?;

    // One replica of the datasets service per agent, each with its own
    // index kept current by its own subscription to the registry.
    let mut replicas = Vec::new();
    let mut indexes = Vec::new();
    let mut subscriptions: Vec<Subscription> = Vec::new();
    for _ in 0..3 {
        let index = SharedIndex::new(STALENESS);
        subscriptions.push(subscribe(runtime, &client, index.clone()));
        replicas.push(Service::new(
            "datasets",
            issuer.trusted_keys(),
            Policy::default_policy(),
            index.clone(),
            trail,
        )?);
        indexes.push(index);
    }
    wait_until("every replica to hear from the registry", || {
        indexes
            .iter()
            .all(|index| index.freshness(Instant::now()).is_ok())
    })?;
    println!("2. three replicas of the datasets service subscribed; bob's agents start calling,");
    println!("   one replica each, every {PACE:?}, and charting-agent starts a long export\n");

    // When the operator sent the revocation; every delay is measured from it.
    let sent: OnceLock<Instant> = OnceLock::new();
    let sent = &sent;
    let deadline = Instant::now() + TIMEOUT;
    let (chain, replicas) = (&chain, &replicas);
    let observed = thread::scope(|scope| -> Result<Observed> {
        let (ready, started) = mpsc::channel::<()>();
        let work = agents_at_work(chain);
        let loops: Vec<_> = work
            .into_iter()
            .zip(replicas)
            .map(|((agent, token, resource), replica)| {
                let ready = ready.clone();
                scope.spawn(move || {
                    keep_calling(agent, token, resource, replica, &ready, sent, deadline)
                })
            })
            .collect();
        let (charting, replica) = (&chain.charting, &replicas[2]);
        let export = scope.spawn(move || {
            long_export(
                charting,
                &chain.charting_token,
                replica,
                &ready,
                sent,
                deadline,
            )
        });
        // All four must have had a call allowed before the kill switch.
        for _ in 0..=loops.len() {
            started
                .recv_timeout(TIMEOUT)
                .context("an agent never got a call through")?;
        }

        let now = Instant::now();
        let _ = sent.set(now);
        let revocation = runtime.block_on(revoke(&client, &operator))?;
        let acknowledged = now.elapsed();

        let agents = loops
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .map_err(|_| anyhow!("an agent's thread panicked"))?
            })
            .collect::<Result<Vec<_>>>()?;
        let in_flight = export
            .join()
            .map_err(|_| anyhow!("the export's thread panicked"))??;
        report(&revocation, acknowledged, &agents, &in_flight);
        let slowest = agents
            .iter()
            .map(|run| run.denied_after)
            .chain([in_flight.stopped_after])
            .max()
            .unwrap_or_default();
        Ok(Observed {
            revocation,
            agents,
            in_flight,
            slowest,
        })
    })?;
    // Acknowledgements travel after the entries they acknowledge: give them
    // a moment (bounded) before reading the registry's count.
    let seq = observed.revocation.seq;
    let status = runtime.block_on(async {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let status = client.status(Some(seq)).await?;
            if status.applied_by >= status.subscribers || tokio::time::Instant::now() > deadline {
                return anyhow::Ok(status);
            }
            tokio::time::sleep(PACE).await;
        }
    })?;
    println!(
        "   the registry counts revocation #{} applied by {} of {} subscribed replicas",
        observed.revocation.seq, status.applied_by, status.subscribers
    );
    drop(subscriptions);

    check(&observed)?;
    Ok(observed)
}

/// Which agent calls what with which token: scenario 2's three agents,
/// each inside its own scope.
fn agents_at_work(chain: &BobsChain) -> [(&Agent, &str, &str); 3] {
    [
        (&chain.orchestrator, &chain.orchestrator_token, RESOURCES[0]),
        (&chain.analytics, &chain.analytics_token, RESOURCES[1]),
        (&chain.charting, &chain.charting_token, RESOURCES[2]),
    ]
}

/// One agent's loop: calls until denied. Signals `ready` after its first
/// allowed call. A denial before the revocation was sent fails the scenario.
fn keep_calling(
    agent: &Agent,
    token: &str,
    resource: &str,
    replica: &Service,
    ready: &mpsc::Sender<()>,
    sent: &OnceLock<Instant>,
    deadline: Instant,
) -> Result<AgentRun> {
    let mut first_allowed = None;
    let mut allowed = 0;
    while Instant::now() < deadline {
        let decision = replica.call(agent, token, "read", resource, &[])?;
        let at = Instant::now();
        if decision.allowed {
            allowed += 1;
            if first_allowed.is_none() {
                first_allowed = Some(decision);
                let _ = ready.send(());
            }
            thread::sleep(PACE);
            continue;
        }
        let (Some(first_allowed), Some(sent)) = (first_allowed, sent.get()) else {
            bail!(
                "{} was denied before the revocation: {}",
                agent.name,
                decision.reason
            );
        };
        return Ok(AgentRun {
            first_allowed,
            allowed,
            denied: decision,
            denied_after: at.saturating_duration_since(*sent),
        });
    }
    bail!("{} was still allowed after {TIMEOUT:?}", agent.name)
}

/// A long call in flight: allowed at its start, then streamed in chunks; the
/// service re-checks revocation before each chunk (`Verifier::revalidate`),
/// as a service must before committing the effects of a long call.
fn long_export(
    agent: &Agent,
    token: &str,
    replica: &Service,
    ready: &mpsc::Sender<()>,
    sent: &OnceLock<Instant>,
    deadline: Instant,
) -> Result<InFlight> {
    let started = replica.call(agent, token, "read", EXPORT, &[])?;
    ensure!(
        started.allowed,
        "the export was refused at its start: {}",
        started.reason
    );
    let mandate = replica.verifier().verify(token)?;
    let _ = ready.send(());
    let mut chunks = 0;
    while Instant::now() < deadline {
        thread::sleep(PACE);
        match replica.verifier().revalidate(&mandate) {
            Ok(()) => chunks += 1,
            Err(stopped) => {
                let at = Instant::now();
                let Some(sent) = sent.get() else {
                    bail!("the export was stopped before the revocation: {stopped}");
                };
                return Ok(InFlight {
                    started,
                    chunks,
                    stopped,
                    stopped_after: at.saturating_duration_since(*sent),
                });
            }
        }
    }
    bail!("the export was still running after {TIMEOUT:?}")
}

/// The operator's call: revoke principal bob through the registry's HTTP
/// API, with the ops mandate; the client signs the operator's proof of
/// possession over this write's method, path and body.
async fn revoke(client: &RegistryClient, operator: &RegistryAuth) -> Result<RevocationEntry> {
    Ok(client
        .revoke(operator, RevocationKind::Principal, "bob", REASON)
        .await?)
}

fn report(
    revocation: &RevocationEntry,
    acknowledged: Duration,
    agents: &[AgentRun],
    in_flight: &InFlight,
) {
    println!(
        "3. the operator revokes principal bob over HTTP: revocation #{} by {},",
        revocation.seq, revocation.revoked_by
    );
    println!(
        "   durable and acknowledged after {} ms\n",
        acknowledged.as_millis()
    );
    println!("4. each agent's calls, until the revocation reached its replica:");
    for run in agents {
        println!(
            "   {}: {} call(s) allowed, then denied {} ms after the revocation was sent: {}",
            run.denied.agent,
            run.allowed,
            run.denied_after.as_millis(),
            run.denied.reason
        );
    }
    println!(
        "\n5. the export, in flight, stopped before chunk {}: {} ({} ms after the revocation was sent)",
        in_flight.chunks + 1,
        in_flight.stopped,
        in_flight.stopped_after.as_millis()
    );
}

/// The scenario's expectations: who was stopped, and by what. When is
/// [`within_bound`]'s question.
fn check(outcome: &Observed) -> Result<()> {
    let entry = &outcome.revocation;
    ensure!(
        entry.kind == RevocationKind::Principal
            && entry.value == "bob"
            && entry.revoked_by.contains("operator"),
        "unexpected revocation entry {entry:?}"
    );
    let expected = format!(
        "revoked: principal bob (revocation #{}: {REASON})",
        entry.seq
    );
    for run in &outcome.agents {
        let denied = &run.denied;
        ensure!(
            matches!(&denied.reason, Reason::Revoked { denial } if denial.to_string() == expected),
            "{} was denied for another reason: {}",
            denied.agent,
            denied.reason
        );
    }
    let stopped = &outcome.in_flight.stopped;
    ensure!(
        stopped.to_string() == expected,
        "the export stopped for another reason: {stopped}"
    );
    Ok(())
}

/// The trail's expectations, in the order the store holds its records: each
/// agent's calls allowed until its one denial; the registry's record of the
/// revocation; every denial after it, naming it. (An allowed call decided
/// just before the revocation reached a replica may be recorded after the
/// revocation's record: order is checked per agent, and for the denials.)
fn check_trail(outcome: &Outcome) -> Result<()> {
    let records = &outcome.trail.records;
    let revoked_at = records
        .iter()
        .position(|record| match &record.event {
            Event::Registry(r) => {
                r.action == RegistryAction::Revoke
                    && r.revocation == outcome.revocation.seq
                    && r.kind == "principal"
                    && r.value == "bob"
                    && r.by == outcome.revocation.revoked_by
            }
            _ => false,
        })
        .context("the trail does not record the revocation")?;
    let decisions: Vec<(usize, &mandate_audit::DecisionRecord)> = records
        .iter()
        .enumerate()
        .filter_map(|(at, record)| match &record.event {
            Event::Decision(d) => Some((at, d)),
            _ => None,
        })
        .collect();
    ensure!(
        decisions.len() + 1 == records.len(),
        "the trail holds records of other kinds"
    );
    for (run, resource) in outcome.agents.iter().zip(RESOURCES) {
        let calls: Vec<_> = decisions
            .iter()
            .filter(|(_, d)| d.agent == run.denied.agent && d.resource == resource)
            .collect();
        let (last, allowed) = calls
            .split_last()
            .with_context(|| format!("no record of {}'s calls", run.denied.agent))?;
        ensure!(
            allowed.len() == run.allowed
                && allowed.iter().all(|(_, d)| d.decision == Decided::Allow),
            "{} made {} allowed call(s), its records say otherwise",
            run.denied.agent,
            run.allowed
        );
        let (at, denied) = last;
        ensure!(
            *at > revoked_at
                && denied.decision == Decided::Deny
                && matches!(&denied.reason, ReasonRecord::Revoked { revocation, .. } if *revocation == outcome.revocation.seq),
            "{}'s last record is not its denial by the revocation, after it: {denied}",
            run.denied.agent
        );
    }
    let export: Vec<_> = decisions
        .iter()
        .filter(|(_, d)| d.resource == EXPORT)
        .collect();
    ensure!(
        matches!(export.as_slice(), [(at, d)] if *at < revoked_at && d.decision == Decided::Allow),
        "the export's start is not recorded once, allowed, before the revocation"
    );
    Ok(())
}

/// Fails unless every denial came within [`BOUND`] of sending the
/// revocation, on this machine, this time.
fn within_bound(outcome: &Outcome) -> Result<()> {
    ensure!(
        outcome.slowest <= BOUND,
        "the slowest denial came {} ms after the revocation was sent (bound {} ms)",
        outcome.slowest.as_millis(),
        BOUND.as_millis()
    );
    println!("All within the bound of {} ms.", BOUND.as_millis());
    Ok(())
}

/// A registry serving a sled log in `folder` on 127.0.0.1, port chosen by
/// the system, recording its revocations in the audit trail; writes need a keyed mandate granting `registry:revoke`, reads
/// one granting `registry:read`.
struct Registry {
    url: String,
    stop: oneshot::Sender<()>,
    server: JoinHandle<mandate_registry::Result<()>>,
}

impl Registry {
    fn start(
        runtime: &Runtime,
        folder: &Path,
        issuer: &Issuer,
        trail: &AuditTrail,
    ) -> Result<Registry> {
        // Every revocation is recorded in the audit trail once durable, as
        // `mandate serve --store --audit-store` records it.
        let store: Arc<dyn RevocationStore> =
            Arc::new(AuditedStore::new(SledStore::open(folder)?, trail.writer()));
        let writers =
            MandateWriteAuthorizer::new(Verifier::builder().root_keys(issuer.trusted_keys()))?;
        let config = RegistryConfig {
            heartbeat_interval: HEARTBEAT,
            shutdown_grace: Duration::from_secs(1),
            ..RegistryConfig::default()
        };
        let state = RegistryState::with_config(store, Arc::new(writers), config);
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0"))?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let server = runtime.spawn(serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Ok(Registry { url, stop, server })
    }

    /// Signals shutdown and waits, bounded, for the server to finish.
    fn stop(self, runtime: &Runtime) -> Result<()> {
        let _ = self.stop.send(());
        let served = runtime
            .block_on(async { tokio::time::timeout(TIMEOUT, self.server).await })
            .context("the registry did not stop in time")?
            .context("the registry's task failed")?;
        Ok(served?)
    }
}

/// Subscribes `index` to the registry; the subscription runs on `runtime`
/// until dropped.
fn subscribe(runtime: &Runtime, client: &RegistryClient, index: SharedIndex) -> Subscription {
    let _inside = runtime.enter();
    client.subscribe(
        index,
        SubscribeOptions {
            idle_timeout: Duration::from_secs(1),
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            send_acks: true,
        },
    )
}

/// Polls `condition` every [`PACE`] for at most [`TIMEOUT`].
fn wait_until(what: &str, condition: impl Fn() -> bool) -> Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        ensure!(
            Instant::now() < deadline,
            "timed out after {TIMEOUT:?} waiting for {what}"
        );
        thread::sleep(PACE);
    }
    Ok(())
}

fn main() -> Result<()> {
    within_bound(&run()?)
}
