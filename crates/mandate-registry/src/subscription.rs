//! Following a registry's revocation stream: a [`Subscription`] keeps a
//! [`SharedIndex`] current from one replica at a time ([`ReplicaSet`]).
//!
//! A [`Subscription`] streams entries from the index's `last_seq()`, applies them strictly
//! in order, refreshes the index's heartbeat on every heartbeat event and, once the
//! backlog has been applied, on every entry; it acknowledges what it applied,
//! and on any disconnect or error reconnects with jittered exponential backoff, resuming
//! from the index's `last_seq()` so nothing is skipped. It never marks the index fresh
//! without having applied everything the registry vouched for, so a broken subscription
//! turns into staleness (fail closed), never into a silently outdated index.
//!
//! Resuming "after seq N" is only sound against the log that N counts in. The index
//! records the epoch of the log it was built from ([`SharedIndex::epoch`]); when the
//! registry announces another epoch (it was restarted on a different, wiped or older
//! store), or refuses the resume point and reports another epoch, the subscription
//! [resets](SharedIndex::reset) the index, which is then never-synced (every check denied),
//! and rebuilds it from seq 0 before it can be marked fresh again. An index that holds
//! entries but no epoch is treated the same way.
//!
//! A subscription may follow several replicas of one registry ([`crate::ReplicaSet`]):
//! it streams from one at a time and moves to the next when the stream fails, ends, or
//! carries nothing for [`SubscribeOptions::idle_timeout`], resuming after the same
//! `last_seq()` under the same epoch rule (see `replicas.rs`). Opening a stream is bounded
//! by the same idle timeout, so a replica that accepts connections but never answers
//! holds the subscription no longer than one that went silent mid-stream.

use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use reqwest::header::ACCEPT;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{events, Heartbeat, Hello};
use crate::client::{check_epoch, check_status, RegistryClient, STREAM};
use crate::entry::RevocationEntry;
use crate::error::{report, Error, Result};
use crate::index::SharedIndex;
use crate::replicas::{ReplicaSet, ReplicaStatus, Rotation};

impl RegistryClient {
    /// Starts a background task that keeps `index` current; see the module docs.
    ///
    /// The task runs until the returned [`Subscription`] is dropped or aborted.
    ///
    /// # Panics
    /// When called outside a Tokio runtime (as `tokio::spawn` does).
    pub fn subscribe(&self, index: SharedIndex, options: SubscribeOptions) -> Subscription {
        ReplicaSet::from(self.clone()).subscribe(index, options)
    }
}

impl ReplicaSet {
    /// Starts a background task that keeps `index` current from one replica at a time,
    /// moving to the next when it stops hearing from the one in use (see the module
    /// docs). The task runs until the returned [`Subscription`] is dropped or aborted.
    ///
    /// # Panics
    /// When called outside a Tokio runtime (as `tokio::spawn` does).
    pub fn subscribe(&self, index: SharedIndex, options: SubscribeOptions) -> Subscription {
        let status = ReplicaStatus::new(self.clients().iter().map(|c| c.base_url().to_owned()));
        Subscription::spawn(self.clone(), index, options, status)
    }
}

/// Settings of a [`Subscription`].
#[derive(Debug, Clone)]
pub struct SubscribeOptions {
    /// Move to the next replica (or reconnect, with one) when no event (entry or
    /// heartbeat) arrives for this long, or when opening a stream takes this long. Must
    /// exceed the registry's heartbeat interval, and should be well under the index's
    /// staleness bound, so that another replica can confirm the index before it turns
    /// stale ([`SubscribeOptions::for_staleness`]).
    pub idle_timeout: Duration,
    /// First reconnect delay; doubles per failed attempt.
    pub min_backoff: Duration,
    /// Longest reconnect delay.
    pub max_backoff: Duration,
    /// Whether to acknowledge applied entries to the registry.
    pub send_acks: bool,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(5),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            send_acks: true,
        }
    }
}

impl SubscribeOptions {
    /// The defaults, with the idle timeout at half of `staleness_bound` (at least
    /// 50 ms): a replica that falls silent is left while the index is still fresh, and
    /// the next replica has the other half of the bound to confirm it. Choose the bound
    /// at least three times the registry's heartbeat interval, so that half of it still
    /// spans a heartbeat or more.
    pub fn for_staleness(staleness_bound: Duration) -> Self {
        Self {
            idle_timeout: (staleness_bound / 2).max(Duration::from_millis(50)),
            ..Self::default()
        }
    }
}

/// A running subscription. Dropping it stops the background task.
#[derive(Debug)]
pub struct Subscription {
    task: JoinHandle<()>,
    status: ReplicaStatus,
}

impl Subscription {
    pub(crate) fn spawn(
        replicas: ReplicaSet,
        index: SharedIndex,
        options: SubscribeOptions,
        status: ReplicaStatus,
    ) -> Self {
        let task_status = status.clone();
        Self {
            task: tokio::spawn(async move {
                run_subscription(replicas, index, options, task_status).await;
            }),
            status,
        }
    }

    /// Which replica the subscription follows, and whether its stream is open.
    pub fn status(&self) -> ReplicaStatus {
        self.status.clone()
    }

    /// Stops the background task.
    pub fn abort(&self) {
        self.task.abort();
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run_subscription(
    replicas: ReplicaSet,
    index: SharedIndex,
    options: SubscribeOptions,
    status: ReplicaStatus,
) {
    let clients = replicas.clients();
    let mut rotation = Rotation::new(clients.len(), options.min_backoff, options.max_backoff);
    loop {
        let Some(client) = clients.get(rotation.position()) else {
            // `Rotation` stays within `clients`, which a `ReplicaSet` keeps non-empty.
            return;
        };
        let mut received = false;
        let outcome = stream_once(client, &index, &options, &mut received, &status).await;
        status.set_connected(false);
        let wait = rotation.advance(received, &status);
        let next = clients
            .get(rotation.position())
            .map_or("", RegistryClient::base_url);
        match outcome {
            Ok(()) => tracing::info!(
                registry = %client.base_url(),
                next,
                "revocation stream ended; reconnecting"
            ),
            Err(error) => tracing::warn!(
                registry = %client.base_url(),
                next,
                last_seq = index.last_seq(),
                error = %report(&error),
                "revocation stream interrupted; reconnecting"
            ),
        }
        tokio::time::sleep(wait).await;
    }
}

/// One connection: returns `Ok` when the registry closed the stream, `Err` otherwise.
/// Sets `received` once any event arrived (used to reset the backoff).
async fn stream_once(
    client: &RegistryClient,
    index: &SharedIndex,
    options: &SubscribeOptions,
    received: &mut bool,
    status: &ReplicaStatus,
) -> Result<()> {
    // A replica that accepts the connection but never answers is as good as a silent
    // one: opening the stream gets the same bound as waiting for an event.
    let response = tokio::time::timeout(options.idle_timeout, open_stream(client, index))
        .await
        .map_err(|_| Error::StreamIdle {
            idle: options.idle_timeout,
        })??;
    tracing::info!(registry = %client.base_url(), after = index.last_seq(), "revocation stream connected");
    follow_stream(client, index, options, received, status, response).await
}

/// Sends the stream request after the index's `last_seq()`, handling a refused resume
/// point; returns the open response.
async fn open_stream(client: &RegistryClient, index: &SharedIndex) -> Result<reqwest::Response> {
    if index.epoch().is_none() && index.last_seq() > 0 {
        // Entries of an unidentified log: resuming from them could skip entries of the
        // registry's log, so start over.
        tracing::warn!(
            registry = %client.base_url(),
            discarded_seq = index.last_seq(),
            "index holds entries of an unknown log; discarding them and syncing from seq 0"
        );
        index.reset();
    }
    let after = index.last_seq();
    // A fresh proof per connection: each is accepted once.
    let response = client
        .read_request(STREAM)?
        .query(&[("after", after)])
        .header(ACCEPT, "text/event-stream")
        .send()
        .await
        .map_err(|e| Error::transport("opening the revocation stream", e))?;
    let response = match check_status(response).await {
        Ok(response) => response,
        Err(refused @ Error::Api { status: 409, .. }) => {
            // The registry's log is shorter than what the index holds. If it is another
            // log, start over; if it is the same log, it lost entries it had
            // acknowledged: stay stale (fail closed) rather than guess.
            let status = client.status(None).await?;
            check_epoch(&status.epoch)?;
            if index.epoch().as_deref() != Some(status.epoch.as_str()) {
                let changed = Error::LogChanged {
                    held: index.epoch(),
                    registry: status.epoch.clone(),
                };
                reset_for_new_log(client, index, &status.epoch);
                return Err(changed);
            }
            return Err(refused);
        }
        Err(error) => return Err(error),
    };
    Ok(response)
}

/// Applies the events of one open stream until it ends (`Ok`) or fails.
async fn follow_stream(
    client: &RegistryClient,
    index: &SharedIndex,
    options: &SubscribeOptions,
    received: &mut bool,
    status: &ReplicaStatus,
    response: reqwest::Response,
) -> Result<()> {
    let mut events = response.bytes_stream().eventsource();

    // Acks go through a watch channel to a side task, so a slow ack never delays
    // applying entries, and a burst of entries costs one ack.
    let (acks, ack_rx) = watch::channel::<Option<(String, u64)>>(None);
    let _ack_task = options
        .send_acks
        .then(|| AbortOnDrop(tokio::spawn(send_acks(client.clone(), ack_rx))));
    let mut subscriber_id: Option<String> = None;
    // The epoch of this connection's log, from `hello`; nothing is applied before it.
    let mut epoch: Option<String> = None;
    // Set by the first heartbeat, which the registry sends only after the backlog. Until
    // then an entry does not prove the index current, so it does not refresh freshness.
    let mut caught_up = false;

    loop {
        let next = tokio::time::timeout(options.idle_timeout, events.next())
            .await
            .map_err(|_| Error::StreamIdle {
                idle: options.idle_timeout,
            })?;
        let Some(event) = next else {
            return Ok(());
        };
        let event = event.map_err(|e| Error::transport("reading the revocation stream", e))?;
        *received = true;
        match event.event.as_str() {
            events::HELLO => {
                let hello: Hello = parse(&event.data, "hello event")?;
                check_epoch(&hello.epoch)?;
                if epoch.is_some() {
                    return Err(Error::protocol(
                        "hello event",
                        "a second hello on one stream",
                    ));
                }
                if let Err(changed) = index.adopt_epoch(&hello.epoch) {
                    // This stream resumes after a seq of another log: drop it, discard
                    // the index and reconnect from seq 0.
                    reset_for_new_log(client, index, &hello.epoch);
                    return Err(changed);
                }
                epoch = Some(hello.epoch);
                subscriber_id = Some(hello.subscriber_id);
                status.set_connected(true);
            }
            events::REVOCATION => {
                if epoch.is_none() {
                    return Err(Error::protocol("revocation event", "an entry before hello"));
                }
                let entry: RevocationEntry = parse(&event.data, "revocation event")?;
                // Already applied (an overlap after reconnecting): skip. Anything else out
                // of order is refused by `apply`, which ends this connection.
                if entry.seq > index.last_seq() {
                    index.apply(&entry)?;
                    tracing::debug!(seq = entry.seq, kind = %entry.kind, "revocation applied");
                }
                if caught_up {
                    index.mark_fresh(Instant::now());
                }
            }
            events::HEARTBEAT => {
                let heartbeat: Heartbeat = parse(&event.data, "heartbeat event")?;
                let Some(stream_epoch) = &epoch else {
                    return Err(Error::protocol(
                        "heartbeat event",
                        "a heartbeat before hello",
                    ));
                };
                if heartbeat.epoch != *stream_epoch || index.epoch().as_ref() != Some(stream_epoch)
                {
                    // The registry vouches for another log than the one applied here.
                    let changed = Error::LogChanged {
                        held: index.epoch(),
                        registry: heartbeat.epoch.clone(),
                    };
                    reset_for_new_log(client, index, &heartbeat.epoch);
                    return Err(changed);
                }
                let applied = index.last_seq();
                if applied < heartbeat.current_seq {
                    // The registry vouches for entries we do not have: never mark fresh.
                    return Err(Error::SeqGap {
                        expected: applied.saturating_add(1),
                        got: heartbeat.current_seq,
                    });
                }
                caught_up = true;
                index.mark_fresh(Instant::now());
            }
            other => tracing::debug!(event = other, "ignoring unknown stream event"),
        }
        if let Some(id) = &subscriber_id {
            let seq = index.last_seq();
            acks.send_if_modified(|current| {
                let changed = current.as_ref().is_none_or(|(_, acked)| *acked != seq);
                if changed {
                    *current = Some((id.clone(), seq));
                }
                changed
            });
        }
    }
}

/// Discards everything `index` holds because the registry serves another log: the index
/// is never-synced until it has been rebuilt from seq 0.
fn reset_for_new_log(client: &RegistryClient, index: &SharedIndex, registry_epoch: &str) {
    tracing::warn!(
        registry = %client.base_url(),
        held_epoch = index.epoch().as_deref().unwrap_or("none"),
        registry_epoch,
        discarded_seq = index.last_seq(),
        "registry serves a different revocation log; discarding the index and resyncing from seq 0"
    );
    index.reset();
}

fn parse<T: DeserializeOwned>(data: &str, what: &'static str) -> Result<T> {
    serde_json::from_str(data).map_err(|e| Error::protocol(what, e))
}

async fn send_acks(client: RegistryClient, mut acks: watch::Receiver<Option<(String, u64)>>) {
    while acks.changed().await.is_ok() {
        let Some((id, seq)) = acks.borrow_and_update().clone() else {
            continue;
        };
        if let Err(error) = client.ack(&id, seq).await {
            tracing::debug!(seq, error = %report(&error), "acknowledging revocations failed");
        }
    }
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.

    use super::*;

    #[test]
    fn the_idle_timeout_is_half_the_staleness_bound() {
        let options = SubscribeOptions::for_staleness(Duration::from_secs(5));
        assert_eq!(options.idle_timeout, Duration::from_millis(2500));
        let tiny = SubscribeOptions::for_staleness(Duration::from_millis(20));
        assert_eq!(tiny.idle_timeout, Duration::from_millis(50));
    }
}
