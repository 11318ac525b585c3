//! `get` on a SQLite vault whose KEK is the local keyring next to the same vault whose KEK is
//! in a PKCS#11 token (SoftHSM2), in the same run (issue 16): warm (the data key cached: no
//! key call) and cold (a new vault handle per read: one unwrap in the token, or in memory).
//! Also prints the key calls per 10 000 warm reads over 100 tenants.
//!
//! `cargo bench --features pkcs11 --bench key_providers` (needs `softhsm2`; without it the
//! PKCS#11 side is skipped with a message).
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

#[path = "../tests/common/softhsm.rs"]
mod softhsm;

/// A KEK in a SoftHSM2 token in a temporary directory, or `None` when SoftHSM2 is missing.
fn softhsm() -> Option<Pkcs11Keys> {
    let Some(module) = softhsm::module() else {
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

fn token(i: usize) -> OAuthToken {
    OAuthToken::bearer("github", SecretString::from(format!("gho_{i:040}")))
}

/// A vault on a new SQLite file with `TENANTS` tenants, one token each; `capacity` bounds its
/// key cache.
async fn seeded(url: &str, kek: Arc<dyn KeyProvider>, capacity: usize) -> Vault {
    let backend: Arc<dyn Backend> = Arc::new(SqliteBackend::connect(url).await.unwrap());
    let vault = Vault::builder(backend, kek, Arc::new(MemoryTenantKeys::new()))
        .key_cache(capacity, std::time::Duration::from_secs(300))
        .build();
    vault.migrate().await.unwrap();
    for i in 0..TENANTS {
        vault
            .tenant(&format!("t{i}"))
            .unwrap()
            .put("github", &token(i))
            .await
            .unwrap();
    }
    vault
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
    let dir = tempfile::tempdir().unwrap();
    // Warm: the default cache holds every tenant's key.
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
    }
    warm.finish();
    // Cold: a cache of one key, reads alternating between two tenants: every read unwraps.
    let mut cold = c.benchmark_group("vault_get_cold");
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
        assert!(
            stats.misses > stats.hits,
            "the cold reads hit the cache: {stats:?}"
        );
    }
    cold.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = providers
}
criterion_main!(benches);
