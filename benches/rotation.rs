//! Re-encrypting every record after a data key rotation: the vault's job (batches claimed,
//! resealed and written back in one transaction each, one audit row per record) next to a
//! plain loop over a table of the same rows in the same database, one by one: `SELECT` the
//! sealed value, AES-256-GCM open with the old key, seal with the new, autocommit `UPDATE`.
//! Also prints the job's peak resident-memory growth, which must not depend on the number of
//! records (compare `CREDVAULT_BENCH_RECORDS=100000` with `=1000000`).
//!
//! `cargo bench --all-features --bench rotation` (records: `CREDVAULT_BENCH_RECORDS`, default
//! 100 000; PostgreSQL at `CREDVAULT_PG_URL`, default the local `test` database, skipped with
//! a message when unreachable). `CREDVAULT_BENCH_RSS_ONLY=1` runs the job once per database
//! and prints its time and memory growth, without the plain loop (for 1 000 000 records).

#![allow(
    clippy::unwrap_used,
    reason = "benches fail loudly on unexpected errors"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead as _, KeyInit as _};
use aes_gcm::{Aes256Gcm, Nonce};
use credvault::backend::Backend;
use credvault::envelope::MemoryTenantKeys;
use credvault::store::{ApiKey, ReencryptOptions, Vault};
use credvault::{Keyring, SecretString};
use criterion::{Criterion, criterion_group, criterion_main};
use rand::Rng as _;

const TENANTS: usize = 100;

fn records() -> usize {
    if std::env::args().any(|a| a == "--test") {
        return 2_000; // CI's smoke run
    }
    std::env::var("CREDVAULT_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn value(n: usize) -> ApiKey {
    ApiKey {
        provider: "stripe".to_owned(),
        key: SecretString::from(format!("sk_live_{n:012}_{}", "k".repeat(64))),
        label: Some("billing".to_owned()),
    }
}

/// A database under test: the vault over it, and a raw pool for the plain loop's table.
enum Db {
    Sqlite(credvault::backend::SqliteBackend),
    #[cfg(feature = "postgres")]
    Pg(credvault::backend::PgBackend, String),
}

impl Db {
    fn backend(&self) -> Arc<dyn Backend> {
        match self {
            Db::Sqlite(b) => Arc::new(b.clone()),
            #[cfg(feature = "postgres")]
            Db::Pg(b, _) => Arc::new(b.clone()),
        }
    }

    async fn exec(&self, sql: &str) {
        match self {
            Db::Sqlite(b) => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(b.pool())
                    .await
                    .unwrap();
            }
            #[cfg(feature = "postgres")]
            Db::Pg(b, schema) => {
                let sql = sql.replace("plain", &format!("\"{schema}\".plain"));
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(b.pool())
                    .await
                    .unwrap();
            }
        }
    }

    fn table(&self) -> String {
        match self {
            Db::Sqlite(_) => "plain".to_owned(),
            #[cfg(feature = "postgres")]
            Db::Pg(_, schema) => format!("\"{schema}\".plain"),
        }
    }
}

fn seal(key: &Aes256Gcm, plain: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; 12];
    rand::rng().fill_bytes(&mut nonce);
    let mut out = nonce.to_vec();
    out.extend(key.encrypt(&Nonce::from(nonce), plain).unwrap());
    out
}

fn open(key: &Aes256Gcm, sealed: &[u8]) -> Vec<u8> {
    let (nonce, ct) = sealed.split_at(12);
    key.decrypt(&Nonce::try_from(nonce).unwrap(), ct).unwrap()
}

/// Seeds `n` records through the vault (8 writers) and the same number into the plain table.
async fn seed(db: &Db, vault: &Vault, n: usize, old: &Aes256Gcm) {
    let mut tasks = Vec::new();
    for w in 0..8 {
        let vault = vault.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(8) {
                let tenant = vault.tenant(&format!("t{:03}", i % TENANTS)).unwrap();
                tenant.put(&format!("k{i:07}"), &value(i)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    db.exec("CREATE TABLE plain (tenant_id TEXT NOT NULL, name TEXT NOT NULL, sealed BYTEA NOT NULL, PRIMARY KEY (tenant_id, name))")
        .await;
    let table = db.table();
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut sql = format!("INSERT INTO {table} (tenant_id, name, sealed) VALUES ");
        for (j, i) in chunk.iter().enumerate() {
            let sep = if j == 0 { "" } else { "," };
            let json = serde_json::to_vec(&value(*i)).unwrap();
            let hex: String = seal(old, &json)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let blob = match db {
                Db::Sqlite(_) => format!("X'{hex}'"),
                #[cfg(feature = "postgres")]
                Db::Pg(..) => format!("'\\x{hex}'::bytea"),
            };
            sql.push_str(&format!("{sep}('t{:03}', 'k{i:07}', {blob})", i % TENANTS));
        }
        match db {
            Db::Sqlite(b) => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(b.pool())
                    .await
                    .unwrap();
            }
            #[cfg(feature = "postgres")]
            Db::Pg(b, _) => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(b.pool())
                    .await
                    .unwrap();
            }
        }
    }
}

/// The plain loop: every row one by one, `from` key to `to` key.
async fn plain_loop(db: &Db, n: usize, from: &Aes256Gcm, to: &Aes256Gcm) {
    let table = db.table();
    let select = format!("SELECT sealed FROM {table} WHERE tenant_id = $1 AND name = $2");
    let update = format!("UPDATE {table} SET sealed = $3 WHERE tenant_id = $1 AND name = $2");
    for i in 0..n {
        let (t, k) = (format!("t{:03}", i % TENANTS), format!("k{i:07}"));
        let sealed: Vec<u8> = match db {
            Db::Sqlite(b) => sqlx::query_scalar(sqlx::AssertSqlSafe(select.clone()))
                .bind(&t)
                .bind(&k)
                .fetch_one(b.pool())
                .await
                .unwrap(),
            #[cfg(feature = "postgres")]
            Db::Pg(b, _) => sqlx::query_scalar(sqlx::AssertSqlSafe(select.clone()))
                .bind(&t)
                .bind(&k)
                .fetch_one(b.pool())
                .await
                .unwrap(),
        };
        let resealed = seal(to, &open(from, &sealed));
        match db {
            Db::Sqlite(b) => {
                sqlx::query(sqlx::AssertSqlSafe(update.clone()))
                    .bind(&t)
                    .bind(&k)
                    .bind(resealed)
                    .execute(b.pool())
                    .await
                    .unwrap();
            }
            #[cfg(feature = "postgres")]
            Db::Pg(b, _) => {
                sqlx::query(sqlx::AssertSqlSafe(update.clone()))
                    .bind(&t)
                    .bind(&k)
                    .bind(resealed)
                    .execute(b.pool())
                    .await
                    .unwrap();
            }
        }
    }
}

/// Resident memory now, in bytes (Linux), 0 elsewhere.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Runs the job once, sampling resident memory; returns (time, peak growth in bytes).
async fn job_once(vault: &Vault) -> (Duration, u64) {
    vault.rotate_all_deks(|_| {}).await.unwrap();
    let base = rss();
    let peak = Arc::new(AtomicU64::new(base));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let start = Instant::now();
    let report = vault
        .reencrypt(&ReencryptOptions::default(), |_| {})
        .await
        .unwrap();
    let took = start.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    assert_eq!((report.failed, report.remaining), (0, 0));
    (took, peak.load(Ordering::Relaxed).saturating_sub(base))
}

/// The runtime every database handle of one bench lives on (a pool outlives no runtime).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn run(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, db: Db) {
    let n = records();
    let old = Aes256Gcm::new(&[1u8; 32].into());
    let new = Aes256Gcm::new(&[2u8; 32].into());
    let vault = Vault::builder(
        db.backend(),
        Keyring::generate().unwrap(),
        MemoryTenantKeys::new(),
    )
    .build();
    rt.block_on(async {
        vault.migrate().await.unwrap();
        seed(&db, &vault, n, &old).await;
    });
    if std::env::var("CREDVAULT_BENCH_RSS_ONLY").as_deref() == Ok("1") {
        // One run of the job, no plain loop (for 1 000 000 records the loop takes too long).
        let (took, growth) = rt.block_on(job_once(&vault));
        println!(
            "reencrypt_{name}_{n}: one job run {took:?}; peak resident memory growth {:.1} MiB",
            growth as f64 / (1024.0 * 1024.0)
        );
        return;
    }
    let mut group = c.benchmark_group(format!("reencrypt_{name}_{n}"));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(1));
    group.warm_up_time(Duration::from_millis(1));
    let mut peak_growth = 0u64;
    group.bench_function("credvault_job", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (took, growth) = rt.block_on(job_once(&vault));
                total += took;
                peak_growth = peak_growth.max(growth);
            }
            total
        });
    });
    let mut forward = true;
    group.bench_function("plain_loop", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (from, to) = if forward { (&old, &new) } else { (&new, &old) };
                forward = !forward;
                let start = Instant::now();
                rt.block_on(plain_loop(&db, n, from, to));
                total += start.elapsed();
            }
            total
        });
    });
    group.finish();
    println!(
        "reencrypt_{name}_{n}: peak resident memory growth during the job: {:.1} MiB",
        peak_growth as f64 / (1024.0 * 1024.0)
    );
}

fn sqlite(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let rt = runtime();
    let backend = rt
        .block_on(credvault::backend::SqliteBackend::connect(&url))
        .unwrap();
    run(c, &rt, "sqlite", Db::Sqlite(backend));
}

#[cfg(feature = "postgres")]
fn postgres(c: &mut Criterion) {
    let url = std::env::var("CREDVAULT_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("cv_bench_{:016x}", rand::random::<u64>());
    let rt = runtime();
    let Ok(backend) = rt.block_on(credvault::backend::PgBackend::connect_with_schema(
        &url, &schema,
    )) else {
        eprintln!("postgres bench skipped: cannot reach {url}; start PostgreSQL to run it");
        return;
    };
    run(c, &rt, "postgres", Db::Pg(backend.clone(), schema.clone()));
    rt.block_on(async {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA \"{schema}\" CASCADE"
        )))
        .execute(backend.pool())
        .await
        .unwrap();
    });
}

#[cfg(not(feature = "postgres"))]
fn postgres(_: &mut Criterion) {
    eprintln!("postgres bench skipped: build with --features postgres");
}

criterion_group!(benches, sqlite, postgres);
criterion_main!(benches);
