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
}

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    let metadata = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&metadata);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp {
        modified: metadata.modified().ok(),
        len: metadata.len(),
        inode,
    })
}

#[derive(Debug, Default)]
struct Loaded {
    stamp: Option<Stamp>,
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
        let now = stamp(&dir.manifest_path());
        let unchanged = self
            .loaded
            .read()
            .map(|loaded| loaded.stamp.is_some() && loaded.stamp == now)
            .unwrap_or(false);
        if unchanged {
            return;
        }
        if let Err(error) = self.reload() {
            tracing::warn!(dir = %dir.path().display(), %error, "rereading the root key manifest failed; keeping the keys loaded before");
        }
    }

    fn reload(&self) -> Result<(), KeyringError> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let before = stamp(&dir.manifest_path());
        let entries = dir.entries()?;
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
        let kid = {
            let loaded = self.loaded.read().map_err(|_| no_key())?;
            let kid = signing_entry(&loaded.entries, now).ok_or_else(no_key)?.kid;
            if let Some(root) = loaded.secrets.get(&kid) {
                return Ok(Arc::clone(root));
            }
            kid
        };
        let root = Arc::new(RootKey {
            secret: dir.secret(kid)?,
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
