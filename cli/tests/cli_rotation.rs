//! Key rotation from the command line, run as an operator runs it: `vault rotate`,
//! `vault reencrypt`, `vault report`, `vault destroy-kek` and `vault min-dek-version` on a
//! SQLite file, with their exit statuses (0 ok, 1 failed check, 2 error) and progress lines.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap freely"
)]

#[path = "common/cli.rs"]
mod cli_common;

use std::path::Path;

use assert_cmd::assert::Assert;
use serde_json::Value;
use tempfile::TempDir;

use cli_common::{credvault, fails_with, stderr, stdout};

const ACME_GITHUB: &str = "gho_acmeGithub0000000000000000000000000";
const ACME_STRIPE: &str = "sk_live_acmeStripe11111111111111111111";
const GLOBEX_GITHUB: &str = "gho_globexGithub222222222222222222222222";
const SECRETS: [&str; 3] = [ACME_GITHUB, ACME_STRIPE, GLOBEX_GITHUB];

/// Runs a command and checks that no secret reaches stderr.
fn run(dir: &Path, args: &[&str], stdin: &str) -> Assert {
    let a = cli_common::run(dir, args, stdin);
    let err = stderr(&a);
    for secret in SECRETS {
        assert!(!err.contains(secret), "{args:?} printed a secret: {err}");
    }
    a
}

fn json(a: &Assert) -> Value {
    serde_json::from_str(&stdout(a)).unwrap()
}

/// An initialised vault with records in two tenants: acme (github token, stripe key) and
/// globex (github token).
fn vault_with_two_tenants() -> TempDir {
    let dir = TempDir::new().unwrap();
    run(dir.path(), &["vault", "init"], "").success();
    put(
        dir.path(),
        "acme",
        "oauth_token",
        "github",
        &token(ACME_GITHUB),
    );
    let stripe = format!(r#"{{"provider": "stripe", "key": "{ACME_STRIPE}"}}"#);
    put(dir.path(), "acme", "api_key", "stripe", &stripe);
    put(
        dir.path(),
        "globex",
        "oauth_token",
        "github",
        &token(GLOBEX_GITHUB),
    );
    dir
}

fn token(secret: &str) -> String {
    format!(r#"{{"provider": "github", "access_token": "{secret}", "token_type": "Bearer"}}"#)
}

fn put(dir: &Path, tenant: &str, kind: &str, name: &str, record: &str) {
    let args = [
        "vault", "put", "--tenant", tenant, "--kind", kind, "--name", name,
    ];
    run(dir, &args, record).success();
}

/// Every secret still comes back from `vault get`.
fn assert_secrets_readable(dir: &Path) {
    for (tenant, kind, name, secret) in [
        ("acme", "oauth_token", "github", ACME_GITHUB),
        ("acme", "api_key", "stripe", ACME_STRIPE),
        ("globex", "oauth_token", "github", GLOBEX_GITHUB),
    ] {
        let args = [
            "vault", "get", "--tenant", tenant, "--kind", kind, "--name", name,
        ];
        let got = run(dir, &args, "").success();
        assert!(stdout(&got).contains(secret), "{tenant} {name}");
    }
}

#[test]
fn a_rotation_from_start_to_end_keeps_every_secret_readable() {
    let vault = vault_with_two_tenants();
    let dir = vault.path();
    run(dir, &["vault", "report"], "").success();

    let rotated = run(dir, &["vault", "rotate", "--all"], "").success();
    assert!(
        stdout(&rotated).starts_with("2 tenants have a new data key"),
        "{}",
        stdout(&rotated)
    );
    fails_with(
        run(dir, &["vault", "report"], ""),
        1,
        "3 records pending re-encryption",
    );

    let a = run(
        dir,
        &["vault", "reencrypt", "--json", "--batch-size", "2"],
        "",
    )
    .success();
    let report = json(&a);
    assert_eq!(report["total"], 3);
    assert_eq!(report["resealed"], 3);
    assert_eq!(report["failed"], 0);
    assert_eq!(report["remaining"], 0);
    assert_eq!(report["destroyed_deks"], 2);
    let err = stderr(&a);
    assert!(
        err.contains("credvault: reencrypt: 3/3 records (100%)"),
        "{err}"
    );
    let clean = run(dir, &["vault", "report", "--json"], "").success();
    assert_eq!(json(&clean)["records_pending_reencryption"], 0);
    assert_secrets_readable(dir);

    // A new KEK: version 1 still wraps both tenants' data keys until the rewrap.
    run(
        dir,
        &[
            "key",
            "rotate",
            "--keys",
            "credvault-keys/credvault-keys.json",
        ],
        "",
    )
    .success();
    let err = fails_with(
        run(dir, &["vault", "destroy-kek", "1", "--yes"], ""),
        1,
        "kek version v1 is still needed by 2 tenant data keys",
    );
    assert!(
        err.contains("run `credvault vault rotate --kek` first"),
        "{err}"
    );
    let rewrap = run(dir, &["vault", "rotate", "--kek"], "").success();
    assert!(
        stdout(&rewrap).starts_with("rewrapped 2 data keys under the primary KEK"),
        "{}",
        stdout(&rewrap)
    );
    // The puts above ran with v1 as their primary a moment ago: a process like them may
    // still wrap under it, so the quiet period (15 minutes by default) must pass first.
    let err = fails_with(
        run(dir, &["vault", "destroy-kek", "1", "--yes"], ""),
        1,
        "key-encryption key v1 was registered as a process's primary",
    );
    assert!(err.contains("--quiet-period"), "{err}");
    let no_wait = ["vault", "destroy-kek", "1", "--quiet-period", "0"];
    fails_with(run(dir, &no_wait, ""), 2, "irreversible");
    run(dir, &[&no_wait[..], &["--yes"]].concat(), "").success();
    let keys = json(&run(
        dir,
        &[
            "key",
            "list",
            "--keys",
            "credvault-keys/credvault-keys.json",
            "--json",
        ],
        "",
    ));
    assert_eq!(keys["keys"][0]["state"], "destroyed", "{keys}");

    assert_secrets_readable(dir);
    run(dir, &["vault", "report"], "").success();
}

#[test]
fn report_lists_each_data_key_and_says_what_to_run() {
    let vault = vault_with_two_tenants();
    let dir = vault.path();
    let a = run(dir, &["vault", "rotate", "--tenant", "acme"], "").success();
    assert!(
        stdout(&a).starts_with("tenant acme now seals with data key v2"),
        "{}",
        stdout(&a)
    );
    let a = run(dir, &["vault", "report"], "");
    let table = stdout(&a);
    let err = fails_with(a, 1, "2 records pending re-encryption");
    assert!(err.contains("credvault vault reencrypt"), "{err}");
    assert!(table.starts_with("TENANT "), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("acme ") && l.contains(" retired ") && l.ends_with(" 2 -")),
        "{table}"
    );
    assert!(table.contains("pending re-encryption 2;"), "{table}");
    // Keys made just now are not overdue even under a one-day policy.
    let a = run(
        dir,
        &["vault", "report", "--json", "--dek-max-age", "1"],
        "",
    );
    let report = json(&a);
    a.code(1);
    assert_eq!(report["policy"]["dek_max_age_seconds"], 86_400);
    assert_eq!(report["overdue_keys"], 0);
}

#[test]
fn a_minimum_data_key_version_makes_reencrypt_report_the_records_it_cannot_move() {
    let vault = vault_with_two_tenants();
    let dir = vault.path();
    run(dir, &["vault", "rotate", "--tenant", "acme"], "").success();
    run(
        dir,
        &["vault", "min-dek-version", "--tenant", "acme", "2"],
        "",
    )
    .success();
    let a = run(dir, &["vault", "reencrypt"], "");
    let out = stdout(&a);
    fails_with(a, 1, "2 records could not be re-encrypted");
    assert!(out.contains("failed 2, remaining 2"), "{out}");
    assert!(
        out.contains("failed: acme oauth_token \"github\": sealed with data key version v1, below"),
        "{out}"
    );
    fails_with(
        run(
            dir,
            &["vault", "min-dek-version", "--tenant", "acme", "3"],
            "",
        ),
        2,
        "above its current version",
    );
}

#[test]
fn destroy_kek_will_not_rewrite_keys_from_the_environment() {
    let vault = vault_with_two_tenants();
    let dir = vault.path();
    let keys = std::fs::read_to_string(dir.join("credvault-keys/credvault-keys.json")).unwrap();
    let mut cmd = credvault(dir);
    cmd.env("CREDVAULT_KEYS", keys)
        .args(["vault", "destroy-kek", "1", "--yes"]);
    fails_with(cmd.assert(), 2, "$CREDVAULT_KEYS");
}

#[test]
fn bad_rotation_flags_exit_2() {
    let vault = vault_with_two_tenants();
    let cases: &[&[&str]] = &[
        &["vault", "rotate"],
        &["vault", "rotate", "--all", "--kek"],
        &["vault", "rotate", "--tenant", "acme", "--all"],
        &["vault", "reencrypt", "--batch-size", "0"],
        &["vault", "reencrypt", "--batch-size", "many"],
        &["vault", "report", "--dek-max-age", "0"],
        &["vault", "destroy-kek"],
        &["vault", "destroy-kek", "one", "--yes"],
        &["vault", "min-dek-version", "--tenant", "acme"],
    ];
    for args in cases {
        let a = run(vault.path(), args, "");
        let err = stderr(&a);
        a.code(2);
        assert!(
            err.contains("Usage:") || err.contains("try '--help'"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn every_rotation_command_has_help_with_an_example() {
    let dir = TempDir::new().unwrap();
    for command in [
        "rotate",
        "reencrypt",
        "report",
        "destroy-kek",
        "min-dek-version",
    ] {
        let help = stdout(&run(dir.path(), &["vault", command, "--help"], "").success());
        assert!(
            help.contains("Example") && help.contains("credvault vault "),
            "{command}: {help}"
        );
    }
}

/// `--sealing-suite fernet`: the report counts records per suite and flags those sealed with
/// the other one, `vault reencrypt` moves them (and back), and `vault fernet-key` prints the
/// tenant's keys, audited.
#[test]
fn sealing_suite_switch_and_fernet_key_export() {
    let dir = vault_with_two_tenants();
    let dir = dir.path();
    let gcm = json(&run(dir, &["vault", "report", "--json"], "").success());
    assert_eq!(gcm["records_by_suite"]["aes-256-gcm"], 3);
    assert_eq!(gcm["records_by_suite"]["fernet"], 0);
    fails_with(
        run(dir, &["vault", "report", "--sealing-suite", "fernet"], ""),
        1,
        "3 records sealed with another suite than the vault's",
    );
    for (suite, other) in [("fernet", "aes-256-gcm"), ("aes-256-gcm", "fernet")] {
        let args = ["vault", "reencrypt", "--json", "--sealing-suite", suite];
        let moved = json(&run(dir, &args, "").success());
        assert_eq!(
            (moved["resealed"].clone(), moved["remaining"].clone()),
            (3.into(), 0.into())
        );
        let args = ["vault", "report", "--json", "--sealing-suite", suite];
        let report = json(&run(dir, &args, "").success());
        assert_eq!(report["records_by_suite"][suite], 3);
        assert_eq!(report["records_by_suite"][other], 0);
        assert_eq!(report["records_to_reseal"], 0);
        // Reads accept both suites whatever the setting.
        assert_secrets_readable(dir);
    }
    let args = [
        "vault",
        "fernet-key",
        "--tenant",
        "acme",
        "--actor",
        "ops:alice",
    ];
    let keys = stdout(&run(dir, &args, "").success());
    let lines: Vec<&str> = keys.lines().collect();
    assert_eq!(lines.len(), 1, "{keys}");
    assert!(credvault::crypto::Fernet::new(lines[0]).is_ok());
    let audit = run(dir, &["vault", "audit", "--tenant", "acme", "--json"], "").success();
    let audit = stdout(&audit);
    assert!(
        audit.contains("fernet_key_export") && audit.contains("ops:alice"),
        "{audit}"
    );
    assert!(!audit.contains(lines[0]), "the audit log holds the key");
    fails_with(
        run(dir, &["vault", "fernet-key", "--tenant", "nobody"], ""),
        2,
        "nobody",
    );
}
