//! Opening a vault from a URL, for standalone use (the CLI, the quickstart).
//!
//! Three doors, so that a typo never becomes a second vault:
//!
//! - [`Vault::init`] creates a vault (or opens the same one again: it is idempotent) and
//!   records its keys' identities;
//! - [`Vault::open`] opens an existing vault only: a missing database file or a database
//!   without a vault is an error, and keys other than the recorded ones are refused;
//! - [`Vault::open_or_init_local`], for the embedded default, decides from the database: if it
//!   holds a vault, the key file and tenant-key directory must already exist (nothing is
//!   generated); if not, they are created with it.

use std::path::Path;
use std::sync::Arc;

use crate::backend::{Backend, IntoBackend, MemoryBackend};
use crate::envelope::{DirTenantKeys, TenantKeyStore};
use crate::keys::{KeyError, KeyFile, KeyProvider, Keyring};
use crate::store::{StoreError, Vault, VaultConfig};

impl Vault {
    /// Opens the existing vault on the database at `url`, upgrades its schema if this build's
    /// is newer, and checks `kek` and `tenant_keys` against the identities the vault recorded
    /// ([`check_keys`](Self::check_keys)):
    ///
    /// - `sqlite://PATH` or `sqlite:PATH` (feature `sqlite`, the default): one file in WAL
    ///   mode, which must exist;
    /// - `postgres://...` or `postgresql://...` (feature `postgres`);
    /// - `memory:` is refused here (it holds no vault): use [`init`](Self::init).
    ///
    /// Applications that already have a pool use [`Vault::builder`] with
    /// `SqliteBackend::from_pool` / `PgBackend::from_pool` instead, and call
    /// [`migrate`](Self::migrate) when they choose.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotInitialised`] if the database holds no vault (or, for SQLite, the file
    /// does not exist); [`StoreError::UnsupportedUrl`] for another scheme or a feature not
    /// compiled in (the message names the scheme only: a URL may hold a password); the key
    /// checks' errors; connection and migration errors.
    ///
    /// ```no_run
    /// use credvault::envelope::DirTenantKeys;
    /// use credvault::keys::KeyFile;
    /// use credvault::store::Vault;
    ///
    /// # async fn run() -> Result<(), credvault::Error> {
    /// let keys = KeyFile::open("/etc/app/credvault-keys.json")?;
    /// let tenant_keys = DirTenantKeys::open("/var/lib/app-keys/tenant-keys")?;
    /// let vault = Vault::open("sqlite:///var/lib/app/credvault.db", keys, tenant_keys).await?;
    /// # let _ = vault; Ok(()) }
    /// ```
    pub async fn open(
        url: &str,
        kek: impl KeyProvider + 'static,
        tenant_keys: impl TenantKeyStore + 'static,
    ) -> Result<Self, StoreError> {
        Self::open_with(url, kek, tenant_keys, VaultConfig::default()).await
    }

    /// [`open`](Self::open) with settings (for example
    /// [`ReadAudit::Synchronous`](crate::store::ReadAudit::Synchronous) in a short-lived
    /// process such as a command line, where buffered read events would be lost at exit).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub async fn open_with(
        url: &str,
        kek: impl KeyProvider + 'static,
        tenant_keys: impl TenantKeyStore + 'static,
        config: VaultConfig,
    ) -> Result<Self, StoreError> {
        let backend = connect(url, false).await?;
        if backend.schema_version().await?.is_none() {
            return Err(StoreError::NotInitialised(describe_url(url)));
        }
        ready(backend, kek, tenant_keys, config).await
    }

    /// Creates the vault on the database at `url` (the SQLite file is created if missing, in
    /// an existing directory), or opens the same vault again: the schema is created or
    /// upgraded and the keys' identities are recorded, or checked against the recorded ones
    /// if the vault exists. Never generates a key: create the key file first
    /// ([`Keyring::create_new`]) or use [`open_or_init_local`](Self::open_or_init_local).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), without `NotInitialised`.
    pub async fn init(
        url: &str,
        kek: impl KeyProvider + 'static,
        tenant_keys: impl TenantKeyStore + 'static,
    ) -> Result<Self, StoreError> {
        Self::init_with(url, kek, tenant_keys, VaultConfig::default()).await
    }

    /// [`init`](Self::init) with settings.
    ///
    /// # Errors
    ///
    /// As [`init`](Self::init).
    pub async fn init_with(
        url: &str,
        kek: impl KeyProvider + 'static,
        tenant_keys: impl TenantKeyStore + 'static,
        config: VaultConfig,
    ) -> Result<Self, StoreError> {
        ready(connect(url, true).await?, kek, tenant_keys, config).await
    }

    /// The embedded default in one call: the vault at `url` with its key file at `key_file`
    /// and its tenant-key directory at `tenant_keys`.
    ///
    /// If the database already holds a vault, the key file and the directory must exist and
    /// be the vault's own (checked against the recorded identities): nothing is generated, so
    /// an application started from another working directory, or given a mistyped path, fails
    /// instead of starting a second vault. If the database holds no vault, it is created with
    /// a new key file (unless one exists there already) and a new directory.
    ///
    /// Keep the key file and the directory out of the database's directory and its backups:
    /// a backup that holds the keys protects nothing, and the tenant-key directory is what
    /// makes purged tenants unreadable in old backups.
    ///
    /// ```no_run
    /// use credvault::store::{Vault, VaultConfig};
    ///
    /// # async fn run() -> Result<(), credvault::Error> {
    /// let vault = Vault::open_or_init_local(
    ///     "sqlite:///var/lib/app/credvault.db",
    ///     "/etc/app/credvault-keys.json".as_ref(),
    ///     "/var/lib/app-keys/credvault-tenant-keys".as_ref(),
    ///     VaultConfig::default(),
    /// )
    /// .await?;
    /// # let _ = vault; Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open) and [`init`](Self::init); [`KeyError::Io`] naming the key file
    /// if the vault exists and the file does not.
    pub async fn open_or_init_local(
        url: &str,
        key_file: &Path,
        tenant_keys: &Path,
        config: VaultConfig,
    ) -> Result<Self, StoreError> {
        Self::open_or_init_local_on(connect(url, true).await?, key_file, tenant_keys, config).await
    }

    /// [`open_or_init_local`](Self::open_or_init_local) on a backend the application built,
    /// typically over its own pool (`SqliteBackend::from_pool(pool.clone())`), so that the
    /// vault's tables live beside the application's own: the same checks, nothing generated
    /// when the database already holds a vault, and the vault's schema migrated (only the
    /// `credvault_*` tables; the application's migrations are its own).
    ///
    /// ```no_run
    /// use credvault::backend::SqliteBackend;
    /// use credvault::store::{Vault, VaultConfig};
    ///
    /// # async fn run(app_pool: credvault::sqlx::SqlitePool) -> Result<(), credvault::Error> {
    /// let vault = Vault::open_or_init_local_on(
    ///     SqliteBackend::from_pool(app_pool.clone()),
    ///     "/etc/app/credvault-keys.json".as_ref(),
    ///     "/var/lib/app-keys/credvault-tenant-keys".as_ref(),
    ///     VaultConfig::default(),
    /// )
    /// .await?;
    /// # let _ = vault; Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`open_or_init_local`](Self::open_or_init_local).
    pub async fn open_or_init_local_on(
        backend: impl IntoBackend,
        key_file: &Path,
        tenant_keys: &Path,
        config: VaultConfig,
    ) -> Result<Self, StoreError> {
        let backend = backend.into_backend();
        let existing = backend.schema_version().await?.is_some();
        let (kek, store) = if existing {
            (
                KeyFile::open(key_file)?,
                DirTenantKeys::open_or_adopt(tenant_keys)?,
            )
        } else {
            match Keyring::create_new(key_file) {
                Ok(_) => {}
                Err(KeyError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
            (
                KeyFile::open(key_file)?,
                DirTenantKeys::create(tenant_keys)?,
            )
        };
        let vault = Vault::builder(backend, kek, store).config(config).build();
        vault.migrate().await?;
        vault.check_keys().await?;
        Ok(vault)
    }
}

impl Vault {
    /// Whether the database at `url` holds a vault (a SQLite file that does not exist does
    /// not; nothing is created).
    ///
    /// # Errors
    ///
    /// Connection errors, [`StoreError::UnsupportedUrl`].
    pub async fn exists(url: &str) -> Result<bool, StoreError> {
        match connect(url, false).await {
            Ok(backend) => Ok(backend.schema_version().await?.is_some()),
            Err(StoreError::NotInitialised(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The vault on `backend`, its schema created or upgraded and its keys checked (and recorded
/// if new).
async fn ready(
    backend: Arc<dyn Backend>,
    kek: impl KeyProvider + 'static,
    tenant_keys: impl TenantKeyStore + 'static,
    config: VaultConfig,
) -> Result<Vault, StoreError> {
    let vault = Vault::builder(backend, kek, tenant_keys)
        .config(config)
        .revoker_unknown()
        .try_build()?;
    vault.migrate().await?;
    vault.check_keys().await?;
    Ok(vault)
}

/// The URL without anything that may be a password: its scheme and, for SQLite, the path.
fn describe_url(url: &str) -> String {
    if url.to_ascii_lowercase().starts_with("sqlite:") {
        return format!("database {url}");
    }
    let scheme = url.split(':').next().unwrap_or_default();
    format!("the {scheme} database")
}

/// The backend a URL names; `create` lets SQLite create a missing file.
#[cfg_attr(not(feature = "sqlite"), allow(unused_variables))]
async fn connect(url: &str, create: bool) -> Result<Arc<dyn Backend>, StoreError> {
    let scheme = url
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match scheme.as_str() {
        "memory" => Ok(Arc::new(MemoryBackend::new())),
        #[cfg(feature = "sqlite")]
        "sqlite" => {
            let options = crate::backend::SqliteBackend::options(url)?;
            let file = options.get_filename().to_path_buf();
            if !create && file.as_os_str() != ":memory:" && !file.exists() {
                return Err(StoreError::NotInitialised(format!(
                    "database {} (no such file)",
                    file.display()
                )));
            }
            Ok(Arc::new(
                crate::backend::SqliteBackend::connect_with(options.create_if_missing(create))
                    .await?,
            ))
        }
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Ok(Arc::new(crate::backend::PgBackend::connect(url).await?)),
        _ => Err(StoreError::UnsupportedUrl { scheme }),
    }
}
