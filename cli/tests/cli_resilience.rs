//! The command line over rows it cannot read, and over audit rows written to forge lines
//! (issue 14, items 5 and 6): a job skips and names the bad row, exits 1, and keeps its
//! output whole; nothing read from the database reaches the terminal unescaped; an actor
//! that would forge an audit line is refused.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap freely"
)]

#[path = "common/cli.rs"]
mod cli_common;

use std::path::Path;

use tempfile::TempDir;

use cli_common::{run, stderr, stdout};

fn token_json(secret: &str) -> String {
    format!(r#"{{"provider": "github", "access_token": "{secret}", "token_type": "Bearer"}}"#)
}

/// A vault whose tenant acme holds github tokens `a`, `b` and `c`.
fn vault_with_tokens() -> TempDir {
    let dir = TempDir::new().unwrap();
    run(dir.path(), &["vault", "init"], "").success();
    for name in ["a", "b", "c"] {
        let args = [
            "vault",
            "put",
            "--tenant",
            "acme",
            "--kind",
            "oauth_token",
            "--name",
            name,
        ];
        run(dir.path(), &args, &token_json(&format!("gho_{name}"))).success();
    }
    dir
}

/// Runs `sql` on the vault's SQLite file, as a hand edit (or an attacker) would.
async fn raw(dir: &Path, sql: &str) {
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.join("credvault-data/credvault.db").display()
    ))
    .await
    .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

/// Record `b` gets a name with a terminal escape: no longer a valid record name.
async fn break_b(dir: &Path) {
    raw(
        dir,
        "UPDATE credvault_secrets SET name = 'b' || char(27) || '[2J' WHERE name = 'b'",
    )
    .await;
}

#[tokio::test]
async fn list_skips_names_and_escapes_a_bad_row_and_exits_1() {
    let vault = vault_with_tokens();
    let dir = vault.path();
    break_b(dir).await;
    let a = run(dir, &["vault", "list", "--tenant", "acme"], "");
    let (out, err) = (stdout(&a), stderr(&a));
    a.code(1);
    assert!(out.contains("a ") && out.contains("c "), "{out}");
    assert!(
        !out.contains('\u{1b}') && !err.contains('\u{1b}'),
        "raw escape printed"
    );
    assert!(
        err.contains("b\\u{1b}[2J") && err.contains("invalid_name"),
        "{err}"
    );
}

#[tokio::test]
async fn export_to_stdout_stays_whole_names_the_bad_rows_and_exits_1() {
    let vault = vault_with_tokens();
    let dir = vault.path();
    break_b(dir).await;
    raw(
        dir,
        "UPDATE credvault_secrets SET sealed = substr(sealed, 1, 10) WHERE name = 'c'",
    )
    .await;
    let a = run(dir, &["vault", "export", "--tenant", "acme"], "");
    let out = stdout(&a);
    a.code(1);
    let doc: serde_json::Value = serde_json::from_str(&out).expect("well-formed json");
    assert_eq!(doc["records"].as_array().unwrap().len(), 1);
    assert_eq!(doc["unreadable"].as_array().unwrap().len(), 2, "{doc}");
    assert!(!doc["audit"].as_array().unwrap().is_empty(), "{doc}");
}

#[tokio::test]
async fn export_to_a_file_names_the_bad_rows_and_exits_1() {
    let vault = vault_with_tokens();
    let dir = vault.path();
    break_b(dir).await;
    let a = run(
        dir,
        &[
            "vault", "export", "--tenant", "acme", "--format", "csv", "--out", "acme.csv",
        ],
        "",
    );
    let err = stderr(&a);
    a.code(1);
    assert!(err.contains("b\\u{1b}[2J"), "{err}");
    let csv = std::fs::read_to_string(dir.join("acme.csv")).unwrap();
    let (records, audit) = csv
        .split_once("\n\n")
        .expect("records, then the audit rows");
    assert_eq!(records.lines().count(), 3, "header and a, c: {csv}");
    assert!(
        audit.starts_with("at,kind,name,action,actor,outcome\n"),
        "{csv}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn disconnect_and_reencrypt_skip_a_bad_row_and_exit_1() {
    let vault = vault_with_tokens();
    let dir = vault.path();
    run(dir, &["vault", "rotate", "--all"], "").success();
    break_b(dir).await;
    let a = run(dir, &["vault", "reencrypt"], "");
    let (out, err) = (stdout(&a), stderr(&a));
    a.code(1);
    assert!(out.contains("resealed 2 of 3"), "{out}");
    assert!(
        out.contains("b\\u{1b}[2J") || err.contains("b\\u{1b}[2J"),
        "{out}{err}"
    );
    let a = run(
        dir,
        &[
            "vault",
            "disconnect",
            "--tenant",
            "acme",
            "--provider",
            "github",
        ],
        "",
    );
    let (out, err) = (stdout(&a), stderr(&a));
    a.code(1);
    assert!(out.contains("deleted 2 github credentials"), "{out}");
    assert!(err.contains("b\\u{1b}[2J"), "{err}");
}

#[tokio::test]
async fn report_and_rotate_all_name_a_bad_data_key_row_and_exit_1() {
    let vault = vault_with_tokens();
    let dir = vault.path();
    let put = [
        "vault",
        "put",
        "--tenant",
        "globex",
        "--kind",
        "oauth_token",
        "--name",
        "x",
    ];
    run(dir, &put, &token_json("gho_x")).success();
    raw(
        dir,
        "UPDATE credvault_tenants SET kek_version = -1 WHERE tenant_id = 'acme'",
    )
    .await;
    let a = run(dir, &["vault", "report"], "");
    let (out, err) = (stdout(&a), stderr(&a));
    a.code(1);
    assert!(out.contains("globex"), "the rest is reported: {out}");
    assert!(
        out.contains("unreadable: tenant acme kind data_key name 1"),
        "{out}"
    );
    assert!(err.contains("rows could not be read"), "{err}");
    let a = run(dir, &["vault", "rotate", "--all"], "");
    let (out, err) = (stdout(&a), stderr(&a));
    a.code(1);
    assert!(out.contains("1 tenants have a new data key"), "{out}");
    assert!(out.contains("unreadable, skipped: tenant acme"), "{out}");
    assert!(err.contains("were not rotated"), "{err}");
}

#[tokio::test]
async fn audit_prints_an_old_forged_row_escaped() {
    let vault = vault_with_tokens();
    let dir = vault.path();
    // Written before actors were checked (or by hand): a screen clear and a fake line.
    raw(
        dir,
        "INSERT INTO credvault_audit (at, tenant_id, kind, name, action, actor, outcome) \
         VALUES (1, 'acme', NULL, NULL, 'get', \
         'evil' || char(27) || '[2J' || char(10) || '2\tacme\t-\t-\ttenant_restore\tadmin', 'ok')",
    )
    .await;
    let a = run(dir, &["vault", "audit", "--tenant", "acme"], "");
    let out = stdout(&a);
    a.success();
    assert!(!out.contains('\u{1b}'), "raw escape printed: {out:?}");
    assert!(out.contains("evil\\u{1b}[2J\\n2\\tacme"), "{out}");
    assert!(
        !out.lines().any(|l| l.starts_with("2\t")),
        "a forged line was printed as a line: {out}"
    );
}

#[test]
fn an_actor_that_would_forge_a_line_is_refused() {
    let vault = vault_with_tokens();
    let dir = vault.path();
    for actor in ["bob\nfake", "x\u{202e}nimda", "a\u{1b}[2J"] {
        let a = run(
            dir,
            &[
                "vault",
                "get",
                "--tenant",
                "acme",
                "--kind",
                "oauth_token",
                "--name",
                "a",
                "--actor",
                actor,
            ],
            "",
        );
        let err = stderr(&a);
        a.code(2);
        assert!(err.contains("actor"), "{err}");
    }
}
