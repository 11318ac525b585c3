//! Desktop mode on real files: the encrypted SQLite file holds nothing readable (no SQLite
//! header, none of the stored strings, in the file, its WAL or its journal), opening it
//! without its key fails with a typed error, and export and `promises check` work on it.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use credvault::backend::{BackendErrorKind, SqliteBackend, sqlcipher};
use credvault::envelope::DirTenantKeys;
use credvault::keys::PageKey;
use credvault::password::{LoginThrottle as _, ThrottleConfig};
use credvault::promises::{PromiseInputs, Promises};
use credvault::store::{Cookie, SessionCookies, StoreError, Vault};
use credvault::{Keyring, SecretString};

/// Strings stored in every column the vault keeps in clear, and in the app's own table.
const TENANT: &str = "tenant-marker-7731";
const RECORD: &str = "instagram-record-marker";
const COOKIE_NAME: &str = "sessionid-marker";
const DOMAIN: &str = ".domain-marker.example";
const LEAD: &str = "Jane Lead-Marker";
const LEAD_NOTE: &str = "met at the lead-marker fair";
const ACTOR: &str = "user:actor-marker";
const THROTTLE_ACCOUNT: &str = "throttle-account-marker";
const MARKERS: &[&str] = &[
    TENANT,
    RECORD,
    COOKIE_NAME,
    DOMAIN,
    LEAD,
    LEAD_NOTE,
    ACTOR,
    "leaver",
    "credvault_secrets",
    "CREATE TABLE",
];

fn cookies() -> SessionCookies {
    SessionCookies {
        provider: "instagram".into(),
        cookies: vec![Cookie {
            name: COOKIE_NAME.into(),
            value: SecretString::from("IGSC-cookie-value"),
            domain: DOMAIN.into(),
            path: "/".into(),
            expires_at: None,
        }],
    }
}

/// Every file SQLite keeps for the database (`vault.db`, `-wal`, `-shm`, `-journal`).
fn database_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("vault.db")
        })
        .collect();
    files.sort();
    files
}

/// The markers found in the database's files, with the file they were found in.
fn readable(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for file in database_files(dir) {
        let bytes = std::fs::read(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if bytes.windows(15).any(|w| w == b"SQLite format 3") {
            found.push(format!("{name}: SQLite header"));
        }
        for marker in MARKERS {
            if bytes.windows(marker.len()).any(|w| w == marker.as_bytes()) {
                found.push(format!("{name}: {marker}"));
            }
        }
    }
    found
}

/// Fills a vault (records, metadata, audit, throttle rows) and the app's `leads` table through
/// the same pool, and returns what the database files show while the pool is still open.
async fn fill(backend: SqliteBackend, kek: Keyring, dir: &Path) -> Vec<String> {
    let pool = backend.pool().clone();
    let vault = Vault::builder(
        backend,
        kek,
        DirTenantKeys::create(dir.join("tenant-keys")).unwrap(),
    )
    .build();
    vault.migrate().await.unwrap();
    let tenant = vault.tenant(TENANT).unwrap();
    tenant.put(RECORD, &cookies()).await.unwrap();
    let _ = tenant.get::<SessionCookies>(RECORD).await.unwrap();
    assert!(tenant.delete::<SessionCookies>(RECORD).await.unwrap());
    tenant.put(RECORD, &cookies()).await.unwrap();
    vault
        .tenant("leaver")
        .unwrap()
        .put(RECORD, &cookies())
        .await
        .unwrap();
    vault.delete_tenant("leaver", ACTOR).await.unwrap();
    let throttle = vault
        .login_throttle(ThrottleConfig::default())
        .await
        .unwrap();
    let address: IpAddr = "192.0.2.7".parse().unwrap();
    let _ = throttle
        .record_failure(THROTTLE_ACCOUNT, address, SystemTime::now())
        .await
        .unwrap();
    sqlx::query("CREATE TABLE IF NOT EXISTS leads (id INTEGER PRIMARY KEY, name TEXT, note TEXT)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO leads (name, note) VALUES (?, ?)")
        .bind(LEAD)
        .bind(LEAD_NOTE)
        .execute(&pool)
        .await
        .unwrap();
    vault.flush_audit().await.unwrap();
    let while_open = readable(dir);
    pool.close().await;
    while_open
}

#[tokio::test]
async fn the_file_wal_and_journal_hold_no_header_and_no_stored_string() {
    // The control: the same data in a plain SQLite file is readable (so the scan can fail).
    let plain = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::connect(&plain.path().join("vault.db").display().to_string())
        .await
        .unwrap();
    let found = fill(backend, Keyring::generate().unwrap(), plain.path()).await;
    for expected in ["SQLite header", TENANT, RECORD, LEAD, LEAD_NOTE] {
        assert!(
            found.iter().any(|f| f.ends_with(expected))
                || readable(plain.path()).iter().any(|f| f.ends_with(expected)),
            "the plain file should show {expected}: {found:?}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let kek = Keyring::generate().unwrap();
    let path = dir.path().join("vault.db").display().to_string();
    let (backend, opened) = sqlcipher::open(&path, &PageKey::candidates(&kek).unwrap())
        .await
        .unwrap();
    assert!(opened.created);
    assert_eq!(opened.version, kek.primary_version());
    let while_open = fill(backend, kek.clone(), dir.path()).await;
    let files = database_files(dir.path());
    assert!(!files.is_empty(), "{files:?}");
    assert_eq!(while_open, Vec::<String>::new(), "readable while open");
    assert_eq!(
        readable(dir.path()),
        Vec::<String>::new(),
        "readable after close"
    );

    // A rekey goes through a rollback journal: kill nothing, but look at it right after.
    let mut rotated = kek.clone();
    rotated.rotate().unwrap();
    let (backend, opened) = sqlcipher::open(&path, &PageKey::candidates(&rotated).unwrap())
        .await
        .unwrap();
    assert_eq!(opened.rekeyed_from, Some(kek.primary_version()));
    let leads: Vec<(String,)> = sqlx::query_as("SELECT name FROM leads")
        .fetch_all(backend.pool())
        .await
        .unwrap();
    assert_eq!(leads, vec![(LEAD.to_owned(),)]);
    backend.pool().close().await;
    assert_eq!(
        readable(dir.path()),
        Vec::<String>::new(),
        "readable after a rekey"
    );
}

#[tokio::test]
async fn without_its_key_the_file_opens_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let kek = Keyring::generate().unwrap();
    let path = dir.path().join("vault.db").display().to_string();
    let (backend, _) = sqlcipher::open(&path, &PageKey::candidates(&kek).unwrap())
        .await
        .unwrap();
    fill(backend, kek.clone(), dir.path()).await;

    // No key: plain SQLite options.
    let err = SqliteBackend::connect(&path).await.unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("encrypted"), "{err}");
    // No key, through the vault's own door.
    let err = Vault::open(
        &format!("sqlite://{path}"),
        kek.clone(),
        DirTenantKeys::open(dir.path().join("tenant-keys")).unwrap(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, StoreError::Backend(b) if b.kind() == BackendErrorKind::Corrupt),
        "{err:?}"
    );

    // The wrong keyring.
    let other = Keyring::generate().unwrap();
    let err = sqlcipher::open(&path, &PageKey::candidates(&other).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::WrongKey, "{err}");
    assert!(err.to_string().contains("no page key"), "{err}");
    assert!(err.to_string().contains(&path), "{err}");
    // A wrong key changes nothing: the right one still opens it.
    let (backend, opened) = sqlcipher::open(&path, &PageKey::candidates(&kek).unwrap())
        .await
        .unwrap();
    assert!(!opened.created && opened.rekeyed_from.is_none());
    backend.pool().close().await;

    // The KEK version the file is keyed under, destroyed: refused, never re-created.
    let mut destroyed = kek.clone();
    destroyed.rotate().unwrap();
    destroyed.destroy(kek.primary_version()).unwrap();
    let err = sqlcipher::open(&path, &PageKey::candidates(&destroyed).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::WrongKey, "{err}");

    // A plain SQLite file is not taken for an encrypted one.
    let plain = dir.path().join("plain.db").display().to_string();
    let backend = SqliteBackend::connect(&plain).await.unwrap();
    sqlx::query("CREATE TABLE t (a)")
        .execute(backend.pool())
        .await
        .unwrap();
    backend.pool().close().await;
    let err = sqlcipher::open(&plain, &PageKey::candidates(&kek).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::WrongKey, "{err}");
    assert!(err.to_string().contains("plain (unencrypted)"), "{err}");
}

#[tokio::test]
async fn export_and_promises_check_work_in_desktop_mode() {
    let dir = tempfile::tempdir().unwrap();
    let kek = Keyring::generate().unwrap();
    let path = dir.path().join("vault.db").display().to_string();
    let (backend, _) = sqlcipher::open(&path, &PageKey::candidates(&kek).unwrap())
        .await
        .unwrap();
    let promises = Promises::from_path(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/promises/instagram-dm-cloud.toml"),
    )
    .unwrap();
    let vault = Vault::builder(
        backend,
        kek.clone(),
        Arc::new(DirTenantKeys::create(dir.path().join("tenant-keys")).unwrap()),
    )
    .promises(&promises)
    .try_build()
    .unwrap();
    vault.migrate().await.unwrap();
    let alice = vault.tenant("alice").unwrap();
    alice.put("ig-main", &cookies()).await.unwrap();

    let mut out = Vec::new();
    let report = alice.export_json(&mut out).await.unwrap();
    assert_eq!((report.records, report.unreadable), (1, 0));
    let exported: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        exported["records"][0]["payload"]["cookies"][0]["value"],
        "IGSC-cookie-value"
    );
    let mut csv = Vec::new();
    alice.export_csv(&mut csv).await.unwrap();
    assert!(String::from_utf8(csv).unwrap().contains("ig-main"));

    vault.purge().await.unwrap();
    let report = vault
        .check_promises(&promises, &PromiseInputs::default())
        .await
        .unwrap();
    assert!(report.all_kept(), "{}", report.to_text());
}
