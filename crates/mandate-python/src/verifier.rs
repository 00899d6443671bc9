//! An embedded verifier for Python: `Policy`, `Verifier` and the `Decision`
//! it returns.
//!
//! This is `mandate_verifier::Verifier` itself — the same signature, chain,
//! proof-of-possession, revocation and run-limit checks as every other
//! verifier; nothing is decided in Python.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mandate_core::{KeySet, Proof};
use mandate_verifier::{Decision as RustDecision, Reason};
use pyo3::prelude::*;
use pyo3::types::PyAny;

use crate::errors;
use crate::keys::PublicKey;
use crate::request::{self, AttrArg, DurationArg};
use crate::revocation::RevocationStore;
use crate::token::TokenArg;

/// Shortest and longest proof-of-possession windows, as `mandate authorize
/// --pop-window` accepts them.
const POP_WINDOW: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(600));

/// A trusted root: a `PublicKey` (no key id) or a `--root-pub` text.
#[derive(FromPyObject)]
pub enum RootArg {
    /// A key without an id.
    Key(PublicKey),
    /// `ed25519/<hex>`, `ID=ed25519/<hex>`, `PATH` or `ID=PATH`.
    Text(String),
}

/// A service policy in Datalog (`allow if ...` / `deny if ...`).
#[pyclass(module = "mandate", frozen, from_py_object)]
#[derive(Clone)]
pub struct Policy {
    inner: mandate_verifier::Policy,
}

#[pymethods]
impl Policy {
    /// Parses and vets a policy's text; `name` appears in errors.
    #[new]
    #[pyo3(signature = (source, name="policy"))]
    fn new(source: &str, name: &str) -> PyResult<Policy> {
        mandate_verifier::Policy::from_source(name, source)
            .map(|inner| Policy { inner })
            .map_err(errors::verifier)
    }

    /// Reads a policy file.
    #[staticmethod]
    fn from_file(path: PathBuf) -> PyResult<Policy> {
        mandate_verifier::Policy::from_file(&path)
            .map(|inner| Policy { inner })
            .map_err(errors::verifier)
    }

    /// The built-in default policy.
    #[staticmethod]
    fn default() -> Policy {
        Policy {
            inner: mandate_verifier::Policy::default_policy(),
        }
    }

    /// The policy's name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// The policy's Datalog text.
    #[getter]
    fn source(&self) -> &str {
        self.inner.source()
    }

    fn __repr__(&self) -> String {
        format!("Policy(name={:?})", self.inner.name())
    }
}

/// Decides requests: signatures against trusted roots, the delegation chain,
/// the acting agent's proof of possession, revocations (with a store), then
/// the token's checks and the policy under explicit run limits.
#[pyclass(module = "mandate", frozen)]
pub struct Verifier {
    inner: mandate_verifier::Verifier,
}

#[pymethods]
impl Verifier {
    /// `root_keys`: the trusted roots. `revocations`: a `RevocationStore`
    /// whose entries deny; without one, revocations are not checked.
    /// `refuse_proofs_from_before_start`: refuse proofs dated before this
    /// verifier was made (its replay memory starts empty, so a proof
    /// captured before a restart could be used again within its window);
    /// for services whose callers sign a fresh proof per call.
    #[new]
    #[pyo3(signature = (
        root_keys,
        policy=None,
        *,
        require_pop=false,
        pop_window=None,
        revocations=None,
        refuse_proofs_from_before_start=false
    ))]
    fn new(
        root_keys: Vec<RootArg>,
        policy: Option<Policy>,
        require_pop: bool,
        pop_window: Option<DurationArg>,
        revocations: Option<PyRef<'_, RevocationStore>>,
        refuse_proofs_from_before_start: bool,
    ) -> PyResult<Verifier> {
        let mut keys = KeySet::new();
        for root in root_keys {
            match root {
                RootArg::Key(key) => keys.insert(None, key.inner),
                RootArg::Text(text) => keys.add_arg(&text).map_err(errors::core)?,
            }
        }
        let mut builder = mandate_verifier::Verifier::builder()
            .root_keys(keys)
            .require_pop(require_pop)
            .refuse_proofs_from_before_start(refuse_proofs_from_before_start);
        if let Some(policy) = policy {
            builder = builder.policy(policy.inner);
        }
        if let Some(window) = pop_window {
            builder =
                builder.pop_window(window.resolve("pop_window", POP_WINDOW.0, POP_WINDOW.1)?);
        }
        if let Some(store) = revocations {
            builder = builder.revocation(Arc::new(store.index()));
        }
        let inner = builder.build().map_err(errors::verifier)?;
        Ok(Verifier { inner })
    }

    /// Whether decisions consult revocations.
    #[getter]
    fn checks_revocation(&self) -> bool {
        self.inner.checks_revocation()
    }

    /// Decides one request. Returns a `Decision` (allowed or denied, and
    /// why); raises for a token that cannot be judged at all (malformed,
    /// untrusted root, expired).
    #[pyo3(signature = (token, service, operation, resource, attrs=None, *, pop=None, at=None))]
    #[allow(clippy::too_many_arguments)] // reason: the request's fields, as keywords.
    fn authorize(
        &self,
        py: Python<'_>,
        token: TokenArg<'_>,
        service: &str,
        operation: &str,
        resource: &str,
        attrs: Option<BTreeMap<String, AttrArg>>,
        pop: Option<&str>,
        at: Option<f64>,
    ) -> PyResult<Decision> {
        let mut request = request::build(service, operation, resource, attrs, at)?;
        if let Some(proof) = pop {
            request = request.with_proof(Proof::parse(proof).map_err(errors::core)?);
        }
        let text = token.text();
        let verifier = &self.inner;
        let decision = py
            .detach(|| verifier.authorize(&text, &request))
            .map_err(errors::verifier)?;
        Ok(Decision { inner: decision })
    }

    fn __repr__(&self) -> String {
        format!(
            "Verifier(policy={:?}, checks_revocation={})",
            self.inner.policy().name(),
            self.inner.checks_revocation()
        )
    }
}

/// The outcome of one authorization, ready for an audit record.
#[pyclass(module = "mandate", frozen)]
pub struct Decision {
    pub(crate) inner: RustDecision,
}

#[pymethods]
impl Decision {
    /// Whether the request may proceed.
    #[getter]
    fn allowed(&self) -> bool {
        self.inner.allowed
    }
    /// Who the agent acts for.
    #[getter]
    fn principal(&self) -> &str {
        &self.inner.principal
    }
    /// The acting agent.
    #[getter]
    fn agent(&self) -> &str {
        &self.inner.agent
    }
    /// The agents from the first to the acting one.
    #[getter]
    fn chain(&self) -> Vec<String> {
        self.inner.chain.clone()
    }
    /// Hops from the first agent to the acting one.
    #[getter]
    fn depth(&self) -> u32 {
        self.inner.depth
    }
    /// The task.
    #[getter]
    fn task(&self) -> &str {
        &self.inner.task
    }
    /// The token id (hex).
    #[getter]
    fn token_id(&self) -> &str {
        &self.inner.token_id
    }
    /// A stable label: `allowed`, `failed_checks`, `revoked`, ...
    #[getter]
    fn reason_kind(&self) -> &'static str {
        self.inner.reason.kind()
    }
    /// Why, as one sentence (failing checks name their block and its author).
    #[getter]
    fn reason(&self) -> String {
        self.inner.reason.to_string()
    }
    /// The failing checks: `block` (0 = authority, `None` = policy), `check`,
    /// `rule`, `author`.
    #[getter]
    fn failed_checks<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match &self.inner.reason {
            Reason::FailedChecks { checks } => request::to_python(py, checks),
            _ => request::to_python(py, &Vec::<()>::new()),
        }
    }
    /// The whole decision as a `dict` (the audit record's shape).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        request::to_python(py, &self.inner)
    }

    fn __bool__(&self) -> bool {
        self.inner.allowed
    }

    fn __repr__(&self) -> String {
        format!(
            "Decision(allowed={}, principal={:?}, chain={:?}, reason={:?})",
            if self.inner.allowed { "True" } else { "False" },
            self.inner.principal,
            self.inner.chain,
            self.inner.reason.to_string()
        )
    }
}
