//! The per-tenant handle: put, get, update, delete, list.

use std::fmt;
use std::io::Write as _;

use serde_json::Value;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::backend::VaultConnection;
use crate::backend::{
    AuditAction, AuditRow, BackendErrorKind, ListQuery, RecordKey, RowFault, SecretRow,
    UnreadableRow,
};
use crate::crypto::Context;
use crate::secret::SecretBytes;
use crate::store::{On, SecretKind, StoreError, Vault, personal};
use crate::{KeyVersion, RecordKind, RecordName, TenantId};

/// The reason of a [`StoreError::CorruptRecord`] for a key version the tenant lacks.
const NO_SUCH_KEY: &str = "which the tenant no longer has";
/// The start of the reason of a [`StoreError::CorruptRecord`] for a payload of the wrong type.
const NOT_ITS_TYPE: &str = "payload does not decode as";

/// The class of a failure to open a stored record (`None` for an error that is not about the
/// record: storage, a shredded tenant...).
pub(crate) fn open_fault(err: &StoreError) -> Option<RowFault> {
    match err {
        StoreError::DekBelowMinimum { .. } | StoreError::Key(_) => {
            Some(RowFault::UnknownKeyVersion)
        }
        StoreError::CorruptRecord { reason, .. } if reason.ends_with(NO_SUCH_KEY) => {
            Some(RowFault::UnknownKeyVersion)
        }
        StoreError::CorruptRecord { reason, .. } if reason.starts_with(NOT_ITS_TYPE) => {
            Some(RowFault::InvalidPayload)
        }
        StoreError::CorruptRecord { .. } | StoreError::Crypto(_) => Some(RowFault::Tampered),
        _ => None,
    }
}

/// Rows fetched per page when listing or exporting.
pub(crate) const PAGE: u32 = 200;

/// How many times a write is sealed again after finding the tenant's data key rotated under
/// it (each time with the tenant's row read afresh).
pub(crate) const STALE_KEY_RETRIES: u32 = 3;

/// A record read from the vault, with the version to pass to [`Tenant::update`].
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<R> {
    /// The record.
    pub value: R,
    /// Its version (compare-and-swap token).
    pub version: i64,
}

/// What the vault knows about a record without decrypting it. Serialised with these field
/// names; times are Unix seconds.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecordInfo {
    /// The kind.
    pub kind: String,
    /// The name.
    pub name: String,
    /// The version.
    pub version: i64,
    /// The provider, if any.
    pub provider: Option<String>,
    /// The clear metadata.
    pub metadata: Value,
    /// Created, Unix seconds.
    pub created_at: i64,
    /// Last changed, Unix seconds.
    pub updated_at: i64,
    /// When the credential expires, if known.
    pub expires_at: Option<i64>,
    /// When the purge job deletes it, if scheduled.
    pub purge_after: Option<i64>,
}

/// Rows read for a tenant-wide job: those that decode, and those skipped.
#[derive(Debug, Default)]
pub(crate) struct Rows {
    pub(crate) rows: Vec<SecretRow>,
    pub(crate) unreadable: Vec<UnreadableRow>,
}

/// A sealed payload and where it lives: what opening a record needs (a whole row, or the
/// three columns a `get` reads).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sealed<'a> {
    pub(crate) key: &'a RecordKey,
    pub(crate) dek_version: KeyVersion,
    pub(crate) sealed: &'a [u8],
}

impl<'a> From<&'a SecretRow> for Sealed<'a> {
    fn from(row: &'a SecretRow) -> Self {
        Self {
            key: &row.key,
            dek_version: row.dek_version,
            sealed: &row.sealed,
        }
    }
}

/// What [`Tenant::list`] returns: the records that could be read and the rows that could not
/// (skipped and named, never failing the listing). Derefs to the records, and iterates over
/// them; check [`unreadable`](Self::unreadable) to know whether the listing is complete.
/// Serialised with these field names.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Listing {
    /// The records, ordered by kind and name.
    pub records: Vec<RecordInfo>,
    /// Rows that could not be read (a name that is not valid, metadata that is not JSON, a
    /// column that does not decode), skipped.
    pub unreadable: Vec<UnreadableRow>,
}

impl Listing {
    /// Whether every row was read.
    pub fn is_complete(&self) -> bool {
        self.unreadable.is_empty()
    }
}

impl std::ops::Deref for Listing {
    type Target = [RecordInfo];
    fn deref(&self) -> &[RecordInfo] {
        &self.records
    }
}

impl IntoIterator for Listing {
    type Item = RecordInfo;
    type IntoIter = std::vec::IntoIter<RecordInfo>;
    fn into_iter(self) -> Self::IntoIter {
        self.records.into_iter()
    }
}

impl<'a> IntoIterator for &'a Listing {
    type Item = &'a RecordInfo;
    type IntoIter = std::slice::Iter<'a, RecordInfo>;
    fn into_iter(self) -> Self::IntoIter {
        self.records.iter()
    }
}

impl RecordInfo {
    /// The record's info, its metadata opened with the tenant's personal-data key
    /// (`personal`), or the row as unreadable if its metadata does not open or is not JSON.
    pub(crate) fn checked(
        row: &SecretRow,
        personal: Option<&crate::crypto::AeadKey>,
    ) -> Result<Self, UnreadableRow> {
        let metadata = personal::open_metadata(personal, &row.key, &row.metadata)
            .map_err(|fault| UnreadableRow::of_key(&row.key, fault, Some("metadata")))?;
        let metadata = serde_json::from_str::<Value>(&metadata).map_err(|_| {
            UnreadableRow::of_key(&row.key, RowFault::InvalidMetadata, Some("metadata"))
        })?;
        Ok(Self {
            kind: row.key.kind.to_string(),
            name: row.key.name.to_string(),
            version: row.version,
            provider: row.provider.clone(),
            metadata,
            created_at: row.created_at,
            updated_at: row.updated_at,
            expires_at: row.expires_at,
            purge_after: row.purge_after,
        })
    }
}

/// One tenant's records. Every operation is confined to this tenant: a handle can never reach
/// another tenant's records, and a record copied into this tenant's rows fails to open.
#[derive(Clone)]
pub struct Tenant {
    pub(crate) vault: Vault,
    pub(crate) id: TenantId,
    pub(crate) actor: String,
}

impl fmt::Debug for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tenant")
            .field("id", &self.id)
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

impl Tenant {
    pub(crate) fn new(vault: Vault, id: TenantId) -> Self {
        let actor = vault.config().default_actor.clone();
        Self { vault, id, actor }
    }

    /// The same handle, naming `actor` in the audit log (a user id, `admin:bob`, `job:sync`).
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidLabel`] (field `actor`) if `actor` is empty, longer than
    /// [`MAX_LABEL_CHARS`](crate::text::MAX_LABEL_CHARS) characters, or holds a control or
    /// bidirectional-override character: an audit line must not be forgeable.
    pub fn with_actor(mut self, actor: impl Into<String>) -> Result<Self, StoreError> {
        let actor = actor.into();
        crate::text::check_label("actor", &actor)?;
        self.actor = actor;
        Ok(self)
    }

    /// The tenant id.
    pub fn id(&self) -> &TenantId {
        &self.id
    }

    /// Stores a new record. Creates the tenant (its keys) on first use. Returns its version
    /// (1).
    ///
    /// # Errors
    ///
    /// [`StoreError::AlreadyExists`] if a record of this kind and name exists;
    /// [`StoreError::TenantDeleted`] during the grace period; invalid names; storage errors.
    #[tracing::instrument(name = "credvault.put", skip_all, fields(tenant = %self.id, kind = R::KIND, name = name), err(Display, level = "debug"))]
    pub async fn put<R: SecretKind>(&self, name: &str, record: &R) -> Result<i64, StoreError> {
        self.put_on(&mut On::Pool, name, record).await
    }

    /// [`put`](Self::put) inside the application's transaction: pass the inside of your open
    /// `sqlx::Transaction`, `&mut *tx`, on the vault's own database. The record, its audit row
    /// and (on first use) the tenant's row commit or roll back with your transaction. See the
    /// crate's README, "Inside your own transaction".
    ///
    /// # Errors
    ///
    /// As [`put`](Self::put); [`StoreError::WrongConnection`] for a connection to another
    /// database than the vault's. After an error, the vault's statements are rolled back to
    /// their savepoint: your transaction is usable.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[tracing::instrument(name = "credvault.put_in", skip_all, fields(tenant = %self.id, kind = R::KIND, name = name), err(Display, level = "debug"))]
    pub async fn put_in<R: SecretKind, C: VaultConnection>(
        &self,
        conn: &mut C,
        name: &str,
        record: &R,
    ) -> Result<i64, StoreError> {
        self.put_on(&mut self.vault.on(conn)?, name, record).await
    }

    async fn put_on<R: SecretKind>(
        &self,
        on: &mut On<'_>,
        name: &str,
        record: &R,
    ) -> Result<i64, StoreError> {
        let key = self.key::<R>(name)?;
        let mut attempts = 0;
        loop {
            let tenant = self
                .vault
                .tenant_for_write_on(on, &self.id, &self.actor)
                .await?;
            let row = self.seal_row(on, &key, record, &tenant, 1, None).await?;
            let audit = [self.audit(&key, AuditAction::Put, "ok")];
            let audit = self.vault.seal_audit(&audit).await?;
            match on.insert(&self.vault, &row, &audit).await {
                Ok(()) => return Ok(1),
                Err(e)
                    if e.kind() == BackendErrorKind::StaleKey && attempts < STALE_KEY_RETRIES =>
                {
                    // The tenant's data key was rotated since its row was cached.
                    attempts += 1;
                    self.vault.forget_tenant_row(&self.id);
                }
                Err(e) if e.kind() == BackendErrorKind::Conflict => {
                    return Err(StoreError::AlreadyExists {
                        tenant: self.id.clone(),
                        kind: key.kind.to_string(),
                        name: key.name.to_string(),
                    });
                }
                Err(e) => return Err(StoreError::Backend(e)),
            }
        }
    }

    /// Stores a record whether or not one exists at this kind and name: inserts it (version
    /// 1) or replaces it (the stored version + 1, keeping its creation time and any scheduled
    /// purge), in one statement on the SQL backends, audited as `upsert`. Creates the tenant on
    /// first use. Returns the new version. No compare-and-swap: use [`update`](Self::update)
    /// to replace only what you read.
    ///
    /// # Errors
    ///
    /// [`StoreError::TenantDeleted`] during the grace period; invalid names; storage errors.
    #[tracing::instrument(name = "credvault.upsert", skip_all, fields(tenant = %self.id, kind = R::KIND, name = name), err(Display, level = "debug"))]
    pub async fn upsert<R: SecretKind>(&self, name: &str, record: &R) -> Result<i64, StoreError> {
        self.upsert_on(&mut On::Pool, name, record).await
    }

    /// [`upsert`](Self::upsert) inside the application's transaction (see
    /// [`put_in`](Self::put_in)).
    ///
    /// # Errors
    ///
    /// As [`upsert`](Self::upsert); [`StoreError::WrongConnection`].
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[tracing::instrument(name = "credvault.upsert_in", skip_all, fields(tenant = %self.id, kind = R::KIND, name = name), err(Display, level = "debug"))]
    pub async fn upsert_in<R: SecretKind, C: VaultConnection>(
        &self,
        conn: &mut C,
        name: &str,
        record: &R,
    ) -> Result<i64, StoreError> {
        self.upsert_on(&mut self.vault.on(conn)?, name, record)
            .await
    }

    async fn upsert_on<R: SecretKind>(
        &self,
        on: &mut On<'_>,
        name: &str,
        record: &R,
    ) -> Result<i64, StoreError> {
        let key = self.key::<R>(name)?;
        let mut attempts = 0;
        loop {
            let tenant = self
                .vault
                .tenant_for_write_on(on, &self.id, &self.actor)
                .await?;
            let row = self.seal_row(on, &key, record, &tenant, 1, None).await?;
            let audit = [self.audit(&key, AuditAction::Upsert, "ok")];
            let audit = self.vault.seal_audit(&audit).await?;
            match on.upsert(&self.vault, &row, &audit).await {
                Ok(version) => return Ok(version),
                Err(e)
                    if e.kind() == BackendErrorKind::StaleKey && attempts < STALE_KEY_RETRIES =>
                {
                    attempts += 1;
                    self.vault.forget_tenant_row(&self.id);
                }
                Err(e) => return Err(StoreError::Backend(e)),
            }
        }
    }

    /// Reads and opens a record.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] if there is no such record, whether or not the tenant ever
    /// stored anything; [`StoreError::TenantDeleted`], [`StoreError::CorruptRecord`] if the
    /// stored bytes do not open under this tenant, kind and name (moved, altered, or sealed
    /// with a destroyed key); storage errors.
    #[tracing::instrument(name = "credvault.get", skip_all, fields(tenant = %self.id, kind = R::KIND, name = name), err(Display, level = "debug"))]
    pub async fn get<R: SecretKind>(&self, name: &str) -> Result<Versioned<R>, StoreError> {
        self.get_on(&mut On::Pool, name).await
    }

    /// [`get`](Self::get) inside the application's transaction: sees what the transaction
    /// wrote (a record put in it, not yet committed). Its read event is written to the audit
    /// log in the same transaction (not buffered), unless read auditing is off.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get); [`StoreError::WrongConnection`].
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[tracing::instrument(name = "credvault.get_in", skip_all, fields(tenant = %self.id, kind = R::KIND, name = name), err(Display, level = "debug"))]
    pub async fn get_in<R: SecretKind, C: VaultConnection>(
        &self,
        conn: &mut C,
        name: &str,
    ) -> Result<Versioned<R>, StoreError> {
        self.get_on(&mut self.vault.on(conn)?, name).await
    }

    async fn get_on<R: SecretKind>(
        &self,
        on: &mut On<'_>,
        name: &str,
    ) -> Result<Versioned<R>, StoreError> {
        let key = self.key::<R>(name)?;
        let tenant = self.record_tenant(on, &key).await?;
        let (version, value) = if on.joined() {
            let row = self.fetch(on, &key).await?;
            (
                row.version,
                self.open_row_audited(on, (&row).into(), &tenant).await?,
            )
        } else {
            // The hot path: three columns, not the whole row (a quarter of a get's work went
            // to decoding columns it does not use; counted with callgrind, benches/vault.rs).
            let found = self.vault.backend().get_sealed(&key).await?;
            let found = found.ok_or_else(|| self.not_found(&key))?;
            let sealed = Sealed {
                key: &key,
                dek_version: found.dek_version,
                sealed: &found.sealed,
            };
            (
                found.version,
                self.open_row_audited(on, sealed, &tenant).await?,
            )
        };
        let audit = self.audit(&key, AuditAction::Get, "ok");
        if on.joined() {
            if self.vault.config().read_audit != crate::store::ReadAudit::Off {
                let audit = self.vault.seal_audit_row(audit).await?;
                on.append_audit(&self.vault, &[audit]).await?;
            }
        } else {
            self.vault.record_read(audit).await?;
        }
        Ok(Versioned { value, version })
    }

    /// Replaces a record if it is still at `expected_version` (compare-and-swap). Returns the
    /// new version.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] if it changed since it was read (or was deleted); the errors
    /// of [`get`](Self::get).
    #[tracing::instrument(name = "credvault.update", skip_all, fields(tenant = %self.id, kind = R::KIND, name = name), err(Display, level = "debug"))]
    pub async fn update<R: SecretKind>(
        &self,
        name: &str,
        record: &R,
        expected_version: i64,
    ) -> Result<i64, StoreError> {
        self.update_on(&mut On::Pool, name, record, expected_version)
            .await
    }

    /// [`update`](Self::update) inside the application's transaction (see
    /// [`put_in`](Self::put_in)).
    ///
    /// # Errors
    ///
    /// As [`update`](Self::update); [`StoreError::WrongConnection`].
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[tracing::instrument(name = "credvault.update_in", skip_all, fields(tenant = %self.id, kind = R::KIND, name = name), err(Display, level = "debug"))]
    pub async fn update_in<R: SecretKind, C: VaultConnection>(
        &self,
        conn: &mut C,
        name: &str,
        record: &R,
        expected_version: i64,
    ) -> Result<i64, StoreError> {
        self.update_on(&mut self.vault.on(conn)?, name, record, expected_version)
            .await
    }

    async fn update_on<R: SecretKind>(
        &self,
        on: &mut On<'_>,
        name: &str,
        record: &R,
        expected_version: i64,
    ) -> Result<i64, StoreError> {
        let key = self.key::<R>(name)?;
        let tenant = self.record_tenant(on, &key).await?;
        // No read first: the compare-and-swap decides, and the backend keeps created_at and
        // purge_after.
        self.update_row(
            on,
            &key,
            record,
            &tenant,
            None,
            expected_version,
            None,
            AuditAction::Update,
        )
        .await
    }

    /// Deletes a record at once (hard delete). Returns whether it existed (`false` for a
    /// tenant that never stored anything).
    ///
    /// # Errors
    ///
    /// [`StoreError::TenantDeleted`], storage errors.
    #[tracing::instrument(name = "credvault.delete", skip_all, fields(tenant = %self.id, kind = R::KIND, name = name), err(Display, level = "debug"))]
    pub async fn delete<R: SecretKind>(&self, name: &str) -> Result<bool, StoreError> {
        self.delete_on::<R>(&mut On::Pool, name).await
    }

    /// [`delete`](Self::delete) inside the application's transaction (see
    /// [`put_in`](Self::put_in)).
    ///
    /// # Errors
    ///
    /// As [`delete`](Self::delete); [`StoreError::WrongConnection`].
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[tracing::instrument(name = "credvault.delete_in", skip_all, fields(tenant = %self.id, kind = R::KIND, name = name), err(Display, level = "debug"))]
    pub async fn delete_in<R: SecretKind, C: VaultConnection>(
        &self,
        conn: &mut C,
        name: &str,
    ) -> Result<bool, StoreError> {
        self.delete_on::<R>(&mut self.vault.on(conn)?, name).await
    }

    async fn delete_on<R: SecretKind>(
        &self,
        on: &mut On<'_>,
        name: &str,
    ) -> Result<bool, StoreError> {
        let key = self.key::<R>(name)?;
        match self.vault.active_tenant_on(on, &self.id).await {
            Err(StoreError::UnknownTenant(_)) => return Ok(false),
            other => other?,
        };
        let audit = [self.audit(&key, AuditAction::Delete, "ok")];
        let n = on
            .delete(
                &self.vault,
                std::slice::from_ref(&key),
                &self.vault.seal_audit(&audit).await?,
            )
            .await?;
        Ok(n > 0)
    }

    /// Lists the tenant's records (metadata only, nothing is decrypted), optionally of one
    /// kind, ordered by kind and name. Empty for a tenant that never stored anything. A row
    /// that cannot be read (a name that is not valid, metadata that is not JSON, a column that
    /// does not decode) is skipped and named in [`Listing::unreadable`]; the rest is listed.
    ///
    /// # Errors
    ///
    /// An invalid kind, storage errors.
    #[tracing::instrument(name = "credvault.list", skip_all, fields(tenant = %self.id, kind), err(Display, level = "debug"))]
    pub async fn list(&self, kind: Option<&str>) -> Result<Listing, StoreError> {
        let kind = kind.map(RecordKind::new).transpose()?;
        let rows = self.all_rows(&mut On::Pool, kind.as_ref(), None).await?;
        let mut listing = Listing {
            records: Vec::with_capacity(rows.rows.len()),
            unreadable: rows.unreadable,
        };
        let personal = self.metadata_key(&rows.rows).await?;
        for row in &rows.rows {
            match RecordInfo::checked(row, personal.as_deref()) {
                Ok(info) => listing.records.push(info),
                Err(skipped) => listing.unreadable.push(skipped),
            }
        }
        Ok(listing)
    }

    /// The tenant's row for a read or write of the record at `key`: a tenant that never stored
    /// anything has no such record ([`StoreError::NotFound`]).
    async fn record_tenant(
        &self,
        on: &mut On<'_>,
        key: &RecordKey,
    ) -> Result<crate::backend::TenantRow, StoreError> {
        match self.vault.active_tenant_on(on, &self.id).await {
            Err(StoreError::UnknownTenant(_)) => Err(self.not_found(key)),
            other => other,
        }
    }

    pub(crate) fn not_found(&self, key: &RecordKey) -> StoreError {
        StoreError::NotFound {
            tenant: self.id.clone(),
            kind: key.kind.to_string(),
            name: key.name.to_string(),
        }
    }

    /// One page of the tenant's rows after `after`, optionally of one kind or provider: the
    /// rows that decode, the ones that do not (skipped, named), and where the next page
    /// starts (`None` after the last).
    pub(crate) async fn page(
        &self,
        on: &mut On<'_>,
        kind: Option<&RecordKind>,
        provider: Option<&str>,
        after: Option<(String, String)>,
    ) -> Result<(Rows, Option<(String, String)>), StoreError> {
        let query = ListQuery {
            tenant: self.id.clone(),
            kind: kind.cloned(),
            provider: provider.map(str::to_owned),
            after,
            limit: PAGE,
        };
        let page = on.list(&self.vault, &query).await?;
        let next = match page.last() {
            Some(last) if page.len() == usize::try_from(PAGE).unwrap_or(usize::MAX) => {
                Some(match last {
                    Ok(r) => (r.key.kind.to_string(), r.key.name.to_string()),
                    Err(u) => u.raw.clone().map(|c| (c.kind, c.name)).ok_or_else(|| {
                        StoreError::Backend(crate::backend::BackendError::new(
                            BackendErrorKind::Corrupt,
                            format!("listing tenant {}: a row's kind or name is not text ({u}); the listing cannot go past it", self.id),
                        ))
                    })?,
                })
            }
            _ => None,
        };
        let mut rows = Rows::default();
        for listed in page {
            match listed {
                Ok(row) => rows.rows.push(row),
                Err(skipped) => rows.unreadable.push(skipped),
            }
        }
        Ok((rows, next))
    }

    /// Every row of the tenant (optionally of one kind or provider), page by page, and the
    /// rows that did not decode.
    pub(crate) async fn all_rows(
        &self,
        on: &mut On<'_>,
        kind: Option<&RecordKind>,
        provider: Option<&str>,
    ) -> Result<Rows, StoreError> {
        let mut out = Rows::default();
        let mut after = None;
        loop {
            let (page, next) = self.page(on, kind, provider, after.take()).await?;
            out.rows.extend(page.rows);
            out.unreadable.extend(page.unreadable);
            match next {
                Some(n) => after = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// The tenant's personal-data key, for a write: a tenant being written has its shred
    /// secret (made before its row), so none is an error.
    pub(crate) async fn personal_key(
        &self,
    ) -> Result<std::sync::Arc<crate::crypto::AeadKey>, StoreError> {
        self.vault
            .personal_key(&self.id)
            .await?
            .ok_or_else(|| StoreError::TenantShredded(self.id.clone()))
    }

    /// The key that opens the metadata of `rows`: `None` when none is sealed (no key call) or
    /// the tenant has no shred secret (its sealed rows are then unreadable).
    pub(crate) async fn metadata_key(
        &self,
        rows: &[SecretRow],
    ) -> Result<Option<std::sync::Arc<crate::crypto::AeadKey>>, StoreError> {
        if rows.iter().any(|r| personal::is_sealed(&r.metadata)) {
            self.vault.personal_key(&self.id).await
        } else {
            Ok(None)
        }
    }

    /// An audit row about `key`, sealed for writing (see [`Vault::seal_audit_row`]).
    pub(crate) async fn sealed_audit(
        &self,
        key: &RecordKey,
        action: AuditAction,
        outcome: &str,
    ) -> Result<AuditRow, StoreError> {
        self.vault
            .seal_audit_row(self.audit(key, action, outcome))
            .await
    }

    pub(crate) fn key<R: SecretKind>(&self, name: &str) -> Result<RecordKey, StoreError> {
        Ok(RecordKey {
            tenant: self.id.clone(),
            kind: RecordKind::new(R::KIND)?,
            name: RecordName::new(name)?,
        })
    }

    pub(crate) fn audit(&self, key: &RecordKey, action: AuditAction, outcome: &str) -> AuditRow {
        self.vault.audit_row(
            &self.id,
            Some(key.kind.as_str()),
            Some(key.name.as_str()),
            action,
            &self.actor,
            outcome,
        )
    }

    pub(crate) async fn fetch(
        &self,
        on: &mut On<'_>,
        key: &RecordKey,
    ) -> Result<SecretRow, StoreError> {
        on.get(&self.vault, key)
            .await?
            .ok_or_else(|| self.not_found(key))
    }

    /// Seals `record` into a row at `version`.
    pub(crate) async fn seal_row<R: SecretKind>(
        &self,
        on: &On<'_>,
        key: &RecordKey,
        record: &R,
        tenant: &crate::backend::TenantRow,
        version: i64,
        previous: Option<&SecretRow>,
    ) -> Result<SecretRow, StoreError> {
        if let Some(provider) = record.provider() {
            crate::text::check_label("provider", provider)?;
        }
        let payload = to_secret_json(record)?;
        let max = self.vault.config().max_payload;
        if payload.len() > max {
            return Err(StoreError::PayloadTooLarge {
                len: payload.len(),
                max,
            });
        }
        let dek = self.vault.dek_on(on, tenant).await?;
        let personal = self.personal_key().await?;
        let metadata = personal::seal_metadata(&personal, key, &record.metadata().to_string())?;
        let ctx = Context::record(key.tenant.as_str(), key.kind.as_str(), key.name.as_str())?;
        let now = self.vault.now();
        let suite = self.vault.config().suite_for(key.kind.as_str());
        let sealed = dek.seal_with(
            suite,
            payload.expose_secret(),
            &ctx,
            u64::try_from(now).unwrap_or(0),
        )?;
        Ok(SecretRow {
            key: key.clone(),
            version,
            sealed,
            dek_version: dek.version(),
            kek_version: dek.kek_version(),
            metadata,
            provider: record.provider().map(str::to_owned),
            created_at: previous.map_or(now, |p| p.created_at),
            updated_at: now,
            expires_at: record.expires_at(),
            purge_after: previous.and_then(|p| p.purge_after),
            lease_until: None,
        })
    }

    /// Opens a row into its record type.
    pub(crate) async fn open_row<R: SecretKind>(
        &self,
        on: &On<'_>,
        row: Sealed<'_>,
        tenant: &crate::backend::TenantRow,
    ) -> Result<R, StoreError> {
        let plain = self.open_bytes(on, row, tenant).await?;
        serde_json::from_slice(plain.expose_secret()).map_err(|e| {
            self.corrupt(
                row.key,
                format!("{NOT_ITS_TYPE} {}: {}", R::KIND, e.classify_str()),
            )
        })
    }

    /// [`open_row`](Self::open_row) for a read the caller asked for (`get`, `refresh`): a
    /// failure to open writes an `open_failed` audit row with the fault's class (on the
    /// caller's transaction when joined, else at once), then the error is returned as it was.
    /// A failure to write that row is logged, never put in the error's place.
    pub(crate) async fn open_row_audited<R: SecretKind>(
        &self,
        on: &mut On<'_>,
        row: Sealed<'_>,
        tenant: &crate::backend::TenantRow,
    ) -> Result<R, StoreError> {
        let err = match self.open_row(on, row, tenant).await {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        let Some(fault) = open_fault(&err) else {
            return Err(err);
        };
        let outcome = format!("failed: {fault}");
        let audit = match self
            .sealed_audit(row.key, AuditAction::OpenFailed, &outcome)
            .await
        {
            Ok(row) => [row],
            Err(e) => {
                tracing::warn!(tenant = %self.id, error = %e, "credvault: the audit row of a failed open could not be sealed");
                return Err(err);
            }
        };
        let written = if on.joined() {
            on.append_audit(&self.vault, &audit).await
        } else {
            self.vault.backend().append_audit(&audit).await
        };
        if let Err(e) = written {
            tracing::warn!(tenant = %self.id, error = %e, "credvault: the audit row of a failed open could not be written");
        }
        Err(err)
    }

    /// Opens a row's payload bytes (the record's JSON), with the tenant's current data key or
    /// the retired version that sealed it.
    pub(crate) async fn open_bytes(
        &self,
        on: &On<'_>,
        row: Sealed<'_>,
        tenant: &crate::backend::TenantRow,
    ) -> Result<SecretBytes, StoreError> {
        let ctx = Context::record(
            row.key.tenant.as_str(),
            row.key.kind.as_str(),
            row.key.name.as_str(),
        )?;
        if row.dek_version < tenant.min_dek_version {
            return Err(StoreError::DekBelowMinimum {
                tenant: row.key.tenant.clone(),
                kind: row.key.kind.to_string(),
                name: row.key.name.to_string(),
                version: row.dek_version,
                minimum: tenant.min_dek_version,
            });
        }
        let Some(dek) = self
            .vault
            .dek_version(tenant, row.dek_version, !on.joined())
            .await?
        else {
            return Err(self.corrupt(
                row.key,
                format!(
                    "sealed with data key version {}, {NO_SUCH_KEY}",
                    row.dek_version
                ),
            ));
        };
        dek.open(row.sealed, &ctx)
            .map_err(|e| self.corrupt(row.key, e.to_string()))
    }

    pub(crate) fn corrupt(&self, key: &RecordKey, reason: String) -> StoreError {
        StoreError::CorruptRecord {
            tenant: key.tenant.clone(),
            kind: key.kind.to_string(),
            name: key.name.to_string(),
            reason,
        }
    }

    /// Compare-and-swap of a new value over `current`.
    #[allow(
        clippy::too_many_arguments,
        reason = "internal helper shared by update and refresh"
    )]
    pub(crate) async fn update_row<R: SecretKind>(
        &self,
        on: &mut On<'_>,
        key: &RecordKey,
        record: &R,
        tenant: &crate::backend::TenantRow,
        current: Option<&SecretRow>,
        expected_version: i64,
        lease_until: Option<i64>,
        action: AuditAction,
    ) -> Result<i64, StoreError> {
        let conflict = || StoreError::Conflict {
            tenant: self.id.clone(),
            kind: key.kind.to_string(),
            name: key.name.to_string(),
            expected: expected_version,
        };
        if current.is_some_and(|c| c.version != expected_version) {
            return Err(conflict());
        }
        let next = expected_version.checked_add(1).ok_or_else(conflict)?;
        let mut tenant = tenant.clone();
        let mut attempts = 0;
        loop {
            let mut row = self
                .seal_row(on, key, record, &tenant, next, current)
                .await?;
            row.lease_until = lease_until;
            let audit = [self.audit(key, action.clone(), "ok")];
            let audit = self.vault.seal_audit(&audit).await?;
            match on.update(&self.vault, &row, expected_version, &audit).await {
                Ok(true) => return Ok(next),
                Ok(false) => return Err(conflict()),
                Err(e)
                    if e.kind() == BackendErrorKind::StaleKey && attempts < STALE_KEY_RETRIES =>
                {
                    // The tenant's data key was rotated since its row was cached: seal again.
                    attempts += 1;
                    self.vault.forget_tenant_row(&self.id);
                    tenant = self.vault.active_tenant_on(on, &self.id).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Serialises a record to JSON in a buffer that is zeroed as it grows and when dropped, so no
/// copy of the secret fields is left in freed memory.
pub(crate) fn to_secret_json<R: serde::Serialize>(record: &R) -> Result<SecretBytes, StoreError> {
    let mut writer = ZeroizingWriter(SecretBytes::new(Vec::with_capacity(512)));
    serde_json::to_writer(&mut writer, record)
        .map_err(|e| StoreError::Serialize(e.classify_str().to_owned()))?;
    writer
        .flush()
        .map_err(|e| StoreError::Serialize(e.to_string()))?;
    Ok(writer.0)
}

struct ZeroizingWriter(SecretBytes);

impl std::io::Write for ZeroizingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_zeroizing(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A short, value-free description of a serde_json error category.
trait ClassifyStr {
    fn classify_str(&self) -> &'static str;
}

impl ClassifyStr for serde_json::Error {
    fn classify_str(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "i/o error",
            serde_json::error::Category::Syntax => "invalid json",
            serde_json::error::Category::Data => "json does not match the record type",
            serde_json::error::Category::Eof => "truncated json",
        }
    }
}
