//! Helpers shared by the command-line tests: run the built binary in a directory and read
//! what it printed. Included with `#[path = "common/cli.rs"] mod cli_common;`.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a different subset"
)]

use std::path::Path;

use assert_cmd::Command;
use assert_cmd::assert::Assert;

/// The binary, run in `dir`, with no key material from the environment.
pub fn credvault(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_credvault"));
    cmd.current_dir(dir).env_remove("CREDVAULT_KEYS");
    cmd
}

/// Runs `credvault ARGS` in `dir` with `stdin`.
pub fn run(dir: &Path, args: &[&str], stdin: &str) -> Assert {
    credvault(dir).args(args).write_stdin(stdin).assert()
}

/// What the command printed on stdout.
pub fn stdout(a: &Assert) -> String {
    String::from_utf8(a.get_output().stdout.clone()).expect("stdout is utf-8")
}

/// What the command printed on stderr.
pub fn stderr(a: &Assert) -> String {
    String::from_utf8(a.get_output().stderr.clone()).expect("stderr is utf-8")
}

/// Asserts exit status `code` and a two-line error: the message containing `message`, then a
/// hint.
pub fn fails_with(a: Assert, code: i32, message: &str) -> String {
    let err = stderr(&a);
    a.code(code);
    assert!(err.contains(message), "stderr lacks {message:?}: {err}");
    assert!(err.contains("\n  hint: "), "no hint line: {err}");
    err
}
