//! Tenant deletion with a grace period, and the purge job.

use crate::TenantId;
use crate::backend::AuditAction;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::backend::VaultConnection;
use crate::store::{On, StoreError, Vault};

/// What one run of [`Vault::purge`] did. Serialised with these field names (tenants as their
/// ids).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PurgeReport {
    /// Tenants destroyed (shred secret, wrapped DEK and records).
    pub tenants: Vec<TenantId>,
    /// Records of those tenants deleted.
    pub tenant_records: u64,
    /// Records deleted because their retention ran out (derived data after a disconnect).
    pub expired_records: u64,
    /// Audit rows older than the audit retention deleted.
    pub audit_rows: u64,
}

/// The actor the purge job writes into the audit log.
pub const PURGE_ACTOR: &str = "job:purge";

impl Vault {
    /// Starts deleting a tenant: from now on its records can only be exported (or the tenant
    /// restored) until the grace period ends and [`purge`](Self::purge) destroys it. Returns
    /// when it will be purged.
    ///
    /// Idempotent: a tenant already being deleted keeps its first purge time (returned, nothing
    /// written), and a tenant that never stored anything (or was purged) has nothing to delete
    /// (returns the current time, nothing written).
    ///
    /// # Errors
    ///
    /// An invalid tenant id, storage errors.
    #[tracing::instrument(name = "credvault.delete_tenant", skip_all, fields(tenant = tenant), err(Display, level = "debug"))]
    pub async fn delete_tenant(&self, tenant: &str, actor: &str) -> Result<i64, StoreError> {
        self.delete_tenant_on(&mut On::Pool, tenant, actor).await
    }

    /// [`delete_tenant`](Self::delete_tenant) inside the application's transaction (see
    /// [`Tenant::put_in`](crate::store::Tenant::put_in)): the deletion and its audit row
    /// commit or roll back with it. The tenant's cached row is dropped either way.
    ///
    /// # Errors
    ///
    /// As [`delete_tenant`](Self::delete_tenant); [`StoreError::WrongConnection`].
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[tracing::instrument(name = "credvault.delete_tenant_in", skip_all, fields(tenant = tenant), err(Display, level = "debug"))]
    pub async fn delete_tenant_in<C: VaultConnection>(
        &self,
        conn: &mut C,
        tenant: &str,
        actor: &str,
    ) -> Result<i64, StoreError> {
        self.delete_tenant_on(&mut self.on(conn)?, tenant, actor)
            .await
    }

    async fn delete_tenant_on(
        &self,
        on: &mut On<'_>,
        tenant: &str,
        actor: &str,
    ) -> Result<i64, StoreError> {
        let id = TenantId::new(tenant)?;
        self.keys_ready_on(on).await?;
        let now = self.now();
        self.forget_tenant_row(&id);
        match on.tenant(self, &id).await? {
            None => return Ok(now),
            Some(row) => {
                if let Some(purge_after) = row.purge_after {
                    return Ok(purge_after);
                }
            }
        }
        let purge_after = now.saturating_add(self.config().grace_period);
        let audit = [self.tenant_audit(&id, AuditAction::TenantDelete, actor, "ok")];
        let found = on
            .set_tenant_deletion(self, &id, Some(now), Some(purge_after), &audit)
            .await?;
        self.forget_tenant_row(&id);
        // Not found: purged (or its shred secret destroyed) since it was read.
        Ok(if found { purge_after } else { now })
    }

    /// Cancels a tenant's deletion during its grace period.
    ///
    /// # Errors
    ///
    /// [`StoreError::UnknownTenant`] (including a tenant already purged),
    /// [`StoreError::TenantShredded`] for a tenant whose purge already destroyed its shred
    /// secret (an interrupted purge: the next one finishes it), storage errors.
    #[tracing::instrument(name = "credvault.restore_tenant", skip_all, fields(tenant = tenant), err(Display, level = "debug"))]
    pub async fn restore_tenant(&self, tenant: &str, actor: &str) -> Result<(), StoreError> {
        let id = TenantId::new(tenant)?;
        self.keys_ready().await?;
        let audit = [self.tenant_audit(&id, AuditAction::TenantRestore, actor, "ok")];
        self.forget_tenant_row(&id);
        if !self
            .backend()
            .set_tenant_deletion(&id, None, None, &audit)
            .await?
        {
            return Err(match self.backend().tenant(&id).await? {
                Some(row) if row.shredded_at.is_some() => StoreError::TenantShredded(id),
                _ => StoreError::UnknownTenant(id),
            });
        }
        Ok(())
    }

    /// The purge job: destroys tenants whose grace period is over (shred secret first, then
    /// the wrapped DEK and every record, in one transaction), deletes records whose retention
    /// ran out, and trims the audit log to its retention. Safe to run from several servers
    /// and to run again after a crash.
    ///
    /// Run it at least daily (hourly if you promise deletion of derived data within 24 hours).
    ///
    /// A tenant is shredded in three steps, each safe to interrupt: the vault records that
    /// its shred secret is being destroyed, destroys it, then deletes its rows. A run killed
    /// after the first or second step finishes the tenant on the next run. A tenant whose
    /// shred secret is missing although the vault never recorded destroying it (a wrong,
    /// empty or unmounted tenant-key store) is not purged and not reported as purged: it is
    /// audited as refused and the run ends with [`StoreError::ShredSecretMissing`], after the
    /// rest of the work.
    ///
    /// # Errors
    ///
    /// [`StoreError::ShredSecretMissing`] (with the report of what was done); a storage or
    /// key-store error; what was done before it stays done.
    #[tracing::instrument(name = "credvault.purge", skip_all, err(Display, level = "warn"))]
    pub async fn purge(&self) -> Result<PurgeReport, StoreError> {
        self.keys_ready().await?;
        let now = self.now();
        let mut report = PurgeReport::default();
        let mut refused = Vec::new();
        for tenant in self.backend().tenants_due_for_purge(now).await? {
            let Some(row) = self.backend().tenant(&tenant).await? else {
                continue; // purged by another process meanwhile
            };
            if row.shredded_at.is_none() {
                if self.inner.tenant_keys.get(&tenant)?.is_none() {
                    let audit = [self.tenant_audit(
                        &tenant,
                        AuditAction::TenantPurge,
                        PURGE_ACTOR,
                        "refused: shred secret missing from the tenant-key store",
                    )];
                    self.backend().append_audit(&audit).await?;
                    refused.push(tenant);
                    continue;
                }
                // Recorded first: a run killed after destroying the secret is recognised as
                // ours by the next one, which finishes the purge.
                let audit =
                    [self.tenant_audit(&tenant, AuditAction::TenantShred, PURGE_ACTOR, "ok")];
                self.backend()
                    .set_tenant_shredded(&tenant, now, &audit)
                    .await?;
            }
            // The shred secret goes before the rows: once it is gone, no copy of the rows
            // opens, even if the process dies before they are deleted.
            self.inner.tenant_keys.destroy(&tenant)?;
            self.forget_tenant(&tenant);
            let audit = [self.tenant_audit(&tenant, AuditAction::TenantPurge, PURGE_ACTOR, "ok")];
            report.tenant_records += self.backend().purge_tenant(&tenant, &audit).await?;
            report.tenants.push(tenant);
        }
        let expired = self.backend().purge_records(now, PURGE_ACTOR).await?;
        report.expired_records = u64::try_from(expired.len()).unwrap_or(u64::MAX);
        self.flush_audit().await?;
        report.audit_rows = self
            .backend()
            .purge_audit(now.saturating_sub(self.config().audit_retention))
            .await?;
        tracing::info!(
            tenants = report.tenants.len(),
            tenant_records = report.tenant_records,
            expired_records = report.expired_records,
            audit_rows = report.audit_rows,
            refused = refused.len(),
            "credvault purge finished"
        );
        if !refused.is_empty() {
            return Err(StoreError::ShredSecretMissing {
                tenants: refused,
                report: Box::new(report),
            });
        }
        Ok(report)
    }
}
