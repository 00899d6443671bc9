//! What `mandate issuer serve` runs with: one [`IssuerConfig`] from a TOML
//! file (flags override it in the binary), checked whole by
//! [`IssuerConfig::validate`] into [`IssuerSettings`]. Unknown keys are
//! refused; every duration has a bound. The same shape is the `[issuer]`
//! section of `mandate serve`'s configuration, checked by
//! [`IssuerConfig::validate_mounted`]: it shares the server's port and TLS,
//! and without a revocation target it writes to the server's own store.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mandate_postgres::StoreLocation;
use serde::{Deserialize, Serialize};

use crate::settings::{
    invalid, within, AuditConfig, AuditSettings, ConfigError, LogFormat, TlsConfig,
};

/// Everything an issuer runs with.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IssuerConfig {
    /// Address to listen on (default `127.0.0.1:7800`).
    pub listen: Option<SocketAddr>,
    /// `text` (default) or `json` logs.
    pub log_format: LogFormat,
    /// How long in-flight requests may finish after SIGTERM (default 10 s).
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Option<Duration>,
    /// This issuer's identifier: agents' actor tokens name it as `aud`
    /// (its public URL, say). Required.
    pub id: Option<String>,
    /// The root key file (0600).
    pub root_key: Option<PathBuf>,
    /// The key id written into mandates.
    pub root_key_id: Option<u32>,
    /// Or a key folder kept by `mandate keys rotate --dir`: the newest key
    /// signs, every key not yet retired is published.
    pub key_dir: Option<PathBuf>,
    /// How long verifiers may cache `/.well-known/mandate-keys` (default
    /// 5 min): a rotation reaches them within it.
    #[serde(with = "humantime_serde")]
    pub keys_max_age: Option<Duration>,
    /// An issuance policy file instead of the built-in one.
    pub policy: Option<PathBuf>,
    /// Where tasks are kept: a sled folder, or a `postgres://` URL shared
    /// by several issuer replicas. Required.
    pub store: Option<PathBuf>,
    /// Each mandate's lifetime (default 5 min).
    #[serde(with = "humantime_serde")]
    pub mandate_ttl: Option<Duration>,
    /// A task's lifetime when none is asked and the policy sets none (default 1 h).
    #[serde(with = "humantime_serde")]
    pub default_task_ttl: Option<Duration>,
    /// The longest task (default 24 h).
    #[serde(with = "humantime_serde")]
    pub max_task_ttl: Option<Duration>,
    /// Clock skew allowed on identity and actor tokens (default 30 s).
    #[serde(with = "humantime_serde")]
    pub skew: Option<Duration>,
    /// How often overdue tasks are closed (default 5 s).
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Option<Duration>,
    /// Where closed tasks' revocations are written.
    pub revocations: IssuerRevocations,
    /// TLS, when both are given.
    pub tls: TlsConfig,
    /// Trusted identity providers, at least one.
    pub idp: Vec<IdpEntry>,
    /// The audit trail of the issuer's events (tasks opened, refreshed and
    /// closed, mandates minted, exchanges refused), written when a store is
    /// given.
    pub audit: AuditConfig,
    /// How long an agent's request for more rights waits for a person
    /// before it expires (default 15 min, at most 24 h).
    #[serde(with = "humantime_serde")]
    pub request_ttl: Option<Duration>,
    /// Groups (from the identity provider's groups claim) whose members may
    /// approve or deny any task's requests; a task's principal always may.
    pub approver_groups: Vec<String>,
    /// Where requests for more rights are kept: a sled folder or a
    /// `postgres://` URL (default: the task store's folder with `.requests`
    /// appended, or the task store's database).
    pub requests_store: Option<PathBuf>,
    /// How long finished records are kept before the sweeper prunes them.
    pub retention: RetentionConfig,
}

/// `[retention]`: how long closed tasks and settled requests are kept.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// How long a closed task is kept after it closed (default 30 days;
    /// at least `mandate_ttl`, so no mandate of a pruned task is alive).
    #[serde(with = "humantime_serde")]
    pub closed_tasks: Option<Duration>,
    /// How long a granted, denied or expired request for more rights is
    /// kept after its expiry (default 7 days).
    #[serde(with = "humantime_serde")]
    pub decided_requests: Option<Duration>,
}

/// Where task revocations go: a registry URL, or a local store folder.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IssuerRevocations {
    /// A registry (`mandate serve --store` or `mandate registry serve`).
    pub registry: Option<String>,
    /// A mandate granting `registry:revoke` (`TOKEN` or `@FILE`).
    pub registry_auth: Option<String>,
    /// Its agent's key (writes need a proof).
    pub registry_auth_key: Option<PathBuf>,
    /// A revocation store this process opens itself: a sled folder (no
    /// registry process may hold it) or a `postgres://` URL shared with
    /// registry replicas.
    pub store: Option<PathBuf>,
    /// Refuse operators' mandates (and agents' refreshes) when the
    /// revocation state was not confirmed for this long (default 5 s): no
    /// word from the registry, or a shared store that cannot be read. A
    /// registry silent for half of it is reconnected to.
    #[serde(with = "humantime_serde")]
    pub staleness: Option<Duration>,
}

/// One identity provider.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdpEntry {
    /// Its exact `iss`.
    pub issuer: String,
    /// The `aud` its tokens must carry for this issuer.
    pub audience: String,
    /// Its key set URL.
    pub jwks_url: Option<String>,
    /// Or a key set file.
    pub jwks_file: Option<PathBuf>,
    /// The claim naming the principal (default `email`).
    pub principal_claim: Option<String>,
    /// The claim listing groups (default `groups`).
    pub groups_claim: Option<String>,
}

/// Parses the `--idp ISSUER,AUDIENCE,JWKS` flag.
#[derive(Debug)]
pub struct IdpEntryArg;

impl IdpEntryArg {
    /// `ISSUER,AUDIENCE,JWKS`: JWKS starting with `http://` or `https://` is
    /// a URL, anything else a file.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when it does not have three parts.
    pub fn parse(text: &str) -> Result<IdpEntry, ConfigError> {
        let parts: Vec<&str> = text.splitn(3, ',').collect();
        let [issuer, audience, jwks] = parts.as_slice() else {
            return Err(invalid("--idp", "expected ISSUER,AUDIENCE,JWKS"));
        };
        let is_url = jwks.starts_with("http://") || jwks.starts_with("https://");
        Ok(IdpEntry {
            issuer: (*issuer).to_owned(),
            audience: (*audience).to_owned(),
            jwks_url: is_url.then(|| (*jwks).to_owned()),
            jwks_file: (!is_url).then(|| PathBuf::from(jwks)),
            principal_claim: None,
            groups_claim: None,
        })
    }
}

/// Where the issuer's root keys are, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerKeys {
    /// One key file, with the id mandates carry.
    File {
        /// The 0600 key file.
        path: PathBuf,
        /// The key id.
        key_id: Option<u32>,
    },
    /// A key folder (`mandate keys rotate --dir`).
    Dir(PathBuf),
}

/// Where revocations go, validated.
#[derive(Debug, Clone)]
pub enum RevocationTarget {
    /// A registry over HTTP.
    Registry {
        /// Its URL.
        url: String,
        /// The operator mandate.
        auth: String,
        /// Its key.
        auth_key: Option<PathBuf>,
    },
    /// A revocation store this process opens: a sled folder, or a
    /// PostgreSQL database shared with registry replicas.
    Store(StoreLocation),
    /// The revocation store of the server the issuer is mounted in.
    Local,
}

/// A validated issuer configuration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IssuerSettings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Log format.
    pub log_format: LogFormat,
    /// Shutdown grace.
    pub shutdown_grace: Duration,
    /// Identifier.
    pub id: String,
    /// Root keys.
    pub keys: IssuerKeys,
    /// How long verifiers may cache the published key set.
    pub keys_max_age: Duration,
    /// Policy file.
    pub policy: Option<PathBuf>,
    /// Where tasks are kept.
    pub store: StoreLocation,
    /// Mandate lifetime.
    pub mandate_ttl: Duration,
    /// Default task lifetime.
    pub default_task_ttl: Duration,
    /// Longest task.
    pub max_task_ttl: Duration,
    /// Skew.
    pub skew: Duration,
    /// Sweep interval.
    pub sweep_interval: Duration,
    /// Revocations.
    pub revocations: RevocationTarget,
    /// How long the revocation state may go unconfirmed before operators'
    /// mandates are refused.
    pub staleness: Duration,
    /// TLS cert and key.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Providers.
    pub idps: Vec<mandate_issuer::idp::IdpConfig>,
    /// The audit trail, when configured.
    pub audit: Option<AuditSettings>,
    /// How long a request for more rights waits for a person.
    pub request_ttl: Duration,
    /// Groups whose members may decide any task's requests.
    pub approver_groups: Vec<String>,
    /// Where requests for more rights are kept.
    pub requests_store: StoreLocation,
    /// How long closed tasks and settled requests are kept.
    pub retention: mandate_issuer::sweep::Retention,
}

const SECOND: Duration = Duration::from_secs(1);
const DAY: Duration = Duration::from_secs(24 * 3600);
/// The longest retention: ten years is "keep", without a switch for it.
const LONGEST_RETENTION: Duration = Duration::from_secs(3650 * 24 * 3600);

impl RetentionConfig {
    /// Checks both settings; closed tasks are kept at least as long as a
    /// mandate lives.
    fn settings(
        &self,
        mandate_ttl: Duration,
    ) -> Result<mandate_issuer::sweep::Retention, ConfigError> {
        use mandate_issuer::sweep::{DEFAULT_CLOSED_TASKS, DEFAULT_DECIDED_REQUESTS};
        let closed_tasks = within(
            "retention.closed_tasks",
            self.closed_tasks,
            DEFAULT_CLOSED_TASKS,
            (SECOND, LONGEST_RETENTION),
        )?;
        if closed_tasks < mandate_ttl {
            return Err(invalid(
                "retention.closed_tasks",
                format!(
                    "{} is shorter than mandate_ttl ({}): a closed task is kept until \
                     its last mandate has expired",
                    humantime::format_duration(closed_tasks),
                    humantime::format_duration(mandate_ttl)
                ),
            ));
        }
        Ok(mandate_issuer::sweep::Retention {
            closed_tasks,
            decided_requests: within(
                "retention.decided_requests",
                self.decided_requests,
                DEFAULT_DECIDED_REQUESTS,
                (SECOND, LONGEST_RETENTION),
            )?,
        })
    }
}

/// A store setting read as a location: a `postgres://` URL or a folder.
fn location(path: &Path) -> StoreLocation {
    match path.to_str() {
        Some(text) => match text.parse() {
            Ok(location) => location,
            Err(never) => match never {},
        },
        None => StoreLocation::Folder(path.to_owned()),
    }
}

impl IssuerConfig {
    /// Reads a TOML file.
    ///
    /// # Errors
    /// [`ConfigError::Read`] or [`ConfigError::Parse`].
    pub fn from_file(path: &Path) -> Result<IssuerConfig, ConfigError> {
        let text =
            mandate_core::text_file::read_text_file(path, mandate_core::text_file::MAX_TEXT_FILE)
                .map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.message().trim_end().to_owned(),
        })
    }

    /// Checks every setting.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad setting.
    pub fn validate(&self) -> Result<IssuerSettings, ConfigError> {
        self.validate_as(false)
    }

    /// Checks the `[issuer]` section of `mandate serve`'s configuration:
    /// no address or TLS of its own, and without a revocation target the
    /// server's own store takes the revocations.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad setting.
    pub fn validate_mounted(&self) -> Result<IssuerSettings, ConfigError> {
        if self.listen.is_some() || self.tls.cert.is_some() || self.tls.key.is_some() {
            return Err(invalid(
                "listen",
                "a mounted issuer shares the server's address and TLS",
            ));
        }
        self.validate_as(true)
    }

    fn validate_as(&self, mounted: bool) -> Result<IssuerSettings, ConfigError> {
        let id = self
            .id
            .clone()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| invalid("id", "the issuer needs an identifier (its public URL)"))?;
        let keys = match (&self.root_key, &self.key_dir) {
            (Some(path), None) => IssuerKeys::File {
                path: path.clone(),
                key_id: self.root_key_id,
            },
            (None, Some(_)) if self.root_key_id.is_some() => {
                return Err(invalid(
                    "root_key_id",
                    "a key folder's manifest names its key ids",
                ))
            }
            (None, Some(dir)) => IssuerKeys::Dir(dir.clone()),
            (Some(_), Some(_)) => {
                return Err(invalid("root_key", "give root_key or key_dir, not both"))
            }
            (None, None) => {
                return Err(invalid(
                    "root_key",
                    "the issuer needs its root key file (or a key folder, key_dir)",
                ))
            }
        };
        let store = self
            .store
            .clone()
            .map(|path| location(&path))
            .ok_or_else(|| {
                invalid(
                    "store",
                    "the issuer needs a folder or a postgres:// URL for its tasks",
                )
            })?;
        let r = &self.revocations;
        let revocations = match (&r.registry, &r.store) {
            (Some(url), None) => RevocationTarget::Registry {
                url: url.clone(),
                auth: r.registry_auth.clone().ok_or_else(|| {
                    invalid(
                        "revocations.registry_auth",
                        "writing to a registry needs a mandate granting registry:revoke",
                    )
                })?,
                auth_key: r.registry_auth_key.clone(),
            },
            (None, Some(dir)) => RevocationTarget::Store(location(dir)),
            (Some(_), Some(_)) => {
                return Err(invalid("revocations", "give registry or store, not both"))
            }
            (None, None) if mounted => RevocationTarget::Local,
            (None, None) => {
                return Err(invalid(
                    "revocations",
                    "closing a task must revoke it: give a registry or a store",
                ))
            }
        };
        if self.idp.is_empty() {
            return Err(invalid("idp", "trust at least one identity provider"));
        }
        let mut idps = Vec::new();
        for entry in &self.idp {
            if entry.issuer.is_empty() || entry.audience.is_empty() {
                return Err(invalid("idp", "each provider needs issuer and audience"));
            }
            let jwks = match (&entry.jwks_url, &entry.jwks_file) {
                (Some(url), None) => mandate_issuer::jwks::JwksSource::Url(url.clone()),
                (None, Some(file)) => mandate_issuer::jwks::JwksSource::File(file.clone()),
                _ => return Err(invalid("idp", "each provider needs jwks_url or jwks_file")),
            };
            idps.push(mandate_issuer::idp::IdpConfig {
                issuer: entry.issuer.clone(),
                audience: entry.audience.clone(),
                jwks,
                principal_claim: entry
                    .principal_claim
                    .clone()
                    .unwrap_or_else(|| "email".into()),
                groups_claim: entry
                    .groups_claim
                    .clone()
                    .unwrap_or_else(|| "groups".into()),
            });
        }
        let tls = match (&self.tls.cert, &self.tls.key) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            (None, None) => None,
            _ => return Err(invalid("tls", "give both cert and key")),
        };
        let max_task_ttl = within("max_task_ttl", self.max_task_ttl, DAY, (SECOND, 30 * DAY))?;
        let listen = self
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7800)));
        let audit = self.audit.settings(|| format!("mandate-issuer@{listen}"))?;
        if self
            .approver_groups
            .iter()
            .any(|g| g.trim().is_empty() || g.trim() != g)
        {
            return Err(invalid(
                "approver_groups",
                "a group name may not be empty or padded with spaces",
            ));
        }
        let requests_store = match (&self.requests_store, &store) {
            (Some(path), _) => location(path),
            // One database holds both; each has its own tables.
            (None, StoreLocation::Postgres(_)) => store.clone(),
            (None, StoreLocation::Folder(dir)) => {
                let mut name = dir.as_os_str().to_owned();
                name.push(".requests");
                StoreLocation::Folder(PathBuf::from(name))
            }
        };
        let mandate_ttl = within(
            "mandate_ttl",
            self.mandate_ttl,
            Duration::from_secs(300),
            (SECOND, DAY),
        )?;
        let retention = self.retention.settings(mandate_ttl)?;
        let staleness = within(
            "revocations.staleness",
            r.staleness,
            crate::settings::defaults::STALENESS,
            crate::settings::bounds::STALENESS,
        )?;
        Ok(IssuerSettings {
            staleness,
            retention,
            request_ttl: within(
                "request_ttl",
                self.request_ttl,
                mandate_issuer::requests::DEFAULT_REQUEST_TTL,
                (SECOND, DAY),
            )?,
            approver_groups: self.approver_groups.clone(),
            requests_store,
            listen,
            audit,
            log_format: self.log_format,
            shutdown_grace: within(
                "shutdown_grace",
                self.shutdown_grace,
                Duration::from_secs(10),
                (Duration::ZERO, Duration::from_secs(600)),
            )?,
            id,
            keys,
            keys_max_age: within(
                "keys_max_age",
                self.keys_max_age,
                mandate_issuer::server::DEFAULT_KEYS_MAX_AGE,
                (Duration::ZERO, DAY),
            )?,
            policy: self.policy.clone(),
            store,
            mandate_ttl,
            default_task_ttl: within(
                "default_task_ttl",
                self.default_task_ttl,
                Duration::from_secs(3600),
                (SECOND, max_task_ttl),
            )?,
            max_task_ttl,
            skew: within(
                "skew",
                self.skew,
                Duration::from_secs(30),
                (Duration::ZERO, Duration::from_secs(300)),
            )?,
            sweep_interval: within(
                "sweep_interval",
                self.sweep_interval,
                Duration::from_secs(5),
                (Duration::from_millis(10), Duration::from_secs(3600)),
            )?,
            revocations,
            tls,
            idps,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const FULL: &str = r#"
        id = "https://issuer.example.com"
        root_key = "root.key"
        store = "tasks"
        mandate_ttl = "2m"
        [revocations]
        registry = "http://127.0.0.1:7700"
        registry_auth = "@ops.token"
        [[idp]]
        issuer = "https://login.example.com"
        audience = "mandate"
        jwks_file = "jwks.json"
    "#;

    #[test]
    fn a_full_file_validates_with_defaults() {
        let config: IssuerConfig = toml::from_str(FULL).unwrap();
        let settings = config.validate().unwrap();
        assert_eq!(settings.request_ttl, Duration::from_secs(15 * 60));
        assert_eq!(
            settings.requests_store,
            StoreLocation::Folder("tasks.requests".into())
        );
        assert!(settings.approver_groups.is_empty());
        assert_eq!(settings.mandate_ttl, Duration::from_secs(120));
        assert_eq!(settings.default_task_ttl, Duration::from_secs(3600));
        assert_eq!(settings.listen.to_string(), "127.0.0.1:7800");
        assert_eq!(settings.idps[0].principal_claim, "email");
        assert_eq!(settings.keys_max_age, Duration::from_secs(300));
        assert_eq!(settings.staleness, Duration::from_secs(5));
    }

    #[test]
    fn the_revocation_store_is_a_folder_or_a_database_and_staleness_is_bounded() {
        let registry =
            "registry = \"http://127.0.0.1:7700\"\n        registry_auth = \"@ops.token\"";
        assert!(FULL.contains(registry));
        for (store, location) in [
            ("revocations", StoreLocation::Folder("revocations".into())),
            (
                "postgres://mandate@db/revocations",
                "postgres://mandate@db/revocations".parse().unwrap(),
            ),
        ] {
            let text = FULL.replace(
                registry,
                &format!("store = \"{store}\"\nstaleness = \"2s\""),
            );
            let settings = toml::from_str::<IssuerConfig>(&text)
                .unwrap()
                .validate()
                .unwrap();
            match settings.revocations {
                RevocationTarget::Store(got) => assert_eq!(got, location),
                other => panic!("{other:?}"),
            }
            assert_eq!(settings.staleness, Duration::from_secs(2));
        }
        let text = FULL.replace(registry, &format!("{registry}\nstaleness = \"50ms\""));
        let config: IssuerConfig = toml::from_str(&text).unwrap();
        assert!(matches!(
            config.validate(),
            Err(ConfigError::Invalid {
                setting: "revocations.staleness",
                ..
            })
        ));
    }

    #[test]
    fn a_key_folder_replaces_the_key_file_and_a_mounted_issuer_may_omit_revocations() {
        let text = FULL.replace("root_key = \"root.key\"", "key_dir = \"keys\"");
        let config: IssuerConfig = toml::from_str(&text).unwrap();
        assert_eq!(
            config.validate().unwrap().keys,
            IssuerKeys::Dir("keys".into())
        );
        let both = FULL.replace(
            "root_key = \"root.key\"",
            "root_key = \"a\"\nkey_dir = \"k\"",
        );
        let config: IssuerConfig = toml::from_str(&both).unwrap();
        assert!(config.validate().is_err());
        let idp = FULL.find("[[idp]]").unwrap();
        let revocations = FULL.find("[revocations]").unwrap();
        let local = format!("{}{}", &FULL[..revocations], &FULL[idp..]);
        let config: IssuerConfig = toml::from_str(&local).unwrap();
        assert!(config.validate().is_err());
        assert!(matches!(
            config.validate_mounted().unwrap().revocations,
            RevocationTarget::Local
        ));
        let mut listening = config;
        listening.listen = Some("127.0.0.1:1".parse().unwrap());
        assert!(listening.validate_mounted().is_err());
    }

    #[test]
    fn each_missing_or_bad_setting_is_named() {
        let idp = FULL.find("[[idp]]").unwrap();
        let revocations = FULL.find("[revocations]").unwrap();
        let cases = [
            (
                FULL.replace("id = \"https://issuer.example.com\"", ""),
                "id",
            ),
            (FULL.replace("root_key = \"root.key\"", ""), "root_key"),
            (
                FULL.replace("registry_auth = \"@ops.token\"", ""),
                "revocations.registry_auth",
            ),
            (FULL[..idp].to_owned(), "idp"),
            (
                format!("{}{}", &FULL[..revocations], &FULL[idp..]),
                "revocations",
            ),
        ];
        for (text, setting) in cases {
            let config: IssuerConfig = toml::from_str(&text).unwrap();
            match config.validate() {
                Err(ConfigError::Invalid { setting: got, .. }) => {
                    assert!(got.starts_with(setting), "{got} for {setting}")
                }
                other => panic!("{setting}: {other:?}"),
            }
        }
        let long = FULL.replace("\"2m\"", "\"2d\"");
        let config: IssuerConfig = toml::from_str(&long).unwrap();
        assert!(matches!(
            config.validate(),
            Err(ConfigError::Invalid {
                setting: "mandate_ttl",
                ..
            })
        ));
        assert!(toml::from_str::<IssuerConfig>("nonsense = 1").is_err());
    }

    #[test]
    fn retention_has_defaults_bounds_and_outlives_a_mandate() {
        let settings = toml::from_str::<IssuerConfig>(FULL)
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!(
            settings.retention,
            mandate_issuer::sweep::Retention::default()
        );
        assert_eq!(
            settings.retention.closed_tasks,
            Duration::from_secs(30 * 24 * 3600)
        );
        assert_eq!(
            settings.retention.decided_requests,
            Duration::from_secs(7 * 24 * 3600)
        );
        let with = |section: &str| format!("{FULL}\n[retention]\n{section}\n");
        let settings = toml::from_str::<IssuerConfig>(&with(
            "closed_tasks = \"90d\"\ndecided_requests = \"1h\"",
        ))
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(settings.retention.closed_tasks, 90 * DAY);
        assert_eq!(
            settings.retention.decided_requests,
            Duration::from_secs(3600)
        );
        for (section, setting, words) in [
            // Shorter than the mandates it must outlive (mandate_ttl = 2m).
            (
                "closed_tasks = \"1m\"",
                "retention.closed_tasks",
                "mandate_ttl",
            ),
            (
                "closed_tasks = \"20y\"",
                "retention.closed_tasks",
                "outside",
            ),
            (
                "decided_requests = \"0s\"",
                "retention.decided_requests",
                "outside",
            ),
        ] {
            match toml::from_str::<IssuerConfig>(&with(section))
                .unwrap()
                .validate()
            {
                Err(ConfigError::Invalid {
                    setting: got,
                    message,
                }) => {
                    assert_eq!(got, setting);
                    assert!(message.contains(words), "{message}");
                }
                other => panic!("{section}: {other:?}"),
            }
        }
        assert!(toml::from_str::<IssuerConfig>(&with("tasks = \"1d\"")).is_err());
    }

    #[test]
    fn the_documented_example_validates_with_its_retention() {
        let text = include_str!("../../../../docs/issuer.example.toml");
        let settings = toml::from_str::<IssuerConfig>(text)
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!(
            settings.retention,
            mandate_issuer::sweep::Retention::default()
        );
    }
}
