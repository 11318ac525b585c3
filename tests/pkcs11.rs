//! Issue 16, item 1: the KEK in a PKCS#11 token (SoftHSM2 here), on every backend this build
//! has. The token generates the key, sensitive and not extractable; the vault's data keys are
//! wrapped and unwrapped inside it; rotation creates a new token object, rewrap moves every
//! data key to it, destroy deletes the old one once nothing needs it; a second process sees
//! the rotation; a different key under the same label and version is refused.
//!
//! Needs SoftHSM2 (`apt-get install softhsm2`): without it the tests say so and pass, unless
//! `CREDVAULT_REQUIRE_PKCS11=1` (CI sets it). The token lives in a temporary directory.

#![cfg(feature = "pkcs11")]
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;
#[path = "common/softhsm.rs"]
mod softhsm;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use credvault::envelope::MemoryTenantKeys;
use credvault::keys::pkcs11::{Pkcs11Config, Pkcs11Keys, key_value_readable};
use credvault::keys::{KeyError, KeyProvider};
use credvault::store::{ManualClock, OAuthToken, StoreError, Vault};
use credvault::{KeyVersion, SecretBytes, SecretString, crypto::Context};

const TOKEN: &str = "credvault-test";
const PIN: &str = "1234";
const T0: i64 = 1_763_856_000;

/// The module and a token initialised in a temporary directory, once per test process.
fn module() -> Option<PathBuf> {
    static MODULE: OnceLock<Option<PathBuf>> = OnceLock::new();
    MODULE.get_or_init(init_token).clone()
}

fn init_token() -> Option<PathBuf> {
    let required = std::env::var("CREDVAULT_REQUIRE_PKCS11").as_deref() == Ok("1");
    let Some(module) = softhsm::module() else {
        assert!(
            !required,
            "CREDVAULT_REQUIRE_PKCS11=1 but SoftHSM2 is missing (the module or softhsm2-util)"
        );
        eprintln!(
            "skipping the PKCS#11 tests: SoftHSM2 is not installed (apt-get install softhsm2, \
             or set CREDVAULT_PKCS11_MODULE)"
        );
        return None;
    };
    softhsm::init_token(TOKEN, PIN);
    Some(module)
}

fn config(module: PathBuf, key_label: &str) -> Pkcs11Config {
    Pkcs11Config {
        module,
        token_label: TOKEN.to_owned(),
        pin: SecretString::from(PIN),
        key_label: key_label.to_owned(),
    }
}

fn token(access: &str) -> OAuthToken {
    OAuthToken::bearer("github", SecretString::from(access))
}

/// Every backend this build has: memory, a SQLite file, and PostgreSQL if reachable.
async fn backends() -> Vec<common::Made> {
    let mut out = vec![common::Made::memory()];
    #[cfg(feature = "sqlite")]
    out.push(common::sqlite_made().await);
    #[cfg(feature = "postgres")]
    out.extend(common::postgres_made().await);
    out
}

#[test]
fn the_kek_is_made_in_the_token_and_cannot_be_read_out() {
    let Some(module) = module() else { return };
    let keys = Pkcs11Keys::init(config(module, "unreadable")).unwrap();
    assert_eq!(keys.primary_version(), KeyVersion::FIRST);
    assert!(
        !key_value_readable(&keys, KeyVersion::FIRST).unwrap(),
        "the token handed out the KEK's value"
    );
    // Wrap and unwrap happen in the token, bound to the context.
    let dek = SecretBytes::copy_from_slice(&[7u8; 32]);
    let ctx = Context::wrapped_dek("acme", KeyVersion::FIRST).unwrap();
    let wrapped = keys.wrap_key(&dek, &ctx).unwrap();
    assert!(!wrapped.windows(32).any(|w| w == [7u8; 32]));
    assert_eq!(keys.unwrap_key(&wrapped, &ctx).unwrap(), dek);
    let other = Context::wrapped_dek("globex", KeyVersion::FIRST).unwrap();
    let moved = keys.unwrap_key(&wrapped, &other);
    assert!(matches!(moved, Err(KeyError::Crypto(_))), "{moved:?}");
    let mut altered = wrapped.clone();
    *altered.last_mut().unwrap() ^= 1;
    assert!(matches!(
        keys.unwrap_key(&altered, &ctx),
        Err(KeyError::Crypto(_))
    ));
    // Debug output names the token, never the PIN.
    let shown = format!("{keys:?} {:?}", config(PathBuf::from("/m"), "x"));
    assert!(!shown.contains(PIN), "{shown}");
}

#[test]
fn a_token_without_keys_is_an_error_never_a_fresh_start() {
    let Some(module) = module() else { return };
    let err = Pkcs11Keys::open(config(module.clone(), "never-made")).unwrap_err();
    assert!(err.to_string().contains("holds no key"), "{err}");
    Pkcs11Keys::init(config(module.clone(), "made-once")).unwrap();
    let err = Pkcs11Keys::init(config(module.clone(), "made-once")).unwrap_err();
    assert!(err.to_string().contains("already holds keys"), "{err}");
    let wrong_token = Pkcs11Config {
        token_label: "no-such-token".to_owned(),
        ..config(module, "made-once")
    };
    let err = Pkcs11Keys::open(wrong_token).unwrap_err();
    assert!(err.to_string().contains("no token labelled"), "{err}");
}

#[tokio::test]
async fn the_vault_runs_on_the_token_kek_through_rotation_rewrap_and_destroy() {
    let Some(module) = module() else { return };
    for (i, made) in backends().await.into_iter().enumerate() {
        let label = format!("vault-{i}");
        let hsm = Pkcs11Keys::init(config(module.clone(), &label)).unwrap();
        let clock = ManualClock::new(T0);
        let tenant_keys = std::sync::Arc::new(MemoryTenantKeys::new());
        let vault = Vault::builder(made.backend(), hsm.clone(), SharedKeys(tenant_keys.clone()))
            .clock(clock.clone())
            .build();
        vault.migrate().await.unwrap();
        for tenant in ["acme", "globex"] {
            vault
                .tenant(tenant)
                .unwrap()
                .put("github", &token(&format!("gho_{tenant}")))
                .await
                .unwrap();
        }
        vault.check_keys().await.unwrap();

        // Rotate in the token: the next data keys wrap under version 2.
        assert_eq!(hsm.rotate().unwrap(), KeyVersion::new(2));
        vault.check_keys().await.unwrap();
        vault
            .tenant("initech")
            .unwrap()
            .put("github", &token("gho_initech"))
            .await
            .unwrap();
        // Version 1 still wraps the first two tenants' keys: it cannot go.
        let refused = vault
            .destroy_kek_with(KeyVersion::FIRST, |v| hsm.destroy(v))
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
            .destroy_kek_with(KeyVersion::FIRST, |v| hsm.destroy(v))
            .await
            .unwrap();
        assert!(matches!(
            hsm.wrap_key(&SecretBytes::copy_from_slice(&[1; 32]), &Context::wrapped_dek("x", KeyVersion::FIRST).unwrap())
                .map(|w| credvault::crypto::format::parse(&w).unwrap().header.key_version),
            Ok(v) if v == KeyVersion::new(2)
        ));

        // Another process: its own session on the same token, a fresh vault handle.
        let other = Pkcs11Keys::open(config(module.clone(), &label)).unwrap();
        assert_eq!(other.primary_version(), KeyVersion::new(2));
        let second = Vault::builder(made.backend(), other, SharedKeys(tenant_keys.clone()))
            .clock(clock.clone())
            .build();
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

#[tokio::test]
async fn another_key_under_the_same_label_and_version_is_refused() {
    let Some(module) = module() else { return };
    let first = Pkcs11Keys::init(config(module.clone(), "identity-a")).unwrap();
    let impostor = Pkcs11Keys::init(config(module, "identity-b")).unwrap();
    assert_ne!(
        first.fingerprint(KeyVersion::FIRST).unwrap(),
        impostor.fingerprint(KeyVersion::FIRST).unwrap()
    );
    assert_eq!(
        first.fingerprint(KeyVersion::FIRST).unwrap(),
        first.fingerprint(KeyVersion::FIRST).unwrap(),
        "a fingerprint is stable"
    );
    let made = common::sqlite_made().await;
    let tenant_keys = std::sync::Arc::new(MemoryTenantKeys::new());
    let vault = Vault::builder(made.backend(), first, SharedKeys(tenant_keys.clone())).build();
    vault.migrate().await.unwrap();
    vault
        .tenant("acme")
        .unwrap()
        .put("github", &token("gho_acme"))
        .await
        .unwrap();
    vault.check_keys().await.unwrap();
    let wrong = Vault::builder(made.backend(), impostor, SharedKeys(tenant_keys)).build();
    let err = wrong.check_keys().await.unwrap_err();
    assert!(matches!(err, StoreError::KeyMismatch { .. }), "{err:?}");
}

/// One tenant-key store shared by two vault handles (two "processes").
#[derive(Debug, Clone)]
struct SharedKeys(std::sync::Arc<MemoryTenantKeys>);

impl credvault::envelope::TenantKeyStore for SharedKeys {
    fn get_or_create(&self, tenant: &credvault::TenantId) -> Result<SecretBytes, KeyError> {
        self.0.get_or_create(tenant)
    }
    fn get(&self, tenant: &credvault::TenantId) -> Result<Option<SecretBytes>, KeyError> {
        self.0.get(tenant)
    }
    fn destroy(&self, tenant: &credvault::TenantId) -> Result<(), KeyError> {
        self.0.destroy(tenant)
    }
    fn identity(&self) -> Result<String, KeyError> {
        self.0.identity()
    }
}
