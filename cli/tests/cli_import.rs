//! `credvault vault import-fernet`, run as an operator runs it: legacy keys in a file, JSON
//! lines on stdin, counts on stdout, exit 0 (all imported), 1 (some failed) or 2 (error).

#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap freely"
)]

#[path = "common/cli.rs"]
mod cli_common;

use assert_cmd::assert::Assert;
use credvault::crypto::fernet::Fernet;
use serde_json::{Value, json};
use tempfile::TempDir;

use cli_common::{run, stderr, stdout};

const OLD_SECRET: &str = "gho_oldKey0000000000000000000000000000";
const NEW_SECRET: &str = "gho_newKey1111111111111111111111111111";
const CLEAR_SECRET: &str = "sk_live_clear2222222222222222222222";
const BAD_LINE: &str = "{\"tenant\": \"acme\", \"name\": \"x\", \"token\": \"gho_brokenLine3333\"";

struct Legacy {
    dir: TempDir,
    new: Fernet,
    old: Fernet,
}

/// An initialised vault and `legacy.keys` holding two Fernet keys, newest first.
fn legacy() -> Legacy {
    let dir = TempDir::new().unwrap();
    run(dir.path(), &["vault", "init"], "").success();
    let (new_key, old_key) = (Fernet::generate_key(), Fernet::generate_key());
    std::fs::write(
        dir.path().join("legacy.keys"),
        format!("{}\n{}\n", new_key.expose_secret(), old_key.expose_secret()),
    )
    .unwrap();
    Legacy {
        new: Fernet::new(new_key.expose_secret()).unwrap(),
        old: Fernet::new(old_key.expose_secret()).unwrap(),
        dir,
    }
}

fn line(tenant: &str, name: &str, token: &str) -> String {
    format!(
        "{}\n",
        json!({ "tenant": tenant, "name": name, "token": token })
    )
}

fn import(l: &Legacy, extra: &[&str], stdin: &str) -> Assert {
    let mut args = vec!["vault", "import-fernet", "--legacy-keys", "legacy.keys"];
    args.extend_from_slice(extra);
    run(l.dir.path(), &args, stdin)
}

/// Three good tokens (two under the old key), then four bad lines and a blank one.
fn mixed_input(l: &Legacy) -> String {
    let other = Fernet::new(Fernet::generate_key().expose_secret()).unwrap();
    [
        line("acme", "github", &l.old.encrypt(OLD_SECRET.as_bytes())),
        line("acme", "gitlab", &l.new.encrypt(NEW_SECRET.as_bytes())),
        line("globex", "github", &l.old.encrypt(OLD_SECRET.as_bytes())),
        "\n".to_owned(),
        line("acme", "unknown-key", &other.encrypt(b"gho_other")),
        format!("{BAD_LINE}\n"),
        "{\"tenant\": \"acme\", \"name\": \"no-token\"}\n".to_owned(),
        line("acme", "clear", CLEAR_SECRET),
    ]
    .concat()
}

#[test]
fn import_fernet_imports_each_value_once_and_reports_bad_lines_by_number() {
    let l = legacy();
    let input = mixed_input(&l);
    let first = import(&l, &[], &input);
    let (out, err) = (stdout(&first), stderr(&first));
    first.code(1);
    assert!(
        out.starts_with("imported 3, already present 0, failed 4\n"),
        "{out}"
    );
    assert!(
        out.contains("failed: acme \"unknown-key\": invalid fernet token (hmac does not verify)"),
        "{out}"
    );
    assert!(out.contains("failed: line 6: not valid json"), "{out}");
    assert!(
        out.contains("failed: line 7: not an object with string fields tenant, name and token"),
        "{out}"
    );
    assert!(
        out.contains("failed: acme \"clear\": plaintext not allowed"),
        "{out}"
    );
    assert!(err.contains("4 legacy values were not imported"), "{err}");
    // Not a terminal: the last progress snapshot as a plain line, before the error.
    assert!(
        err.starts_with("credvault: import-fernet: 7 values, "),
        "{err}"
    );
    assert!(err.contains("\n  hint: "), "{err}");
    for secret in [
        OLD_SECRET,
        NEW_SECRET,
        CLEAR_SECRET,
        "gho_brokenLine",
        "gAAAAA",
    ] {
        assert!(!out.contains(secret) && !err.contains(secret), "{out}{err}");
    }

    // The records open to the legacy plaintext; the provider is the record's name.
    let got = run(
        l.dir.path(),
        &[
            "vault",
            "get",
            "--tenant",
            "acme",
            "--kind",
            "oauth_token",
            "--name",
            "gitlab",
        ],
        "",
    )
    .success();
    let record: Value = serde_json::from_str(&stdout(&got)).unwrap();
    assert_eq!(record["access_token"], NEW_SECRET);
    assert_eq!(record["provider"], "gitlab");

    // The audit log names the import job.
    let audit = run(
        l.dir.path(),
        &["vault", "audit", "--tenant", "acme", "--json"],
        "",
    )
    .success();
    let rows: Value = serde_json::from_str(&stdout(&audit)).unwrap();
    let puts: Vec<&Value> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "put")
        .collect();
    assert_eq!(puts.len(), 2, "{rows}");
    assert!(puts.iter().all(|r| r["actor"] == "job:import"), "{rows}");

    // Again: nothing imported twice.
    let second = import(&l, &["--json"], &input);
    let report: Value = serde_json::from_str(&stdout(&second)).unwrap();
    second.code(1);
    assert_eq!(report["imported"], 0);
    assert_eq!(report["already_present"], 3);
    assert_eq!(report["failed"], 4);
    assert_eq!(report["failures_truncated"], false);
    assert_eq!(report["failures"][1]["tenant"], Value::Null);
    assert_eq!(report["failures"][1]["reason"], "line 6: not valid json");
}

#[test]
fn import_fernet_exits_0_when_everything_imports() {
    let l = legacy();
    let input = [
        line("acme", "stripe", &l.old.encrypt(b"sk_live_a")),
        line("acme", "openai", CLEAR_SECRET),
    ]
    .concat();
    let a = import(
        &l,
        &[
            "--kind",
            "api_key",
            "--provider",
            "billing",
            "--allow-plaintext",
            "--json",
        ],
        &input,
    )
    .success();
    let report: Value = serde_json::from_str(&stdout(&a)).unwrap();
    assert_eq!(report["imported"], 2);
    assert_eq!(report["failed"], 0);
    let got = run(
        l.dir.path(),
        &[
            "vault", "get", "--tenant", "acme", "--kind", "api_key", "--name", "openai",
        ],
        "",
    )
    .success();
    let record: Value = serde_json::from_str(&stdout(&got)).unwrap();
    assert_eq!(record["key"], CLEAR_SECRET);
    assert_eq!(record["provider"], "billing");
}

#[test]
fn import_fernet_refuses_a_bad_or_missing_key_file_with_status_2() {
    let l = legacy();
    std::fs::write(l.dir.path().join("legacy.keys"), "AAAA\n").unwrap();
    let a = import(&l, &[], &line("acme", "github", "gAAAAAxyz"));
    let err = stderr(&a);
    a.code(2);
    assert!(err.contains("fernet key file legacy.keys line 1"), "{err}");
    assert!(err.contains("\n  hint: "), "{err}");

    std::fs::write(l.dir.path().join("legacy.keys"), "\n\n").unwrap();
    let a = import(&l, &[], "");
    let err = stderr(&a);
    a.code(2);
    assert!(err.contains("multifernet needs at least one key"), "{err}");

    let a = run(
        l.dir.path(),
        &["vault", "import-fernet", "--legacy-keys", "missing.keys"],
        "",
    );
    let err = stderr(&a);
    a.code(2);
    assert!(err.contains("missing.keys"), "{err}");
}

#[test]
fn import_fernet_without_legacy_keys_is_a_usage_error() {
    let l = legacy();
    let a = run(l.dir.path(), &["vault", "import-fernet"], "");
    let err = stderr(&a);
    a.code(2);
    assert!(err.contains("--legacy-keys"), "{err}");
}
