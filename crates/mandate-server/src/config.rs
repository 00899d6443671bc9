//! What a Mandate server runs with: one [`ServerConfig`], read from a TOML
//! file, then overridden by `MANDATE_*` environment variables and flags (the
//! binary does the overriding; this module owns the shape, the defaults and
//! the bounds).
//!
//! Every duration is written as humantime text (`"5s"`, `"250ms"`) and is
//! checked against a bound by [`ServerConfig::validate`]: a setting out of
//! range is an error naming the setting, never silently clamped. Unknown keys
//! are refused, so a misspelt `[tls]` section is not a server without TLS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mandate_postgres::StoreLocation;
use serde::{Deserialize, Serialize};

pub use crate::settings::{
    bounds, defaults, AuditConfig, AuditMode, AuditSettings, ConfigError, LogFormat, TlsConfig,
};
pub(crate) use crate::settings::{invalid, store_location, within};

/// Everything a server runs with.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on (default `127.0.0.1:7700`).
    pub listen: Option<SocketAddr>,
    /// `text` (default) or `json` logs on stderr.
    pub log_format: LogFormat,
    /// How long in-flight requests may finish after SIGTERM (default 10 s).
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Option<Duration>,
    /// Trusted root keys.
    pub roots: RootsConfig,
    /// The authorization API (`POST /v1/authorize`).
    pub authorize: AuthorizeConfig,
    /// Where revocations come from.
    pub revocations: RevocationsConfig,
    /// The evaluation pool.
    pub eval: EvalConfig,
    /// TLS, when both a certificate and a key are given.
    pub tls: TlsConfig,
    /// The proxy endpoint (`/v1/ext_authz`), served when a mapping is given.
    pub ext_authz: ExtAuthzConfig,
    /// The audit trail, written when a store is given.
    pub audit: AuditConfig,
    /// The issuer, mounted on the same port (token exchange, tasks, the
    /// published key set), when this section names its root key or key
    /// folder: the shape of `mandate issuer serve`'s file, without its own
    /// `listen` or `[tls]`.
    pub issuer: Option<crate::issuer::config::IssuerConfig>,
}

/// Trusted roots.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RootsConfig {
    /// Root public keys: `ed25519/<hex>`, `ID=ed25519/<hex>`, or `ID=FILE.pub`.
    pub keys: Vec<String>,
    /// A key-set file: a JSON object mapping key ids to public keys.
    pub key_set: Option<PathBuf>,
    /// Or follow an issuer's published key set
    /// (`https://issuer/.well-known/mandate-keys`; plain `http://` only to
    /// a loopback address), refreshed as its caching headers say.
    pub keys_url: Option<String>,
}

/// The authorization API.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthorizeConfig {
    /// Serve `POST /v1/authorize` (default true; `mandate registry serve`
    /// turns it off).
    pub enabled: Option<bool>,
    /// A policy file instead of the built-in default policy.
    pub policy: Option<PathBuf>,
    /// Refuse bearer tokens.
    pub require_pop: bool,
    /// How far a proof's time may be from the server's (default 30 s).
    #[serde(with = "humantime_serde")]
    pub pop_window: Option<Duration>,
}

/// Where revocations come from: exactly one of `store` and `registry`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RevocationsConfig {
    /// A sled folder, or a `postgres://` URL shared with other replicas: this
    /// process is the registry too.
    #[serde(with = "store_location")]
    pub store: Option<StoreLocation>,
    /// A registry to subscribe to: one URL, several separated by commas, or a
    /// list. Several are replicas of one registry (one shared log): the
    /// server follows one and moves to the next when it stops hearing from it.
    #[serde(
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub registry: Vec<String>,
    /// With `registry`: a mandate granting `registry:read` (`TOKEN`, `@FILE`).
    pub registry_auth: Option<String>,
    /// With `registry`: the key of that mandate's acting agent.
    pub registry_auth_key: Option<PathBuf>,
    /// With `registry`: deny everything when no replica confirmed the
    /// revocation state for this long (default 5 s). A replica silent for half
    /// of it is left for the next.
    #[serde(with = "humantime_serde")]
    pub staleness: Option<Duration>,
    /// With `store`: interval between stream heartbeats (default 1 s).
    #[serde(with = "humantime_serde")]
    pub heartbeat: Option<Duration>,
    /// DANGEROUS, with `store`: accept bearer operator mandates for writes.
    pub allow_bearer_writes: bool,
}

/// The evaluation pool.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Evaluations at once (default: the number of cores).
    pub workers: Option<usize>,
    /// Requests that may wait for a worker beyond those running (default:
    /// 64 per worker); one more is answered 503 at once.
    pub queue: Option<usize>,
    /// Deadline per request for waiting and evaluating (default 2 s).
    #[serde(with = "humantime_serde")]
    pub deadline: Option<Duration>,
}

/// The proxy endpoint.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtAuthzConfig {
    /// The mapping file: original request → (service, operation, resource, attrs).
    pub mapping: Option<PathBuf>,
}

impl ServerConfig {
    /// Reads a TOML file.
    ///
    /// # Errors
    /// [`ConfigError::Read`] or [`ConfigError::Parse`] (unknown keys included).
    pub fn from_file(path: &Path) -> Result<ServerConfig, ConfigError> {
        let text =
            mandate_core::text_file::read_text_file(path, mandate_core::text_file::MAX_TEXT_FILE)
                .map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
        ServerConfig::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses TOML text.
    ///
    /// # Errors
    /// The parser's message, naming the line and the key.
    pub fn from_toml(text: &str) -> Result<ServerConfig, String> {
        toml::from_str(text).map_err(|e| {
            // One line: the parser's message, and where (its default display
            // quotes the source over several lines).
            match e.span() {
                Some(span) => {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}: {}", e.message().trim_end())
                }
                None => e.message().trim_end().to_owned(),
            }
        })
    }

    /// The address to listen on.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7700)))
    }

    /// The settings with every default applied and every bound checked.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first setting that cannot be used.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        let r = &self.revocations;
        let registries = registry_urls(&r.registry)?;
        let source = match (&r.store, registries.is_empty()) {
            (Some(location), true) => Source::Store(location.clone()),
            (None, false) => {
                let Some(auth) = r.registry_auth.clone() else {
                    return Err(invalid(
                        "revocations.registry_auth",
                        "a registry needs a mandate granting registry:read",
                    ));
                };
                Source::Registry {
                    urls: registries,
                    auth,
                    auth_key: r.registry_auth_key.clone(),
                }
            }
            (Some(_), false) => {
                return Err(invalid("revocations", "give store or registry, not both"))
            }
            (None, true) => {
                return Err(invalid(
                    "revocations",
                    "give store (registry in this process) or registry (subscribe): \
                     a service never runs without revocations",
                ))
            }
        };
        if r.allow_bearer_writes && !matches!(source, Source::Store(_)) {
            return Err(invalid(
                "revocations.allow_bearer_writes",
                "only applies with a store (this process being the registry)",
            ));
        }
        let issuer = match &self.issuer {
            Some(issuer) => Some(issuer.validate_mounted().map_err(|e| match e {
                ConfigError::Invalid { setting, message } => ConfigError::Invalid {
                    setting: "issuer",
                    message: format!("{setting}: {message}"),
                },
                other => other,
            })?),
            None => None,
        };
        let fixed_roots = !self.roots.keys.is_empty() || self.roots.key_set.is_some();
        let root_keys_url = match &self.roots.keys_url {
            Some(_) if fixed_roots => {
                return Err(invalid(
                    "roots.keys_url",
                    "give keys_url or keys/key_set, not both",
                ))
            }
            Some(url) => Some(
                crate::key_follower::check_url(url)
                    .map_err(|message| invalid("roots.keys_url", message))?
                    .to_string(),
            ),
            None => None,
        };
        // A mounted issuer's own keys are trusted when no other roots are given.
        if !fixed_roots && root_keys_url.is_none() && issuer.is_none() {
            return Err(invalid(
                "roots",
                "no trusted root key: give roots.keys, roots.key_set or roots.keys_url",
            ));
        }
        let workers = match self.eval.workers {
            None => None,
            Some(n) if (bounds::EVAL_WORKERS.0..=bounds::EVAL_WORKERS.1).contains(&n) => Some(n),
            Some(n) => {
                return Err(invalid(
                    "eval.workers",
                    format!(
                        "{n} is outside {} ..= {}",
                        bounds::EVAL_WORKERS.0,
                        bounds::EVAL_WORKERS.1
                    ),
                ))
            }
        };
        let queue = match self.eval.queue {
            None => None,
            Some(n) if (bounds::EVAL_QUEUE.0..=bounds::EVAL_QUEUE.1).contains(&n) => Some(n),
            Some(n) => {
                return Err(invalid(
                    "eval.queue",
                    format!(
                        "{n} is outside {} ..= {}",
                        bounds::EVAL_QUEUE.0,
                        bounds::EVAL_QUEUE.1
                    ),
                ))
            }
        };
        let tls = match (&self.tls.cert, &self.tls.key) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            (None, None) => None,
            _ => return Err(invalid("tls", "give both cert and key")),
        };
        let authorize = self.authorize.enabled.unwrap_or(true);
        if !authorize && self.ext_authz.mapping.is_some() {
            return Err(invalid(
                "ext_authz.mapping",
                "the proxy endpoint needs the authorization API",
            ));
        }
        if !authorize && !matches!(source, Source::Store(_)) {
            return Err(invalid(
                "authorize.enabled",
                "a server without the authorization API must hold the registry's store",
            ));
        }
        let audit = self.audit_settings()?;
        Ok(Settings {
            audit,
            listen: self.listen_addr(),
            shutdown_grace: within(
                "shutdown_grace",
                self.shutdown_grace,
                defaults::SHUTDOWN_GRACE,
                bounds::SHUTDOWN_GRACE,
            )?,
            root_keys: self.roots.keys.clone(),
            root_key_set: self.roots.key_set.clone(),
            root_keys_url,
            issuer,
            authorize,
            policy: self.authorize.policy.clone(),
            require_pop: self.authorize.require_pop,
            pop_window: within(
                "authorize.pop_window",
                self.authorize.pop_window,
                defaults::POP_WINDOW,
                bounds::POP_WINDOW,
            )?,
            source,
            staleness: within(
                "revocations.staleness",
                r.staleness,
                defaults::STALENESS,
                bounds::STALENESS,
            )?,
            heartbeat: within(
                "revocations.heartbeat",
                r.heartbeat,
                defaults::HEARTBEAT,
                bounds::HEARTBEAT,
            )?,
            allow_bearer_writes: r.allow_bearer_writes,
            eval_workers: workers,
            eval_queue: queue,
            eval_deadline: within(
                "eval.deadline",
                self.eval.deadline,
                defaults::EVAL_DEADLINE,
                bounds::EVAL_DEADLINE,
            )?,
            tls,
            ext_authz_mapping: self.ext_authz.mapping.clone(),
        })
    }
}

impl ServerConfig {
    fn audit_settings(&self) -> Result<Option<AuditSettings>, ConfigError> {
        self.audit
            .settings(|| format!("mandate@{}", self.listen_addr()))
    }
}

/// Accepts `registry = "URL"` (commas separating several) or `registry =
/// ["URL", ...]`.
fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(text) => vec![text],
        OneOrMany::Many(list) => list,
    })
}

/// The registry URLs of `given`, each entry split at commas: every URL
/// non-empty, `http(s)` without credentials, none twice, at most
/// [`mandate_registry::MAX_REPLICAS`].
fn registry_urls(given: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut urls: Vec<String> = Vec::new();
    for url in given
        .iter()
        .flat_map(|entry| entry.split(','))
        .map(str::trim)
    {
        if url.is_empty() {
            return Err(invalid(
                "revocations.registry",
                "an empty URL in the list (two commas in a row, or a trailing comma)",
            ));
        }
        // The client's own checks, so a bad URL is a configuration error
        // (shown without credentials), not a failed start.
        let client = mandate_registry::RegistryClient::new(url)
            .map_err(|e| invalid("revocations.registry", with_causes(&e)))?;
        if urls.iter().any(|seen| seen == client.base_url()) {
            return Err(invalid(
                "revocations.registry",
                format!("{} is given twice", client.base_url()),
            ));
        }
        urls.push(client.base_url().to_owned());
    }
    if urls.len() > mandate_registry::MAX_REPLICAS {
        return Err(invalid(
            "revocations.registry",
            format!(
                "{} URLs, over the limit of {}",
                urls.len(),
                mandate_registry::MAX_REPLICAS
            ),
        ));
    }
    Ok(urls)
}

/// `error` and its causes on one line.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

/// Where a validated server reads revocations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A store this process serves as the registry: a sled folder it owns, or a
    /// PostgreSQL database it shares with other replicas.
    Store(StoreLocation),
    /// A registry this process subscribes to.
    Registry {
        /// The base URLs of its replicas, in the order they are tried
        /// (at least one).
        urls: Vec<String>,
        /// A mandate granting `registry:read` (`TOKEN` or `@FILE`).
        auth: String,
        /// That mandate's acting agent's key.
        auth_key: Option<PathBuf>,
    },
}

/// A validated configuration: every default applied, every bound checked.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Settings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Time in-flight requests get after the shutdown signal.
    pub shutdown_grace: Duration,
    /// Root keys as written.
    pub root_keys: Vec<String>,
    /// A key-set file.
    pub root_key_set: Option<PathBuf>,
    /// A published key set to follow instead.
    pub root_keys_url: Option<String>,
    /// The issuer mounted on this server.
    pub issuer: Option<crate::issuer::config::IssuerSettings>,
    /// Serve the authorization API.
    pub authorize: bool,
    /// A policy file.
    pub policy: Option<PathBuf>,
    /// Refuse bearer tokens.
    pub require_pop: bool,
    /// Proof time window.
    pub pop_window: Duration,
    /// Where revocations come from.
    pub source: Source,
    /// Staleness bound of a subscribed index.
    pub staleness: Duration,
    /// Heartbeat interval of the registry's streams.
    pub heartbeat: Duration,
    /// Accept bearer operator mandates for registry writes.
    pub allow_bearer_writes: bool,
    /// Evaluation workers (`None`: one per core).
    pub eval_workers: Option<usize>,
    /// Requests that may wait for a worker (`None`: the pool's default per
    /// worker).
    pub eval_queue: Option<usize>,
    /// Evaluation deadline.
    pub eval_deadline: Duration,
    /// Certificate and key files.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The proxy endpoint's mapping file.
    pub ext_authz_mapping: Option<PathBuf>,
    /// The audit trail, when configured.
    pub audit: Option<AuditSettings>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const FULL: &str = r#"
        listen = "127.0.0.1:0"
        log_format = "json"
        shutdown_grace = "3s"
        [roots]
        keys = ["1=ed25519/00"]
        [authorize]
        require_pop = true
        pop_window = "1m"
        [revocations]
        store = "/var/lib/mandate"
        heartbeat = "250ms"
        [eval]
        workers = 4
        queue = 100
        deadline = "500ms"
    "#;

    #[test]
    fn a_full_file_parses_and_validates() {
        let config = ServerConfig::from_toml(FULL).unwrap();
        assert_eq!(config.log_format, LogFormat::Json);
        let settings = config.validate().unwrap();
        assert_eq!(settings.heartbeat, Duration::from_millis(250));
        assert_eq!(settings.pop_window, Duration::from_secs(60));
        assert_eq!(settings.eval_workers, Some(4));
        assert_eq!(settings.eval_queue, Some(100));
        assert_eq!(
            settings.source,
            Source::Store(StoreLocation::Folder("/var/lib/mandate".into()))
        );
        assert!(settings.require_pop && settings.authorize);
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let err = ServerConfig::from_toml("[tsl]\ncert = \"a\"\n").unwrap_err();
        assert!(err.contains("tsl"), "{err}");
        let err = ServerConfig::from_toml("[revocations]\nstor = \"a\"\n").unwrap_err();
        assert!(err.contains("stor"), "{err}");
    }

    #[test]
    fn out_of_range_durations_name_the_setting() {
        let text = FULL.replace("\"250ms\"", "\"1ms\"");
        let err = ServerConfig::from_toml(&text)
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(
            err.to_string().starts_with("revocations.heartbeat:"),
            "{err}"
        );
        let text = FULL.replace("\"1m\"", "\"2h\"");
        let err = ServerConfig::from_toml(&text)
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(
            err.to_string().starts_with("authorize.pop_window:"),
            "{err}"
        );
    }

    #[test]
    fn an_out_of_range_queue_names_the_setting() {
        let text = FULL.replace("queue = 100", "queue = 100000");
        let err = ServerConfig::from_toml(&text)
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().starts_with("eval.queue:"), "{err}");
        let text = FULL.replace("queue = 100", "queue = 0");
        let settings = ServerConfig::from_toml(&text).unwrap().validate().unwrap();
        assert_eq!(settings.eval_queue, Some(0));
    }

    #[test]
    fn a_server_needs_exactly_one_revocation_source_and_roots() {
        let none = ServerConfig {
            roots: RootsConfig {
                keys: vec!["ed25519/00".into()],
                key_set: None,
                keys_url: None,
            },
            ..ServerConfig::default()
        };
        assert!(none
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("revocations:"));
        let mut both = none.clone();
        both.revocations.store = Some(StoreLocation::Folder("a".into()));
        both.revocations.registry = vec!["http://x".into()];
        both.revocations.registry_auth = Some("t".into());
        assert!(both.validate().is_err());
        let mut no_auth = none.clone();
        no_auth.revocations.registry = vec!["http://x".into()];
        assert!(no_auth.validate().is_err());
        let mut no_roots = none;
        no_roots.roots.keys.clear();
        no_roots.revocations.store = Some(StoreLocation::Folder("a".into()));
        assert!(no_roots
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("roots:"));
    }

    #[test]
    fn the_documented_example_parses_and_validates() {
        let text = include_str!("../../../docs/mandate.example.toml");
        let settings = ServerConfig::from_toml(text).unwrap().validate().unwrap();
        assert_eq!(settings.listen, "127.0.0.1:7700".parse().unwrap());
        assert_eq!(settings.eval_deadline, defaults::EVAL_DEADLINE);
    }

    #[test]
    fn audit_settings_default_to_durable_with_a_key_beside_the_store() {
        let text = format!("{FULL}\n[audit]\nstore = \"/var/lib/mandate/audit\"\n");
        let settings = ServerConfig::from_toml(&text).unwrap().validate().unwrap();
        let audit = settings.audit.unwrap();
        assert_eq!(audit.key, PathBuf::from("/var/lib/mandate/audit.key"));
        assert_eq!(audit.buffered, None);
        assert_eq!(audit.verifier_id, "mandate@127.0.0.1:0");

        let buffered = text.replace("[audit]\n", "[audit]\nmode = \"buffered\"\n");
        let settings = ServerConfig::from_toml(&buffered)
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!(
            settings.audit.unwrap().buffered,
            Some(defaults::AUDIT_FLUSH)
        );

        let stray = text.replace("[audit]\n", "[audit]\nflush_every = \"5s\"\n");
        let err = ServerConfig::from_toml(&stray)
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().starts_with("audit.flush_every:"), "{err}");
        let keyless = format!("{FULL}\n[audit]\nkey = \"/k\"\n");
        let err = ServerConfig::from_toml(&keyless)
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().starts_with("audit.store:"), "{err}");
    }

    #[test]
    fn a_followed_key_set_is_https_or_loopback_and_alone() {
        let follow = |url: &str| {
            let mut config = ServerConfig::from_toml(FULL).unwrap();
            config.roots.keys.clear();
            config.roots.keys_url = Some(url.to_owned());
            config.validate()
        };
        assert!(follow("https://issuer.example.com/.well-known/mandate-keys").is_ok());
        assert!(follow("http://127.0.0.1:7800/.well-known/mandate-keys").is_ok());
        assert!(follow("http://[::1]:7800/.well-known/mandate-keys").is_ok());
        for bad in [
            "http://issuer.example.com/keys",
            "ftp://127.0.0.1/k",
            "not a url",
        ] {
            let err = follow(bad).unwrap_err().to_string();
            assert!(err.starts_with("roots.keys_url:"), "{bad}: {err}");
        }
        let mut both = ServerConfig::from_toml(FULL).unwrap();
        both.roots.keys_url = Some("https://issuer.example.com/k".into());
        assert!(both
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("roots.keys_url:"));
    }

    #[test]
    fn a_mounted_issuer_is_checked_as_a_section() {
        let text = format!(
            "{FULL}\n[issuer]\nid = \"urn:i\"\nkey_dir = \"keys\"\nstore = \"tasks\"\n\
             [[issuer.idp]]\nissuer = \"https://idp\"\naudience = \"a\"\njwks_file = \"j.json\"\n"
        );
        let settings = ServerConfig::from_toml(&text).unwrap().validate().unwrap();
        assert!(settings.issuer.is_some());
        let listening = text.replace("[issuer]\n", "[issuer]\nlisten = \"127.0.0.1:1\"\n");
        let err = ServerConfig::from_toml(&listening)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("issuer: listen:"), "{err}");
    }

    #[test]
    fn registry_replicas_are_a_list_or_commas_and_each_is_checked() {
        let subscribe = |registry: &str| {
            let text = FULL
                .replace("store = \"/var/lib/mandate\"", registry)
                .replace("heartbeat = \"250ms\"", "registry_auth = \"t\"");
            ServerConfig::from_toml(&text).unwrap().validate()
        };
        let expected = vec!["http://a:1".to_owned(), "http://b:2".to_owned()];
        for form in [
            r#"registry = "http://a:1,http://b:2/""#,
            r#"registry = ["http://a:1", " http://b:2"]"#,
            r#"registry = ["http://a:1,http://b:2"]"#,
        ] {
            match subscribe(form).unwrap().source {
                Source::Registry { urls, .. } => assert_eq!(urls, expected, "{form}"),
                other => panic!("{form}: {other:?}"),
            }
        }
        for (bad, why) in [
            (r#"registry = "http://a:1,,http://b:2""#, "empty"),
            (r#"registry = "http://a:1,http://a:1/""#, "twice"),
            (r#"registry = "ftp://a:1""#, "invalid registry URL"),
            (r#"registry = "http://ops:s3cret@a:1""#, "***@"),
        ] {
            let err = subscribe(bad).unwrap_err().to_string();
            assert!(err.starts_with("revocations.registry:"), "{bad}: {err}");
            assert!(err.contains(why), "{bad}: {err}");
            assert!(!err.contains("s3cret"), "{bad}: {err}");
        }
        let many = (0..=mandate_registry::MAX_REPLICAS)
            .map(|i| format!("http://r{i}:1"))
            .collect::<Vec<_>>()
            .join(",");
        let err = subscribe(&format!("registry = \"{many}\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("over the limit"), "{err}");
    }

    #[test]
    fn half_a_tls_pair_is_refused() {
        let mut config = ServerConfig::from_toml(FULL).unwrap();
        config.tls.cert = Some("cert.pem".into());
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("tls:"));
    }
}
