//! The vault's key cache: unwrapped data keys (and tenant rows), bounded in size and age, and
//! counted.
//!
//! A vault with 100 000 tenants must not keep 100 000 unwrapped keys for ever, and a KMS must
//! be asked about once per tenant per TTL, not per read. Entries live at most `ttl` (measured
//! on the process's monotonic clock: it is an operational bound, not a recorded instant) and
//! at most `capacity` of them at once, the least recently used leaving first. A data key that
//! leaves is zeroized when the last request using it finishes (its cipher zeroizes on drop).
//!
//! Every hit, miss and eviction, and every call into the key provider or the tenant-key store
//! (with its latency and failures), is counted: [`Vault::key_cache_stats`], and with the
//! `metrics` feature the `metrics` facade (names in ARCHITECTURE.md, "Key cache").

use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lru::LruCache;
use serde::Serialize;

use crate::store::Vault;

/// A size- and age-bounded map, least recently used out first.
pub(crate) struct BoundedCache<K: Hash + Eq, V> {
    entries: Mutex<LruCache<K, (V, Instant)>>,
    ttl: Duration,
}

impl<K: Hash + Eq, V: Clone> BoundedCache<K, V> {
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            entries: Mutex::new(LruCache::new(capacity)),
            ttl,
        }
    }

    /// The live entry for `key` that `accept` accepts; an expired one is removed. A poisoned
    /// cache is a miss.
    pub(crate) fn get(&self, key: &K, accept: impl FnOnce(&V) -> bool) -> Option<V> {
        let mut entries = self.entries.lock().ok()?;
        let (value, at) = entries.get(key)?;
        if at.elapsed() >= self.ttl {
            entries.pop(key);
            return None;
        }
        accept(value).then(|| value.clone())
    }

    /// The entry for `key` if younger than `max_age` (a tighter bound than the cache's TTL).
    pub(crate) fn get_fresh(&self, key: &K, max_age: Duration) -> Option<V> {
        let mut entries = self.entries.lock().ok()?;
        let (value, at) = entries.get(key)?;
        (at.elapsed() < max_age.min(self.ttl)).then(|| value.clone())
    }

    /// Inserts; returns whether another entry was evicted to make room.
    pub(crate) fn insert(&self, key: K, value: V) -> bool {
        let Ok(mut entries) = self.entries.lock() else {
            return false;
        };
        let full = entries.len() == entries.cap().get() && !entries.contains(&key);
        entries.put(key, (value, Instant::now()));
        full
    }

    pub(crate) fn remove(&self, key: &K) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.pop(key);
        }
    }

    /// Removes every entry whose key matches.
    pub(crate) fn remove_where(&self, matches: impl Fn(&K) -> bool)
    where
        K: Clone,
    {
        if let Ok(mut entries) = self.entries.lock() {
            let doomed: Vec<K> = entries
                .iter()
                .filter(|(k, _)| matches(k))
                .map(|(k, _)| k.clone())
                .collect();
            for key in doomed {
                entries.pop(&key);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }

    pub(crate) fn capacity(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.cap().get())
    }
}

/// The key cache's and key calls' counts since the vault handle was built
/// ([`Vault::key_cache_stats`]). Serialised with these field names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KeyCacheStats {
    /// Unwrapped data keys held now.
    pub entries: usize,
    /// The most it holds ([`VaultConfig::key_cache_capacity`](crate::VaultConfig::key_cache_capacity)).
    pub capacity: usize,
    /// Reads that found their data key unwrapped.
    pub hits: u64,
    /// Reads that had to unwrap it (a key call).
    pub misses: u64,
    /// Keys pushed out by the size bound.
    pub evictions: u64,
    /// Calls into the key provider and the tenant-key store.
    pub key_calls: u64,
    /// Of those, the ones that failed.
    pub key_call_failures: u64,
}

/// Atomic counters behind [`KeyCacheStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    key_calls: AtomicU64,
    key_call_failures: AtomicU64,
}

impl Counters {
    pub(crate) fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!("credvault_key_cache_hits_total").increment(1);
    }

    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!("credvault_key_cache_misses_total").increment(1);
    }

    pub(crate) fn eviction(&self) {
        self.evictions.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!("credvault_key_cache_evictions_total").increment(1);
    }

    /// One key call `op` that took `took` and succeeded or not.
    pub(crate) fn key_call(&self, op: &'static str, took: Duration, ok: bool) {
        self.key_calls.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.key_call_failures.fetch_add(1, Ordering::Relaxed);
        }
        #[cfg(feature = "metrics")]
        {
            metrics::counter!("credvault_key_calls_total", "op" => op).increment(1);
            metrics::histogram!("credvault_key_call_seconds", "op" => op)
                .record(took.as_secs_f64());
            if !ok {
                metrics::counter!("credvault_key_call_failures_total", "op" => op).increment(1);
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (op, took);
    }
}

impl Vault {
    /// The key cache's size and the counts of hits, misses, evictions and key calls since this
    /// handle was built: a warm vault answers reads from the cache and calls its key provider
    /// about once per tenant per
    /// [`key_cache_ttl`](crate::VaultConfig::key_cache_ttl). With the `metrics` feature the
    /// same counts (and key-call latencies) go to the `metrics` facade.
    pub fn key_cache_stats(&self) -> KeyCacheStats {
        let c = &self.inner.counters;
        KeyCacheStats {
            entries: self.inner.deks.len(),
            capacity: self.inner.deks.capacity(),
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            evictions: c.evictions.load(Ordering::Relaxed),
            key_calls: c.key_calls.load(Ordering::Relaxed),
            key_call_failures: c.key_call_failures.load(Ordering::Relaxed),
        }
    }
}
