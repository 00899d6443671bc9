//! `McpGuard`: decides one `tools/call` with a `Verifier`, and records the
//! outcome in its audit trail when it has one.

use std::sync::Arc;
use std::time::SystemTime;

use mandate_core::{AttrValue, Proof, Request};
use mandate_verifier::{Decision, Verifier};
use rmcp::model::{CallToolRequestParams, ErrorData, JsonObject};

use mandate_core::print::shorten;

use crate::audit::{AuditTrail, Unjudged};
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
    audit: Option<AuditTrail>,
}

impl std::fmt::Debug for McpGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpGuard")
            .field("service", &self.service)
            .field("audit", &self.audit)
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
            audit: None,
        }
    }

    /// The same guard, recording every decision in `trail` before the
    /// caller hears it (fail closed: an unrecorded call is refused).
    #[must_use]
    pub fn with_audit(mut self, trail: AuditTrail) -> McpGuard {
        self.audit = Some(trail);
        self
    }

    /// The trail decisions are recorded in, if any.
    pub fn audit(&self) -> Option<&AuditTrail> {
        self.audit.as_ref()
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
        let request = self.unproven(params, now)?;
        match &credentials.pop {
            Some(proof) => Proof::parse(proof)
                .map(|proof| request.with_proof(proof))
                .map_err(|e| refusal::malformed(&e.to_string())),
            None => Ok(request),
        }
    }

    /// The request of a call without its proof: the server's mapping of the
    /// arguments, validated as every Mandate request is.
    fn unproven(
        &self,
        params: &CallToolRequestParams,
        now: SystemTime,
    ) -> Result<Request, ErrorData> {
        let empty = JsonObject::new();
        let arguments = params.arguments.as_ref().unwrap_or(&empty);
        let scope = (self.mapping)(&params.name, arguments)
            .map_err(|message| ErrorData::invalid_params(message, None))?;
        Request::validated(
            &self.service,
            &params.name,
            &scope.resource,
            scope.attrs,
            now,
        )
        .map_err(|e| ErrorData::invalid_params(e.to_string(), None))
    }

    /// Decides `params`, taking its credentials from `meta` (the request's
    /// `_meta`, `RequestContext::meta` in rmcp) or its reserved argument
    /// (which is removed). Returns the allowing decision; a denial, a
    /// missing or unusable mandate and bad arguments are MCP errors.
    /// `request_id` (the JSON-RPC id) names the call in audit records.
    ///
    /// Evaluation runs on a blocking thread, never on the async runtime.
    /// With an [`AuditTrail`] (see [`McpGuard::with_audit`]), the decision,
    /// or the refusal of a call that could not be judged, is recorded before
    /// this returns, and a call whose record cannot be written is refused
    /// whatever the decision was.
    ///
    /// # Errors
    /// [`crate::DENIED_CODE`] for a refusal (data `kind` says which, and is
    /// `audit_unavailable` when the record could not be written), invalid
    /// params for arguments the mapping refuses.
    pub async fn check(
        &self,
        params: &mut CallToolRequestParams,
        meta: &JsonObject,
        request_id: &str,
    ) -> Result<Decision, ErrorData> {
        // What the caller names is kept bounded in the trail, whoever calls.
        let request_id = &recorded_request_id(request_id);
        let credentials = Credentials::take(params, meta);
        let mapped = self.unproven(params, SystemTime::now());
        let tool = &shorten(params.name.to_string(), MAX_RECORDED_NAME);
        let fingerprint = credentials
            .as_ref()
            .map(|c| mandate_core::fingerprint(&c.token));
        // A call without a mandate learns nothing of how its arguments read.
        let Some(credentials) = credentials else {
            let resource = mapped.map(|r| r.resource.as_str().to_owned());
            let call = Unjudged {
                code: "missing_mandate",
                message: "no mandate came with the call",
                token: "",
                tool,
                resource: resource.as_deref().unwrap_or(""),
            };
            return Err(self.refuse(refusal::missing(), &call, request_id).await);
        };
        let fingerprint = fingerprint.unwrap_or_default();
        let mut request = match mapped {
            Ok(request) => request,
            Err(refused) => {
                // Escaped: the mapping's message may quote the arguments.
                let head: String = refused
                    .message
                    .chars()
                    .take(MAX_RECORDED_MESSAGE + 1)
                    .collect();
                let message = shorten(mandate_core::print::escape(&head), MAX_RECORDED_MESSAGE);
                let call = Unjudged {
                    code: "invalid_arguments",
                    message: &message,
                    token: &fingerprint,
                    tool,
                    resource: "",
                };
                return Err(self.refuse(refused, &call, request_id).await);
            }
        };
        let resource = request.resource.as_str().to_owned();
        if let Some(proof) = &credentials.pop {
            match Proof::parse(proof) {
                Ok(proof) => request = request.with_proof(proof),
                Err(error) => {
                    let message = error.to_string();
                    let call = Unjudged {
                        code: "malformed_proof",
                        message: &message,
                        token: &fingerprint,
                        tool,
                        resource: &resource,
                    };
                    return Err(self
                        .refuse(refusal::malformed(&message), &call, request_id)
                        .await);
                }
            }
        }
        let verifier = Arc::clone(&self.verifier);
        let token = credentials.token;
        let decided = tokio::task::spawn_blocking(move || verifier.authorize(&token, &request))
            .await
            .map_err(|_| ErrorData::internal_error("the mandate check did not finish", None))?;
        let decision = match decided {
            Ok(decision) => decision,
            Err(error) => {
                let message = error.to_string();
                let call = Unjudged {
                    code: refusal::unusable_code(&error),
                    message: &message,
                    token: &fingerprint,
                    tool,
                    resource: &resource,
                };
                return Err(self
                    .refuse(refusal::unusable(&error), &call, request_id)
                    .await);
            }
        };
        log(&decision, &fingerprint);
        if let Some(trail) = &self.audit {
            if let Err(error) = trail
                .record_decision(&decision, request_id, &fingerprint)
                .await
            {
                return Err(refusal::unrecorded(&error));
            }
        }
        if decision.allowed {
            Ok(decision)
        } else {
            Err(refusal::denied(&decision))
        }
    }

    /// `refused`, once recorded; a refusal saying the trail is unavailable
    /// when it could not be.
    async fn refuse(&self, refused: ErrorData, call: &Unjudged<'_>, request_id: &str) -> ErrorData {
        let Some(trail) = &self.audit else {
            return refused;
        };
        match trail.record_refusal(&self.service, call, request_id).await {
            Ok(_) => refused,
            Err(error) => refusal::unrecorded(&error),
        }
    }
}

/// The most of a tool's name the trail keeps, in bytes.
const MAX_RECORDED_NAME: usize = 128;
/// The most of a refusal's message the trail keeps, in bytes.
const MAX_RECORDED_MESSAGE: usize = 512;

/// The longest JSON-RPC id records keep as given (as servers keep an HTTP
/// `X-Request-Id`).
const MAX_REQUEST_ID: usize = 128;

/// The JSON-RPC id as records name the call: kept when it is 1 to
/// [`MAX_REQUEST_ID`] visible ASCII characters, otherwise its fingerprint,
/// so an id of megabytes or with line breaks neither grows nor forges the
/// trail.
fn recorded_request_id(id: &str) -> String {
    let visible = id.bytes().all(|b| b.is_ascii_graphic());
    if !id.is_empty() && id.len() <= MAX_REQUEST_ID && visible {
        id.to_owned()
    } else {
        format!("jsonrpc-{}", mandate_core::fingerprint(id))
    }
}

/// One log line per decision (target `mandate::audit`), naming the whole
/// chain; the token appears only as its fingerprint. The durable record, when
/// the guard has a trail, is [`AuditTrail`]'s.
fn log(decision: &Decision, fingerprint: &str) {
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
