//! A deleted tenant's OAuth tokens: revoked and removed at deletion, failures retried by the
//! purge.

use crate::RecordKind;
use crate::backend::{AuditAction, TenantRow, UnreadableRow};
use crate::store::tenant::Rows;
use crate::store::{OAuthToken, On, RevocationRequest, Revoker, SecretKind, StoreError, Tenant};

/// What one pass over a deleted tenant's tokens did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TokenRemoval {
    /// Tokens the revoker accepted.
    pub(crate) revoked: u64,
    /// Tokens deleted (revoked, unreadable, or without a revoker).
    pub(crate) removed: u64,
    /// Tokens whose revocation failed: kept, sealed, for the next purge to retry.
    pub(crate) failed: u64,
    /// Token rows that do not decode (a name that is not valid, metadata that is not JSON):
    /// neither revocable nor addressable, left for the tenant's purge, which deletes every
    /// row of the tenant.
    pub(crate) unreadable: Vec<UnreadableRow>,
}

impl Tenant {
    /// Revokes every OAuth token of the tenant through `revoker` and deletes each one it
    /// accepted, in one transaction with the audit rows (`revoke`, then `delete`). Without a
    /// revoker every token is deleted unrevoked. A token whose revocation fails is audited
    /// (`revoke`, `failed: ...`) and kept, sealed, for the purge to retry (the tenant's own
    /// purge deletes it at the latest); one that cannot be opened can never be revoked and is
    /// deleted. Flushes the database file when anything was deleted.
    pub(crate) async fn remove_tokens(
        &self,
        tenant: &TenantRow,
        revoker: Option<&dyn Revoker>,
    ) -> Result<TokenRemoval, StoreError> {
        let kind = RecordKind::new(OAuthToken::KIND)?;
        let Rows { rows, unreadable } = self.all_rows(&mut On::Pool, Some(&kind), None).await?;
        for row in &unreadable {
            tracing::warn!(
                tenant = %self.id,
                row = %row,
                "credvault: a token row of a deleted tenant does not decode: not revoked, left for the tenant's purge"
            );
        }
        let mut out = TokenRemoval {
            unreadable,
            ..TokenRemoval::default()
        };
        let mut audit = Vec::new();
        let mut keys = Vec::new();
        for row in &rows {
            if let Some(revoker) = revoker {
                let outcome = match self.open_bytes(&On::Pool, row.into(), tenant).await {
                    Ok(payload) => {
                        let request = RevocationRequest::new(
                            self.id.clone(),
                            row.key.kind.to_string(),
                            row.key.name.to_string(),
                            row.provider.clone().unwrap_or_default(),
                            payload,
                        );
                        revoker.revoke(&request).await.map_err(|e| Some(e.0))
                    }
                    Err(e) => {
                        let reason = format!("failed: record unreadable, not revoked: {e}");
                        audit.push(self.audit(&row.key, AuditAction::Revoke, &reason));
                        Err(None)
                    }
                };
                match outcome {
                    Ok(()) => {
                        out.revoked += 1;
                        audit.push(self.audit(&row.key, AuditAction::Revoke, "ok"));
                    }
                    Err(Some(reason)) => {
                        let outcome = format!("failed: {reason}; kept for a retry by the purge");
                        audit.push(self.audit(&row.key, AuditAction::Revoke, &outcome));
                        out.failed += 1;
                        continue;
                    }
                    Err(None) => {}
                }
            }
            audit.push(self.audit(&row.key, AuditAction::Delete, "ok: tenant deleted"));
            keys.push(row.key.clone());
        }
        let audit = self.vault.seal_audit(&audit).await?;
        if keys.is_empty() {
            if !audit.is_empty() {
                self.vault.backend().append_audit(&audit).await?;
            }
            return Ok(out);
        }
        out.removed = self.vault.backend().delete(&keys, &audit).await?;
        self.vault.flush_deleted().await?;
        Ok(out)
    }
}
