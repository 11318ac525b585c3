//! The statements of each record and tenant write, on a given transaction: the backend's own
//! (begun on its pool, in `sql_backend.rs`) or a savepoint of the application's
//! ([`Joinable`], here). The reads a joined write needs run on the caller's connection too.

use sqlx::{Connection as _, Transaction};

use crate::TenantId;
use crate::backend::join::{Joinable, Joined};
use crate::backend::sql::{Driver, Param, SqlBackend, params};
use crate::backend::sql_rows::{listed_from_row, map_err, secret_from_row, tenant_from_row};
use crate::backend::sql_session::Session;
use crate::backend::{
    AuditRow, BackendError, BackendErrorKind, BoxFuture, KeyIdentity, KeyRegistry, KeyRole,
    ListQuery, ListedRow, RecordKey, SecretRow, TenantRow, stale_key,
};

/// A write transaction of the backend's own or a savepoint of the caller's.
type Tx<'b, 'c, D> = Session<'b, D, Transaction<'c, D>>;

#[expect(
    private_bounds,
    reason = "crate-internal methods, bounded by the crate-internal dialect traits"
)]
impl<D: Driver> SqlBackend<D> {
    /// The caller's connection, if it is of this backend's database.
    fn own<'c>(&self, conn: Joined<'c>) -> Result<&'c mut D::Connection, BackendError> {
        let got = conn.database();
        D::joined(conn).ok_or_else(|| {
            BackendError::new(
                BackendErrorKind::Other,
                format!(
                    "a {got} connection was given to a {} vault: pass a connection of the \
                     vault's own database",
                    D::DRIVER
                ),
            )
        })
    }

    /// A write on the caller's connection: a savepoint of its open transaction, or (on a
    /// connection with none open) a write transaction of its own.
    async fn begin_on<'c>(
        &'c self,
        conn: Joined<'c>,
        context: &'static str,
    ) -> Result<Tx<'c, 'c, D>, BackendError> {
        let conn = self.own(conn)?;
        let tx = if conn.is_in_transaction() {
            conn.begin().await
        } else {
            conn.begin_with(D::BEGIN_WRITE).await
        };
        let tx = tx.map_err(|e| map_err(e, context, D::classify))?;
        Ok(Session::new(tx, &self.queries, context))
    }

    /// Reads on the caller's connection (inside its transaction, seeing its writes).
    fn read_on<'c>(
        &'c self,
        conn: Joined<'c>,
        context: &'static str,
    ) -> Result<Session<'c, D, &'c mut D::Connection>, BackendError> {
        Ok(Session::new(self.own(conn)?, &self.queries, context))
    }

    pub(crate) async fn insert_tenant_tx(
        &self,
        mut tx: Tx<'_, '_, D>,
        row: &TenantRow,
        audit: &[AuditRow],
    ) -> Result<TenantRow, BackendError> {
        let q = tx.queries;
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
    }

    pub(crate) async fn tenant_on<C>(
        mut conn: Session<'_, D, C>,
        id: &TenantId,
    ) -> Result<Option<TenantRow>, BackendError>
    where
        C: std::ops::DerefMut<Target = D::Connection> + Send,
    {
        let q = conn.queries;
        let row = conn.fetch_optional(&q.tenants.select, params![id]).await?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    pub(crate) async fn set_tenant_deletion_tx(
        mut tx: Tx<'_, '_, D>,
        id: &TenantId,
        deleted_at: Option<i64>,
        purge_after: Option<i64>,
        audit: &[AuditRow],
    ) -> Result<bool, BackendError> {
        let q = tx.queries;
        if tx
            .execute(
                &q.tenants.set_deletion,
                params![id, deleted_at, purge_after],
            )
            .await?
            == 0
        {
            return Ok(false);
        }
        tx.commit(audit).await?;
        Ok(true)
    }

    pub(crate) async fn get_on<C>(
        mut conn: Session<'_, D, C>,
        key: &RecordKey,
    ) -> Result<Option<SecretRow>, BackendError>
    where
        C: std::ops::DerefMut<Target = D::Connection> + Send,
    {
        let q = conn.queries;
        let row = conn
            .fetch_optional(
                &q.records.select,
                params![&key.tenant, &key.kind, &key.name],
            )
            .await?;
        row.as_ref().map(secret_from_row).transpose()
    }

    pub(crate) async fn insert_tx(
        mut tx: Tx<'_, '_, D>,
        row: &SecretRow,
        audit: &[AuditRow],
    ) -> Result<(), BackendError> {
        let q = tx.queries;
        if tx.execute(&q.records.insert, &secret_params(row)).await? == 0 {
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
    }

    /// Inserts or replaces in one statement; returns the stored version (1 for a new record,
    /// the previous version + 1 otherwise).
    pub(crate) async fn upsert_tx(
        mut tx: Tx<'_, '_, D>,
        row: &SecretRow,
        audit: &[AuditRow],
    ) -> Result<i64, BackendError> {
        let q = tx.queries;
        let Some(version) = tx.scalar(&q.records.upsert, &secret_params(row)).await? else {
            // The statement's guard refused the data key: rotated meanwhile.
            return Err(stale_key());
        };
        tx.commit(audit).await?;
        Ok(version)
    }

    pub(crate) async fn update_tx(
        mut tx: Tx<'_, '_, D>,
        row: &SecretRow,
        expected_version: i64,
        audit: &[AuditRow],
    ) -> Result<bool, BackendError> {
        let q = tx.queries;
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
    }

    pub(crate) async fn delete_tx(
        mut tx: Tx<'_, '_, D>,
        keys: &[RecordKey],
        audit: &[AuditRow],
    ) -> Result<u64, BackendError> {
        let q = tx.queries;
        let mut deleted = 0u64;
        for k in keys {
            deleted += tx
                .execute(&q.records.delete, params![&k.tenant, &k.kind, &k.name])
                .await?;
        }
        tx.commit(audit).await?;
        Ok(deleted)
    }

    pub(crate) async fn list_on<C>(
        mut conn: Session<'_, D, C>,
        query: &ListQuery,
    ) -> Result<Vec<ListedRow>, BackendError>
    where
        C: std::ops::DerefMut<Target = D::Connection> + Send,
    {
        let sql = conn.queries.list(
            query.kind.is_some(),
            query.provider.is_some(),
            query.after.is_some(),
        );
        let mut params = params![&query.tenant].to_vec();
        params.extend(query.kind.as_ref().map(Param::from));
        params.extend(query.provider.as_deref().map(Param::from));
        if let Some((kind, name)) = &query.after {
            params.extend_from_slice(params![kind.as_str(), name.as_str()]);
        }
        params.push(i64::from(query.limit).into());
        let rows = conn.fetch_all(&sql.into(), &params).await?;
        Ok(rows.iter().map(listed_from_row).collect())
    }

    pub(crate) async fn set_purge_after_tx(
        mut tx: Tx<'_, '_, D>,
        keys: &[RecordKey],
        purge_after: i64,
        audit: &[AuditRow],
    ) -> Result<u64, BackendError> {
        let q = tx.queries;
        let mut changed = 0u64;
        for k in keys {
            changed += tx
                .execute(
                    &q.records.set_purge_after,
                    params![&k.tenant, &k.kind, &k.name, purge_after],
                )
                .await?;
        }
        tx.commit(audit).await?;
        Ok(changed)
    }

    pub(crate) async fn register_keys_tx(
        mut tx: Tx<'_, '_, D>,
        keys: &[KeyIdentity],
        primary: Option<u32>,
        at: i64,
    ) -> Result<KeyRegistry, BackendError> {
        let q = tx.queries;
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
    }
}

impl<D: Driver> Joinable for SqlBackend<D> {
    fn database(&self) -> &'static str {
        D::DRIVER
    }

    fn tenant_in<'a>(
        &'a self,
        conn: Joined<'a>,
        id: &'a TenantId,
    ) -> BoxFuture<'a, Result<Option<TenantRow>, BackendError>> {
        Box::pin(async move { Self::tenant_on(self.read_on(conn, "reading a tenant")?, id).await })
    }

    fn insert_tenant_in<'a>(
        &'a self,
        conn: Joined<'a>,
        row: &'a TenantRow,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<TenantRow, BackendError>> {
        Box::pin(async move {
            let tx = self.begin_on(conn, "inserting a tenant").await?;
            self.insert_tenant_tx(tx, row, audit).await
        })
    }

    fn set_tenant_deletion_in<'a>(
        &'a self,
        conn: Joined<'a>,
        id: &'a TenantId,
        deleted_at: Option<i64>,
        purge_after: Option<i64>,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(async move {
            let tx = self
                .begin_on(conn, "setting a tenant's deletion state")
                .await?;
            Self::set_tenant_deletion_tx(tx, id, deleted_at, purge_after, audit).await
        })
    }

    fn get_in<'a>(
        &'a self,
        conn: Joined<'a>,
        key: &'a RecordKey,
    ) -> BoxFuture<'a, Result<Option<SecretRow>, BackendError>> {
        Box::pin(async move { Self::get_on(self.read_on(conn, "reading a record")?, key).await })
    }

    fn insert_in<'a>(
        &'a self,
        conn: Joined<'a>,
        row: &'a SecretRow,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let tx = self.begin_on(conn, "inserting a record").await?;
            Self::insert_tx(tx, row, audit).await
        })
    }

    fn upsert_in<'a>(
        &'a self,
        conn: Joined<'a>,
        row: &'a SecretRow,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<i64, BackendError>> {
        Box::pin(async move {
            let tx = self.begin_on(conn, "upserting a record").await?;
            Self::upsert_tx(tx, row, audit).await
        })
    }

    fn update_in<'a>(
        &'a self,
        conn: Joined<'a>,
        row: &'a SecretRow,
        expected_version: i64,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(async move {
            let tx = self.begin_on(conn, "updating a record").await?;
            Self::update_tx(tx, row, expected_version, audit).await
        })
    }

    fn delete_in<'a>(
        &'a self,
        conn: Joined<'a>,
        keys: &'a [RecordKey],
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<u64, BackendError>> {
        Box::pin(async move {
            let tx = self.begin_on(conn, "deleting records").await?;
            Self::delete_tx(tx, keys, audit).await
        })
    }

    fn list_in<'a>(
        &'a self,
        conn: Joined<'a>,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<Vec<ListedRow>, BackendError>> {
        Box::pin(async move { Self::list_on(self.read_on(conn, "listing records")?, query).await })
    }

    fn set_purge_after_in<'a>(
        &'a self,
        conn: Joined<'a>,
        keys: &'a [RecordKey],
        purge_after: i64,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<u64, BackendError>> {
        Box::pin(async move {
            let tx = self.begin_on(conn, "setting records' purge time").await?;
            Self::set_purge_after_tx(tx, keys, purge_after, audit).await
        })
    }

    fn append_audit_in<'a>(
        &'a self,
        conn: Joined<'a>,
        rows: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let tx = self.begin_on(conn, "appending audit rows").await?;
            tx.commit(rows).await
        })
    }

    fn register_keys_in<'a>(
        &'a self,
        conn: Joined<'a>,
        keys: &'a [KeyIdentity],
        primary: Option<u32>,
        at: i64,
    ) -> BoxFuture<'a, Result<KeyRegistry, BackendError>> {
        Box::pin(async move {
            let tx = self.begin_on(conn, "recording key identities").await?;
            Self::register_keys_tx(tx, keys, primary, at).await
        })
    }
}

/// The parameters of a record write, in [`SECRET_COLUMNS`](crate::backend::sql_queries)
/// order.
pub(crate) fn secret_params(row: &SecretRow) -> [Param<'_>; 14] {
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
