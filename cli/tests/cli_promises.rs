//! `credvault promises check` and `--promises` (issue 15 items 2 and 3): the report in its
//! three formats, the exit status a cron job relies on, and settings or commands that would
//! break a promise refused.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap freely"
)]

#[path = "common/cli.rs"]
mod cli_common;

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use cli_common::{fails_with, run, stdout};

fn example(name: &str) -> String {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "examples",
        "promises",
        name,
    ]
    .iter()
    .collect();
    path.display().to_string()
}

const TOKEN: &str = r#"{"provider": "github", "access_token": "gho_1", "token_type": "Bearer"}"#;

fn put(dir: &Path, extra: &[&str], name: &str) -> assert_cmd::assert::Assert {
    let mut args = vec!["vault"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
        "put",
        "--tenant",
        "acme",
        "--kind",
        "oauth_token",
        "--name",
        name,
    ]);
    run(dir, &args, TOKEN)
}

#[test]
fn check_reports_each_promise_and_exits_on_the_verdict() {
    let dir = TempDir::new().unwrap();
    run(dir.path(), &["vault", "init"], "").success();
    put(dir.path(), &[], "github").success();

    // The CRM promises AES-256: the vault (GCM by default) keeps every promise: exit 0.
    let crm = example("b2b-crm.toml");
    let ok = run(dir.path(), &["promises", "check", "--promises", &crm], "").success();
    let text = stdout(&ok);
    assert!(text.starts_with("promises of B2B CRM: kept\n"), "{text}");
    assert!(text.contains("\nat_rest: kept\n"), "{text}");
    assert!(
        text.contains("records_by_suite: {\"aes-256-gcm\":1,\"fernet\":0}"),
        "{text}"
    );

    // Kalpa promises Fernet: the GCM record breaks it: exit 1, named.
    let kalpa = example("kalpa-marketing.toml");
    let broken = run(dir.path(), &["promises", "check", "--promises", &kalpa], "");
    let text = stdout(&broken);
    assert!(text.contains("\nat_rest: broken\n"), "{text}");
    assert!(
        text.contains("problem: 1 record(s) sealed with another suite"),
        "{text}"
    );
    fails_with(broken, 1, "promises not kept: at_rest (broken)");

    let json = run(
        dir.path(),
        &[
            "promises",
            "check",
            "--promises",
            &kalpa,
            "--format",
            "json",
        ],
        "",
    );
    let report: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    json.code(1);
    assert_eq!(report["status"], "broken");
    assert_eq!(report["promises"][0]["promise"], "at_rest");
    assert_eq!(
        report["promises"][0]["evidence"]["records_sealed_with_another_suite"],
        1
    );

    let md = run(
        dir.path(),
        &["promises", "check", "--promises", &kalpa, "--format", "md"],
        "",
    );
    let text = stdout(&md);
    md.code(1);
    assert!(
        text.starts_with("# Promises of Kalpa marketing automation\n"),
        "{text}"
    );
    assert!(text.contains("| at_rest | Secrets and OAuth tokens are encrypted at rest with Fernet (AES-128 + HMAC-SHA256). | broken |"), "{text}");

    // Re-encrypting under the promise file moves the record to Fernet: kept, exit 0.
    run(
        dir.path(),
        &["vault", "--promises", &kalpa, "reencrypt"],
        "",
    )
    .success();
    run(dir.path(), &["promises", "check", "--promises", &kalpa], "").success();
    // The purge runs elsewhere (cron); the check reads its last run from the database.
    run(dir.path(), &["vault", "--promises", &kalpa, "purge"], "").success();
    let text = stdout(&run(dir.path(), &["promises", "check", "--promises", &kalpa], "").success());
    assert!(
        text.contains("\n  last_purge_oldest_overdue_seconds: 0\n"),
        "{text}"
    );
    assert!(text.contains("\n  last_purge_started_at: 1"), "{text}");
    // New records follow the file.
    put(dir.path(), &["--promises", &kalpa], "gitlab").success();
    run(dir.path(), &["promises", "check", "--promises", &kalpa], "").success();

    // Stored hashes counted against the promise.
    let hashes = dir.path().join("hashes.txt");
    std::fs::write(&hashes, "5f4dcc3b5aa765d61d8327deb882cf99\n").unwrap();
    let md5 = run(
        dir.path(),
        &[
            "promises",
            "check",
            "--promises",
            &kalpa,
            "--password-hashes",
            hashes.to_str().unwrap(),
        ],
        "",
    );
    assert!(
        stdout(&md5).contains("\npasswords: broken\n"),
        "{}",
        stdout(&md5)
    );
    md5.code(1);
}

#[test]
fn a_flag_or_command_that_breaks_a_promise_is_refused() {
    let dir = TempDir::new().unwrap();
    let kalpa = example("kalpa-marketing.toml");
    run(dir.path(), &["vault", "--promises", &kalpa, "init"], "").success();
    let err = fails_with(
        put(
            dir.path(),
            &["--promises", &kalpa, "--sealing-suite", "aes-256-gcm"],
            "x",
        ),
        2,
        "breaks the promise at_rest.suite",
    );
    assert!(err.contains("sealing_suite = aes-256-gcm"), "{err}");
    put(dir.path(), &["--promises", &kalpa], "github").success();
    // The command line has no revoker: a disconnect would leave the token live.
    fails_with(
        run(
            dir.path(),
            &[
                "vault",
                "--promises",
                &kalpa,
                "disconnect",
                "--tenant",
                "acme",
                "--provider",
                "github",
            ],
            "",
        ),
        2,
        "disconnect.tokens",
    );
    fails_with(
        run(
            dir.path(),
            &[
                "vault",
                "--promises",
                &kalpa,
                "tenant",
                "delete",
                "--tenant",
                "acme",
            ],
            "",
        ),
        2,
        "account_deletion.tokens",
    );
    // Still there.
    run(
        dir.path(),
        &[
            "vault",
            "--promises",
            &kalpa,
            "get",
            "--tenant",
            "acme",
            "--kind",
            "oauth_token",
            "--name",
            "github",
        ],
        "",
    )
    .success();

    // A file credvault cannot keep is refused with its line.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "policy = \"CRM\"\n\n[at_rest]\nsuite = \"AES-256 Fernet\"\n",
    )
    .unwrap();
    let err = fails_with(
        run(
            dir.path(),
            &["promises", "check", "--promises", bad.to_str().unwrap()],
            "",
        ),
        2,
        "line 4",
    );
    assert!(err.contains("Fernet is AES-128"), "{err}");
    fails_with(
        run(
            dir.path(),
            &["promises", "check", "--promises", "missing.toml"],
            "",
        ),
        2,
        "missing.toml",
    );
}
