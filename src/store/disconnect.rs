//! Disconnecting a provider: revoke, then delete at once; derived data within its retention.

use std::fmt;

use crate::TenantId;
use crate::backend::{BoxFuture, RecordKey};
use crate::secret::SecretBytes;
use crate::store::{OAuthToken, SecretKind, StoreError, Tenant};

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

/// What [`Tenant::disconnect`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisconnectReport {
    /// Credentials deleted at once.
    pub deleted: u64,
    /// Credentials the revoker accepted.
    pub revoked: u64,
    /// Credentials whose revocation failed or could not be attempted: (kind, name, reason).
    pub revocation_failures: Vec<(String, String, String)>,
    /// Derived records scheduled for the purge job.
    pub derived_scheduled: u64,
    /// When the purge job may delete the derived records.
    pub derived_purge_after: Option<i64>,
}

impl Tenant {
    /// Disconnects `provider`: every credential of the provider is revoked through `revoker`
    /// (if given) and then deleted at once, in one transaction with its audit rows (a failed
    /// revocation is audited and does not keep the credential). Derived data of the provider
    /// is scheduled for deletion by the purge job within the vault's derived-data retention.
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
    /// [`StoreError::UnknownTenant`], [`StoreError::TenantShredded`] (already purged), storage
    /// errors. Revocation failures are not errors.
    #[tracing::instrument(name = "credvault.disconnect", skip_all, fields(tenant = %self.id, provider = provider), err(Display, level = "debug"))]
    pub async fn disconnect(
        &self,
        provider: &str,
        revoker: Option<&dyn Revoker>,
    ) -> Result<DisconnectReport, StoreError> {
        let tenant = self.vault.live_tenant(&self.id).await?;
        let rows = self.all_rows(None, Some(provider)).await?;
        let derived_kinds = &self.vault.config().derived_kinds;
        let (derived, credentials): (Vec<_>, Vec<_>) = rows
            .into_iter()
            .partition(|r| derived_kinds.iter().any(|k| k == r.key.kind.as_str()));
        let mut report = DisconnectReport::default();
        let mut audit = Vec::new();
        let mut keys = Vec::new();
        for row in &credentials {
            let outcome = match (revoker, self.open_bytes(row, &tenant).await) {
                (None, _) => None,
                (Some(r), Ok(payload)) => {
                    let request = RevocationRequest {
                        tenant: self.id.clone(),
                        kind: row.key.kind.to_string(),
                        name: row.key.name.to_string(),
                        provider: provider.to_owned(),
                        payload,
                    };
                    Some(r.revoke(&request).await.map_err(|e| e.0))
                }
                (Some(_), Err(e)) => Some(Err(format!("record unreadable, not revoked: {e}"))),
            };
            match outcome {
                Some(Ok(())) => {
                    report.revoked += 1;
                    audit.push(self.audit(&row.key, "revoke", "ok"));
                }
                Some(Err(reason)) => {
                    audit.push(self.audit(&row.key, "revoke", &format!("failed: {reason}")));
                    report.revocation_failures.push((
                        row.key.kind.to_string(),
                        row.key.name.to_string(),
                        reason,
                    ));
                }
                None => {}
            }
            audit.push(self.audit(&row.key, "disconnect", "ok"));
            keys.push(row.key.clone());
        }
        report.deleted = self.vault.backend().delete(&keys, &audit).await?;
        if report.deleted > 0 {
            self.vault.flush_deleted().await?;
        }
        if !derived.is_empty() {
            let purge_after = self
                .vault
                .now()
                .saturating_add(self.vault.config().derived_retention);
            let keys: Vec<RecordKey> = derived.iter().map(|r| r.key.clone()).collect();
            let audit: Vec<_> = keys
                .iter()
                .map(|k| self.audit(k, "schedule_purge", &format!("purge after {purge_after}")))
                .collect();
            report.derived_scheduled = self
                .vault
                .backend()
                .set_purge_after(&keys, purge_after, &audit)
                .await?;
            report.derived_purge_after = Some(purge_after);
        }
        Ok(report)
    }
}
