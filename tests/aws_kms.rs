//! Issue 16, item 2: the KEK in AWS KMS (moto's server on 127.0.0.1 here), on every backend
//! this build has. Data keys are wrapped with KMS `Encrypt` under an encryption context naming
//! the tenant and DEK version; a wrong context does not open; rotation adds a second KMS key,
//! rewrap moves every data key to it, the first is scheduled for deletion once nothing needs
//! it; a KMS that does not answer is `Unavailable`, a disabled key `Denied`.
//!
//! Needs moto's server (`pip install 'moto[server]'`): without it the tests say so and pass,
//! unless `CREDVAULT_REQUIRE_KMS=1` (CI sets it). The key-touching conformance cases run on
//! KMS in tests/vault_conformance.rs.

#![cfg(feature = "aws-kms")]
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;
#[path = "common/moto.rs"]
mod moto;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use credvault::crypto::{Context, CryptoError};
use credvault::envelope::MemoryTenantKeys;
use credvault::keys::awskms::{AwsKmsKeys, KmsConfig};
use credvault::keys::{KeyError, KeyProvider};
use credvault::store::{ManualClock, OAuthToken, StoreError, Vault};
use credvault::{KeyVersion, SecretBytes, SecretString};

const T0: i64 = 1_763_856_000;

fn token(access: &str) -> OAuthToken {
    OAuthToken::bearer("github", SecretString::from(access))
}

async fn backends() -> Vec<common::Made> {
    let mut out = vec![common::Made::memory()];
    #[cfg(feature = "sqlite")]
    out.push(common::sqlite_made().await);
    #[cfg(feature = "postgres")]
    out.extend(common::postgres_made().await);
    out
}

#[test]
fn data_keys_are_wrapped_in_kms_bound_to_tenant_and_version() {
    let Some(endpoint) = moto::endpoint() else {
        return;
    };
    let (kms, key) = moto::provider_with_new_key(&endpoint);
    assert_eq!(kms.primary_version(), KeyVersion::FIRST);
    let dek = SecretBytes::copy_from_slice(&[7u8; 32]);
    let ctx = Context::wrapped_dek("acme", KeyVersion::FIRST).unwrap();
    let wrapped = kms.wrap_key(&dek, &ctx).unwrap();
    assert!(!wrapped.windows(32).any(|w| w == [7u8; 32]));
    let header = credvault::crypto::format::parse(&wrapped).unwrap().header;
    assert_eq!(header.key_version, KeyVersion::FIRST);
    assert_eq!(kms.unwrap_key(&wrapped, &ctx).unwrap(), dek);

    // Another tenant, another DEK version, a vault key's context: KMS refuses the context.
    for other in [
        Context::wrapped_dek("globex", KeyVersion::FIRST).unwrap(),
        Context::wrapped_dek("acme", KeyVersion::new(2)).unwrap(),
        Context::vault_key("acme").unwrap(),
    ] {
        let moved = kms.unwrap_key(&wrapped, &other);
        assert!(
            matches!(moved, Err(KeyError::Crypto(CryptoError::DecryptionFailed))),
            "{moved:?}"
        );
    }
    // The header is bound too: the same blob under another KEK version number does not open.
    let mut renumbered = wrapped.clone();
    renumbered[4..8].copy_from_slice(&2u32.to_be_bytes());
    assert!(kms.unwrap_key(&renumbered, &ctx).is_err());
    let mut altered = wrapped.clone();
    *altered.last_mut().unwrap() ^= 1;
    assert!(matches!(
        kms.unwrap_key(&altered, &ctx),
        Err(KeyError::Crypto(CryptoError::DecryptionFailed))
    ));
    // The fingerprint is the key's ARN, stable; Debug output shows no credentials.
    let fingerprint = kms.fingerprint(KeyVersion::FIRST).unwrap().unwrap();
    assert!(fingerprint.starts_with("aws-kms:arn:aws:kms:") && fingerprint.ends_with(&key));
    let shown = format!("{kms:?} {:?}", moto::config(&endpoint));
    assert!(!shown.contains(moto::SECRET_KEY), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vault_runs_on_kms_through_rotation_rewrap_and_destroy() {
    let Some(endpoint) = moto::endpoint() else {
        return;
    };
    for made in backends().await {
        let (kms, first_key) = moto::provider_with_new_key(&endpoint);
        let clock = ManualClock::new(T0);
        let tenant_keys = Arc::new(MemoryTenantKeys::new());
        let vault = Vault::builder(made.backend(), kms.clone(), Arc::clone(&tenant_keys))
            .clock(clock.clone())
            .build();
        vault.migrate().await.unwrap();
        for tenant in ["acme", "globex"] {
            let t = vault.tenant(tenant).unwrap();
            t.put("github", &token(&format!("gho_{tenant}")))
                .await
                .unwrap();
        }
        vault.check_keys().await.unwrap();

        // Rotate: a second KMS key becomes version 2; new data keys wrap under it.
        let second_key = AwsKmsKeys::create_key(&moto::config(&endpoint), "second").unwrap();
        assert_eq!(kms.rotate_to(&second_key).unwrap(), KeyVersion::new(2));
        vault.check_keys().await.unwrap();
        let t = vault.tenant("initech").unwrap();
        t.put("github", &token("gho_initech")).await.unwrap();
        let refused = vault
            .destroy_kek_with(KeyVersion::FIRST, |v| kms.schedule_deletion(v, 7))
            .await
            .unwrap_err();
        assert!(
            matches!(refused, StoreError::KeyInUse { count: 2, .. }),
            "{refused:?}"
        );
        let report = vault.rewrap_deks(|_| {}).await.unwrap();
        assert_eq!(report.rewrapped, 2, "{report:?}");
        clock.advance(Duration::from_secs(16 * 60));
        vault.check_keys().await.unwrap();
        vault
            .destroy_kek_with(KeyVersion::FIRST, |v| kms.schedule_deletion(v, 7))
            .await
            .unwrap();

        // The first key is pending deletion in KMS: a configuration still naming it is refused.
        let stale = KmsConfig {
            keys: [
                (KeyVersion::FIRST, first_key),
                (KeyVersion::new(2), second_key.clone()),
            ]
            .into(),
            ..moto::config(&endpoint)
        };
        let err = AwsKmsKeys::open(stale).unwrap_err();
        assert!(matches!(err, KeyError::Denied(_)), "{err:?}");

        // Another process configured with version 2 only reads every tenant.
        let other =
            AwsKmsKeys::open(moto::config(&endpoint).key(KeyVersion::new(2), second_key)).unwrap();
        let second = Vault::builder(made.backend(), other, Arc::clone(&tenant_keys))
            .clock(clock.clone())
            .build();
        second.check_keys().await.unwrap();
        for tenant in ["acme", "globex", "initech"] {
            let got = second
                .tenant(tenant)
                .unwrap()
                .get::<OAuthToken>("github")
                .await
                .unwrap();
            assert_eq!(
                got.value.access_token.expose_secret(),
                format!("gho_{tenant}")
            );
        }
        made.finish().await;
    }
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn another_key_under_the_same_version_is_refused() {
    let Some(endpoint) = moto::endpoint() else {
        return;
    };
    let (first, _) = moto::provider_with_new_key(&endpoint);
    let (impostor, _) = moto::provider_with_new_key(&endpoint);
    let made = common::sqlite_made().await;
    let tenant_keys = Arc::new(MemoryTenantKeys::new());
    let vault = Vault::builder(made.backend(), first, Arc::clone(&tenant_keys)).build();
    vault.migrate().await.unwrap();
    let t = vault.tenant("acme").unwrap();
    t.put("github", &token("gho_acme")).await.unwrap();
    vault.check_keys().await.unwrap();
    let wrong = Vault::builder(made.backend(), impostor, tenant_keys).build();
    let err = wrong.check_keys().await.unwrap_err();
    assert!(matches!(err, StoreError::KeyMismatch { .. }), "{err:?}");
}

#[test]
fn kms_that_does_not_answer_is_unavailable_within_the_budget() {
    let Some(endpoint) = moto::endpoint() else {
        return;
    };
    let (kms, key) = moto::provider_with_new_key(&endpoint);
    let ctx = Context::wrapped_dek("acme", KeyVersion::FIRST).unwrap();
    let wrapped = kms
        .wrap_key(&SecretBytes::copy_from_slice(&[1; 32]), &ctx)
        .unwrap();

    // Nobody listens: connection refused, retried, then Unavailable.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let err = AwsKmsKeys::open(moto::config(&closed_endpoint).key(KeyVersion::FIRST, key.clone()))
        .unwrap_err();
    assert!(matches!(err, KeyError::Unavailable(_)), "{err:?}");

    // A server that accepts and never answers: the call timeout ends it.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut budget = moto::config(&format!("http://{}", silent.local_addr().unwrap()))
        .key(KeyVersion::FIRST, key);
    budget.attempt_timeout = Duration::from_millis(300);
    budget.call_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let err = AwsKmsKeys::open(budget).unwrap_err();
    assert!(matches!(err, KeyError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(silent);

    drop((kms, wrapped));
}

#[test]
fn kms_that_goes_away_under_an_open_provider_is_unavailable() {
    let Some(_) = moto::endpoint() else { return };
    // A server of this test's own, stopped halfway.
    let (mut server, endpoint) = moto::start_server();
    let (kms, _) = moto::provider_with_new_key(&endpoint);
    let ctx = Context::wrapped_dek("acme", KeyVersion::FIRST).unwrap();
    let dek = SecretBytes::copy_from_slice(&[1; 32]);
    let wrapped = kms.wrap_key(&dek, &ctx).unwrap();
    assert_eq!(kms.unwrap_key(&wrapped, &ctx).unwrap(), dek);
    server.kill().unwrap();
    server.wait().unwrap();
    let started = Instant::now();
    let err = kms.unwrap_key(&wrapped, &ctx).unwrap_err();
    assert!(matches!(err, KeyError::Unavailable(_)), "{err:?}");
    let err = kms.wrap_key(&dek, &ctx).unwrap_err();
    assert!(matches!(err, KeyError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );
}
