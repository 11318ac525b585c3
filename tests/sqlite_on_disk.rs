//! The SQLite database file on disk: a new database, its `-wal` and its `-shm` are readable by
//! their owner only (0600, like the key file), whatever the process umask allows; an existing
//! file keeps the mode its operator chose.

#![cfg(all(unix, feature = "sqlite"))]
#![allow(
    clippy::unwrap_used,
    reason = "tests and benches fail loudly on unexpected errors"
)]

use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use credvault::backend::{Backend as _, BackendErrorKind, SqliteBackend};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Opens `url_or_path`, writes (the migrations), and returns the backend still open, so the
/// WAL and shared-memory files exist.
async fn open_and_write(url_or_path: &str) -> SqliteBackend {
    let backend = SqliteBackend::connect(url_or_path).await.unwrap();
    backend.migrate().await.unwrap();
    backend
}

fn assert_owner_only(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", db.display());
        assert_eq!(mode(Path::new(&path)), 0o600, "{path}");
    }
}

#[tokio::test]
async fn new_database_and_its_wal_and_shm_are_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vault.db");
    let backend = open_and_write(db.to_str().unwrap()).await;
    assert_owner_only(&db);
    backend.pool().close().await;
}

#[tokio::test]
async fn new_database_opened_by_url_is_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vault.db");
    let backend = open_and_write(&format!("sqlite://{}", db.display())).await;
    assert_owner_only(&db);
    backend.pool().close().await;
}

#[tokio::test]
async fn existing_database_keeps_its_mode() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vault.db");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(&db)
        .unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o640)).unwrap();
    let backend = open_and_write(db.to_str().unwrap()).await;
    assert_eq!(mode(&db), 0o640);
    backend.pool().close().await;
}

#[tokio::test]
async fn missing_file_without_create_if_missing_is_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vault.db");
    let options = SqliteBackend::options(db.to_str().unwrap())
        .unwrap()
        .create_if_missing(false);
    let err = SqliteBackend::connect_with(options).await.unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::Unavailable, "{err}");
    assert!(!db.exists(), "a database file was created");
}

#[tokio::test]
async fn in_memory_database_creates_no_file() {
    let backend = SqliteBackend::connect("sqlite::memory:").await.unwrap();
    backend.migrate().await.unwrap();
    let cwd = std::env::current_dir().unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(&cwd)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("memory"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
