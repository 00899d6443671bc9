//! `mandate audit`, `mandate audit verify`, `mandate audit trace`: reading
//! the trail from a store folder or a running server, checking it, and
//! telling the story of one token or task.
//!
//! A mandate given with `--auth` is never printed or logged.

use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _, Result};

use mandate_audit::{Filter, Outcome as Decided, Record};
use mandate_core::{PublicKey, SecretKey};
use mandate_postgres::StoreLocation;
use mandate_server::audit_client::AuditClient;
use mandate_server::audit_store::AuditStore;
use mandate_server::audit_verify::{verify_store, IntactLog, Witness};

use crate::args::{
    AuditArgs, AuditCommand, AuditQueryArgs, AuditSourceArgs, AuditTraceArgs, AuditVerifyArgs,
};
use crate::input::read_token_text;
use crate::outcome::Outcome;
use crate::output::say;

/// How often `--follow` reads a store for new records (a server pushes them).
const FOLLOW_EVERY: Duration = Duration::from_secs(1);
/// Records asked for per page over HTTP.
const PAGE: usize = 1000;

pub fn run(args: AuditArgs) -> Result<Outcome> {
    match args.action {
        Some(AuditCommand::Verify(verify)) => self::verify(&verify),
        Some(AuditCommand::Trace(trace)) => self::trace(&trace),
        None => query(&args.query),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// An existing audit store; a mistyped folder is an error, not an empty log.
fn open_store(location: &StoreLocation) -> Result<AuditStore> {
    let store = AuditStore::open_existing(location);
    if location.folder().is_none() {
        // A database is shared: no server holds it, and its error names it.
        return store;
    }
    store.with_context(|| {
        format!(
            "opening audit store {location} (if `mandate serve` is using it, pass --url instead)"
        )
    })
}

/// Where records come from.
enum Source {
    /// A folder, opened afresh for every read (a server may be writing it).
    Folder(StoreLocation),
    /// A database that replicas share, opened once.
    Shared(AuditStore),
    Server(Box<AuditClient>),
}

fn source(args: &AuditSourceArgs) -> Result<Source> {
    if let Some(location) = &args.store {
        return Ok(match location {
            StoreLocation::Folder(_) => Source::Folder(location.clone()),
            StoreLocation::Postgres(_) => Source::Shared(open_store(location)?),
        });
    }
    let (Some(url), Some(auth)) = (&args.url, &args.auth) else {
        bail!(
            "give --store DIR|URL, or --url URL with --auth TOKEN (a mandate granting audit:read)"
        );
    };
    // A token file ends with a newline (`--out` writes one), which is not
    // valid in the Authorization header the client sends it in.
    let token = read_token_text(auth)?.trim().to_owned();
    let key = match &args.auth_key {
        Some(path) => Some(SecretKey::read(path)?),
        None => None,
    };
    Ok(Source::Server(Box::new(AuditClient::new(url, token, key)?)))
}

/// Query parameters of `GET /v1/audit` for `args`.
fn params(args: &AuditQueryArgs) -> Vec<(&'static str, String)> {
    let mut params = Vec::new();
    let mut add = |name: &'static str, value: &Option<String>| {
        if let Some(value) = value {
            params.push((name, value.clone()));
        }
    };
    add("principal", &args.principal);
    add("agent", &args.agent);
    add("task", &args.task);
    add("decision", &args.decision);
    add("service", &args.service);
    add("since", &args.since);
    add("until", &args.until);
    params
}

fn filter(args: &AuditQueryArgs, now: SystemTime) -> Result<Filter> {
    let time = |flag: &str, value: &Option<String>| -> Result<Option<SystemTime>> {
        value
            .as_deref()
            .map(|text| {
                mandate_audit::parse_time_bound(text, now)
                    .map_err(|e| anyhow::anyhow!("{flag}: {e}"))
            })
            .transpose()
    };
    Ok(Filter {
        principal: args.principal.clone(),
        agent: args.agent.clone(),
        task: args.task.clone(),
        decision: args
            .decision
            .as_deref()
            .map(str::parse::<Decided>)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--decision: {e}"))?,
        service: args.service.clone(),
        since: time("--since", &args.since)?,
        until: time("--until", &args.until)?,
    })
}

/// Every matching record after the position `after`, oldest first, with the
/// newest position read.
fn fetch(
    source: &Source,
    args: &AuditQueryArgs,
    filter: &Filter,
    after: u64,
    runtime: &tokio::runtime::Runtime,
) -> Result<(Vec<Record>, u64)> {
    let read = |store: &AuditStore| -> Result<(Vec<Record>, u64)> {
        let page = mandate_audit::query(
            store.trail().as_ref(),
            filter,
            after,
            usize::MAX,
            usize::MAX,
        )?;
        Ok((page.records, page.scanned_to))
    };
    match source {
        Source::Folder(location) => read(&open_store(location)?),
        Source::Shared(store) => read(store),
        Source::Server(client) => {
            let mut records = Vec::new();
            let mut after = after;
            loop {
                let mut params = params(args);
                params.push(("after", after.to_string()));
                params.push(("limit", PAGE.to_string()));
                let page = runtime.block_on(client.page(&params))?;
                // A server from before positions were listed: they are the
                // records' sequence numbers.
                let newest = page
                    .positions
                    .last()
                    .copied()
                    .or_else(|| page.records.last().map(|r| r.seq));
                records.extend(page.records);
                match page.next_after {
                    Some(next) if next > after => after = next,
                    _ => return Ok((records, newest.unwrap_or(after).max(after))),
                }
            }
        }
    }
}

fn print(records: &[Record], json: bool) -> Result<()> {
    for record in records {
        if json {
            say!("{}", serde_json::to_string(record)?)?;
        } else {
            say!("{record}")?;
        }
    }
    Ok(())
}

fn query(args: &AuditQueryArgs) -> Result<Outcome> {
    let now = SystemTime::now();
    let filter = filter(args, now)?;
    let source = source(&args.source)?;
    let runtime = runtime()?;
    let (mut records, mut seen) = fetch(&source, args, &filter, 0, &runtime)?;
    if let Some(n) = args.last {
        let drop = records.len().saturating_sub(n);
        records.drain(..drop);
    }
    print(&records, args.json)?;
    if !args.follow {
        return Ok(Outcome::Ok);
    }
    if let Source::Server(client) = &source {
        // The server pushes new records as they become durable.
        let json = args.json;
        runtime.block_on(client.follow(&params(args), seen, |record| {
            print(std::slice::from_ref(&record), json)
        }))?;
        return Ok(Outcome::Ok);
    }
    loop {
        std::thread::sleep(FOLLOW_EVERY);
        // A store may be locked by a server for a moment, or its database
        // briefly gone; try again.
        let records = match fetch(&source, args, &filter, seen, &runtime) {
            Ok((records, newest)) => {
                seen = newest;
                records
            }
            Err(error) => {
                tracing::debug!(error = %format!("{error:#}"), "follow: store busy");
                continue;
            }
        };
        print(&records, args.json)?;
    }
}

fn verify(args: &AuditVerifyArgs) -> Result<Outcome> {
    let mut pinned = Vec::new();
    for key in &args.writer_pub {
        pinned.push(PublicKey::from_arg(key).with_context(|| format!("--writer-pub {key}"))?);
    }
    let witnesses = args
        .expect_head
        .iter()
        .map(|text| {
            text.parse::<Witness>()
                .map_err(|e| anyhow::anyhow!("--expect-head {e}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let store = open_store(&args.store)?;
    let verdict = verify_store(&store, &pinned, &witnesses)?;
    let mut records = 0u64;
    for IntactLog { label, verified } in &verdict.intact {
        records += verified.records;
        say!(
            "ok: {label}{} record(s), {} signed head(s), newest signed at #{}",
            verified.records,
            verified.heads,
            verified.last_signed
        )?;
        if verified.unsigned_tail() > 0 {
            say!(
                "note: {label}the newest {} record(s) are linked but not yet covered by a signed head (the writer stopped before signing)",
                verified.unsigned_tail()
            )?;
        }
        if !verified.pinned {
            say!(
                "note: heads checked against the writer keys they name ({}); pass --writer-pub to pin them",
                verified.writers.join(", ")
            )?;
        } else if pinned.is_empty() {
            say!("note: {label}heads checked against the writer key the store names; pass --writer-pub to pin them")?;
        }
    }
    if let Some(tampered) = &verdict.tampered {
        say!("TAMPERED: {tampered}")?;
        return Ok(Outcome::Denied);
    }
    if verdict.shared {
        say!(
            "ok: {} writer log(s), {records} record(s) in all",
            verdict.intact.len()
        )?;
    }
    Ok(Outcome::Ok)
}

fn trace(args: &AuditTraceArgs) -> Result<Outcome> {
    let subject = args.subject.trim();
    if subject.is_empty() {
        bail!("give a token id or a task");
    }
    let source = source(&args.source)?;
    let runtime = runtime()?;
    let (all, _) = fetch(
        &source,
        &AuditQueryArgs::default(),
        &Filter::default(),
        0,
        &runtime,
    )?;
    let story = mandate_audit::trace(&all, subject);
    if story.is_empty() {
        bail!("no record names {}", mandate_core::display_name(subject));
    }
    if args.json {
        for record in story {
            say!("{}", serde_json::to_string(record)?)?;
        }
    } else {
        for line in mandate_audit::trace::story(subject, &story) {
            say!("{line}")?;
        }
    }
    Ok(Outcome::Ok)
}
