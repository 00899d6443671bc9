//! `mandate demo`: the offline flow end to end on fresh keys, printed for a
//! person to read. Everything it does goes through the same library calls
//! as the other subcommands.

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result};
use mandate_core::{KeySet, Request, ResourcePath, Restrictions, RootKey, SecretKey};
use mandate_issuer::MintRequest;
use mandate_verifier::Verifier;

use crate::commands::Outcome;
use crate::output;

pub fn run(dir: Option<&Path>) -> Result<Outcome> {
    let temp;
    let dir = match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.to_path_buf()
        }
        None => {
            temp = tempfile::tempdir().context("creating a temporary folder")?;
            temp.path().to_path_buf()
        }
    };
    println!("Mandate demo (files in {})\n", dir.display());

    let root_path = dir.join("root.key");
    let agent_path = dir.join("expense-agent.key");
    let root = load_or_create(&root_path)?;
    let agent = load_or_create(&agent_path)?;
    println!("1. keys: issuer root {}", root.public());
    println!("         expense-agent {}\n", agent.public());

    let now = SystemTime::now();
    let request = MintRequest {
        principal: "alice".into(),
        agent: "expense-agent".into(),
        agent_key: Some(agent.public()),
        task: Some("expense-report-q3".into()),
        rights: vec!["expenses:read".parse()?, "expenses:submit".parse()?],
        ttl: Duration::from_secs(15 * 60),
        restrictions: Restrictions::default(),
        now,
    };
    let root_public = root.public();
    let mandate = mandate_issuer::mint(
        &RootKey {
            secret: root,
            key_id: Some(1),
        },
        &request,
    )?;
    let token = mandate.to_base64()?;
    println!(
        "2. issued a mandate for alice → expense-agent, task expense-report-q3,\n   rights expenses:read, expenses:submit, 15 minutes ({} bytes)\n",
        token.len()
    );

    let narrowed = mandate_core::delegate(
        &mandate.to_unverified()?,
        &Restrictions {
            operations: vec!["submit".into()],
            attr_max: vec![("amount".into(), 499)],
            resource_prefixes: vec![ResourcePath::parse("/reports/alice")?],
            ..Restrictions::default()
        },
    )?;
    let narrowed_text = narrowed.to_base64()?;
    std::fs::write(dir.join("narrowed.token"), format!("{narrowed_text}\n"))
        .context("writing narrowed.token")?;
    println!("3. narrowed it offline: only submit, amount under 500, under /reports/alice");
    println!(
        "   block 1: {}\n",
        narrowed
            .block_source(1)?
            .trim()
            .replace('\n', "\n            ")
    );

    let verifier = Verifier::builder()
        .root_keys({
            let mut keys = KeySet::new();
            keys.insert(Some(1), root_public);
            keys
        })
        .build()?;
    let submit = |amount: &str| -> Result<Request> {
        Ok(Request::new(
            "expenses",
            "submit",
            ResourcePath::parse("/reports/alice/2026-q3")?,
            SystemTime::now(),
        )
        .with_attr_arg(&format!("amount={amount}"))?)
    };
    let allowed = verifier.authorize(&narrowed_text, &submit("120")?)?;
    println!("4. submit a report of 120:");
    print!("{}", indent(&output::decision_text(&allowed)));
    let denied = verifier.authorize(&narrowed_text, &submit("900")?)?;
    println!("\n5. submit a report of 900:");
    print!("{}", indent(&output::decision_text(&denied)));

    if allowed.allowed && !denied.allowed {
        println!(
            "\nDemo complete: the narrowed mandate allowed the first call and denied the second."
        );
        Ok(Outcome::Ok)
    } else {
        anyhow::bail!("demo produced unexpected decisions")
    }
}

fn load_or_create(path: &Path) -> Result<SecretKey> {
    if path.exists() {
        return Ok(SecretKey::read(path)?);
    }
    let key = SecretKey::generate();
    key.write_new(path)?;
    Ok(key)
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("   {l}\n")).collect()
}
