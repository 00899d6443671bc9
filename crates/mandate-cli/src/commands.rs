//! One function per subcommand: read inputs, call the library, print.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _, Result};
use mandate_core::{
    fingerprint, KeySet, NextAgent, Proof, Request, ResourcePath, Restrictions, Right, RootKey,
    SecretKey, UnverifiedMandate,
};
use mandate_issuer::MintRequest;
use mandate_verifier::{Policy, Verifier};

use crate::args::{
    AuthorizeArgs, Command, DelegateArgs, InspectArgs, IssueArgs, IssuerCommand, KeygenArgs,
    PopArgs, RegistryCommand, RequestArgs, RestrictionArgs, RevocationsCommand, RootKeyArgs,
};
use crate::output::{self, say, say_raw};

/// How a command ended; the value is the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Success, or an allowed request.
    Ok = 0,
    /// A denied request.
    Denied = 1,
    /// Any error.
    Error = 2,
}

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
        Command::Audit(args) => crate::audit::run(args),
    }
}

fn keygen(args: &KeygenArgs) -> Result<Outcome> {
    let key = SecretKey::generate();
    key.write_new(&args.out)?;
    say!("{}", key.public())?;
    Ok(Outcome::Ok)
}

/// Reads a token argument: the token itself, `@FILE`, or `-` for stdin.
pub fn read_token(arg: &str) -> Result<UnverifiedMandate> {
    Ok(UnverifiedMandate::from_base64(&read_token_text(arg)?)?)
}

/// The text of a token argument, unparsed.
pub fn read_token_text(arg: &str) -> Result<String> {
    Ok(if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .take(mandate_core::MAX_TOKEN_LEN as u64 + 1)
            .read_to_string(&mut text)
            .context("reading the token from stdin")?;
        text
    } else if let Some(path) = arg.strip_prefix('@') {
        std::fs::read_to_string(path).with_context(|| format!("reading token file {path}"))?
    } else {
        arg.to_string()
    })
}

/// Parses a human duration such as `90s`, `10m` or `2h`.
pub fn parse_duration(text: &str) -> Result<Duration> {
    humantime::parse_duration(text)
        .with_context(|| format!("invalid duration `{text}` (examples: 90s, 10m, 2h)"))
}

/// A duration flag that must stay within sane bounds; the error names the
/// bound that was crossed.
pub fn bounded_duration(flag: &str, text: &str, min: Duration, max: Duration) -> Result<Duration> {
    let value = parse_duration(text)?;
    if value < min {
        bail!(
            "{flag} {text} is too short: the minimum is {}",
            humantime::format_duration(min)
        );
    }
    if value > max {
        bail!(
            "{flag} {text} is too long: the maximum is {}",
            humantime::format_duration(max)
        );
    }
    Ok(value)
}

/// The widest `--pop-window`: a proof is a signature over one request, and a
/// window of hours would let a captured proof be replayed long after the
/// replay cache forgot its nonce.
pub const POP_WINDOW_MAX: Duration = mandate_server::config::bounds::POP_WINDOW.1;
/// The narrowest `--pop-window`: below a second, clock skew alone denies.
pub const POP_WINDOW_MIN: Duration = mandate_server::config::bounds::POP_WINDOW.0;

/// Parses `--pop-window`.
pub fn pop_window(text: &str) -> Result<Duration> {
    bounded_duration("--pop-window", text, POP_WINDOW_MIN, POP_WINDOW_MAX)
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
    let mut keys = match &args.root_keys {
        Some(path) => KeySet::read_file(path)?,
        None => KeySet::new(),
    };
    for arg in &args.root_pub {
        keys.add_arg(arg)?;
    }
    if keys.is_empty() {
        bail!("no trusted root key: give --root-pub KEY or --root-keys FILE");
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

/// Prints the token, or writes it to `out` atomically: a failed command
/// never leaves a partial file behind.
pub(crate) fn emit_token(token: &str, out: Option<&Path>) -> Result<Outcome> {
    match out {
        None => say!("{token}")?,
        Some(path) => write_atomically(path, token)?,
    }
    Ok(Outcome::Ok)
}

fn write_atomically(path: &Path, contents: &str) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{contents}\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    file.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn inspect(args: &InspectArgs) -> Result<Outcome> {
    let token = read_token(&args.token)?;
    let keys = if args.roots.root_pub.is_empty() && args.roots.root_keys.is_none() {
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
