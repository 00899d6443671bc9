//! `mandate issuer serve` and `mandate task open|refresh|close`: flags into
//! an issuer configuration or a client call, nothing more.

use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use mandate_core::{Right, SecretKey};
use mandate_issuer::client::{IssuerClient, OpenRequest};
use mandate_server::issuer::{IdpEntryArg, IssuerConfig};

use crate::args::{IssuerServeArgs, TaskCallArgs, TaskCloseArgs, TaskCommand, TaskOpenArgs};
use crate::input::{parse_duration, read_token_text};
use crate::outcome::Outcome;
use crate::output::emit_token;
use crate::output::say;

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn config(args: &IssuerServeArgs) -> Result<IssuerConfig> {
    let mut config = match &args.config {
        Some(path) => IssuerConfig::from_file(path)?,
        None => IssuerConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = Some(listen);
    }
    if args.id.is_some() {
        config.id.clone_from(&args.id);
    }
    if args.root_key.is_some() {
        config.root_key.clone_from(&args.root_key);
    }
    if args.key_id.is_some() {
        config.root_key_id = args.key_id;
    }
    if args.key_dir.is_some() {
        config.key_dir.clone_from(&args.key_dir);
        config.root_key = None;
        config.root_key_id = None;
    }
    if let Some(text) = &args.keys_max_age {
        config.keys_max_age = Some(parse_duration(text)?);
    }
    if args.policy.is_some() {
        config.policy.clone_from(&args.policy);
    }
    if args.store.is_some() {
        config.store.clone_from(&args.store);
    }
    if let Some(text) = &args.mandate_ttl {
        config.mandate_ttl = Some(parse_duration(text)?);
    }
    if let Some(text) = &args.sweep_interval {
        config.sweep_interval = Some(parse_duration(text)?);
    }
    if args.registry.is_some() {
        config.revocations.registry.clone_from(&args.registry);
        config.revocations.store = None;
    }
    if args.registry_auth.is_some() {
        config
            .revocations
            .registry_auth
            .clone_from(&args.registry_auth);
    }
    if args.registry_auth_key.is_some() {
        config
            .revocations
            .registry_auth_key
            .clone_from(&args.registry_auth_key);
    }
    for text in &args.idp {
        config.idp.push(IdpEntryArg::parse(text)?);
    }
    if let Some(format) = args.log_format {
        config.log_format = format;
    }
    if args.audit_store.is_some() {
        config.audit.store.clone_from(&args.audit_store);
    }
    if args.audit_key.is_some() {
        config.audit.key.clone_from(&args.audit_key);
    }
    Ok(config)
}

/// `mandate issuer serve`.
pub fn serve(args: &IssuerServeArgs, verbose: u8) -> Result<Outcome> {
    let settings = config(args)?.validate()?;
    mandate_server::logging::init(settings.log_format, crate::log_level(verbose.max(1)));
    runtime()?.block_on(async {
        let server = mandate_server::issuer::bind_issuer(&settings).await?;
        let scheme = if server.is_tls() { "https" } else { "http" };
        // The address on stdout, so scripts and tests can find a port-0 server.
        say!("issuer listening on {scheme}://{}", server.local_addr())?;
        server.run(mandate_server::shutdown_signal()).await
    })?;
    Ok(Outcome::Ok)
}

/// `mandate task ...`.
pub fn task(command: TaskCommand) -> Result<Outcome> {
    match command {
        TaskCommand::Open(args) => open(&args),
        TaskCommand::Refresh(args) => refresh(&args),
        TaskCommand::Close(args) => close(&args),
    }
}

fn open(args: &TaskOpenArgs) -> Result<Outcome> {
    let key = SecretKey::read(&args.agent_key)?;
    let subject_token = read_token_text(&args.subject_token)?.trim().to_owned();
    let rights = args
        .rights
        .iter()
        .map(|r| r.parse::<Right>())
        .collect::<Result<Vec<_>, _>>()?;
    let ttl = args.ttl.as_deref().map(parse_duration).transpose()?;
    let request = OpenRequest {
        subject_token,
        agent: args.agent.clone(),
        rights,
        audience: args.audience.clone(),
        description: args.description.clone(),
        ttl,
    };
    let client = IssuerClient::new(&args.issuer)?;
    let response = runtime()?.block_on(client.open(&key, &request))?;
    tracing::info!(task = %response.task_id, mandate = %mandate_core::fingerprint(&response.access_token), "task opened");
    finish(&response.access_token, &response.task_id, args.out.clone())
}

fn finish(token: &str, task: &str, out: Option<PathBuf>) -> Result<Outcome> {
    match out {
        Some(path) => {
            emit_token(token, Some(&path))?;
            say!("{task}")?;
            Ok(Outcome::Ok)
        }
        None => {
            eprintln!("task {task}");
            emit_token(token, None)
        }
    }
}

fn refresh(args: &TaskCallArgs) -> Result<Outcome> {
    let key = SecretKey::read(&args.agent_key)?;
    let token = read_token_text(&args.token)?;
    let client = IssuerClient::new(&args.issuer)?;
    let response = runtime()?.block_on(client.refresh(&args.task, &token, &key))?;
    finish(&response.access_token, &response.task_id, args.out.clone())
}

fn close(args: &TaskCloseArgs) -> Result<Outcome> {
    let client = IssuerClient::new(&args.issuer)?;
    let closed = match (
        (&args.token, &args.agent_key),
        &args.subject_token,
        (&args.operator_token, &args.operator_key),
    ) {
        ((Some(token), Some(key)), None, (None, None)) => {
            let key = SecretKey::read(key)?;
            let token = read_token_text(token)?;
            runtime()?.block_on(client.close(&args.task, &token, &key))?
        }
        ((None, None), Some(subject), (None, None)) => {
            let id_token = read_token_text(subject)?;
            runtime()?.block_on(client.close_as_principal(&args.task, &id_token))?
        }
        ((None, None), None, (Some(token), Some(key))) => {
            let key = SecretKey::read(key)?;
            let token = read_token_text(token)?;
            runtime()?.block_on(client.close_as_operator(&args.task, &token, &key))?
        }
        _ => bail!(
            "close as the agent (--token, --agent-key), the principal (--subject-token) \
             or an operator (--operator-token, --operator-key)"
        ),
    };
    say!("task {} {}", closed.task_id, closed.state)?;
    Ok(Outcome::Ok)
}
