//! Login as one call: throttle, verify (or a dummy verify), count, upgrade.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::SecretString;
use crate::password::throttle::{Decision, LoginThrottle};
use crate::password::{PasswordError, PasswordPolicy, Upgrade};
use crate::store::{Clock, SystemClock};

/// What a login attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum LoginOutcome {
    /// The password is right: log the user in. If `new_hash` is set, store it in place of the
    /// old hash (it was weaker than the policy).
    Success {
        /// The upgraded hash to store, if the stored one was weaker than the policy.
        new_hash: Option<String>,
    },
    /// The password is wrong, or the account does not exist: the two are indistinguishable,
    /// in the answer and in the time it took. Say "wrong account or password".
    Failure {
        /// Set when this failure locked the account (or address) out: for how long.
        locked_for: Option<Duration>,
    },
    /// Too many failures: the password was not checked. Say "try again later" (HTTP 429
    /// with `Retry-After`).
    Locked {
        /// Time until the lockout ends.
        retry_after: Duration,
    },
}

impl LoginOutcome {
    /// Whether the user may be logged in.
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Success { .. })
    }
}

/// A login could not be decided.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError<E: std::error::Error + 'static> {
    /// The throttle's store failed (the attempt was not verified, or its outcome not counted:
    /// treat it as a failure).
    #[error("login throttle: {0}")]
    Throttle(#[source] E),
    /// The stored hash cannot be read (the failure was counted), or the verify task failed.
    #[error(transparent)]
    Password(#[from] PasswordError),
}

/// Login as one call, in the only safe order: throttle check, then the verify (or, for an
/// account that does not exist, a dummy verify costing the same time), then the failure or
/// success counted, then the upgraded hash handed back to store. Hashing runs on tokio's
/// blocking pool, never on the runtime's worker threads.
///
/// Writing those steps by hand is where login code goes wrong: a verify before the throttle
/// check (brute force at full speed), an early return for unknown accounts (account
/// enumeration by timing), a success that is not recorded (lockouts that never reset), an
/// upgrade that is never stored.
///
/// ```
/// use std::net::{IpAddr, Ipv4Addr};
/// use credvault::SecretString;
/// use credvault::password::{InMemoryThrottle, LoginGuard, LoginOutcome, PasswordPolicy, Scheme, ThrottleConfig};
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let policy = PasswordPolicy::allow_weak_parameters_for_tests(Scheme::Bcrypt { cost: 4 })?;
/// let stored = policy.hash(&SecretString::from("correct horse"))?;
/// let guard = LoginGuard::new(policy, InMemoryThrottle::new(ThrottleConfig::default()));
/// let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
///
/// let outcome = guard.login("alice@example.com", ip, SecretString::from("correct horse"), Some(&stored)).await?;
/// assert!(outcome.is_success());
/// // Unknown account: the same answer as a wrong password, after the same time.
/// let outcome = guard.login("mallory@example.com", ip, SecretString::from("guess"), None).await?;
/// assert_eq!(outcome, LoginOutcome::Failure { locked_for: None });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct LoginGuard<T> {
    policy: PasswordPolicy,
    throttle: T,
    clock: Arc<dyn Clock>,
}

impl<T> LoginGuard<T>
where
    T: LoginThrottle + Sync,
    T::Error: std::error::Error + 'static,
{
    /// A guard verifying with `policy` and counting in `throttle` (share one throttle among
    /// all servers: `SqlThrottle` for a database they share).
    pub fn new(policy: PasswordPolicy, throttle: T) -> Self {
        Self {
            policy,
            throttle,
            clock: Arc::new(SystemClock),
        }
    }

    /// Reads the time from `clock` instead of the system clock: give it the vault's clock
    /// ([`Vault::clock`](crate::Vault::clock)) so that lockouts, retention and deadlines all
    /// follow one clock (a test's [`ManualClock`](crate::store::ManualClock) moves them all).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The policy.
    pub fn policy(&self) -> &PasswordPolicy {
        &self.policy
    }

    /// The throttle (for `unlock` and pruning).
    pub fn throttle(&self) -> &T {
        &self.throttle
    }

    /// One login attempt on `account` from `address` with `password`; `stored_hash` is the
    /// account's hash, or `None` if there is no such account. Reads the guard's clock (the
    /// system clock unless [`with_clock`](Self::with_clock) set another).
    ///
    /// # Errors
    ///
    /// [`LoginError::Throttle`] if the throttle's store fails; [`LoginError::Password`] if
    /// the stored hash cannot be read (after counting the failure) or the blocking pool is
    /// gone.
    pub async fn login(
        &self,
        account: &str,
        address: IpAddr,
        password: SecretString,
        stored_hash: Option<&str>,
    ) -> Result<LoginOutcome, LoginError<T::Error>> {
        self.login_at(
            account,
            address,
            password,
            stored_hash,
            self.clock.system_time(),
        )
        .await
    }

    /// [`login`](Self::login) at `now` (a shared clock, or a test's).
    ///
    /// # Errors
    ///
    /// As [`login`](Self::login).
    pub async fn login_at(
        &self,
        account: &str,
        address: IpAddr,
        password: SecretString,
        stored_hash: Option<&str>,
        now: SystemTime,
    ) -> Result<LoginOutcome, LoginError<T::Error>> {
        if let Decision::Deny { retry_after } = self
            .throttle
            .check(account, address, now)
            .await
            .map_err(LoginError::Throttle)?
        {
            return Ok(LoginOutcome::Locked { retry_after });
        }
        let verified = match stored_hash {
            Some(hash) => {
                self.policy
                    .verify_and_upgrade_async(password, hash.to_owned())
                    .await
            }
            None => self
                .policy
                .verify_dummy_async(password)
                .await
                .map(|_| Upgrade::Rejected),
        };
        match verified {
            Ok(Upgrade::Accepted { new_hash }) => {
                self.throttle
                    .record_success(account, address, now)
                    .await
                    .map_err(LoginError::Throttle)?;
                Ok(LoginOutcome::Success { new_hash })
            }
            Ok(Upgrade::Rejected) => Ok(LoginOutcome::Failure {
                locked_for: self.count_failure(account, address, now).await?,
            }),
            Err(e) => {
                // An unreadable stored hash still counts: it must not be a free guess.
                let _ = self.count_failure(account, address, now).await?;
                Err(e.into())
            }
        }
    }

    async fn count_failure(
        &self,
        account: &str,
        address: IpAddr,
        now: SystemTime,
    ) -> Result<Option<Duration>, LoginError<T::Error>> {
        match self
            .throttle
            .record_failure(account, address, now)
            .await
            .map_err(LoginError::Throttle)?
        {
            Decision::Deny { retry_after } => Ok(Some(retry_after)),
            Decision::Allow => Ok(None),
        }
    }
}
