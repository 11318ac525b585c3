//! What the SQL backends share: [`SqlBackend`], one implementation of
//! [`Backend`](crate::backend::Backend) for SQLite and PostgreSQL, generic over the
//! [`Dialect`] that says how they differ (how a write transaction begins and locks, the lock
//! clauses, error codes, the migration lock). Every statement goes through a `Session`: a
//! write is `begin`, statements, `commit` with its audit rows, errors mapped in one place.
//!
//! Never holds a key: the rows are ciphertext and clear metadata only.

use std::fmt;
use std::sync::Arc;

use sqlx::error::DatabaseError;
use sqlx::pool::PoolConnection;
use sqlx::{AssertSqlSafe, Encode, Executor, IntoArguments, Pool, Transaction, Type};

use crate::backend::sql_queries::Queries;
use crate::backend::sql_rows::{RowExt, map_err};
use crate::backend::sql_session::Session;
use crate::backend::{BackendError, BackendErrorKind, BoxFuture, SCHEMA_VERSION, schema_too_new};
use crate::{KeyVersion, RecordKind, RecordName, TenantId};

/// What differs between SQLite and PostgreSQL, implemented for `sqlx::Sqlite` (in `sqlite.rs`)
/// and `sqlx::Postgres` (in `postgres.rs`).
pub(crate) trait Dialect: sqlx::Database {
    /// The public type name, for `Debug`.
    const BACKEND: &'static str;
    /// Whether the tables may be placed in a named schema (shown by `Debug`).
    const NAMED_SCHEMAS: bool;
    /// The driver's name, for a throttle's `Debug`.
    const DRIVER: &'static str;
    /// The database's name in log lines.
    const LOG_NAME: &'static str;
    /// What a failure to begin a write transaction says it was doing.
    const BEGIN_CONTEXT: &'static str;
    /// The clause that share-locks the rows a sub-select reads, so that a concurrent key
    /// rotation waits for the writing transaction (empty where a write locks everything).
    const SHARE_LOCK: &'static str;
    /// The clause that write-locks the rows a select reads.
    const ROW_LOCK: &'static str;
    /// The clause of a re-encryption claim: the claimed records locked for this batch alone,
    /// their tenants' rows share-locked.
    const CLAIM_LOCK: &'static str;
    /// The type of a binary column (`BLOB`, `BYTEA`), for a cast.
    const BLOB_TYPE: &'static str;
    /// Whether multi-row statements number their parameters by position (`?`) rather than
    /// by name (`$1`). SQLite's driver looks up every parameter's name when it binds, a scan
    /// of the statement's names each time: a 16-row audit insert's 112 `$N` parameters cost
    /// more to bind than the rows cost to insert (counted with callgrind, benches/vault.rs).
    const POSITIONAL_PARAMS: bool;
    /// Whether text parameters are bound as a shared `Arc<str>` rather than `&str`. SQLite's
    /// driver copies a `&str` into a new `Arc<String>` (two allocations); an `Arc<str>` it
    /// keeps as it is (one). PostgreSQL's writes either straight into its buffer.
    const SHARED_TEXT_PARAMS: bool;
    /// The migrations, in order: entry `i` brings the schema from version `i` to `i + 1`.
    const MIGRATIONS: &'static [&'static str];

    /// Maps the driver's error codes.
    fn classify(err: &dyn DatabaseError) -> Option<BackendErrorKind>;

    /// Rows changed by a statement.
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// The statement that begins a write transaction on a connection with none open (the
    /// same as [`begin_write`](Self::begin_write)'s).
    const BEGIN_WRITE: &'static str;

    /// The caller's connection, if it is one of this database.
    fn joined(conn: crate::backend::join::Joined<'_>) -> Option<&mut Self::Connection>;

    /// Begins a write transaction, taking whatever lock this database needs at once.
    fn begin_write(
        pool: &Pool<Self>,
    ) -> BoxFuture<'_, Result<Transaction<'static, Self>, sqlx::Error>>;

    /// Whether the table `{prefix}credvault_schema` exists.
    fn schema_table_exists<'c>(
        conn: &'c mut Self::Connection,
        prefix: &'c str,
    ) -> BoxFuture<'c, Result<bool, sqlx::Error>>;

    /// The first step of a migration, in its transaction: serialise migrations of `schema`
    /// and create it if needed.
    fn lock_migrations<'c>(
        conn: &'c mut Self::Connection,
        schema: Option<&'c str>,
    ) -> BoxFuture<'c, Result<(), BackendError>>;

    /// Before the migration files run: make their unqualified names land in `schema`.
    fn enter_schema<'c>(
        conn: &'c mut Self::Connection,
        schema: Option<&'c str>,
    ) -> BoxFuture<'c, Result<(), BackendError>>;

    /// After deletions: move deleted rows' bytes out of the live files where the database
    /// allows it ([`Backend::flush_deleted`](crate::backend::Backend::flush_deleted)).
    fn flush_deleted(pool: &Pool<Self>) -> BoxFuture<'_, Result<bool, BackendError>>;
}

/// A [`Dialect`] whose driver runs the statements the backend needs: the sqlx bounds, stated
/// once here rather than at every use.
pub(crate) trait Driver: Dialect<Row: RowExt> {
    /// Runs `sql` with `params` on `conn`; returns the rows changed.
    fn execute<'c>(
        conn: &'c mut Self::Connection,
        sql: &Arc<str>,
        params: &[Param<'_>],
    ) -> BoxFuture<'c, Result<u64, sqlx::Error>>;

    /// Runs `sql` with `params` on `conn`; returns every row.
    fn fetch_all<'c>(
        conn: &'c mut Self::Connection,
        sql: &Arc<str>,
        params: &[Param<'_>],
    ) -> BoxFuture<'c, Result<Vec<Self::Row>, sqlx::Error>>;

    /// Runs `sql` with `params` on `conn`; returns the first row, if any.
    fn fetch_optional<'c>(
        conn: &'c mut Self::Connection,
        sql: &Arc<str>,
        params: &[Param<'_>],
    ) -> BoxFuture<'c, Result<Option<Self::Row>, sqlx::Error>>;

    /// Runs a script of several statements without parameters (a migration file).
    fn script<'c>(
        conn: &'c mut Self::Connection,
        sql: &'static str,
    ) -> BoxFuture<'c, Result<(), sqlx::Error>>;
}

impl<DB> Driver for DB
where
    DB: Dialect<Row: RowExt>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    Arc<str>: for<'a> Encode<'a, DB> + Type<DB>,
    Option<Arc<str>>: for<'a> Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
    for<'a> &'a [u8]: Encode<'a, DB> + Type<DB>,
    i64: for<'a> Encode<'a, DB> + Type<DB>,
    Option<i64>: for<'a> Encode<'a, DB> + Type<DB>,
{
    fn execute<'c>(
        conn: &'c mut Self::Connection,
        sql: &Arc<str>,
        params: &[Param<'_>],
    ) -> BoxFuture<'c, Result<u64, sqlx::Error>> {
        let done = conn.execute(bound::<DB>(sql, params));
        Box::pin(async move { Ok(DB::rows_affected(&done.await?)) })
    }

    fn fetch_all<'c>(
        conn: &'c mut Self::Connection,
        sql: &Arc<str>,
        params: &[Param<'_>],
    ) -> BoxFuture<'c, Result<Vec<Self::Row>, sqlx::Error>> {
        conn.fetch_all(bound::<DB>(sql, params))
    }

    fn fetch_optional<'c>(
        conn: &'c mut Self::Connection,
        sql: &Arc<str>,
        params: &[Param<'_>],
    ) -> BoxFuture<'c, Result<Option<Self::Row>, sqlx::Error>> {
        conn.fetch_optional(bound::<DB>(sql, params))
    }

    fn script<'c>(
        conn: &'c mut Self::Connection,
        sql: &'static str,
    ) -> BoxFuture<'c, Result<(), sqlx::Error>> {
        let done = conn.execute(sqlx::raw_sql(sql));
        Box::pin(async move { done.await.map(|_| ()) })
    }
}

/// `sql` with `params` bound in order.
fn bound<DB>(sql: &Arc<str>, params: &[Param<'_>]) -> sqlx::query::Query<'static, DB, DB::Arguments>
where
    DB: Dialect,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    Arc<str>: for<'a> Encode<'a, DB> + Type<DB>,
    Option<Arc<str>>: for<'a> Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
    for<'a> &'a [u8]: Encode<'a, DB> + Type<DB>,
    i64: for<'a> Encode<'a, DB> + Type<DB>,
    Option<i64>: for<'a> Encode<'a, DB> + Type<DB>,
{
    let mut query = sqlx::query(AssertSqlSafe(Arc::clone(sql)));
    for param in params {
        query = match *param {
            Param::Text(v) if DB::SHARED_TEXT_PARAMS => query.bind(shared_text(v)),
            Param::OptText(v) if DB::SHARED_TEXT_PARAMS => query.bind(v.map(shared_text)),
            Param::Text(v) => query.bind(v),
            Param::OptText(v) => query.bind(v),
            Param::Bytes(v) => query.bind(v),
            Param::Int(v) => query.bind(v),
            Param::OptInt(v) => query.bind(v),
        };
    }
    query
}

/// `v` as a shared string for SQLite's driver: the few values every audit row repeats (its
/// outcome `ok`, the read and write actions, the built-in record kinds) are made once and
/// shared; any other value is copied.
fn shared_text(v: &str) -> Arc<str> {
    use std::sync::OnceLock;
    const COMMON: [&str; 8] = [
        "ok",
        "get",
        "put",
        "update",
        "oauth_token",
        "api_key",
        "session_cookies",
        "derived",
    ];
    static SHARED: OnceLock<[Arc<str>; 8]> = OnceLock::new();
    let Some(i) = COMMON.iter().position(|c| *c == v) else {
        return Arc::from(v);
    };
    let shared = SHARED.get_or_init(|| COMMON.map(Arc::from));
    shared.get(i).map_or_else(|| Arc::from(v), Arc::clone)
}

/// One bound parameter: the only types the backends bind.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    Text(&'a str),
    OptText(Option<&'a str>),
    Bytes(&'a [u8]),
    Int(i64),
    OptInt(Option<i64>),
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Self::Text(v)
    }
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Self::OptText(v)
    }
}

impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(v: &'a [u8]) -> Self {
        Self::Bytes(v)
    }
}

impl<'a> From<&'a Vec<u8>> for Param<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Self::Bytes(v)
    }
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<Option<i64>> for Param<'_> {
    fn from(v: Option<i64>) -> Self {
        Self::OptInt(v)
    }
}

/// A key version is stored as an integer.
impl From<KeyVersion> for Param<'_> {
    fn from(v: KeyVersion) -> Self {
        Self::Int(i64::from(v.get()))
    }
}

impl<'a> From<&'a TenantId> for Param<'a> {
    fn from(v: &'a TenantId) -> Self {
        Self::Text(v.as_str())
    }
}

impl<'a> From<&'a RecordKind> for Param<'a> {
    fn from(v: &'a RecordKind) -> Self {
        Self::Text(v.as_str())
    }
}

impl<'a> From<&'a RecordName> for Param<'a> {
    fn from(v: &'a RecordName) -> Self {
        Self::Text(v.as_str())
    }
}

/// The parameters of a statement, in order: `params![id, version]`.
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        &[$($crate::backend::sql::Param::from($value)),*]
    };
}

pub(crate) use params;

/// Records, tenants and the audit log in SQL tables named `credvault_*`: the implementation
/// of [`SqliteBackend`](crate::backend::SqliteBackend) and
/// [`PgBackend`](crate::backend::PgBackend), which name it for each database.
///
/// A cheap `Clone` handle over a [`sqlx::Pool`].
pub struct SqlBackend<DB: sqlx::Database> {
    pub(crate) pool: Pool<DB>,
    /// The PostgreSQL schema holding the tables, if one was set.
    pub(crate) schema: Option<String>,
    pub(crate) queries: Arc<Queries>,
}

impl<DB: sqlx::Database> Clone for SqlBackend<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            schema: self.schema.clone(),
            queries: Arc::clone(&self.queries),
        }
    }
}

impl<D: Dialect> fmt::Debug for SqlBackend<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct(D::BACKEND);
        if D::NAMED_SCHEMAS {
            s.field("schema", &self.schema);
        }
        s.field("connections", &self.pool.size())
            .field("closed", &self.pool.is_closed())
            .finish_non_exhaustive()
    }
}

#[expect(
    private_bounds,
    reason = "crate-internal methods, bounded by the crate-internal dialect traits"
)]
impl<D: Dialect> SqlBackend<D> {
    /// A backend over `pool`, tables in `schema` (PostgreSQL) or unqualified.
    pub(crate) fn new(pool: Pool<D>, schema: Option<String>) -> Self {
        let prefix = schema
            .as_ref()
            .map_or(String::new(), |s| format!("\"{s}\"."));
        Self {
            pool,
            schema,
            queries: Arc::new(Queries::new::<D>(&prefix)),
        }
    }
}

#[expect(
    private_bounds,
    reason = "crate-internal methods, bounded by the crate-internal dialect traits"
)]
impl<D: Driver> SqlBackend<D> {
    /// A write transaction; `context` names the operation in its errors (a failure to begin
    /// says it was starting a transaction).
    pub(crate) async fn begin(
        &self,
        context: &'static str,
    ) -> Result<Session<'_, D, Transaction<'static, D>>, BackendError> {
        self.start(D::BEGIN_CONTEXT, context).await
    }

    /// [`begin`](Self::begin), a failure to begin naming the operation too.
    pub(crate) async fn begin_as(
        &self,
        context: &'static str,
    ) -> Result<Session<'_, D, Transaction<'static, D>>, BackendError> {
        self.start(context, context).await
    }

    async fn start(
        &self,
        begin_context: &'static str,
        context: &'static str,
    ) -> Result<Session<'_, D, Transaction<'static, D>>, BackendError> {
        let tx = D::begin_write(&self.pool)
            .await
            .map_err(|e| map_err(e, begin_context, D::classify))?;
        Ok(Session::new(tx, &self.queries, context))
    }

    /// A connection for reads outside a transaction; `context` names the operation.
    pub(crate) async fn read(
        &self,
        context: &'static str,
    ) -> Result<Session<'_, D, PoolConnection<D>>, BackendError> {
        let conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| map_err(e, context, D::classify))?;
        Ok(Session::new(conn, &self.queries, context))
    }

    /// Creates or upgrades the schema: [`Backend::migrate`](crate::backend::Backend::migrate).
    pub(crate) async fn migrate_schema(&self) -> Result<(), BackendError> {
        // Up to date (the common case): a read, no lock, so a read-only database opens.
        match self.stored_schema_version().await? {
            Some(v) if v == SCHEMA_VERSION => return Ok(()),
            Some(v) if v > SCHEMA_VERSION => return Err(schema_too_new(v)),
            _ => {}
        }
        let mut tx = self.begin("migrating the schema").await?;
        let schema = self.schema.as_deref();
        D::lock_migrations(&mut tx.conn, schema).await?;
        tx.execute(&self.queries.schema.create_table, params![])
            .await?;
        let current = tx.schema_version().await?.unwrap_or(0);
        if current > SCHEMA_VERSION {
            return Err(schema_too_new(current));
        }
        if current == SCHEMA_VERSION {
            return Ok(());
        }
        D::enter_schema(&mut tx.conn, schema).await?;
        let pending = usize::try_from(current).unwrap_or(usize::MAX);
        for sql in D::MIGRATIONS.iter().skip(pending) {
            tx.script(sql).await?;
        }
        tx.execute(
            &self.queries.schema.write_version,
            params![i64::from(SCHEMA_VERSION)],
        )
        .await?;
        tx.commit(&[]).await?;
        tracing::info!(
            version = SCHEMA_VERSION,
            from = current,
            "credvault {} schema migrated",
            D::LOG_NAME
        );
        Ok(())
    }

    /// The schema version in the database: [`Backend::schema_version`](crate::backend::Backend::schema_version).
    pub(crate) async fn stored_schema_version(&self) -> Result<Option<u32>, BackendError> {
        let mut conn = self.read("reading the schema version").await?;
        let exists = D::schema_table_exists(&mut conn.conn, &self.queries.prefix).await;
        if !exists.map_err(|e| conn.err(e))? {
            return Ok(None);
        }
        conn.schema_version().await
    }
}
