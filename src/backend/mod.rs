//! Layer 6 of ARCHITECTURE.md: where sealed records live.
//!
//! A [`Backend`] stores tenants (with their wrapped data key), sealed records with their clear
//! metadata, and the audit log. It sees only ciphertext and non-secret metadata: it never
//! holds a key and never decrypts. Every change commits together with its audit rows, in one
//! transaction. Implementations: [`MemoryBackend`], `SqliteBackend` (feature `sqlite`) and
//! `PgBackend` (feature `postgres`), all passing the same conformance suite.

mod audit_action;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod join;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod rotation;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql_backend;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql_join;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql_queries;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql_rotation;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql_rows;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql_session;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql_vault_keys;
#[cfg(feature = "sqlcipher")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlcipher")))]
pub mod sqlcipher;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod throttle;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use audit_action::{AuditAction, OtherAction};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub use join::VaultConnection;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use join::{Joinable, Joined};
pub use memory::MemoryBackend;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::PgBackend;
pub use rotation::{
    BatchOutcome, BatchRequest, DATA_KEY_ROW, DekCursor, DekRow, DestroyDek, RecordCount,
    ResealError, ResealFailure, ResealFn, Resealed, RowCursor, StaleRecord, SuitePlan,
};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub use sql::SqlBackend;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteBackend;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub use throttle::SqlThrottle;

use crate::{KeyVersion, RecordKind, RecordName, TenantId};

/// The schema version this build writes and reads (`credvault_schema`). Version 2 added the
/// login throttle's table, `credvault_throttle`; version 3 key rotation (retired data keys in
/// `credvault_tenant_deks`, a tenant's minimum data key version); version 4 key identity
/// (`credvault_keys`, `credvault_vault`) and a tenant's shredding state; version 5 the vault's
/// own keys (`credvault_vault_keys`: the login throttle's pseudonym key) and the flag that
/// says the throttle's rows written before it still name accounts in clear; version 6 the last
/// purge run (`credvault_vault.last_purge_at`, `last_purge_overdue`).
pub const SCHEMA_VERSION: u32 = 6;

/// A boxed, sendable future: what the [`Backend`] methods return, so that the trait stays
/// object-safe (`Arc<dyn Backend>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a record lives: tenant, kind, name (the primary key). Serialised as those three
/// fields, as text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct RecordKey {
    /// The tenant.
    pub tenant: TenantId,
    /// The kind.
    pub kind: RecordKind,
    /// The name.
    pub name: RecordName,
}

/// A tenant's row: its wrapped data key and deletion state. No secret in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRow {
    /// The tenant.
    pub tenant: TenantId,
    /// The data key, sealed under the key-encryption key (sealed-record format).
    pub wrapped_dek: Vec<u8>,
    /// The data key's version.
    pub dek_version: KeyVersion,
    /// The key-encryption key's version that wrapped it.
    pub kek_version: KeyVersion,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// When the current data key was made, Unix seconds (its age for the rotation report).
    pub dek_created_at: i64,
    /// Records sealed with a data key version below this one are refused (after a
    /// compromise). Starts at 1.
    pub min_dek_version: KeyVersion,
    /// When deletion was requested (start of the grace period), if it was.
    pub deleted_at: Option<i64>,
    /// When the purge job may destroy the tenant, if deletion was requested.
    pub purge_after: Option<i64>,
    /// When the purge job destroyed the tenant's shred secret, if it did (its records can no
    /// longer be opened; the rows go in the same purge, or the next if it was interrupted).
    pub shredded_at: Option<i64>,
}

/// What a [`KeyIdentity`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum KeyRole {
    /// A version of the key-encryption key.
    Kek,
    /// The tenant-key store (shred secrets); its version is always 0.
    TenantKeys,
}

impl KeyRole {
    /// The name stored in `credvault_keys.role`: `kek`, `tenant_keys`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kek => "kek",
            Self::TenantKeys => "tenant_keys",
        }
    }

    /// The role a stored name stands for.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "kek" => Some(Self::Kek),
            "tenant_keys" => Some(Self::TenantKeys),
            _ => None,
        }
    }
}

impl fmt::Display for KeyRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The recorded identity of one key the vault uses: a KEK version's fingerprint (a keyed hash,
/// never the key) or the tenant-key store's id. One row of `credvault_keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIdentity {
    /// What it names.
    pub role: KeyRole,
    /// The KEK version (0 for the tenant-key store).
    pub version: u32,
    /// The fingerprint or store id.
    pub fingerprint: String,
    /// When it was first recorded, Unix seconds.
    pub recorded_at: i64,
    /// The last time a process registered this KEK version as its primary, Unix seconds.
    pub last_primary_at: Option<i64>,
}

/// Every recorded key identity, and the newest KEK version any process has presented.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRegistry {
    /// The recorded identities, ordered by (role, version).
    pub keys: Vec<KeyIdentity>,
    /// Nothing may be wrapped under a KEK version older than this (0: none recorded).
    pub newest_kek: u32,
}

impl KeyRegistry {
    /// The recorded identity of `(role, version)`.
    pub fn get(&self, role: KeyRole, version: u32) -> Option<&KeyIdentity> {
        self.keys
            .iter()
            .find(|k| k.role == role && k.version == version)
    }
}

/// A key that belongs to the vault as a whole rather than to a tenant (schema version 5), one
/// row of `credvault_vault_keys`: wrapped under the key-encryption key like a data key, and
/// rewrapped with the data keys when the KEK rotates. The one there is today is the login
/// throttle's pseudonym key, named [`THROTTLE_PSEUDONYMS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultKeyRow {
    /// What the key is for.
    pub name: String,
    /// The key, sealed under the key-encryption key (sealed-record format, context
    /// `("vault_key", name)`).
    pub wrapped_key: Vec<u8>,
    /// The key-encryption key's version that wrapped it.
    pub kek_version: KeyVersion,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

/// The name of the login throttle's pseudonym key in `credvault_vault_keys`.
pub const THROTTLE_PSEUDONYMS: &str = "throttle_pseudonyms";

/// A record's row: the sealed payload and its clear metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRow {
    /// Where it lives.
    pub key: RecordKey,
    /// Incremented on every change; the compare-and-swap token.
    pub version: i64,
    /// The sealed payload (sealed-record format, bound to the key as context).
    pub sealed: Vec<u8>,
    /// The data key version that sealed it.
    pub dek_version: KeyVersion,
    /// The key-encryption key version of the tenant's data key when it was sealed.
    pub kek_version: KeyVersion,
    /// Non-secret metadata, JSON text (provider, account name, scopes...).
    pub metadata: String,
    /// The provider the record belongs to, if any (what `disconnect` matches).
    pub provider: Option<String>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Last change, Unix seconds.
    pub updated_at: i64,
    /// When the credential itself expires (an access token's expiry), if known.
    pub expires_at: Option<i64>,
    /// When the purge job deletes the record (retention of derived data), if set.
    pub purge_after: Option<i64>,
    /// Until when a refresh is in progress elsewhere (a lease taken by compare-and-swap).
    pub lease_until: Option<i64>,
}

/// What a read needs of a record ([`Backend::get_sealed`]): the three columns of its row that
/// `get` uses, where [`Backend::get`] reads all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRecord {
    /// Incremented on every change; the compare-and-swap token.
    pub version: i64,
    /// The sealed payload (sealed-record format, bound to the key as context).
    pub sealed: Vec<u8>,
    /// The data key version that sealed it.
    pub dek_version: KeyVersion,
}

/// One line of the audit log. Never holds a secret. Serialised with these field names (the
/// tenant as its id, times as Unix seconds, the action as its name).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditRow {
    /// When, Unix seconds.
    pub at: i64,
    /// The tenant, if the event concerns one.
    pub tenant: Option<TenantId>,
    /// The record kind, if the event concerns a record.
    pub kind: Option<String>,
    /// The record name, if the event concerns a record.
    pub name: Option<String>,
    /// What happened (`put`, `get`, `tenant_delete`, ...; stored as that name).
    pub action: AuditAction,
    /// Who did it (the application's label: a user id, `admin:bob`, `job:purge`).
    pub actor: String,
    /// `ok`, or a short non-secret reason (`revocation failed: http 503`).
    pub outcome: String,
}

/// Which audit rows to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this tenant's rows.
    pub tenant: Option<TenantId>,
    /// Only rows at or after this time.
    pub since: Option<i64>,
    /// At most this many rows (oldest first).
    pub limit: Option<u32>,
}

/// What kind of backend failure happened, for callers that retry or report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendErrorKind {
    /// The database could not be reached, or refused the connection.
    Unavailable,
    /// The database refused a write because it is read-only.
    ReadOnly,
    /// A row already exists (insert) or changed under us.
    Conflict,
    /// A record was sealed with a data key version that is no longer the tenant's current one
    /// (the key was rotated meanwhile): nothing was written; seal again with the current key.
    StaleKey,
    /// A row or schema is not what this build expects.
    Corrupt,
    /// The schema is newer than this build.
    SchemaTooNew,
    /// An encrypted SQLite file (feature `sqlcipher`) that no page key of the keyring opens:
    /// the wrong keys, a KEK version destroyed while the file was keyed under it, a plain
    /// file, or not a database.
    WrongKey,
    /// Desktop mode (feature `sqlcipher`) in a process whose SQLite is not SQLCipher: the
    /// application must link it (libsqlite3-sys's `bundled-sqlcipher` feature).
    NotSqlCipher,
    /// Anything else the database reported.
    Other,
}

/// In words, for messages: `unavailable`, `read-only`, `conflict`, `stale key`, `corrupt`,
/// `schema too new`, `wrong key`, `not sqlcipher`, `error`.
impl fmt::Display for BackendErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Self::Unavailable => "unavailable",
            Self::ReadOnly => "read-only",
            Self::Conflict => "conflict",
            Self::StaleKey => "stale key",
            Self::Corrupt => "corrupt",
            Self::SchemaTooNew => "schema too new",
            Self::WrongKey => "wrong key",
            Self::NotSqlCipher => "not sqlcipher",
            Self::Other => "error",
        })
    }
}

/// A backend failure. Wraps the driver's error without exposing its type; never holds secret
/// bytes (drivers see only ciphertext).
#[derive(Debug, thiserror::Error)]
#[error("storage {kind}: {message}")]
pub struct BackendError {
    kind: BackendErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl BackendError {
    /// A new error of `kind` with a message.
    pub fn new(kind: BackendErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> BackendErrorKind {
        self.kind
    }
}

/// A write sealed with a data key that is no longer the tenant's current one.
pub(crate) fn stale_key() -> BackendError {
    BackendError::new(
        BackendErrorKind::StaleKey,
        "the tenant's data key was rotated: seal the record again with the current key",
    )
}

/// A wrap under a key-encryption key older than the newest one the vault has seen.
pub(crate) fn stale_kek(kek: KeyVersion, newest: u32) -> BackendError {
    BackendError::new(
        BackendErrorKind::StaleKey,
        format!(
            "key-encryption key {kek} is older than v{newest}, which another process already \
             uses: nothing was written; reload the key file (it was rotated)"
        ),
    )
}

/// The audit row of a record deleted by [`Backend::purge_records`] (action `purge`, outcome
/// `ok`).
pub(crate) fn purged_record_audit(key: &RecordKey, now: i64, actor: &str) -> AuditRow {
    AuditRow {
        at: now,
        tenant: Some(key.tenant.clone()),
        kind: Some(key.kind.to_string()),
        name: Some(key.name.to_string()),
        action: AuditAction::Purge,
        actor: actor.to_owned(),
        outcome: "ok".to_owned(),
    }
}

/// The audit row of a row deleted by [`Backend::purge_records`] although its key does not
/// decode: its names escaped, outcome `ok: unreadable row (<class>)`.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn purged_unreadable_audit(row: &UnreadableRow, now: i64, actor: &str) -> AuditRow {
    AuditRow {
        at: now,
        tenant: row
            .raw
            .as_ref()
            .and_then(|c| TenantId::new(c.tenant.as_str()).ok()),
        kind: Some(row.kind.clone()),
        name: Some(row.name.clone()),
        action: AuditAction::Purge,
        actor: actor.to_owned(),
        outcome: format!("ok: unreadable row ({})", row.reason),
    }
}

/// Keeps [`Backend`] implementable only inside credvault.
pub(crate) mod sealed {
    /// The seal.
    pub trait Sealed {}
}

/// The schema in the database is newer than this build.
pub(crate) fn schema_too_new(found: u32) -> BackendError {
    BackendError::new(
        BackendErrorKind::SchemaTooNew,
        format!(
            "the database schema is version {found}; this build of credvault knows up to \
             {SCHEMA_VERSION}: upgrade credvault"
        ),
    )
}

/// Storage for sealed records, tenants and the audit log.
///
/// Implementations must make every method that takes `audit` rows write them in the same
/// transaction as the change. Times are Unix seconds. See the module docs.
///
/// **Sealed, and not yet a stable interface**: it grows with the vault (a new schema version
/// usually adds methods), so only credvault's own backends ([`MemoryBackend`],
/// `SqliteBackend`, `PgBackend`) implement it. Applications call it through
/// [`Vault`](crate::store::Vault); the methods are public so that tests and tools can inspect
/// what a backend stores.
pub trait Backend: sealed::Sealed + Send + Sync + fmt::Debug {
    /// Creates or upgrades the schema (idempotent; several servers may call it at once: take a
    /// lock). A schema newer than [`SCHEMA_VERSION`] is [`BackendErrorKind::SchemaTooNew`].
    fn migrate(&self) -> BoxFuture<'_, Result<(), BackendError>>;

    /// The schema version in the database, `None` before the first migration.
    fn schema_version(&self) -> BoxFuture<'_, Result<Option<u32>, BackendError>>;

    /// Inserts a tenant unless one with the same id exists; returns the row that is stored
    /// (the caller's or the existing one). A new row whose `kek_version` is older than the
    /// registry's newest KEK version is [`BackendErrorKind::StaleKey`], writing nothing: the
    /// caller's key provider is behind (reload it).
    fn insert_tenant<'a>(
        &'a self,
        row: &'a TenantRow,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<TenantRow, BackendError>>;

    /// A tenant's row.
    fn tenant<'a>(
        &'a self,
        id: &'a TenantId,
    ) -> BoxFuture<'a, Result<Option<TenantRow>, BackendError>>;

    /// Sets or clears (`None`, `None`) a tenant's deletion state. Returns whether the tenant
    /// exists and its shred secret was not destroyed (a shredded tenant is left as it is).
    fn set_tenant_deletion<'a>(
        &'a self,
        id: &'a TenantId,
        deleted_at: Option<i64>,
        purge_after: Option<i64>,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<bool, BackendError>>;

    /// Tenants whose `purge_after` is at or before `now`; a tenant id that does not decode
    /// as an [`UnreadableRow`] in its place.
    fn tenants_due_for_purge(
        &self,
        now: i64,
    ) -> BoxFuture<'_, Result<Vec<Result<TenantId, UnreadableRow>>, BackendError>>;

    /// Deletes a tenant's row (its wrapped data key) and all its records, in one transaction.
    /// Returns the number of records deleted.
    fn purge_tenant<'a>(
        &'a self,
        id: &'a TenantId,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<u64, BackendError>>;

    /// A record's row.
    fn get<'a>(
        &'a self,
        key: &'a RecordKey,
    ) -> BoxFuture<'a, Result<Option<SecretRow>, BackendError>>;

    /// What a read needs of a record (version, sealed payload, data key version), or `None`:
    /// three columns where [`get`](Self::get) decodes the whole row. `Tenant::get`'s path.
    fn get_sealed<'a>(
        &'a self,
        key: &'a RecordKey,
    ) -> BoxFuture<'a, Result<Option<SealedRecord>, BackendError>>;

    /// Inserts a new record. An existing record at the same key is
    /// [`BackendErrorKind::Conflict`]; a record whose `dek_version` is not its tenant's current
    /// data key version (when the tenant's row exists) is [`BackendErrorKind::StaleKey`].
    fn insert<'a>(
        &'a self,
        row: &'a SecretRow,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    /// Inserts `row` (its `version` should be 1), or replaces the record stored at its key,
    /// bumping the stored version by one and keeping the stored `created_at` and
    /// `purge_after`. Returns the version stored. A `dek_version` that is not the tenant's
    /// current one (when the tenant's row exists) is [`BackendErrorKind::StaleKey`], writing
    /// nothing.
    ///
    /// The provided implementation reads, then inserts or updates by compare-and-swap,
    /// retrying on a race (the audit rows commit with the write); the SQL backends do it in
    /// one statement.
    fn upsert<'a>(
        &'a self,
        row: &'a SecretRow,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<i64, BackendError>> {
        Box::pin(async move {
            loop {
                match self.get(&row.key).await? {
                    None => match self.insert(row, audit).await {
                        Ok(()) => return Ok(row.version),
                        Err(e) if e.kind() == BackendErrorKind::Conflict => {}
                        Err(e) => return Err(e),
                    },
                    Some(stored) => {
                        let next = stored.version.checked_add(1).ok_or_else(|| {
                            BackendError::new(BackendErrorKind::Corrupt, "record version overflow")
                        })?;
                        let replacement = SecretRow {
                            version: next,
                            created_at: stored.created_at,
                            ..row.clone()
                        };
                        if self.update(&replacement, stored.version, audit).await? {
                            return Ok(next);
                        }
                    }
                }
            }
        })
    }

    /// The forms of this backend's writes that run on the application's own connection, for
    /// the vault's `*_in` methods. `None` (the default) for backends that cannot: the vault
    /// then refuses a `*_in` call with `StoreError::WrongConnection`.
    #[doc(hidden)]
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[allow(
        private_interfaces,
        reason = "sealed: only credvault's SQL backends provide it"
    )]
    fn joinable(&self) -> Option<&dyn Joinable> {
        None
    }

    /// Replaces a record if its stored version is `expected_version` (compare-and-swap).
    /// Returns `false`, writing nothing, if the version differs or the record is gone.
    /// The stored `created_at` is kept, and so is a stored `purge_after` (an update never
    /// cancels a scheduled purge; [`set_purge_after`](Self::set_purge_after) sets one), so a
    /// caller need not read the row first. A new `dek_version` that is neither the stored one
    /// nor the tenant's current one (when the tenant's row exists) is
    /// [`BackendErrorKind::StaleKey`], writing nothing: a key rotated meanwhile.
    fn update<'a>(
        &'a self,
        row: &'a SecretRow,
        expected_version: i64,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<bool, BackendError>>;

    /// Deletes the records at `keys` (absent ones are skipped), in one transaction with
    /// `audit`. Returns how many were deleted.
    fn delete<'a>(
        &'a self,
        keys: &'a [RecordKey],
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<u64, BackendError>>;

    /// Up to `limit` rows of a tenant, ordered by (kind, name), after `after` (exclusive),
    /// optionally of one kind only, or of one provider only. Keyset pagination. A row that
    /// does not decode is returned as an [`UnreadableRow`] in its place, so one bad row never
    /// fails the listing.
    fn list<'a>(
        &'a self,
        query: &'a ListQuery,
    ) -> BoxFuture<'a, Result<Vec<ListedRow>, BackendError>>;

    /// Sets `purge_after` on the given records (derived data after a disconnect), with `audit`.
    fn set_purge_after<'a>(
        &'a self,
        keys: &'a [RecordKey],
        purge_after: i64,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<u64, BackendError>>;

    /// Deletes every record whose `purge_after` is at or before `due` and, in the same
    /// transaction, writes one audit row per record (at `now`, action `purge`, the given
    /// `actor`, outcome `ok`). Returns the deleted keys. (`due` is later than `now` when the
    /// purge runs ahead of the deadlines, so that the next run does not come too late.) A due
    /// row whose key does not decode is deleted too (it is due) and returned as an
    /// [`UnreadableRow`]; its audit row names it escaped.
    fn purge_records(
        &self,
        due: i64,
        now: i64,
        actor: &str,
    ) -> BoxFuture<'_, Result<Vec<Result<RecordKey, UnreadableRow>>, BackendError>>;

    /// The earliest `purge_after` of any record or tenant still stored (the deadline of the
    /// oldest item waiting for the purge), `None` if nothing waits.
    fn oldest_purge_deadline(&self) -> BoxFuture<'_, Result<Option<i64>, BackendError>>;

    /// Makes the bytes of deleted rows leave the live database files where the backend can:
    /// SQLite checkpoints its WAL into the main file and truncates it (with `secure_delete`
    /// on, deleted content is zeroed in the file); PostgreSQL and memory do nothing here
    /// (dead tuples wait for VACUUM). Returns whether the flush was complete (a SQLite
    /// checkpoint blocked by a long reader is not).
    fn flush_deleted(&self) -> BoxFuture<'_, Result<bool, BackendError>>;

    /// Records a finished purge run: when it started (Unix seconds) and how late the oldest
    /// item waiting for deletion was then (seconds; 0 when every deadline was kept). An older
    /// run than the one recorded changes nothing.
    fn record_purge_run(
        &self,
        started_at: i64,
        oldest_overdue: i64,
    ) -> BoxFuture<'_, Result<(), BackendError>>;

    /// The last purge run recorded by [`record_purge_run`](Self::record_purge_run):
    /// `(started_at, oldest_overdue)`, `None` if no purge has run.
    fn last_purge_run(&self) -> BoxFuture<'_, Result<Option<(i64, i64)>, BackendError>>;

    /// Appends audit rows (the buffered read events).
    fn append_audit<'a>(&'a self, rows: &'a [AuditRow]) -> BoxFuture<'a, Result<(), BackendError>>;

    /// Reads audit rows, oldest first.
    fn audit<'a>(
        &'a self,
        query: &'a AuditQuery,
    ) -> BoxFuture<'a, Result<Vec<AuditRow>, BackendError>>;

    /// Deletes audit rows older than `before`; returns how many.
    fn purge_audit(&self, before: i64) -> BoxFuture<'_, Result<u64, BackendError>>;

    // Key identity (schema version 4).

    /// The recorded key identities and the newest KEK version.
    fn key_registry(&self) -> BoxFuture<'_, Result<KeyRegistry, BackendError>>;

    /// In one transaction: records each of `keys` that has no row yet for its (role, version)
    /// (an existing row is kept as it is, whatever its fingerprint: the caller compares),
    /// raises the newest KEK version to the highest KEK version in `keys`, sets
    /// `last_primary_at = at` on KEK version `primary` (if given and recorded). Returns the
    /// registry as stored afterwards.
    fn register_keys<'a>(
        &'a self,
        keys: &'a [KeyIdentity],
        primary: Option<u32>,
        at: i64,
    ) -> BoxFuture<'a, Result<KeyRegistry, BackendError>>;

    /// Records that the tenant's shred secret is being destroyed (before it is), with `audit`.
    /// Returns whether the tenant exists. Idempotent: an earlier time is kept.
    fn set_tenant_shredded<'a>(
        &'a self,
        id: &'a TenantId,
        at: i64,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<bool, BackendError>>;

    // The vault's own keys (schema version 5).

    /// Every key of the vault's own (`credvault_vault_keys`), by name.
    fn vault_keys(&self) -> BoxFuture<'_, Result<Vec<VaultKeyRow>, BackendError>>;

    /// Inserts `row` unless a key of the same name exists, with `audit`; returns the row that
    /// is stored (the caller's or the existing one). A new row whose `kek_version` is older
    /// than the registry's newest KEK version is [`BackendErrorKind::StaleKey`], writing
    /// nothing.
    fn insert_vault_key<'a>(
        &'a self,
        row: &'a VaultKeyRow,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<VaultKeyRow, BackendError>>;

    /// Replaces the wrapping of vault key `name` if it is wrapped under `old_kek`, with
    /// `audit`. Returns whether it was; [`BackendErrorKind::StaleKey`] if `new_kek` is older
    /// than the registry's newest.
    fn rewrap_vault_key<'a>(
        &'a self,
        name: &'a str,
        old_kek: KeyVersion,
        wrapped: &'a [u8],
        new_kek: KeyVersion,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<bool, BackendError>>;

    /// A login throttle counting in this backend's database, its rows named under
    /// `pseudonyms`, if the backend keeps one: the SQL backends do (table
    /// `credvault_throttle`), [`MemoryBackend`] and the default do not (`None`). What
    /// `Vault::login_throttle` builds on.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
    fn sql_throttle(
        &self,
        config: crate::password::ThrottleConfig,
        pseudonyms: crate::password::PseudonymKey,
    ) -> Option<SqlThrottle> {
        let _ = (config, pseudonyms);
        None
    }

    // Key rotation (schema version 3).

    /// The tenant's retired data keys (destroyed ones too, without their wrapped key),
    /// by version.
    fn retired_deks<'a>(
        &'a self,
        tenant: &'a TenantId,
    ) -> BoxFuture<'a, Result<Vec<DekRow>, BackendError>>;

    /// Every data key of every tenant, current and retired, ordered by (tenant, version),
    /// starting after `after` (exclusive), at most `limit`. A row that does not decode is
    /// listed as an [`UnreadableRow`] of kind [`DATA_KEY_ROW`] named by its version (with
    /// where the walk resumes past it, when its tenant id and version read).
    fn deks_page<'a>(
        &'a self,
        after: Option<&'a DekCursor>,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<Result<DekRow, UnreadableRow>>, BackendError>>;

    /// Makes `wrapped` (data key version `expected + 1`, wrapped under `kek_version`) the
    /// tenant's current data key if its current version is `expected`, retiring the old one
    /// (kept, decrypt-only), in one transaction with `audit`. Returns `false`, writing
    /// nothing, if the current version is not `expected` or the tenant is unknown;
    /// [`BackendErrorKind::StaleKey`] if `kek_version` is older than the registry's newest.
    #[allow(
        clippy::too_many_arguments,
        reason = "one compare-and-swap, all parts needed"
    )]
    fn rotate_dek<'a>(
        &'a self,
        tenant: &'a TenantId,
        expected: KeyVersion,
        wrapped: &'a [u8],
        kek_version: KeyVersion,
        now: i64,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<bool, BackendError>>;

    /// Replaces the wrapping of data key `(tenant, version)` (current or retired, not
    /// destroyed) if it is wrapped under `old_kek`. Returns whether it was;
    /// [`BackendErrorKind::StaleKey`] if `new_kek` is older than the registry's newest.
    #[allow(
        clippy::too_many_arguments,
        reason = "one compare-and-swap, all parts needed"
    )]
    fn rewrap_dek<'a>(
        &'a self,
        tenant: &'a TenantId,
        version: KeyVersion,
        old_kek: KeyVersion,
        wrapped: &'a [u8],
        new_kek: KeyVersion,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<bool, BackendError>>;

    /// Erases a retired data key if no record is sealed with it, in one transaction that
    /// excludes concurrent writes of the tenant (so none can slip in under the old key).
    fn destroy_dek<'a>(
        &'a self,
        tenant: &'a TenantId,
        version: KeyVersion,
        now: i64,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<DestroyDek, BackendError>>;

    /// Sets the tenant's minimum data key version. Returns `false` if the tenant is unknown
    /// or `minimum` is above its current version.
    fn set_min_dek_version<'a>(
        &'a self,
        tenant: &'a TenantId,
        minimum: KeyVersion,
        audit: &'a [AuditRow],
    ) -> BoxFuture<'a, Result<bool, BackendError>>;

    /// How many records each (tenant, data key version, sealing suite) seals, ordered. A
    /// group whose tenant id or version does not decode is listed as an [`UnreadableRow`].
    fn record_counts(
        &self,
    ) -> BoxFuture<'_, Result<Vec<Result<RecordCount, UnreadableRow>>, BackendError>>;

    /// How many records are not sealed with their tenant's current data key, or are sealed
    /// with another suite than `plan` says.
    fn count_stale<'a>(&'a self, plan: &'a SuitePlan) -> BoxFuture<'a, Result<u64, BackendError>>;

    /// One batch of re-encryption (see [`BatchRequest`]). Several processes may run batches
    /// at once: a record is claimed by one batch only (row locks with `SKIP LOCKED` on
    /// PostgreSQL, the write lock on SQLite), and a record is only written back if it still
    /// has the version and data key version it was claimed with.
    fn reencrypt_batch<'a>(
        &'a self,
        request: &'a BatchRequest<'a>,
    ) -> BoxFuture<'a, Result<BatchOutcome, BackendError>>;
}

/// What [`Vault::builder`](crate::store::Vault::builder) accepts as its backend: any [`Backend`],
/// or one already shared as an `Arc` (so that the caller keeps a handle for raw access).
pub trait IntoBackend {
    /// The backend, shared.
    fn into_backend(self) -> Arc<dyn Backend>;
}

impl<T: Backend + 'static> IntoBackend for T {
    fn into_backend(self) -> Arc<dyn Backend> {
        Arc::new(self)
    }
}

impl<T: Backend + 'static> IntoBackend for Arc<T> {
    fn into_backend(self) -> Arc<dyn Backend> {
        self
    }
}

impl IntoBackend for Arc<dyn Backend> {
    fn into_backend(self) -> Arc<dyn Backend> {
        self
    }
}

/// A stored row a job could not read or use, named as far as its columns allow. The job skips
/// it and goes on; its report lists it. Never holds secret bytes: names are shown escaped
/// (control and bidi characters as `\u{..}`, cut to 64 characters), and `reason` is a class.
/// Serialised with these field names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct UnreadableRow {
    /// The row's tenant id, escaped.
    pub tenant: String,
    /// The row's kind, escaped (`?` if the column cannot be read as text).
    pub kind: String,
    /// The row's name, escaped (`?` if the column cannot be read as text).
    pub name: String,
    /// Why it was skipped.
    pub reason: RowFault,
    /// The column at fault, when one is (`name`, `metadata`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// The stored (tenant, kind, name), unescaped, when they read as text: where a walk
    /// resumes.
    #[serde(skip)]
    pub(crate) raw: Option<Box<RowCursor>>,
}

impl UnreadableRow {
    /// A row named by its raw columns, skipped for `reason`.
    pub(crate) fn new(
        tenant: &str,
        kind: Option<&str>,
        name: Option<&str>,
        reason: RowFault,
        column: Option<&str>,
    ) -> Self {
        Self {
            tenant: crate::text::escaped(tenant, 64),
            kind: kind.map_or_else(|| "?".to_owned(), |k| crate::text::escaped(k, 64)),
            name: name.map_or_else(|| "?".to_owned(), |n| crate::text::escaped(n, 64)),
            reason,
            column: column.map(str::to_owned),
            raw: kind.zip(name).map(|(k, n)| {
                Box::new(RowCursor {
                    tenant: tenant.to_owned(),
                    kind: k.to_owned(),
                    name: n.to_owned(),
                })
            }),
        }
    }

    /// The row of `key`, skipped for `reason` (a row that decoded but could not be used).
    pub fn of_key(key: &RecordKey, reason: RowFault, column: Option<&str>) -> Self {
        Self::new(
            key.tenant.as_str(),
            Some(key.kind.as_str()),
            Some(key.name.as_str()),
            reason,
            column,
        )
    }
}

impl fmt::Display for UnreadableRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tenant {} kind {} name {}: {}",
            self.tenant, self.kind, self.name, self.reason
        )?;
        if let Some(col) = &self.column {
            write!(f, " (column {col})")?;
        }
        Ok(())
    }
}

/// Why a row was skipped: a class, never the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RowFault {
    /// A column does not decode as its type (a BLOB where text belongs, a value out of range).
    UnreadableColumn,
    /// The stored tenant id is not a valid tenant id.
    InvalidTenant,
    /// The stored kind is not a valid kind, or not the kind the job expects.
    InvalidKind,
    /// The stored name is not a valid record name (a control character, too long...).
    InvalidName,
    /// The clear metadata is not JSON.
    InvalidMetadata,
    /// The sealed payload does not open: tampered, truncated, moved, or under the wrong key.
    Tampered,
    /// The payload is sealed under a key version the vault does not have or refuses.
    UnknownKeyVersion,
    /// The payload opens but is not the record type it should be.
    InvalidPayload,
    /// The record's tenant row is missing or unreadable.
    TenantMissing,
}

impl RowFault {
    /// The class as text (`invalid_name`, ...), as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnreadableColumn => "unreadable_column",
            Self::InvalidTenant => "invalid_tenant",
            Self::InvalidKind => "invalid_kind",
            Self::InvalidName => "invalid_name",
            Self::InvalidMetadata => "invalid_metadata",
            Self::Tampered => "tampered",
            Self::UnknownKeyVersion => "unknown_key_version",
            Self::InvalidPayload => "invalid_payload",
            Self::TenantMissing => "tenant_missing",
        }
    }
}

impl fmt::Display for RowFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of [`Backend::list`]: the record, or why it could not be read.
pub type ListedRow = Result<SecretRow, UnreadableRow>;

/// Which rows [`Backend::list`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// The tenant.
    pub tenant: TenantId,
    /// Only this kind.
    pub kind: Option<RecordKind>,
    /// Only this provider.
    pub provider: Option<String>,
    /// Start after this (kind, name) as stored, exclusive (text, so that a listing can
    /// resume after a row whose name is not valid).
    pub after: Option<(String, String)>,
    /// At most this many rows.
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use super::{BackendError, BackendErrorKind};

    #[test]
    fn backend_error_says_its_kind_in_words() {
        let cases = [
            (BackendErrorKind::Unavailable, "storage unavailable: m"),
            (BackendErrorKind::ReadOnly, "storage read-only: m"),
            (BackendErrorKind::SchemaTooNew, "storage schema too new: m"),
            (BackendErrorKind::Other, "storage error: m"),
        ];
        for (kind, shown) in cases {
            assert_eq!(BackendError::new(kind, "m").to_string(), shown);
        }
    }
}
