//! Reading the SQL backends' rows, and mapping driver errors: plain functions over
//! [`RowExt`], the same for every driver's rows. A value that does not decode is
//! [`BackendErrorKind::Corrupt`], naming the table and row, never the value.

use sqlx::error::DatabaseError;
use sqlx::{ColumnIndex, Decode, Type};

use crate::backend::{
    AuditRow, BackendError, BackendErrorKind, DekRow, KeyIdentity, KeyRole, ListedRow, RecordCount,
    RecordKey, RowFault, SealedRecord, SecretRow, StaleRecord, TenantRow, UnreadableRow,
};
use crate::{KeyVersion, RecordKind, RecordName, TenantId};

/// Typed column reads, the same for both drivers' rows.
pub(crate) trait RowExt {
    fn int(&self, col: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error>;
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
    fn bytes(&self, col: &str) -> Result<Vec<u8>, sqlx::Error>;
    fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>, sqlx::Error>;
    /// The integer in column `index` (for the unnamed column of `COUNT(*)`).
    fn int_at(&self, index: usize) -> Result<i64, sqlx::Error>;
}

impl<R> RowExt for R
where
    R: sqlx::Row,
    for<'c> &'c str: ColumnIndex<R>,
    usize: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
        self.try_get(col)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(col)
    }
    fn text(&self, col: &str) -> Result<String, sqlx::Error> {
        self.try_get(col)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
        self.try_get(col)
    }
    fn bytes(&self, col: &str) -> Result<Vec<u8>, sqlx::Error> {
        self.try_get(col)
    }
    fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
        self.try_get(col)
    }
    fn int_at(&self, index: usize) -> Result<i64, sqlx::Error> {
        self.try_get(index)
    }
}

/// A stored value is not what this build expects.
pub(crate) fn corrupt(message: String) -> BackendError {
    BackendError::new(BackendErrorKind::Corrupt, message)
}

/// An identifier read from a row, for an error message: escaped and cut short.
pub(crate) fn shown(s: &str) -> String {
    let cut: String = s.chars().take(64).collect();
    format!("{cut:?}")
}

/// Runs `read` and turns a decoding failure into [`BackendErrorKind::Corrupt`] naming `place`
/// and `col`.
pub(crate) fn read<T>(
    place: &dyn Fn() -> String,
    col: &str,
    read: Result<T, sqlx::Error>,
) -> Result<T, BackendError> {
    read.map_err(|e| corrupt(format!("{}: column {col} cannot be read", place())).with_source(e))
}

/// Reads key-version column `col` of `row` (a u32 stored as an integer).
pub(crate) fn key_version(
    place: &dyn Fn() -> String,
    row: &impl RowExt,
    col: &str,
) -> Result<KeyVersion, BackendError> {
    let v = read(place, col, row.int(col))?;
    u32::try_from(v)
        .map(KeyVersion::new)
        .map_err(|_| corrupt(format!("{}: {col} is out of range", place())))
}

/// A row read whole or named as unreadable: `decode` reads it; when that fails, the row is
/// named by its tenant id and `name` column (as text where they read) with the first
/// column at fault among `columns` (the ones `decode` reads, tenant id first). Used for the
/// listings of data keys and record counts, where one bad row must not stop the walk.
fn listed_or_named<T>(
    row: &impl RowExt,
    kind: Option<&str>,
    name_col: &str,
    columns: &[&'static str],
    decode: impl FnOnce() -> Result<T, BackendError>,
) -> Result<T, UnreadableRow> {
    let readable = |col: &str| {
        if col == "wrapped_dek" {
            row.opt_bytes(col).is_ok()
        } else if matches!(col, "retired_at" | "destroyed_at") {
            row.opt_int(col).is_ok()
        } else {
            row.int(col).is_ok()
        }
    };
    decode().map_err(|_| {
        let tenant = row.text("tenant_id").ok();
        // Without a readable tenant id the row has no place to resume from: no name either
        // (an unreadable row is only given a resume point when both read).
        let name = tenant
            .as_ref()
            .and_then(|_| row.int(name_col).ok())
            .map(|v| v.to_string());
        let (reason, column) = if tenant.is_none() {
            (RowFault::UnreadableColumn, Some("tenant_id"))
        } else if tenant.as_deref().is_some_and(|t| TenantId::new(t).is_err()) {
            (RowFault::InvalidTenant, Some("tenant_id"))
        } else {
            let bad = columns
                .iter()
                .copied()
                .filter(|c| *c != "tenant_id")
                .find(|c| !readable(c) || (c.ends_with("_version") && !in_range(row, c)));
            (RowFault::UnreadableColumn, bad)
        };
        UnreadableRow::new(
            tenant.as_deref().unwrap_or("?"),
            kind,
            name.as_deref(),
            reason,
            column,
        )
    })
}

/// Whether the key-version column `col` holds a version (0 ..= u32::MAX).
fn in_range(row: &impl RowExt, col: &str) -> bool {
    row.int(col).is_ok_and(|v| u32::try_from(v).is_ok())
}

/// Reads the `tenant_id` column of a row of `table`; `place(raw)` names the row in errors.
/// Returns the tenant and the raw text, for the caller's own messages.
fn row_tenant(
    row: &impl RowExt,
    table: &str,
    place: &dyn Fn(&str) -> String,
) -> Result<(TenantId, String), BackendError> {
    let raw = row.text("tenant_id").map_err(|e| {
        corrupt(format!("{table} row: column tenant_id cannot be read")).with_source(e)
    })?;
    let tenant = TenantId::new(raw.as_str())
        .map_err(|e| corrupt(format!("{}: invalid tenant id", place(&raw))).with_source(e))?;
    Ok((tenant, raw))
}

/// A `credvault_tenants` row.
pub(crate) fn tenant_from_row(row: &impl RowExt) -> Result<TenantRow, BackendError> {
    let named = |raw: &str| format!("credvault_tenants row for tenant {}", shown(raw));
    let (tenant, raw) = row_tenant(row, "credvault_tenants", &named)?;
    let place = || named(&raw);
    let created_at = read(&place, "created_at", row.int("created_at"))?;
    Ok(TenantRow {
        tenant,
        wrapped_dek: read(&place, "wrapped_dek", row.bytes("wrapped_dek"))?,
        dek_version: key_version(&place, row, "dek_version")?,
        kek_version: key_version(&place, row, "kek_version")?,
        created_at,
        dek_created_at: read(&place, "dek_created_at", row.opt_int("dek_created_at"))?
            .unwrap_or(created_at),
        min_dek_version: key_version(&place, row, "min_dek_version")?,
        deleted_at: read(&place, "deleted_at", row.opt_int("deleted_at"))?,
        purge_after: read(&place, "purge_after", row.opt_int("purge_after"))?,
        shredded_at: read(&place, "shredded_at", row.opt_int("shredded_at"))?,
    })
}

/// A `credvault_keys` row.
pub(crate) fn key_identity_from_row(row: &impl RowExt) -> Result<KeyIdentity, BackendError> {
    let place = || "credvault_keys row".to_owned();
    let role = read(&place, "role", row.text("role"))?;
    let role = KeyRole::from_name(&role)
        .ok_or_else(|| corrupt(format!("credvault_keys row: unknown role {}", shown(&role))))?;
    let version = read(&place, "version", row.int("version"))?;
    Ok(KeyIdentity {
        role,
        version: u32::try_from(version)
            .map_err(|_| corrupt("credvault_keys row: version is out of range".to_owned()))?,
        fingerprint: read(&place, "fingerprint", row.text("fingerprint"))?,
        recorded_at: read(&place, "recorded_at", row.int("recorded_at"))?,
        last_primary_at: read(&place, "last_primary_at", row.opt_int("last_primary_at"))?,
    })
}

/// The newest KEK version read from `credvault_vault` (0 if the row is missing).
pub(crate) fn newest_kek_from(value: Option<i64>) -> Result<u32, BackendError> {
    u32::try_from(value.unwrap_or(0))
        .map_err(|_| corrupt("credvault_vault row: newest_kek is out of range".to_owned()))
}

/// The `(tenant_id, kind, name)` of a `credvault_secrets` row.
pub(crate) fn key_from_row(row: &impl RowExt) -> Result<RecordKey, BackendError> {
    let unreadable = |col: &str, e: sqlx::Error| {
        corrupt(format!(
            "credvault_secrets row: column {col} cannot be read"
        ))
        .with_source(e)
    };
    let tenant = row
        .text("tenant_id")
        .map_err(|e| unreadable("tenant_id", e))?;
    let kind = row.text("kind").map_err(|e| unreadable("kind", e))?;
    let name = row.text("name").map_err(|e| unreadable("name", e))?;
    let place = || record_place(&tenant, &kind, &name);
    Ok(RecordKey {
        tenant: TenantId::new(tenant.as_str())
            .map_err(|e| corrupt(format!("{}: invalid tenant id", place())).with_source(e))?,
        kind: RecordKind::new(kind.as_str())
            .map_err(|e| corrupt(format!("{}: invalid record kind", place())).with_source(e))?,
        name: RecordName::new(name.as_str())
            .map_err(|e| corrupt(format!("{}: invalid record name", place())).with_source(e))?,
    })
}

/// [`record_place`] of `key`, made only when called (the key's texts are copied now, which
/// is cheaper than the escaping and formatting).
fn record_place_of(key: &RecordKey) -> impl Fn() -> String + use<> {
    let (tenant, kind, name) = (key.tenant.clone(), key.kind.clone(), key.name.clone());
    move || record_place(tenant.as_str(), kind.as_str(), name.as_str())
}

/// Where a `credvault_secrets` row is, for an error message.
fn record_place(tenant: &str, kind: &str, name: &str) -> String {
    format!(
        "credvault_secrets row (tenant {}, kind {}, name {})",
        shown(tenant),
        shown(kind),
        shown(name)
    )
}

/// A `credvault_secrets` row.
pub(crate) fn secret_from_row(row: &impl RowExt) -> Result<SecretRow, BackendError> {
    let key = key_from_row(row)?;
    // The row's place is written only for an error: escaping and formatting it for every
    // row read cost a tenth of a `get` (counted with callgrind, benches/vault.rs).
    let place = record_place_of(&key);
    secret_fields(row, key).map_err(|(fault, col)| match col {
        Some(col) => corrupt(format!(
            "{}: column {col} cannot be read ({fault})",
            place()
        )),
        None => corrupt(format!("{}: {fault}", place())),
    })
}

/// A row of `Queries::records.select_sealed` for the record at `key`.
pub(crate) fn sealed_from_row(
    row: &impl RowExt,
    key: &RecordKey,
) -> Result<SealedRecord, BackendError> {
    let place = record_place_of(key);
    let fault = |col: &str| corrupt(format!("{}: column {col} cannot be read", place()));
    let version = row
        .int("version")
        .map_err(|e| fault("version").with_source(e))?;
    if version < 0 {
        return Err(fault("version"));
    }
    Ok(SealedRecord {
        version,
        sealed: row
            .bytes("sealed")
            .map_err(|e| fault("sealed").with_source(e))?,
        dek_version: row
            .int("dek_version")
            .ok()
            .and_then(|v| u32::try_from(v).ok())
            .map(KeyVersion::new)
            .ok_or_else(|| fault("dek_version"))?,
    })
}

/// The columns of a `credvault_secrets` row after its key, or the fault and column.
fn secret_fields(
    row: &impl RowExt,
    key: RecordKey,
) -> Result<SecretRow, (RowFault, Option<&'static str>)> {
    fn col<T>(
        col: &'static str,
        r: Result<T, sqlx::Error>,
    ) -> Result<T, (RowFault, Option<&'static str>)> {
        r.map_err(|_| (RowFault::UnreadableColumn, Some(col)))
    }
    fn key_version(
        row: &impl RowExt,
        name: &'static str,
    ) -> Result<KeyVersion, (RowFault, Option<&'static str>)> {
        u32::try_from(col(name, row.int(name))?)
            .map(KeyVersion::new)
            .map_err(|_| (RowFault::UnreadableColumn, Some(name)))
    }
    let version = col("version", row.int("version"))?;
    if version < 0 {
        return Err((RowFault::UnreadableColumn, Some("version")));
    }
    Ok(SecretRow {
        version,
        sealed: col("sealed", row.bytes("sealed"))?,
        dek_version: key_version(row, "dek_version")?,
        kek_version: key_version(row, "kek_version")?,
        metadata: col("metadata", row.text("metadata"))?,
        provider: col("provider", row.opt_text("provider"))?,
        created_at: col("created_at", row.int("created_at"))?,
        updated_at: col("updated_at", row.int("updated_at"))?,
        expires_at: col("expires_at", row.opt_int("expires_at"))?,
        purge_after: col("purge_after", row.opt_int("purge_after"))?,
        lease_until: col("lease_until", row.opt_int("lease_until"))?,
        key,
    })
}

/// The key of a `credvault_secrets` row, or the row as unreadable (named by whatever of its
/// key columns read as text).
pub(crate) fn listed_key(row: &impl RowExt) -> Result<RecordKey, UnreadableRow> {
    let tenant = row.text("tenant_id").ok();
    let kind = row.text("kind").ok();
    let name = row.text("name").ok();
    let fault = |reason, col| {
        UnreadableRow::new(
            tenant.as_deref().unwrap_or("?"),
            kind.as_deref(),
            name.as_deref(),
            reason,
            col,
        )
    };
    let unreadable = |c| fault(RowFault::UnreadableColumn, Some(c));
    let t = tenant.as_deref().ok_or_else(|| unreadable("tenant_id"))?;
    let k = kind.as_deref().ok_or_else(|| unreadable("kind"))?;
    let n = name.as_deref().ok_or_else(|| unreadable("name"))?;
    Ok(RecordKey {
        tenant: TenantId::new(t).map_err(|_| fault(RowFault::InvalidTenant, Some("tenant_id")))?,
        kind: RecordKind::new(k).map_err(|_| fault(RowFault::InvalidKind, Some("kind")))?,
        name: RecordName::new(n).map_err(|_| fault(RowFault::InvalidName, Some("name")))?,
    })
}

/// A `credvault_secrets` row read for a listing: the row, or why it cannot be read.
pub(crate) fn listed_from_row(row: &impl RowExt) -> ListedRow {
    let key = listed_key(row)?;
    let named = key.clone();
    secret_fields(row, key).map_err(|(fault, col)| UnreadableRow::of_key(&named, fault, col))
}

/// A `credvault_audit` row. Never fails: a row whose columns do not decode (written by hand,
/// or by something else) is kept in its place, so one bad row cannot hide the others or stop
/// an export. Each column that does not read is `?` (a time 0), a tenant id that is not valid
/// is none, and the outcome starts with `unreadable row (columns ...)`, naming them.
pub(crate) fn audit_from_row(row: &impl RowExt) -> AuditRow {
    fn or_mark<T>(
        bad: &mut Vec<&'static str>,
        col: &'static str,
        r: Result<T, sqlx::Error>,
        mark: T,
    ) -> T {
        r.unwrap_or_else(|_| {
            bad.push(col);
            mark
        })
    }
    let mut bad = Vec::new();
    let raw_tenant = or_mark(&mut bad, "tenant_id", row.opt_text("tenant_id"), None);
    let tenant = raw_tenant.and_then(|t| {
        TenantId::new(t.as_str())
            .map_err(|_| bad.push("tenant_id"))
            .ok()
    });
    let at = or_mark(&mut bad, "at", row.int("at"), 0);
    let kind = or_mark(&mut bad, "kind", row.opt_text("kind"), Some("?".to_owned()));
    let name = or_mark(&mut bad, "name", row.opt_text("name"), Some("?".to_owned()));
    let action = or_mark(&mut bad, "action", row.text("action"), "?".to_owned());
    let actor = or_mark(&mut bad, "actor", row.text("actor"), "?".to_owned());
    let outcome = or_mark(&mut bad, "outcome", row.text("outcome"), "?".to_owned());
    let outcome = if bad.is_empty() {
        outcome
    } else {
        format!("unreadable row (columns {}): {outcome}", bad.join(", "))
    };
    AuditRow {
        at,
        tenant,
        kind,
        name,
        action: action.into(),
        actor,
        outcome,
    }
}

/// Maps a driver error to a [`BackendError`]. `context` says what was being done ("reading a
/// record"); `classify` maps the driver's database error codes. The message never holds a
/// bound value: the driver's error goes in as the source only.
pub(crate) fn map_err(
    err: sqlx::Error,
    context: &str,
    classify: fn(&dyn DatabaseError) -> Option<BackendErrorKind>,
) -> BackendError {
    let (kind, what) = match &err {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => (
            BackendErrorKind::Unavailable,
            "cannot reach the database: check that it is running and the connection settings",
        ),
        sqlx::Error::PoolTimedOut => (
            BackendErrorKind::Unavailable,
            "timed out waiting for a database connection: the database may be down or the pool exhausted",
        ),
        sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => (
            BackendErrorKind::Unavailable,
            "the connection pool is closed",
        ),
        sqlx::Error::Configuration(_) => (BackendErrorKind::Other, "invalid connection settings"),
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. } => (
            BackendErrorKind::Corrupt,
            "a stored value is not what this build expects",
        ),
        sqlx::Error::Database(db) => match classify(db.as_ref()) {
            Some(BackendErrorKind::ReadOnly) => (
                BackendErrorKind::ReadOnly,
                "database is read-only: check file permissions or the server's default_transaction_read_only",
            ),
            Some(BackendErrorKind::Conflict) => {
                (BackendErrorKind::Conflict, "the row already exists")
            }
            Some(BackendErrorKind::Unavailable) => (
                BackendErrorKind::Unavailable,
                "the database is unavailable or busy: retry later",
            ),
            Some(BackendErrorKind::Corrupt) => {
                (BackendErrorKind::Corrupt, "the database reports corruption")
            }
            _ => (BackendErrorKind::Other, "the database reported an error"),
        },
        _ => (
            BackendErrorKind::Other,
            "the database driver reported an error",
        ),
    };
    BackendError::new(kind, format!("{context}: {what}")).with_source(err)
}

/// A tenant id read alone (`tenant_id` column), or the row as unreadable.
pub(crate) fn due_tenant_from_row(row: &impl RowExt) -> Result<TenantId, UnreadableRow> {
    let raw = row.text("tenant_id").map_err(|_| {
        UnreadableRow::new(
            "?",
            None,
            None,
            RowFault::UnreadableColumn,
            Some("tenant_id"),
        )
    })?;
    TenantId::new(raw.as_str()).map_err(|_| {
        UnreadableRow::new(&raw, None, None, RowFault::InvalidTenant, Some("tenant_id"))
    })
}

/// A `credvault_tenant_deks` row (or the union of `Queries::deks_page`).
pub(crate) fn dek_from_row(row: &impl RowExt) -> Result<DekRow, BackendError> {
    let named = |raw: &str| format!("credvault_tenant_deks row for tenant {}", shown(raw));
    let (tenant, raw) = row_tenant(row, "credvault_tenant_deks", &named)?;
    let place = || named(&raw);
    Ok(DekRow {
        version: key_version(&place, row, "dek_version")?,
        wrapped_dek: read(&place, "wrapped_dek", row.opt_bytes("wrapped_dek"))?,
        kek_version: key_version(&place, row, "kek_version")?,
        created_at: read(&place, "created_at", row.int("created_at"))?,
        retired_at: read(&place, "retired_at", row.opt_int("retired_at"))?,
        destroyed_at: read(&place, "destroyed_at", row.opt_int("destroyed_at"))?,
        tenant,
    })
}

/// A row of `Queries::deks_page`, or the row named as unreadable (kind
/// [`DATA_KEY_ROW`](crate::backend::DATA_KEY_ROW), its version as the name).
pub(crate) fn dek_listed(row: &impl RowExt) -> Result<DekRow, UnreadableRow> {
    const COLUMNS: &[&str] = &[
        "tenant_id",
        "dek_version",
        "wrapped_dek",
        "kek_version",
        "created_at",
        "retired_at",
        "destroyed_at",
    ];
    listed_or_named(
        row,
        Some(crate::backend::DATA_KEY_ROW),
        "dek_version",
        COLUMNS,
        || dek_from_row(row),
    )
}

/// A claimed record: a row of `Queries::claim_first` / `claim_after` with its key already
/// read, and its tenant's row and retired data keys; or the fault and column.
pub(crate) fn stale_from_row(
    row: &impl RowExt,
    key: RecordKey,
    (tenant, retired): &(TenantRow, Vec<DekRow>),
) -> Result<StaleRecord, (RowFault, Option<&'static str>)> {
    let unreadable = |col: &'static str| (RowFault::UnreadableColumn, Some(col));
    let version = row.int("version").map_err(|_| unreadable("version"))?;
    let sealed = row.bytes("sealed").map_err(|_| unreadable("sealed"))?;
    let dek_version = row
        .int("dek_version")
        .ok()
        .and_then(|v| u32::try_from(v).ok())
        .map(KeyVersion::new)
        .ok_or_else(|| unreadable("dek_version"))?;
    Ok(StaleRecord {
        sealed_with: retired.iter().find(|d| d.version == dek_version).cloned(),
        tenant: tenant.clone(),
        key,
        version,
        sealed,
        dek_version,
    })
}

/// A row of `Queries::record_counts`.
pub(crate) fn count_from_row(row: &impl RowExt) -> Result<RecordCount, BackendError> {
    let named = |raw: &str| format!("credvault_secrets rows of tenant {}", shown(raw));
    let (tenant, raw) = row_tenant(row, "credvault_secrets", &named)?;
    let place = || named(&raw);
    let records = read(&place, "records", row.int("records"))?;
    let fernet = read(&place, "fernet", row.int("fernet"))?;
    Ok(RecordCount {
        dek_version: key_version(&place, row, "dek_version")?,
        suite: if fernet == 0 {
            crate::crypto::SealingSuite::Aes256Gcm
        } else {
            crate::crypto::SealingSuite::Fernet
        },
        records: u64::try_from(records).unwrap_or(0),
        tenant,
    })
}

/// A row of `Queries::record_counts`, or the group named as unreadable (no kind; its data
/// key version as the name).
pub(crate) fn count_listed(row: &impl RowExt) -> Result<RecordCount, UnreadableRow> {
    const COLUMNS: &[&str] = &["tenant_id", "dek_version", "records", "fernet"];
    listed_or_named(row, None, "dek_version", COLUMNS, || count_from_row(row))
}

/// A count read from `COUNT(*)`, as u64.
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
