//! The re-encryption batch of the SQL backends: claim stale records, read their tenants'
//! keys, reseal through the vault's callback, write back what did not change meanwhile, and
//! audit once per tenant, in one transaction. Several workers may run batches at once (see
//! [`Backend::reencrypt_batch`](crate::backend::Backend::reencrypt_batch)).

use std::collections::BTreeMap;
use std::sync::Arc;

use sqlx::Transaction;

use crate::TenantId;
use crate::backend::rotation::{reencrypt_audit, reseal_claimed};
use crate::backend::sql::{Driver, Param, SqlBackend, params};
use crate::backend::sql_queries::RESEAL_CHUNK;
use crate::backend::sql_rows::{
    RowExt, corrupt, dek_from_row, listed_key, stale_from_row, tenant_from_row,
};
use crate::backend::sql_session::Session;
use crate::backend::{
    BackendError, BatchOutcome, BatchRequest, DekRow, RecordKey, Resealed, RowCursor, RowFault,
    StaleRecord, TenantRow, UnreadableRow,
};

/// A write session of a SQL backend.
type Tx<'b, D> = Session<'b, D, Transaction<'static, D>>;

#[expect(
    private_bounds,
    reason = "crate-internal methods, bounded by the crate-internal dialect traits"
)]
impl<D: Driver> SqlBackend<D> {
    /// One batch of re-encryption: [`Backend::reencrypt_batch`](crate::backend::Backend::reencrypt_batch).
    pub(crate) async fn reencrypt(
        &self,
        request: &BatchRequest<'_>,
    ) -> Result<BatchOutcome, BackendError> {
        let mut tx = self.begin("re-encrypting a batch").await?;
        let claim = claim(&mut tx, request).await?;
        let (mut out, resealed) = reseal_claimed(request, &claim.records);
        out.claimed = claim.rows;
        out.last = claim.last;
        out.unreadable = claim.unreadable;
        let mut written = Vec::with_capacity(resealed.len());
        for chunk in resealed.chunks(RESEAL_CHUNK) {
            write_back(&mut tx, chunk, &mut written).await?;
        }
        out.resealed = u64::try_from(written.len()).unwrap_or(u64::MAX);
        out.changed = u64::try_from(resealed.len() - written.len()).unwrap_or(0);
        let audit = reencrypt_audit(written, request.now, request.actor);
        tx.commit(&audit).await?;
        Ok(out)
    }
}

/// What a batch claimed: the records to reseal, the rows that could not be read (skipped),
/// how many rows were claimed in all, and the last one (where the next batch starts).
struct Claim {
    records: Vec<StaleRecord>,
    unreadable: Vec<UnreadableRow>,
    rows: u32,
    last: Option<RowCursor>,
}

/// Claims up to `request.limit` stale records after `request.after`, with what resealing
/// each needs (its tenant's row and retired data keys, read once per tenant). A row that
/// does not decode, or whose tenant's keys do not, is skipped and named: one bad row never
/// stops the job.
async fn claim<D: Driver>(
    tx: &mut Tx<'_, D>,
    request: &BatchRequest<'_>,
) -> Result<Claim, BackendError> {
    let q = tx.queries;
    let limit = i64::from(request.limit);
    let rows = match &request.after {
        None => {
            let sql: Arc<str> = q.batch.claim(request.plan, false).into();
            tx.fetch_all(&sql, params![limit]).await?
        }
        Some(c) => {
            let sql: Arc<str> = q.batch.claim(request.plan, true).into();
            let after = params![c.tenant.as_str(), c.kind.as_str(), c.name.as_str(), limit];
            tx.fetch_all(&sql, after).await?
        }
    };
    let mut out = Claim {
        records: Vec::with_capacity(rows.len()),
        unreadable: Vec::new(),
        rows: u32::try_from(rows.len()).unwrap_or(u32::MAX),
        last: None,
    };
    // `None`: the tenant's row or data keys do not decode.
    let mut tenants: BTreeMap<TenantId, Option<(TenantRow, Vec<DekRow>)>> = BTreeMap::new();
    for row in &rows {
        let key = match listed_key(row) {
            Ok(key) => key,
            Err(skipped) => {
                out.last = Some(*skipped.raw.clone().ok_or_else(|| {
                    corrupt(format!(
                        "re-encryption: a claimed row's key columns are not text ({skipped}); the job cannot go past it"
                    ))
                })?);
                out.unreadable.push(skipped);
                continue;
            }
        };
        out.last = Some(RowCursor::from(&key));
        if !tenants.contains_key(&key.tenant) {
            let keys = tenant_keys(tx, &key.tenant).await?;
            tenants.insert(key.tenant.clone(), keys);
        }
        let Some(Some(tenant)) = tenants.get(&key.tenant) else {
            out.unreadable
                .push(UnreadableRow::of_key(&key, RowFault::TenantMissing, None));
            continue;
        };
        match stale_from_row(row, key.clone(), tenant) {
            Ok(stale) => out.records.push(stale),
            Err(fault) => out
                .unreadable
                .push(UnreadableRow::of_key(&key, fault.0, fault.1)),
        }
    }
    Ok(out)
}

/// A tenant's row and retired data keys, `None` if either does not decode (its records are
/// then skipped, not the batch).
async fn tenant_keys<D: Driver>(
    tx: &mut Tx<'_, D>,
    id: &TenantId,
) -> Result<Option<(TenantRow, Vec<DekRow>)>, BackendError> {
    let q = tx.queries;
    let Some(tenant) = tx.fetch_optional(&q.tenants.select, params![id]).await? else {
        return Ok(None);
    };
    let Ok(tenant) = tenant_from_row(&tenant) else {
        return Ok(None);
    };
    let retired = tx.fetch_all(&q.deks.retired, params![id]).await?;
    Ok(retired
        .iter()
        .map(dek_from_row)
        .collect::<Result<Vec<_>, _>>()
        .ok()
        .map(|retired| (tenant, retired)))
}

/// Writes back one chunk of resealed records with one `UPDATE`; pushes the keys of those
/// written to `written`. A record the application changed since the claim is left alone.
async fn write_back<'r, D: Driver>(
    tx: &mut Tx<'_, D>,
    chunk: &[(&'r StaleRecord, Resealed)],
    written: &mut Vec<&'r RecordKey>,
) -> Result<(), BackendError> {
    let sql: Arc<str> = tx.queries.reseal(chunk.len()).into();
    let params: Vec<Param<'_>> = chunk
        .iter()
        .flat_map(|(stale, new)| {
            let k = &stale.key;
            *params![
                &k.tenant,
                &k.kind,
                &k.name,
                &new.sealed,
                new.dek_version,
                new.kek_version,
                stale.version,
                stale.dek_version,
            ]
        })
        .collect();
    let all = usize::try_from(tx.execute(&sql, &params).await?).is_ok_and(|w| w == chunk.len());
    for (stale, new) in chunk {
        // The claimed rows are locked by this transaction, so a row of the chunk is ours if it
        // now has the new data key (checked one by one only when some row was not written).
        if all || landed(tx, stale, new).await? {
            written.push(&stale.key);
        }
    }
    Ok(())
}

/// Whether `stale` now holds the data key of `new` (after a reseal `UPDATE` that did not
/// write every row of its chunk).
async fn landed<D: Driver>(
    tx: &mut Tx<'_, D>,
    stale: &StaleRecord,
    new: &Resealed,
) -> Result<bool, BackendError> {
    let k = &stale.key;
    let q = tx.queries;
    let key = params![&k.tenant, &k.kind, &k.name];
    let Some(row) = tx.fetch_optional(&q.batch.select_versions, key).await? else {
        return Ok(false);
    };
    let (version, dek) = (row.int_at(0), row.int_at(1));
    let version = version.map_err(|e| tx.err(e))?;
    let dek = dek.map_err(|e| tx.err(e))?;
    Ok(version == stale.version && dek == i64::from(new.dek_version.get()))
}
