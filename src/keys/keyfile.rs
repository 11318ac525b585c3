//! A key provider over a key file that a running process re-reads when it changes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use crate::KeyVersion;
use crate::crypto::Context;
use crate::keys::{KeyError, KeyInfo, KeyProvider, Keyring};
use crate::secret::SecretBytes;

/// What identifies one state of the file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64),
}

impl Stamp {
    fn of(path: &Path) -> Result<Self, KeyError> {
        let meta = std::fs::metadata(path).map_err(|source| KeyError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            len: meta.len(),
            modified: meta.modified().ok(),
            #[cfg(unix)]
            inode: {
                use std::os::unix::fs::MetadataExt as _;
                (meta.dev(), meta.ino())
            },
        })
    }
}

/// A [`KeyProvider`] over a key file (see [`file`](mod@crate::keys::file)): the keyring is
/// loaded when opened and loaded again by [`reload`](KeyProvider::reload) when the file has
/// changed on disk (size, modification time or inode: `credvault key rotate` replaces it
/// atomically). The vault calls `reload` when it meets a key version it does not have and on
/// its periodic key check, so a fleet picks up a rotated key file without restarts.
///
/// A file that cannot be read or parsed on reload leaves the keys in use as they were and
/// reports the error. `Debug` shows the path and the versions, never key bytes.
///
/// ```
/// use credvault::keys::{KeyFile, KeyProvider, Keyring};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("keys.json");
/// let mut ring = Keyring::generate()?;
/// ring.save(&path)?;
/// let provider = KeyFile::open(&path)?;
/// assert_eq!(provider.primary_version().get(), 1);
///
/// ring.rotate()?; // another process rotates the file
/// ring.save(&path)?;
/// assert!(provider.reload()?);
/// assert_eq!(provider.primary_version().get(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct KeyFile {
    path: PathBuf,
    state: RwLock<(Arc<Keyring>, Stamp)>,
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFile")
            .field("path", &self.path)
            .field("keyring", &self.keyring())
            .finish()
    }
}

impl KeyFile {
    /// Loads the key file at `path`, which must exist (nothing is ever created here).
    ///
    /// # Errors
    ///
    /// As [`Keyring::load`].
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, KeyError> {
        let path = path.into();
        let stamp = Stamp::of(&path)?;
        let ring = Keyring::load(&path)?;
        Ok(Self {
            path,
            state: RwLock::new((Arc::new(ring), stamp)),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The keyring as last loaded.
    pub fn keyring(&self) -> Arc<Keyring> {
        match self.state.read() {
            Ok(state) => Arc::clone(&state.0),
            Err(poisoned) => Arc::clone(&poisoned.into_inner().0),
        }
    }

    fn stamp(&self) -> Option<Stamp> {
        self.state.read().ok().map(|s| s.1.clone())
    }
}

impl KeyProvider for KeyFile {
    fn primary_version(&self) -> KeyVersion {
        self.keyring().primary_version()
    }

    fn wrap_key(&self, key: &SecretBytes, context: &Context) -> Result<Vec<u8>, KeyError> {
        self.keyring().wrap_key(key, context)
    }

    fn unwrap_key(&self, wrapped: &[u8], context: &Context) -> Result<SecretBytes, KeyError> {
        self.keyring().unwrap_key(wrapped, context)
    }

    fn key_infos(&self) -> Vec<KeyInfo> {
        self.keyring().infos().collect()
    }

    fn fingerprint(&self, version: KeyVersion) -> Result<Option<String>, KeyError> {
        Ok(Keyring::fingerprint(&self.keyring(), version))
    }

    fn reload(&self) -> Result<bool, KeyError> {
        let stamp = Stamp::of(&self.path)?;
        if self.stamp().as_ref() == Some(&stamp) {
            return Ok(false);
        }
        let ring = Keyring::load(&self.path)?;
        tracing::info!(
            path = %self.path.display(),
            primary = %ring.primary_version(),
            "key file changed on disk: reloaded"
        );
        if let Ok(mut state) = self.state.write() {
            *state = (Arc::new(ring), stamp);
        }
        Ok(true)
    }

    fn describe(&self) -> String {
        format!("key file {}", self.path.display())
    }
}
