//! Key calls off the runtime's worker threads.
//!
//! [`KeyProvider`](crate::keys::KeyProvider) and
//! [`TenantKeyStore`](crate::envelope::TenantKeyStore) are synchronous traits: a key file is
//! read and a shred secret written and fsynced there, and a network key service (KMS, HSM)
//! waits on its answer there. The vault never makes those calls on a tokio worker thread:
//! it hands each one to tokio's blocking pool and awaits it, so a slow disk or key service
//! stalls one request, never the runtime. Implementations stay plain synchronous code (one
//! that speaks an async protocol can `Handle::block_on` inside, which the blocking pool
//! allows). ARCHITECTURE.md, "Key calls and the runtime".

use crate::keys::KeyError;

/// Runs `call` (key call `op`) on tokio's blocking pool and waits for it, counting it with
/// its latency and outcome; outside a tokio runtime (a synchronous caller, a test without
/// one) it runs in place.
///
/// A call whose task is lost (it panicked, or the runtime is shutting down) fails closed with
/// [`KeyError::Unavailable`]: nothing the call would have returned is used.
async fn key_call<T, F>(counters: &Counters, op: &'static str, call: F) -> Result<T, KeyError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, KeyError> + Send + 'static,
{
    let started = std::time::Instant::now();
    let result = run_off_runtime(call).await;
    counters.key_call(op, started.elapsed(), result.is_ok());
    result
}

async fn run_off_runtime<T, F>(call: F) -> Result<T, KeyError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, KeyError> + Send + 'static,
{
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return call();
    };
    match handle.spawn_blocking(call).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(KeyError::Unavailable(
            "a key provider or tenant-key store call panicked".to_owned(),
        )),
        Err(_) => Err(KeyError::Unavailable(
            "the runtime is shutting down".to_owned(),
        )),
    }
}

use std::sync::Arc;

use crate::crypto::context::Context;
use crate::envelope::{TenantDek, new_dek_material};
use crate::keys::KeyInfo;
use crate::store::Vault;
use crate::store::cache::Counters;
use crate::{KeyVersion, SecretBytes, TenantId};

/// The vault's key calls, each on the blocking pool ([`key_call`]).
impl Vault {
    async fn key_call<T, F>(&self, op: &'static str, call: F) -> Result<T, KeyError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, KeyError> + Send + 'static,
    {
        key_call(&self.inner.counters, op, call).await
    }

    /// [`KeyProvider::reload`](crate::keys::KeyProvider::reload).
    pub(crate) async fn kek_reload(&self) -> Result<bool, KeyError> {
        let kek = Arc::clone(&self.inner.kek);
        self.key_call("kek_reload", move || kek.reload()).await
    }

    /// [`KeyProvider::unwrap_key`](crate::keys::KeyProvider::unwrap_key).
    pub(crate) async fn kek_unwrap(
        &self,
        wrapped: &[u8],
        context: &Context,
    ) -> Result<SecretBytes, KeyError> {
        let kek = Arc::clone(&self.inner.kek);
        let (wrapped, context) = (wrapped.to_vec(), context.clone());
        self.key_call("kek_unwrap", move || kek.unwrap_key(&wrapped, &context))
            .await
    }

    /// [`KeyProvider::wrap_key`](crate::keys::KeyProvider::wrap_key).
    pub(crate) async fn kek_wrap(
        &self,
        key: &SecretBytes,
        context: &Context,
    ) -> Result<Vec<u8>, KeyError> {
        let kek = Arc::clone(&self.inner.kek);
        let (key, context) = (key.clone(), context.clone());
        self.key_call("kek_wrap", move || kek.wrap_key(&key, &context))
            .await
    }

    /// [`KeyProvider::key_infos`](crate::keys::KeyProvider::key_infos).
    pub(crate) async fn kek_infos(&self) -> Result<Vec<KeyInfo>, KeyError> {
        let kek = Arc::clone(&self.inner.kek);
        self.key_call("kek_list", move || Ok(kek.key_infos())).await
    }

    /// [`KeyProvider::fingerprint`](crate::keys::KeyProvider::fingerprint).
    pub(crate) async fn kek_fingerprint(
        &self,
        version: KeyVersion,
    ) -> Result<Option<String>, KeyError> {
        let kek = Arc::clone(&self.inner.kek);
        self.key_call("kek_fingerprint", move || kek.fingerprint(version))
            .await
    }

    /// New DEK material wrapped under the primary KEK ([`new_dek_material`]).
    pub(crate) async fn new_wrapped_dek(
        &self,
        tenant: &TenantId,
        version: KeyVersion,
    ) -> Result<Vec<u8>, KeyError> {
        let kek = Arc::clone(&self.inner.kek);
        let tenant = tenant.clone();
        self.key_call("kek_wrap", move || {
            new_dek_material(kek.as_ref(), &tenant, version)
        })
        .await
    }

    /// A tenant's DEK unwrapped and its record key derived ([`TenantDek::unwrap`]), with the
    /// tenant's shred secret read from the store in the same call. `Ok(None)`: the store has
    /// no shred secret for the tenant (it was shredded).
    pub(crate) async fn unwrap_tenant_dek(
        &self,
        tenant: &TenantId,
        version: KeyVersion,
        wrapped: &[u8],
    ) -> Result<Option<TenantDek>, KeyError> {
        let kek = Arc::clone(&self.inner.kek);
        let store = Arc::clone(&self.inner.tenant_keys);
        let (tenant, wrapped) = (tenant.clone(), wrapped.to_vec());
        self.key_call("kek_unwrap", move || {
            let Some(shred) = store.get(&tenant)? else {
                return Ok(None);
            };
            TenantDek::unwrap(kek.as_ref(), &shred, &tenant, version, &wrapped).map(Some)
        })
        .await
    }

    /// A tenant's shred secret ([`TenantKeyStore::get`](crate::envelope::TenantKeyStore::get)),
    /// `None` if it has none.
    pub(crate) async fn shred_secret(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<SecretBytes>, KeyError> {
        let store = Arc::clone(&self.inner.tenant_keys);
        let tenant = tenant.clone();
        self.key_call("shred_get", move || store.get(&tenant)).await
    }

    /// [`TenantKeyStore::get`](crate::envelope::TenantKeyStore::get), for its presence only.
    pub(crate) async fn has_shred_secret(&self, tenant: &TenantId) -> Result<bool, KeyError> {
        let store = Arc::clone(&self.inner.tenant_keys);
        let tenant = tenant.clone();
        self.key_call("shred_get", move || Ok(store.get(&tenant)?.is_some()))
            .await
    }

    /// [`TenantKeyStore::get_or_create`](crate::envelope::TenantKeyStore::get_or_create).
    pub(crate) async fn ensure_shred_secret(&self, tenant: &TenantId) -> Result<(), KeyError> {
        let store = Arc::clone(&self.inner.tenant_keys);
        let tenant = tenant.clone();
        self.key_call("shred_create", move || {
            store.get_or_create(&tenant).map(drop)
        })
        .await
    }

    /// [`TenantKeyStore::destroy`](crate::envelope::TenantKeyStore::destroy).
    pub(crate) async fn destroy_shred_secret(&self, tenant: &TenantId) -> Result<(), KeyError> {
        let store = Arc::clone(&self.inner.tenant_keys);
        let tenant = tenant.clone();
        self.key_call("shred_destroy", move || store.destroy(&tenant))
            .await
    }

    /// [`TenantKeyStore::identity`](crate::envelope::TenantKeyStore::identity).
    pub(crate) async fn tenant_keys_identity(&self) -> Result<String, KeyError> {
        let store = Arc::clone(&self.inner.tenant_keys);
        self.key_call("shred_identity", move || store.identity())
            .await
    }
}
