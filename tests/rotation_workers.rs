//! Several workers share one re-encryption job: two and four vaults, each with its own
//! connection pool (as separate processes would be), run `reencrypt` at once on PostgreSQL
//! (and two on one SQLite file). Every record is resealed exactly once: the workers' counts
//! add up to the number of records, none lost a compare-and-swap (no record was claimed
//! twice), no record is left under an old key, and the audit log's per-tenant counts agree.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use std::future::Future;
use std::sync::Arc;

use credvault::backend::{AuditQuery, Backend};
use credvault::envelope::MemoryTenantKeys;
use credvault::store::{ApiKey, ReencryptOptions, ReencryptReport, Vault};
use credvault::{Keyring, SecretString};

const TENANTS: usize = 8;
const PER_TENANT: usize = 250;

fn vault(backend: Arc<dyn Backend>, kek: &Keyring, shred: &Arc<MemoryTenantKeys>) -> Vault {
    Vault::builder(backend, kek.clone(), Arc::clone(shred)).build()
}

async fn seed(vault: &Vault) {
    for t in 0..TENANTS {
        let tenant = vault.tenant(&format!("t{t}")).unwrap();
        for i in 0..PER_TENANT {
            let key = ApiKey {
                provider: "stripe".to_owned(),
                key: SecretString::from(format!("sk_{t}_{i}")),
                label: None,
            };
            tenant.put(&format!("k{i:04}"), &key).await.unwrap();
        }
    }
}

/// Rotates every data key, runs `workers` jobs at once (one per backend from `connect`), and
/// checks that each record was resealed exactly once.
async fn share_one_job<F, Fut>(workers: usize, connect: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Backend>>,
{
    let kek = Keyring::generate().unwrap();
    let shred = Arc::new(MemoryTenantKeys::new());
    let main = vault(connect().await, &kek, &shred);
    main.migrate().await.unwrap();
    seed(&main).await;
    let total = u64::try_from(TENANTS * PER_TENANT).unwrap();
    for round in 1..=2 {
        main.rotate_all_deks(|_| {}).await.unwrap();
        let mut jobs = Vec::new();
        for w in 0..workers {
            let v = vault(connect().await, &kek, &shred);
            jobs.push(tokio::spawn(async move {
                let options = ReencryptOptions {
                    batch_size: 25,
                    actor: format!("job:reencrypt:{w}"),
                    ..ReencryptOptions::default()
                };
                v.reencrypt(&options, |_| {}).await.unwrap()
            }));
        }
        let mut reports: Vec<ReencryptReport> = Vec::new();
        for j in jobs {
            reports.push(j.await.unwrap());
        }
        let resealed: u64 = reports.iter().map(|r| r.resealed).sum();
        let changed: u64 = reports.iter().map(|r| r.changed).sum();
        let failed: u64 = reports.iter().map(|r| r.failed).sum();
        println!(
            "round {round}: {workers} workers resealed {:?} of {total}",
            reports.iter().map(|r| r.resealed).collect::<Vec<_>>()
        );
        assert_eq!(resealed, total, "{reports:?}");
        assert_eq!((changed, failed), (0, 0), "{reports:?}");
        // Every record moved (none is left under an old key) and the workers wrote exactly as
        // many as there are: so each was written once. The audit log, per tenant, agrees.
        assert_eq!(main.stale_records().await.unwrap(), 0);
        let audit = main.audit(&AuditQuery::default()).await.unwrap();
        let audited: u64 = audit
            .iter()
            .filter(|r| r.action == "reencrypt")
            .map(|r| {
                r.outcome
                    .strip_prefix("ok: ")
                    .and_then(|o| o.strip_suffix(" records"))
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            })
            .sum();
        assert_eq!(audited, total * round, "audit disagrees with the seals");
    }
    let t3 = main.tenant("t3").unwrap();
    let got = t3.get::<ApiKey>("k0042").await.unwrap();
    assert_eq!(got.value.key.expose_secret(), "sk_3_42");
}

#[cfg(feature = "postgres")]
async fn on_postgres(workers: usize) {
    let Some((pool, schema)) = common::postgres_schema().await else {
        return;
    };
    let url = common::postgres_url();
    share_one_job(workers, || {
        let (url, schema) = (url.clone(), schema.clone());
        async move {
            let b = credvault::backend::PgBackend::connect_with_schema(&url, &schema)
                .await
                .unwrap();
            Arc::new(b) as Arc<dyn Backend>
        }
    })
    .await;
    common::drop_postgres_schema(pool, schema).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_on_postgres_reseal_each_record_once() {
    on_postgres(2).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_workers_on_postgres_reseal_each_record_once() {
    on_postgres(4).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_on_one_sqlite_file_reseal_each_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("vault.db").display());
    share_one_job(2, || {
        let url = url.clone();
        async move {
            let b = credvault::backend::SqliteBackend::connect(&url)
                .await
                .unwrap();
            Arc::new(b) as Arc<dyn Backend>
        }
    })
    .await;
}
