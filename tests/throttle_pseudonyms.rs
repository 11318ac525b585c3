//! The login throttle's pseudonym key as the vault keeps it: made on first use, stored wrapped
//! under the KEK (`credvault_vault_keys`), the same for every process of the vault, rewrapped
//! by a KEK rotation (so the counts survive it), holding back the old KEK's destruction until
//! then, and out of reach of a vault with other keys. One body per backend: a SQLite file,
//! and PostgreSQL under the `postgres` feature (skipped if unreachable unless
//! `CREDVAULT_REQUIRE_POSTGRES=1`).
#![cfg(any(feature = "sqlite", feature = "postgres"))]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap too"
)]

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use credvault::backend::{Backend, BackendErrorKind, MemoryBackend, THROTTLE_PSEUDONYMS};
use credvault::envelope::DirTenantKeys;
use credvault::password::{Decision, LoginThrottle, ThrottleConfig};
use credvault::store::{StoreError, Vault};
use credvault::{KeyVersion, Keyring};

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn deny(secs: u64) -> Decision {
    Decision::Deny {
        retry_after: Duration::from_secs(secs),
    }
}

const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 70));

fn config() -> ThrottleConfig {
    ThrottleConfig {
        max_failures: 2,
        ..ThrottleConfig::default()
    }
}

async fn the_key_is_the_vaults_and_survives_kek_rotation(backend: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let shred = dir.path().join("tenant-keys");
    DirTenantKeys::create(&shred).unwrap();
    let vault = |kek: Keyring| {
        Vault::builder(
            Arc::clone(&backend),
            kek,
            DirTenantKeys::open(&shred).unwrap(),
        )
        .kek_quiet_period(Duration::ZERO)
        .build()
    };
    let mut kek = Keyring::generate().unwrap();
    let a = vault(kek.clone());
    a.migrate().await.unwrap();
    assert!(backend.vault_keys().await.unwrap().is_empty());

    // One call: the key is made, and the throttle counts in the vault's database.
    let throttle = a.login_throttle(config()).await.unwrap();
    let _ = throttle.record_failure("alice", IP, t(0)).await.unwrap();
    assert_eq!(
        throttle.record_failure("alice", IP, t(1)).await.unwrap(),
        deny(60)
    );
    let keys = backend.vault_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].name, THROTTLE_PSEUDONYMS);
    assert_eq!(keys[0].kek_version, KeyVersion::new(1));

    // Another process of the same vault: the same key, the same counts.
    let b = vault(kek.clone());
    let other = b.login_throttle(config()).await.unwrap();
    assert_eq!(other.check("alice", IP, t(3)).await.unwrap(), deny(58));
    assert_eq!(
        a.throttle_key().await.unwrap().pseudonym("alice"),
        b.throttle_key().await.unwrap().pseudonym("alice")
    );
    assert_eq!(backend.vault_keys().await.unwrap().len(), 1);

    // KEK rotation: the old KEK is still needed by the pseudonym key until the rewrap.
    let v2 = kek.rotate().unwrap();
    let c = vault(kek.clone());
    assert_eq!(c.kek_usage(KeyVersion::new(1)).await.unwrap(), 1);
    let err = c
        .destroy_kek(&mut kek, KeyVersion::new(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::KeyInUse { count: 1, .. }),
        "{err:?}"
    );
    let report = c.rewrap_deks(|_| {}).await.unwrap();
    assert_eq!((report.rewrapped, report.already_current), (1, 0));
    assert_eq!(c.kek_usage(KeyVersion::new(1)).await.unwrap(), 0);
    assert_eq!(c.kek_usage(v2).await.unwrap(), 1);
    c.destroy_kek(&mut kek, KeyVersion::new(1)).await.unwrap();

    // With only KEK 2: the same key, so the lockout is still seen.
    let d = vault(kek.clone());
    let after = d.login_throttle(config()).await.unwrap();
    assert_eq!(after.check("alice", IP, t(4)).await.unwrap(), deny(57));
    assert!(after.unlock("alice", "support:ann", t(5)).await.unwrap());
    assert_eq!(
        after.check("alice", IP, t(5)).await.unwrap(),
        Decision::Allow
    );

    // A vault with other keys gets neither the key nor the counts.
    let stranger = vault(Keyring::generate().unwrap());
    assert!(stranger.throttle_key().await.is_err());
    let elsewhere = Vault::builder(
        MemoryBackend::new(),
        Keyring::generate().unwrap(),
        credvault::envelope::MemoryTenantKeys::new(),
    )
    .build();
    elsewhere.migrate().await.unwrap();
    assert_ne!(
        elsewhere.throttle_key().await.unwrap().pseudonym("alice"),
        d.throttle_key().await.unwrap().pseudonym("alice")
    );
}

/// The memory backend has no throttle table: `login_throttle` says so (typed), while its
/// vault still has a pseudonym key (for a Redis throttle).
#[tokio::test]
async fn a_memory_vault_has_a_key_but_no_throttle_table() {
    let vault = Vault::builder(
        MemoryBackend::new(),
        Keyring::generate().unwrap(),
        credvault::envelope::MemoryTenantKeys::new(),
    )
    .build();
    vault.migrate().await.unwrap();
    let key = vault.throttle_key().await.unwrap();
    assert_eq!(
        key.pseudonym("alice"),
        vault.throttle_key().await.unwrap().pseudonym("alice")
    );
    match vault.login_throttle(config()).await {
        Err(StoreError::Backend(e)) => assert_eq!(e.kind(), BackendErrorKind::Other),
        other => panic!("{other:?}"),
    }
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_the_key_is_the_vaults_and_survives_kek_rotation() {
    let made = common::sqlite_made().await;
    the_key_is_the_vaults_and_survives_kek_rotation(made.backend()).await;
    made.finish().await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_key_is_the_vaults_and_survives_kek_rotation() {
    let Some(made) = common::postgres_made().await else {
        return;
    };
    the_key_is_the_vaults_and_survives_kek_rotation(made.backend()).await;
    made.finish().await;
}
