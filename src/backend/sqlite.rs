//! The SQLite backend (feature `sqlite`): one file, the embedded default.
//!
//! Build it from the application's own pool (this changes no schema; call
//! [`migrate`](crate::backend::Backend::migrate) when the application migrates):
//!
//! ```no_run
//! use credvault::backend::{Backend, SqliteBackend};
//!
//! # async fn run(pool: sqlx::SqlitePool) -> Result<(), credvault::backend::BackendError> {
//! // `pool` is the application's own `SqlitePool`.
//! let backend = SqliteBackend::from_pool(pool);
//! backend.migrate().await?;
//! # Ok(())
//! # }
//! ```
//!
//! or open a file for standalone use with [`SqliteBackend::connect`].
//!
//! # Durability
//!
//! [`SqliteBackend::connect`] opens the database in WAL mode with `synchronous = NORMAL`: a
//! committed transaction survives a crash of the process, but a power loss or an operating
//! system crash may lose the last transactions committed before it (the database stays
//! consistent). For durability across power loss too, build the options yourself with
//! [`SqliteBackend::options`], set `synchronous(SqliteSynchronous::Full)` and open with
//! [`SqliteBackend::connect_with`] (each commit then costs about 10x more on a typical disk).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::error::DatabaseError;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Sqlite, Transaction};

use crate::backend::memory::schema_too_new;
use crate::backend::sql::{Dialect, Queries, map_err, sql_backend};
use crate::backend::{BackendError, BackendErrorKind, SCHEMA_VERSION, SqlThrottle};
use crate::password::ThrottleConfig;

/// The migrations, in order: entry `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/sqlite/0001_init.sql"),
    include_str!("migrations/sqlite/0002_throttle.sql"),
    include_str!("migrations/sqlite/0003_rotation.sql"),
    include_str!("migrations/sqlite/0004_key_identity.sql"),
];

/// How long a connection waits for another writer's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite's primary result code for a write to a read-only database.
const SQLITE_READONLY: i64 = 8;
/// `SQLITE_BUSY` and `SQLITE_LOCKED`: another connection holds the lock.
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
/// `SQLITE_CORRUPT` and `SQLITE_NOTADB`.
const SQLITE_CORRUPT: i64 = 11;
const SQLITE_NOTADB: i64 = 26;
/// `SQLITE_CANTOPEN`: the file cannot be opened.
const SQLITE_CANTOPEN: i64 = 14;
/// `SQLITE_CONSTRAINT_PRIMARYKEY` and `SQLITE_CONSTRAINT_UNIQUE`.
const SQLITE_CONSTRAINT_PRIMARYKEY: i64 = 1555;
const SQLITE_CONSTRAINT_UNIQUE: i64 = 2067;

/// Records, tenants and the audit log in SQLite tables named `credvault_*`.
///
/// A cheap `Clone` handle over a [`SqlitePool`].
#[derive(Clone)]
pub struct SqliteBackend {
    pool: SqlitePool,
    queries: Arc<Queries>,
}

impl SqliteBackend {
    /// Uses the application's own pool. Changes no schema: call
    /// [`migrate`](crate::backend::Backend::migrate) (the application decides when).
    pub fn from_pool(pool: SqlitePool) -> Self {
        Self {
            pool,
            queries: Arc::new(Queries::new("", Dialect::Sqlite)),
        }
    }

    /// The options [`connect`](Self::connect) uses for `url_or_path` (a `sqlite:` URL or a
    /// file path): create the file if missing, WAL journal, `synchronous = NORMAL`, foreign
    /// keys on, a 5 s busy timeout. Change what you need and pass them to
    /// [`connect_with`](Self::connect_with).
    ///
    /// # Errors
    ///
    /// [`BackendErrorKind::Other`] if `url_or_path` is a `sqlite:` URL that does not parse.
    pub fn options(url_or_path: &str) -> Result<SqliteConnectOptions, BackendError> {
        let options = if url_or_path.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url_or_path)
                .map_err(|e| map_err(e, "parsing the sqlite url", classify))?
        } else {
            SqliteConnectOptions::new().filename(url_or_path)
        };
        Ok(options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT))
    }

    /// Opens (creating if missing) the database at `url_or_path`, a `sqlite:` URL or a file
    /// path, with the settings of [`options`](Self::options) (see the module docs on
    /// durability). Changes no schema: call [`migrate`](crate::backend::Backend::migrate).
    ///
    /// On Unix a new database file is created with mode 0600, and SQLite gives its `-wal` and
    /// `-shm` files the same mode; an existing file keeps its mode.
    ///
    /// # Errors
    ///
    /// [`BackendErrorKind::Unavailable`] if the file cannot be opened or created,
    /// [`BackendErrorKind::ReadOnly`] if WAL mode cannot be set on a read-only file,
    /// [`BackendErrorKind::Other`] for an invalid URL.
    pub async fn connect(url_or_path: &str) -> Result<Self, BackendError> {
        Self::connect_with(Self::options(url_or_path)?).await
    }

    /// Opens a database with exactly the given options (nothing is added: start from
    /// [`options`](Self::options) to keep WAL and the busy timeout). With `create_if_missing`,
    /// a missing database file is created with mode 0600 on Unix, as in
    /// [`connect`](Self::connect).
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_with(options: SqliteConnectOptions) -> Result<Self, BackendError> {
        create_private_if_missing(&options);
        let mut pool = SqlitePoolOptions::new();
        if options.get_filename().as_os_str() == ":memory:" {
            // Each connection to `:memory:` is its own database: keep exactly one, forever.
            pool = pool
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = pool
            .connect_with(options)
            .await
            .map_err(|e| map_err(e, "opening the sqlite database", classify))?;
        Ok(Self::from_pool(pool))
    }

    /// The pool this backend uses.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A login throttle counting in this database (table `credvault_throttle`, created by
    /// [`migrate`](crate::backend::Backend::migrate) at schema version 2), shared by every
    /// process using the file. Build it once and share it (it is a cheap `Clone` handle);
    /// call [`SqlThrottle::prune`] now and then.
    ///
    /// ```no_run
    /// use std::net::IpAddr;
    /// use std::time::SystemTime;
    /// use credvault::backend::{Backend, BackendError, SqliteBackend};
    /// use credvault::password::{Decision, LoginThrottle, ThrottleConfig};
    ///
    /// # async fn verify(_: &str, _: &str) -> bool { true }
    /// # async fn run(account: &str, password: &str, address: IpAddr) -> Result<(), BackendError> {
    /// // At start-up:
    /// let backend = SqliteBackend::connect("vault.db").await?;
    /// backend.migrate().await?;
    /// let throttle = backend.login_throttle(ThrottleConfig::default());
    ///
    /// // At each login attempt:
    /// let now = SystemTime::now();
    /// if let Decision::Deny { retry_after } = throttle.check(account, address, now).await? {
    ///     // Refuse without verifying the password: HTTP 429 with `Retry-After`.
    ///     println!("locked, retry in {} s", retry_after.as_secs());
    ///     return Ok(());
    /// }
    /// if verify(account, password).await {
    ///     throttle.record_success(account, address, now).await?;
    /// } else {
    ///     let _ = throttle.record_failure(account, address, now).await?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn login_throttle(&self, config: ThrottleConfig) -> SqlThrottle {
        SqlThrottle::sqlite(self.pool.clone(), config, classify)
    }

    fn err(&self, err: sqlx::Error, context: &str) -> BackendError {
        map_err(err, context, classify)
    }

    /// A write transaction, taking the write lock at once (`BEGIN IMMEDIATE`) so that it
    /// waits on the busy timeout instead of failing on a lock upgrade.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, BackendError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.err(e, "starting a write transaction"))
    }

    async fn read_version(
        &self,
        conn: &mut sqlx::SqliteConnection,
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
            "credvault sqlite schema migrated"
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
        let exists: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'credvault_schema'",
        )
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| self.err(e, context))?;
        if exists.is_none() {
            return Ok(None);
        }
        self.read_version(&mut conn).await
    }
}

impl fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("connections", &self.pool.size())
            .field("closed", &self.pool.is_closed())
            .finish_non_exhaustive()
    }
}

sql_backend!(SqliteBackend, sqlx::SqliteConnection);

/// Maps SQLite's (extended) result codes.
/// When `options` may create the database file and it does not exist yet, creates it empty
/// with mode 0600 (`O_CREAT | O_EXCL`) before SQLite opens it, so that the database is never
/// readable by others, whatever the umask; SQLite then creates `-wal` and `-shm` with the
/// database file's mode. An existing file is left as its operator made it.
///
/// Errors are ignored: SQLite's own open of the same path meets the same condition (a missing
/// directory, no permission) and reports it; `AlreadyExists` means another process won the
/// race and created it.
#[cfg(unix)]
fn create_private_if_missing(options: &SqliteConnectOptions) {
    use std::os::unix::fs::OpenOptionsExt as _;
    if !creates_a_file(options) {
        return;
    }
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(options.get_filename());
}

#[cfg(not(unix))]
fn create_private_if_missing(_options: &SqliteConnectOptions) {}

/// Whether SQLite would create a file at `options.get_filename()`: an on-disk database (not
/// `:memory:`, not a `file:` URI, which SQLite parses itself) opened with `create_if_missing`.
///
/// sqlx 0.9 has no getter for `create_if_missing` or `in_memory`; its derived `Debug` shows
/// both (tests/sqlite_on_disk.rs fails if that changes). The text may hold pragma values
/// (SQLCipher's `key`), so it is zeroed once read.
#[cfg(unix)]
fn creates_a_file(options: &SqliteConnectOptions) -> bool {
    let name = options.get_filename().as_os_str();
    if name.is_empty() || name == ":memory:" || name.as_encoded_bytes().starts_with(b"file:") {
        return false;
    }
    let debug = zeroize::Zeroizing::new(format!("{options:?}"));
    debug.contains("create_if_missing: true") && debug.contains("in_memory: false")
}

fn classify(err: &dyn DatabaseError) -> Option<BackendErrorKind> {
    let code: i64 = err.code()?.parse().ok()?;
    match code {
        SQLITE_CONSTRAINT_PRIMARYKEY | SQLITE_CONSTRAINT_UNIQUE => {
            return Some(BackendErrorKind::Conflict);
        }
        _ => {}
    }
    match code & 0xff {
        SQLITE_READONLY => Some(BackendErrorKind::ReadOnly),
        SQLITE_BUSY | SQLITE_LOCKED | SQLITE_CANTOPEN => Some(BackendErrorKind::Unavailable),
        SQLITE_CORRUPT | SQLITE_NOTADB => Some(BackendErrorKind::Corrupt),
        _ => None,
    }
}
