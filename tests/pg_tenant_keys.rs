//! Issue 16, item 3: shred secrets in a PostgreSQL database several servers share, apart from
//! the vault's data. It fails closed as the directory store does (no store, no fresh start; a
//! store swapped under a running process is refused), two servers see the same secrets, and a
//! purge through it leaves a copy of the vault's data taken before the purge unreadable for
//! the purged tenant, until a backup *of the store* from before the purge is restored (which
//! is why the store's backups must be short-lived: SECURITY.md).

#![cfg(all(feature = "postgres", feature = "sqlite"))]
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

#[path = "common/backup_copy.rs"]
mod backup_copy;
mod common;

use std::sync::Arc;

use backup_copy::BackupFixture;
use std::time::Duration;

use credvault::TenantId;
use credvault::envelope::{PgTenantKeys, TenantKeyStore};
use credvault::keys::KeyError;
use credvault::sqlx::{self, AssertSqlSafe};
use credvault::store::OAuthToken;

const T0: i64 = 1_763_856_000;

async fn schema() -> Option<(sqlx::PgPool, String)> {
    common::postgres_schema().await
}

async fn drop_schema(pool: &sqlx::PgPool, schema: &str) {
    sqlx::query(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(pool)
    .await
    .unwrap();
}

/// The store's blocking calls, off the test's runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test]
async fn a_database_without_a_store_is_an_error_never_a_fresh_start() {
    let Some((pool, schema)) = schema().await else {
        return;
    };
    let url = common::postgres_url();
    let s = schema.clone();
    let err = blocking(move || PgTenantKeys::open(&url, &s))
        .await
        .unwrap_err();
    assert!(matches!(err, KeyError::Store { .. }), "{err:?}");
    assert!(
        err.to_string().contains("no credvault shred-secret store"),
        "{err}"
    );
    let url = "postgres://postgres:hunter2@127.0.0.1:1/none".to_owned();
    let err = blocking(move || PgTenantKeys::open(&url, "x"))
        .await
        .unwrap_err();
    assert!(
        !err.to_string().contains("hunter2"),
        "the password leaked: {err}"
    );
    let url = "postgres://postgres@127.0.0.1:1/none?password=hunter3&sslmode=disable".to_owned();
    let err = blocking(move || PgTenantKeys::open(&url, "x"))
        .await
        .unwrap_err();
    assert!(
        !err.to_string().contains("hunter3"),
        "the password in a query parameter leaked: {err}"
    );
    drop_schema(&pool, &schema).await;
}

#[tokio::test]
async fn two_servers_share_the_secrets_and_a_swapped_store_is_refused() {
    let Some((pool, schema)) = schema().await else {
        return;
    };
    let (url, s) = (common::postgres_url(), schema.clone());
    let (one, two) = blocking(move || {
        let one = PgTenantKeys::create(&url, &s).unwrap();
        let two = PgTenantKeys::open(&url, &s).unwrap();
        (one, two)
    })
    .await;
    let (one, two) = (Arc::new(one), Arc::new(two));
    let (a, b) = (Arc::clone(&one), Arc::clone(&two));
    blocking(move || {
        let acme = TenantId::new("acme").unwrap();
        let secret = a.get_or_create(&acme).unwrap();
        assert_eq!(b.get(&acme).unwrap(), Some(secret.clone()));
        assert_eq!(b.get_or_create(&acme).unwrap(), secret, "created once");
        assert_eq!(a.identity().unwrap(), b.identity().unwrap());
        b.destroy(&acme).unwrap();
        assert_eq!(a.get(&acme).unwrap(), None);
        b.destroy(&acme).unwrap();
    })
    .await;
    // The store is dropped and made again under the running process: a new identity.
    drop_schema(&pool, &schema).await;
    let (url, s) = (common::postgres_url(), schema.clone());
    blocking(move || PgTenantKeys::create(&url, &s).unwrap()).await;
    let a = Arc::clone(&one);
    let err = blocking(move || a.get(&TenantId::new("acme").unwrap()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("identity changed"), "{err}");
    drop_schema(&pool, &schema).await;
}

#[tokio::test]
async fn purge_through_it_leaves_an_older_copy_of_the_data_unreadable() {
    let Some((pool, schema)) = schema().await else {
        return;
    };
    let (url, s) = (common::postgres_url(), schema.clone());
    let store = Arc::new(blocking(move || PgTenantKeys::create(&url, &s).unwrap()).await);
    let f = BackupFixture::new(store, T0);
    let vault = f.seeded().await;
    // Backups taken before the purge: of the vault's data, and of the store.
    let copy = f.backup("backup.db").await;
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TABLE {schema}.store_backup AS SELECT * FROM {schema}.credvault_shred_secrets"
    )))
    .execute(&pool)
    .await
    .unwrap();

    vault.delete_tenant("acme", "admin").await.unwrap();
    f.clock.advance(Duration::from_secs(31 * 86_400));
    let report = vault.purge().await.unwrap();
    assert_eq!(report.tenants, vec![TenantId::new("acme").unwrap()]);

    // The old copy of the data, with today's keys and store: acme is gone, globex is not.
    f.assert_only_acme_shredded(&copy).await;

    // Restoring the store's own old backup brings acme back: what bounds recovery is the
    // store's backup retention.
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {schema}.credvault_shred_secrets SELECT * FROM {schema}.store_backup \
         ON CONFLICT DO NOTHING"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let again = f.open(&copy).await;
    let acme = again
        .tenant("acme")
        .unwrap()
        .get::<OAuthToken>("github")
        .await
        .unwrap();
    assert_eq!(acme.value.access_token.expose_secret(), "gho_acme");
    drop_schema(&pool, &schema).await;
}
