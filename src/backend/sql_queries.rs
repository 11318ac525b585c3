//! The text of every statement the SQL backends run, built once per backend: one text for
//! SQLite and PostgreSQL (both take `$n` parameters, `ON CONFLICT`, row values and
//! `RETURNING`), the only differences being the dialect's lock clauses.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::backend::SuitePlan;
use crate::backend::sql::Dialect;
use crate::crypto::SealingSuite;

/// The columns of `credvault_tenants`, in `tenant_from_row`'s order.
pub(crate) const TENANT_COLUMNS: &str = "tenant_id, wrapped_dek, dek_version, kek_version, \
     created_at, dek_created_at, min_dek_version, deleted_at, purge_after, shredded_at";

/// The columns of `credvault_secrets`, in the order the record writes bind them.
pub(crate) const SECRET_COLUMNS: &str = "tenant_id, kind, name, version, sealed, dek_version, \
     kek_version, metadata, provider, created_at, updated_at, expires_at, purge_after, lease_until";

/// The columns of `credvault_audit` that an `AuditRow` holds.
pub(crate) const AUDIT_COLUMNS: &str = "at, tenant_id, kind, name, action, actor, outcome";

/// The columns of `credvault_tenant_deks`, in `dek_from_row`'s order.
const DEK_COLUMNS: &str =
    "tenant_id, dek_version, wrapped_dek, kek_version, created_at, retired_at, destroyed_at";

/// The columns of a `credvault_throttle` row, in `state_from_row`'s order.
const THROTTLE_COLUMNS: &str = "failures, window_start, lockouts, locked_until, last_seen";

/// Parameters per row of the multi-row reseal `UPDATE`.
const RESEAL_PARAMS: usize = 8;

/// Rows per reseal `UPDATE` statement (800 parameters, well under both drivers' limits).
pub(crate) const RESEAL_CHUNK: usize = 16;

/// Parameters per audit row ([`AUDIT_COLUMNS`]).
const AUDIT_PARAMS: usize = 7;

/// Audit rows written per `INSERT` statement (7 parameters each, 448 in all, well under the
/// 32 766 of SQLite and 65 535 of PostgreSQL): a default batch of buffered read events
/// ([`ReadAudit`](crate::store::ReadAudit), 64) is one statement.
pub(crate) const AUDIT_CHUNK: usize = 64;

/// Every statement the backends run, with the table names qualified by `prefix` (empty, or a
/// quoted PostgreSQL schema and a dot), grouped by what they serve. Built once per backend,
/// by [`Queries::new`]; the few whose text depends on their arguments by the methods.
#[derive(Debug)]
pub(crate) struct Queries {
    pub(crate) prefix: String,
    /// Multi-row statements use `?` placeholders (see `placeholder_rows`).
    positional: bool,
    pub(crate) schema: SchemaSql,
    pub(crate) tenants: TenantSql,
    pub(crate) records: RecordSql,
    pub(crate) keys: KeySql,
    pub(crate) deks: DekSql,
    pub(crate) batch: BatchSql,
    pub(crate) throttle: ThrottleSql,
    pub(crate) purge_audit: Arc<str>,
    /// The earliest `purge_after` of any record or tenant (column `d`).
    pub(crate) oldest_deadline: Arc<str>,
    /// Records a purge run (`$1` started at, `$2` oldest overdue).
    pub(crate) record_purge_run: Arc<str>,
    /// The last purge run (columns `at`, `overdue`).
    pub(crate) last_purge_run: Arc<str>,
    /// The audit inserts of 1 ..= [`AUDIT_CHUNK`] rows, made once: building the text of a
    /// many-row insert cost more than sealing the rows it writes.
    audit_inserts: Vec<Arc<str>>,
}

impl Queries {
    /// The statements for tables named `{prefix}credvault_*`.
    pub(crate) fn new<D: Dialect>(prefix: &str) -> Self {
        let p = prefix;
        Self {
            prefix: p.to_owned(),
            positional: D::POSITIONAL_PARAMS,
            schema: SchemaSql::new(p),
            tenants: TenantSql::new::<D>(p),
            records: RecordSql::new::<D>(p),
            keys: KeySql::new::<D>(p),
            deks: DekSql::new(p),
            batch: BatchSql::new::<D>(p),
            throttle: ThrottleSql::new::<D>(p),
            purge_audit: stmt(format!("DELETE FROM {p}credvault_audit WHERE at < $1")),
            oldest_deadline: stmt(format!(
                "SELECT MIN(d) AS d FROM (\
                 SELECT MIN(purge_after) AS d FROM {p}credvault_secrets \
                 UNION ALL SELECT MIN(purge_after) AS d FROM {p}credvault_tenants) AS m"
            )),
            record_purge_run: stmt(format!(
                "UPDATE {p}credvault_vault SET last_purge_at = $1, last_purge_overdue = $2 \
                 WHERE id = 1 AND (last_purge_at IS NULL OR last_purge_at <= $1)"
            )),
            last_purge_run: stmt(format!(
                "SELECT last_purge_at AS at, last_purge_overdue AS overdue \
                 FROM {p}credvault_vault WHERE id = 1"
            )),
            audit_inserts: (1..=AUDIT_CHUNK)
                .map(|rows| {
                    stmt(format!(
                        "INSERT INTO {p}credvault_audit ({AUDIT_COLUMNS}) VALUES {}",
                        placeholder_rows(rows, AUDIT_PARAMS, D::POSITIONAL_PARAMS)
                    ))
                })
                .collect(),
        }
    }

    /// The `list` statement for the filters that are set, and how its parameters are numbered:
    /// `$1` tenant, then kind, provider, after (kind, name), limit, in that order when present.
    pub(crate) fn list(&self, kind: bool, provider: bool, after: bool) -> String {
        let mut sql = format!(
            "SELECT {SECRET_COLUMNS} FROM {}credvault_secrets WHERE tenant_id = $1",
            self.prefix
        );
        let mut n = 1;
        if kind {
            n += 1;
            sql.push_str(&format!(" AND kind = ${n}"));
        }
        if provider {
            n += 1;
            sql.push_str(&format!(" AND provider = ${n}"));
        }
        if after {
            sql.push_str(&format!(" AND (kind, name) > (${}, ${})", n + 1, n + 2));
            n += 2;
        }
        sql.push_str(&format!(" ORDER BY kind, name LIMIT ${}", n + 1));
        sql
    }

    /// The audit read for the filters that are set (`$1` tenant, then since, then limit).
    pub(crate) fn audit(&self, tenant: bool, since: bool, limit: bool) -> String {
        let mut sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM {}credvault_audit WHERE 1 = 1",
            self.prefix
        );
        let mut n = 0;
        if tenant {
            n += 1;
            sql.push_str(&format!(" AND tenant_id = ${n}"));
        }
        if since {
            n += 1;
            sql.push_str(&format!(" AND at >= ${n}"));
        }
        sql.push_str(" ORDER BY at, id");
        if limit {
            sql.push_str(&format!(" LIMIT ${}", n + 1));
        }
        sql
    }

    /// The multi-row reseal: `rows` groups of (tenant, kind, name, sealed, new DEK version,
    /// new KEK version, version, old DEK version). A row is written only if it still has the
    /// version and data key it was claimed with. (No `RETURNING`: SQLite's driver hands each
    /// returned row over a channel, which cost more than the update.)
    pub(crate) fn reseal(&self, rows: usize) -> String {
        let p = &self.prefix;
        let values = placeholder_rows(rows, RESEAL_PARAMS, self.positional);
        format!(
            "UPDATE {p}credvault_secrets AS s SET sealed = v.column4, dek_version = v.column5, \
             kek_version = v.column6 FROM (VALUES {values}) AS v \
             WHERE s.tenant_id = v.column1 AND s.kind = v.column2 AND s.name = v.column3 \
             AND s.version = v.column7 AND s.dek_version = v.column8"
        )
    }

    /// The audit insert for `rows` rows: one statement for a batch of buffered read events,
    /// not one per row. Made once for 1 ..= [`AUDIT_CHUNK`] rows.
    pub(crate) fn insert_audit(&self, rows: usize) -> Arc<str> {
        match rows.checked_sub(1).and_then(|i| self.audit_inserts.get(i)) {
            Some(sql) => Arc::clone(sql),
            None => stmt(format!(
                "INSERT INTO {}credvault_audit ({AUDIT_COLUMNS}) VALUES {}",
                self.prefix,
                placeholder_rows(rows, AUDIT_PARAMS, self.positional)
            )),
        }
    }
}

/// `rows` groups of `width` placeholders, numbered (`($1, $2), ($3, $4)` for 2 by 2) or, where
/// the driver binds by position ([`Dialect::POSITIONAL_PARAMS`]), not (`(?, ?), (?, ?)`).
///
/// [`Dialect::POSITIONAL_PARAMS`]: crate::backend::sql::Dialect::POSITIONAL_PARAMS
fn placeholder_rows(rows: usize, width: usize, positional: bool) -> String {
    let mut sql = String::with_capacity(rows * width * 5);
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for i in 1..=width {
            let comma = if i == 1 { "" } else { ", " };
            if positional {
                sql.push_str(comma);
                sql.push('?');
            } else {
                let _ = write!(sql, "{comma}${}", row * width + i);
            }
        }
        sql.push(')');
    }
    sql
}

/// A statement's text, shared by every use.
fn stmt(text: String) -> Arc<str> {
    Arc::from(text)
}

/// The schema version (`credvault_schema`).
#[derive(Debug)]
pub(crate) struct SchemaSql {
    pub(crate) create_table: Arc<str>,
    pub(crate) read_version: Arc<str>,
    pub(crate) write_version: Arc<str>,
}

impl SchemaSql {
    fn new(p: &str) -> Self {
        Self {
            create_table: stmt(format!(
                "CREATE TABLE IF NOT EXISTS {p}credvault_schema (\
                 id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL)"
            )),
            read_version: stmt(format!(
                "SELECT version FROM {p}credvault_schema WHERE id = 1"
            )),
            write_version: stmt(format!(
                "INSERT INTO {p}credvault_schema (id, version) VALUES (1, $1) \
                 ON CONFLICT (id) DO UPDATE SET version = excluded.version"
            )),
        }
    }
}

/// Tenants: their row, deletion state and current data key version (`credvault_tenants`).
#[derive(Debug)]
pub(crate) struct TenantSql {
    pub(crate) insert: Arc<str>,
    pub(crate) select: Arc<str>,
    pub(crate) set_deletion: Arc<str>,
    pub(crate) due: Arc<str>,
    pub(crate) delete: Arc<str>,
    pub(crate) set_shredded: Arc<str>,
    pub(crate) current_dek: Arc<str>,
    pub(crate) lock: Arc<str>,
    pub(crate) set_min_dek: Arc<str>,
}

impl TenantSql {
    fn new<D: Dialect>(p: &str) -> Self {
        let lock = D::ROW_LOCK;
        Self {
            insert: stmt(format!(
                "INSERT INTO {p}credvault_tenants ({TENANT_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (tenant_id) DO NOTHING"
            )),
            select: stmt(format!(
                "SELECT {TENANT_COLUMNS} FROM {p}credvault_tenants WHERE tenant_id = $1"
            )),
            set_deletion: stmt(format!(
                "UPDATE {p}credvault_tenants SET deleted_at = $2, purge_after = $3 \
                 WHERE tenant_id = $1 AND shredded_at IS NULL"
            )),
            due: stmt(format!(
                "SELECT tenant_id FROM {p}credvault_tenants WHERE purge_after <= $1 \
                 ORDER BY tenant_id"
            )),
            delete: stmt(format!(
                "DELETE FROM {p}credvault_tenants WHERE tenant_id = $1"
            )),
            set_shredded: stmt(format!(
                "UPDATE {p}credvault_tenants SET shredded_at = COALESCE(shredded_at, $2) \
                 WHERE tenant_id = $1"
            )),
            current_dek: stmt(format!(
                "SELECT dek_version FROM {p}credvault_tenants WHERE tenant_id = $1"
            )),
            lock: stmt(format!(
                "SELECT dek_version FROM {p}credvault_tenants WHERE tenant_id = $1{lock}"
            )),
            set_min_dek: stmt(format!(
                "UPDATE {p}credvault_tenants SET min_dek_version = $2 \
                 WHERE tenant_id = $1 AND dek_version >= $2"
            )),
        }
    }
}

/// Sealed records (`credvault_secrets`).
#[derive(Debug)]
pub(crate) struct RecordSql {
    pub(crate) select: Arc<str>,
    pub(crate) select_sealed: Arc<str>,
    pub(crate) select_version: Arc<str>,
    pub(crate) insert: Arc<str>,
    pub(crate) upsert: Arc<str>,
    pub(crate) update: Arc<str>,
    pub(crate) delete: Arc<str>,
    pub(crate) delete_tenant: Arc<str>,
    pub(crate) set_purge_after: Arc<str>,
    pub(crate) purge: Arc<str>,
    pub(crate) counts: Arc<str>,
}

impl RecordSql {
    fn new<D: Dialect>(p: &str) -> Self {
        let pk = "tenant_id = $1 AND kind = $2 AND name = $3";
        let share = D::SHARE_LOCK;
        // A write must seal with the tenant's current data key (or, for an update, keep the
        // stored one): the tenant's row is share-locked so a rotation waits for the write.
        let current_dek = format!(
            "COALESCE((SELECT t.dek_version FROM {p}credvault_tenants t \
             WHERE t.tenant_id = $1{share}), $6) = $6"
        );
        Self {
            select: stmt(format!(
                "SELECT {SECRET_COLUMNS} FROM {p}credvault_secrets WHERE {pk}"
            )),
            select_sealed: stmt(format!(
                "SELECT version, sealed, dek_version FROM {p}credvault_secrets WHERE {pk}"
            )),
            select_version: stmt(format!(
                "SELECT version FROM {p}credvault_secrets WHERE {pk}"
            )),
            insert: stmt(format!(
                "INSERT INTO {p}credvault_secrets ({SECRET_COLUMNS}) SELECT \
                 $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14 \
                 WHERE {current_dek} ON CONFLICT (tenant_id, kind, name) DO NOTHING"
            )),
            // Insert or replace in one statement: a new record gets version 1, a replaced one
            // its stored version + 1, keeping created_at and a scheduled purge. Nothing is
            // written (no row returned) if the data key is not the tenant's current one.
            upsert: stmt(format!(
                "INSERT INTO {p}credvault_secrets AS s ({SECRET_COLUMNS}) SELECT \
                 $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14 \
                 WHERE {current_dek} ON CONFLICT (tenant_id, kind, name) DO UPDATE SET \
                 version = s.version + 1, sealed = excluded.sealed, \
                 dek_version = excluded.dek_version, kek_version = excluded.kek_version, \
                 metadata = excluded.metadata, provider = excluded.provider, \
                 updated_at = excluded.updated_at, expires_at = excluded.expires_at, \
                 lease_until = excluded.lease_until RETURNING version"
            )),
            update: stmt(format!(
                "UPDATE {p}credvault_secrets SET version = $4, sealed = $5, dek_version = $6, \
                 kek_version = $7, metadata = $8, provider = $9, \
                 created_at = COALESCE(created_at, $10), updated_at = $11, expires_at = $12, \
                 purge_after = COALESCE(purge_after, $13), lease_until = $14 \
                 WHERE {pk} AND version = $15 AND (dek_version = $6 OR {current_dek})"
            )),
            delete: stmt(format!("DELETE FROM {p}credvault_secrets WHERE {pk}")),
            delete_tenant: stmt(format!(
                "DELETE FROM {p}credvault_secrets WHERE tenant_id = $1"
            )),
            set_purge_after: stmt(format!(
                "UPDATE {p}credvault_secrets SET purge_after = $4 WHERE {pk}"
            )),
            purge: stmt(format!(
                "DELETE FROM {p}credvault_secrets WHERE purge_after <= $1 \
                 RETURNING tenant_id, kind, name"
            )),
            counts: stmt(format!(
                "SELECT tenant_id, dek_version, fernet, COUNT(*) AS records FROM (\
                 SELECT s.tenant_id AS tenant_id, s.dek_version AS dek_version, \
                 CAST(CASE WHEN {fernet} THEN 1 ELSE 0 END AS BIGINT) AS fernet \
                 FROM {p}credvault_secrets s) AS c \
                 GROUP BY tenant_id, dek_version, fernet \
                 ORDER BY tenant_id, dek_version, fernet",
                fernet = is_fernet::<D>()
            )),
        }
    }
}

/// Key identities and the newest KEK version (`credvault_keys`, `credvault_vault`).
#[derive(Debug)]
pub(crate) struct KeySql {
    pub(crate) select: Arc<str>,
    pub(crate) newest_kek: Arc<str>,
    pub(crate) lock_newest_kek: Arc<str>,
    pub(crate) insert: Arc<str>,
    pub(crate) raise_newest_kek: Arc<str>,
    pub(crate) touch_primary: Arc<str>,
}

impl KeySql {
    fn new<D: Dialect>(p: &str) -> Self {
        let share = D::SHARE_LOCK;
        Self {
            select: stmt(format!(
                "SELECT role, version, fingerprint, recorded_at, last_primary_at \
                 FROM {p}credvault_keys ORDER BY role, version"
            )),
            newest_kek: stmt(format!(
                "SELECT newest_kek FROM {p}credvault_vault WHERE id = 1"
            )),
            // Every write that wraps a data key share-locks this row (PostgreSQL), so raising
            // the newest version waits for them and no wrap under an older KEK commits after.
            lock_newest_kek: stmt(format!(
                "SELECT newest_kek FROM {p}credvault_vault WHERE id = 1{share}"
            )),
            insert: stmt(format!(
                "INSERT INTO {p}credvault_keys \
                 (role, version, fingerprint, recorded_at, last_primary_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (role, version) DO NOTHING"
            )),
            raise_newest_kek: stmt(format!(
                "UPDATE {p}credvault_vault SET newest_kek = $1 WHERE id = 1 AND newest_kek < $1"
            )),
            touch_primary: stmt(format!(
                "UPDATE {p}credvault_keys SET last_primary_at = $2 \
                 WHERE role = 'kek' AND version = $1"
            )),
        }
    }
}

/// Data keys: rotating, rewrapping and destroying them (`credvault_tenant_deks`).
#[derive(Debug)]
pub(crate) struct DekSql {
    pub(crate) delete_tenant: Arc<str>,
    pub(crate) retired: Arc<str>,
    pub(crate) page: Arc<str>,
    pub(crate) retire_current: Arc<str>,
    pub(crate) install: Arc<str>,
    pub(crate) rewrap_current: Arc<str>,
    pub(crate) rewrap_retired: Arc<str>,
    pub(crate) count_sealed_with: Arc<str>,
    pub(crate) erase: Arc<str>,
    pub(crate) retired_exists: Arc<str>,
}

impl DekSql {
    fn new(p: &str) -> Self {
        Self {
            delete_tenant: stmt(format!(
                "DELETE FROM {p}credvault_tenant_deks WHERE tenant_id = $1"
            )),
            retired: stmt(format!(
                "SELECT {DEK_COLUMNS} FROM {p}credvault_tenant_deks WHERE tenant_id = $1 \
                 ORDER BY dek_version"
            )),
            page: stmt(format!(
                "SELECT {DEK_COLUMNS} FROM (\
                 SELECT tenant_id, dek_version, wrapped_dek, kek_version, \
                 COALESCE(dek_created_at, created_at) AS created_at, \
                 CAST(NULL AS BIGINT) AS retired_at, CAST(NULL AS BIGINT) AS destroyed_at \
                 FROM {p}credvault_tenants UNION ALL \
                 SELECT {DEK_COLUMNS} FROM {p}credvault_tenant_deks) k \
                 WHERE (tenant_id, dek_version) > ($1, $2) \
                 ORDER BY tenant_id, dek_version LIMIT $3"
            )),
            retire_current: stmt(format!(
                "INSERT INTO {p}credvault_tenant_deks ({DEK_COLUMNS}) \
                 SELECT tenant_id, dek_version, wrapped_dek, kek_version, \
                 COALESCE(dek_created_at, created_at), $3, NULL \
                 FROM {p}credvault_tenants WHERE tenant_id = $1 AND dek_version = $2"
            )),
            install: stmt(format!(
                "UPDATE {p}credvault_tenants SET wrapped_dek = $3, dek_version = $4, \
                 kek_version = $5, dek_created_at = $6 WHERE tenant_id = $1 AND dek_version = $2"
            )),
            rewrap_current: stmt(format!(
                "UPDATE {p}credvault_tenants SET wrapped_dek = $4, kek_version = $5 \
                 WHERE tenant_id = $1 AND dek_version = $2 AND kek_version = $3"
            )),
            rewrap_retired: stmt(format!(
                "UPDATE {p}credvault_tenant_deks SET wrapped_dek = $4, kek_version = $5 \
                 WHERE tenant_id = $1 AND dek_version = $2 AND kek_version = $3 \
                 AND wrapped_dek IS NOT NULL"
            )),
            count_sealed_with: stmt(format!(
                "SELECT COUNT(*) FROM {p}credvault_secrets WHERE tenant_id = $1 AND dek_version = $2"
            )),
            erase: stmt(format!(
                "UPDATE {p}credvault_tenant_deks SET wrapped_dek = NULL, destroyed_at = $3 \
                 WHERE tenant_id = $1 AND dek_version = $2 AND wrapped_dek IS NOT NULL"
            )),
            retired_exists: stmt(format!(
                "SELECT COUNT(*) FROM {p}credvault_tenant_deks \
                 WHERE tenant_id = $1 AND dek_version = $2 AND wrapped_dek IS NOT NULL"
            )),
        }
    }
}

/// Whether the payload `s.sealed` is a Fernet token (its first byte is `g`; a sealed-record
/// payload starts with `c`).
fn is_fernet<D: Dialect>() -> String {
    format!("substr(s.sealed, 1, 1) = CAST('g' AS {})", D::BLOB_TYPE)
}

/// The re-encryption batch: the claim, and whether a reseal landed.
#[derive(Debug)]
pub(crate) struct BatchSql {
    prefix: String,
    claim_lock: &'static str,
    is_fernet: String,
    pub(crate) select_versions: Arc<str>,
}

impl BatchSql {
    /// The condition that a record `s` of tenant `t` is stale under `plan`: sealed with an
    /// old data key, or with another suite than the plan's for its kind. Kinds are quoted as
    /// SQL literals (a quote doubled), so any text is safe here.
    pub(crate) fn stale(&self, plan: &SuitePlan) -> String {
        let listed = |suite: SealingSuite| {
            let kinds: Vec<String> = plan
                .kinds
                .iter()
                .filter(|(_, s)| *s == suite)
                .map(|(k, _)| format!("'{}'", k.replace('\'', "''")))
                .collect();
            if kinds.is_empty() {
                "(1 = 0)".to_owned()
            } else {
                format!("(s.kind IN ({}))", kinds.join(", "))
            }
        };
        let fernet_wanted = match plan.default {
            SealingSuite::Fernet => format!("(NOT {})", listed(SealingSuite::Aes256Gcm)),
            _ => listed(SealingSuite::Fernet),
        };
        format!(
            "(s.dek_version <> t.dek_version OR ({}) <> {fernet_wanted})",
            self.is_fernet
        )
    }

    /// The claim of a batch under `plan`: `$1` limit, or with `after`, `$1`-`$3` the last
    /// key claimed and `$4` the limit.
    pub(crate) fn claim(&self, plan: &SuitePlan, after: bool) -> String {
        let p = &self.prefix;
        // Only what resealing needs: every column read costs on SQLite, per row (the batch's
        // tenants and data keys are read once each, after the claim).
        let secret_cols = "s.tenant_id AS tenant_id, s.kind AS kind, s.name AS name, \
             s.version AS version, s.sealed AS sealed, s.dek_version AS dek_version";
        let (after, limit) = if after {
            (" AND (s.tenant_id, s.kind, s.name) > ($1, $2, $3)", "$4")
        } else {
            ("", "$1")
        };
        format!(
            "SELECT {secret_cols} FROM {p}credvault_secrets s \
             JOIN {p}credvault_tenants t ON t.tenant_id = s.tenant_id \
             WHERE {}{after} \
             ORDER BY s.tenant_id, s.kind, s.name LIMIT {limit}{}",
            self.stale(plan),
            self.claim_lock
        )
    }

    /// The count of stale records under `plan`.
    pub(crate) fn count_stale(&self, plan: &SuitePlan) -> String {
        let p = &self.prefix;
        format!(
            "SELECT COUNT(*) FROM {p}credvault_secrets s \
             JOIN {p}credvault_tenants t ON t.tenant_id = s.tenant_id WHERE {}",
            self.stale(plan)
        )
    }

    fn new<D: Dialect>(p: &str) -> Self {
        Self {
            prefix: p.to_owned(),
            claim_lock: D::CLAIM_LOCK,
            is_fernet: is_fernet::<D>(),
            select_versions: stmt(format!(
                "SELECT version, dek_version FROM {p}credvault_secrets \
                 WHERE tenant_id = $1 AND kind = $2 AND name = $3"
            )),
        }
    }
}

/// The login throttle (`credvault_throttle`, schema version 2; rows named by keyed hashes
/// since version 5: `known#...` rows mark known addresses, `pair#<account>.` starts an
/// account's pairs).
#[derive(Debug)]
pub(crate) struct ThrottleSql {
    pub(crate) select: Arc<str>,
    pub(crate) select_one: Arc<str>,
    pub(crate) mark_known: Arc<str>,
    pub(crate) delete_range: Arc<str>,
    pub(crate) prune_known: Arc<str>,
    pub(crate) insert: Arc<str>,
    pub(crate) lock: Arc<str>,
    pub(crate) update: Arc<str>,
    pub(crate) delete: Arc<str>,
    pub(crate) prune: Arc<str>,
}

impl ThrottleSql {
    fn new<D: Dialect>(p: &str) -> Self {
        let lock = D::ROW_LOCK;
        Self {
            select: stmt(format!(
                "SELECT throttle_key, {THROTTLE_COLUMNS} FROM {p}credvault_throttle \
                 WHERE throttle_key IN ($1, $2, $3, $4)"
            )),
            select_one: stmt(format!(
                "SELECT {THROTTLE_COLUMNS} FROM {p}credvault_throttle WHERE throttle_key = $1"
            )),
            mark_known: stmt(format!(
                "INSERT INTO {p}credvault_throttle (throttle_key, {THROTTLE_COLUMNS}) \
                 VALUES ($1, 0, $2, 0, NULL, $2) ON CONFLICT (throttle_key) \
                 DO UPDATE SET window_start = excluded.window_start, last_seen = excluded.last_seen"
            )),
            delete_range: stmt(format!(
                "DELETE FROM {p}credvault_throttle WHERE throttle_key >= $1 AND throttle_key < $2"
            )),
            prune_known: stmt(format!(
                "DELETE FROM {p}credvault_throttle WHERE throttle_key LIKE 'known#%' \
                 AND last_seen < $1"
            )),
            insert: stmt(format!(
                "INSERT INTO {p}credvault_throttle (throttle_key, {THROTTLE_COLUMNS}) \
                 VALUES ($1, 0, $2, 0, NULL, $3) ON CONFLICT (throttle_key) DO NOTHING"
            )),
            lock: stmt(format!(
                "SELECT {THROTTLE_COLUMNS} FROM {p}credvault_throttle WHERE throttle_key = $1{lock}"
            )),
            update: stmt(format!(
                "UPDATE {p}credvault_throttle SET failures = $2, window_start = $3, \
                 lockouts = $4, locked_until = $5, last_seen = $6 WHERE throttle_key = $1"
            )),
            delete: stmt(format!(
                "DELETE FROM {p}credvault_throttle WHERE throttle_key = $1"
            )),
            prune: stmt(format!(
                "DELETE FROM {p}credvault_throttle WHERE last_seen < $1 AND window_start < $2 \
                 AND (locked_until IS NULL OR locked_until < $3) \
                 AND throttle_key NOT LIKE 'known#%'"
            )),
        }
    }
}
