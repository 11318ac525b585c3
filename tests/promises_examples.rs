//! The four policies of examples/promises/ as worked examples (issue 15 item 4): each file
//! builds a vault (a real SQLite file, or PostgreSQL for the cloud services) with a manual
//! clock; every promise in it is exercised; `check_promises` reports all kept; then one promise
//! is broken on purpose and the check reports it broken.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap freely"
)]

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Made;
use credvault::backend::BoxFuture;
use credvault::crypto::SealingSuite;
use credvault::envelope::MemoryTenantKeys;
use credvault::password::{InMemoryThrottle, LoginGuard, LoginOutcome, ThrottleConfig};
use credvault::promises::{PromiseInputs, PromiseReport, PromiseStatus, Promises};
use credvault::store::{
    Cookie, DAY, DerivedData, ManualClock, OAuthToken, PurgerConfig, PurgerStatus,
    ReencryptOptions, RevocationRequest, RevokeError, Revoker, SecretKind, SessionCookies, Vault,
};
use credvault::{Keyring, SecretString};
use serde::{Deserialize, Serialize};

const START: i64 = 1_780_000_000;

fn example(name: &str) -> Promises {
    let path = format!(
        "{}/examples/promises/{name}.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    Promises::from_path(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Records every revocation it is asked for.
#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Revoker for Recorder {
    fn revoke<'a>(
        &'a self,
        request: &'a RevocationRequest,
    ) -> BoxFuture<'a, Result<(), RevokeError>> {
        Box::pin(async move {
            self.0.lock().unwrap().push(request.name.clone());
            Ok(())
        })
    }
}

/// Cached analytics derived from a provider (the Kalpa policy's "cached Pinterest-derived
/// analytics"): a kind of its own, named derived data in the promise file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Analytics {
    provider: String,
    impressions: u64,
}

impl SecretKind for Analytics {
    const KIND: &'static str = "analytics";
    fn provider(&self) -> Option<&str> {
        Some(&self.provider)
    }
}

struct World {
    vault: Vault,
    clock: ManualClock,
    keyring: Keyring,
    tenant_keys: Arc<MemoryTenantKeys>,
    revoker: Recorder,
    purger: PurgerConfig,
    status: PurgerStatus,
}

impl World {
    async fn new(made: &Made, promises: &Promises) -> Self {
        let clock = ManualClock::new(START);
        let keyring = Keyring::generate().unwrap();
        let tenant_keys = Arc::new(MemoryTenantKeys::new());
        let revoker = Recorder::default();
        let vault = Vault::builder(made.backend(), keyring.clone(), Arc::clone(&tenant_keys))
            .promises(promises)
            .revoker(revoker.clone())
            .clock(clock.clone())
            .try_build()
            .unwrap();
        vault.migrate().await.unwrap();
        Self {
            vault,
            clock,
            keyring,
            tenant_keys,
            revoker,
            purger: PurgerConfig::every(Duration::from_secs(6 * 3600)),
            status: PurgerStatus::default(),
        }
    }

    fn now(&self) -> i64 {
        credvault::store::Clock::now(&self.clock)
    }

    /// Runs the purge as the runner would, every interval, until `until`; no run may find
    /// anything overdue.
    async fn run_purger_until(&mut self, until: i64) {
        let step = i64::try_from(self.purger.interval.as_secs()).unwrap();
        while self.now() + step <= until {
            self.clock.advance(self.purger.interval);
            self.purge_once().await;
        }
    }

    async fn purge_once(&mut self) {
        let report = self.vault.purge_on_schedule(&self.purger).await.unwrap();
        assert_eq!(
            report.oldest_overdue,
            Duration::ZERO,
            "a promise was missed"
        );
        self.status.runs += 1;
        self.status.last_started_at = Some(self.now());
        self.status.last_report = Some(report);
    }

    async fn check(&self, promises: &Promises, inputs: PromiseInputs) -> PromiseReport {
        let inputs = PromiseInputs {
            purger: Some((self.purger, self.status.clone())),
            ..inputs
        };
        self.vault.check_promises(promises, &inputs).await.unwrap()
    }
}

fn status(report: &PromiseReport, section: &str) -> PromiseStatus {
    report
        .promise(section)
        .unwrap_or_else(|| panic!("no {section} in {}", report.to_text()))
        .status
}

fn token(provider: &str, access: &str) -> OAuthToken {
    OAuthToken {
        refresh_token: Some(SecretString::from(format!("refresh-{access}"))),
        ..OAuthToken::bearer(provider, SecretString::from(access))
    }
}

async fn export_json(vault: &Vault, tenant: &str) -> serde_json::Value {
    let mut out = Vec::new();
    let report = vault
        .tenant(tenant)
        .unwrap()
        .export_json(&mut out)
        .await
        .unwrap();
    assert_eq!(report.unreadable, 0);
    serde_json::from_slice(&out).unwrap()
}

// ---- the marketing automation SaaS (Kalpa), on a SQLite file

async fn kalpa(made: Made) {
    let promises = example("kalpa-marketing");
    let mut w = World::new(&made, &promises).await;
    let acme = w.vault.tenant("acme").unwrap();

    // At rest: Fernet.
    acme.put("pinterest", &token("pinterest", "pina_1"))
        .await
        .unwrap();
    acme.put("stripe", &token("stripe", "sk_live_1"))
        .await
        .unwrap();
    let keys = w
        .vault
        .key_report(&promises.rotation_policy())
        .await
        .unwrap();
    assert_eq!(keys.records_by_suite[&SealingSuite::Fernet], 2);

    // Passwords: bcrypt cost 12.
    let policy = promises.password_policy().unwrap().unwrap();
    let hash = policy
        .hash(&SecretString::from("hunter2 but longer"))
        .unwrap();
    assert!(hash.starts_with("$2b$12$"), "{hash}");

    // Disconnect: revoked, deleted at once; derived analytics purged within 24 hours.
    let analytics = Analytics {
        provider: "pinterest".into(),
        impressions: 1234,
    };
    acme.put("boards", &analytics).await.unwrap();
    acme.put(
        "pins",
        &DerivedData {
            provider: "pinterest".into(),
            value: serde_json::json!(["pin-1"]),
        },
    )
    .await
    .unwrap();
    let disconnected_at = w.now();
    let report = acme
        .disconnect("pinterest", Some(&w.revoker))
        .await
        .unwrap();
    assert_eq!((report.revoked, report.deleted), (1, 1));
    assert_eq!(*w.revoker.0.lock().unwrap(), ["pinterest"]);
    assert!(
        acme.get::<OAuthToken>("pinterest")
            .await
            .unwrap_err()
            .is_not_found()
    );
    let deadline = disconnected_at + 86_400;
    while acme.get::<Analytics>("boards").await.is_ok() {
        assert!(w.now() < deadline, "derived data outlived its 24 hours");
        w.clock.advance(w.purger.interval);
        w.purge_once().await;
    }
    assert!(w.now() <= deadline);
    assert!(acme.get::<DerivedData>("pins").await.is_err());

    // Account deletion: tokens revoked at once; erased within 30 days.
    let globex = w.vault.tenant("globex").unwrap();
    globex
        .put("facebook", &token("facebook", "fb_1"))
        .await
        .unwrap();
    let deleted_at = w.now();
    w.vault
        .delete_tenant("globex", "user:globex-owner")
        .await
        .unwrap();
    assert!(w.revoker.0.lock().unwrap().contains(&"facebook".to_owned()));
    let check = w.check(&promises, PromiseInputs::default()).await;
    let pending = &check.promise("account_deletion").unwrap().evidence["accounts_pending_erasure"];
    assert_eq!(pending[0]["tenant"], "globex", "{}", check.to_text());
    w.run_purger_until(deleted_at + 30 * 86_400).await;
    assert!(
        w.vault.tenant("globex").unwrap().list(None).await.is_err()
            || w.vault
                .tenant("globex")
                .unwrap()
                .list(None)
                .await
                .unwrap()
                .records
                .is_empty()
    );

    // Logs: kept 90 days, then deleted.
    w.run_purger_until(START + 95 * 86_400).await;
    let oldest = w
        .vault
        .audit(&credvault::backend::AuditQuery {
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    let age = w.now() - oldest[0].at;
    assert!(
        age <= 90 * 86_400 + 6 * 3600 + 300,
        "oldest audit row {age} s old"
    );

    // Export: JSON.
    let exported = export_json(&w.vault, "acme").await;
    assert_eq!(
        exported["records"].as_array().unwrap().len(),
        1,
        "{exported}"
    );

    let inputs = || PromiseInputs {
        password_policy: Some(policy.clone()),
        password_hashes: vec![hash.clone()],
        ..PromiseInputs::default()
    };
    // 95 days on, acme's data key is past the 90 days the rotation policy allows: at risk,
    // until the key is rotated and the records re-encrypted under it.
    let report = w.check(&promises, inputs()).await;
    assert_eq!(
        status(&report, "at_rest"),
        PromiseStatus::AtRisk,
        "{}",
        report.to_text()
    );
    w.vault.rotate_dek("acme").await.unwrap();
    w.vault
        .reencrypt(&ReencryptOptions::default(), |_| {})
        .await
        .unwrap();
    let report = w.check(&promises, inputs()).await;
    assert!(report.all_kept(), "{}", report.to_text());

    // Broken on purpose: a process without the promise file seals a token with AES-256-GCM.
    let rogue = Vault::builder(
        made.backend(),
        w.keyring.clone(),
        Arc::clone(&w.tenant_keys),
    )
    .clock(w.clock.clone())
    .build();
    rogue
        .tenant("acme")
        .unwrap()
        .put("rogue", &token("google", "ya29.rogue"))
        .await
        .unwrap();
    let report = w.check(&promises, inputs()).await;
    assert_eq!(
        status(&report, "at_rest"),
        PromiseStatus::Broken,
        "{}",
        report.to_text()
    );
    assert_eq!(
        report.promise("at_rest").unwrap().evidence["records_sealed_with_another_suite"],
        1
    );
    assert!(!report.all_kept());
    // The re-encryption job moves it back under the promised suite.
    w.vault
        .reencrypt(&ReencryptOptions::default(), |_| {})
        .await
        .unwrap();
    let report = w.check(&promises, inputs()).await;
    assert!(report.all_kept(), "{}", report.to_text());
    made.finish().await;
}

#[tokio::test]
async fn kalpa_marketing_keeps_its_promises_on_sqlite() {
    kalpa(common::sqlite_made().await).await;
}

// ---- the jobs/invoicing SaaS (Kontraktr), a cloud service: PostgreSQL

async fn kontraktr(made: Made) {
    let promises = example("kontraktr-invoicing");
    let mut w = World::new(&made, &promises).await;
    let acme = w.vault.tenant("acme").unwrap();
    acme.put("quickbooks", &token("quickbooks", "qb_1"))
        .await
        .unwrap();
    let keys = w
        .vault
        .key_report(&promises.rotation_policy())
        .await
        .unwrap();
    assert_eq!(keys.records_by_suite[&SealingSuite::Aes256Gcm], 1);

    // Passwords (bcrypt) and lockout: the guard built from the file locks after 5 failures.
    let policy = promises.password_policy().unwrap().unwrap();
    let throttle = promises.throttle_config().unwrap();
    let hash = policy.hash(&SecretString::from("correct horse")).unwrap();
    assert!(hash.starts_with("$2b$12$"));
    let guard = LoginGuard::new(policy.clone(), InMemoryThrottle::new(throttle))
        .with_clock(w.vault.clock());
    let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
    let mut locked = false;
    for _ in 0..=throttle.max_failures {
        let outcome = guard
            .login(
                "a@example.com",
                ip,
                SecretString::from("wrong"),
                Some(&hash),
            )
            .await
            .unwrap();
        locked |= matches!(outcome, LoginOutcome::Locked { .. });
    }
    assert!(
        locked,
        "no lockout after {} failures",
        throttle.max_failures
    );

    // Cancelled account: tokens deleted at once, the rest exportable for 30 days, then gone
    // within the 31st.
    let globex = w.vault.tenant("globex").unwrap();
    globex.put("xero", &token("xero", "xero_1")).await.unwrap();
    globex
        .put(
            "invoices",
            &DerivedData {
                provider: "xero".into(),
                value: serde_json::json!({"open": 3}),
            },
        )
        .await
        .unwrap();
    let deleted_at = w.now();
    w.vault.delete_tenant("globex", "user:owner").await.unwrap();
    w.run_purger_until(deleted_at + 30 * 86_400).await;
    let exported = export_json(&w.vault, "globex").await;
    assert_eq!(
        exported["records"].as_array().unwrap().len(),
        1,
        "{exported}"
    );
    let mut csv = Vec::new();
    w.vault
        .tenant("globex")
        .unwrap()
        .export_csv(&mut csv)
        .await
        .unwrap();
    assert!(String::from_utf8(csv).unwrap().contains("invoices"));
    w.run_purger_until(deleted_at + 31 * 86_400).await;
    let gone = w.vault.tenant("globex").unwrap().list(None).await;
    assert!(
        gone.as_ref().map_or(true, |l| l.records.is_empty()),
        "{gone:?}"
    );

    let inputs = |throttle: ThrottleConfig| PromiseInputs {
        password_policy: Some(policy.clone()),
        throttle: Some(throttle),
        ..PromiseInputs::default()
    };
    let report = w.check(&promises, inputs(throttle)).await;
    assert!(report.all_kept(), "{}", report.to_text());

    // Broken on purpose: the application runs a looser throttle than the policy promises.
    let loose = ThrottleConfig {
        max_failures: 50,
        ..throttle
    };
    let report = w.check(&promises, inputs(loose)).await;
    assert_eq!(
        status(&report, "lockout"),
        PromiseStatus::Broken,
        "{}",
        report.to_text()
    );
    // ... and the purge stops running: a cancelled account outlives its 31 days.
    w.vault
        .tenant("initech")
        .unwrap()
        .put("xero", &token("xero", "x2"))
        .await
        .unwrap();
    w.vault
        .delete_tenant("initech", "user:owner")
        .await
        .unwrap();
    w.clock.advance(32 * DAY);
    let report = w.check(&promises, inputs(throttle)).await;
    assert_eq!(
        status(&report, "account_deletion"),
        PromiseStatus::Broken,
        "{}",
        report.to_text()
    );
    made.finish().await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn kontraktr_invoicing_keeps_its_promises_on_postgres() {
    if let Some(made) = common::postgres_made().await {
        kontraktr(made).await;
    }
}

// ---- the B2B CRM, on a SQLite file

async fn crm(made: Made) {
    let promises = example("b2b-crm");
    let mut w = World::new(&made, &promises).await;
    let acme = w.vault.tenant("acme").unwrap();
    acme.put(
        "openai",
        &credvault::store::ApiKey {
            provider: "openai".into(),
            key: SecretString::from("sk-proj-1"),
            label: Some("outreach".into()),
        },
    )
    .await
    .unwrap();
    let keys = w
        .vault
        .key_report(&promises.rotation_policy())
        .await
        .unwrap();
    assert_eq!(keys.records_by_suite[&SealingSuite::Aes256Gcm], 1);

    // PBKDF2 with salt.
    let policy = promises.password_policy().unwrap().unwrap();
    let hash = policy.hash(&SecretString::from("correct horse")).unwrap();
    assert!(hash.starts_with("$pbkdf2-sha256$i=600000"), "{hash}");

    // Export in CSV.
    let mut csv = Vec::new();
    acme.export_csv(&mut csv).await.unwrap();
    assert!(String::from_utf8(csv).unwrap().contains("openai"));

    // Deletion within 30 days.
    let globex = w.vault.tenant("globex").unwrap();
    globex
        .put("zoominfo", &token("zoominfo", "zi_1"))
        .await
        .unwrap();
    let deleted_at = w.now();
    w.vault.delete_tenant("globex", "user:owner").await.unwrap();
    w.run_purger_until(deleted_at + 30 * 86_400).await;
    let gone = w.vault.tenant("globex").unwrap().list(None).await;
    assert!(
        gone.as_ref().map_or(true, |l| l.records.is_empty()),
        "{gone:?}"
    );

    let inputs = |hashes: Vec<String>| PromiseInputs {
        password_policy: Some(policy.clone()),
        password_hashes: hashes,
        ..PromiseInputs::default()
    };
    let report = w.check(&promises, inputs(vec![hash.clone()])).await;
    assert!(report.all_kept(), "{}", report.to_text());
    let md = report.to_markdown();
    assert!(
        md.contains("| passwords | Hashed passwords (PBKDF2 with salt). | kept |"),
        "{md}"
    );

    // Broken on purpose: a legacy MD5 digest (of "password") left in the users table.
    let report = w
        .check(
            &promises,
            inputs(vec![hash, "5f4dcc3b5aa765d61d8327deb882cf99".to_owned()]),
        )
        .await;
    assert_eq!(
        status(&report, "passwords"),
        PromiseStatus::Broken,
        "{}",
        report.to_text()
    );
    assert_eq!(
        report.promise("passwords").unwrap().evidence["hashes_of_another_scheme"],
        1
    );
    made.finish().await;
}

#[tokio::test]
async fn b2b_crm_keeps_its_promises_on_sqlite() {
    crm(common::sqlite_made().await).await;
}

// ---- the Instagram DM app, cloud mode: PostgreSQL

async fn instagram(made: Made) {
    let promises = example("instagram-dm-cloud");
    let mut w = World::new(&made, &promises).await;
    let cookies = SessionCookies {
        provider: "instagram".into(),
        cookies: vec![Cookie {
            name: "sessionid".into(),
            value: SecretString::from("IGSC-secret"),
            domain: ".instagram.com".into(),
            path: "/".into(),
            expires_at: None,
        }],
    };
    let alice = w.vault.tenant("alice").unwrap();
    alice.put("ig-main", &cookies).await.unwrap();
    // Users reach only their own data.
    let bob = w.vault.tenant("bob").unwrap();
    assert!(
        bob.get::<SessionCookies>("ig-main")
            .await
            .unwrap_err()
            .is_not_found()
    );
    let exported = export_json(&w.vault, "alice").await;
    assert_eq!(exported["records"].as_array().unwrap().len(), 1);

    bob.put("ig-main", &cookies).await.unwrap();
    let deleted_at = w.now();
    w.vault.delete_tenant("bob", "user:bob").await.unwrap();
    w.run_purger_until(deleted_at + 30 * 86_400).await;
    let report = w.check(&promises, PromiseInputs::default()).await;
    assert!(report.all_kept(), "{}", report.to_text());

    // Broken on purpose: the purge stops and a deleted account outlives its 30 days.
    w.vault
        .tenant("carol")
        .unwrap()
        .put("ig", &cookies)
        .await
        .unwrap();
    w.vault.delete_tenant("carol", "user:carol").await.unwrap();
    w.clock.advance(31 * DAY);
    let report = w.check(&promises, PromiseInputs::default()).await;
    assert_eq!(
        status(&report, "account_deletion"),
        PromiseStatus::Broken,
        "{}",
        report.to_text()
    );
    let problems = &report.promise("account_deletion").unwrap().problems;
    assert!(
        problems
            .iter()
            .any(|p| p.contains("carol") && p.contains("past its erasure deadline")),
        "{problems:?}"
    );
    made.finish().await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn instagram_dm_cloud_keeps_its_promises_on_postgres() {
    if let Some(made) = common::postgres_made().await {
        instagram(made).await;
    }
}

// ---- README's table of the worked examples is generated from the files

/// The table README.md carries between its `promises-table` markers: one row per promise of
/// each example file.
fn readme_table() -> String {
    let dir = format!("{}/examples/promises", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let mut rows: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut out = String::from(
        "| policy (examples/promises/) | promise | the policy says | the file says |\n|---|---|---|---|\n",
    );
    for path in files {
        let p = Promises::from_path(&path).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut section = String::new();
        for line in text.lines() {
            let line = line.trim();
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_owned();
            } else if !section.is_empty()
                && !line.starts_with('#')
                && !line.starts_with("says")
                && !line.is_empty()
            {
                rows.entry(format!("{file}\0{section}"))
                    .or_default()
                    .push(format!("`{line}`"));
            }
        }
        let says = |section: &str| -> String {
            let s = match section {
                "at_rest" => p.at_rest.as_ref().and_then(|x| x.says.clone()),
                "passwords" => p.passwords.as_ref().and_then(|x| x.says.clone()),
                "disconnect" => p.disconnect.as_ref().and_then(|x| x.says.clone()),
                "account_deletion" => p.account_deletion.as_ref().and_then(|x| x.says.clone()),
                "logs" => p.logs.as_ref().and_then(|x| x.says.clone()),
                "lockout" => p.lockout.as_ref().and_then(|x| x.says.clone()),
                "export" => p.export.as_ref().and_then(|x| x.says.clone()),
                _ => None,
            };
            s.unwrap_or_default().replace('|', "\\|")
        };
        for section in [
            "at_rest",
            "passwords",
            "disconnect",
            "account_deletion",
            "logs",
            "lockout",
            "export",
        ] {
            if let Some(lines) = rows.get(&format!("{file}\0{section}")) {
                out.push_str(&format!(
                    "| {} (`{file}`) | {section} | {} | {} |\n",
                    p.policy,
                    says(section),
                    lines.join("<br>")
                ));
            }
        }
    }
    out
}

#[test]
fn readme_promise_table_matches_the_example_files() {
    let readme_path = format!("{}/README.md", env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    let begin = "<!-- promises-table: generated from examples/promises by tests/promises_examples.rs; UPDATE_README=1 rewrites it -->\n";
    let end = "<!-- promises-table end -->";
    let start = readme
        .find(begin)
        .expect("README has the promises-table marker")
        + begin.len();
    let stop = start
        + readme[start..]
            .find(end)
            .expect("README has the end marker");
    let table = readme_table();
    if readme[start..stop] != table {
        if std::env::var("UPDATE_README").as_deref() == Ok("1") {
            let updated = format!("{}{}{}", &readme[..start], table, &readme[stop..]);
            std::fs::write(&readme_path, updated).unwrap();
        } else {
            panic!(
                "README's promise table differs from examples/promises; run with UPDATE_README=1. Expected:\n{table}"
            );
        }
    }
}
