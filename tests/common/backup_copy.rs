//! The fixture of the tests showing that a purge through a tenant-key store leaves a backup of
//! the vault's database, taken before the purge, unreadable for the purged tenant: a vault on a
//! SQLite file with one token for `acme` and one for `globex`, and copies of that file made
//! with `VACUUM INTO` (what a backup tool sees). Included by path
//! (`#[path = "common/backup_copy.rs"] mod backup_copy;`).

use std::path::{Path, PathBuf};

use credvault::backend::SqliteBackend;
use credvault::envelope::TenantKeyStore;
use credvault::sqlx::{self, AssertSqlSafe};
use credvault::store::{ManualClock, OAuthToken, StoreError, Vault};
use credvault::{Keyring, SecretString};

/// A vault file, its KEK, tenant-key store and clock.
pub(crate) struct BackupFixture<S> {
    dir: tempfile::TempDir,
    live: PathBuf,
    kek: Keyring,
    store: S,
    /// The clock every vault opened here reads.
    pub(crate) clock: ManualClock,
}

impl<S: TenantKeyStore + Clone + 'static> BackupFixture<S> {
    /// A new fixture on `store` (a cheap clone: an `Arc`), its clock at `t0`.
    pub(crate) fn new(store: S, t0: i64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("vault.db");
        Self {
            dir,
            live,
            kek: Keyring::generate().unwrap(),
            store,
            clock: ManualClock::new(t0),
        }
    }

    /// The vault on `path` (the live file or a copy) with the fixture's KEK, store and clock.
    pub(crate) async fn open(&self, path: &Path) -> Vault {
        let backend = SqliteBackend::connect(&path.display().to_string())
            .await
            .unwrap();
        let vault = Vault::builder(backend, self.kek.clone(), self.store.clone())
            .clock(self.clock.clone())
            .build();
        vault.migrate().await.unwrap();
        vault
    }

    /// The live vault, with a token `gho_<tenant>` named `github` for acme and for globex.
    pub(crate) async fn seeded(&self) -> Vault {
        let vault = self.open(&self.live).await;
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
        vault
    }

    /// A copy of the live file named `name`, as a backup tool takes it (`VACUUM INTO`).
    pub(crate) async fn backup(&self, name: &str) -> PathBuf {
        let copy = self.dir.path().join(name);
        let sqlite =
            credvault::sqlx::SqlitePool::connect(&format!("sqlite://{}", self.live.display()))
                .await
                .unwrap();
        sqlx::query(AssertSqlSafe(format!("VACUUM INTO '{}'", copy.display())))
            .execute(&sqlite)
            .await
            .unwrap();
        sqlite.close().await;
        copy
    }

    /// Opens `copy` with the fixture's KEK and store after acme was purged: acme's token is
    /// shredded for good, globex's still opens.
    pub(crate) async fn assert_only_acme_shredded(&self, copy: &Path) {
        let old = self.open(copy).await;
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
}
