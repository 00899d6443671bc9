//! A client of `GET /v1/audit`: pages of the trail from a running server,
//! or the trail followed as an event stream, presenting a mandate granting
//! `audit:read` and, when its holder's key is given, a fresh proof of
//! possession per request. Never logs the token.

use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context as _, Result};
use eventsource_stream::Eventsource as _;
use futures_util::StreamExt as _;
use mandate_audit::Record;
use mandate_core::{Proof, SecretKey, UnverifiedMandate};

use crate::audit_api::AuditPage;

/// A stream silent this long (keep-alives included) is taken for dead.
const STREAM_SILENCE: Duration = Duration::from_secs(60);
/// Consecutive failed connections before following gives up.
const FOLLOW_ATTEMPTS: u32 = 10;

/// Reads a server's audit trail.
pub struct AuditClient {
    base: String,
    http: reqwest::Client,
    /// Without a total timeout: a followed stream lasts minutes.
    streaming: reqwest::Client,
    token: String,
    digest: String,
    key: Option<SecretKey>,
}

/// Why one stream ended.
enum StreamEnd {
    /// It was open and ended (the server's time limit, a broken
    /// connection): reconnect.
    Ended,
    /// It could not be opened: try again, a few times.
    Retry(anyhow::Error),
    /// The server refused the reader, or a record could not be handled.
    Fatal(anyhow::Error),
}

impl std::fmt::Debug for AuditClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditClient")
            .field("base", &self.base)
            .field("token", &mandate_core::fingerprint(&self.token))
            .field("keyed", &self.key.is_some())
            .finish_non_exhaustive()
    }
}

impl AuditClient {
    /// A client of the server at `base` (`http://127.0.0.1:7700`), reading
    /// with `token` and, when given, proving possession with `key`.
    ///
    /// # Errors
    /// A URL that is not http(s), or a token that cannot be parsed.
    pub fn new(base: &str, token: String, key: Option<SecretKey>) -> Result<AuditClient> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--url {base}: expected http://HOST:PORT or https://HOST:PORT");
        }
        let digest = UnverifiedMandate::from_base64(&token)?.digest_hex();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .pool_idle_timeout(mandate_verifier::http::CLIENT_POOL_IDLE)
            .build()
            .context("building the HTTP client")?;
        let streaming = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(30))
            .read_timeout(STREAM_SILENCE)
            .build()
            .context("building the HTTP client")?;
        Ok(AuditClient {
            base,
            http,
            streaming,
            token,
            digest,
            key,
        })
    }

    /// One page: records matching `params` (the query parameters of
    /// `GET /v1/audit`), oldest first.
    ///
    /// # Errors
    /// The server refusing (its error message), or not answering.
    pub async fn page(&self, params: &[(&str, String)]) -> Result<AuditPage> {
        let url = format!("{}{}", self.base, mandate_audit::access::PATH);
        let request = self.authorized(self.http.get(&url).query(params))?;
        let response = request
            .send()
            .await
            .with_context(|| format!("asking {url}"))?;
        let status = response.status();
        if !status.is_success() {
            let body: Option<mandate_verifier::ErrorBody> = response.json().await.ok();
            match body {
                Some(body) => bail!("{url}: {status}: {}", body.error.message),
                None => bail!("{url}: {status}"),
            }
        }
        response
            .json()
            .await
            .with_context(|| format!("reading the answer of {url}"))
    }
}

impl AuditClient {
    /// `request` with the mandate and, when keyed, a fresh proof.
    fn authorized(&self, request: reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder> {
        let mut request = request.header("authorization", format!("Bearer {}", self.token));
        if let Some(key) = &self.key {
            let now = SystemTime::now();
            let read = mandate_audit::access::read_request(now)?;
            let proof = Proof::sign(key, &self.digest, &read, now);
            request = request.header(mandate_verifier::http::POP_HEADER, proof.to_text());
        }
        Ok(request)
    }

    /// Follows the trail: hands `each` every record matching `params` (the
    /// filters of `GET /v1/audit`) after `after`, oldest first, then every
    /// new one as the server makes it durable. When a stream ends (the
    /// server ends each after a few minutes) or breaks, it reconnects,
    /// resuming after the last record received (`Last-Event-ID`), with a
    /// fresh proof. Returns only with an error: the server refusing the
    /// reader, `each` failing, or [`FOLLOW_ATTEMPTS`] failed connections in
    /// a row.
    ///
    /// # Errors
    /// As above.
    pub async fn follow(
        &self,
        params: &[(&str, String)],
        mut after: u64,
        mut each: impl FnMut(Record) -> Result<()>,
    ) -> Result<()> {
        let mut failures = 0u32;
        loop {
            match self.stream_once(params, &mut after, &mut each).await {
                StreamEnd::Fatal(error) => return Err(error),
                StreamEnd::Ended => {
                    failures = 0;
                    tracing::debug!(after, "audit stream ended; reconnecting");
                }
                StreamEnd::Retry(error) => {
                    failures += 1;
                    if failures >= FOLLOW_ATTEMPTS {
                        return Err(error.context("following the audit trail"));
                    }
                    tracing::debug!(error = %format!("{error:#}"), after, "audit stream ended; reconnecting");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(failures.min(5))))
                        .await;
                }
            }
        }
    }

    async fn stream_once(
        &self,
        params: &[(&str, String)],
        after: &mut u64,
        each: &mut impl FnMut(Record) -> Result<()>,
    ) -> StreamEnd {
        let url = format!("{}{}", self.base, mandate_audit::access::PATH);
        let request = match self.authorized(
            self.streaming
                .get(&url)
                .query(params)
                .header("accept", "text/event-stream")
                .header("last-event-id", after.to_string()),
        ) {
            Ok(request) => request,
            Err(error) => return StreamEnd::Fatal(error),
        };
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return StreamEnd::Retry(anyhow!(error).context(format!("asking {url}"))),
        };
        let status = response.status();
        if !status.is_success() {
            let body: Option<mandate_verifier::ErrorBody> = response.json().await.ok();
            let error = match body {
                Some(body) => anyhow!("{url}: {status}: {}", body.error.message),
                None => anyhow!("{url}: {status}"),
            };
            return if status.is_server_error() || status.as_u16() == 429 {
                StreamEnd::Retry(error)
            } else {
                StreamEnd::Fatal(error)
            };
        }
        let mut events = response.bytes_stream().eventsource();
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(error) => {
                    tracing::debug!(%error, "audit stream broken");
                    return StreamEnd::Ended;
                }
            };
            if event.event != "record" {
                continue;
            }
            let record: Record = match serde_json::from_str(&event.data) {
                Ok(record) => record,
                Err(error) => {
                    return StreamEnd::Fatal(anyhow!("{url}: a record that does not read: {error}"))
                }
            };
            // The event's id is the record's position (its sequence number in
            // a server's own log; its place in a trail shared by replicas).
            let position = event.id.trim().parse::<u64>().unwrap_or(record.seq);
            *after = (*after).max(position);
            if let Err(error) = each(record) {
                return StreamEnd::Fatal(error);
            }
        }
        StreamEnd::Ended
    }
}
