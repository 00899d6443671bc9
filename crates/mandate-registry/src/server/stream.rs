//! `GET /v1/revocations/stream`: every entry, in order, once, then live entries and
//! heartbeats.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse as _, Response};
use mandate_verifier::http::ApiError;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::MissedTickBehavior;

use super::auth::authorize_read;
use super::state::{Peer, RegistryConfig, RegistryState, SubscriberGuard};
use super::{STREAM_BUFFER, STREAM_PAGE};
use crate::api::{events, Heartbeat, Hello};
use crate::entry::RevocationEntry;
use crate::error::{report, Error};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(super) struct StreamParams {
    /// Entries after this sequence number (default 0).
    after: Option<u64>,
}

/// Every entry after `after`, then live entries and heartbeats, as server-sent events
/// (`hello`, `revocation`, `heartbeat`).
#[utoipa::path(get, path = "/v1/revocations/stream", tag = "registry", params(StreamParams),
    security(("mandate" = [])),
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream"),
        (status = 401, description = "No mandate, or one that cannot be trusted", body = crate::ErrorBody),
        (status = 403, description = "The mandate does not grant this", body = crate::ErrorBody),
        (status = 503, description = "Cannot judge the mandate now; retry after Retry-After", body = crate::ErrorBody)))]
pub(super) async fn stream(
    State(state): State<RegistryState>,
    Peer(peer): Peer,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    query: std::result::Result<Query<StreamParams>, QueryRejection>,
) -> std::result::Result<Response, ApiError> {
    // Authenticate before anything else, in particular before a slot is taken: a
    // refused attempt holds nothing and counts against no limit.
    authorize_read(&state, &method, &uri, &headers).await?;
    let Query(params) = query?;
    let after = match params.after {
        Some(after) => after,
        None => match headers.get("last-event-id") {
            Some(value) => value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request("bad_request", "Last-Event-ID must be a sequence number")
                })?,
            None => 0,
        },
    };
    // Subscribe before reading anything from the store: every entry appended from now on
    // reaches this receiver, and everything before it is in the store.
    let live = state.inner.events.subscribe();
    let (current_seq, epoch) = state
        .blocking(|store| Ok((store.current_seq()?, store.epoch()?)))
        .await?;
    if after > current_seq {
        // The subscriber holds entries this registry does not have (a wiped or different
        // store). Streaming would silently skip new entries up to `after`: refuse instead,
        // so the subscriber stays stale and fails closed.
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "ahead_of_registry",
            format!(
                "subscriber has applied seq {after}, but the registry's newest is {current_seq}"
            ),
        ));
    }
    let guard = state.register_subscriber(after, peer)?;
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    tracing::debug!(subscriber = %guard.id, ?peer, after, "revocation stream opened");
    tokio::spawn(feed_stream(
        StreamFeed {
            state,
            tx,
            last_sent: after,
            epoch,
        },
        guard,
        live,
        current_seq,
    ));
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        let first = rx.recv().await?;
        let mut frame = Vec::new();
        let mut written = first.write_to(&mut frame);
        // Events already queued go out in the same body frame: during a backlog the
        // client then reads one HTTP chunk per batch of entries, not one per entry.
        for _ in 1..STREAM_BUFFER {
            if written.is_err() {
                break;
            }
            let Ok(next) = rx.try_recv() else { break };
            written = next.write_to(&mut frame);
        }
        Some((written.map(|()| Bytes::from(frame)), rx))
    });
    let mut response = Body::from_stream(frames).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// What a stream task hands to the response body, encoded there as an SSE event.
#[derive(Debug)]
pub(super) enum Outgoing {
    Hello(Hello),
    Entry(RevocationEntry),
    Heartbeat(Heartbeat),
}

impl Outgoing {
    /// Appends this as one server-sent event (`event:`, `id:` for entries, `data:` with
    /// the JSON on one line, a blank line).
    ///
    /// # Errors
    /// Encoding these plain structs cannot fail in practice; if it ever did, the error
    /// ends the response and the subscriber reconnects from its last applied seq.
    fn write_to(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let (event, id) = match self {
            Outgoing::Hello(_) => (events::HELLO, None),
            Outgoing::Entry(entry) => (events::REVOCATION, Some(entry.seq)),
            Outgoing::Heartbeat(_) => (events::HEARTBEAT, None),
        };
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(event.as_bytes());
        if let Some(id) = id {
            out.extend_from_slice(b"\nid: ");
            out.extend_from_slice(id.to_string().as_bytes());
        }
        out.extend_from_slice(b"\ndata: ");
        // Compact JSON escapes every line break inside strings, so the data stays on
        // one line as the event-stream format requires.
        match self {
            Outgoing::Hello(hello) => serde_json::to_writer(&mut *out, hello)?,
            Outgoing::Entry(entry) => serde_json::to_writer(&mut *out, entry)?,
            Outgoing::Heartbeat(heartbeat) => serde_json::to_writer(&mut *out, heartbeat)?,
        }
        out.extend_from_slice(b"\n\n");
        Ok(())
    }
}

/// Why a stream task stopped.
#[derive(Debug)]
pub(super) enum StreamEnd {
    ClientGone,
    /// The client took no event within the send timeout.
    SlowClient,
    Shutdown,
    Failed(Error),
}

/// One open stream: what it has sent and where to send more.
pub(super) struct StreamFeed {
    state: RegistryState,
    tx: mpsc::Sender<Outgoing>,
    last_sent: u64,
    /// The epoch of the store's log, sent in `hello` and every heartbeat.
    epoch: String,
}

impl StreamFeed {
    /// Queues `outgoing` for the client. A client that lets the queue stay full for the
    /// send timeout ends the stream: otherwise it would hold its slot for as long as it
    /// keeps the connection open without reading.
    async fn send(&self, outgoing: Outgoing) -> std::result::Result<(), StreamEnd> {
        let timeout = self.state.inner.config.stream_send_timeout;
        match tokio::time::timeout(timeout, self.tx.send(outgoing)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(StreamEnd::ClientGone),
            Err(_) => Err(StreamEnd::SlowClient),
        }
    }

    async fn send_entry(&mut self, entry: RevocationEntry) -> std::result::Result<(), StreamEnd> {
        let seq = entry.seq;
        self.send(Outgoing::Entry(entry)).await?;
        self.last_sent = seq;
        Ok(())
    }

    /// Sends every stored entry after `last_sent`.
    async fn catch_up(&mut self) -> std::result::Result<(), StreamEnd> {
        loop {
            let after = self.last_sent;
            let page = self
                .state
                .blocking(move |store| store.list_after(after, STREAM_PAGE))
                .await
                .map_err(StreamEnd::Failed)?;
            let full = page.len() == STREAM_PAGE;
            for entry in page {
                self.send_entry(entry).await?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    async fn on_live(&mut self, entry: &RevocationEntry) -> std::result::Result<(), StreamEnd> {
        if entry.seq <= self.last_sent {
            Ok(())
        } else if entry.seq == self.last_sent + 1 {
            self.send_entry(entry.clone()).await
        } else {
            // A concurrent writer broadcast a later entry first; the store has both.
            self.catch_up().await
        }
    }

    async fn heartbeat(&self) -> std::result::Result<(), StreamEnd> {
        let heartbeat = Heartbeat {
            current_seq: self.last_sent,
            epoch: self.epoch.clone(),
        };
        self.send(Outgoing::Heartbeat(heartbeat)).await
    }
}

pub(super) async fn feed_stream(
    mut feed: StreamFeed,
    guard: SubscriberGuard,
    mut live: broadcast::Receiver<Arc<RevocationEntry>>,
    current_seq: u64,
) {
    let end = run_stream(&mut feed, &guard, &mut live, current_seq).await;
    match end {
        StreamEnd::ClientGone => {
            tracing::debug!(subscriber = %guard.id, "revocation stream closed by client");
        }
        StreamEnd::SlowClient => {
            tracing::info!(
                subscriber = %guard.id,
                peer = ?guard.peer,
                "revocation stream closed: the client stopped reading"
            );
        }
        StreamEnd::Shutdown => {
            tracing::debug!(subscriber = %guard.id, "revocation stream closed for shutdown");
        }
        StreamEnd::Failed(error) => {
            tracing::error!(subscriber = %guard.id, error = %report(&error), "revocation stream failed");
        }
    }
}

/// Resolves once streams are told to stop (or the state is gone).
pub(super) async fn stopped(stop: &mut watch::Receiver<bool>) {
    // `wait_for` returns a borrow of the value; drop it here so the caller stays `Send`.
    let _stopped = stop.wait_for(|stop| *stop).await.is_ok();
}

pub(super) async fn run_stream(
    feed: &mut StreamFeed,
    guard: &SubscriberGuard,
    live: &mut broadcast::Receiver<Arc<RevocationEntry>>,
    current_seq: u64,
) -> StreamEnd {
    let hello = Hello {
        subscriber_id: guard.id.clone(),
        current_seq,
        epoch: feed.epoch.clone(),
    };
    let opening = async {
        feed.send(Outgoing::Hello(hello)).await?;
        feed.catch_up().await?;
        feed.heartbeat().await
    };
    if let Err(end) = opening.await {
        return end;
    }
    // `with_config` clamps already; clamp again so that no configuration can make the
    // ticker's `Instant + Duration` overflow (tokio panics on that).
    let interval = feed.state.inner.config.heartbeat_interval.clamp(
        RegistryConfig::MIN_HEARTBEAT_INTERVAL,
        RegistryConfig::MAX_HEARTBEAT_INTERVAL,
    );
    let now = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval_at(now.checked_add(interval).unwrap_or(now), interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut stop = feed.state.inner.stop_streams.subscribe();
    loop {
        let step = tokio::select! {
            () = stopped(&mut stop) => Err(StreamEnd::Shutdown),
            () = feed.tx.closed() => Err(StreamEnd::ClientGone),
            received = live.recv() => match received {
                Ok(entry) => feed.on_live(&entry).await,
                Err(RecvError::Lagged(skipped)) => {
                    tracing::debug!(subscriber = %guard.id, skipped, "stream lagged; reading the store");
                    feed.catch_up().await
                }
                Err(RecvError::Closed) => Err(StreamEnd::Shutdown),
            },
            _ = ticker.tick() => {
                // Catch up first, so the heartbeat's seq really is current.
                match feed.catch_up().await {
                    Ok(()) => feed.heartbeat().await,
                    Err(end) => Err(end),
                }
            }
        };
        if let Err(end) = step {
            return end;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::entry::NewRevocation;
    use crate::kind::RevocationKind;
    use crate::server::authorizer::{HttpBinding, WriteAuthorizer, WriteDenied};
    use crate::store::MemoryStore;
    use crate::store::RevocationStore;

    struct NoWrites;

    impl WriteAuthorizer for NoWrites {
        fn authorize_write(
            &self,
            _: &str,
            _: Option<&str>,
            _: &HttpBinding<'_>,
        ) -> std::result::Result<String, WriteDenied> {
            Err(WriteDenied::Forbidden("read-only".to_owned()))
        }

        fn authorize_read(
            &self,
            _: &str,
            _: Option<&str>,
            _: &HttpBinding<'_>,
        ) -> std::result::Result<String, WriteDenied> {
            Ok("reader".to_owned())
        }
    }

    fn sent_seqs(rx: &mut mpsc::Receiver<Outgoing>) -> Vec<u64> {
        let mut seqs = Vec::new();
        while let Ok(outgoing) = rx.try_recv() {
            match outgoing {
                Outgoing::Entry(entry) => seqs.push(entry.seq),
                other => panic!("expected only entries, got {other:?}"),
            }
        }
        seqs
    }

    /// Live entries can arrive out of order (two writers) or after a gap (lag); the feed
    /// must still send every seq exactly once, in order.
    #[tokio::test]
    async fn live_entries_past_a_gap_are_filled_from_the_store_and_repeats_dropped() {
        let store = Arc::new(MemoryStore::new());
        let mut entries = Vec::new();
        for value in ["t1", "t2", "t3", "t4"] {
            let new = NewRevocation::revoke(RevocationKind::Task, value, "", "ops").unwrap();
            entries.push(store.append(new).unwrap());
        }
        let state = RegistryState::new(store, Arc::new(NoWrites));
        let (tx, mut rx) = mpsc::channel(16);
        let mut feed = StreamFeed {
            state,
            tx,
            last_sent: 1,
            epoch: "test".to_owned(),
        };

        feed.on_live(&entries[1]).await.ok().unwrap();
        assert_eq!(sent_seqs(&mut rx), [2], "the next seq is sent as is");
        feed.on_live(&entries[3]).await.ok().unwrap();
        assert_eq!(sent_seqs(&mut rx), [3, 4], "a gap is filled from the store");
        feed.on_live(&entries[2]).await.ok().unwrap();
        feed.on_live(&entries[0]).await.ok().unwrap();
        assert_eq!(sent_seqs(&mut rx), Vec::<u64>::new(), "repeats are dropped");
        assert_eq!(feed.last_sent, 4);
    }
}
