//! Keys that cannot be lost, mixed up or reused (issue 11), written as a person would hit each
//! case: a fleet rotating its key-encryption key while a stale process keeps running, a key
//! file or tenant-key directory that is not the vault's, a purge that finds a shred secret
//! missing or is killed halfway. Each body runs over every backend: memory always, SQLite with
//! the `sqlite` feature, PostgreSQL with `postgres` (skipped with a message when no server is
//! reachable, unless CREDVAULT_REQUIRE_POSTGRES=1).

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use credvault::backend::{AuditQuery, Backend};
use credvault::envelope::{DirTenantKeys, MemoryTenantKeys, TenantKeyStore};
use credvault::keys::{KeyError, KeyFile};
use credvault::store::{ApiKey, ManualClock, StoreError, Vault, VaultConfig};
use credvault::{KeyVersion, Keyring, SecretBytes, TenantId};

const T0: i64 = 1_763_856_000;

fn api_key(value: &str) -> ApiKey {
    ApiKey {
        provider: "stripe".into(),
        key: value.to_owned().into(),
        label: None,
    }
}

fn vault(
    backend: &Arc<dyn Backend>,
    kek: impl credvault::KeyProvider + 'static,
    store: impl TenantKeyStore + 'static,
    clock: &ManualClock,
    config: VaultConfig,
) -> Vault {
    Vault::builder(Arc::clone(backend), kek, store)
        .config(config)
        .clock(clock.clone())
        .build()
}

async fn read(vault: &Vault, tenant: &str) -> Result<String, StoreError> {
    let got = vault.tenant(tenant)?.get::<ApiKey>("stripe").await?;
    Ok(got.value.key.expose_secret().to_owned())
}

async fn kek_of(backend: &dyn Backend, tenant: &str) -> Option<KeyVersion> {
    let row = backend
        .tenant(&TenantId::new(tenant).unwrap())
        .await
        .unwrap();
    row.map(|r| r.kek_version)
}

/// Rotates the key file at `path` as `credvault key rotate` does.
fn rotate_file(path: &Path) -> KeyVersion {
    let mut ring = Keyring::load(path).unwrap();
    let v = ring.rotate().unwrap();
    ring.save(path).unwrap();
    v
}

/// A tenant-key store that can lose a secret behind the vault's back and can fail right after
/// destroying one (a purge killed after the unlink).
#[derive(Debug, Default)]
struct Flaky {
    inner: MemoryTenantKeys,
    fail_after_destroy: Mutex<HashSet<TenantId>>,
}

impl Flaky {
    fn lose(&self, tenant: &str) {
        self.inner.destroy(&TenantId::new(tenant).unwrap()).unwrap();
    }
}

impl TenantKeyStore for Flaky {
    fn get_or_create(&self, tenant: &TenantId) -> Result<SecretBytes, KeyError> {
        self.inner.get_or_create(tenant)
    }
    fn get(&self, tenant: &TenantId) -> Result<Option<SecretBytes>, KeyError> {
        self.inner.get(tenant)
    }
    fn destroy(&self, tenant: &TenantId) -> Result<(), KeyError> {
        self.inner.destroy(tenant)?;
        if self.fail_after_destroy.lock().unwrap().remove(tenant) {
            return Err(KeyError::Store {
                place: "flaky".into(),
                problem: "killed after the unlink".into(),
            });
        }
        Ok(())
    }
    fn identity(&self) -> Result<String, KeyError> {
        self.inner.identity()
    }
}

mod body {
    use super::*;

    /// README's rotation steps while two application processes keep running: one with a
    /// key file it can reload, one with a keyring snapshot it cannot (keys from an
    /// environment variable, say). Neither may wrap a new tenant's data key under the KEK
    /// being retired, destroying it must wait for the quiet period, and every record stays
    /// readable at the end.
    pub(crate) async fn a_fleet_rotates_its_kek_without_restarts_and_without_loss(
        backend: Arc<dyn Backend>,
    ) {
        backend.migrate().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        Keyring::create_new(&path).unwrap();
        let store = Arc::new(DirTenantKeys::create(dir.path().join("tenant-keys")).unwrap());
        let clock = ManualClock::new(T0);
        // Reactive only: these processes reload when they meet a newer key, not on a timer.
        let config = VaultConfig {
            key_check_interval: Duration::from_secs(3600),
            ..VaultConfig::default()
        };
        let live = vault(
            &backend,
            KeyFile::open(&path).unwrap(),
            Arc::clone(&store),
            &clock,
            config.clone(),
        );
        let stale = vault(
            &backend,
            Keyring::load(&path).unwrap(),
            Arc::clone(&store),
            &clock,
            config.clone(),
        );
        for (v, t) in [(&live, "live-1"), (&stale, "stale-1")] {
            v.tenant(t)
                .unwrap()
                .put("stripe", &api_key(t))
                .await
                .unwrap();
        }

        // Steps 1 and 2: a new KEK in the file, every data key rewrapped under it.
        let v2 = rotate_file(&path);
        let operator = vault(
            &backend,
            KeyFile::open(&path).unwrap(),
            Arc::clone(&store),
            &clock,
            config.clone(),
        );
        let rewrap = operator.rewrap_deks(|_| {}).await.unwrap();
        assert_eq!(rewrap.rewrapped, 2);

        // The live process picks the new key up on its own, for writes and for reads.
        live.tenant("live-2")
            .unwrap()
            .put("stripe", &api_key("live-2"))
            .await
            .unwrap();
        assert_eq!(kek_of(backend.as_ref(), "live-2").await, Some(v2));
        assert_eq!(read(&live, "stale-1").await.unwrap(), "stale-1");

        // The stale process may not wrap under v1 any more: refused, nothing written.
        let err = stale
            .tenant("stale-2")
            .unwrap()
            .put("stripe", &api_key("stale-2"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::KekBehind { newest: 2, .. }),
            "{err:?}"
        );
        assert_eq!(kek_of(backend.as_ref(), "stale-2").await, None);

        // Step 6 waits until no process registered v1 as its primary for the quiet period.
        let mut ring = Keyring::load(&path).unwrap();
        let err = operator
            .destroy_kek(&mut ring, KeyVersion::new(1))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::KeyRecentlyUsed { .. }), "{err:?}");
        clock.advance(Duration::from_secs(15 * 60));
        operator
            .destroy_kek(&mut ring, KeyVersion::new(1))
            .await
            .unwrap();
        ring.save(&path).unwrap();

        // Still refused after the destroy, never a tenant under a destroyed key.
        assert!(
            stale
                .tenant("stale-3")
                .unwrap()
                .put("stripe", &api_key("stale-3"))
                .await
                .is_err()
        );
        assert_eq!(kek_of(backend.as_ref(), "stale-3").await, None);

        // A process started now, with only v2 alive, reads every record ever stored.
        let fresh = vault(
            &backend,
            KeyFile::open(&path).unwrap(),
            Arc::clone(&store),
            &clock,
            config,
        );
        for t in ["live-1", "stale-1", "live-2"] {
            assert_eq!(read(&fresh, t).await.unwrap(), t);
        }
        assert_eq!(fresh.kek_usage(KeyVersion::new(1)).await.unwrap(), 0);
    }

    /// A second key that is also "v1" (a mistyped key path, another vault's key file) is
    /// refused for writes and reads alike, and writes nothing.
    pub(crate) async fn a_different_key_under_the_same_version_is_refused(
        backend: Arc<dyn Backend>,
    ) {
        backend.migrate().await.unwrap();
        let store = Arc::new(MemoryTenantKeys::new());
        let clock = ManualClock::new(T0);
        let right = vault(
            &backend,
            Keyring::generate().unwrap(),
            Arc::clone(&store),
            &clock,
            VaultConfig::default(),
        );
        right
            .tenant("acme")
            .unwrap()
            .put("stripe", &api_key("acme"))
            .await
            .unwrap();
        let wrong = vault(
            &backend,
            Keyring::generate().unwrap(),
            Arc::clone(&store),
            &clock,
            VaultConfig::default(),
        );
        let err = wrong
            .tenant("globex")
            .unwrap()
            .put("stripe", &api_key("globex"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::KeyMismatch { ref version, .. } if version.get() == 1),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("different key-encryption key v1"),
            "{err}"
        );
        assert_eq!(kek_of(backend.as_ref(), "globex").await, None);
        assert!(matches!(
            read(&wrong, "acme").await,
            Err(StoreError::KeyMismatch { .. })
        ));
        assert!(wrong.check_keys().await.is_err());
        assert_eq!(read(&right, "acme").await.unwrap(), "acme");
    }

    /// A tenant-key store that is not the vault's (another store's id) is refused before any
    /// tenant is created in it or purged through it.
    pub(crate) async fn a_foreign_tenant_key_store_is_refused(backend: Arc<dyn Backend>) {
        backend.migrate().await.unwrap();
        let kek = Keyring::generate().unwrap();
        let clock = ManualClock::new(T0);
        let right = vault(
            &backend,
            kek.clone(),
            MemoryTenantKeys::new(),
            &clock,
            VaultConfig::default(),
        );
        let acme = right.tenant("acme").unwrap();
        acme.put("stripe", &api_key("acme")).await.unwrap();
        right.delete_tenant("acme", "test").await.unwrap();
        clock.advance(Duration::from_secs(31 * 86_400));

        let foreign = Arc::new(MemoryTenantKeys::new());
        let wrong = vault(
            &backend,
            kek,
            Arc::clone(&foreign),
            &clock,
            VaultConfig::default(),
        );
        let err = wrong
            .tenant("globex")
            .unwrap()
            .put("stripe", &api_key("globex"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::TenantKeyStoreMismatch { .. }),
            "{err:?}"
        );
        assert!(
            foreign
                .get(&TenantId::new("globex").unwrap())
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            wrong.purge().await,
            Err(StoreError::TenantKeyStoreMismatch { .. })
        ));
        // Nothing was purged through the wrong store: the right one still finds acme due.
        assert!(kek_of(backend.as_ref(), "acme").await.is_some());
        assert_eq!(right.purge().await.unwrap().tenants.len(), 1);
    }

    /// Purge never reports a shredding it did not do, and a purge killed after destroying a
    /// shred secret is finished by the next one (the tenant cannot be restored meanwhile).
    pub(crate) async fn purge_fails_closed_and_finishes_what_it_started(backend: Arc<dyn Backend>) {
        backend.migrate().await.unwrap();
        let store = Arc::new(Flaky::default());
        let clock = ManualClock::new(T0);
        let v = vault(
            &backend,
            Keyring::generate().unwrap(),
            Arc::clone(&store),
            &clock,
            VaultConfig::default(),
        );
        for t in ["lost", "killed", "fine"] {
            v.tenant(t)
                .unwrap()
                .put("stripe", &api_key(t))
                .await
                .unwrap();
            v.delete_tenant(t, "test").await.unwrap();
        }
        clock.advance(Duration::from_secs(31 * 86_400));
        store.lose("lost");
        store
            .fail_after_destroy
            .lock()
            .unwrap()
            .insert(TenantId::new("killed").unwrap());

        // "fine" is purged; the run dies at "killed", right after its secret is gone.
        assert!(matches!(v.purge().await, Err(StoreError::Key(_))));
        let err = v.restore_tenant("killed", "support").await.unwrap_err();
        assert!(matches!(err, StoreError::TenantShredded(_)), "{err:?}");

        let err = v.purge().await.unwrap_err();
        let StoreError::ShredSecretMissing { tenants, report } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(tenants, &[TenantId::new("lost").unwrap()]);
        assert_eq!(report.tenants, [TenantId::new("killed").unwrap()]);
        assert!(err.to_string().contains("lost"), "{err}");
        for (t, left) in [("lost", true), ("killed", false), ("fine", false)] {
            assert_eq!(kek_of(backend.as_ref(), t).await.is_some(), left, "{t}");
        }
        // The audit log says what happened to each, and never that "lost" was purged.
        let audit = v.audit(&AuditQuery::default()).await.unwrap();
        let purges: Vec<(&str, &str)> = audit
            .iter()
            .filter(|r| r.action == "tenant_purge")
            .map(|r| {
                (
                    r.tenant.as_ref().unwrap().as_str(),
                    r.outcome.split(':').next().unwrap(),
                )
            })
            .collect();
        // The first run stopped at "killed" (before reaching "lost"); the second finished it.
        assert_eq!(
            purges,
            [("fine", "ok"), ("killed", "ok"), ("lost", "refused")]
        );
    }
}

macro_rules! suite {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;

            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let Some(made) = $make else { return };
                        body::$name(made.backend()).await;
                        made.finish().await;
                    }
                };
            }

            case!(a_fleet_rotates_its_kek_without_restarts_and_without_loss);
            case!(a_different_key_under_the_same_version_is_refused);
            case!(a_foreign_tenant_key_store_is_refused);
            case!(purge_fails_closed_and_finishes_what_it_started);
        }
    };
}

suite!(memory, Some(common::Made::memory()));

#[cfg(feature = "sqlite")]
suite!(sqlite, Some(common::sqlite_made().await));

#[cfg(feature = "postgres")]
suite!(postgres, common::postgres_made().await);

/// Opening an existing vault on a PostgreSQL database that holds none is an error, and
/// creates no table (it used to migrate the empty database: a silent fresh start).
#[cfg(feature = "postgres")]
#[tokio::test]
async fn opening_an_empty_postgres_database_creates_nothing() {
    let Some((pool, name)) = common::postgres_schema().await else {
        return;
    };
    // A database of its own (the URL names a database, not a schema).
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .unwrap();
    let base = common::postgres_url();
    let url = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
    assert!(!Vault::exists(&url).await.unwrap());
    let err = Vault::open(&url, Keyring::generate().unwrap(), MemoryTenantKeys::new())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotInitialised(_)), "{err:?}");
    assert!(!err.to_string().contains("postgres@"), "{err}");
    let check = sqlx::PgPool::connect(&url).await.unwrap();
    let (tables,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_name LIKE 'credvault%'",
    )
    .fetch_one(&check)
    .await
    .unwrap();
    assert_eq!(tables, 0);
    // init creates it, and then open works.
    let kek = Keyring::generate().unwrap();
    let store = Arc::new(MemoryTenantKeys::new());
    Vault::init(&url, kek.clone(), Arc::clone(&store))
        .await
        .unwrap();
    assert!(Vault::exists(&url).await.unwrap());
    Vault::open(&url, kek, store).await.unwrap();
    check.close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&pool)
    .await
    .unwrap();
}

/// An application started from another working directory (or with a mistyped key path)
/// beside a database that already holds a vault: no key is generated, the vault is not
/// opened, and the right paths still work.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn open_or_init_local_never_makes_a_key_beside_an_existing_vault() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("vault.db").display());
    let (keys, tenant_keys) = (dir.path().join("keys.json"), dir.path().join("tenant-keys"));
    let vault = Vault::open_or_init_local(&url, &keys, &tenant_keys, VaultConfig::default())
        .await
        .unwrap();
    vault
        .tenant("acme")
        .unwrap()
        .put("stripe", &api_key("acme"))
        .await
        .unwrap();
    drop(vault);

    let typo = dir.path().join("key.json");
    let err = Vault::open_or_init_local(&url, &typo, &tenant_keys, VaultConfig::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Key(KeyError::Io { .. })),
        "{err:?}"
    );
    assert!(!typo.exists(), "no key file was made");
    let elsewhere = dir.path().join("mnt/tenant-keys");
    let err = Vault::open_or_init_local(&url, &keys, &elsewhere, VaultConfig::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Key(KeyError::Store { .. })),
        "{err:?}"
    );
    assert!(!elsewhere.exists(), "no tenant-key directory was made");

    let vault = Vault::open_or_init_local(&url, &keys, &tenant_keys, VaultConfig::default())
        .await
        .unwrap();
    assert_eq!(read(&vault, "acme").await.unwrap(), "acme");
}
