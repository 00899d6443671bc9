//! `Token`: a mandate as an agent holds it — inspect it, narrow it offline
//! (unsigned or as a signed hop), and prove possession for one request.
//!
//! A `Token` is parsed, never trusted: reading claims for a decision is the
//! verifier's job. Its `repr` shows a fingerprint, never the token text.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use mandate_core::{NextAgent, Proof, ResourcePath, Restrictions, UnverifiedMandate};
use pyo3::prelude::*;
use pyo3::types::PyAny;

use crate::errors;
use crate::keys::{PublicKeyArg, SecretKey};
use crate::request::{self, AttrArg, DurationArg};

/// A mandate (a Biscuit token), parsed but not verified.
#[pyclass(module = "mandate", frozen)]
pub struct Token {
    pub(crate) inner: UnverifiedMandate,
    pub(crate) text: String,
}

impl Token {
    pub(crate) fn from_unverified(inner: UnverifiedMandate) -> PyResult<Token> {
        let text = inner.to_base64().map_err(errors::core)?;
        Ok(Token { inner, text })
    }
}

/// A token given as a `Token` or as its text.
#[derive(FromPyObject)]
pub enum TokenArg<'py> {
    /// Already parsed.
    Token(Bound<'py, Token>),
    /// The base64 text.
    Text(String),
}

impl TokenArg<'_> {
    /// The token's text, as a verifier takes it.
    pub fn text(&self) -> String {
        match self {
            TokenArg::Token(token) => token.get().text.clone(),
            TokenArg::Text(text) => text.clone(),
        }
    }
}

fn parse_each<T>(
    values: Option<Vec<String>>,
    parse: impl Fn(&str) -> Result<T, mandate_core::Error>,
) -> PyResult<Vec<T>> {
    values
        .unwrap_or_default()
        .iter()
        .map(|v| parse(v))
        .collect::<Result<_, _>>()
        .map_err(errors::core)
}

#[pymethods]
impl Token {
    /// Parses a token's base64 text (surrounding whitespace ignored).
    #[new]
    pub(crate) fn new(text: &str) -> PyResult<Token> {
        let inner = UnverifiedMandate::from_base64(text).map_err(errors::core)?;
        Ok(Token {
            inner,
            text: text.trim().to_string(),
        })
    }

    /// The token's base64 text: a credential, so it is never in `repr`.
    #[getter]
    fn text(&self) -> &str {
        &self.text
    }

    /// A short, non-reversible name for logs (`sha256:<16 hex>`).
    #[getter]
    fn fingerprint(&self) -> String {
        mandate_core::fingerprint(&self.text)
    }

    /// The last block's revocation id (hex): revokes this token and everything
    /// delegated from it.
    #[getter]
    fn token_id(&self) -> String {
        self.inner.token_id_hex()
    }

    /// The authority block's revocation id (hex): revokes the whole tree.
    #[getter]
    fn root_id(&self) -> String {
        self.inner.root_id_hex()
    }

    /// SHA-256 over every block's signature (hex); what proofs sign.
    #[getter]
    fn digest(&self) -> String {
        self.inner.digest_hex()
    }

    /// Number of blocks, the authority block included.
    #[getter]
    fn block_count(&self) -> usize {
        self.inner.block_count()
    }

    /// Every block's revocation id (hex), authority first.
    #[getter]
    fn revocation_ids(&self) -> Vec<String> {
        self.inner
            .revocation_ids()
            .iter()
            .map(|id| hex_encode(id))
            .collect()
    }

    /// A report of what the token says (a `dict`); with `root_keys`, whether
    /// its signatures verify (`report["signature"]["status"]`).
    #[pyo3(signature = (root_keys=None))]
    fn inspect<'py>(
        &self,
        py: Python<'py>,
        root_keys: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let keys = root_keys
            .map(|keys| crate::keys::key_set(&keys))
            .transpose()?;
        let report = mandate_core::inspect(&self.inner, keys.as_ref(), SystemTime::now())
            .map_err(errors::core)?;
        request::to_python(py, &report)
    }

    /// Narrows the token offline, with the restrictions of `mandate delegate`
    /// in the same text forms. Unsigned without `signer`; with `signer` (the
    /// current holder's key) the block is signed by the holder, and with `to`
    /// and `to_key` it hands the authority to that agent (a hop).
    #[pyo3(signature = (
        *,
        operations=None,
        services=None,
        resource_prefixes=None,
        resources=None,
        attr_range=None,
        url_hosts=None,
        attr_max=None,
        attr_in=None,
        max_depth=None,
        checks=None,
        ttl=None,
        signer=None,
        to=None,
        to_key=None,
    ))]
    #[allow(clippy::too_many_arguments)] // reason: one keyword per `mandate delegate` flag.
    fn delegate(
        &self,
        py: Python<'_>,
        operations: Option<Vec<String>>,
        services: Option<Vec<String>>,
        resource_prefixes: Option<Vec<String>>,
        resources: Option<Vec<String>>,
        attr_range: Option<Vec<String>>,
        url_hosts: Option<Vec<String>>,
        attr_max: Option<Vec<String>>,
        attr_in: Option<Vec<String>>,
        max_depth: Option<u32>,
        checks: Option<Vec<String>>,
        ttl: Option<DurationArg>,
        signer: Option<Bound<'_, SecretKey>>,
        to: Option<String>,
        to_key: Option<PublicKeyArg>,
    ) -> PyResult<Token> {
        let mut restrictions = Restrictions {
            operations: operations.unwrap_or_default(),
            services: services.unwrap_or_default(),
            resource_prefixes: parse_each(resource_prefixes, ResourcePath::parse)?,
            resources: parse_each(resources, ResourcePath::parse)?,
            attr_range: parse_each(attr_range, Restrictions::parse_attr_range)?,
            url_hosts: parse_each(url_hosts, Restrictions::parse_url_hosts)?,
            attr_max: parse_each(attr_max, Restrictions::parse_attr_max)?,
            attr_in: parse_each(attr_in, Restrictions::parse_attr_in)?,
            expires_at: None,
            max_depth,
            checks: checks.unwrap_or_default(),
        };
        if let Some(ttl) = ttl {
            let ttl = ttl.resolve("ttl", Duration::from_secs(1), mandate_issuer::MAX_TTL)?;
            restrictions.expires_at = Some(SystemTime::now() + ttl);
        }
        let next = match (to, to_key) {
            (Some(name), Some(key)) => Some(NextAgent {
                name,
                key: key.resolve()?,
            }),
            (None, None) => None,
            _ => return Err(errors::invalid("give `to` and `to_key` together")),
        };
        if next.is_some() && signer.is_none() {
            return Err(errors::invalid(
                "a hop to another agent needs `signer`, the current holder's key",
            ));
        }
        // Frozen classes are shared without a borrow flag, so the key can be
        // read while the interpreter runs other threads.
        let signer = signer.as_ref().map(|key| &key.get().inner);
        let token = &self.inner;
        let child = py.detach(move || match signer {
            Some(key) => mandate_core::delegate_signed(token, key, next.as_ref(), &restrictions),
            None => mandate_core::delegate(token, &restrictions),
        });
        Token::from_unverified(child.map_err(errors::core)?)
    }

    /// A proof of possession by `key` for one request on this token
    /// (`v1.<millis>.<nonce>.<signature>`), made at `at` (Unix seconds) or now.
    #[pyo3(signature = (key, service, operation, resource, attrs=None, at=None))]
    fn prove(
        &self,
        key: Bound<'_, SecretKey>,
        service: &str,
        operation: &str,
        resource: &str,
        attrs: Option<BTreeMap<String, AttrArg>>,
        at: Option<f64>,
    ) -> PyResult<String> {
        let request = request::build(service, operation, resource, attrs, at)?;
        Ok(Proof::sign(
            &key.get().inner,
            &self.inner.digest_hex(),
            &request,
            request.time,
        )
        .to_text())
    }

    fn __repr__(&self) -> String {
        format!(
            "Token({}, blocks={})",
            mandate_core::fingerprint(&self.text),
            self.inner.block_count()
        )
    }

    fn __str__(&self) -> String {
        self.__repr__()
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
