//! An identity provider's signing keys (a JSON Web Key Set), from a file or
//! a URL, cached.
//!
//! A key id the cached set does not hold triggers one reload (the provider
//! may have rotated), at most once per `min_refetch`, so a flood of tokens
//! with made-up key ids cannot turn the issuer into a load generator against
//! the provider. A set older than `max_age` is reloaded before use; when the
//! reload fails, the last good set keeps serving and the failure is logged.
//! Reads are bounded (1 MiB, 5 s) and only asymmetric keys are kept.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};

/// The largest key set document read.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Where a provider's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A JSON file (reread on an unknown key id, so rotation is a file swap).
    File(PathBuf),
    /// An `https://` (or, for loopback tests, `http://`) URL.
    Url(String),
}

/// Why no key could be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// The set was read, and holds no such key.
    #[error("no key with id `{0}` in the identity provider's key set")]
    UnknownKid(String),
    /// The token names no key id and the set holds more than one key.
    #[error("the token names no key id and the identity provider has several keys")]
    Ambiguous,
    /// The set could never be loaded.
    #[error("the identity provider's key set could not be loaded: {0}")]
    Unavailable(String),
}

#[derive(Debug)]
struct Loaded {
    keys: Arc<JwkSet>,
    at: Instant,
}

/// A cached key set.
#[derive(Debug)]
pub struct Jwks {
    source: JwksSource,
    loaded: RwLock<Option<Loaded>>,
    /// One reload at a time; waiting callers then read what it loaded.
    reloading: tokio::sync::Mutex<Option<Instant>>,
    max_age: Duration,
    min_refetch: Duration,
    http: reqwest::Client,
}

impl Jwks {
    /// A key set read from `source`, kept up to `max_age`, refetched on an
    /// unknown key id at most once per `min_refetch`.
    pub fn new(source: JwksSource, max_age: Duration, min_refetch: Duration) -> Jwks {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Jwks {
            source,
            loaded: RwLock::new(None),
            reloading: tokio::sync::Mutex::new(None),
            max_age,
            min_refetch,
            http,
        }
    }

    /// The source.
    pub fn source(&self) -> &JwksSource {
        &self.source
    }

    /// The key the cached set holds for `kid`, without any I/O: `None` when
    /// the set was never loaded, is older than `max_age`, or lacks the key.
    pub fn cached(&self, kid: Option<&str>) -> Option<Jwk> {
        let guard = self.loaded.read().ok()?;
        let loaded = guard.as_ref()?;
        if loaded.at.elapsed() > self.max_age {
            return None;
        }
        pick(&loaded.keys, kid).ok()
    }

    /// The key for `kid`, loading or reloading the set when needed.
    ///
    /// # Errors
    /// [`JwksError`].
    pub async fn find(&self, kid: Option<&str>) -> Result<Jwk, JwksError> {
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        let mut last = self.reloading.lock().await;
        // Another caller may have reloaded while this one waited.
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        let due = last.is_none_or(|at| at.elapsed() >= self.min_refetch) || self.is_stale();
        if due {
            *last = Some(Instant::now());
            match self.load().await {
                Ok(set) => {
                    if let Ok(mut guard) = self.loaded.write() {
                        *guard = Some(Loaded {
                            keys: Arc::new(set),
                            at: Instant::now(),
                        });
                    }
                }
                Err(error) => {
                    tracing::warn!(source = ?self.source, %error, "loading an identity provider's keys failed");
                    if !self.has_any() {
                        return Err(JwksError::Unavailable(error));
                    }
                }
            }
        }
        let guard = self
            .loaded
            .read()
            .map_err(|_| JwksError::Unavailable("lock poisoned".into()))?;
        match guard.as_ref() {
            Some(loaded) => pick(&loaded.keys, kid),
            None => Err(JwksError::Unavailable("never loaded".into())),
        }
    }

    fn is_stale(&self) -> bool {
        self.loaded
            .read()
            .ok()
            .and_then(|g| g.as_ref().map(|l| l.at.elapsed() > self.max_age))
            .unwrap_or(true)
    }

    fn has_any(&self) -> bool {
        self.loaded.read().map(|g| g.is_some()).unwrap_or(false)
    }

    async fn load(&self) -> Result<JwkSet, String> {
        let bytes = match &self.source {
            JwksSource::File(path) => {
                let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
                if bytes.len() > MAX_JWKS_BYTES {
                    return Err(format!(
                        "{} is larger than {MAX_JWKS_BYTES} bytes",
                        path.display()
                    ));
                }
                bytes
            }
            JwksSource::Url(url) => {
                let mut response = self
                    .http
                    .get(url)
                    .send()
                    .await
                    .map_err(|e| format!("{url}: {e}"))?;
                if !response.status().is_success() {
                    return Err(format!("{url}: HTTP {}", response.status()));
                }
                let mut bytes = Vec::new();
                while let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {e}"))? {
                    if bytes.len() + chunk.len() > MAX_JWKS_BYTES {
                        return Err(format!("{url}: larger than {MAX_JWKS_BYTES} bytes"));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                bytes
            }
        };
        parse(&bytes)
    }
}

/// Parses a key set, keeping only asymmetric keys: a symmetric key in a
/// provider's set would let anyone who reads the set sign tokens.
///
/// # Errors
/// The document is not a key set.
pub fn parse(bytes: &[u8]) -> Result<JwkSet, String> {
    // Keys of types this library does not know are skipped, not fatal: one
    // new key type at the provider must not lock everyone out.
    #[derive(serde::Deserialize)]
    struct Raw {
        keys: Vec<serde_json::Value>,
    }
    let raw: Raw = serde_json::from_slice(bytes).map_err(|e| format!("not a JWK set: {e}"))?;
    let keys = raw
        .keys
        .into_iter()
        .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
        .filter(|key| !matches!(key.algorithm, AlgorithmParameters::OctetKey(_)))
        .collect();
    Ok(JwkSet { keys })
}

fn pick(set: &JwkSet, kid: Option<&str>) -> Result<Jwk, JwksError> {
    match kid {
        Some(kid) => set
            .find(kid)
            .cloned()
            .ok_or_else(|| JwksError::UnknownKid(shown_kid(kid))),
        None => match set.keys.as_slice() {
            [only] => Ok(only.clone()),
            _ => Err(JwksError::Ambiguous),
        },
    }
}

/// A key id read from a token nobody verified yet, for messages and the
/// audit trail: escaped (it cannot forge a log line) and at most 64 bytes
/// (a stranger's kilobytes of key id are not written for every refusal).
pub(crate) fn shown_kid(kid: &str) -> String {
    mandate_core::print::shorten(mandate_core::print::escape(kid), 64)
}
