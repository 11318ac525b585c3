//! Errors of the store layer.

use crate::backend::BackendError;
use crate::crypto::CryptoError;
use crate::keys::KeyError;
use crate::{IdError, KeyVersion, TenantId};

/// A vault operation failed. Messages name tenants, kinds, names and versions, never secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A setting, or an operation, would break a promise of the vault's promise file
    /// ([`VaultConfig::promises`](crate::store::VaultConfig::promises)); nothing was done.
    #[error(transparent)]
    Promise(std::sync::Arc<crate::promises::PromiseError>),
    /// No such tenant, where that is not simply "no such record": restoring or rotating a
    /// tenant that never stored anything (or was purged). A record read or written for such a
    /// tenant is [`NotFound`](Self::NotFound), as for any missing record.
    #[error("unknown tenant {0}")]
    UnknownTenant(TenantId),
    /// No record at this key.
    #[error("no {kind} record named {name:?} for tenant {tenant}")]
    NotFound {
        /// The tenant.
        tenant: TenantId,
        /// The kind.
        kind: String,
        /// The name.
        name: String,
    },
    /// `put` found a record already there (use `update` or `upsert`).
    #[error("a {kind} record named {name:?} already exists for tenant {tenant}")]
    AlreadyExists {
        /// The tenant.
        tenant: TenantId,
        /// The kind.
        kind: String,
        /// The name.
        name: String,
    },
    /// Compare-and-swap failed: the record changed since it was read.
    #[error(
        "{kind} record {name:?} of tenant {tenant} changed concurrently (expected version {expected}); read it again and retry"
    )]
    Conflict {
        /// The tenant.
        tenant: TenantId,
        /// The kind.
        kind: String,
        /// The name.
        name: String,
        /// The version the caller had.
        expected: i64,
    },
    /// The tenant is in its deletion grace period: its records can only be exported, or the
    /// tenant restored.
    #[error(
        "tenant {tenant} is being deleted (purge after {purge_after}); only export and restore are allowed"
    )]
    TenantDeleted {
        /// The tenant.
        tenant: TenantId,
        /// When it will be purged (Unix seconds).
        purge_after: i64,
    },
    /// The tenant's shred secret is gone: its records can never be opened again.
    #[error("tenant {0} was crypto-shredded: its records can no longer be opened")]
    TenantShredded(TenantId),
    /// A stored record could not be opened or decoded. Other records are unaffected.
    #[error("{kind} record {name:?} of tenant {tenant} is unreadable: {reason}")]
    CorruptRecord {
        /// The tenant.
        tenant: TenantId,
        /// The kind.
        kind: String,
        /// The name.
        name: String,
        /// Why (never the bytes).
        reason: String,
    },
    /// A record is sealed with a data key version below its tenant's minimum (set after a
    /// compromise): it is refused, as if the key were gone.
    #[error(
        "{kind} record {name:?} of tenant {tenant} is sealed with data key version {version}, below the tenant's minimum {minimum}"
    )]
    DekBelowMinimum {
        /// The tenant.
        tenant: TenantId,
        /// The kind.
        kind: String,
        /// The name.
        name: String,
        /// The version that sealed it.
        version: KeyVersion,
        /// The tenant's minimum.
        minimum: KeyVersion,
    },
    /// A key version cannot be destroyed: something still needs it (for a KEK, run
    /// [`Vault::rewrap_deks`](crate::store::Vault::rewrap_deks) first; for a data key,
    /// [`Vault::reencrypt`](crate::store::Vault::reencrypt)).
    #[error("{what} version {version} is still needed by {count} {needed_by}")]
    KeyInUse {
        /// Which key: a key-encryption key or a tenant's data key (shown as `kek`, `dek`).
        what: KeyKind,
        /// The version.
        version: KeyVersion,
        /// How many things still need it.
        count: u64,
        /// What they are (`tenant data keys`, `records`).
        needed_by: &'static str,
    },
    /// The key provider holds a different key under a KEK version than the one this vault
    /// recorded (a mistyped key path, another vault's key file): refused before anything is
    /// sealed or wrapped with it.
    #[error(
        "{provider} holds a different key-encryption key {version} than the one this vault recorded (fingerprint {found} is not {recorded}): wrong key file? nothing was written"
    )]
    KeyMismatch {
        /// Where the keys came from ("key file /etc/app/keys.json").
        provider: String,
        /// The KEK version.
        version: KeyVersion,
        /// The fingerprint the vault recorded.
        recorded: String,
        /// The fingerprint of the presented key.
        found: String,
    },
    /// The key provider cannot open a data key of this vault wrapped under a KEK version it
    /// claims to have (a vault made before key fingerprints were recorded).
    #[error(
        "{provider} cannot unwrap the data key of tenant {tenant} wrapped under key-encryption key {version}: wrong key file? nothing was written"
    )]
    KeyCannotUnwrap {
        /// Where the keys came from.
        provider: String,
        /// A tenant whose data key failed to unwrap.
        tenant: TenantId,
        /// The KEK version.
        version: KeyVersion,
    },
    /// The tenant-key store is not the one this vault uses (another store's marker, or a
    /// store that lacks the shred secrets of the vault's tenants).
    #[error(
        "tenant-key store {store} is not this vault's: {problem}; pass the directory the vault was created with"
    )]
    TenantKeyStoreMismatch {
        /// The store ("directory /var/lib/app/tenant-keys").
        store: String,
        /// What differs.
        problem: String,
    },
    /// The key provider's newest KEK version is older than one another process already
    /// uses, even after reloading: it would wrap new data keys under a key being retired.
    #[error(
        "{provider} is behind: its primary key-encryption key is {primary}, but this vault already uses v{newest}; give this process the rotated key file"
    )]
    KekBehind {
        /// Where the keys came from.
        provider: String,
        /// The provider's primary version.
        primary: KeyVersion,
        /// The newest version the vault has seen.
        newest: u32,
    },
    /// A KEK version was the primary of a running process too recently to be destroyed.
    #[error(
        "key-encryption key {version} was registered as a process's primary {ago} s ago; wait until no process has used it for {quiet} s (processes reload a rotated key file within a minute)"
    )]
    KeyRecentlyUsed {
        /// The version.
        version: KeyVersion,
        /// Seconds since a process last registered it as its primary.
        ago: i64,
        /// The quiet period the vault requires.
        quiet: i64,
    },
    /// Purge found tenants due whose shred secret is missing although the vault never
    /// destroyed it: the tenant-key store is not the right one (or lost files). Those tenants
    /// were left as they are; the rest of the purge ran.
    #[error(
        "purge refused for {} tenant(s) whose shred secret is missing from the tenant-key store although this vault never destroyed it ({}): wrong or unmounted store? nothing of theirs was deleted",
        tenants.len(),
        tenants.iter().map(TenantId::as_str).collect::<Vec<_>>().join(", ")
    )]
    ShredSecretMissing {
        /// The tenants refused.
        tenants: Vec<TenantId>,
        /// What the purge did for the others.
        report: Box<crate::store::PurgeReport>,
    },
    /// A purge schedule that cannot keep the vault's shortest deletion promise: its interval
    /// is zero, or its interval plus margin is not shorter than the promise (the grace period
    /// or the derived-data retention), so items would be due before they are even scheduled.
    #[error(
        "a purge every {} s with a {} s margin cannot keep the promise of deletion within {} s: the interval must be above zero and interval + margin below the promise; run the purge more often",
        interval.as_secs(), margin.as_secs(), promise.as_secs()
    )]
    InvalidPurgeSchedule {
        /// The runner's interval.
        interval: std::time::Duration,
        /// The runner's margin.
        margin: std::time::Duration,
        /// The shortest promise it must keep.
        promise: std::time::Duration,
    },
    /// [`Vault::spawn_purger`](crate::store::Vault::spawn_purger) was called outside a tokio
    /// runtime.
    #[error("the purge runner needs a tokio runtime: call spawn_purger from async code")]
    NoRuntime,
    /// The database holds no vault (never initialised): opening an existing vault never
    /// creates one.
    #[error("{0} holds no credvault vault: create it with `credvault vault init` (or Vault::init)")]
    NotInitialised(String),
    /// A key operation was refused: the message says why (`version 3 is the tenant's current
    /// data key`).
    #[error("{0}")]
    KeyRefused(String),
    /// A record's payload is larger than the vault's limit.
    #[error("record payload is {len} bytes; the vault's limit is {max}")]
    PayloadTooLarge {
        /// The payload size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The record type could not be serialised (a bug in its `Serialize` impl).
    #[error("record could not be serialised: {0}")]
    Serialize(String),
    /// A refresh closure failed; the stored token is unchanged. Holds the application's error
    /// as its [`source`](std::error::Error::source) (downcast it to get it back).
    #[error("refresh failed: {0}")]
    RefreshFailed(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Waited too long for another refresh of the same record to finish.
    #[error(
        "timed out waiting for a concurrent refresh of {kind} record {name:?} of tenant {tenant}"
    )]
    RefreshTimedOut {
        /// The tenant.
        tenant: TenantId,
        /// The kind.
        kind: String,
        /// The name.
        name: String,
    },
    /// A database URL with a scheme this build cannot open.
    #[error(
        "cannot open a database with scheme {scheme:?}: use sqlite://PATH, postgres://... (feature `postgres`) or memory:"
    )]
    UnsupportedUrl {
        /// The URL's scheme (the rest of the URL is not repeated: it may hold a password).
        scheme: String,
    },
    /// Writing an export failed.
    #[error("export: {0}")]
    Export(#[source] std::io::Error),
    /// A storage failure.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A key failure (unwrapping a data key, the shred store).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A cryptographic failure while sealing.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// An invalid tenant id, kind or name.
    #[error(transparent)]
    Id(#[from] IdError),
    /// An actor or provider label refused (a control or bidirectional-override character,
    /// empty, or too long): nothing was written.
    #[error(transparent)]
    InvalidLabel(#[from] crate::text::LabelError),
    /// A `*_in` method was given a connection this vault cannot write on: one of another
    /// database than the vault's backend (`sqlite`, `postgres`), or any connection when the
    /// backend is not a SQL one (`non-sql`). Nothing was written.
    #[error(
        "a {connection} connection cannot carry a write of this {vault} vault: pass a connection to the vault's own database"
    )]
    WrongConnection {
        /// The vault's backend: `sqlite`, `postgres` or `non-sql`.
        vault: &'static str,
        /// The connection given: `sqlite` or `postgres`.
        connection: &'static str,
    },
}

/// Which kind of key a [`StoreError::KeyInUse`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum KeyKind {
    /// A version of the key-encryption key (`kek`).
    Kek,
    /// A version of a tenant's data key (`dek`).
    Dek,
}

impl KeyKind {
    /// Its short name in messages: `kek`, `dek`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kek => "kek",
            Self::Dek => "dek",
        }
    }
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl StoreError {
    /// Whether the thing asked for does not exist: no such record, or a tenant that never
    /// stored anything (or was purged). HTTP 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. } | Self::UnknownTenant(_))
    }

    /// Whether the request conflicts with the stored state: the record exists already, it
    /// changed since it was read (compare-and-swap), or the tenant is being deleted. HTTP 409.
    pub fn is_conflict(&self) -> bool {
        match self {
            Self::AlreadyExists { .. } | Self::Conflict { .. } | Self::TenantDeleted { .. } => true,
            Self::Backend(e) => e.kind() == crate::backend::BackendErrorKind::Conflict,
            _ => false,
        }
    }

    /// Whether the storage could not serve the request now (down, busy, read-only, or a
    /// concurrent refresh that did not finish): worth retrying later. HTTP 503.
    pub fn is_unavailable(&self) -> bool {
        use crate::backend::BackendErrorKind::{ReadOnly, Unavailable};
        match self {
            Self::RefreshTimedOut { .. } | Self::Key(KeyError::Unavailable(_)) => true,
            Self::Backend(e) => matches!(e.kind(), Unavailable | ReadOnly),
            _ => false,
        }
    }
}
