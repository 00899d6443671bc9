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
//!
//! Every call but acks carries a mandate ([`RegistryAuth`]): the one given to
//! [`RegistryClient::with_auth`] for reads (list, status, stream; it needs
//! `registry:read`), the one given to [`RegistryClient::revoke`] and
//! [`RegistryClient::lift`] for writes (`registry:revoke`). A keyed mandate signs a
//! fresh proof of possession for each request, over the method, the API path and the
//! exact body bytes sent ([`crate::registry_request`]), so a reconnecting stream signs
//! anew and a proof seen on the wire authorizes nothing else. Tokens are passed through
//! to the `Authorization` header and never logged.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use reqwest::header::ACCEPT;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{
    events, is_valid_epoch, AckRequest, ErrorBody, Heartbeat, Hello, ListPage, RegistryStatus,
    RevokeRequest,
};
use crate::entry::{RevocationEntry, RevocationKind};
use crate::error::{report, Error, Result};
use crate::index::SharedIndex;
use crate::mandate::{registry_request, Access};
use crate::replicas::{ReplicaSet, ReplicaStatus, Rotation};
use crate::server::{HttpBinding, POP_HEADER};

/// Timeout for the operator calls (everything but the stream).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest error message kept from a registry error body.
const MAX_ERROR_MESSAGE: usize = 1024;
/// How often [`RegistryClient::snapshot`] starts over when the registry's log changes
/// while it reads.
const SNAPSHOT_ATTEMPTS: usize = 3;

/// The API paths, as signed in proofs of possession (independent of any path prefix
/// in the base URL, which a proxy in front of the registry strips).
const REVOCATIONS: &str = "/v1/revocations";
const LIFT: &str = "/v1/revocations/lift";
const STREAM: &str = "/v1/revocations/stream";
const STATUS: &str = "/v1/status";
const ACK: &str = "/v1/subscribers/ack";

/// A client for one registry.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:7700`.
    base: String,
    http: reqwest::Client,
    /// The mandate for reads (list, status, stream), if any.
    auth: Option<Arc<RegistryAuth>>,
}

/// A mandate presented to the registry, with its holder's key when it is keyed: each
/// request then carries a fresh proof of possession bound to that request.
pub struct RegistryAuth {
    /// The mandate (base64), sent as `Authorization: Bearer`.
    token: String,
    /// The holder's key and the token's digest (what a proof signs), for a keyed mandate.
    key: Option<(mandate_core::SecretKey, String)>,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself: a bearer mandate is a credential.
        f.debug_struct("RegistryAuth")
            .field("token", &mandate_core::fingerprint(&self.token))
            .field("keyed", &self.key.is_some())
            .finish()
    }
}

impl RegistryAuth {
    /// A mandate presented without a proof. The registry refuses it for writes unless
    /// it was started with bearer writes allowed; a mandate that names an agent key is
    /// refused everywhere without that key's proof.
    pub fn bearer(token: impl Into<String>) -> Self {
        Self {
            token: token.into().trim().to_owned(),
            key: None,
        }
    }

    /// A mandate held by the agent whose secret key is `key`: every request is sent
    /// with that agent's proof of possession.
    ///
    /// # Errors
    /// [`Error::Credentials`] when `token` is not a mandate (its digest, which the proof
    /// signs, cannot be read).
    pub fn keyed(token: impl Into<String>, key: mandate_core::SecretKey) -> Result<Self> {
        let token = token.into().trim().to_owned();
        let digest = mandate_core::UnverifiedMandate::from_base64(&token)
            .map_err(|source| Error::Credentials { source })?
            .digest_hex();
        Ok(Self {
            token,
            key: Some((key, digest)),
        })
    }

    /// Whether requests carry a proof of possession.
    pub fn is_keyed(&self) -> bool {
        self.key.is_some()
    }

    /// Adds the `Authorization` header and, for a keyed mandate, a proof of possession
    /// for exactly `http`, to `request`.
    fn apply(
        &self,
        request: reqwest::RequestBuilder,
        access: Access,
        http: &HttpBinding<'_>,
    ) -> Result<reqwest::RequestBuilder> {
        let request = request.bearer_auth(&self.token);
        let Some((key, digest)) = &self.key else {
            return Ok(request);
        };
        let now = SystemTime::now();
        let decided = registry_request(access, http, now, None)
            .map_err(|source| Error::Credentials { source })?;
        let proof = mandate_core::Proof::sign(key, digest, &decided, now);
        Ok(request.header(POP_HEADER, proof.to_text()))
    }
}

impl RegistryClient {
    /// A client for the registry at `base_url` (`http://` or `https://`).
    ///
    /// The URL must not carry a user or password: the registry is authenticated with a
    /// mandate ([`RegistryClient::with_auth`]), and a URL is printed in logs, metrics and
    /// readiness reports, which must never show a credential.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for an unparsable or non-HTTP URL, or one with credentials
    /// (the error shows it with them replaced by `***`); [`Error::Transport`] if the
    /// HTTP client cannot be built (TLS setup).
    pub fn new(base_url: &str) -> Result<Self> {
        let invalid = |source: crate::BoxError| Error::InvalidUrl {
            url: redact_userinfo(base_url).chars().take(256).collect(),
            source,
        };
        let url = reqwest::Url::parse(base_url).map_err(|e| invalid(e.into()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("scheme must be http or https".into()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "a registry URL must not carry a user or password; \
                 the registry is authenticated with a mandate"
                    .into(),
            ));
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
            auth: None,
        })
    }

    /// This client, presenting `auth` (a mandate granting `registry:read`) on every read:
    /// list, status and the stream. Without it the registry answers reads with 401.
    pub fn with_auth(mut self, auth: RegistryAuth) -> Self {
        self.auth = Some(Arc::new(auth));
        self
    }

    /// A GET of `path` with the read mandate, if any.
    fn read_request(&self, path: &str) -> Result<reqwest::RequestBuilder> {
        let request = self.http.get(self.url(path));
        match &self.auth {
            Some(auth) => {
                let http = HttpBinding {
                    method: "GET",
                    path,
                    body: &[],
                };
                auth.apply(request, Access::Read, &http)
            }
            None => Ok(request),
        }
    }

    /// The registry's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Revokes `value` as `kind`, authenticated by `auth` (a mandate granting
    /// `registry:revoke`). Returns the stored entry.
    ///
    /// # Errors
    /// [`Error::Api`] with status 400/401/403 when the registry refuses;
    /// [`Error::Transport`] when it cannot be reached.
    pub async fn revoke(
        &self,
        auth: &RegistryAuth,
        kind: RevocationKind,
        value: &str,
        reason: &str,
    ) -> Result<RevocationEntry> {
        self.write(REVOCATIONS, auth, kind, value, reason).await
    }

    /// Lifts earlier `principal` or `agent` revocations of `value`.
    ///
    /// # Errors
    /// As [`RegistryClient::revoke`]; lifting `token_id` or `task` is refused with 400.
    pub async fn lift(
        &self,
        auth: &RegistryAuth,
        kind: RevocationKind,
        value: &str,
        reason: &str,
    ) -> Result<RevocationEntry> {
        self.write(LIFT, auth, kind, value, reason).await
    }

    async fn write(
        &self,
        path: &str,
        auth: &RegistryAuth,
        kind: RevocationKind,
        value: &str,
        reason: &str,
    ) -> Result<RevocationEntry> {
        let body = RevokeRequest {
            kind,
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        // Serialised here, once: the proof covers these exact bytes.
        let body = serde_json::to_vec(&body).map_err(|e| Error::protocol("revocation body", e))?;
        let http = HttpBinding {
            method: "POST",
            path,
            body: &body,
        };
        let request = auth.apply(self.http.post(self.url(path)), Access::Write, &http)?;
        let response = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| Error::transport("sending a revocation", e))?;
        decode(response).await
    }

    /// Reads the whole log into a fresh index bound to the log's epoch, current as of
    /// the registry's newest entry when the last page was read. For one-shot checks; a
    /// long-running verifier uses [`RegistryClient::subscribe`] (which may be given the
    /// snapshot to continue from). Pages from different epochs are never mixed: when the
    /// registry's log changes mid-read, the snapshot starts over, a few times at most.
    ///
    /// # Errors
    /// [`Error::Api`], [`Error::Transport`], [`Error::Protocol`] (a malformed epoch),
    /// [`Error::SeqGap`], or [`Error::LogChanged`] when the log kept changing.
    pub async fn snapshot(&self, staleness_bound: Duration) -> Result<SharedIndex> {
        let mut attempt = 1;
        loop {
            match self.snapshot_once(staleness_bound).await {
                Err(Error::LogChanged { .. }) if attempt < SNAPSHOT_ATTEMPTS => {
                    tracing::info!(registry = %self.base, "registry log changed while reading; starting over");
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    async fn snapshot_once(&self, staleness_bound: Duration) -> Result<SharedIndex> {
        let index = SharedIndex::new(staleness_bound);
        let mut after = 0;
        loop {
            let page = self.list(after, crate::server::MAX_LIST_LIMIT).await?;
            check_epoch(&page.epoch)?;
            // The first page binds the index; a later page from another log is refused.
            index.adopt_epoch(&page.epoch)?;
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

    /// Every entry with `seq > after`, in order, read page by page.
    ///
    /// # Errors
    /// As [`RegistryClient::list`].
    pub async fn list_all(&self, after: u64) -> Result<Vec<RevocationEntry>> {
        let mut all = Vec::new();
        let mut after = after;
        loop {
            let page = self.list(after, crate::server::MAX_LIST_LIMIT).await?;
            if page.entries.is_empty() {
                break;
            }
            after = page.next_after;
            all.extend(page.entries);
        }
        Ok(all)
    }

    /// One page of entries with `seq > after` (`limit` is 1..=1000).
    ///
    /// # Errors
    /// [`Error::Api`] or [`Error::Transport`].
    pub async fn list(&self, after: u64, limit: usize) -> Result<ListPage> {
        let response = self
            .read_request(REVOCATIONS)?
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
        let mut request = self.read_request(STATUS)?.timeout(REQUEST_TIMEOUT);
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
            .post(self.url(ACK))
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
        ReplicaSet::from(self.clone()).subscribe(index, options)
    }
}

/// `text` with whatever stands between `://` and the last `@` of the authority replaced
/// by `***`, so a URL is never shown with its credentials, even one that does not parse.
fn redact_userinfo(text: &str) -> std::borrow::Cow<'_, str> {
    let Some(scheme_end) = text.find("://").map(|i| i + 3) else {
        return text.into();
    };
    let rest = &text[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &text[..scheme_end], &rest[at..]).into(),
        None => text.into(),
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
    let mut rotation = Rotation::new(clients.len(), &options);
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
                registry = %client.base,
                next,
                "revocation stream ended; reconnecting"
            ),
            Err(error) => tracing::warn!(
                registry = %client.base,
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
    tracing::info!(registry = %client.base, after = index.last_seq(), "revocation stream connected");
    follow_stream(client, index, options, received, status, response).await
}

/// Sends the stream request after the index's `last_seq()`, handling a refused resume
/// point; returns the open response.
async fn open_stream(client: &RegistryClient, index: &SharedIndex) -> Result<reqwest::Response> {
    if index.epoch().is_none() && index.last_seq() > 0 {
        // Entries of an unidentified log: resuming from them could skip entries of the
        // registry's log, so start over.
        tracing::warn!(
            registry = %client.base,
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

/// Refuses an epoch no registry of ours would send.
fn check_epoch(epoch: &str) -> Result<()> {
    if is_valid_epoch(epoch) {
        Ok(())
    } else {
        Err(Error::protocol(
            "log epoch",
            "expected 1 to 64 printable ASCII characters",
        ))
    }
}

/// Discards everything `index` holds because the registry serves another log: the index
/// is never-synced until it has been rebuilt from seq 0.
fn reset_for_new_log(client: &RegistryClient, index: &SharedIndex, registry_epoch: &str) {
    tracing::warn!(
        registry = %client.base,
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
    fn a_url_with_credentials_is_refused_without_showing_them() {
        for url in [
            "http://ops:hunter2@registry:7700",
            "https://hunter2@registry",
            "http://ops:hunter2@reg istry/",
        ] {
            let error = RegistryClient::new(url).unwrap_err();
            let shown = format!("{error} {error:?}");
            assert!(matches!(error, Error::InvalidUrl { .. }), "{shown}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("***@"), "{shown}");
        }
        let plain = RegistryClient::new("http://registry:7700/").unwrap();
        assert_eq!(plain.base_url(), "http://registry:7700");
        assert_eq!(redact_userinfo("http://a/b@c"), "http://a/b@c");
    }

    #[test]
    fn the_idle_timeout_is_half_the_staleness_bound() {
        let options = SubscribeOptions::for_staleness(Duration::from_secs(5));
        assert_eq!(options.idle_timeout, Duration::from_millis(2500));
        let tiny = SubscribeOptions::for_staleness(Duration::from_millis(20));
        assert_eq!(tiny.idle_timeout, Duration::from_millis(50));
    }
}
