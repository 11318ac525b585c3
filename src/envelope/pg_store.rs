//! Shred secrets in a PostgreSQL database that several application servers share, kept apart
//! from the vault's own data.
//!
//! The point of a separate database (or at least a separate schema with its own backup
//! policy): a tenant's records in every backup of the vault's data become unreadable once its
//! shred secret is gone, so the *store's* backups are what bound how long a purged tenant stays
//! recoverable. Keep them short (SECURITY.md, "Shred secrets in PostgreSQL").
//!
//! [`TenantKeyStore`] is synchronous (the vault calls it on tokio's blocking pool); this store
//! runs its queries on a thread of its own with its own small runtime and pool, so it works
//! whichever runtime (or none) the caller is on.

use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool};

use crate::envelope::TenantKeyStore;
use crate::envelope::shred::random_secret;
use crate::keys::KeyError;
use crate::{SecretBytes, TenantId};

/// How long a query may wait for a connection before the store reports itself unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

type Job = Box<dyn FnOnce(PgPool) -> BoxFuture + Send>;
type BoxFuture = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Shred secrets in PostgreSQL: table `credvault_shred_secrets` (tenant, secret, created_at)
/// and the store's identity in `credvault_shred_store`, in `schema`.
///
/// Fails closed like the directory store: [`open`](Self::open) refuses a database or schema
/// without the store's identity row (a mistyped URL is never a fresh, empty store); only
/// [`create`](Self::create) makes one. Purging a tenant deletes its row: no backup of the
/// vault's data can open its records after that, but a backup *of this store* taken before
/// can, until it expires.
pub struct PgTenantKeys {
    jobs: Mutex<Sender<Job>>,
    schema: String,
    place: String,
    id: String,
}

impl std::fmt::Debug for PgTenantKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTenantKeys")
            .field("place", &self.place)
            .finish_non_exhaustive()
    }
}

impl PgTenantKeys {
    /// Opens the existing store at `url` (`postgres://user@host/database`) in `schema`.
    ///
    /// # Errors
    ///
    /// [`KeyError::Store`] if the server cannot be reached, the schema name is invalid, or it
    /// holds no store (see [`create`](Self::create)).
    pub fn open(url: &str, schema: &str) -> Result<Self, KeyError> {
        let mut store = Self::connect(url, schema)?;
        store.id = store.read_id()?.ok_or_else(|| {
            store.error(
                "no credvault shred-secret store here (a mistyped URL or schema?); \
                 PgTenantKeys::create makes one",
            )
        })?;
        Ok(store)
    }

    /// Creates the store at `url` in `schema` (the schema and tables too), or opens the one
    /// already there.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn create(url: &str, schema: &str) -> Result<Self, KeyError> {
        let mut store = Self::connect(url, schema)?;
        let s = store.schema.clone();
        let new_id = format!("pg-{}", hex(random_secret()?.expose_secret()));
        store.run(move |pool| async move {
            let mut tx = pool.begin().await?;
            sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS {s}")))
                .execute(&mut *tx)
                .await?;
            sqlx::query(AssertSqlSafe(format!(
                "CREATE TABLE IF NOT EXISTS {s}.credvault_shred_secrets (\
                 tenant TEXT PRIMARY KEY, secret BYTEA NOT NULL, created_at BIGINT NOT NULL)"
            )))
            .execute(&mut *tx)
            .await?;
            sqlx::query(AssertSqlSafe(format!(
                "CREATE TABLE IF NOT EXISTS {s}.credvault_shred_store (\
                 singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton), id TEXT NOT NULL)"
            )))
            .execute(&mut *tx)
            .await?;
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {s}.credvault_shred_store (id) VALUES ($1) ON CONFLICT DO NOTHING"
            )))
            .bind(new_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        })?;
        store.id = store
            .read_id()?
            .ok_or_else(|| store.error("the store's identity row vanished"))?;
        Ok(store)
    }

    fn connect(url: &str, schema: &str) -> Result<Self, KeyError> {
        let place = format!("postgresql {}, schema {schema}", redact(url));
        let valid = schema
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && schema.len() <= 63
            && !schema.starts_with("pg_");
        if !valid {
            return Err(KeyError::Store {
                place,
                problem: "invalid schema name: lowercase ascii letters, digits and _".to_owned(),
            });
        }
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (ready, started) = mpsc::channel::<Result<(), String>>();
        let url = url.to_owned();
        std::thread::Builder::new()
            .name("credvault-pg-shred".to_owned())
            .spawn(move || worker(&url, &inbox, &ready))
            .map_err(|e| KeyError::Store {
                place: place.clone(),
                problem: format!("cannot start its thread: {e}"),
            })?;
        match started.recv() {
            Ok(Ok(())) => {}
            Ok(Err(problem)) => return Err(KeyError::Store { place, problem }),
            Err(_) => {
                return Err(KeyError::Store {
                    place,
                    problem: "its thread stopped".to_owned(),
                });
            }
        }
        Ok(Self {
            jobs: Mutex::new(jobs),
            schema: schema.to_owned(),
            place,
            id: String::new(),
        })
    }

    fn read_id(&self) -> Result<Option<String>, KeyError> {
        let s = self.schema.clone();
        let found = self.run(move |pool| async move {
            let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
                .bind(format!("{s}.credvault_shred_store"))
                .fetch_one(&pool)
                .await?;
            if exists.is_none() {
                return Ok(None);
            }
            sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT id FROM {s}.credvault_shred_store"
            )))
            .fetch_optional(&pool)
            .await
        })?;
        Ok(found)
    }

    /// Runs `query` on the store's thread and waits for it.
    fn run<T, F, Fut>(&self, query: F) -> Result<T, KeyError>
    where
        T: Send + 'static,
        F: FnOnce(PgPool) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, sqlx::Error>> + Send + 'static,
    {
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |pool| {
            Box::pin(async move {
                let _ = reply.send(query(pool).await);
            })
        });
        self.jobs
            .lock()
            .map_err(|_| self.error("its job queue is poisoned"))?
            .send(job)
            .map_err(|_| self.error("its thread stopped"))?;
        answer
            .recv()
            .map_err(|_| self.error("its thread stopped"))?
            .map_err(|e| self.error(&format!("query failed: {}", sql_problem(&e))))
    }

    /// A stored secret, refused if it is not 32 bytes (a corrupt or foreign row).
    fn checked(&self, secret: impl Into<Option<Vec<u8>>>) -> Result<Option<SecretBytes>, KeyError> {
        match secret.into() {
            None => Ok(None),
            Some(s) if s.len() == crate::envelope::shred::SHRED_SECRET_LEN => {
                Ok(Some(SecretBytes::new(s)))
            }
            Some(_) => Err(self.error("a stored shred secret has the wrong length")),
        }
    }

    fn error(&self, problem: &str) -> KeyError {
        KeyError::Store {
            place: self.place.clone(),
            problem: problem.to_owned(),
        }
    }

    /// Checks that the store still has the identity it was opened with (a database swapped or
    /// restored under a running process is refused, never filled with new secrets).
    fn check(&self) -> Result<(), KeyError> {
        match self.read_id()? {
            Some(id) if id == self.id => Ok(()),
            _ => Err(self.error("its identity changed or vanished since it was opened")),
        }
    }
}

/// The store's thread: a current-thread runtime and a pool, answering jobs until the store is
/// dropped.
fn worker(url: &str, inbox: &Receiver<Job>, ready: &Sender<Result<(), String>>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot start its runtime: {e}")));
            return;
        }
    };
    let pool = runtime.block_on(
        PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url),
    );
    let pool = match pool {
        Ok(pool) => pool,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot connect: {}", sql_problem(&e))));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    while let Ok(job) = inbox.recv() {
        runtime.block_on(job(pool.clone()));
    }
    runtime.block_on(pool.close());
}

/// A database error without the query's parameters (a secret is a parameter).
fn sql_problem(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}

/// The URL without a password or query parameters.
fn redact(url: &str) -> String {
    // Parameters may carry secrets too (`?password=...`): errors show none of them.
    let url = url.split_once('?').map_or(url, |(base, _)| base);
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl TenantKeyStore for PgTenantKeys {
    fn get_or_create(&self, tenant: &TenantId) -> Result<SecretBytes, KeyError> {
        self.check()?;
        let (s, t) = (self.schema.clone(), tenant.as_str().to_owned());
        let fresh = random_secret()?;
        let now = i64::try_from(crate::keys::now_secs()).unwrap_or(i64::MAX);
        let secret: Vec<u8> = self.run(move |pool| async move {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {s}.credvault_shred_secrets (tenant, secret, created_at) \
                 VALUES ($1, $2, $3) ON CONFLICT (tenant) DO NOTHING"
            )))
            .bind(&t)
            .bind(fresh.expose_secret())
            .bind(now)
            .execute(&pool)
            .await?;
            sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT secret FROM {s}.credvault_shred_secrets WHERE tenant = $1"
            )))
            .bind(&t)
            .fetch_one(&pool)
            .await
        })?;
        self.checked(secret)
            .map(|s| s.ok_or_else(|| self.error("a row vanished")))?
    }

    fn get(&self, tenant: &TenantId) -> Result<Option<SecretBytes>, KeyError> {
        self.check()?;
        let (s, t) = (self.schema.clone(), tenant.as_str().to_owned());
        let secret: Option<Vec<u8>> = self.run(move |pool| async move {
            sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT secret FROM {s}.credvault_shred_secrets WHERE tenant = $1"
            )))
            .bind(&t)
            .fetch_optional(&pool)
            .await
        })?;
        self.checked(secret)
    }

    fn destroy(&self, tenant: &TenantId) -> Result<(), KeyError> {
        self.check()?;
        let (s, t) = (self.schema.clone(), tenant.as_str().to_owned());
        self.run(move |pool| async move {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {s}.credvault_shred_secrets WHERE tenant = $1"
            )))
            .bind(&t)
            .execute(&pool)
            .await
            .map(drop)
        })
    }

    fn identity(&self) -> Result<String, KeyError> {
        self.check()?;
        Ok(self.id.clone())
    }

    fn describe(&self) -> String {
        self.place.clone()
    }
}
