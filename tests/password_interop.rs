//! Password hashes interoperate both ways with Python's `bcrypt`, `argon2-cffi`, passlib and
//! Django (see `tests/python/password_hashes.py`; versions pinned in
//! `tests/python/requirements.txt`).

mod common;

use credvault::SecretString;
use credvault::password::{HashEncoding, PasswordPolicy, Scheme};
use serde_json::json;

const MODULES: &[&str] = &["bcrypt", "argon2", "passlib", "django"];
const PASSWORD: &str = "pässwörd ✓ 🔑 correct horse";
const HELPER: &str = include_str!("python/password_hashes.py");

fn python(mode: &str, request: &serde_json::Value) -> serde_json::Value {
    let script = format!("import sys; sys.argv = ['helper', '{mode}']\n{HELPER}");
    let out = common::run_python(&script, request.to_string().as_bytes());
    serde_json::from_slice(&out).expect("python printed json")
}

#[allow(
    clippy::unwrap_used,
    reason = "test helper: a refused scheme is a test bug"
)]
fn weak(scheme: Scheme) -> PasswordPolicy {
    PasswordPolicy::allow_weak_parameters_for_tests(scheme).unwrap()
}

#[test]
fn hashes_made_by_python_libraries_verify() {
    if !common::python_has(MODULES) {
        return;
    }
    let long_password = "L".repeat(80);
    let made = python(
        "make",
        &json!({ "password": PASSWORD, "long_password": long_password, "django_default": true }),
    );
    let policy = PasswordPolicy::default();
    let made = made.as_array().unwrap();
    assert!(made.len() >= 19);
    for entry in made {
        let (label, hash, password) = (
            entry[0].as_str().unwrap(),
            entry[1].as_str().unwrap(),
            entry[2].as_str().unwrap(),
        );
        let right = SecretString::from(password);
        let wrong = SecretString::from(format!("x{password}").as_str());
        assert!(
            policy.verify(&right, hash).unwrap().is_accepted(),
            "{label}: right password refused"
        );
        assert!(
            !policy.verify(&wrong, hash).unwrap().is_accepted(),
            "{label}: wrong password accepted"
        );
        assert!(
            policy.verify(&right, hash).unwrap().needs_rehash(),
            "{label}: should upgrade to argon2id"
        );
    }
}

#[test]
fn long_bcrypt_passwords_verify_truncated_as_the_library_that_made_them() {
    if !common::python_has(MODULES) {
        return;
    }
    let long_password = "L".repeat(80);
    let made = python(
        "make",
        &json!({ "password": PASSWORD, "long_password": long_password }),
    );
    let hash = made
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e[0].as_str().unwrap().contains("truncated"))
        .unwrap()[1]
        .as_str()
        .unwrap()
        .to_owned();
    let policy = PasswordPolicy::default();
    // passlib (like old bcrypt, PHP and the Rust crate) cut the password at 72 bytes.
    for accepted in [
        long_password.as_str(),
        &long_password[..72],
        &format!("{}zzz", &long_password[..72]),
    ] {
        assert!(
            policy
                .verify(&SecretString::from(accepted), &hash)
                .unwrap()
                .is_accepted()
        );
    }
    assert!(
        !policy
            .verify(&SecretString::from(&long_password[..71]), &hash)
            .unwrap()
            .is_accepted()
    );
}

#[test]
fn hashes_made_by_credvault_verify_in_python_libraries() {
    if !common::python_has(MODULES) {
        return;
    }
    let bcrypt = Scheme::Bcrypt { cost: 4 };
    let pbkdf2 = Scheme::Pbkdf2Sha256 { iterations: 1000 };
    let argon2 = Scheme::Argon2id {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let cases = [
        ("bcrypt checkpw of $2b$", bcrypt, HashEncoding::Standard),
        ("passlib bcrypt of $2b$", bcrypt, HashEncoding::Standard),
        ("django bcrypt", bcrypt, HashEncoding::Django),
        ("argon2-cffi argon2id", argon2, HashEncoding::Standard),
        ("passlib argon2 argon2id", argon2, HashEncoding::Standard),
        ("django argon2", argon2, HashEncoding::Django),
        ("django pbkdf2_sha256", pbkdf2, HashEncoding::Django),
        ("passlib pbkdf2_sha256", pbkdf2, HashEncoding::Passlib),
    ];
    let password = SecretString::from(PASSWORD);
    let hashes: Vec<_> = cases
        .iter()
        .map(|(label, scheme, encoding)| {
            let hash = weak(*scheme)
                .with_encoding(*encoding)
                .hash(&password)
                .unwrap();
            json!([label, hash])
        })
        .collect();
    let verdicts = python("check", &json!({ "password": PASSWORD, "hashes": hashes }));
    for (label, ..) in cases {
        assert_eq!(
            verdicts[label],
            json!([true, false]),
            "{label}: [right, wrong] as python saw them"
        );
    }
}

#[test]
fn the_real_bcrypt_preset_verifies_in_python_bcrypt() {
    if !common::python_has(MODULES) {
        return;
    }
    let hash = PasswordPolicy::bcrypt(12)
        .unwrap()
        .hash(&SecretString::from(PASSWORD))
        .unwrap();
    assert!(hash.starts_with("$2b$12$"));
    let verdicts = python(
        "check",
        &json!({ "password": PASSWORD, "hashes": [["bcrypt checkpw of cost 12", hash]] }),
    );
    assert_eq!(verdicts["bcrypt checkpw of cost 12"], json!([true, false]));
}
