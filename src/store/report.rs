//! The rotation report: which key protects how many records, how old each key is against the
//! rotation policy, and whether any record depends on a destroyed or forbidden key. What an
//! operator shows an auditor.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::backend::{BackendErrorKind, RecordCount, RowFault, UnreadableRow};
use crate::crypto::SealingSuite;
use crate::keys::KeyState;
use crate::store::MAX_LISTED_FAILURES;
use crate::store::rotate::DekPages;
use crate::store::{DAY, StoreError, Vault, whole_seconds};
use crate::{KeyVersion, TenantId};

/// How old keys may get before the report calls them overdue for rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RotationPolicy {
    /// Maximum age of a tenant's current data key. Default: 90 days. Serialised as whole
    /// seconds, `dek_max_age_seconds`.
    #[serde(rename = "dek_max_age_seconds", serialize_with = "whole_seconds")]
    pub dek_max_age: Duration,
    /// Maximum age of the primary key-encryption key. Default: 365 days. Serialised as whole
    /// seconds, `kek_max_age_seconds`.
    #[serde(rename = "kek_max_age_seconds", serialize_with = "whole_seconds")]
    pub kek_max_age: Duration,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        Self {
            dek_max_age: 90 * DAY,
            kek_max_age: 365 * DAY,
        }
    }
}

/// The state of a tenant's data key version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DekState {
    /// Seals new records.
    Current,
    /// Opens records sealed with it until they are re-encrypted.
    Retired,
    /// Erased.
    Destroyed,
}

/// One data key version of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DekStatus {
    /// The tenant.
    pub tenant: TenantId,
    /// The version.
    pub version: KeyVersion,
    /// Its state.
    pub state: DekState,
    /// The KEK version that wraps it.
    pub kek_version: KeyVersion,
    /// Its age (0 if it was made "after" the report's clock). Serialised as whole seconds,
    /// `age_seconds`.
    #[serde(rename = "age_seconds", serialize_with = "whole_seconds")]
    pub age: Duration,
    /// Current and older than the policy allows.
    pub overdue: bool,
    /// Below the tenant's minimum version (records sealed with it are refused).
    pub below_minimum: bool,
    /// Records sealed with it.
    pub records: u64,
    /// Those records per sealing suite (`aes-256-gcm`, `fernet`); suites with none are left
    /// out.
    pub records_by_suite: BTreeMap<SealingSuite, u64>,
}

/// One key-encryption key version, as the key provider and the database see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KekStatus {
    /// The version.
    pub version: KeyVersion,
    /// Its state in the key provider (`None`: the provider does not list it).
    pub state: Option<String>,
    /// Its age, if the provider knows when it was made. Serialised as whole seconds (or
    /// null), `age_seconds`.
    #[serde(rename = "age_seconds", serialize_with = "whole_seconds_opt")]
    pub age: Option<Duration>,
    /// Primary and older than the policy allows.
    pub overdue: bool,
    /// Data keys (current and retired) wrapped under it.
    pub wrapped_deks: u64,
    /// Its fingerprint (a keyed hash that identifies the key without revealing it; the one
    /// the vault records), if the provider can give one.
    pub fingerprint: Option<String>,
}

/// The report of [`Vault::key_report`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyReport {
    /// When it was made, Unix seconds.
    pub generated_at: i64,
    /// Where the KEK lives (a key file, an HSM token and label...).
    pub kek_provider: String,
    /// Where the tenants' shred secrets live (a directory, a PostgreSQL store...).
    pub tenant_key_store: String,
    /// The policy it was judged against.
    pub policy: RotationPolicy,
    /// Every KEK version the provider lists or a data key names.
    pub keks: Vec<KekStatus>,
    /// Every data key version of every tenant.
    pub deks: Vec<DekStatus>,
    /// Records in the vault.
    pub records: u64,
    /// Records per sealing suite (`aes-256-gcm`, `fernet`), every suite listed.
    pub records_by_suite: BTreeMap<SealingSuite, u64>,
    /// Records the re-encryption job would reseal: under an old data key, or sealed with
    /// another suite than the vault's configuration says for their kind.
    pub records_to_reseal: u64,
    /// Records not yet under their tenant's current data key (the re-encryption job's work).
    pub records_pending_reencryption: u64,
    /// Records sealed with a destroyed or unknown data key version: unreadable.
    pub records_with_destroyed_key: u64,
    /// Records sealed with a version below their tenant's minimum: refused.
    pub records_below_minimum: u64,
    /// Data keys wrapped under a KEK version the provider has destroyed or forbids.
    pub deks_with_unusable_kek: u64,
    /// Keys older than the policy allows (current data keys and the primary KEK).
    pub overdue_keys: u64,
    /// Rows the report could not read, named (the first
    /// [`MAX_LISTED_FAILURES`](crate::store::MAX_LISTED_FAILURES)): record counts whose
    /// tenant id or data key version does not decode, data key rows and tenant rows that do
    /// not decode. What they hold is not in the figures above.
    pub unreadable: Vec<UnreadableRow>,
}

impl KeyReport {
    /// Whether nothing needs attention: no key overdue, nothing pending, nothing sealed with
    /// a destroyed, forbidden or unusable key.
    pub fn is_clean(&self) -> bool {
        self.records_pending_reencryption == 0
            && self.records_to_reseal == 0
            && self.records_with_destroyed_key == 0
            && self.records_below_minimum == 0
            && self.deks_with_unusable_kek == 0
            && self.overdue_keys == 0
            && self.unreadable.is_empty()
    }
}

impl Vault {
    /// The rotation report (see the module docs): per tenant and data key version the
    /// records it protects, every key's age against `policy`, and what needs attention.
    ///
    /// ```
    /// use credvault::backend::MemoryBackend;
    /// use credvault::envelope::MemoryTenantKeys;
    /// use credvault::store::{ApiKey, RotationPolicy, Vault};
    /// use credvault::Keyring;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let vault = Vault::builder(MemoryBackend::new(), Keyring::generate()?, MemoryTenantKeys::new()).build();
    /// vault.migrate().await?;
    /// vault.tenant("acme")?.put("stripe", &ApiKey { provider: "stripe".into(), key: "sk_example".into(), label: None }).await?;
    /// vault.rotate_dek("acme").await?;
    ///
    /// let report = vault.key_report(&RotationPolicy::default()).await?;
    /// assert_eq!(report.records_pending_reencryption, 1);
    /// assert!(!report.is_clean());
    /// # Ok::<(), credvault::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// Storage errors.
    #[tracing::instrument(name = "credvault.key_report", skip_all, err(Display, level = "debug"))]
    pub async fn key_report(&self, policy: &RotationPolicy) -> Result<KeyReport, StoreError> {
        self.keys_ready().await?;
        let now = self.now();
        let mut counts: BTreeMap<(TenantId, KeyVersion), u64> = BTreeMap::new();
        let mut by_suite: BTreeMap<(TenantId, KeyVersion), BTreeMap<SealingSuite, u64>> =
            BTreeMap::new();
        let mut records_by_suite: BTreeMap<SealingSuite, u64> =
            SealingSuite::ALL.iter().map(|s| (*s, 0)).collect();
        let mut unreadable = Vec::new();
        for counted in self.backend().record_counts().await? {
            let RecordCount {
                tenant,
                dek_version,
                suite,
                records,
            } = match counted {
                Ok(count) => count,
                Err(skipped) => {
                    unreadable.push(skipped);
                    continue;
                }
            };
            *counts.entry((tenant.clone(), dek_version)).or_default() += records;
            *by_suite
                .entry((tenant, dek_version))
                .or_default()
                .entry(suite)
                .or_default() += records;
            *records_by_suite.entry(suite).or_default() += records;
        }
        let records_to_reseal = self
            .backend()
            .count_stale(&self.config().suite_plan())
            .await?;
        let infos = self.kek_infos().await?;
        let unusable_kek = |v: KeyVersion| {
            infos
                .iter()
                .find(|i| i.version == v)
                .is_some_and(|i| i.state == KeyState::Destroyed || i.below_minimum)
        };
        let mut report = KeyReport {
            generated_at: now,
            kek_provider: self.kek().describe(),
            tenant_key_store: self.tenant_keys_describe(),
            policy: *policy,
            keks: Vec::new(),
            deks: Vec::new(),
            records: counts.values().sum(),
            records_by_suite,
            records_to_reseal,
            records_pending_reencryption: 0,
            records_with_destroyed_key: 0,
            records_below_minimum: 0,
            deks_with_unusable_kek: 0,
            overdue_keys: 0,
            unreadable,
        };
        let mut wrapped_per_kek: BTreeMap<KeyVersion, u64> = BTreeMap::new();
        let mut known: BTreeMap<(TenantId, KeyVersion), ()> = BTreeMap::new();
        let mut minimums: BTreeMap<TenantId, KeyVersion> = BTreeMap::new();
        let mut pages = DekPages::default();
        while let Some(page) = pages.next(self).await? {
            for dek in &page {
                if !dek.is_current() {
                    continue;
                }
                match self.backend().tenant(&dek.tenant).await {
                    Ok(Some(t)) => {
                        minimums.insert(dek.tenant.clone(), t.min_dek_version);
                    }
                    Ok(None) => {}
                    Err(e) if e.kind() == BackendErrorKind::Corrupt => {
                        report.unreadable.push(UnreadableRow::new(
                            dek.tenant.as_str(),
                            None,
                            None,
                            RowFault::TenantMissing,
                            None,
                        ));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            for dek in &page {
                let records = counts
                    .get(&(dek.tenant.clone(), dek.version))
                    .copied()
                    .unwrap_or(0);
                let state = match (dek.is_current(), dek.wrapped_dek.is_some()) {
                    (true, _) => DekState::Current,
                    (false, true) => DekState::Retired,
                    (false, false) => DekState::Destroyed,
                };
                let minimum = minimums
                    .get(&dek.tenant)
                    .copied()
                    .unwrap_or(KeyVersion::FIRST);
                let age = age(now, dek.created_at);
                let overdue = state == DekState::Current && age > policy.dek_max_age;
                let below_minimum = dek.version < minimum;
                match state {
                    DekState::Current => {}
                    DekState::Retired if below_minimum => report.records_below_minimum += records,
                    DekState::Retired => report.records_pending_reencryption += records,
                    DekState::Destroyed => report.records_with_destroyed_key += records,
                }
                if state != DekState::Destroyed {
                    *wrapped_per_kek.entry(dek.kek_version).or_default() += 1;
                    if unusable_kek(dek.kek_version) {
                        report.deks_with_unusable_kek += 1;
                    }
                }
                report.overdue_keys += u64::from(overdue);
                known.insert((dek.tenant.clone(), dek.version), ());
                report.deks.push(DekStatus {
                    tenant: dek.tenant.clone(),
                    version: dek.version,
                    state,
                    kek_version: dek.kek_version,
                    age,
                    overdue,
                    below_minimum,
                    records,
                    records_by_suite: by_suite
                        .get(&(dek.tenant.clone(), dek.version))
                        .cloned()
                        .unwrap_or_default(),
                });
            }
        }
        // Records naming a data key version their tenant never had (or a purged tenant).
        report.records_with_destroyed_key += counts
            .iter()
            .filter(|(k, _)| !known.contains_key(k))
            .map(|(_, n)| n)
            .sum::<u64>();
        report.keks = kek_statuses(&infos, &wrapped_per_kek, now, policy);
        for kek in &mut report.keks {
            if kek
                .state
                .as_deref()
                .is_some_and(|s| s != KeyState::Destroyed.as_str())
            {
                kek.fingerprint = self.kek_fingerprint(kek.version).await?;
            }
        }
        report.overdue_keys += report.keks.iter().filter(|k| k.overdue).count() as u64;
        report.unreadable.extend(pages.unreadable);
        report.unreadable.truncate(MAX_LISTED_FAILURES);
        Ok(report)
    }
}

/// One status per KEK version the provider lists or a data key names.
fn kek_statuses(
    infos: &[crate::keys::KeyInfo],
    wrapped_per_kek: &BTreeMap<KeyVersion, u64>,
    now: i64,
    policy: &RotationPolicy,
) -> Vec<KekStatus> {
    let mut versions: Vec<KeyVersion> = infos.iter().map(|i| i.version).collect();
    versions.extend(wrapped_per_kek.keys().copied());
    versions.sort();
    versions.dedup();
    versions
        .into_iter()
        .map(|version| {
            let info = infos.iter().find(|i| i.version == version);
            let age = info.map(|i| age(now, i64::try_from(i.created_at).unwrap_or(i64::MAX)));
            KekStatus {
                version,
                state: info.map(|i| i.state.as_str().to_owned()),
                age,
                overdue: info.is_some_and(|i| i.state == KeyState::Primary)
                    && age.is_some_and(|a| a > policy.kek_max_age),
                wrapped_deks: wrapped_per_kek.get(&version).copied().unwrap_or(0),
                fingerprint: None,
            }
        })
        .collect()
}

/// The time from `created_at` to `now` (Unix seconds), 0 if `created_at` is later.
fn age(now: i64, created_at: i64) -> Duration {
    Duration::from_secs(u64::try_from(now.saturating_sub(created_at)).unwrap_or(0))
}

fn whole_seconds_opt<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs()),
        None => s.serialize_none(),
    }
}
