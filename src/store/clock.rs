//! Time, from outside: the vault asks a [`Clock`], so tests can move it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the vault reads the time (Unix seconds).
pub trait Clock: Send + Sync + fmt::Debug {
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;

    /// The same instant as a [`SystemTime`] (for APIs that take one, such as the login
    /// throttle). The default is [`now`](Self::now) in whole seconds.
    fn system_time(&self) -> SystemTime {
        let secs = self.now();
        match u64::try_from(secs) {
            Ok(s) => UNIX_EPOCH
                .checked_add(Duration::from_secs(s))
                .unwrap_or(UNIX_EPOCH),
            Err(_) => UNIX_EPOCH
                .checked_sub(Duration::from_secs(secs.unsigned_abs()))
                .unwrap_or(UNIX_EPOCH),
        }
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }

    fn system_time(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told: for tests of expiry, grace periods and retention.
/// Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use credvault::store::{Clock, ManualClock};
///
/// let clock = ManualClock::new(1_000);
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now(), 1_060);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock at `now`.
    pub fn new(now: i64) -> Self {
        Self(Arc::new(AtomicI64::new(now)))
    }

    /// Sets the time.
    pub fn set(&self, now: i64) {
        self.0.store(now, Ordering::SeqCst);
    }

    /// Moves the time forward by `by` (whole seconds: the vault's instants are Unix seconds).
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(crate::store::secs(by), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}
