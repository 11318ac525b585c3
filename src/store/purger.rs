//! The built-in purge runner: the purge job on the application's tokio runtime, scheduled so
//! that every deletion lands before its promised deadline.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::{PurgeReport, StoreError, Vault};

/// The margin a [`PurgerConfig`] adds to its interval by default: five minutes.
pub const DEFAULT_PURGE_MARGIN: Duration = Duration::from_secs(5 * 60);

/// The interval a [`PurgerConfig`] has by default: one hour.
const DEFAULT_PURGE_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// How often the purge runs, and how far ahead of the deadlines it deletes.
///
/// A run at time `t` deletes every item whose promised deadline is at or before
/// `t + interval + margin` (the lead): the next run starts by `t + interval`, so an item is
/// always deleted before its deadline as long as a run takes less than `margin` and no run
/// is missed. The price is that a deleted tenant stays restorable for its grace period less
/// the lead, and derived data is deleted up to a lead early.
///
/// ```
/// use std::time::Duration;
/// use credvault::store::PurgerConfig;
///
/// let every_15_minutes = PurgerConfig::every(Duration::from_secs(15 * 60));
/// assert_eq!(every_15_minutes.lead(), Duration::from_secs(20 * 60));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgerConfig {
    /// Time between the starts of two runs. Default: one hour.
    pub interval: Duration,
    /// Extra lead on top of the interval, for a run's own duration, a late tick and clock
    /// differences between servers. Default: [`DEFAULT_PURGE_MARGIN`].
    pub margin: Duration,
}

impl Default for PurgerConfig {
    fn default() -> Self {
        Self::every(DEFAULT_PURGE_INTERVAL)
    }
}

impl PurgerConfig {
    /// A run every `interval`, with the default margin.
    pub fn every(interval: Duration) -> Self {
        Self {
            interval,
            margin: DEFAULT_PURGE_MARGIN,
        }
    }

    /// Sets the margin.
    pub fn margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// How far ahead of the deadlines a run deletes: interval + margin.
    pub fn lead(&self) -> Duration {
        self.interval.saturating_add(self.margin)
    }
}

/// What the purge runner has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgerStatus {
    /// Runs finished (successful or not).
    pub runs: u64,
    /// Runs that ended in an error (logged; retried at the next run).
    pub failures: u64,
    /// The vault clock's time (Unix seconds) when the last finished run started.
    pub last_started_at: Option<i64>,
    /// The last successful run's report.
    pub last_report: Option<PurgeReport>,
    /// The last failed run's error, as text (never a secret).
    pub last_error: Option<String>,
}

/// The running purge runner. Dropping it stops the runner after its current run (so keep it
/// for as long as the application runs); [`stop`](Self::stop) also waits for that.
#[derive(Debug)]
#[must_use = "dropping the handle stops the purge runner"]
pub struct PurgerHandle {
    stop: watch::Sender<bool>,
    status: watch::Receiver<PurgerStatus>,
    task: JoinHandle<()>,
}

impl PurgerHandle {
    /// What the runner has done so far.
    pub fn status(&self) -> PurgerStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees each run's status as it finishes.
    pub fn subscribe(&self) -> watch::Receiver<PurgerStatus> {
        self.status.clone()
    }

    /// Stops the runner and waits for its current run, if any, to finish.
    pub async fn stop(self) {
        let Self { stop, task, .. } = self;
        let _ = stop.send(true);
        // A run that panicked has nothing left to stop.
        let _ = task.await;
    }
}

impl Vault {
    /// Starts the purge runner on the current tokio runtime: [`purge_on_schedule`] at once,
    /// then every `config.interval`, each run deleting what falls due before the next one
    /// (see [`PurgerConfig`]). A failed run is logged through `tracing` (warn) and the work is
    /// retried at the next run; the runner never stops on an error. Call it once per process
    /// (several processes may each run one: the purge is safe to run concurrently).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use credvault::store::{PurgerConfig, Vault};
    ///
    /// # async fn run(vault: Vault) -> Result<(), credvault::store::StoreError> {
    /// let purger = vault.spawn_purger(PurgerConfig::every(Duration::from_secs(15 * 60)))?;
    /// // ... serve requests; at shutdown:
    /// purger.stop().await;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// [`purge_on_schedule`]: Self::purge_on_schedule
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidPurgeSchedule`] if the schedule cannot keep the vault's shortest
    /// deletion promise; [`StoreError::NoRuntime`] outside a tokio runtime.
    pub fn spawn_purger(&self, config: PurgerConfig) -> Result<PurgerHandle, StoreError> {
        self.schedule_lead(&config)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| StoreError::NoRuntime)?;
        let (stop, stopped) = watch::channel(false);
        let (status_tx, status) = watch::channel(PurgerStatus::default());
        let task = runtime.spawn(run(self.clone(), config, stopped, status_tx));
        Ok(PurgerHandle { stop, status, task })
    }
}

/// The runner's loop: a run, then wait for the next start time or a stop.
async fn run(
    vault: Vault,
    config: PurgerConfig,
    mut stopped: watch::Receiver<bool>,
    status: watch::Sender<PurgerStatus>,
) {
    loop {
        let next = tokio::time::Instant::now() + config.interval;
        let started_at = vault.now();
        let result = vault.purge_on_schedule(&config).await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, "credvault purge runner: the run failed; retrying at the next run");
        }
        status.send_modify(|s| {
            s.runs += 1;
            s.last_started_at = Some(started_at);
            match result {
                Ok(report) => s.last_report = Some(report),
                Err(e) => {
                    s.failures += 1;
                    s.last_error = Some(e.to_string());
                }
            }
        });
        // Woken by a stop (or the handle dropped) before the next start time: end.
        if tokio::time::timeout_at(next, stopped.changed())
            .await
            .is_ok()
        {
            return;
        }
    }
}
