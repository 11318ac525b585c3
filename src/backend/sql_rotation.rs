//! Key rotation in the SQL backends: retired data keys, rewrapping, and the re-encryption
//! batch. The statements are shared by SQLite and PostgreSQL; the implementation is generated
//! for each driver by `sql_rotation!`, called from `sql_backend!`.

use std::sync::Arc;

use crate::backend::sql::{Dialect, RowExt, corrupt, key_from_row, key_version, read, shown};
use crate::backend::{BackendError, DekRow, RecordCount, StaleRecord, TenantRow};
use crate::{KeyVersion, TenantId};

/// The columns of `credvault_tenant_deks`, in [`dek_from_row`]'s order.
const DEK_COLUMNS: &str =
    "tenant_id, dek_version, wrapped_dek, kek_version, created_at, retired_at, destroyed_at";

/// Parameters per row of the multi-row reseal `UPDATE`.
const RESEAL_PARAMS: usize = 8;

/// Rows per reseal `UPDATE` statement (800 parameters, well under both drivers' limits).
pub(crate) const RESEAL_CHUNK: usize = 16;

/// The key-rotation statements, with table names qualified by the backend's prefix.
#[derive(Debug)]
pub(crate) struct RotationQueries {
    prefix: String,
    pub(crate) delete_tenant_deks: Arc<str>,
    pub(crate) current_dek: Arc<str>,
    pub(crate) lock_tenant: Arc<str>,
    pub(crate) retired_deks: Arc<str>,
    pub(crate) deks_page: Arc<str>,
    pub(crate) retire_current: Arc<str>,
    pub(crate) install_dek: Arc<str>,
    pub(crate) rewrap_current: Arc<str>,
    pub(crate) rewrap_retired: Arc<str>,
    pub(crate) count_sealed_with: Arc<str>,
    pub(crate) erase_dek: Arc<str>,
    pub(crate) retired_exists: Arc<str>,
    pub(crate) set_min: Arc<str>,
    pub(crate) record_counts: Arc<str>,
    pub(crate) count_stale: Arc<str>,
    pub(crate) select_versions: Arc<str>,
    pub(crate) claim_first: Arc<str>,
    pub(crate) claim_after: Arc<str>,
}

impl RotationQueries {
    pub(crate) fn new(p: &str, dialect: Dialect) -> Self {
        let q = |s: String| Arc::<str>::from(s);
        let lock = match dialect {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        };
        let claim_lock = match dialect {
            Dialect::Sqlite => "",
            // A batch claims its records alone (other workers skip them) and keeps the tenants'
            // current data keys from being rotated under it.
            Dialect::Postgres => " FOR UPDATE OF s SKIP LOCKED FOR SHARE OF t",
        };
        // Only what resealing needs: every column read costs on SQLite, per row (the batch's
        // tenants and data keys are read once each, after the claim).
        let secret_cols = "s.tenant_id AS tenant_id, s.kind AS kind, s.name AS name, \
             s.version AS version, s.sealed AS sealed, s.dek_version AS dek_version";
        let claim = |after: &str, limit: &str| {
            format!(
                "SELECT {secret_cols} FROM {p}credvault_secrets s \
                 JOIN {p}credvault_tenants t ON t.tenant_id = s.tenant_id \
                 WHERE s.dek_version <> t.dek_version{after} \
                 ORDER BY s.tenant_id, s.kind, s.name LIMIT {limit}{claim_lock}"
            )
        };
        Self {
            prefix: p.to_owned(),
            delete_tenant_deks: q(format!(
                "DELETE FROM {p}credvault_tenant_deks WHERE tenant_id = $1"
            )),
            current_dek: q(format!(
                "SELECT dek_version FROM {p}credvault_tenants WHERE tenant_id = $1"
            )),
            lock_tenant: q(format!(
                "SELECT dek_version FROM {p}credvault_tenants WHERE tenant_id = $1{lock}"
            )),
            retired_deks: q(format!(
                "SELECT {DEK_COLUMNS} FROM {p}credvault_tenant_deks WHERE tenant_id = $1 \
                 ORDER BY dek_version"
            )),
            deks_page: q(format!(
                "SELECT {DEK_COLUMNS} FROM (\
                 SELECT tenant_id, dek_version, wrapped_dek, kek_version, \
                 COALESCE(dek_created_at, created_at) AS created_at, \
                 CAST(NULL AS BIGINT) AS retired_at, CAST(NULL AS BIGINT) AS destroyed_at \
                 FROM {p}credvault_tenants UNION ALL \
                 SELECT {DEK_COLUMNS} FROM {p}credvault_tenant_deks) k \
                 WHERE (tenant_id, dek_version) > ($1, $2) \
                 ORDER BY tenant_id, dek_version LIMIT $3"
            )),
            retire_current: q(format!(
                "INSERT INTO {p}credvault_tenant_deks ({DEK_COLUMNS}) \
                 SELECT tenant_id, dek_version, wrapped_dek, kek_version, \
                 COALESCE(dek_created_at, created_at), $3, NULL \
                 FROM {p}credvault_tenants WHERE tenant_id = $1 AND dek_version = $2"
            )),
            install_dek: q(format!(
                "UPDATE {p}credvault_tenants SET wrapped_dek = $3, dek_version = $4, \
                 kek_version = $5, dek_created_at = $6 WHERE tenant_id = $1 AND dek_version = $2"
            )),
            rewrap_current: q(format!(
                "UPDATE {p}credvault_tenants SET wrapped_dek = $4, kek_version = $5 \
                 WHERE tenant_id = $1 AND dek_version = $2 AND kek_version = $3"
            )),
            rewrap_retired: q(format!(
                "UPDATE {p}credvault_tenant_deks SET wrapped_dek = $4, kek_version = $5 \
                 WHERE tenant_id = $1 AND dek_version = $2 AND kek_version = $3 \
                 AND wrapped_dek IS NOT NULL"
            )),
            count_sealed_with: q(format!(
                "SELECT COUNT(*) FROM {p}credvault_secrets WHERE tenant_id = $1 AND dek_version = $2"
            )),
            erase_dek: q(format!(
                "UPDATE {p}credvault_tenant_deks SET wrapped_dek = NULL, destroyed_at = $3 \
                 WHERE tenant_id = $1 AND dek_version = $2 AND wrapped_dek IS NOT NULL"
            )),
            retired_exists: q(format!(
                "SELECT COUNT(*) FROM {p}credvault_tenant_deks \
                 WHERE tenant_id = $1 AND dek_version = $2 AND wrapped_dek IS NOT NULL"
            )),
            set_min: q(format!(
                "UPDATE {p}credvault_tenants SET min_dek_version = $2 \
                 WHERE tenant_id = $1 AND dek_version >= $2"
            )),
            record_counts: q(format!(
                "SELECT tenant_id, dek_version, COUNT(*) AS records FROM {p}credvault_secrets \
                 GROUP BY tenant_id, dek_version ORDER BY tenant_id, dek_version"
            )),
            count_stale: q(format!(
                "SELECT COUNT(*) FROM {p}credvault_secrets s \
                 JOIN {p}credvault_tenants t ON t.tenant_id = s.tenant_id \
                 WHERE s.dek_version <> t.dek_version"
            )),
            select_versions: q(format!(
                "SELECT version, dek_version FROM {p}credvault_secrets \
                 WHERE tenant_id = $1 AND kind = $2 AND name = $3"
            )),
            claim_first: q(claim("", "$1")),
            claim_after: q(claim(
                " AND (s.tenant_id, s.kind, s.name) > ($1, $2, $3)",
                "$4",
            )),
        }
    }

    /// The multi-row reseal: `rows` groups of (tenant, kind, name, sealed, new DEK version,
    /// new KEK version, version, old DEK version). A row is written only if it still has the
    /// version and data key it was claimed with. (No `RETURNING`: SQLite's driver hands each
    /// returned row over a channel, which cost more than the update.)
    pub(crate) fn reseal(&self, rows: usize) -> String {
        use std::fmt::Write as _;
        let p = &self.prefix;
        let mut values = String::with_capacity(rows * 48);
        for row in 0..rows {
            let b = row * RESEAL_PARAMS;
            let sep = if row == 0 { "" } else { ", " };
            let _ = write!(values, "{sep}(");
            for i in 1..=RESEAL_PARAMS {
                let comma = if i == 1 { "" } else { ", " };
                let _ = write!(values, "{comma}${}", b + i);
            }
            values.push(')');
        }
        format!(
            "UPDATE {p}credvault_secrets AS s SET sealed = v.column4, dek_version = v.column5, \
             kek_version = v.column6 FROM (VALUES {values}) AS v \
             WHERE s.tenant_id = v.column1 AND s.kind = v.column2 AND s.name = v.column3 \
             AND s.version = v.column7 AND s.dek_version = v.column8"
        )
    }
}

/// A `credvault_tenant_deks` row (or the union of [`RotationQueries::deks_page`]).
pub(crate) fn dek_from_row(row: &impl RowExt) -> Result<DekRow, BackendError> {
    let raw = row.text("tenant_id").map_err(|e| {
        corrupt("credvault_tenant_deks row: column tenant_id cannot be read".to_owned())
            .with_source(e)
    })?;
    let place = || format!("credvault_tenant_deks row for tenant {}", shown(&raw));
    let tenant = TenantId::new(raw.as_str())
        .map_err(|e| corrupt(format!("{}: invalid tenant id", place())).with_source(e))?;
    Ok(DekRow {
        version: key_version(&place, row, "dek_version")?,
        wrapped_dek: read(&place, "wrapped_dek", row.opt_bytes("wrapped_dek"))?,
        kek_version: key_version(&place, row, "kek_version")?,
        created_at: read(&place, "created_at", row.int("created_at"))?,
        retired_at: read(&place, "retired_at", row.opt_int("retired_at"))?,
        destroyed_at: read(&place, "destroyed_at", row.opt_int("destroyed_at"))?,
        tenant,
    })
}

/// A claimed record: a row of [`RotationQueries::claim_first`] / `claim_after`, with its
/// tenant's row and the tenant's retired data keys.
pub(crate) fn stale_from_row(
    row: &impl RowExt,
    tenants: &std::collections::BTreeMap<TenantId, (TenantRow, Vec<DekRow>)>,
) -> Result<StaleRecord, BackendError> {
    let key = key_from_row(row)?;
    let place = || {
        format!(
            "credvault_secrets row (tenant {}, kind {}, name {})",
            shown(key.tenant.as_str()),
            shown(key.kind.as_str()),
            shown(key.name.as_str())
        )
    };
    let version = read(&place, "version", row.int("version"))?;
    let sealed = read(&place, "sealed", row.bytes("sealed"))?;
    let dek_version = key_version(&place, row, "dek_version")?;
    let (tenant, retired) = tenants
        .get(&key.tenant)
        .ok_or_else(|| corrupt(format!("{}: its tenant's row is gone", place())))?;
    Ok(StaleRecord {
        sealed_with: retired.iter().find(|d| d.version == dek_version).cloned(),
        tenant: tenant.clone(),
        key,
        version,
        sealed,
        dek_version,
    })
}

/// A row of [`RotationQueries::record_counts`].
pub(crate) fn count_from_row(row: &impl RowExt) -> Result<RecordCount, BackendError> {
    let raw = row.text("tenant_id").map_err(|e| {
        corrupt("credvault_secrets row: column tenant_id cannot be read".to_owned()).with_source(e)
    })?;
    let place = || format!("credvault_secrets rows of tenant {}", shown(&raw));
    let tenant = TenantId::new(raw.as_str())
        .map_err(|e| corrupt(format!("{}: invalid tenant id", place())).with_source(e))?;
    let records = read(&place, "records", row.int("records"))?;
    Ok(RecordCount {
        dek_version: key_version(&place, row, "dek_version")?,
        records: u64::try_from(records).unwrap_or(0),
        tenant,
    })
}

/// A count read from `COUNT(*)`, as u64.
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A key version bound as a parameter.
pub(crate) fn v(version: KeyVersion) -> i64 {
    i64::from(version.get())
}

/// Generates the key-rotation methods of a SQL backend (called by `sql_backend!`).
macro_rules! sql_rotation {
    ($ty:ty, $conn:ty) => {
        impl $ty {
            /// The tenant's current data key version, read on `conn`.
            async fn current_dek_version(
                &self,
                conn: &mut $conn,
                tenant: &$crate::TenantId,
            ) -> Result<Option<$crate::KeyVersion>, $crate::backend::BackendError> {
                let v: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(
                    self.queries.rotation.current_dek.clone(),
                ))
                .bind(tenant.as_str())
                .fetch_optional(&mut *conn)
                .await
                .map_err(|e| self.err(e, "reading a tenant's data key version"))?;
                Ok(v.and_then(|v| u32::try_from(v).ok())
                    .map($crate::KeyVersion::new))
            }

            async fn retired_deks_impl(
                &self,
                tenant: &$crate::TenantId,
            ) -> Result<Vec<$crate::backend::DekRow>, $crate::backend::BackendError> {
                let rows = sqlx::query(sqlx::AssertSqlSafe(
                    self.queries.rotation.retired_deks.clone(),
                ))
                .bind(tenant.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err(e, "reading retired data keys"))?;
                rows.iter()
                    .map($crate::backend::sql_rotation::dek_from_row)
                    .collect()
            }

            async fn deks_page_impl(
                &self,
                after: Option<&($crate::TenantId, $crate::KeyVersion)>,
                limit: u32,
            ) -> Result<Vec<$crate::backend::DekRow>, $crate::backend::BackendError> {
                let (tenant, version) = after
                    .map(|(t, v)| (t.as_str(), $crate::backend::sql_rotation::v(*v)))
                    .unwrap_or(("", 0));
                let rows =
                    sqlx::query(sqlx::AssertSqlSafe(self.queries.rotation.deks_page.clone()))
                        .bind(tenant)
                        .bind(version)
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(|e| self.err(e, "listing data keys"))?;
                rows.iter()
                    .map($crate::backend::sql_rotation::dek_from_row)
                    .collect()
            }

            #[allow(clippy::too_many_arguments, reason = "mirrors Backend::rotate_dek")]
            async fn rotate_dek_impl(
                &self,
                tenant: &$crate::TenantId,
                expected: $crate::KeyVersion,
                wrapped: &[u8],
                kek_version: $crate::KeyVersion,
                now: i64,
                audit: &[$crate::backend::AuditRow],
            ) -> Result<bool, $crate::backend::BackendError> {
                use $crate::backend::sql_rotation::v;
                let context = "rotating a data key";
                let Some(next) = expected.next() else {
                    return Ok(false);
                };
                let r = &self.queries.rotation;
                let mut tx = self.begin_write().await?;
                self.check_kek(&mut *tx, kek_version).await?;
                let current: Option<i64> =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(r.lock_tenant.clone()))
                        .bind(tenant.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(|e| self.err(e, context))?;
                if current != Some(v(expected)) {
                    return Ok(false);
                }
                sqlx::query(sqlx::AssertSqlSafe(r.retire_current.clone()))
                    .bind(tenant.as_str())
                    .bind(v(expected))
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e, context))?;
                sqlx::query(sqlx::AssertSqlSafe(r.install_dek.clone()))
                    .bind(tenant.as_str())
                    .bind(v(expected))
                    .bind(wrapped)
                    .bind(v(next))
                    .bind(v(kek_version))
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e, context))?;
                self.write_audit(&mut *tx, audit).await?;
                tx.commit().await.map_err(|e| self.err(e, context))?;
                Ok(true)
            }

            async fn rewrap_dek_impl(
                &self,
                tenant: &$crate::TenantId,
                version: $crate::KeyVersion,
                old_kek: $crate::KeyVersion,
                wrapped: &[u8],
                new_kek: $crate::KeyVersion,
                audit: &[$crate::backend::AuditRow],
            ) -> Result<bool, $crate::backend::BackendError> {
                use $crate::backend::sql_rotation::v;
                let context = "rewrapping a data key";
                let r = &self.queries.rotation;
                let mut tx = self.begin_write().await?;
                self.check_kek(&mut *tx, new_kek).await?;
                let mut done = 0;
                for sql in [&r.rewrap_current, &r.rewrap_retired] {
                    done += sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                        .bind(tenant.as_str())
                        .bind(v(version))
                        .bind(v(old_kek))
                        .bind(wrapped)
                        .bind(v(new_kek))
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.err(e, context))?
                        .rows_affected();
                    if done > 0 {
                        break;
                    }
                }
                if done == 0 {
                    return Ok(false);
                }
                self.write_audit(&mut *tx, audit).await?;
                tx.commit().await.map_err(|e| self.err(e, context))?;
                Ok(true)
            }

            async fn destroy_dek_impl(
                &self,
                tenant: &$crate::TenantId,
                version: $crate::KeyVersion,
                now: i64,
                audit: &[$crate::backend::AuditRow],
            ) -> Result<$crate::backend::DestroyDek, $crate::backend::BackendError> {
                use $crate::backend::DestroyDek;
                use $crate::backend::sql_rotation::{count, v};
                let context = "destroying a data key";
                let r = &self.queries.rotation;
                // The tenant's row is locked (the write lock on SQLite): no write can seal under
                // this key between the count and the erasure.
                let mut tx = self.begin_write().await?;
                let current: Option<i64> =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(r.lock_tenant.clone()))
                        .bind(tenant.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(|e| self.err(e, context))?;
                match current {
                    None => return Ok(DestroyDek::Missing),
                    Some(c) if c == v(version) => return Ok(DestroyDek::Current),
                    Some(_) => {}
                }
                let live: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(r.retired_exists.clone()))
                    .bind(tenant.as_str())
                    .bind(v(version))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| self.err(e, context))?;
                if live == 0 {
                    return Ok(DestroyDek::Missing);
                }
                let in_use: i64 =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(r.count_sealed_with.clone()))
                        .bind(tenant.as_str())
                        .bind(v(version))
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(|e| self.err(e, context))?;
                if in_use > 0 {
                    return Ok(DestroyDek::InUse(count(in_use)));
                }
                sqlx::query(sqlx::AssertSqlSafe(r.erase_dek.clone()))
                    .bind(tenant.as_str())
                    .bind(v(version))
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e, context))?;
                self.write_audit(&mut *tx, audit).await?;
                tx.commit().await.map_err(|e| self.err(e, context))?;
                Ok(DestroyDek::Destroyed)
            }

            async fn set_min_dek_version_impl(
                &self,
                tenant: &$crate::TenantId,
                minimum: $crate::KeyVersion,
                audit: &[$crate::backend::AuditRow],
            ) -> Result<bool, $crate::backend::BackendError> {
                let context = "setting a tenant's minimum data key version";
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(sqlx::AssertSqlSafe(self.queries.rotation.set_min.clone()))
                    .bind(tenant.as_str())
                    .bind($crate::backend::sql_rotation::v(minimum))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e, context))?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                self.write_audit(&mut *tx, audit).await?;
                tx.commit().await.map_err(|e| self.err(e, context))?;
                Ok(true)
            }

            async fn record_counts_impl(
                &self,
            ) -> Result<Vec<$crate::backend::RecordCount>, $crate::backend::BackendError> {
                let rows = sqlx::query(sqlx::AssertSqlSafe(
                    self.queries.rotation.record_counts.clone(),
                ))
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.err(e, "counting records per data key"))?;
                rows.iter()
                    .map($crate::backend::sql_rotation::count_from_row)
                    .collect()
            }

            async fn count_stale_impl(&self) -> Result<u64, $crate::backend::BackendError> {
                let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(
                    self.queries.rotation.count_stale.clone(),
                ))
                .fetch_one(&self.pool)
                .await
                .map_err(|e| self.err(e, "counting records to re-encrypt"))?;
                Ok($crate::backend::sql_rotation::count(n))
            }

            /// Whether `stale` now holds the data key of `new` (after a reseal `UPDATE` that
            /// did not write every row of its chunk).
            async fn reseal_landed(
                &self,
                conn: &mut $conn,
                stale: &$crate::backend::StaleRecord,
                new: &$crate::backend::Resealed,
            ) -> Result<bool, $crate::backend::BackendError> {
                let k = &stale.key;
                let row: Option<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(
                    self.queries.rotation.select_versions.clone(),
                ))
                .bind(k.tenant.as_str())
                .bind(k.kind.as_str())
                .bind(k.name.as_str())
                .fetch_optional(&mut *conn)
                .await
                .map_err(|e| self.err(e, "re-encrypting a batch"))?;
                Ok(row
                    == Some((
                        stale.version,
                        $crate::backend::sql_rotation::v(new.dek_version),
                    )))
            }

            async fn reencrypt_batch_impl(
                &self,
                request: &$crate::backend::BatchRequest<'_>,
            ) -> Result<$crate::backend::BatchOutcome, $crate::backend::BackendError> {
                use $crate::backend::sql_rotation::{RESEAL_CHUNK, stale_from_row, v};
                let context = "re-encrypting a batch";
                let r = &self.queries.rotation;
                let mut tx = self.begin_write().await?;
                let claim = match &request.after {
                    None => sqlx::query(sqlx::AssertSqlSafe(r.claim_first.clone())),
                    Some(k) => sqlx::query(sqlx::AssertSqlSafe(r.claim_after.clone()))
                        .bind(k.tenant.as_str())
                        .bind(k.kind.as_str())
                        .bind(k.name.as_str()),
                };
                let rows = claim
                    .bind(i64::from(request.limit))
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(|e| self.err(e, context))?;
                let mut tenants = std::collections::BTreeMap::new();
                for row in &rows {
                    let id = $crate::backend::sql::key_from_row(row)?.tenant;
                    if tenants.contains_key(&id) {
                        continue;
                    }
                    let t = sqlx::query(sqlx::AssertSqlSafe(self.queries.select_tenant.clone()))
                        .bind(id.as_str())
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(|e| self.err(e, context))?;
                    let t = $crate::backend::sql::tenant_from_row(&t)?;
                    let retired = sqlx::query(sqlx::AssertSqlSafe(r.retired_deks.clone()))
                        .bind(id.as_str())
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(|e| self.err(e, context))?
                        .iter()
                        .map($crate::backend::sql_rotation::dek_from_row)
                        .collect::<Result<Vec<_>, _>>()?;
                    tenants.insert(id, (t, retired));
                }
                let claimed = rows
                    .iter()
                    .map(|row| stale_from_row(row, &tenants))
                    .collect::<Result<Vec<_>, _>>()?;
                drop(rows);
                let mut out = $crate::backend::BatchOutcome {
                    claimed: u32::try_from(claimed.len()).unwrap_or(u32::MAX),
                    last: claimed.last().map(|c| c.key.clone()),
                    ..Default::default()
                };
                let mut resealed = Vec::with_capacity(claimed.len());
                for stale in &claimed {
                    match (request.reseal)(stale) {
                        Ok(new) => resealed.push((stale, new)),
                        Err(reason) => out.failed.push((stale.key.clone(), reason)),
                    }
                }
                let mut written_keys = Vec::with_capacity(resealed.len());
                for chunk in resealed.chunks(RESEAL_CHUNK) {
                    let sql = r.reseal(chunk.len());
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for (stale, new) in chunk {
                        let k = &stale.key;
                        q = q
                            .bind(k.tenant.as_str())
                            .bind(k.kind.as_str())
                            .bind(k.name.as_str())
                            .bind(new.sealed.as_slice())
                            .bind(v(new.dek_version))
                            .bind(v(new.kek_version))
                            .bind(stale.version)
                            .bind(v(stale.dek_version));
                    }
                    let written = q
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.err(e, context))?
                        .rows_affected();
                    for (stale, new) in chunk {
                        // The claimed rows are locked by this transaction, so a row of the
                        // chunk is ours if it now has the new data key (checked one by one
                        // only when some row was not written).
                        let ours = usize::try_from(written).is_ok_and(|w| w == chunk.len())
                            || self.reseal_landed(&mut *tx, stale, new).await?;
                        if ours {
                            written_keys.push(&stale.key);
                        }
                    }
                }
                out.resealed = u64::try_from(written_keys.len()).unwrap_or(u64::MAX);
                out.changed = u64::try_from(resealed.len() - written_keys.len()).unwrap_or(0);
                let audit = $crate::backend::rotation::reencrypt_audit(
                    written_keys,
                    request.now,
                    request.actor,
                );
                self.write_audit(&mut *tx, &audit).await?;
                tx.commit().await.map_err(|e| self.err(e, context))?;
                Ok(out)
            }
        }
    };
}

pub(crate) use sql_rotation;
