//! `mandate revoke`, `mandate revocations list`, `mandate registry serve`, and
//! the revocation source of `mandate authorize`.
//!
//! Every registry call presents a mandate (`--auth` for writes, `--registry-auth` for
//! reads) and, when a key is given, signs a proof of possession per request; this module
//! must never print or log a token, only its fingerprint.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use mandate_core::{display_name, SecretKey};
use mandate_registry::{
    load_index, MandateWriteAuthorizer, NewRevocation, RegistryAuth, RegistryClient,
    RegistryConfig, RegistryState, RevocationEntry, RevocationKind, RevocationStore, SharedIndex,
    SledStore,
};
use mandate_verifier::pool::EvalPool;
use mandate_verifier::Verifier;

use crate::args::{EvalArgs, ListArgs, RevocationSource, RevokeArgs, ServeArgs, VerifierServeArgs};
use crate::commands::{
    bounded_duration, pop_window, read_token, read_token_text, root_keys, Outcome,
};
use crate::output::say;

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Opens an existing store; a mistyped folder is an error, never a fresh
/// empty store that would revoke nothing.
fn open_store(dir: &std::path::Path) -> Result<SledStore> {
    SledStore::open_existing(dir).with_context(|| {
        format!(
            "opening store {} (if `mandate registry serve` is using it, pass --registry instead)",
            dir.display()
        )
    })
}

/// Opens or creates the store a server owns.
fn create_store(dir: &std::path::Path) -> Result<SledStore> {
    SledStore::open(dir).with_context(|| format!("opening store {}", dir.display()))
}

/// The verifier that authorizes registry writes and reads: the same roots, the
/// revocation state of this registry (a revoked operator cannot write, nor
/// lift its own revocation), keyed operator mandates unless bearer writes are
/// allowed, and proofs on reads too when `require_pop`.
fn write_authorizer(
    keys: mandate_core::KeySet,
    index: SharedIndex,
    require_pop: bool,
    allow_bearer_writes: bool,
) -> Result<MandateWriteAuthorizer> {
    let builder = Verifier::builder()
        .root_keys(keys)
        .require_pop(require_pop)
        .revocation(Arc::new(index));
    Ok(if allow_bearer_writes {
        // Logs its own warning; this one names the flag an operator has to remove.
        tracing::warn!("--allow-bearer-writes: operator mandates without an agent key can write to the registry");
        MandateWriteAuthorizer::allowing_bearer_writes(builder)?
    } else {
        MandateWriteAuthorizer::new(builder)?
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

const HEARTBEAT_MIN: Duration = Duration::from_millis(10);
const HEARTBEAT_MAX: Duration = Duration::from_secs(3600);
const STALENESS_MIN: Duration = Duration::from_millis(100);
const STALENESS_MAX: Duration = Duration::from_secs(24 * 3600);
const EVAL_DEADLINE_MIN: Duration = Duration::from_millis(10);
const EVAL_DEADLINE_MAX: Duration = Duration::from_secs(60);
const EVAL_WORKERS_MAX: usize = 1024;

/// The pool a server evaluates tokens on, from `--eval-workers` and `--eval-deadline`.
fn eval_pool(args: &EvalArgs) -> Result<EvalPool> {
    let deadline = bounded_duration(
        "--eval-deadline",
        &args.deadline,
        EVAL_DEADLINE_MIN,
        EVAL_DEADLINE_MAX,
    )?;
    Ok(match args.workers {
        None => EvalPool::new(EvalPool::default_workers(), deadline),
        Some(n) if (1..=EVAL_WORKERS_MAX).contains(&n) => EvalPool::new(n, deadline),
        Some(n) => bail!("--eval-workers {n} is outside 1 ..= {EVAL_WORKERS_MAX}"),
    })
}

/// The revocation state `authorize` consults, or `None` without a source.
pub fn revocation_state(
    source: &RevocationSource,
    staleness: Duration,
) -> Result<Option<SharedIndex>> {
    if let Some(dir) = &source.store {
        let store = open_store(dir)?;
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
    if let Some(dir) = &args.target.store {
        let store = open_store(dir)?;
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
            "{} (seq {}), written to {}",
            describe(&entry),
            entry.seq,
            dir.display()
        )?;
        return Ok(Outcome::Ok);
    }
    let (Some(url), Some(auth)) = (&args.target.registry, &args.target.auth) else {
        bail!("give --registry URL --auth TOKEN, or --store DIR");
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
    runtime()?.block_on(async {
        let mut attempt = 0;
        let entry = loop {
            attempt += 1;
            let written = if args.lift {
                client.lift(&write_auth, kind, &value, &args.reason).await
            } else {
                client.revoke(&write_auth, kind, &value, &args.reason).await
            };
            match written {
                // 503: the registry could not judge the write now; retry.
                Err(mandate_registry::Error::Api { status: 503, .. }) if attempt < 3 => {
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                other => break other.with_context(|| format!("writing to {url}"))?,
            }
        };
        say!("{} (seq {})", describe(&entry), entry.seq)?;
        // Report how many connected verifiers applied it, waiting briefly.
        // The revocation is recorded already: a failure here is a warning,
        // never a failed command.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match client.status(Some(entry.seq)).await {
                Ok(status)
                    if status.applied_by >= status.subscribers || Instant::now() >= deadline =>
                {
                    say!(
                        "applied by {} of {} connected verifiers",
                        status.applied_by,
                        status.subscribers
                    )?;
                    if status.subscribers == 0 {
                        // `mandate serve --store` applies it in-process before
                        // answering; stream subscribers catch up when they connect.
                        say!("(no verifier is subscribed right now; verifiers that connect later catch up from the log)")?;
                    }
                    break;
                }
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(e) => {
                    eprintln!("warning: recorded, but the registry's status is unavailable: {e}");
                    break;
                }
            }
        }
        Ok(Outcome::Ok)
    })
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
    } else if let Some(a) = &args.agent {
        // A key (text or .pub file) is stored in its canonical form, the
        // form tokens carry; anything else is an agent name.
        // A private key given by mistake goes to the key parser too, which
        // refuses it without echoing it (it must never reach the log).
        let lower = a.trim().to_ascii_lowercase();
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
    let entries: Vec<RevocationEntry> = if let Some(dir) = &args.source.store {
        mandate_registry::entries_after(&open_store(dir)?, args.after)?
    } else if let Some(url) = &args.source.registry {
        let client = registry_client(&args.source, url)?;
        runtime()?.block_on(client.list_all(args.after))?
    } else {
        bail!("give --registry URL or --store DIR");
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
                e.revoked_by,
                if e.reason.is_empty() {
                    "(no reason)"
                } else {
                    &e.reason
                },
            )?;
        }
    }
    Ok(Outcome::Ok)
}

pub fn serve(args: &ServeArgs) -> Result<Outcome> {
    let heartbeat = bounded_duration("--heartbeat", &args.heartbeat, HEARTBEAT_MIN, HEARTBEAT_MAX)?;
    let keys = root_keys(&args.roots)?;
    let indexed = mandate_registry::IndexingStore::new(create_store(&args.store)?)?;
    let authorizer = write_authorizer(keys, indexed.index(), false, args.allow_bearer_writes)?;
    let store: Arc<dyn RevocationStore> = Arc::new(indexed);
    let config = RegistryConfig {
        heartbeat_interval: heartbeat,
        eval_pool: eval_pool(&args.eval)?,
        ..RegistryConfig::default()
    };
    let state = RegistryState::with_config(store, Arc::new(authorizer), config);
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let address = listener.local_addr()?;
        // The address on stdout, so scripts and tests can find a port-0 server.
        say!("registry listening on http://{address}")?;
        tracing::info!(%address, store = %args.store.display(), "registry serving");
        mandate_registry::serve(listener, state, mandate_registry::shutdown_signal()).await?;
        anyhow::Ok(())
    })?;
    Ok(Outcome::Ok)
}

/// `mandate serve`: the authorization API, with the registry in the same
/// process (`--store`) or subscribed to a remote one (`--registry`).
pub fn serve_verifier(args: &VerifierServeArgs) -> Result<Outcome> {
    let keys = root_keys(&args.roots)?;
    let mut builder = Verifier::builder()
        .root_keys(keys.clone())
        .require_pop(args.require_pop)
        .pop_window(pop_window(&args.pop_window)?);
    if let Some(path) = &args.policy {
        builder = builder.policy(mandate_verifier::Policy::from_file(path)?);
    }
    let staleness = bounded_duration("--staleness", &args.staleness, STALENESS_MIN, STALENESS_MAX)?;
    let heartbeat = bounded_duration("--heartbeat", &args.heartbeat, HEARTBEAT_MIN, HEARTBEAT_MAX)?;
    // One pool per process: registry writes and authorizations share its workers.
    let pool = eval_pool(&args.eval)?;
    // Checked before the port is bound: a bad mapping never serves.
    let mapping = match &args.ext_authz_mapping {
        Some(path) => Some(mandate_verifier::mapping::Mapping::from_file(path)?),
        None => None,
    };
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let address = listener.local_addr()?;
        if let Some(dir) = &args.revocations.store {
            let store = mandate_registry::IndexingStore::new(create_store(dir)?)?;
            let verifier = builder.revocation(Arc::new(store.index())).build()?;
            let writes = write_authorizer(
                keys,
                store.index(),
                args.require_pop,
                args.allow_bearer_writes,
            )?;
            let config = RegistryConfig {
                heartbeat_interval: heartbeat,
                eval_pool: pool.clone(),
                ..RegistryConfig::default()
            };
            let state = RegistryState::with_config(Arc::new(store), Arc::new(writes), config);
            // Authorization routes first; anything else is the registry's.
            let app = authorization_app(verifier, pool, mapping)
                .fallback_service(mandate_registry::router(state.clone()));
            say!("serving authorization and registry on http://{address}")?;
            mandate_registry::serve_app(listener, state, app, mandate_registry::shutdown_signal())
                .await?;
        } else if let Some(url) = &args.revocations.registry {
            let index = SharedIndex::new(staleness);
            let client = registry_client(&args.revocations, url)?;
            let _subscription = client.subscribe(index.clone(), Default::default());
            let verifier = builder.revocation(Arc::new(index)).build()?;
            let app = authorization_app(verifier, pool, mapping);
            say!("serving authorization on http://{address}, revocations from {url}")?;
            axum::serve(listener, app)
                .with_graceful_shutdown(mandate_registry::shutdown_signal())
                .await
                .context("serving")?;
        } else {
            bail!("give --store DIR (registry in this process) or --registry URL: a service never runs without revocations");
        }
        anyhow::Ok(())
    })?;
    Ok(Outcome::Ok)
}

/// `/v1/authorize`, and `/v1/ext_authz` when a mapping is given; one
/// verifier (so one replay cache) and one pool behind both.
fn authorization_app(
    verifier: Verifier,
    pool: EvalPool,
    mapping: Option<mandate_verifier::mapping::Mapping>,
) -> axum::Router {
    use mandate_verifier::http::{ext_authz_router, router, AuthzState, ExtAuthzState};
    let Some(mapping) = mapping else {
        return router(AuthzState::with_pool(verifier, pool));
    };
    // Clones of a verifier share its replay cache: a proof spent on one
    // endpoint is spent on both.
    let ext = ExtAuthzState::new(Arc::new(verifier.clone()), pool.clone(), mapping);
    router(AuthzState::with_pool(verifier, pool)).merge(ext_authz_router(ext))
}

/// Parses a `--staleness` bound.
pub fn staleness(text: &str) -> Result<Duration> {
    bounded_duration("--staleness", text, STALENESS_MIN, STALENESS_MAX)
}
