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

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::error::DatabaseError;
use sqlx::postgres::{PgPool, PgPoolOptions, PgQueryResult};
use sqlx::{AssertSqlSafe, PgConnection, Pool, Postgres, Transaction};

use crate::backend::join::Joined;
use crate::backend::sql::{Dialect, SqlBackend};
use crate::backend::sql_rows::map_err;
use crate::backend::{BackendError, BackendErrorKind, BoxFuture, SqlThrottle};
use crate::password::{PseudonymKey, ThrottleConfig};

/// The migrations, in order: entry `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/postgres/0001_init.sql"),
    include_str!("migrations/postgres/0002_throttle.sql"),
    include_str!("migrations/postgres/0003_rotation.sql"),
    include_str!("migrations/postgres/0004_key_identity.sql"),
    include_str!("migrations/postgres/0005_vault_keys.sql"),
    include_str!("migrations/postgres/0006_purge_runs.sql"),
];

/// How long [`PgBackend::connect`] keeps retrying a server that refuses connections.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest PostgreSQL identifier (`NAMEDATALEN - 1`).
const MAX_SCHEMA_LEN: usize = 63;

/// Records, tenants and the audit log in PostgreSQL tables named `credvault_*`, optionally in
/// a schema of their own.
///
/// A cheap `Clone` handle over a [`PgPool`]. Its [`Backend`](crate::backend::Backend) methods
/// are those of every SQL backend, listed under [`SqlBackend`].
pub type PgBackend = SqlBackend<Postgres>;

impl PgBackend {
    /// Uses the application's own pool, with unqualified table names (the connection's
    /// `search_path`). Changes no schema: call [`migrate`](crate::backend::Backend::migrate).
    pub fn from_pool(pool: PgPool) -> Self {
        Self::new(pool, None)
    }

    /// Places the tables in the PostgreSQL schema `schema` (created by
    /// [`migrate`](crate::backend::Backend::migrate) if missing). Every statement names it;
    /// the pool's `search_path` is left alone.
    ///
    /// # Errors
    ///
    /// [`BackendErrorKind::Other`] if `schema` is not a lowercase identifier
    /// (`[a-z_][a-z0-9_]{0,62}`) or starts with `pg_` (reserved by PostgreSQL).
    pub fn with_schema(self, schema: &str) -> Result<Self, BackendError> {
        validate_schema(schema)?;
        Ok(Self::new(self.pool, Some(schema.to_owned())))
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
    /// backend's schema, created by [`migrate`](crate::backend::Backend::migrate)): every
    /// application server using the database shares one count. Its rows are named with keyed
    /// hashes under `pseudonyms`, the vault's key from `Vault::throttle_key` (or take the
    /// throttle from `Vault::login_throttle`, which does both). Build it once and share it (a
    /// cheap `Clone` handle); call [`SqlThrottle::prune`] now and then. See
    /// `SqliteBackend::login_throttle` for its use at login.
    pub fn login_throttle(&self, config: ThrottleConfig, pseudonyms: PseudonymKey) -> SqlThrottle {
        SqlThrottle::new(Arc::new(self.clone()), config, pseudonyms)
    }
}

impl Dialect for Postgres {
    const BACKEND: &'static str = "PgBackend";
    const NAMED_SCHEMAS: bool = true;
    const DRIVER: &'static str = "postgres";
    const LOG_NAME: &'static str = "postgresql";
    const BEGIN_CONTEXT: &'static str = "starting a transaction";
    const SHARE_LOCK: &'static str = " FOR SHARE";
    const ROW_LOCK: &'static str = " FOR UPDATE";
    // A batch claims its records alone (other workers skip them) and keeps the tenants'
    // current data keys from being rotated under it.
    const CLAIM_LOCK: &'static str = " FOR UPDATE OF s SKIP LOCKED FOR SHARE OF t";
    const BLOB_TYPE: &'static str = "BYTEA";
    const POSITIONAL_PARAMS: bool = false;
    const SHARED_TEXT_PARAMS: bool = false;
    const MIGRATIONS: &'static [&'static str] = MIGRATIONS;
    const BEGIN_WRITE: &'static str = "BEGIN";

    #[allow(
        unreachable_patterns,
        reason = "one variant when only `postgres` is enabled"
    )]
    fn joined(conn: Joined<'_>) -> Option<&mut PgConnection> {
        match conn {
            Joined::Postgres(c) => Some(c),
            _ => None,
        }
    }

    fn classify(err: &dyn DatabaseError) -> Option<BackendErrorKind> {
        classify(err)
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }

    /// A plain `BEGIN`: the statements lock the rows they need.
    fn begin_write(
        pool: &Pool<Self>,
    ) -> BoxFuture<'_, Result<Transaction<'static, Self>, sqlx::Error>> {
        Box::pin(pool.begin())
    }

    fn schema_table_exists<'c>(
        conn: &'c mut PgConnection,
        prefix: &'c str,
    ) -> BoxFuture<'c, Result<bool, sqlx::Error>> {
        Box::pin(async move {
            let table = format!("{prefix}credvault_schema");
            sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(table.as_str())
                .fetch_one(conn)
                .await
        })
    }

    /// Takes the transaction-scoped advisory lock of `schema` (so that servers starting at
    /// once migrate one after the other), then creates `schema` if missing.
    fn lock_migrations<'c>(
        conn: &'c mut PgConnection,
        schema: Option<&'c str>,
    ) -> BoxFuture<'c, Result<(), BackendError>> {
        Box::pin(async move {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(lock_key(schema))
                .execute(&mut *conn)
                .await
                .map_err(|e| map_err(e, "taking the migration lock", classify))?;
            if let Some(schema) = schema {
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
                )))
                .execute(&mut *conn)
                .await
                .map_err(|e| map_err(e, "creating the schema", classify))?;
            }
            Ok(())
        })
    }

    /// Nothing here: deleted rows stay as dead tuples until VACUUM (autovacuum, or the
    /// operator's schedule: see SECURITY.md, "Deletion on disk") reclaims them.
    fn flush_deleted(_pool: &Pool<Self>) -> BoxFuture<'_, Result<bool, BackendError>> {
        Box::pin(std::future::ready(Ok(true)))
    }

    /// `SET LOCAL search_path` (transaction-scoped: the migration files use unqualified names).
    fn enter_schema<'c>(
        conn: &'c mut PgConnection,
        schema: Option<&'c str>,
    ) -> BoxFuture<'c, Result<(), BackendError>> {
        Box::pin(async move {
            let Some(schema) = schema else {
                return Ok(());
            };
            sqlx::raw_sql(AssertSqlSafe(format!(
                "SET LOCAL search_path TO \"{schema}\""
            )))
            .execute(conn)
            .await
            .map_err(|e| map_err(e, "migrating the schema", classify))?;
            Ok(())
        })
    }
}

/// The advisory lock key that serialises migrations of `schema`: the first 8 bytes of
/// SHA-256("credvault" NUL schema).
fn lock_key(schema: Option<&str>) -> i64 {
    let digest = Sha256::new()
        .chain_update(b"credvault\0")
        .chain_update(schema.unwrap_or("").as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

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
