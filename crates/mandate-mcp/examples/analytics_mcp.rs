//! An analytics MCP server over stdio, protected by Mandate: the tool server
//! of the quarterly-analytics scenario, used by the Python end-to-end test
//! and the Python example.
//!
//! Tools (service `analytics`, operation = tool name):
//! - `read_dataset {"path": "/datasets/q3/revenue"}` — resource = `path`.
//! - `export_dataset {"path": ...}` — resource = `path`.
//!
//! ```text
//! analytics_mcp --root-pub 1=ed25519/<hex> [--store DIR]
//!               [--audit-store DIR [--audit-key FILE]] [--unguarded]
//! ```
//!
//! `--store DIR` keeps revocations in a sled store in this process and
//! serves the registry API on 127.0.0.1 (an ephemeral port), announced on
//! stderr as `registry http://127.0.0.1:PORT`, so an operator revokes with
//! `mandate revoke --registry URL ...` or Python's `RegistryClient`.
//! `--audit-store DIR` (or `MANDATE_AUDIT_STORE`) records every decision,
//! every call refused before one, and (with `--store`) every revocation
//! written through the registry API, in the audit trail in DIR (sled,
//! created if missing; the writer key `--audit-key FILE`, or
//! `MANDATE_AUDIT_KEY`, defaults to DIR's path + `.key` and is created 0600
//! when missing), each durable before the client hears the outcome: a call
//! that cannot be recorded is refused. Read it, once the server stopped,
//! with `mandate audit --store DIR`.
//! `--unguarded` serves the same tools with no guard, for measuring what the
//! guard costs. Stdout carries MCP only; the audit log lines (one per
//! decision, target `mandate::audit`) go to stderr.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use mandate_audit::{AuditWriter, SledLog, WriterConfig};
use mandate_core::KeySet;
use mandate_mcp::{AuditTrail, Guarded, McpGuard, ToolScope};
use mandate_registry::{
    IndexingStore, MandateWriteAuthorizer, RegistryConfig, RegistryState, RevocationStore,
    SledStore,
};
use mandate_server::audit::AuditedStore;
use mandate_verifier::Verifier;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt as _};
use serde_json::{json, Value};

/// The service name mandates grant rights on.
const SERVICE: &str = "analytics";
/// The longest dataset path accepted.
const MAX_PATH: usize = 256;

struct Args {
    root_pub: Vec<String>,
    store: Option<PathBuf>,
    audit_store: Option<PathBuf>,
    audit_key: Option<PathBuf>,
    unguarded: bool,
}

fn args() -> Result<Args> {
    let mut args = Args {
        root_pub: Vec::new(),
        store: None,
        audit_store: std::env::var_os("MANDATE_AUDIT_STORE").map(PathBuf::from),
        audit_key: std::env::var_os("MANDATE_AUDIT_KEY").map(PathBuf::from),
        unguarded: false,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--root-pub" => args
                .root_pub
                .push(iter.next().context("--root-pub needs a key")?),
            "--store" => args.store = Some(iter.next().context("--store needs a folder")?.into()),
            "--audit-store" => {
                args.audit_store =
                    Some(iter.next().context("--audit-store needs a folder")?.into());
            }
            "--audit-key" => {
                args.audit_key = Some(iter.next().context("--audit-key needs a file")?.into());
            }
            "--unguarded" => args.unguarded = true,
            other => bail!("unknown argument `{other}`"),
        }
    }
    if args.root_pub.is_empty() && !args.unguarded {
        bail!("give --root-pub KEY: the issuer's root public key");
    }
    if args.audit_key.is_some() && args.audit_store.is_none() {
        bail!("--audit-key needs --audit-store");
    }
    Ok(args)
}

/// The audit trail's writer in `store`, signing with the key at `key` (or
/// beside the store), read or created as `mandate serve --audit-store` does.
fn audit_writer(store: &std::path::Path, key: Option<&std::path::Path>) -> Result<AuditWriter> {
    let key = match key {
        Some(key) => key.to_owned(),
        None => {
            let mut path = store.as_os_str().to_owned();
            path.push(".key");
            PathBuf::from(path)
        }
    };
    let key = mandate_server::audit::writer_key(&key)?;
    let log =
        SledLog::open(store).with_context(|| format!("opening audit store {}", store.display()))?;
    Ok(AuditWriter::start(
        Arc::new(log),
        key,
        WriterConfig::default(),
    )?)
}

/// The tools themselves, unaware of Mandate.
#[derive(Debug, Clone)]
struct Analytics;

fn path_schema() -> Arc<JsonObject> {
    let schema = json!({
        "type": "object",
        "properties": {"path": {"type": "string"}},
        "required": ["path"],
    });
    match schema {
        Value::Object(map) => Arc::new(map),
        _ => Arc::new(JsonObject::new()),
    }
}

fn path_argument(arguments: &JsonObject) -> Result<String, String> {
    match arguments.get("path").and_then(Value::as_str) {
        Some(path) if path.len() <= MAX_PATH => Ok(path.to_owned()),
        Some(_) => Err(format!("`path` is longer than {MAX_PATH} bytes")),
        None => Err("`path` (a string) is required".into()),
    }
}

/// The server's mapping: every tool's resource is its `path` argument.
fn scope(_tool: &str, arguments: &JsonObject) -> Result<ToolScope, String> {
    path_argument(arguments).map(ToolScope::resource)
}

impl ServerHandler for Analytics {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(SERVICE, env!("CARGO_PKG_VERSION")))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(vec![
            Tool::new("read_dataset", "Read one dataset", path_schema()),
            Tool::new("export_dataset", "Export one dataset", path_schema()),
        ]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let empty = JsonObject::new();
        let arguments = request.arguments.as_ref().unwrap_or(&empty);
        let path = path_argument(arguments).map_err(|m| ErrorData::invalid_params(m, None))?;
        let text = match request.name.as_ref() {
            "read_dataset" => format!("rows of {path}: revenue 1200, cost 800"),
            "export_dataset" => format!("export of {path}: 2 rows"),
            other => {
                return Err(ErrorData::invalid_params(
                    format!("no tool named `{other}`"),
                    None,
                ))
            }
        };
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into())
    }
}

fn main() -> std::process::ExitCode {
    // The audit log (one line per decision) goes to stderr; stdout is MCP's.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new("mandate::audit=info"))
        .init();
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run() -> Result<()> {
    let args = args()?;
    let mut keys = KeySet::new();
    for root in &args.root_pub {
        keys.add_arg(root).context("reading --root-pub")?;
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async {
        if args.unguarded {
            let running = Analytics.serve(rmcp::transport::stdio()).await?;
            running.waiting().await?;
            return Ok(());
        }
        // Each stdio client starts its own server, whose replay memory
        // starts empty: a proof made before this server started is refused,
        // so one captured from an earlier session is not taken again.
        let mut builder = Verifier::builder()
            .root_keys(keys.clone())
            .require_pop(true)
            .refuse_proofs_from_before_start(true);
        let mut trail = match &args.audit_store {
            Some(dir) => Some(AuditTrail::new(
                Arc::new(audit_writer(dir, args.audit_key.as_deref())?),
                format!("{SERVICE}-mcp@{}", std::process::id()),
            )),
            None => None,
        };
        if let Some(dir) = &args.store {
            let store = IndexingStore::new(SledStore::open(dir)?)?;
            let index = store.index();
            builder = builder.revocation(Arc::new(index.clone()));
            trail = trail.map(|trail| {
                let index = index.clone();
                trail.with_revocation_seq(move || index.last_seq())
            });
            let writes = MandateWriteAuthorizer::new(
                Verifier::builder()
                    .root_keys(keys)
                    .revocation(Arc::new(index)),
            )?;
            // With a trail, revocations are recorded in it too, once durable,
            // as `mandate serve --audit-store` records them.
            let store: Arc<dyn RevocationStore> = match &trail {
                Some(trail) => Arc::new(AuditedStore::new(store, Arc::clone(trail.writer()))),
                None => Arc::new(store),
            };
            let state =
                RegistryState::with_config(store, Arc::new(writes), RegistryConfig::default());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            eprintln!("registry http://{}", listener.local_addr()?);
            tokio::spawn(mandate_registry::serve(
                listener,
                state,
                std::future::pending::<()>(),
            ));
        } else {
            eprintln!("revocations: NOT CHECKED (no --store)");
        }
        let mut guard = McpGuard::new(builder.build()?, SERVICE, scope);
        if let Some(trail) = &trail {
            guard = guard.with_audit(trail.clone());
        }
        let running = Guarded::new(guard, Analytics)
            .serve(rmcp::transport::stdio())
            .await?;
        let served = running.waiting().await;
        // The client hung up: sign the trail's head and stop its writer
        // (every record is already durable).
        if let Some(trail) = &trail {
            trail.writer().close().await?;
        }
        served?;
        anyhow::Ok(())
    })
}
