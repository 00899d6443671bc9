//! The guard's audit trail: every decision, and every call refused before
//! one, appended before the caller hears the outcome; a trail that cannot
//! be written refuses the call, allowed or not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mandate_audit::{
    AuditLog, AuditWriter, Event, MemoryLog, Outcome, Record, SignedHead, StoredEntry,
    WriterConfig, WriterKey,
};
use mandate_core::{
    delegate_signed, KeySet, NextAgent, Proof, ResourcePath, Restrictions, Right, RootKey,
    SecretKey,
};
use mandate_issuer::MintRequest;
use mandate_mcp::{AuditTrail, McpGuard, ToolScope, DENIED_CODE, META_POP, META_TOKEN};
use mandate_verifier::Verifier;
use rmcp::model::{CallToolRequestParams, ErrorData, JsonObject};
use serde_json::{json, Value};

struct World {
    root: RootKey,
    orchestrator: SecretKey,
    analytics: SecretKey,
    /// Held by `analytics`: read_dataset under /datasets/q3 only.
    child: String,
}

impl World {
    fn new() -> World {
        let root = RootKey {
            secret: SecretKey::generate(),
            key_id: Some(1),
        };
        let orchestrator = SecretKey::generate();
        let analytics = SecretKey::generate();
        let token = mandate_issuer::mint(
            &root,
            &MintRequest {
                principal: "bob".into(),
                agent: "orchestrator".into(),
                agent_key: Some(orchestrator.public()),
                task: Some("q3-report".into()),
                rights: vec![
                    "analytics:read_dataset".parse::<Right>().unwrap(),
                    "analytics:export_dataset".parse::<Right>().unwrap(),
                ],
                ttl: Duration::from_secs(600),
                restrictions: Restrictions::default(),
                now: SystemTime::now(),
            },
        )
        .unwrap()
        .to_unverified()
        .unwrap();
        let child = delegate_signed(
            &token,
            &orchestrator,
            Some(&NextAgent {
                name: "analytics".into(),
                key: analytics.public(),
            }),
            &Restrictions {
                operations: vec!["read_dataset".into()],
                resource_prefixes: vec![ResourcePath::parse("/datasets/q3").unwrap()],
                ..Restrictions::default()
            },
        )
        .unwrap()
        .to_base64()
        .unwrap();
        World {
            root,
            orchestrator,
            analytics,
            child,
        }
    }

    fn guard(&self, log: Arc<dyn AuditLog>) -> McpGuard {
        let verifier = Verifier::builder()
            .root_keys(KeySet::single(self.root.secret.public()))
            .require_pop(true)
            .build()
            .unwrap();
        let writer =
            AuditWriter::start(log, WriterKey::generate(), WriterConfig::default()).unwrap();
        let trail = AuditTrail::new(Arc::new(writer), "analytics-test").with_revocation_seq(|| 7);
        McpGuard::new(
            verifier,
            "analytics",
            |_tool, arguments: &JsonObject| match arguments.get("path").and_then(Value::as_str) {
                Some(path) => Ok(ToolScope::resource(path)),
                None => Err("`path` is required".to_owned()),
            },
        )
        .with_audit(trail)
    }

    /// Calls `tool` on `path` through `guard` as `analytics` holding the
    /// child mandate (no credentials when `signed` is false).
    async fn call(
        &self,
        guard: &McpGuard,
        tool: &str,
        path: &str,
        signed: bool,
        id: &str,
    ) -> Result<(), ErrorData> {
        let mut params = CallToolRequestParams::new(tool.to_owned());
        params.arguments = Some(object(json!({ "path": path })));
        let mut meta = JsonObject::new();
        if signed {
            let mut unproven = params.clone();
            unproven.meta = None;
            let credentials = mandate_mcp::Credentials {
                token: self.child.clone(),
                pop: None,
            };
            let request = guard
                .request(&unproven, &credentials, SystemTime::now())
                .unwrap();
            let digest = mandate_core::UnverifiedMandate::from_base64(&self.child)
                .unwrap()
                .digest_hex();
            let proof = Proof::sign(&self.analytics, &digest, &request, request.time);
            meta.insert(META_TOKEN.into(), Value::String(self.child.clone()));
            meta.insert(META_POP.into(), Value::String(proof.to_text()));
        }
        guard.check(&mut params, &meta, id).await.map(drop)
    }
}

fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    }
}

fn kind(error: &ErrorData) -> String {
    assert_eq!(error.code.0, DENIED_CODE, "{error:?}");
    error.data.as_ref().unwrap()["kind"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn records(log: &dyn AuditLog) -> Vec<Record> {
    log.read(1, 100)
        .unwrap()
        .iter()
        .map(|entry| serde_json::from_slice(&entry.body).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_caller_names_is_recorded_bounded_and_bad_arguments_are_refused_on_record() {
    // Found by attack: a JSON-RPC id of megabytes (or with line breaks) was
    // recorded as given, so anyone connected could fill the trail; calls
    // refused for their arguments left no record, and told a caller without
    // a mandate how its arguments read.
    let world = World::new();
    let log = Arc::new(MemoryLog::new());
    let guard = world.guard(log.clone());
    let huge = format!("evil\nline{}", "x".repeat(1_000_000));
    let missing = world
        .call(&guard, "read_dataset", "/datasets/q3/revenue", false, &huge)
        .await
        .unwrap_err();
    assert_eq!(kind(&missing), "missing_mandate");

    // No `path`, with a mandate: invalid params, recorded.
    let mut params = CallToolRequestParams::new("read_dataset".to_owned());
    params.arguments = Some(object(json!({ "other": 1 })));
    let mut meta = JsonObject::new();
    meta.insert(META_TOKEN.into(), Value::String(world.child.clone()));
    let refused = guard
        .check(&mut params.clone(), &meta, "7")
        .await
        .unwrap_err();
    assert_ne!(refused.code.0, DENIED_CODE, "{refused:?}");
    assert!(
        refused.message.contains("`path` is required"),
        "{refused:?}"
    );
    // Without one: the missing mandate is all the caller learns.
    let unsigned = guard
        .check(&mut params, &JsonObject::new(), "8")
        .await
        .unwrap_err();
    assert_eq!(kind(&unsigned), "missing_mandate");

    let records = records(log.as_ref());
    let refusals: Vec<_> = records
        .iter()
        .map(|record| match &record.event {
            Event::Refusal(r) => r,
            other => panic!("not a refusal: {other:?}"),
        })
        .collect();
    assert_eq!(refusals.len(), 3, "{records:?}");
    let first = &refusals[0];
    assert!(first.request_id.starts_with("jsonrpc-sha256:"), "{first:?}");
    assert!(first.request_id.len() < 64, "{first:?}");
    assert_eq!(
        (refusals[1].code.as_str(), refusals[1].request_id.as_str()),
        ("invalid_arguments", "7")
    );
    assert_eq!(refusals[1].token, mandate_core::fingerprint(&world.child));
    assert_eq!(
        (refusals[2].code.as_str(), refusals[2].resource.as_deref()),
        ("missing_mandate", Some(""))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_decision_and_refusal_is_recorded_with_the_whole_chain() {
    let world = World::new();
    let log = Arc::new(MemoryLog::new());
    let guard = world.guard(log.clone());

    world
        .call(&guard, "read_dataset", "/datasets/q3/revenue", true, "1")
        .await
        .unwrap();
    let denied = world
        .call(&guard, "read_dataset", "/datasets/q4/revenue", true, "2")
        .await
        .unwrap_err();
    assert_eq!(kind(&denied), "failed_checks");
    let missing = world
        .call(&guard, "export_dataset", "/datasets/q3/revenue", false, "3")
        .await
        .unwrap_err();
    assert_eq!(kind(&missing), "missing_mandate");

    let records = records(log.as_ref());
    assert_eq!(records.len(), 3, "{records:?}");
    let keys = [
        mandate_audit::key_fingerprint(&world.orchestrator.public().to_string()),
        mandate_audit::key_fingerprint(&world.analytics.public().to_string()),
    ];
    for (record, (outcome, resource, id)) in records.iter().zip([
        (Outcome::Allow, "/datasets/q3/revenue", "1"),
        (Outcome::Deny, "/datasets/q4/revenue", "2"),
    ]) {
        let Event::Decision(d) = &record.event else {
            panic!("not a decision: {record:?}");
        };
        assert_eq!(d.decision, outcome, "{d:?}");
        assert_eq!(
            (d.principal.as_str(), d.task.as_str()),
            ("bob", "q3-report")
        );
        let chain: Vec<(&str, &str)> = d
            .chain
            .iter()
            .map(|l| (l.name.as_str(), l.key.as_str()))
            .collect();
        assert_eq!(
            chain,
            [
                ("orchestrator", keys[0].as_str()),
                ("analytics", keys[1].as_str())
            ]
        );
        assert_eq!(d.agent, "analytics");
        assert_eq!(
            (
                d.service.as_str(),
                d.operation.as_str(),
                d.resource.as_str()
            ),
            ("analytics", "read_dataset", resource)
        );
        assert_eq!((d.api.as_str(), d.request_id.as_str()), ("mcp", id));
        assert_eq!(
            (d.verifier.as_str(), d.revocation_seq),
            ("analytics-test", Some(7))
        );
        assert_eq!(d.token, mandate_core::fingerprint(&world.child));
    }
    let Event::Decision(denied) = &records[1].event else {
        unreachable!()
    };
    assert!(
        denied.reason.to_string().contains("by agent orchestrator"),
        "{}",
        denied.reason
    );
    let Event::Refusal(refusal) = &records[2].event else {
        panic!("not a refusal: {:?}", records[2]);
    };
    assert_eq!(refusal.code, "missing_mandate");
    assert_eq!(
        (
            refusal.service.as_deref(),
            refusal.operation.as_deref(),
            refusal.resource.as_deref()
        ),
        (
            Some("analytics"),
            Some("export_dataset"),
            Some("/datasets/q3/revenue")
        )
    );
    let text = format!("{records:?}");
    assert!(!text.contains(&world.child), "a record holds the token");
}

/// A log whose writes all fail, as a full or unwritable disk would.
#[derive(Debug, Default)]
struct UnwritableLog(MemoryLog);

impl AuditLog for UnwritableLog {
    fn log_id(&self) -> mandate_audit::Result<String> {
        self.0.log_id()
    }
    fn last(&self) -> mandate_audit::Result<Option<StoredEntry>> {
        self.0.last()
    }
    fn append(
        &self,
        _entries: &[StoredEntry],
        _head: Option<&SignedHead>,
        _durable: bool,
    ) -> mandate_audit::Result<()> {
        Err(mandate_audit::Error::Storage {
            action: "append",
            message: "no space left on device".into(),
        })
    }
    fn flush(&self) -> mandate_audit::Result<()> {
        Ok(())
    }
    fn read(&self, from: u64, limit: usize) -> mandate_audit::Result<Vec<StoredEntry>> {
        self.0.read(from, limit)
    }
    fn heads(&self) -> mandate_audit::Result<Vec<SignedHead>> {
        self.0.heads()
    }
    fn recover(&self) -> mandate_audit::Result<()> {
        Err(mandate_audit::Error::Storage {
            action: "reopen",
            message: "no space left on device".into(),
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_cannot_be_recorded_is_refused_even_when_allowed() {
    let world = World::new();
    let guard = world.guard(Arc::new(UnwritableLog::default()));
    for id in ["1", "2"] {
        let refused = world
            .call(&guard, "read_dataset", "/datasets/q3/revenue", true, id)
            .await
            .unwrap_err();
        assert_eq!(kind(&refused), "audit_unavailable");
        assert!(
            refused.message.contains("could not be recorded"),
            "{}",
            refused.message
        );
    }
    // A refusal that cannot be recorded says so too.
    let refused = world
        .call(&guard, "read_dataset", "/datasets/q3/revenue", false, "3")
        .await
        .unwrap_err();
    assert_eq!(kind(&refused), "audit_unavailable");
}
