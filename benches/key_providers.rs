//! `get` on a SQLite vault whose KEK is the local keyring next to the same vault whose KEK is
//! in a PKCS#11 token (SoftHSM2) and (feature `aws-kms`) in AWS KMS (moto's local server), in
//! the same run (issue 16): warm (the data key cached: no key call) and cold (a key cache of
//! one, reads alternating between two tenants: one unwrap per read, in the token, in KMS or in
//! memory). Also prints the key calls per 10 000 warm reads over 100 tenants, and each
//! provider's warm and cold `get` against the keyring's measured *interleaved* (blocks of
//! reads taken in turn, provider after provider, the median block of each), which is the
//! ratio to quote: criterion's groups run one provider after the other.
//!
//! `cargo bench --features pkcs11 --bench key_providers` (needs `softhsm2`);
//! `cargo bench --all-features --bench key_providers` adds KMS (needs `pip install
//! 'moto[server]'`). A provider whose service is missing is skipped with a message, unless
//! `CREDVAULT_REQUIRE_PKCS11=1` / `CREDVAULT_REQUIRE_KMS=1` (CI).
//!
//! `CREDVAULT_BENCH_TENANTS=100000 CREDVAULT_BENCH_CACHE=10000 cargo bench --features pkcs11
//! --bench key_providers` instead reads every one of that many tenants once through a handle
//! whose key cache holds `CREDVAULT_BENCH_CACHE` keys, and prints the resident memory the reads
//! added and the cache's size (run it again with the cache as large as the tenants to see the
//! unbounded case).

#![allow(
    clippy::unwrap_used,
    reason = "benches fail loudly on unexpected errors"
)]

use std::hint::black_box;
use std::sync::Arc;

use credvault::backend::{Backend, SqliteBackend};
use credvault::envelope::MemoryTenantKeys;
use credvault::keys::KeyProvider;
use credvault::keys::pkcs11::{Pkcs11Config, Pkcs11Keys};
use credvault::store::{OAuthToken, Vault};
use credvault::{Keyring, SecretString};
use criterion::{Criterion, criterion_group, criterion_main};

const TENANTS: usize = 100;

#[path = "common/interleaved.rs"]
mod interleaved;
use interleaved::interleaved;

#[path = "../tests/common/softhsm.rs"]
mod softhsm;

#[cfg(feature = "aws-kms")]
#[path = "../tests/common/moto.rs"]
mod moto;

/// A KEK in a SoftHSM2 token in a temporary directory, or `None` when SoftHSM2 is missing.
fn softhsm() -> Option<Pkcs11Keys> {
    let Some(module) = softhsm::module() else {
        assert!(
            std::env::var("CREDVAULT_REQUIRE_PKCS11").as_deref() != Ok("1"),
            "CREDVAULT_REQUIRE_PKCS11=1 but SoftHSM2 is missing"
        );
        eprintln!("skipping the PKCS#11 side: install softhsm2");
        return None;
    };
    softhsm::init_token("bench", "1234");
    Some(
        Pkcs11Keys::init(Pkcs11Config {
            module,
            token_label: "bench".to_owned(),
            pin: SecretString::from("1234"),
            key_label: "bench-kek".to_owned(),
        })
        .unwrap(),
    )
}

/// A KEK in moto's local KMS (a new key), or `None` when moto is missing (`moto::endpoint`
/// says how to install it, and fails under `CREDVAULT_REQUIRE_KMS=1`).
#[cfg(feature = "aws-kms")]
fn kms() -> Option<Arc<dyn KeyProvider>> {
    let endpoint = moto::endpoint()?;
    Some(Arc::new(moto::provider_with_new_key(&endpoint).0))
}

#[cfg(not(feature = "aws-kms"))]
fn kms() -> Option<Arc<dyn KeyProvider>> {
    eprintln!("skipping the AWS KMS side: build with --all-features (or --features aws-kms)");
    None
}

/// Prints each provider's interleaved time and its ratio to the first (the keyring).
fn print_ratios(what: &str, names: &[&str], medians: &[f64]) {
    for (name, median) in names.iter().zip(medians) {
        eprintln!(
            "interleaved {what} get, {name}: {:.2} µs, {:.3}x keyring",
            median * 1e6,
            median / medians[0]
        );
    }
}

fn token(i: usize) -> OAuthToken {
    OAuthToken::bearer("github", SecretString::from(format!("gho_{i:040}")))
}

/// A vault on a new SQLite file with `TENANTS` tenants, one token each, and a fresh handle on
/// it (another server: its key cache, bounded by `capacity`, starts empty).
async fn seeded(url: &str, kek: Arc<dyn KeyProvider>, capacity: usize) -> Vault {
    let backend: Arc<dyn Backend> = Arc::new(SqliteBackend::connect(url).await.unwrap());
    let shred = Arc::new(MemoryTenantKeys::new());
    let writer = Vault::builder(Arc::clone(&backend), Arc::clone(&kek), Arc::clone(&shred)).build();
    writer.migrate().await.unwrap();
    for i in 0..TENANTS {
        writer
            .tenant(&format!("t{i}"))
            .unwrap()
            .put("github", &token(i))
            .await
            .unwrap();
    }
    Vault::builder(backend, kek, shred)
        .key_cache(capacity, std::time::Duration::from_secs(300))
        .build()
}

/// Resident memory, bytes (Linux).
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Reads `tenants` tenants once each through a handle caching at most `cache` keys; prints
/// the resident memory the reads added.
fn memory(rt: &tokio::runtime::Runtime, tenants: usize, cache: usize) {
    use credvault::backend::MemoryBackend;
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let kek = Arc::new(Keyring::generate().unwrap());
    let shred = Arc::new(MemoryTenantKeys::new());
    rt.block_on(async {
        let writer = Vault::builder(Arc::clone(&backend), Arc::clone(&kek), Arc::clone(&shred))
            .key_cache(1, std::time::Duration::from_secs(300))
            .build();
        writer.migrate().await.unwrap();
        for i in 0..tenants {
            let t = writer.tenant(&format!("t{i}")).unwrap();
            t.put("github", &token(i)).await.unwrap();
        }
        // Reads not audited here: the in-memory backend would keep 100 000 audit rows in the
        // same process and hide the cache's share.
        let reader = Vault::builder(backend, kek, shred)
            .key_cache(cache, std::time::Duration::from_secs(3600))
            .read_audit(credvault::store::ReadAudit::Off)
            .build();
        let before = rss();
        for i in 0..tenants {
            let t = reader.tenant(&format!("t{i}")).unwrap();
            black_box(t.get::<OAuthToken>("github").await.unwrap());
        }
        let grown = rss().saturating_sub(before);
        let stats = reader.key_cache_stats();
        println!(
            "{tenants} tenants read once, key cache of {cache}: resident memory +{:.1} MiB; \
             cache entries {}, evictions {}",
            grown as f64 / (1024.0 * 1024.0),
            stats.entries,
            stats.evictions
        );
    });
}

fn providers(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let env = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
    };
    if let Some(tenants) = env("CREDVAULT_BENCH_TENANTS") {
        memory(&rt, tenants, env("CREDVAULT_BENCH_CACHE").unwrap_or(10_000));
        return;
    }
    let mut kinds: Vec<(&str, Arc<dyn KeyProvider>)> =
        vec![("keyring", Arc::new(Keyring::generate().unwrap()))];
    if let Some(hsm) = softhsm() {
        kinds.push(("pkcs11-softhsm2", Arc::new(hsm)));
    }
    if let Some(kms) = kms() {
        kinds.push(("awskms-moto", kms));
    }
    // `-- --test` (CI's smoke run): one short block each.
    let smoke = std::env::args().any(|a| a == "--test");
    let (blocks, per_block) = if smoke { (1, 2) } else { (15, 300) };
    let dir = tempfile::tempdir().unwrap();
    let mut warm_vaults = Vec::new();
    // Warm: the cache holds every tenant's key once each has been read (the first 100 reads
    // below, which count the key calls from an empty cache).
    let mut warm = c.benchmark_group("vault_get_warm");
    for (name, kek) in &kinds {
        let url = format!(
            "sqlite://{}",
            dir.path().join(format!("{name}-warm.db")).display()
        );
        let vault = rt.block_on(seeded(&url, Arc::clone(kek), 10_000));
        let before = vault.key_cache_stats();
        rt.block_on(async {
            for round in 0..100 {
                for i in 0..TENANTS {
                    let t = vault
                        .tenant(&format!("t{}", (i + round) % TENANTS))
                        .unwrap();
                    black_box(t.get::<OAuthToken>("github").await.unwrap());
                }
            }
        });
        let after = vault.key_cache_stats();
        eprintln!(
            "{name}: key calls during 10 000 reads over {TENANTS} tenants: {} (cache misses {})",
            after.key_calls - before.key_calls,
            after.misses - before.misses
        );
        let t0 = vault.tenant("t0").unwrap();
        warm.bench_function(*name, |b| {
            b.iter(|| {
                rt.block_on(async { black_box(t0.get::<OAuthToken>("github").await.unwrap()) })
            });
        });
        warm_vaults.push(vault);
    }
    warm.finish();
    let names: Vec<&str> = kinds.iter().map(|(name, _)| *name).collect();
    let tenants: Vec<_> = warm_vaults
        .iter()
        .map(|v| v.tenant("t0").unwrap())
        .collect();
    let mut reads: Vec<Box<dyn FnMut() + '_>> = tenants
        .iter()
        .map(|t| {
            let rt = &rt;
            Box::new(move || {
                rt.block_on(async { black_box(t.get::<OAuthToken>("github").await.unwrap()) });
            }) as Box<dyn FnMut() + '_>
        })
        .collect();
    let mut refs: Vec<&mut dyn FnMut()> = reads.iter_mut().map(|r| &mut **r as _).collect();
    print_ratios("warm", &names, &interleaved(blocks, per_block, &mut refs));
    drop(refs);
    drop(reads);
    // Cold: a cache of one key, reads alternating between two tenants: every read unwraps.
    let mut cold = c.benchmark_group("vault_get_cold");
    let mut cold_vaults = Vec::new();
    for (name, kek) in &kinds {
        let url = format!(
            "sqlite://{}",
            dir.path().join(format!("{name}-cold.db")).display()
        );
        let vault = rt.block_on(seeded(&url, Arc::clone(kek), 1));
        let tenants = [vault.tenant("t0").unwrap(), vault.tenant("t1").unwrap()];
        let mut next = 0usize;
        cold.bench_function(*name, |b| {
            b.iter(|| {
                next ^= 1;
                rt.block_on(async {
                    black_box(tenants[next].get::<OAuthToken>("github").await.unwrap())
                })
            });
        });
        let stats = vault.key_cache_stats();
        // (No reads at all when a filter left the criterion function out.)
        assert!(
            stats.misses > stats.hits || stats.misses + stats.hits == 0,
            "the cold reads hit the cache: {stats:?}"
        );
        cold_vaults.push(vault);
    }
    cold.finish();
    let pairs: Vec<_> = cold_vaults
        .iter()
        .map(|v| [v.tenant("t0").unwrap(), v.tenant("t1").unwrap()])
        .collect();
    let mut reads: Vec<Box<dyn FnMut() + '_>> = pairs
        .iter()
        .map(|pair| {
            let (rt, mut next) = (&rt, 0usize);
            Box::new(move || {
                next ^= 1;
                rt.block_on(async {
                    black_box(pair[next].get::<OAuthToken>("github").await.unwrap())
                });
            }) as Box<dyn FnMut() + '_>
        })
        .collect();
    let mut refs: Vec<&mut dyn FnMut()> = reads.iter_mut().map(|r| &mut **r as _).collect();
    let cold_blocks = if smoke { 1 } else { 7 };
    let cold_per_block = if smoke { 2 } else { 50 };
    print_ratios(
        "cold",
        &names,
        &interleaved(cold_blocks, cold_per_block, &mut refs),
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = providers
}
criterion_main!(benches);
