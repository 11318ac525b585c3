//! [`SqlThrottle`]: the login throttle of [`crate::password::throttle`] with its counts kept
//! in the vault's SQL database (table `credvault_throttle`, schema version 2), so that every
//! application server sharing the database shares one count.
//!
//! The rules are not re-implemented here: each call reads the rows of the keys involved,
//! applies the same function [`InMemoryThrottle`](crate::password::InMemoryThrottle) uses,
//! and writes the rows back, in one transaction holding the rows' write lock
//! (`BEGIN IMMEDIATE` on SQLite; `INSERT .. ON CONFLICT DO NOTHING` then
//! `SELECT .. FOR UPDATE` on PostgreSQL, keys locked in a fixed order), so concurrent
//! failures from several servers are all counted.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::AssertSqlSafe;
use sqlx::error::DatabaseError;

use crate::backend::sql_rows::{RowExt, map_err};
use crate::backend::{BackendError, BackendErrorKind};
use crate::password::throttle::{Forget, Key, KeyState, count_failure, decide, keys};
use crate::password::{Decision, LoginThrottle, ThrottleConfig};

/// After this many `record_failure` calls on one handle (and its clones), the next one also
/// runs [`SqlThrottle::prune`] (best effort: a failure is logged, not returned).
const PRUNE_EVERY: u64 = 1000;

/// The columns of a `credvault_throttle` row, in [`state_from_row`]'s order.
const STATE_COLUMNS: &str = "failures, window_start, lockouts, locked_until, last_seen";

/// The statements, with the table name qualified by the backend's prefix.
#[derive(Debug)]
struct Queries {
    select_two: Arc<str>,
    insert_new: Arc<str>,
    select_locked: Arc<str>,
    update: Arc<str>,
    delete: Arc<str>,
    prune: Arc<str>,
}

impl Queries {
    /// `prefix` as in the backends (empty, or a quoted schema and a dot); `for_update` is the
    /// row-lock clause appended to the locking read (empty on SQLite, which locks the whole
    /// database with `BEGIN IMMEDIATE`).
    fn new(prefix: &str, for_update: &str) -> Self {
        let t = format!("{prefix}credvault_throttle");
        let q = |s: String| Arc::<str>::from(s);
        Self {
            select_two: q(format!(
                "SELECT {STATE_COLUMNS} FROM {t} WHERE throttle_key = $1 OR throttle_key = $2"
            )),
            insert_new: q(format!(
                "INSERT INTO {t} (throttle_key, {STATE_COLUMNS}) VALUES ($1, 0, $2, 0, NULL, $3) \
                 ON CONFLICT (throttle_key) DO NOTHING"
            )),
            select_locked: q(format!(
                "SELECT {STATE_COLUMNS} FROM {t} WHERE throttle_key = $1{for_update}"
            )),
            update: q(format!(
                "UPDATE {t} SET failures = $2, window_start = $3, lockouts = $4, \
                 locked_until = $5, last_seen = $6 WHERE throttle_key = $1"
            )),
            delete: q(format!("DELETE FROM {t} WHERE throttle_key = $1")),
            prune: q(format!(
                "DELETE FROM {t} WHERE last_seen < $1 AND window_start < $2 \
                 AND (locked_until IS NULL OR locked_until < $3)"
            )),
        }
    }
}

#[derive(Clone)]
enum Pool {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "postgres")]
    Pg(sqlx::PgPool),
}

/// Runs `$body` with `$pool` bound to the driver's pool.
macro_rules! with_pool {
    ($self:ident, $pool:ident => $body:expr) => {
        match &$self.pool {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite($pool) => $body,
            #[cfg(feature = "postgres")]
            Pool::Pg($pool) => $body,
        }
    };
}

/// Runs `$body` with `$begin` bound to the (not yet awaited) start of a write transaction:
/// `BEGIN IMMEDIATE` on SQLite (the database's write lock at once, waiting on the busy
/// timeout), a plain `BEGIN` on PostgreSQL (the body locks the rows).
macro_rules! with_write_tx {
    ($self:ident, $begin:ident => $body:expr) => {
        match &$self.pool {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(pool) => {
                let $begin = pool.begin_with("BEGIN IMMEDIATE");
                $body
            }
            #[cfg(feature = "postgres")]
            Pool::Pg(pool) => {
                let $begin = pool.begin();
                $body
            }
        }
    };
}

/// A [`LoginThrottle`] whose counts live in the vault's database (`credvault_throttle`), shared
/// by every server using that database. The rules, thresholds and decisions are exactly those
/// of [`InMemoryThrottle`](crate::password::InMemoryThrottle) (the same code applies them),
/// except that times are stored, and so compared, to the millisecond. Storage is not capped
/// by [`ThrottleConfig::capacity`]: call [`prune`](Self::prune) from the vault's purge job
/// or a timer (each handle also prunes once every 1000 failures it records).
///
/// Build it with `SqliteBackend::login_throttle` or `PgBackend::login_throttle`, after
/// [`migrate`](crate::backend::Backend::migrate) (schema version 2 creates the table). A
/// cheap `Clone` handle over the backend's pool.
///
/// See `SqliteBackend::login_throttle` for an example of its use at login.
#[derive(Clone)]
pub struct SqlThrottle {
    pool: Pool,
    queries: Arc<Queries>,
    config: ThrottleConfig,
    classify: fn(&dyn DatabaseError) -> Option<BackendErrorKind>,
    writes: Arc<AtomicU64>,
}

impl SqlThrottle {
    /// A throttle on an SQLite pool whose database has schema version 2.
    #[cfg(feature = "sqlite")]
    pub(crate) fn sqlite(
        pool: sqlx::SqlitePool,
        config: ThrottleConfig,
        classify: fn(&dyn DatabaseError) -> Option<BackendErrorKind>,
    ) -> Self {
        Self::new(Pool::Sqlite(pool), Queries::new("", ""), config, classify)
    }

    /// A throttle on a PostgreSQL pool, tables named `{prefix}credvault_*`.
    #[cfg(feature = "postgres")]
    pub(crate) fn postgres(
        pool: sqlx::PgPool,
        prefix: &str,
        config: ThrottleConfig,
        classify: fn(&dyn DatabaseError) -> Option<BackendErrorKind>,
    ) -> Self {
        Self::new(
            Pool::Pg(pool),
            Queries::new(prefix, " FOR UPDATE"),
            config,
            classify,
        )
    }

    fn new(
        pool: Pool,
        queries: Queries,
        config: ThrottleConfig,
        classify: fn(&dyn DatabaseError) -> Option<BackendErrorKind>,
    ) -> Self {
        Self {
            pool,
            queries: Arc::new(queries),
            config,
            classify,
            writes: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The thresholds and durations in use.
    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    /// Deletes the rows that no longer change any decision at `now`: idle (no failure) for
    /// longer than `max(window, max_lockout)`, window expired, and no lockout ending within
    /// `max_lockout + window` of `now` (so a locked key, or one whose backoff still doubles,
    /// is kept). Returns how many rows were deleted.
    ///
    /// Storage is otherwise unbounded (one row per address and per (account, address) pair
    /// that failed): call this from the vault's purge job or a timer, say hourly. Each
    /// handle also calls it once every 1000 recorded failures.
    ///
    /// # Errors
    ///
    /// [`BackendError`] if the database fails ([`BackendErrorKind::Unavailable`] when it
    /// cannot be reached or stays locked past the busy timeout).
    pub async fn prune(&self, now: SystemTime) -> Result<u64, BackendError> {
        let context = "pruning the login throttle";
        let now = millis(now);
        let forget = Forget::new(&self.config);
        // `last_seen` (indexed) narrows the scan; the two other bounds are the rule.
        let idle = self.config.window.max(self.config.max_lockout);
        let idle_since = now.saturating_sub(duration_millis(idle));
        let window_since = now.saturating_sub(duration_millis(forget.window_after));
        let lockout_since = now.saturating_sub(duration_millis(forget.lockout_after));
        let done = with_pool!(self, pool => {
            sqlx::query(AssertSqlSafe(self.queries.prune.clone()))
                .bind(idle_since)
                .bind(window_since)
                .bind(lockout_since)
                .execute(pool)
                .await
                .map_err(|e| self.err(e, context))?
                .rows_affected()
        });
        Ok(done)
    }

    /// [`LoginThrottle::check`]: one read of the attempt's rows, no lock, no write.
    async fn check_impl(
        &self,
        account: &str,
        address: IpAddr,
        now: SystemTime,
    ) -> Result<Decision, BackendError> {
        let context = "checking the login throttle";
        let now = truncate(now);
        let names: Vec<String> = keys(account, address).iter().map(storage_key).collect();
        let first = names[0].as_str();
        let second = names.get(1).map_or(first, String::as_str);
        let states = with_pool!(self, pool => {
            let rows = sqlx::query(AssertSqlSafe(self.queries.select_two.clone()))
                .bind(first)
                .bind(second)
                .fetch_all(pool)
                .await
                .map_err(|e| self.err(e, context))?;
            rows.iter().map(state_from_row).collect::<Result<Vec<_>, _>>()?
        });
        Ok(decide(states.iter().map(|s| s.remaining(now))))
    }

    /// [`LoginThrottle::record_failure`]: one write transaction over the attempt's rows.
    async fn record_failure_impl(
        &self,
        account: &str,
        address: IpAddr,
        now: SystemTime,
    ) -> Result<Decision, BackendError> {
        let context = "recording a login failure";
        let now = truncate(now);
        let now_ms = millis(now);
        let mut keyed: Vec<(String, Key)> = keys(account, address)
            .into_iter()
            .map(|k| (storage_key(&k), k))
            .collect();
        // One lock order for every caller: no deadlock between two servers' transactions.
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let decision = with_write_tx!(self, begin => {
            let mut tx = begin.await.map_err(|e| self.err(e, context))?;
            let mut waits = Vec::with_capacity(keyed.len());
            for (name, key) in &keyed {
                sqlx::query(AssertSqlSafe(self.queries.insert_new.clone()))
                    .bind(name.as_str())
                    .bind(now_ms)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e, context))?;
                let row = sqlx::query(AssertSqlSafe(self.queries.select_locked.clone()))
                    .bind(name.as_str())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| self.err(e, context))?;
                let mut state = state_from_row(&row)?;
                waits.push(count_failure(
                    &self.config,
                    &mut state,
                    key.threshold(&self.config),
                    now,
                ));
                sqlx::query(AssertSqlSafe(self.queries.update.clone()))
                    .bind(name.as_str())
                    .bind(i64::from(state.failures))
                    .bind(millis(state.window_start))
                    .bind(i64::from(state.lockouts))
                    .bind(state.locked_until.map(millis))
                    .bind(millis(state.last_seen))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e, context))?;
            }
            tx.commit().await.map_err(|e| self.err(e, context))?;
            decide(waits)
        });
        if self.writes.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1
            && let Err(e) = self.prune(now).await
        {
            tracing::warn!(error = %e, "credvault login throttle: opportunistic prune failed");
        }
        Ok(decision)
    }

    /// [`LoginThrottle::record_success`]: deletes the pair's row (never the address's).
    async fn record_success_impl(
        &self,
        account: &str,
        address: IpAddr,
    ) -> Result<(), BackendError> {
        let context = "recording a login success";
        if account.is_empty() {
            return Ok(());
        }
        let name = storage_key(&Key::Pair(account.to_owned(), address));
        with_pool!(self, pool => {
            sqlx::query(AssertSqlSafe(self.queries.delete.clone()))
                .bind(name.as_str())
                .execute(pool)
                .await
                .map_err(|e| self.err(e, context))?;
        });
        Ok(())
    }

    fn err(&self, err: sqlx::Error, context: &str) -> BackendError {
        map_err(err, context, self.classify)
    }
}

impl LoginThrottle for SqlThrottle {
    type Error = BackendError;

    /// # Errors
    ///
    /// [`BackendError`] if the database fails or a row cannot be read
    /// ([`BackendErrorKind::Corrupt`]); a database without the table (not migrated to
    /// version 2) is [`BackendErrorKind::Other`].
    async fn check(
        &self,
        account: &str,
        address: IpAddr,
        now: SystemTime,
    ) -> Result<Decision, BackendError> {
        self.check_impl(account, address, now).await
    }

    /// # Errors
    ///
    /// As [`check`](Self::check); also [`BackendErrorKind::Unavailable`] if another writer
    /// holds the SQLite lock past the busy timeout, [`BackendErrorKind::ReadOnly`] on a
    /// read-only database. Nothing is counted when it fails.
    async fn record_failure(
        &self,
        account: &str,
        address: IpAddr,
        now: SystemTime,
    ) -> Result<Decision, BackendError> {
        self.record_failure_impl(account, address, now).await
    }

    /// # Errors
    ///
    /// As [`record_failure`](Self::record_failure).
    async fn record_success(
        &self,
        account: &str,
        address: IpAddr,
        _now: SystemTime,
    ) -> Result<(), BackendError> {
        self.record_success_impl(account, address).await
    }
}

impl fmt::Debug for SqlThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let driver = match &self.pool {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            Pool::Pg(_) => "postgres",
        };
        f.debug_struct("SqlThrottle")
            .field("driver", &driver)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The row key of a throttle key: `pair:<address>/<account>` or `addr:<address>` (an IPv6
/// /64 as `addr:<prefix>::/64`). An address's text never holds `/`, so distinct keys never
/// share a row.
fn storage_key(key: &Key) -> String {
    match key {
        Key::Pair(account, address) => format!("pair:{address}/{account}"),
        Key::Address(address @ IpAddr::V4(_)) => format!("addr:{address}"),
        Key::Address(address @ IpAddr::V6(_)) => format!("addr:{address}/64"),
    }
}

/// A `credvault_throttle` row's state.
fn state_from_row(row: &impl RowExt) -> Result<KeyState, BackendError> {
    let column = |col: &str, read: Result<i64, sqlx::Error>| {
        read.map_err(|e| {
            BackendError::new(
                BackendErrorKind::Corrupt,
                format!("credvault_throttle row: column {col} cannot be read"),
            )
            .with_source(e)
        })
    };
    let count = |col: &str| -> Result<u32, BackendError> {
        u32::try_from(column(col, row.int(col))?).map_err(|_| out_of_range(col))
    };
    let time = |col: &str, v: i64| -> Result<SystemTime, BackendError> {
        let ms = u64::try_from(v).map_err(|_| out_of_range(col))?;
        UNIX_EPOCH
            .checked_add(Duration::from_millis(ms))
            .ok_or_else(|| out_of_range(col))
    };
    let locked_until = row.opt_int("locked_until").map_err(|e| {
        BackendError::new(
            BackendErrorKind::Corrupt,
            "credvault_throttle row: column locked_until cannot be read",
        )
        .with_source(e)
    })?;
    Ok(KeyState {
        failures: count("failures")?,
        window_start: time(
            "window_start",
            column("window_start", row.int("window_start"))?,
        )?,
        lockouts: count("lockouts")?,
        locked_until: locked_until.map(|v| time("locked_until", v)).transpose()?,
        last_seen: time("last_seen", column("last_seen", row.int("last_seen"))?)?,
    })
}

fn out_of_range(col: &str) -> BackendError {
    BackendError::new(
        BackendErrorKind::Corrupt,
        format!("credvault_throttle row: {col} is out of range"),
    )
}

/// Unix milliseconds (0 before the epoch, saturating far in the future).
fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `now` cut to the millisecond, as stored: every rule then compares stored times alike.
fn truncate(now: SystemTime) -> SystemTime {
    let ms = u64::try_from(millis(now)).unwrap_or(0);
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .unwrap_or(now)
}
