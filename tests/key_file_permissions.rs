//! Loading a key file that group or others can read logs a warning through `tracing` (the
//! application's subscriber decides where it goes), and still loads.

#![cfg(unix)]
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::os::unix::fs::PermissionsExt as _;

use credvault::Keyring;
use tracing::Level;

mod common;

use common::Capture;

fn load_with_mode(mode: u32) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let ring = Keyring::generate().unwrap();
    ring.save(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    let capture = Capture::default();
    let loaded = tracing::subscriber::with_default(capture.clone(), || Keyring::load(&path));
    assert_eq!(loaded.unwrap().primary_version(), ring.primary_version());
    let lines = capture.0.lock().unwrap().clone();
    let json = ring.to_json();
    for line in &lines {
        for key_line in json
            .expose_secret()
            .lines()
            .filter(|l| l.contains("\"key\""))
        {
            assert!(
                !line.contains(key_line.split('"').nth(3).unwrap()),
                "log leaks a key"
            );
        }
    }
    lines
}

#[test]
fn world_readable_key_file_logs_a_warning_naming_the_file() {
    let lines = load_with_mode(0o644);
    let warn = Level::WARN.to_string();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&warn) && l.contains("keys.json") && l.contains("644")),
        "{lines:?}"
    );
}

#[test]
fn owner_only_key_file_logs_nothing() {
    assert_eq!(load_with_mode(0o600), Vec::<String>::new());
}
