//! The one fixture of the black-box tests: a temporary folder holding a root
//! key and the agents' keys, and mandates issued, delegated, proved and
//! decided through the real binary, exactly as an operator and an agent
//! would make them. Every test file builds the scenario it needs on a
//! [`World`]; what only one file needs stays in that file, built from these.
#![allow(dead_code)] // reason: each test binary uses its own subset.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use super::server::Server;
use super::{mandate, tokens, Dir, Run};

/// The root key's file name (`root`, with its public key in `root.pub`).
pub const ROOT: &str = "root";

/// How long a mandate lives unless the test says otherwise.
pub const TTL: &str = "10m";

/// A temporary folder of keys, removed on drop, and what is made from them.
pub struct World {
    /// The folder: keys, tokens, stores and servers' logs.
    pub dir: Dir,
    /// The `--key-id` the root key is issued and trusted under, if any.
    key_id: Option<u32>,
    /// `root.pub`'s path.
    root_pub_file: String,
    /// The request time (RFC 3339, in seconds) decisions are made at when a
    /// test injects time with `--at`.
    pub now: String,
    /// Numbers the servers' log files.
    logs: AtomicU64,
}

/// A mandate and, when it is bound to an agent's key, that key's file: what
/// an agent holds to make calls.
#[derive(Debug, Clone)]
pub struct Holder {
    pub token: String,
    /// The private key file of the acting agent; `None` for a bearer token.
    pub key: Option<String>,
}

impl World {
    /// A fresh folder with a root key, trusted without a key id.
    pub fn new() -> World {
        World::build(None)
    }

    /// A fresh folder with a root key, issued and trusted as key id `id`.
    pub fn with_key_id(id: u32) -> World {
        World::build(Some(id))
    }

    fn build(key_id: Option<u32>) -> World {
        let dir = Dir::new();
        dir.keygen(ROOT);
        World {
            root_pub_file: dir.path(&format!("{ROOT}.pub")),
            dir,
            key_id,
            now: rfc3339(SystemTime::now()),
            logs: AtomicU64::new(0),
        }
    }

    // -- files and keys ----------------------------------------------------

    /// The path of `name` in the folder, as a command-line argument.
    pub fn path(&self, name: &str) -> String {
        self.dir.path(name)
    }

    /// The path of `name` in the folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.file(name)
    }

    /// Writes `contents` to `name` in the folder; returns its path.
    pub fn write(&self, name: &str, contents: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// `mandate keygen --out NAME`: returns the public key it printed.
    #[track_caller]
    pub fn keygen(&self, name: &str) -> String {
        self.dir.keygen(name)
    }

    /// The public key in `NAME.pub`.
    pub fn public(&self, name: &str) -> String {
        self.dir.public(name)
    }

    /// The root's private key file.
    pub fn root_key(&self) -> String {
        self.path(ROOT)
    }

    /// The root's public key (`ed25519/...`).
    pub fn root_pub(&self) -> String {
        self.public(ROOT)
    }

    /// The root's public key file, `root.pub`: what servers are given as
    /// `--root-pub`.
    pub fn root_pub_file(&self) -> &str {
        &self.root_pub_file
    }

    /// What `--root-pub` takes to trust the root: `ID=KEY` under a key id,
    /// the key alone otherwise.
    pub fn trust(&self) -> String {
        match self.key_id {
            Some(id) => format!("{id}={}", self.root_pub()),
            None => self.root_pub(),
        }
    }

    // -- mandates ----------------------------------------------------------

    /// `mandate issue --root-key ROOT ARGS`, under the world's key id, for
    /// [`TTL`] unless ARGS give a `--ttl`; as run (the caller asserts).
    #[track_caller]
    pub fn issue_run(&self, args: &[&str]) -> Run {
        let id = self.key_id.map(|id| id.to_string());
        let mut all: Vec<&str> = Vec::new();
        if let Some(id) = &id {
            all.extend(["--key-id", id.as_str()]);
        }
        all.extend_from_slice(args);
        if !args.iter().any(|arg| arg.starts_with("--ttl")) {
            all.extend(["--ttl", TTL]);
        }
        tokens::issue(&self.root_key(), &all)
    }

    /// [`World::issue_run`], asserted made: the token.
    #[track_caller]
    pub fn issue(&self, args: &[&str]) -> String {
        self.issue_run(args).ok_trimmed()
    }

    /// `principal`'s bearer mandate for `agent`, granting `rights`
    /// (`SERVICE:OPERATION`), with `extra` flags.
    #[track_caller]
    pub fn bearer(&self, principal: &str, agent: &str, rights: &[&str], extra: &[&str]) -> Holder {
        Holder {
            token: self.mint(principal, agent, None, rights, extra),
            key: None,
        }
    }

    /// `principal`'s mandate for `agent`, bound to the key in the file named
    /// after the agent (made with `keygen` when there is none yet), granting
    /// `rights`, with `extra` flags.
    #[track_caller]
    pub fn keyed(&self, principal: &str, agent: &str, rights: &[&str], extra: &[&str]) -> Holder {
        self.keyed_as(agent, principal, agent, rights, extra)
    }

    /// As [`World::keyed`], the agent's key in the file `key` (one agent name
    /// may hold several keys in one world).
    #[track_caller]
    pub fn keyed_as(
        &self,
        key: &str,
        principal: &str,
        agent: &str,
        rights: &[&str],
        extra: &[&str],
    ) -> Holder {
        if !self.file(key).exists() {
            self.keygen(key);
        }
        let public = self.public(key);
        Holder {
            token: self.mint(principal, agent, Some(&public), rights, extra),
            key: Some(self.path(key)),
        }
    }

    #[track_caller]
    fn mint(
        &self,
        principal: &str,
        agent: &str,
        agent_key: Option<&str>,
        rights: &[&str],
        extra: &[&str],
    ) -> String {
        let mut args = vec!["--principal", principal, "--agent", agent];
        if let Some(key) = agent_key {
            args.extend(["--agent-key", key]);
        }
        for right in rights {
            args.extend(["--right", *right]);
        }
        args.extend_from_slice(extra);
        self.issue(&args)
    }

    /// `mandate delegate --token TOKEN EXTRA...`: narrowed without a signed
    /// hop (or signed with `--signer-key` in EXTRA).
    #[track_caller]
    pub fn delegate(&self, token: &str, extra: &[&str]) -> Run {
        let mut args = vec!["delegate", "--token", token];
        args.extend_from_slice(extra);
        mandate(&args)
    }

    /// `mandate delegate` with a signed hop: the holder of the key `signer`
    /// hands `token` to the agent `to`, whose key is in the file `to`.
    #[track_caller]
    pub fn hop(&self, token: &str, signer: &str, to: &str, extra: &[&str]) -> Run {
        tokens::hop(token, &self.path(signer), to, &self.public(to), extra)
    }

    /// `mandate pop` by the key `signer` on `token` for `request` (the flags
    /// `authorize` is given too): the proof.
    #[track_caller]
    pub fn pop(&self, signer: &str, token: &str, request: &[&str]) -> String {
        tokens::pop(&self.path(signer), token, request)
    }

    /// `mandate authorize --token TOKEN --root-pub TRUST REQUEST... EXTRA...`.
    #[track_caller]
    pub fn authorize(&self, token: &str, request: &[&str], extra: &[&str]) -> Run {
        let trust = self.trust();
        let mut args = vec!["authorize", "--token", token, "--root-pub", &trust];
        args.extend_from_slice(request);
        args.extend_from_slice(extra);
        mandate(&args)
    }

    /// `mandate inspect --token TOKEN --json`, asserted to succeed.
    #[track_caller]
    pub fn inspect_json(&self, token: &str) -> Value {
        let run = mandate(&["inspect", "--token", token, "--json"]);
        run.ok();
        run.json()
    }

    /// [`World::now`] moved by `seconds` (negative: earlier).
    pub fn at(&self, seconds: i64) -> String {
        shift(&self.now, seconds)
    }

    // -- servers -----------------------------------------------------------

    /// Starts `mandate ARGS` as `name`, its stderr in a fresh `name-N.log`
    /// in the folder; `Err` with that stderr when it does not announce its
    /// address.
    pub fn try_serve<S: AsRef<str>>(&self, name: &str, args: &[S]) -> Result<Server, String> {
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        let n = self.logs.fetch_add(1, Ordering::Relaxed);
        let log = self.file(&format!("{}-{n}.log", name.replace(' ', "-")));
        Server::start(name, &args, log)
    }

    /// [`World::try_serve`], asserted started.
    #[track_caller]
    pub fn serve<S: AsRef<str>>(&self, name: &str, args: &[S]) -> Server {
        self.try_serve(name, args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `mandate serve --store STORE --listen 127.0.0.1:0 --root-pub ROOT
    /// EXTRA...`: the authorization API and the registry in one process,
    /// trusting this world's root, its store the folder `store` (EXTRA may
    /// name another `--listen`).
    pub fn try_serve_store(&self, store: &str, extra: &[&str]) -> Result<Server, String> {
        self.try_serve("serve --store", &self.with_store(&["serve"], store, extra))
    }

    /// [`World::try_serve_store`], asserted started.
    #[track_caller]
    pub fn serve_store(&self, store: &str, extra: &[&str]) -> Server {
        self.try_serve_store(store, extra)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `mandate registry serve --store STORE --listen 127.0.0.1:0 --root-pub
    /// ROOT EXTRA...`: the registry alone (EXTRA may name another `--listen`).
    pub fn try_serve_registry(&self, store: &str, extra: &[&str]) -> Result<Server, String> {
        let args = self.with_store(&["registry", "serve"], store, extra);
        self.try_serve("registry", &args)
    }

    /// [`World::try_serve_registry`], asserted started.
    #[track_caller]
    pub fn serve_registry(&self, store: &str, extra: &[&str]) -> Server {
        self.try_serve_registry(store, extra)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `COMMAND --store STORE --root-pub ROOT [--listen 127.0.0.1:0] EXTRA`
    /// (STORE a folder in this world, or a `postgres://` URL).
    fn with_store(&self, command: &[&str], store: &str, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = command.iter().map(|arg| arg.to_string()).collect();
        // A database URL is the store as it is; anything else, a folder here.
        let store = if store.starts_with("postgres://") {
            store.to_owned()
        } else {
            self.path(store)
        };
        args.extend(["--store".into(), store]);
        args.extend(["--root-pub".into(), self.root_pub_file.clone()]);
        if !extra.iter().any(|arg| arg.starts_with("--listen")) {
            args.extend(["--listen".into(), "127.0.0.1:0".into()]);
        }
        args.extend(extra.iter().map(|arg| arg.to_string()));
        args
    }
}

impl Holder {
    /// The acting agent's key file; panics for a bearer token.
    #[track_caller]
    pub fn key_file(&self) -> &str {
        self.key
            .as_deref()
            .expect("a mandate bound to an agent key")
    }

    /// The body of `POST /v1/authorize` for `operation` on `resource` of
    /// `service`, with a fresh proof of possession when the token is keyed.
    pub fn body(&self, service: &str, operation: &str, resource: &str) -> String {
        let mut body = json!({
            "token": self.token,
            "service": service,
            "operation": operation,
            "resource": resource,
        });
        if let Some(key) = &self.key {
            let request = super::request_flags(service, operation, resource);
            body["pop"] = json!(tokens::pop(key, &self.token, &request));
        }
        body.to_string()
    }
}

/// The RFC 3339 time `t` moved by `seconds` (negative: earlier).
pub fn shift(t: &str, seconds: i64) -> String {
    let t = humantime::parse_rfc3339(t).unwrap();
    let delta = Duration::from_secs(seconds.unsigned_abs());
    rfc3339(if seconds < 0 { t - delta } else { t + delta })
}

/// `t` as RFC 3339 in whole seconds, as `--at` takes it.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}
