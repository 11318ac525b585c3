//! Per-tenant shred secrets, kept outside the database.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::TenantId;
use crate::fsutil::{Replace, create_private_dir, sync_dir, write_atomically};
use crate::keys::KeyError;
use crate::secret::SecretBytes;

/// Length of a shred secret.
pub const SHRED_SECRET_LEN: usize = 32;

/// Where the per-tenant shred secrets live: somewhere that is *not* in the database's backups.
///
/// The record key of a tenant is derived from its wrapped DEK (in the database) and its shred
/// secret (here). Destroying the shred secret makes every copy of the tenant's records
/// unreadable. Implement it over a KMS or HSM for production fleets; [`DirTenantKeys`] keeps
/// one file per tenant in a directory, [`MemoryTenantKeys`] keeps them in memory.
pub trait TenantKeyStore: Send + Sync + fmt::Debug {
    /// The tenant's shred secret, created from the OS RNG if it does not exist yet. Safe when
    /// several processes create the same tenant at once: all get the same secret.
    ///
    /// # Errors
    ///
    /// Storage or RNG failures.
    fn get_or_create(&self, tenant: &TenantId) -> Result<SecretBytes, KeyError>;

    /// The tenant's shred secret, or `None` if it never existed or was destroyed.
    ///
    /// # Errors
    ///
    /// Storage failures, or a corrupt stored secret.
    fn get(&self, tenant: &TenantId) -> Result<Option<SecretBytes>, KeyError>;

    /// Destroys the tenant's shred secret. Idempotent.
    ///
    /// # Errors
    ///
    /// Storage failures.
    fn destroy(&self, tenant: &TenantId) -> Result<(), KeyError>;
}

/// Shred secrets in memory (tests, the in-memory backend).
#[derive(Default)]
pub struct MemoryTenantKeys {
    secrets: Mutex<HashMap<TenantId, SecretBytes>>,
}

impl fmt::Debug for MemoryTenantKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.secrets.lock().map_or(0, |m| m.len());
        f.debug_struct("MemoryTenantKeys")
            .field("tenants", &n)
            .finish()
    }
}

impl MemoryTenantKeys {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> Result<std::sync::MutexGuard<'_, HashMap<TenantId, SecretBytes>>, KeyError> {
        self.secrets.lock().map_err(|_| KeyError::Invalid {
            source_name: "memory tenant keys".to_owned(),
            problem: "lock poisoned".to_owned(),
        })
    }
}

impl TenantKeyStore for MemoryTenantKeys {
    fn get_or_create(&self, tenant: &TenantId) -> Result<SecretBytes, KeyError> {
        let mut map = self.map()?;
        if let Some(s) = map.get(tenant) {
            return Ok(s.clone());
        }
        let secret = random_secret()?;
        map.insert(tenant.clone(), secret.clone());
        Ok(secret)
    }

    fn get(&self, tenant: &TenantId) -> Result<Option<SecretBytes>, KeyError> {
        Ok(self.map()?.get(tenant).cloned())
    }

    fn destroy(&self, tenant: &TenantId) -> Result<(), KeyError> {
        self.map()?.remove(tenant);
        Ok(())
    }
}

/// Shred secrets as one file per tenant in a directory (created `0700`; files `0600`, named
/// by the SHA-256 of the tenant id, holding the secret in URL-safe base64).
///
/// Keep the directory out of the database's backups (that is the point) and back it up
/// separately if at all: a tenant whose file is lost cannot be read. Destroying unlinks the
/// file and syncs the directory; on copy-on-write or wear-levelled storage the old blocks may
/// survive on the device until reused.
///
/// Several application servers need a directory they all see, or a [`TenantKeyStore`] over a
/// KMS.
#[derive(Debug, Clone)]
pub struct DirTenantKeys {
    dir: PathBuf,
}

impl DirTenantKeys {
    /// Uses (and creates if needed) `dir`.
    ///
    /// # Errors
    ///
    /// [`KeyError::Io`] if the directory cannot be created.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, KeyError> {
        let dir = dir.into();
        create_private_dir(&dir).map_err(|source| KeyError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Self { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, tenant: &TenantId) -> PathBuf {
        let digest = Sha256::digest(tenant.as_str().as_bytes());
        let name: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{name}.key"))
    }

    fn read(&self, path: &Path) -> Result<Option<SecretBytes>, KeyError> {
        let text = match fs::read(path) {
            Ok(t) => Zeroizing::new(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(KeyError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let raw = URL_SAFE_NO_PAD
            .decode(text.trim_ascii())
            .ok()
            .filter(|r| r.len() == SHRED_SECRET_LEN)
            .ok_or_else(|| KeyError::Invalid {
                source_name: path.display().to_string(),
                problem: "not a 32-byte shred secret in url-safe base64".to_owned(),
            })?;
        Ok(Some(SecretBytes::new(raw)))
    }
}

impl TenantKeyStore for DirTenantKeys {
    fn get_or_create(&self, tenant: &TenantId) -> Result<SecretBytes, KeyError> {
        let path = self.path(tenant);
        if let Some(s) = self.read(&path)? {
            return Ok(s);
        }
        let secret = random_secret()?;
        let encoded = Zeroizing::new(URL_SAFE_NO_PAD.encode(secret.expose_secret()));
        match write_atomically(&path, encoded.as_bytes(), Replace::No) {
            Ok(()) => Ok(secret),
            // Another process created it first: everyone uses theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                self.read(&path)?.ok_or_else(|| KeyError::Io {
                    path: path.clone(),
                    source: std::io::Error::other("shred secret vanished while creating"),
                })
            }
            Err(source) => Err(KeyError::Io { path, source }),
        }
    }

    fn get(&self, tenant: &TenantId) -> Result<Option<SecretBytes>, KeyError> {
        self.read(&self.path(tenant))
    }

    fn destroy(&self, tenant: &TenantId) -> Result<(), KeyError> {
        let path = self.path(tenant);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir).map_err(|source| KeyError::Io { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(KeyError::Io { path, source }),
        }
    }
}

fn random_secret() -> Result<SecretBytes, KeyError> {
    let mut raw = vec![0u8; SHRED_SECRET_LEN];
    crate::crypto::try_fill_from_os_rng(&mut raw)?;
    Ok(SecretBytes::new(raw))
}

impl<T: TenantKeyStore + ?Sized> TenantKeyStore for std::sync::Arc<T> {
    fn get_or_create(&self, tenant: &TenantId) -> Result<SecretBytes, KeyError> {
        (**self).get_or_create(tenant)
    }

    fn get(&self, tenant: &TenantId) -> Result<Option<SecretBytes>, KeyError> {
        (**self).get(tenant)
    }

    fn destroy(&self, tenant: &TenantId) -> Result<(), KeyError> {
        (**self).destroy(tenant)
    }
}
