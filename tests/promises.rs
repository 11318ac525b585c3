//! The promise file (issue 15 item 2): every field read, every refusal with its line, the
//! file round-tripping through serde, and settings or operations that contradict a promise
//! refused at start-up.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap freely"
)]

mod common;

use std::time::Duration;

use credvault::backend::MemoryBackend;
use credvault::crypto::SealingSuite;
use credvault::envelope::MemoryTenantKeys;
use credvault::password::{PasswordPolicy, Scheme, ThrottleConfig};
use credvault::promises::{
    AccountDeletionPromise, AtRestPromise, DisconnectPromise, ExportFormat, ExportPromise,
    LockoutPromise, LogPromise, PasswordPromise, PromiseError, Promises, TokenFate,
};
use credvault::store::{DAY, OAuthToken, StoreError, Vault, VaultConfig};
use credvault::{Keyring, SecretString};
use proptest::prelude::*;

const FULL: &str = r#"# every field
policy = "Every field"

[at_rest]
says = "encrypted with Fernet"
suite = "fernet"
kinds = { api_key = "aes-256-gcm" }
rotate_data_keys_every = "30d"
rotate_master_key_every = "180 days"

[passwords]
says = "bcrypt cost 13"
scheme = "bcrypt"
cost = 13

[disconnect]
says = "deleted at once and revoked; derived within 12 hours"
tokens = "delete-and-revoke"
derived_data_within = "12h"
derived_kinds = ["analytics", "pins"]

[account_deletion]
says = "erased within 30 days"
erased_within = "30d"
kept_for_export = "14d"
backups_purged_within = "60d"
tokens = "delete"

[logs]
says = "kept 90 days"
kept_for = "90d"

[lockout]
says = "lockout"
max_failures = 3
max_failures_per_address = 50
max_failures_per_account = 10
window = "10m"
lockout = "2m"
max_lockout = "2h"

[export]
says = "CSV and JSON"
formats = ["csv", "json"]
"#;

#[test]
fn every_field_is_read() {
    let p = Promises::from_toml_str(FULL).unwrap();
    assert_eq!(p.policy, "Every field");
    assert_eq!(
        p.at_rest,
        Some(AtRestPromise {
            says: Some("encrypted with Fernet".into()),
            suite: SealingSuite::Fernet,
            kinds: [("api_key".to_owned(), SealingSuite::Aes256Gcm)].into(),
            rotate_data_keys_every: 30 * DAY,
            rotate_master_key_every: 180 * DAY,
        })
    );
    assert_eq!(
        p.passwords,
        Some(PasswordPromise {
            says: Some("bcrypt cost 13".into()),
            scheme: Scheme::Bcrypt { cost: 13 },
        })
    );
    assert_eq!(
        p.disconnect,
        Some(DisconnectPromise {
            says: Some("deleted at once and revoked; derived within 12 hours".into()),
            tokens: TokenFate::DeleteAndRevoke,
            derived_data_within: Some(Duration::from_secs(12 * 3600)),
            derived_kinds: vec!["analytics".into(), "pins".into()],
        })
    );
    assert_eq!(
        p.account_deletion,
        Some(AccountDeletionPromise {
            says: Some("erased within 30 days".into()),
            erased_within: 30 * DAY,
            kept_for_export: Some(14 * DAY),
            backups_purged_within: Some(60 * DAY),
            tokens: TokenFate::Delete,
        })
    );
    assert_eq!(
        p.logs,
        Some(LogPromise {
            says: Some("kept 90 days".into()),
            kept_for: 90 * DAY,
        })
    );
    let throttle = ThrottleConfig {
        max_failures: 3,
        max_failures_per_address: 50,
        max_failures_per_account: 10,
        window: Duration::from_secs(600),
        base_lockout: Duration::from_secs(120),
        max_lockout: Duration::from_secs(7200),
        ..ThrottleConfig::default()
    };
    assert_eq!(
        p.lockout,
        Some(LockoutPromise {
            says: Some("lockout".into()),
            throttle,
        })
    );
    assert_eq!(
        p.export,
        Some(ExportPromise {
            says: Some("CSV and JSON".into()),
            formats: vec![ExportFormat::Csv, ExportFormat::Json],
        })
    );
    assert_eq!(p.line_of("at_rest.suite"), 6);
    assert_eq!(p.line_of("logs.kept_for"), 31);

    // What the file builds.
    let mut config = VaultConfig::default();
    p.apply(&mut config);
    assert_eq!(config.sealing_suite, SealingSuite::Fernet);
    assert_eq!(config.suite_for("api_key"), SealingSuite::Aes256Gcm);
    assert_eq!(config.derived_retention, Duration::from_secs(12 * 3600));
    assert!(config.derived_kinds.contains(&"pins".to_owned()));
    assert_eq!(config.grace_period, 30 * DAY);
    assert_eq!(config.audit_retention, 90 * DAY);
    assert_eq!(p.throttle_config(), Some(throttle));
    assert_eq!(
        p.password_policy().unwrap().unwrap().scheme(),
        Scheme::Bcrypt { cost: 13 }
    );
    assert_eq!(p.rotation_policy().dek_max_age, 30 * DAY);
    assert!(p.requires_revocation());
}

#[test]
fn defaults_fill_what_a_policy_leaves_unsaid() {
    let p = Promises::from_toml_str(
        "policy = \"p\"\n[passwords]\nscheme = \"PBKDF2\"\n[lockout]\n[disconnect]\n",
    )
    .unwrap();
    assert_eq!(
        p.passwords.unwrap().scheme,
        Scheme::Pbkdf2Sha256 {
            iterations: 600_000
        }
    );
    assert_eq!(p.lockout.unwrap().throttle, ThrottleConfig::default());
    let d = p.disconnect.unwrap();
    assert_eq!(d.tokens, TokenFate::DeleteAndRevoke);
    assert_eq!(d.derived_data_within, None);
    let bcrypt =
        Promises::from_toml_str("policy = \"p\"\n[passwords]\nscheme = \"bcrypt\"\n").unwrap();
    assert_eq!(
        bcrypt.passwords.unwrap().scheme,
        Scheme::Bcrypt { cost: 12 }
    );
}

/// Each refusal: the file, the line it must name, and a fragment of the message.
#[test]
fn every_refusal_names_its_line() {
    let cases: &[(&str, u32, &str)] = &[
        (
            "policy = \"p\"\n[at_rest]\nsuite = \"AES-256 Fernet\"\n",
            3,
            "Fernet is AES-128",
        ),
        (
            "policy = \"p\"\n[at_rest]\nsuite = \"aes-128-cbc\"\n",
            3,
            "cannot be kept",
        ),
        (
            "policy = \"p\"\n[at_rest]\nsuite = \"AES-256\"\n",
            3,
            "AES-256-GCM",
        ),
        (
            "policy = \"p\"\n[at_rest]\nsuite = \"rot13\"\n",
            3,
            "cannot be kept",
        ),
        (
            "policy = \"p\"\n[at_rest]\nsuite = \"fernet\"\nkinds = { \"Bad Kind\" = \"fernet\" }\n",
            4,
            "record kind",
        ),
        (
            "policy = \"p\"\n[at_rest]\nsuite = \"fernet\"\nrotate_data_keys_every = \"soon\"\n",
            4,
            "duration",
        ),
        (
            "policy = \"p\"\n\n[passwords]\nscheme = \"md5\"\n",
            4,
            "not a password hash",
        ),
        (
            "policy = \"p\"\n[passwords]\nscheme = \"scrypt2\"\n",
            3,
            "cannot be kept",
        ),
        (
            "policy = \"p\"\n[passwords]\nscheme = \"bcrypt\"\ncost = 8\n",
            4,
            "cost",
        ),
        (
            "policy = \"p\"\n[passwords]\nscheme = \"pbkdf2-sha256\"\niterations = 1000\n",
            4,
            "600000",
        ),
        (
            "policy = \"p\"\n[passwords]\nscheme = \"bcrypt\"\niterations = 1000\n",
            4,
            "not a parameter",
        ),
        (
            "policy = \"p\"\n[disconnect]\ntokens = \"keep\"\n",
            3,
            "delete-and-revoke",
        ),
        (
            "policy = \"p\"\n[disconnect]\nderived_data_within = \"0h\"\n",
            3,
            "zero",
        ),
        (
            "policy = \"p\"\n[account_deletion]\nerased_within = \"30d\"\nkept_for_export = \"31d\"\n",
            4,
            "kept for export longer",
        ),
        (
            "policy = \"p\"\n[account_deletion]\nerased_within = \"30d\"\nbackups_purged_within = \"7d\"\n",
            4,
            "backup",
        ),
        (
            "policy = \"p\"\n[logs]\nkept_for = \"ninety days\"\n",
            3,
            "duration",
        ),
        (
            "policy = \"p\"\n[lockout]\nmax_failures = 0\n",
            3,
            "at least one",
        ),
        (
            "policy = \"p\"\n[lockout]\nlockout = \"2h\"\nmax_lockout = \"1h\"\n",
            4,
            "longest lockout",
        ),
        ("policy = \"p\"\n[export]\nformats = [\"xml\"]\n", 3, "JSON"),
        // Shape errors come from the TOML parser, with its position.
        (
            "policy = \"p\"\n[at_rest]\nsuite = \"fernet\"\ncolour = \"red\"\n",
            4,
            "colour",
        ),
        (
            "policy = \"p\"\n[passwords]\nscheme = \"bcrypt\"\ncost = \"twelve\"\n",
            4,
            "expected u32",
        ),
        ("policy = \"p\"\n[logs\n", 2, ""),
        ("[logs]\nkept_for = \"90d\"\n", 1, "policy"),
        ("policy = \"\"\n", 1, "name the policy"),
    ];
    for (file, line, fragment) in cases {
        let err = Promises::from_toml_str(file).expect_err(file);
        let got = match &err {
            PromiseError::Syntax { line, .. }
            | PromiseError::Invalid { line, .. }
            | PromiseError::Unkeepable { line, .. } => *line,
            other => panic!("{file}: unexpected {other:?}"),
        };
        let message = err.to_string();
        assert_eq!(got, *line, "{file}: {message}");
        assert!(
            message.contains(&format!("line {line}")),
            "{file}: {message}"
        );
        assert!(message.contains(fragment), "{file}: {message}");
    }
}

#[test]
fn aes_256_fernet_is_refused_with_the_nearest_keepable_promises() {
    let err = Promises::from_toml_str("policy = \"CRM\"\n[at_rest]\nsuite = \"AES-256 Fernet\"\n")
        .unwrap_err();
    let PromiseError::Unkeepable { alternatives, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(alternatives.len(), 2);
    assert!(alternatives[0].contains("\"fernet\""), "{alternatives:?}");
    assert!(
        alternatives[1].contains("\"aes-256-gcm\""),
        "{alternatives:?}"
    );
    // Each alternative is a line that reads back.
    for alt in alternatives {
        let line = alt.split(" (").next().unwrap().replace("at_rest.", "");
        Promises::from_toml_str(&format!("policy = \"CRM\"\n[at_rest]\n{line}\n")).unwrap();
    }
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let err = Promises::from_path("/nonexistent/promises.toml").unwrap_err();
    assert!(matches!(err, PromiseError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/promises.toml"));
}

fn any_duration() -> impl Strategy<Value = Duration> {
    (1u64..100_000_000).prop_map(Duration::from_secs)
}

fn any_suite() -> impl Strategy<Value = SealingSuite> {
    prop_oneof![Just(SealingSuite::Fernet), Just(SealingSuite::Aes256Gcm)]
}

fn any_says() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("[ -~]{0,40}|[\\PC]{0,10}")
}

fn any_promises() -> impl Strategy<Value = Promises> {
    let at_rest = proptest::option::of(
        (
            any_says(),
            any_suite(),
            proptest::collection::btree_map("[a-z][a-z_]{0,10}", any_suite(), 0..3),
            any_duration(),
            any_duration(),
        )
            .prop_map(|(says, suite, kinds, d, k)| AtRestPromise {
                says,
                suite,
                kinds,
                rotate_data_keys_every: d,
                rotate_master_key_every: k,
            }),
    );
    let passwords = proptest::option::of(
        (
            any_says(),
            prop_oneof![
                (10u32..=16).prop_map(|cost| Scheme::Bcrypt { cost }),
                (600_000u32..=10_000_000)
                    .prop_map(|iterations| Scheme::Pbkdf2Sha256 { iterations }),
                Just(Scheme::Argon2id {
                    memory_kib: 19_456,
                    iterations: 2,
                    parallelism: 1
                }),
            ],
        )
            .prop_map(|(says, scheme)| PasswordPromise { says, scheme }),
    );
    let fate = || prop_oneof![Just(TokenFate::Delete), Just(TokenFate::DeleteAndRevoke)];
    let disconnect = proptest::option::of(
        (
            any_says(),
            fate(),
            proptest::option::of(any_duration()),
            proptest::collection::vec("[a-z][a-z_]{0,10}", 0..3),
        )
            .prop_map(|(says, tokens, within, kinds)| DisconnectPromise {
                says,
                tokens,
                derived_data_within: within,
                derived_kinds: kinds,
            }),
    );
    let deletion = proptest::option::of(
        (
            any_says(),
            1u64..1000,
            proptest::option::of(0u64..1000),
            proptest::option::of(0u64..1000),
            fate(),
        )
            .prop_map(|(says, erased, kept, backups, tokens)| {
                let erased = Duration::from_secs(erased * 3600);
                AccountDeletionPromise {
                    says,
                    erased_within: erased,
                    kept_for_export: kept.map(|k| {
                        Duration::from_secs(k * 60)
                            .min(erased)
                            .max(Duration::from_secs(1))
                    }),
                    backups_purged_within: backups
                        .map(|b| erased + Duration::from_secs(b * 86_400)),
                    tokens,
                }
            }),
    );
    let logs = proptest::option::of(
        (any_says(), any_duration()).prop_map(|(says, kept_for)| LogPromise { says, kept_for }),
    );
    let lockout = proptest::option::of(
        (
            any_says(),
            1u32..100,
            1u32..1000,
            1u32..1000,
            any_duration(),
            1u64..1000,
        )
            .prop_map(|(says, a, b, c, window, lock)| LockoutPromise {
                says,
                throttle: ThrottleConfig {
                    max_failures: a,
                    max_failures_per_address: b,
                    max_failures_per_account: c,
                    window,
                    base_lockout: Duration::from_secs(lock),
                    max_lockout: Duration::from_secs(lock * 10),
                    ..ThrottleConfig::default()
                },
            }),
    );
    let export = proptest::option::of(
        (
            any_says(),
            prop_oneof![
                Just(vec![ExportFormat::Json]),
                Just(vec![ExportFormat::Csv]),
                Just(vec![ExportFormat::Csv, ExportFormat::Json]),
            ],
        )
            .prop_map(|(says, formats)| ExportPromise { says, formats }),
    );
    (
        "[ -~]{1,30}".prop_filter("not blank", |s| !s.trim().is_empty()),
        at_rest,
        passwords,
        disconnect,
        deletion,
        logs,
        lockout,
        export,
    )
        .prop_map(
            |(policy, at_rest, passwords, disconnect, account_deletion, logs, lockout, export)| {
                let mut text = format!("policy = {}\n", toml_string(&policy));
                let _ = &mut text;
                let mut p = Promises::from_toml_str(&text).expect("a bare policy");
                p.at_rest = at_rest;
                p.passwords = passwords;
                p.disconnect = disconnect;
                p.account_deletion = account_deletion;
                p.logs = logs;
                p.lockout = lockout;
                p.export = export;
                p
            },
        )
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever promises are written out, the file reads back as the same promises.
    #[test]
    fn a_file_round_trips(p in any_promises()) {
        let text = p.to_toml();
        let back = Promises::from_toml_str(&text)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(back, p);
    }
}

// ---- settings and operations that contradict a promise

fn promises(text: &str) -> Promises {
    Promises::from_toml_str(text).unwrap()
}

fn builder() -> credvault::store::VaultBuilder {
    Vault::builder(
        MemoryBackend::new(),
        Keyring::generate().unwrap(),
        MemoryTenantKeys::new(),
    )
}

fn contradicted(err: StoreError) -> (String, u32, String) {
    match err {
        StoreError::Promise(e) => match &*e {
            PromiseError::Contradicted {
                promise,
                line,
                setting,
                ..
            } => (promise.clone(), *line, setting.clone()),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_setting_that_breaks_a_promise_is_refused_at_start_up() {
    let fernet = promises("policy = \"p\"\n[at_rest]\nsuite = \"fernet\"\n");
    let err = builder()
        .promises(&fernet)
        .sealing_suite(SealingSuite::Aes256Gcm)
        .try_build()
        .unwrap_err();
    let message = err.to_string();
    assert_eq!(
        contradicted(err),
        (
            "at_rest.suite".into(),
            3,
            "sealing_suite = aes-256-gcm".into()
        )
    );
    assert!(message.contains("promise file line 3"), "{message}");
    let err = builder()
        .promises(&fernet)
        .kind_suite("oauth_token", SealingSuite::Aes256Gcm)
        .try_build()
        .unwrap_err();
    assert_eq!(contradicted(err).0, "at_rest.kinds.oauth_token");

    let deletion = promises(
        "policy = \"p\"\n[account_deletion]\nerased_within = \"30d\"\nkept_for_export = \"7d\"\ntokens = \"delete\"\n",
    );
    let err = builder()
        .promises(&deletion)
        .grace_period(40 * DAY)
        .try_build()
        .unwrap_err();
    assert_eq!(contradicted(err).0, "account_deletion.erased_within");
    let err = builder()
        .promises(&deletion)
        .grace_period(DAY)
        .try_build()
        .unwrap_err();
    assert_eq!(contradicted(err).0, "account_deletion.kept_for_export");
    builder()
        .promises(&deletion)
        .grace_period(20 * DAY)
        .try_build()
        .expect("a shorter erasure keeps the promise");

    let derived = promises(
        "policy = \"p\"\n[disconnect]\ntokens = \"delete\"\nderived_data_within = \"24h\"\n",
    );
    let err = builder()
        .promises(&derived)
        .derived_retention(2 * DAY)
        .try_build()
        .unwrap_err();
    assert_eq!(contradicted(err).0, "disconnect.derived_data_within");

    let logs = promises("policy = \"p\"\n[logs]\nkept_for = \"90d\"\n");
    let err = builder()
        .promises(&logs)
        .audit_retention(30 * DAY)
        .try_build()
        .unwrap_err();
    assert_eq!(contradicted(err).0, "logs.kept_for");

    // `build` makes the same vault, which refuses to work.
    let vault = builder().promises(&logs).audit_retention(30 * DAY).build();
    assert!(matches!(vault.migrate().await, Err(StoreError::Promise(_))));
    assert!(matches!(vault.tenant("acme"), Err(StoreError::Promise(_))));

    // The password policy and the throttle: checked against the promise.
    let pw = promises(
        "policy = \"p\"\n[passwords]\nscheme = \"bcrypt\"\ncost = 12\n[lockout]\nmax_failures = 5\n",
    );
    pw.check_password_policy(&PasswordPolicy::bcrypt(12).unwrap())
        .unwrap();
    pw.check_password_policy(&PasswordPolicy::bcrypt(13).unwrap())
        .unwrap();
    let err = pw
        .check_password_policy(&PasswordPolicy::bcrypt(10).unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("passwords.scheme"), "{err}");
    assert!(
        pw.check_password_policy(&PasswordPolicy::default())
            .is_err()
    );
    let loose = ThrottleConfig {
        max_failures: 10,
        ..ThrottleConfig::default()
    };
    let err = pw.check_throttle(&loose).unwrap_err();
    assert!(err.to_string().contains("lockout.max_failures"), "{err}");
    pw.check_throttle(&ThrottleConfig::default()).unwrap();
}

#[derive(Debug)]
struct Accepting;

impl credvault::store::Revoker for Accepting {
    fn revoke<'a>(
        &'a self,
        _: &'a credvault::store::RevocationRequest,
    ) -> credvault::backend::BoxFuture<'a, Result<(), credvault::store::RevokeError>> {
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn revocation_promises_need_a_revoker() {
    let revoke = promises(
        "policy = \"p\"\n[disconnect]\nsays = \"tokens revoked\"\n\n[account_deletion]\nerased_within = \"30d\"\n",
    );
    let err = builder().promises(&revoke).try_build().unwrap_err();
    assert_eq!(
        contradicted(err),
        ("disconnect.tokens".into(), 0, "no revoker".into())
    );
    let vault = builder()
        .promises(&revoke)
        .revoker(Accepting)
        .try_build()
        .unwrap();
    vault.migrate().await.unwrap();
    let acme = vault.tenant("acme").unwrap();
    acme.put(
        "github",
        &OAuthToken::bearer("github", SecretString::from("gho_x")),
    )
    .await
    .unwrap();
    // A disconnect without a revoker would leave the token live at the provider: refused,
    // and nothing deleted.
    let err = acme.disconnect("github", None).await.unwrap_err();
    assert_eq!(contradicted(err).0, "disconnect.tokens");
    assert!(acme.get::<OAuthToken>("github").await.is_ok());
    let report = acme.disconnect("github", Some(&Accepting)).await.unwrap();
    assert_eq!((report.revoked, report.deleted), (1, 1));
}

/// The purge runs in one process (a cron job); `promises check` runs in another and reads the
/// last run from the database: when it started and whether it found a deadline missed.
async fn last_purge_run_is_read_back(made: common::Made) {
    let promises = promises(
        "policy = \"p\"\n[account_deletion]\nerased_within = \"30d\"\ntokens = \"delete\"\n",
    );
    let keyring = Keyring::generate().unwrap();
    let tenant_keys = std::sync::Arc::new(MemoryTenantKeys::new());
    let clock = credvault::store::ManualClock::new(1_780_000_000);
    let open = || {
        Vault::builder(
            made.backend(),
            keyring.clone(),
            std::sync::Arc::clone(&tenant_keys),
        )
        .promises(&promises)
        .clock(clock.clone())
        .try_build()
        .unwrap()
    };
    let (cron, checker) = (open(), open());
    cron.migrate().await.unwrap();
    let check = || async {
        checker
            .check_promises(&promises, &credvault::promises::PromiseInputs::default())
            .await
            .unwrap()
    };
    let report = check().await;
    let evidence = &report.promise("account_deletion").unwrap().evidence;
    assert_eq!(evidence["last_purge_started_at"], serde_json::Value::Null);

    cron.purge().await.unwrap();
    let report = check().await;
    assert!(report.all_kept(), "{}", report.to_text());
    let evidence = &report.promise("account_deletion").unwrap().evidence;
    assert_eq!(evidence["last_purge_started_at"], 1_780_000_000);
    assert_eq!(evidence["last_purge_oldest_overdue_seconds"], 0);

    // The cron job stops for 40 days: the account deleted meanwhile is purged 10 days late.
    let acme = cron.tenant("acme").unwrap();
    acme.put(
        "github",
        &OAuthToken::bearer("github", SecretString::from("gho_1")),
    )
    .await
    .unwrap();
    cron.delete_tenant("acme", "user:acme").await.unwrap();
    clock.advance(40 * DAY);
    let report = cron.purge().await.unwrap();
    assert_eq!(report.oldest_overdue, 10 * DAY);
    let report = check().await;
    let result = report.promise("account_deletion").unwrap();
    assert_eq!(result.status, credvault::promises::PromiseStatus::Broken);
    assert_eq!(
        result.evidence["last_purge_oldest_overdue_seconds"],
        10 * 86_400
    );
    assert!(
        result
            .problems
            .iter()
            .any(|p| p.contains("last purge run found an item 10d past")),
        "{:?}",
        result.problems
    );
    // A run that finds nothing late puts it right.
    clock.advance(DAY);
    cron.purge().await.unwrap();
    assert!(check().await.all_kept());
    made.finish().await;
}

#[tokio::test]
async fn the_last_purge_run_is_read_back_on_memory() {
    last_purge_run_is_read_back(common::Made::memory()).await;
}

#[tokio::test]
async fn the_last_purge_run_is_read_back_on_sqlite() {
    last_purge_run_is_read_back(common::sqlite_made().await).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn the_last_purge_run_is_read_back_on_postgres() {
    if let Some(made) = common::postgres_made().await {
        last_purge_run_is_read_back(made).await;
    }
}
