//! The vault's own keys (schema version 5): keys that belong to the vault as a whole, wrapped
//! under the key-encryption key like a tenant's data key. One so far: the login throttle's
//! pseudonym key, which names the shared throttles' rows with keyed hashes so that no account
//! name or address is stored.
//!
//! The key is random (32 bytes from the OS), made the first time it is asked for, and stored
//! only wrapped: it follows the KEK. [`Vault::rewrap_deks`] rewraps it with the data keys, so it
//! survives a KEK rotation unchanged (the throttle's counts too), and [`Vault::destroy_kek`]
//! refuses a KEK version it is still wrapped under; once every KEK version that wrapped it is
//! destroyed, it is gone, and the throttle's names in a backup can no longer be tied to anyone.

use crate::KeyVersion;
use crate::backend::{
    AuditAction, AuditRow, BackendError, BackendErrorKind, THROTTLE_PSEUDONYMS, VaultKeyRow,
};
use crate::crypto::Context;
use crate::keys::KeyError;
use crate::password::{PSEUDONYM_KEY_LEN, PseudonymKey};
use crate::secret::SecretBytes;
use crate::store::rotate::ROTATE_ACTOR;
use crate::store::{On, RewrapReport, StoreError, Vault, keys};

/// Who the audit log names when the vault makes one of its own keys.
const VAULT_KEY_ACTOR: &str = "vault";

impl Vault {
    /// The key the shared login throttles (`SqlThrottle`, `RedisThrottle`) name their rows
    /// with: made at random on first use, stored wrapped under the key-encryption key in
    /// `credvault_vault_keys`, the same for every process using this vault. Give it to
    /// `RedisThrottle::open`, or to `SqliteBackend::login_throttle` /
    /// `PgBackend::login_throttle` (or let [`login_throttle`](Self::login_throttle) do it).
    ///
    /// # Errors
    ///
    /// Storage and key errors ([`StoreError::KekBehind`] if another process wraps under a
    /// newer KEK this process cannot load); a stored key that does not unwrap is a
    /// [`KeyError`], one of the wrong length [`BackendErrorKind::Corrupt`].
    pub async fn throttle_key(&self) -> Result<PseudonymKey, StoreError> {
        self.keys_ready().await?;
        let row = match self.vault_key_row(THROTTLE_PSEUDONYMS).await? {
            Some(row) => row,
            None => match self.create_vault_key(THROTTLE_PSEUDONYMS).await {
                // A newer KEK is in use elsewhere: pick it up and wrap again.
                Err(e) if keys::is_stale_key(&e) && self.catch_up_kek(&mut On::Pool).await? => {
                    self.create_vault_key(THROTTLE_PSEUDONYMS).await?
                }
                other => other?,
            },
        };
        let material = self.unwrap_vault_key(&row).await?;
        let bytes: &[u8; PSEUDONYM_KEY_LEN] =
            material.expose_secret().try_into().map_err(|_| {
                BackendError::new(
                    BackendErrorKind::Corrupt,
                    format!(
                        "credvault_vault_keys row {THROTTLE_PSEUDONYMS}: the key is {} bytes, \
                         not {PSEUDONYM_KEY_LEN}",
                        material.len()
                    ),
                )
            })?;
        Ok(PseudonymKey::from_bytes(bytes))
    }

    /// A login throttle in this vault's database (`credvault_throttle`), its rows named under
    /// the vault's [`throttle_key`](Self::throttle_key): one call at start-up. Share the
    /// handle (a cheap `Clone`), or give it to a `LoginGuard`.
    ///
    /// ```no_run
    /// use credvault::password::{LoginGuard, PasswordPolicy, ThrottleConfig};
    /// use credvault::store::Vault;
    ///
    /// # async fn run(vault: Vault) -> Result<(), credvault::Error> {
    /// let throttle = vault.login_throttle(ThrottleConfig::default()).await?;
    /// let guard = LoginGuard::new(PasswordPolicy::default(), throttle);
    /// # let _ = guard; Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`throttle_key`](Self::throttle_key); [`BackendErrorKind::Other`] for a backend that
    /// keeps no throttle table (the [`MemoryBackend`](crate::backend::MemoryBackend): use an
    /// `InMemoryThrottle`, or a `RedisThrottle` with [`throttle_key`](Self::throttle_key)).
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
    pub async fn login_throttle(
        &self,
        config: crate::password::ThrottleConfig,
    ) -> Result<crate::backend::SqlThrottle, StoreError> {
        let key = self.throttle_key().await?;
        let throttle = self.backend().sql_throttle(config, key).ok_or_else(|| {
            BackendError::new(
                BackendErrorKind::Other,
                "this vault's backend keeps no login throttle table: use InMemoryThrottle, \
                 or RedisThrottle with Vault::throttle_key",
            )
        })?;
        throttle.rename_clear_rows().await?;
        Ok(throttle)
    }

    /// Rewraps every key of the vault's own not wrapped under the primary KEK (part of
    /// [`rewrap_deks`](Self::rewrap_deks)), counting them in `report` as data keys are.
    pub(crate) async fn rewrap_vault_keys(
        &self,
        report: &mut RewrapReport,
    ) -> Result<(), StoreError> {
        let primary = self.kek().primary_version();
        for row in self.backend().vault_keys().await? {
            if row.kek_version == primary {
                report.already_current += 1;
                continue;
            }
            let ctx = Context::vault_key(&row.name)?;
            let material = self.kek_unwrap(&row.wrapped_key, &ctx).await?;
            let rewrapped = self.kek_wrap(&material, &ctx).await?;
            let new_kek = crate::crypto::format::parse(&rewrapped)?.header.key_version;
            let audit = [vault_key_audit(
                self.now(),
                AuditAction::VaultKeyRewrap,
                ROTATE_ACTOR,
                &row.name,
                new_kek,
            )];
            let done = self
                .backend()
                .rewrap_vault_key(&row.name, row.kek_version, &rewrapped, new_kek, &audit)
                .await?;
            if done {
                report.rewrapped += 1;
            }
        }
        Ok(())
    }

    /// How many keys of the vault's own are wrapped under KEK `version` (part of
    /// [`kek_usage`](Self::kek_usage)).
    pub(crate) async fn vault_key_usage(&self, version: KeyVersion) -> Result<u64, StoreError> {
        let rows = self.backend().vault_keys().await?;
        Ok(rows.iter().filter(|k| k.kek_version == version).count() as u64)
    }

    async fn vault_key_row(&self, name: &str) -> Result<Option<VaultKeyRow>, StoreError> {
        let rows = self.backend().vault_keys().await?;
        Ok(rows.into_iter().find(|k| k.name == name))
    }

    /// Makes a random key named `name`, wrapped under the primary KEK, unless another process
    /// made it first: returns the stored one.
    async fn create_vault_key(&self, name: &str) -> Result<VaultKeyRow, StoreError> {
        let mut raw = zeroize::Zeroizing::new([0u8; PSEUDONYM_KEY_LEN]);
        crate::crypto::try_fill_from_os_rng(raw.as_mut())?;
        let ctx = Context::vault_key(name)?;
        let wrapped = self
            .kek_wrap(&SecretBytes::copy_from_slice(raw.as_ref()), &ctx)
            .await?;
        let kek_version = crate::crypto::format::parse(&wrapped)?.header.key_version;
        let now = self.now();
        let row = VaultKeyRow {
            name: name.to_owned(),
            wrapped_key: wrapped,
            kek_version,
            created_at: now,
        };
        let audit = [vault_key_audit(
            now,
            AuditAction::VaultKeyCreate,
            VAULT_KEY_ACTOR,
            name,
            kek_version,
        )];
        Ok(self.backend().insert_vault_key(&row, &audit).await?)
    }

    /// The key of `row`, unwrapped (reloading the provider once if it was wrapped under a
    /// KEK version rotated in elsewhere).
    async fn unwrap_vault_key(&self, row: &VaultKeyRow) -> Result<SecretBytes, StoreError> {
        let ctx = Context::vault_key(&row.name)?;
        match self.kek_unwrap(&row.wrapped_key, &ctx).await {
            Err(KeyError::UnknownVersion(_)) if self.kek_reload().await? => {
                Ok(self.kek_unwrap(&row.wrapped_key, &ctx).await?)
            }
            other => Ok(other?),
        }
    }
}

/// An audit row about vault key `name` (no tenant; the outcome names the KEK version).
fn vault_key_audit(
    at: i64,
    action: AuditAction,
    actor: &str,
    name: &str,
    kek: KeyVersion,
) -> AuditRow {
    AuditRow {
        at,
        tenant: None,
        kind: None,
        name: Some(name.to_owned()),
        action,
        actor: actor.to_owned(),
        outcome: format!("ok: wrapped under kek {kek}"),
    }
}
