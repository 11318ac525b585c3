//! Issue 16 at the command line, both in one PKCS#11 token (SoftHSM2): the shred secrets
//! (`--tenant-keys pkcs11:...`: `vault init` creates the store, every other command opens it
//! and refuses a token or label without one) and the KEK's rotation (`key rotate --keys
//! pkcs11:...` makes the next token key, `vault rotate --kek` rewraps the data keys under it,
//! `vault destroy-kek` deletes the old one once nothing needs it).
//!
//! Skips without SoftHSM2 (saying how to install it) unless CREDVAULT_REQUIRE_PKCS11=1. One
//! test: the token directory reaches the child processes through SOFTHSM2_CONF, set once.

#![cfg(feature = "pkcs11")]
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

#[path = "common/cli.rs"]
mod cli_common;
#[path = "../../tests/common/softhsm.rs"]
mod softhsm;

use std::path::Path;

use assert_cmd::assert::Assert;
use tempfile::TempDir;

use cli_common::{fails_with, stdout};

fn with_pin(dir: &Path, args: &[&str], stdin: &str) -> Assert {
    cli_common::credvault(dir)
        .args(args)
        .env("CREDVAULT_PKCS11_PIN", "1234")
        .write_stdin(stdin.to_owned())
        .assert()
}

#[test]
fn tenant_keys_and_kek_rotation_in_a_pkcs11_token() {
    let Some(module) = softhsm::module() else {
        assert!(
            std::env::var("CREDVAULT_REQUIRE_PKCS11").as_deref() != Ok("1"),
            "CREDVAULT_REQUIRE_PKCS11=1 but SoftHSM2 is missing"
        );
        eprintln!("skipping: SoftHSM2 is not installed (apt-get install softhsm2)");
        return;
    };
    softhsm::init_token("cli-p11", "1234");
    let spec = |label: &str| {
        format!(
            "pkcs11:module={},token=cli-p11,label={label}",
            module.display()
        )
    };
    let (keys, tenant_keys) = (spec("kek"), spec("tenants"));
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let vault = |args: &[&str], stdin: &str| {
        let mut all = vec!["vault"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--keys", &keys, "--tenant-keys", &tenant_keys]);
        with_pin(d, &all, stdin)
    };

    vault(&["init"], "").success();
    for t in ["acme", "globex"] {
        vault(
            &[
                "put", "--tenant", t, "--kind", "api_key", "--name", "stripe",
            ],
            &format!(r#"{{"provider": "stripe", "key": "sk_live_{t}"}}"#),
        )
        .success();
    }
    let get = |t: &str| {
        let a = vault(
            &[
                "get", "--tenant", t, "--kind", "api_key", "--name", "stripe",
            ],
            "",
        );
        let text = stdout(&a);
        a.success();
        text
    };
    assert!(get("acme").contains("sk_live_acme"));
    let a = vault(&["report", "--json"], "");
    let report: serde_json::Value = serde_json::from_str(&stdout(&a)).unwrap();
    let named = report["tenant_key_store"].as_str().unwrap();
    assert!(
        named.starts_with("PKCS#11 token \"cli-p11\"") && named.contains("tenants"),
        "{named}"
    );
    // Another label (a typo, or a token that lost the store): never a fresh, empty store;
    // a malformed spec: an error with a hint naming the form.
    let typo = spec("tenantz");
    let a = with_pin(
        d,
        &[
            "vault", "get", "--tenant", "acme", "--kind", "api_key", "--name", "stripe",
        ]
        .into_iter()
        .chain(["--keys", &keys, "--tenant-keys", &typo])
        .collect::<Vec<_>>(),
        "",
    );
    let err = fails_with(a, 2, "no credvault tenant-key store");
    assert!(err.contains("--tenant-keys pkcs11:"), "{err}");
    let a = with_pin(
        d,
        &[
            "vault",
            "report",
            "--keys",
            &keys,
            "--tenant-keys",
            "pkcs11:token=x",
        ],
        "",
    );
    let err = fails_with(a, 2, "invalid --tenant-keys pkcs11:");
    assert!(err.contains("label=STORE_LABEL"), "{err}");

    // KEK rotation in the token.
    let a = with_pin(d, &["key", "rotate", "--keys", &keys, "--json"], "");
    let rotated: serde_json::Value = serde_json::from_str(&stdout(&a)).unwrap();
    a.success();
    assert_eq!(rotated["primary"], 2, "{rotated}");
    let a = with_pin(d, &["key", "list", "--keys", &keys, "--json"], "");
    let listed: serde_json::Value = serde_json::from_str(&stdout(&a)).unwrap();
    assert_eq!(listed["keys"].as_array().unwrap().len(), 2, "{listed}");
    // Version 1 still wraps the data keys: destroy is refused.
    let a = vault(&["destroy-kek", "1", "--yes", "--quiet-period", "0"], "");
    a.code(1);
    let a = vault(&["rotate", "--kek", "--json"], "");
    let rewrap: serde_json::Value = serde_json::from_str(&stdout(&a)).unwrap();
    a.success();
    assert!(rewrap["rewrapped"].as_u64().unwrap() >= 2, "{rewrap}");
    assert_eq!(rewrap["failed"], 0, "{rewrap}");
    vault(&["destroy-kek", "1", "--yes", "--quiet-period", "0"], "").success();
    let a = with_pin(d, &["key", "list", "--keys", &keys, "--json"], "");
    let listed: serde_json::Value = serde_json::from_str(&stdout(&a)).unwrap();
    let versions: Vec<_> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [2], "{listed}");
    // Everything still opens, under the new KEK, from a fresh process.
    assert!(get("acme").contains("sk_live_acme"));
    assert!(get("globex").contains("sk_live_globex"));
}
