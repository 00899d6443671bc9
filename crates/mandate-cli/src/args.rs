//! Command-line flags. Parsing only: no flag here reads a file or a key.

use mandate_postgres::StoreLocation;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Capability tokens for AI agents.
#[derive(Debug, Parser)]
#[command(name = "mandate", version, about, long_about = None)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug); MANDATE_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate an Ed25519 key pair: PATH (mode 0600) and PATH.pub.
    Keygen(KeygenArgs),
    /// Mint a mandate for a principal and an agent.
    Issue(IssueArgs),
    /// Narrow a mandate offline by appending a block of restrictions.
    Delegate(DelegateArgs),
    /// Show what a token says, and with --root-pub whether it verifies.
    Inspect(InspectArgs),
    /// Decide one request offline: exit 0 allow, 1 deny, 2 error.
    Authorize(AuthorizeArgs),
    /// Sign a proof of possession for one request with the acting agent's key.
    Pop(PopArgs),
    /// Serve the authorization API (POST /v1/authorize); with --store, also the
    /// revocation registry, in one process.
    Serve(VerifierServeArgs),
    /// Revoke (or lift) a token, a whole tree, a principal, an agent or a task.
    Revoke(RevokeArgs),
    /// Read the revocation log.
    #[command(subcommand)]
    Revocations(RevocationsCommand),
    /// Run the revocation registry.
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Run the whole flow once on fresh keys: issue, delegate, allow, deny,
    /// revoke mid-task.
    Demo(DemoArgs),
    /// Run the issuer service: token exchange from a login, task lifecycle.
    #[command(subcommand)]
    Issuer(IssuerCommand),
    /// Open, refresh or close a task at an issuer, or ask for more rights
    /// (as its agent).
    #[command(subcommand)]
    Task(TaskCommand),
    /// List, approve or deny agents' requests for more rights (as the
    /// task's principal or an approver).
    #[command(subcommand)]
    Requests(RequestsCommand),
    /// Read the audit trail (newest last), verify it, or trace a token or task.
    Audit(AuditArgs),
    /// Rotate, list, retire or prune the issuer's root keys in a key folder.
    #[command(subcommand)]
    Keys(KeysCommand),
}

impl Command {
    /// Whether this command runs a server (which sets up its own logs).
    pub fn is_server(&self) -> bool {
        matches!(
            self,
            Command::Serve(_)
                | Command::Registry(RegistryCommand::Serve(_))
                | Command::Issuer(IssuerCommand::Serve(_))
        )
    }
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the private key; the public key goes to PATH.pub.
    #[arg(long)]
    pub out: PathBuf,
}

/// Trusted root keys, given one by one or as a key-set file.
#[derive(Debug, Args, Clone, Default)]
pub struct RootKeyArgs {
    /// A trusted root public key: `ed25519/<hex>`, `ID=ed25519/<hex>`, or a
    /// `.pub` file (`ID=FILE`). Repeat to trust several roots.
    #[arg(long = "root-pub", value_name = "KEY")]
    pub root_pub: Vec<String>,
    /// A key-set file: a JSON object mapping key ids to public keys.
    #[arg(long = "root-keys", value_name = "FILE")]
    pub root_keys: Option<PathBuf>,
    /// Trust the keys an issuer publishes at this URL
    /// (https://ISSUER/.well-known/mandate-keys; http only to loopback).
    #[arg(
        long = "root-keys-url",
        value_name = "URL",
        conflicts_with_all = ["root_pub", "root_keys"]
    )]
    pub root_keys_url: Option<String>,
}

/// A server's trusted roots: as [`RootKeyArgs`], each also from a
/// `MANDATE_*` variable.
#[derive(Debug, Args, Clone, Default)]
pub struct ServerRootKeyArgs {
    /// A trusted root public key: `ed25519/<hex>`, `ID=ed25519/<hex>`, or a
    /// `.pub` file (`ID=FILE`). Repeat to trust several roots.
    #[arg(long = "root-pub", value_name = "KEY")]
    pub root_pub: Vec<String>,
    /// A key-set file: a JSON object mapping key ids to public keys.
    #[arg(long = "root-keys", value_name = "FILE", env = "MANDATE_ROOT_KEYS")]
    pub root_keys: Option<PathBuf>,
    /// Follow the keys an issuer publishes at this URL
    /// (https://ISSUER/.well-known/mandate-keys; http only to loopback),
    /// refreshed as its caching headers say; /readyz is 503 until a first
    /// set is loaded.
    #[arg(
        long = "root-keys-url",
        value_name = "URL",
        env = "MANDATE_ROOT_KEYS_URL",
        conflicts_with_all = ["root_pub", "root_keys"]
    )]
    pub root_keys_url: Option<String>,
}

/// Restrictions shared by `issue` and `delegate`.
#[derive(Debug, Args, Clone, Default)]
pub struct RestrictionArgs {
    /// Only this operation (repeatable: any of them).
    #[arg(long = "operation", value_name = "OP")]
    pub operations: Vec<String>,
    /// Only this service (repeatable: any of them).
    #[arg(long = "service", value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Only resources at or below this path (repeatable: any of them).
    #[arg(long = "resource-prefix", value_name = "PATH")]
    pub resource_prefixes: Vec<String>,
    /// Only exactly this resource (repeatable: any of them).
    #[arg(long = "resource", value_name = "PATH")]
    pub resources: Vec<String>,
    /// Require attribute KEY to be an integer in MIN..MAX (inclusive).
    #[arg(long = "attr-range", value_name = "KEY=MIN..MAX")]
    pub attr_range: Vec<String>,
    /// Require attribute KEY to be an http(s) URL on one of these hosts.
    #[arg(long = "url-host", value_name = "KEY=HOST1,HOST2")]
    pub url_hosts: Vec<String>,
    /// Require attribute KEY to be an integer at most N.
    #[arg(long = "attr-max", value_name = "KEY=N")]
    pub attr_max: Vec<String>,
    /// Require attribute KEY to be one of the listed values.
    #[arg(long = "attr-in", value_name = "KEY=V1,V2")]
    pub attr_in: Vec<String>,
    /// How many further signed hops the token may take.
    #[arg(long = "max-depth", value_name = "N")]
    pub max_depth: Option<u32>,
    /// A raw Datalog check (`check if ...`), the escape hatch.
    #[arg(long = "check", value_name = "DATALOG")]
    pub checks: Vec<String>,
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// The root private key file.
    #[arg(long = "root-key", value_name = "FILE")]
    pub root_key: PathBuf,
    /// The key id written into the token, so verifiers can pick the root.
    #[arg(long = "key-id", value_name = "N")]
    pub key_id: Option<u32>,
    /// Who the agent acts for.
    #[arg(long)]
    pub principal: String,
    /// The first agent's name.
    #[arg(long)]
    pub agent: String,
    /// The first agent's public key (`ed25519/<hex>` or a .pub file); without
    /// it the mandate is a bearer token.
    #[arg(long = "agent-key", value_name = "PUB")]
    pub agent_key: Option<String>,
    /// The task id (default: a fresh unique id).
    #[arg(long)]
    pub task: Option<String>,
    /// A granted right, SERVICE:OPERATION (repeatable, at least one).
    #[arg(long = "right", value_name = "SERVICE:OPERATION", required = true)]
    pub rights: Vec<String>,
    /// Lifetime, e.g. 90s, 10m, 2h.
    #[arg(long)]
    pub ttl: String,
    #[command(flatten)]
    pub restrictions: RestrictionArgs,
    /// Write the token to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DelegateArgs {
    /// The token: the text itself, @FILE, or - for stdin.
    #[arg(long)]
    pub token: String,
    #[command(flatten)]
    pub restrictions: RestrictionArgs,
    /// The current holder's private key: the block is signed by it, so the
    /// restriction (and a hop given with --to) provably comes from the holder.
    #[arg(long = "signer-key", value_name = "FILE")]
    pub signer_key: Option<PathBuf>,
    /// Hand the authority to this agent (needs --to-key and --signer-key).
    #[arg(long, value_name = "NAME", requires_all = ["to_key", "signer_key"])]
    pub to: Option<String>,
    /// The next agent's public key (`ed25519/<hex>` or a .pub file).
    #[arg(long = "to-key", value_name = "PUB", requires = "to")]
    pub to_key: Option<String>,
    /// A shorter lifetime for the delegated token, e.g. 5m.
    #[arg(long)]
    pub ttl: Option<String>,
    /// Write the token to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The token: the text itself, @FILE, or - for stdin.
    #[arg(long)]
    pub token: String,
    #[command(flatten)]
    pub roots: RootKeyArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AuthorizeArgs {
    /// The token: the text itself, @FILE, or - for stdin.
    #[arg(long)]
    pub token: String,
    #[command(flatten)]
    pub roots: RootKeyArgs,
    #[command(flatten)]
    pub request: RequestArgs,
    /// A policy file instead of the built-in default policy.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The acting agent's proof of possession (from `mandate pop`).
    #[arg(long, value_name = "PROOF")]
    pub pop: Option<String>,
    /// Refuse bearer tokens: every request needs a proof of possession.
    #[arg(long = "require-pop")]
    pub require_pop: bool,
    /// Accept proofs made this close to the request time.
    #[arg(long = "pop-window", value_name = "DURATION", default_value = "30s")]
    pub pop_window: String,
    /// Print the decision as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub revocations: RevocationSource,
    /// With --registry: how old the revocation state may be before every
    /// decision is deny.
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub staleness: String,
}

/// Where revocations are read from.
#[derive(Debug, Args, Clone, Default)]
pub struct RevocationSource {
    /// A revocation registry (`mandate registry serve`), e.g. http://127.0.0.1:7700;
    /// needs --registry-auth.
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "store",
        requires = "registry_auth"
    )]
    pub registry: Option<String>,
    /// A mandate granting registry:read, to read the registry's log and stream
    /// (the token, @FILE or -).
    #[arg(long = "registry-auth", value_name = "TOKEN", requires = "registry")]
    pub registry_auth: Option<String>,
    /// The key of the --registry-auth mandate's acting agent, to sign a proof of
    /// possession for each request.
    #[arg(
        long = "registry-auth-key",
        value_name = "FILE",
        requires = "registry_auth"
    )]
    pub registry_auth_key: Option<PathBuf>,
    /// A registry's store, read directly: a sled folder (not in use by a server),
    /// or a postgres:// URL.
    #[arg(long, value_name = "DIR|URL")]
    pub store: Option<StoreLocation>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["id", "token", "principal", "agent", "task"])))]
pub struct RevokeArgs {
    /// A block's revocation id (hex): that token and everything delegated from it.
    #[arg(long, value_name = "HEX")]
    pub id: Option<String>,
    /// A token: revokes its own id (its last block), or with --root the whole tree.
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// With --token: revoke the authority block's id, i.e. every token of the tree.
    #[arg(long, requires = "token")]
    pub root: bool,
    /// Every token issued for this principal.
    #[arg(long, value_name = "P")]
    pub principal: Option<String>,
    /// Every token whose chain contains this agent: a name, or a public key
    /// (`ed25519/<hex>` or a `.pub` file; 64 hex digits alone are refused);
    /// `name:NAME` is always a name.
    #[arg(long, value_name = "NAME_OR_KEY")]
    pub agent: Option<String>,
    /// Every token of this task.
    #[arg(long, value_name = "ID")]
    pub task: Option<String>,
    /// Why (recorded and shown in denials).
    #[arg(long, default_value = "")]
    pub reason: String,
    /// Lift an earlier principal or agent revocation instead.
    #[arg(long)]
    pub lift: bool,
    #[command(flatten)]
    pub target: WriteTarget,
    /// With --store: also record the write in this audit store (created if
    /// missing), as `mandate serve --audit-store` records the writes it makes.
    #[arg(long = "audit-store", value_name = "DIR", requires = "store")]
    pub audit_store: Option<PathBuf>,
    /// The audit writer's key (0600), created when missing [default: the
    /// audit store's path + .key].
    #[arg(long = "audit-key", value_name = "FILE", requires = "audit_store")]
    pub audit_key: Option<PathBuf>,
}

/// Where a revocation is written.
#[derive(Debug, Args, Clone)]
#[command(group(clap::ArgGroup::new("destination").required(true).args(["registry", "store"])))]
pub struct WriteTarget {
    /// A revocation registry URL; needs --auth.
    #[arg(long, value_name = "URL", requires = "auth")]
    pub registry: Option<String>,
    /// A mandate granting registry:revoke (the token, @FILE or -); with
    /// registry:read too, `revoke` also reports how many verifiers applied it.
    #[arg(long, value_name = "TOKEN")]
    pub auth: Option<String>,
    /// The key of the --auth mandate's acting agent, to sign a proof of possession
    /// bound to the write (required unless the registry allows bearer writes).
    #[arg(long = "auth-key", value_name = "FILE")]
    pub auth_key: Option<PathBuf>,
    /// A registry's store, written directly: a sled folder (not in use by a
    /// server), or a postgres:// URL (shared with running replicas).
    #[arg(long, value_name = "DIR|URL")]
    pub store: Option<StoreLocation>,
}

#[derive(Debug, Subcommand)]
pub enum RevocationsCommand {
    /// List revocations in sequence order.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub source: RevocationSource,
    /// Only entries after this sequence number.
    #[arg(long, default_value_t = 0)]
    pub after: u64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Serve the registry's HTTP API on a sled store.
    Serve(ServeArgs),
}

/// Settings every server command shares. Each flag also reads a `MANDATE_*`
/// environment variable, and both override the `--config` file.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// A TOML configuration file (see the README); flags and MANDATE_*
    /// variables override what it sets.
    #[arg(long, value_name = "FILE", env = "MANDATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7700].
    #[arg(long, value_name = "ADDR", env = "MANDATE_LISTEN")]
    pub listen: Option<String>,
    /// Trusted roots, for mandates and for registry mandates.
    #[command(flatten)]
    pub roots: ServerRootKeyArgs,
    /// Interval between registry stream heartbeats [default: 1s].
    #[arg(long, value_name = "DURATION", env = "MANDATE_HEARTBEAT")]
    pub heartbeat: Option<String>,
    #[command(flatten)]
    pub eval: EvalArgs,
    /// DANGEROUS, with a store: accept operator mandates without an agent key
    /// (bearer tokens) for registry writes.
    #[arg(long = "allow-bearer-writes", env = "MANDATE_ALLOW_BEARER_WRITES")]
    pub allow_bearer_writes: bool,
    /// Serve TLS with this PEM certificate chain (needs --tls-key).
    #[arg(long = "tls-cert", value_name = "FILE", env = "MANDATE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long = "tls-key", value_name = "FILE", env = "MANDATE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Log format on stderr: text or json [default: text].
    #[arg(long = "log-format", value_name = "FORMAT", env = "MANDATE_LOG_FORMAT")]
    pub log_format: Option<mandate_server::LogFormat>,
    /// How long in-flight requests may finish after SIGTERM [default: 10s].
    #[arg(
        long = "shutdown-grace",
        value_name = "DURATION",
        env = "MANDATE_SHUTDOWN_GRACE"
    )]
    pub shutdown_grace: Option<String>,
    #[command(flatten)]
    pub audit: AuditServeArgs,
}

/// The audit trail a server writes.
#[derive(Debug, Args)]
pub struct AuditServeArgs {
    /// Record every decision and registry write in this audit log folder
    /// (created if missing), or in a postgres:// database that replicas
    /// share (each its own log and key); a decision is answered only once
    /// its record is durable.
    #[arg(
        long = "audit-store",
        value_name = "DIR|URL",
        env = "MANDATE_AUDIT_STORE"
    )]
    pub audit_store: Option<StoreLocation>,
    /// The audit writer's key (0600), created when missing [default: the
    /// store's path + .key; required with a postgres:// store]. Keep it out
    /// of reach of whoever can write the store.
    #[arg(long = "audit-key", value_name = "FILE", env = "MANDATE_AUDIT_KEY")]
    pub audit_key: Option<PathBuf>,
    /// durable (default) or buffered (DANGEROUS: answers before the record is
    /// on disk; a crash loses up to --audit-flush-every of records).
    #[arg(long = "audit-mode", value_name = "MODE", env = "MANDATE_AUDIT_MODE")]
    pub audit_mode: Option<mandate_server::AuditMode>,
    /// With --audit-mode buffered: how often records are flushed [default: 1s].
    #[arg(
        long = "audit-flush-every",
        value_name = "DURATION",
        env = "MANDATE_AUDIT_FLUSH_EVERY"
    )]
    pub audit_flush_every: Option<String>,
}

/// `mandate audit`: query by default; `verify` and `trace` as subcommands.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub action: Option<AuditCommand>,
    #[command(flatten)]
    pub query: AuditQueryArgs,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every record and signed head: exit 0 intact, 1 tampered (naming
    /// the first bad record), 2 bad input.
    Verify(AuditVerifyArgs),
    /// The story of a token id or a task: who minted it for whom, each hop,
    /// every call and the revocation that ended it.
    Trace(AuditTraceArgs),
}

/// Where the trail is read from.
#[derive(Debug, Args, Clone, Default)]
pub struct AuditSourceArgs {
    /// An audit store folder (not in use by a running server), or the
    /// postgres:// database replicas share (every writer's records, merged).
    #[arg(long, value_name = "DIR|URL", conflicts_with = "url")]
    pub store: Option<StoreLocation>,
    /// A running `mandate serve` with an audit trail; needs --auth.
    #[arg(long, value_name = "URL", requires = "auth")]
    pub url: Option<String>,
    /// With --url: a mandate granting audit:read (the token, @FILE or -).
    #[arg(long, value_name = "TOKEN", requires = "url")]
    pub auth: Option<String>,
    /// The key of the --auth mandate's acting agent, to prove possession.
    #[arg(long = "auth-key", value_name = "FILE", requires = "auth")]
    pub auth_key: Option<PathBuf>,
}

#[derive(Debug, Args, Default)]
pub struct AuditQueryArgs {
    #[command(flatten)]
    pub source: AuditSourceArgs,
    /// Only records about this principal.
    #[arg(long, value_name = "P")]
    pub principal: Option<String>,
    /// Only records naming this agent (anywhere in a chain).
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
    /// Only records about this task.
    #[arg(long, value_name = "ID")]
    pub task: Option<String>,
    /// Only decisions with this outcome: allow or deny.
    #[arg(long, value_name = "allow|deny")]
    pub decision: Option<String>,
    /// Only decisions about this service.
    #[arg(long, value_name = "SERVICE")]
    pub service: Option<String>,
    /// Only records written since: a duration ago (10m) or RFC 3339.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only records written until: a duration ago (10m) or RFC 3339.
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// Only the newest N matching records.
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,
    /// One JSON object per line (for log shippers).
    #[arg(long)]
    pub json: bool,
    /// Keep printing new records as they are written (Ctrl-C to stop).
    #[arg(long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// The audit store folder (not in use by a running server), or the
    /// postgres:// database replicas share (every writer's log is checked).
    #[arg(long, value_name = "DIR|URL")]
    pub store: StoreLocation,
    /// Only accept heads signed by this writer key (`ed25519/<hex>` or a .pub
    /// file; repeatable). Without it, the keys the heads name are used.
    #[arg(long = "writer-pub", value_name = "KEY")]
    pub writer_pub: Vec<String>,
    /// A head kept outside the store (from the server's `audit head signed`
    /// log lines): the record at SEQ must still have HASH (repeatable). In a
    /// store shared by several writers, prefix the writer as records name
    /// it: WRITER:SEQ:HASH.
    #[arg(long = "expect-head", value_name = "[WRITER:]SEQ:HASH")]
    pub expect_head: Vec<String>,
}

#[derive(Debug, Args)]
pub struct AuditTraceArgs {
    /// A token id (hex) or a task id.
    pub subject: String,
    #[command(flatten)]
    pub source: AuditSourceArgs,
    /// One JSON object per line instead of the story.
    #[arg(long)]
    pub json: bool,
}

/// `mandate registry serve`: the registry alone, on its own store.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The store: a sled folder (created if missing), or a postgres:// URL
    /// shared with other replicas (migrated at start).
    #[arg(long, value_name = "DIR|URL", env = "MANDATE_STORE")]
    pub store: Option<StoreLocation>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `mandate serve`: the authorization API, with the registry in this process
/// or subscribed to one.
#[derive(Debug, Args)]
pub struct VerifierServeArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// A policy file instead of the built-in default policy.
    #[arg(long, value_name = "FILE", env = "MANDATE_POLICY")]
    pub policy: Option<PathBuf>,
    /// Refuse bearer tokens.
    #[arg(long = "require-pop", env = "MANDATE_REQUIRE_POP")]
    pub require_pop: bool,
    /// Accept proofs made this close to the request time [default: 30s].
    #[arg(
        long = "pop-window",
        value_name = "DURATION",
        env = "MANDATE_POP_WINDOW"
    )]
    pub pop_window: Option<String>,
    /// A store, this process being the registry too: a sled folder, or a
    /// postgres:// URL shared with other replicas.
    #[arg(
        long,
        value_name = "DIR|URL",
        env = "MANDATE_STORE",
        conflicts_with = "registry"
    )]
    pub store: Option<StoreLocation>,
    /// A revocation registry to subscribe to (needs --registry-auth). Give
    /// several replicas of one registry (sharing one log) as URL1,URL2,... or
    /// by repeating the flag: the server follows one and, when it hears
    /// nothing from it for half the --staleness bound (or cannot connect),
    /// moves to the next, resuming from its last applied revocation. It
    /// still denies everything once no replica has confirmed its state
    /// within the bound. URLs must not carry a user or password.
    #[arg(
        long,
        value_name = "URL",
        env = "MANDATE_REGISTRY",
        value_delimiter = ','
    )]
    pub registry: Vec<String>,
    /// A mandate granting registry:read (the token, or @FILE).
    #[arg(
        long = "registry-auth",
        value_name = "TOKEN",
        env = "MANDATE_REGISTRY_AUTH"
    )]
    pub registry_auth: Option<String>,
    /// The key of the --registry-auth mandate's acting agent.
    #[arg(
        long = "registry-auth-key",
        value_name = "FILE",
        env = "MANDATE_REGISTRY_AUTH_KEY"
    )]
    pub registry_auth_key: Option<PathBuf>,
    /// With --registry: deny everything when no replica confirmed the
    /// revocation state for this long [default: 5s]; choose at least three
    /// registry heartbeat intervals.
    #[arg(long, value_name = "DURATION", env = "MANDATE_STALENESS")]
    pub staleness: Option<String>,
    /// Serve the proxy endpoint /v1/ext_authz with this mapping file.
    #[arg(
        long = "ext-authz-mapping",
        value_name = "FILE",
        env = "MANDATE_EXT_AUTHZ_MAPPING"
    )]
    pub ext_authz_mapping: Option<PathBuf>,
    /// Mount the issuer on this server, signing with this root key file
    /// (0600); its other settings come from the [issuer] section of --config.
    #[arg(
        long = "issuer-key",
        value_name = "FILE",
        env = "MANDATE_ISSUER_KEY",
        conflicts_with = "issuer_key_dir"
    )]
    pub issuer_key: Option<PathBuf>,
    /// Mount the issuer, signing with the newest key of this folder
    /// (`mandate keys rotate --dir`).
    #[arg(
        long = "issuer-key-dir",
        value_name = "DIR",
        env = "MANDATE_ISSUER_KEY_DIR"
    )]
    pub issuer_key_dir: Option<PathBuf>,
}

/// The request a proof of possession is for; must match what `authorize` sees.
#[derive(Debug, Args)]
pub struct PopArgs {
    /// The acting agent's private key.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// The token: the text itself, @FILE, or - for stdin.
    #[arg(long)]
    pub token: String,
    #[command(flatten)]
    pub request: RequestArgs,
}

/// One request: what `authorize` decides and what `pop` signs.
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// The service being called.
    #[arg(long)]
    pub service: String,
    /// The operation being called.
    #[arg(long)]
    pub operation: String,
    /// The resource being called.
    #[arg(long)]
    pub resource: String,
    /// A request attribute KEY=VALUE (repeatable); integers compare as numbers.
    #[arg(long = "attr", value_name = "KEY=VALUE")]
    pub attrs: Vec<String>,
    /// The request time (RFC 3339) instead of now.
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<String>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep keys, tokens, the revocation store and the audit log in DIR
    /// instead of a temporary folder.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The evaluation pool of a server: tokens are evaluated off the async runtime.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Tokens evaluated at once [default: the number of cores]; further
    /// requests wait briefly, then get 503 with Retry-After.
    #[arg(long = "eval-workers", value_name = "N", env = "MANDATE_EVAL_WORKERS")]
    pub workers: Option<usize>,
    /// Requests that may wait for a worker; one more gets 503 with
    /// Retry-After at once [default: 64 per worker].
    #[arg(long = "eval-queue", value_name = "N", env = "MANDATE_EVAL_QUEUE")]
    pub queue: Option<usize>,
    /// Deadline per request for waiting and evaluating; past it, 503 [default: 2s].
    #[arg(
        long = "eval-deadline",
        value_name = "DURATION",
        env = "MANDATE_EVAL_DEADLINE"
    )]
    pub deadline: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum IssuerCommand {
    /// Serve POST /oauth2/token (token exchange) and the task endpoints.
    Serve(IssuerServeArgs),
}

#[derive(Debug, Args)]
pub struct IssuerServeArgs {
    /// A TOML configuration (see docs/issuer.example.toml); flags override it.
    #[arg(long, env = "MANDATE_ISSUER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:7800).
    #[arg(long, env = "MANDATE_ISSUER_LISTEN")]
    pub listen: Option<std::net::SocketAddr>,
    /// This issuer's identifier, which agents' actor tokens name (its public URL).
    #[arg(long, env = "MANDATE_ISSUER_ID")]
    pub id: Option<String>,
    /// The root key file (0600) mandates are signed with.
    #[arg(long, env = "MANDATE_ISSUER_ROOT_KEY", value_name = "FILE")]
    pub root_key: Option<PathBuf>,
    /// The key id written into mandates.
    #[arg(long)]
    pub key_id: Option<u32>,
    /// Or sign with the newest key of this folder (`mandate keys rotate
    /// --dir`), publishing every key not yet retired.
    #[arg(
        long = "key-dir",
        env = "MANDATE_ISSUER_KEY_DIR",
        value_name = "DIR",
        conflicts_with_all = ["root_key", "key_id"]
    )]
    pub key_dir: Option<PathBuf>,
    /// How long verifiers may cache /.well-known/mandate-keys (default 5m).
    #[arg(long = "keys-max-age", value_name = "DURATION")]
    pub keys_max_age: Option<String>,
    /// An issuance policy file instead of the built-in one.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Record the issuer's events (tasks opened, refreshed and closed,
    /// mandates minted, exchanges refused) in this audit log folder (created
    /// if missing); read it with `mandate audit --store`, or while the issuer
    /// runs with `mandate audit --url` (GET /v1/audit, audit:read).
    #[arg(
        long = "audit-store",
        value_name = "DIR|URL",
        env = "MANDATE_ISSUER_AUDIT_STORE"
    )]
    pub audit_store: Option<StoreLocation>,
    /// The audit writer's key (0600), created when missing [default: the
    /// store's path + .key].
    #[arg(
        long = "audit-key",
        value_name = "FILE",
        env = "MANDATE_ISSUER_AUDIT_KEY"
    )]
    pub audit_key: Option<PathBuf>,
    /// Where tasks are kept: a sled folder, or a postgres:// URL that
    /// several issuer replicas share.
    #[arg(long, env = "MANDATE_ISSUER_STORE", value_name = "DIR|URL")]
    pub store: Option<mandate_postgres::StoreLocation>,
    /// Each mandate's lifetime (default 5m).
    #[arg(long)]
    pub mandate_ttl: Option<String>,
    /// How often overdue tasks are closed (default 5s).
    #[arg(long)]
    pub sweep_interval: Option<String>,
    /// The registry closed tasks are revoked at.
    #[arg(long, value_name = "URL")]
    pub registry: Option<String>,
    /// A mandate granting registry:revoke (TOKEN or @FILE).
    #[arg(long, value_name = "TOKEN")]
    pub registry_auth: Option<String>,
    /// That mandate's agent key.
    #[arg(long, value_name = "FILE")]
    pub registry_auth_key: Option<PathBuf>,
    /// Trust an identity provider: `ISSUER,AUDIENCE,JWKS` where JWKS is a URL
    /// or a file. Repeatable. Principals come from the `email` claim.
    #[arg(long = "idp", value_name = "ISSUER,AUDIENCE,JWKS")]
    pub idp: Vec<String>,
    /// text or json logs.
    #[arg(long)]
    pub log_format: Option<mandate_server::LogFormat>,
    /// How long an agent's request for more rights waits for a person
    /// (default 15m).
    #[arg(long, value_name = "DURATION")]
    pub request_ttl: Option<String>,
    /// Members of this group (the identity provider's groups claim) may
    /// approve any task's requests. Repeatable.
    #[arg(long = "approver-group", value_name = "GROUP")]
    pub approver_groups: Vec<String>,
    /// Where requests for more rights are kept: a sled folder or a
    /// postgres:// URL [default: the task store's folder + .requests, or
    /// the task store's database].
    #[arg(long, value_name = "DIR|URL")]
    pub requests_store: Option<mandate_postgres::StoreLocation>,
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Exchange a principal's identity token for a task's first mandate.
    Open(TaskOpenArgs),
    /// A fresh mandate for an open task.
    Refresh(TaskCallArgs),
    /// Ask for more rights on a task, or read (and wait for) a request's
    /// outcome: exit 0 granted or still pending, 1 refused, denied or expired.
    Request(TaskRequestArgs),
    /// Close a task: every token of it is revoked. As its agent (--token,
    /// --agent-key), its principal (--subject-token) or an operator
    /// (--operator-token, --operator-key).
    Close(TaskCloseArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("closer").required(true).args(["token", "subject_token", "operator_token"])))]
pub struct TaskCloseArgs {
    /// The issuer's URL.
    #[arg(long, value_name = "URL")]
    pub issuer: String,
    /// The task id.
    #[arg(long)]
    pub task: String,
    /// As the task's agent: its current mandate (TOKEN, @FILE or -).
    #[arg(long, requires = "agent_key")]
    pub token: Option<String>,
    /// The task's agent key.
    #[arg(long, value_name = "FILE", requires = "token")]
    pub agent_key: Option<PathBuf>,
    /// As the task's principal: an identity token from one of the issuer's
    /// identity providers (TOKEN, @FILE or -).
    #[arg(long, value_name = "TOKEN")]
    pub subject_token: Option<String>,
    /// As an operator: a mandate granting tasks:close (TOKEN, @FILE or -).
    #[arg(long, value_name = "TOKEN", requires = "operator_key")]
    pub operator_token: Option<String>,
    /// The key of the --operator-token mandate's agent, to prove possession.
    #[arg(long, value_name = "FILE", requires = "operator_token")]
    pub operator_key: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a root key id to the folder (the first makes the folder): the
    /// issuer signs with it from --activate-in on; older keys stay trusted
    /// for --overlap after that.
    Rotate(KeysRotateArgs),
    /// List the folder's keys, their validity and which one signs now.
    List(KeysListArgs),
    /// End the trust in one key id now (or at --at): verifiers following
    /// the published set stop accepting it.
    Retire(KeysRetireArgs),
    /// Delete the private key files of keys retired past their overlap
    /// (no longer published), never the newest or signing key.
    Prune(KeysPruneArgs),
}

/// Which key folder: given, or the one an issuer's configuration names.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("folder").required(true).args(["dir", "config"])))]
pub struct KeyFolderArgs {
    /// The key folder (private keys 0600 and the manifest keys.json).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The `key_dir` of this configuration: `mandate issuer serve`'s file,
    /// or `mandate serve`'s with an [issuer] section.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct KeysRotateArgs {
    #[command(flatten)]
    pub folder: KeyFolderArgs,
    /// When the new key starts signing, so verifiers fetch it first
    /// (default 0s: at once).
    #[arg(long = "activate-in", value_name = "DURATION", default_value = "0s")]
    pub activate_in: String,
    /// How long older keys stay trusted after the new one starts signing:
    /// at least the longest mandate lifetime (default 24h).
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub overlap: String,
}

#[derive(Debug, Args)]
pub struct KeysListArgs {
    #[command(flatten)]
    pub folder: KeyFolderArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct KeysPruneArgs {
    #[command(flatten)]
    pub folder: KeyFolderArgs,
}

#[derive(Debug, Args)]
pub struct KeysRetireArgs {
    #[command(flatten)]
    pub folder: KeyFolderArgs,
    /// The key id to retire.
    #[arg(long, value_name = "N")]
    pub kid: u32,
    /// When trust ends (RFC 3339) instead of now.
    #[arg(long, value_name = "RFC3339")]
    pub at: Option<String>,
}

#[derive(Debug, Args)]
pub struct TaskOpenArgs {
    /// The issuer's URL.
    #[arg(long, value_name = "URL")]
    pub issuer: String,
    /// The principal's ID token or JWT (TOKEN, @FILE or -).
    #[arg(long, value_name = "TOKEN", required_unless_present = "request")]
    pub subject_token: Option<String>,
    /// The agent's name.
    #[arg(long)]
    pub agent: String,
    /// The agent's private key (0600); it signs the actor token, never leaves.
    #[arg(long, value_name = "FILE")]
    pub agent_key: PathBuf,
    /// A right requested, SERVICE:OPERATION (repeatable).
    #[arg(long = "right", required_unless_present = "request")]
    pub rights: Vec<String>,
    /// A service the mandate is for (repeatable).
    #[arg(long)]
    pub audience: Vec<String>,
    /// What the task is for.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Task lifetime requested (e.g. 30m).
    #[arg(long)]
    pub ttl: Option<String>,
    /// Write the mandate here (otherwise stdout); the task id goes to stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Collect an exchange that waited for approval (the request id it
    /// printed) instead of exchanging again.
    #[arg(long, value_name = "ID", conflicts_with_all = ["subject_token", "rights"])]
    pub request: Option<String>,
    /// When a person must approve, wait this long for the decision (e.g. 10m)
    /// [default: no wait].
    #[arg(long)]
    pub wait: Option<String>,
}

#[derive(Debug, Args)]
pub struct TaskCallArgs {
    /// The issuer's URL.
    #[arg(long, value_name = "URL")]
    pub issuer: String,
    /// The task id.
    #[arg(long)]
    pub task: String,
    /// The task's current mandate (TOKEN, @FILE or -).
    #[arg(long)]
    pub token: String,
    /// The task's agent key.
    #[arg(long, value_name = "FILE")]
    pub agent_key: PathBuf,
    /// Write the fresh mandate here (refresh only; otherwise stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TaskRequestArgs {
    /// The issuer's URL.
    #[arg(long, value_name = "URL")]
    pub issuer: String,
    /// The task's current mandate (TOKEN, @FILE or -).
    #[arg(long)]
    pub token: String,
    /// The task's agent key.
    #[arg(long, value_name = "FILE")]
    pub agent_key: PathBuf,
    /// The task id [default: the task the mandate names].
    #[arg(long)]
    pub task: Option<String>,
    /// A right wanted, SERVICE:OPERATION (repeatable).
    #[arg(long = "right", required_unless_present = "request")]
    pub rights: Vec<String>,
    /// Why the agent needs it, for the person who decides.
    #[arg(long, default_value = "")]
    pub reason: String,
    /// Read this earlier request instead of asking again.
    #[arg(long, value_name = "ID", conflicts_with = "rights")]
    pub request: Option<String>,
    /// Wait this long for a person's decision (e.g. 30s) [default: no wait].
    #[arg(long, value_name = "DURATION")]
    pub wait: Option<String>,
    /// Write a granted mandate here (otherwise stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum RequestsCommand {
    /// The requests you may decide (pending ones unless --state says otherwise).
    List(RequestsListArgs),
    /// Approve a request: its task gains the rights.
    Approve(RequestDecideArgs),
    /// Deny a request.
    Deny(RequestDecideArgs),
}

/// Who decides: an identity token from an identity provider the issuer trusts.
#[derive(Debug, Args)]
pub struct ApproverArgs {
    /// The issuer's URL.
    #[arg(long, value_name = "URL")]
    pub issuer: String,
    /// Your ID token or JWT (TOKEN, @FILE or -).
    #[arg(long, value_name = "TOKEN")]
    pub subject_token: String,
}

#[derive(Debug, Args)]
pub struct RequestsListArgs {
    #[command(flatten)]
    pub approver: ApproverArgs,
    /// pending, granted, denied, expired or all.
    #[arg(long, default_value = "pending")]
    pub state: String,
    /// Print the issuer's JSON answer.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RequestDecideArgs {
    /// The request's id.
    pub id: String,
    /// The issuer's URL.
    #[arg(long, value_name = "URL")]
    pub issuer: String,
    /// As the task's principal or an approver: your ID token or JWT
    /// (TOKEN, @FILE or -).
    #[arg(long, value_name = "TOKEN", required_unless_present = "operator_token")]
    pub subject_token: Option<String>,
    /// As an operator: a mandate granting requests:approve or requests:deny
    /// (TOKEN, @FILE or -).
    #[arg(
        long,
        value_name = "TOKEN",
        requires = "operator_key",
        conflicts_with = "subject_token"
    )]
    pub operator_token: Option<String>,
    /// The key of the --operator-token mandate's agent, to prove possession.
    #[arg(long, value_name = "FILE", requires = "operator_token")]
    pub operator_key: Option<PathBuf>,
}
