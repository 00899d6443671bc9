//! What the registry asks of whoever decides its writes and reads: the
//! [`WriteAuthorizer`] contract, the HTTP request a mandate is judged
//! against, and the refusals it may answer.

/// The HTTP request a mandate is presented with, as the registry received it. A proof of
/// possession must cover all of it ([`crate::registry_request`]), so one captured from
/// a revoke authorizes neither a lift, nor a revoke of another value, nor a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpBinding<'a> {
    /// The method, e.g. `POST`.
    pub method: &'a str,
    /// The path of the registry API, without the query, e.g. `/v1/revocations/lift`.
    pub path: &'a str,
    /// The exact body bytes (empty for a `GET`).
    pub body: &'a [u8],
}

/// Decides who may write to, and read from, the registry.
pub trait WriteAuthorizer: Send + Sync {
    /// Checks the mandate of a write request and returns the actor name recorded as
    /// `revoked_by`. `proof` is the `Mandate-PoP` header; `request` is what it must cover.
    ///
    /// # Errors
    /// [`WriteDenied::Unauthenticated`] (HTTP 401) for a malformed, unverifiable or expired
    /// token, or a missing or wrong proof; [`WriteDenied::Forbidden`] (HTTP 403) for a
    /// valid token without the right. The message is sent to the client, so it must not
    /// contain secrets.
    fn authorize_write(
        &self,
        bearer: &str,
        proof: Option<&str>,
        request: &HttpBinding<'_>,
    ) -> std::result::Result<String, WriteDenied>;

    /// Checks the mandate of a read (list, status, stream) and returns who reads, for
    /// logs.
    ///
    /// # Errors
    /// As [`WriteAuthorizer::authorize_write`], for the right to read.
    fn authorize_read(
        &self,
        bearer: &str,
        proof: Option<&str>,
        request: &HttpBinding<'_>,
    ) -> std::result::Result<String, WriteDenied>;
}

/// The header carrying the acting agent's proof of possession.
pub const POP_HEADER: &str = "mandate-pop";

/// Why a write was refused. A decision, not a failure of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteDenied {
    /// The token is missing, malformed or not verifiable (HTTP 401).
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The token is valid but does not allow writing revocations (HTTP 403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The write could not be judged now (an evaluation limit under load, or the
    /// registry's own revocation state stale while its store is unreachable); the
    /// client should retry (HTTP 503).
    #[error("unavailable: {0}")]
    Unavailable(String),
}
