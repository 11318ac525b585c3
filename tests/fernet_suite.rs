//! The Fernet sealing suite (issue 15, item 1), one test body per promise, run over every
//! backend (memory, SQLite, and PostgreSQL when reachable; CREDVAULT_REQUIRE_POSTGRES=1
//! forbids skipping it): records round-trip under either suite, every stored payload of the
//! Fernet suite is a Fernet token bound to its record, reads accept both suites, the
//! re-encryption job moves records between suites both ways, export / import / shredding
//! work for Fernet records, and the tenant's Fernet key export is audited.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use std::sync::Arc;

use credvault::backend::{AuditQuery, Backend, RecordKey};
use credvault::crypto::{Context, Fernet, MultiFernet, SealingSuite};
use credvault::envelope::MemoryTenantKeys;
use credvault::store::{
    ApiKey, ManualClock, OAuthToken, ReencryptOptions, RotationPolicy, StoreError, Vault,
};
use credvault::{Keyring, SecretString, TenantId};

const T0: i64 = 1_763_856_000;

/// One backend, key and tenant-key store, from which vaults of either suite are built (as
/// two processes of one application configured differently would be).
struct Fixture {
    backend: Arc<dyn Backend>,
    clock: ManualClock,
    kek: Arc<Keyring>,
    shred: Arc<MemoryTenantKeys>,
}

impl Fixture {
    async fn new(backend: Arc<dyn Backend>) -> Self {
        let f = Self {
            backend,
            clock: ManualClock::new(T0),
            kek: Arc::new(Keyring::generate().unwrap()),
            shred: Arc::new(MemoryTenantKeys::new()),
        };
        f.vault(SealingSuite::Aes256Gcm).migrate().await.unwrap();
        f
    }

    fn builder(&self) -> credvault::store::VaultBuilder {
        Vault::builder(
            Arc::clone(&self.backend),
            Arc::clone(&self.kek),
            Arc::clone(&self.shred),
        )
        .clock(self.clock.clone())
    }

    fn vault(&self, suite: SealingSuite) -> Vault {
        self.builder().sealing_suite(suite).build()
    }

    async fn sealed(&self, tenant: &str, kind: &str, name: &str) -> Vec<u8> {
        self.backend
            .get(&key(tenant, kind, name))
            .await
            .unwrap()
            .unwrap()
            .sealed
    }
}

fn key(tenant: &str, kind: &str, name: &str) -> RecordKey {
    RecordKey {
        tenant: TenantId::new(tenant).unwrap(),
        kind: kind.try_into().unwrap(),
        name: name.try_into().unwrap(),
    }
}

fn token(access: &str) -> OAuthToken {
    OAuthToken {
        refresh_token: Some(SecretString::from(format!("refresh-{access}"))),
        scopes: vec!["repo".to_owned()],
        account: Some("octocat".to_owned()),
        ..OAuthToken::bearer("github", SecretString::from(access))
    }
}

fn api_key(value: &str) -> ApiKey {
    ApiKey {
        provider: "stripe".to_owned(),
        key: SecretString::from(value),
        label: None,
    }
}

/// The record's JSON out of a Fernet payload, after checking the bound context, as a Python
/// service does with the exported key (README, "Sealing with Fernet").
fn open_as_python_would(keys: &MultiFernet, sealed: &[u8], parts: [&str; 3]) -> Vec<u8> {
    let plain = keys.decrypt(sealed).unwrap();
    let mut rest = plain.expose_secret();
    for part in parts {
        let (len, tail) = rest.split_at(4);
        let len = usize::try_from(u32::from_be_bytes(len.try_into().unwrap())).unwrap();
        assert_eq!(&tail[..len], part.as_bytes());
        rest = &tail[len..];
    }
    rest.to_vec()
}

mod body {
    use super::*;

    pub(crate) async fn records_round_trip_under_each_suite(b: Arc<dyn Backend>) {
        let f = Fixture::new(b).await;
        for (suite, tenant, first) in [
            (SealingSuite::Aes256Gcm, "gcm-tenant", &b"cv"[..]),
            (SealingSuite::Fernet, "fernet-tenant", &b"gAAAAA"[..]),
        ] {
            let vault = f.vault(suite);
            let t = vault.tenant(tenant).unwrap();
            t.put("github", &token("gho_1")).await.unwrap();
            t.put("stripe", &api_key("sk_1")).await.unwrap();
            let got = t.get::<OAuthToken>("github").await.unwrap();
            assert_eq!(got.value, token("gho_1"));
            t.update("github", &token("gho_2"), got.version)
                .await
                .unwrap();
            assert_eq!(
                t.get::<OAuthToken>("github").await.unwrap().value,
                token("gho_2")
            );
            t.upsert("stripe", &api_key("sk_2")).await.unwrap();
            assert_eq!(
                t.get::<ApiKey>("stripe").await.unwrap().value,
                api_key("sk_2")
            );
            assert_eq!(t.list(None).await.unwrap().len(), 2);
            for (kind, name) in [("oauth_token", "github"), ("api_key", "stripe")] {
                let sealed = f.sealed(tenant, kind, name).await;
                assert!(sealed.starts_with(first), "{suite}: {:?}", &sealed[..8]);
                assert_eq!(SealingSuite::of_sealed(&sealed), Some(suite));
                let text = String::from_utf8_lossy(&sealed);
                assert!(!text.contains("gho_2") && !text.contains("sk_2"));
            }
            assert!(t.delete::<ApiKey>("stripe").await.unwrap());
        }
        // A Fernet payload is a spec token under the tenant's exported key.
        let vault = f.vault(SealingSuite::Fernet);
        let export = vault
            .export_fernet_keys("fernet-tenant", "test")
            .await
            .unwrap();
        let keys = MultiFernet::new(
            export
                .keys
                .iter()
                .map(|k| Fernet::new(k.key.expose_secret()).unwrap())
                .collect(),
        )
        .unwrap();
        let sealed = f.sealed("fernet-tenant", "oauth_token", "github").await;
        let json = open_as_python_would(&keys, &sealed, ["fernet-tenant", "oauth_token", "github"]);
        let parsed: OAuthToken = serde_json::from_slice(&json).unwrap();
        assert_eq!(parsed, token("gho_2"));
        // Stamped with the vault's clock.
        assert_eq!(
            keys.extract_timestamp(&sealed).unwrap(),
            u64::try_from(T0).unwrap()
        );
    }

    pub(crate) async fn reads_accept_both_suites_and_kinds_choose_theirs(b: Arc<dyn Backend>) {
        let f = Fixture::new(b).await;
        let gcm = f.vault(SealingSuite::Aes256Gcm);
        let fernet = f.vault(SealingSuite::Fernet);
        gcm.tenant("acme")
            .unwrap()
            .put("a", &api_key("sk_gcm"))
            .await
            .unwrap();
        fernet
            .tenant("acme")
            .unwrap()
            .put("b", &api_key("sk_fernet"))
            .await
            .unwrap();
        for vault in [&gcm, &fernet] {
            let t = vault.tenant("acme").unwrap();
            assert_eq!(
                t.get::<ApiKey>("a")
                    .await
                    .unwrap()
                    .value
                    .key
                    .expose_secret(),
                "sk_gcm"
            );
            assert_eq!(
                t.get::<ApiKey>("b")
                    .await
                    .unwrap()
                    .value
                    .key
                    .expose_secret(),
                "sk_fernet"
            );
        }
        // Per kind: OAuth tokens with Fernet, everything else with the default.
        let mixed = f
            .builder()
            .kind_suite("oauth_token", SealingSuite::Fernet)
            .build();
        assert_eq!(
            mixed.config().suite_for("oauth_token"),
            SealingSuite::Fernet
        );
        let t = mixed.tenant("globex").unwrap();
        t.put("github", &token("gho_x")).await.unwrap();
        t.put("stripe", &api_key("sk_x")).await.unwrap();
        assert_eq!(
            SealingSuite::of_sealed(&f.sealed("globex", "oauth_token", "github").await),
            Some(SealingSuite::Fernet)
        );
        assert_eq!(
            SealingSuite::of_sealed(&f.sealed("globex", "api_key", "stripe").await),
            Some(SealingSuite::Aes256Gcm)
        );
        let report = mixed.key_report(&RotationPolicy::default()).await.unwrap();
        assert_eq!(report.records_by_suite[&SealingSuite::Fernet], 2);
        assert_eq!(report.records_by_suite[&SealingSuite::Aes256Gcm], 2);
        // Under this configuration acme's api key "b" is sealed with the wrong suite.
        assert_eq!(report.records_to_reseal, 1);
        assert!(!report.is_clean());
        let globex_dek = report
            .deks
            .iter()
            .find(|d| d.tenant.as_str() == "globex")
            .unwrap();
        assert_eq!(globex_dek.records_by_suite[&SealingSuite::Fernet], 1);
    }

    pub(crate) async fn a_fernet_token_moved_to_another_row_does_not_open(b: Arc<dyn Backend>) {
        let f = Fixture::new(b).await;
        let vault = f.vault(SealingSuite::Fernet);
        let acme = vault.tenant("acme").unwrap();
        acme.put("github", &token("acme-github")).await.unwrap();
        acme.put("gitlab", &token("acme-gitlab")).await.unwrap();
        vault
            .tenant("globex")
            .unwrap()
            .put("github", &token("globex-github"))
            .await
            .unwrap();
        let stolen = f.sealed("acme", "oauth_token", "github").await;
        // To another name of the same tenant (same key: only the bound context tells), to
        // another tenant, and garbage that starts like a token.
        for (tenant, name, payload) in [
            ("acme", "gitlab", stolen.clone()),
            ("globex", "github", stolen.clone()),
            ("acme", "gitlab", b"gAAAAAgarbage".to_vec()),
            ("acme", "gitlab", stolen[..stolen.len() - 4].to_vec()),
        ] {
            let mut row = f
                .backend
                .get(&key(tenant, "oauth_token", name))
                .await
                .unwrap()
                .unwrap();
            row.sealed = payload;
            let v = row.version;
            row.version += 1;
            assert!(f.backend.update(&row, v, &[]).await.unwrap());
            let err = vault
                .tenant(tenant)
                .unwrap()
                .get::<OAuthToken>(name)
                .await
                .unwrap_err();
            assert!(
                matches!(&err, StoreError::CorruptRecord { tenant: t, name: n, .. } if t.as_str() == tenant && n == name),
                "{err}"
            );
            assert!(!format!("{err} {err:?}").contains("acme-github"));
        }
        // Same key, right context: the crate's own open says the same.
        let export = vault.export_fernet_keys("acme", "test").await.unwrap();
        let fernet = Fernet::new(export.keys[0].key.expose_secret()).unwrap();
        let ctx = Context::record("acme", "oauth_token", "gitlab").unwrap();
        assert!(credvault::crypto::suite::fernet_open(&fernet, &stolen, &ctx).is_err());
    }

    pub(crate) async fn reencryption_moves_records_between_suites_both_ways(b: Arc<dyn Backend>) {
        let f = Fixture::new(b).await;
        let gcm = f.vault(SealingSuite::Aes256Gcm);
        let fernet = f.vault(SealingSuite::Fernet);
        let names: Vec<(String, String)> = (0..2)
            .flat_map(|t| (0..15).map(move |i| (format!("t{t}"), format!("k{i:02}"))))
            .collect();
        for (i, (t, n)) in names.iter().enumerate() {
            gcm.tenant(t)
                .unwrap()
                .put(n, &api_key(&format!("sk_{t}_{n}")))
                .await
                .unwrap();
            if i == 20 {
                // Some records under an old data key too.
                gcm.rotate_dek("t1").await.unwrap();
            }
        }
        let options = ReencryptOptions {
            batch_size: 7,
            ..ReencryptOptions::default()
        };
        for (vault, suite) in [
            (&fernet, SealingSuite::Fernet),
            (&gcm, SealingSuite::Aes256Gcm),
        ] {
            let before = vault.key_report(&RotationPolicy::default()).await.unwrap();
            assert_eq!(before.records_to_reseal, 30, "{suite}");
            let report = vault.reencrypt(&options, |_| {}).await.unwrap();
            assert_eq!(
                (
                    report.total,
                    report.resealed,
                    report.failed,
                    report.remaining
                ),
                (30, 30, 0, 0),
                "{suite}: {report:?}"
            );
            for (t, n) in &names {
                assert_eq!(
                    SealingSuite::of_sealed(&f.sealed(t, "api_key", n).await),
                    Some(suite)
                );
                let got = vault.tenant(t).unwrap().get::<ApiKey>(n).await.unwrap();
                assert_eq!(got.value.key.expose_secret(), format!("sk_{t}_{n}"));
                assert_eq!(got.version, 1, "re-encryption changed a record's version");
            }
            let after = vault.key_report(&RotationPolicy::default()).await.unwrap();
            assert_eq!(after.records_by_suite[&suite], 30);
            assert_eq!(after.records_to_reseal, 0);
            assert!(after.is_clean(), "{after:?}");
            // Nothing left: a second run reseals nothing.
            let again = vault.reencrypt(&options, |_| {}).await.unwrap();
            assert_eq!((again.total, again.resealed), (0, 0));
        }
        let audit = gcm.audit(&AuditQuery::default()).await.unwrap();
        assert!(audit.iter().any(|r| r.action == "reencrypt"));
    }

    pub(crate) async fn export_import_and_shredding_work_for_fernet_records(b: Arc<dyn Backend>) {
        let f = Fixture::new(b).await;
        let vault = f.vault(SealingSuite::Fernet);
        let acme = vault.tenant("acme").unwrap();
        acme.put("github", &token("gho_export")).await.unwrap();
        let mut out = Vec::new();
        let report = acme.export_json(&mut out).await.unwrap();
        assert_eq!(report.records, 1);
        assert!(String::from_utf8(out).unwrap().contains("gho_export"));
        // Import of legacy Fernet tokens lands sealed with the configured suite.
        let legacy_key = Fernet::generate_key();
        let legacy =
            MultiFernet::new(vec![Fernet::new(legacy_key.expose_secret()).unwrap()]).unwrap();
        let column = Fernet::new(legacy_key.expose_secret())
            .unwrap()
            .encrypt(b"gho_legacy");
        let rows = vec![credvault::store::LegacyValue::new(
            "acme",
            "legacy",
            credvault::store::LegacyPayload::from_column(column.into()),
        )];
        let imported = vault
            .import_fernet(&legacy, |plain, _| Ok(OAuthToken::bearer("github", plain)))
            .run(rows)
            .await
            .unwrap();
        assert_eq!(imported.imported, 1);
        assert_eq!(
            SealingSuite::of_sealed(&f.sealed("acme", "oauth_token", "legacy").await),
            Some(SealingSuite::Fernet)
        );
        // A copy of the row taken before the purge never opens after it.
        let copy = f
            .backend
            .get(&key("acme", "oauth_token", "github"))
            .await
            .unwrap()
            .unwrap();
        vault.delete_tenant("acme", "test").await.unwrap();
        assert!(matches!(
            vault.export_fernet_keys("acme", "test").await,
            Err(StoreError::TenantDeleted { .. })
        ));
        f.clock.advance(std::time::Duration::from_secs(31 * 86_400));
        vault.purge().await.unwrap();
        assert!(f.backend.get(&copy.key).await.unwrap().is_none());
        assert!(vault.export_fernet_keys("acme", "test").await.is_err());
        // The shred secret the Fernet key was derived from is gone.
        use credvault::envelope::TenantKeyStore as _;
        assert!(f.shred.get(&copy.key.tenant).unwrap().is_none());
    }

    pub(crate) async fn fernet_key_export_is_audited_and_follows_rotation(b: Arc<dyn Backend>) {
        let f = Fixture::new(b).await;
        let vault = f.vault(SealingSuite::Fernet);
        assert!(matches!(
            vault.export_fernet_keys("nobody", "ops:alice").await,
            Err(StoreError::UnknownTenant(_))
        ));
        let acme = vault.tenant("acme").unwrap();
        acme.put("old", &api_key("sk_old")).await.unwrap();
        vault.rotate_dek("acme").await.unwrap();
        acme.put("new", &api_key("sk_new")).await.unwrap();
        let export = vault.export_fernet_keys("acme", "ops:alice").await.unwrap();
        assert_eq!(
            export
                .keys
                .iter()
                .map(|k| k.dek_version.get())
                .collect::<Vec<_>>(),
            vec![2, 1],
            "current key first"
        );
        let debug = format!("{export:?}");
        for k in &export.keys {
            assert!(!debug.contains(k.key.expose_secret()), "{debug}");
        }
        let multi = MultiFernet::new(
            export
                .keys
                .iter()
                .map(|k| Fernet::new(k.key.expose_secret()).unwrap())
                .collect(),
        )
        .unwrap();
        for (name, value) in [("old", "sk_old"), ("new", "sk_new")] {
            let sealed = f.sealed("acme", "api_key", name).await;
            let json = open_as_python_would(&multi, &sealed, ["acme", "api_key", name]);
            let parsed: ApiKey = serde_json::from_slice(&json).unwrap();
            assert_eq!(parsed.key.expose_secret(), value);
        }
        // Another tenant's key does not open acme's tokens.
        vault
            .tenant("globex")
            .unwrap()
            .put("x", &api_key("sk"))
            .await
            .unwrap();
        let other = vault
            .export_fernet_keys("globex", "ops:alice")
            .await
            .unwrap();
        let other = Fernet::new(other.keys[0].key.expose_secret()).unwrap();
        assert!(
            other
                .decrypt(f.sealed("acme", "api_key", "new").await)
                .is_err()
        );
        let audit = vault
            .audit(&AuditQuery {
                tenant: Some(TenantId::new("acme").unwrap()),
                ..AuditQuery::default()
            })
            .await
            .unwrap();
        let rows: Vec<_> = audit
            .iter()
            .filter(|r| r.action == "fernet_key_export")
            .collect();
        assert_eq!(rows.len(), 1, "{audit:?}");
        assert_eq!(rows[0].actor, "ops:alice");
        assert_eq!(rows[0].outcome, "ok: data key versions v2, v1");
    }
}

macro_rules! suite_tests {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;

            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let Some(made) = $make else { return };
                        body::$name(made.backend()).await;
                        made.finish().await;
                    }
                };
            }

            case!(records_round_trip_under_each_suite);
            case!(reads_accept_both_suites_and_kinds_choose_theirs);
            case!(a_fernet_token_moved_to_another_row_does_not_open);
            case!(reencryption_moves_records_between_suites_both_ways);
            case!(export_import_and_shredding_work_for_fernet_records);
            case!(fernet_key_export_is_audited_and_follows_rotation);
        }
    };
}

suite_tests!(memory, Some(common::Made::memory()));

#[cfg(feature = "sqlite")]
suite_tests!(sqlite, Some(common::sqlite_made().await));

#[cfg(feature = "postgres")]
suite_tests!(postgres, common::postgres_made().await);
