//! [`Backend`] for [`SqlBackend`]: tenants, records, the audit log and key identities here,
//! key rotation's batch in `sql_rotation.rs`. Each write is one [`Session`]: begin, its
//! statements, then `commit` with its audit rows; an early `return` rolls back.
//!
//! [`Session`]: crate::backend::sql_session::Session

use std::sync::Arc;

use crate::backend::Joinable;
use crate::backend::sql::{Driver, Param, SqlBackend, params};
use crate::backend::sql_queries::AUDIT_CHUNK;
use crate::backend::sql_rows::{
    RowExt as _, audit_from_row, corrupt, count, count_listed, dek_from_row, dek_listed,
    due_tenant_from_row, listed_key, sealed_from_row,
};
use crate::backend::{
    AuditQuery, AuditRow, Backend, BackendError, BatchOutcome, BatchRequest, BoxFuture, DekCursor,
    DekRow, DestroyDek, KeyIdentity, KeyRegistry, ListQuery, RecordCount, RecordKey, SealedRecord,
    SecretRow, SuitePlan, TenantRow, UnreadableRow, VaultKeyRow, purged_record_audit,
    purged_unreadable_audit,
};
use crate::{KeyVersion, TenantId};

impl<D: Driver> crate::backend::sealed::Sealed for SqlBackend<D> {}

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
            let tx = self.begin("inserting a tenant").await?;
            self.insert_tenant_tx(tx, row, audit).await
        })
    }

    fn tenant<'a>(
        &'a self,
        id: &'a TenantId,
    ) -> BoxFuture<'a, Result<Option<TenantRow>, BackendError>> {
        Box::pin(async move {
            let conn = self.read("reading a tenant").await?;
            Self::tenant_on(conn, id).await
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
            let tx = self.begin("setting a tenant's deletion state").await?;
            Self::set_tenant_deletion_tx(tx, id, deleted_at, purge_after, audit).await
        })
    }

    fn tenants_due_for_purge(
        &self,
        now: i64,
    ) -> BoxFuture<'_, Result<Vec<Result<TenantId, UnreadableRow>>, BackendError>> {
        Box::pin(async move {
            let mut conn = self.read("listing tenants due for purge").await?;
            let rows = conn
                .fetch_all(&self.queries.tenants.due, params![now])
                .await?;
            Ok(rows.iter().map(due_tenant_from_row).collect())
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
            let conn = self.read("reading a record").await?;
            Self::get_on(conn, key).await
        })
    }

    fn get_sealed<'a>(
        &'a self,
        key: &'a RecordKey,
    ) -> BoxFuture<'a, Result<Option<SealedRecord>, BackendError>> {
        Box::pin(async move {
            let mut conn = self.read("reading a record").await?;
            let q = conn.queries;
            let row = conn
                .fetch_optional(
                    &q.records.select_sealed,
                    params![&key.tenant, &key.kind, &key.name],
                )
                .await?;
            row.as_ref().map(|r| sealed_from_row(r, key)).transpose()
        })
    }

    fn insert<'a>(
        &'a self,
        row: &'a SecretRow,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let tx = self.begin("inserting a record").await?;
            Self::insert_tx(tx, row, audit).await
        })
    }

    fn upsert<'a>(
        &'a self,
        row: &'a SecretRow,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<i64, BackendError>> {
        Box::pin(async move {
            let tx = self.begin("upserting a record").await?;
            Self::upsert_tx(tx, row, audit).await
        })
    }

    #[allow(private_interfaces, reason = "sealed: see Backend::joinable")]
    fn joinable(&self) -> Option<&dyn Joinable> {
        Some(self)
    }

    fn update<'a>(
        &'a self,
        row: &'a SecretRow,
        expected_version: i64,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(async move {
            let tx = self.begin("updating a record").await?;
            Self::update_tx(tx, row, expected_version, audit).await
        })
    }

    fn delete<'a>(
        &'a self,
        keys: &'a [RecordKey],
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<u64, BackendError>> {
        Box::pin(async move {
            let tx = self.begin("deleting records").await?;
            Self::delete_tx(tx, keys, audit).await
        })
    }

    fn list<'a>(
        &'a self,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<Vec<crate::backend::ListedRow>, BackendError>> {
        Box::pin(async move {
            let conn = self.read("listing records").await?;
            Self::list_on(conn, query).await
        })
    }

    fn set_purge_after<'a>(
        &'a self,
        keys: &'a [RecordKey],
        purge_after: i64,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<u64, BackendError>> {
        Box::pin(async move {
            let tx = self.begin("setting records' purge time").await?;
            Self::set_purge_after_tx(tx, keys, purge_after, audit).await
        })
    }

    fn purge_records(
        &self,
        due: i64,
        now: i64,
        actor: &str,
    ) -> BoxFuture<'_, Result<Vec<Result<RecordKey, UnreadableRow>>, BackendError>> {
        let actor = actor.to_owned();
        Box::pin(async move {
            let mut tx = self.begin("purging records").await?;
            let rows = tx
                .fetch_all(&self.queries.records.purge, params![due])
                .await?;
            let mut keys: Vec<_> = rows.iter().map(listed_key).collect();
            drop(rows);
            keys.sort_by(|a, b| match (a, b) {
                (Ok(a), Ok(b)) => a.cmp(b),
                (Ok(_), Err(_)) => std::cmp::Ordering::Less,
                (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
                (Err(a), Err(b)) => a.raw.cmp(&b.raw),
            });
            let audit: Vec<AuditRow> = keys
                .iter()
                .map(|k| match k {
                    Ok(k) => purged_record_audit(k, now, &actor),
                    Err(u) => purged_unreadable_audit(u, now, &actor),
                })
                .collect();
            tx.commit(&audit).await?;
            Ok(keys)
        })
    }

    fn oldest_purge_deadline(&self) -> BoxFuture<'_, Result<Option<i64>, BackendError>> {
        Box::pin(async move {
            let mut conn = self.read("reading the oldest purge deadline").await?;
            let row = conn
                .fetch_optional(&self.queries.oldest_deadline, params![])
                .await?;
            match row {
                Some(row) => row.opt_int("d").map_err(|e| {
                    corrupt("the oldest purge deadline cannot be read".to_owned()).with_source(e)
                }),
                None => Ok(None),
            }
        })
    }

    fn flush_deleted(&self) -> BoxFuture<'_, Result<bool, BackendError>> {
        D::flush_deleted(&self.pool)
    }

    fn record_purge_run(
        &self,
        started_at: i64,
        oldest_overdue: i64,
    ) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let mut conn = self.read("recording the purge run").await?;
            conn.execute(
                &self.queries.record_purge_run,
                params![started_at, oldest_overdue],
            )
            .await?;
            Ok(())
        })
    }

    fn last_purge_run(&self) -> BoxFuture<'_, Result<Option<(i64, i64)>, BackendError>> {
        Box::pin(async move {
            let mut conn = self.read("reading the last purge run").await?;
            let Some(row) = conn
                .fetch_optional(&self.queries.last_purge_run, params![])
                .await?
            else {
                return Ok(None);
            };
            let read = |column| {
                row.opt_int(column).map_err(|e| {
                    corrupt("the last purge run cannot be read".to_owned()).with_source(e)
                })
            };
            Ok(match (read("at")?, read("overdue")?) {
                (Some(at), overdue) => Some((at, overdue.unwrap_or(0))),
                (None, _) => None,
            })
        })
    }

    fn append_audit<'a>(&'a self, rows: &'a [AuditRow]) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            if rows.is_empty() {
                return Ok(());
            }
            if rows.len() <= AUDIT_CHUNK {
                // One statement is atomic on its own: no BEGIN and COMMIT round trips (a batch
                // of buffered read events is one chunk).
                return self
                    .read("appending audit rows")
                    .await?
                    .write_audit(rows)
                    .await;
            }
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
            Ok(rows.iter().map(audit_from_row).collect())
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
            let tx = self.begin("recording key identities").await?;
            Self::register_keys_tx(tx, keys, primary, at).await
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
            Arc::new(self.clone()),
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
        after: Option<&'a DekCursor>,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Result<DekRow, UnreadableRow>>, BackendError>> {
        Box::pin(async move {
            let (tenant, version) =
                after.map_or(("", i64::MIN), |a| (a.tenant.as_str(), a.version));
            let mut conn = self.read("listing data keys").await?;
            let rows = conn
                .fetch_all(
                    &self.queries.deks.page,
                    params![tenant, version, i64::from(limit)],
                )
                .await?;
            Ok(rows.iter().map(dek_listed).collect())
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

    fn record_counts(
        &self,
    ) -> BoxFuture<'_, Result<Vec<Result<RecordCount, UnreadableRow>>, BackendError>> {
        Box::pin(async move {
            let mut conn = self.read("counting records per data key").await?;
            let rows = conn
                .fetch_all(&self.queries.records.counts, params![])
                .await?;
            Ok(rows.iter().map(count_listed).collect())
        })
    }

    fn count_stale<'a>(&'a self, plan: &'a SuitePlan) -> BoxFuture<'a, Result<u64, BackendError>> {
        Box::pin(async move {
            let mut conn = self.read("counting records to re-encrypt").await?;
            let sql: Arc<str> = self.queries.batch.count_stale(plan).into();
            let n = conn.count(&sql, params![]).await?;
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
