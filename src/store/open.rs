//! Opening a vault from a URL, for standalone use (the CLI, the quickstart).

use crate::backend::{Backend, MemoryBackend};
use crate::envelope::TenantKeyStore;
use crate::keys::KeyProvider;
use crate::store::{StoreError, Vault, VaultConfig};

impl Vault {
    /// Opens a vault on the database at `url` and migrates its schema:
    ///
    /// - `sqlite://PATH` or `sqlite:PATH` (feature `sqlite`, the default): one file, created
    ///   if missing, in WAL mode;
    /// - `postgres://...` or `postgresql://...` (feature `postgres`);
    /// - `memory:` for a vault that keeps nothing.
    ///
    /// Applications that already have a pool use [`Vault::builder`] with
    /// `SqliteBackend::from_pool` / `PgBackend::from_pool` instead, and call
    /// [`migrate`](Self::migrate) when they choose.
    ///
    /// # Errors
    ///
    /// [`StoreError::UnsupportedUrl`] for another scheme or a feature not compiled in (the
    /// message names the scheme only: a URL may hold a password); connection and migration
    /// errors.
    ///
    /// ```no_run
    /// use credvault::envelope::DirTenantKeys;
    /// use credvault::store::Vault;
    /// use credvault::Keyring;
    ///
    /// # async fn run() -> Result<(), credvault::Error> {
    /// let keys = Keyring::load_or_create("credvault-keys.json")?;
    /// let tenant_keys = DirTenantKeys::new("credvault-tenant-keys")?;
    /// let vault = Vault::open("sqlite://credvault.db", keys, tenant_keys).await?;
    /// # let _ = vault; Ok(()) }
    /// ```
    pub async fn open(
        url: &str,
        kek: impl KeyProvider + 'static,
        tenant_keys: impl TenantKeyStore + 'static,
    ) -> Result<Self, StoreError> {
        Self::open_with(url, kek, tenant_keys, VaultConfig::default()).await
    }

    /// [`open`](Self::open) with settings (for example [`ReadAudit::Synchronous`](crate::store::ReadAudit::Synchronous) in a
    /// short-lived process such as a command line, where buffered read events would be lost
    /// at exit).
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
        let backend = connect(url).await?;
        let vault = Vault::builder(backend, kek, tenant_keys)
            .config(config)
            .build();
        vault.migrate().await?;
        Ok(vault)
    }
}

/// The backend a URL names.
async fn connect(url: &str) -> Result<std::sync::Arc<dyn Backend>, StoreError> {
    let scheme = url
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match scheme.as_str() {
        "memory" => Ok(std::sync::Arc::new(MemoryBackend::new())),
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok(std::sync::Arc::new(
            crate::backend::SqliteBackend::connect(url).await?,
        )),
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Ok(std::sync::Arc::new(
            crate::backend::PgBackend::connect(url).await?,
        )),
        _ => Err(StoreError::UnsupportedUrl { scheme }),
    }
}
