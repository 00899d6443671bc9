//! A deployment for the scenarios of `scenario`: a root key (key id 1), an
//! operator holding a keyed mandate for the registry and the audit trail,
//! and `mandate serve` with its registry and audit stores; agents' keys,
//! `mandate delegate` and `mandate pop` through the binary, and calls over
//! `POST /v1/authorize`. A scenario's first mandate comes from an
//! [`Origin`]: [`RootKeyFile`] here, a login in `tests/scenarios_login.rs`.
#![allow(dead_code)] // reason: each test binary uses its own subset.

use std::path::PathBuf;

use serde_json::{json, Map, Value};

use super::http::{http, Reply, JSON};
use super::server::Server;
use super::{mandate, Dir};

/// How long a root key file's mandates live here: one task, a quarter of an hour.
pub const TASK_TTL: &str = "15m";

/// Where a scenario's first mandate comes from.
pub trait Origin {
    /// The principal name mandates carry for the person called `who`
    /// (`alice`) in PRODUCT.md.
    fn principal(&self, who: &str) -> String;

    /// Writes to the stage's file `out` the first mandate of `who`'s task,
    /// granting `rights` (`SERVICE:OPERATION`), held by `agent` whose
    /// private key is the stage's file `{agent}.key`. `task` is the task's
    /// name where the origin lets the caller choose it. Returns the task id
    /// that decisions name.
    fn first_mandate(
        &self,
        stage: &Stage,
        who: &str,
        agent: &str,
        task: &str,
        rights: &[&str],
        out: &str,
    ) -> String;
}

/// The first mandate minted with `mandate issue --root-key`, the principal
/// named as typed.
pub struct RootKeyFile;

impl Origin for RootKeyFile {
    fn principal(&self, who: &str) -> String {
        who.to_owned()
    }

    fn first_mandate(
        &self,
        stage: &Stage,
        who: &str,
        agent: &str,
        task: &str,
        rights: &[&str],
        out: &str,
    ) -> String {
        let (root, agent_pub, out) = (
            stage.path("root.key"),
            stage.path(&format!("{agent}.key.pub")),
            stage.path(out),
        );
        let mut args = vec![
            "issue",
            "--root-key",
            &root,
            "--key-id",
            "1",
            "--principal",
            who,
            "--agent",
            agent,
            "--agent-key",
            &agent_pub,
            "--task",
            task,
            "--ttl",
            TASK_TTL,
            "--out",
            &out,
        ];
        for right in rights {
            args.extend(["--right", *right]);
        }
        mandate(&args).ok();
        task.to_owned()
    }
}

/// One deployment: a root key (key id 1), an operator holding a keyed
/// mandate for the registry and the audit trail, and `mandate serve` with
/// its registry store and audit store, trusting the root key.
pub struct Stage {
    // Declared first, so dropped (killed) before its folder is removed.
    pub verifier: Server,
    pub dir: Dir,
}

impl Stage {
    /// Starts `mandate serve` with the built-in policy, or the repository's
    /// `datalog/policies/{policy}` when given.
    pub fn start(policy: Option<&str>) -> Stage {
        let dir = Dir::new();
        dir.keygen("root.key");
        dir.keygen("operator.key");
        let (root, operator_pub, ops) = (
            dir.path("root.key"),
            dir.path("operator.key.pub"),
            dir.path("ops.token"),
        );
        mandate(&[
            "issue",
            "--root-key",
            &root,
            "--key-id",
            "1",
            "--principal",
            "ops-team",
            "--agent",
            "operator",
            "--agent-key",
            &operator_pub,
            "--right",
            "registry:revoke",
            "--right",
            "registry:read",
            "--right",
            "audit:read",
            "--ttl",
            "1h",
            "--out",
            &ops,
        ])
        .ok();
        let policy = policy.map(|name| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../datalog/policies")
                .join(name)
                .display()
                .to_string()
        });
        let (store, audit, audit_key, root_pub) = (
            dir.path("registry"),
            dir.path("audit"),
            dir.path("audit.key"),
            format!("1={}", dir.path("root.key.pub")),
        );
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--store",
            &store,
            "--root-pub",
            &root_pub,
            "--require-pop",
            "--audit-store",
            &audit,
            "--audit-key",
            &audit_key,
        ];
        if let Some(policy) = &policy {
            args.extend(["--policy", policy.as_str()]);
        }
        let verifier =
            Server::start("serve", &args, dir.file("serve.log")).unwrap_or_else(|e| panic!("{e}"));
        Stage { verifier, dir }
    }

    /// The path of `name` in the stage's folder, as an argument.
    pub fn path(&self, name: &str) -> String {
        self.dir.path(name)
    }

    /// An agent's key pair, `{name}.key` and `{name}.key.pub`.
    pub fn agent(&self, name: &str) {
        self.dir.keygen(&format!("{name}.key"));
    }

    /// `holder` hands the token in file `token` to `next`, signed with its
    /// own key, narrowed by `restrictions` (`mandate delegate` flags);
    /// the result goes to file `out`.
    pub fn hand(&self, token: &str, holder: &str, next: &str, restrictions: &[&str], out: &str) {
        let (token, signer, next_pub, out) = (
            format!("@{}", self.path(token)),
            self.path(&format!("{holder}.key")),
            self.path(&format!("{next}.key.pub")),
            self.path(out),
        );
        let mut args = vec![
            "delegate",
            "--token",
            &token,
            "--signer-key",
            &signer,
            "--to",
            next,
            "--to-key",
            &next_pub,
            "--out",
            &out,
        ];
        args.extend_from_slice(restrictions);
        mandate(&args).ok();
    }

    /// `holder` narrows the token in file `token` for itself, signed with
    /// its own key; the result goes to file `out`.
    pub fn narrow(&self, token: &str, holder: &str, restrictions: &[&str], out: &str) {
        let (token, signer, out) = (
            format!("@{}", self.path(token)),
            self.path(&format!("{holder}.key")),
            self.path(out),
        );
        let mut args = vec![
            "delegate",
            "--token",
            &token,
            "--signer-key",
            &signer,
            "--out",
            &out,
        ];
        args.extend_from_slice(restrictions);
        mandate(&args).ok();
    }

    /// `agent` calls `service`: its proof of possession from `mandate pop`
    /// over the request, then `POST /v1/authorize` with the token in file
    /// `token`. `attrs` are `KEY=VALUE`; integers go as JSON numbers.
    pub fn call(
        &self,
        agent: &str,
        token: &str,
        service: &str,
        operation: &str,
        resource: &str,
        attrs: &[&str],
    ) -> Reply {
        let (key, token_arg) = (
            self.path(&format!("{agent}.key")),
            format!("@{}", self.path(token)),
        );
        let mut args = vec![
            "pop",
            "--key",
            &key,
            "--token",
            &token_arg,
            "--service",
            service,
            "--operation",
            operation,
            "--resource",
            resource,
        ];
        for attr in attrs {
            args.extend(["--attr", *attr]);
        }
        let proof = mandate(&args).ok_trimmed();
        let mut attributes = Map::new();
        for attr in attrs {
            let (name, value) = attr.split_once('=').expect("KEY=VALUE");
            let value = value
                .parse::<i64>()
                .map_or_else(|_| json!(value), |n| json!(n));
            attributes.insert(name.to_owned(), value);
        }
        let text = std::fs::read_to_string(self.dir.file(token)).unwrap();
        let body = json!({
            "token": text.trim(), "service": service, "operation": operation,
            "resource": resource, "attrs": attributes, "pop": proof,
        });
        let url = format!("{}/v1/authorize", self.verifier.url);
        http("POST", &url, Some(&body.to_string()), &[JSON])
    }

    /// The operator revokes `principal` at the registry `mandate serve`
    /// keeps, with its keyed mandate.
    pub fn revoke_principal(&self, principal: &str, reason: &str) {
        let (auth, key) = (
            format!("@{}", self.path("ops.token")),
            self.path("operator.key"),
        );
        mandate(&[
            "revoke",
            "--principal",
            principal,
            "--reason",
            reason,
            "--registry",
            &self.verifier.url,
            "--auth",
            &auth,
            "--auth-key",
            &key,
        ])
        .ok();
    }

    /// The audit trail, read over HTTP with the operator's mandate
    /// (`mandate audit --url ... --json`), oldest first, narrowed by
    /// `filters` (`--task ID`, `--principal P`, ...).
    pub fn audit(&self, filters: &[&str]) -> Vec<Value> {
        let (auth, key) = (
            format!("@{}", self.path("ops.token")),
            self.path("operator.key"),
        );
        let mut args = vec![
            "audit",
            "--url",
            &self.verifier.url,
            "--auth",
            &auth,
            "--auth-key",
            &key,
            "--json",
        ];
        args.extend_from_slice(filters);
        mandate(&args)
            .ok()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// The audit trail of `task` as its decisions: for each, the outcome,
    /// the reason's kind, the principal and the chain of agent names.
    /// Every link of a chain names its key's fingerprint.
    pub fn decisions(&self, task: &str) -> Vec<(String, String, String, Vec<String>)> {
        self.audit(&["--task", task])
            .iter()
            .filter(|r| r["event"] == "decision")
            .map(|r| {
                let chain = r["chain"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|link| {
                        assert!(link["key"].as_str().unwrap().starts_with("sha256:"), "{r}");
                        link["name"].as_str().unwrap().to_owned()
                    })
                    .collect();
                (
                    r["decision"].as_str().unwrap().to_owned(),
                    r["reason"]["kind"].as_str().unwrap().to_owned(),
                    r["principal"].as_str().unwrap().to_owned(),
                    chain,
                )
            })
            .collect()
    }
}
