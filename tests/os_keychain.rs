//! The OS keychain key provider (feature `os-keychain`) on a real secret store: the Linux
//! kernel's keyutils (the session keyring), which works headless. Each test uses its own
//! service name and deletes its entry at the end.

#![cfg(all(feature = "os-keychain", target_os = "linux"))]
#![allow(
    clippy::unwrap_used,
    reason = "tests and benches fail loudly on unexpected errors"
)]

use std::sync::Arc;

use credvault::KeyVersion;
use credvault::SecretBytes;
use credvault::SecretString;
use credvault::crypto::Context;
use credvault::envelope::DirTenantKeys;
use credvault::keys::keychain::{KeychainEntry, KeychainKeys};
use credvault::keys::{KeyError, KeyProvider};
use credvault::store::{OAuthToken, Vault};

/// A unique entry, deleted (if still there) when dropped.
struct Scratch(KeychainEntry);

impl Scratch {
    fn new(test: &str) -> Self {
        let nonce: u64 = rand::random();
        Self(KeychainEntry::new(
            format!("credvault-test-{test}-{}-{nonce:x}", std::process::id()),
            "kek",
        ))
    }

    /// The same kernel key credvault uses (keyring's keyutils credential in the user
    /// keyring), to write corrupt values straight into the store.
    fn raw(&self) -> keyring::Entry {
        use linux_keyutils::{KeyRing, KeyRingIdentifier};
        keyring::Entry::new_with_credential(Box::new(keyring::keyutils::KeyutilsCredential {
            session: KeyRing::from_special_id(KeyRingIdentifier::User, false).unwrap(),
            persistent: None,
            description: format!("keyring-rs:{}@{}", self.0.account, self.0.service),
        }))
    }

    fn set_raw(&self, value: &[u8]) {
        self.raw().set_secret(value).unwrap();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = self.0.delete();
    }
}

fn dek_ctx() -> Context {
    Context::wrapped_dek("acme", KeyVersion::new(1)).unwrap()
}

#[test]
fn created_keys_are_found_again_by_open() {
    let s = Scratch::new("reopen");
    let created = KeychainKeys::create(&s.0).unwrap();
    let dek = SecretBytes::new(vec![7; 32]);
    let wrapped = created.wrap_key(&dek, &dek_ctx()).unwrap();

    let opened = KeychainKeys::open(&s.0).unwrap();
    assert_eq!(opened.primary_version(), KeyVersion::FIRST);
    assert_eq!(
        opened.fingerprint(KeyVersion::FIRST).unwrap(),
        created.fingerprint(KeyVersion::FIRST).unwrap()
    );
    assert_eq!(opened.unwrap_key(&wrapped, &dek_ctx()).unwrap(), dek);
    assert!(opened.describe().contains(&s.0.service));
}

/// Run by `keys_created_by_one_process_open_in_another` in a child process: opens the entry
/// named by `CREDVAULT_KEYCHAIN_CHILD` and prints its fingerprint.
#[test]
fn keychain_child() {
    let Ok(service) = std::env::var("CREDVAULT_KEYCHAIN_CHILD") else {
        return;
    };
    let keys = KeychainKeys::open(&KeychainEntry::new(service, "kek")).unwrap();
    println!(
        "fingerprint={}",
        keys.fingerprint(KeyVersion::FIRST).unwrap().unwrap()
    );
}

/// The key outlives the process that created it (a desktop application's next start).
#[test]
fn keys_created_by_one_process_open_in_another() {
    let s = Scratch::new("process");
    let created = KeychainKeys::create(&s.0).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "keychain_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CREDVAULT_KEYCHAIN_CHILD", &s.0.service)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = format!(
        "fingerprint={}",
        created.fingerprint(KeyVersion::FIRST).unwrap().unwrap()
    );
    assert!(stdout.contains(&expected), "{stdout}");
}

#[test]
fn create_never_replaces_an_entry() {
    let s = Scratch::new("exists");
    let first = KeychainKeys::create(&s.0).unwrap();
    let err = KeychainKeys::create(&s.0).unwrap_err();
    assert!(
        matches!(&err, KeyError::KeychainExists { service, .. } if *service == s.0.service),
        "{err}"
    );
    // The first keys are still the stored ones.
    let opened = KeychainKeys::open(&s.0).unwrap();
    assert_eq!(
        opened.fingerprint(KeyVersion::FIRST).unwrap(),
        first.fingerprint(KeyVersion::FIRST).unwrap()
    );
    // A corrupt entry is not replaced either.
    s.set_raw(b"not a keyring");
    assert!(matches!(
        KeychainKeys::create(&s.0),
        Err(KeyError::KeychainExists { .. })
    ));
    assert_eq!(s.raw().get_password().unwrap(), "not a keyring");
}

#[test]
fn a_missing_entry_is_an_error_and_creates_nothing() {
    let s = Scratch::new("missing");
    let err = KeychainKeys::open(&s.0).unwrap_err();
    assert!(
        matches!(&err, KeyError::KeychainMissing { service, account }
            if *service == s.0.service && account == "kek"),
        "{err}"
    );
    assert!(err.to_string().contains("create it explicitly"), "{err}");
    assert!(
        matches!(s.raw().get_password(), Err(keyring::Error::NoEntry)),
        "open created an entry"
    );
    assert!(matches!(
        s.0.delete(),
        Err(KeyError::KeychainMissing { .. })
    ));
}

#[test]
fn a_corrupt_entry_is_a_typed_error_without_its_bytes() {
    let s = Scratch::new("corrupt");
    s.set_raw(br#"{"format": "credvault-keyring", "SECRET-LOOKING-TEXT": 1"#);
    let err = KeychainKeys::open(&s.0).unwrap_err();
    let KeyError::Invalid {
        source_name,
        problem,
    } = &err
    else {
        panic!("not Invalid: {err:?}");
    };
    assert!(source_name.contains(&s.0.service), "{source_name}");
    assert!(problem.contains("json"), "{problem}");
    assert!(!err.to_string().contains("SECRET-LOOKING"), "{err}");

    // A keyring whose key is the wrong length.
    s.set_raw(
        br#"{"format":"credvault-keyring","version":1,"min_decryption_version":1,
            "keys":[{"version":1,"state":"primary","created_at":0,"key":"AAAA"}]}"#,
    );
    assert!(matches!(
        KeychainKeys::open(&s.0),
        Err(KeyError::Invalid { problem, .. }) if problem.contains("bytes")
    ));

    // Bytes that are not UTF-8: keyring's own error holds them; ours does not.
    s.set_raw(&[0xff, 0xfe, 0x53, 0x45, 0x43]);
    let err = KeychainKeys::open(&s.0).unwrap_err();
    assert!(
        matches!(&err, KeyError::Invalid { problem, .. } if problem.contains("UTF-8")),
        "{err:?}"
    );
    assert!(!format!("{err:?}").contains("255"), "{err:?}");
}

#[test]
fn debug_and_errors_show_no_key_bytes() {
    let s = Scratch::new("debug");
    let keys = KeychainKeys::create(&s.0).unwrap();
    keys.update(|ring| ring.rotate()).unwrap();
    let stored: serde_json::Value = serde_json::from_str(&s.raw().get_password().unwrap()).unwrap();
    let secrets: Vec<String> = stored["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(secrets.len(), 2);
    let debug = format!("{keys:?} {:?}", keys.keyring());
    assert!(debug.contains("KeychainKeys"), "{debug}");
    for secret in &secrets {
        assert!(
            !debug.contains(secret.as_str()),
            "Debug shows a key: {debug}"
        );
        assert!(!debug.contains(&secret[..8]), "Debug shows part of a key");
    }
}

#[test]
fn a_rotation_is_stored_and_seen_by_other_handles() {
    let s = Scratch::new("rotate");
    let a = KeychainKeys::create(&s.0).unwrap();
    let b = KeychainKeys::open(&s.0).unwrap();
    let dek = SecretBytes::new(vec![9; 32]);
    let old = a.wrap_key(&dek, &dek_ctx()).unwrap();

    assert_eq!(a.update(|ring| ring.rotate()).unwrap(), KeyVersion::new(2));
    assert_eq!(a.primary_version(), KeyVersion::new(2));
    assert_eq!(b.primary_version(), KeyVersion::FIRST);
    assert!(b.reload().unwrap());
    assert!(!b.reload().unwrap(), "nothing changed since");
    assert_eq!(b.primary_version(), KeyVersion::new(2));
    assert_eq!(b.unwrap_key(&old, &dek_ctx()).unwrap(), dek);
    assert_eq!(
        KeychainKeys::open(&s.0).unwrap().primary_version(),
        KeyVersion::new(2)
    );

    // A failed change leaves the stored keys as they were.
    let err = a
        .update(|ring| ring.destroy(KeyVersion::new(2)))
        .unwrap_err();
    assert!(matches!(err, KeyError::IsPrimary(_)));
    assert_eq!(
        KeychainKeys::open(&s.0).unwrap().primary_version(),
        KeyVersion::new(2)
    );
}

#[tokio::test]
async fn a_vault_runs_on_keychain_keys_and_writes_no_key_file() {
    let s = Scratch::new("vault");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("vault.db").display());
    let tenant_dir = dir.path().join("tenant-keys");
    {
        let keys = KeychainKeys::create(&s.0).unwrap();
        let vault = Vault::init(&url, keys, DirTenantKeys::create(&tenant_dir).unwrap())
            .await
            .unwrap();
        let tenant = vault.tenant("acme").unwrap();
        tenant
            .put(
                "github",
                &OAuthToken::bearer("github", SecretString::from("gho_keychain")),
            )
            .await
            .unwrap();
        vault.flush_audit().await.unwrap();
    }
    let keys = Arc::new(KeychainKeys::open(&s.0).unwrap());
    let vault = Vault::open(
        &url,
        Arc::clone(&keys),
        DirTenantKeys::open(&tenant_dir).unwrap(),
    )
    .await
    .unwrap();
    let got = vault
        .tenant("acme")
        .unwrap()
        .get::<OAuthToken>("github")
        .await
        .unwrap();
    assert_eq!(got.value.access_token.expose_secret(), "gho_keychain");
    vault.flush_audit().await.unwrap();
    drop(vault);
    // Nothing but the database and the tenant-key directory was written.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("vault.db") || n == "tenant-keys"),
        "{names:?}"
    );
}
