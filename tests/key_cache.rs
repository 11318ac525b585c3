//! Issue 16, item 4: the key cache is bounded in size and age, and observable. A warm vault
//! asks its key provider about once per tenant (not per read); past `key_cache_capacity` the
//! least recently used keys leave; past `key_cache_ttl` a key is unwrapped again; the counts
//! reach `Vault::key_cache_stats` and, with the `metrics` feature, the `metrics` facade.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use credvault::backend::{Backend, MemoryBackend};
use credvault::crypto::Context;
use credvault::envelope::{MemoryTenantKeys, TenantKeyStore};
use credvault::keys::{KeyError, KeyProvider};
use credvault::store::{OAuthToken, Vault};
use credvault::{KeyVersion, Keyring, SecretBytes, SecretString, TenantId};

/// A key provider that counts its unwraps.
#[derive(Debug, Clone)]
struct Counting {
    inner: Keyring,
    unwraps: Arc<AtomicU64>,
}

impl KeyProvider for Counting {
    fn primary_version(&self) -> KeyVersion {
        self.inner.primary_version()
    }
    fn wrap_key(&self, key: &SecretBytes, context: &Context) -> Result<Vec<u8>, KeyError> {
        self.inner.wrap_key(key, context)
    }
    fn unwrap_key(&self, wrapped: &[u8], context: &Context) -> Result<SecretBytes, KeyError> {
        self.unwraps.fetch_add(1, Ordering::SeqCst);
        self.inner.unwrap_key(wrapped, context)
    }
}

#[derive(Debug, Clone)]
struct Shared(Arc<MemoryTenantKeys>);

impl TenantKeyStore for Shared {
    fn get_or_create(&self, tenant: &TenantId) -> Result<SecretBytes, KeyError> {
        self.0.get_or_create(tenant)
    }
    fn get(&self, tenant: &TenantId) -> Result<Option<SecretBytes>, KeyError> {
        self.0.get(tenant)
    }
    fn destroy(&self, tenant: &TenantId) -> Result<(), KeyError> {
        self.0.destroy(tenant)
    }
    fn identity(&self) -> Result<String, KeyError> {
        self.0.identity()
    }
}

struct Setup {
    backend: Arc<dyn Backend>,
    keys: Counting,
    store: Shared,
}

impl Setup {
    /// `tenants` tenants with one token each, written through a first vault handle.
    async fn with_tenants(tenants: usize) -> Self {
        let setup = Self {
            backend: Arc::new(MemoryBackend::new()),
            keys: Counting {
                inner: Keyring::generate().unwrap(),
                unwraps: Arc::new(AtomicU64::new(0)),
            },
            store: Shared(Arc::new(MemoryTenantKeys::new())),
        };
        let writer = setup.vault(10_000, Duration::from_secs(300)).await;
        for i in 0..tenants {
            writer
                .tenant(&format!("t{i}"))
                .unwrap()
                .put("github", &token(i))
                .await
                .unwrap();
        }
        setup.keys.unwraps.store(0, Ordering::SeqCst);
        setup
    }

    /// A new handle (an empty cache) on the same data and keys.
    async fn vault(&self, capacity: usize, ttl: Duration) -> Vault {
        let vault = Vault::builder(
            Arc::clone(&self.backend),
            self.keys.clone(),
            self.store.clone(),
        )
        .key_cache(capacity, ttl)
        .build();
        vault.migrate().await.unwrap();
        vault
    }

    fn unwraps(&self) -> u64 {
        self.keys.unwraps.load(Ordering::SeqCst)
    }
}

fn token(i: usize) -> OAuthToken {
    OAuthToken::bearer("github", SecretString::from(format!("gho_{i}")))
}

async fn read(vault: &Vault, i: usize) {
    let got = vault
        .tenant(&format!("t{i}"))
        .unwrap()
        .get::<OAuthToken>("github")
        .await
        .unwrap();
    assert_eq!(got.value.access_token.expose_secret(), format!("gho_{i}"));
}

#[tokio::test]
async fn ten_thousand_reads_over_a_hundred_tenants_call_the_provider_about_a_hundred_times() {
    let setup = Setup::with_tenants(100).await;
    let vault = setup.vault(10_000, Duration::from_secs(300)).await;
    for round in 0..100 {
        for i in 0..100 {
            read(&vault, (i + round) % 100).await;
        }
    }
    let stats = vault.key_cache_stats();
    println!(
        "provider unwraps per 10 000 reads over 100 tenants: {}; {stats:?}",
        setup.unwraps()
    );
    assert_eq!(setup.unwraps(), 100, "{stats:?}");
    assert_eq!((stats.misses, stats.hits), (100, 9_900), "{stats:?}");
    assert_eq!(stats.entries, 100);
    assert_eq!(stats.evictions, 0);
    assert!(stats.key_calls >= 100, "{stats:?}");
    assert_eq!(stats.key_call_failures, 0);
}

#[tokio::test]
async fn the_cache_never_holds_more_than_its_capacity() {
    let setup = Setup::with_tenants(100).await;
    let vault = setup.vault(10, Duration::from_secs(300)).await;
    for i in 0..100 {
        read(&vault, i).await;
        assert!(vault.key_cache_stats().entries <= 10);
    }
    let stats = vault.key_cache_stats();
    assert_eq!((stats.entries, stats.capacity), (10, 10), "{stats:?}");
    assert_eq!(stats.evictions, 90, "{stats:?}");
    // The ten most recent are still there; the first was pushed out and is unwrapped again.
    let before = setup.unwraps();
    read(&vault, 99).await;
    assert_eq!(setup.unwraps(), before, "a recent key is a hit");
    read(&vault, 0).await;
    assert_eq!(
        setup.unwraps(),
        before + 1,
        "an evicted key is unwrapped again"
    );
}

#[tokio::test]
async fn a_key_older_than_the_ttl_is_unwrapped_again() {
    let setup = Setup::with_tenants(1).await;
    let vault = setup.vault(100, Duration::from_millis(100)).await;
    read(&vault, 0).await;
    read(&vault, 0).await;
    assert_eq!(setup.unwraps(), 1);
    tokio::time::sleep(Duration::from_millis(150)).await;
    read(&vault, 0).await;
    assert_eq!(setup.unwraps(), 2, "{:?}", vault.key_cache_stats());
}

#[cfg(feature = "metrics")]
mod facade {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use metrics::{
        Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
        SharedString, Unit,
    };

    /// A recorder that sums counters and counts histogram samples, by metric name and labels.
    #[derive(Default)]
    pub(super) struct Sums(pub(super) Arc<Mutex<BTreeMap<String, u64>>>);

    struct Handle(String, Arc<Mutex<BTreeMap<String, u64>>>);

    impl CounterFn for Handle {
        fn increment(&self, value: u64) {
            *self.1.lock().unwrap().entry(self.0.clone()).or_default() += value;
        }
        fn absolute(&self, value: u64) {
            self.1.lock().unwrap().insert(self.0.clone(), value);
        }
    }

    impl HistogramFn for Handle {
        fn record(&self, _value: f64) {
            *self.1.lock().unwrap().entry(self.0.clone()).or_default() += 1;
        }
    }

    fn name(key: &Key) -> String {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        format!("{}{{{}}}", key.name(), labels.join(","))
    }

    impl Recorder for Sums {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(Arc::new(Handle(name(key), Arc::clone(&self.0))))
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(Arc::new(Handle(name(key), Arc::clone(&self.0))))
        }
    }
}

#[cfg(feature = "metrics")]
#[test]
fn the_counts_reach_the_metrics_facade() {
    let recorder = facade::Sums::default();
    let sums = Arc::clone(&recorder.0);
    // A current-thread runtime: the vault records on the thread the local recorder is set on.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let setup = Setup::with_tenants(3).await;
            let vault = setup.vault(100, Duration::from_secs(300)).await;
            for _ in 0..4 {
                for i in 0..3 {
                    read(&vault, i).await;
                }
            }
        });
    });
    let sums = sums.lock().unwrap();
    println!("{sums:#?}");
    assert!(sums["credvault_key_cache_hits_total{}"] >= 9, "{sums:?}");
    assert!(sums["credvault_key_cache_misses_total{}"] >= 3, "{sums:?}");
    assert!(
        sums["credvault_key_calls_total{op=kek_unwrap}"] >= 3,
        "{sums:?}"
    );
    assert!(
        sums["credvault_key_call_seconds{op=kek_unwrap}"] >= 3,
        "{sums:?}"
    );
}
