//! The issuer's task API from Python: `IssuerClient` opens a task (exchanges
//! a person's identity token for a mandate), refreshes the task's mandate
//! and closes the task.
//!
//! It is `mandate_issuer::client::IssuerClient`, the client `mandate task
//! open|refresh|close` uses: the same actor token, the same proofs of
//! possession over (`mandate-issuer`, `refresh`|`close`, `/v1/tasks/ID`),
//! the same reading of answers and refusals. The agent's key signs in Rust
//! and never crosses into Python; a refusal becomes an `IssuerError`
//! subclass carrying the HTTP status and the error code (`errors.rs`).

use std::time::Duration;

use mandate_core::Right;
use mandate_issuer::client::{IssuerClient as Client, OpenRequest};
use pyo3::prelude::*;

use crate::errors;
use crate::keys::SecretKey;
use crate::request::DurationArg;
use crate::token::{Token, TokenArg};

/// A client of an issuer (`mandate issuer serve`).
#[pyclass(module = "mandate", frozen)]
pub struct IssuerClient {
    client: Client,
    base: String,
    // One runtime per client, so connections are pooled across calls.
    runtime: tokio::runtime::Runtime,
}

/// What the issuer answered when a task was opened.
#[pyclass(module = "mandate", frozen)]
pub struct Issued {
    task_id: String,
    token: Py<Token>,
    expires_in: u64,
    scope: Vec<String>,
}

#[pymethods]
impl Issued {
    /// The task the mandate belongs to (`task-<uuid>`).
    #[getter]
    fn task_id(&self) -> &str {
        &self.task_id
    }

    /// The task's first mandate, held by the agent that opened it.
    #[getter]
    fn token(&self, py: Python<'_>) -> Py<Token> {
        self.token.clone_ref(py)
    }

    /// Seconds until the mandate expires (refresh before then).
    #[getter]
    fn expires_in(&self) -> u64 {
        self.expires_in
    }

    /// The rights granted (`SERVICE:OPERATION`), which may be fewer than asked.
    #[getter]
    fn scope(&self) -> Vec<String> {
        self.scope.clone()
    }

    fn __repr__(&self) -> String {
        format!(
            "Issued(task_id={:?}, token={}, expires_in={}, scope={:?})",
            self.task_id,
            mandate_core::fingerprint(&self.token.get().text),
            self.expires_in,
            self.scope
        )
    }
}

impl IssuerClient {
    /// Runs one call of the Rust client with the interpreter lock released.
    fn run<T: Send>(
        &self,
        py: Python<'_>,
        call: impl std::future::Future<Output = Result<T, mandate_issuer::client::ClientError>> + Send,
    ) -> PyResult<T> {
        py.detach(|| self.runtime.block_on(call))
            .map_err(|error| errors::issuer_client(py, error))
    }
}

#[pymethods]
impl IssuerClient {
    /// A client of the issuer at `base_url` (`http://127.0.0.1:7800`).
    #[new]
    fn new(py: Python<'_>, base_url: &str) -> PyResult<IssuerClient> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| errors::IssuerError::new_err(format!("starting a runtime: {e}")))?;
        let client = Client::new(base_url).map_err(|error| errors::issuer_client(py, error))?;
        Ok(IssuerClient {
            client,
            base: base_url.trim_end_matches('/').to_owned(),
            runtime,
        })
    }

    /// Opens a task: exchanges `subject_token` (the person's identity token
    /// from a trusted provider) for the task's first mandate, held by
    /// `agent` with `key`, as `mandate task open` does. `rights` are
    /// `SERVICE:OPERATION`; `audience` the services the mandate is for;
    /// `ttl` the task's requested lifetime (`"30m"` or seconds).
    #[pyo3(signature = (key, subject_token, *, agent, rights, audience=None, description="", ttl=None))]
    #[allow(clippy::too_many_arguments)] // reason: one keyword per `mandate task open` flag.
    fn open(
        &self,
        py: Python<'_>,
        key: Bound<'_, SecretKey>,
        subject_token: &str,
        agent: String,
        rights: Vec<String>,
        audience: Option<Vec<String>>,
        description: &str,
        ttl: Option<DurationArg>,
    ) -> PyResult<Issued> {
        let rights = rights
            .iter()
            .map(|r| r.parse::<Right>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(errors::core)?;
        let ttl = ttl
            .map(|ttl| ttl.resolve("ttl", Duration::from_secs(1), mandate_issuer::MAX_TTL))
            .transpose()?;
        let request = OpenRequest {
            subject_token: subject_token.trim().to_owned(),
            agent,
            rights,
            audience: audience.unwrap_or_default(),
            description: description.to_owned(),
            ttl,
        };
        let key = &key.get().inner;
        let response = self.run(py, self.client.open(key, &request))?;
        Ok(Issued {
            task_id: response.task_id,
            token: Py::new(py, Token::new(&response.access_token)?)?,
            expires_in: response.expires_in,
            scope: response
                .scope
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
        })
    }

    /// A fresh mandate for the open task `task`, presenting its current one
    /// (`token`) with a proof signed by the task's agent `key`.
    fn refresh(
        &self,
        py: Python<'_>,
        task: &str,
        token: TokenArg<'_>,
        key: Bound<'_, SecretKey>,
    ) -> PyResult<Token> {
        let text = token.text();
        let key = &key.get().inner;
        let response = self.run(py, self.client.refresh(task, &text, key))?;
        Token::new(&response.access_token)
    }

    /// Closes `task`: the issuer revokes every token of it at its registry,
    /// delegated ones included.
    fn close(
        &self,
        py: Python<'_>,
        task: &str,
        token: TokenArg<'_>,
        key: Bound<'_, SecretKey>,
    ) -> PyResult<()> {
        let text = token.text();
        let key = &key.get().inner;
        self.run(py, self.client.close(task, &text, key)).map(drop)
    }

    fn __repr__(&self) -> String {
        errors::redacted(&format!("IssuerClient({:?})", self.base))
    }
}
