//! Randomness across `fork()`: a process that has already sealed a record and encrypted a
//! Fernet token forks; parent and child then seal the same plaintext under the same key and
//! context, and no AES-GCM nonce or Fernet IV may appear on both sides (a repeated GCM nonce
//! under one key gives away the XOR of the plaintexts and the authentication key).
//!
//! The child writes its nonces and IVs to a file in a temporary directory and leaves with
//! `_exit`, so it never runs the test harness's teardown.

#![cfg(unix)]
#![allow(
    clippy::unwrap_used,
    reason = "tests and benches fail loudly on unexpected errors"
)]

use std::collections::HashSet;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use credvault::KeyVersion;
use credvault::crypto::fernet::Fernet;
use credvault::crypto::{AeadKey, Context, aead};

/// Seals and tokens per side.
/// The sealed-record layout (ARCHITECTURE.md, "Sealed record"): an 8-byte header, then the
/// 12-byte nonce.
const NONCE: std::ops::Range<usize> = 8..20;
const N: usize = 64;
/// Where the IV sits in a decoded Fernet token: after the version byte and the timestamp.
const FERNET_IV: std::ops::Range<usize> = 9..25;
const PLAINTEXT: &[u8] = b"the same plaintext on both sides";

/// `N` nonces then `N` IVs, each as one line of hex.
fn draw(key: &AeadKey, fernet: &Fernet, ctx: &Context) -> Vec<String> {
    let mut out = Vec::with_capacity(2 * N);
    for _ in 0..N {
        let blob = aead::seal(key, KeyVersion::FIRST, PLAINTEXT, ctx).unwrap();
        out.push(format!("nonce {}", hex(&blob[NONCE])));
    }
    for _ in 0..N {
        let token = URL_SAFE.decode(fernet.encrypt(PLAINTEXT)).unwrap();
        out.push(format!("iv {}", hex(&token[FERNET_IV])));
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs in the child: draws, writes the lines to `path`, and leaves without unwinding into
/// the harness.
fn child(key: &AeadKey, fernet: &Fernet, ctx: &Context, path: &Path) -> ! {
    let lines = draw(key, fernet, ctx);
    let code = match std::fs::write(path, lines.join("\n")) {
        Ok(()) => 0,
        Err(_) => 1,
    };
    #[allow(
        unsafe_code,
        reason = "_exit is the only safe way out of a forked test child"
    )]
    // SAFETY: `_exit` ends the process at once; nothing runs after it.
    unsafe {
        libc::_exit(code)
    }
}

#[test]
fn nonces_and_ivs_are_not_repeated_across_fork() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("child.txt");
    let (key, _raw) = AeadKey::generate().unwrap();
    let fernet = Fernet::new(Fernet::generate_key().expose_secret()).unwrap();
    let ctx = Context::record("acme", "oauth_token", "github").unwrap();
    // Use the randomness before forking, so any per-thread state is initialised and copied.
    aead::seal(&key, KeyVersion::FIRST, PLAINTEXT, &ctx).unwrap();
    fernet.encrypt(PLAINTEXT);

    #[allow(unsafe_code, reason = "fork is the behaviour under test")]
    // SAFETY: the child only seals, writes a file and calls `_exit`; glibc's malloc is usable
    // after fork.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        child(&key, &fernet, &ctx, &path);
    }
    let ours = draw(&key, &fernet, &ctx);
    let mut status = 0;
    #[allow(unsafe_code, reason = "waiting for the forked child")]
    // SAFETY: `pid` is our child and `status` a valid out-pointer.
    let waited = unsafe { libc::waitpid(pid, &raw mut status, 0) };
    assert_eq!(waited, pid, "waitpid failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed: status {status}"
    );
    let theirs = std::fs::read_to_string(&path).unwrap();
    let theirs: HashSet<&str> = theirs.lines().collect();
    assert_eq!(theirs.len(), 2 * N, "child's draws repeat among themselves");
    let shared: Vec<&String> = ours
        .iter()
        .filter(|l| theirs.contains(l.as_str()))
        .collect();
    assert!(
        shared.is_empty(),
        "{} of {} nonces/IVs drawn after fork appear in both parent and child, e.g. {:?}",
        shared.len(),
        2 * N,
        shared.first()
    );
}
