//! Following an issuer's published root keys (`--root-keys-url`,
//! `roots.keys_url`): the verifier trusts what the issuer publishes at
//! `/.well-known/mandate-keys`, so a rotated root is trusted without a
//! restart and a retired one stops being trusted.
//!
//! The set is fetched in the background and refreshed when its
//! `Cache-Control: max-age` runs out (bounded to 1 s ..= 1 h; 5 min when the
//! issuer says nothing), revalidated with `If-None-Match` so an unchanged set
//! costs a `304` and no body. When the issuer cannot be reached, the last good
//! set keeps serving (a warning is logged, `/metrics` shows it stale, fetches
//! are retried with a growing delay) — each key still only within its own
//! `not_after`, which the verifier checks on every call. Until a first set is
//! loaded the verifier trusts nothing and `/readyz` says not ready.
//!
//! What is read is bounded (64 KiB, 64 keys, 5 s) and taken whole or not at
//! all: a garbled document leaves the last good set in force. Only `https://`
//! URLs are followed, or plain `http://` to a loopback address; redirects are
//! not followed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use mandate_core::KeySet;
use mandate_issuer::published::{PublishedKeys, MAX_DOCUMENT_BYTES};
use mandate_verifier::SharedKeySet;
use reqwest::header::{HeaderMap, CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use reqwest::{StatusCode, Url};

/// How long a set is kept when the issuer sends no `max-age`.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
/// The shortest wait between two fetches.
pub const MIN_REFRESH: Duration = Duration::from_secs(1);
/// The longest wait between two fetches, whatever `max-age` says.
pub const MAX_REFRESH: Duration = Duration::from_secs(3600);
/// The longest wait between two attempts while the issuer cannot be reached.
const MAX_RETRY: Duration = Duration::from_secs(30);
/// Each fetch's deadline.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Checks a key set URL: `https://`, or `http://` to a loopback address.
///
/// # Errors
/// A sentence saying what is wrong.
pub fn check_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("not a URL ({e})"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(
            "plain http is followed only to a loopback address (127.0.0.1, ::1, localhost); \
             use https"
                .into(),
        ),
        other => Err(format!("scheme `{other}` is not https")),
    }
}

fn is_loopback(url: &Url) -> bool {
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// How long the answer may be kept, from its `Cache-Control`.
fn max_age(headers: &HeaderMap) -> Duration {
    let directives = headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(cache_control::CacheControl::from_value);
    let age = match directives {
        Some(cc) if cc.no_store || cc.cachability == Some(cache_control::Cachability::NoCache) => {
            MIN_REFRESH
        }
        Some(cc) => cc.max_age.unwrap_or(DEFAULT_MAX_AGE),
        None => DEFAULT_MAX_AGE,
    };
    age.clamp(MIN_REFRESH, MAX_REFRESH)
}

/// What one fetch brought.
enum Fetched {
    Updated {
        keys: KeySet,
        etag: Option<String>,
        max_age: Duration,
    },
    NotModified {
        max_age: Duration,
    },
}

fn client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .pool_idle_timeout(mandate_verifier::http::CLIENT_POOL_IDLE)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("building the HTTP client")
}

async fn fetch(http: &reqwest::Client, url: &Url, etag: Option<&str>) -> Result<Fetched, String> {
    let mut request = http.get(url.clone());
    if let Some(tag) = etag {
        request = request.header(IF_NONE_MATCH, tag);
    }
    let mut response = request
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    let max_age = max_age(response.headers());
    let status = response.status();
    if status == StatusCode::NOT_MODIFIED && etag.is_some() {
        return Ok(Fetched::NotModified { max_age });
    }
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    if response
        .content_length()
        .is_some_and(|len| len > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(format!(
            "the key set is larger than {MAX_DOCUMENT_BYTES} bytes"
        ));
    }
    let etag = response
        .headers()
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| e.without_url().to_string())?
    {
        if bytes.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(format!(
                "the key set is larger than {MAX_DOCUMENT_BYTES} bytes"
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    let keys = PublishedKeys::parse(&bytes)
        .and_then(|document| document.to_key_set())
        .map_err(|e| e.to_string())?;
    Ok(Fetched::Updated {
        keys,
        etag,
        max_age,
    })
}

/// Fetches a published key set once (`mandate authorize --root-keys-url`).
///
/// # Errors
/// A URL that is not followed, an issuer that cannot be reached, or a
/// document that cannot be trusted.
pub async fn fetch_once(url: &str) -> Result<KeySet> {
    let parsed = check_url(url).map_err(anyhow::Error::msg)?;
    match fetch(&client()?, &parsed, None).await {
        Ok(Fetched::Updated { keys, .. }) if keys.is_empty() => {
            bail!("{url} publishes no root key")
        }
        Ok(Fetched::Updated { keys, .. }) => Ok(keys),
        Ok(Fetched::NotModified { .. }) => bail!("{url}: unexpected 304"),
        Err(error) => bail!("fetching root keys from {url}: {error}"),
    }
}

#[derive(Debug)]
struct State {
    etag: Option<String>,
    max_age: Duration,
    /// When the set was last confirmed (200 or 304).
    confirmed_at: Option<Instant>,
    /// Why the last attempt failed; `None` when it succeeded.
    failing: Option<String>,
}

/// What the operations endpoints read of a follower: readiness and metrics.
#[derive(Debug, Clone)]
pub struct FollowerStatus {
    url: String,
    keys: SharedKeySet,
    state: Arc<Mutex<State>>,
}

impl FollowerStatus {
    fn with<T>(&self, f: impl FnOnce(&State) -> T) -> Option<T> {
        self.state.lock().ok().map(|state| f(&state))
    }

    /// Ready once a first set was loaded and it trusts a key; the detail
    /// says how old the set is and whether the last fetch failed.
    pub fn readiness(&self) -> (bool, String) {
        let trusted = self.keys.len();
        let url = &self.url;
        self.with(|state| match (state.confirmed_at, &state.failing) {
            (None, failing) => (
                false,
                format!(
                    "no key set loaded from {url} yet: {}",
                    failing.as_deref().unwrap_or("first fetch pending")
                ),
            ),
            (Some(at), None) => (
                trusted > 0,
                format!(
                    "{trusted} root key(s) from {url}, confirmed {}s ago",
                    at.elapsed().as_secs()
                ),
            ),
            (Some(at), Some(error)) => (
                trusted > 0,
                format!(
                    "{trusted} root key(s) from {url}, STALE: the last good set is {}s old; \
                     the last fetch failed: {error}",
                    at.elapsed().as_secs()
                ),
            ),
        })
        .unwrap_or((false, "follower state unavailable".to_owned()))
    }

    /// Sets the key set gauges (`/metrics`): keys trusted, seconds since the
    /// set was last confirmed, and whether it is stale (never loaded, or
    /// the last fetch failed).
    pub fn observe(&self) {
        let trusted = self.keys.len();
        let (age, stale) = self
            .with(|state| {
                (
                    state
                        .confirmed_at
                        .map_or(f64::INFINITY, |at| at.elapsed().as_secs_f64()),
                    state.confirmed_at.is_none() || state.failing.is_some(),
                )
            })
            .unwrap_or((f64::INFINITY, true));
        // A count of at most 64 keys is exact as f64.
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("mandate_root_keys_trusted").set(trusted as f64);
        metrics::gauge!("mandate_root_keys_age_seconds").set(age);
        metrics::gauge!("mandate_root_keys_stale").set(if stale { 1.0 } else { 0.0 });
    }
}

/// Keeps a [`SharedKeySet`] equal to what an issuer publishes.
#[derive(Debug)]
pub struct KeyFollower {
    url: Url,
    http: reqwest::Client,
    status: FollowerStatus,
}

/// The follower's background task; stopped when dropped.
#[derive(Debug)]
pub struct FollowerTask(tokio::task::JoinHandle<()>);

impl Drop for FollowerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl KeyFollower {
    /// A follower of `url` that replaces `keys` with each new set.
    ///
    /// # Errors
    /// A URL that is not followed.
    pub fn new(url: &str, keys: SharedKeySet) -> Result<KeyFollower> {
        let parsed = check_url(url).map_err(|message| anyhow::anyhow!("{url}: {message}"))?;
        Ok(KeyFollower {
            url: parsed,
            http: client()?,
            status: FollowerStatus {
                url: url.to_owned(),
                keys,
                state: Arc::new(Mutex::new(State {
                    etag: None,
                    max_age: DEFAULT_MAX_AGE,
                    confirmed_at: None,
                    failing: None,
                })),
            },
        })
    }

    /// Its readiness and metrics.
    pub fn status(&self) -> FollowerStatus {
        self.status.clone()
    }

    /// One fetch; on success, how long until the next.
    ///
    /// # Errors
    /// Why the fetch failed (the last good set stays in force).
    pub async fn refresh(&self) -> Result<Duration, String> {
        let etag = self.status.with(|s| s.etag.clone()).flatten();
        let fetched = fetch(&self.http, &self.url, etag.as_deref()).await;
        let Ok(mut state) = self.status.state.lock() else {
            return Err("follower state unavailable".into());
        };
        match fetched {
            Ok(Fetched::Updated {
                keys,
                etag,
                max_age,
            }) => {
                let count = keys.len();
                if count == 0 {
                    tracing::warn!(url = %self.status.url, "the issuer publishes no root key: every token is refused");
                }
                self.status.keys.replace(keys);
                state.etag = etag;
                state.max_age = max_age;
                state.confirmed_at = Some(Instant::now());
                state.failing = None;
                metrics::counter!("mandate_root_keys_fetches_total", "outcome" => "updated")
                    .increment(1);
                tracing::info!(url = %self.status.url, keys = count, "root key set loaded");
                Ok(max_age)
            }
            Ok(Fetched::NotModified { max_age }) => {
                state.max_age = max_age;
                state.confirmed_at = Some(Instant::now());
                state.failing = None;
                metrics::counter!("mandate_root_keys_fetches_total", "outcome" => "not_modified")
                    .increment(1);
                Ok(max_age)
            }
            Err(error) => {
                state.failing = Some(error.clone());
                metrics::counter!("mandate_root_keys_fetches_total", "outcome" => "failed")
                    .increment(1);
                Err(error)
            }
        }
    }

    /// Fetches now, then whenever the set's `max-age` runs out, for as long
    /// as the returned task lives. Call inside a Tokio runtime.
    pub fn spawn(self) -> FollowerTask {
        FollowerTask(tokio::spawn(async move {
            let mut retry = MIN_REFRESH;
            loop {
                let wait = match self.refresh().await {
                    Ok(next) => {
                        retry = MIN_REFRESH;
                        next
                    }
                    Err(error) => {
                        tracing::warn!(url = %self.status.url, %error, retry_in = ?retry,
                            "fetching the root key set failed; still trusting the last good set");
                        let wait = retry;
                        retry = (retry * 2).min(MAX_RETRY);
                        wait
                    }
                };
                tokio::time::sleep(wait).await;
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn max_age_is_read_from_cache_control_and_bounded() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(CACHE_CONTROL, HeaderValue::from_str(value).unwrap());
            max_age(&headers)
        };
        assert_eq!(with("public, max-age=60"), Duration::from_secs(60));
        assert_eq!(with("max-age=0"), MIN_REFRESH);
        assert_eq!(with("max-age=999999"), MAX_REFRESH);
        assert_eq!(with("no-store"), MIN_REFRESH);
        assert_eq!(max_age(&HeaderMap::new()), DEFAULT_MAX_AGE);
    }
}
