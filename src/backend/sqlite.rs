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
//!
//! # Deleted means gone from the file
//!
//! [`SqliteBackend::options`] sets `PRAGMA secure_delete = ON` on every pooled connection:
//! SQLite overwrites deleted cells, freed pages and index entries with zeros. After a
//! disconnect, a tenant deletion's token removal and every purge, the vault also runs
//! `PRAGMA wal_checkpoint(TRUNCATE)` ([`Backend::flush_deleted`]), so that the WAL, which holds
//! pages as they were before the deletion, is emptied. A pool built by the application
//! ([`SqliteBackend::from_pool`]) should set `.pragma("secure_delete", "ON")` in its own
//! options; the vault warns in its log when it finds it off. Copies taken before the deletion
//! (backups) are not touched: see SECURITY.md.
//!
//! [`Backend::flush_deleted`]: crate::backend::Backend::flush_deleted

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::error::DatabaseError;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};
use sqlx::{Pool, Sqlite, SqliteConnection, Transaction};

use crate::backend::join::Joined;
use crate::backend::sql::{Dialect, SqlBackend};
use crate::backend::sql_rows::map_err;
use crate::backend::{BackendError, BackendErrorKind, BoxFuture, SqlThrottle};
use crate::password::{PseudonymKey, ThrottleConfig};

/// The migrations, in order: entry `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/sqlite/0001_init.sql"),
    include_str!("migrations/sqlite/0002_throttle.sql"),
    include_str!("migrations/sqlite/0003_rotation.sql"),
    include_str!("migrations/sqlite/0004_key_identity.sql"),
    include_str!("migrations/sqlite/0005_vault_keys.sql"),
    include_str!("migrations/sqlite/0006_purge_runs.sql"),
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
/// A cheap `Clone` handle over a [`SqlitePool`]. Its [`Backend`](crate::backend::Backend)
/// methods are those of every SQL backend, listed under [`SqlBackend`].
pub type SqliteBackend = SqlBackend<Sqlite>;

impl SqliteBackend {
    /// Uses the application's own pool. Changes no schema: call
    /// [`migrate`](crate::backend::Backend::migrate) (the application decides when).
    pub fn from_pool(pool: SqlitePool) -> Self {
        Self::new(pool, None)
    }

    /// The options [`connect`](Self::connect) uses for `url_or_path` (a `sqlite:` URL or a
    /// file path): create the file if missing, WAL journal, `synchronous = NORMAL`, foreign
    /// keys on, a 5 s busy timeout, and `secure_delete = ON` on every connection (deleted
    /// rows are overwritten with zeros, so that a disconnected or purged record leaves no
    /// bytes in the file; see the module docs). Change what you need and pass them to
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
            .busy_timeout(BUSY_TIMEOUT)
            .pragma("secure_delete", "ON"))
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
        let pool = pool.connect_with(options).await.map_err(|e| {
            let not_a_database = matches!(&e, sqlx::Error::Database(db)
                if db.code().and_then(|c| c.parse::<i64>().ok()) == Some(SQLITE_NOTADB));
            let err = map_err(e, "opening the sqlite database", classify);
            if not_a_database {
                // An encrypted (desktop mode) file opened without its key looks like this.
                BackendError::new(
                    BackendErrorKind::Corrupt,
                    "opening the sqlite database: the file is not a SQLite database, or it is \
                     encrypted (desktop mode: open it with its keys through \
                     credvault::backend::sqlcipher::open)",
                )
                .with_source(err)
            } else {
                err
            }
        })?;
        Ok(Self::from_pool(pool))
    }

    /// The pool this backend uses.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A login throttle counting in this database (table `credvault_throttle`, created by
    /// [`migrate`](crate::backend::Backend::migrate)), shared by every process using the file,
    /// its rows named with keyed hashes under `pseudonyms`: the vault's key, from
    /// `Vault::throttle_key` (or take the throttle from `Vault::login_throttle`, which does
    /// both). Build it once and share it (it is a cheap `Clone` handle); call
    /// [`SqlThrottle::prune`] now and then.
    ///
    /// ```no_run
    /// use std::net::IpAddr;
    /// use std::sync::Arc;
    /// use std::time::SystemTime;
    /// use credvault::backend::SqliteBackend;
    /// use credvault::password::{Decision, LoginThrottle, ThrottleConfig};
    /// use credvault::store::Vault;
    ///
    /// # async fn verify(_: &str, _: &str) -> bool { true }
    /// # async fn run(
    /// #     keys: credvault::keys::KeyFile,
    /// #     tenant_keys: credvault::envelope::DirTenantKeys,
    /// #     account: &str, password: &str, address: IpAddr,
    /// # ) -> Result<(), credvault::Error> {
    /// // At start-up:
    /// let backend = Arc::new(SqliteBackend::connect("vault.db").await?);
    /// let vault = Vault::builder(Arc::clone(&backend), keys, tenant_keys).build();
    /// vault.migrate().await?;
    /// let throttle = backend.login_throttle(ThrottleConfig::default(), vault.throttle_key().await?);
    ///
    /// // At each login attempt (or let `LoginGuard` do all of this):
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
    pub fn login_throttle(&self, config: ThrottleConfig, pseudonyms: PseudonymKey) -> SqlThrottle {
        SqlThrottle::new(Arc::new(self.clone()), config, pseudonyms)
    }
}

impl Dialect for Sqlite {
    const BACKEND: &'static str = "SqliteBackend";
    const NAMED_SCHEMAS: bool = false;
    const DRIVER: &'static str = "sqlite";
    const LOG_NAME: &'static str = "sqlite";
    const BEGIN_CONTEXT: &'static str = "starting a write transaction";
    // One writer at a time: a write transaction holds the database's write lock.
    const SHARE_LOCK: &'static str = "";
    const ROW_LOCK: &'static str = "";
    const CLAIM_LOCK: &'static str = "";
    const BLOB_TYPE: &'static str = "BLOB";
    const POSITIONAL_PARAMS: bool = true;
    const SHARED_TEXT_PARAMS: bool = true;
    const MIGRATIONS: &'static [&'static str] = MIGRATIONS;
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";

    #[allow(
        unreachable_patterns,
        reason = "one variant when only `sqlite` is enabled"
    )]
    fn joined(conn: Joined<'_>) -> Option<&mut SqliteConnection> {
        match conn {
            Joined::Sqlite(c) => Some(c),
            _ => None,
        }
    }

    fn classify(err: &dyn DatabaseError) -> Option<BackendErrorKind> {
        classify(err)
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    /// `BEGIN IMMEDIATE`: the write lock at once, so that the transaction waits on the busy
    /// timeout instead of failing on a lock upgrade.
    fn begin_write(
        pool: &Pool<Self>,
    ) -> BoxFuture<'_, Result<Transaction<'static, Self>, sqlx::Error>> {
        Box::pin(pool.begin_with("BEGIN IMMEDIATE"))
    }

    fn schema_table_exists<'c>(
        conn: &'c mut SqliteConnection,
        _prefix: &'c str,
    ) -> BoxFuture<'c, Result<bool, sqlx::Error>> {
        Box::pin(async move {
            let exists: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'credvault_schema'",
            )
            .fetch_optional(conn)
            .await?;
            Ok(exists.is_some())
        })
    }

    /// `PRAGMA wal_checkpoint(TRUNCATE)`: the WAL's frames (which hold deleted rows as they
    /// were) are copied into the main file, where `secure_delete` has zeroed them, and the WAL
    /// is truncated to zero bytes. Complete unless a reader still uses an older snapshot past
    /// the busy timeout (then the next flush finishes it). Warns if the connection runs
    /// without `secure_delete` (a pool the application built without it).
    fn flush_deleted(pool: &Pool<Self>) -> BoxFuture<'_, Result<bool, BackendError>> {
        Box::pin(async move {
            let context = "checkpointing the WAL after a deletion";
            let mut conn = pool
                .acquire()
                .await
                .map_err(|e| map_err(e, context, classify))?;
            let secure: i64 = sqlx::query_scalar("PRAGMA secure_delete")
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| map_err(e, context, classify))?;
            if secure == 0 {
                tracing::warn!(
                    "credvault: sqlite runs without secure_delete: deleted records stay readable \
                     in the database file until their pages are reused; open it with \
                     SqliteBackend::options (or set the pragma on the application's pool)"
                );
            }
            let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| map_err(e, context, classify))?;
            Ok(busy == 0)
        })
    }

    /// Nothing to do: the write transaction already holds the database's lock.
    fn lock_migrations<'c>(
        _conn: &'c mut SqliteConnection,
        _schema: Option<&'c str>,
    ) -> BoxFuture<'c, Result<(), BackendError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn enter_schema<'c>(
        _conn: &'c mut SqliteConnection,
        _schema: Option<&'c str>,
    ) -> BoxFuture<'c, Result<(), BackendError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

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

/// Maps SQLite's (extended) result codes.
pub(crate) fn classify(err: &dyn DatabaseError) -> Option<BackendErrorKind> {
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
