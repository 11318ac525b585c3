//! [`Session`]: a connection of a SQL backend (pooled, or a write transaction) running one
//! operation. It runs the statements, maps every driver error to a [`BackendError`] naming
//! the operation, and holds the steps several operations share (the key-encryption key
//! check, the key registry, the audit rows written by `commit`).

use std::marker::PhantomData;
use std::ops::DerefMut;
use std::sync::Arc;

use sqlx::Transaction;

use crate::backend::sql::{Driver, Param, params};
use crate::backend::sql_queries::{AUDIT_CHUNK, Queries};
use crate::backend::sql_rows::{RowExt, key_identity_from_row, map_err, newest_kek_from};
use crate::backend::{AuditRow, BackendError, BackendErrorKind, KeyRegistry, stale_kek};
use crate::{KeyVersion, TenantId};

/// A connection (`C`: pooled, or a transaction) with the backend's statements, running one
/// operation: every failure is mapped to a [`BackendError`] naming `context`.
pub(crate) struct Session<'b, D: Driver, C> {
    pub(crate) conn: C,
    pub(crate) queries: &'b Queries,
    context: &'static str,
    driver: PhantomData<fn() -> D>,
}

impl<'b, D, C> Session<'b, D, C>
where
    D: Driver,
    C: DerefMut<Target = D::Connection> + Send,
{
    pub(crate) fn new(conn: C, queries: &'b Queries, context: &'static str) -> Self {
        Self {
            conn,
            queries,
            context,
            driver: PhantomData,
        }
    }

    /// The driver's error, mapped and naming what this session is doing.
    pub(crate) fn err(&self, err: sqlx::Error) -> BackendError {
        map_err(err, self.context, D::classify)
    }

    /// Names what the session does from now on (in errors); returns the previous name.
    pub(crate) fn doing(&mut self, context: &'static str) -> &'static str {
        std::mem::replace(&mut self.context, context)
    }

    /// Runs a statement; returns the rows changed.
    pub(crate) async fn execute(
        &mut self,
        sql: &Arc<str>,
        params: &[Param<'_>],
    ) -> Result<u64, BackendError> {
        let done = D::execute(&mut self.conn, sql, params).await;
        done.map_err(|e| self.err(e))
    }

    /// Runs a query; returns every row.
    pub(crate) async fn fetch_all(
        &mut self,
        sql: &Arc<str>,
        params: &[Param<'_>],
    ) -> Result<Vec<D::Row>, BackendError> {
        let rows = D::fetch_all(&mut self.conn, sql, params).await;
        rows.map_err(|e| self.err(e))
    }

    /// Runs a query; returns its first row, if any.
    pub(crate) async fn fetch_optional(
        &mut self,
        sql: &Arc<str>,
        params: &[Param<'_>],
    ) -> Result<Option<D::Row>, BackendError> {
        let row = D::fetch_optional(&mut self.conn, sql, params).await;
        row.map_err(|e| self.err(e))
    }

    /// Runs a query; returns its first row (none is an error).
    pub(crate) async fn fetch_one(
        &mut self,
        sql: &Arc<str>,
        params: &[Param<'_>],
    ) -> Result<D::Row, BackendError> {
        let row = self.fetch_optional(sql, params).await?;
        row.ok_or_else(|| self.err(sqlx::Error::RowNotFound))
    }

    /// The integer in the first column of the first row, if there is a row.
    pub(crate) async fn scalar(
        &mut self,
        sql: &Arc<str>,
        params: &[Param<'_>],
    ) -> Result<Option<i64>, BackendError> {
        let row = self.fetch_optional(sql, params).await?;
        row.map(|r| r.int_at(0).map_err(|e| self.err(e)))
            .transpose()
    }

    /// A count: the integer in the first column of the only row.
    pub(crate) async fn count(
        &mut self,
        sql: &Arc<str>,
        params: &[Param<'_>],
    ) -> Result<i64, BackendError> {
        let row = self.fetch_one(sql, params).await?;
        row.int_at(0).map_err(|e| self.err(e))
    }

    /// Runs a script (a migration file).
    pub(crate) async fn script(&mut self, sql: &'static str) -> Result<(), BackendError> {
        let done = D::script(&mut self.conn, sql).await;
        done.map_err(|e| self.err(e))
    }

    /// The schema version read from `credvault_schema`, checked to fit a u32.
    pub(crate) async fn schema_version(&mut self) -> Result<Option<u32>, BackendError> {
        let outer = self.doing("reading the schema version");
        let q = self.queries;
        let version = self.scalar(&q.schema.read_version, params![]).await?;
        self.doing(outer);
        version
            .map(|v| {
                u32::try_from(v).map_err(|_| {
                    BackendError::new(
                        BackendErrorKind::Corrupt,
                        "credvault_schema row: version is out of range",
                    )
                })
            })
            .transpose()
    }

    /// The key registry.
    pub(crate) async fn key_registry(&mut self) -> Result<KeyRegistry, BackendError> {
        let outer = self.doing("reading the key registry");
        let q = self.queries;
        let rows = self.fetch_all(&q.keys.select, params![]).await?;
        let newest = self.scalar(&q.keys.newest_kek, params![]).await?;
        self.doing(outer);
        let mut keys = rows
            .iter()
            .map(key_identity_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        keys.sort_by_key(|k| (k.role, k.version));
        Ok(KeyRegistry {
            keys,
            newest_kek: newest_kek_from(newest)?,
        })
    }

    /// Refuses a wrap under a KEK version older than the newest one presented (share-locking
    /// the newest version, where the dialect has row locks, until this transaction ends).
    pub(crate) async fn check_kek(&mut self, kek: KeyVersion) -> Result<(), BackendError> {
        let outer = self.doing("checking the key-encryption key version");
        let q = self.queries;
        let newest = self.scalar(&q.keys.lock_newest_kek, params![]).await?;
        self.doing(outer);
        let newest = newest_kek_from(newest)?;
        if kek.get() < newest {
            return Err(stale_kek(kek, newest));
        }
        Ok(())
    }

    /// The tenant's current data key version.
    pub(crate) async fn current_dek_version(
        &mut self,
        tenant: &TenantId,
    ) -> Result<Option<KeyVersion>, BackendError> {
        let outer = self.doing("reading a tenant's data key version");
        let q = self.queries;
        let v = self.scalar(&q.tenants.current_dek, params![tenant]).await?;
        self.doing(outer);
        Ok(v.and_then(|v| u32::try_from(v).ok()).map(KeyVersion::new))
    }

    /// Writes `rows` to the audit log, one multi-row `INSERT` per chunk.
    pub(crate) async fn write_audit(&mut self, rows: &[AuditRow]) -> Result<(), BackendError> {
        let outer = self.doing("writing audit rows");
        for chunk in rows.chunks(AUDIT_CHUNK) {
            let sql = self.queries.insert_audit(chunk.len());
            let params: Vec<Param<'_>> = chunk
                .iter()
                .flat_map(|r| {
                    [
                        Param::from(r.at),
                        Param::from(r.tenant.as_ref().map(TenantId::as_str)),
                        Param::from(r.kind.as_deref()),
                        Param::from(r.name.as_deref()),
                        Param::from(r.action.as_str()),
                        Param::from(r.actor.as_str()),
                        Param::from(r.outcome.as_str()),
                    ]
                })
                .collect();
            self.execute(&sql, &params).await?;
        }
        self.doing(outer);
        Ok(())
    }
}

impl<D: Driver> Session<'_, D, Transaction<'_, D>> {
    /// Writes `audit` and commits (releases the savepoint, in the caller's transaction): the
    /// end of every write.
    pub(crate) async fn commit(mut self, audit: &[AuditRow]) -> Result<(), BackendError> {
        self.write_audit(audit).await?;
        let context = self.context;
        self.conn
            .commit()
            .await
            .map_err(|e| map_err(e, context, D::classify))
    }
}
