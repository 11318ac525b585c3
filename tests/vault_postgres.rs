//! The vault on the real PostgreSQL server: several connection pools (standing for several
//! application servers) refreshing one token, and a copy of the rows taken before a purge.
//! Skipped with a message when PostgreSQL cannot be reached, unless
//! CREDVAULT_REQUIRE_POSTGRES=1 (set by .ci/run).

#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use credvault::backend::PgBackend;
use credvault::envelope::MemoryTenantKeys;
use credvault::store::{ManualClock, OAuthToken, StoreError, Vault};
use credvault::{Keyring, SecretString};

const T0: i64 = 1_763_856_000;

fn token(access: &str, expires_at: Option<i64>) -> OAuthToken {
    OAuthToken {
        refresh_token: Some(SecretString::from(format!("refresh-{access}"))),
        expires_at,
        ..OAuthToken::bearer("github", SecretString::from(access))
    }
}

struct Server {
    pool: sqlx::PgPool,
    schema: String,
    kek: Arc<Keyring>,
    shred: Arc<MemoryTenantKeys>,
    clock: ManualClock,
}

impl Server {
    async fn new() -> Option<Self> {
        let (pool, schema) = common::postgres_schema().await?;
        Some(Self {
            pool,
            schema,
            kek: Arc::new(Keyring::generate().unwrap()),
            shred: Arc::new(MemoryTenantKeys::new()),
            clock: ManualClock::new(T0),
        })
    }

    /// A vault with its own connection pool on `schema`.
    async fn vault(&self, schema: &str) -> Vault {
        let backend = PgBackend::connect_with_schema(&common::postgres_url(), schema)
            .await
            .unwrap();
        let vault = Vault::builder(backend, Arc::clone(&self.kek), Arc::clone(&self.shred))
            .clock(self.clock.clone())
            .build();
        vault.migrate().await.unwrap();
        vault
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_runs_once_across_several_connection_pools() {
    let Some(server) = Server::new().await else {
        return;
    };
    let first = server.vault(&server.schema).await;
    first
        .tenant("acme")
        .unwrap()
        .put("github", &token("old", Some(T0 + 10)))
        .await
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let vault = server.vault(&server.schema).await;
        for _ in 0..5 {
            let acme = vault.tenant("acme").unwrap();
            let calls = Arc::clone(&calls);
            tasks.push(tokio::spawn(async move {
                acme.refresh("github", Duration::from_secs(300), |old| async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    assert_eq!(old.refresh_token.unwrap().expose_secret(), "refresh-old");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok::<_, String>(token("new", Some(T0 + 3600)))
                })
                .await
                .unwrap()
                .value
            }));
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().access_token.expose_secret(), "new");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one refresh among 20 tasks on 4 pools"
    );
    common::drop_postgres_schema(server.pool.clone(), server.schema.clone()).await;
}

#[tokio::test]
async fn copy_of_the_rows_taken_before_purge_cannot_be_read_after_it() {
    let Some(server) = Server::new().await else {
        return;
    };
    let vault = server.vault(&server.schema).await;
    vault
        .tenant("acme")
        .unwrap()
        .put("github", &token("acme-secret", None))
        .await
        .unwrap();
    vault
        .tenant("globex")
        .unwrap()
        .put("github", &token("globex-secret", None))
        .await
        .unwrap();
    // A pg_dump-style copy: every credvault table, rows and all, into another schema.
    let copy = format!("{}_copy", server.schema);
    let mut sql = format!("CREATE SCHEMA \"{copy}\";");
    for table in [
        "credvault_schema",
        "credvault_tenants",
        "credvault_tenant_deks",
        "credvault_secrets",
        "credvault_audit",
        "credvault_keys",
        "credvault_vault",
    ] {
        sql.push_str(&format!(
            "CREATE TABLE \"{copy}\".{table} AS SELECT * FROM \"{}\".{table};",
            server.schema
        ));
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&server.pool)
        .await
        .unwrap();

    vault.delete_tenant("acme", "admin").await.unwrap();
    server.clock.advance(Duration::from_secs(30 * 86_400));
    assert_eq!(vault.purge().await.unwrap().tenants.len(), 1);

    let old = server.vault(&copy).await;
    let (rows,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM \"{copy}\".credvault_secrets WHERE tenant_id = 'acme'"
    )))
    .fetch_one(&server.pool)
    .await
    .unwrap();
    assert_eq!(rows, 1, "the copy still holds the sealed row");
    let err = old
        .tenant("acme")
        .unwrap()
        .get::<OAuthToken>("github")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TenantShredded(_)), "{err}");
    let globex = old
        .tenant("globex")
        .unwrap()
        .get::<OAuthToken>("github")
        .await
        .unwrap();
    assert_eq!(globex.value.access_token.expose_secret(), "globex-secret");
    let drop_copy = format!("DROP SCHEMA \"{copy}\" CASCADE");
    sqlx::raw_sql(sqlx::AssertSqlSafe(drop_copy))
        .execute(&server.pool)
        .await
        .unwrap();
    common::drop_postgres_schema(server.pool.clone(), server.schema.clone()).await;
}
