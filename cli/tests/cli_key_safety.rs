//! Issue 11 from the command line, as an operator hits it: `vault init` with a mistyped key
//! path against an existing vault, a purge or a put with an empty or foreign tenant-key
//! directory, a purge that finds a shred secret missing, and README's rotation steps run
//! while another process keeps using the vault with the old key file.

#![cfg(feature = "sqlite")]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap freely"
)]

#[path = "common/cli.rs"]
mod cli_common;

use std::path::Path;
use std::time::Duration;

use credvault::envelope::DirTenantKeys;
use credvault::keys::KeyFile;
use credvault::store::{ApiKey, Vault, VaultConfig};
use tempfile::TempDir;

use cli_common::{fails_with, run, stderr, stdout};

const SECRET: &str = "sk_live_acme000000000000000000000000000";

fn api_key(secret: &str) -> String {
    format!(r#"{{"provider": "stripe", "key": "{secret}"}}"#)
}

fn put(dir: &Path, extra: &[&str], tenant: &str, secret: &str) {
    let args = [
        &[
            "vault", "put", "--tenant", tenant, "--kind", "api_key", "--name", "stripe",
        ][..],
        extra,
    ]
    .concat();
    run(dir, &args, &api_key(secret)).success();
}

fn get(dir: &Path, tenant: &str) -> String {
    let a = run(
        dir,
        &[
            "vault", "get", "--tenant", tenant, "--kind", "api_key", "--name", "stripe",
        ],
        "",
    )
    .success();
    stdout(&a)
}

fn vault_with_acme() -> TempDir {
    let dir = TempDir::new().unwrap();
    run(dir.path(), &["vault", "init"], "").success();
    put(dir.path(), &[], "acme", SECRET);
    dir
}

/// Files in a directory, sorted (SQLite's `-wal` and `-shm` files left out).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with("-wal") && !n.ends_with("-shm"))
        .collect();
    v.sort();
    v
}

#[test]
fn init_against_an_existing_vault_never_makes_a_second_key() {
    let vault = vault_with_acme();
    let dir = vault.path();
    let before = names(dir);
    // A typo: init must not generate credvault-key.json and call the vault ready.
    let err = fails_with(
        run(dir, &["vault", "init", "--keys", "credvault-key.json"], ""),
        2,
        "credvault-key.json",
    );
    assert!(err.contains("already holds a vault"), "{err}");
    assert_eq!(names(dir), before, "nothing created");
    // Another key file, also "v1": refused by its fingerprint, for init and every command.
    run(dir, &["key", "generate", "--out", "other.json"], "").success();
    for args in [
        &["vault", "init", "--keys", "other.json"][..],
        &["vault", "list", "--tenant", "acme", "--keys", "other.json"][..],
        &["vault", "report", "--keys", "other.json"][..],
    ] {
        let err = fails_with(
            run(dir, args, ""),
            2,
            "different key-encryption key v1 than the one this vault recorded",
        );
        assert!(err.contains("other.json"), "{err}");
    }
    let err = fails_with(
        run(
            dir,
            &[
                "vault",
                "put",
                "--tenant",
                "globex",
                "--kind",
                "api_key",
                "--name",
                "stripe",
                "--keys",
                "other.json",
            ],
            &api_key("sk_live_globex"),
        ),
        2,
        "different key-encryption key",
    );
    assert!(!err.contains("sk_live_globex"), "{err}");
    // The right key still reads everything, and globex was never created.
    assert!(get(dir, "acme").contains(SECRET));
    let a = run(dir, &["vault", "list", "--tenant", "globex"], "");
    assert!(!stdout(&a).contains("stripe"), "{}", stdout(&a));
    // init with the right keys again is a no-op that says the vault is ready.
    run(dir, &["vault", "init"], "").success();
}

#[test]
fn an_empty_or_foreign_tenant_key_directory_is_refused_for_every_command() {
    let vault = vault_with_acme();
    let dir = vault.path();
    std::fs::create_dir(dir.join("mnt")).unwrap(); // an unmounted volume's mount point
    let other = TempDir::new().unwrap();
    run(other.path(), &["vault", "init"], "").success(); // another vault's store
    let foreign = other.path().join("credvault-keys/tenant-keys");
    let foreign = foreign.to_str().unwrap();
    for (store, message) in [
        ("mnt", "not a credvault tenant-key directory"),
        (foreign, "is not this vault's"),
    ] {
        let purge = run(dir, &["vault", "purge", "--tenant-keys", store], "");
        assert!(!stdout(&purge).contains("purged"), "{}", stdout(&purge));
        fails_with(purge, 2, message);
        let err = fails_with(
            run(
                dir,
                &[
                    "vault",
                    "put",
                    "--tenant",
                    "globex",
                    "--kind",
                    "api_key",
                    "--name",
                    "stripe",
                    "--tenant-keys",
                    store,
                ],
                &api_key("sk_live_globex"),
            ),
            2,
            message,
        );
        assert!(err.contains("--tenant-keys"), "{err}");
    }
    assert!(
        names(&dir.join("mnt")).is_empty(),
        "no secret written there"
    );
    let audit = stdout(&run(dir, &["vault", "audit", "--json"], "").success());
    assert!(!audit.contains("tenant_purge"), "{audit}");
}

#[tokio::test]
async fn purge_refuses_a_due_tenant_whose_shred_secret_is_missing() {
    let vault = vault_with_acme();
    let dir = vault.path();
    put(dir, &[], "globex", "sk_live_globex");
    for t in ["acme", "globex"] {
        run(dir, &["vault", "tenant", "delete", "--tenant", t], "").success();
    }
    // Both due now (the grace period is 30 days: move it, as time would).
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.join("credvault-data/credvault.db").display()
    ))
    .await
    .unwrap();
    sqlx::query("UPDATE credvault_tenants SET purge_after = 0")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    // acme's shred secret file is gone (lost, or never in this directory).
    let store = dir.join("credvault-keys/tenant-keys");
    let lost: Vec<String> = names(&store)
        .into_iter()
        .filter(|n| n.ends_with(".key"))
        .collect();
    assert_eq!(lost.len(), 2);
    let acme_file = {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(b"acme");
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("{hex}.key")
    };
    std::fs::remove_file(store.join(&acme_file)).unwrap();

    let a = run(dir, &["vault", "purge"], "");
    let err = fails_with(a, 1, "purge incomplete");
    assert!(err.contains("acme"), "{err}");
    assert!(err.contains("purged 1 other tenants"), "{err}");
    let audit = stdout(&run(dir, &["vault", "audit", "--tenant", "acme", "--json"], "").success());
    assert!(audit.contains("refused: shred secret missing"), "{audit}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&audit).unwrap();
    assert!(
        rows.iter()
            .all(|r| !(r["action"] == "tenant_purge" && r["outcome"] == "ok")),
        "{audit}"
    );
}

/// README's rotation steps, run by the operator while an application process keeps using the
/// vault with the key file it loaded before the rotation.
#[tokio::test]
async fn readme_rotation_steps_with_a_live_second_process_lose_nothing() {
    let vault = vault_with_acme();
    let dir = vault.path();
    let url = format!(
        "sqlite://{}",
        dir.join("credvault-data/credvault.db").display()
    );
    let app = Vault::open_with(
        &url,
        KeyFile::open(dir.join("credvault-keys/credvault-keys.json")).unwrap(),
        DirTenantKeys::open(dir.join("credvault-keys/tenant-keys")).unwrap(),
        VaultConfig {
            key_check_interval: Duration::from_secs(3600),
            ..VaultConfig::default()
        },
    )
    .await
    .unwrap();
    let mut n = 0;
    let mut write = async |app: &Vault| {
        n += 1;
        let tenant = format!("app-{n}");
        let key = ApiKey {
            provider: "stripe".into(),
            key: format!("sk_live_{tenant}").into(),
            label: None,
        };
        app.tenant(&tenant)
            .unwrap()
            .put("stripe", &key)
            .await
            .unwrap();
        tenant
    };
    let mut tenants = vec![write(&app).await];

    let steps: [&[&str]; 5] = [
        &[
            "key",
            "rotate",
            "--keys",
            "credvault-keys/credvault-keys.json",
        ],
        &["vault", "rotate", "--kek"],
        &["vault", "rotate", "--all"],
        &["vault", "reencrypt", "--batch-size", "500"],
        &["vault", "report"],
    ];
    for step in steps {
        run(dir, step, "").success();
        tenants.push(write(&app).await);
    }
    // Step 6: refused while the application's v1 registration is recent, then done.
    fails_with(
        run(dir, &["vault", "destroy-kek", "1", "--yes"], ""),
        1,
        "was registered as a process's primary",
    );
    run(
        dir,
        &["vault", "destroy-kek", "1", "--yes", "--quiet-period", "0"],
        "",
    )
    .success();
    tenants.push(write(&app).await);
    // New tenants' data keys re-encrypted away from nothing: run the job again, then read
    // everything, from the command line and from the application.
    run(dir, &["vault", "reencrypt"], "").success();
    assert!(get(dir, "acme").contains(SECRET));
    for t in &tenants {
        assert!(get(dir, t).contains(&format!("sk_live_{t}")), "{t}");
        let got = app
            .tenant(t)
            .unwrap()
            .get::<ApiKey>("stripe")
            .await
            .unwrap();
        assert_eq!(got.value.key.expose_secret(), format!("sk_live_{t}"));
    }
    let report = run(dir, &["vault", "report", "--json"], "");
    let err = stderr(&report);
    report.success();
    assert!(err.is_empty() || !err.contains("error"), "{err}");
}

/// `--tenant-keys postgres://...#schema`: the shred secrets in a PostgreSQL store several
/// servers share (issue 16). `init` creates it, every other command opens it and fails closed
/// on a schema that holds none, and the report names it. Skips (saying how to enable it)
/// without PostgreSQL unless CREDVAULT_REQUIRE_POSTGRES=1.
#[cfg(feature = "postgres")]
#[test]
fn shred_secrets_in_a_postgresql_store() {
    let url = std::env::var("CREDVAULT_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let psql = |sql: &str| {
        std::process::Command::new("psql")
            .args([url.as_str(), "-q", "-c", sql])
            .output()
    };
    match psql("SELECT 1") {
        Ok(out) if out.status.success() => {}
        other => {
            assert!(
                std::env::var("CREDVAULT_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "cannot reach postgres with psql and CREDVAULT_REQUIRE_POSTGRES=1: {other:?}"
            );
            eprintln!("skipping: no PostgreSQL at {url} (set CREDVAULT_PG_URL)");
            return;
        }
    }
    let schema = format!("cv_cli_{}", std::process::id());
    let store = format!("{url}#{schema}");
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    run(d, &["vault", "init", "--tenant-keys", &store], "").success();
    let put = run(
        d,
        &[
            "vault",
            "put",
            "--tenant",
            "acme",
            "--kind",
            "api_key",
            "--name",
            "stripe",
            "--tenant-keys",
            &store,
        ],
        r#"{"provider": "stripe", "key": "sk_live_cli"}"#,
    );
    put.success();
    let got = run(
        d,
        &[
            "vault",
            "get",
            "--tenant",
            "acme",
            "--kind",
            "api_key",
            "--name",
            "stripe",
            "--tenant-keys",
            &store,
        ],
        "",
    );
    assert!(stdout(&got).contains("sk_live_cli"), "{}", stdout(&got));
    let a = run(
        d,
        &["vault", "report", "--json", "--tenant-keys", &store],
        "",
    );
    let report: serde_json::Value = serde_json::from_str(&stdout(&a)).unwrap();
    let named = report["tenant_key_store"].as_str().unwrap();
    assert!(
        named.contains(&schema) && named.starts_with("postgresql "),
        "{named}"
    );
    // A schema with no store: an error with a hint, never a fresh, empty store.
    let wrong = format!("{url}#{schema}_typo");
    let a = run(d, &["vault", "report", "--tenant-keys", &wrong], "");
    let err = fails_with(a, 2, "no credvault shred-secret store");
    assert!(err.contains("--tenant-keys postgres://"), "{err}");
    psql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).unwrap();
}

#[path = "../../tests/common/softhsm.rs"]
#[cfg(feature = "pkcs11")]
mod softhsm;

/// `--keys pkcs11:module=...,token=...,label=...`: the KEK in a PKCS#11 token (SoftHSM2),
/// the PIN from CREDVAULT_PKCS11_PIN (issue 16). `init` makes the first key in the token;
/// other commands only open it; the report names the token. Skips without SoftHSM2 unless
/// CREDVAULT_REQUIRE_PKCS11=1.
#[cfg(feature = "pkcs11")]
#[test]
fn the_kek_in_a_pkcs11_token() {
    let Some(module) = softhsm::module() else {
        assert!(
            std::env::var("CREDVAULT_REQUIRE_PKCS11").as_deref() != Ok("1"),
            "CREDVAULT_REQUIRE_PKCS11=1 but SoftHSM2 is missing"
        );
        eprintln!("skipping: SoftHSM2 is not installed (apt-get install softhsm2)");
        return;
    };
    // The child processes inherit the token directory through SOFTHSM2_CONF.
    softhsm::init_token("cli", "1234");
    let keys = format!("pkcs11:module={},token=cli,label=cli-kek", module.display());
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let with_pin = |args: &[&str], stdin: &str| {
        cli_common::credvault(d)
            .args(args)
            .env("CREDVAULT_PKCS11_PIN", "1234")
            .write_stdin(stdin.to_owned())
            .assert()
    };
    // No PIN: an error with a hint, nothing created.
    let a = run(d, &["vault", "init", "--keys", &keys], "");
    fails_with(a, 2, "CREDVAULT_PKCS11_PIN is not set");
    // Before init the token holds no key under the label: never a fresh start.
    let a = with_pin(&["vault", "report", "--keys", &keys], "");
    fails_with(a, 2, "holds no key");
    with_pin(&["vault", "init", "--keys", &keys], "").success();
    with_pin(
        &[
            "vault", "put", "--tenant", "acme", "--kind", "api_key", "--name", "stripe", "--keys",
            &keys,
        ],
        r#"{"provider": "stripe", "key": "sk_live_hsm"}"#,
    )
    .success();
    let got = with_pin(
        &[
            "vault", "get", "--tenant", "acme", "--kind", "api_key", "--name", "stripe", "--keys",
            &keys,
        ],
        "",
    );
    assert!(stdout(&got).contains("sk_live_hsm"), "{}", stdout(&got));
    let a = with_pin(&["vault", "report", "--json", "--keys", &keys], "");
    let report: serde_json::Value = serde_json::from_str(&stdout(&a)).unwrap();
    let provider = report["kek_provider"].as_str().unwrap();
    assert!(provider.starts_with("PKCS#11 token \"cli\""), "{provider}");
    // A malformed spec is a usage error with the expected form in the hint.
    let a = with_pin(&["vault", "report", "--keys", "pkcs11:module=x"], "");
    let err = fails_with(a, 2, "invalid --keys pkcs11:");
    assert!(err.contains("token=TOKEN"), "{err}");
}

#[path = "../../tests/common/moto.rs"]
#[cfg(feature = "aws-kms")]
mod moto;

/// `--keys awskms:region=...,key=...,endpoint=...`: the KEK in AWS KMS (moto's server here),
/// credentials from the environment (issue 16). The report names KMS; a second key as `key2`
/// is the new primary and `vault rotate --kek` rewraps onto it. Skips without moto unless
/// CREDVAULT_REQUIRE_KMS=1.
#[cfg(feature = "aws-kms")]
#[test]
fn the_kek_in_aws_kms() {
    use credvault::keys::awskms::AwsKmsKeys;
    let Some(endpoint) = moto::endpoint() else {
        return;
    };
    let first = AwsKmsKeys::create_key(&moto::config(&endpoint), "cli").unwrap();
    let second = AwsKmsKeys::create_key(&moto::config(&endpoint), "cli 2").unwrap();
    let keys = format!(
        "awskms:region={},key={first},endpoint={endpoint}",
        moto::REGION
    );
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let with_creds = |args: &[&str], stdin: &str| {
        cli_common::credvault(d)
            .args(args)
            .env("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", moto::SECRET_KEY)
            .env_remove("AWS_SESSION_TOKEN")
            .write_stdin(stdin.to_owned())
            .assert()
    };
    with_creds(&["vault", "init", "--keys", &keys], "").success();
    let put = [
        "vault", "put", "--tenant", "acme", "--kind", "api_key", "--name", "stripe", "--keys",
    ];
    with_creds(
        &[&put[..], &[keys.as_str()]].concat(),
        r#"{"provider": "stripe", "key": "sk_live_kms"}"#,
    )
    .success();
    let a = with_creds(&["vault", "report", "--json", "--keys", &keys], "");
    let report: serde_json::Value = serde_json::from_str(&stdout(&a)).unwrap();
    let provider = report["kek_provider"].as_str().unwrap();
    assert!(
        provider.starts_with("AWS KMS at http://127.0.0.1:"),
        "{provider}"
    );
    // Rotation: the second key as version 2; rewrap; the record still reads.
    let rotated = format!("{keys},key2={second}");
    with_creds(&["vault", "rotate", "--kek", "--keys", &rotated], "").success();
    let got = with_creds(
        &[
            "vault", "get", "--tenant", "acme", "--kind", "api_key", "--name", "stripe", "--keys",
            &rotated,
        ],
        "",
    );
    assert!(stdout(&got).contains("sk_live_kms"), "{}", stdout(&got));
    assert!(!stderr(&got).contains(moto::SECRET_KEY));
    // destroy-kek: checked first, then the old key's deletion is scheduled in KMS.
    let destroy = ["vault", "destroy-kek", "1", "--quiet-period", "0", "--keys"];
    let a = with_creds(&[&destroy[..], &[rotated.as_str()]].concat(), "");
    fails_with(a, 2, "irreversible");
    with_creds(&[&destroy[..], &[rotated.as_str(), "--yes"]].concat(), "").success();
    // Key 1 is pending deletion: a configuration still naming it is refused; without it, the
    // record reads.
    let a = with_creds(&["vault", "report", "--keys", &rotated], "");
    fails_with(a, 2, "PendingDeletion");
    let only_second = format!(
        "awskms:region={},key2={second},endpoint={endpoint}",
        moto::REGION
    );
    let got = with_creds(
        &[
            "vault",
            "get",
            "--tenant",
            "acme",
            "--kind",
            "api_key",
            "--name",
            "stripe",
            "--keys",
            &only_second,
        ],
        "",
    );
    assert!(stdout(&got).contains("sk_live_kms"), "{}", stdout(&got));
    // A malformed spec is a usage error with the expected form in the hint.
    let a = with_creds(&["vault", "report", "--keys", "awskms:key=x"], "");
    let err = fails_with(a, 2, "invalid --keys awskms:");
    assert!(err.contains("region=REGION"), "{err}");
}
