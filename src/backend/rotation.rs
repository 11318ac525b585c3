//! The rows and requests of key rotation: data key versions, stale records and the
//! re-encryption batch. Still no key here: a batch calls back into the vault to reseal.

use std::fmt;
use std::sync::Arc;

use crate::backend::{RecordKey, TenantRow, UnreadableRow};
use crate::crypto::SealingSuite;
use crate::{KeyVersion, TenantId};

/// Which sealing suite each record should be sealed with: the vault's default, and the
/// record kinds that differ from it. A record sealed with another suite is stale (the
/// re-encryption job moves it), as is one sealed with an old data key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuitePlan {
    /// The suite of every kind not listed.
    pub default: SealingSuite,
    /// Kinds sealed with another suite.
    pub kinds: Vec<(String, SealingSuite)>,
}

impl SuitePlan {
    /// The suite records of `kind` should be sealed with.
    pub fn suite_for(&self, kind: &str) -> SealingSuite {
        self.kinds
            .iter()
            .find(|(k, _)| k == kind)
            .map_or(self.default, |(_, s)| *s)
    }

    /// Whether a payload of `kind` is sealed with another suite than the plan's (a payload
    /// that is not a Fernet token counts as AES-256-GCM, as the SQL backends see it).
    pub fn wrong_suite(&self, kind: &str, sealed: &[u8]) -> bool {
        let fernet = sealed.first() == Some(&SealingSuite::Fernet.first_byte());
        fernet != (self.suite_for(kind) == SealingSuite::Fernet)
    }
}

/// One version of a tenant's data key (DEK): the current one (from the tenant's row) or a
/// retired one (decrypt-only until no record is sealed with it, then destroyed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DekRow {
    /// The tenant.
    pub tenant: TenantId,
    /// The data key's version.
    pub version: KeyVersion,
    /// The data key wrapped under the KEK; `None` once destroyed.
    pub wrapped_dek: Option<Vec<u8>>,
    /// The KEK version that wrapped it.
    pub kek_version: KeyVersion,
    /// When the data key was made, Unix seconds.
    pub created_at: i64,
    /// When it stopped being the tenant's current key; `None` for the current key.
    pub retired_at: Option<i64>,
    /// When its wrapped key was erased, if it was.
    pub destroyed_at: Option<i64>,
}

impl DekRow {
    /// Whether this is the tenant's current data key.
    pub fn is_current(&self) -> bool {
        self.retired_at.is_none()
    }
}

/// What [`Backend::destroy_dek`](crate::backend::Backend::destroy_dek) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DestroyDek {
    /// The wrapped key was erased.
    Destroyed,
    /// Refused: this many records are still sealed with it.
    InUse(u64),
    /// Refused: it is the tenant's current data key.
    Current,
    /// No such retired key (unknown tenant or version), or it was already destroyed.
    Missing,
}

/// How many records of a tenant one data key version seals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordCount {
    /// The tenant.
    pub tenant: TenantId,
    /// The data key version.
    pub dek_version: KeyVersion,
    /// The suite that sealed them.
    pub suite: SealingSuite,
    /// Records sealed with it.
    pub records: u64,
}

/// A record that is not sealed with its tenant's current data key, with what opening and
/// resealing it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleRecord {
    /// Where the record lives.
    pub key: RecordKey,
    /// Its version (compare-and-swap token), unchanged by re-encryption.
    pub version: i64,
    /// Its sealed payload.
    pub sealed: Vec<u8>,
    /// The data key version that sealed it.
    pub dek_version: KeyVersion,
    /// Its tenant's row (the current data key).
    pub tenant: TenantRow,
    /// The retired data key the record names, if the tenant still has that version.
    pub sealed_with: Option<DekRow>,
}

/// A record sealed again by the vault, to be written in place of the stale one.
#[derive(Clone, PartialEq, Eq)]
pub struct Resealed {
    /// The new sealed payload.
    pub sealed: Vec<u8>,
    /// The data key version that sealed it (the tenant's current one).
    pub dek_version: KeyVersion,
    /// The KEK version of that data key.
    pub kek_version: KeyVersion,
}

impl fmt::Debug for Resealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resealed")
            .field("len", &self.sealed.len())
            .field("dek_version", &self.dek_version)
            .field("kek_version", &self.kek_version)
            .finish()
    }
}

/// The vault's resealing step, called by the backend inside the batch's transaction.
pub type ResealFn<'a> = dyn Fn(&StaleRecord) -> Result<Resealed, ResealError> + Send + Sync + 'a;

/// Why a stale record could not be resealed (unreadable, or sealed with a key version the
/// vault refuses): the vault's error, shown as it is. Never holds secret bytes.
#[derive(Debug, Clone, thiserror::Error)]
#[error(transparent)]
pub struct ResealError(Arc<dyn std::error::Error + Send + Sync>);

impl ResealError {
    /// Wraps the vault's error (or a message).
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(Arc::from(error.into()))
    }
}

/// A record a batch could not reseal, and why. It stays as it was.
#[derive(Debug, Clone)]
pub struct ResealFailure {
    /// Where the record lives.
    pub key: RecordKey,
    /// Why it was not resealed.
    pub error: ResealError,
}

/// Where a walk over the data keys resumes
/// ([`Backend::deks_page`](crate::backend::Backend::deks_page)): the tenant id and version
/// of the last row seen, as stored, so that a row that does not decode still has its place
/// in the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DekCursor {
    /// The tenant id as stored.
    pub tenant: String,
    /// The data key version as stored.
    pub version: i64,
}

impl DekCursor {
    /// The cursor at a decoded data key.
    pub fn at(dek: &DekRow) -> Self {
        Self {
            tenant: dek.tenant.as_str().to_owned(),
            version: i64::from(dek.version.get()),
        }
    }
}

/// The kind a data-key row that does not decode is named with in an
/// [`UnreadableRow`](crate::backend::UnreadableRow) (its name is the version).
pub const DATA_KEY_ROW: &str = "data_key";

/// Where a vault-wide walk over records resumes: the (tenant, kind, name) of the last row
/// seen, as stored (text, so that a walk can go past a row whose name is not valid).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RowCursor {
    /// The tenant id as stored.
    pub tenant: String,
    /// The kind as stored.
    pub kind: String,
    /// The name as stored.
    pub name: String,
}

impl From<&RecordKey> for RowCursor {
    fn from(key: &RecordKey) -> Self {
        Self {
            tenant: key.tenant.to_string(),
            kind: key.kind.to_string(),
            name: key.name.to_string(),
        }
    }
}

/// One batch of re-encryption: claim up to `limit` stale records after `after` (in key
/// order), reseal them through `reseal`, and write them back with one audit row per tenant, in one
/// transaction.
pub struct BatchRequest<'a> {
    /// Start after this record (exclusive); `None` from the first.
    pub after: Option<RowCursor>,
    /// Records claimed per batch.
    pub limit: u32,
    /// The time written in the audit rows.
    pub now: i64,
    /// Who the audit rows name.
    pub actor: &'a str,
    /// The resealing step.
    pub reseal: &'a ResealFn<'a>,
    /// Which suite each record should be sealed with: a record sealed with another is
    /// claimed too, even under its tenant's current data key.
    pub plan: &'a SuitePlan,
}

impl fmt::Debug for BatchRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchRequest")
            .field("after", &self.after)
            .field("limit", &self.limit)
            .field("now", &self.now)
            .field("actor", &self.actor)
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

/// What one batch did.
#[derive(Debug, Clone, Default)]
pub struct BatchOutcome {
    /// Stale records claimed, unreadable ones included (fewer than the limit: the end of
    /// the table was reached).
    pub claimed: u32,
    /// The last record claimed: where the next batch starts.
    pub last: Option<RowCursor>,
    /// Claimed rows that could not be read (skipped: not resealed, not written).
    pub unreadable: Vec<UnreadableRow>,
    /// Records written back sealed with the current data key.
    pub resealed: u64,
    /// Records the application changed between the claim and the write (left as the
    /// application wrote them).
    pub changed: u64,
    /// Records that could not be resealed, with the reason.
    pub failed: Vec<ResealFailure>,
}

/// The first step of a batch once claimed: reseals each claimed record through the vault's
/// callback. Returns the batch's outcome so far (claimed, last, failures) and the resealed
/// records, in claim order, for the backend to write back.
pub(crate) fn reseal_claimed<'s>(
    request: &BatchRequest<'_>,
    claimed: &'s [StaleRecord],
) -> (BatchOutcome, Vec<(&'s StaleRecord, Resealed)>) {
    let mut out = BatchOutcome {
        claimed: u32::try_from(claimed.len()).unwrap_or(u32::MAX),
        last: claimed.last().map(|c| RowCursor::from(&c.key)),
        ..BatchOutcome::default()
    };
    let mut resealed = Vec::with_capacity(claimed.len());
    for stale in claimed {
        match (request.reseal)(stale) {
            Ok(new) => resealed.push((stale, new)),
            Err(error) => out.failed.push(ResealFailure {
                key: stale.key.clone(),
                error,
            }),
        }
    }
    (out, resealed)
}

/// The audit rows of a re-encryption batch: one per tenant (action `reencrypt`, outcome
/// `ok: N records`), not one per record: a rotation of a million records should not add a
/// million rows to the audit log. `keys` come in key order, so a tenant's are consecutive.
pub(crate) fn reencrypt_audit<'a>(
    keys: impl IntoIterator<Item = &'a RecordKey>,
    now: i64,
    actor: &str,
) -> Vec<crate::backend::AuditRow> {
    let mut per_tenant: Vec<(&TenantId, u64)> = Vec::new();
    for key in keys {
        match per_tenant.last_mut() {
            Some((t, n)) if *t == &key.tenant => *n += 1,
            _ => per_tenant.push((&key.tenant, 1)),
        }
    }
    per_tenant
        .into_iter()
        .map(|(tenant, n)| crate::backend::AuditRow {
            at: now,
            tenant: Some(tenant.clone()),
            kind: None,
            name: None,
            action: crate::backend::AuditAction::Reencrypt,
            actor: actor.to_owned(),
            outcome: format!("ok: {n} records"),
        })
        .collect()
}
