//! An issuer's surroundings as the issuer tests set them up: a folder with
//! the root, agent and operator keys, the operator's keyed mandate for the
//! registry (`registry:revoke` and `registry:read`), a `mandate serve
//! --store` registry trusting the root, and the local identity provider —
//! and `mandate issuer serve` started against them.
#![allow(dead_code)] // reason: each test binary uses its own subset.

use super::idp::{Jwks, ISSUER_ID};
use super::server::Server;
use super::{mandate, Dir};

/// Keys, the registry and the identity provider an issuer runs with.
pub struct IssuerSite {
    /// Holds `root.key`, `agent.key`, `operator.key` (and their `.pub`),
    /// `ops.token` and the registry's store.
    pub dir: Dir,
    /// The identity provider.
    pub jwks: Jwks,
    /// `mandate serve --store`: the registry task revocations go to.
    pub verifier: Server,
}

impl IssuerSite {
    /// A fresh site; `keys` names more key files to generate in its folder.
    pub fn new(keys: &[&str]) -> IssuerSite {
        let dir = Dir::new();
        let verifier = registry(&dir, keys, &[]);
        let jwks = Jwks::serve("jwks.json");
        IssuerSite {
            dir,
            jwks,
            verifier,
        }
    }

    /// `mandate issuer serve` named `name` on 127.0.0.1:0: the site's root
    /// (key id 1), tasks in `store`, the registry with the operator's
    /// mandate, the identity provider, then `extra` flags; its stderr in
    /// `NAME.log`.
    pub fn issuer(&self, name: &str, store: &str, extra: &[&str]) -> Server {
        issuer(
            &self.dir,
            name,
            store,
            &self.verifier.url,
            &self.jwks.flag(),
            extra,
        )
    }
}

/// In `dir`: the root, agent and operator keys (and the `keys` named), the
/// operator's keyed registry mandate `ops.token`, and `mandate serve
/// --store` trusting the root (then `serve_extra` flags), its stderr in
/// `serve.log`.
pub fn registry(dir: &Dir, keys: &[&str], serve_extra: &[&str]) -> Server {
    for key in ["root.key", "agent.key", "operator.key"].iter().chain(keys) {
        dir.keygen(key);
    }
    mandate(&[
        "issue",
        "--root-key",
        &dir.path("root.key"),
        "--key-id",
        "1",
        "--principal",
        "ops",
        "--agent",
        "operator",
        "--agent-key",
        &dir.path("operator.key.pub"),
        "--right",
        "registry:revoke",
        "--right",
        "registry:read",
        "--ttl",
        "1h",
        "--out",
        &dir.path("ops.token"),
    ])
    .ok();
    let (store, root) = (
        dir.path("registry"),
        format!("1={}", dir.path("root.key.pub")),
    );
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--store",
        &store,
        "--root-pub",
        &root,
    ];
    args.extend_from_slice(serve_extra);
    Server::start("serve", &args, dir.file("serve.log")).unwrap_or_else(|e| panic!("{e}"))
}

/// `mandate issuer serve` named `name` on 127.0.0.1:0 with the keys
/// [`registry`] made in `dir`: its root (key id 1), tasks in `store`, the
/// registry at `registry_url` with the operator's mandate, the identity
/// provider `idp` (an `--idp` value), then `extra` flags; its stderr in
/// `NAME.log`.
pub fn issuer(
    dir: &Dir,
    name: &str,
    store: &str,
    registry_url: &str,
    idp: &str,
    extra: &[&str],
) -> Server {
    let (root, auth, operator) = (
        dir.path("root.key"),
        format!("@{}", dir.path("ops.token")),
        dir.path("operator.key"),
    );
    let mut args = vec![
        "issuer",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--id",
        ISSUER_ID,
        "--root-key",
        &root,
        "--key-id",
        "1",
        "--store",
        store,
        "--registry",
        registry_url,
        "--registry-auth",
        &auth,
        "--registry-auth-key",
        &operator,
        "--idp",
        idp,
    ];
    args.extend_from_slice(extra);
    Server::start(name, &args, dir.file(&format!("{name}.log"))).unwrap_or_else(|e| panic!("{e}"))
}
