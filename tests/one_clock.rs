//! Issue 13, item 3: one clock for instants, `Duration` for durations. A test's `ManualClock`
//! given to the vault moves everything the vault decides by time, and a `LoginGuard` given
//! the vault's clock (`Vault::clock`) follows it: a lockout ends when the vault's clock says
//! so, not when the wall clock does.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use credvault::backend::MemoryBackend;
use credvault::envelope::MemoryTenantKeys;
use credvault::password::{InMemoryThrottle, LoginGuard, LoginOutcome, Scheme, ThrottleConfig};
use credvault::store::{DAY, ManualClock, OAuthToken, StoreError, Vault};
use credvault::{Keyring, PasswordPolicy, SecretString};

const T0: i64 = 1_763_856_000;

#[tokio::test]
async fn a_lockout_follows_the_vaults_clock() {
    let clock = ManualClock::new(T0);
    let vault = Vault::builder(
        MemoryBackend::new(),
        Keyring::generate().unwrap(),
        MemoryTenantKeys::new(),
    )
    .clock(clock.clone())
    .build();
    vault.migrate().await.unwrap();

    let policy =
        PasswordPolicy::allow_weak_parameters_for_tests(Scheme::Bcrypt { cost: 4 }).unwrap();
    let stored = policy.hash(&SecretString::from("correct horse")).unwrap();
    let config = ThrottleConfig {
        max_failures: 2,
        base_lockout: Duration::from_secs(60),
        ..ThrottleConfig::default()
    };
    let guard = LoginGuard::new(policy, InMemoryThrottle::new(config)).with_clock(vault.clock());
    let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
    let attempt = |password: &'static str| {
        guard.login("alice", ip, SecretString::from(password), Some(&stored))
    };

    let _ = attempt("wrong").await.unwrap();
    let second = attempt("wrong").await.unwrap();
    assert_eq!(
        second,
        LoginOutcome::Failure {
            locked_for: Some(Duration::from_secs(60))
        }
    );
    assert!(matches!(
        attempt("correct horse").await.unwrap(),
        LoginOutcome::Locked { .. }
    ));
    // The wall clock has not moved a minute, the vault's clock has: the lockout is over.
    clock.advance(Duration::from_secs(61));
    assert!(attempt("correct horse").await.unwrap().is_success());
}

#[tokio::test]
async fn retention_settings_are_durations_and_the_deadline_follows_the_clock() {
    let clock = ManualClock::new(T0);
    let vault = Vault::builder(
        MemoryBackend::new(),
        Keyring::generate().unwrap(),
        MemoryTenantKeys::new(),
    )
    .clock(clock.clone())
    .grace_period(2 * DAY)
    .build();
    vault.migrate().await.unwrap();
    assert_eq!(vault.config().grace_period, Duration::from_secs(2 * 86_400));
    let acme = vault.tenant("acme").unwrap();
    acme.put(
        "github",
        &OAuthToken::bearer("github", SecretString::from("gho_clock")),
    )
    .await
    .unwrap();
    let purge_after = vault.delete_tenant("acme", "admin").await.unwrap();
    assert_eq!(
        purge_after,
        T0 + 2 * 86_400,
        "the vault clock's now + 2 days"
    );
    let again = OAuthToken::bearer("github", SecretString::from("gho_again"));
    match acme.put("github2", &again).await {
        Err(StoreError::TenantDeleted { purge_after, .. }) => {
            assert_eq!(
                purge_after,
                T0 + 2 * 86_400,
                "the deadline is the vault clock's now + 2 days"
            );
        }
        other => panic!("{other:?}"),
    }
}
