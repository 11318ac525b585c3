//! Progress of long vault jobs (re-encryption, legacy import), reported through a callback.

use std::time::{Duration, Instant};

/// A snapshot of a long job's progress, passed to the caller's callback after every batch.
///
/// `total` is an estimate taken when the job starts (records may be added or removed while
/// it runs), so `done` can pass it.
///
/// ```
/// use std::time::Duration;
/// use credvault::store::Progress;
///
/// let p = Progress::new(250, 1_000, Duration::from_secs(5));
/// assert_eq!(p.rate(), 50.0);
/// assert_eq!(p.eta(), Some(Duration::from_secs(15)));
/// assert_eq!(p.fraction(), 0.25);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Items finished so far (by this worker).
    pub done: u64,
    /// Items the job expected to handle when it started.
    pub total: u64,
    /// Time since the job started.
    pub elapsed: Duration,
}

impl Progress {
    /// A snapshot.
    pub fn new(done: u64, total: u64, elapsed: Duration) -> Self {
        Self {
            done,
            total,
            elapsed,
        }
    }

    /// Items per second so far (0 before the first item or the first millisecond).
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs <= 0.001 {
            return 0.0;
        }
        #[allow(
            clippy::cast_precision_loss,
            reason = "a rate for display; counts below 2^52 are exact"
        )]
        let done = self.done as f64;
        done / secs
    }

    /// Estimated time left at the current rate; `None` while no rate is known. Zero once
    /// `done` reaches `total`.
    pub fn eta(&self) -> Option<Duration> {
        let left = self.total.saturating_sub(self.done);
        if left == 0 {
            return Some(Duration::ZERO);
        }
        let rate = self.rate();
        if rate <= 0.0 {
            return None;
        }
        #[allow(
            clippy::cast_precision_loss,
            reason = "an estimate for display; counts below 2^52 are exact"
        )]
        let left = left as f64;
        Duration::try_from_secs_f64(left / rate).ok()
    }

    /// `done / total`, clamped to `0.0..=1.0` (1.0 when `total` is 0).
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            return 1.0;
        }
        #[allow(
            clippy::cast_precision_loss,
            reason = "a fraction for display; counts below 2^52 are exact"
        )]
        let f = self.done as f64 / self.total as f64;
        f.clamp(0.0, 1.0)
    }
}

/// Measures a job's progress from its start.
#[derive(Debug)]
pub(crate) struct ProgressClock {
    started: Instant,
    total: u64,
}

impl ProgressClock {
    /// Starts the clock for a job expecting `total` items.
    pub(crate) fn start(total: u64) -> Self {
        Self {
            started: Instant::now(),
            total,
        }
    }

    /// The snapshot after `done` items.
    pub(crate) fn at(&self, done: u64) -> Progress {
        Progress::new(done, self.total, self.started.elapsed())
    }
}
