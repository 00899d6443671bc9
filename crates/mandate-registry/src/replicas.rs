//! Several replicas of one registry, and which of them a subscription follows.
//!
//! Registry replicas that share one store (one log: the same epoch, the same sequence
//! numbers) are interchangeable for a verifier. A [`ReplicaSet`] subscription follows
//! one of them at a time; when that stream fails, ends, or carries no event for the
//! subscription's idle timeout, it moves to the next replica in order (round robin) and
//! resumes after the index's last applied seq. Nothing about the index changes on the
//! way: the same epoch check runs on every connection, so a replica that serves another
//! log resets the index exactly as a restarted registry would, and the staleness bound
//! still denies every call once no replica has confirmed the index within it.
//!
//! The rotation waits between attempts: a jittered delay that starts at the minimum
//! backoff after a connection that carried events, and doubles after every full round
//! of replicas that carried none, up to the maximum. So losing one replica costs one
//! short delay, and all replicas down costs one attempt per replica per backoff, never a
//! busy loop.
//!
//! [`ReplicaStatus`] says which replica is in use, for readiness, metrics and logs. It
//! names replicas by their URL, which never carries credentials
//! ([`crate::RegistryClient::new`] refuses a URL with a user or password).
//!
//! This module must never mark an index fresh itself (only a heartbeat from a replica
//! does), nor pick a replica by anything an HTTP client sends.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::client::RegistryClient;
use crate::error::{Error, Result};

/// The most replicas one subscription follows: a bound on the rotation and on the
/// metric series it reports.
pub const MAX_REPLICAS: usize = 16;

/// The shortest wait between two connection attempts, whatever the options say, so a
/// zero backoff cannot spin.
const MIN_DELAY: Duration = Duration::from_millis(10);

/// Replicas of one registry (one shared log), in the order they are tried.
#[derive(Debug, Clone)]
pub struct ReplicaSet {
    clients: Vec<RegistryClient>,
}

impl ReplicaSet {
    /// The replicas `clients`, tried in this order.
    ///
    /// # Errors
    /// [`Error::Replicas`] when `clients` is empty, longer than [`MAX_REPLICAS`], or
    /// names one URL twice.
    pub fn new(clients: Vec<RegistryClient>) -> Result<Self> {
        if clients.is_empty() {
            return Err(Error::Replicas {
                problem: "no registry URL given".to_owned(),
            });
        }
        if clients.len() > MAX_REPLICAS {
            return Err(Error::Replicas {
                problem: format!(
                    "{} registry URLs, over the limit of {MAX_REPLICAS}",
                    clients.len()
                ),
            });
        }
        for (i, client) in clients.iter().enumerate() {
            if clients[..i]
                .iter()
                .any(|seen| seen.base_url() == client.base_url())
            {
                return Err(Error::Replicas {
                    problem: format!("{} is given twice", client.base_url()),
                });
            }
        }
        Ok(Self { clients })
    }

    /// The replicas, in order.
    pub fn clients(&self) -> &[RegistryClient] {
        &self.clients
    }
}

impl From<RegistryClient> for ReplicaSet {
    fn from(client: RegistryClient) -> Self {
        Self {
            clients: vec![client],
        }
    }
}

/// Which replica a subscription uses; cheap to clone, shared with the subscription.
#[derive(Debug, Clone)]
pub struct ReplicaStatus {
    inner: Arc<Mutex<StatusInner>>,
}

#[derive(Debug)]
struct StatusInner {
    replicas: Vec<String>,
    position: usize,
    connected: bool,
    failovers: u64,
}

/// A snapshot of a [`ReplicaStatus`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaReport {
    /// Every replica's URL, in rotation order.
    pub replicas: Vec<String>,
    /// The replica in use or being tried: an index into `replicas`.
    pub position: usize,
    /// Whether its stream is open (its `hello` arrived and it has not failed since).
    pub connected: bool,
    /// How often the subscription has moved from one replica to another.
    pub failovers: u64,
}

impl ReplicaReport {
    /// The URL of the replica in use or being tried.
    pub fn in_use(&self) -> &str {
        self.replicas.get(self.position).map_or("", String::as_str)
    }
}

impl ReplicaStatus {
    pub(crate) fn new(replicas: impl IntoIterator<Item = String>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(StatusInner {
                replicas: replicas.into_iter().collect(),
                position: 0,
                connected: false,
                failovers: 0,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StatusInner> {
        // Every update below is a single assignment: a panic cannot leave it half-done.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the subscription is doing now.
    pub fn report(&self) -> ReplicaReport {
        let inner = self.lock();
        ReplicaReport {
            replicas: inner.replicas.clone(),
            position: inner.position,
            connected: inner.connected,
            failovers: inner.failovers,
        }
    }

    pub(crate) fn set_connected(&self, connected: bool) {
        self.lock().connected = connected;
    }

    /// Moves to `position`, counting a failover when it is another replica.
    fn move_to(&self, position: usize) {
        let mut inner = self.lock();
        if inner.position != position {
            inner.failovers = inner.failovers.saturating_add(1);
        }
        inner.position = position;
        inner.connected = false;
    }
}

/// The rotation: which replica to try next and how long to wait first.
#[derive(Debug)]
pub(crate) struct Rotation {
    len: usize,
    position: usize,
    backoff: Duration,
    min_backoff: Duration,
    max_backoff: Duration,
    /// Attempts in a row that carried no event.
    fruitless: usize,
}

impl Rotation {
    /// A rotation over `len` replicas, waiting `min_backoff` to `max_backoff`
    /// (doubling after each fruitless round) between attempts.
    pub(crate) fn new(len: usize, min_backoff: Duration, max_backoff: Duration) -> Self {
        let min_backoff = min_backoff.max(MIN_DELAY);
        Self {
            len: len.max(1),
            position: 0,
            backoff: min_backoff,
            min_backoff,
            max_backoff: max_backoff.max(min_backoff),
            fruitless: 0,
        }
    }

    /// The replica to use now.
    pub(crate) fn position(&self) -> usize {
        self.position
    }

    /// Records how the attempt on the current replica went (`received`: it carried at
    /// least one event), moves to the next replica, and returns how long to wait before
    /// trying it.
    pub(crate) fn advance(&mut self, received: bool, status: &ReplicaStatus) -> Duration {
        if received {
            self.fruitless = 0;
            self.backoff = self.min_backoff;
        } else {
            self.fruitless = self.fruitless.saturating_add(1);
            if self.fruitless % self.len == 0 {
                // A whole round without an event: every replica is down or refusing.
                self.backoff = self.backoff.saturating_mul(2).min(self.max_backoff);
            }
        }
        self.position = (self.position + 1) % self.len;
        status.move_to(self.position);
        jitter(self.backoff)
    }
}

/// A delay between half and all of `base`, so verifiers that lost the same registry do
/// not all reconnect in the same instant.
fn jitter(base: Duration) -> Duration {
    let random = uuid::Uuid::new_v4().as_u64_pair().0;
    let fraction = 0.5 + (random % 1000) as f64 / 2000.0;
    base.mul_f64(fraction).max(MIN_DELAY / 2)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.

    use super::*;

    fn rotation(len: usize, min: u64, max: u64) -> Rotation {
        Rotation::new(len, Duration::from_millis(min), Duration::from_millis(max))
    }

    fn status(n: usize) -> ReplicaStatus {
        ReplicaStatus::new((0..n).map(|i| format!("http://r{i}")))
    }

    #[test]
    fn the_rotation_goes_round_robin_and_counts_moves() {
        let status = status(3);
        let mut rotation = rotation(3, 100, 1000);
        let mut seen = vec![rotation.position()];
        for _ in 0..4 {
            rotation.advance(true, &status);
            seen.push(rotation.position());
        }
        assert_eq!(seen, [0, 1, 2, 0, 1]);
        let report = status.report();
        assert_eq!((report.position, report.failovers), (1, 4));
        assert_eq!(report.in_use(), "http://r1");
    }

    #[test]
    fn the_backoff_doubles_per_fruitless_round_and_resets_on_events() {
        let status = status(2);
        let mut rotation = rotation(2, 100, 1000);
        let within = |d: Duration, base: u64| {
            d >= Duration::from_millis(base / 2) && d <= Duration::from_millis(base)
        };
        // First replica fails: the next one is tried after the minimum backoff.
        assert!(within(rotation.advance(false, &status), 100));
        // The whole round failed: the wait doubles, and keeps doubling per round.
        assert!(within(rotation.advance(false, &status), 200));
        assert!(within(rotation.advance(false, &status), 200));
        assert!(within(rotation.advance(false, &status), 400));
        for _ in 0..10 {
            rotation.advance(false, &status);
        }
        assert!(within(rotation.advance(false, &status), 1000), "capped");
        // A connection that carried events: back to the minimum.
        assert!(within(rotation.advance(true, &status), 100));
    }

    #[test]
    fn a_zero_backoff_still_waits() {
        let status = status(1);
        let mut rotation = rotation(1, 0, 0);
        for _ in 0..5 {
            assert!(rotation.advance(false, &status) >= MIN_DELAY / 2);
        }
        // One replica: moving "on" stays on it, and is no failover.
        assert_eq!(status.report().failovers, 0);
    }

    #[test]
    fn a_replica_set_is_bounded_and_names_each_replica_once() {
        let client = |url: &str| RegistryClient::new(url).unwrap();
        assert!(matches!(
            ReplicaSet::new(Vec::new()),
            Err(Error::Replicas { .. })
        ));
        let twice = ReplicaSet::new(vec![client("http://a:1"), client("http://a:1/")]);
        assert!(matches!(twice, Err(Error::Replicas { problem }) if problem.contains("twice")));
        let many = (0..=MAX_REPLICAS)
            .map(|i| client(&format!("http://r{i}:1")))
            .collect();
        assert!(matches!(ReplicaSet::new(many), Err(Error::Replicas { .. })));
        let set = ReplicaSet::new(vec![client("http://a:1"), client("http://b:1")]).unwrap();
        assert_eq!(set.clients().len(), 2);
    }
}
