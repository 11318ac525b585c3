//! The vault on a real SQLite file: what only a file can show (a copy of the file taken
//! before a purge, raw SQL on the rows, several pools on one file, a read-only file).

#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use credvault::backend::{BackendErrorKind, SqliteBackend};
use credvault::envelope::DirTenantKeys;
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

struct Files {
    dir: tempfile::TempDir,
    kek: Arc<Keyring>,
    shred: Arc<DirTenantKeys>,
    clock: ManualClock,
}

impl Files {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kek = Arc::new(Keyring::create_new(dir.path().join("keys.json")).unwrap());
        let shred = Arc::new(DirTenantKeys::create(dir.path().join("tenant-keys")).unwrap());
        Self {
            dir,
            kek,
            shred,
            clock: ManualClock::new(T0),
        }
    }

    fn url(&self, file: &str) -> String {
        format!("sqlite://{}", self.dir.path().join(file).display())
    }

    async fn vault(&self, file: &str) -> Vault {
        let backend = SqliteBackend::connect(&self.url(file)).await.unwrap();
        let vault = Vault::builder(backend, Arc::clone(&self.kek), Arc::clone(&self.shred))
            .clock(self.clock.clone())
            .build();
        vault.migrate().await.unwrap();
        vault
    }
}

#[tokio::test]
async fn file_copy_taken_before_purge_cannot_be_read_after_it() {
    let files = Files::new();
    let vault = files.vault("vault.db").await;
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
    // The backup: checkpoint the WAL into the main file, then copy the file.
    let pool = SqliteBackend::connect(&files.url("vault.db"))
        .await
        .unwrap();
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(pool.pool())
        .await
        .unwrap();
    std::fs::copy(
        files.dir.path().join("vault.db"),
        files.dir.path().join("backup.db"),
    )
    .unwrap();

    vault.delete_tenant("acme", "admin").await.unwrap();
    files.clock.advance(Duration::from_secs(30 * 86_400));
    assert_eq!(vault.purge().await.unwrap().tenants.len(), 1);

    // The backup still holds acme's rows and wrapped DEK, and the KEK is the same...
    let old = files.vault("backup.db").await;
    let raw: (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM credvault_secrets WHERE tenant_id = 'acme'")
            .fetch_one(
                SqliteBackend::connect(&files.url("backup.db"))
                    .await
                    .unwrap()
                    .pool(),
            )
            .await
            .unwrap();
    assert_eq!(raw.0, 1, "the backup holds the sealed row");
    // ...but the shred secret is gone: nothing opens.
    let err = old
        .tenant("acme")
        .unwrap()
        .get::<OAuthToken>("github")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TenantShredded(_)), "{err}");
    let mut out = Vec::new();
    assert!(matches!(
        old.tenant("acme").unwrap().export_json(&mut out).await,
        Err(StoreError::TenantShredded(_))
    ));
    // Other tenants in the backup are intact.
    let globex = old
        .tenant("globex")
        .unwrap()
        .get::<OAuthToken>("github")
        .await
        .unwrap();
    assert_eq!(globex.value.access_token.expose_secret(), "globex-secret");
}

#[tokio::test]
async fn ciphertext_swapped_between_tenants_with_raw_sql_fails_to_open() {
    let files = Files::new();
    let vault = files.vault("vault.db").await;
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
    let raw = SqliteBackend::connect(&files.url("vault.db"))
        .await
        .unwrap();
    let swapped = sqlx::query(
        "UPDATE credvault_secrets SET sealed = (SELECT sealed FROM credvault_secrets WHERE tenant_id = 'acme') \
         WHERE tenant_id = 'globex'",
    )
    .execute(raw.pool())
    .await
    .unwrap();
    assert_eq!(swapped.rows_affected(), 1);
    let err = vault
        .tenant("globex")
        .unwrap()
        .get::<OAuthToken>("github")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::CorruptRecord { .. }), "{err}");
    // Swapping the wrapped DEKs between tenants fails too.
    sqlx::query(
        "UPDATE credvault_tenants SET wrapped_dek = (SELECT wrapped_dek FROM credvault_tenants WHERE tenant_id = 'globex') \
         WHERE tenant_id = 'acme'",
    )
    .execute(raw.pool())
    .await
    .unwrap();
    let fresh = files.vault("vault.db").await; // no cached keys
    let err = fresh
        .tenant("acme")
        .unwrap()
        .get::<OAuthToken>("github")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Key(_)), "{err}");
}

/// Four vaults with their own connection pools on one file stand for four processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_runs_once_across_separate_pools_on_one_file() {
    let files = Files::new();
    let first = files.vault("vault.db").await;
    first
        .tenant("acme")
        .unwrap()
        .put("github", &token("old", Some(T0 + 10)))
        .await
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let vault = files.vault("vault.db").await;
        for _ in 0..4 {
            let acme = vault.tenant("acme").unwrap();
            let calls = Arc::clone(&calls);
            tasks.push(tokio::spawn(async move {
                acme.refresh("github", Duration::from_secs(300), |_| async move {
                    calls.fetch_add(1, Ordering::SeqCst);
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
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn read_only_database_refuses_writes_with_a_clear_error_and_still_reads() {
    let files = Files::new();
    let vault = files.vault("vault.db").await;
    vault
        .tenant("acme")
        .unwrap()
        .put("github", &token("a", None))
        .await
        .unwrap();
    let options = SqliteBackend::options(&files.url("vault.db"))
        .unwrap()
        .read_only(true);
    let ro = Vault::builder(
        SqliteBackend::connect_with(options).await.unwrap(),
        Arc::clone(&files.kek),
        Arc::clone(&files.shred),
    )
    .build();
    assert!(
        ro.tenant("acme")
            .unwrap()
            .get::<OAuthToken>("github")
            .await
            .is_ok()
    );
    let err = ro
        .tenant("acme")
        .unwrap()
        .put("gitlab", &token("b", None))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Backend(e) if e.kind() == BackendErrorKind::ReadOnly),
        "{err:?}"
    );
}

#[tokio::test]
async fn unreachable_or_unknown_databases_are_clear_errors() {
    let files = Files::new();
    let err = Vault::open(
        "mysql://user:hunter2@db/x",
        Arc::clone(&files.kek),
        Arc::clone(&files.shred),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl { ref scheme } if scheme == "mysql"));
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let missing_dir = format!(
        "sqlite://{}/no/such/dir/vault.db",
        files.dir.path().display()
    );
    // Opening an existing vault never creates one: a missing file says so.
    let err = Vault::open(
        &missing_dir,
        Arc::clone(&files.kek),
        Arc::clone(&files.shred),
    )
    .await
    .unwrap_err();
    assert!(matches!(&err, StoreError::NotInitialised(_)), "{err:?}");
    // Creating one in a directory that does not exist is the database's refusal.
    let err = Vault::init(
        &missing_dir,
        Arc::clone(&files.kek),
        Arc::clone(&files.shred),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, StoreError::Backend(e) if e.kind() == BackendErrorKind::Unavailable),
        "{err:?}"
    );
}

/// Buffered read events are written by a background task; while the log cannot be written,
/// reads go on only until `MAX_BACKLOG_BATCHES` batches wait, then fail with the storage
/// error, and once the log can be written again no event is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_stop_when_their_audit_cannot_be_written_and_no_event_is_lost() {
    use credvault::backend::{AuditQuery, Backend as _};
    use credvault::sqlx;
    use credvault::store::{MAX_BACKLOG_BATCHES, ReadAudit};
    let files = Files::new();
    let backend = SqliteBackend::connect(&files.url("vault.db"))
        .await
        .unwrap();
    let pool = backend.pool().clone();
    let backend = Arc::new(backend);
    let vault = Vault::builder(
        Arc::clone(&backend),
        Arc::clone(&files.kek),
        Arc::clone(&files.shred),
    )
    .clock(files.clock.clone())
    .read_audit(ReadAudit::Buffered { batch: 8 })
    .build();
    vault.migrate().await.unwrap();
    let acme = vault.tenant("acme").unwrap();
    acme.put("github", &token("a", None)).await.unwrap();
    // The disk refuses read events (a full disk, a revoked grant on the audit table).
    sqlx::query(
        "CREATE TRIGGER refuse_reads BEFORE INSERT ON credvault_audit \
         WHEN NEW.action = 'get' BEGIN SELECT RAISE(ABORT, 'audit disk full'); END",
    )
    .execute(&pool)
    .await
    .unwrap();
    let bound = 8 * MAX_BACKLOG_BATCHES;
    for read in 1..bound {
        acme.get::<OAuthToken>("github")
            .await
            .unwrap_or_else(|e| panic!("read {read} below the backlog bound failed: {e}"));
    }
    for _ in 0..2 {
        let err = acme.get::<OAuthToken>("github").await.unwrap_err();
        assert!(
            matches!(err, StoreError::Backend(_)) && format!("{err:?}").contains("audit disk full"),
            "past the bound a read fails with the log's error: {err:?}"
        );
    }
    sqlx::query("DROP TRIGGER refuse_reads")
        .execute(&pool)
        .await
        .unwrap();
    acme.get::<OAuthToken>("github").await.unwrap();
    vault.flush_audit().await.unwrap();
    let gets = backend
        .audit(&AuditQuery::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.action == "get")
        .count();
    assert_eq!(
        gets,
        bound + 2,
        "every read's event is in the log, the failed ones too"
    );
}
