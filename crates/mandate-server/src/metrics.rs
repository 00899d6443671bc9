//! Prometheus metrics, through the `metrics` facade.
//!
//! The libraries record what they decide (`mandate_decisions_total` by API,
//! outcome and reason kind, `mandate_decision_seconds`); this module installs
//! the process's recorder, times every HTTP request by route and status, and
//! sets the state gauges (revocation sequence and staleness, stream
//! subscribers, pool saturation) and the token cache counters
//! (`mandate_token_cache_{hits,misses}_total` by cache) when `/metrics` is
//! scraped. Metrics are per process: several servers in one
//! process share them, as Prometheus expects of one target.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use mandate_registry::SharedIndex;
use mandate_verifier::pool::EvalPool;
use mandate_verifier::Verifier;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds: 50 µs to 5 s.
const BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's recorder (once; later calls do nothing). When
/// another recorder is already installed, `/metrics` renders nothing and a
/// warning says why.
pub fn install() {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), BUCKETS)
            .map(PrometheusBuilder::build_recorder);
        let recorder = match recorder {
            Ok(recorder) => recorder,
            Err(error) => {
                tracing::warn!(%error, "metrics disabled");
                return None;
            }
        };
        let handle = recorder.handle();
        match metrics::set_global_recorder(recorder) {
            Ok(()) => {
                spawn_upkeep(handle.clone());
                Some(handle)
            }
            Err(error) => {
                tracing::warn!(%error, "another metrics recorder is installed; /metrics is empty");
                None
            }
        }
    });
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Folds histogram samples into their buckets every [`UPKEEP_EVERY`], for the
/// life of the process. The recorder keeps every recorded sample until
/// upkeep runs, and `build_recorder` schedules none: without this, a server
/// nobody scraped grew by the size of two samples per request (about 1 MB/s
/// at 23 000 req/s in the load soak), without bound.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("mandate-metrics-upkeep".to_owned())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_EVERY);
            handle.run_upkeep();
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "metrics upkeep not started; histograms drain only when /metrics is scraped");
    }
}

/// The current metrics in the Prometheus text format.
pub fn render() -> String {
    match HANDLE.get() {
        Some(Some(handle)) => {
            handle.run_upkeep();
            handle.render()
        }
        _ => String::new(),
    }
}

/// Sets the gauges that describe state rather than events.
pub fn observe_state(
    index: &SharedIndex,
    pool: &EvalPool,
    subscribers: Option<usize>,
    authorize: bool,
) {
    // Gauges hold f64; these counts are far below 2^53.
    #[allow(clippy::cast_precision_loss)]
    {
        metrics::gauge!("mandate_revocation_seq").set(index.last_seq() as f64);
        if authorize {
            let staleness = index
                .last_heartbeat()
                .map_or(f64::INFINITY, |at| at.elapsed().as_secs_f64());
            metrics::gauge!("mandate_revocation_staleness_seconds").set(staleness);
            metrics::gauge!("mandate_revocation_staleness_bound_seconds")
                .set(index.staleness_bound().as_secs_f64());
        }
        if let Some(count) = subscribers {
            metrics::gauge!("mandate_stream_subscribers").set(count as f64);
        }
        metrics::gauge!("mandate_eval_pool_workers").set(pool.workers() as f64);
        metrics::gauge!("mandate_eval_pool_running").set(pool.running() as f64);
        metrics::gauge!("mandate_eval_pool_admitted").set(pool.admitted() as f64);
        metrics::gauge!("mandate_eval_pool_capacity").set((pool.workers() + pool.queue()) as f64);
    }
}

/// Sets the token cache counters from `verifier`'s own counts (kept as
/// atomics in the verifier, which records no metrics itself): hits and
/// misses of the cache of verified tokens (`cache="verified"`: a miss checks
/// signatures) and of token claims, chain and shape (`cache="token"`).
pub fn observe_caches(verifier: &Verifier) {
    let (verified, tokens) = verifier.cache_counts();
    for (cache, counts) in [("verified", verified), ("token", tokens)] {
        metrics::counter!("mandate_token_cache_hits_total", "cache" => cache).absolute(counts.hits);
        metrics::counter!("mandate_token_cache_misses_total", "cache" => cache)
            .absolute(counts.misses);
    }
}

/// Sets `mandate_registry_replica_in_use{replica}` (1 for the replica in
/// use with its stream open, 0 for the others) and
/// `mandate_registry_failovers_total`. Replica URLs never carry
/// credentials (the registry client refuses them), and their number is
/// bounded, so they are safe as labels.
pub fn observe_replicas(report: &mandate_registry::ReplicaReport) {
    for (position, replica) in report.replicas.iter().enumerate() {
        let in_use = position == report.position && report.connected;
        metrics::gauge!("mandate_registry_replica_in_use", "replica" => replica.clone())
            .set(if in_use { 1.0 } else { 0.0 });
    }
    metrics::counter!("mandate_registry_failovers_total").absolute(report.failovers);
}

/// Counts and times every request by route template (never the raw path: a
/// client must not be able to create series) and status.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("mandate_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("mandate_http_request_seconds", "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}
