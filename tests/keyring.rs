//! The keyring as a user sees it: rotation, destruction, the minimum decryption version, and
//! the key file (atomic save, permissions, corrupt files).

#![allow(
    clippy::unwrap_used,
    reason = "tests and benches fail loudly on unexpected errors"
)]

use credvault::KeyVersion;
use credvault::crypto::{Context, CryptoError};
use credvault::keys::{KeyError, KeyState, Keyring};

fn ctx() -> Context {
    Context::record("acme", "oauth_token", "github").unwrap()
}

#[test]
fn rotation_keeps_old_records_readable_and_seals_with_the_new_key() {
    let mut ring = Keyring::generate().unwrap();
    let old = ring.seal(b"one", &ctx()).unwrap();
    let v2 = ring.rotate().unwrap();
    assert_eq!(v2, KeyVersion::new(2));
    let new = ring.seal(b"two", &ctx()).unwrap();
    assert_eq!(&old[4..8], &1u32.to_be_bytes(), "header names version 1");
    assert_eq!(&new[4..8], &2u32.to_be_bytes(), "header names version 2");
    assert_eq!(ring.open(&old, &ctx()).unwrap().expose_secret(), b"one");
    assert_eq!(ring.open(&new, &ctx()).unwrap().expose_secret(), b"two");
    assert_eq!(ring.state(KeyVersion::new(1)), Some(KeyState::DecryptOnly));
    assert_eq!(ring.state(v2), Some(KeyState::Primary));
}

#[test]
fn destroying_the_primary_key_is_refused() {
    let mut ring = Keyring::generate().unwrap();
    assert!(matches!(
        ring.destroy(KeyVersion::FIRST),
        Err(KeyError::IsPrimary(_))
    ));
    assert!(matches!(
        ring.destroy(KeyVersion::new(9)),
        Err(KeyError::UnknownVersion(v)) if v == KeyVersion::new(9)
    ));
}

#[test]
fn destroyed_key_makes_its_records_unreadable_for_good() {
    let mut ring = Keyring::generate().unwrap();
    let old = ring.seal(b"one", &ctx()).unwrap();
    ring.rotate().unwrap();
    ring.destroy(KeyVersion::FIRST).unwrap();
    ring.destroy(KeyVersion::FIRST).unwrap(); // idempotent
    assert!(matches!(
        ring.open(&old, &ctx()),
        Err(KeyError::Destroyed(_))
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    ring.save(&path).unwrap();
    let reloaded = Keyring::load(&path).unwrap();
    assert!(matches!(
        reloaded.open(&old, &ctx()),
        Err(KeyError::Destroyed(_))
    ));
    assert_eq!(reloaded.state(KeyVersion::FIRST), Some(KeyState::Destroyed));
}

#[test]
fn min_decryption_version_refuses_older_records() {
    let mut ring = Keyring::generate().unwrap();
    let old = ring.seal(b"one", &ctx()).unwrap();
    let v2 = ring.rotate().unwrap();
    ring.set_min_decryption_version(v2).unwrap();
    assert!(matches!(
        ring.open(&old, &ctx()),
        Err(KeyError::BelowMinimum { version, minimum }) if version == KeyVersion::FIRST && minimum == v2
    ));
    assert!(matches!(
        ring.set_min_decryption_version(KeyVersion::new(3)),
        Err(KeyError::IsPrimary(_))
    ));
    ring.set_min_decryption_version(KeyVersion::FIRST).unwrap();
    assert!(ring.open(&old, &ctx()).is_ok());
}

#[test]
fn record_naming_an_unknown_version_is_a_clear_error() {
    let ring = Keyring::generate().unwrap();
    let mut blob = ring.seal(b"x", &ctx()).unwrap();
    blob[4..8].copy_from_slice(&77u32.to_be_bytes());
    assert!(matches!(ring.open(&blob, &ctx()), Err(KeyError::UnknownVersion(v)) if v.get() == 77));
}

#[test]
fn record_from_another_keyring_fails_to_open() {
    let a = Keyring::generate().unwrap();
    let b = Keyring::generate().unwrap();
    let blob = a.seal(b"x", &ctx()).unwrap();
    assert!(matches!(
        b.open(&blob, &ctx()),
        Err(KeyError::Crypto(CryptoError::DecryptionFailed))
    ));
}

#[test]
fn text_form_round_trips() {
    let ring = Keyring::generate().unwrap();
    let text = ring.seal_text(b"tok", &ctx()).unwrap();
    assert!(text.starts_with("cv1."));
    assert_eq!(
        ring.open_text(&text, &ctx()).unwrap().expose_secret(),
        b"tok"
    );
}

#[test]
fn key_file_round_trips_every_state() {
    let mut ring = Keyring::generate_at(1_000).unwrap();
    ring.rotate_at(2_000).unwrap();
    ring.rotate_at(3_000).unwrap();
    ring.destroy(KeyVersion::FIRST).unwrap();
    ring.set_min_decryption_version(KeyVersion::new(2)).unwrap();
    let sealed = ring.seal(b"payload", &ctx()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    ring.save(&path).unwrap();
    let back = Keyring::load(&path).unwrap();
    assert_eq!(
        back.infos().collect::<Vec<_>>(),
        ring.infos().collect::<Vec<_>>()
    );
    assert_eq!(back.min_decryption_version(), KeyVersion::new(2));
    assert_eq!(
        back.open(&sealed, &ctx()).unwrap().expose_secret(),
        b"payload"
    );
    // Saving again replaces the file and leaves no temporary file behind.
    back.save(&path).unwrap();
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("keys.json")]);
}

#[cfg(unix)]
#[test]
fn key_file_is_created_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    Keyring::generate().unwrap().save(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

/// Every way a key file can be broken gives `KeyError::Invalid` naming the file, and no
/// message contains key bytes.
#[test]
fn corrupt_key_files_are_clear_errors_naming_the_file() {
    let ring = Keyring::generate().unwrap();
    let good = ring.to_json();
    let good = good.expose_secret();
    let key_b64 = good
        .split("\"key\": \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("truncated", good[..good.len() / 2].to_owned()),
        ("not json", "hello".to_owned()),
        ("wrong format", good.replace("credvault-keyring", "other")),
        (
            "future version",
            good.replace("\"version\": 1,\n  \"min", "\"version\": 2,\n  \"min"),
        ),
        ("short key", good.replace(&key_b64, &key_b64[..20])),
        (
            "bad base64 key",
            good.replace(&key_b64, &format!("{}!", &key_b64[1..])),
        ),
        (
            "no primary",
            good.replace("\"primary\"", "\"decrypt-only\""),
        ),
        ("unknown state", good.replace("\"primary\"", "\"active\"")),
        (
            "key as number",
            good.replace(&format!("\"{key_b64}\""), "12"),
        ),
        (
            "unknown field",
            good.replace("\"format\"", "\"extra\": 1, \"format\""),
        ),
    ];
    for (what, text) in cases {
        let path = dir.path().join(format!("{}.json", what.replace(' ', "_")));
        std::fs::write(&path, &text).unwrap();
        let err = Keyring::load(&path).expect_err(what);
        let msg = err.to_string();
        assert!(matches!(err, KeyError::Invalid { .. }), "{what}: {err:?}");
        assert!(msg.contains(&path.display().to_string()), "{what}: {msg}");
        assert!(!msg.contains(&key_b64[..16]), "{what} leaks the key: {msg}");
        assert!(
            !format!("{err:?}").contains(&key_b64[..16]),
            "{what} leaks the key in Debug"
        );
    }
}

#[test]
fn missing_key_file_is_an_error_not_a_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.json");
    assert!(matches!(Keyring::load(&path), Err(KeyError::Io { .. })));
    assert!(!path.exists());
}

#[test]
#[allow(
    unsafe_code,
    reason = "std::env::set_var is unsafe in edition 2024; names are unique to this test"
)]
fn keyring_loads_from_an_environment_variable() {
    let ring = Keyring::generate().unwrap();
    let sealed = ring.seal(b"x", &ctx()).unwrap();
    // SAFETY: no other thread reads these variables; their names are unique to this test.
    unsafe { std::env::set_var("CREDVAULT_TEST_KEYS_ENV", ring.to_json().expose_secret()) };
    let back = Keyring::from_env("CREDVAULT_TEST_KEYS_ENV").unwrap();
    assert_eq!(back.open(&sealed, &ctx()).unwrap().expose_secret(), b"x");
    let err = Keyring::from_env("CREDVAULT_TEST_KEYS_UNSET").unwrap_err();
    assert!(matches!(err, KeyError::MissingVariable { .. }));
    // SAFETY: as above.
    unsafe { std::env::set_var("CREDVAULT_TEST_KEYS_BAD", "{") };
    let err = Keyring::from_env("CREDVAULT_TEST_KEYS_BAD").unwrap_err();
    assert!(
        err.to_string().contains("$CREDVAULT_TEST_KEYS_BAD"),
        "{err}"
    );
}

#[test]
fn keyring_debug_shows_versions_not_keys() {
    let mut ring = Keyring::generate().unwrap();
    ring.rotate().unwrap();
    let json = ring.to_json();
    let dbg = format!("{ring:?} {ring:#?} {json:?}");
    assert!(dbg.contains("v2:primary"), "{dbg}");
    for line in json
        .expose_secret()
        .lines()
        .filter(|l| l.contains("\"key\""))
    {
        let key = line.split('"').nth(3).unwrap();
        assert!(!dbg.contains(key));
    }
}
