//! Registry replicas on one shared store, and the people who use them: an
//! operator holding a keyed mandate that can revoke and read the log, and a
//! verifier's keyed mandate that can read it. The replica tests on PostgreSQL
//! start `mandate registry serve` processes, a `mandate serve --registry`
//! verifier following them, and revoke and list through the binary.

#![allow(dead_code)] // reason: only the replica tests use it.

use serde_json::Value;

use super::server::Server;
use super::world::{Holder, World};
use super::{mandate, Run};

/// The replicas' heartbeat interval (also how often they catch up by sequence).
pub const HEARTBEAT: &str = "200ms";

/// A world with an operator and a verifier identity.
pub struct Replicas {
    /// The root, agents' keys and mandates.
    pub w: World,
    /// A keyed mandate granting `registry:revoke` and `registry:read`.
    pub ops: Holder,
    /// A keyed mandate granting `registry:read`, for the verifier.
    pub reader: Holder,
}

impl Replicas {
    /// A fresh world with the operator's and the verifier's mandates.
    pub fn new() -> Replicas {
        let w = World::new();
        let ops = w.keyed(
            "ops",
            "operator",
            &["registry:revoke", "registry:read"],
            &[],
        );
        let reader = w.keyed("verifiers", "verifier", &["registry:read"], &[]);
        Replicas { w, ops, reader }
    }

    /// `mandate registry serve --store STORE --listen 127.0.0.1:0 --heartbeat 200ms`.
    pub fn replica(&self, name: &str, store: &str) -> Server {
        let root = self.w.root_pub_file();
        self.w.serve(
            name,
            &[
                "registry",
                "serve",
                "--store",
                store,
                "--root-pub",
                root,
                "--listen",
                "127.0.0.1:0",
                "--heartbeat",
                HEARTBEAT,
            ],
        )
    }

    /// `mandate serve --registry REGISTRIES --staleness STALENESS`: a verifier
    /// following one replica, or failing over between several (`A,B`).
    pub fn verifier(&self, registries: &str, staleness: &str) -> Server {
        let root = self.w.root_pub_file();
        self.w.serve(
            "verifier",
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--root-pub",
                root,
                "--registry",
                registries,
                "--registry-auth",
                &self.reader.token,
                "--registry-auth-key",
                self.reader.key_file(),
                "--staleness",
                staleness,
            ],
        )
    }

    /// `mandate revoke TARGET --registry URL` as the operator (`TARGET` e.g.
    /// `["--principal", "bob"]`).
    pub fn revoke(&self, registry: &str, target: &[&str]) -> Run {
        let mut args = vec!["revoke"];
        args.extend_from_slice(target);
        args.extend_from_slice(&["--registry", registry, "--auth", &self.ops.token]);
        args.extend_from_slice(&["--auth-key", self.ops.key_file()]);
        mandate(&args)
    }

    /// The whole log as one replica lists it (`revocations list --json`).
    pub fn list(&self, registry: &str) -> Vec<Value> {
        let run = mandate(&[
            "revocations",
            "list",
            "--registry",
            registry,
            "--registry-auth",
            &self.ops.token,
            "--registry-auth-key",
            self.ops.key_file(),
            "--json",
        ]);
        let listed: Value = serde_json::from_str(run.ok()).unwrap();
        listed.as_array().unwrap().clone()
    }
}
