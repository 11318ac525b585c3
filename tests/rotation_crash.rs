//! The re-encryption job survives being killed: a child process runs it over 20 000 records
//! and is killed with SIGKILL at 25 random points (SQLite, and PostgreSQL when reachable);
//! after each kill the job is started again. At the end every record opens to its original
//! content, the count is unchanged, and no record is sealed with a retired key.
//!
//! The child is this test binary run again with `CREDVAULT_CRASH_CHILD` set (the test
//! `crash_child` does nothing otherwise).
//!
//! The `..._across_suites_...` runs also switch the vault's sealing suite (AES-256-GCM ↔
//! Fernet) whenever a run finished: the job then moves every record to the other suite,
//! killed the same way, and at the end every record is sealed with the last suite.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use credvault::backend::Backend;
use credvault::crypto::SealingSuite;
use credvault::envelope::DirTenantKeys;
use credvault::store::{ApiKey, ReencryptOptions, RotationPolicy, Vault};
use credvault::{Keyring, SecretString};

const TENANTS: usize = 20;
const PER_TENANT: usize = 1_000;
const KILLS: u32 = 25;
const CHILD: &str = "CREDVAULT_CRASH_CHILD";

/// Where a run keeps its keys and database: shared by the parent and its children.
struct Place {
    db: String,
    schema: Option<String>,
    keys: PathBuf,
    shred: PathBuf,
    /// The suite the vault seals with (switched between runs by the cross-suite test).
    suite: SealingSuite,
}

async fn open(place: &Place) -> Vault {
    let backend: Arc<dyn Backend> = match &place.schema {
        None => Arc::new(
            credvault::backend::SqliteBackend::connect(&place.db)
                .await
                .unwrap(),
        ),
        #[cfg(feature = "postgres")]
        Some(schema) => Arc::new(
            credvault::backend::PgBackend::connect_with_schema(&place.db, schema)
                .await
                .unwrap(),
        ),
        #[cfg(not(feature = "postgres"))]
        Some(_) => unreachable!("postgres runs need the postgres feature"),
    };
    let vault = Vault::builder(
        backend,
        Keyring::load(&place.keys).unwrap(),
        DirTenantKeys::create(&place.shred).unwrap(),
    )
    .sealing_suite(place.suite)
    .build();
    vault.migrate().await.unwrap();
    vault
}

fn value(t: usize, i: usize) -> String {
    format!("sk_live_{t:02}_{i:05}_{}", "x".repeat(40))
}

/// Puts the records, 8 writers at a time.
async fn seed(vault: &Vault) {
    let mut tasks = Vec::new();
    for w in 0..8 {
        let vault = vault.clone();
        tasks.push(tokio::spawn(async move {
            for n in (w..TENANTS * PER_TENANT).step_by(8) {
                let (t, i) = (n / PER_TENANT, n % PER_TENANT);
                let key = ApiKey {
                    provider: "stripe".to_owned(),
                    key: SecretString::from(value(t, i)),
                    label: None,
                };
                vault
                    .tenant(&format!("t{t:02}"))
                    .unwrap()
                    .put(&format!("k{i:05}"), &key)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Runs the job in a child process and kills it `KILLS` times at random points, rotating
/// every data key again whenever a run finished before its kill. With `switch_suites`, the
/// sealing suite is switched too (and the data keys only every other time), and once more
/// halfway through the kills, in the middle of a job, so that records move both ways under
/// kills. Returns the kills survived and the suite switches.
async fn kill_repeatedly(place: &mut Place, vault: &mut Vault, switch_suites: bool) -> (u32, u32) {
    let mut kills = 0;
    let mut runs = 0;
    let mut switches = 0;
    let mut switched_halfway = false;
    while kills < KILLS {
        runs += 1;
        assert!(
            runs < 200,
            "the child finished before every kill: make it slower"
        );
        let done = vault.stale_records().await.unwrap() == 0;
        let halfway = switch_suites && !switched_halfway && kills >= KILLS / 2;
        if done || halfway {
            if switch_suites {
                place.suite = match place.suite {
                    SealingSuite::Fernet => SealingSuite::Aes256Gcm,
                    _ => SealingSuite::Fernet,
                };
                *vault = open(place).await;
                switches += 1;
                switched_halfway |= halfway;
            }
            if !switch_suites || (done && runs % 2 == 0) {
                vault.rotate_all_deks(|_| {}).await.unwrap();
            }
        }
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .env("CRASH_DB", &place.db)
            .env("CRASH_SCHEMA", place.schema.as_deref().unwrap_or(""))
            .env("CRASH_KEYS", &place.keys)
            .env("CRASH_SHRED", &place.shred)
            .env("CRASH_SUITE", place.suite.as_str())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("crash-child started") {
                    let _ = tx.send(());
                }
            }
        });
        // Kill somewhere in the job: after 0 to 400 ms of it.
        let started = rx.recv_timeout(Duration::from_secs(60)).is_ok();
        let delay = rand::random::<u64>() % 400;
        std::thread::sleep(Duration::from_millis(delay));
        if started && child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        let status = child.wait().unwrap();
        reader.join().unwrap();
        assert!(
            status.success() || kills > 0,
            "the child failed on its own: {status}"
        );
    }
    (kills, switches)
}

async fn check(vault: &Vault, suite: SealingSuite) {
    let report = vault
        .reencrypt(&ReencryptOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!((report.failed, report.remaining), (0, 0), "{report:?}");
    let keys = vault.key_report(&RotationPolicy::default()).await.unwrap();
    assert_eq!(keys.records, u64::try_from(TENANTS * PER_TENANT).unwrap());
    assert_eq!(keys.records_pending_reencryption, 0);
    assert_eq!(keys.records_with_destroyed_key, 0);
    assert_eq!(keys.records_to_reseal, 0);
    assert_eq!(
        keys.records_by_suite.get(&suite).copied(),
        Some(keys.records),
        "every record is sealed with {suite}: {:?}",
        keys.records_by_suite
    );
    assert!(
        keys.deks
            .iter()
            .filter(|d| d.state != credvault::store::DekState::Current)
            .all(|d| d.records == 0 && d.state == credvault::store::DekState::Destroyed),
        "a retired key still seals records or was not destroyed"
    );
    for t in 0..TENANTS {
        let tenant = vault.tenant(&format!("t{t:02}")).unwrap();
        let listed = tenant.list(None).await.unwrap();
        assert_eq!(listed.len(), PER_TENANT);
        for i in 0..PER_TENANT {
            let got = tenant.get::<ApiKey>(&format!("k{i:05}")).await.unwrap();
            assert_eq!(got.value.key.expose_secret(), value(t, i));
            assert_eq!(got.version, 1, "re-encryption changed a record's version");
        }
    }
}

async fn run(db: String, schema: Option<String>, dir: &Path, switch_suites: bool) {
    let mut place = Place {
        db,
        schema,
        keys: dir.join("keys.json"),
        shred: dir.join("shred"),
        suite: SealingSuite::Aes256Gcm,
    };
    Keyring::generate().unwrap().save(&place.keys).unwrap();
    let mut vault = open(&place).await;
    seed(&vault).await;
    let (kills, switches) = kill_repeatedly(&mut place, &mut vault, switch_suites).await;
    if switch_suites {
        assert!(switches >= 2, "the suite was switched {switches} times");
    }
    check(&vault, place.suite).await;
    println!(
        "re-encryption survived {kills} SIGKILLs over {} records ({switches} suite switches, last {})",
        TENANTS * PER_TENANT,
        place.suite
    );
}

/// The child: runs the job and says when it starts. Does nothing in a normal test run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let schema = std::env::var("CRASH_SCHEMA").unwrap();
    let place = Place {
        db: std::env::var("CRASH_DB").unwrap(),
        schema: (!schema.is_empty()).then_some(schema),
        keys: std::env::var("CRASH_KEYS").unwrap().into(),
        shred: std::env::var("CRASH_SHRED").unwrap().into(),
        suite: std::env::var("CRASH_SUITE").unwrap().parse().unwrap(),
    };
    let vault = open(&place).await;
    println!("crash-child started");
    let options = ReencryptOptions {
        batch_size: 100,
        ..ReencryptOptions::default()
    };
    let report = vault.reencrypt(&options, |_| {}).await.unwrap();
    println!("crash-child done {}", report.resealed);
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reencryption_survives_sigkill_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("vault.db").display());
    run(db, None, dir.path(), false).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reencryption_across_suites_survives_sigkill_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("vault.db").display());
    run(db, None, dir.path(), true).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reencryption_survives_sigkill_on_postgres() {
    let Some((pool, schema)) = common::postgres_schema().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    run(
        common::postgres_url(),
        Some(schema.clone()),
        dir.path(),
        false,
    )
    .await;
    common::drop_postgres_schema(pool, schema).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reencryption_across_suites_survives_sigkill_on_postgres() {
    let Some((pool, schema)) = common::postgres_schema().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    run(
        common::postgres_url(),
        Some(schema.clone()),
        dir.path(),
        true,
    )
    .await;
    common::drop_postgres_schema(pool, schema).await;
}
