//! The audited export of a tenant's Fernet keys (ARCHITECTURE.md, "Sealing suites"), so that
//! a service outside credvault (Python's `cryptography`) can decrypt the tenant's records
//! sealed with the Fernet suite.

use std::fmt;

use serde::Serialize;

use crate::backend::{AuditAction, DekRow};
use crate::secret::SecretString;
use crate::store::{StoreError, Vault};
use crate::{KeyVersion, TenantId};

/// One of a tenant's Fernet keys: the one derived from data key version `dek_version`.
///
/// `Debug` redacts the key; `Serialize` writes it (the export's whole purpose): keep the
/// output out of logs.
#[derive(Clone, Serialize)]
pub struct ExportedFernetKey {
    /// The data key version it is derived from: records whose `dek_version` is this one
    /// open with it.
    pub dek_version: KeyVersion,
    /// The key, URL-safe base64 with padding (what Python's `Fernet(key)` takes).
    #[serde(with = "crate::secret::expose")]
    pub key: SecretString,
}

impl fmt::Debug for ExportedFernetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportedFernetKey")
            .field("dek_version", &self.dek_version)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

/// What [`Vault::export_fernet_keys`] returns: every live Fernet key of a tenant, the current
/// one first (the order Python's `MultiFernet` wants).
#[derive(Debug, Clone, Serialize)]
pub struct FernetKeyExport {
    /// The tenant.
    pub tenant: TenantId,
    /// Its keys, current first, then retired versions newest first.
    pub keys: Vec<ExportedFernetKey>,
}

impl Vault {
    /// Exports the Fernet keys of `tenant` (one per live data key version, current first),
    /// after writing a `fernet_key_export` audit row naming `actor`: if the audit row cannot
    /// be written, nothing is returned.
    ///
    /// With these keys, Python's `cryptography.fernet.MultiFernet` decrypts every record of
    /// the tenant sealed with the Fernet suite; the plaintext is the record's context
    /// (tenant, kind, name, each prefixed with its length as a u32 big-endian) followed by the
    /// record's JSON. A key is derived from the tenant's data key and shred secret, so a
    /// rotated data key means a new Fernet key (export again after the re-encryption job), and
    /// a purged tenant's keys can never be derived again, though a copy exported before stays
    /// valid: treat an export as a secret of the tenant's.
    ///
    /// ```
    /// use credvault::backend::MemoryBackend;
    /// use credvault::crypto::{Fernet, SealingSuite};
    /// use credvault::envelope::MemoryTenantKeys;
    /// use credvault::store::{ApiKey, Vault};
    /// use credvault::Keyring;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let vault = Vault::builder(MemoryBackend::new(), Keyring::generate()?, MemoryTenantKeys::new())
    ///     .sealing_suite(SealingSuite::Fernet)
    ///     .build();
    /// vault.migrate().await?;
    /// vault.tenant("acme")?.put("stripe", &ApiKey { provider: "stripe".into(), key: "sk_example".into(), label: None }).await?;
    /// let export = vault.export_fernet_keys("acme", "ops:alice").await?;
    /// let f = Fernet::new(export.keys[0].key.expose_secret())?;
    /// # let _ = f; Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`StoreError::UnknownTenant`], [`StoreError::TenantDeleted`] (a tenant being deleted
    /// gives out no key), [`StoreError::TenantShredded`]; key or storage errors.
    #[tracing::instrument(name = "credvault.export_fernet_keys", skip_all, fields(tenant = tenant), err(Display, level = "debug"))]
    pub async fn export_fernet_keys(
        &self,
        tenant: &str,
        actor: &str,
    ) -> Result<FernetKeyExport, StoreError> {
        let id = TenantId::new(tenant)?;
        self.keys_ready().await?;
        let row = self
            .backend()
            .tenant(&id)
            .await?
            .ok_or_else(|| StoreError::UnknownTenant(id.clone()))?;
        if let Some(purge_after) = row.purge_after {
            return Err(StoreError::TenantDeleted {
                tenant: id,
                purge_after,
            });
        }
        let mut deks = vec![self.dek(&row).await?];
        let mut retired = self.backend().retired_deks(&id).await?;
        retired.sort_by_key(|d| std::cmp::Reverse(d.version));
        for dek in retired {
            if let DekRow {
                wrapped_dek: Some(wrapped),
                version,
                ..
            } = &dek
                && *version != row.dek_version
            {
                deks.push(
                    self.dek_from(&id, row.created_at, *version, wrapped, true)
                        .await?,
                );
            }
        }
        let versions: Vec<String> = deks.iter().map(|d| d.version().to_string()).collect();
        let audit = self.tenant_audit(
            &id,
            AuditAction::FernetKeyExport,
            actor,
            &format!("ok: data key versions {}", versions.join(", ")),
        );
        let audit = self.seal_audit_row(audit).await?;
        self.backend()
            .append_audit(std::slice::from_ref(&audit))
            .await?;
        Ok(FernetKeyExport {
            tenant: id,
            keys: deks
                .iter()
                .map(|d| ExportedFernetKey {
                    dek_version: d.version(),
                    key: d.fernet_key_text(),
                })
                .collect(),
        })
    }
}
