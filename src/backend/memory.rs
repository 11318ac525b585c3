//! The in-memory backend: for tests and for applications that keep nothing on disk.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::TenantId;
use crate::backend::{
    AuditQuery, AuditRow, Backend, BackendError, BackendErrorKind, BoxFuture, ListQuery, RecordKey,
    SCHEMA_VERSION, SecretRow, TenantRow,
};

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
    audit: Vec<AuditRow>,
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
            let Some(t) = s.tenants.get_mut(id) else {
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
    ) -> BoxFuture<'_, Result<Vec<TenantId>, BackendError>> {
        self.run(move |s| {
            Ok(s.tenants
                .values()
                .filter(|t| t.purge_after.is_some_and(|p| p <= now))
                .map(|t| t.tenant.clone())
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
        self.run(move |s| match s.secrets.get_mut(&row.key) {
            Some(current) if current.version == expected_version => {
                let (created_at, purge_after) = (current.created_at, current.purge_after);
                *current = row.clone();
                current.created_at = created_at;
                current.purge_after = purge_after.or(row.purge_after);
                s.audit.extend_from_slice(audit);
                Ok(true)
            }
            _ => Ok(false),
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
    ) -> BoxFuture<'a, Result<Vec<SecretRow>, BackendError>> {
        self.run(|s| {
            let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
            Ok(s.secrets
                .values()
                .filter(|r| r.key.tenant == query.tenant)
                .filter(|r| query.kind.as_ref().is_none_or(|k| &r.key.kind == k))
                .filter(|r| query.provider.is_none() || r.provider == query.provider)
                .filter(|r| {
                    query
                        .after
                        .as_ref()
                        .is_none_or(|(k, n)| (&r.key.kind, &r.key.name) > (k, n))
                })
                .take(limit)
                .cloned()
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
        now: i64,
        actor: &str,
    ) -> BoxFuture<'_, Result<Vec<RecordKey>, BackendError>> {
        let actor = actor.to_owned();
        self.run(move |s| {
            let due: Vec<RecordKey> = s
                .secrets
                .values()
                .filter(|r| r.purge_after.is_some_and(|p| p <= now))
                .map(|r| r.key.clone())
                .collect();
            for k in &due {
                s.secrets.remove(k);
                s.audit.push(AuditRow {
                    at: now,
                    tenant: Some(k.tenant.clone()),
                    kind: Some(k.kind.to_string()),
                    name: Some(k.name.to_string()),
                    action: "purge".to_owned(),
                    actor: actor.clone(),
                    outcome: "ok".to_owned(),
                });
            }
            Ok(due)
        })
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
}

pub(crate) fn schema_too_new(found: u32) -> BackendError {
    BackendError::new(
        BackendErrorKind::SchemaTooNew,
        format!(
            "the database schema is version {found}; this build of credvault knows up to {SCHEMA_VERSION}: upgrade credvault"
        ),
    )
}
