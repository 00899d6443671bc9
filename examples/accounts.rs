//! An accounts API protected by the Mandate middleware: a Rust service that
//! decides every call by the caller's mandate, in process, and stops calls in
//! flight when the mandate is revoked.
//!
//! - `GET /accounts/{id}/balance` — operation `read` on `/accounts/{id}`.
//! - `POST /accounts/{id}/transfer` — operation `transfer`, with the `amount`
//!   (and the destination `to`) as request attributes, taken from the JSON
//!   body `{"to": "acc-2", "amount": 40}` or from the query
//!   (`?to=acc-2&amount=40`). The body's SHA-256 is bound too, so the agent's
//!   proof signs the exact transfer; the mandate's checks bound the amount.
//! - `GET /accounts/{id}/export` — operation `export`: one NDJSON record per
//!   50 ms for a long time. When anything the mandate depends on is revoked,
//!   or the revocation state goes stale, the stream ends with an
//!   `{"error": {...}}` line.
//!
//! Callers send `Authorization: Mandate <token>` and, for a keyed mandate, a
//! proof of possession in `Mandate-PoP` over the call: service `accounts`,
//! the operation, the resource, the attributes above and `http_method`,
//! `http_path`, `body_sha256` (`mandate pop --attr ...`).
//!
//! Revocations come from a registry (`--registry URL --registry-auth TOKEN
//! [--registry-auth-key KEY]`, as `mandate serve` takes them) or from a sled
//! store in this process (`--store DIR`, which also serves the registry API
//! on the same address, so `mandate revoke --registry` works against it).
//! Every flag can also be given in the environment (`ACCOUNTS_LISTEN`,
//! `ACCOUNTS_ROOT_PUB`, `ACCOUNTS_REGISTRY`, `ACCOUNTS_REGISTRY_AUTH`,
//! `ACCOUNTS_REGISTRY_AUTH_KEY`, `ACCOUNTS_STORE`, `ACCOUNTS_STALENESS`).
//!
//! ```text
//! cargo run -p mandate-cli --example accounts -- \
//!     --root-pub root.pub --registry http://127.0.0.1:7700 \
//!     --registry-auth @reader.token --registry-auth-key reader
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;
use mandate_core::{AttrValue, KeySet, SecretKey};
use mandate_registry::{
    IndexingStore, MandateWriteAuthorizer, RegistryAuth, RegistryClient, RegistryConfig,
    RegistryState, SharedIndex, SledStore, SubscribeOptions,
};
use mandate_verifier::http::ApiError;
use mandate_verifier::middleware::{Call, MandateLayer, Mandated};
use mandate_verifier::pool::EvalPool;
use mandate_verifier::{ErrorBody, ErrorDetail, Verifier};
use serde_json::{json, Value};

/// The service name mandates grant rights on (`accounts:read`, ...).
const SERVICE: &str = "accounts";
/// Pause between two exported records.
const EXPORT_PACE: Duration = Duration::from_millis(50);
/// The most records one export sends (a bound on what input can grow).
const EXPORT_MAX: u64 = 100_000;
/// The longest account id accepted.
const MAX_ID_LEN: usize = 64;

#[derive(Debug, Parser)]
#[command(about = "An accounts API protected by Mandate")]
struct Args {
    /// Address to listen on [env: ACCOUNTS_LISTEN] (default 127.0.0.1:7800).
    #[arg(long)]
    listen: Option<String>,
    /// The issuer's root public key (`ed25519/<hex>` or a .pub file)
    /// [env: ACCOUNTS_ROOT_PUB].
    #[arg(long = "root-pub")]
    root_pub: Option<String>,
    /// A revocation registry to subscribe to [env: ACCOUNTS_REGISTRY].
    #[arg(long)]
    registry: Option<String>,
    /// A mandate granting `registry:read` (TOKEN or @FILE)
    /// [env: ACCOUNTS_REGISTRY_AUTH].
    #[arg(long = "registry-auth")]
    registry_auth: Option<String>,
    /// The private key of that mandate's agent [env: ACCOUNTS_REGISTRY_AUTH_KEY].
    #[arg(long = "registry-auth-key")]
    registry_auth_key: Option<PathBuf>,
    /// A sled store folder: revocations kept in this process, registry API
    /// served beside the accounts API [env: ACCOUNTS_STORE].
    #[arg(long)]
    store: Option<PathBuf>,
    /// With --registry: how old the revocation state may be before every call
    /// is refused and calls in flight stop [env: ACCOUNTS_STALENESS]
    /// (default 3s).
    #[arg(long)]
    staleness: Option<String>,
}

impl Args {
    /// Each flag, or its `ACCOUNTS_*` variable.
    fn with_env(mut self) -> Args {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        self.listen = self.listen.or_else(|| env("ACCOUNTS_LISTEN"));
        self.root_pub = self.root_pub.or_else(|| env("ACCOUNTS_ROOT_PUB"));
        self.registry = self.registry.or_else(|| env("ACCOUNTS_REGISTRY"));
        self.registry_auth = self.registry_auth.or_else(|| env("ACCOUNTS_REGISTRY_AUTH"));
        self.registry_auth_key = self
            .registry_auth_key
            .or_else(|| env("ACCOUNTS_REGISTRY_AUTH_KEY").map(PathBuf::from));
        self.store = self
            .store
            .or_else(|| env("ACCOUNTS_STORE").map(PathBuf::from));
        self.staleness = self.staleness.or_else(|| env("ACCOUNTS_STALENESS"));
        self
    }
}

fn main() -> std::process::ExitCode {
    mandate_server::logging::init(mandate_server::LogFormat::Text, "info");
    match run(Args::parse().with_env()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<()> {
    let Some(root_pub) = &args.root_pub else {
        bail!("give --root-pub KEY: the issuer's root public key");
    };
    let mut keys = KeySet::new();
    keys.add_arg(root_pub).context("reading --root-pub")?;
    let listen = args.listen.as_deref().unwrap_or("127.0.0.1:7800");
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let address = listener.local_addr()?;
        let pool = EvalPool::default();
        let builder = Verifier::builder().root_keys(keys.clone());
        match (&args.store, &args.registry) {
            (Some(dir), None) => {
                let store = IndexingStore::new(SledStore::open(dir)?)?;
                let index = store.index();
                let verifier = builder.revocation(Arc::new(index.clone())).build()?;
                let writes = MandateWriteAuthorizer::new(
                    Verifier::builder()
                        .root_keys(keys)
                        .revocation(Arc::new(index)),
                )?;
                let config = RegistryConfig {
                    eval_pool: pool.clone(),
                    ..RegistryConfig::default()
                };
                let state = RegistryState::with_config(Arc::new(store), Arc::new(writes), config);
                // The accounts routes first; anything else is the registry's.
                let app = router(verifier, pool).fallback_service(mandate_registry::router(state.clone()));
                println!("serving accounts and revocations on http://{address}");
                mandate_registry::serve_app(listener, state, app, mandate_registry::shutdown_signal())
                    .await?;
            }
            (None, Some(url)) => {
                let staleness = humantime::parse_duration(args.staleness.as_deref().unwrap_or("3s"))
                    .context("reading --staleness")?;
                let Some(token) = &args.registry_auth else {
                    bail!("--registry needs --registry-auth TOKEN: a mandate granting registry:read");
                };
                let token = match token.strip_prefix('@') {
                    Some(path) => std::fs::read_to_string(path)
                        .with_context(|| format!("reading {path}"))?
                        .trim()
                        .to_owned(),
                    None => token.clone(),
                };
                let auth = match &args.registry_auth_key {
                    Some(path) => RegistryAuth::keyed(token, SecretKey::read(path)?)?,
                    None => RegistryAuth::bearer(token),
                };
                let index = SharedIndex::new(staleness);
                let client = RegistryClient::new(url)?.with_auth(auth);
                let _subscription = client.subscribe(index.clone(), SubscribeOptions::default());
                let verifier = builder.revocation(Arc::new(index)).build()?;
                println!("serving accounts on http://{address}, revocations from {url}");
                axum::serve(listener, router(verifier, pool))
                    .with_graceful_shutdown(mandate_registry::shutdown_signal())
                    .await
                    .context("serving")?;
            }
            _ => bail!(
                "give exactly one of --registry URL or --store DIR: a service never runs without revocations"
            ),
        }
        anyhow::Ok(())
    })
}

// ---------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------

/// Balances in cents, by account id.
#[derive(Clone, Default)]
struct Ledger(Arc<Mutex<BTreeMap<String, i64>>>);

impl Ledger {
    fn with_demo_accounts() -> Ledger {
        let ledger = Ledger::default();
        {
            let mut accounts = ledger.lock();
            accounts.insert("acc-1".into(), 100_000);
            accounts.insert("acc-2".into(), 25_000);
        }
        ledger
    }

    // A panic while holding the lock leaves whole numbers behind; recover.
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, i64>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The accounts API. Middleware order, outermost first: routing (unknown
/// paths are a JSON 404 and never ask for a mandate), then per route group
/// the [`MandateLayer`] (credentials, body for transfers, mapping, decision
/// on the evaluation pool), then the handler with its [`Mandated`].
fn router(verifier: Verifier, pool: EvalPool) -> Router {
    let verifier = Arc::new(verifier);
    let reads = MandateLayer::new(Arc::clone(&verifier), pool.clone(), map_read).realm(SERVICE);
    let transfers = MandateLayer::with_body(verifier, pool, map_transfer).realm(SERVICE);
    Router::new()
        .route("/accounts/{id}/balance", get(balance))
        .route("/accounts/{id}/export", get(export))
        .route_layer(reads)
        .merge(
            Router::new()
                .route("/accounts/{id}/transfer", post(transfer))
                .route_layer(transfers),
        )
        .fallback(mandate_verifier::http::not_found)
        .with_state(Ledger::with_demo_accounts())
}

/// The account id in `/accounts/{id}/...`: lower-case letters, digits and
/// dashes, so it is a plain resource segment and never all digits (which a
/// proof made with `mandate pop --attr` would sign as an integer).
fn account_id(parts: &Parts) -> Result<&str, ApiError> {
    let id = parts
        .uri
        .path()
        .strip_prefix("/accounts/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default();
    let plain = id
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let digits = id.chars().all(|c| c.is_ascii_digit());
    if id.is_empty() || id.len() > MAX_ID_LEN || !plain || digits {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such account",
        ));
    }
    Ok(id)
}

/// Balance and export: `read` or `export` on `/accounts/{id}`.
fn map_read(parts: &Parts) -> Result<Call, ApiError> {
    let id = account_id(parts)?;
    let operation = if parts.uri.path().ends_with("/export") {
        "export"
    } else {
        "read"
    };
    Ok(Call::new(SERVICE, operation, format!("/accounts/{id}")))
}

/// A transfer: `transfer` on `/accounts/{id}` with `to` and `amount`, from
/// the JSON body or, when the body is empty, the query.
fn map_transfer(parts: &Parts, body: &[u8]) -> Result<Call, ApiError> {
    let id = account_id(parts)?;
    let (to, amount) = if body.is_empty() {
        let query: BTreeMap<&str, &str> = parts
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .collect();
        let amount = query.get("amount").and_then(|a| a.parse::<i64>().ok());
        (query.get("to").map(|to| (*to).to_owned()), amount)
    } else {
        let body: Value = serde_json::from_slice(body)
            .map_err(|_| ApiError::bad_request("bad_request", "the body is not JSON"))?;
        (
            body["to"].as_str().map(str::to_owned),
            body["amount"].as_i64(),
        )
    };
    let to =
        to.ok_or_else(|| ApiError::bad_request("bad_request", "name the destination account: to"))?;
    let amount = amount
        .filter(|a| *a > 0)
        .ok_or_else(|| ApiError::bad_request("bad_request", "give a positive integer amount"))?;
    Ok(Call::new(SERVICE, "transfer", format!("/accounts/{id}"))
        .attr("to", AttrValue::Str(to))
        .attr("amount", AttrValue::Int(amount)))
}

async fn balance(
    State(ledger): State<Ledger>,
    Path(id): Path<String>,
    mandate: Mandated,
) -> Response {
    let Some(balance) = ledger.lock().get(&id).copied() else {
        return error(StatusCode::NOT_FOUND, "not_found", "no such account");
    };
    Json(json!({
        "account": id,
        "balance": balance,
        "principal": mandate.principal(),
        "agent": mandate.agent(),
        "chain": mandate.chain(),
        "task": mandate.task(),
    }))
    .into_response()
}

async fn transfer(
    State(ledger): State<Ledger>,
    Path(id): Path<String>,
    mandate: Mandated,
) -> Response {
    // The decided attributes, not a second parse of the body: the handler acts
    // on exactly what the mandate allowed.
    let attr = |key: &str| {
        mandate
            .decision()
            .attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let (Some(to), Some(amount)) = (
        attr("to"),
        attr("amount").and_then(|a| a.parse::<i64>().ok()),
    ) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "no transfer in this request",
        );
    };
    // Commit only if the mandate is still good at this instant.
    if let Err(denial) = mandate.cancellation().check() {
        return error(StatusCode::FORBIDDEN, "revoked", &denial.to_string());
    }
    let mut accounts = ledger.lock();
    let (Some(&from_balance), true) = (accounts.get(&id), accounts.contains_key(&to)) else {
        return error(StatusCode::NOT_FOUND, "not_found", "no such account");
    };
    if from_balance < amount {
        return error(
            StatusCode::CONFLICT,
            "insufficient_funds",
            "insufficient funds",
        );
    }
    accounts.insert(id.clone(), from_balance - amount);
    if let Some(balance) = accounts.get_mut(&to) {
        *balance += amount;
    }
    tracing::info!(principal = ?mandate.principal(), chain = ?mandate.chain(), from = %id, %to, amount, "transfer");
    Json(json!({ "from": id, "to": to, "amount": amount, "balance": from_balance - amount }))
        .into_response()
}

/// One NDJSON record per [`EXPORT_PACE`], ending with an error line when the
/// mandate is revoked.
async fn export(Path(id): Path<String>, mandate: Mandated) -> Response {
    let records = futures_util::stream::unfold(0u64, move |seq| {
        let id = id.clone();
        async move {
            if seq >= EXPORT_MAX {
                return None;
            }
            tokio::time::sleep(EXPORT_PACE).await;
            let line = json!({ "seq": seq, "account": id, "entry": format!("entry {seq}") });
            Some((
                Ok::<_, std::convert::Infallible>(format!("{line}\n")),
                seq + 1,
            ))
        }
    });
    let lines = mandate.cancellation().until_revoked(records, |denial| {
        tracing::info!(%denial, "export stopped");
        let body = ErrorBody {
            error: ErrorDetail {
                code: "revoked".into(),
                message: denial.to_string(),
            },
        };
        Ok(format!("{}\n", json!(body)))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response()
}

fn error(status: StatusCode, code: &'static str, message: &str) -> Response {
    ApiError::new(status, code, message).into_response()
}
