//! Helpers shared by the integration tests.
//!
//! Interop tests drive the installed Python. On a developer's machine without the Python
//! packages they skip with a message saying how to enable them; with
//! `CREDVAULT_REQUIRE_INTEROP=1` (set by `.ci/run`) a missing package fails the test instead,
//! so CI can never pass by skipping.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a different subset"
)]

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Name of the environment variable that turns a skipped interop test into a failure.
pub const REQUIRE_INTEROP: &str = "CREDVAULT_REQUIRE_INTEROP";

/// The Python interpreter to use (`CREDVAULT_PYTHON`, default `python3`).
pub fn python_exe() -> String {
    std::env::var("CREDVAULT_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Whether `python3 -c "import <module>"` works for every module given. When one is missing,
/// prints how to enable the test and returns `false`, or panics under `CREDVAULT_REQUIRE_INTEROP`.
pub fn python_has(modules: &[&str]) -> bool {
    let script = modules
        .iter()
        .map(|m| format!("import {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    let ok = Command::new(python_exe())
        .args(["-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        let msg = format!(
            "python interop skipped: `{} -c \"{script}\"` failed; install the packages \
             (see .ci/run, e.g. `pip install -r tests/python/requirements.txt`) to enable it",
            python_exe()
        );
        if std::env::var_os(REQUIRE_INTEROP).is_some_and(|v| v == "1") {
            panic!("{msg} ({REQUIRE_INTEROP}=1 forbids skipping)");
        }
        eprintln!("{msg}");
    }
    ok
}

/// Runs a Python script with `input` on stdin and returns its stdout. Panics (test failure)
/// with Python's stderr if the script fails.
pub fn run_python(script: &str, input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(python_exe())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python");
    let mut stdin = child.stdin.take().expect("python stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        stdin.write_all(&input).expect("write python stdin");
    });
    let out = child.wait_with_output().expect("wait for python");
    writer.join().expect("stdin writer");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

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
