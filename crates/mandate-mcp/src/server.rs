//! `Guarded`: any tools-serving `ServerHandler` behind an [`McpGuard`], so
//! no `tools/call` reaches it undecided.

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ListToolsResult, PaginatedRequestParams, ServerConfig,
    Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};

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
        self.guard.check(&mut request, &context.meta).await?;
        self.inner.call_tool(request, context).await
    }
}
