//! `McpGuard`: decides one `tools/call` with a `Verifier`.

use std::sync::Arc;
use std::time::SystemTime;

use mandate_core::{AttrValue, Proof, Request};
use mandate_verifier::{Decision, Verifier};
use rmcp::model::{CallToolRequestParams, ErrorData, JsonObject};

use crate::credentials::Credentials;
use crate::refusal;

/// What a tool call is about, as the server reads it from the arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolScope {
    /// The resource (`resource(R)`), e.g. `/datasets/q3/revenue`.
    pub resource: String,
    /// Runtime conditions (`attr(K, V)`), e.g. an amount.
    pub attrs: Vec<(String, AttrValue)>,
}

impl ToolScope {
    /// A scope with a resource and no attributes.
    pub fn resource(resource: impl Into<String>) -> ToolScope {
        ToolScope {
            resource: resource.into(),
            attrs: Vec::new(),
        }
    }
}

/// The server's mapping from a tool and its arguments to a [`ToolScope`];
/// an `Err` refuses the call with that message (bad arguments).
pub type ToolMapping = dyn Fn(&str, &JsonObject) -> Result<ToolScope, String> + Send + Sync;

/// Decides every `tools/call` of one MCP server.
#[derive(Clone)]
pub struct McpGuard {
    verifier: Arc<Verifier>,
    service: String,
    mapping: Arc<ToolMapping>,
}

impl std::fmt::Debug for McpGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpGuard")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl McpGuard {
    /// A guard deciding calls as `service` (the server's name) with
    /// `verifier`, reading each call's scope with `mapping`.
    pub fn new(
        verifier: Verifier,
        service: impl Into<String>,
        mapping: impl Fn(&str, &JsonObject) -> Result<ToolScope, String> + Send + Sync + 'static,
    ) -> McpGuard {
        McpGuard {
            verifier: Arc::new(verifier),
            service: service.into(),
            mapping: Arc::new(mapping),
        }
    }

    /// The service name calls are decided as.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The request a call is decided as (and its proof signs), at `now`.
    ///
    /// # Errors
    /// An invalid-params MCP error when the mapping refuses the arguments or
    /// the request is malformed (bad names, resource, attributes, proof).
    pub fn request(
        &self,
        params: &CallToolRequestParams,
        credentials: &Credentials,
        now: SystemTime,
    ) -> Result<Request, ErrorData> {
        let empty = JsonObject::new();
        let arguments = params.arguments.as_ref().unwrap_or(&empty);
        let scope = (self.mapping)(&params.name, arguments)
            .map_err(|message| ErrorData::invalid_params(message, None))?;
        let mut request = Request::validated(
            &self.service,
            &params.name,
            &scope.resource,
            scope.attrs,
            now,
        )
        .map_err(|e| ErrorData::invalid_params(e.to_string(), None))?;
        if let Some(proof) = &credentials.pop {
            let proof = Proof::parse(proof).map_err(|e| refusal::malformed(&e.to_string()))?;
            request = request.with_proof(proof);
        }
        Ok(request)
    }

    /// Decides `params`, taking its credentials from `meta` (the request's
    /// `_meta`, `RequestContext::meta` in rmcp) or its reserved argument
    /// (which is removed). Returns the allowing decision; a denial, a
    /// missing or unusable mandate and bad arguments are MCP errors.
    ///
    /// Evaluation runs on a blocking thread, never on the async runtime.
    ///
    /// # Errors
    /// [`crate::DENIED_CODE`] for a refusal, invalid params for arguments the
    /// mapping refuses.
    pub async fn check(
        &self,
        params: &mut CallToolRequestParams,
        meta: &JsonObject,
    ) -> Result<Decision, ErrorData> {
        let Some(credentials) = Credentials::take(params, meta) else {
            return Err(refusal::missing());
        };
        let request = self.request(params, &credentials, SystemTime::now())?;
        let verifier = Arc::clone(&self.verifier);
        let token = credentials.token;
        let fingerprint = mandate_core::fingerprint(&token);
        let decided = tokio::task::spawn_blocking(move || verifier.authorize(&token, &request))
            .await
            .map_err(|_| ErrorData::internal_error("the mandate check did not finish", None))?;
        if let Ok(decision) = &decided {
            audit(decision, &fingerprint);
        }
        match decided {
            Ok(decision) if decision.allowed => Ok(decision),
            Ok(decision) => Err(refusal::denied(&decision)),
            Err(error) => Err(refusal::unusable(&error)),
        }
    }
}

/// One audit record per decision, naming the whole chain; the token appears
/// only as its fingerprint.
fn audit(decision: &Decision, fingerprint: &str) {
    tracing::info!(
        target: "mandate::audit",
        allowed = decision.allowed,
        principal = %decision.principal,
        chain = %decision.chain.join(" -> "),
        task = %decision.task,
        service = %decision.service,
        operation = %decision.operation,
        resource = %decision.resource,
        token = %fingerprint,
        reason = %decision.reason,
        "mcp tools/call"
    );
}
