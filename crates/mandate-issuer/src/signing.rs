//! [`SigningKeys`]: the root key the issuer signs with now, and every root it
//! still trusts — one fixed key, or a key folder ([`crate::keyring`]) that
//! `mandate keys rotate` changes while the issuer runs.
//!
//! A folder's manifest is looked at (one `stat`) whenever a key is needed and
//! reread when it changed, so a rotation takes effect on the next mandate
//! minted, without a restart; a manifest that cannot be reread leaves the
//! last good one in force (logged). Which key signs is decided by the time of
//! each call, so a key rotated in with a delay starts signing on time. The
//! trusted set is also kept in a [`SharedKeySet`], for verifiers in the same
//! process (operators' mandates, a mounted authorization API). Private keys
//! are read from their 0600 files once and never printed.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use mandate_core::{KeySet, Mandate, RootKey};
use mandate_verifier::SharedKeySet;

use crate::keyring::{signing_entry, trusted_entries, KeyDir, KeyEntry, KeyringError};
use crate::published::PublishedKeys;

/// What identifies one version of the manifest on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
    /// Permission bits and owners of the manifest and of its folder: a
    /// manifest refused for them is looked at again once they change.
    mode: u32,
    folder_mode: u32,
    owners: (u32, u32),
}

fn stamp(dir: &KeyDir) -> Option<Stamp> {
    let metadata = std::fs::metadata(dir.manifest_path()).ok()?;
    #[cfg(unix)]
    let (inode, mode, folder_mode, owners) = {
        use std::os::unix::fs::MetadataExt as _;
        let folder = std::fs::metadata(dir.path()).ok();
        (
            metadata.ino(),
            metadata.mode(),
            folder.as_ref().map_or(0, |m| m.mode()),
            (metadata.uid(), folder.map_or(u32::MAX, |m| m.uid())),
        )
    };
    #[cfg(not(unix))]
    let (inode, mode, folder_mode, owners) = (0, 0, 0, (0, 0));
    Some(Stamp {
        modified: metadata.modified().ok(),
        len: metadata.len(),
        inode,
        mode,
        folder_mode,
        owners,
    })
}

#[derive(Debug, Default)]
struct Loaded {
    stamp: Option<Stamp>,
    /// The manifest as it was when it last failed to load (`Some(None)`:
    /// missing), so a broken manifest is reported once, not on every use.
    failed: Option<Option<Stamp>>,
    entries: Vec<KeyEntry>,
    /// Every key of the manifest, with its window (for checking).
    all: KeySet,
    secrets: HashMap<u32, Arc<RootKey>>,
}

/// The issuer's root keys.
pub struct SigningKeys {
    dir: Option<KeyDir>,
    fixed: Option<Arc<RootKey>>,
    loaded: RwLock<Loaded>,
    shared: SharedKeySet,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key ids only: never a key.
        let ids: Vec<Option<u32>> = self.shared.get().iter().map(|(id, _, _)| id).collect();
        f.debug_struct("SigningKeys")
            .field("dir", &self.dir.as_ref().map(KeyDir::path))
            .field("trusted_ids", &ids)
            .finish_non_exhaustive()
    }
}

impl From<RootKey> for SigningKeys {
    fn from(root: RootKey) -> SigningKeys {
        SigningKeys::fixed(root)
    }
}

impl SigningKeys {
    /// One root key, for the life of the process.
    pub fn fixed(root: RootKey) -> SigningKeys {
        let mut set = KeySet::new();
        set.insert(root.key_id, root.secret.public());
        SigningKeys {
            dir: None,
            fixed: Some(Arc::new(root)),
            loaded: RwLock::new(Loaded {
                all: set.clone(),
                ..Loaded::default()
            }),
            shared: SharedKeySet::new(set),
        }
    }

    /// The keys of a folder, reread when its manifest changes.
    ///
    /// # Errors
    /// [`KeyringError`] when the manifest cannot be read or no key may sign
    /// now (a folder no rotation ever filled).
    pub fn from_dir(dir: KeyDir, now: SystemTime) -> Result<SigningKeys, KeyringError> {
        let keys = SigningKeys {
            dir: Some(dir),
            fixed: None,
            loaded: RwLock::new(Loaded::default()),
            shared: SharedKeySet::empty(),
        };
        keys.reload()?;
        keys.signer(now)?;
        Ok(keys)
    }

    /// The trusted set, kept current for verifiers in this process.
    pub fn shared(&self) -> SharedKeySet {
        self.shared.clone()
    }

    /// Brings [`SigningKeys::shared`] up to date with the folder at `now`: a
    /// server calls it now and then, so verifiers in the process learn of a
    /// rotation or retirement even while nothing is minted.
    pub fn refresh_trusted(&self, now: SystemTime) {
        self.refresh();
        self.publish_trusted(now);
    }

    /// Rereads the manifest when it changed on disk.
    fn refresh(&self) {
        let Some(dir) = &self.dir else { return };
        let now = stamp(dir);
        let unchanged = self
            .loaded
            .read()
            .map(|loaded| {
                (loaded.stamp.is_some() && loaded.stamp == now)
                    || loaded.failed.as_ref() == Some(&now)
            })
            .unwrap_or(false);
        if unchanged {
            return;
        }
        if let Err(error) = self.reload() {
            tracing::error!(dir = %dir.path().display(), %error, "rereading the root key manifest failed; keeping the keys loaded before");
            if let Ok(mut loaded) = self.loaded.write() {
                loaded.failed = Some(now);
            }
        }
    }

    fn reload(&self) -> Result<(), KeyringError> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let before = stamp(dir);
        let entries = dir.entries_in_use()?;
        let mut all = KeySet::new();
        for entry in &entries {
            all.insert_valid(Some(entry.kid), entry.public()?, entry.validity());
        }
        let mut loaded = self
            .loaded
            .write()
            .map_err(|_| KeyringError::NoActiveKey(dir.path().into()))?;
        // Keep private keys already read only for ids still listed.
        loaded
            .secrets
            .retain(|kid, _| entries.iter().any(|e| e.kid == *kid));
        loaded.stamp = before;
        loaded.failed = None;
        loaded.entries = entries;
        loaded.all = all;
        drop(loaded);
        self.publish_trusted(SystemTime::now());
        tracing::info!(dir = %dir.path().display(), "root key manifest loaded");
        Ok(())
    }

    /// Updates [`SigningKeys::shared`] with the keys trusted at `now`.
    fn publish_trusted(&self, now: SystemTime) {
        if self.dir.is_none() {
            return;
        }
        let trusted = self.trusted(now);
        if *self.shared.get() != trusted {
            self.shared.replace(trusted);
        }
    }

    /// The key to sign with at `now`.
    ///
    /// # Errors
    /// [`KeyringError::NoActiveKey`] when every key is retired or none has
    /// started; [`KeyringError::Key`] when its file cannot be read.
    pub fn signer(&self, now: SystemTime) -> Result<Arc<RootKey>, KeyringError> {
        if let Some(root) = &self.fixed {
            return Ok(Arc::clone(root));
        }
        let Some(dir) = &self.dir else {
            return Err(KeyringError::NoActiveKey(Default::default()));
        };
        self.refresh();
        let no_key = || KeyringError::NoActiveKey(dir.path().into());
        let (kid, listed) = {
            let loaded = self.loaded.read().map_err(|_| no_key())?;
            let entry = signing_entry(&loaded.entries, now).ok_or_else(no_key)?;
            if let Some(root) = loaded.secrets.get(&entry.kid) {
                return Ok(Arc::clone(root));
            }
            (entry.kid, entry.public()?)
        };
        let secret = dir.secret(kid)?;
        // A key file swapped under the manifest must not sign: verifiers
        // would refuse what it signs, or trust what they should not.
        if secret.public() != listed {
            return Err(KeyringError::Mismatch {
                path: dir.key_path(kid),
                kid,
            });
        }
        let root = Arc::new(RootKey {
            secret,
            key_id: Some(kid),
        });
        if let Ok(mut loaded) = self.loaded.write() {
            loaded.secrets.insert(kid, Arc::clone(&root));
        }
        Ok(root)
    }

    /// Every root trusted at `now`, each within its window.
    pub fn trusted(&self, now: SystemTime) -> KeySet {
        let Ok(loaded) = self.loaded.read() else {
            return KeySet::new();
        };
        if self.dir.is_none() {
            return loaded.all.clone();
        }
        let mut set = KeySet::new();
        for entry in trusted_entries(&loaded.entries, now) {
            if let Ok(public) = entry.public() {
                set.insert_valid(Some(entry.kid), public, entry.validity());
            }
        }
        set
    }

    /// The document `GET /.well-known/mandate-keys` serves at `now`.
    pub fn published(&self, now: SystemTime) -> PublishedKeys {
        self.refresh();
        self.publish_trusted(now);
        PublishedKeys::from_key_set(&self.trusted(now))
    }

    /// Verifies `token` under a root this issuer trusts at `now`.
    ///
    /// # Errors
    /// The token is malformed, not signed by one of these roots, or signed
    /// by a root retired before `now`.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Mandate, mandate_core::Error> {
        self.refresh();
        let all = match self.loaded.read() {
            Ok(loaded) => loaded.all.clone(),
            Err(_) => KeySet::new(),
        };
        let mandate = Mandate::from_base64(token, &all)?;
        all.choose_at(mandate.root_key_id(), now)?;
        Ok(mandate)
    }
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::PermissionsExt as _;
    use std::time::Duration;

    use mandate_core::SecretKey;

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn trusted_ids(keys: &SigningKeys) -> Vec<Option<u32>> {
        keys.shared().get().iter().map(|(id, _, _)| id).collect()
    }

    fn chmod(path: &std::path::Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_manifest_gone_missing_or_writable_by_others_leaves_the_last_good_keys() {
        let folder = tempfile::tempdir().unwrap();
        let dir = KeyDir::new(folder.path().join("keys"));
        let now = SystemTime::now();
        dir.rotate(now - HOUR, Duration::ZERO, HOUR).unwrap();
        let keys = SigningKeys::from_dir(dir.clone(), now).unwrap();
        assert_eq!(trusted_ids(&keys), [Some(1)]);

        // Renamed away for a moment: not "no keys at all".
        let moved = folder.path().join("keys.json.moved");
        std::fs::rename(dir.manifest_path(), &moved).unwrap();
        keys.refresh_trusted(now);
        assert_eq!(trusted_ids(&keys), [Some(1)]);
        assert_eq!(keys.signer(now).unwrap().key_id, Some(1));
        std::fs::rename(&moved, dir.manifest_path()).unwrap();

        // A key added to a manifest others may write is not taken...
        dir.rotate(now, Duration::ZERO, HOUR).unwrap();
        chmod(&dir.manifest_path(), 0o666);
        keys.refresh_trusted(now);
        assert_eq!(trusted_ids(&keys), [Some(1)]);
        assert_eq!(keys.signer(now).unwrap().key_id, Some(1));
        // ...until only its owner may write it again.
        chmod(&dir.manifest_path(), 0o644);
        keys.refresh_trusted(now);
        assert_eq!(keys.signer(now).unwrap().key_id, Some(2));

        // A manifest changed in a folder others may write is not taken, and
        // is taken once the folder is fixed, the manifest untouched.
        dir.rotate(now, Duration::ZERO, HOUR).unwrap();
        chmod(dir.path(), 0o777);
        keys.refresh_trusted(now);
        assert_eq!(keys.signer(now).unwrap().key_id, Some(2));
        assert!(
            matches!(
                dir.rotate(now, Duration::ZERO, HOUR),
                Err(KeyringError::Writable { .. })
            ),
            "rotating into a folder others may write"
        );
        chmod(dir.path(), 0o700);
        keys.refresh_trusted(now);
        assert_eq!(keys.signer(now).unwrap().key_id, Some(3));

        // A folder others may write is refused at start.
        chmod(dir.path(), 0o770);
        let refused = SigningKeys::from_dir(dir.clone(), now).unwrap_err();
        assert!(
            matches!(refused, KeyringError::Writable { .. }),
            "{refused}"
        );
        assert!(refused.to_string().contains("chmod go-w"), "{refused}");
    }

    #[test]
    fn a_key_folder_another_user_owns_chooses_no_root() {
        if rustix::process::geteuid().as_raw() != 0 {
            eprintln!("skipped: giving a folder to another user needs root");
            return;
        }
        let nobody = 65_534;
        let folder = tempfile::tempdir().unwrap();
        let dir = KeyDir::new(folder.path().join("keys"));
        let now = SystemTime::now();
        dir.rotate(now - HOUR, Duration::ZERO, HOUR).unwrap();
        let keys = SigningKeys::from_dir(dir.clone(), now).unwrap();

        // A manifest another user owns is not taken while running...
        dir.rotate(now, Duration::ZERO, HOUR).unwrap();
        std::os::unix::fs::chown(dir.manifest_path(), Some(nobody), None).unwrap();
        keys.refresh_trusted(now);
        assert_eq!(keys.signer(now).unwrap().key_id, Some(1));
        // ...and is once it is ours again.
        std::os::unix::fs::chown(dir.manifest_path(), Some(0), None).unwrap();
        keys.refresh_trusted(now);
        assert_eq!(keys.signer(now).unwrap().key_id, Some(2));

        // A folder another user owns is refused at start, and named.
        std::os::unix::fs::chown(dir.path(), Some(nobody), None).unwrap();
        let refused = SigningKeys::from_dir(dir.clone(), now).unwrap_err();
        assert!(
            matches!(refused, KeyringError::Owner { uid, .. } if uid == nobody),
            "{refused}"
        );
        assert!(refused.to_string().contains("chown"), "{refused}");
    }

    #[test]
    fn a_key_file_that_is_not_the_manifests_key_never_signs() {
        let folder = tempfile::tempdir().unwrap();
        let dir = KeyDir::new(folder.path().join("keys"));
        let now = SystemTime::now();
        dir.rotate(now - HOUR, Duration::ZERO, HOUR).unwrap();
        std::fs::remove_file(dir.key_path(1)).unwrap();
        std::fs::remove_file(dir.key_path(1).with_extension("key.pub")).unwrap();
        SecretKey::generate().write_new(&dir.key_path(1)).unwrap();
        let refused = SigningKeys::from_dir(dir, now).unwrap_err();
        assert!(
            matches!(refused, KeyringError::Mismatch { kid: 1, .. }),
            "{refused}"
        );
    }
}
