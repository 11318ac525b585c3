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
//!
//! Rows are named with keyed hashes under the vault's [`PseudonymKey`] ([`Key::store_name`]):
//! the table, and the names in the throttle's audit rows, hold no account name and no
//! address. Rows written before schema version 5 named them in clear; the first call of a
//! throttle renames them ([`SqlThrottle`]'s docs).

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::backend::sql::{Driver, Param, SqlBackend, params};
use crate::backend::sql_rows::RowExt;
use crate::backend::{AuditAction, AuditRow, BackendError, BackendErrorKind, BoxFuture};
use crate::password::throttle::{
    CLEAR_NAME_PATTERNS, Forget, Key, KeyState, attempt_waits, count_failure, decide, from_millis,
    is_known, keys, known_key, to_millis, to_stored,
};
use crate::password::{Decision, LoginThrottle, PseudonymKey, ThrottleConfig};

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
/// Its rows are named with keyed hashes under the vault's [`PseudonymKey`]: no account name
/// or address is stored, in the table or in its `login_lockout` / `login_unlock` audit rows
/// (which name `acct#<pseudonym>` or `pair#<pseudonym>.<...>`, see
/// [`PseudonymKey::pseudonym`]). Every server sharing the database must use the vault's key;
/// a throttle with another key sees none of the counts.
///
/// Get it with `Vault::login_throttle` (one call: the vault's key, its database), or build
/// it with `SqliteBackend::login_throttle` / `PgBackend::login_throttle` and the key from
/// `Vault::throttle_key`, after [`migrate`](crate::backend::Backend::migrate). A cheap
/// `Clone` handle over the backend's pool.
///
/// The first call of a handle on a database migrated from before schema version 5 renames
/// the rows written in clear (`pair:<address>/<account>`...) to their keyed-hash names, in
/// one transaction: states are kept (a lockout in force stays in force), two rows that map to
/// one are merged (the longer lockout, the sum of failures), and the names in the throttle's
/// earlier audit rows are replaced by their pseudonyms too. It then clears the flag the
/// migration set; later calls read nothing more for it.
///
/// See `SqliteBackend::login_throttle` for an example of its use at login.
#[derive(Clone)]
pub struct SqlThrottle {
    db: Arc<dyn ThrottleDb>,
    config: ThrottleConfig,
    pseudonyms: PseudonymKey,
    writes: Arc<AtomicU64>,
    /// Whether the rows written in clear were renamed (or none were pending).
    renamed: Arc<AtomicBool>,
}

impl SqlThrottle {
    /// A throttle counting in `db` (a SQL backend whose database has schema version 5), its
    /// rows named under `pseudonyms`.
    pub(crate) fn new(
        db: Arc<dyn ThrottleDb>,
        config: ThrottleConfig,
        pseudonyms: PseudonymKey,
    ) -> Self {
        Self {
            db,
            config,
            pseudonyms,
            writes: Arc::new(AtomicU64::new(0)),
            renamed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The thresholds and durations in use.
    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    /// The key the rows are named under (to find an account's audit rows:
    /// [`PseudonymKey::pseudonym`]).
    pub fn pseudonyms(&self) -> &PseudonymKey {
        &self.pseudonyms
    }

    /// Renames the rows written in clear before schema version 5, once per handle (see the
    /// type's docs). Returns how many rows were renamed or dropped (0 when none were
    /// pending).
    ///
    /// # Errors
    ///
    /// [`BackendError`] if the database fails; nothing is renamed then.
    pub async fn rename_clear_rows(&self) -> Result<u64, BackendError> {
        if self.renamed.load(Ordering::Acquire) {
            return Ok(0);
        }
        let renamed = if self.db.clear_names_pending().await? {
            let rename =
                |name: &str| Key::from_clear_name(name).map(|key| key.store_name(&self.pseudonyms));
            let n = self.db.rename_clear_rows(&rename).await?;
            tracing::info!(
                rows = n,
                "credvault login throttle: rows named in clear renamed to their pseudonyms"
            );
            n
        } else {
            0
        };
        self.renamed.store(true, Ordering::Release);
        Ok(renamed)
    }

    fn name(&self, key: &Key) -> String {
        key.store_name(&self.pseudonyms)
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
        self.rename_clear_rows().await?;
        let now = to_stored(now);
        let keys = keys(account, address);
        let known = known_key(account, address).map(|k| self.name(&k));
        let mut names: Vec<String> = keys.iter().map(|k| self.name(k)).collect();
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
        self.rename_clear_rows().await?;
        let now = to_stored(now);
        let mut keyed: Vec<(String, Key)> = keys(account, address)
            .into_iter()
            .map(|k| (self.name(&k), k))
            .collect();
        // One lock order for every caller: no deadlock between two servers' transactions.
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let known = known_key(account, address).map(|k| self.name(&k));
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
        self.rename_clear_rows().await?;
        let forget = [
            self.name(&Key::Pair(account.to_owned(), address)),
            self.name(&Key::Account(account.to_owned())),
        ];
        self.db
            .record_success(&forget, &self.name(&known), to_stored(now))
            .await
    }

    /// Deletes the account's row and every (account, address) pair's row (found by their
    /// names' prefix, the account's pseudonym), and writes a `login_unlock` audit row naming
    /// `actor` and the account's row (`acct#<pseudonym>`), in one transaction.
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
        self.rename_clear_rows().await?;
        let name = self.name(&Key::Account(account.to_owned()));
        let pairs = Key::pairs_prefix(account, &self.pseudonyms);
        self.db.unlock(&name, &pairs, actor, now).await
    }
}

impl fmt::Debug for SqlThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the pseudonym key.
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

    /// Deletes the account row `account` and the pair rows whose names start with `pairs`,
    /// with a `login_unlock` audit row by `actor` naming `account` if there were any; returns
    /// whether there were.
    fn unlock<'a>(
        &'a self,
        account: &'a str,
        pairs: &'a str,
        actor: &'a str,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<bool, BackendError>>;

    /// Whether rows named in clear (written before schema version 5) may still be there.
    fn clear_names_pending(&self) -> BoxFuture<'_, Result<bool, BackendError>>;

    /// In one transaction: renames every row named in clear to `rename(name)` (merging it into
    /// a row of that name if there is one; dropping it if `rename` answers `None`), renames
    /// the names of the throttle's audit rows alike, and clears the pending flag. Returns how
    /// many throttle rows were renamed or dropped.
    fn rename_clear_rows<'a>(
        &'a self,
        rename: &'a (dyn Fn(&str) -> Option<String> + Sync),
    ) -> BoxFuture<'a, Result<u64, BackendError>>;

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
                tx.execute(&q.throttle.update, state_params(name, &state).as_slice())
                    .await?;
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
        pairs: &'a str,
        actor: &'a str,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(async move {
            let q = &*self.queries;
            let mut tx = self.begin_as("unlocking an account").await?;
            let mut deleted = tx.execute(&q.throttle.delete, params![account]).await?;
            // The pair names `<pairs><hex>`: from `<pairs>` up to the prefix with its last
            // character ('.') raised by one ('/').
            let end = format!("{}/", pairs.strip_suffix('.').unwrap_or(pairs));
            deleted += tx
                .execute(&q.throttle.delete_range, params![pairs, end.as_str()])
                .await?;
            let audit = if deleted > 0 {
                vec![login_event(
                    now,
                    account,
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

    fn clear_names_pending(&self) -> BoxFuture<'_, Result<bool, BackendError>> {
        Box::pin(async move {
            let mut conn = self.read("checking the login throttle's row names").await?;
            let sql = RenameSql::new::<D>(&self.queries.prefix);
            Ok(conn.scalar(&sql.pending, params![]).await?.unwrap_or(0) != 0)
        })
    }

    fn rename_clear_rows<'a>(
        &'a self,
        rename: &'a (dyn Fn(&str) -> Option<String> + Sync),
    ) -> BoxFuture<'a, Result<u64, BackendError>> {
        Box::pin(async move {
            let q = &*self.queries;
            let sql = RenameSql::new::<D>(&q.prefix);
            let mut tx = self.begin_as("renaming the login throttle's rows").await?;
            if tx
                .scalar(&sql.pending_locked, params![])
                .await?
                .unwrap_or(0)
                == 0
            {
                // Another server did it meanwhile.
                tx.commit(&[]).await?;
                return Ok(0);
            }
            let rows = tx.fetch_all(&sql.clear_rows, params![]).await?;
            let mut renamed = 0u64;
            for row in &rows {
                let clear = key_name(row)?;
                let state = state_from_row(row)?;
                tx.execute(&q.throttle.delete, params![clear.as_str()])
                    .await?;
                renamed += 1;
                let Some(name) = rename(&clear) else {
                    continue; // not a name this crate wrote: nothing to keep
                };
                let inserted = tx
                    .execute(&sql.insert_state, state_params(&name, &state).as_slice())
                    .await?;
                if inserted == 0 {
                    let row = tx
                        .fetch_one(&q.throttle.lock, params![name.as_str()])
                        .await?;
                    let merged = state_from_row(&row)?.merge(state);
                    tx.execute(&q.throttle.update, state_params(&name, &merged).as_slice())
                        .await?;
                }
            }
            let names = tx.fetch_all(&sql.clear_audit_names, params![]).await?;
            for row in &names {
                let clear = row.text("name").map_err(|e| tx.err(e))?;
                let name = rename(&clear);
                tx.execute(&sql.rename_audit, params![name.as_deref(), clear.as_str()])
                    .await?;
            }
            tx.execute(&sql.done, params![]).await?;
            tx.commit(&[]).await?;
            Ok(renamed)
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

/// The statements that rename the rows written in clear before schema version 5: run once
/// per database, so built when needed rather than kept with the others.
struct RenameSql {
    pending: Arc<str>,
    pending_locked: Arc<str>,
    clear_rows: Arc<str>,
    insert_state: Arc<str>,
    clear_audit_names: Arc<str>,
    rename_audit: Arc<str>,
    done: Arc<str>,
}

impl RenameSql {
    fn new<D: Driver>(p: &str) -> Self {
        let lock = D::ROW_LOCK;
        let clear = |col: &str| {
            CLEAR_NAME_PATTERNS
                .iter()
                .map(|pattern| format!("{col} LIKE '{pattern}'"))
                .collect::<Vec<_>>()
                .join(" OR ")
        };
        let actions = "action IN ('login_lockout', 'login_unlock')";
        Self {
            pending: stmt(format!(
                "SELECT throttle_clear_names FROM {p}credvault_vault WHERE id = 1"
            )),
            pending_locked: stmt(format!(
                "SELECT throttle_clear_names FROM {p}credvault_vault WHERE id = 1{lock}"
            )),
            clear_rows: stmt(format!(
                "SELECT throttle_key, failures, window_start, lockouts, locked_until, last_seen \
                 FROM {p}credvault_throttle WHERE {}{lock}",
                clear("throttle_key")
            )),
            insert_state: stmt(format!(
                "INSERT INTO {p}credvault_throttle (throttle_key, failures, window_start, \
                 lockouts, locked_until, last_seen) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (throttle_key) DO NOTHING"
            )),
            clear_audit_names: stmt(format!(
                "SELECT DISTINCT name FROM {p}credvault_audit WHERE {actions} AND ({})",
                clear("name")
            )),
            rename_audit: stmt(format!(
                "UPDATE {p}credvault_audit SET name = $1 WHERE {actions} AND name = $2"
            )),
            done: stmt(format!(
                "UPDATE {p}credvault_vault SET throttle_clear_names = 0 WHERE id = 1"
            )),
        }
    }
}

fn stmt(sql: String) -> Arc<str> {
    Arc::from(sql)
}

/// The parameters of `update` and `insert_state`: the row's name, then its state.
fn state_params<'a>(name: &'a str, state: &KeyState) -> [Param<'a>; 6] {
    [
        Param::from(name),
        Param::from(i64::from(state.failures)),
        Param::from(millis(state.window_start)),
        Param::from(i64::from(state.lockouts)),
        Param::from(state.locked_until.map(millis)),
        Param::from(millis(state.last_seen)),
    ]
}

/// The actor of `login_lockout` audit rows.
pub(crate) const LOCKOUT_ACTOR: &str = "throttle";

/// An audit row about the throttle row `name` (`acct#<account pseudonym>`,
/// `pair#<account pseudonym>.<pair pseudonym>`, `addr#<address pseudonym>`): no tenant; the
/// row's name, never an account name or address, in `name`.
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
