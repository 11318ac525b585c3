//! Tenant deletion with a grace period, and the purge job.

use std::time::Duration;

use crate::TenantId;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::backend::VaultConnection;
use crate::backend::{AuditAction, BackendErrorKind, RowFault, UnreadableRow};
use crate::store::{On, PurgerConfig, Revoker, StoreError, Tenant, Vault, secs};

/// What one run of [`Vault::purge`] did. Serialised with these field names (tenants as their
/// ids).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PurgeReport {
    /// How late the oldest item waiting for deletion was when the run started: the time since
    /// its promised deadline (a deleted tenant's `purge_after`, a derived record's). Zero when
    /// every promise was kept; anything else means the purge ran too rarely or failed.
    /// Serialised as whole seconds, `oldest_overdue_seconds`.
    #[serde(
        rename = "oldest_overdue_seconds",
        serialize_with = "crate::store::whole_seconds"
    )]
    pub oldest_overdue: Duration,
    /// OAuth tokens of deleted tenants whose revocation the run retried and the revoker now
    /// accepted (then deleted).
    pub tokens_revoked: u64,
    /// OAuth tokens of deleted tenants deleted by the run's retry pass.
    pub tokens_removed: u64,
    /// OAuth tokens of deleted tenants whose revocation failed again (audited, kept for the
    /// next run; the tenant's purge deletes them at the latest).
    pub revocation_failures: u64,
    /// Tenants destroyed (shred secret, wrapped DEK and records).
    pub tenants: Vec<TenantId>,
    /// Records of those tenants deleted.
    pub tenant_records: u64,
    /// Records deleted because their retention ran out (derived data after a disconnect).
    pub expired_records: u64,
    /// Audit rows older than the audit retention deleted.
    pub audit_rows: u64,
    /// Rows the run could not read: due records whose key does not decode (deleted anyway,
    /// since they were due, and counted in `expired_records`) and tenants whose row does not
    /// decode (skipped: not purged); OAuth token rows of deleted tenants that do not decode
    /// (never revoked: revoke them with the provider by hand; deleted with their tenant when
    /// its purge is due). Named, with the class of the fault; the rest was done.
    pub unreadable: Vec<UnreadableRow>,
}

/// The actor the purge job writes into the audit log.
pub(crate) const PURGE_ACTOR: &str = "job:purge";

/// What [`Vault::delete_tenant_with`] did. Serialised with these field names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct TenantDeletion {
    /// The promised deadline (Unix seconds): the tenant is destroyed by then, by a purge.
    pub purge_after: i64,
    /// OAuth tokens the revoker accepted.
    pub tokens_revoked: u64,
    /// OAuth tokens deleted at once (revoked, or unreadable and so never revocable).
    pub tokens_removed: u64,
    /// OAuth tokens whose revocation failed: audited and kept, sealed, for the purge to retry
    /// with the vault's [`revoker`](crate::store::VaultBuilder::revoker) (the tenant's own
    /// purge deletes them at the latest).
    pub revocation_failures: u64,
    /// OAuth token rows that do not decode (a name that is not valid, metadata that is not
    /// JSON), named: they could be neither revoked nor removed, and stay until the tenant's
    /// purge deletes every row of the tenant. Each purge run names them again in
    /// [`PurgeReport::unreadable`] meanwhile. Revoke these tokens with the provider by hand.
    pub unreadable: Vec<UnreadableRow>,
}

impl Vault {
    /// Starts deleting a tenant: its OAuth tokens are revoked through the vault's
    /// [`revoker`](crate::store::VaultBuilder::revoker) and removed at once (without a
    /// revoker, removed unrevoked); the rest of its records can only be exported (or the
    /// tenant restored) until the purge destroys it, by the deadline `grace_period` from now.
    /// Returns that deadline. [`disconnect`](Tenant::disconnect) still works meanwhile.
    ///
    /// See [`delete_tenant_with`](Self::delete_tenant_with) for what happens to a token whose
    /// revocation fails.
    ///
    /// Idempotent: a tenant already being deleted keeps its first purge time (returned, nothing
    /// written), and a tenant that never stored anything (or was purged) has nothing to delete
    /// (returns the current time, nothing written).
    ///
    /// # Errors
    ///
    /// An invalid tenant id, storage errors (the tenant may then be marked deleted with tokens
    /// left: the next purge revokes and removes them).
    #[tracing::instrument(name = "credvault.delete_tenant", skip_all, fields(tenant = tenant), err(Display, level = "debug"))]
    pub async fn delete_tenant(&self, tenant: &str, actor: &str) -> Result<i64, StoreError> {
        let revoker = self.revoker();
        Ok(self
            .delete_tenant_inner(tenant, actor, revoker)
            .await?
            .purge_after)
    }

    /// [`delete_tenant`](Self::delete_tenant), revoking the tenant's OAuth tokens through
    /// `revoker` (one [`RevocationRequest`](crate::store::RevocationRequest) per token, the
    /// refresh token first per RFC 7009). A token the revoker accepts is deleted at once, in
    /// one transaction with its `revoke` and `delete` audit rows. A token whose revocation
    /// fails is audited (`revoke`, `failed: ...`) and kept, sealed and unreadable through the
    /// API, for [`purge`](Self::purge) to retry with the vault's revoker on each run; the
    /// tenant's purge deletes it at the latest. Called again for a tenant already being
    /// deleted, it tries the tokens still left once more.
    ///
    /// # Errors
    ///
    /// As [`delete_tenant`](Self::delete_tenant). Revocation failures are not errors.
    #[tracing::instrument(name = "credvault.delete_tenant", skip_all, fields(tenant = tenant), err(Display, level = "debug"))]
    pub async fn delete_tenant_with(
        &self,
        tenant: &str,
        actor: &str,
        revoker: &dyn Revoker,
    ) -> Result<TenantDeletion, StoreError> {
        self.delete_tenant_inner(tenant, actor, Some(revoker)).await
    }

    /// [`delete_tenant`](Self::delete_tenant) inside the application's transaction (see
    /// [`Tenant::put_in`](crate::store::Tenant::put_in)): the deletion and its audit row
    /// commit or roll back with it. The tenant's cached row is dropped either way.
    ///
    /// Its OAuth tokens are not revoked here: a call to the provider cannot be rolled back,
    /// and credvault cannot know whether the transaction commits. Once it has, the next
    /// [`purge`](Self::purge) revokes them (with the vault's
    /// [`revoker`](crate::store::VaultBuilder::revoker)) and removes them; to do it at once,
    /// call [`delete_tenant`](Self::delete_tenant) or
    /// [`delete_tenant_with`](Self::delete_tenant_with) after the commit (idempotent: the
    /// deadline stays the one set here).
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
        let (purge_after, _) = self
            .mark_tenant_deleted(&mut self.on(conn)?, tenant, actor)
            .await?;
        Ok(purge_after)
    }

    async fn delete_tenant_inner(
        &self,
        tenant: &str,
        actor: &str,
        revoker: Option<&dyn Revoker>,
    ) -> Result<TenantDeletion, StoreError> {
        self.require_revoker("account_deletion.tokens", revoker.is_some())?;
        // Marked first: no token can be written while the others are being revoked.
        let (purge_after, id) = self
            .mark_tenant_deleted(&mut On::Pool, tenant, actor)
            .await?;
        let mut deletion = TenantDeletion {
            purge_after,
            tokens_revoked: 0,
            tokens_removed: 0,
            revocation_failures: 0,
            unreadable: Vec::new(),
        };
        let row = match self.live_tenant(&id).await {
            Ok(row) => row,
            // Never stored anything, or already purged: no token to revoke.
            Err(StoreError::UnknownTenant(_) | StoreError::TenantShredded(_)) => {
                return Ok(deletion);
            }
            Err(e) => return Err(e),
        };
        let tokens = Tenant::new(self.clone(), id)
            .with_actor(actor)?
            .remove_tokens(&row, revoker)
            .await?;
        deletion.tokens_revoked = tokens.revoked;
        deletion.tokens_removed = tokens.removed;
        deletion.revocation_failures = tokens.failed;
        deletion.unreadable = tokens.unreadable;
        Ok(deletion)
    }

    /// Marks the tenant deleted on `on` (idempotent) and returns its deadline: the one set by
    /// an earlier call if there was one, the current time if there is no such tenant.
    async fn mark_tenant_deleted(
        &self,
        on: &mut On<'_>,
        tenant: &str,
        actor: &str,
    ) -> Result<(i64, TenantId), StoreError> {
        let id = TenantId::new(tenant)?;
        crate::text::check_label("actor", actor)?;
        self.keys_ready_on(on).await?;
        let now = self.now();
        self.forget_tenant_row(&id);
        match on.tenant(self, &id).await? {
            None => return Ok((now, id)),
            Some(row) => {
                if let Some(purge_after) = row.purge_after {
                    return Ok((purge_after, id));
                }
            }
        }
        let purge_after = now.saturating_add(secs(self.config().grace_period));
        let audit = [self
            .seal_audit_row(self.tenant_audit(&id, AuditAction::TenantDelete, actor, "ok"))
            .await?];
        let found = on
            .set_tenant_deletion(self, &id, Some(now), Some(purge_after), &audit)
            .await?;
        self.forget_tenant_row(&id);
        // Not found: purged (or its shred secret destroyed) since it was read.
        Ok((if found { purge_after } else { now }, id))
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
        crate::text::check_label("actor", actor)?;
        self.keys_ready().await?;
        let audit = [self
            .seal_audit_row(self.tenant_audit(&id, AuditAction::TenantRestore, actor, "ok"))
            .await?];
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

    /// The purge job, deleting what has reached its deadline: destroys tenants whose grace
    /// period is over (shred secret first, then the wrapped DEK and every record, in one
    /// transaction), deletes records whose retention ran out, and trims the audit log to its
    /// retention. Before that it retries the revocation of deleted tenants' OAuth tokens
    /// that failed (with the vault's [`revoker`](crate::store::VaultBuilder::revoker)), and
    /// after it flushes the database file ([`Backend::flush_deleted`]). Safe to run from
    /// several servers and to run again after a crash.
    ///
    /// Run on its own, it deletes each item at or after its deadline, never before: a purge
    /// that runs every hour is up to an hour late. To keep the promises, run it on a schedule
    /// that deletes ahead: [`spawn_purger`](Self::spawn_purger) (or
    /// [`purge_on_schedule`](Self::purge_on_schedule) from your own scheduler, or
    /// `credvault vault purge --every`/`--watch`). [`PurgeReport::oldest_overdue`] says
    /// whether a promise was missed.
    ///
    /// [`Backend::flush_deleted`]: crate::backend::Backend::flush_deleted
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
        self.purge_ahead(0).await
    }

    /// The purge job as run every `schedule.interval`: it deletes every item whose deadline
    /// falls before the next run could start, that is at or before now + interval + margin,
    /// so that each item is gone before its promised deadline (a deleted tenant's grace
    /// period is cut short by that lead). Otherwise as [`purge`](Self::purge). Audit rows are
    /// trimmed at their retention exactly (a promise to keep them, not to delete them).
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidPurgeSchedule`] if the schedule cannot keep the vault's shortest
    /// promise (nothing is done); otherwise as [`purge`](Self::purge).
    #[tracing::instrument(name = "credvault.purge", skip_all, err(Display, level = "warn"))]
    pub async fn purge_on_schedule(
        &self,
        schedule: &PurgerConfig,
    ) -> Result<PurgeReport, StoreError> {
        let lead = self.schedule_lead(schedule)?;
        self.purge_ahead(lead).await
    }

    /// The lead a schedule needs, in whole seconds, after checking it against the promises.
    pub(crate) fn schedule_lead(&self, schedule: &PurgerConfig) -> Result<i64, StoreError> {
        let config = self.config();
        let promise = config.grace_period.min(config.derived_retention);
        let lead = schedule.lead();
        if schedule.interval.is_zero() || lead >= promise {
            return Err(StoreError::InvalidPurgeSchedule {
                interval: schedule.interval,
                margin: schedule.margin,
                promise,
            });
        }
        let secs = lead
            .as_secs()
            .saturating_add(u64::from(lead.subsec_nanos() > 0));
        Ok(i64::try_from(secs).unwrap_or(i64::MAX))
    }

    /// Moves deleted rows' bytes out of the live database files (see
    /// [`Backend::flush_deleted`](crate::backend::Backend::flush_deleted)); an incomplete
    /// flush is logged (the next one finishes it).
    pub(crate) async fn flush_deleted(&self) -> Result<(), StoreError> {
        if !self.backend().flush_deleted().await? {
            tracing::warn!(
                "credvault: the WAL checkpoint after a deletion was blocked by a reader; \
                 deleted bytes stay in the WAL until the next flush"
            );
        }
        Ok(())
    }

    /// Retries the token revocations of every tenant in its grace period (tokens left by a
    /// failed revocation or an interrupted deletion). A tenant whose pass fails is logged and
    /// skipped: it is retried on the next run.
    async fn retry_revocations(&self, report: &mut PurgeReport) -> Result<(), StoreError> {
        let due = self.backend().tenants_due_for_purge(i64::MAX).await?;
        // A tenant whose id does not decode is named by the purge pass that follows.
        for id in due.into_iter().filter_map(Result::ok) {
            let row = match self.backend().tenant(&id).await {
                Ok(Some(row)) => row,
                Ok(None) => continue,
                // Named by the purge pass that follows.
                Err(e) if e.kind() == BackendErrorKind::Corrupt => continue,
                Err(e) => return Err(e.into()),
            };
            if row.shredded_at.is_some() {
                continue;
            }
            let mut tenant = Tenant::new(self.clone(), id);
            PURGE_ACTOR.clone_into(&mut tenant.actor);
            match tenant.remove_tokens(&row, self.revoker()).await {
                Ok(done) => {
                    report.tokens_revoked += done.revoked;
                    report.tokens_removed += done.removed;
                    report.revocation_failures += done.failed;
                    report.unreadable.extend(done.unreadable);
                }
                Err(e) => tracing::warn!(
                    tenant = %tenant.id,
                    error = %e,
                    "credvault purge: revoking a deleted tenant's tokens failed; retried next run"
                ),
            }
        }
        Ok(())
    }

    /// The purge, deleting what is due by now + `lead` seconds.
    async fn purge_ahead(&self, lead: i64) -> Result<PurgeReport, StoreError> {
        self.keys_ready().await?;
        let now = self.now();
        let due = now.saturating_add(lead);
        let mut report = PurgeReport {
            oldest_overdue: overdue(now, self.backend().oldest_purge_deadline().await?),
            ..PurgeReport::default()
        };
        self.retry_revocations(&mut report).await?;
        let mut refused = Vec::new();
        for tenant in self.backend().tenants_due_for_purge(due).await? {
            let tenant = match tenant {
                Ok(tenant) => tenant,
                Err(skipped) => {
                    report.unreadable.push(skipped);
                    continue;
                }
            };
            let row = match self.backend().tenant(&tenant).await {
                Ok(Some(row)) => row,
                Ok(None) => continue, // purged by another process meanwhile
                Err(e) if e.kind() == BackendErrorKind::Corrupt => {
                    tracing::warn!(tenant = %tenant, error = %e, "credvault purge: a tenant's row cannot be read; skipped");
                    report.unreadable.push(UnreadableRow::new(
                        tenant.as_str(),
                        None,
                        None,
                        RowFault::UnreadableColumn,
                        Some("credvault_tenants"),
                    ));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if row.shredded_at.is_none() {
                if !self.has_shred_secret(&tenant).await? {
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
            self.destroy_shred_secret(&tenant).await?;
            self.forget_tenant(&tenant);
            let audit = [self.tenant_audit(&tenant, AuditAction::TenantPurge, PURGE_ACTOR, "ok")];
            report.tenant_records += self.backend().purge_tenant(&tenant, &audit).await?;
            report.tenants.push(tenant);
        }
        let expired = self.backend().purge_records(due, now, PURGE_ACTOR).await?;
        report.expired_records = u64::try_from(expired.len()).unwrap_or(u64::MAX);
        report
            .unreadable
            .extend(expired.into_iter().filter_map(Result::err));
        self.flush_audit().await?;
        report.audit_rows = self
            .backend()
            .purge_audit(now.saturating_sub(secs(self.config().audit_retention)))
            .await?;
        if !report.tenants.is_empty() || report.expired_records > 0 || report.audit_rows > 0 {
            self.flush_deleted().await?;
        }
        if !report.oldest_overdue.is_zero() {
            tracing::warn!(
                overdue_seconds = report.oldest_overdue.as_secs(),
                "credvault purge: an item waited past its promised deletion deadline; run the \
                 purge more often (spawn_purger, or purge --every)"
            );
        }
        tracing::info!(
            tenants = report.tenants.len(),
            tenant_records = report.tenant_records,
            expired_records = report.expired_records,
            audit_rows = report.audit_rows,
            tokens_revoked = report.tokens_revoked,
            revocation_failures = report.revocation_failures,
            refused = refused.len(),
            "credvault purge finished"
        );
        if !refused.is_empty() {
            return Err(StoreError::ShredSecretMissing {
                tenants: refused,
                report: Box::new(report),
            });
        }
        // Only a run that did all its work is recorded: `promises check` shows it.
        self.backend()
            .record_purge_run(now, secs(report.oldest_overdue))
            .await?;
        Ok(report)
    }
}

/// How long past `deadline` `now` is (zero if not past, or nothing waits).
fn overdue(now: i64, deadline: Option<i64>) -> Duration {
    deadline
        .and_then(|d| u64::try_from(now.saturating_sub(d)).ok())
        .map_or(Duration::ZERO, Duration::from_secs)
}
