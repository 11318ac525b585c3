//! Helpers that drive the installed Python (interop tests). Included by the library's tests
//! through `common/mod.rs` and by the command line's tests (cli/tests) by path.
//!
//! On a developer's machine without the Python packages the tests skip with a message saying
//! how to enable them; with `CREDVAULT_REQUIRE_INTEROP=1` (set by `.ci/run`) a missing package
//! fails the test instead, so CI can never pass by skipping.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a different subset"
)]

use std::io::Write as _;
use std::process::{Command, Stdio};
/// Name of the environment variable that turns a skipped interop test into a failure.
pub const REQUIRE_INTEROP: &str = "CREDVAULT_REQUIRE_INTEROP";

/// The Python interpreter to use (`CREDVAULT_PYTHON`, default `python3`).
pub fn python_exe() -> String {
    std::env::var("CREDVAULT_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Whether `python3 -c "import <module>"` works for every module given. When one is missing,
/// prints how to enable the test and returns `false`, or panics under `CREDVAULT_REQUIRE_INTEROP`.
pub fn python_has(modules: &[&str]) -> bool {
    let script = modules
        .iter()
        .map(|m| format!("import {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    let ok = Command::new(python_exe())
        .args(["-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        let msg = format!(
            "python interop skipped: `{} -c \"{script}\"` failed; install the packages \
             (see .ci/run, e.g. `pip install -r tests/python/requirements.txt`) to enable it",
            python_exe()
        );
        if std::env::var_os(REQUIRE_INTEROP).is_some_and(|v| v == "1") {
            panic!("{msg} ({REQUIRE_INTEROP}=1 forbids skipping)");
        }
        eprintln!("{msg}");
    }
    ok
}

/// Runs a Python script with `input` on stdin and returns its stdout. Panics (test failure)
/// with Python's stderr if the script fails.
pub fn run_python(script: &str, input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(python_exe())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python");
    let mut stdin = child.stdin.take().expect("python stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        stdin.write_all(&input).expect("write python stdin");
    });
    let out = child.wait_with_output().expect("wait for python");
    writer.join().expect("stdin writer");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
