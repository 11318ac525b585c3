//! The vault's own keys (`credvault_vault_keys`, schema version 5) in the SQL backends: what
//! [`Backend::vault_keys`](crate::backend::Backend::vault_keys) and its two writes run. Still
//! no key in clear here: the rows hold keys wrapped under the KEK.

use std::sync::Arc;

use crate::KeyVersion;
use crate::backend::sql::{Driver, SqlBackend, params};
use crate::backend::sql_rows::{RowExt, key_version, read, shown};
use crate::backend::{AuditRow, BackendError, VaultKeyRow};

/// The columns of `credvault_vault_keys`, in `vault_key_from_row`'s order.
const COLUMNS: &str = "name, wrapped_key, kek_version, created_at";

#[expect(
    private_bounds,
    reason = "crate-internal methods, bounded by the crate-internal dialect traits"
)]
impl<D: Driver> SqlBackend<D> {
    /// [`Backend::vault_keys`](crate::backend::Backend::vault_keys).
    pub(crate) async fn select_vault_keys(&self) -> Result<Vec<VaultKeyRow>, BackendError> {
        let p = &self.queries.prefix;
        let sql = stmt(format!(
            "SELECT {COLUMNS} FROM {p}credvault_vault_keys ORDER BY name"
        ));
        let mut conn = self.read("reading the vault's keys").await?;
        let rows = conn.fetch_all(&sql, params![]).await?;
        rows.iter().map(vault_key_from_row).collect()
    }

    /// [`Backend::insert_vault_key`](crate::backend::Backend::insert_vault_key).
    pub(crate) async fn insert_vault_key_row(
        &self,
        row: &VaultKeyRow,
        audit: &[AuditRow],
    ) -> Result<VaultKeyRow, BackendError> {
        let p = &self.queries.prefix;
        let insert = stmt(format!(
            "INSERT INTO {p}credvault_vault_keys ({COLUMNS}) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING"
        ));
        let select = stmt(format!(
            "SELECT {COLUMNS} FROM {p}credvault_vault_keys WHERE name = $1"
        ));
        let mut tx = self.begin("creating a vault key").await?;
        let params = params![
            row.name.as_str(),
            &row.wrapped_key,
            row.kek_version,
            row.created_at
        ];
        if tx.execute(&insert, params).await? == 1 {
            tx.check_kek(row.kek_version).await?;
            tx.commit(audit).await?;
            return Ok(row.clone());
        }
        let found = tx.fetch_one(&select, params![row.name.as_str()]).await?;
        let found = vault_key_from_row(&found)?;
        tx.commit(&[]).await?;
        Ok(found)
    }

    /// [`Backend::rewrap_vault_key`](crate::backend::Backend::rewrap_vault_key).
    pub(crate) async fn rewrap_vault_key_row(
        &self,
        name: &str,
        old_kek: KeyVersion,
        wrapped: &[u8],
        new_kek: KeyVersion,
        audit: &[AuditRow],
    ) -> Result<bool, BackendError> {
        let p = &self.queries.prefix;
        let update = stmt(format!(
            "UPDATE {p}credvault_vault_keys SET wrapped_key = $1, kek_version = $2 \
             WHERE name = $3 AND kek_version = $4"
        ));
        let mut tx = self.begin("rewrapping a vault key").await?;
        tx.check_kek(new_kek).await?;
        let done = tx
            .execute(&update, params![wrapped, new_kek, name, old_kek])
            .await?;
        if done == 0 {
            return Ok(false);
        }
        tx.commit(audit).await?;
        Ok(true)
    }
}

/// A `credvault_vault_keys` row.
fn vault_key_from_row(row: &impl RowExt) -> Result<VaultKeyRow, BackendError> {
    let name = read(
        &|| "credvault_vault_keys row".to_owned(),
        "name",
        row.text("name"),
    )?;
    let place = || format!("credvault_vault_keys row {}", shown(&name));
    Ok(VaultKeyRow {
        wrapped_key: read(&place, "wrapped_key", row.bytes("wrapped_key"))?,
        kek_version: key_version(&place, row, "kek_version")?,
        created_at: read(&place, "created_at", row.int("created_at"))?,
        name,
    })
}

/// Statements run once per vault (or per KEK rotation) are built when needed.
fn stmt(sql: String) -> Arc<str> {
    Arc::from(sql)
}
