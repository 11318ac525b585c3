//! README's "Operating credvault" examples, run as written, so that they cannot drift from the
//! command line: each `sh` block of that section runs in bash in a scratch directory (the
//! absolute paths it names moved under it), with `credvault` being the binary under test. Every
//! command must exit as the README says (0 unless its comment says otherwise), and the output
//! the README shows must be what the command prints.

#![cfg(unix)]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap freely"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use credvault::crypto::fernet::Fernet;
use tempfile::TempDir;

/// The `sh` blocks of README's "Operating credvault" section, in order.
fn operating_blocks() -> Vec<String> {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = std::fs::read_to_string(readme).unwrap();
    let start = text
        .find("\n## Operating credvault\n")
        .expect("the section exists");
    let section = &text[start + 1..];
    let section = &section[..section.find("\n## ").map_or(section.len(), |i| i + 1)];
    let mut blocks = Vec::new();
    let mut rest = section;
    while let Some(open) = rest.find("```sh\n") {
        let body = &rest[open + 6..];
        let close = body.find("\n```").unwrap();
        blocks.push(body[..=close].to_owned());
        rest = &body[close + 4..];
    }
    blocks
}

/// One `credvault` call the script made: its arguments, exit status, stdout and stderr.
#[derive(Debug)]
struct Call {
    args: String,
    status: i32,
    stdout: String,
    stderr: String,
}

/// Runs `block` with bash in `dir` (with `env` set) and returns every `credvault` call made.
/// Absolute paths of the README are moved under `dir`.
fn run_block(dir: &Path, block: &str, env: &[(&str, &str)]) -> Vec<Call> {
    let root = dir.display().to_string();
    let script = block
        .replace("/var/lib/app-keys", &format!("{root}/var/lib/app-keys"))
        .replace("/var/lib/app/", &format!("{root}/var/lib/app/"))
        .replace("/var/lib/app ", &format!("{root}/var/lib/app "))
        .replace("/etc/app", &format!("{root}/etc/app"));
    let calls_dir = dir.join(".calls");
    std::fs::create_dir_all(&calls_dir).unwrap();
    // `credvault` is a function that runs the binary, keeps what each call printed and its
    // status, and passes stdout on (the README pipes and redirects it).
    let prelude = r#"
credvault() {
  # A counter in a file: a call in a pipeline runs in a subshell.
  local n=$(( $(cat "$CALLS/count" 2>/dev/null || echo 0) + 1 ))
  printf '%s' "$n" >"$CALLS/count"
  "$CREDVAULT_BIN" "$@" >"$CALLS/$n.out" 2>"$CALLS/$n.err"
  local s=$?
  printf '%s\n' "$*" >"$CALLS/$n.args"
  printf '%s' "$s" >"$CALLS/$n.status"
  cat "$CALLS/$n.out"
  return $s
}
"#;
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("{prelude}\n{script}"))
        .current_dir(dir)
        .env("CREDVAULT_BIN", env!("CARGO_BIN_EXE_credvault"))
        .env("CALLS", &calls_dir)
        .env_remove("CREDVAULT_KEYS")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    // credvault's own stderr is kept per call: anything here is bash's (a typo, a missing file).
    assert!(
        out.stderr.is_empty(),
        "bash complained running:\n{block}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |n: usize, ext: &str| -> String {
        std::fs::read_to_string(calls_dir.join(format!("{n}.{ext}"))).unwrap_or_default()
    };
    let calls = (1..)
        .take_while(|n| calls_dir.join(format!("{n}.status")).exists())
        .map(|n| Call {
            args: read(n, "args").trim_end().to_owned(),
            status: read(n, "status").parse().unwrap(),
            stdout: read(n, "out"),
            stderr: read(n, "err"),
        })
        .collect();
    std::fs::remove_dir_all(&calls_dir).unwrap();
    calls
}

/// Asserts that each call exited as `expected` says for the first pattern its arguments
/// start with (0 when none matches).
fn assert_statuses(calls: &[Call], expected: &[(&str, i32)]) {
    for call in calls {
        let want = expected
            .iter()
            .find(|(prefix, _)| call.args.starts_with(prefix))
            .map_or(0, |(_, status)| *status);
        assert_eq!(call.status, want, "credvault {}: {call:#?}", call.args);
    }
}

fn call<'a>(calls: &'a [Call], prefix: &str) -> &'a Call {
    calls
        .iter()
        .find(|c| c.args.starts_with(prefix))
        .unwrap_or_else(|| panic!("the README runs `credvault {prefix}`: {calls:#?}"))
}

#[test]
fn setting_up_and_rotating_runs_as_written() {
    let blocks = operating_blocks();
    assert_eq!(
        blocks.len(),
        3,
        "README's operating section has three sh blocks"
    );
    let dir = TempDir::new().unwrap();
    let calls = run_block(dir.path(), &blocks[0], &[]);
    // Step 6 is refused as the README says: v1 was primary moments ago (the quiet period).
    assert_statuses(&calls, &[("vault destroy-kek", 1)]);
    assert!(
        call(&calls, "vault destroy-kek")
            .stderr
            .contains("quiet period")
            || call(&calls, "vault destroy-kek").stderr.contains("primary"),
        "{:#?}",
        call(&calls, "vault destroy-kek")
    );
    let rewrap = call(&calls, "vault rotate --db");
    assert!(
        rewrap
            .stdout
            .starts_with("rewrapped 1 data keys under the primary KEK"),
        "README shows what `vault rotate --kek` prints: {rewrap:#?}"
    );
    assert!(
        call(&calls, "vault get")
            .stdout
            .contains("gho_16C7e42F292c6912E7710c838347Ae178B4a"),
        "the token still opens"
    );
    for path in ["etc/app/credvault-keys.json", "var/lib/app/credvault.db"] {
        assert!(dir.path().join(path).exists(), "{path}");
    }
}

#[test]
fn fernet_and_password_examples_run_as_written() {
    let blocks = operating_blocks();
    let dir = TempDir::new().unwrap();
    let key = Fernet::generate_key();
    let fernet = Fernet::new(key.expose_secret()).unwrap();
    std::fs::write(dir.path().join("fernet.keys"), key.expose_secret()).unwrap();
    // The README's decrypt is the failing case ("exit 1: invalid token").
    std::fs::write(dir.path().join("token.txt"), "gAAAAABnot-a-token").unwrap();
    let old = fernet.encrypt(b"rotate me");
    std::fs::write(dir.path().join("old-token.txt"), old).unwrap();
    let bcrypt = std::fs::read_to_string(cli_fixture("pw.bcrypt")).unwrap();
    let calls = run_block(
        dir.path(),
        &blocks[1],
        &[("STORED_HASH", bcrypt.trim_end()), ("PASSWORD", "pw")],
    );
    assert_statuses(&calls, &[("fernet decrypt", 1)]);
    let verify = call(&calls, "password verify");
    let shown = readme_comment_after(&blocks[1], "credvault password verify");
    assert_eq!(
        verify.stdout.trim_end(),
        &shown[..=shown.find('}').unwrap()],
        "README shows what `password verify` prints"
    );
    let rotated = std::fs::read_to_string(dir.path().join("new-token.txt")).unwrap();
    assert_eq!(
        fernet.decrypt(rotated.trim_end()).unwrap().expose_secret(),
        b"rotate me"
    );
    let hash = call(&calls, "password hash");
    assert!(hash.stdout.starts_with("$2b$12$"), "{hash:#?}");
}

#[test]
fn importing_a_fernet_column_runs_as_written() {
    let blocks = operating_blocks();
    let dir = TempDir::new().unwrap();
    // The operator's vault, at the command's default paths.
    let init = Command::new(env!("CARGO_BIN_EXE_credvault"))
        .args(["vault", "init"])
        .current_dir(dir.path())
        .env_remove("CREDVAULT_KEYS")
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let key = Fernet::generate_key();
    let fernet = Fernet::new(key.expose_secret()).unwrap();
    std::fs::write(dir.path().join("fernet.keys"), key.expose_secret()).unwrap();
    let other = Fernet::new(Fernet::generate_key().expose_secret()).unwrap();
    // The README's failures: a token under another key, and line 7 not JSON.
    let mut lines: Vec<String> = (0..5)
        .map(|i| {
            let token = fernet.encrypt(format!("gho_token{i}").as_bytes());
            serde_json::json!({ "tenant": "acme", "name": format!("repo{i}"), "token": token })
                .to_string()
        })
        .collect();
    let bad = other.encrypt(b"gho_elsewhere");
    lines.push(serde_json::json!({ "tenant": "acme", "name": "gitlab", "token": bad }).to_string());
    lines.push("{not json".to_owned());
    std::fs::write(dir.path().join("legacy.jsonl"), lines.join("\n") + "\n").unwrap();

    let calls = run_block(dir.path(), &blocks[2], &[]);
    // "exit 1 when some values failed".
    assert_statuses(&calls, &[("vault import-fernet", 1)]);
    let import = call(&calls, "vault import-fernet");
    let shown: Vec<&str> = blocks[2]
        .lines()
        .filter(|l| l.starts_with("# imported ") || l.starts_with("# failed: "))
        .map(|l| l.trim_start_matches("# "))
        .collect();
    let printed: Vec<&str> = import.stdout.lines().collect();
    assert_eq!(printed.len(), shown.len(), "{import:#?}");
    assert_eq!(printed[0], "imported 5, already present 0, failed 2");
    assert_eq!(
        shown[0].replace("9998", "5"),
        printed[0],
        "README's summary line has the printed form"
    );
    assert_eq!(
        &printed[1..],
        &shown[1..],
        "README's failure lines are what it prints"
    );
}

fn cli_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cli")
        .join(name)
}

/// The comment line right after the line containing `command` in `block`, without `# `.
fn readme_comment_after<'a>(block: &'a str, command: &str) -> &'a str {
    let mut lines = block.lines();
    lines.find(|l| l.contains(command)).unwrap();
    lines.next().unwrap().trim_start_matches("# ")
}
