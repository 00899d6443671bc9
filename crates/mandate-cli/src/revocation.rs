//! `mandate revoke`, `mandate revocations list`, `mandate registry serve`, and
//! the revocation source of `mandate authorize`.
//!
//! Every registry call presents a mandate (`--auth` for writes, `--registry-auth` for
//! reads) and, when a key is given, signs a proof of possession per request; this module
//! must never print or log a token, only its fingerprint.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use mandate_core::{display_name, SecretKey};
use mandate_postgres::StoreLocation;
use mandate_registry::{
    load_index, write_confirmed, NewRevocation, RegistryAuth, RegistryClient, RevocationEntry,
    RevocationKind, RevocationStore, SharedIndex, WriteKind,
};
use mandate_server::{ServerConfig, Source};

use crate::args::{
    ListArgs, RevocationSource, RevokeArgs, ServeArgs, ServerArgs, VerifierServeArgs,
};
use crate::input::{bounded_duration, pop_window, read_token, read_token_text};
use crate::outcome::Outcome;
use crate::output::say;

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Opens an existing store, a folder or a database, as the servers open it; a
/// mistyped folder is an error, never a fresh empty store that would revoke nothing.
fn open_store(location: &StoreLocation) -> Result<Box<dyn RevocationStore>> {
    mandate_server::revocation_store::open_existing(location).with_context(|| match location {
        // sled lets one process at a time hold a folder; a database is shared.
        StoreLocation::Folder(_) => format!(
            "opening store {location} (if `mandate registry serve` is using it, pass --registry instead)"
        ),
        StoreLocation::Postgres(_) => format!("opening store {location}"),
    })
}

/// The audit writer of `dir` (key `key`, or the folder's path + `.key`).
fn open_audit(dir: &Path, key: Option<&Path>) -> Result<mandate_audit::AuditWriter> {
    let key = key.map_or_else(
        || {
            let mut path = dir.as_os_str().to_owned();
            path.push(".key");
            std::path::PathBuf::from(path)
        },
        Path::to_path_buf,
    );
    mandate_server::audit::open(&mandate_server::AuditSettings {
        store: dir.to_path_buf().into(),
        key,
        buffered: None,
        verifier_id: "mandate revoke".into(),
    })
}

/// A mandate (`TOKEN`, `@FILE` or `-`) and, when `key` is given, its holder's key, as
/// registry credentials.
fn registry_auth(token: &str, key: Option<&Path>) -> Result<RegistryAuth> {
    registry_auth_from_text(read_token_text(token)?, key)
}

/// As [`registry_auth`], for a token already read.
fn registry_auth_from_text(token: String, key: Option<&Path>) -> Result<RegistryAuth> {
    Ok(match key {
        Some(path) => RegistryAuth::keyed(token, SecretKey::read(path)?)?,
        None => RegistryAuth::bearer(token),
    })
}

/// A client for `--registry URL` presenting `--registry-auth` on reads.
fn registry_client(source: &RevocationSource, url: &str) -> Result<RegistryClient> {
    let Some(auth) = &source.registry_auth else {
        bail!("--registry needs --registry-auth TOKEN: a mandate granting registry:read");
    };
    let auth = registry_auth(auth, source.registry_auth_key.as_deref())?;
    Ok(RegistryClient::new(url)?.with_auth(auth))
}

const STALENESS_MIN: Duration = mandate_server::config::bounds::STALENESS.0;
const STALENESS_MAX: Duration = mandate_server::config::bounds::STALENESS.1;

/// The revocation state `authorize` consults, or `None` without a source.
pub fn revocation_state(
    source: &RevocationSource,
    staleness: Duration,
) -> Result<Option<SharedIndex>> {
    if let Some(location) = &source.store {
        let store = open_store(location)?;
        return Ok(Some(load_index(&store, staleness)?));
    }
    if let Some(url) = &source.registry {
        let client = registry_client(source, url)?;
        let index = runtime()?
            .block_on(client.snapshot(staleness))
            .with_context(|| format!("reading revocations from {url}"))?;
        return Ok(Some(index));
    }
    Ok(None)
}

pub fn revoke(args: &RevokeArgs) -> Result<Outcome> {
    let (kind, value) = target(args)?;
    // Judge the value as the registry will, before any key is read or request
    // sent: `revoke --principal "dave "` fails here, with the registry's message.
    if args.lift {
        NewRevocation::lift(kind, value.as_str(), "", "")?;
    } else {
        NewRevocation::revoke(kind, value.as_str(), "", "")?;
    }
    if let Some(location) = &args.target.store {
        // The trail first: a store that cannot be recorded in is refused
        // before anything is revoked.
        let audit = match &args.audit_store {
            Some(audit) => Some(open_audit(audit, args.audit_key.as_deref())?),
            None => None,
        };
        let store = open_store(location)?;
        let actor = format!(
            "local operator {}",
            std::env::var("USER").unwrap_or_else(|_| "(unknown)".into())
        );
        let new = if args.lift {
            NewRevocation::lift(kind, value, args.reason.clone(), actor)?
        } else {
            NewRevocation::revoke(kind, value, args.reason.clone(), actor)?
        };
        let entry = store.append(new)?;
        say!(
            "{} (seq {}), written to {location}",
            describe(&entry),
            entry.seq,
        )?;
        if let (Some(writer), Some(audit)) = (audit, &args.audit_store) {
            let event =
                mandate_audit::Event::Registry(mandate_server::audit::registry_event(&entry));
            // The revocation stands either way; a write that could not be
            // recorded is an error to act on.
            let recorded = writer.append_blocking(event);
            let closed = writer.close_blocking();
            let seq = recorded.with_context(|| {
                format!(
                    "revocation #{} written, but not recorded in audit store {}",
                    entry.seq,
                    audit.display()
                )
            })?;
            closed.with_context(|| format!("closing audit store {}", audit.display()))?;
            say!("recorded as #{seq} in {}", audit.display())?;
        }
        return Ok(Outcome::Ok);
    }
    let (Some(url), Some(auth)) = (&args.target.registry, &args.target.auth) else {
        bail!("give --registry URL --auth TOKEN, or --store DIR|URL");
    };
    // Read once (`--auth -` is stdin); without --auth-key the registry alone judges
    // the token, and refuses a bearer one unless it allows bearer writes. The client
    // signs a fresh proof per request: the registry accepts each nonce once, and each
    // proof covers that request's method, path and body.
    let token = read_token_text(auth)?;
    let key = args.target.auth_key.as_deref();
    let write_auth = registry_auth_from_text(token.clone(), key)?;
    // The same mandate reads the status afterwards (if it also grants registry:read).
    let client = RegistryClient::new(url)?.with_auth(registry_auth_from_text(token, key)?);
    let write = if args.lift {
        WriteKind::Lift
    } else {
        WriteKind::Revoke
    };
    let confirmed = runtime()?
        .block_on(write_confirmed(
            &client,
            &write_auth,
            write,
            kind,
            &value,
            &args.reason,
            Duration::from_secs(2),
        ))
        .with_context(|| format!("writing to {url}"))?;
    let entry = &confirmed.entry;
    say!("{} (seq {})", describe(entry), entry.seq)?;
    match confirmed.applied {
        Ok(applied) => {
            say!(
                "applied by {} of {} connected verifiers",
                applied.by,
                applied.of
            )?;
            if applied.of == 0 {
                // `mandate serve --store` applies it in-process before answering;
                // stream subscribers catch up when they connect.
                say!("(no verifier is subscribed right now; verifiers that connect later catch up from the log)")?;
            }
        }
        // The revocation is recorded: a status that cannot be read is a warning.
        Err(e) => eprintln!("warning: recorded, but the registry's status is unavailable: {e}"),
    }
    Ok(Outcome::Ok)
}

fn target(args: &RevokeArgs) -> Result<(RevocationKind, String)> {
    Ok(if let Some(id) = &args.id {
        (RevocationKind::TokenId, id.clone())
    } else if let Some(token) = &args.token {
        let token = read_token(token)?;
        let id = if args.root {
            token.root_id_hex()
        } else {
            token.token_id_hex()
        };
        (RevocationKind::TokenId, id)
    } else if let Some(p) = &args.principal {
        (RevocationKind::Principal, p.clone())
    } else if let Some(name) = args.agent.as_ref().and_then(|a| a.strip_prefix("name:")) {
        // Said to be a name (names hold no `:`): taken as it is, even when it
        // reads as a key or is the name of a file here.
        (RevocationKind::Agent, name.to_owned())
    } else if let Some(a) = &args.agent {
        // A key (text or .pub file) is stored in its canonical form, the
        // form tokens carry; anything else is an agent name.
        // A private key given by mistake goes to the key parser too, which
        // refuses it without echoing it (it must never reach the log).
        let lower = a.trim().to_ascii_lowercase();
        // A key's 64 hex digits alone are refused, unechoed: taken as a
        // name they would revoke nobody while the operator believes a key
        // revoked, and they may as well be a private key pasted by mistake.
        if lower.len() == 64 && lower.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!(
                "--agent: a key's 64 hex digits alone are not taken (they may be a private \
                 key); give a public key as ed25519/<hex> or its .pub file, or an agent so \
                 named as name:<name>"
            );
        }
        let value = if lower.starts_with("ed25519/")
            || lower.starts_with("ed25519-private/")
            || std::path::Path::new(a).is_file()
        {
            mandate_core::PublicKey::from_arg(a)?.to_string()
        } else {
            a.clone()
        };
        (RevocationKind::Agent, value)
    } else if let Some(t) = &args.task {
        (RevocationKind::Task, t.clone())
    } else {
        bail!("nothing to revoke: give --id, --token, --principal, --agent or --task")
    })
}

fn describe(entry: &RevocationEntry) -> String {
    let verb = if entry.lifted { "lifted" } else { "revoked" };
    format!("{verb} {} {}", entry.kind, display_name(&entry.value))
}

pub fn list(args: &ListArgs) -> Result<Outcome> {
    let entries: Vec<RevocationEntry> = if let Some(location) = &args.source.store {
        mandate_registry::entries_after(&open_store(location)?, args.after)?
    } else if let Some(url) = &args.source.registry {
        let client = registry_client(&args.source, url)?;
        runtime()?.block_on(client.list_all(args.after))?
    } else {
        bail!("give --registry URL or --store DIR|URL");
    };
    if args.json {
        say!("{}", serde_json::to_string_pretty(&entries)?)?;
    } else if entries.is_empty() {
        say!("no revocations")?;
    } else {
        for e in &entries {
            say!(
                "#{:<5} {} {:<9} {:<40} by {} — {}",
                e.seq,
                humantime::format_rfc3339_seconds(e.at),
                if e.lifted { "lift" } else { e.kind.as_str() },
                display_name(&e.value),
                display_name(&e.revoked_by),
                if e.reason.is_empty() {
                    "(no reason)".to_owned()
                } else {
                    mandate_core::print::escape(&e.reason)
                },
            )?;
        }
    }
    Ok(Outcome::Ok)
}

/// `mandate registry serve`: the registry alone.
pub fn serve(args: &ServeArgs, verbose: u8) -> Result<Outcome> {
    let mut config = server_config(&args.server)?;
    if args.store.is_some() {
        config.revocations.store.clone_from(&args.store);
    }
    config.authorize.enabled = Some(false);
    run_server(&config, verbose, "registry")
}

/// `mandate serve`: the authorization API, with the registry in the same
/// process (`--store`) or subscribed to a remote one (`--registry`).
pub fn serve_verifier(args: &VerifierServeArgs, verbose: u8) -> Result<Outcome> {
    let mut config = server_config(&args.server)?;
    let authorize = &mut config.authorize;
    if args.policy.is_some() {
        authorize.policy.clone_from(&args.policy);
    }
    authorize.require_pop |= args.require_pop;
    if let Some(text) = &args.pop_window {
        authorize.pop_window = Some(pop_window(text)?);
    }
    let revocations = &mut config.revocations;
    if args.store.is_some() || !args.registry.is_empty() {
        // A source given on the command line replaces the file's.
        revocations.store.clone_from(&args.store);
        revocations.registry.clone_from(&args.registry);
    }
    if args.registry_auth.is_some() {
        revocations.registry_auth.clone_from(&args.registry_auth);
    }
    if args.registry_auth_key.is_some() {
        revocations
            .registry_auth_key
            .clone_from(&args.registry_auth_key);
    }
    if let Some(text) = &args.staleness {
        revocations.staleness = Some(staleness(text)?);
    }
    if let Some(token) = &revocations.registry_auth {
        // `-` (stdin) and @FILE are read here, once, like every other token flag.
        revocations.registry_auth = Some(read_token_text(token)?);
    }
    if args.ext_authz_mapping.is_some() {
        config.ext_authz.mapping.clone_from(&args.ext_authz_mapping);
    }
    if args.issuer_key.is_some() || args.issuer_key_dir.is_some() {
        // The key given here replaces the [issuer] section's; its other
        // settings stay the file's.
        let issuer = config.issuer.get_or_insert_with(Default::default);
        issuer.root_key.clone_from(&args.issuer_key);
        issuer.key_dir.clone_from(&args.issuer_key_dir);
    }
    run_server(&config, verbose, "authorization")
}

/// The configuration file, overridden by the flags (and their `MANDATE_*`
/// variables), each flag checked against its bound under its own name.
fn server_config(args: &ServerArgs) -> Result<ServerConfig> {
    use mandate_server::config::bounds;
    let mut config = match &args.config {
        Some(path) => ServerConfig::from_file(path)?,
        None => ServerConfig::default(),
    };
    if let Some(listen) = &args.listen {
        config.listen = Some(listen.parse().with_context(|| {
            format!("--listen {listen}: expected HOST:PORT, e.g. 127.0.0.1:7700")
        })?);
    }
    if !args.roots.root_pub.is_empty()
        || args.roots.root_keys.is_some()
        || args.roots.root_keys_url.is_some()
    {
        // Roots given on the command line replace the file's.
        config.roots.keys.clone_from(&args.roots.root_pub);
        config.roots.key_set.clone_from(&args.roots.root_keys);
        config.roots.keys_url.clone_from(&args.roots.root_keys_url);
    }
    let bounded = |flag: &str, text: &str, (min, max): (Duration, Duration)| {
        bounded_duration(flag, text, min, max)
    };
    if let Some(text) = &args.heartbeat {
        config.revocations.heartbeat = Some(bounded("--heartbeat", text, bounds::HEARTBEAT)?);
    }
    if let Some(workers) = args.eval.workers {
        config.eval.workers = Some(workers);
    }
    if let Some(queue) = args.eval.queue {
        config.eval.queue = Some(queue);
    }
    if let Some(text) = &args.eval.deadline {
        config.eval.deadline = Some(bounded("--eval-deadline", text, bounds::EVAL_DEADLINE)?);
    }
    config.revocations.allow_bearer_writes |= args.allow_bearer_writes;
    if args.tls_cert.is_some() || args.tls_key.is_some() {
        config.tls.cert.clone_from(&args.tls_cert);
        config.tls.key.clone_from(&args.tls_key);
    }
    if let Some(format) = args.log_format {
        config.log_format = format;
    }
    if let Some(text) = &args.shutdown_grace {
        config.shutdown_grace = Some(bounded("--shutdown-grace", text, bounds::SHUTDOWN_GRACE)?);
    }
    let audit = &mut config.audit;
    if args.audit.audit_store.is_some() {
        audit.store.clone_from(&args.audit.audit_store);
    }
    if args.audit.audit_key.is_some() {
        audit.key.clone_from(&args.audit.audit_key);
    }
    if let Some(mode) = args.audit.audit_mode {
        audit.mode = mode;
    }
    if let Some(text) = &args.audit.audit_flush_every {
        audit.flush_every = Some(bounded("--audit-flush-every", text, bounds::AUDIT_FLUSH)?);
    }
    Ok(config)
}

/// Validates, binds, prints the address and serves until SIGTERM or Ctrl-C.
fn run_server(config: &ServerConfig, verbose: u8, what: &str) -> Result<Outcome> {
    let settings = config.validate()?;
    mandate_server::logging::init(config.log_format, crate::log_level(verbose));
    if settings.allow_bearer_writes {
        tracing::warn!(
            "--allow-bearer-writes: operator mandates without an agent key can write to the registry"
        );
    }
    runtime()?.block_on(async {
        let server = mandate_server::bind(&settings).await?;
        // Listening for SIGTERM before the address is out: a supervisor may
        // stop the server the moment it has seen it.
        let shutdown = mandate_server::shutdown_signal();
        let scheme = if server.is_tls() { "https" } else { "http" };
        let address = server.local_addr();
        // The address on stdout, so scripts and tests can find a port-0 server.
        match (&settings.source, what) {
            (_, "registry") => say!("registry listening on {scheme}://{address}")?,
            (Source::Store(_), _) if settings.issuer.is_some() => {
                say!("serving authorization, registry and issuer on {scheme}://{address}")?;
            }
            (Source::Store(_), _) => {
                say!("serving authorization and registry on {scheme}://{address}")?;
            }
            (Source::Registry { urls, .. }, _) => {
                // Validated URLs carry no credentials.
                let urls = urls.join(", ");
                say!("serving authorization on {scheme}://{address}, revocations from {urls}")?;
            }
        }
        server.run(shutdown).await
    })?;
    Ok(Outcome::Ok)
}

/// Parses a `--staleness` bound.
pub fn staleness(text: &str) -> Result<Duration> {
    bounded_duration("--staleness", text, STALENESS_MIN, STALENESS_MAX)
}
