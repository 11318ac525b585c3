//! Helpers shared by the integration tests: the Python interop helpers (`python.rs`, also
//! used by the command line's tests in `cli/tests`), the PostgreSQL test schema, and a
//! `tracing` capture.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a different subset"
)]

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

mod python;
#[allow(unused_imports, reason = "not every test binary drives Python")]
pub use python::*;

/// The PostgreSQL the tests use: `CREDVAULT_PG_URL`, default the local `test` database.
#[cfg(feature = "postgres")]
pub fn postgres_url() -> String {
    std::env::var("CREDVAULT_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A pool and a fresh, unique schema name for one test; `None` after printing how to enable
/// the test when PostgreSQL cannot be reached, or a panic under `CREDVAULT_REQUIRE_POSTGRES=1`.
#[cfg(feature = "postgres")]
pub async fn postgres_schema() -> Option<(sqlx::PgPool, String)> {
    let connected = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(std::time::Duration::from_secs(3))
        .connect(&postgres_url())
        .await;
    match connected {
        Ok(pool) => {
            let schema = format!("cv_test_{:016x}", rand::random::<u64>());
            Some((pool, schema))
        }
        Err(e) if std::env::var("CREDVAULT_REQUIRE_POSTGRES").as_deref() == Ok("1") => {
            panic!("cannot reach postgres and CREDVAULT_REQUIRE_POSTGRES=1: {e}")
        }
        Err(_) => {
            eprintln!(
                "postgres tests skipped: cannot reach the server at CREDVAULT_PG_URL (default \
                 127.0.0.1:5432/test); start PostgreSQL (see .ci/run) to enable them"
            );
            None
        }
    }
}

/// Drops a test schema and closes the pool.
#[cfg(feature = "postgres")]
pub async fn drop_postgres_schema(pool: sqlx::PgPool, schema: String) {
    let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&pool)
        .await
        .expect("drop test schema");
    pool.close().await;
}

// ---- one backend per test

/// A backend for one test, with whatever must outlive it (a temporary directory, a schema).
pub struct Made {
    pub backend: Arc<dyn credvault::backend::Backend>,
    pub guard: Option<Box<dyn std::any::Any + Send>>,
    pub cleanup: Option<credvault::backend::BoxFuture<'static, ()>>,
}

impl Made {
    /// The in-memory backend.
    pub fn memory() -> Self {
        Self {
            backend: Arc::new(credvault::backend::MemoryBackend::new()),
            guard: None,
            cleanup: None,
        }
    }

    /// The backend, shared.
    pub fn backend(&self) -> Arc<dyn credvault::backend::Backend> {
        Arc::clone(&self.backend)
    }

    /// Drops what the test made (a PostgreSQL schema).
    pub async fn finish(self) {
        if let Some(cleanup) = self.cleanup {
            cleanup.await;
        }
    }
}

/// A SQLite file in a fresh temporary directory.
#[cfg(feature = "sqlite")]
pub async fn sqlite_made() -> Made {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", dir.path().join("vault.db").display());
    let backend = credvault::backend::SqliteBackend::connect(&url)
        .await
        .expect("open sqlite");
    Made {
        backend: Arc::new(backend),
        guard: Some(Box::new(dir)),
        cleanup: None,
    }
}

/// An encrypted SQLite file (desktop mode, `credvault::backend::sqlcipher`) in a fresh
/// temporary directory, keyed from a keyring of its own. Only in the `desktop/` crate, which
/// links SQLCipher and sets `cfg(credvault_sqlcipher)`.
#[cfg(credvault_sqlcipher)]
pub async fn sqlcipher_made() -> Made {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("vault.db");
    let kek = credvault::Keyring::generate().expect("keyring");
    let (backend, opened) = credvault::backend::sqlcipher::open(
        &path.display().to_string(),
        &credvault::keys::PageKey::candidates(&kek).expect("page keys"),
    )
    .await
    .expect("open the encrypted sqlite file");
    assert!(opened.created);
    Made {
        backend: Arc::new(backend),
        guard: Some(Box::new(dir)),
        cleanup: None,
    }
}

/// A fresh PostgreSQL schema for one test, dropped by [`Made::finish`]; `None` (after saying
/// why) when no server is reachable and CREDVAULT_REQUIRE_POSTGRES is not 1.
#[cfg(feature = "postgres")]
pub async fn postgres_made() -> Option<Made> {
    let (pool, schema) = postgres_schema().await?;
    let backend = credvault::backend::PgBackend::from_pool(pool.clone())
        .with_schema(&schema)
        .expect("valid schema name");
    Some(Made {
        backend: Arc::new(backend),
        guard: None,
        cleanup: Some(Box::pin(drop_postgres_schema(pool, schema))),
    })
}

// ---- tracing capture

/// A minimal `tracing` subscriber that keeps every event and every span's fields as
/// "LEVEL field=value ..." lines, for tests that check what reaches the logs.
#[derive(Clone, Default)]
pub struct Capture(pub Arc<Mutex<Vec<String>>>);

struct Line<'a>(&'a mut String);

impl Visit for Line<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut line = format!("SPAN {}", span.metadata().name());
        span.record(&mut Line(&mut line));
        self.0.lock().expect("capture lock").push(line);
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, values: &Record<'_>) {
        let mut line = "RECORD".to_owned();
        values.record(&mut Line(&mut line));
        self.0.lock().expect("capture lock").push(line);
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = event.metadata().level().to_string();
        event.record(&mut Line(&mut line));
        self.0.lock().expect("capture lock").push(line);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}
