//! Pre-signs proofs of possession for the load benchmark (`benches/load/run.sh`).
//!
//! Every proof has its own random nonce, so each can be used exactly once: the
//! verifier refuses a replayed nonce. Signing through the `mandate pop` CLI
//! costs a process per proof, far too slow for hundreds of thousands of
//! requests, so this program signs them in-process with the same
//! `mandate_core::Proof::sign` the CLI calls, on every core.
//!
//! Output: one proof text (`v1.<millis>.<nonce>.<signature>`) per line; the
//! wrk Lua scripts put it into the JSON body or the `Mandate-PoP` header.
//!
//! ```text
//! cargo run --release -p mandate-cli --example load_proofs -- \
//!   --key reporter.key --token reporter.token \
//!   --service analytics --operation read --resource /datasets/q3/revenue \
//!   --count 300000 --out proofs.txt
//! ```

use std::io::{BufWriter, Write as _};
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use anyhow::{bail, Context as _, Result};
use mandate_core::{AttrValue, Proof, Request, SecretKey, UnverifiedMandate};

struct Args {
    key: PathBuf,
    token: PathBuf,
    service: String,
    operation: String,
    resource: String,
    attrs: Vec<(String, AttrValue)>,
    count: usize,
    out: PathBuf,
}

fn parse_args() -> Result<Args> {
    let mut key = None;
    let mut token = None;
    let mut service = None;
    let mut operation = None;
    let mut resource = None;
    let mut attrs = Vec::new();
    let mut count = None;
    let mut out = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--key" => key = Some(PathBuf::from(value()?)),
            "--token" => token = Some(PathBuf::from(value()?)),
            "--service" => service = Some(value()?),
            "--operation" => operation = Some(value()?),
            "--resource" => resource = Some(value()?),
            "--attr" => {
                let arg = value()?;
                let (k, v) = arg
                    .split_once('=')
                    .with_context(|| format!("attribute `{arg}` is not KEY=VALUE"))?;
                attrs.push((k.to_string(), AttrValue::parse(v)));
            }
            "--count" => count = Some(value()?.parse().context("--count")?),
            "--out" => out = Some(PathBuf::from(value()?)),
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(Args {
        key: key.context("--key is required")?,
        token: token.context("--token is required (a file)")?,
        service: service.context("--service is required")?,
        operation: operation.context("--operation is required")?,
        resource: resource.context("--resource is required")?,
        attrs,
        count: count.context("--count is required")?,
        out: out.context("--out is required")?,
    })
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let key = SecretKey::read(&args.key)?;
    let text = std::fs::read_to_string(&args.token)
        .with_context(|| format!("reading {}", args.token.display()))?;
    let digest = UnverifiedMandate::from_base64(text.trim())?.digest_hex();
    let request = Request::validated(
        &args.service,
        &args.operation,
        &args.resource,
        args.attrs.clone(),
        SystemTime::now(),
    )?;

    let started = Instant::now();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = args.count.div_ceil(threads);
    let chunks: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let n = per_thread.min(args.count.saturating_sub(i * per_thread));
                let (key, digest, request) = (&key, &digest, &request);
                scope.spawn(move || {
                    (0..n)
                        .map(|_| Proof::sign(key, digest, request, SystemTime::now()).to_text())
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });

    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut out = BufWriter::new(file);
    let mut written = 0usize;
    for proof in chunks.iter().flatten() {
        writeln!(out, "{proof}")?;
        written += 1;
    }
    out.flush()?;
    if written != args.count {
        bail!("signed {written} proofs, {} asked", args.count);
    }
    eprintln!(
        "signed {written} proofs in {:.1} s on {threads} threads",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
