//! The vault's promises, one test body per promise, run unchanged over every backend:
//! memory always, SQLite with the `sqlite` feature, PostgreSQL with the `postgres` feature
//! (skipped with a message when no server is reachable, unless CREDVAULT_REQUIRE_POSTGRES=1),
//! and an encrypted SQLite file (desktop mode) when desktop/ runs it.
//! With the `aws-kms` feature the whole suite runs once more on SQLite with the KEK in AWS KMS
//! (moto's server; skipped with a message without it, unless CREDVAULT_REQUIRE_KMS=1).

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;
#[cfg(feature = "aws-kms")]
#[path = "common/moto.rs"]
mod moto;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use credvault::backend::{AuditQuery, Backend, BoxFuture, ListQuery, MemoryBackend, RecordKey};
use credvault::envelope::MemoryTenantKeys;
use credvault::keys::KeyProvider;
use credvault::store::{
    ApiKey, Cookie, DerivedData, ManualClock, OAuthToken, ReadAudit, RevocationFailure,
    RevocationRequest, RevokeError, Revoker, SecretKind, SessionCookies, StoreError, Vault,
};
use credvault::{Keyring, SecretString, TenantId};

const T0: i64 = 1_763_856_000;

/// A vault over `backend` with a manual clock, and the pieces a test needs to look behind it.
struct Fixture {
    vault: Vault,
    backend: Arc<dyn Backend>,
    clock: ManualClock,
    kek: Arc<dyn KeyProvider>,
    shred: Arc<MemoryTenantKeys>,
}

tokio::task_local! {
    /// The KEK a case's fixture uses instead of a fresh local keyring (the KMS variant).
    static KEK: Arc<dyn KeyProvider>;
}

async fn fixture(backend: Arc<dyn Backend>) -> Fixture {
    let clock = ManualClock::new(T0);
    let kek = KEK
        .try_with(Arc::clone)
        .unwrap_or_else(|_| Arc::new(Keyring::generate().unwrap()));
    let shred = Arc::new(MemoryTenantKeys::new());
    let vault = Vault::builder(Arc::clone(&backend), Arc::clone(&kek), Arc::clone(&shred))
        .clock(clock.clone())
        .build();
    vault.migrate().await.unwrap();
    Fixture {
        vault,
        backend,
        clock,
        kek,
        shred,
    }
}

fn token(access: &str, expires_at: Option<i64>) -> OAuthToken {
    OAuthToken {
        provider: "github".to_owned(),
        access_token: SecretString::from(access),
        refresh_token: Some(SecretString::from(format!("refresh-{access}"))),
        token_type: "Bearer".to_owned(),
        scopes: vec!["repo".to_owned(), "read:user".to_owned()],
        expires_at,
        account: Some("octocat".to_owned()),
    }
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct WebhookSecret {
    endpoint: String,
    #[serde(with = "credvault::secret::expose")]
    secret: SecretString,
}

impl SecretKind for WebhookSecret {
    const KIND: &'static str = "webhook_secret";
}

fn key(tenant: &str, kind: &str, name: &str) -> RecordKey {
    RecordKey {
        tenant: TenantId::new(tenant).unwrap(),
        kind: kind.try_into().unwrap(),
        name: name.try_into().unwrap(),
    }
}

/// The test bodies, each taking a fresh backend.
mod body {
    use super::*;

    pub(crate) async fn every_record_type_round_trips(b: Arc<dyn Backend>) {
        let f = fixture(b).await;
        let acme = f.vault.tenant("acme").unwrap();
        acme.put("github", &token("gho_a", Some(T0 + 3600)))
            .await
            .unwrap();
        let api = ApiKey {
            provider: "stripe".into(),
            key: "sk_live_1".into(),
            label: Some("billing".into()),
        };
        acme.put("stripe", &api).await.unwrap();
        let cookies = SessionCookies {
            provider: "linkedin".into(),
            cookies: vec![Cookie {
                name: "li_at".into(),
                value: "cookie-secret".into(),
                domain: ".linkedin.com".into(),
                path: "/".into(),
                expires_at: Some(T0 + 10),
            }],
        };
        acme.put("linkedin", &cookies).await.unwrap();
        let hook = WebhookSecret {
            endpoint: "https://example.com/hook".into(),
            secret: "whsec_1".into(),
        };
        acme.put("hook", &hook).await.unwrap();
        assert_eq!(
            acme.get::<OAuthToken>("github").await.unwrap().value,
            token("gho_a", Some(T0 + 3600))
        );
        assert_eq!(acme.get::<ApiKey>("stripe").await.unwrap().value, api);
        assert_eq!(
            acme.get::<SessionCookies>("linkedin").await.unwrap().value,
            cookies
        );
        assert_eq!(acme.get::<WebhookSecret>("hook").await.unwrap().value, hook);
        let list = acme.list(None).await.unwrap();
        assert_eq!(list.len(), 4);
        let gh = list.iter().find(|r| r.kind == "oauth_token").unwrap();
        assert_eq!(gh.metadata["account"], "octocat");
        assert_eq!(gh.expires_at, Some(T0 + 3600));
        assert_eq!(gh.provider.as_deref(), Some("github"));
        assert_eq!(
            list.iter()
                .find(|r| r.kind == "session_cookies")
                .unwrap()
                .expires_at,
            Some(T0 + 10)
        );
    }

    pub(crate) async fn secrets_and_metadata_are_sealed_and_listing_opens_the_metadata(
        b: Arc<dyn Backend>,
    ) {
        let f = fixture(b).await;
        let acme = f.vault.tenant("acme").unwrap();
        acme.put("github", &token("gho_SECRETVALUE", None))
            .await
            .unwrap();
        let row = f
            .backend
            .get(&key("acme", "oauth_token", "github"))
            .await
            .unwrap()
            .unwrap();
        let needle = b"gho_SECRETVALUE";
        assert!(!row.sealed.windows(needle.len()).any(|w| w == needle));
        assert!(!row.metadata.contains("SECRETVALUE") && !row.metadata.contains("refresh-"));
        // The metadata (the account name) is sealed too (issue 14, item 4); listing opens it.
        assert!(row.metadata.starts_with("cv1."), "{}", row.metadata);
        assert!(!row.metadata.contains("octocat"));
        let listing = acme.list(None).await.unwrap();
        assert!(listing.records[0].metadata.to_string().contains("octocat"));
        let tenant = f
            .backend
            .tenant(&TenantId::new("acme").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&tenant.wrapped_dek[..2], b"cv", "the DEK is stored wrapped");
        credvault::crypto::format::parse(&tenant.wrapped_dek).unwrap();
        if KEK.try_with(|_| ()).is_err() {
            // The local keyring's sealed format; a KMS's wrapped key carries its own blob.
            assert_eq!(tenant.wrapped_dek.len(), 32 + 36);
        }
    }

    pub(crate) async fn put_twice_is_already_exists_and_update_is_compare_and_swap(
        b: Arc<dyn Backend>,
    ) {
        let f = fixture(b).await;
        let acme = f.vault.tenant("acme").unwrap();
        let v1 = acme.put("github", &token("one", None)).await.unwrap();
        let again = acme.put("github", &token("two", None)).await.unwrap_err();
        assert!(matches!(again, StoreError::AlreadyExists { .. }), "{again}");
        let v2 = acme
            .update("github", &token("two", None), v1)
            .await
            .unwrap();
        assert_eq!(v2, v1 + 1);
        let stale = acme
            .update("github", &token("three", None), v1)
            .await
            .unwrap_err();
        assert!(
            matches!(stale, StoreError::Conflict { expected, .. } if expected == v1),
            "{stale}"
        );
        let got = acme.get::<OAuthToken>("github").await.unwrap();
        assert_eq!(got.value.access_token.expose_secret(), "two");
        assert_eq!(got.version, v2);
    }

    pub(crate) async fn concurrent_updates_lose_nothing(b: Arc<dyn Backend>) {
        let f = fixture(b).await;
        let acme = f.vault.tenant("acme").unwrap();
        acme.put(
            "counter",
            &DerivedData {
                provider: "x".into(),
                value: serde_json::json!(0),
            },
        )
        .await
        .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let acme = acme.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..5 {
                    loop {
                        let cur = acme.get::<DerivedData>("counter").await.unwrap();
                        let n = cur.value.value.as_i64().unwrap();
                        let next = DerivedData {
                            provider: "x".into(),
                            value: serde_json::json!(n + 1),
                        };
                        match acme.update("counter", &next, cur.version).await {
                            Ok(_) => break,
                            Err(StoreError::Conflict { .. }) => continue,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let end = acme.get::<DerivedData>("counter").await.unwrap();
        assert_eq!(
            end.value.value,
            serde_json::json!(40),
            "every increment is present"
        );
    }

    pub(crate) async fn tenants_are_isolated_even_against_copied_rows(b: Arc<dyn Backend>) {
        let f = fixture(b).await;
        let acme = f.vault.tenant("acme").unwrap();
        let globex = f.vault.tenant("globex").unwrap();
        acme.put("github", &token("acme-token", None))
            .await
            .unwrap();
        globex
            .put("github", &token("globex-token", None))
            .await
            .unwrap();
        globex
            .put("gitlab", &token("globex-gitlab", None))
            .await
            .unwrap();
        // Copy acme's ciphertext over globex's row (what a raw SQL UPDATE would do).
        let stolen = f
            .backend
            .get(&key("acme", "oauth_token", "github"))
            .await
            .unwrap()
            .unwrap();
        let mut target = f
            .backend
            .get(&key("globex", "oauth_token", "github"))
            .await
            .unwrap()
            .unwrap();
        target.sealed = stolen.sealed.clone();
        let v = target.version;
        target.version += 1;
        assert!(f.backend.update(&target, v, &[]).await.unwrap());
        let err = globex.get::<OAuthToken>("github").await.unwrap_err();
        assert!(
            matches!(&err, StoreError::CorruptRecord { tenant, name, .. } if tenant.as_str() == "globex" && name == "github"),
            "{err}"
        );
        assert!(!err.to_string().contains("acme-token"));
        // The other records keep working.
        assert_eq!(
            globex
                .get::<OAuthToken>("gitlab")
                .await
                .unwrap()
                .value
                .access_token
                .expose_secret(),
            "globex-gitlab"
        );
        assert_eq!(
            acme.get::<OAuthToken>("github")
                .await
                .unwrap()
                .value
                .access_token
                .expose_secret(),
            "acme-token"
        );
        // Moved to another name or kind of the same tenant: also refused.
        let mut renamed = stolen.clone();
        renamed.key = key("acme", "oauth_token", "github-copy");
        f.backend.insert(&renamed, &[]).await.unwrap();
        assert!(matches!(
            acme.get::<OAuthToken>("github-copy").await,
            Err(StoreError::CorruptRecord { .. })
        ));
        let mut rekinded = stolen;
        rekinded.key = key("acme", "api_key", "github");
        f.backend.insert(&rekinded, &[]).await.unwrap();
        assert!(matches!(
            acme.get::<ApiKey>("github").await,
            Err(StoreError::CorruptRecord { .. })
        ));
        // A handle only ever reaches its own tenant's rows.
        assert!(matches!(
            globex.get::<ApiKey>("stripe").await,
            Err(StoreError::NotFound { .. })
        ));
    }

    pub(crate) async fn bad_input_is_a_clear_error(b: Arc<dyn Backend>) {
        let f = fixture(b).await;
        assert!(matches!(f.vault.tenant(""), Err(StoreError::Id(_))));
        assert!(matches!(f.vault.tenant("a/b"), Err(StoreError::Id(_))));
        assert!(f.vault.tenant(&"t".repeat(128)).is_ok());
        assert!(matches!(
            f.vault.tenant(&"t".repeat(129)),
            Err(StoreError::Id(_))
        ));
        let acme = f.vault.tenant("acme").unwrap();
        assert!(matches!(
            acme.get::<OAuthToken>("github").await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            acme.put("", &token("x", None)).await,
            Err(StoreError::Id(_))
        ));
        assert!(matches!(
            acme.put(&"n".repeat(257), &token("x", None)).await,
            Err(StoreError::Id(_))
        ));
        assert!(matches!(
            acme.put("bad\nname", &token("x", None)).await,
            Err(StoreError::Id(_))
        ));
        acme.put(&"n".repeat(256), &token("x", None)).await.unwrap();
        assert!(matches!(
            acme.get::<OAuthToken>("missing").await,
            Err(StoreError::NotFound { .. })
        ));
        let big = DerivedData {
            provider: "x".into(),
            value: serde_json::json!("y".repeat(2 << 20)),
        };
        assert!(matches!(
            acme.put("big", &big).await,
            Err(StoreError::PayloadTooLarge { .. })
        ));
        // A corrupted row names its record and leaves the others readable.
        acme.put("ok", &token("fine", None)).await.unwrap();
        acme.put("broken", &token("doomed", None)).await.unwrap();
        let mut row = f
            .backend
            .get(&key("acme", "oauth_token", "broken"))
            .await
            .unwrap()
            .unwrap();
        let last = row.sealed.len() - 1;
        row.sealed[last] ^= 1;
        let v = row.version;
        row.version += 1;
        f.backend.update(&row, v, &[]).await.unwrap();
        let err = acme.get::<OAuthToken>("broken").await.unwrap_err();
        assert!(err.to_string().contains("\"broken\""), "{err}");
        assert!(acme.get::<OAuthToken>("ok").await.is_ok());
        // An export lists the unreadable record by name and still writes the others.
        let mut out = Vec::new();
        let report = acme.export_json(&mut out).await.unwrap();
        assert_eq!(report.unreadable, 1);
        let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(doc["unreadable"][0]["name"], "broken");
        assert_eq!(
            doc["records"].as_array().unwrap().len() as u64,
            report.records
        );
        assert!(
            doc["records"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["name"] == "ok")
        );
    }

    pub(crate) async fn refresh_runs_once_among_many_tasks(b: Arc<dyn Backend>) {
        let f = fixture(b).await;
        let acme = f.vault.tenant("acme").unwrap();
        acme.put("github", &token("old", Some(T0 + 30)))
            .await
            .unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let acme = acme.clone();
            let calls = Arc::clone(&calls);
            tasks.push(tokio::spawn(async move {
                acme.refresh("github", Duration::from_secs(300), |old| async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    assert_eq!(old.refresh_token.unwrap().expose_secret(), "refresh-old");
                    Ok::<_, String>(token("new", Some(T0 + 3600)))
                })
                .await
                .unwrap()
            }));
        }
        for t in tasks {
            let got = t.await.unwrap();
            assert_eq!(got.value.access_token.expose_secret(), "new");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "exactly one refresh ran");
        let fresh = acme
            .refresh("github", Duration::from_secs(300), |_| async {
                Err::<OAuthToken, _>("not called")
            })
            .await
            .unwrap();
        assert_eq!(fresh.value.access_token.expose_secret(), "new");
    }

    pub(crate) async fn failed_refresh_keeps_the_token_and_frees_the_lease(b: Arc<dyn Backend>) {
        let f = fixture(b).await;
        let acme = f.vault.tenant("acme").unwrap();
        acme.put("github", &token("old", Some(T0))).await.unwrap();
        let err = acme
            .refresh("github", Duration::from_secs(60), |_| async {
                Err::<OAuthToken, _>("provider said 400")
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::RefreshFailed(ref m) if m.to_string() == "provider said 400")
        );
        let again = acme
            .refresh("github", Duration::from_secs(60), |_| async {
                Ok::<_, String>(token("new", Some(T0 + 3600)))
            })
            .await
            .unwrap();
        assert_eq!(again.value.access_token.expose_secret(), "new");
    }

    #[derive(Debug, Default)]
    struct RecordingRevoker {
        seen: std::sync::Mutex<Vec<String>>,
        fail: bool,
    }

    impl Revoker for RecordingRevoker {
        fn revoke<'a>(
            &'a self,
            req: &'a RevocationRequest,
        ) -> BoxFuture<'a, Result<(), RevokeError>> {
            Box::pin(async move {
                let secret = match req.oauth_token() {
                    Some(t) => t.refresh_token.unwrap().expose_secret().to_owned(),
                    None => req.kind.clone(),
                };
                self.seen.lock().unwrap().push(secret);
                if self.fail {
                    Err(RevokeError("http 503".into()))
                } else {
                    Ok(())
                }
            })
        }
    }

    pub(crate) async fn disconnect_revokes_deletes_at_once_and_purges_derived_data_within_a_day(
        b: Arc<dyn Backend>,
    ) {
        let f = fixture(b).await;
        let acme = f.vault.tenant("acme").unwrap();
        acme.put("github", &token("a", None)).await.unwrap();
        acme.put("github-2", &token("b", None)).await.unwrap();
        acme.put(
            "boards",
            &DerivedData {
                provider: "github".into(),
                value: serde_json::json!([1, 2]),
            },
        )
        .await
        .unwrap();
        acme.put(
            "stripe",
            &ApiKey {
                provider: "stripe".into(),
                key: "sk".into(),
                label: None,
            },
        )
        .await
        .unwrap();
        let revoker = RecordingRevoker::default();
        let report = acme.disconnect("github", Some(&revoker)).await.unwrap();
        assert_eq!(report.deleted, 2);
        assert_eq!(report.revoked, 2);
        assert_eq!(report.derived_scheduled, 1);
        assert_eq!(report.derived_purge_after, Some(T0 + 86_400));
        assert_eq!(
            *revoker.seen.lock().unwrap(),
            vec!["refresh-a".to_owned(), "refresh-b".to_owned()]
        );
        assert!(matches!(
            acme.get::<OAuthToken>("github").await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(
            acme.get::<ApiKey>("stripe").await.is_ok(),
            "other providers untouched"
        );
        assert!(
            acme.get::<DerivedData>("boards").await.is_ok(),
            "derived data waits for the purge job"
        );
        f.clock.advance(Duration::from_secs(86_399));
        assert_eq!(f.vault.purge().await.unwrap().expired_records, 0);
        f.clock.advance(Duration::from_secs(1));
        assert_eq!(f.vault.purge().await.unwrap().expired_records, 1);
        assert!(matches!(
            acme.get::<DerivedData>("boards").await,
            Err(StoreError::NotFound { .. })
        ));
        let audit = f
            .vault
            .audit(&AuditQuery {
                tenant: Some(TenantId::new("acme").unwrap()),
                ..Default::default()
            })
            .await
            .unwrap();
        let actions: Vec<_> = audit
            .iter()
            .map(|r| (r.action.as_str(), r.name.as_deref().unwrap_or("")))
            .collect();
        assert!(
            actions.contains(&("revoke", "github"))
                && actions.contains(&("disconnect", "github-2"))
        );
        assert!(actions.contains(&("purge", "boards")));
    }

    pub(crate) async fn update_keeps_creation_time_and_a_scheduled_purge(b: Arc<dyn Backend>) {
        let f = fixture(b).await;
        let acme = f.vault.tenant("acme").unwrap();
        let data = |n: i64| DerivedData {
            provider: "github".into(),
            value: serde_json::json!(n),
        };
        let v = acme.put("boards", &data(1)).await.unwrap();
        acme.disconnect("github", None).await.unwrap();
        f.clock.advance(Duration::from_secs(3_600));
        let v = acme.update("boards", &data(2), v).await.unwrap();
        let info = acme.list(None).await.unwrap().records.remove(0);
        assert_eq!(info.created_at, T0, "creation time kept");
        assert_eq!(info.updated_at, T0 + 3_600);
        assert_eq!(
            info.purge_after,
            Some(T0 + 86_400),
            "an update never cancels a purge"
        );
        assert!(matches!(
            acme.update("boards", &data(3), v - 1).await,
            Err(StoreError::Conflict { .. })
        ));
        assert!(matches!(
            acme.update("missing", &data(3), 1).await,
            Err(StoreError::Conflict { .. })
        ));
        f.clock.advance(Duration::from_secs(86_400 - 3_600));
        assert_eq!(f.vault.purge().await.unwrap().expired_records, 1);
    }

    pub(crate) async fn failed_revocation_is_audited_and_does_not_keep_the_token(
        b: Arc<dyn Backend>,
    ) {
        let f = fixture(b).await;
        let acme = f.vault.tenant("acme").unwrap();
        acme.put("github", &token("a", None)).await.unwrap();
        let revoker = RecordingRevoker {
            fail: true,
            ..Default::default()
        };
        let report = acme.disconnect("github", Some(&revoker)).await.unwrap();
        assert_eq!(report.deleted, 1);
        assert_eq!(
            report.revocation_failures,
            vec![RevocationFailure {
                kind: "oauth_token".into(),
                name: "github".into(),
                reason: "http 503".into(),
            }]
        );
        assert!(matches!(
            acme.get::<OAuthToken>("github").await,
            Err(StoreError::NotFound { .. })
        ));
        let audit = f.vault.audit(&AuditQuery::default()).await.unwrap();
        assert!(
            audit
                .iter()
                .any(|r| r.action == "revoke" && r.outcome == "failed: http 503")
        );
        for r in &audit {
            assert!(
                !format!("{r:?}").contains("refresh-a"),
                "audit holds no secret"
            );
        }
    }

    pub(crate) async fn deleted_tenant_can_only_be_exported_or_restored_until_purged(
        b: Arc<dyn Backend>,
    ) {
        let f = fixture(b).await;
        let acme = f.vault.tenant("acme").unwrap();
        acme.put("github", &token("a", None)).await.unwrap();
        let api = ApiKey {
            provider: "stripe".to_owned(),
            key: SecretString::from("sk_live_a"),
            label: None,
        };
        acme.put("stripe", &api).await.unwrap();
        let purge_after = f.vault.delete_tenant("acme", "admin:bob").await.unwrap();
        assert_eq!(purge_after, T0 + 30 * 86_400);
        assert!(matches!(
            acme.get::<ApiKey>("stripe").await,
            Err(StoreError::TenantDeleted { .. })
        ));
        assert!(matches!(
            acme.put("x", &token("b", None)).await,
            Err(StoreError::TenantDeleted { .. })
        ));
        // The OAuth token went at once (issue 14: account deletion revokes and removes the
        // tokens); the rest is exportable and restorable.
        let mut out = Vec::new();
        assert_eq!(acme.export_json(&mut out).await.unwrap().records, 1);
        f.vault.restore_tenant("acme", "admin:bob").await.unwrap();
        assert_eq!(acme.get::<ApiKey>("stripe").await.unwrap().value, api);
        assert!(matches!(
            acme.get::<OAuthToken>("github").await,
            Err(StoreError::NotFound { .. })
        ));
        f.vault.delete_tenant("acme", "admin:bob").await.unwrap();
        f.clock.advance(Duration::from_secs(30 * 86_400 - 1));
        assert!(
            f.vault.purge().await.unwrap().tenants.is_empty(),
            "not before the grace period ends"
        );
        f.clock.advance(Duration::from_secs(1));
        let report = f.vault.purge().await.unwrap();
        assert_eq!(report.tenants, vec![TenantId::new("acme").unwrap()]);
        assert_eq!(report.tenant_records, 1);
        assert!(matches!(
            acme.get::<OAuthToken>("github").await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            f.vault.restore_tenant("acme", "admin:bob").await,
            Err(StoreError::UnknownTenant(_))
        ));
    }

    pub(crate) async fn copy_taken_before_purge_cannot_be_read_after_it(b: Arc<dyn Backend>) {
        let f = fixture(b).await;
        let acme = f.vault.tenant("acme").unwrap();
        let globex = f.vault.tenant("globex").unwrap();
        acme.put("github", &token("acme-secret", None))
            .await
            .unwrap();
        globex
            .put("github", &token("globex-secret", None))
            .await
            .unwrap();
        // A logical copy of every row (what pg_dump or a replica holds), taken before the purge.
        let copy = Arc::new(MemoryBackend::new());
        copy.migrate().await.unwrap();
        for t in ["acme", "globex"] {
            let id = TenantId::new(t).unwrap();
            copy.insert_tenant(&f.backend.tenant(&id).await.unwrap().unwrap(), &[])
                .await
                .unwrap();
            let q = ListQuery {
                tenant: id,
                kind: None,
                provider: None,
                after: None,
                limit: 100,
            };
            for row in f.backend.list(&q).await.unwrap() {
                copy.insert(&row.unwrap(), &[]).await.unwrap();
            }
        }
        let old = Vault::builder(Arc::clone(&copy), Arc::clone(&f.kek), Arc::clone(&f.shred))
            .clock(f.clock.clone())
            .build();
        assert!(
            old.tenant("acme")
                .unwrap()
                .get::<OAuthToken>("github")
                .await
                .is_ok(),
            "the copy opens before the purge"
        );
        f.vault.delete_tenant("acme", "admin").await.unwrap();
        f.clock.advance(Duration::from_secs(31 * 86_400));
        f.vault.purge().await.unwrap();
        // Same KEK, same shred store, the copy's rows intact: acme is gone for good.
        let old = Vault::builder(Arc::clone(&copy), Arc::clone(&f.kek), Arc::clone(&f.shred))
            .clock(f.clock.clone())
            .build();
        let err = old
            .tenant("acme")
            .unwrap()
            .get::<OAuthToken>("github")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::TenantShredded(_)), "{err}");
        assert_eq!(
            old.tenant("globex")
                .unwrap()
                .get::<OAuthToken>("github")
                .await
                .unwrap()
                .value
                .access_token
                .expose_secret(),
            "globex-secret"
        );
    }

    pub(crate) async fn audit_records_changes_and_reads_with_actor_and_is_trimmed(
        b: Arc<dyn Backend>,
    ) {
        let f = fixture(b).await;
        let acme = f
            .vault
            .tenant("acme")
            .unwrap()
            .with_actor("user:42")
            .unwrap();
        let v = acme.put("github", &token("a", None)).await.unwrap();
        acme.get::<OAuthToken>("github").await.unwrap();
        acme.update("github", &token("b", None), v).await.unwrap();
        acme.delete::<OAuthToken>("github").await.unwrap();
        let rows = f.vault.audit(&AuditQuery::default()).await.unwrap();
        let mut actions: Vec<_> = rows.iter().map(|r| r.action.as_str()).collect();
        // Buffered read events reach the log after the changes made meanwhile; their time
        // is the time of the read.
        actions.sort_unstable();
        assert_eq!(actions, ["delete", "get", "put", "tenant_create", "update"]);
        assert!(rows.iter().all(|r| r.actor == "user:42" && r.at == T0));
        f.clock.advance(Duration::from_secs(90 * 86_400));
        acme.put("gitlab", &token("c", None)).await.unwrap();
        assert_eq!(
            f.vault.purge().await.unwrap().audit_rows,
            0,
            "kept for 90 days"
        );
        f.clock.advance(Duration::from_secs(1));
        assert_eq!(f.vault.purge().await.unwrap().audit_rows, 5);
        let left = f.vault.audit(&AuditQuery::default()).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].name.as_deref(), Some("gitlab"));
    }

    pub(crate) async fn reads_are_audited_in_batches_or_synchronously(b: Arc<dyn Backend>) {
        let f = fixture(b).await;
        let acme = f.vault.tenant("acme").unwrap();
        acme.put("github", &token("a", None)).await.unwrap();
        for _ in 0..10 {
            acme.get::<OAuthToken>("github").await.unwrap();
        }
        let gets = |rows: Vec<credvault::backend::AuditRow>| {
            rows.iter().filter(|r| r.action == "get").count()
        };
        assert_eq!(
            gets(f.backend.audit(&AuditQuery::default()).await.unwrap()),
            0,
            "buffered, not yet written"
        );
        f.vault.flush_audit().await.unwrap();
        assert_eq!(
            gets(f.backend.audit(&AuditQuery::default()).await.unwrap()),
            10
        );
        let sync = Vault::builder(
            Arc::clone(&f.backend),
            Arc::clone(&f.kek),
            Arc::clone(&f.shred),
        )
        .clock(f.clock.clone())
        .read_audit(ReadAudit::Synchronous)
        .build();
        sync.tenant("acme")
            .unwrap()
            .get::<OAuthToken>("github")
            .await
            .unwrap();
        assert_eq!(
            gets(f.backend.audit(&AuditQuery::default()).await.unwrap()),
            11
        );
    }

    pub(crate) async fn export_round_trips_as_json_and_csv(b: Arc<dyn Backend>) {
        let f = fixture(b).await;
        let acme = f.vault.tenant("acme").unwrap();
        for i in 0..450 {
            acme.put(
                &format!("gh-{i:03}"),
                &token(&format!("tok-{i}"), Some(T0 + i)),
            )
            .await
            .unwrap();
        }
        acme.put(
            "=cmd",
            &ApiKey {
                provider: "x,y".into(),
                key: "k\"1".into(),
                label: None,
            },
        )
        .await
        .unwrap();
        let mut json = Vec::new();
        let report = acme.export_json(&mut json).await.unwrap();
        assert_eq!(report.records, 451);
        let doc: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(doc["tenant"], "acme");
        let records = doc["records"].as_array().unwrap();
        assert_eq!(records.len(), 451);
        let gh7 = records.iter().find(|r| r["name"] == "gh-007").unwrap();
        assert_eq!(gh7["payload"]["access_token"], "tok-7");
        assert_eq!(gh7["payload"]["refresh_token"], "refresh-tok-7");
        assert_eq!(gh7["metadata"]["account"], "octocat");
        let back: OAuthToken = serde_json::from_value(gh7["payload"].clone()).unwrap();
        assert_eq!(back, token("tok-7", Some(T0 + 7)));
        let mut csv = Vec::new();
        assert_eq!(acme.export_csv(&mut csv).await.unwrap().records, 451);
        let csv = String::from_utf8(csv).unwrap();
        assert_eq!(csv.lines().count(), 452);
        assert!(!csv.contains("tok-7"), "csv holds metadata only");
        assert!(
            csv.lines()
                .any(|l| l.starts_with("api_key,'=cmd,1,\"x,y\",")),
            "{}",
            csv.lines().nth(1).unwrap()
        );
        let audit = f.vault.audit(&AuditQuery::default()).await.unwrap();
        assert!(
            audit.iter().any(|r| r.action == "export_json")
                && audit.iter().any(|r| r.action == "export_csv")
        );
    }
}

macro_rules! conformance {
    ($backend:ident, $make:expr) => {
        conformance!($backend, $make, Some(None::<Arc<dyn KeyProvider>>));
    };
    ($backend:ident, $make:expr, $kek:expr) => {
        mod $backend {
            use super::*;

            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let Some(kek) = $kek else { return };
                        let Some(made) = $make else { return };
                        match kek {
                            Some(kek) => KEK.scope(kek, body::$name(made.backend())).await,
                            None => body::$name(made.backend()).await,
                        }
                        made.finish().await;
                    }
                };
            }

            case!(every_record_type_round_trips);
            case!(secrets_and_metadata_are_sealed_and_listing_opens_the_metadata);
            case!(put_twice_is_already_exists_and_update_is_compare_and_swap);
            case!(concurrent_updates_lose_nothing);
            case!(tenants_are_isolated_even_against_copied_rows);
            case!(bad_input_is_a_clear_error);
            case!(refresh_runs_once_among_many_tasks);
            case!(failed_refresh_keeps_the_token_and_frees_the_lease);
            case!(disconnect_revokes_deletes_at_once_and_purges_derived_data_within_a_day);
            case!(failed_revocation_is_audited_and_does_not_keep_the_token);
            case!(update_keeps_creation_time_and_a_scheduled_purge);
            case!(deleted_tenant_can_only_be_exported_or_restored_until_purged);
            case!(copy_taken_before_purge_cannot_be_read_after_it);
            case!(audit_records_changes_and_reads_with_actor_and_is_trimmed);
            case!(reads_are_audited_in_batches_or_synchronously);
            case!(export_round_trips_as_json_and_csv);
        }
    };
}

conformance!(memory, Some(common::Made::memory()));

#[cfg(feature = "sqlite")]
conformance!(sqlite, Some(common::sqlite_made().await));

#[cfg(feature = "postgres")]
conformance!(postgres, common::postgres_made().await);

// Desktop mode: the encrypted SQLite file. This file is also a module of desktop/'s test
// `vault_conformance` (`#[path]`), which links SQLCipher and sets this cfg.
#[cfg(credvault_sqlcipher)]
conformance!(sqlcipher, Some(common::sqlcipher_made().await));

/// A KEK in moto's KMS (a new key per case), or `None` to skip without moto.
#[cfg(feature = "aws-kms")]
fn kms_kek() -> Option<Option<Arc<dyn KeyProvider>>> {
    let endpoint = moto::endpoint()?;
    let (kms, _) = moto::provider_with_new_key(&endpoint);
    Some(Some(Arc::new(kms)))
}

#[cfg(all(feature = "aws-kms", feature = "sqlite"))]
conformance!(sqlite_on_kms, Some(common::sqlite_made().await), kms_kek());
