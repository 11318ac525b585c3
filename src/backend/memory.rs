//! The in-memory backend: for tests and for applications that keep nothing on disk.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::backend::rotation::{reencrypt_audit, reseal_claimed};
use crate::backend::{
    AuditQuery, AuditRow, Backend, BackendError, BackendErrorKind, BatchOutcome, BatchRequest,
    BoxFuture, DekCursor, DekRow, DestroyDek, KeyIdentity, KeyRegistry, KeyRole, ListQuery,
    RecordCount, RecordKey, RowCursor, SCHEMA_VERSION, SealedRecord, SecretRow, StaleRecord,
    SuitePlan, TenantRow, UnreadableRow, VaultKeyRow, purged_record_audit, schema_too_new,
    stale_kek, stale_key,
};
use crate::crypto::SealingSuite;
use crate::{KeyVersion, TenantId};

/// Everything in one process's memory, behind a mutex. Same behaviour as the SQL backends
/// (the conformance suite runs on all three); nothing survives the process.
///
/// ```
/// use credvault::backend::{Backend, MemoryBackend};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let backend = MemoryBackend::new();
/// backend.migrate().await?;
/// assert_eq!(backend.schema_version().await?, Some(credvault::backend::SCHEMA_VERSION));
/// # Ok::<(), credvault::backend::BackendError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Default)]
pub struct MemoryBackend {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    schema: Option<u32>,
    tenants: BTreeMap<TenantId, TenantRow>,
    secrets: BTreeMap<RecordKey, SecretRow>,
    retired: BTreeMap<(TenantId, KeyVersion), DekRow>,
    audit: Vec<AuditRow>,
    registry: KeyRegistry,
    vault_keys: BTreeMap<String, VaultKeyRow>,
    /// The last purge run: (started at, oldest overdue seconds).
    last_purge_run: Option<(i64, i64)>,
}

impl State {
    /// Refuses a wrap under a KEK version older than the newest one presented.
    fn check_kek(&self, kek: KeyVersion) -> Result<(), BackendError> {
        if kek.get() < self.registry.newest_kek {
            return Err(stale_kek(kek, self.registry.newest_kek));
        }
        Ok(())
    }

    /// Whether a row sealed with `dek_version` may be written for `tenant`: its tenant is
    /// unknown to this store, or `dek_version` is the tenant's current version or `kept`.
    fn key_is_writable(
        &self,
        tenant: &TenantId,
        dek_version: KeyVersion,
        kept: Option<KeyVersion>,
    ) -> bool {
        self.tenants
            .get(tenant)
            .is_none_or(|t| t.dek_version == dek_version || kept == Some(dek_version))
    }
}

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, BackendError> {
        self.state.lock().map_err(|_| {
            BackendError::new(BackendErrorKind::Corrupt, "memory backend lock poisoned")
        })
    }

    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut State) -> Result<T, BackendError>,
    ) -> BoxFuture<'_, Result<T, BackendError>> {
        let result = self.lock().and_then(|mut state| f(&mut state));
        Box::pin(std::future::ready(result))
    }
}

impl super::sealed::Sealed for MemoryBackend {}

impl Backend for MemoryBackend {
    fn migrate(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        self.run(|s| match s.schema {
            Some(v) if v > SCHEMA_VERSION => Err(schema_too_new(v)),
            _ => {
                s.schema = Some(SCHEMA_VERSION);
                Ok(())
            }
        })
    }

    fn schema_version(&self) -> BoxFuture<'_, Result<Option<u32>, BackendError>> {
        self.run(|s| Ok(s.schema))
    }

    fn insert_tenant<'a>(
        &'a self,
        row: &'a TenantRow,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<TenantRow, BackendError>> {
        self.run(|s| {
            if let Some(existing) = s.tenants.get(&row.tenant) {
                return Ok(existing.clone());
            }
            s.check_kek(row.kek_version)?;
            s.tenants.insert(row.tenant.clone(), row.clone());
            s.audit.extend_from_slice(audit);
            Ok(row.clone())
        })
    }

    fn tenant<'a>(
        &'a self,
        id: &'a TenantId,
    ) -> BoxFuture<'a, Result<Option<TenantRow>, BackendError>> {
        self.run(|s| Ok(s.tenants.get(id).cloned()))
    }

    fn set_tenant_deletion<'a>(
        &'a self,
        id: &'a TenantId,
        deleted_at: Option<i64>,
        purge_after: Option<i64>,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        self.run(move |s| {
            let Some(t) = s.tenants.get_mut(id).filter(|t| t.shredded_at.is_none()) else {
                return Ok(false);
            };
            t.deleted_at = deleted_at;
            t.purge_after = purge_after;
            s.audit.extend_from_slice(audit);
            Ok(true)
        })
    }

    fn tenants_due_for_purge(
        &self,
        now: i64,
    ) -> BoxFuture<'_, Result<Vec<Result<TenantId, UnreadableRow>>, BackendError>> {
        self.run(move |s| {
            Ok(s.tenants
                .values()
                .filter(|t| t.purge_after.is_some_and(|p| p <= now))
                .map(|t| Ok(t.tenant.clone()))
                .collect())
        })
    }

    fn purge_tenant<'a>(
        &'a self,
        id: &'a TenantId,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<u64, BackendError>> {
        self.run(|s| {
            s.tenants.remove(id);
            s.retired.retain(|(t, _), _| t != id);
            let before = s.secrets.len();
            s.secrets.retain(|k, _| &k.tenant != id);
            s.audit.extend_from_slice(audit);
            Ok(u64::try_from(before - s.secrets.len()).unwrap_or(u64::MAX))
        })
    }

    fn get<'a>(
        &'a self,
        key: &'a RecordKey,
    ) -> BoxFuture<'a, Result<Option<SecretRow>, BackendError>> {
        self.run(|s| Ok(s.secrets.get(key).cloned()))
    }

    fn get_sealed<'a>(
        &'a self,
        key: &'a RecordKey,
    ) -> BoxFuture<'a, Result<Option<SealedRecord>, BackendError>> {
        self.run(|s| {
            Ok(s.secrets.get(key).map(|r| SealedRecord {
                version: r.version,
                sealed: r.sealed.clone(),
                dek_version: r.dek_version,
            }))
        })
    }

    fn insert<'a>(
        &'a self,
        row: &'a SecretRow,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        self.run(|s| {
            if s.secrets.contains_key(&row.key) {
                return Err(BackendError::new(
                    BackendErrorKind::Conflict,
                    "record already exists",
                ));
            }
            if !s.key_is_writable(&row.key.tenant, row.dek_version, None) {
                return Err(stale_key());
            }
            s.secrets.insert(row.key.clone(), row.clone());
            s.audit.extend_from_slice(audit);
            Ok(())
        })
    }

    fn update<'a>(
        &'a self,
        row: &'a SecretRow,
        expected_version: i64,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        self.run(move |s| {
            let Some(stored) = s.secrets.get(&row.key) else {
                return Ok(false);
            };
            if stored.version != expected_version {
                return Ok(false);
            }
            let kept = Some(stored.dek_version);
            if !s.key_is_writable(&row.key.tenant, row.dek_version, kept) {
                return Err(stale_key());
            }
            if let Some(current) = s.secrets.get_mut(&row.key) {
                let (created_at, purge_after) = (current.created_at, current.purge_after);
                *current = row.clone();
                current.created_at = created_at;
                current.purge_after = purge_after.or(row.purge_after);
            }
            s.audit.extend_from_slice(audit);
            Ok(true)
        })
    }

    fn delete<'a>(
        &'a self,
        keys: &'a [RecordKey],
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<u64, BackendError>> {
        self.run(|s| {
            let deleted = keys
                .iter()
                .filter(|k| s.secrets.remove(k).is_some())
                .count();
            s.audit.extend_from_slice(audit);
            Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
        })
    }

    fn list<'a>(
        &'a self,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<Vec<crate::backend::ListedRow>, BackendError>> {
        self.run(|s| {
            let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
            Ok(s.secrets
                .values()
                .filter(|r| r.key.tenant == query.tenant)
                .filter(|r| query.kind.as_ref().is_none_or(|k| &r.key.kind == k))
                .filter(|r| query.provider.is_none() || r.provider == query.provider)
                .filter(|r| {
                    query.after.as_ref().is_none_or(|(k, n)| {
                        (r.key.kind.as_str(), r.key.name.as_str()) > (k.as_str(), n.as_str())
                    })
                })
                .take(limit)
                .map(|r| Ok(r.clone()))
                .collect())
        })
    }

    fn set_purge_after<'a>(
        &'a self,
        keys: &'a [RecordKey],
        purge_after: i64,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<u64, BackendError>> {
        self.run(move |s| {
            let mut n = 0u64;
            for k in keys {
                if let Some(r) = s.secrets.get_mut(k) {
                    r.purge_after = Some(purge_after);
                    n += 1;
                }
            }
            s.audit.extend_from_slice(audit);
            Ok(n)
        })
    }

    fn purge_records(
        &self,
        due_by: i64,
        now: i64,
        actor: &str,
    ) -> BoxFuture<'_, Result<Vec<Result<RecordKey, UnreadableRow>>, BackendError>> {
        let actor = actor.to_owned();
        self.run(move |s| {
            let due: Vec<RecordKey> = s
                .secrets
                .values()
                .filter(|r| r.purge_after.is_some_and(|p| p <= due_by))
                .map(|r| r.key.clone())
                .collect();
            for k in &due {
                s.secrets.remove(k);
                s.audit.push(purged_record_audit(k, now, &actor));
            }
            Ok(due.into_iter().map(Ok).collect())
        })
    }

    fn oldest_purge_deadline(&self) -> BoxFuture<'_, Result<Option<i64>, BackendError>> {
        self.run(|s| {
            let records = s.secrets.values().filter_map(|r| r.purge_after);
            let tenants = s.tenants.values().filter_map(|t| t.purge_after);
            Ok(records.chain(tenants).min())
        })
    }

    /// Nothing to flush: deleted rows leave memory when they are removed.
    fn flush_deleted(&self) -> BoxFuture<'_, Result<bool, BackendError>> {
        Box::pin(std::future::ready(Ok(true)))
    }

    fn record_purge_run(
        &self,
        started_at: i64,
        oldest_overdue: i64,
    ) -> BoxFuture<'_, Result<(), BackendError>> {
        self.run(|s| {
            if s.last_purge_run.is_none_or(|(at, _)| at <= started_at) {
                s.last_purge_run = Some((started_at, oldest_overdue));
            }
            Ok(())
        })
    }

    fn last_purge_run(&self) -> BoxFuture<'_, Result<Option<(i64, i64)>, BackendError>> {
        self.run(|s| Ok(s.last_purge_run))
    }

    fn append_audit<'a>(&'a self, rows: &'a [AuditRow]) -> BoxFuture<'a, Result<(), BackendError>> {
        self.run(|s| {
            s.audit.extend_from_slice(rows);
            Ok(())
        })
    }

    fn audit<'a>(
        &'a self,
        query: &'a AuditQuery,
    ) -> BoxFuture<'a, Result<Vec<AuditRow>, BackendError>> {
        self.run(|s| {
            let limit = query
                .limit
                .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
            let mut rows: Vec<AuditRow> = s
                .audit
                .iter()
                .filter(|r| query.tenant.is_none() || r.tenant == query.tenant)
                .filter(|r| query.since.is_none_or(|t| r.at >= t))
                .cloned()
                .collect();
            rows.sort_by_key(|r| r.at);
            rows.truncate(limit);
            Ok(rows)
        })
    }

    fn purge_audit(&self, before: i64) -> BoxFuture<'_, Result<u64, BackendError>> {
        self.run(move |s| {
            let n = s.audit.len();
            s.audit.retain(|r| r.at >= before);
            Ok(u64::try_from(n - s.audit.len()).unwrap_or(u64::MAX))
        })
    }

    fn key_registry(&self) -> BoxFuture<'_, Result<KeyRegistry, BackendError>> {
        self.run(|s| Ok(s.registry.clone()))
    }

    fn register_keys<'a>(
        &'a self,
        keys: &'a [KeyIdentity],
        primary: Option<u32>,
        at: i64,
    ) -> BoxFuture<'a, Result<KeyRegistry, BackendError>> {
        self.run(move |s| {
            let r = &mut s.registry;
            for key in keys {
                if r.get(key.role, key.version).is_none() {
                    r.keys.push(key.clone());
                }
                if key.role == KeyRole::Kek {
                    r.newest_kek = r.newest_kek.max(key.version);
                }
            }
            r.keys.sort_by_key(|k| (k.role, k.version));
            if let Some(v) = primary {
                for k in r.keys.iter_mut() {
                    if k.role == KeyRole::Kek && k.version == v {
                        k.last_primary_at = Some(at);
                    }
                }
            }
            Ok(s.registry.clone())
        })
    }

    fn vault_keys(&self) -> BoxFuture<'_, Result<Vec<VaultKeyRow>, BackendError>> {
        self.run(|s| Ok(s.vault_keys.values().cloned().collect()))
    }

    fn insert_vault_key<'a>(
        &'a self,
        row: &'a VaultKeyRow,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<VaultKeyRow, BackendError>> {
        self.run(|s| {
            if let Some(existing) = s.vault_keys.get(&row.name) {
                return Ok(existing.clone());
            }
            s.check_kek(row.kek_version)?;
            s.vault_keys.insert(row.name.clone(), row.clone());
            s.audit.extend_from_slice(audit);
            Ok(row.clone())
        })
    }

    fn rewrap_vault_key<'a>(
        &'a self,
        name: &'a str,
        old_kek: KeyVersion,
        wrapped: &'a [u8],
        new_kek: KeyVersion,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        self.run(move |s| {
            s.check_kek(new_kek)?;
            let Some(key) = s
                .vault_keys
                .get_mut(name)
                .filter(|k| k.kek_version == old_kek)
            else {
                return Ok(false);
            };
            key.wrapped_key = wrapped.to_vec();
            key.kek_version = new_kek;
            s.audit.extend_from_slice(audit);
            Ok(true)
        })
    }

    fn set_tenant_shredded<'a>(
        &'a self,
        id: &'a TenantId,
        at: i64,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        self.run(move |s| {
            let Some(t) = s.tenants.get_mut(id) else {
                return Ok(false);
            };
            t.shredded_at.get_or_insert(at);
            s.audit.extend_from_slice(audit);
            Ok(true)
        })
    }

    fn retired_deks<'a>(
        &'a self,
        tenant: &'a TenantId,
    ) -> BoxFuture<'a, Result<Vec<DekRow>, BackendError>> {
        self.run(|s| {
            Ok(s.retired
                .values()
                .filter(|d| &d.tenant == tenant)
                .cloned()
                .collect())
        })
    }

    fn deks_page<'a>(
        &'a self,
        after: Option<&'a DekCursor>,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Result<DekRow, UnreadableRow>>, BackendError>> {
        self.run(move |s| {
            let mut all: Vec<DekRow> = s
                .tenants
                .values()
                .map(current_dek)
                .chain(s.retired.values().cloned())
                .filter(|d| {
                    after.is_none_or(|a| {
                        (d.tenant.as_str(), i64::from(d.version.get()))
                            > (a.tenant.as_str(), a.version)
                    })
                })
                .collect();
            all.sort_by(|a, b| (&a.tenant, a.version).cmp(&(&b.tenant, b.version)));
            all.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            Ok(all.into_iter().map(Ok).collect())
        })
    }

    fn rotate_dek<'a>(
        &'a self,
        tenant: &'a TenantId,
        expected: KeyVersion,
        wrapped: &'a [u8],
        kek_version: KeyVersion,
        now: i64,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        self.run(move |s| {
            s.check_kek(kek_version)?;
            let Some(t) = s.tenants.get_mut(tenant) else {
                return Ok(false);
            };
            let Some(next) = expected.next().filter(|_| t.dek_version == expected) else {
                return Ok(false);
            };
            let mut old = current_dek(t);
            old.retired_at = Some(now);
            t.wrapped_dek = wrapped.to_vec();
            t.dek_version = next;
            t.kek_version = kek_version;
            t.dek_created_at = now;
            s.retired.insert((tenant.clone(), expected), old);
            s.audit.extend_from_slice(audit);
            Ok(true)
        })
    }

    fn rewrap_dek<'a>(
        &'a self,
        tenant: &'a TenantId,
        version: KeyVersion,
        old_kek: KeyVersion,
        wrapped: &'a [u8],
        new_kek: KeyVersion,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        self.run(move |s| {
            s.check_kek(new_kek)?;
            let done = if let Some(t) = s
                .tenants
                .get_mut(tenant)
                .filter(|t| t.dek_version == version && t.kek_version == old_kek)
            {
                t.wrapped_dek = wrapped.to_vec();
                t.kek_version = new_kek;
                true
            } else if let Some(d) = s
                .retired
                .get_mut(&(tenant.clone(), version))
                .filter(|d| d.kek_version == old_kek && d.wrapped_dek.is_some())
            {
                d.wrapped_dek = Some(wrapped.to_vec());
                d.kek_version = new_kek;
                true
            } else {
                false
            };
            if done {
                s.audit.extend_from_slice(audit);
            }
            Ok(done)
        })
    }

    fn destroy_dek<'a>(
        &'a self,
        tenant: &'a TenantId,
        version: KeyVersion,
        now: i64,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<DestroyDek, BackendError>> {
        self.run(move |s| {
            match s.tenants.get(tenant) {
                None => return Ok(DestroyDek::Missing),
                Some(t) if t.dek_version == version => return Ok(DestroyDek::Current),
                Some(_) => {}
            }
            let in_use = s
                .secrets
                .values()
                .filter(|r| &r.key.tenant == tenant && r.dek_version == version)
                .count();
            let Some(d) = s
                .retired
                .get_mut(&(tenant.clone(), version))
                .filter(|d| d.wrapped_dek.is_some())
            else {
                return Ok(DestroyDek::Missing);
            };
            if in_use > 0 {
                return Ok(DestroyDek::InUse(u64::try_from(in_use).unwrap_or(u64::MAX)));
            }
            d.wrapped_dek = None;
            d.destroyed_at = Some(now);
            s.audit.extend_from_slice(audit);
            Ok(DestroyDek::Destroyed)
        })
    }

    fn set_min_dek_version<'a>(
        &'a self,
        tenant: &'a TenantId,
        minimum: KeyVersion,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        self.run(move |s| match s.tenants.get_mut(tenant) {
            Some(t) if t.dek_version >= minimum => {
                t.min_dek_version = minimum;
                s.audit.extend_from_slice(audit);
                Ok(true)
            }
            _ => Ok(false),
        })
    }

    fn record_counts(
        &self,
    ) -> BoxFuture<'_, Result<Vec<Result<RecordCount, UnreadableRow>>, BackendError>> {
        self.run(|s| {
            let mut counts: BTreeMap<(TenantId, KeyVersion, SealingSuite), u64> = BTreeMap::new();
            for r in s.secrets.values() {
                let suite = if r.sealed.first() == Some(&SealingSuite::Fernet.first_byte()) {
                    SealingSuite::Fernet
                } else {
                    SealingSuite::Aes256Gcm
                };
                *counts
                    .entry((r.key.tenant.clone(), r.dek_version, suite))
                    .or_default() += 1;
            }
            Ok(counts
                .into_iter()
                .map(|((tenant, dek_version, suite), records)| {
                    Ok(RecordCount {
                        tenant,
                        dek_version,
                        suite,
                        records,
                    })
                })
                .collect())
        })
    }

    fn count_stale<'a>(&'a self, plan: &'a SuitePlan) -> BoxFuture<'a, Result<u64, BackendError>> {
        self.run(move |s| {
            let n = s.secrets.values().filter(|r| is_stale(s, r, plan)).count();
            Ok(u64::try_from(n).unwrap_or(u64::MAX))
        })
    }

    fn reencrypt_batch<'a>(
        &'a self,
        request: &'a BatchRequest<'a>,
    ) -> BoxFuture<'a, Result<BatchOutcome, BackendError>> {
        self.run(move |s| {
            let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);
            let claimed: Vec<StaleRecord> = s
                .secrets
                .values()
                .filter(|r| {
                    request
                        .after
                        .as_ref()
                        .is_none_or(|a| RowCursor::from(&r.key) > *a)
                })
                .filter(|r| is_stale(s, r, request.plan))
                .take(limit)
                .filter_map(|r| {
                    let tenant = s.tenants.get(&r.key.tenant)?.clone();
                    let sealed_with = s
                        .retired
                        .get(&(r.key.tenant.clone(), r.dek_version))
                        .cloned();
                    Some(StaleRecord {
                        key: r.key.clone(),
                        version: r.version,
                        sealed: r.sealed.clone(),
                        dek_version: r.dek_version,
                        tenant,
                        sealed_with,
                    })
                })
                .collect();
            let (mut out, resealed) = reseal_claimed(request, &claimed);
            let mut written = Vec::with_capacity(resealed.len());
            for (stale, new) in resealed {
                if let Some(r) = s.secrets.get_mut(&stale.key) {
                    r.sealed = new.sealed;
                    r.dek_version = new.dek_version;
                    r.kek_version = new.kek_version;
                    written.push(&stale.key);
                }
            }
            out.resealed = u64::try_from(written.len()).unwrap_or(u64::MAX);
            s.audit
                .extend(reencrypt_audit(written, request.now, request.actor));
            Ok(out)
        })
    }
}

/// The current data key of a tenant, as a [`DekRow`].
fn current_dek(t: &TenantRow) -> DekRow {
    DekRow {
        tenant: t.tenant.clone(),
        version: t.dek_version,
        wrapped_dek: Some(t.wrapped_dek.clone()),
        kek_version: t.kek_version,
        created_at: t.dek_created_at,
        retired_at: None,
        destroyed_at: None,
    }
}

/// Whether a record is not sealed with its (known) tenant's current data key, or with
/// another suite than `plan` says.
fn is_stale(s: &State, r: &SecretRow, plan: &SuitePlan) -> bool {
    s.tenants.get(&r.key.tenant).is_some_and(|t| {
        t.dek_version != r.dek_version || plan.wrong_suite(r.key.kind.as_str(), &r.sealed)
    })
}
