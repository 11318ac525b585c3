//! [`RedisThrottle`]: the login throttle of [`crate::password::throttle`] with its counts in
//! Redis, where most fleets already keep their rate limits (feature `redis`).
//!
//! The rules are not re-implemented in a script: each failure reads the attempt's keys under
//! `WATCH`, applies the same function [`InMemoryThrottle`](crate::password::InMemoryThrottle)
//! uses, and writes them back in `MULTI`/`EXEC`; if another server changed a key meanwhile,
//! `EXEC` does nothing and the failure is counted again from the new state (optimistic
//! concurrency: no failure is lost, none counted twice). Every key expires on its own once
//! forgetting it changes no decision (the rule `SqlThrottle::prune` applies in SQL).
//!
//! Key names hold no account name and no address: each is a keyed hash under the vault's
//! [`PseudonymKey`] (`pair#<account>.<pair>`, `acct#...`, `addr#...`, `known#...`), so a
//! Redis dump or replica means nothing without the vault's key-encryption key. Keys an
//! earlier version named in clear are renamed by each handle's first call.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use redis::{AsyncConnectionConfig, Client, Value};

use crate::password::throttle::{
    Forget, Key, KeyState, attempt_waits, count_failure, decide, from_millis, is_known, keys,
    known_key, to_millis, to_stored,
};
use crate::password::{Decision, LoginThrottle, PseudonymKey, ThrottleConfig};

/// How often a failure is retried when other servers keep changing its keys.
const MAX_TRIES: u32 = 16;

/// The default prefix of the throttle's Redis keys.
pub const DEFAULT_PREFIX: &str = "credvault:throttle:";

/// A [`RedisThrottle`] failure. Never holds a password; Redis' own messages name commands,
/// not values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisThrottleError {
    /// Redis could not be reached or refused a command.
    #[error("redis login throttle: {0}")]
    Redis(#[from] redis::RedisError),
    /// A stored state is not what this build writes (another program uses the prefix?).
    #[error("redis login throttle: a stored state is not valid ({0})")]
    Corrupt(&'static str),
    /// Other servers changed the same keys on every one of many tries.
    #[error("redis login throttle: too many concurrent updates of one login's keys; try again")]
    Contention,
}

/// A [`LoginThrottle`] whose counts live in Redis, shared by every server that uses the same
/// Redis and prefix. Same rules and decisions as
/// [`InMemoryThrottle`](crate::password::InMemoryThrottle) (times are stored to the
/// millisecond); nothing to prune: keys expire by themselves.
///
/// Its keys are named with keyed hashes under `pseudonyms`, the vault's key from
/// `Vault::throttle_key` (every server sharing the Redis must use the same one).
///
/// ```no_run
/// use std::net::{IpAddr, Ipv4Addr};
/// use std::time::SystemTime;
/// use credvault::password::{Decision, LoginThrottle, RedisThrottle, ThrottleConfig};
/// use credvault::store::Vault;
///
/// # async fn run(vault: Vault) -> Result<(), Box<dyn std::error::Error>> {
/// let throttle = RedisThrottle::open(
///     "redis://127.0.0.1:6379/",
///     ThrottleConfig::default(),
///     vault.throttle_key().await?,
/// )?;
/// let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
/// if let Decision::Deny { retry_after } = throttle.check("alice", ip, SystemTime::now()).await? {
///     println!("locked for {retry_after:?}");
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisThrottle {
    client: Client,
    config: ThrottleConfig,
    prefix: String,
    pseudonyms: PseudonymKey,
    /// Whether the keys named in clear by an earlier version were renamed.
    renamed: Arc<AtomicBool>,
}

impl fmt::Debug for RedisThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: only the prefix and the settings.
        f.debug_struct("RedisThrottle")
            .field("prefix", &self.prefix)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RedisThrottle {
    /// A throttle on the Redis at `url` (`redis://[:password@]host:port/db`), keys under
    /// [`DEFAULT_PREFIX`] named with keyed hashes under `pseudonyms` (the vault's
    /// `Vault::throttle_key`). Connects lazily, on the first call.
    ///
    /// # Errors
    ///
    /// [`RedisThrottleError::Redis`] for a URL that does not parse.
    pub fn open(
        url: &str,
        config: ThrottleConfig,
        pseudonyms: PseudonymKey,
    ) -> Result<Self, RedisThrottleError> {
        Ok(Self {
            client: Client::open(url)?,
            config,
            prefix: DEFAULT_PREFIX.to_owned(),
            pseudonyms,
            renamed: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The same throttle with its keys under `prefix` (to share one Redis between
    /// applications, or tests).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The settings.
    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    /// A connection of this call's own: `WATCH` belongs to a connection, so a connection
    /// shared with other tasks would mix their transactions.
    async fn connection(&self) -> Result<redis::aio::MultiplexedConnection, RedisThrottleError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_response_timeout(Some(Duration::from_secs(3)));
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        if !self.renamed.load(Ordering::Acquire) {
            let n = self.rename_clear_keys(&mut conn).await?;
            if n > 0 {
                tracing::info!(
                    keys = n,
                    "credvault login throttle: redis keys named in clear renamed to their pseudonyms"
                );
            }
            self.renamed.store(true, Ordering::Release);
        }
        Ok(conn)
    }

    /// Renames the keys under the prefix that an earlier version named in clear
    /// (`pair:<address>/<account>`, `addr:`, `acct:`, `known:`) to their keyed-hash names,
    /// keeping each state and its expiry (merging into a key of the new name if there is one;
    /// deleting a name it cannot read). Run once per handle, by its first call: one `SCAN` of
    /// the keyspace. Returns how many keys were renamed or deleted.
    async fn rename_clear_keys(
        &self,
        conn: &mut redis::aio::MultiplexedConnection,
    ) -> Result<u64, RedisThrottleError> {
        let pattern = format!("{}*", glob_escape(&self.prefix));
        let mut clear = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut *conn)
                .await?;
            clear.extend(batch.into_iter().filter(|n| {
                n.strip_prefix(&self.prefix).is_some_and(|rest| {
                    ["pair:", "addr:", "acct:", "known:"]
                        .iter()
                        .any(|p| rest.starts_with(p))
                })
            }));
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut renamed = 0u64;
        for name in clear {
            let rest = name.get(self.prefix.len()..).unwrap_or_default();
            let new = Key::from_clear_name(rest).map(|k| self.name(&k));
            if self.rename_one(conn, &name, new.as_deref()).await? {
                renamed += 1;
            }
        }
        Ok(renamed)
    }

    /// Moves the state of key `clear` to `new` (merged with what `new` holds; dropped if
    /// `new` is `None`), keeping the longer expiry, in one `WATCH`ed transaction.
    async fn rename_one(
        &self,
        conn: &mut redis::aio::MultiplexedConnection,
        clear: &str,
        new: Option<&str>,
    ) -> Result<bool, RedisThrottleError> {
        for _ in 0..MAX_TRIES {
            let watched: Vec<&str> = std::iter::once(clear).chain(new).collect();
            redis::cmd("WATCH")
                .arg(&watched)
                .query_async::<()>(&mut *conn)
                .await?;
            let names: Vec<String> = watched.iter().map(|n| (*n).to_owned()).collect();
            let states = Self::read(conn, &names).await;
            let mut pipe = redis::pipe();
            pipe.atomic();
            // A state or a name this crate did not write: nothing to keep, only the DEL.
            if let (Ok(states), Some(new)) = (states, new) {
                let Some(old) = states.first().copied().flatten() else {
                    redis::cmd("UNWATCH").query_async::<()>(&mut *conn).await?;
                    return Ok(false); // gone meanwhile
                };
                let merged = match states.get(1).copied().flatten() {
                    Some(current) => current.merge(old),
                    None => old,
                };
                let ttl = |name: &str| redis::cmd("PTTL").arg(name).to_owned();
                let a: i64 = ttl(clear).query_async(&mut *conn).await?;
                let b: i64 = ttl(new).query_async(&mut *conn).await?;
                pipe.cmd("SET")
                    .arg(new)
                    .arg(encode(&merged))
                    .arg("PX")
                    .arg(a.max(b).max(1))
                    .ignore();
            }
            pipe.cmd("DEL").arg(clear).ignore();
            let done: Value = pipe.query_async(&mut *conn).await?;
            if !matches!(done, Value::Nil) {
                return Ok(true);
            }
        }
        Err(RedisThrottleError::Contention)
    }

    fn name(&self, key: &Key) -> String {
        format!("{}{}", self.prefix, key.store_name(&self.pseudonyms))
    }

    async fn read(
        conn: &mut redis::aio::MultiplexedConnection,
        names: &[String],
    ) -> Result<Vec<Option<KeyState>>, RedisThrottleError> {
        let values: Vec<Option<String>> = redis::cmd("MGET").arg(names).query_async(conn).await?;
        values
            .iter()
            .map(|v| v.as_deref().map(decode).transpose())
            .collect()
    }
}

impl LoginThrottle for RedisThrottle {
    type Error = RedisThrottleError;

    /// # Errors
    ///
    /// [`RedisThrottleError::Redis`] if Redis cannot be reached (3 s timeouts);
    /// [`RedisThrottleError::Corrupt`] for a stored state this build did not write.
    async fn check(
        &self,
        account: &str,
        address: IpAddr,
        now: SystemTime,
    ) -> Result<Decision, RedisThrottleError> {
        let now = to_stored(now);
        let keys = keys(account, address);
        let mut names: Vec<String> = keys.iter().map(|k| self.name(k)).collect();
        names.extend(known_key(account, address).map(|k| self.name(&k)));
        let mut conn = self.connection().await?;
        let mut states = Self::read(&mut conn, &names).await?;
        let known = if states.len() > keys.len() {
            states.pop().flatten()
        } else {
            None
        };
        let known = is_known(&self.config, known.as_ref(), now);
        let waits = states.iter().map(|s| s.and_then(|s| s.remaining(now)));
        Ok(decide(attempt_waits(&keys, waits, known)))
    }

    /// # Errors
    ///
    /// As [`check`](Self::check); [`RedisThrottleError::Contention`] if other servers changed
    /// the keys on each of 16 tries. Nothing is counted when it fails.
    async fn record_failure(
        &self,
        account: &str,
        address: IpAddr,
        now: SystemTime,
    ) -> Result<Decision, RedisThrottleError> {
        let now = to_stored(now);
        let keys = keys(account, address);
        let names: Vec<String> = keys.iter().map(|k| self.name(k)).collect();
        let known = known_key(account, address).map(|k| self.name(&k));
        let mut conn = self.connection().await?;
        let known = match known {
            Some(name) => Self::read(&mut conn, &[name]).await?.pop().flatten(),
            None => None,
        };
        let known = is_known(&self.config, known.as_ref(), now);
        for _ in 0..MAX_TRIES {
            redis::cmd("WATCH")
                .arg(&names)
                .query_async::<()>(&mut conn)
                .await?;
            let states = Self::read(&mut conn, &names).await?;
            let mut waits = Vec::with_capacity(keys.len());
            let mut pipe = redis::pipe();
            pipe.atomic();
            for ((key, name), state) in keys.iter().zip(&names).zip(states) {
                let mut state = state.unwrap_or(KeyState::new(now));
                waits.push(count_failure(
                    &self.config,
                    &mut state,
                    key.threshold(&self.config),
                    now,
                ));
                pipe.cmd("SET")
                    .arg(name)
                    .arg(encode(&state))
                    .arg("PX")
                    .arg(expiry_ms(&self.config, &state, now))
                    .ignore();
            }
            // EXEC answers nil when a watched key changed: nothing was written, try again.
            let done: Value = pipe.query_async(&mut conn).await?;
            if !matches!(done, Value::Nil) {
                return Ok(decide(attempt_waits(&keys, waits, known)));
            }
        }
        Err(RedisThrottleError::Contention)
    }

    /// # Errors
    ///
    /// As [`check`](Self::check).
    async fn record_success(
        &self,
        account: &str,
        address: IpAddr,
        now: SystemTime,
    ) -> Result<(), RedisThrottleError> {
        let Some(known) = known_key(account, address) else {
            return Ok(());
        };
        let now = to_stored(now);
        let mut conn = self.connection().await?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("DEL")
            .arg(self.name(&Key::Pair(account.to_owned(), address)))
            .arg(self.name(&Key::Account(account.to_owned())))
            .ignore()
            .cmd("SET")
            .arg(self.name(&known))
            .arg(encode(&KeyState::new(now)))
            .arg("PX")
            .arg(
                u64::try_from(self.config.known_address_ttl.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
            )
            .ignore();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Scans for the account's `pair#` keys (by their prefix, the account's pseudonym: a
    /// support action whose cost grows with the number of keys under the prefix).
    ///
    /// # Errors
    ///
    /// As [`check`](Self::check).
    async fn unlock(
        &self,
        account: &str,
        _actor: &str,
        _now: SystemTime,
    ) -> Result<bool, RedisThrottleError> {
        if account.is_empty() {
            return Ok(false);
        }
        let mut conn = self.connection().await?;
        let mut names = vec![self.name(&Key::Account(account.to_owned()))];
        let pattern = format!(
            "{}{}*",
            glob_escape(&self.prefix),
            Key::pairs_prefix(account, &self.pseudonyms)
        );
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            names.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let deleted: u64 = redis::cmd("DEL").arg(&names).query_async(&mut conn).await?;
        Ok(deleted > 0)
    }
}

/// `text` with Redis' glob characters escaped, for `SCAN MATCH`.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `failures,window_start,lockouts,locked_until,last_seen`, times in ms since the epoch,
/// `locked_until` empty when never locked.
fn encode(s: &KeyState) -> String {
    let locked = s.locked_until.map(|t| to_millis(t).to_string());
    format!(
        "{},{},{},{},{}",
        s.failures,
        to_millis(s.window_start),
        s.lockouts,
        locked.unwrap_or_default(),
        to_millis(s.last_seen)
    )
}

fn decode(text: &str) -> Result<KeyState, RedisThrottleError> {
    let bad = RedisThrottleError::Corrupt("expected five comma-separated fields");
    let mut parts = text.split(',');
    let mut next = || {
        parts
            .next()
            .ok_or(RedisThrottleError::Corrupt("too few fields"))
    };
    let int = |s: &str| {
        s.parse::<u64>()
            .ok()
            .and_then(from_millis)
            .ok_or(RedisThrottleError::Corrupt("not a time"))
    };
    let count = |s: &str| {
        s.parse::<u32>()
            .map_err(|_| RedisThrottleError::Corrupt("not a count"))
    };
    let failures = count(next()?)?;
    let window_start = int(next()?)?;
    let lockouts = count(next()?)?;
    let locked = next()?;
    let locked_until = if locked.is_empty() {
        None
    } else {
        Some(int(locked)?)
    };
    let last_seen = int(next()?)?;
    if parts.next().is_some() {
        return Err(bad);
    }
    Ok(KeyState {
        failures,
        window_start,
        lockouts,
        locked_until,
        last_seen,
    })
}

/// How long the key must live: until forgetting it changes no decision (its window is over
/// and its last lockout ended `max_lockout + window` ago), at least one millisecond.
fn expiry_ms(config: &ThrottleConfig, s: &KeyState, now: SystemTime) -> u64 {
    let forget = Forget::new(config);
    let after =
        |t: SystemTime, d: Duration| t.duration_since(now).unwrap_or_default().saturating_add(d);
    let mut left = after(s.window_start, forget.window_after);
    if let Some(locked) = s.locked_until {
        left = left.max(after(locked, forget.lockout_after));
    }
    u64::try_from(left.as_millis())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}
