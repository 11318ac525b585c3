//! Loading a key file that group or others can read logs a warning through `tracing` (the
//! application's subscriber decides where it goes), and still loads.

#![cfg(unix)]
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::sync::{Arc, Mutex};

use credvault::Keyring;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// A minimal subscriber that keeps every event as "LEVEL field=value ...".
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

struct Line<'a>(&'a mut String);

impl Visit for Line<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = event.metadata().level().to_string();
        event.record(&mut Line(&mut line));
        self.0.lock().unwrap().push(line);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

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
