//! Key rotation: new data keys per tenant, rewrapping data keys under a new KEK, and the
//! online re-encryption job that moves records to their tenant's current data key.
//!
//! The job is a loop of batches, each claimed, resealed and written back in one transaction
//! with one `reencrypt` audit row per tenant counting its records (a rotation of a million
//! records does not add a million audit rows); what is left to do is read from the records
//! themselves (each names the data key version that sealed it), so a job killed at any point
//! is simply started again. A record is written back only if it still has the version and
//! data key it was claimed with, and the application's own writes always seal with the
//! tenant's current data key, so no application write is lost or left under an old key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::backend::{
    AuditAction, AuditRow, BackendError, BackendErrorKind, BatchOutcome, BatchRequest, DekCursor,
    DekRow, DestroyDek, RecordKey, ResealError, Resealed, RowCursor, StaleRecord, UnreadableRow,
};
use crate::crypto::Context;
use crate::envelope::TenantDek;
use crate::keys::Keyring;
use crate::store::{DekCacheKey, KeyKind, On, Progress, ProgressClock, StoreError, Vault};
use crate::{KeyVersion, TenantId};

/// Who the audit log names for the re-encryption job's writes.
pub(crate) const REENCRYPT_ACTOR: &str = "job:reencrypt";
/// Who the audit log names for key rotation (new data keys, rewraps, destroyed data keys).
pub(crate) const ROTATE_ACTOR: &str = "job:rotate";
/// The data keys a re-encryption batch uses, unwrapped before the batch (re)runs: its reseal
/// step runs inside the batch's transaction and cannot await a key call.
#[derive(Default)]
struct BatchKeys {
    /// Keys unwrapped for the batch, or why they could not be.
    ready: HashMap<DekCacheKey, Result<Arc<TenantDek>, ResealError>>,
    /// Keys a reseal lacked, with their wrapped bytes.
    wanted: Vec<(DekCacheKey, Vec<u8>)>,
}

impl BatchKeys {
    fn take_wanted(&mut self) -> Vec<(DekCacheKey, Vec<u8>)> {
        let mut wanted = std::mem::take(&mut self.wanted);
        wanted.sort_by(|a, b| a.0.cmp(&b.0));
        wanted.dedup_by(|a, b| a.0 == b.0);
        wanted
    }
}

/// A reseal that needs a data key not unwrapped yet: the record is left for the batch's next
/// run, never reported as a failure.
#[derive(Debug, thiserror::Error)]
#[error("data key not unwrapped yet")]
struct KeyNotReady;

/// Data keys read per page when walking every tenant's keys.
pub(crate) const DEK_PAGE: u32 = 500;
/// Every data key of every tenant (current and retired, destroyed ones too), a page at a time
/// in (tenant, version) order: `while let Some(page) = pages.next(vault).await? { ... }`.
/// The last page may be empty. Rows that do not decode are skipped and kept in
/// [`unreadable`](Self::unreadable) (the first [`MAX_LISTED_FAILURES`], all counted): a job
/// that must see every data key (may a KEK be destroyed?) checks
/// [`complete`](Self::complete).
#[derive(Debug, Default)]
pub(crate) struct DekPages {
    after: Option<DekCursor>,
    done: bool,
    /// Rows skipped so far, named.
    pub(crate) unreadable: Vec<UnreadableRow>,
    /// How many rows were skipped.
    pub(crate) skipped: u64,
}

impl DekPages {
    /// The next page, `None` after the last.
    pub(crate) async fn next(&mut self, vault: &Vault) -> Result<Option<Vec<DekRow>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let listed = vault
            .backend()
            .deks_page(self.after.as_ref(), DEK_PAGE)
            .await?;
        match listed.last() {
            Some(last) if listed.len() == usize::try_from(DEK_PAGE).unwrap_or(usize::MAX) => {
                self.after = Some(match last {
                    Ok(dek) => DekCursor::at(dek),
                    Err(u) => resume_past(u)?,
                });
            }
            _ => self.done = true,
        }
        let mut page = Vec::with_capacity(listed.len());
        for row in listed {
            match row {
                Ok(dek) => page.push(dek),
                Err(skipped) => {
                    tracing::warn!(row = %skipped, "credvault: a data key row does not decode: skipped");
                    self.skipped += 1;
                    if self.unreadable.len() < MAX_LISTED_FAILURES {
                        self.unreadable.push(skipped);
                    }
                }
            }
        }
        Ok(Some(page))
    }

    /// After the walk: an error naming the first row skipped, if any was. For the jobs whose
    /// answer is only right when every data key was seen.
    pub(crate) fn complete(&self) -> Result<(), StoreError> {
        match self.unreadable.first() {
            None => Ok(()),
            Some(u) => Err(StoreError::Backend(BackendError::new(
                BackendErrorKind::Corrupt,
                format!(
                    "{} data key rows do not decode (first: {u}); the answer needs every one",
                    self.skipped
                ),
            ))),
        }
    }
}

/// Where a walk over the data keys resumes past `row`, a row that does not decode: its
/// tenant id and version as stored, or an error if they do not read.
fn resume_past(row: &UnreadableRow) -> Result<DekCursor, StoreError> {
    row.raw
        .as_ref()
        .and_then(|c| {
            Some(DekCursor {
                tenant: c.tenant.clone(),
                version: c.name.parse().ok()?,
            })
        })
        .ok_or_else(|| {
            StoreError::Backend(BackendError::new(
                BackendErrorKind::Corrupt,
                format!("listing data keys: a row's tenant id or version is not readable ({row}); the listing cannot go past it"),
            ))
        })
}

/// Failures kept by name in a report (the count is exact).
pub const MAX_LISTED_FAILURES: usize = 100;

/// Settings of [`Vault::reencrypt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReencryptOptions {
    /// Records claimed, resealed and committed per transaction. Default: 500. Memory use is
    /// proportional to it, never to the number of records.
    pub batch_size: u32,
    /// Who the audit rows name. Default: `"job:reencrypt"`.
    pub actor: String,
    /// Destroy each retired data key that no record needs any more when the job ends.
    /// Default: `true`.
    pub destroy_unused: bool,
}

impl Default for ReencryptOptions {
    fn default() -> Self {
        Self {
            batch_size: 500,
            actor: REENCRYPT_ACTOR.to_owned(),
            destroy_unused: true,
        }
    }
}

/// A record [`Vault::reencrypt`] could not reseal: it stays as it was.
///
/// Serialised flat: `tenant`, `kind`, `name`, `reason`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReencryptFailure {
    /// Where the record lives.
    #[serde(flatten)]
    pub key: RecordKey,
    /// Why (unreadable, or sealed with a version below the tenant's minimum; never the
    /// content).
    pub reason: String,
}

/// A data key [`Vault::rewrap_deks`] could not rewrap: it stays wrapped as it was.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RewrapFailure {
    /// The tenant.
    pub tenant: TenantId,
    /// The data key's version.
    pub dek_version: KeyVersion,
    /// Why it could not be unwrapped or rewrapped.
    pub reason: String,
}

/// What a run of [`Vault::reencrypt`] did (this worker only, when several share the job).
/// Serialised with these field names.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReencryptReport {
    /// Records that needed re-encryption when the job started (all workers).
    pub total: u64,
    /// Records this worker resealed with their tenant's current data key.
    pub resealed: u64,
    /// Records the application changed between the claim and the write (left as written).
    pub changed: u64,
    /// Records that could not be resealed (unreadable, or sealed with a version below the
    /// tenant's minimum), counted once.
    pub failed: u64,
    /// The first [`MAX_LISTED_FAILURES`] of them, with the reason (never the content).
    pub failures: Vec<ReencryptFailure>,
    /// Stale rows that could not even be read (a name that is not valid, a column that does
    /// not decode, a tenant row that does not): skipped, named (the first
    /// [`MAX_LISTED_FAILURES`]); counted in `failed` too. The rest was re-encrypted.
    pub unreadable: Vec<UnreadableRow>,
    /// Batches committed.
    pub batches: u64,
    /// Records still not under their tenant's current data key when the job ended (the
    /// failed ones, and any another worker still held).
    pub remaining: u64,
    /// Retired data keys destroyed at the end because no record needed them any more.
    pub destroyed_deks: u64,
}

/// What [`Vault::rewrap_deks`] did. Serialised with these field names.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RewrapReport {
    /// Data keys (current and retired), and keys of the vault's own, now wrapped under the
    /// primary KEK that were not.
    pub rewrapped: u64,
    /// Data keys that already were.
    pub already_current: u64,
    /// Data keys that could not be unwrapped, with the reason.
    pub failures: Vec<RewrapFailure>,
    /// Data key rows that do not decode: skipped, not rewrapped, named (the first
    /// [`MAX_LISTED_FAILURES`]). While there are any, no KEK version can be destroyed
    /// ([`Vault::kek_usage`] cannot tell what they need).
    pub unreadable: Vec<UnreadableRow>,
}

/// What [`Vault::rotate_all_deks`] did. Serialised with these field names.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct DekRotationReport {
    /// Tenants given a new data key.
    pub rotated: u64,
    /// Rows skipped: data key rows that do not decode, and tenants whose row does not decode
    /// (not rotated). Exact count.
    pub skipped: u64,
    /// The skipped rows, named (the first [`MAX_LISTED_FAILURES`]).
    pub unreadable: Vec<UnreadableRow>,
}

impl DekRotationReport {
    fn skip(&mut self, row: UnreadableRow) {
        self.skipped += 1;
        if self.unreadable.len() < MAX_LISTED_FAILURES {
            self.unreadable.push(row);
        }
    }
}

impl Vault {
    /// Gives a tenant a new data key: new writes use it at once, reads keep working with the
    /// old one (decrypt-only) until [`reencrypt`](Self::reencrypt) has moved every record,
    /// when the old one is destroyed. Returns the new version.
    ///
    /// ```
    /// use credvault::backend::MemoryBackend;
    /// use credvault::envelope::MemoryTenantKeys;
    /// use credvault::store::{ApiKey, ReencryptOptions, Vault};
    /// use credvault::{KeyVersion, Keyring};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let vault = Vault::builder(MemoryBackend::new(), Keyring::generate()?, MemoryTenantKeys::new()).build();
    /// vault.migrate().await?;
    /// let acme = vault.tenant("acme")?;
    /// acme.put("stripe", &ApiKey { provider: "stripe".into(), key: "sk_live_example".into(), label: None }).await?;
    ///
    /// assert_eq!(vault.rotate_dek("acme").await?, KeyVersion::new(2));
    /// let report = vault.reencrypt(&ReencryptOptions::default(), |_| {}).await?;
    /// assert_eq!((report.resealed, report.remaining, report.destroyed_deks), (1, 0, 1));
    /// assert_eq!(acme.get::<ApiKey>("stripe").await?.value.key.expose_secret(), "sk_live_example");
    /// # Ok::<(), credvault::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`StoreError::UnknownTenant`]; key or storage errors.
    #[tracing::instrument(name = "credvault.rotate_dek", skip_all, fields(tenant = tenant), err(Display, level = "debug"))]
    pub async fn rotate_dek(&self, tenant: &str) -> Result<KeyVersion, StoreError> {
        let id = TenantId::new(tenant)?;
        self.keys_ready().await?;
        loop {
            self.forget_tenant_row(&id);
            let row = self
                .backend()
                .tenant(&id)
                .await?
                .ok_or_else(|| StoreError::UnknownTenant(id.clone()))?;
            if let Some(next) = self.rotate_dek_from(&id, row.dek_version).await? {
                return Ok(next);
            }
            // Rotated by someone else meanwhile: rotate from the newer version.
        }
    }

    /// Gives every tenant a new data key (see [`rotate_dek`](Self::rotate_dek)); `progress`
    /// is called after each page of tenants. A data key row or tenant row that does not
    /// decode is skipped and named in the report; the other tenants are rotated.
    ///
    /// # Errors
    ///
    /// Key or storage errors (tenants rotated before the error stay rotated).
    pub async fn rotate_all_deks(
        &self,
        mut progress: impl FnMut(Progress) + Send,
    ) -> Result<DekRotationReport, StoreError> {
        self.keys_ready().await?;
        let clock = ProgressClock::start(0);
        let mut report = DekRotationReport::default();
        let mut pages = DekPages::default();
        while let Some(page) = pages.next(self).await? {
            for dek in page.iter().filter(|d| d.is_current()) {
                match self.rotate_dek_from(&dek.tenant, dek.version).await {
                    Ok(Some(_)) => report.rotated += 1,
                    // Rotated concurrently: it already has a fresh key.
                    Ok(None) => {}
                    Err(StoreError::Backend(e)) if e.kind() == BackendErrorKind::Corrupt => {
                        tracing::warn!(tenant = %dek.tenant, error = %e, "credvault rotate: a tenant's row does not decode: skipped");
                        report.skip(UnreadableRow::new(
                            dek.tenant.as_str(),
                            Some(crate::backend::DATA_KEY_ROW),
                            Some(&dek.version.get().to_string()),
                            crate::backend::RowFault::TenantMissing,
                            None,
                        ));
                    }
                    Err(e) => return Err(e),
                }
            }
            progress(clock.at(report.rotated));
        }
        report.skipped += pages.skipped;
        report.unreadable.extend(pages.unreadable);
        report.unreadable.truncate(MAX_LISTED_FAILURES);
        Ok(report)
    }

    /// Rewraps every data key (current and retired), and every key of the vault's own (the
    /// login throttle's pseudonym key, counted as a data key in the report), that is not
    /// wrapped under the key provider's primary KEK version. Run it after making a new KEK version primary; the old
    /// KEK version can then be destroyed ([`destroy_kek`](Self::destroy_kek)). Work is
    /// proportional to the number of tenants, not of records: records are untouched.
    ///
    /// # Errors
    ///
    /// Storage errors. A data key that cannot be unwrapped is listed in the report.
    #[tracing::instrument(
        name = "credvault.rewrap_deks",
        skip_all,
        err(Display, level = "debug")
    )]
    pub async fn rewrap_deks(
        &self,
        mut progress: impl FnMut(Progress) + Send,
    ) -> Result<RewrapReport, StoreError> {
        self.keys_ready().await?;
        let primary = self.kek().primary_version();
        let clock = ProgressClock::start(0);
        let mut report = RewrapReport::default();
        self.rewrap_vault_keys(&mut report).await?;
        let mut pages = DekPages::default();
        while let Some(page) = pages.next(self).await? {
            for dek in &page {
                let Some(wrapped) = &dek.wrapped_dek else {
                    continue; // destroyed: nothing to rewrap
                };
                if dek.kek_version == primary {
                    report.already_current += 1;
                    continue;
                }
                match self.rewrap_one(dek, wrapped).await {
                    Ok(true) => report.rewrapped += 1,
                    Ok(false) => {} // changed meanwhile (rotated or rewrapped elsewhere)
                    Err(StoreError::Backend(e)) => return Err(StoreError::Backend(e)),
                    Err(e) => report.failures.push(RewrapFailure {
                        tenant: dek.tenant.clone(),
                        dek_version: dek.version,
                        reason: e.to_string(),
                    }),
                }
            }
            progress(clock.at(report.rewrapped + report.already_current));
        }
        report.unreadable = pages.unreadable;
        Ok(report)
    }

    /// How many data keys (current and retired, not destroyed), and keys of the vault's own
    /// (the login throttle's pseudonym key), are wrapped under KEK `version`.
    ///
    /// # Errors
    ///
    /// Storage errors; [`BackendErrorKind::Corrupt`] if a data key row does not decode (it
    /// might be wrapped under `version`: no KEK is destroyed on a guess).
    pub async fn kek_usage(&self, version: KeyVersion) -> Result<u64, StoreError> {
        let mut n = self.vault_key_usage(version).await?;
        let mut pages = DekPages::default();
        while let Some(page) = pages.next(self).await? {
            n += page
                .iter()
                .filter(|d| d.wrapped_dek.is_some() && d.kek_version == version)
                .count() as u64;
        }
        // A row that does not decode may need `version`: no count, rather than a low one.
        pages.complete()?;
        Ok(n)
    }

    /// Destroys KEK `version` in `keyring` if no data key in this vault is wrapped under it
    /// any more and no process has registered it as its primary within the
    /// [`kek_quiet_period`](crate::store::VaultConfig::kek_quiet_period). Save the keyring
    /// afterwards, and give it to every process (processes with a [`KeyFile`] reload it by
    /// themselves).
    ///
    /// [`KeyFile`]: crate::keys::KeyFile
    ///
    /// # Errors
    ///
    /// [`StoreError::KeyInUse`] with the number of data keys that still need it (run
    /// [`rewrap_deks`](Self::rewrap_deks) first); [`StoreError::KeyRecentlyUsed`] while a
    /// process may still wrap under it; the keyring's refusal to destroy its primary version;
    /// storage errors.
    pub async fn destroy_kek(
        &self,
        keyring: &mut Keyring,
        version: KeyVersion,
    ) -> Result<(), StoreError> {
        self.destroy_kek_with(version, |v| keyring.destroy(v)).await
    }

    /// [`destroy_kek`](Self::destroy_kek) for a KEK that lives elsewhere (an HSM:
    /// [`Pkcs11Keys::destroy`](crate::keys::pkcs11::Pkcs11Keys::destroy)): the same checks,
    /// then `destroy(version)`.
    ///
    /// # Errors
    ///
    /// As [`destroy_kek`](Self::destroy_kek), with `destroy`'s refusal.
    pub async fn destroy_kek_with(
        &self,
        version: KeyVersion,
        destroy: impl FnOnce(KeyVersion) -> Result<(), crate::keys::KeyError>,
    ) -> Result<(), StoreError> {
        let count = self.kek_usage(version).await?;
        if count > 0 {
            return Err(StoreError::KeyInUse {
                what: KeyKind::Kek,
                version,
                count,
                needed_by: "tenant data keys",
            });
        }
        let registry = self.check_keys().await?;
        let quiet = i64::try_from(self.config().kek_quiet_period.as_secs()).unwrap_or(i64::MAX);
        if let Some(last) = registry
            .get(crate::backend::KeyRole::Kek, version.get())
            .and_then(|k| k.last_primary_at)
        {
            let ago = self.now().saturating_sub(last);
            if ago < quiet {
                return Err(StoreError::KeyRecentlyUsed {
                    version,
                    ago,
                    quiet,
                });
            }
        }
        destroy(version)?;
        Ok(())
    }

    /// Destroys retired data key `version` of `tenant`.
    ///
    /// # Errors
    ///
    /// [`StoreError::KeyInUse`] with the number of records still sealed with it;
    /// [`StoreError::KeyRefused`] for the tenant's current key or an unknown or already
    /// destroyed version; storage errors.
    pub async fn destroy_dek(&self, tenant: &str, version: KeyVersion) -> Result<(), StoreError> {
        let id = TenantId::new(tenant)?;
        self.keys_ready().await?;
        let audit = [self.dek_audit(&id, AuditAction::DekDestroy, version)];
        let outcome = self
            .backend()
            .destroy_dek(&id, version, self.now(), &audit)
            .await?;
        self.forget_deks(&id);
        match outcome {
            DestroyDek::Destroyed => Ok(()),
            DestroyDek::InUse(count) => Err(StoreError::KeyInUse {
                what: KeyKind::Dek,
                version,
                count,
                needed_by: "records",
            }),
            DestroyDek::Current => Err(StoreError::KeyRefused(format!(
                "data key version {version} is tenant {id}'s current key: rotate first"
            ))),
            _ => Err(StoreError::KeyRefused(format!(
                "tenant {id} has no live retired data key version {version}"
            ))),
        }
    }

    /// Destroys every retired data key that no record is sealed with any more. Returns how
    /// many were destroyed. [`reencrypt`](Self::reencrypt) calls it when it ends.
    ///
    /// # Errors
    ///
    /// Storage errors.
    pub async fn destroy_unused_deks(&self) -> Result<u64, StoreError> {
        let mut destroyed = 0u64;
        let mut pages = DekPages::default();
        while let Some(page) = pages.next(self).await? {
            for dek in page
                .iter()
                .filter(|d| !d.is_current() && d.wrapped_dek.is_some())
            {
                let audit = [self.dek_audit(&dek.tenant, AuditAction::DekDestroy, dek.version)];
                let outcome = self
                    .backend()
                    .destroy_dek(&dek.tenant, dek.version, self.now(), &audit)
                    .await?;
                if outcome == DestroyDek::Destroyed {
                    destroyed += 1;
                    self.forget_deks(&dek.tenant);
                }
            }
        }
        Ok(destroyed)
    }

    /// Forbids opening a tenant's records sealed with a data key version below `minimum`
    /// (after a compromise of an old key). Such records fail with
    /// [`StoreError::DekBelowMinimum`] and the re-encryption job leaves them as they are.
    ///
    /// # Errors
    ///
    /// [`StoreError::KeyRefused`] if `minimum` is above the tenant's current version or the
    /// tenant is unknown; storage errors.
    pub async fn set_min_dek_version(
        &self,
        tenant: &str,
        minimum: KeyVersion,
    ) -> Result<(), StoreError> {
        let id = TenantId::new(tenant)?;
        let audit = [self.dek_audit(&id, AuditAction::DekMinVersion, minimum)];
        let done = self
            .backend()
            .set_min_dek_version(&id, minimum, &audit)
            .await?;
        self.forget_tenant_row(&id);
        if done {
            Ok(())
        } else {
            Err(StoreError::KeyRefused(format!(
                "cannot set tenant {id}'s minimum data key version to {minimum}: unknown tenant, or above its current version"
            )))
        }
    }

    /// How many records are not sealed with their tenant's current data key, or are sealed
    /// with another suite than the configuration names for their kind: what
    /// [`reencrypt`](Self::reencrypt) has left to do (0 once a rotation is complete).
    ///
    /// # Errors
    ///
    /// Storage errors.
    pub async fn stale_records(&self) -> Result<u64, StoreError> {
        Ok(self
            .backend()
            .count_stale(&self.config().suite_plan())
            .await?)
    }

    /// Moves every record that is not sealed with its tenant's current data key to it, in
    /// batches of `options.batch_size`, each committed atomically; then (by default) destroys
    /// the retired data keys nothing needs any more. `progress` is called after every batch.
    ///
    /// Online: the application keeps reading and writing; a record it changes during the job
    /// keeps its write. Resumable: killed at any point, run it again and it finishes the work.
    /// Several workers (processes, or tasks with their own pools) may run it at once on
    /// PostgreSQL: each batch claims its records with `FOR UPDATE SKIP LOCKED`, so no record
    /// is resealed twice; on SQLite they take turns.
    ///
    /// # Errors
    ///
    /// Storage errors (batches committed before the error stay committed). Records that
    /// cannot be resealed are counted in the report, not errors.
    #[tracing::instrument(name = "credvault.reencrypt", skip_all, err(Display, level = "debug"))]
    pub async fn reencrypt(
        &self,
        options: &ReencryptOptions,
        mut progress: impl FnMut(Progress) + Send,
    ) -> Result<ReencryptReport, StoreError> {
        crate::text::check_label("actor", &options.actor)?;
        self.keys_ready().await?;
        let limit = options.batch_size.max(1);
        let plan = self.config().suite_plan();
        let total = self.backend().count_stale(&plan).await?;
        let clock = ProgressClock::start(total);
        let mut report = ReencryptReport {
            total,
            ..ReencryptReport::default()
        };
        // The backend calls `reseal` inside the batch's transaction, where no key call can be
        // awaited: it uses keys unwrapped before, and names the ones it lacks; those are
        // unwrapped (off the runtime) and the batch runs again.
        let keys = Mutex::new(BatchKeys::default());
        let reseal = |stale: &StaleRecord| self.reseal(stale, &keys);
        // Passes over the key space until one reseals nothing: a pass skips what other
        // workers hold and what the application rewrote under a stale key meanwhile.
        loop {
            let mut after: Option<RowCursor> = None;
            let mut pass_resealed = 0u64;
            let mut failures = Vec::new();
            let mut unreadable = Vec::new();
            let mut failed = 0u64;
            loop {
                let request = BatchRequest {
                    after: after.clone(),
                    limit,
                    now: self.now(),
                    actor: &options.actor,
                    reseal: &reseal,
                    plan: &plan,
                };
                let out: BatchOutcome = self.backend().reencrypt_batch(&request).await?;
                report.batches += 1;
                report.resealed += out.resealed;
                report.changed += out.changed;
                pass_resealed += out.resealed;
                let wanted = keys.lock().map(|mut k| k.take_wanted()).unwrap_or_default();
                if !wanted.is_empty() {
                    // The batch again, from the same place, once its keys are ready (what it
                    // resealed already is no longer stale).
                    self.unwrap_batch_keys(&keys, wanted).await;
                    continue;
                }
                if let Ok(mut k) = keys.lock() {
                    *k = BatchKeys::default();
                }
                failed +=
                    u64::try_from(out.failed.len() + out.unreadable.len()).unwrap_or(u64::MAX);
                for u in out.unreadable {
                    if unreadable.len() < MAX_LISTED_FAILURES {
                        unreadable.push(u);
                    }
                }
                for f in out.failed {
                    if failures.len() < MAX_LISTED_FAILURES {
                        failures.push(ReencryptFailure {
                            key: f.key,
                            reason: f.error.to_string(),
                        });
                    }
                }
                progress(clock.at(report.resealed));
                if out.claimed < limit {
                    break;
                }
                after = out.last;
            }
            report.failed = failed;
            report.failures = failures;
            report.unreadable = unreadable;
            if pass_resealed == 0 {
                break;
            }
        }
        report.remaining = self.backend().count_stale(&plan).await?;
        if options.destroy_unused {
            report.destroyed_deks = self.destroy_unused_deks().await?;
        }
        tracing::info!(
            resealed = report.resealed,
            failed = report.failed,
            remaining = report.remaining,
            destroyed_deks = report.destroyed_deks,
            "credvault re-encryption finished"
        );
        Ok(report)
    }

    /// Opens a stale record with the data key that sealed it and seals it with its tenant's
    /// current one, in the suite the configuration names for its kind (called inside the
    /// batch's transaction; pure crypto, no I/O: a key not unwrapped yet is named in `keys`
    /// and the record left for the batch's next run).
    fn reseal(
        &self,
        stale: &StaleRecord,
        keys: &Mutex<BatchKeys>,
    ) -> Result<Resealed, ResealError> {
        let (row, tenant) = (stale, &stale.tenant);
        let refuse = |reason: String| ResealError::new(StoreError::KeyRefused(reason));
        if row.dek_version < tenant.min_dek_version {
            return Err(refuse(format!(
                "sealed with data key version {}, below the tenant's minimum {}",
                row.dek_version, tenant.min_dek_version
            )));
        }
        let current = self.batch_dek(
            keys,
            (tenant.tenant.clone(), tenant.dek_version, tenant.created_at),
            &tenant.wrapped_dek,
        )?;
        let old = match &stale.sealed_with {
            // Under the current data key, sealed with another suite.
            _ if row.dek_version == tenant.dek_version => Arc::clone(&current),
            Some(DekRow {
                wrapped_dek: Some(wrapped),
                version,
                ..
            }) => self.batch_dek(
                keys,
                (tenant.tenant.clone(), *version, tenant.created_at),
                wrapped,
            )?,
            Some(_) => {
                return Err(refuse(format!(
                    "sealed with data key version {}, which was destroyed",
                    row.dek_version
                )));
            }
            None => {
                return Err(refuse(format!(
                    "sealed with data key version {}, which the tenant does not have",
                    row.dek_version
                )));
            }
        };
        let new = current;
        let ctx = Context::record(
            row.key.tenant.as_str(),
            row.key.kind.as_str(),
            row.key.name.as_str(),
        )
        .map_err(|e| ResealError::new(StoreError::from(e)))?;
        let plain = old
            .open(&row.sealed, &ctx)
            .map_err(|e| refuse(format!("does not open: {e}")))?;
        let suite = self.config().suite_for(row.key.kind.as_str());
        let now = u64::try_from(self.now()).unwrap_or(0);
        Ok(Resealed {
            sealed: new
                .seal_with(suite, plain.expose_secret(), &ctx, now)
                .map_err(|e| ResealError::new(StoreError::from(e)))?,
            dek_version: new.version(),
            kek_version: new.kek_version(),
        })
    }

    /// The data key `key` (wrapped as `wrapped`) for a reseal: from the vault's cache or the
    /// batch's keys; else its unwrap failure, or (first time) [`KeyNotReady`] with the key
    /// named in `keys` for [`unwrap_batch_keys`](Self::unwrap_batch_keys).
    fn batch_dek(
        &self,
        keys: &Mutex<BatchKeys>,
        key: DekCacheKey,
        wrapped: &[u8],
    ) -> Result<Arc<TenantDek>, ResealError> {
        if let Some(dek) = self.cached_dek(&key, Some(wrapped)) {
            return Ok(dek);
        }
        let mut keys = keys
            .lock()
            .map_err(|_| ResealError::new("the re-encryption job's key list is poisoned"))?;
        if let Some(ready) = keys.ready.get(&key) {
            return ready.clone();
        }
        keys.wanted.push((key, wrapped.to_vec()));
        Err(ResealError::new(KeyNotReady))
    }

    /// Unwraps the data keys a batch lacked (each key call off the runtime, see
    /// `store/offload.rs`), keeping each key or its failure for the batch's next run.
    async fn unwrap_batch_keys(
        &self,
        keys: &Mutex<BatchKeys>,
        wanted: Vec<(DekCacheKey, Vec<u8>)>,
    ) {
        for ((tenant, version, created_at), wrapped) in wanted {
            let dek = self
                .dek_from(&tenant, created_at, version, &wrapped, true)
                .await
                .map_err(ResealError::new);
            if let Ok(mut k) = keys.lock() {
                k.ready.insert((tenant, version, created_at), dek);
            }
        }
    }

    /// Rotates `tenant`'s data key if its current version is still `current`; `None` if it
    /// changed meanwhile.
    async fn rotate_dek_from(
        &self,
        tenant: &TenantId,
        current: KeyVersion,
    ) -> Result<Option<KeyVersion>, StoreError> {
        let next = current.next().ok_or_else(|| {
            StoreError::KeyRefused(format!("tenant {tenant} has used every data key version"))
        })?;
        // The shred secret is unchanged: purging the tenant still shreds every version.
        let audit = [self.dek_audit(tenant, AuditAction::DekRotate, next)];
        let mut retried = false;
        loop {
            let wrapped = self.new_wrapped_dek(tenant, next).await?;
            let kek_version = crate::crypto::format::parse(&wrapped)?.header.key_version;
            let done = self
                .backend()
                .rotate_dek(tenant, current, &wrapped, kek_version, self.now(), &audit)
                .await;
            match done {
                // A newer KEK is in use elsewhere: pick it up and wrap again, once.
                Err(e) if !retried && e.kind() == BackendErrorKind::StaleKey => {
                    self.catch_up_kek(&mut On::Pool).await?;
                    retried = true;
                }
                done => {
                    self.forget_tenant_row(tenant);
                    return Ok(done?.then_some(next));
                }
            }
        }
    }

    /// Rewraps one data key under the primary KEK. `Ok(false)` if it changed meanwhile.
    async fn rewrap_one(&self, dek: &DekRow, wrapped: &[u8]) -> Result<bool, StoreError> {
        let ctx = Context::wrapped_dek(dek.tenant.as_str(), dek.version)?;
        let material = self.kek_unwrap(wrapped, &ctx).await?;
        let rewrapped = self.kek_wrap(&material, &ctx).await?;
        // The version the new wrapping names (the provider may have reloaded meanwhile).
        let primary = crate::crypto::format::parse(&rewrapped)?.header.key_version;
        let audit = [self.dek_audit(&dek.tenant, AuditAction::DekRewrap, dek.version)];
        let done = self
            .backend()
            .rewrap_dek(
                &dek.tenant,
                dek.version,
                dek.kek_version,
                &rewrapped,
                primary,
                &audit,
            )
            .await?;
        self.forget_tenant_row(&dek.tenant);
        self.forget_deks(&dek.tenant);
        Ok(done)
    }

    /// An audit row about a tenant's data key `version` (the outcome names the version).
    fn dek_audit(&self, tenant: &TenantId, action: AuditAction, version: KeyVersion) -> AuditRow {
        self.tenant_audit(
            tenant,
            action,
            ROTATE_ACTOR,
            &format!("ok: version {version}"),
        )
    }
}
