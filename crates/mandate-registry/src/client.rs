//! HTTP client for the registry: operator calls (revoke, lift, list, status) and the
//! verifier-side subscription that keeps a [`SharedIndex`] current.
//!
//! A [`Subscription`] streams entries from the index's `last_seq()`, applies them strictly
//! in order, refreshes the index's heartbeat on every heartbeat event and, once the
//! backlog has been applied, on every entry; it acknowledges what it applied,
//! and on any disconnect or error reconnects with jittered exponential backoff, resuming
//! from the index's `last_seq()` so nothing is skipped. It never marks the index fresh
//! without having applied everything the registry vouched for, so a broken subscription
//! turns into staleness (fail closed), never into a silently outdated index.
//!
//! Bearer tokens are passed through to the `Authorization` header and never logged.

use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use reqwest::header::ACCEPT;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{
    events, AckRequest, ErrorBody, Heartbeat, Hello, ListPage, RegistryStatus, RevokeRequest,
};
use crate::entry::{RevocationEntry, RevocationKind};
use crate::error::{report, Error, Result};
use crate::index::SharedIndex;

/// Timeout for the operator calls (everything but the stream).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest error message kept from a registry error body.
const MAX_ERROR_MESSAGE: usize = 1024;

/// A client for one registry.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:7700`.
    base: String,
    http: reqwest::Client,
}

/// Credentials for a write: the mandate, and the acting agent's proof of
/// possession when the mandate names an agent key.
#[derive(Debug, Clone, Copy)]
pub struct WriteAuth<'a> {
    /// The mandate (base64), sent as `Authorization: Bearer`.
    pub token: &'a str,
    /// The proof of possession, sent as the `Mandate-PoP` header.
    pub proof: Option<&'a str>,
}

impl<'a> From<&'a str> for WriteAuth<'a> {
    fn from(token: &'a str) -> Self {
        WriteAuth { token, proof: None }
    }
}

impl RegistryClient {
    /// A client for the registry at `base_url` (`http://` or `https://`).
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for an unparsable or non-HTTP URL; [`Error::Transport`] if the
    /// HTTP client cannot be built (TLS setup).
    pub fn new(base_url: &str) -> Result<Self> {
        let invalid = |source: crate::BoxError| Error::InvalidUrl {
            url: base_url.chars().take(256).collect(),
            source,
        };
        let url = reqwest::Url::parse(base_url).map_err(|e| invalid(e.into()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("scheme must be http or https".into()));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("URL must not have a query or fragment".into()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| Error::transport("building the HTTP client", e))?;
        Ok(Self {
            base: url.as_str().trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// The registry's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Revokes `value` as `kind`, authenticated by `bearer`. Returns the stored entry.
    ///
    /// # Errors
    /// [`Error::Api`] with status 400/401/403 when the registry refuses;
    /// [`Error::Transport`] when it cannot be reached.
    pub async fn revoke<'a>(
        &self,
        bearer: impl Into<WriteAuth<'a>>,
        kind: RevocationKind,
        value: &str,
        reason: &str,
    ) -> Result<RevocationEntry> {
        self.write("/v1/revocations", bearer.into(), kind, value, reason)
            .await
    }

    /// Lifts earlier `principal` or `agent` revocations of `value`.
    ///
    /// # Errors
    /// As [`RegistryClient::revoke`]; lifting `token_id` or `task` is refused with 400.
    pub async fn lift<'a>(
        &self,
        bearer: impl Into<WriteAuth<'a>>,
        kind: RevocationKind,
        value: &str,
        reason: &str,
    ) -> Result<RevocationEntry> {
        self.write("/v1/revocations/lift", bearer.into(), kind, value, reason)
            .await
    }

    async fn write(
        &self,
        path: &str,
        auth: WriteAuth<'_>,
        kind: RevocationKind,
        value: &str,
        reason: &str,
    ) -> Result<RevocationEntry> {
        let body = RevokeRequest {
            kind,
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let mut request = self.http.post(self.url(path)).bearer_auth(auth.token);
        if let Some(proof) = auth.proof {
            request = request.header(crate::server::POP_HEADER, proof);
        }
        let response = request
            .json(&body)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| Error::transport("sending a revocation", e))?;
        decode(response).await
    }

    /// Reads the whole log into a fresh index, current as of the registry's
    /// newest entry when the last page was read. For one-shot checks; a
    /// long-running verifier uses [`RegistryClient::subscribe`].
    ///
    /// # Errors
    /// [`Error::Api`], [`Error::Transport`], or [`Error::SeqGap`].
    pub async fn snapshot(&self, staleness_bound: Duration) -> Result<SharedIndex> {
        let index = SharedIndex::new(staleness_bound);
        let mut after = 0;
        loop {
            let page = self.list(after, crate::server::MAX_LIST_LIMIT).await?;
            for entry in &page.entries {
                index.apply(entry)?;
            }
            if page.entries.is_empty() || page.next_after >= page.current_seq {
                break;
            }
            after = page.next_after;
        }
        index.mark_fresh(Instant::now());
        Ok(index)
    }

    /// One page of entries with `seq > after` (`limit` is 1..=1000).
    ///
    /// # Errors
    /// [`Error::Api`] or [`Error::Transport`].
    pub async fn list(&self, after: u64, limit: usize) -> Result<ListPage> {
        let response = self
            .http
            .get(self.url("/v1/revocations"))
            .query(&[("after", after), ("limit", limit as u64)])
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| Error::transport("listing revocations", e))?;
        decode(response).await
    }

    /// The registry's newest seq and how many connected verifiers have applied `seq`
    /// (default: the newest).
    ///
    /// # Errors
    /// [`Error::Api`] or [`Error::Transport`].
    pub async fn status(&self, seq: Option<u64>) -> Result<RegistryStatus> {
        let mut request = self
            .http
            .get(self.url("/v1/status"))
            .timeout(REQUEST_TIMEOUT);
        if let Some(seq) = seq {
            request = request.query(&[("seq", seq)]);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Error::transport("reading registry status", e))?;
        decode(response).await
    }

    /// Reports that stream subscriber `subscriber_id` has applied everything up to `seq`.
    ///
    /// # Errors
    /// [`Error::Api`] (404 once the stream has closed) or [`Error::Transport`].
    pub async fn ack(&self, subscriber_id: &str, seq: u64) -> Result<()> {
        let body = AckRequest {
            subscriber_id: subscriber_id.to_owned(),
            seq,
        };
        let response = self
            .http
            .post(self.url("/v1/subscribers/ack"))
            .json(&body)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| Error::transport("acknowledging entries", e))?;
        check_status(response).await.map(drop)
    }

    /// Starts a background task that keeps `index` current; see the module docs.
    ///
    /// The task runs until the returned [`Subscription`] is dropped or aborted.
    ///
    /// # Panics
    /// When called outside a Tokio runtime (as `tokio::spawn` does).
    pub fn subscribe(&self, index: SharedIndex, options: SubscribeOptions) -> Subscription {
        let client = self.clone();
        Subscription {
            task: tokio::spawn(async move { run_subscription(client, index, options).await }),
        }
    }
}

async fn check_status(response: reqwest::Response) -> Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    let (code, message) = match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => (body.error.code, body.error.message),
        Err(_) => ("unknown".to_owned(), text),
    };
    Err(Error::Api {
        status: status.as_u16(),
        code,
        message: message.chars().take(MAX_ERROR_MESSAGE).collect(),
    })
}

async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> Result<T> {
    check_status(response)
        .await?
        .json()
        .await
        .map_err(|e| Error::protocol("response body", e))
}

/// Settings of a [`Subscription`].
#[derive(Debug, Clone)]
pub struct SubscribeOptions {
    /// Reconnect when no event (entry or heartbeat) arrives for this long. Must exceed
    /// the registry's heartbeat interval.
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

/// A running subscription. Dropping it stops the background task.
#[derive(Debug)]
pub struct Subscription {
    task: JoinHandle<()>,
}

impl Subscription {
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

async fn run_subscription(client: RegistryClient, index: SharedIndex, options: SubscribeOptions) {
    let mut backoff = options.min_backoff;
    loop {
        let mut received = false;
        match stream_once(&client, &index, &options, &mut received).await {
            Ok(()) => {
                tracing::info!(registry = %client.base, "revocation stream ended; reconnecting")
            }
            Err(error) => tracing::warn!(
                registry = %client.base,
                last_seq = index.last_seq(),
                error = %report(&error),
                "revocation stream interrupted; reconnecting"
            ),
        }
        if received {
            backoff = options.min_backoff;
        }
        tokio::time::sleep(jitter(backoff)).await;
        backoff = backoff.saturating_mul(2).min(options.max_backoff);
    }
}

/// A delay between half and all of `base`, so verifiers that lost the same registry do
/// not all reconnect in the same instant.
fn jitter(base: Duration) -> Duration {
    let random = uuid::Uuid::new_v4().as_u64_pair().0;
    let fraction = 0.5 + (random % 1000) as f64 / 2000.0;
    base.mul_f64(fraction)
}

/// One connection: returns `Ok` when the registry closed the stream, `Err` otherwise.
/// Sets `received` once any event arrived (used to reset the backoff).
async fn stream_once(
    client: &RegistryClient,
    index: &SharedIndex,
    options: &SubscribeOptions,
    received: &mut bool,
) -> Result<()> {
    let after = index.last_seq();
    let response = client
        .http
        .get(client.url("/v1/revocations/stream"))
        .query(&[("after", after)])
        .header(ACCEPT, "text/event-stream")
        .send()
        .await
        .map_err(|e| Error::transport("opening the revocation stream", e))?;
    let response = check_status(response).await?;
    tracing::debug!(registry = %client.base, after, "revocation stream connected");
    let mut events = response.bytes_stream().eventsource();

    // Acks go through a watch channel to a side task, so a slow ack never delays
    // applying entries, and a burst of entries costs one ack.
    let (acks, ack_rx) = watch::channel::<Option<(String, u64)>>(None);
    let _ack_task = options
        .send_acks
        .then(|| AbortOnDrop(tokio::spawn(send_acks(client.clone(), ack_rx))));
    let mut subscriber_id: Option<String> = None;
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
                subscriber_id = Some(hello.subscriber_id);
            }
            events::REVOCATION => {
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
