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
pub(crate) const SHRED_SECRET_LEN: usize = 32;

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

    /// The store's identity: an id chosen when the store was created and kept with it (for
    /// [`DirTenantKeys`], in its marker file). The vault records it and refuses a store with
    /// another id, or none, so that an empty or foreign store (an unmounted volume's mount
    /// point, a mistyped path) is never mistaken for the vault's own.
    ///
    /// # Errors
    ///
    /// [`KeyError::Store`] if the store is missing or has no identity; storage failures.
    fn identity(&self) -> Result<String, KeyError>;

    /// Where the store is, for error messages ("directory /var/lib/app/tenant-keys").
    fn describe(&self) -> String {
        "the tenant-key store".to_owned()
    }
}

/// Shred secrets in memory (tests, the in-memory backend). Each store has its own random
/// identity.
pub struct MemoryTenantKeys {
    id: String,
    secrets: Mutex<HashMap<TenantId, SecretBytes>>,
}

impl Default for MemoryTenantKeys {
    fn default() -> Self {
        let mut raw = [0u8; 16];
        crate::crypto::fill_from_os_rng(&mut raw);
        Self {
            id: format!("memory-{}", hex(&raw)),
            secrets: Mutex::default(),
        }
    }
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

    fn identity(&self) -> Result<String, KeyError> {
        Ok(self.id.clone())
    }

    fn describe(&self) -> String {
        "the in-memory tenant-key store".to_owned()
    }
}

/// The marker file that makes a directory a tenant-key store.
pub(crate) const MARKER_FILE: &str = "credvault-tenant-keys.json";

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Marker {
    format: String,
    version: u32,
    store_id: String,
    created_at: u64,
}

const MARKER_FORMAT: &str = "credvault-tenant-keys";

/// Shred secrets as one file per tenant in a directory (`0700`; files `0600`, named by the
/// SHA-256 of the tenant id, holding the secret in URL-safe base64), with a marker file
/// (`credvault-tenant-keys.json`) holding the store's random id.
///
/// The store fails closed: [`open`](Self::open) refuses a missing directory, one without the
/// marker (an unmounted volume's empty mount point, a mistyped path) and one that group or
/// others can write; every operation checks the marker again, so a directory swapped under a
/// running process is refused rather than filled with new secrets; and the vault records the
/// store's id and refuses any other store. Only [`create`](Self::create) (what `credvault vault
/// init` calls) makes a new store.
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
    id: String,
}

impl DirTenantKeys {
    /// Opens the existing store in `dir`.
    ///
    /// # Errors
    ///
    /// [`KeyError::Store`] if `dir` does not exist, has no valid marker file, or can be
    /// written by group or others; [`KeyError::Io`] if it cannot be read.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, KeyError> {
        let dir = dir.into();
        check_dir(&dir)?;
        let id = read_marker(&dir)?.ok_or_else(|| {
            store_error(
                &dir,
                format!(
                    "no marker file {MARKER_FILE}: this is not a credvault tenant-key directory \
                     (an unmounted volume? a mistyped path?); `credvault vault init` creates one"
                ),
            )
        })?;
        Ok(Self { dir, id })
    }

    /// Creates a store in `dir` (and its parents, `0700`), or opens the one already there.
    /// An existing directory without a marker is adopted only if it holds nothing but shred
    /// secret files (an empty directory, or a store made before markers existed); the vault
    /// then checks that it holds its tenants' secrets before recording it.
    ///
    /// # Errors
    ///
    /// [`KeyError::Store`] if `dir` holds anything else or can be written by group or others;
    /// [`KeyError::Io`] if it cannot be created or written.
    pub fn create(dir: impl Into<PathBuf>) -> Result<Self, KeyError> {
        let dir = dir.into();
        let io = |source| KeyError::Io {
            path: dir.clone(),
            source,
        };
        if !dir.exists() {
            create_private_dir(&dir).map_err(io)?;
        }
        check_dir(&dir)?;
        if let Some(id) = read_marker(&dir)? {
            return Ok(Self { dir, id });
        }
        for entry in fs::read_dir(&dir).map_err(io)? {
            let name = entry.map_err(io)?.file_name();
            let name = name.to_string_lossy();
            if !is_secret_file_name(&name) && !name.starts_with('.') {
                return Err(store_error(
                    &dir,
                    format!(
                        "the directory holds {name:?}, which is not a shred secret, and has no \
                         marker file {MARKER_FILE}: choose an empty or new directory"
                    ),
                ));
            }
        }
        let mut raw = [0u8; 16];
        crate::crypto::try_fill_from_os_rng(&mut raw)?;
        let marker = Marker {
            format: MARKER_FORMAT.to_owned(),
            version: 1,
            store_id: hex(&raw),
            created_at: crate::keys::now_secs(),
        };
        let mut json = serde_json::to_string_pretty(&marker)
            .map_err(|e| store_error(&dir, format!("writing the marker: {e}")))?;
        json.push('\n');
        match write_atomically(&dir.join(MARKER_FILE), json.as_bytes(), Replace::No) {
            Ok(()) => Ok(Self {
                dir,
                id: marker.store_id,
            }),
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::open(dir),
            Err(source) => Err(KeyError::Io {
                path: dir.join(MARKER_FILE),
                source,
            }),
        }
    }

    /// The tenant-key directory of an existing vault: it must exist (never created here).
    /// A directory made before marker files existed (shred secrets only) is marked now; the
    /// vault's key check then verifies that it holds the tenants' shred secrets, and refuses
    /// it if the vault recorded another store.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open) for a missing directory, as [`create`](Self::create) otherwise.
    pub fn open_or_adopt(dir: impl Into<PathBuf>) -> Result<Self, KeyError> {
        let dir = dir.into();
        if dir.is_dir() {
            Self::create(dir)
        } else {
            Self::open(dir)
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, tenant: &TenantId) -> PathBuf {
        let digest = Sha256::digest(tenant.as_str().as_bytes());
        self.dir.join(format!("{}.key", hex(&digest)))
    }

    /// The marker is still there and still names this store (a directory unmounted or
    /// swapped under a running process is refused, not filled).
    fn check(&self) -> Result<(), KeyError> {
        match read_marker(&self.dir)? {
            Some(id) if id == self.id => Ok(()),
            Some(_) => Err(store_error(
                &self.dir,
                "the marker file now names another store: the directory was replaced",
            )),
            None => Err(store_error(
                &self.dir,
                format!("the marker file {MARKER_FILE} is gone (directory unmounted or replaced?)"),
            )),
        }
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
        self.check()?;
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
        self.check()?;
        self.read(&self.path(tenant))
    }

    fn destroy(&self, tenant: &TenantId) -> Result<(), KeyError> {
        self.check()?;
        let path = self.path(tenant);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir).map_err(|source| KeyError::Io { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(KeyError::Io { path, source }),
        }
    }

    fn identity(&self) -> Result<String, KeyError> {
        self.check()?;
        Ok(self.id.clone())
    }

    fn describe(&self) -> String {
        format!("directory {}", self.dir.display())
    }
}

fn store_error(dir: &Path, problem: impl Into<String>) -> KeyError {
    KeyError::Store {
        place: dir.display().to_string(),
        problem: problem.into(),
    }
}

/// `<64 hex>.key`: a shred secret's file name.
fn is_secret_file_name(name: &str) -> bool {
    name.strip_suffix(".key")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The directory exists, is a directory, and only its owner can write it.
fn check_dir(dir: &Path) -> Result<(), KeyError> {
    let meta = match fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(store_error(
                dir,
                "the directory does not exist (an unmounted volume? a mistyped path?); \
                 `credvault vault init` creates one",
            ));
        }
        Err(source) => {
            return Err(KeyError::Io {
                path: dir.to_owned(),
                source,
            });
        }
    };
    if !meta.is_dir() {
        return Err(store_error(dir, "not a directory"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode();
        if mode & 0o022 != 0 {
            return Err(store_error(
                dir,
                format!(
                    "the directory is writable by group or others (mode {:o}): anyone who can \
                     write it can replace shred secrets; run chmod 700 on it",
                    mode & 0o777
                ),
            ));
        }
    }
    Ok(())
}

/// The store id in `dir`'s marker, `None` if there is no marker.
fn read_marker(dir: &Path) -> Result<Option<String>, KeyError> {
    let path = dir.join(MARKER_FILE);
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(KeyError::Io { path, source }),
    };
    let marker: Marker = serde_json::from_slice(&text)
        .ok()
        .filter(|m: &Marker| m.format == MARKER_FORMAT && m.version == 1 && !m.store_id.is_empty())
        .ok_or_else(|| store_error(dir, format!("the marker file {MARKER_FILE} is not valid")))?;
    Ok(Some(marker.store_id))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn random_secret() -> Result<SecretBytes, KeyError> {
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

    fn identity(&self) -> Result<String, KeyError> {
        (**self).identity()
    }

    fn describe(&self) -> String {
        (**self).describe()
    }
}
