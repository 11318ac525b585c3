//! Issue 16, item 3 (second half): shred secrets in a PKCS#11 token (SoftHSM2 here), one
//! non-extractable token object per tenant. The store fails closed as the directory and
//! PostgreSQL stores do (no identity object, no fresh start), two sessions see the same
//! secrets, concurrent creation from two sessions and many threads makes exactly one object
//! per tenant and hands everyone the same secret, and a purge through it leaves a copy of the
//! vault's database taken before the purge unreadable for the purged tenant.
//!
//! Needs SoftHSM2 (`apt-get install softhsm2`): without it the tests say so and pass, unless
//! `CREDVAULT_REQUIRE_PKCS11=1` (CI sets it). The token lives in a temporary directory.

#![cfg(all(feature = "pkcs11", feature = "sqlite"))]
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

#[path = "common/softhsm.rs"]
mod softhsm;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Barrier, OnceLock};
use std::time::Duration;

use credvault::backend::SqliteBackend;
use credvault::envelope::{Pkcs11TenantKeys, TenantKeyStore};
use credvault::keys::KeyError;
use credvault::keys::pkcs11::Pkcs11Config;
use credvault::sqlx::{self, AssertSqlSafe};
use credvault::store::{ManualClock, OAuthToken, StoreError, Vault};
use credvault::{Keyring, SecretString, TenantId};

const TOKEN: &str = "credvault-shred";
const PIN: &str = "1234";
const T0: i64 = 1_763_856_000;

/// The module and a token initialised in a temporary directory, once per test process.
fn module() -> Option<PathBuf> {
    static MODULE: OnceLock<Option<PathBuf>> = OnceLock::new();
    MODULE
        .get_or_init(|| {
            let required = std::env::var("CREDVAULT_REQUIRE_PKCS11").as_deref() == Ok("1");
            let Some(module) = softhsm::module() else {
                assert!(
                    !required,
                    "CREDVAULT_REQUIRE_PKCS11=1 but SoftHSM2 is missing (the module or \
                     softhsm2-util)"
                );
                eprintln!(
                    "skipping the PKCS#11 tenant-key tests: SoftHSM2 is not installed \
                     (apt-get install softhsm2, or set CREDVAULT_PKCS11_MODULE)"
                );
                return None;
            };
            softhsm::init_token(TOKEN, PIN);
            Some(module)
        })
        .clone()
}

fn config(module: PathBuf, label: &str) -> Pkcs11Config {
    Pkcs11Config {
        module,
        token_label: TOKEN.to_owned(),
        pin: SecretString::from(PIN),
        key_label: label.to_owned(),
    }
}

fn tenant(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

#[test]
fn a_token_without_the_store_is_an_error_never_a_fresh_start() {
    let Some(module) = module() else { return };
    let err = Pkcs11TenantKeys::open(config(module.clone(), "never-made")).unwrap_err();
    assert!(matches!(err, KeyError::Store { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("holds no credvault tenant-key store"),
        "{err}"
    );
    let wrong_token = Pkcs11Config {
        token_label: "no-such-token".to_owned(),
        ..config(module.clone(), "made")
    };
    let err = Pkcs11TenantKeys::create(wrong_token).unwrap_err();
    assert!(matches!(err, KeyError::Invalid { .. }), "{err:?}");
    assert!(err.to_string().contains("no token labelled"), "{err}");
    let wrong_pin = Pkcs11Config {
        pin: SecretString::from("0000"),
        ..config(module.clone(), "made")
    };
    // A wrong PIN is refused by the token (SoftHSM2 keeps one login per process: only
    // checkable before the first login, so it is not asserted beyond "no store is made").
    if let Err(err) = Pkcs11TenantKeys::create(wrong_pin) {
        assert!(!err.to_string().contains("0000"), "the PIN leaked: {err}");
    }

    let made = Pkcs11TenantKeys::create(config(module.clone(), "made")).unwrap();
    let opened = Pkcs11TenantKeys::open(config(module.clone(), "made")).unwrap();
    let again = Pkcs11TenantKeys::create(config(module.clone(), "made")).unwrap();
    assert_eq!(made.identity().unwrap(), opened.identity().unwrap());
    assert_eq!(
        made.identity().unwrap(),
        again.identity().unwrap(),
        "create opens"
    );
    let other = Pkcs11TenantKeys::create(config(module, "other")).unwrap();
    assert_ne!(made.identity().unwrap(), other.identity().unwrap());
    let shown = format!("{made:?} {}", made.describe());
    assert!(!shown.contains(PIN), "{shown}");
    assert!(shown.contains(TOKEN) && shown.contains("made"), "{shown}");
}

#[test]
fn the_store_keeps_one_unreadable_object_per_tenant() {
    let Some(module) = module() else { return };
    let one = Pkcs11TenantKeys::create(config(module.clone(), "contract")).unwrap();
    // Another session on the same token: another server.
    let two = Pkcs11TenantKeys::open(config(module, "contract")).unwrap();
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    assert_eq!(one.get(&acme).unwrap(), None);
    let secret = one.get_or_create(&acme).unwrap();
    assert_eq!(secret.expose_secret().len(), 32);
    assert_eq!(one.get_or_create(&acme).unwrap(), secret, "created once");
    assert_eq!(two.get(&acme).unwrap(), Some(secret.clone()));
    assert_eq!(two.get_or_create(&acme).unwrap(), secret);
    let other = two.get_or_create(&globex).unwrap();
    assert_ne!(other, secret, "each tenant has its own secret");
    assert_eq!(one.object_count(&acme).unwrap(), 1);
    assert!(
        !one.object_value_readable(&acme).unwrap(),
        "the token handed out the tenant object's value"
    );

    two.destroy(&acme).unwrap();
    assert_eq!(one.get(&acme).unwrap(), None);
    assert_eq!(one.object_count(&acme).unwrap(), 0);
    two.destroy(&acme).unwrap();
    one.destroy(&acme).unwrap();
    assert_eq!(one.get(&globex).unwrap(), Some(other), "others untouched");
    let fresh = one.get_or_create(&acme).unwrap();
    assert_ne!(fresh, secret, "a destroyed secret never comes back");
}

#[test]
fn concurrent_creation_on_two_sessions_makes_one_object_per_tenant() {
    let Some(module) = module() else { return };
    let stores = [
        Arc::new(Pkcs11TenantKeys::create(config(module.clone(), "race")).unwrap()),
        Arc::new(Pkcs11TenantKeys::open(config(module, "race")).unwrap()),
    ];
    let tenants: Vec<TenantId> = (0..12).map(|i| tenant(&format!("race-{i}"))).collect();
    let threads = 6;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let store = Arc::clone(&stores[t % 2]);
            let (barrier, tenants) = (Arc::clone(&barrier), tenants.clone());
            std::thread::spawn(move || {
                barrier.wait();
                tenants
                    .iter()
                    .map(|id| store.get_or_create(id).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<Vec<_>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (i, id) in tenants.iter().enumerate() {
        let seen: BTreeSet<Vec<u8>> = results
            .iter()
            .map(|r| r[i].expose_secret().to_vec())
            .collect();
        assert_eq!(seen.len(), 1, "tenant {id}: threads got different secrets");
        assert_eq!(stores[0].object_count(id).unwrap(), 1, "tenant {id}");
        assert_eq!(
            stores[1].get(id).unwrap().unwrap().expose_secret(),
            seen.first().unwrap().as_slice()
        );
    }
}

#[tokio::test]
async fn purge_through_it_leaves_an_older_copy_of_the_database_unreadable() {
    let Some(module) = module() else { return };
    let store = Arc::new(
        tokio::task::spawn_blocking(move || {
            Pkcs11TenantKeys::create(config(module, "purge")).unwrap()
        })
        .await
        .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("vault.db");
    let kek = Keyring::generate().unwrap();
    let clock = ManualClock::new(T0);
    let open = |path: PathBuf| {
        let (kek, store, clock) = (kek.clone(), Arc::clone(&store), clock.clone());
        async move {
            let backend = SqliteBackend::connect(&path.display().to_string())
                .await
                .unwrap();
            let vault = Vault::builder(backend, kek, store).clock(clock).build();
            vault.migrate().await.unwrap();
            vault
        }
    };
    let vault = open(live.clone()).await;
    for tenant in ["acme", "globex"] {
        vault
            .tenant(tenant)
            .unwrap()
            .put(
                "github",
                &OAuthToken::bearer("github", SecretString::from(format!("gho_{tenant}"))),
            )
            .await
            .unwrap();
    }
    vault.check_keys().await.unwrap();
    // A backup of the vault's database taken before the purge.
    let copy = dir.path().join("backup.db");
    let sqlite = credvault::sqlx::SqlitePool::connect(&format!("sqlite://{}", live.display()))
        .await
        .unwrap();
    sqlx::query(AssertSqlSafe(format!("VACUUM INTO '{}'", copy.display())))
        .execute(&sqlite)
        .await
        .unwrap();
    sqlite.close().await;
    // The copy opens today, before the purge.
    let before = open(copy.clone()).await;
    before
        .tenant("acme")
        .unwrap()
        .get::<OAuthToken>("github")
        .await
        .unwrap();

    vault.delete_tenant("acme", "admin").await.unwrap();
    clock.advance(Duration::from_secs(31 * 86_400));
    let report = vault.purge().await.unwrap();
    assert_eq!(report.tenants, vec![tenant("acme")]);
    assert_eq!(store.object_count(&tenant("acme")).unwrap(), 0);

    // The old copy, with the same KEK and store: acme is gone for good, globex is not.
    let old = open(copy).await;
    let err = old
        .tenant("acme")
        .unwrap()
        .get::<OAuthToken>("github")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TenantShredded(_)), "{err:?}");
    let globex = old
        .tenant("globex")
        .unwrap()
        .get::<OAuthToken>("github")
        .await
        .unwrap();
    assert_eq!(globex.value.access_token.expose_secret(), "gho_globex");
}
