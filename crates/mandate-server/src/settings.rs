//! What every server's configuration shares — the error type, the log
//! format, TLS, the audit trail's settings, the bounds and defaults of the
//! durations and how a store location is written — so the server's and the
//! issuer's configurations both build on it without reading each other.

use std::path::PathBuf;
use std::time::Duration;

use mandate_postgres::StoreLocation;
use serde::{Deserialize, Serialize};

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading config {}", mandate_core::keys::describe_path(path))]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this shape.
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said, with the line.
        message: String,
    },
    /// A setting is missing, out of range or contradicts another.
    #[error("{setting}: {message}")]
    Invalid {
        /// The setting, as written in the file (`revocations.staleness`).
        setting: &'static str,
        /// What is wrong.
        message: String,
    },
}

pub(crate) fn invalid(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        message: message.into(),
    }
}

/// Log output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<LogFormat, String> {
        match text {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format `{other}` (expected text or json)"
            )),
        }
    }
}

/// TLS (rustls).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

/// The audit trail: every decision, refusal and registry write, recorded
/// before it is answered.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// The audit log's folder (created if missing), or a `postgres://` URL
    /// shared by replicas (each writes a log of its own, with its own key);
    /// no audit trail without it.
    #[serde(with = "store_location")]
    pub store: Option<StoreLocation>,
    /// The writer's Ed25519 key file (mode 0600), which signs the log's
    /// heads; generated when missing. Default: the store's path + `.key`
    /// (a PostgreSQL store needs it set: each replica its own key).
    /// Keep it where whoever can write the store cannot read it.
    pub key: Option<PathBuf>,
    /// `durable` (default: a decision is answered once its record is on
    /// disk) or `buffered` (DANGEROUS: answered before, flushed every
    /// `flush_every`; a crash loses that window).
    pub mode: AuditMode,
    /// With `buffered`: how often records are flushed (default 1 s).
    #[serde(with = "humantime_serde")]
    pub flush_every: Option<Duration>,
    /// How records name this verifier (default `mandate@<listen address>`).
    pub verifier_id: Option<String>,
}

/// When a decision is answered relative to its audit record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditMode {
    /// After the record is flushed to disk.
    #[default]
    Durable,
    /// Before: records are flushed every `flush_every`.
    Buffered,
}

impl std::str::FromStr for AuditMode {
    type Err = String;

    fn from_str(text: &str) -> Result<AuditMode, String> {
        match text {
            "durable" => Ok(AuditMode::Durable),
            "buffered" => Ok(AuditMode::Buffered),
            other => Err(format!(
                "unknown audit mode `{other}` (expected durable or buffered)"
            )),
        }
    }
}

/// A validated audit configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// The log's folder, or the database replicas share.
    pub store: StoreLocation,
    /// The writer key file.
    pub key: PathBuf,
    /// `None`: durable; `Some(every)`: buffered, flushed every `every`.
    pub buffered: Option<Duration>,
    /// How records name this verifier.
    pub verifier_id: String,
}

/// Bounds of the durations a configuration may set.
pub mod bounds {
    use std::time::Duration;

    /// `revocations.heartbeat`.
    pub const HEARTBEAT: (Duration, Duration) =
        (Duration::from_millis(10), Duration::from_secs(3600));
    /// `revocations.staleness`.
    pub const STALENESS: (Duration, Duration) =
        (Duration::from_millis(100), Duration::from_secs(24 * 3600));
    /// `eval.deadline`.
    pub const EVAL_DEADLINE: (Duration, Duration) =
        (Duration::from_millis(10), Duration::from_secs(60));
    /// `eval.workers`.
    pub const EVAL_WORKERS: (usize, usize) = (1, 1024);
    /// `eval.queue`: every waiting request holds its body in memory, so the
    /// queue has a ceiling too.
    pub const EVAL_QUEUE: (usize, usize) = (0, 65_536);
    /// `authorize.pop_window`: below a second clock skew alone denies; a window
    /// of hours would let a captured proof outlive the replay cache.
    pub const POP_WINDOW: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(600));
    /// `shutdown_grace`.
    pub const SHUTDOWN_GRACE: (Duration, Duration) =
        (Duration::from_millis(0), Duration::from_secs(600));
    /// `audit.flush_every`.
    pub const AUDIT_FLUSH: (Duration, Duration) =
        (Duration::from_millis(10), Duration::from_secs(60));
}

/// Defaults of the optional settings.
pub mod defaults {
    use std::time::Duration;

    /// `listen`.
    pub const LISTEN: &str = "127.0.0.1:7700";
    /// `revocations.heartbeat`.
    pub const HEARTBEAT: Duration = Duration::from_secs(1);
    /// `revocations.staleness`.
    pub const STALENESS: Duration = Duration::from_secs(5);
    /// `eval.deadline`.
    pub const EVAL_DEADLINE: Duration = Duration::from_secs(2);
    /// `authorize.pop_window`.
    pub const POP_WINDOW: Duration = Duration::from_secs(30);
    /// `shutdown_grace`.
    pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
    /// `audit.flush_every`.
    pub const AUDIT_FLUSH: Duration = Duration::from_secs(1);
}

/// `value` (or `default`) when it lies in `min ..= max`.
pub(crate) fn within(
    setting: &'static str,
    value: Option<Duration>,
    default: Duration,
    (min, max): (Duration, Duration),
) -> Result<Duration, ConfigError> {
    let value = value.unwrap_or(default);
    if value < min || value > max {
        return Err(invalid(
            setting,
            format!(
                "{} is outside {} ..= {}",
                humantime::format_duration(value),
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        ));
    }
    Ok(value)
}

impl AuditConfig {
    /// Checks the `[audit]` section; `None` when no store is given.
    /// `default_id` names the writer's service when `verifier_id` is unset.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad setting.
    pub fn settings(
        &self,
        default_id: impl FnOnce() -> String,
    ) -> Result<Option<AuditSettings>, ConfigError> {
        let a = self;
        let Some(store) = a.store.clone() else {
            if a.key.is_some() || a.mode == AuditMode::Buffered || a.flush_every.is_some() {
                return Err(invalid("audit.store", "the audit settings need a store"));
            }
            return Ok(None);
        };
        let buffered = match a.mode {
            AuditMode::Durable if a.flush_every.is_some() => {
                return Err(invalid(
                    "audit.flush_every",
                    "only applies with mode = \"buffered\"",
                ))
            }
            AuditMode::Durable => None,
            AuditMode::Buffered => Some(within(
                "audit.flush_every",
                a.flush_every,
                defaults::AUDIT_FLUSH,
                bounds::AUDIT_FLUSH,
            )?),
        };
        let key = match (&a.key, &store) {
            (Some(key), _) => key.clone(),
            (None, StoreLocation::Folder(dir)) => {
                let mut path = dir.clone().into_os_string();
                path.push(".key");
                PathBuf::from(path)
            }
            (None, StoreLocation::Postgres(_)) => {
                return Err(invalid(
                    "audit.key",
                    "a PostgreSQL audit store needs the writer's key file, one per replica",
                ))
            }
        };
        let verifier_id = match &a.verifier_id {
            Some(id) if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) => {
                return Err(invalid(
                    "audit.verifier_id",
                    "1 to 256 characters, no control characters",
                ))
            }
            Some(id) => id.clone(),
            None => default_id(),
        };
        Ok(Some(AuditSettings {
            store,
            key,
            buffered,
            verifier_id,
        }))
    }
}

/// `revocations.store` and `audit.store` in the file: a folder, or a
/// `postgres://` URL.
pub(crate) mod store_location {
    use mandate_postgres::StoreLocation;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<StoreLocation>, D::Error> {
        let text: Option<String> = Option::deserialize(deserializer)?;
        Ok(text.map(|text| match text.parse() {
            Ok(location) => location,
            Err(never) => match never {},
        }))
    }

    /// Written back as given (a URL with its password: this is the configuration
    /// itself, never a log line).
    pub(crate) fn serialize<S: Serializer>(
        location: &Option<StoreLocation>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match location {
            None => serializer.serialize_none(),
            Some(StoreLocation::Folder(path)) => serializer.serialize_some(path),
            Some(StoreLocation::Postgres(url)) => serializer.serialize_some(url),
        }
    }
}
