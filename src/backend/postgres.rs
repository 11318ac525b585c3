//! The PostgreSQL backend (feature `postgres`): several application servers sharing one
//! database.
//!
//! Build it from the application's own pool (this changes no schema; call
//! [`migrate`](crate::backend::Backend::migrate) when the application migrates), optionally
//! placing the tables in a schema of their own:
//!
//! ```no_run
//! use credvault::backend::{Backend, PgBackend};
//!
//! # async fn run(pool: sqlx::PgPool) -> Result<(), credvault::backend::BackendError> {
//! // `pool` is the application's own `PgPool`.
//! let backend = PgBackend::from_pool(pool).with_schema("credvault")?;
//! backend.migrate().await?;
//! # Ok(())
//! # }
//! ```
//!
//! or open one for standalone use with [`PgBackend::connect`] /
//! [`PgBackend::connect_with_schema`].
//!
//! Without a schema, the tables (`credvault_*`) are named unqualified and so land where the
//! connection's `search_path` puts them (normally `public`). With one, every statement names
//! it explicitly; the pool's `search_path` is never changed. Durability is the server's
//! (`synchronous_commit`): a committed change is on the server's disk.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::error::DatabaseError;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Postgres, Transaction};

use crate::backend::memory::schema_too_new;
use crate::backend::sql::{Dialect, Queries, map_err, sql_backend};
use crate::backend::{BackendError, BackendErrorKind, SCHEMA_VERSION, SqlThrottle};
use crate::password::ThrottleConfig;

/// The migrations, in order: entry `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/postgres/0001_init.sql"),
    include_str!("migrations/postgres/0002_throttle.sql"),
    include_str!("migrations/postgres/0003_rotation.sql"),
    include_str!("migrations/postgres/0004_key_identity.sql"),
];

/// How long [`PgBackend::connect`] keeps retrying a server that refuses connections.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest PostgreSQL identifier (`NAMEDATALEN - 1`).
const MAX_SCHEMA_LEN: usize = 63;

/// Records, tenants and the audit log in PostgreSQL tables named `credvault_*`, optionally in
/// a schema of their own.
///
/// A cheap `Clone` handle over a [`PgPool`].
#[derive(Clone)]
pub struct PgBackend {
    pool: PgPool,
    schema: Option<String>,
    queries: Arc<Queries>,
}

impl PgBackend {
    /// Uses the application's own pool, with unqualified table names (the connection's
    /// `search_path`). Changes no schema: call [`migrate`](crate::backend::Backend::migrate).
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            pool,
            schema: None,
            queries: Arc::new(Queries::new("", Dialect::Postgres)),
        }
    }

    /// Places the tables in the PostgreSQL schema `schema` (created by
    /// [`migrate`](crate::backend::Backend::migrate) if missing). Every statement names it;
    /// the pool's `search_path` is left alone.
    ///
    /// # Errors
    ///
    /// [`BackendErrorKind::Other`] if `schema` is not a lowercase identifier
    /// (`[a-z_][a-z0-9_]{0,62}`) or starts with `pg_` (reserved by PostgreSQL).
    pub fn with_schema(mut self, schema: &str) -> Result<Self, BackendError> {
        validate_schema(schema)?;
        self.queries = Arc::new(Queries::new(&format!("\"{schema}\"."), Dialect::Postgres));
        self.schema = Some(schema.to_owned());
        Ok(self)
    }

    /// Opens a pool to `url` (`postgres://user@host:port/database`) for standalone use, with
    /// unqualified table names. Changes no schema: call
    /// [`migrate`](crate::backend::Backend::migrate).
    ///
    /// # Errors
    ///
    /// [`BackendErrorKind::Unavailable`] if the server cannot be reached within 10 s (a
    /// refused connection is retried until then), [`BackendErrorKind::Other`] for an invalid
    /// URL or a refused login.
    pub async fn connect(url: &str) -> Result<Self, BackendError> {
        let pool = PgPoolOptions::new()
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect(url)
            .await
            .map_err(|e| map_err(e, "connecting to postgresql", classify))?;
        Ok(Self::from_pool(pool))
    }

    /// [`connect`](Self::connect), then [`with_schema`](Self::with_schema).
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect) and [`with_schema`](Self::with_schema); the schema name
    /// is checked before connecting.
    pub async fn connect_with_schema(url: &str, schema: &str) -> Result<Self, BackendError> {
        validate_schema(schema)?;
        Self::connect(url).await?.with_schema(schema)
    }

    /// The pool this backend uses.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema holding the tables, if one was set.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// A login throttle counting in this database (table `credvault_throttle` in this
    /// backend's schema, created by [`migrate`](crate::backend::Backend::migrate) at schema
    /// version 2): every application server using the database shares one count. Build it
    /// once and share it (a cheap `Clone` handle); call [`SqlThrottle::prune`] now and then.
    /// See `SqliteBackend::login_throttle` for its use at login.
    pub fn login_throttle(&self, config: ThrottleConfig) -> SqlThrottle {
        SqlThrottle::postgres(self.pool.clone(), &self.queries.prefix, config, classify)
    }

    fn err(&self, err: sqlx::Error, context: &str) -> BackendError {
        map_err(err, context, classify)
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, BackendError> {
        self.pool
            .begin()
            .await
            .map_err(|e| self.err(e, "starting a transaction"))
    }

    /// The advisory lock key that serialises migrations of this schema: the first 8 bytes of
    /// SHA-256("credvault" NUL schema).
    fn lock_key(&self) -> i64 {
        let digest = Sha256::new()
            .chain_update(b"credvault\0")
            .chain_update(self.schema.as_deref().unwrap_or("").as_bytes())
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        i64::from_be_bytes(first)
    }

    async fn read_version(
        &self,
        conn: &mut sqlx::PgConnection,
    ) -> Result<Option<u32>, BackendError> {
        let version: Option<i64> =
            sqlx::query_scalar(AssertSqlSafe(self.queries.read_version.clone()))
                .fetch_optional(&mut *conn)
                .await
                .map_err(|e| self.err(e, "reading the schema version"))?;
        crate::backend::sql::schema_version_from(version)
    }

    async fn migrate_impl(&self) -> Result<(), BackendError> {
        let context = "migrating the schema";
        // Up to date (the common case): a read, no lock, so a read-only database opens.
        match self.schema_version_impl().await? {
            Some(v) if v == SCHEMA_VERSION => return Ok(()),
            Some(v) if v > SCHEMA_VERSION => return Err(schema_too_new(v)),
            _ => {}
        }
        let mut tx = self.begin_write().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(self.lock_key())
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e, "taking the migration lock"))?;
        if let Some(schema) = &self.schema {
            sqlx::raw_sql(AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
            )))
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e, "creating the schema"))?;
        }
        sqlx::query(AssertSqlSafe(self.queries.create_schema_table.clone()))
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e, context))?;
        let current = self.read_version(&mut tx).await?.unwrap_or(0);
        if current > SCHEMA_VERSION {
            return Err(schema_too_new(current));
        }
        if current == SCHEMA_VERSION {
            return Ok(());
        }
        if let Some(schema) = &self.schema {
            // Transaction-scoped: the migration files use unqualified names.
            sqlx::raw_sql(AssertSqlSafe(format!(
                "SET LOCAL search_path TO \"{schema}\""
            )))
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e, context))?;
        }
        for sql in MIGRATIONS
            .iter()
            .skip(usize::try_from(current).unwrap_or(usize::MAX))
        {
            sqlx::raw_sql(*sql)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e, context))?;
        }
        sqlx::query(AssertSqlSafe(self.queries.write_version.clone()))
            .bind(i64::from(SCHEMA_VERSION))
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e, context))?;
        tx.commit().await.map_err(|e| self.err(e, context))?;
        tracing::info!(
            version = SCHEMA_VERSION,
            from = current,
            "credvault postgresql schema migrated"
        );
        Ok(())
    }

    async fn schema_version_impl(&self) -> Result<Option<u32>, BackendError> {
        let context = "reading the schema version";
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| self.err(e, context))?;
        let table = format!("{}credvault_schema", self.queries.prefix);
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(table.as_str())
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| self.err(e, context))?;
        if !exists {
            return Ok(None);
        }
        self.read_version(&mut conn).await
    }
}

impl fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgBackend")
            .field("schema", &self.schema)
            .field("connections", &self.pool.size())
            .field("closed", &self.pool.is_closed())
            .finish_non_exhaustive()
    }
}

sql_backend!(PgBackend, sqlx::PgConnection);

fn validate_schema(schema: &str) -> Result<(), BackendError> {
    let mut chars = schema.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !first_ok || !rest_ok || schema.len() > MAX_SCHEMA_LEN {
        return Err(BackendError::new(
            BackendErrorKind::Other,
            format!(
                "invalid postgresql schema name {schema:?}: use 1 to {MAX_SCHEMA_LEN} lowercase ascii letters, digits and _, not starting with a digit"
            ),
        ));
    }
    if schema.starts_with("pg_") {
        return Err(BackendError::new(
            BackendErrorKind::Other,
            format!("invalid postgresql schema name {schema:?}: the pg_ prefix is reserved"),
        ));
    }
    Ok(())
}

/// Maps PostgreSQL's SQLSTATE codes.
fn classify(err: &dyn DatabaseError) -> Option<BackendErrorKind> {
    let code = err.code()?;
    match code.as_ref() {
        // unique_violation
        "23505" => Some(BackendErrorKind::Conflict),
        // read_only_sql_transaction
        "25006" => Some(BackendErrorKind::ReadOnly),
        // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections
        "57P01" | "57P02" | "57P03" | "53300" => Some(BackendErrorKind::Unavailable),
        // data_corrupted, index_corrupted
        "XX001" | "XX002" => Some(BackendErrorKind::Corrupt),
        // class 08: connection exception
        c if c.starts_with("08") => Some(BackendErrorKind::Unavailable),
        _ => None,
    }
}
