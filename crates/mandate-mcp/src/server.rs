//! `Guarded`: any tools-serving `ServerHandler` behind an [`McpGuard`], so
//! no `tools/call` reaches it undecided.

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ListToolsResult, PaginatedRequestParams, ServerConfig,
    Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};

use crate::audit::AuditTrail;
use crate::guard::McpGuard;

/// A server whose every `tools/call` is decided by `guard` first; tool
/// listing and server information come from `inner` unchanged. Other MCP
/// features (prompts, resources) are not forwarded: a guarded server
/// serves tools only.
#[derive(Debug, Clone)]
pub struct Guarded<H> {
    guard: McpGuard,
    inner: H,
}

impl<H> Guarded<H> {
    /// Puts `inner` behind `guard`.
    pub fn new(guard: McpGuard, inner: H) -> Guarded<H> {
        Guarded { guard, inner }
    }

    /// The same server, its guard recording every decision in `trail`
    /// before the client hears it; a call that cannot be recorded is
    /// refused ([`McpGuard::with_audit`]).
    #[must_use]
    pub fn with_audit(self, trail: AuditTrail) -> Guarded<H> {
        Guarded {
            guard: self.guard.with_audit(trail),
            inner: self.inner,
        }
    }

    /// The guard deciding the calls.
    pub fn guard(&self) -> &McpGuard {
        &self.guard
    }
}

impl<H: ServerHandler> ServerHandler for Guarded<H> {
    fn get_info(&self) -> ServerConfig {
        self.inner.get_info()
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.inner.list_tools(request, context).await
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.inner.get_tool(name)
    }

    async fn call_tool(
        &self,
        mut request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let request_id = context.id.to_string();
        self.guard
            .check(&mut request, &context.meta, &request_id)
            .await?;
        self.inner.call_tool(request, context).await
    }
}
