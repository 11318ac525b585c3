//! Where a vault operation runs its statements: on the backend's own pool (each write its own
//! transaction), or on the application's connection (each write a savepoint of the
//! application's transaction, see [`VaultConnection`](crate::backend::VaultConnection)).
//!
//! Rows read on the application's connection may not be committed yet (a tenant created in
//! the application's transaction, which may still roll back): nothing read there is cached.

use crate::TenantId;
use crate::backend::{
    AuditRow, BackendError, KeyIdentity, KeyRegistry, ListQuery, RecordKey, SecretRow, TenantRow,
};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::backend::{Joinable, Joined, VaultConnection};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::store::StoreError;
use crate::store::Vault;

/// The connection an operation runs on.
pub(crate) enum On<'c> {
    /// The backend's pool.
    Pool,
    /// The application's connection, with the backend's statements for it.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    Conn(&'c dyn Joinable, Joined<'c>),
    /// Uninhabited: keeps the lifetime without the SQL backends.
    #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
    #[allow(dead_code, reason = "never constructed")]
    Never(std::convert::Infallible, std::marker::PhantomData<&'c ()>),
}

impl Vault {
    /// The application's connection `conn`, if this vault's backend can run on it.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn on<'c, C: VaultConnection>(
        &'c self,
        conn: &'c mut C,
    ) -> Result<On<'c>, StoreError> {
        let joined = conn.joined();
        match self.backend().joinable() {
            Some(j) if j.database() == joined.database() => Ok(On::Conn(j, joined)),
            other => Err(StoreError::WrongConnection {
                vault: other.map_or("non-sql", |j| j.database()),
                connection: joined.database(),
            }),
        }
    }
}

/// Runs `$pool` on the pool or `$conn` with the joinable backend `$j` and connection `$c`.
macro_rules! on {
    ($on:expr, $vault:expr, |$b:ident| $pool:expr, |$j:ident, $c:ident| $conn:expr) => {
        match $on {
            On::Pool => {
                let $b = $vault.backend();
                $pool.await
            }
            #[cfg(any(feature = "sqlite", feature = "postgres"))]
            On::Conn($j, joined) => {
                let $c = joined.reborrow();
                $conn.await
            }
            #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
            On::Never(never, _) => match *never {},
        }
    };
}

impl On<'_> {
    /// Whether rows read here may be uncommitted (not to be cached).
    pub(crate) fn joined(&self) -> bool {
        !matches!(self, On::Pool)
    }

    pub(crate) async fn tenant(
        &mut self,
        v: &Vault,
        id: &TenantId,
    ) -> Result<Option<TenantRow>, BackendError> {
        on!(self, v, |b| b.tenant(id), |j, c| j.tenant_in(c, id))
    }

    pub(crate) async fn insert_tenant(
        &mut self,
        v: &Vault,
        row: &TenantRow,
        audit: &[AuditRow],
    ) -> Result<TenantRow, BackendError> {
        on!(self, v, |b| b.insert_tenant(row, audit), |j, c| j
            .insert_tenant_in(c, row, audit))
    }

    pub(crate) async fn set_tenant_deletion(
        &mut self,
        v: &Vault,
        id: &TenantId,
        deleted_at: Option<i64>,
        purge_after: Option<i64>,
        audit: &[AuditRow],
    ) -> Result<bool, BackendError> {
        on!(
            self,
            v,
            |b| b.set_tenant_deletion(id, deleted_at, purge_after, audit),
            |j, c| j.set_tenant_deletion_in(c, id, deleted_at, purge_after, audit)
        )
    }

    pub(crate) async fn get(
        &mut self,
        v: &Vault,
        key: &RecordKey,
    ) -> Result<Option<SecretRow>, BackendError> {
        on!(self, v, |b| b.get(key), |j, c| j.get_in(c, key))
    }

    pub(crate) async fn insert(
        &mut self,
        v: &Vault,
        row: &SecretRow,
        audit: &[AuditRow],
    ) -> Result<(), BackendError> {
        on!(self, v, |b| b.insert(row, audit), |j, c| j
            .insert_in(c, row, audit))
    }

    pub(crate) async fn upsert(
        &mut self,
        v: &Vault,
        row: &SecretRow,
        audit: &[AuditRow],
    ) -> Result<i64, BackendError> {
        on!(self, v, |b| b.upsert(row, audit), |j, c| j
            .upsert_in(c, row, audit))
    }

    pub(crate) async fn update(
        &mut self,
        v: &Vault,
        row: &SecretRow,
        expected_version: i64,
        audit: &[AuditRow],
    ) -> Result<bool, BackendError> {
        on!(
            self,
            v,
            |b| b.update(row, expected_version, audit),
            |j, c| j.update_in(c, row, expected_version, audit)
        )
    }

    pub(crate) async fn delete(
        &mut self,
        v: &Vault,
        keys: &[RecordKey],
        audit: &[AuditRow],
    ) -> Result<u64, BackendError> {
        on!(self, v, |b| b.delete(keys, audit), |j, c| j
            .delete_in(c, keys, audit))
    }

    pub(crate) async fn list(
        &mut self,
        v: &Vault,
        query: &ListQuery,
    ) -> Result<Vec<crate::backend::ListedRow>, BackendError> {
        on!(self, v, |b| b.list(query), |j, c| j.list_in(c, query))
    }

    pub(crate) async fn set_purge_after(
        &mut self,
        v: &Vault,
        keys: &[RecordKey],
        purge_after: i64,
        audit: &[AuditRow],
    ) -> Result<u64, BackendError> {
        on!(
            self,
            v,
            |b| b.set_purge_after(keys, purge_after, audit),
            |j, c| j.set_purge_after_in(c, keys, purge_after, audit)
        )
    }

    pub(crate) async fn append_audit(
        &mut self,
        v: &Vault,
        rows: &[AuditRow],
    ) -> Result<(), BackendError> {
        on!(self, v, |b| b.append_audit(rows), |j, c| j
            .append_audit_in(c, rows))
    }

    pub(crate) async fn register_keys(
        &mut self,
        v: &Vault,
        keys: &[KeyIdentity],
        primary: Option<u32>,
        at: i64,
    ) -> Result<KeyRegistry, BackendError> {
        on!(self, v, |b| b.register_keys(keys, primary, at), |j, c| j
            .register_keys_in(c, keys, primary, at))
    }
}
