//! `Error::is_not_found` / `is_conflict` / `is_unavailable`: what an application maps to HTTP
//! 404 / 409 / 503, on real failures of a vault.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use credvault::backend::MemoryBackend;
use credvault::envelope::MemoryTenantKeys;
use credvault::store::{ApiKey, Vault};
use credvault::{Error, Keyring};

fn key() -> ApiKey {
    ApiKey {
        provider: "stripe".into(),
        key: "sk_live_x".to_owned().into(),
        label: None,
    }
}

#[tokio::test]
async fn each_failure_answers_one_kind() {
    let vault = Vault::builder(
        MemoryBackend::new(),
        Keyring::generate().unwrap(),
        MemoryTenantKeys::new(),
    )
    .build();
    vault.migrate().await.unwrap();
    let acme = vault.tenant("acme").unwrap();

    // Never stored anything, then stored something else: both "not found".
    let unknown = Error::from(acme.get::<ApiKey>("stripe").await.unwrap_err());
    acme.put("other", &key()).await.unwrap();
    let missing = Error::from(acme.get::<ApiKey>("stripe").await.unwrap_err());
    let v = acme.put("stripe", &key()).await.unwrap();
    let exists = Error::from(acme.put("stripe", &key()).await.unwrap_err());
    acme.update("stripe", &key(), v).await.unwrap();
    let stale = Error::from(acme.update("stripe", &key(), v).await.unwrap_err());

    for (e, kind) in [
        (&unknown, 404),
        (&missing, 404),
        (&exists, 409),
        (&stale, 409),
    ] {
        let got = match e {
            e if e.is_not_found() => 404,
            e if e.is_conflict() => 409,
            e if e.is_unavailable() => 503,
            _ => 500,
        };
        assert_eq!(got, kind, "{e}");
    }
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_read_only_database_is_unavailable() {
    use credvault::backend::SqliteBackend;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("v.db").display());
    let (kek, store) = (
        Keyring::generate().unwrap(),
        std::sync::Arc::new(MemoryTenantKeys::new()),
    );
    let vault = Vault::init(&url, kek.clone(), std::sync::Arc::clone(&store))
        .await
        .unwrap();
    vault
        .tenant("acme")
        .unwrap()
        .put("stripe", &key())
        .await
        .unwrap();
    let ro = SqliteBackend::connect_with(SqliteBackend::options(&url).unwrap().read_only(true))
        .await
        .unwrap();
    let ro = Vault::builder(ro, kek, store).build();
    let err = Error::from(
        ro.tenant("acme")
            .unwrap()
            .put("other", &key())
            .await
            .unwrap_err(),
    );
    assert!(
        err.is_unavailable() && !err.is_conflict() && !err.is_not_found(),
        "{err}"
    );
}
