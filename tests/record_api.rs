//! The per-record API of issue 13, item 3 and 4, on every backend (memory, a SQLite file,
//! PostgreSQL when reachable): `upsert`, one `NotFound` whatever the tenant's history, an
//! idempotent `delete_tenant`, an empty export for a tenant that never stored anything, and
//! an export without secrets.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use credvault::backend::{AuditQuery, Backend};
use credvault::envelope::MemoryTenantKeys;
use credvault::store::{ExportOptions, ManualClock, OAuthToken, StoreError, Vault};
use credvault::{Keyring, SecretString, TenantId};

const T0: i64 = 1_763_856_000;

fn token(access: &str) -> OAuthToken {
    OAuthToken::bearer("github", SecretString::from(access))
}

/// Every backend this build has: memory, a SQLite file, and PostgreSQL if reachable.
async fn backends() -> Vec<common::Made> {
    let mut out = vec![common::Made::memory()];
    #[cfg(feature = "sqlite")]
    out.push(common::sqlite_made().await);
    #[cfg(feature = "postgres")]
    out.extend(common::postgres_made().await);
    out
}

async fn vault(backend: Arc<dyn Backend>, clock: &ManualClock) -> Vault {
    let vault = Vault::builder(
        backend,
        Keyring::generate().unwrap(),
        MemoryTenantKeys::new(),
    )
    .clock(clock.clone())
    .build();
    vault.migrate().await.unwrap();
    vault
}

async fn actions(vault: &Vault, tenant: &str) -> Vec<String> {
    let query = AuditQuery {
        tenant: Some(TenantId::new(tenant).unwrap()),
        ..AuditQuery::default()
    };
    let rows = vault.audit(&query).await.unwrap();
    rows.into_iter().map(|r| r.action.to_string()).collect()
}

#[tokio::test]
async fn upsert_inserts_then_replaces_bumping_the_version() {
    for made in backends().await {
        let clock = ManualClock::new(T0);
        let vault = vault(made.backend(), &clock).await;
        let acme = vault.tenant("acme").unwrap();
        assert_eq!(acme.upsert("github", &token("a")).await.unwrap(), 1);
        clock.advance(Duration::from_secs(10));
        assert_eq!(acme.upsert("github", &token("b")).await.unwrap(), 2);
        let got = acme.get::<OAuthToken>("github").await.unwrap();
        assert_eq!(got.value.access_token.expose_secret(), "b");
        assert_eq!(got.version, 2);
        let info = acme.list(None).await.unwrap();
        assert_eq!((info[0].created_at, info[0].updated_at), (T0, T0 + 10));
        // The version it returns is the compare-and-swap token.
        assert_eq!(acme.update("github", &token("c"), 2).await.unwrap(), 3);
        assert_eq!(acme.upsert("github", &token("d")).await.unwrap(), 4);
        let upserts = actions(&vault, "acme").await;
        assert_eq!(upserts.iter().filter(|a| *a == "upsert").count(), 3);
        made.finish().await;
    }
}

#[tokio::test]
async fn no_such_record_is_not_found_whatever_the_tenant_history() {
    for made in backends().await {
        let clock = ManualClock::new(T0);
        let vault = vault(made.backend(), &clock).await;
        let acme = vault.tenant("acme").unwrap();
        // Never stored anything.
        let never = acme.get::<OAuthToken>("github").await.unwrap_err();
        assert!(matches!(never, StoreError::NotFound { .. }), "{never}");
        let never_update = acme.update("github", &token("x"), 1).await.unwrap_err();
        assert!(
            matches!(never_update, StoreError::NotFound { .. }),
            "{never_update}"
        );
        assert!(!acme.delete::<OAuthToken>("github").await.unwrap());
        assert!(acme.list(None).await.unwrap().is_empty());
        let report = acme.disconnect("github", None).await.unwrap();
        assert_eq!(report.deleted, 0);
        // Stored something else: the same error.
        acme.put("gitlab", &token("y")).await.unwrap();
        let missing = acme.get::<OAuthToken>("github").await.unwrap_err();
        assert!(matches!(missing, StoreError::NotFound { .. }), "{missing}");
        assert_eq!(never.to_string(), missing.to_string());
        assert!(never.is_not_found() && missing.is_not_found());
        made.finish().await;
    }
}

#[tokio::test]
async fn delete_tenant_is_idempotent() {
    for made in backends().await {
        let clock = ManualClock::new(T0);
        let vault = vault(made.backend(), &clock).await;
        // Nothing stored: nothing to delete, and no error.
        assert_eq!(vault.delete_tenant("nobody", "admin").await.unwrap(), T0);
        assert!(actions(&vault, "nobody").await.is_empty());
        let acme = vault.tenant("acme").unwrap();
        acme.put("github", &token("a")).await.unwrap();
        let first = vault.delete_tenant("acme", "admin").await.unwrap();
        clock.advance(Duration::from_secs(3600));
        // Again: the first purge time stands (the grace period is not extended).
        assert_eq!(vault.delete_tenant("acme", "admin").await.unwrap(), first);
        let deletes = actions(&vault, "acme").await;
        assert_eq!(deletes.iter().filter(|a| *a == "tenant_delete").count(), 1);
        made.finish().await;
    }
}

#[tokio::test]
async fn a_tenant_that_never_stored_anything_exports_empty() {
    for made in backends().await {
        let clock = ManualClock::new(T0);
        let vault = vault(made.backend(), &clock).await;
        let nobody = vault.tenant("nobody").unwrap();
        let mut out = Vec::new();
        let report = nobody.export_json(&mut out).await.unwrap();
        assert_eq!((report.records, report.unreadable), (0, 0));
        let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(doc["tenant"], "nobody");
        assert_eq!(doc["records"], serde_json::json!([]));
        assert_eq!(doc["unreadable"], serde_json::json!([]));
        let mut csv = Vec::new();
        assert_eq!(nobody.export_csv(&mut csv).await.unwrap().records, 0);
        assert_eq!(csv, credvault::store::CSV_HEADER.as_bytes());
        made.finish().await;
    }
}

#[tokio::test]
async fn an_export_without_secrets_decrypts_nothing() {
    for made in backends().await {
        let clock = ManualClock::new(T0);
        let vault = vault(made.backend(), &clock).await;
        let acme = vault.tenant("acme").unwrap();
        acme.put("github", &token("gho_SECRET_VALUE"))
            .await
            .unwrap();
        let mut out = Vec::new();
        let report = acme
            .export_json_with(&mut out, ExportOptions::metadata_only())
            .await
            .unwrap();
        assert_eq!(report.records, 1);
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("gho_SECRET_VALUE"), "a secret in the export");
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let record = &doc["records"][0];
        assert_eq!(record["name"], "github");
        assert_eq!(record["provider"], "github");
        assert!(record.get("payload").is_none());
        assert_eq!(
            actions(&vault, "acme").await.last().unwrap(),
            "export_metadata"
        );
        // The default still exports the secrets.
        let mut full = Vec::new();
        acme.export_json(&mut full).await.unwrap();
        assert!(
            String::from_utf8(full)
                .unwrap()
                .contains("gho_SECRET_VALUE")
        );
        made.finish().await;
    }
}
