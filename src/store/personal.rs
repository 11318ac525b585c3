//! Personal data around the secrets (issue 14, item 4; ARCHITECTURE.md, "Personal data"):
//! a record's metadata and the actor and record name of a tenant's audit rows are sealed under
//! the tenant's *personal-data key*, so that once the tenant is purged (its shred secret
//! destroyed) no copy of the database says whom its records were for or who used them.
//!
//! The key is HKDF-SHA256 with the tenant's shred secret as input key material and
//! `"credvault personal data key v1" ‖ len ‖ tenant` as info. It depends on nothing in the
//! database and on no KEK or data key version: metadata and audit rows outlive data key
//! rotations without being sealed again, and a KEK version destroyed (or a key provider that
//! does not answer) never makes a tenant's audit log or listing unreadable. The price: opening
//! needs the database and the shred secret, not the KEK (a record's payload needs all three). Values are stored in the `cv1.` text form in the
//! same text columns (AES-256-GCM, bound to a context naming the column); a value without the
//! prefix was written before (clear): it is read as it is and sealed when rewritten.

use std::collections::HashMap;
use std::sync::Arc;

use crate::backend::{AuditRow, RecordKey, RowFault};
use crate::crypto::{AeadKey, Context, aead, format};
use crate::envelope::derive_personal_key;
use crate::store::{StoreError, Vault};
use crate::{KeyVersion, TenantId};

/// The label of a sealed metadata value's context (then tenant, kind, name).
const METADATA_LABEL: &[u8] = b"metadata";
/// The label of a sealed audit actor's context (then tenant).
const AUDIT_ACTOR_LABEL: &[u8] = b"audit_actor";
/// The label of a sealed audit record name's context (then tenant).
const AUDIT_NAME_LABEL: &[u8] = b"audit_name";
/// What an audit read shows in place of a sealed value it cannot open (a purged tenant's).
pub(crate) const UNREADABLE: &str = "?";

/// Whether a stored text value is sealed (the `cv1.` text form) rather than clear.
pub(crate) fn is_sealed(stored: &str) -> bool {
    stored.starts_with("cv1.")
}

/// Seals `clear` under `key`, bound to `ctx`, as `cv1.` text.
fn seal_text(key: &AeadKey, clear: &str, ctx: &Context) -> Result<String, StoreError> {
    Ok(format::to_text(&aead::seal(
        key,
        KeyVersion::FIRST,
        clear.as_bytes(),
        ctx,
    )?))
}

/// Opens `stored` (`cv1.` text) under `key` and `ctx`; `None` if it does not open.
fn open_text(key: &AeadKey, stored: &str, ctx: &Context) -> Option<String> {
    let blob = format::from_text(stored).ok()?;
    let plain = aead::open(key, &blob, ctx).ok()?;
    String::from_utf8(plain.expose_secret().to_vec()).ok()
}

fn metadata_context(key: &RecordKey) -> Result<Context, StoreError> {
    Ok(Context::from_parts(&[
        METADATA_LABEL,
        key.tenant.as_str().as_bytes(),
        key.kind.as_str().as_bytes(),
        key.name.as_str().as_bytes(),
    ])?)
}

fn audit_context(label: &[u8], tenant: &TenantId) -> Result<Context, StoreError> {
    Ok(Context::from_parts(&[label, tenant.as_str().as_bytes()])?)
}

/// A record's metadata JSON sealed under the tenant's personal-data key.
pub(crate) fn seal_metadata(
    key: &AeadKey,
    record: &RecordKey,
    json: &str,
) -> Result<String, StoreError> {
    seal_text(key, json, &metadata_context(record)?)
}

/// A row's metadata as JSON text: opened if sealed (`key` is the tenant's personal-data key,
/// `None` when it has none: shredded), as stored if clear (written before sealing existed).
/// The fault names why it cannot be read.
pub(crate) fn open_metadata(
    key: Option<&AeadKey>,
    record: &RecordKey,
    stored: &str,
) -> Result<String, RowFault> {
    if !is_sealed(stored) {
        return Ok(stored.to_owned());
    }
    let key = key.ok_or(RowFault::UnknownKeyVersion)?;
    let ctx = metadata_context(record).map_err(|_| RowFault::InvalidMetadata)?;
    open_text(key, stored, &ctx).ok_or(RowFault::Tampered)
}

impl Vault {
    /// The tenant's personal-data key (see the module docs), from the cache or derived now;
    /// `None` if the tenant has no shred secret (never created, or purged).
    ///
    /// # Errors
    ///
    /// The tenant-key store does not answer.
    pub(crate) async fn personal_key(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<Arc<AeadKey>>, StoreError> {
        if let Some(key) = self.inner.personal_keys.get(tenant, |_| true) {
            return Ok(Some(key));
        }
        let Some(shred) = self.shred_secret(tenant).await? else {
            return Ok(None);
        };
        let key = Arc::new(derive_personal_key(&shred, tenant)?);
        self.inner
            .personal_keys
            .insert(tenant.clone(), Arc::clone(&key));
        Ok(Some(key))
    }

    /// Drops the tenant's cached personal-data key (its shred secret is being destroyed).
    pub(crate) fn forget_personal_key(&self, tenant: &TenantId) {
        self.inner.personal_keys.remove(tenant);
    }

    /// `row` with its actor and record name sealed under its tenant's personal-data key, for
    /// writing. A row about no tenant (vault-wide events), or about a tenant without a shred
    /// secret (one being purged: the purge's own rows), is kept as it is.
    ///
    /// # Errors
    ///
    /// As [`personal_key`](Self::personal_key): a row is never written in clear because its
    /// key could not be had.
    pub(crate) async fn seal_audit_row(&self, mut row: AuditRow) -> Result<AuditRow, StoreError> {
        let Some(tenant) = &row.tenant else {
            return Ok(row);
        };
        let Some(key) = self.personal_key(tenant).await? else {
            return Ok(row);
        };
        let actor = seal_text(&key, &row.actor, &audit_context(AUDIT_ACTOR_LABEL, tenant)?)?;
        let name = match &row.name {
            Some(name) => Some(seal_text(
                &key,
                name,
                &audit_context(AUDIT_NAME_LABEL, tenant)?,
            )?),
            None => None,
        };
        row.actor = actor;
        row.name = name;
        Ok(row)
    }

    /// [`seal_audit_row`](Self::seal_audit_row) of each row.
    ///
    /// # Errors
    ///
    /// As [`seal_audit_row`](Self::seal_audit_row).
    pub(crate) async fn seal_audit(&self, rows: &[AuditRow]) -> Result<Vec<AuditRow>, StoreError> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(self.seal_audit_row(row.clone()).await?);
        }
        Ok(out)
    }

    /// Audit rows as read, with their sealed actors and names opened; a value that does not
    /// open (its tenant purged, or tampered) reads [`UNREADABLE`] (`?`). Clear values (rows
    /// written before sealing, vault-wide events) are kept as they are.
    ///
    /// # Errors
    ///
    /// Key and storage errors other than a missing shred secret.
    pub(crate) async fn open_audit(
        &self,
        rows: Vec<AuditRow>,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let mut keys: HashMap<TenantId, Option<Arc<AeadKey>>> = HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for mut row in rows {
            let sealed_name = row.name.as_deref().is_some_and(is_sealed);
            if let Some(tenant) = row.tenant.clone()
                && (is_sealed(&row.actor) || sealed_name)
            {
                let key = match keys.get(&tenant) {
                    Some(k) => k.clone(),
                    None => {
                        let k = self.personal_key(&tenant).await?;
                        keys.insert(tenant.clone(), k.clone());
                        k
                    }
                };
                if is_sealed(&row.actor) {
                    let ctx = audit_context(AUDIT_ACTOR_LABEL, &tenant)?;
                    row.actor = key
                        .as_deref()
                        .and_then(|k| open_text(k, &row.actor, &ctx))
                        .unwrap_or_else(|| UNREADABLE.to_owned());
                }
                if sealed_name {
                    let ctx = audit_context(AUDIT_NAME_LABEL, &tenant)?;
                    row.name = Some(
                        key.as_deref()
                            .zip(row.name.as_deref())
                            .and_then(|(k, n)| open_text(k, n, &ctx))
                            .unwrap_or_else(|| UNREADABLE.to_owned()),
                    );
                }
            }
            out.push(row);
        }
        Ok(out)
    }
}
