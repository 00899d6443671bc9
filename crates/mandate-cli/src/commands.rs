//! One function per subcommand: read inputs, call the library, print.

use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _, Result};
use mandate_core::{
    fingerprint, KeySet, NextAgent, Proof, Request, ResourcePath, Restrictions, Right, RootKey,
    SecretKey,
};
use mandate_issuer::MintRequest;
use mandate_verifier::{Policy, Verifier};

use crate::args::{
    AuthorizeArgs, Command, DelegateArgs, InspectArgs, IssueArgs, IssuerCommand, KeygenArgs,
    PopArgs, RegistryCommand, RequestArgs, RestrictionArgs, RevocationsCommand, RootKeyArgs,
};
use crate::input::{bounded_duration, parse_duration, pop_window, read_token, read_token_text};
use crate::outcome::Outcome;
use crate::output::{self, emit_token, say, say_raw};

pub fn run(command: Command, verbose: u8) -> Result<Outcome> {
    match command {
        Command::Keygen(args) => keygen(&args),
        Command::Issue(args) => issue(&args),
        Command::Delegate(args) => delegate(&args),
        Command::Inspect(args) => inspect(&args),
        Command::Authorize(args) => authorize(&args),
        Command::Pop(args) => pop(&args),
        Command::Serve(args) => crate::revocation::serve_verifier(&args, verbose),
        Command::Revoke(args) => crate::revocation::revoke(&args),
        Command::Revocations(RevocationsCommand::List(args)) => crate::revocation::list(&args),
        Command::Registry(RegistryCommand::Serve(args)) => crate::revocation::serve(&args, verbose),
        Command::Demo(args) => crate::demo::run(args.dir.as_deref()),
        Command::Issuer(IssuerCommand::Serve(args)) => crate::issuer::serve(&args, verbose),
        Command::Task(command) => crate::issuer::task(command),
        Command::Requests(command) => crate::issuer::requests(command),
        Command::Audit(args) => crate::audit::run(args),
        Command::Keys(command) => crate::keys::run(command),
    }
}

fn keygen(args: &KeygenArgs) -> Result<Outcome> {
    let key = SecretKey::generate();
    key.write_new(&args.out)?;
    say!("{}", key.public())?;
    Ok(Outcome::Ok)
}

/// Parses `delegate --ttl`: at most what the issuer mints (and never a
/// lifetime that would overflow the clock).
fn ttl(text: &str) -> Result<Duration> {
    bounded_duration(
        "--ttl",
        text,
        Duration::from_secs(1),
        mandate_issuer::MAX_TTL,
    )
}

fn parse_time(text: &str) -> Result<SystemTime> {
    humantime::parse_rfc3339_weak(text).with_context(|| {
        format!("invalid time `{text}` (expected RFC 3339, e.g. 2026-11-28T10:00:00Z)")
    })
}

pub fn root_keys(args: &RootKeyArgs) -> Result<KeySet> {
    if let Some(url) = &args.root_keys_url {
        // One fetch: an offline decision uses the set published right now.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        return runtime.block_on(mandate_server::key_follower::fetch_once(url));
    }
    let mut keys = match &args.root_keys {
        Some(path) => KeySet::read_file(path)?,
        None => KeySet::new(),
    };
    for arg in &args.root_pub {
        keys.add_arg(arg)?;
    }
    if keys.is_empty() {
        bail!("no trusted root key: give --root-pub KEY, --root-keys FILE or --root-keys-url URL");
    }
    Ok(keys)
}

/// Parses every value of a repeated flag with `parse`, stopping at the first
/// bad one.
fn parse_each<T>(
    values: &[String],
    parse: impl Fn(&str) -> Result<T, mandate_core::Error>,
) -> Result<Vec<T>> {
    Ok(values.iter().map(|v| parse(v)).collect::<Result<_, _>>()?)
}

fn restrictions(args: &RestrictionArgs) -> Result<Restrictions> {
    Ok(Restrictions {
        operations: args.operations.clone(),
        services: args.services.clone(),
        resource_prefixes: parse_each(&args.resource_prefixes, ResourcePath::parse)?,
        resources: parse_each(&args.resources, ResourcePath::parse)?,
        attr_range: parse_each(&args.attr_range, Restrictions::parse_attr_range)?,
        url_hosts: parse_each(&args.url_hosts, Restrictions::parse_url_hosts)?,
        attr_max: parse_each(&args.attr_max, Restrictions::parse_attr_max)?,
        attr_in: parse_each(&args.attr_in, Restrictions::parse_attr_in)?,
        expires_at: None,
        max_depth: args.max_depth,
        checks: args.checks.clone(),
    })
}

fn issue(args: &IssueArgs) -> Result<Outcome> {
    // `mint` bounds the lifetime (1s ..= MAX_TTL) and says so.
    let ttl = parse_duration(&args.ttl)?;
    let secret = SecretKey::read(&args.root_key)?;
    let request = MintRequest {
        principal: args.principal.clone(),
        agent: args.agent.clone(),
        agent_key: args
            .agent_key
            .as_deref()
            .map(mandate_core::PublicKey::from_arg)
            .transpose()?,
        task: args.task.clone(),
        rights: parse_each(&args.rights, str::parse::<Right>)?,
        ttl,
        restrictions: restrictions(&args.restrictions)?,
        now: SystemTime::now(),
    };
    let root = RootKey {
        secret,
        key_id: args.key_id,
    };
    let token = mandate_issuer::mint(&root, &request)?.to_base64()?;
    tracing::info!(token = %fingerprint(&token), principal = %args.principal, "issued mandate");
    emit_token(&token, args.out.as_deref())
}

fn delegate(args: &DelegateArgs) -> Result<Outcome> {
    let token = read_token(&args.token)?;
    let mut restrictions = restrictions(&args.restrictions)?;
    if let Some(ttl) = &args.ttl {
        restrictions.expires_at = Some(SystemTime::now() + self::ttl(ttl)?);
    }
    let child = match &args.signer_key {
        Some(path) => {
            let signer = SecretKey::read(path)?;
            let to = match (&args.to, &args.to_key) {
                (Some(name), Some(key)) => Some(NextAgent {
                    name: name.clone(),
                    key: mandate_core::PublicKey::from_arg(key)?,
                }),
                _ => None,
            };
            mandate_core::delegate_signed(&token, &signer, to.as_ref(), &restrictions)?
        }
        None => mandate_core::delegate(&token, &restrictions)?,
    }
    .to_base64()?;
    tracing::info!(parent = %token.token_id_hex(), child = %fingerprint(&child), "delegated");
    emit_token(&child, args.out.as_deref())
}

fn inspect(args: &InspectArgs) -> Result<Outcome> {
    let token = read_token(&args.token)?;
    let keys = if args.roots.root_pub.is_empty()
        && args.roots.root_keys.is_none()
        && args.roots.root_keys_url.is_none()
    {
        None
    } else {
        Some(root_keys(&args.roots)?)
    };
    let report = mandate_core::inspect(&token, keys.as_ref(), SystemTime::now())?;
    if args.json {
        say!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        say_raw!("{}", output::inspection_text(&report))?;
    }
    Ok(match report.signature {
        mandate_core::SignatureStatus::Invalid { .. } => Outcome::Error,
        _ => Outcome::Ok,
    })
}

fn authorize(args: &AuthorizeArgs) -> Result<Outcome> {
    let token_text = read_token_text(&args.token)?;
    let mut verifier = Verifier::builder()
        .root_keys(root_keys(&args.roots)?)
        .require_pop(args.require_pop)
        .pop_window(pop_window(&args.pop_window)?);
    if let Some(path) = &args.policy {
        verifier = verifier.policy(Policy::from_file(path)?);
    }
    let staleness = crate::revocation::staleness(&args.staleness)?;
    if let Some(index) = crate::revocation::revocation_state(&args.revocations, staleness)? {
        verifier = verifier.revocation(std::sync::Arc::new(index));
    }
    let verifier = verifier.build()?;
    let mut request = request(&args.request)?;
    if let Some(proof) = &args.pop {
        request = request.with_proof(Proof::parse(proof)?);
    }
    let decision = verifier.authorize(&token_text, &request)?;
    tracing::info!(
        token = %fingerprint(&token_text),
        allowed = decision.allowed,
        principal = %decision.principal,
        "decision"
    );
    let revocation_checked = verifier.checks_revocation();
    if args.json {
        let mut json = mandate_verifier::http::decision_body(&decision);
        json["revocation_checked"] = serde_json::Value::Bool(revocation_checked);
        say!("{}", serde_json::to_string_pretty(&json)?)?;
    } else {
        say_raw!("{}", output::decision_text(&decision))?;
        if !revocation_checked {
            // Offline decisions say so every time: a revoked token would pass.
            say!("revocations: NOT CHECKED (offline; give --registry URL or --store DIR)")?;
        }
    }
    Ok(if decision.allowed {
        Outcome::Ok
    } else {
        Outcome::Denied
    })
}

/// Builds the request a verifier decides (and a proof signs).
fn request(args: &RequestArgs) -> Result<Request> {
    let time = match &args.at {
        Some(at) => parse_time(at)?,
        None => SystemTime::now(),
    };
    let mut attrs = Vec::with_capacity(args.attrs.len());
    for arg in &args.attrs {
        let (key, value) = arg
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("attribute `{arg}` is not KEY=VALUE"))?;
        attrs.push((key.to_string(), mandate_core::AttrValue::parse(value)));
    }
    Ok(Request::validated(
        &args.service,
        &args.operation,
        &args.resource,
        attrs,
        time,
    )?)
}

fn pop(args: &PopArgs) -> Result<Outcome> {
    let key = SecretKey::read(&args.key)?;
    let token = read_token(&args.token)?;
    let request = request(&args.request)?;
    let proof = Proof::sign(&key, &token.digest_hex(), &request, request.time);
    say!("{}", proof.to_text())?;
    Ok(Outcome::Ok)
}
