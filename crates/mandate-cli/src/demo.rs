//! `mandate demo`: the offline flow end to end on fresh keys, printed for a
//! person to read. Everything it does goes through the same library calls
//! as the other subcommands: every decision and the revocation are recorded
//! in an audit log in the demo's folder (as `mandate serve --audit-store`
//! records them), and the demo ends by reading its trail back from that
//! store, telling its task's story as `mandate audit trace` does, and
//! verifying the log as `mandate audit verify` does.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result};
use mandate_audit::{AuditWriter, Filter, LogTrail};
use mandate_core::{
    KeySet, NextAgent, Proof, Request, ResourcePath, Restrictions, RootKey, SecretKey,
};
use mandate_issuer::MintRequest;
use mandate_registry::{
    registry_request, Access, HttpBinding, IndexingStore, MandateWriteAuthorizer, NewRevocation,
    RevocationKind, RevocationStore as _, RevokeRequest, SledStore, WriteAuthorizer as _,
};
use mandate_server::audit::{AuditRecorder, AuditedStore};
use mandate_server::config::AuditSettings;
use mandate_verifier::Verifier;

use crate::outcome::Outcome;
use crate::output::{self, say, say_raw};

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
    say!("Mandate demo (files in {})\n", dir.display())?;

    let root = load_or_create(&dir.join("root.key"))?;
    let agent = load_or_create(&dir.join("expense-agent.key"))?;
    let helper = load_or_create(&dir.join("receipts-agent.key"))?;
    say!("1. keys: issuer root     {}", root.public())?;
    say!("         expense-agent   {}", agent.public())?;
    say!("         receipts-agent  {}\n", helper.public())?;

    let request = MintRequest {
        principal: "alice".into(),
        agent: "expense-agent".into(),
        agent_key: Some(agent.public()),
        // A fresh task id each run, so a kept --dir (whose store remembers
        // earlier revocations) runs the demo again from the start.
        task: None,
        rights: vec!["expenses:read".parse()?, "expenses:submit".parse()?],
        ttl: Duration::from_secs(15 * 60),
        restrictions: Restrictions::default(),
        now: SystemTime::now(),
    };
    let root_public = root.public();
    let root = RootKey {
        secret: root,
        key_id: Some(1),
    };
    let mandate = mandate_issuer::mint(&root, &request)?;
    let task = mandate.claims().task;
    say!(
        "2. issued a mandate: alice → expense-agent, task {task},\n   rights expenses:read, expenses:submit, 15 minutes ({} bytes)\n",
        mandate.to_base64()?.len()
    )?;

    let narrowed = mandate_core::delegate_signed(
        &mandate.to_unverified()?,
        &agent,
        Some(&NextAgent {
            name: "receipts-agent".into(),
            key: helper.public(),
        }),
        &Restrictions {
            operations: vec!["submit".into()],
            attr_max: vec![("amount".into(), 499)],
            resource_prefixes: vec![ResourcePath::parse("/reports/alice")?],
            ..Restrictions::default()
        },
    )?;
    let narrowed_text = narrowed.to_base64()?;
    std::fs::write(
        dir.join("receipts-agent.token"),
        format!("{narrowed_text}\n"),
    )
    .context("writing receipts-agent.token")?;
    say!("3. expense-agent hands a narrower mandate to receipts-agent, offline,")?;
    say!(
        "   in a block signed with its own key ({} bytes):",
        narrowed_text.len()
    )?;
    say!(
        "   {}\n",
        narrowed.block_source(1)?.trim().replace('\n', "\n   ")
    )?;

    // The registry's store (sled) lives in the demo folder, next to the
    // audit log that records every revocation written to it and every
    // decision; the verifier consults the same process's index on every call.
    let audit = Arc::new(
        mandate_server::audit::open(&AuditSettings {
            store: dir.join("audit").into(),
            key: dir.join("audit.key"),
            buffered: None,
            verifier_id: "demo".into(),
        })
        .context("opening the demo's audit log")?,
    );
    let log = audit.log();
    // A kept --dir holds earlier runs' records: this run's trail starts after them.
    let before = log.last()?.map_or(0, |entry| entry.seq);
    let store = IndexingStore::new(AuditedStore::new(
        SledStore::open(&dir.join("revocations")).context("opening the demo's revocation store")?,
        Arc::clone(&audit),
    ))?;
    let recorder = AuditRecorder::new(Arc::clone(&audit), "demo".into(), store.index());
    let mut calls = 0u32;
    let mut record = |decision: &mandate_verifier::Decision| -> Result<()> {
        calls += 1;
        recorder
            .record_blocking(decision, "demo", &format!("demo-{calls}"), &narrowed_text)
            .context("recording the decision in the audit log")?;
        Ok(())
    };
    let verifier = Verifier::builder()
        .root_keys({
            let mut keys = KeySet::new();
            keys.insert(Some(1), root_public);
            keys
        })
        .revocation(Arc::new(store.index()))
        .build()?;
    let digest = narrowed.digest_hex();
    let call = |amount: &str, key: &SecretKey| -> Result<Request> {
        let request = Request::new(
            "expenses",
            "submit",
            ResourcePath::parse("/reports/alice/2026-q3")?,
            SystemTime::now(),
        )
        .with_attr_arg(&format!("amount={amount}"))?;
        let proof = Proof::sign(key, &digest, &request, request.time);
        Ok(request.with_proof(proof))
    };
    let allowed = verifier.authorize(&narrowed_text, &call("120", &helper)?)?;
    record(&allowed)?;
    say!("4. receipts-agent submits a report of 120, with its proof of possession:")?;
    say_raw!("{}", indent(&output::decision_text(&allowed)))?;
    let denied = verifier.authorize(&narrowed_text, &call("900", &helper)?)?;
    record(&denied)?;
    say!("\n5. receipts-agent submits a report of 900:")?;
    say_raw!("{}", indent(&output::decision_text(&denied)))?;
    let thief = SecretKey::generate();
    let stolen = verifier.authorize(&narrowed_text, &call("120", &thief)?)?;
    record(&stolen)?;
    say!("\n6. someone who copied the token (but not the key) tries the same call:")?;
    say_raw!("{}", indent(&output::decision_text(&stolen)))?;

    // The operator's own mandate is keyed: the registry accepts a write only with a
    // proof of possession that covers this write's method, path and body bytes.
    let operator = load_or_create(&dir.join("operator.key"))?;
    let ops = mandate_issuer::mint(
        &root,
        &MintRequest {
            principal: "ops".into(),
            agent: "operator".into(),
            agent_key: Some(operator.public()),
            task: None,
            rights: vec!["registry:revoke".parse()?],
            ttl: Duration::from_secs(15 * 60),
            restrictions: Restrictions::default(),
            now: SystemTime::now(),
        },
    )?;
    let writes = MandateWriteAuthorizer::new(
        Verifier::builder()
            .root_keys(KeySet::single(root_public))
            .revocation(Arc::new(store.index())),
    )?;
    let reason = "alice cancelled the task";
    let body = serde_json::to_vec(&RevokeRequest {
        kind: RevocationKind::Task,
        value: task.clone(),
        reason: reason.into(),
    })?;
    let write = HttpBinding {
        method: "POST",
        path: "/v1/revocations",
        body: &body,
    };
    let now = SystemTime::now();
    let proof = Proof::sign(
        &operator,
        &ops.digest_hex(),
        &registry_request(Access::Write, &write, now, None)?,
        now,
    )
    .to_text();
    let actor = writes
        .authorize_write(&ops.to_base64()?, Some(&proof), &write)
        .context("the registry refused the operator's write")?;
    let entry = store.append(NewRevocation::revoke(
        RevocationKind::Task,
        task.as_str(),
        reason,
        actor.clone(),
    )?)?;
    let revoked = verifier.authorize(&narrowed_text, &call("120", &helper)?)?;
    record(&revoked)?;
    say!(
        "\n7. an operator ({actor}, keyed, its proof bound to this write) revokes the task\n   (revocation #{}); receipts-agent's next call:",
        entry.seq
    )?;
    say_raw!("{}", indent(&output::decision_text(&revoked)))?;

    let trail = print_trail(&audit, before, &task, &dir.join("audit"))?;

    if allowed.allowed && !denied.allowed && !stolen.allowed && !revoked.allowed && trail {
        say!("\nDemo complete: one call allowed, three denied, each with its reason.")?;
        Ok(Outcome::Ok)
    } else {
        anyhow::bail!("demo produced unexpected decisions")
    }
}

/// Closes the audit log (signing its head), then prints the records written
/// after `before` as `mandate audit --store` shows them, the story of `task`
/// as `mandate audit trace` tells it, and the verdict of `mandate audit
/// verify`. Returns whether the log verified.
fn print_trail(audit: &AuditWriter, before: u64, task: &str, store: &Path) -> Result<bool> {
    audit
        .close_blocking()
        .context("closing the demo's audit log")?;
    let log = audit.log();
    let all = mandate_audit::query_all(&LogTrail(log.clone()), &Filter::default(), None)?;
    say!(
        "\n8. the audit trail, read back from the store (mandate audit --store {}):",
        store.display()
    )?;
    for record in all.iter().filter(|r| r.seq > before) {
        say!("   {record}")?;
    }
    say!("\n9. the story of the task (mandate audit trace {task}):")?;
    let story = mandate_audit::trace(&all, task);
    for line in mandate_audit::trace::story(task, &story) {
        say!("   {line}")?;
    }
    say!("\n10. the log checked against tampering (mandate audit verify):")?;
    match mandate_audit::verify(&*log, &[])? {
        Ok(verified) => {
            say!(
                "   ok: {} record(s), {} signed head(s), newest signed at #{}, by {}",
                verified.records,
                verified.heads,
                verified.last_signed,
                verified.writers.join(", ")
            )?;
            Ok(true)
        }
        Err(tampered) => {
            say!("   TAMPERED: {tampered}")?;
            Ok(false)
        }
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
