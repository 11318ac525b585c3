//! Issue 13, item 4: the vault's calls into the key provider and the tenant-key store run on
//! tokio's blocking pool, never on a runtime worker. A provider or store that blocks (a slow
//! disk's fsync, a network KMS) stalls the request that needs it, not every other task: on a
//! current-thread runtime a ticker task keeps running while a put or a get waits on a key
//! call that sleeps. A provider that panics fails the call closed with an "unavailable"
//! error instead of taking the caller's task down.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use credvault::backend::{Backend, MemoryBackend};
use credvault::crypto::context::Context;
use credvault::envelope::{MemoryTenantKeys, TenantKeyStore};
use credvault::keys::{KeyError, KeyProvider};
use credvault::store::{OAuthToken, Vault};
use credvault::{KeyVersion, Keyring, SecretBytes, SecretString, TenantId};

/// How long each slow key call blocks its thread.
const BLOCK: Duration = Duration::from_millis(150);

/// A key provider whose wrap and unwrap block their thread, as a network KMS's would; it
/// can be told to panic instead.
#[derive(Debug, Clone)]
struct SlowKeys {
    inner: Keyring,
    slow: Arc<AtomicBool>,
    panic: Arc<AtomicBool>,
}

impl SlowKeys {
    fn stall(&self) {
        assert!(
            !self.panic.load(Ordering::SeqCst),
            "the key provider fell over"
        );
        if self.slow.load(Ordering::SeqCst) {
            std::thread::sleep(BLOCK);
        }
    }
}

impl KeyProvider for SlowKeys {
    fn primary_version(&self) -> KeyVersion {
        self.inner.primary_version()
    }

    fn wrap_key(&self, key: &SecretBytes, context: &Context) -> Result<Vec<u8>, KeyError> {
        self.stall();
        self.inner.wrap_key(key, context)
    }

    fn unwrap_key(&self, wrapped: &[u8], context: &Context) -> Result<SecretBytes, KeyError> {
        self.stall();
        self.inner.unwrap_key(wrapped, context)
    }
}

/// A tenant-key store whose calls block their thread, as a directory on a slow disk does.
#[derive(Debug, Clone)]
struct SlowStore {
    inner: Arc<MemoryTenantKeys>,
    slow: Arc<AtomicBool>,
}

impl SlowStore {
    fn stall(&self) {
        if self.slow.load(Ordering::SeqCst) {
            std::thread::sleep(BLOCK);
        }
    }
}

impl TenantKeyStore for SlowStore {
    fn get_or_create(&self, tenant: &TenantId) -> Result<SecretBytes, KeyError> {
        self.stall();
        self.inner.get_or_create(tenant)
    }

    fn get(&self, tenant: &TenantId) -> Result<Option<SecretBytes>, KeyError> {
        self.stall();
        self.inner.get(tenant)
    }

    fn destroy(&self, tenant: &TenantId) -> Result<(), KeyError> {
        self.stall();
        self.inner.destroy(tenant)
    }

    fn identity(&self) -> Result<String, KeyError> {
        self.inner.identity()
    }
}

struct Setup {
    backend: Arc<dyn Backend>,
    keys: SlowKeys,
    store: SlowStore,
}

impl Setup {
    fn new() -> Self {
        Self {
            backend: Arc::new(MemoryBackend::new()),
            keys: SlowKeys {
                inner: Keyring::generate().unwrap(),
                slow: Arc::new(AtomicBool::new(false)),
                panic: Arc::new(AtomicBool::new(false)),
            },
            store: SlowStore {
                inner: Arc::new(MemoryTenantKeys::new()),
                slow: Arc::new(AtomicBool::new(false)),
            },
        }
    }

    /// A new vault handle on the same database and keys (with its own, empty key cache).
    async fn vault(&self) -> Vault {
        let vault = Vault::builder(
            Arc::clone(&self.backend),
            self.keys.clone(),
            self.store.clone(),
        )
        .build();
        vault.migrate().await.unwrap();
        vault
    }

    fn slow(&self, on: bool) {
        self.keys.slow.store(on, Ordering::SeqCst);
        self.store.slow.store(on, Ordering::SeqCst);
    }
}

/// Runs `work` while a ticker task counts 2 ms ticks; returns its output and the ticks seen
/// while it ran. On a current-thread runtime the ticker only runs while `work` yields.
async fn ticks_during<F: Future>(work: F) -> (F::Output, u32) {
    let ticks = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&ticks);
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(2)).await;
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    // Let the ticker start.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let before = ticks.load(Ordering::SeqCst);
    let out = work.await;
    let during = ticks.load(Ordering::SeqCst) - before;
    ticker.abort();
    (out, during)
}

fn token() -> OAuthToken {
    OAuthToken::bearer("github", SecretString::from("gho_seam"))
}

#[tokio::test(flavor = "current_thread")]
async fn a_slow_tenant_key_store_and_provider_do_not_stall_the_runtime_on_put() {
    let setup = Setup::new();
    let vault = setup.vault().await;
    setup.slow(true);
    // A new tenant: its shred secret is created and its data key wrapped (two slow calls).
    let (put, ticks) = ticks_during(vault.tenant("acme").unwrap().put("github", &token())).await;
    put.unwrap();
    assert!(
        ticks >= 20,
        "the ticker ran {ticks} times during ~{}ms of key calls: they ran on the runtime's only \
         worker thread",
        2 * BLOCK.as_millis()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_slow_provider_does_not_stall_the_runtime_on_a_cold_get() {
    let setup = Setup::new();
    setup
        .vault()
        .await
        .tenant("acme")
        .unwrap()
        .put("github", &token())
        .await
        .unwrap();
    // A second handle has no unwrapped data key yet: the get unwraps it (slow).
    let cold = setup.vault().await;
    setup.slow(true);
    let (got, ticks) = ticks_during(cold.tenant("acme").unwrap().get::<OAuthToken>("github")).await;
    assert_eq!(
        got.unwrap().value.access_token.expose_secret(),
        "gho_seam",
        "the record still opens"
    );
    assert!(
        ticks >= 20,
        "the ticker ran {ticks} times while the data key was unwrapped"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_panicking_provider_fails_the_call_as_unavailable() {
    let setup = Setup::new();
    setup
        .vault()
        .await
        .tenant("acme")
        .unwrap()
        .put("github", &token())
        .await
        .unwrap();
    let cold = setup.vault().await;
    setup.keys.panic.store(true, Ordering::SeqCst);
    let err = cold
        .tenant("acme")
        .unwrap()
        .get::<OAuthToken>("github")
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(err.to_string().contains("key service unavailable"), "{err}");
    // The provider is back: the same handle works again.
    setup.keys.panic.store(false, Ordering::SeqCst);
    let got = cold
        .tenant("acme")
        .unwrap()
        .get::<OAuthToken>("github")
        .await
        .unwrap();
    assert_eq!(got.value.access_token.expose_secret(), "gho_seam");
}

#[tokio::test(flavor = "current_thread")]
async fn the_reencryption_job_unwraps_its_keys_off_the_runtime() {
    let setup = Setup::new();
    let first = setup.vault().await;
    for tenant in ["acme", "globex"] {
        first
            .tenant(tenant)
            .unwrap()
            .put("github", &token())
            .await
            .unwrap();
        first.rotate_dek(tenant).await.unwrap();
    }
    // A new handle has no key unwrapped: the job unwraps each tenant's old and new data keys
    // (the reseal step inside the batch's transaction cannot await them).
    let cold = setup.vault().await;
    setup.slow(true);
    let options = credvault::store::ReencryptOptions::default();
    let (report, ticks) = ticks_during(cold.reencrypt(&options, |_| {})).await;
    let report = report.unwrap();
    assert_eq!(
        (report.resealed, report.failed, report.remaining),
        (2, 0, 0),
        "{report:?}"
    );
    assert!(ticks >= 20, "the ticker ran {ticks} times during the job");
    setup.slow(false);
    let got = cold
        .tenant("acme")
        .unwrap()
        .get::<OAuthToken>("github")
        .await
        .unwrap();
    assert_eq!(got.value.access_token.expose_secret(), "gho_seam");
}
