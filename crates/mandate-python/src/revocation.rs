//! Revocations from Python: a local sled store an embedded verifier consults,
//! and a client that writes to a remote registry.
//!
//! Both reuse `mandate-registry` as is: the store is `IndexingStore<SledStore>`
//! (every append reaches the in-process index before it returns, as in
//! `mandate serve --store`), and the client is `RegistryClient`, which signs
//! each write with the operator's proof of possession.

use std::path::PathBuf;

use mandate_registry::{
    IndexingStore, NewRevocation, RegistryAuth, RevocationEntry, RevocationKind,
    RevocationStore as _, SharedIndex, SledStore,
};
use pyo3::prelude::*;
use pyo3::types::PyAny;

use crate::errors;
use crate::request;

fn kind(text: &str) -> PyResult<RevocationKind> {
    text.parse()
        .map_err(|e: mandate_registry::UnknownKind| errors::registry(e.into()))
}

/// The entry as a `dict`.
fn entry<'py>(py: Python<'py>, entry: &RevocationEntry) -> PyResult<Bound<'py, PyAny>> {
    request::to_python(py, entry)
}

/// A revocation log on disk (sled), for one process that both revokes and
/// verifies. Another process cannot open the same folder at the same time.
#[pyclass(module = "mandate", frozen)]
pub struct RevocationStore {
    inner: IndexingStore<SledStore>,
    path: PathBuf,
}

impl RevocationStore {
    /// The index verifiers consult.
    pub fn index(&self) -> SharedIndex {
        self.inner.index()
    }
}

#[pymethods]
impl RevocationStore {
    /// Opens the store in folder `path`, creating it when `create` is true
    /// (otherwise a missing store is an error, so a typo never revokes
    /// nothing).
    #[new]
    #[pyo3(signature = (path, *, create=false))]
    fn new(py: Python<'_>, path: PathBuf, create: bool) -> PyResult<RevocationStore> {
        let store = py
            .detach(|| {
                if create {
                    SledStore::open(&path)
                } else {
                    SledStore::open_existing(&path)
                }
            })
            .map_err(errors::registry)?;
        let inner = IndexingStore::new(store).map_err(errors::registry)?;
        Ok(RevocationStore { inner, path })
    }

    /// Revokes `value` as `kind` (`token_id`, `principal`, `agent`, `task`);
    /// durable when this returns. Returns the entry.
    #[pyo3(signature = (kind, value, reason="", revoked_by="python"))]
    fn revoke<'py>(
        &self,
        py: Python<'py>,
        kind: &str,
        value: &str,
        reason: &str,
        revoked_by: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let new = NewRevocation::revoke(self::kind(kind)?, value, reason, revoked_by)
            .map_err(errors::registry)?;
        let stored = py
            .detach(|| self.inner.append(new))
            .map_err(errors::registry)?;
        entry(py, &stored)
    }

    fn __repr__(&self) -> String {
        errors::redacted(&format!("RevocationStore({:?})", self.path))
    }
}

/// A client of a revocation registry (`mandate serve`, `mandate registry
/// serve`) that writes revocations with an operator's mandate.
#[pyclass(module = "mandate", frozen)]
pub struct RegistryClient {
    client: mandate_registry::RegistryClient,
    auth: RegistryAuth,
}

#[pymethods]
impl RegistryClient {
    /// `token` grants `registry:revoke`; `key_file` is its holder's key
    /// file (read as `mandate revoke --auth-key` reads it), which signs every
    /// write, bound to its method, path and body.
    #[new]
    #[pyo3(signature = (url, token, key_file=None))]
    fn new(url: &str, token: &str, key_file: Option<PathBuf>) -> PyResult<RegistryClient> {
        let client = mandate_registry::RegistryClient::new(url).map_err(errors::registry)?;
        let auth = match key_file {
            Some(path) => {
                let key = mandate_core::SecretKey::read(&path).map_err(errors::core)?;
                RegistryAuth::keyed(token.trim(), key).map_err(errors::registry)?
            }
            None => RegistryAuth::bearer(token.trim()),
        };
        Ok(RegistryClient { client, auth })
    }

    /// Revokes `value` as `kind`; returns the stored entry.
    #[pyo3(signature = (kind, value, reason=""))]
    fn revoke<'py>(
        &self,
        py: Python<'py>,
        kind: &str,
        value: &str,
        reason: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let kind = self::kind(kind)?;
        let stored = py.detach(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| errors::RegistryError::new_err(format!("starting a runtime: {e}")))?;
            runtime
                .block_on(self.client.revoke(&self.auth, kind, value, reason))
                .map_err(errors::registry)
        })?;
        entry(py, &stored)
    }

    fn __repr__(&self) -> String {
        errors::redacted(&format!("RegistryClient({:?})", self.client.base_url()))
    }
}
