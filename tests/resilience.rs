//! One bad row never stops the rest, and an audit that cannot be forged or bypassed (issue 14,
//! items 5 and 6), on a real SQLite file and on PostgreSQL (skipped with a message when no
//! server is reachable, unless CREDVAULT_REQUIRE_POSTGRES=1).
//!
//! Rows are corrupted with raw SQL, as an attacker with the database, a hand edit or an older
//! build could leave them: a control character in a name, metadata that is not JSON, a
//! truncated ciphertext, a tenant row that does not decode. Each vault-wide or tenant-wide
//! job (list, export, disconnect, re-encrypt, purge, import) must skip the row, name it in its
//! report and finish the rest.
//!
//! The assertions use only API that also existed before the fix (reports are read through
//! their JSON form), so that this file runs against the old code and shows each test failing.

#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use std::sync::Arc;

use credvault::backend::{AuditQuery, Backend, BoxFuture, SqliteBackend};
use credvault::envelope::MemoryTenantKeys;
use credvault::store::{
    DerivedData, LegacyPayload, LegacyValue, ManualClock, OAuthToken, ReencryptOptions,
    RevocationRequest, RevokeError, Revoker, Vault, VaultConfig,
};
use credvault::{Keyring, SecretString};
use serde_json::{Value, json};

const T0: i64 = 1_763_856_000;

/// A backend and a way to reach its tables with raw SQL.
struct Db {
    backend: Arc<dyn Backend>,
    raw: Raw,
    _dir: Option<tempfile::TempDir>,
}

enum Raw {
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool, String),
}

impl Db {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("vault.db").display());
        let options = SqliteBackend::options(&url).unwrap();
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .unwrap();
        Self {
            backend: Arc::new(SqliteBackend::from_pool(pool.clone())),
            raw: Raw::Sqlite(pool),
            _dir: Some(dir),
        }
    }

    #[cfg(feature = "postgres")]
    async fn postgres() -> Option<Self> {
        let (pool, schema) = common::postgres_schema().await?;
        let backend = credvault::backend::PgBackend::from_pool(pool.clone())
            .with_schema(&schema)
            .unwrap();
        Some(Self {
            backend: Arc::new(backend),
            raw: Raw::Postgres(pool, schema),
            _dir: None,
        })
    }

    /// Runs `sql` with `{t}` replaced by the table prefix (the test schema on PostgreSQL).
    async fn exec(&self, sql: &str) {
        match &self.raw {
            Raw::Sqlite(pool) => {
                let sql = sql.replace("{t}", "");
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(pool)
                    .await
                    .unwrap();
            }
            #[cfg(feature = "postgres")]
            Raw::Postgres(pool, schema) => {
                let sql = sql.replace("{t}", &format!("\"{schema}\"."));
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(pool)
                    .await
                    .unwrap();
            }
        }
    }

    fn is_sqlite(&self) -> bool {
        matches!(self.raw, Raw::Sqlite(_))
    }

    async fn finish(self) {
        match self.raw {
            Raw::Sqlite(pool) => pool.close().await,
            #[cfg(feature = "postgres")]
            Raw::Postgres(pool, schema) => common::drop_postgres_schema(pool, schema).await,
        }
    }
}

fn vault(db: &Db, clock: &ManualClock) -> Vault {
    // Tenant rows read afresh each time: a row corrupted by the test is seen at once.
    let config = VaultConfig {
        tenant_cache_ttl: std::time::Duration::ZERO,
        ..VaultConfig::default()
    };
    Vault::builder(
        db.backend.clone(),
        Keyring::generate().unwrap(),
        MemoryTenantKeys::new(),
    )
    .config(config)
    .clock(clock.clone())
    .build()
}

fn token(provider: &str, access: &str) -> OAuthToken {
    OAuthToken::bearer(provider, SecretString::from(access))
}

/// Puts `names` as github tokens of `tenant`.
async fn put_tokens(vault: &Vault, tenant: &str, names: &[&str]) {
    let t = vault.tenant(tenant).unwrap();
    for name in names {
        t.put(name, &token("github", &format!("{name}-secret")))
            .await
            .unwrap();
    }
}

/// Gives record `name` a stored name with a control character (as a hand edit or an old
/// build could leave it): no longer a valid record name.
async fn break_name(db: &Db, name: &str) {
    db.exec(&format!(
        "UPDATE {{t}}credvault_secrets SET name = '{name}\u{1b}[2J' WHERE name = '{name}'"
    ))
    .await;
}

/// Cuts record `name`'s sealed payload to 10 bytes: it no longer opens.
async fn truncate_sealed(db: &Db, name: &str) {
    let cut = if db.is_sqlite() {
        "substr(sealed, 1, 10)"
    } else {
        "substring(sealed from 1 for 10)"
    };
    db.exec(&format!(
        "UPDATE {{t}}credvault_secrets SET sealed = {cut} WHERE name = '{name}'"
    ))
    .await;
}

/// The names a report lists as unreadable (its JSON form's `field` array).
fn unreadable_names(report: &Value, field: &str) -> Vec<String> {
    report[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} list in {report}"))
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_owned())
        .collect()
}

// ---- item 5: one bad row never stops the rest

async fn list_skips_and_names_bad_rows(db: &Db) {
    let clock = ManualClock::new(T0);
    let vault = vault(db, &clock);
    vault.migrate().await.unwrap();
    put_tokens(&vault, "acme", &["a", "b", "c", "d"]).await;
    break_name(db, "b").await;
    db.exec("UPDATE {t}credvault_secrets SET metadata = 'not json {' WHERE name = 'c'")
        .await;
    if db.is_sqlite() {
        // A BLOB where text belongs: the column does not decode at all.
        db.exec("UPDATE credvault_secrets SET metadata = X'00FF' WHERE name = 'd'")
            .await;
    }
    let listing = vault.tenant("acme").unwrap().list(None).await.unwrap();
    let names: Vec<&str> = listing.iter().map(|i| i.name.as_str()).collect();
    let expected: &[&str] = if db.is_sqlite() { &["a"] } else { &["a", "d"] };
    assert_eq!(names, expected);
    let report = serde_json::to_value(&listing).unwrap();
    let skipped = unreadable_names(&report, "unreadable");
    assert!(skipped.contains(&"b\\u{1b}[2J".to_owned()), "{report}");
    assert!(skipped.contains(&"c".to_owned()), "{report}");
    let reasons: Vec<&str> = report["unreadable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["reason"].as_str().unwrap())
        .collect();
    assert!(reasons.contains(&"invalid_name"), "{report}");
    assert!(reasons.contains(&"invalid_metadata"), "{report}");
    if db.is_sqlite() {
        assert!(reasons.contains(&"unreadable_column"), "{report}");
    }
}

async fn export_skips_bad_rows_and_stays_whole(db: &Db) {
    let clock = ManualClock::new(T0);
    let vault = vault(db, &clock);
    vault.migrate().await.unwrap();
    put_tokens(&vault, "acme", &["a", "b", "c"]).await;
    break_name(db, "b").await;
    // A truncated ciphertext: the record does not open.
    truncate_sealed(db, "c").await;
    let acme = vault.tenant("acme").unwrap();
    let mut out = Vec::new();
    let report = acme.export_json(&mut out).await.unwrap();
    let doc: Value = serde_json::from_slice(&out).expect("the export is well-formed json");
    assert_eq!(doc["records"].as_array().unwrap().len(), 1);
    assert_eq!(doc["records"][0]["name"], "a");
    let mut names = unreadable_names(&doc, "unreadable");
    names.sort();
    assert_eq!(names, ["b\\u{1b}[2J", "c"], "{doc}");
    assert_eq!(report.unreadable, 2);
    let mut csv = Vec::new();
    let report = serde_json::to_value(acme.export_csv(&mut csv).await.unwrap()).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert_eq!(csv.lines().count(), 3, "header and two records: {csv}");
    assert_eq!(unreadable_names(&report, "skipped"), ["b\\u{1b}[2J"]);
}

async fn disconnect_skips_a_bad_row(db: &Db) {
    let clock = ManualClock::new(T0);
    let vault = vault(db, &clock);
    vault.migrate().await.unwrap();
    put_tokens(&vault, "acme", &["a", "b", "c"]).await;
    break_name(db, "b").await;
    let acme = vault.tenant("acme").unwrap();
    let report = acme.disconnect("github", None).await.unwrap();
    assert_eq!(report.deleted, 2);
    let report = serde_json::to_value(&report).unwrap();
    assert_eq!(unreadable_names(&report, "unreadable"), ["b\\u{1b}[2J"]);
}

async fn reencrypt_skips_a_bad_row(db: &Db) {
    let clock = ManualClock::new(T0);
    let vault = vault(db, &clock);
    vault.migrate().await.unwrap();
    put_tokens(&vault, "acme", &["a", "b", "c"]).await;
    put_tokens(&vault, "globex", &["x", "y"]).await;
    vault.rotate_dek("acme").await.unwrap();
    vault.rotate_dek("globex").await.unwrap();
    break_name(db, "b").await;
    let options = ReencryptOptions {
        batch_size: 1,
        ..ReencryptOptions::default()
    };
    let report = vault.reencrypt(&options, |_| {}).await.unwrap();
    assert_eq!(report.resealed, 4, "{report:?}");
    assert_eq!(report.remaining, 1);
    let report = serde_json::to_value(&report).unwrap();
    assert_eq!(unreadable_names(&report, "unreadable"), ["b\\u{1b}[2J"]);
}

async fn purge_deletes_a_bad_due_row_and_the_rest(db: &Db) {
    let clock = ManualClock::new(T0);
    let vault = vault(db, &clock);
    vault.migrate().await.unwrap();
    let acme = vault.tenant("acme").unwrap();
    for name in ["d1", "d2", "d3"] {
        let data = DerivedData {
            provider: "shop".to_owned(),
            value: json!({ "n": name }),
        };
        acme.put(name, &data).await.unwrap();
    }
    acme.disconnect("shop", None).await.unwrap();
    break_name(db, "d2").await;
    // A due tenant whose id is not a valid tenant id: skipped and named, not the whole purge.
    let blob = if db.is_sqlite() {
        "X'00'"
    } else {
        "'\\x00'::bytea"
    };
    db.exec(&format!(
        "INSERT INTO {{t}}credvault_tenants (tenant_id, wrapped_dek, dek_version, kek_version, created_at, purge_after) \
         VALUES ('a/b', {blob}, 1, 1, 0, 5)"
    ))
    .await;
    clock.advance(std::time::Duration::from_secs(2 * 86_400));
    let report = vault.purge().await.unwrap();
    assert_eq!(report.expired_records, 3, "{report:?}");
    let report = serde_json::to_value(&report).unwrap();
    let skipped = &report["unreadable"];
    assert_eq!(skipped[0]["tenant"], "a/b", "{report}");
    assert_eq!(skipped[0]["reason"], "invalid_tenant", "{report}");
    assert_eq!(skipped[1]["name"], "d2\\u{1b}[2J", "{report}");
    let audit = vault
        .audit(&AuditQuery {
            tenant: None,
            since: None,
            limit: None,
        })
        .await
        .unwrap();
    let purged = audit
        .iter()
        .filter(|r| r.action.as_str() == "purge")
        .count();
    assert_eq!(purged, 3, "each purged row is audited");
}

async fn import_goes_on_past_a_tenant_that_does_not_decode(db: &Db) {
    let clock = ManualClock::new(T0);
    let vault = vault(db, &clock);
    vault.migrate().await.unwrap();
    put_tokens(&vault, "broken", &["old"]).await;
    db.exec("UPDATE {t}credvault_tenants SET dek_version = -1 WHERE tenant_id = 'broken'")
        .await;
    use credvault::crypto::fernet::{Fernet, MultiFernet};
    let key = Fernet::generate_key();
    let legacy = MultiFernet::new(vec![Fernet::new(key.expose_secret()).unwrap()]).unwrap();
    let values = ["acme", "broken", "globex"].map(|t| {
        LegacyValue::new(
            t,
            "github",
            LegacyPayload::Plaintext(SecretString::from("gho_x")),
        )
    });
    let report = vault
        .import_fernet(&legacy, |plain, _| Ok(OAuthToken::bearer("github", plain)))
        .allow_plaintext(true)
        .run(values)
        .await
        .unwrap();
    assert_eq!((report.imported, report.failed), (2, 1), "{report:?}");
    assert_eq!(report.failures[0].tenant.as_deref(), Some("broken"));
}

/// Accepts every revocation and remembers the names.
#[derive(Debug, Default)]
struct Accepting(std::sync::Mutex<Vec<String>>);

impl Revoker for Accepting {
    fn revoke<'a>(
        &'a self,
        request: &'a RevocationRequest,
    ) -> BoxFuture<'a, Result<(), RevokeError>> {
        self.0.lock().unwrap().push(request.name.clone());
        Box::pin(async { Ok(()) })
    }
}

async fn tenant_deletion_names_a_token_row_it_cannot_revoke(db: &Db) {
    let clock = ManualClock::new(T0);
    let vault = vault(db, &clock);
    vault.migrate().await.unwrap();
    put_tokens(&vault, "acme", &["a", "b", "c"]).await;
    break_name(db, "b").await;
    let revoker = Accepting::default();
    let deletion = vault
        .delete_tenant_with("acme", "admin", &revoker)
        .await
        .unwrap();
    assert_eq!(*revoker.0.lock().unwrap(), ["a", "c"]);
    let deletion = serde_json::to_value(&deletion).unwrap();
    assert_eq!(deletion["tokens_revoked"], 2, "{deletion}");
    assert_eq!(
        unreadable_names(&deletion, "unreadable"),
        ["b\\u{1b}[2J"],
        "the row that was neither revoked nor removed is named"
    );
    // Each purge run before the deadline names it again; the tenant's purge deletes it.
    let report = serde_json::to_value(vault.purge().await.unwrap()).unwrap();
    assert_eq!(
        unreadable_names(&report, "unreadable"),
        ["b\\u{1b}[2J"],
        "{report}"
    );
    clock.advance(std::time::Duration::from_secs(31 * 86_400));
    vault.purge().await.unwrap();
    let left = vault
        .tenant("acme")
        .unwrap()
        .export_json_with(
            &mut Vec::new(),
            credvault::store::ExportOptions::metadata_only(),
        )
        .await
        .unwrap();
    assert_eq!((left.records, left.unreadable), (0, 0), "{left:?}");
}

async fn export_audits_a_record_that_does_not_open(db: &Db) {
    let clock = ManualClock::new(T0);
    let vault = vault(db, &clock);
    vault.migrate().await.unwrap();
    put_tokens(&vault, "acme", &["a", "b"]).await;
    truncate_sealed(db, "b").await;
    let report = vault
        .tenant("acme")
        .unwrap()
        .export_json(&mut Vec::new())
        .await
        .unwrap();
    assert_eq!((report.records, report.unreadable), (1, 1));
    let audit = vault.audit(&AuditQuery::default()).await.unwrap();
    let failed: Vec<_> = audit
        .iter()
        .filter(|r| r.action.as_str() == "open_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{audit:?}");
    assert_eq!(failed[0].name.as_deref(), Some("b"));
    assert!(failed[0].outcome.starts_with("failed: "), "{:?}", failed[0]);
}

/// A vault with tenants acme, globex and initech, one token each, whose globex data key row
/// has a KEK version out of range (a hand edit or a bad restore): it no longer decodes.
async fn vault_with_a_bad_dek_row(db: &Db) -> Vault {
    let vault = vault(db, &ManualClock::new(T0));
    vault.migrate().await.unwrap();
    for tenant in ["acme", "globex", "initech"] {
        put_tokens(&vault, tenant, &["a"]).await;
    }
    db.exec("UPDATE {t}credvault_tenants SET kek_version = -1 WHERE tenant_id = 'globex'")
        .await;
    vault
}

async fn key_report_names_a_bad_data_key_row(db: &Db) {
    let vault = vault_with_a_bad_dek_row(db).await;
    let report = vault
        .key_report(&credvault::store::RotationPolicy::default())
        .await
        .expect("one bad row does not stop the report");
    let report = serde_json::to_value(&report).unwrap();
    let tenants: Vec<&str> = report["deks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(tenants, ["acme", "initech"], "{report}");
    let unreadable = report["unreadable"].as_array().unwrap();
    assert_eq!(unreadable.len(), 1, "{report}");
    assert_eq!(unreadable[0]["tenant"], "globex");
    assert_eq!(unreadable[0]["kind"], "data_key");
    assert_eq!(unreadable[0]["column"], "kek_version");
}

async fn rotation_skips_a_bad_data_key_row(db: &Db) {
    let vault = vault_with_a_bad_dek_row(db).await;
    let rotated = vault.rotate_all_deks(|_| {}).await.unwrap();
    assert_eq!((rotated.rotated, rotated.skipped), (2, 1), "{rotated:?}");
    assert_eq!(rotated.unreadable[0].tenant, "globex");
    let rewrap = vault.rewrap_deks(|_| {}).await.unwrap();
    assert_eq!(rewrap.unreadable.len(), 1, "{rewrap:?}");
    // What the bad row needs is unknown: no KEK version counts as unused.
    assert!(vault.kek_usage(credvault::KeyVersion::FIRST).await.is_err());
}

// ---- item 6: audit that cannot be forged or bypassed

async fn failed_open_is_audited(db: &Db) {
    let clock = ManualClock::new(T0);
    let vault = vault(db, &clock);
    vault.migrate().await.unwrap();
    put_tokens(&vault, "acme", &["a"]).await;
    // Change the last byte (the GCM tag): the record no longer opens. (Always a change: a
    // tag ending in 0x00 becomes 0x01, any other 0x00.)
    let flip = if db.is_sqlite() {
        "substr(sealed, 1, length(sealed) - 1) || \
         CASE WHEN substr(sealed, -1) = X'00' THEN X'01' ELSE X'00' END"
    } else {
        "overlay(sealed placing (CASE WHEN get_byte(sealed, length(sealed) - 1) = 0 \
         THEN '\\x01'::bytea ELSE '\\x00'::bytea END) from length(sealed) for 1)"
    };
    db.exec(&format!(
        "UPDATE {{t}}credvault_secrets SET sealed = {flip} WHERE name = 'a'"
    ))
    .await;
    let acme = vault.tenant("acme").unwrap();
    assert!(
        acme.get::<OAuthToken>("a").await.is_err(),
        "the caller gets the error"
    );
    let audit = vault.audit(&AuditQuery::default()).await.unwrap();
    let failed: Vec<_> = audit
        .iter()
        .filter(|r| r.action.as_str() == "open_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{audit:?}");
    assert_eq!(failed[0].name.as_deref(), Some("a"));
    assert_eq!(failed[0].outcome, "failed: tampered");
}

async fn refresh_audits_its_read(db: &Db) {
    let clock = ManualClock::new(T0);
    let vault = vault(db, &clock);
    vault.migrate().await.unwrap();
    put_tokens(&vault, "acme", &["a"]).await;
    let acme = vault.tenant("acme").unwrap();
    let got = acme
        .refresh("a", std::time::Duration::from_secs(60), |t| async move {
            Ok::<_, std::io::Error>(t)
        })
        .await
        .unwrap();
    assert_eq!(got.value.access_token.expose_secret(), "a-secret");
    let audit = vault.audit(&AuditQuery::default()).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.action.as_str() == "get" && r.name.as_deref() == Some("a")),
        "refresh returned the token without a read row: {audit:?}"
    );
}

async fn export_holds_the_tenants_audit(db: &Db) {
    let clock = ManualClock::new(T0);
    let vault = vault(db, &clock);
    vault.migrate().await.unwrap();
    put_tokens(&vault, "acme", &["a"]).await;
    put_tokens(&vault, "globex", &["x"]).await;
    let acme = vault.tenant("acme").unwrap();
    acme.get::<OAuthToken>("a").await.unwrap();
    let mut out = Vec::new();
    acme.export_json(&mut out).await.unwrap();
    let doc: Value = serde_json::from_slice(&out).unwrap();
    let audit = doc["audit"].as_array().expect("an audit array");
    let actions: Vec<&str> = audit
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"put") && actions.contains(&"get"),
        "{doc}"
    );
    assert!(
        audit.iter().all(|r| r["tenant"] == "acme"),
        "only its own rows"
    );
}

async fn forged_actor_is_refused(db: &Db) {
    let clock = ManualClock::new(T0);
    let vault = vault(db, &clock);
    vault.migrate().await.unwrap();
    put_tokens(&vault, "acme", &["a"]).await;
    let forged = "bob\n1763856000\tacme\t-\t-\ttenant_restore\tadmin\tok";
    assert!(vault.delete_tenant("acme", forged).await.is_err());
    assert!(vault.delete_tenant("acme", "x\u{202e}nimda").await.is_err());
    assert!(vault.restore_tenant("acme", "a\u{7f}").await.is_err());
    let long = "a".repeat(129);
    assert!(vault.delete_tenant("acme", &long).await.is_err());
    let acme = vault.tenant("acme").unwrap();
    let bad_provider = token("git\u{1b}[2Jhub", "x");
    assert!(acme.put("p", &bad_provider).await.is_err());
    let audit = vault.audit(&AuditQuery::default()).await.unwrap();
    assert!(
        audit.iter().all(|r| !r.actor.contains('\n')),
        "a forged actor reached the audit log: {audit:?}"
    );
    assert!(
        acme.get::<OAuthToken>("a").await.is_ok(),
        "nothing was deleted"
    );
}

async fn audit_read_keeps_a_row_that_does_not_decode(db: &Db) {
    let clock = ManualClock::new(T0);
    let vault = vault(db, &clock);
    vault.migrate().await.unwrap();
    put_tokens(&vault, "acme", &["a"]).await;
    db.exec(
        "INSERT INTO {t}credvault_audit (at, tenant_id, kind, name, action, actor, outcome) \
         VALUES (1, 'a/b', NULL, NULL, 'get', 'x', 'ok')",
    )
    .await;
    if db.is_sqlite() {
        db.exec(
            "INSERT INTO credvault_audit (at, tenant_id, kind, name, action, actor, outcome) \
             VALUES (2, 'acme', NULL, NULL, 'get', X'00FF', 'ok')",
        )
        .await;
    }
    let audit = vault.audit(&AuditQuery::default()).await.unwrap();
    let marked: Vec<_> = audit
        .iter()
        .filter(|r| r.outcome.starts_with("unreadable row (columns "))
        .collect();
    assert_eq!(
        marked.len(),
        if db.is_sqlite() { 2 } else { 1 },
        "{audit:?}"
    );
    assert!(marked[0].tenant.is_none() && marked[0].outcome.contains("tenant_id"));
    let mut out = Vec::new();
    vault
        .tenant("acme")
        .unwrap()
        .export_json(&mut out)
        .await
        .unwrap();
    let doc: Value = serde_json::from_slice(&out).unwrap();
    assert!(doc["audit"].as_array().unwrap().len() >= 2, "{doc}");
}

/// Runs `$body(&db)` on a SQLite file and on PostgreSQL.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = super::Db::sqlite().await;
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(db) = super::Db::postgres().await else { return };
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
    };
}

on_both!(
    list_skips_and_names_bad_rows,
    export_skips_bad_rows_and_stays_whole,
    disconnect_skips_a_bad_row,
    reencrypt_skips_a_bad_row,
    purge_deletes_a_bad_due_row_and_the_rest,
    import_goes_on_past_a_tenant_that_does_not_decode,
    failed_open_is_audited,
    refresh_audits_its_read,
    export_holds_the_tenants_audit,
    forged_actor_is_refused,
    audit_read_keeps_a_row_that_does_not_decode,
    tenant_deletion_names_a_token_row_it_cannot_revoke,
    export_audits_a_record_that_does_not_open,
    key_report_names_a_bad_data_key_row,
    rotation_skips_a_bad_data_key_row,
);
