//! Key rotation, one test body per promise, run unchanged over every backend: memory always,
//! SQLite with the `sqlite` feature, PostgreSQL with `postgres` (skipped with a message when
//! no server is reachable, unless CREDVAULT_REQUIRE_POSTGRES=1).

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use credvault::backend::{AuditQuery, Backend, RecordKey};
use credvault::envelope::MemoryTenantKeys;
use credvault::store::{
    ApiKey, KeyKind, ManualClock, ReencryptOptions, RotationPolicy, StoreError, Vault, VaultConfig,
};
use credvault::{KeyVersion, Keyring, SecretString, TenantId};

const T0: i64 = 1_763_856_000;
const TENANTS: [&str; 3] = ["acme", "globex", "initech"];

struct Fixture {
    vault: Vault,
    backend: Arc<dyn Backend>,
    clock: ManualClock,
    kek: Keyring,
    shred: Arc<MemoryTenantKeys>,
}

async fn fixture(backend: Arc<dyn Backend>) -> Fixture {
    let kek = Keyring::generate().unwrap();
    let shred = Arc::new(MemoryTenantKeys::new());
    let clock = ManualClock::new(T0);
    let vault = vault_with(
        &backend,
        kek.clone(),
        &shred,
        &clock,
        Duration::from_secs(1),
    );
    vault.migrate().await.unwrap();
    Fixture {
        vault,
        backend,
        clock,
        kek,
        shred,
    }
}

fn vault_with(
    backend: &Arc<dyn Backend>,
    kek: Keyring,
    shred: &Arc<MemoryTenantKeys>,
    clock: &ManualClock,
    tenant_cache_ttl: Duration,
) -> Vault {
    Vault::builder(Arc::clone(backend), kek, Arc::clone(shred))
        .config(VaultConfig {
            tenant_cache_ttl,
            ..VaultConfig::default()
        })
        .clock(clock.clone())
        .build()
}

fn api_key(value: &str) -> ApiKey {
    ApiKey {
        provider: "stripe".to_owned(),
        key: SecretString::from(value),
        label: None,
    }
}

fn key(tenant: &str, name: &str) -> RecordKey {
    RecordKey {
        tenant: TenantId::new(tenant).unwrap(),
        kind: "api_key".try_into().unwrap(),
        name: name.try_into().unwrap(),
    }
}

/// Puts `per_tenant` API keys in each of [`TENANTS`], valued `"<tenant>/<i>"`.
async fn seed(vault: &Vault, per_tenant: usize) {
    for t in TENANTS {
        let tenant = vault.tenant(t).unwrap();
        for i in 0..per_tenant {
            tenant
                .put(&format!("k{i:04}"), &api_key(&format!("{t}/{i}")))
                .await
                .unwrap();
        }
    }
}

/// Every record opens to its seeded value (or the value in `changed`).
async fn assert_contents(vault: &Vault, per_tenant: usize, changed: &BTreeMap<String, String>) {
    for t in TENANTS {
        let tenant = vault.tenant(t).unwrap();
        for i in 0..per_tenant {
            let name = format!("k{i:04}");
            let got = tenant.get::<ApiKey>(&name).await.unwrap();
            let want = changed
                .get(&format!("{t}/{name}"))
                .cloned()
                .unwrap_or_else(|| format!("{t}/{i}"));
            assert_eq!(got.value.key.expose_secret(), want, "{t}/{name}");
        }
    }
}

async fn dek_version_of(backend: &dyn Backend, tenant: &str, name: &str) -> KeyVersion {
    backend
        .get(&key(tenant, name))
        .await
        .unwrap()
        .unwrap()
        .dek_version
}

mod body {
    use super::*;

    pub(crate) async fn rotated_deks_keep_reads_working_and_reencrypt_moves_every_record(
        backend: Arc<dyn Backend>,
    ) {
        let f = fixture(backend).await;
        seed(&f.vault, 30).await;
        assert_eq!(
            f.vault.rotate_dek("acme").await.unwrap(),
            KeyVersion::new(2)
        );
        assert_eq!(f.vault.rotate_all_deks(|_| {}).await.unwrap().rotated, 3);
        // acme is at 3, the others at 2; every old record still opens.
        assert_contents(&f.vault, 30, &BTreeMap::new()).await;
        // New writes use the new key at once.
        let acme = f.vault.tenant("acme").unwrap();
        acme.put("fresh", &api_key("fresh")).await.unwrap();
        assert_eq!(
            dek_version_of(f.backend.as_ref(), "acme", "fresh").await,
            KeyVersion::new(3)
        );
        let v = acme.get::<ApiKey>("k0001").await.unwrap().version;
        acme.update("k0001", &api_key("updated"), v).await.unwrap();
        assert_eq!(
            dek_version_of(f.backend.as_ref(), "acme", "k0001").await,
            KeyVersion::new(3)
        );

        let mut seen = Vec::new();
        let options = ReencryptOptions {
            batch_size: 7,
            ..ReencryptOptions::default()
        };
        let report = f.vault.reencrypt(&options, |p| seen.push(p)).await.unwrap();
        assert_eq!(report.total, 89);
        assert_eq!(report.resealed, 89);
        assert_eq!((report.failed, report.remaining, report.changed), (0, 0, 0));
        // acme's versions 1 and 2, globex's and initech's version 1.
        assert_eq!(report.destroyed_deks, 4);
        assert!(seen.len() >= 89 / 7, "progress after every batch");
        assert_eq!(seen.last().unwrap().done, 89);
        assert_eq!(seen.last().unwrap().total, 89);

        let mut changed = BTreeMap::new();
        changed.insert("acme/k0001".to_owned(), "updated".to_owned());
        assert_contents(&f.vault, 30, &changed).await;
        for (t, v) in [("acme", 3), ("globex", 2), ("initech", 2)] {
            for i in 0..30 {
                let name = format!("k{i:04}");
                assert_eq!(
                    dek_version_of(f.backend.as_ref(), t, &name).await,
                    KeyVersion::new(v)
                );
            }
        }
        // The audit log counts the resealed records per tenant, naming the job.
        let audit = f.backend.audit(&AuditQuery::default()).await.unwrap();
        let mut per_tenant: BTreeMap<String, u64> = BTreeMap::new();
        for row in audit.iter().filter(|r| r.action == "reencrypt") {
            assert_eq!(row.actor, "job:reencrypt");
            assert_eq!((&row.kind, &row.name), (&None, &None));
            let n: u64 = row
                .outcome
                .strip_prefix("ok: ")
                .and_then(|o| o.strip_suffix(" records"))
                .unwrap()
                .parse()
                .unwrap();
            *per_tenant
                .entry(row.tenant.as_ref().unwrap().to_string())
                .or_default() += n;
        }
        let expected: BTreeMap<String, u64> = [("acme", 29), ("globex", 30), ("initech", 30)]
            .into_iter()
            .map(|(t, n)| (t.to_owned(), n))
            .collect();
        assert_eq!(per_tenant, expected);
        // Nothing left: a second run reseals nothing.
        let again = f.vault.reencrypt(&options, |_| {}).await.unwrap();
        assert_eq!((again.total, again.resealed, again.batches), (0, 0, 1));
        assert!(
            f.vault
                .key_report(&RotationPolicy::default())
                .await
                .unwrap()
                .is_clean()
        );
    }

    pub(crate) async fn kek_rotation_rewraps_deks_and_frees_the_old_kek(backend: Arc<dyn Backend>) {
        let f = fixture(backend).await;
        seed(&f.vault, 5).await;
        f.vault.rotate_dek("acme").await.unwrap(); // a retired DEK must be rewrapped too
        let mut kek = f.kek.clone();
        let v2 = kek.rotate().unwrap();
        let vault = vault_with(&f.backend, kek.clone(), &f.shred, &f.clock, Duration::ZERO);
        // Three current DEKs and acme's retired one are still under KEK 1.
        assert_eq!(vault.kek_usage(KeyVersion::new(1)).await.unwrap(), 4);
        let err = vault
            .destroy_kek(&mut kek, KeyVersion::new(1))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::KeyInUse { count: 4, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("4 tenant data keys"), "{err}");

        let report = vault.rewrap_deks(|_| {}).await.unwrap();
        assert_eq!((report.rewrapped, report.already_current), (4, 0));
        assert!(report.failures.is_empty());
        assert_eq!(vault.kek_usage(KeyVersion::new(1)).await.unwrap(), 0);
        assert_eq!(vault.kek_usage(v2).await.unwrap(), 4);
        // The first vault registered KEK 1 as its primary at T0: wait out the quiet period.
        let err = vault
            .destroy_kek(&mut kek, KeyVersion::new(1))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::KeyRecentlyUsed {
                    ago: 0,
                    quiet: 900,
                    ..
                }
            ),
            "{err:?}"
        );
        f.clock.advance(Duration::from_secs(900));
        vault
            .destroy_kek(&mut kek, KeyVersion::new(1))
            .await
            .unwrap();

        // A vault holding only KEK 2 reads everything, old DEK included.
        let fresh = vault_with(&f.backend, kek, &f.shred, &f.clock, Duration::ZERO);
        assert_contents(&fresh, 5, &BTreeMap::new()).await;
        let again = fresh.rewrap_deks(|_| {}).await.unwrap();
        assert_eq!((again.rewrapped, again.already_current), (0, 4));
        let r = fresh
            .reencrypt(&ReencryptOptions::default(), |_| {})
            .await
            .unwrap();
        assert_eq!((r.resealed, r.destroyed_deks), (5, 1));
    }

    pub(crate) async fn application_writes_during_reencryption_are_kept(backend: Arc<dyn Backend>) {
        let f = fixture(backend).await;
        seed(&f.vault, 60).await;
        f.vault.rotate_all_deks(|_| {}).await.unwrap();
        // Writers use a second vault (another application server) with its own cache.
        let app = vault_with(
            &f.backend,
            f.kek.clone(),
            &f.shred,
            &f.clock,
            Duration::from_secs(1),
        );
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let app = app.clone();
                tokio::spawn(async move {
                    let mut last = BTreeMap::new();
                    for n in 0..40u32 {
                        let t = TENANTS[usize::try_from((n + w) % 3).unwrap()];
                        let i = usize::try_from((n * 7 + w * 13) % 60).unwrap();
                        let name = format!("k{i:04}");
                        let value = format!("w{w}-n{n}");
                        let tenant = app.tenant(t).unwrap();
                        loop {
                            let cur = tenant.get::<ApiKey>(&name).await.unwrap();
                            match tenant.update(&name, &api_key(&value), cur.version).await {
                                Ok(_) => break,
                                Err(StoreError::Conflict { .. }) => continue,
                                Err(e) => panic!("{e}"),
                            }
                        }
                        last.insert(format!("{t}/{name}"), (cur_order(w, n), value));
                        tokio::task::yield_now().await;
                    }
                    last
                })
            })
            .collect();
        let options = ReencryptOptions {
            batch_size: 5,
            ..ReencryptOptions::default()
        };
        let report = f.vault.reencrypt(&options, |_| {}).await.unwrap();
        let mut writes: Vec<BTreeMap<String, (u64, String)>> = Vec::new();
        for w in writers {
            writes.push(w.await.unwrap());
        }
        // Finish what the writers left under a stale key (none, normally), then compare.
        let tail = f.vault.reencrypt(&options, |_| {}).await.unwrap();
        assert_eq!(tail.remaining, 0);
        assert_eq!(report.failed + tail.failed, 0);
        // The value each record ends with is the one its last update wrote: read the audit
        // order through the record versions instead of guessing: every written value must be
        // the current one unless another writer updated the record later.
        let mut final_values: BTreeMap<String, String> = BTreeMap::new();
        for t in TENANTS {
            let tenant = f.vault.tenant(t).unwrap();
            for i in 0..60 {
                let name = format!("k{i:04}");
                let v = tenant.get::<ApiKey>(&name).await.unwrap();
                final_values.insert(
                    format!("{t}/{name}"),
                    v.value.key.expose_secret().to_owned(),
                );
                assert_eq!(
                    dek_version_of(f.backend.as_ref(), t, &name).await,
                    KeyVersion::new(2)
                );
            }
        }
        for (record, value) in &final_values {
            let written: Vec<&String> = writes
                .iter()
                .filter_map(|m| m.get(record).map(|(_, v)| v))
                .collect();
            if written.is_empty() {
                let (t, name) = record.split_once('/').unwrap();
                let i: usize = name[1..].parse().unwrap();
                assert_eq!(value, &format!("{t}/{i}"), "untouched record changed");
            } else {
                assert!(
                    written.contains(&value),
                    "{record} holds {value}, which no writer's last write was: {written:?}"
                );
            }
        }
    }

    pub(crate) async fn stale_writer_seals_again_with_the_current_key(backend: Arc<dyn Backend>) {
        let f = fixture(backend).await;
        seed(&f.vault, 2).await;
        // Another server caches acme's row for an hour.
        let other = vault_with(
            &f.backend,
            f.kek.clone(),
            &f.shred,
            &f.clock,
            Duration::from_secs(3600),
        );
        let acme = other.tenant("acme").unwrap();
        let v = acme.get::<ApiKey>("k0000").await.unwrap().version;
        f.vault.rotate_dek("acme").await.unwrap();
        acme.put("new", &api_key("new")).await.unwrap();
        acme.update("k0000", &api_key("changed"), v).await.unwrap();
        for name in ["new", "k0000"] {
            assert_eq!(
                dek_version_of(f.backend.as_ref(), "acme", name).await,
                KeyVersion::new(2),
                "{name} was sealed with the rotated-out key"
            );
        }
        // The untouched record still opens with the retired key, on both servers.
        for vault in [&f.vault, &other] {
            let got = vault
                .tenant("acme")
                .unwrap()
                .get::<ApiKey>("k0001")
                .await
                .unwrap();
            assert_eq!(got.value.key.expose_secret(), "acme/1");
        }
    }

    pub(crate) async fn keys_in_use_are_not_destroyed_and_minimum_versions_are_enforced(
        backend: Arc<dyn Backend>,
    ) {
        let f = fixture(backend).await;
        seed(&f.vault, 4).await;
        f.vault.rotate_dek("acme").await.unwrap();
        let err = f
            .vault
            .destroy_dek("acme", KeyVersion::new(1))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::KeyInUse {
                    what: KeyKind::Dek,
                    count: 4,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = f
            .vault
            .destroy_dek("acme", KeyVersion::new(2))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::KeyRefused(_)), "{err:?}");
        let err = f
            .vault
            .destroy_dek("acme", KeyVersion::new(9))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::KeyRefused(_)), "{err:?}");

        // After a compromise of version 1: forbid it.
        let err = f
            .vault
            .set_min_dek_version("acme", KeyVersion::new(3))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::KeyRefused(_)), "{err:?}");
        f.vault
            .set_min_dek_version("acme", KeyVersion::new(2))
            .await
            .unwrap();
        let err = f
            .vault
            .tenant("acme")
            .unwrap()
            .get::<ApiKey>("k0000")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::DekBelowMinimum { .. }), "{err:?}");
        assert!(!err.to_string().contains("acme/0"), "{err}");
        let report = f
            .vault
            .key_report(&RotationPolicy::default())
            .await
            .unwrap();
        assert_eq!(report.records_below_minimum, 4);
        assert!(!report.is_clean());
        // The job leaves them (counted, named, never their content), and the key stays.
        let r = f
            .vault
            .reencrypt(&ReencryptOptions::default(), |_| {})
            .await
            .unwrap();
        assert_eq!(
            (r.resealed, r.failed, r.remaining, r.destroyed_deks),
            (0, 4, 4, 0)
        );
        assert_eq!(r.failures.len(), 4);
        assert!(
            r.failures[0].reason.contains("below the tenant's minimum"),
            "{:?}",
            r.failures
        );
        // Other tenants are unaffected.
        let got = f
            .vault
            .tenant("globex")
            .unwrap()
            .get::<ApiKey>("k0003")
            .await
            .unwrap();
        assert_eq!(got.value.key.expose_secret(), "globex/3");
    }

    pub(crate) async fn the_report_counts_records_per_key_and_flags_old_keys(
        backend: Arc<dyn Backend>,
    ) {
        let f = fixture(backend).await;
        seed(&f.vault, 3).await;
        f.vault.rotate_dek("globex").await.unwrap();
        f.vault
            .tenant("globex")
            .unwrap()
            .put("x", &api_key("x"))
            .await
            .unwrap();
        let policy = RotationPolicy {
            dek_max_age: Duration::from_secs(10 * 86_400),
            kek_max_age: Duration::from_secs(400 * 86_400),
        };
        let report = f.vault.key_report(&policy).await.unwrap();
        assert_eq!(report.records, 10);
        assert_eq!(report.records_pending_reencryption, 3);
        assert_eq!(report.records_with_destroyed_key, 0);
        let counts: Vec<(String, u32, u64)> = report
            .deks
            .iter()
            .map(|d| (d.tenant.to_string(), d.version.get(), d.records))
            .collect();
        assert_eq!(
            counts,
            [
                ("acme".to_owned(), 1, 3),
                ("globex".to_owned(), 1, 3),
                ("globex".to_owned(), 2, 1),
                ("initech".to_owned(), 1, 3)
            ]
        );
        assert_eq!(report.keks.len(), 1);
        assert_eq!(report.keks[0].wrapped_deks, 4);
        assert_eq!(report.overdue_keys, 0);
        // Eleven days later every current DEK is overdue.
        f.clock.advance(Duration::from_secs(11 * 86_400));
        let report = f.vault.key_report(&policy).await.unwrap();
        assert_eq!(report.overdue_keys, 3);
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.contains("\"state\":\"retired\""), "{json}");
        f.vault
            .reencrypt(&ReencryptOptions::default(), |_| {})
            .await
            .unwrap();
        let report = f.vault.key_report(&policy).await.unwrap();
        assert_eq!(report.records_pending_reencryption, 0);
        assert!(
            report
                .deks
                .iter()
                .any(|d| d.state == credvault::store::DekState::Destroyed)
        );
    }
}

/// A writer's write order key (for messages).
fn cur_order(w: u32, n: u32) -> u64 {
    u64::from(w) << 32 | u64::from(n)
}

macro_rules! rotation_suite {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;

            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let Some(made) = $make else { return };
                        body::$name(made.backend()).await;
                        made.finish().await;
                    }
                };
            }

            case!(rotated_deks_keep_reads_working_and_reencrypt_moves_every_record);
            case!(kek_rotation_rewraps_deks_and_frees_the_old_kek);
            case!(application_writes_during_reencryption_are_kept);
            case!(stale_writer_seals_again_with_the_current_key);
            case!(keys_in_use_are_not_destroyed_and_minimum_versions_are_enforced);
            case!(the_report_counts_records_per_key_and_flags_old_keys);
        }
    };
}

rotation_suite!(memory, Some(common::Made::memory()));

#[cfg(feature = "sqlite")]
rotation_suite!(sqlite, Some(common::sqlite_made().await));

#[cfg(feature = "postgres")]
rotation_suite!(postgres, common::postgres_made().await);
