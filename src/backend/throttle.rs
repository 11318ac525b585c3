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
use std::time::{Duration, SystemTime};

use crate::backend::sql::{Driver, SqlBackend, params};
use crate::backend::sql_rows::RowExt;
use crate::backend::{AuditAction, AuditRow, BackendError, BackendErrorKind, BoxFuture};
use crate::password::throttle::{
    Forget, Key, KeyState, attempt_waits, count_failure, decide, from_millis, is_known, keys,
    known_key, to_millis, to_stored,
};
use crate::password::{Decision, LoginThrottle, ThrottleConfig};

/// After this many `record_failure` calls on one handle (and its clones), the next one also
/// runs [`SqlThrottle::prune`] (best effort: a failure is logged, not returned).
const PRUNE_EVERY: u64 = 1000;

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
    db: Arc<dyn ThrottleDb>,
    config: ThrottleConfig,
    writes: Arc<AtomicU64>,
}

impl SqlThrottle {
    /// A throttle counting in `db` (a SQL backend whose database has schema version 2).
    pub(crate) fn new(db: Arc<dyn ThrottleDb>, config: ThrottleConfig) -> Self {
        Self {
            db,
            config,
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
        let now = millis(now);
        let forget = Forget::new(&self.config);
        // `last_seen` (indexed) narrows the scan; the two other bounds are the rule.
        let idle = self.config.window.max(self.config.max_lockout);
        self.db
            .prune([
                now.saturating_sub(duration_millis(idle)),
                now.saturating_sub(duration_millis(forget.window_after)),
                now.saturating_sub(duration_millis(forget.lockout_after)),
                now.saturating_sub(duration_millis(self.config.known_address_ttl)),
            ])
            .await
    }
}

impl LoginThrottle for SqlThrottle {
    type Error = BackendError;

    /// One read of the attempt's rows, no lock, no write.
    ///
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
        let now = to_stored(now);
        let keys = keys(account, address);
        let known = known_key(account, address).map(|k| k.store_name());
        let mut names: Vec<String> = keys.iter().map(Key::store_name).collect();
        names.extend(known.clone());
        let states = self.db.states(&names).await?;
        let state = |name: &str| states.iter().find(|(n, _)| n == name).map(|(_, s)| s);
        let known = is_known(&self.config, known.as_deref().and_then(state), now);
        let waits = names
            .iter()
            .map(|n| state(n).and_then(|s| s.remaining(now)));
        Ok(decide(attempt_waits(&keys, waits, known)))
    }

    /// One write transaction over the attempt's rows.
    ///
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
        let now = to_stored(now);
        let mut keyed: Vec<(String, Key)> = keys(account, address)
            .into_iter()
            .map(|k| (k.store_name(), k))
            .collect();
        // One lock order for every caller: no deadlock between two servers' transactions.
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let known = known_key(account, address).map(|k| k.store_name());
        let decision = self
            .db
            .record_failure(&keyed, known.as_deref(), &self.config, now)
            .await?;
        if self.writes.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1
            && let Err(e) = self.prune(now).await
        {
            tracing::warn!(error = %e, "credvault login throttle: opportunistic prune failed");
        }
        Ok(decision)
    }

    /// Deletes the pair's and the account's rows (never the address's) and marks the address
    /// as known for the account, in one transaction.
    ///
    /// # Errors
    ///
    /// As [`record_failure`](Self::record_failure).
    async fn record_success(
        &self,
        account: &str,
        address: IpAddr,
        now: SystemTime,
    ) -> Result<(), BackendError> {
        let Some(known) = known_key(account, address) else {
            return Ok(());
        };
        let forget = [
            Key::Pair(account.to_owned(), address).store_name(),
            Key::Account(account.to_owned()).store_name(),
        ];
        self.db
            .record_success(&forget, &known.store_name(), to_stored(now))
            .await
    }

    /// Deletes the account's row and every (account, address) pair's row, and writes a
    /// `login_unlock` audit row naming `actor`, in one transaction.
    ///
    /// # Errors
    ///
    /// As [`record_failure`](Self::record_failure).
    async fn unlock(
        &self,
        account: &str,
        actor: &str,
        now: SystemTime,
    ) -> Result<bool, BackendError> {
        if account.is_empty() {
            return Ok(false);
        }
        self.db.unlock(account, actor, now).await
    }
}

impl fmt::Debug for SqlThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlThrottle")
            .field("driver", &self.db.driver())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What a throttle needs from its database, implemented by every SQL backend (object-safe,
/// so that [`SqlThrottle`] is one type whatever the database). Times are Unix milliseconds.
pub(crate) trait ThrottleDb: Send + Sync {
    /// The driver's name, for `Debug`.
    fn driver(&self) -> &'static str;

    /// The stored states of the rows named `names` (at most four; one read, no lock).
    fn states<'a>(
        &'a self,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<(String, KeyState)>, BackendError>>;

    /// Counts a failure on each of `keyed` (in that order, each row locked) in one
    /// transaction; returns the decision after it (the account's lock left out when the row
    /// `known` says the account logged in from this address recently).
    fn record_failure<'a>(
        &'a self,
        keyed: &'a [(String, Key)],
        known: Option<&'a str>,
        config: &'a ThrottleConfig,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Decision, BackendError>>;

    /// Deletes the rows `forget` and creates or refreshes the row `known` at `now`, in one
    /// transaction.
    fn record_success<'a>(
        &'a self,
        forget: &'a [String],
        known: &'a str,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    /// Deletes `account`'s account row and pair rows, with a `login_unlock` audit row by
    /// `actor` if there were any; returns whether there were.
    fn unlock<'a>(
        &'a self,
        account: &'a str,
        actor: &'a str,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<bool, BackendError>>;

    /// Deletes the rows idle since `bounds[0]`, whose window started before `bounds[1]` and
    /// whose lockout (if any) ended before `bounds[2]`, and the known-address rows last
    /// refreshed before `bounds[3]`; returns how many.
    fn prune(&self, bounds: [i64; 4]) -> BoxFuture<'_, Result<u64, BackendError>>;
}

impl<D: Driver> ThrottleDb for SqlBackend<D> {
    fn driver(&self) -> &'static str {
        D::DRIVER
    }

    fn states<'a>(
        &'a self,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<(String, KeyState)>, BackendError>> {
        Box::pin(async move {
            let mut conn = self.read("checking the login throttle").await?;
            let sql = &self.queries.throttle.select;
            // Four placeholders: fewer names repeat the first.
            let name = |i: usize| names.get(i).or(names.first()).map_or("", String::as_str);
            let rows = conn
                .fetch_all(sql, params![name(0), name(1), name(2), name(3)])
                .await?;
            rows.iter()
                .map(|row| Ok((key_name(row)?, state_from_row(row)?)))
                .collect()
        })
    }

    fn record_failure<'a>(
        &'a self,
        keyed: &'a [(String, Key)],
        known: Option<&'a str>,
        config: &'a ThrottleConfig,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Decision, BackendError>> {
        Box::pin(async move {
            let q = &*self.queries;
            let now_ms = millis(now);
            let mut tx = self.begin_as("recording a login failure").await?;
            let known = match known {
                Some(name) => tx
                    .fetch_optional(&q.throttle.select_one, params![name])
                    .await?
                    .map(|row| state_from_row(&row))
                    .transpose()?,
                None => None,
            };
            let known = is_known(config, known.as_ref(), now);
            let mut waits = Vec::with_capacity(keyed.len());
            let mut audit = Vec::new();
            for (name, key) in keyed {
                let name = name.as_str();
                tx.execute(&q.throttle.insert, params![name, now_ms, now_ms])
                    .await?;
                let row = tx.fetch_one(&q.throttle.lock, params![name]).await?;
                let mut state = state_from_row(&row)?;
                let lockouts = state.lockouts;
                let wait = count_failure(config, &mut state, key.threshold(config), now);
                if let Some(wait) = wait.filter(|_| state.lockouts > lockouts) {
                    // This failure starts a lockout: the audit log says so, in this transaction.
                    audit.push(login_event(
                        now,
                        name,
                        AuditAction::LoginLockout,
                        LOCKOUT_ACTOR,
                        format!("locked for {} s", wait.as_secs()),
                    ));
                }
                waits.push(wait);
                let update = params![
                    name,
                    i64::from(state.failures),
                    millis(state.window_start),
                    i64::from(state.lockouts),
                    state.locked_until.map(millis),
                    millis(state.last_seen),
                ];
                tx.execute(&q.throttle.update, update).await?;
            }
            tx.commit(&audit).await?;
            let keys: Vec<Key> = keyed.iter().map(|(_, k)| k.clone()).collect();
            Ok(decide(attempt_waits(&keys, waits, known)))
        })
    }

    fn record_success<'a>(
        &'a self,
        forget: &'a [String],
        known: &'a str,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let q = &*self.queries;
            let mut tx = self.begin_as("recording a login success").await?;
            for name in forget {
                tx.execute(&q.throttle.delete, params![name.as_str()])
                    .await?;
            }
            tx.execute(&q.throttle.mark_known, params![known, millis(now)])
                .await?;
            tx.commit(&[]).await
        })
    }

    fn unlock<'a>(
        &'a self,
        account: &'a str,
        actor: &'a str,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(async move {
            let q = &*self.queries;
            let mut tx = self.begin_as("unlocking an account").await?;
            let rows = tx.fetch_all(&q.throttle.pair_names, params![]).await?;
            let mut names = vec![Key::Account(account.to_owned()).store_name()];
            for row in &rows {
                let name = key_name(row)?;
                if Key::is_pair_of(&name, account) {
                    names.push(name);
                }
            }
            let mut deleted = 0;
            for name in &names {
                deleted += tx
                    .execute(&q.throttle.delete, params![name.as_str()])
                    .await?;
            }
            let audit = if deleted > 0 {
                vec![login_event(
                    now,
                    &names[0],
                    AuditAction::LoginUnlock,
                    actor,
                    format!("ok: {deleted} lock rows cleared"),
                )]
            } else {
                Vec::new()
            };
            tx.commit(&audit).await?;
            Ok(deleted > 0)
        })
    }

    fn prune(&self, bounds: [i64; 4]) -> BoxFuture<'_, Result<u64, BackendError>> {
        Box::pin(async move {
            let mut conn = self.read("pruning the login throttle").await?;
            let [idle, window, lockout, known] = bounds;
            let counted = conn
                .execute(&self.queries.throttle.prune, params![idle, window, lockout])
                .await?;
            let known = conn
                .execute(&self.queries.throttle.prune_known, params![known])
                .await?;
            Ok(counted + known)
        })
    }
}

/// The actor of `login_lockout` audit rows.
pub(crate) const LOCKOUT_ACTOR: &str = "throttle";

/// An audit row about the throttle row `name` (`acct:<account>`, `pair:<address>/<account>`,
/// `addr:<address>`): no tenant; the row's name in `name`.
fn login_event(
    now: SystemTime,
    name: &str,
    action: AuditAction,
    actor: &str,
    outcome: String,
) -> AuditRow {
    AuditRow {
        at: i64::try_from(to_millis(now) / 1000).unwrap_or(i64::MAX),
        tenant: None,
        kind: None,
        name: Some(name.to_owned()),
        action,
        actor: actor.to_owned(),
        outcome,
    }
}

/// A `credvault_throttle` row's name.
fn key_name(row: &impl RowExt) -> Result<String, BackendError> {
    row.text("throttle_key").map_err(|e| {
        BackendError::new(
            BackendErrorKind::Corrupt,
            "credvault_throttle row: column throttle_key cannot be read",
        )
        .with_source(e)
    })
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
        from_millis(ms).ok_or_else(|| out_of_range(col))
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

/// Unix milliseconds as stored (a BIGINT column).
fn millis(t: SystemTime) -> i64 {
    i64::try_from(to_millis(t)).unwrap_or(i64::MAX)
}

fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
