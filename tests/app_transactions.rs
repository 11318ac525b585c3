//! Vault writes inside the application's own transaction (issue 13, item 1), on a real SQLite
//! file and on the real PostgreSQL server: the application's `users` row and the vault's
//! record with its audit row commit together or roll back together, and on SQLite the write
//! runs on the transaction's connection instead of waiting for a second write lock.
//!
//! The PostgreSQL tests are skipped with a message when the server cannot be reached, unless
//! CREDVAULT_REQUIRE_POSTGRES=1 (set by .ci/run).

#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use credvault::backend::{AuditQuery, BoxFuture};
use credvault::envelope::MemoryTenantKeys;
use credvault::store::{
    ManualClock, OAuthToken, ReadAudit, RevocationRequest, RevokeError, Revoker, StoreError, Vault,
};
use credvault::{Keyring, SecretString, TenantId};

const T0: i64 = 1_763_856_000;

/// What a write inside an open application transaction may take at most. On SQLite before
/// the `*_in` forms, the plain write waited 5 s for its own write lock and failed.
const QUICK: Duration = Duration::from_secs(1);

fn token(access: &str) -> OAuthToken {
    OAuthToken::bearer("github", SecretString::from(access))
}

/// The audit actions recorded for tenant `acme` (or `tenant`), oldest first.
async fn actions(vault: &Vault, tenant: &str) -> Vec<String> {
    let query = AuditQuery {
        tenant: Some(TenantId::new(tenant).unwrap()),
        ..AuditQuery::default()
    };
    let rows = vault.audit(&query).await.unwrap();
    rows.into_iter().map(|r| r.action.to_string()).collect()
}

/// The access token stored for `acme`/`github`, with its version, or `None`.
async fn stored(vault: &Vault) -> Option<(String, i64)> {
    match vault
        .tenant("acme")
        .unwrap()
        .get::<OAuthToken>("github")
        .await
    {
        Ok(v) => Some((v.value.access_token.expose_secret().to_owned(), v.version)),
        Err(e) if e.is_not_found() => None,
        Err(StoreError::TenantDeleted { .. }) => None,
        Err(e) => panic!("unexpected: {e}"),
    }
}

#[derive(Debug, Default)]
struct CountingRevoker(AtomicUsize);

impl Revoker for CountingRevoker {
    fn revoke<'a>(&'a self, req: &'a RevocationRequest) -> BoxFuture<'a, Result<(), RevokeError>> {
        Box::pin(async move {
            assert!(req.oauth_token().is_some());
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

/// The same tests for each database: `$pool` is the application's pool type, `$conn` its
/// connection type, `fixture()` makes the database (`None`: skipped).
macro_rules! transaction_suite {
    ($pool:ty, $conn:ty) => {
        /// Runs `op` in an application transaction that first inserts user `user`; commits or
        /// rolls back; returns how long `op` took.
        async fn in_tx(
            f: &Fixture,
            user: &str,
            commit: bool,
            op: impl AsyncFnOnce(&mut $conn),
        ) -> Duration {
            let mut tx = f.pool.begin().await.unwrap();
            let insert = format!("INSERT INTO {} (name) VALUES ($1)", f.users);
            sqlx::query(sqlx::AssertSqlSafe(insert))
                .bind(user)
                .execute(&mut *tx)
                .await
                .unwrap();
            let started = Instant::now();
            op(&mut *tx).await;
            let took = started.elapsed();
            if commit {
                tx.commit().await.unwrap();
            } else {
                tx.rollback().await.unwrap();
            }
            took
        }

        async fn has_user(f: &Fixture, user: &str) -> bool {
            let select = format!("SELECT COUNT(*) FROM {} WHERE name = $1", f.users);
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(select))
                .bind(user)
                .fetch_one(&f.pool)
                .await
                .unwrap();
            n == 1
        }

        #[tokio::test]
        async fn put_in_commits_with_the_app_row_and_quickly() {
            let Some(f) = fixture().await else { return };
            let acme = f.vault.tenant("acme").unwrap();
            let took = in_tx(&f, "ann", true, async |c| {
                assert_eq!(acme.put_in(c, "github", &token("a")).await.unwrap(), 1);
            })
            .await;
            assert!(
                took < QUICK,
                "put_in took {took:?} inside the open transaction"
            );
            assert!(has_user(&f, "ann").await);
            assert_eq!(stored(&f.vault).await, Some(("a".into(), 1)));
            assert_eq!(
                actions(&f.vault, "acme").await,
                ["tenant_create", "put", "get"]
            );
            f.finish().await;
        }

        #[tokio::test]
        async fn put_in_rolls_back_with_the_app_row() {
            let Some(f) = fixture().await else { return };
            let acme = f.vault.tenant("acme").unwrap();
            let took = in_tx(&f, "ann", false, async |c| {
                acme.put_in(c, "github", &token("a")).await.unwrap();
                // Inside the transaction the record is there.
                let seen = acme.get_in::<OAuthToken, _>(c, "github").await.unwrap();
                assert_eq!(seen.value.access_token.expose_secret(), "a");
            })
            .await;
            assert!(took < QUICK, "put_in + get_in took {took:?}");
            assert!(!has_user(&f, "ann").await);
            assert_eq!(stored(&f.vault).await, None);
            assert_eq!(actions(&f.vault, "acme").await, Vec::<String>::new());
            f.finish().await;
        }

        #[tokio::test]
        async fn a_tenant_created_in_a_rolled_back_transaction_leaves_no_key_behind() {
            let Some(f) = fixture().await else { return };
            let acme = f.vault.tenant("acme").unwrap();
            in_tx(&f, "ann", false, async |c| {
                acme.put_in(c, "github", &token("lost")).await.unwrap();
            })
            .await;
            // Same second (the clock is fixed): the tenant made now has the same creation
            // time as the rolled-back one, and must be sealed with its own data key.
            acme.put("github", &token("kept")).await.unwrap();
            assert_eq!(stored(&f.vault).await, Some(("kept".into(), 1)));
            // A vault with empty caches (another process) opens it with the stored key.
            let other = f.other_vault();
            let got = other
                .tenant("acme")
                .unwrap()
                .get::<OAuthToken>("github")
                .await;
            assert_eq!(got.unwrap().value.access_token.expose_secret(), "kept");
            f.finish().await;
        }

        #[tokio::test]
        async fn every_write_form_commits_or_rolls_back_with_the_app_row() {
            let Some(f) = fixture().await else { return };
            let acme = f.vault.tenant("acme").unwrap();
            acme.put("github", &token("a")).await.unwrap();
            let mut before = actions(&f.vault, "acme").await;

            // upsert_in replaces: version 2.
            for commit in [false, true] {
                in_tx(&f, "u-upsert", commit, async |c| {
                    assert_eq!(acme.upsert_in(c, "github", &token("b")).await.unwrap(), 2);
                })
                .await;
                assert_eq!(has_user(&f, "u-upsert").await, commit);
            }
            assert_eq!(stored(&f.vault).await, Some(("b".into(), 2)));
            before.extend(["upsert".to_owned(), "get".to_owned()]);
            assert_eq!(actions(&f.vault, "acme").await, before);

            // update_in: compare-and-swap on version 2.
            in_tx(&f, "u-update", false, async |c| {
                assert_eq!(
                    acme.update_in(c, "github", &token("c"), 2).await.unwrap(),
                    3
                );
            })
            .await;
            assert!(!has_user(&f, "u-update").await);
            assert_eq!(stored(&f.vault).await, Some(("b".into(), 2)));
            in_tx(&f, "u-update", true, async |c| {
                assert_eq!(
                    acme.update_in(c, "github", &token("c"), 2).await.unwrap(),
                    3
                );
            })
            .await;
            assert!(has_user(&f, "u-update").await);
            assert_eq!(stored(&f.vault).await, Some(("c".into(), 3)));
            before.extend(["get".to_owned(), "update".to_owned(), "get".to_owned()]);
            assert_eq!(actions(&f.vault, "acme").await, before);

            // delete_in.
            for commit in [false, true] {
                in_tx(&f, "u-delete", commit, async |c| {
                    assert!(acme.delete_in::<OAuthToken, _>(c, "github").await.unwrap());
                })
                .await;
                assert_eq!(has_user(&f, "u-delete").await, commit);
                assert_eq!(stored(&f.vault).await.is_none(), commit);
            }
            before.extend(["get".to_owned(), "delete".to_owned()]);
            assert_eq!(actions(&f.vault, "acme").await, before);

            // disconnect_in: deleted in the transaction, revoked after the commit.
            acme.put("github", &token("d")).await.unwrap();
            let mut pending = None;
            for commit in [false, true] {
                in_tx(&f, "u-disconnect", commit, async |c| {
                    let revocations = acme.disconnect_in(c, "github").await.unwrap();
                    assert_eq!(revocations.report().deleted, 1);
                    assert_eq!(revocations.requests().len(), 1);
                    pending = Some(revocations);
                })
                .await;
                assert_eq!(has_user(&f, "u-disconnect").await, commit);
                assert_eq!(stored(&f.vault).await.is_none(), commit);
            }
            let revoker = CountingRevoker::default();
            let report = pending.unwrap().revoke(&revoker).await.unwrap();
            assert_eq!((report.deleted, report.revoked), (1, 1));
            assert_eq!(revoker.0.load(Ordering::SeqCst), 1);
            let after: Vec<String> = actions(&f.vault, "acme").await;
            assert_eq!(after[after.len() - 2..], ["disconnect", "revoke"]);

            // delete_tenant_in.
            acme.put("github", &token("e")).await.unwrap();
            for commit in [false, true] {
                in_tx(&f, "u-tenant", commit, async |c| {
                    f.vault.delete_tenant_in(c, "acme", "admin").await.unwrap();
                })
                .await;
                assert_eq!(has_user(&f, "u-tenant").await, commit);
                let deleted = matches!(
                    acme.get::<OAuthToken>("github").await,
                    Err(StoreError::TenantDeleted { .. })
                );
                assert_eq!(deleted, commit);
            }
            assert_eq!(
                actions(&f.vault, "acme").await.last().unwrap(),
                "tenant_delete"
            );
            f.finish().await;
        }

        #[tokio::test]
        async fn a_refused_write_leaves_the_app_transaction_usable() {
            let Some(f) = fixture().await else { return };
            let acme = f.vault.tenant("acme").unwrap();
            in_tx(&f, "ann", true, async |c| {
                acme.put_in(c, "github", &token("a")).await.unwrap();
                let again = acme.put_in(c, "github", &token("b")).await.unwrap_err();
                assert!(matches!(again, StoreError::AlreadyExists { .. }), "{again}");
                let stale = acme
                    .update_in(c, "github", &token("b"), 7)
                    .await
                    .unwrap_err();
                assert!(stale.is_conflict(), "{stale}");
            })
            .await;
            assert!(has_user(&f, "ann").await);
            assert_eq!(stored(&f.vault).await, Some(("a".into(), 1)));
            f.finish().await;
        }
    };
}

mod sqlite {
    use super::*;
    use credvault::backend::SqliteBackend;
    use sqlx::SqlitePool;

    struct Fixture {
        pool: SqlitePool,
        users: String,
        vault: Vault,
        backend: SqliteBackend,
        kek: Arc<Keyring>,
        shred: Arc<MemoryTenantKeys>,
        _dir: tempfile::TempDir,
    }

    impl Fixture {
        fn other_vault(&self) -> Vault {
            Vault::builder(
                self.backend.clone(),
                Arc::clone(&self.kek),
                Arc::clone(&self.shred),
            )
            .clock(ManualClock::new(T0))
            .build()
        }

        async fn finish(self) {}
    }

    /// The application's own pool on a SQLite file (WAL, 5 s busy timeout), its `users`
    /// table, and the vault built on the same pool.
    async fn fixture() -> Option<Fixture> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let options = SqliteBackend::options(path.to_str().unwrap()).unwrap();
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .connect_with(options)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)")
            .execute(&pool)
            .await
            .unwrap();
        let backend = SqliteBackend::from_pool(pool.clone());
        let kek = Arc::new(Keyring::generate().unwrap());
        let shred = Arc::new(MemoryTenantKeys::new());
        // Reads audited as they happen, so the audit log's order is the test's.
        let vault = Vault::builder(backend.clone(), Arc::clone(&kek), Arc::clone(&shred))
            .clock(ManualClock::new(T0))
            .read_audit(ReadAudit::Synchronous)
            .build();
        vault.migrate().await.unwrap();
        Some(Fixture {
            pool,
            users: "users".to_owned(),
            vault,
            backend,
            kek,
            shred,
            _dir: dir,
        })
    }

    transaction_suite!(SqlitePool, sqlx::SqliteConnection);

    #[tokio::test]
    async fn a_connection_to_another_database_is_refused() {
        let f = fixture().await.unwrap();
        let memory = Vault::builder(
            credvault::backend::MemoryBackend::new(),
            Keyring::generate().unwrap(),
            MemoryTenantKeys::new(),
        )
        .build();
        let mut conn = f.pool.acquire().await.unwrap();
        let err = memory
            .tenant("acme")
            .unwrap()
            .put_in(&mut *conn, "github", &token("a"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::WrongConnection {
                    vault: "non-sql",
                    connection: "sqlite"
                }
            ),
            "{err}"
        );
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn a_sqlite_connection_is_refused_by_a_postgres_vault() {
        let Some(made) = common::postgres_made().await else {
            return;
        };
        let vault = Vault::builder(
            made.backend(),
            Keyring::generate().unwrap(),
            MemoryTenantKeys::new(),
        )
        .build();
        vault.migrate().await.unwrap();
        let f = fixture().await.unwrap();
        let mut tx = f.pool.begin().await.unwrap();
        let err = vault
            .tenant("acme")
            .unwrap()
            .put_in(&mut *tx, "github", &token("a"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::WrongConnection {
                    vault: "postgres",
                    connection: "sqlite"
                }
            ),
            "{err}"
        );
        tx.rollback().await.unwrap();
        made.finish().await;
    }

    /// A connection with no transaction open: the write runs in a transaction of its own.
    #[tokio::test]
    async fn a_bare_connection_gets_a_transaction_of_its_own() {
        let f = fixture().await.unwrap();
        let mut conn = f.pool.acquire().await.unwrap();
        let acme = f.vault.tenant("acme").unwrap();
        acme.put_in(&mut *conn, "github", &token("a"))
            .await
            .unwrap();
        drop(conn);
        assert_eq!(stored(&f.vault).await, Some(("a".into(), 1)));
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use credvault::backend::PgBackend;
    use sqlx::PgPool;

    struct Fixture {
        pool: PgPool,
        schema: String,
        users: String,
        vault: Vault,
        backend: PgBackend,
        kek: Arc<Keyring>,
        shred: Arc<MemoryTenantKeys>,
    }

    impl Fixture {
        fn other_vault(&self) -> Vault {
            Vault::builder(
                self.backend.clone(),
                Arc::clone(&self.kek),
                Arc::clone(&self.shred),
            )
            .clock(ManualClock::new(T0))
            .build()
        }

        async fn finish(self) {
            common::drop_postgres_schema(self.pool, self.schema).await;
        }
    }

    /// The application's own pool, its `users` table in a fresh schema, and the vault built
    /// on the same pool with its tables in that schema.
    async fn fixture() -> Option<Fixture> {
        let (pool, schema) = common::postgres_schema().await?;
        let backend = PgBackend::from_pool(pool.clone())
            .with_schema(&schema)
            .unwrap();
        let kek = Arc::new(Keyring::generate().unwrap());
        let shred = Arc::new(MemoryTenantKeys::new());
        // Reads audited as they happen, so the audit log's order is the test's.
        let vault = Vault::builder(backend.clone(), Arc::clone(&kek), Arc::clone(&shred))
            .clock(ManualClock::new(T0))
            .read_audit(ReadAudit::Synchronous)
            .build();
        vault.migrate().await.unwrap();
        let users = format!("\"{schema}\".users");
        let create =
            format!("CREATE TABLE {users} (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE)");
        sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(&pool)
            .await
            .unwrap();
        Some(Fixture {
            pool,
            schema,
            users,
            vault,
            backend,
            kek,
            shred,
        })
    }

    transaction_suite!(PgPool, sqlx::PgConnection);
}
