//! A client of `GET /v1/audit`: pages of the trail from a running server,
//! presenting a mandate granting `audit:read` and, when its holder's key is
//! given, a fresh proof of possession per request. Never logs the token.

use std::time::SystemTime;

use anyhow::{bail, Context as _, Result};
use mandate_core::{Proof, SecretKey, UnverifiedMandate};

use crate::audit_api::AuditPage;

/// Reads a server's audit trail.
pub struct AuditClient {
    base: String,
    http: reqwest::Client,
    token: String,
    digest: String,
    key: Option<SecretKey>,
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
            .build()
            .context("building the HTTP client")?;
        Ok(AuditClient {
            base,
            http,
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
        let mut request = self
            .http
            .get(&url)
            .query(params)
            .header("authorization", format!("Bearer {}", self.token));
        if let Some(key) = &self.key {
            let now = SystemTime::now();
            let read = mandate_audit::access::read_request(now)?;
            let proof = Proof::sign(key, &self.digest, &read, now);
            request = request.header(mandate_verifier::http::POP_HEADER, proof.to_text());
        }
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
