//! `mandate issuer serve`, `mandate task open|refresh|close|request` and
//! `mandate requests list|approve|deny`: flags into an issuer configuration
//! or a client call, nothing more.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context as _, Result};
use mandate_core::{display_label, display_name, Right, SecretKey, UnverifiedMandate};
use mandate_issuer::client::{ClientError, IssuerClient, OpenRequest};
use mandate_issuer::requests::MAX_WAIT;
use mandate_postgres::StoreLocation;
use mandate_server::issuer::{IdpEntryArg, IssuerConfig};

use crate::args::{
    ApproverArgs, IssuerServeArgs, RequestDecideArgs, RequestsCommand, RequestsListArgs,
    TaskCallArgs, TaskCloseArgs, TaskCommand, TaskOpenArgs, TaskRequestArgs,
};
use crate::input::{bounded_duration, parse_duration, read_token_text};
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
    if let Some(store) = &args.store {
        config.store = Some(config_path(store));
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
    if let Some(text) = &args.request_ttl {
        config.request_ttl = Some(parse_duration(text)?);
    }
    config
        .approver_groups
        .extend(args.approver_groups.iter().cloned());
    if let Some(store) = &args.requests_store {
        config.requests_store = Some(config_path(store));
    }
    Ok(config)
}

/// A store location as the configuration file spells it (a folder, or the
/// URL itself).
fn config_path(location: &StoreLocation) -> PathBuf {
    match location {
        StoreLocation::Folder(dir) => dir.clone(),
        StoreLocation::Postgres(url) => PathBuf::from(url),
    }
}

/// `mandate issuer serve`.
pub fn serve(args: &IssuerServeArgs, verbose: u8) -> Result<Outcome> {
    let settings = config(args)?.validate()?;
    mandate_server::logging::init(settings.log_format, crate::log_level(verbose.max(1)));
    runtime()?.block_on(async {
        let server = mandate_server::issuer::bind_issuer(&settings).await?;
        // Listening for SIGTERM before the address is out.
        let shutdown = mandate_server::shutdown_signal();
        let scheme = if server.is_tls() { "https" } else { "http" };
        // The address on stdout, so scripts and tests can find a port-0 server.
        say!("issuer listening on {scheme}://{}", server.local_addr())?;
        server.run(shutdown).await
    })?;
    Ok(Outcome::Ok)
}

/// `mandate task ...`.
pub fn task(command: TaskCommand) -> Result<Outcome> {
    match command {
        TaskCommand::Open(args) => open(&args),
        TaskCommand::Refresh(args) => refresh(&args),
        TaskCommand::Close(args) => close(&args),
        TaskCommand::Request(args) => request(&args),
    }
}

fn open(args: &TaskOpenArgs) -> Result<Outcome> {
    let key = SecretKey::read(&args.agent_key)?;
    let wait = match &args.wait {
        Some(text) => bounded_duration("--wait", text, Duration::ZERO, WAIT_MAX)?,
        None => Duration::ZERO,
    };
    let client = IssuerClient::new(&args.issuer)?;
    let runtime = runtime()?;
    let first = match (&args.request, &args.subject_token) {
        (Some(id), _) => runtime.block_on(client.collect(&key, &args.agent, id, Duration::ZERO)),
        (None, Some(subject)) => {
            let subject_token = read_token_text(subject)?.trim().to_owned();
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
            runtime.block_on(client.open(&key, &request))
        }
        (None, None) => bail!("give --subject-token (and --right), or --request"),
    };
    let until = Instant::now() + wait;
    let mut outcome = first;
    // Whether the answer is a collection's: its denial is a decision (exit 1).
    let mut collected = args.request.is_some();
    // A person must approve: wait (a minute per call) while allowed.
    while let Err(ClientError::ApprovalPending { request_id, .. }) = &outcome {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let id = request_id.clone();
        collected = true;
        outcome = runtime.block_on(client.collect(&key, &args.agent, &id, left.min(MAX_WAIT)));
    }
    let response = match outcome {
        Ok(response) => response,
        Err(ClientError::ApprovalPending {
            message,
            request_id,
            task_id,
            expires_in,
            ..
        }) => {
            eprintln!(
                "task {} waits for approval: {}",
                display_name(&task_id),
                display_name(&message)
            );
            eprintln!(
                "the principal or an approver decides with `mandate requests approve {}` \
                 (expires in {expires_in}s); collect the mandate with `mandate task open \
                 --issuer {} --agent {} --agent-key {} --request {} --wait 10m`",
                display_name(&request_id),
                args.issuer,
                args.agent,
                args.agent_key.display(),
                display_name(&request_id)
            );
            say!("pending {request_id}")?;
            return Ok(Outcome::Ok);
        }
        Err(ClientError::Refused { code, message, .. })
            if collected && ["access_denied", "expired_token"].contains(&code.as_str()) =>
        {
            say!("refused: {code}: {}", display_name(&message))?;
            return Ok(Outcome::Denied);
        }
        Err(other) => return Err(other.into()),
    };
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

/// The longest `--wait` of `mandate task request` (polled 60 s at a time).
const WAIT_MAX: Duration = Duration::from_secs(3600);

/// `mandate task request`: ask (or read an earlier request), wait while a
/// person decides, and write a granted mandate like a refresh does.
fn request(args: &TaskRequestArgs) -> Result<Outcome> {
    let key = SecretKey::read(&args.agent_key)?;
    let token = read_token_text(&args.token)?.trim().to_owned();
    let task = match &args.task {
        Some(task) => task.clone(),
        None => {
            // Read only to address the request; the issuer verifies the mandate.
            let unverified = UnverifiedMandate::from_base64(&token)?;
            mandate_core::inspect(&unverified, None, SystemTime::now())?
                .task
                .context("the mandate names no task; give --task")?
        }
    };
    let rights = args
        .rights
        .iter()
        .map(|r| r.parse::<Right>())
        .collect::<Result<Vec<_>, _>>()?;
    let wait = match &args.wait {
        Some(text) => bounded_duration("--wait", text, Duration::ZERO, WAIT_MAX)?,
        None => Duration::ZERO,
    };
    let client = IssuerClient::new(&args.issuer)?;
    let runtime = runtime()?;
    let first = match &args.request {
        Some(id) => runtime.block_on(client.poll(id, &task, &token, &key, Duration::ZERO)),
        None => runtime.block_on(client.ask(&task, &token, &key, &rights, &args.reason)),
    };
    let mut status = match first {
        Ok(status) => status,
        Err(ClientError::Refused { code, message, .. }) if code == "request_refused" => {
            say!("refused: {}", display_name(&message))?;
            return Ok(Outcome::Denied);
        }
        Err(other) => return Err(other.into()),
    };
    let until = Instant::now() + wait;
    while status.state == "pending" {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        status = runtime.block_on(client.poll(
            &status.request_id,
            &task,
            &token,
            &key,
            left.min(MAX_WAIT),
        ))?;
    }
    match status.state.as_str() {
        "granted" => {
            let mandate = status
                .mandate
                .context("the issuer granted the request but sent no mandate")?;
            eprintln!("request {} granted", status.request_id);
            finish(&mandate.access_token, &mandate.task_id, args.out.clone())
        }
        "pending" => {
            eprintln!(
                "request {} waits for approval: {}",
                status.request_id,
                display_name(&status.policy_reason)
            );
            say!("pending {}", status.request_id)?;
            Ok(Outcome::Ok)
        }
        other => {
            say!("{other} {}", status.request_id)?;
            Ok(Outcome::Denied)
        }
    }
}

/// `mandate requests ...`.
pub fn requests(command: RequestsCommand) -> Result<Outcome> {
    match command {
        RequestsCommand::List(args) => list_requests(&args),
        RequestsCommand::Approve(args) => decide_request(&args, true),
        RequestsCommand::Deny(args) => decide_request(&args, false),
    }
}

fn approver(args: &ApproverArgs) -> Result<(IssuerClient, String)> {
    let token = read_token_text(&args.subject_token)?.trim().to_owned();
    Ok((IssuerClient::new(&args.issuer)?, token))
}

fn list_requests(args: &RequestsListArgs) -> Result<Outcome> {
    if !["pending", "granted", "denied", "expired", "all"].contains(&args.state.as_str()) {
        bail!(
            "--state {} is not one of pending, granted, denied, expired, all",
            args.state
        );
    }
    let (client, token) = approver(&args.approver)?;
    let list = runtime()?.block_on(client.requests(&token, &args.state))?;
    if args.json {
        say!("{}", serde_json::to_string_pretty(&list)?)?;
        return Ok(Outcome::Ok);
    }
    for r in &list.requests {
        // Names and the agent's reason are shown escaped: an agent's words
        // cannot pass for something else on the approver's terminal.
        say!(
            "{}  {}  task {}  {} for {} asks {} (expires {}): {}",
            r.request_id,
            r.state,
            display_label(&r.task_id),
            display_label(&r.agent),
            display_label(&r.principal),
            r.rights.join(" "),
            r.expires_at,
            display_name(&r.reason)
        )?;
    }
    Ok(Outcome::Ok)
}

fn decide_request(args: &RequestDecideArgs, approve: bool) -> Result<Outcome> {
    let client = IssuerClient::new(&args.issuer)?;
    let decided = match (
        &args.subject_token,
        &args.operator_token,
        &args.operator_key,
    ) {
        (Some(subject), None, None) => {
            let token = read_token_text(subject)?.trim().to_owned();
            runtime()?.block_on(client.decide(&token, &args.id, approve))?
        }
        (None, Some(token), Some(key)) => {
            let key = SecretKey::read(key)?;
            let token = read_token_text(token)?;
            runtime()?.block_on(client.decide_as_operator(&args.id, approve, &token, &key))?
        }
        _ => bail!(
            "decide as the principal or an approver (--subject-token) or as an operator \
             (--operator-token, --operator-key)"
        ),
    };
    say!("request {} {}", decided.request_id, decided.state)?;
    Ok(Outcome::Ok)
}
