//! Refreshing an expiring OAuth token exactly once among many tasks and processes.
//!
//! The refresh takes a lease on the record by compare-and-swap (version + 1, `lease_until`
//! set), runs the caller's closure, and writes the new token by compare-and-swap while
//! clearing the lease. Everyone else who finds the token expiring sees the lease, waits, and
//! reads the new token. Providers rotate refresh tokens: two concurrent refreshes would spend
//! the same refresh token twice and one of the new tokens would be lost, disconnecting the
//! user. A holder that dies leaves a lease that expires after `refresh_lease`.

use std::future::Future;
use std::time::Duration;

use crate::backend::{AuditAction, BackendErrorKind, RecordKey, SecretRow};
use crate::store::{OAuthToken, On, StoreError, Tenant, Versioned, secs};

/// First wait between looks at a record whose refresh is in progress elsewhere.
const FIRST_WAIT: Duration = Duration::from_millis(10);
/// Longest wait between looks.
const MAX_WAIT: Duration = Duration::from_millis(250);

impl Tenant {
    /// The OAuth token `name`, refreshed first if it expires within `min_validity`.
    ///
    /// `refresh` receives the current token and returns the new one (call the provider's token
    /// endpoint there). Among all tasks and processes sharing the database, one refresh runs
    /// at a time; the others wait for it and return its result. A token without an expiry is
    /// returned as it is.
    ///
    /// # Errors
    ///
    /// [`StoreError::RefreshFailed`] if the closure fails: the stored token is unchanged, the
    /// lease released, and the closure's error is kept as the error's source (any
    /// `std::error::Error + Send + Sync`, or a message: keep secrets out of it, it reaches
    /// error messages and logs); [`StoreError::RefreshTimedOut`] if another refresh
    /// held the lease past `refresh_lease` + 5 seconds; the errors of [`get`](Self::get).
    ///
    /// Audited as [`get`](Self::get) is: reading the stored token writes a `get` row (with
    /// the vault's [`ReadAudit`](crate::store::ReadAudit) mode), a refresh its own
    /// `refresh_lease` and `refresh` rows, and a token that does not open an `open_failed` row.
    #[tracing::instrument(name = "credvault.refresh", skip_all, fields(tenant = %self.id, kind = "oauth_token", name = name), err(Display, level = "debug"))]
    pub async fn refresh<F, Fut, E>(
        &self,
        name: &str,
        min_validity: Duration,
        refresh: F,
    ) -> Result<Versioned<OAuthToken>, StoreError>
    where
        F: FnOnce(OAuthToken) -> Fut,
        Fut: Future<Output = Result<OAuthToken, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let key = self.key::<OAuthToken>(name)?;
        let lease = self.vault.config().refresh_lease;
        let deadline = tokio::time::Instant::now() + lease.saturating_add(Duration::from_secs(5));
        let mut wait = FIRST_WAIT;
        loop {
            let tenant = match self.vault.active_tenant(&self.id).await {
                Err(StoreError::UnknownTenant(_)) => return Err(self.not_found(&key)),
                other => other?,
            };
            let row = self.fetch(&mut On::Pool, &key).await?;
            let token: OAuthToken = self
                .open_row_audited(&mut On::Pool, (&row).into(), &tenant)
                .await?;
            let now = self.vault.now();
            let fresh = token
                .expires_at
                .is_none_or(|e| e > now.saturating_add(secs(min_validity)));
            if fresh {
                // Returning a stored token is a read, audited as `get` reads are.
                self.vault
                    .record_read(self.audit(&key, AuditAction::Get, "ok"))
                    .await?;
                return Ok(Versioned {
                    value: token,
                    version: row.version,
                });
            }
            if row.lease_until.is_some_and(|until| until > now) {
                if tokio::time::Instant::now() >= deadline {
                    return Err(StoreError::RefreshTimedOut {
                        tenant: self.id.clone(),
                        kind: key.kind.to_string(),
                        name: key.name.to_string(),
                    });
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_WAIT);
                continue;
            }
            // Take the lease: same sealed payload, next version, lease set.
            let mut leased = row.clone();
            leased.version = row.version.saturating_add(1);
            leased.lease_until = Some(now.saturating_add(secs(lease)));
            let audit = [self
                .sealed_audit(&key, AuditAction::RefreshLease, "ok")
                .await?];
            match self
                .vault
                .backend()
                .update(&leased, row.version, &audit)
                .await
            {
                Ok(true) => {}
                // Someone else moved first, or the record was re-encrypted: look again.
                Ok(false) => continue,
                Err(e) if e.kind() == BackendErrorKind::StaleKey => continue,
                Err(e) => return Err(e.into()),
            }
            return match refresh(token.clone()).await {
                Ok(new_token) => {
                    // The stored token was read (handed to the closure): audited as a read.
                    self.vault
                        .record_read(self.audit(&key, AuditAction::Get, "ok"))
                        .await?;
                    let version = self
                        .update_row(
                            &mut On::Pool,
                            &key,
                            &new_token,
                            &tenant,
                            Some(&leased),
                            leased.version,
                            None,
                            AuditAction::Refresh,
                        )
                        .await?;
                    Ok(Versioned {
                        value: new_token,
                        version,
                    })
                }
                Err(e) => {
                    self.release_lease(&key, leased).await?;
                    Err(StoreError::RefreshFailed(e.into()))
                }
            };
        }
    }

    /// Clears the lease after a failed refresh, leaving the token as it was. If the record was
    /// re-encrypted while the lease was held, the lease is cleared on the re-encrypted row.
    async fn release_lease(
        &self,
        key: &RecordKey,
        mut leased: SecretRow,
    ) -> Result<(), StoreError> {
        for _ in 0..2 {
            let mut released = leased.clone();
            released.version = leased.version.saturating_add(1);
            released.lease_until = None;
            let audit = [self
                .sealed_audit(key, AuditAction::Refresh, "failed")
                .await?];
            match self
                .vault
                .backend()
                .update(&released, leased.version, &audit)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == BackendErrorKind::StaleKey => {
                    let current = self.fetch(&mut On::Pool, key).await?;
                    if current.version != leased.version {
                        return Ok(());
                    }
                    leased = current;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
