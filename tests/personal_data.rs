//! Shredding covers personal data, not only secrets (issue 14, item 4), on a real SQLite file
//! and on PostgreSQL (skipped with a message when no server is reachable, unless
//! CREDVAULT_REQUIRE_POSTGRES=1):
//! - a copy of the database taken before a purge (file and WAL; every PostgreSQL row) holds
//!   none of the tenant's personal strings (metadata values, audit actors) in clear, and after
//!   the purge the live keys open none of them;
//! - while the tenant exists the API shows them (listing, export, `Vault::audit`);
//! - rows written before sealing (clear metadata) still read, and are sealed when rewritten;
//! - SECURITY.md's column table names every column of the live schema, and nothing else.

#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use credvault::backend::{AuditQuery, Backend, SqliteBackend};
use credvault::envelope::MemoryTenantKeys;
use credvault::store::{
    ApiKey, Cookie, DAY, ExportOptions, ManualClock, OAuthToken, SessionCookies, Vault,
};
use credvault::{Keyring, SecretString, TenantId};

const T0: i64 = 1_763_856_000;

/// Strings that identify the tenant's user: in metadata (account, scopes, labels, cookie
/// names and domains) and as the actor of its audit rows.
const PERSONAL: [&str; 6] = [
    "alice.personal.q1@example.com",
    "scope-personal-z8",
    "label-personal-w2",
    "sid_personal_cookie_m7",
    "personal-domain-x9.example",
    "user:alice.actor.k3@example.com",
];

const ACTOR: &str = "user:alice.actor.k3@example.com";

/// Writes, reads and disconnects as the tenant's user, so every table that can hold
/// personal data has some: records (metadata), the audit log (actor, names).
async fn fill(vault: &Vault) {
    let acme = vault.tenant("acme").unwrap().with_actor(ACTOR).unwrap();
    let token = OAuthToken {
        account: Some(PERSONAL[0].to_owned()),
        scopes: vec![PERSONAL[1].to_owned()],
        ..OAuthToken::bearer("google", SecretString::from("access-q1"))
    };
    acme.put("primary", &token).await.unwrap();
    let api_key = ApiKey {
        provider: "stripe".to_owned(),
        key: SecretString::from("sk_live_w2"),
        label: Some(PERSONAL[2].to_owned()),
    };
    acme.put("billing", &api_key).await.unwrap();
    let cookies = SessionCookies {
        provider: "portal".to_owned(),
        cookies: vec![Cookie {
            name: PERSONAL[3].to_owned(),
            value: SecretString::from("cookie-value"),
            domain: PERSONAL[4].to_owned(),
            path: "/".to_owned(),
            expires_at: None,
        }],
    };
    acme.put("session", &cookies).await.unwrap();
    acme.get::<OAuthToken>("primary").await.unwrap();
    acme.upsert("billing", &api_key).await.unwrap();
    // A second account, disconnected: its audit rows stay.
    acme.put(
        "old",
        &OAuthToken::bearer("github", SecretString::from("gh")),
    )
    .await
    .unwrap();
    acme.disconnect("github", None).await.unwrap();
    vault.flush_audit().await.unwrap();

    // The API shows everything while the tenant exists.
    let listing = acme.list(None).await.unwrap();
    assert!(listing.is_complete(), "{:?}", listing.unreadable);
    let shown = serde_json::to_string(&listing.records).unwrap();
    for s in &PERSONAL[..5] {
        assert!(shown.contains(s), "the listing shows {s}");
    }
    let audit = tenant_audit(vault).await;
    assert!(
        audit.iter().any(|r| r.actor == ACTOR),
        "vault audit shows the actor: {audit:?}"
    );
    assert!(
        audit.iter().any(|r| r.name.as_deref() == Some("primary")),
        "vault audit shows record names: {audit:?}"
    );
    let mut export = Vec::new();
    acme.export_json(&mut export).await.unwrap();
    let export = String::from_utf8(export).unwrap();
    for s in PERSONAL {
        assert!(export.contains(s), "the tenant's export holds {s}");
    }
}

async fn tenant_audit(vault: &Vault) -> Vec<credvault::backend::AuditRow> {
    vault
        .audit(&AuditQuery {
            tenant: Some(TenantId::new("acme").unwrap()),
            ..AuditQuery::default()
        })
        .await
        .unwrap()
}

/// Which of the personal strings `hay` holds.
fn found_in(hay: &[u8]) -> Vec<&'static str> {
    PERSONAL
        .iter()
        .copied()
        .filter(|s| hay.windows(s.len()).any(|w| w == s.as_bytes()))
        .collect()
}

/// The database file and its WAL, as bytes.
fn file_bytes(db: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(db).unwrap();
    if let Ok(wal) = std::fs::read(format!("{}-wal", db.display())) {
        bytes.extend(wal);
    }
    bytes
}

/// Copies the database file and its WAL (a backup taken while the vault runs).
fn copy_db(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    let wal = format!("{}-wal", from.display());
    if Path::new(&wal).exists() {
        std::fs::copy(&wal, format!("{}-wal", to.display())).unwrap();
    }
}

#[tokio::test]
async fn an_old_copy_of_the_sqlite_file_yields_nothing_personal_after_purge() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vault.db");
    let keyring = Keyring::generate().unwrap();
    let shred = Arc::new(MemoryTenantKeys::new());
    let clock = ManualClock::new(T0);
    let backend = SqliteBackend::connect(db.to_str().unwrap()).await.unwrap();
    let vault = Vault::builder(backend, keyring.clone(), Arc::clone(&shred))
        .clock(clock.clone())
        .build();
    vault.migrate().await.unwrap();
    fill(&vault).await;

    // The backup, taken before the purge.
    let backup = dir.path().join("backup.db");
    copy_db(&db, &backup);
    let found = found_in(&file_bytes(&backup));
    assert!(
        found.is_empty(),
        "the copy holds personal strings in clear: {found:?}"
    );

    vault.delete_tenant("acme", "admin:ops").await.unwrap();
    clock.advance(31 * DAY);
    let report = vault.purge().await.unwrap();
    assert_eq!(report.tenants.len(), 1);
    // The live audit log keeps the tenant's rows (its own retention), unreadable now.
    let audit = tenant_audit(&vault).await;
    assert!(!audit.is_empty());
    let shown = serde_json::to_string(&audit).unwrap();
    assert!(found_in(shown.as_bytes()).is_empty(), "{shown}");

    // The copy, opened with the live keys (the KEK and the shred-secret store), opens nothing.
    let restored = SqliteBackend::connect(backup.to_str().unwrap())
        .await
        .unwrap();
    let old = Vault::builder(restored, keyring, Arc::clone(&shred))
        .clock(clock.clone())
        .build();
    let acme = old.tenant("acme").unwrap();
    if let Ok(listing) = acme.list(None).await {
        assert!(listing.records.is_empty(), "{:?}", listing.records);
        assert_eq!(listing.unreadable.len(), 3);
    }
    let mut export = Vec::new();
    if acme
        .export_json_with(&mut export, ExportOptions::metadata_only())
        .await
        .is_ok()
    {
        assert!(found_in(&export).is_empty());
    }
    let old_audit = tenant_audit(&old).await;
    assert!(old_audit.iter().any(|r| r.actor == "?"), "{old_audit:?}");
    let shown = serde_json::to_string(&old_audit).unwrap();
    assert!(found_in(shown.as_bytes()).is_empty(), "{shown}");
}

#[tokio::test]
async fn metadata_written_in_clear_before_still_reads_and_is_sealed_on_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vault.db");
    let backend = Arc::new(SqliteBackend::connect(db.to_str().unwrap()).await.unwrap());
    let vault = Vault::builder(
        Arc::clone(&backend),
        Keyring::generate().unwrap(),
        MemoryTenantKeys::new(),
    )
    .build();
    vault.migrate().await.unwrap();
    let acme = vault.tenant("acme").unwrap();
    let token = OAuthToken {
        account: Some(PERSONAL[0].to_owned()),
        ..OAuthToken::bearer("google", SecretString::from("access"))
    };
    acme.put("primary", &token).await.unwrap();
    // As an earlier build wrote it: the metadata JSON in clear.
    sqlx::query("UPDATE credvault_secrets SET metadata = ?")
        .bind(r#"{"provider":"google","account":"legacy.clear@example.com"}"#)
        .execute(backend.pool())
        .await
        .unwrap();
    let listing = acme.list(None).await.unwrap();
    assert_eq!(
        listing.records[0].metadata["account"],
        "legacy.clear@example.com"
    );
    assert_eq!(
        acme.get::<OAuthToken>("primary").await.unwrap().value,
        token
    );
    acme.upsert("primary", &token).await.unwrap();
    let stored: String = sqlx::query_scalar("SELECT metadata FROM credvault_secrets")
        .fetch_one(backend.pool())
        .await
        .unwrap();
    assert!(stored.starts_with("cv1."), "{stored}");
    let listing = acme.list(None).await.unwrap();
    assert_eq!(listing.records[0].metadata["account"], PERSONAL[0]);
}

#[tokio::test]
async fn sealed_metadata_moved_to_another_row_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vault.db");
    let backend = Arc::new(SqliteBackend::connect(db.to_str().unwrap()).await.unwrap());
    let vault = Vault::builder(
        Arc::clone(&backend),
        Keyring::generate().unwrap(),
        MemoryTenantKeys::new(),
    )
    .build();
    vault.migrate().await.unwrap();
    let acme = vault.tenant("acme").unwrap();
    acme.put("a", &OAuthToken::bearer("google", SecretString::from("a")))
        .await
        .unwrap();
    acme.put("b", &OAuthToken::bearer("github", SecretString::from("b")))
        .await
        .unwrap();
    sqlx::query(
        "UPDATE credvault_secrets SET metadata = \
         (SELECT metadata FROM credvault_secrets WHERE name = 'a') WHERE name = 'b'",
    )
    .execute(backend.pool())
    .await
    .unwrap();
    let listing = acme.list(None).await.unwrap();
    assert_eq!(listing.records.len(), 1);
    assert_eq!(listing.unreadable.len(), 1);
    assert_eq!(listing.unreadable[0].name, "b");
    assert_eq!(listing.unreadable[0].reason.as_str(), "tampered");
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn a_postgres_snapshot_taken_before_purge_yields_nothing_personal() {
    let Some((pool, schema)) = common::postgres_schema().await else {
        return;
    };
    let backend = credvault::backend::PgBackend::from_pool(pool.clone())
        .with_schema(&schema)
        .unwrap();
    let clock = ManualClock::new(T0);
    let vault = Vault::builder(
        backend,
        Keyring::generate().unwrap(),
        MemoryTenantKeys::new(),
    )
    .clock(clock.clone())
    .build();
    vault.migrate().await.unwrap();
    fill(&vault).await;

    // Every row of every table of the vault, as text: what a dump holds.
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
    )
    .bind(&schema)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(tables.len() >= 9, "{tables:?}");
    let mut snapshot = String::new();
    for table in &tables {
        let sql = format!("SELECT row_to_json(t)::text FROM \"{schema}\".\"{table}\" t");
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(&pool)
            .await
            .unwrap();
        snapshot.push_str(&rows.join("\n"));
    }
    assert!(snapshot.contains("acme"), "the snapshot sees the tenant");
    let found = found_in(snapshot.as_bytes());
    assert!(
        found.is_empty(),
        "the snapshot holds personal strings in clear: {found:?}"
    );

    vault.delete_tenant("acme", "admin:ops").await.unwrap();
    clock.advance(31 * DAY);
    vault.purge().await.unwrap();
    let audit = tenant_audit(&vault).await;
    assert!(audit.iter().any(|r| r.actor == "?"), "{audit:?}");
    let shown = serde_json::to_string(&audit).unwrap();
    assert!(found_in(shown.as_bytes()).is_empty(), "{shown}");
    common::drop_postgres_schema(pool, schema).await;
}

// ---- SECURITY.md's column table against the live schema

/// The (table, column) pairs of SECURITY.md's table under "Personal data, column by column",
/// each with its treatment (`clear`, `pseudonymised`, `sealed`).
fn documented_columns() -> BTreeSet<(String, String)> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/SECURITY.md")).unwrap();
    let start = text
        .find("#### Personal data, column by column")
        .expect("SECURITY.md has the column table");
    let mut out = BTreeSet::new();
    for line in text[start..]
        .lines()
        .skip(1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
    {
        let cells: Vec<&str> = line.split('|').map(|c| c.trim()).collect();
        let (table, column, treatment) = (cells[1], cells[2], cells[3]);
        assert!(
            ["clear", "pseudonymised", "sealed"].contains(&treatment),
            "{table}.{column}: {treatment}"
        );
        if treatment == "clear" {
            assert!(!cells[4].is_empty(), "{table}.{column} is clear: say why");
        }
        assert!(
            out.insert((
                table.trim_matches('`').to_owned(),
                column.trim_matches('`').to_owned()
            )),
            "{table}.{column} listed twice"
        );
    }
    out
}

#[tokio::test]
async fn security_md_names_every_column_of_the_sqlite_schema() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vault.db");
    let backend = SqliteBackend::connect(db.to_str().unwrap()).await.unwrap();
    backend.migrate().await.unwrap();
    let live: Vec<(String, String)> = sqlx::query_as(
        "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name LIKE 'credvault%'",
    )
    .fetch_all(backend.pool())
    .await
    .unwrap();
    let live: BTreeSet<(String, String)> = live.into_iter().collect();
    assert_eq!(documented_columns(), live);
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn security_md_names_every_column_of_the_postgres_schema() {
    let Some((pool, schema)) = common::postgres_schema().await else {
        return;
    };
    let backend = credvault::backend::PgBackend::from_pool(pool.clone())
        .with_schema(&schema)
        .unwrap();
    backend.migrate().await.unwrap();
    let live: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = $1",
    )
    .bind(&schema)
    .fetch_all(&pool)
    .await
    .unwrap();
    let live: BTreeSet<(String, String)> = live.into_iter().collect();
    assert_eq!(documented_columns(), live);
    common::drop_postgres_schema(pool, schema).await;
}
