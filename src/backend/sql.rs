//! What the SQL backends share: the queries (one text for SQLite and PostgreSQL: both take
//! `$n` parameters, `ON CONFLICT`, row values and `RETURNING`), row decoding, error mapping
//! and the [`Backend`](super::Backend) implementation, generated for each driver by
//! `sql_backend!`.

use std::sync::Arc;

use sqlx::error::DatabaseError;

use crate::backend::{AuditRow, BackendError, BackendErrorKind, RecordKey, SecretRow, TenantRow};
use crate::{KeyVersion, RecordKind, RecordName, TenantId};

/// The columns of `credvault_tenants`, in [`tenant_from_row`]'s order.
pub(crate) const TENANT_COLUMNS: &str = "tenant_id, wrapped_dek, dek_version, kek_version, \
     created_at, dek_created_at, min_dek_version, deleted_at, purge_after, shredded_at";

/// The columns of `credvault_secrets`, in [`bind_secret`](sql_backend)'s order.
pub(crate) const SECRET_COLUMNS: &str = "tenant_id, kind, name, version, sealed, dek_version, \
     kek_version, metadata, provider, created_at, updated_at, expires_at, purge_after, lease_until";

/// The columns of `credvault_audit` that an [`AuditRow`] holds.
pub(crate) const AUDIT_COLUMNS: &str = "at, tenant_id, kind, name, action, actor, outcome";

/// What differs between the SQL dialects in the statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// SQLite: one writer at a time (`BEGIN IMMEDIATE`), no row locks.
    Sqlite,
    /// PostgreSQL: row locks.
    Postgres,
}

impl Dialect {
    /// The clause that share-locks the rows a sub-select reads (PostgreSQL), so a concurrent
    /// key rotation waits for the writing transaction.
    pub(crate) fn share_lock(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR SHARE",
        }
    }
}

/// Every statement the backends run, with the table names qualified by `prefix` (empty, or a
/// quoted PostgreSQL schema and a dot). Built once per backend.
#[derive(Debug)]
pub(crate) struct Queries {
    pub(crate) prefix: String,
    pub(crate) rotation: crate::backend::sql_rotation::RotationQueries,
    pub(crate) select_secret_version: Arc<str>,
    pub(crate) create_schema_table: Arc<str>,
    pub(crate) read_version: Arc<str>,
    pub(crate) write_version: Arc<str>,
    pub(crate) insert_tenant: Arc<str>,
    pub(crate) select_tenant: Arc<str>,
    pub(crate) set_tenant_deletion: Arc<str>,
    pub(crate) tenants_due: Arc<str>,
    pub(crate) delete_tenant_secrets: Arc<str>,
    pub(crate) delete_tenant: Arc<str>,
    pub(crate) select_secret: Arc<str>,
    pub(crate) insert_secret: Arc<str>,
    pub(crate) update_secret: Arc<str>,
    pub(crate) delete_secret: Arc<str>,
    pub(crate) set_purge_after: Arc<str>,
    pub(crate) purge_records: Arc<str>,
    pub(crate) insert_audit: Arc<str>,
    pub(crate) purge_audit: Arc<str>,
    pub(crate) select_keys: Arc<str>,
    pub(crate) select_newest_kek: Arc<str>,
    pub(crate) lock_newest_kek: Arc<str>,
    pub(crate) insert_key: Arc<str>,
    pub(crate) raise_newest_kek: Arc<str>,
    pub(crate) touch_primary: Arc<str>,
    pub(crate) set_shredded: Arc<str>,
}

impl Queries {
    /// The statements for tables named `{prefix}credvault_*`.
    pub(crate) fn new(prefix: &str, dialect: Dialect) -> Self {
        let p = prefix;
        let q = |s: String| Arc::<str>::from(s);
        let pk = "tenant_id = $1 AND kind = $2 AND name = $3";
        let share = dialect.share_lock();
        // A write must seal with the tenant's current data key (or, for an update, keep the
        // stored one): the tenant's row is share-locked so a rotation waits for the write.
        let current_dek = format!(
            "COALESCE((SELECT t.dek_version FROM {p}credvault_tenants t \
             WHERE t.tenant_id = $1{share}), $6) = $6"
        );
        Self {
            prefix: p.to_owned(),
            rotation: crate::backend::sql_rotation::RotationQueries::new(p, dialect),
            select_secret_version: q(format!(
                "SELECT version FROM {p}credvault_secrets WHERE {pk}"
            )),
            create_schema_table: q(format!(
                "CREATE TABLE IF NOT EXISTS {p}credvault_schema (\
                 id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL)"
            )),
            read_version: q(format!(
                "SELECT version FROM {p}credvault_schema WHERE id = 1"
            )),
            write_version: q(format!(
                "INSERT INTO {p}credvault_schema (id, version) VALUES (1, $1) \
                 ON CONFLICT (id) DO UPDATE SET version = excluded.version"
            )),
            insert_tenant: q(format!(
                "INSERT INTO {p}credvault_tenants ({TENANT_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (tenant_id) DO NOTHING"
            )),
            select_tenant: q(format!(
                "SELECT {TENANT_COLUMNS} FROM {p}credvault_tenants WHERE tenant_id = $1"
            )),
            set_tenant_deletion: q(format!(
                "UPDATE {p}credvault_tenants SET deleted_at = $2, purge_after = $3 \
                 WHERE tenant_id = $1 AND shredded_at IS NULL"
            )),
            tenants_due: q(format!(
                "SELECT tenant_id FROM {p}credvault_tenants WHERE purge_after <= $1 \
                 ORDER BY tenant_id"
            )),
            delete_tenant_secrets: q(format!(
                "DELETE FROM {p}credvault_secrets WHERE tenant_id = $1"
            )),
            delete_tenant: q(format!(
                "DELETE FROM {p}credvault_tenants WHERE tenant_id = $1"
            )),
            select_secret: q(format!(
                "SELECT {SECRET_COLUMNS} FROM {p}credvault_secrets WHERE {pk}"
            )),
            insert_secret: q(format!(
                "INSERT INTO {p}credvault_secrets ({SECRET_COLUMNS}) SELECT \
                 $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14 \
                 WHERE {current_dek} ON CONFLICT (tenant_id, kind, name) DO NOTHING"
            )),
            update_secret: q(format!(
                "UPDATE {p}credvault_secrets SET version = $4, sealed = $5, dek_version = $6, \
                 kek_version = $7, metadata = $8, provider = $9, \
                 created_at = COALESCE(created_at, $10), updated_at = $11, expires_at = $12, \
                 purge_after = COALESCE(purge_after, $13), lease_until = $14 \
                 WHERE {pk} AND version = $15 AND (dek_version = $6 OR {current_dek})"
            )),
            delete_secret: q(format!("DELETE FROM {p}credvault_secrets WHERE {pk}")),
            set_purge_after: q(format!(
                "UPDATE {p}credvault_secrets SET purge_after = $4 WHERE {pk}"
            )),
            purge_records: q(format!(
                "DELETE FROM {p}credvault_secrets WHERE purge_after <= $1 \
                 RETURNING tenant_id, kind, name"
            )),
            insert_audit: q(format!(
                "INSERT INTO {p}credvault_audit ({AUDIT_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)"
            )),
            purge_audit: q(format!("DELETE FROM {p}credvault_audit WHERE at < $1")),
            select_keys: q(format!(
                "SELECT role, version, fingerprint, recorded_at, last_primary_at \
                 FROM {p}credvault_keys ORDER BY role, version"
            )),
            select_newest_kek: q(format!(
                "SELECT newest_kek FROM {p}credvault_vault WHERE id = 1"
            )),
            // Every write that wraps a data key share-locks this row (PostgreSQL), so raising
            // the newest version waits for them and no wrap under an older KEK commits after.
            lock_newest_kek: q(format!(
                "SELECT newest_kek FROM {p}credvault_vault WHERE id = 1{share}"
            )),
            insert_key: q(format!(
                "INSERT INTO {p}credvault_keys \
                 (role, version, fingerprint, recorded_at, last_primary_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (role, version) DO NOTHING"
            )),
            raise_newest_kek: q(format!(
                "UPDATE {p}credvault_vault SET newest_kek = $1 WHERE id = 1 AND newest_kek < $1"
            )),
            touch_primary: q(format!(
                "UPDATE {p}credvault_keys SET last_primary_at = $2 \
                 WHERE role = 'kek' AND version = $1"
            )),
            set_shredded: q(format!(
                "UPDATE {p}credvault_tenants SET shredded_at = COALESCE(shredded_at, $2) \
                 WHERE tenant_id = $1"
            )),
        }
    }

    /// The `list` statement for the filters that are set, and how its parameters are numbered:
    /// `$1` tenant, then kind, provider, after (kind, name), limit, in that order when present.
    pub(crate) fn list(&self, kind: bool, provider: bool, after: bool) -> String {
        let mut sql = format!(
            "SELECT {SECRET_COLUMNS} FROM {}credvault_secrets WHERE tenant_id = $1",
            self.prefix
        );
        let mut n = 1;
        if kind {
            n += 1;
            sql.push_str(&format!(" AND kind = ${n}"));
        }
        if provider {
            n += 1;
            sql.push_str(&format!(" AND provider = ${n}"));
        }
        if after {
            sql.push_str(&format!(" AND (kind, name) > (${}, ${})", n + 1, n + 2));
            n += 2;
        }
        sql.push_str(&format!(" ORDER BY kind, name LIMIT ${}", n + 1));
        sql
    }

    /// The audit read for the filters that are set (`$1` tenant, then since, then limit).
    pub(crate) fn audit(&self, tenant: bool, since: bool, limit: bool) -> String {
        let mut sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM {}credvault_audit WHERE 1 = 1",
            self.prefix
        );
        let mut n = 0;
        if tenant {
            n += 1;
            sql.push_str(&format!(" AND tenant_id = ${n}"));
        }
        if since {
            n += 1;
            sql.push_str(&format!(" AND at >= ${n}"));
        }
        sql.push_str(" ORDER BY at, id");
        if limit {
            sql.push_str(&format!(" LIMIT ${}", n + 1));
        }
        sql
    }
}

/// Typed column reads, the same for both drivers' rows.
pub(crate) trait RowExt {
    fn int(&self, col: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error>;
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
    fn bytes(&self, col: &str) -> Result<Vec<u8>, sqlx::Error>;
    fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>, sqlx::Error>;
}

macro_rules! row_ext {
    ($row:ty) => {
        impl RowExt for $row {
            fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
                sqlx::Row::try_get(self, col)
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
                sqlx::Row::try_get(self, col)
            }
            fn text(&self, col: &str) -> Result<String, sqlx::Error> {
                sqlx::Row::try_get(self, col)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
                sqlx::Row::try_get(self, col)
            }
            fn bytes(&self, col: &str) -> Result<Vec<u8>, sqlx::Error> {
                sqlx::Row::try_get(self, col)
            }
            fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
                sqlx::Row::try_get(self, col)
            }
        }
    };
}

#[cfg(feature = "sqlite")]
row_ext!(sqlx::sqlite::SqliteRow);
#[cfg(feature = "postgres")]
row_ext!(sqlx::postgres::PgRow);

/// A stored value is not what this build expects.
/// Audit rows written per `INSERT` statement (7 parameters each, well under the 32 766 of
/// SQLite and 65 535 of PostgreSQL).
pub(crate) const AUDIT_CHUNK: usize = 16;

/// `head` (`INSERT INTO t (cols)`) followed by `rows` groups of 7 numbered placeholders.
pub(crate) fn multi_row_insert(head: &str, rows: usize) -> String {
    use std::fmt::Write as _;
    let mut sql = String::with_capacity(head.len() + 8 + rows * 40);
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for row in 0..rows {
        let b = row * 7;
        let sep = if row == 0 { "" } else { ", " };
        let _ = write!(
            sql,
            "{sep}(${}, ${}, ${}, ${}, ${}, ${}, ${})",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6,
            b + 7
        );
    }
    sql
}

pub(crate) fn corrupt(message: String) -> BackendError {
    BackendError::new(BackendErrorKind::Corrupt, message)
}

/// An identifier read from a row, for an error message: escaped and cut short.
pub(crate) fn shown(s: &str) -> String {
    let cut: String = s.chars().take(64).collect();
    format!("{cut:?}")
}

/// Runs `read` and turns a decoding failure into [`BackendErrorKind::Corrupt`] naming `place`
/// and `col`.
pub(crate) fn read<T>(
    place: &dyn Fn() -> String,
    col: &str,
    read: Result<T, sqlx::Error>,
) -> Result<T, BackendError> {
    read.map_err(|e| corrupt(format!("{}: column {col} cannot be read", place())).with_source(e))
}

/// Reads key-version column `col` of `row` (a u32 stored as an integer).
pub(crate) fn key_version(
    place: &dyn Fn() -> String,
    row: &impl RowExt,
    col: &str,
) -> Result<KeyVersion, BackendError> {
    let v = read(place, col, row.int(col))?;
    u32::try_from(v)
        .map(KeyVersion::new)
        .map_err(|_| corrupt(format!("{}: {col} is out of range", place())))
}

/// The schema version read from `credvault_schema`, checked to fit a u32.
pub(crate) fn schema_version_from(version: Option<i64>) -> Result<Option<u32>, BackendError> {
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

/// A `credvault_tenants` row.
pub(crate) fn tenant_from_row(row: &impl RowExt) -> Result<TenantRow, BackendError> {
    let raw = row.text("tenant_id").map_err(|e| {
        corrupt("credvault_tenants row: column tenant_id cannot be read".to_owned()).with_source(e)
    })?;
    let place = || format!("credvault_tenants row for tenant {}", shown(&raw));
    let tenant = TenantId::new(raw.as_str())
        .map_err(|e| corrupt(format!("{}: invalid tenant id", place())).with_source(e))?;
    let created_at = read(&place, "created_at", row.int("created_at"))?;
    Ok(TenantRow {
        tenant,
        wrapped_dek: read(&place, "wrapped_dek", row.bytes("wrapped_dek"))?,
        dek_version: key_version(&place, row, "dek_version")?,
        kek_version: key_version(&place, row, "kek_version")?,
        created_at,
        dek_created_at: read(&place, "dek_created_at", row.opt_int("dek_created_at"))?
            .unwrap_or(created_at),
        min_dek_version: key_version(&place, row, "min_dek_version")?,
        deleted_at: read(&place, "deleted_at", row.opt_int("deleted_at"))?,
        purge_after: read(&place, "purge_after", row.opt_int("purge_after"))?,
        shredded_at: read(&place, "shredded_at", row.opt_int("shredded_at"))?,
    })
}

/// A `credvault_keys` row.
pub(crate) fn key_identity_from_row(
    row: &impl RowExt,
) -> Result<crate::backend::KeyIdentity, BackendError> {
    let place = || "credvault_keys row".to_owned();
    let role = read(&place, "role", row.text("role"))?;
    let role = crate::backend::KeyRole::from_name(&role)
        .ok_or_else(|| corrupt(format!("credvault_keys row: unknown role {}", shown(&role))))?;
    let version = read(&place, "version", row.int("version"))?;
    Ok(crate::backend::KeyIdentity {
        role,
        version: u32::try_from(version)
            .map_err(|_| corrupt("credvault_keys row: version is out of range".to_owned()))?,
        fingerprint: read(&place, "fingerprint", row.text("fingerprint"))?,
        recorded_at: read(&place, "recorded_at", row.int("recorded_at"))?,
        last_primary_at: read(&place, "last_primary_at", row.opt_int("last_primary_at"))?,
    })
}

/// The newest KEK version read from `credvault_vault` (0 if the row is missing).
pub(crate) fn newest_kek_from(value: Option<i64>) -> Result<u32, BackendError> {
    u32::try_from(value.unwrap_or(0))
        .map_err(|_| corrupt("credvault_vault row: newest_kek is out of range".to_owned()))
}

/// The `(tenant_id, kind, name)` of a `credvault_secrets` row.
pub(crate) fn key_from_row(row: &impl RowExt) -> Result<RecordKey, BackendError> {
    let unreadable = |col: &str, e: sqlx::Error| {
        corrupt(format!(
            "credvault_secrets row: column {col} cannot be read"
        ))
        .with_source(e)
    };
    let tenant = row
        .text("tenant_id")
        .map_err(|e| unreadable("tenant_id", e))?;
    let kind = row.text("kind").map_err(|e| unreadable("kind", e))?;
    let name = row.text("name").map_err(|e| unreadable("name", e))?;
    let place = format!(
        "credvault_secrets row (tenant {}, kind {}, name {})",
        shown(&tenant),
        shown(&kind),
        shown(&name)
    );
    Ok(RecordKey {
        tenant: TenantId::new(tenant.as_str())
            .map_err(|e| corrupt(format!("{place}: invalid tenant id")).with_source(e))?,
        kind: RecordKind::new(kind.as_str())
            .map_err(|e| corrupt(format!("{place}: invalid record kind")).with_source(e))?,
        name: RecordName::new(name.as_str())
            .map_err(|e| corrupt(format!("{place}: invalid record name")).with_source(e))?,
    })
}

/// A `credvault_secrets` row.
pub(crate) fn secret_from_row(row: &impl RowExt) -> Result<SecretRow, BackendError> {
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
    if version < 0 {
        return Err(corrupt(format!("{}: negative version", place())));
    }
    Ok(SecretRow {
        version,
        sealed: read(&place, "sealed", row.bytes("sealed"))?,
        dek_version: key_version(&place, row, "dek_version")?,
        kek_version: key_version(&place, row, "kek_version")?,
        metadata: read(&place, "metadata", row.text("metadata"))?,
        provider: read(&place, "provider", row.opt_text("provider"))?,
        created_at: read(&place, "created_at", row.int("created_at"))?,
        updated_at: read(&place, "updated_at", row.int("updated_at"))?,
        expires_at: read(&place, "expires_at", row.opt_int("expires_at"))?,
        purge_after: read(&place, "purge_after", row.opt_int("purge_after"))?,
        lease_until: read(&place, "lease_until", row.opt_int("lease_until"))?,
        key,
    })
}

/// A `credvault_audit` row.
pub(crate) fn audit_from_row(row: &impl RowExt) -> Result<AuditRow, BackendError> {
    let place = || "credvault_audit row".to_owned();
    let tenant = read(&place, "tenant_id", row.opt_text("tenant_id"))?
        .map(|t| {
            TenantId::new(t.as_str()).map_err(|e| {
                corrupt(format!(
                    "credvault_audit row: invalid tenant id {}",
                    shown(&t)
                ))
                .with_source(e)
            })
        })
        .transpose()?;
    Ok(AuditRow {
        at: read(&place, "at", row.int("at"))?,
        tenant,
        kind: read(&place, "kind", row.opt_text("kind"))?,
        name: read(&place, "name", row.opt_text("name"))?,
        action: read(&place, "action", row.text("action"))?,
        actor: read(&place, "actor", row.text("actor"))?,
        outcome: read(&place, "outcome", row.text("outcome"))?,
    })
}

/// Maps a driver error to a [`BackendError`]. `context` says what was being done ("reading a
/// record"); `classify` maps the driver's database error codes. The message never holds a
/// bound value: the driver's error goes in as the source only.
pub(crate) fn map_err(
    err: sqlx::Error,
    context: &str,
    classify: fn(&dyn DatabaseError) -> Option<BackendErrorKind>,
) -> BackendError {
    let (kind, what) = match &err {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => (
            BackendErrorKind::Unavailable,
            "cannot reach the database: check that it is running and the connection settings",
        ),
        sqlx::Error::PoolTimedOut => (
            BackendErrorKind::Unavailable,
            "timed out waiting for a database connection: the database may be down or the pool exhausted",
        ),
        sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => (
            BackendErrorKind::Unavailable,
            "the connection pool is closed",
        ),
        sqlx::Error::Configuration(_) => (BackendErrorKind::Other, "invalid connection settings"),
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. } => (
            BackendErrorKind::Corrupt,
            "a stored value is not what this build expects",
        ),
        sqlx::Error::Database(db) => match classify(db.as_ref()) {
            Some(BackendErrorKind::ReadOnly) => (
                BackendErrorKind::ReadOnly,
                "database is read-only: check file permissions or the server's default_transaction_read_only",
            ),
            Some(BackendErrorKind::Conflict) => {
                (BackendErrorKind::Conflict, "the row already exists")
            }
            Some(BackendErrorKind::Unavailable) => (
                BackendErrorKind::Unavailable,
                "the database is unavailable or busy: retry later",
            ),
            Some(BackendErrorKind::Corrupt) => {
                (BackendErrorKind::Corrupt, "the database reports corruption")
            }
            _ => (BackendErrorKind::Other, "the database reported an error"),
        },
        _ => (
            BackendErrorKind::Other,
            "the database driver reported an error",
        ),
    };
    BackendError::new(kind, format!("{context}: {what}")).with_source(err)
}

/// Generates the [`Backend`](crate::backend::Backend) implementation of a SQL backend type.
///
/// The type provides `pool` (a `sqlx::Pool`), `queries` (an `Arc<Queries>`) and the inherent
/// methods `err(sqlx::Error, &str)`, `begin_write()`, `migrate_impl()` and
/// `schema_version_impl()`.
macro_rules! sql_backend {
    ($ty:ty, $conn:ty) => {
        $crate::backend::sql_rotation::sql_rotation!($ty, $conn);

        impl $ty {
            /// Refuses (inside the caller's transaction, share-locking the newest KEK version
            /// on PostgreSQL) a wrap under a KEK version older than the newest one presented.
            async fn check_kek(
                &self,
                conn: &mut $conn,
                kek: $crate::KeyVersion,
            ) -> Result<(), $crate::backend::BackendError> {
                let newest: Option<i64> =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(self.queries.lock_newest_kek.clone()))
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(|e| self.err(e, "checking the key-encryption key version"))?;
                let newest = $crate::backend::sql::newest_kek_from(newest)?;
                if kek.get() < newest {
                    return Err($crate::backend::stale_kek(kek, newest));
                }
                Ok(())
            }

            /// The key registry, read on `conn`.
            async fn read_registry(
                &self,
                conn: &mut $conn,
            ) -> Result<$crate::backend::KeyRegistry, $crate::backend::BackendError> {
                let context = "reading the key registry";
                let rows = sqlx::query(sqlx::AssertSqlSafe(self.queries.select_keys.clone()))
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(|e| self.err(e, context))?;
                let newest: Option<i64> =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(self.queries.select_newest_kek.clone()))
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(|e| self.err(e, context))?;
                let mut keys = rows
                    .iter()
                    .map($crate::backend::sql::key_identity_from_row)
                    .collect::<Result<Vec<_>, _>>()?;
                keys.sort_by_key(|k| (k.role, k.version));
                Ok($crate::backend::KeyRegistry {
                    keys,
                    newest_kek: $crate::backend::sql::newest_kek_from(newest)?,
                })
            }

            /// Writes `rows` to the audit log on `conn` (inside the caller's transaction).
            async fn write_audit(
                &self,
                conn: &mut $conn,
                rows: &[$crate::backend::AuditRow],
            ) -> Result<(), $crate::backend::BackendError> {
                // One multi-row INSERT per chunk: a batch of buffered read events costs one
                // statement, not one per row.
                let (head, _) = self
                    .queries
                    .insert_audit
                    .split_once(" VALUES ")
                    .unwrap_or((&self.queries.insert_audit, ""));
                for chunk in rows.chunks($crate::backend::sql::AUDIT_CHUNK) {
                    let sql = $crate::backend::sql::multi_row_insert(head, chunk.len());
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for r in chunk {
                        query = query
                            .bind(r.at)
                            .bind(r.tenant.as_ref().map($crate::TenantId::as_str))
                            .bind(r.kind.as_deref())
                            .bind(r.name.as_deref())
                            .bind(r.action.as_str())
                            .bind(r.actor.as_str())
                            .bind(r.outcome.as_str());
                    }
                    query
                        .execute(&mut *conn)
                        .await
                        .map_err(|e| self.err(e, "writing audit rows"))?;
                }
                Ok(())
            }
        }

        impl $crate::backend::Backend for $ty {
            fn migrate(
                &self,
            ) -> $crate::backend::BoxFuture<'_, Result<(), $crate::backend::BackendError>> {
                Box::pin(self.migrate_impl())
            }

            fn schema_version(
                &self,
            ) -> $crate::backend::BoxFuture<'_, Result<Option<u32>, $crate::backend::BackendError>>
            {
                Box::pin(self.schema_version_impl())
            }

            fn insert_tenant<'a>(
                &'a self,
                row: &'a $crate::backend::TenantRow,
                audit: &'a [$crate::backend::AuditRow],
            ) -> $crate::backend::BoxFuture<
                'a,
                Result<$crate::backend::TenantRow, $crate::backend::BackendError>,
            > {
                Box::pin(async move {
                    let context = "inserting a tenant";
                    let mut tx = self.begin_write().await?;
                    let done = sqlx::query(sqlx::AssertSqlSafe(self.queries.insert_tenant.clone()))
                        .bind(row.tenant.as_str())
                        .bind(row.wrapped_dek.as_slice())
                        .bind(i64::from(row.dek_version.get()))
                        .bind(i64::from(row.kek_version.get()))
                        .bind(row.created_at)
                        .bind(row.dek_created_at)
                        .bind(i64::from(row.min_dek_version.get()))
                        .bind(row.deleted_at)
                        .bind(row.purge_after)
                        .bind(row.shredded_at)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.err(e, context))?;
                    let stored = if done.rows_affected() == 1 {
                        self.check_kek(&mut *tx, row.kek_version).await?;
                        self.write_audit(&mut *tx, audit).await?;
                        row.clone()
                    } else {
                        let found = sqlx::query(sqlx::AssertSqlSafe(
                            self.queries.select_tenant.clone(),
                        ))
                        .bind(row.tenant.as_str())
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(|e| self.err(e, context))?;
                        $crate::backend::sql::tenant_from_row(&found)?
                    };
                    tx.commit().await.map_err(|e| self.err(e, context))?;
                    Ok(stored)
                })
            }

            fn tenant<'a>(
                &'a self,
                id: &'a $crate::TenantId,
            ) -> $crate::backend::BoxFuture<
                'a,
                Result<Option<$crate::backend::TenantRow>, $crate::backend::BackendError>,
            > {
                Box::pin(async move {
                    let row = sqlx::query(sqlx::AssertSqlSafe(self.queries.select_tenant.clone()))
                        .bind(id.as_str())
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(|e| self.err(e, "reading a tenant"))?;
                    row.as_ref().map($crate::backend::sql::tenant_from_row).transpose()
                })
            }

            fn set_tenant_deletion<'a>(
                &'a self,
                id: &'a $crate::TenantId,
                deleted_at: Option<i64>,
                purge_after: Option<i64>,
                audit: &'a [$crate::backend::AuditRow],
            ) -> $crate::backend::BoxFuture<'a, Result<bool, $crate::backend::BackendError>> {
                Box::pin(async move {
                    let context = "setting a tenant's deletion state";
                    let mut tx = self.begin_write().await?;
                    let done = sqlx::query(sqlx::AssertSqlSafe(
                        self.queries.set_tenant_deletion.clone(),
                    ))
                    .bind(id.as_str())
                    .bind(deleted_at)
                    .bind(purge_after)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e, context))?;
                    if done.rows_affected() == 0 {
                        return Ok(false);
                    }
                    self.write_audit(&mut *tx, audit).await?;
                    tx.commit().await.map_err(|e| self.err(e, context))?;
                    Ok(true)
                })
            }

            fn tenants_due_for_purge(
                &self,
                now: i64,
            ) -> $crate::backend::BoxFuture<
                '_,
                Result<Vec<$crate::TenantId>, $crate::backend::BackendError>,
            > {
                Box::pin(async move {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(self.queries.tenants_due.clone()))
                        .bind(now)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(|e| self.err(e, "listing tenants due for purge"))?;
                    rows.iter()
                        .map(|r| $crate::backend::sql::tenant_from_id_row(r))
                        .collect()
                })
            }

            fn purge_tenant<'a>(
                &'a self,
                id: &'a $crate::TenantId,
                audit: &'a [$crate::backend::AuditRow],
            ) -> $crate::backend::BoxFuture<'a, Result<u64, $crate::backend::BackendError>> {
                Box::pin(async move {
                    let context = "purging a tenant";
                    let mut tx = self.begin_write().await?;
                    let records = sqlx::query(sqlx::AssertSqlSafe(
                        self.queries.delete_tenant_secrets.clone(),
                    ))
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e, context))?
                    .rows_affected();
                    sqlx::query(sqlx::AssertSqlSafe(self.queries.delete_tenant.clone()))
                        .bind(id.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.err(e, context))?;
                    sqlx::query(sqlx::AssertSqlSafe(
                        self.queries.rotation.delete_tenant_deks.clone(),
                    ))
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e, context))?;
                    self.write_audit(&mut *tx, audit).await?;
                    tx.commit().await.map_err(|e| self.err(e, context))?;
                    Ok(records)
                })
            }

            fn get<'a>(
                &'a self,
                key: &'a $crate::backend::RecordKey,
            ) -> $crate::backend::BoxFuture<
                'a,
                Result<Option<$crate::backend::SecretRow>, $crate::backend::BackendError>,
            > {
                Box::pin(async move {
                    let row = sqlx::query(sqlx::AssertSqlSafe(self.queries.select_secret.clone()))
                        .bind(key.tenant.as_str())
                        .bind(key.kind.as_str())
                        .bind(key.name.as_str())
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(|e| self.err(e, "reading a record"))?;
                    row.as_ref().map($crate::backend::sql::secret_from_row).transpose()
                })
            }

            fn insert<'a>(
                &'a self,
                row: &'a $crate::backend::SecretRow,
                audit: &'a [$crate::backend::AuditRow],
            ) -> $crate::backend::BoxFuture<'a, Result<(), $crate::backend::BackendError>> {
                Box::pin(async move {
                    let context = "inserting a record";
                    let mut tx = self.begin_write().await?;
                    let done = sql_backend!(@bind_secret
                        sqlx::query(sqlx::AssertSqlSafe(self.queries.insert_secret.clone())), row)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.err(e, context))?;
                    if done.rows_affected() == 0 {
                        let current = self.current_dek_version(&mut *tx, &row.key.tenant).await?;
                        if current.is_some_and(|v| v != row.dek_version) {
                            return Err($crate::backend::stale_key());
                        }
                        return Err($crate::backend::BackendError::new(
                            $crate::backend::BackendErrorKind::Conflict,
                            "record already exists",
                        ));
                    }
                    self.write_audit(&mut *tx, audit).await?;
                    tx.commit().await.map_err(|e| self.err(e, context))?;
                    Ok(())
                })
            }

            fn update<'a>(
                &'a self,
                row: &'a $crate::backend::SecretRow,
                expected_version: i64,
                audit: &'a [$crate::backend::AuditRow],
            ) -> $crate::backend::BoxFuture<'a, Result<bool, $crate::backend::BackendError>> {
                Box::pin(async move {
                    let context = "updating a record";
                    let mut tx = self.begin_write().await?;
                    let done = sql_backend!(@bind_secret
                        sqlx::query(sqlx::AssertSqlSafe(self.queries.update_secret.clone())), row)
                        .bind(expected_version)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.err(e, context))?;
                    if done.rows_affected() != 1 {
                        let stored: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(
                            self.queries.select_secret_version.clone(),
                        ))
                        .bind(row.key.tenant.as_str())
                        .bind(row.key.kind.as_str())
                        .bind(row.key.name.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(|e| self.err(e, context))?;
                        if stored == Some(expected_version) {
                            // The version matched: the data key did not.
                            return Err($crate::backend::stale_key());
                        }
                        return Ok(false);
                    }
                    self.write_audit(&mut *tx, audit).await?;
                    tx.commit().await.map_err(|e| self.err(e, context))?;
                    Ok(true)
                })
            }

            fn delete<'a>(
                &'a self,
                keys: &'a [$crate::backend::RecordKey],
                audit: &'a [$crate::backend::AuditRow],
            ) -> $crate::backend::BoxFuture<'a, Result<u64, $crate::backend::BackendError>> {
                Box::pin(async move {
                    let context = "deleting records";
                    let mut tx = self.begin_write().await?;
                    let mut deleted = 0u64;
                    for key in keys {
                        deleted += sqlx::query(sqlx::AssertSqlSafe(
                            self.queries.delete_secret.clone(),
                        ))
                        .bind(key.tenant.as_str())
                        .bind(key.kind.as_str())
                        .bind(key.name.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.err(e, context))?
                        .rows_affected();
                    }
                    self.write_audit(&mut *tx, audit).await?;
                    tx.commit().await.map_err(|e| self.err(e, context))?;
                    Ok(deleted)
                })
            }

            fn list<'a>(
                &'a self,
                query: &'a $crate::backend::ListQuery,
            ) -> $crate::backend::BoxFuture<
                'a,
                Result<Vec<$crate::backend::SecretRow>, $crate::backend::BackendError>,
            > {
                Box::pin(async move {
                    let sql = self.queries.list(
                        query.kind.is_some(),
                        query.provider.is_some(),
                        query.after.is_some(),
                    );
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(query.tenant.as_str());
                    if let Some(kind) = &query.kind {
                        q = q.bind(kind.as_str());
                    }
                    if let Some(provider) = &query.provider {
                        q = q.bind(provider.as_str());
                    }
                    if let Some((kind, name)) = &query.after {
                        q = q.bind(kind.as_str()).bind(name.as_str());
                    }
                    let rows = q
                        .bind(i64::from(query.limit))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(|e| self.err(e, "listing records"))?;
                    rows.iter().map($crate::backend::sql::secret_from_row).collect()
                })
            }

            fn set_purge_after<'a>(
                &'a self,
                keys: &'a [$crate::backend::RecordKey],
                purge_after: i64,
                audit: &'a [$crate::backend::AuditRow],
            ) -> $crate::backend::BoxFuture<'a, Result<u64, $crate::backend::BackendError>> {
                Box::pin(async move {
                    let context = "setting records' purge time";
                    let mut tx = self.begin_write().await?;
                    let mut changed = 0u64;
                    for key in keys {
                        changed += sqlx::query(sqlx::AssertSqlSafe(
                            self.queries.set_purge_after.clone(),
                        ))
                        .bind(key.tenant.as_str())
                        .bind(key.kind.as_str())
                        .bind(key.name.as_str())
                        .bind(purge_after)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.err(e, context))?
                        .rows_affected();
                    }
                    self.write_audit(&mut *tx, audit).await?;
                    tx.commit().await.map_err(|e| self.err(e, context))?;
                    Ok(changed)
                })
            }

            fn purge_records(
                &self,
                now: i64,
                actor: &str,
            ) -> $crate::backend::BoxFuture<
                '_,
                Result<Vec<$crate::backend::RecordKey>, $crate::backend::BackendError>,
            > {
                let actor = actor.to_owned();
                Box::pin(async move {
                    let context = "purging records";
                    let mut tx = self.begin_write().await?;
                    let rows = sqlx::query(sqlx::AssertSqlSafe(self.queries.purge_records.clone()))
                        .bind(now)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(|e| self.err(e, context))?;
                    let mut keys = rows
                        .iter()
                        .map($crate::backend::sql::key_from_row)
                        .collect::<Result<Vec<_>, _>>()?;
                    keys.sort();
                    let audit: Vec<$crate::backend::AuditRow> = keys
                        .iter()
                        .map(|k| $crate::backend::AuditRow {
                            at: now,
                            tenant: Some(k.tenant.clone()),
                            kind: Some(k.kind.to_string()),
                            name: Some(k.name.to_string()),
                            action: "purge".to_owned(),
                            actor: actor.clone(),
                            outcome: "ok".to_owned(),
                        })
                        .collect();
                    self.write_audit(&mut *tx, &audit).await?;
                    tx.commit().await.map_err(|e| self.err(e, context))?;
                    Ok(keys)
                })
            }

            fn append_audit<'a>(
                &'a self,
                rows: &'a [$crate::backend::AuditRow],
            ) -> $crate::backend::BoxFuture<'a, Result<(), $crate::backend::BackendError>> {
                Box::pin(async move {
                    let context = "appending audit rows";
                    let mut tx = self.begin_write().await?;
                    self.write_audit(&mut *tx, rows).await?;
                    tx.commit().await.map_err(|e| self.err(e, context))?;
                    Ok(())
                })
            }

            fn audit<'a>(
                &'a self,
                query: &'a $crate::backend::AuditQuery,
            ) -> $crate::backend::BoxFuture<
                'a,
                Result<Vec<$crate::backend::AuditRow>, $crate::backend::BackendError>,
            > {
                Box::pin(async move {
                    let sql = self.queries.audit(
                        query.tenant.is_some(),
                        query.since.is_some(),
                        query.limit.is_some(),
                    );
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                    if let Some(tenant) = &query.tenant {
                        q = q.bind(tenant.as_str());
                    }
                    if let Some(since) = query.since {
                        q = q.bind(since);
                    }
                    if let Some(limit) = query.limit {
                        q = q.bind(i64::from(limit));
                    }
                    let rows = q
                        .fetch_all(&self.pool)
                        .await
                        .map_err(|e| self.err(e, "reading audit rows"))?;
                    rows.iter().map($crate::backend::sql::audit_from_row).collect()
                })
            }

            fn purge_audit(
                &self,
                before: i64,
            ) -> $crate::backend::BoxFuture<'_, Result<u64, $crate::backend::BackendError>> {
                Box::pin(async move {
                    let done = sqlx::query(sqlx::AssertSqlSafe(self.queries.purge_audit.clone()))
                        .bind(before)
                        .execute(&self.pool)
                        .await
                        .map_err(|e| self.err(e, "purging audit rows"))?;
                    Ok(done.rows_affected())
                })
            }

            fn key_registry(
                &self,
            ) -> $crate::backend::BoxFuture<
                '_,
                Result<$crate::backend::KeyRegistry, $crate::backend::BackendError>,
            > {
                Box::pin(async move {
                    let mut conn = self
                        .pool
                        .acquire()
                        .await
                        .map_err(|e| self.err(e, "reading the key registry"))?;
                    self.read_registry(&mut conn).await
                })
            }

            fn register_keys<'a>(
                &'a self,
                keys: &'a [$crate::backend::KeyIdentity],
                primary: Option<u32>,
                at: i64,
            ) -> $crate::backend::BoxFuture<
                'a,
                Result<$crate::backend::KeyRegistry, $crate::backend::BackendError>,
            > {
                Box::pin(async move {
                    let context = "recording key identities";
                    let mut tx = self.begin_write().await?;
                    let mut newest = 0u32;
                    for key in keys {
                        sqlx::query(sqlx::AssertSqlSafe(self.queries.insert_key.clone()))
                            .bind(key.role.as_str())
                            .bind(i64::from(key.version))
                            .bind(key.fingerprint.as_str())
                            .bind(key.recorded_at)
                            .bind(key.last_primary_at)
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| self.err(e, context))?;
                        if key.role == $crate::backend::KeyRole::Kek {
                            newest = newest.max(key.version);
                        }
                    }
                    sqlx::query(sqlx::AssertSqlSafe(self.queries.raise_newest_kek.clone()))
                        .bind(i64::from(newest))
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.err(e, context))?;
                    if let Some(v) = primary {
                        sqlx::query(sqlx::AssertSqlSafe(self.queries.touch_primary.clone()))
                            .bind(i64::from(v))
                            .bind(at)
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| self.err(e, context))?;
                    }
                    let registry = self.read_registry(&mut tx).await?;
                    tx.commit().await.map_err(|e| self.err(e, context))?;
                    Ok(registry)
                })
            }

            fn set_tenant_shredded<'a>(
                &'a self,
                id: &'a $crate::TenantId,
                at: i64,
                audit: &'a [$crate::backend::AuditRow],
            ) -> $crate::backend::BoxFuture<'a, Result<bool, $crate::backend::BackendError>> {
                Box::pin(async move {
                    let context = "recording a tenant's shredding";
                    let mut tx = self.begin_write().await?;
                    let done = sqlx::query(sqlx::AssertSqlSafe(self.queries.set_shredded.clone()))
                        .bind(id.as_str())
                        .bind(at)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.err(e, context))?;
                    if done.rows_affected() == 0 {
                        return Ok(false);
                    }
                    self.write_audit(&mut *tx, audit).await?;
                    tx.commit().await.map_err(|e| self.err(e, context))?;
                    Ok(true)
                })
            }

            fn retired_deks<'a>(
                &'a self,
                tenant: &'a $crate::TenantId,
            ) -> $crate::backend::BoxFuture<
                'a,
                Result<Vec<$crate::backend::DekRow>, $crate::backend::BackendError>,
            > {
                Box::pin(self.retired_deks_impl(tenant))
            }

            fn deks_page<'a>(
                &'a self,
                after: Option<&'a ($crate::TenantId, $crate::KeyVersion)>,
                limit: u32,
            ) -> $crate::backend::BoxFuture<
                'a,
                Result<Vec<$crate::backend::DekRow>, $crate::backend::BackendError>,
            > {
                Box::pin(self.deks_page_impl(after, limit))
            }

            fn rotate_dek<'a>(
                &'a self,
                tenant: &'a $crate::TenantId,
                expected: $crate::KeyVersion,
                wrapped: &'a [u8],
                kek_version: $crate::KeyVersion,
                now: i64,
                audit: &'a [$crate::backend::AuditRow],
            ) -> $crate::backend::BoxFuture<'a, Result<bool, $crate::backend::BackendError>> {
                Box::pin(self.rotate_dek_impl(tenant, expected, wrapped, kek_version, now, audit))
            }

            fn rewrap_dek<'a>(
                &'a self,
                tenant: &'a $crate::TenantId,
                version: $crate::KeyVersion,
                old_kek: $crate::KeyVersion,
                wrapped: &'a [u8],
                new_kek: $crate::KeyVersion,
                audit: &'a [$crate::backend::AuditRow],
            ) -> $crate::backend::BoxFuture<'a, Result<bool, $crate::backend::BackendError>> {
                Box::pin(self.rewrap_dek_impl(tenant, version, old_kek, wrapped, new_kek, audit))
            }

            fn destroy_dek<'a>(
                &'a self,
                tenant: &'a $crate::TenantId,
                version: $crate::KeyVersion,
                now: i64,
                audit: &'a [$crate::backend::AuditRow],
            ) -> $crate::backend::BoxFuture<
                'a,
                Result<$crate::backend::DestroyDek, $crate::backend::BackendError>,
            > {
                Box::pin(self.destroy_dek_impl(tenant, version, now, audit))
            }

            fn set_min_dek_version<'a>(
                &'a self,
                tenant: &'a $crate::TenantId,
                minimum: $crate::KeyVersion,
                audit: &'a [$crate::backend::AuditRow],
            ) -> $crate::backend::BoxFuture<'a, Result<bool, $crate::backend::BackendError>> {
                Box::pin(self.set_min_dek_version_impl(tenant, minimum, audit))
            }

            fn record_counts(
                &self,
            ) -> $crate::backend::BoxFuture<
                '_,
                Result<Vec<$crate::backend::RecordCount>, $crate::backend::BackendError>,
            > {
                Box::pin(self.record_counts_impl())
            }

            fn count_stale(
                &self,
            ) -> $crate::backend::BoxFuture<'_, Result<u64, $crate::backend::BackendError>> {
                Box::pin(self.count_stale_impl())
            }

            fn reencrypt_batch<'a>(
                &'a self,
                request: &'a $crate::backend::BatchRequest<'a>,
            ) -> $crate::backend::BoxFuture<
                'a,
                Result<$crate::backend::BatchOutcome, $crate::backend::BackendError>,
            > {
                Box::pin(self.reencrypt_batch_impl(request))
            }
        }
    };

    (@bind_secret $q:expr, $row:expr) => {
        $q.bind($row.key.tenant.as_str())
            .bind($row.key.kind.as_str())
            .bind($row.key.name.as_str())
            .bind($row.version)
            .bind($row.sealed.as_slice())
            .bind(i64::from($row.dek_version.get()))
            .bind(i64::from($row.kek_version.get()))
            .bind($row.metadata.as_str())
            .bind($row.provider.as_deref())
            .bind($row.created_at)
            .bind($row.updated_at)
            .bind($row.expires_at)
            .bind($row.purge_after)
            .bind($row.lease_until)
    };
}

pub(crate) use sql_backend;

/// A tenant id read alone (`tenant_id` column).
pub(crate) fn tenant_from_id_row(row: &impl RowExt) -> Result<TenantId, BackendError> {
    let raw = row.text("tenant_id").map_err(|e| {
        corrupt("credvault_tenants row: column tenant_id cannot be read".to_owned()).with_source(e)
    })?;
    TenantId::new(raw.as_str()).map_err(|e| {
        corrupt(format!(
            "credvault_tenants row: invalid tenant id {}",
            shown(&raw)
        ))
        .with_source(e)
    })
}
