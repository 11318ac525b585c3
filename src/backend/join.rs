//! Joining the application's own transaction: [`VaultConnection`] names the connections a
//! vault write may run on (a `SqliteConnection` or a `PgConnection`, usually the inside of the
//! application's open `sqlx::Transaction`), and [`Joinable`] is what a SQL backend does on one.
//!
//! A write on the caller's connection runs in a savepoint of the caller's transaction (or, on
//! a connection with no transaction open, in a transaction of its own): its statements and
//! its audit rows commit or roll back with the caller's transaction, a failed write rolls back
//! to the savepoint and leaves the caller's transaction usable. No other connection is used, so
//! on SQLite the write never waits for a second write lock.

use crate::TenantId;
use crate::backend::{AuditRow, BackendError, BoxFuture, KeyIdentity, KeyRegistry};
use crate::backend::{ListQuery, RecordKey, SecretRow, TenantRow};

/// A connection a vault write can run on: `sqlx::SqliteConnection` (feature `sqlite`) or
/// `sqlx::PgConnection` (feature `postgres`). Pass the inside of your open transaction,
/// `&mut *tx`. Sealed: credvault implements it for those two types only.
pub trait VaultConnection: sealed::Sealed + Send {}

/// The caller's connection, by database.
#[derive(Debug)]
#[non_exhaustive]
pub(crate) enum Joined<'c> {
    #[cfg(feature = "sqlite")]
    Sqlite(&'c mut sqlx::SqliteConnection),
    #[cfg(feature = "postgres")]
    Postgres(&'c mut sqlx::PgConnection),
}

impl Joined<'_> {
    /// The same connection, borrowed again for one more call.
    pub(crate) fn reborrow(&mut self) -> Joined<'_> {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(c) => Joined::Sqlite(c),
            #[cfg(feature = "postgres")]
            Self::Postgres(c) => Joined::Postgres(c),
        }
    }

    /// The database's name: `sqlite`, `postgres`.
    pub(crate) fn database(&self) -> &'static str {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => "postgres",
        }
    }
}

pub(crate) mod sealed {
    use super::Joined;

    /// Implemented by credvault only: the connection, as a [`Joined`].
    #[allow(
        unreachable_pub,
        private_interfaces,
        reason = "the sealed supertrait of VaultConnection: unnameable outside the crate"
    )]
    pub trait Sealed {
        /// This connection, for one vault operation.
        fn joined(&mut self) -> Joined<'_>;
    }
}

#[cfg(feature = "sqlite")]
impl sealed::Sealed for sqlx::SqliteConnection {
    #[allow(private_interfaces, reason = "sealed: see VaultConnection")]
    fn joined(&mut self) -> Joined<'_> {
        Joined::Sqlite(self)
    }
}

#[cfg(feature = "sqlite")]
impl VaultConnection for sqlx::SqliteConnection {}

#[cfg(feature = "postgres")]
impl sealed::Sealed for sqlx::PgConnection {
    #[allow(private_interfaces, reason = "sealed: see VaultConnection")]
    fn joined(&mut self) -> Joined<'_> {
        Joined::Postgres(self)
    }
}

#[cfg(feature = "postgres")]
impl VaultConnection for sqlx::PgConnection {}

/// The writes (and the reads they need) of a backend that can run them on the caller's
/// connection: the SQL backends. Each is the [`Backend`](crate::backend::Backend) method of the
/// same name, run in a savepoint of the caller's transaction. A connection of another database
/// than the backend's is refused with [`BackendErrorKind::Other`](crate::backend::BackendErrorKind::Other)
/// (the vault checks it first and answers with a typed error).
pub(crate) trait Joinable: Send + Sync {
    /// The database's name: `sqlite`, `postgres`.
    fn database(&self) -> &'static str;

    fn tenant_in<'a>(
        &'a self,
        conn: Joined<'a>,
        id: &'a TenantId,
    ) -> BoxFuture<'a, Result<Option<TenantRow>, BackendError>>;

    fn insert_tenant_in<'a>(
        &'a self,
        conn: Joined<'a>,
        row: &'a TenantRow,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<TenantRow, BackendError>>;

    fn set_tenant_deletion_in<'a>(
        &'a self,
        conn: Joined<'a>,
        id: &'a TenantId,
        deleted_at: Option<i64>,
        purge_after: Option<i64>,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<bool, BackendError>>;

    fn get_in<'a>(
        &'a self,
        conn: Joined<'a>,
        key: &'a RecordKey,
    ) -> BoxFuture<'a, Result<Option<SecretRow>, BackendError>>;

    fn insert_in<'a>(
        &'a self,
        conn: Joined<'a>,
        row: &'a SecretRow,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    fn upsert_in<'a>(
        &'a self,
        conn: Joined<'a>,
        row: &'a SecretRow,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<i64, BackendError>>;

    fn update_in<'a>(
        &'a self,
        conn: Joined<'a>,
        row: &'a SecretRow,
        expected_version: i64,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<bool, BackendError>>;

    fn delete_in<'a>(
        &'a self,
        conn: Joined<'a>,
        keys: &'a [RecordKey],
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<u64, BackendError>>;

    fn list_in<'a>(
        &'a self,
        conn: Joined<'a>,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<Vec<crate::backend::ListedRow>, BackendError>>;

    fn set_purge_after_in<'a>(
        &'a self,
        conn: Joined<'a>,
        keys: &'a [RecordKey],
        purge_after: i64,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<u64, BackendError>>;

    fn append_audit_in<'a>(
        &'a self,
        conn: Joined<'a>,
        rows: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    fn register_keys_in<'a>(
        &'a self,
        conn: Joined<'a>,
        keys: &'a [KeyIdentity],
        primary: Option<u32>,
        at: i64,
    ) -> BoxFuture<'a, Result<KeyRegistry, BackendError>>;
}
