//! Login throttling and lockout: after `max_failures` failures inside `window`, a key is
//! locked for a backoff that doubles with each lockout, up to `max_lockout`.
//!
//! Three keys are counted for each attempt, following django-axes' lessons:
//! - the pair (account, client address): 5 failures lock that pair;
//! - the client address alone, with a higher threshold, against password spraying across
//!   accounts. IPv6 addresses count per /64, the block one client usually holds;
//! - the account alone, across every address (20 failures by default), against an attacker
//!   who spreads guesses at one account over many addresses. An account lock holds back
//!   every address *except the ones the account logged in from* within
//!   [`ThrottleConfig::known_address_ttl`] (30 days): an attacker can keep an account locked
//!   for strangers, but cannot lock its owner out of their usual places. (A hard account lock
//!   would hand every attacker a denial of service against any user; a pure slowdown would
//!   let a botnet keep guessing. The bypass is keyed by address, so an attacker on the
//!   owner's own network shares it: the pair and address limits still hold there.)
//!
//! An empty account name is never counted (it would lock out everyone who leaves the field
//! blank). A success resets the pair and the account's count and marks the address as known
//! for the account; never the address's count (an attacker who owns one account must not be
//! able to clear the address counter by logging in to it). [`LoginThrottle::unlock`] is for
//! support staff: it clears an account's lock and its pairs' locks.
//!
//! Time comes in as a parameter (`now`), so tests are deterministic and a shared store can
//! use one clock. [`InMemoryThrottle`] counts in one process, in bounded memory; a cluster
//! of servers needs a shared implementation of [`LoginThrottle`]: `SqlThrottle` in
//! [`crate::backend`] (features `sqlite` / `postgres`) keeps the counts in the vault's
//! database and applies the very same rules (one implementation, in this module).
//!
//! The shared stores (SQL, Redis) never hold an account name or an address: each key's name
//! is a keyed hash under the vault's [`PseudonymKey`].
//! [`InMemoryThrottle`] keeps clear keys: its table is never written anywhere.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::password::PseudonymKey;

/// Whether a login attempt may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Decision {
    /// Go ahead and verify the password.
    Allow,
    /// Refuse without verifying; tell the client to retry after this long.
    Deny {
        /// Time until the lockout ends.
        retry_after: Duration,
    },
}

/// A store of login failures. Implemented in memory by [`InMemoryThrottle`]; designed so an
/// SQL-backed store can implement it too: methods are async (the in-memory one completes
/// at once), take `now` from the caller, and may fail with the store's own error.
///
/// Use: `check` before verifying the password (skip the verify on `Deny`), then
/// `record_failure` or `record_success` with the outcome.
pub trait LoginThrottle {
    /// The store's error (`Infallible` in memory).
    type Error;

    /// Whether an attempt on `account` from `address` may go ahead at `now`.
    fn check(
        &self,
        account: &str,
        address: IpAddr,
        now: SystemTime,
    ) -> impl Future<Output = Result<Decision, Self::Error>> + Send;

    /// Counts a failed attempt; answers `Deny` if this failure starts a lockout.
    fn record_failure(
        &self,
        account: &str,
        address: IpAddr,
        now: SystemTime,
    ) -> impl Future<Output = Result<Decision, Self::Error>> + Send;

    /// Counts a successful login: clears the (account, address) failures and lockouts and the
    /// account's count, and marks the address as known for the account.
    fn record_success(
        &self,
        account: &str,
        address: IpAddr,
        now: SystemTime,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Lifts an account's lockout (support staff, after checking who asks): its count across
    /// addresses and every (account, address) pair's. Address counts stay. Returns whether
    /// anything was locked or counted. `actor` names who did it (a store with an audit log
    /// records it there).
    fn unlock(
        &self,
        account: &str,
        actor: &str,
        now: SystemTime,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;
}

/// Thresholds and durations of a throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures of one (account, address) pair inside `window` that lock it (default 5).
    pub max_failures: u32,
    /// Failures from one address, any accounts, inside `window` that lock it (default 100).
    pub max_failures_per_address: u32,
    /// Failures of one account, from any addresses, inside `window` that lock it for every
    /// address it has not logged in from (default 20).
    pub max_failures_per_account: u32,
    /// How long an address the account logged in from stays known: the account's lock does
    /// not hold it back (default 30 days).
    pub known_address_ttl: Duration,
    /// The counting window (default 15 minutes).
    pub window: Duration,
    /// The first lockout (default 1 minute); each further lockout doubles it.
    pub base_lockout: Duration,
    /// The longest lockout (default 1 hour).
    pub max_lockout: Duration,
    /// Most keys kept in memory (default 100 000); beyond it, idle keys and then the
    /// least recently seen are evicted.
    pub capacity: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            max_failures: 5,
            max_failures_per_address: 100,
            max_failures_per_account: 20,
            known_address_ttl: Duration::from_secs(30 * 86_400),
            window: Duration::from_secs(15 * 60),
            base_lockout: Duration::from_secs(60),
            max_lockout: Duration::from_secs(60 * 60),
            capacity: 100_000,
        }
    }
}

/// What one attempt is counted against, or (`Known`) what a success leaves behind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    /// The (account, address) pair; the account is never empty.
    Pair(String, IpAddr),
    /// The address alone (IPv6 reduced to its /64).
    Address(IpAddr),
    /// The account alone, across addresses; never empty.
    Account(String),
    /// An address block the account logged in from (its `last_seen` is the last success);
    /// never counted.
    Known(String, IpAddr),
}

impl Key {
    /// The failures inside the window that lock this key.
    pub(crate) fn threshold(&self, config: &ThrottleConfig) -> u32 {
        match self {
            Self::Pair(..) => config.max_failures,
            Self::Address(_) => config.max_failures_per_address,
            Self::Account(_) => config.max_failures_per_account,
            Self::Known(..) => u32::MAX,
        }
    }
}

#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "redis")),
    allow(dead_code, reason = "used by the shared stores only")
)]
impl Key {
    /// The key's name in a shared store (a SQL row, a Redis key), made of keyed hashes
    /// ([`PseudonymKey`]) so that no account name or address is stored:
    /// `pair#<account>.<pair>`, `addr#<address>`, `acct#<account>`, `known#<pair>`, each
    /// `<...>` 32 hex digits. A pair's name starts with its account's pseudonym, so that
    /// [`LoginThrottle::unlock`] finds an account's pairs by prefix ([`Key::pairs_prefix`]);
    /// the pair's own part is not linkable to the address's pseudonym.
    ///
    /// No name written before pseudonyms (`pair:`, `addr:`, `acct:`, `known:`, see
    /// [`Key::from_clear_name`]) has this form: the kind is followed by `#`, never `:`.
    pub(crate) fn store_name(&self, pseudonyms: &PseudonymKey) -> String {
        match self {
            Self::Pair(account, address) => format!(
                "{}{}",
                Self::pairs_prefix(account, pseudonyms),
                pseudonyms.pair(b"pair", account, *address)
            ),
            Self::Address(address) => format!("addr#{}", pseudonyms.address(*address)),
            Self::Account(account) => format!("acct#{}", pseudonyms.pseudonym(account)),
            Self::Known(account, block) => {
                format!("known#{}", pseudonyms.pair(b"known", account, *block))
            }
        }
    }

    /// The start of the names of every (account, address) pair of `account`:
    /// `pair#<account>.`.
    pub(crate) fn pairs_prefix(account: &str, pseudonyms: &PseudonymKey) -> String {
        format!("pair#{}.", pseudonyms.pseudonym(account))
    }

    /// The key a name written before pseudonyms stood for (`pair:<address>/<account>`,
    /// `addr:<address>` or `addr:<IPv6 /64>/64`, `acct:<account>`,
    /// `known:<address block>/<account>`), to rename it; `None` for any other name.
    pub(crate) fn from_clear_name(name: &str) -> Option<Self> {
        let split = |rest: &str| {
            let (address, account) = rest.split_once('/')?;
            let address: IpAddr = address.parse().ok()?;
            (!account.is_empty()).then(|| (account.to_owned(), address))
        };
        if let Some(rest) = name.strip_prefix("pair:") {
            let (account, address) = split(rest)?;
            return Some(Self::Pair(account, address));
        }
        if let Some(rest) = name.strip_prefix("known:") {
            let (account, block) = split(rest)?;
            return Some(Self::Known(account, address_block(block)));
        }
        if let Some(rest) = name.strip_prefix("acct:") {
            return (!rest.is_empty()).then(|| Self::Account(rest.to_owned()));
        }
        let rest = name.strip_prefix("addr:")?;
        let address: IpAddr = rest.strip_suffix("/64").unwrap_or(rest).parse().ok()?;
        Some(Self::Address(address_block(address)))
    }
}

/// The patterns (SQL `LIKE`) of names written before pseudonyms.
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    allow(dead_code, reason = "used by the SQL throttle only")
)]
pub(crate) const CLEAR_NAME_PATTERNS: [&str; 4] = ["pair:%", "addr:%", "acct:%", "known:%"];

/// Unix milliseconds, as shared stores keep times (0 before the epoch, saturating far in
/// the future).
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "redis")),
    allow(dead_code, reason = "used by the shared stores only")
)]
pub(crate) fn to_millis(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The time `ms` Unix milliseconds stand for, `None` past what `SystemTime` holds.
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "redis")),
    allow(dead_code, reason = "used by the shared stores only")
)]
pub(crate) fn from_millis(ms: u64) -> Option<SystemTime> {
    std::time::UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

/// `now` cut to the millisecond, as shared stores keep it: every rule then compares stored
/// times alike.
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "redis")),
    allow(dead_code, reason = "used by the shared stores only")
)]
pub(crate) fn to_stored(now: SystemTime) -> SystemTime {
    from_millis(to_millis(now)).unwrap_or(now)
}

/// Whether `known` (the state of the attempt's [`Key::Known`], if any) says the account
/// logged in from this address within `known_address_ttl` of `now`.
pub(crate) fn is_known(config: &ThrottleConfig, known: Option<&KeyState>, now: SystemTime) -> bool {
    known.is_some_and(|k| elapsed(k.last_seen, now) <= config.known_address_ttl)
}

/// The lockouts that hold back an attempt: the wait of every counted key of `keys` (in
/// [`keys`]' order, `waits[i]` for `keys[i]`), except the account's from a known address.
pub(crate) fn attempt_waits(
    keys: &[Key],
    waits: impl IntoIterator<Item = Option<Duration>>,
    known: bool,
) -> Vec<Option<Duration>> {
    keys.iter()
        .zip(waits)
        .map(|(key, wait)| match key {
            Key::Account(_) if known => None,
            _ => wait,
        })
        .collect()
}

/// The counting state of one key: what [`count_failure`] reads and updates, kept in memory by
/// [`InMemoryThrottle`] and in a row by the SQL throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyState {
    /// Failures counted in the current window.
    pub(crate) failures: u32,
    /// When the current window started.
    pub(crate) window_start: SystemTime,
    /// Lockouts so far (the backoff exponent).
    pub(crate) lockouts: u32,
    /// End of the last lockout, if there was one.
    pub(crate) locked_until: Option<SystemTime>,
    /// The last failure counted.
    pub(crate) last_seen: SystemTime,
}

impl KeyState {
    /// A key never seen before, first counted at `now`.
    pub(crate) fn new(now: SystemTime) -> Self {
        Self {
            failures: 0,
            window_start: now,
            lockouts: 0,
            locked_until: None,
            last_seen: now,
        }
    }

    /// Time left in the key's lockout at `now`, if it is locked.
    pub(crate) fn remaining(&self, now: SystemTime) -> Option<Duration> {
        let until = self.locked_until?;
        until.duration_since(now).ok().filter(|d| !d.is_zero())
    }

    /// One state for two states of the same key (two names written before pseudonyms that
    /// map to one, or one such name and a row already renamed): never shorter a lockout, nor
    /// fewer failures, than either. A key never counted (a known-address mark) keeps its
    /// latest `last_seen`.
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres", feature = "redis")),
        allow(dead_code, reason = "used by the shared stores only")
    )]
    pub(crate) fn merge(self, other: Self) -> Self {
        Self {
            failures: self.failures.saturating_add(other.failures),
            window_start: self.window_start.min(other.window_start),
            lockouts: self.lockouts.max(other.lockouts),
            locked_until: self.locked_until.max(other.locked_until),
            last_seen: self.last_seen.max(other.last_seen),
        }
    }

    /// Whether forgetting this key at `now` changes no decision (see [`Forget`]). What the
    /// SQL throttle's `prune` deletes, written there in SQL.
    #[cfg(test)]
    pub(crate) fn is_forgettable(&self, config: &ThrottleConfig, now: SystemTime) -> bool {
        let forget = Forget::new(config);
        elapsed(self.window_start, now) > forget.window_after
            && self
                .locked_until
                .is_none_or(|until| elapsed(until, now) > forget.lockout_after)
    }
}

/// When a key can be forgotten without changing any decision: once its window started more
/// than `window_after` ago and its last lockout, if any, ended more than `lockout_after` ago,
/// [`count_failure`] treats it exactly as a key never seen (the window starts over and so
/// does the backoff).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Forget {
    /// `window`.
    pub(crate) window_after: Duration,
    /// `max_lockout + window`.
    pub(crate) lockout_after: Duration,
}

impl Forget {
    pub(crate) fn new(config: &ThrottleConfig) -> Self {
        Self {
            window_after: config.window,
            lockout_after: config.max_lockout.saturating_add(config.window),
        }
    }
}

/// Counts one failure against a key under `config` (`threshold` is
/// [`Key::threshold`]); returns the lockout it is under, if any. The one implementation of
/// the rules: a locked key stays locked (the failure only refreshes `last_seen`); a window
/// older than `config.window` starts over; a key quiet for `max_lockout + window` after its
/// last lockout starts its backoff over; reaching `threshold` locks for
/// `base_lockout x 2^(lockouts - 1)`, capped at `max_lockout`.
pub(crate) fn count_failure(
    config: &ThrottleConfig,
    entry: &mut KeyState,
    threshold: u32,
    now: SystemTime,
) -> Option<Duration> {
    entry.last_seen = now;
    if let Some(wait) = entry.remaining(now) {
        return Some(wait);
    }
    let forget = Forget::new(config);
    if elapsed(entry.window_start, now) > forget.window_after {
        entry.failures = 0;
        entry.window_start = now;
    }
    if entry
        .locked_until
        .is_some_and(|until| elapsed(until, now) > forget.lockout_after)
    {
        // Quiet since long after the last lockout: start the backoff over.
        entry.lockouts = 0;
        entry.locked_until = None;
    }
    entry.failures = entry.failures.saturating_add(1);
    if entry.failures < threshold.max(1) {
        return None;
    }
    entry.lockouts = entry.lockouts.saturating_add(1);
    entry.failures = 0;
    entry.window_start = now;
    let wait = backoff(config, entry.lockouts);
    entry.locked_until = now.checked_add(wait);
    Some(wait)
}

/// `base_lockout x 2^(lockouts - 1)`, capped at `max_lockout`.
fn backoff(config: &ThrottleConfig, lockouts: u32) -> Duration {
    let factor = 1u32
        .checked_shl(lockouts.saturating_sub(1))
        .unwrap_or(u32::MAX);
    config
        .base_lockout
        .saturating_mul(factor)
        .min(config.max_lockout)
}

/// The decision for the lockouts found on an attempt's keys: `Deny` for the longest.
pub(crate) fn decide(waits: impl IntoIterator<Item = Option<Duration>>) -> Decision {
    waits
        .into_iter()
        .flatten()
        .max()
        .map_or(Decision::Allow, |retry_after| Decision::Deny {
            retry_after,
        })
}

/// An in-process [`LoginThrottle`] in bounded memory. Counts are per process: behind a load
/// balancer, each server counts separately (an attacker gets `servers x max_failures`).
///
/// Evicting under memory pressure forgets counts; an attacker who fills the table from many
/// addresses can shorten lockouts. Locked keys are evicted last.
///
/// ```
/// use std::net::{IpAddr, Ipv4Addr};
/// use std::time::{Duration, SystemTime};
/// use credvault::password::{Decision, InMemoryThrottle, ThrottleConfig};
///
/// let throttle = InMemoryThrottle::new(ThrottleConfig::default());
/// let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
/// for _ in 0..4 {
///     assert_eq!(throttle.record_failure_at("alice", ip, now), Decision::Allow);
/// }
/// assert!(matches!(throttle.record_failure_at("alice", ip, now), Decision::Deny { .. }));
/// assert!(matches!(throttle.check_at("alice", ip, now), Decision::Deny { .. }));
/// assert_eq!(throttle.check_at("alice", ip, now + Duration::from_secs(61)), Decision::Allow);
/// ```
#[derive(Debug)]
pub struct InMemoryThrottle {
    config: ThrottleConfig,
    entries: Mutex<HashMap<Key, KeyState>>,
}

impl InMemoryThrottle {
    /// An empty throttle.
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Number of keys held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`LoginThrottle::check`], synchronously.
    pub fn check_at(&self, account: &str, address: IpAddr, now: SystemTime) -> Decision {
        let entries = self.lock();
        let keys = keys(account, address);
        let known = self.known(&entries, account, address, now);
        let waits = keys
            .iter()
            .map(|key| entries.get(key).and_then(|entry| entry.remaining(now)));
        decide(attempt_waits(&keys, waits, known))
    }

    fn known(
        &self,
        entries: &HashMap<Key, KeyState>,
        account: &str,
        address: IpAddr,
        now: SystemTime,
    ) -> bool {
        let state = known_key(account, address).and_then(|k| entries.get(&k));
        is_known(&self.config, state, now)
    }

    /// [`LoginThrottle::record_failure`], synchronously.
    pub fn record_failure_at(&self, account: &str, address: IpAddr, now: SystemTime) -> Decision {
        let mut entries = self.lock();
        let keys = keys(account, address);
        let known = self.known(&entries, account, address, now);
        let mut waits = Vec::with_capacity(keys.len());
        for key in &keys {
            let threshold = key.threshold(&self.config);
            if !entries.contains_key(key) {
                self.make_room(&mut entries, now);
            }
            let entry = entries.entry(key.clone()).or_insert(KeyState::new(now));
            waits.push(count_failure(&self.config, entry, threshold, now));
        }
        decide(attempt_waits(&keys, waits, known))
    }

    /// [`LoginThrottle::record_success`], synchronously.
    pub fn record_success_at(&self, account: &str, address: IpAddr, now: SystemTime) {
        let Some(known) = known_key(account, address) else {
            return;
        };
        let mut entries = self.lock();
        entries.remove(&Key::Pair(account.to_owned(), address));
        entries.remove(&Key::Account(account.to_owned()));
        if !entries.contains_key(&known) {
            self.make_room(&mut entries, now);
        }
        entries.insert(known, KeyState::new(now));
    }

    /// [`LoginThrottle::unlock`], synchronously.
    pub fn unlock_now(&self, account: &str) -> bool {
        let mut entries = self.lock();
        let before = entries.len();
        entries.retain(|key, _| match key {
            Key::Account(a) | Key::Pair(a, _) => a != account,
            _ => true,
        });
        entries.len() != before
    }

    /// Keeps the table under `capacity`: drops idle keys, then the least recently seen.
    fn make_room(&self, entries: &mut HashMap<Key, KeyState>, now: SystemTime) {
        if entries.len() < self.config.capacity.max(1) {
            return;
        }
        let idle_after = self.config.window.max(self.config.max_lockout);
        let known_ttl = self.config.known_address_ttl;
        entries.retain(|key, e| match key {
            Key::Known(..) => elapsed(e.last_seen, now) <= known_ttl,
            _ => e.remaining(now).is_some() || elapsed(e.last_seen, now) <= idle_after,
        });
        if entries.len() < self.config.capacity.max(1) {
            return;
        }
        // Still full: evict the oldest tenth, unlocked keys first.
        let mut by_age: Vec<(bool, SystemTime, Key)> = entries
            .iter()
            .map(|(k, e)| (e.remaining(now).is_some(), e.last_seen, k.clone()))
            .collect();
        by_age.sort_by_key(|a| (a.0, a.1));
        let evict = (entries.len() / 10).max(1);
        for (_, _, key) in by_age.into_iter().take(evict) {
            entries.remove(&key);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, KeyState>> {
        // A panic while holding the lock leaves counts that are still meaningful.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl LoginThrottle for InMemoryThrottle {
    type Error = Infallible;

    async fn check(
        &self,
        account: &str,
        address: IpAddr,
        now: SystemTime,
    ) -> Result<Decision, Infallible> {
        Ok(self.check_at(account, address, now))
    }

    async fn record_failure(
        &self,
        account: &str,
        address: IpAddr,
        now: SystemTime,
    ) -> Result<Decision, Infallible> {
        Ok(self.record_failure_at(account, address, now))
    }

    async fn record_success(
        &self,
        account: &str,
        address: IpAddr,
        now: SystemTime,
    ) -> Result<(), Infallible> {
        self.record_success_at(account, address, now);
        Ok(())
    }

    async fn unlock(
        &self,
        account: &str,
        _actor: &str,
        _now: SystemTime,
    ) -> Result<bool, Infallible> {
        Ok(self.unlock_now(account))
    }
}

/// The keys an attempt counts against: the pair and the account (unless the account is
/// empty) and the address (IPv6 reduced to its /64).
pub(crate) fn keys(account: &str, address: IpAddr) -> Vec<Key> {
    let mut keys = Vec::with_capacity(3);
    if !account.is_empty() {
        keys.push(Key::Pair(account.to_owned(), address));
        keys.push(Key::Account(account.to_owned()));
    }
    keys.push(Key::Address(address_block(address)));
    keys
}

/// The key that marks `address` (its block) as one `account` logged in from; `None` for an
/// empty account.
pub(crate) fn known_key(account: &str, address: IpAddr) -> Option<Key> {
    (!account.is_empty()).then(|| Key::Known(account.to_owned(), address_block(address)))
}

pub(crate) fn address_block(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
    }
}

/// `now - earlier`, or zero if the clock went backwards.
fn elapsed(earlier: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(earlier).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    /// A key that `is_forgettable` says may be dropped counts its next failure exactly as a
    /// fresh key would; one a second earlier does not (the bound is tight).
    #[test]
    fn a_forgettable_key_behaves_as_a_fresh_one() {
        let config = ThrottleConfig {
            max_failures: 2,
            ..ThrottleConfig::default()
        };
        let mut state = KeyState::new(t(0));
        let mut at = t(0);
        for _ in 0..4 {
            assert_eq!(count_failure(&config, &mut state, 2, at), None);
            let wait = count_failure(&config, &mut state, 2, at).expect("locked");
            at += wait;
        }
        assert_eq!(state.lockouts, 4);
        let until = state.locked_until.expect("locked");
        let horizon = until + config.max_lockout + config.window;
        assert!(!state.is_forgettable(&config, horizon));
        let mut kept = state;
        let _ = count_failure(&config, &mut kept, 2, horizon);
        let mut fresh = KeyState::new(horizon);
        let _ = count_failure(&config, &mut fresh, 2, horizon);
        assert_ne!(
            kept, fresh,
            "not yet forgettable: the backoff is remembered"
        );

        let later = horizon + Duration::from_secs(1);
        assert!(state.is_forgettable(&config, later));
        let mut kept = state;
        let mut fresh = KeyState::new(later);
        for step in 0..3 {
            let at = later + Duration::from_secs(step);
            assert_eq!(
                count_failure(&config, &mut kept, 2, at),
                count_failure(&config, &mut fresh, 2, at)
            );
            assert_eq!(kept, fresh);
        }
    }
}
