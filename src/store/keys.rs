//! Key identity: the vault records what keys it uses and refuses any other.
//!
//! The first time a vault handle is used, and again every
//! [`key_check_interval`](crate::store::VaultConfig::key_check_interval), it compares the key
//! provider and the tenant-key store with what the database recorded (`credvault_keys`):
//!
//! - every live KEK version's fingerprint (a keyed hash, [`KeyProvider::fingerprint`]) must
//!   equal the recorded one; a version the vault has not seen yet is recorded, after checking
//!   (if the vault already has data keys wrapped under it, on a vault made before
//!   fingerprints) that it unwraps one;
//! - the tenant-key store's id must equal the recorded one; a store seen for the first time
//!   on a vault that already has tenants must hold their shred secrets;
//! - the process's primary KEK version is registered with the time (`last_primary_at`), which
//!   [`Vault::destroy_kek`] waits out, and the newest KEK version any process presented is
//!   raised: the backends refuse, inside the write's transaction, to wrap under an older one.
//!
//! Before each periodic check the provider is asked to [`reload`](crate::keys::KeyProvider::reload) (a
//! key file rotated on disk is picked up without a restart).

use std::time::Instant;

use crate::KeyVersion;
use crate::TenantId;
use crate::backend::{BackendErrorKind, KeyIdentity, KeyRegistry, KeyRole};
use crate::crypto::Context;
use crate::keys::{KeyError, KeyState};
use crate::store::{On, StoreError, Vault};

/// How many data keys a first check of a vault made before fingerprints looks at, and how
/// many tenants' shred secrets a first-seen tenant-key store must hold.
const SAMPLE: u32 = 64;

impl Vault {
    /// Checks the key provider and the tenant-key store against what this vault recorded, and
    /// records what is new:
    ///
    /// - every live KEK version's fingerprint ([`KeyProvider::fingerprint`](crate::keys::KeyProvider::fingerprint)) must equal the
    ///   recorded one; a version not seen yet is recorded (after checking, if the vault
    ///   already has data keys wrapped under it, that it unwraps one);
    /// - the tenant-key store's id must equal the recorded one; a store seen for the first
    ///   time on a vault that already has tenants must hold their shred secrets;
    /// - the primary KEK version is registered with the time (what
    ///   [`destroy_kek`](Self::destroy_kek) waits out), and the newest KEK version any
    ///   process presented is raised: the backends refuse, in the write's own transaction,
    ///   to wrap under an older one.
    ///
    /// The key provider is first asked to [`reload`](crate::keys::KeyProvider::reload), so a rotated key
    /// file is picked up without a restart. Every operation runs it
    /// first, once per [`key_check_interval`](crate::store::VaultConfig::key_check_interval);
    /// call it directly to fail at start-up rather than at the first request.
    ///
    /// # Errors
    ///
    /// [`StoreError::KeyMismatch`], [`StoreError::KeyCannotUnwrap`],
    /// [`StoreError::TenantKeyStoreMismatch`], a [`KeyError::Store`] for a missing or foreign
    /// tenant-key directory, storage errors.
    pub async fn check_keys(&self) -> Result<KeyRegistry, StoreError> {
        self.check_keys_on(&mut On::Pool).await
    }

    /// [`check_keys`](Self::check_keys), recording what is new on `on` (inside the
    /// application's transaction for a `*_in` call: on SQLite, a second connection would wait
    /// for the write lock that transaction holds).
    pub(crate) async fn check_keys_on(&self, on: &mut On<'_>) -> Result<KeyRegistry, StoreError> {
        match self.kek_reload().await {
            Ok(_) => {}
            // Keep working with the keys in hand; the error is the operator's to see.
            Err(e) => tracing::warn!(error = %e, "reloading the key provider failed"),
        }
        let registry = self.backend().key_registry().await?;
        let presented = self.presented_keys(&registry).await?;
        let store_id = self.tenant_keys_identity().await?;
        match registry.get(KeyRole::TenantKeys, 0) {
            Some(recorded) if recorded.fingerprint != store_id => {
                return Err(StoreError::TenantKeyStoreMismatch {
                    store: self.inner.tenant_keys.describe(),
                    problem: "its marker names another store".to_owned(),
                });
            }
            Some(_) => {}
            None => self.check_new_store().await?,
        }
        let now = self.now();
        let mut new: Vec<KeyIdentity> = presented
            .into_iter()
            .filter(|k| registry.get(k.role, k.version).is_none())
            .collect();
        if registry.get(KeyRole::TenantKeys, 0).is_none() {
            new.push(KeyIdentity {
                role: KeyRole::TenantKeys,
                version: 0,
                fingerprint: store_id,
                recorded_at: now,
                last_primary_at: None,
            });
        }
        let primary = self.kek().primary_version().get();
        let interval = i64::try_from(self.inner.config.key_check_interval.as_secs()).unwrap_or(0);
        let heartbeat_due = registry
            .get(KeyRole::Kek, primary)
            .and_then(|k| k.last_primary_at)
            .is_none_or(|at| now.saturating_sub(at) >= interval.max(1) || now < at);
        let stored = if !new.is_empty() {
            on.register_keys(self, &new, Some(primary), now).await?
        } else if heartbeat_due {
            // Only the heartbeat: a read-only database (or replica) still serves reads.
            match on.register_keys(self, &[], Some(primary), now).await {
                Ok(stored) => stored,
                Err(e) => {
                    tracing::warn!(error = %e, "registering the primary key-encryption key failed");
                    registry
                }
            }
        } else {
            registry
        };
        // Another process may have recorded a different key at the same moment.
        for k in &new {
            if let Some(recorded) = stored.get(k.role, k.version)
                && recorded.fingerprint != k.fingerprint
            {
                return Err(self.mismatch(k, recorded));
            }
        }
        if primary < stored.newest_kek {
            tracing::warn!(
                provider = %self.kek().describe(),
                primary,
                newest = stored.newest_kek,
                "the key provider is behind: another process uses a newer key-encryption key; \
                 writes that wrap data keys will be refused until it is given the rotated keys"
            );
        }
        if let Ok(mut at) = self.inner.key_check.lock() {
            *at = Some(Instant::now());
        }
        Ok(stored)
    }

    /// Runs [`check_keys`](Self::check_keys) if it has not succeeded within the check
    /// interval.
    pub(crate) async fn keys_ready(&self) -> Result<(), StoreError> {
        self.keys_ready_on(&mut On::Pool).await
    }

    /// [`keys_ready`](Self::keys_ready), a due check recording on `on`.
    pub(crate) async fn keys_ready_on(&self, on: &mut On<'_>) -> Result<(), StoreError> {
        let fresh = self
            .inner
            .key_check
            .lock()
            .ok()
            .and_then(|at| at.map(|at| at.elapsed() < self.inner.config.key_check_interval));
        if fresh == Some(true) {
            return Ok(());
        }
        self.check_keys_on(on).await.map(|_| ())
    }

    /// After a write was refused because the provider is behind: reload it, check and
    /// register the new keys. `Ok(true)` if the provider is now current (retry the write).
    pub(crate) async fn catch_up_kek(&self, on: &mut On<'_>) -> Result<bool, StoreError> {
        let registry = self.check_keys_on(on).await?;
        let primary = self.kek().primary_version().get();
        if primary < registry.newest_kek {
            return Err(StoreError::KekBehind {
                provider: self.kek().describe(),
                primary: KeyVersion::new(primary),
                newest: registry.newest_kek,
            });
        }
        Ok(true)
    }

    /// The identities of the provider's live KEK versions, each checked against the record.
    async fn presented_keys(&self, registry: &KeyRegistry) -> Result<Vec<KeyIdentity>, StoreError> {
        let now = self.now();
        let mut out = Vec::new();
        let mut infos = self.kek_infos().await?;
        if infos.is_empty() {
            // A provider that cannot list its versions: at least its primary.
            infos = vec![crate::keys::KeyInfo {
                version: self.kek().primary_version(),
                state: KeyState::Primary,
                created_at: 0,
                below_minimum: false,
            }];
        }
        for info in infos.iter().filter(|i| i.state != KeyState::Destroyed) {
            let Some(fingerprint) = self.kek_fingerprint(info.version).await? else {
                continue;
            };
            let identity = KeyIdentity {
                role: KeyRole::Kek,
                version: info.version.get(),
                fingerprint,
                recorded_at: now,
                last_primary_at: None,
            };
            match registry.get(KeyRole::Kek, identity.version) {
                Some(recorded) if recorded.fingerprint != identity.fingerprint => {
                    return Err(self.mismatch(&identity, recorded));
                }
                Some(_) => {}
                None => {
                    self.check_unwraps(info.version).await?;
                    out.push(identity);
                }
            }
        }
        Ok(out)
    }

    fn mismatch(&self, presented: &KeyIdentity, recorded: &KeyIdentity) -> StoreError {
        match presented.role {
            KeyRole::TenantKeys => StoreError::TenantKeyStoreMismatch {
                store: self.inner.tenant_keys.describe(),
                problem: "its marker names another store".to_owned(),
            },
            _ => StoreError::KeyMismatch {
                provider: self.kek().describe(),
                version: KeyVersion::new(presented.version),
                recorded: recorded.fingerprint.clone(),
                found: presented.fingerprint.clone(),
            },
        }
    }

    /// A KEK version not recorded yet: if the vault already has a data key wrapped under it
    /// (a vault made before fingerprints), the provider must unwrap it.
    async fn check_unwraps(&self, version: KeyVersion) -> Result<(), StoreError> {
        // A sample: a row that does not decode is left out (named by the jobs that walk them
        // all), never a reason to refuse a key.
        let page: Vec<_> = (self.backend().deks_page(None, SAMPLE).await?)
            .into_iter()
            .filter_map(Result::ok)
            .collect();
        let Some(dek) = page
            .iter()
            .find(|d| d.kek_version == version && d.wrapped_dek.is_some())
        else {
            return Ok(());
        };
        let wrapped = dek.wrapped_dek.as_deref().unwrap_or_default();
        let ctx = Context::wrapped_dek(dek.tenant.as_str(), dek.version)?;
        match self.kek_unwrap(wrapped, &ctx).await {
            Ok(_) => Ok(()),
            Err(KeyError::Crypto(_)) => Err(StoreError::KeyCannotUnwrap {
                provider: self.kek().describe(),
                tenant: dek.tenant.clone(),
                version,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// A tenant-key store seen for the first time: if the vault has tenants, the store must
    /// hold their shred secrets (else it is an empty or foreign directory).
    async fn check_new_store(&self) -> Result<(), StoreError> {
        let page: Vec<_> = (self.backend().deks_page(None, SAMPLE).await?)
            .into_iter()
            .filter_map(Result::ok)
            .collect();
        let mut tenants: Vec<&TenantId> = page.iter().map(|d| &d.tenant).collect();
        tenants.dedup();
        for tenant in tenants {
            let shredded = self
                .backend()
                .tenant(tenant)
                .await?
                .is_none_or(|t| t.shredded_at.is_some());
            if !shredded && !self.has_shred_secret(tenant).await? {
                return Err(StoreError::TenantKeyStoreMismatch {
                    store: self.inner.tenant_keys.describe(),
                    problem: format!(
                        "it lacks the shred secret of tenant {tenant}, which this vault has"
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Whether a backend error is the refusal to wrap under an outdated KEK.
pub(crate) fn is_stale_key(e: &StoreError) -> bool {
    matches!(e, StoreError::Backend(b) if b.kind() == BackendErrorKind::StaleKey)
}
