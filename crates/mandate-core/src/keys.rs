//! Ed25519 keys: secret keys as redacted newtypes, public keys in the
//! `ed25519/<hex>` form, and the set of trusted root keys by key id, each
//! optionally valid only within a window (a rotated root key is trusted
//! until its overlap ends, never after).
//!
//! Secret key material never reaches `Debug`, `Display` or a log line. Key
//! files are written with mode 0600 and never overwritten silently.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use biscuit_auth::builder::Algorithm;

use crate::Error;

/// A public key. Only Ed25519 keys are accepted; the text form is
/// `ed25519/<64 hex digits>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(biscuit_auth::PublicKey);

impl PublicKey {
    /// The underlying biscuit key.
    pub fn as_biscuit(&self) -> &biscuit_auth::PublicKey {
        &self.0
    }

    /// Reads 32 bytes of Ed25519 public key.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] when the bytes are not an Ed25519 point.
    pub fn from_bytes(bytes: &[u8]) -> Result<PublicKey, Error> {
        biscuit_auth::PublicKey::from_bytes(bytes, Algorithm::Ed25519)
            .map(PublicKey)
            .map_err(|_| Error::InvalidKey {
                reason: format!("{} bytes are not an Ed25519 public key", bytes.len()),
            })
    }

    /// The key's 32 bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_bytes()
    }

    pub(crate) fn from_biscuit(key: biscuit_auth::PublicKey) -> Result<PublicKey, Error> {
        match key.algorithm() {
            biscuit_auth::format::schema::public_key::Algorithm::Ed25519 => Ok(PublicKey(key)),
            _ => Err(Error::InvalidKey {
                reason: "only ed25519 keys are supported".into(),
            }),
        }
    }

    /// Reads a public key from a string, or from a file when `text` is a path
    /// to a `.pub` file written by [`SecretKey::write_new`].
    ///
    /// # Errors
    /// [`Error::InvalidKey`] when the text is not `ed25519/<hex>`.
    pub fn from_arg(text: &str) -> Result<PublicKey, Error> {
        let trimmed = text.trim();
        if !trimmed.starts_with("ed25519/") && Path::new(trimmed).is_file() {
            let contents = crate::text_file::read_text_file(
                Path::new(trimmed),
                crate::text_file::MAX_KEY_FILE,
            )
            .map_err(|source| Error::Io {
                action: "reading",
                path: trimmed.into(),
                source,
            })?;
            if looks_private(&contents) {
                return Err(Error::InvalidKey {
                    reason: format!(
                        "{trimmed} looks like a private key; give the public key (`{}`)",
                        public_key_path(Path::new(trimmed)).display()
                    ),
                });
            }
            return contents.trim().parse();
        }
        trimmed.parse()
    }
}

impl FromStr for PublicKey {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if looks_private(s) {
            return Err(Error::InvalidKey {
                reason: "this looks like a private key; give the public key (`.pub` file)".into(),
            });
        }
        let hex = s
            .trim()
            .strip_prefix("ed25519/")
            .ok_or_else(|| Error::InvalidKey {
                reason: format!("expected `ed25519/<hex>`, got {}", describe_arg(s)),
            })?;
        // The hex is not echoed: a secret pasted after the public prefix must
        // not reach a terminal or a log either.
        biscuit_auth::PublicKey::from_bytes_hex(hex, Algorithm::Ed25519)
            .map(PublicKey)
            .map_err(|_| Error::InvalidKey {
                reason: format!(
                    "`ed25519/` followed by {} characters is not an Ed25519 public key \
                     (expected 64 hex digits naming a curve point)",
                    hex.chars().count()
                ),
            })
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ed25519/{}", hex::encode(self.0.to_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

/// An agent's Ed25519 public key as its 32 bytes, as tokens carry it.
///
/// Chains are rebuilt by comparing these bytes with the bytes of the key
/// that signed each hop, so reading a chain never decompresses a curve point
/// (the costliest part of reading a key). A point is decompressed only where
/// a signature is checked ([`AgentKey::verifying_key`]); bytes that are not a
/// valid point then fail that check, which denies.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AgentKey([u8; 32]);

impl AgentKey {
    /// Reads 32 bytes.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for any other length.
    pub fn from_slice(bytes: &[u8]) -> Result<AgentKey, Error> {
        <[u8; 32]>::try_from(bytes)
            .map(AgentKey)
            .map_err(|_| Error::InvalidKey {
                reason: format!("an Ed25519 key has 32 bytes, not {}", bytes.len()),
            })
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key as a curve point, for checking a signature.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] when the bytes are not an Ed25519 point.
    pub fn verifying_key(&self) -> Result<ed25519_dalek::VerifyingKey, Error> {
        ed25519_dalek::VerifyingKey::from_bytes(&self.0).map_err(|_| Error::InvalidKey {
            reason: "the agent key is not an Ed25519 point".into(),
        })
    }
}

impl From<PublicKey> for AgentKey {
    fn from(key: PublicKey) -> AgentKey {
        let mut bytes = [0u8; 32];
        let raw = key.0.to_bytes();
        // An Ed25519 `PublicKey` (the only kind Mandate accepts) is 32 bytes.
        if raw.len() == 32 {
            bytes.copy_from_slice(&raw);
        }
        AgentKey(bytes)
    }
}

impl fmt::Display for AgentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ed25519/{}", hex::encode(self.0))
    }
}

impl fmt::Debug for AgentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentKey({self})")
    }
}

/// An Ed25519 secret key. `Debug` prints only the public half.
pub struct SecretKey(biscuit_auth::KeyPair);

impl SecretKey {
    /// Generates a fresh key from the operating system's randomness.
    pub fn generate() -> SecretKey {
        SecretKey(biscuit_auth::KeyPair::new())
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.public())
    }

    /// The key pair, for signing with biscuit-auth directly.
    pub fn key_pair(&self) -> &biscuit_auth::KeyPair {
        &self.0
    }

    /// Reads a key file written by [`SecretKey::write_new`]
    /// (`ed25519-private/<hex>`).
    ///
    /// Like ssh, refuses a key file that its group or others may read or
    /// write: a secret others can read is no longer a secret, and the refusal
    /// is how its owner finds out.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, [`Error::KeyPermissions`]
    /// when it is open to group or others, [`Error::InvalidKey`] when it does
    /// not hold an Ed25519 private key. The message never contains the file's
    /// contents.
    pub fn read(path: &Path) -> Result<SecretKey, Error> {
        let io = |source| Error::Io {
            action: "reading",
            path: path.into(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // The mode of the file that was opened, not of whatever the path
        // names a moment later.
        let metadata = file.metadata().map_err(io)?;
        let text =
            crate::text_file::read_bounded(file, crate::text_file::MAX_KEY_FILE).map_err(io)?;
        // A public key file given by mistake is named as such first; its
        // mode does not matter.
        let hex = text
            .trim()
            .strip_prefix("ed25519-private/")
            .ok_or_else(|| Error::InvalidKey {
                reason: format!(
                    "{} is not a private key file (expected `ed25519-private/<hex>`)",
                    path.display()
                ),
            })?;
        if let Some(mode) = permission_bits(&metadata).map(|mode| mode & 0o777) {
            if mode & 0o077 != 0 {
                return Err(Error::KeyPermissions {
                    path: path.into(),
                    mode,
                });
            }
        }
        let key =
            biscuit_auth::PrivateKey::from_bytes_hex(hex, Algorithm::Ed25519).map_err(|_| {
                Error::InvalidKey {
                    reason: format!(
                        "{} does not hold a valid Ed25519 private key",
                        path.display()
                    ),
                }
            })?;
        Ok(SecretKey(biscuit_auth::KeyPair::from(&key)))
    }

    /// Writes the key to `path` (mode 0600) and its public half to
    /// `path.pub`. Refuses to overwrite an existing file, so a key is never
    /// lost by a mistyped command.
    ///
    /// # Errors
    /// [`Error::Io`] when either file exists or cannot be written.
    pub fn write_new(&self, path: &Path) -> Result<(), Error> {
        let pub_path = public_key_path(path);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io {
                action: "writing",
                path,
                source,
            }
        };
        // `symlink_metadata`: a link there, even to nowhere, is a file there
        // (following it would create a file wherever it points).
        if std::fs::symlink_metadata(&pub_path).is_ok() {
            return Err(io(&pub_path)(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "file exists",
            )));
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(io(path))?;
        let secret = self.0.private().to_prefixed_string();
        file.write_all(secret.as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .map_err(io(path))?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&pub_path)
            .and_then(|mut file| file.write_all(format!("{}\n", self.public()).as_bytes()))
            .map_err(io(&pub_path))?;
        Ok(())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SecretKey(public: {}, secret: <redacted>)",
            self.public()
        )
    }
}

/// The path of the public key file that goes with a private key file.
pub fn public_key_path(path: &Path) -> std::path::PathBuf {
    let mut os = path.as_os_str().to_owned();
    os.push(".pub");
    os.into()
}

/// A root signing key with the key id written into every token it signs, so
/// verifiers can trust several roots during a rotation.
#[derive(Debug)]
pub struct RootKey {
    /// The secret key.
    pub secret: SecretKey,
    /// The id written into tokens (`None`: tokens carry no id).
    pub key_id: Option<u32>,
}

/// The root public keys a verifier trusts, by key id.
///
/// A token that names a key id is checked against the key with that id; a
/// token without an id is accepted only when exactly one key is trusted
/// without an id, or when the set holds a single key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: BTreeMap<Option<u32>, PublicKey>,
    /// When a key is trusted, for keys given with a window; a key without
    /// an entry here is trusted at any time.
    windows: BTreeMap<Option<u32>, Validity>,
}

/// When a root key is trusted: from `not_before` (less [`Validity::SKEW`],
/// for clocks a little behind the issuer's) until `not_after`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Validity {
    /// The first moment the key signs; `None`: since always.
    pub not_before: Option<SystemTime>,
    /// The last moment the key is trusted; `None`: until further notice.
    pub not_after: Option<SystemTime>,
}

impl Validity {
    /// How far before its `not_before` a key is already trusted.
    pub const SKEW: Duration = Duration::from_secs(60);

    /// Whether a key with this window is trusted at `at`.
    pub fn contains(&self, at: SystemTime) -> bool {
        let started = self
            .not_before
            .is_none_or(|from| at + Validity::SKEW >= from);
        let not_ended = self.not_after.is_none_or(|until| at <= until);
        started && not_ended
    }
}

impl KeySet {
    /// An empty set, which trusts nothing.
    pub fn new() -> KeySet {
        KeySet::default()
    }

    /// Trusts `key` for tokens naming `key_id`.
    pub fn insert(&mut self, key_id: Option<u32>, key: PublicKey) {
        self.keys.insert(key_id, key);
        self.windows.remove(&key_id);
    }

    /// Trusts `key` for tokens naming `key_id`, only within `validity`
    /// (checked by [`KeySet::choose_at`]).
    pub fn insert_valid(&mut self, key_id: Option<u32>, key: PublicKey, validity: Validity) {
        self.keys.insert(key_id, key);
        self.windows.insert(key_id, validity);
    }

    /// Every key with its id and window, in key id order.
    pub fn iter(&self) -> impl Iterator<Item = (Option<u32>, &PublicKey, Validity)> + '_ {
        self.keys.iter().map(|(id, key)| {
            let window = self.windows.get(id).copied().unwrap_or_default();
            (*id, key, window)
        })
    }

    /// A set holding one key, trusted for tokens with or without a key id.
    pub fn single(key: PublicKey) -> KeySet {
        let mut set = KeySet::new();
        set.insert(None, key);
        set
    }

    /// How many keys are trusted.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Parses a `--root-pub` argument: `ed25519/<hex>`, `ID=ed25519/<hex>`, or
    /// a path to a `.pub` file (optionally `ID=PATH`).
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for an unparseable key or id.
    pub fn add_arg(&mut self, arg: &str) -> Result<(), Error> {
        let (id, key) = match arg.split_once('=') {
            Some((id, key)) => {
                let id = id.trim().parse::<u32>().map_err(|_| Error::InvalidKey {
                    reason: format!("key id {} is not a non-negative integer", describe_arg(id)),
                })?;
                (Some(id), key)
            }
            None => (None, arg),
        };
        self.insert(id, PublicKey::from_arg(key)?);
        Ok(())
    }

    /// Reads a key-set file: a JSON object mapping key ids to public keys,
    /// e.g. `{"1": "ed25519/…", "2": "ed25519/…"}`.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::InvalidKey`].
    pub fn read_file(path: &Path) -> Result<KeySet, Error> {
        let text = crate::text_file::read_text_file(path, crate::text_file::MAX_TEXT_FILE)
            .map_err(|source| Error::Io {
                action: "reading",
                path: path.into(),
                source,
            })?;
        let map: BTreeMap<String, String> =
            serde_json::from_str(&text).map_err(|e| Error::InvalidKey {
                // Only the position: serde's message can quote the file's
                // text, and the file may be a private key given by mistake.
                reason: format!(
                    "{} is not a key-set file (a JSON object of id to key): \
                     error at line {}, column {}",
                    path.display(),
                    e.line(),
                    e.column()
                ),
            })?;
        let mut set = KeySet::new();
        for (id, key) in map {
            set.add_arg(&format!("{id}={key}"))?;
        }
        Ok(set)
    }

    fn trusted_ids(&self) -> String {
        let ids: Vec<String> = self
            .keys
            .keys()
            .map(|id| id.map_or_else(|| "none".to_string(), |id| id.to_string()))
            .collect();
        if ids.is_empty() {
            "(none)".into()
        } else {
            ids.join(", ")
        }
    }

    /// The key for a token naming `key_id`.
    ///
    /// # Errors
    /// [`Error::UnknownKeyId`] when no trusted key fits.
    pub fn choose(&self, key_id: Option<u32>) -> Result<&PublicKey, Error> {
        let unknown = || Error::UnknownKeyId {
            key_id: key_id.map_or_else(|| "none".to_string(), |id| id.to_string()),
            trusted: self.trusted_ids(),
        };
        if let Some(key) = self.keys.get(&key_id) {
            return Ok(key);
        }
        // A single key given without an id is the common one-root setup: it
        // is trusted whatever id the token names.
        match (self.keys.len(), self.keys.get(&None)) {
            (1, Some(key)) => Ok(key),
            _ => Err(unknown()),
        }
    }
}

impl KeySet {
    /// As [`KeySet::choose`], and the key must be trusted at `at`: a
    /// retired root (past its `not_after`) signs nothing any more.
    ///
    /// # Errors
    /// [`Error::UnknownKeyId`] when no trusted key fits,
    /// [`Error::InvalidSignature`] when the key is outside its window.
    pub fn choose_at(&self, key_id: Option<u32>, at: SystemTime) -> Result<&PublicKey, Error> {
        let key = self.choose(key_id)?;
        // `choose` may fall back to the one key given without an id.
        let window = self
            .windows
            .get(&key_id)
            .or_else(|| self.windows.get(&None).filter(|_| self.keys.len() == 1))
            .copied()
            .unwrap_or_default();
        if window.contains(at) {
            return Ok(key);
        }
        let id = key_id.map_or_else(|| "none".to_string(), |id| id.to_string());
        let when = match (window.not_after, window.not_before) {
            (Some(until), _) if at > until => {
                format!("it was retired at {}", crate::print::rfc3339(until))
            }
            (_, Some(from)) => format!("it signs only from {}", crate::print::rfc3339(from)),
            _ => "it is outside its validity".to_string(),
        };
        Err(Error::InvalidSignature {
            reason: format!("root key id {id} is not trusted at this time: {when}"),
        })
    }
}

/// Whether `text` holds private key material: Mandate's private key form
/// (`ed25519-private/...`, any case) or any other text naming a private key.
fn looks_private(text: &str) -> bool {
    text.to_ascii_lowercase().contains("private")
}

/// A key file's path, for an error message: shown unless it may be key
/// material given where a path belongs ([`may_be_key_material`]).
pub fn describe_path(path: &Path) -> String {
    let text = path.to_string_lossy();
    if may_be_key_material(path) {
        format!(
            "the path given ({} characters that may be key material, not shown)",
            text.chars().count()
        )
    } else {
        path.display().to_string()
    }
}

/// Whether a path given for a key file may itself be key material (a
/// private key's text, PEM included, or a long run of hex digits): such a
/// path is never printed, and no file is created under it.
pub fn may_be_key_material(path: &Path) -> bool {
    let text = path.to_string_lossy();
    looks_private(&text) || hides(&text)
}

/// A file's permission bits (`0o7777`), or `None` where the platform has
/// none: what key files and key folders are checked against.
pub fn permission_bits(metadata: &std::fs::Metadata) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        Some(metadata.permissions().mode() & 0o7777)
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        None
    }
}

/// Whether an argument reads as a private key: it says "private" (an
/// `ed25519-private/…` key file's text, a PEM `PRIVATE KEY`) or is nothing
/// but 32 or more hex digits (a bare secret). Narrower than
/// [`may_be_key_material`], which also holds for public keys and tokens.
pub fn looks_like_private_key(text: &str) -> bool {
    let bare = text.trim();
    looks_private(text) || (bare.len() >= 32 && bare.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether `text` holds a run of 16 or more hex digits: it may be a secret.
fn hides(text: &str) -> bool {
    let mut run = 0usize;
    text.chars().any(|ch| {
        run = if ch.is_ascii_hexdigit() { run + 1 } else { 0 };
        run >= 16
    })
}

/// An argument that is not a public key, for an error message: echoed only
/// when it cannot be key material (a mistyped path or flag), described by
/// its length otherwise. A run of 16 or more hex digits may be a secret
/// pasted in the wrong place, so it is never printed, not even in part.
fn describe_arg(text: &str) -> String {
    if hides(text) || text.chars().count() > 80 {
        format!(
            "{} characters of other text (not shown)",
            text.chars().count()
        )
    } else {
        format!("`{}`", crate::name::display_name(text))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn private_keys_are_told_from_public_keys_and_tokens() {
        let secret = SecretKey::generate();
        let bare = secret.0.private().to_bytes_hex();
        let file_text = format!("ed25519-private/{bare}");
        for private in [
            file_text.as_str(),
            bare.as_str(),
            "-----BEGIN PRIVATE KEY-----\nMC4C\n",
        ] {
            assert!(looks_like_private_key(private), "{private}");
        }
        let public = secret.public().to_string();
        for not_private in [
            public.as_str(),
            "1=ed25519/00ff",
            "CAESlwMKrAIKCXByaW5j",
            "deadbeef",
        ] {
            assert!(!looks_like_private_key(not_private), "{not_private}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = SecretKey::generate();
        let secret_hex = key.0.private().to_bytes_hex();
        let printed = format!("{key:?}");
        assert!(!printed.contains(&secret_hex));
        assert!(printed.contains("redacted"));
    }

    #[test]
    fn key_files_round_trip_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.key");
        let key = SecretKey::generate();
        key.write_new(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let back = SecretKey::read(&path).unwrap();
        assert_eq!(back.public(), key.public());
        let public = PublicKey::from_arg(public_key_path(&path).to_str().unwrap()).unwrap();
        assert_eq!(public, key.public());
        assert!(matches!(key.write_new(&path), Err(Error::Io { .. })));
    }

    #[test]
    fn key_errors_never_echo_key_material() {
        let key = SecretKey::generate();
        let secret_hex = key.0.private().to_bytes_hex();
        for arg in [
            key.0.private().to_prefixed_string(),
            secret_hex.clone(),
            format!("ed25519/{secret_hex}00"),
        ] {
            let message = arg.parse::<PublicKey>().unwrap_err().to_string();
            assert!(!message.contains(&secret_hex[..8]), "{message}");
        }
        // A mistyped path is still shown, so the person can see the typo.
        let message = "./root.pbu".parse::<PublicKey>().unwrap_err().to_string();
        assert!(message.contains("`./root.pbu`"), "{message}");
    }

    #[cfg(unix)]
    #[test]
    fn key_files_open_to_others_are_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        SecretKey::generate().write_new(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            SecretKey::read(&path),
            Err(Error::KeyPermissions { mode: 0o644, .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(SecretKey::read(&path).is_ok());
    }

    #[test]
    fn key_set_chooses_by_id() {
        let (a, b) = (
            SecretKey::generate().public(),
            SecretKey::generate().public(),
        );
        let mut set = KeySet::new();
        set.insert(Some(1), a);
        set.insert(Some(2), b);
        assert_eq!(set.choose(Some(2)).unwrap(), &b);
        assert!(matches!(
            set.choose(Some(3)),
            Err(Error::UnknownKeyId { .. })
        ));
        assert!(matches!(set.choose(None), Err(Error::UnknownKeyId { .. })));
        assert_eq!(KeySet::single(a).choose(Some(7)).unwrap(), &a);
    }

    #[test]
    fn a_key_is_trusted_only_within_its_window() {
        let key = SecretKey::generate().public();
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut set = KeySet::new();
        set.insert_valid(
            Some(1),
            key,
            Validity {
                not_before: Some(t),
                not_after: Some(t + Duration::from_secs(3600)),
            },
        );
        assert_eq!(set.choose_at(Some(1), t).unwrap(), &key);
        // A clock a little behind the issuer's still trusts a fresh key.
        assert!(set.choose_at(Some(1), t - Duration::from_secs(30)).is_ok());
        assert!(set
            .choose_at(Some(1), t - Duration::from_secs(600))
            .is_err());
        let retired = set
            .choose_at(Some(1), t + Duration::from_secs(3601))
            .unwrap_err()
            .to_string();
        assert!(retired.contains("retired"), "{retired}");
        // `choose` alone (signature checks) ignores the window.
        assert!(set.choose(Some(1)).is_ok());
    }
}
