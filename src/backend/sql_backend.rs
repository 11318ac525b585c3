//! [`Backend`] for [`SqlBackend`]: tenants, records, the audit log and key identities here,
//! key rotation's batch in `sql_rotation.rs`. Each write is one [`Session`]: begin, its
//! statements, then `commit` with its audit rows; an early `return` rolls back.
//!
//! [`Session`]: crate::backend::sql_session::Session

use crate::backend::sql::{Driver, Param, SqlBackend, params};
use crate::backend::sql_rows::{
    audit_from_row, count, count_from_row, dek_from_row, key_from_row, secret_from_row,
    tenant_from_id_row, tenant_from_row,
};
use crate::backend::{
    AuditQuery, AuditRow, Backend, BackendError, BackendErrorKind, BatchOutcome, BatchRequest,
    BoxFuture, DekRow, DestroyDek, KeyIdentity, KeyRegistry, KeyRole, ListQuery, RecordCount,
    RecordKey, SecretRow, TenantRow, VaultKeyRow, purged_record_audit, stale_key,
};
use crate::{KeyVersion, TenantId};

impl<D: Driver> Backend for SqlBackend<D> {
    fn migrate(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(self.migrate_schema())
    }

    fn schema_version(&self) -> BoxFuture<'_, Result<Option<u32>, BackendError>> {
        Box::pin(self.stored_schema_version())
    }

    fn insert_tenant<'a>(
        &'a self,
        row: &'a TenantRow,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<TenantRow, BackendError>> {
        Box::pin(async move {
            let q = &*self.queries;
            let mut tx = self.begin("inserting a tenant").await?;
            let inserted = tx
                .execute(
                    &q.tenants.insert,
                    params![
                        &row.tenant,
                        &row.wrapped_dek,
                        row.dek_version,
                        row.kek_version,
                        row.created_at,
                        row.dek_created_at,
                        row.min_dek_version,
                        row.deleted_at,
                        row.purge_after,
                        row.shredded_at,
                    ],
                )
                .await?;
            if inserted == 1 {
                tx.check_kek(row.kek_version).await?;
                tx.commit(audit).await?;
                return Ok(row.clone());
            }
            let found = tx
                .fetch_one(&q.tenants.select, params![&row.tenant])
                .await?;
            let found = tenant_from_row(&found)?;
            tx.commit(&[]).await?;
            Ok(found)
        })
    }

    fn tenant<'a>(
        &'a self,
        id: &'a TenantId,
    ) -> BoxFuture<'a, Result<Option<TenantRow>, BackendError>> {
        Box::pin(async move {
            let mut conn = self.read("reading a tenant").await?;
            let row = conn
                .fetch_optional(&self.queries.tenants.select, params![id])
                .await?;
            row.as_ref().map(tenant_from_row).transpose()
        })
    }

    fn set_tenant_deletion<'a>(
        &'a self,
        id: &'a TenantId,
        deleted_at: Option<i64>,
        purge_after: Option<i64>,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(async move {
            let sql = &self.queries.tenants.set_deletion;
            let mut tx = self.begin("setting a tenant's deletion state").await?;
            if tx
                .execute(sql, params![id, deleted_at, purge_after])
                .await?
                == 0
            {
                return Ok(false);
            }
            tx.commit(audit).await?;
            Ok(true)
        })
    }

    fn tenants_due_for_purge(
        &self,
        now: i64,
    ) -> BoxFuture<'_, Result<Vec<TenantId>, BackendError>> {
        Box::pin(async move {
            let mut conn = self.read("listing tenants due for purge").await?;
            let rows = conn
                .fetch_all(&self.queries.tenants.due, params![now])
                .await?;
            rows.iter().map(tenant_from_id_row).collect()
        })
    }

    fn purge_tenant<'a>(
        &'a self,
        id: &'a TenantId,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<u64, BackendError>> {
        Box::pin(async move {
            let q = &*self.queries;
            let mut tx = self.begin("purging a tenant").await?;
            let records = tx.execute(&q.records.delete_tenant, params![id]).await?;
            tx.execute(&q.tenants.delete, params![id]).await?;
            tx.execute(&q.deks.delete_tenant, params![id]).await?;
            tx.commit(audit).await?;
            Ok(records)
        })
    }

    fn get<'a>(
        &'a self,
        key: &'a RecordKey,
    ) -> BoxFuture<'a, Result<Option<SecretRow>, BackendError>> {
        Box::pin(async move {
            let mut conn = self.read("reading a record").await?;
            let row = conn
                .fetch_optional(
                    &self.queries.records.select,
                    params![&key.tenant, &key.kind, &key.name],
                )
                .await?;
            row.as_ref().map(secret_from_row).transpose()
        })
    }

    fn insert<'a>(
        &'a self,
        row: &'a SecretRow,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let mut tx = self.begin("inserting a record").await?;
            let sql = &self.queries.records.insert;
            if tx.execute(sql, &secret_params(row)).await? == 0 {
                let current = tx.current_dek_version(&row.key.tenant).await?;
                if current.is_some_and(|v| v != row.dek_version) {
                    return Err(stale_key());
                }
                return Err(BackendError::new(
                    BackendErrorKind::Conflict,
                    "record already exists",
                ));
            }
            tx.commit(audit).await
        })
    }

    fn update<'a>(
        &'a self,
        row: &'a SecretRow,
        expected_version: i64,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(async move {
            let q = &*self.queries;
            let mut tx = self.begin("updating a record").await?;
            let mut params = secret_params(row).to_vec();
            params.push(expected_version.into());
            if tx.execute(&q.records.update, &params).await? != 1 {
                let k = &row.key;
                let stored = tx
                    .scalar(
                        &q.records.select_version,
                        params![&k.tenant, &k.kind, &k.name],
                    )
                    .await?;
                if stored == Some(expected_version) {
                    // The version matched: the data key did not.
                    return Err(stale_key());
                }
                return Ok(false);
            }
            tx.commit(audit).await?;
            Ok(true)
        })
    }

    fn delete<'a>(
        &'a self,
        keys: &'a [RecordKey],
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<u64, BackendError>> {
        Box::pin(async move {
            let sql = &self.queries.records.delete;
            let mut tx = self.begin("deleting records").await?;
            let mut deleted = 0u64;
            for k in keys {
                deleted += tx
                    .execute(sql, params![&k.tenant, &k.kind, &k.name])
                    .await?;
            }
            tx.commit(audit).await?;
            Ok(deleted)
        })
    }

    fn list<'a>(
        &'a self,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<Vec<SecretRow>, BackendError>> {
        Box::pin(async move {
            let sql = self.queries.list(
                query.kind.is_some(),
                query.provider.is_some(),
                query.after.is_some(),
            );
            let mut params = params![&query.tenant].to_vec();
            params.extend(query.kind.as_ref().map(Param::from));
            params.extend(query.provider.as_deref().map(Param::from));
            if let Some((kind, name)) = &query.after {
                params.extend_from_slice(params![kind, name]);
            }
            params.push(i64::from(query.limit).into());
            let mut conn = self.read("listing records").await?;
            let rows = conn.fetch_all(&sql.into(), &params).await?;
            rows.iter().map(secret_from_row).collect()
        })
    }

    fn set_purge_after<'a>(
        &'a self,
        keys: &'a [RecordKey],
        purge_after: i64,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<u64, BackendError>> {
        Box::pin(async move {
            let sql = &self.queries.records.set_purge_after;
            let mut tx = self.begin("setting records' purge time").await?;
            let mut changed = 0u64;
            for k in keys {
                changed += tx
                    .execute(sql, params![&k.tenant, &k.kind, &k.name, purge_after])
                    .await?;
            }
            tx.commit(audit).await?;
            Ok(changed)
        })
    }

    fn purge_records(
        &self,
        now: i64,
        actor: &str,
    ) -> BoxFuture<'_, Result<Vec<RecordKey>, BackendError>> {
        let actor = actor.to_owned();
        Box::pin(async move {
            let mut tx = self.begin("purging records").await?;
            let rows = tx
                .fetch_all(&self.queries.records.purge, params![now])
                .await?;
            let mut keys = rows
                .iter()
                .map(key_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            drop(rows);
            keys.sort();
            let audit: Vec<AuditRow> = keys
                .iter()
                .map(|k| purged_record_audit(k, now, &actor))
                .collect();
            tx.commit(&audit).await?;
            Ok(keys)
        })
    }

    fn append_audit<'a>(&'a self, rows: &'a [AuditRow]) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let tx = self.begin("appending audit rows").await?;
            tx.commit(rows).await
        })
    }

    fn audit<'a>(
        &'a self,
        query: &'a AuditQuery,
    ) -> BoxFuture<'a, Result<Vec<AuditRow>, BackendError>> {
        Box::pin(async move {
            let sql = self.queries.audit(
                query.tenant.is_some(),
                query.since.is_some(),
                query.limit.is_some(),
            );
            let mut params: Vec<Param<'_>> = Vec::with_capacity(3);
            params.extend(query.tenant.as_ref().map(Param::from));
            params.extend(query.since.map(Param::from));
            params.extend(query.limit.map(|l| Param::from(i64::from(l))));
            let mut conn = self.read("reading audit rows").await?;
            let rows = conn.fetch_all(&sql.into(), &params).await?;
            rows.iter().map(audit_from_row).collect()
        })
    }

    fn purge_audit(&self, before: i64) -> BoxFuture<'_, Result<u64, BackendError>> {
        Box::pin(async move {
            let mut conn = self.read("purging audit rows").await?;
            conn.execute(&self.queries.purge_audit, params![before])
                .await
        })
    }

    fn key_registry(&self) -> BoxFuture<'_, Result<KeyRegistry, BackendError>> {
        Box::pin(async move {
            let mut conn = self.read("reading the key registry").await?;
            conn.key_registry().await
        })
    }

    fn register_keys<'a>(
        &'a self,
        keys: &'a [KeyIdentity],
        primary: Option<u32>,
        at: i64,
    ) -> BoxFuture<'a, Result<KeyRegistry, BackendError>> {
        Box::pin(async move {
            let q = &*self.queries;
            let mut tx = self.begin("recording key identities").await?;
            let mut newest = 0u32;
            for key in keys {
                let row = params![
                    key.role.as_str(),
                    i64::from(key.version),
                    key.fingerprint.as_str(),
                    key.recorded_at,
                    key.last_primary_at,
                ];
                tx.execute(&q.keys.insert, row).await?;
                if key.role == KeyRole::Kek {
                    newest = newest.max(key.version);
                }
            }
            tx.execute(&q.keys.raise_newest_kek, params![i64::from(newest)])
                .await?;
            if let Some(v) = primary {
                tx.execute(&q.keys.touch_primary, params![i64::from(v), at])
                    .await?;
            }
            let registry = tx.key_registry().await?;
            tx.commit(&[]).await?;
            Ok(registry)
        })
    }

    fn vault_keys(&self) -> BoxFuture<'_, Result<Vec<VaultKeyRow>, BackendError>> {
        Box::pin(self.select_vault_keys())
    }

    fn insert_vault_key<'a>(
        &'a self,
        row: &'a VaultKeyRow,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<VaultKeyRow, BackendError>> {
        Box::pin(self.insert_vault_key_row(row, audit))
    }

    fn rewrap_vault_key<'a>(
        &'a self,
        name: &'a str,
        old_kek: KeyVersion,
        wrapped: &'a [u8],
        new_kek: KeyVersion,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(self.rewrap_vault_key_row(name, old_kek, wrapped, new_kek, audit))
    }

    fn sql_throttle(
        &self,
        config: crate::password::ThrottleConfig,
        pseudonyms: crate::password::PseudonymKey,
    ) -> Option<crate::backend::SqlThrottle> {
        Some(crate::backend::SqlThrottle::new(
            std::sync::Arc::new(self.clone()),
            config,
            pseudonyms,
        ))
    }

    fn set_tenant_shredded<'a>(
        &'a self,
        id: &'a TenantId,
        at: i64,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(async move {
            let mut tx = self.begin("recording a tenant's shredding").await?;
            if tx
                .execute(&self.queries.tenants.set_shredded, params![id, at])
                .await?
                == 0
            {
                return Ok(false);
            }
            tx.commit(audit).await?;
            Ok(true)
        })
    }

    fn retired_deks<'a>(
        &'a self,
        tenant: &'a TenantId,
    ) -> BoxFuture<'a, Result<Vec<DekRow>, BackendError>> {
        Box::pin(async move {
            let mut conn = self.read("reading retired data keys").await?;
            let rows = conn
                .fetch_all(&self.queries.deks.retired, params![tenant])
                .await?;
            rows.iter().map(dek_from_row).collect()
        })
    }

    fn deks_page<'a>(
        &'a self,
        after: Option<&'a (TenantId, KeyVersion)>,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<DekRow>, BackendError>> {
        Box::pin(async move {
            let (tenant, version) =
                after.map_or(("", 0), |(t, v)| (t.as_str(), i64::from(v.get())));
            let mut conn = self.read("listing data keys").await?;
            let rows = conn
                .fetch_all(
                    &self.queries.deks.page,
                    params![tenant, version, i64::from(limit)],
                )
                .await?;
            rows.iter().map(dek_from_row).collect()
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
        Box::pin(async move {
            let Some(next) = expected.next() else {
                return Ok(false);
            };
            let q = &*self.queries;
            let mut tx = self.begin("rotating a data key").await?;
            tx.check_kek(kek_version).await?;
            let current = tx.scalar(&q.tenants.lock, params![tenant]).await?;
            if current != Some(i64::from(expected.get())) {
                return Ok(false);
            }
            tx.execute(&q.deks.retire_current, params![tenant, expected, now])
                .await?;
            let install = params![tenant, expected, wrapped, next, kek_version, now];
            tx.execute(&q.deks.install, install).await?;
            tx.commit(audit).await?;
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
        Box::pin(async move {
            let q = &*self.queries;
            let mut tx = self.begin("rewrapping a data key").await?;
            tx.check_kek(new_kek).await?;
            let rewrap = params![tenant, version, old_kek, wrapped, new_kek];
            let mut done = tx.execute(&q.deks.rewrap_current, rewrap).await?;
            if done == 0 {
                done = tx.execute(&q.deks.rewrap_retired, rewrap).await?;
            }
            if done == 0 {
                return Ok(false);
            }
            tx.commit(audit).await?;
            Ok(true)
        })
    }

    fn destroy_dek<'a>(
        &'a self,
        tenant: &'a TenantId,
        version: KeyVersion,
        now: i64,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<DestroyDek, BackendError>> {
        Box::pin(async move {
            let q = &*self.queries;
            // The tenant's row is locked (the write lock on SQLite): no write can seal under
            // this key between the count and the erasure.
            let mut tx = self.begin("destroying a data key").await?;
            match tx.scalar(&q.tenants.lock, params![tenant]).await? {
                None => return Ok(DestroyDek::Missing),
                Some(c) if c == i64::from(version.get()) => return Ok(DestroyDek::Current),
                Some(_) => {}
            }
            if tx
                .count(&q.deks.retired_exists, params![tenant, version])
                .await?
                == 0
            {
                return Ok(DestroyDek::Missing);
            }
            let in_use = tx
                .count(&q.deks.count_sealed_with, params![tenant, version])
                .await?;
            if in_use > 0 {
                return Ok(DestroyDek::InUse(count(in_use)));
            }
            tx.execute(&q.deks.erase, params![tenant, version, now])
                .await?;
            tx.commit(audit).await?;
            Ok(DestroyDek::Destroyed)
        })
    }

    fn set_min_dek_version<'a>(
        &'a self,
        tenant: &'a TenantId,
        minimum: KeyVersion,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(async move {
            let sql = &self.queries.tenants.set_min_dek;
            let mut tx = self
                .begin("setting a tenant's minimum data key version")
                .await?;
            if tx.execute(sql, params![tenant, minimum]).await? == 0 {
                return Ok(false);
            }
            tx.commit(audit).await?;
            Ok(true)
        })
    }

    fn record_counts(&self) -> BoxFuture<'_, Result<Vec<RecordCount>, BackendError>> {
        Box::pin(async move {
            let mut conn = self.read("counting records per data key").await?;
            let rows = conn
                .fetch_all(&self.queries.records.counts, params![])
                .await?;
            rows.iter().map(count_from_row).collect()
        })
    }

    fn count_stale(&self) -> BoxFuture<'_, Result<u64, BackendError>> {
        Box::pin(async move {
            let mut conn = self.read("counting records to re-encrypt").await?;
            let n = conn
                .count(&self.queries.records.count_stale, params![])
                .await?;
            Ok(count(n))
        })
    }

    fn reencrypt_batch<'a>(
        &'a self,
        request: &'a BatchRequest<'a>,
    ) -> BoxFuture<'a, Result<BatchOutcome, BackendError>> {
        Box::pin(self.reencrypt(request))
    }
}

/// The parameters of a record write, in [`SECRET_COLUMNS`](crate::backend::sql_queries)
/// order.
fn secret_params(row: &SecretRow) -> [Param<'_>; 14] {
    *params![
        &row.key.tenant,
        &row.key.kind,
        &row.key.name,
        row.version,
        &row.sealed,
        row.dek_version,
        row.kek_version,
        row.metadata.as_str(),
        row.provider.as_deref(),
        row.created_at,
        row.updated_at,
        row.expires_at,
        row.purge_after,
        row.lease_until,
    ]
}
