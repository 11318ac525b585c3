//! Layer 5 of ARCHITECTURE.md: the typed vault.
//!
//! A [`Vault`] stores typed records ([`OAuthToken`], [`ApiKey`], [`SessionCookies`],
//! [`DerivedData`] or any [`SecretKind`]) per tenant, sealed with the tenant's own data key
//! and bound to (tenant, kind, name). It is the only caller of the [`backend`](crate::backend)
//! layer, which sees ciphertext and clear metadata only.

mod audit;
mod cache;
mod clock;
mod disconnect;
mod error;
mod export;
mod fernet_keys;
mod import;
mod keys;
mod offload;
mod on;
mod open;
mod personal;
mod progress;
mod purger;
mod record;
mod refresh;
mod report;
mod retention;
mod revoke;
mod rotate;
mod tenant;
mod vault_keys;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use audit::{MAX_BACKLOG_BATCHES, ReadAudit};
pub use cache::KeyCacheStats;
pub use clock::{Clock, ManualClock, SystemClock};
pub use disconnect::{
    DisconnectReport, RevocationFailure, RevocationRequest, Revocations, RevokeError, Revoker,
};
pub use error::{KeyKind, StoreError};
pub use export::{AUDIT_CSV_HEADER, CSV_HEADER, ExportOptions, ExportReport};
pub use fernet_keys::{ExportedFernetKey, FernetKeyExport};
pub use import::{
    FailureCause, FernetImport, ImportError, ImportFailure, ImportReport, LegacyPayload,
    LegacyValue, MAX_REPORTED_FAILURES, MapError, PROGRESS_EVERY,
};
pub use progress::Progress;
pub(crate) use progress::ProgressClock;
pub use purger::{DEFAULT_PURGE_MARGIN, PurgerConfig, PurgerHandle, PurgerStatus};
pub use record::{ApiKey, Cookie, DerivedData, OAuthToken, SecretKind, SessionCookies};
pub use report::{DekState, DekStatus, KekStatus, KeyReport, RotationPolicy};
pub use retention::{PurgeReport, TenantDeletion};
pub use rotate::{
    DekRotationReport, MAX_LISTED_FAILURES, ReencryptFailure, ReencryptOptions, ReencryptReport,
    RewrapFailure, RewrapReport,
};
pub use tenant::{Listing, RecordInfo, Tenant, Versioned};

use crate::backend::{AuditAction, AuditRow, Backend, DekRow, IntoBackend, SuitePlan, TenantRow};
pub use crate::crypto::SealingSuite;
use crate::envelope::{TenantDek, TenantKeyStore};
use crate::keys::{KeyError, KeyProvider};
use crate::{KeyVersion, TenantId};
use cache::{BoundedCache, Counters};
pub(crate) use on::On;

/// A day, for retention settings: `.grace_period(30 * DAY)`.
pub const DAY: Duration = Duration::from_secs(86_400);

/// A duration as whole seconds for arithmetic on Unix-second instants (saturating: a
/// duration past `i64::MAX` seconds is "forever").
pub(crate) fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Serialises a duration as whole seconds (reports name such fields `*_seconds`).
pub(crate) fn whole_seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

/// The vault's settings. Every field has a documented default; set them on [`VaultBuilder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultConfig {
    /// The promise for a deleted tenant: "permanently erased within" this time of
    /// [`Vault::delete_tenant`]. Until then (less the purge runner's lead, see
    /// [`PurgerConfig`]) the tenant can still be exported or restored. Default: 30 days.
    pub grace_period: Duration,
    /// How long audit rows are kept. Default: 90 days.
    pub audit_retention: Duration,
    /// The promise for derived data ([`DerivedData`] and the kinds in `derived_kinds`) after
    /// a disconnect: "purged within" this time. A purge on a schedule
    /// ([`Vault::spawn_purger`], [`Vault::purge_on_schedule`]) deletes it one interval plus
    /// margin before. Default: 24 hours.
    pub derived_retention: Duration,
    /// Kinds treated as derived data on disconnect. Default: `["derived"]`.
    pub derived_kinds: Vec<String>,
    /// How reads are audited. Default: buffered, batches of 64.
    pub read_audit: ReadAudit,
    /// How long a refresh may hold its lease before another process may take over.
    /// Default: 30 seconds.
    pub refresh_lease: Duration,
    /// The largest serialised record accepted. Default: 1 MiB.
    pub max_payload: usize,
    /// Who the audit log names when a tenant handle sets no actor. Default: `"app"`. Checked
    /// as [`Tenant::with_actor`] checks its actor, by [`Vault::tenant`].
    pub default_actor: String,
    /// How long a tenant's row (its wrapped key and deletion state) is reused from memory
    /// before it is read again. A tenant deleted or restored by *another* process is noticed
    /// within this time; this process notices at once. Default: 1 second.
    pub tenant_cache_ttl: Duration,
    /// How often a vault handle checks its keys against the vault's records again (and asks
    /// its key provider to reload a rotated key file, and registers its primary KEK version
    /// as in use). Default: 60 seconds.
    pub key_check_interval: Duration,
    /// How long a KEK version must have gone unregistered as any process's primary before
    /// [`Vault::destroy_kek`] destroys it. Keep it well above `key_check_interval`.
    /// Default: 15 minutes.
    pub kek_quiet_period: Duration,
    /// The most unwrapped data keys (and tenant rows) a vault handle keeps in memory; past it
    /// the least recently used leaves (and is zeroized). Default: 10 000.
    pub key_cache_capacity: usize,
    /// How long an unwrapped data key is kept before the key provider is asked again: a KMS
    /// is called about once per tenant per this time. Default: 5 minutes.
    pub key_cache_ttl: Duration,
    /// How new records are sealed: [`SealingSuite::Aes256Gcm`] (the default) or
    /// [`SealingSuite::Fernet`]. Reads accept both; [`Vault::reencrypt`] moves records sealed
    /// with the other suite to this one.
    pub sealing_suite: SealingSuite,
    /// Record kinds sealed with another suite than `sealing_suite` (by kind name, e.g.
    /// `"oauth_token"` → Fernet). Default: none.
    pub kind_suites: BTreeMap<String, SealingSuite>,
    /// The privacy policy's promises this vault was built from
    /// ([`VaultBuilder::promises`], [`Promises::apply`]): a setting that contradicts them is
    /// refused at start-up, and a disconnect or deletion that would break them is refused.
    /// Default: none.
    ///
    /// [`Promises::apply`]: crate::promises::Promises::apply
    pub promises: Option<crate::promises::Promises>,
}

impl VaultConfig {
    /// The suite new records of `kind` are sealed with.
    pub fn suite_for(&self, kind: &str) -> SealingSuite {
        self.kind_suites
            .get(kind)
            .copied()
            .unwrap_or(self.sealing_suite)
    }

    /// What [`Vault::reencrypt`] moves records to: the default suite and the kinds that
    /// differ from it.
    pub fn suite_plan(&self) -> SuitePlan {
        SuitePlan {
            default: self.sealing_suite,
            kinds: self
                .kind_suites
                .iter()
                .filter(|(_, s)| **s != self.sealing_suite)
                .map(|(k, s)| (k.clone(), *s))
                .collect(),
        }
    }
}

impl Default for VaultConfig {
    fn default() -> Self {
        Self {
            grace_period: 30 * DAY,
            audit_retention: 90 * DAY,
            derived_retention: DAY,
            derived_kinds: vec![DerivedData::KIND.to_owned()],
            read_audit: ReadAudit::default(),
            refresh_lease: Duration::from_secs(30),
            max_payload: 1 << 20,
            default_actor: "app".to_owned(),
            tenant_cache_ttl: Duration::from_secs(1),
            key_check_interval: Duration::from_secs(60),
            kek_quiet_period: Duration::from_secs(15 * 60),
            key_cache_capacity: 10_000,
            key_cache_ttl: Duration::from_secs(5 * 60),
            sealing_suite: SealingSuite::default(),
            kind_suites: BTreeMap::new(),
            promises: None,
        }
    }
}

/// Builds a [`Vault`] from the application's backend, key provider and tenant key store.
/// Building touches no database: call [`Vault::migrate`] (or open by URL, which migrates).
#[derive(Debug)]
pub struct VaultBuilder {
    backend: Arc<dyn Backend>,
    kek: Arc<dyn KeyProvider>,
    tenant_keys: Arc<dyn TenantKeyStore>,
    clock: Arc<dyn Clock>,
    config: VaultConfig,
    revoker: Option<Arc<dyn Revoker>>,
    /// Whether the builder's revoker (or its absence) is the application's choice: not for
    /// the `open`/`init` helpers, which cannot take one (their operations that must revoke
    /// are refused one by one instead).
    revoker_known: bool,
}

impl VaultBuilder {
    /// For `Vault::open` and friends: no revoker can be given, so its absence is not held
    /// against the promises at start-up.
    pub(crate) fn revoker_unknown(mut self) -> Self {
        self.revoker_known = false;
        self
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: VaultConfig) -> Self {
        self.config = config;
        self
    }

    /// The deletion promise for a tenant (default 30 days): see
    /// [`VaultConfig::grace_period`].
    pub fn grace_period(mut self, period: Duration) -> Self {
        self.config.grace_period = period;
        self
    }

    /// Audit retention (default 90 days).
    pub fn audit_retention(mut self, period: Duration) -> Self {
        self.config.audit_retention = period;
        self
    }

    /// The deletion promise for derived data after a disconnect (default 24 hours): see
    /// [`VaultConfig::derived_retention`].
    pub fn derived_retention(mut self, period: Duration) -> Self {
        self.config.derived_retention = period;
        self
    }

    /// Treats records of `kind` as derived data on disconnect.
    pub fn derived_kind(mut self, kind: impl Into<String>) -> Self {
        self.config.derived_kinds.push(kind.into());
        self
    }

    /// How reads are audited (default: buffered batches of 64).
    pub fn read_audit(mut self, mode: ReadAudit) -> Self {
        self.config.read_audit = mode;
        self
    }

    /// How long a KEK version must have gone unregistered as any process's primary before
    /// [`Vault::destroy_kek`] destroys it (default 15 minutes).
    pub fn kek_quiet_period(mut self, period: Duration) -> Self {
        self.config.kek_quiet_period = period;
        self
    }

    /// The key cache's bound: at most `capacity` unwrapped data keys, each kept at most `ttl`
    /// (defaults 10 000 and 5 minutes): see [`VaultConfig::key_cache_capacity`].
    pub fn key_cache(mut self, capacity: usize, ttl: Duration) -> Self {
        self.config.key_cache_capacity = capacity;
        self.config.key_cache_ttl = ttl;
        self
    }

    /// How new records are sealed (default AES-256-GCM): see [`VaultConfig::sealing_suite`].
    pub fn sealing_suite(mut self, suite: SealingSuite) -> Self {
        self.config.sealing_suite = suite;
        self
    }

    /// Seals records of `kind` with `suite`, whatever the vault's default: see
    /// [`VaultConfig::kind_suites`].
    pub fn kind_suite(mut self, kind: impl Into<String>, suite: SealingSuite) -> Self {
        self.config.kind_suites.insert(kind.into(), suite);
        self
    }

    /// Builds the vault from a privacy policy's promises: sets what they decide (the sealing
    /// suites, the derived-data window and kinds, the grace period, the audit retention; see
    /// [`Promises::apply`](crate::promises::Promises::apply)) and remembers them, so that a
    /// later setting that contradicts one (a longer grace period, another suite, no revoker
    /// where tokens must be revoked) is refused by [`try_build`](Self::try_build) (and by
    /// [`Vault::migrate`] and [`Vault::tenant`] of a vault made with [`build`](Self::build)),
    /// naming the promise.
    pub fn promises(mut self, promises: &crate::promises::Promises) -> Self {
        promises.apply(&mut self.config);
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The application's [`Revoker`]: [`Vault::delete_tenant`] revokes the tenant's OAuth
    /// tokens through it, and the purge retries the revocations that failed. Without one,
    /// a deleted tenant's tokens are removed without being revoked (default: none).
    pub fn revoker(mut self, revoker: impl Revoker + 'static) -> Self {
        self.revoker = Some(Arc::new(revoker));
        self
    }

    /// Builds the vault, refusing settings that contradict its [`promises`](Self::promises).
    ///
    /// # Errors
    ///
    /// [`StoreError::Promise`] naming the promise a setting breaks.
    pub fn try_build(self) -> Result<Vault, StoreError> {
        let vault = self.build();
        match &vault.inner.refusal {
            Some(e) => Err(StoreError::Promise(e.clone())),
            None => Ok(vault),
        }
    }

    /// Builds the vault. A vault whose settings contradict its [`promises`](Self::promises)
    /// is built, but refuses to work: [`Vault::migrate`] and [`Vault::tenant`] return the
    /// contradiction ([`try_build`](Self::try_build) returns it at once).
    pub fn build(self) -> Vault {
        let refusal = self.config.promises.as_ref().and_then(|p| {
            p.check_config(
                &self.config,
                self.revoker_known.then_some(self.revoker.is_some()),
            )
            .err()
            .map(Arc::new)
        });
        let (capacity, ttl) = (self.config.key_cache_capacity, self.config.key_cache_ttl);
        Vault {
            inner: Arc::new(Inner {
                backend: self.backend,
                kek: self.kek,
                tenant_keys: self.tenant_keys,
                clock: self.clock,
                config: self.config,
                revoker: self.revoker,
                deks: BoundedCache::new(capacity, ttl),
                tenants: BoundedCache::new(capacity, ttl),
                counters: Counters::default(),
                read_buffer: Mutex::new(Vec::new()),
                audit_writer: tokio::sync::Mutex::new(()),
                audit_write_spawned: std::sync::atomic::AtomicBool::new(false),
                audit_pending: std::sync::atomic::AtomicUsize::new(0),
                personal_keys: BoundedCache::new(capacity, ttl),
                key_check: Mutex::new(None),
                refusal,
            }),
        }
    }
}

/// The vault: a cheap `Clone` handle to keep in an application's state.
///
/// ```
/// use credvault::backend::MemoryBackend;
/// use credvault::envelope::MemoryTenantKeys;
/// use credvault::store::{OAuthToken, Vault};
/// use credvault::Keyring;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let vault = Vault::builder(MemoryBackend::new(), Keyring::generate()?, MemoryTenantKeys::new()).build();
/// vault.migrate().await?;
/// let acme = vault.tenant("acme")?;
/// acme.put("github", &OAuthToken::bearer("github", "gho_example".into())).await?;
/// let token = acme.get::<OAuthToken>("github").await?;
/// assert_eq!(token.value.access_token.expose_secret(), "gho_example");
/// # Ok::<(), credvault::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Vault {
    inner: Arc<Inner>,
}

/// A cached data key: (tenant, DEK version, tenant creation time).
pub(crate) type DekCacheKey = (TenantId, KeyVersion, i64);

/// A cached data key, with the wrapped bytes it was unwrapped from.
type CachedDek = (Arc<[u8]>, Arc<TenantDek>);

struct Inner {
    backend: Arc<dyn Backend>,
    kek: Arc<dyn KeyProvider>,
    tenant_keys: Arc<dyn TenantKeyStore>,
    clock: Arc<dyn Clock>,
    config: VaultConfig,
    /// The application's revoker, for tenant deletion and the purge's retries.
    revoker: Option<Arc<dyn Revoker>>,
    /// Keyed by (tenant, DEK version, tenant creation time): a tenant purged and created again
    /// elsewhere gets a new entry.
    /// Each with the wrapped bytes it was unwrapped from: a hit must match them. Only keys of
    /// committed rows are added (never one read inside an application's transaction).
    deks: BoundedCache<DekCacheKey, CachedDek>,
    /// Recently read tenant rows (reused for `tenant_cache_ttl`).
    tenants: BoundedCache<TenantId, TenantRow>,
    /// Cache and key-call counts ([`Vault::key_cache_stats`]).
    counters: Counters,
    read_buffer: Mutex<Vec<AuditRow>>,
    /// Held while buffered read events are taken and written (`store/audit.rs`), so that
    /// [`Vault::flush_audit`] returns only once every event buffered before it is written.
    audit_writer: tokio::sync::Mutex<()>,
    /// A background write of buffered read events is under way.
    audit_write_spawned: std::sync::atomic::AtomicBool,
    /// Read events recorded and not yet written: those in `read_buffer` and those a write has
    /// taken out of it and not finished (the backlog `MAX_BACKLOG_BATCHES` bounds).
    audit_pending: std::sync::atomic::AtomicUsize,
    /// Tenants' personal-data keys (`store/personal.rs`), like the data keys.
    personal_keys: BoundedCache<TenantId, Arc<crate::crypto::AeadKey>>,
    /// When [`Vault::check_keys`] last succeeded.
    key_check: Mutex<Option<std::time::Instant>>,
    /// The promise the settings contradict, if any: the vault then refuses to work.
    refusal: Option<Arc<crate::promises::PromiseError>>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("backend", &self.inner.backend)
            .field("kek", &self.inner.kek)
            .field("tenant_keys", &self.inner.tenant_keys)
            .field("config", &self.inner.config)
            .field("revoker", &self.inner.revoker)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Starts building a vault over `backend` (a [`Backend`], or an `Arc` of one the caller
    /// keeps), wrapping tenant data keys with `kek` and keeping tenant shred secrets in
    /// `tenant_keys`.
    pub fn builder(
        backend: impl IntoBackend,
        kek: impl KeyProvider + 'static,
        tenant_keys: impl TenantKeyStore + 'static,
    ) -> VaultBuilder {
        VaultBuilder {
            backend: backend.into_backend(),
            kek: Arc::new(kek),
            tenant_keys: Arc::new(tenant_keys),
            clock: Arc::new(SystemClock),
            config: VaultConfig::default(),
            revoker: None,
            revoker_known: true,
        }
    }

    /// Creates or upgrades the schema (idempotent; safe when several servers start at once).
    ///
    /// # Errors
    ///
    /// A backend error; `SchemaTooNew` if the database was migrated by a newer credvault.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.refused()?;
        Ok(self.inner.backend.migrate().await?)
    }

    /// A handle on one tenant's records. Validates the id; touches no database.
    ///
    /// # Errors
    ///
    /// [`StoreError::Id`] for an invalid tenant id.
    pub fn tenant(&self, id: &str) -> Result<Tenant, StoreError> {
        self.refused()?;
        crate::text::check_label("actor", &self.inner.config.default_actor)?;
        Ok(Tenant::new(self.clone(), TenantId::new(id)?))
    }

    /// The contradiction between the settings and the promises, if any.
    pub(crate) fn refused(&self) -> Result<(), StoreError> {
        match &self.inner.refusal {
            Some(e) => Err(StoreError::Promise(Arc::clone(e))),
            None => Ok(()),
        }
    }

    /// Refuses an operation that would leave tokens unrevoked where a promise (`field`:
    /// `disconnect.tokens`, `account_deletion.tokens`) says they are revoked.
    pub(crate) fn require_revoker(&self, field: &str, has: bool) -> Result<(), StoreError> {
        match (&self.inner.config.promises, has) {
            (Some(p), false) => p
                .revoker_missing(field)
                .map_or(Ok(()), |e| Err(StoreError::Promise(Arc::new(e)))),
            _ => Ok(()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &VaultConfig {
        &self.inner.config
    }

    /// The backend (the raw storage layer: crate-internal, the vault's methods are the API).
    pub(crate) fn backend(&self) -> &dyn Backend {
        self.inner.backend.as_ref()
    }

    /// The vault's clock (set on the builder): every instant the vault records or compares
    /// (deadlines, expiries, leases, audit times, key ages) comes from it. Hand it to
    /// [`LoginGuard::with_clock`](crate::password::LoginGuard::with_clock) so logins follow it too.
    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.inner.clock)
    }

    pub(crate) fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// An audit row about a tenant as a whole (no record).
    pub(crate) fn tenant_audit(
        &self,
        tenant: &TenantId,
        action: AuditAction,
        actor: &str,
        outcome: &str,
    ) -> AuditRow {
        self.audit_row(tenant, None, None, action, actor, outcome)
    }

    /// An audit row about a tenant and, if given, one of its records.
    pub(crate) fn audit_row(
        &self,
        tenant: &TenantId,
        kind: Option<&str>,
        name: Option<&str>,
        action: AuditAction,
        actor: &str,
        outcome: &str,
    ) -> AuditRow {
        AuditRow {
            at: self.now(),
            tenant: Some(tenant.clone()),
            kind: kind.map(str::to_owned),
            name: name.map(str::to_owned),
            action,
            actor: actor.to_owned(),
            outcome: outcome.to_owned(),
        }
    }

    /// The tenant's row, refusing unknown and deleted tenants.
    pub(crate) async fn active_tenant(&self, tenant: &TenantId) -> Result<TenantRow, StoreError> {
        self.active_tenant_on(&mut On::Pool, tenant).await
    }

    /// [`active_tenant`](Self::active_tenant) on `on`: a row read on the application's
    /// connection is not cached (it may roll back).
    pub(crate) async fn active_tenant_on(
        &self,
        on: &mut On<'_>,
        tenant: &TenantId,
    ) -> Result<TenantRow, StoreError> {
        self.keys_ready_on(on).await?;
        let cached = if on.joined() {
            None
        } else {
            self.cached_tenant(tenant)
        };
        let row = match cached {
            Some(row) => row,
            None => {
                let row = on
                    .tenant(self, tenant)
                    .await?
                    .ok_or_else(|| StoreError::UnknownTenant(tenant.clone()))?;
                if !on.joined() {
                    self.inner.tenants.insert(tenant.clone(), row.clone());
                }
                row
            }
        };
        if let Some(purge_after) = row.purge_after {
            return Err(StoreError::TenantDeleted {
                tenant: tenant.clone(),
                purge_after,
            });
        }
        Ok(row)
    }

    /// The tenant's row, unknown tenants refused, deleted ones (in their grace period) allowed:
    /// for disconnect and export. A tenant whose shred secret the purge already destroyed is
    /// [`StoreError::TenantShredded`].
    pub(crate) async fn live_tenant(&self, tenant: &TenantId) -> Result<TenantRow, StoreError> {
        self.live_tenant_on(&mut On::Pool, tenant).await
    }

    /// [`live_tenant`](Self::live_tenant) on `on` (never cached).
    pub(crate) async fn live_tenant_on(
        &self,
        on: &mut On<'_>,
        tenant: &TenantId,
    ) -> Result<TenantRow, StoreError> {
        self.keys_ready_on(on).await?;
        let row = on
            .tenant(self, tenant)
            .await?
            .ok_or_else(|| StoreError::UnknownTenant(tenant.clone()))?;
        if row.shredded_at.is_some() {
            return Err(StoreError::TenantShredded(tenant.clone()));
        }
        Ok(row)
    }

    /// The revoker set on the builder.
    pub(crate) fn revoker(&self) -> Option<&dyn Revoker> {
        self.inner.revoker.as_deref()
    }

    /// The tenant's row, creating the tenant (shred secret, wrapped DEK) if it is new, on
    /// `on` (in the application's transaction, the new tenant commits or rolls back with it).
    pub(crate) async fn tenant_for_write_on(
        &self,
        on: &mut On<'_>,
        tenant: &TenantId,
        actor: &str,
    ) -> Result<TenantRow, StoreError> {
        match self.active_tenant_on(on, tenant).await {
            Err(StoreError::UnknownTenant(_)) => {}
            other => return other,
        }
        self.ensure_shred_secret(tenant).await?;
        let stored = match self.insert_tenant(on, tenant, actor).await {
            // A newer KEK is in use elsewhere: pick it up (reload, check) and wrap again.
            Err(e) if keys::is_stale_key(&e) && self.catch_up_kek(on).await? => {
                self.insert_tenant(on, tenant, actor).await?
            }
            other => other?,
        };
        if let Some(purge_after) = stored.purge_after {
            return Err(StoreError::TenantDeleted {
                tenant: tenant.clone(),
                purge_after,
            });
        }
        Ok(stored)
    }

    /// Inserts a new tenant with a new data key wrapped under the primary KEK (or finds the
    /// one another process inserted first).
    async fn insert_tenant(
        &self,
        on: &mut On<'_>,
        tenant: &TenantId,
        actor: &str,
    ) -> Result<TenantRow, StoreError> {
        let version = KeyVersion::FIRST;
        let wrapped = self.new_wrapped_dek(tenant, version).await?;
        // The version the wrapped key's header names (a reload may change the primary while
        // this runs).
        let kek_version = crate::crypto::format::parse(&wrapped)?.header.key_version;
        let now = self.now();
        let row = TenantRow {
            tenant: tenant.clone(),
            wrapped_dek: wrapped,
            dek_version: version,
            kek_version,
            created_at: now,
            dek_created_at: now,
            min_dek_version: KeyVersion::FIRST,
            deleted_at: None,
            purge_after: None,
            shredded_at: None,
        };
        let audit = [self
            .seal_audit_row(self.tenant_audit(tenant, AuditAction::TenantCreate, actor, "ok"))
            .await?];
        Ok(on.insert_tenant(self, &row, &audit).await?)
    }

    /// The ready record key of a tenant's current DEK, from the cache or unwrapped now.
    pub(crate) async fn dek(&self, row: &TenantRow) -> Result<Arc<TenantDek>, StoreError> {
        self.dek_from(
            &row.tenant,
            row.created_at,
            row.dek_version,
            &row.wrapped_dek,
            true,
        )
        .await
    }

    /// [`dek`](Self::dek) of a row read on `on`: not cached if the row may be uncommitted.
    pub(crate) async fn dek_on(
        &self,
        on: &On<'_>,
        row: &TenantRow,
    ) -> Result<Arc<TenantDek>, StoreError> {
        self.dek_from(
            &row.tenant,
            row.created_at,
            row.dek_version,
            &row.wrapped_dek,
            !on.joined(),
        )
        .await
    }

    /// The ready record key of DEK `version` (wrapped as `wrapped`) of the tenant created at
    /// `created_at`, from the cache (if it was unwrapped from the same bytes) or unwrapped now
    /// (and cached if `keep`).
    pub(crate) async fn dek_from(
        &self,
        tenant: &TenantId,
        created_at: i64,
        version: KeyVersion,
        wrapped: &[u8],
        keep: bool,
    ) -> Result<Arc<TenantDek>, StoreError> {
        let cache_key = (tenant.clone(), version, created_at);
        if let Some(dek) = self.cached_dek(&cache_key, Some(wrapped)) {
            return Ok(dek);
        }
        let shredded = || StoreError::TenantShredded(tenant.clone());
        let dek = match self.unwrap_tenant_dek(tenant, version, wrapped).await {
            // Wrapped under a KEK version this process does not have yet (rotated elsewhere):
            // reload the provider once and try again.
            Err(KeyError::UnknownVersion(_)) if self.kek_reload().await? => {
                // New keys are checked against the vault's record before anything is
                // wrapped with them: the next operation runs the key check.
                if let Ok(mut at) = self.inner.key_check.lock() {
                    *at = None;
                }
                self.unwrap_tenant_dek(tenant, version, wrapped).await?
            }
            other => other?,
        };
        let dek = Arc::new(dek.ok_or_else(shredded)?);
        if keep
            && self
                .inner
                .deks
                .insert(cache_key, (Arc::from(wrapped), Arc::clone(&dek)))
        {
            self.inner.counters.eviction();
        }
        Ok(dek)
    }

    /// The ready record key of any live DEK version of a tenant: the current one, or a
    /// retired one read from the backend. `None` if the version is unknown or destroyed.
    /// `keep`: whether `row` is committed (its current key may be cached).
    pub(crate) async fn dek_version(
        &self,
        row: &TenantRow,
        version: KeyVersion,
        keep: bool,
    ) -> Result<Option<Arc<TenantDek>>, StoreError> {
        if version == row.dek_version {
            return self
                .dek_from(
                    &row.tenant,
                    row.created_at,
                    row.dek_version,
                    &row.wrapped_dek,
                    keep,
                )
                .await
                .map(Some);
        }
        if let Some(dek) = self.cached_dek(&(row.tenant.clone(), version, row.created_at), None) {
            return Ok(Some(dek));
        }
        // Retired keys are read on the pool: committed, so cached.
        let retired = self.inner.backend.retired_deks(&row.tenant).await?;
        match retired.iter().find(|d| d.version == version) {
            Some(DekRow {
                wrapped_dek: Some(wrapped),
                ..
            }) => self
                .dek_from(&row.tenant, row.created_at, version, wrapped, true)
                .await
                .map(Some),
            _ => Ok(None),
        }
    }

    /// The cached record key of (tenant, DEK version, tenant creation time), if unwrapped
    /// before (a poisoned cache is a miss).
    /// The cached data key for `key`; with `wrapped`, only if it was unwrapped from exactly
    /// those bytes (a cache entry never outlives a change of the tenant's wrapped key).
    pub(crate) fn cached_dek(
        &self,
        key: &DekCacheKey,
        wrapped: Option<&[u8]>,
    ) -> Option<Arc<TenantDek>> {
        let hit = self
            .inner
            .deks
            .get(key, |(w, _)| wrapped.is_none_or(|wrapped| &**w == wrapped))
            .map(|(_, dek)| dek);
        if hit.is_some() {
            self.inner.counters.hit();
        } else {
            self.inner.counters.miss();
        }
        hit
    }

    /// Where the tenant-key store is, for reports and errors.
    pub(crate) fn tenant_keys_describe(&self) -> String {
        self.inner.tenant_keys.describe()
    }

    /// The key provider (KEK).
    pub(crate) fn kek(&self) -> &dyn KeyProvider {
        self.inner.kek.as_ref()
    }

    /// Drops every cached data key of a tenant (after a rewrap or a destroy).
    pub(crate) fn forget_deks(&self, tenant: &TenantId) {
        self.inner.deks.remove_where(|(t, _, _)| t == tenant);
    }

    fn cached_tenant(&self, tenant: &TenantId) -> Option<TenantRow> {
        self.inner
            .tenants
            .get_fresh(tenant, self.inner.config.tenant_cache_ttl)
    }

    /// Drops a tenant's cached row (after a deletion state change).
    pub(crate) fn forget_tenant_row(&self, tenant: &TenantId) {
        self.inner.tenants.remove(tenant);
    }

    /// Drops a tenant's cached row and keys (after a purge).
    pub(crate) fn forget_tenant(&self, tenant: &TenantId) {
        self.forget_tenant_row(tenant);
        self.forget_deks(tenant);
        self.forget_personal_key(tenant);
    }
}
