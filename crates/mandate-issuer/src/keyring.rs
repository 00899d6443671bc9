//! The issuer's root keys in one folder, so they can be rotated: each key
//! id's private key in its own 0600 file (`root-<kid>.key`, its public half
//! in `root-<kid>.key.pub`) and a manifest, `keys.json`, of ids, public keys
//! and validity windows.
//!
//! [`KeyDir::rotate`] adds a key id; the issuer signs with the newest key
//! whose `not_before` has come ([`signing_entry`]), and every key not past
//! its `not_after` stays trusted and published ([`trusted_entries`]), so
//! mandates signed before a rotation keep verifying until the older key's
//! overlap ends. Listing reads the manifest only: nothing here prints or logs
//! a private key. The manifest is replaced atomically (written beside it,
//! then renamed); a key file is never overwritten, so two rotations racing
//! for one id leave one of them failing, not a lost key.
//!
//! [`KeyDir::prune`] removes keys whose trust has ended (past `not_after`,
//! so no longer published): first from the manifest, then their files.
//! The newest key id and the key signing now are never removed, so key ids
//! are never reused.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mandate_core::{PublicKey, SecretKey, Validity};
use serde::{Deserialize, Serialize};

/// The manifest's file name inside the key folder.
pub const MANIFEST: &str = "keys.json";

/// The most keys a manifest may hold (retired ones included).
pub const MAX_KEYS: usize = 256;

/// Why the key folder cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// A file could not be read or written.
    #[error("{action} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The manifest is not one this module wrote.
    #[error("{}: {message}", .path.display())]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong (never the file's text).
        message: String,
    },
    /// A key file (its message never holds key material).
    #[error(transparent)]
    Key(#[from] mandate_core::Error),
    /// No key with this id in the manifest.
    #[error("no root key with id {0} in the key folder")]
    UnknownKid(u32),
    /// No key may sign now.
    #[error("no root key in {} may sign now (run `mandate keys rotate --dir {}`)", .0.display(), .0.display())]
    NoActiveKey(PathBuf),
    /// The folder or its manifest may be written by group or others, who
    /// could then choose the root keys everything trusts.
    #[error(
        "{} may be written by group or others (mode {mode:o}): whoever can write it chooses \
         the root keys this issuer trusts and publishes; run `chmod go-w` on it",
        .path.display()
    )]
    Writable {
        /// The folder or the manifest.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The folder or its manifest belongs to another user than the one
    /// this process runs as (or root), who could then choose the root keys.
    #[error(
        "{} belongs to user {uid}, neither this process's user nor root: its owner chooses \
         the root keys this issuer trusts and publishes; run `chown` on it",
        .path.display()
    )]
    Owner {
        /// The folder or the manifest.
        path: PathBuf,
        /// Its owner's user id.
        uid: u32,
    },
    /// A private key file is not the key the manifest lists for its id.
    #[error("{}: not the key the manifest lists for key id {kid}", .path.display())]
    Mismatch {
        /// The private key file.
        path: PathBuf,
        /// Its key id.
        kid: u32,
    },
}

/// One key of the folder, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// The key id written into every mandate it signs.
    pub kid: u32,
    /// The public key, `ed25519/<hex>`.
    pub public_key: String,
    /// When it was made.
    #[serde(with = "humantime_serde")]
    pub created: SystemTime,
    /// From when the issuer signs with it (verifiers learn it before).
    #[serde(with = "humantime_serde")]
    pub not_before: SystemTime,
    /// Until when it is trusted; unset while it is the newest key.
    #[serde(
        with = "humantime_serde",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub not_after: Option<SystemTime>,
}

impl KeyEntry {
    /// Its validity window.
    pub fn validity(&self) -> Validity {
        Validity {
            not_before: Some(self.not_before),
            not_after: self.not_after,
        }
    }

    /// Whether it is trusted at `now` (not retired; possibly not signing yet).
    pub fn is_trusted(&self, now: SystemTime) -> bool {
        self.not_after.is_none_or(|until| now <= until)
    }

    /// Its public key, parsed.
    ///
    /// # Errors
    /// A manifest whose key does not parse.
    pub fn public(&self) -> Result<PublicKey, mandate_core::Error> {
        self.public_key.parse()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    keys: Vec<KeyEntry>,
}

/// The key that signs at `now`: the one with the latest `not_before` that has
/// come, among those not retired.
pub fn signing_entry(entries: &[KeyEntry], now: SystemTime) -> Option<&KeyEntry> {
    entries
        .iter()
        .filter(|e| e.not_before <= now && e.is_trusted(now))
        .max_by_key(|e| (e.not_before, e.kid))
}

/// The keys trusted at `now`: signing, about to sign, or in their overlap.
pub fn trusted_entries(entries: &[KeyEntry], now: SystemTime) -> impl Iterator<Item = &KeyEntry> {
    entries.iter().filter(move |e| e.is_trusted(now))
}

/// Whole seconds: the manifest and the published set speak in seconds.
fn seconds(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// A key folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDir {
    dir: PathBuf,
}

impl KeyDir {
    /// The folder at `dir` (nothing is read yet).
    pub fn new(dir: impl Into<PathBuf>) -> KeyDir {
        KeyDir { dir: dir.into() }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The manifest's path.
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(MANIFEST)
    }

    /// The private key file of `kid` (its public half is beside it, `.pub`).
    pub fn key_path(&self, kid: u32) -> PathBuf {
        self.dir.join(format!("root-{kid}.key"))
    }

    /// The manifest's entries; none when the folder has no manifest yet.
    ///
    /// # Errors
    /// [`KeyringError::Io`] or [`KeyringError::Manifest`].
    pub fn entries(&self) -> Result<Vec<KeyEntry>, KeyringError> {
        let path = self.manifest_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(KeyringError::Io {
                    action: "reading",
                    path,
                    source,
                })
            }
        };
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| KeyringError::Manifest {
                path: path.clone(),
                message: format!(
                    "not a key manifest: error at line {}, column {}",
                    e.line(),
                    e.column()
                ),
            })?;
        if manifest.keys.len() > MAX_KEYS {
            return Err(KeyringError::Manifest {
                path,
                message: format!("more than {MAX_KEYS} keys"),
            });
        }
        let mut seen = std::collections::BTreeSet::new();
        for entry in &manifest.keys {
            if !seen.insert(entry.kid) {
                return Err(KeyringError::Manifest {
                    path,
                    message: format!("key id {} is listed twice", entry.kid),
                });
            }
            entry.public()?;
        }
        Ok(manifest.keys)
    }

    /// The entries of a folder in use by an issuer: as [`KeyDir::entries`],
    /// but the manifest must exist (a folder whose manifest went missing is
    /// not a folder without keys), and neither the folder nor the manifest
    /// may be writable by group or others — as ssh refuses such files.
    ///
    /// # Errors
    /// [`KeyringError::Writable`], and those of [`KeyDir::entries`]; a
    /// missing manifest is [`KeyringError::Io`].
    pub fn entries_in_use(&self) -> Result<Vec<KeyEntry>, KeyringError> {
        refuse_writable(&self.dir)?;
        refuse_writable(&self.manifest_path())?;
        self.entries()
    }

    /// As [`KeyDir::entries`], for a change: the folder (and the manifest,
    /// once there is one) must not be writable by group or others, or the
    /// change would go into a manifest no issuer takes.
    fn entries_to_change(&self) -> Result<Vec<KeyEntry>, KeyringError> {
        refuse_writable(&self.dir)?;
        match refuse_writable(&self.manifest_path()) {
            Err(KeyringError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            other => other?,
        }
        self.entries()
    }

    /// Adds a key id: a fresh key written 0600, signing from `now +
    /// activate_in`; every key still without an end is trusted until
    /// `overlap` after that, so what it signed keeps verifying meanwhile.
    /// Creates the folder (0700) if missing.
    ///
    /// # Errors
    /// [`KeyringError`]; on error the manifest is unchanged.
    pub fn rotate(
        &self,
        now: SystemTime,
        activate_in: Duration,
        overlap: Duration,
    ) -> Result<KeyEntry, KeyringError> {
        self.create_dir()?;
        let mut entries = self.entries_to_change()?;
        if entries.len() >= MAX_KEYS {
            return Err(KeyringError::Manifest {
                path: self.manifest_path(),
                message: format!(
                    "already {MAX_KEYS} keys; remove retired ones first (`mandate keys prune`)"
                ),
            });
        }
        let kid = entries
            .iter()
            .map(|e| e.kid)
            .max()
            .map_or(1, |k| k.saturating_add(1));
        let secret = SecretKey::generate();
        secret.write_new(&self.key_path(kid))?;
        let now = seconds(now);
        let not_before = now + activate_in;
        let retire_at = not_before + overlap;
        for entry in &mut entries {
            if entry.not_after.is_none() {
                entry.not_after = Some(retire_at);
            }
        }
        let entry = KeyEntry {
            kid,
            public_key: secret.public().to_string(),
            created: now,
            not_before,
            not_after: None,
        };
        entries.push(entry.clone());
        self.write(&entries)?;
        Ok(entry)
    }

    /// Ends the trust in `kid` at `at` (or earlier, if it already ended
    /// earlier): a key suspected of leaking is retired at once.
    ///
    /// # Errors
    /// [`KeyringError::UnknownKid`], or a manifest that cannot be written.
    pub fn retire(&self, kid: u32, at: SystemTime) -> Result<KeyEntry, KeyringError> {
        let mut entries = self.entries_to_change()?;
        let at = seconds(at);
        let entry = entries
            .iter_mut()
            .find(|e| e.kid == kid)
            .ok_or(KeyringError::UnknownKid(kid))?;
        entry.not_after = Some(entry.not_after.map_or(at, |until| until.min(at)));
        let retired = entry.clone();
        self.write(&entries)?;
        Ok(retired)
    }

    /// Removes every key retired at `now` (trust ended: past `not_after`)
    /// except the newest key id and the one signing: the manifest is
    /// rewritten without them (atomically), then their key files are
    /// deleted. Key files of ids older than the newest that the manifest no
    /// longer lists (left by an interrupted prune) are deleted too. Returns
    /// the entries removed from the manifest.
    ///
    /// # Errors
    /// [`KeyringError`]; when the manifest cannot be written, nothing is
    /// removed.
    pub fn prune(&self, now: SystemTime) -> Result<Vec<KeyEntry>, KeyringError> {
        let entries = self.entries_to_change()?;
        let Some(newest) = entries.iter().map(|e| e.kid).max() else {
            return Ok(Vec::new());
        };
        let signing = signing_entry(&entries, now).map(|e| e.kid);
        let (gone, kept): (Vec<KeyEntry>, Vec<KeyEntry>) = entries
            .into_iter()
            .partition(|e| !e.is_trusted(now) && e.kid != newest && Some(e.kid) != signing);
        if !gone.is_empty() {
            self.write(&kept)?;
        }
        // The manifest no longer names them: their files are unreachable.
        let listed: std::collections::BTreeSet<u32> = kept.iter().map(|e| e.kid).collect();
        for kid in self.key_file_ids()? {
            if kid < newest && !listed.contains(&kid) {
                let key = self.key_path(kid);
                remove_if_present(&mandate_core::keys::public_key_path(&key))?;
                remove_if_present(&key)?;
            }
        }
        Ok(gone)
    }

    /// The ids of the `root-<kid>.key` files in the folder.
    fn key_file_ids(&self) -> Result<Vec<u32>, KeyringError> {
        let listing = std::fs::read_dir(&self.dir).map_err(|source| KeyringError::Io {
            action: "listing",
            path: self.dir.clone(),
            source,
        })?;
        let mut ids = Vec::new();
        for item in listing {
            let item = item.map_err(|source| KeyringError::Io {
                action: "listing",
                path: self.dir.clone(),
                source,
            })?;
            let name = item.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(kid) = name
                .strip_prefix("root-")
                .and_then(|rest| rest.strip_suffix(".key"))
                .and_then(|kid| kid.parse::<u32>().ok())
            else {
                continue;
            };
            ids.push(kid);
        }
        Ok(ids)
    }

    /// The private key of `kid` (read 0600-checked, like every key file).
    ///
    /// # Errors
    /// [`KeyringError::Key`].
    pub fn secret(&self, kid: u32) -> Result<SecretKey, KeyringError> {
        Ok(SecretKey::read(&self.key_path(kid))?)
    }

    fn create_dir(&self) -> Result<(), KeyringError> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt as _;
            builder.mode(0o700);
        }
        builder
            .create(&self.dir)
            .map_err(|source| KeyringError::Io {
                action: "creating",
                path: self.dir.clone(),
                source,
            })
    }

    fn write(&self, entries: &[KeyEntry]) -> Result<(), KeyringError> {
        let path = self.manifest_path();
        let io = |action, source| KeyringError::Io {
            action,
            path: path.clone(),
            source,
        };
        let manifest = Manifest {
            keys: entries.to_vec(),
        };
        let text = serde_json::to_string_pretty(&manifest).map_err(|e| KeyringError::Manifest {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let temporary = self
            .dir
            .join(format!(".{MANIFEST}.{}", uuid::Uuid::new_v4()));
        write_manifest_file(&temporary, format!("{text}\n").as_bytes())
            .map_err(|e| io("writing", e))?;
        std::fs::rename(&temporary, &path).map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            io("replacing", e)
        })
    }
}

/// Refuses `path` when group or others may write it
/// ([`KeyringError::Writable`]) or another user than this process's, or
/// root, owns it ([`KeyringError::Owner`]), as `sshd` does with its keys.
fn refuse_writable(path: &Path) -> Result<(), KeyringError> {
    let metadata = std::fs::metadata(path).map_err(|source| KeyringError::Io {
        action: "reading",
        path: path.to_owned(),
        source,
    })?;
    if let Some(mode) = mandate_core::keys::permission_bits(&metadata) {
        if mode & 0o022 != 0 {
            return Err(KeyringError::Writable {
                path: path.to_owned(),
                mode,
            });
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let uid = metadata.uid();
        if uid != 0 && uid != rustix::process::geteuid().as_raw() {
            return Err(KeyringError::Owner {
                path: path.to_owned(),
                uid,
            });
        }
    }
    Ok(())
}

/// Writes a new manifest file: readable by all, writable by its owner only
/// (whatever the umask allows beyond that), as [`KeyDir::entries_in_use`]
/// requires.
fn write_manifest_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o644);
    options.open(path)?.write_all(bytes)
}

fn remove_if_present(path: &Path) -> Result<(), KeyringError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(KeyringError::Io {
            action: "removing",
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rotation_adds_ids_and_sets_the_overlap_of_older_keys() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyDir::new(dir.path().join("keys"));
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let first = keys
            .rotate(t0, Duration::ZERO, Duration::from_secs(60))
            .unwrap();
        assert_eq!(first.kid, 1);
        let t1 = t0 + Duration::from_secs(100);
        let second = keys
            .rotate(t1, Duration::from_secs(10), Duration::from_secs(3600))
            .unwrap();
        assert_eq!(second.kid, 2);
        let entries = keys.entries().unwrap();
        assert_eq!(
            entries[0].not_after,
            Some(t1 + Duration::from_secs(10 + 3600))
        );
        // Until the new key's not_before, the old one still signs.
        assert_eq!(signing_entry(&entries, t1).unwrap().kid, 1);
        assert_eq!(
            signing_entry(&entries, t1 + Duration::from_secs(10))
                .unwrap()
                .kid,
            2
        );
        assert_eq!(trusted_entries(&entries, t1).count(), 2);
        let retired = keys.retire(1, t1).unwrap();
        assert_eq!(retired.not_after, Some(t1));
        let entries = keys.entries().unwrap();
        assert_eq!(
            trusted_entries(&entries, t1 + Duration::from_secs(1)).count(),
            1
        );
        assert!(matches!(
            keys.retire(9, t1),
            Err(KeyringError::UnknownKid(9))
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(keys.key_path(2))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let manifest = std::fs::read_to_string(keys.manifest_path()).unwrap();
        assert!(!manifest.contains("private"), "{manifest}");
    }

    #[test]
    fn pruning_removes_only_keys_past_their_overlap_never_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyDir::new(dir.path().join("keys"));
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hour = Duration::from_secs(3600);
        keys.rotate(t0, Duration::ZERO, hour).unwrap();
        keys.rotate(t0 + hour, Duration::ZERO, hour).unwrap();
        keys.rotate(t0 + 2 * hour, Duration::ZERO, hour).unwrap();
        // kid 1 retired at t0 + 2h, kid 2 at t0 + 3h; kid 3 signs.
        let at = t0 + 2 * hour + Duration::from_secs(1);
        let pruned = keys.prune(at).unwrap();
        assert_eq!(pruned.iter().map(|e| e.kid).collect::<Vec<_>>(), [1]);
        assert!(!keys.key_path(1).exists());
        assert!(!mandate_core::keys::public_key_path(&keys.key_path(1)).exists());
        assert!(keys.key_path(2).exists(), "kid 2 is in its overlap");
        let entries = keys.entries().unwrap();
        assert_eq!(entries.iter().map(|e| e.kid).collect::<Vec<_>>(), [2, 3]);
        assert!(keys.prune(at).unwrap().is_empty());

        // The newest key, even retired at once, stays: ids are never reused.
        let later = t0 + 4 * hour;
        keys.retire(3, later).unwrap();
        let pruned = keys.prune(later + Duration::from_secs(1)).unwrap();
        assert_eq!(pruned.iter().map(|e| e.kid).collect::<Vec<_>>(), [2]);
        assert!(keys.key_path(3).exists());
        let next = keys.rotate(later, Duration::ZERO, hour).unwrap();
        assert_eq!(next.kid, 4);

        // A key file the manifest no longer lists (an interrupted prune) goes too.
        SecretKey::generate().write_new(&keys.key_path(2)).unwrap();
        keys.prune(later).unwrap();
        assert!(!keys.key_path(2).exists());
    }
}
