//! Disconnecting a provider: revoke, then delete at once; derived data within its retention.

use std::fmt;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::backend::VaultConnection;
use crate::backend::{AuditAction, BoxFuture, RecordKey, SecretRow, TenantRow, UnreadableRow};
use crate::secret::SecretBytes;
use crate::store::{OAuthToken, On, SecretKind, StoreError, Tenant};
use crate::{RecordKind, RecordName, TenantId};

/// A credential about to be deleted, handed to the application's [`Revoker`].
pub struct RevocationRequest {
    /// The tenant.
    pub tenant: TenantId,
    /// The record kind.
    pub kind: String,
    /// The record name.
    pub name: String,
    /// The provider being disconnected.
    pub provider: String,
    payload: SecretBytes,
}

impl fmt::Debug for RevocationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationRequest")
            .field("tenant", &self.tenant)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl RevocationRequest {
    pub(crate) fn new(
        tenant: TenantId,
        kind: String,
        name: String,
        provider: String,
        payload: SecretBytes,
    ) -> Self {
        Self {
            tenant,
            kind,
            name,
            provider,
            payload,
        }
    }

    /// The record's decrypted JSON.
    pub fn payload(&self) -> &SecretBytes {
        &self.payload
    }

    /// The OAuth token, if the record is one (RFC 7009: revoke the refresh token if there is
    /// one, else the access token).
    pub fn oauth_token(&self) -> Option<OAuthToken> {
        (self.kind == OAuthToken::KIND)
            .then(|| serde_json::from_slice(self.payload.expose_secret()).ok())
            .flatten()
    }
}

/// Why a revocation failed: a short message without secrets (`http 503`, `timeout`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RevokeError(pub String);

/// Calls a provider's revocation endpoint (RFC 7009). Supplied by the application; credvault
/// calls it before deleting each credential of the provider being disconnected.
///
/// ```
/// use credvault::backend::BoxFuture;
/// use credvault::store::{RevocationRequest, RevokeError, Revoker};
///
/// #[derive(Debug)]
/// struct GitHubRevoker;
///
/// impl Revoker for GitHubRevoker {
///     fn revoke<'a>(&'a self, req: &'a RevocationRequest) -> BoxFuture<'a, Result<(), RevokeError>> {
///         Box::pin(async move {
///             let _token = req.oauth_token().ok_or_else(|| RevokeError("not a token".into()))?;
///             // POST it to the provider's revocation endpoint here.
///             Ok(())
///         })
///     }
/// }
/// ```
pub trait Revoker: Send + Sync + fmt::Debug {
    /// Revokes the credential. An error is recorded in the audit log; the credential is
    /// deleted anyway.
    fn revoke<'a>(
        &'a self,
        request: &'a RevocationRequest,
    ) -> BoxFuture<'a, Result<(), RevokeError>>;
}

/// A credential whose revocation failed or could not be attempted (it was deleted anyway).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RevocationFailure {
    /// The record kind.
    pub kind: String,
    /// The record name.
    pub name: String,
    /// Why: the revoker's message, or that the record could not be opened (never a secret).
    pub reason: String,
}

/// What [`Tenant::disconnect`] did. Serialised with these field names; times are Unix seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DisconnectReport {
    /// Credentials deleted at once.
    pub deleted: u64,
    /// Credentials the revoker accepted.
    pub revoked: u64,
    /// Credentials whose revocation failed or could not be attempted.
    pub revocation_failures: Vec<RevocationFailure>,
    /// Derived records scheduled for the purge job.
    pub derived_scheduled: u64,
    /// When the purge job may delete the derived records.
    pub derived_purge_after: Option<i64>,
    /// Rows of the provider that could not be read (a name that is not valid, a column that
    /// does not decode): skipped, neither revoked nor deleted; the rest was disconnected.
    pub unreadable: Vec<UnreadableRow>,
}

/// The revocations a [`Tenant::disconnect_in`] leaves to run after the application's
/// transaction commits: the deleted credentials, decrypted, for the provider's revocation
/// endpoint. Run them with [`revoke`](Self::revoke) once the transaction has committed; drop
/// them (their payloads are zeroed) if it rolled back. `Debug` shows no secret.
pub struct Revocations {
    tenant: Tenant,
    report: DisconnectReport,
    requests: Vec<RevocationRequest>,
    /// Credentials that could not be opened: (kind, name, reason).
    unreadable: Vec<RevocationFailure>,
}

impl fmt::Debug for Revocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revocations")
            .field("tenant", &self.tenant.id)
            .field("report", &self.report)
            .field("requests", &self.requests)
            .field("unreadable", &self.unreadable)
            .finish()
    }
}

impl Revocations {
    /// What the disconnect did in the transaction (nothing revoked yet).
    pub fn report(&self) -> &DisconnectReport {
        &self.report
    }

    /// The credentials to revoke.
    pub fn requests(&self) -> &[RevocationRequest] {
        &self.requests
    }

    /// Revokes each credential through `revoker` and audits each outcome (`revoke`, in its
    /// own transaction on the vault's pool: call it after your transaction committed, and on
    /// SQLite after it ended). Returns the disconnect's report with the revocations counted.
    ///
    /// # Errors
    ///
    /// A storage error writing the audit rows (the revocations were attempted). Revocation
    /// failures are not errors: they are in the report and the audit log.
    pub async fn revoke(self, revoker: &dyn Revoker) -> Result<DisconnectReport, StoreError> {
        let Self {
            tenant,
            mut report,
            requests,
            unreadable,
        } = self;
        let mut audit = Vec::new();
        for request in &requests {
            let key = record_key(&tenant, &request.kind, &request.name)?;
            match revoker.revoke(request).await {
                Ok(()) => {
                    report.revoked += 1;
                    audit.push(tenant.audit(&key, AuditAction::Revoke, "ok"));
                }
                Err(e) => {
                    audit.push(tenant.audit(
                        &key,
                        AuditAction::Revoke,
                        &format!("failed: {}", e.0),
                    ));
                    report.revocation_failures.push(RevocationFailure {
                        kind: request.kind.clone(),
                        name: request.name.clone(),
                        reason: e.0,
                    });
                }
            }
        }
        for failure in unreadable {
            let key = record_key(&tenant, &failure.kind, &failure.name)?;
            let outcome = format!("failed: {}", failure.reason);
            audit.push(tenant.audit(&key, AuditAction::Revoke, &outcome));
            report.revocation_failures.push(failure);
        }
        let audit = tenant.vault.seal_audit(&audit).await?;
        tenant.vault.backend().append_audit(&audit).await?;
        Ok(report)
    }
}

/// A tenant's row, a provider's credentials and derived records, and its unreadable rows.
type ProviderRows = (
    TenantRow,
    Vec<SecretRow>,
    Vec<SecretRow>,
    Vec<UnreadableRow>,
);

fn record_key(tenant: &Tenant, kind: &str, name: &str) -> Result<RecordKey, StoreError> {
    Ok(RecordKey {
        tenant: tenant.id.clone(),
        kind: RecordKind::new(kind)?,
        name: RecordName::new(name)?,
    })
}

impl Tenant {
    /// Disconnects `provider`: every credential of the provider is revoked through `revoker`
    /// (if given) and then deleted at once, in one transaction with its audit rows (a failed
    /// revocation is audited and does not keep the credential). Derived data of the provider
    /// is scheduled for deletion by the purge job within the vault's derived-data retention.
    /// A tenant that never stored anything has nothing to disconnect (an empty report).
    ///
    /// Allowed during a tenant's deletion grace period too (a deleted tenant's tokens are
    /// revoked by the deletion itself; this serves the credentials it left). Afterwards the
    /// database file is flushed ([`Backend::flush_deleted`]): on SQLite no byte of the deleted
    /// rows stays in the file or its WAL.
    ///
    /// [`Backend::flush_deleted`]: crate::backend::Backend::flush_deleted
    ///
    /// # Errors
    ///
    /// [`StoreError::TenantShredded`] (already purged), storage errors. A tenant that never
    /// stored anything has nothing to disconnect (an empty report). Revocation failures are
    /// not errors.
    #[tracing::instrument(name = "credvault.disconnect", skip_all, fields(tenant = %self.id, provider = provider), err(Display, level = "debug"))]
    pub async fn disconnect(
        &self,
        provider: &str,
        revoker: Option<&dyn Revoker>,
    ) -> Result<DisconnectReport, StoreError> {
        self.vault
            .require_revoker("disconnect.tokens", revoker.is_some())?;
        let on = &mut On::Pool;
        let Some((tenant, credentials, derived, unreadable)) =
            self.provider_rows(on, provider).await?
        else {
            return Ok(DisconnectReport::default());
        };
        let mut report = DisconnectReport {
            unreadable,
            ..DisconnectReport::default()
        };
        let mut audit = Vec::new();
        let mut keys = Vec::new();
        for row in &credentials {
            let outcome = match (revoker, self.open_bytes(on, row.into(), &tenant).await) {
                (None, _) => None,
                (Some(r), Ok(payload)) => {
                    let request = self.request(row, provider, payload);
                    Some(r.revoke(&request).await.map_err(|e| e.0))
                }
                (Some(_), Err(e)) => Some(Err(format!("record unreadable, not revoked: {e}"))),
            };
            match outcome {
                Some(Ok(())) => {
                    report.revoked += 1;
                    audit.push(self.audit(&row.key, AuditAction::Revoke, "ok"));
                }
                Some(Err(reason)) => {
                    audit.push(self.audit(
                        &row.key,
                        AuditAction::Revoke,
                        &format!("failed: {reason}"),
                    ));
                    report.revocation_failures.push(RevocationFailure {
                        kind: row.key.kind.to_string(),
                        name: row.key.name.to_string(),
                        reason,
                    });
                }
                None => {}
            }
            audit.push(self.audit(&row.key, AuditAction::Disconnect, "ok"));
            keys.push(row.key.clone());
        }
        let audit = self.vault.seal_audit(&audit).await?;
        report.deleted = on.delete(&self.vault, &keys, &audit).await?;
        if report.deleted > 0 && !on.joined() {
            self.vault.flush_deleted().await?;
        }
        self.schedule_derived(on, &derived, &mut report).await?;
        Ok(report)
    }

    /// [`disconnect`](Self::disconnect) inside the application's transaction: the provider's
    /// credentials are deleted and derived data scheduled, with their audit rows, in the
    /// transaction; nothing is revoked yet. Revocation is a call to the provider that no
    /// transaction can undo, so it must not run before the deletion is committed (a rollback
    /// would keep a credential the provider already revoked) and credvault cannot know when
    /// your transaction commits: the credentials are returned, decrypted, as [`Revocations`]
    /// for you to [`revoke`](Revocations::revoke) after the commit (or drop after a rollback).
    ///
    /// # Errors
    ///
    /// As [`disconnect`](Self::disconnect); [`StoreError::WrongConnection`].
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[tracing::instrument(name = "credvault.disconnect_in", skip_all, fields(tenant = %self.id, provider = provider), err(Display, level = "debug"))]
    pub async fn disconnect_in<C: VaultConnection>(
        &self,
        conn: &mut C,
        provider: &str,
    ) -> Result<Revocations, StoreError> {
        let on = &mut self.vault.on(conn)?;
        let mut out = Revocations {
            tenant: self.clone(),
            report: DisconnectReport::default(),
            requests: Vec::new(),
            unreadable: Vec::new(),
        };
        let Some((tenant, credentials, derived, unreadable)) =
            self.provider_rows(on, provider).await?
        else {
            return Ok(out);
        };
        out.report.unreadable = unreadable;
        let mut audit = Vec::new();
        let mut keys = Vec::new();
        for row in &credentials {
            match self.open_bytes(on, row.into(), &tenant).await {
                Ok(payload) => out.requests.push(self.request(row, provider, payload)),
                Err(e) => out.unreadable.push(RevocationFailure {
                    kind: row.key.kind.to_string(),
                    name: row.key.name.to_string(),
                    reason: format!("record unreadable, not revoked: {e}"),
                }),
            }
            audit.push(self.audit(&row.key, AuditAction::Disconnect, "ok"));
            keys.push(row.key.clone());
        }
        let audit = self.vault.seal_audit(&audit).await?;
        out.report.deleted = on.delete(&self.vault, &keys, &audit).await?;
        self.schedule_derived(on, &derived, &mut out.report).await?;
        Ok(out)
    }

    /// The tenant's row, the provider's credentials and derived records, and its rows that
    /// could not be read; `None` for a tenant that never stored anything.
    async fn provider_rows(
        &self,
        on: &mut On<'_>,
        provider: &str,
    ) -> Result<Option<ProviderRows>, StoreError> {
        let tenant = match self.vault.live_tenant_on(on, &self.id).await {
            Err(StoreError::UnknownTenant(_)) => return Ok(None),
            other => other?,
        };
        let rows = self.all_rows(on, None, Some(provider)).await?;
        let derived_kinds = &self.vault.config().derived_kinds;
        let (derived, credentials): (Vec<_>, Vec<_>) = rows
            .rows
            .into_iter()
            .partition(|r| derived_kinds.iter().any(|k| k == r.key.kind.as_str()));
        Ok(Some((tenant, credentials, derived, rows.unreadable)))
    }

    fn request(&self, row: &SecretRow, provider: &str, payload: SecretBytes) -> RevocationRequest {
        RevocationRequest {
            tenant: self.id.clone(),
            kind: row.key.kind.to_string(),
            name: row.key.name.to_string(),
            provider: provider.to_owned(),
            payload,
        }
    }

    /// Schedules the derived records for the purge job, within the derived-data retention.
    async fn schedule_derived(
        &self,
        on: &mut On<'_>,
        derived: &[SecretRow],
        report: &mut DisconnectReport,
    ) -> Result<(), StoreError> {
        if derived.is_empty() {
            return Ok(());
        }
        let purge_after = self
            .vault
            .now()
            .saturating_add(crate::store::secs(self.vault.config().derived_retention));
        let keys: Vec<RecordKey> = derived.iter().map(|r| r.key.clone()).collect();
        let audit: Vec<_> = keys
            .iter()
            .map(|k| {
                self.audit(
                    k,
                    AuditAction::SchedulePurge,
                    &format!("purge after {purge_after}"),
                )
            })
            .collect();
        report.derived_scheduled = on
            .set_purge_after(
                &self.vault,
                &keys,
                purge_after,
                &self.vault.seal_audit(&audit).await?,
            )
            .await?;
        report.derived_purge_after = Some(purge_after);
        Ok(())
    }
}
