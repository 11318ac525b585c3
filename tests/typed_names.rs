//! Typed names instead of strings (issue 12): audit actions, key kinds, failure lists and the
//! refresh closure's error; and every report serialises with its documented field names
//! (issue 13).

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::error::Error as _;
use std::fmt;
use std::time::Duration;

use credvault::backend::{AuditAction, AuditQuery, MemoryBackend};
use credvault::envelope::MemoryTenantKeys;
use credvault::store::{
    ApiKey, DisconnectReport, KeyKind, ManualClock, OAuthToken, RevocationFailure, StoreError,
    Vault,
};
use credvault::{KeyVersion, Keyring, SecretString};
use serde_json::json;

const T0: i64 = 1_763_856_000;

fn token(access: &str, expires_at: Option<i64>) -> OAuthToken {
    OAuthToken {
        refresh_token: Some(SecretString::from(format!("refresh-{access}"))),
        expires_at,
        ..OAuthToken::bearer("github", SecretString::from(access))
    }
}

async fn vault() -> Vault {
    let vault = Vault::builder(
        MemoryBackend::new(),
        Keyring::generate().unwrap(),
        MemoryTenantKeys::new(),
    )
    .clock(ManualClock::new(T0))
    .build();
    vault.migrate().await.unwrap();
    vault
}

/// The application's own error type, as a refresh closure returns it.
#[derive(Debug)]
struct ProviderError {
    status: u16,
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "token endpoint said {}", self.status)
    }
}

impl std::error::Error for ProviderError {}

#[tokio::test]
async fn a_failed_refresh_keeps_the_application_error_as_its_source() {
    let vault = vault().await;
    let acme = vault.tenant("acme").unwrap();
    acme.put("github", &token("old", Some(T0))).await.unwrap();
    let err = acme
        .refresh("github", Duration::from_secs(60), |_| async {
            Err::<OAuthToken, _>(ProviderError { status: 400 })
        })
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "refresh failed: token endpoint said 400");
    let source = err.source().expect("the closure's error is the source");
    let provider = source
        .downcast_ref::<ProviderError>()
        .expect("the application's own type");
    assert_eq!(provider.status, 400);
}

#[tokio::test]
async fn key_in_use_names_the_kind_of_key_as_a_type() {
    let vault = vault().await;
    let acme = vault.tenant("acme").unwrap();
    let key = ApiKey {
        provider: "stripe".into(),
        key: "sk_x".into(),
        label: None,
    };
    acme.put("stripe", &key).await.unwrap();
    vault.rotate_dek("acme").await.unwrap();
    let err = vault
        .destroy_dek("acme", KeyVersion::new(1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::KeyInUse {
                what: KeyKind::Dek,
                count: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "dek version v1 is still needed by 1 records"
    );
}

#[tokio::test]
async fn audit_rows_carry_typed_actions_and_serialise_as_their_names() {
    let vault = vault().await;
    let acme = vault.tenant("acme").unwrap();
    acme.put("github", &token("a", None)).await.unwrap();
    vault.delete_tenant("acme", "admin:bob").await.unwrap();
    let rows = vault.audit(&AuditQuery::default()).await.unwrap();
    let actions: Vec<&AuditAction> = rows.iter().map(|r| &r.action).collect();
    assert_eq!(
        actions,
        [
            &AuditAction::TenantCreate,
            &AuditAction::Put,
            &AuditAction::TenantDelete,
            // Deleting a tenant removes its OAuth tokens at once (unrevoked: no revoker here).
            &AuditAction::Delete,
        ]
    );
    assert_eq!(
        serde_json::to_value(&rows[2]).unwrap(),
        json!({
            "at": T0,
            "tenant": "acme",
            "kind": null,
            "name": null,
            "action": "tenant_delete",
            "actor": "admin:bob",
            "outcome": "ok",
        })
    );
}

#[tokio::test]
async fn reports_serialise_with_their_documented_field_names() {
    let report = DisconnectReport {
        deleted: 2,
        revoked: 1,
        revocation_failures: vec![RevocationFailure {
            kind: "oauth_token".into(),
            name: "github".into(),
            reason: "http 503".into(),
        }],
        derived_scheduled: 0,
        derived_purge_after: None,
        unreadable: Vec::new(),
    };
    assert_eq!(
        serde_json::to_value(&report).unwrap(),
        json!({
            "deleted": 2,
            "revoked": 1,
            "revocation_failures": [
                { "kind": "oauth_token", "name": "github", "reason": "http 503" }
            ],
            "derived_scheduled": 0,
            "derived_purge_after": null,
            "unreadable": [],
        })
    );

    let vault = vault().await;
    let acme = vault.tenant("acme").unwrap();
    acme.put("github", &token("a", Some(T0 + 60)))
        .await
        .unwrap();
    let info = acme.list(None).await.unwrap();
    assert_eq!(
        serde_json::to_value(&info).unwrap(),
        json!({"records": [{
            "kind": "oauth_token",
            "name": "github",
            "version": 1,
            "provider": "github",
            "metadata": info[0].metadata,
            "created_at": T0,
            "updated_at": T0,
            "expires_at": T0 + 60,
            "purge_after": null,
        }], "unreadable": []})
    );
    vault.rotate_dek("acme").await.unwrap();
    let reencrypt = vault.reencrypt(&Default::default(), |_| {}).await.unwrap();
    let value = serde_json::to_value(&reencrypt).unwrap();
    assert_eq!(value["resealed"], 1);
    assert_eq!(value["failures"], json!([]));
    let purge = vault.purge().await.unwrap();
    assert_eq!(
        serde_json::to_value(&purge).unwrap(),
        json!({
            "oldest_overdue_seconds": 0,
            "tokens_revoked": 0,
            "tokens_removed": 0,
            "revocation_failures": 0,
            "tenants": [],
            "tenant_records": 0,
            "expired_records": 0,
            "audit_rows": 0,
            "unreadable": [],
        })
    );
}

#[tokio::test]
async fn reencrypt_failures_serialise_flat_with_the_record_key() {
    let vault = vault().await;
    let acme = vault.tenant("acme").unwrap();
    acme.put("github", &token("a", None)).await.unwrap();
    vault.rotate_dek("acme").await.unwrap();
    vault
        .set_min_dek_version("acme", KeyVersion::new(2))
        .await
        .unwrap();
    let report = vault.reencrypt(&Default::default(), |_| {}).await.unwrap();
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].key.name.as_str(), "github");
    let value = serde_json::to_value(&report.failures[0]).unwrap();
    assert_eq!(value["tenant"], "acme");
    assert_eq!(value["kind"], "oauth_token");
    assert_eq!(value["name"], "github");
    assert!(
        value["reason"]
            .as_str()
            .unwrap()
            .contains("below the tenant's minimum"),
        "{value}"
    );
}

/// Rows written before actions were a type (or by a newer build) read back: known names as
/// their action, unknown ones as `Other`, never an error.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn stored_action_names_read_back_typed_and_unknown_ones_are_kept() {
    use credvault::backend::{Backend as _, SqliteBackend};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("v.db").display());
    let backend = SqliteBackend::connect(&url).await.unwrap();
    backend.migrate().await.unwrap();
    for (at, action) in [
        (1, "login_lockout"),
        (2, "dek_rewrap"),
        (3, "app_sso_login"),
    ] {
        sqlx::query(
            "INSERT INTO credvault_audit (at, tenant_id, kind, name, action, actor, outcome) \
             VALUES (?, NULL, NULL, NULL, ?, 'old-build', 'ok')",
        )
        .bind(at)
        .bind(action)
        .execute(backend.pool())
        .await
        .unwrap();
    }
    let rows = backend.audit(&AuditQuery::default()).await.unwrap();
    assert_eq!(rows[0].action, AuditAction::LoginLockout);
    assert_eq!(rows[1].action, AuditAction::DekRewrap);
    assert!(matches!(rows[2].action, AuditAction::Other(_)));
    assert_eq!(rows[2].action.as_str(), "app_sso_login");
    // Written back as it was read.
    backend.append_audit(&rows[2..]).await.unwrap();
    let again = backend.audit(&AuditQuery::default()).await.unwrap();
    assert_eq!(again[3].action.as_str(), "app_sso_login");
}
