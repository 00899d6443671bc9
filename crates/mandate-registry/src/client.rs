//! HTTP client for the registry: operator calls (revoke, lift, list, status), and the
//! requests the verifier-side subscription (`subscription.rs`) streams with.
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

use serde::de::DeserializeOwned;

use crate::api::{is_valid_epoch, AckRequest, ErrorBody, ListPage, RegistryStatus, RevokeRequest};
use crate::entry::RevocationEntry;
use crate::error::{Error, Result};
use crate::index::SharedIndex;
use crate::kind::RevocationKind;
use crate::mandate::{registry_request, Access};
use crate::server::{HttpBinding, POP_HEADER};

/// Timeout for the operator calls (everything but the stream).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest error message kept from a registry error body.
pub(crate) const MAX_ERROR_MESSAGE: usize = 1024;
/// How often [`RegistryClient::snapshot`] starts over when the registry's log changes
/// while it reads.
const SNAPSHOT_ATTEMPTS: usize = 3;

/// The API paths, as signed in proofs of possession (independent of any path prefix
/// in the base URL, which a proxy in front of the registry strips).
const REVOCATIONS: &str = "/v1/revocations";
const LIFT: &str = "/v1/revocations/lift";
pub(crate) const STREAM: &str = "/v1/revocations/stream";
const STATUS: &str = "/v1/status";
pub(crate) const ACK: &str = "/v1/subscribers/ack";

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
            .pool_idle_timeout(mandate_verifier::http::CLIENT_POOL_IDLE)
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
    pub(crate) fn read_request(&self, path: &str) -> Result<reqwest::RequestBuilder> {
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

pub(crate) async fn check_status(response: reqwest::Response) -> Result<reqwest::Response> {
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

pub(crate) async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> Result<T> {
    check_status(response)
        .await?
        .json()
        .await
        .map_err(|e| Error::protocol("response body", e))
}

/// Refuses an epoch no registry of ours would send.
pub(crate) fn check_epoch(epoch: &str) -> Result<()> {
    if is_valid_epoch(epoch) {
        Ok(())
    } else {
        Err(Error::protocol(
            "log epoch",
            "expected 1 to 64 printable ASCII characters",
        ))
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
}
